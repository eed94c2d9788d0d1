// generic-iommu hot paths: batched map/unmap of 65,536 discontiguous 4 KiB
// frames (divide by 65,536 for the cost per page), and translation with a
// micro-TLB hit, an IOTLB hit, and a miss plus a full 4-level walk (no
// caches), 65,536 per iteration. Run:
//   deno bench -A bench/generic_iommu_bench.ts
import { ACCESS_READ, createSoc, type Domain } from "../core/mod.ts";
import {
  genericHardwareOf,
  genericIommu,
  type GenericIommuHardware,
  type GenericIommuOptions,
} from "../plugins/generic_iommu/mod.ts";

const N = 65_536;
const IOVA = 0x10_0000_0000;
const RW = 3;

function setup(
  options: GenericIommuOptions = {},
): { domain: Domain; hw: GenericIommuHardware; frames: Float64Array } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 1 << 30 } })
    .use(genericIommu(options));
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const domain = soc.createDomain(unit);
  domain.attach(unit, [1]);
  // Every other 4 KiB frame: nothing coalesces.
  const frames = new Float64Array(N);
  for (let i = 0; i < N; i++) frames[i] = 0x4000_0000 + i * 0x2000;
  return { domain, hw: genericHardwareOf(unit), frames };
}

const s = setup();

Deno.bench({
  name: "65,536 x domain.map (one page per call)",
  group: "map 65,536 discontiguous 4 KiB frames · generic_iommu_bench",
  baseline: true,
  fn(b) {
    const { domain, frames } = s;
    b.start();
    for (let i = 0; i < N; i++) {
      domain.map(IOVA + i * 4096, frames[i]!, 4096, RW);
    }
    b.end();
    domain.unmap(IOVA, N * 4096);
  },
});

Deno.bench({
  name: "one mapPages call",
  group: "map 65,536 discontiguous 4 KiB frames · generic_iommu_bench",
  fn(b) {
    const { domain, frames } = s;
    b.start();
    domain.mapPages(IOVA, frames, RW);
    b.end();
    domain.unmap(IOVA, N * 4096);
  },
});

Deno.bench({
  name: "65,536 x domain.unmap (one page and one sync per call)",
  group: "unmap 65,536 4 KiB pages · generic_iommu_bench",
  baseline: true,
  fn(b) {
    const { domain, frames } = s;
    domain.mapPages(IOVA, frames, RW);
    b.start();
    for (let i = 0; i < N; i++) domain.unmap(IOVA + i * 4096, 4096);
    b.end();
  },
});

Deno.bench({
  name: "one unmap call, one TLBI_NH_VA + CMD_SYNC",
  group: "unmap 65,536 4 KiB pages · generic_iommu_bench",
  fn(b) {
    const { domain, frames } = s;
    domain.mapPages(IOVA, frames, RW);
    b.start();
    domain.unmap(IOVA, N * 4096);
    b.end();
  },
});

// Translation. 16 pages stay in the IOTLB; the micro TLB holds one page per
// stream; the no-cache unit walks all four levels on every access.
const tr = setup();
tr.domain.mapPages(IOVA, tr.frames.subarray(0, 16), RW);
const noMicro = setup({ microTlb: false });
noMicro.domain.mapPages(IOVA, noMicro.frames.subarray(0, 16), RW);
const none = { sets: 0, ways: 0 };
const walk = setup({
  microTlb: false,
  iotlb: none,
  walkCache: [none, none, none],
});
walk.domain.mapPages(IOVA, walk.frames.subarray(0, 16), RW);

Deno.bench({
  name: "65,536 translations, micro-TLB hits (same page)",
  group: "translate 65,536 accesses · generic_iommu_bench",
  baseline: true,
  fn() {
    const hw = tr.hw;
    for (let i = 0; i < N; i++) {
      hw.translate(1, IOVA + (i & 0xff8), ACCESS_READ);
    }
  },
});

Deno.bench({
  name: "65,536 translations, IOTLB hits (16 pages round robin, no micro TLB)",
  group: "translate 65,536 accesses · generic_iommu_bench",
  fn() {
    const hw = noMicro.hw;
    for (let i = 0; i < N; i++) {
      hw.translate(1, IOVA + ((i * 4104) & 0xfff8), ACCESS_READ);
    }
  },
});

Deno.bench({
  name: "65,536 translations, miss + full 4-level walk (no TLB, no walk cache)",
  group: "translate 65,536 accesses · generic_iommu_bench",
  fn() {
    const hw = walk.hw;
    for (let i = 0; i < N; i++) {
      hw.translate(1, IOVA + ((i * 4104) & 0xfff8), ACCESS_READ);
    }
  },
});
