import { assertEquals, assertThrows } from "@std/assert";
import fc from "fast-check";
import { IOMMU_READ, IommuError, PhysicalMemory } from "../core/mod.ts";
import {
  FlpdCache,
  LPAGE_SIZE,
  PTE_V1,
  PTE_V5,
  SECT_SIZE,
  SPAGE_SIZE,
  SYSMMU_WALK_OK,
  SYSMMU_WALK_PAGE_FAULT,
  SYSMMU_WALK_PTW_ERROR,
  SysmmuWalker,
} from "../plugins/samsung_sysmmu/mod.ts";
import { kindOf, rig, RW, V3_3, V7_4 } from "./support/samsung.ts";

const RAM = 0x4000_0000;
const L1 = RAM + 0x10_0000; // 16 KiB aligned
const L2 = RAM + 0x20_0000; // 1 KiB aligned

function ram(): PhysicalMemory {
  return new PhysicalMemory({ base: RAM, size: 64 << 20 });
}

Deno.test("walker decodes exactly what pte.ts decodes (any descriptor bits)", () => {
  for (const fmt of [PTE_V1, PTE_V5]) {
    const mem = ram();
    const w = new SysmmuWalker(mem, fmt);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (raw) => {
        // Level 1 as a section: any other bits set.
        const sect = ((raw & ~3) | 2) >>> 0;
        mem.write32(L1 + 4 * 5, sect);
        assertEquals(w.walk(L1, 5 << 20, null, false), SYSMMU_WALK_OK);
        assertEquals(
          [w.paBase, w.pageSize, w.perm],
          [fmt.sectionPa(sect), SECT_SIZE, fmt.sectionPerm(sect)],
        );
        // Level 2 as a large then a small page, behind a link.
        mem.write32(L1 + 4 * 6, fmt.link(L2));
        for (const type of [1, 2, 3]) {
          const e2 = ((raw & ~3) | type) >>> 0;
          mem.write32(L2 + 4 * 7, e2);
          assertEquals(
            w.walk(L1, (6 << 20) + (7 << 12), null, false),
            SYSMMU_WALK_OK,
          );
          assertEquals(
            [w.paBase, w.pageSize, w.perm],
            type === 1
              ? [fmt.largePa(e2), LPAGE_SIZE, fmt.lv2Perm(e2)]
              : [fmt.smallPa(e2), SPAGE_SIZE, fmt.lv2Perm(e2)],
          );
        }
      }),
      { numRuns: 300 },
    );
  }
});

Deno.test("walker: level-2 reads through cached views stay live and never grow RAM", async (t) => {
  await t.step("a zero (fault) level-2 table in untouched RAM", () => {
    const mem = ram();
    const w = new SysmmuWalker(mem, PTE_V1);
    const zeroL2 = RAM + 0x300_0000; // never written
    mem.write32(L1 + 4 * 1, PTE_V1.link(zeroL2));
    const before = mem.stats().materializedBytes;
    for (let i = 0; i < 3; i++) {
      assertEquals(w.walk(L1, 1 << 20, null, false), SYSMMU_WALK_PAGE_FAULT);
    }
    assertEquals(mem.stats().materializedBytes, before);
    assertEquals(w.counters().l2Reads, 3);
  });

  await t.step("a rewritten entry is seen on the next walk", () => {
    const mem = ram();
    const w = new SysmmuWalker(mem, PTE_V1);
    mem.write32(L1 + 4 * 2, PTE_V1.link(L2));
    mem.write32(L2 + 4 * 3, PTE_V1.smallPage(RAM + 0x5000, 3));
    const iova = (2 << 20) + (3 << 12);
    assertEquals(w.walk(L1, iova, null, false), SYSMMU_WALK_OK);
    assertEquals(w.paBase, RAM + 0x5000);
    mem.write32(L2 + 4 * 3, PTE_V1.smallPage(RAM + 0x9000, 1));
    assertEquals(w.walk(L1, iova, null, false), SYSMMU_WALK_OK);
    assertEquals([w.paBase, w.perm], [RAM + 0x9000, 1]);
    mem.write32(L2 + 4 * 3, 0);
    assertEquals(w.walk(L1, iova, null, false), SYSMMU_WALK_PAGE_FAULT);
    // Zeroed by the frame allocator (a freed table): the view sees it too.
    mem.write32(L2 + 4 * 3, PTE_V1.smallPage(RAM + 0x9000, 1));
    assertEquals(w.walk(L1, iova, null, false), SYSMMU_WALK_OK);
    const frame = mem.frames.alloc(0x1000);
    mem.write32(L1 + 4 * 4, PTE_V1.link(frame));
    mem.write32(frame + 4 * 3, PTE_V1.smallPage(RAM + 0xa000, 3));
    const at = (4 << 20) + (3 << 12);
    assertEquals(w.walk(L1, at, null, false), SYSMMU_WALK_OK);
    mem.frames.free(frame);
    assertEquals(w.walk(L1, at, null, false), SYSMMU_WALK_PAGE_FAULT);
  });

  await t.step("a table that runs across a 64 KiB boundary", () => {
    const mem = ram();
    const w = new SysmmuWalker(mem, PTE_V1);
    const l2 = RAM + 0x41_0000 - 0x40; // 64-byte aligned link, 16 entries before the boundary
    mem.write32(L1 + 4 * 8, PTE_V1.link(l2));
    for (let i = 0; i < 256; i++) {
      mem.write32(l2 + 4 * i, PTE_V1.smallPage(RAM + i * 0x1000, 3));
    }
    // Another table wholly inside the first chunk gets that chunk cached.
    const inside = RAM + 0x40_f000;
    mem.write32(L1 + 4 * 7, PTE_V1.link(inside));
    mem.write32(inside, PTE_V1.smallPage(RAM, 3));
    assertEquals(w.walk(L1, 7 << 20, null, false), 0);
    for (const i of [0, 15, 16, 255, 15, 16]) {
      assertEquals(w.walk(L1, (8 << 20) + (i << 12), null, false), 0);
      assertEquals(w.paBase, RAM + i * 0x1000);
    }
  });

  await t.step("tables whose chunks share a cache line (16 MiB apart)", () => {
    const mem = ram();
    const w = new SysmmuWalker(mem, PTE_V1);
    const tables = [L2, L2 + (16 << 20), L2 + (32 << 20)];
    tables.forEach((l2, j) => {
      mem.write32(L1 + 4 * (20 + j), PTE_V1.link(l2));
      mem.write32(l2 + 4 * 5, PTE_V1.smallPage(RAM + j * 0x1000, 3));
    });
    for (let round = 0; round < 3; round++) {
      tables.forEach((l2, j) => {
        assertEquals(w.walk(L1, ((20 + j) << 20) + (5 << 12), null, false), 0);
        assertEquals(w.paBase, RAM + j * 0x1000);
        // Rewrite while another table holds the cache line.
        mem.write32(l2 + 4 * 5, PTE_V1.smallPage(RAM + (j + 8) * 0x1000, 3));
        assertEquals(w.walk(L1, ((20 + j) << 20) + (5 << 12), null, false), 0);
        assertEquals(w.paBase, RAM + (j + 8) * 0x1000);
        mem.write32(l2 + 4 * 5, PTE_V1.smallPage(RAM + j * 0x1000, 3));
      });
    }
    assertEquals(w.counters().l2Reads, 18);
  });

  await t.step("a link outside RAM is a bus error (also at RAM's end)", () => {
    const mem = ram();
    const w = new SysmmuWalker(mem, PTE_V1);
    mem.write32(L1 + 4 * 9, PTE_V1.link(0x1000_0000));
    assertEquals(w.walk(L1, 9 << 20, null, false), SYSMMU_WALK_PTW_ERROR);
    // The last table that fits, then one that runs 64 bytes past the end.
    const end = RAM + (64 << 20);
    mem.write32(L1 + 4 * 10, PTE_V1.link(end - 0x400));
    mem.write32(end - 4, PTE_V1.smallPage(RAM, 3));
    assertEquals(w.walk(L1, (10 << 20) + (255 << 12), null, false), 0);
    mem.write32(L1 + 4 * 10, PTE_V1.link(end - 0x3c0));
    assertEquals(
      w.walk(L1, 10 << 20, null, false),
      SYSMMU_WALK_PTW_ERROR,
    );
    assertEquals(w.counters().l2Reads, 1);
  });

  await t.step("a level-1 table outside RAM is a bus error", () => {
    const w = new SysmmuWalker(ram(), PTE_V5);
    assertEquals(w.walk(0x1000_0000, 0, null, false), SYSMMU_WALK_PTW_ERROR);
    assertEquals(w.counters(), { walks: 1, l1Reads: 0, l2Reads: 0 });
  });
});

Deno.test("FLPD fillRun is the same as filling each slot in turn", () => {
  const l1 = new Uint32Array(4096);
  for (let s = 0; s < 4096; s++) l1[s] = (s * 0x10_0000 + 2) >>> 0;
  // Runs are copied as 64-bit words from an 8-byte aligned view, one u32
  // at a time from any other: both must give the same descriptors, also
  // when the cache switches between views (and back) from run to run.
  const raw = new Uint32Array(4097 + 4096);
  const odd = raw.subarray(1, 4097); // 4-byte aligned only
  const other = raw.subarray(4098, 4098 + 4096); // 8-byte aligned
  for (let s = 0; s < 4096; s++) {
    odd[s] = (s * 0x10_0000 + 0x4000_0001 + s) >>> 0;
    other[s] = (0xffff_fff0 - s * 0x10_0000) >>> 0;
  }
  for (const capacity of [0, 8, 16, 32]) {
    const a = new FlpdCache(capacity);
    const b = new FlpdCache(capacity);
    const views = [l1, odd, l1, other, odd, odd, l1];
    for (const [k, view] of views.entries()) {
      const first = [0, 16, 4080, 32, 48, 16, 0][k]!;
      const base = k === 3 ? 0x4000_0000 : 0x8000;
      a.fillRun(base, first, 16, view);
      for (let s = first; s < first + 16; s++) b.fill(base, s, view[s]!);
      for (const tb of [0x8000, 0x4000_0000]) {
        for (let s = 0; s < 4096; s += 1) {
          assertEquals(a.lookup(tb, s), b.lookup(tb, s));
        }
      }
      assertEquals(a.size, b.size);
      assertEquals(a.counters(), b.counters());
    }
  }
  // And the copy is a snapshot: rewriting the view leaves the run as it was.
  const c = new FlpdCache(16);
  c.fillRun(0x8000, 32, 16, l1);
  const before = l1[40]!;
  l1[40] = 0x1234_5672;
  assertEquals(c.lookup(0x8000, 40), before);
  c.fillRun(0x8000, 32, 16, l1); // refetched: the new descriptor
  assertEquals(c.lookup(0x8000, 40), 0x1234_5672);
});

Deno.test("FLPD read is a lookup, then on a miss a fill or a prefetch", () => {
  const l1 = new Uint32Array(4096);
  for (let s = 0; s < 4096; s++) l1[s] = (s * 0x10_0000 + 1) >>> 0;
  for (const capacity of [0, 8, 16, 32]) {
    const a = new FlpdCache(capacity);
    const b = new FlpdCache(capacity);
    const slots = [5, 5, 21, 6, 37, 5, 16, 31, 4095, 4080, 5, 21];
    for (const [k, slot] of slots.entries()) {
      const prefetch = k % 3 !== 1;
      if (k === 6) l1[16] = 0x0dd0_0002; // later reads see RAM; hits don't
      const got = a.read(0x8000, slot, l1, prefetch);
      let want = b.lookup(0x8000, slot);
      let reads = 0;
      if (want < 0) {
        want = l1[slot]!;
        if (prefetch) b.fillRun(0x8000, slot & ~15, 16, l1);
        else b.fill(0x8000, slot, want);
        reads = prefetch ? 16 : 1;
      }
      assertEquals([got, a.lastReads], [want, reads], `slot ${slot}`);
      assertEquals(a.counters(), b.counters());
      assertEquals(a.size, b.size);
    }
  }
});

Deno.test("hardware: translate keeps its checks around the IOTLB", async (t) => {
  await t.step(
    "a hit whose multi-hit probe misses keeps the hit's permission",
    () => {
      // A 64 KiB entry was cached in this granule, then unmapped: the hit on
      // the 4 KiB page that replaces it probes for the 64 KiB one (a miss).
      const r = rig({ version: V3_3 });
      const port = r.masters[0]!.port();
      const hw = r.hw[0]!;
      const big = r.soc.memory.frames.alloc(0x10000);
      const small = r.soc.memory.frames.alloc(0x1000);
      r.domain.map(0x1001_0000, big, 0x10000, RW);
      assertEquals(port.read(0x1001_0000, new Uint8Array(4)), null);
      r.domain.unmap(0x1001_0000, 0x10000);
      r.domain.map(0x1001_0000, small, 0x1000, RW);
      for (let i = 0; i < 3; i++) {
        assertEquals(port.write(0x1001_0010, new Uint8Array(4)), null);
      }
      assertEquals(hw.counters().faults, 0);
      assertEquals(hw.counters().tlbHits, 2);
    },
  );

  await t.step(
    "write to a read-only page: permission fault on hit and miss",
    () => {
      const r = rig({ version: V3_3 });
      const port = r.masters[0]!.port();
      const buf = r.soc.memory.frames.alloc(0x1000);
      r.domain.map(0x1000_0000, buf, 0x1000, IOMMU_READ);
      for (let i = 0; i < 2; i++) {
        assertEquals(port.read(0x1000_0000, new Uint8Array(4)), null);
        assertEquals(
          port.write(0x1000_0000, new Uint8Array(4))?.reason,
          "permission",
        );
        r.hw[0]!.clearFault();
      }
    },
  );

  await t.step("no IOTLB: every access walks, nothing is cached", () => {
    const r = rig({ version: V3_3, tlb: { sets: 0, ways: 0 } });
    const port = r.masters[0]!.port();
    const hw = r.hw[0]!;
    const buf = r.soc.memory.frames.alloc(0x1000);
    r.domain.map(0x1000_0000, buf, 0x1000, RW);
    for (let i = 0; i < 4; i++) {
      assertEquals(port.write(0x1000_0000 + 8 * i, new Uint8Array(4)), null);
    }
    const c = hw.counters();
    assertEquals([c.lookups, c.tlbHits, c.tlbMisses, c.walks], [4, 0, 4, 4]);
    assertEquals([hw.tlb.size, hw.tlb.counters().fills], [0, 0]);
    assertEquals(hw.lastSpan, 0x1000 - 24);
  });

  await t.step("blocked and disabled units: refused or identity", () => {
    const r = rig({ version: V3_3 });
    const hw = r.hw[0]!;
    assertEquals(hw.translate(0, 0x1000_0000, 1), -1); // unmapped: faults
    assertEquals(hw.lastFault?.reason, "translation");
    assertEquals(hw.translate(0, 0x1000_0000, 1), -1);
    assertEquals(hw.lastFault?.reason, "blocked");
    assertEquals(hw.counters().blockedAccesses, 1);
    hw.clearFault();
    r.domain.detach(r.units[0]!);
    assertEquals(hw.translate(0, 0x1234_5678, 2), 0x1234_5678);
    assertEquals(hw.counters().identity, 1);
    assertEquals(hw.lastSpan, 2 ** 52 - 0x1234_5678);
  });

  await t.step(
    "blocked and disabled units: a bad IOVA is EINVAL, nothing counted",
    () => {
      const r = rig({ version: V3_3 });
      const hw = r.hw[0]!;
      const bad = [NaN, -5, 0x1000 + 0.5, undefined, 2 ** 53];
      hw.translate(0, 0x1000_0000, 1); // unmapped: faults, the unit blocks
      const blocked = hw.counters().blockedAccesses;
      for (const iova of bad) {
        assertEquals(
          kindOf(() => hw.translate(0, iova as unknown as number, 1)),
          "EINVAL",
          `blocked, ${String(iova)}`,
        );
      }
      assertEquals(hw.counters().blockedAccesses, blocked);
      hw.clearFault();
      r.domain.detach(r.units[0]!);
      for (const iova of bad) {
        assertEquals(
          kindOf(() => hw.translate(0, iova as unknown as number, 1)),
          "EINVAL",
          `disabled, ${String(iova)}`,
        );
      }
      assertEquals(hw.counters().identity, 0);
      // Identity beyond 2^52 still reports a positive span.
      assertEquals(hw.translate(0, 2 ** 52 + 8, 1), 2 ** 52 + 8);
      assertEquals(hw.lastSpan, 2 ** 52 - 8);
    },
  );

  await t.step("hits report their own page's span, one size or several", () => {
    for (const version of [V3_3, V7_4]) {
      const r = rig({ version, tlb: { sets: 16, ways: 4 } });
      const hw = r.hw[0]!;
      const sizes = [0x1000, 0x10000, 0x100000];
      const at = (size: number) => 0x1000_0000 + size * 3;
      for (const size of sizes) {
        r.domain.map(at(size), r.soc.memory.frames.alloc(size), size, RW);
      }
      const span = (size: number, off: number) => {
        assertEquals(hw.translate(0, at(size) + off, 1) >= 0, true);
        return hw.lastSpan;
      };
      for (const size of sizes) { // miss, then hits (mixed sizes cached)
        for (const off of [0x10, 0x10, 0xff8]) {
          assertEquals(span(size, off), size - off, `${version} ${size}`);
        }
      }
      r.domain.flushAll();
      const hits = hw.counters().tlbHits;
      for (const size of [0x10000, 0x10000]) { // one size since the flush
        assertEquals(span(size, 0x20), size - 0x20);
        assertEquals(span(size, 0xfff0), 0x10);
      }
      assertEquals(hw.counters().tlbHits, hits + 3);
      assertEquals(hw.counters().faults, 0);
    }
  });

  await t.step(
    "an IOVA that is not an address: EINVAL, nothing counted",
    () => {
      const r = rig({ version: V3_3 });
      const hw = r.hw[0]!;
      const buf = r.soc.memory.frames.alloc(0x1000);
      r.domain.map(0x1000_0000, buf, 0x1000, RW);
      for (const bad of [NaN, -1, 0x1000_0000 + 0.5, undefined]) {
        assertEquals(
          kindOf(() => hw.translate(0, bad as unknown as number, 1)),
          "EINVAL",
          String(bad),
        );
      }
      const c = hw.counters();
      assertEquals([c.lookups, c.walks, c.faults], [0, 0, 0]);
      assertEquals(hw.translate(0, 0x1000_0010, 1), buf + 0x10);
      // Beyond 32 bits (Infinity too): a page fault, not an exception.
      assertEquals(hw.translate(0, Infinity, 1), -1);
      assertEquals(hw.lastFault?.reason, "address-size");
      assertEquals(hw.counters().lookups, 1);
    },
  );
});

// What the FLPD cache must behave as: one tag and value per line, filled
// and dropped one entry at a time (its run blocks are only a cheaper way to
// store a 16-entry prefetch).
class PlainFlpd {
  slot: number[];
  base: number[];
  value: number[];
  hits = 0;
  misses = 0;
  fills = 0;
  invalidated = 0;
  constructor(readonly capacity: number) {
    this.slot = new Array<number>(capacity).fill(-1);
    this.base = new Array<number>(capacity).fill(0);
    this.value = new Array<number>(capacity).fill(0);
  }
  lookup(base: number, slot: number): number {
    const i = slot % Math.max(1, this.capacity);
    if (this.capacity > 0 && this.slot[i] === slot && this.base[i] === base) {
      this.hits++;
      return this.value[i]!;
    }
    this.misses++;
    return -1;
  }
  fill(base: number, slot: number, value: number): void {
    if (this.capacity === 0) return;
    const i = slot % this.capacity;
    this.slot[i] = slot;
    this.base[i] = base;
    this.value[i] = value;
    this.fills++;
  }
  drop(keep: (slot: number) => boolean): void {
    for (let i = 0; i < this.capacity; i++) {
      if (this.slot[i]! >= 0 && !keep(this.slot[i]!)) {
        this.slot[i] = -1;
        this.invalidated++;
      }
    }
  }
  get size(): number {
    return this.slot.filter((s) => s >= 0).length;
  }
}

Deno.test("FLPD cache: prefetch runs, single fills and flushes mixed = one entry per line", () => {
  const l1 = new Uint32Array(4096);
  for (let s = 0; s < 4096; s++) l1[s] = (s * 0x100_0000 + 2) >>> 0;
  // Flushes at and around the ends of a prefetched run (slots 16..31).
  const edges = [[16, 16], [31, 31], [15, 16], [31, 40], [16, 31], [0, 15]];
  for (const [first, last] of [...edges, [32, 40], [0, 4095]]) {
    const cache = new FlpdCache(32);
    const plain = new PlainFlpd(32);
    cache.fillRun(0x4000, 16, 16, l1);
    for (let s = 16; s < 32; s++) plain.fill(0x4000, s, l1[s]!);
    cache.invalidateSlots(first!, last!);
    plain.drop((s) => s < first! || s > last!);
    assertEquals(cache.size, plain.size, `${first}..${last}`);
    for (let s = 0; s < 48; s++) {
      assertEquals(cache.lookup(0x4000, s), plain.lookup(0x4000, s));
    }
    cache.invalidateAll();
    plain.drop(() => false);
    assertEquals(cache.counters(), {
      hits: plain.hits,
      misses: plain.misses,
      fills: plain.fills,
      invalidated: plain.invalidated,
    });
  }
  const op = fc.oneof(
    fc.record({
      k: fc.constant("run"),
      base: fc.constantFrom(0x4000, 0x8000),
      first: fc.oneof(
        // Mostly the first 256 slots, so fills, runs and flushes collide.
        fc.integer({ min: 0, max: 15 }).map((b) => b * 16),
        fc.integer({ min: 0, max: 255 }).map((b) => b * 16),
        fc.integer({ min: 0, max: 4080 }), // unaligned: filled one by one
      ),
      count: fc.constantFrom(16, 16, 3),
      seed: fc.integer({ min: 0, max: 0xffff }),
    }),
    fc.record({
      k: fc.constant("fill"),
      base: fc.constantFrom(0x4000, 0x8000),
      first: fc.oneof(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 4095 }),
      ),
      count: fc.constant(1),
      seed: fc.integer({ min: 0, max: 0xffff }),
    }),
    fc.record({
      k: fc.constantFrom("slots", "all"),
      base: fc.constant(0),
      first: fc.oneof(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 4095 }),
      ),
      count: fc.integer({ min: 1, max: 40 }),
      seed: fc.constant(0),
    }),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1, 8, 16, 32, 64),
      fc.array(op, { maxLength: 60 }),
      (capacity, ops) => {
        const cache = new FlpdCache(capacity);
        const plain = new PlainFlpd(capacity);
        for (const o of ops) {
          if (o.k === "run") {
            for (let s = 0; s < 4096; s++) {
              l1[s] = (s * 0x100_0000 + o.seed) >>> 0;
            }
            const count = Math.min(o.count, 4096 - o.first);
            cache.fillRun(o.base, o.first, count, l1);
            for (let s = o.first; s < o.first + count; s++) {
              plain.fill(o.base, s, l1[s]!);
            }
          } else if (o.k === "fill") {
            cache.fill(o.base, o.first, o.seed);
            plain.fill(o.base, o.first, o.seed);
          } else if (o.k === "slots") {
            const last = Math.min(4095, o.first + o.count - 1);
            cache.invalidateSlots(o.first, last);
            plain.drop((s) => s < o.first || s > last);
          } else {
            cache.invalidateAll();
            plain.drop(() => false);
          }
          assertEquals(cache.size, plain.size);
        }
        for (const base of [0x4000, 0x8000]) {
          for (let s = 0; s < 4096; s += s < 256 ? 1 : 7) {
            assertEquals(cache.lookup(base, s), plain.lookup(base, s));
          }
        }
        const { hits, misses, fills, invalidated } = plain;
        assertEquals(cache.counters(), { hits, misses, fills, invalidated });
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("FLPD cache: a slot outside the level-1 table is EINVAL, with nothing cached or counted", () => {
  const l1 = new Uint32Array(4096);
  for (let s = 0; s < 4096; s++) l1[s] = (s * 0x10_0000 + 1) >>> 0;
  const short = new Uint32Array([7]);
  for (const capacity of [0, 8, 16, 32]) {
    const c = new FlpdCache(capacity);
    c.fillRun(0x8000, 0, 16, l1);
    const unchanged = (): void => {
      assertEquals(c.size, capacity === 0 ? 0 : Math.min(capacity, 16));
      assertEquals(c.counters(), {
        hits: 0,
        misses: 0,
        fills: capacity === 0 ? 0 : 16,
        invalidated: 0,
      });
    };
    const bad: [number, Uint32Array, boolean][] = [
      [-1, l1, false],
      [-16, l1, true],
      [1.5, l1, false],
      [NaN, l1, true],
      [4096, new Uint32Array(8192), false],
      [4096, l1, true],
      // Inside `l1`, but the prefetched line runs past its end.
      [0, short, true],
    ];
    for (const [slot, table, prefetch] of bad) {
      const error = assertThrows(
        () => c.read(0x4000, slot, table, prefetch),
        IommuError,
      );
      assertEquals(error.kind, "EINVAL");
    }
    unchanged();
    for (const slot of [-1, 4096, 2.5, NaN]) {
      assertEquals(
        assertThrows(() => c.fill(0x8000, slot, 1), IommuError).kind,
        "EINVAL",
      );
    }
    for (
      const [first, count, table] of [
        [-16, 16, l1],
        [4090, 16, l1],
        [0, 2, short],
        [0.5, 1, l1],
        [0, -1, l1],
        [4088, 16, new Uint32Array(8192)],
      ] as [number, number, Uint32Array][]
    ) {
      assertEquals(
        assertThrows(() => c.fillRun(0x8000, first, count, table), IommuError)
          .kind,
        "EINVAL",
      );
    }
    unchanged();
    // Without prefetch a short table is fine: its one entry is read.
    assertEquals(c.read(0x4000, 0, short, false), 7);
    assertEquals(c.lookup(0x4000, 0), capacity === 0 ? -1 : 7);
  }
});
