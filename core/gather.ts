/**
 * The IOTLB gather: unmaps record what they removed here, and one sync later
 * invalidates it all, so a batch of unmaps costs one invalidation.
 *
 * @module
 */

import { describeValue } from "./address.ts";
import { IommuError } from "./errors.ts";

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
  /**
   * Page-table pages (physical addresses) to free once the range is
   * invalidated. Read it; change it only through
   * {@linkcode IotlbGather.deferFree} and {@linkcode IotlbGather.reset}
   * (a `Domain` frees only what it deferred since the last reset).
   */
  readonly freeList: number[] = [];
  #epoch = 0;

  /**
   * How many times the gather was reset: whoever notes what it put into
   * the free list (a `Domain`, to free only its own tables) tells a reused
   * gather from the one it filled.
   */
  get epoch(): number {
    return this.#epoch;
  }

  /** True when nothing was gathered. */
  get isEmpty(): boolean {
    return this.end < 0 && this.freeList.length === 0;
  }

  /**
   * Add `count` leaves of `pageSize` bytes starting at `iova`.
   *
   * @param iova First byte removed.
   * @param pageSize Leaf size in bytes.
   * @param count Number of leaves (0 gathers nothing).
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer, `pageSize` not a positive one or `count` not a non-negative one
   * (nothing gathered).
   */
  add(iova: number, pageSize: number, count = 1): void {
    if (
      !(isSafe(iova) && iova >= 0 && isSafe(pageSize) && pageSize > 0 &&
        isSafe(count) && count >= 0)
    ) throw badLeaves(iova, pageSize, count);
    // No leaves: nothing to invalidate (a range ending before its start
    // would reach the drivers otherwise).
    if (count === 0) return;
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
   * @throws {IommuError} `EINVAL` when `pa` is not a non-negative safe
   * integer (nothing queued).
   */
  deferFree(pa: number): void {
    if (!(isSafe(pa) && pa >= 0)) {
      throw new IommuError(
        "EINVAL",
        `a deferred page-table page must be an address, got ${String(pa)}`,
      );
    }
    this.freeList.push(pa);
  }

  /** Forget everything (called by the core after a sync). */
  reset(): void {
    this.start = Infinity;
    this.end = -1;
    this.pageSize = 0;
    this.leaves = 0;
    this.freeList.length = 0;
    this.#epoch++;
  }
}

const isSafe = Number.isSafeInteger;

// Out of line: add() is on the unmap path.
function badLeaves(iova: number, pageSize: number, count: number): IommuError {
  return new IommuError(
    "EINVAL",
    `gathered leaves need an IOVA, a page size and a count, got ${
      String(iova)
    }, ${String(pageSize)}, ${String(count)}`,
  );
}

/**
 * Check the arguments of a driver's `unmapPages` in one combined test (it
 * runs once per unmap): `iova` an address, `pageSize` and `count` positive
 * safe integers, `gather` an {@linkcode IotlbGather}.
 *
 * @param iova First IOVA in bytes.
 * @param pageSize Page size in bytes.
 * @param count Pages.
 * @param gather The gather.
 * @throws {IommuError} `EINVAL` naming the first bad argument.
 */
export function checkUnmapArgs(
  iova: number,
  pageSize: number,
  count: number,
  gather: IotlbGather,
): void {
  if (
    !(isSafe(iova) && iova >= 0 && isSafe(pageSize) && pageSize > 0 &&
      isSafe(count) && count > 0 && gather instanceof IotlbGather)
  ) badUnmapArgs(iova, pageSize, count, gather);
}

// Out of line: which argument of checkUnmapArgs is bad.
function badUnmapArgs(
  iova: unknown,
  pageSize: unknown,
  count: unknown,
  gather: unknown,
): never {
  if (!(isSafe(iova) && (iova as number) >= 0)) {
    throw new IommuError(
      "EINVAL",
      `IOVA must be a non-negative safe integer, got ${describeValue(iova)}`,
    );
  }
  if (!(isSafe(pageSize) && (pageSize as number) > 0)) {
    throw new IommuError(
      "EINVAL",
      `page size must be a positive safe integer, got ${
        describeValue(pageSize)
      }`,
    );
  }
  if (!(isSafe(count) && (count as number) > 0)) {
    throw new IommuError(
      "EINVAL",
      `page count must be a positive safe integer, got ${describeValue(count)}`,
    );
  }
  checkGather(gather);
  throw new IommuError("EINVAL", "bad unmap arguments");
}

/**
 * Check that `value` is an {@linkcode IotlbGather} (for drivers' `unmapPages`
 * and `iotlbSync`, whose callers may be anyone holding `domain.ops`).
 *
 * @param value The argument.
 * @throws {IommuError} `EINVAL` naming what came instead.
 */
export function checkGather(value: unknown): asserts value is IotlbGather {
  if (!(value instanceof IotlbGather)) {
    throw new IommuError(
      "EINVAL",
      `expected an IotlbGather, got ${describeValue(value)}`,
    );
  }
}
