// samsung-sysmmu: the one-pass map of scattered page lists (uniform plans)
// writes the same descriptors as the general path on every format, checks
// overlaps per table (scanning only tables that hold entries), and stays
// all-or-nothing.
import { assertEquals } from "@std/assert";
import { IOMMU_READ, IOMMU_WRITE } from "../core/mod.ts";
import { pteFormat } from "../plugins/samsung_sysmmu/mod.ts";
import {
  kindOf,
  RAM_BASE,
  rig,
  RW,
  V1_0,
  V3_3,
  V5_0,
  V7_4,
} from "./support/samsung.ts";

const K4 = 0x1000;
const M1 = 0x10_0000;

// `n` scattered frames (never two physically adjacent).
function scattered(n: number, from = RAM_BASE + (8 << 20)): Float64Array {
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = from + ((i * 37) % n) * 2 * K4;
  return f;
}

for (
  const [label, version, shift] of [
    ["v1.0", V1_0, 0],
    ["v3.3", V3_3, 0],
    ["v5.0", V5_0, 4],
    ["v7.4", V7_4, 4],
  ] as const
) {
  Deno.test(`${label}: a scattered batch across level-2 tables stores the format's small-page entries`, () => {
    const fmt = pteFormat(shift);
    const prots = [IOMMU_READ, RW, ...(fmt.writeOnly ? [IOMMU_WRITE] : [])];
    for (const [p, prot] of prots.entries()) {
      const r = rig({ version });
      const mem = r.soc.memory;
      // 400 pages from 100 pages before a 1 MiB boundary: 3 tables.
      const iova = 0x1000_0000 + p * 0x100_0000 + M1 - 100 * K4;
      const frames = scattered(400);
      r.domain.mapPages(iova, frames, prot);
      for (let i = 0; i < 400; i++) {
        const at = iova + i * K4;
        const table = r.ops.l2Table(at >>> 20);
        const entry = mem.read32(table + ((at >>> 12) & 0xff) * 4);
        assertEquals(entry, fmt.smallPage(frames[i]!, prot), `page ${i}`);
      }
      const slot = iova >>> 20;
      assertEquals(
        [0, 1, 2].map((k) => r.ops.freeEntries(slot + k)),
        [256 - 100, 0, 256 - 44],
      );
      assertEquals(r.domain.leaves().length, 400);
    }
  });
}

Deno.test("an overlap inside a table that holds entries: EEXIST, nothing changes; around it: mapped", () => {
  const r = rig({ version: V3_3 });
  const mem = r.soc.memory;
  const slotBase = 0x1000_0000;
  r.domain.map(slotBase + 200 * K4, RAM_BASE, K4, RW);
  const digest = mem.digest();
  const live = mem.frames.liveBytes;
  const counters = r.domain.counters();
  const flushes = r.driver.counters();
  assertEquals(
    kindOf(() => r.domain.mapPages(slotBase, scattered(256), RW)),
    "EEXIST",
  );
  // Also when the overlap is the last page of a batch starting in a fresh
  // table before it (that table must not be allocated).
  assertEquals(
    kindOf(() => r.domain.mapPages(slotBase - 300 * K4, scattered(501), RW)),
    "EEXIST",
  );
  assertEquals(mem.digest(), digest);
  assertEquals(mem.frames.liveBytes, live);
  assertEquals(r.domain.counters(), counters);
  assertEquals(r.driver.counters(), flushes);
  assertEquals(r.ops.freeEntries(slotBase >>> 20), 255);
  // Pages 0..199 and 201..255 of the same table fit.
  r.domain.mapPages(slotBase, scattered(200), RW);
  r.domain.mapPages(slotBase + 201 * K4, scattered(55, RAM_BASE + M1), RW);
  assertEquals(r.ops.freeEntries(slotBase >>> 20), 0);
  assertEquals(r.domain.leaves().length, 256);
});

Deno.test("a batch over a 1 MiB section: EEXIST; into emptied tables: no new table", () => {
  const r = rig({ version: V3_3 });
  const mem = r.soc.memory;
  r.domain.map(0x2000_0000, RAM_BASE + (16 << 20), M1, RW);
  const digest = mem.digest();
  assertEquals(
    kindOf(() => r.domain.mapPages(0x2000_0000 - K4, scattered(2), RW)),
    "EEXIST",
  );
  assertEquals(mem.digest(), digest);
  // Map 512 pages, unmap them (tables stay, counters say empty), map a
  // different list there: same tables, no allocation, new entries.
  const iova = 0x3000_0000;
  r.domain.mapPages(iova, scattered(512), RW);
  r.domain.unmap(iova, 512 * K4);
  const blocks = mem.frames.liveBlocks;
  const table = r.ops.l2Table(iova >>> 20);
  const other = scattered(512, RAM_BASE + (32 << 20));
  r.domain.mapPages(iova, other, RW);
  assertEquals(mem.frames.liveBlocks, blocks);
  assertEquals(r.ops.l2Table(iova >>> 20), table);
  assertEquals(r.domain.iovaToPhys(iova + 511 * K4 + 9), other[511]! + 9);
});

Deno.test("v3.3: one FLPD flush per batch however many zero links it replaces", () => {
  const r = rig({ version: V3_3 });
  const before = r.driver.counters().flpdFlushes;
  r.domain.mapPages(0x1000_0000, scattered(3 * 256), RW); // 3 new tables
  assertEquals(r.driver.counters().flpdFlushes, before + 1);
  r.domain.unmap(0x1000_0000, 3 * 256 * K4);
  r.domain.mapPages(0x1000_0000, scattered(3 * 256), RW); // tables reused
  assertEquals(r.driver.counters().flpdFlushes, before + 1);
});
