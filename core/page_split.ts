/**
 * The page-size splitter: cut `[iova, iova + size)` mapped to `pa` into the
 * largest pages the unit supports and both addresses' alignment allows.
 *
 * @module
 */
import type { MapPlan } from "./map_plan.ts";

const TWO_32 = 0x1_0000_0000;

// The largest power of two dividing `v` (2^52 for 0), as `alignmentOf` in
// address.ts, without `%`: on numbers above 2^31 that is a floating-point
// remainder, several times slower than the rest of a split.
function alignment(v: number): number {
  if (v === 0) return 2 ** 52;
  if (v < TWO_32) return (v & -v) >>> 0;
  const hi = Math.floor(v / TWO_32);
  const lo = v - hi * TWO_32;
  if (lo !== 0) return (lo & -lo) >>> 0;
  return ((hi & -hi) >>> 0) * TWO_32;
}

// `v % p` for a power of two `p` (exact: dividing by a power of two is).
function modPow2(v: number, p: number): number {
  return v - Math.floor(v / p) * p;
}

/**
 * Append to `plan` the runs that map `size` bytes at `iova` to `pa`, using
 * the largest page sizes allowed by the remaining size and by the alignment
 * of both addresses. A run of smaller pages stops at the next boundary of a
 * larger page when the rest of the range can use that larger page, so the
 * result is the fewest leaves possible. Arguments must already be valid and
 * aligned to the smallest page size.
 *
 * @param iova First IOVA in bytes.
 * @param pa First physical address in bytes (pass `iova` again for unmap).
 * @param size Bytes, a multiple of the smallest page size.
 * @param pageSizes Supported page sizes in bytes, ascending.
 * @param plan Where runs are appended.
 *
 * @example 64 KiB of small pages, then 2 MiB blocks
 * ```ts
 * import { MapPlan, splitIntoPages } from "@iommukit/iommukit/core";
 * const plan = new MapPlan();
 * splitIntoPages(0x1f0000, 0x1f0000, 0x410000, [4096, 0x200000, 0x40000000], plan);
 * // two runs: 16 x 4 KiB, then 2 x 2 MiB
 * if (plan.count !== 2 || plan.pages[0] !== 16 || plan.pages[1] !== 2) throw new Error();
 * ```
 */
export function splitIntoPages(
  iova: number,
  pa: number,
  size: number,
  pageSizes: readonly number[],
  plan: MapPlan,
): void {
  const last = pageSizes.length - 1;
  while (size > 0) {
    const align = Math.min(alignment(iova), alignment(pa));
    let k = last;
    while (k > 0 && (pageSizes[k]! > size || pageSizes[k]! > align)) k--;
    const pageSize = pageSizes[k]!;
    let count = Math.floor(size / pageSize);
    if (k < last) {
      const next = pageSizes[k + 1]!;
      const iovaOff = modPow2(iova, next);
      const toBoundary = next - iovaOff;
      if (iovaOff === modPow2(pa, next) && size >= toBoundary + next) {
        count = toBoundary / pageSize;
      }
    }
    plan.push(iova, pa, pageSize, count);
    const bytes = count * pageSize;
    iova += bytes;
    pa += bytes;
    size -= bytes;
  }
}
