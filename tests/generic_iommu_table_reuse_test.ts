// generic-iommu's LPAE page table: the check pass counts each new table once
// (runs come in ascending IOVA order), and a table frame handed back by
// the allocator for a new table reuses the node kept from its last use
// without anything of that use (children, live count).
import { assertEquals, assertThrows } from "@std/assert";
import { IommuError, IotlbGather, PhysicalMemory } from "../core/mod.ts";
import { LpaePageTable } from "../plugins/generic_iommu/mod.ts";

const RW = 3;
const K4 = 0x1000;
const M2 = 0x20_0000;
const G1 = 0x4000_0000;

function table(mem: PhysicalMemory): LpaePageTable {
  return new LpaePageTable(mem, { inputBits: 48, outputBits: 48, stage: 1 });
}

// Tables per level, root included.
function tables(pt: LpaePageTable): number {
  return pt.tableStats().reduce((n, s) => n + s.tables, 0);
}

// One-page runs at the given IOVAs, each mapped to pa = iova + 0x1000_0000.
function pagesPlan(iovas: number[]) {
  const n = iovas.length;
  return {
    count: n,
    iova: Float64Array.from(iovas),
    pa: Float64Array.from(iovas, (v) => v + 0x1000_0000),
    pageSize: new Float64Array(n).fill(K4),
    pages: new Float64Array(n).fill(1),
  };
}

Deno.test("LpaePageTable: a plan's new tables are each counted once", async (t) => {
  await t.step(
    "runs that come back to a new table after tables that exist",
    () => {
      const mem = new PhysicalMemory({ size: 64 << 20 });
      const pt = table(mem);
      pt.map(pagesPlan([M2 + 0x1000, 5 * M2]), RW);
      const live = mem.frames.liveBlocks;
      // Table 0 (new, twice), table 1 (exists), tables 2 and 3 (new, twice
      // each), table 5 (exists), then the next GiB (a new level-2 table and
      // two level-3 tables).
      pt.map(
        pagesPlan([
          0x1000,
          0x3000,
          M2 + 0x2000,
          2 * M2,
          2 * M2 + 0x1000,
          3 * M2 + 0x5000,
          3 * M2 + 0x9000,
          5 * M2 + 0x1000,
          G1 + 0x1000,
          G1 + M2,
        ]),
        RW,
      );
      assertEquals(pt.tableStats().map((s) => s.tables), [1, 1, 2, 7]);
      // Exactly the frames the new tables use: none left over, none missing.
      assertEquals(mem.frames.liveBlocks - live, 6);
      assertEquals(pt.iovaToPhys(0x3000), 0x1000_3000);
      assertEquals(pt.iovaToPhys(3 * M2 + 0x9000), 0x1060_9000);
      assertEquals(pt.iovaToPhys(G1 + M2), 0x5020_0000);
      pt.free();
    },
  );

  await t.step(
    "blocks and pages mixed, and a table a block run passes over",
    () => {
      const mem = new PhysicalMemory({ size: 64 << 20 });
      const pt = table(mem);
      const live = mem.frames.liveBlocks;
      // A page in table 0, two 2 MiB blocks (level-2 entries 1-2, no level-3
      // table), a page in table 3, then the next GiB as one 1 GiB block and
      // a page in GiB 2 (its level-2 and level-3 tables are new).
      pt.map({
        count: 5,
        iova: new Float64Array([0x1000, M2, 3 * M2, G1, 2 * G1 + 0x1000]),
        pa: new Float64Array([0x1000, M2, 3 * M2, G1, 2 * G1 + 0x1000]),
        pageSize: new Float64Array([K4, M2, K4, G1, K4]),
        pages: new Float64Array([1, 2, 1, 1, 1]),
      }, RW);
      assertEquals(pt.tableStats().map((s) => s.tables), [1, 1, 2, 3]);
      assertEquals(mem.frames.liveBlocks - live, 6);
      assertEquals(pt.iovaToPhys(2 * M2 + 0x10), 2 * M2 + 0x10);
      assertEquals(pt.iovaToPhys(G1 + 0x1234), G1 + 0x1234);
      assertEquals(pt.iovaToPhys(2 * G1 + 0x1000), 2 * G1 + 0x1000);
      pt.free();
    },
  );

  await t.step("more than a level's worth of tables, one page each", () => {
    const mem = new PhysicalMemory({ size: 64 << 20 });
    const pt = table(mem);
    const live = mem.frames.liveBlocks;
    // One page in each of 100 level-3 tables: 480..511 in GiB 0, 512..579
    // in GiB 1.
    const iovas: number[] = [];
    for (let i = 0; i < 100; i++) iovas.push((480 + i) * M2 + 0x2000);
    pt.map(pagesPlan(iovas), RW);
    assertEquals(pt.tableStats().map((s) => s.tables), [1, 1, 2, 100]);
    assertEquals(mem.frames.liveBlocks - live, 103);
    for (const iova of iovas) {
      assertEquals(pt.iovaToPhys(iova), iova + 0x1000_0000);
    }
    pt.free();
  });

  await t.step(
    "a plan whose runs are not in ascending order is refused by the plan check, before any table is counted or built",
    () => {
      const mem = new PhysicalMemory({ size: 64 << 20 });
      const pt = table(mem);
      const live = mem.frames.liveBlocks;
      const e = assertThrows(
        () => pt.map(pagesPlan([M2, 0x1000]), RW),
        IommuError,
      );
      assertEquals(e.kind, "EINVAL");
      // The table count relies on this check: it is what fires.
      assertEquals(
        e.message,
        "map plan: run 1 IOVA 0x1000 overlaps or precedes run 0",
      );
      assertEquals(mem.frames.liveBlocks, live);
      assertEquals(pt.leaves().length, 0);
      pt.free();
    },
  );

  await t.step(
    "an allocation failure after the count frees what was taken, and the same map then succeeds",
    () => {
      const mem = new PhysicalMemory({ size: 64 << 20 });
      const pt = table(mem);
      const live = mem.frames.liveBlocks;
      const plan = pagesPlan([0x1000, 0x2000, M2, M2 + 0x1000, G1]);
      // 6 tables (3 level-3, 2 level-2, 1 level-1): each allocation fails
      // in turn, the 6th too.
      for (let nth = 1; nth <= 6; nth++) {
        mem.frames.failNth(nth);
        const e = assertThrows(() => pt.map(plan, RW), IommuError);
        assertEquals(e.kind, "ENOMEM");
        mem.frames.failNth(0);
        assertEquals(mem.frames.liveBlocks, live);
        assertEquals(tables(pt), 1);
      }
      mem.frames.failNth(7);
      pt.map(plan, RW);
      mem.frames.failNth(0);
      assertEquals(mem.frames.liveBlocks - live, 6);
      assertEquals(pt.iovaToPhys(G1), G1 + 0x1000_0000);
      pt.free();
    },
  );
});

Deno.test("LpaePageTable: a table frame used again starts empty", () => {
  const mem = new PhysicalMemory({ size: 1 << 20 });
  const pt = table(mem);
  const gather = new IotlbGather();
  // A level-2 table (GiB 1) with level-3 tables at indexes 0 and 1; the
  // pages unmapped, the (empty) tables stay.
  pt.map(pagesPlan([G1 + 0x1000, G1 + M2 + 0x1000]), RW);
  pt.unmap(G1 + 0x1000, K4, 1, gather);
  pt.unmap(G1 + M2 + 0x1000, K4, 1, gather);
  assertEquals(gather.freeList.length, 0);
  gather.reset();
  // A 1 GiB block over the GiB unlinks the three tables (they map nothing)
  // with the level-2 table's node still naming its two children.
  pt.mapRange(G1, 0x1_4000_0000, G1, 1, RW);
  assertEquals(pt.releasedTables, 3);
  // Every other frame taken: the next three tables get the three frames.
  const held: number[] = [];
  for (;;) {
    try {
      held.push(mem.frames.alloc(K4));
    } catch (e) {
      assertEquals((e as IommuError).kind, "ENOMEM");
      break;
    }
  }
  pt.freeReleased();
  assertEquals(pt.unmap(G1, G1, 1, gather), G1);
  gather.reset();
  // Three level-2 tables, one 2 MiB block each: one of them is in the old
  // level-2 table's frame, and shows nothing of it.
  const blocks = [2 * G1 + 5 * M2, 3 * G1 + 5 * M2, 4 * G1 + 5 * M2];
  pt.map({
    count: 3,
    iova: Float64Array.from(blocks),
    pa: Float64Array.from(blocks),
    pageSize: new Float64Array(3).fill(M2),
    pages: new Float64Array(3).fill(1),
  }, RW);
  assertEquals(
    pt.tableStats().map((s) => [s.tables, s.entriesUsed]),
    [[1, 1], [1, 3], [3, 3], [0, 0]],
  );
  for (const pa of held) mem.frames.free(pa);
  // Pages at the level-2 indexes the old table's children had: new,
  // linked level-3 tables.
  const pages = [2 * G1 + 0x1000, 3 * G1 + M2 + 0x1000, 4 * G1 + 0x1000];
  pt.map(pagesPlan(pages), RW);
  for (const iova of pages) {
    assertEquals(pt.iovaToPhys(iova), iova + 0x1000_0000);
  }
  assertEquals(
    pt.tableStats().map((s) => [s.tables, s.entriesUsed]),
    [[1, 1], [1, 3], [3, 6], [3, 3]],
  );
  assertEquals(pt.leaves().length, 6);
  pt.free();
});
