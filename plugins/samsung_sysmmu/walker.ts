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
  #fmt: SysmmuPteFormat;
  #viewBase = -1;
  #view: Uint32Array | null = null;
  #c: SysmmuWalkerCounters = { walks: 0, l1Reads: 0, l2Reads: 0 };

  /**
   * Build a walker for one RAM and descriptor format.
   *
   * @param memory The RAM the tables live in.
   * @param format The descriptor format of the unit's generation.
   */
  constructor(memory: PhysicalMemory, format: SysmmuPteFormat) {
    this.#memory = memory;
    this.#fmt = format;
  }

  #l1(base: number): Uint32Array | null {
    if (base === this.#viewBase) return this.#view;
    this.#viewBase = base;
    this.#view = this.#memory.contains(base, LV1_TABLE_BYTES)
      ? this.#memory.view32(base, LV1_TABLE_BYTES)
      : null;
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
    this.#c.walks++;
    const l1 = this.#l1(base);
    if (l1 === null) return SYSMMU_WALK_PTW_ERROR;
    const slot = iova >>> 20;
    let e: number;
    if (flpd === null) {
      e = l1[slot]!;
      this.#c.l1Reads++;
    } else {
      e = flpd.lookup(base, slot);
      if (e < 0) {
        e = l1[slot]!;
        if (prefetch) {
          const first = slot & ~(FLPD_PREFETCH_ENTRIES - 1);
          for (let s = first; s < first + FLPD_PREFETCH_ENTRIES; s++) {
            flpd.fill(base, s, l1[s]!);
          }
          this.#c.l1Reads += FLPD_PREFETCH_ENTRIES;
        } else {
          flpd.fill(base, slot, e);
          this.#c.l1Reads++;
        }
      }
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
    const l2 = fmt.linkPa(e);
    if (!this.#memory.contains(l2, LV2_TABLE_BYTES)) {
      return SYSMMU_WALK_PTW_ERROR;
    }
    const e2 = this.#memory.read32(l2 + ((iova >>> 12) & 0xff) * 4);
    this.#c.l2Reads++;
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

  /**
   * Statistics.
   *
   * @returns A snapshot.
   */
  counters(): SysmmuWalkerCounters {
    return { ...this.#c };
  }
}
