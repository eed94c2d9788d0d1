/**
 * Undoing mappings: checking an unmap call against the live table, then
 * tearing the record down (cache maintenance for the CPU, bounce
 * copy-back, IOVA release) (internal; not exported from mod.ts).
 *
 * @module
 */
import { checkDmaHandle } from "./handle_check.ts";
import { checkObject, hex, IommuError } from "../mod.ts";
import type { DmaBuffer } from "./dma_buffer.ts";
import {
  checkDirection,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  type DmaDirection,
} from "./direction.ts";
import type { DmaMappingType } from "./debug.ts";
import type { DmaAttrs } from "./mapper_types.ts";
import type { MapperState } from "./mapper_state.ts";
import type { Live } from "./live_table.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import { bufferPieces, pieceToCpu } from "./cache_maintenance.ts";
import { unmapIova } from "./invalidation.ts";
import { PAGE } from "./page_math.ts";

/**
 * Check an unmap or free call and undo the mapping it names.
 *
 * @param st The mapper.
 * @param type Claimed kind.
 * @param dmaAddr Claimed DMA address.
 * @param size Claimed bytes.
 * @param direction Claimed direction.
 * @param nents Claimed entries.
 * @param cpu Claimed CPU buffer (coherent), or null.
 * @param attrs Attributes.
 * @param sg The sg mapping handle an sg unmap was given (its own record is
 * undone, not another list's at the same address), else null.
 * @throws {IommuError} as `DmaMapper.unmapSingle`.
 */
export function unmapCommon(
  st: MapperState,
  type: DmaMappingType,
  dmaAddr: number,
  size: number,
  direction: DmaDirection,
  nents: number,
  cpu: DmaBuffer | null,
  attrs: DmaAttrs,
  sg: DmaSgMapping | null = null,
): void {
  st.alive();
  const dir = checkDirection(direction);
  checkDmaHandle(dmaAddr, size);
  checkObject(attrs, "DMA attributes");
  const rec = st.live.lookup(dmaAddr, type, size, dir, sg);
  const debug = st.debug;
  if (debug !== null) {
    debug.emit(
      debug.checkUnmap(
        { type, dmaAddr, size, direction: dir, nents, cpu },
        rec,
        dmaAddr === DMA_MAPPING_ERROR,
      ),
    );
  }
  if (rec === undefined) {
    if (debug !== null) return; // recorded
    throw new IommuError(
      "ENOENT",
      `nothing is mapped at DMA address ${hex(dmaAddr)} for ${st.master.name}`,
    );
  }
  teardown(st, rec, attrs.skipCpuSync === true);
}

/**
 * Undo a mapping by its own record (whatever the caller claimed).
 *
 * @param st The mapper.
 * @param rec A live record.
 * @param skip Skip the CPU cache maintenance.
 */
export function teardown(st: MapperState, rec: Live, skip: boolean): void {
  const dir = rec.direction;
  if (rec.type === "coherent") {
    const buf = rec.cpu!;
    for (let i = 0; i < buf.frames.length; i++) {
      st.cpu.unmarkUncached(buf.frames[i]!, PAGE);
    }
  } else if (rec.type === "single") {
    const buf = rec.cpu!;
    if (rec.bounce >= 0) {
      if (dir !== DMA_TO_DEVICE && !skip) {
        st.bounce.copyOut(buf, 0, rec.bounce, rec.bounceSize);
      }
      st.bounce.free(rec.bounce, rec.bounceSize);
      st.bounce.live--;
    } else {
      bufferPieces(buf, (pa, n) => pieceToCpu(st, pa, n, dir, skip));
    }
  } else {
    const sg = rec.sg!;
    const maintain = st.coherent || sg.bounce !== null ||
      (!skip && dir !== DMA_TO_DEVICE && st.cpu.needsMaintenance);
    for (let i = 0; maintain && i < sg.nents; i++) {
      const slot = sg.bounce === null ? -1 : sg.bounce[i]!;
      const pa = sg.segments[i]!.pa;
      const len = sg.segments[i]!.length;
      if (slot >= 0) {
        if (dir !== DMA_TO_DEVICE && !skip) {
          st.soc.memory.readInto(slot, st.scratch.tmp(len));
          st.bounce.cpuWrite(pa, st.scratch.tmp(len));
          st.s.bounceBytes += len;
        }
        st.bounce.free(slot, len);
      } else {
        pieceToCpu(st, pa, len, dir, skip);
      }
    }
    if (sg.bounce !== null) st.bounce.live--;
  }
  if (rec.iova >= 0) unmapIova(st, rec.iova, rec.iovaSize);
  if (rec.type === "coherent") rec.cpu!.free();
  st.live.remove(rec);
  st.s.unmaps++;
}
