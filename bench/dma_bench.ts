// DMA adapter cost: mapSg + unmapSg of a 256-page scatter-gather list (256
// one-page entries, physically scattered), per policy and per plugin.
// Target (issue 8): at most 25 ns per page, i.e. 6.4 us per iteration.
// Run:
//   deno bench -A bench/dma_bench.ts
import { createSoc, type SgSegment } from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_TO_DEVICE,
  type DmaMapper,
} from "../core/dma/mod.ts";
import { flatIommu } from "../tests/support/flat_iommu.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";

const PAGES = 256;

function mapper(
  kind: "direct" | "flat" | "generic" | "samsung",
  policy: "strict" | "lazy",
  coherent = false,
): { dma: DmaMapper; segs: SgSegment[] } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 << 20 } });
  let unit = null;
  const streamIds: number[] = [];
  if (kind === "flat") {
    soc.use(flatIommu());
    unit = soc.probeUnit({ name: "u", compatible: ["iommukit,flat-iommu"] });
  } else if (kind === "generic") {
    soc.use(genericIommu());
    unit = soc.probeUnit({ name: "u", compatible: ["iommukit,generic-iommu"] });
    streamIds.push(1);
  } else if (kind === "samsung") {
    soc.use(samsungSysmmu());
    unit = soc.probeUnit({ name: "u", compatible: ["samsung,exynos-sysmmu"] });
  }
  const master = soc.addMaster({
    name: "dev",
    ports: [{ unit, ...(streamIds.length ? { streamIds } : {}) }],
    coherent,
  });
  const dma = createDmaMapper(soc, master, {
    policy,
    debug: false,
    flushQueueSize: 256,
  });
  // Every other page, so no two entries are physically adjacent.
  const base = soc.memory.frames.alloc(2 * PAGES * 4096);
  const segs: SgSegment[] = [];
  for (let i = 0; i < PAGES; i++) {
    segs.push({ pa: base + 2 * i * 4096, length: 4096 });
  }
  // Warm the page tables once so steady state is measured.
  dma.unmapSg(dma.mapSg(segs, DMA_TO_DEVICE), DMA_TO_DEVICE);
  dma.flush();
  return { dma, segs };
}

function bench(
  name: string,
  group: string,
  m: { dma: DmaMapper; segs: SgSegment[] },
  baseline = false,
): void {
  Deno.bench({
    name,
    group,
    baseline,
    fn: () => {
      const sg = m.dma.mapSg(m.segs, DMA_TO_DEVICE);
      m.dma.unmapSg(sg, DMA_TO_DEVICE);
    },
  });
}

bench(
  "no IOMMU (direct)",
  "mapSg+unmapSg 256 pages",
  mapper("direct", "strict"),
  true,
);
bench(
  "flat test plugin, strict",
  "mapSg+unmapSg 256 pages",
  mapper("flat", "strict"),
);
bench(
  "flat test plugin, lazy",
  "mapSg+unmapSg 256 pages",
  mapper("flat", "lazy"),
);
bench(
  "generic IOMMU, strict",
  "mapSg+unmapSg 256 pages",
  mapper("generic", "strict"),
);
bench(
  "generic IOMMU, lazy",
  "mapSg+unmapSg 256 pages",
  mapper("generic", "lazy"),
);
bench(
  "Samsung v3.3, strict",
  "mapSg+unmapSg 256 pages",
  mapper("samsung", "strict"),
);
bench(
  "Samsung v3.3, lazy",
  "mapSg+unmapSg 256 pages",
  mapper("samsung", "lazy"),
);

bench(
  "non-coherent, empty CPU cache",
  "cache maintenance",
  mapper("flat", "strict"),
  true,
);
bench(
  "coherent (pages marked uncached)",
  "cache maintenance",
  mapper("flat", "strict", true),
);
