// DMA-API debug fixes after a review: cache lines shared between the
// entries of one sg list, the segment-boundary check of bounced direct
// lists, validation of the debug options, and the DMA address a
// single-mapping overlap report carries.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { IommuError } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaBuffer,
  type DmaDebugReport,
  type DmaMapper,
} from "../core/dma/mod.ts";
import { dmaRig } from "./support/dma_rig.ts";

function mapper(
  kind: "flat" | "direct",
  mode: "throw" | "record",
  extra: { dmaBits?: number; segmentBoundary?: number } = {},
): DmaMapper {
  const r = dmaRig(
    kind,
    extra.dmaBits !== undefined ? { dmaBits: extra.dmaBits } : {},
  );
  return createDmaMapper(r.soc, r.master, {
    debug: { mode },
    ...(extra.segmentBoundary !== undefined
      ? { segmentBoundary: extra.segmentBoundary }
      : {}),
  });
}

/** A buffer of `size` bytes at or above 16 MiB (beyond a 24-bit mask). */
function highBuffer(dma: DmaMapper, size: number): DmaBuffer {
  const keep: DmaBuffer[] = [];
  let b = dma.cpu.allocBuffer(size);
  while (b.pa < 16 << 20) {
    keep.push(b);
    b = dma.cpu.allocBuffer(size);
  }
  for (const k of keep) k.free();
  return b;
}

function eexist(fn: () => unknown): DmaDebugReport {
  const e = assertThrows(fn, IommuError);
  assertEquals(e.kind, "EEXIST", e.message);
  const r = e.detail as DmaDebugReport;
  assertEquals(r.kind, "cacheline-overlap");
  return r;
}

Deno.test("debug fix: entries of one sg list sharing cache lines", async (t) => {
  await t.step("two entries in one line: EEXIST, nothing mapped", () => {
    for (const kind of ["flat", "direct"] as const) {
      const dma = mapper(kind, "throw");
      const b = dma.cpu.allocBuffer(4096);
      const list = [{ pa: b.pa, length: 32 }, { pa: b.pa + 32, length: 32 }];
      const r = eexist(() => dma.mapSg(list, DMA_FROM_DEVICE));
      assert(r.message.includes("sg entries 0 and 1"), r.message);
      assertEquals(dma.mappings().length, 0, kind);
      // The same list read by the device only is fine, and maps.
      const sg = dma.mapSg(list, DMA_TO_DEVICE);
      dma.unmapSg(sg, DMA_TO_DEVICE);
      assertEquals(dma.mappings().length, 0);
    }
  });

  await t.step("record mode: one report per entry, the list's address", () => {
    for (const kind of ["flat", "direct"] as const) {
      const dma = mapper(kind, "record");
      const b = dma.cpu.allocBuffer(4096);
      // Three entries in the line at b.pa, then one on a line of its own.
      const sg = dma.mapSg([
        { pa: b.pa, length: 16 },
        { pa: b.pa + 16, length: 16 },
        { pa: b.pa + 32, length: 32 },
        { pa: b.pa + 64, length: 64 },
      ], DMA_BIDIRECTIONAL);
      const reports = dma.reports();
      assertEquals(reports.length, 2, kind);
      for (const r of reports) {
        assertEquals(r.kind, "cacheline-overlap");
        assertEquals(r.dmaAddr, sg.dmaAddress[0]);
        assertEquals(r.size, 128);
      }
      dma.unmapSg(sg, DMA_BIDIRECTIONAL);
    }
  });

  await t.step("entries out of order are still paired", () => {
    const dma = mapper("direct", "record");
    const b = dma.cpu.allocBuffer(8192);
    const sg = dma.mapSg([
      { pa: b.pa + 4096, length: 64 },
      { pa: b.pa + 200, length: 8 },
      { pa: b.pa, length: 4096 },
    ], DMA_FROM_DEVICE);
    const reports = dma.reports();
    assertEquals(reports.length, 1);
    assert(reports[0]!.message.includes("sg entries 1 and 2"));
    assert(reports[0]!.message.includes("1 cache line(s)"));
    dma.unmapSg(sg, DMA_FROM_DEVICE);
  });

  await t.step("no report: separate lines, exemptions, ignored kind", () => {
    const dma = mapper("flat", "throw");
    const b = dma.cpu.allocBuffer(4096);
    const touching = [{ pa: b.pa, length: 64 }, { pa: b.pa + 64, length: 8 }];
    dma.unmapSg(dma.mapSg(touching, DMA_FROM_DEVICE), DMA_FROM_DEVICE);
    const shared = [{ pa: b.pa, length: 32 }, { pa: b.pa + 32, length: 32 }];
    for (
      const attrs of [{ skipCpuSync: true }, { cpuCacheClean: true }] as const
    ) {
      const sg = dma.mapSg(shared, DMA_FROM_DEVICE, attrs);
      dma.unmapSg(sg, DMA_FROM_DEVICE, attrs);
    }
    const r = dmaRig("flat");
    const quiet = createDmaMapper(r.soc, r.master, {
      debug: { ignore: ["cacheline-overlap"] },
    });
    const c = quiet.cpu.allocBuffer(4096);
    const list = [{ pa: c.pa, length: 32 }, { pa: c.pa + 32, length: 32 }];
    quiet.unmapSg(quiet.mapSg(list, DMA_FROM_DEVICE), DMA_FROM_DEVICE);
    assertEquals(dma.reports().length + quiet.reports().length, 0);
  });

  await t.step("a long list in reverse order on lines of its own", () => {
    const dma = mapper("flat", "throw");
    const b = dma.cpu.allocBuffer(4096 * 128);
    const list = Array.from({ length: 4096 }, (_, i) => ({
      pa: b.pa + (4095 - i) * 128,
      length: 64,
    }));
    dma.unmapSg(dma.mapSg(list, DMA_FROM_DEVICE), DMA_FROM_DEVICE);
    assertEquals(dma.reports().length, 0);
  });
});

Deno.test("debug fix: a bounced sg entry is boundary-checked at its slot", () => {
  const dma = mapper("direct", "throw", {
    dmaBits: 24,
    segmentBoundary: 0x10000,
  });
  const high = highBuffer(dma, 0x20000);
  // Crosses a 64 KiB boundary in physical memory, not in its bounce slot.
  const bnd = Math.ceil((high.pa + 1) / 0x10000) * 0x10000;
  const sg = dma.mapSg([{ pa: bnd - 0x100, length: 0x200 }], DMA_TO_DEVICE);
  assertEquals(sg.bounce !== null && sg.bounce[0]! >= 0, true);
  const start = sg.dmaAddress[0]!;
  assert(start < 1 << 24);
  assertEquals(
    Math.floor(start / 0x10000),
    Math.floor((start + 0x1ff) / 0x10000),
  );
  dma.unmapSg(sg, DMA_TO_DEVICE);
  assertEquals(dma.reports().length, 0);
  // A report after the slots are taken gives them back: repeated far past
  // the pool's size, it stays EEXIST (never ENOMEM) and maps nothing.
  const bounces = dma.stats().bounces;
  const shared = [
    { pa: high.pa, length: 0x100 },
    { pa: high.pa + 0x20, length: 0x100 },
  ];
  for (let i = 0; i < 2000; i++) {
    eexist(() => dma.mapSg(shared, DMA_FROM_DEVICE));
  }
  assertEquals(dma.stats().bounces, bounces);
  assertEquals(dma.mappings().length, 0);
});

Deno.test("debug fix: bad debug options are EINVAL and set nothing up", () => {
  const bad: unknown[] = [
    5,
    "record",
    { ignore: 5 },
    { ignore: "leak" },
    { ignore: ["lek"] },
    { ignore: [null] },
    { ignore: ["leak", "toString"] },
    { stacks: "no" },
    { ownership: 1 },
  ];
  for (const debug of bad) {
    const r = dmaRig("flat");
    const e = assertThrows(
      () => createDmaMapper(r.soc, r.master, { debug } as never),
      IommuError,
    );
    assertEquals(e.kind, "EINVAL", JSON.stringify(debug));
    // Nothing was registered: the master takes a mapper afterwards.
    createDmaMapper(r.soc, r.master, {
      debug: { ignore: ["leak"], stacks: false },
    });
  }
});

Deno.test("debug fix: a single mapping's overlap report carries its DMA address", () => {
  for (const kind of ["flat", "direct"] as const) {
    const dma = mapper(kind, "record");
    const c = dma.cpu.allocBuffer(4096);
    const x = dma.mapSingle(c.slice(0, 32), DMA_FROM_DEVICE);
    dma.mappingError(x);
    const y = dma.mapSingle(c.slice(32, 32), DMA_FROM_DEVICE);
    dma.mappingError(y);
    const reports = dma.reports();
    assertEquals(reports.length, 1, kind);
    assertEquals(reports[0]!.kind, "cacheline-overlap");
    assertEquals(reports[0]!.dmaAddr, y, kind);
  }
  // Bounced: the report names the slot; in throw mode the slot is given back.
  const dma = mapper("direct", "record", { dmaBits: 24 });
  const high = highBuffer(dma, 4096);
  const x = dma.mapSingle(high.slice(0, 32), DMA_FROM_DEVICE);
  dma.mappingError(x);
  const y = dma.mapSingle(high.slice(32, 32), DMA_FROM_DEVICE);
  assert(y < 1 << 24);
  assertEquals(dma.reports()[0]!.dmaAddr, y);
  for (const kind of ["flat", "direct"] as const) {
    const t = mapper(kind, "throw", kind === "direct" ? { dmaBits: 24 } : {});
    const b = kind === "direct" ? highBuffer(t, 4096) : t.cpu.allocBuffer(4096);
    t.mappingError(t.mapSingle(b.slice(0, 32), DMA_FROM_DEVICE));
    for (let i = 0; i < 2000; i++) {
      const r = eexist(() => t.mapSingle(b.slice(32, 32), DMA_FROM_DEVICE));
      assert(r.dmaAddr >= 0, `${kind}: ${r.dmaAddr}`);
    }
    assertEquals(t.mappings().length, 1, kind);
  }
});

/** A recording mapper with ownership checks, and its reports since the last call. */
function ownershipMapper(kind: "flat" | "direct"): {
  dma: DmaMapper;
  fresh: () => DmaDebugReport[];
} {
  const r = dmaRig(kind);
  const dma = createDmaMapper(r.soc, r.master, {
    debug: { mode: "record", ownership: true },
  });
  let seen = 0;
  const fresh = () => {
    const all = dma.reports();
    const out = all.slice(seen);
    seen = all.length;
    return out;
  };
  return { dma, fresh };
}

Deno.test("debug ownership: a partial sync moves only the bytes it names", async (t) => {
  for (const kind of ["flat", "direct"] as const) {
    await t.step(`${kind}: single mapping`, () => {
      const { dma, fresh } = ownershipMapper(kind);
      const buf = dma.cpu.allocBuffer(3 * 4096);
      const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
      dma.mappingError(addr);
      // The CPU takes bytes [4096, 4160) only.
      dma.syncForCpu(addr + 4096, 64, DMA_FROM_DEVICE);
      dma.cpu.readBuffer(buf, 4096, 64);
      dma.cpu.readBuffer(buf, 4100, 8);
      assertEquals(fresh(), [], "synced bytes are the CPU's");
      dma.cpu.readBuffer(buf, 4160, 4); // never synced
      dma.cpu.readBuffer(buf, 4090, 8); // straddles the synced part
      dma.cpu.readBuffer(buf, 0, 4);
      const reports = fresh();
      assertEquals(reports.map((x) => x.kind), [
        "cpu-access-device-owned",
        "cpu-access-device-owned",
        "cpu-access-device-owned",
      ]);
      assert(reports[0]!.message.includes("part of the"), reports[0]!.message);
      // The rest handed over piece by piece: then the CPU owns it all.
      dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
      dma.syncForCpu(addr + 4160, 2 * 4096 - 64, DMA_FROM_DEVICE);
      dma.cpu.readBuffer(buf);
      assertEquals(fresh(), []);
      // Back to the device: only the middle page.
      dma.syncForDevice(addr + 4096, 4096, DMA_FROM_DEVICE);
      dma.cpu.readBuffer(buf, 0, 4096);
      dma.cpu.readBuffer(buf, 8192, 4096);
      assertEquals(fresh(), []);
      dma.cpu.readBuffer(buf, 5000, 1);
      assertEquals(fresh().map((x) => x.kind), [
        "cpu-access-device-owned",
      ]);
      dma.unmapSingle(addr, 3 * 4096, DMA_FROM_DEVICE);
      dma.removeMaster();
    });
    await t.step(`${kind}: sg list, one segment synced by address`, () => {
      const { dma, fresh } = ownershipMapper(kind);
      const a = dma.cpu.allocBuffer(4096);
      dma.cpu.allocBuffer(4096); // keeps a and b apart
      const b = dma.cpu.allocBuffer(4096);
      const sg = dma.mapSg(
        [{ pa: a.pa, length: 4096 }, { pa: b.pa, length: 4096 }],
        DMA_FROM_DEVICE,
      );
      // The DMA segment holding b's bytes: its last 4 KiB.
      const k = sg.count - 1;
      const bAddr = sg.dmaAddress[k]! + sg.dmaLength[k]! - 4096;
      dma.syncForCpu(bAddr, 4096, DMA_FROM_DEVICE);
      dma.cpu.readBuffer(b);
      assertEquals(fresh(), [], "b was synced");
      dma.cpu.readBuffer(a, 0, 4);
      assertEquals(fresh().map((x) => x.kind), [
        "cpu-access-device-owned",
      ]);
      dma.syncSgForCpu(sg, DMA_FROM_DEVICE);
      dma.cpu.readBuffer(a);
      assertEquals(fresh(), []);
      dma.unmapSg(sg, DMA_FROM_DEVICE);
      dma.removeMaster();
    });
  }
});
