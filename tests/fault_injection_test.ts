/**
 * Fault injection: every allocation a batched operation makes is failed in
 * turn (frame allocator `failNth(N)` for every N up to the number of
 * allocations the operation makes). Each failure must be a typed ENOMEM,
 * leave RAM byte-for-byte unchanged (digest), return every frame, leave the
 * decoded leaves and counters as they were, and the same operation must
 * then succeed. IOVA space is exhausted rather than injected (the IOVA
 * allocator takes no frames), with the same expectations.
 */
import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  type Domain,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuUnit,
  type Soc,
} from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  type DmaBuffer,
  type DmaMapper,
} from "../core/dma/mod.ts";
import {
  CR0_CMDQEN,
  CR0_EVTQEN,
  CR0_SMMUEN,
  genericDriverOf,
  genericIommu,
  REG_CR0,
  STE_BYTES,
} from "../plugins/generic_iommu/mod.ts";
import {
  createVirtioIommu,
  encodeAttach,
  encodeMap,
  VIRTIO_IOMMU_S_NOMEM,
} from "../plugins/generic_iommu/virtio/mod.ts";
import { type Target, TARGETS, targetSystem } from "./support/rigs.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const MB = 1 << 20;

/** A system prepared for one operation, and how to fingerprint it. */
interface Case {
  soc: Soc;
  op: () => void;
  snapshot: () => string;
}

let injectionPoints = 0;

function liveIova(dma: DmaMapper): unknown {
  const st = dma.stats().iova;
  if (st === null) return null;
  return {
    liveRanges: st.liveRanges,
    liveBytes: st.liveBytes,
    cachedRanges: st.cachedRanges,
    cachedBytes: st.cachedBytes,
    reservedRanges: st.reservedRanges,
    largestFreeGap: st.largestFreeGap,
  };
}

// Each mapper case gets its own 6 MiB scattered scratch buffer, allocated
// in setup (before the counted allocations).
const scratch = new WeakMap<
  DmaMapper,
  { scattered: DmaBuffer; contiguous: DmaBuffer }
>();
function scratchOf(
  dma: DmaMapper,
): { scattered: DmaBuffer; contiguous: DmaBuffer } {
  const s = scratch.get(dma);
  if (s === undefined) throw new Error("no scratch buffer");
  return s;
}

/**
 * Fail allocation N of `op` for every N it makes; returns how many.
 */
let absorbed = 0;

function injectEvery(
  label: string,
  setup: () => Case,
  mayAbsorb = false,
): number {
  const probe = setup();
  const a0 = probe.soc.memory.frames.allocations;
  probe.op();
  const total = probe.soc.memory.frames.allocations - a0;
  assert(total > 0, `${label}: the operation made no allocation to fail`);
  for (let n = 1; n <= total; n++) {
    const c = setup();
    const frames = c.soc.memory.frames;
    const before = c.snapshot();
    const digest = c.soc.memory.digest();
    const live = frames.liveBytes, blocks = frames.liveBlocks;
    frames.failNth(n);
    let threw: unknown = null;
    try {
      c.op();
    } catch (e) {
      threw = e;
    }
    frames.failNth(0);
    if (threw === null && mayAbsorb) {
      // A fallback (a smaller block after a failed large one) took the
      // failure; the operation completed, which is also correct.
      absorbed++;
      injectionPoints++;
      continue;
    }
    assert(
      threw instanceof IommuError && threw.kind === "ENOMEM",
      `${label}: failing allocation ${n}/${total} gave ${String(threw)}`,
    );
    assertEquals(frames.liveBytes, live, `${label} #${n}: frame bytes leaked`);
    assertEquals(frames.liveBlocks, blocks, `${label} #${n}: blocks leaked`);
    assertEquals(c.soc.memory.digest(), digest, `${label} #${n}: RAM changed`);
    assertEquals(c.snapshot(), before, `${label} #${n}: state changed`);
    c.op(); // the next attempt succeeds
    injectionPoints++;
  }
  return total;
}

function system(t: Target): { soc: Soc; units: IommuUnit[] } {
  return targetSystem(t, ["mmu0", "mmu1"]);
}

function domainState(d: Domain): string {
  return JSON.stringify([d.leaves(), d.counters(), d.tableStats()]);
}

// A domain attached to a master, with a few mappings and a warmed TLB, so
// the failing operation meets both existing and missing tables.
function domainCase(t: Target, op: (d: Domain, soc: Soc) => void): Case {
  const { soc, units } = system(t);
  const unit = units[0]!;
  const dev = soc.addMaster({
    name: "dev",
    ports: [{ unit, ...(t.central ? { streamIds: [5] } : {}) }],
  });
  const d = soc.createDomain(unit);
  d.setFaultHandler(() => true);
  d.attach(unit, t.central ? [5] : []);
  const buf = soc.memory.frames.alloc(MB);
  d.map(0x1000_0000, buf, 64 * 1024, RW);
  d.map(0x1fe0_0000, buf, 4096, IOMMU_READ);
  dev.port().readBytes(0x1000_0000, 16);
  return {
    soc,
    op: () => op(d, soc),
    snapshot: () => domainState(d),
  };
}

Deno.test("fault injection: every allocation of every batched operation rolls back", async (t) => {
  const t0 = performance.now();
  const perOp: Record<string, number> = {};
  for (const target of TARGETS) {
    await t.step(target.name, () => {
      const cases: [string, (d: Domain, soc: Soc) => void][] = [
        // 8 MiB with IOVA and PA out of step: only small pages, many tables.
        [
          "Domain.map",
          (d) => d.map(0x1003_0000 + 4096, 0x4800_0000, 8 * MB, RW),
        ],
        // 2048 frames in reverse order: discontiguous, one driver call.
        ["Domain.mapPages", (d) => {
          const frames = Array.from(
            { length: 2048 },
            (_, i) => 0x4800_0000 + (2047 - i) * 4096,
          );
          d.mapPages(0x1040_0000 - 3 * 4096, frames, RW);
        }],
        ["Domain.mapSg", (d) =>
          d.mapSg(0x1080_0000 + 4096, [
            { pa: 0x4900_0000, length: 3 * MB },
            { pa: 0x4a00_0000 + 4096, length: 2 * MB },
            { pa: 0x4b00_0000, length: 3 * MB + 8192 },
          ], IOMMU_READ)],
        ["Soc.createDomain", (_d, soc) => {
          soc.createDomain(soc.units()[0]!);
        }],
      ];
      for (const [name, op] of cases) {
        const n = injectEvery(
          `${target.name} ${name}`,
          () => domainCase(target, op),
        );
        perOp[`${target.name} ${name}`] = n;
      }
    });
  }

  // The DMA adapter: its own batched operations over an IOMMU.
  for (
    const target of TARGETS.filter((x) => x.name !== "samsung-sysmmu v7.4")
  ) {
    await t.step(`DMA mapper over ${target.name}`, () => {
      const mapperCase = (
        op: (dma: DmaMapper, soc: Soc) => void,
        policy: "strict" | "lazy" = "strict",
      ): Case => {
        const { soc, units } = system(target);
        const unit = units[0]!;
        const dev = soc.addMaster({
          name: "dev",
          ports: [{ unit, ...(target.central ? { streamIds: [9] } : {}) }],
        });
        const dma = createDmaMapper(soc, dev, { policy });
        dma.domain!.setFaultHandler(() => true);
        const small = dma.cpu.allocBuffer(8192);
        const addr = dma.mapSingle(small, DMA_BIDIRECTIONAL);
        dma.mappingError(addr);
        dma.port().readBytes(addr, 8);
        // Scratch allocated up front so only the operation allocates.
        scratch.set(dma, {
          scattered: dma.cpu.allocBuffer(6 * MB, { contiguous: false }),
          contiguous: dma.cpu.allocBuffer(8 * MB),
        });
        return {
          soc,
          op: () => op(dma, soc),
          snapshot: () =>
            JSON.stringify([
              // History counters of the IOVA allocator (attempts) may move;
              // everything that is state must not.
              { ...dma.stats(), iova: liveIova(dma) },
              dma.mappings().map((m) => [m.dmaAddr, m.size, m.direction]),
              dma.domain!.leaves(),
              dma.domain!.counters(),
            ]),
        };
      };
      const cases: [string, (dma: DmaMapper, soc: Soc) => void][] = [
        ["DmaMapper.mapSingle (6 MiB, scattered)", (dma) => {
          dma.mappingError(
            dma.mapSingle(scratchOf(dma).scattered, DMA_TO_DEVICE),
          );
        }],
        ["DmaMapper.mapSg", (dma) => {
          // 96 segments under the default 64 KiB max segment size, spread
          // over 8 MiB with unaligned starts: 6 MiB of IOVA, several tables.
          const s = scratchOf(dma).contiguous;
          dma.mapSg(
            Array.from({ length: 96 }, (_, i) => ({
              pa: s.pa + i * 84 * 1024 + (i % 3) * 512,
              length: 60 * 1024 + i,
            })),
            DMA_BIDIRECTIONAL,
          );
        }],
        ["DmaMapper.allocCoherent (260 KiB)", (dma) => {
          dma.allocCoherent(256 * 1024 + 4096);
        }],
        ["createDmaMapper", (_dma, soc) => {
          // A second master on the free unit (a per-device unit serves one
          // master); the retry after a refused attempt reuses it.
          const other = soc.masters().find((m) => m.name === "other") ??
            soc.addMaster({
              name: "other",
              ports: [{
                unit: soc.units()[target.central ? 0 : 1]!,
                ...(target.central ? { streamIds: [10] } : {}),
              }],
            });
          createDmaMapper(soc, other);
        }],
      ];
      for (const [name, op] of cases) {
        for (const policy of ["strict", "lazy"] as const) {
          const n = injectEvery(
            `${target.name} ${name} ${policy}`,
            () => mapperCase(op, policy),
            name.startsWith("DmaMapper.allocCoherent"),
          );
          perOp[`${target.name} ${name} ${policy}`] = n;
        }
      }
    });
  }

  await t.step("IOVA exhaustion is ENOMEM and changes nothing", () => {
    for (const target of TARGETS) {
      const { soc, units } = system(target);
      const unit = units[0]!;
      // A 24-bit DMA mask leaves 16 MiB of IOVA space.
      const dev = soc.addMaster({
        name: "narrow",
        dmaBits: 24,
        ports: [{ unit, ...(target.central ? { streamIds: [4] } : {}) }],
      });
      const dma = createDmaMapper(soc, dev);
      const held = [];
      const chunk = dma.cpu.allocBuffer(4 * MB);
      let refused: unknown = null;
      for (let i = 0; i < 8 && refused === null; i++) {
        try {
          const a = dma.mapSingle(chunk, DMA_TO_DEVICE);
          dma.mappingError(a);
          held.push(a);
        } catch (e) {
          refused = e;
        }
      }
      assert(
        refused instanceof IommuError && refused.kind === "ENOMEM",
        `${target.name}: IOVA exhaustion gave ${String(refused)}`,
      );
      const live = soc.memory.frames.liveBytes, digest = soc.memory.digest();
      const stats = JSON.stringify({ ...dma.stats(), iova: liveIova(dma) });
      let again: unknown = null;
      try {
        dma.mapSingle(chunk, DMA_TO_DEVICE);
      } catch (e) {
        again = e;
      }
      assert(again instanceof IommuError && again.kind === "ENOMEM");
      assertEquals(soc.memory.frames.liveBytes, live);
      assertEquals(soc.memory.digest(), digest);
      assertEquals(
        JSON.stringify({ ...dma.stats(), iova: liveIova(dma) }),
        stats,
      );
      // Freeing one range makes the next map succeed.
      dma.unmapSingle(held.pop()!, 4 * MB, DMA_TO_DEVICE);
      const last = dma.mapSingle(chunk, DMA_TO_DEVICE);
      dma.mappingError(last);
      held.push(last);
      injectionPoints++;
    }
  });

  // The virtio front end answers an allocation failure with S_NOMEM and
  // keeps its mapping list and the tables as they were.
  await t.step("virtio-iommu requests", () => {
    const virtioCase = (request: () => Uint8Array): Case => {
      const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 * MB } })
        .use(genericIommu());
      const unit = soc.probeUnit({
        name: "viommu",
        compatible: ["virtio,pci-iommu"],
      });
      const v = createVirtioIommu(soc, unit);
      v.handleRequest(encodeAttach(1, 3));
      v.handleRequest(encodeMap(1, 0x10000, 0x1ffff, 0x4010_0000, 3));
      return {
        soc,
        op: () => {
          const out = v.handleRequest(request());
          const status = out[out.length - 4];
          if (status === VIRTIO_IOMMU_S_NOMEM) {
            throw new IommuError("ENOMEM", "virtio answered S_NOMEM");
          }
          assertEquals(status, 0, "virtio request failed otherwise");
        },
        snapshot: () =>
          JSON.stringify(
            [
              v.mappings(1),
              v.mappings(2),
              v.coreDomain(1)?.leaves(),
              v.domainOf(3),
              v.domainOf(4),
            ],
            (_k, x) => typeof x === "bigint" ? x.toString() : x,
          ),
      };
    };
    // MAP of 6 MiB at an IOVA out of step with the PA: many tables.
    perOp["virtio MAP"] = injectEvery(
      "virtio MAP",
      () =>
        virtioCase(() =>
          encodeMap(1, 0x40_1000, 0x40_1000 + 6 * MB - 1, 0x4800_0000, 3)
        ),
    );
    // ATTACH to a new domain: its root table.
    perOp["virtio ATTACH"] = injectEvery(
      "virtio ATTACH",
      () => virtioCase(() => encodeAttach(2, 4)),
    );
  });

  // A command queue that stops consuming (CMDQEN cleared): operations that
  // need an invalidation fail with EIO. Attach and detach change nothing
  // (the stream table in RAM included, so DMA behaves as before); unmap
  // has removed the leaves and keeps the gather, so the next successful
  // sync invalidates and frees everything (no frame is lost).
  await t.step("generic-iommu with a stalled command queue", () => {
    const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 * MB } })
      .use(genericIommu());
    const unit = soc.probeUnit({
      name: "smmu",
      compatible: ["iommukit,generic-iommu"],
    });
    const m1 = soc.addMaster({ name: "m1", ports: [{ unit, streamIds: [1] }] });
    const m2 = soc.addMaster({ name: "m2", ports: [{ unit, streamIds: [2] }] });
    const d = soc.createDomain(unit);
    d.setFaultHandler(() => true);
    d.attach(unit, [1]);
    d.map(0x10000, 0x4010_0000, 0x10000, RW);
    d.map(0x40000, 0x4020_0000, 0x1000, RW);
    // In another level-3 table: unmapped after the queue recovers.
    d.map(0x40_0000, 0x4030_0000, 0x1000, RW);
    m1.port().readBytes(0x10000, 4);
    const stall = (): void =>
      unit.hardware.writeRegister(REG_CR0, CR0_EVTQEN | CR0_SMMUEN);
    const resume = (): void =>
      unit.hardware.writeRegister(
        REG_CR0,
        CR0_EVTQEN | CR0_SMMUEN | CR0_CMDQEN,
      );
    const expectEio = (what: string, fn: () => unknown): void => {
      let threw: unknown = null;
      try {
        fn();
      } catch (e) {
        threw = e;
      }
      assert(
        threw instanceof IommuError && threw.kind === "EIO",
        `${what}: ${String(threw)}`,
      );
      injectionPoints++;
    };
    const state = (): string =>
      JSON.stringify([
        d.attachments().map((a) => a.streamIds),
        d.leaves(),
        // The stream-table entries in RAM (the command ring itself does
        // take the queued commands).
        [...soc.memory.readBytes(
          genericDriverOf(unit).streamTable + STE_BYTES,
          2 * STE_BYTES,
        )],
        soc.memory.frames.liveBytes,
      ]);
    stall();
    let before = state();
    expectEio("attach while stalled", () => d.attach(unit, [2]));
    assertEquals(state(), before, "attach changed state");
    assert(
      m2.port().read(0x40000, new Uint8Array(4)) !== null,
      "a failed attach let stream 2 through",
    );
    before = state();
    expectEio("detach while stalled", () => d.detach(unit, [1]));
    assertEquals(state(), before, "detach changed state");
    assertEquals(
      m1.port().read(0x40000, new Uint8Array(4)),
      null,
      "a failed detach cut stream 1 off",
    );
    const live = soc.memory.frames.liveBytes;
    // The unmap spans the level-3 table of 0..2 MiB: its leaves go and the
    // table is unlinked into the gather the failed sync keeps.
    expectEio("unmap while stalled", () => d.unmap(0, 0x20_0000));
    assertEquals(d.iovaToPhys(0x10000), -1, "unmap removed the leaves");
    assertEquals(d.iovaToPhys(0x40000), -1, "unmap removed the leaves");
    assertEquals(soc.memory.frames.liveBytes, live, "nothing freed yet");
    resume();
    // This sync (of an unmap that frees no table itself) covers both
    // ranges and frees the table the failed one deferred.
    d.unmap(0x40_0000, 0x1000);
    assert(
      m1.port().read(0x10000, new Uint8Array(4)) !== null,
      "stale translation survived the recovered sync",
    );
    assert(soc.memory.frames.liveBytes < live, "deferred tables never freed");
    d.detach(unit, [1]);
    d.free();
  });

  const total = Object.values(perOp).reduce((a, b) => a + b, 0);
  if (Deno.env.get("IOMMUKIT_VERBOSE")) console.log(perOp);
  console.log(
    `fault injection: ${injectionPoints} injection points (${total} allocation points over ${
      Object.keys(perOp).length
    } operations + IOVA exhaustion on ${TARGETS.length} targets; ${absorbed} absorbed by allocation fallbacks), 0 leaks, 0 untyped errors, ${
      Math.round(performance.now() - t0)
    } ms`,
  );
});
