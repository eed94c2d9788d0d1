/**
 * Domain.sync's check of a gather's free list through the domain's
 * reusable marks (core/page_marks.ts): the entries must be tables this
 * domain deferred into the gather since its last reset, live blocks, none
 * twice; the marks survive many cycles and growth, and every refusal leaves
 * the tables, the gather and the counters as they were.
 */
import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  type Domain,
  type IommuDomainOps,
  IotlbGather,
  type Soc,
} from "../core/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { expectError } from "./support/assertions.ts";

const RW = 3;
const K4 = 4096;
const M2 = 2 << 20;

// The upper-level tables of the regions the tests use are made once here
// (the page table keeps them), so what an unmap frees is all a map took.
function rig(): { soc: Soc; d: Domain } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 << 20 } });
  const unit = soc.use(genericIommu()).probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const d = soc.createDomain(unit);
  for (const at of [0, 2 ** 31, 2 ** 32]) {
    mapSpread(d, 300, at);
    d.unmap(at, 300 * M2);
  }
  return { soc, d };
}

function hexOf(v: number): string {
  return "0x" + v.toString(16);
}

// A page in each of `n` 2 MiB regions: n level-3 tables to free.
function mapSpread(d: Domain, n: number, at = 0): void {
  for (let i = 0; i < n; i++) d.map(at + i * M2, 0x4000_0000 + i * K4, K4, RW);
}

// Make the driver's unmapPages also defer what `extra` returns (given the
// gather and where this call's own entries start) after its own tables.
function deferAlso(
  d: Domain,
  extra: (gather: IotlbGather, from: number) => number[],
): () => void {
  const ops = d.ops as IommuDomainOps & {
    unmapPages: IommuDomainOps["unmapPages"];
  };
  const real = ops.unmapPages;
  ops.unmapPages = (iova, pageSize, count, gather) => {
    const from = gather.freeList.length;
    const bytes = real.call(ops, iova, pageSize, count, gather);
    for (const pa of extra(gather, from)) gather.deferFree(pa);
    return bytes;
  };
  return () => void (ops.unmapPages = real);
}

function unchangedBy(
  soc: Soc,
  d: Domain,
  g: IotlbGather,
  f: () => void,
): void {
  const before = [
    soc.memory.frames.liveBytes,
    d.counters().syncs,
    [...g.freeList],
  ];
  f();
  assertEquals(
    [soc.memory.frames.liveBytes, d.counters().syncs, [...g.freeList]],
    before,
  );
}

Deno.test("a table a driver defers twice: EINVAL 'listed twice', nothing freed", () => {
  const { soc, d } = rig();
  const frames = soc.memory.frames;
  const base = frames.liveBytes;
  mapSpread(d, 3);
  const g = new IotlbGather();
  let dup = -1;
  // The driver's first table is deferred a second time.
  const restore = deferAlso(
    d,
    (gather, from) => [dup = gather.freeList[from]!],
  );
  d.unmapNoSync(0, 3 * M2, g);
  restore();
  assert(g.freeList.length >= 4);
  unchangedBy(soc, d, g, () => {
    const e = expectError(() => d.sync(g), "EINVAL", hexOf(dup), "not a live");
    assert(e.message.endsWith("(listed twice)"), e.message);
  });
  // Without the second entry the same gather syncs.
  g.freeList.pop();
  d.sync(g);
  assertEquals(frames.liveBytes, base);
});

Deno.test("a deferred address that is no live block: EINVAL without 'listed twice'", () => {
  const { soc, d } = rig();
  mapSpread(d, 2);
  const g = new IotlbGather();
  const free = 0x4300_0000; // inside RAM, never allocated
  assertEquals(soc.memory.frames.blockSize(free), 0);
  const restore = deferAlso(d, () => [free]);
  d.unmapNoSync(0, 2 * M2, g);
  restore();
  unchangedBy(soc, d, g, () => {
    const e = expectError(
      () => d.sync(g),
      "EINVAL",
      hexOf(free),
      "not a live page-table block",
    );
    assert(!e.message.includes("twice"), e.message);
  });
  g.freeList.pop();
  d.sync(g);
});

Deno.test("the free list's order does not matter; an entry added by hand does", () => {
  const { soc, d } = rig();
  const frames = soc.memory.frames;
  const base = frames.liveBytes;
  mapSpread(d, 5);
  const g = new IotlbGather();
  d.unmapNoSync(0, 2 * M2, g);
  // An entry between two unmaps: the second unmap's marks start after it.
  const stray = frames.alloc(K4);
  g.freeList.push(stray);
  d.unmapNoSync(2 * M2, 3 * M2, g);
  unchangedBy(soc, d, g, () => {
    expectError(() => d.sync(g), "EINVAL", hexOf(stray), "did not defer");
  });
  g.freeList.splice(g.freeList.indexOf(stray), 1);
  g.freeList.reverse();
  d.sync(g);
  frames.free(stray);
  assertEquals(frames.liveBytes, base);
});

Deno.test("a free list emptied by hand drops the marks of what it held", () => {
  const { soc, d } = rig();
  mapSpread(d, 4);
  const g = new IotlbGather();
  d.unmapNoSync(0, 2 * M2, g);
  const leaked = [...g.freeList];
  g.freeList.length = 0; // those tables are the caller's problem now
  d.unmapNoSync(2 * M2, 2 * M2, g);
  g.freeList.push(leaked[0]!);
  unchangedBy(soc, d, g, () => {
    expectError(() => d.sync(g), "EINVAL", hexOf(leaked[0]!), "did not defer");
  });
  g.freeList.pop();
  d.sync(g);
  // A reset by hand, then an old table pushed before the next unmap: the
  // unmap's marks start after it, in a new epoch without the old marks.
  mapSpread(d, 4);
  d.unmapNoSync(0, 2 * M2, g);
  const before = [...g.freeList];
  g.reset();
  g.freeList.push(before[0]!);
  d.unmapNoSync(2 * M2, 2 * M2, g);
  assert(g.freeList.length > 1);
  // Last, so the error names it only when the new tables pass.
  g.freeList.push(g.freeList.shift()!);
  unchangedBy(soc, d, g, () => {
    expectError(() => d.sync(g), "EINVAL", hexOf(before[0]!), "did not defer");
  });
  g.freeList.pop();
  d.sync(g);
  for (const pa of [...leaked, ...before]) soc.memory.frames.free(pa);
});

Deno.test("marks are reused across many cycles and grow past hundreds of tables", () => {
  const { soc, d } = rig();
  const frames = soc.memory.frames;
  const base = frames.liveBytes;
  const g = new IotlbGather();
  let earlier: number[] = [];
  let staleChecked = 0;
  for (let cycle = 0; cycle < 40; cycle++) {
    const n = cycle % 2 === 0 ? 300 : 3;
    mapSpread(d, n, (cycle % 3) * 2 ** 31);
    if (cycle % 4 === 1) {
      d.unmap((cycle % 3) * 2 ** 31, n * M2); // the domain's own gather
    } else {
      d.unmapNoSync((cycle % 3) * 2 ** 31, n * M2, g);
      assert(g.freeList.length >= n, `${g.freeList.length} tables`);
      // A table listed twice is found in every cycle's pass.
      g.freeList.push(g.freeList[0]!);
      expectError(() => d.sync(g), "EINVAL", "listed twice");
      g.freeList.pop();
      // A table of an earlier cycle (freed since) is no longer this
      // gather's: refused as not deferred, not taken for a stale mark.
      const stale = earlier.find((pa) => !g.freeList.includes(pa));
      if (stale !== undefined) {
        g.freeList.push(stale);
        expectError(() => d.sync(g), "EINVAL", hexOf(stale), "did not defer");
        g.freeList.pop();
        staleChecked++;
      }
      earlier = [...g.freeList];
      d.sync(g);
    }
    assertEquals(frames.liveBytes, base, `cycle ${cycle}`);
  }
  assertEquals(d.leaves(), []);
  assert(staleChecked >= 10, `${staleChecked} stale tables tried`);
});
