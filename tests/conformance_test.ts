import { runConformance } from "../testing/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";

Deno.test("the minimal flat test plugin passes the conformance suite", (t) =>
  runConformance(t, {
    plugin: flatIommu,
    units: [
      { name: "mmu0", compatible: ["iommukit,flat-iommu"] },
      { name: "mmu1", compatible: ["iommukit,flat-iommu"] },
    ],
  }));
