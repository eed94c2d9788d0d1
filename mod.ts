/**
 * iommukit: models IOMMUs and the DMA-mapping layer above them, faithfully
 * enough that the page tables it writes are the bytes real hardware walks.
 *
 * @example
 * ```ts
 * import { PhysicalMemory } from "@iommukit/iommukit";
 * const ram = new PhysicalMemory({ size: 16 << 20 });
 * if (ram.read32(0x1000) !== 0) throw new Error("fresh RAM reads zero");
 * ```
 *
 * @module
 */
export * from "./core/mod.ts";
export * from "./core/dma/mod.ts";
