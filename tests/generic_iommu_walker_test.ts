// The generic unit's hardware fast paths (issue 8): the walker reading
// tables through cached chunk views and per-level descriptor memos, and the
// translate path's per-stream rows (config licence + micro TLB), checked
// against hand-built tables and register changes that must defeat them.
import { assert, assertEquals } from "@std/assert";
import {
  ACCESS_READ,
  ACCESS_WRITE,
  createSoc,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuFault,
  PhysicalMemory,
  Tlb,
} from "../core/mod.ts";
import {
  CR0_CMDQEN,
  CR0_EVTQEN,
  CR0_SMMUEN,
  DEFAULT_WALK_CACHE,
  encodeLeaf,
  encodeTable,
  EVT_F_ACCESS,
  EVT_F_ADDR_SIZE,
  EVT_F_TRANSLATION,
  EVT_F_WALK_EABT,
  genericHardwareOf,
  genericIommu,
  type GenericIommuOptions,
  leafAccess,
  REG_CR0,
  REG_GBPA,
  REG_STRTAB_BASE_CFG,
  S1_AP_RDONLY,
  S2_HAP_READ,
  S2_HAP_WRITE,
  Walker,
} from "../plugins/generic_iommu/mod.ts";
import { expectError } from "./support/assertions.ts";
import * as micro from "../plugins/generic_iommu/micro_tlb.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const BASE = 0x4000_0000;
const OFF = { sets: 0, ways: 0 } as const;
const NO_CACHES = [OFF, OFF, OFF];
const OUT_END = 2 ** 48;

function put(mem: PhysicalMemory, at: number, words: [number, number]): void {
  mem.write32(at, words[0]);
  mem.write32(at + 4, words[1]);
}

// Slot of `iova` in a table at `level` (bytes from the table base).
function slot(iova: number, level: number): number {
  return (Math.floor(iova / [2 ** 39, 2 ** 30, 2 ** 21, 4096][level]!) & 511) *
    8;
}

/** Four tables at l0..l3 mapping `iova` to `pa` (4 KiB page). */
function chain(
  mem: PhysicalMemory,
  tables: [number, number, number, number],
  iova: number,
  pa: number,
  prot = RW,
): void {
  for (let l = 0; l < 3; l++) {
    put(mem, tables[l]! + slot(iova, l), encodeTable(tables[l + 1]!));
  }
  put(mem, tables[3] + slot(iova, 3), encodeLeaf(pa, 3, prot, 1));
}

/** Four table pages one after another from `first` (levels 0 to 3). */
function tablesAt(first: number): [number, number, number, number] {
  return [first, first + 0x1000, first + 0x2000, first + 0x3000];
}

Deno.test("walker: four levels, per-level reads, leaf fields", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 64 << 20 });
  const w = new Walker(mem, 1, NO_CACHES);
  const t = tablesAt(BASE);
  const iova = 0x12_3456_7000;
  chain(mem, t, iova, BASE + 0x80_0000);
  assertEquals(w.walk(1, t[0], 0, iova + 0x123, OUT_END), 0);
  assertEquals([w.leafPa, w.leafSize, w.leafAccess], [
    BASE + 0x80_0000,
    4096,
    3,
  ]);
  assertEquals([...w.reads], [1, 1, 1, 1]);
  assertEquals(w.walks, 1);
  // Read-only leaf: stage 1 grants read only.
  put(mem, t[3] + slot(iova, 3), encodeLeaf(BASE, 3, IOMMU_READ, 1));
  assertEquals(w.walk(1, t[0], 0, iova, OUT_END), 0);
  assertEquals([w.leafPa, w.leafAccess], [BASE, 1]);
});

Deno.test("walker: a rewritten table descriptor is followed at once (no stale memo)", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 64 << 20 });
  const w = new Walker(mem, 1, NO_CACHES);
  const t = tablesAt(BASE);
  const iova = 0x4000_0000;
  chain(mem, t, iova, BASE + 0x10_0000);
  // Another level-3 table in another 64 KiB chunk, mapping elsewhere.
  const other = BASE + 0x2_5000;
  put(mem, other + slot(iova, 3), encodeLeaf(BASE + 0x20_0000, 3, RW, 1));
  for (let round = 0; round < 3; round++) {
    assertEquals(w.walk(1, t[0], 0, iova, OUT_END), 0);
    assertEquals(w.leafPa, BASE + 0x10_0000, `round ${round}: first table`);
    put(mem, t[2] + slot(iova, 2), encodeTable(other));
    assertEquals(w.walk(1, t[0], 0, iova, OUT_END), 0);
    assertEquals(w.leafPa, BASE + 0x20_0000, `round ${round}: other table`);
    put(mem, t[2] + slot(iova, 2), encodeTable(t[3]));
  }
  // The same leaf slot rewritten in place is seen too.
  put(mem, t[3] + slot(iova, 3), encodeLeaf(BASE + 0x30_0000, 3, RW, 1));
  assertEquals(w.walk(1, t[0], 0, iova, OUT_END), 0);
  assertEquals(w.leafPa, BASE + 0x30_0000);
  // Cleared: translation fault.
  put(mem, t[3] + slot(iova, 3), [0, 0]);
  assertEquals(w.walk(1, t[0], 0, iova, OUT_END), EVT_F_TRANSLATION);
});

Deno.test("walker: level-2 memos per slot, and descriptors whose 8 bytes read as NaN or -0", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 64 << 20 });
  for (const caches of [NO_CACHES, [...DEFAULT_WALK_CACHE]]) {
    const w = new Walker(mem, 1, caches);
    const t = tablesAt(BASE + 0x10_0000);
    // 64 level-3 tables under one level-2 table, one page mapped in each,
    // walked in a stride that changes level-3 table every walk.
    const iovaOf = (k: number) => 0x80_0000_0000 + k * 0x20_0000 + 0x5000;
    const l3Of = (k: number) => BASE + 0x20_0000 + k * 0x1000;
    for (let k = 0; k < 64; k++) {
      chain(mem, [t[0], t[1], t[2], l3Of(k)], iovaOf(k), BASE + k * 0x1000);
    }
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 64; k++) {
        const j = (k * 27) & 63;
        assertEquals(w.walk(1, t[0], 0, iovaOf(j), OUT_END), 0);
        assertEquals(w.leafPa, BASE + j * 0x1000, `round ${round} table ${j}`);
      }
    }
    // Slot 9's descriptor names another table, then is cleared, then has
    // bit 63 alone set (the bytes of -0): each is seen on the next walk
    // (the walk caches invalidated as software would).
    const k = 9;
    const at = t[2] + slot(iovaOf(k), 2);
    put(mem, at, encodeTable(l3Of(10)));
    w.invalidateAll();
    assertEquals(w.walk(1, t[0], 0, iovaOf(k), OUT_END), 0);
    // (Table 10 maps the same page offset to frame 10.)
    assertEquals(w.leafPa, BASE + 10 * 0x1000);
    for (const bad of [[0, 0], [0, 0x8000_0000]] as [number, number][]) {
      put(mem, at, bad);
      w.invalidateAll();
      const reads = [...w.reads];
      assertEquals(w.walk(1, t[0], 0, iovaOf(k), OUT_END), EVT_F_TRANSLATION);
      assertEquals([...w.reads].map((r, l) => r - reads[l]!), [1, 1, 1, 0]);
    }
    put(mem, at, encodeTable(l3Of(k)));
    // Another level-1 and level-2 table leading to table 10 (frame 10).
    const alt1 = BASE + 0x30_0000;
    const alt2 = BASE + 0x30_1000;
    put(mem, alt1 + slot(iovaOf(k), 1), encodeTable(alt2));
    put(mem, alt2 + slot(iovaOf(k), 2), encodeTable(l3Of(10)));
    for (let l = 0; l < 3; l++) {
      // At each table level in turn, after a walk that memoised the
      // usual descriptor: one naming the other path with attribute bits
      // 62:52 all set (the bytes of a NaN), then the usual one again.
      const d = t[l]! + slot(iovaOf(k), l);
      const usual = encodeTable(l < 2 ? t[l + 1]! : l3Of(k));
      const [olo, ohi] = encodeTable([alt1, alt2, l3Of(10)][l]!);
      for (
        const [desc, frame] of [
          [usual, k],
          [[olo, (ohi | 0x7ff0_0000) >>> 0], 10],
          [usual, k],
        ] as [[number, number], number][]
      ) {
        put(mem, d, desc);
        w.invalidateAll();
        for (let i = 0; i < 2; i++) {
          const reads = [...w.reads];
          assertEquals(w.walk(1, t[0], 0, iovaOf(k), OUT_END), 0);
          assertEquals(w.leafPa, BASE + frame * 0x1000, `level ${l}`);
          const n = i === 0 || caches === NO_CACHES ? 1 : 0;
          assertEquals([...w.reads].map((r, j) => r - reads[j]!), [n, n, n, 1]);
        }
      }
    }
    // Every other slot still walks to its own table.
    for (let j = 0; j < 64; j++) {
      assertEquals(w.walk(1, t[0], 0, iovaOf(j), OUT_END), 0);
      assertEquals(w.leafPa, BASE + j * 0x1000);
    }
  }
});

Deno.test("walker: tables whose chunks share a view-cache slot stay apart", () => {
  // 256 chunks of 64 KiB apart: the same slot of the walker's view cache.
  const mem = new PhysicalMemory({ base: BASE, size: 64 << 20 });
  const w = new Walker(mem, 1, NO_CACHES);
  const far = 256 * 65536;
  const a = tablesAt(BASE);
  const b = tablesAt(BASE + far);
  const iova = 0x7_0000_0000;
  chain(mem, a, iova, BASE + 0x11_1000);
  chain(mem, b, iova, BASE + 0x22_2000);
  for (let i = 0; i < 4; i++) {
    assertEquals(w.walk(1, a[0], 0, iova, OUT_END), 0);
    assertEquals(w.leafPa, BASE + 0x11_1000);
    assertEquals(w.walk(2, b[0], 0, iova, OUT_END), 0);
    assertEquals(w.leafPa, BASE + 0x22_2000);
  }
});

Deno.test("walker: an unaligned root and a root in RAM's last chunk", () => {
  const size = 4 << 20;
  const mem = new PhysicalMemory({ base: BASE, size });
  const w = new Walker(mem, 1, NO_CACHES);
  // Level-1 start (a 39-bit context) with a 16-byte aligned root.
  const root = BASE + 0x1010;
  const l2 = BASE + size - 0x2000;
  const l3 = BASE + size - 0x1000;
  const iova = 0x40_2000_3000;
  put(mem, root + slot(iova, 1), encodeTable(l2));
  put(mem, l2 + slot(iova, 2), encodeTable(l3));
  put(mem, l3 + slot(iova, 3), encodeLeaf(BASE + 0x5000, 3, RW, 1));
  for (let i = 0; i < 2; i++) {
    assertEquals(w.walk(1, root, 1, iova + 8, OUT_END), 0);
    assertEquals(w.leafPa, BASE + 0x5000);
    assertEquals(w.walk(1, l2, 2, iova + 8, OUT_END), 0, "aligned root");
    assertEquals(w.leafPa, BASE + 0x5000);
  }
  assertEquals([...w.reads], [0, 2, 4, 4]);
});

Deno.test("walker: faults (outside RAM, output size, access flag, bad types)", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 4 << 20 });
  const w = new Walker(mem, 1, NO_CACHES);
  const l1 = BASE;
  const l2 = BASE + 0x1000;
  const l3 = BASE + 0x2000;
  const iova = 0x4060_1000;
  put(mem, l1 + slot(iova, 1), encodeTable(l2));
  put(mem, l2 + slot(iova, 2), encodeTable(l3));
  put(mem, l3 + slot(iova, 3), encodeLeaf(BASE + 0x9000, 3, RW, 1));
  assertEquals(w.walk(1, l1, 1, iova, OUT_END), 0);
  // A next-level table outside RAM (but inside the output size).
  put(mem, l2 + slot(iova, 2), encodeTable(0x7000_0000));
  assertEquals(w.walk(1, l1, 1, iova, OUT_END), EVT_F_WALK_EABT);
  assertEquals(w.faultAddress, 0x7000_0000 + slot(iova, 3));
  // A root outside RAM.
  assertEquals(w.walk(1, 0x1000, 1, iova, OUT_END), EVT_F_WALK_EABT);
  assertEquals(w.faultAddress, 0x1000 + slot(iova, 1));
  // A table pointer beyond the output size.
  put(mem, l2 + slot(iova, 2), encodeTable(2 ** 40));
  assertEquals(w.walk(1, l1, 1, iova, 2 ** 36), EVT_F_ADDR_SIZE);
  assertEquals(w.faultAddress, 2 ** 40);
  put(mem, l2 + slot(iova, 2), encodeTable(l3));
  // A page whose end passes the output size.
  assertEquals(w.walk(1, l1, 1, iova, BASE + 0x9800), EVT_F_ADDR_SIZE);
  assertEquals(w.faultAddress, BASE + 0x9000);
  // Access flag clear.
  const [lo, hi] = encodeLeaf(BASE + 0x9000, 3, RW, 1);
  put(mem, l3 + slot(iova, 3), [lo & ~(1 << 10), hi]);
  assertEquals(w.walk(1, l1, 1, iova, OUT_END), EVT_F_ACCESS);
  // Level-3 type 0b01 is reserved.
  put(mem, l3 + slot(iova, 3), [(lo & ~3) | 1, hi]);
  assertEquals(w.walk(1, l1, 1, iova, OUT_END), EVT_F_TRANSLATION);
  // Blocks: 2 MiB at level 2, 1 GiB at level 1.
  put(mem, l2 + slot(iova, 2), encodeLeaf(BASE + 0x20_0000, 2, RW, 1));
  assertEquals(w.walk(1, l1, 1, iova, OUT_END), 0);
  assertEquals([w.leafPa, w.leafSize], [BASE + 0x20_0000, 2 ** 21]);
  put(mem, l1 + slot(iova, 1), encodeLeaf(BASE, 1, RW, 1));
  assertEquals(w.walk(1, l1, 1, iova, OUT_END), 0);
  assertEquals([w.leafPa, w.leafSize], [BASE, 2 ** 30]);
  // A level-0 block is reserved.
  put(mem, l1 + slot(iova, 0), [(BASE | 1 | (1 << 10)) >>> 0, 0]);
  assertEquals(w.walk(1, l1, 0, iova, OUT_END), EVT_F_TRANSLATION);
});

Deno.test("walker: a memoised table descriptor is checked again against a smaller output size", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 4 << 20 });
  const w = new Walker(mem, 1, NO_CACHES);
  const t = tablesAt(BASE);
  const iova = 0x1_4000_3000;
  chain(mem, t, iova, BASE + 0x9000);
  assertEquals(w.walk(1, t[0], 0, iova, OUT_END), 0);
  // The level-2 descriptor names t[3] = BASE + 0x3000: beyond this bound.
  assertEquals(w.walk(1, t[0], 0, iova, BASE + 0x3000), EVT_F_ADDR_SIZE);
  assertEquals(w.faultAddress, t[3]);
  assertEquals(w.walk(1, t[0], 0, iova, OUT_END), 0);
  assertEquals(w.leafPa, BASE + 0x9000);
});

Deno.test("walker: a walk given a TLB fills it with the leaf, faults fill nothing", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 4 << 20 });
  const w = new Walker(mem, 1, NO_CACHES);
  const tlb = new Tlb({ sets: 16, ways: 2 });
  const t = tablesAt(BASE);
  const iova = 0x1_4000_3000;
  chain(mem, t, iova, BASE + 0x9000, IOMMU_READ);
  assertEquals(w.walk(7, t[0], 0, iova + 0x123, OUT_END, tlb), 0);
  assertEquals(
    tlb.entries().map((e) => [e.context, e.iova, e.pageSize, e.pa, e.perm]),
    [
      [7, iova, 4096, BASE + 0x9000, 1],
    ],
  );
  // A fault (no leaf) and a walk without a TLB leave it alone.
  assertEquals(
    w.walk(7, t[0], 0, iova + 0x1000, OUT_END, tlb),
    EVT_F_TRANSLATION,
  );
  put(mem, t[3] + slot(iova, 3), encodeLeaf(BASE + 0xa000, 3, RW, 1));
  assertEquals(w.walk(7, t[0], 0, iova, OUT_END), 0);
  assertEquals(tlb.size, 1);
  assertEquals(tlb.peek(7, iova), BASE + 0x9000, "stale until refilled");
  // A 2 MiB block through the checked path (an unaligned level-1 root).
  const root = BASE + 0x10_0010;
  put(mem, root + slot(iova, 1), encodeTable(t[2]));
  put(mem, t[2] + slot(iova, 2), encodeLeaf(BASE + 0x20_0000, 2, RW, 1));
  assertEquals(w.walk(8, root, 1, iova, OUT_END, tlb), 0);
  assertEquals(tlb.peek(8, iova + 0x5), BASE + 0x20_0000 + 0x3005);
  // A TLB that holds nothing is left alone.
  const none = new Tlb({ sets: 0, ways: 0 });
  assertEquals(w.walk(8, root, 1, iova, OUT_END, none), 0);
  assertEquals(none.counters().fills, 0);
});

Deno.test("walker: walk caches skip levels until invalidated", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 4 << 20 });
  const w = new Walker(mem, 1, [
    { sets: 1, ways: 4 },
    { sets: 1, ways: 4 },
    { sets: 1, ways: 4 },
  ]);
  const t = tablesAt(BASE);
  const iova = 0x1_4000_0000;
  chain(mem, t, iova, BASE + 0x8000);
  assertEquals(w.walk(5, t[0], 0, iova, OUT_END), 0);
  assertEquals(w.walk(5, t[0], 0, iova + 0x1000, OUT_END), EVT_F_TRANSLATION);
  assertEquals([...w.reads], [1, 1, 1, 2], "second walk started at L3");
  // The level-2 walk cache still names the old level-3 table.
  const moved = BASE + 0x4000;
  put(mem, moved + slot(iova, 3), encodeLeaf(BASE + 0xa000, 3, RW, 1));
  put(mem, t[2] + slot(iova, 2), encodeTable(moved));
  assertEquals(w.walk(5, t[0], 0, iova, OUT_END), 0);
  assertEquals(w.leafPa, BASE + 0x8000, "stale until invalidated");
  w.invalidateRange(5, iova, 4096);
  assertEquals(w.walk(5, t[0], 0, iova, OUT_END), 0);
  assertEquals(w.leafPa, BASE + 0xa000);
});

Deno.test("walker fast path: level-2 hit-table walks see leaf faults, table changes and tables outside RAM", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 4 << 20 });
  const w = new Walker(mem, 1, DEFAULT_WALK_CACHE);
  const tlb = new Tlb({ sets: 16, ways: 2, replacement: "round-robin" });
  const t = tablesAt(BASE);
  const iova = 0x1_4000_0000;
  chain(mem, t, iova, BASE + 0x8000);
  // First walk from the root, then the level-2 cache's lookup, then its
  // hit table (twice: the second with the table's view kept).
  for (let i = 0; i < 4; i++) {
    assertEquals(w.walk(5, t[0], 0, iova + 8 * i, OUT_END), 0, `walk ${i}`);
    assertEquals([w.leafPa, w.leafSize, w.leafAccess], [
      BASE + 0x8000,
      4096,
      3,
    ]);
  }
  assertEquals([...w.reads], [1, 1, 1, 4]);
  assertEquals(w.walks, 4);
  const c2 = w.caches[2]!.counters();
  assertEquals([c2.lookups, c2.hits, c2.misses, c2.fills], [4, 3, 1, 1]);
  // Leaf faults found through the hit table, each with the old code's
  // event ID and fault address; the fill TLB is left alone.
  const leaf = encodeLeaf(BASE + 0x9000, 3, IOMMU_READ, 1);
  const at = t[3] + slot(iova, 3);
  put(mem, at, [leaf[0] & ~(1 << 10), leaf[1]]);
  assertEquals(w.walk(5, t[0], 0, iova, OUT_END, tlb), EVT_F_ACCESS);
  put(mem, at, [(leaf[0] & ~3) | 1, leaf[1]]);
  assertEquals(w.walk(5, t[0], 0, iova, OUT_END, tlb), EVT_F_TRANSLATION);
  put(mem, at, [0, 0]);
  assertEquals(w.walk(5, t[0], 0, iova, OUT_END, tlb), EVT_F_TRANSLATION);
  put(mem, at, leaf);
  assertEquals(w.walk(5, t[0], 0, iova, BASE + 0x9800, tlb), EVT_F_ADDR_SIZE);
  assertEquals(w.faultAddress, BASE + 0x9000);
  assertEquals(tlb.size, 0);
  // A success clears the fault address and fills the TLB.
  assertEquals(w.walk(5, t[0], 0, iova + 0x10, OUT_END, tlb), 0);
  assertEquals([w.faultAddress, w.leafAccess], [0, 1]);
  assertEquals(
    tlb.entries().map((e) => [e.context, e.iova, e.pageSize, e.pa, e.perm]),
    [[5, iova, 4096, BASE + 0x9000, 1]],
  );
  // The level-2 descriptor now names a table in another 64 KiB chunk:
  // after the invalidation the walk finds it, and the hit table's slot
  // (whose kept view is of the old table) follows it.
  const moved = BASE + 0x3_5000;
  put(mem, moved + slot(iova, 3), encodeLeaf(BASE + 0xa000, 3, RW, 1));
  put(mem, t[2] + slot(iova, 2), encodeTable(moved));
  w.invalidateRange(5, iova, 4096);
  for (let i = 0; i < 3; i++) {
    assertEquals(w.walk(5, t[0], 0, iova, OUT_END), 0, `moved ${i}`);
    assertEquals(w.leafPa, BASE + 0xa000, `moved ${i}`);
  }
  // An entry put into the public cache naming a table outside RAM: the
  // checked path's external abort, from the lookup and from the table.
  w.caches[2]!.insert(6, iova, 2 ** 21, 0x7000_0000, 0);
  for (let i = 0; i < 3; i++) {
    assertEquals(w.walk(6, t[0], 0, iova, OUT_END), EVT_F_WALK_EABT);
    assertEquals(w.faultAddress, 0x7000_0000 + slot(iova, 3));
  }
  // A start at level 3 probes no cache.
  const before = w.caches[2]!.counters().lookups;
  assertEquals(w.walk(5, moved, 3, iova, OUT_END), 0);
  assertEquals(w.leafPa, BASE + 0xa000);
  assertEquals(w.caches[2]!.counters().lookups, before);
});

Deno.test("walker fast path: a malformed IOVA is EINVAL even where the hit table holds its page", () => {
  const mem = new PhysicalMemory({ base: BASE, size: 4 << 20 });
  const w = new Walker(mem, 1, DEFAULT_WALK_CACHE);
  const t = tablesAt(BASE);
  const iova = 0x40_0000;
  chain(mem, t, iova, BASE + 0x8000);
  const roots = new Float64Array([t[0]]);
  for (let i = 0; i < 3; i++) {
    assertEquals(w.walkIn(1, roots, 0, 0, iova, OUT_END), 0);
  }
  const lookups = w.caches[2]!.counters().lookups;
  expectError(() => w.walkIn(1, roots, 0, 0, iova + 0.5, OUT_END), "EINVAL");
  expectError(() => w.walkIn(1.5, roots, 0, 0, iova, OUT_END), "EINVAL");
  expectError(
    () => w.walkIn(1, roots, 0, 0, BigInt(iova) as unknown as number, OUT_END),
    "EINVAL",
  );
  assertEquals(w.caches[2]!.counters().lookups, lookups);
  assertEquals(w.walkIn(1, roots, 0, 0, iova + 8, OUT_END), 0);
  assertEquals(w.leafPa, BASE + 0x8000);
});

function unitRig(options: GenericIommuOptions = {}) {
  const soc = createSoc({ memory: { base: BASE, size: 64 << 20 } }).use(
    genericIommu(options),
  );
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const faults: IommuFault[] = [];
  soc.faults.onFault((f) => faults.push(f));
  const hw = genericHardwareOf(unit);
  const d = soc.createDomain(unit);
  d.attach(unit, [1, 3]);
  const buf = soc.memory.frames.alloc(0x4000);
  d.map(0x10_0000, buf, 0x2000, RW);
  d.map(0x10_2000, buf + 0x2000, 0x1000, IOMMU_READ);
  return { soc, unit, hw, d, buf, faults };
}

Deno.test("translate fast path: register writes and odd stream IDs defeat it", () => {
  const { hw, buf, faults } = unitRig();
  // Warm both streams' rows and micro TLBs.
  for (const sid of [1, 3]) {
    assertEquals(hw.translate(sid, 0x10_0010, ACCESS_READ), buf + 0x10);
    assertEquals(hw.translate(sid, 0x10_0020, ACCESS_WRITE), buf + 0x20);
  }
  assertEquals(hw.lastSpan, 0x1000 - 0x20);
  // Non-integer, negative, NaN and out-of-table stream IDs.
  for (const sid of [1.5, -1, NaN, 256, 2 ** 32 + 1]) {
    assertEquals(hw.translate(sid, 0x10_0010, ACCESS_READ), -1, String(sid));
    assertEquals(faults.at(-1)!.reason, "bad-stream");
  }
  // A micro hit that lacks permission faults and counts as a micro miss.
  assertEquals(hw.translate(1, 0x10_2000, ACCESS_READ), buf + 0x2000);
  assertEquals(hw.translate(1, 0x10_2004, ACCESS_WRITE), -1);
  assertEquals(faults.at(-1)!.reason, "permission");
  let c = hw.counters();
  assertEquals(c["translations"], 6);
  assertEquals(c["configCache.lookups"], 6);
  assertEquals(c["microTlb.lookups"], 6);
  assertEquals(c["microTlb.hits"], 2);
  assertEquals(c["microTlb.misses"], 4);
  assertEquals(hw.streamCounters(1).translations, 4);
  // Shrinking the stream table (2 streams): stream 3 is now beyond it.
  hw.writeRegister(REG_STRTAB_BASE_CFG, 1);
  assertEquals(hw.translate(3, 0x10_0010, ACCESS_READ), -1);
  assertEquals(faults.at(-1)!.reason, "bad-stream");
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), buf + 0x10);
  // SMMUEN clear: GBPA decides, whatever the rows said.
  hw.writeRegister(REG_CR0, CR0_CMDQEN | CR0_EVTQEN);
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), -1);
  assertEquals(faults.at(-1)!.reason, "blocked");
  hw.writeRegister(REG_GBPA, 0);
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), 0x10_0010);
  assertEquals(hw.lastSpan, Number.MAX_SAFE_INTEGER - 0x10_0010);
  hw.writeRegister(REG_CR0, CR0_SMMUEN | CR0_CMDQEN | CR0_EVTQEN);
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), buf + 0x10);
  c = hw.counters();
  assertEquals(c["bypassed"], 1);
  assertEquals(c["translations"], c["configCache.lookups"]);
});

Deno.test("translate fast path: an IOVA beyond the input size faults on a warm stream", () => {
  const { hw, buf, faults } = unitRig({ inputBits: 39 });
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), buf + 0x10);
  assertEquals(hw.translate(1, 2 ** 39, ACCESS_READ), -1);
  assertEquals(faults.at(-1)!.reason, "address-size");
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), buf + 0x10);
  assertEquals(hw.streamCounters(1).translations, 3);
  assertEquals(hw.streamCounters(1).faults, 1);
  // The refused access never reached the micro TLB: one miss (the first
  // access), one hit.
  const c = hw.counters();
  assertEquals(
    [c["microTlb.lookups"], c["microTlb.hits"], c["microTlb.misses"]],
    [2, 1, 1],
  );
  assertEquals(c["iotlb.lookups"], 1);
});

Deno.test("translate fast path: unmap with sync drops micro and IOTLB entries", () => {
  for (const microTlb of [true, false]) {
    const { hw, d, buf, faults } = unitRig({ microTlb });
    for (let i = 0; i < 3; i++) {
      assertEquals(hw.translate(1, 0x10_1008, ACCESS_READ), buf + 0x1008);
    }
    d.unmap(0x10_1000, 0x1000);
    assertEquals(hw.translate(1, 0x10_1008, ACCESS_READ), -1);
    assertEquals(faults.at(-1)!.reason, "translation");
    assertEquals(hw.translate(1, 0x10_0008, ACCESS_READ), buf + 8);
    const c = hw.counters();
    assert(c["walks"]! >= 2);
    assertEquals(c["microTlb.hits"]! > 0, microTlb);
  }
});

Deno.test("translate: a non-number stream ID or a malformed IOVA is EINVAL, warm or cold", () => {
  const { hw, buf, faults } = unitRig({});
  const bad: [unknown, unknown][] = [
    [1n, 0x10_0010],
    ["1", 0x10_0010],
    [1, 0x10_0010n],
    [1, 0x10_0010 + 0.5],
    [1, -0x10],
    [1, NaN],
    [1, 2 ** 53],
  ];
  for (const warm of [false, true]) {
    // Warm: the stream's micro TLB and IOTLB hold the page the bad IOVAs
    // point into, so the fast path sees them first.
    if (warm) assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), buf + 0x10);
    const before = hw.streamCounters(1).translations;
    for (const [sid, iova] of bad) {
      expectError(
        () => hw.translate(sid as number, iova as number, ACCESS_READ),
        "EINVAL",
      );
    }
    assertEquals(hw.streamCounters(1).translations, before);
  }
  assertEquals(faults.length, 0);
});

Deno.test("micro TLB slots: the values hardware.ts's translate path spells as literals", () => {
  assertEquals(
    [
      micro.ROW_STRIDE,
      micro.ROW_CFG_GEN,
      micro.ROW_IN_END,
      micro.ROW_TRANSLATIONS,
      micro.ROW_U_HITS,
      micro.ROW_U_BLOCK,
      micro.ROW_CTX,
    ],
    [8, 0, 1, 2, 3, 4, 5],
  );
  assertEquals(
    [
      micro.U_STRIDE,
      micro.U_GEN,
      micro.U_BASE,
      micro.U_END,
      micro.U_DELTA_PERM,
    ],
    [4, 0, 1, 2, 3],
  );
  // The event IDs the walk and the IOTLB path spell as literals.
  assertEquals(
    [EVT_F_WALK_EABT, EVT_F_TRANSLATION, EVT_F_ADDR_SIZE, EVT_F_ACCESS],
    [0x0b, 0x10, 0x11, 0x12],
  );
});

Deno.test("translate's inline walk: counts and fields as the walker's, faults and changed tables through the walker", () => {
  for (const stage of [1, 2] as const) {
    const { soc, hw, d, buf, faults } = unitRig({
      microTlb: false,
      stage,
      outputBits: 40,
    });
    const w = hw.walker;
    const c2 = w.caches[2]!;
    // Cold: a walk from the root fills the level-2 cache; the next walks
    // of that 2 MiB region hit it (the first through its lookup, the rest
    // through the hit table, the last of them inside translate()).
    for (let i = 0; i < 4; i++) {
      hw.iotlb.invalidateAll();
      assertEquals(hw.translate(1, 0x10_1008, ACCESS_WRITE), buf + 0x1008);
    }
    assertEquals(hw.lastSpan, 0x1000 - 8);
    assertEquals([...w.reads], [1, 1, 1, 4]);
    assertEquals([w.walks, hw.streamCounters(1).walks], [4, 4]);
    let c = c2.counters();
    assertEquals([c.lookups, c.hits, c.misses, c.fills], [4, 3, 1, 1]);
    assertEquals([w.leafPa, w.leafSize, w.leafAccess], [buf + 0x1000, 4096, 3]);
    assertEquals(
      hw.iotlb.entries().map((e) => [e.iova, e.pageSize, e.pa, e.perm]),
      [[0x10_1000, 4096, buf + 0x1000, 3]],
    );
    // A read-only page: its permission as the walker decodes it, and a
    // write to it is refused after the walk (entry cached).
    assertEquals(hw.translate(1, 0x10_2010, ACCESS_WRITE), -1);
    assertEquals(faults.at(-1)!.reason, "permission");
    assertEquals(w.leafAccess, 1);
    assertEquals(hw.translate(1, 0x10_2010, ACCESS_READ), buf + 0x2010);
    // An unmapped page of the region: a translation fault from the walker,
    // counted once (one walk, one hit-table hit, one level-3 read).
    c = c2.counters();
    const [walks, reads] = [w.walks, w.reads[3]!];
    assertEquals(hw.translate(1, 0x10_3000, ACCESS_READ), -1);
    assertEquals(faults.at(-1)!.reason, "translation");
    assertEquals([w.walks, w.reads[3]], [walks + 1, reads + 1]);
    assertEquals(c2.counters().hits, c.hits + 1);
    // A page the walker refuses for the output size, after a fault that
    // set the fault address: the inline walk clears it again.
    const l3 = hw.walker.caches[2]!.peek(d.ops.contextId, 0);
    soc.memory.write32(l3 + 0x103 * 8 + 4, 0x100); // PA bit 40 set
    soc.memory.write32(l3 + 0x103 * 8, (buf & 0xffff_f000) | 0x403);
    assertEquals(hw.translate(1, 0x10_3000, ACCESS_READ), -1);
    assertEquals(faults.at(-1)!.reason, "address-size");
    assertEquals(w.faultAddress, 2 ** 40 + buf);
    hw.iotlb.invalidateAll();
    assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), buf);
    assertEquals(w.faultAddress, 0);
    // The region's table replaced (unmap frees it, a new map builds
    // another): the hit table's slot follows the new table.
    const old = c2.peek(d.ops.contextId, 0);
    d.unmap(0, 0x20_0000);
    const other = soc.memory.frames.alloc(0x1000);
    d.map(0x10_0000, other, 0x1000, RW);
    for (let i = 0; i < 2; i++) {
      hw.iotlb.invalidateAll();
      assertEquals(hw.translate(1, 0x10_0008, ACCESS_READ), other + 8);
    }
    assert(c2.peek(d.ops.contextId, 0) !== old, "a new table");
  }
});

Deno.test("translate's memo walk (no walk caches): counts and fields as the walker's; a changed descriptor, root or bound goes through the walker", () => {
  for (const stage of [1, 2] as const) {
    for (const microTlb of [false, true]) {
      const what = `stage ${stage}, micro TLB ${microTlb}`;
      const { soc, unit, hw, d, buf, faults } = unitRig({
        microTlb,
        stage,
        outputBits: 40,
        walkCache: NO_CACHES,
      });
      const w = hw.walker;
      const mem = soc.memory;
      // Count the walks the walker itself does (translate's own walk
      // calls nothing).
      let walkIns = 0;
      const walkIn = w.walkIn;
      w.walkIn = function (...args: Parameters<Walker["walkIn"]>): number {
        walkIns++;
        return walkIn.apply(this, args);
      };
      const read = (iova: number, pa: number) => {
        hw.iotlb.invalidateAll();
        assertEquals(hw.translate(1, iova, ACCESS_READ), pa, what);
      };
      // The first walk is the walker's (it memoises levels 0-2); the next
      // walks of the region are translate's, counted as the walker counts.
      for (let i = 0; i < 4; i++) {
        hw.iotlb.invalidateAll();
        assertEquals(hw.translate(1, 0x10_1008, ACCESS_WRITE), buf + 0x1008);
      }
      assertEquals(walkIns, 1, what);
      assertEquals(hw.lastSpan, 0x1000 - 8);
      assertEquals([...w.reads], [4, 4, 4, 4], what);
      assertEquals([w.walks, hw.streamCounters(1).walks], [4, 4]);
      assertEquals([w.leafPa, w.leafSize, w.leafAccess], [
        buf + 0x1000,
        4096,
        3,
      ]);
      assertEquals(
        hw.iotlb.entries().map((e) => [e.iova, e.pageSize, e.pa, e.perm]),
        [[0x10_1000, 4096, buf + 0x1000, 3]],
      );
      assertEquals(hw.counters()["iotlb.misses"], 4);
      // A read-only page: its permission as the walker decodes it.
      hw.iotlb.invalidateAll();
      assertEquals(hw.translate(1, 0x10_2010, ACCESS_WRITE), -1);
      assertEquals(faults.at(-1)!.reason, "permission");
      assertEquals([w.leafAccess, walkIns], [1, 1], what);
      // An unmapped page: the walker's translation fault, counted once.
      hw.iotlb.invalidateAll();
      assertEquals(hw.translate(1, 0x10_3000, ACCESS_READ), -1);
      assertEquals(faults.at(-1)!.reason, "translation");
      assertEquals([...w.reads], [6, 6, 6, 6], what);
      assertEquals([w.walks, walkIns], [6, 2]);
      // A leaf beyond the output size: the walker's fault, with its
      // address; translate's next walk clears that address.
      const root = d.ops.rootTable;
      const desc = (table: number, iova: number, level: number) =>
        table + slot(iova, level);
      const next = (at: number) =>
        mem.read32(at + 4) * 2 ** 32 + (mem.read32(at) & 0xffff_f000);
      const d0 = desc(root, 0x10_0000, 0);
      const d1 = desc(next(d0), 0x10_0000, 1);
      const d2 = desc(next(d1), 0x10_0000, 2);
      const l3 = next(d2);
      put(mem, desc(l3, 0x10_3000, 3), encodeLeaf(2 ** 40 + buf, 3, RW, stage));
      hw.iotlb.invalidateAll();
      assertEquals(hw.translate(1, 0x10_3000, ACCESS_READ), -1);
      assertEquals(faults.at(-1)!.reason, "address-size");
      assertEquals([w.faultAddress, walkIns], [2 ** 40 + buf, 3]);
      read(0x10_0000, buf);
      assertEquals([w.faultAddress, walkIns], [0, 3], what);
      // A descriptor changed at any level is seen at once (the walker
      // walks it); restored, translate walks again.
      const copy = soc.memory.frames.alloc(0x1000);
      put(
        mem,
        desc(copy, 0x10_0000, 3),
        encodeLeaf(buf + 0x3000, 3, RW, stage),
      );
      let walks = walkIns;
      for (
        const [at, words] of [
          [d0, [0, 0]],
          [d1, [0, 0]],
          [d2, [0, 0]],
          [d0, [0xffff_ffff, 0x7ff8_0000]], // reads as NaN: never a memo
        ] as const
      ) {
        const saved: [number, number] = [mem.read32(at), mem.read32(at + 4)];
        put(mem, at, [...words]);
        hw.iotlb.invalidateAll();
        assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), -1, what);
        assertEquals(walkIns, ++walks);
        // Restored: the memo (kept through the fault) holds again.
        put(mem, at, saved);
        read(0x10_0000, buf);
        read(0x10_0000, buf);
        assertEquals(walkIns, walks, what);
      }
      // The level-2 descriptor naming another level-3 table.
      const saved: [number, number] = [mem.read32(d2), mem.read32(d2 + 4)];
      put(mem, d2, encodeTable(copy));
      read(0x10_0008, buf + 0x3008);
      read(0x10_0008, buf + 0x3008);
      assertEquals(walkIns, ++walks);
      put(mem, d2, saved);
      read(0x10_0008, buf + 0x8);
      read(0x10_0008, buf + 0x8);
      assertEquals(walkIns, ++walks, what);
      // Another root (a stream of another domain) and back: the walker
      // walks each root once.
      const e = soc.createDomain(unit);
      e.attach(unit, [2]);
      e.map(0x10_0000, buf + 0x2000, 0x1000, RW);
      for (const [sid, pa] of [[2, buf + 0x2000], [1, buf]] as const) {
        for (let i = 0; i < 2; i++) {
          hw.iotlb.invalidateAll();
          assertEquals(hw.translate(sid, 0x10_0000, ACCESS_READ), pa);
        }
      }
      assertEquals(walkIns, walks + 2, what);
    }
  }
});

Deno.test("leafAccess: AP[2] (stage 1) and HAP (stage 2) for every attribute byte", () => {
  // From the descriptor bits' definitions, whatever the other bits hold.
  for (let low = 0; low < 0x1000; low++) {
    const lo = (0xabcde000 | low) >>> 0;
    const s1 = (lo & S1_AP_RDONLY) !== 0
      ? ACCESS_READ
      : ACCESS_READ | ACCESS_WRITE;
    const s2 = ((lo & S2_HAP_READ) !== 0 ? ACCESS_READ : 0) |
      ((lo & S2_HAP_WRITE) !== 0 ? ACCESS_WRITE : 0);
    assertEquals(leafAccess(lo, 1), s1, `stage 1, lo ${lo.toString(16)}`);
    assertEquals(leafAccess(lo, 2), s2, `stage 2, lo ${lo.toString(16)}`);
  }
  // Leaves written by encodeLeaf read back with their prot's access.
  for (const prot of [IOMMU_READ, RW]) {
    for (const stage of [1, 2] as const) {
      const [lo] = encodeLeaf(BASE, 3, prot, stage);
      assertEquals(leafAccess(lo, stage), prot & RW);
    }
  }
});

Deno.test("walker: output-size checks by the high word, and exactly at and above floor(bound / 2^32)", () => {
  // RAM above 4 GiB: every table and page has address bits 47:32 = 1.
  const high = 0x1_0000_0000;
  const mem = new PhysicalMemory({ base: high, size: 4 << 20 });
  const t = tablesAt(high);
  const iova = 0x12_3456_7000;
  const page = high + 0x10_0000;
  for (const caches of [NO_CACHES, DEFAULT_WALK_CACHE]) {
    const w = new Walker(mem, 1, caches);
    chain(mem, t, iova, page, RW);
    // Bound 2^33: bits 47:32 = 1 is below 2, whatever the low word.
    assertEquals(w.walk(1, t[0], 0, iova, 2 ** 33), 0);
    assertEquals([w.leafPa, w.leafAccess], [page, 3]);
    // Bound just past the page: the high word equals floor(bound / 2^32),
    // so the exact compare decides, for tables and the page alike.
    assertEquals(w.walk(2, t[0], 0, iova, page + 4096), 0);
    assertEquals(w.leafPa, page);
    // One byte short: the page's end passes the bound.
    assertEquals(w.walk(3, t[0], 0, iova, page + 4095), EVT_F_ADDR_SIZE);
    assertEquals(w.faultAddress, page);
    // Bound at the level-3 table: the level-2 descriptor's table is out.
    assertEquals(w.walk(4, t[0], 0, iova, t[3]), EVT_F_ADDR_SIZE);
    assertEquals(w.faultAddress, t[3]);
    // A bound below 2^32 (high word limit 0): everything here is out, the
    // root's first descriptor already.
    assertEquals(w.walk(5, t[0], 0, iova, 2 ** 32 - 4096), EVT_F_ADDR_SIZE);
    assertEquals(w.faultAddress, t[1]);
    // Back to a large bound: the same walk succeeds again.
    assertEquals(w.walk(6, t[0], 0, iova, 2 ** 48), 0);
    assertEquals(w.leafPa, page);
  }
  // A page with address bits above the bound's high word but a low word
  // that alone would pass: refused.
  const w = new Walker(mem, 1, NO_CACHES);
  put(mem, t[3] + slot(iova, 3), encodeLeaf(2 ** 40 + 0x1000, 3, RW, 1));
  assertEquals(w.walk(1, t[0], 0, iova, 2 ** 36), EVT_F_ADDR_SIZE);
  assertEquals(w.faultAddress, 2 ** 40 + 0x1000);
});
