// Tlb against an exact reference model of what it documents: slots laid
// out set by set, the set index `(pageNumber XOR context) mod sets`, the
// lowest invalid way filled first, then the policy's victim (true LRU,
// round-robin per set, seeded xorshift32), the counters, the last-hit
// fields (kept after the entry changes) and entries() in slot order. The
// model is written plainly, with none of the Tlb's shortcuts (the memo of
// the last missed key, the LRU order kept across evictions, per-set
// counts), so those shortcuts are checked against the plain rules. Only
// which of several overlapping entries of different sizes a lookup returns
// is left to the Tlb (any covering entry is right); the model then follows
// its choice.
import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  Tlb,
  type TlbCounters,
  type TlbEntry,
  type TlbReplacement,
} from "../../core/tlb.ts";

interface Slot {
  size: number; // 0: invalid
  base: number;
  ctx: number;
  pa: number;
  perm: number;
  stamp: number;
}

/** The documented model, slot by slot. */
class Model {
  readonly slots: Slot[];
  readonly rr: number[];
  rng: number;
  clock = 0;
  last = { size: 0, perm: 0, pa: -1 };
  c = { hits: 0, misses: 0, fills: 0, evictions: 0, inv: 0, invEntries: 0 };

  constructor(
    readonly sets: number,
    readonly ways: number,
    readonly policy: TlbReplacement,
    seed: number,
  ) {
    this.slots = Array.from(
      { length: sets * ways },
      () => ({ size: 0, base: 0, ctx: 0, pa: 0, perm: 0, stamp: 0 }),
    );
    this.rr = new Array(sets).fill(0);
    // The seed folding the Tlb documents as "reproducible per seed".
    const lo = seed % 0x100000000;
    const hi = Math.floor(seed / 0x100000000);
    const mixed = (lo ^ Math.imul(hi, 0x85ebca6b) ^ 0x9e3779b9) | 0;
    this.rng = mixed === 0 ? 0x6d2b79f5 : mixed;
  }

  first(ctx: number, iova: number, size: number): number {
    const vpn = Math.floor(iova / size);
    return ((vpn ^ ctx) & (this.sets - 1)) * this.ways;
  }

  find(ctx: number, iova: number, size: number): number {
    if (this.sets * this.ways === 0) return -1;
    const base = Math.floor(iova / size) * size;
    const first = this.first(ctx, iova, size);
    for (let s = first; s < first + this.ways; s++) {
      const e = this.slots[s]!;
      if (e.size === size && e.base === base && e.ctx === ctx) return s;
    }
    return -1;
  }

  hit(s: number, iova: number): number {
    const e = this.slots[s]!;
    this.c.hits++;
    e.stamp = ++this.clock;
    this.last = { size: e.size, perm: e.perm, pa: e.pa };
    // The offset first: pa + iova may pass 2^53 and round (addresses near
    // the top of the range), the Tlb's pa + (iova - base) never does.
    return e.pa + (iova - e.base);
  }

  miss(): number {
    this.c.misses++;
    this.last = { size: 0, perm: 0, pa: -1 };
    return -1;
  }

  victim(first: number): number {
    if (this.policy === "lru") {
      let best = first;
      for (let s = first + 1; s < first + this.ways; s++) {
        if (this.slots[s]!.stamp < this.slots[best]!.stamp) best = s;
      }
      return best;
    }
    if (this.policy === "round-robin") {
      const set = first / this.ways;
      const way = this.rr[set]!;
      this.rr[set] = (way + 1) % this.ways;
      return first + way;
    }
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x;
    return first + (x >>> 0) % this.ways;
  }

  insert(ctx: number, iova: number, size: number, pa: number, perm: number) {
    if (this.sets * this.ways === 0) return;
    const base = Math.floor(iova / size) * size;
    const found = this.find(ctx, iova, size);
    this.c.fills++;
    if (found >= 0) {
      Object.assign(this.slots[found]!, { pa, perm, stamp: ++this.clock });
      return;
    }
    const first = this.first(ctx, iova, size);
    let s = first;
    while (s < first + this.ways && this.slots[s]!.size !== 0) s++;
    if (s === first + this.ways) {
      s = this.victim(first);
      this.c.evictions++;
    }
    this.slots[s] = { size, base, ctx, pa, perm, stamp: ++this.clock };
  }

  drop(keep: (e: Slot) => boolean): number {
    let n = 0;
    for (const e of this.slots) {
      if (e.size !== 0 && !keep(e)) {
        e.size = 0;
        n++;
      }
    }
    this.c.inv++;
    this.c.invEntries += n;
    return n;
  }

  entries(): TlbEntry[] {
    const out: TlbEntry[] = [];
    this.slots.forEach((e, s) => {
      if (e.size === 0) return;
      out.push({
        context: e.ctx,
        iova: e.base,
        pageSize: e.size,
        pa: e.pa,
        perm: e.perm,
        set: Math.floor(s / this.ways),
        way: s % this.ways,
      });
    });
    return out;
  }
}

type Op =
  | { op: "lookup"; ctx: number; addr: number }
  | { op: "walk"; ctx: number; addr: number; shift: number; pa: number }
  | {
    op: "insert";
    ctx: number;
    addr: number;
    shift: number;
    pa: number;
    perm: number;
  }
  | { op: "lookupSize"; ctx: number; addr: number; shift: number }
  | { op: "range"; ctx: number; addr: number; len: number }
  | { op: "context"; ctx: number }
  | { op: "all" };

// Few contexts, pages and sizes, so sets fill up, keys repeat and entries
// of different sizes overlap; some addresses above 2^32.
const ctx = fc.integer({ min: 0, max: 2 });
const addr = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 0x3_ffff }), weight: 8 },
  { arbitrary: fc.integer({ min: 2 ** 32, max: 2 ** 32 + 0xffff }), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 2 ** 53 - 2 ** 31 }), weight: 1 },
);
const shift = fc.constantFrom(10, 12, 12, 12, 16, 21, 30);
const pa = fc.integer({ min: 0, max: 2 ** 40 });
const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    {
      arbitrary: fc.record({ op: fc.constant("lookup" as const), ctx, addr }),
      weight: 5,
    },
    // A lookup, and on a miss the insert of what a walk found: the
    // pattern the plugins use (and the Tlb's memo of the missed key).
    {
      arbitrary: fc.record({
        op: fc.constant("walk" as const),
        ctx,
        addr,
        shift,
        pa,
      }),
      weight: 6,
    },
    {
      arbitrary: fc.record({
        op: fc.constant("insert" as const),
        ctx,
        addr,
        shift,
        pa,
        perm: fc.integer({ min: 0, max: 7 }),
      }),
      weight: 3,
    },
    {
      arbitrary: fc.record({
        op: fc.constant("lookupSize" as const),
        ctx,
        addr,
        shift,
      }),
      weight: 1,
    },
    {
      arbitrary: fc.record({
        op: fc.constant("range" as const),
        ctx,
        addr,
        len: fc.integer({ min: 1, max: 0x2_0000 }),
      }),
      weight: 1,
    },
    {
      arbitrary: fc.record({ op: fc.constant("context" as const), ctx }),
      weight: 1,
    },
    { arbitrary: fc.record({ op: fc.constant("all" as const) }), weight: 1 },
  ),
  { maxLength: 120 },
);
const geometry = fc.record({
  sets: fc.constantFrom(0, 1, 2, 4),
  ways: fc.integer({ min: 0, max: 5 }),
  replacement: fc.constantFrom<TlbReplacement>("lru", "round-robin", "random"),
  seed: fc.integer(),
});

/** The counters a Tlb must report after the same operations as `m`. */
function modelCounters(m: Model): TlbCounters {
  return {
    lookups: m.c.hits + m.c.misses,
    hits: m.c.hits,
    misses: m.c.misses,
    fills: m.c.fills,
    evictions: m.c.evictions,
    invalidations: m.c.inv,
    invalidatedEntries: m.c.invEntries,
  };
}

// Every other lookup goes first through lookupHit, as a hardware model's
// hot path does: a hit there must be a hit the model agrees with, and
// anything else leaves the whole answer (and the counting) to lookup.
let viaHit = false;

function lookupBoth(tlb: Tlb, m: Model, ctx: number, addr: number): number {
  viaHit = !viaHit;
  const fast = viaHit ? tlb.lookupHit(ctx, addr) : -1;
  const got = fast >= 0 ? fast : tlb.lookup(ctx, addr);
  if (got === -1) {
    // Nothing may cover it.
    for (const e of m.slots) {
      assert(
        e.size === 0 || e.ctx !== ctx || addr < e.base ||
          addr >= e.base + e.size,
        `miss at ${addr} although an entry covers it`,
      );
    }
    m.miss();
    return got;
  }
  // Any covering entry may answer; the model follows the Tlb's choice.
  const s = m.find(ctx, addr, tlb.lastPageSize);
  assert(s >= 0, `hit at ${addr} on an entry the model does not hold`);
  const e = m.slots[s]!;
  // The page end, given only for permission bits the entry has.
  assertEquals(tlb.lastPageEndIf(e.perm), e.base + e.size);
  if (e.perm !== 7) assertEquals(tlb.lastPageEndIf(7), -1);
  assertEquals(got, m.hit(s, addr));
  return got;
}

Deno.test("Tlb agrees with the exact reference model (victims, counters, last hit, slots)", () => {
  fc.assert(
    fc.property(geometry, ops, (g, list) => {
      const tlb = new Tlb(g);
      const m = new Model(g.sets, g.ways, g.replacement, g.seed);
      for (const o of list) {
        switch (o.op) {
          case "lookup":
            lookupBoth(tlb, m, o.ctx, o.addr);
            break;
          case "walk":
            if (lookupBoth(tlb, m, o.ctx, o.addr) === -1) {
              tlb.insert(o.ctx, o.addr, 2 ** o.shift, o.pa, 3);
              m.insert(o.ctx, o.addr, 2 ** o.shift, o.pa, 3);
            }
            break;
          case "insert": {
            const size = 2 ** o.shift;
            if (Math.floor(o.addr / size) * size > 2 ** 53 - 1 - size) break;
            tlb.insert(o.ctx, o.addr, size, o.pa, o.perm);
            m.insert(o.ctx, o.addr, size, o.pa, o.perm);
            break;
          }
          case "lookupSize": {
            const size = 2 ** o.shift;
            const s = m.find(o.ctx, o.addr, size);
            assertEquals(
              tlb.lookupSize(o.ctx, o.addr, size),
              s >= 0 ? m.hit(s, o.addr) : m.miss(),
            );
            break;
          }
          case "range": {
            const end = o.addr + o.len;
            assertEquals(
              tlb.invalidateRange(o.ctx, o.addr, o.len),
              m.drop((e) =>
                e.ctx !== o.ctx || e.base >= end || e.base + e.size <= o.addr
              ),
            );
            break;
          }
          case "context":
            assertEquals(
              tlb.invalidateContext(o.ctx),
              m.drop((e) => e.ctx !== o.ctx),
            );
            break;
          case "all":
            assertEquals(tlb.invalidateAll(), m.drop(() => false));
        }
        assertEquals(tlb.entries(), m.entries());
        assertEquals(tlb.size, m.entries().length);
        assertEquals(
          [tlb.lastPageSize, tlb.lastPerm, tlb.lastPaBase],
          [m.last.size, m.last.perm, m.last.pa],
        );
        assertEquals(tlb.counters(), modelCounters(m));
      }
    }),
    { numRuns: 2500 },
  );
});

Deno.test("Tlb LRU: streaming misses evict exactly as the plain rule, with hits on the oldest ways in between", () => {
  // Streams of misses in a full set (each a lookup that misses and a fill)
  // take the ways in LRU order; hits on the oldest and second-oldest ways
  // in between must change which way goes next. Every victim is compared
  // with the least recently used way computed from scratch.
  for (const ways of [1, 2, 4, 8]) {
    const tlb = new Tlb({ sets: 2, ways, replacement: "lru" });
    const m = new Model(2, ways, "lru", 1);
    let page = 0;
    for (let i = 0; i < 600; i++) {
      const live = m.slots.filter((e) => e.size !== 0 && e.ctx === 0)
        .sort((a, b) => a.stamp - b.stamp);
      const pick = i % 9 === 4 ? 0 : i % 9 === 7 ? 1 : -1;
      if (pick >= 0 && live.length > pick) {
        lookupBoth(tlb, m, 0, live[pick]!.base);
      } else {
        const iova = (page++) * 0x2000; // even pages: all in set 0
        assertEquals(lookupBoth(tlb, m, 0, iova), -1);
        tlb.insert(0, iova, 0x1000, iova, 1);
        m.insert(0, iova, 0x1000, iova, 1);
      }
      assertEquals(tlb.entries(), m.entries());
    }
    assertEquals(tlb.counters(), modelCounters(m));
    assertEquals(m.c.inv, 0);
    assert(m.c.evictions > 400);
  }
});

Deno.test("Tlb LRU and round-robin: streaming misses with hits, lookupSize hits, refreshes and invalidated ways refilled in between", () => {
  // The Tlb keeps each set's eviction order between misses; everything
  // that can put a way out of that order happens here between streaming
  // misses: hits (lookup and lookupSize) on live ways, refreshes of live
  // keys, and an invalidated way refilled by an insert (which must not
  // join the order as the newest). Every step is compared with the model.
  for (const policy of ["lru", "round-robin"] as const) {
    for (const ways of [2, 3, 4, 8]) {
      const tlb = new Tlb({ sets: 2, ways, replacement: policy });
      const m = new Model(2, ways, policy, 1);
      let page = 0;
      let x = 12345;
      const rand = (n: number): number => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return (x >>> 8) % n;
      };
      for (let i = 0; i < 3000; i++) {
        const live = m.slots.filter((e) => e.size !== 0);
        const pick = live[rand(Math.max(live.length, 1))];
        const r = rand(16);
        if (pick !== undefined && r === 0) {
          lookupBoth(tlb, m, 0, pick.base);
        } else if (pick !== undefined && r === 1) {
          const s = m.find(0, pick.base, 0x1000);
          assertEquals(
            tlb.lookupSize(0, pick.base, 0x1000),
            s >= 0 ? m.hit(s, pick.base) : m.miss(),
          );
        } else if (pick !== undefined && r === 2) {
          tlb.insert(0, pick.base, 0x1000, 7, 2);
          m.insert(0, pick.base, 0x1000, 7, 2);
        } else if (pick !== undefined && r === 3) {
          const end = pick.base + 0x1000;
          assertEquals(
            tlb.invalidateRange(0, pick.base, 0x1000),
            m.drop((e) =>
              e.ctx !== 0 || e.base >= end || e.base + 0x1000 <= pick.base
            ),
          );
          const iova = (page++) * 0x1000;
          tlb.insert(0, iova, 0x1000, iova, 1);
          m.insert(0, iova, 0x1000, iova, 1);
        } else {
          const iova = (page++) * 0x1000;
          assertEquals(lookupBoth(tlb, m, 0, iova), -1);
          tlb.insert(0, iova, 0x1000, iova, 1);
          m.insert(0, iova, 0x1000, iova, 1);
        }
        assertEquals(tlb.entries(), m.entries());
      }
      assertEquals(tlb.counters(), modelCounters(m));
      assert(m.c.evictions > 1500);
    }
  }
});
