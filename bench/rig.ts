/**
 * Shared set-up for the benchmarks: one SoC with one IOMMU unit of a given
 * plugin, a master behind it, and a domain attached to it. Not a benchmark
 * itself (no `_bench` suffix), so `deno bench` does not run it.
 *
 * @module
 */
import {
  createSoc,
  type Domain,
  type IommuUnit,
  type Port,
  type Soc,
  type TlbOptions,
} from "../core/mod.ts";
import {
  samsungSysmmu,
  sysmmuVersionRegister,
} from "../plugins/samsung_sysmmu/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { flatIommu } from "../tests/support/flat_iommu.ts";

/** The plugins the benchmarks compare. */
export type PluginKind = "samsung" | "samsung-v5" | "generic" | "flat";

/** Human name of each kind, used in group names. */
export const PLUGIN_LABEL: Record<PluginKind, string> = {
  samsung: "samsung-sysmmu v3.3",
  "samsung-v5": "samsung-sysmmu v5.0",
  generic: "generic-iommu",
  flat: "flat test plugin",
};

/** Options of {@linkcode rig}. */
export interface RigOptions {
  /** First byte of RAM (default 0x4000_0000). */
  memoryBase?: number;
  /** Bytes of RAM (default 2 GiB; untouched RAM costs nothing). */
  memorySize?: number;
  /** Page sizes the domain may use (default: all of the unit's). */
  pageSizes?: readonly number[];
  /** IOTLB geometry; `{ sets: 0, ways: 0 }` disables it. */
  tlb?: TlbOptions;
  /** generic-iommu walk caches (`[]`-like zero entries disable them). */
  walkCache?: readonly TlbOptions[];
  /** generic-iommu micro TLB (default true). */
  microTlb?: boolean;
  /** Attach the domain (default true). */
  attach?: boolean;
}

/** What a benchmark drives. */
export interface Rig {
  /** The system. */
  soc: Soc;
  /** The IOMMU unit (null for `direct`). */
  unit: IommuUnit;
  /** The domain, attached to the unit. */
  domain: Domain;
  /** The master's port behind the unit. */
  port: Port;
  /** Stream ID the port drives (0 on per-device units). */
  sid: number;
}

/**
 * Build a SoC with one unit of `kind`, a master `dev` behind it and an
 * attached domain.
 *
 * @param kind Which plugin.
 * @param options Memory, page sizes and cache geometry.
 * @returns The pieces.
 */
export function rig(kind: PluginKind, options: RigOptions = {}): Rig {
  const soc = createSoc({
    memory: {
      base: options.memoryBase ?? 0x4000_0000,
      size: options.memorySize ?? 2 ** 31,
    },
  });
  let unit: IommuUnit;
  let sid = 0;
  if (kind === "samsung" || kind === "samsung-v5") {
    soc.use(samsungSysmmu({
      version: kind === "samsung"
        ? sysmmuVersionRegister(3, 3)
        : sysmmuVersionRegister(5, 0),
      ...(options.tlb ? { tlb: options.tlb } : {}),
    }));
    unit = soc.probeUnit({
      name: "mmu",
      compatible: ["samsung,exynos-sysmmu"],
    });
  } else if (kind === "generic") {
    soc.use(genericIommu({
      ...(options.tlb ? { iotlb: options.tlb } : {}),
      ...(options.walkCache ? { walkCache: options.walkCache } : {}),
      ...(options.microTlb === undefined ? {} : { microTlb: options.microTlb }),
    }));
    unit = soc.probeUnit({
      name: "smmu",
      compatible: ["iommukit,generic-iommu"],
    });
    sid = 1;
  } else {
    soc.use(flatIommu());
    unit = soc.probeUnit({ name: "flat", compatible: ["iommukit,flat-iommu"] });
  }
  const master = soc.addMaster({
    name: "dev",
    ports: [{ unit, ...(sid > 0 ? { streamIds: [sid] } : {}) }],
  });
  const domain = soc.createDomain(
    unit,
    options.pageSizes ? { pageSizes: options.pageSizes } : {},
  );
  if (options.attach ?? true) domain.attach(unit, sid > 0 ? [sid] : []);
  return { soc, unit, domain, port: master.ports[0]!, sid };
}

/**
 * `n` scattered 4 KiB frames inside `[base, base + window)`: every other
 * frame, so no two consecutive entries are physically contiguous and
 * nothing coalesces. Frames repeat after `window` bytes (an IOMMU may map one
 * frame many times; this keeps the RAM touched by 1M pages small).
 *
 * @param n Number of frames.
 * @param base First frame's physical address (use {@linkcode dmaWindow}
 * when the frames are written, so they cannot overlap page tables).
 * @param window Bytes of RAM the frames cycle through (default 512 MiB).
 * @returns The frame addresses.
 */
export function scatteredFrames(
  n: number,
  base = 0x4000_0000,
  window = 2 ** 29,
): Float64Array {
  const frames = new Float64Array(n);
  const slots = window / 0x2000;
  for (let i = 0; i < n; i++) frames[i] = base + (i % slots) * 0x2000;
  return frames;
}

/**
 * Allocate a buffer of `bytes` from the SoC's frame allocator, so that DMA
 * into it cannot land on a page table.
 *
 * @param r The rig.
 * @param bytes Size, a power of two.
 * @returns Its physical address.
 */
export function dmaWindow(r: Rig, bytes: number): number {
  return r.soc.memory.frames.alloc(bytes);
}

let liveLazy: { rig: Rig | null } | null = null;

/**
 * A rig built on first use, for benches that run one after another: when
 * a bench asks for its rig, the rig of the previous bench is dropped, so
 * the process holds one rig's tables and RAM at a time (a run of dozens of
 * rigs holding 2 GiB SoCs and 1M-page tables would otherwise measure the
 * garbage collector).
 *
 * @param kind Which plugin.
 * @param options As for {@linkcode rig}.
 * @param prepare Run once on the new rig (for example to warm its tables).
 * @returns A getter for the rig.
 */
export function lazyRig(
  kind: PluginKind,
  options: RigOptions = {},
  prepare: (r: Rig) => void = () => {},
): () => Rig {
  const holder: { rig: Rig | null } = { rig: null };
  return () => {
    if (holder.rig === null) {
      if (liveLazy !== null && liveLazy !== holder) liveLazy.rig = null;
      liveLazy = holder;
      const r = rig(kind, options);
      prepare(r);
      holder.rig = r;
    }
    return holder.rig;
  };
}

/** Sink for results so the JIT cannot drop the work. */
export const sink = { value: 0 };

globalThis.addEventListener("unload", () => {
  if (sink.value === 0.5) console.log(sink.value);
});
