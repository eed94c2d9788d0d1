// The copy paths of PhysicalMemory and Port (small copies are plain loops,
// one-chunk copies skip subarray views, multi-chunk copies walk chunks):
// every path must agree with a flat byte-array model.
import { assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  createSoc,
  type Domain,
  PhysicalMemory,
  type Port,
  type Soc,
} from "../core/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";

const BASE = 0x10_0000;
const SIZE = 4 << 16; // four 64 KiB chunks

Deno.test("writeBytes/readInto/readBytes agree with a byte-array model at every length and offset", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          // Offsets cluster around chunk boundaries, where the paths split.
          chunk: fc.integer({ min: 0, max: 3 }),
          delta: fc.integer({ min: -80, max: 80 }),
          length: fc.integer({ min: 1, max: 200 }),
          seed: fc.integer({ min: 1, max: 255 }),
          read: fc.boolean(),
        }),
        { minLength: 1, maxLength: 40 },
      ),
      (ops) => {
        const ram = new PhysicalMemory({ base: BASE, size: SIZE });
        const model = new Uint8Array(SIZE);
        for (const op of ops) {
          const off = Math.min(
            Math.max(op.chunk * 0x10000 + op.delta, 0),
            SIZE - op.length,
          );
          if (op.read) {
            const into = new Uint8Array(op.length).fill(0xee);
            ram.readInto(BASE + off, into);
            assertEquals(into, model.subarray(off, off + op.length));
            assertEquals(
              ram.readBytes(BASE + off, op.length),
              model.slice(off, off + op.length),
            );
          } else {
            const data = new Uint8Array(op.length);
            for (let i = 0; i < op.length; i++) data[i] = (op.seed + i) & 0xff;
            ram.writeBytes(BASE + off, data);
            model.set(data, off);
          }
        }
        assertEquals(ram.readBytes(BASE, SIZE), model);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("untouched memory reads as zeros on the one-chunk path and stays unmaterialised", () => {
  const ram = new PhysicalMemory({ base: BASE, size: SIZE });
  const into = new Uint8Array(8).fill(0xff);
  ram.readInto(BASE + 0x10000 + 100, into);
  assertEquals(into, new Uint8Array(8));
  const big = new Uint8Array(100).fill(0xff);
  ram.readInto(BASE + 0x20000 + 100, big);
  assertEquals(big, new Uint8Array(100));
  assertEquals(ram.stats().materializedBytes, 0);
});

/**
 * A SoC with `ramBytes` of RAM from address 0, a flat IOMMU, and one master
 * whose port goes through it into an attached domain.
 */
function flatPort(ramBytes: number): { soc: Soc; port: Port; domain: Domain } {
  const soc = createSoc({ memory: { base: 0, size: ramBytes } }).use(
    flatIommu(),
  );
  const unit = soc.probeUnit({
    name: "u",
    compatible: ["iommukit,flat-iommu"],
  });
  const port = soc.addMaster({ name: "m", ports: [{ unit }] }).ports[0]!;
  const domain = soc.createDomain(unit);
  domain.attach(unit);
  return { soc, port, domain };
}

Deno.test("port writes and reads of every small length land at the translated address", () => {
  const { soc, port, domain } = flatPort(64 << 20);
  // Two discontiguous frames: an access crossing the page is two pieces.
  domain.mapPages(0x10000, [0x200000, 0x500000], 3);
  for (const length of [1, 3, 4, 15, 16, 17, 64, 65, 300]) {
    for (const at of [0, 8, 4096 - length, 4096 - 2]) {
      if (at < 0 || at + length > 8192) continue;
      const data = new Uint8Array(length).map((_, i) =>
        (i * 7 + length) & 0xff
      );
      assertEquals(port.write(0x10000 + at, data), null);
      const back = new Uint8Array(length);
      assertEquals(port.read(0x10000 + at, back), null);
      assertEquals(back, data);
      // And physically: the first part in frame 0, the rest in frame 1.
      const first = Math.min(length, Math.max(0, 4096 - at));
      assertEquals(
        soc.memory.readBytes(0x200000 + at, first),
        data.subarray(0, first),
      );
      if (first < length) {
        assertEquals(
          soc.memory.readBytes(0x500000, length - first),
          data.subarray(first),
        );
      }
    }
  }
});

const K4 = 0x1000;

// What a port access through the layout below should do: the fault it
// raises (first page that is unmapped, or read-only for a write), or null.
type Page = { pa: number; writable: boolean } | null;

Deno.test("port accesses over pages, chunk boundaries and a block agree with a model; a faulting one transfers nothing", () => {
  const { soc, port, domain } = flatPort(16 << 20);
  // Reserved from the allocator so no page table can lie in them.
  const win = soc.memory.frames.alloc(1 << 20);
  const blk = soc.memory.frames.alloc(4 << 20);
  const IOVA = 0x10000;
  // Offsets in the window: 1->2 and 6->7 are physically contiguous across a
  // 64 KiB chunk boundary (one piece over two chunks, after another piece
  // when an access starts in page 0); 5 is unmapped, 6 is read-only.
  const layout: (number | null)[] = [
    0x5000,
    0xf000,
    0x10000,
    0x4f000,
    0x1000,
    null,
    0x2f000,
    0x30000,
    0x8000,
    0xff000,
  ];
  const pages: Page[] = layout.map((o, i) =>
    o === null ? null : { pa: win + o, writable: i !== 6 }
  );
  layout.forEach((o, i) => {
    if (o !== null) {
      domain.map(IOVA + i * K4, win + o, K4, i === 6 ? 1 : 3);
    }
  });
  const BLOCK_IOVA = 0x40_0000;
  domain.map(BLOCK_IOVA, blk, 4 << 20, 3);
  const model = new Map<number, number>(); // PA -> byte, absent = 0
  // PA of every byte of an access, or the fault it must raise.
  function expect(
    iova: number,
    length: number,
    write: boolean,
  ): { pas: number[] } | { iova: number; reason: string } {
    const pas: number[] = [];
    for (let i = 0; i < length; i++) {
      const at = iova + i;
      let pa = -1;
      let writable = true;
      if (at >= BLOCK_IOVA && at < BLOCK_IOVA + (4 << 20)) {
        pa = blk + at - BLOCK_IOVA;
      } else if (at >= IOVA && at < IOVA + layout.length * K4) {
        const page = pages[Math.floor((at - IOVA) / K4)]!;
        if (page !== null) {
          pa = page.pa + (at % K4);
          writable = page.writable;
        }
      }
      if (pa < 0 || (write && !writable)) {
        // The fault names where that page's translation started.
        const start = i === 0 ? at : Math.max(iova, at - (at % K4));
        return { iova: start, reason: pa < 0 ? "translation" : "permission" };
      }
      pas.push(pa);
    }
    return { pas };
  }
  let accesses = 0, faults = 0;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          block: fc.boolean(),
          at: fc.integer({ min: -0x80, max: layout.length * K4 + 0x80 }),
          blockAt: fc.integer({ min: 0, max: 3 }),
          delta: fc.integer({ min: -0x90, max: 0x90 }),
          length: fc.oneof(
            fc.integer({ min: 1, max: 80 }),
            fc.integer({ min: 1, max: 3 * K4 }),
          ),
          seed: fc.integer({ min: 1, max: 255 }),
          read: fc.boolean(),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      (ops) => {
        for (const op of ops) {
          // Block accesses straddle its 64 KiB chunk boundaries.
          const iova = op.block
            ? BLOCK_IOVA + 0x10000 * (op.blockAt + 1) + op.delta
            : IOVA + op.at;
          const want = expect(iova, op.length, !op.read);
          const before = soc.memory.digest();
          if (op.read) {
            const into = new Uint8Array(op.length).fill(0xee);
            const f = port.read(iova, into);
            if ("pas" in want) {
              assertEquals(f, null);
              assertEquals(
                into,
                Uint8Array.from(want.pas, (pa) => model.get(pa) ?? 0),
              );
              accesses++;
            } else {
              assertEquals(f?.iova, want.iova);
              assertEquals(f?.reason, want.reason);
              assertEquals(into, new Uint8Array(op.length).fill(0xee));
              faults++;
            }
          } else {
            const data = new Uint8Array(op.length);
            for (let i = 0; i < op.length; i++) {
              data[i] = (op.seed + i * 3) & 0xff;
            }
            const f = port.write(iova, data);
            if ("pas" in want) {
              assertEquals(f, null);
              want.pas.forEach((pa, i) => model.set(pa, data[i]!));
              accesses++;
            } else {
              assertEquals(f?.iova, want.iova);
              assertEquals(f?.access, "write");
              assertEquals(f?.reason, want.reason);
              faults++;
            }
          }
          if (!("pas" in want)) {
            assertEquals(soc.memory.digest(), before, "nothing transferred");
          }
        }
        for (const [pa, v] of model) assertEquals(soc.memory.read8(pa), v);
        assertEquals(port.counters().accesses, accesses);
        assertEquals(port.counters().faults, faults);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("direct port accesses across chunks, up to the end of RAM and outside it agree with a model", () => {
  const base = 0x10000;
  const size = 4 << 16;
  const soc = createSoc({ memory: { base, size } });
  const port = soc.addMaster({ name: "d", ports: [{}] }).ports[0]!;
  const model = new Uint8Array(size);
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          // Around each chunk boundary, RAM's base and RAM's end.
          edge: fc.integer({ min: 0, max: 4 }),
          delta: fc.integer({ min: -0x50, max: 0x50 }),
          length: fc.integer({ min: 1, max: 0x12000 }),
          small: fc.integer({ min: 1, max: 70 }),
          useSmall: fc.boolean(),
          seed: fc.integer({ min: 1, max: 255 }),
          read: fc.boolean(),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      (ops) => {
        for (const op of ops) {
          const pa = base + op.edge * 0x10000 + op.delta;
          const length = op.useSmall ? op.small : op.length;
          const inside = pa >= base && pa + length <= base + size;
          const before = soc.memory.digest();
          if (op.read) {
            const into = new Uint8Array(length).fill(0xee);
            const f = port.read(pa, into);
            if (inside) {
              assertEquals(f, null);
              assertEquals(into, model.subarray(pa - base, pa - base + length));
            } else {
              assertEquals(f?.reason, "bus-error");
              assertEquals(f?.iova, pa);
              assertEquals(into, new Uint8Array(length).fill(0xee));
            }
          } else {
            const data = new Uint8Array(length);
            for (let i = 0; i < length; i++) data[i] = (op.seed + i) & 0xff;
            const f = port.write(pa, data);
            if (inside) {
              assertEquals(f, null);
              model.set(data, pa - base);
            } else {
              assertEquals(f?.reason, "bus-error");
              assertEquals(soc.memory.digest(), before, "nothing written");
            }
          }
        }
        assertEquals(soc.memory.readBytes(base, size), model);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("a later piece of a port access that spans two chunks copies from the right offset, untouched or written", () => {
  const { soc, port, domain } = flatPort(16 << 20);
  const win = soc.memory.frames.alloc(1 << 20);
  // Page 0 alone; pages 1-2 one piece over the chunk boundary at win+128K.
  domain.mapPages(0x10000, [win + 0x5000, win + 0x1f000, win + 0x20000], 3);
  soc.memory.fill(win + 0x5000, K4, 0x33); // chunk 0 written, chunks 1-2 not
  const materialized = soc.memory.stats().materializedBytes;
  const into = new Uint8Array(3 * K4 - 0x20).fill(0xee);
  assertEquals(port.read(0x10010, into), null);
  const want = new Uint8Array(into.length);
  want.fill(0x33, 0, K4 - 0x10);
  assertEquals(into, want, "zeros from the untouched chunks, at their place");
  assertEquals(soc.memory.stats().materializedBytes, materialized);
  const data = into.map((_, i) => (i * 5 + 1) & 0xff);
  assertEquals(port.write(0x10010, data), null);
  assertEquals(
    soc.memory.readBytes(win + 0x5010, K4 - 0x10),
    data.subarray(0, K4 - 0x10),
  );
  assertEquals(
    soc.memory.readBytes(win + 0x1f000, 2 * K4 - 0x10),
    data.subarray(K4 - 0x10),
  );
  const back = new Uint8Array(data.length);
  assertEquals(port.read(0x10010, back), null);
  assertEquals(back, data);
});
