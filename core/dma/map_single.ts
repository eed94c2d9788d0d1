/**
 * Streaming single mappings: one buffer (or whole frames) to one DMA
 * address, through the IOMMU or directly with a bounce slot when needed
 * (internal; {@linkcode DmaMapper.mapSingle} calls it).
 *
 * @module
 */
import { allocIova } from "./mapper_iova.ts";
import { checkObject, describeValue, hex, IommuError } from "../mod.ts";
import { DmaBuffer } from "./dma_buffer.ts";
import {
  checkDirection,
  directionToProt,
  type DmaDirection,
} from "./direction.ts";
import { deviceWrites, MAP_ERR_NA, MAP_ERR_NOT_CHECKED } from "./debug.ts";
import type { DmaAttrs } from "./mapper_types.ts";
import type { MapperState } from "./mapper_state.ts";
import { Live } from "./live_table.ts";
import {
  bufferLines,
  bufferPieces,
  bufferRanges,
  pieceToDevice,
} from "./cache_maintenance.ts";
import { PAGE, pageOffset } from "./page_math.ts";

/**
 * Map a buffer for one streaming transfer (see `DmaMapper.mapSingle`).
 *
 * @param st The mapper.
 * @param buffer The buffer, or page frame addresses.
 * @param direction Direction.
 * @param attrs Attributes.
 * @returns The DMA address.
 * @throws {IommuError} as `DmaMapper.mapSingle`, and `EINVAL` when
 * `buffer` is neither a `DmaBuffer` nor a list of frame addresses or
 * `attrs` is not an object (checked before anything changes).
 */
export function mapSingle(
  st: MapperState,
  buffer: DmaBuffer | ArrayLike<number>,
  direction: DmaDirection,
  attrs: DmaAttrs,
): number {
  st.alive();
  const dir = checkDirection(direction);
  checkObject(attrs, "DMA attributes");
  if (
    !(buffer instanceof DmaBuffer) &&
    (buffer === null || typeof buffer !== "object" ||
      !Number.isSafeInteger(buffer.length))
  ) {
    throw new IommuError(
      "EINVAL",
      `mapSingle needs a DmaBuffer or a list of frame addresses, got ${
        describeValue(buffer)
      }`,
    );
  }
  const buf = buffer instanceof DmaBuffer
    ? buffer
    : DmaBuffer.fromFrames(buffer);
  if (buf.freed) {
    throw new IommuError("EINVAL", `buffer at ${hex(buf.pa)} was freed`);
  }
  const pages = Math.ceil((buf.offset + buf.size) / PAGE);
  for (let i = 0; i < pages; i++) {
    st.checkRam(buf.frames[i]!, PAGE, `frame ${i}`);
  }
  const skip = attrs.skipCpuSync === true;
  const debug = st.debug;
  const rec = new Live(
    "single",
    dir,
    buf.size,
    1,
    buf,
    debug === null ? MAP_ERR_NA : MAP_ERR_NOT_CHECKED,
    st.stack(),
  );
  // Tracked with skipCpuSync too (only its own check is skipped).
  if (debug !== null && deviceWrites(dir) && attrs.cpuCacheClean !== true) {
    rec.lines = bufferLines(buf);
    rec.skipOverlapCheck = skip;
  }
  // The debug checks run once the DMA address is known (reports carry it)
  // and before anything is mapped or copied; a throwing report gives back
  // what was allocated for the address.
  const domain = st.domain;
  if (domain !== null) {
    const iova = allocIova(st, pages * PAGE);
    try {
      if (debug !== null) {
        rec.dmaAddr = iova + buf.offset;
        debug.emit(debug.checkMap(rec, null));
      }
      domain.mapPages(
        iova,
        pages === buf.frames.length
          ? buf.frames
          : buf.frames.subarray(0, pages),
        directionToProt(dir, st.coherent),
        PAGE,
      );
    } catch (e) {
      st.iova!.free(iova, pages * PAGE);
      throw e;
    }
    rec.iova = iova;
    rec.iovaSize = pages * PAGE;
    rec.dmaAddr = iova + buf.offset;
  } else {
    if (!buf.contiguous) {
      throw new IommuError(
        "EINVAL",
        `master ${st.master.name} has no IOMMU: a single mapping needs a physically contiguous buffer`,
      );
    }
    const pa = buf.pa;
    if (pa + buf.size > st.dmaLimit) {
      const slot = st.bounce.alloc(buf.size, pageOffset(pa));
      if (debug !== null) {
        rec.dmaAddr = slot;
        try {
          debug.emit(debug.checkMap(rec, null));
        } catch (e) {
          st.bounce.free(slot, buf.size);
          throw e;
        }
      }
      // The slot stands for the whole buffer whatever the direction and
      // attributes: it gets the CPU's view now, so bytes the device does not
      // write come back unchanged at unmap, never a previous user's data.
      // (skipCpuSync skips cache maintenance and the copy back at unmap,
      // not this fill.)
      try {
        st.bounce.copyIn(buf, 0, slot, buf.size);
      } catch (e) {
        st.bounce.free(slot, buf.size);
        throw e;
      }
      rec.bounce = slot;
      rec.bounceSize = buf.size;
      rec.dmaAddr = slot;
      st.bounce.live++;
      st.s.bounces++;
    } else {
      rec.dmaAddr = pa;
      if (debug !== null) debug.emit(debug.checkMap(rec, null));
    }
  }
  rec.end = rec.dmaAddr + buf.size;
  if (st.tracksOwnership) {
    rec.ranges = bufferRanges(buf);
    rec.deviceOwned = true;
  }
  if (rec.bounce < 0) {
    bufferPieces(buf, (pa, n) => pieceToDevice(st, pa, n, dir, skip));
  }
  st.live.insert(rec);
  st.s.singleMaps++;
  return rec.dmaAddr;
}
