// DMA translation cost of one plugin (issue group 4): one access with an
// IOTLB hit, with a miss and a page-table walk, and with the IOTLB disabled;
// first the unit's translate() alone (no data moved), then whole DMA
// accesses through a master's port (translate + copy into simulated RAM).
// Each iteration does 1,000 accesses so the harness's own per-call cost
// disappears; bench/report.ts divides by 1,000.
//
// Not a bench file itself: translate_samsung_bench.ts and
// translate_generic_bench.ts each call translateGroups() for one plugin.
// deno bench runs every bench file in its own isolate, so the call sites
// below see one hardware type; in one file they would see both, V8 would
// stop inlining translate(), and each plugin would be measured with the
// other's dispatch cost (see bench/README.md).
import type { IommuHardware, Port } from "../core/mod.ts";
import {
  dmaWindow,
  PLUGIN_LABEL,
  type PluginKind,
  rig,
  type RigOptions,
  scatteredFrames,
  sink,
} from "./rig.ts";

const IOVA = 0x1000_0000;
const PAGES = 65_536;
const OPS = 1000;
const OFF = { sets: 0, ways: 0 } as const;

/** Access patterns: page index k advances by `step` modulo `mask + 1`. */
const HIT = { step: 1, mask: 15 } as const; // 16 pages: fit every IOTLB here
// Odd stride over all 65,536 pages: every access is to a page not touched
// for 65,535 accesses, far beyond any IOTLB here.
const MISS = { step: 4099, mask: PAGES - 1 } as const;

interface Target {
  hw: IommuHardware;
  port: Port;
  sid: number;
}

function target(kind: PluginKind, options: RigOptions = {}): Target {
  const r = rig(kind, options);
  // 65,536 IOVA pages over 128 frames of a 1 MiB buffer: the misses are
  // misses of the IOTLB, not of the host's caches of simulated RAM.
  const window = 1 << 20;
  r.domain.mapPages(
    IOVA,
    scatteredFrames(PAGES, dmaWindow(r, window), window),
    3,
  );
  return { hw: r.unit.hardware, port: r.port, sid: r.sid };
}

function translateBench(
  group: string,
  name: string,
  t: Target,
  pattern: { step: number; mask: number },
  baseline = false,
): void {
  let k = 0;
  const { hw, sid } = t;
  const { step, mask } = pattern;
  Deno.bench({
    group,
    name,
    baseline,
    fn() {
      let s = 0;
      for (let i = 0; i < OPS; i++) {
        k = (k + step) & mask;
        s += hw.translate(sid, IOVA + k * 4096 + 8, 1);
      }
      if (s < 0) throw new Error(`${name}: a translation faulted`);
      sink.value += s;
    },
  });
}

function writeBench(
  group: string,
  name: string,
  port: Port,
  pattern: { step: number; mask: number },
  bytes: number,
  baseline = false,
): void {
  let k = 0;
  const data = new Uint8Array(bytes).fill(0x5a);
  const { step, mask } = pattern;
  Deno.bench({
    group,
    name,
    baseline,
    fn() {
      for (let i = 0; i < OPS; i++) {
        k = (k + step) & mask;
        if (port.write(IOVA + k * 4096 + 64, data) !== null) {
          throw new Error(`${name}: the write faulted`);
        }
      }
    },
  });
}

/**
 * Register the translation and DMA-write groups of one plugin.
 *
 * @param kind The plugin whose unit is measured.
 */
export function translateGroups(kind: "samsung" | "generic"): void {
  const label = PLUGIN_LABEL[kind];
  const on = target(kind);
  const noTlb = target(
    kind,
    kind === "generic" ? { tlb: OFF, microTlb: false } : { tlb: OFF },
  );

  const tGroup = `translate() alone (1,000 accesses) · ${label}`;
  if (kind === "generic") {
    // 16 pages fit generic-iommu's 32-entry micro TLB: a hit there.
    translateBench(tGroup, "micro TLB hit (16 pages cycling)", on, HIT, true);
  } else translateBench(tGroup, "IOTLB hit", on, HIT, true);
  translateBench(tGroup, "IOTLB miss + walk", on, MISS);
  if (kind === "generic") {
    const full = target(kind, { walkCache: [OFF, OFF, OFF] });
    translateBench(
      tGroup,
      "IOTLB miss + full 4-level walk (walk caches off)",
      full,
      MISS,
    );
  }
  translateBench(tGroup, "IOTLB disabled (walk every access)", noTlb, HIT);

  const wGroup = `DMA write through a port (1,000 accesses) · ${label}`;
  writeBench(wGroup, "4 bytes, IOTLB hit", on.port, HIT, 4, true);
  writeBench(wGroup, "4 bytes, IOTLB miss + walk", on.port, MISS, 4);
  writeBench(wGroup, "4 bytes, IOTLB disabled", noTlb.port, HIT, 4);
  writeBench(wGroup, "64 bytes, IOTLB hit", on.port, HIT, 64);
  if (kind === "samsung") {
    // Reference: the same writes with no IOMMU in front of the master.
    const direct = rig("flat", { attach: false });
    const port = direct.soc.addMaster({ name: "direct", ports: [{}] })
      .ports[0]!;
    // Identity: the IOVAs below are physical addresses inside RAM.
    const base = { step: 1, mask: 15 };
    let k = 0;
    const data = new Uint8Array(4);
    Deno.bench({
      group: wGroup,
      name: "4 bytes, no IOMMU (reference)",
      fn() {
        for (let i = 0; i < OPS; i++) {
          k = (k + base.step) & base.mask;
          port.write(0x4000_0000 + k * 4096 + 64, data);
        }
      },
    });
  }
}

/**
 * Register generic-iommu's translation group with its micro TLBs off, so
 * every access goes to the main IOTLB. Its own bench file (own isolate):
 * after the micro TLB bench of the default configuration, `translate` has
 * optimised code shaped by that path, and the loop of a bench that follows
 * inlines it no longer (see bench/README.md).
 */
export function translateMicroOffGroup(): void {
  const off = target("generic", { microTlb: false });
  const group =
    `translate() alone (1,000 accesses) · ${PLUGIN_LABEL.generic}, micro TLB off`;
  translateBench(group, "main IOTLB hit (16 pages cycling)", off, HIT, true);
  translateBench(group, "IOTLB miss + walk", off, MISS);
}
