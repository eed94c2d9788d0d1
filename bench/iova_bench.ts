/**
 * IOVA allocator benchmarks (issue 8 targets). Each iteration runs a batch
 * of operations so that timer overhead and scheduling noise stay small;
 * divide the time per iteration by the batch size in the name.
 * - "iova cache": alloc+free of a recurring size served by the rcache
 *   (target <= 40 ns per pair) against the same pairs with the cache
 *   disabled (baseline).
 * - "iova fragmented": alloc of a random size + free of a random live range
 *   with 1K (baseline), 100K and 1M live ranges in a fragmented space, tree
 *   path only (target: 1M no more than 3x the 1K baseline, i.e. O(log n)).
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
  iova: Float64Array;
  size: Float64Array;
  sizes: Float64Array;
  picks: Uint32Array;
  step: number;
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
  let live = 2 * n;
  while (live > n) {
    const j = rnd(live);
    a.free(iova[j]!, size[j]!);
    live--;
    iova[j] = iova[live]!;
    size[j] = size[live]!;
  }
  const sizes = new Float64Array(SIZES);
  const picks = new Uint32Array(SIZES);
  for (let i = 0; i < SIZES; i++) {
    sizes[i] = (1 + rnd(64)) * K;
    picks[i] = rnd(n);
  }
  return {
    a,
    iova: iova.subarray(0, n),
    size: size.subarray(0, n),
    sizes,
    picks,
    step: 0,
  };
}

const CHURN = 32;

/** CHURN times: one free of a random live range, one alloc of a random size. */
function churn(s: Fragmented): void {
  for (let k = 0; k < CHURN; k++) {
    const i = s.step++ & (SIZES - 1);
    const j = s.picks[i]!;
    s.a.free(s.iova[j]!, s.size[j]!);
    const sz = s.sizes[i]!;
    s.iova[j] = s.a.alloc(sz);
    s.size[j] = sz;
  }
}

for (
  const [n, label] of [[1_000, "1K"], [100_000, "100K"], [
    1_000_000,
    "1M",
  ]] as const
) {
  const s = fragmented(n);
  Deno.bench({
    group: "iova fragmented",
    name: `${CHURN} x random alloc+free, ${label} live ranges`,
    baseline: n === 1_000,
    fn() {
      churn(s);
    },
  });
}
