// samsung-sysmmu hot paths: batched map/unmap of 65,536 discontiguous 4 KiB
// frames against one call per page, and translation with a TLB hit or a
// miss plus page-table walk. Divide map/unmap times by 65,536 for the cost
// per page. Run:
//   deno bench -A bench/samsung_bench.ts
import { createSoc, type Domain } from "../core/mod.ts";
import {
  samsungSysmmu,
  type SysmmuHardware,
} from "../plugins/samsung_sysmmu/mod.ts";

const N = 65_536;
const IOVA = 0x1000_0000;
const RW = 3;

function setup(
  version: number,
): { domain: Domain; hw: SysmmuHardware; frames: Float64Array } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 1 << 30 } })
    .use(samsungSysmmu({ version }));
  const unit = soc.probeUnit({
    name: "mmu",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const domain = soc.createDomain(unit);
  domain.attach(unit);
  // Every other 4 KiB frame: nothing coalesces.
  const frames = new Float64Array(N);
  for (let i = 0; i < N; i++) frames[i] = 0x4000_0000 + i * 0x2000;
  return { domain, hw: unit.hardware as SysmmuHardware, frames };
}

const v33 = setup(0x30600000);
const v5 = setup(0x50000000);
// Warm: level-2 tables exist from then on (they are never freed on unmap).
v33.domain.mapPages(IOVA, v33.frames, RW);
v33.domain.unmap(IOVA, N * 4096);
v5.domain.mapPages(IOVA, v5.frames, RW);
v5.domain.unmap(IOVA, N * 4096);

Deno.bench({
  name: "65,536 x domain.map (one page per call, v3.3)",
  group: "map 65,536 discontiguous 4 KiB frames · samsung_bench",
  baseline: true,
  fn(b) {
    const { domain, frames } = v33;
    b.start();
    for (let i = 0; i < N; i++) {
      domain.map(IOVA + i * 4096, frames[i]!, 4096, RW);
    }
    b.end();
    domain.unmap(IOVA, N * 4096);
  },
});

Deno.bench({
  name: "one mapPages call (v3.3)",
  group: "map 65,536 discontiguous 4 KiB frames · samsung_bench",
  fn(b) {
    const { domain, frames } = v33;
    b.start();
    domain.mapPages(IOVA, frames, RW);
    b.end();
    domain.unmap(IOVA, N * 4096);
  },
});

Deno.bench({
  name: "one mapPages call (v5.0)",
  group: "map 65,536 discontiguous 4 KiB frames · samsung_bench",
  fn(b) {
    const { domain, frames } = v5;
    b.start();
    domain.mapPages(IOVA, frames, RW);
    b.end();
    domain.unmap(IOVA, N * 4096);
  },
});

Deno.bench({
  name: "65,536 x domain.unmap (one page and one flush per call, v3.3)",
  group: "unmap 65,536 4 KiB pages · samsung_bench",
  baseline: true,
  fn(b) {
    const { domain, frames } = v33;
    domain.mapPages(IOVA, frames, RW);
    b.start();
    for (let i = 0; i < N; i++) domain.unmap(IOVA + i * 4096, 4096);
    b.end();
  },
});

Deno.bench({
  name: "one unmap call, one flush (v3.3)",
  group: "unmap 65,536 4 KiB pages · samsung_bench",
  fn(b) {
    const { domain, frames } = v33;
    domain.mapPages(IOVA, frames, RW);
    b.start();
    domain.unmap(IOVA, N * 4096);
    b.end();
  },
});

Deno.bench({
  name: "one unmap call, one range flush (v5.0)",
  group: "unmap 65,536 4 KiB pages · samsung_bench",
  fn(b) {
    const { domain, frames } = v5;
    domain.mapPages(IOVA, frames, RW);
    b.start();
    domain.unmap(IOVA, N * 4096);
    b.end();
  },
});

// Translation: 32 pages fit the 64-entry TLB; 4,096 pages never do.
const tr = setup(0x30600000);
tr.domain.mapPages(IOVA, tr.frames.subarray(0, 4096), RW);
let k = 0;
let sink = 0;

Deno.bench({
  name: "translate, TLB hit",
  group: "translate one access · samsung_bench",
  baseline: true,
  fn() {
    k = (k + 1) & 31;
    sink += tr.hw.translate(0, IOVA + k * 4096 + 8, 1);
  },
});

Deno.bench({
  name: "translate, TLB miss + two-level walk",
  group: "translate one access · samsung_bench",
  fn() {
    k = (k + 67) & 4095;
    sink += tr.hw.translate(0, IOVA + k * 4096 + 8, 1);
  },
});

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
