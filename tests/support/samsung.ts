// Shared set-up for the samsung-sysmmu tests.
import {
  createSoc,
  type Domain,
  type IommuUnit,
  type Master,
  type Soc,
} from "../../core/mod.ts";
import {
  samsungSysmmu,
  type SamsungSysmmuOptions,
  type SysmmuDomain,
  type SysmmuDriver,
  type SysmmuHardware,
} from "../../plugins/samsung_sysmmu/mod.ts";

export const V1_0 = 0x80000001; // the bogus value read as v1.0
export const V2_1 = 0x20200000;
export const V3_1 = 0x30200000;
export const V3_2 = 0x30400000;
export const V3_3 = 0x30600000;
export const V5_0 = 0x50000000;
export const V7_4 = 0x70800000;
export const RAM_BASE = 0x4000_0000;

export interface Rig {
  soc: Soc;
  units: IommuUnit[];
  hw: SysmmuHardware[];
  masters: Master[];
  domain: Domain;
  ops: SysmmuDomain;
  driver: SysmmuDriver;
}

/**
 * A system with `count` units (one master each, named dev0..), a domain
 * created for unit 0 and attached to it.
 */
export function rig(
  options: SamsungSysmmuOptions = {},
  count = 1,
  memory: { base: number; size: number } = {
    base: RAM_BASE,
    size: 256 << 20,
  },
): Rig {
  const soc = createSoc({ memory }).use(samsungSysmmu(options));
  const units: IommuUnit[] = [];
  const masters: Master[] = [];
  for (let i = 0; i < count; i++) {
    const unit = soc.probeUnit({
      name: `sysmmu${i}`,
      compatible: ["samsung,exynos-sysmmu"],
    });
    units.push(unit);
    masters.push(soc.addMaster({ name: `dev${i}`, ports: [{ unit }] }));
  }
  const domain = soc.createDomain(units[0]!);
  domain.attach(units[0]!);
  return {
    soc,
    units,
    hw: units.map((u) => u.hardware as SysmmuHardware),
    masters,
    domain,
    ops: domain.ops as SysmmuDomain,
    driver: units[0]!.driver as SysmmuDriver,
  };
}

/** The error kind `fn` throws, or "none". */
export function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { kind?: string }).kind ?? String(e);
  }
  return "none";
}

export const RW = 3;
