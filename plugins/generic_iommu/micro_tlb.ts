/**
 * The per-stream micro TLBs of the generic unit, in front of the IOTLB,
 * stored in one array together with the translate path's per-stream copy
 * of its config (internal; not exported from mod.ts).
 *
 * gem5's SMMUv3 has a 32-entry, fully associative, round-robin micro TLB
 * per device interface. This model keeps one micro TLB per stream (default
 * 32 entries) but, as a documented deviation for the speed of the model,
 * **direct-mapped**: entry `(iova >>> 12) & (entries - 1)`, the low bits
 * of the 4 KiB page number. A fully associative scan of 32 entries costs
 * several times a whole translation in JavaScript; a direct-mapped probe
 * is one compare. Pages whose 4 KiB page numbers differ by a multiple of
 * `entries` evict each other. A 2 MiB or 1 GiB leaf fills, on its miss,
 * every entry one of its 4 KiB pages indexes (every entry of the stream
 * for 32 entries), so any access inside it then hits, as it would in a
 * fully associative micro TLB; 4 KiB fills then evict its copies one by
 * one.
 *
 * Entries and config copies are valid only while their generation equals
 * the current one; every invalidation command, config invalidation and
 * CR0 or stream-table write bumps it, so no stale translation survives
 * one.
 *
 * hardware.ts's translate path spells the `ROW_*` and `U_*` slots as
 * literals (speed); tests/generic_iommu_walker_test.ts pins their values.
 *
 * A stream gets its entries on its first translation with a translating
 * config (a unit of 65,536 streams does not pay for 2 million entries up
 * front); until then its row points at a block that never hits.
 *
 * @module
 */
import { IommuError } from "../../core/mod.ts";

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
/**
 * Row slot: accesses of the stream translated (or refused) with SMMUEN set
 * that the micro TLB did not answer.
 */
export const ROW_TRANSLATIONS = 2;
/** Row slot: accesses of the stream the micro TLB answered (hits). */
export const ROW_U_HITS = 3;
/**
 * Row slot: index in {@linkcode MicroTlb.rows} of the stream's first
 * micro TLB entry (the never-hitting block until it gets its own).
 */
export const ROW_U_BLOCK = 4;
/**
 * Row slot: the context ID of the stream's config, written with
 * {@linkcode ROW_CFG_GEN} (so valid while the row is): the hardware's
 * inline IOTLB hit reads it from the row it already holds.
 */
export const ROW_CTX = 5;

/** Numbers per micro TLB entry. */
export const U_STRIDE = 4;
/** Entry slot: generation it was filled in (0: never). */
export const U_GEN = 0;
/** Entry slot: first IOVA of the leaf it caches, in bytes. */
export const U_BASE = 1;
/** Entry slot: one past the last IOVA of that leaf, in bytes. */
export const U_END = 2;
/**
 * Entry slot: PA minus IOVA for any IOVA in the leaf (a multiple of 4 KiB)
 * plus the access bits the leaf allows (0-3) in its low bits: `v & 3` is
 * the permission, `v - (v & 3)` the delta (`& 3` reads the low bits of any
 * safe integer exactly, negative ones included).
 */
export const U_DELTA_PERM = 3;

/** Default entries per stream: gem5's micro TLB size. */
export const DEFAULT_MICRO_TLB_ENTRIES = 32;
/** The largest number of entries per stream accepted. */
export const MAX_MICRO_TLB_ENTRIES = 4096;

/**
 * Entries per stream for a `microTlb` option: `true` is
 * {@linkcode DEFAULT_MICRO_TLB_ENTRIES}, `false` or 0 none, else a power of
 * two from 1 to {@linkcode MAX_MICRO_TLB_ENTRIES}.
 *
 * @param option The option.
 * @returns Entries per stream (0: no micro TLB).
 * @throws {IommuError} `EINVAL` for anything else.
 */
export function microTlbEntries(option: boolean | number): number {
  if (option === true) return DEFAULT_MICRO_TLB_ENTRIES;
  if (option === false || option === 0) return 0;
  if (
    typeof option !== "number" || !Number.isInteger(option) || option < 1 ||
    option > MAX_MICRO_TLB_ENTRIES || (option & (option - 1)) !== 0
  ) {
    throw new IommuError(
      "EINVAL",
      `microTlb must be a boolean or a power of two from 1 to ${MAX_MICRO_TLB_ENTRIES} (entries per stream), got ${
        String(option)
      }`,
    );
  }
  return option;
}

/**
 * Rows and entries in a single typed array, read inline by the translate
 * path: a micro TLB hit is one generation compare, two bound compares, a
 * permission test and an add. Generations are floats, so no wrap-around
 * can ever revive a stale entry.
 */
export class MicroTlb {
  /** Entries per stream (a power of two), 0 when the unit has none. */
  readonly entries: number;
  /** Whether the unit has micro TLBs at all. */
  readonly enabled: boolean;
  /** `entries - 1`: masks the 4 KiB page number into an entry index. */
  readonly mask: number;
  /**
   * Row 0 (the generation), one row per stream (see the `ROW_*` slots),
   * then the never-hitting block, then the streams' blocks of `entries`
   * entries (`U_*` slots). Replaced by a larger copy when a stream's block
   * does not fit: readers that keep it must take it again after
   * {@linkcode MicroTlb.assign}.
   */
  rows: Float64Array;
  #streams: number;
  #used: number;

  /**
   * @param streams Stream IDs.
   * @param entries Entries per stream: 0 (none) or a power of two.
   */
  constructor(streams: number, entries: number) {
    this.entries = entries;
    this.enabled = entries > 0;
    this.mask = entries > 0 ? entries - 1 : 0;
    this.#streams = streams;
    const block = Math.max(entries, 1) * U_STRIDE;
    const dummy = (streams + 1) * ROW_STRIDE;
    this.#used = dummy + block;
    // Room for a few streams' blocks; more grow the array by doubling.
    const initial = this.#used + (entries > 0 ? Math.min(streams, 4) : 0) *
        block;
    this.rows = new Float64Array(initial);
    this.rows[0] = 1;
    for (let s = 0; s < streams; s++) {
      this.rows[(s + 1) * ROW_STRIDE + ROW_U_BLOCK] = dummy;
    }
  }

  /**
   * Current generation (starts at 1); rows and entries of older
   * generations are invalid. Kept in `rows[0]` so the translate path reads
   * it from the array it already holds.
   */
  get gen(): number {
    return this.rows[0]!;
  }

  /** Invalidate every entry and every config copy of every stream. */
  bump(): void {
    this.rows[0]!++;
  }

  /**
   * Give `sid` its own block of entries (no-op when it has one or the unit
   * has no micro TLBs). May replace {@linkcode MicroTlb.rows}.
   *
   * @param sid Stream ID (inside the stream table).
   */
  assign(sid: number): void {
    const at = (sid + 1) * ROW_STRIDE + ROW_U_BLOCK;
    const dummy = (this.#streams + 1) * ROW_STRIDE;
    if (!this.enabled || this.rows[at] !== dummy) return;
    const block = this.entries * U_STRIDE;
    if (this.#used + block > this.rows.length) {
      const grown = new Float64Array(
        Math.max(this.rows.length * 2, this.#used + block),
      );
      grown.set(this.rows);
      this.rows = grown;
    }
    this.rows[at] = this.#used;
    this.#used += block;
  }

  /**
   * Micro TLB hits of every stream (the hit counters live in the rows).
   *
   * @returns The sum.
   */
  hits(): number {
    let n = 0;
    const r = this.rows;
    const end = (this.#streams + 1) * ROW_STRIDE;
    for (let i = ROW_STRIDE; i < end; i += ROW_STRIDE) n += r[i + ROW_U_HITS]!;
    return n;
  }

  /**
   * Accesses counted per stream (micro hits and the others) of every stream.
   *
   * @returns The sum.
   */
  translations(): number {
    let n = 0;
    const r = this.rows;
    const end = (this.#streams + 1) * ROW_STRIDE;
    for (let i = ROW_STRIDE; i < end; i += ROW_STRIDE) {
      n += r[i + ROW_U_HITS]! + r[i + ROW_TRANSLATIONS]!;
    }
    return n;
  }
}
