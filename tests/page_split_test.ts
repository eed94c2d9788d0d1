import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import { MapPlan, splitIntoPages } from "../core/mod.ts";

const K4 = 0x1000;
const M2 = 0x20_0000;
const G1 = 0x4000_0000;

type Run = [iova: number, pa: number, pageSize: number, pages: number];

function split(
  iova: number,
  pa: number,
  size: number,
  sizes: readonly number[],
): Run[] {
  const plan = new MapPlan(1); // grows while splitting
  splitIntoPages(iova, pa, size, sizes, plan);
  const out: Run[] = [];
  for (let i = 0; i < plan.count; i++) {
    out.push([plan.iova[i]!, plan.pa[i]!, plan.pageSize[i]!, plan.pages[i]!]);
  }
  assertEquals(plan.bytes, size);
  return out;
}

Deno.test("worked example (linux-iommu-dma.md §1.7): 16 x 4K then 2 x 2M", () => {
  assertEquals(split(0x1f0000, 0x1f0000, 0x410000, [K4, M2, G1]), [
    [0x1f0000, 0x1f0000, K4, 16],
    [0x200000, 0x200000, M2, 2],
  ]);
});

Deno.test("small pages stop at a larger boundary only when the rest can use it", () => {
  // Same start, but only 0x10000 + 0x1ff000 bytes: no 2M page fits after the boundary.
  assertEquals(split(0x1f0000, 0x1f0000, 0x20f000, [K4, M2, G1]), [
    [0x1f0000, 0x1f0000, K4, 0x20f],
  ]);
  // Small pages, 2M pages, then small pages again at the tail.
  assertEquals(split(0x1ff000, 0x1ff000, K4 + 2 * M2 + 3 * K4, [K4, M2, G1]), [
    [0x1ff000, 0x1ff000, K4, 1],
    [0x200000, 0x200000, M2, 2],
    [0x600000, 0x600000, K4, 3],
  ]);
});

Deno.test("iova and pa with different alignment use the smaller one", () => {
  // pa is only 4K-congruent with iova: 2M pages are impossible.
  assertEquals(split(0x200000, 0x201000, 2 * M2, [K4, M2, G1]), [
    [0x200000, 0x201000, K4, 1024],
  ]);
  // Congruent modulo 2M but not 1G: 2M pages, never 1G.
  assertEquals(split(G1, G1 + M2, G1, [K4, M2, G1]), [
    [G1, G1 + M2, M2, 512],
  ]);
});

Deno.test("a 1G page when both addresses allow, also above 2^32", () => {
  const hi = 5 * 2 ** 32;
  assertEquals(split(hi, 2 ** 40, G1 + M2 + K4, [K4, M2, G1]), [
    [hi, 2 ** 40, G1, 1],
    [hi + G1, 2 ** 40 + G1, M2, 1],
    [hi + G1 + M2, 2 ** 40 + G1 + M2, K4, 1],
  ]);
  // Alignment above 2^32: iova 4 GiB aligned, pa only 4K aligned above 2^32.
  assertEquals(split(2 ** 33, 2 ** 33 + K4, M2, [K4, M2]), [
    [2 ** 33, 2 ** 33 + K4, K4, 512],
  ]);
});

Deno.test("single page size and exynos-like bitmap {4K, 64K, 1M, 16M}", () => {
  assertEquals(split(0x3000, 0x7000, 5 * K4, [K4]), [[0x3000, 0x7000, K4, 5]]);
  const ex = [K4, 0x10000, 0x100000, 0x1000000];
  assertEquals(split(0xf000, 0x1f000, 0x1000 + 0x10000 * 2, ex), [
    [0xf000, 0x1f000, K4, 1],
    [0x10000, 0x20000, 0x10000, 2],
  ]);
  assertEquals(split(0, 0x1000000, 0x1000000 + 0x100000, ex), [
    [0, 0x1000000, 0x1000000, 1],
    [0x1000000, 0x2000000, 0x100000, 1],
  ]);
});

Deno.test("an empty request appends nothing; runs append after existing ones", () => {
  const plan = new MapPlan(2);
  plan.push(1, 2, 3, 4);
  splitIntoPages(0, 0, 0, [K4], plan);
  assertEquals(plan.count, 1);
  splitIntoPages(K4, K4, 2 * K4, [K4], plan);
  assertEquals(plan.count, 2);
  assertEquals([plan.iova[1], plan.pages[1]], [K4, 2]);
});

const BITMAPS: number[][] = [
  [K4, M2, G1],
  [K4, 0x10000, 0x100000, 0x1000000],
  [K4, 0x10000, M2],
  [K4],
  [0x10000, 0x20000000],
];

Deno.test("split property: exact cover, aligned runs, no run could use a larger page", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...BITMAPS),
      fc.integer({ min: 0, max: 2 ** 20 }),
      fc.integer({ min: 0, max: 2 ** 20 }),
      fc.integer({ min: 1, max: 2 ** 13 }),
      fc.integer({ min: 0, max: 3 }),
      fc.boolean(),
      (sizes, iovaUnits, paUnits, sizeUnits, highShift, congruent) => {
        const min = sizes[0]!;
        // Addresses spread up to 2^52, sometimes with shared low bits.
        const scale = [1, 2 ** 12, 2 ** 20, 2 ** 28][highShift]!;
        const iova = iovaUnits * min * scale;
        const pa = congruent ? iova + paUnits * G1 : paUnits * min * scale;
        const size = sizeUnits * min * (highShift === 3 ? 512 : 1);
        // Addresses are safe integers: 64 KiB units scaled by 2^28 can pass 2^53.
        fc.pre(iova + size <= 2 ** 52 && pa + size <= 2 ** 52);
        const runs = split(iova, pa, size, sizes);
        let at = iova, p = pa, total = 0;
        for (const [ri, rp, ps, n] of runs) {
          assert(sizes.includes(ps));
          assert(n >= 1 && Number.isInteger(n));
          assertEquals(ri, at, "runs are consecutive in IOVA");
          assertEquals(rp, p, "and in PA");
          assertEquals(ri % ps, 0, "run IOVA aligned to its page size");
          assertEquals(rp % ps, 0, "run PA aligned to its page size");
          // No leaf of the run could have been a larger page.
          for (let j = 0; j < Math.min(n, 64); j++) {
            const li = ri + j * ps, lp = rp + j * ps;
            const left = iova + size - li;
            for (const big of sizes) {
              if (big <= ps) continue;
              assert(
                !(li % big === 0 && lp % big === 0 && left >= big),
                `leaf at ${li.toString(16)} (${ps}) could be a ${big} page`,
              );
            }
          }
          at += ps * n;
          p += ps * n;
          total += ps * n;
        }
        assertEquals(total, size, "sum of pageSize x pages");
        // Consecutive runs differ (no needless split into equal-size runs).
        for (let i = 1; i < runs.length; i++) {
          assert(
            runs[i]![2] !== runs[i - 1]![2],
            "adjacent runs have different sizes",
          );
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("MapPlan: push grows, bytes sums, clear keeps storage", () => {
  const plan = new MapPlan(1);
  for (let i = 0; i < 100; i++) plan.push(i * K4, 2 ** 40 + i * K4, K4, i + 1);
  assertEquals(plan.count, 100);
  assertEquals(plan.bytes, K4 * (100 * 101) / 2);
  assertEquals(plan.pa[99], 2 ** 40 + 99 * K4);
  assertEquals(plan.pages[0], 1);
  const storage = plan.iova;
  plan.clear();
  assertEquals(plan.count, 0);
  assertEquals(plan.bytes, 0);
  assert(plan.iova === storage);
  plan.push(7, 8, 9, 10);
  assertEquals([plan.iova[0], plan.pa[0], plan.pageSize[0], plan.pages[0]], [
    7,
    8,
    9,
    10,
  ]);
  assertEquals(new MapPlan().iova.length, 64);
});

Deno.test("MapPlan with capacity 0 still records every run", () => {
  const plan = new MapPlan(0);
  plan.push(K4, 2 * K4, K4, 3);
  plan.push(4 * K4, 8 * K4, K4, 1);
  assertEquals(plan.count, 2);
  assertEquals([plan.iova[0], plan.pa[0], plan.pageSize[0], plan.pages[0]], [
    K4,
    2 * K4,
    K4,
    3,
  ]);
  assertEquals(plan.bytes, 4 * K4);
});
