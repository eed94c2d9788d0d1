// Map and unmap cost, per plugin (issue groups 1, 2, 3 and 7):
// - 65,536 scattered 4 KiB frames: one mapPages() call against one map()
//   call per page; one unmap() against one unmap() (and sync) per page;
// - 1 GiB of contiguous, aligned memory: the largest pages the unit has
//   against forced 4 KiB pages;
// - the batched map's cost per page at 1K, 64K and 1M pages.
// Only the operation is timed (b.start/b.end); the state it needs is made
// and unmade outside the timed section. Page counts in the names let
// bench/report.ts print nanoseconds per page. Run:
//   deno bench -A bench/map_bench.ts
import { type Domain, IotlbGather } from "../core/mod.ts";
import {
  lazyRig,
  PLUGIN_LABEL,
  type PluginKind,
  scatteredFrames,
} from "./rig.ts";

const RW = 3;
const IOVA = 0x1000_0000;
const N = 65_536;
const K4 = 0x1000;
const M2 = 0x20_0000;
const G1 = 0x4000_0000;

// Heavy benches: a few warm-up rounds and a floor of samples; the runner
// keeps sampling until half a second has passed.
const HEAVY = { warmup: 3, n: 10 } as const;

const PLUGINS: PluginKind[] = ["samsung", "generic"];

function mapEach(domain: Domain, frames: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) domain.map(IOVA + i * K4, frames[i]!, K4, RW);
}

for (const kind of PLUGINS) {
  const label = PLUGIN_LABEL[kind];
  const frames = scatteredFrames(N);

  // ---- 1. map 65,536 scattered pages: batched vs one call per page ----
  {
    // Warmed once so both benches start from the same table state.
    const get = lazyRig(kind, {}, ({ domain }) => {
      domain.mapPages(IOVA, frames, RW);
      domain.unmap(IOVA, N * K4);
    });
    const group = `map 65,536 pages (scattered 4 KiB frames) · ${label}`;
    Deno.bench({
      group,
      name: "65,536 × map(), one call per page",
      baseline: true,
      ...HEAVY,
      fn(b) {
        const { domain } = get();
        b.start();
        mapEach(domain, frames, N);
        b.end();
        domain.unmap(IOVA, N * K4);
      },
    });
    Deno.bench({
      group,
      name: "one mapPages() call",
      ...HEAVY,
      fn(b) {
        const { domain } = get();
        b.start();
        domain.mapPages(IOVA, frames, RW);
        b.end();
        domain.unmap(IOVA, N * K4);
      },
    });
  }

  // ---- 2. unmap the same: one call vs one call (and sync) per page ----
  {
    const get = lazyRig(kind);
    const group = `unmap 65,536 pages (scattered 4 KiB frames) · ${label}`;
    Deno.bench({
      group,
      name: "65,536 × unmap(), one call and one IOTLB sync per page",
      baseline: true,
      ...HEAVY,
      fn(b) {
        const { domain } = get();
        domain.mapPages(IOVA, frames, RW);
        b.start();
        for (let i = 0; i < N; i++) domain.unmap(IOVA + i * K4, K4);
        b.end();
      },
    });
    const gather = new IotlbGather();
    Deno.bench({
      group,
      name: "65,536 × unmapNoSync(), then one sync (lazy)",
      ...HEAVY,
      fn(b) {
        const { domain } = get();
        domain.mapPages(IOVA, frames, RW);
        b.start();
        for (let i = 0; i < N; i++) {
          domain.unmapNoSync(IOVA + i * K4, K4, gather);
        }
        domain.sync(gather);
        b.end();
      },
    });
    Deno.bench({
      group,
      name: "one unmap() call, one IOTLB sync",
      ...HEAVY,
      fn(b) {
        const { domain } = get();
        domain.mapPages(IOVA, frames, RW);
        b.start();
        domain.unmap(IOVA, N * K4);
        b.end();
      },
    });
  }

  // ---- 3. 1 GiB contiguous and aligned: large pages vs forced 4 KiB ----
  {
    const group = `map 1 GiB contiguous (262,144 pages) · ${label}`;
    const pa = 0x8000_0000; // 1 GiB aligned
    const variants: [string, readonly number[] | undefined][] = kind ===
        "generic"
      ? [
        ["forced 4 KiB pages", [K4]],
        ["4 KiB + 2 MiB blocks", [K4, M2]],
        ["4 KiB + 2 MiB + 1 GiB blocks (one leaf)", undefined],
      ]
      : [
        ["forced 4 KiB pages", [K4]],
        ["4 KiB + 64 KiB pages", [K4, 0x10000]],
        ["4 KiB + 64 KiB + 1 MiB sections", undefined],
      ];
    variants.forEach(([name, sizes], i) => {
      const get = lazyRig(kind, sizes ? { pageSizes: sizes } : {}, (r) => {
        r.domain.map(G1, pa, G1, RW);
        r.domain.unmap(G1, G1);
      });
      Deno.bench({
        group,
        name,
        baseline: i === 0,
        ...HEAVY,
        fn(b) {
          const { domain } = get();
          b.start();
          domain.map(G1, pa, G1, RW);
          b.end();
          domain.unmap(G1, G1);
        },
      });
    });
  }

  // ---- 7. scaling: batched map cost per page at 1K, 64K and 1M pages ----
  {
    const group = `mapPages() cost per page as the batch grows · ${label}`;
    const big = scatteredFrames(1 << 20);
    // samsung-sysmmu has a 4 GiB IOVA space: 1M pages fill all of it.
    const base = kind === "generic" ? 0x1_0000_0000 : 0;
    for (const pages of [1 << 10, 1 << 16, 1 << 20]) {
      const f = big.subarray(0, pages);
      const get = lazyRig(kind, {}, ({ domain }) => {
        domain.mapPages(base, f, RW);
        domain.unmap(base, pages * K4);
      });
      Deno.bench({
        group,
        name: `${pages.toLocaleString("en-US")} pages`,
        baseline: pages === 1 << 10,
        ...HEAVY,
        fn(b) {
          const { domain } = get();
          b.start();
          domain.mapPages(base, f, RW);
          b.end();
          domain.unmap(base, pages * K4);
        },
      });
    }
  }
}
