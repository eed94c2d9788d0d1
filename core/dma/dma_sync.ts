/**
 * Ownership transfers of streaming mappings: syncs for the CPU and for the
 * device, through bounce slots or the CPU cache, translating IOVAs through
 * the tables in RAM (internal; not exported from mod.ts).
 *
 * @module
 */
import { checkDmaHandle } from "./handle_check.ts";
import { hex, IommuError } from "../mod.ts";
import { checkDirection, type DmaDirection } from "./direction.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import type { MapperState } from "./mapper_state.ts";
import { type Live, segmentEnd, segmentIndex } from "./live_table.ts";
import { moveAllOwnership, moveOwnership } from "./ownership.ts";
import { PAGE, pageOffset } from "./page_math.ts";

/** Physical addresses of the pages of an IOMMU sync, reused between calls. */
let pagePa = new Float64Array(16);
/** Entries of `pagePa` kept after a sync (larger ones are dropped). */
const PAGE_PA_KEPT = 4096;

/**
 * How far a single sync starting at an address may run inside a record:
 * the end of the record, or for sg the end of the run of back-to-back DMA
 * segments (in list order) from the one holding the address.
 *
 * @param rec A live record.
 * @param addr DMA address, in bytes.
 * @returns The end (exclusive), or -1 when no part of `rec` holds `addr`.
 */
function reachOf(rec: Live, addr: number): number {
  const sg = rec.sg;
  if (rec.type !== "sg" || sg === null) return segmentEnd(rec, addr);
  let i = segmentIndex(sg, addr);
  if (i < 0) return -1;
  let end = sg.dmaAddress[i]! + sg.dmaLength[i]!;
  while (++i < sg.count && sg.dmaAddress[i] === end) end += sg.dmaLength[i]!;
  return end;
}

/**
 * The live record a sync of `[addr, end)` names. Direct mode: among the
 * records one of whose ranges (sg: segments, which lie anywhere) holds
 * `addr`, one reaching `end`, then one mapped in `dir` (one address may be
 * mapped twice), through the table's range index (a few records a lookup,
 * however many are live). IOMMU (IOVA ranges never overlap): an exact
 * start first, then the record whose IOVA range spans `addr`.
 *
 * @param st The mapper.
 * @param addr DMA address, in bytes.
 * @param end Exclusive end of the synced range, in bytes.
 * @param dir Direction of the sync.
 * @returns The record, or undefined.
 */
function holding(
  st: MapperState,
  addr: number,
  end: number,
  dir: DmaDirection,
): Live | undefined {
  if (st.domain === null) return st.live.holding(addr, end, dir);
  for (let r = st.live.head(addr); r !== null; r = r.next) {
    if (segmentEnd(r, addr) > addr) return r;
  }
  return st.live.containing(addr); // one IOVA range per mapping
}

/**
 * @param st The mapper.
 * @param addr The DMA address nothing holds.
 * @returns The `ENOENT` error for a sync there.
 */
function notMapped(st: MapperState, addr: number): IommuError {
  return new IommuError(
    "ENOENT",
    `sync of ${hex(addr)}: nothing is mapped there for ${st.master.name}`,
  );
}

/**
 * Check a sync call and move ownership of the range it names. Every check
 * (arguments, debug reports in `"throw"` mode, and that live mappings hold
 * the whole range) comes before any cache maintenance, bounce copy or
 * counter, so a call that throws changes nothing.
 *
 * @param st The mapper.
 * @param forCpu To the CPU (true) or to the device.
 * @param dmaAddr First DMA address.
 * @param size Bytes.
 * @param direction Direction.
 * @param nents Entries (-1 for a single range).
 * @param sg The sg mapping, or null.
 * @throws {IommuError} as `DmaMapper.syncForCpu`.
 */
export function syncCommon(
  st: MapperState,
  forCpu: boolean,
  dmaAddr: number,
  size: number,
  direction: DmaDirection,
  nents: number,
  sg: DmaSgMapping | null,
): void {
  st.alive();
  const dir = checkDirection(direction);
  checkDmaHandle(dmaAddr, size);
  const debug = st.debug;
  const direct = st.domain === null;
  const rec = sg !== null
    ? st.live.lookup(dmaAddr, "sg", size, dir, sg)
    : holding(st, dmaAddr, dmaAddr + size, dir);
  const whole = sg !== null && rec?.type === "sg";
  if (debug !== null) {
    debug.emit(
      debug.checkSync(
        { forCpu, dmaAddr, size, direction: dir, nents },
        rec,
        rec === undefined || whole ? undefined : reachOf(rec, dmaAddr),
      ),
    );
    // Record mode: recorded, and nothing is mapped there to sync.
    if (rec === undefined) return;
  }
  if (whole) {
    st.s.syncs++;
    if (rec!.ranges !== null) moveAllOwnership(rec!, forCpu);
    syncSg(st, forCpu, rec!.sg!, dir);
    return;
  }
  // An sg sync names an sg mapping: a handle whose mapping is gone is
  // ENOENT even where another mapping now starts at its address.
  if (sg !== null) throw notMapped(st, dmaAddr);
  if (direct) {
    if (rec === undefined || segmentEnd(rec, dmaAddr) < 0) {
      throw notMapped(st, dmaAddr);
    }
    syncDirect(st, forCpu, rec, dmaAddr, size, dir);
    return;
  }
  // The whole range must lie in live mappings, one after another: the IOVA
  // pages of a mapping may also hold bytes beyond its ends (other data in
  // the same frames), which a sync must not touch.
  const end = dmaAddr + size;
  let reach = rec === undefined ? -1 : reachOf(rec, dmaAddr);
  if (reach < 0) throw notMapped(st, dmaAddr);
  while (reach < end) {
    const next = holding(st, reach, end, dir);
    const further = next === undefined ? -1 : reachOf(next, reach);
    if (further < 0) throw notMapped(st, reach);
    reach = further;
  }
  // Translate every page through the tables in RAM first (ENOENT for an
  // unmapped one, on coherent masters too), then maintain.
  const domain = st.domain!;
  let pages = 0;
  for (let at = dmaAddr; at < end; at += PAGE - pageOffset(at)) {
    const pa = domain.iovaToPhys(at);
    if (pa < 0) throw notMapped(st, at);
    if (pages === pagePa.length) {
      const grown = new Float64Array(2 * pages);
      grown.set(pagePa);
      pagePa = grown;
    }
    pagePa[pages++] = pa;
  }
  st.s.syncs++;
  if (st.tracksOwnership) {
    for (let at = dmaAddr; at < end;) {
      const r = holding(st, at, end, dir)!;
      const stop = Math.min(reachOf(r, at), end);
      if (r.ranges !== null) moveOwnership(r, forCpu, at, stop);
      at = stop;
    }
  }
  if (!st.coherent) {
    let at = dmaAddr;
    for (let p = 0; p < pages; p++) {
      const n = Math.min(PAGE - pageOffset(at), end - at);
      if (forCpu) st.cpu.takeFromDevice(pagePa[p]!, n, dir);
      else st.cpu.handToDevice(pagePa[p]!, n, dir);
      at += n;
    }
  }
  if (pagePa.length > PAGE_PA_KEPT) pagePa = new Float64Array(16);
}

/**
 * Sync `[dmaAddr, dmaAddr + size)` on a master without an IOMMU, piece by
 * piece through the records (and sg segments) holding it: bounce copies
 * for bounced pieces, cache maintenance for the others. The whole range is
 * checked before anything is done.
 *
 * @param st The mapper (direct mode).
 * @param forCpu To the CPU (true) or to the device.
 * @param rec The record holding `dmaAddr`.
 * @param dmaAddr First DMA address.
 * @param size Bytes.
 * @param dir Direction.
 * @throws {IommuError} `ENOENT` when part of the range lies in no live
 * mapping (nothing changed).
 */
function syncDirect(
  st: MapperState,
  forCpu: boolean,
  rec: Live,
  dmaAddr: number,
  size: number,
  dir: DmaDirection,
): void {
  const end = dmaAddr + size;
  // Check first: a range running past its record must continue in others.
  for (let at = segmentEnd(rec, dmaAddr); at < end;) {
    const next = holding(st, at, end, dir);
    if (next === undefined) throw notMapped(st, at);
    at = segmentEnd(next, at);
  }
  st.s.syncs++;
  let r = rec;
  for (let at = dmaAddr; at < end;) {
    const stop = Math.min(segmentEnd(r, at), end);
    if (r.ranges !== null) moveOwnership(r, forCpu, at, stop);
    syncDirectPiece(st, forCpu, r, at, stop - at, dir);
    at = stop;
    if (at < end) r = holding(st, at, end, dir)!;
  }
}

/**
 * Sync one piece of a direct sync that lies inside one record (one sg
 * segment).
 *
 * @param st The mapper (direct mode).
 * @param forCpu To the CPU (true) or to the device.
 * @param rec The record holding the piece.
 * @param at First DMA address of the piece.
 * @param n Bytes.
 * @param dir Direction.
 */
function syncDirectPiece(
  st: MapperState,
  forCpu: boolean,
  rec: Live,
  at: number,
  n: number,
  dir: DmaDirection,
): void {
  if (rec.bounce >= 0) {
    const off = at - rec.dmaAddr;
    if (forCpu) st.bounce.copyOut(rec.cpu!, off, rec.bounce + off, n);
    else st.bounce.copyIn(rec.cpu!, off, rec.bounce + off, n);
    return;
  }
  const sg = rec.sg;
  if (rec.type === "sg" && sg !== null && sg.bounce !== null) {
    const i = segmentIndex(sg, at);
    if (i >= 0 && sg.bounce[i]! >= 0) {
      // Direct mode: DMA segment i is input entry i.
      const pa = sg.segments[i]!.pa + (at - sg.dmaAddress[i]!);
      st.bounce.copyAt(forCpu, pa, at, n);
      return;
    }
  }
  if (st.coherent) return;
  if (forCpu) st.cpu.takeFromDevice(at, n, dir);
  else st.cpu.handToDevice(at, n, dir);
}

/**
 * Sync every entry of an sg mapping.
 *
 * @param st The mapper.
 * @param forCpu To the CPU (true) or to the device.
 * @param sg The mapping.
 * @param dir Direction.
 */
export function syncSg(
  st: MapperState,
  forCpu: boolean,
  sg: DmaSgMapping,
  dir: DmaDirection,
): void {
  for (let i = 0; i < sg.nents; i++) {
    const pa = sg.segments[i]!.pa;
    const len = sg.segments[i]!.length;
    const slot = sg.bounce === null ? -1 : sg.bounce[i]!;
    if (slot >= 0) {
      st.bounce.copyAt(forCpu, pa, slot, len);
      continue;
    }
    if (st.coherent) continue;
    if (forCpu) st.cpu.takeFromDevice(pa, len, dir);
    else st.cpu.handToDevice(pa, len, dir);
  }
}
