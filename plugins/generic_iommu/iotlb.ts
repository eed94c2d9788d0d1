/**
 * The unit's main IOTLB: a core `Tlb` that also drops the micro TLBs'
 * copies whenever entries are invalidated (internal; users see a `Tlb`).
 *
 * The command queue's TLBI commands already drop them, but the public
 * `iotlb` field lets tests and tools invalidate directly; without this, a
 * translation could keep hitting a micro-TLB copy of an entry the IOTLB no
 * longer holds.
 *
 * @module
 */
import { Tlb, type TlbOptions } from "../../core/mod.ts";

/** An IOTLB whose invalidations also invalidate the micro TLBs in front of it. */
export class Iotlb extends Tlb {
  #dropCopies: () => void;

  /**
   * Build an empty IOTLB.
   *
   * @param options Geometry and policy (as for `Tlb`).
   * @param dropCopies Invalidates every micro-TLB entry (called after each
   * invalidation that did not throw).
   * @throws {IommuError} as the `Tlb` constructor.
   */
  constructor(options: TlbOptions, dropCopies: () => void) {
    super(options);
    this.#dropCopies = dropCopies;
  }

  /**
   * As `Tlb.invalidateAll`, and the micro TLBs too.
   *
   * @returns The number of IOTLB entries removed.
   */
  override invalidateAll(): number {
    const removed = super.invalidateAll();
    this.#dropCopies();
    return removed;
  }

  /**
   * As `Tlb.invalidateContext`, and the micro TLBs too.
   *
   * @param context The context.
   * @returns The number of IOTLB entries removed.
   * @throws {IommuError} `EINVAL` as `Tlb.invalidateContext`.
   */
  override invalidateContext(context: number): number {
    const removed = super.invalidateContext(context);
    this.#dropCopies();
    return removed;
  }

  /**
   * As `Tlb.invalidateRange`, and the micro TLBs too.
   *
   * @param context The context.
   * @param iova First byte of the range.
   * @param size Bytes in the range.
   * @returns The number of IOTLB entries removed.
   * @throws {IommuError} `EINVAL` as `Tlb.invalidateRange`.
   */
  override invalidateRange(
    context: number,
    iova: number,
    size: number,
  ): number {
    const removed = super.invalidateRange(context, iova, size);
    this.#dropCopies();
    return removed;
  }
}
