/**
 * The iommukit core: simulated RAM and its frame allocator, the plugin
 * registry and capability interfaces, domains (address spaces) shared by
 * every plugin, masters and the interconnect, fault routing, and the IOTLB
 * gather. It knows no vendor: IOMMUs come from plugins.
 *
 * @example Simulated RAM and the frame allocator
 * ```ts
 * import { PhysicalMemory } from "@iommukit/iommukit/core";
 * const ram = new PhysicalMemory({ base: 0x4000_0000, size: 256 << 20 });
 * const table = ram.frames.alloc(1024); // a 1 KiB page-table granule
 * ram.write32(table, 0x1234_5002);
 * if (ram.read32(table) !== 0x1234_5002) throw new Error("lost a write");
 * ram.frames.free(table);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./address.ts";
export * from "./frame_allocator.ts";
export * from "./memory.ts";
export * from "./iommu.ts";
export * from "./fault.ts";
export * from "./fault_router.ts";
export * from "./gather.ts";
export * from "./tlb.ts";
export * from "./map_plan.ts";
export * from "./page_split.ts";
export * from "./domain.ts";
export * from "./bus.ts";
export * from "./device_node.ts";
export * from "./registry.ts";
export * from "./soc.ts";
export * from "./fdt.ts";
export * from "./fdt_writer.ts";
export * from "./platform_source.ts";
export * from "./platform_dtb.ts";
export * from "./platform_json.ts";
export * from "./platform.ts";
