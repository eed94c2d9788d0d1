/**
 * Run bench files and report each bench's median, which `deno bench --json`
 * does not give (it stops at min, avg, p75, p99), while the issue's targets
 * are medians.
 *
 * The bench files are loaded unchanged: `Deno.bench` is replaced by a
 * recorder, then every recorded bench is warmed up and timed one iteration
 * at a time (`b.start()`/`b.end()` when the bench uses them), like `deno
 * bench` does. Each file runs in a process of its own, as under `deno
 * bench`, so that a file's call sites see only its own hardware type. The
 * output is `deno bench --json`'s shape with `p50` added, so
 * `bench/report.ts --from` reads it.
 *
 * Usage:
 *   deno run -A bench/sampler.ts --json out.json            # every bench file
 *   deno run -A bench/sampler.ts --json out.json bench/iova_bench.ts
 *   deno run -A bench/report.ts --from out.json --targets   # adds medians
 *
 * @module
 */
import type { BenchRecord, BenchReport, BenchStats } from "./report.ts";
export type { BenchRecord, BenchReport, BenchStats };

/** Warm-up time per bench before samples are kept, in ms. */
const WARMUP_MS = 300;
/** Sampling time per bench, in ms. */
const SAMPLE_MS = 1000;
/** Shortest sample when a bench's iterations are timed in batches, in ms. */
const BATCH_MS = 0.01;
/** Most samples kept per bench. */
const MAX_SAMPLES = 50_000;

interface Recorded {
  name: string;
  group?: string;
  baseline?: boolean;
  ignore?: boolean;
  warmup?: number;
  n?: number;
  fn: (b: BenchTimer) => unknown;
}

interface BenchTimer {
  start(): void;
  end(): void;
}

/**
 * Percentile by nearest rank of an ascending array.
 *
 * @param sorted Samples, ascending, at least one.
 * @param q Quantile in (0, 1].
 * @returns The sample at rank ceil(q * n).
 */
function rank(sorted: Float64Array, q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

async function timeOne(
  b: Recorded,
  warmupMs: number,
  sampleMs: number,
): Promise<BenchStats> {
  let t0 = 0, t1 = 0, explicit = false;
  const timer: BenchTimer = {
    start() {
      explicit = true;
      t0 = performance.now();
    },
    end() {
      t1 = performance.now();
    },
  };
  const once = async (): Promise<number> => {
    const s = performance.now();
    const r = b.fn(timer);
    if (r instanceof Promise) await r;
    const e = performance.now();
    return explicit ? t1 - t0 : e - s;
  };
  const fixed = b.n !== undefined;
  const warmStart = performance.now(), warmEnd = warmStart + warmupMs;
  let warmed = 0;
  for (; fixed ? warmed < (b.warmup ?? 0) : performance.now() < warmEnd;) {
    await once();
    warmed++;
  }
  // A bench much shorter than the clock's cost is timed in batches, each
  // sample being a batch's time over its length.
  const mean = (performance.now() - warmStart) / Math.max(1, warmed);
  const batch = fixed || explicit || mean >= BATCH_MS
    ? 1
    : Math.ceil(BATCH_MS / Math.max(mean, 1e-6));
  const samples: number[] = [];
  const end = performance.now() + sampleMs;
  while (
    fixed ? samples.length < b.n! : samples.length < MAX_SAMPLES &&
      (performance.now() < end || samples.length < 10)
  ) {
    if (batch === 1) {
      samples.push((await once()) * 1e6);
      continue;
    }
    const s = performance.now();
    for (let i = 0; i < batch; i++) {
      const r = b.fn(timer);
      if (r instanceof Promise) await r;
    }
    samples.push((performance.now() - s) * 1e6 / batch);
  }
  const sorted = Float64Array.from(samples).sort();
  const sum = samples.reduce((a, v) => a + v, 0);
  return {
    n: sorted.length,
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    avg: sum / sorted.length,
    p50: rank(sorted, 0.5),
    p75: rank(sorted, 0.75),
    p99: rank(sorted, 0.99),
  };
}

/**
 * Load one bench file with a recording `Deno.bench` (the real one is put
 * back once the file has loaded) and time its benches: about 1.3 s each,
 * or the bench's own `warmup` and `n` when it sets them.
 *
 * @param file Path of a bench file, relative to the working directory.
 * @param warmupMs Warm-up time per bench, in ms.
 * @param sampleMs Sampling time per bench, in ms.
 * @returns One record per bench not marked `ignore`, in file order.
 */
export async function sampleFile(
  file: string,
  warmupMs: number = WARMUP_MS,
  sampleMs: number = SAMPLE_MS,
): Promise<BenchRecord[]> {
  const recorded: Recorded[] = [];
  const deno = Deno as unknown as Record<string, unknown>;
  const real = deno.bench;
  deno.bench = (arg: Recorded | string, fn?: Recorded["fn"]): void => {
    if (typeof arg === "string" && fn !== undefined) {
      recorded.push({ name: arg, fn });
    } else if (typeof arg === "object") recorded.push(arg);
    else throw new Error(`${file}: a Deno.bench form the sampler lacks`);
  };
  const url = new URL(file, `file://${Deno.cwd()}/`).href;
  try {
    await import(url);
  } finally {
    deno.bench = real;
  }
  const out: BenchRecord[] = [];
  for (const b of recorded) {
    if (b.ignore === true) continue;
    out.push({
      origin: url,
      group: b.group ?? null,
      name: b.name,
      baseline: b.baseline === true,
      results: [{ ok: await timeOne(b, warmupMs, sampleMs) }],
    });
  }
  return out;
}

async function benchFiles(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(new URL(".", import.meta.url))) {
    if (e.isFile && e.name.endsWith("_bench.ts")) names.push(`bench/${e.name}`);
  }
  return names.sort();
}

if (import.meta.main) {
  const args = [...Deno.args];
  const one = args.indexOf("--one");
  if (one >= 0) {
    console.log(JSON.stringify(await sampleFile(args[one + 1]!)));
  } else {
    const j = args.indexOf("--json");
    const save = j >= 0 ? args.splice(j, 2)[1] : undefined;
    const files = args.length > 0 ? args : await benchFiles();
    const report: BenchReport = {
      runtime: `Deno/${Deno.version.deno} (bench/sampler.ts)`,
      cpu: (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
        .match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown",
      benches: [],
    };
    for (const file of files) {
      const { code, stdout } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, "--one", file],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (code !== 0) throw new Error(`${file}: sampler exited with ${code}`);
      const records = JSON.parse(
        new TextDecoder().decode(stdout),
      ) as BenchRecord[];
      report.benches.push(...records);
      console.error(`sampled ${file}: ${records.length} benches`);
    }
    const text = JSON.stringify(report, null, 2);
    if (save !== undefined) await Deno.writeTextFile(save, text);
    else console.log(text);
  }
}
