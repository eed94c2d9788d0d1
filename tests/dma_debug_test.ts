// Every DMA-API debug check: in "throw" mode the offending call throws its
// kind and changes nothing; in "record" mode it carries on and the report
// is kept, with where the mapping was made.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { IommuError, type IommuErrorKind } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_DEBUG_ERROR_KINDS,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  type DmaDebugKind,
  type DmaDebugReport,
  type DmaMapper,
  DmaSgMapping,
} from "../core/dma/mod.ts";
import { dmaRig } from "./support/dma_rig.ts";

function setup(
  kind: "flat" | "direct" = "flat",
  mode: "throw" | "record" = "throw",
  extra: { maxSegmentSize?: number; segmentBoundary?: number } = {},
): DmaMapper {
  const r = dmaRig(kind);
  return createDmaMapper(r.soc, r.master, { debug: { mode }, ...extra });
}

function throwsReport(
  dma: DmaMapper,
  fn: () => unknown,
  kind: DmaDebugKind,
): DmaDebugReport {
  const e = assertThrows(fn, IommuError);
  const want: IommuErrorKind = DMA_DEBUG_ERROR_KINDS[kind];
  assertEquals(e.kind, want, e.message);
  const report = e.detail as DmaDebugReport;
  assertEquals(report.kind, kind);
  assertEquals(report.master, "dev");
  const last = dma.reports().at(-1)!;
  assert(dma.reports().some((r) => r.kind === kind), `kept ${kind}`);
  assert(last !== undefined);
  return report;
}

function kinds(dma: DmaMapper): DmaDebugKind[] {
  return dma.reports().map((r) => r.kind);
}

Deno.test("debug: unmap checks", async (t) => {
  await t.step("never mapped, already unmapped, invalid address", () => {
    for (const kind of ["flat", "direct"] as const) {
      const dma = setup(kind);
      throwsReport(
        dma,
        () => dma.unmapSingle(0x8000, 4096, DMA_TO_DEVICE),
        "unmap-not-mapped",
      );
      const buf = dma.cpu.allocBuffer(4096);
      const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
      dma.mappingError(addr);
      dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
      throwsReport(
        dma,
        () => dma.unmapSingle(addr, 4096, DMA_TO_DEVICE),
        "unmap-not-mapped",
      );
      throwsReport(
        dma,
        () => dma.unmapSingle(DMA_MAPPING_ERROR, 4096, DMA_TO_DEVICE),
        "unmap-invalid-address",
      );
      dma.removeMaster();
    }
  });
  await t.step(
    "wrong size, direction, function: the call changes nothing",
    () => {
      const dma = setup();
      const buf = dma.cpu.allocBuffer(8192);
      const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
      dma.mappingError(addr);
      const r = throwsReport(
        dma,
        () => dma.unmapSingle(addr, 4096, DMA_BIDIRECTIONAL),
        "unmap-wrong-size",
      );
      assert(
        r.mappedAt?.includes("dma_debug_test.ts"),
        "names where it was mapped",
      );
      throwsReport(
        dma,
        () => dma.unmapSingle(addr, 8192, DMA_TO_DEVICE),
        "unmap-wrong-direction",
      );
      throwsReport(
        dma,
        () => dma.freeCoherent({ cpu: buf, dmaAddr: addr, size: 8192 }),
        "unmap-wrong-function",
      );
      const fakeSg = new DmaSgMapping({
        segments: [{ pa: buf.pa, length: 8192 }],
        direction: DMA_BIDIRECTIONAL,
        dmaAddress: [addr],
        dmaLength: [8192],
        iova: addr,
        iovaSize: 8192,
        bounce: null,
        size: 8192,
      });
      throwsReport(
        dma,
        () => dma.unmapSg(fakeSg, DMA_BIDIRECTIONAL),
        "unmap-wrong-function",
      );
      // Still mapped and usable.
      assertEquals(dma.domain!.iovaToPhys(addr), buf.pa);
      dma.master.port().writeBytes(addr, new Uint8Array([1]));
      dma.unmapSingle(addr, 8192, DMA_BIDIRECTIONAL);
      assertEquals(dma.stats().liveMappings, 0);
      dma.removeMaster();
    },
  );
  await t.step("sg entry count and coherent CPU address", () => {
    const dma = setup();
    const buf = dma.cpu.allocBuffer(8192);
    const sg = dma.mapSg(
      [{ pa: buf.pa, length: 4096 }, { pa: buf.pa + 4096, length: 4096 }],
      DMA_TO_DEVICE,
    );
    throwsReport(
      dma,
      () => dma.unmapSg(new DmaSgMapping({ ...sg, nents: 1 }), DMA_TO_DEVICE),
      "unmap-wrong-nents",
    );
    throwsReport(
      dma,
      () => dma.unmapSingle(sg.dmaAddress[0]!, 8192, DMA_TO_DEVICE),
      "unmap-wrong-function",
    );
    dma.unmapSg(sg, DMA_TO_DEVICE);
    const c = dma.allocCoherent(4096);
    throwsReport(
      dma,
      () => dma.freeCoherent({ ...c, cpu: buf }),
      "unmap-wrong-cpu-address",
    );
    throwsReport(
      dma,
      () => dma.freeCoherent({ ...c, size: 100 }),
      "unmap-wrong-size",
    );
    dma.freeCoherent(c);
    throwsReport(dma, () => dma.freeCoherent(c), "unmap-not-mapped");
    dma.removeMaster();
  });
  await t.step("record mode goes on and keeps every report", () => {
    const dma = setup("flat", "record");
    const buf = dma.cpu.allocBuffer(8192);
    dma.unmapSingle(0x8000, 4096, DMA_TO_DEVICE); // nothing happens
    const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
    // Wrong size AND wrong direction AND unchecked: three reports, and the
    // mapping is undone by its record.
    dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
    assertEquals(kinds(dma), [
      "unmap-not-mapped",
      "unmap-wrong-size",
      "unmap-wrong-direction",
      "map-error-unchecked",
    ]);
    assertEquals(dma.stats().liveMappings, 0);
    assertEquals(dma.domain!.leaves().length, 0);
    dma.debug!.clear();
    assertEquals(dma.reports().length, 0);
    dma.removeMaster();
  });
});

Deno.test("debug: mapping error never checked", () => {
  const dma = setup();
  const buf = dma.cpu.allocBuffer(4096);
  const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
  // Flagged at the first use (here a sync), not only at unmap.
  throwsReport(
    dma,
    () => dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE),
    "map-error-unchecked",
  );
  throwsReport(
    dma,
    () => dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE),
    "map-error-unchecked",
  );
  assertEquals(dma.mappingError(addr), false);
  assertEquals(dma.mappingError(DMA_MAPPING_ERROR), true);
  dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
  dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
  dma.removeMaster();
});

Deno.test("debug: sync checks", async (t) => {
  const dma = setup();
  const buf = dma.cpu.allocBuffer(8192);
  await t.step("not mapped and out of range", () => {
    throwsReport(
      dma,
      () => dma.syncForCpu(0x9000, 16, DMA_FROM_DEVICE),
      "sync-not-mapped",
    );
    const addr = dma.mapSingle(buf.slice(0, 4096), DMA_FROM_DEVICE);
    dma.mappingError(addr);
    throwsReport(
      dma,
      () => dma.syncForCpu(addr + 4000, 200, DMA_FROM_DEVICE),
      "sync-out-of-range",
    );
    dma.syncForCpu(addr + 4000, 96, DMA_FROM_DEVICE); // a sub-range is fine
    dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
    throwsReport(
      dma,
      () => dma.syncForDevice(addr, 16, DMA_FROM_DEVICE),
      "sync-not-mapped",
    );
  });
  await t.step("directions the mapping forbids", () => {
    const ro = dma.mapSingle(buf, DMA_TO_DEVICE);
    dma.mappingError(ro);
    throwsReport(
      dma,
      () => dma.syncForCpu(ro, 64, DMA_FROM_DEVICE),
      "sync-wrong-direction",
    );
    dma.debug!.clear();
    dma.syncForCpu(ro, 64, DMA_TO_DEVICE); // legal: no report
    dma.syncForDevice(ro, 64, DMA_TO_DEVICE);
    assertEquals(dma.reports().length, 0);
    dma.unmapSingle(ro, 8192, DMA_TO_DEVICE);
    const wo = dma.mapSingle(buf, DMA_FROM_DEVICE);
    dma.mappingError(wo);
    throwsReport(
      dma,
      () => dma.syncForDevice(wo, 64, DMA_TO_DEVICE),
      "sync-wrong-direction",
    );
    dma.unmapSingle(wo, 8192, DMA_FROM_DEVICE);
    const bi = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
    dma.mappingError(bi);
    dma.debug!.clear();
    dma.syncForCpu(bi, 64, DMA_TO_DEVICE); // bidirectional: never checked
    dma.syncForDevice(bi, 64, DMA_FROM_DEVICE);
    assertEquals(dma.reports().length, 0);
    dma.unmapSingle(bi, 8192, DMA_BIDIRECTIONAL);
  });
  await t.step("sg entry count", () => {
    const sg = dma.mapSg([{ pa: buf.pa, length: 4096 }], DMA_FROM_DEVICE);
    throwsReport(
      dma,
      () =>
        dma.syncSgForCpu(
          new DmaSgMapping({ ...sg, nents: 2 }),
          DMA_FROM_DEVICE,
        ),
      "sync-wrong-nents",
    );
    dma.syncSgForCpu(sg, DMA_FROM_DEVICE);
    dma.unmapSg(sg, DMA_FROM_DEVICE);
  });
  dma.removeMaster();
});

Deno.test("debug: read-only-for-cpu and write-only-to-device in record mode", () => {
  const dma = setup("flat", "record");
  const buf = dma.cpu.allocBuffer(4096);
  const ro = dma.mapSingle(buf, DMA_TO_DEVICE);
  dma.mappingError(ro);
  dma.syncForCpu(ro, 64, DMA_FROM_DEVICE);
  assertEquals(kinds(dma), ["sync-wrong-direction", "sync-read-only-for-cpu"]);
  dma.unmapSingle(ro, 4096, DMA_TO_DEVICE);
  dma.debug!.clear();
  const wo = dma.mapSingle(buf, DMA_FROM_DEVICE);
  dma.mappingError(wo);
  dma.syncForDevice(wo, 64, DMA_TO_DEVICE);
  assertEquals(kinds(dma), [
    "sync-wrong-direction",
    "sync-write-only-to-device",
  ]);
  dma.unmapSingle(wo, 4096, DMA_FROM_DEVICE);
  dma.syncForCpu(0x7000, 4, DMA_FROM_DEVICE); // recorded, nothing done
  assertEquals(kinds(dma).at(-1), "sync-not-mapped");
  dma.removeMaster();
});

Deno.test("debug: sg segment length and boundary", () => {
  const dma = setup("flat", "throw", {
    maxSegmentSize: 8192,
    segmentBoundary: 8192,
  });
  const buf = dma.cpu.allocBuffer(4 * 4096);
  throwsReport(
    dma,
    () => dma.mapSg([{ pa: buf.pa, length: 3 * 4096 }], DMA_TO_DEVICE),
    "sg-segment-too-long",
  );
  assertEquals(dma.iova!.stats().liveRanges, 0, "nothing left allocated");
  assertEquals(dma.domain!.leaves().length, 0);
  const rec = setup("direct", "record", { segmentBoundary: 8192 });
  const b2 = rec.cpu.allocBuffer(4 * 4096);
  const sg = rec.mapSg([{ pa: b2.pa + 4096, length: 8192 }], DMA_TO_DEVICE);
  assertEquals(kinds(rec), ["sg-segment-boundary"]);
  rec.unmapSg(sg, DMA_TO_DEVICE);
  rec.removeMaster();
  dma.removeMaster();
});

Deno.test("debug: overlapping cache lines, every line, across masters", () => {
  const r = dmaRig("flat");
  const other = r.soc.addMaster({ name: "dev2", ports: [{}] });
  const a = createDmaMapper(r.soc, r.master);
  const b = createDmaMapper(r.soc, other, { debug: { mode: "record" } });
  const page = a.cpu.allocBuffer(4096);
  const first = a.mapSingle(page.slice(1024, 1024), DMA_FROM_DEVICE);
  a.mappingError(first);
  // Overlaps only at its LAST line (0x400..0x43f); the kernel checks only
  // the first line and would miss this.
  const e = assertThrows(
    () => a.mapSingle(page.slice(0, 1025), DMA_BIDIRECTIONAL),
    IommuError,
  );
  assertEquals(e.kind, "EEXIST");
  assertEquals(a.stats().liveMappings, 1, "refused map left nothing");
  // Another master: recorded, mapped anyway; all 4 overlapping lines named.
  const addr = b.mapSingle(page.slice(1024 + 64, 256), DMA_FROM_DEVICE);
  b.mappingError(addr);
  const rep = b.reports()[0]!;
  assertEquals(rep.kind, "cacheline-overlap");
  assert(rep.message.includes("4 cache line(s)"), rep.message);
  assert(rep.mappedAt?.includes("dma_debug_test.ts"));
  // To-device mappings and cpuCacheClean promises are exempt.
  const t2 = a.mapSingle(page.slice(1024, 64), DMA_TO_DEVICE);
  a.mappingError(t2);
  const c2 = a.mapSingle(page.slice(1024, 64), DMA_FROM_DEVICE, {
    cpuCacheClean: true,
  });
  a.mappingError(c2);
  a.unmapSingle(t2, 64, DMA_TO_DEVICE);
  a.unmapSingle(c2, 64, DMA_FROM_DEVICE);
  b.unmapSingle(addr, 256, DMA_FROM_DEVICE);
  a.unmapSingle(first, 1024, DMA_FROM_DEVICE);
  // With everything unmapped the same range maps cleanly.
  const again = a.mapSingle(page.slice(0, 1025), DMA_BIDIRECTIONAL);
  a.mappingError(again);
  a.unmapSingle(again, 1025, DMA_BIDIRECTIONAL);
  a.removeMaster();
  b.removeMaster();
});

Deno.test("debug: leaks when the master is removed", async (t) => {
  await t.step("throw mode refuses, force tears down and reports", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master);
    const buf = dma.cpu.allocBuffer(4096);
    const live = r.soc.memory.frames.liveBytes;
    const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
    dma.mappingError(addr);
    dma.allocCoherent(4096);
    const e = assertThrows(() => dma.removeMaster(), IommuError);
    assertEquals(e.kind, "EBUSY");
    assertEquals((e.detail as DmaDebugReport[]).length, 2);
    assert(!dma.removed);
    assertEquals(dma.stats().liveMappings, 2, "nothing changed");
    const leaks = dma.removeMaster({ force: true });
    assertEquals(leaks.map((l) => l.kind), ["leak", "leak"]);
    assert(leaks.every((l) => l.mappedAt?.includes("dma_debug_test.ts")));
    assert(dma.removed);
    // Tables, coherent frames and the domain's root table are all freed.
    assertEquals(r.soc.memory.frames.liveBytes, live - 4096, "all freed");
    buf.free();
  });
  await t.step("record mode reports and tears down", () => {
    const dma = setup("direct", "record");
    const buf = dma.cpu.allocBuffer(4096);
    dma.mapSg([{ pa: buf.pa, length: 100 }], DMA_TO_DEVICE);
    const leaks = dma.removeMaster();
    assertEquals(leaks.length, 1);
    assert(leaks[0]!.message.includes("mapped as sg"));
    assertEquals(kinds(dma), ["leak"]);
  });
  await t.step("debug off: silent teardown", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, { debug: false });
    const buf = dma.cpu.allocBuffer(4096);
    dma.mapSingle(buf, DMA_TO_DEVICE);
    assertEquals(dma.removeMaster(), []);
    assertEquals(dma.reports(), []);
  });
});

Deno.test("debug options: ignored kinds and stacks off", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master, {
    debug: { ignore: ["map-error-unchecked"], stacks: false },
  });
  const buf = dma.cpu.allocBuffer(4096);
  const addr = dma.mapSingle(buf, DMA_TO_DEVICE); // never checked: ignored
  assertEquals(dma.mappings()[0]!.mappedAt, "");
  const e = assertThrows(
    () => dma.unmapSingle(addr, 1, DMA_TO_DEVICE),
    IommuError,
  );
  assertEquals((e.detail as DmaDebugReport).mappedAt, undefined);
  dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
  dma.removeMaster();
});

Deno.test("debug ownership (opt-in): CPU access while the device owns the buffer", async (t) => {
  await t.step("from-device: reads are refused until a sync for CPU", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, {
      debug: { ownership: true },
    });
    const buf = dma.cpu.allocBuffer(8192);
    const other = dma.cpu.allocBuffer(4096);
    const addr = dma.mapSingle(buf.slice(100, 5000), DMA_FROM_DEVICE);
    dma.mappingError(addr);
    r.master.port().writeBytes(addr, new Uint8Array([5]));
    const before = dma.cpu.counters().accesses;
    throwsReport(
      dma,
      () => dma.cpu.readBuffer(buf, 4000, 8),
      "cpu-access-device-owned",
    );
    assertEquals(dma.cpu.counters().accesses, before, "the read did nothing");
    dma.cpu.readBuffer(buf, 0, 100); // outside the mapping: fine
    dma.cpu.readBuffer(other); // another buffer: fine
    dma.syncForCpu(addr, 5000, DMA_FROM_DEVICE);
    assertEquals(dma.cpu.readBuffer(buf, 100, 1)[0], 5);
    dma.syncForDevice(addr, 5000, DMA_FROM_DEVICE);
    throwsReport(
      dma,
      () => dma.cpu.writeBuffer(buf, new Uint8Array([1]), 200),
      "cpu-access-device-owned",
    );
    dma.unmapSingle(addr, 5000, DMA_FROM_DEVICE);
    dma.cpu.readBuffer(buf); // after unmap the CPU owns it
    dma.removeMaster();
  });
  await t.step("to-device: reads are fine, writes are not", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, {
      debug: { mode: "record", ownership: true },
    });
    const buf = dma.cpu.allocBuffer(4096);
    const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
    dma.mappingError(addr);
    dma.cpu.readBuffer(buf, 0, 16);
    assertEquals(dma.reports(), []);
    dma.cpu.writeBuffer(buf, new Uint8Array([1]));
    assertEquals(kinds(dma), ["cpu-access-device-owned"]);
    dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
    dma.removeMaster();
  });
  await t.step("bounce copies and coherent masters are not flagged", () => {
    const r = dmaRig("direct", { dmaBits: 24 });
    const dma = createDmaMapper(r.soc, r.master, {
      debug: { ownership: true },
    });
    let high = dma.cpu.allocBuffer(4096);
    const low = [];
    while (high.pa < 16 << 20) {
      low.push(high);
      high = dma.cpu.allocBuffer(4096);
    }
    for (const b of low) b.free();
    const addr = dma.mapSingle(high, DMA_BIDIRECTIONAL);
    dma.mappingError(addr);
    dma.syncForCpu(addr, 4096, DMA_BIDIRECTIONAL);
    dma.syncForDevice(addr, 4096, DMA_BIDIRECTIONAL);
    dma.unmapSingle(addr, 4096, DMA_BIDIRECTIONAL);
    assertEquals(dma.reports(), []);
    dma.removeMaster();
    const c = dmaRig("flat", { coherent: true });
    const coh = createDmaMapper(c.soc, c.master, {
      debug: { ownership: true },
    });
    const b = coh.cpu.allocBuffer(4096);
    const a = coh.mapSingle(b, DMA_FROM_DEVICE);
    coh.mappingError(a);
    coh.cpu.readBuffer(b, 0, 4); // snooped: no ownership rules
    coh.unmapSingle(a, 4096, DMA_FROM_DEVICE);
    coh.removeMaster();
  });
  await t.step("off by default", () => {
    const dma = setup();
    const buf = dma.cpu.allocBuffer(4096);
    const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
    dma.mappingError(addr);
    dma.cpu.readBuffer(buf, 0, 4);
    assertEquals(dma.reports(), []);
    dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
    dma.removeMaster();
  });
});
