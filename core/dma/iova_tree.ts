/**
 * The ordered structure behind the IOVA allocator: an AVL tree of busy
 * ranges (allocations, cached allocations, reservations, the top anchor),
 * keyed by first granule. Each node knows the free gap just below it, and is
 * augmented with, for its subtree, the largest gap and the largest usable
 * length of a gap from its first 2^k-aligned granule, for k = 1..11. "The
 * highest gap below a limit that fits a size at an alignment" is then found
 * by one descent, in O(log n), exactly (for alignments up to 2^11 granules).
 *
 * Internal to core/dma: the allocator reaches into the typed arrays directly
 * on its hot paths, so the fields are plain and documented here.
 *
 * @module
 */

/** Node is a live allocation. */
export const KIND_LIVE = 1;
/** Node is a freed allocation parked in the per-size cache (still busy here). */
export const KIND_CACHED = 2;
/** Node is a reserved range that is never handed out. */
export const KIND_RESERVED = 3;
/** Node is the zero-length anchor above the top of the aperture. */
export const KIND_ANCHOR = 4;

// One node = 64 bytes (one cache line), seen through four views:
// Float64 slots (stride 8):
/** First granule of the node's footprint (its key). */
export const F_LO = 0;
/** Exclusive last granule of the footprint (allocation plus its guard). */
export const F_HI = 1;
/** Free granules between the previous node's footprint end and F_LO. */
export const F_GAP = 2;
/** Largest F_GAP in the subtree rooted at this node. */
export const F_MAX = 3;
// Int32 slots (stride 16):
/** Left child index (0 = none). */
export const I_LEFT = 8;
/** Right child index (0 = none). */
export const I_RIGHT = 9;
/** Parent index (0 = root). */
const I_PARENT = 10;
// d_k, k = 1..ALIGN_ORDERS: for the subtree, max over gaps of (gap end -
// first 2^k-aligned granule in it) equals F_MAX - d_k, and 0 <= d_k < 2^k.
// d_1..d_8 are bytes (Uint8 slot B_D8 + k, bytes 44..51), d_9..d_11 are
// 16-bit (Uint16 slot U_D16 + k, bytes 52..57).
const B_D8 = 43;
const U_D16 = 17;
/** Alignment orders (log2 granules) the augmentation answers exactly. */
export const ALIGN_ORDERS = 11;
// Uint8 slots (stride 64):
/** AVL height (leaf = 1, NIL = 0). */
const B_HEIGHT = 62;
/** One of the KIND_* constants. */
export const B_KIND = 63;

const NODE_BYTES = 64;
/** Enough for any AVL tree that fits in memory (height <= 1.44 log2 n + 2). */
const MAX_PATH = 96;

/**
 * AVL tree of busy ranges over a granule-indexed address space, stored in one
 * ArrayBuffer. Node 0 is the NIL sentinel (height 0, max gap -1). Granule
 * numbers are doubles so the whole 2^53 range is exact.
 */
export class IovaTree {
  /** Float64 view: node i's fields start at `i << 3`. */
  f: Float64Array;
  /** Int32 view of the same bytes: node i's fields start at `i << 4`. */
  w: Int32Array;
  /** Uint16 view: node i's fields start at `i << 5`. */
  h: Uint16Array;
  /** Uint8 view: node i's fields start at `i << 6`. */
  b: Uint8Array;
  /** Root node index (0 when empty). */
  root = 0;
  /** Number of nodes in the tree (anchor included). */
  size = 0;
  /** The granule where the lowest gap starts (the aperture start). */
  readonly base: number;
  /** Address chosen by the last successful {@linkcode IovaTree.findFit}. */
  foundAddr = 0;
  /** Searches that needed the bounded fallback (alignments above 2^11). */
  fallbacks = 0;
  /**
   * Alignment orders currently maintained (d_1..d_orders); raised on the
   * first request that needs more, so workloads of small sizes pay for few.
   */
  #orders = 0;
  #capacity: number;
  #freeHead = 0;
  #nextUnused = 1;
  readonly #stack = new Int32Array(MAX_PATH * 4 + 8);
  readonly #scratch = new Uint16Array(ALIGN_ORDERS + 1);

  /**
   * @param base First allocatable granule (gaps are measured from here).
   * @param capacity Initial number of node slots.
   */
  constructor(base: number, capacity = 1024) {
    this.base = base;
    this.#capacity = Math.max(16, capacity);
    const buf = new ArrayBuffer(this.#capacity * NODE_BYTES);
    this.f = new Float64Array(buf);
    this.w = new Int32Array(buf);
    this.h = new Uint16Array(buf);
    this.b = new Uint8Array(buf);
    this.f[F_MAX] = -1; // NIL never satisfies a gap search
  }

  /** Node slots currently reserved in memory (for statistics). */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * Take a node slot and fill its range; it is not linked into the tree yet.
   *
   * @param lo First granule.
   * @param hi Exclusive end granule.
   * @param kind A KIND_* constant.
   * @returns The node index (>= 1).
   */
  newNode(lo: number, hi: number, kind: number): number {
    let i = this.#freeHead;
    if (i !== 0) {
      this.#freeHead = this.w[(i << 4) + I_LEFT]!;
    } else {
      if (this.#nextUnused === this.#capacity) this.#grow();
      i = this.#nextUnused++;
    }
    const f = this.f;
    const fb = i << 3;
    f[fb + F_LO] = lo;
    f[fb + F_HI] = hi;
    const w = this.w;
    w[(i << 4) + I_LEFT] = 0;
    w[(i << 4) + I_RIGHT] = 0;
    this.b[(i << 6) + B_KIND] = kind;
    return i;
  }

  /**
   * Return an unlinked node slot to the free list.
   *
   * @param i Node index, already removed from the tree.
   */
  releaseNode(i: number): void {
    this.b[(i << 6) + B_KIND] = 0;
    this.w[(i << 4) + I_LEFT] = this.#freeHead;
    this.#freeHead = i;
  }

  #grow(): void {
    // 1.5x keeps the peak (old + new buffer during the copy) modest at 1M nodes.
    const cap = Math.min(
      Math.ceil(this.#capacity * 1.5),
      Math.floor(0x7fffffff / 64),
    );
    if (cap <= this.#capacity) throw new RangeError("IOVA tree is full");
    const buf = new ArrayBuffer(cap * NODE_BYTES);
    new Uint8Array(buf).set(this.b);
    this.f = new Float64Array(buf);
    this.w = new Int32Array(buf);
    this.h = new Uint16Array(buf);
    this.b = new Uint8Array(buf);
    this.#capacity = cap;
  }

  /** Recompute height and the subtree augmentation of node i from its children. */
  #update(i: number): void {
    const w = this.w;
    const f = this.f;
    const b = this.b;
    const l = w[(i << 4) + I_LEFT]!;
    const r = w[(i << 4) + I_RIGHT]!;
    const hl = b[(l << 6) + B_HEIGHT]!;
    const hr = b[(r << 6) + B_HEIGHT]!;
    b[(i << 6) + B_HEIGHT] = (hl > hr ? hl : hr) + 1;
    const fb = i << 3;
    const gap = f[fb + F_GAP]!;
    const ml = f[(l << 3) + F_MAX]!;
    const mr = f[(r << 3) + F_MAX]!;
    let m = gap;
    if (ml > m) m = ml;
    if (mr > m) m = mr;
    f[fb + F_MAX] = m;
    const orders = this.#orders;
    if (orders === 0) return;
    // d_k = m - max(own u_k, left maxU_k, right maxU_k)
    //     = min(m - gap + r_k, m - ml + dl_k, m - mr + dr_k),
    // where r_k = (-gap start) mod 2^k. The minimum is below 2^k <= 2048,
    // so clamping each base term at 0xffff changes nothing and keeps the
    // loop in int32 arithmetic.
    const a0 = m - gap < 0xffff ? (m - gap) | 0 : 0xffff;
    const a1 = m - ml < 0xffff ? (m - ml) | 0 : 0xffff;
    const a2 = m - mr < 0xffff ? (m - mr) | 0 : 0xffff;
    // Only the low bits of the gap start matter, and `| 0` keeps exactly
    // those (ToInt32 is modulo 2^32; `%` on doubles would be an x87 fprem).
    const neg = -(f[fb + F_LO]! - gap) | 0;
    const small = orders < 8 ? orders : 8;
    const ib = (i << 6) + B_D8;
    const lb = (l << 6) + B_D8;
    const rb = (r << 6) + B_D8;
    for (let k = 1; k <= small; k++) {
      let d = a0 + (neg & ((1 << k) - 1));
      const dl = a1 + b[lb + k]!;
      const dr = a2 + b[rb + k]!;
      if (dl < d) d = dl;
      if (dr < d) d = dr;
      b[ib + k] = d;
    }
    if (orders > 8) {
      const h = this.h;
      const ih = (i << 5) + U_D16;
      const lh = (l << 5) + U_D16;
      const rh = (r << 5) + U_D16;
      for (let k = 9; k <= orders; k++) {
        let d = a0 + (neg & ((1 << k) - 1));
        const dl = a1 + h[lh + k]!;
        const dr = a2 + h[rh + k]!;
        if (dl < d) d = dl;
        if (dr < d) d = dr;
        h[ih + k] = d;
      }
    }
  }

  /** Point p's child link that held `old` (or the root) at `neu`. */
  #relink(p: number, old: number, neu: number): void {
    if (p === 0) this.root = neu;
    else if (this.w[(p << 4) + I_LEFT] === old) this.w[(p << 4) + I_LEFT] = neu;
    else this.w[(p << 4) + I_RIGHT] = neu;
  }

  #rotateRight(y: number): number {
    const w = this.w;
    const x = w[(y << 4) + I_LEFT]!;
    const p = w[(y << 4) + I_PARENT]!;
    const xr = w[(x << 4) + I_RIGHT]!;
    w[(y << 4) + I_LEFT] = xr;
    if (xr !== 0) w[(xr << 4) + I_PARENT] = y;
    w[(x << 4) + I_RIGHT] = y;
    w[(y << 4) + I_PARENT] = x;
    w[(x << 4) + I_PARENT] = p;
    this.#relink(p, y, x);
    this.#update(y);
    this.#update(x);
    return x;
  }

  #rotateLeft(x: number): number {
    const w = this.w;
    const y = w[(x << 4) + I_RIGHT]!;
    const p = w[(x << 4) + I_PARENT]!;
    const yl = w[(y << 4) + I_LEFT]!;
    w[(x << 4) + I_RIGHT] = yl;
    if (yl !== 0) w[(yl << 4) + I_PARENT] = x;
    w[(y << 4) + I_LEFT] = x;
    w[(x << 4) + I_PARENT] = y;
    w[(y << 4) + I_PARENT] = p;
    this.#relink(p, x, y);
    this.#update(x);
    this.#update(y);
    return y;
  }

  /** Update node i and restore the AVL balance there; returns the subtree root. */
  #balance(i: number): number {
    const w = this.w;
    const b = this.b;
    const l = w[(i << 4) + I_LEFT]!;
    const r = w[(i << 4) + I_RIGHT]!;
    const hl = b[(l << 6) + B_HEIGHT]!;
    const hr = b[(r << 6) + B_HEIGHT]!;
    if (hl > hr + 1) {
      if (
        b[(w[(l << 4) + I_LEFT]! << 6) + B_HEIGHT]! <
          b[(w[(l << 4) + I_RIGHT]! << 6) + B_HEIGHT]!
      ) {
        this.#rotateLeft(l);
      }
      return this.#rotateRight(i);
    }
    if (hr > hl + 1) {
      if (
        b[(w[(r << 4) + I_RIGHT]! << 6) + B_HEIGHT]! <
          b[(w[(r << 4) + I_LEFT]! << 6) + B_HEIGHT]!
      ) {
        this.#rotateRight(r);
      }
      return this.#rotateLeft(i);
    }
    this.#update(i);
    return i;
  }

  /**
   * Rebalance and re-summarise from `node` up to the root. Nodes up to and
   * including `last` (an ancestor-or-self of `node` whose subtree holds
   * every direct change) are always redone; from `last` on, once a
   * subtree's summary (height, max gap, aligned-gap deltas) comes out
   * unchanged, no ancestor can change either, so the walk stops: most
   * frees and allocations touch only a few nodes near the bottom.
   *
   * `merged` (0 for none) is a node whose gap grew by swallowing a removed
   * node and its gap. Above `last`, once a height comes out unchanged, no
   * rotation can follow and each ancestor's subtree lost only gaps that lie
   * inside the merged one, so its summary is the old one maxed with the
   * merged gap's: {@linkcode IovaTree.#mergeUp} finishes without reading
   * the siblings, which at a million ranges are mostly cache misses.
   */
  #fixUp(node: number, last: number, merged: number): void {
    const w = this.w;
    const f = this.f;
    const b = this.b;
    const h = this.h;
    const orders = this.#orders;
    const small = orders < 8 ? orders : 8;
    const old = this.#scratch;
    let armed = false;
    while (node !== 0) {
      const parent = w[(node << 4) + I_PARENT]!;
      if (node === last) armed = true;
      let oldH = 0;
      let oldM = 0;
      if (armed) {
        oldH = b[(node << 6) + B_HEIGHT]!;
        oldM = f[(node << 3) + F_MAX]!;
        for (let k = 1; k <= small; k++) old[k] = b[(node << 6) + B_D8 + k]!;
        for (let k = 9; k <= orders; k++) old[k] = h[(node << 5) + U_D16 + k]!;
      }
      const sub = this.#balance(node);
      if (armed && b[(sub << 6) + B_HEIGHT] === oldH) {
        if (f[(sub << 3) + F_MAX] === oldM) {
          let same = true;
          for (let k = 1; k <= small && same; k++) {
            same = b[(sub << 6) + B_D8 + k] === old[k];
          }
          for (let k = 9; k <= orders && same; k++) {
            same = h[(sub << 5) + U_D16 + k] === old[k];
          }
          if (same) return;
        }
        if (merged !== 0) {
          this.#mergeUp(parent, merged);
          return;
        }
      }
      node = parent;
    }
  }

  /**
   * From node a up: max each summary with node c's gap (see
   * {@linkcode IovaTree.#fixUp}); stops at the first ancestor it leaves
   * unchanged. Reads and writes only the ancestors themselves.
   */
  #mergeUp(a: number, c: number): void {
    const w = this.w;
    const f = this.f;
    const b = this.b;
    const h = this.h;
    const orders = this.#orders;
    const small = orders < 8 ? orders : 8;
    const g = f[(c << 3) + F_GAP]!;
    // The merged gap's usable length from its first 2^k-aligned granule is
    // g - ((-start) mod 2^k); `| 0` keeps the low bits exactly (see #update).
    const neg = -(f[(c << 3) + F_LO]! - g) | 0;
    while (a !== 0) {
      const ab = a << 3;
      const m = f[ab + F_MAX]!;
      const m2 = g > m ? g : m;
      let changed = m2 !== m;
      // d_k = max gap - max usable length; both may grow.
      const ib = (a << 6) + B_D8;
      for (let k = 1; k <= small; k++) {
        const u = g - (neg & ((1 << k) - 1));
        const was = m - b[ib + k]!;
        if (u > was) {
          b[ib + k] = m2 - u;
          changed = true;
        } else if (m2 !== m) b[ib + k] = m2 - was;
      }
      if (orders > 8) {
        const ih = (a << 5) + U_D16;
        for (let k = 9; k <= orders; k++) {
          const u = g - (neg & ((1 << k) - 1));
          const was = m - h[ih + k]!;
          if (u > was) {
            h[ih + k] = m2 - u;
            changed = true;
          } else if (m2 !== m) h[ih + k] = m2 - was;
        }
      }
      if (!changed) return;
      f[ab + F_MAX] = m2;
      a = w[(a << 4) + I_PARENT]!;
    }
  }

  /**
   * Maintain alignment orders up to k from now on, recomputing every node
   * once (O(n); happens at most ALIGN_ORDERS times per tree).
   */
  #raiseOrders(k: number): void {
    this.#orders = k;
    const order: number[] = [];
    const stack: number[] = this.root === 0 ? [] : [this.root];
    while (stack.length > 0) {
      const n = stack.pop()!;
      order.push(n);
      const l = this.w[(n << 4) + I_LEFT]!;
      const r = this.w[(n << 4) + I_RIGHT]!;
      if (l !== 0) stack.push(l);
      if (r !== 0) stack.push(r);
    }
    // Reverse pre-order visits children before their parent.
    for (let i = order.length - 1; i >= 0; i--) this.#update(order[i]!);
  }

  /**
   * Link node i into the tree by its F_LO (descending from the root),
   * computing its gap and shrinking the gap of its successor. The caller
   * guarantees no overlap.
   *
   * @param i A node from {@linkcode IovaTree.newNode}.
   */
  insert(i: number): void {
    const f = this.f;
    const w = this.w;
    const key = f[(i << 3) + F_LO]!;
    let cur = this.root;
    let parent = 0;
    let pred = 0;
    let succ = 0;
    while (cur !== 0) {
      parent = cur;
      if (key < f[(cur << 3) + F_LO]!) {
        succ = cur;
        cur = w[(cur << 4) + I_LEFT]!;
      } else {
        pred = cur;
        cur = w[(cur << 4) + I_RIGHT]!;
      }
    }
    f[(i << 3) + F_GAP] = key -
      (pred === 0 ? this.base : f[(pred << 3) + F_HI]!);
    if (succ !== 0) {
      f[(succ << 3) + F_GAP] = f[(succ << 3) + F_LO]! - f[(i << 3) + F_HI]!;
    }
    this.#attach(i, parent, succ === parent);
    this.#fixUp(parent, succ !== 0 ? succ : parent, 0);
  }

  /**
   * Link node i as the immediate predecessor of node c, inside the gap
   * below c (which the caller found with {@linkcode IovaTree.findFit}): no
   * descent from the root is needed.
   *
   * @param i A node from {@linkcode IovaTree.newNode}, inside c's gap.
   * @param c The node whose gap it occupies.
   */
  insertBefore(i: number, c: number): void {
    const f = this.f;
    const w = this.w;
    const cb = c << 3;
    const gapStart = f[cb + F_LO]! - f[cb + F_GAP]!;
    f[(i << 3) + F_GAP] = f[(i << 3) + F_LO]! - gapStart;
    f[cb + F_GAP] = f[cb + F_LO]! - f[(i << 3) + F_HI]!;
    let parent = w[(c << 4) + I_LEFT]!;
    if (parent === 0) {
      this.#attach(i, c, true);
      this.#fixUp(c, c, 0);
      return;
    }
    let r = w[(parent << 4) + I_RIGHT]!;
    while (r !== 0) {
      parent = r;
      r = w[(parent << 4) + I_RIGHT]!;
    }
    this.#attach(i, parent, false);
    this.#fixUp(parent, c, 0);
  }

  /** Make leaf i a child of parent (or the root when parent is 0). */
  #attach(i: number, parent: number, left: boolean): void {
    const w = this.w;
    w[(i << 4) + I_LEFT] = 0;
    w[(i << 4) + I_RIGHT] = 0;
    w[(i << 4) + I_PARENT] = parent;
    this.#update(i);
    if (parent === 0) this.root = i;
    else w[(parent << 4) + (left ? I_LEFT : I_RIGHT)] = i;
    this.size++;
  }

  /**
   * Unlink node i (which must be in the tree and not be the rightmost); its
   * span and gap join the gap of its successor. Works upward from i, so a
   * free touches only the nodes near it. The slot is not released.
   *
   * @param i Node index.
   */
  remove(i: number): void {
    const f = this.f;
    const w = this.w;
    const span = f[(i << 3) + F_GAP]! + f[(i << 3) + F_HI]! -
      f[(i << 3) + F_LO]!;
    const l = w[(i << 4) + I_LEFT]!;
    const r = w[(i << 4) + I_RIGHT]!;
    const p = w[(i << 4) + I_PARENT]!;
    this.size--;
    if (r === 0) {
      // The successor is the nearest ancestor reached from a left child.
      let cur = i;
      let succ = p;
      while (succ !== 0 && w[(succ << 4) + I_RIGHT] === cur) {
        cur = succ;
        succ = w[(succ << 4) + I_PARENT]!;
      }
      if (succ === 0) throw new Error("IovaTree.remove: no successor");
      f[(succ << 3) + F_GAP]! += span;
      this.#relink(p, i, l);
      if (l !== 0) w[(l << 4) + I_PARENT] = p;
      this.#fixUp(p, succ, succ);
      return;
    }
    // The successor is the leftmost node of the right subtree: it takes
    // i's place (relinked, never copied: magazines and the index hold node
    // numbers).
    let y = r;
    let yl = w[(y << 4) + I_LEFT]!;
    while (yl !== 0) {
      y = yl;
      yl = w[(y << 4) + I_LEFT]!;
    }
    f[(y << 3) + F_GAP]! += span;
    let start = y;
    if (y !== r) {
      const yp = w[(y << 4) + I_PARENT]!;
      const yr = w[(y << 4) + I_RIGHT]!;
      w[(yp << 4) + I_LEFT] = yr;
      if (yr !== 0) w[(yr << 4) + I_PARENT] = yp;
      w[(y << 4) + I_RIGHT] = r;
      w[(r << 4) + I_PARENT] = y;
      start = yp;
    }
    w[(y << 4) + I_LEFT] = l;
    if (l !== 0) w[(l << 4) + I_PARENT] = y;
    w[(y << 4) + I_PARENT] = p;
    this.#relink(p, i, y);
    this.#fixUp(start, p !== 0 ? p : y, y);
  }

  /**
   * The node with the largest F_LO <= key, or 0.
   *
   * @param key A granule number.
   * @returns Node index or 0.
   */
  floor(key: number): number {
    const f = this.f;
    const w = this.w;
    let cur = this.root;
    let best = 0;
    while (cur !== 0) {
      if (f[(cur << 3) + F_LO]! <= key) {
        best = cur;
        cur = w[(cur << 4) + I_RIGHT]!;
      } else {
        cur = w[(cur << 4) + I_LEFT]!;
      }
    }
    return best;
  }

  /** Largest usable length from a 2^k-aligned start over subtree x. */
  #maxU(x: number, k: number): number {
    const m = this.f[(x << 3) + F_MAX]!;
    if (k === 0) return m;
    return m -
      (k <= 8 ? this.b[(x << 6) + B_D8 + k]! : this.h[(x << 5) + U_D16 + k]!);
  }

  /**
   * Find the highest placement of a footprint of `size` granules whose start
   * is a multiple of `align`, inside a free gap, ending at or below `limit`.
   * Exact for alignments up to 2^11 granules. Above that the augmentation
   * only bounds the answer: after `probes` gaps that might fit but do not,
   * the search settles for the highest gap that surely fits (a fit, maybe
   * not the highest), and if that finds nothing it repeats the search
   * without a probe bound, so a fit is never missed.
   *
   * @param size Footprint in granules (>= 1).
   * @param align Power-of-two alignment in granules.
   * @param limit Exclusive highest footprint end, in granules.
   * @param probes Failed candidates examined before falling back.
   * @returns The node below whose gap the fit lies (the new node's
   * successor), or 0 when nothing fits. The start is left in `foundAddr`.
   */
  findFit(size: number, align: number, limit: number, probes: number): number {
    // Math.log2 and `2 **` are libm calls; alignments above 2^30 are rare.
    const order = align <= 0x40000000
      ? 31 - Math.clz32(align)
      : Math.round(Math.log2(align));
    const k = order < ALIGN_ORDERS ? order : ALIGN_ORDERS;
    if (k > this.#orders) this.#raiseOrders(k);
    // Subtrees with maxU_k >= size may hold a fit; >= sure certainly do.
    const sure = size + align - (1 << k);
    const found = this.#search(size, align, limit, k, sure, probes);
    if (found >= 0) return found;
    // -1: the bounded fallback failed; only an unbounded search is certain.
    return Math.max(0, this.#search(size, align, limit, k, sure, Infinity));
  }

  /** >0 node found; 0 none; -1 none after the bounded fallback. */
  #search(
    size: number,
    align: number,
    limit: number,
    k: number,
    sure: number,
    probes: number,
  ): number {
    const f = this.f;
    const w = this.w;
    const stack = this.#stack;
    let sp = 0;
    // Descend by key: nodes at or below the limit are candidates, pushed so
    // that the rightmost pops first; the first node above the limit has the
    // one gap that the limit cuts.
    let cur = this.root;
    let cut = 0;
    while (cur !== 0) {
      const fb = cur << 3;
      if (f[fb + F_LO]! <= limit) {
        const l = w[(cur << 4) + I_LEFT]!;
        if (this.#maxU(l, k) >= size) stack[sp++] = l;
        if (this.#fits(cur, size, align, limit)) stack[sp++] = -cur;
        cur = w[(cur << 4) + I_RIGHT]!;
      } else {
        cut = cur;
        cur = w[(cur << 4) + I_LEFT]!;
      }
    }
    if (cut !== 0 && this.#fits(cut, size, align, limit)) return cut;
    // Exact case (sure === size): every entry holds a fit, the first popped
    // is the highest, and reaching it is one descent.
    let threshold = size;
    let left = probes;
    while (sp > 0) {
      const e = stack[--sp]!;
      if (e < 0) {
        // Node entries were pushed only when they fit; recompute foundAddr.
        this.#fits(-e, size, align, limit);
        return -e;
      }
      if (this.#maxU(e, k) < threshold) continue;
      const l = w[(e << 4) + I_LEFT]!;
      const r = w[(e << 4) + I_RIGHT]!;
      const before = sp;
      if (this.#maxU(l, k) >= threshold) stack[sp++] = l;
      if (this.#fits(e, size, align, limit)) stack[sp++] = -e;
      if (this.#maxU(r, k) >= threshold) stack[sp++] = r;
      if (sp === before && sure > size && --left < 0 && threshold === size) {
        // This subtree promised a fit and held none (alignment above what
        // the augmentation tracks): stop probing, take a sure gap.
        threshold = sure;
        this.fallbacks++;
      }
    }
    return threshold === size ? 0 : -1;
  }

  /** Whether node n's gap (cut at limit) fits; sets foundAddr when it does. */
  #fits(n: number, size: number, align: number, limit: number): boolean {
    const f = this.f;
    const fb = n << 3;
    const lo = f[fb + F_LO]!;
    const p = lo - f[fb + F_GAP]!;
    const q = lo < limit ? lo : limit;
    if (q - p < size) return false;
    const a = Math.floor((q - size) / align) * align;
    if (a < p) return false;
    this.foundAddr = a;
    return true;
  }

  /**
   * Largest gap in granules, with `topSlack` granules taken off the gap
   * below the anchor (the rightmost node), whose top lies past the aperture.
   *
   * @param topSlack Granules of the anchor gap that are outside the aperture.
   * @returns The largest free run in granules.
   */
  largestGap(topSlack: number): number {
    const f = this.f;
    const w = this.w;
    let best = 0;
    let cur = this.root;
    while (cur !== 0) {
      const lm = f[(w[(cur << 4) + I_LEFT]! << 3) + F_MAX]!;
      if (lm > best) best = lm;
      const r = w[(cur << 4) + I_RIGHT]!;
      const g = f[(cur << 3) + F_GAP]! - (r === 0 ? topSlack : 0);
      if (g > best) best = g;
      cur = r;
    }
    return best;
  }

  /**
   * In-order list of node indices (for audits and flushes; O(n)).
   *
   * @returns Node indices by ascending F_LO.
   */
  nodes(): number[] {
    const out: number[] = [];
    const stack: number[] = [];
    let cur = this.root;
    while (cur !== 0 || stack.length > 0) {
      while (cur !== 0) {
        stack.push(cur);
        cur = this.w[(cur << 4) + I_LEFT]!;
      }
      const n = stack.pop()!;
      out.push(n);
      cur = this.w[(n << 4) + I_RIGHT]!;
    }
    return out;
  }

  /**
   * Check every structural invariant (order, no overlap, gaps, augmented
   * values, AVL heights and balance). O(n); for tests and debugging.
   *
   * @returns Descriptions of the broken invariants; empty when healthy.
   */
  audit(): string[] {
    const problems: string[] = [];
    const f = this.f;
    const w = this.w;
    const list = this.nodes();
    if (list.length !== this.size) {
      problems.push(`tree holds ${list.length} nodes, size says ${this.size}`);
    }
    let prevHi = this.base;
    for (const n of list) {
      const lo = f[(n << 3) + F_LO]!;
      const hi = f[(n << 3) + F_HI]!;
      if (lo < prevHi) problems.push(`node at ${lo} overlaps end ${prevHi}`);
      if (hi < lo) problems.push(`node at ${lo} ends before it starts`);
      if (f[(n << 3) + F_GAP] !== lo - prevHi) {
        problems.push(
          `node at ${lo} gap ${f[(n << 3) + F_GAP]} != ${lo - prevHi}`,
        );
      }
      prevHi = hi;
    }
    // Recompute every augmented value the slow way.
    const check = (n: number, parent: number): { h: number; u: number[] } => {
      if (n === 0) return { h: 0, u: new Array(ALIGN_ORDERS + 1).fill(-1) };
      if (w[(n << 4) + I_PARENT] !== parent) {
        problems.push(`node ${n} has a stale parent link`);
      }
      const L = check(w[(n << 4) + I_LEFT]!, n);
      const R = check(w[(n << 4) + I_RIGHT]!, n);
      const h = Math.max(L.h, R.h) + 1;
      const lo = f[(n << 3) + F_LO]!;
      const gap = f[(n << 3) + F_GAP]!;
      const p = lo - gap;
      const u: number[] = [];
      for (let k = 0; k <= ALIGN_ORDERS; k++) {
        if (k > this.#orders) {
          u.push(0);
          continue;
        }
        const own = lo - Math.ceil(p / 2 ** k) * 2 ** k;
        u.push(Math.max(own, L.u[k]!, R.u[k]!));
        if (this.#maxU(n, k) !== u[k]) {
          problems.push(`node ${n} aligned-gap summary ${k} is stale`);
        }
      }
      if (this.b[(n << 6) + B_HEIGHT] !== h) {
        problems.push(`node ${n} height is stale`);
      }
      if (Math.abs(L.h - R.h) > 1) problems.push(`node ${n} is unbalanced`);
      return { h, u };
    };
    check(this.root, 0);
    return problems;
  }
}
