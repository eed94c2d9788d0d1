// The generic unit's walk caches answer a repeated hit from a one-entry
// memo (plugins/generic_iommu/walk_cache.ts, internal): checked here
// against a plain core Tlb driven with the same operations, for every
// replacement policy. Results, counters, entries and the last-hit getters
// must stay equal after every step.
import { assertEquals } from "@std/assert";
import { Tlb, type TlbReplacement } from "../core/mod.ts";
import { WalkCache } from "../plugins/generic_iommu/walk_cache.ts";

const MIB2 = 2 ** 21;

/** xorshift32: a reproducible stream of integers below `n`. */
function rng(seed: number): (n: number) => number {
  let x = seed | 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

function state(c: Tlb): unknown {
  return {
    counters: c.counters(),
    entries: c.entries(),
    size: c.size,
    last: [c.lastPageSize, c.lastPerm, c.lastPaBase],
  };
}

function differential(replacement: TlbReplacement, seed: number): number {
  const shape = { sets: 2, ways: 2, replacement, seed: 7 };
  const memo = new WalkCache(shape);
  const ref = new Tlb(shape);
  const next = rng(seed);
  let memoHits = 0;
  let region = 0;
  // The entry span and context of the previous operation when it was a
  // probe that hit (empty otherwise): probing it again is answered by the
  // memo.
  let hitBase = 0;
  let hitEnd = 0;
  let hitCtx = -1;
  for (let step = 0; step < 4000; step++) {
    const ctx = next(8) === 0 ? 2 : 1;
    // Mostly the same region again (what the memo answers), else another.
    if (next(4) === 0) region = next(8);
    const iova = region * MIB2 + next(8) * 4096 + next(2) * 8;
    const op = next(20);
    let got: number;
    let want: number;
    let hit = false;
    if (op < 12) {
      if (iova >= hitBase && iova < hitEnd && ctx === hitCtx) memoHits++;
      got = memo.probe(ctx, iova);
      want = ref.lookup(ctx, iova) >= 0 ? ref.lastPaBase : -1;
      hit = want >= 0;
    } else if (op < 15) {
      // Mostly 2 MiB entries (a level-2 walk cache), sometimes 4 KiB ones.
      const size = next(5) === 0 ? 4096 : MIB2;
      const pa = 0x4000_0000 + next(64) * 4096;
      const perm = next(4);
      memo.insert(ctx, iova, size, pa, perm);
      ref.insert(ctx, iova, size, pa, perm);
      got = want = 0;
    } else if (op < 16) {
      got = memo.lookup(ctx, iova);
      want = ref.lookup(ctx, iova);
    } else if (op < 17) {
      const size = 4096 << next(10);
      got = memo.invalidateRange(ctx, iova, size);
      want = ref.invalidateRange(ctx, iova, size);
    } else if (op < 18) {
      got = memo.invalidateContext(ctx);
      want = ref.invalidateContext(ctx);
    } else if (op < 19) {
      got = memo.lookupSize(ctx, iova, MIB2);
      want = ref.lookupSize(ctx, iova, MIB2);
    } else if (next(4) === 0) {
      got = memo.invalidateAll();
      want = ref.invalidateAll();
    } else {
      memo.resetCounters();
      ref.resetCounters();
      got = want = 0;
    }
    const size = ref.lastPageSize;
    hitBase = hit ? Math.floor(iova / size) * size : 0;
    hitEnd = hit ? hitBase + size : 0;
    hitCtx = ctx;
    assertEquals(got, want, `${replacement} step ${step} op ${op}`);
    assertEquals(
      state(memo),
      state(ref),
      `${replacement} step ${step} op ${op}`,
    );
  }
  return memoHits;
}

Deno.test("walk cache memo: equal to a plain Tlb on random operations, every policy", () => {
  for (const replacement of ["lru", "round-robin", "random"] as const) {
    for (const seed of [1, 2, 3]) {
      // The memo must actually answer (else this test checks nothing).
      const hits = differential(replacement, seed);
      assertEquals(
        hits > 200,
        true,
        `${replacement}/${seed}: ${hits} memo hits`,
      );
    }
  }
});
