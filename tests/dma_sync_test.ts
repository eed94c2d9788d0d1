// The non-coherent failure modes of the reference (§6.4), each produced by a
// missing or wrong sync and cured by the right one; coherent masters need
// none.
import { assert, assertEquals, assertNotEquals } from "@std/assert";
import {
  cpuCacheOf,
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
} from "../core/dma/mod.ts";
import { dmaRig, pattern } from "./support/dma_rig.ts";

for (const kind of ["flat", "direct"] as const) {
  Deno.test(`${kind}: a missing syncForCpu reads stale data on a non-coherent master, fresh data on a coherent one`, () => {
    for (const coherent of [false, true]) {
      const r = dmaRig(kind, { coherent });
      const dma = createDmaMapper(r.soc, r.master);
      const buf = dma.cpu.allocBuffer(4096);
      // The CPU looked at the buffer before (its lines are cached, clean).
      assertEquals(dma.cpu.readBuffer(buf, 0, 64), new Uint8Array(64));
      const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
      dma.mappingError(addr);
      r.master.port().writeBytes(addr, pattern(64, 5));
      const seen = dma.cpu.readBuffer(buf, 0, 64); // no syncForCpu
      if (coherent) {
        assertEquals(seen, pattern(64, 5), "a coherent master needs no sync");
      } else {
        assertEquals(
          seen,
          new Uint8Array(64),
          "stale: the CPU read its cached line",
        );
        dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
        assertEquals(dma.cpu.readBuffer(buf, 0, 64), pattern(64, 5));
      }
      dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
      assertEquals(dma.cpu.readBuffer(buf, 0, 64), pattern(64, 5));
      dma.removeMaster();
    }
  });
}

Deno.test("missing clean before a to-device transfer: the device reads stale RAM", () => {
  for (const skip of [true, false]) {
    const r = dmaRig("flat");
    const dma = createDmaMapper(r.soc, r.master);
    const buf = dma.cpu.allocBuffer(4096);
    dma.cpu.writeBuffer(buf, pattern(128, 3)); // dirty lines only
    const addr = dma.mapSingle(buf, DMA_TO_DEVICE, { skipCpuSync: skip });
    dma.mappingError(addr);
    const got = r.master.port().readBytes(addr, 128);
    if (skip) assertEquals(got, new Uint8Array(128), "device saw the old RAM");
    else assertEquals(got, pattern(128, 3));
    dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
    dma.removeMaster();
  }
});

Deno.test("speculative fills during the transfer: an invalidate at map is not enough", () => {
  const r = dmaRig("flat");
  cpuCacheOf(r.soc, { arch: "arm32", speculation: 1, seed: 7 });
  const dma = createDmaMapper(r.soc, r.master);
  const buf = dma.cpu.allocBuffer(4096);
  const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
  dma.mappingError(addr);
  // arm32 invalidated at map, then the prefetcher pulled the (old) lines in.
  assertEquals(dma.cpu.lineState(buf.pa), "clean");
  assert(dma.cpu.counters().speculativeFills >= 64);
  r.master.port().writeBytes(addr, pattern(256, 9));
  assertEquals(
    dma.cpu.readBuffer(buf, 0, 256),
    new Uint8Array(256),
    "stale prefetched lines",
  );
  dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
  assertEquals(dma.cpu.readBuffer(buf, 0, 256), pattern(256, 9));
  dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
  dma.removeMaster();
});

Deno.test("dirty lines written back during a from-device transfer overwrite the device's data", () => {
  for (const skip of [true, false]) {
    const r = dmaRig("direct");
    const dma = createDmaMapper(r.soc, r.master);
    const buf = dma.cpu.allocBuffer(4096);
    dma.cpu.writeBuffer(buf, pattern(64, 1)); // dirty
    const addr = dma.mapSingle(buf, DMA_FROM_DEVICE, { skipCpuSync: skip });
    dma.mappingError(addr);
    r.master.port().writeBytes(addr, pattern(64, 2));
    dma.cpu.writeBackAll(); // natural evictions while the device owns it
    const ram = r.soc.memory.readBytes(buf.pa, 64);
    if (skip) {
      assertEquals(ram, pattern(64, 1), "eviction clobbered the DMA data");
    } else assertEquals(ram, pattern(64, 2));
    dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE, { skipCpuSync: skip });
    dma.removeMaster();
  }
});

Deno.test("arm32 invalidate-at-map loses CPU bytes the device does not overwrite; arm64 clean keeps them", () => {
  for (const arch of ["arm32", "arm64"] as const) {
    const r = dmaRig("flat");
    cpuCacheOf(r.soc, { arch });
    const dma = createDmaMapper(r.soc, r.master);
    const buf = dma.cpu.allocBuffer(4096);
    dma.cpu.writeBuffer(buf, pattern(128, 4)); // header the device keeps
    const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
    dma.mappingError(addr);
    r.master.port().writeBytes(addr + 64, pattern(64, 8)); // second line only
    dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
    const head = dma.cpu.readBuffer(buf, 0, 64);
    if (arch === "arm32") assertEquals(head, new Uint8Array(64), "lost");
    else assertEquals(head, pattern(128, 4).subarray(0, 64));
    assertEquals(dma.cpu.readBuffer(buf, 64, 64), pattern(64, 8));
    dma.removeMaster();
  }
});

Deno.test("cache-line sharing: syncing one buffer discards the CPU's write to its neighbour", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master);
  const page = dma.cpu.allocBuffer(4096);
  const rx = page.slice(0, 32); // device writes here
  const meta = page.slice(32, 32); // CPU writes here, same line
  const addr = dma.mapSingle(rx, DMA_FROM_DEVICE);
  dma.mappingError(addr);
  dma.cpu.writeBuffer(meta, pattern(32, 6)); // line now dirty in the cache
  r.master.port().writeBytes(addr, pattern(32, 7));
  dma.unmapSingle(addr, 32, DMA_FROM_DEVICE); // invalidates the shared line
  assertEquals(dma.cpu.readBuffer(rx), pattern(32, 7));
  assertNotEquals(
    dma.cpu.readBuffer(meta),
    pattern(32, 6),
    "the CPU's write is gone",
  );
  dma.removeMaster();
});

Deno.test("reusing a streaming mapping with syncs in both directions", () => {
  for (const kind of ["flat", "direct"] as const) {
    const r = dmaRig(kind);
    const dma = createDmaMapper(r.soc, r.master);
    const buf = dma.cpu.allocBuffer(8192);
    const port = r.master.port();
    const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
    dma.mappingError(addr);
    for (let round = 1; round <= 3; round++) {
      port.writeBytes(addr + 4000, pattern(200, round));
      dma.syncForCpu(addr + 4000, 200, DMA_BIDIRECTIONAL); // a sub-range
      assertEquals(dma.cpu.readBuffer(buf, 4000, 200), pattern(200, round));
      dma.cpu.writeBuffer(buf, pattern(100, round + 50), 10);
      dma.syncForDevice(addr, 8192, DMA_BIDIRECTIONAL);
      assertEquals(port.readBytes(addr + 10, 100), pattern(100, round + 50));
    }
    assertEquals(dma.stats().syncs, 6);
    dma.unmapSingle(addr, 8192, DMA_BIDIRECTIONAL);
    dma.removeMaster();
  }
});

Deno.test("scatter-gather syncs maintain every entry", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master);
  const a = dma.cpu.allocBuffer(4096);
  const b = dma.cpu.allocBuffer(4096);
  dma.cpu.readBuffer(a, 0, 64);
  dma.cpu.readBuffer(b, 0, 64);
  const sg = dma.mapSg(
    [{ pa: a.pa, length: 4096 }, { pa: b.pa, length: 4096 }],
    DMA_FROM_DEVICE,
  );
  assertEquals(sg.count, 1);
  r.master.port().writeBytes(sg.dmaAddress[0]!, pattern(8192, 2));
  assertEquals(
    dma.cpu.readBuffer(b, 0, 4),
    new Uint8Array(4),
    "stale before the sync",
  );
  dma.syncSgForCpu(sg, DMA_FROM_DEVICE);
  assertEquals(dma.cpu.readBuffer(a, 0, 64), pattern(8192, 2).subarray(0, 64));
  assertEquals(
    dma.cpu.readBuffer(b, 0, 64),
    pattern(8192, 2).subarray(4096, 4160),
  );
  dma.syncSgForDevice(sg, DMA_FROM_DEVICE);
  dma.unmapSg(sg, DMA_FROM_DEVICE);
  dma.removeMaster();
});
