/**
 * `iommukit dump`: run a workload, then walk each domain's page tables from
 * simulated RAM and print them range by range (page size, permissions,
 * physical range), like the kernel's page-table dump.
 *
 * @module
 */
import type {
  Domain,
  MappingRecord,
  PageTableLevelStats,
} from "../core/mod.ts";
import { createDmaMapper } from "../core/dma/mod.ts";
import { formatBytes, protString } from "../svg/mod.ts";
import { IommuError, type Platform, type PlatformMaster } from "../core/mod.ts";
import type { Simulation } from "../workloads/mod.ts";
import { type ParsedArgs, UsageError } from "./argv.ts";
import { asInput, type Command, EXIT_FAILURE, EXIT_OK } from "./command.ts";
import type { CliIo } from "./io.ts";
import { simulateFromArgs, SIMULATION_OPTIONS } from "./run_command.ts";
import { loadPlatformArg, loadPluginArgs } from "./sources.ts";

/**
 * Leaves merged where the IOVAs continue with the same page size and
 * permissions (as the kernel's page-table dump merges entries with equal
 * attributes); the physical side may be contiguous or scattered.
 */
export interface DumpRange {
  /** First IOVA. */
  iova: number;
  /** Bytes. */
  size: number;
  /** Leaf size in bytes. */
  pageSize: number;
  /** Leaves in the range. */
  pages: number;
  /** Physical address of the first leaf. */
  pa: number;
  /** True when the physical range is contiguous too. */
  contiguous: boolean;
  /** Physically contiguous pieces (1 when contiguous). */
  pieces: number;
  /** Protection bits. */
  prot: number;
}

/**
 * Merge leaves into ranges.
 *
 * @param leaves Leaves in IOVA order.
 * @returns The ranges.
 */
export function dumpRanges(leaves: readonly MappingRecord[]): DumpRange[] {
  const out: DumpRange[] = [];
  let lastPa = -1;
  for (const l of leaves) {
    const last = out[out.length - 1];
    if (
      last !== undefined && last.iova + last.size === l.iova &&
      last.pageSize === l.pageSize && last.prot === l.prot
    ) {
      if (lastPa + l.pageSize !== l.pa) {
        last.contiguous = false;
        last.pieces++;
      }
      last.size += l.pageSize;
      last.pages++;
    } else {
      out.push({
        iova: l.iova,
        size: l.pageSize,
        pageSize: l.pageSize,
        pages: 1,
        pa: l.pa,
        contiguous: true,
        pieces: 1,
        prot: l.prot,
      });
    }
    lastPa = l.pa;
  }
  return out;
}

// One permission format for `dump` and the SVG tooltips.
export { protString };

function hexPad(v: number, digits: number): string {
  return "0x" + v.toString(16).padStart(digits, "0");
}

interface DomainDump {
  label: string;
  master: string;
  units: string[];
  inputBits: number;
  ranges: DumpRange[];
  tableStats: PageTableLevelStats[];
}

function describe(label: string, master: string, d: Domain): DomainDump {
  const att = d.attachments();
  return {
    label,
    master,
    units: [...new Set(att.map((a) => a.unit.name))],
    inputBits: att[0]?.unit.caps.inputBits ?? 32,
    ranges: dumpRanges(d.leaves()),
    tableStats: d.tableStats(),
  };
}

/**
 * One domain's dump as text.
 *
 * @param d The domain's description.
 * @returns Lines ending with a newline.
 */
function formatDump(d: DomainDump): string {
  const digits = Math.max(8, Math.ceil(d.inputBits / 4));
  const lines = [
    `---[ ${d.label}: units ${
      d.units.join(", ") || "none"
    }, ${d.inputBits}-bit IOVA ]---`,
  ];
  if (d.ranges.length === 0) lines.push("  (no mappings)");
  const rows = d.ranges.map((r) => [
    `${hexPad(r.iova, digits)}-${hexPad(r.iova + r.size, digits)}`,
    formatBytes(r.size),
    `${r.pages} x ${formatBytes(r.pageSize)}`,
    protString(r.prot),
    r.contiguous
      ? `-> ${hexPad(r.pa, 9)}-${hexPad(r.pa + r.size, 9)}`
      : `-> ${r.pieces} pieces, first at ${hexPad(r.pa, 9)}`,
  ]);
  const widths = [0, 1, 2, 3].map((i) =>
    Math.max(0, ...rows.map((r) => r[i]!.length))
  );
  for (const r of rows) {
    lines.push(
      `${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padStart(widths[1]!)}  ${
        r[2]!.padStart(widths[2]!)
      }  ${r[3]!.padEnd(widths[3]!)}  ${r[4]}`,
    );
  }
  for (const s of d.tableStats) {
    lines.push(
      `  level ${s.level}: ${s.tables} table(s), ${
        formatBytes(s.bytes)
      }, ${s.entriesUsed}/${s.entriesTotal} entries used`,
    );
  }
  return lines.join("\n") + "\n";
}

/** `iommukit dump`. */
export const dumpCommand: Command = {
  name: "dump",
  summary: "walk page tables from simulated RAM and print them range by range",
  usage:
    "dump [--platform NAME|FILE] [--workload NAME|FILE|none] [--seed N] [--strict|--lazy] [--master NAME] [--json] [--plugin FILE[#EXPORT]]",
  details:
    "Runs the workload (or, with --workload none, only sets the platform up), then decodes\n" +
    "every domain's page tables from simulated RAM: each line is a range of IOVAs mapped\n" +
    "with one page size and permission, and where it lands in physical memory (one\n" +
    "contiguous range, or scattered pieces). --master picks one master's domain (by\n" +
    "name, node name or compatible).",
  options: [
    ...SIMULATION_OPTIONS,
    {
      name: "master",
      type: "string",
      value: "NAME",
      help: "only this master's domain",
    },
    { name: "json", type: "boolean", help: "print the ranges as JSON" },
  ],
  maxPositionals: 0,
  async run(args: ParsedArgs, io: CliIo): Promise<number> {
    const o = args.options;
    const plugins = await loadPluginArgs(
      io,
      "dump",
      o.plugin as string | undefined,
    );
    let sim: Simulation | null = null;
    let platform: Platform;
    if (o.workload === "none") {
      if (o.strict === true && o.lazy === true) {
        throw new UsageError("dump", "--strict and --lazy exclude each other");
      }
      const arg = (o.platform as string | undefined) ?? "exynos4210";
      platform = asInput(() => loadPlatformArg(io, "dump", arg, plugins));
    } else {
      sim = simulateFromArgs("dump", args, io, plugins);
      platform = sim.platform;
    }
    const domains: DomainDump[] = [];
    const query = args.options.master as string | undefined;
    if (query !== undefined) {
      // An unknown or ambiguous name is a usage error, reported like an
      // unknown platform or workload (one line, exit 2).
      let pm: PlatformMaster;
      try {
        pm = platform.master(query);
      } catch (e) {
        if (!(e instanceof IommuError)) throw e;
        throw new UsageError(
          "dump",
          e.kind === "ENOENT"
            ? `unknown master "${query}" on platform ${platform.name} (masters: ${
              platform.masters.map((m) => m.name).join(", ") || "none"
            })`
            : e.message,
        );
      }
      const used = sim?.mappers.findIndex((m) => m.master === pm.name) ?? -1;
      // After a workload, only the masters it used have a domain: making one
      // here would show an empty domain the run never had (and switch its
      // unit on), labelled like one of the run's.
      if (sim !== null && used < 0) {
        throw new UsageError(
          "dump",
          `master ${pm.name} took no part in workload ${sim.report.workload}: no domain to dump (masters used: ${
            sim.mappers.map((m) => m.master).join(", ") || "none"
          })`,
        );
      }
      const mapper = used >= 0
        ? sim!.mappers[used]!.mapper
        : createDmaMapper(platform.soc, pm.master);
      if (mapper.domain === null) {
        // The question has no answer on this platform: an input problem,
        // like an unknown master (exit 2), not a failed simulation.
        throw new UsageError(
          "dump",
          `master ${pm.name} has no IOMMU: its DMA addresses are physical`,
        );
      }
      domains.push(
        describe(
          `domain ${used >= 0 ? used + 1 : 1}: ${pm.name}`,
          pm.name,
          mapper.domain,
        ),
      );
    } else if (sim !== null) {
      sim.mappers.forEach(({ master, mapper }, i) => {
        if (mapper.domain !== null) {
          domains.push(
            describe(`domain ${i + 1}: ${master}`, master, mapper.domain),
          );
        }
      });
    }
    if (args.options.json === true) {
      io.stdout(
        JSON.stringify(
          {
            platform: platform.name,
            workload: sim?.report.workload ?? "none",
            seed: sim?.report.seed ?? null,
            policy: sim?.report.policy ?? null,
            domains,
          },
          null,
          2,
        ) + "\n",
      );
    } else {
      const head = sim === null
        ? `platform ${platform.name}, no workload\n`
        : `platform ${platform.name}, workload ${sim.report.workload}, seed ${sim.report.seed}, ${sim.report.policy} invalidation\n`;
      io.stdout(
        head +
          (domains.length === 0
            ? "(no domains)\n"
            : domains.map(formatDump).join("\n")),
      );
    }
    return sim !== null && sim.report.checks.failed > 0
      ? EXIT_FAILURE
      : EXIT_OK;
  },
};
