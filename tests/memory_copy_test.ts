// The copy paths of PhysicalMemory and Port (small copies are plain loops,
// one-chunk copies skip subarray views, multi-chunk copies walk chunks):
// every path must agree with a flat byte-array model.
import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { createSoc, PhysicalMemory } from "../core/mod.ts";
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

Deno.test("port writes and reads of every small length land at the translated address", () => {
  const soc = createSoc({ memory: { base: 0, size: 64 << 20 } }).use(
    flatIommu(),
  );
  const unit = soc.probeUnit({
    name: "u",
    compatible: ["iommukit,flat-iommu"],
  });
  const port = soc.addMaster({ name: "m", ports: [{ unit }] }).ports[0]!;
  const domain = soc.createDomain(unit);
  domain.attach(unit);
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
