// Fixes found by a review of the DMA layer against the Linux facts: a
// coherent master's mapping of part of a page hid the CPU's dirty data in
// the rest of that page, a sync over an IOMMU could run outside its mapping
// inside the same IOVA page and drop the CPU's data there, and an unchecked
// mapping error was reported again at every use.
import { assertEquals, assertThrows } from "@std/assert";
import { IommuError } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
} from "../core/dma/mod.ts";
import { dmaRig } from "./support/dma_rig.ts";

Deno.test("coherent master: mapping part of a page keeps the CPU's view of the rest of it", async (t) => {
  for (const kind of ["direct", "flat"] as const) {
    await t.step(`${kind}: data cached before the map stays visible`, () => {
      const r = dmaRig(kind, { coherent: true });
      const dma = createDmaMapper(r.soc, r.master);
      const page = dma.cpu.allocBuffer(4096);
      const other = page.slice(0, 64); // CPU data, never mapped
      dma.cpu.writeBuffer(other, new Uint8Array([0x5a])); // a dirty line
      const a = dma.mapSingle(page.slice(2048, 64), DMA_TO_DEVICE);
      dma.mappingError(a);
      assertEquals(dma.cpu.readBuffer(other, 0, 1)[0], 0x5a);
      dma.unmapSingle(a, 64, DMA_TO_DEVICE);
      assertEquals(dma.cpu.readBuffer(other, 0, 1)[0], 0x5a);
      dma.removeMaster();
    });
    await t.step(`${kind}: a store made while mapped is not lost`, () => {
      const r = dmaRig(kind, { coherent: true });
      const dma = createDmaMapper(r.soc, r.master);
      const page = dma.cpu.allocBuffer(4096);
      const other = page.slice(0, 64);
      dma.cpu.writeBuffer(other, new Uint8Array([0x11]));
      const a = dma.mapSingle(page.slice(2048, 64), DMA_FROM_DEVICE);
      dma.mappingError(a);
      dma.cpu.writeBuffer(other, new Uint8Array([0x22])); // the newer store
      dma.unmapSingle(a, 64, DMA_FROM_DEVICE);
      assertEquals(dma.cpu.readBuffer(other, 0, 1)[0], 0x22);
      dma.cpu.clean(page.pa, 4096);
      assertEquals(r.soc.memory.readBytes(page.pa, 1)[0], 0x22);
      dma.removeMaster();
    });
  }
});

Deno.test("IOMMU master: a sync running outside its mapping, inside the same IOVA page, is ENOENT and keeps the CPU's data", async (t) => {
  for (const debug of [false, { mode: "record" as const }]) {
    await t.step(`debug ${JSON.stringify(debug)}`, () => {
      const r = dmaRig("flat");
      const dma = createDmaMapper(r.soc, r.master, { debug });
      const page = dma.cpu.allocBuffer(4096);
      const a = dma.mapSingle(page.slice(0, 2048), DMA_FROM_DEVICE);
      dma.mappingError(a);
      const tail = page.slice(2048, 64); // CPU data, never mapped
      dma.cpu.writeBuffer(tail, new Uint8Array(64).fill(0x5a));
      const e = assertThrows(
        () => dma.syncForCpu(a, 4096, DMA_FROM_DEVICE),
        IommuError,
      );
      assertEquals(e.kind, "ENOENT", e.message);
      assertEquals(dma.stats().syncs, 0);
      assertEquals(dma.cpu.readBuffer(tail, 0, 1)[0], 0x5a);
      // Inside the mapping, a sync still works.
      dma.syncForCpu(a + 1024, 1024, DMA_FROM_DEVICE);
      assertEquals(dma.stats().syncs, 1);
      dma.unmapSingle(a, 2048, DMA_FROM_DEVICE);
      dma.removeMaster();
    });
  }
  await t.step("a sync starting before a mapping, in its first page", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, { debug: false });
    const page = dma.cpu.allocBuffer(4096);
    const a = dma.mapSingle(page.slice(2048, 2048), DMA_FROM_DEVICE);
    dma.cpu.writeBuffer(page, new Uint8Array([0x5a])); // before the mapping
    assertThrows(() => dma.syncForCpu(a - 2048, 4096, DMA_FROM_DEVICE));
    assertEquals(dma.cpu.readBuffer(page, 0, 1)[0], 0x5a);
    assertEquals(dma.stats().syncs, 0);
  });
  await t.step("an sg entry that does not fill its page", () => {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master, { debug: false });
    const page = dma.cpu.allocBuffer(4096);
    const sg = dma.mapSg([{ pa: page.pa, length: 2048 }], DMA_FROM_DEVICE);
    dma.cpu.writeBuffer(page, new Uint8Array([0x5a]), 2048);
    const e = assertThrows(
      () => dma.syncForCpu(sg.dmaAddress[0]!, 4096, DMA_FROM_DEVICE),
      IommuError,
    );
    assertEquals(e.kind, "ENOENT");
    assertEquals(dma.cpu.readBuffer(page, 2048, 1)[0], 0x5a);
    dma.syncForCpu(sg.dmaAddress[0]!, 2048, DMA_FROM_DEVICE);
    dma.unmapSg(sg, DMA_FROM_DEVICE);
  });
});

Deno.test("debug: an unchecked mapping error is reported once, at the mapping's first use", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master, { debug: { mode: "record" } });
  const buf = dma.cpu.allocBuffer(4096);
  const a = dma.mapSingle(buf, DMA_TO_DEVICE); // mappingError() never called
  for (let i = 0; i < 3; i++) dma.syncForDevice(a, 64, DMA_TO_DEVICE);
  dma.unmapSingle(a, 4096, DMA_TO_DEVICE);
  assertEquals(dma.reports().map((x) => x.kind), ["map-error-unchecked"]);
  // Unmapped without any sync: reported at the unmap, once.
  const b = dma.mapSingle(buf, DMA_TO_DEVICE);
  dma.unmapSingle(b, 4096, DMA_TO_DEVICE);
  assertEquals(dma.reports().map((x) => x.kind), [
    "map-error-unchecked",
    "map-error-unchecked",
  ]);
});

Deno.test("debug: a skipCpuSync mapping is exempt from its own overlap check but still tracked", async (t) => {
  for (const kind of ["flat", "direct"] as const) {
    await t.step(kind, () => {
      const r = dmaRig(kind);
      const dma = createDmaMapper(r.soc, r.master, {
        debug: { mode: "record" },
      });
      const b = dma.cpu.allocBuffer(4096);
      // First the exempt mapping, then one without the attribute on the
      // same cache line: the second is reported.
      const a = dma.mapSingle(b.slice(0, 32), DMA_FROM_DEVICE, {
        skipCpuSync: true,
      });
      dma.mappingError(a);
      assertEquals(dma.reports(), []);
      const c = dma.mapSingle(b.slice(32, 32), DMA_FROM_DEVICE);
      dma.mappingError(c);
      assertEquals(dma.reports().map((x) => x.kind), ["cacheline-overlap"]);
      dma.unmapSingle(c, 32, DMA_FROM_DEVICE);
      // The other order: the exempt mapping made second is not reported.
      const s = dma.mapSg(
        [{ pa: b.pa + 128, length: 32 }],
        DMA_FROM_DEVICE,
        { skipCpuSync: true },
      );
      const d = dma.mapSingle(b.slice(160, 32), DMA_FROM_DEVICE, {
        skipCpuSync: true,
      });
      dma.mappingError(d);
      assertEquals(dma.reports().length, 1);
      dma.unmapSingle(d, 32, DMA_FROM_DEVICE, { skipCpuSync: true });
      dma.unmapSg(s, DMA_FROM_DEVICE, { skipCpuSync: true });
      dma.unmapSingle(a, 32, DMA_FROM_DEVICE, { skipCpuSync: true });
      dma.removeMaster();
    });
  }
});
