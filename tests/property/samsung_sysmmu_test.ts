import { assert } from "@std/assert";
import { IOMMU_READ, IOMMU_WRITE } from "../../core/mod.ts";
import { samsungSysmmu } from "../../plugins/samsung_sysmmu/mod.ts";
import { runProperty, summaryLine } from "./harness.ts";

const RW = IOMMU_READ | IOMMU_WRITE;

// v3.3: 32-bit PA, FLPD cache and TLB, no write-only (W widens to RW).
// v7.4 with VM registers: PA >> 4 entries, write-only enforced.
const versions: [string, number, number, number, boolean, number][] = [
  ["v3.3", 0x30600000, 0, 0, false, 10_000],
  ["v7.4 VM", 0x70800000, 1 << 11, 1 << 14, true, 10_000],
];

for (const [label, version, capa0, capa1, writeOnly, runs] of versions) {
  Deno.test(`samsung-sysmmu ${label} agrees with the reference model over ${runs} random sequences`, () => {
    const t0 = performance.now();
    const stats = runProperty({
      name: `samsung-sysmmu ${label}`,
      plugin: () => samsungSysmmu({ version, capa0, capa1 }),
      units: [
        { name: "sysmmu_a", compatible: ["samsung,exynos-sysmmu"] },
        { name: "sysmmu_b", compatible: ["samsung,exynos-sysmmu"] },
      ],
      memory: { base: 0x4000_0000, size: 64 << 20 },
      pageSizes: [4096, 64 << 10, 1 << 20],
      protMask: RW,
      effectiveProt: (p) =>
        !writeOnly && (p & RW) === IOMMU_WRITE ? p | IOMMU_READ : p,
      power: true,
    }, runs);
    assert(stats.sequences >= stats.requested);
    console.log(
      summaryLine(`samsung-sysmmu ${label}`, stats, performance.now() - t0),
    );
  });
}
