import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  FrameAllocator,
  IommuError,
  MIN_BLOCK_BYTES,
  PhysicalMemory,
} from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

Deno.test("MIN_BLOCK_BYTES is 1 KiB", () => {
  assertEquals(MIN_BLOCK_BYTES, 1024);
});

Deno.test("constructor errors: EINVAL for malformed or non-1 KiB ranges", () => {
  expectError(() => new FrameAllocator(512, 4096), "EINVAL", "0x200");
  expectError(() => new FrameAllocator(0, 1500), "EINVAL", "0x5dc");
  expectError(
    () => new FrameAllocator(-1024, 4096),
    "EINVAL",
    "allocator base",
  );
  expectError(() => new FrameAllocator(0, 0), "EINVAL", "allocator size");
  expectError(() => new FrameAllocator(NaN, 4096), "EINVAL", "NaN");
  expectError(() => new FrameAllocator(0, 1.5), "EINVAL", "1.5");
});

Deno.test("blocks are naturally aligned powers of two, 1 KiB to 8 MiB", () => {
  const fa = new FrameAllocator(0x4000_0000, 256 * MiB);
  const got: [number, number][] = [];
  for (let size = KiB; size <= 8 * MiB; size *= 2) {
    // Allocate a small block first so the big one cannot be at the base by luck.
    got.push([fa.alloc(KiB), KiB]);
    const pa = fa.alloc(size);
    assertEquals(pa % size, 0, `block of ${size} at ${pa.toString(16)}`);
    assertEquals(fa.blockSize(pa), size);
    got.push([pa, size]);
  }
  // Odd sizes round up to the next power of two (at least 1 KiB).
  for (
    const [req, size] of [[1, KiB], [1000, KiB], [1025, 2 * KiB], [
      3 * MiB,
      4 * MiB,
    ], [4097, 8192]]
  ) {
    const pa = fa.alloc(req!);
    assertEquals(fa.blockSize(pa), size);
    assertEquals(pa % size!, 0);
    got.push([pa, size!]);
  }
  // No overlaps.
  got.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < got.length; i++) {
    assert(got[i - 1]![0] + got[i - 1]![1] <= got[i]![0], "overlap");
  }
  for (const [pa, size] of got) {
    assert(pa >= fa.base && pa + size <= fa.base + fa.size);
  }
});

Deno.test("alignment holds above 2^32 and for sizes just above a power of two", () => {
  const fa = new FrameAllocator(2 ** 40, 2 ** 40);
  fa.alloc(KiB);
  const g = fa.alloc(GiB);
  assertEquals(g % GiB, 0);
  const big = fa.alloc(2 ** 36);
  assertEquals(big % 2 ** 36, 0);
  assert(big >= 2 ** 40);
  for (let k = 10; k < 39; k++) {
    const pa = fa.alloc(2 ** k + 1);
    assertEquals(fa.blockSize(pa), 2 ** (k + 1), `2^${k}+1`);
    assertEquals(pa % 2 ** (k + 1), 0);
    fa.free(pa);
  }
});

Deno.test("a request just above a large power of two gets the next order (log2 rounding)", () => {
  const fa = new FrameAllocator(0, 2 ** 51);
  for (const k of [47, 48, 49, 50]) {
    const pa = fa.alloc(2 ** k + 1);
    assert(fa.blockSize(pa) >= 2 ** k + 1, `2^${k}+1 got ${fa.blockSize(pa)}`);
    fa.free(pa);
  }
  assertEquals(fa.liveBlocks, 0);
});

Deno.test("freeing everything merges buddies back into the original blocks", () => {
  const fa = new FrameAllocator(0, 16 * MiB);
  const blocks: number[] = [];
  for (let i = 0; i < 100; i++) blocks.push(fa.alloc(KiB << (i % 8)));
  // Free in a scrambled order.
  for (let i = 0; i < blocks.length; i++) {
    fa.free(blocks[(i * 37) % blocks.length]!);
  }
  assertEquals(fa.liveBlocks, 0);
  assertEquals(fa.liveBytes, 0);
  // Only a fully merged allocator can hand out the whole range as one block.
  const whole = fa.alloc(16 * MiB);
  assertEquals(whole, 0);
  assertEquals(fa.blockSize(whole), 16 * MiB);
  expectError(() => fa.alloc(KiB), "ENOMEM");
  fa.free(whole);
});

Deno.test("an unaligned range is carved into naturally aligned blocks", () => {
  // [1 KiB, 1 KiB + 1 MiB): the biggest aligned block inside is 512 KiB.
  const fa = new FrameAllocator(KiB, MiB);
  expectError(() => fa.alloc(MiB), "ENOMEM", "0x100000");
  const half = fa.alloc(512 * KiB);
  assertEquals(half % (512 * KiB), 0);
  fa.free(half);
  // All of it can still be handed out in 1 KiB pieces, none outside the range.
  const all: number[] = [];
  for (let i = 0; i < 1024; i++) all.push(fa.alloc(KiB));
  expectError(() => fa.alloc(KiB), "ENOMEM");
  assertEquals(Math.min(...all), KiB);
  assertEquals(Math.max(...all), MiB);
  assertEquals(new Set(all).size, 1024);
  for (const pa of all) fa.free(pa);
  // Freeing never merged across the range ends: still no 1 MiB block.
  expectError(() => fa.alloc(MiB), "ENOMEM");
  assertEquals(fa.alloc(512 * KiB) % (512 * KiB), 0);
});

Deno.test("ENOMEM when exhausted leaves the state unchanged", () => {
  const fa = new FrameAllocator(0, 64 * KiB);
  const a = fa.alloc(32 * KiB);
  const b = fa.alloc(16 * KiB);
  const before = fa.stats();
  expectError(() => fa.alloc(32 * KiB), "ENOMEM", "0x8000");
  expectError(() => fa.alloc(64 * KiB + 1), "ENOMEM", "0x10001");
  const after = fa.stats();
  assertEquals(after.failures, before.failures + 2);
  assertEquals({ ...after, failures: 0 }, { ...before, failures: 0 });
  // What was free is still free and usable.
  const c = fa.alloc(16 * KiB);
  assertEquals(c, 48 * KiB);
  fa.free(a);
  fa.free(b);
  fa.free(c);
  assertEquals(fa.alloc(64 * KiB), 0);
});

Deno.test("alloc EINVAL for malformed sizes, with no state change", () => {
  const fa = new FrameAllocator(0, MiB);
  for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 53]) {
    expectError(() => fa.alloc(bad), "EINVAL", "allocation size", String(bad));
  }
  assertEquals(fa.stats(), {
    liveBlocks: 0,
    liveBytes: 0,
    freeBytes: MiB,
    allocations: 0,
    frees: 0,
    failures: 0,
    reservedBytes: 0,
  });
});

Deno.test("failNth: the Nth allocation from now fails once, then it disarms", () => {
  const fa = new FrameAllocator(0, MiB);
  fa.failNth(3);
  const a = fa.alloc(KiB);
  const b = fa.alloc(KiB);
  const before = fa.stats();
  expectError(() => fa.alloc(4096), "ENOMEM", "injected", "0x1000");
  assertEquals(fa.stats().failures, before.failures + 1);
  assertEquals(fa.stats().liveBlocks, before.liveBlocks);
  assertEquals(fa.stats().allocations, before.allocations);
  const c = fa.alloc(KiB); // disarmed
  assert(c >= 0);
  fa.failNth(1);
  expectError(() => fa.alloc(KiB), "ENOMEM");
  fa.alloc(KiB);
  // 0 disarms an armed countdown.
  fa.failNth(2);
  fa.failNth(0);
  for (let i = 0; i < 5; i++) fa.alloc(KiB);
  // A malformed request does not consume the countdown.
  fa.failNth(1);
  expectError(() => fa.alloc(0), "EINVAL");
  expectError(() => fa.alloc(KiB), "ENOMEM", "injected");
  for (const x of [a, b, c]) fa.free(x);
});

Deno.test("failNth rejects malformed counts with EINVAL and keeps the old countdown", () => {
  const fa = new FrameAllocator(0, MiB);
  fa.failNth(2);
  for (const bad of [-1, 1.5, NaN]) {
    expectError(
      () => fa.failNth(bad),
      "EINVAL",
      "failure countdown",
      String(bad),
    );
  }
  fa.alloc(KiB);
  expectError(() => fa.alloc(KiB), "ENOMEM", "injected");
});

Deno.test("free errors: ENOENT for double free, unknown or interior addresses", () => {
  const fa = new FrameAllocator(0x10_0000, MiB);
  const a = fa.alloc(8 * KiB);
  fa.free(a);
  const before = fa.stats();
  expectError(() => fa.free(a), "ENOENT", "0x" + a.toString(16));
  const b = fa.alloc(8 * KiB);
  expectError(() => fa.free(b + KiB), "ENOENT", "0x" + (b + KiB).toString(16));
  expectError(() => fa.free(0), "ENOENT", "0x0");
  expectError(() => fa.free(NaN), "ENOENT", "NaN");
  expectError(() => fa.free(-4096), "ENOENT", "-4096");
  assertEquals(fa.stats().frees, before.frees);
  assertEquals(fa.blockSize(b), 8 * KiB);
  assertEquals(fa.blockSize(b + KiB), 0);
  fa.free(b);
  assertEquals(fa.blockSize(b), 0);
});

Deno.test("stats count blocks, bytes, allocations, frees and failures", () => {
  const fa = new FrameAllocator(0, 4 * MiB);
  const a = fa.alloc(1); // counts as 1 KiB
  const b = fa.alloc(3000); // 4 KiB
  const c = fa.alloc(MiB);
  assertEquals(fa.liveBlocks, 3);
  assertEquals(fa.liveBytes, KiB + 4 * KiB + MiB);
  assertEquals(fa.allocations, 3);
  fa.free(b);
  expectError(() => fa.alloc(8 * MiB), "ENOMEM");
  assertEquals(fa.stats(), {
    liveBlocks: 2,
    liveBytes: KiB + MiB,
    freeBytes: 4 * MiB - KiB - MiB,
    allocations: 3,
    frees: 1,
    failures: 1,
    reservedBytes: 0,
  });
  fa.free(a);
  fa.free(c);
  assertEquals(fa.stats().liveBytes, 0);
  assertEquals(fa.stats().freeBytes, 4 * MiB);
});

Deno.test("frames from PhysicalMemory read zero, also after being freed dirty", () => {
  const ram = new PhysicalMemory({ base: 0x4000_0000, size: 16 * MiB });
  const a = ram.frames.alloc(8 * KiB);
  assertEquals(ram.readBytes(a, 8 * KiB), new Uint8Array(8 * KiB));
  ram.fill(a, 8 * KiB, 0xa5);
  ram.frames.free(a);
  assertEquals(ram.readBytes(a, 8 * KiB), new Uint8Array(8 * KiB));
  const b = ram.frames.alloc(8 * KiB);
  assertEquals(ram.read32(b + 100), 0);
  // onFree receives each freed block with its full size.
  const seen: [number, number][] = [];
  const fa = new FrameAllocator(0, MiB, (pa, bytes) => seen.push([pa, bytes]));
  const x = fa.alloc(3000);
  fa.free(x);
  assertEquals(seen, [[x, 4096]]);
});

Deno.test("random alloc/free never hands out overlapping blocks and liveBytes adds up (property)", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ alloc: fc.integer({ min: 1, max: 300 * KiB }) }),
          fc.record({ free: fc.nat() }),
          fc.record({ failNth: fc.integer({ min: 0, max: 3 }) }),
        ),
        { maxLength: 120 },
      ),
      (ops) => {
        const base = 0x8000_0000 + 64 * KiB; // not aligned to the range size
        const size = 2 * MiB - 64 * KiB;
        const fa = new FrameAllocator(base, size);
        const live = new Map<number, number>();
        let allocations = 0;
        for (const op of ops) {
          if ("alloc" in op) {
            try {
              const pa = fa.alloc(op.alloc);
              const bytes = fa.blockSize(pa);
              allocations++;
              assert(bytes >= op.alloc && bytes >= KiB);
              assertEquals(bytes & (bytes - 1), 0);
              assertEquals(pa % bytes, 0);
              assert(pa >= base && pa + bytes <= base + size);
              for (const [p, b] of live) {
                assert(pa + bytes <= p || p + b <= pa, "overlap");
              }
              live.set(pa, bytes);
            } catch (e) {
              if (!(e instanceof IommuError) || e.kind !== "ENOMEM") throw e;
            }
          } else if ("free" in op) {
            if (live.size === 0) continue;
            const keys = [...live.keys()];
            const pa = keys[op.free % keys.length]!;
            fa.free(pa);
            live.delete(pa);
          } else fa.failNth(op.failNth);
          let sum = 0;
          for (const b of live.values()) sum += b;
          assertEquals(fa.liveBytes, sum);
          assertEquals(fa.liveBlocks, live.size);
          assertEquals(fa.stats().freeBytes, size - sum);
          assertEquals(fa.allocations, allocations);
        }
        for (const pa of live.keys()) fa.free(pa);
        assertEquals(fa.liveBytes, 0);
        // Everything merged back: the largest aligned block fits again.
        fa.failNth(0);
        const big = fa.alloc(MiB);
        assertEquals(big, 0x8010_0000);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("reserve holds a range back: no allocation ever returns a byte of it", () => {
  const fa = new FrameAllocator(0x8000_0000, 8 * MiB);
  // Widened to whole 1 KiB blocks: [0x8000_0000, 0x8020_0400).
  assertEquals(fa.reserve(0x8000_0000, 2 * MiB + 1), 2 * MiB + KiB);
  assertEquals(fa.stats().reservedBytes, 2 * MiB + KiB);
  assertEquals(fa.stats().freeBytes, 8 * MiB - 2 * MiB - KiB);
  const got: number[] = [];
  for (;;) {
    try {
      got.push(fa.alloc(KiB));
    } catch {
      break;
    }
  }
  assertEquals(got.length, (8 * MiB - 2 * MiB - KiB) / KiB);
  for (const pa of got) assert(pa >= 0x8020_0400, `handed out ${pa}`);
  // Freed blocks merge again, but never with the reserved range: the
  // largest block afterwards is the 4 MiB one above it.
  for (const pa of got) fa.free(pa);
  assertEquals(fa.alloc(4 * MiB), 0x8040_0000);
  expectError(() => fa.alloc(4 * MiB), "ENOMEM");
  // Reserving again holds nothing new; a reserved byte cannot be freed.
  assertEquals(fa.reserve(0x8010_0000, 64 * KiB), 0);
  expectError(() => fa.free(0x8000_0000), "ENOENT");
});

Deno.test("reserve in the middle keeps both sides allocatable", () => {
  const fa = new FrameAllocator(0, 4 * MiB);
  assertEquals(fa.reserve(MiB + 512, 3 * KiB), 4 * KiB);
  const sizes = [MiB, 512 * KiB, 256 * KiB, 128 * KiB, 64 * KiB, 32 * KiB];
  let total = 0;
  const blocks: number[] = [];
  for (;;) {
    let took = false;
    for (const s of sizes) {
      try {
        const pa = fa.alloc(s);
        blocks.push(pa);
        assert(pa + s <= MiB || pa >= MiB + 4 * KiB, `block at ${pa}`);
        total += s;
        took = true;
        break;
      } catch {
        // try a smaller size
      }
    }
    if (!took) break;
  }
  // Everything but the reserved 4 KiB and the 1-16 KiB pieces beside it.
  assertEquals(total, 4 * MiB - 32 * KiB);
});

Deno.test("reserve errors: EINVAL, ERANGE, EBUSY, with no state change", () => {
  const fa = new FrameAllocator(MiB, MiB);
  const live = fa.alloc(4 * KiB);
  const before = fa.stats();
  for (
    const [pa, size, kind] of [
      [NaN, KiB, "EINVAL"],
      [MiB, 0, "EINVAL"],
      [MiB, -1, "EINVAL"],
      [-KiB, KiB, "EINVAL"],
      [0, KiB, "ERANGE"],
      [2 * MiB - KiB, 2 * KiB, "ERANGE"],
      [live + KiB, 1, "EBUSY"],
      [live + 3 * KiB, 2 * KiB, "EBUSY"],
    ] as const
  ) {
    expectError(() => fa.reserve(pa, size), kind);
  }
  assertEquals(fa.stats(), before);
  fa.free(live);
  assertEquals(fa.reserve(live, 4 * KiB), 4 * KiB);
});
