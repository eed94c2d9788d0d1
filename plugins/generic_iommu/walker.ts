/**
 * The hardware's page-table walker: reads LPAE descriptors from RAM, with one
 * walk cache per intermediate level (levels 0-2, each caching the address of
 * the next-level table for the region its descriptor covers).
 *
 * @module
 */
import type { PhysicalMemory } from "../../core/mod.ts";
import { Tlb, type TlbOptions } from "../../core/mod.ts";
import {
  EVT_F_ACCESS,
  EVT_F_ADDR_SIZE,
  EVT_F_TRANSLATION,
  EVT_F_WALK_EABT,
} from "./constants.ts";
import {
  DESC_AF,
  leafAccess,
  LEVEL_SIZE,
  type LpaeStage,
  S1_AP_RDONLY,
} from "./lpae.ts";

// Slots of the walker's chunk-view cache (64 KiB chunks: 16 MiB of tables).
const CHUNK_SLOTS = 256;

/**
 * Default walk-cache shapes for levels 0, 1 and 2: gem5's SMMUv3 walk cache
 * holds 4/28/348 entries per level, 4-way, round-robin; the model rounds to
 * power-of-two set counts (4, 32 and 256 entries).
 */
export const DEFAULT_WALK_CACHE: readonly TlbOptions[] = [
  { sets: 1, ways: 4, replacement: "round-robin" },
  { sets: 8, ways: 4, replacement: "round-robin" },
  { sets: 64, ways: 4, replacement: "round-robin" },
];

/**
 * Walks tables in RAM for the hardware model. Results of the last walk are
 * left in fields so a walk allocates nothing.
 */
export class Walker {
  /** Walk caches for levels 0, 1, 2 (index = level). */
  readonly caches: readonly Tlb[];
  /** Descriptors read per level 0..3. */
  readonly reads: Float64Array = new Float64Array(4);
  /** Walks started. */
  walks = 0;
  /** Output address of the leaf found by the last successful walk. */
  leafPa = 0;
  /** Size in bytes of that leaf. */
  leafSize = 0;
  /** Access bits (1 read, 2 write) that leaf grants. */
  leafAccess = 0;
  /** Address involved in the last failed walk (output or fetch address). */
  faultAddress = 0;
  #memory: PhysicalMemory;
  #memBase: number;
  #memEnd: number;
  #stage: LpaeStage;
  #anyCache: boolean;
  // Direct-mapped cache of live Uint32Array views of whole 64 KiB RAM
  // chunks (RAM never drops a chunk, so a view never goes stale): a
  // descriptor read is an index into one of them, with no per-table view
  // object and no Map lookup.
  #chunkKey: Float64Array = new Float64Array(CHUNK_SLOTS).fill(-1);
  #chunkView: Uint32Array[] = new Array<Uint32Array>(CHUNK_SLOTS).fill(
    new Uint32Array(0),
  );
  // Per level: the table address the last table descriptor read there
  // named, and the view of its chunk (-1: none yet).
  #memoAddr: Float64Array = new Float64Array(4).fill(-1);
  #memoView: (Uint32Array | null)[] = [null, null, null, null];
  #rootPa = -1;
  #rootWords: Uint32Array | null = null;

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM the tables are in.
   * @param stage Descriptor attribute format.
   * @param walkCache Shapes of the level 0, 1, 2 caches.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a bad cache shape (from `Tlb`).
   */
  constructor(
    memory: PhysicalMemory,
    stage: LpaeStage,
    walkCache: readonly TlbOptions[],
  ) {
    this.#memory = memory;
    this.#memBase = memory.base;
    this.#memEnd = memory.end;
    this.#stage = stage;
    this.caches = [0, 1, 2].map((l) =>
      new Tlb(walkCache[l] ?? DEFAULT_WALK_CACHE[l]!)
    );
    this.#anyCache = this.caches.some((c) => c.capacity !== 0);
  }

  /**
   * Walk for `iova` in context `ctx`.
   *
   * @param ctx Context tag of the walk cache entries.
   * @param root Root table address.
   * @param startLevel First level.
   * @param iova Input address (inside the input size).
   * @param outEnd One past the largest output address allowed.
   * @returns 0 on success (leaf fields set), else the event ID of the fault.
   */
  walk(
    ctx: number,
    root: number,
    startLevel: number,
    iova: number,
    outEnd: number,
  ): number {
    this.walks++;
    this.faultAddress = 0;
    let level = startLevel;
    let table = root;
    if (this.#anyCache) {
      const caches = this.caches;
      for (let l = 2; l >= startLevel; l--) {
        const c = caches[l]!;
        if (c.capacity !== 0 && c.lookup(ctx, iova) >= 0) {
          table = c.lastPaBase;
          level = l + 1;
          break;
        }
      }
    }
    // The IOVA as 32-bit words (bits 31:0 and 63:32): each level's index
    // is integer shifts.
    const ilo = iova >>> 0;
    const ihi = (iova / 0x100000000) >>> 0;
    const reads = this.reads;
    const memoAddr = this.#memoAddr;
    const memoView = this.#memoView;
    // `words` views the chunk holding the current table (null: read RAM
    // through the checked slow path), `woff` is the table's first word in it.
    let words: Uint32Array | null;
    if (level === startLevel) {
      words = table === this.#rootPa ? this.#rootWords : this.#rootOf(table);
    } else if (table === memoAddr[level - 1]) {
      // A walk-cache hit on the table the last walk also went through.
      words = memoView[level - 1]!;
    } else {
      // A walk-cache hit: a table descriptor named it, so it is 4 KiB
      // aligned; its chunk view, without disturbing the root's memo.
      const chunk = Math.floor(table / 65536);
      const slot = chunk & (CHUNK_SLOTS - 1);
      words = this.#chunkKey[slot] === chunk
        ? this.#chunkView[slot]!
        : this.#tableWords(table);
      memoAddr[level - 1] = table;
      memoView[level - 1] = words;
    }
    let woff = ((table >>> 0) & 0xf000) >>> 2;
    let lo = 0;
    let hi = 0;
    for (;; level++) {
      const idx = level === 3
        ? (ilo >>> 12) & 511
        : level === 2
        ? (ilo >>> 21) & 511
        : level === 1
        ? ((ilo >>> 30) | (ihi << 2)) & 511
        : (ihi >>> 7) & 511;
      reads[level]!++;
      if (words !== null) {
        const at = woff + (idx << 1);
        lo = words[at]!;
        hi = words[at + 1]!;
      } else {
        // An unaligned root, or a table outside RAM.
        const at = table + idx * 8;
        if (!(at >= this.#memBase && at + 8 <= this.#memEnd)) {
          this.faultAddress = at;
          return EVT_F_WALK_EABT;
        }
        lo = this.#memory.read32(at);
        hi = this.#memory.read32(at + 4);
      }
      if ((lo & 1) === 0) return EVT_F_TRANSLATION;
      if (level === 3 || (lo & 3) !== 3) break;
      const addr = (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0);
      if (addr >= outEnd) {
        this.faultAddress = addr;
        return EVT_F_ADDR_SIZE;
      }
      if (this.#anyCache) {
        const c = this.caches[level]!;
        if (c.capacity !== 0) c.insert(ctx, iova, LEVEL_SIZE[level]!, addr, 0);
      }
      table = addr;
      woff = (lo & 0xf000) >>> 2;
      // The same table as last time at this level: reuse its view
      // without computing its chunk (the next read then depends on no
      // lookup, so levels overlap).
      if (addr === memoAddr[level]) {
        words = memoView[level]!;
      } else {
        // The table's 64 KiB chunk number from the descriptor's words.
        const chunk = (hi & 0xffff) * 65536 + (lo >>> 16);
        const slot = chunk & (CHUNK_SLOTS - 1);
        words = this.#chunkKey[slot] === chunk
          ? this.#chunkView[slot]!
          : this.#tableWords(addr);
        memoAddr[level] = addr;
        memoView[level] = words;
      }
    }
    // The leaf (inline: this runs once per walk).
    if (level === 0 || (level === 3 && (lo & 3) !== 3)) {
      return EVT_F_TRANSLATION;
    }
    const addr = (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0);
    const size = LEVEL_SIZE[level]!;
    if (addr + size > outEnd) {
      this.faultAddress = addr;
      return EVT_F_ADDR_SIZE;
    }
    if ((lo & DESC_AF) === 0) return EVT_F_ACCESS;
    this.leafPa = addr;
    this.leafSize = size;
    this.leafAccess = this.#stage === 1
      ? ((lo & S1_AP_RDONLY) === 0 ? 3 : 1)
      : leafAccess(lo, 2);
    return 0;
  }

  // The view of the chunk holding the table at `table` (whose first word
  // in it is `(table & 0xf000) >>> 2`), or null when the table is not 4 KiB
  // aligned or not inside RAM (the walk then reads RAM word by word).
  #tableWords(table: number): Uint32Array | null {
    if (((table >>> 0) & 4095) !== 0) return null;
    const chunk = Math.floor(table / 65536);
    const slot = chunk & (CHUNK_SLOTS - 1);
    if (this.#chunkKey[slot] === chunk) return this.#chunkView[slot]!;
    const pa = chunk * 65536;
    if (!(pa >= this.#memBase && pa + 65536 <= this.#memEnd)) return null;
    const v = this.#memory.view32(pa, 65536);
    this.#chunkKey[slot] = chunk;
    this.#chunkView[slot] = v;
    return v;
  }

  // #tableWords for a walk's first table, remembered for the next walk.
  #rootOf(table: number): Uint32Array | null {
    const words = this.#tableWords(table);
    this.#rootPa = table;
    this.#rootWords = words;
    return words;
  }

  /**
   * Drop walk-cache entries of `ctx` overlapping `[start, start + size)`.
   *
   * @param ctx Context tag.
   * @param start First byte.
   * @param size Bytes.
   */
  invalidateRange(ctx: number, start: number, size: number): void {
    for (const c of this.caches) {
      if (c.size !== 0) c.invalidateRange(ctx, start, size);
    }
  }

  /**
   * Drop every walk-cache entry of `ctx`.
   *
   * @param ctx Context tag.
   */
  invalidateContext(ctx: number): void {
    for (const c of this.caches) if (c.size !== 0) c.invalidateContext(ctx);
  }

  /** Drop every walk-cache entry. */
  invalidateAll(): void {
    for (const c of this.caches) c.invalidateAll();
  }
}
