/**
 * Scatter-gather lists of a no-IOMMU master: each entry is its own DMA
 * segment at its physical address, bounced below the DMA mask when the
 * master cannot reach it (internal; not exported from mod.ts).
 *
 * @module
 */
import type { SgSegment } from "../mod.ts";
import type { DmaDirection } from "./direction.ts";
import { DmaSgMapping } from "./sg_mapping.ts";
import type { MapperState } from "./mapper_state.ts";
import type { Live } from "./live_table.ts";
import { pageOffset } from "./page_math.ts";
import { checkSgMapping } from "./sg_validate.ts";

/**
 * Map a list directly (bouncing entries above the mask).
 *
 * @param st The mapper (direct mode).
 * @param rec The list's record.
 * @param segments Entries, validated.
 * @param total Sum of the entry lengths, in bytes.
 * @param dir Direction. Bounce slots are filled with the CPU's view of
 * their entries whatever the direction or `skipCpuSync` (a slot must never
 * hand a previous user's bytes back); that attribute only skips the copy
 * back at unmap.
 * @returns The mapping.
 * @throws {IommuError} `ENOMEM` when bounce slots run out, or a debug
 * report's kind (checked on the final DMA addresses, bounce slots
 * included); no slot stays allocated.
 */
export function mapSgDirect(
  st: MapperState,
  rec: Live,
  segments: readonly SgSegment[],
  total: number,
  dir: DmaDirection,
): DmaSgMapping {
  const n = segments.length;
  const dmaAddress: number[] = new Array(n);
  const dmaLength: number[] = new Array(n);
  let bounce: number[] | null = null;
  for (let i = 0; i < n; i++) {
    const s = segments[i]!;
    dmaAddress[i] = s.pa;
    dmaLength[i] = s.length;
    if (s.pa + s.length > st.dmaLimit && bounce === null) {
      bounce = new Array<number>(n).fill(-1);
    }
  }
  const debug = st.debug;
  if (bounce !== null) {
    try {
      for (let i = 0; i < n; i++) {
        const s = segments[i]!;
        if (s.pa + s.length <= st.dmaLimit) continue;
        bounce[i] = st.bounce.alloc(s.length, pageOffset(s.pa));
        dmaAddress[i] = bounce[i]!;
      }
      // The checks see the DMA addresses the device will use (the slots),
      // before any slot is filled.
      if (debug !== null) {
        checkSgMapping(st, rec, segments, dmaAddress, dmaLength, n);
      }
      // Each slot stands for its whole entry whatever the direction and
      // attributes: it gets the CPU's view now, so bytes the device does not
      // write come back unchanged at unmap, never a previous user's data.
      for (let i = 0; i < n; i++) {
        if (bounce[i]! < 0) continue;
        const s = segments[i]!;
        st.soc.memory.writeBytes(bounce[i]!, st.bounce.cpuRead(s.pa, s.length));
      }
    } catch (e) {
      for (let i = 0; i < n; i++) {
        if (bounce[i]! >= 0) {
          st.bounce.free(bounce[i]!, segments[i]!.length);
        }
      }
      throw e;
    }
    for (let i = 0; i < n; i++) {
      if (bounce[i]! < 0) continue;
      st.s.bounces++;
      st.s.bounceBytes += segments[i]!.length;
    }
    st.bounce.live++;
  } else if (debug !== null) {
    checkSgMapping(st, rec, segments, dmaAddress, dmaLength, n);
  }
  return new DmaSgMapping({
    segments,
    direction: dir,
    dmaAddress,
    dmaLength,
    iova: -1,
    iovaSize: 0,
    bounce,
    size: total,
  });
}
