/**
 * Model-based random testing of the DMA adapter: random sequences of
 * mapSingle, mapSg, allocCoherent, unmap/free, syncs, flushes and device
 * accesses through the mapper's port, on the flat test plugin, the generic
 * central IOMMU and samsung-sysmmu v3.3 (per-device, 32-bit PA, no
 * write-only, 128 KiB IOVA alignment and 128 KiB guard gaps), in strict and
 * lazy mode. The model is the list of live mappings and, for each, which
 * physical byte every DMA byte must reach. After every step: every mapped
 * IOVA page translates to the model's page, no IOVA page is owned twice, the
 * domain maps exactly the live pages, the mapper's counters agree; at the end
 * every frame is back.
 */
import { assert } from "@std/assert";
import fc from "fast-check";
import {
  createSoc,
  IommuError,
  type IommuPlugin,
  type Master,
  type Soc,
} from "../../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaBuffer,
  type DmaCoherent,
  type DmaDirection,
  type DmaMapper,
  type DmaSgMapping,
} from "../../core/dma/mod.ts";
import { genericIommu } from "../../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../../plugins/samsung_sysmmu/mod.ts";
import { flatIommu } from "../support/flat_iommu.ts";

const PAGE = 4096;
const DIRS: DmaDirection[] = [
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  DMA_FROM_DEVICE,
];

type Op =
  | { t: "single"; pages: number; off: number; dir: number; contig: boolean }
  | { t: "sg"; lens: number[]; offs: number[]; dir: number }
  | { t: "coherent"; size: number }
  | { t: "unmap"; i: number }
  | { t: "sync"; i: number; cpu: boolean }
  | { t: "dma"; i: number; write: boolean; at: number; len: number }
  | { t: "flush" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("single" as const),
      pages: fc.integer({ min: 1, max: 4 }),
      off: fc.integer({ min: 0, max: 4000 }),
      dir: fc.integer({ min: 0, max: 2 }),
      contig: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("sg" as const),
      lens: fc.array(fc.integer({ min: 1, max: 3 * PAGE }), {
        minLength: 1,
        maxLength: 3,
      }),
      offs: fc.array(fc.integer({ min: 0, max: 4095 }), {
        minLength: 3,
        maxLength: 3,
      }),
      dir: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("coherent" as const),
      size: fc.integer({ min: 1, max: 5 * PAGE }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant("unmap" as const), i: fc.nat() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("sync" as const),
      i: fc.nat(),
      cpu: fc.boolean(),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant("dma" as const),
      i: fc.nat(),
      write: fc.boolean(),
      at: fc.nat(),
      len: fc.integer({ min: 1, max: 256 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("flush" as const) }) },
);

/** One live mapping as the model sees it: DMA byte stream -> physical bytes. */
interface LiveModel {
  kind: "single" | "sg" | "coherent";
  dir: DmaDirection;
  // Pieces of the device-visible stream, in order: DMA address, PA, bytes.
  pieces: { dma: number; pa: number; len: number }[];
  size: number;
  undo: () => void;
}

function singlePieces(
  addr: number,
  buf: DmaBuffer,
): { dma: number; pa: number; len: number }[] {
  const out = [];
  let done = 0;
  while (done < buf.size) {
    const o = buf.offset + done;
    const len = Math.min(PAGE - (o % PAGE), buf.size - done);
    out.push({
      dma: addr + done,
      pa: buf.frames[Math.floor(o / PAGE)]! + (o % PAGE),
      len,
    });
    done += len;
  }
  return out;
}

// Zip the DMA segments with the input entries: byte j of the list is byte j
// of the concatenated DMA segments.
function sgPieces(
  sg: DmaSgMapping,
): { dma: number; pa: number; len: number }[] {
  const out = [];
  let seg = 0, segOff = 0;
  for (let e = 0; e < sg.nents; e++) {
    let pa = sg.segmentPa[e]!, left = sg.segmentLength[e]!;
    while (left > 0) {
      const segLeft = sg.dmaLength[seg]! - segOff;
      const dma = sg.dmaAddress[seg]! + segOff;
      const len = Math.min(
        left,
        segLeft,
        PAGE - (dma % PAGE),
        PAGE - (pa % PAGE),
      );
      out.push({ dma, pa, len });
      pa += len;
      left -= len;
      segOff += len;
      if (segOff === sg.dmaLength[seg]!) {
        seg++;
        segOff = 0;
      }
    }
  }
  return out;
}

class Divergence extends Error {}
function check(cond: boolean, what: string): void {
  if (!cond) throw new Divergence(what);
}

interface Stats {
  sequences: number;
  steps: number;
  dma: number;
  dmaFaults: number;
  maps: number;
}

/** A plugin the mapper runs over. */
interface Target {
  name: string;
  plugin: () => IommuPlugin;
  compatible: string;
  /** Central unit (the master gets stream 3) or per-device. */
  central: boolean;
  /** Base of the 64 MiB of RAM. */
  ramBase: number;
}

function runSequence(
  target: Target,
  lazy: boolean,
  ops: readonly Op[],
  stats: Stats,
): void {
  stats.sequences++;
  const { central } = target;
  const soc: Soc = createSoc({
    memory: { base: target.ramBase, size: 64 << 20 },
  });
  soc.use(target.plugin());
  const unit = soc.probeUnit({
    name: "iommu",
    compatible: [target.compatible],
  });
  const master: Master = soc.addMaster({
    name: "dev",
    ports: [{ unit, ...(central ? { streamIds: [3] } : {}) }],
  });
  const baseline = soc.memory.frames.liveBytes;
  const dma: DmaMapper = createDmaMapper(soc, master, {
    policy: lazy ? "lazy" : "strict",
    // Every DMA-API check stays on; only the per-map stack capture (for
    // leak reports) is skipped, it would dominate the run time.
    debug: { stacks: false },
  });
  dma.domain!.setFaultHandler(() => true);
  const live: LiveModel[] = [];
  let stamp = 1;
  for (let step = 0; step < ops.length; step++) {
    const op = ops[step]!;
    stats.steps++;
    try {
      switch (op.t) {
        case "single": {
          const size = op.pages * PAGE - (op.off % PAGE);
          const buf = dma.cpu.allocBuffer(size + (op.off % PAGE), {
            contiguous: op.contig,
          });
          const view = buf.offset === 0 && op.off % PAGE === 0
            ? buf
            : buf.slice(op.off % PAGE, size);
          const dir = DIRS[op.dir]!;
          const addr = dma.mapSingle(view, dir);
          check(
            !dma.mappingError(addr),
            "mapSingle returned the error address",
          );
          stats.maps++;
          live.push({
            kind: "single",
            dir,
            pieces: singlePieces(addr, view),
            size,
            undo: () => {
              dma.unmapSingle(addr, size, dir);
              buf.free();
            },
          });
          break;
        }
        case "sg": {
          const bufs = op.lens.map((l, k) =>
            dma.cpu.allocBuffer(l + op.offs[k]!)
          );
          const segs = op.lens.map((l, k) => ({
            pa: bufs[k]!.pa + op.offs[k]!,
            length: l,
          }));
          const dir = DIRS[op.dir]!;
          const sg = dma.mapSg(segs, dir);
          stats.maps++;
          live.push({
            kind: "sg",
            dir,
            pieces: sgPieces(sg),
            size: op.lens.reduce((a, b) => a + b, 0),
            undo: () => {
              dma.unmapSg(sg, dir);
              for (const b of bufs) b.free();
            },
          });
          break;
        }
        case "coherent": {
          const c: DmaCoherent = dma.allocCoherent(op.size);
          stats.maps++;
          live.push({
            kind: "coherent",
            dir: DMA_BIDIRECTIONAL,
            pieces: singlePieces(c.dmaAddr, c.cpu),
            size: op.size,
            undo: () => dma.freeCoherent(c),
          });
          break;
        }
        case "unmap": {
          if (live.length === 0) break;
          const [m] = live.splice(op.i % live.length, 1);
          m!.undo();
          break;
        }
        case "flush":
          dma.flush();
          break;
        case "sync":
          // Syncs move no translation; they must not throw on a live mapping.
          if (live.length === 0) break;
          {
            const m = live[op.i % live.length]!;
            if (m.kind === "single") {
              const a = m.pieces[0]!.dma;
              if (op.cpu) dma.syncForCpu(a, m.size, m.dir);
              else dma.syncForDevice(a, m.size, m.dir);
            }
          }
          break;
        case "dma": {
          if (live.length === 0) break;
          const m = live[op.i % live.length]!;
          const start = op.at % m.size;
          const len = Math.min(op.len, m.size - start);
          // The pieces covering [start, start + len) of the stream.
          let skip = start;
          let k = 0;
          while (skip >= m.pieces[k]!.len) skip -= m.pieces[k++]!.len;
          const p = m.pieces[k]!;
          const n = Math.min(len, p.len - skip);
          const allowed = op.write
            ? m.dir !== DMA_TO_DEVICE
            : m.dir !== DMA_FROM_DEVICE;
          const data = new Uint8Array(n);
          for (let i = 0; i < n; i++) data[i] = (stamp * 29 + i) & 0xff;
          stamp++;
          stats.dma++;
          const into = new Uint8Array(n);
          const before = soc.memory.readBytes(p.pa + skip, n);
          const fault = op.write
            ? dma.port().write(p.dma + skip, data)
            : dma.port().read(p.dma + skip, into);
          if (fault !== null) stats.dmaFaults++;
          const now = soc.memory.readBytes(p.pa + skip, n);
          // Without the write-only feature a FROM_DEVICE page may be readable.
          const either = !op.write && m.dir === DMA_FROM_DEVICE &&
            !unit.caps.features.includes("write-only");
          if (either) {
            if (fault === null) {
              check(
                now.every((x, i) => x === into[i]),
                "DMA read the wrong bytes",
              );
            }
          } else if (allowed) {
            check(
              fault === null,
              `permitted DMA faulted: ${JSON.stringify(fault)}`,
            );
            const want = op.write ? data : into;
            check(
              now.every((x, i) => x === want[i]),
              "DMA reached the wrong bytes",
            );
          } else {
            check(
              fault !== null,
              `DMA against the direction (${m.dir}) succeeded`,
            );
            check(
              now.every((x, i) => x === before[i]),
              "a refused DMA changed RAM",
            );
          }
          break;
        }
      }
      // Every live byte translates to the model's byte; no IOVA page twice.
      const d = dma.domain!;
      const pages = new Map<number, number>();
      for (const m of live) {
        for (const p of m.pieces) {
          const page = Math.floor(p.dma / PAGE) * PAGE;
          const pa = p.pa - (p.dma % PAGE);
          const prev = pages.get(page);
          check(
            prev === undefined,
            `IOVA page 0x${page.toString(16)} is owned by two live mappings`,
          );
          check(
            d.iovaToPhys(p.dma) === p.pa,
            `iovaToPhys(0x${p.dma.toString(16)}) = ${
              d.iovaToPhys(p.dma)
            }, model ${p.pa}`,
          );
          pages.set(page, pa);
        }
        // A mapping's own pages may repeat (several pieces on one page).
        for (const p of m.pieces) pages.delete(Math.floor(p.dma / PAGE) * PAGE);
        for (const p of m.pieces) {
          pages.set(Math.floor(p.dma / PAGE) * PAGE, p.pa - (p.dma % PAGE));
        }
      }
      check(
        d.counters().liveBytes === pages.size * PAGE,
        `domain maps ${d.counters().liveBytes} bytes, live mappings own ${
          pages.size * PAGE
        }`,
      );
      check(
        dma.stats().liveMappings === live.length,
        `stats.liveMappings ${dma.stats().liveMappings} != model ${live.length}`,
      );
    } catch (e) {
      if (e instanceof Error) {
        e.message = `step ${step} ${JSON.stringify(op)}: ${e.message}`;
      }
      throw e;
    }
  }
  // Double unmap of a freed mapping: typed error, nothing changes.
  if (live.length > 0) {
    const m = live.pop()!;
    m.undo();
    let threw: unknown = null;
    try {
      m.undo();
    } catch (e) {
      threw = e;
    }
    check(threw instanceof IommuError, `double unmap threw ${String(threw)}`);
    check(
      dma.stats().liveMappings === live.length,
      "double unmap changed state",
    );
  }
  for (const m of live.splice(0)) m.undo();
  dma.flush();
  dma.removeMaster();
  check(
    soc.memory.frames.liveBytes === baseline,
    `leak: ${soc.memory.frames.liveBytes - baseline} bytes after removeMaster`,
  );
}

const TARGETS: Target[] = [
  {
    name: "flat-iommu",
    plugin: flatIommu,
    compatible: "iommukit,flat-iommu",
    central: false,
    ramBase: 0,
  },
  {
    name: "generic-iommu",
    plugin: () => genericIommu(),
    compatible: "iommukit,generic-iommu",
    central: true,
    ramBase: 0,
  },
  {
    name: "samsung-sysmmu v3.3",
    plugin: () => samsungSysmmu({ version: 0x30600000 }),
    compatible: "samsung,exynos-sysmmu",
    central: false,
    ramBase: 0x4000_0000,
  },
];

for (const target of TARGETS) {
  const { name } = target;
  Deno.test(`DMA mapper over ${name} agrees with the model over 10,000 random sequences`, () => {
    const t0 = performance.now();
    const stats: Stats = {
      sequences: 0,
      steps: 0,
      dma: 0,
      dmaFaults: 0,
      maps: 0,
    };
    const seed = Deno.env.get("IOMMUKIT_SEED");
    const runs = Number(Deno.env.get("IOMMUKIT_RUNS") ?? 10_000);
    const path = Deno.env.get("IOMMUKIT_PATH");
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(opArb, { minLength: 5, maxLength: 20 }),
        (lazy, ops) => runSequence(target, lazy, ops, stats),
      ),
      {
        numRuns: runs,
        seed: seed === undefined ? 0xd4a : Number(seed),
        ...(path === undefined ? {} : { path }),
      },
    );
    assert(stats.sequences >= runs);
    console.log(
      `dma-mapper/${name}: ${stats.sequences} sequences, ${stats.steps} steps, ${stats.maps} maps, ${stats.dma} DMA (${stats.dmaFaults} refused by direction), 0 divergences, ${
        Math.round(performance.now() - t0)
      } ms`,
    );
  });
}
