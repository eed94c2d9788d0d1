import { assert, assertEquals } from "@std/assert";
import { IotlbGather } from "../core/mod.ts";

Deno.test("a new gather is empty", () => {
  const g = new IotlbGather();
  assert(g.isEmpty);
  assertEquals(g.start, Infinity);
  assertEquals(g.end, -1);
  assertEquals(g.pageSize, 0);
  assertEquals(g.leaves, 0);
  assertEquals(g.freeList, []);
});

Deno.test("add keeps the hull with an inclusive end, the smallest granule and the leaf count", () => {
  const g = new IotlbGather();
  g.add(0x20_0000, 0x1000, 4);
  assertEquals([g.start, g.end, g.pageSize, g.leaves], [
    0x20_0000,
    0x20_3fff,
    0x1000,
    4,
  ]);
  assert(!g.isEmpty);
  g.add(0x40_0000, 0x20_0000); // default count 1
  assertEquals([g.start, g.end, g.pageSize, g.leaves], [
    0x20_0000,
    0x5f_ffff,
    0x1000,
    5,
  ]);
  g.add(0x1000, 0x1000);
  assertEquals(g.start, 0x1000);
  assertEquals(g.end, 0x5f_ffff);
  // A larger page never raises the granule; a smaller one lowers it.
  const h = new IotlbGather();
  h.add(0, 0x20_0000);
  assertEquals(h.pageSize, 0x20_0000);
  h.add(0x20_0000, 0x1000);
  assertEquals(h.pageSize, 0x1000);
  h.add(0x40_0000, 0x4000_0000);
  assertEquals(h.pageSize, 0x1000);
  assertEquals(h.end, 0x4040_0000 - 1);
});

Deno.test("add works above 2^32", () => {
  const g = new IotlbGather();
  g.add(2 ** 40, 0x1000, 2);
  assertEquals(g.start, 2 ** 40);
  assertEquals(g.end, 2 ** 40 + 0x1fff);
});

Deno.test("deferFree alone makes the gather non-empty; reset forgets everything", () => {
  const g = new IotlbGather();
  g.deferFree(0x4000_1000);
  assert(!g.isEmpty);
  g.deferFree(0x4000_2000);
  assertEquals(g.freeList, [0x4000_1000, 0x4000_2000]);
  g.add(0x1000, 0x1000, 3);
  const list = g.freeList;
  g.reset();
  assert(g.isEmpty);
  assertEquals([g.start, g.end, g.pageSize, g.leaves], [Infinity, -1, 0, 0]);
  assertEquals(g.freeList.length, 0);
  assert(list === g.freeList, "the free list is reused, not reallocated");
});

Deno.test("add with a count of 0 gathers nothing (no range ending before its start)", () => {
  const g = new IotlbGather();
  g.add(0x2200_0000, 4096, 0);
  assert(g.isEmpty);
  assertEquals([g.start, g.end, g.pageSize, g.leaves], [Infinity, -1, 0, 0]);
  g.add(0x1000, 4096, 2);
  g.add(0x9000_0000, 2 << 20, 0);
  assertEquals([g.start, g.end, g.pageSize, g.leaves], [
    0x1000,
    0x2fff,
    4096,
    2,
  ]);
});

Deno.test("reset counts epochs, so a reused gather tells its fills apart", () => {
  const g = new IotlbGather();
  const first = g.epoch;
  g.deferFree(0x4000_0000);
  g.reset();
  assertEquals(g.epoch, first + 1);
  g.reset();
  assertEquals(g.epoch, first + 2);
});
