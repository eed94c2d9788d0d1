/**
 * The hardware page-table walker: reads level-1 (through the FLPD cache when
 * one is enabled) and level-2 descriptors from simulated RAM, exactly as the
 * unit would fetch them.
 *
 * @module
 */
import type { PhysicalMemory } from "../../core/mod.ts";
import type { FlpdCache } from "./flpd_cache.ts";
import {
  LPAGE_SIZE,
  LV1_TABLE_BYTES,
  LV2_TABLE_BYTES,
  PTE_V1,
  SECT_SIZE,
  SPAGE_SIZE,
  type SysmmuPteFormat,
} from "./pte.ts";

/** Walk result: a leaf was found (see the walker's `pa*`/`pageSize`/`perm`). */
export const SYSMMU_WALK_OK = 0;
/** Walk result: a fault descriptor (page fault). */
export const SYSMMU_WALK_PAGE_FAULT = 1;
/** Walk result: a table address is not memory (page-table-walk / bus error). */
export const SYSMMU_WALK_PTW_ERROR = 2;

/** Level-1 entries the v3.3 prefetcher fetches together (one 64-byte line: 16 MiB of IOVA). */
export const FLPD_PREFETCH_ENTRIES = 16;

// RAM is stored in 64 KiB chunks (PhysicalMemory.view32 cannot cross one).
const CHUNK_BYTES = 0x10000;
const CHUNK_MASK = CHUNK_BYTES - 1;
// Highest in-chunk offset at which a whole level-2 table still fits.
const L2_LAST_START = CHUNK_BYTES - LV2_TABLE_BYTES;
// Chunk views cached (a power of two), direct-mapped by chunk number: any
// 16 MiB of RAM without a conflict.
const L2_VIEWS = 256;
// Stands for "no table here": compared by identity, never read.
const EMPTY = new Uint32Array(0);

/** Walker statistics. */
export interface SysmmuWalkerCounters {
  /** Walks started. */
  walks: number;
  /** Level-1 descriptors read from RAM (prefetches included). */
  l1Reads: number;
  /** Level-2 descriptors read from RAM. */
  l2Reads: number;
}

/**
 * Walks one table format. Results are left in fields so a walk allocates
 * nothing.
 */
export class SysmmuWalker {
  /** Page base PA of the last successful walk, in bytes. */
  paBase = 0;
  /** Leaf size of the last successful walk, in bytes. */
  pageSize = 0;
  /** `IOMMU_READ`/`IOMMU_WRITE` bits the leaf grants. */
  perm = 0;
  #memory: PhysicalMemory;
  // The fields the walk reads get a value of their final kind at
  // declaration (the constructor sets the real one): declared without
  // one they would start as undefined, and optimised code would check the
  // kind at each use.
  #fmt: SysmmuPteFormat = PTE_V1;
  // A link entry's level-2 table PA is (e & ~63) << shift: its RAM chunk
  // number is e >>> (16 - shift), its offset in the chunk below, both in
  // int32 arithmetic (the PA itself may exceed 32 bits).
  #shift = 0;
  #chunkShift = 16;
  #viewBase = -1;
  #view: Uint32Array = EMPTY;
  // Live views of the 64 KiB RAM chunks holding level-2 tables,
  // direct-mapped by chunk number: a level-2 read is then one array index
  // instead of a bounds check and a RAM lookup. A view never goes stale
  // (RAM chunks are never dropped).
  #l2Chunk = new Int32Array(L2_VIEWS).fill(-1);
  #l2View: Uint32Array[] = new Array<Uint32Array>(L2_VIEWS).fill(EMPTY);
  // Every chunk view made so far, by chunk number: a conflict in the
  // direct-mapped cache above then costs a lookup, not an allocation.
  #known = new Map<number, Uint32Array>();
  #walks = 0;
  #l1Reads = 0;
  #l2Reads = 0;

  /**
   * Build a walker for one RAM and descriptor format.
   *
   * @param memory The RAM the tables live in.
   * @param format The descriptor format of the unit's generation.
   */
  constructor(memory: PhysicalMemory, format: SysmmuPteFormat) {
    this.#memory = memory;
    this.#fmt = format;
    this.#shift = format.shift;
    this.#chunkShift = 16 - format.shift;
  }

  // The level-1 table at `base` (EMPTY when it is not RAM).
  #l1(base: number): Uint32Array {
    this.#viewBase = base;
    this.#view = this.#memory.contains(base, LV1_TABLE_BYTES)
      ? this.#memory.view32(base, LV1_TABLE_BYTES)
      : EMPTY;
    return this.#view;
  }

  /**
   * Translate `iova` through the level-1 table at `base`.
   *
   * @param base Level-1 table PA (16 KiB aligned).
   * @param iova A 32-bit IOVA.
   * @param flpd The FLPD cache to consult and fill, or null when disabled.
   * @param prefetch Whether an FLPD miss fetches the whole 16-entry line
   * (v3.3 speculative prefetch) instead of one entry.
   * @returns {@linkcode SYSMMU_WALK_OK}, {@linkcode SYSMMU_WALK_PAGE_FAULT} or
   * {@linkcode SYSMMU_WALK_PTW_ERROR}.
   */
  walk(
    base: number,
    iova: number,
    flpd: FlpdCache | null,
    prefetch: boolean,
  ): number {
    this.#walks++;
    const l1 = base === this.#viewBase ? this.#view : this.#l1(base);
    if (l1 === EMPTY) return SYSMMU_WALK_PTW_ERROR;
    const slot = iova >>> 20;
    let e: number;
    if (flpd === null) {
      e = l1[slot]!;
      this.#l1Reads++;
    } else {
      e = flpd.read(base, slot, l1, prefetch);
      this.#l1Reads += flpd.lastReads;
    }
    const fmt = this.#fmt;
    const t = e & 3;
    if (t === 2) {
      this.paBase = fmt.sectionPa(e);
      this.pageSize = SECT_SIZE;
      this.perm = fmt.sectionPerm(e);
      return SYSMMU_WALK_OK;
    }
    if (t !== 1) return SYSMMU_WALK_PAGE_FAULT;
    const inChunk = ((e & 0xffffffc0) << this.#shift) & CHUNK_MASK;
    const at = inChunk + ((iova >>> 12) & 0xff) * 4;
    const chunk = e >>> this.#chunkShift;
    const v = chunk & (L2_VIEWS - 1);
    let e2: number;
    // The cached chunk holds the whole table only when the table does not
    // run past the chunk's end (links are 64-byte aligned, not 1 KiB).
    if (this.#l2Chunk[v] === chunk && inChunk <= L2_LAST_START) {
      e2 = this.#l2View[v]![at >>> 2]!;
    } else {
      e2 = this.#readL2(fmt.linkPa(e), at, chunk, v);
      if (e2 < 0) return SYSMMU_WALK_PTW_ERROR;
    }
    this.#l2Reads++;
    const t2 = e2 & 3;
    if (t2 === 0) return SYSMMU_WALK_PAGE_FAULT;
    if (t2 === 1) {
      this.paBase = fmt.largePa(e2);
      this.pageSize = LPAGE_SIZE;
    } else {
      this.paBase = fmt.smallPa(e2);
      this.pageSize = SPAGE_SIZE;
    }
    this.perm = fmt.lv2Perm(e2);
    return SYSMMU_WALK_OK;
  }

  // Level-2 read without a cached view: -1 when the table is not RAM.
  // A chunk gets a view (made once, kept in #known) only once an entry read
  // from it is non-zero, which proves the chunk is materialised (untouched
  // RAM reads as zeros): a walk never makes RAM grow.
  #readL2(l2: number, at: number, chunk: number, v: number): number {
    const memory = this.#memory;
    if (!memory.contains(l2, LV2_TABLE_BYTES)) return -1;
    const chunkPa = chunk * CHUNK_BYTES;
    if ((l2 & CHUNK_MASK) > L2_LAST_START) return memory.read32(chunkPa + at);
    let view = this.#known.get(chunk);
    if (view === undefined) {
      const e2 = memory.read32(chunkPa + at);
      if (e2 === 0 || !memory.contains(chunkPa, CHUNK_BYTES)) return e2;
      view = memory.view32(chunkPa, CHUNK_BYTES);
      this.#known.set(chunk, view);
    }
    this.#l2Chunk[v] = chunk;
    this.#l2View[v] = view;
    return view[at >>> 2]!;
  }

  /**
   * Statistics.
   *
   * @returns A snapshot.
   */
  counters(): SysmmuWalkerCounters {
    return {
      walks: this.#walks,
      l1Reads: this.#l1Reads,
      l2Reads: this.#l2Reads,
    };
  }
}
