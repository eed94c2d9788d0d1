/**
 * The ordered structure behind the IOVA allocator: a B+-tree of busy ranges
 * (allocations, cached allocations, reservations, the top anchor), keyed by
 * first granule. Every range knows the free gap just below it. Each internal
 * node keeps, per child, the largest gap in that child's subtree and, for
 * k = 1..11, how far the largest usable length of a gap from its first
 * 2^k-aligned granule falls short of it. "The highest gap below a limit that
 * fits a size at an alignment" is then one descent, exactly (for alignments
 * up to 2^11 granules), reading only the nodes on the way down.
 *
 * Why a B-tree rather than a binary tree: at a million ranges the tree is
 * far bigger than the host caches, and a binary tree's walk from a freed
 * range to the root is a chain of dependent cache misses (each node and its
 * sibling). Here a node holds up to 16 entries or children in one 576-byte
 * slot, so the same walk is about 5 nodes whose cache lines load in
 * parallel, and the per-child summaries mean siblings are never read.
 *
 * Ranges live in a separate record array with stable ids (the allocator's
 * hash and cache hold ids); the leaves keep copies of the keys so a leaf
 * scan never leaves the leaf.
 *
 * Internal to core/dma: the allocator reads the record arrays directly on
 * its hot paths, so their fields are plain and documented here.
 *
 * @module
 */

/** Record is a live allocation. */
export const KIND_LIVE = 1;
/** Record is a freed allocation parked in the per-size cache (still busy here). */
export const KIND_CACHED = 2;
/** Record is a reserved range that is never handed out. */
export const KIND_RESERVED = 3;
/** Record is the zero-length anchor above the top of the aperture. */
export const KIND_ANCHOR = 4;

// A record = 32 bytes: Float64 slots (id << 2) + F_LO / F_HI, the kind at
// byte (id << 5) + B_KIND, the leaf holding it at Int32 (id << 3) + 5.
/** First granule of the record's footprint (its key); Float64 `(id << 2) + F_LO`. */
export const F_LO = 0;
/** Exclusive end granule of the footprint (allocation plus guard); Float64 `(id << 2) + F_HI`. */
export const F_HI = 1;
/** Byte `(id << 5) + B_KIND` of the record view: a KIND_* constant (0 when free). */
export const B_KIND = 16;
const RI_LEAF = 5;

/** Alignment orders (log2 granules) the augmentation answers exactly. */
export const ALIGN_ORDERS = 11;

/** Entries per leaf and children per internal node. */
const B = 16;
/** A node with fewer entries tries to merge with a neighbour. */
const MIN_FILL = 4;
/** Merges only when the result leaves room (no split right after). */
const MERGE_MAX = 12;

// Node slot: 576 bytes; Float64 stride 72, Int32 stride 144, Uint16 stride
// 288, Uint8 stride 576. Header (Int32): count, parent, prev leaf, next
// leaf, level (0 = leaf), free-list link.
const NODE_BYTES = 576;
const NF = 72;
const NW = 144;
const NH = 288;
const H_COUNT = 0;
const H_PARENT = 1;
const H_PREV = 2;
const H_NEXT = 3;
const H_LEVEL = 4;
const H_FREE = 5;
// Leaf columns: lo, hi, gap (Float64 index base + j), record id (Int32).
const L_LO = 4;
const L_HI = 20;
const L_GAP = 36;
const L_ID = 104;
// Internal columns: child (Int32), separator (Float64: >= every key in the
// child, < every key in the next child), child's largest gap (Float64),
// child's d_k: bytes 352 + 8j + (k - 1) for k = 1..8, Uint16 240 + 3j +
// (k - 9) for k = 9..11.
const I_CHILD = 8;
const I_SEP = 12;
const I_MAX = 28;
const I_D8 = 351; // + 8j + k
const I_D16 = 231; // + 3j + k (k >= 9)

const MAX_HEIGHT = 48;

/**
 * B+-tree of busy ranges over a granule-indexed address space. Granule
 * numbers are doubles so the whole 2^53 range is exact.
 */
export class IovaBTree {
  /** Record Float64 view: record id's fields start at `id << 2`. */
  f: Float64Array;
  /** Record Int32 view. */
  #rw: Int32Array;
  /** Record Uint8 view: record id's bytes start at `id << 5`. */
  b: Uint8Array;
  /** Node views. */
  #nf: Float64Array;
  #nw: Int32Array;
  #nh: Uint16Array;
  #nb: Uint8Array;
  /** Root node (0 when empty). */
  #root = 0;
  /** Number of ranges in the tree (anchor included). */
  size = 0;
  /** The granule where the lowest gap starts (the aperture start). */
  readonly base: number;
  /** Address chosen by the last successful {@linkcode IovaBTree.findFit}. */
  foundAddr = 0;
  /** Searches that needed the bounded fallback (alignments above 2^11). */
  fallbacks = 0;
  #orders = 0;
  #recCap: number;
  #recFree = 0;
  #recNext = 1;
  #nodeCap: number;
  #nodeFree = 0;
  #nodeNext = 1;
  /** Leaf and index of the entry the last findFit returned. */
  #foundLeaf = 0;
  #foundIdx = 0;
  #foundId = 0;
  // Scratch summary: largest gap and d_1..d_11.
  #sm = 0;
  readonly #sd = new Int32Array(ALIGN_ORDERS + 1);
  // Search state.
  #threshold = 0;
  #left = 0;
  #sure = 0;
  readonly #path = new Int32Array(MAX_HEIGHT * 2);
  /** Nodes changed by the splits of one insertion. */
  readonly #splits = new Int32Array(MAX_HEIGHT * 2);
  #nSplits = 0;

  /**
   * @param base First allocatable granule (gaps are measured from here).
   * @param capacity Initial number of record slots.
   */
  constructor(base: number, capacity = 1024) {
    this.base = base;
    this.#recCap = Math.max(16, capacity);
    const rbuf = new ArrayBuffer(this.#recCap * 32);
    this.f = new Float64Array(rbuf);
    this.#rw = new Int32Array(rbuf);
    this.b = new Uint8Array(rbuf);
    this.#nodeCap = Math.max(8, (this.#recCap >>> 3) + 2);
    const nbuf = new ArrayBuffer(this.#nodeCap * NODE_BYTES);
    this.#nf = new Float64Array(nbuf);
    this.#nw = new Int32Array(nbuf);
    this.#nh = new Uint16Array(nbuf);
    this.#nb = new Uint8Array(nbuf);
  }

  /** Record slots currently reserved in memory (for statistics). */
  get capacity(): number {
    return this.#recCap;
  }

  /** Bytes of typed-array memory held (records and nodes). */
  get bytes(): number {
    return this.#recCap * 32 + this.#nodeCap * NODE_BYTES;
  }

  // --- records -------------------------------------------------------------

  /**
   * Take a record slot and fill its range; it is not in the tree yet.
   *
   * @param lo First granule.
   * @param hi Exclusive end granule.
   * @param kind A KIND_* constant.
   * @returns The record id (>= 1).
   */
  newNode(lo: number, hi: number, kind: number): number {
    let i = this.#recFree;
    if (i !== 0) {
      this.#recFree = this.#rw[(i << 3) + RI_LEAF]!;
    } else {
      if (this.#recNext === this.#recCap) this.#growRecords();
      i = this.#recNext++;
    }
    this.f[i << 2] = lo;
    this.f[(i << 2) + 1] = hi;
    this.b[(i << 5) + B_KIND] = kind;
    return i;
  }

  /**
   * Return a record that is no longer in the tree to the free slots.
   *
   * @param i Record id.
   */
  releaseNode(i: number): void {
    this.b[(i << 5) + B_KIND] = 0;
    this.#rw[(i << 3) + RI_LEAF] = this.#recFree;
    this.#recFree = i;
  }

  #growRecords(): void {
    const cap = Math.ceil(this.#recCap * 1.5);
    if (cap * 32 > 2 ** 31) throw new RangeError("IOVA tree is full");
    const buf = new ArrayBuffer(cap * 32);
    new Uint8Array(buf).set(this.b);
    this.f = new Float64Array(buf);
    this.#rw = new Int32Array(buf);
    this.b = new Uint8Array(buf);
    this.#recCap = cap;
  }

  // --- nodes ---------------------------------------------------------------

  #newTreeNode(level: number): number {
    let n = this.#nodeFree;
    if (n !== 0) {
      this.#nodeFree = this.#nw[n * NW + H_FREE]!;
    } else {
      if (this.#nodeNext === this.#nodeCap) this.#growNodes();
      n = this.#nodeNext++;
    }
    const wb = n * NW;
    const w = this.#nw;
    w[wb + H_COUNT] = 0;
    w[wb + H_PARENT] = 0;
    w[wb + H_PREV] = 0;
    w[wb + H_NEXT] = 0;
    w[wb + H_LEVEL] = level;
    return n;
  }

  #freeTreeNode(n: number): void {
    const wb = n * NW;
    this.#nw[wb + H_COUNT] = -1;
    this.#nw[wb + H_FREE] = this.#nodeFree;
    this.#nodeFree = n;
  }

  #growNodes(): void {
    const cap = Math.ceil(this.#nodeCap * 1.5);
    if (cap * NODE_BYTES > 2 ** 31) throw new RangeError("IOVA tree is full");
    const buf = new ArrayBuffer(cap * NODE_BYTES);
    new Uint8Array(buf).set(this.#nb);
    this.#nf = new Float64Array(buf);
    this.#nw = new Int32Array(buf);
    this.#nh = new Uint16Array(buf);
    this.#nb = new Uint8Array(buf);
    this.#nodeCap = cap;
  }

  // --- summaries -----------------------------------------------------------

  /** Summarise node n (largest gap, d_k) into #sm / #sd. */
  #summarise(n: number): void {
    const w = this.#nw;
    const f = this.#nf;
    const cnt = w[n * NW + H_COUNT]!;
    const fb = n * NF;
    const orders = this.#orders;
    const d = this.#sd;
    let m = -1;
    if (w[n * NW + H_LEVEL] === 0) {
      for (let j = 0; j < cnt; j++) {
        const g = f[fb + L_GAP + j]!;
        if (g > m) m = g;
      }
      this.#sm = m;
      if (orders === 0) return;
      for (let k = 1; k <= orders; k++) d[k] = 0xffff;
      // d_k = min over entries of (m - gap) + (-(gap start) mod 2^k); the
      // minimum is below 2^k, so clamping the first term keeps int32 math.
      for (let j = 0; j < cnt; j++) {
        const g = f[fb + L_GAP + j]!;
        const a = m - g < 0xffff ? (m - g) | 0 : 0xffff;
        if (a >= 0x800) continue; // cannot be a minimum (d_k < 2^11)
        const neg = -(f[fb + L_LO + j]! - g) | 0;
        for (let k = 1; k <= orders; k++) {
          const t = a + (neg & ((1 << k) - 1));
          if (t < d[k]!) d[k] = t;
        }
      }
      return;
    }
    for (let j = 0; j < cnt; j++) {
      const g = f[fb + I_MAX + j]!;
      if (g > m) m = g;
    }
    this.#sm = m;
    if (orders === 0) return;
    for (let k = 1; k <= orders; k++) d[k] = 0xffff;
    const bb = n * NODE_BYTES + I_D8;
    const hb = n * NH + I_D16;
    const b = this.#nb;
    const h = this.#nh;
    for (let j = 0; j < cnt; j++) {
      const g = f[fb + I_MAX + j]!;
      const a = m - g < 0xffff ? (m - g) | 0 : 0xffff;
      if (a >= 0x800) continue;
      const small = orders < 8 ? orders : 8;
      const jb = bb + (j << 3);
      for (let k = 1; k <= small; k++) {
        const t = a + b[jb + k]!;
        if (t < d[k]!) d[k] = t;
      }
      const jh = hb + j * 3;
      for (let k = 9; k <= orders; k++) {
        const t = a + h[jh + k]!;
        if (t < d[k]!) d[k] = t;
      }
    }
  }

  /**
   * Write #sm/#sd into slot j of internal node p; returns whether anything
   * changed.
   */
  #store(p: number, j: number): boolean {
    const f = this.#nf;
    const fi = p * NF + I_MAX + j;
    let changed = f[fi] !== this.#sm;
    f[fi] = this.#sm;
    const orders = this.#orders;
    const small = orders < 8 ? orders : 8;
    const d = this.#sd;
    const b = this.#nb;
    const jb = p * NODE_BYTES + I_D8 + (j << 3);
    for (let k = 1; k <= small; k++) {
      if (b[jb + k] !== d[k]) {
        b[jb + k] = d[k]!;
        changed = true;
      }
    }
    const h = this.#nh;
    const jh = p * NH + I_D16 + j * 3;
    for (let k = 9; k <= orders; k++) {
      if (h[jh + k] !== d[k]) {
        h[jh + k] = d[k]!;
        changed = true;
      }
    }
    return changed;
  }

  /** Index of child c in internal node p. */
  #indexIn(p: number, c: number): number {
    const w = this.#nw;
    const wb = p * NW + I_CHILD;
    const cnt = w[p * NW + H_COUNT]!;
    for (let j = 0; j < cnt; j++) if (w[wb + j] === c) return j;
    throw new Error("IovaBTree: child not in its parent");
  }

  /**
   * Re-summarise node n into its parent's slot, and on up while a summary
   * changes. Every node whose entries or slots change gets such a walk
   * after its change, so a walk may stop where a summary comes out equal:
   * the slot above already holds the truth.
   */
  #fix(n: number): void {
    const w = this.#nw;
    for (;;) {
      const p = w[n * NW + H_PARENT]!;
      if (p === 0) return;
      this.#summarise(n);
      if (!this.#store(p, this.#indexIn(p, n))) return;
      n = p;
    }
  }

  /**
   * Maintain alignment orders up to k from now on, recomputing every
   * summary once (O(n); happens at most ALIGN_ORDERS times per tree).
   */
  #raiseOrders(k: number): void {
    this.#orders = k;
    if (this.#root === 0) return;
    // Breadth-first order; reversed, children come before their parents.
    const order: number[] = [this.#root];
    const w = this.#nw;
    for (let i = 0; i < order.length; i++) {
      const n = order[i]!;
      if (w[n * NW + H_LEVEL] !== 0) {
        const cnt = w[n * NW + H_COUNT]!;
        for (let j = 0; j < cnt; j++) order.push(w[n * NW + I_CHILD + j]!);
      }
    }
    for (let i = order.length - 1; i > 0; i--) {
      const n = order[i]!;
      const p = w[n * NW + H_PARENT]!;
      this.#summarise(n);
      this.#store(p, this.#indexIn(p, n));
    }
  }

  // --- structure -----------------------------------------------------------

  /** Put a record into leaf L at index j (L has room). */
  #leafPut(
    L: number,
    j: number,
    id: number,
    lo: number,
    hi: number,
    gap: number,
  ): void {
    const f = this.#nf;
    const w = this.#nw;
    const fb = L * NF;
    const wb = L * NW;
    const cnt = w[wb + H_COUNT]!;
    for (let x = cnt; x > j; x--) {
      f[fb + L_LO + x] = f[fb + L_LO + x - 1]!;
      f[fb + L_HI + x] = f[fb + L_HI + x - 1]!;
      f[fb + L_GAP + x] = f[fb + L_GAP + x - 1]!;
      w[wb + L_ID + x] = w[wb + L_ID + x - 1]!;
    }
    f[fb + L_LO + j] = lo;
    f[fb + L_HI + j] = hi;
    f[fb + L_GAP + j] = gap;
    w[wb + L_ID + j] = id;
    w[wb + H_COUNT] = cnt + 1;
    this.#rw[(id << 3) + RI_LEAF] = L;
  }

  /**
   * Insert record `id` at index j of leaf L with the given gap, splitting
   * when full, and bring every summary up to date.
   */
  #leafInsert(L: number, j: number, id: number, gap: number): void {
    const lo = this.f[id << 2]!;
    const hi = this.f[(id << 2) + 1]!;
    this.size++;
    if (this.#nw[L * NW + H_COUNT]! < B) {
      this.#leafPut(L, j, id, lo, hi, gap);
      this.#fix(L);
      return;
    }
    this.#nSplits = 0;
    const R = this.#splitLeaf(L);
    const h = this.#nw[L * NW + H_COUNT]!;
    // At j === h the key lies between the halves: it opens R, whose lower
    // bound (L's new separator, L's last key) is below it.
    if (j < h) this.#leafPut(L, j, id, lo, hi, gap);
    else this.#leafPut(R, j - h, id, lo, hi, gap);
    // Walk up from every node the splits changed (new slots start stale).
    this.#fix(L);
    for (let x = 0; x < this.#nSplits; x++) {
      this.#fix(this.#splits[x]!);
    }
  }

  /** Move the upper half of full leaf L into a new leaf after it. */
  #splitLeaf(L: number): number {
    const R = this.#newTreeNode(0);
    this.#splits[this.#nSplits++] = R;
    const f = this.#nf;
    const w = this.#nw;
    const h = B >>> 1;
    const lf = L * NF;
    const lw = L * NW;
    const rf = R * NF;
    const rw = R * NW;
    for (let x = h; x < B; x++) {
      f[rf + L_LO + x - h] = f[lf + L_LO + x]!;
      f[rf + L_HI + x - h] = f[lf + L_HI + x]!;
      f[rf + L_GAP + x - h] = f[lf + L_GAP + x]!;
      const id = w[lw + L_ID + x]!;
      w[rw + L_ID + x - h] = id;
      this.#rw[(id << 3) + RI_LEAF] = R;
    }
    w[lw + H_COUNT] = h;
    w[rw + H_COUNT] = B - h;
    const next = w[lw + H_NEXT]!;
    w[rw + H_NEXT] = next;
    w[rw + H_PREV] = L;
    w[lw + H_NEXT] = R;
    if (next !== 0) w[next * NW + H_PREV] = R;
    this.#linkSibling(L, R, f[lf + L_LO + h - 1]!);
    return R;
  }

  /**
   * Put new node R right after node L in L's parent (making a new root when
   * L is the root), splitting parents as needed. sepL is L's new separator;
   * R takes L's old one.
   */
  #linkSibling(L: number, R: number, sepL: number): void {
    let w = this.#nw;
    let f = this.#nf;
    let p = w[L * NW + H_PARENT]!;
    if (p === 0) {
      p = this.#newTreeNode(w[L * NW + H_LEVEL]! + 1);
      w = this.#nw;
      f = this.#nf;
      const pw = p * NW;
      w[pw + H_COUNT] = 2;
      w[pw + I_CHILD] = L;
      w[pw + I_CHILD + 1] = R;
      f[p * NF + I_SEP] = sepL;
      f[p * NF + I_SEP + 1] = Infinity;
      w[L * NW + H_PARENT] = p;
      w[R * NW + H_PARENT] = p;
      this.#root = p;
      return;
    }
    let j = this.#indexIn(p, L);
    const sepR = f[p * NF + I_SEP + j]!;
    f[p * NF + I_SEP + j] = sepL;
    let cnt = w[p * NW + H_COUNT]!;
    if (cnt === B) {
      const q = this.#splitInternal(p);
      w = this.#nw;
      const h = w[p * NW + H_COUNT]!;
      // p is now bounded by its last child's separator: when that child is
      // L, R (above it) opens q instead.
      if (j >= h - 1) {
        p = q;
        j -= h;
      }
      cnt = w[p * NW + H_COUNT]!;
    }
    this.#childPut(p, j + 1, R, sepR, cnt);
  }

  /** Insert child c with separator sep at index j of p (which has room). */
  #childPut(p: number, j: number, c: number, sep: number, cnt: number): void {
    const w = this.#nw;
    const f = this.#nf;
    const pw = p * NW;
    const pf = p * NF;
    const b = this.#nb;
    const h = this.#nh;
    const pb = p * NODE_BYTES + I_D8;
    const ph = p * NH + I_D16;
    for (let x = cnt; x > j; x--) {
      w[pw + I_CHILD + x] = w[pw + I_CHILD + x - 1]!;
      f[pf + I_SEP + x] = f[pf + I_SEP + x - 1]!;
      f[pf + I_MAX + x] = f[pf + I_MAX + x - 1]!;
      for (let k = 1; k <= 8; k++) {
        b[pb + (x << 3) + k] = b[pb + ((x - 1) << 3) + k]!;
      }
      for (let k = 9; k <= 11; k++) {
        h[ph + x * 3 + k] = h[ph + (x - 1) * 3 + k]!;
      }
    }
    w[pw + I_CHILD + j] = c;
    f[pf + I_SEP + j] = sep;
    f[pf + I_MAX + j] = -1;
    w[pw + H_COUNT] = cnt + 1;
    w[c * NW + H_PARENT] = p;
  }

  /** Move the upper half of full internal node p into a new node after it. */
  #splitInternal(p: number): number {
    // Views are read after the allocation, which may grow the node buffer.
    const q = this.#newTreeNode(this.#nw[p * NW + H_LEVEL]!);
    const w = this.#nw;
    const f = this.#nf;
    // Both halves changed (p lost its upper children).
    this.#splits[this.#nSplits++] = p;
    this.#splits[this.#nSplits++] = q;
    const h = B >>> 1;
    const pw = p * NW;
    const qw = q * NW;
    const pf = p * NF;
    const qf = q * NF;
    const b = this.#nb;
    const hh = this.#nh;
    const pb = p * NODE_BYTES + I_D8;
    const qb = q * NODE_BYTES + I_D8;
    const ph = p * NH + I_D16;
    const qh = q * NH + I_D16;
    for (let x = h; x < B; x++) {
      const c = w[pw + I_CHILD + x]!;
      w[qw + I_CHILD + x - h] = c;
      w[c * NW + H_PARENT] = q;
      f[qf + I_SEP + x - h] = f[pf + I_SEP + x]!;
      f[qf + I_MAX + x - h] = f[pf + I_MAX + x]!;
      for (let k = 1; k <= 8; k++) {
        b[qb + ((x - h) << 3) + k] = b[pb + (x << 3) + k]!;
      }
      for (let k = 9; k <= 11; k++) {
        hh[qh + (x - h) * 3 + k] = hh[ph + x * 3 + k]!;
      }
    }
    w[pw + H_COUNT] = h;
    w[qw + H_COUNT] = B - h;
    this.#linkSibling(p, q, f[pf + I_SEP + h - 1]!);
    return q;
  }

  /**
   * Link record i into the tree by its key (descending from the root),
   * computing its gap and shrinking the gap of its successor. The caller
   * guarantees no overlap.
   *
   * @param i A record from {@linkcode IovaBTree.newNode}.
   */
  insert(i: number): void {
    this.#foundId = 0;
    const key = this.f[i << 2]!;
    const hi = this.f[(i << 2) + 1]!;
    if (this.#root === 0) {
      const L = this.#newTreeNode(0);
      this.#root = L;
      this.size++;
      this.#leafPut(L, 0, i, key, hi, key - this.base);
      return;
    }
    const L = this.#leafFor(key);
    const f = this.#nf;
    const w = this.#nw;
    const fb = L * NF;
    const cnt = w[L * NW + H_COUNT]!;
    let j = 0;
    while (j < cnt && f[fb + L_LO + j]! <= key) j++;
    if (j < cnt) {
      const s = fb + j;
      const gapStart = f[s + L_LO]! - f[s + L_GAP]!;
      f[s + L_GAP] = f[s + L_LO]! - hi;
      this.#leafInsert(L, j, i, key - gapStart);
      return;
    }
    // After every entry of this leaf: the successor, if any, opens the next.
    const gap = key - f[fb + L_HI + cnt - 1]!;
    const next = w[L * NW + H_NEXT]!;
    if (next !== 0) {
      f[next * NF + L_GAP] = f[next * NF + L_LO]! - hi;
      this.#fix(next);
    }
    this.#leafInsert(L, cnt, i, gap);
  }

  /** The leaf that holds (or would hold) key. */
  #leafFor(key: number): number {
    const w = this.#nw;
    const f = this.#nf;
    let n = this.#root;
    while (w[n * NW + H_LEVEL] !== 0) {
      const cnt = w[n * NW + H_COUNT]!;
      const fb = n * NF + I_SEP;
      let j = 0;
      while (j < cnt - 1 && f[fb + j]! < key) j++;
      n = w[n * NW + I_CHILD + j]!;
    }
    return n;
  }

  /**
   * Link record i as the immediate predecessor of record c, inside the gap
   * below c (which the caller found with {@linkcode IovaBTree.findFit}).
   *
   * @param i A record from {@linkcode IovaBTree.newNode}, inside c's gap.
   * @param c The record whose gap it occupies.
   */
  insertBefore(i: number, c: number): void {
    let L: number;
    let j: number;
    if (c === this.#foundId) {
      L = this.#foundLeaf;
      j = this.#foundIdx;
    } else {
      L = this.#rw[(c << 3) + RI_LEAF]!;
      j = this.#indexOfRecord(L, c);
    }
    this.#foundId = 0;
    const f = this.#nf;
    if (j === 0) this.#lowerLeftBound(L, this.f[i << 2]!);
    const s = L * NF + j;
    const gapStart = f[s + L_LO]! - f[s + L_GAP]!;
    f[s + L_GAP] = f[s + L_LO]! - this.f[(i << 2) + 1]!;
    this.#leafInsert(L, j, i, this.f[i << 2]! - gapStart);
  }

  /**
   * Before key becomes leaf L's first: a separator left of L's subtree may
   * be stale (still bounding a key since removed) and at or above key;
   * bring it down to the true last key before L.
   */
  #lowerLeftBound(L: number, key: number): void {
    const w = this.#nw;
    const prev = w[L * NW + H_PREV]!;
    if (prev === 0) return;
    let n = L;
    for (;;) {
      const p = w[n * NW + H_PARENT]!;
      if (p === 0) return;
      const j = this.#indexIn(p, n);
      if (j > 0) {
        const at = p * NF + I_SEP + j - 1;
        if (this.#nf[at]! >= key) {
          this.#nf[at] = this
            .#nf[prev * NF + L_LO + w[prev * NW + H_COUNT]! - 1]!;
        }
        return;
      }
      n = p;
    }
  }

  #indexOfRecord(L: number, id: number): number {
    const w = this.#nw;
    const wb = L * NW + L_ID;
    const cnt = w[L * NW + H_COUNT]!;
    for (let j = 0; j < cnt; j++) if (w[wb + j] === id) return j;
    throw new Error("IovaBTree: record not in its leaf");
  }

  /**
   * Unlink record i (which must be in the tree and not be the last); its
   * span and gap join the gap of its successor. The slot is not released.
   *
   * @param i Record id.
   */
  remove(i: number): void {
    const L = this.#rw[(i << 3) + RI_LEAF]!;
    const j = this.#indexOfRecord(L, i);
    const f = this.#nf;
    const w = this.#nw;
    const fb = L * NF;
    const wb = L * NW;
    const cnt = w[wb + H_COUNT]!;
    const span = f[fb + L_GAP + j]! + f[fb + L_HI + j]! - f[fb + L_LO + j]!;
    this.#foundId = 0;
    if (j + 1 < cnt) {
      f[fb + L_GAP + j + 1]! += span;
    } else {
      const next = w[wb + H_NEXT]!;
      if (next === 0) throw new Error("IovaBTree.remove: no successor");
      f[next * NF + L_GAP]! += span;
      this.#fix(next);
    }
    for (let x = j + 1; x < cnt; x++) {
      f[fb + L_LO + x - 1] = f[fb + L_LO + x]!;
      f[fb + L_HI + x - 1] = f[fb + L_HI + x]!;
      f[fb + L_GAP + x - 1] = f[fb + L_GAP + x]!;
      w[wb + L_ID + x - 1] = w[wb + L_ID + x]!;
    }
    w[wb + H_COUNT] = cnt - 1;
    this.size--;
    if (cnt - 1 >= MIN_FILL || w[wb + H_PARENT] === 0) {
      if (cnt - 1 === 0) {
        // Only the root leaf can get here empty (the anchor stays).
        this.#freeTreeNode(L);
        this.#root = 0;
        return;
      }
      this.#fix(L);
      return;
    }
    this.#underflow(L);
  }

  /**
   * Node n (not the root) lost entries and has few or none: drop it when
   * empty, merge it into a neighbour under the same parent when the result
   * leaves room, and bring the summaries above up to date.
   */
  #underflow(n: number): void {
    const w = this.#nw;
    for (;;) {
      const p = w[n * NW + H_PARENT]!;
      const cnt = w[n * NW + H_COUNT]!;
      const j = this.#indexIn(p, n);
      const pc = w[p * NW + H_COUNT]!;
      if (cnt === 0) {
        this.#dropChild(p, j);
      } else if (
        j + 1 < pc &&
        cnt + w[w[p * NW + I_CHILD + j + 1]! * NW + H_COUNT]! <= MERGE_MAX
      ) {
        this.#mergeInto(p, j);
      } else if (
        j > 0 &&
        cnt + w[w[p * NW + I_CHILD + j - 1]! * NW + H_COUNT]! <= MERGE_MAX
      ) {
        this.#mergeInto(p, j - 1);
      } else {
        this.#fix(n);
        return;
      }
      // p lost a child; its slots are current.
      if (w[p * NW + H_PARENT] === 0) {
        if (w[p * NW + H_COUNT] === 1) {
          // A root with one child hands over to that child.
          const c = w[p * NW + I_CHILD]!;
          w[c * NW + H_PARENT] = 0;
          this.#root = c;
          this.#freeTreeNode(p);
        }
        return;
      }
      if (w[p * NW + H_COUNT]! >= MIN_FILL) {
        this.#fix(p);
        return;
      }
      n = p;
    }
  }

  /** Remove empty child j of p (leaves are unlinked from the leaf list). */
  #dropChild(p: number, j: number): void {
    const w = this.#nw;
    const c = w[p * NW + I_CHILD + j]!;
    if (w[c * NW + H_LEVEL] === 0) this.#unlinkLeaf(c);
    this.#removeSlot(p, j);
    this.#freeTreeNode(c);
  }

  #unlinkLeaf(L: number): void {
    const w = this.#nw;
    const prev = w[L * NW + H_PREV]!;
    const next = w[L * NW + H_NEXT]!;
    if (prev !== 0) w[prev * NW + H_NEXT] = next;
    if (next !== 0) w[next * NW + H_PREV] = prev;
  }

  /**
   * Remove slot j of internal node p. The separator of the slot before it
   * takes the removed one (so it still bounds everything up to the next).
   */
  #removeSlot(p: number, j: number): void {
    const w = this.#nw;
    const f = this.#nf;
    const b = this.#nb;
    const h = this.#nh;
    const pw = p * NW;
    const pf = p * NF;
    const pb = p * NODE_BYTES + I_D8;
    const ph = p * NH + I_D16;
    const cnt = w[pw + H_COUNT]!;
    if (j > 0) f[pf + I_SEP + j - 1] = f[pf + I_SEP + j]!;
    for (let x = j + 1; x < cnt; x++) {
      w[pw + I_CHILD + x - 1] = w[pw + I_CHILD + x]!;
      f[pf + I_SEP + x - 1] = f[pf + I_SEP + x]!;
      f[pf + I_MAX + x - 1] = f[pf + I_MAX + x]!;
      for (let k = 1; k <= 8; k++) {
        b[pb + ((x - 1) << 3) + k] = b[pb + (x << 3) + k]!;
      }
      for (let k = 9; k <= 11; k++) {
        h[ph + (x - 1) * 3 + k] = h[ph + x * 3 + k]!;
      }
    }
    w[pw + H_COUNT] = cnt - 1;
  }

  /** Merge child j+1 of p into child j and drop j+1. */
  #mergeInto(p: number, j: number): void {
    const w = this.#nw;
    const f = this.#nf;
    const a = w[p * NW + I_CHILD + j]!;
    const c = w[p * NW + I_CHILD + j + 1]!;
    const ac = w[a * NW + H_COUNT]!;
    const cc = w[c * NW + H_COUNT]!;
    const af = a * NF;
    const cf = c * NF;
    const aw = a * NW;
    const cw = c * NW;
    if (w[aw + H_LEVEL] === 0) {
      for (let x = 0; x < cc; x++) {
        f[af + L_LO + ac + x] = f[cf + L_LO + x]!;
        f[af + L_HI + ac + x] = f[cf + L_HI + x]!;
        f[af + L_GAP + ac + x] = f[cf + L_GAP + x]!;
        const id = w[cw + L_ID + x]!;
        w[aw + L_ID + ac + x] = id;
        this.#rw[(id << 3) + RI_LEAF] = a;
      }
      this.#unlinkLeaf(c);
    } else {
      const b = this.#nb;
      const h = this.#nh;
      const ab = a * NODE_BYTES + I_D8;
      const cb = c * NODE_BYTES + I_D8;
      const ah = a * NH + I_D16;
      const ch = c * NH + I_D16;
      for (let x = 0; x < cc; x++) {
        const y = ac + x;
        const ch2 = w[cw + I_CHILD + x]!;
        w[aw + I_CHILD + y] = ch2;
        w[ch2 * NW + H_PARENT] = a;
        f[af + I_SEP + y] = f[cf + I_SEP + x]!;
        f[af + I_MAX + y] = f[cf + I_MAX + x]!;
        for (let k = 1; k <= 8; k++) {
          b[ab + (y << 3) + k] = b[cb + (x << 3) + k]!;
        }
        for (let k = 9; k <= 11; k++) h[ah + y * 3 + k] = h[ch + x * 3 + k]!;
      }
    }
    w[aw + H_COUNT] = ac + cc;
    // Slot j+1 goes; its separator moves down to slot j.
    this.#removeSlot(p, j + 1);
    this.#freeTreeNode(c);
    this.#summarise(a);
    this.#store(p, j);
  }

  /**
   * The record with the largest key <= key, or 0.
   *
   * @param key A granule number.
   * @returns Record id or 0.
   */
  floor(key: number): number {
    if (this.#root === 0) return 0;
    const L = this.#leafFor(key);
    const f = this.#nf;
    const w = this.#nw;
    let j = w[L * NW + H_COUNT]! - 1;
    while (j >= 0 && f[L * NF + L_LO + j]! > key) j--;
    if (j >= 0) return w[L * NW + L_ID + j]!;
    const prev = w[L * NW + H_PREV]!;
    if (prev === 0) return 0;
    return w[prev * NW + L_ID + w[prev * NW + H_COUNT]! - 1]!;
  }

  // --- search --------------------------------------------------------------

  /**
   * Find the highest placement of a footprint of `size` granules whose start
   * is a multiple of `align`, inside a free gap, ending at or below `limit`.
   * Exact for alignments up to 2^11 granules. Above that the summaries only
   * bound the answer: after `probes` subtrees that might fit but do not,
   * the search settles for the highest subtree that surely fits (a fit,
   * maybe not the highest), and if that finds nothing it repeats the search
   * without a probe bound, so a fit is never missed.
   *
   * @param size Footprint in granules (>= 1).
   * @param align Power-of-two alignment in granules.
   * @param limit Exclusive highest footprint end, in granules.
   * @param probes Failed candidates examined before falling back.
   * @returns The record below which the fit lies (the new record's
   * successor), or 0 when nothing fits. The start is left in `foundAddr`.
   */
  findFit(size: number, align: number, limit: number, probes: number): number {
    const order = align <= 0x40000000
      ? 31 - Math.clz32(align)
      : Math.round(Math.log2(align));
    const k = order < ALIGN_ORDERS ? order : ALIGN_ORDERS;
    if (k > this.#orders) this.#raiseOrders(k);
    if (this.#root === 0) return 0;
    const sure = size + align - (1 << k);
    const found = this.#search(size, align, limit, k, sure, probes);
    if (found >= 0) return found;
    return Math.max(0, this.#search(size, align, limit, k, sure, Infinity));
  }

  /** >0 record found; 0 none; -1 none after the bounded fallback. */
  #search(
    size: number,
    align: number,
    limit: number,
    k: number,
    sure: number,
    probes: number,
  ): number {
    const w = this.#nw;
    const f = this.#nf;
    this.#threshold = size;
    this.#left = probes;
    this.#sure = sure;
    // Down along the limit, remembering the child taken at each level.
    const path = this.#path;
    let depth = 0;
    let n = this.#root;
    while (w[n * NW + H_LEVEL] !== 0) {
      const cnt = w[n * NW + H_COUNT]!;
      const fb = n * NF + I_SEP;
      let j = 0;
      while (j < cnt - 1 && f[fb + j]! <= limit) j++;
      path[depth++] = n;
      path[depth++] = j;
      n = w[n * NW + I_CHILD + j]!;
    }
    // The leaf: the first entry above the limit has the gap the limit cuts
    // (it may open the next leaf); the entries below it are whole gaps.
    const fb = n * NF;
    const cnt = w[n * NW + H_COUNT]!;
    let j = 0;
    while (j < cnt && f[fb + L_LO + j]! <= limit) j++;
    if (j < cnt) {
      if (this.#fits(n, j, size, align, limit)) return this.#found(n, j);
    } else {
      const next = w[n * NW + H_NEXT]!;
      if (next !== 0 && this.#fits(next, 0, size, align, limit)) {
        return this.#found(next, 0);
      }
    }
    for (let x = j - 1; x >= 0; x--) {
      if (this.#fits(n, x, size, align, limit)) return this.#found(n, x);
    }
    // Up the path: the children left of the one taken hold whole gaps.
    while (depth > 0) {
      const c = path[--depth]!;
      const p = path[--depth]!;
      for (let x = c - 1; x >= 0; x--) {
        if (this.#maxU(p, x, k) < this.#threshold) continue;
        const r = this.#down(w[p * NW + I_CHILD + x]!, size, align, limit, k);
        if (r !== 0) return r;
      }
    }
    return this.#threshold === size ? 0 : -1;
  }

  /** Search a subtree whose summary promised a fit, right to left. */
  #down(
    n: number,
    size: number,
    align: number,
    limit: number,
    k: number,
  ): number {
    const w = this.#nw;
    const cnt = w[n * NW + H_COUNT]!;
    if (w[n * NW + H_LEVEL] === 0) {
      for (let x = cnt - 1; x >= 0; x--) {
        if (this.#fits(n, x, size, align, limit)) return this.#found(n, x);
      }
    } else {
      let tried = false;
      for (let x = cnt - 1; x >= 0; x--) {
        if (this.#maxU(n, x, k) < this.#threshold) continue;
        tried = true;
        const r = this.#down(w[n * NW + I_CHILD + x]!, size, align, limit, k);
        if (r !== 0) return r;
      }
      if (tried) return 0;
    }
    // This subtree promised a fit and held none (an alignment above what
    // the summaries track): stop probing after enough, take a sure gap.
    if (
      this.#sure > size && --this.#left < 0 && this.#threshold === size
    ) {
      this.#threshold = this.#sure;
      this.fallbacks++;
    }
    return 0;
  }

  /** Largest usable length from a 2^k-aligned start over child slot j of p. */
  #maxU(p: number, j: number, k: number): number {
    const m = this.#nf[p * NF + I_MAX + j]!;
    if (k === 0) return m;
    return m -
      (k <= 8
        ? this.#nb[p * NODE_BYTES + I_D8 + (j << 3) + k]!
        : this.#nh[p * NH + I_D16 + j * 3 + k]!);
  }

  #found(L: number, j: number): number {
    const id = this.#nw[L * NW + L_ID + j]!;
    this.#foundLeaf = L;
    this.#foundIdx = j;
    this.#foundId = id;
    return id;
  }

  /** Whether entry j of leaf L (its gap cut at limit) fits; sets foundAddr. */
  #fits(
    L: number,
    j: number,
    size: number,
    align: number,
    limit: number,
  ): boolean {
    const f = this.#nf;
    const lo = f[L * NF + L_LO + j]!;
    const p = lo - f[L * NF + L_GAP + j]!;
    const q = lo < limit ? lo : limit;
    if (q - p < size) return false;
    const a = Math.floor((q - size) / align) * align;
    if (a < p) return false;
    this.foundAddr = a;
    return true;
  }

  // --- reports -------------------------------------------------------------

  /**
   * Largest gap in granules, with `topSlack` granules taken off the gap
   * below the anchor (the last record), whose top lies past the aperture.
   *
   * @param topSlack Granules of the anchor gap that are outside the aperture.
   * @returns The largest free run in granules.
   */
  largestGap(topSlack: number): number {
    const w = this.#nw;
    const f = this.#nf;
    let best = 0;
    let n = this.#root;
    if (n === 0) return 0;
    while (w[n * NW + H_LEVEL] !== 0) {
      const cnt = w[n * NW + H_COUNT]!;
      for (let j = 0; j < cnt - 1; j++) {
        const m = f[n * NF + I_MAX + j]!;
        if (m > best) best = m;
      }
      n = w[n * NW + I_CHILD + cnt - 1]!;
    }
    const cnt = w[n * NW + H_COUNT]!;
    for (let j = 0; j < cnt; j++) {
      const g = f[n * NF + L_GAP + j]! - (j === cnt - 1 ? topSlack : 0);
      if (g > best) best = g;
    }
    return best;
  }

  /**
   * In-order list of record ids (for audits and flushes; O(n)).
   *
   * @returns Record ids by ascending key.
   */
  nodes(): number[] {
    const out: number[] = [];
    const w = this.#nw;
    let n = this.#root;
    if (n === 0) return out;
    while (w[n * NW + H_LEVEL] !== 0) n = w[n * NW + I_CHILD]!;
    while (n !== 0) {
      const cnt = w[n * NW + H_COUNT]!;
      for (let j = 0; j < cnt; j++) out.push(w[n * NW + L_ID + j]!);
      n = w[n * NW + H_NEXT]!;
    }
    return out;
  }

  /**
   * Check every structural invariant (order, no overlap, gaps, separators,
   * summaries, parent and leaf links, record back-links, equal leaf depth).
   * O(n); for tests and debugging.
   *
   * @returns Descriptions of the broken invariants; empty when healthy.
   */
  audit(): string[] {
    const problems: string[] = [];
    const w = this.#nw;
    const f = this.#nf;
    const list = this.nodes();
    if (list.length !== this.size) {
      problems.push(
        `tree holds ${list.length} records, size says ${this.size}`,
      );
    }
    let prevHi = this.base;
    for (const id of list) {
      const lo = this.f[id << 2]!;
      const hi = this.f[(id << 2) + 1]!;
      if (lo < prevHi) problems.push(`record at ${lo} overlaps end ${prevHi}`);
      if (hi < lo) problems.push(`record at ${lo} ends before it starts`);
      prevHi = hi;
    }
    if (this.#root === 0) return problems;
    if (w[this.#root * NW + H_PARENT] !== 0) problems.push("root has a parent");
    // Recompute every summary and bound the slow way.
    const leaves: number[] = [];
    let leafDepth = -1;
    const visit = (
      n: number,
      depth: number,
      lower: number,
      upper: number,
    ): { m: number; u: number[] } => {
      const cnt = w[n * NW + H_COUNT]!;
      const level = w[n * NW + H_LEVEL]!;
      if (cnt < 1 || cnt > B) problems.push(`node ${n} holds ${cnt}`);
      if (n !== this.#root && cnt < 1) problems.push(`node ${n} is empty`);
      const u: number[] = new Array(ALIGN_ORDERS + 1).fill(-Infinity);
      let m = -1;
      if (level === 0) {
        if (leafDepth < 0) leafDepth = depth;
        else if (depth !== leafDepth) {
          problems.push(`leaf ${n} at depth ${depth}`);
        }
        leaves.push(n);
        for (let j = 0; j < cnt; j++) {
          const id = w[n * NW + L_ID + j]!;
          const lo = f[n * NF + L_LO + j]!;
          const gap = f[n * NF + L_GAP + j]!;
          if (
            this.f[id << 2] !== lo ||
            this.f[(id << 2) + 1] !== f[n * NF + L_HI + j]
          ) {
            problems.push(`leaf ${n} entry ${j} disagrees with record ${id}`);
          }
          if (this.#rw[(id << 3) + RI_LEAF] !== n) {
            problems.push(`record ${id} names the wrong leaf`);
          }
          if (!(lo > lower && lo <= upper)) {
            problems.push(`leaf ${n} key ${lo} outside (${lower}, ${upper}]`);
          }
          if (gap > m) m = gap;
          const p = lo - gap;
          for (let k = 0; k <= this.#orders; k++) {
            const own = lo - Math.ceil(p / 2 ** k) * 2 ** k;
            if (own > u[k]!) u[k] = own;
          }
        }
        return { m, u };
      }
      for (let j = 0; j < cnt; j++) {
        const c = w[n * NW + I_CHILD + j]!;
        if (w[c * NW + H_PARENT] !== n) {
          problems.push(`node ${c} has a stale parent`);
        }
        if (w[c * NW + H_LEVEL] !== level - 1) problems.push(`node ${c} level`);
        const lo = j === 0 ? lower : f[n * NF + I_SEP + j - 1]!;
        const hi = j === cnt - 1 ? upper : f[n * NF + I_SEP + j]!;
        if (j < cnt - 1 && !(hi <= upper)) {
          problems.push(`node ${n} separator order`);
        }
        const s = visit(c, depth + 1, lo, hi);
        if (f[n * NF + I_MAX + j] !== s.m) {
          problems.push(
            `node ${n} slot ${j} max ${f[n * NF + I_MAX + j]} != ${s.m}`,
          );
        }
        for (let k = 1; k <= this.#orders; k++) {
          if (this.#maxU(n, j, k) !== s.u[k]) {
            problems.push(`node ${n} slot ${j} aligned summary ${k} is stale`);
          }
        }
        if (s.m > m) m = s.m;
        for (let k = 0; k <= this.#orders; k++) {
          if (s.u[k]! > u[k]!) u[k] = s.u[k]!;
        }
      }
      return { m, u };
    };
    visit(this.#root, 0, -Infinity, Infinity);
    // Gaps and leaf links follow key order.
    prevHi = this.base;
    let prevLeaf = 0;
    for (const L of leaves) {
      if (w[L * NW + H_PREV] !== prevLeaf) problems.push(`leaf ${L} prev link`);
      if (prevLeaf !== 0 && w[prevLeaf * NW + H_NEXT] !== L) {
        problems.push(`leaf ${prevLeaf} next link`);
      }
      const cnt = w[L * NW + H_COUNT]!;
      for (let j = 0; j < cnt; j++) {
        const lo = f[L * NF + L_LO + j]!;
        if (f[L * NF + L_GAP + j] !== lo - prevHi) {
          problems.push(
            `record at ${lo} gap ${f[L * NF + L_GAP + j]} != ${lo - prevHi}`,
          );
        }
        prevHi = f[L * NF + L_HI + j]!;
      }
      prevLeaf = L;
    }
    if (prevLeaf !== 0 && w[prevLeaf * NW + H_NEXT] !== 0) {
      problems.push("last leaf has a next link");
    }
    return problems;
  }
}
