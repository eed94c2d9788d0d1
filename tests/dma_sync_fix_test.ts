// Syncs that name memory no mapping holds throw ENOENT and change nothing
// (no cache maintenance, no counter), and a sync of any part of an sg
// mapping is not reported out of range.
import { assertEquals, assertThrows } from "@std/assert";
import { IommuError } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  DmaBuffer,
  type DmaDebugKind,
  type DmaDebugReport,
  type DmaMapper,
} from "../core/dma/mod.ts";
import { dmaRig, pattern } from "./support/dma_rig.ts";

function throwsKind(fn: () => unknown, kind: string): IommuError {
  const e = assertThrows(fn, IommuError);
  assertEquals(e.kind, kind, e.message);
  return e;
}

function kinds(dma: DmaMapper): DmaDebugKind[] {
  return dma.reports().map((r) => r.kind);
}

Deno.test("direct master, debug off: a sync of memory no mapping holds throws ENOENT and keeps the CPU's dirty data", () => {
  const r = dmaRig("direct");
  const dma = createDmaMapper(r.soc, r.master, { debug: false });
  const other = dma.cpu.allocBuffer(4096); // never mapped
  dma.cpu.writeBuffer(other, pattern(4096, 3)); // dirty in the CPU cache
  throwsKind(() => dma.syncForCpu(other.pa, 4096, DMA_FROM_DEVICE), "ENOENT");
  throwsKind(() => dma.syncForDevice(other.pa, 64, DMA_FROM_DEVICE), "ENOENT");
  assertEquals(dma.cpu.lineState(other.pa), "dirty");
  assertEquals(dma.cpu.readBuffer(other), pattern(4096, 3));

  // An sg list synced after its unmap: its first entry is followed in RAM
  // by CPU data the list never held.
  const data = dma.cpu.allocBuffer(8192);
  const rx = dma.cpu.allocBuffer(4096);
  const sg = dma.mapSg(
    [{ pa: data.pa, length: 0x200 }, { pa: rx.pa, length: 0x200 }],
    DMA_FROM_DEVICE,
  );
  dma.unmapSg(sg, DMA_FROM_DEVICE);
  dma.cpu.writeBuffer(data, pattern(0x200, 4), 0x200);
  throwsKind(() => dma.syncSgForCpu(sg, DMA_FROM_DEVICE), "ENOENT");
  throwsKind(() => dma.syncSgForDevice(sg, DMA_FROM_DEVICE), "ENOENT");
  assertEquals(dma.cpu.readBuffer(data, 0x200, 0x200), pattern(0x200, 4));

  // A sync running past the end of a live mapping into unmapped memory.
  const buf = data.slice(0, 4096);
  const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
  dma.cpu.writeBuffer(data, pattern(64, 5), 4096); // after the mapping
  throwsKind(() => dma.syncForCpu(addr, 8192, DMA_FROM_DEVICE), "ENOENT");
  assertEquals(dma.cpu.readBuffer(data, 4096, 64), pattern(64, 5));
  assertEquals(dma.stats().syncs, 0);

  // Syncs of mapped memory still work, from the start or from the middle.
  r.master.port().writeBytes(addr, pattern(4096, 6));
  dma.syncForCpu(addr + 100, 200, DMA_FROM_DEVICE);
  assertEquals(
    dma.cpu.readBuffer(buf, 100, 200),
    pattern(4096, 6).subarray(100, 300),
  );
  dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
  assertEquals(dma.cpu.readBuffer(buf), pattern(4096, 6));
  assertEquals(dma.stats().syncs, 2);
  dma.unmapSingle(addr, 4096, DMA_FROM_DEVICE);
  dma.removeMaster();
});

Deno.test("direct master: a single sync of one entry of an sg list (entries out of address order) syncs that entry", () => {
  for (const debug of [false, true]) {
    const r = dmaRig("direct");
    const dma = createDmaMapper(r.soc, r.master, { debug });
    const lo = dma.cpu.allocBuffer(4096);
    const hi = dma.cpu.allocBuffer(4096);
    const sg = dma.mapSg(
      [{ pa: hi.pa, length: 0x200 }, { pa: lo.pa, length: 0x200 }],
      DMA_FROM_DEVICE,
    );
    dma.cpu.readBuffer(lo, 0, 64); // a stale line
    r.master.port().writeBytes(sg.dmaAddress[1]!, pattern(0x200, 7));
    dma.syncForCpu(sg.dmaAddress[1]!, 0x200, DMA_FROM_DEVICE);
    assertEquals(dma.cpu.readBuffer(lo, 0, 0x200), pattern(0x200, 7));
    if (debug) assertEquals(dma.reports(), []);
    dma.unmapSg(sg, DMA_FROM_DEVICE);
    dma.removeMaster();
  }
});

Deno.test("IOMMU master: a sync running past its mapping throws ENOENT before any cache maintenance or count", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master, { debug: false });
  const buf = dma.cpu.allocBuffer(4096);
  const a = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
  dma.cpu.writeBuffer(buf, new Uint8Array([0x42])); // dirty line, first page
  throwsKind(() => dma.syncForCpu(a, 8192, DMA_BIDIRECTIONAL), "ENOENT");
  throwsKind(() => dma.syncForCpu(a, 2 ** 52, DMA_BIDIRECTIONAL), "ENOENT");
  assertEquals(dma.stats().syncs, 0);
  assertEquals(dma.cpu.lineState(buf.pa), "dirty");
  assertEquals(dma.cpu.readBuffer(buf, 0, 1), new Uint8Array([0x42]));
  // An sg list synced after its unmap.
  const sg = dma.mapSg([{ pa: buf.pa, length: 4096 }], DMA_BIDIRECTIONAL);
  dma.unmapSg(sg, DMA_BIDIRECTIONAL);
  dma.cpu.writeBuffer(buf, new Uint8Array([0x43]));
  throwsKind(() => dma.syncSgForCpu(sg, DMA_BIDIRECTIONAL), "ENOENT");
  assertEquals(dma.stats().syncs, 0);
  assertEquals(dma.cpu.lineState(buf.pa), "dirty");
  assertEquals(dma.cpu.readBuffer(buf, 0, 1), new Uint8Array([0x43]));
  dma.unmapSingle(a, 4096, DMA_BIDIRECTIONAL);
  dma.removeMaster();
});

Deno.test("record mode: a sync reported out of range that runs into unmapped memory keeps the report and changes nothing else", () => {
  for (const kind of ["flat", "direct"] as const) {
    const r = dmaRig(kind);
    const dma = createDmaMapper(r.soc, r.master, { debug: { mode: "record" } });
    const buf = dma.cpu.allocBuffer(4096);
    const a = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
    dma.mappingError(a);
    dma.cpu.writeBuffer(buf, new Uint8Array([0x42]));
    throwsKind(() => dma.syncForCpu(a, 8192, DMA_BIDIRECTIONAL), "ENOENT");
    assertEquals(kinds(dma), ["sync-out-of-range"], kind);
    assertEquals(dma.stats().syncs, 0, kind);
    assertEquals(dma.cpu.lineState(buf.pa), "dirty", kind);
    assertEquals(dma.cpu.readBuffer(buf, 0, 1), new Uint8Array([0x42]));
    dma.unmapSingle(a, 4096, DMA_BIDIRECTIONAL);
    dma.removeMaster();
  }
});

Deno.test("debug: a single sync of any segment of an sg mapping is in range; past a segment it is not", () => {
  const r = dmaRig("flat");
  const dma = createDmaMapper(r.soc, r.master, { debug: true });
  const p0 = dma.cpu.allocBuffer(4096);
  const p1 = dma.cpu.allocBuffer(4096);
  // Two 512-byte packets in different pages: two DMA segments with a gap.
  const sg = dma.mapSg(
    [{ pa: p0.pa + 0x100, length: 0x200 }, {
      pa: p1.pa + 0x100,
      length: 0x200,
    }],
    DMA_FROM_DEVICE,
  );
  assertEquals(sg.count, 2);
  const [d0, d1] = [sg.dmaAddress[0]!, sg.dmaAddress[1]!];
  dma.cpu.readBuffer(p1, 0x100, 64); // a stale line
  r.master.port().writeBytes(d1, pattern(0x200, 9));
  dma.syncForCpu(d1, 0x200, DMA_FROM_DEVICE);
  assertEquals(dma.cpu.readBuffer(p1, 0x100, 0x200), pattern(0x200, 9));
  dma.syncForCpu(d0 + 0x10, 0x1f0, DMA_FROM_DEVICE);
  dma.syncForDevice(d1, 0x200, DMA_FROM_DEVICE);
  assertEquals(dma.reports(), []);
  // Past the end of a segment (into the padding of its page, where the
  // CPU's own data lives) or past the last one: still reported.
  for (const [at, n] of [[d0, 0x201], [d1 + 0x100, 0x101], [d0 + 0x300, 4]]) {
    const e = throwsKind(
      () => dma.syncForCpu(at!, n!, DMA_FROM_DEVICE),
      "ERANGE",
    );
    assertEquals((e.detail as DmaDebugReport).kind, "sync-out-of-range");
  }
  dma.syncSgForCpu(sg, DMA_FROM_DEVICE); // the whole list
  dma.unmapSg(sg, DMA_FROM_DEVICE);
  dma.removeMaster();
});

Deno.test("direct master: a single sync of part of a bounced sg entry copies that part only", () => {
  const HIGH = 0x1_0000_0000; // above the 32-bit master's reach
  for (const debug of [false, true]) {
    const r = dmaRig("direct", { dmaBits: 32 }, {
      base: 0xf000_0000,
      size: 512 << 20,
    });
    const dma = createDmaMapper(r.soc, r.master, { debug });
    const low = dma.cpu.allocBuffer(4096);
    const high = DmaBuffer.fromRange(HIGH + 0x3000, 4096);
    dma.cpu.writeBuffer(high, pattern(0x200, 1));
    const sg = dma.mapSg(
      [{ pa: low.pa, length: 0x200 }, { pa: high.pa, length: 0x200 }],
      DMA_FROM_DEVICE,
    );
    const slot = sg.dmaAddress[1]!;
    assertEquals(slot < HIGH, true, "entry 1 bounced");
    r.master.port().writeBytes(slot, pattern(0x200, 2));
    const before = dma.stats().bounceBytes;
    dma.syncForCpu(slot + 0x10, 0x20, DMA_FROM_DEVICE);
    const want = pattern(0x200, 1);
    want.set(pattern(0x200, 2).subarray(0x10, 0x30), 0x10);
    assertEquals(dma.cpu.readBuffer(high, 0, 0x200), want);
    assertEquals(dma.stats().bounceBytes - before, 0x20);
    if (debug) assertEquals(dma.reports(), []);
    dma.unmapSg(sg, DMA_FROM_DEVICE, { skipCpuSync: true });
    dma.removeMaster();
  }
});

Deno.test("direct master: a sync anywhere inside any of many live mappings finds it, across 64 KiB index buckets, and not after its unmap", () => {
  const r = dmaRig("direct", {}, { size: 64 << 20 });
  const dma = createDmaMapper(r.soc, r.master, { debug: false });
  // 600 small mappings, then one that crosses several 64 KiB buckets.
  const small: number[] = [];
  for (let i = 0; i < 600; i++) {
    small.push(dma.mapSingle(dma.cpu.allocBuffer(256), DMA_BIDIRECTIONAL));
  }
  const big = dma.cpu.allocBuffer(5 * 65536);
  const addr = dma.mapSingle(big, DMA_BIDIRECTIONAL);
  const before = dma.stats().syncs;
  // From the middle of every small mapping, and deep inside the big one
  // (an address whose bucket the mapping did not start in).
  for (const a of small) dma.syncForCpu(a + 128, 64, DMA_BIDIRECTIONAL);
  dma.syncForCpu(addr + 3 * 65536 + 100, 4096, DMA_BIDIRECTIONAL);
  assertEquals(dma.stats().syncs, before + small.length + 1);
  // Unmapped again: the index forgets every bucket the mapping touched.
  dma.unmapSingle(addr, 5 * 65536, DMA_BIDIRECTIONAL);
  throwsKind(
    () => dma.syncForCpu(addr + 3 * 65536 + 100, 64, DMA_BIDIRECTIONAL),
    "ENOENT",
  );
  dma.unmapSingle(small[7]!, 256, DMA_BIDIRECTIONAL);
  throwsKind(
    () => dma.syncForCpu(small[7]! + 128, 64, DMA_BIDIRECTIONAL),
    "ENOENT",
  );
  dma.syncForCpu(small[8]! + 128, 64, DMA_BIDIRECTIONAL);
  assertEquals(dma.stats().syncs, before + small.length + 2);
});

Deno.test("IOMMU master, debug on: a sync inside any of many live mappings finds it, and not after a lazy unmap", () => {
  const r = dmaRig("flat", {}, { size: 64 << 20 });
  const dma = createDmaMapper(r.soc, r.master, {
    policy: "lazy",
    debug: { mode: "record", stacks: false },
  });
  // Buffers that start inside their first page: each DMA address sits past
  // the start of its IOVA allocation.
  const addrs: number[] = [];
  for (let i = 0; i < 400; i++) {
    const b = dma.cpu.allocBuffer(3 * 4096).slice(100, 8000);
    const a = dma.mapSingle(b, DMA_TO_DEVICE);
    dma.mappingError(a);
    addrs.push(a);
  }
  const before = dma.stats().syncs;
  for (const a of addrs) dma.syncForDevice(a + 5000, 64, DMA_TO_DEVICE);
  assertEquals(dma.stats().syncs, before + addrs.length);
  assertEquals(dma.reports(), []);
  // Below the mapping's first byte (inside its first IOVA page): no
  // mapping there (recorded, nothing synced).
  dma.syncForDevice(addrs[3]! - 50, 8, DMA_TO_DEVICE);
  assertEquals(kinds(dma), ["sync-not-mapped"]);
  // Unmapped lazily: its IOVA waits in the flush queue, still allocated,
  // but the mapping is gone.
  dma.unmapSingle(addrs[5]!, 8000, DMA_TO_DEVICE);
  dma.syncForDevice(addrs[5]! + 5000, 64, DMA_TO_DEVICE);
  assertEquals(kinds(dma), ["sync-not-mapped", "sync-not-mapped"]);
  dma.syncForDevice(addrs[6]! + 5000, 64, DMA_TO_DEVICE);
  assertEquals(dma.stats().syncs, before + addrs.length + 1);
});

Deno.test("coherent IOMMU master, debug off: a sync of unmapped memory is ENOENT and not counted, as on every other master", () => {
  const r = dmaRig("flat", { coherent: true });
  const dma = createDmaMapper(r.soc, r.master, { debug: false });
  const buf = dma.cpu.allocBuffer(4096);
  const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
  throwsKind(
    () => dma.syncForCpu(addr + 4096, 64, DMA_FROM_DEVICE),
    "ENOENT",
  );
  throwsKind(() => dma.syncForCpu(0x1000_0000, 64, DMA_FROM_DEVICE), "ENOENT");
  assertEquals(dma.stats().syncs, 0);
  dma.syncForCpu(addr, 4096, DMA_FROM_DEVICE);
  assertEquals(dma.stats().syncs, 1);
});

Deno.test("an sg sync of an unmapped list is ENOENT even where a single mapping now starts at its address", () => {
  for (const kind of ["direct", "cached"] as const) {
    const r = dmaRig(kind);
    const dma = createDmaMapper(r.soc, r.master, { debug: false });
    const buf = dma.cpu.allocBuffer(4096);
    const sg = dma.mapSg([{ pa: buf.pa, length: 4096 }], DMA_FROM_DEVICE);
    dma.unmapSg(sg, DMA_FROM_DEVICE);
    const addr = dma.mapSingle(buf, DMA_FROM_DEVICE);
    assertEquals(addr, sg.dmaAddress[0], `${kind}: same address reused`);
    throwsKind(() => dma.syncSgForCpu(sg, DMA_FROM_DEVICE), "ENOENT");
    throwsKind(() => dma.syncSgForDevice(sg, DMA_FROM_DEVICE), "ENOENT");
    assertEquals(dma.stats().syncs, 0, kind);
  }
});

Deno.test("direct master: a sync is judged against the mapping it means when one address is mapped twice", () => {
  const r = dmaRig("direct");
  // Default debug: "throw" mode.
  const dma = createDmaMapper(r.soc, r.master);
  const b = dma.cpu.allocBuffer(8192);
  // The whole buffer and its first 64 bytes, both to the device (legal:
  // the device only reads). A sync of the whole names the first mapping.
  const whole = dma.mapSingle(b, DMA_TO_DEVICE);
  dma.mappingError(whole);
  const head = dma.mapSingle(b.slice(0, 64), DMA_TO_DEVICE);
  dma.mappingError(head);
  assertEquals(head, whole);
  dma.syncForDevice(whole, 8192, DMA_TO_DEVICE);
  dma.syncForDevice(head, 64, DMA_TO_DEVICE);
  assertEquals(kinds(dma), []);

  // One buffer mapped from and to the device: each sync names the
  // mapping of its direction (ownership follows the same one).
  const r2 = dmaRig("direct");
  const d2 = createDmaMapper(r2.soc, r2.master, {
    debug: { mode: "record", ownership: true },
  });
  const c = d2.cpu.allocBuffer(4096);
  const rx = d2.mapSingle(c, DMA_FROM_DEVICE);
  d2.mappingError(rx);
  const tx = d2.mapSingle(c, DMA_TO_DEVICE);
  d2.mappingError(tx);
  d2.syncForCpu(rx, 4096, DMA_FROM_DEVICE);
  d2.syncForDevice(tx, 4096, DMA_TO_DEVICE);
  assertEquals(kinds(d2), []);
});

Deno.test("direct master: an sg sync or unmap acts on the list it is given when another list starts at the same address", () => {
  const r = dmaRig("direct");
  const dma = createDmaMapper(r.soc, r.master);
  const head = dma.cpu.allocBuffer(4096);
  const tailA = dma.cpu.allocBuffer(4096);
  const tailB = dma.cpu.allocBuffer(4096);
  // One buffer mapped to the device twice, each time with another tail.
  const sgA = dma.mapSg(
    [{ pa: head.pa, length: 4096 }, { pa: tailA.pa, length: 4096 }],
    DMA_TO_DEVICE,
  );
  const sgB = dma.mapSg(
    [{ pa: head.pa, length: 4096 }, { pa: tailB.pa, length: 4096 }],
    DMA_TO_DEVICE,
  );
  assertEquals(sgA.dmaAddress[0], sgB.dmaAddress[0]);
  dma.cpu.writeBuffer(tailA, new Uint8Array(16).fill(0x5a));
  dma.syncSgForDevice(sgA, DMA_TO_DEVICE);
  assertEquals(
    r.master.port().readBytes(sgA.dmaAddress[1]!, 4),
    new Uint8Array(4).fill(0x5a),
  );
  // Unmapping A leaves B's record: B's entries are what its sync cleans.
  dma.unmapSg(sgA, DMA_TO_DEVICE);
  dma.cpu.writeBuffer(tailB, new Uint8Array(16).fill(0x6b));
  dma.syncSgForDevice(sgB, DMA_TO_DEVICE);
  assertEquals(
    r.master.port().readBytes(sgB.dmaAddress[1]!, 4),
    new Uint8Array(4).fill(0x6b),
  );
  dma.unmapSg(sgB, DMA_TO_DEVICE);
  assertEquals(dma.stats().liveMappings, 0);
  assertEquals(kinds(dma), []);
});
