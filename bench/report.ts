/**
 * Run the benchmarks with `deno bench --json` and print, per group, each
 * bench's time, its ratio to the group's baseline (measured in the same
 * run) and, where the name says how many pages (or accesses, operations)
 * one iteration does, the cost of one.
 *
 * Statistic: `deno bench --json` reports min, avg, p75, p99 and max but no
 * median. The figure used is p75 (the median lies between min and p75, and
 * p75 ignores the garbage-collection and scheduler outliers that inflate
 * the average); min is printed beside it.
 *
 * Usage:
 *   deno run -A bench/report.ts                  # every bench/*_bench.ts
 *   deno run -A bench/report.ts bench/map_bench.ts
 *   deno run -A bench/report.ts --json out.json  # keep the raw JSON too
 *   deno run -A bench/report.ts --from out.json  # re-print a saved run
 *   deno run -A bench/report.ts --markdown       # tables for the README
 *   deno run -A bench/report.ts --targets        # the issue's targets, met or not
 *   deno run -A bench/report.ts --from run.json --medians med.json --targets
 *                                 # ... with bench/sampler.ts's medians beside
 *
 * @module
 */

import { medianOf } from "./merge_runs.ts";

/** One bench result as `deno bench --json` prints it (times in ns). */
export interface BenchStats {
  /** Samples taken. */
  n: number;
  /** Fastest sample. */
  min: number;
  /** Slowest sample. */
  max: number;
  /** Mean. */
  avg: number;
  /** Median: only `bench/sampler.ts` reports it. */
  p50?: number;
  /**
   * Each process's median, one entry per process in run order (null where
   * that process lacks the bench), in a `bench/sampler.ts` report (length 1
   * with `--runs 1`); `p50` is their median. Absent in `deno bench`'s.
   */
  p50Runs?: (number | null)[];
  /** 75th percentile. */
  p75: number;
  /** 99th percentile. */
  p99: number;
}

/** One bench of the JSON report. */
export interface BenchRecord {
  /** File URL of the bench module. */
  origin: string;
  /** Group name, if any. */
  group?: string | null;
  /** Bench name. */
  name: string;
  /** Whether it is its group's baseline. */
  baseline: boolean;
  /** Results (one) with `ok` or `failed`. */
  results: { ok?: BenchStats; failed?: unknown }[];
}

/** The whole JSON report. */
export interface BenchReport {
  /** Runtime string. */
  runtime: string;
  /** CPU name. */
  cpu: string;
  /** Every bench. */
  benches: BenchRecord[];
}

/** A printed row. */
export interface Row {
  /** Group. */
  group: string;
  /** Bench name. */
  name: string;
  /** Is it the baseline? */
  baseline: boolean;
  /** Median in ns (NaN when the report has none: `deno bench` gives none). */
  p50: number;
  /**
   * Each sampler process's median in ns, one per process (NaN where it
   * lacks the bench); empty for a report without them.
   */
  p50Runs: number[];
  /** p75 in ns (NaN when the bench failed). */
  p75: number;
  /** min in ns. */
  min: number;
  /** Units (pages, accesses, ...) one iteration does, or 0 when unknown. */
  units: number;
  /** What a unit is ("page", "access", ...). */
  unit: string;
  /** p75 / baseline p75 (1 for the baseline; NaN without one). */
  ratio: number;
  /** Per-unit p75 / baseline per-unit p75 (when both have units). */
  unitRatio: number;
  /** min / baseline min. */
  minRatio: number;
}

// "65,536 pages", "1,000 accesses", "256-page": a count, then what is counted. A size
// such as "4K pages" or "4 KiB pages" is not a count and does not match.
const WORDS =
  "pages|page|accesses|translations|operations|ops|pairs|lookups|hits|misses|inserts";
const GROUP_COUNT_RE = new RegExp(`(?:^|[^\\w.])(\\d[\\d,]*)[ -](${WORDS})\\b`);
// In a bench name the count must lead ("1,024 pages"), so that a detail
// such as "(16 pages round robin)" is not taken for the work done.
const NAME_COUNT_RE = new RegExp(`^(\\d[\\d,]*) (${WORDS})\\b`);
// "256 x alloc+free ...": 256 operations, when nothing better is named.
const TIMES_RE = /^(\d[\d,]*) ?[x×] /;

/**
 * Units of work named in `text`: "65,536 pages" → 65536 "page",
 * "1,000 accesses" → 1000 "access".
 *
 * @param text A bench or group name.
 * @param leading Only a count at the very start counts (bench names).
 * @returns The count and unit, or count 0.
 */
export function unitsIn(
  text: string,
  leading = false,
): { count: number; unit: string } {
  const m = (leading ? NAME_COUNT_RE : GROUP_COUNT_RE).exec(text);
  if (m === null) return { count: 0, unit: "" };
  const count = Number(m[1]!.replaceAll(",", ""));
  const word = m[2]!;
  const unit = word === "accesses"
    ? "access"
    : word === "misses"
    ? "miss"
    : word === "ops"
    ? "op"
    : word.replace(/s$/, "");
  return { count, unit };
}

/**
 * Rows of a report: ratios to each group's baseline, per-unit figures.
 *
 * @param report Parsed `deno bench --json` output.
 * @returns One row per bench, in report order.
 */
export function rows(report: BenchReport): Row[] {
  const out: Row[] = [];
  for (const b of report.benches) {
    const ok = b.results[0]?.ok;
    // A bench's own count wins over its group's.
    let u = unitsIn(b.name, true);
    if (u.count === 0) u = unitsIn(b.group ?? "");
    if (u.count === 0) {
      const m = TIMES_RE.exec(b.name);
      if (m !== null) {
        u = { count: Number(m[1]!.replaceAll(",", "")), unit: "op" };
      }
    }
    out.push({
      group: b.group ?? "(no group)",
      name: b.name,
      baseline: b.baseline,
      p50: ok?.p50 ?? NaN,
      p50Runs: (ok?.p50Runs ?? []).map((x) => x ?? NaN),
      p75: ok ? ok.p75 : NaN,
      min: ok ? ok.min : NaN,
      units: u.count,
      unit: u.unit,
      ratio: NaN,
      unitRatio: NaN,
      minRatio: NaN,
    });
  }
  const groups = new Map<string, Row[]>();
  for (const r of out) {
    const g = groups.get(r.group) ?? [];
    g.push(r);
    groups.set(r.group, g);
  }
  for (const g of groups.values()) {
    const base = g.find((r) => r.baseline);
    if (base === undefined) continue;
    for (const r of g) {
      r.ratio = r.p75 / base.p75;
      r.minRatio = r.min / base.min;
      if (r.units > 0 && base.units > 0) {
        r.unitRatio = (r.p75 / r.units) / (base.p75 / base.units);
      }
    }
  }
  return out;
}

/**
 * Format nanoseconds for humans.
 *
 * @param ns Nanoseconds.
 * @returns e.g. "7.9 ns", "1.52 µs", "20.3 ms".
 */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return "—";
  if (ns < 1e3) return `${ns < 10 ? ns.toFixed(2) : ns.toFixed(1)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(2)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

function fmtRatio(ratio: number, baseline: boolean): string {
  if (!Number.isFinite(ratio)) return "—";
  if (baseline) return "baseline";
  // Below 1: the bench is faster than the baseline; say by how much.
  return ratio < 1
    ? `${(1 / ratio).toFixed(1)}x faster`
    : `${ratio.toFixed(2)}x slower`;
}

function perUnit(ns: number, r: Row): string {
  if (r.units === 0) return "";
  return `${fmtNs(ns / r.units)}/${r.unit}`;
}

/**
 * Print rows as plain text or markdown tables, one per group. Each row:
 * p75 and min, the ratio of each to the baseline's, and both per unit of
 * work; a group whose benches do different amounts of work (scaling) also
 * gets the per-unit p75 relative to the baseline's.
 *
 * @param all The rows.
 * @param markdown Markdown tables instead of aligned text.
 * @returns The text.
 */
export function render(all: Row[], markdown: boolean): string {
  const lines: string[] = [];
  const groups = new Map<string, Row[]>();
  for (const r of all) {
    const g = groups.get(r.group) ?? [];
    g.push(r);
    groups.set(r.group, g);
  }
  const head = [
    "bench",
    "p75",
    "min",
    "p75 vs baseline",
    "min vs baseline",
    "p75 per unit",
    "min per unit",
    "per unit vs baseline",
  ];
  for (const [name, g] of groups) {
    const counted = g.filter((r) => r.units > 0);
    const scaling = g.some((r) => Number.isFinite(r.unitRatio)) &&
      new Set(counted.map((r) => r.units)).size > 1;
    const cols = scaling ? 8 : 7;
    const cells = (r: Row): string[] =>
      [
        r.name,
        fmtNs(r.p75),
        fmtNs(r.min),
        fmtRatio(r.ratio, r.baseline),
        fmtRatio(r.minRatio, r.baseline),
        perUnit(r.p75, r),
        perUnit(r.min, r),
        Number.isFinite(r.unitRatio) ? `${r.unitRatio.toFixed(2)}x` : "",
      ].slice(0, cols);
    if (markdown) {
      lines.push(`**${name}**`, "");
      lines.push(`| ${head.slice(0, cols).join(" | ")} |`);
      lines.push(`| --- |${" ---: |".repeat(cols - 1)}`);
      for (const r of g) lines.push(`| ${cells(r).join(" | ")} |`);
      lines.push("");
    } else {
      lines.push(`== ${name}`);
      const table = [head.slice(0, cols), ...g.map(cells)];
      const widths = table[0]!.map((_, i) =>
        Math.max(...table.map((c) => c[i]!.length))
      );
      for (const c of table) {
        lines.push(
          "  " +
            c.map((x, i) =>
              i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!)
            ).join("  "),
        );
      }
    }
  }
  return lines.join("\n");
}

/** One target of the performance issue, checked against a report. */
export interface Target {
  /** What the issue asks. */
  label: string;
  /** Group name pattern; a capture group, if any, names the plugin. */
  group: RegExp;
  /** Bench name pattern. */
  name: RegExp;
  /**
   * What is compared: ns per unit, the speed-up over the baseline
   * (baseline / bench), the slow-down against it (bench / baseline), or
   * the per-unit cost relative to the baseline's.
   */
  measure: "perUnit" | "speedup" | "slowdown" | "unitRatio";
  /** The bound. */
  limit: number;
  /** Whether the measure must be at most (`"max"`) or at least the bound. */
  kind: "max" | "min";
}

/** The targets of the performance issue, in its order. */
export const TARGETS: Target[] = [
  {
    label: "batched map ≤ 8 ns/page",
    group: /^map 65,536 pages \(scattered 4 KiB frames\) · (.+)$/,
    name: /^one mapPages\(\) call$/,
    measure: "perUnit",
    limit: 8,
    kind: "max",
  },
  {
    label: "batched map ≥ 10x faster than per-page calls",
    group: /^map 65,536 pages \(scattered 4 KiB frames\) · (.+)$/,
    name: /^one mapPages\(\) call$/,
    measure: "speedup",
    limit: 10,
    kind: "min",
  },
  {
    label: "batched unmap ≤ 6 ns/page",
    group: /^unmap 65,536 pages \(scattered 4 KiB frames\) · (.+)$/,
    name: /^one unmap\(\) call, one IOTLB sync$/,
    measure: "perUnit",
    limit: 6,
    kind: "max",
  },
  {
    label: "batched unmap ≥ 10x faster than per-page calls",
    group: /^unmap 65,536 pages \(scattered 4 KiB frames\) · (.+)$/,
    name: /^one unmap\(\) call, one IOTLB sync$/,
    measure: "speedup",
    limit: 10,
    kind: "min",
  },
  {
    label: "translate, IOTLB hit ≤ 10 ns",
    group: /^translate\(\) alone \(1,000 accesses\) · (.+)$/,
    // generic-iommu has two TLB levels: its micro TLB and the main IOTLB
    // behind it; both hit rows are checked.
    name: /^(IOTLB hit|micro TLB hit .*|main IOTLB hit .*)$/,
    measure: "perUnit",
    limit: 10,
    kind: "max",
  },
  {
    label: "translate, miss + full walk ≤ 40 ns",
    group: /^translate\(\) alone \(1,000 accesses\) · (.+)$/,
    name: /^IOTLB miss \+ (walk|full 4-level walk.*)$/,
    measure: "perUnit",
    limit: 40,
    kind: "max",
  },
  {
    label: "64-byte DMA write end to end ≤ 60 ns",
    group: /^DMA write through a port \(1,000 accesses\) · (.+)$/,
    name: /^64 bytes, IOTLB hit$/,
    measure: "perUnit",
    limit: 60,
    kind: "max",
  },
  {
    label: "IOVA alloc+free, cache hit ≤ 40 ns",
    group: /^iova cache$/,
    name: /rcache hit/,
    measure: "perUnit",
    limit: 40,
    kind: "max",
  },
  {
    label: "IOVA alloc+free at 1M live ranges ≤ 3x 1K",
    group: /^iova fragmented$/,
    name: /1M live ranges/,
    measure: "slowdown",
    limit: 3,
    kind: "max",
  },
  {
    label: "mapSg + unmapSg ≤ 25 ns/page",
    group: /^(generic|samsung): 256-page sg list$/,
    name: /mapSg\+unmapSg, (strict|lazy)$/,
    measure: "perUnit",
    limit: 25,
    kind: "max",
  },
  {
    label: "batched map per page at 1M ≤ 1.5x 1K",
    group: /^mapPages\(\) cost per page as the batch grows · (.+)$/,
    name: /^1,048,576 pages$/,
    measure: "unitRatio",
    limit: 1.5,
    kind: "max",
  },
];

function measure(
  t: Target,
  r: Row,
  base: Row | undefined,
  stat: "p50" | "p75" | "min",
): number {
  const v = r[stat];
  if (t.measure === "perUnit") return r.units > 0 ? v / r.units : NaN;
  if (base === undefined) return NaN;
  // Merged sampler processes: a ratio is taken within each process (bench
  // and baseline sampled in the same run), then the median of those.
  if (stat === "p50") {
    const each = perProcess(t, r, base);
    if (each.length > 1) return medianOf(each);
  }
  return ratioOf(t, r, base, v, base[stat]);
}

function ratioOf(t: Target, r: Row, base: Row, v: number, b: number): number {
  if (t.measure === "speedup") return b / v;
  if (t.measure === "slowdown") return v / b;
  return base.units > 0 && r.units > 0 ? (v / r.units) / (b / base.units) : NaN;
}

/**
 * Each merged process's measure, lowest first: per unit, or a ratio to the
 * baseline of the same process (processes lacking either are left out).
 */
function perProcess(t: Target, r: Row, base: Row | undefined): number[] {
  let each: number[];
  if (t.measure === "perUnit") {
    each = r.units > 0 ? r.p50Runs.map((x) => x / r.units) : [];
  } else if (
    base === undefined || base.p50Runs.length !== r.p50Runs.length
  ) each = [];
  else {
    each = r.p50Runs.map((x, i) => ratioOf(t, r, base, x, base.p50Runs[i]!));
  }
  return each.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
}

function fmtMeasure(t: Target, v: number): string {
  if (!Number.isFinite(v)) return "—";
  if (t.measure === "perUnit") return fmtNs(v);
  return `${v.toFixed(2)}x`;
}

// A median with, when several processes were merged, each one's figure.
function fmtMedian(t: Target, v: number, runs: number[]): string {
  const m = fmtMeasure(t, v);
  if (runs.length < 2) return m;
  return `${m} (${runs.map((x) => fmtMeasure(t, x)).join(", ")})`;
}

/**
 * The issue's targets against a run, as a markdown table: each matching
 * bench, its p75 and min measure, and whether p75 meets the target (and, if
 * not, whether min does, and by how much p75 misses).
 *
 * The issue's targets are medians, which `deno bench` does not report:
 * `bench/sampler.ts` measures them. Given its rows as `sampled`, each
 * target also gets the sampler's median and p75 (its p75 beside `deno
 * bench`'s shows how far the two harnesses agree on that bench) and a
 * verdict on the median. A report that is itself the sampler's (rows with
 * medians) gets its median, p75 and min with a verdict on each of the
 * first two.
 *
 * Where the sampler merged several processes (`p50Runs`), the median cell
 * is the median of each process's figure, a ratio taken within each
 * process (bench and baseline of the same run), and each process's figure
 * follows in brackets, lowest first. Its p75 and min are the merged ones
 * (median of the processes' p75, lowest min), so their ratios may pair
 * figures of two processes.
 *
 * @param all Rows of a report.
 * @param sampled Rows of a `bench/sampler.ts` report of the same benches.
 * @returns Markdown.
 */
export function renderTargets(all: Row[], sampled?: Row[]): string {
  const own = sampled === undefined && all.some((r) => Number.isFinite(r.p50));
  const lines = own
    ? [
      "| target | where | median | p75 | min | verdict (median) | verdict (p75) |",
      "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    : sampled !== undefined
    ? [
      "| target | where | p75 | min | median (sampler) | p75 (sampler) | verdict (p75) | verdict (median) |",
      "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    : [
      "| target | where | p75 | min | verdict (p75) |",
      "| --- | --- | ---: | ---: | --- |",
    ];
  for (const t of TARGETS) {
    const ok = (v: number): boolean =>
      t.kind === "max" ? v <= t.limit : v >= t.limit;
    const verdict = (v: number, m: number): string => {
      if (!Number.isFinite(v)) return "no data";
      if (ok(v)) return "met";
      const by = t.kind === "max" ? v / t.limit : t.limit / v;
      const how = by < 2
        ? `${Math.round((by - 1) * 100)}%`
        : `${by.toFixed(1)}x`;
      return `missed by ${how}${ok(m) ? " (min meets it)" : ""}`;
    };
    for (const r of all) {
      const g = t.group.exec(r.group);
      if (g === null || !t.name.test(r.name)) continue;
      const base = all.find((b) => b.group === r.group && b.baseline);
      const p = measure(t, r, base, "p75");
      const m = measure(t, r, base, "min");
      const who = g[1] ?? "";
      const where = who === "" || r.name.startsWith(who)
        ? r.name
        : `${who}, ${r.name}`;
      const cells = [t.label, where];
      if (own) {
        const h = measure(t, r, base, "p50");
        cells.push(fmtMedian(t, h, perProcess(t, r, base)));
        cells.push(fmtMeasure(t, p), fmtMeasure(t, m));
        cells.push(verdict(h, m), verdict(p, m));
      } else if (sampled !== undefined) {
        const s = sampled.find((x) => x.group === r.group && x.name === r.name);
        const sBase = sampled.find((x) => x.group === r.group && x.baseline);
        const h = s === undefined ? NaN : measure(t, s, sBase, "p50");
        const sp = s === undefined ? NaN : measure(t, s, sBase, "p75");
        cells.push(fmtMeasure(t, p), fmtMeasure(t, m));
        cells.push(
          s === undefined ? "—" : fmtMedian(t, h, perProcess(t, s, sBase)),
          fmtMeasure(t, sp),
        );
        cells.push(verdict(p, m), verdict(h, m));
      } else {
        cells.push(fmtMeasure(t, p), fmtMeasure(t, m), verdict(p, m));
      }
      lines.push(`| ${cells.join(" | ")} |`);
    }
  }
  return lines.join("\n");
}

async function runBench(files: string[]): Promise<BenchReport> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["bench", "-A", "--json", ...files],
    stdout: "piped",
    stderr: "inherit",
  });
  const { code, stdout } = await cmd.output();
  const text = new TextDecoder().decode(stdout);
  const start = text.indexOf("{");
  if (start < 0) throw new Error(`deno bench printed no JSON (exit ${code})`);
  return JSON.parse(text.slice(start)) as BenchReport;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const take = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
  };
  const flag = (name: string): boolean => {
    const i = args.indexOf(name);
    if (i >= 0) args.splice(i, 1);
    return i >= 0;
  };
  const markdown = flag("--markdown");
  const targets = flag("--targets");
  const from = take("--from");
  const save = take("--json");
  const mediansFrom = take("--medians");
  const report = from !== undefined
    ? JSON.parse(await Deno.readTextFile(from)) as BenchReport
    : await runBench(args);
  if (save !== undefined) {
    await Deno.writeTextFile(save, JSON.stringify(report, null, 2));
  }
  console.log(
    `${report.runtime} · ${report.cpu} · ${navigator.hardwareConcurrency} cores · ${
      new Date().toISOString().slice(0, 16)
    }Z · statistic: p75 (min beside)`,
  );
  const all = rows(report);
  const sampled = mediansFrom === undefined ? undefined : rows(
    JSON.parse(await Deno.readTextFile(mediansFrom)) as BenchReport,
  );
  console.log(targets ? renderTargets(all, sampled) : render(all, markdown));
}
