/**
 * The parts of the DMA adapter the workloads use, in one place.
 *
 * @module
 */
export {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaBuffer,
  type DmaCoherent,
  type DmaInvalidationPolicy,
  type DmaMapper,
  type DmaMapperStats,
  SharedDmaBuffer,
} from "../core/dma/mod.ts";
