/**
 * Deterministic workloads that drive a platform's masters through the DMA
 * API and check every byte they move: `video-decode` (a two-port decoder
 * and a display sharing frame buffers), `net-rx` (a receive ring with a
 * streaming map and unmap per packet) and `gpu` (large coherent allocations
 * and shared buffers). The same seed gives the same run; a JSON file can pick
 * an engine and set its parameters.
 *
 * @example A short receive run on a platform without IOMMU
 * ```ts
 * import { simulate, workloadFromJson } from "./mod.ts";
 * import { buildPlatform } from "../core/mod.ts";
 * const platform = buildPlatform({
 *   memory: { size: "0x4000000" },
 *   devices: [{ name: "eth0", compatible: ["acme,nic"], dmaMaster: true }],
 * }, { plugins: [] });
 * const w = workloadFromJson({ kind: "net-rx", name: "tiny-rx", params: { packets: 8 } });
 * const { report } = simulate(platform, w, { seed: 3 });
 * if (report.checks.passed === 0 || report.checks.failed !== 0) throw new Error();
 * ```
 *
 * @module
 */
export * from "./rng.ts";
export * from "./checksum.ts";
export * from "./workload.ts";
export * from "./video_decode.ts";
export * from "./net_rx.ts";
export * from "./gpu.ts";
export * from "./registry.ts";
export * from "./simulate.ts";
