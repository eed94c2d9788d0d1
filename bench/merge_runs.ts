/**
 * Merge several sampler runs of the same bench files into one report.
 *
 * Why: on a shared 2-vCPU VM a whole process can land in a slow stretch of
 * the host (the same compiled code ran at 38 and at 55-63 ns per access in
 * alternate 75 ms blocks), so one process's median is a draw. The sampler
 * therefore runs each file in several processes, and this takes, per
 * bench, the median of the processes' medians (and of their p75 and p99),
 * the lowest min, and keeps each process's median in `p50Runs` so that a
 * report can show the spread and judge a ratio per process (each ratio
 * measured in one run, then the median of those).
 *
 * @module
 */
import type { BenchRecord, BenchStats } from "./report.ts";

/**
 * Median of the finite numbers of a list (the mean of the middle two when
 * their count is even); NaN, null and infinities are left out.
 *
 * @param values Numbers (a merged bench's missing runs are null or NaN).
 * @returns The median, or NaN when no value is finite.
 */
export function medianOf(values: readonly (number | null)[]): number {
  const s = values.filter((v): v is number => Number.isFinite(v))
    .sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// The sampler's per-call figures (SampledStats), merged like the medians.
const EXTRAS = ["faultsPerCall", "waitPerCall"] as const;
type Extra = typeof EXTRAS[number];

/** Median of one optional field over the runs that have it. */
function medianField(
  runs: readonly BenchStats[],
  pick: (s: BenchStats) => number | undefined,
): number | undefined {
  const v = runs.map(pick).filter((x): x is number => x !== undefined);
  return v.length === 0 ? undefined : medianOf(v);
}

/**
 * One record per bench from several runs of the same files: the median of
 * the runs' p50, p75 and p99 (and faultsPerCall, waitPerCall where given),
 * the lowest min, the highest max, the sample-weighted mean, the samples
 * summed, and `p50Runs`: one entry per run, in run order, that run's
 * median or null where the run lacks the bench (so that entry i of two
 * benches' lists always comes from the same process). A bench that failed
 * in any run is reported failed (the first failure).
 *
 * @param runs Each run's records (from `sampleFile`), at least one run.
 * @returns Records in first-seen order; a bench missing from some run is
 * merged over the runs that have it.
 * @throws {Error} When `runs` is empty.
 */
export function mergeRuns(runs: readonly BenchRecord[][]): BenchRecord[] {
  if (runs.length === 0) throw new Error("mergeRuns: no runs");
  const key = (b: BenchRecord): string =>
    `${b.origin}\u0000${b.group ?? ""}\u0000${b.name}`;
  // Per bench, its record in each run (undefined where a run lacks it).
  const byKey = new Map<string, (BenchRecord | undefined)[]>();
  runs.forEach((run, i) => {
    for (const b of run) {
      const k = key(b);
      let list = byKey.get(k);
      if (list === undefined) {
        // Filled, not sparse: map() would skip the holes.
        list = Array.from({ length: runs.length }, () => undefined);
        byKey.set(k, list);
      }
      list[i] = b;
    }
  });
  const out: BenchRecord[] = [];
  for (const perRun of byKey.values()) {
    const same = perRun.filter((b): b is BenchRecord => b !== undefined);
    const first = same[0]!;
    const failed = same.find((b) => b.results[0]?.ok === undefined);
    if (failed !== undefined) {
      out.push({ ...first, results: failed.results });
      continue;
    }
    const stats = same.map((b) => b.results[0]!.ok!);
    const samples = stats.reduce((a, s) => a + s.n, 0);
    const merged: BenchStats & Partial<Record<Extra, number>> = {
      n: samples,
      min: Math.min(...stats.map((s) => s.min)),
      max: Math.max(...stats.map((s) => s.max)),
      avg: stats.reduce((a, s) => a + s.avg * s.n, 0) / samples,
      p75: medianOf(stats.map((s) => s.p75)),
      p99: medianOf(stats.map((s) => s.p99)),
    };
    const p50 = medianField(stats, (s) => s.p50);
    if (p50 !== undefined) {
      merged.p50 = p50;
      merged.p50Runs = perRun.map((b) => b?.results[0]?.ok?.p50 ?? null);
    }
    for (const extra of EXTRAS) {
      const v = medianField(
        stats,
        (s) => (s as BenchStats & Partial<Record<Extra, number>>)[extra],
      );
      if (v !== undefined) merged[extra] = v;
    }
    out.push({ ...first, results: [{ ok: merged }] });
  }
  return out;
}
