/**
 * The IOTLB gather: unmaps record what they removed here, and one sync later
 * invalidates it all, so a batch of unmaps costs one invalidation.
 *
 * @module
 */

/**
 * Accumulates one invalidation range (inclusive end, as in Linux) and the
 * page-table pages that may be freed only after the invalidation.
 *
 * Disjoint ranges are merged into their hull: that over-invalidates but is
 * always safe, and keeps the gather allocation-free.
 */
export class IotlbGather {
  /** First gathered IOVA (bytes); `Infinity` when empty. */
  start: number = Infinity;
  /** Last gathered IOVA byte, inclusive; -1 when empty. */
  end: number = -1;
  /** Smallest leaf size gathered, in bytes (0 when empty): the invalidation granule. */
  pageSize = 0;
  /** Leaves gathered since the last reset. */
  leaves = 0;
  /** Page-table pages (physical addresses) to free once the range is invalidated. */
  readonly freeList: number[] = [];

  /** True when nothing was gathered. */
  get isEmpty(): boolean {
    return this.end < 0 && this.freeList.length === 0;
  }

  /**
   * Add `count` leaves of `pageSize` bytes starting at `iova`.
   *
   * @param iova First byte removed.
   * @param pageSize Leaf size in bytes.
   * @param count Number of leaves.
   */
  add(iova: number, pageSize: number, count = 1): void {
    const last = iova + pageSize * count - 1;
    if (iova < this.start) this.start = iova;
    if (last > this.end) this.end = last;
    if (this.pageSize === 0 || pageSize < this.pageSize) {
      this.pageSize = pageSize;
    }
    this.leaves += count;
  }

  /**
   * Queue a page-table page to be freed after the next sync.
   *
   * @param pa The table's physical address.
   */
  deferFree(pa: number): void {
    this.freeList.push(pa);
  }

  /** Forget everything (called by the core after a sync). */
  reset(): void {
    this.start = Infinity;
    this.end = -1;
    this.pageSize = 0;
    this.leaves = 0;
    this.freeList.length = 0;
  }
}
