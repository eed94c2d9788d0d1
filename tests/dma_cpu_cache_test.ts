import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  createSoc,
  IommuError,
  type IommuErrorKind,
  PhysicalMemory,
} from "../core/mod.ts";
import {
  CACHE_LINE_BYTES,
  CpuCache,
  cpuCacheOf,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
} from "../core/dma/mod.ts";
import { pattern } from "./support/dma_rig.ts";

function kindOf(fn: () => unknown): IommuErrorKind {
  return assertThrows(fn, IommuError).kind;
}

function fresh(options = {}): { ram: PhysicalMemory; cpu: CpuCache } {
  const ram = new PhysicalMemory({ size: 1 << 20 });
  return { ram, cpu: new CpuCache(ram, options) };
}

Deno.test("CpuCache: write-back, write-allocate, read-allocate", () => {
  const { ram, cpu } = fresh();
  assertEquals(CACHE_LINE_BYTES, 64);
  cpu.write(0x1010, pattern(8));
  assertEquals(cpu.lineState(0x1000), "dirty");
  assertEquals(
    ram.readBytes(0x1010, 8),
    new Uint8Array(8),
    "not written through",
  );
  assertEquals(cpu.read(0x1010, 8), pattern(8));
  ram.writeBytes(0x2000, pattern(4, 3));
  assertEquals(cpu.read(0x2000, 4), pattern(4, 3), "filled from RAM");
  assertEquals(cpu.lineState(0x2000), "clean");
  ram.writeBytes(0x2000, pattern(4, 4)); // behind the cache's back
  assertEquals(cpu.read(0x2000, 4), pattern(4, 3), "the cached copy wins");
  const c = cpu.counters();
  assertEquals(c.fills, 2);
  assertEquals(c.hits, 2);
  assertEquals(cpu.cachedLines, 2);
  // An access spanning lines and pages.
  cpu.write(0x2ff0, pattern(40, 2));
  assertEquals(cpu.read(0x2ff0, 40), pattern(40, 2));
});

Deno.test("CpuCache: clean, invalidate, clean+invalidate", () => {
  const { ram, cpu } = fresh();
  cpu.write(0x3000, pattern(128));
  assertEquals(cpu.clean(0x3000, 1), 1, "whole lines, only the first touched");
  assertEquals(ram.readBytes(0x3000, 64), pattern(128).subarray(0, 64));
  assertEquals(ram.read8(0x3040), 0);
  assertEquals(cpu.lineState(0x3000), "clean");
  assertEquals(cpu.invalidate(0x3040, 64), 1);
  assertEquals(cpu.lineState(0x3040), "absent");
  assertEquals(cpu.clean(0x3000, 128), 0, "nothing dirty is left");
  assertEquals(cpu.read(0x3040, 4), new Uint8Array(4), "dirty data lost");
  cpu.write(0x3080, pattern(4, 9));
  assertEquals(cpu.cleanInvalidate(0x3080, 4), 1);
  assertEquals(ram.readBytes(0x3080, 4), pattern(4, 9));
  assertEquals(cpu.lineState(0x3080), "absent");
  assertEquals(cpu.invalidate(0x90000, 4096), 0);
  assertEquals(kindOf(() => cpu.clean(-1, 4)), "EINVAL");
  assertEquals(kindOf(() => cpu.invalidate(0, 0)), "EINVAL");
  assertEquals(kindOf(() => cpu.read(1 << 20, 4)), "ERANGE");
  assertEquals(kindOf(() => cpu.write((1 << 20) - 2, pattern(4))), "ERANGE");
});

Deno.test("CpuCache: eviction writes dirty lines back, deterministically per seed", () => {
  const run = (seed: number) => {
    const { ram, cpu } = fresh({ lines: 4, seed });
    for (let i = 0; i < 8; i++) cpu.write(i * 64, new Uint8Array([i + 1]));
    const inRam: number[] = [];
    for (let i = 0; i < 8; i++) inRam.push(ram.read8(i * 64));
    return { inRam, c: cpu.counters(), cpu };
  };
  const a = run(11), b = run(11);
  assertEquals(a.inRam, b.inRam);
  assertEquals(a.c.evictions, 4);
  assertEquals(a.c.writeBacks, 4);
  assertEquals(a.cpu.cachedLines, 4);
  assertEquals(a.inRam.filter((v) => v !== 0).length, 4);
  // Every byte is still right from the CPU's view.
  for (let i = 0; i < 8; i++) assertEquals(a.cpu.read(i * 64, 1)[0], i + 1);
  assertEquals(a.cpu.writeBackAll() >= 0, true);
});

Deno.test("CpuCache: large ranges walk the cache, not the range", () => {
  const { cpu } = fresh({ lines: 8 });
  cpu.write(0x8000, pattern(64));
  assertEquals(cpu.clean(0, 1 << 20), 1);
  assertEquals(cpu.invalidate(0, 1 << 20), 1);
  assertEquals(cpu.cachedLines, 0);
});

Deno.test("CpuCache: speculation pulls clean lines in", () => {
  const { ram, cpu } = fresh({ seed: 3 });
  ram.writeBytes(0x4000, pattern(256));
  cpu.write(0x4000, new Uint8Array([0xee]));
  assertEquals(cpu.speculate(0x4000, 256), 3, "cached lines are left alone");
  assertEquals(cpu.lineState(0x4040), "clean");
  assertEquals(cpu.read(0x4000, 1)[0], 0xee);
  assertEquals(cpu.speculate(0x5000, 4096, 0), 0);
  const some = cpu.speculate(0x6000, 64 * 64, 0.5);
  assert(some > 0 && some < 64, `about half: ${some}`);
  assertEquals(cpu.counters().speculativeFills, 3 + some);
  assertEquals(kindOf(() => cpu.speculate(0, 64, 2)), "EINVAL");
  assertEquals(kindOf(() => cpu.setSpeculation(-1)), "EINVAL");
});

Deno.test("CpuCache: DMA hand-over rules per arch", () => {
  for (const arch of ["arm64", "arm32"] as const) {
    const { ram, cpu } = fresh({ arch });
    cpu.write(0x1000, pattern(64));
    cpu.handToDevice(0x1000, 64, DMA_FROM_DEVICE);
    if (arch === "arm64") {
      assertEquals(ram.readBytes(0x1000, 64), pattern(64), "cleaned");
      assertEquals(cpu.lineState(0x1000), "clean");
    } else {
      assertEquals(ram.readBytes(0x1000, 64), new Uint8Array(64), "discarded");
      assertEquals(cpu.lineState(0x1000), "absent");
    }
    cpu.write(0x2000, pattern(64));
    cpu.handToDevice(0x2000, 64, DMA_TO_DEVICE);
    assertEquals(ram.readBytes(0x2000, 64), pattern(64));
    cpu.takeFromDevice(0x2000, 64, DMA_TO_DEVICE);
    assertEquals(cpu.lineState(0x2000), "clean", "to-device keeps lines");
    cpu.takeFromDevice(0x2000, 64, DMA_FROM_DEVICE);
    assertEquals(cpu.lineState(0x2000), "absent");
  }
});

Deno.test("CpuCache: uncached pages bypass the cache, counted", () => {
  const { ram, cpu } = fresh();
  cpu.write(0x7000, pattern(4));
  cpu.markUncached(0x7000, 4096);
  assertEquals(ram.readBytes(0x7000, 4), pattern(4), "flushed first");
  cpu.markUncached(0x7000, 10);
  cpu.write(0x7100, pattern(4, 2));
  assertEquals(ram.readBytes(0x7100, 4), pattern(4, 2), "straight to RAM");
  assertEquals(cpu.lineState(0x7100), "absent");
  assertEquals(cpu.speculate(0x7000, 4096), 0);
  cpu.unmarkUncached(0x7000, 10);
  cpu.write(0x7200, pattern(4, 3));
  assertEquals(ram.read8(0x7200), pattern(4, 3)[0], "still uncached once more");
  cpu.unmarkUncached(0x7000, 4096);
  cpu.write(0x7300, pattern(4, 4));
  assertEquals(ram.read8(0x7300), 0, "cached again");
  assert(cpu.counters().uncachedAccesses >= 2);
});

Deno.test("CpuCache: options, buffers and the per-system cache", () => {
  const ram = new PhysicalMemory({ size: 1 << 20 });
  assertEquals(kindOf(() => new CpuCache(ram, { lines: 0 })), "EINVAL");
  assertEquals(
    kindOf(() => new CpuCache(ram, { arch: "x86" as "arm64" })),
    "EINVAL",
  );
  assertEquals(kindOf(() => new CpuCache(ram, { seed: 0.5 })), "EINVAL");
  assertEquals(kindOf(() => new CpuCache(ram, { speculation: 3 })), "EINVAL");
  const soc = createSoc({ memory: { size: 1 << 20 } });
  const cpu = cpuCacheOf(soc, { lines: 16 });
  assertEquals(cpuCacheOf(soc), cpu);
  assertEquals(cpu.capacity, 16);
  assertEquals(kindOf(() => cpuCacheOf(soc, {})), "EEXIST");
  // A buffer's stale lines are dropped when it is allocated and freed.
  const b = cpu.allocBuffer(4096);
  cpu.writeBuffer(b, pattern(32));
  const pa = b.pa;
  b.free();
  assertEquals(cpu.lineState(pa), "absent");
  const again = cpu.allocBuffer(4096);
  assertEquals(cpu.readBuffer(again, 0, 32), new Uint8Array(32));
  assertEquals(kindOf(() => cpu.readBuffer(again, 4090, 10)), "ERANGE");
  assertEquals(
    kindOf(() => cpu.writeBuffer(again, pattern(8), 4092)),
    "ERANGE",
  );
});
