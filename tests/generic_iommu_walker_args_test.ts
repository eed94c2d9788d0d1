// The exported Walker constructor refuses bad shapes (fuzzing review):
// each error path with its kind and the bad value named, and a good call
// after each refusal still working (nothing half-built is left behind).
import { assertEquals } from "@std/assert";
import { PhysicalMemory, type TlbOptions } from "../core/mod.ts";
import {
  DEFAULT_WALK_CACHE,
  encodeLeaf,
  encodeTable,
  type LpaeStage,
  Walker,
} from "../plugins/generic_iommu/mod.ts";
import { expectError } from "./support/assertions.ts";

const BASE = 0x4000_0000;
const OFF = { sets: 0, ways: 0 } as const;

function ram(): PhysicalMemory {
  return new PhysicalMemory({ base: BASE, size: 1 << 20 });
}

// A 3-level table chain (start level 1) mapping 0x1000 to BASE + 0x8_0000.
function oneWalk(w: Walker, mem: PhysicalMemory): void {
  const put = (at: number, d: [number, number]) => {
    mem.write32(at, d[0]);
    mem.write32(at + 4, d[1]);
  };
  put(BASE, encodeTable(BASE + 0x1000));
  put(BASE + 0x1000, encodeTable(BASE + 0x2000));
  put(BASE + 0x2000 + 8, encodeLeaf(BASE + 0x8_0000, 3, 3, 1));
  assertEquals(w.walk(1, BASE, 1, 0x1008, 2 ** 48), 0);
  assertEquals(w.leafPa, BASE + 0x8_0000);
}

// Bad arguments typed as the constructor's own (the point is a caller
// that ignores the types).
function build(memory: unknown, stage: unknown, walkCache: unknown): Walker {
  return new Walker(
    memory as PhysicalMemory,
    stage as LpaeStage,
    walkCache as readonly TlbOptions[],
  );
}

Deno.test("Walker constructor: memory that is not a PhysicalMemory", () => {
  expectError(() => build({}, 1, []), "EINVAL", "memory", "(Object)");
  expectError(() => build(null, 1, []), "EINVAL", "memory", "null");
  expectError(() => build(undefined, 1, []), "EINVAL", "memory", "undefined");
  expectError(() => build(0x4000_0000, 1, []), "EINVAL", "0x40000000");
  // Shaped almost like RAM: a base that is not an integer.
  const mem = ram();
  const fake = { read32: mem.read32, view32: mem.view32, base: 0.5, end: 4 };
  expectError(() => build(fake, 1, []), "EINVAL", "memory", "(Object)");
  oneWalk(build(mem, 1, []), mem);
});

Deno.test("Walker constructor: a stage that is not 1 or 2", () => {
  const mem = ram();
  expectError(() => build(mem, 0, []), "EINVAL", "stage 0x0");
  expectError(() => build(mem, 3, []), "EINVAL", "stage 0x3");
  expectError(() => build(mem, 1.5, []), "EINVAL", "stage 1.5");
  expectError(() => build(mem, "1", []), "EINVAL", 'stage "1"');
  expectError(() => build(mem, undefined, []), "EINVAL", "stage undefined");
  oneWalk(build(mem, 2, []), mem);
});

Deno.test("Walker constructor: walk cache shapes that are not an array of at most 3", () => {
  const mem = ram();
  expectError(() => build(mem, 1, null), "EINVAL", "shapes null");
  expectError(() => build(mem, 1, undefined), "EINVAL", "shapes undefined");
  expectError(() => build(mem, 1, { length: 1 }), "EINVAL", "(Object)");
  expectError(
    () => build(mem, 1, [OFF, OFF, OFF, OFF]),
    "EINVAL",
    "(array of 4)",
    "at most 3",
  );
  oneWalk(build(mem, 1, [OFF, OFF, OFF]), mem);
});

Deno.test("Walker constructor: a walk cache shape that is not an object", () => {
  const mem = ram();
  expectError(() => build(mem, 1, [OFF, null]), "EINVAL", "null", "level 1");
  expectError(() => build(mem, 1, [4]), "EINVAL", "0x4", "level 0");
  expectError(
    () => build(mem, 1, [OFF, OFF, "4-way"]),
    "EINVAL",
    '"4-way"',
    "level 2",
  );
  // Missing and undefined entries take the default shapes.
  const w = build(mem, 1, [OFF, undefined]);
  assertEquals(w.caches[0]!.capacity, 0);
  assertEquals(w.caches[1]!.capacity, DEFAULT_WALK_CACHE[1]!.sets! * 4);
  assertEquals(w.caches[2]!.capacity, DEFAULT_WALK_CACHE[2]!.sets! * 4);
  oneWalk(w, mem);
});

Deno.test("Walker constructor: a bad cache shape inside an object (from Tlb)", () => {
  const mem = ram();
  expectError(() => build(mem, 1, [{ sets: 3, ways: 4 }]), "EINVAL");
  expectError(() => build(mem, 1, [OFF, { sets: -1, ways: 4 }]), "EINVAL");
  oneWalk(build(mem, 1, [OFF]), mem);
});

Deno.test("Walker.walk: bad arguments are EINVAL before anything is walked or counted", () => {
  const mem = ram();
  const w = build(mem, 1, DEFAULT_WALK_CACHE);
  oneWalk(w, mem);
  const walks = w.walks, reads = [...w.reads];
  const bad = (
    ctx: unknown,
    root: unknown,
    level: unknown,
    iova: unknown,
    outEnd: unknown,
    ...words: string[]
  ): void => {
    expectError(
      () =>
        w.walk(
          ctx as number,
          root as number,
          level as number,
          iova as number,
          outEnd as number,
        ),
      "EINVAL",
      ...words,
    );
    assertEquals([w.walks, [...w.reads]], [walks, reads], words.join(" "));
  };
  bad(-1, BASE, 1, 0x1008, 2 ** 48, "walk context", "-1");
  bad(0.5, BASE, 1, 0x1008, 2 ** 48, "walk context", "0.5");
  bad(1n, BASE, 1, 0x1008, 2 ** 48, "walk context", "1");
  bad(1, NaN, 1, 0x1008, 2 ** 48, "root table address", "NaN");
  bad(1, BASE, 1, -4096, 2 ** 48, "walk IOVA", "-4096");
  bad(1, BASE, 1, 0.5, 2 ** 48, "walk IOVA", "0.5");
  bad(1, BASE, 1, 4096n, 2 ** 48, "walk IOVA", "4096");
  bad(1, BASE, 1, 2 ** 48, 2 ** 48, "walk IOVA", "2^48");
  bad(1, BASE, 4, 0x1008, 2 ** 48, "start level 0x4");
  bad(1, BASE, 1.5, 0x1008, 2 ** 48, "start level 1.5");
  bad(1, BASE, 1, 0x1008, 0, "walk output end", "0");
  bad(1, BASE, 1, 0x1008, Infinity, "walk output end", "Infinity");
  // The walker still walks.
  assertEquals(w.walk(1, BASE, 1, 0x1008, 2 ** 48), 0);
  assertEquals(w.leafPa, BASE + 0x8_0000);
});
