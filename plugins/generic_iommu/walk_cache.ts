/**
 * One level's walk cache: a core `Tlb` with a table of recent hits in
 * front (internal; the walker's `caches` are `Tlb`s to users).
 *
 * A walk that hits an entry a walk before it already hit (accesses spread
 * over a few hundred 2 MiB regions, each a level-2 entry) would pay a
 * whole set-associative lookup for an answer it already has. The hit table
 * answers it with one direct-mapped probe, and the cache stays exactly
 * what the `Tlb` alone would be:
 *
 * - The table holds copies of entries lookups hit (context, page bounds,
 *   table address), stamped with a generation. Every operation that could
 *   change an entry (insert, the invalidations) starts a new generation,
 *   so a copy of the current generation is an entry still in the cache,
 *   unchanged.
 * - Such a copy is what a lookup would find when no other entry of
 *   another size could answer first: while every entry ever inserted has
 *   one page size (what the walker inserts at each level), the copy is the
 *   only entry covering its key. Once a second size is inserted, every
 *   lookup starts a new generation, so only the copy of the last hit is
 *   used, which the lookup would find again (its size was probed first).
 * - A hit changes no entry and no victim choice under round-robin and
 *   random replacement (they ignore hits). Under LRU it stamps the entry,
 *   so there too every lookup starts a new generation: only the last hit
 *   is answered, and stamping it again (it is already the most recently
 *   used, nothing touched the cache since) would not change the order of
 *   any two stamps.
 * - Table hits are counted here and added to `counters()` as lookups and
 *   hits; `resetCounters()` clears them with the rest. After a table hit
 *   the `last*` getters describe the entry it copied (the `Tlb`'s own
 *   describe its last lookup).
 *
 * tests/generic_iommu_walk_cache_test.ts checks it against a plain `Tlb` on
 * random operation sequences for every policy.
 *
 * @module
 */
import { Tlb, type TlbCounters, type TlbOptions } from "../../core/mod.ts";

/**
 * Hit-table slots for a cache of `capacity` entries: a power of two, at
 * least twice the capacity (so entries the cache holds at once rarely
 * share a slot) and at least 16.
 */
function hitSlots(capacity: number): number {
  let n = 16;
  while (n < capacity * 2 && n < 1 << 16) n *= 2;
  return n;
}

// Slots of WalkCache.state(): the walker's fast path spells them as
// literals; tests/generic_iommu_walk_cache_test.ts pins them.

/** State slot: the current generation (a copy of an older one is stale). */
export const S_GEN = 0;
/**
 * State slot: 1 / the page size the hit table keys by (NaN: none yet,
 * nothing can hit). With one size inserted so far: that size; else the
 * size of the last hit, with the mask 0.
 */
export const S_INV = 1;
/** State slot: the number of hit-table slots - 1. */
export const S_MASK = 2;
/** State slot: hit-table hits (lookups and hits the `Tlb` did not count). */
export const S_HITS = 3;
/**
 * State slot: the index in the hit table (8 numbers per slot) of the copy
 * that answered the last probe, -1 when a `Tlb` lookup did (the getters
 * then ask the `Tlb`).
 */
export const S_LAST = 4;

/** A walk cache (see the module documentation). */
export class WalkCache extends Tlb {
  // Per slot, eight numbers side by side: page base and end, context,
  // generation, table address, then (for the last* getters) permission
  // bits and page size. Slot: (low 32 bits of the page number ^ context)
  // & mask.
  #hit: Float64Array;
  // The walker's fast path reads and updates these too (see `S_*`).
  #s: Float64Array = new Float64Array(5);
  // The only page size inserted so far: 0 none, -1 several.
  #size = 0;
  // Whether only the last hit may be answered (LRU, or several sizes).
  #single: boolean;

  /**
   * Build an empty cache.
   *
   * @param options Geometry and policy (as for `Tlb`).
   * @throws {IommuError} as the `Tlb` constructor.
   */
  constructor(options: TlbOptions) {
    super(options);
    this.#single = this.replacement === "lru";
    const slots = this.#single ? 1 : hitSlots(this.capacity);
    const s = this.#s;
    s[S_GEN] = 1;
    s[S_INV] = NaN;
    s[S_MASK] = slots - 1;
    s[S_LAST] = -1;
    // -1 everywhere: an empty page (nothing hits) and no kept number.
    this.#hit = new Float64Array(slots * 8).fill(-1);
  }

  /**
   * The table address cached for `iova` in `ctx`, or -1: a `lookup` (with
   * its counting and replacement bookkeeping), answered from the hit table
   * when it holds a current copy of the entry.
   *
   * @param ctx Context (non-negative safe integer).
   * @param iova Input address in bytes.
   * @returns The table address in bytes (the entry's PA base), or -1.
   * @throws {IommuError} `EINVAL` as `lookup` for a bad key.
   */
  probe(ctx: number, iova: number): number {
    if (typeof iova === "number" && typeof ctx === "number") {
      const s = this.#s;
      const j = ((((iova * s[S_INV]!) >>> 0) ^ ctx) & s[S_MASK]!) << 3;
      const h = this.#hit;
      // A non-integer IOVA inside a copied page is refused (the lookup
      // then throws).
      if (
        iova >= h[j]! && iova < h[j + 1]! && h[j + 2] === ctx &&
        h[j + 3] === s[S_GEN] && Math.floor(iova) === iova
      ) {
        s[S_HITS]!++;
        s[S_LAST] = j;
        return h[j + 4]!;
      }
    }
    return this.probeTlb(ctx, iova);
  }

  /**
   * A probe the hit table cannot answer: the `Tlb` lookup, and a copy of
   * the entry it hit into the hit table (the walker's fast path calls
   * this after its own look at the table).
   *
   * @param ctx Context (non-negative safe integer).
   * @param iova Input address in bytes.
   * @returns The table address in bytes, or -1.
   * @throws {IommuError} `EINVAL` as `lookup` for a bad key.
   */
  probeTlb(ctx: number, iova: number): number {
    const pa = super.lookup(ctx, iova);
    this.#lookedUp();
    if (pa < 0) return -1;
    const s = this.#s;
    const table = super.lastPaBase;
    const size = super.lastPageSize;
    if (this.#single) s[S_INV] = 1 / size;
    // The slot from the page number's low 32 bits (the same for every
    // address in the page); the copy keeps the page's exact bounds.
    const j = ((((iova * s[S_INV]!) >>> 0) ^ ctx) & s[S_MASK]!) << 3;
    const base = iova - (pa - table);
    const h = this.#hit;
    h[j] = base;
    h[j + 1] = base + size;
    h[j + 2] = ctx;
    h[j + 3] = s[S_GEN]!;
    h[j + 4] = table;
    h[j + 5] = super.lastPerm;
    h[j + 6] = size;
    // The walker's view of the slot's table (see `hits()`): none yet.
    h[j + 7] = -1;
    return table;
  }

  /**
   * The hit table (eight numbers per slot: page base, page end, context,
   * generation, table address, permission bits, page size, and a number
   * the walker keeps for the slot's table, which a probe that writes the
   * slot sets to -1), for the walker's fast path.
   *
   * @returns The live array.
   */
  hits(): Float64Array {
    return this.#hit;
  }

  /**
   * The hit table's state (`S_*` slots), for the walker's fast path: a
   * hit there adds 1 to `S_HITS` and sets `S_LAST`, as `probe` does.
   *
   * @returns The live array.
   */
  state(): Float64Array {
    return this.#s;
  }

  /** Page size of the entry the last lookup or probe hit; 0 after a miss. */
  override get lastPageSize(): number {
    const last = this.#s[S_LAST]!;
    return last < 0 ? super.lastPageSize : this.#hit[last + 6]!;
  }

  /** Permission bits of the entry the last lookup or probe hit; 0 after a miss. */
  override get lastPerm(): number {
    const last = this.#s[S_LAST]!;
    return last < 0 ? super.lastPerm : this.#hit[last + 5]!;
  }

  /** Table address of the entry the last lookup or probe hit; -1 after a miss. */
  override get lastPaBase(): number {
    const last = this.#s[S_LAST]!;
    return last < 0 ? super.lastPaBase : this.#hit[last + 4]!;
  }

  /** As `Tlb.lookup` (the hit table stays valid unless only one hit may be). */
  override lookup(context: number, iova: number): number {
    // A refused key throws before anything changes.
    const pa = super.lookup(context, iova);
    this.#lookedUp();
    return pa;
  }

  /** As `Tlb.lookupOne`: this cache's `lookup` (the hit table kept valid). */
  override lookupOne(context: number, iova: number): number {
    return this.lookup(context, iova);
  }

  /** As `Tlb.lookupAfterMiss`: this cache's `lookup` (the hit table kept valid). */
  override lookupAfterMiss(context: number, iova: number): number {
    return this.lookup(context, iova);
  }

  /** As `Tlb.lookupHit`; a hit is a `lookup` hit for the hit table. */
  override lookupHit(context: number, iova: number): number {
    const pa = super.lookupHit(context, iova);
    if (pa >= 0) this.#lookedUp();
    return pa;
  }

  /**
   * As `Tlb.lookupHitIf`; a hit (one that grants `need` or not) is a
   * `lookup` hit for the hit table, so the `last*` getters then describe
   * its entry.
   */
  override lookupHitIf(context: number, iova: number, need: number): number {
    const pa = super.lookupHitIf(context, iova, need);
    if (pa !== -1) this.#lookedUp();
    return pa;
  }

  /** As `Tlb.lastPageEndIf`, also after a hit-table hit. */
  override lastPageEndIf(need: number): number {
    const last = this.#s[S_LAST]!;
    if (last < 0 || typeof need !== "number") return super.lastPageEndIf(need);
    const h = this.#hit;
    return (h[last + 5]! & need) === need ? h[last + 1]! : -1;
  }

  /** As `Tlb.lookupSize` (as `lookup` for the hit table). */
  override lookupSize(context: number, iova: number, pageSize: number): number {
    const pa = super.lookupSize(context, iova, pageSize);
    this.#lookedUp();
    return pa;
  }

  /** As `Tlb.insert`; starts a new generation of the hit table. */
  override insert(
    context: number,
    iova: number,
    pageSize: number,
    paBase: number,
    perm: number,
  ): void {
    super.insert(context, iova, pageSize, paBase, perm);
    this.#s[S_GEN]!++;
    // Accepted: track the sizes present (one lets the table key by it).
    if (pageSize !== this.#size && this.#size !== -1 && this.capacity !== 0) {
      if (this.#size === 0) {
        this.#size = pageSize;
        if (!this.#single) this.#s[S_INV] = 1 / pageSize;
      } else {
        // A second size: from now on only the last hit is answered.
        this.#size = -1;
        this.#single = true;
        this.#s[S_MASK] = 0;
      }
    }
  }

  /** As `Tlb.invalidateAll`; starts a new generation of the hit table. */
  override invalidateAll(): number {
    const removed = super.invalidateAll();
    this.#s[S_GEN]!++;
    return removed;
  }

  /** As `Tlb.invalidateContext`; starts a new generation of the hit table. */
  override invalidateContext(context: number): number {
    const removed = super.invalidateContext(context);
    this.#s[S_GEN]!++;
    return removed;
  }

  /** As `Tlb.invalidateRange`; starts a new generation of the hit table. */
  override invalidateRange(
    context: number,
    iova: number,
    size: number,
  ): number {
    const removed = super.invalidateRange(context, iova, size);
    this.#s[S_GEN]!++;
    return removed;
  }

  // After a lookup by the `Tlb`: the getters ask the `Tlb` again, and
  // where only the last hit may be answered (LRU, or several sizes) the
  // table's copies are stale (a lookup hit under LRU stamps its entry).
  #lookedUp(): void {
    this.#s[S_LAST] = -1;
    if (this.#single) this.#s[S_GEN]!++;
  }

  /** As `Tlb.counters`, hit-table hits included as lookups and hits. */
  override counters(): TlbCounters {
    const c = super.counters();
    c.lookups += this.#s[S_HITS]!;
    c.hits += this.#s[S_HITS]!;
    return c;
  }

  /** As `Tlb.resetCounters`, hit-table hits included. */
  override resetCounters(): void {
    this.#s[S_HITS] = 0;
    super.resetCounters();
  }
}
