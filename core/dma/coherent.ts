/**
 * Coherent allocations: zeroed memory mapped bidirectionally and marked
 * uncached for the CPU (internal; {@linkcode DmaMapper.allocCoherent}
 * calls it).
 *
 * @module
 */
import { allocIova } from "./mapper_iova.ts";
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, IommuError } from "../mod.ts";
import { allocBelow, DmaBuffer } from "./dma_buffer.ts";
import { DMA_BIDIRECTIONAL } from "./direction.ts";
import { MAP_ERR_NA } from "./debug.ts";
import type { DmaCoherent } from "./mapper_types.ts";
import type { MapperState } from "./mapper_state.ts";
import { Live } from "./live_table.ts";
import { PAGE } from "./page_math.ts";

/**
 * Allocate coherent memory (see `DmaMapper.allocCoherent`).
 *
 * @param st The mapper.
 * @param size Bytes.
 * @returns The CPU buffer and the DMA address.
 * @throws {IommuError} as `DmaMapper.allocCoherent`.
 */
export function allocCoherent(st: MapperState, size: number): DmaCoherent {
  st.alive();
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new IommuError(
      "EINVAL",
      `coherent size ${String(size)} must be a positive safe integer`,
    );
  }
  const mem = st.soc.memory;
  const pages = Math.ceil(size / PAGE);
  const blocks: number[] = [];
  const domain = st.domain;
  let iova = -1;
  let buf: DmaBuffer;
  try {
    if (domain !== null) {
      let left = pages * PAGE;
      const sizes = domain.pageSizes;
      while (left > 0) {
        let got = -1;
        for (let s = sizes.length - 1; s >= 0 && got < 0; s--) {
          const chunk = sizes[s]!;
          if (chunk > left) continue;
          try {
            got = mem.frames.alloc(chunk);
          } catch (e) {
            if (s === 0) throw e; // the smallest page must succeed
          }
          if (got >= 0) left -= chunk;
        }
        blocks.push(got);
      }
      buf = DmaBuffer.adopt(mem, blocks, size);
      iova = allocIova(st, pages * PAGE);
      domain.mapPages(
        iova,
        buf.frames.subarray(0, pages),
        IOMMU_READ | IOMMU_WRITE | (st.coherent ? IOMMU_CACHE : 0),
        PAGE,
      );
    } else {
      blocks.push(allocBelow(mem, pages * PAGE, st.dmaLimit));
      buf = DmaBuffer.adopt(mem, blocks, size);
    }
  } catch (e) {
    if (iova >= 0) st.iova!.free(iova, pages * PAGE);
    for (const b of blocks) mem.frames.free(b);
    throw e;
  }
  // The frames come zeroed from the allocator, but an earlier user may
  // have left dirty lines of them in the CPU cache: drop those without
  // writing them back (markUncached alone would clean them over the zeros).
  for (let i = 0; i < buf.frames.length; i++) {
    st.cpu.invalidate(buf.frames[i]!, PAGE);
    st.cpu.markUncached(buf.frames[i]!, PAGE);
  }
  const rec = new Live(
    "coherent",
    DMA_BIDIRECTIONAL,
    size,
    1,
    buf,
    MAP_ERR_NA,
    st.stack(),
  );
  rec.iova = iova;
  rec.iovaSize = iova >= 0 ? pages * PAGE : 0;
  rec.dmaAddr = iova >= 0 ? iova : buf.pa;
  rec.end = rec.dmaAddr + size;
  st.live.insert(rec);
  st.s.coherentAllocs++;
  return { cpu: buf, dmaAddr: rec.dmaAddr, size };
}
