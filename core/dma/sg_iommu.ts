/**
 * The IOVA layout of a scatter-gather list over an IOMMU: one contiguous
 * range, entries widened to whole pages, boundary padding, and the rules
 * for merging entries into DMA segments (internal; not exported from
 * mod.ts). Per-page work fills reused typed arrays only.
 *
 * @module
 */
import type { SgSegment } from "../mod.ts";
import { directionToProt, type DmaDirection } from "./direction.ts";
import { DmaSgMapping } from "./sg_mapping.ts";
import type { MapperState } from "./mapper_state.ts";
import type { Live } from "./live_table.ts";
import { NO_BOUNDARY, PAGE, pageOffset } from "./page_math.ts";

/**
 * Lay out, merge, check and map a list in one IOVA range.
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
  if (B === NO_BOUNDARY) return mapSgFlat(st, rec, segments, total, dir);
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
  const alloc = st.iova!;
  const iova = alloc.alloc(iovaLen, st.dmaLimit);
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
      rec.dmaAddr = dmaAddress[0]!;
      debug.emit(
        debug.checkMap(rec, {
          inputs: segments,
          dmaAddress,
          dmaLength,
          count,
          maxSegmentSize: maxSeg,
          segmentBoundary: B,
        }),
      );
    } catch (e) {
      alloc.free(iova, iovaLen);
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
    alloc.free(iova, iovaLen);
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
 * The common case (no segment boundary) in one pass over the list: page
 * frames, IOVA layout and DMA-segment merging relative to the range
 * start; merging cannot depend on where the range lands.
 *
 * @param st The mapper (IOMMU mode).
 * @param rec The list's record.
 * @param segments Entries, validated.
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
  const n = segments.length;
  let frames: Float64Array = st.scratch.frames;
  const outAddr = st.scratch.out(n);
  const outLen = st.scratch.outLen;
  const maxSeg = st.maxSegmentSize;
  let k = 0;
  let count = 0;
  let curLen = 0;
  for (let i = 0; i < n; i++) {
    const s = segments[i]!;
    const pa = s.pa;
    const len = s.length;
    const off = pageOffset(pa);
    const at = k * PAGE;
    if (
      curLen !== 0 && off === 0 && maxSeg - curLen >= len &&
      outAddr[count - 1]! + outLen[count - 1]! === at
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
    const end = pa + len;
    const need = k + Math.ceil((off + len) / PAGE);
    if (need > frames.length) frames = st.scratch.grow(need);
    for (let f = pa - off; f < end; f += PAGE) frames[k++] = f;
  }
  const iovaLen = k * PAGE;
  const alloc = st.iova!;
  const iova = alloc.alloc(iovaLen, st.dmaLimit);
  const dmaAddress: number[] = new Array(count);
  const dmaLength: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    dmaAddress[i] = iova + outAddr[i]!;
    dmaLength[i] = outLen[i]!;
  }
  const debug = st.debug;
  try {
    if (debug !== null) {
      rec.dmaAddr = dmaAddress[0]!;
      debug.emit(
        debug.checkMap(rec, {
          inputs: segments,
          dmaAddress,
          dmaLength,
          count,
          maxSegmentSize: maxSeg,
          segmentBoundary: NO_BOUNDARY,
        }),
      );
    }
    st.domain!.mapPages(
      iova,
      frames.subarray(0, k),
      directionToProt(dir, st.coherent),
      PAGE,
    );
  } catch (e) {
    alloc.free(iova, iovaLen);
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
