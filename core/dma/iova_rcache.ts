/**
 * The per-size IOVA range cache ("rcache"): for each power-of-two size class,
 * a loaded and a previous magazine of freed allocations (one modelled CPU)
 * and a bounded depot of full magazines. Entries are tree node indices, so a
 * cache hit is a pop and a bounds check, never a tree walk.
 *
 * @module
 */

import { F_HI, type IovaTree } from "./iova_tree.ts";

/** Entries per magazine, as in the kernel (127 + a count fill 1 KiB there). */
export const IOVA_MAGAZINE_SIZE = 127;

class SizeClass {
  loaded: Int32Array = new Int32Array(IOVA_MAGAZINE_SIZE);
  nLoaded = 0;
  prev: Int32Array = new Int32Array(IOVA_MAGAZINE_SIZE);
  nPrev = 0;
  depot: Int32Array[] = [];
}

/** Magazines and depots for size classes 0 .. classes-1 (2^k granules). */
export class IovaRcache {
  readonly #classes: SizeClass[] = [];
  readonly #depotLimit: number;
  readonly #spare: Int32Array[] = [];
  #cached = 0;

  /**
   * @param classes Number of size classes (log2 of the largest cached size + 1).
   * @param depotLimit Full magazines the depot of each class may hold.
   */
  constructor(classes: number, depotLimit: number) {
    for (let k = 0; k < classes; k++) this.#classes.push(new SizeClass());
    this.#depotLimit = depotLimit;
  }

  /** Ranges currently held by the cache. */
  get cached(): number {
    return this.#cached;
  }

  /** Full magazines in all depots. */
  get depotMagazines(): number {
    let n = 0;
    for (const c of this.#classes) n += c.depot.length;
    return n;
  }

  /**
   * Take a cached allocation of class k whose footprint ends at or below
   * `limit`. Tries the loaded magazine (scanning it, so a low DMA mask still
   * finds low entries), then the previous one, then, when the loaded one is
   * empty, a full magazine from the depot.
   *
   * @param k Size class.
   * @param limit Exclusive footprint end in granules.
   * @param tree The tree whose nodes the entries name.
   * @returns A node index, or 0 on a miss.
   */
  get(k: number, limit: number, tree: IovaTree): number {
    const c = this.#classes[k]!;
    const f = tree.f;
    let n = c.nLoaded;
    if (n > 0) {
      const mag = c.loaded;
      const top = mag[n - 1]!;
      if (f[(top << 3) + F_HI]! <= limit) {
        c.nLoaded = n - 1;
        this.#cached--;
        return top;
      }
      const got = take(mag, n, limit, f);
      if (got !== 0) {
        c.nLoaded = n - 1;
        this.#cached--;
        return got;
      }
    }
    if (c.nPrev > 0) {
      const got = take(c.prev, c.nPrev, limit, f);
      if (got !== 0) {
        const mag = c.loaded;
        c.loaded = c.prev;
        c.nLoaded = c.nPrev - 1;
        c.prev = mag;
        c.nPrev = n;
        this.#cached--;
        return got;
      }
    }
    if (n === 0 && c.depot.length > 0) {
      const full = c.depot.pop()!;
      this.#spare.push(c.loaded);
      c.loaded = full;
      c.nLoaded = IOVA_MAGAZINE_SIZE;
      n = IOVA_MAGAZINE_SIZE;
      const got = take(full, n, limit, f);
      if (got !== 0) {
        c.nLoaded = n - 1;
        this.#cached--;
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
   * @returns False when every magazine and the depot are full (the caller
   * then frees the range into the tree).
   */
  put(k: number, node: number): boolean {
    const c = this.#classes[k]!;
    if (c.nLoaded === IOVA_MAGAZINE_SIZE) {
      if (c.nPrev < IOVA_MAGAZINE_SIZE) {
        const mag = c.loaded;
        c.loaded = c.prev;
        c.nLoaded = c.nPrev;
        c.prev = mag;
        c.nPrev = IOVA_MAGAZINE_SIZE;
      } else if (c.depot.length < this.#depotLimit) {
        c.depot.push(c.loaded);
        c.loaded = this.#spare.pop() ?? new Int32Array(IOVA_MAGAZINE_SIZE);
        c.nLoaded = 0;
      } else {
        return false;
      }
    }
    c.loaded[c.nLoaded++] = node;
    this.#cached++;
    return true;
  }

  /**
   * Empty every magazine and depot, handing each node to `release`.
   *
   * @param release Called once per cached node.
   */
  flush(release: (node: number) => void): void {
    for (const c of this.#classes) {
      for (let i = 0; i < c.nLoaded; i++) release(c.loaded[i]!);
      for (let i = 0; i < c.nPrev; i++) release(c.prev[i]!);
      for (const mag of c.depot) {
        for (let i = 0; i < IOVA_MAGAZINE_SIZE; i++) release(mag[i]!);
        this.#spare.push(mag);
      }
      c.nLoaded = 0;
      c.nPrev = 0;
      c.depot.length = 0;
    }
    this.#cached = 0;
  }
}

/**
 * Remove and return the topmost entry of mag[0..n) that fits `limit`, moving
 * the entry at n-1 into its slot; 0 when none fits. The caller shrinks n.
 */
function take(
  mag: Int32Array,
  n: number,
  limit: number,
  f: Float64Array,
): number {
  for (let i = n - 1; i >= 0; i--) {
    const node = mag[i]!;
    if (f[(node << 3) + F_HI]! <= limit) {
      mag[i] = mag[n - 1]!;
      return node;
    }
  }
  return 0;
}
