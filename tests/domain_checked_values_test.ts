// What a Domain checks is what its driver maps (review findings): a frame
// list or sg segment whose values change between reads, a plan kept from
// an earlier call, and a gather reused after a manual reset cannot slip
// unchecked values or live tables past the checks.
import { assertEquals } from "@std/assert";
import {
  createSoc,
  type Domain,
  IOMMU_READ,
  IOMMU_WRITE,
  IotlbGather,
  type MapPlan,
  type Soc,
} from "../core/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";
import { expectError } from "./support/assertions.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const KINDS = ["generic", "samsung"] as const;

function rig(kind: (typeof KINDS)[number]): { soc: Soc; d: Domain } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 << 20 } });
  const unit = kind === "generic"
    ? soc.use(genericIommu()).probeUnit({
      name: "smmu",
      compatible: ["iommukit,generic-iommu"],
    })
    : soc.use(samsungSysmmu()).probeUnit({
      name: "sysmmu",
      compatible: ["samsung,exynos-sysmmu"],
    });
  return { soc, d: soc.createDomain(unit) };
}

// A frame list whose every element reads `good` once, then `evil`.
function flipping(good: number[], evil: unknown): number[] {
  const reads = new Map<number, number>();
  return new Proxy(good, {
    get(target, key) {
      if (typeof key === "string" && /^\d+$/.test(key)) {
        const i = Number(key);
        const n = (reads.get(i) ?? 0) + 1;
        reads.set(i, n);
        return n === 1 ? target[i] : evil;
      }
      return Reflect.get(target, key);
    },
  });
}

Deno.test("mapPages maps the frame values it checked, whatever the list does later", () => {
  for (const kind of KINDS) {
    for (const evil of [NaN, -4096, 0x4000_0800, 2 ** 52, 1n]) {
      const { d } = rig(kind);
      d.mapPages(0x10000, flipping([0x4010_0000, 0x4030_0000], evil), RW);
      assertEquals(
        [d.iovaToPhys(0x10000), d.iovaToPhys(0x11000)],
        [0x4010_0000, 0x4030_0000],
        `${kind}, later reads ${String(evil)}`,
      );
    }
    // A value that is bad on its one read is refused, nothing mapped.
    const { d } = rig(kind);
    expectError(
      () => d.mapPages(0x10000, [0x4010_0000, 4096n as unknown as number], RW),
      "EINVAL",
      "frame 1",
    );
    assertEquals(d.leaves(), []);
  }
});

Deno.test("mapSg maps the segment values it checked, whatever getters return later", () => {
  for (const kind of KINDS) {
    const { d } = rig(kind);
    let paReads = 0, lengthReads = 0;
    const seg = {
      get pa(): number {
        return paReads++ === 0 ? 0x4010_0000 : NaN;
      },
      get length(): number {
        return lengthReads++ === 0 ? 4096 : 3 * 4096 + 100;
      },
    };
    assertEquals(d.mapSg(0x10000, [seg], RW), 4096);
    assertEquals([paReads, lengthReads], [1, 1], "each read once");
    assertEquals(
      d.leaves().map((l) => [l.iova, l.pa, l.pageSize]),
      [[0x10000, 0x4010_0000, 4096]],
      kind,
    );
  }
});

Deno.test("a plan kept from an earlier map is checked like any other", () => {
  for (const kind of KINDS) {
    const { d } = rig(kind);
    const ops = d.ops as unknown as {
      map(plan: MapPlan, prot: number): void;
    };
    const realMap = ops.map.bind(ops);
    let kept: MapPlan | null = null;
    ops.map = (plan, prot) => {
      kept = plan;
      realMap(plan, prot);
    };
    d.map(0x10000, 0x4010_0000, 4096, RW);
    const plan = kept as MapPlan | null;
    if (plan === null) throw new Error("the driver's map was not called");
    plan.clear();
    plan.push(0x20000, NaN, 4096, 1);
    expectError(() => realMap(plan, RW), "EINVAL", "NaN");
    assertEquals(d.leaves().length, 1, kind);
  }
});

Deno.test("sync refuses a live table slipped into a gather reset by hand", () => {
  const { soc, d } = rig("generic");
  const g = new IotlbGather();
  d.map(0x20_0000, 0x4100_0000, 4096, RW); // allocates a level-3 table
  d.unmapNoSync(0x20_0000, 0x20_0000, g); // which is deferred into g
  const table = g.freeList[0]!;
  // The old manual release: flush, free by hand, reset.
  d.flushAll();
  for (const pa of g.freeList) soc.memory.frames.free(pa);
  g.reset();
  d.map(0x40_0000, 0x4100_0000, 4096, RW); // the frame is a table again
  assertEquals(soc.memory.frames.blockSize(table), 4096);
  g.deferFree(table);
  expectError(() => d.sync(g), "EINVAL", "did not defer");
  assertEquals(d.iovaToPhys(0x40_0000), 0x4100_0000, "the table still maps");
});

Deno.test("a getter that maps into the same domain again leaves the outer call's values alone", () => {
  for (const kind of KINDS) {
    const { soc, d } = rig(kind);
    const a = soc.memory.frames.alloc(4 * 4096);
    const b = soc.memory.frames.alloc(1 << 20);
    // mapPages: the nested call's frame list is copied too (an array).
    let nested = false;
    const frames = [a, a + 4096, a + 2 * 4096, a + 3 * 4096];
    const list = new Proxy(frames, {
      get(target, key) {
        if (key === "1" && !nested) {
          nested = true;
          d.mapPages(0x100_0000, [b, b + 8192, b + 3 * 8192], RW);
        }
        return Reflect.get(target, key);
      },
    });
    d.mapPages(0x10000, list, RW);
    for (let i = 0; i < 4; i++) {
      assertEquals(
        d.iovaToPhys(0x10000 + i * 4096),
        frames[i],
        `${kind} page ${i}`,
      );
    }
    assertEquals(d.iovaToPhys(0x100_1000), b + 8192);
    // mapSg: a segment getter maps 1 MiB elsewhere; the outer call maps
    // exactly its own 8 KiB.
    nested = false;
    const segments = [
      { pa: a, length: 4096 },
      {
        get pa(): number {
          if (!nested) {
            nested = true;
            d.mapSg(0x200_0000, [{ pa: b, length: 1 << 20 }], RW);
          }
          return a + 4096;
        },
        length: 4096,
      },
    ];
    const leavesBefore = d.leaves().length;
    d.mapSg(0x40_0000, segments, RW);
    assertEquals(d.iovaToPhys(0x40_0000), a, kind);
    assertEquals(d.iovaToPhys(0x40_1000), a + 4096, kind);
    assertEquals(d.iovaToPhys(0x40_2000), -1, kind);
    assertEquals(d.iovaToPhys(0x200_0000), b, kind);
    const added = d.leaves().length - leavesBefore;
    // 2 pages, plus the nested MiB (256 pages, or one samsung section).
    assertEquals(added, kind === "generic" ? 2 + 256 : 2 + 1, kind);
  }
});
