/**
 * iommukit: models IOMMUs and the DMA-mapping layer above them, faithfully
 * enough that the page tables it writes are the bytes real hardware walks.
 *
 * This entry point re-exports the core, the dma-mapping adapter, both
 * built-in plugins (Samsung Exynos System MMU and the generic central IOMMU),
 * the built-in platforms with `loadPlatform`, the workloads and the SVG
 * picture. Narrower entry points: `./core`, `./dma`, `./testing`,
 * `./plugins/samsung-sysmmu`, `./plugins/generic-iommu`, `./platforms`,
 * `./workloads`, `./svg`, `./cli`.
 *
 * @example Run the default platform's video workload and check its data
 * ```ts
 * import { loadPlatform, simulate, workloadByName } from "@iommukit/iommukit";
 * const platform = loadPlatform("exynos4210");
 * const run = simulate(platform, workloadByName("video-decode"), { seed: 1 });
 * if (run.report.checks.failed !== 0) throw new Error("data corrupted");
 * ```
 *
 * @module
 */
export * from "./core/mod.ts";
export * from "./core/dma/mod.ts";
export * from "./plugins/samsung_sysmmu/mod.ts";
export * from "./plugins/generic_iommu/mod.ts";
export * from "./platforms/mod.ts";
export * from "./workloads/mod.ts";
export * from "./svg/mod.ts";
