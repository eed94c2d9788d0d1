/**
 * The built-in platforms as device tree blobs (DTB), embedded in the package
 * so they load without file access. Each is compiled by `dtc` from the
 * `.dts` source beside it; parse one with `parseFdt` from the core.
 *
 * - {@linkcode EXYNOS4210_DTB}: Samsung Exynos4210 with its per-device
 *   System MMUs (`samsung,exynos-sysmmu`, `#iommu-cells = <0>`).
 * - {@linkcode GENERIC_SOC_DTB}: a 64-bit SoC with one central IOMMU
 *   (`iommukit,generic-iommu`, `#iommu-cells = <1>`, stream IDs).
 *
 * @example
 * ```ts
 * import { EXYNOS4210_DTB, GENERIC_SOC_DTB } from "./mod.ts";
 * for (const dtb of [EXYNOS4210_DTB, GENERIC_SOC_DTB]) {
 *   // Every DTB starts with the big-endian magic 0xd00dfeed.
 *   const magic = new DataView(dtb.buffer, dtb.byteOffset).getUint32(0);
 *   if (magic !== 0xd00dfeed) throw new Error("not a DTB");
 * }
 * ```
 *
 * @module
 */
export { EXYNOS4210_DTB } from "./exynos4210_dtb.ts";
export { GENERIC_SOC_DTB } from "./generic_soc_dtb.ts";
export * from "./load.ts";
