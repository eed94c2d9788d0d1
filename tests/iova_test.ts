import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import { IommuError, type IommuErrorKind } from "../core/mod.ts";
import {
  IOVA_MAGAZINE_SIZE,
  IovaAllocator,
  type IovaAllocatorOptions,
} from "../core/dma/mod.ts";
import {
  IovaTree,
  iovaTreeSlotsForTest,
  KIND_ANCHOR,
  KIND_LIVE,
} from "../core/dma/iova_tree.ts";
import { expectError } from "./support/assertions.ts";

const K = 4096;
const M = 1024 * 1024;
const G4 = 2 ** 32;

function kindOf(f: () => unknown): IommuErrorKind | "ok" {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof IommuError) return e.kind;
    throw e;
  }
}

function healthy(a: IovaAllocator): void {
  assertEquals(a.audit(), []);
}

/**
 * Allocate one granule at a time, at most `bound` times, until an
 * allocation fails (a growth the host refuses, under a stubbed
 * constructor); the failing call must leave stats and audit as they were.
 * `keep` records each range allocated before that (callers keep their live
 * ranges in different shapes).
 */
function untilRefused(
  a: IovaAllocator,
  keep: (at: number) => void,
  bound: number,
): IommuError {
  for (let i = 0; i < bound; i++) {
    const before = a.stats();
    let at: number;
    try {
      at = a.alloc(K);
    } catch (e) {
      assertEquals(a.stats(), before);
      healthy(a);
      if (!(e instanceof IommuError)) throw e;
      return e;
    }
    keep(at);
  }
  throw new Error(`no allocation was refused in ${bound}`);
}

/**
 * Run `f` with the host refusing (a RangeError) every `new ArrayBuffer` or
 * `new Int32Array` whose arguments `refuse` picks; the constructor is
 * restored afterwards, whatever happens.
 *
 * @returns What `f` returned, and how many constructions were refused.
 */
function withRefused<T>(
  name: "ArrayBuffer" | "Int32Array",
  refuse: (args: unknown[]) => boolean,
  f: () => T,
): { value: T; refused: number } {
  const g = globalThis as unknown as Record<string, unknown>;
  const real = g[name] as new (...args: unknown[]) => object;
  let refused = 0;
  g[name] = new Proxy(real, {
    construct(target, args: unknown[], newTarget) {
      if (refuse(args)) {
        refused++;
        throw new RangeError("Array buffer allocation failed");
      }
      return Reflect.construct(target, args, newTarget);
    },
  });
  try {
    const value = f();
    return { value, refused };
  } finally {
    g[name] = real;
  }
}

/** Every construction refused. */
const ALL = (): boolean => true;

// ---------------------------------------------------------------------------
// A brute-force model: the busy footprints as a sorted list, every free gap
// examined for the highest aligned placement. Written from the rules in the
// allocator's documentation, not from its code.
// ---------------------------------------------------------------------------
interface ModelOpts {
  granule: number;
  startPfn: number;
  endPfn: number;
  guard: number;
  minAlign: number;
  maxAlign: number;
  cacheMax: number;
}

class Model {
  busy: { lo: number; hi: number; n: number; reserved: boolean }[] = [];
  constructor(readonly o: ModelOpts) {}

  granules(size: number): number {
    const n = Math.ceil(size / this.o.granule);
    if (n > this.o.cacheMax) return n;
    let p = 1;
    while (p < n) p *= 2;
    return p;
  }

  align(n: number): number {
    let p = 1;
    while (p < n) p *= 2;
    return Math.max(Math.min(p, this.o.maxAlign), this.o.minAlign);
  }

  /** Highest fit in granules, or null; throws nothing (sizes pre-checked). */
  fit(n: number, topPfn: number): number | null {
    const f = n + this.o.guard;
    const a = this.align(n);
    const limit = topPfn + this.o.guard;
    const sorted = [...this.busy].sort((x, y) => x.lo - y.lo);
    let best: number | null = null;
    let p = this.o.startPfn;
    const gaps: [number, number][] = [];
    for (const b of sorted) {
      gaps.push([p, b.lo]);
      p = b.hi;
    }
    gaps.push([p, this.o.endPfn + this.o.guard]);
    for (const [lo, hi0] of gaps) {
      const hi = Math.min(hi0, limit);
      if (hi - lo < f) continue;
      const s = Math.floor((hi - f) / a) * a;
      if (s >= lo && (best === null || s > best)) best = s;
    }
    return best;
  }

  /** Valid placement check for an answer that need not be the highest. */
  valid(lo: number, n: number, topPfn: number): boolean {
    if (lo % this.align(n) !== 0) return false;
    if (lo < this.o.startPfn || lo + n > topPfn) return false;
    const hi = lo + n + this.o.guard;
    return this.busy.every((b) => hi <= b.lo || lo >= b.hi);
  }

  take(lo: number, n: number): void {
    this.busy.push({ lo, hi: lo + n + this.o.guard, n, reserved: false });
  }

  reserve(lo: number, hi: number): void {
    this.busy.push({ lo, hi: hi + this.o.guard, n: 0, reserved: true });
  }

  drop(lo: number): void {
    const i = this.busy.findIndex((b) => b.lo === lo && !b.reserved);
    this.busy.splice(i, 1);
  }
}

type Op =
  | { t: "alloc"; size: number; limit: number | undefined }
  | { t: "free"; pick: number }
  | { t: "badfree"; pick: number; delta: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant("alloc" as const),
      size: fc.oneof(
        fc.integer({ min: 1, max: 40 * K }),
        fc.constantFrom(K, 2 * K, 8 * K, 16 * K),
      ),
      limit: fc.option(fc.integer({ min: 1, max: 600 }).map((g) => g * K), {
        nil: undefined,
      }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("free" as const),
      pick: fc.nat(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("badfree" as const),
      pick: fc.nat(),
      delta: fc.constantFrom(K, 3),
    }),
  },
);

const setupArb = fc.record({
  startPfn: fc.integer({ min: 0, max: 8 }),
  endPfn: fc.integer({ min: 32, max: 512 }),
  guard: fc.constantFrom(0, 0, 1, 3),
  minAlign: fc.constantFrom(1, 1, 1, 4, 8),
  maxAlign: fc.constantFrom(1 << 30, 1 << 30, 2, 8),
  reserved: fc.array(
    fc.record({
      at: fc.nat({ max: 520 }),
      len: fc.integer({ min: 1, max: 9 }),
    }),
    { maxLength: 3 },
  ),
});

interface Setup {
  startPfn: number;
  endPfn: number;
  guard: number;
  minAlign: number;
  maxAlign: number;
  reserved: { at: number; len: number }[];
}

/** Setups are in 4 KiB pages; the allocator may use a finer granule. */
function build(
  s: Setup,
  gr: number,
  extra: Partial<IovaAllocatorOptions>,
): { a: IovaAllocator; m: Model } {
  const per = K / gr;
  const cacheMax = extra.cacheMaxSize === undefined
    ? 32
    : extra.cacheMaxSize / gr;
  const a = new IovaAllocator({
    granule: gr,
    start: s.startPfn * K,
    end: s.endPfn * K,
    constraints: { alignment: s.minAlign * K, guardGap: s.guard * K },
    maxAlignment: s.maxAlign * K,
    ...extra,
  });
  const m = new Model({
    granule: gr,
    startPfn: Math.max(1, s.startPfn * per),
    endPfn: s.endPfn * per,
    guard: s.guard * per,
    minAlign: s.minAlign * per,
    maxAlign: s.maxAlign * per,
    cacheMax,
  });
  for (const r of s.reserved) {
    a.reserve(r.at * K, r.len * K);
    const lo = Math.max(r.at * per, m.o.startPfn);
    const hi = Math.min((r.at + r.len) * per, m.o.endPfn);
    if (hi > lo) m.reserve(lo, hi);
  }
  // Overlapping reservations merge in the allocator; the model keeps them
  // apart, which describes the same busy space once merged.
  const merged: typeof m.busy = [];
  for (const b of [...m.busy].sort((x, y) => x.lo - y.lo)) {
    const last = merged[merged.length - 1];
    if (last && b.lo <= last.hi) last.hi = Math.max(last.hi, b.hi);
    else merged.push({ ...b });
  }
  m.busy = merged;
  return { a, m };
}

/** Run ops on both; `exact` demands the same addresses, else only validity. */
function run(
  s: Setup,
  ops: Op[],
  extra: Partial<IovaAllocatorOptions>,
  exact: boolean,
  gr = K,
): void {
  const { a, m } = build(s, gr, extra);
  const live: { iova: number; size: number }[] = [];
  for (const op of ops) {
    healthy(a); // after every step: a stale summary must not hide
    if (op.t === "alloc") {
      const top = Math.min(
        op.limit === undefined ? Infinity : Math.floor(op.limit / gr),
        m.o.endPfn,
      );
      const n = m.granules(op.size);
      let got: number | IommuErrorKind;
      try {
        got = a.alloc(op.size, op.limit);
      } catch (e) {
        if (!(e instanceof IommuError)) throw e;
        got = e.kind;
      }
      if (n > top - m.o.startPfn) {
        assertEquals(got, "ERANGE");
        continue;
      }
      const want = m.fit(n, top);
      if (want === null) {
        assertEquals(got, "ENOMEM", `model finds no fit for ${n} below ${top}`);
        continue;
      }
      if (typeof got !== "number") {
        throw new Error(`model fits ${n} at ${want}, allocator says ${got}`);
      }
      if (exact) assertEquals(got / gr, want);
      else assert(m.valid(got / gr, n, top), `invalid placement ${got / gr}`);
      assert(got !== 0);
      m.take(got / gr, n);
      live.push({ iova: got, size: op.size });
    } else if (op.t === "free") {
      if (live.length === 0) continue;
      const [v] = live.splice(op.pick % live.length, 1);
      a.free(v!.iova, v!.size);
      m.drop(v!.iova / gr);
    } else {
      if (live.length === 0) {
        assertEquals(kindOf(() => a.free(K * 7 + 5, K)), "ENOENT");
        continue;
      }
      const v = live[op.pick % live.length]!;
      if (op.delta === 3) {
        // Inside the allocation (or off-granule for a one-granule one).
        const n = m.granules(v.size);
        const inside = n > 1 ? v.iova + gr : gr > 1 ? v.iova + 1 : -1;
        if (inside >= 0) {
          assertEquals(kindOf(() => a.free(inside, v.size)), "ENOENT");
        }
      } else {
        // A size that rounds differently is refused (EINVAL), a size that
        // rounds the same is the same allocation; skip that case.
        const other = v.size + 64 * K;
        assertEquals(kindOf(() => a.free(v.iova, other)), "EINVAL");
      }
    }
  }
  healthy(a);
  assertEquals(a.stats().liveRanges, live.length);
  fallbacksSeen += a.stats().searchFallbacks;
}

let fallbacksSeen = 0;

// ---------------------------------------------------------------------------

Deno.test("IovaAllocator: constructor validation", async (t) => {
  await t.step("bad options are EINVAL / ERANGE", () => {
    expectError(() => new IovaAllocator({ granule: 3000, end: G4 }), "EINVAL");
    expectError(() => new IovaAllocator({ start: 100, end: G4 }), "EINVAL");
    expectError(() => new IovaAllocator({ start: -K, end: G4 }), "EINVAL");
    expectError(() => new IovaAllocator({ end: G4 + 1 }), "EINVAL");
    expectError(() => new IovaAllocator({ end: 1.5 }), "EINVAL");
    expectError(() => new IovaAllocator({ end: 2 ** 54 }), "ERANGE");
    expectError(
      () => new IovaAllocator({ end: 2 ** 53, constraints: { guardGap: K } }),
      "ERANGE",
    );
    expectError(() => new IovaAllocator({ end: K }), "ERANGE");
    expectError(
      () => new IovaAllocator({ start: 8 * K, end: 8 * K }),
      "ERANGE",
    );
    expectError(
      () => new IovaAllocator({ end: G4, constraints: { alignment: 3 * K } }),
      "EINVAL",
    );
    expectError(
      () => new IovaAllocator({ end: G4, constraints: { guardGap: -1 } }),
      "EINVAL",
    );
    expectError(
      () => new IovaAllocator({ end: G4, cacheMaxSize: 3 * K }),
      "EINVAL",
    );
    expectError(
      () => new IovaAllocator({ end: G4, cacheMaxSize: 1024 }),
      "EINVAL",
    );
    expectError(() => new IovaAllocator({ end: G4, depotSize: -1 }), "EINVAL");
    expectError(() => new IovaAllocator({ end: G4, depotSize: 1.5 }), "EINVAL");
    expectError(
      () => new IovaAllocator({ end: G4, searchProbes: -2 }),
      "EINVAL",
    );
    expectError(
      () => new IovaAllocator({ end: G4, maxAlignment: 5 }),
      "EINVAL",
    );
    expectError(
      () => new IovaAllocator({ end: G4, reserved: [{ start: -1, size: K }] }),
      "EINVAL",
    );
  });

  await t.step(
    "start below one granule is raised: IOVA 0 never handed out",
    () => {
      const a = new IovaAllocator({ start: 0, end: 4 * K, cacheMaxSize: 0 });
      assertEquals(a.start, K);
      assertEquals(a.end, 4 * K);
      assertEquals(a.granule, K);
      const got = [a.alloc(K), a.alloc(K), a.alloc(K)];
      assertEquals(got, [3 * K, 2 * K, K]);
      expectError(() => a.alloc(K), "ENOMEM");
      healthy(a);
    },
  );
});

Deno.test("IovaAllocator: placement", async (t) => {
  await t.step("top-down, naturally aligned, below the limit", () => {
    const a = new IovaAllocator({ end: 2 ** 40 });
    assertEquals(a.alloc(K, G4), G4 - K);
    assertEquals(a.alloc(2 * K, G4), G4 - 4 * K); // 8 KiB aligned below
    assertEquals(a.alloc(K, G4), G4 - 2 * K); // fills the hole above
    assertEquals(a.alloc(3 * K, G4), G4 - 8 * K); // rounds to 16 KiB
    assertEquals(a.alloc(1), 2 ** 40 - K); // no limit: aperture top
    assertEquals(a.stats().liveRanges, 5);
    assertEquals(a.stats().liveBytes, (1 + 2 + 1 + 4 + 1) * K);
    healthy(a);
  });

  await t.step(
    "large sizes occupy granule-rounded size, aligned to pow2",
    () => {
      const a = new IovaAllocator({ end: G4 });
      const x = a.alloc(33 * K); // not cacheable: occupies 33 granules
      assertEquals(x % (64 * K), 0);
      assertEquals(x, G4 - 64 * K);
      assertEquals(a.sizeFor(33 * K), 33 * K);
      assertEquals(a.sizeFor(17 * K), 32 * K);
      assertEquals(a.sizeFor(1), K);
      assertEquals(a.find(x + 32 * K), { start: x, size: 33 * K });
      assertEquals(a.find(x + 33 * K), undefined);
      // The 31 granules above stay usable by smaller requests.
      assertEquals(a.alloc(16 * K), G4 - 16 * K);
      expectError(() => a.sizeFor(0), "EINVAL");
      healthy(a);
    },
  );

  await t.step("32-bit limit respected when the aperture is 48-bit", () => {
    const a = new IovaAllocator({ end: 2 ** 48, cacheMaxSize: 0 });
    for (let i = 0; i < 200; i++) {
      const x = a.alloc((1 + (i % 7)) * K, G4);
      assert(x + a.sizeFor((1 + (i % 7)) * K) <= G4);
    }
    // A mask just above a granule boundary rounds down.
    const y = a.alloc(K, 2 ** 20 + 100);
    assertEquals(y, 2 ** 20 - K);
    healthy(a);
  });

  await t.step("the gap cut by the limit is used exactly", () => {
    const a = new IovaAllocator({ end: 64 * K, cacheMaxSize: 0 });
    a.reserve(40 * K, 24 * K);
    // Free gap is [1, 40) granules; a limit at 37 cuts it.
    assertEquals(a.alloc(4 * K, 37 * K), 32 * K);
    assertEquals(a.alloc(4 * K, 37 * K), 28 * K);
    healthy(a);
  });

  await t.step("exact fit and misaligned gaps are handled", () => {
    const a = new IovaAllocator({ end: 64 * K, cacheMaxSize: 0 });
    a.reserve(40 * K, 24 * K);
    a.reserve(K, 30 * K); // free: [31, 40) granules
    assertEquals(a.alloc(8 * K), 32 * K); // only aligned 8-slot in a 9-gap
    expectError(() => a.alloc(2 * K), "ENOMEM"); // [31,32) is 1 granule
    assertEquals(a.alloc(K), 31 * K);
    healthy(a);
  });
});

Deno.test("IovaAllocator: argument errors", async (t) => {
  const a = new IovaAllocator({ end: G4 });
  await t.step("alloc", () => {
    expectError(() => a.alloc(0), "EINVAL");
    expectError(() => a.alloc(-K), "EINVAL");
    expectError(() => a.alloc(1.5), "EINVAL");
    expectError(() => a.alloc(NaN), "EINVAL");
    expectError(() => a.alloc(K, 0), "EINVAL");
    expectError(() => a.alloc(K, 1.5), "EINVAL");
    expectError(() => a.alloc(K, 2 ** 53 + 2), "EINVAL");
    expectError(() => a.alloc(K, 100), "ERANGE"); // window below start
    expectError(() => a.alloc(G4), "ERANGE"); // larger than aperture
    expectError(() => a.alloc(2 * M, M), "ERANGE");
    assertEquals(a.stats().allocs, 0);
    assertEquals(a.alloc(K, 2 ** 53), G4 - K); // 53-bit mask + 1 is fine
  });
  await t.step("free", () => {
    const x = a.alloc(2 * K);
    expectError(() => a.free(-1, K), "EINVAL");
    expectError(() => a.free(1.5, K), "EINVAL");
    expectError(() => a.free(x, 0), "EINVAL");
    expectError(() => a.free(x, 8 * K), "EINVAL"); // size mismatch
    expectError(() => a.free(x + 1, 2 * K), "ENOENT"); // not a start
    expectError(() => a.free(x + K, K), "ENOENT");
    expectError(() => a.free(16 * K, K), "ENOENT"); // never allocated
    a.free(x, 2 * K - 5); // rounds to the same 2 granules
    expectError(() => a.free(x, 2 * K), "ENOENT"); // double free (cached)
    assertEquals(a.stats().frees, 1);
    healthy(a);
  });
  await t.step("free with a size of the other class (cacheable or not)", () => {
    // Cacheable sizes are <= 32 granules here: a wrong size of the other
    // class is still a size mismatch of a live allocation, not ENOENT.
    const big = a.alloc(40 * K);
    const small = a.alloc(4 * K);
    const frees = a.stats().frees;
    expectError(() => a.free(big, K), "EINVAL"); // cacheable size, big range
    expectError(() => a.free(big, 32 * K), "EINVAL");
    expectError(() => a.free(small, 40 * K), "EINVAL"); // the other way
    expectError(() => a.free(big + K, 40 * K), "ENOENT"); // not a start
    expectError(() => a.free(big + 1, 40 * K), "ENOENT"); // off-granule
    expectError(() => a.free(2 * G4 - 64 * K, 40 * K), "ENOENT");
    assertEquals(a.stats().frees, frees);
    a.free(big, 40 * K - 100); // rounds to the same 40 granules
    expectError(() => a.free(big, 40 * K), "ENOENT"); // double free
    expectError(() => a.free(big, K), "ENOENT");
    a.free(small, 4 * K);
    healthy(a);
    const b = new IovaAllocator({ end: G4, cacheMaxSize: 0 });
    const x = b.alloc(K);
    expectError(() => b.free(x, 2 * K), "EINVAL");
    b.free(x, K);
    expectError(() => b.free(x, K), "ENOENT"); // double free, no cache
    assertEquals(b.stats().frees, 1);
    healthy(b);
  });
  await t.step("find", () => {
    expectError(() => a.find(-1), "EINVAL");
    expectError(() => a.contains(0.5), "EINVAL");
  });
  await t.step("reserve", () => {
    expectError(() => a.reserve(-K, K), "EINVAL");
    expectError(() => a.reserve(K, 0), "EINVAL");
    expectError(() => a.reserve(2 ** 53 - K, 2 * K), "ERANGE");
  });
  await t.step("ENOMEM leaves no partial state", () => {
    const b = new IovaAllocator({ end: 8 * K, cacheMaxSize: 0 });
    b.alloc(4 * K);
    const before = b.stats();
    expectError(() => b.alloc(4 * K), "ENOMEM");
    const after = b.stats();
    assertEquals(after.allocFailures, 1);
    assertEquals({ ...after, allocFailures: 0 }, {
      ...before,
      allocFailures: 0,
    });
    healthy(b);
  });
});

Deno.test("IovaAllocator: reserved ranges", async (t) => {
  await t.step("never handed out, merged, clipped", () => {
    const a = new IovaAllocator({
      end: 64 * K,
      cacheMaxSize: 0,
      reserved: [{ start: 48 * K, size: 16 * K }, {
        start: 40 * K,
        size: 9 * K,
      }],
    });
    assertEquals(a.stats().reservedRanges, 1); // merged
    a.reserve(100 * K, K); // outside: no effect
    a.reserve(0, 2 * K + 1); // clipped to [1, 3) granules
    assertEquals(a.stats().reservedRanges, 2);
    const got: number[] = [];
    for (;;) {
      const k = kindOf(() => got.push(a.alloc(K)));
      if (k !== "ok") {
        assertEquals(k, "ENOMEM");
        break;
      }
    }
    assertEquals(got.length, 40 - 3);
    for (const x of got) assert(x >= 3 * K && x < 40 * K, `got ${x}`);
    assertEquals(got[0], 39 * K);
    assertEquals(a.find(50 * K), undefined); // reserved is not an allocation
    expectError(() => a.free(48 * K, K), "ENOENT");
    healthy(a);
  });

  await t.step(
    "EEXIST over a live allocation; cached ranges are flushed",
    () => {
      const a = new IovaAllocator({ end: 64 * K });
      const x = a.alloc(4 * K);
      const y = a.alloc(4 * K);
      expectError(() => a.reserve(x + K, K), "EEXIST");
      assertEquals(a.stats().reservedRanges, 0);
      a.free(y, 4 * K); // cached
      a.reserve(y, 4 * K);
      assertEquals(a.stats().cachedRanges, 0);
      assertEquals(a.stats().reservedRanges, 1);
      assert(a.alloc(4 * K) < y);
      healthy(a);
    },
  );
});

Deno.test("IovaAllocator: node storage is reused and grows", async (t) => {
  // Nodes freed long ago are reused for new ranges placed elsewhere, and
  // the node store grows past a full one; the audit checks the tree.
  await t.step("reuse far from where the node was, then growth", () => {
    const a = new IovaAllocator({ end: G4, cacheMaxSize: 0 });
    // The anchor and 2302 ranges fill 2304 node slots (a full store).
    const got: number[] = [];
    for (let i = 0; i < 2302; i++) got.push(a.alloc(K));
    assertEquals(got[2301], G4 - 2302 * K);
    for (let i = 0; i < 32; i++) a.free(got[i]!, K); // the oldest nodes
    // Placed below everything, far from the freed top.
    assertEquals(a.alloc(K, 2 ** 31), 2 ** 31 - K);
    assertEquals(a.alloc(K), G4 - K); // and the freed top is reused
    healthy(a);
    for (let i = 0; i < 40; i++) a.alloc(K, 2 ** 31); // then it grows
    assertEquals(a.stats().liveRanges, 2302 - 32 + 2 + 40);
    healthy(a);
  });
  await t.step("churn over a fragmented population", () => {
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const live: [number, number][] = [];
    for (let i = 0; i < 6000; i++) {
      const size = (1 + rnd(64)) * K;
      live.push([a.alloc(size), size]);
    }
    for (let i = 0; i < 20000; i++) {
      const j = rnd(live.length);
      a.free(live[j]![0], live[j]![1]);
      const size = (1 + rnd(64)) * K;
      live[j] = [a.alloc(size), size];
      if (i % 4 === 0) {
        const [x, s] = live.pop()!;
        a.free(x, s);
      }
    }
    assertEquals(a.stats().liveRanges, live.length);
    healthy(a);
  });
});

Deno.test("IovaAllocator: a large tree that loses half its ranges is compacted", async (t) => {
  // 70,000 ranges need 88,574 node slots; below half of them the tree
  // moves its nodes into a smaller store (renumbering them), and the
  // address index and the cache must follow.
  let seed = 99;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const fill = (a: IovaAllocator): [number, number][] => {
    const live: [number, number][] = [];
    for (let i = 0; i < 70000; i++) {
      const size = (1 + rnd(64)) * K;
      live.push([a.alloc(size), size]);
    }
    return live;
  };
  const dropOne = (a: IovaAllocator, live: [number, number][]): number[] => {
    const j = rnd(live.length);
    const [x, s] = live[j]!;
    live[j] = live[live.length - 1]!;
    live.pop();
    a.free(x, s);
    return [x, s];
  };
  // Audited, 20 placements as the model's, then every range freed by its
  // start (so the index found each), audited again.
  const placedThenDrained = (a: IovaAllocator, live: [number, number][]) => {
    healthy(a);
    allocLikeModel(a, live);
    while (live.length > 0) dropOne(a, live);
    assertEquals(a.stats().liveRanges, 0);
    healthy(a);
  };
  // 20 allocations, each where the brute-force model of the live ranges
  // puts it.
  const allocLikeModel = (a: IovaAllocator, live: [number, number][]) => {
    const model = new Model({
      granule: K,
      startPfn: 1,
      endPfn: 2 ** 40 / K,
      guard: 0,
      minAlign: 1,
      maxAlign: 2 ** 40,
      cacheMax: 0,
    });
    for (const [x, s] of live) model.take(x / K, Math.ceil(s / K));
    for (let i = 0; i < 20; i++) {
      const size = (1 + rnd(64)) * K;
      const at = a.alloc(size);
      assertEquals(at, model.fit(size / K, 2 ** 40 / K)! * K);
      model.take(at / K, size / K);
      live.push([at, size]);
    }
  };
  await t.step("placements and the index stay exact", () => {
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const live = fill(a);
    const before = a.stats().nodeSlots;
    assert(before >= 65536, `${before} slots`);
    while (live.length > 30000) dropOne(a, live);
    const after = a.stats().nodeSlots;
    assert(
      after < 0.6 * before && after > 30000,
      `${before} -> ${after} slots`,
    );
    healthy(a);
    allocLikeModel(a, live);
    // Churn: nodes whose height crosses the dense region's bound move in
    // or out of it, and the index follows them; placements stay exact.
    for (let i = 0; i < 6000; i++) {
      dropOne(a, live);
      const size = (1 + rnd(64)) * K;
      live.push([a.alloc(size), size]);
    }
    // Every range is found by its start (the index was renumbered).
    placedThenDrained(a, live);
  });
  await t.step(
    "without memory for it, nothing moves and the next try waits for the population to halve again",
    () => {
      const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
      const live = fill(a);
      const before = a.stats().nodeSlots;
      // The compaction's first allocation is its node store: refuse it,
      // counting the tries. Just below half the slots: one try, which
      // fails.
      const first = withRefused("ArrayBuffer", ALL, () => {
        while (live.length >= before / 2 - 1) dropOne(a, live);
      });
      assertEquals(first.refused, 1);
      // Further frees, down to a quarter of the slots, try nothing.
      const more = withRefused("ArrayBuffer", ALL, () => {
        while (live.length > before / 4 + 2) dropOne(a, live);
      });
      assertEquals(more.refused, 0);
      assertEquals(a.stats().nodeSlots, before);
      healthy(a);
      // With memory back, the next try (below a quarter) compacts.
      while (live.length > before / 4 - 4) dropOne(a, live);
      assert(a.stats().nodeSlots < before / 2, `${a.stats().nodeSlots} slots`);
      healthy(a);
      while (live.length > 0) dropOne(a, live);
      assertEquals(a.stats().liveRanges, 0);
    },
  );
  await t.step("a compacted tree grows again", () => {
    // New nodes take free slots beside their successors (every third main
    // slot is left free), then any free slot, then slots the tree grows
    // by; placements stay the model's.
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const live = fill(a);
    while (live.length > 30000) dropOne(a, live);
    const compacted = a.stats().nodeSlots;
    for (let i = 0; i < 40000; i++) {
      const size = (1 + rnd(64)) * K;
      live.push([a.alloc(size), size]);
      if (i % 3 === 0) dropOne(a, live);
    }
    assert(a.stats().nodeSlots > compacted, `${compacted} slots`);
    placedThenDrained(a, live);
  });
  await t.step(
    "a compacted tree without memory to grow: alloc and reserve fail with ENOMEM and change nothing",
    () => {
      const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
      const live = fill(a);
      while (live.length > 30000) dropOne(a, live);
      const compacted = a.stats().nodeSlots;
      const { value: e } = withRefused("ArrayBuffer", ALL, () => {
        // A reservation takes a free main slot: no growth needed.
        a.reserve(2 ** 38, K);
        // The free main slots run out first (about half a slot per node).
        const e = untilRefused(a, (at) => live.push([at, K]), 40000);
        const before = a.stats();
        expectError(() => a.reserve(2 ** 39, K), "ENOMEM", "IOVA tree");
        assertEquals(a.stats(), before);
        return e;
      });
      assertEquals(e.kind, "ENOMEM");
      assert(live.length > 40000, `${live.length} ranges`);
      assertEquals(a.stats().nodeSlots, compacted);
      healthy(a);
      // With memory back, the same calls succeed and the tree grows.
      live.push([a.alloc(K), K]);
      a.reserve(2 ** 39, K);
      assert(a.stats().nodeSlots > compacted);
      placedThenDrained(a, live);
    },
  );
  await t.step("cached ranges are renumbered too", () => {
    const a = new IovaAllocator({ end: 2 ** 40 });
    const live = fill(a);
    const before = a.stats().nodeSlots;
    // The last range each size class cached is on top of its magazine.
    const top = new Map<number, number>();
    while (live.length > 30000) {
      const had = a.stats().cachedRanges;
      const [x, s] = dropOne(a, live);
      if (a.stats().cachedRanges > had) top.set(a.sizeFor(s!), x!);
    }
    // 1.5 slots per node, plus the dense region for the top of the tree.
    assert(a.stats().nodeSlots < 0.8 * before);
    healthy(a);
    assert(top.size > 0);
    for (const [bytes, x] of top) assertEquals(a.alloc(bytes), x);
    healthy(a);
  });
});

Deno.test("IovaAllocator: starts that collide in the address index", () => {
  // The index keeps each entry's distance from its home slot in 3 bits and
  // a 4-bit tag of its key; 100 starts with one home in the initial
  // 1024-slot table push the run past 7, so lookups, frees and the
  // backward shift must fall back to the keys. (Same hash as
  // core/dma/iova_hash.ts.)
  const hash = (g: number): number =>
    Math.imul(
      (g >>> 0) ^ Math.imul((g / 2 ** 32) | 0, 0x85ebca6b),
      0x9e3779b1,
    );
  const home = (g: number): number => hash(g) >>> 22;
  const tag = (g: number): number => Math.imul(hash(g), 0x2c1b3c6d) >>> 28;
  const starts: number[] = [];
  for (let g = 16; starts.length < 100; g++) {
    if (home(g) === home(15)) starts.push(g);
  }
  // Entries that share the tag too can only be told apart by their keys.
  const sameTag = starts.filter((g) => tag(g) === tag(starts[0]!)).length;
  assert(sameTag >= 3, `${sameTag} starts share the first one's tag`);
  const a = new IovaAllocator({ end: G4, cacheMaxSize: 0 });
  for (const g of starts) assertEquals(a.alloc(K, (g + 1) * K), g * K);
  healthy(a);
  // Free from the front of the run (every later entry shifts back) and
  // from the middle, checking the rest stay reachable.
  for (let i = 0; i < 100; i += 3) a.free(starts[i]! * K, K);
  healthy(a);
  for (let i = 0; i < 100; i++) {
    const kind = i % 3 === 0 ? "ENOENT" : "EINVAL";
    expectError(() => a.free(starts[i]! * K, 2 * K), kind);
  }
  for (let i = 99; i >= 0; i--) {
    if (i % 3 !== 0) a.free(starts[i]! * K, K);
  }
  assertEquals(a.stats().liveRanges, 0);
  healthy(a);
  for (const g of starts) assertEquals(a.alloc(K, (g + 1) * K), g * K);
  assertEquals(a.stats().liveRanges, 100);
  healthy(a);
});

Deno.test("IovaAllocator: find / contains", () => {
  const a = new IovaAllocator({ end: G4 });
  const x = a.alloc(5 * K); // occupies 8 granules
  assertEquals(a.find(x), { start: x, size: 8 * K });
  assertEquals(a.find(x + 8 * K - 1), { start: x, size: 8 * K });
  assert(a.contains(x + 3 * K + 17));
  assert(!a.contains(x - 1));
  assert(!a.contains(0));
  a.free(x, 5 * K);
  assert(!a.contains(x)); // cached is not live
  healthy(a);
});

Deno.test("IovaAllocator: rcache", async (t) => {
  await t.step("a recurring size hits the cache and reuses the IOVA", () => {
    const a = new IovaAllocator({ end: G4 });
    const x = a.alloc(8 * K);
    a.free(x, 8 * K);
    assertEquals(a.stats().cachedRanges, 1);
    assertEquals(a.stats().cachedBytes, 8 * K);
    assertEquals(a.alloc(8 * K), x);
    const s = a.stats();
    assertEquals([s.cacheHits, s.cacheMisses, s.cachedRanges], [1, 1, 0]);
    // Sizes that round to the same class share it.
    a.free(x, 7 * K);
    assertEquals(a.alloc(5 * K + 1), x);
    assertEquals(a.stats().cacheHits, 2);
    healthy(a);
  });

  await t.step("a cached IOVA above the limit is not handed out", () => {
    const a = new IovaAllocator({ end: 2 ** 36 });
    const hi = a.alloc(4 * K);
    assert(hi >= G4);
    a.free(hi, 4 * K);
    const lo = a.alloc(4 * K, G4);
    assertEquals(lo, G4 - 4 * K);
    assertEquals(a.stats().cacheMisses, 2);
    assertEquals(a.alloc(4 * K), hi); // unlimited: the cached one
    // A low entry under a high one is still found by the scan.
    a.free(lo, 4 * K);
    a.free(hi, 4 * K); // on top of the magazine
    assertEquals(a.alloc(4 * K, G4), lo);
    assertEquals(a.alloc(4 * K), hi);
    assertEquals(a.stats().cacheHits, 3);
    healthy(a);
  });

  await t.step("switching limits never hands out a range above one", () => {
    // The hit path remembers the last validated limit; each change of limit
    // (or a call without one) must be honoured on the very next call.
    const a = new IovaAllocator({ end: 2 ** 36 });
    const hi = a.alloc(4 * K);
    const lo = a.alloc(4 * K, G4);
    assert(hi >= G4 && lo < G4);
    a.free(lo, 4 * K);
    a.free(hi, 4 * K); // top of the magazine
    assertEquals(a.alloc(4 * K, G4), lo); // scanned past hi
    a.free(lo, 4 * K); // [hi, lo]
    assertEquals(a.alloc(4 * K), lo); // no limit: the top
    assertEquals(a.alloc(4 * K), hi); // still no limit: hi fits
    a.free(lo, 4 * K);
    a.free(hi, 4 * K); // [lo, hi]
    assertEquals(a.alloc(4 * K, G4), lo); // the limit is back
    a.free(lo, 4 * K); // [hi, lo]
    assertEquals(a.alloc(4 * K, G4), lo); // same limit twice in a row
    // Same limit again with hi on top: refused, and no other cached range
    // fits, so the tree serves it.
    const x = a.alloc(4 * K, G4);
    assert(x + 4 * K <= G4, `0x${x.toString(16)} above the limit`);
    assertEquals(a.stats().cachedRanges, 1);
    // Failed calls leave the remembered limit consistent.
    expectError(() => a.alloc(4 * K, 2 ** 53 + 2), "EINVAL");
    expectError(() => a.alloc(4 * K, 100), "ERANGE");
    const y = a.alloc(4 * K, 100 * K);
    assert(y + 4 * K <= 100 * K);
    healthy(a);
  });

  await t.step("argument errors with a warm cache and the same limit", () => {
    const a = new IovaAllocator({ end: 2 ** 36 });
    for (let i = 0; i < 4; i++) a.free(a.alloc(2 * K, G4), 2 * K);
    const before = a.stats();
    expectError(() => a.alloc(0, G4), "EINVAL", "IOVA size");
    expectError(() => a.alloc(-2 * K, G4), "EINVAL", "IOVA size");
    expectError(() => a.alloc(2 * K + 0.5, G4), "EINVAL", "IOVA size");
    expectError(() => a.alloc(NaN, G4), "EINVAL", "IOVA size");
    expectError(() => a.alloc(2 * K, G4 + 0.5), "EINVAL", "limit");
    expectError(() => a.alloc(2 * K, NaN), "EINVAL", "limit");
    // A bad size is reported before a bad limit.
    expectError(() => a.alloc(-1, -1), "EINVAL", "IOVA size");
    expectError(() => a.free(-1, -1), "EINVAL", "IOVA must");
    expectError(() => a.free(2 * K, 2 ** 53), "EINVAL", "IOVA size");
    assertEquals(a.stats(), before);
    // Sizes beyond int32 take the general path and still round and cache.
    const big = new IovaAllocator({ end: 2 ** 44, cacheMaxSize: 2 ** 33 });
    const z = big.alloc(2 ** 32 + 1);
    assertEquals(big.sizeFor(2 ** 32 + 1), 2 ** 33);
    big.free(z, 2 ** 32 + 1);
    assertEquals(big.alloc(2 ** 33), z);
    assertEquals(big.stats().cacheHits, 1);
    healthy(a);
    healthy(big);
  });

  await t.step("uncacheable sizes go straight back", () => {
    const a = new IovaAllocator({ end: G4 });
    const x = a.alloc(64 * K);
    a.free(x, 64 * K);
    assertEquals(a.stats().cachedRanges, 0);
    assertEquals(a.stats().largestFreeGap, G4 - K);
    const b = new IovaAllocator({ end: G4, cacheMaxSize: 0 });
    b.free(b.alloc(K), K);
    assertEquals(b.stats().cachedRanges, 0);
    assertEquals(b.sizeFor(3 * K), 3 * K); // no rounding without a cache
  });

  await t.step("depot is bounded; overflow goes to the tree", () => {
    const depotSize = 2;
    const a = new IovaAllocator({ end: G4, depotSize });
    const n = IOVA_MAGAZINE_SIZE * 6;
    const xs: number[] = [];
    for (let i = 0; i < n; i++) xs.push(a.alloc(K));
    for (const x of xs) a.free(x, K);
    const s = a.stats();
    const held = IOVA_MAGAZINE_SIZE * (2 + depotSize);
    assertEquals(s.depotMagazines, depotSize);
    assertEquals(s.cachedRanges, held);
    assertEquals(s.liveRanges, 0);
    healthy(a);
    // Everything cached comes back out before the tree is used.
    for (let i = 0; i < held; i++) a.alloc(K);
    assertEquals(a.stats().cacheHits, held);
    assertEquals(a.stats().depotMagazines, 0);
    a.alloc(K);
    assertEquals(a.stats().cacheMisses, n + 1);
    healthy(a);
  });

  await t.step("flushCache returns everything to the free space", () => {
    const a = new IovaAllocator({ end: G4 });
    for (let i = 0; i < 300; i++) a.free(a.alloc(2 * K), 2 * K);
    const xs = Array.from({ length: 300 }, () => a.alloc(2 * K));
    for (const x of xs) a.free(x, 2 * K);
    assert(a.stats().cachedRanges > 0);
    assert(a.stats().largestFreeGap < G4 - K);
    a.flushCache();
    const s = a.stats();
    assertEquals([s.cachedRanges, s.cachedBytes, s.depotMagazines], [0, 0, 0]);
    assertEquals(s.largestFreeGap, G4 - K);
    assertEquals(s.cacheFlushes, 1);
    healthy(a);
  });

  await t.step("a failing search flushes the cache and retries once", () => {
    const a = new IovaAllocator({ end: 16 * K });
    const xs = [a.alloc(4 * K), a.alloc(4 * K)];
    assertEquals(xs, [12 * K, 8 * K]);
    for (const x of xs) a.free(x, 4 * K); // [8, 16) now only cached
    assertEquals(a.alloc(8 * K), 8 * K);
    const s = a.stats();
    assertEquals(s.cacheFlushes, 1);
    assertEquals(s.cachedRanges, 0);
    healthy(a);
  });
});

Deno.test("IovaAllocator: Exynos v3.x constraints", async (t) => {
  const KB128 = 128 * 1024;
  await t.step("v3.1: starts aligned to 128 KiB", () => {
    const a = new IovaAllocator({
      end: G4,
      constraints: { alignment: KB128 },
    });
    for (let i = 0; i < 50; i++) {
      const x = a.alloc((1 + (i % 5)) * K);
      assertEquals(x % KB128, 0, `0x${x.toString(16)}`);
    }
    healthy(a);
  });

  await t.step("v3.2: starts aligned to 256 KiB", () => {
    const a = new IovaAllocator({
      end: G4,
      constraints: { alignment: 2 * KB128 },
    });
    const x = a.alloc(K);
    const y = a.alloc(300 * K);
    assertEquals([x % (2 * KB128), y % (2 * KB128)], [0, 0]);
  });

  await t.step(
    "v3.3: 128 KiB aligned with a >= 128 KiB hole between regions",
    () => {
      const a = new IovaAllocator({
        end: G4,
        constraints: { alignment: KB128, guardGap: KB128 },
        reserved: [{ start: G4 - 64 * M, size: M }],
      });
      const ranges: [number, number][] = [];
      const sizes = [K, 64 * K, 128 * K, 200 * K, 3 * K, M];
      for (let i = 0; i < 120; i++) {
        const size = sizes[i % sizes.length]!;
        const x = a.alloc(size);
        ranges.push([x, x + a.sizeFor(size)]);
        if (i % 4 === 3) {
          const j = (i * 7) % ranges.length;
          const [s, e] = ranges[j]!;
          const sz = e - s;
          a.free(s, sz);
          ranges.splice(j, 1);
        }
      }
      ranges.push([G4 - 64 * M, G4 - 63 * M]); // the reservation counts too
      ranges.sort((p, q) => p[0] - q[0]);
      for (let i = 0; i < ranges.length; i++) {
        const [s, e] = ranges[i]!;
        if (i < ranges.length - 1) assertEquals(s % KB128, 0);
        if (i > 0) {
          const gap = s - ranges[i - 1]![1];
          assert(
            gap >= KB128,
            `hole of ${gap} bytes below 0x${s.toString(16)}`,
          );
        }
        assert(e <= G4);
      }
      healthy(a);
    },
  );

  await t.step("guard gap does not waste space at the aperture top", () => {
    const a = new IovaAllocator({
      end: 16 * K,
      constraints: { guardGap: 4 * K },
    });
    assertEquals(a.alloc(4 * K), 12 * K);
    assertEquals(a.alloc(4 * K), 4 * K); // [8,12) would touch the guard
    expectError(() => a.alloc(K), "ENOMEM"); // [1,4) all within guard of 4K
    assertEquals(a.stats().largestFreeGap, 3 * K);
    healthy(a);
  });

  await t.step("reserve inside a live allocation's guard is EEXIST", () => {
    const a = new IovaAllocator({
      end: 64 * K,
      constraints: { guardGap: 4 * K },
    });
    const x = a.alloc(4 * K); // [60, 64) granules, guard above the end
    const y = a.alloc(4 * K); // [52, 56), guard [56, 60)
    assertEquals([x, y], [60 * K, 52 * K]);
    expectError(() => a.reserve(57 * K, K), "EEXIST");
    a.reserve(40 * K, K); // its guard reaches 45: fine
    assertEquals(a.alloc(4 * K), 32 * K); // [45, 52) is too small with a guard
    healthy(a);
  });
});

Deno.test("IovaAllocator: known fragmentation pathology (reference §4.5)", () => {
  // 1 GB of IOVA space, unaligned (as in the kernel report); the kernel's
  // walk from its cached node then failed a 2 MB request with 12 MB free.
  const a = new IovaAllocator({
    start: 0,
    end: 1024 * M,
    maxAlignment: K,
    cacheMaxSize: 0,
  });
  const x500 = a.alloc(500 * M);
  const x12 = a.alloc(12 * M);
  const x499 = a.alloc(499 * M);
  assertEquals([x500, x12, x499], [524 * M, 512 * M, 13 * M]);
  a.free(x12, 12 * M);
  // 13 MB: the 12 MB hole is too small and below 13 MB only 13 MB - 4 KiB
  // is left (IOVA 0 is never handed out), so this correctly fails...
  expectError(() => a.alloc(13 * M), "ENOMEM");
  // ...and the 2 MB request is served from the top of the 12 MB hole.
  assertEquals(a.alloc(2 * M), 522 * M);
  assertEquals(a.stats().largestFreeGap, 13 * M - K);
  assertEquals(a.alloc(10 * M), 512 * M);
  assertEquals(a.alloc(13 * M - K), K);
  healthy(a);

  // The same sequence with natural alignment, checked against the model.
  const b = new IovaAllocator({ start: 0, end: 1024 * M, cacheMaxSize: 0 });
  assertEquals(b.alloc(500 * M), 512 * M);
  assertEquals(b.alloc(12 * M), 496 * M);
  expectError(() => b.alloc(499 * M), "ENOMEM"); // no 512 MiB-aligned slot left
  b.free(496 * M, 12 * M);
  assertEquals(b.alloc(13 * M), 496 * M);
  assertEquals(b.alloc(2 * M), 1022 * M); // top of the [1012, 1024) gap
  healthy(b);
});

Deno.test("IovaAllocator: many live ranges stay consistent", () => {
  const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const live: [number, number][] = [];
  for (let i = 0; i < 20000; i++) {
    if (live.length > 0 && rnd(3) === 0) {
      const j = rnd(live.length);
      const [x, s] = live[j]!;
      live[j] = live[live.length - 1]!;
      live.pop();
      a.free(x, s);
    } else {
      const s = (1 + rnd(70)) * K;
      live.push([a.alloc(s, rnd(2) ? G4 : undefined), s]);
    }
  }
  assertEquals(a.stats().liveRanges, live.length);
  healthy(a);
  // A first request of a much larger alignment order re-summarises the
  // whole tree once; placement stays exact and the summaries consistent.
  const big = a.alloc(8 * M); // 2048 granules, aligned to 8 MiB
  assertEquals(big % (8 * M), 0);
  const overlaps = (lo: number, hi: number) =>
    live.some(([x, sz]) => x < hi && x + a.sizeFor(sz) > lo);
  assert(!overlaps(big, big + 8 * M));
  for (let c = big + 8 * M; c < 2 ** 40; c += 8 * M) {
    assert(overlaps(c, c + 8 * M), `higher free slot at ${c}`);
  }
  healthy(a);
});

Deno.test("IovaAllocator: property, exact agreement with a brute-force model", () => {
  fc.assert(
    fc.property(setupArb, fc.array(opArb, { maxLength: 60 }), (s, ops) => {
      run(s, ops, { cacheMaxSize: 0 }, true);
    }),
    { numRuns: 300 },
  );
});

Deno.test("IovaAllocator: property, alignments beyond the augmentation (granule 1)", async (t) => {
  // With a 1-byte granule every request is aligned to 2^12 or more granules,
  // past the 2^11 the tree summarises exactly.
  await t.step("unbounded probes: still the exact highest fit", () => {
    fc.assert(
      fc.property(setupArb, fc.array(opArb, { maxLength: 40 }), (s, ops) => {
        run(s, ops, { cacheMaxSize: 0, searchProbes: 1e9 }, true, 1);
      }),
      { numRuns: 200 },
    );
  });
  await t.step("no probes: a valid fit, and never a false ENOMEM", () => {
    fallbacksSeen = 0;
    fc.assert(
      fc.property(setupArb, fc.array(opArb, { maxLength: 40 }), (s, ops) => {
        run(s, ops, { cacheMaxSize: 0, searchProbes: 0 }, false, 1);
      }),
      // A fixed seed: the coverage check below must not depend on the draw.
      { numRuns: 200, seed: 0x1a2b3c },
    );
    // (8 with this seed.)
    assert(fallbacksSeen > 0, "the bounded fallback was never exercised");
  });
  await t.step("a failed fallback repeats the search unbounded", () => {
    // Gaps [4096, 8192) (aligned) and [14336, 18432) (4096 long, misaligned
    // for a 4096-granule request); nothing surely fits.
    const a = new IovaAllocator({
      granule: 1,
      end: 24576,
      cacheMaxSize: 0,
      searchProbes: 0,
      reserved: [
        { start: 1, size: 4095 },
        { start: 8192, size: 6144 },
        { start: 18432, size: 6144 },
      ],
    });
    assertEquals(a.alloc(4096), 4096);
    expectError(() => a.alloc(4096), "ENOMEM");
    assertEquals(a.alloc(2048), 16384); // 2^11: exact path, highest fit
    healthy(a);
  });
});

Deno.test("IovaAllocator: property, with the cache success matches the model", () => {
  fc.assert(
    fc.property(
      setupArb,
      fc.array(opArb, { maxLength: 80 }),
      fc.integer({ min: 0, max: 2 }),
      (s, ops, depotSize) => {
        run(s, ops, { depotSize }, false);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("IovaAllocator: summaries stored in the parent stay exact", async (t) => {
  // Each node stores its children's summaries, and a free's climb maxes
  // them with the merged gap; every placement must still be the model's
  // highest fit and every summary consistent.
  const churn = (
    opts: IovaAllocatorOptions,
    granule: number,
    maxN: number,
    steps: number,
  ) => {
    const a = new IovaAllocator(opts);
    const endPfn = opts.end / granule;
    const m = new Model({
      granule,
      startPfn: 1,
      endPfn,
      guard: 0,
      minAlign: 1,
      maxAlign: 2 ** 53,
      cacheMax: 0,
    });
    let seed = 777;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const live: [number, number][] = [];
    for (let i = 0; i < steps; i++) {
      if (live.length > 0 && rnd(5) < 2) {
        const j = rnd(live.length);
        const [x, s] = live[j]!;
        live[j] = live[live.length - 1]!;
        live.pop();
        a.free(x, s);
        m.drop(x / granule);
      } else {
        // Sizes spread over many powers of two (alignment orders 0..11
        // and beyond when granules are large enough).
        const n = 1 + rnd(2 ** (1 + rnd(maxN)));
        const want = m.fit(n, endPfn);
        const kind = kindOf(() =>
          live.push([a.alloc(n * granule), n * granule])
        );
        if (want === null) {
          assertEquals(kind, "ENOMEM");
          continue;
        }
        assertEquals(kind, "ok");
        assertEquals(live[live.length - 1]![0], want * granule);
        m.take(want, n);
      }
      if (i % 64 === 0) {
        healthy(a);
        const gaps: number[] = [];
        let p = 1;
        for (const b of [...m.busy].sort((x, y) => x.lo - y.lo)) {
          gaps.push(b.lo - p);
          p = b.hi;
        }
        gaps.push(endPfn - p);
        assertEquals(
          a.stats().largestFreeGap,
          Math.max(...gaps) * granule,
        );
      }
    }
    healthy(a);
  };
  await t.step("4 KiB granules, sizes up to 2^13 granules", () => {
    churn({ end: 2 ** 36, cacheMaxSize: 0 }, K, 13, 3000);
  });
  await t.step("small aperture: many frees merge into neighbours", () => {
    churn({ end: 2 ** 24, cacheMaxSize: 0 }, K, 7, 3000);
  });
  await t.step("granule 1, 2^53 aperture: gaps past 2^31 granules", () => {
    // The stored maxima saturate at 2^31 - 1 granules (meaning "any");
    // searches through them and largestFreeGap must stay exact.
    churn(
      { granule: 1, end: 2 ** 53, cacheMaxSize: 0, searchProbes: 1e9 },
      1,
      44,
      1500,
    );
  });
});

Deno.test("IovaAllocator: when the host has no memory to grow the range tree or its index, alloc and reserve fail with ENOMEM and change nothing", async (t) => {
  const freeAll = (a: IovaAllocator, live: number[]) => {
    for (const at of live) a.free(at, K);
    assertEquals(a.stats().liveRanges, 0);
    healthy(a);
  };

  await t.step("the tree's node store", () => {
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const live: number[] = [];
    const { value: e } = withRefused("ArrayBuffer", ALL, () => {
      const e = untilRefused(a, (at) => live.push(at), 10_000);
      // A reservation in free space needs a node too.
      const before = a.stats();
      expectError(() => a.reserve(2 ** 39, K), "ENOMEM", "IOVA tree");
      assertEquals(a.stats(), before);
      return e;
    });
    assert(e instanceof IommuError, String(e));
    assertEquals(e.kind, "ENOMEM");
    assert(e.message.includes("IOVA tree"), e.message);
    assertEquals(a.stats().nodeSlots, 1024);
    // With memory back, the same call succeeds and the tree grows.
    live.push(a.alloc(K));
    assert(a.stats().nodeSlots > 1024);
    a.reserve(2 ** 39, K);
    healthy(a);
    freeAll(a, live);
  });

  await t.step("the address index", () => {
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const live: number[] = [];
    // Refuse only a new table of 1,024 slots or more (the index's growth);
    // views of existing buffers and small arrays still work.
    const { value: e } = withRefused(
      "Int32Array",
      (args) => typeof args[0] === "number" && args[0] >= 1024,
      () => untilRefused(a, (at) => live.push(at), 10_000),
    );
    assert(e instanceof IommuError, String(e));
    assertEquals(e.kind, "ENOMEM");
    assert(e.message.includes("IOVA index"), e.message);
    live.push(a.alloc(K));
    healthy(a);
    freeAll(a, live);
  });
});

// ---------------------------------------------------------------------------
// Fault injection: the host refuses the nth buffer or typed array made
// (views of an existing buffer included: a view allocates too).
// ---------------------------------------------------------------------------
const CONSTRUCTORS = [
  "ArrayBuffer",
  "Float64Array",
  "Int32Array",
  "Uint8Array",
  "Uint16Array",
  "Uint32Array",
] as const;

interface Refused<T> {
  /** Constructions attempted during the call (the refused one included). */
  made: number;
  ok: boolean;
  value?: T;
  error?: unknown;
}

/** Run `f` with the `nth` construction (1-based) refused with a RangeError. */
function refusingNth<T>(nth: number, f: () => T): Refused<T> {
  const g = globalThis as unknown as Record<string, unknown>;
  const real = CONSTRUCTORS.map((name) => g[name]);
  let made = 0;
  CONSTRUCTORS.forEach((name, k) => {
    g[name] = new Proxy(real[k] as new (...args: unknown[]) => object, {
      construct(target, args: unknown[], newTarget) {
        if (++made === nth) {
          throw new RangeError("Array buffer allocation failed");
        }
        return Reflect.construct(target, args, newTarget);
      },
    });
  });
  try {
    const value = f();
    return { made, ok: true, value };
  } catch (error) {
    return { made, ok: false, error };
  } finally {
    CONSTRUCTORS.forEach((name, k) => {
      g[name] = real[k];
    });
  }
}

Deno.test("IovaAllocator: a refusal at any allocation of a growth or compaction changes nothing", async (t) => {
  // Call `f` with the 1st, 2nd, ... construction refused until it runs
  // without one: each refused call fails with ENOMEM (mentioning `what`)
  // and leaves stats and audit as they were. Returns f's value and the
  // refusals seen, by the structure named in the message.
  const refuseEach = (
    a: IovaAllocator,
    f: () => number,
    seen: Map<string, number>,
  ): number => {
    for (let nth = 1;; nth++) {
      const before = a.stats();
      const r = refusingNth(nth, f);
      if (r.made < nth) {
        assert(r.ok, String(r.error));
        return r.value!;
      }
      assert(!r.ok, `construction ${nth} was refused, yet the call succeeded`);
      const e = r.error;
      if (!(e instanceof IommuError)) throw e;
      assertEquals(e.kind, "ENOMEM");
      const what = /IOVA (tree|index)/.exec(e.message)?.[0];
      if (what === undefined) throw e;
      seen.set(what, (seen.get(what) ?? 0) + 1);
      assertEquals(a.stats(), before);
      healthy(a);
    }
  };
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };

  await t.step("growth of the node store and of the address index", () => {
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const twin = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const seen = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const size = (1 + rnd(16)) * K;
      const at = refuseEach(a, () => a.alloc(size), seen);
      assertEquals(at, twin.alloc(size));
    }
    assertEquals(a.stats(), twin.stats());
    // Four growths of each; the tree's refused at each of its buffer and
    // views (7 constructions), the index's at its table.
    assertEquals(seen.get("IOVA tree"), 4 * 7);
    assertEquals(seen.get("IOVA index"), 4);
    healthy(a);
  });

  // 60,000 ranges in a tree of 88,574 slots; frees in a random order.
  const build = (): [IovaAllocator, number[]] => {
    let s = 11;
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const live: number[] = [];
    for (let i = 0; i < 60000; i++) live.push(a.alloc(K));
    for (let i = live.length - 1; i > 0; i--) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const j = s % (i + 1);
      [live[i], live[j]] = [live[j]!, live[i]!];
    }
    return [a, live];
  };

  await t.step("compaction", () => {
    // The twin is never refused: find the free that compacts it.
    const [twin, twinLive] = build();
    const slots = twin.stats().nodeSlots;
    let brink = 0;
    while (twin.stats().nodeSlots === slots) {
      twin.free(twinLive[brink++]!, K);
    }
    const compacted = twin.stats();
    const next: number[] = [];
    for (let i = 0; i < 300; i++) next.push(twin.alloc((1 + (i % 9)) * K));
    let refusals = 0;
    for (let nth = 1;; nth++) {
      const [a, live] = build();
      for (let i = 0; i < brink - 1; i++) a.free(live[i]!, K);
      const r = refusingNth(nth, () => a.free(live[brink - 1]!, K));
      // The free itself always succeeds.
      assert(r.ok, String(r.error));
      healthy(a);
      if (r.made < nth) {
        // Not refused: compacted like the twin.
        assertEquals(a.stats(), compacted);
        break;
      }
      refusals++;
      // Refused: nothing moved.
      assertEquals(a.stats(), { ...compacted, nodeSlots: slots });
      // With memory back, the same placements as the twin.
      for (let i = 0; i < 300; i++) {
        assertEquals(a.alloc((1 + (i % 9)) * K), next[i]);
      }
      healthy(a);
    }
    // Its node store and three views, the side array, the renumbering,
    // the bitmap and the spare stack.
    assertEquals(refusals, 8);
  });

  await t.step("growth of a compacted tree", () => {
    const [a, live] = build();
    const [twin, twinLive] = build();
    for (let i = 0; i < 30000; i++) {
      a.free(live[i]!, K);
      twin.free(twinLive[i]!, K);
    }
    const compacted = a.stats().nodeSlots;
    assert(compacted < 60000, `${compacted} slots`);
    const seen = new Map<string, number>();
    // Through one growth (the free main slots run out first).
    for (let i = 0; i < 1000 || a.stats().nodeSlots === compacted; i++) {
      const size = (1 + rnd(16)) * K;
      const at = refuseEach(a, () => a.alloc(size), seen);
      assertEquals(at, twin.alloc(size));
    }
    assertEquals(a.stats(), twin.stats());
    assertEquals(seen.get("IOVA tree"), 7);
    healthy(a);
  });
});

// A compacted tree built directly: `n` one-granule nodes at 4k, every
// second one removed, compacted, some of the survivors freed after (unless
// `thenFree` is false).
function compactedTree(n: number, thenFree = true): IovaTree {
  const tree = new IovaTree(0);
  const nodes: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = tree.newNode(4 * k, 4 * k + 1, KIND_LIVE, 0);
    tree.insert(i);
    nodes.push(i);
  }
  for (let k = 0; k < n; k += 2) {
    tree.remove(nodes[k]!);
    tree.releaseNode(nodes[k]!);
  }
  assert(tree.compact() !== undefined);
  if (!thenFree) return tree;
  for (const i of tree.nodes().filter((_, k) => k % 7 === 3)) {
    tree.remove(i);
    tree.releaseNode(i);
    // (No address index to rename moved nodes in.)
    if (tree.pending !== 0) tree.migrate({ rename() {} });
  }
  assertEquals(tree.audit(), []);
  return tree;
}

Deno.test("IovaTree: audit reports a corrupt spare stack, bitmap padding or last-freed slot", async (t) => {
  const tree = compactedTree(3000);
  const slots = iovaTreeSlotsForTest(tree);
  const cap = tree.capacity;
  // Corrupt one field, expect audit to name the fault, put it back.
  const expectFault = (
    corrupt: () => () => void,
    says: string,
  ): void => {
    const restore = corrupt();
    const problems = tree.audit();
    restore();
    assert(
      problems.some((p) => p.includes(says)),
      `${JSON.stringify(problems)} lacks "${says}"`,
    );
    assertEquals(tree.audit(), []);
  };
  assert(slots.spareTop > 0 && slots.lastFreed !== 0);
  assert(slots.bits.length * 32 > cap, `no padding past ${cap} slots`);

  await t.step("a padding bit past the last slot set", () => {
    for (const s of [cap, slots.bits.length * 32 - 1]) {
      expectFault(() => {
        slots.bits[s >>> 5]! |= 1 << (s & 31);
        return () => {
          slots.bits[s >>> 5]! &= ~(1 << (s & 31));
        };
      }, "past the last");
    }
  });
  await t.step("a spare entry outside the main slots", () => {
    for (const bad of [0, -1, cap, cap + 100]) {
      for (const k of [0, slots.spareTop - 1]) {
        expectFault(() => {
          const was = slots.spare[k]!;
          slots.spare[k] = bad;
          return () => {
            slots.spare[k] = was;
          };
        }, `spare stack entry ${k} is slot ${bad}`);
      }
    }
  });
  await t.step("the spare stack's top past its end", () => {
    for (const bad of [slots.spare.length + 1, -1]) {
      expectFault(() => {
        const was = slots.spareTop;
        slots.spareTop = bad;
        return () => {
          slots.spareTop = was;
        };
      }, "spare stack top");
    }
  });
  await t.step("the slot released last not a main slot", () => {
    for (const bad of [cap, cap + 64, -1]) {
      expectFault(() => {
        const was = slots.lastFreed;
        slots.lastFreed = bad;
        return () => {
          slots.lastFreed = was;
        };
      }, "released last");
    }
  });
});

Deno.test("IovaTree: a take after compaction pops a bounded number of stale spare entries", () => {
  // 200,000 nodes halved and compacted: about 150,000 slots, every third
  // main slot free and on the spare stack, lowest on top.
  const tree = compactedTree(200000, false);
  assert(tree.capacity >= 65536, `${tree.capacity} slots`);
  const slots = iovaTreeSlotsForTest(tree);
  const bits = () => slots.bits;
  const freeIn = (page: number): number => {
    let n = 0;
    for (const wi of [2 * page, 2 * page + 1]) {
      for (let x = bits()[wi] ?? 0; x !== 0; x &= x - 1) n++;
    }
    return n;
  };
  // A node in each page (node numbers are slots).
  const nodeIn = new Map<number, number>();
  for (const i of tree.nodes()) {
    if (!nodeIn.has(i >>> 6)) nodeIn.set(i >>> 6, i);
  }
  const pages = [...nodeIn.keys()].sort((x, y) => x - y);
  // Take every free slot of the lower three quarters of the pages through
  // the bitmap (a new node beside one in that page), never the stack: the
  // stack's top entries all go stale.
  let key = 2 ** 40;
  for (const p of pages.slice(0, (pages.length * 3) >> 2)) {
    for (let k = freeIn(p); k > 0; k--) {
      tree.newNode(key, key + 1, KIND_LIVE, nodeIn.get(p)!);
      key += 2;
    }
    assertEquals(freeIn(p), 0);
  }
  let staleRun = 0;
  for (let k = slots.spareTop - 1; k >= 0; k--) {
    const s = slots.spare[k]!;
    if (((bits()[s >>> 5]! >>> (s & 31)) & 1) === 1) break;
    staleRun++;
  }
  // Unbounded, the next take would pop them all.
  assert(staleRun > 20000, `${staleRun} stale entries on top`);
  const popped = slots.stalePops;
  const full = nodeIn.get(pages[0]!)!;
  const s = tree.newNode(key, key + 1, KIND_LIVE, full);
  assert(slots.stalePops - popped <= 32, `${slots.stalePops - popped} pops`);
  // A slot that was free, now marked taken.
  assert(s >>> 6 !== full >>> 6 && s < tree.capacity, `slot ${s}`);
  assertEquals((bits()[s >>> 5]! >>> (s & 31)) & 1, 0);
  // The next takes pop at most as many each, and never hand out a slot
  // twice.
  const taken = new Set<number>([s]);
  for (let k = 0; k < 2000; k++) {
    const before = slots.stalePops;
    const t = tree.newNode(key, key + 1, KIND_LIVE, full);
    key += 2;
    assert(slots.stalePops - before <= 32);
    assert(!taken.has(t), `slot ${t} twice`);
    taken.add(t);
  }
});

Deno.test("IovaAllocator: a free whose cache magazine the host refuses frees into the tree", () => {
  const make = () => new IovaAllocator({ end: 2 ** 32, cacheMaxSize: K });
  const a = make();
  const twin = make();
  const n = 400;
  const live: number[] = [];
  for (let i = 0; i < n; i++) {
    const iova = a.alloc(K);
    assertEquals(twin.alloc(K), iova);
    live.push(iova);
  }
  // Each free with the first construction refused, until one is: the frees
  // that fill the two loaded magazines make nothing; the first that needs
  // a depot magazine is refused and must still free the range (into the
  // tree). The frees after it run with memory to spare.
  let refusedAt = -1;
  for (let i = 0; i < n; i++) {
    if (refusedAt < 0) {
      const r = refusingNth(1, () => a.free(live[i]!, K));
      assert(r.ok, `free ${i} threw ${String(r.error)}`);
      if (r.made > 0) refusedAt = i;
    } else a.free(live[i]!, K);
    twin.free(live[i]!, K);
  }
  assert(refusedAt > 0, "no free needed a new magazine");
  assertEquals(a.audit(), []);
  const s = a.stats();
  const t = twin.stats();
  // The refused free went to the tree; the next one made the magazine.
  assertEquals(s.frees, n);
  assertEquals(s.liveRanges, 0);
  assertEquals(s.cachedRanges, t.cachedRanges - 1);
  // Every cached range is handed out once; then the tree's highest free
  // range is the refused one (those above it are all cached, and it is
  // free space again).
  const seen = new Set<number>();
  for (let i = 0; i < s.cachedRanges; i++) {
    const iova = a.alloc(K);
    assert(!seen.has(iova), `cached range ${iova} handed out twice`);
    assert(iova !== live[refusedAt], "the refused range was cached");
    seen.add(iova);
  }
  assertEquals(a.stats().cacheHits, s.cachedRanges);
  assertEquals(a.alloc(K), live[refusedAt]);
  assertEquals(a.audit(), []);
});

Deno.test("IovaAllocator: a cache flush that halves a large tree compacts it", () => {
  const a = new IovaAllocator({
    end: 2 ** 40,
    cacheMaxSize: K,
    depotSize: 1000,
  });
  const n = 70_000;
  const live: number[] = [];
  for (let i = 0; i < n; i++) live.push(a.alloc(K));
  for (const iova of live) a.free(iova, K);
  const before = a.stats();
  // Every range is cached (still a node of the tree), so nothing compacted.
  assertEquals(before.cachedRanges, n);
  assert(before.nodeSlots >= n, `${before.nodeSlots} slots`);
  a.flushCache();
  const after = a.stats();
  assertEquals(after.cachedRanges, 0);
  assert(after.nodeSlots <= 2048, `still ${after.nodeSlots} slots`);
  assertEquals(a.audit(), []);
  // The space is whole again: the highest range comes back first.
  assertEquals(a.alloc(K), live[0]);
});

Deno.test("IovaAllocator: the address index shrinks after a burst, later when the host refuses", async (t) => {
  const n = 200_000;
  const burst = (): [IovaAllocator, number[]] => {
    const a = new IovaAllocator({ end: 2 ** 40, cacheMaxSize: 0 });
    const live: number[] = [];
    for (let i = 0; i < n; i++) live.push(a.alloc(K));
    assertEquals(a.stats().indexSlots, 524_288);
    return [a, live];
  };
  // Frees from the top down to `keep` survivors.
  const freeDownTo = (a: IovaAllocator, live: number[], keep: number) => {
    for (let i = n - a.stats().liveRanges; i < n - keep; i++) {
      a.free(live[i]!, K);
    }
  };
  const survivorsFound = (a: IovaAllocator, live: number[]) => {
    assertEquals(a.audit(), []);
    expectError(() => a.free(live[0]!, K), "ENOENT");
    for (let i = n - a.stats().liveRanges; i < n; i++) a.free(live[i]!, K);
    assertEquals(a.stats().liveRanges, 0);
    assertEquals(a.audit(), []);
  };
  await t.step(
    "four slots per range each time it falls under one in eight",
    () => {
      const [a, live] = burst();
      // Rebuilt at 65,535 ranges (262,144 slots), 32,767 (131,072) and
      // 16,383 (65,536).
      freeDownTo(a, live, 10_000);
      assertEquals(a.stats().indexSlots, 65_536);
      survivorsFound(a, live);
    },
  );
  await t.step(
    "a refused table: kept, tried again once the population halves",
    () => {
      const [a, live] = burst();
      // Refuse every new table (an Int32Array of a length; views of a buffer
      // pass): the index keeps its slots, and so does the tree.
      const { refused } = withRefused(
        "Int32Array",
        (args) => typeof args[0] === "number",
        () => freeDownTo(a, live, 50_000),
      );
      assert(refused > 0, "no table was asked for");
      assertEquals(a.stats().indexSlots, 524_288);
      assertEquals(a.audit(), []);
      // With memory back, the next try comes at 32,767 ranges (the mark
      // halved), then at 16,383.
      freeDownTo(a, live, 32_768);
      assertEquals(a.stats().indexSlots, 524_288);
      freeDownTo(a, live, 10_000);
      assertEquals(a.stats().indexSlots, 65_536);
      survivorsFound(a, live);
    },
  );
});

Deno.test("IovaTree: a slot scan that starts past the last free slot wraps to the first", () => {
  // A compacted tree filled up to one free main slot (the highest), then a
  // churn that buries the spare stack under stale entries: the take after
  // it scans the bitmap from its cursor. A second time with only a low slot
  // free, below where the cursor stopped: the scan must wrap to find it.
  const tree = new IovaTree(0);
  tree.insert(tree.newNode(2 ** 40, 2 ** 40, KIND_ANCHOR, 0));
  const first: number[] = [];
  for (let k = 0; k < 3000; k++) {
    const i = tree.newNode(4 * k, 4 * k + 1, KIND_LIVE, 0);
    tree.insert(i);
    first.push(i);
  }
  for (let k = 0; k < 3000; k += 2) {
    tree.remove(first[k]!);
    tree.releaseNode(first[k]!);
  }
  assert(tree.compact() !== undefined, "no compaction");
  const slots = iovaTreeSlotsForTest(tree);
  const freeSlots = (): number[] => {
    const out: number[] = [];
    for (let s = 0; s < slots.bits.length * 32; s++) {
      if (((slots.bits[s >>> 5]! >>> (s & 31)) & 1) === 1) out.push(s);
    }
    return out;
  };
  let key = 2 ** 20;
  const add = (near: number): number => {
    const i = tree.newNode(key, key + 1, KIND_LIVE, near);
    tree.insert(i);
    key += 4;
    tree.pending = 0;
    return i;
  };
  for (let free = freeSlots().length; free > 1; free--) add(0);
  const high = freeSlots();
  assertEquals(high.length, 1);
  const live = tree.nodes();
  // Free and take the same low slot 32 times: each take finds it in its
  // own page, and each release pushes it on the spare stack again.
  const x = live[200]!;
  const bury = (): void => {
    for (let r = 0; r < 32; r++) {
      tree.remove(x);
      tree.releaseNode(x);
      tree.pending = 0;
      assertEquals(add(x), x);
    }
  };
  bury();
  assertEquals(add(0), high[0]);
  const low = live[400]!;
  tree.remove(low);
  tree.releaseNode(low);
  tree.pending = 0;
  bury();
  assertEquals(freeSlots(), [low]);
  assertEquals(add(0), low);
  assertEquals(freeSlots(), []);
  assertEquals(tree.audit(), []);
});
