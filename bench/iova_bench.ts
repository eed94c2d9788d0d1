/**
 * IOVA allocator benchmarks (issue 8 targets). Each iteration runs a batch
 * of operations so that timer overhead and scheduling noise stay small;
 * divide the time per iteration by the batch size in the name.
 * - "iova cache": alloc+free of a recurring size served by the rcache
 *   (target <= 40 ns per pair) against the same pairs with the cache
 *   disabled (baseline).
 * - "iova fragmented": alloc of a random size + free of a live range picked
 *   uniformly from the whole population, with 1K (baseline), 100K and 1M
 *   live ranges in a fragmented space, tree path only (target: 1M no more
 *   than 3x the 1K baseline, i.e. O(log n)). At 1M the victim and its
 *   ancestors are almost never cached, so this also measures the memory
 *   system (dependent cache and TLB misses).
 *   A fourth row repeats the 1M one on a population aged by a million
 *   more alloc+free pairs (nodes scattered again since the setup's
 *   compaction).
 * - "iova fragmented, streaming": the same populations, but each alloc of a
 *   random size is freed 64 operations later, as streaming DMA does.
 *
 * @module
 */
import { IovaAllocator } from "../core/dma/mod.ts";

const K = 4096;
const G4 = 2 ** 32;

// Deterministic random numbers so runs are comparable.
let seed = 0x2545f491;
function rnd(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

// --- group: iova cache -----------------------------------------------------

function warmed(cacheMaxSize?: number): IovaAllocator {
  const a = new IovaAllocator(
    cacheMaxSize === undefined
      ? { end: 2 ** 36 }
      : { end: 2 ** 36, cacheMaxSize },
  );
  // Some unrelated live ranges, as a device would have.
  for (let i = 0; i < 1000; i++) a.alloc((1 + rnd(16)) * K, G4);
  a.free(a.alloc(2 * K, G4), 2 * K);
  return a;
}

const cached = warmed();
const uncached = warmed(0);

const PAIRS = 256;

function pairs(a: IovaAllocator): void {
  for (let i = 0; i < PAIRS; i++) a.free(a.alloc(2 * K, G4), 2 * K);
}

Deno.bench({
  group: "iova cache",
  name: `${PAIRS} x alloc+free 8 KiB, rcache hit`,
  fn() {
    pairs(cached);
  },
});

Deno.bench({
  group: "iova cache",
  name: `${PAIRS} x alloc+free 8 KiB, no cache (tree)`,
  baseline: true,
  fn() {
    pairs(uncached);
  },
});

// --- group: iova fragmented ------------------------------------------------

const SIZES = 4096;

interface Fragmented {
  a: IovaAllocator;
  /** Live ranges as (iova, size) pairs, one cache line per victim lookup. */
  live: Float64Array;
  n: number;
  sizes: Float64Array;
  step: number;
  /** xorshift state for victim picks: drawn fresh, never a short cycle. */
  seed: number;
}

/** `n` live ranges of 1..64 granules, left by allocating 2n and freeing half. */
function fragmented(n: number): Fragmented {
  const a = new IovaAllocator({ end: 2 ** 42, cacheMaxSize: 0 });
  const iova = new Float64Array(2 * n);
  const size = new Float64Array(2 * n);
  for (let i = 0; i < 2 * n; i++) {
    size[i] = (1 + rnd(64)) * K;
    iova[i] = a.alloc(size[i]!);
  }
  let count = 2 * n;
  while (count > n) {
    const j = rnd(count);
    a.free(iova[j]!, size[j]!);
    count--;
    iova[j] = iova[count]!;
    size[j] = size[count]!;
  }
  const sizes = new Float64Array(SIZES);
  for (let i = 0; i < SIZES; i++) sizes[i] = (1 + rnd(64)) * K;
  const live = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    live[2 * i] = iova[i]!;
    live[2 * i + 1] = size[i]!;
  }
  return { a, live, n, sizes, step: 0, seed: 0x9e3779b9 };
}

const CHURN = 32;

/**
 * CHURN times: free a live range picked uniformly from the whole population
 * (the worst case for locality: at 1M the victim is almost never cached),
 * then allocate a random size.
 */
function churn(s: Fragmented): void {
  const live = s.live;
  let seed = s.seed;
  for (let k = 0; k < CHURN; k++) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    const j = ((seed >>> 0) % s.n) * 2;
    s.a.free(live[j]!, live[j + 1]!);
    const sz = s.sizes[s.step++ & (SIZES - 1)]!;
    live[j] = s.a.alloc(sz);
    live[j + 1] = sz;
  }
  s.seed = seed;
}

const WINDOW = 64;

interface Streaming {
  s: Fragmented;
  /** In-flight (iova, size) pairs, freed oldest first. */
  ring: Float64Array;
  head: number;
}

function streaming(s: Fragmented): Streaming {
  const ring = new Float64Array(2 * WINDOW);
  for (let i = 0; i < WINDOW; i++) {
    const sz = s.sizes[s.step++ & (SIZES - 1)]!;
    ring[2 * i] = s.a.alloc(sz);
    ring[2 * i + 1] = sz;
  }
  return { s, ring, head: 0 };
}

/**
 * CHURN times: free the oldest of WINDOW in-flight mappings and allocate a
 * random size, over the long-lived fragmented population (how streaming DMA
 * uses an IOVA space: short-lived mappings beside long-lived ones).
 */
function stream(t: Streaming): void {
  const { s, ring } = t;
  let h = t.head;
  for (let k = 0; k < CHURN; k++) {
    const o = 2 * h;
    s.a.free(ring[o]!, ring[o + 1]!);
    const sz = s.sizes[s.step++ & (SIZES - 1)]!;
    ring[o] = s.a.alloc(sz);
    ring[o + 1] = sz;
    h = (h + 1) & (WINDOW - 1);
  }
  t.head = h;
}

const populations: [number, string, Fragmented][] = [];
for (
  const [n, label] of [[1_000, "1K"], [100_000, "100K"], [
    1_000_000,
    "1M",
  ]] as const
) {
  populations.push([n, label, fragmented(n)]);
}

for (const [n, label, s] of populations) {
  Deno.bench({
    group: "iova fragmented",
    name: `${CHURN} x random alloc+free, ${label} live ranges`,
    baseline: n === 1_000,
    fn() {
      churn(s);
    },
  });
}

// The 1M row above starts right after its setup freed half the ranges,
// which compacts the tree (one run of node slots in address order); churn
// scatters the nodes again. This row measures the same population after
// AGED_OPS operations of the same churn: the state a long-running device's
// IOVA space settles into, with no compaction since.
const AGED_OPS = 1_000_000;
const aged = fragmented(1_000_000);
for (let i = 0; i < AGED_OPS / CHURN; i++) churn(aged);
Deno.bench({
  group: "iova fragmented",
  name: `${CHURN} x random alloc+free, 1M live ranges, after ${
    AGED_OPS.toLocaleString("en-US")
  } more`,
  fn() {
    churn(aged);
  },
});

for (const [n, label, s] of populations) {
  const t = streaming(s);
  Deno.bench({
    group: "iova fragmented, streaming",
    name: `${CHURN} x alloc+free (${WINDOW} in flight), ${label} live ranges`,
    baseline: n === 1_000,
    fn() {
      stream(t);
    },
  });
}
