/**
 * Run a workload on a platform and collect what happened: per unit (maps,
 * unmaps, pages mapped, TLB hit rate, walks, invalidations, faults), per
 * master (bytes moved, live mappings, IOVA in use, stale accesses in lazy
 * mode), per domain (leaves, page-table occupancy) and the data checks.
 *
 * @module
 */
import type {
  Domain,
  MappingRecord,
  PageTableLevelStats,
} from "../core/mod.ts";
import type { Platform } from "../core/mod.ts";
import type { DmaInvalidationPolicy, DmaMapper } from "./dma.ts";
import { Rng } from "./rng.ts";
import {
  type CheckSummary,
  type Workload,
  WorkloadContext,
  type WorkloadParams,
} from "./workload.ts";

/** Options of {@linkcode simulate}. */
export interface SimulateOptions {
  /** Seed of the random source (default 1). */
  seed?: number;
  /** IOTLB invalidation policy of every mapper (default `strict`). */
  policy?: DmaInvalidationPolicy;
  /** Called as the workload advances. */
  onProgress?: (done: number, total: number) => void;
}

/** TLB and walk counters of a unit, whatever its plugin calls them. */
export interface UnitHardwareStats {
  /** TLB lookups. */
  lookups: number;
  /** TLB hits. */
  hits: number;
  /** TLB misses. */
  misses: number;
  /** Page-table walks. */
  walks: number;
  /** Invalidation operations the unit received. */
  invalidations: number;
  /** Faults raised. */
  faults: number;
}

/** One row of the unit table. */
export interface UnitReport extends UnitHardwareStats {
  /** Unit name. */
  name: string;
  /** Plugin that bound it. */
  plugin: string;
  /** Map calls on domains attached to it. */
  maps: number;
  /** Unmap calls on those domains. */
  unmaps: number;
  /** Leaves (pages of any size) mapped on those domains. */
  pagesMapped: number;
  /** Bytes mapped on those domains. */
  bytesMapped: number;
  /** hits / lookups, or null without lookups. */
  tlbHitRate: number | null;
}

/** One row of the master table. */
export interface MasterReport {
  /** Master name. */
  name: string;
  /** `iommu` (translated) or `direct`. */
  mode: "iommu" | "direct";
  /** Bytes devices read through its ports. */
  bytesRead: number;
  /** Bytes devices wrote through its ports. */
  bytesWritten: number;
  /** bytesRead + bytesWritten. */
  bytesMoved: number;
  /** DMA accesses that completed. */
  accesses: number;
  /** DMA accesses that faulted. */
  faults: number;
  /** Mappings and allocations live at the end. */
  liveMappings: number;
  /** IOVA bytes allocated at the end. */
  iovaInUse: number;
  /** Successful device accesses to unmapped IOVAs (the lazy stale window). */
  staleAccesses: number;
  /** Unmaps still waiting for a flush at the end (lazy). */
  pendingUnmaps: number;
  /** Full IOTLB flushes (lazy): `timerFlushes + sizeFlushes`. */
  flushes: number;
  /** Flushes the simulated flush timer caused (lazy; the workload's time step drives it). */
  timerFlushes: number;
  /** The other flushes (lazy): forced by a full flush queue. */
  sizeFlushes: number;
}

/** One domain (one master's IOVA space). */
export interface DomainReport {
  /** `domain N: master`. */
  label: string;
  /** The master it belongs to. */
  master: string;
  /** Units it is attached to. */
  units: string[];
  /** IOVA width of those units, in bits. */
  inputBits: number;
  /** Leaves in its page tables at the end. */
  leaves: number;
  /** Bytes those leaves map. */
  bytesMapped: number;
  /** Leaves by page size (bytes → count). */
  pageSizes: Record<string, number>;
  /** Page-table occupancy per level. */
  tableStats: PageTableLevelStats[];
}

/** Everything a run produced, as plain data (what `run --json` prints). */
export interface SimulationReport {
  /** Platform name. */
  platform: string;
  /** Workload name. */
  workload: string;
  /** Workload parameters in effect. */
  params: WorkloadParams;
  /** Seed. */
  seed: number;
  /** Invalidation policy. */
  policy: DmaInvalidationPolicy;
  /** Data checks. */
  checks: CheckSummary;
  /** Faults the devices hit. */
  faults: number;
  /** Those faults by reason (`translation`, `permission`, …). */
  faultReasons: Record<string, number>;
  /** Every unit of the platform. */
  units: UnitReport[];
  /** Every master the workload used. */
  masters: MasterReport[];
  /** Every domain the workload used. */
  domains: DomainReport[];
}

/** A finished run: the report plus live handles for dumps and pictures. */
export interface Simulation {
  /** The plain-data report. */
  report: SimulationReport;
  /** The platform, in its final state. */
  platform: Platform;
  /** Masters the workload used and their mappers (domains live on). */
  mappers: { master: string; mapper: DmaMapper }[];
}

const pick = (
  c: Record<string, number>,
  ...names: string[]
): number | undefined => {
  for (const n of names) if (typeof c[n] === "number") return c[n];
  return undefined;
};

/**
 * Read a unit's hardware counters under common names: plugins name their
 * counters freely (`tlbHits`, `iotlb.hits`, …); this maps the known ones.
 * Lookups count every translation (`translations` when the unit has a
 * micro-TLB in front of its IOTLB); hits are lookups that needed no walk.
 *
 * @param c `hardware.counters()` of a unit.
 * @returns The normalised counters (0 where the plugin has none).
 */
export function unitHardwareStats(
  c: Record<string, number>,
): UnitHardwareStats {
  // Misses are lookups that no TLB level (micro-TLB, IOTLB) answered.
  const misses = pick(c, "misses", "tlbMisses", "iotlb.misses") ?? 0;
  const lookups =
    pick(c, "translations", "lookups", "tlbLookups", "iotlb.lookups") ??
      (pick(c, "hits", "tlbHits", "iotlb.hits") ?? 0) + misses;
  const flushes = (c.flushAll ?? 0) + (c.flushEntry ?? 0) +
    (c.flushRange ?? 0);
  return {
    lookups,
    hits: Math.max(0, lookups - misses),
    misses,
    walks: pick(c, "walks") ?? 0,
    invalidations: pick(
      c,
      "invalidations",
      "commands.tlbi",
      "iotlb.invalidations",
    ) ?? flushes,
    faults: pick(c, "faults") ?? 0,
  };
}

/**
 * Leaves grouped by page size.
 *
 * @param leaves Leaves.
 * @returns Page size in bytes (as a string key) → count.
 */
export function pageSizeHistogram(
  leaves: readonly MappingRecord[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of leaves) out[l.pageSize] = (out[l.pageSize] ?? 0) + 1;
  return out;
}

/**
 * Describe a domain.
 *
 * @param label Its label.
 * @param master Its master.
 * @param d The domain.
 * @returns The report row.
 */
export function domainReport(
  label: string,
  master: string,
  d: Domain,
): DomainReport {
  const leaves = d.leaves();
  const units = d.attachments().map((a) => a.unit);
  return {
    label,
    master,
    units: [...new Set(units.map((u) => u.name))],
    inputBits: units[0]?.caps.inputBits ?? 32,
    leaves: leaves.length,
    bytesMapped: leaves.reduce((s, l) => s + l.pageSize, 0),
    pageSizes: pageSizeHistogram(leaves),
    tableStats: d.tableStats(),
  };
}

/**
 * Run `workload` on `platform` and report.
 *
 * @example
 * ```ts
 * import { simulate, workloadByName } from "./mod.ts";
 * import { buildPlatform } from "../core/mod.ts";
 * const platform = buildPlatform({
 *   memory: { base: "0x40000000", size: "0x4000000" },
 *   devices: [{ name: "nic", compatible: ["iommukit,generic-nic"], dmaMaster: true }],
 * }, { plugins: [] });
 * const sim = simulate(platform, workloadByName("net-rx", { packets: 16 }), { seed: 7 });
 * if (sim.report.checks.failed !== 0) throw new Error("data went astray");
 * ```
 *
 * @param platform A freshly built platform (runs change its state).
 * @param workload The workload.
 * @param options Seed, policy, progress callback.
 * @returns The report and live handles.
 * @throws {IommuError} whatever the workload throws (`ENODEV` for a missing
 * master, DMA-API errors for a broken driver sequence).
 */
export function simulate(
  platform: Platform,
  workload: Workload,
  options: SimulateOptions = {},
): Simulation {
  const seed = options.seed ?? 1;
  const policy = options.policy ?? "strict";
  const ctx = new WorkloadContext(
    platform,
    new Rng(seed),
    policy,
    options.onProgress,
  );
  workload.run(ctx);
  const used = ctx.mappers();
  const domains = platform.soc.domains();
  const units: UnitReport[] = platform.units.map((u) => {
    let maps = 0, unmaps = 0, pagesMapped = 0, bytesMapped = 0;
    for (const d of domains) {
      if (!d.attachments().some((a) => a.unit === u.unit)) continue;
      const c = d.counters();
      maps += c.maps;
      unmaps += c.unmaps;
      pagesMapped += c.leavesMapped;
      bytesMapped += c.bytesMapped;
    }
    const hw = unitHardwareStats(u.unit.hardware.counters());
    return {
      name: u.name,
      plugin: u.plugin,
      maps,
      unmaps,
      pagesMapped,
      bytesMapped,
      ...hw,
      tlbHitRate: hw.lookups === 0 ? null : hw.hits / hw.lookups,
    };
  });
  const masters: MasterReport[] = used.map(({ master, mapper }) => {
    let bytesRead = 0, bytesWritten = 0, accesses = 0, faults = 0;
    for (const p of master.master.ports) {
      const c = p.counters();
      bytesRead += c.bytesRead;
      bytesWritten += c.bytesWritten;
      accesses += c.accesses;
      faults += c.faults;
    }
    const s = mapper.stats();
    return {
      name: master.name,
      mode: s.mode,
      bytesRead,
      bytesWritten,
      bytesMoved: bytesRead + bytesWritten,
      accesses,
      faults,
      liveMappings: s.liveMappings,
      iovaInUse: s.iova?.liveBytes ?? 0,
      staleAccesses: s.staleAccesses,
      pendingUnmaps: s.pendingUnmaps,
      flushes: s.flushes,
      timerFlushes: ctx.timerFlushes(mapper),
      sizeFlushes: s.flushes - ctx.timerFlushes(mapper),
    };
  });
  const domainRows: DomainReport[] = [];
  used.forEach(({ master, mapper }, i) => {
    if (mapper.domain !== null) {
      domainRows.push(
        domainReport(
          `domain ${i + 1}: ${master.name}`,
          master.name,
          mapper.domain,
        ),
      );
    }
  });
  return {
    report: {
      platform: platform.name,
      workload: workload.name,
      params: workload.params,
      seed,
      policy,
      checks: ctx.checks,
      faults: Object.values(ctx.faultReasons).reduce((s, n) => s + n, 0),
      faultReasons: { ...ctx.faultReasons },
      units,
      masters,
      domains: domainRows,
    },
    platform,
    mappers: used.map(({ master, mapper }) => ({
      master: master.name,
      mapper,
    })),
  };
}
