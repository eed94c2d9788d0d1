/**
 * The core's address-space object shared by every plugin: argument checks,
 * page-size splitting, batching, the IOTLB gather, attachments and faults.
 *
 * @module
 */
import {
  checkAddress,
  checkAligned,
  checkList,
  checkObject,
  checkRange,
  hex,
  isPowerOfTwo,
  MAX_ADDRESS,
} from "./address.ts";
import { IommuError } from "./errors.ts";
import type { FaultHandler, IommuFault } from "./fault.ts";
import type { FaultRouter } from "./fault_router.ts";
import { checkGather, IotlbGather } from "./gather.ts";
import {
  checkProt,
  type IommuDomainOps,
  type IommuUnit,
  type MappingRecord,
  type PageTableLevelStats,
} from "./iommu.ts";
import { MapPlan } from "./map_plan.ts";
import type { PhysicalMemory } from "./memory.ts";
import { NOT_MEMBER, PageMarks, VISIT_AGAIN } from "./page_marks.ts";
import { splitIntoPages } from "./page_split.ts";
import { isStableFloat64Array, trustPlan } from "./plan_trust.ts";

// Entries of a frame-list or sg copy a domain keeps for reuse (512 KiB);
// a longer list gets a copy of its own.
const COPY_KEEP = 1 << 16;
// A domain's kept copy while it is in use.
const NO_COPY = new Float64Array(0);

/** One scatter-gather segment: `length` bytes at physical address `pa`. */
export interface SgSegment {
  /** Physical address in bytes. */
  pa: number;
  /** Length in bytes. */
  length: number;
}

/** Domain counters, as a plain object. */
export interface DomainCounters {
  /** Successful map calls (`map`, `mapPages`, `mapSg`). */
  maps: number;
  /** Unmap calls that removed something. */
  unmaps: number;
  /** Leaves written by maps. */
  leavesMapped: number;
  /** Leaves removed by unmaps. */
  leavesUnmapped: number;
  /** Bytes mapped. */
  bytesMapped: number;
  /** Bytes unmapped. */
  bytesUnmapped: number;
  /** Bytes mapped now. */
  liveBytes: number;
  /** Runs handed to the driver (one driver call maps a whole plan). */
  runs: number;
  /** IOTLB range syncs issued. */
  syncs: number;
  /** Full flushes issued. */
  flushes: number;
  /** Faults routed to this domain. */
  faults: number;
}

/** Where a domain is attached: a unit, and the streams on a central unit. */
export interface DomainAttachment {
  /** The unit. */
  unit: IommuUnit;
  /** Stream IDs (empty for per-device units). */
  streamIds: number[];
}

/** What a domain needs from the system it lives in. */
export interface DomainContext {
  /** The RAM its tables live in (deferred table frees go back here). */
  memory: PhysicalMemory;
  /** The fault router of the system. */
  router: FaultRouter;
}

/** Options for a new domain. */
export interface DomainOptions {
  /**
   * Page sizes (bytes) this domain may use, a subset of the unit's; for
   * example `[4096]` to force small pages. Default: all of the unit's.
   */
  pageSizes?: readonly number[];
}

let nextDomainId = 1;

// `value % align !== 0` for a power-of-two `align`, without `%`: addresses
// above 2^31 are doubles, and `%` on doubles is a slow floating-point
// remainder (dividing by a power of two is exact).
function misaligned(value: number, align: number): boolean {
  return Math.floor(value / align) * align !== value;
}

// checkRange's check without building its messages (it prefixes `what` to
// each); checkRange itself runs only to throw the error.
function inRange(
  start: number,
  size: number,
  what: string,
  limit: number,
): void {
  if (
    !(Number.isSafeInteger(start) && start >= 0 &&
      Number.isSafeInteger(size) && size > 0 &&
      start + size <= limit && start <= MAX_ADDRESS - size)
  ) {
    checkRange(start, size, what, limit);
  }
}

// checkAligned's check on the fast path; its error when it fails.
function aligned(value: number, align: number, what: string): void {
  if (misaligned(value, align)) checkAligned(value, align, what);
}

/**
 * How many leading frames are valid (`pageSize`-aligned, at most `limit`)
 * with none physically continuing the one before it: `n` when the whole
 * list is scattered, `-(i + 1)` when frame `i` is invalid.
 */
function scatteredPrefix(
  frames: ArrayLike<number>,
  n: number,
  pageSize: number,
  inv: number,
  limit: number,
): number {
  let next = -1;
  for (let i = 0; i < n; i++) {
    const f = frames[i]!;
    const q = f * inv;
    if (!(f >= 0 && f <= limit && Math.floor(q) === q)) return -(i + 1);
    if (f === next) return i;
    next = f + pageSize;
  }
  return n;
}

/**
 * One I/O virtual address space. Every call validates its arguments first
 * and is all-or-nothing: a throwing call leaves the page tables byte-for-byte
 * unchanged and leaks no frame.
 *
 * Create domains with `Soc.createDomain(unit)`; the example builds one from
 * the parts directly.
 *
 * @example Mapping a scatter of frames in one call
 * ```ts
 * import { createSoc, IOMMU_READ, IOMMU_WRITE } from "@iommukit/iommukit/core";
 * import { genericIommu } from "@iommukit/iommukit/plugins/generic-iommu";
 * const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
 * const unit = soc.probeUnit({ name: "smmu", compatible: ["iommukit,generic-iommu"] });
 * const domain = soc.createDomain(unit);
 * domain.mapPages(0x10000, [0x200000, 0x5000, 0x9000], IOMMU_READ | IOMMU_WRITE);
 * if (domain.iovaToPhys(0x11004) !== 0x5004) throw new Error("wrong translation");
 * if (domain.unmap(0x10000, 3 * 4096) !== 3 * 4096) throw new Error("unmap");
 * ```
 */
export class Domain {
  /** Unique number of this domain in the process (for names and logs). */
  readonly id: number;
  /** The unit it was created for (its driver owns the tables). */
  readonly unit: IommuUnit;
  /** Page sizes this domain uses, ascending, in bytes. */
  readonly pageSizes: readonly number[];
  /** Smallest page size: every address and size must be a multiple of it. */
  readonly minPageSize: number;
  /** One past the last IOVA, in bytes (`2^inputBits`). */
  readonly apertureEnd: number;
  /** One past the last physical address the tables can hold (`2^outputBits`). */
  readonly outputEnd: number;
  #ops: IommuDomainOps;
  #ctx: DomainContext;
  #plan = new MapPlan();
  #unmapPlan = new MapPlan(8);
  #gather = new IotlbGather();
  #attachments: DomainAttachment[] = [];
  #handler: FaultHandler | null = null;
  // Per gather, the page-table pages this domain's driver deferred into it
  // in the gather's current epoch (see IotlbGather.epoch): sync frees only
  // these, so a live frame a caller slips into a gather's free list, even
  // after a reset, is refused instead of freed. The marks are kept and
  // emptied per use: a Set per gather and epoch was garbage on every
  // cycle (issue 8).
  #owned = new WeakMap<IotlbGather, PageMarks>();
  // Copies of frame lists and sg segments that are not plain typed arrays,
  // so that what is checked is what the driver maps (kept for reuse up to
  // COPY_KEEP entries).
  #frameCopy = NO_COPY;
  #sgPa = NO_COPY;
  #sgLen = NO_COPY;
  #freed = false;
  #c: DomainCounters = {
    maps: 0,
    unmaps: 0,
    leavesMapped: 0,
    leavesUnmapped: 0,
    bytesMapped: 0,
    bytesUnmapped: 0,
    liveBytes: 0,
    runs: 0,
    syncs: 0,
    flushes: 0,
    faults: 0,
  };

  /**
   * Create an empty domain through the unit's driver (prefer `Soc.createDomain`).
   *
   * @param unit The unit whose driver allocates the tables.
   * @param ctx Memory and fault router of the system.
   * @param options Page-size restriction.
   * @throws {IommuError} `EINVAL` when `options.pageSizes` is not a list (a
   * bare number such as 4096 included) or not a non-empty subset of the
   * unit's sizes, the unit's caps are malformed, or `unit`,
   * its caps or `options` is not an object; `ENOMEM`
   * when the root table cannot be allocated.
   */
  constructor(
    unit: IommuUnit,
    ctx: DomainContext,
    options: DomainOptions = {},
  ) {
    checkObject(unit, "unit");
    checkObject(unit.caps, `unit ${String(unit.name)} caps`);
    checkList(unit.caps.pageSizes, `unit ${String(unit.name)} page sizes`);
    checkObject(options, "domain options");
    // A copy: the checks below use array methods, and the unit's list may
    // be any array-like.
    const unitSizes = Array.from(unit.caps.pageSizes);
    if (
      unitSizes.length === 0 ||
      unitSizes.some((s, i) =>
        !isPowerOfTwo(s) || (i > 0 && s <= unitSizes[i - 1]!)
      )
    ) {
      throw new IommuError(
        "EINVAL",
        `unit ${unit.name} declares malformed page sizes [${
          unitSizes.map(hex).join(", ")
        }]`,
      );
    }
    for (const key of ["inputBits", "outputBits"] as const) {
      const bits = unit.caps[key];
      // NaN widths would make every range check pass.
      if (!Number.isInteger(bits) || bits < 1 || bits > 64) {
        throw new IommuError(
          "EINVAL",
          `unit ${unit.name} declares ${key} ${
            String(bits)
          }; expected an integer from 1 to 64`,
        );
      }
    }
    if (options.pageSizes !== undefined) {
      checkList(options.pageSizes, "domain page sizes");
    }
    const sizes = Array.from(options.pageSizes ?? unitSizes);
    for (const s of sizes) {
      if (!unitSizes.includes(s)) {
        throw new IommuError(
          "EINVAL",
          `page size ${hex(s)} is not supported by unit ${unit.name}`,
        );
      }
    }
    if (sizes.length === 0) {
      throw new IommuError("EINVAL", "a domain needs at least one page size");
    }
    this.pageSizes = [...sizes].sort((a, b) => a - b);
    this.minPageSize = this.pageSizes[0]!;
    this.apertureEnd = 2 ** unit.caps.inputBits;
    this.outputEnd = 2 ** unit.caps.outputBits;
    this.unit = unit;
    this.#ctx = ctx;
    this.#ops = unit.driver.allocDomain();
    this.id = nextDomainId++;
  }

  /** The driver's domain operations (for plugins, tests and dumps). */
  get ops(): IommuDomainOps {
    return this.#ops;
  }

  #alive(): void {
    if (this.#freed) {
      throw new IommuError("EPERM", `domain ${this.id} has been freed`);
    }
  }

  #checkIovaRange(iova: number, size: number): void {
    inRange(iova, size, "IOVA range", this.apertureEnd);
    aligned(iova, this.minPageSize, "IOVA");
    aligned(size, this.minPageSize, "size");
  }

  #checkPaRange(pa: number, size: number): void {
    inRange(pa, size, "physical range", this.outputEnd);
    aligned(pa, this.minPageSize, "physical address");
  }

  #commit(prot: number): void {
    const plan = this.#plan;
    // Built from arguments checked at entry: the driver's plan check skips it.
    trustPlan(plan);
    try {
      this.#ops.map(plan, prot);
    } finally {
      trustPlan(null);
    }
    const n = plan.count;
    if (plan.uniform > 0) {
      // One page per run; reading pages/pageSize would write them out.
      this.#count(n, n, n * plan.uniform);
      return;
    }
    const pages = plan.pages, sizes = plan.pageSize;
    let leaves = 0, bytes = 0;
    for (let i = 0; i < n; i++) {
      leaves += pages[i]!;
      bytes += pages[i]! * sizes[i]!;
    }
    this.#count(n, leaves, bytes);
  }

  #count(runs: number, leaves: number, bytes: number): void {
    const c = this.#c;
    c.maps++;
    c.runs += runs;
    c.leavesMapped += leaves;
    c.bytesMapped += bytes;
    c.liveBytes += bytes;
  }

  /**
   * Map `size` bytes at `iova` to the contiguous physical range at `pa`,
   * split into the largest pages alignment allows.
   *
   * @param iova First IOVA, aligned to the smallest page size.
   * @param pa First physical address, aligned likewise.
   * @param size Bytes, a multiple of the smallest page size.
   * @param prot `IOMMU_READ`/`IOMMU_WRITE`/… bits.
   * @throws {IommuError} `EINVAL` for malformed or unaligned numbers or
   * unknown prot bits; `ERANGE` outside the aperture or output range;
   * `EEXIST` when any page is already mapped; `ENOMEM` when page tables
   * cannot be allocated; `EPERM` after {@linkcode Domain.free}.
   */
  map(iova: number, pa: number, size: number, prot: number): void {
    this.#alive();
    checkProt(prot);
    this.#checkIovaRange(iova, size);
    this.#checkPaRange(pa, size);
    this.#plan.clear();
    splitIntoPages(iova, pa, size, this.pageSizes, this.#plan);
    this.#commit(prot);
  }

  /**
   * Map an array of page frames, possibly discontiguous, at consecutive
   * IOVAs from `iova`, in one driver call. Physically contiguous, aligned
   * runs are coalesced into larger pages.
   *
   * @param iova First IOVA, aligned to `pageSize`.
   * @param frames Physical address of each page, each aligned to `pageSize`.
   * @param prot `IOMMU_*` bits.
   * @param pageSize Size of each frame in bytes; default the smallest page size.
   * @throws {IommuError} as {@linkcode Domain.map}; `EINVAL` for an empty
   * frame list or one that is not a list, or an unsupported `pageSize` (the
   * message names the index of a bad frame).
   */
  mapPages(
    iova: number,
    frames: ArrayLike<number>,
    prot: number,
    pageSize: number = this.minPageSize,
  ): void {
    this.#alive();
    checkProt(prot);
    if (!this.pageSizes.includes(pageSize)) {
      throw new IommuError(
        "EINVAL",
        `page size ${String(pageSize)} is not one of this domain's sizes`,
      );
    }
    checkList(frames, "frame list");
    const n = frames.length;
    if (n === 0) {
      throw new IommuError("EINVAL", "frame list must not be empty");
    }
    checkAddress(iova, "IOVA");
    aligned(iova, pageSize, "IOVA");
    inRange(iova, n * pageSize, "IOVA range", this.apertureEnd);
    // Capped at 2^53 so a 64-bit output range cannot admit unsafe integers.
    const limit = Math.min(this.outputEnd, MAX_ADDRESS + 1) - pageSize;
    // `f * inv` is exact (pageSize is a power of two) and avoids `%`, which
    // is a slow floating-point remainder above 2^31.
    const inv = 1 / pageSize;
    const plan = this.#plan;
    const given = frames;
    frames = this.#stableFrames(frames, n, pageSize);
    // First a validating pass that stops at the first frame continuing its
    // predecessor: a fully scattered list (the common case) then becomes a
    // uniform plan that reads the frames in place.
    const at = scatteredPrefix(frames, n, pageSize, inv, limit);
    if (at < 0) this.#badFrame(-at - 1, frames[-at - 1]!, pageSize);
    if (at === n) {
      plan.setUniform(iova, pageSize, frames, n);
      trustPlan(plan);
      try {
        this.#ops.map(plan, prot);
      } finally {
        trustPlan(null);
        plan.clear(); // drop the reference to the caller's frames
      }
      this.#keepCopy(frames, given);
      this.#count(n, n, n * pageSize);
      return;
    }
    // Otherwise one pass validates each frame and cuts the list into
    // physically contiguous runs.
    plan.clear();
    // Never more runs than frames: reserve once, then store straight into
    // the typed arrays (a scattered list makes one run per frame).
    plan.reserve(n);
    const pIova = plan.iova, pPa = plan.pa, pSize = plan.pageSize;
    const pPages = plan.pages;
    const sizes = this.pageSizes;
    const single = sizes.length === 1 || pageSize === sizes[sizes.length - 1];
    let leaves = 0;
    let runs = 0;
    let f = frames[0]!;
    let q = f * inv;
    if (!(f >= 0 && f <= limit && Math.floor(q) === q)) {
      this.#badFrame(0, f, pageSize);
    }
    let runStart = 0;
    let runPa = f;
    let expect = f + pageSize;
    for (let i = 1; i <= n; i++) {
      if (i < n) {
        f = frames[i]!;
        q = f * inv;
        if (!(f >= 0 && f <= limit && Math.floor(q) === q)) {
          this.#badFrame(i, f, pageSize);
        }
        if (f === expect) {
          expect = f + pageSize;
          continue;
        }
      }
      // Close the run [runStart, i).
      const runPages = i - runStart;
      if (runPages === 1) {
        pIova[runs] = iova + runStart * pageSize;
        pPa[runs] = runPa;
        pSize[runs] = pageSize;
        pPages[runs] = 1;
        runs++;
        leaves++;
      } else if (single) {
        pIova[runs] = iova + runStart * pageSize;
        pPa[runs] = runPa;
        pSize[runs] = pageSize;
        pPages[runs] = runPages;
        runs++;
        leaves += runPages;
      } else {
        plan.count = runs;
        splitIntoPages(
          iova + runStart * pageSize,
          runPa,
          runPages * pageSize,
          sizes,
          plan,
        );
        for (; runs < plan.count; runs++) leaves += pPages[runs]!;
      }
      runStart = i;
      runPa = f;
      expect = f + pageSize;
    }
    plan.count = runs;
    trustPlan(plan);
    try {
      this.#ops.map(plan, prot);
    } finally {
      trustPlan(null);
    }
    this.#keepCopy(frames, given);
    this.#count(runs, leaves, n * pageSize);
  }

  // The frames both the checks and the driver read: a plain Float64Array in
  // place; any other list (an array, a proxy whose values could change
  // between reads, a shared buffer another thread could write) copied
  // first, each value read once.
  #stableFrames(
    frames: ArrayLike<number>,
    n: number,
    pageSize: number,
  ): ArrayLike<number> {
    if (isStableFloat64Array(frames)) return frames;
    // Taken while in use (given back by #keepCopy): a getter that maps into
    // this domain again gets a copy of its own instead of overwriting this
    // one.
    let copy = this.#frameCopy;
    this.#frameCopy = NO_COPY;
    if (copy.length < n) copy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const f: unknown = frames[i];
      if (typeof f !== "number") this.#badFrame(i, f as number, pageSize);
      copy[i] = f;
    }
    return copy;
  }

  // Keep a frame copy #stableFrames made for the next call (not the
  // caller's own array, nor a long one).
  #keepCopy(frames: ArrayLike<number>, given: ArrayLike<number>): void {
    if (frames !== given && frames.length <= COPY_KEEP) {
      this.#frameCopy = frames as Float64Array<ArrayBuffer>;
    }
  }

  #badFrame(i: number, f: number, pageSize: number): never {
    throw new IommuError(
      "EINVAL",
      `frame ${i} (${String(f)}) is not a ${
        hex(pageSize)
      }-aligned physical address below ${hex(this.outputEnd)}`,
    );
  }

  /**
   * Map a scatter-gather list at consecutive IOVAs from `iova`; physically
   * adjacent segments are merged before splitting into pages.
   *
   * @param iova First IOVA, aligned to the smallest page size.
   * @param segments Segments, each with `pa` and `length` aligned to the
   * smallest page size.
   * @param prot `IOMMU_*` bits.
   * @returns Bytes mapped (the sum of the lengths).
   * @throws {IommuError} as {@linkcode Domain.map}; `EINVAL` for an empty
   * list, one that is not a list or a segment that is not an object (the
   * message names the index of a bad segment).
   */
  mapSg(iova: number, segments: readonly SgSegment[], prot: number): number {
    this.#alive();
    checkProt(prot);
    checkList(segments, "scatter-gather list");
    if (segments.length === 0) {
      throw new IommuError("EINVAL", "scatter-gather list must not be empty");
    }
    // Each segment's pa and length are read once, checked, and kept: a
    // getter cannot hand the plan a value other than the one checked.
    // The kept arrays are taken while in use (given back below): a getter
    // that maps into this domain again gets arrays of its own.
    const count = segments.length;
    let sgPa = this.#sgPa, sgLen = this.#sgLen;
    this.#sgPa = this.#sgLen = NO_COPY;
    if (sgPa.length < count) {
      sgPa = new Float64Array(count);
      sgLen = new Float64Array(count);
    }
    let total = 0;
    for (let i = 0; i < count; i++) {
      const s = segments[i]!;
      checkObject(s, `segment ${i}`);
      const pa = s.pa, length = s.length;
      try {
        this.#checkPaRange(pa, length);
        aligned(length, this.minPageSize, "length");
      } catch (e) {
        const err = e as IommuError;
        throw new IommuError(err.kind, `segment ${i}: ${err.message}`);
      }
      sgPa[i] = pa;
      sgLen[i] = length;
      total += length;
    }
    this.#checkIovaRange(iova, total);
    const plan = this.#plan;
    plan.clear();
    let at = iova;
    let runPa = sgPa[0]!;
    let runLen = 0;
    for (let i = 0; i < count; i++) {
      const pa = sgPa[i]!;
      if (runLen > 0 && pa !== runPa + runLen) {
        splitIntoPages(at, runPa, runLen, this.pageSizes, plan);
        at += runLen;
        runPa = pa;
        runLen = 0;
      }
      runLen += sgLen[i]!;
    }
    if (count <= COPY_KEEP) {
      this.#sgPa = sgPa;
      this.#sgLen = sgLen;
    }
    splitIntoPages(at, runPa, runLen, this.pageSizes, plan);
    this.#commit(prot);
    return total;
  }

  /**
   * Unmap every leaf inside `[iova, iova + size)` and invalidate the IOTLBs
   * of every attached unit before returning. Holes are skipped. A leaf that
   * crosses either end of the range is never split: the call fails and
   * removes nothing.
   *
   * @param iova First IOVA, aligned to the smallest page size.
   * @param size Bytes, a multiple of the smallest page size.
   * @returns Bytes unmapped (0 when nothing was mapped there).
   * @throws {IommuError} `EINVAL` for malformed or unaligned numbers or a
   * partial unmap of a larger page; `ERANGE` outside the aperture; `EPERM`
   * after free.
   */
  unmap(iova: number, size: number): number {
    const gather = this.#gather;
    const bytes = this.unmapNoSync(iova, size, gather);
    this.sync(gather);
    return bytes;
  }

  /**
   * Like {@linkcode Domain.unmap} but leaves the IOTLB invalidation to the
   * caller: the removed range is added to `gather`, and stale translations
   * stay usable by devices until {@linkcode Domain.sync} (the lazy mode).
   *
   * @param iova First IOVA.
   * @param size Bytes.
   * @param gather Where the removed range and freed tables are collected.
   * @returns Bytes unmapped.
   * @throws {IommuError} as {@linkcode Domain.unmap}; `EINVAL` when `gather`
   * is not an {@linkcode IotlbGather}.
   */
  unmapNoSync(iova: number, size: number, gather: IotlbGather): number {
    this.#alive();
    checkGather(gather);
    this.#checkIovaRange(iova, size);
    const ops = this.#ops;
    const end = iova + size;
    const first = ops.leafSize(iova);
    if (first > 0 && misaligned(iova, first)) this.#refusePartial(iova, first);
    const last = ops.leafSize(end - 1);
    if (last > 0 && misaligned(end, last)) this.#refusePartial(end - 1, last);
    const plan = this.#unmapPlan;
    plan.clear();
    splitIntoPages(iova, iova, size, this.pageSizes, plan);
    const leavesBefore = gather.leaves;
    const tables = gather.freeList.length;
    let bytes = 0;
    try {
      for (let i = 0; i < plan.count; i++) {
        bytes += ops.unmapPages(
          plan.iova[i]!,
          plan.pageSize[i]!,
          plan.pages[i]!,
          gather,
        );
      }
    } finally {
      // Even when a later run throws, the tables already unlinked are ours.
      if (gather.freeList.length > tables) this.#own(gather, tables);
    }
    if (bytes > 0) {
      const c = this.#c;
      c.unmaps++;
      c.bytesUnmapped += bytes;
      c.liveBytes -= bytes;
      c.leavesUnmapped += gather.leaves - leavesBefore;
    }
    return bytes;
  }

  // Mark the free-list entries from `from` on as deferred by this domain.
  // Marks of an earlier epoch (the gather was reset since) or made while
  // the list was emptied by hand are dropped first.
  #own(gather: IotlbGather, from: number): void {
    let mark = this.#owned.get(gather);
    if (mark === undefined) {
      mark = new PageMarks(gather.epoch);
      this.#owned.set(gather, mark);
    } else if (mark.epoch !== gather.epoch || from === 0) {
      mark.clear();
      mark.epoch = gather.epoch;
    }
    const list = gather.freeList;
    for (let i = from; i < list.length; i++) mark.add(list[i]!);
  }

  #refusePartial(at: number, leaf: number): never {
    throw new IommuError(
      "EINVAL",
      `unmap would split the ${hex(leaf)}-byte mapping at ${
        hex(at - (at % leaf))
      }; unmap it whole`,
    );
  }

  /**
   * Invalidate what `gather` collected on every attached unit, then free the
   * page-table pages it deferred, then reset it.
   *
   * @param gather A gather filled by {@linkcode Domain.unmapNoSync}.
   * @throws {IommuError} `EINVAL` when `gather` is not an
   * {@linkcode IotlbGather}, or its free list holds an address this
   * domain's unmaps did not defer into it since its last reset (a live
   * table, a frame of another domain: a gather serves one domain), one that
   * is not a live frame block, or one twice (nothing is invalidated or
   * freed, the gather is left as it was).
   */
  sync(gather: IotlbGather): void {
    this.#checkReleasable(gather);
    if (gather.isEmpty) return;
    if (!this.#freed) {
      this.#ops.iotlbSync(gather);
      this.#c.syncs++;
    }
    this.#release(gather);
  }

  // A gather whose free list this domain may free: checked before anything
  // is invalidated or freed.
  #checkReleasable(gather: IotlbGather): void {
    checkGather(gather);
    const list = gather.freeList;
    if (list.length !== 0) this.#checkFreeList(list, gather);
  }

  // Free the deferred pages and reset the gather.
  #release(gather: IotlbGather): void {
    const list = gather.freeList;
    if (list.length !== 0) {
      const frames = this.#ctx.memory.frames;
      for (let i = 0; i < list.length; i++) frames.free(list[i]!);
      // The marks stay for the next cycle: the reset below moves the
      // gather to a new epoch, which #own empties them for and which
      // #checkFreeList does not take them for.
    }
    gather.reset();
  }

  // Every deferred page deferred by this domain into this gather, a live
  // block, none twice: checked before anything is freed, so a bad entry
  // frees nothing.
  #checkFreeList(list: readonly number[], gather: IotlbGather): void {
    const frames = this.#ctx.memory.frames;
    const mark = this.#owned.get(gather);
    const owned = mark?.epoch === gather.epoch ? mark : undefined;
    // The marks' visit pass finds an entry listed twice (a Set of the
    // entries seen was garbage on every sync).
    owned?.startVisits();
    // Each entry is named only in an error: formatting every address of a
    // large unmap's list cost a string each. Indexed: the loop runs once
    // per sync, mostly unoptimized, where for-of allocates a result per
    // entry.
    for (let i = 0; i < list.length; i++) {
      const pa = list[i]!;
      // One probe: member or not, and whether this pass listed it before.
      const seen = owned === undefined ? NOT_MEMBER : owned.visit(pa);
      if (seen === NOT_MEMBER) {
        throw new IommuError(
          "EINVAL",
          `gather frees ${
            freedName(pa)
          }, which domain ${this.id} did not defer into it`,
        );
      }
      const twice = seen === VISIT_AGAIN;
      if (frames.blockSize(pa) === 0 || twice) {
        throw new IommuError(
          "EINVAL",
          `gather frees ${freedName(pa)}, which is not a live page-table block${
            twice ? " (listed twice)" : ""
          }`,
        );
      }
    }
  }

  /**
   * Invalidate every IOTLB entry of this domain on every attached unit.
   * With a `gather` (one filled by {@linkcode Domain.unmapNoSync}), the
   * full flush stands in for its range invalidation: the page-table pages
   * it deferred are then freed and it is reset (the lazy flush queue's
   * path).
   *
   * @param gather Optional gather to release after the flush.
   * @throws {IommuError} `EPERM` after free; `EINVAL` for a gather
   * {@linkcode Domain.sync} would refuse (nothing flushed or freed).
   */
  flushAll(gather?: IotlbGather): void {
    this.#alive();
    if (gather !== undefined) this.#checkReleasable(gather);
    this.#ops.flushAll();
    this.#c.flushes++;
    if (gather !== undefined) this.#release(gather);
  }

  /**
   * Translate through the page tables in RAM (not through any TLB).
   *
   * @param iova An IOVA.
   * @returns The physical address, or -1 when unmapped or outside the aperture.
   * @throws {IommuError} `EINVAL` for a malformed number; `EPERM` after free.
   */
  iovaToPhys(iova: number): number {
    this.#alive();
    checkAddress(iova, "IOVA");
    if (iova >= this.apertureEnd) return -1;
    return this.#ops.iovaToPhys(iova);
  }

  /**
   * Attach this domain to `unit` (per-device: no stream IDs) or to streams of
   * a central unit. A stream attached to another domain of the same driver
   * moves here atomically.
   *
   * @param unit A unit of the same plugin as this domain's unit.
   * @param streamIds Stream IDs, required for central units, empty otherwise.
   * @throws {IommuError} `EINVAL` for stream IDs on a per-device unit, none on
   * a central unit, malformed IDs, a `unit` that is not a unit object, a
   * stream ID list that is not a list, or a unit of another plugin; `ERANGE` for
   * an ID beyond the unit's stream count; `ENOSPC` when the unit has no free
   * context; `EPERM` after free.
   */
  attach(unit: IommuUnit, streamIds: readonly number[] = []): void {
    this.#alive();
    const ids = this.#checkStreams(unit, streamIds);
    if (unit.plugin !== this.unit.plugin) {
      throw new IommuError(
        "EINVAL",
        `domain of plugin ${this.unit.plugin} cannot attach to unit ${unit.name} of plugin ${unit.plugin}`,
      );
    }
    this.#ops.attach(unit, ids);
    const router = this.#ctx.router;
    for (const sid of ids.length === 0 ? [0] : ids) {
      const previous = router.boundTo(unit.name, sid);
      if (previous instanceof Domain && previous !== this) {
        previous.#forget(unit, sid);
      }
      router.bind(unit.name, sid, this);
    }
    let entry = this.#attachments.find((a) => a.unit === unit);
    if (entry === undefined) {
      entry = { unit, streamIds: [] };
      this.#attachments.push(entry);
    }
    for (const sid of ids) {
      if (!entry.streamIds.includes(sid)) entry.streamIds.push(sid);
    }
  }

  #forget(unit: IommuUnit, sid: number): void {
    const i = this.#attachments.findIndex((a) => a.unit === unit);
    if (i < 0) return;
    const entry = this.#attachments[i]!;
    entry.streamIds = entry.streamIds.filter((s) => s !== sid);
    if (entry.streamIds.length === 0) this.#attachments.splice(i, 1);
  }

  /**
   * Detach from `unit` (or from the listed streams of a central unit).
   *
   * @param unit The unit.
   * @param streamIds The streams to detach (central units).
   * @throws {IommuError} `ENOENT` when not attached there; `EINVAL` as for
   * {@linkcode Domain.attach}; `EPERM` after free.
   */
  detach(unit: IommuUnit, streamIds: readonly number[] = []): void {
    this.#alive();
    const ids = this.#checkStreams(unit, streamIds);
    const entry = this.#attachments.find((a) => a.unit === unit);
    const missing = entry === undefined ||
      ids.some((sid) => !entry.streamIds.includes(sid));
    if (missing) {
      throw new IommuError(
        "ENOENT",
        `domain ${this.id} is not attached to ${unit.name}${
          ids.length ? " streams " + ids.join(",") : ""
        }`,
      );
    }
    this.#ops.detach(unit, ids);
    for (const sid of ids.length === 0 ? [0] : ids) {
      this.#ctx.router.unbind(unit.name, sid, this);
      this.#forget(unit, sid);
    }
    if (ids.length === 0) {
      this.#attachments = this.#attachments.filter((a) => a.unit !== unit);
    }
  }

  #checkStreams(unit: IommuUnit, streamIds: readonly number[]): number[] {
    checkObject(unit, "unit");
    checkObject(unit.caps, `unit ${String(unit.name)} caps`);
    checkList(streamIds, "stream ID list");
    const central = unit.caps.topology === "central";
    if (central && streamIds.length === 0) {
      throw new IommuError(
        "EINVAL",
        `central unit ${unit.name} needs at least one stream ID`,
      );
    }
    if (!central && streamIds.length > 0) {
      throw new IommuError(
        "EINVAL",
        `per-device unit ${unit.name} takes no stream IDs`,
      );
    }
    for (const sid of streamIds) {
      checkAddress(sid, "stream ID");
      if (sid >= unit.caps.streamIds) {
        throw new IommuError(
          "ERANGE",
          `stream ID ${hex(sid)} is beyond unit ${unit.name}'s ${
            hex(unit.caps.streamIds)
          } streams`,
        );
      }
    }
    return [...new Set(streamIds)];
  }

  /** Current attachments (copies). */
  attachments(): DomainAttachment[] {
    return this.#attachments.map((a) => ({
      unit: a.unit,
      streamIds: [...a.streamIds],
    }));
  }

  /**
   * Install the fault handler (null removes it). Without a handler, faults
   * are unhandled and the unit reacts as its hardware does.
   *
   * @param handler Called with each fault on an attached unit/stream.
   * @throws {IommuError} `EINVAL` when `handler` is neither a function nor
   * null (the handler in place stays).
   */
  setFaultHandler(handler: FaultHandler | null): void {
    if (handler !== null && typeof handler !== "function") {
      throw new IommuError(
        "EINVAL",
        `fault handler must be a function or null, got ${typeof handler}`,
      );
    }
    this.#handler = handler;
  }

  /**
   * Called by the fault router; counts the fault and runs the handler.
   *
   * @param fault The fault.
   * @returns Whether the handler took it.
   */
  handleFault(fault: IommuFault): boolean {
    this.#c.faults++;
    return this.#handler === null ? false : this.#handler(fault) === true;
  }

  /** Every leaf, decoded from the page-table bytes in RAM, in IOVA order. */
  leaves(): MappingRecord[] {
    this.#alive();
    return this.#ops.leaves();
  }

  /** Page-table occupancy per level. */
  tableStats(): PageTableLevelStats[] {
    this.#alive();
    return this.#ops.tableStats();
  }

  /**
   * Counters as a plain object.
   *
   * @returns A snapshot.
   */
  counters(): DomainCounters {
    return { ...this.#c };
  }

  /** True once {@linkcode Domain.free} succeeded. */
  get freed(): boolean {
    return this.#freed;
  }

  /**
   * Free the page tables. Later calls throw `EPERM`.
   *
   * @throws {IommuError} `EBUSY` while attached anywhere; `EPERM` when
   * already freed.
   */
  free(): void {
    this.#alive();
    if (this.#attachments.length > 0) {
      throw new IommuError(
        "EBUSY",
        `domain ${this.id} is still attached to ${
          this.#attachments.map((a) => a.unit.name).join(", ")
        }`,
      );
    }
    this.#ops.free();
    this.#freed = true;
  }
}

// A free-list entry as an error message names it.
function freedName(pa: unknown): string {
  return typeof pa === "number" ? hex(pa) : String(pa);
}
