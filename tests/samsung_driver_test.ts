import { assertEquals } from "@std/assert";
import { createSoc, IotlbGather, MapPlan } from "../core/mod.ts";
import {
  PTE_V5,
  samsungSysmmu,
  type SysmmuDomain,
} from "../plugins/samsung_sysmmu/mod.ts";
import { kindOf, RAM_BASE, rig, RW, V3_3, V5_0 } from "./support/samsung.ts";

Deno.test("level-2 bookkeeping: free-entry counters, tables kept on unmap", () => {
  const r = rig({ version: V3_3 });
  const slot = 0x100;
  r.domain.map(0x1000_0000, RAM_BASE, 0x3000, RW);
  r.domain.map(0x1001_0000, RAM_BASE + 0x10000, 0x10000, RW);
  assertEquals(r.ops.freeEntries(slot), 256 - 3 - 16);
  const table = r.ops.l2Table(slot);
  const live = r.soc.memory.frames.liveBlocks;
  r.domain.unmap(0x1000_0000, 0x20000);
  assertEquals(r.ops.freeEntries(slot), 256);
  assertEquals(r.ops.l2Table(slot), table); // never freed on unmap
  assertEquals(r.soc.memory.frames.liveBlocks, live);
  assertEquals(r.domain.tableStats()[1], {
    level: 2,
    tables: 1,
    bytes: 1024,
    entriesUsed: 0,
    entriesTotal: 256,
  });
  assertEquals(r.ops.freeEntries(0x200), 0); // no table there
  assertEquals(r.ops.l2Table(0x200), -1);
});

Deno.test("a 1 MiB map over an empty level-2 table frees it; over a used one fails", () => {
  const r = rig({ version: V3_3 });
  const mem = r.soc.memory;
  r.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
  r.domain.unmap(0x1000_0000, 0x1000);
  const live = mem.frames.liveBlocks;
  r.domain.map(0x1000_0000, RAM_BASE + (1 << 20), 1 << 20, RW);
  assertEquals(mem.frames.liveBlocks, live - 1);
  assertEquals(r.ops.l2Table(0x100), -1);
  assertEquals(r.domain.leaves().map((l) => l.pageSize), [1 << 20]);
  // Over a used table: EEXIST, nothing changes.
  r.domain.map(0x2000_0000, RAM_BASE, 0x1000, RW);
  const digest = mem.digest();
  assertEquals(
    kindOf(() => r.domain.map(0x2000_0000, RAM_BASE + (2 << 20), 1 << 20, RW)),
    "EEXIST",
  );
  assertEquals(mem.digest(), digest);
});

Deno.test("map is atomic: an overlap later in the plan leaves the empty table in place", () => {
  const r = rig({ version: V3_3 });
  const mem = r.soc.memory;
  r.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
  r.domain.unmap(0x1000_0000, 0x1000); // slot 0x100: empty table
  r.domain.map(0x1010_0000, RAM_BASE, 0x1000, RW); // slot 0x101: used
  const digest = mem.digest(), live = mem.frames.liveBytes;
  const table = r.ops.l2Table(0x100);
  assertEquals(
    kindOf(() =>
      r.domain.mapSg(0x1000_0000, [
        { pa: RAM_BASE + (4 << 20), length: 1 << 20 }, // would free the table
        { pa: RAM_BASE + 0x5000, length: 0x1000 }, // overlaps slot 0x101
      ], RW)
    ),
    "EEXIST",
  );
  assertEquals(r.ops.l2Table(0x100), table);
  assertEquals(mem.digest(), digest);
  assertEquals(mem.frames.liveBytes, live);
});

Deno.test("map rolls back every level-2 allocation on ENOMEM", () => {
  const r = rig({ version: V5_0 });
  const mem = r.soc.memory;
  const digest = mem.digest(), live = mem.frames.liveBytes;
  for (let n = 1; n <= 3; n++) {
    mem.frames.failNth(n);
    // Three slots of 4 KiB pages (offset by one page: no larger pages).
    assertEquals(
      kindOf(() => r.domain.map(0x100f_f000, RAM_BASE + 0x1000, 0x200000, RW)),
      "ENOMEM",
    );
    mem.frames.failNth(0);
    assertEquals(mem.digest(), digest);
    assertEquals(mem.frames.liveBytes, live);
    assertEquals(r.domain.leaves(), []);
  }
  r.domain.map(0x100f_f000, RAM_BASE + 0x1000, 0x200000, RW);
  assertEquals(r.domain.tableStats()[1]!.tables, 3);
});

Deno.test("domain allocation: ENOMEM leaks nothing; free returns every table", () => {
  const r = rig({ version: V3_3 });
  const mem = r.soc.memory;
  const live = mem.frames.liveBytes;
  mem.frames.failNth(1);
  assertEquals(kindOf(() => r.soc.createDomain(r.units[0]!)), "ENOMEM");
  assertEquals(mem.frames.liveBytes, live);
  const d = r.soc.createDomain(r.units[0]!);
  for (let i = 0; i < 20; i++) {
    d.map(0x1000_0000 + i * (1 << 20), RAM_BASE + i * 0x1000, 0x1000, RW);
  }
  d.unmap(0x1000_0000, 20 << 20);
  assertEquals(mem.frames.liveBytes, live + 16384 + 20 * 1024);
  d.free();
  assertEquals(mem.frames.liveBytes, live);
  assertEquals(kindOf(() => (d.ops as SysmmuDomain).free()), "EPERM");
});

Deno.test("overlaps of every size are refused with EEXIST", () => {
  const r = rig({ version: V3_3 });
  r.domain.map(0x1000_0000, RAM_BASE, 1 << 20, RW);
  r.domain.map(0x2001_0000, RAM_BASE, 0x10000, RW);
  r.domain.map(0x3000_5000, RAM_BASE, 0x1000, RW);
  const cases: [number, number][] = [
    [0x1000_0000, 0x1000], // small in a section
    [0x1008_0000, 0x10000], // large in a section
    [0x1000_0000, 1 << 20], // section over a section
    [0x2001_f000, 0x1000], // small in a large page
    [0x2001_0000, 0x10000], // large over a large
    [0x3000_0000, 0x10000], // large over a small
    [0x3000_0000, 1 << 20], // section over a used table
  ];
  const digest = r.soc.memory.digest();
  for (const [iova, size] of cases) {
    assertEquals(
      kindOf(() => r.domain.map(iova, RAM_BASE + (8 << 20), size, RW)),
      "EEXIST",
      `${iova.toString(16)}+${size.toString(16)}`,
    );
  }
  assertEquals(r.soc.memory.digest(), digest);
});

Deno.test("unmapPages: partial large mappings refused, larger request sizes remove everything inside", () => {
  const r = rig({ version: V3_3 });
  const ops = r.ops;
  const g = new IotlbGather();
  r.domain.map(0x1001_0000, RAM_BASE, 0x10000, RW);
  r.domain.map(0x2000_0000, RAM_BASE, 1 << 20, RW);
  const digest = r.soc.memory.digest();
  assertEquals(
    kindOf(() => ops.unmapPages(0x1001_1000, 0x1000, 1, g)),
    "EINVAL",
  );
  assertEquals(
    kindOf(() => ops.unmapPages(0x1001_0000, 0x1000, 4, g)),
    "EINVAL",
  );
  assertEquals(
    kindOf(() => ops.unmapPages(0x2000_0000, 0x10000, 1, g)),
    "EINVAL",
  );
  assertEquals(kindOf(() => r.domain.unmap(0x2008_0000, 0x1000)), "EINVAL");
  assertEquals(r.soc.memory.digest(), digest);
  assertEquals(g.isEmpty, true);
  // A 1 MiB request over 4 KiB and 64 KiB leaves removes them all.
  r.domain.map(0x1000_0000, RAM_BASE, 0x2000, RW);
  r.domain.map(0x100f_f000, RAM_BASE, 0x1000, RW);
  assertEquals(
    ops.unmapPages(0x1000_0000, 1 << 20, 1, g),
    0x2000 + 0x10000 + 0x1000,
  );
  assertEquals([g.start, g.end, g.pageSize, g.leaves], [
    0x1000_0000,
    0x100f_ffff,
    0x1000,
    4,
  ]);
  assertEquals(ops.unmapPages(0x1000_0000, 1 << 20, 1, g), 0);
  r.domain.sync(g);
  assertEquals(r.domain.leaves().map((l) => l.iova), [0x2000_0000]);
});

Deno.test("attach and detach errors", () => {
  const r = rig({ version: V3_3 }, 2);
  const other = createSoc({ memory: { base: RAM_BASE, size: 16 << 20 } })
    .use(samsungSysmmu({ version: V3_3 }));
  const foreign = other.probeUnit({
    name: "f",
    compatible: ["samsung,exynos-sysmmu"],
  });
  assertEquals(kindOf(() => r.ops.attach(foreign, [])), "EINVAL");
  assertEquals(kindOf(() => r.domain.detach(r.units[1]!)), "ENOENT");
  assertEquals(kindOf(() => r.ops.detach(r.units[1]!, [])), "ENOENT");
  assertEquals(kindOf(() => r.driver.faultLog(foreign)), "EINVAL");
  assertEquals(kindOf(() => r.driver.isActive(foreign)), "EINVAL");
  assertEquals(kindOf(() => r.domain.attach(r.units[0]!, [1])), "EINVAL");
});

Deno.test("tables must be addressable: v1-v3 refuse RAM above 4 GiB, v5 uses it", () => {
  const high = createSoc({ memory: { base: 0x1_0000_0000, size: 16 << 20 } });
  assertEquals(
    kindOf(() =>
      high.use(samsungSysmmu({ version: V3_3 })).probeUnit({
        name: "u",
        compatible: ["samsung,exynos-sysmmu"],
      })
    ),
    "ENOMEM",
  );
  assertEquals(high.memory.frames.liveBytes, 0);
  const r = rig({ version: V5_0 }, 1, { base: 0x8_0000_0000, size: 16 << 20 });
  const buf = r.soc.memory.frames.alloc(0x1000);
  r.domain.map(0x1000_0000, buf, 0x1000, RW);
  const l2 = r.ops.l2Table(0x100);
  assertEquals(l2 >= 0x8_0000_0000, true);
  assertEquals(r.soc.memory.read32(r.ops.rootTable + 0x400), PTE_V5.link(l2));
  assertEquals(r.soc.memory.read32(l2), PTE_V5.smallPage(buf, RW));
  assertEquals(r.hw[0]!.readRegister(0x0c), r.ops.rootTable / 4096);
  r.masters[0]!.port().writeBytes(0x1000_0004, new Uint8Array([0x42]));
  assertEquals(r.soc.memory.read8(buf + 4), 0x42);
});

Deno.test("batched mapPages writes every entry in one call", () => {
  const r = rig({ version: V5_0 });
  const n = 4096;
  const frames = new Float64Array(n);
  for (let i = 0; i < n; i++) frames[i] = RAM_BASE + ((i * 7919) % n) * 0x2000;
  r.domain.mapPages(0x1000_0000, frames, RW);
  const leaves = r.domain.leaves();
  assertEquals(leaves.length, n);
  for (let i = 0; i < n; i += 511) {
    assertEquals(leaves[i]!.pa, frames[i]);
    assertEquals(
      r.domain.iovaToPhys(0x1000_0000 + i * 0x1000 + 5),
      frames[i]! + 5,
    );
  }
  assertEquals(r.domain.tableStats()[1]!.entriesUsed, n);
  assertEquals(r.domain.unmap(0x1000_0000, n * 0x1000), n * 0x1000);
  assertEquals(r.domain.tableStats()[1]!.entriesUsed, 0);
});

Deno.test("a direct driver plan of mixed runs, decoded by leafSize and iovaToPhys", () => {
  const r = rig({ version: V3_3 });
  const plan = new MapPlan();
  plan.push(0x1000_0000, RAM_BASE, 0x1000, 2);
  plan.push(0x1001_0000, RAM_BASE + 0x10000, 0x10000, 1);
  plan.push(0x1010_0000, RAM_BASE + (1 << 20), 1 << 20, 1);
  r.ops.map(plan, RW);
  assertEquals(
    r.domain.leaves().map((l) => [l.iova, l.pageSize]),
    [[0x1000_0000, 0x1000], [0x1000_1000, 0x1000], [0x1001_0000, 0x10000], [
      0x1010_0000,
      1 << 20,
    ]],
  );
  assertEquals(r.ops.leafSize(0x1001_8000), 0x10000);
  assertEquals(r.ops.leafSize(0x1_0000_0000), 0);
  assertEquals(r.ops.iovaToPhys(0x1_0000_0000), -1);
  assertEquals(r.ops.iovaToPhys(0x1001_8004), RAM_BASE + 0x18004);
  assertEquals(r.ops.iovaToPhys(0x1018_0004), RAM_BASE + (1 << 20) + 0x80004);
});

Deno.test("a samsung domain syncs a gather that also had an add of 0 leaves", () => {
  const r = rig({ version: V3_3 });
  r.domain.map(0x1000_0000, RAM_BASE, 0x2000, RW);
  const g = new IotlbGather();
  g.add(0x2200_0000, 4096, 0); // gathers nothing
  r.domain.unmapNoSync(0x1000_0000, 0x2000, g);
  assertEquals([g.start, g.end], [0x1000_0000, 0x1000_1fff]);
  r.domain.sync(g);
  assertEquals([g.isEmpty, r.domain.iovaToPhys(0x1000_0000)], [true, -1]);
});
