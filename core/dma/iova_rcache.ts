/**
 * The per-size IOVA range cache ("rcache"): for each power-of-two size class,
 * a loaded and a previous magazine of freed allocations (one modelled CPU)
 * and a bounded depot of full magazines. Entries are tree node indices, so a
 * cache hit is a pop and a bounds check, never a tree walk.
 *
 * The loaded and previous magazines of every class live in one Int32Array
 * (slot stride 128) and their fill counts in another, so the hit path reads
 * two typed arrays and no objects; swapping loaded and previous swaps two
 * offsets. Only depot traffic (once per 127 operations at most) copies.
 *
 * @module
 */

import { tryHostAlloc } from "./host_alloc.ts";
import * as T from "./iova_tree.ts";

// A module-local const folds to a literal in optimised code; an imported
// binding is re-read through its module cell on every use.
const F_HI = T.F_HI;

/** Entries per magazine, as in the kernel (127 + a count fill 1 KiB there). */
export const IOVA_MAGAZINE_SIZE = 127;
const MAG = 127;
/** log2 of the slot stride of a magazine in the pool (128 >= MAG). */
const MAG_SHIFT = 7;

/** Magazines and depots for size classes 0 .. classes-1 (2^k granules). */
export class IovaRcache {
  /** Loaded and previous magazines of all classes, 128 slots each. */
  readonly #pool: Int32Array;
  /** Per class: [2k] offset of the loaded magazine, [2k+1] of the previous one. */
  readonly #off: Int32Array;
  /** Per class: [2k] entries in the loaded magazine, [2k+1] in the previous one. */
  readonly #cnt: Int32Array;
  readonly #depots: Int32Array[][] = [];
  readonly #depotLimit: number;
  readonly #spare: Int32Array[] = [];

  /**
   * @param classes Number of size classes (log2 of the largest cached size + 1).
   * @param depotLimit Full magazines the depot of each class may hold.
   */
  constructor(classes: number, depotLimit: number) {
    this.#pool = new Int32Array((classes * 2) << MAG_SHIFT);
    this.#off = new Int32Array(classes * 2);
    this.#cnt = new Int32Array(classes * 2);
    for (let i = 0; i < classes * 2; i++) this.#off[i] = i << MAG_SHIFT;
    for (let k = 0; k < classes; k++) this.#depots.push([]);
    this.#depotLimit = depotLimit;
  }

  /** Ranges currently held by the cache (O(classes)). */
  get cached(): number {
    let n = 0;
    const cnt = this.#cnt;
    for (let i = 0; i < cnt.length; i++) n += cnt[i]!;
    for (const d of this.#depots) n += d.length * MAG;
    return n;
  }

  /** Granules currently held by the cache (O(classes)). */
  get cachedGranules(): number {
    let n = 0;
    const cnt = this.#cnt;
    for (let k = 0; k < this.#depots.length; k++) {
      const held = cnt[2 * k]! + cnt[2 * k + 1]! +
        this.#depots[k]!.length * MAG;
      n += held * 2 ** k;
    }
    return n;
  }

  /** Full magazines in all depots. */
  get depotMagazines(): number {
    let n = 0;
    for (const d of this.#depots) n += d.length;
    return n;
  }

  /**
   * Take a cached allocation of class k whose footprint ends at or below
   * `limit`. Tries the top of the loaded magazine, then (out of line) the
   * rest of it, the previous one, and when the loaded one is empty, a full
   * magazine from the depot.
   *
   * @param k Size class.
   * @param limit Exclusive footprint end in granules.
   * @param f The float view of the tree whose nodes the entries name.
   * @returns A node index, or 0 on a miss.
   */
  get(k: number, limit: number, f: Float64Array): number {
    const node = this.pop(k, limit, f);
    return node !== 0 ? node : this.#getSlow(k, limit, f);
  }

  /**
   * The cheap part of {@linkcode IovaRcache.get}: take the top of class k's
   * loaded magazine if it fits `limit`.
   *
   * @param k Size class.
   * @param limit Exclusive footprint end in granules.
   * @param f The float view of the tree whose nodes the entries name.
   * @returns A node index, or 0 (then `get` may still find one).
   */
  pop(k: number, limit: number, f: Float64Array): number {
    const i = k << 1;
    const n = this.#cnt[i]!;
    if (n > 0) {
      const node = this.#pool[this.#off[i]! + n - 1]!;
      if (f[(node << 3) + F_HI]! <= limit) {
        this.#cnt[i] = n - 1;
        return node;
      }
    }
    return 0;
  }

  #getSlow(k: number, limit: number, f: Float64Array): number {
    const pool = this.#pool;
    const off = this.#off;
    const cnt = this.#cnt;
    const i = k << 1;
    const n = cnt[i]!;
    if (n > 0) {
      // Scan the whole magazine so a low DMA mask still finds low entries.
      const got = take(pool, off[i]!, n, limit, f);
      if (got !== 0) {
        cnt[i] = n - 1;
        return got;
      }
    }
    const np = cnt[i + 1]!;
    if (np > 0) {
      const got = take(pool, off[i + 1]!, np, limit, f);
      if (got !== 0) {
        // The previous magazine becomes the loaded one.
        const o = off[i]!;
        off[i] = off[i + 1]!;
        off[i + 1] = o;
        cnt[i] = np - 1;
        cnt[i + 1] = n;
        return got;
      }
    }
    const depot = this.#depots[k]!;
    if (n === 0 && depot.length > 0) {
      const full = depot.pop()!;
      const o = off[i]!;
      for (let j = 0; j < MAG; j++) pool[o + j] = full[j]!;
      this.#spare.push(full);
      cnt[i] = MAG;
      const got = take(pool, o, MAG, limit, f);
      if (got !== 0) {
        cnt[i] = MAG - 1;
        return got;
      }
    }
    return 0;
  }

  /**
   * Park a freed allocation of class k.
   *
   * @param k Size class.
   * @param node Tree node index.
   * @returns False when every magazine and the depot are full, or the host
   * has no memory for a new magazine (the caller then frees the range into
   * the tree).
   */
  put(k: number, node: number): boolean {
    const i = k << 1;
    const n = this.#cnt[i]!;
    if (n < MAG) {
      this.#pool[this.#off[i]! + n] = node;
      this.#cnt[i] = n + 1;
      return true;
    }
    return this.#putSlow(k, node);
  }

  #putSlow(k: number, node: number): boolean {
    const pool = this.#pool;
    const off = this.#off;
    const cnt = this.#cnt;
    const i = k << 1;
    // The loaded magazine is full.
    if (cnt[i + 1]! < MAG) {
      // Swap: the full one becomes previous, the previous one is loaded.
      const o = off[i]!;
      off[i] = off[i + 1]!;
      off[i + 1] = o;
      cnt[i] = cnt[i + 1]!;
      cnt[i + 1] = MAG;
    } else {
      const depot = this.#depots[k]!;
      if (depot.length >= this.#depotLimit) return false;
      const mag = this.#spare.pop() ??
        tryHostAlloc(() => new Int32Array(MAG));
      // No host memory for a magazine: the caller frees into the tree.
      if (mag === undefined) return false;
      const o = off[i]!;
      for (let j = 0; j < MAG; j++) mag[j] = pool[o + j]!;
      depot.push(mag);
      cnt[i] = 0;
    }
    pool[off[i]! + cnt[i]!] = node;
    cnt[i] = cnt[i]! + 1;
    return true;
  }

  /**
   * Rename every cached node after the tree moved its nodes.
   *
   * @param map Old node index -> new node index.
   */
  renumber(map: Int32Array): void {
    const pool = this.#pool;
    const off = this.#off;
    const cnt = this.#cnt;
    for (let i = 0; i < cnt.length; i++) {
      const o = off[i]!;
      for (let j = o; j < o + cnt[i]!; j++) pool[j] = map[pool[j]!]!;
    }
    for (const depot of this.#depots) {
      for (const mag of depot) {
        for (let j = 0; j < MAG; j++) mag[j] = map[mag[j]!]!;
      }
    }
  }

  /**
   * Empty every magazine and depot, handing each node to `release`.
   *
   * @param release Called once per cached node.
   */
  flush(release: (node: number) => void): void {
    const pool = this.#pool;
    const off = this.#off;
    const cnt = this.#cnt;
    for (let i = 0; i < cnt.length; i++) {
      const o = off[i]!;
      for (let j = 0; j < cnt[i]!; j++) release(pool[o + j]!);
      cnt[i] = 0;
    }
    for (const depot of this.#depots) {
      for (const mag of depot) {
        for (let j = 0; j < MAG; j++) release(mag[j]!);
        this.#spare.push(mag);
      }
      depot.length = 0;
    }
  }
}

/**
 * Remove and return the topmost entry of pool[o .. o+n) that fits `limit`,
 * moving the entry at o+n-1 into its slot; 0 when none fits. The caller
 * shrinks the count.
 */
function take(
  pool: Int32Array,
  o: number,
  n: number,
  limit: number,
  f: Float64Array,
): number {
  for (let j = o + n - 1; j >= o; j--) {
    const node = pool[j]!;
    if (f[(node << 3) + F_HI]! <= limit) {
      pool[j] = pool[o + n - 1]!;
      return node;
    }
  }
  return 0;
}
