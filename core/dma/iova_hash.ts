/**
 * Granule number -> tree node index, as an open-addressing hash table in
 * typed arrays. `free()` must find an allocation by its start in O(1): the
 * cached fast path never touches the tree, and a tree descent would cost
 * more than the whole cache hit.
 *
 * @module
 */

const EMPTY = -1;
const TWO32 = 4294967296;

/** Linear-probing map from a granule number (0 .. 2^53) to a node index (> 0). */
export class IovaHash {
  #keys: Float64Array;
  #vals: Int32Array;
  #mask: number;
  #count = 0;

  /** @param capacity Initial slots (rounded up to a power of two). */
  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.#keys = new Float64Array(cap).fill(EMPTY);
    this.#vals = new Int32Array(cap);
    this.#mask = cap - 1;
  }

  /** Number of entries. */
  get count(): number {
    return this.#count;
  }

  /** Slots reserved in memory (for statistics). */
  get capacity(): number {
    return this.#mask + 1;
  }

  #slot(key: number): number {
    // Starts are power-of-two aligned, so mix the high and low words well.
    const lo = key >>> 0;
    const hi = (key / TWO32) | 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 13;
    return h & this.#mask;
  }

  /**
   * @param key Granule number.
   * @returns The node index, or 0 when absent.
   */
  get(key: number): number {
    const keys = this.#keys;
    const mask = this.#mask;
    let i = this.#slot(key);
    for (;;) {
      const k = keys[i]!;
      if (k === key) return this.#vals[i]!;
      if (k === EMPTY) return 0;
      i = (i + 1) & mask;
    }
  }

  /**
   * Insert or overwrite.
   *
   * @param key Granule number.
   * @param value Node index (> 0).
   */
  set(key: number, value: number): void {
    if ((this.#count + 1) * 2 > this.#mask + 1) this.#grow();
    const keys = this.#keys;
    const mask = this.#mask;
    let i = this.#slot(key);
    for (;;) {
      const k = keys[i]!;
      if (k === key) {
        this.#vals[i] = value;
        return;
      }
      if (k === EMPTY) {
        keys[i] = key;
        this.#vals[i] = value;
        this.#count++;
        return;
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * Remove a key if present (backward-shift deletion, no tombstones).
   *
   * @param key Granule number.
   */
  delete(key: number): void {
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = this.#mask;
    let i = this.#slot(key);
    for (;;) {
      const k = keys[i]!;
      if (k === EMPTY) return;
      if (k === key) break;
      i = (i + 1) & mask;
    }
    this.#count--;
    // Pull later members of the probe run back over the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = keys[j]!;
      if (k === EMPTY) break;
      const home = this.#slot(k);
      // Move k into the hole when its home is not in (i, j] cyclically.
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        keys[i] = k;
        vals[i] = vals[j]!;
        i = j;
      }
    }
    keys[i] = EMPTY;
    vals[i] = 0;
  }

  /** Remove every entry. */
  clear(): void {
    this.#keys.fill(EMPTY);
    this.#vals.fill(0);
    this.#count = 0;
  }

  #grow(): void {
    const oldKeys = this.#keys;
    const oldVals = this.#vals;
    const cap = oldKeys.length * 2;
    this.#keys = new Float64Array(cap).fill(EMPTY);
    this.#vals = new Int32Array(cap);
    this.#mask = cap - 1;
    this.#count = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k !== EMPTY) this.set(k, oldVals[i]!);
    }
  }
}
