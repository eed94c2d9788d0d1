/**
 * The plugin factory: probes `samsung,exynos-sysmmu` nodes into units that
 * share one driver per RAM.
 *
 * @module
 */
import {
  type DeviceNode,
  type IommuCaps,
  IommuError,
  type IommuFeature,
  type IommuPlugin,
  type IommuUnit,
  type PhysicalMemory,
  type ProbeContext,
} from "../../core/mod.ts";
import { SysmmuDriver } from "./driver.ts";
import { SysmmuHardware, type SysmmuTlbGeometry } from "./hardware.ts";
import { LPAGE_SIZE, SECT_SIZE, SPAGE_SIZE } from "./pte.ts";
import {
  decodeSysmmuVersion,
  makeVersion,
  type SysmmuVersion,
  sysmmuVersionRegister,
  versionName,
} from "./version.ts";

/** Node property: raw MMU_VERSION value (u32). */
export const PROP_SYSMMU_VERSION = "iommukit,sysmmu-version";
/** Node property: v7 CAPA0 register value (u32). */
export const PROP_SYSMMU_CAPA0 = "iommukit,sysmmu-capa0";
/** Node property: v7 CAPA1 register value (u32). */
export const PROP_SYSMMU_CAPA1 = "iommukit,sysmmu-capa1";
/** Node property: TLB sets (power of two). */
export const PROP_SYSMMU_TLB_SETS = "iommukit,sysmmu-tlb-sets";
/** Node property: TLB ways. */
export const PROP_SYSMMU_TLB_WAYS = "iommukit,sysmmu-tlb-ways";

/** MMU_VERSION used when neither the node nor the options give one: v3.3. */
export const DEFAULT_SYSMMU_VERSION: number = sysmmuVersionRegister(3, 3);
/** TLB of v2 units: 64 sets x 8 ways. */
export const SYSMMU_V2_TLB: Readonly<SysmmuTlbGeometry> = Object.freeze({
  sets: 64,
  ways: 8,
});
/** TLB of every other version unless configured: 16 sets x 4 ways. */
export const SYSMMU_DEFAULT_TLB: Readonly<SysmmuTlbGeometry> = Object.freeze({
  sets: 16,
  ways: 4,
});
/** FLPD cache entries of v3.2/v3.3 units unless configured. */
export const SYSMMU_DEFAULT_FLPD_ENTRIES = 32;

/** Options of {@linkcode samsungSysmmu}; each overrides the node property. */
export interface SamsungSysmmuOptions {
  /** Raw MMU_VERSION value for every unit (default: the node's, else v3.3). */
  version?: number;
  /** v7 CAPA0 value (bit 11 = CAPA1 present). Default: node's, else 0. */
  capa0?: number;
  /** v7 CAPA1 value (bit 14 = VM registers). Default: node's, else 0. */
  capa1?: number;
  /** TLB geometry (default v2: 64x8, others 16x4). */
  tlb?: SysmmuTlbGeometry;
  /** FLPD cache entries on v3.2/v3.3: 0 (none) or a power of two up to 4096; default 32. */
  flpdEntries?: number;
  /**
   * Driver: fill level 1 with links to the zero level-2 table and flush the
   * FLPD cache when a link changes (default true). False models the driver
   * before that workaround, to show the stale-fault bug.
   */
  flpdWorkaround?: boolean;
  /** STATUS reads before a unit reports blocked (default 0; > 120 makes the driver give up). */
  blockLatency?: number;
  /** Whether masters start powered (default true). */
  powered?: boolean;
}

function checkCount(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new IommuError(
      "EINVAL",
      `${what} must be a non-negative integer, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Static capabilities of a unit of version `v`.
 *
 * @param v The decoded version.
 * @returns Its caps (page sizes 4 KiB/64 KiB/1 MiB, 32-bit IOVA, 32- or
 * 36-bit PA, IOVA alignment rules of v3.1-v3.3).
 */
export function sysmmuCaps(v: SysmmuVersion): IommuCaps {
  const features: IommuFeature[] = ["deferred-flush", "power-management"];
  if (v.major >= 5) features.unshift("range-invalidation", "write-only");
  const base = {
    topology: "per-device" as const,
    pageSizes: [SPAGE_SIZE, LPAGE_SIZE, SECT_SIZE],
    inputBits: 32,
    outputBits: v.pgShift === 0 ? 32 : 36,
    streamIds: 0,
    features,
  };
  if (v.value === makeVersion(3, 1)) {
    return { ...base, iovaConstraints: { alignment: 0x20000 } };
  }
  if (v.value === makeVersion(3, 2)) {
    return { ...base, iovaConstraints: { alignment: 0x40000 } };
  }
  if (v.value === makeVersion(3, 3)) {
    return {
      ...base,
      iovaConstraints: { alignment: 0x20000, guardGap: 0x20000 },
    };
  }
  return base;
}

/**
 * The Samsung Exynos System MMU plugin. Each probed node becomes a
 * per-device unit named after the node; all units probed by one plugin
 * instance on one RAM share a driver (and one zero level-2 table), so one
 * domain can serve every System MMU of a master.
 *
 * @param options Version and model parameters (override node properties).
 * @returns The plugin (`name` "samsung-sysmmu").
 * @throws {IommuError} from `probe`: `EINVAL` for an unmodelled version, a
 * bad option, or a unit of another page-table generation than the units
 * already probed on that RAM; `ENOMEM` when the zero table cannot be
 * allocated.
 */
export function samsungSysmmu(options: SamsungSysmmuOptions = {}): IommuPlugin {
  const drivers = new Map<PhysicalMemory, SysmmuDriver>();
  return {
    name: "samsung-sysmmu",
    compatible: ["samsung,exynos-sysmmu"],
    iommuCells: 0,
    probe(node: DeviceNode, ctx: ProbeContext): IommuUnit {
      const raw = options.version ?? node.u32(PROP_SYSMMU_VERSION) ??
        DEFAULT_SYSMMU_VERSION;
      const capa0 = options.capa0 ?? node.u32(PROP_SYSMMU_CAPA0) ?? 0;
      const capa1 = options.capa1 ?? node.u32(PROP_SYSMMU_CAPA1) ?? 0;
      const version = decodeSysmmuVersion(raw, capa0, capa1);
      const sets = node.u32(PROP_SYSMMU_TLB_SETS);
      const ways = node.u32(PROP_SYSMMU_TLB_WAYS);
      const tlb = options.tlb ??
        (sets !== undefined && ways !== undefined
          ? { sets, ways }
          : version.major === 2
          ? SYSMMU_V2_TLB
          : SYSMMU_DEFAULT_TLB);
      const hasFlpd = version.value === makeVersion(3, 2) ||
        version.value === makeVersion(3, 3);
      const flpdEntries = hasFlpd
        ? checkCount(
          options.flpdEntries ?? SYSMMU_DEFAULT_FLPD_ENTRIES,
          "flpdEntries",
        )
        : 0;
      const blockLatency = checkCount(
        options.blockLatency ?? 0,
        "blockLatency",
      );
      let driver = drivers.get(ctx.memory);
      if (driver !== undefined && driver.format.shift !== version.pgShift) {
        throw new IommuError(
          "EINVAL",
          `${node.path}: ${
            versionName(version)
          } uses another page-table format than the System MMUs already probed (one generation per system, as in Linux)`,
        );
      }
      const hw = new SysmmuHardware(
        {
          name: node.name,
          version,
          capa0,
          capa1,
          tlb,
          flpdEntries,
          blockLatency,
          powered: options.powered ?? true,
        },
        ctx.memory,
        ctx.reportFault,
      );
      if (driver === undefined) {
        driver = new SysmmuDriver(
          ctx.memory,
          version.pgShift,
          options.flpdWorkaround ?? true,
        );
        drivers.set(ctx.memory, driver);
      }
      const unit: IommuUnit = {
        name: node.name,
        plugin: "samsung-sysmmu",
        caps: sysmmuCaps(version),
        hardware: hw,
        driver,
      };
      driver.addUnit(unit, hw, ctx.reportFault);
      return unit;
    },
  };
}
