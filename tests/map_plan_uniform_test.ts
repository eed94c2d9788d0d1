// MapPlan.uniform: the hint a driver may use to read only `pa` must be set
// exactly when every run is one page at consecutive IOVAs, and must agree
// with the arrays it lets a driver skip.
import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { createSoc, type Domain, MapPlan } from "../core/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";

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
          plan.iova[i] !== plan.iova[0]! + i * plan.uniform
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
