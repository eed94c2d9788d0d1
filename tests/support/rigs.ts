/**
 * The plugin targets that the cross-plugin tests (fault injection,
 * isolation) run over, and the system each of them builds: kept in one place
 * so both suites cover the same plugins and versions.
 */
import {
  createSoc,
  type IommuPlugin,
  type IommuUnit,
  type Soc,
} from "../../core/mod.ts";
import { samsungSysmmu } from "../../plugins/samsung_sysmmu/mod.ts";
import { genericIommu } from "../../plugins/generic_iommu/mod.ts";
import { flatIommu } from "./flat_iommu.ts";

/** One plugin configuration a cross-plugin test runs over. */
export interface Target {
  /** Step name, e.g. "samsung-sysmmu v3.3". */
  name: string;
  /** Makes a fresh plugin instance. */
  plugin: () => IommuPlugin;
  /** The compatible string its units are probed with. */
  compatible: string;
  /** True for a central IOMMU (one unit, masters told apart by stream ID). */
  central: boolean;
}

/** Every plugin (and Samsung version) the cross-plugin suites cover. */
export const TARGETS: readonly Target[] = [
  {
    name: "flat-iommu",
    plugin: flatIommu,
    compatible: "iommukit,flat-iommu",
    central: false,
  },
  {
    name: "samsung-sysmmu v3.3",
    plugin: () => samsungSysmmu({ version: 0x30600000 }),
    compatible: "samsung,exynos-sysmmu",
    central: false,
  },
  {
    name: "samsung-sysmmu v7.4",
    plugin: () => samsungSysmmu({ version: 0x70800000 }),
    compatible: "samsung,exynos-sysmmu",
    central: false,
  },
  {
    name: "generic-iommu",
    plugin: () => genericIommu(),
    compatible: "iommukit,generic-iommu",
    central: true,
  },
];

/**
 * A SoC with 256 MiB of RAM at 0x4000_0000 and `t`'s plugin: one unit named
 * "smmu" for a central target, otherwise one unit per name in `unitNames`
 * (per-device topology), in that order.
 *
 * @param t the target plugin.
 * @param unitNames unit names for a per-device target (ignored if central).
 * @returns the SoC and its probed units.
 * @throws IommuError from probing (not expected for the targets above).
 */
export function targetSystem(
  t: Target,
  unitNames: readonly string[],
): { soc: Soc; units: IommuUnit[] } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 << 20 } });
  soc.use(t.plugin());
  const units = t.central
    ? [soc.probeUnit({ name: "smmu", compatible: [t.compatible] })]
    : unitNames.map((name) =>
      soc.probeUnit({ name, compatible: [t.compatible] })
    );
  return { soc, units };
}
