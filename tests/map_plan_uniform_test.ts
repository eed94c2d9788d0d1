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
