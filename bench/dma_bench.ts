// DMA adapter cost: mapSg + unmapSg of a 256-page scatter-gather list (256
// one-page entries, physically scattered), per plugin and policy, against
// the bare domain doing the same page-table work (IOVA alloc + mapPages +
// unmap + IOVA free) as each group's baseline, so the ratio is the
// adapter's own overhead. Target (issue 8): at most 25 ns per page of
// adapter work, i.e. 6.4 us per iteration.
// Run:
//   deno bench -A bench/dma_bench.ts
import {
  createSoc,
  IOMMU_READ,
  type IommuPlugin,
  type SgSegment,
} from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_TO_DEVICE,
  type DmaMapper,
  IovaAllocator,
} from "../core/dma/mod.ts";
import { flatIommu } from "../tests/support/flat_iommu.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";

const PAGES = 256;

type Kind = "direct" | "flat" | "generic" | "samsung";

const PLUGINS: Record<Exclude<Kind, "direct">, [() => IommuPlugin, string]> = {
  flat: [flatIommu, "iommukit,flat-iommu"],
  generic: [() => genericIommu(), "iommukit,generic-iommu"],
  samsung: [() => samsungSysmmu(), "samsung,exynos-sysmmu"],
};

function system(kind: Kind, coherent = false) {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 << 20 } });
  let unit = null;
  const streamIds: number[] = [];
  if (kind !== "direct") {
    const [plugin, compatible] = PLUGINS[kind];
    soc.use(plugin());
    unit = soc.probeUnit({ name: "u", compatible: [compatible] });
    if (kind === "generic") streamIds.push(1);
  }
  const master = soc.addMaster({
    name: "dev",
    ports: [{ unit, ...(streamIds.length ? { streamIds } : {}) }],
    coherent,
  });
  // Every other page, so no two entries are physically adjacent.
  const base = soc.memory.frames.alloc(2 * PAGES * 4096);
  const segs: SgSegment[] = [];
  for (let i = 0; i < PAGES; i++) {
    segs.push({ pa: base + 2 * i * 4096, length: 4096 });
  }
  return { soc, unit, master, segs, streamIds };
}

function mapper(
  kind: Kind,
  policy: "strict" | "lazy",
  coherent = false,
): { dma: DmaMapper; segs: SgSegment[] } {
  const { soc, master, segs } = system(kind, coherent);
  const dma = createDmaMapper(soc, master, { policy, debug: false });
  // Warm the page tables once so steady state is measured.
  dma.unmapSg(dma.mapSg(segs, DMA_TO_DEVICE), DMA_TO_DEVICE);
  dma.flush();
  return { dma, segs };
}

function bareDomain(kind: Exclude<Kind, "direct">): () => void {
  const { soc, unit, segs, streamIds } = system(kind);
  const domain = soc.createDomain(unit!);
  domain.attach(unit!, streamIds);
  const iova = new IovaAllocator({ end: 2 ** 32 });
  const frames = new Float64Array(segs.map((s) => s.pa));
  const bytes = PAGES * 4096;
  return () => {
    const at = iova.alloc(bytes);
    domain.mapPages(at, frames, IOMMU_READ);
    domain.unmap(at, bytes);
    iova.free(at, bytes);
  };
}

function sg(m: { dma: DmaMapper; segs: SgSegment[] }): () => void {
  return () => m.dma.unmapSg(m.dma.mapSg(m.segs, DMA_TO_DEVICE), DMA_TO_DEVICE);
}

for (const kind of ["flat", "generic", "samsung"] as const) {
  const group = `${kind}: 256-page sg list`;
  Deno.bench({
    name: `${kind}: bare domain (no adapter)`,
    group,
    baseline: true,
    fn: bareDomain(kind),
  });
  Deno.bench({
    name: `${kind}: mapSg+unmapSg, strict`,
    group,
    fn: sg(mapper(kind, "strict")),
  });
  Deno.bench({
    name: `${kind}: mapSg+unmapSg, lazy`,
    group,
    fn: sg(mapper(kind, "lazy")),
  });
}

Deno.bench({
  name: "no IOMMU: mapSg+unmapSg",
  group: "adapter alone",
  baseline: true,
  fn: sg(mapper("direct", "strict")),
});
Deno.bench({
  name: "no IOMMU, coherent master (pages marked uncached)",
  group: "adapter alone",
  fn: sg(mapper("direct", "strict", true)),
});
