// Bounce slots of no-IOMMU masters never hand another mapping's bytes to
// the CPU, a pool too small for a buffer is ENOMEM naming the bounce pool,
// coherent allocations are zeroed whatever an earlier user left in the CPU
// cache, and malformed mapSingle arguments are EINVAL with nothing changed.
import { assert, assertEquals } from "@std/assert";
import {
  createDmaMapper,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  DmaBuffer,
  type DmaMapper,
  type DmaMapperOptions,
} from "../core/dma/mod.ts";
import { dmaRig, pattern } from "./support/dma_rig.ts";
import { expectError } from "./support/assertions.ts";

const HIGH = 0x1_0000_0000; // above a 32-bit master's reach

// A 32-bit no-IOMMU master with RAM on both sides of 4 GiB: buffers at
// HIGH and above bounce through the pool below 4 GiB.
function highRig(options: DmaMapperOptions = {}): DmaMapper {
  const r = dmaRig("direct", { dmaBits: 32 }, {
    base: 0xf000_0000,
    size: 512 << 20,
  });
  return createDmaMapper(r.soc, r.master, options);
}

// Leaves `old`'s bytes in a bounce slot (a finished to-device transfer)
// and returns the slot's DMA address.
function dirtySlot(dma: DmaMapper, old: DmaBuffer): number {
  dma.cpu.writeBuffer(old, new Uint8Array(old.size).fill(0x5e));
  const a = dma.mapSingle(old, DMA_TO_DEVICE);
  dma.mappingError(a);
  dma.unmapSingle(a, old.size, DMA_TO_DEVICE);
  return a;
}

// What a from-device buffer must hold after the device wrote 16 bytes at
// its start: those bytes, then its own earlier contents.
function expected(own: Uint8Array, written: Uint8Array): Uint8Array {
  const out = own.slice();
  out.set(written, 0);
  return out;
}

Deno.test("bounce: a from-device single mapping returns the buffer's own bytes where the device did not write", () => {
  for (const skipAtMap of [false, true]) {
    const dma = highRig();
    const old = DmaBuffer.fromRange(HIGH, 4096);
    const buf = DmaBuffer.fromRange(HIGH + 0x1000, 4096);
    const own = pattern(4096, 3);
    dma.cpu.writeBuffer(buf, own);
    const slot = dirtySlot(dma, old);
    const addr = dma.mapSingle(buf, DMA_FROM_DEVICE, {
      skipCpuSync: skipAtMap,
    });
    dma.mappingError(addr);
    assertEquals(addr, slot, "the same slot is reused");
    const written = new Uint8Array(16).fill(0x11);
    dma.port().writeBytes(addr, written);
    if (skipAtMap) {
      // The caller syncs explicitly: syncForCpu, then unmap without copy.
      dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
      dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE, { skipCpuSync: true });
    } else dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
    const got = dma.cpu.readBuffer(buf);
    assertEquals(got, expected(own, written));
    dma.removeMaster();
  }
});

Deno.test("bounce: a from-device sg mapping returns each entry's own bytes where the device did not write", () => {
  for (const skipAtMap of [false, true]) {
    const dma = highRig();
    const old = DmaBuffer.fromRange(HIGH, 4096);
    const buf = DmaBuffer.fromRange(HIGH + 0x2000, 4096);
    const own = pattern(4096, 9);
    dma.cpu.writeBuffer(buf, own);
    const slot = dirtySlot(dma, old);
    const sg = dma.mapSg([{ pa: buf.pa, length: 4096 }], DMA_FROM_DEVICE, {
      skipCpuSync: skipAtMap,
    });
    assertEquals(sg.dmaAddress[0], slot, "the same slot is reused");
    const written = new Uint8Array(16).fill(0x22);
    dma.port().writeBytes(sg.dmaAddress[0]!, written);
    if (skipAtMap) {
      dma.syncSgForCpu(sg, DMA_FROM_DEVICE);
      dma.unmapSg(sg, DMA_FROM_DEVICE, { skipCpuSync: true });
    } else dma.unmapSg(sg, DMA_FROM_DEVICE);
    const got = dma.cpu.readBuffer(buf);
    assertEquals(got, expected(own, written));
    dma.removeMaster();
  }
});

Deno.test("bounce: a buffer larger than the pool, or a full pool, is ENOMEM naming the bounce pool", () => {
  const dma = highRig({ maxSegmentSize: 1 << 21 });
  const big = DmaBuffer.fromRange(HIGH, 1 << 20); // default pool: 256 KiB
  expectError(
    () => dma.mapSingle(big, DMA_TO_DEVICE),
    "ENOMEM",
    "bounce pool",
  );
  expectError(
    () => dma.mapSg([{ pa: big.pa, length: big.size }], DMA_TO_DEVICE),
    "ENOMEM",
    "bounce pool",
  );
  assertEquals(dma.stats().liveMappings, 0);
  assertEquals(dma.stats().bounces, 0);
  dma.removeMaster();

  const small = highRig({ bouncePoolSize: 8192 });
  const a = small.mapSingle(DmaBuffer.fromRange(HIGH, 4096), DMA_TO_DEVICE);
  small.mappingError(a);
  const b = DmaBuffer.fromRange(HIGH + 0x1000, 4096);
  const c = DmaBuffer.fromRange(HIGH + 0x2000, 4096);
  // The list's first entry gets the last slot, the second finds none.
  expectError(
    () =>
      small.mapSg(
        [{ pa: b.pa, length: 4096 }, { pa: c.pa, length: 4096 }],
        DMA_TO_DEVICE,
      ),
    "ENOMEM",
    "bounce pool",
  );
  const s = small.mapSingle(b, DMA_TO_DEVICE); // the failed list kept no slot
  small.mappingError(s);
  expectError(() => small.mapSingle(c, DMA_TO_DEVICE), "ENOMEM", "bounce pool");
  assertEquals(small.stats().liveMappings, 2);
  small.unmapSingle(a, 4096, DMA_TO_DEVICE);
  small.unmapSingle(s, 4096, DMA_TO_DEVICE);
  small.removeMaster();
});

for (const kind of ["flat", "direct"] as const) {
  Deno.test(`${kind}: allocCoherent is zeroed even over frames an earlier user left dirty in the CPU cache`, () => {
    const r = dmaRig(kind);
    const dma = createDmaMapper(r.soc, r.master);
    const old = DmaBuffer.alloc(r.soc.memory, 4096);
    dma.cpu.writeBuffer(old, new Uint8Array(4096).fill(0x77)); // dirty lines
    const frame = old.frames[0];
    old.free();
    const c = dma.allocCoherent(4096);
    assertEquals(c.cpu.frames[0], frame, "the same frame is reused");
    assertEquals(dma.cpu.readBuffer(c.cpu), new Uint8Array(4096));
    assertEquals(dma.port().readBytes(c.dmaAddr, 4096), new Uint8Array(4096));
    // Still coherent: CPU writes reach the device without syncs.
    dma.cpu.writeBuffer(c.cpu, new Uint8Array([1, 2, 3]));
    assertEquals(dma.port().readBytes(c.dmaAddr, 3), new Uint8Array([1, 2, 3]));
    dma.freeCoherent(c);
    dma.removeMaster();
  });
}

Deno.test("mapSingle: a missing buffer or attributes object is EINVAL and changes nothing", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master);
  const buf = dma.cpu.allocBuffer(4096);
  for (const bad of [null, undefined, "abc", 4096, {}]) {
    expectError(
      () => dma.mapSingle(bad as never, DMA_TO_DEVICE),
      "EINVAL",
      "DmaBuffer",
    );
  }
  expectError(
    () => dma.mapSingle(buf, DMA_TO_DEVICE, null as never),
    "EINVAL",
    "attributes",
  );
  const s = dma.stats();
  assertEquals(s.liveMappings, 0);
  assertEquals(s.singleMaps, 0);
  assertEquals(s.iova?.liveRanges, 0);
  assertEquals(dma.reports(), []);
  // The mapper still works.
  const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
  assert(!dma.mappingError(addr));
  dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
  dma.removeMaster();
});
