/**
 * The ordered structure behind the IOVA allocator: an AVL tree of busy
 * ranges (allocations, cached allocations, reservations, the top anchor),
 * keyed by first granule. Each node knows the free gap just below it, and
 * the tree is augmented with, per subtree, the largest gap and the largest
 * usable length of a gap from its first 2^k-aligned granule, for k = 1..11.
 * "The highest gap below a limit that fits a size at an alignment" is then
 * found by one descent, in O(log n), exactly (for alignments up to 2^11
 * granules).
 *
 * A subtree's summary is stored in its parent's node (the root's in node 0,
 * whose left child is the root), beside the summary of its sibling. A
 * search reads only the nodes on its path, and a fix-up recomputes a node
 * from its own line and writes the result into the next node it climbs to:
 * at a million ranges, where nearly every node below the top levels is a
 * cache and TLB miss, that halves the lines an allocation or a free touches.
 *
 * Node slots are reused last-released first. When a large tree loses half
 * its ranges, it is compacted: the nodes move, in address order, into a
 * buffer of 1.5 slots per node, so that every subtree is one run of slots
 * and a climb of several levels near the leaves stays within a page or two
 * (at a million ranges, a cache miss that also misses the host's TLB costs
 * about twice as much). The nodes of height HIGH (8) or more, about one in
 * eighty, go to a dense region at the front instead, twice their number in
 * size, and later nodes move in and out of it as their heights cross that
 * bound (see {@linkcode IovaTree.migrate}): every free climbs through them,
 * and packed into a few hundred 4 KiB pages they stay in the host's caches
 * and TLB however churn scatters the rest. Below them, the compaction
 * leaves every third slot free, and a new node takes a free slot in its
 * successor's 4 KiB page when there is one (a bitmap of free slots), so
 * that churn keeps tree neighbours in the same page.
 *
 * Internal to core/dma: the allocator reaches into the typed arrays directly
 * on its hot paths, so the fields are plain and documented here.
 *
 * @module
 */

import { IommuError } from "../errors.ts";
import { hostAlloc, tryHostAlloc } from "./host_alloc.ts";

/** Node is a live allocation. */
export const KIND_LIVE = 1;
/** Node is a freed allocation parked in the per-size cache (still busy here). */
export const KIND_CACHED = 2;
/** Node is a reserved range that is never handed out. */
export const KIND_RESERVED = 3;
/** Node is the zero-length anchor above the top of the aperture. */
export const KIND_ANCHOR = 4;

// One node = 64 bytes (one cache line), seen through three views.
// Float64 slots (stride 8):
/** First granule of the node's footprint (its key). */
export const F_LO = 0;
/** Exclusive last granule of the footprint (allocation plus its guard). */
export const F_HI = 1;
/** Free granules between the previous node's footprint end and F_LO. */
export const F_GAP = 2;
// Int32 slots (stride 16); "+ side" picks the left (0) or right (1) child.
/** Left child index (0 = none); the right child is the next slot. */
export const I_LEFT = 6;
const I_RIGHT = 7;
/** Parent index (0 for the root: node 0's left child is the root). */
const I_PARENT = 8;
// Largest gap in the child's subtree (-1 for none), saturated at the
// tree's cap (see IovaTree.#cap).
const I_CM = 9;
// Bytes 44..51 / 52..59 (Int32 slots 11..14): the child's d_k, k = 1..8,
// at byte B_D + 8 * side + k: max usable length from a 2^k-aligned start
// over the subtree = its largest gap - d_k, and 0 <= d_k < 2^k. d_9..d_11
// live in a side array (`ext`), touched only once such alignments occur.
const B_D = 43;
const I_D = 11;
// Child heights (leaf = 1, none = 0).
const B_H = 60;
/** One of the KIND_* constants. */
export const B_KIND = 63;

/**
 * Highest saturation of a stored largest gap (granules), the cap's bound
 * (see {@linkcode IovaTree.#cap}): summaries are int32.
 */
const SAT = 0x7fffffff;
/** The cap of a new tree, raised by the first search that needs more. */
const CAP_FIRST = 16;

const NODE_BYTES = 64;
/** Node slots the store never exceeds (the address index keeps 25 bits). */
const MAX_NODES = 1 << 25;
/** Enough for any AVL tree that fits in memory (height <= 1.44 log2 n + 2). */
const MAX_PATH = 96;
/** Alignment orders (log2 granules) the augmentation answers exactly. */
export const ALIGN_ORDERS = 11;
/**
 * Node slots (4 MiB) below which a tree is never compacted: it stays in
 * the host's caches anyway.
 */
const COMPACT_MIN = 65536;
/**
 * Subtree height from which a node belongs in the dense region of a
 * compacted tree (see {@linkcode IovaTree.compact}); it leaves that region
 * again below HIGH - 1 (hysteresis, so a height that flips by one does not
 * move a node back and forth).
 */
const HIGH = 8;
/**
 * Spare-stack entries one take pops at most before it searches the bitmap
 * instead (each entry costs a bitmap read, likely a cache miss).
 */
const SPARE_POPS = 32;
/** Height changes remembered for the next {@linkcode IovaTree.migrate}. */
const PEND_MAX = 64;

/**
 * Test access to a compacted tree's free-slot bookkeeping (the spare stack,
 * the bitmap, the slot released last): tests/iova_test.ts corrupts it to see
 * {@linkcode IovaTree.audit} report each fault. Not for library use (not
 * exported from core/dma/mod.ts).
 */
export interface IovaTreeSlotsForTest {
  /** Free main slots, one bit each (set = free), word `s >>> 5`. */
  readonly bits: Uint32Array;
  /** The spare stack (entries below spareTop in use). */
  readonly spare: Int32Array;
  /** Entries in use on the spare stack. */
  spareTop: number;
  /** The main slot released last (0 for none). */
  lastFreed: number;
  /** Spare entries found taken (popped and skipped) so far, in all. */
  readonly stalePops: number;
}

/** A view of `t`'s free-slot fields, for tests only (see the interface). */
export let iovaTreeSlotsForTest: (t: IovaTree) => IovaTreeSlotsForTest;

/**
 * AVL tree of busy ranges over a granule-indexed address space, stored in one
 * ArrayBuffer. Node 0 is a header: its left child is the root, and its left
 * summary the root's. Granule numbers are doubles so the whole 2^53 range is
 * exact.
 */
export class IovaTree {
  /** Float64 view: node i's fields start at `i << 3`. */
  f: Float64Array;
  /** Int32 view of the same bytes: node i's fields start at `i << 4`. */
  w: Int32Array;
  /** Uint8 view: node i's fields start at `i << 6`. */
  b: Uint8Array;
  /** d_9..d_11 of node i's children at `(i << 3) + 4 * side + k - 9`. */
  #ext: Uint16Array;
  /** Number of nodes in the tree (anchor included). */
  size = 0;
  /** The granule where the lowest gap starts (the aperture start). */
  readonly base: number;
  /** Address chosen by the last successful {@linkcode IovaTree.findFit}. */
  foundAddr = 0;
  /** Searches that needed the bounded fallback (alignments above 2^11). */
  fallbacks = 0;
  /**
   * When `size` drops below this (half the slots of a large tree, 0 for a
   * small one), the owner should call {@linkcode IovaTree.compact}.
   */
  compactBelow = 0;
  /**
   * Alignment orders currently maintained (d_1..d_orders); raised on the
   * first request that needs more, so workloads of small sizes pay for few.
   */
  #orders = 0;
  /**
   * Saturation of the stored largest gaps (granules), a power of two or
   * SAT. A subtree whose largest gap reaches it is treated as holding any
   * usable length (all d_k 0). The cap stays at or above `size + align - 1`
   * of every search so far (raised, and the tree re-summarised, when one
   * needs more), so for those a saturated subtree surely holds a fit and
   * the search stays exact. Below the cap the summaries are exact.
   *
   * Why not always SAT: a free that merges gaps into one at or above the
   * cap, or an allocation out of such a gap, changes no saturated ancestor,
   * so its fix-up stops there instead of climbing through cold nodes. (At
   * a million ranges of 1..64 granules, left by freeing half of two
   * million, alloc+free pairs ran 7-11% faster with a cap of 128; after a
   * million more pairs of churn, when 85% of the gaps are below 32
   * granules, the gain was within noise.)
   */
  #cap = CAP_FIRST;
  /** The node with the highest key (the allocator's anchor). */
  #rightmost = 0;
  /** Whether the last #sum (or #balance) changed the stored summary. */
  #changed = false;
  /** Whether it changed the stored height. */
  #heightChanged = false;
  #capacity: number;
  #freeHead = 0;
  #nextUnused = 1;
  /**
   * Slots [1, #hiEnd) are the dense region of a compacted tree, for nodes
   * of height >= HIGH (0: no such region, before the first compaction).
   */
  #hiEnd = 0;
  /** Free slots of the dense region, a list threaded through I_LEFT. */
  #hiFree = 0;
  /**
   * Once compacted (#mainBase !== 0): the free main slots, one bit each (set =
   * free), word `s >>> 5`, so a 64-slot (4 KiB) page is the word pair
   * `2p, 2p + 1`. A new node takes a free slot in its successor's page when
   * there is one, so that churn keeps neighbours together.
   */
  #bits: Uint32Array = new Uint32Array(0);
  /**
   * Free main slots to take when that page has none; entries whose bit is
   * clear were taken through the bitmap since and are skipped (at most
   * SPARE_POPS a take: then the bitmap is searched instead). Not every free
   * slot is on it (a release that finds it full leaves the slot to that
   * search).
   */
  #spare: Int32Array = new Int32Array(0);
  #spareTop = 0;
  /** Bitmap word where the next {@linkcode IovaTree.#scanFree} starts. */
  #scanAt = 0;
  /** Stale spare entries popped so far (for tests). */
  #stalePops = 0;
  /**
   * First main slot of a compacted tree (#hiEnd, or 1 without a dense
   * region); 0 before the first compaction, while slots are reused
   * last-released first through #freeHead.
   */
  #mainBase = 0;
  /** Free main slots (bits set) of a compacted tree. */
  #freeMain = 0;
  /** The main slot released last (its line is likely still cached). */
  #lastFreed = 0;
  /** Nodes whose height crossed a region's bound since the last migrate. */
  readonly #pend = new Int32Array(PEND_MAX);
  /** How many of #pend are set; the owner calls migrate when non-zero. */
  pending = 0;
  readonly #stack = new Int32Array(MAX_PATH * 4 + 8);
  readonly #vals = new Float64Array(MAX_PATH * 4 + 8);

  // Test access to the free-slot bookkeeping (iovaTreeSlotsForTest).
  static {
    iovaTreeSlotsForTest = (t) => ({
      get bits() {
        return t.#bits;
      },
      get spare() {
        return t.#spare;
      },
      get spareTop() {
        return t.#spareTop;
      },
      set spareTop(v: number) {
        t.#spareTop = v;
      },
      get lastFreed() {
        return t.#lastFreed;
      },
      get stalePops() {
        return t.#stalePops;
      },
      set lastFreed(v: number) {
        t.#lastFreed = v;
      },
    });
  }

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
    this.b = new Uint8Array(buf);
    this.#ext = new Uint16Array(this.#capacity * 8);
    // The empty tree's summary: no gap at all.
    this.w[I_CM] = -1;
    this.w[I_CM + 1] = -1;
  }

  /** Root node index (0 when empty). */
  get root(): number {
    return this.w[I_LEFT]!;
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
   * @param near A node beside which it will be linked (a compacted tree
   * takes a slot in that node's 4 KiB page when one is free), or 0.
   * @returns The node index (>= 1).
   */
  newNode(lo: number, hi: number, kind: number, near: number): number {
    // Kept small: it is inlined into the allocation path.
    const i = this.#mainBase === 0 ? this.#takeListed() : this.#takeNear(near);
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
    const hiEnd = this.#hiEnd;
    if (i < hiEnd) {
      this.w[(i << 4) + I_LEFT] = this.#hiFree;
      this.#hiFree = i;
    } else if (this.#mainBase !== 0) {
      this.#bits[i >>> 5]! |= 1 << (i & 31);
      this.#freeMain++;
      this.#lastFreed = i;
      if (this.#spareTop < this.#spare.length) {
        this.#spare[this.#spareTop++] = i;
      }
    } else {
      this.w[(i << 4) + I_LEFT] = this.#freeHead;
      this.#freeHead = i;
    }
  }

  /** A free slot of a tree never compacted: the last released, else a new one. */
  #takeListed(): number {
    const i = this.#freeHead;
    if (i !== 0) {
      this.#freeHead = this.w[(i << 4) + I_LEFT]!;
      return i;
    }
    if (this.#nextUnused === this.#capacity) this.#grow();
    return this.#nextUnused++;
  }

  /**
   * A free main slot in near's page (the one released last when it is
   * there: its line is likely cached), else any (compacted tree).
   */
  #takeNear(near: number): number {
    const bits = this.#bits;
    const last = this.#lastFreed;
    if ((last ^ near) >>> 6 === 0) {
      const lw = last >>> 5;
      const lm = 1 << (last & 31);
      const lx = bits[lw]!;
      if ((lx & lm) !== 0) {
        bits[lw] = lx & ~lm;
        this.#freeMain--;
        return last;
      }
    }
    let wi = near >>> 5;
    let x = bits[wi]!;
    if (x === 0) {
      wi ^= 1;
      x = bits[wi]!;
    }
    if (x === 0) return this.#takeSpare();
    bits[wi] = x & (x - 1);
    this.#freeMain--;
    return (wi << 5) | (31 - Math.clz32(x & -x));
  }

  /**
   * Any free main slot (compacted tree), growing when none is left: the
   * top of the spare stack, whose entries taken through the bitmap since
   * they were pushed are skipped, but no more than SPARE_POPS entries a
   * call (after a compaction, takes through the bitmap can leave a run of
   * hundreds of thousands); else the first free slot from where the last
   * such search stopped.
   */
  #takeSpare(): number {
    if (this.#freeMain === 0) this.#grow();
    this.#freeMain--;
    const bits = this.#bits;
    const spare = this.#spare;
    const top = this.#spareTop;
    const stop = top > SPARE_POPS ? top - SPARE_POPS : 0;
    let t = top;
    while (t !== stop) {
      const s = spare[--t]!;
      const wi = s >>> 5;
      const m = 1 << (s & 31);
      const x = bits[wi]!;
      if ((x & m) !== 0) {
        bits[wi] = x & ~m;
        this.#spareTop = t;
        this.#stalePops += top - t - 1;
        return s;
      }
    }
    this.#spareTop = t;
    this.#stalePops += top - t;
    return this.#scanFree();
  }

  /**
   * The first free main slot from the bitmap word where the last call
   * stopped, wrapping (some bit is set: #freeMain counted it). O(words
   * skipped): at most the bitmap, cap / 32 words, once per call, and a
   * sweep over the bitmap between two wraps in all.
   */
  #scanFree(): number {
    const bits = this.#bits;
    const n = bits.length;
    let wi = this.#scanAt;
    for (let k = 0; k <= n; k++, wi++) {
      if (wi >= n) wi = 0;
      const x = bits[wi]!;
      if (x !== 0) {
        bits[wi] = x & (x - 1);
        this.#scanAt = wi;
        return (wi << 5) | (31 - Math.clz32(x & -x));
      }
    }
    throw new Error("IOVA tree: free main slots counted but none marked");
  }

  /**
   * Take over a bitmap and spare stack sized for `cap` slots (allocated
   * before anything changed), keeping the free slots recorded so far and
   * adding slots [from, cap) as free.
   */
  #installFree(
    bits: Uint32Array,
    spare: Int32Array,
    cap: number,
    from: number,
  ): void {
    // (Whole arrays: a subarray would be a new view, an allocation.)
    bits.set(this.#bits);
    spare.set(this.#spare);
    for (let s = cap - 1; s >= from; s--) {
      bits[s >>> 5]! |= 1 << (s & 31);
      spare[this.#spareTop++] = s;
    }
    this.#freeMain += cap - from;
    this.#bits = bits;
    this.#spare = spare;
  }

  /**
   * Move the nodes whose height crossed HIGH (up, from the main slots) or
   * HIGH - 1 (down, from the dense region) since the last call to a slot of
   * the other kind, when one is free, and rename them in the address index.
   * Cached nodes stay (their magazines hold their numbers). The caller
   * holds no node number across this call except through the index.
   *
   * @param index The address index, renamed for every moved live node.
   */
  migrate(
    index: { rename(key: number, to: number, f: Float64Array): void },
  ): void {
    const n = this.pending;
    this.pending = 0;
    const hiEnd = this.#hiEnd;
    const b = this.b;
    const w = this.w;
    for (let k = 0; k < n; k++) {
      const i = this.#pend[k]!;
      const kind = b[(i << 6) + B_KIND]!;
      if (kind === 0 || kind === KIND_CACHED) continue;
      const hl = b[(i << 6) + B_H]!;
      const hr = b[(i << 6) + B_H + 1]!;
      const h = (hl > hr ? hl : hr) + 1;
      let j: number;
      if (i >= hiEnd) {
        j = this.#hiFree;
        if (h < HIGH || j === 0) continue;
        this.#hiFree = w[(j << 4) + I_LEFT]!;
      } else {
        // (Never grows the store: a move waits for a free slot.)
        if (h >= HIGH - 1 || this.#freeMain === 0) continue;
        j = this.#takeNear(w[(i << 4) + I_PARENT]!);
      }
      this.#move(i, j);
      if (kind === KIND_LIVE) index.rename(this.f[i << 3]!, j, this.f);
      this.releaseNode(i);
    }
  }

  /** Copy node i to the free slot j and point its neighbours at j. */
  #move(i: number, j: number): void {
    const w = this.w;
    const iw = i << 4;
    const jw = j << 4;
    for (let k = 0; k < 16; k++) w[jw + k] = w[iw + k]!;
    if (this.#orders > 8) {
      const ext = this.#ext;
      for (let k = 0; k < 8; k++) ext[(j << 3) + k] = ext[(i << 3) + k]!;
    }
    const p = w[iw + I_PARENT]!;
    this.#relink(p, i, j);
    const l = w[iw + I_LEFT]!;
    const r = w[iw + I_RIGHT]!;
    if (l !== 0) w[(l << 4) + I_PARENT] = j;
    if (r !== 0) w[(r << 4) + I_PARENT] = j;
    if (this.#rightmost === i) this.#rightmost = j;
  }

  /** Remember node i, whose height says it is in the wrong region. */
  #heightMoved(i: number): void {
    if (this.pending < PEND_MAX) this.#pend[this.pending++] = i;
  }

  #grow(): void {
    // 1.5x keeps the peak (old + new buffer during the copy) modest at 1M nodes.
    const cap = Math.min(Math.ceil(this.#capacity * 1.5), MAX_NODES);
    if (cap <= this.#capacity) {
      throw new IommuError(
        "ENOMEM",
        `the IOVA tree holds its most ranges (${MAX_NODES - 1} nodes)`,
      );
    }
    // Every buffer and every view of one first (a view allocates too), so
    // that a host out of memory changes nothing; nothing below allocates.
    const compacted = this.#mainBase !== 0;
    const to = hostAlloc(() => {
      const buf = new ArrayBuffer(cap * NODE_BYTES);
      return {
        f: new Float64Array(buf),
        w: new Int32Array(buf),
        b: new Uint8Array(buf),
        ext: new Uint16Array(cap * 8),
        bits: new Uint32Array(compacted ? ((cap + 63) >>> 6) << 1 : 0),
        spare: new Int32Array(compacted ? cap : 0),
      };
    }, `an IOVA tree of ${cap} nodes`);
    to.b.set(this.b);
    to.ext.set(this.#ext);
    this.f = to.f;
    this.w = to.w;
    this.b = to.b;
    this.#ext = to.ext;
    if (compacted) {
      this.#installFree(to.bits, to.spare, cap, this.#capacity);
      this.#nextUnused = cap;
    }
    this.#capacity = cap;
    this.compactBelow = cap >= COMPACT_MIN ? cap >> 1 : 0;
  }

  /**
   * Make sure the next {@linkcode IovaTree.newNode} takes a slot without
   * growing the store, so a caller can check for room before it changes
   * anything.
   *
   * @throws {IommuError} `ENOMEM` when the store cannot grow (it holds
   * 2^25 - 1 nodes, or the host has no memory for a larger one); nothing
   * changes then.
   */
  reserveSlot(): void {
    if (
      this.#mainBase !== 0
        ? this.#freeMain === 0
        : this.#freeHead === 0 && this.#nextUnused === this.#capacity
    ) {
      this.#grow();
    }
  }

  /**
   * Move every node into a new buffer of 1.5 slots per node, in address
   * order, and return the renumbering (old index -> new index, 0 for slots
   * that held no node), which the owner applies to the indices it keeps
   * (address index, cache magazines). Why: after the population halves, the
   * survivors are scattered over twice the memory, each in a slot that
   * reuse left far from its tree neighbours; in address order, every
   * subtree is one run of slots, so the few levels a free or a fix-up
   * climbs near the leaves share a page or two (at a million ranges nearly
   * every node visited is a cache miss, and one that also misses the
   * host's TLB costs about twice as much). Nodes of height >= HIGH go to
   * a dense region at the front (twice their number of slots, in whole
   * 4 KiB pages), which {@linkcode IovaTree.migrate} keeps up to date.
   * The others take two slots of every three, so that a later node finds
   * a free slot in its neighbours' page (see {@linkcode IovaTree.newNode});
   * free main slots are tracked in a bitmap from then on. O(n).
   *
   * @returns The renumbering, or undefined when the new buffers cannot be
   * had: then nothing moved, and {@linkcode IovaTree.compactBelow} is halved
   * so the owner tries again only after the population halves again.
   */
  compact(): Int32Array | undefined {
    const n = this.size;
    const oldCap = this.#capacity;
    // The dense region: twice the nodes that start in it, in whole 4 KiB
    // pages, so that promotions find room while the population drifts.
    const ob8 = this.b;
    let high = 0;
    for (let o = 1; o < oldCap; o++) {
      if (ob8[(o << 6) + B_KIND] === 0) continue;
      const hl = ob8[(o << 6) + B_H]!;
      const hr = ob8[(o << 6) + B_H + 1]!;
      if ((hl > hr ? hl : hr) + 1 >= HIGH) high++;
    }
    const hiEnd = high === 0 ? 0 : (2 * high + 64 + 63) & ~63;
    const cap = Math.max(1024, hiEnd + Math.ceil((n - high) * 1.5) + 1);
    // Main nodes take two slots of every three from here (the last one
    // placed lands below cap: 1.5 slots per main node, plus one).
    const mainBase = hiEnd === 0 ? 1 : hiEnd;
    // Every buffer and every view of one first (a view allocates too), so
    // that a host out of memory changes nothing; nothing below allocates.
    const to = tryHostAlloc(() => {
      const buf = new ArrayBuffer(cap * NODE_BYTES);
      return {
        f: new Float64Array(buf),
        w: new Int32Array(buf),
        b: new Uint8Array(buf),
        ext: new Uint16Array(cap * 8),
        map: new Int32Array(oldCap),
        bits: new Uint32Array(((cap + 63) >>> 6) << 1),
        spare: new Int32Array(cap),
      };
    });
    if (to === undefined) {
      // No memory for it now: try again only once the population halves
      // again, not on every free below the mark (each failed allocation
      // of this size may cost the engine a full garbage collection).
      this.compactBelow >>= 1;
      return undefined;
    }
    const { ext, map, bits, spare } = to;
    const w = this.w;
    const nw = to.w;
    for (let k = 0; k < 16; k++) nw[k] = w[k]!;
    // In-order walk: each node goes to the next slot of its region, copied
    // when it is reached (its old line was just read). Links are set from
    // nodes already placed, never through a lookup of a far-off node: a
    // node's left child was placed just before its left subtree ended; a
    // right child links itself to its parent, placed before it.
    const stack = this.#stack;
    let sp = 0;
    let j = 0;
    let hj = 0;
    let cur = w[I_LEFT]!;
    while (cur !== 0 || sp !== 0) {
      while (cur !== 0) {
        stack[sp++] = cur;
        cur = w[(cur << 4) + I_LEFT]!;
      }
      const o = stack[--sp]!;
      const hl = ob8[(o << 6) + B_H]!;
      const hr = ob8[(o << 6) + B_H + 1]!;
      // Main nodes take two slots of every three: the third stays free
      // for a later node beside them.
      let d: number;
      if ((hl > hr ? hl : hr) + 1 >= HIGH) d = ++hj;
      else {
        d = mainBase + j + (j >> 1);
        j++;
      }
      map[o] = d;
      const ob = o << 4;
      const db = d << 4;
      for (let k = 0; k < 16; k++) nw[db + k] = w[ob + k]!;
      const l = w[ob + I_LEFT]!;
      if (l !== 0) {
        const dl = map[l]!;
        nw[db + I_LEFT] = dl;
        nw[(dl << 4) + I_PARENT] = d;
      }
      nw[db + I_RIGHT] = 0;
      const p = w[ob + I_PARENT]!;
      if (p === 0) {
        nw[I_LEFT] = d;
      } else if (w[(p << 4) + I_RIGHT] === o) {
        const dp = map[p]!;
        nw[(dp << 4) + I_RIGHT] = d;
        nw[db + I_PARENT] = dp;
      }
      cur = w[ob + I_RIGHT]!;
    }
    if (this.#orders > 8) {
      const ow = this.#ext;
      for (let k = 0; k < 8; k++) ext[k] = ow[k]!;
      for (let o = 1; o < oldCap; o++) {
        const d = map[o]!;
        if (d === 0) continue;
        for (let k = 0; k < 8; k++) ext[(d << 3) + k] = ow[(o << 3) + k]!;
      }
    }
    this.f = to.f;
    this.w = nw;
    this.b = to.b;
    this.#ext = ext;
    this.#capacity = cap;
    this.compactBelow = cap >= COMPACT_MIN ? cap >> 1 : 0;
    this.#rightmost = map[this.#rightmost]!;
    this.#freeHead = 0;
    this.#nextUnused = cap;
    this.#hiEnd = hiEnd;
    this.#mainBase = mainBase;
    this.#lastFreed = 0;
    this.#hiFree = 0;
    for (let s = hiEnd - 1; s > hj; s--) {
      nw[(s << 4) + I_LEFT] = this.#hiFree;
      this.#hiFree = s;
    }
    // The free main slots (every third, and the tail) go on the spare
    // stack lowest on top; slots taken since are skipped when popped.
    const nb = this.b;
    let top = 0;
    for (let s = cap - 1; s >= mainBase; s--) {
      if (nb[(s << 6) + B_KIND] !== 0) continue;
      bits[s >>> 5]! |= 1 << (s & 31);
      spare[top++] = s;
    }
    this.#bits = bits;
    this.#spare = spare;
    this.#spareTop = top;
    this.#scanAt = mainBase >>> 5;
    this.#freeMain = top;
    this.pending = 0;
    return map;
  }

  /**
   * Summarise node i's subtree from i's own line (its gap and its
   * children's summaries) into slot `side` of node p; sets #changed when the
   * stored summary differs.
   */
  #sum(i: number, p: number, side: number): void {
    const w = this.w;
    const f = this.f;
    const b = this.b;
    const ib = i << 6;
    const iw = i << 4;
    const pb = p << 6;
    const pw = p << 4;
    // Differences are OR-ed into `diff` (no branch per field: which fields
    // change is unpredictable).
    const hl = b[ib + B_H]!;
    const hr = b[ib + B_H + 1]!;
    const ht = (hl > hr ? hl : hr) + 1;
    let diff = b[pb + B_H + side]! ^ ht;
    this.#heightChanged = diff !== 0;
    // (Not only when the stored height changed: a rotation stores a node's
    // new height in a slot that held another node's, maybe the same.)
    const hiEnd = this.#hiEnd;
    if (hiEnd !== 0 && (i >= hiEnd ? ht >= HIGH : ht < HIGH - 1)) {
      this.#heightMoved(i);
    }
    b[pb + B_H + side] = ht;
    const gap = f[(i << 3) + F_GAP]!;
    // Int32 from here on: a clamped gap and the stored maxima are below 2^31.
    const cap = this.#cap;
    const g = gap < cap ? gap | 0 : cap;
    const ml = w[iw + I_CM]!;
    const mr = w[iw + I_CM + 1]!;
    let m = g;
    if (ml > m) m = ml;
    if (mr > m) m = mr;
    diff |= w[pw + I_CM + side]! ^ m;
    w[pw + I_CM + side] = m;
    const orders = this.#orders;
    if (orders !== 0) {
      if (m === cap) diff |= this.#sumSaturated(p, side, orders);
      else {
        const db = pb + B_D + (side << 3);
        const small = orders < 8 ? orders : 8;
        // d_k = m - max(own u_k, left maxU_k, right maxU_k)
        //     = min(m - g + r_k, m - ml + dl_k, m - mr + dr_k),
        // where r_k = (-gap start) mod 2^k. The minimum is below 2^k <=
        // 2048, so clamping each base term at 0xffff changes nothing.
        const a0 = m - g < 0xffff ? (m - g) | 0 : 0xffff;
        const a1 = m - ml < 0xffff ? (m - ml) | 0 : 0xffff;
        const a2 = m - mr < 0xffff ? (m - mr) | 0 : 0xffff;
        // Only the low bits of the gap start matter, and `| 0` keeps
        // exactly those (ToInt32 is modulo 2^32; `%` on doubles would be an
        // x87 fprem).
        const neg = -(f[(i << 3) + F_LO]! - gap) | 0;
        const lb = ib + B_D;
        const rb = ib + B_D + 8;
        for (let k = 1; k <= small; k++) {
          let d = a0 + (neg & ((1 << k) - 1));
          const dl = a1 + b[lb + k]!;
          const dr = a2 + b[rb + k]!;
          if (dl < d) d = dl;
          if (dr < d) d = dr;
          diff |= b[db + k]! ^ d;
          b[db + k] = d;
        }
        if (orders > 8) {
          const ext = this.#ext;
          const le = (i << 3) - 9;
          const re = (i << 3) + 4 - 9;
          const pe = (p << 3) + (side << 2) - 9;
          for (let k = 9; k <= orders; k++) {
            let d = a0 + (neg & ((1 << k) - 1));
            const dl = a1 + ext[le + k]!;
            const dr = a2 + ext[re + k]!;
            if (dl < d) d = dl;
            if (dr < d) d = dr;
            diff |= ext[pe + k]! ^ d;
            ext[pe + k] = d;
          }
        }
      }
    }
    this.#changed = diff !== 0;
  }

  /**
   * A saturated summary (largest gap >= the cap): every usable length counts as
   * reachable, so all d_k are 0. Returns non-zero when that changed them.
   */
  #sumSaturated(p: number, side: number, orders: number): number {
    const b = this.b;
    const db = (p << 6) + B_D + (side << 3);
    let diff = 0;
    for (let k = 1; k <= orders && k <= 8; k++) {
      diff |= b[db + k]!;
      b[db + k] = 0;
    }
    const ext = this.#ext;
    const pe = (p << 3) + (side << 2) - 9;
    for (let k = 9; k <= orders; k++) {
      diff |= ext[pe + k]!;
      ext[pe + k] = 0;
    }
    return diff;
  }

  /** Copy the child summary in slot ss of node s to slot ds of node d. */
  #copySlot(s: number, ss: number, d: number, ds: number): void {
    const w = this.w;
    const b = this.b;
    b[(d << 6) + B_H + ds] = b[(s << 6) + B_H + ss]!;
    w[(d << 4) + I_CM + ds] = w[(s << 4) + I_CM + ss]!;
    w[(d << 4) + I_D + 2 * ds] = w[(s << 4) + I_D + 2 * ss]!;
    w[(d << 4) + I_D + 2 * ds + 1] = w[(s << 4) + I_D + 2 * ss + 1]!;
    if (this.#orders > 8) {
      const ext = this.#ext;
      const se = (s << 3) + 4 * ss;
      const de = (d << 3) + 4 * ds;
      ext[de] = ext[se]!;
      ext[de + 1] = ext[se + 1]!;
      ext[de + 2] = ext[se + 2]!;
    }
  }

  /** Point p's child link that held `old` at `neu`; returns its side. */
  #relink(p: number, old: number, neu: number): number {
    const w = this.w;
    if (w[(p << 4) + I_LEFT] === old) {
      w[(p << 4) + I_LEFT] = neu;
      return 0;
    }
    w[(p << 4) + I_RIGHT] = neu;
    return 1;
  }

  #rotateRight(y: number): number {
    const w = this.w;
    const x = w[(y << 4) + I_LEFT]!;
    const p = w[(y << 4) + I_PARENT]!;
    const xr = w[(x << 4) + I_RIGHT]!;
    w[(y << 4) + I_LEFT] = xr;
    this.#copySlot(x, 1, y, 0);
    if (xr !== 0) w[(xr << 4) + I_PARENT] = y;
    w[(x << 4) + I_RIGHT] = y;
    w[(y << 4) + I_PARENT] = x;
    w[(x << 4) + I_PARENT] = p;
    const side = this.#relink(p, y, x);
    this.#sum(y, x, 1);
    this.#sum(x, p, side);
    return x;
  }

  #rotateLeft(x: number): number {
    const w = this.w;
    const y = w[(x << 4) + I_RIGHT]!;
    const p = w[(x << 4) + I_PARENT]!;
    const yl = w[(y << 4) + I_LEFT]!;
    w[(x << 4) + I_RIGHT] = yl;
    this.#copySlot(y, 0, x, 1);
    if (yl !== 0) w[(yl << 4) + I_PARENT] = x;
    w[(y << 4) + I_LEFT] = x;
    w[(x << 4) + I_PARENT] = y;
    w[(y << 4) + I_PARENT] = p;
    const side = this.#relink(p, x, y);
    this.#sum(x, y, 0);
    this.#sum(y, p, side);
    return y;
  }

  /**
   * Restore the AVL balance at node i and store its subtree's summary in
   * its parent (#changed says whether that changed); returns the subtree
   * root.
   */
  #balance(i: number): number {
    const w = this.w;
    const b = this.b;
    const hl = b[(i << 6) + B_H]!;
    const hr = b[(i << 6) + B_H + 1]!;
    if (hl > hr + 1) {
      const l = w[(i << 4) + I_LEFT]!;
      if (b[(l << 6) + B_H]! < b[(l << 6) + B_H + 1]!) this.#rotateLeft(l);
      return this.#rotateRight(i);
    }
    if (hr > hl + 1) {
      const r = w[(i << 4) + I_RIGHT]!;
      if (b[(r << 6) + B_H + 1]! < b[(r << 6) + B_H]!) this.#rotateRight(r);
      return this.#rotateLeft(i);
    }
    const p = w[(i << 4) + I_PARENT]!;
    this.#sum(i, p, w[(p << 4) + I_LEFT] === i ? 0 : 1);
    return i;
  }

  /**
   * Rebalance and re-summarise from `node` up to the root. Nodes up to and
   * including `last` (an ancestor-or-self of `node` whose subtree holds
   * every direct change) are always redone; from `last` on, once the
   * summary a node stores in its parent comes out unchanged, no ancestor
   * can change either, so the walk stops. Each step reads the node's own
   * line and writes its parent's, the next step's node.
   *
   * `merged` (0 for none) is a node whose gap grew by swallowing a removed
   * node and its gap. From `last` on, once a height comes out unchanged, no
   * rotation can follow and each ancestor's subtree lost only gaps that lie
   * inside the merged one, so its summary is the old one maxed with the
   * merged gap's: {@linkcode IovaTree.#mergeUp} finishes without
   * recomputing from the children.
   */
  #fixUp(node: number, last: number, merged: number): void {
    const w = this.w;
    let armed = false;
    while (node !== 0) {
      const parent = w[(node << 4) + I_PARENT]!;
      if (node === last) armed = true;
      this.#balance(node);
      if (armed) {
        if (!this.#changed) return;
        if (merged !== 0 && !this.#heightChanged) {
          this.#mergeUp(parent, merged);
          return;
        }
      }
      node = parent;
    }
  }

  /**
   * From node a up: max the summary each ancestor's parent stores for it
   * with node c's gap (see {@linkcode IovaTree.#fixUp}); stops at the first
   * one it leaves unchanged.
   */
  #mergeUp(a: number, c: number): void {
    const w = this.w;
    const f = this.f;
    const b = this.b;
    const orders = this.#orders;
    const small = orders < 8 ? orders : 8;
    const gap = f[(c << 3) + F_GAP]!;
    const cap = this.#cap;
    const g = gap < cap ? gap | 0 : cap;
    // The merged gap's usable length from its first 2^k-aligned granule is
    // gap - ((-start) mod 2^k); `| 0` keeps the low bits exactly.
    const neg = -(f[(c << 3) + F_LO]! - gap) | 0;
    while (a !== 0) {
      const p = w[(a << 4) + I_PARENT]!;
      const side = w[(p << 4) + I_LEFT] === a ? 0 : 1;
      const pw = (p << 4) + I_CM + side;
      const m = w[pw]!;
      // A saturated summary stays saturated: nothing above changes.
      if (m === cap) return;
      if (g === cap) {
        // The merged gap saturates this summary: recompute the rest the
        // plain way.
        this.#fixUp(a, a, 0);
        return;
      }
      const m2 = g > m ? g : m;
      let changed = m2 !== m;
      // d_k = largest gap - largest usable length; both may grow.
      const db = (p << 6) + B_D + (side << 3);
      for (let k = 1; k <= small; k++) {
        const u = g - (neg & ((1 << k) - 1));
        const was = m - b[db + k]!;
        if (u > was) {
          b[db + k] = m2 - u;
          changed = true;
        } else if (m2 !== m) b[db + k] = m2 - was;
      }
      if (orders > 8) {
        const ext = this.#ext;
        const pe = (p << 3) + (side << 2) - 9;
        for (let k = 9; k <= orders; k++) {
          const u = g - (neg & ((1 << k) - 1));
          const was = m - ext[pe + k]!;
          if (u > was) {
            ext[pe + k] = m2 - u;
            changed = true;
          } else if (m2 !== m) ext[pe + k] = m2 - was;
        }
      }
      if (!changed) return;
      w[pw] = m2;
      a = p;
    }
  }

  /**
   * Maintain alignment orders up to k from now on, recomputing every node
   * once (O(n); happens at most ALIGN_ORDERS times per tree).
   */
  #raiseOrders(k: number): void {
    this.#orders = k;
    this.#resummarise();
  }

  /**
   * Saturate stored gaps at no less than `need` granules from now on,
   * recomputing every node once (O(n); the cap at least doubles each time,
   * so this happens at most about 27 times per tree).
   */
  #raiseCap(need: number): void {
    let cap = this.#cap;
    while (cap < need && cap < SAT) cap = cap < 0x40000000 ? cap * 2 : SAT;
    this.#cap = cap;
    this.#resummarise();
  }

  /** Recompute every node's summary, children first (O(n)). */
  #resummarise(): void {
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
    const w = this.w;
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i]!;
      const p = w[(n << 4) + I_PARENT]!;
      this.#sum(n, p, w[(p << 4) + I_LEFT] === n ? 0 : 1);
    }
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
    if (succ === 0) this.#rightmost = i;
    this.#attach(i, parent, parent === 0 || succ === parent);
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

  /** Make i a leaf child of parent (node 0's left: the root). */
  #attach(i: number, parent: number, left: boolean): void {
    const w = this.w;
    const b = this.b;
    const iw = i << 4;
    w[iw + I_LEFT] = 0;
    w[iw + I_RIGHT] = 0;
    w[iw + I_PARENT] = parent;
    w[iw + I_CM] = -1;
    w[iw + I_CM + 1] = -1;
    w[iw + I_D] = 0;
    w[iw + I_D + 1] = 0;
    w[iw + I_D + 2] = 0;
    w[iw + I_D + 3] = 0;
    b[(i << 6) + B_H] = 0;
    b[(i << 6) + B_H + 1] = 0;
    if (this.#orders > 8) this.#ext.fill(0, i << 3, (i << 3) + 8);
    const side = left ? 0 : 1;
    w[(parent << 4) + I_LEFT + side] = i;
    this.#sum(i, parent, side);
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
    // Footprint first: gap + hi can pass 2^53 (and round) near the top of
    // a 2^53 aperture, gap + (hi - lo) cannot.
    const span = f[(i << 3) + F_GAP]! +
      (f[(i << 3) + F_HI]! - f[(i << 3) + F_LO]!);
    const l = w[(i << 4) + I_LEFT]!;
    const r = w[(i << 4) + I_RIGHT]!;
    const p = w[(i << 4) + I_PARENT]!;
    if (r === 0) {
      // The successor is the nearest ancestor reached from a left child.
      let cur = i;
      let succ = p;
      while (succ !== 0 && w[(succ << 4) + I_RIGHT] === cur) {
        cur = succ;
        succ = w[(succ << 4) + I_PARENT]!;
      }
      if (succ === 0) throw new Error("IovaTree.remove: no successor");
      this.size--;
      f[(succ << 3) + F_GAP]! += span;
      const side = this.#relink(p, i, l);
      this.#copySlot(i, 0, p, side);
      if (l !== 0) w[(l << 4) + I_PARENT] = p;
      this.#fixUp(p, succ, succ);
      return;
    }
    this.size--;
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
      this.#copySlot(y, 1, yp, 0);
      if (yr !== 0) w[(yr << 4) + I_PARENT] = yp;
      w[(y << 4) + I_RIGHT] = r;
      this.#copySlot(i, 1, y, 1);
      w[(r << 4) + I_PARENT] = y;
      start = yp;
    }
    w[(y << 4) + I_LEFT] = l;
    this.#copySlot(i, 0, y, 0);
    if (l !== 0) w[(l << 4) + I_PARENT] = y;
    w[(y << 4) + I_PARENT] = p;
    // p's slot keeps i's summary: the old summary of this position, which
    // the fix-up compares against.
    this.#relink(p, i, y);
    this.#fixUp(start, y, y);
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

  /** Largest usable length from a 2^k-aligned start over child `side` of x. */
  #maxU(x: number, side: number, k: number): number {
    const m = this.w[(x << 4) + I_CM + side]!;
    if (m === this.#cap) return Infinity;
    if (k === 0) return m;
    return m -
      (k <= 8
        ? this.b[(x << 6) + B_D + 8 * side + k]!
        : this.#ext[(x << 3) + 4 * side + k - 9]!);
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
    // A saturated subtree must surely hold a fit: the cap covers every
    // usable length this search could need (see #cap).
    if (size + align - 1 > this.#cap && this.#cap < SAT) {
      this.#raiseCap(size + align - 1);
    }
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
    const vals = this.#vals;
    let sp = 0;
    // Descend by key: nodes at or below the limit are candidates, pushed so
    // that the rightmost pops first (each subtree with the bound its parent
    // stores); the first node above the limit has the one gap that the
    // limit cuts. When the limit is above every node, that descent is the
    // right spine, whose entries would pop bottom-up: they are instead
    // pushed lazily, one spine node at a time from the rightmost up, when
    // the stack runs dry (same order, but an allocation near the top never
    // walks the whole spine).
    let spine = 0;
    let cur = this.root;
    if (limit >= f[(this.#rightmost << 3) + F_LO]!) {
      spine = this.#rightmost;
      cur = 0;
    }
    let cut = 0;
    while (cur !== 0) {
      const fb = cur << 3;
      if (f[fb + F_LO]! <= limit) {
        const ul = this.#maxU(cur, 0, k);
        if (ul >= size) {
          vals[sp] = ul;
          stack[sp++] = w[(cur << 4) + I_LEFT]!;
        }
        if (this.#fits(cur, size, align, limit)) stack[sp++] = -cur;
        cur = w[(cur << 4) + I_RIGHT]!;
      } else {
        cut = cur;
        cur = w[(cur << 4) + I_LEFT]!;
      }
    }
    if (cut !== 0 && this.#fits(cut, size, align, limit)) return cut;
    // Exact case (sure === size): every entry holds a fit (short of
    // saturated bounds), the first popped is the highest, and reaching it is
    // one descent.
    let threshold = size;
    let left = probes;
    for (;;) {
      if (sp === 0) {
        if (spine === 0) break;
        const ul = this.#maxU(spine, 0, k);
        if (ul >= size) {
          vals[sp] = ul;
          stack[sp++] = w[(spine << 4) + I_LEFT]!;
        }
        if (this.#fits(spine, size, align, limit)) stack[sp++] = -spine;
        spine = w[(spine << 4) + I_PARENT]!;
        continue;
      }
      const e = stack[--sp]!;
      if (e < 0) {
        // Node entries were pushed only when they fit; recompute foundAddr.
        this.#fits(-e, size, align, limit);
        return -e;
      }
      if (vals[sp]! < threshold) continue;
      const before = sp;
      const ul = this.#maxU(e, 0, k);
      if (ul >= threshold) {
        vals[sp] = ul;
        stack[sp++] = w[(e << 4) + I_LEFT]!;
      }
      if (this.#fits(e, size, align, limit)) stack[sp++] = -e;
      const ur = this.#maxU(e, 1, k);
      if (ur >= threshold) {
        vals[sp] = ur;
        stack[sp++] = w[(e << 4) + I_RIGHT]!;
      }
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
   * Visits the nodes whose stored maximum may beat the best found so far:
   * few when the gaps stay below the cap, up to every node holding a gap
   * at or above it otherwise (O(n) at worst; for statistics only).
   *
   * @param topSlack Granules of the anchor gap that are outside the aperture.
   * @returns The largest free run in granules.
   */
  largestGap(topSlack: number): number {
    const f = this.f;
    const w = this.w;
    const cap = this.#cap;
    const rightmost = this.#rightmost;
    // Stored maxima are exact below the cap: a subtree whose maximum
    // cannot beat the best so far is skipped, a saturated one searched.
    // Deepest-first with the larger child last, so the best rises early.
    let best = 0;
    const stack: number[] = this.root === 0 ? [] : [this.root];
    while (stack.length > 0) {
      const n = stack.pop()!;
      const g = f[(n << 3) + F_GAP]! - (n === rightmost ? topSlack : 0);
      if (g > best) best = g;
      const ml = w[(n << 4) + I_CM]!;
      const mr = w[(n << 4) + I_CM + 1]!;
      const l = ml === cap || ml > best ? w[(n << 4) + I_LEFT]! : 0;
      const r = mr === cap || mr > best ? w[(n << 4) + I_RIGHT]! : 0;
      if (ml >= mr) {
        if (r !== 0) stack.push(r);
        if (l !== 0) stack.push(l);
      } else {
        if (l !== 0) stack.push(l);
        if (r !== 0) stack.push(r);
      }
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
    // Recompute every summary the slow way and compare it with the copy the
    // parent stores.
    const check = (
      n: number,
      parent: number,
      side: number,
    ): void => {
      let h = 0;
      let m = -1;
      const u: number[] = new Array(ALIGN_ORDERS + 1).fill(-1);
      if (n !== 0) {
        if (w[(n << 4) + I_PARENT] !== parent) {
          problems.push(`node ${n} has a stale parent link`);
        }
        const l = w[(n << 4) + I_LEFT]!;
        const r = w[(n << 4) + I_RIGHT]!;
        check(l, n, 0);
        check(r, n, 1);
        const hl = this.b[(n << 6) + B_H]!;
        const hr = this.b[(n << 6) + B_H + 1]!;
        h = Math.max(hl, hr) + 1;
        if (Math.abs(hl - hr) > 1) problems.push(`node ${n} is unbalanced`);
        const lo = f[(n << 3) + F_LO]!;
        const gap = f[(n << 3) + F_GAP]!;
        const p = lo - gap;
        m = Math.max(gap, exact(l).m, exact(r).m);
        for (let k = 0; k <= ALIGN_ORDERS; k++) {
          const own = lo - Math.ceil(p / 2 ** k) * 2 ** k;
          u[k] = Math.max(own, exact(l).u[k]!, exact(r).u[k]!);
        }
      }
      sums.set(n, { m, u });
      if (this.b[(parent << 6) + B_H + side] !== h) {
        problems.push(`node ${n} height is stale`);
      }
      const cm = w[(parent << 4) + I_CM + side]!;
      const cap = this.#cap;
      if (cm !== (m < cap ? m : cap)) {
        problems.push(`node ${n} largest-gap summary is stale`);
      }
      for (let k = 1; k <= this.#orders; k++) {
        const want = m >= cap ? Infinity : u[k];
        if (this.#maxU(parent, side, k) !== want) {
          problems.push(`node ${n} aligned-gap summary ${k} is stale`);
        }
      }
    };
    const sums = new Map<number, { m: number; u: number[] }>();
    const none = { m: -1, u: new Array(ALIGN_ORDERS + 1).fill(-1) };
    const exact = (n: number) => (n === 0 ? none : sums.get(n)!);
    check(this.root, 0, 0);
    this.#auditSlots(list.length, problems);
    return problems;
  }

  /**
   * Every slot below #nextUnused is a node's or on exactly one free list,
   * the dense region's list holding only its own slots and the main list
   * none of them; once compacted, the main slots are free exactly when
   * their bits are set, as many as #freeMain counts, and no bit past the
   * last slot is; the spare stack holds main slots only (free or not) and
   * the slot released last is one (or 0); no node waits for a migration.
   */
  #auditSlots(nodes: number, problems: string[]): void {
    const w = this.w;
    const b = this.b;
    const seen = new Uint8Array(this.#capacity);
    let free = 0;
    const mainBase = this.#mainBase;
    const cap = this.#capacity;
    const isMain = (s: number): boolean =>
      mainBase !== 0 && s >= mainBase && s < cap;
    // Each of these would hand out a slot outside the store, or read a
    // word past the bitmap.
    for (let s = cap; s < this.#bits.length * 32; s++) {
      if (((this.#bits[s >>> 5]! >>> (s & 31)) & 1) === 1) {
        problems.push(`slot ${s} past the last (${cap - 1}) is marked free`);
        break;
      }
    }
    if (this.#spareTop < 0 || this.#spareTop > this.#spare.length) {
      problems.push(
        `spare stack top ${this.#spareTop} is outside 0..${this.#spare.length}`,
      );
    } else {
      for (let k = 0; k < this.#spareTop; k++) {
        const s = this.#spare[k]!;
        if (!isMain(s)) {
          problems.push(`spare stack entry ${k} is slot ${s}, not a main slot`);
          break;
        }
      }
    }
    if (this.#lastFreed !== 0 && !isMain(this.#lastFreed)) {
      problems.push(
        `the slot released last, ${this.#lastFreed}, is no main slot`,
      );
    }
    if (mainBase !== 0) {
      // Main slots: free exactly when their bit is set.
      for (let s = mainBase; s < this.#capacity; s++) {
        const set = ((this.#bits[s >>> 5]! >>> (s & 31)) & 1) === 1;
        if (set !== (b[(s << 6) + B_KIND] === 0)) {
          problems.push(`slot ${s} is ${set ? "" : "not "}marked free`);
          return;
        }
        if (set) free++;
      }
      if (free !== this.#freeMain) {
        problems.push(
          `${free} main slots free, the count says ${this.#freeMain}`,
        );
      }
      for (let s = 0; s < mainBase; s++) {
        if (((this.#bits[s >>> 5]! >>> (s & 31)) & 1) === 1) {
          problems.push(`dense slot ${s} is marked free in the main bitmap`);
          return;
        }
      }
    }
    for (
      const [head, dense] of [[this.#hiFree, true], [
        this.#freeHead,
        false,
      ]] as const
    ) {
      for (let s = head; s !== 0; s = w[(s << 4) + I_LEFT]!) {
        if (
          s >= this.#nextUnused || seen[s] !== 0 ||
          b[(s << 6) + B_KIND] !== 0 ||
          (s < this.#hiEnd) !== dense
        ) {
          problems.push(`free slot list is broken at slot ${s}`);
          return;
        }
        seen[s] = 1;
        free++;
      }
    }
    if (free + nodes !== this.#nextUnused - 1) {
      problems.push(
        `${free} free slots + ${nodes} nodes != ${this.#nextUnused - 1} slots`,
      );
    }
    if (this.pending !== 0) problems.push(`${this.pending} nodes await a move`);
  }
}
