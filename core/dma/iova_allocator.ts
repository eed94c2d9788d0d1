/**
 * The IOVA allocator of the dma-mapping adapter: hands out I/O virtual
 * address ranges top-down inside a device's aperture and DMA mask.
 *
 * - Sizes are rounded up to whole granules. Sizes of up to `cacheMaxSize`
 *   (default 32 granules) are further rounded up to a power of two, which
 *   they occupy, as the kernel's fast path does, so that a freed range can
 *   serve any later request of its class. Larger sizes occupy only their
 *   granule-rounded size but are still aligned to its power-of-two round-up
 *   (33 granules occupy 33, aligned to 64), unless `maxAlignment` caps it.
 * - Every range starts at a multiple of that alignment (or of
 *   `constraints.alignment` if larger), ends at or below `min(limit, end)`,
 *   and is the highest such placement. This is exact for alignments up to
 *   2^11 granules (8 MiB with 4 KiB granules); beyond that see
 *   {@linkcode IovaAllocatorOptions.searchProbes}. IOVA 0 is never handed out.
 * - Allocation and free are O(log n) in the busy ranges: an AVL tree of
 *   busy ranges, each knowing the free gap below it, augmented per subtree
 *   with the largest gap and the largest gap usable from a 2^k-aligned start
 *   (k = 1..11). One descent finds the highest fitting gap; nothing scans
 *   the free list, so the kernel's linear-search pathology cannot occur.
 *   Only the orders requested so far are maintained: the first request of
 *   a higher alignment order re-summarises the tree once (O(n); at most 11
 *   times in an allocator's life). Likewise the stored gaps saturate just
 *   above the largest size plus alignment requested so far (a power of
 *   two), and the first request past it re-summarises the tree (at most
 *   about 27 times): a free or an allocation that changes a gap beyond
 *   that bound stops climbing at the first saturated ancestor.
 *   `stats().largestFreeGap` then searches the saturated subtrees.
 * - Freed ranges of cacheable size go to a per-size magazine cache (a
 *   loaded and a previous magazine of 127 entries per class, one modelled
 *   CPU, plus a bounded depot of full magazines). They stay busy in the
 *   tree and are reused before the tree is searched. When the depot is full
 *   a freed range goes straight back to the tree.
 * - A cache hit is O(1) and touches only typed arrays: the allocator
 *   remembers the last validated limit, so a repeated one (as a device's
 *   DMA mask is) skips straight to the top of the loaded magazine; free
 *   finds the allocation through an open-addressing hash of start granules,
 *   which is also what detects a double free or a wrong size.
 *
 * @module
 */

import { IommuError } from "../errors.ts";
import {
  checkAddress,
  checkList,
  checkObject,
  checkRange,
  checkSize,
  hex,
  isPowerOfTwo,
} from "../address.ts";
import * as T from "./iova_tree.ts";
import { IovaHash } from "./iova_hash.ts";
import { IOVA_MAGAZINE_SIZE, IovaRcache } from "./iova_rcache.ts";
import type { IovaConstraints } from "../iommu.ts";

// Imported bindings are read through a module cell (with a TDZ check) on
// every use in optimised code; module-local consts fold to literals.
const IovaTree = T.IovaTree;
const B_KIND = T.B_KIND;
const F_HI = T.F_HI;
const F_LO = T.F_LO;
const KIND_ANCHOR = T.KIND_ANCHOR;
const KIND_CACHED = T.KIND_CACHED;
const KIND_LIVE = T.KIND_LIVE;
const KIND_RESERVED = T.KIND_RESERVED;

// The placement rules a unit asks for (for example the Exynos System MMU
// v3.x FLPD-cache rules: starts aligned to 128 or 256 KiB, and on v3.3 a
// hole of at least 128 KiB between consecutive regions) are declared by the
// core beside the unit capabilities; re-exported here for convenience.
export type { IovaConstraints };
export { IOVA_MAGAZINE_SIZE };

/** Largest limit accepted: a 53-bit DMA mask plus one. */
const MAX_LIMIT = 2 ** 53;

/** A range of IOVA space in bytes. */
export interface IovaRange {
  /** First byte. */
  start: number;
  /** Length in bytes. */
  size: number;
}

/** Construction options of an {@linkcode IovaAllocator}. */
export interface IovaAllocatorOptions {
  /** Allocation unit in bytes, a power of two (the smallest IOMMU page); default 4096. */
  granule?: number;
  /**
   * Lowest allocatable IOVA in bytes, granule-aligned. Raised to `granule`
   * when lower, so IOVA 0 is never handed out. Default: `granule`.
   */
  start?: number;
  /** Exclusive end of the aperture in bytes, granule-aligned, at most 2^53. */
  end: number;
  /** Ranges never handed out (clipped to the aperture; overlaps merge). */
  reserved?: readonly IovaRange[];
  /**
   * Optional placement rules: `alignment` (bytes, a power of two) is a
   * minimum start alignment on top of the natural one; `guardGap` (bytes,
   * rounded up to granules) is kept unallocated after every allocation and
   * reserved range, so any two consecutive regions are at least that far
   * apart.
   */
  constraints?: IovaConstraints;
  /**
   * Largest size in bytes that is rounded to a power of two and cached on
   * free; a power-of-two multiple of the granule, or 0 for no cache and no
   * rounding. Default: 32 granules (128 KiB with 4 KiB granules).
   */
  cacheMaxSize?: number;
  /**
   * Cap in bytes on the natural (power-of-two) alignment, a power of two;
   * like the vendor `CONFIG_IOMMU_LIMIT_IOVA_ALIGNMENT`, it trades exact
   * natural alignment for less waste on big buffers. `constraints.alignment`
   * still applies on top. Default: no cap.
   */
  maxAlignment?: number;
  /** Full magazines each size class's depot may hold; default 32. */
  depotSize?: number;
  /**
   * For alignments above 2^11 granules only (which the tree's summaries
   * bound but do not answer exactly): how many subtrees that might have held
   * a fit but did not a search explores before it settles for the highest
   * gap that surely fits (which may be lower than the highest aligned fit).
   * Bounds such a search at O(probes * log n); a fit is never missed (if the
   * settled search finds nothing, an unbounded one runs). Default 64.
   * Only for a request whose size plus alignment reaches 2^31 granules
   * (8 TiB with 4 KiB granules), where the tree's summaries stop short of
   * it: subtrees holding a gap of 2^31 granules or more then count as sure
   * fits, so with such gaps and a small `probes`, the gap settled for can
   * differ from what an unsaturated search would settle for (still a fit,
   * usually a higher one), and the O(probes * log n) bound no longer holds.
   */
  searchProbes?: number;
}

/** Counters of an {@linkcode IovaAllocator}, as a plain object. */
export interface IovaStats {
  /** Live (allocated, not freed) ranges. */
  liveRanges: number;
  /** Bytes occupied by live ranges (after rounding; guards not counted). */
  liveBytes: number;
  /** Freed ranges parked in the cache (still unavailable to the tree). */
  cachedRanges: number;
  /** Bytes of those cached ranges. */
  cachedBytes: number;
  /** Reserved ranges (after merging). */
  reservedRanges: number;
  /** Largest run of unused IOVA space in bytes (cached ranges and guards count as used). */
  largestFreeGap: number;
  /** Allocations served by the cache. */
  cacheHits: number;
  /** Cacheable allocations the cache could not serve. */
  cacheMisses: number;
  /** Full magazines in all depots. */
  depotMagazines: number;
  /** Successful allocations. */
  allocs: number;
  /** Successful frees. */
  frees: number;
  /**
   * Allocations that failed with ENOMEM because no free range fits. An
   * allocation refused because the tree or the address index cannot grow
   * (full, or no host memory) also fails with ENOMEM but is not counted
   * here; it allocates nothing, though it may have counted a cache miss and
   * flushed the cache on the way (see {@linkcode IovaAllocator.alloc}).
   */
  allocFailures: number;
  /** Times the cache was flushed (by a failing search or {@linkcode IovaAllocator.flushCache}). */
  cacheFlushes: number;
  /**
   * Searches that gave up probing and settled for a surely fitting gap
   * (only for alignments above 2^11 granules; see
   * {@linkcode IovaAllocatorOptions.searchProbes}).
   */
  searchFallbacks: number;
  /**
   * Node slots the range tree holds in memory (64 bytes each, one per busy
   * range plus free ones). They grow by half when full; a tree of at least
   * 65,536 slots whose ranges fall below half of them (after a free or a
   * cache flush) is compacted to about 1.5 slots per range, plus a dense
   * region for the nodes near the top of the tree (about 1 slot in 40).
   */
  nodeSlots: number;
  /**
   * Slots of the address index (4 bytes each; a power of two, at least
   * twice the busy ranges). It doubles when half full, and a free that
   * leaves it under one range in eight slots rebuilds it at four slots per
   * range (not below 1,024).
   */
  indexSlots: number;
}

function pow2Ceil(n: number): number {
  // Shifts, not `2 **`: exponentiation is a libm call on the hot path.
  if (n <= 0x40000000) return n <= 1 ? 1 : 1 << (32 - Math.clz32(n - 1));
  let p = 2 ** Math.ceil(Math.log2(n));
  while (p / 2 >= n) p /= 2;
  while (p < n) p *= 2;
  return p;
}

// Error builders live outside the hot methods to keep those small.
function badLimit(limit: number): IommuError {
  return new IommuError(
    "EINVAL",
    `IOVA limit ${hex(limit)} must be an integer in 1..2^53 (a DMA mask + 1)`,
  );
}

function tooBig(
  size: number,
  n: number,
  lo: number,
  hi: number,
  granule: number,
): IommuError {
  return new IommuError(
    "ERANGE",
    `IOVA size ${hex(size)} (${hex(n * granule)} rounded) cannot fit in ${
      hex(lo * granule)
    }..${hex(hi * granule)}`,
  );
}

/** Throws the error `free` owes for malformed arguments, in its order. */
function badFreeArgs(iova: number, size: number): void {
  checkAddress(iova, "IOVA");
  checkSize(size, "IOVA size");
}

function notLive(iova: number): IommuError {
  return new IommuError(
    "ENOENT",
    `IOVA ${hex(iova)} is not the start of a live allocation`,
  );
}

function sizeMismatch(iova: number, had: number, size: number): IommuError {
  return new IommuError(
    "EINVAL",
    `IOVA ${hex(iova)} was allocated with ${hex(had)} bytes, freed with ${
      hex(size)
    }`,
  );
}

function badOption(what: string, value: unknown, rule: string): IommuError {
  return new IommuError(
    "EINVAL",
    `IOVA allocator ${what} ${
      typeof value === "number" ? hex(value) : String(value)
    } ${rule}`,
  );
}

/**
 * Allocator of I/O virtual address ranges for one IOVA space (one domain):
 * top-down, naturally aligned, limit-aware, with reserved ranges, a per-size
 * magazine cache and optional unit constraints. All sizes and addresses are
 * bytes.
 *
 * @example
 * ```ts
 * import { IovaAllocator } from "./iova_allocator.ts";
 * const iova = new IovaAllocator({ end: 2 ** 36 });
 * const a = iova.alloc(3 * 4096, 2 ** 32); // a 32-bit master
 * // Highest naturally aligned 16 KiB slot below 4 GiB.
 * if (a !== 2 ** 32 - 16384) throw new Error("unexpected IOVA");
 * iova.free(a, 3 * 4096);
 * ```
 */
export class IovaAllocator {
  readonly #granule: number;
  readonly #inv: number;
  readonly #startPfn: number;
  readonly #endPfn: number;
  readonly #guard: number;
  readonly #align: number;
  readonly #maxAlign: number;
  readonly #cacheMax: number;
  readonly #probes: number;
  readonly #tree: T.IovaTree;
  readonly #hash: IovaHash;
  readonly #rcache: IovaRcache;
  // Few counters on the hot paths: live ranges = allocs - frees, allocs =
  // hits + tree allocations, and the cache's contents are counted from its
  // magazines when asked.
  #liveGranules = 0;
  #reserved = 0;
  #hits = 0;
  #treeAllocs = 0;
  #misses = 0;
  #frees = 0;
  #failures = 0;
  #flushes = 0;
  /**
   * The `limit` of the last validated alloc call (the aperture end when it
   * had none; always a number, so the hit path's comparison stays a float
   * compare) and its footprint limit in granules.
   */
  #lastLimit: number;
  #lastLimitF: number;
  readonly #endBytes: number;

  /**
   * Create an allocator for one IOVA space; only the anchor and the given
   * reservations are busy at first.
   *
   * @param options Aperture, granule, reservations, constraints and cache sizing.
   * @throws {IommuError} `EINVAL` for options (or a reserved range) that are
   * not objects, reserved ranges that are not a list, a granule that is not
   * a power of two, an unaligned start or end, a bad constraint, cache or probe option;
   * `ERANGE` when the aperture is empty or ends beyond 2^53; whatever
   * {@linkcode IovaAllocator.reserve} throws for a bad reserved range.
   */
  constructor(options: IovaAllocatorOptions) {
    checkObject(options, "IOVA allocator options");
    const reserved = options.reserved ?? [];
    checkList(reserved, "IOVA allocator reserved ranges");
    for (let i = 0; i < reserved.length; i++) {
      checkObject(reserved[i], `IOVA allocator reserved range ${i}`);
    }
    const granule = options.granule ?? 4096;
    if (!isPowerOfTwo(granule)) {
      throw badOption("granule", granule, "is not a power of two up to 2^52");
    }
    let start = checkAddress(options.start ?? granule, "IOVA aperture start");
    const end = options.end;
    if (typeof end !== "number" || !Number.isInteger(end) || end < 0) {
      throw badOption("aperture end", end, "is not a non-negative integer");
    }
    if (end > MAX_LIMIT) {
      throw new IommuError(
        "ERANGE",
        `IOVA aperture end ${hex(end)} is beyond 2^53`,
      );
    }
    if (start % granule !== 0) {
      throw badOption(
        "aperture start",
        start,
        `is not aligned to ${hex(granule)}`,
      );
    }
    if (end % granule !== 0) {
      throw badOption("aperture end", end, `is not aligned to ${hex(granule)}`);
    }
    if (start < granule) start = granule;
    if (end <= start) {
      throw new IommuError(
        "ERANGE",
        `IOVA aperture ${hex(start)}..${hex(end)} is empty`,
      );
    }
    const c = options.constraints ?? {};
    const align = c.alignment ?? granule;
    if (!isPowerOfTwo(align)) {
      throw badOption(
        "constraint alignment",
        align,
        "is not a power of two up to 2^52",
      );
    }
    const guard = c.guardGap ?? 0;
    if (!Number.isSafeInteger(guard) || guard < 0) {
      throw badOption(
        "constraint guardGap",
        guard,
        "is not a non-negative integer",
      );
    }
    const cacheMax = options.cacheMaxSize ?? 32 * granule;
    if (
      cacheMax !== 0 && (!isPowerOfTwo(cacheMax) || cacheMax < granule ||
        cacheMax / granule > 0x40000000)
    ) {
      throw badOption(
        "cacheMaxSize",
        cacheMax,
        "is not 0 or a power-of-two multiple of the granule",
      );
    }
    const depot = options.depotSize ?? 32;
    if (!Number.isSafeInteger(depot) || depot < 0) {
      throw badOption("depotSize", depot, "is not a non-negative integer");
    }
    const maxAlign = options.maxAlignment ?? MAX_LIMIT;
    if (!isPowerOfTwo(maxAlign) && maxAlign !== MAX_LIMIT) {
      throw badOption(
        "maxAlignment",
        maxAlign,
        "is not a power of two up to 2^52",
      );
    }
    const probes = options.searchProbes ?? 64;
    if (!Number.isSafeInteger(probes) || probes < 0) {
      throw badOption("searchProbes", probes, "is not a non-negative integer");
    }
    if (end + Math.ceil(guard / granule) * granule > MAX_LIMIT) {
      throw new IommuError(
        "ERANGE",
        `IOVA aperture end ${hex(end)} plus guard gap ${
          hex(guard)
        } is beyond 2^53`,
      );
    }
    this.#granule = granule;
    this.#inv = 1 / granule;
    this.#startPfn = start / granule;
    this.#endPfn = end / granule;
    this.#guard = Math.ceil(guard / granule);
    this.#align = Math.max(1, align / granule);
    this.#maxAlign = Math.max(1, maxAlign / granule);
    this.#cacheMax = cacheMax / granule;
    this.#probes = probes;
    this.#endBytes = end;
    this.#lastLimit = end;
    this.#lastLimitF = this.#endPfn + this.#guard;
    this.#tree = new IovaTree(this.#startPfn);
    this.#hash = new IovaHash();
    this.#rcache = new IovaRcache(
      this.#cacheMax === 0 ? 0 : Math.log2(this.#cacheMax) + 1,
      depot,
    );
    // The anchor sits one guard above the end, so the topmost allocation's
    // guard may extend past the aperture (nothing lives there to protect).
    const top = this.#endPfn + this.#guard;
    this.#tree.insert(this.#tree.newNode(top, top, KIND_ANCHOR, 0));
    for (let i = 0; i < reserved.length; i++) {
      this.reserve(reserved[i]!.start, reserved[i]!.size);
    }
  }

  /** Allocation unit in bytes. */
  get granule(): number {
    return this.#granule;
  }

  /** Lowest allocatable IOVA in bytes (never 0). */
  get start(): number {
    return this.#startPfn * this.#granule;
  }

  /** Exclusive end of the aperture in bytes. */
  get end(): number {
    return this.#endPfn * this.#granule;
  }

  /**
   * The bytes an allocation of `size` bytes occupies (granule rounding, plus
   * power-of-two rounding for cacheable sizes).
   *
   * @param size Requested bytes.
   * @returns Occupied bytes; the IOVA range handed out is this long.
   * @throws {IommuError} `EINVAL` when `size` is not a positive safe integer.
   */
  sizeFor(size: number): number {
    checkSize(size, "IOVA size");
    return this.#granules(size) * this.#granule;
  }

  /** Start alignment in granules of an n-granule allocation. */
  #alignFor(n: number): number {
    let a = pow2Ceil(n);
    if (a > this.#maxAlign) a = this.#maxAlign;
    return a < this.#align ? this.#align : a;
  }

  #granules(size: number): number {
    const n = Math.ceil(size * this.#inv);
    return n <= this.#cacheMax ? pow2Ceil(n) : n;
  }

  /**
   * Allocate `size` bytes of IOVA space: the highest naturally aligned range
   * that ends at or below `min(limit, end)`.
   *
   * @param size Bytes wanted (rounded as described in the module doc).
   * @param limit Exclusive highest end in bytes, i.e. the DMA mask + 1 (for
   * example 2^32 for a 32-bit master); rounded down to the granule. Default:
   * the aperture end.
   * @returns The first IOVA of the range (never 0).
   * @throws {IommuError} `EINVAL` when `size` is not a positive safe integer
   * (including a bigint, null or a string; nothing changes) or `limit` is not
   * an integer number in 1..2^53; `ERANGE` when the rounded size
   * is larger than the whole window between the aperture start and the
   * limit (it could never fit); `ENOMEM` when no free range fits now (the
   * cache is flushed and the search retried once first; nothing else
   * changes), or when the range tree is full (2^25 - 1 nodes) or the host
   * has no memory to grow it or the address index (no range is allocated
   * or freed then; a cache miss may have been counted and the cache
   * flushed first, as above).
   */
  alloc(size: number, limit?: number): number {
    // Fast path: a positive int32 size of a cached class, the same limit as
    // the previous call (validated then), and the top of the loaded magazine
    // fits. It cannot be ERANGE: a cached range of this class fits. Anything
    // else takes the general path, which validates from scratch. The typeof
    // test keeps a bigint off `|` (a raw TypeError); V8 folds it into the
    // number check it already makes.
    const lim = limit === undefined ? this.#endBytes : limit;
    if (
      typeof size === "number" && (size | 0) === size && size > 0 &&
      lim === this.#lastLimit
    ) {
      const n = Math.ceil(size * this.#inv);
      if (n <= this.#cacheMax) {
        const k = 32 - Math.clz32(n - 1);
        const tree = this.#tree;
        const f = tree.f;
        const node = this.#rcache.pop(k, this.#lastLimitF, f);
        if (node !== 0) {
          tree.b[(node << 6) + B_KIND] = KIND_LIVE;
          this.#hits++;
          this.#liveGranules += 1 << k;
          return f[(node << 3) + F_LO]! * this.#granule;
        }
      }
    }
    return this.#allocGeneral(size, limit);
  }

  #allocGeneral(size: number, limit: number | undefined): number {
    // typeof first: `>` on a symbol throws a raw TypeError.
    if (
      typeof size !== "number" || !(size > 0) || !Number.isSafeInteger(size)
    ) {
      checkSize(size, "IOVA size");
    }
    let top = this.#endPfn;
    if (limit !== undefined) {
      if (
        typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 ||
        limit > MAX_LIMIT
      ) {
        throw badLimit(limit);
      }
      const lp = Math.floor(limit * this.#inv);
      if (lp < top) top = lp;
    }
    const limitF = top + this.#guard;
    this.#lastLimit = limit === undefined ? this.#endBytes : limit;
    this.#lastLimitF = limitF;
    const n = this.#granules(size);
    if (n > top - this.#startPfn) {
      throw tooBig(size, n, this.#startPfn, top, this.#granule);
    }
    const tree = this.#tree;
    if (n <= this.#cacheMax) {
      const f = tree.f;
      const node = this.#rcache.get(31 - Math.clz32(n), limitF, f);
      if (node !== 0) {
        tree.b[(node << 6) + B_KIND] = KIND_LIVE;
        this.#hits++;
        this.#liveGranules += n;
        return f[(node << 3) + F_LO]! * this.#granule;
      }
      this.#misses++;
    }
    const foot = n + this.#guard;
    const align = this.#alignFor(n);
    let succ = tree.findFit(foot, align, limitF, this.#probes);
    if (succ === 0 && this.#rcache.cached > 0) {
      this.flushCache();
      succ = tree.findFit(foot, align, limitF, this.#probes);
    }
    if (succ === 0) {
      this.#failures++;
      // A re-summary for a new alignment order or cap may have queued
      // node moves: done now, so the refusal leaves the tree settled.
      if (tree.pending !== 0) tree.migrate(this.#hash);
      throw new IommuError(
        "ENOMEM",
        `no free IOVA range of ${hex(n * this.#granule)} bytes (aligned to ${
          hex(align * this.#granule)
        }) below ${hex(top * this.#granule)}`,
      );
    }
    const lo = tree.foundAddr;
    // Room in the index first: nothing below can fail then, but newNode's
    // growth of the tree, which changes nothing when it fails.
    this.#hash.reserveOne(tree.f);
    // A slot in its successor's page: its tree neighbours live there.
    const node = tree.newNode(lo, lo + foot, KIND_LIVE, succ);
    tree.insertBefore(node, succ);
    // lo lies in a free gap, so no live or cached range starts there.
    this.#hash.add(lo, node);
    if (tree.pending !== 0) tree.migrate(this.#hash);
    this.#liveGranules += n;
    this.#treeAllocs++;
    return lo * this.#granule;
  }

  /**
   * Free a range returned by {@linkcode IovaAllocator.alloc}. Cacheable sizes
   * go to the cache (reused by the next allocation of their class); others,
   * and all when the cache is full, return to the free space.
   *
   * @param iova The address `alloc` returned.
   * @param size The size passed to `alloc` (any size that rounds the same).
   * @throws {IommuError} `EINVAL` for malformed numbers or a size that does
   * not round to the allocation's size; `ENOENT` when `iova` is not the
   * start of a live allocation (never allocated, already freed, reserved).
   */
  free(iova: number, size: number): void {
    // One combined test; the precise complaint is built out of line.
    // typeof first: `>=` on a symbol throws a raw TypeError.
    if (
      typeof iova !== "number" || typeof size !== "number" ||
      !(iova >= 0 && size > 0) || !Number.isSafeInteger(iova) ||
      !Number.isSafeInteger(size)
    ) {
      badFreeArgs(iova, size);
    }
    const pfn = iova * this.#inv;
    const tree = this.#tree;
    const f = tree.f;
    // An unaligned iova gives a fractional pfn, which no key equals.
    const node = this.#hash.get(pfn, f);
    if (
      node === 0 || tree.b[(node << 6) + B_KIND] !== KIND_LIVE ||
      f[node << 3] !== pfn
    ) {
      throw notLive(iova);
    }
    const fb = node << 3;
    const had = f[fb + F_HI]! - f[fb + F_LO]! - this.#guard;
    // Usually the size is the rounded one already; round only when not.
    const raw = Math.ceil(size * this.#inv);
    const n = raw === had ? raw : this.#granules(size);
    if (n !== had) throw sizeMismatch(iova, had * this.#granule, size);
    this.#liveGranules -= n;
    this.#frees++;
    if (n <= this.#cacheMax && this.#rcache.put(31 - Math.clz32(n), node)) {
      tree.b[(node << 6) + B_KIND] = KIND_CACHED;
      return;
    }
    this.#hash.delete(pfn, f);
    tree.remove(node);
    tree.releaseNode(node);
    if (tree.pending !== 0) tree.migrate(this.#hash);
    if (tree.size < tree.compactBelow) this.#compact();
  }

  /**
   * The population of a large tree halved: move its nodes together, in
   * address order (see {@linkcode T.IovaTree.compact}), and rename the
   * nodes the index and the cache hold. Skipped when memory is short.
   */
  #compact(): void {
    const map = this.#tree.compact();
    if (map === undefined) return;
    this.#hash.renumber(map);
    this.#rcache.renumber(map);
  }

  /**
   * Keep a range from ever being handed out (for example an MSI window or a
   * bootloader framebuffer). The range is widened to whole granules and
   * clipped to the aperture (a range wholly outside is accepted and has no
   * effect); overlapping or touching reservations merge.
   *
   * @param start First byte.
   * @param size Length in bytes.
   * @throws {IommuError} `EINVAL` for malformed numbers; `ERANGE` when the
   * range wraps past 2^53; `EEXIST` when it overlaps a live allocation (or
   * that allocation's guard gap); `ENOMEM` when the range tree cannot grow
   * (nothing changes then). Cached ranges in the way are flushed.
   */
  reserve(start: number, size: number): void {
    checkRange(start, size, "IOVA reserved range");
    const lo = Math.max(Math.floor(start * this.#inv), this.#startPfn);
    const end = Math.min(Math.ceil((start + size) * this.#inv), this.#endPfn);
    if (end <= lo) return;
    const hi = end + this.#guard;
    let over = this.#overlapping(lo, hi);
    const tree = this.#tree;
    let cached = false;
    for (const node of over) {
      const kind = tree.b[(node << 6) + B_KIND];
      if (kind === KIND_LIVE) {
        const at = tree.f[(node << 3) + F_LO]! * this.#granule;
        throw new IommuError(
          "EEXIST",
          `IOVA reserved range ${hex(start)}+${
            hex(size)
          } overlaps the live allocation at ${hex(at)}`,
        );
      }
      if (kind === KIND_CACHED) cached = true;
    }
    // The merged reservation's node, before any range is removed.
    tree.reserveSlot();
    if (cached) {
      this.flushCache();
      over = this.#overlapping(lo, hi);
    }
    let mlo = lo;
    let mhi = hi;
    for (const node of over) {
      const fb = node << 3;
      if (tree.f[fb + F_LO]! < mlo) mlo = tree.f[fb + F_LO]!;
      if (tree.f[fb + F_HI]! > mhi) mhi = tree.f[fb + F_HI]!;
      tree.remove(node);
      tree.releaseNode(node);
      this.#reserved--;
    }
    tree.insert(tree.newNode(mlo, mhi, KIND_RESERVED, 0));
    if (tree.pending !== 0) tree.migrate(this.#hash);
    this.#reserved++;
  }

  /**
   * Busy nodes whose footprint overlaps [lo, hi), and reservations that
   * overlap or touch it; anchor excluded.
   */
  #overlapping(lo: number, hi: number): number[] {
    const tree = this.#tree;
    const out: number[] = [];
    // Footprints never overlap, so the touching ones are consecutive from
    // the one starting at hi (if any) down.
    let node = tree.floor(hi);
    while (node !== 0) {
      const fb = node << 3;
      const nlo = tree.f[fb + F_LO]!;
      if (tree.f[fb + F_HI]! < lo) break;
      const kind = tree.b[(node << 6) + B_KIND];
      // A reservation touching end-to-start (either side) merges; anything
      // else must overlap.
      if (
        kind !== KIND_ANCHOR &&
        (kind === KIND_RESERVED || (tree.f[fb + F_HI]! > lo && nlo < hi))
      ) {
        out.push(node);
      }
      if (nlo === 0) break;
      node = tree.floor(nlo - 1);
    }
    return out;
  }

  /**
   * The live allocation covering an address (for debug checks).
   *
   * @param iova Any byte address.
   * @returns Its allocation's start and occupied size in bytes, or
   * `undefined` when the address is free, cached, reserved or a guard.
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe integer.
   */
  find(iova: number): IovaRange | undefined {
    checkAddress(iova, "IOVA");
    const pfn = Math.floor(iova * this.#inv);
    const tree = this.#tree;
    const node = tree.floor(pfn);
    if (node === 0 || tree.b[(node << 6) + B_KIND] !== KIND_LIVE) {
      return undefined;
    }
    const fb = node << 3;
    const lo = tree.f[fb + F_LO]!;
    const n = tree.f[fb + F_HI]! - lo - this.#guard;
    if (pfn >= lo + n) return undefined;
    return { start: lo * this.#granule, size: n * this.#granule };
  }

  /**
   * Whether a live allocation covers an address.
   *
   * @param iova Any byte address.
   * @returns True when {@linkcode IovaAllocator.find} would return a range.
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe integer.
   */
  contains(iova: number): boolean {
    return this.find(iova) !== undefined;
  }

  /**
   * Return every cached range to the free space (the cache's contents are
   * free from the caller's point of view; this only changes where later
   * allocations land).
   */
  flushCache(): void {
    const tree = this.#tree;
    const hash = this.#hash;
    this.#rcache.flush((node) => {
      hash.delete(tree.f[(node << 3) + F_LO]!, tree.f);
      tree.remove(node);
      tree.releaseNode(node);
    });
    if (tree.pending !== 0) tree.migrate(this.#hash);
    this.#flushes++;
    // A flush can halve the population as a run of frees can.
    if (tree.size < tree.compactBelow) this.#compact();
  }

  /**
   * A snapshot of the counters.
   *
   * @returns A plain object (safe to keep; it is not updated).
   */
  stats(): IovaStats {
    const g = this.#granule;
    return {
      liveRanges: this.#hits + this.#treeAllocs - this.#frees,
      liveBytes: this.#liveGranules * g,
      cachedRanges: this.#rcache.cached,
      cachedBytes: this.#rcache.cachedGranules * g,
      reservedRanges: this.#reserved,
      largestFreeGap: this.#tree.largestGap(this.#guard) * g,
      cacheHits: this.#hits,
      cacheMisses: this.#misses,
      depotMagazines: this.#rcache.depotMagazines,
      allocs: this.#hits + this.#treeAllocs,
      frees: this.#frees,
      allocFailures: this.#failures,
      cacheFlushes: this.#flushes,
      searchFallbacks: this.#tree.fallbacks,
      nodeSlots: this.#tree.capacity,
      indexSlots: this.#hash.capacity,
    };
  }

  /**
   * Check every internal invariant (tree order and balance, gap
   * bookkeeping, the address index, counters). O(n): for tests and
   * debugging.
   *
   * @returns Descriptions of broken invariants; empty when all hold.
   */
  audit(): string[] {
    const tree = this.#tree;
    const problems = tree.audit();
    let live = 0;
    let liveG = 0;
    let cached = 0;
    let cachedG = 0;
    let reserved = 0;
    let anchors = 0;
    for (const node of tree.nodes()) {
      const kind = tree.b[(node << 6) + B_KIND];
      const lo = tree.f[(node << 3) + F_LO]!;
      const n = tree.f[(node << 3) + F_HI]! - lo - this.#guard;
      if (kind === KIND_LIVE || kind === KIND_CACHED) {
        if (this.#hash.get(lo, tree.f) !== node) {
          problems.push(`index misses ${lo}`);
        }
        if (lo % this.#alignFor(n) !== 0) {
          problems.push(`range at granule ${lo} is misaligned`);
        }
        if (lo < this.#startPfn || lo + n > this.#endPfn) {
          problems.push(`range at granule ${lo} is outside the aperture`);
        }
        if (kind === KIND_LIVE) {
          live++;
          liveG += n;
        } else {
          cached++;
          cachedG += n;
        }
      } else if (kind === KIND_RESERVED) reserved++;
      else if (kind === KIND_ANCHOR) anchors++;
      else problems.push(`node ${node} has kind ${kind}`);
    }
    if (anchors !== 1) problems.push(`${anchors} anchors`);
    const counted = this.#hits + this.#treeAllocs - this.#frees;
    if (live !== counted) {
      problems.push(`live count ${counted} != ${live}`);
    }
    if (liveG !== this.#liveGranules) problems.push(`live granules drifted`);
    if (cached !== this.#rcache.cached) problems.push(`cached count drifted`);
    if (cachedG !== this.#rcache.cachedGranules) {
      problems.push(`cached granules drifted`);
    }
    if (reserved !== this.#reserved) problems.push(`reserved count drifted`);
    if (this.#hash.count !== live + cached) problems.push(`index size drifted`);
    const entries = this.#hash.entries(tree.f);
    if (entries.length !== this.#hash.count) {
      problems.push(`index count drifted`);
    }
    for (const [key, node, reachable] of entries) {
      const kind = tree.b[(node << 6) + B_KIND];
      if (!reachable) problems.push(`index entry ${key} is unreachable`);
      if (
        tree.f[(node << 3) + F_LO] !== key ||
        (kind !== KIND_LIVE && kind !== KIND_CACHED)
      ) {
        problems.push(`index entry ${key} names node ${node} wrongly`);
      }
    }
    return problems;
  }
}
