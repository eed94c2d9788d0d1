// The generic unit's walk caches answer repeated hits from a table of
// recent hits (plugins/generic_iommu/walk_cache.ts, internal): checked here
// against a plain core Tlb driven with the same operations, for every
// replacement policy. Results, counters, entries and the last-hit getters
// must stay equal after every step.
import { assert, assertEquals } from "@std/assert";
import { Tlb, type TlbReplacement } from "../core/mod.ts";
import {
  S_GEN,
  S_HITS,
  S_INV,
  S_LAST,
  S_MASK,
  WalkCache,
} from "../plugins/generic_iommu/walk_cache.ts";
import { expectError } from "./support/assertions.ts";

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
    // The one-call form of the getters, for every permission asked (a
    // bigint need matches nothing, after a hit-table hit too).
    pageEnd: [0, 1, 2, 3, 3n].map((need) => c.lastPageEndIf(need as number)),
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
  for (let step = 0; step < 5000; step++) {
    const ctx = next(8) === 0 ? 2 : 1;
    // Mostly the same region again (what the memo answers), else another.
    if (next(4) === 0) region = next(8);
    const iova = region * MIB2 + next(8) * 4096 + next(2) * 8;
    const op = next(21);
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
      // lookupAfterMiss is lookup (its own probe when no lookupHitIf
      // missed this key just before).
      got = step % 2 === 0
        ? memo.lookup(ctx, iova)
        : memo.lookupAfterMiss(ctx, iova);
      want = ref.lookup(ctx, iova);
    } else if (op < 17) {
      // The probe of the size hit last, with a permission asked: its hit
      // must leave the getters on its own entry, not on the memo's.
      const need = next(4);
      got = memo.lookupHitIf(ctx, iova, need);
      want = ref.lookupHitIf(ctx, iova, need);
      if (got >= 0) assertEquals(memo.hitEnd, ref.hitEnd);
      // A hardware model's miss path after it.
      if (got === -1) {
        assertEquals(memo.lookupAfterMiss(ctx, iova), ref.lookup(ctx, iova));
      }
    } else if (op < 18) {
      const size = 4096 << next(10);
      got = memo.invalidateRange(ctx, iova, size);
      want = ref.invalidateRange(ctx, iova, size);
    } else if (op < 19) {
      got = memo.invalidateContext(ctx);
      want = ref.invalidateContext(ctx);
    } else if (op < 20) {
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

// The hit table answers any entry a probe hit before (not just the last
// one) under round-robin and random replacement while one page size is in
// use; LRU, and a cache that has seen a second size, answer only the last
// hit. Checked against a plain Tlb with many regions, contexts, sizes,
// bad keys and every operation; the walker's fast path (which reads the
// table through hits() and state()) is covered in the walker tests.
function wideDifferential(
  replacement: TlbReplacement,
  seed: number,
  mixSizes: boolean,
): { tableHits: number; notLast: number } {
  const shape = { sets: 8, ways: 4, replacement, seed: 3 };
  const memo = new WalkCache(shape);
  const ref = new Tlb(shape);
  const next = rng(seed);
  const st = memo.state();
  let tableHits = 0;
  let notLast = 0;
  let lastHitBase = -1;
  let region = 0;
  for (let step = 0; step < 6000; step++) {
    const ctx = next(6) === 0 ? next(5) : 1;
    // 24 regions over 32 entries: most probes hit, many regions apart;
    // often the same region again (what LRU's table answers).
    if (next(2) === 0) region = next(24) + (next(50) === 0 ? 2 ** 25 : 0);
    const bad = next(300);
    const iova = bad === 0
      ? region * MIB2 + 0.5
      : bad === 1
      ? -MIB2
      : region * MIB2 + next(512) * 4096 + next(8);
    // Inserts first fill the cache, then are rare (each starts a new
    // generation of the table).
    const op = step < 200 ? 85 + next(2) * 5 : next(100);
    let got: unknown;
    let want: unknown;
    const run = (f: () => unknown): unknown => {
      try {
        return f();
      } catch (e) {
        return `${(e as { kind?: string }).kind} ${(e as Error).message}`;
      }
    };
    if (op < 6) {
      // The size-that-hit-last probe a hardware model's hit path uses: a
      // hit must be a lookup hit for the hit table too (LRU order).
      got = run(() => memo.lookupHit(ctx, iova));
      want = run(() => ref.lookupHit(ctx, iova));
    } else if (op < 85) {
      const before = st[S_HITS]!;
      got = run(() => memo.probe(ctx, iova));
      want = run(() => ref.lookup(ctx, iova) >= 0 ? ref.lastPaBase : -1);
      if (st[S_HITS]! > before) {
        tableHits++;
        if (Math.floor(iova / MIB2) * MIB2 !== lastHitBase) notLast++;
      }
      if (typeof want === "number" && want >= 0) {
        lastHitBase = Math.floor(iova / MIB2) * MIB2;
      }
    } else if (op < 90) {
      const size = mixSizes && next(6) === 0 ? 4096 : MIB2;
      const pa = 0x4000_0000 + next(64) * 4096;
      const perm = next(4);
      got = run(() => memo.insert(ctx, iova, size, pa, perm));
      want = run(() => ref.insert(ctx, iova, size, pa, perm));
    } else if (op < 92) {
      // Tlb.lookupOne is lookup (the walk cache's own, hit table included).
      const one = next(2) === 0;
      got = run(() => one ? memo.lookupOne(ctx, iova) : memo.lookup(ctx, iova));
      want = run(() => ref.lookup(ctx, iova));
    } else if (op < 94) {
      got = run(() => memo.lookupSize(ctx, iova, MIB2));
      want = run(() => ref.lookupSize(ctx, iova, MIB2));
    } else if (op < 95) {
      const size = 4096 << next(12);
      got = run(() => memo.invalidateRange(ctx, iova, size));
      want = run(() => ref.invalidateRange(ctx, iova, size));
    } else if (op < 96) {
      const victim = next(5);
      got = memo.invalidateContext(victim);
      want = ref.invalidateContext(victim);
    } else if (op < 98) {
      got = run(() => memo.peek(ctx, iova));
      want = run(() => ref.peek(ctx, iova));
    } else if (op < 99) {
      memo.resetCounters();
      ref.resetCounters();
    } else if (next(4) === 0) {
      got = memo.invalidateAll();
      want = ref.invalidateAll();
    }
    const what = `${replacement}/${seed}/${mixSizes} step ${step} op ${op}`;
    assertEquals(got, want, what);
    assertEquals(state(memo), state(ref), what);
  }
  return { tableHits, notLast };
}

Deno.test("walk cache hit table: equal to a plain Tlb with many regions, contexts, sizes and bad keys", () => {
  for (const replacement of ["lru", "round-robin", "random"] as const) {
    for (const mixSizes of [false, true]) {
      for (const seed of [11, 12]) {
        const { tableHits, notLast } = wideDifferential(
          replacement,
          seed,
          mixSizes,
        );
        // The table must answer (else this checks nothing), and with one
        // size under round-robin or random it must answer entries other
        // than the last hit.
        assert(tableHits > 300, `${replacement}/${mixSizes}: ${tableHits}`);
        if (replacement !== "lru" && !mixSizes) {
          assert(notLast > 50, `${replacement}: ${notLast} not-last hits`);
        }
      }
    }
  }
});

Deno.test("walk cache hit table: the getters describe a table hit until the next lookup", () => {
  const memo = new WalkCache({ sets: 4, ways: 2, replacement: "round-robin" });
  memo.insert(1, 0, MIB2, 0x4000_1000, 5);
  memo.insert(1, MIB2, MIB2, 0x4000_2000, 6);
  assertEquals(memo.probe(1, 8), 0x4000_1000);
  assertEquals(memo.probe(1, MIB2 + 8), 0x4000_2000);
  const hits = memo.state()[S_HITS]!;
  // The first entry again: not the last hit, answered by the table.
  assertEquals(memo.probe(1, 0x1000), 0x4000_1000);
  assertEquals(memo.state()[S_HITS], hits + 1);
  assertEquals(
    [memo.lastPageSize, memo.lastPerm, memo.lastPaBase],
    [MIB2, 5, 0x4000_1000],
  );
  // Replacing that entry keeps the getters on what was hit (as a Tlb's
  // snapshot does), and the table no longer answers it.
  memo.insert(1, 0, MIB2, 0x4000_3000, 7);
  assertEquals([memo.lastPerm, memo.lastPaBase], [5, 0x4000_1000]);
  assertEquals(memo.probe(1, 0x2000), 0x4000_3000);
  assertEquals(memo.state()[S_HITS], hits + 1, "a Tlb lookup answered");
  assertEquals([memo.lastPerm, memo.lastPaBase], [7, 0x4000_3000]);
  // A lookup by anyone else: the getters follow the Tlb again.
  assertEquals(memo.lookup(1, 5 * MIB2), -1);
  assertEquals([memo.lastPageSize, memo.lastPerm, memo.lastPaBase], [0, 0, -1]);
  // Counted as lookups and hits; reset with the rest.
  const c = memo.counters();
  assertEquals([c.lookups, c.hits, c.misses], [5, 4, 1]);
  memo.resetCounters();
  assertEquals(memo.state()[S_HITS], 0);
  assertEquals(memo.counters().lookups, 0);
});

Deno.test("walk cache hit table: bad keys are refused as by lookup, never answered", () => {
  const memo = new WalkCache({ sets: 4, ways: 2, replacement: "random" });
  memo.insert(1, 0, MIB2, 0x4000_1000, 0);
  assertEquals(memo.probe(1, 0), 0x4000_1000);
  assertEquals(memo.probe(1, 8), 0x4000_1000);
  // Same page number, not an integer: EINVAL (from lookup), not a hit.
  expectError(() => memo.probe(1, 8.5), "EINVAL");
  expectError(() => memo.probe(1.5, 8), "EINVAL");
  expectError(() => memo.probe(-1, 8), "EINVAL");
  expectError(() => memo.probe(1, Number.NaN), "EINVAL");
  expectError(
    () => memo.probe(1, 8n as unknown as number),
    "EINVAL",
  );
  expectError(() => memo.probe(1, 2 ** 53), "EINVAL");
  assertEquals(memo.counters().lookups, 2, "refused probes count nothing");
  // A refused lookup or lookupSize after a table hit leaves the getters
  // on that hit (nothing changes when a call throws), not on the `Tlb`'s
  // last lookup.
  memo.insert(1, MIB2, MIB2, 0x4000_2000, 0);
  assertEquals(memo.probe(1, 0), 0x4000_1000);
  assertEquals(memo.probe(1, MIB2), 0x4000_2000);
  assertEquals(memo.probe(1, 8), 0x4000_1000);
  assertEquals(memo.state()[S_LAST]! >= 0, true, "a table hit");
  expectError(() => memo.lookup(1, 0.5), "EINVAL");
  expectError(() => memo.lookupSize(1, -1, MIB2), "EINVAL");
  expectError(() => memo.insert(1, 0.5, MIB2, 0, 0), "EINVAL");
  expectError(() => memo.invalidateContext(-1), "EINVAL");
  assertEquals(memo.lastPaBase, 0x4000_1000);
  assertEquals(memo.probe(1, 16), 0x4000_1000);
  assertEquals(memo.counters().lookups, 6, "still answered by the table");
});

Deno.test("walk cache state slots: the values walker.ts spells as literals", () => {
  assertEquals([S_GEN, S_INV, S_MASK, S_HITS, S_LAST], [0, 1, 2, 3, 4]);
  const memo = new WalkCache({ sets: 64, ways: 4, replacement: "round-robin" });
  // 256 entries: 512 table slots of eight numbers.
  assertEquals(memo.hits().length, 512 * 8);
  assertEquals(memo.state()[S_MASK], 511);
  const lru = new WalkCache({ sets: 64, ways: 4, replacement: "lru" });
  assertEquals([lru.hits().length, lru.state()[S_MASK]], [8, 0]);
});
