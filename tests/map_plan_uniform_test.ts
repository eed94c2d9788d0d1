// MapPlan.uniform: the hint a driver may use to read only `pa` must be set
// exactly when every run is one page at consecutive IOVAs, and must agree
// with the arrays it lets a driver skip.
import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { createSoc, type Domain, MapPlan } from "../core/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";

const K4 = 4096;
const M2 = 0x20_0000;

interface Seen {
  uniform: number;
  consistent: boolean;
}

// A domain whose driver map is wrapped to record each plan's hint and
// whether the arrays agree with it.
function recordingDomain(): { domain: Domain; seen: Seen[] } {
  const soc = createSoc({ memory: { base: 0, size: 1 << 30 } }).use(
    genericIommu(),
  );
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const domain = soc.createDomain(unit);
  const ops = domain.ops;
  const map = ops.map.bind(ops);
  const seen: Seen[] = [];
  ops.map = (plan: MapPlan, prot: number): void => {
    let consistent = true;
    if (plan.uniform !== 0) {
      for (let i = 0; i < plan.count; i++) {
        if (
          plan.pages[i] !== 1 || plan.pageSize[i] !== plan.uniform ||
          plan.iova[i] !== plan.iova[0]! + i * plan.uniform ||
          plan.start !== plan.iova[0]
        ) consistent = false;
      }
    }
    seen.push({ uniform: plan.uniform, consistent });
    map(plan, prot);
  };
  return { domain, seen };
}

Deno.test("uniform: set for scattered frames, 0 when anything coalesced or for map/mapSg", () => {
  const { domain, seen } = recordingDomain();
  domain.mapPages(0x10_0000, [0x20_0000, 0x50_0000, 0x30_0000], 3);
  // Two contiguous frames coalesce into one run of two pages.
  domain.mapPages(0x20_0000, [0x60_0000, 0x60_1000, 0x80_0000], 3);
  domain.map(0x40_0000, 0x40_0000, 2 * K4, 3);
  domain.mapSg(0x50_0000, [{ pa: 0x90_0000, length: K4 }], 3);
  // 2 MiB frames with 2 MiB pages: uniform at that size.
  domain.mapPages(0x4000_0000, [0x2000_0000, 0x1000_0000], 3, M2);
  assertEquals(seen.map((s) => s.uniform), [K4, 0, 0, 0, M2]);
});

Deno.test("uniform agrees with the arrays for any frame list (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 63 }), {
        minLength: 1,
        maxLength: 64,
      }),
      (slots) => {
        const { domain, seen } = recordingDomain();
        domain.mapPages(0x100_0000, slots.map((s) => s * K4), 3);
        const s = seen[0]!;
        assertEquals(s.consistent, true);
        const contiguous = slots.some((v, i) =>
          i > 0 && v === slots[i - 1]! + 1
        );
        assertEquals(s.uniform, contiguous ? 0 : K4);
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("clear() forgets the hint", () => {
  const plan = new MapPlan(1);
  plan.uniform = K4;
  plan.push(0, 0, K4, 1);
  plan.clear();
  assertEquals([plan.count, plan.uniform], [0, 0]);
});

// Drivers may take a one-pass path for uniform plans: the result must be the
// same mappings, and EEXIST / ENOMEM must still change nothing.

for (const kind of ["samsung", "generic"] as const) {
  Deno.test(`${kind}: a uniform batch across table boundaries maps every page, and fails atomically`, () => {
    const soc = createSoc({ memory: { base: 0, size: 1 << 30 } }).use(
      kind === "samsung" ? samsungSysmmu() : genericIommu(),
    );
    const unit = soc.probeUnit({
      name: "u",
      compatible: [
        kind === "samsung" ? "samsung,exynos-sysmmu" : "iommukit,generic-iommu",
      ],
    });
    const domain = soc.createDomain(unit);
    // 1,000 scattered pages from 0.5 MiB before a 2 MiB (and 1 MiB)
    // boundary: several level-2 / level-3 tables.
    const base = 0x1ff8_0000;
    const frames = Array.from(
      { length: 1000 },
      (_, i) => 0x100_0000 + i * 3 * K4,
    );
    domain.mapPages(base, frames, 3);
    for (let i = 0; i < 1000; i += 37) {
      assertEquals(domain.iovaToPhys(base + i * K4 + 5), frames[i]! + 5);
    }
    assertEquals(domain.leaves().length, 1000);
    // A batch overlapping the last page: EEXIST, nothing changes.
    const digest = soc.memory.digest();
    const live = soc.memory.frames.liveBytes;
    const more = Array.from({ length: 600 }, (_, i) => 0x400_0000 + i * 2 * K4);
    let kindSeen = "";
    try {
      domain.mapPages(base + 400 * K4 + 999 * K4 - 599 * K4, more, 3);
    } catch (e) {
      kindSeen = (e as { kind: string }).kind;
    }
    assertEquals(kindSeen, "EEXIST");
    assertEquals(soc.memory.digest(), digest);
    assertEquals(soc.memory.frames.liveBytes, live);
    // A batch needing new tables, with the second table allocation failing.
    soc.memory.frames.failNth(2);
    kindSeen = "";
    try {
      domain.mapPages(0x4000_0000 - 300 * K4, more, 3);
    } catch (e) {
      kindSeen = (e as { kind: string }).kind;
    }
    soc.memory.frames.failNth(0);
    assertEquals(kindSeen, "ENOMEM");
    assertEquals(soc.memory.digest(), digest);
    assertEquals(soc.memory.frames.liveBytes, live);
    // And then it succeeds.
    domain.mapPages(0x4000_0000 - 300 * K4, more, 3);
    assertEquals(domain.leaves().length, 1600);
  });
}

Deno.test("setUniform: a Float64Array is read in place, the other arrays appear on first access", () => {
  const plan = new MapPlan(2);
  const frames = new Float64Array([0x5000, 0x9000, 0x2000, 0x7000]);
  plan.setUniform(0x10_0000, K4, frames, 3);
  assertEquals([plan.count, plan.uniform, plan.start], [3, K4, 0x10_0000]);
  assertEquals(plan.pa === frames, true); // no copy
  assertEquals(plan.bytes, 3 * K4);
  // Reading iova writes all three arrays (grown past the capacity of 2).
  assertEquals([...plan.iova.subarray(0, 3)], [
    0x10_0000,
    0x10_1000,
    0x10_2000,
  ]);
  assertEquals([...plan.pageSize.subarray(0, 3)], [K4, K4, K4]);
  assertEquals([...plan.pages.subarray(0, 3)], [1, 1, 1]);
  assertEquals(plan.start, 0x10_0000);
  assertEquals(plan.bytes, 3 * K4);
  // Appending copies the frames into the plan's storage first.
  plan.push(0x20_0000, 0x40_0000, M2, 1);
  assertEquals(plan.pa === frames, false);
  assertEquals([...plan.pa.subarray(0, 4)], [
    0x5000,
    0x9000,
    0x2000,
    0x40_0000,
  ]);
  assertEquals([...frames], [0x5000, 0x9000, 0x2000, 0x7000]);
  assertEquals(plan.bytes, 3 * K4 + M2);
  // clear() lets go of the caller's array.
  plan.setUniform(0, K4, frames, 2);
  plan.clear();
  assertEquals([plan.count, plan.uniform, plan.start], [0, 0, 0]);
  assertEquals(plan.pa === frames, false);
});

Deno.test("setUniform: other lists are copied; reserve and push after it keep every run", () => {
  const plan = new MapPlan(0);
  const frames = [0x3000, 0x1000, 0x8000];
  plan.setUniform(0x4000, K4, frames, 3);
  frames[0] = 0xdead_0000; // the plan holds a copy
  assertEquals([...plan.pa.subarray(0, 3)], [0x3000, 0x1000, 0x8000]);
  plan.reserve(100);
  assertEquals(plan.iova.length >= 100, true);
  assertEquals([...plan.iova.subarray(0, 3)], [0x4000, 0x5000, 0x6000]);
  plan.push(0x7000, 0x9000, K4, 2);
  assertEquals(plan.count, 4);
  assertEquals(plan.uniform, K4); // push does not judge the hint
  assertEquals([...plan.pages.subarray(0, 4)], [1, 1, 1, 2]);
  assertEquals([...plan.pa.subarray(0, 4)], [0x3000, 0x1000, 0x8000, 0x9000]);
  // An aliased pa survives growth on push.
  const big = new Float64Array(5).map((_, i) => (i + 1) * 2 * K4);
  const small = new MapPlan(1);
  small.setUniform(0, K4, big, 5);
  small.push(5 * K4, 0x100_0000, K4, 1);
  assertEquals([...small.pa.subarray(0, 6)], [...big, 0x100_0000]);
  assertEquals([...small.iova.subarray(0, 6)], [
    0,
    K4,
    2 * K4,
    3 * K4,
    4 * K4,
    5 * K4,
  ]);
});

Deno.test("mapPages of a Float64Array: the plan reads it in place, later changes to it do not leak", () => {
  const { domain, seen } = recordingDomain();
  const frames = new Float64Array([0x20_0000, 0x50_0000, 0x30_0000]);
  domain.mapPages(0x10_0000, frames, 3);
  frames.fill(0x70_0000);
  assertEquals(domain.iovaToPhys(0x10_1004), 0x50_0004);
  domain.mapPages(0x90_0000, new Float64Array([0x1000, 0x3000]), 3);
  assertEquals(domain.iovaToPhys(0x90_1000), 0x3000);
  assertEquals(seen.map((s) => [s.uniform, s.consistent]), [[K4, true], [
    K4,
    true,
  ]]);
  assertEquals(domain.counters().leavesMapped, 5);
  assertEquals(domain.counters().bytesMapped, 5 * K4);
});
