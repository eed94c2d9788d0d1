/**
 * Run bench files and report each bench's median, which `deno bench --json`
 * does not give (it stops at min, avg, p75, p99), while the targets
 * are medians.
 *
 * The bench files are loaded unchanged: `Deno.bench` is replaced by a
 * recorder, then every recorded bench is warmed up and sampled by the same
 * rules as `deno bench` (see below), so the median is of the samples whose
 * p75 `deno bench` reports. Each file runs in a process of its own, as under `deno
 * bench`, so that a file's call sites see only its own hardware type, and
 * by default in three such processes, the files taking turns: on a shared
 * VM a whole process can fall into a slow stretch of the host, so a bench's
 * figure is the median of its processes' medians (see bench/merge_runs.ts;
 * `--runs 1` for one process). The
 * output is `deno bench --json`'s shape with `p50` (and `p50Runs`) added, so
 * `bench/report.ts --from` reads it, and on Linux with two figures per call
 * that say whether a median of wall times is to be trusted: `faultsPerCall`,
 * the process's minor page faults during the sampling, and `waitPerCall`,
 * the nanoseconds the timing thread waited for a CPU (other processes ran).
 * Both grow with a call's length: a call that makes the engine's heap grow
 * touches fresh pages, each a page fault, which costs about 30 µs on some
 * VMs, and a call of milliseconds is preempted where one of microseconds
 * is not. On this project's 2-vCPU VM a 1M-page map ran at 3.5 ns/page
 * without faults and 8-13 ns/page with 115-300 of them, or with a 4 ms
 * time slice of another process inside it, while its 1K-page row had
 * neither; with about 11 samples, which phase they fell in decided its
 * median.
 *
 * Usage:
 *   deno run -A bench/sampler.ts --json out.json            # every bench file
 *   deno run -A bench/sampler.ts --json out.json bench/iova_bench.ts
 *   deno run -A bench/sampler.ts --runs 5 --json out.json   # five processes
 *   deno run -A bench/report.ts --from out.json --targets   # adds medians
 *
 * @module
 */
import type { BenchRecord, BenchReport, BenchStats } from "./report.ts";
import { mergeRuns } from "./merge_runs.ts";
export type { BenchRecord, BenchReport, BenchStats };

/** A bench's figures as the sampler reports them. */
export interface SampledStats extends BenchStats {
  /**
   * Minor page faults of the process while the bench was sampled, per
   * call (the whole call: also the part outside b.start()/b.end()); absent
   * where /proc/self/stat cannot be read.
   */
  faultsPerCall?: number;
  /**
   * Nanoseconds per call the timing thread waited for a CPU while the
   * bench was sampled (other processes ran instead); absent where
   * /proc/thread-self/schedstat cannot be read.
   */
  waitPerCall?: number;
}

// deno bench's rules (Deno 2.9.6), so that the samples are the ones whose
// p75 it reports: warm up for 10 ms and at least `warmup` (default 20)
// calls; then sample for 500 ms and at least 10 calls (10 ms and at least
// `n` calls when the bench sets `n`). A bench whose warm-up calls averaged
// 10 µs or less is sampled in batches of 10,000 calls, each sample the
// batch's mean, with b.start()/b.end() ignored; a slower one call by call,
// from b.start() to b.end() when it calls them.
/** Warm-up time per bench, in ms. */
const WARMUP_MS = 10;
/** Sampling time per bench without `n`, in ms. */
const SAMPLE_MS = 500;
/** Sampling time per bench with `n`, in ms. */
const SAMPLE_N_MS = 10;
/** Warm-up calls at the least, when the bench does not say. */
const WARMUP_CALLS = 20;
/** Samples at the least, when the bench does not set `n`. */
const SAMPLE_CALLS = 10;
/** Mean warm-up call time (ms) at or below which calls are batched. */
const BATCH_BELOW_MS = 0.01;
/** Calls per sample when batched. */
const BATCH = 10_000;
/** Processes per bench file when `--runs` is not given. */
const DEFAULT_RUNS = 3;

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

// The b.start() / b.end() times of the call being timed (-1: not called),
// and the context every bench gets; module-level, so that the timing loops
// keep no closure state.
let explicitStart = -1;
let explicitEnd = -1;
const timer: BenchTimer = {
  start(): void {
    explicitStart = performance.now();
  },
  end(): void {
    explicitEnd = performance.now();
  },
};
const noTimer: BenchTimer = { start(): void {}, end(): void {} };

/**
 * Minor page faults of this process so far (Linux), or NaN.
 *
 * @returns The count from /proc/self/stat.
 */
function minorFaults(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // The fields after the command name (which may hold spaces and
    // parentheses): state, ppid, ..., minflt is the eighth.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
  } catch {
    return NaN;
  }
}

/**
 * Nanoseconds this thread has waited for a CPU while runnable (Linux), or
 * NaN.
 *
 * @returns The second field of /proc/thread-self/schedstat.
 */
function runqueueWait(): number {
  try {
    return Number(
      Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[1],
    );
  } catch {
    return NaN;
  }
}

/** What a timing loop returns: the samples (ns) and the calls they took. */
interface Timed {
  samples: number[];
  calls: number;
  /** Minor page faults during the sampling (NaN when unknown). */
  faults: number;
  /** Runqueue wait during the sampling, ns (NaN when unknown). */
  wait: number;
}

interface Budget {
  warmupMs: number;
  sampleMs: number;
  warmupCalls: number;
  /** Samples at the least (`n`, else SAMPLE_CALLS). */
  sampleCalls: number;
  /** Sampling time, ms. */
  sampleBudget: number;
}

function budgetOf(b: Recorded, warmupMs: number, sampleMs: number): Budget {
  const fixed = b.n !== undefined && b.n > 0;
  return {
    warmupMs,
    sampleMs,
    warmupCalls: b.warmup !== undefined && b.warmup >= 0
      ? b.warmup
      : WARMUP_CALLS,
    sampleCalls: fixed ? b.n! : SAMPLE_CALLS,
    sampleBudget: fixed ? SAMPLE_N_MS : sampleMs,
  };
}

// A plain bench, timed without an await anywhere in its loops (an await
// per call would be timed with it, and would keep V8 from compiling the
// loop around the call the way deno bench's is).
function timeSync(fn: Recorded["fn"], q: Budget): Timed {
  let calls = q.warmupCalls, budget = q.warmupMs, warmed = 0, warmTime = 0;
  while (budget > 0 || calls-- > 0) {
    const t0 = performance.now();
    fn(timer);
    const t = performance.now() - t0;
    warmed++;
    warmTime += t;
    budget -= t;
  }
  calls = q.sampleCalls;
  budget = q.sampleBudget;
  const samples: number[] = [];
  const f0 = minorFaults(), w0 = runqueueWait();
  if (warmTime / warmed > BATCH_BELOW_MS) {
    while (budget > 0 || calls-- > 0) {
      explicitStart = explicitEnd = -1;
      const t0 = performance.now();
      fn(timer);
      const t1 = performance.now();
      const from = explicitStart >= 0 ? explicitStart : t0;
      const to = explicitEnd >= 0 ? explicitEnd : t1;
      samples.push((to - from) * 1e6);
      budget -= t1 - t0;
    }
    return {
      samples,
      calls: samples.length,
      faults: minorFaults() - f0,
      wait: runqueueWait() - w0,
    };
  }
  calls = Math.max(Math.ceil(calls / BATCH), SAMPLE_CALLS);
  while (budget > 0 || calls-- > 0) {
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i++) fn(noTimer);
    const t = performance.now() - t0;
    samples.push(t * 1e6 / BATCH);
    budget -= t;
  }
  return {
    samples,
    calls: samples.length * BATCH,
    faults: minorFaults() - f0,
    wait: runqueueWait() - w0,
  };
}

// The same for an async bench, each call awaited.
async function timeAsync(
  fn: Recorded["fn"],
  q: Budget,
): Promise<Timed> {
  let calls = q.warmupCalls, budget = q.warmupMs, warmed = 0, warmTime = 0;
  while (budget > 0 || calls-- > 0) {
    const t0 = performance.now();
    await fn(timer);
    const t = performance.now() - t0;
    warmed++;
    warmTime += t;
    budget -= t;
  }
  calls = q.sampleCalls;
  budget = q.sampleBudget;
  const samples: number[] = [];
  const f0 = minorFaults(), w0 = runqueueWait();
  if (warmTime / warmed > BATCH_BELOW_MS) {
    while (budget > 0 || calls-- > 0) {
      explicitStart = explicitEnd = -1;
      const t0 = performance.now();
      await fn(timer);
      const t1 = performance.now();
      const from = explicitStart >= 0 ? explicitStart : t0;
      const to = explicitEnd >= 0 ? explicitEnd : t1;
      samples.push((to - from) * 1e6);
      budget -= t1 - t0;
    }
    return {
      samples,
      calls: samples.length,
      faults: minorFaults() - f0,
      wait: runqueueWait() - w0,
    };
  }
  calls = Math.max(Math.ceil(calls / BATCH), SAMPLE_CALLS);
  while (budget > 0 || calls-- > 0) {
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i++) await fn(noTimer);
    const t = performance.now() - t0;
    samples.push(t * 1e6 / BATCH);
    budget -= t;
  }
  return {
    samples,
    calls: samples.length * BATCH,
    faults: minorFaults() - f0,
    wait: runqueueWait() - w0,
  };
}

async function timeOne(
  b: Recorded,
  warmupMs: number,
  sampleMs: number,
): Promise<SampledStats> {
  const q = budgetOf(b, warmupMs, sampleMs);
  // Like deno bench: an async function is awaited, a plain one is not.
  const { samples, calls, faults, wait } =
    b.fn.constructor.name === "AsyncFunction"
      ? await timeAsync(b.fn, q)
      : timeSync(b.fn, q);
  const sorted = Float64Array.from(samples).sort();
  const sum = samples.reduce((a, v) => a + v, 0);
  return {
    ...(Number.isFinite(faults) ? { faultsPerCall: faults / calls } : {}),
    ...(Number.isFinite(wait) ? { waitPerCall: wait / calls } : {}),
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
 * back once the file has loaded) and time its benches by `deno bench`'s
 * rules (about 0.5 s each; 10 ms and `n` calls when a bench sets `n`).
 *
 * @param file Path of a bench file, relative to the working directory.
 * @param warmupMs Least warm-up time per bench, in ms (deno bench: 10).
 * @param sampleMs Least sampling time per bench without `n`, in ms (deno
 * bench: 500).
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

const USAGE = `Usage:
  deno run -A bench/sampler.ts [--json out.json] [--runs N] [bench files...]
Samples every bench/*_bench.ts (or the files named) by deno bench's rules,
each file in N processes of its own (default ${DEFAULT_RUNS}; the files
take turns, so a slow stretch of the host falls on one process of a bench,
not all), and prints deno bench --json's shape with, per bench, p50 the
median of the processes' medians and p50Runs each process's median (p75 and
p99 likewise the median of the processes', min the lowest), and on Linux
faultsPerCall (minor page faults) and waitPerCall (ns waited for a CPU) per
call while sampled, to out.json with --json;
bench/report.ts --from run.json --medians out.json --targets reads it.`;

/** What the command line asks for. */
type Command =
  | { kind: "help" }
  | { kind: "error"; message: string }
  | { kind: "one"; file: string }
  | { kind: "all"; save?: string; runs: number; files: string[] };

/** Processes per file at the most (a typo such as 1e3 is refused). */
const MAX_RUNS = 99;

/**
 * Read the command line strictly: an option's value must follow it and may
 * not look like an option, no option twice, nothing unknown (it would be
 * taken for a bench file).
 */
function parseArgs(args: readonly string[]): Command {
  const needs: Record<string, string> = {
    "--json": "a file name",
    "--one": "a bench file",
    "--runs": "a number of processes",
  };
  const values = new Map<string, string>();
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--help" || a === "-h") return { kind: "help" };
    const need = needs[a];
    if (need !== undefined) {
      const v = args[i + 1];
      if (v === undefined || v.startsWith("-")) {
        return { kind: "error", message: `${a} needs ${need}` };
      }
      if (values.has(a)) {
        return { kind: "error", message: `${a} given twice` };
      }
      values.set(a, v);
      i++;
    } else if (a.startsWith("-")) {
      return { kind: "error", message: `unknown option ${a}` };
    } else files.push(a);
  }
  const one = values.get("--one");
  if (one !== undefined) return { kind: "one", file: one };
  const r = values.get("--runs");
  const runs = r === undefined ? DEFAULT_RUNS : Number(r);
  if (r !== undefined && !(/^[1-9]\d*$/.test(r) && runs <= MAX_RUNS)) {
    return {
      kind: "error",
      message:
        `--runs needs a whole number of processes from 1 to ${MAX_RUNS}, not ${r}`,
    };
  }
  const save = values.get("--json");
  return { kind: "all", ...(save === undefined ? {} : { save }), runs, files };
}

if (import.meta.main) {
  const command = parseArgs(Deno.args);
  if (command.kind === "help") console.log(USAGE);
  else if (command.kind === "error") {
    console.error(command.message);
    console.error(USAGE);
    Deno.exit(2);
  } else if (command.kind === "one") {
    console.log(JSON.stringify(await sampleFile(command.file)));
  } else {
    const { save, runs, files } = command;
    if (files.length === 0) files.push(...await benchFiles());
    const report: BenchReport = {
      runtime: `Deno/${Deno.version.deno} (bench/sampler.ts, ${runs} ${
        runs === 1 ? "process" : "processes"
      } per file)`,
      cpu: (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
        .match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown",
      benches: [],
    };
    const rounds: BenchRecord[][] = [];
    for (let round = 1; round <= runs; round++) {
      const records: BenchRecord[] = [];
      for (const file of files) {
        const { code, stdout } = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", new URL(import.meta.url).pathname, "--one", file],
          stdout: "piped",
          stderr: "inherit",
        }).output();
        if (code !== 0) throw new Error(`${file}: sampler exited with ${code}`);
        const got = JSON.parse(
          new TextDecoder().decode(stdout),
        ) as BenchRecord[];
        records.push(...got);
        console.error(
          `sampled ${file} (process ${round} of ${runs}): ${got.length} benches`,
        );
      }
      rounds.push(records);
    }
    report.benches = mergeRuns(rounds);
    const text = JSON.stringify(report, null, 2);
    if (save !== undefined) await Deno.writeTextFile(save, text);
    else console.log(text);
  }
}
