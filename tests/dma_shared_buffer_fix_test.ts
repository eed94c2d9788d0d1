// Shared buffers: an importer whose mapper goes away, and buffers longer
// than an importer's DMA segment limits.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { createSoc, IommuError, type Soc } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaMapper,
  type DmaMapperOptions,
  SharedDmaBuffer,
} from "../core/dma/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { pattern } from "./support/dma_rig.ts";

function system(): Soc {
  return createSoc({ memory: { base: 0x4000_0000, size: 64 << 20 } }).use(
    genericIommu(),
  );
}

// A master behind its own generic IOMMU unit, or a direct one.
function importer(
  soc: Soc,
  name: string,
  iommu: boolean,
  options: DmaMapperOptions = {},
): DmaMapper {
  const unit = iommu
    ? soc.probeUnit({
      name: `smmu-${name}`,
      compatible: ["iommukit,generic-iommu"],
      props: { "iommukit,stream-ids": 16 },
    })
    : null;
  const master = soc.addMaster({
    name,
    ports: [unit === null ? {} : { unit, streamIds: [1] }],
  });
  return createDmaMapper(soc, master, options);
}

Deno.test("shared buffer: an importer whose mapper was removed", async (t) => {
  for (const iommu of [false, true]) {
    await t.step(
      `${
        iommu ? "IOMMU" : "direct"
      }: detaches, is skipped by CPU access, and the last put frees the frames`,
      () => {
        const soc = system();
        const cam = importer(soc, "cam", iommu);
        const gpu = importer(soc, "gpu", iommu);
        const shared = SharedDmaBuffer.export(
          cam.cpu,
          cam.cpu.allocBuffer(8192),
        );
        // The GPU is attached first, so its sync would come first too.
        const b = shared.attach(gpu);
        const a = shared.attach(cam);
        const w = a.map(DMA_FROM_DEVICE);
        b.map(DMA_TO_DEVICE);
        // The CPU has the buffer's lines cached.
        shared.beginCpuAccess(DMA_BIDIRECTIONAL);
        cam.cpu.readBuffer(shared.buffer, 0, 64);
        shared.endCpuAccess(DMA_BIDIRECTIONAL);
        assertEquals(gpu.removeMaster({ force: true }).length, 1);
        assertEquals(b.sg, null, "removal tore the GPU's mapping down");
        assertEquals(b.detached, false);
        cam.port().writeBytes(w.dmaAddress[0]!, pattern(64, 3));
        shared.beginCpuAccess(DMA_FROM_DEVICE);
        assert(shared.inCpuAccess);
        assertEquals(
          cam.cpu.readBuffer(shared.buffer, 0, 64),
          pattern(64, 3),
          "the camera's attachment still synced for the CPU",
        );
        shared.endCpuAccess(DMA_FROM_DEVICE);
        assert(!shared.inCpuAccess);
        assertEquals(
          assertThrows(() => b.map(DMA_TO_DEVICE), IommuError).kind,
          "EPERM",
        );
        b.detach();
        assert(b.detached);
        assertEquals(shared.refs, 2);
        assertEquals(shared.attachments(), [a]);
        assertEquals(assertThrows(() => b.detach(), IommuError).kind, "EPERM");
        a.detach();
        assertEquals(cam.stats().liveMappings, 0);
        const live = soc.memory.frames.liveBytes;
        shared.put();
        assert(shared.released);
        assert(shared.buffer.freed);
        assertEquals(live - soc.memory.frames.liveBytes, 8192, "frames freed");
        assertEquals(cam.reports().length, 0);
      },
    );
  }
});

// A contiguous buffer of `size` bytes with a pattern the CPU wrote, shared
// and attached by `dma`.
function sharedPattern(dma: DmaMapper, size: number, sliceAt = 0) {
  const whole = dma.cpu.allocBuffer(size + sliceAt);
  const buffer = sliceAt === 0 ? whole : whole.slice(sliceAt, size);
  dma.cpu.writeBuffer(buffer, pattern(size, 5));
  const shared = SharedDmaBuffer.export(dma.cpu, buffer);
  return { whole, shared, at: shared.attach(dma) };
}

Deno.test("shared buffer: maps cut to the importer's segment limits", async (t) => {
  const cases: {
    name: string;
    options: DmaMapperOptions;
    size: number;
    sliceAt?: number;
  }[] = [
    { name: "128 KiB, default options", options: {}, size: 128 * 1024 },
    {
      name: "100 KiB at offset 100, max segment 6000 bytes",
      options: { maxSegmentSize: 6000 },
      size: 100 * 1024,
      sliceAt: 100,
    },
    {
      name: "96 KiB, 16 KiB segment boundary",
      options: { maxSegmentSize: 1 << 20, segmentBoundary: 16384 },
      size: 96 * 1024,
    },
    {
      name: "60 KiB at offset 5000, 16 KiB segment boundary",
      options: { maxSegmentSize: 1 << 20, segmentBoundary: 16384 },
      size: 60 * 1024,
      sliceAt: 5000,
    },
    {
      name: "10 KiB at offset 300, max segment 1000 bytes",
      options: { maxSegmentSize: 1000 },
      size: 10 * 1024,
      sliceAt: 300,
    },
  ];
  for (const iommu of [false, true]) {
    for (const c of cases) {
      await t.step(`${iommu ? "IOMMU" : "direct"}: ${c.name}`, () => {
        const soc = system();
        const dma = importer(soc, "gpu", iommu, c.options);
        const { shared, at } = sharedPattern(dma, c.size, c.sliceAt);
        assertEquals(shared.segments().length, 1, "physically contiguous");
        const sg = at.map(DMA_BIDIRECTIONAL);
        assertEquals(dma.reports(), []);
        let total = 0;
        const seen = new Uint8Array(c.size);
        for (let i = 0; i < sg.count; i++) {
          const addr = sg.dmaAddress[i]!, len = sg.dmaLength[i]!;
          assert(len <= dma.maxSegmentSize, `segment ${i} fits`);
          const b = dma.segmentBoundary;
          assertEquals(
            Math.floor(addr / b),
            Math.floor((addr + len - 1) / b),
            `segment ${i} stays in one boundary window`,
          );
          seen.set(dma.port().readBytes(addr, len), total);
          total += len;
        }
        assertEquals(total, c.size);
        assertEquals(seen, pattern(c.size, 5), "the device reads the data");
        if (iommu && dma.maxSegmentSize >= 4096) {
          assertEquals(
            dma.port().readBytes(sg.dmaAddress[0]!, c.size),
            pattern(c.size, 5),
            "one contiguous IOVA range",
          );
        }
        // And back: the device writes, the CPU reads after the bracket.
        let done = 0;
        for (let i = 0; i < sg.count; i++) {
          const len = sg.dmaLength[i]!;
          dma.port().writeBytes(
            sg.dmaAddress[i]!,
            pattern(c.size, 7).subarray(done, done + len),
          );
          done += len;
        }
        shared.beginCpuAccess(DMA_FROM_DEVICE);
        assertEquals(
          dma.cpu.readBuffer(shared.buffer, 0, c.size),
          pattern(c.size, 7),
        );
        shared.endCpuAccess(DMA_FROM_DEVICE);
        at.detach();
        assertEquals(dma.stats().liveMappings, 0);
        shared.put();
        assertEquals(dma.reports(), []);
        dma.removeMaster();
      });
    }
  }
});
