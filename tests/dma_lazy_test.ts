// Strict against lazy invalidation: the lazy flush queue leaves a window in
// which a device still reaches unmapped memory through its IOTLB; the
// mapper measures it.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { IommuError } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  FlushQueue,
} from "../core/dma/mod.ts";
import { dmaRig, pattern } from "./support/dma_rig.ts";

// Map, let the device use it (the IOTLB caches it), unmap, and let the
// device try again `tries` times.
function scenario(
  policy: "strict" | "lazy",
  kind: "cached" | "flat" = "cached",
) {
  const r = dmaRig(kind);
  const dma = createDmaMapper(r.soc, r.master, { policy, staleWindow: true });
  const buf = dma.cpu.allocBuffer(8192);
  const port = r.master.port();
  const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
  dma.mappingError(addr);
  port.writeBytes(addr, pattern(16));
  port.readBytes(addr + 4096, 16);
  dma.unmapSingle(addr, 8192, DMA_BIDIRECTIONAL);
  const results: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    results.push(port.write(addr, pattern(16, 50 + i)) === null);
  }
  results.push(port.read(addr + 4096, new Uint8Array(16)) === null);
  return { r, dma, buf, addr, results };
}

Deno.test("lazy mode: unmapped IOVAs stay reachable until the flush; the stale window is measured", () => {
  const { r, dma, buf, addr, results } = scenario("lazy");
  assertEquals(results, [true, true, true, true], "the IOTLB still translated");
  const s = dma.stats();
  assertEquals(s.staleAccesses, 4);
  assertEquals(s.staleBytes, 64);
  assertEquals(s.pendingUnmaps, 1);
  assertEquals(dma.domain!.iovaToPhys(addr), -1, "page tables already cleared");
  // The device really wrote freed-for-reuse memory.
  assertEquals(r.soc.memory.readBytes(buf.pa, 16), pattern(16, 52));
  assert(
    dma.iova!.find(addr) !== undefined,
    "IOVA not reusable before the flush",
  );
  assertEquals(dma.advanceTime(9), 0);
  assertEquals(dma.advanceTime(1), 1, "the 10 ms timer flushed");
  assertEquals(
    dma.iova!.find(addr),
    undefined,
    "IOVA released after the flush",
  );
  assert(r.master.port().write(addr, pattern(4)) !== null, "now it faults");
  const after = dma.stats();
  assertEquals(after.staleAccesses, 4);
  assertEquals(after.flushes, 1);
  assertEquals(after.pendingUnmaps, 0);
  assertEquals(dma.now, 10);
  dma.removeMaster();
});

Deno.test("strict mode: the stale window is zero", () => {
  const { dma, results } = scenario("strict");
  assertEquals(results, [false, false, false, false]);
  assertEquals(dma.stats().staleAccesses, 0);
  assertEquals(dma.stats().pendingUnmaps, 0);
  assertEquals(dma.stats().flushes, 0);
  assertEquals(dma.advanceTime(100), 0);
  dma.removeMaster();
});

Deno.test("lazy mode without an IOTLB: accesses to queued IOVAs fault and are counted apart", () => {
  const { dma, results } = scenario("lazy", "flat");
  assertEquals(results, [false, false, false, false]);
  assertEquals(dma.stats().staleAccesses, 0);
  assertEquals(dma.stats().staleFaults, 4);
  dma.removeMaster();
});

Deno.test("lazy mode: a full queue flushes before queuing more", () => {
  const r = dmaRig("cached");
  const dma = createDmaMapper(r.soc, r.master, {
    policy: "lazy",
    flushQueueSize: 4,
    flushTimeoutMs: 1000,
  });
  const buf = dma.cpu.allocBuffer(4096);
  const addrs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const a = dma.mapSingle(buf, DMA_TO_DEVICE);
    dma.mappingError(a);
    addrs.push(a);
  }
  const live = r.soc.memory.frames.liveBytes;
  for (let i = 0; i < 4; i++) dma.unmapSingle(addrs[i]!, 4096, DMA_TO_DEVICE);
  assertEquals(dma.stats().pendingUnmaps, 4);
  assertEquals(dma.stats().flushes, 0);
  dma.unmapSingle(addrs[4]!, 4096, DMA_TO_DEVICE);
  assertEquals(
    dma.stats().flushes,
    1,
    "the fifth unmap flushed the first four",
  );
  assertEquals(dma.stats().pendingUnmaps, 1);
  assertEquals(dma.iova!.stats().liveRanges, 1);
  // The level-2 table emptied by the unmaps is freed only by a flush.
  assertEquals(r.soc.memory.frames.liveBytes, live);
  assertEquals(dma.flush(), 1);
  assertEquals(dma.iova!.stats().liveRanges, 0);
  assertEquals(r.soc.memory.frames.liveBytes, live - 4096);
  assertEquals(dma.flush(), 0, "nothing left to flush");
  dma.removeMaster();
});

Deno.test("lazy mode: removal flushes what is queued", () => {
  const r = dmaRig("cached");
  const before = r.soc.memory.frames.liveBytes;
  const dma = createDmaMapper(r.soc, r.master, { policy: "lazy" });
  const buf = dma.cpu.allocBuffer(4096);
  const a = dma.mapSingle(buf, DMA_TO_DEVICE);
  dma.mappingError(a);
  dma.unmapSingle(a, 4096, DMA_TO_DEVICE);
  dma.removeMaster();
  buf.free();
  assertEquals(r.soc.memory.frames.liveBytes, before);
});

Deno.test("strict mode watches ports only when asked (zero cost otherwise)", () => {
  const r = dmaRig("cached");
  const quiet = createDmaMapper(r.soc, r.master);
  const port = r.master.port();
  // No observer installed: another one can take the port.
  port.observe(() => {});
  port.observe(null);
  quiet.removeMaster();
  const watching = createDmaMapper(r.soc, r.master, { staleWindow: true });
  assertEquals(
    assertThrows(() => port.observe(() => {}), IommuError).kind,
    "EBUSY",
  );
  watching.removeMaster();
  port.observe(() => {}); // released at removal
  port.observe(null);
});

Deno.test("direct masters are always strict", () => {
  const r = dmaRig("direct");
  const dma = createDmaMapper(r.soc, r.master, { policy: "lazy" });
  assertEquals(dma.policy, "strict");
  assertEquals(dma.flush(), 0);
  assertEquals(dma.advanceTime(50), 0);
  assertThrows(() => dma.advanceTime(-1), IommuError);
  dma.removeMaster();
});

Deno.test("FlushQueue: capacity, timer and overlap", () => {
  const q = new FlushQueue(2, 5);
  assertEquals(q.deadline, Infinity);
  q.push(0x1000, 0x1000);
  assertEquals(q.deadline, 5);
  q.advance(3);
  q.push(0x4000, 0x2000);
  assertEquals(q.deadline, 5, "armed once");
  assert(q.full);
  assertEquals(
    assertThrows(() => q.push(0x9000, 0x1000), IommuError).kind,
    "ENOSPC",
  );
  assertEquals(q.overlap(0x1800, 0x3000), 0x800 + 0x800);
  assertEquals(q.overlap(0x2000, 0x2000), 0);
  assertEquals(q.advance(2), true);
  const seen: number[] = [];
  assertEquals(q.drain((iova) => seen.push(iova)), 2);
  assertEquals(seen, [0x1000, 0x4000]);
  assertEquals(q.length, 0);
  assertEquals(q.deadline, Infinity);
  for (const bad of [() => new FlushQueue(0), () => new FlushQueue(4, 0)]) {
    const e = assertThrows(bad, IommuError);
    assertEquals(e.kind, "EINVAL");
  }
  const e = assertThrows(() => q.advance(-1), IommuError);
  assertEquals(e.kind, "EINVAL");
});
