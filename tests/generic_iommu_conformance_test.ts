import { runConformance } from "../testing/mod.ts";
import type { IommuUnit, Soc } from "../core/mod.ts";
import {
  CR0_CMDQEN,
  CR0_SMMUEN,
  genericHardwareOf,
  genericIommu,
  REG_CR0,
} from "../plugins/generic_iommu/mod.ts";

// The suite digests all of RAM around faulting accesses to prove that no DMA
// data moved; this unit also writes an event record into its in-memory event
// queue for each fault, as the hardware it models does. Event recording is
// switched off (CR0.EVTQEN = 0) so the digest sees DMA effects only; events
// are covered by tests/generic_iommu_test.ts.
function quietEvents(_soc: Soc, units: readonly IommuUnit[]): void {
  for (const u of units) {
    genericHardwareOf(u).writeRegister(REG_CR0, CR0_SMMUEN | CR0_CMDQEN);
  }
}

Deno.test("generic-iommu (stage 1) passes the conformance suite", (t) =>
  runConformance(t, {
    plugin: () => genericIommu(),
    units: [{ name: "smmu", compatible: ["iommukit,generic-iommu"] }],
    prepare: quietEvents,
  }));

Deno.test("generic-iommu (stage 2, 39-bit input) passes the conformance suite", (t) =>
  runConformance(t, {
    plugin: () => genericIommu({ stage: 2 }),
    units: [{
      name: "smmu",
      compatible: ["iommukit,generic-iommu"],
      props: { "iommukit,input-bits": 39, "iommukit,stream-ids": 64 },
    }],
    streamIds: [5, 63],
    prepare: quietEvents,
  }));

Deno.test("generic-iommu with two units and a tiny IOTLB passes the conformance suite", (t) =>
  runConformance(t, {
    plugin: () =>
      genericIommu({ iotlb: { sets: 4, ways: 2, replacement: "lru" } }),
    units: [
      { name: "smmu0", compatible: ["iommukit,generic-iommu"] },
      {
        name: "smmu1",
        compatible: ["virtio,pci-iommu"],
        props: { "iommukit,input-bits": 32 },
      },
    ],
    prepare: quietEvents,
  }));
