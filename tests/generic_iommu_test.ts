import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  ACCESS_READ,
  ACCESS_WRITE,
  createSoc,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuErrorKind,
  type IommuFault,
  type IommuUnit,
  IotlbGather,
  PhysicalMemory,
  type Soc,
} from "../core/mod.ts";
import {
  bypassStreams,
  CERROR_ILL,
  CMD_SYNC,
  CR0_CMDQEN,
  CR0_EVTQEN,
  CR0_SMMUEN,
  decodeProt,
  descKind,
  encodeLeaf,
  encodeTable,
  type GenericDomainOps,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  type GenericIommuOptions,
  GERROR_CMDQ_ERR,
  GERROR_EVTQ_ABT,
  LEVEL_SIZE,
  lpaeGeometry,
  LpaePageTable,
  REG_CMDQ_CONS,
  REG_CMDQ_PROD,
  REG_CR0,
  REG_GBPA,
  REG_GERROR,
  REG_GERRORN,
  REG_IDR1,
  REG_IDR5,
  setStreamBypass,
  STE_BYTES,
} from "../plugins/generic_iommu/mod.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const GIB = 2 ** 30;
const MIB2 = 2 ** 21;

function throwsKind(fn: () => unknown, kind: IommuErrorKind): IommuError {
  const e = assertThrows(fn, IommuError);
  assertEquals(e.kind, kind, e.message);
  return e;
}

interface Rig {
  soc: Soc;
  unit: IommuUnit;
  faults: IommuFault[];
}

function rig(
  options: GenericIommuOptions = {},
  props: Record<string, number> = {},
  size = 64 << 20,
): Rig {
  const soc = createSoc({ memory: { size } }).use(genericIommu(options));
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
    props,
  });
  const faults: IommuFault[] = [];
  soc.faults.onFault((f) => faults.push(f));
  return { soc, unit, faults };
}

Deno.test("LPAE geometry matches the arm_lpae table for every input size", () => {
  const expect: Record<number, [number, number]> = {
    32: [1, 4],
    36: [1, 64],
    39: [1, 512],
    40: [0, 2],
    42: [0, 8],
    44: [0, 32],
    48: [0, 512],
  };
  for (const [bits, [start, entries]] of Object.entries(expect)) {
    const g = lpaeGeometry(Number(bits));
    assertEquals(
      [g.startLevel, g.rootEntries],
      [start, entries],
      `ias ${bits}`,
    );
  }
  assertEquals(LEVEL_SIZE, [2 ** 39, GIB, MIB2, 4096]);
});

Deno.test("descriptor encodings are the LPAE bit patterns", async (t) => {
  const pa = 0x8_1234_5000;
  await t.step("stage-1 pages and blocks", () => {
    assertEquals(encodeLeaf(pa, 3, RW | IOMMU_CACHE, 1), [0x12345f47, 0x8]);
    assertEquals(encodeLeaf(pa, 3, IOMMU_READ, 1), [0x12345ec3, 0x8]);
    assertEquals(encodeLeaf(pa, 3, IOMMU_READ | IOMMU_NOEXEC, 1), [
      0x12345ec3,
      0x600008,
    ]);
    assertEquals(encodeLeaf(0x4020_0000, 2, RW, 1), [0x40200e41, 0]);
    assertEquals(encodeLeaf(0x4000_0000, 1, RW | IOMMU_PRIV, 1), [
      0x40000e01,
      0,
    ]);
    assertEquals(encodeLeaf(0x1000, 3, RW | IOMMU_MMIO, 1), [0x1e4b, 0]);
  });
  await t.step("stage-2 HAP bits", () => {
    assertEquals(encodeLeaf(pa, 3, RW | IOMMU_CACHE, 2), [0x123457ff, 0x8]);
    assertEquals(encodeLeaf(pa, 3, IOMMU_WRITE, 2), [0x12345697, 0x8]);
    assertEquals(encodeLeaf(pa, 3, IOMMU_READ, 2), [0x12345657, 0x8]);
    assertEquals(encodeLeaf(0x20_0000, 2, RW | IOMMU_MMIO, 2), [0x2006c5, 0]);
  });
  await t.step("tables and kinds", () => {
    assertEquals(encodeTable(pa), [0x12345003, 0x8]);
    assertEquals(descKind(0, 2), "invalid");
    assertEquals(descKind(3, 0), "table");
    assertEquals(descKind(3, 3), "page");
    assertEquals(descKind(1, 3), "reserved");
    assertEquals(descKind(1, 0), "reserved");
    assertEquals(descKind(1, 1), "block");
  });
  await t.step("prot decodes back (stage 1 cannot express write-only)", () => {
    for (
      const prot of [
        RW,
        IOMMU_READ,
        RW | IOMMU_CACHE | IOMMU_NOEXEC,
        RW | IOMMU_MMIO | IOMMU_PRIV,
      ]
    ) {
      const [lo, hi] = encodeLeaf(pa, 3, prot, 1);
      assertEquals(decodeProt(lo, hi, 1), prot);
    }
    const [lo1, hi1] = encodeLeaf(pa, 3, IOMMU_WRITE, 1);
    assertEquals(decodeProt(lo1, hi1, 1), RW);
    for (
      const prot of [
        RW,
        IOMMU_READ,
        IOMMU_WRITE,
        IOMMU_WRITE | IOMMU_CACHE | IOMMU_NOEXEC,
        RW | IOMMU_MMIO,
      ]
    ) {
      const [lo, hi] = encodeLeaf(pa, 3, prot, 2);
      assertEquals(decodeProt(lo, hi, 2), prot);
    }
  });
});

// The io-pgtable-arm selftest sequence (current form: no split on partial
// unmap), for a 4 KiB granule, every ias <= oas pair, stage 1 and stage 2,
// replayed through the core Domain of this plugin and checked through the
// hardware's translate as well as the table walk.
Deno.test("LPAE selftest sequence replayed for 21 ias/oas pairs x 2 stages", () => {
  const sizes = [32, 36, 40, 42, 44, 48];
  const R = IOMMU_READ, W = IOMMU_WRITE;
  let configs = 0;
  for (const stage of [1, 2] as const) {
    for (let j = 0; j < sizes.length; j++) {
      for (let k = 0; k <= j; k++) {
        const oas = sizes[j]!, ias = sizes[k]!;
        const soc = createSoc({ memory: { size: 4 << 20 } }).use(
          genericIommu({ stage, outputBits: oas }),
        );
        const unit = soc.probeUnit({
          name: "smmu",
          compatible: ["iommukit,generic-iommu"],
          props: { "iommukit,input-bits": ias },
        });
        const hw = genericHardwareOf(unit);
        hw.writeRegister(REG_CR0, CR0_SMMUEN | CR0_CMDQEN);
        const d = soc.createDomain(unit);
        d.attach(unit, [0]);
        const live = soc.memory.frames.liveBytes;
        for (const iova of [42, GIB + 42, 2 * GIB + 42]) {
          assertEquals(d.iovaToPhys(iova), -1);
        }
        const pageSizes = [4096, MIB2, GIB];
        pageSizes.forEach((size, i) => {
          const iova = i * GIB;
          d.map(iova, iova, size, R | W | IOMMU_NOEXEC | IOMMU_CACHE);
          throwsKind(
            () => d.map(iova, iova + size, size, R | IOMMU_NOEXEC),
            "EEXIST",
          );
          assertEquals(d.iovaToPhys(iova + 42), iova + 42);
          assertEquals(hw.translate(0, iova + 42, ACCESS_WRITE), iova + 42);
        });
        pageSizes.forEach((size, i) => {
          const iova = i * GIB;
          assertEquals(d.unmap(iova, size), size);
          assertEquals(d.iovaToPhys(iova + 42), -1);
          assertEquals(hw.translate(0, iova + 42, ACCESS_READ), -1);
          d.map(iova, iova, size, W);
          assertEquals(d.iovaToPhys(iova + 42), iova + 42);
          assertEquals(hw.translate(0, iova + 42, ACCESS_WRITE), iova + 42);
          // Stage 2 enforces write-only; stage 1 cannot express it.
          assertEquals(
            hw.translate(0, iova + 42, ACCESS_READ) >= 0,
            stage === 1,
          );
          assertEquals(d.unmap(iova, size), size);
        });
        const last = 2 ** ias - GIB;
        d.map(last, last, GIB, R | W | IOMMU_NOEXEC | IOMMU_CACHE);
        assertEquals(d.leaves().length, 1);
        assertEquals(d.unmap(last, GIB), GIB);
        // Tables emptied by leaf unmaps stay (as the kernel's LPAE code
        // keeps them); the frames in use are exactly the tables counted.
        const stats = d.tableStats();
        const kept = stats.reduce((s, l) => s + l.bytes, 0) - stats[0]!.bytes;
        assert(kept > 0, "the level-3 table under IOVA 0 is kept");
        assertEquals(soc.memory.frames.liveBytes, live + kept);
        // An unmap spanning them frees them.
        assertEquals(d.unmap(0, 2 ** ias), 0);
        assertEquals(
          soc.memory.frames.liveBytes,
          live,
          "tables freed by an unmap spanning them",
        );
        d.detach(unit, [0]);
        d.free();
        configs++;
      }
    }
  }
  assertEquals(configs, 42);
});

Deno.test("page table: atomic map, coalescing, unmap frees spanned tables", async (t) => {
  await t.step("EEXIST in a later run allocates and writes nothing", () => {
    const { soc, unit } = rig();
    const d = soc.createDomain(unit);
    const x = 0x7f_0040_0000;
    d.map(x, 0x10_0000, 4096, RW);
    const digest = soc.memory.digest();
    const live = soc.memory.frames.liveBytes;
    const allocs = soc.memory.frames.allocations;
    const frames = [0x20_0000, 0x30_0000, 0x1000, 0x9000, 0x7000, 0xb000];
    throwsKind(() => d.mapPages(x - 5 * 4096, frames, RW), "EEXIST");
    assertEquals(soc.memory.digest(), digest);
    assertEquals(soc.memory.frames.liveBytes, live);
    assertEquals(soc.memory.frames.allocations, allocs);
    // A table where a block should go is also EEXIST.
    throwsKind(() => d.map(x - (x % MIB2), 0x40_0000, MIB2, RW), "EEXIST");
    // A block on the way down to a page is EEXIST.
    d.map(0x20_0000, 0x20_0000, MIB2, RW);
    const withBlock = soc.memory.digest();
    throwsKind(
      () => d.ops.map(planOf(0x20_1000, 0x5000, 4096, 1), RW),
      "EEXIST",
    );
    assertEquals(soc.memory.digest(), withBlock);
  });
  await t.step(
    "scattered frames across table boundaries: every page lands, collisions anywhere refuse all",
    () => {
      const { soc, unit } = rig();
      const d = soc.createDomain(unit);
      const base = 0x7f_c000_0000 - 100 * 4096; // crosses 2 MiB and 1 GiB boundaries
      const frames = Array.from(
        { length: 1100 },
        (_, i) => 0x100_0000 + ((i * 37) % 1100) * 8192,
      );
      d.mapPages(base, frames, RW);
      for (let i = 0; i < frames.length; i++) {
        if (d.iovaToPhys(base + i * 4096 + 5) !== frames[i]! + 5) {
          throw new Error(`page ${i}`);
        }
      }
      assertEquals(d.leaves().length, 1100);
      assertEquals(d.unmap(base, 1100 * 4096), 1100 * 4096);
      for (const at of [0, 99, 100, 611, 612, 1099]) {
        d.map(base + at * 4096, 0x10_0000, 4096, RW);
        const digest = soc.memory.digest();
        const live = soc.memory.frames.liveBytes;
        throwsKind(() => d.mapPages(base, frames, RW), "EEXIST");
        assertEquals(soc.memory.digest(), digest, `collision at ${at}`);
        assertEquals(soc.memory.frames.liveBytes, live);
        d.unmap(base + at * 4096, 4096);
      }
    },
  );
  await t.step(
    "ENOMEM at every table allocation rolls back byte for byte",
    () => {
      const { soc, unit } = rig();
      const d = soc.createDomain(unit);
      const digest = soc.memory.digest();
      const live = soc.memory.frames.liveBytes;
      for (let n = 1; n <= 3; n++) {
        soc.memory.frames.failNth(n);
        throwsKind(() => d.map(0x12_3456_7000, 0x1000, 4096, RW), "ENOMEM");
        assertEquals(soc.memory.digest(), digest);
        assertEquals(soc.memory.frames.liveBytes, live);
      }
      soc.memory.frames.failNth(0);
      d.map(0x12_3456_7000, 0x1000, 4096, RW);
      assertEquals(d.iovaToPhys(0x12_3456_7abc), 0x1abc);
    },
  );
  await t.step("mapPages coalesces 2 MiB and 1 GiB where aligned", () => {
    const { soc, unit } = rig();
    const d = soc.createDomain(unit);
    const f2 = Array.from(
      { length: 512 + 3 },
      (_, i) => 0x4000_0000 + i * 4096,
    );
    d.mapPages(0x20_0000, f2, RW);
    const f1 = new Float64Array(262144).map((_, i) => GIB + i * 4096);
    d.mapPages(2 * GIB, f1, RW);
    const leaves = d.leaves().map((l) => [l.iova, l.pa, l.pageSize]);
    assertEquals(leaves, [
      [0x20_0000, 0x4000_0000, MIB2],
      [0x40_0000, 0x4020_0000, 4096],
      [0x40_1000, 0x4020_1000, 4096],
      [0x40_2000, 0x4020_2000, 4096],
      [2 * GIB, GIB, GIB],
    ]);
    assertEquals(d.leaves()[0]!.prot, RW);
  });
  await t.step(
    "a partial unmap of a block is refused, also by the driver itself",
    () => {
      const { soc, unit } = rig();
      const d = soc.createDomain(unit);
      d.map(GIB, GIB, GIB, RW);
      d.map(0x20_0000, 0x20_0000, MIB2, RW);
      const digest = soc.memory.digest();
      throwsKind(() => d.unmap(0x20_1000, 4096), "EINVAL");
      const g = new IotlbGather();
      throwsKind(() => d.ops.unmapPages(0x20_1000, 4096, 1, g), "EINVAL");
      throwsKind(() => d.ops.unmapPages(GIB - MIB2, MIB2, 2, g), "EINVAL");
      assertEquals(g.isEmpty, true);
      assertEquals(soc.memory.digest(), digest);
      // A larger unit than the leaves removes every leaf inside.
      assertEquals(d.ops.unmapPages(0, GIB, 2, g), GIB + MIB2);
      assertEquals(g.leaves, 2);
      // Domain.sync frees only what Domain.unmapNoSync deferred: the
      // driver's own deferrals are released by hand.
      throwsKind(() => d.sync(g), "EINVAL");
      d.ops.iotlbSync(g);
      for (const pa of g.freeList) soc.memory.frames.free(pa);
      g.reset();
      assertEquals(d.leaves(), []);
    },
  );
  await t.step(
    "tables emptied by leaf unmaps stay and are reused; tables an unmap spans are deferred to the gather and freed after the sync",
    () => {
      const { soc, unit } = rig();
      const d = soc.createDomain(unit);
      const live = soc.memory.frames.liveBytes;
      d.map(0x7f_ffff_f000, 0x1000, 4096, RW);
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 1, 1]);
      assertEquals(soc.memory.frames.liveBytes, live + 3 * 4096);
      const g = new IotlbGather();
      assertEquals(d.unmapNoSync(0x7f_ffff_f000, 4096, g), 4096);
      assertEquals(g.freeList.length, 0, "emptied, not spanned: kept");
      d.sync(g);
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 1, 1]);
      assertEquals(d.tableStats()[3]!.entriesUsed, 0);
      assertEquals(soc.memory.frames.liveBytes, live + 3 * 4096);
      const allocs = soc.memory.frames.allocations;
      d.map(0x7f_ffff_e000, 0x2000, 2 * 4096, RW);
      assertEquals(soc.memory.frames.allocations, allocs, "tables reused");
      // The 2 MiB span of the level-3 table alone frees that table only.
      assertEquals(d.unmapNoSync(0x7f_ffe0_0000, MIB2, g), 2 * 4096);
      assertEquals(g.freeList.length, 1);
      d.sync(g);
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 1, 0]);
      assertEquals(soc.memory.frames.liveBytes, live + 2 * 4096);
      d.map(0x7f_ffff_f000, 0x1000, 4096, RW);
      // The whole 512 GiB of root entry 0 frees all three.
      assertEquals(d.unmapNoSync(0, 2 ** 39, g), 4096);
      assertEquals(g.freeList.length, 3);
      assertEquals(
        soc.memory.frames.liveBytes,
        live + 3 * 4096,
        "not before the sync",
      );
      d.sync(g);
      assertEquals(soc.memory.frames.liveBytes, live);
      assertEquals(d.tableStats().map((s) => s.tables), [1, 0, 0, 0]);
    },
  );
  await t.step(
    "one-page runs and multi-page runs with output addresses above 4 GiB",
    () => {
      const mem = new PhysicalMemory({ size: 1 << 20 });
      const pt = new LpaePageTable(mem, {
        inputBits: 48,
        outputBits: 48,
        stage: 1,
      });
      // Three one-page runs at consecutive IOVAs (no uniform hint), then a
      // run of pages whose output crosses a 4 GiB line.
      const pas = [0x8_1234_5000, 0xffff_f000, 0x1_0000_0000];
      pt.map({
        count: 4,
        iova: new Float64Array([0x1000, 0x2000, 0x3000, 0x10_0000]),
        pa: new Float64Array([...pas, 0x2_ffff_e000]),
        pageSize: new Float64Array([4096, 4096, 4096, 4096]),
        pages: new Float64Array([1, 1, 1, 4]),
      }, RW);
      assertEquals(pt.iovaToPhys(0x1abc), 0x8_1234_5abc);
      assertEquals(pt.iovaToPhys(0x2abc), 0xffff_fabc);
      assertEquals(pt.iovaToPhys(0x3abc), 0x1_0000_0abc);
      assertEquals(
        [0, 1, 2, 3].map((i) => pt.iovaToPhys(0x10_0000 + i * 4096)),
        [0x2_ffff_e000, 0x2_ffff_f000, 0x3_0000_0000, 0x3_0000_1000],
      );
      pt.free();
    },
  );
  await t.step(
    "a block where an empty table stands replaces it; walk caches forget the table",
    () => {
      const { soc, unit } = rig();
      const hw = genericHardwareOf(unit);
      const syncs = (): number => hw.counters()["commands.sync"]!;
      const d = soc.createDomain(unit);
      d.attach(unit, [1]);
      const live = soc.memory.frames.liveBytes;
      d.map(0x20_0000, 0x1000, 4096, RW);
      // The walk caches now point at the level-3 table.
      assertEquals(hw.translate(1, 0x20_0010, ACCESS_READ), 0x1010);
      d.unmap(0x20_0000, 4096);
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 1, 1]);
      // A plan whose block lands on the empty table but whose next run
      // is EEXIST changes nothing.
      d.map(0x60_0000, 0x3000, 4096, RW);
      const digest = soc.memory.digest();
      const two = {
        count: 2,
        iova: new Float64Array([0x20_0000, 0x60_0000]),
        pa: new Float64Array([0x40_0000, 0x5000]),
        pageSize: new Float64Array([MIB2, 4096]),
        pages: new Float64Array([1, 1]),
      } as never;
      throwsKind(() => d.ops.map(two, RW), "EEXIST");
      assertEquals(soc.memory.digest(), digest);
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 1, 2]);
      d.unmap(0x60_0000, 4096);
      const before = syncs();
      d.map(0x20_0000, 0x40_0000, MIB2, RW);
      assertEquals(syncs() - before, 1, "the unlinked table is invalidated");
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 1, 1]);
      assertEquals(soc.memory.frames.liveBytes, live + 3 * 4096);
      assertEquals(hw.translate(1, 0x20_1234, ACCESS_READ), 0x40_1234);
      assertEquals(d.leaves().map((l) => l.pageSize), [MIB2]);
      // A 1 GiB block over a level-2 table holding only an empty level-3
      // table replaces both.
      d.map(2 * GIB + MIB2, 0x1000, 4096, RW);
      assertEquals(hw.translate(1, 2 * GIB + MIB2, ACCESS_READ), 0x1000);
      d.unmap(2 * GIB + MIB2, 4096);
      assertEquals(soc.memory.frames.liveBytes, live + 5 * 4096);
      d.map(2 * GIB, 0, GIB, RW);
      assertEquals(soc.memory.frames.liveBytes, live + 3 * 4096);
      assertEquals(hw.translate(1, 2 * GIB + MIB2 + 8, ACCESS_READ), MIB2 + 8);
      // With the command queue stalled the block still maps; the unlinked
      // table stays allocated until an invalidation completes.
      d.map(0xa0_0000, 0x1000, 4096, RW);
      d.unmap(0xa0_0000, 4096);
      const kept = soc.memory.frames.liveBytes;
      hw.writeRegister(REG_CR0, CR0_EVTQEN | CR0_SMMUEN);
      d.map(0xa0_0000, 0x60_0000, MIB2, RW);
      assertEquals(d.iovaToPhys(0xa0_0008), 0x60_0008);
      assertEquals(soc.memory.frames.liveBytes, kept, "not freed yet");
      hw.writeRegister(REG_CR0, CR0_EVTQEN | CR0_SMMUEN | CR0_CMDQEN);
      d.flushAll();
      assertEquals(soc.memory.frames.liveBytes, kept - 4096, "freed");
      assertEquals(hw.translate(1, 0xa0_1000, ACCESS_READ), 0x60_1000);
      d.unmap(0xa0_0000, MIB2);
      // A table that still maps a page is EEXIST.
      d.map(0x60_0000, 0x3000, 4096, RW);
      throwsKind(() => d.map(0x60_0000, 0x40_0000, MIB2, RW), "EEXIST");
      assertEquals(d.unmap(0, 4 * GIB), MIB2 + GIB + 4096);
      // The tables it spans go; the level-1 table stays (4 GiB do not span
      // the 512 GiB of its root entry).
      assertEquals(d.tableStats().map((s) => s.tables), [1, 1, 0, 0]);
      assertEquals(soc.memory.frames.liveBytes, live + 4096);
    },
  );
  await t.step("direct table errors", () => {
    const mem = new PhysicalMemory({ size: 1 << 20 });
    throwsKind(
      () => new LpaePageTable(mem, { inputBits: 31, outputBits: 48, stage: 1 }),
      "EINVAL",
    );
    throwsKind(
      () => new LpaePageTable(mem, { inputBits: 49, outputBits: 48, stage: 1 }),
      "EINVAL",
    );
    const pt = new LpaePageTable(mem, {
      inputBits: 32,
      outputBits: 48,
      stage: 1,
    });
    throwsKind(() => pt.mapRange(0, 0, 8192, 1, RW), "EINVAL");
    pt.mapRange(3 * GIB, 0, GIB, 1, RW);
    assertEquals(pt.iovaToPhys(3 * GIB + 5), 5);
    assertEquals(pt.iovaToPhys(4 * GIB), -1);
    mem.frames.failNth(1);
    throwsKind(
      () => new LpaePageTable(mem, { inputBits: 48, outputBits: 48, stage: 1 }),
      "ENOMEM",
    );
    pt.free();
    assertEquals(mem.frames.liveBytes, 0);
    throwsKind(() => pt.free(), "EPERM");
    throwsKind(() => pt.mapRange(0, 0, 4096, 1, RW), "EPERM");
  });
});

function planOf(iova: number, pa: number, pageSize: number, pages: number) {
  const f = (v: number) => new Float64Array([v]);
  return {
    count: 1,
    iova: f(iova),
    pa: f(pa),
    pageSize: f(pageSize),
    pages: f(pages),
  } as never;
}

Deno.test("stream table: attach, atomic move, detach to abort or bypass", async (t) => {
  const { soc, unit, faults } = rig();
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const mem = soc.memory;
  const ste = (
    sid: number,
  ) => [
    mem.read32(drv.streamTable + sid * STE_BYTES),
    mem.read32(drv.streamTable + sid * STE_BYTES + 4),
  ];
  const nic = soc.addMaster({ name: "nic", ports: [{ unit, streamIds: [4] }] });
  const a = soc.createDomain(unit);
  const b = soc.createDomain(unit);
  const bufA = mem.frames.alloc(4096);
  const bufB = mem.frames.alloc(4096);
  a.map(0x1000, bufA, 4096, RW);
  b.map(0x1000, bufB, 4096, RW);

  await t.step("after probe every STE is valid abort", () => {
    for (const sid of [0, 4, 255]) assertEquals(ste(sid), [1, 0]);
    assertEquals(drv.streamMode(4), "abort");
    const f = nic.port().write(0x1000, new Uint8Array([1]));
    assertEquals(f?.reason, "bad-stream-entry");
    assertEquals(drv.drainEvents(), [], "abort records no event");
  });
  await t.step("attach writes an S1 STE pointing at the domain's CD", () => {
    a.attach(unit, [4]);
    const ops = drv.streamDomain(4)!;
    assertEquals(ops.contextId, a.ops.contextId);
    const cd = ops.contextDescriptor;
    assertEquals(ste(4), [
      ((cd % 2 ** 32) | (5 << 1) | 1) >>> 0,
      Math.floor(cd / 2 ** 32),
    ]);
    assertEquals(mem.read32(cd) & 63, 16, "T0SZ for 48 bits");
    assertEquals(mem.read32(cd) >>> 31, 1, "CD valid");
    assertEquals(mem.read32(cd + 4) >>> 16, a.ops.contextId, "ASID");
    assertEquals(mem.read32(cd + 8), a.ops.rootTable % 2 ** 32);
    nic.port().writeBytes(0x1000, new Uint8Array([0xa]));
    assertEquals(mem.read8(bufA), 0xa);
  });
  await t.step(
    "moving the stream is one STE store: old table until CFGI, then the new one",
    () => {
      b.attach(unit, [4]);
      assertEquals(a.attachments(), []);
      assertEquals(b.attachments()[0]!.streamIds, [4]);
      nic.port().writeBytes(0x1000, new Uint8Array([0xb]));
      assertEquals(mem.read8(bufB), 0xb);
      assertEquals(mem.read8(bufA), 0xa);
    },
  );
  await t.step(
    "detach returns to abort; a bypass stream returns to bypass",
    () => {
      b.detach(unit, [4]);
      assertEquals(ste(4), [1, 0]);
      const n = faults.length;
      assertEquals(
        nic.port().write(0x1000, new Uint8Array([1]))?.reason,
        "bad-stream-entry",
      );
      assertEquals(faults.length, n + 1);
      setStreamBypass(unit, 4);
      assertEquals(drv.streamMode(4), "bypass");
      assertEquals(hw.isBypassing(4), true);
      assertEquals(ste(4), [(4 << 1) | 1, 0]);
      nic.port().writeBytes(bufA + 8, new Uint8Array([0xcc]));
      assertEquals(mem.read8(bufA + 8), 0xcc, "identity");
      a.attach(unit, [4]);
      assertEquals(hw.isBypassing(4), false);
      assertEquals(drv.streamMode(4), "translate");
      a.detach(unit, [4]);
      assertEquals(hw.isBypassing(4), true);
      setStreamBypass(unit, 4, false);
      assertEquals(hw.isBypassing(4), false);
      bypassStreams(unit, [7, 8]);
      assertEquals([hw.isBypassing(7), hw.isBypassing(8), hw.isBypassing(9)], [
        true,
        true,
        false,
      ]);
      assertEquals(soc.unprotectedMasters(), []);
    },
  );
  await t.step("the config cache keeps an STE until CFGI_STE", () => {
    a.attach(unit, [4]);
    nic.port().readBytes(0x1000, 1);
    // Rewrite the STE behind the driver's back: the unit still uses the cached config.
    mem.write32(drv.streamTable + 4 * STE_BYTES, (4 << 1) | 1);
    assertEquals(hw.translate(4, 0x1000, ACCESS_READ), bufA);
    drv.commands.cfgiSte(4);
    drv.commands.sync();
    assertEquals(hw.translate(4, 0x1000, ACCESS_READ), 0x1000, "now bypass");
    const c = hw.counters();
    assert(c["configCache.misses"]! >= 2);
    assert(c["steFetches"]! >= 2);
  });
});

Deno.test("IOTLB and walk caches: hits, misses, per-level statistics, lazy invalidation", () => {
  const { soc, unit } = rig({
    iotlb: { sets: 64, ways: 4, replacement: "lru" },
    microTlb: false,
  });
  const hw = genericHardwareOf(unit);
  const d = soc.createDomain(unit);
  d.attach(unit, [1]);
  const buf = soc.memory.frames.alloc(16384);
  d.map(0x10_0000, buf, 16384, RW);
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), buf + 0x10);
  assertEquals(hw.lastSpan, 4096 - 0x10);
  assertEquals(hw.translate(1, 0x10_0020, ACCESS_WRITE), buf + 0x20);
  assertEquals(hw.translate(1, 0x10_1000, ACCESS_READ), buf + 0x1000);
  const c = hw.counters();
  assertEquals([c["iotlb.lookups"], c["iotlb.hits"], c["iotlb.misses"]], [
    3,
    1,
    2,
  ]);
  assertEquals(c["iotlb.hitRate"], 1 / 3);
  assertEquals(c["walks"], 2);
  // First walk reads 4 levels and fills the walk caches; the second starts at L3.
  assertEquals([c["walks.L0"], c["walks.L1"], c["walks.L2"], c["walks.L3"]], [
    1,
    1,
    1,
    2,
  ]);
  assertEquals([c["walkCache.L2.lookups"], c["walkCache.L2.misses"]], [2, 1]);
  assertEquals(c["walkCache.L2.hitRate"], 0.5);
  assertEquals([c["walkCache.L1.lookups"], c["walkCache.L0.lookups"]], [1, 1]);
  // Lazy unmap: the stale IOTLB entry keeps working until the sync.
  const g = new IotlbGather();
  d.unmapNoSync(0x10_0000, 4096, g);
  assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), buf);
  d.sync(g);
  assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), -1);
  assert(hw.counters()["commands.tlbi"]! >= 1);
  // flushAll empties this context.
  d.flushAll();
  assertEquals(hw.iotlb.size, 0);
});

Deno.test("invalidating the public iotlb directly also drops the micro TLB's copies", () => {
  for (
    const invalidate of [
      (hw: ReturnType<typeof genericHardwareOf>) => hw.iotlb.invalidateAll(),
      (hw: ReturnType<typeof genericHardwareOf>, ctx: number) =>
        hw.iotlb.invalidateContext(ctx),
      (hw: ReturnType<typeof genericHardwareOf>, ctx: number) =>
        hw.iotlb.invalidateRange(ctx, 0x10_0000, 4096),
    ]
  ) {
    const { soc, unit } = rig({ microTlb: true });
    const hw = genericHardwareOf(unit);
    const d = soc.createDomain(unit);
    d.attach(unit, [1]);
    const [a, b] = [
      soc.memory.frames.alloc(4096),
      soc.memory.frames.alloc(4096),
    ];
    d.map(0x10_0000, a, 4096, RW);
    assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), a);
    assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), a); // a micro hit
    // Remap in the tables with no invalidation: both TLBs keep the old page.
    const g = new IotlbGather();
    d.unmapNoSync(0x10_0000, 4096, g);
    d.map(0x10_0000, b, 4096, RW);
    assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), a, "stale");
    // A bad argument changes nothing; a good one reaches the new page.
    throwsKind(() => hw.iotlb.invalidateContext(-1), "EINVAL");
    assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), a, "still stale");
    invalidate(hw, d.ops.contextId);
    assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), b);
    d.sync(g);
  }
});

Deno.test("an IOTLB entry larger than 2 GiB put in directly translates with its own offset", () => {
  for (const microTlb of [false, true]) {
    const { soc, unit } = rig({ microTlb });
    const hw = genericHardwareOf(unit);
    const d = soc.createDomain(unit);
    d.attach(unit, [1]);
    // The walker never fills more than 1 GiB, but `iotlb` is public.
    hw.iotlb.insert(d.ops.contextId, 0, 2 ** 32, 2 ** 33, 3);
    assertEquals(
      hw.translate(1, 0x8000_0010, ACCESS_READ),
      2 ** 33 + 0x8000_0010,
    );
    assertEquals(hw.lastSpan, 2 ** 32 - 0x8000_0010);
    // Again (a micro TLB hit when there is one): the same answer.
    assertEquals(
      hw.translate(1, 0x8000_0020, ACCESS_WRITE),
      2 ** 33 + 0x8000_0020,
    );
    assertEquals(hw.lastSpan, 2 ** 32 - 0x8000_0020);
  }
});

Deno.test("the per-stream micro TLB answers repeats and is dropped by every invalidation", () => {
  const { soc, unit } = rig();
  const hw = genericHardwareOf(unit);
  const d = soc.createDomain(unit);
  d.attach(unit, [1]);
  d.map(0x10_0000, 0x40_0000, 2 * 4096, IOMMU_READ);
  assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), 0x40_0010);
  assertEquals(hw.translate(1, 0x10_0ff0, ACCESS_READ), 0x40_0ff0);
  assertEquals(hw.lastSpan, 0x10);
  assertEquals(
    hw.translate(1, 0x10_0ff0, ACCESS_WRITE),
    -1,
    "permission on a micro hit",
  );
  assertEquals(hw.translate(1, 0x10_1000, ACCESS_READ), 0x40_1000);
  let c = hw.counters();
  assertEquals(
    [c["microTlb.lookups"], c["microTlb.hits"], c["iotlb.lookups"]],
    [4, 1, 2],
  );
  const g = new IotlbGather();
  d.unmapNoSync(0x10_1000, 4096, g);
  assertEquals(
    hw.translate(1, 0x10_1004, ACCESS_READ),
    0x40_1004,
    "stale until the sync",
  );
  d.sync(g);
  assertEquals(hw.translate(1, 0x10_1004, ACCESS_READ), -1);
  assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), 0x40_0000);
  d.detach(unit, [1]);
  assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), -1, "detach drops it");
  c = hw.counters();
  assertEquals(
    c["microTlb.hitRate"],
    c["microTlb.hits"]! / c["microTlb.lookups"]!,
  );
});

Deno.test("micro TLB: 32 direct-mapped entries per stream by default", async (t) => {
  const setup = (options: GenericIommuOptions = {}) => {
    const { soc, unit, faults } = rig(options);
    const hw = genericHardwareOf(unit);
    const drv = genericDriverOf(unit);
    const d = soc.createDomain(unit);
    d.attach(unit, [1]);
    return { soc, unit, hw, drv, d, faults };
  };
  const micro = (hw: ReturnType<typeof genericHardwareOf>) => {
    const c = hw.counters();
    return [c["microTlb.lookups"], c["microTlb.hits"], c["iotlb.lookups"]];
  };
  await t.step("16 pages cycling: all hits after one round", () => {
    const { hw, d } = setup();
    d.map(0x10_0000, 0x40_0000, 16 * 4096, RW);
    for (let round = 0; round < 4; round++) {
      for (let p = 0; p < 16; p++) {
        const iova = 0x10_0000 + p * 4096 + 8 * round;
        assertEquals(
          hw.translate(1, iova, ACCESS_READ),
          0x40_0000 + iova - 0x10_0000,
        );
        assertEquals(hw.lastSpan, 4096 - 8 * round);
      }
    }
    assertEquals(micro(hw), [64, 48, 16], "IOTLB lookups: micro misses only");
    assertEquals(hw.counters()["walks"], 16);
    assertEquals(hw.streamCounters(1).translations, 64);
    assertEquals(hw.counters()["translations"], 64);
  });
  await t.step("33 pages sharing one entry: every access misses", () => {
    const { hw, d } = setup();
    for (let k = 0; k < 33; k++) {
      d.map(0x100_0000 + k * 32 * 4096, 0x40_0000 + k * 4096, 4096, RW);
    }
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 33; k++) {
        assertEquals(
          hw.translate(1, 0x100_0000 + k * 32 * 4096 + 4, ACCESS_WRITE),
          0x40_0004 + k * 4096,
        );
      }
    }
    assertEquals(micro(hw), [99, 0, 99]);
    // The IOTLB holds them all: walks only in the first round.
    assertEquals(hw.counters()["walks"], 33);
  });
  await t.step("an entry count option: 4 entries, 5 pages cycling", () => {
    const { hw, d } = setup({ microTlb: 4 });
    d.map(0x10_0000, 0x40_0000, 5 * 4096, RW);
    for (let round = 0; round < 3; round++) {
      for (let p = 0; p < 5; p++) hw.translate(1, 0x10_0000 + p * 4096, 1);
    }
    // Pages 0 and 4 share entry 0; pages 1-3 hit from the second round.
    assertEquals(micro(hw), [15, 6, 9]);
  });
  await t.step(
    "a miss fills the entry of its own stream and page (first accesses and later ones)",
    () => {
      // Two streams in two domains, the same IOVAs to different PAs, 4
      // entries each: a fill in another stream's block, or in another
      // entry of its own, shows as a wrong PA or a missing hit.
      const off = { sets: 0, ways: 0 };
      for (const walkCache of [undefined, [off, off, off]]) {
        const { soc, unit } = rig(
          walkCache ? { microTlb: 4, walkCache } : { microTlb: 4 },
        );
        const hw = genericHardwareOf(unit);
        const a = soc.createDomain(unit);
        const b = soc.createDomain(unit);
        a.attach(unit, [1]);
        b.attach(unit, [2]);
        a.map(0x10_0000, 0x40_0000, 8 * 4096, RW);
        b.map(0x10_0000, 0x80_0000, 8 * 4096, RW);
        const pa = (sid: number, p: number) =>
          (sid === 1 ? 0x40_0000 : 0x80_0000) + p * 4096 + 0x10;
        // Pages 0-3, then 4-7 (each evicting 0-3's entries), twice; both
        // streams interleaved. The first access of each stream takes the
        // slow path; the others miss from translate()'s own probe.
        for (let round = 0; round < 2; round++) {
          for (const half of [0, 4]) {
            for (let rep = 0; rep < 2; rep++) {
              for (let p = half; p < half + 4; p++) {
                for (const sid of [1, 2]) {
                  assertEquals(
                    hw.translate(sid, 0x10_0000 + p * 4096 + 0x10, 1),
                    pa(sid, p),
                    `round ${round}, page ${p}, stream ${sid}`,
                  );
                }
              }
            }
          }
        }
        // 32 accesses per stream: the second pass over each half hits.
        assertEquals(micro(hw), [64, 32, 32]);
      }
    },
  );
  await t.step("microTlb: false and 0 mean none", () => {
    for (const microTlb of [false, 0]) {
      const { hw, d } = setup({ microTlb });
      d.map(0x10_0000, 0x40_0000, 4096, RW);
      for (let i = 0; i < 3; i++) hw.translate(1, 0x10_0000, ACCESS_READ);
      assertEquals(micro(hw), [0, 0, 3]);
    }
  });
  await t.step(
    "without micro TLBs: IOTLB hits, refusals and other sizes",
    () => {
      const { hw, d, faults } = setup({ microTlb: false });
      const iotlb = () => {
        const c = hw.counters();
        return [c["iotlb.lookups"], c["iotlb.misses"], c["walks"]];
      };
      d.map(0x10_0000, 0x40_0000, 2 * 4096, IOMMU_READ);
      d.map(MIB2, 0x60_0000, MIB2, RW);
      // A walk, then hits in the size hit last (4 KiB).
      assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), 0x40_0010);
      assertEquals(hw.translate(1, 0x10_1020, ACCESS_READ), 0x40_1020);
      assertEquals(hw.translate(1, 0x10_0fff, ACCESS_READ), 0x40_0fff);
      assertEquals(hw.lastSpan, 1);
      assertEquals(iotlb(), [3, 2, 2]);
      // A hit that refuses the access: one lookup, a permission fault.
      assertEquals(hw.translate(1, 0x10_0010, ACCESS_WRITE), -1);
      assertEquals(faults.at(-1)?.reason, "permission");
      assertEquals(iotlb(), [4, 2, 2]);
      // A 2 MiB leaf: a walk, then a hit in another size than the last one
      // hit (the full lookup), then hits in it.
      assertEquals(hw.translate(1, MIB2 + 8, ACCESS_WRITE), 0x60_0008);
      assertEquals(hw.translate(1, 0x10_0020, ACCESS_READ), 0x40_0020);
      assertEquals(hw.translate(1, MIB2 + 0x1_2345, ACCESS_READ), 0x61_2345);
      assertEquals(hw.lastSpan, MIB2 - 0x1_2345);
      assertEquals(hw.translate(1, MIB2 + 0x2_0000, ACCESS_WRITE), 0x62_0000);
      assertEquals(iotlb(), [8, 3, 3]);
      assertEquals(hw.streamCounters(1).translations, 8);
      assertEquals(micro(hw), [0, 0, 8]);
      // An entry put into the IOTLB directly, larger than any leaf: its own
      // span and PA, and its permission bits.
      const ctx = hw.iotlb.entries()[0]!.context;
      hw.iotlb.insert(ctx, 2 ** 34, 2 ** 33, 0x1_0000_0000, ACCESS_READ);
      // First through the full lookup, then as the size hit last.
      assertEquals(
        hw.translate(1, 2 ** 34 + 0x5008, ACCESS_READ),
        0x1_0000_5008,
      );
      assertEquals(hw.lastSpan, 2 ** 33 - 0x5008);
      assertEquals(
        hw.translate(1, 2 ** 34 + 0x9008, ACCESS_READ),
        0x1_0000_9008,
      );
      assertEquals(hw.lastSpan, 2 ** 33 - 0x9008);
      assertEquals(hw.translate(1, 2 ** 34 + 0x5008, ACCESS_WRITE), -1);
      assertEquals(faults.at(-1)?.reason, "permission");
    },
  );
  await t.step("a 2 MiB leaf fills every entry: any page in it hits", () => {
    const { hw, d } = setup();
    d.map(MIB2, 0x60_0000, MIB2, IOMMU_READ);
    assertEquals(hw.translate(1, MIB2 + 0x1234, ACCESS_READ), 0x60_1234);
    for (let p = 0; p < 512; p += 7) {
      const iova = MIB2 + p * 4096 + 16;
      assertEquals(
        hw.translate(1, iova, ACCESS_READ),
        0x60_0000 + p * 4096 + 16,
      );
      assertEquals(hw.lastSpan, 2 * MIB2 - iova, "to the end of the block");
    }
    assertEquals(micro(hw), [1 + 74, 74, 1]);
    // A write misses on permission (counted as a micro miss), then a
    // 4 KiB page evicts one copy of the block only.
    assertEquals(hw.translate(1, MIB2 + 8, ACCESS_WRITE), -1);
    d.map(0x40_3000, 0x50_0000, 4096, RW);
    assertEquals(hw.translate(1, 0x40_3000, ACCESS_WRITE), 0x50_0000);
    assertEquals(hw.translate(1, MIB2 + 3 * 4096, ACCESS_READ), 0x60_3000);
    assertEquals(hw.translate(1, MIB2 + 4 * 4096, ACCESS_READ), 0x60_4000);
    // 0x40_3000 and MIB2 + 0x3000 share entry 3: the block's copy there is
    // evicted and refilled (an IOTLB hit); entry 4 still holds the block.
    assertEquals(micro(hw), [79, 75, 3]);
  });
  await t.step("a 1 GiB leaf", () => {
    const { hw, d } = setup();
    d.map(GIB, 0, GIB, RW);
    for (const off of [0x10, GIB - 8, 0x1234_5678, 0x10]) {
      assertEquals(hw.translate(1, GIB + off, ACCESS_WRITE), off);
      assertEquals(hw.lastSpan, GIB - off);
    }
    assertEquals(micro(hw), [4, 3, 1]);
  });
  await t.step("every invalidation command drops every entry", () => {
    const { unit, hw, drv, d, faults } = setup();
    d.map(0x10_0000, 0x40_0000, 16 * 4096, RW);
    const ctx = d.ops.contextId;
    const cmds: [string, () => void, boolean][] = [
      ["TLBI_NH_ALL", () => drv.commands.tlbiAll(), true],
      ["TLBI_NH_ASID", () => drv.commands.tlbiAsid(ctx), true],
      [
        "TLBI_NH_VA",
        () => drv.commands.tlbiRange(ctx, 0x10_3000, 0x10_3fff),
        true,
      ],
      // Config invalidations drop the micro TLB but not the IOTLB, which
      // still holds the (stale) page.
      ["CFGI_STE", () => drv.commands.cfgiSte(1), false],
      ["CFGI_CD_ALL", () => drv.commands.push(0x06, 0, 0, 0), false],
      ["CFGI_STE_RANGE", () => drv.commands.push(0x04, 0, 31, 0), false],
    ];
    for (const [name, issue, dropsIotlb] of cmds) {
      for (let p = 0; p < 16; p++) hw.translate(1, 0x10_0000 + p * 4096, 1);
      // Behind the unit's back (a lazy unmap before its sync): the micro
      // TLB and the IOTLB still translate the page.
      const g = new IotlbGather();
      d.unmapNoSync(0x10_3000, 4096, g);
      const before = micro(hw);
      assertEquals(hw.translate(1, 0x10_3008, ACCESS_READ), 0x40_3008, name);
      assertEquals(micro(hw)[1], before[1]! + 1, `${name}: stale micro hit`);
      issue();
      drv.commands.sync();
      const faultsBefore = faults.length;
      const got = hw.translate(1, 0x10_3008, ACCESS_READ);
      assertEquals(got, dropsIotlb ? -1 : 0x40_3008, name);
      assertEquals(faults.length, faultsBefore + (dropsIotlb ? 1 : 0));
      // Every other page misses once again.
      const mid = micro(hw);
      assertEquals(hw.translate(1, 0x10_5000, ACCESS_READ), 0x40_5000);
      assertEquals(micro(hw)[1], mid[1], `${name}: other pages dropped too`);
      d.sync(g);
      d.map(0x10_3000, 0x40_3000, 4096, RW);
    }
    // Detach (an STE rewrite and its CFGI) drops them as well.
    hw.translate(1, 0x10_5000, ACCESS_READ);
    d.detach(unit, [1]);
    assertEquals(hw.translate(1, 0x10_5000, ACCESS_READ), -1);
  });
  await t.step("streams have their own entries", () => {
    const { soc, unit, hw, d } = setup();
    const other = soc.createDomain(unit);
    other.attach(unit, [2]);
    d.map(0x10_0000, 0x40_0000, 4096, RW);
    other.map(0x10_0000, 0x50_0000, 4096, RW);
    for (let i = 0; i < 3; i++) {
      assertEquals(hw.translate(1, 0x10_0010, ACCESS_READ), 0x40_0010);
      assertEquals(hw.translate(2, 0x10_0010, ACCESS_READ), 0x50_0010);
    }
    assertEquals(micro(hw), [6, 4, 2]);
    assertEquals(hw.streamCounters(2).translations, 3);
  });
  await t.step("bad entry counts", () => {
    for (const bad of [3, -1, 1.5, 8192, NaN, "32" as unknown as number]) {
      throwsKind(() => genericIommu({ microTlb: bad }), "EINVAL");
    }
  });
});

Deno.test("micro TLB: any entry count translates exactly as no micro TLB (random maps, strict unmaps, commands)", () => {
  // With strict unmaps every page-table change is invalidated before the
  // next access, so a unit with a micro TLB must answer every access (PA,
  // span, fault) exactly as one without.
  const units = [false, 32, 2, 1].map((microTlb) => {
    const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 << 20 } })
      .use(genericIommu({ streamIds: 8, microTlb }));
    const unit = soc.probeUnit({
      name: "smmu",
      compatible: ["iommukit,generic-iommu"],
    });
    const faults: IommuFault[] = [];
    soc.faults.onFault((f) => faults.push(f));
    const a = soc.createDomain(unit);
    const b = soc.createDomain(unit);
    a.attach(unit, [1, 2]);
    b.attach(unit, [3]);
    return {
      unit,
      hw: genericHardwareOf(unit),
      drv: genericDriverOf(unit),
      a,
      b,
      faults,
    };
  });
  let seed = 12345;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  // Accesses, maps and unmaps crowd the first 4 MiB (two 2 MiB blocks) so
  // that cached pages are often unmapped, remapped and accessed again.
  const REGION = 4 << 20;
  let microHits = 0;
  for (let n = 0; n < 20_000; n++) {
    const r = rnd(100);
    const p = [rnd(1 << 30), rnd(1 << 30), rnd(1 << 30)] as const;
    const hot = rnd(4) !== 0;
    const results = units.map((u) => {
      const d = p[2] & 1 ? u.b : u.a;
      try {
        if (r < 88) {
          const iova = hot ? (p[0] % 8) * 4096 + (p[1] % 4096) : p[0] % REGION;
          const pa = u.hw.translate(1 + (p[2] % 3), iova, 1 + (p[1] & 1));
          return pa >= 0 ? `${pa}/${u.hw.lastSpan}` : u.faults.at(-1)!.reason;
        }
        const block = (p[1] & 7) === 0;
        if (r < 94) {
          const iova = block ? (p[0] & 1) * MIB2 : (p[0] % 128) * 4096;
          const size = block ? MIB2 : 4096 * (1 + (p[1] >> 3) % 8);
          const pa = 0x4000_0000 +
            (block ? (p[2] % 8) * MIB2 : (p[2] % 4096) * 4096);
          d.map(iova, pa, size, 1 + (p[2] >> 12) % 3);
          return "mapped";
        }
        if (r < 97) {
          return block
            ? d.unmap((p[0] & 1) * MIB2, MIB2)
            : d.unmap((p[0] % 128) * 4096, 4096 * (1 + (p[1] >> 3) % 16));
        }
        if (r < 98) {
          const w = p[0] % 4;
          if (w === 0) u.drv.commands.tlbiAll();
          else if (w === 1) u.drv.commands.cfgiSte(p[1] % 8);
          else if (w === 2) u.drv.commands.push(0x06, 0, 0, 0);
          else u.drv.commands.push(0x01, 0, 0, 0);
          u.drv.commands.sync();
          return "command";
        }
        (p[1] & 1 ? u.b : u.a).attach(u.unit, [2]);
        return "moved";
      } catch (e) {
        return (e as IommuError).kind;
      }
    });
    for (let k = 1; k < units.length; k++) {
      if (results[k] !== results[0]) {
        throw new Error(
          `step ${n}: ${results[k]} vs ${results[0]} (micro TLB ${k})`,
        );
      }
    }
  }
  for (const u of units.slice(1)) {
    microHits += u.hw.counters()["microTlb.hits"]!;
  }
  assert(microHits > 5_000, `micro TLB exercised (${microHits} hits)`);
  assertEquals(units[0]!.hw.counters()["microTlb.lookups"], 0);
});

Deno.test("invalidation commands: STE ranges, CD_ALL, prefetch, ranges larger than the IOTLB", () => {
  const { soc, unit } = rig({
    iotlb: { sets: 1, ways: 2, replacement: "lru" },
    microTlb: false,
  });
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const mem = soc.memory;
  const steAt = (sid: number) => drv.streamTable + sid * STE_BYTES;
  const bypassSte = (4 << 1) | 1;
  for (const sid of [4, 5, 7, 8]) hw.translate(sid, 0x1000, ACCESS_READ); // cache "abort"
  for (const sid of [5, 8]) mem.write32(steAt(sid), bypassSte);
  drv.commands.push(0x04, /* CFGI_STE_RANGE */ 4, 1, 0); // 2^(1+1) streams from 4
  drv.commands.push(0x01, /* PREFETCH_CONFIG */ 5, 0, 0);
  drv.commands.sync();
  assertEquals(hw.translate(5, 0x1000, ACCESS_READ), 0x1000, "sid 5 re-read");
  assertEquals(hw.translate(8, 0x1000, ACCESS_READ), -1, "sid 8 still cached");
  drv.commands.push(0x06, /* CFGI_CD_ALL */ 0, 0, 0);
  drv.commands.sync();
  assertEquals(hw.translate(8, 0x1000, ACCESS_READ), 0x1000);
  // A range invalidation wider than the IOTLB drops the whole context.
  const d = soc.createDomain(unit);
  d.attach(unit, [1]);
  d.map(0x10_0000, 0x40_0000, 4 * 4096, RW);
  hw.translate(1, 0x10_0000, ACCESS_READ);
  hw.translate(1, 0x10_3000, ACCESS_READ);
  assertEquals(hw.iotlb.size, 2);
  const g = new IotlbGather();
  d.unmapNoSync(0x10_1000, 2 * 4096, g);
  d.sync(g);
  assertEquals(hw.iotlb.size, 2, "two pages: probed, entries outside kept");
  d.map(0x10_1000, 0x40_1000, 2 * 4096, RW);
  d.unmapNoSync(0x10_0000, 3 * 4096, g);
  d.sync(g);
  assertEquals(hw.iotlb.size, 0, "three pages > capacity: context dropped");
  assertEquals(hw.translate(1, 0x10_3000, ACCESS_READ), 0x40_3000);
});

Deno.test("command queue: sync, MSI completion, illegal command and recovery", async (t) => {
  const { soc, unit } = rig({ commandQueueLog2: 2 });
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const lines: string[] = [];
  hw.onInterrupt((l) => lines.push(l));
  await t.step("registers describe the queues", () => {
    assertEquals((hw.readRegister(REG_IDR1) >>> 21) & 31, 2);
    assertEquals(hw.readRegister(REG_IDR1) & 63, 8);
    assertEquals(hw.readRegister(REG_IDR5), 0x15);
    assertEquals(
      hw.readRegister(REG_CR0),
      CR0_SMMUEN | CR0_CMDQEN | CR0_EVTQEN,
    );
  });
  await t.step("more commands than slots wrap around and complete", () => {
    for (let i = 0; i < 11; i++) drv.commands.cfgiSte(i);
    drv.commands.sync();
    assertEquals(
      hw.readRegister(REG_CMDQ_CONS),
      hw.readRegister(REG_CMDQ_PROD),
    );
  });
  await t.step("CMD_SYNC writes MSIDATA to MSIADDR", () => {
    const flag = soc.memory.frames.alloc(1024);
    drv.commands.push(CMD_SYNC, 0x5eed, flag, 0);
    drv.commands.sync();
    assertEquals(soc.memory.read32(flag), 0x5eed);
  });
  await t.step(
    "an illegal opcode stops the queue with CERROR_ILL and GERROR",
    () => {
      const before = hw.counters()["commands.errors"]!;
      drv.commands.push(0x7f, 0, 0, 0);
      const e = throwsKind(() => drv.commands.sync(), "EIO");
      assert(e.message.includes("error 1"), e.message);
      assertEquals((hw.readRegister(REG_CMDQ_CONS) >>> 24) & 0x7f, CERROR_ILL);
      assertEquals(
        hw.readRegister(REG_GERROR) & GERROR_CMDQ_ERR,
        GERROR_CMDQ_ERR,
      );
      assertEquals(hw.counters()["commands.errors"], before + 1);
      assertEquals(lines.at(-1), "gerror");
      // Software replaces the bad command with a sync, then acknowledges.
      const cons = hw.readRegister(REG_CMDQ_CONS) & 3;
      const at = drv.commands.base + cons * 16;
      soc.memory.write32(at, CMD_SYNC);
      hw.writeRegister(REG_GERRORN, hw.readRegister(REG_GERROR));
      assertEquals(
        hw.readRegister(REG_CMDQ_CONS),
        hw.readRegister(REG_CMDQ_PROD),
      );
      drv.commands.sync();
    },
  );
  await t.step("a disabled queue makes the driver's sync fail with EIO", () => {
    hw.writeRegister(REG_CR0, CR0_SMMUEN | CR0_EVTQEN);
    throwsKind(() => drv.invalidateAll(), "EIO");
    hw.writeRegister(REG_CR0, CR0_SMMUEN | CR0_EVTQEN | CR0_CMDQEN);
    drv.invalidateAll();
  });
});

Deno.test("every event kind is recorded in the event queue with an interrupt", async (t) => {
  const { soc, unit, faults } = rig({ outputBits: 40 }, {
    "iommukit,input-bits": 39,
  });
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const mem = soc.memory;
  let irqs = 0;
  hw.onInterrupt((l) => {
    if (l === "event") irqs++;
  });
  const d = soc.createDomain(unit);
  d.attach(unit, [2]);
  const buf = mem.frames.alloc(4096);
  d.map(0x1000, buf, 4096, IOMMU_READ);
  const one = (
    kind: string,
    id: number,
    reason: string,
    read: boolean,
    iova: number,
    address = 0,
  ) => {
    const ev = drv.drainEvents();
    assertEquals(ev.length, 1, kind);
    assertEquals(
      {
        kind: ev[0]!.kind,
        id: ev[0]!.id,
        read: ev[0]!.read,
        iova: ev[0]!.iova,
        address: ev[0]!.address,
      },
      { kind, id, read, iova, address },
    );
    assertEquals(faults.at(-1)!.reason, reason);
  };
  await t.step("translation", () => {
    assertEquals(hw.translate(2, 0x5000, ACCESS_READ), -1);
    one("translation", 0x10, "translation", true, 0x5000);
    assertEquals(ev0Sid(), 2);
  });
  function ev0Sid(): number {
    hw.translate(2, 0x6000, ACCESS_READ);
    return drv.drainEvents()[0]!.streamId;
  }
  await t.step("permission, on a walk and on an IOTLB hit", () => {
    assertEquals(hw.translate(2, 0x1000, ACCESS_WRITE), -1);
    one("permission", 0x13, "permission", false, 0x1000);
    assertEquals(hw.translate(2, 0x1004, ACCESS_READ), buf + 4);
    assertEquals(hw.translate(2, 0x1008, ACCESS_WRITE), -1);
    one("permission", 0x13, "permission", false, 0x1008);
  });
  await t.step(
    "address size: IOVA beyond the input range, output beyond OAS",
    () => {
      assertEquals(hw.translate(2, 2 ** 39, ACCESS_READ), -1);
      one("address-size", 0x11, "address-size", true, 2 ** 39);
      // A leaf pointing beyond 2^40: map checks its plan, so the address
      // is written into the descriptor in RAM (bit 41 = bit 9 of the
      // high word).
      (d.ops as unknown as { table: LpaePageTable }).table.mapRange(
        0x20_0000,
        0,
        4096,
        1,
        RW,
      );
      const leaf = findLeaf(
        mem,
        d.ops.rootTable,
        (d.ops as GenericDomainOps).table.startLevel,
        0x20_0000,
      );
      mem.write32(leaf + 4, mem.read32(leaf + 4) | (1 << 9));
      assertEquals(hw.translate(2, 0x20_0000, ACCESS_READ), -1);
      one("address-size", 0x11, "address-size", true, 0x20_0000, 2 ** 41);
    },
  );
  await t.step("access flag clear", () => {
    d.map(0x3000, buf, 4096, RW);
    // Find the page descriptor by walking: clear AF (bit 10) in RAM.
    const leafAt = findLeaf(
      mem,
      d.ops.rootTable,
      (d.ops as GenericDomainOps).table.startLevel,
      0x3000,
    );
    mem.write32(leafAt, mem.read32(leafAt) & ~(1 << 10));
    assertEquals(hw.translate(2, 0x3000, ACCESS_READ), -1);
    one("access", 0x12, "permission", true, 0x3000);
  });
  await t.step("bad stream ID", () => {
    assertEquals(hw.translate(256, 0x1000, ACCESS_WRITE), -1);
    const ev = drv.drainEvents();
    assertEquals([ev[0]!.kind, ev[0]!.id, ev[0]!.streamId], [
      "bad-stream-id",
      2,
      256,
    ]);
    assertEquals(faults.at(-1)!.reason, "bad-stream");
  });
  await t.step("bad stream entry (V=0) and bad context descriptor", () => {
    mem.write32(drv.streamTable + 9 * STE_BYTES, 0);
    drv.commands.cfgiSte(9);
    drv.commands.sync();
    assertEquals(hw.translate(9, 0x1000, ACCESS_READ), -1);
    one("bad-stream-entry", 0x04, "bad-stream-entry", true, 0x1000);
    mem.write32(drv.streamTable + 9 * STE_BYTES, (6 << 1) | 1); // stage 2 on a stage-1 unit
    drv.commands.cfgiSte(9);
    drv.commands.sync();
    hw.translate(9, 0x1000, ACCESS_READ);
    one("bad-stream-entry", 0x04, "bad-stream-entry", true, 0x1000);
    const cd = (d.ops as GenericDomainOps).contextDescriptor;
    mem.write32(cd, mem.read32(cd) & 0x7fffffff);
    drv.commands.cfgiSte(2);
    drv.commands.sync();
    hw.translate(2, 0x1000, ACCESS_READ);
    one("bad-context", 0x0a, "bad-stream-entry", true, 0x1000);
  });
  await t.step("walk abort: a table pointer outside RAM", () => {
    const d2 = soc.createDomain(unit);
    d2.attach(unit, [3]);
    mem.write32(d2.ops.rootTable, 0x7000_0003);
    hw.translate(3, 0x1000, ACCESS_READ);
    one("walk-abort", 0x0b, "bus-error", true, 0x1000, 0x7000_0000);
  });
  await t.step("SMMUEN clear: GBPA abort blocks, GBPA bypass passes", () => {
    hw.writeRegister(REG_CR0, CR0_CMDQEN | CR0_EVTQEN);
    assertEquals(hw.translate(2, 0x1000, ACCESS_READ), -1);
    assertEquals(faults.at(-1)!.reason, "blocked");
    assertEquals(hw.isBypassing(2), false);
    hw.writeRegister(REG_GBPA, 0);
    assertEquals(hw.translate(2, 0x1234, ACCESS_READ), 0x1234);
    assertEquals(hw.isBypassing(2), true);
    hw.writeRegister(REG_CR0, CR0_SMMUEN | CR0_CMDQEN | CR0_EVTQEN);
    assertEquals(drv.drainEvents(), []);
  });
  await t.step("interrupts and counters", () => {
    assertEquals(irqs, hw.counters()["events"]);
    assert(irqs >= 10);
    const c = hw.counters();
    for (
      const k of [
        "translation",
        "permission",
        "address-size",
        "bad-stream",
        "bad-stream-entry",
        "blocked",
        "bus-error",
      ]
    ) {
      assert(c[`faults.${k}`]! > 0, k);
    }
  });
});

function findLeaf(
  mem: PhysicalMemory,
  root: number,
  start: number,
  iova: number,
): number {
  let table = root;
  for (let level = start; level < 3; level++) {
    const at = table + (Math.floor(iova / LEVEL_SIZE[level]!) & 511) * 8;
    table = (mem.read32(at + 4) & 0xffff) * 2 ** 32 +
      ((mem.read32(at) & 0xfffff000) >>> 0);
  }
  return table + (Math.floor(iova / 4096) & 511) * 8;
}

Deno.test("a full event queue drops records and raises EVTQ_ABT once", () => {
  const { unit } = rig({ eventQueueLog2: 1 });
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const lines: string[] = [];
  hw.onInterrupt((l) => lines.push(l));
  for (let i = 0; i < 4; i++) hw.translate(1000, i * 4096, ACCESS_READ);
  assertEquals(hw.counters()["events"], 2);
  assertEquals(hw.counters()["events.dropped"], 2);
  assertEquals(hw.readRegister(REG_GERROR) & GERROR_EVTQ_ABT, GERROR_EVTQ_ABT);
  assertEquals(lines, ["event", "event", "gerror"]);
  assertEquals(drv.drainEvents().map((e) => e.iova), [0, 4096]);
  hw.writeRegister(REG_GERRORN, hw.readRegister(REG_GERROR));
  hw.translate(1000, 0x9000, ACCESS_READ);
  assertEquals(drv.drainEvents().map((e) => e.iova), [0x9000]);
});

Deno.test("error paths", async (t) => {
  await t.step("plugin options", () => {
    throwsKind(() => genericIommu({ stage: 3 as never }), "EINVAL");
    throwsKind(() => genericIommu({ outputBits: 49 }), "EINVAL");
    throwsKind(() => genericIommu({ contexts: 1 }), "EINVAL");
    throwsKind(() => genericIommu({ commandQueueLog2: 0 }), "EINVAL");
    throwsKind(() => genericIommu({ eventQueueLog2: 16 }), "EINVAL");
  });
  await t.step("node properties", () => {
    for (
      const props of [
        { "iommukit,stream-ids": 3 },
        { "iommukit,stream-ids": 0 },
        { "iommukit,input-bits": 31 },
        { "iommukit,input-bits": 49 },
      ]
    ) {
      const soc = createSoc({ memory: { size: 16 << 20 } }).use(genericIommu());
      throwsKind(
        () =>
          soc.probeUnit({
            name: "s",
            compatible: ["iommukit,generic-iommu"],
            props,
          }),
        "EINVAL",
      );
    }
  });
  await t.step("probe without memory for its tables leaks nothing", () => {
    const soc = createSoc({ memory: { size: 64 << 10 } }).use(genericIommu());
    throwsKind(
      () =>
        soc.probeUnit({
          name: "s",
          compatible: ["iommukit,generic-iommu"],
          props: { "iommukit,stream-ids": 1024 },
        }),
      "ENOMEM",
    );
    assertEquals(soc.memory.frames.liveBytes, 0);
  });
  await t.step("registers", () => {
    const { unit } = rig();
    const hw = genericHardwareOf(unit);
    throwsKind(() => hw.readRegister(2), "EINVAL");
    throwsKind(() => hw.writeRegister(-4, 0), "EINVAL");
    throwsKind(() => hw.readRegister(0x1000), "ERANGE");
    assertEquals(hw.readRegister(0x200), 0);
    hw.writeRegister(0x200, 5);
    hw.setPower(false);
    assertEquals(hw.readRegister(0x200), 0);
  });
  await t.step("driver and domain operations", () => {
    const soc = createSoc({ memory: { size: 64 << 20 } }).use(
      genericIommu({ contexts: 3 }),
    );
    const u0 = soc.probeUnit({
      name: "a",
      compatible: ["iommukit,generic-iommu"],
    });
    const u1 = soc.probeUnit({
      name: "b",
      compatible: ["iommukit,generic-iommu"],
    });
    const d = soc.createDomain(u0);
    throwsKind(() => d.attach(u1, [1]), "EINVAL");
    throwsKind(() => d.ops.attach(u0, [256]), "ERANGE");
    throwsKind(() => d.ops.detach(u0, [1]), "ENOENT");
    d.attach(u0, [1]);
    throwsKind(() => d.ops.free(), "EBUSY");
    throwsKind(() => d.free(), "EBUSY");
    const d2 = soc.createDomain(u0);
    throwsKind(() => soc.createDomain(u0), "ENOSPC");
    d2.free();
    soc.memory.frames.failNth(1);
    throwsKind(() => soc.createDomain(u0), "ENOMEM");
    const d3 = soc.createDomain(u0);
    throwsKind(() => d3.ops.attach(u0, [-1]), "EINVAL");
    d3.free();
    throwsKind(() => d3.ops.free(), "EPERM");
    throwsKind(() => d3.ops.attach(u0, [2]), "EPERM");
    const drv = genericDriverOf(u0);
    throwsKind(() => drv.setStreamBypass(256, true), "ERANGE");
    throwsKind(() => drv.streamMode(1.5), "EINVAL");
    throwsKind(() => bypassStreams(u0, [1, 999]), "ERANGE");
    assertEquals(drv.streamMode(1), "translate", "nothing changed");
    const other = {
      ...u0,
      plugin: "other",
      hardware: {} as never,
      driver: {} as never,
    };
    throwsKind(() => genericHardwareOf(other), "EINVAL");
    throwsKind(() => genericDriverOf(other), "EINVAL");
    throwsKind(() => setStreamBypass(other, 1), "EINVAL");
    d.detach(u0, [1]);
    d.free();
  });
});

Deno.test("domains of several masters are isolated; freeing returns every frame", () => {
  const { soc, unit } = rig();
  const live = soc.memory.frames.liveBytes;
  const doms = [1, 2, 3].map((sid) => {
    const d = soc.createDomain(unit);
    d.attach(unit, [sid]);
    d.map(0x10_0000, 0x100_0000 * sid, MIB2 + 4096, RW);
    return d;
  });
  const hw = genericHardwareOf(unit);
  for (const sid of [1, 2, 3]) {
    assertEquals(
      hw.translate(sid, 0x30_0000, ACCESS_READ),
      0x100_0000 * sid + MIB2,
    );
  }
  assertEquals(hw.translate(4, 0x10_0000, ACCESS_READ), -1);
  assertEquals(hw.streamCounters(2), { translations: 1, walks: 1, faults: 0 });
  assertEquals(hw.streamCounters(4), { translations: 1, walks: 0, faults: 1 });
  throwsKind(() => hw.streamCounters(256), "ERANGE");
  throwsKind(() => hw.streamCounters(-1), "EINVAL");
  for (const [i, d] of doms.entries()) {
    d.detach(unit, [i + 1]);
    d.free();
  }
  assertEquals(soc.memory.frames.liveBytes, live);
});

Deno.test("one unmap of 300 pages issues one CMD_SYNC (strict, or lazy + sync); unlinking a table adds one", () => {
  const PAGE = 4096;
  const { soc, unit } = rig();
  const hw = genericHardwareOf(unit);
  const syncs = (): number => hw.counters()["commands.sync"]!;
  const d = soc.createDomain(unit);
  d.attach(unit, [1]);
  const buf = soc.memory.frames.alloc(2 * MIB2);
  // 302 pages across two level-3 tables (the 2 MiB line at 0x20_0000); the
  // first and last page stay mapped, so unmapping the 300 in between
  // empties no table.
  const lo = 0x10_0000 - PAGE;
  d.map(lo, buf, 302 * PAGE, RW);

  let before = syncs();
  assertEquals(d.unmap(0x10_0000, 300 * PAGE), 300 * PAGE);
  assertEquals(syncs() - before, 1, "strict unmap");
  assertEquals(hw.translate(1, 0x10_0000, ACCESS_READ), -1);

  d.map(0x10_0000, buf + PAGE, 300 * PAGE, RW);
  before = syncs();
  const g = new IotlbGather();
  assertEquals(d.unmapNoSync(0x10_0000, 300 * PAGE, g), 300 * PAGE);
  assertEquals(g.freeList.length, 0);
  assertEquals(syncs() - before, 0, "lazy unmap before its sync");
  d.sync(g);
  assertEquals(syncs() - before, 1, "lazy unmap + domain.sync");

  // Documented extra: an unmap that unlinks a page table invalidates the
  // range at once (walk caches must not keep the unlinked table), which is
  // one more CMD_SYNC for that unmap call, strict or lazy.
  // An unmap that empties both tables without spanning them keeps them.
  d.map(0x10_0000, buf + PAGE, 300 * PAGE, RW);
  before = syncs();
  const g1 = new IotlbGather();
  assertEquals(d.unmapNoSync(lo, 302 * PAGE, g1), 302 * PAGE);
  assertEquals(g1.freeList.length, 0);
  assertEquals(syncs() - before, 0, "no table unlinked");
  d.sync(g1);
  d.map(lo, buf, 302 * PAGE, RW);
  before = syncs();
  assertEquals(d.unmap(0, 2 * MIB2), 302 * PAGE);
  assertEquals(syncs() - before, 2, "strict unmap that frees tables");

  d.map(lo, buf, 302 * PAGE, RW);
  before = syncs();
  const g2 = new IotlbGather();
  d.unmapNoSync(0, 2 * MIB2, g2);
  assert(g2.freeList.length >= 2, `${g2.freeList.length} tables deferred`);
  assertEquals(syncs() - before, 1, "lazy unmap that frees tables");
  d.sync(g2);
  assertEquals(syncs() - before, 2, "lazy unmap that frees tables + sync");
  assertEquals(d.leaves().length, 0);
});

Deno.test("translate refuses an access other than ACCESS_READ or ACCESS_WRITE: EINVAL, nothing counted or recorded", async (t) => {
  const bad = [0, -0, 3, 0.5, 1.5, NaN, -1, 33, Infinity, "1", null];
  for (const microTlb of [true, false]) {
    await t.step(`micro TLB ${microTlb ? "on" : "off"}`, () => {
      const { soc, unit, faults } = rig({ microTlb });
      const hw = genericHardwareOf(unit);
      const d = soc.createDomain(unit);
      d.attach(unit, [1]);
      d.map(0x10_0000, 0x40_0000, 4096, RW);
      // Warm: the entry is in the micro TLB (or the IOTLB's fast hit),
      // where a read or a write would finish at once.
      assertEquals(hw.translate(1, 0x10_0008, ACCESS_READ), 0x40_0008);
      assertEquals(hw.translate(1, 0x10_0008, ACCESS_WRITE), 0x40_0008);
      const before = JSON.stringify([
        hw.counters(),
        hw.streamCounters(1),
        hw.streamCounters(2),
        hw.lastSpan,
        hw.lastFault,
      ]);
      for (const access of bad) {
        // A warm stream, a cold attached stream, an unattached stream, an
        // unmapped page and a bad stream ID: EINVAL first, in every case.
        for (
          const [sid, iova] of [
            [1, 0x10_0008],
            [1, 0x20_0000],
            [2, 0x10_0008],
            [999, 0],
          ]
        ) {
          const e = throwsKind(
            () => hw.translate(sid!, iova!, access as number),
            "EINVAL",
          );
          assertEquals(
            e.message,
            `translate: access ${
              String(access)
            } is not ACCESS_READ (1) or ACCESS_WRITE (2)`,
          );
        }
      }
      assertEquals(
        JSON.stringify([
          hw.counters(),
          hw.streamCounters(1),
          hw.streamCounters(2),
          hw.lastSpan,
          hw.lastFault,
        ]),
        before,
      );
      assertEquals(faults.length, 0);
      assertEquals(hw.translate(1, 0x10_0010, ACCESS_WRITE), 0x40_0010);
      // SMMUEN clear (bypass): still refused before anything else.
      hw.writeRegister(REG_CR0, 0);
      throwsKind(() => hw.translate(1, 0x10_0008, 0), "EINVAL");
      assertEquals(faults.length, 0);
    });
  }
});
