import { runConformance } from "../testing/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";

// Faults block an Exynos unit until software clears them (Linux would
// panic); the suite drives several faults through one unit, so each domain
// gets a handler that accepts them, as a real driver user would install.
const versions: [string, number, number, number][] = [
  ["v1.0 (bogus 0x80000001)", 0x80000001, 0, 0],
  ["v2.1", 0x20200000, 0, 0],
  ["v3.1", 0x30200000, 0, 0],
  ["v3.2", 0x30400000, 0, 0],
  ["v3.3", 0x30600000, 0, 0],
  ["v5.0", 0x50000000, 0, 0],
  ["v7.4", 0x70800000, 0, 0],
  ["v7.4 with VM registers", 0x70800000, 1 << 11, 1 << 14],
];

for (const [label, version, capa0, capa1] of versions) {
  Deno.test(`samsung-sysmmu ${label} passes the conformance suite`, (t) =>
    runConformance(t, {
      plugin: () => samsungSysmmu({ version, capa0, capa1 }),
      units: [
        { name: "sysmmu_a", compatible: ["samsung,exynos-sysmmu"] },
        { name: "sysmmu_b", compatible: ["samsung,exynos-sysmmu"] },
      ],
      prepare: (soc) => {
        for (const d of soc.domains()) d.setFaultHandler(() => true);
      },
    }));
}
