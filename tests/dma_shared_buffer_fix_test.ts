// Shared buffers: an importer whose mapper goes away.
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
