/**
 * Model-based random testing of the IOVA allocator. Without the cache the
 * model is exact: every allocation must land at the highest naturally
 * aligned start below min(limit, end) whose range overlaps nothing live or
 * reserved, and ENOMEM must mean no such start exists. With the default
 * cache (and with Exynos-style placement constraints) the checks are the
 * invariants: no two live ranges overlap (guard gaps kept), bounds,
 * alignment, `find`, counters, and the allocator's own audit after every
 * step; freeing everything and flushing returns it to empty.
 */
import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import { IommuError } from "../../core/mod.ts";
import { IovaAllocator } from "../../core/dma/mod.ts";

const G = 4096;
const END = 1 << 24; // 4096 granules: small, so the space fills up
const RESERVED = { start: 0x40_0000, size: 0x10_0000 };

type Op =
  | { t: "alloc"; n: number; limit: number }
  | { t: "free"; i: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("alloc" as const),
      n: fc.oneof(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 300 }),
      ),
      limit: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant("free" as const), i: fc.nat() }),
  },
);

interface Variant {
  name: string;
  exact: boolean;
  options: ConstructorParameters<typeof IovaAllocator>[0];
  guard: number;
  minAlign: number;
}

const VARIANTS: Variant[] = [
  {
    name: "no cache (exact placement model)",
    exact: true,
    options: { end: END, cacheMaxSize: 0, reserved: [RESERVED] },
    guard: 0,
    minAlign: G,
  },
  {
    name: "default magazine cache",
    exact: false,
    options: { end: END, reserved: [RESERVED] },
    guard: 0,
    minAlign: G,
  },
  {
    name: "Exynos-style constraints (256 KiB alignment, 128 KiB guard)",
    exact: false,
    options: {
      end: END,
      reserved: [RESERVED],
      constraints: { alignment: 256 * 1024, guardGap: 128 * 1024 },
    },
    guard: 128 * 1024,
    minAlign: 256 * 1024,
  },
];

const LIMITS = [END, END / 2, 0x50_0000, 0x2_0000];

function pow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

// The longest run of bytes in [G, END) that no live or reserved range
// holds (the exact variant keeps no guard).
function largestFree(live: readonly { start: number; foot: number }[]): number {
  const busy = [
    ...live.map((r) => [r.start, r.start + r.foot] as const),
    [RESERVED.start, RESERVED.start + RESERVED.size] as const,
  ].sort((x, y) => x[0] - y[0]);
  let best = 0;
  let at = G;
  for (const [s, e] of busy) {
    if (s > at) best = Math.max(best, s - at);
    at = Math.max(at, e);
  }
  return Math.max(best, END - at);
}

function runSequence(
  v: Variant,
  ops: readonly Op[],
  stats: { ops: number; nomem: number },
): void {
  const a = new IovaAllocator(v.options);
  const live: { start: number; size: number; foot: number }[] = [];
  const busy = (s: number, e: number): boolean =>
    live.some((r) => s < r.start + r.foot && r.start < e) ||
    (s < RESERVED.start + RESERVED.size + v.guard && RESERVED.start < e);
  for (let step = 0; step < ops.length; step++) {
    const op = ops[step]!;
    stats.ops++;
    const where = `${v.name} step ${step} ${JSON.stringify(op)}`;
    if (op.t === "alloc") {
      const limit = LIMITS[op.limit]!;
      const size = op.n * G;
      const occupied = v.exact ? size : a.sizeFor(size);
      const align = Math.max(pow2(op.n) * G, v.minAlign);
      let expected = -1;
      if (v.exact) {
        // The highest aligned start whose range fits below the limit.
        for (
          let s = Math.floor((limit - size) / align) * align;
          s >= G;
          s -= align
        ) {
          if (!busy(s, s + size)) {
            expected = s;
            break;
          }
        }
      }
      let got: number;
      try {
        got = a.alloc(size, limit);
      } catch (e) {
        if (!(e instanceof IommuError)) throw e;
        if (e.kind === "ERANGE") {
          assert(
            a.sizeFor(size) > limit - G,
            `${where}: ERANGE for a size that fits the window`,
          );
          continue;
        }
        assertEquals(e.kind, "ENOMEM", where);
        stats.nomem++;
        if (v.exact) {
          assertEquals(
            expected,
            -1,
            `${where}: ENOMEM but ${expected} was free`,
          );
        }
        continue;
      }
      if (v.exact) assertEquals(got, expected, `${where}: placement`);
      assert(
        got >= G && got + occupied <= limit,
        `${where}: ${got} out of bounds`,
      );
      assertEquals(got % align, 0, `${where}: ${got} not aligned to ${align}`);
      assert(
        !busy(got, got + occupied + v.guard),
        `${where}: ${got} overlaps a live or reserved range`,
      );
      live.push({ start: got, size, foot: occupied + v.guard });
    } else {
      if (live.length === 0) continue;
      const [r] = live.splice(op.i % live.length, 1);
      a.free(r!.start, r!.size);
    }
    const problems = a.audit();
    assertEquals(problems, [], `${where}: audit`);
    assertEquals(a.stats().liveRanges, live.length, `${where}: liveRanges`);
    if (v.exact) {
      assertEquals(
        a.stats().largestFreeGap,
        largestFree(live),
        `${where}: largestFreeGap`,
      );
    }
    for (const r of live) {
      assertEquals(a.find(r.start)?.start, r.start, `${where}: find`);
    }
  }
  for (const r of live.splice(0)) a.free(r.start, r.size);
  a.flushCache();
  assertEquals(a.audit(), []);
  assertEquals(a.stats().liveRanges, 0);
  assertEquals(a.stats().liveBytes, 0);
  assertEquals(a.stats().cachedRanges, 0);
}

for (const v of VARIANTS) {
  Deno.test(`IOVA allocator, ${v.name}, over 10,000 random sequences`, () => {
    const t0 = performance.now();
    const stats = { ops: 0, nomem: 0 };
    const runs = Number(Deno.env.get("IOMMUKIT_RUNS") ?? 10_000);
    const seed = Deno.env.get("IOMMUKIT_SEED");
    const path = Deno.env.get("IOMMUKIT_PATH");
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 5, maxLength: 40 }),
        (ops) => runSequence(v, ops, stats),
      ),
      {
        numRuns: runs,
        seed: seed === undefined ? 0x10a : Number(seed),
        ...(path === undefined ? {} : { path }),
      },
    );
    console.log(
      `iova allocator (${v.name}): ${runs} sequences, ${stats.ops} steps, ${stats.nomem} ENOMEM, 0 divergences, ${
        Math.round(performance.now() - t0)
      } ms`,
    );
  });
}
