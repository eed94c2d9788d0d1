// samsung-sysmmu across generations: what changes from v3.3 to v5.0 for one
// batched map and one batched unmap of 65,536 scattered 4 KiB frames (v3.3
// has no range invalidation: past 64 entries the driver writes FLUSH_ALL;
// v5.0 writes one range flush), and one translation with a TLB hit or a miss
// plus a two-level walk per bench call. The per-page baselines of the
// batched calls are in map_bench.ts. Run:
//   deno bench -A bench/samsung_bench.ts
import { rig, scatteredFrames, sink } from "./rig.ts";

const N = 65_536;
const IOVA = 0x1000_0000;
const RW = 3;

const frames = scatteredFrames(N);
const v33 = rig("samsung").domain;
const v5 = rig("samsung-v5").domain;
// Warm: level-2 tables exist from then on (leaf unmaps do not free them).
for (const d of [v33, v5]) {
  d.mapPages(IOVA, frames, RW);
  d.unmap(IOVA, N * 4096);
}

for (
  const [label, domain, baseline] of [["v3.3", v33, true], [
    "v5.0",
    v5,
    false,
  ]] as const
) {
  Deno.bench({
    name: `one mapPages() call (${label})`,
    group: "map 65,536 pages (scattered 4 KiB frames) · samsung_bench",
    baseline,
    fn(b) {
      b.start();
      domain.mapPages(IOVA, frames, RW);
      b.end();
      domain.unmap(IOVA, N * 4096);
    },
  });
  Deno.bench({
    name: `one unmap() call, ${
      label === "v3.3" ? "one FLUSH_ALL (no range flush)" : "one range flush"
    } (${label})`,
    group: "unmap 65,536 pages (scattered 4 KiB frames) · samsung_bench",
    baseline,
    fn(b) {
      domain.mapPages(IOVA, frames, RW);
      b.start();
      domain.unmap(IOVA, N * 4096);
      b.end();
    },
  });
}

// Translation: 32 pages fit the 64-entry TLB; 4,096 pages never do.
const tr = rig("samsung");
tr.domain.mapPages(IOVA, frames.subarray(0, 4096), RW);
const hw = tr.unit.hardware;
let k = 0;

Deno.bench({
  name: "translate, TLB hit",
  group: "translate one access · samsung_bench",
  baseline: true,
  fn() {
    k = (k + 1) & 31;
    sink.value += hw.translate(0, IOVA + k * 4096 + 8, 1);
  },
});

Deno.bench({
  name: "translate, TLB miss + two-level walk",
  group: "translate one access · samsung_bench",
  fn() {
    k = (k + 67) & 4095;
    sink.value += hw.translate(0, IOVA + k * 4096 + 8, 1);
  },
});
