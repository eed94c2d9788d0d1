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

/** One live mapping: what the checker sees plus how to undo it. */
export class Live implements DmaMappingRecord {
  dmaAddr = -1;
  end = -1;
  mapErr: number;
  lines: Float64Array | null = null;
  iova = -1;
  iovaSize = 0;
  bounce = -1; // single, direct: slot PA
  bounceSize = 0;
  sg: DmaSgMapping | null = null;
  next: Live | null = null; // same DMA address (direct mode only)
  ranges: Float64Array | null = null; // PA [start, end) pairs (ownership debug)
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

/** Live mappings by DMA address, mirrored into the debug checker. */
export class LiveTable {
  #live = new Map<number, Live>();
  #debug: DmaDebug | null;

  /** @param debug The checker to keep in step, or null. */
  constructor(debug: DmaDebug | null) {
    this.#debug = debug;
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
    this.#debug?.untrack(rec);
  }

  /**
   * Exact lookup; among duplicates (direct mode) the best-matching one.
   *
   * @param dmaAddr DMA address, in bytes.
   * @param type Claimed kind.
   * @param size Claimed size, in bytes.
   * @param direction Claimed direction.
   * @returns The record, or undefined.
   */
  lookup(
    dmaAddr: number,
    type: DmaMappingType,
    size: number,
    direction: DmaDirection,
  ): Live | undefined {
    let rec: Live | null = this.#live.get(dmaAddr) ?? null;
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
   * The mapping whose DMA range holds an address.
   *
   * @param dmaAddr DMA address, in bytes.
   * @returns The record, or undefined.
   */
  containing(dmaAddr: number): Live | undefined {
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        if (dmaAddr >= r.dmaAddr && dmaAddr < r.end) return r;
      }
    }
    return undefined;
  }

  /**
   * Records the device owns, with their PA ranges (ownership debug).
   *
   * @returns Each such record and its [start, end) pairs.
   */
  owned(): { rec: Live; ranges: Float64Array }[] {
    const owned: { rec: Live; ranges: Float64Array }[] = [];
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        if (r.deviceOwned && r.ranges !== null) {
          owned.push({ rec: r, ranges: r.ranges });
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
