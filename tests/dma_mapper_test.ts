import { assert, assertEquals } from "@std/assert";
import { createSoc, IOMMU_READ, IOMMU_WRITE } from "../core/mod.ts";
import {
  checkDirection,
  createDmaMapper,
  directionToProt,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_NONE,
  DMA_TO_DEVICE,
  DmaBuffer,
  dmaMapperOf,
} from "../core/dma/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";
import { dmaRig, pattern } from "./support/dma_rig.ts";
import { expectError } from "./support/assertions.ts";

Deno.test("directions: values, validity and prot", () => {
  assertEquals([DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE], [
    0,
    1,
    2,
    3,
  ]);
  assertEquals(directionToProt(DMA_TO_DEVICE, false), IOMMU_READ);
  assertEquals(directionToProt(DMA_FROM_DEVICE, false), IOMMU_WRITE);
  assertEquals(
    directionToProt(DMA_BIDIRECTIONAL, false),
    IOMMU_READ | IOMMU_WRITE,
  );
  assertEquals(directionToProt(DMA_TO_DEVICE, true), IOMMU_READ | 4);
  expectError(() => checkDirection(DMA_NONE), "EINVAL");
  expectError(() => checkDirection(7), "EINVAL");
});

Deno.test("createDmaMapper: modes, refusals and removal", async (t) => {
  await t.step("IOMMU and direct modes", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master);
    assertEquals(dma.stats().mode, "iommu");
    assertEquals(dma.domain!.attachments().length, 1);
    assertEquals(dmaMapperOf(r.master), dma);
    dma.removeMaster();
    assertEquals(dmaMapperOf(r.master), undefined);
    assertEquals(r.soc.domains().length, 0, "domain freed");
    const d = dmaRig("direct");
    const direct = createDmaMapper(d.soc, d.master);
    assertEquals(direct.stats().mode, "direct");
    assertEquals(direct.domain, null);
    direct.removeMaster();
  });
  await t.step("a second mapper for a master is EBUSY", () => {
    const r = dmaRig("flat");
    createDmaMapper(r.soc, r.master);
    expectError(() => createDmaMapper(r.soc, r.master), "EBUSY");
  });
  await t.step("ports mixing IOMMU and direct access are EINVAL", () => {
    const soc = createSoc({ memory: { size: 16 << 20 } }).use(flatIommu());
    const unit = soc.probeUnit({
      name: "m",
      compatible: ["iommukit,flat-iommu"],
    });
    const m = soc.addMaster({
      name: "mix",
      ports: [{ name: "a", unit }, { name: "b" }],
    });
    const live = soc.memory.frames.liveBytes;
    expectError(() => createDmaMapper(soc, m), "EINVAL");
    assertEquals(soc.memory.frames.liveBytes, live, "no domain left behind");
    assertEquals(soc.domains().length, 0);
  });
  await t.step("bad options are EINVAL and create nothing", () => {
    const r = dmaRig("flat");
    const live = r.soc.memory.frames.liveBytes;
    expectError(
      () => createDmaMapper(r.soc, r.master, { maxSegmentSize: 0 }),
      "EINVAL",
    );
    expectError(
      () => createDmaMapper(r.soc, r.master, { segmentBoundary: 5000 }),
      "EINVAL",
    );
    expectError(
      () => createDmaMapper(r.soc, r.master, { bouncePoolSize: 100 }),
      "EINVAL",
    );
    expectError(
      () =>
        createDmaMapper(r.soc, r.master, {
          policy: "eager" as unknown as "lazy",
        }),
      "EINVAL",
    );
    expectError(
      () =>
        createDmaMapper(r.soc, r.master, { flushQueueSize: 0, policy: "lazy" }),
      "EINVAL",
    );
    expectError(
      () =>
        createDmaMapper(r.soc, r.master, {
          debug: { mode: "warn" as unknown as "record" },
        }),
      "EINVAL",
    );
    assertEquals(r.soc.memory.frames.liveBytes, live);
    assertEquals(dmaMapperOf(r.master), undefined);
  });
  await t.step("every call after removal is EPERM", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master);
    dma.removeMaster();
    const buf = dma.cpu.allocBuffer(4096);
    expectError(() => dma.mapSingle(buf, DMA_TO_DEVICE), "EPERM");
    expectError(() => dma.unmapSingle(0x1000, 4096, DMA_TO_DEVICE), "EPERM");
    expectError(() => dma.mapSg([{ pa: buf.pa, length: 4096 }], 0), "EPERM");
    expectError(() => dma.allocCoherent(4096), "EPERM");
    expectError(() => dma.syncForCpu(0x1000, 4, DMA_FROM_DEVICE), "EPERM");
    expectError(() => dma.flush(), "EPERM");
    expectError(() => dma.advanceTime(1), "EPERM");
    expectError(() => dma.removeMaster(), "EPERM");
    // The master can get a new mapper.
    createDmaMapper(r.soc, r.master).removeMaster();
  });
});

Deno.test("mapSingle over an IOMMU", async (t) => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master);
  const port = r.master.port();
  await t.step("keeps the sub-page offset and maps the pages", () => {
    const page = dma.cpu.allocBuffer(8192);
    const buf = page.slice(0x123, 0x1000); // spans two pages
    const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
    assert(!dma.mappingError(addr));
    assertEquals(addr % 4096, 0x123);
    assertEquals(dma.domain!.iovaToPhys(addr), buf.pa);
    assertEquals(dma.domain!.iovaToPhys(addr + 0xfff), buf.paAt(0xfff));
    port.writeBytes(addr, pattern(16));
    dma.syncForCpu(addr, 0x1000, DMA_BIDIRECTIONAL);
    assertEquals(dma.cpu.readBuffer(buf, 0, 16), pattern(16));
    dma.unmapSingle(addr, 0x1000, DMA_BIDIRECTIONAL);
    assertEquals(dma.domain!.iovaToPhys(addr), -1);
    assertEquals(dma.stats().liveMappings, 0);
    assertEquals(dma.iova!.stats().liveRanges, 0);
    page.free();
  });
  await t.step("non-contiguous frames get one contiguous IOVA range", () => {
    const buf = dma.cpu.allocBuffer(3 * 4096, { contiguous: false });
    assert(!buf.contiguous);
    const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
    dma.mappingError(addr);
    for (let i = 0; i < 3; i++) {
      assertEquals(dma.domain!.iovaToPhys(addr + i * 4096), buf.frames[i]);
    }
    dma.unmapSingle(addr, buf.size, DMA_TO_DEVICE);
    buf.free();
  });
  await t.step("whole frames given as addresses", () => {
    const a = r.soc.memory.frames.alloc(4096);
    const b = r.soc.memory.frames.alloc(4096);
    const addr = dma.mapSingle([b, a], DMA_FROM_DEVICE);
    dma.mappingError(addr);
    assertEquals(dma.domain!.iovaToPhys(addr), b);
    assertEquals(dma.domain!.iovaToPhys(addr + 4096), a);
    dma.unmapSingle(addr, 8192, DMA_FROM_DEVICE);
    r.soc.memory.frames.free(a);
    r.soc.memory.frames.free(b);
  });
  await t.step("the direction is enforced by the page tables", () => {
    const buf = dma.cpu.allocBuffer(4096);
    const ro = dma.mapSingle(buf, DMA_TO_DEVICE);
    dma.mappingError(ro);
    assertEquals(dma.domain!.leaves()[0]!.prot, IOMMU_READ);
    assert(
      port.write(ro, new Uint8Array(4)) !== null,
      "write to a to-device buffer faults",
    );
    assertEquals(port.read(ro, new Uint8Array(4)), null);
    dma.unmapSingle(ro, 4096, DMA_TO_DEVICE);
    const wo = dma.mapSingle(buf, DMA_FROM_DEVICE);
    dma.mappingError(wo);
    assertEquals(dma.domain!.leaves()[0]!.prot, IOMMU_WRITE);
    assert(
      port.read(wo, new Uint8Array(4)) !== null,
      "read of a from-device buffer faults",
    );
    dma.unmapSingle(wo, 4096, DMA_FROM_DEVICE);
    buf.free();
  });
  await t.step("errors change nothing", () => {
    const buf = dma.cpu.allocBuffer(4096);
    const digest = r.soc.memory.digest();
    const live = r.soc.memory.frames.liveBytes;
    expectError(() => dma.mapSingle(buf, DMA_NONE), "EINVAL");
    expectError(() => dma.mapSingle([0x1001], DMA_TO_DEVICE), "EINVAL");
    expectError(() => dma.mapSingle([], DMA_TO_DEVICE), "EINVAL");
    expectError(() => dma.mapSingle([2 ** 40], DMA_TO_DEVICE), "ERANGE");
    r.soc.memory.frames.failNth(1); // the level-2 table allocation fails
    expectError(() => dma.mapSingle(buf, DMA_TO_DEVICE), "ENOMEM");
    assertEquals(r.soc.memory.digest(), digest);
    assertEquals(r.soc.memory.frames.liveBytes, live);
    assertEquals(dma.iova!.stats().liveRanges, 0, "IOVA given back");
    assertEquals(dma.stats().liveMappings, 0);
    buf.free();
    expectError(() => dma.mapSingle(buf, DMA_TO_DEVICE), "EINVAL");
  });
  await t.step("IOVA exhaustion is ENOMEM", () => {
    const small = dmaRig("flat", { dmaBits: 16 });
    const d = createDmaMapper(small.soc, small.master, { debug: false });
    // 64 KiB of IOVA space, IOVA 0 never handed out: three 16 KiB ranges fit.
    const buf = d.cpu.allocBuffer(16 * 1024);
    const got = [0, 1, 2].map(() => d.mapSingle(buf, DMA_TO_DEVICE));
    const before = d.iova!.stats().liveRanges;
    expectError(() => d.mapSingle(buf, DMA_TO_DEVICE), "ENOMEM");
    assertEquals(d.iova!.stats().liveRanges, before);
    for (const a of got) d.unmapSingle(a, buf.size, DMA_TO_DEVICE);
    d.removeMaster();
  });
  await t.step("unmap errors with debug off", () => {
    const d2 = dmaRig("flat");
    const quiet = createDmaMapper(d2.soc, d2.master, { debug: false });
    expectError(() => quiet.unmapSingle(0x5000, 4096, DMA_TO_DEVICE), "ENOENT");
    expectError(() => quiet.unmapSingle(-1, 4096, DMA_TO_DEVICE), "EINVAL");
    expectError(() => quiet.unmapSingle(0x5000, 0, DMA_TO_DEVICE), "EINVAL");
    expectError(() => quiet.unmapSingle(0x5000, 4096, DMA_NONE), "EINVAL");
    expectError(
      () => quiet.syncForCpu(0x5000, 4096, DMA_FROM_DEVICE),
      "ENOENT",
    );
    expectError(() => quiet.syncForCpu(0x5000, 0, DMA_FROM_DEVICE), "EINVAL");
    quiet.removeMaster();
  });
  dma.removeMaster();
});

Deno.test("mapSg builds one contiguous IOVA range", async (t) => {
  await t.step("offsets, merging and unmap", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master);
    const f = (n: number) => r.soc.memory.frames.alloc(4096 * n);
    const a = f(1), b = f(2), c = f(1);
    const segs = [
      { pa: a + 0x200, length: 0xe00 }, // ends on its page end
      { pa: b, length: 0x2000 }, // starts on a page: merges
      { pa: c, length: 0x100 }, // merges, but ends mid-page
      { pa: a, length: 0x80 }, // after a short entry: new segment
    ];
    const sg = dma.mapSg(segs, DMA_BIDIRECTIONAL);
    assertEquals(sg.nents, 4);
    assertEquals(sg.count, 2);
    assertEquals(sg.iovaSize, 5 * 4096);
    assertEquals(sg.dmaAddress[0], sg.iova + 0x200);
    assertEquals(sg.dmaLength[0], 0xe00 + 0x2000 + 0x100);
    assertEquals(sg.dmaAddress[1], sg.iova + 4 * 4096);
    assertEquals(sg.dmaLength[1], 0x80);
    assertEquals(dma.domain!.iovaToPhys(sg.iova + 0x200), a + 0x200);
    assertEquals(dma.domain!.iovaToPhys(sg.iova + 4096), b);
    assertEquals(dma.domain!.iovaToPhys(sg.iova + 3 * 4096), c);
    assertEquals(dma.domain!.iovaToPhys(sg.iova + 4 * 4096), a);
    // One device write across the merged segment lands in three frames.
    const data = pattern(0x1100 + 0xe00 + 0x1000);
    r.master.port().writeBytes(
      sg.dmaAddress[0]!,
      data.subarray(0, sg.dmaLength[0]!),
    );
    assertEquals(r.soc.memory.read8(b), data[0xe00]);
    assertEquals(r.soc.memory.read8(c + 0xff), data[0xe00 + 0x2000 + 0xff]);
    dma.unmapSg(sg, DMA_BIDIRECTIONAL);
    assertEquals(dma.domain!.leaves().length, 0);
    assertEquals(dma.iova!.stats().liveRanges, 0);
    dma.removeMaster();
  });
  await t.step("max segment size stops merging", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, { maxSegmentSize: 8192 });
    const p = r.soc.memory.frames.alloc(4 * 4096);
    const segs = [0, 1, 2, 3].map((i) => ({ pa: p + i * 4096, length: 4096 }));
    const sg = dma.mapSg(segs, DMA_TO_DEVICE);
    assertEquals(sg.count, 2);
    assertEquals([...sg.dmaLength], [8192, 8192]);
    dma.unmapSg(sg, DMA_TO_DEVICE);
    dma.removeMaster();
  });
  await t.step(
    "segment boundary: padding keeps segments inside, gap unmapped",
    () => {
      const r = dmaRig("flat");
      const dma = createDmaMapper(r.soc, r.master, { segmentBoundary: 8192 });
      const p = r.soc.memory.frames.alloc(4 * 4096);
      const segs = [
        { pa: p, length: 4096 },
        { pa: p + 4096 * 2, length: 8192 }, // would cross 8 KiB: padded
      ];
      const sg = dma.mapSg(segs, DMA_FROM_DEVICE);
      assertEquals(sg.count, 2);
      const second = sg.dmaAddress[1]!;
      assertEquals(second % 8192, 0);
      assertEquals(sg.iovaSize, 4 * 4096);
      assertEquals(
        dma.domain!.iovaToPhys(sg.iova + 4096),
        -1,
        "gap stays unmapped",
      );
      for (let i = 0; i < sg.count; i++) {
        const s = sg.dmaAddress[i]!, e = s + sg.dmaLength[i]! - 1;
        assertEquals(Math.floor(s / 8192), Math.floor(e / 8192));
      }
      assertEquals(dma.reports().length, 0);
      dma.unmapSg(sg, DMA_FROM_DEVICE);
      assertEquals(dma.domain!.leaves().length, 0);
      dma.removeMaster();
    },
  );
  await t.step("errors change nothing", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master);
    const p = r.soc.memory.frames.alloc(8192);
    const live = r.soc.memory.frames.liveBytes;
    expectError(() => dma.mapSg([], DMA_TO_DEVICE), "EINVAL");
    expectError(
      () => dma.mapSg([{ pa: p, length: 0 }], DMA_TO_DEVICE),
      "EINVAL",
    );
    expectError(
      () => dma.mapSg([{ pa: -4, length: 4 }], DMA_TO_DEVICE),
      "EINVAL",
    );
    expectError(
      () => dma.mapSg([{ pa: 2 ** 40, length: 4 }], DMA_TO_DEVICE),
      "ERANGE",
    );
    expectError(() => dma.mapSg([{ pa: p, length: 4 }], DMA_NONE), "EINVAL");
    // A bad entry after whole pages, after a partial page, or in a list
    // laid out with a segment boundary: named by its index.
    const page = { pa: p, length: 4096 };
    const part = { pa: p + 8, length: 100 };
    for (
      const [bad, kind] of [
        [{ pa: p + 0.5, length: 4096 }, "EINVAL"],
        [{ pa: p, length: 4096.5 }, "EINVAL"],
        [{ pa: p, length: -1 }, "EINVAL"],
        [{ pa: Number.NaN, length: 4096 }, "EINVAL"],
        [{ pa: "0x4000" as unknown as number, length: 4096 }, "EINVAL"],
        [{ pa: 2 ** 40, length: 4096 }, "ERANGE"],
        [{ pa: p + 4096, length: 2 ** 40 }, "ERANGE"],
      ] as const
    ) {
      expectError(() => dma.mapSg([page, page, bad], 1), kind, "segment 2");
      expectError(() => dma.mapSg([page, part, bad], 1), kind, "segment 2");
    }
    const r2 = dmaRig("flat");
    const bounded = createDmaMapper(r2.soc, r2.master, {
      segmentBoundary: 1 << 20,
    });
    const page2 = { pa: r2.soc.memory.frames.alloc(4096), length: 4096 };
    expectError(
      () => bounded.mapSg([page2, { pa: 2 ** 40, length: 4 }], 1),
      "ERANGE",
      "segment 1",
    );
    expectError(
      () => bounded.mapSg([page2, { pa: page2.pa, length: 0 }], 1),
      "EINVAL",
      "segment 1",
    );
    assertEquals(bounded.stats().liveMappings, 0);
    bounded.removeMaster();
    r.soc.memory.frames.failNth(1);
    expectError(
      () => dma.mapSg([{ pa: p, length: 8192 }], DMA_TO_DEVICE),
      "ENOMEM",
    );
    assertEquals(r.soc.memory.frames.liveBytes, live);
    assertEquals(dma.iova!.stats().liveRanges, 0);
    assertEquals(dma.stats().liveMappings, 0);
    dma.removeMaster();
  });
  await t.step("padded runs roll back when a later run fails", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, {
      segmentBoundary: 4 << 20,
      maxSegmentSize: 8 << 20,
    });
    const p = r.soc.memory.frames.alloc(8 << 20);
    // The second entry needs padding to the next 4 MiB; each run lands in
    // its own level-2 table, so failing the second table allocation fails
    // the second run after the first was mapped.
    const segs = [
      { pa: p, length: 4096 },
      { pa: p + (4 << 20) + 4096, length: (4 << 20) - 4095 },
    ];
    const live = r.soc.memory.frames.liveBytes;
    r.soc.memory.frames.failNth(2);
    expectError(() => dma.mapSg(segs, DMA_TO_DEVICE), "ENOMEM");
    assertEquals(dma.domain!.leaves().length, 0);
    assertEquals(r.soc.memory.frames.liveBytes, live);
    const sg = dma.mapSg(segs, DMA_TO_DEVICE);
    assertEquals(sg.dmaAddress[1]! % (4 << 20), 0);
    dma.unmapSg(sg, DMA_TO_DEVICE);
    dma.removeMaster();
  });
});

Deno.test("allocCoherent maps discontiguous frames contiguously", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master);
  const live = r.soc.memory.frames.liveBytes;
  const c = dma.allocCoherent(3 * 4096 + 5);
  assertEquals(c.size, 3 * 4096 + 5);
  assertEquals(c.dmaAddr % (16 * 1024), 0, "naturally aligned");
  for (let i = 0; i < 4; i++) {
    assertEquals(dma.domain!.iovaToPhys(c.dmaAddr + i * 4096), c.cpu.frames[i]);
  }
  assertEquals(dma.domain!.leaves()[0]!.prot, IOMMU_READ | IOMMU_WRITE);
  // Coherent: the device sees CPU writes and the CPU sees device writes, no syncs.
  dma.cpu.writeBuffer(c.cpu, pattern(64));
  assertEquals(r.master.port().readBytes(c.dmaAddr, 64), pattern(64));
  r.master.port().writeBytes(c.dmaAddr + 4096, pattern(8, 9));
  assertEquals(dma.cpu.readBuffer(c.cpu, 4096, 8), pattern(8, 9));
  dma.freeCoherent(c);
  assertEquals(r.soc.memory.frames.liveBytes, live);
  assertEquals(dma.domain!.leaves().length, 0);
  expectError(() => dma.allocCoherent(0), "EINVAL");
  r.soc.memory.frames.failNth(2);
  expectError(() => dma.allocCoherent(4 * 4096), "ENOMEM");
  assertEquals(r.soc.memory.frames.liveBytes, live);
  assertEquals(dma.iova!.stats().liveRanges, 0);
  dma.removeMaster();
});

Deno.test("no IOMMU: direct mapping and bounce buffers", async (t) => {
  await t.step("direct addresses are physical", () => {
    const r = dmaRig("direct");
    const dma = createDmaMapper(r.soc, r.master);
    const buf = dma.cpu.allocBuffer(4096);
    const addr = dma.mapSingle(buf.slice(16, 100), DMA_TO_DEVICE);
    dma.mappingError(addr);
    assertEquals(addr, buf.pa + 16);
    dma.unmapSingle(addr, 100, DMA_TO_DEVICE);
    const sg = dma.mapSg([{ pa: buf.pa, length: 64 }, {
      pa: buf.pa + 64,
      length: 64,
    }], DMA_TO_DEVICE);
    assertEquals(sg.count, 2, "direct mapping never merges");
    assertEquals(sg.dmaAddress[1], buf.pa + 64);
    dma.unmapSg(sg, DMA_TO_DEVICE);
    const c = dma.allocCoherent(8192);
    assertEquals(c.dmaAddr, c.cpu.pa);
    assert(c.cpu.contiguous);
    dma.freeCoherent(c);
    const scattered = dma.cpu.allocBuffer(8192, { contiguous: false });
    expectError(() => dma.mapSingle(scattered, DMA_TO_DEVICE), "EINVAL");
    dma.removeMaster();
  });
  await t.step("buffers above the DMA mask bounce", () => {
    const r = dmaRig("direct", { dmaBits: 24 }, { size: 64 << 20 });
    const dma = createDmaMapper(r.soc, r.master);
    // Take frames until one lies above 16 MiB.
    let high = dma.cpu.allocBuffer(4096);
    const low: typeof high[] = [];
    while (high.pa < 16 << 20) {
      low.push(high);
      high = dma.cpu.allocBuffer(4096);
    }
    for (const b of low) b.free();
    dma.cpu.writeBuffer(high, pattern(256));
    const addr = dma.mapSingle(high.slice(8, 256), DMA_BIDIRECTIONAL);
    dma.mappingError(addr);
    assert(addr + 256 <= 1 << 24, "bounce slot below the mask");
    assertEquals(addr % 4096, 8, "sub-page offset kept");
    const port = r.master.port();
    assertEquals(
      port.readBytes(addr, 4),
      pattern(256).subarray(8, 12),
      "copied in",
    );
    port.writeBytes(addr, new Uint8Array([0xaa, 0xbb]));
    dma.syncForCpu(addr, 2, DMA_BIDIRECTIONAL);
    assertEquals(dma.cpu.readBuffer(high, 8, 2), new Uint8Array([0xaa, 0xbb]));
    dma.cpu.writeBuffer(high, new Uint8Array([0xcc]), 9);
    dma.syncForDevice(addr, 2, DMA_BIDIRECTIONAL);
    assertEquals(port.readBytes(addr + 1, 1)[0], 0xcc);
    port.writeBytes(addr + 2, new Uint8Array([0xdd]));
    dma.unmapSingle(addr, 256, DMA_BIDIRECTIONAL);
    assertEquals(
      dma.cpu.readBuffer(high, 10, 1)[0],
      0xdd,
      "copied back at unmap",
    );
    const sg = dma.mapSg([{ pa: high.pa, length: 64 }], DMA_FROM_DEVICE);
    assert(sg.bounce !== null && sg.bounce[0]! >= 0);
    port.writeBytes(sg.dmaAddress[0]!, new Uint8Array([0x11]));
    dma.syncSgForCpu(sg, DMA_FROM_DEVICE);
    assertEquals(dma.cpu.readBuffer(high, 0, 1)[0], 0x11);
    port.writeBytes(sg.dmaAddress[0]!, new Uint8Array([0x22]));
    dma.unmapSg(sg, DMA_FROM_DEVICE);
    assertEquals(dma.cpu.readBuffer(high, 0, 1)[0], 0x22);
    const s = dma.stats();
    assertEquals(s.bounces, 2);
    assert(s.bounceBytes > 0);
    assertEquals(s.liveMappings, 0);
    const live = r.soc.memory.frames.liveBytes;
    dma.removeMaster();
    assert(r.soc.memory.frames.liveBytes < live, "bounce pool released");
    high.free();
  });
  await t.step("a full bounce pool is ENOMEM", () => {
    const r = dmaRig("direct", { dmaBits: 24 });
    const dma = createDmaMapper(r.soc, r.master, {
      bouncePoolSize: 8192,
      debug: false,
    });
    let high = dma.cpu.allocBuffer(16384);
    while (high.pa < 16 << 20) high = dma.cpu.allocBuffer(16384);
    expectError(() => dma.mapSingle(high, DMA_TO_DEVICE), "ENOMEM");
    assertEquals(dma.stats().liveMappings, 0);
    dma.removeMaster();
  });
});

Deno.test("DmaBuffer: views, slices and ownership", () => {
  const soc = createSoc({ memory: { size: 16 << 20 } });
  const b = DmaBuffer.alloc(soc.memory, 5000);
  assert(b.owned && b.contiguous);
  assertEquals(b.frames.length, 2);
  const s = b.slice(4000, 200);
  assertEquals(s.pa, b.pa + 4000);
  assertEquals(s.frames.length, 2);
  assertEquals(s.paAt(150), b.pa + 4150);
  expectError(() => s.free(), "EPERM");
  expectError(() => b.slice(4990, 20), "ERANGE");
  expectError(() => b.paAt(5000), "ERANGE");
  const v = DmaBuffer.fromRange(0x1ff0, 0x20);
  assertEquals([...v.frames], [0x1000, 0x2000]);
  assertEquals(v.offset, 0xff0);
  expectError(() => DmaBuffer.fromFrames([0x1000], 4096), "EINVAL");
  expectError(() => DmaBuffer.fromFrames([0x1000], 0, 4097), "ERANGE");
  expectError(() => DmaBuffer.adopt(soc.memory, [0x5000], 10), "EINVAL");
  b.free();
  expectError(() => b.free(), "EPERM");
  assertEquals(soc.memory.frames.liveBytes, 0);
  expectError(
    () => DmaBuffer.alloc(soc.memory, 4096, { limit: 2048 }),
    "ENOMEM",
  );
  assertEquals(soc.memory.frames.liveBytes, 0);
  // The mapping-error value is never a real mapping.
  assertEquals(DMA_MAPPING_ERROR, Number.MAX_SAFE_INTEGER);
});
