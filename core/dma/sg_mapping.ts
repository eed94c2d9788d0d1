/**
 * The result of mapping a scatter-gather list.
 *
 * @module
 */
import type { SgSegment } from "../mod.ts";
import type { DmaDirection } from "./direction.ts";

/**
 * A scatter-gather list as mapped: the DMA segments the device uses
 * (`count` of them, merged where the rules allow) and a copy of the input
 * entries. Pass it back to unmap and sync it.
 */
export class DmaSgMapping {
  /** The caller's entries, by reference (unchanged while mapped). */
  readonly segments: readonly SgSegment[];
  /** Entries passed to map (`segments.length`). */
  readonly nents: number;
  /** Direction mapped with. */
  readonly direction: DmaDirection;
  /** DMA segments (at most `nents`). */
  readonly count: number;
  /** Each DMA segment's address (`count` entries). */
  readonly dmaAddress: readonly number[];
  /** Each DMA segment's length in bytes (`count` entries). */
  readonly dmaLength: readonly number[];
  /** Start of the one IOVA range, or -1 for a direct mapping. */
  readonly iova: number;
  /** Bytes of that IOVA range (0 direct). */
  readonly iovaSize: number;
  /** Direct mode: bounce slot of each entry, or -1; null without bounces. */
  readonly bounce: readonly number[] | null;
  /** Sum of the entry lengths, in bytes. */
  readonly size: number;

  /**
   * Built by {@linkcode DmaMapper.mapSg}.
   *
   * @param fields Every field (`nents` and `count` follow from the arrays,
   * unless `nents` is given to describe a different list).
   */
  constructor(fields: {
    segments: readonly SgSegment[];
    nents?: number;
    direction: DmaDirection;
    dmaAddress: readonly number[];
    dmaLength: readonly number[];
    iova: number;
    iovaSize: number;
    bounce: readonly number[] | null;
    size: number;
  }) {
    this.segments = fields.segments;
    this.nents = fields.nents ?? fields.segments.length;
    this.direction = fields.direction;
    this.count = fields.dmaAddress.length;
    this.dmaAddress = fields.dmaAddress;
    this.dmaLength = fields.dmaLength;
    this.iova = fields.iova;
    this.iovaSize = fields.iovaSize;
    this.bounce = fields.bounce;
    this.size = fields.size;
  }

  #pa: Float64Array | null = null;
  #len: Float64Array | null = null;

  /** Physical address of each input entry (copied on first use; cold path). */
  get segmentPa(): Float64Array {
    if (this.#pa === null) {
      this.#pa = Float64Array.from(this.segments, (s) => s.pa);
    }
    return this.#pa;
  }

  /** Length in bytes of each input entry (copied on first use; cold path). */
  get segmentLength(): Float64Array {
    if (this.#len === null) {
      this.#len = Float64Array.from(this.segments, (s) => s.length);
    }
    return this.#len;
  }
}
