/**
 * The per-stream micro TLB of the generic unit: one entry per stream (gem5
 * keeps a small one per device interface) in front of the IOTLB. An entry
 * is valid while its generation equals `gen`; every invalidation command or
 * configuration change bumps `gen` (internal; not exported from mod.ts).
 *
 * @module
 */

/** One entry per stream, in typed arrays (read inline by the translate path). */
export class MicroTlb {
  /** Whether the unit has micro TLBs at all. */
  readonly enabled: boolean;
  /** Current generation; entries of older generations are invalid. */
  gen = 1;
  /** Generation each stream's entry was filled in. */
  readonly entryGen: Uint32Array;
  /** IOVA of each entry's page, in bytes. */
  readonly base: Float64Array;
  /** Size of each entry's page, in bytes. */
  readonly size: Float64Array;
  /** PA of each entry's page, in bytes. */
  readonly pa: Float64Array;
  /** Access bits each entry allows. */
  readonly perm: Uint8Array;

  /**
   * @param streams Stream IDs.
   * @param enabled Whether entries are kept.
   */
  constructor(streams: number, enabled: boolean) {
    this.enabled = enabled;
    this.entryGen = new Uint32Array(streams);
    this.base = new Float64Array(streams);
    this.size = new Float64Array(streams);
    this.pa = new Float64Array(streams);
    this.perm = new Uint8Array(streams);
  }
}
