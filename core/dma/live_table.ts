/**
 * The mapper's table of live mappings: one record per mapping, keyed by DMA
 * address (direct mode may map one address twice, so records chain), kept
 * in step with the debug checker (internal; not exported from mod.ts).
 *
 * @module
 */
import type { DmaBuffer } from "./dma_buffer.ts";
import type { DmaDirection } from "./direction.ts";
import type { DmaDebug, DmaMappingRecord, DmaMappingType } from "./debug.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import type { IovaAllocator } from "./iova_allocator.ts";

/** Shared by every record the CPU owns none of (never changed in place). */
const NO_CPU_PARTS: readonly number[] = Object.freeze([]);

/** One live mapping: what the checker sees plus how to undo it. */
export class Live implements DmaMappingRecord {
  dmaAddr = -1;
  end = -1;
  mapErr: number;
  lines: Float64Array | null = null;
  skipOverlapCheck = false;
  iova = -1;
  iovaSize = 0;
  bounce = -1; // single, direct: slot PA
  bounceSize = 0;
  sg: DmaSgMapping | null = null;
  next: Live | null = null; // same DMA address (direct mode only)
  ranges: Float64Array | null = null; // PA [start, end) pairs (ownership debug)
  // Ownership debug (see ownership.ts): byte offsets the CPU owns, sorted
  // [start, end) pairs; the device owns the rest while deviceOwned. Replaced,
  // never changed in place (a shared empty list until then: no allocation
  // per mapping).
  cpuParts: readonly number[] = NO_CPU_PARTS;
  deviceOwned = false;
  /**
   * @param type Kind of mapping.
   * @param direction Direction mapped with.
   * @param size Bytes mapped.
   * @param nents Entries (1 unless sg).
   * @param cpu The CPU buffer, or null for sg.
   * @param mapErr Initial mapping-error check state.
   * @param mappedAt Stack of the map call ("" without debug).
   */
  constructor(
    readonly type: DmaMappingType,
    readonly direction: DmaDirection,
    readonly size: number,
    readonly nents: number,
    readonly cpu: DmaBuffer | null,
    mapErr: number,
    readonly mappedAt: string,
  ) {
    this.mapErr = mapErr;
  }
}

/**
 * Bytes of DMA address space one bucket of the range index covers: small
 * enough that a bucket holds few records when thousands of small mappings
 * are live, large enough that a mapping touches few buckets.
 */
const BUCKET = 64 * 1024;

/**
 * Call `f` with each [start, end) DMA range a record occupies: its DMA
 * segments for sg (in direct mode they lie anywhere), else its one range.
 */
function eachRange(rec: Live, f: (lo: number, hi: number) => void): void {
  const sg = rec.sg;
  if (rec.type === "sg" && sg !== null) {
    for (let i = 0; i < sg.count; i++) {
      f(sg.dmaAddress[i]!, sg.dmaAddress[i]! + sg.dmaLength[i]!);
    }
  } else f(rec.dmaAddr, rec.end);
}

/**
 * The DMA segment of an sg mapping holding an address.
 *
 * @param sg The mapping.
 * @param addr DMA address, in bytes.
 * @returns The segment's index, or -1.
 */
export function segmentIndex(sg: DmaSgMapping, addr: number): number {
  for (let i = 0; i < sg.count; i++) {
    const a = sg.dmaAddress[i]!;
    if (addr >= a && addr < a + sg.dmaLength[i]!) return i;
  }
  return -1;
}

/**
 * End of the DMA range of one record (one DMA segment for sg) holding an
 * address.
 *
 * @param rec A live record.
 * @param addr DMA address, in bytes.
 * @returns The end (exclusive), or -1 when no part of `rec` holds `addr`.
 */
export function segmentEnd(rec: Live, addr: number): number {
  const sg = rec.sg;
  if (rec.type !== "sg" || sg === null) {
    return addr >= rec.dmaAddr && addr < rec.end ? rec.end : -1;
  }
  const i = segmentIndex(sg, addr);
  return i < 0 ? -1 : sg.dmaAddress[i]! + sg.dmaLength[i]!;
}

/**
 * How well `rec` fits a sync of `[addr, end)` in `direction`: -1 when none
 * of its DMA ranges holds `addr`, else 2 when the range holding it reaches
 * `end`, plus 1 when `rec` was mapped in `direction`.
 */
function fit(
  rec: Live,
  addr: number,
  end: number,
  direction: DmaDirection,
): number {
  const rangeEnd = segmentEnd(rec, addr);
  if (rangeEnd < 0) return -1;
  return (rangeEnd >= end ? 2 : 0) + (rec.direction === direction ? 1 : 0);
}

/** Live mappings by DMA address, mirrored into the debug checker. */
export class LiveTable {
  #live = new Map<number, Live>();
  #debug: DmaDebug | null;
  /**
   * With a range index (direct mode): the records whose DMA ranges touch
   * each 64 KiB bucket, so that {@linkcode LiveTable.holding} looks at a
   * few records, not all. Null without one (an IOMMU mapper: one IOVA
   * range per mapping, found by the page tables; no cost on its map path).
   */
  #buckets: Map<number, Live[]> | null;
  /**
   * On an IOMMU mapper, once {@linkcode LiveTable.containing} has been
   * asked: the records by the start of their IOVA allocation, so that it
   * finds the mapping holding an address through the allocator (O(log n)),
   * not by a scan (a sync in the middle of a mapping took 52 µs at 20,000
   * live mappings). Built on that first call, then kept; null until then,
   * so a mapper whose syncs start at its mappings' DMA addresses (found
   * by {@linkcode LiveTable.head}) pays nothing for it on its map path
   * (keeping it measured 5-20% on mapSg + unmapSg of 256 pages).
   */
  #byIova: Map<number, Live> | null;
  #iova: IovaAllocator | null;

  /**
   * @param debug The checker to keep in step, or null.
   * @param indexRanges Keep the range index behind
   * {@linkcode LiveTable.holding} (a mapper without an IOMMU, whose syncs
   * look up the mapping holding any address).
   * @param iova The IOVA allocator of an IOMMU mapper (its allocations hold
   * the records' DMA ranges), or null.
   */
  constructor(
    debug: DmaDebug | null,
    indexRanges = false,
    iova: IovaAllocator | null = null,
  ) {
    this.#debug = debug;
    this.#buckets = indexRanges ? new Map() : null;
    this.#iova = iova;
    this.#byIova = null;
  }

  /**
   * The record a sync of `[dmaAddr, end)` in `direction` names: among the
   * records one of whose DMA ranges (sg: one of its segments) holds
   * `dmaAddr`, one whose range reaches `end` first, then one mapped in
   * `direction` (a master without an IOMMU may map one address twice, and
   * the sync must be judged against the mapping it means, as the unmap's
   * {@linkcode LiveTable.lookup} does). Looks through the range index when
   * it is kept, else every record.
   *
   * @param dmaAddr DMA address, in bytes.
   * @param end Exclusive end of the synced range, in bytes.
   * @param direction Direction of the sync.
   * @returns The record, or undefined.
   */
  holding(
    dmaAddr: number,
    end: number,
    direction: DmaDirection,
  ): Live | undefined {
    let best: Live | undefined;
    let bestScore = -1;
    const buckets = this.#buckets;
    if (buckets !== null) {
      const list = buckets.get(Math.floor(dmaAddr / BUCKET));
      if (list === undefined) return undefined;
      for (const r of list) {
        const score = fit(r, dmaAddr, end, direction);
        if (score > bestScore) {
          best = r;
          bestScore = score;
        }
      }
      return best;
    }
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        const score = fit(r, dmaAddr, end, direction);
        if (score > bestScore) {
          best = r;
          bestScore = score;
        }
      }
    }
    return best;
  }

  /**
   * The head of the chain at a DMA address.
   *
   * @param dmaAddr DMA address, in bytes.
   * @returns The first record there, or null.
   */
  head(dmaAddr: number): Live | null {
    return this.#live.get(dmaAddr) ?? null;
  }

  /** @param rec A new record (its `dmaAddr` set). */
  insert(rec: Live): void {
    const have = this.#live.get(rec.dmaAddr);
    if (have !== undefined) rec.next = have;
    this.#live.set(rec.dmaAddr, rec);
    if (this.#byIova !== null && rec.iova >= 0) this.#byIova.set(rec.iova, rec);
    const buckets = this.#buckets;
    if (buckets !== null) {
      eachRange(rec, (lo, hi) => {
        for (let b = Math.floor(lo / BUCKET); b * BUCKET < hi; b++) {
          const list = buckets.get(b);
          if (list === undefined) buckets.set(b, [rec]);
          else if (list[list.length - 1] !== rec) list.push(rec);
        }
      });
    }
    this.#debug?.track(rec);
  }

  /** @param rec A record in the table. */
  remove(rec: Live): void {
    const head = this.#live.get(rec.dmaAddr);
    if (head === rec) {
      if (rec.next === null) this.#live.delete(rec.dmaAddr);
      else this.#live.set(rec.dmaAddr, rec.next);
    } else {
      let p = head ?? null;
      while (p !== null && p.next !== rec) p = p.next;
      if (p !== null) p.next = rec.next;
    }
    rec.next = null;
    if (this.#byIova?.get(rec.iova) === rec) this.#byIova.delete(rec.iova);
    const buckets = this.#buckets;
    if (buckets !== null) {
      eachRange(rec, (lo, hi) => {
        for (let b = Math.floor(lo / BUCKET); b * BUCKET < hi; b++) {
          const list = buckets.get(b);
          if (list === undefined) continue;
          const at = list.indexOf(rec);
          if (at < 0) continue;
          list.splice(at, 1);
          if (list.length === 0) buckets.delete(b);
        }
      });
    }
    this.#debug?.untrack(rec);
  }

  /**
   * Exact lookup; among duplicates (direct mode) the best-matching one.
   *
   * @param dmaAddr DMA address, in bytes.
   * @param type Claimed kind.
   * @param size Claimed size, in bytes.
   * @param direction Claimed direction.
   * @param sg The sg mapping handle the caller passed, if any: its own
   * record is taken first.
   * @returns The record, or undefined.
   */
  lookup(
    dmaAddr: number,
    type: DmaMappingType,
    size: number,
    direction: DmaDirection,
    sg: DmaSgMapping | null = null,
  ): Live | undefined {
    let rec: Live | null = this.#live.get(dmaAddr) ?? null;
    if (sg !== null) {
      // The handle names its own record: another list may start at the
      // same address (a master without an IOMMU may map one buffer twice).
      for (let r = rec; r !== null; r = r.next) if (r.sg === sg) return r;
    }
    if (rec === null || rec.next === null) return rec ?? undefined;
    let best = rec;
    let bestScore = -1;
    for (; rec !== null; rec = rec.next) {
      const score = (rec.type === type ? 1 : 0) + (rec.size === size ? 1 : 0) +
        (rec.direction === direction ? 1 : 0);
      if (score > bestScore) {
        best = rec;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * The mapping whose DMA range holds an address (through the IOVA
   * allocator when the table keeps records by IOVA, else by a scan).
   *
   * @param dmaAddr DMA address, in bytes.
   * @returns The record, or undefined.
   */
  containing(dmaAddr: number): Live | undefined {
    const iova = this.#iova;
    if (iova !== null) {
      let byIova = this.#byIova;
      if (byIova === null) {
        byIova = new Map();
        for (const head of this.#live.values()) {
          for (let r: Live | null = head; r !== null; r = r.next) {
            if (r.iova >= 0) byIova.set(r.iova, r);
          }
        }
        this.#byIova = byIova;
      }
      // A record's DMA range lies inside its IOVA allocation, and
      // allocations never overlap.
      const range = iova.find(dmaAddr);
      if (range === undefined) return undefined;
      const r = byIova.get(range.start);
      return r !== undefined && dmaAddr >= r.dmaAddr && dmaAddr < r.end
        ? r
        : undefined;
    }
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        if (dmaAddr >= r.dmaAddr && dmaAddr < r.end) return r;
      }
    }
    return undefined;
  }

  /**
   * Records the device owns at least part of, with their PA ranges and the
   * parts the CPU owns (ownership debug).
   *
   * @returns Each such record, its [start, end) pairs and its CPU parts.
   */
  owned(): { rec: Live; ranges: Float64Array; cpuParts: readonly number[] }[] {
    const owned: {
      rec: Live;
      ranges: Float64Array;
      cpuParts: readonly number[];
    }[] = [];
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        if (r.deviceOwned && r.ranges !== null) {
          owned.push({ rec: r, ranges: r.ranges, cpuParts: r.cpuParts });
        }
      }
    }
    return owned;
  }

  /** @returns Every live record, in table order. */
  all(): Live[] {
    const out: Live[] = [];
    for (const head of this.#live.values()) {
      for (let x: Live | null = head; x !== null; x = x.next) out.push(x);
    }
    return out;
  }

  /** @returns How many records are live. */
  count(): number {
    let live = 0;
    for (const head of this.#live.values()) {
      for (let x: Live | null = head; x !== null; x = x.next) live++;
    }
    return live;
  }
}
