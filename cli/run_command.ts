/**
 * `iommukit run`: simulate a workload on a platform and print a table per
 * unit and per master (or one JSON document), optionally an SVG picture.
 *
 * @module
 */
import { formatBytes, renderIovaSvg, type SvgDomain } from "../svg/mod.ts";
import {
  simulate,
  type Simulation,
  type UnitReport,
} from "../workloads/mod.ts";
import type { OptionSpec, ParsedArgs } from "./argv.ts";
import { UsageError } from "./argv.ts";
import {
  asInput,
  type Command,
  EXIT_FAILURE,
  EXIT_OK,
  progressLine,
} from "./command.ts";
import type { CliIo } from "./io.ts";
import { loadPlatformArg, loadPluginArgs, loadWorkloadArg } from "./sources.ts";
import type { IommuPlugin } from "../core/mod.ts";
import { formatCount, percent, renderTable } from "./table.ts";

/** `--plugin`: extra IOMMU plugins from modules. */
export const PLUGIN_OPTION: OptionSpec = {
  name: "plugin",
  type: "string",
  value: "FILE[#EXPORT],…",
  help:
    "also register the plugin(s) a module exports (default export, or #NAME)",
};

/** Options shared by `run` and `dump`. */
export const SIMULATION_OPTIONS: readonly OptionSpec[] = [
  {
    name: "platform",
    type: "string",
    value: "NAME|FILE.dtb|FILE.json",
    help: "built-in platform or a device tree / JSON description",
    default: "exynos4210",
  },
  {
    name: "workload",
    type: "string",
    value: "NAME|FILE.json",
    help: "built-in workload or a JSON workload file",
    default: "video-decode",
  },
  {
    name: "seed",
    type: "number",
    value: "N",
    help: "seed of the workload's random data",
    default: "1",
  },
  {
    name: "strict",
    type: "boolean",
    help: "invalidate the IOTLB on every unmap (default)",
  },
  {
    name: "lazy",
    type: "boolean",
    help: "batch IOTLB invalidations in a flush queue",
  },
  PLUGIN_OPTION,
];

/**
 * Load the platform and workload named by the shared options and run it.
 *
 * @param command Command name (for messages).
 * @param args Parsed arguments.
 * @param io The I/O.
 * @param plugins Extra plugins (from `--plugin`).
 * @returns The finished simulation.
 * @throws {UsageError} for conflicting options or unknown names;
 * `InputError` for malformed inputs; `IommuError` from the run.
 */
export function simulateFromArgs(
  command: string,
  args: ParsedArgs,
  io: CliIo,
  plugins: readonly IommuPlugin[] = [],
): Simulation {
  const o = args.options;
  if (o.strict === true && o.lazy === true) {
    throw new UsageError(command, "--strict and --lazy exclude each other");
  }
  const platformArg = (o.platform as string | undefined) ?? "exynos4210";
  const workloadArg = (o.workload as string | undefined) ?? "video-decode";
  const platform = asInput(() =>
    loadPlatformArg(io, command, platformArg, plugins)
  );
  const workload = asInput(() => loadWorkloadArg(io, command, workloadArg));
  const progress = progressLine(io, `${workload.name} on ${platform.name}`);
  try {
    return simulate(platform, workload, {
      seed: (o.seed as number | undefined) ?? 1,
      policy: o.lazy === true ? "lazy" : "strict",
      onProgress: (d, t) => progress.update(d, t),
    });
  } finally {
    progress.finish();
  }
}

/**
 * The domains of a finished simulation, ready to draw.
 *
 * @param sim The simulation.
 * @returns One entry per domain.
 */
export function svgDomains(sim: Simulation): SvgDomain[] {
  const out: SvgDomain[] = [];
  sim.mappers.forEach(({ master, mapper }, i) => {
    const d = mapper.domain;
    if (d === null) return;
    const unit = d.attachments()[0]?.unit;
    out.push({
      label: `domain ${i + 1}: ${master} (${
        [...new Set(d.attachments().map((a) => a.unit.name))].join(", ")
      })`,
      masters: [master],
      inputBits: unit?.caps.inputBits ?? 32,
      leaves: d.leaves(),
      tableStats: d.tableStats(),
    });
  });
  return out;
}

/** Options of {@linkcode formatReport}. */
export interface ReportOptions {
  /** List idle units too (no maps, unmaps, lookups, invalidations or faults); default false. */
  all?: boolean;
}

/**
 * Whether a unit did nothing during the run (hidden from the unit table
 * unless `--all`).
 *
 * @param u The unit's row.
 * @returns True when it saw no maps, unmaps, lookups, walks, invalidations or faults.
 */
export function isIdleUnit(u: UnitReport): boolean {
  return u.maps === 0 && u.unmaps === 0 && u.lookups === 0 &&
    u.walks === 0 && u.invalidations === 0 && u.faults === 0;
}

/**
 * The text report of a simulation: header, checks, unit, master and
 * domain tables. Idle units are left out of the unit table (with a line
 * saying how many) unless `options.all`.
 *
 * @param sim The simulation.
 * @param options `all` to list idle units.
 * @returns The text, ending with a newline.
 */
export function formatReport(
  sim: Simulation,
  options: ReportOptions = {},
): string {
  const r = sim.report;
  const lines: string[] = [];
  lines.push(
    `platform ${r.platform}, workload ${r.workload}, seed ${r.seed}, ${r.policy} invalidation`,
  );
  const c = r.checks;
  lines.push(
    `data checks: ${c.passed} passed, ${c.failed} failed; device faults: ${r.faults}${
      r.faults === 0
        ? ""
        : ` (${
          Object.entries(r.faultReasons).map(([k, v]) => `${k} ${v}`).join(", ")
        })`
    }`,
  );
  lines.push("", "Units");
  const shown = options.all === true
    ? r.units
    : r.units.filter((u) => !isIdleUnit(u));
  const idle = r.units.length - shown.length;
  lines.push(renderTable(
    [
      "unit",
      "plugin",
      "maps",
      "unmaps",
      "pages mapped",
      "TLB hit rate",
      "walks",
      "invalidations",
      "faults",
    ],
    shown.map((u) => [
      u.name,
      u.plugin,
      u.maps,
      u.unmaps,
      u.pagesMapped,
      percent(u.hits, u.lookups),
      u.walks,
      u.invalidations,
      u.faults,
    ]),
  ));
  if (idle > 0) {
    lines.push(
      `${idle} idle unit${idle === 1 ? "" : "s"} not shown; --all shows them`,
    );
  }
  const lazy = r.policy === "lazy";
  lines.push("", "Masters");
  lines.push(renderTable(
    [
      "master",
      "mode",
      "bytes moved",
      "live mappings",
      "IOVA in use",
      "faults",
      ...(lazy
        ? ["stale accesses", "pending unmaps", "timer flushes", "size flushes"]
        : []),
    ],
    r.masters.map((m) => [
      m.name,
      m.mode,
      formatBytes(m.bytesMoved),
      m.liveMappings,
      formatBytes(m.iovaInUse),
      m.faults,
      ...(lazy
        ? [m.staleAccesses, m.pendingUnmaps, m.timerFlushes, m.sizeFlushes]
        : []),
    ]),
  ));
  if (r.domains.length > 0) {
    lines.push("", "Domains");
    lines.push(renderTable(
      ["domain", "units", "leaves", "mapped", "page sizes", "table memory"],
      r.domains.map((d) => [
        d.label,
        d.units.join(", "),
        d.leaves,
        formatBytes(d.bytesMapped),
        Object.entries(d.pageSizes).map(([s, n]) =>
          `${formatCount(n)} x ${formatBytes(Number(s))}`
        ).join(", ") || "-",
        formatBytes(d.tableStats.reduce((s, t) => s + t.bytes, 0)),
      ]),
    ));
  }
  if (c.failed > 0) {
    lines.push("", "Failed checks");
    for (const f of c.failures) {
      lines.push(
        `  ${f.what}: expected 0x${(f.expected >>> 0).toString(16)}, got ${
          f.actual < 0 ? "a fault" : "0x" + (f.actual >>> 0).toString(16)
        }`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** `iommukit run`. */
export const runCommand: Command = {
  name: "run",
  summary: "simulate a workload on a platform and report per unit and master",
  usage:
    "run [--platform NAME|FILE.dtb|FILE.json] [--workload NAME|FILE] [--seed N] [--strict|--lazy] [--json] [--all] [--svg FILE] [--plugin FILE[#EXPORT]]",
  details:
    "Prints a table per IOMMU unit (maps, unmaps, pages mapped, TLB hit rate, walks,\n" +
    "invalidations, faults), per master (bytes moved, live mappings, IOVA in use; in lazy\n" +
    "mode the stale accesses: device DMA that still went through after unmap, and the\n" +
    "flushes the simulated timer or a full flush queue caused) and per domain. Idle\n" +
    "units are left out unless --all. Exits with 1 when a data check failed or the\n" +
    "simulation hit an error.",
  options: [
    ...SIMULATION_OPTIONS,
    {
      name: "json",
      type: "boolean",
      help: "print the report as one JSON document",
    },
    {
      name: "all",
      type: "boolean",
      help: "also list idle units (no traffic) in the unit table",
    },
    {
      name: "svg",
      type: "string",
      value: "FILE",
      help: "write a picture of every domain's IOVA space and page tables",
    },
  ],
  maxPositionals: 0,
  async run(args: ParsedArgs, io: CliIo): Promise<number> {
    const plugins = await loadPluginArgs(
      io,
      "run",
      args.options.plugin as string | undefined,
    );
    const sim = simulateFromArgs("run", args, io, plugins);
    const svg = args.options.svg as string | undefined;
    if (svg !== undefined) {
      const r = sim.report;
      const doms = svgDomains(sim);
      try {
        io.writeFile(
          svg,
          renderIovaSvg(doms, {
            title:
              `${r.workload} on ${r.platform} (seed ${r.seed}, ${r.policy}): IOVA spaces`,
          }),
        );
      } catch (e) {
        throw new UsageError(
          "run",
          `cannot write ${svg}: ${
            e instanceof Deno.errors.PermissionDenied
              ? "permission denied (run with --allow-write)"
              : (e as Error).message
          }`,
        );
      }
      io.stderr(
        `wrote ${svg} (${doms.length} domain${doms.length === 1 ? "" : "s"})\n`,
      );
    }
    if (args.options.json === true) {
      io.stdout(JSON.stringify(sim.report, null, 2) + "\n");
    } else io.stdout(formatReport(sim, { all: args.options.all === true }));
    return sim.report.checks.failed > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};
