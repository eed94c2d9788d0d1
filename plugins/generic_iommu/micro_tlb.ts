/**
 * The per-stream micro TLB of the generic unit: one entry per stream (gem5
 * keeps a small one per device interface) in front of the IOTLB, stored in
 * one row per stream together with the translate path's copy of the
 * stream's config. Both are valid only while their generation equals
 * `gen`; every invalidation command, config invalidation and CR0 or
 * stream-table write bumps `gen` (internal; not exported from mod.ts).
 *
 * @module
 */

/**
 * Numbers per row of {@linkcode MicroTlb.rows}. Row 0 holds the current
 * generation (slot 0); stream `sid` owns row `sid + 1`.
 */
export const ROW_STRIDE = 8;
/**
 * Row slot: generation in which the slow path found the stream enabled,
 * inside the stream table and with a translating config (0: never).
 */
export const ROW_CFG_GEN = 0;
/** Row slot: the config's exclusive IOVA bound, in bytes. */
export const ROW_IN_END = 1;
/** Row slot: accesses of the stream translated (or refused) with SMMUEN set. */
export const ROW_TRANSLATIONS = 2;
/** Row slot: generation the micro TLB entry was filled in (0: never). */
export const ROW_U_GEN = 3;
/** Row slot: first IOVA of the entry's page, in bytes. */
export const ROW_U_BASE = 4;
/** Row slot: one past the last IOVA of the entry's page, in bytes. */
export const ROW_U_END = 5;
/** Row slot: PA minus IOVA for any IOVA in the entry's page. */
export const ROW_U_DELTA = 6;
/** Row slot: access bits the entry's page allows. */
export const ROW_U_PERM = 7;

/**
 * One row per stream in a single typed array, read inline by the translate
 * path: a micro TLB hit is one generation compare, two bound compares, a
 * permission test and an add, all in one array. Generations are floats,
 * so no wrap-around can ever revive a stale row.
 */
export class MicroTlb {
  /** Whether the unit has micro TLBs at all. */
  readonly enabled: boolean;
  /** Row 0 (the generation) and one row per stream (see the `ROW_*` slots). */
  readonly rows: Float64Array;

  /**
   * @param streams Stream IDs.
   * @param enabled Whether micro TLB entries are kept.
   */
  constructor(streams: number, enabled: boolean) {
    this.enabled = enabled;
    this.rows = new Float64Array((streams + 1) * ROW_STRIDE);
    this.rows[0] = 1;
  }

  /**
   * Current generation (starts at 1); rows of older generations are
   * invalid. Kept in `rows[0]` so the translate path reads it from the
   * array it already holds.
   */
  get gen(): number {
    return this.rows[0]!;
  }

  set gen(value: number) {
    this.rows[0] = value;
  }
}
