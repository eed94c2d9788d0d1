/**
 * The mappings of one virtio-iommu domain as whole MAP regions (the unit the
 * spec's UNMAP rules speak about), sorted by start; bounds are bigints
 * because wire addresses are 64-bit.
 *
 * @module
 */

/** One region created by one MAP. */
export interface VirtioMapping {
  /** First IOVA. */
  start: bigint;
  /** Last IOVA, inclusive. */
  end: bigint;
  /** First physical address. */
  phys: bigint;
  /** MAP flags. */
  flags: number;
  /**
   * True when the region is written into the page table, except the pages
   * holding a reserved region (false: recorded only).
   */
  backed: boolean;
}

/** Sorted, non-overlapping list of MAP regions. */
export class MappingList {
  #items: VirtioMapping[] = [];

  /** Number of regions. */
  get size(): number {
    return this.#items.length;
  }

  /** The regions in IOVA order (copies). */
  all(): VirtioMapping[] {
    return this.#items.map((m) => ({ ...m }));
  }

  // Index of the first region whose end is >= at.
  #lowerBound(at: bigint): number {
    let lo = 0;
    let hi = this.#items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#items[mid]!.end < at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Whether any region intersects `[start, end]`.
   *
   * @param start First address.
   * @param end Last address, inclusive.
   * @returns True on overlap.
   */
  overlaps(start: bigint, end: bigint): boolean {
    const i = this.#lowerBound(start);
    const m = this.#items[i];
    return m !== undefined && m.start <= end;
  }

  /**
   * Regions intersecting `[start, end]`, in order.
   *
   * @param start First address.
   * @param end Last address, inclusive.
   * @returns The regions (live objects).
   */
  intersecting(start: bigint, end: bigint): VirtioMapping[] {
    const out: VirtioMapping[] = [];
    for (let i = this.#lowerBound(start); i < this.#items.length; i++) {
      const m = this.#items[i]!;
      if (m.start > end) break;
      out.push(m);
    }
    return out;
  }

  /**
   * Insert a region known not to overlap any other.
   *
   * @param m The region.
   */
  insert(m: VirtioMapping): void {
    this.#items.splice(this.#lowerBound(m.start), 0, m);
  }

  /**
   * Remove regions (objects returned by {@linkcode MappingList.intersecting}).
   *
   * @param gone The regions.
   */
  remove(gone: readonly VirtioMapping[]): void {
    const set = new Set(gone);
    this.#items = this.#items.filter((m) => !set.has(m));
  }
}
