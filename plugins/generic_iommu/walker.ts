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
import { DESC_AF, leafAccess, LEVEL_SIZE, type LpaeStage } from "./lpae.ts";

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
  #stage: LpaeStage;
  // Per-level memo of the last table read and its view (null: no view).
  #memoPa: Float64Array = new Float64Array(4).fill(-1);
  #memoView: (Uint32Array | null)[] = [null, null, null, null];
  #views = new Map<number, Uint32Array>();

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
    this.#stage = stage;
    this.caches = [0, 1, 2].map((l) =>
      new Tlb(walkCache[l] ?? DEFAULT_WALK_CACHE[l]!)
    );
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
    const caches = this.caches;
    let level = startLevel;
    let table = root;
    for (let l = 2; l >= startLevel; l--) {
      const c = caches[l]!;
      if (c.capacity !== 0 && c.lookup(ctx, iova) >= 0) {
        table = c.lastPaBase;
        level = l + 1;
        break;
      }
    }
    const memoPa = this.#memoPa;
    const memoView = this.#memoView;
    const reads = this.reads;
    let lo = 0;
    let addr = 0;
    let size = 0;
    for (;; level++) {
      size = LEVEL_SIZE[level]!;
      const idx = Math.floor(iova / size) & 511;
      const view = memoPa[level] === table
        ? memoView[level]!
        : this.#viewOf(level, table);
      reads[level]!++;
      let hi: number;
      if (view !== null) {
        lo = view[idx << 1]!;
        hi = view[(idx << 1) + 1]!;
      } else {
        // No view (an unaligned root, or a pointer outside RAM).
        const mem = this.#memory;
        const at = table + idx * 8;
        if (!(at >= mem.base && at + 8 <= mem.end)) {
          this.faultAddress = at;
          return EVT_F_WALK_EABT;
        }
        lo = mem.read32(at);
        hi = mem.read32(at + 4);
      }
      if ((lo & 1) === 0) return EVT_F_TRANSLATION;
      addr = (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0);
      if (level === 3 || (lo & 3) !== 3) break;
      if (addr >= outEnd) {
        this.faultAddress = addr;
        return EVT_F_ADDR_SIZE;
      }
      const c = caches[level]!;
      if (c.capacity !== 0) c.insert(ctx, iova, size, addr, 0);
      table = addr;
    }
    return this.#leaf(lo, level, addr, size, outEnd);
  }

  #leaf(
    lo: number,
    level: number,
    addr: number,
    size: number,
    outEnd: number,
  ): number {
    if (level === 0 || (level === 3 && (lo & 3) !== 3)) {
      return EVT_F_TRANSLATION;
    }
    if (addr + size > outEnd) {
      this.faultAddress = addr;
      return EVT_F_ADDR_SIZE;
    }
    if ((lo & DESC_AF) === 0) return EVT_F_ACCESS;
    this.leafPa = addr;
    this.leafSize = size;
    this.leafAccess = leafAccess(lo, this.#stage);
    return 0;
  }

  #viewOf(level: number, table: number): Uint32Array | null {
    let v: Uint32Array | null = null;
    const mem = this.#memory;
    if (table % 4096 === 0 && table >= mem.base && table + 4096 <= mem.end) {
      v = this.#views.get(table) ?? null;
      if (v === null) {
        // Bounded: a long run may walk many tables over time.
        if (this.#views.size >= 65536) this.#views.clear();
        v = mem.view32(table, 4096);
        this.#views.set(table, v);
      }
    }
    this.#memoPa[level] = table;
    this.#memoView[level] = v;
    return v;
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
