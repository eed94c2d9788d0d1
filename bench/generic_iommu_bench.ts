// generic-iommu translation by which cache serves it, 65,536 accesses per
// iteration: a micro-TLB hit (one page, and 16 pages round robin, which fit
// its 32 direct-mapped entries), an IOTLB hit (micro TLB off) and a miss
// plus a full 4-level walk (no IOTLB, no walk cache). The batched map and unmap of
// this plugin are in map_bench.ts. Run:
//   deno bench -A bench/generic_iommu_bench.ts
import { ACCESS_READ } from "../core/mod.ts";
import { rig, type RigOptions, scatteredFrames, sink } from "./rig.ts";

const N = 65_536;
const IOVA = 0x1000_0000;
const RW = 3;
const NONE = { sets: 0, ways: 0 } as const;

/** A unit with 16 pages mapped; 16 pages stay in its IOTLB. */
function unit(options: RigOptions) {
  const r = rig("generic", options);
  r.domain.mapPages(IOVA, scatteredFrames(16), RW);
  return { hw: r.unit.hardware, sid: r.sid };
}

// [name, unit, mask, stride]: IOVA offset (i * stride) & mask. Stride
// 4104 steps one page plus 8 bytes, round robin over the 16 pages.
const cases = [
  ["65,536 translations, micro-TLB hits (same page)", unit({}), 0xff8, 1],
  [
    "65,536 translations, micro-TLB hits (16 pages round robin)",
    unit({}),
    0xfff8,
    4104,
  ],
  [
    "65,536 translations, IOTLB hits (16 pages round robin, no micro TLB)",
    unit({ microTlb: false }),
    0xfff8,
    4104,
  ],
  [
    "65,536 translations, miss + full 4-level walk (no TLB, no walk cache)",
    unit({ microTlb: false, tlb: NONE, walkCache: [NONE, NONE, NONE] }),
    0xfff8,
    4104,
  ],
] as const;

for (const [name, { hw, sid }, mask, stride] of cases) {
  Deno.bench({
    name,
    group: "translate 65,536 accesses · generic_iommu_bench",
    baseline: stride === 1,
    fn() {
      let s = 0;
      for (let i = 0; i < N; i++) {
        s += hw.translate(sid, IOVA + ((i * stride) & mask), ACCESS_READ);
      }
      sink.value += s;
    },
  });
}
