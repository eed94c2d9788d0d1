// The adapter over the real plugins: a multi-port master behind two Samsung
// System MMUs (one IOVA space), the central generic IOMMU, and a buffer
// shared between masters behind the two plugins.
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  createSoc,
  IommuError,
  type IommuUnit,
  type Soc,
} from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  SharedDmaBuffer,
} from "../core/dma/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { pattern } from "./support/dma_rig.ts";

const RAM = { base: 0x4000_0000, size: 256 << 20 };

function mfcSystem(): { soc: Soc; left: IommuUnit; right: IommuUnit } {
  const soc = createSoc({ memory: RAM }).use(samsungSysmmu());
  const left = soc.probeUnit({
    name: "sysmmu_mfc_l",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const right = soc.probeUnit({
    name: "sysmmu_mfc_r",
    compatible: ["samsung,exynos-sysmmu"],
  });
  return { soc, left, right };
}

function count(unit: IommuUnit, key: string): number {
  return unit.hardware.counters()[key] ?? 0;
}

Deno.test("MFC: two ports behind two System MMUs share one IOVA space", async (t) => {
  await t.step(
    "strict: every map through every port, every unmap invalidates both units",
    () => {
      const { soc, left, right } = mfcSystem();
      const mfc = soc.addMaster({
        name: "mfc",
        ports: [{ name: "left", unit: left }, { name: "right", unit: right }],
      });
      const dma = createDmaMapper(soc, mfc, { staleWindow: true });
      assertEquals(
        dma.domain!.attachments().map((a) => a.unit.name),
        ["sysmmu_mfc_l", "sysmmu_mfc_r"],
      );
      const buf = dma.cpu.allocBuffer(64 * 1024, { contiguous: false });
      const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
      dma.mappingError(addr);
      assertEquals(addr % 0x20000, 0, "v3.3 IOVA alignment honoured");
      mfc.port("left").writeBytes(addr + 5000, pattern(300));
      assertEquals(mfc.port("right").readBytes(addr + 5000, 300), pattern(300));
      dma.syncForCpu(addr, buf.size, DMA_BIDIRECTIONAL);
      assertEquals(dma.cpu.readBuffer(buf, 5000, 300), pattern(300));
      const second = dma.mapSingle(buf, DMA_TO_DEVICE);
      dma.mappingError(second);
      assert(
        second + 64 * 1024 + 0x20000 <= addr ||
          addr + 64 * 1024 + 0x20000 <= second,
        "v3.3 guard gap between ranges",
      );
      const before = [left, right].map((u) =>
        count(u, "flushEntry") + count(u, "flushRange") + count(u, "flushAll")
      );
      dma.unmapSingle(addr, buf.size, DMA_BIDIRECTIONAL);
      const after = [left, right].map((u) =>
        count(u, "flushEntry") + count(u, "flushRange") + count(u, "flushAll")
      );
      assert(
        after[0]! > before[0]! && after[1]! > before[1]!,
        "both units invalidated",
      );
      assert(mfc.port("right").read(addr, new Uint8Array(4)) !== null);
      assert(mfc.port("left").write(addr, new Uint8Array(4)) !== null);
      assertEquals(dma.stats().staleAccesses, 0);
      dma.unmapSingle(second, buf.size, DMA_TO_DEVICE);
      dma.removeMaster();
      buf.free();
    },
  );
  await t.step(
    "lazy: both ports see the stale window until one flush reaches both units",
    () => {
      const { soc, left, right } = mfcSystem();
      const mfc = soc.addMaster({
        name: "mfc",
        ports: [{ name: "left", unit: left }, { name: "right", unit: right }],
      });
      const dma = createDmaMapper(soc, mfc, { policy: "lazy" });
      const buf = dma.cpu.allocBuffer(8192);
      const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
      dma.mappingError(addr);
      mfc.port("left").writeBytes(addr, pattern(8));
      mfc.port("right").writeBytes(addr + 4096, pattern(8));
      dma.unmapSingle(addr, 8192, DMA_FROM_DEVICE);
      // Both TLBs still hold the translations.
      assertEquals(mfc.port("left").write(addr, pattern(8, 2)), null);
      assertEquals(mfc.port("right").write(addr + 4096, pattern(8, 3)), null);
      assertEquals(dma.stats().staleAccesses, 2);
      const flushes = [count(left, "flushAll"), count(right, "flushAll")];
      dma.advanceTime(10);
      assertEquals(count(left, "flushAll"), flushes[0]! + 1);
      assertEquals(count(right, "flushAll"), flushes[1]! + 1);
      assert(mfc.port("left").write(addr, pattern(8)) !== null);
      assert(mfc.port("right").write(addr + 4096, pattern(8)) !== null);
      assertEquals(dma.stats().staleAccesses, 2, "closed after the flush");
      dma.removeMaster();
    },
  );
});

Deno.test("generic central IOMMU: stream IDs, sg and coherent memory", () => {
  const soc = createSoc({ memory: RAM }).use(genericIommu());
  const smmu = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const nic = soc.addMaster({
    name: "nic",
    ports: [{ unit: smmu, streamIds: [7] }],
    dmaBits: 40,
  });
  const dma = createDmaMapper(soc, nic, { policy: "lazy" });
  assertEquals(dma.domain!.attachments()[0]!.streamIds, [7]);
  // Keeps the last-level table alive: this plugin invalidates at once when
  // an unmap frees a table (its walk caches could point at it).
  const keep = dma.allocCoherent(4096);
  const a = dma.cpu.allocBuffer(3 * 4096, { contiguous: false });
  const sg = dma.mapSg(
    [...a.frames].map((pa) => ({ pa, length: 4096 })),
    DMA_FROM_DEVICE,
  );
  assertEquals(sg.count, 1);
  nic.port().writeBytes(sg.dmaAddress[0]!, pattern(3 * 4096));
  dma.syncSgForCpu(sg, DMA_FROM_DEVICE);
  assertEquals(dma.cpu.readBuffer(a), pattern(3 * 4096));
  dma.unmapSg(sg, DMA_FROM_DEVICE);
  // The central unit's IOTLB keeps the stale entry until the flush.
  assertEquals(nic.port().write(sg.dmaAddress[0]!, pattern(4)), null);
  assertEquals(dma.stats().staleAccesses, 1);
  dma.flush();
  assert(nic.port().write(sg.dmaAddress[0]!, pattern(4)) !== null);
  const c = dma.allocCoherent(5 * 4096);
  dma.cpu.writeBuffer(c.cpu, pattern(64));
  assertEquals(nic.port().readBytes(c.dmaAddr, 64), pattern(64));
  dma.freeCoherent(c);
  dma.freeCoherent(keep);
  dma.removeMaster();
  a.free();
});

Deno.test("shared buffer across two plugins: own domains and IOVAs, refcounts, CPU brackets", () => {
  const soc = createSoc({ memory: RAM }).use(samsungSysmmu()).use(
    genericIommu(),
  );
  const camMmu = soc.probeUnit({
    name: "sysmmu_cam",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const smmu = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const camera = soc.addMaster({ name: "camera", ports: [{ unit: camMmu }] });
  const gpu = soc.addMaster({
    name: "gpu",
    ports: [{ unit: smmu, streamIds: [3] }],
  });
  const cam = createDmaMapper(soc, camera);
  const gfx = createDmaMapper(soc, gpu);
  const live = soc.memory.frames.liveBytes;
  const buf = cam.cpu.allocBuffer(3 * 4096, { contiguous: false });
  const shared = SharedDmaBuffer.export(cam.cpu, buf, { name: "frame0" });
  assertEquals(shared.refs, 1);
  const a = shared.attach(cam);
  const b = shared.attach(gfx);
  assertEquals(shared.refs, 3);
  assertEquals(shared.attachments().length, 2);
  assertThrows(() => shared.attach(cam), IommuError);
  const w = a.map(DMA_FROM_DEVICE);
  const r = b.map(DMA_TO_DEVICE);
  assert(cam.domain !== gfx.domain);
  assertEquals(w.count, 1, "one contiguous range for the camera");
  assertEquals(r.count, 1, "and one for the GPU");
  assertEquals(cam.domain!.iovaToPhys(w.dmaAddress[0]! + 4096), buf.frames[1]);
  assertEquals(gfx.domain!.iovaToPhys(r.dmaAddress[0]! + 4096), buf.frames[1]);
  // The CPU looked at the buffer earlier: its lines are cached.
  shared.beginCpuAccess(DMA_BIDIRECTIONAL);
  cam.cpu.readBuffer(buf, 0, 128);
  shared.endCpuAccess(DMA_BIDIRECTIONAL);
  cam.cpu.readBuffer(buf, 0, 128);
  camera.port().writeBytes(w.dmaAddress[0]!, pattern(128, 1));
  assertEquals(
    cam.cpu.readBuffer(buf, 0, 4),
    new Uint8Array(4),
    "stale without the bracket",
  );
  shared.beginCpuAccess(DMA_BIDIRECTIONAL);
  assertEquals(cam.cpu.readBuffer(buf, 0, 128), pattern(128, 1));
  cam.cpu.writeBuffer(buf, pattern(16, 9), 4096 + 100); // the CPU edits
  shared.endCpuAccess(DMA_BIDIRECTIONAL);
  assertEquals(
    gpu.port().readBytes(r.dmaAddress[0]! + 4096 + 100, 16),
    pattern(16, 9),
  );
  assertEquals(gpu.port().readBytes(r.dmaAddress[0]!, 128), pattern(128, 1));
  assertThrows(() => shared.endCpuAccess(DMA_BIDIRECTIONAL), IommuError);
  assertEquals(cam.reports().length + gfx.reports().length, 0);
  a.detach();
  assertEquals(cam.stats().liveMappings, 0, "detach unmapped");
  assertThrows(() => a.map(DMA_FROM_DEVICE), IommuError);
  b.unmap();
  assertThrows(() => b.unmap(), IommuError);
  b.detach();
  assertEquals(shared.refs, 1);
  shared.put();
  assert(shared.released);
  assert(buf.freed, "frames freed with the last reference");
  assertThrows(() => shared.attach(gfx), IommuError);
  assertThrows(() => shared.put(), IommuError);
  cam.removeMaster();
  gfx.removeMaster();
  assert(soc.memory.frames.liveBytes < live, "domains freed too");
});

Deno.test("shared buffer: refusals", () => {
  const soc = createSoc({ memory: { size: 16 << 20 } });
  const other = createSoc({ memory: { size: 16 << 20 } });
  const m = createDmaMapper(soc, soc.addMaster({ name: "m", ports: [{}] }));
  const o = createDmaMapper(other, other.addMaster({ name: "o", ports: [{}] }));
  const buf = m.cpu.allocBuffer(4096);
  const shared = SharedDmaBuffer.export(m.cpu, buf);
  const kind = (fn: () => unknown) => assertThrows(fn, IommuError).kind;
  assertEquals(kind(() => shared.attach(o)), "EINVAL");
  const att = shared.attach(m);
  att.map(DMA_TO_DEVICE);
  assertEquals(kind(() => att.map(DMA_TO_DEVICE)), "EBUSY");
  shared.beginCpuAccess(DMA_TO_DEVICE);
  assertEquals(kind(() => shared.beginCpuAccess(DMA_TO_DEVICE)), "EBUSY");
  shared.endCpuAccess(DMA_TO_DEVICE);
  assertEquals(kind(() => shared.beginCpuAccess(3 as 0)), "EINVAL");
  att.detach();
  assertEquals(kind(() => att.detach()), "EPERM");
  assertEquals(shared.get().refs, 2);
  shared.put();
  shared.put();
  assert(buf.freed);
  const view = SharedDmaBuffer.export(m.cpu, buf.slice(0, 10));
  assertEquals(view.refs, 1);
  assertEquals(
    kind(() =>
      SharedDmaBuffer.export(m.cpu, m.cpu.allocBuffer(4096).slice(0, 8), {
        freeOnRelease: true,
      })
    ),
    "EINVAL",
  );
  m.removeMaster();
  assertEquals(
    kind(() =>
      SharedDmaBuffer.export(m.cpu, m.cpu.allocBuffer(4096)).attach(m)
    ),
    "EPERM",
  );
  o.removeMaster();
});
