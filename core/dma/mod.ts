/**
 * The shared dma-mapping adapter: the DMA API above any IOMMU plugin (or
 * none). One {@linkcode DmaMapper} per master maps streaming buffers and
 * scatter-gather lists into one IOVA space, allocates coherent memory,
 * syncs through a CPU cache model so that missing syncs produce real stale
 * data, invalidates strictly or lazily (measuring the stale window), checks
 * every DMA-API rule of the kernel's dma-debug, and shares buffers between
 * masters in the style of dma-buf.
 *
 * - {@linkcode createDmaMapper}: one {@linkcode DmaMapper} per master. Over
 *   an IOMMU it owns one domain attached to every unit in front of the
 *   master's ports and one {@linkcode IovaAllocator} limited by the
 *   aperture, the DMA mask and the units' IOVA constraints; without one it
 *   maps directly and bounces buffers above the DMA mask.
 * - {@linkcode CpuCache} (one per system, {@linkcode cpuCacheOf}): the
 *   write-back cache CPU accesses go through; non-coherent DMA bypasses it,
 *   so a missing `syncForCpu` or a skipped clean shows up as stale bytes.
 * - {@linkcode DmaDebug}: every dma-debug check as a typed error or a
 *   recorded report naming where the mapping was made (on by default).
 * - {@linkcode FlushQueue}: lazy invalidation; `stats().staleAccesses`
 *   counts device accesses that still reached unmapped IOVAs.
 * - {@linkcode SharedDmaBuffer}: export once, attach and map per master.
 *
 * @example A missing sync for the CPU reads stale data
 * ```ts
 * import { createSoc } from "../mod.ts";
 * import { createDmaMapper, DMA_FROM_DEVICE } from "./mod.ts";
 * const soc = createSoc({ memory: { size: 16 << 20 } });
 * const dev = soc.addMaster({ name: "nic", ports: [{}] }); // no IOMMU, not coherent
 * const dma = createDmaMapper(soc, dev);
 * const buf = dma.cpu.allocBuffer(4096);
 * dma.cpu.readBuffer(buf, 0, 64); // the CPU caches the first line
 * const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
 * dma.mappingError(addr);
 * dev.port().writeBytes(addr, new Uint8Array([9]));
 * if (dma.cpu.readBuffer(buf, 0, 1)[0] !== 0) throw new Error("expected stale data");
 * dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
 * if (dma.cpu.readBuffer(buf, 0, 1)[0] !== 9) throw new Error("sync did not invalidate");
 * dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
 * dma.removeMaster();
 * ```
 *
 * @module
 */
export {
  IOVA_MAGAZINE_SIZE,
  IovaAllocator,
  type IovaAllocatorOptions,
  // The same shape as the core's `IovaConstraints`, exported under another
  // name so the two declarations do not clash in the root module.
  type IovaConstraints as IovaAllocatorConstraints,
  type IovaRange,
  type IovaStats,
} from "./iova_allocator.ts";
export * from "./direction.ts";
export * from "./dma_buffer.ts";
export * from "./cpu_cache.ts";
export * from "./debug.ts";
export * from "./flush_queue.ts";
export * from "./mapper.ts";
export * from "./mapper_types.ts";
export * from "./sg_mapping.ts";
export * from "./shared_buffer.ts";
