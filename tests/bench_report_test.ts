// bench/report.ts: counts read from bench names, ratios to each group's
// baseline, and the targets judged from a report (no benchmark is
// run here: the report is made up).
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  type BenchRecord,
  type BenchReport,
  render,
  renderTargets,
  rows,
  unitsIn,
} from "../bench/report.ts";
import { type SampledStats, sampleFile } from "../bench/sampler.ts";
import { medianOf, mergeRuns } from "../bench/merge_runs.ts";

Deno.test("unitsIn reads counts, not page sizes", () => {
  assertEquals(unitsIn("map 65,536 pages (scattered 4 KiB frames)"), {
    count: 65536,
    unit: "page",
  });
  assertEquals(unitsIn("translate() alone (1,000 accesses) · x"), {
    count: 1000,
    unit: "access",
  });
  assertEquals(unitsIn("samsung: 256-page sg list"), {
    count: 256,
    unit: "page",
  });
  assertEquals(unitsIn("1000 misses, other context"), {
    count: 1000,
    unit: "miss",
  });
  // Sizes are not counts.
  assertEquals(unitsIn("hit, 4K pages, LRU").count, 0);
  assertEquals(unitsIn("forced 4 KiB pages").count, 0);
  assertEquals(unitsIn("map 1.5 pages").count, 0);
  // In a bench name the count must lead.
  assertEquals(unitsIn("IOTLB hits (16 pages round robin)", true).count, 0);
  assertEquals(unitsIn("1,024 pages", true).count, 1024);
});

function bench(
  group: string,
  name: string,
  p75: number,
  min: number,
  baseline = false,
): BenchRecord {
  return {
    origin: "file:///x_bench.ts",
    group,
    name,
    baseline,
    results: [{ ok: { n: 10, min, max: p75 * 2, avg: p75, p75, p99: p75 } }],
  };
}

const MAP = "map 65,536 pages (scattered 4 KiB frames) · samsung-sysmmu v3.3";
const GROW = "mapPages() cost per page as the batch grows · generic-iommu";

const REPORT: BenchReport = {
  runtime: "Deno/test",
  cpu: "test",
  benches: [
    bench(
      MAP,
      "65,536 × map(), one call per page",
      13_107_200,
      6_553_600,
      true,
    ),
    bench(MAP, "one mapPages() call", 655_360, 524_288),
    bench(GROW, "1,024 pages", 10_240, 8_192, true),
    bench(GROW, "1,048,576 pages", 20_971_520, 8_388_608),
    bench("iova cache", "256 x alloc+free 8 KiB, rcache hit", 12_800, 9_000),
    {
      origin: "file:///x_bench.ts",
      group: "broken",
      name: "fails",
      baseline: true,
      results: [{ failed: "boom" }],
    },
  ],
};

Deno.test("rows: ratios to the baseline and per-unit figures", () => {
  const r = rows(REPORT);
  const batched = r.find((x) => x.name === "one mapPages() call")!;
  assertEquals(batched.units, 65536);
  assertEquals(batched.ratio, 655_360 / 13_107_200);
  assertEquals(batched.minRatio, 524_288 / 6_553_600);
  assertEquals(batched.p75 / batched.units, 10);
  const big = r.find((x) => x.name === "1,048,576 pages")!;
  // 20 ns per page against 10 ns per page at 1K.
  assertEquals(big.unitRatio, 2);
  const iova = r.find((x) => x.group === "iova cache")!;
  assertEquals([iova.units, iova.unit], [256, "op"]);
  assert(Number.isNaN(iova.ratio), "no baseline in its group");
  const failed = r.find((x) => x.name === "fails")!;
  assert(Number.isNaN(failed.p75));
  const text = render(r, false);
  assert(text.includes("20.0x faster"), text);
  assert(render(r, true).includes("| one mapPages() call | 655.36 µs |"));
});

Deno.test("renderTargets judges p75, says by how much and whether min meets it", () => {
  const t = renderTargets(rows(REPORT));
  const line = (label: string, where: string): string =>
    t.split("\n").find((l) => l.includes(label) && l.includes(where))!;
  // 10 ns/page (p75) and 8 ns/page (min) against 8 ns.
  assert(
    line("batched map ≤ 8 ns/page", "samsung").endsWith(
      "| 10.0 ns | 8.00 ns | missed by 25% (min meets it) |",
    ),
    t,
  );
  assert(line("≥ 10x faster", "samsung").endsWith("| 20.00x | 12.50x | met |"));
  // Per page 20 ns vs 10 ns (p75) and 8 ns vs 8 ns (min), limit 1.5x.
  assert(
    line("1M ≤ 1.5x 1K", "generic").endsWith(
      "| 2.00x | 1.00x | missed by 33% (min meets it) |",
    ),
    t,
  );
  assert(
    line("cache hit ≤ 40 ns", "rcache").endsWith(
      "| 50.0 ns | 35.2 ns | missed by 25% (min meets it) |",
    ),
    t,
  );
});

Deno.test("the translate-hit target covers both TLB levels of generic-iommu", () => {
  const group = (plugin: string): string =>
    `translate() alone (1,000 accesses) · ${plugin}`;
  const t = renderTargets(rows({
    runtime: "Deno/test",
    cpu: "test",
    benches: [
      bench(group("samsung-sysmmu v3.3"), "IOTLB hit", 9_000, 8_000, true),
      bench(
        group("generic-iommu"),
        "micro TLB hit (16 pages cycling)",
        8_000,
        7_000,
        true,
      ),
      bench(
        group("generic-iommu"),
        "main IOTLB hit (micro TLB off)",
        12_000,
        11_000,
      ),
      bench(group("generic-iommu"), "IOTLB disabled (walk every access)", 1, 1),
    ],
  }));
  const hits = t.split("\n").filter((l) => l.includes("IOTLB hit ≤ 10 ns"));
  assertEquals(hits.length, 3, t);
  assert(hits.some((l) => l.includes("micro TLB hit") && l.endsWith("met |")));
  assert(
    hits.some((l) =>
      l.includes("main IOTLB hit") && l.includes("| 12.0 ns | 11.0 ns |") &&
      l.includes("missed by 20%")
    ),
    t,
  );
});

Deno.test("batched-unmap targets judge the batched bench, not a v3.3 vs v5.0 comparison", () => {
  const group = "unmap 65,536 pages (scattered 4 KiB frames)";
  const t = renderTargets(rows({
    runtime: "Deno/test",
    cpu: "test",
    benches: [
      bench(
        `${group} · generic-iommu`,
        "65,536 × unmap(), one call per page",
        6_553_600,
        6_553_600,
        true,
      ),
      bench(
        `${group} · generic-iommu`,
        "one unmap() call, one IOTLB sync",
        131_072,
        131_072,
      ),
      bench(
        `${group} · samsung_bench`,
        "one unmap() call, one FLUSH_ALL (no range flush) (v3.3)",
        100_000,
        100_000,
        true,
      ),
      bench(
        `${group} · samsung_bench`,
        "one unmap() call, one range flush (v5.0)",
        100_000,
        100_000,
      ),
    ],
  }));
  const lines = t.split("\n").filter((l) => l.includes("batched unmap"));
  assertEquals(lines.length, 2, t);
  assert(
    lines.every((l) => l.includes("generic-iommu") && l.endsWith("met |")),
    t,
  );
});

// The IOVA scaling group at 1K and 1M live ranges: [p50 (none when
// undefined), p75, min] of each, in ns.
function iovaReport(
  k1: [number | undefined, number, number],
  m1: [number | undefined, number, number],
): BenchReport {
  const group = "iova fragmented";
  const one = (
    name: string,
    baseline: boolean,
    [p50, p75, min]: [number | undefined, number, number],
  ): BenchRecord => ({
    origin: "file:///x_bench.ts",
    group,
    name,
    baseline,
    results: [{
      ok: {
        n: 10,
        min,
        max: p75 * 2,
        avg: p75,
        ...(p50 === undefined ? {} : { p50 }),
        p75,
        p99: p75,
      },
    }],
  });
  return {
    runtime: "Deno/test",
    cpu: "test",
    benches: [
      one("32 x random alloc+free, 1K live ranges", true, k1),
      one("32 x random alloc+free, 1M live ranges", false, m1),
    ],
  };
}

Deno.test("with medians (bench/sampler.ts), renderTargets judges the median first", () => {
  const t = renderTargets(
    rows(iovaReport([1_000, 1_100, 900], [2_900, 3_520, 2_600])),
  );
  const lines = t.split("\n");
  assert(lines[0]!.includes("| median | p75 | min | verdict (median) |"), t);
  const line = lines.find((l) => l.includes("1M live ranges"))!;
  // 2.90x median, 3.20x p75, 2.89x min against 3x.
  assert(
    line.endsWith(
      "| 2.90x | 3.20x | 2.89x | met | missed by 7% (min meets it) |",
    ),
    t,
  );
  // Without medians, the table keeps its p75 form.
  assert(!renderTargets(rows(REPORT)).includes("median"));
});

Deno.test("renderTargets puts the sampler's median and p75 beside deno bench's figures", () => {
  const t = renderTargets(
    rows(iovaReport([undefined, 1_000, 900], [undefined, 3_200, 2_600])),
    rows(iovaReport([1_000, 1_000, 900], [2_900, 3_520, 2_600])),
  );
  const lines = t.split("\n");
  assert(lines[0]!.includes("| median (sampler) | p75 (sampler) |"), t);
  const line = lines.find((l) => l.includes("1M live ranges"))!;
  // deno bench: 3.20x p75, 2.89x min; sampler: 2.90x median, 3.52x p75.
  assert(
    line.endsWith(
      "| 3.20x | 2.89x | 2.90x | 3.52x | missed by 7% (min meets it) | met |",
    ),
    t,
  );
});

Deno.test("sampleFile times every bench a file declares, one record each", async () => {
  const real = Deno.bench;
  const records = await sampleFile(
    new URL("./fixtures/sampler_benches.ts", import.meta.url).pathname,
    20,
    60,
  );
  assert(Deno.bench === real, "the real Deno.bench is put back");
  assertEquals(
    records.map((r) => [r.group, r.name, r.baseline]),
    [
      ["fixture", "timed run", true],
      ["fixture", "fixed count, explicit timers", false],
      ["fixture", "fresh memory", false],
      [null, "no group", false],
    ],
  );
  for (const r of records) {
    const ok = r.results[0]!.ok!;
    assert(ok.n >= 7, `${r.name}: ${ok.n} samples`);
    assert(
      ok.min <= ok.p50! && ok.p50! <= ok.p75 && ok.p75 <= ok.p99 &&
        ok.p99 <= ok.max,
      `${r.name}: ${JSON.stringify(ok)}`,
    );
  }
  // As under deno bench: a bench that sets n gets n samples after its
  // 10 ms, and one of 3 ms a call is timed from b.start() to b.end() only.
  const fixed = records[1]!.results[0]!.ok!;
  assert(fixed.n >= 7 + 1, `${fixed.n} samples`);
  assert(fixed.p50! < 1.5e6, `median ${fixed.p50} ns of an empty region`);
  const r = rows({ runtime: "x", cpu: "x", benches: records });
  assert(r.every((x) => Number.isFinite(x.p50)));
  // Page faults per call (Linux): 256 first touches for the bench that
  // writes 1 MiB of fresh memory, next to none for a loop over a number.
  if (Deno.build.os === "linux") {
    const faults = records.map((r) =>
      (r.results[0]!.ok as SampledStats).faultsPerCall
    );
    assert(faults.every((f) => f !== undefined && f >= 0), `${faults}`);
    // One fault per fresh base page: 256 with 4 KiB pages. Transparent huge
    // pages for every mapping ("always") or larger base pages make fewer.
    const pageBytes = basePageBytes();
    if (pageBytes === 4096 && !hugePagesAlways()) {
      assert(faults[2]! >= 128, `fresh memory: ${faults[2]} faults per call`);
    } else {
      assert(faults[2]! > faults[0]!, `fresh memory: ${faults[2]} faults`);
    }
    assert(faults[0]! < 1, `timed run: ${faults[0]} faults per call`);
    // Runqueue wait: a number of nanoseconds per call, at least 0.
    const waits = records.map((r) =>
      (r.results[0]!.ok as SampledStats).waitPerCall
    );
    assert(waits.every((w) => w !== undefined && w >= 0), `${waits}`);
  }
});

// Run bench/sampler.ts in a process of its own: exit code, stdout, stderr.
async function run(
  ...args: string[]
): Promise<{ code: number; out: string; err: string }> {
  const sampler = new URL("../bench/sampler.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", sampler, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

Deno.test("bench/sampler.ts: --help prints its usage; an unknown option or a --json without a file is refused, not taken for a bench file", async () => {
  const help = await run("--help");
  assertEquals(help.code, 0);
  assert(help.out.startsWith("Usage:"), help.out);
  const bad = await run("--bogus");
  assertEquals(bad.code, 2);
  assert(bad.err.includes("unknown option --bogus"), bad.err);
  const noFile = await run("--json");
  assertEquals(noFile.code, 2);
  assert(noFile.err.includes("--json needs a file name"), noFile.err);
});

// The host's base page size in bytes, from the kernel's account of this
// process's first mapping (0 when it cannot be read).
function basePageBytes(): number {
  try {
    const smaps = Deno.readTextFileSync("/proc/self/smaps");
    const kb = /KernelPageSize:\s+(\d+) kB/.exec(smaps)?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

// Whether transparent huge pages back every anonymous mapping.
function hugePagesAlways(): boolean {
  try {
    return Deno.readTextFileSync(
      "/sys/kernel/mm/transparent_hugepage/enabled",
    ).includes("[always]");
  } catch {
    return false;
  }
}

Deno.test("mergeRuns: per bench, the median of the processes' medians, the lowest min, each process's median kept", () => {
  const stats = (
    p50: number,
    min: number,
    extra: Partial<SampledStats> = {},
  ) => ({
    ok: {
      n: 10,
      min,
      max: p50 * 3,
      avg: p50 * 1.1,
      p50,
      p75: p50 * 1.2,
      p99: p50 * 2,
      ...extra,
    },
  });
  const rec = (
    name: string,
    ok: { ok: SampledStats } | { failed: string },
  ): BenchRecord => ({
    origin: "file:///a_bench.ts",
    group: "g",
    name,
    baseline: name === "base",
    results: [ok],
  });
  const merged = mergeRuns([
    [
      rec("base", stats(100, 90, { faultsPerCall: 1, waitPerCall: 5 })),
      rec("x", stats(300, 250)),
    ],
    [
      rec("base", stats(130, 95, { faultsPerCall: 3, waitPerCall: 9 })),
      rec("x", stats(280, 240)),
    ],
    [
      rec("base", stats(110, 80, { faultsPerCall: 2, waitPerCall: 7 })),
      rec("x", { failed: "boom" }),
    ],
  ]);
  assertEquals(merged.map((r) => r.name), ["base", "x"]);
  const base = merged[0]!.results[0]!.ok as SampledStats;
  assertEquals(base.p50, 110);
  assertEquals(base.p50Runs, [100, 130, 110]);
  assertEquals(base.min, 80);
  assertEquals(base.max, 390);
  assertEquals(base.n, 30);
  assertEquals(base.p75, 132);
  assertEquals(base.faultsPerCall, 2);
  assertEquals(base.waitPerCall, 7);
  assertEquals(Math.round(base.avg * 10), Math.round(340 * 1.1 / 3 * 10));
  // A bench that failed in one process is reported failed.
  assertEquals(merged[1]!.results, [{ failed: "boom" }]);
  // Two processes: the mean of the middle two; what is not finite is left
  // out, whatever its place.
  assertEquals(medianOf([4, 1]), 2.5);
  for (const v of [[NaN, 1, 3], [1, NaN, 3], [3, 1, NaN], [null, 3, 1]]) {
    assertEquals(medianOf(v), 2, `${v}`);
  }
  assert(Number.isNaN(medianOf([])));
  assert(Number.isNaN(medianOf([NaN, null])));
  assertThrows(() => mergeRuns([]), Error, "no runs");
});

Deno.test("mergeRuns: a bench missing from a run keeps that run's place in p50Runs (null), so a ratio never pairs two processes", () => {
  const rec = (name: string, p50: number): BenchRecord => ({
    origin: "file:///x_bench.ts",
    group: "iova fragmented",
    name,
    baseline: name.includes("1K"),
    results: [{
      ok: { n: 10, min: p50, max: p50, avg: p50, p50, p75: p50, p99: p50 },
    }],
  });
  const k = "32 x random alloc+free, 1K live ranges";
  const m = "32 x random alloc+free, 1M live ranges";
  // Run 1 has both; run 2 only 1K; run 3 only 1M; run 4 both.
  const merged = mergeRuns([
    [rec(k, 1_000), rec(m, 2_000)],
    [rec(k, 500)],
    [rec(m, 4_000)],
    [rec(k, 1_000), rec(m, 2_600)],
  ]);
  assertEquals(merged[0]!.results[0]!.ok!.p50Runs, [1_000, 500, null, 1_000]);
  assertEquals(merged[1]!.results[0]!.ok!.p50Runs, [2_000, null, 4_000, 2_600]);
  // Through JSON (null stays null) and the targets: processes 1 and 4
  // only, 2.00x and 2.60x, median 2.30x (8.00x would pair 3 with 2).
  const report = JSON.parse(
    JSON.stringify({ runtime: "t", cpu: "t", benches: merged }),
  ) as BenchReport;
  const line = renderTargets(rows(report)).split("\n").find((l) =>
    l.includes("1M live")
  )!;
  assert(line.includes("| 2.30x (2.00x, 2.60x) |"), line);
  // Present in one process of both: the medians' own ratio (2600 / 1000).
  const lone = mergeRuns([[rec(k, 1_000)], [rec(m, 2_600)]]);
  const loneLine = renderTargets(
    rows({ runtime: "t", cpu: "t", benches: lone }),
  )
    .split("\n").find((l) => l.includes("1M live"))!;
  assert(loneLine.includes("| 2.60x | 2.60x |"), loneLine);
});

Deno.test("renderTargets: with merged processes a ratio is the median of each process's ratio, and every process's figure is shown", () => {
  const report = iovaReport([1_000, 1_100, 900], [2_900, 3_520, 2_600]);
  // Per process: 1K 1000 / 500 / 2000 ns, 1M 2900 / 2000 / 4000 ns, so
  // the ratios are 2.90x, 4.00x and 2.00x: median 2.90x.
  const runs = [[1_000, 500, 2_000], [2_900, 2_000, 4_000]];
  report.benches.forEach((b, i) => b.results[0]!.ok!.p50Runs = runs[i]!);
  const line = renderTargets(rows(report)).split("\n")
    .find((l) => l.includes("1M live ranges"))!;
  assert(
    line.includes("| 2.90x (2.00x, 2.90x, 4.00x) | 3.20x | 2.89x | met |"),
    line,
  );
  // Medians 1000 and 3000 would say 3.00x; per process 2.5x, 2.5x, 6x.
  const skew = iovaReport([1_000, 1_100, 900], [3_000, 3_520, 2_600]);
  const skewRuns = [[1_000, 2_000, 400], [2_500, 5_000, 2_400]];
  skew.benches.forEach((b, i) => b.results[0]!.ok!.p50Runs = skewRuns[i]!);
  const skewLine = renderTargets(rows(skew)).split("\n")
    .find((l) => l.includes("1M live ranges"))!;
  assert(skewLine.includes("| 2.50x (2.50x, 2.50x, 6.00x) |"), skewLine);
  // A per-unit target shows each process's figure too.
  const perUnit = renderTargets(rows({
    runtime: "Deno/test",
    cpu: "test",
    benches: [{
      origin: "file:///t_bench.ts",
      group: "translate() alone (1,000 accesses) · samsung-sysmmu",
      name: "IOTLB hit",
      baseline: true,
      results: [{
        ok: {
          n: 9,
          min: 8_000,
          max: 20_000,
          avg: 9_500,
          p50: 9_000,
          p50Runs: [9_500, 9_000, 8_500],
          p75: 10_000,
          p99: 19_000,
        },
      }],
    }],
  }));
  assert(perUnit.includes("| 9.00 ns (8.50 ns, 9.00 ns, 9.50 ns) |"), perUnit);
});

Deno.test("bench/sampler.ts --runs: each file sampled in that many processes, merged; a bad count is refused", async () => {
  const fixture = new URL("./fixtures/sampler_benches.ts", import.meta.url)
    .pathname;
  const refusals: [string[], string][] = [
    [
      ["--runs", "0", fixture],
      "--runs needs a whole number of processes from 1 to 99, not 0",
    ],
    [["--runs", "1.5", fixture], "not 1.5"],
    [["--runs", "two", fixture], "not two"],
    [["--runs", "1e3", fixture], "not 1e3"],
    [["--runs", "100", fixture], "not 100"],
    [["--runs", "-1", fixture], "--runs needs a number of processes"],
    [[fixture, "--runs"], "--runs needs a number of processes"],
    [["--runs", "1", "--runs", "2", fixture], "--runs given twice"],
    [["--json", "a.json", "--json", "b.json", fixture], "--json given twice"],
    // An option is never taken for --json's file name.
    [["--json", "--runs", "1", fixture], "--json needs a file name"],
  ];
  for (const [args, message] of refusals) {
    const r = await run(...args);
    assertEquals(r.code, 2, args.join(" "));
    assert(r.err.includes(message), `${args.join(" ")}: ${r.err}`);
  }
  const two = await run("--runs", "2", fixture);
  assertEquals(two.code, 0, two.err);
  assertEquals(two.err.match(/process \d of 2/g), [
    "process 1 of 2",
    "process 2 of 2",
  ]);
  const report = JSON.parse(two.out) as BenchReport;
  assert(report.runtime.includes("2 processes per file"), report.runtime);
  assertEquals(report.benches.map((b) => b.name), [
    "timed run",
    "fixed count, explicit timers",
    "fresh memory",
    "no group",
  ]);
  for (const b of report.benches) {
    const ok = b.results[0]!.ok!;
    assertEquals(ok.p50Runs!.length, 2, b.name);
    assertEquals(ok.p50, (ok.p50Runs![0]! + ok.p50Runs![1]!) / 2, b.name);
  }
});
