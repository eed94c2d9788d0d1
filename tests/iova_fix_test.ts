// Fixes found in review of the IOVA allocator and its use by the DMA
// mapper: a refused allocation left queued node moves behind (audit
// failed), a request larger than a master's whole DMA window surfaced as
// ERANGE from the mapper instead of ENOMEM, a reservation ending where
// another starts was not merged, and symbol or null-prototype arguments
// threw raw TypeErrors.
import { assert, assertEquals } from "@std/assert";
import { IommuError } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_TO_DEVICE,
  IovaAllocator,
} from "../core/dma/mod.ts";
import { expectError } from "./support/assertions.ts";
import { dmaRig } from "./support/dma_rig.ts";

const K = 4096;

Deno.test("a refused allocation on a compacted tree leaves it settled (audit clean)", () => {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const a = new IovaAllocator({
    end: 2 ** 40,
    reserved: [{ start: 0, size: 2 ** 30 }],
  });
  const live: [number, number][] = [];
  for (let i = 0; i < 70_000; i++) {
    const s = (1 + rnd(64)) * K;
    live.push([a.alloc(s), s]);
  }
  const slots = a.stats().nodeSlots;
  for (let i = live.length - 1; i >= 0; i--) {
    if (rnd(10) < 7) {
      const [x, s] = live[i]!;
      a.free(x, s);
      live.splice(i, 1);
    }
  }
  a.flushCache();
  assert(a.stats().nodeSlots < slots, "the tree was compacted");
  // Churn: many cached ranges flushed at once leave nodes out of place.
  for (let r = 0; r < 3; r++) {
    const tmp: [number, number][] = [];
    for (let i = 0; i < 15_000; i++) {
      const s = (1 + rnd(32)) * K;
      tmp.push([a.alloc(s), s]);
    }
    for (const [x, s] of tmp) a.free(x, s);
    a.flushCache();
  }
  assertEquals(a.audit(), []);
  const before = a.stats();
  // The first request of a high alignment order re-summarises the tree,
  // then finds nothing below 1 GiB (reserved).
  expectError(() => a.alloc(2048 * K, 2 ** 30), "ENOMEM");
  assertEquals(a.audit(), [], "no node waits for a move");
  assertEquals(
    { ...a.stats(), allocFailures: before.allocFailures },
    before,
    "only the failure was counted",
  );
});

Deno.test("DmaMapper: a request larger than the whole DMA window is ENOMEM", () => {
  const r = dmaRig("flat", { dmaBits: 24 }, { size: 64 << 20 });
  const dma = createDmaMapper(r.soc, r.master);
  const before = dma.stats();
  const e = expectError(() => dma.allocCoherent(16 << 20), "ENOMEM", "IOVA");
  assert(e.cause instanceof IommuError && e.cause.kind === "ERANGE");
  const big = dma.cpu.allocBuffer(16 << 20);
  expectError(() => dma.mapSingle(big, DMA_TO_DEVICE), "ENOMEM");
  expectError(
    () => dma.mapSg([{ pa: big.pa, length: 16 << 20 }], DMA_TO_DEVICE),
    "ENOMEM",
  );
  assertEquals(dma.stats(), before, "nothing mapped or allocated");
  assertEquals(dma.mappings(), []);
  // What fits still maps.
  const c = dma.allocCoherent(8 << 20);
  dma.freeCoherent(c);
  big.free();
  dma.removeMaster();
});

Deno.test("reservations that touch merge, in either order", () => {
  for (
    const ranges of [
      [[8, 4], [12, 4]],
      [[12, 4], [8, 4]],
    ]
  ) {
    const a = new IovaAllocator({ end: 1 << 20 });
    for (const [g, n] of ranges) a.reserve(g! * K, n! * K);
    assertEquals(a.stats().reservedRanges, 1, JSON.stringify(ranges));
    assertEquals(a.audit(), []);
    const b = new IovaAllocator({
      end: 1 << 20,
      reserved: ranges.map(([g, n]) => ({ start: g! * K, size: n! * K })),
    });
    assertEquals(b.stats().reservedRanges, 1, `constructor ${ranges}`);
  }
  // A live allocation starting where a reservation ends stays separate.
  const a = new IovaAllocator({ end: 16 * K, cacheMaxSize: 0 });
  const top = a.alloc(K); // the highest granule
  a.reserve(top - 2 * K, 2 * K);
  assertEquals(a.stats().reservedRanges, 1);
  assertEquals(a.find(top), { start: top, size: K });
  assertEquals(a.audit(), []);
});

Deno.test("symbols and null-prototype objects are EINVAL, not raw TypeErrors", () => {
  const a = new IovaAllocator({ end: 1 << 30 });
  const held = a.alloc(K);
  const before = a.stats();
  const odd = [Symbol("x"), Object.create(null)] as unknown as number[];
  for (const v of odd) {
    expectError(() => a.alloc(v), "EINVAL");
    expectError(() => a.alloc(K, v), "EINVAL");
    expectError(() => a.free(v, K), "EINVAL");
    expectError(() => a.free(held, v), "EINVAL");
  }
  assertEquals(a.stats(), before);
});
