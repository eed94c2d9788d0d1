/**
 * Granule number -> tree node index, as an open-addressing hash table in
 * typed arrays. `free()` must find an allocation by its start in O(1): the
 * cached fast path never touches the tree, and a tree descent would cost
 * more than the whole cache hit.
 *
 * @module
 */

import { hostAlloc, tryHostAlloc } from "./host_alloc.ts";

/** Probe distance bits in an entry; the node index is above them. */
const DIST_BITS = 3;
const DIST_MASK = (1 << DIST_BITS) - 1;
/** Node index bits (the tree holds at most 2^25 - 1 nodes). */
const NODE_MASK = (1 << 25) - 1;
/** The tag (4 bits of the key's hash) sits above the node index. */
const TAG_SHIFT = 28;
const TAG_MASK = ~((1 << TAG_SHIFT) - 1);
const INV_TWO32 = 1 / 4294967296;
/** Slots a table never shrinks below. */
const MIN_SLOTS = 1024;

/**
 * Linear-probing map from a granule number (0 .. 2^53) to a node index
 * (1 .. 2^25 - 1) whose key is that node's first granule. A slot is one
 * int32: a 4-bit tag from the key's hash, the node index and the entry's
 * distance from its home slot (saturating at 7), 0 when empty. The key
 * itself is not stored: it is read from the node (`f[node << 3]`, which
 * the caller reads next anyway), and only for entries whose distance and
 * tag say they could be the key's. Four bytes a slot instead of sixteen
 * keep the table of a million ranges within the reach of the caches and
 * the TLB; the tag spares most reads of other entries' nodes, each a cache
 * miss at that size (about one per alloc + free pair without it).
 */
export class IovaHash {
  #slots: Int32Array;
  #mask: number;
  #shift: number;
  #count = 0;
  // Entries below which a delete shrinks the table (0: never): one in
  // eight slots, halved after a shrink the host refused.
  #shrinkBelow = 0;
  /** Tag of the key last hashed by #home, in the entry's tag position. */
  #tag = 0;

  /** @param capacity Initial slots (rounded up to a power of two). */
  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.#slots = new Int32Array(cap);
    this.#mask = cap - 1;
    this.#shift = Math.clz32(cap) + 1;
    this.#shrinkBelow = cap > MIN_SLOTS ? cap >>> 3 : 0;
  }

  /** Number of entries. */
  get count(): number {
    return this.#count;
  }

  /** Slots reserved in memory (for statistics). */
  get capacity(): number {
    return this.#mask + 1;
  }

  /** Home slot of a key; leaves the key's tag in #tag. */
  #home(key: number): number {
    // Fibonacci hashing: the top bits of key * 2^32/phi are well mixed even
    // for power-of-two aligned keys, in one multiply. The tag is the top of
    // a second multiply, independent of the slot bits.
    const lo = key >>> 0;
    const hi = (key * INV_TWO32) | 0;
    const h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
    this.#tag = (Math.imul(h, 0x2c1b3c6d) >>> TAG_SHIFT) << TAG_SHIFT;
    return h >>> this.#shift;
  }

  /** Distance of entry e at slot j from its home (exact even if saturated). */
  #dist(e: number, j: number, f: Float64Array): number {
    const d = e & DIST_MASK;
    if (d < DIST_MASK) return d;
    return (j - this.#home(f[((e >>> DIST_BITS) & NODE_MASK) << 3]!)) &
      this.#mask;
  }

  /**
   * @param key Granule number.
   * @param f The tree's Float64 view (node i's key at `i << 3`).
   * @returns The node index, or 0 when absent.
   */
  get(key: number, f: Float64Array): number {
    const i = this.#probe(key, f);
    return i < 0 ? 0 : (this.#slots[i]! >>> DIST_BITS) & NODE_MASK;
  }

  // The slot holding `key`, or ~slot of the empty slot that ends its probe
  // run. Only entries at the probed distance (or saturated past it) and
  // with the key's tag can hold the key, so only theirs is read from the
  // node. Leaves the key's tag in #tag.
  #probe(key: number, f: Float64Array): number {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#home(key);
    const tag = this.#tag;
    for (let d = 0;; d++) {
      const e = slots[i]!;
      if (e === 0) return ~i;
      const ed = e & DIST_MASK;
      if (
        (ed === d || (ed === DIST_MASK && d > DIST_MASK)) &&
        (e & TAG_MASK) === tag &&
        f[((e >>> DIST_BITS) & NODE_MASK) << 3] === key
      ) {
        return i;
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * Insert or overwrite.
   *
   * @param key Granule number: node `value`'s key (`f[value << 3]`).
   * @param value Node index (1 .. 2^25 - 1).
   * @param f The tree's Float64 view.
   */
  set(key: number, value: number, f: Float64Array): void {
    if ((this.#count + 1) * 2 > this.#mask + 1) this.#grow(f);
    const slots = this.#slots;
    const i = this.#probe(key, f);
    if (i >= 0) {
      slots[i] = (value << DIST_BITS) | (slots[i]! & ~(NODE_MASK << DIST_BITS));
      return;
    }
    const at = ~i;
    const d = (at - this.#home(key)) & this.#mask;
    this.#count++;
    slots[at] = this.#tag | (value << DIST_BITS) |
      (d < DIST_MASK ? d : DIST_MASK);
  }

  /**
   * Make sure the next {@linkcode IovaHash.add} does not need to grow the
   * table, so a caller can check for room before it changes anything.
   *
   * @param f The tree's node store (the keys of the nodes present).
   * @throws {IommuError} `ENOMEM` when the host has no memory for a larger
   * table; nothing changes then.
   */
  reserveOne(f: Float64Array): void {
    if ((this.#count + 1) * 2 > this.#mask + 1) this.#grow(f);
  }

  /**
   * Insert a key that is known to be absent (a fresh allocation's start):
   * the same slot {@linkcode IovaHash.set} would pick, found without
   * comparing keys, so without reading any node. The caller made room
   * first ({@linkcode IovaHash.reserveOne}), so this never grows the table.
   *
   * @param key Granule number: node `value`'s key, not in the table.
   * @param value Node index (1 .. 2^25 - 1).
   */
  add(key: number, value: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#home(key);
    let d = 0;
    while (slots[i] !== 0) {
      i = (i + 1) & mask;
      d++;
    }
    this.#count++;
    slots[i] = this.#tag | (value << DIST_BITS) |
      (d < DIST_MASK ? d : DIST_MASK);
  }

  /**
   * Point a present key at another node (the tree moved it): its slot,
   * tag and distance stay.
   *
   * @param key Granule number, present; its old node still holds it.
   * @param to The new node index (1 .. 2^25 - 1), holding the same key.
   * @param f The tree's Float64 view.
   */
  rename(key: number, to: number, f: Float64Array): void {
    const i = this.#probe(key, f);
    if (i < 0) return;
    const slots = this.#slots;
    slots[i] = (to << DIST_BITS) | (slots[i]! & ~(NODE_MASK << DIST_BITS));
  }

  /**
   * Remove a key if present (backward-shift deletion, no tombstones).
   *
   * @param key Granule number.
   * @param f The tree's Float64 view (the node must still hold its key).
   */
  delete(key: number, f: Float64Array): void {
    let i = this.#probe(key, f);
    if (i < 0) return;
    const slots = this.#slots;
    const mask = this.#mask;
    this.#count--;
    // Pull later members of the probe run back over the hole: an entry at
    // j may move to hole i when its home is not after i, i.e. its distance
    // is at least j - i. Distances say so without reading any key.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = slots[j]!;
      if (e === 0) break;
      const d = this.#dist(e, j, f);
      const step = (j - i) & mask;
      if (d >= step) {
        const nd = d - step;
        slots[i] = (e & ~DIST_MASK) | (nd < DIST_MASK ? nd : DIST_MASK);
        i = j;
      }
    }
    slots[i] = 0;
    if (this.#count < this.#shrinkBelow) this.#shrink(f);
  }

  /**
   * Every entry, and whether each is reachable by {@linkcode IovaHash.get}
   * and sits at its recorded distance (O(capacity); for audits).
   *
   * @param f The tree's Float64 view.
   * @returns [key, value, reachable] triples.
   */
  entries(f: Float64Array): [number, number, boolean][] {
    const out: [number, number, boolean][] = [];
    const slots = this.#slots;
    for (let j = 0; j < slots.length; j++) {
      const e = slots[j]!;
      if (e === 0) continue;
      const v = (e >>> DIST_BITS) & NODE_MASK;
      const k = f[v << 3]!;
      const d = (j - this.#home(k)) & this.#mask;
      const recorded = e & DIST_MASK;
      const ok = recorded === (d < DIST_MASK ? d : DIST_MASK) &&
        (e & TAG_MASK) === this.#tag;
      out.push([k, v, ok && this.get(k, f) === v]);
    }
    return out;
  }

  /**
   * Rename every entry's node after the tree moved its nodes (keys, and so
   * slots, tags and distances, stay as they are). O(capacity).
   *
   * @param map Old node index -> new node index.
   */
  renumber(map: Int32Array): void {
    const slots = this.#slots;
    const keep = ~(NODE_MASK << DIST_BITS);
    for (let j = 0; j < slots.length; j++) {
      const e = slots[j]!;
      if (e === 0) continue;
      const v = map[(e >>> DIST_BITS) & NODE_MASK]!;
      slots[j] = (e & keep) | (v << DIST_BITS);
    }
  }

  /** Remove every entry. */
  clear(): void {
    this.#slots.fill(0);
    this.#count = 0;
  }

  #grow(f: Float64Array): void {
    const old = this.#slots;
    const cap = old.length * 2;
    // The only allocation, before any field changes.
    const slots = hostAlloc(
      () => new Int32Array(cap),
      `an IOVA index of ${cap} slots`,
    );
    this.#rehash(old, slots, f);
  }

  // The population fell under one entry in eight slots: rebuild the table
  // at four slots per entry (not below MIN_SLOTS), so that it shrinks after
  // a burst as it grew (amortised O(1): growth doubles at one in two).
  // When the host refuses the new table, keep this one and try again only
  // once the population halves again.
  #shrink(f: Float64Array): void {
    let cap = MIN_SLOTS;
    while (cap < this.#count * 4) cap *= 2;
    const fresh = tryHostAlloc(() => new Int32Array(cap));
    if (fresh === undefined) {
      this.#shrinkBelow >>>= 1;
      return;
    }
    this.#rehash(this.#slots, fresh, f);
  }

  // Install `fresh` (a power of two of slots, empty) and add every entry of
  // `old` to it.
  #rehash(old: Int32Array, fresh: Int32Array, f: Float64Array): void {
    const cap = fresh.length;
    this.#slots = fresh;
    this.#mask = cap - 1;
    this.#shift = Math.clz32(cap) + 1;
    this.#shrinkBelow = cap > MIN_SLOTS ? cap >>> 3 : 0;
    this.#count = 0;
    for (let j = 0; j < old.length; j++) {
      const e = old[j]!;
      if (e === 0) continue;
      const v = (e >>> DIST_BITS) & NODE_MASK;
      this.add(f[v << 3]!, v);
    }
  }
}
