/**
 * The virtio-iommu front end of the generic central IOMMU: wire-format
 * requests (ATTACH, DETACH, MAP, UNMAP, PROBE) applied to a generic-iommu
 * unit, the config space and fault records.
 *
 * @example Attach, map and unmap through the wire format
 * ```ts
 * import { createSoc } from "../../../core/mod.ts";
 * import { genericIommu } from "../plugin.ts";
 * import { createVirtioIommu, encodeAttach, encodeMap, encodeUnmap, tailStatus, VIRTIO_IOMMU_MAP_F_READ } from "./mod.ts";
 * const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
 * const unit = soc.probeUnit({ name: "viommu", compatible: ["virtio,pci-iommu"] });
 * const dev = createVirtioIommu(soc, unit);
 * tailStatus(dev.handleRequest(encodeAttach(1, 3)));
 * const ok = tailStatus(dev.handleRequest(encodeMap(1, 0x10000, 0x1ffff, 0x100000, VIRTIO_IOMMU_MAP_F_READ)));
 * if (ok !== 0) throw new Error("map failed");
 * if (tailStatus(dev.handleRequest(encodeUnmap(1, 0x10000, 0x10fff))) !== 5) throw new Error("split allowed");
 * ```
 *
 * @module
 */
export * from "./constants.ts";
export * from "./wire.ts";
export { type VirtioMapping } from "./mapping_list.ts";
export {
  createVirtioIommu,
  VirtioIommu,
  type VirtioIommuCounters,
  type VirtioIommuOptions,
  type VirtioIommuProfile,
  type VirtioResvRegion,
} from "./device.ts";
