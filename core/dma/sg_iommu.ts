/**
 * The IOVA layout of a scatter-gather list over an IOMMU: one contiguous
 * range, entries widened to whole pages, boundary padding, and the rules
 * for merging entries into DMA segments (internal; not exported from
 * mod.ts). Per-page work fills reused typed arrays only.
 *
 * @module
 */
import { allocIova } from "./mapper_iova.ts";
import type { SgSegment } from "../mod.ts";
import { directionToProt, type DmaDirection } from "./direction.ts";
import { DmaSgMapping } from "./sg_mapping.ts";
import type { MapperState } from "./mapper_state.ts";
import type { Live } from "./live_table.ts";
import { NO_BOUNDARY, PAGE, PAGE_MASK, pageOffset } from "./page_math.ts";

const PAGE_INV = 1 / PAGE;
import { badSegment, checkSgMapping } from "./sg_validate.ts";

/**
 * Lay out, merge, check and map a list in one IOVA range, with a segment
 * boundary (lists without one take {@linkcode layoutFlat} and
 * {@linkcode mapSgFlat}).
 *
 * @param st The mapper (IOMMU mode).
 * @param rec The list's record (debug checks fill `dmaAddr`).
 * @param segments Entries, validated.
 * @param total Sum of the entry lengths, in bytes.
 * @param dir Direction.
 * @returns The mapping.
 * @throws {IommuError} `ENOMEM` (IOVA space, tables) or a debug report's kind; nothing stays mapped.
 */
export function mapSgIommu(
  st: MapperState,
  rec: Live,
  segments: readonly SgSegment[],
  total: number,
  dir: DmaDirection,
): DmaSgMapping {
  const n = segments.length;
  const B = st.segmentBoundary;
  const start = st.scratch.starts(n); // IOVA offset of each entry's first page
  let iovaLen = 0;
  let padded = false;
  for (let i = 0; i < n; i++) {
    const s = segments[i]!;
    const off = pageOffset(s.pa);
    const alen = Math.ceil((off + s.length) / PAGE) * PAGE;
    if (B !== NO_BOUNDARY) {
      const pad = (B - (iovaLen % B)) % B;
      if (pad > 0 && alen > pad) {
        iovaLen += pad;
        padded = true;
      }
    }
    start[i] = iovaLen;
    iovaLen += alen;
  }
  const iova = allocIova(st, iovaLen);
  const outAddr = st.scratch.out(n);
  const outLen = st.scratch.outLen;
  let count = 0;
  let curLen = 0;
  const maxSeg = st.maxSegmentSize;
  for (let i = 0; i < n; i++) {
    const s = segments[i]!;
    const off = pageOffset(s.pa);
    const len = s.length;
    const at = iova + start[i]!;
    if (
      curLen !== 0 && off === 0 && maxSeg - curLen >= len &&
      outAddr[count - 1]! + outLen[count - 1]! === at &&
      (B === NO_BOUNDARY || at - Math.floor(at / B) * B !== 0)
    ) {
      outLen[count - 1] = outLen[count - 1]! + len;
      curLen += len;
    } else {
      outAddr[count] = at + off;
      outLen[count] = len;
      count++;
      curLen = len;
    }
    if (pageOffset(off + len) !== 0) curLen = 0;
  }
  const dmaAddress: number[] = new Array(count);
  const dmaLength: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    dmaAddress[i] = outAddr[i]!;
    dmaLength[i] = outLen[i]!;
  }
  const debug = st.debug;
  if (debug !== null) {
    try {
      checkSgMapping(st, rec, segments, dmaAddress, dmaLength, count);
    } catch (e) {
      st.iova!.free(iova, iovaLen);
      throw e;
    }
  }
  const frames = st.scratch.grow(iovaLen / PAGE);
  const prot = directionToProt(dir, st.coherent);
  const domain = st.domain!;
  try {
    if (!padded) {
      let k = 0;
      for (let i = 0; i < n; i++) {
        const s = segments[i]!;
        const end = s.pa + s.length;
        for (let pa = s.pa - pageOffset(s.pa); pa < end; pa += PAGE) {
          frames[k++] = pa;
        }
      }
      domain.mapPages(iova, frames.subarray(0, k), prot, PAGE);
    } else {
      mapRuns(st, iova, start, segments, prot, frames);
    }
  } catch (e) {
    st.iova!.free(iova, iovaLen);
    throw e;
  }
  return new DmaSgMapping({
    segments,
    direction: dir,
    dmaAddress,
    dmaLength,
    iova,
    iovaSize: iovaLen,
    bounce: null,
    size: total,
  });
}

/**
 * The common case (no segment boundary), first half, in one pass over the
 * list: check each entry (as {@linkcode checkSegments} does) and lay out
 * page frames and merged DMA segments relative to the range start (merging
 * cannot depend on where the range lands). Fills the scratch arrays only;
 * {@linkcode mapSgFlat} maps what it laid out.
 *
 * @param st The mapper (IOMMU mode).
 * @param segments Entries, unchecked.
 * @returns Sum of the entry lengths, in bytes.
 * @throws {IommuError} `EINVAL`/`ERANGE` for the first bad entry (nothing changes).
 */
export function layoutFlat(
  st: MapperState,
  segments: readonly SgSegment[],
): number {
  const n = segments.length;
  const mem = st.soc.memory;
  const base = mem.base, ramEnd = mem.end;
  const scratch = st.scratch;
  let frames: Float64Array = scratch.frames;
  let room = frames.length;
  const outAddr = scratch.out(n);
  const outLen = scratch.outLen;
  const maxSeg = st.maxSegmentSize;
  let total = 0;
  let bad = -1;
  let k = 0;
  let count = 0;
  let curLen = 0; // length of the open DMA segment while it may still grow
  let segLen = 0;
  let i = 0;
  // Whole, page-aligned pages first (the common list): one frame each and
  // no per-entry room check. The first other entry (or a bad one) leaves
  // this loop for the general one below.
  if (room < n) {
    frames = scratch.grow(n);
    room = frames.length;
  }
  const lastPage = ramEnd - PAGE;
  for (; i < n; i++) {
    const s = segments[i]!;
    const pa = s.pa;
    if (s.length !== PAGE || typeof pa !== "number") break;
    // pa / PAGE is exact (a power of two): an integer exactly when pa is a
    // page-aligned integer; the range bounds it below 2^53.
    const q = pa * PAGE_INV;
    if (!(Math.floor(q) === q && pa >= base && pa <= lastPage)) break;
    frames[i] = pa;
  }
  k = i;
  if (k > 0) {
    // Whole pages merge while the segment has room: every `per` pages
    // start a new segment (at least one page each, as an entry longer
    // than the max is never split).
    const per = maxSeg >= PAGE ? Math.floor(maxSeg / PAGE) : 1;
    count = Math.ceil(k / per);
    for (let c = 0; c < count; c++) {
      outAddr[c] = c * per * PAGE;
      outLen[c] = Math.min(per, k - c * per) * PAGE;
    }
    segLen = outLen[count - 1]!;
    curLen = segLen;
  }
  total = k * PAGE;
  for (; i < n; i++) {
    const s = segments[i]!;
    const pa = s.pa;
    const len = s.length;
    if (
      !(Number.isSafeInteger(pa) && Number.isSafeInteger(len) && len > 0 &&
        pa >= base && pa + len <= ramEnd)
    ) {
      // Thrown after the loop: a call site here slows every entry.
      bad = i;
      break;
    }
    total += len;
    const off = pa & PAGE_MASK;
    // An entry joins the open segment when it starts on a page, the open
    // segment ended on one (curLen !== 0; the layout then puts this entry
    // right after it) and the sum fits the max segment size.
    if (curLen !== 0 && off === 0 && maxSeg - curLen >= len) {
      segLen += len;
      curLen += len;
    } else {
      outAddr[count] = k * PAGE + off;
      count++;
      segLen = len;
      curLen = len;
    }
    outLen[count - 1] = segLen;
    const tail = off + len;
    if ((tail & PAGE_MASK) !== 0) curLen = 0;
    if (tail === PAGE) {
      // Ends its only page (a whole page is the common entry).
      if (k === room) {
        frames = scratch.grow(k + 1);
        room = frames.length;
      }
      frames[k++] = pa - off;
      continue;
    }
    const need = k + Math.ceil(tail / PAGE);
    if (need > room) {
      frames = scratch.grow(need);
      room = frames.length;
    }
    const end = pa + len;
    for (let f = pa - off; f < end; f += PAGE) frames[k++] = f;
  }
  if (bad >= 0) {
    const s = segments[bad]!;
    badSegment(mem, bad, s.pa, s.length);
  }
  scratch.pages = k;
  scratch.count = count;
  return total;
}

/**
 * The common case (no segment boundary), second half: take the IOVA range
 * and map the frames {@linkcode layoutFlat} laid out.
 *
 * @param st The mapper (IOMMU mode).
 * @param rec The list's record.
 * @param segments Entries, checked and laid out by {@linkcode layoutFlat}.
 * @param total Sum of the entry lengths, in bytes.
 * @param dir Direction.
 * @returns The mapping.
 * @throws {IommuError} as {@linkcode mapSgIommu}.
 */
export function mapSgFlat(
  st: MapperState,
  rec: Live,
  segments: readonly SgSegment[],
  total: number,
  dir: DmaDirection,
): DmaSgMapping {
  const scratch = st.scratch;
  const k = scratch.pages;
  const count = scratch.count;
  const outAddr = scratch.outAddr;
  const outLen = scratch.outLen;
  const iovaLen = k * PAGE;
  const frames = scratch.framesView(k);
  const iova = allocIova(st, iovaLen);
  const dmaAddress: number[] = new Array(count);
  const dmaLength: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    dmaAddress[i] = iova + outAddr[i]!;
    dmaLength[i] = outLen[i]!;
  }
  const debug = st.debug;
  try {
    if (debug !== null) {
      // The flat layout runs only without a segment boundary.
      checkSgMapping(st, rec, segments, dmaAddress, dmaLength, count);
    }
    st.domain!.mapPages(
      iova,
      frames,
      directionToProt(dir, st.coherent),
      PAGE,
    );
  } catch (e) {
    st.iova!.free(iova, iovaLen);
    throw e;
  }
  return new DmaSgMapping({
    segments,
    direction: dir,
    dmaAddress,
    dmaLength,
    iova,
    iovaSize: iovaLen,
    bounce: null,
    size: total,
  });
}

/**
 * Map IOVA-contiguous runs separately (boundary gaps stay unmapped); all
 * or nothing.
 *
 * @param st The mapper (IOMMU mode).
 * @param iova Range start, in bytes.
 * @param start IOVA offset of each entry's first page.
 * @param segments Entries.
 * @param prot Protection bits.
 * @param frames Scratch for page frames.
 * @throws {IommuError} from the domain; runs already mapped are unmapped.
 */
export function mapRuns(
  st: MapperState,
  iova: number,
  start: Float64Array,
  segments: readonly SgSegment[],
  prot: number,
  frames: Float64Array,
): void {
  const domain = st.domain!;
  const done: number[] = [];
  try {
    let k = 0;
    let runStart = 0;
    for (let i = 0; i < segments.length; i++) {
      if (k > 0 && start[i]! !== runStart + k * PAGE) {
        domain.mapPages(iova + runStart, frames.subarray(0, k), prot, PAGE);
        done.push(iova + runStart, k * PAGE);
        k = 0;
      }
      if (k === 0) runStart = start[i]!;
      const s = segments[i]!;
      const end = s.pa + s.length;
      for (let pa = s.pa - pageOffset(s.pa); pa < end; pa += PAGE) {
        frames[k++] = pa;
      }
    }
    domain.mapPages(iova + runStart, frames.subarray(0, k), prot, PAGE);
  } catch (e) {
    for (let j = 0; j < done.length; j += 2) {
      domain.unmap(done[j]!, done[j + 1]!);
    }
    throw e;
  }
}
