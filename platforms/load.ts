/**
 * Load a platform with the built-in plugins registered: a built-in platform
 * by name, a DTB, or a JSON description.
 *
 * @module
 */
import { IommuError, type IommuPlugin, type IommuUnit } from "../core/mod.ts";
import { buildPlatform, type Platform } from "../core/mod.ts";
import type { PlatformJson } from "../core/mod.ts";
import {
  GENERIC_IOMMU_NAME,
  genericIommu,
  setStreamBypass,
} from "../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";
import { EXYNOS4210_DTB } from "./exynos4210_dtb.ts";
import { GENERIC_SOC_DTB } from "./generic_soc_dtb.ts";

/** A built-in platform. */
export interface BuiltinPlatform {
  /** Name to load it by. */
  readonly name: string;
  /** One line for listings. */
  readonly description: string;
  /** The DTB. */
  readonly dtb: Uint8Array;
}

/** The built-in platforms, in listing order. */
export const BUILTIN_PLATFORMS: readonly BuiltinPlatform[] = Object.freeze([
  {
    name: "exynos4210",
    description:
      "Samsung Exynos4210: 12 per-device System MMUs (v3.3), MFC on two ports, FIMD, FIMC, G2D, …",
    dtb: EXYNOS4210_DTB,
  },
  {
    name: "generic-soc",
    description:
      "64-bit SoC with one central IOMMU and stream IDs: NIC, two-port GPU, 32-bit DMA, bypass, coherent",
    dtb: GENERIC_SOC_DTB,
  },
]);

/**
 * Fresh instances of the built-in plugins (Samsung System MMU, generic
 * central IOMMU).
 *
 * @returns The plugins.
 */
export function builtinPlugins(): IommuPlugin[] {
  return [samsungSysmmu(), genericIommu()];
}

/**
 * Put the streams of a unit into bypass, for masters marked
 * `iommukit,bypass`. Only the generic IOMMU has a bypass mode; a
 * per-device unit passes addresses through anyway until a domain is
 * attached.
 *
 * @param unit The unit.
 * @param streamIds The streams.
 * @throws {IommuError} `EOPNOTSUPP` for a central unit of another plugin.
 */
export function builtinBypass(
  unit: IommuUnit,
  streamIds: readonly number[],
): void {
  if (unit.plugin === GENERIC_IOMMU_NAME) {
    for (const sid of streamIds) setStreamBypass(unit, sid);
    return;
  }
  if (unit.caps.topology === "central") {
    throw new IommuError(
      "EOPNOTSUPP",
      `unit ${unit.name} (plugin ${unit.plugin}) has no bypass mode iommukit knows`,
    );
  }
}

/** Options of {@linkcode loadPlatform}. */
export interface LoadPlatformOptions {
  /** More plugins, registered after the built-in ones. */
  plugins?: readonly IommuPlugin[];
  /** Register the built-in plugins (default true). */
  builtinPlugins?: boolean;
}

/**
 * Build a platform: a built-in one by name (`exynos4210`, `generic-soc`),
 * DTB bytes, or a JSON description, with the built-in plugins.
 *
 * @example
 * ```ts
 * import { loadPlatform } from "./mod.ts";
 * const p = loadPlatform("exynos4210");
 * if (p.master("codec").ports.length !== 2) throw new Error("MFC has two ports");
 * ```
 *
 * @param source Name, DTB or JSON.
 * @param options Extra plugins.
 * @returns The platform.
 * @throws {IommuError} `ENOENT` for an unknown name; as `buildPlatform`.
 */
export function loadPlatform(
  source: string | Uint8Array | PlatformJson,
  options: LoadPlatformOptions = {},
): Platform {
  let src: Uint8Array | PlatformJson;
  let name: string | undefined;
  if (typeof source === "string") {
    const b = BUILTIN_PLATFORMS.find((x) =>
      x.name.toLowerCase() === source.toLowerCase()
    );
    if (b === undefined) {
      throw new IommuError(
        "ENOENT",
        `no built-in platform named "${source}" (built-in: ${
          BUILTIN_PLATFORMS.map((x) => x.name).join(", ")
        })`,
      );
    }
    src = b.dtb;
    name = b.name;
  } else src = source;
  const plugins = [
    ...(options.builtinPlugins === false ? [] : builtinPlugins()),
    ...(options.plugins ?? []),
  ];
  return buildPlatform(src, {
    plugins,
    configureBypass: builtinBypass,
    ...(name === undefined ? {} : { name }),
  });
}
