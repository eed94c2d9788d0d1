/**
 * Granule number -> tree node index, as an open-addressing hash table in
 * typed arrays. `free()` must find an allocation by its start in O(1): the
 * cached fast path never touches the tree, and a tree descent would cost
 * more than the whole cache hit.
 *
 * @module
 */

const EMPTY = -1;
const INV_TWO32 = 1 / 4294967296;

/**
 * Linear-probing map from a granule number (0 .. 2^53) to a node index
 * (> 0). Key and value share one 16-byte slot (a Float64 key, an Int32
 * value read through a second view) so that a lookup in a big table costs
 * one cache miss, not two, and the value needs no double-to-int conversion.
 */
export class IovaHash {
  #slots: Float64Array;
  /** Int32 view of #slots: slot i's value is at `(i << 2) + 2`. */
  #vals: Int32Array;
  #mask: number;
  #shift: number;
  #count = 0;

  /** @param capacity Initial slots (rounded up to a power of two). */
  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.#slots = new Float64Array(cap * 2).fill(EMPTY);
    this.#vals = new Int32Array(this.#slots.buffer);
    this.#mask = cap - 1;
    this.#shift = Math.clz32(cap) + 1;
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
    // Fibonacci hashing: the top bits of key * 2^32/phi are well mixed even
    // for power-of-two aligned keys, in one multiply.
    const lo = key >>> 0;
    const hi = (key * INV_TWO32) | 0;
    return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>>
      this.#shift;
  }

  /**
   * @param key Granule number.
   * @returns The node index, or 0 when absent.
   */
  get(key: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#slot(key);
    for (;;) {
      const k = slots[i << 1]!;
      if (k === key) return this.#vals[(i << 2) + 2]!;
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
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#slot(key);
    for (;;) {
      const k = slots[i << 1]!;
      if (k === key || k === EMPTY) {
        if (k === EMPTY) this.#count++;
        slots[i << 1] = key;
        this.#vals[(i << 2) + 2] = value;
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
    const slots = this.#slots;
    const vals = this.#vals;
    const mask = this.#mask;
    let i = this.#slot(key);
    for (;;) {
      const k = slots[i << 1]!;
      if (k === EMPTY) return;
      if (k === key) break;
      i = (i + 1) & mask;
    }
    this.#count--;
    // Pull later members of the probe run back over the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = slots[j << 1]!;
      if (k === EMPTY) break;
      const home = this.#slot(k);
      // Move k into the hole when its home is not in (i, j] cyclically.
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        slots[i << 1] = k;
        vals[(i << 2) + 2] = vals[(j << 2) + 2]!;
        i = j;
      }
    }
    slots[i << 1] = EMPTY;
  }

  /**
   * Every entry, and whether each is reachable by {@linkcode IovaHash.get}
   * (O(capacity); for audits).
   *
   * @returns [key, value, reachable] triples.
   */
  entries(): [number, number, boolean][] {
    const out: [number, number, boolean][] = [];
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i += 2) {
      const k = slots[i]!;
      if (k !== EMPTY) {
        const v = this.#vals[(i << 1) + 2]!;
        out.push([k, v, this.get(k) === v]);
      }
    }
    return out;
  }

  /** Remove every entry. */
  clear(): void {
    this.#slots.fill(EMPTY);
    this.#count = 0;
  }

  #grow(): void {
    const old = this.#slots;
    const cap = old.length; // twice the old slot count
    const oldVals = this.#vals;
    this.#slots = new Float64Array(cap * 2).fill(EMPTY);
    this.#vals = new Int32Array(this.#slots.buffer);
    this.#mask = cap - 1;
    this.#shift = Math.clz32(cap) + 1;
    this.#count = 0;
    for (let i = 0; i < old.length; i += 2) {
      const k = old[i]!;
      if (k !== EMPTY) this.set(k, oldVals[(i << 1) + 2]!);
    }
  }
}
