/**
 * One level's walk cache: a core `Tlb` with a one-entry memo of its last
 * hit in front (internal; the walker's `caches` are `Tlb`s to users).
 *
 * A walk that hits the same table entry as the walk before it (accesses
 * clustered in one 2 MiB region) would pay a whole set-associative lookup
 * for an answer it already has. The memo answers it with three compares,
 * and the cache stays exactly what the `Tlb` alone would be:
 *
 * - The memo is the entry the walker's last lookup hit, and it is dropped
 *   by every other operation on the cache (insert, invalidations, a lookup
 *   by anyone else), so while it is valid the entry is unchanged, it is
 *   the one a lookup would find (same context, page and size), and the
 *   `last*` getters still describe it.
 * - A hit changes no entry and no victim choice: round-robin and random
 *   ignore hits, and for LRU the memoised entry is already the most
 *   recently used one (nothing touched the cache since), so stamping it
 *   again would not change the order of any two stamps.
 * - Memo hits are counted here and added to `counters()` as lookups and
 *   hits; `resetCounters()` clears them with the rest.
 *
 * tests/generic_iommu_walker_test.ts checks it against a plain `Tlb` on
 * random operation sequences for every policy.
 *
 * @module
 */
import { Tlb, type TlbCounters, type TlbOptions } from "../../core/mod.ts";

/** A walk cache (see the module documentation). */
export class WalkCache extends Tlb {
  // The entry the last probe hit: context, page [#base, #end) and the
  // table address it holds. #end -1: no memo. Doubles from the start, so
  // stores never box.
  #ctx = -1;
  #base = 0.5;
  #end = -1.5;
  #table = 0.5;
  #memoHits = 0;

  /**
   * Build an empty cache.
   *
   * @param options Geometry and policy (as for `Tlb`).
   * @throws {IommuError} as the `Tlb` constructor.
   */
  constructor(options: TlbOptions) {
    super(options);
    this.#end = -1;
  }

  /**
   * The table address cached for `iova` in `ctx`, or -1: a `lookup` (with
   * its counting and replacement bookkeeping), answered from the memo when
   * it repeats the last hit.
   *
   * @param ctx Context (non-negative safe integer).
   * @param iova Input address in bytes.
   * @returns The table address in bytes (the entry's PA base), or -1.
   * @throws {IommuError} `EINVAL` as `lookup` for a bad key.
   */
  probe(ctx: number, iova: number): number {
    if (
      ctx === this.#ctx && typeof iova === "number" && iova >= this.#base &&
      iova < this.#end && Math.floor(iova) === iova
    ) {
      this.#memoHits++;
      return this.#table;
    }
    const pa = super.lookup(ctx, iova);
    if (pa < 0) {
      this.#end = -1;
      return -1;
    }
    const table = this.lastPaBase;
    const base = iova - (pa - table);
    this.#ctx = ctx;
    this.#base = base;
    this.#end = base + this.lastPageSize;
    this.#table = table;
    return table;
  }

  /** As `Tlb.lookup`; drops the memo. */
  override lookup(context: number, iova: number): number {
    this.#end = -1;
    return super.lookup(context, iova);
  }

  /** As `Tlb.lookupSize`; drops the memo. */
  override lookupSize(context: number, iova: number, pageSize: number): number {
    this.#end = -1;
    return super.lookupSize(context, iova, pageSize);
  }

  /** As `Tlb.insert`; drops the memo. */
  override insert(
    context: number,
    iova: number,
    pageSize: number,
    paBase: number,
    perm: number,
  ): void {
    this.#end = -1;
    super.insert(context, iova, pageSize, paBase, perm);
  }

  /** As `Tlb.invalidateAll`; drops the memo. */
  override invalidateAll(): number {
    this.#end = -1;
    return super.invalidateAll();
  }

  /** As `Tlb.invalidateContext`; drops the memo. */
  override invalidateContext(context: number): number {
    this.#end = -1;
    return super.invalidateContext(context);
  }

  /** As `Tlb.invalidateRange`; drops the memo. */
  override invalidateRange(
    context: number,
    iova: number,
    size: number,
  ): number {
    this.#end = -1;
    return super.invalidateRange(context, iova, size);
  }

  /** As `Tlb.counters`, memo hits included as lookups and hits. */
  override counters(): TlbCounters {
    const c = super.counters();
    c.lookups += this.#memoHits;
    c.hits += this.#memoHits;
    return c;
  }

  /** As `Tlb.resetCounters`, memo hits included. */
  override resetCounters(): void {
    this.#memoHits = 0;
    super.resetCounters();
  }
}
