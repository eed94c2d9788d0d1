/**
 * One Exynos I/O address space: the 16 KiB level-1 table, the 1 KiB level-2
 * tables and the free-entry counters, written straight into simulated RAM.
 *
 * @module
 */
import {
  checkAddress,
  checkGather,
  checkMapPlan,
  checkUnmapArgs,
  hex,
  type IommuDomainOps,
  IommuError,
  type IommuUnit,
  type IotlbGather,
  type MappingRecord,
  type MapPlan,
  type MapPlanLimits,
  type PageTableLevelStats,
} from "../../core/mod.ts";
import type { SysmmuDriver, SysmmuUnitState } from "./driver.ts";
import {
  LPAGE_SIZE,
  LV1_ENTRIES,
  LV1_TABLE_BYTES,
  LV2_ENTRIES,
  LV2_TABLE_BYTES,
  SECT_SIZE,
  SPAGE_SIZE,
  SPAGES_PER_LPAGE,
} from "./pte.ts";

// Scratch shared by every domain (map is not re-entrant): slots needing a
// new level-2 table, their PAs, and slots whose link changes.
const needSlot = new Int32Array(LV1_ENTRIES);
const needPa = new Float64Array(LV1_ENTRIES);
const dropSlot = new Int32Array(LV1_ENTRIES);
const flpdSlot = new Int32Array(LV1_ENTRIES);
const NO_TABLE = new Uint32Array(0);
// The one run a uniform plan of 64 KiB or 1 MiB pages covers in IOVA
// space (first IOVA, page size, pages), for the phase-1 check.
const oneIova = new Float64Array(1);
const oneSize = new Float64Array(1);
const onePages = new Float64Array(1);

// One level-2 table's share of a uniform plan: small-page entries for
// `pa[k .. k + m)` at `v[idx ..]`. Kept apart (and per format) so the
// innermost loop is one typed-array read, an OR and a typed-array write.
function writeSmallEntries(
  v: Uint32Array,
  idx: number,
  pa: Float64Array,
  k: number,
  m: number,
  bits: number,
): void {
  for (let i = 0; i < m; i++) v[idx + i] = pa[k + i]! | bits;
}

// The same for formats that store `PA * scale` (v5+: PA >> 4).
function writeSmallEntriesScaled(
  v: Uint32Array,
  idx: number,
  pa: Float64Array,
  k: number,
  m: number,
  bits: number,
  scale: number,
): void {
  for (let i = 0; i < m; i++) v[idx + i] = (pa[k + i]! * scale) | bits;
}

// A System MMU serves one master: it has no stream IDs (caps.streamIds 0),
// so any ID in the list is invalid.
function noStreams(streamIds: readonly number[]): void {
  if (!(Array.isArray(streamIds) && streamIds.length === 0)) {
    throw new IommuError(
      "EINVAL",
      `a System MMU takes no stream IDs, got ${
        Array.isArray(streamIds)
          ? `[${streamIds.join(", ")}]`
          : String(streamIds)
      }`,
    );
  }
}

/**
 * The driver's half of a domain. Level 1 is filled with the zero link;
 * level-2 tables are allocated on demand, never freed by unmap (a 1 MiB map
 * over an empty one frees it), and freed with the domain.
 */
export class SysmmuDomain implements IommuDomainOps {
  /** Context number (unique per driver). */
  readonly contextId: number;
  /** PA of the level-1 table. */
  readonly rootTable: number;
  /** Units this domain is attached to (driver bookkeeping). */
  readonly units: Set<SysmmuUnitState> = new Set();
  #drv: SysmmuDriver;
  #l1: Uint32Array;
  // Level-2 views by slot; slots without a table hold NO_TABLE, so the
  // array stays packed with one element kind.
  #l2: Uint32Array[] = Array.from({ length: LV1_ENTRIES }, () => NO_TABLE);
  #l2Pa = new Float64Array(LV1_ENTRIES).fill(-1);
  // Free entries per level-2 table (256 = empty), as Linux's lv2entcnt.
  #free = new Uint16Array(LV1_ENTRIES);
  #mark = new Uint32Array(LV1_ENTRIES);
  #epoch = 0;
  #empty: number; // what an unused level-1 slot holds
  #div: number; // PA divisor of the format (1 or 16)
  #limits: MapPlanLimits; // what map accepts: the unit's caps
  #freed = false;

  /**
   * Allocate the level-1 table and fill it (zero link, or 0 without the
   * workaround).
   *
   * @param driver The owning driver.
   * @param contextId Its context number.
   * @throws {IommuError} `ENOMEM` when the level-1 table cannot be allocated.
   */
  constructor(driver: SysmmuDriver, contextId: number) {
    this.#drv = driver;
    this.contextId = contextId;
    this.rootTable = driver.allocTable(LV1_TABLE_BYTES);
    this.#l1 = driver.memory.view32(this.rootTable, LV1_TABLE_BYTES);
    this.#empty = driver.flpdWorkaround ? driver.zeroLink : 0;
    this.#l1.fill(this.#empty);
    this.#div = driver.format.shift === 0 ? 1 : 16;
    this.#limits = {
      pageSizes: [SPAGE_SIZE, LPAGE_SIZE, SECT_SIZE],
      inputBits: 32,
      outputBits: driver.format.paBits,
    };
  }

  #isTable(e: number): boolean {
    return (e & 3) === 1 && e !== this.#drv.zeroLink;
  }

  /**
   * Map every run of `plan`, all or nothing.
   *
   * @param plan Runs of 4 KiB, 64 KiB or 1 MiB pages.
   * @param prot `IOMMU_*` bits (only READ/WRITE reach the descriptors).
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed plan (see
   * `checkMapPlan`: a NaN address, a page size other than 4 KiB, 64 KiB or
   * 1 MiB, a run past 4 GiB of IOVA or the format's physical range);
   * `EEXIST` on any overlap; `ENOMEM` when a level-2 table cannot be
   * allocated. Nothing changes on a throw. A plan with a non-zero
   * `uniform` is read through `start` and `pa` only (page `i` at
   * `start + i * uniform`), as `checkMapPlan` checked it: its other arrays
   * are not read.
   */
  map(plan: MapPlan, prot: number): void {
    checkMapPlan(plan, this.#limits);
    const uniform = plan.uniform ?? 0;
    if (uniform === 0) {
      this.#mapRuns(plan, prot);
      return;
    }
    // As checkMapPlan: a look-alike without `start` starts at `iova[0]`.
    const start = plan.start ?? plan.iova[0]!;
    if (uniform === SPAGE_SIZE) this.#mapUniform(start, plan, prot);
    else this.#mapUniformLarge(start, uniform, plan, prot);
  }

  /** `map` of a plan without the uniform hint: every run from its arrays. */
  #mapRuns(plan: MapPlan, prot: number): void {
    const counts = this.#check(
      plan.count,
      plan.iova,
      plan.pageSize,
      plan.pages,
    );
    const needs = counts & 0xffff;
    const drops = counts >>> 16;
    this.#allocTables(needs);
    // Nothing below can fail.
    let flpd = this.#installTables(needs);
    const fmt = this.#drv.format;
    const div = this.#div;
    const lv2Bits = fmt.lv2Prot(prot);
    const n = plan.count;
    const pIova = plan.iova, pPa = plan.pa, pSize = plan.pageSize;
    const pPages = plan.pages;
    const views = this.#l2;
    const free = this.#free;
    const smallBits = lv2Bits | 2;
    for (let r = 0; r < n; r++) {
      const size = pSize[r]!;
      if (size === SPAGE_SIZE) {
        const pages = pPages[r]!;
        if (pages === 1) {
          // The scattered-frames case: one entry, written inline.
          const iova = pIova[r]!;
          const slot = iova >>> 20;
          views[slot]![(iova >>> 12) & 0xff] = (pPa[r]! / div) | smallBits;
          free[slot] = free[slot]! - 1;
        } else {
          this.#writeSmall(pIova[r]!, pPa[r]!, pages, lv2Bits, div);
        }
      } else if (size === LPAGE_SIZE) {
        this.#writeLarge(pIova[r]!, pPa[r]!, pPages[r]!, lv2Bits, div);
      } else {
        flpd = this.#writeSections(
          pIova[r]!,
          pPa[r]!,
          pPages[r]!,
          fmt.lv1Prot(prot),
          flpd,
        );
      }
    }
    this.#drv.flushFlpd(this.units, flpdSlot, flpd);
    // Only now, with the sections written and caches flushed, can the empty
    // tables they replaced go back to the allocator.
    if (drops > 0) this.#dropTables(drops);
  }

  /**
   * `map` of a uniform plan of 64 KiB or 1 MiB pages (page `r` at
   * `start + r * size`, mapping `plan.pa[r]`): its IOVAs are one run of
   * `count` pages, checked as such; each page is then written from `pa`.
   */
  #mapUniformLarge(
    start: number,
    size: number,
    plan: MapPlan,
    prot: number,
  ): void {
    const n = plan.count;
    oneIova[0] = start;
    oneSize[0] = size;
    onePages[0] = n;
    const counts = this.#check(1, oneIova, oneSize, onePages);
    const needs = counts & 0xffff;
    const drops = counts >>> 16;
    this.#allocTables(needs);
    // Nothing below can fail.
    let flpd = this.#installTables(needs);
    const fmt = this.#drv.format;
    const pPa = plan.pa;
    if (size === LPAGE_SIZE) {
      const lv2Bits = fmt.lv2Prot(prot);
      const div = this.#div;
      for (let r = 0; r < n; r++) {
        this.#writeLarge(start + r * LPAGE_SIZE, pPa[r]!, 1, lv2Bits, div);
      }
    } else {
      const lv1Bits = fmt.lv1Prot(prot);
      for (let r = 0; r < n; r++) {
        flpd = this.#writeSections(
          start + r * SECT_SIZE,
          pPa[r]!,
          1,
          lv1Bits,
          flpd,
        );
      }
    }
    this.#drv.flushFlpd(this.units, flpdSlot, flpd);
    if (drops > 0) this.#dropTables(drops);
  }

  /**
   * `map` of a plan the core marked uniform (one 4 KiB page per run at
   * consecutive IOVAs from `base`, as every scattered `mapPages` is): the
   * same three phases, walking level-1 slots in order and reading only
   * `plan.pa` (and `base`, the plan's `start`); checks go per table,
   * writes are one loop per table.
   */
  #mapUniform(base: number, plan: MapPlan, prot: number): void {
    const n = plan.count;
    const needs = this.#checkUniform(base, n);
    this.#allocTables(needs);
    // Nothing below can fail.
    const flpd = this.#installTables(needs);
    const bits = this.#drv.format.lv2Prot(prot) | 2;
    const pPa = plan.pa;
    const views = this.#l2;
    const free = this.#free;
    // Exact: the divisor is a power of two.
    const scale = 1 / this.#div;
    for (let k = 0; k < n;) {
      const at = base + k * SPAGE_SIZE;
      const slot = at >>> 20;
      const idx = (at >>> 12) & 0xff;
      const m = Math.min(n - k, LV2_ENTRIES - idx);
      if (scale === 1) writeSmallEntries(views[slot]!, idx, pPa, k, m, bits);
      else writeSmallEntriesScaled(views[slot]!, idx, pPa, k, m, bits, scale);
      free[slot] = free[slot]! - m;
      k += m;
    }
    this.#drv.flushFlpd(this.units, flpdSlot, flpd);
  }

  /**
   * Phase 1 of a uniform plan of `n` 4 KiB pages from `base`: refuse any
   * overlap and list the slots needing a new table. A table whose counter
   * says it is empty needs no entry scan.
   */
  #checkUniform(base: number, n: number): number {
    const l1 = this.#l1;
    const views = this.#l2;
    const free = this.#free;
    const zero = this.#drv.zeroLink;
    let needs = 0;
    for (let k = 0; k < n;) {
      const at = base + k * SPAGE_SIZE;
      const slot = at >>> 20;
      const idx = (at >>> 12) & 0xff;
      const m = Math.min(n - k, LV2_ENTRIES - idx);
      const e = l1[slot]!;
      if ((e & 3) === 2) this.#overlap(at);
      if ((e & 3) === 1 && e !== zero) {
        if (free[slot] !== LV2_ENTRIES) {
          const v = views[slot]!;
          for (let i = idx; i < idx + m; i++) {
            if ((v[i]! & 3) !== 0) {
              this.#overlap(slot * SECT_SIZE + i * SPAGE_SIZE);
            }
          }
        }
      } else needSlot[needs++] = slot;
      k += m;
    }
    return needs;
  }

  /**
   * Phase 1: refuse any overlap; list the slots needing a new table
   * (`needSlot`) and the empty tables sections will replace (`dropSlot`).
   * Reads runs `0 .. n - 1` of the arrays (checked by `checkMapPlan`).
   * Returns `needs | drops << 16`.
   */
  #check(
    n: number,
    pIova: Float64Array,
    pSize: Float64Array,
    pPages: Float64Array,
  ): number {
    const l1 = this.#l1;
    const views = this.#l2;
    const free = this.#free;
    const mark = this.#mark;
    const zero = this.#drv.zeroLink;
    const epoch = ++this.#epoch;
    let needs = 0;
    let drops = 0;
    for (let r = 0; r < n; r++) {
      const iova = pIova[r]!, size = pSize[r]!, pages = pPages[r]!;
      if (size === SPAGE_SIZE && pages === 1) {
        // The scattered-frames case: one entry to check.
        const slot = iova >>> 20;
        const e = l1[slot]!;
        if ((e & 3) === 1 && e !== zero) {
          if ((views[slot]![(iova >>> 12) & 0xff]! & 3) !== 0) {
            this.#overlap(iova);
          }
        } else if ((e & 3) === 2) {
          this.#overlap(iova);
        } else if (mark[slot] !== epoch) {
          mark[slot] = epoch;
          needSlot[needs++] = slot;
        }
        continue;
      }
      if (size === SECT_SIZE) {
        for (let k = 0, slot = iova >>> 20; k < pages; k++, slot++) {
          const e = l1[slot]!;
          if ((e & 3) === 2) this.#overlap(slot * SECT_SIZE);
          if ((e & 3) === 1 && e !== zero) {
            if (free[slot] !== LV2_ENTRIES) this.#overlap(slot * SECT_SIZE);
            dropSlot[drops++] = slot;
          }
        }
        continue;
      }
      let at = iova;
      let left = pages * (size / SPAGE_SIZE); // in 4 KiB entries
      while (left > 0) {
        const slot = at >>> 20;
        const idx = (at >>> 12) & 0xff;
        const m = Math.min(left, LV2_ENTRIES - idx);
        const e = l1[slot]!;
        if ((e & 3) === 2) this.#overlap(at);
        if ((e & 3) === 1 && e !== zero) {
          const v = views[slot]!;
          for (let i = idx; i < idx + m; i++) {
            if ((v[i]! & 3) !== 0) {
              this.#overlap(slot * SECT_SIZE + i * SPAGE_SIZE);
            }
          }
        } else if (mark[slot] !== epoch) {
          mark[slot] = epoch;
          needSlot[needs++] = slot;
        }
        at += m * SPAGE_SIZE;
        left -= m;
      }
    }
    return needs + drops * 0x10000;
  }

  /** Phase 2: allocate every listed level-2 table, undoing all on failure. */
  #allocTables(needs: number): void {
    const drv = this.#drv;
    for (let i = 0; i < needs; i++) {
      try {
        needPa[i] = drv.allocTable(LV2_TABLE_BYTES);
      } catch (e) {
        for (let j = 0; j < i; j++) drv.memory.frames.free(needPa[j]!);
        throw e;
      }
    }
  }

  /** Link the new tables; returns how many slots held the zero link. */
  #installTables(needs: number): number {
    const drv = this.#drv;
    const l1 = this.#l1;
    let flpd = 0;
    for (let i = 0; i < needs; i++) {
      const slot = needSlot[i]!;
      const pa = needPa[i]!;
      if (l1[slot] === drv.zeroLink) flpdSlot[flpd++] = slot;
      this.#l2[slot] = drv.memory.view32(pa, LV2_TABLE_BYTES);
      this.#l2Pa[slot] = pa;
      this.#free[slot] = LV2_ENTRIES;
      l1[slot] = drv.format.link(pa);
    }
    return flpd;
  }

  #writeSmall(
    iova: number,
    pa: number,
    pages: number,
    bits: number,
    div: number,
  ): void {
    const views = this.#l2;
    const free = this.#free;
    let e = ((pa / div) | bits | 2) >>> 0;
    const step = SPAGE_SIZE / div;
    let at = iova;
    let left = pages;
    while (left > 0) {
      const slot = at >>> 20;
      const idx = (at >>> 12) & 0xff;
      const m = left < LV2_ENTRIES - idx ? left : LV2_ENTRIES - idx;
      const v = views[slot]!;
      const end = idx + m;
      for (let i = idx; i < end; i++) {
        v[i] = e;
        e += step;
      }
      free[slot] = free[slot]! - m;
      at += m * SPAGE_SIZE;
      left -= m;
    }
  }

  #writeLarge(
    iova: number,
    pa: number,
    pages: number,
    bits: number,
    div: number,
  ): void {
    let e = ((pa / div) | bits | 1) >>> 0;
    const step = LPAGE_SIZE / div;
    for (let k = 0, at = iova; k < pages; k++, at += LPAGE_SIZE) {
      const slot = at >>> 20;
      const idx = (at >>> 12) & 0xff;
      this.#l2[slot]!.fill(e, idx, idx + SPAGES_PER_LPAGE);
      this.#free[slot] = this.#free[slot]! - SPAGES_PER_LPAGE;
      e += step;
    }
  }

  #writeSections(
    iova: number,
    pa: number,
    pages: number,
    bits: number,
    flpd: number,
  ): number {
    const l1 = this.#l1;
    let e = ((pa / this.#div) | bits | 2) >>> 0;
    const step = SECT_SIZE / this.#div;
    for (let k = 0, slot = iova >>> 20; k < pages; k++, slot++) {
      // Any link here (zero or table) may sit in an FLPD cache.
      if ((l1[slot]! & 3) === 1) flpdSlot[flpd++] = slot;
      l1[slot] = e;
      e += step;
    }
    return flpd;
  }

  #dropTables(drops: number): void {
    const frames = this.#drv.memory.frames;
    for (let i = 0; i < drops; i++) {
      const slot = dropSlot[i]!;
      frames.free(this.#l2Pa[slot]!);
      this.#l2Pa[slot] = -1;
      this.#l2[slot] = NO_TABLE;
      this.#free[slot] = 0;
    }
  }

  #overlap(iova: number): never {
    throw new IommuError(
      "EEXIST",
      `IOVA ${
        hex(iova)
      } is already mapped in System MMU domain ${this.contextId}`,
    );
  }

  /**
   * Remove the leaves in `[iova, iova + pageSize * count)`; holes are
   * skipped and level-2 tables are kept.
   *
   * @param iova First IOVA.
   * @param pageSize Page size of the request.
   * @param count Pages.
   * @param gather Collects the removed range.
   * @returns Bytes unmapped.
   * @throws {IommuError} `EINVAL` when a 64 KiB or 1 MiB leaf crosses either
   * end of the range, `iova` is not an address, `pageSize` or `count` not a
   * positive safe integer, or `gather` not an `IotlbGather` (nothing
   * changes).
   */
  unmapPages(
    iova: number,
    pageSize: number,
    count: number,
    gather: IotlbGather,
  ): number {
    checkUnmapArgs(iova, pageSize, count, gather);
    const end = iova + pageSize * count;
    const first = this.#leafSize(iova);
    const last = end > iova ? this.#leafSize(end - 1) : 0;
    if (
      (first > 0 && iova % first !== 0) || (last > 0 && end % last !== 0)
    ) {
      throw new IommuError(
        "EINVAL",
        `unmap of ${hex(iova)}+${
          hex(pageSize * count)
        } would split a larger mapping; unmap it whole`,
      );
    }
    const l1 = this.#l1;
    const free = this.#free;
    const empty = this.#empty;
    let bytes = 0;
    let lo = Infinity;
    let hi = -1;
    let minLeaf = Infinity;
    let leaves = 0;
    let at = iova;
    const stop = Math.min(end, 2 ** 32);
    while (at < stop) {
      const slot = Math.floor(at / SECT_SIZE);
      const slotEnd = (slot + 1) * SECT_SIZE;
      const to = Math.min(stop, slotEnd);
      const e = l1[slot]!;
      if ((e & 3) === 2) {
        l1[slot] = empty;
        const base = slot * SECT_SIZE;
        if (base < lo) lo = base;
        hi = slotEnd;
        if (SECT_SIZE < minLeaf) minLeaf = SECT_SIZE;
        leaves++;
        bytes += SECT_SIZE;
      } else if (this.#isTable(e)) {
        const v = this.#l2[slot]!;
        const i0 = (at >>> 12) & 0xff;
        const i1 = to === slotEnd ? LV2_ENTRIES : (to >>> 12) & 0xff;
        let fi = -1, li = -1, got = 0, small = 0, large = 0;
        for (let i = i0; i < i1; i++) {
          const x = v[i]!;
          if (x === 0) continue;
          if (fi < 0) fi = i;
          if ((x & 3) === 1) {
            v.fill(0, i, i + SPAGES_PER_LPAGE);
            got += SPAGES_PER_LPAGE;
            large++;
            li = i + SPAGES_PER_LPAGE;
            i += SPAGES_PER_LPAGE - 1;
          } else if ((x & 3) !== 0) {
            v[i] = 0;
            got++;
            small++;
            li = i + 1;
          } else {
            // Stray non-zero fault entry: clear it, count nothing.
            v[i] = 0;
          }
        }
        if (got > 0) {
          free[slot]! += got;
          const base = slot * SECT_SIZE;
          if (base + fi * SPAGE_SIZE < lo) lo = base + fi * SPAGE_SIZE;
          hi = base + li * SPAGE_SIZE;
          const leaf = small > 0 ? SPAGE_SIZE : LPAGE_SIZE;
          if (leaf < minLeaf) minLeaf = leaf;
          leaves += small + large;
          bytes += got * SPAGE_SIZE;
        }
      }
      at = to;
    }
    if (leaves > 0) {
      // One hull per call keeps the gather allocation-free.
      gather.add(lo, minLeaf, 1);
      if (hi - minLeaf > lo) gather.add(hi - minLeaf, minLeaf, 1);
      gather.leaves += leaves - (hi - minLeaf > lo ? 2 : 1);
    }
    return bytes;
  }

  /**
   * Size of the leaf mapping `iova`, from the tables in RAM.
   *
   * @param iova An IOVA.
   * @returns 4096, 65536, 1048576, or 0 when unmapped (or beyond 4 GiB).
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer (NaN, -1 and fractions used to read some other slot).
   */
  leafSize(iova: number): number {
    if (!(iova >= 0 && iova < 2 ** 32 && Number.isInteger(iova))) {
      checkAddress(iova, "IOVA"); // NaN, -1, 0.5 read slot 0 or 4095
      return 0;
    }
    return this.#leafSize(iova);
  }

  // leafSize for an address already checked, below 2^32 or not.
  #leafSize(iova: number): number {
    if (iova >= 2 ** 32) return 0;
    const e = this.#l1[iova >>> 20]!;
    if ((e & 3) === 2) return SECT_SIZE;
    if (!this.#isTable(e)) return 0;
    const x = this.#l2[iova >>> 20]![(iova >>> 12) & 0xff]! & 3;
    return x === 0 ? 0 : x === 1 ? LPAGE_SIZE : SPAGE_SIZE;
  }

  /**
   * Translate through the tables in RAM.
   *
   * @param iova An IOVA.
   * @returns The PA, or -1 when unmapped (or beyond 4 GiB).
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer (NaN, -1 and fractions used to read some other slot).
   */
  iovaToPhys(iova: number): number {
    if (!(iova >= 0 && iova < 2 ** 32 && Number.isInteger(iova))) {
      checkAddress(iova, "IOVA");
      return -1;
    }
    const fmt = this.#drv.format;
    const e = this.#l1[iova >>> 20]!;
    if ((e & 3) === 2) return fmt.sectionPa(e) + (iova & 0xfffff);
    if (!this.#isTable(e)) return -1;
    const x = this.#drv.memory.read32(
      fmt.linkPa(e) + ((iova >>> 12) & 0xff) * 4,
    );
    const t = x & 3;
    if (t === 0) return -1;
    if (t === 1) return fmt.largePa(x) + (iova & 0xffff);
    return fmt.smallPa(x) + (iova & 0xfff);
  }

  /**
   * Invalidate the gathered range on every attached, active unit.
   *
   * @param gather The gather.
   * @throws {IommuError} `EINVAL` when `gather` is not an `IotlbGather`.
   */
  iotlbSync(gather: IotlbGather): void {
    checkGather(gather);
    if (gather.end < 0) return;
    this.#drv.invalidateRange(
      this.units,
      gather.start,
      gather.end,
      gather.pageSize,
    );
  }

  /** FLUSH_ALL on every attached, active unit. */
  flushAll(): void {
    this.#drv.flushAll(this.units);
  }

  /**
   * Attach to `unit` (moving it from another domain of this driver).
   *
   * @param unit A unit of the same driver.
   * @param streamIds Must be empty (a System MMU has no stream IDs).
   * @throws {IommuError} `EINVAL` for a unit of another driver or a
   * non-empty stream ID list (nothing changes).
   */
  attach(unit: IommuUnit, streamIds: readonly number[]): void {
    noStreams(streamIds);
    this.#drv.attach(this, unit);
  }

  /**
   * Detach from `unit`, which is disabled (identity) afterwards.
   *
   * @param unit The unit.
   * @param streamIds Must be empty.
   * @throws {IommuError} `ENOENT` when not attached there; `EINVAL` for a
   * non-empty stream ID list.
   */
  detach(unit: IommuUnit, streamIds: readonly number[]): void {
    noStreams(streamIds);
    this.#drv.detach(this, unit);
  }

  /**
   * Every leaf, decoded from RAM (following the links stored in level 1).
   *
   * @returns Leaves in IOVA order.
   */
  leaves(): MappingRecord[] {
    const out: MappingRecord[] = [];
    const fmt = this.#drv.format;
    const mem = this.#drv.memory;
    for (let slot = 0; slot < LV1_ENTRIES; slot++) {
      const e = this.#l1[slot]!;
      const base = slot * SECT_SIZE;
      if ((e & 3) === 2) {
        out.push({
          iova: base,
          pa: fmt.sectionPa(e),
          pageSize: SECT_SIZE,
          prot: fmt.sectionPerm(e),
        });
        continue;
      }
      if (!this.#isTable(e)) continue;
      const table = fmt.linkPa(e);
      for (let i = 0; i < LV2_ENTRIES; i++) {
        const x = mem.read32(table + i * 4);
        const t = x & 3;
        if (t === 0) continue;
        if (t === 1) {
          out.push({
            iova: base + i * SPAGE_SIZE,
            pa: fmt.largePa(x),
            pageSize: LPAGE_SIZE,
            prot: fmt.lv2Perm(x),
          });
          i += SPAGES_PER_LPAGE - 1;
        } else {
          out.push({
            iova: base + i * SPAGE_SIZE,
            pa: fmt.smallPa(x),
            pageSize: SPAGE_SIZE,
            prot: fmt.lv2Perm(x),
          });
        }
      }
    }
    return out;
  }

  /**
   * Occupancy: level 1 (one 16 KiB table) and level 2 (the 1 KiB tables;
   * the shared zero table is not counted).
   *
   * @returns Two levels.
   */
  tableStats(): PageTableLevelStats[] {
    let used1 = 0, tables = 0, used2 = 0;
    for (let slot = 0; slot < LV1_ENTRIES; slot++) {
      const e = this.#l1[slot]!;
      if ((e & 3) === 2) used1++;
      else if (this.#isTable(e)) {
        used1++;
        tables++;
        used2 += LV2_ENTRIES - this.#free[slot]!;
      }
    }
    return [
      {
        level: 1,
        tables: 1,
        bytes: LV1_TABLE_BYTES,
        entriesUsed: used1,
        entriesTotal: LV1_ENTRIES,
      },
      {
        level: 2,
        tables,
        bytes: tables * LV2_TABLE_BYTES,
        entriesUsed: used2,
        entriesTotal: tables * LV2_ENTRIES,
      },
    ];
  }

  /**
   * Free-entry counter of a level-1 slot (256 = empty table; 0 without one).
   *
   * @param slot Level-1 index.
   * @returns The counter.
   */
  freeEntries(slot: number): number {
    return this.#free[slot] ?? 0;
  }

  /**
   * PA of the level-2 table of `slot`, or -1 when it has none.
   *
   * @param slot Level-1 index.
   * @returns The table PA.
   */
  l2Table(slot: number): number {
    return this.#l2Pa[slot] ?? -1;
  }

  /**
   * Free every level-2 table and the level-1 table.
   *
   * @throws {IommuError} `EBUSY` while attached; `EPERM` when freed already.
   */
  free(): void {
    if (this.#freed) {
      throw new IommuError(
        "EPERM",
        `System MMU domain ${this.contextId} is already freed`,
      );
    }
    if (this.units.size > 0) {
      throw new IommuError(
        "EBUSY",
        `System MMU domain ${this.contextId} is still attached to ${
          [...this.units].map((s) => s.unit.name).join(", ")
        }`,
      );
    }
    const frames = this.#drv.memory.frames;
    for (let slot = 0; slot < LV1_ENTRIES; slot++) {
      const pa = this.#l2Pa[slot]!;
      if (pa >= 0) frames.free(pa);
    }
    frames.free(this.rootTable);
    this.#l2Pa.fill(-1);
    this.#l2.fill(NO_TABLE);
    this.#freed = true;
  }
}
