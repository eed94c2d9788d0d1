import { assert } from "@std/assert";
import { IOMMU_READ, IOMMU_WRITE } from "../../core/mod.ts";
import { flatIommu } from "../support/flat_iommu.ts";
import { runProperty, summaryLine } from "./harness.ts";

Deno.test("flat-iommu agrees with the reference model over 10,000 random sequences", () => {
  const t0 = performance.now();
  const stats = runProperty({
    name: "flat-iommu",
    plugin: flatIommu,
    units: [
      { name: "mmu0", compatible: ["iommukit,flat-iommu"] },
      { name: "mmu1", compatible: ["iommukit,flat-iommu"] },
    ],
    memory: { base: 0, size: 256 << 20 },
    pageSizes: [4096, 4 << 20],
    protMask: IOMMU_READ | IOMMU_WRITE,
  }, 10_000);
  assert(stats.sequences >= stats.requested);
  console.log(summaryLine("flat-iommu", stats, performance.now() - t0));
});
