/**
 * Scatter-gather mapping: validating the list, the debug records, the
 * cache maintenance of its entries, and handing the layout to the IOMMU
 * path ({@link ./sg_iommu.ts}) or the direct path ({@link ./direct_sg.ts})
 * (internal; {@linkcode DmaMapper.mapSg} calls it).
 *
 * @module
 */
import { checkList, checkObject, IommuError, type SgSegment } from "../mod.ts";
import { checkDirection, type DmaDirection } from "./direction.ts";
import { deviceWrites, MAP_ERR_NA } from "./debug.ts";
import type { DmaAttrs } from "./mapper_types.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import type { MapperState } from "./mapper_state.ts";
import { Live } from "./live_table.ts";
import { pieceToDevice } from "./cache_maintenance.ts";
import { layoutFlat, mapSgFlat, mapSgIommu } from "./sg_iommu.ts";
import { checkSegments, notAnEntry } from "./sg_validate.ts";
import { NO_BOUNDARY } from "./page_math.ts";
import { mapSgDirect } from "./direct_sg.ts";

/**
 * Map a scatter-gather list (see `DmaMapper.mapSg`).
 *
 * @param st The mapper.
 * @param segments Entries.
 * @param direction Direction.
 * @param attrs Attributes.
 * @returns The mapping.
 * @throws {IommuError} as `DmaMapper.mapSg`.
 */
export function mapSg(
  st: MapperState,
  segments: readonly SgSegment[],
  direction: DmaDirection,
  attrs: DmaAttrs = {},
): DmaSgMapping {
  st.alive();
  const dir = checkDirection(direction);
  checkList(segments, "scatter-gather list");
  checkObject(attrs, "DMA attributes");
  const n = segments.length;
  if (n === 0) {
    throw new IommuError("EINVAL", "scatter-gather list must not be empty");
  }
  // Without a segment boundary an IOMMU list is checked and laid out in
  // one pass; otherwise checked here and laid out later.
  const flat = st.domain !== null && st.segmentBoundary === NO_BOUNDARY;
  let total: number;
  try {
    total = flat
      ? layoutFlat(st, segments)
      : checkSegments(st.soc.memory, segments);
  } catch (e) {
    // An entry that is not an object fails on its first field read, a
    // TypeError: named here, off the per-entry loops.
    throw e instanceof IommuError ? e : notAnEntry(segments, e);
  }
  const skip = attrs.skipCpuSync === true;
  const debug = st.debug;
  const rec = new Live("sg", dir, total, n, null, MAP_ERR_NA, st.stack());
  // Tracked with skipCpuSync too (only its own check is skipped).
  if (debug !== null && deviceWrites(dir) && attrs.cpuCacheClean !== true) {
    rec.skipOverlapCheck = skip;
    const pairs = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      pairs[2 * i] = Math.floor(s.pa / 64);
      pairs[2 * i + 1] = Math.floor((s.pa + s.length - 1) / 64);
    }
    rec.lines = pairs;
  }
  const sg = flat
    ? mapSgFlat(st, rec, segments, total, dir)
    : st.domain !== null
    ? mapSgIommu(st, rec, segments, total, dir)
    : mapSgDirect(st, rec, segments, total, dir);
  rec.sg = sg;
  rec.iova = sg.iova;
  rec.iovaSize = sg.iovaSize;
  rec.dmaAddr = sg.dmaAddress[0]!;
  rec.end = sg.dmaAddress[sg.count - 1]! + sg.dmaLength[sg.count - 1]!;
  if (st.tracksOwnership) {
    const pairs = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      pairs[2 * i] = segments[i]!.pa;
      pairs[2 * i + 1] = segments[i]!.pa + segments[i]!.length;
    }
    rec.ranges = pairs;
    rec.deviceOwned = true;
  }
  if (st.coherent || (!skip && st.cpu.needsMaintenance)) {
    for (let i = 0; i < n; i++) {
      if (sg.bounce === null || sg.bounce[i]! < 0) {
        const s = segments[i]!;
        pieceToDevice(st, s.pa, s.length, dir, skip);
      }
    }
  }
  st.live.insert(rec);
  st.s.sgMaps++;
  return sg;
}
