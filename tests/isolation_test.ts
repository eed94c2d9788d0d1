/**
 * Isolation and stale-translation security, on every plugin:
 * - masters in different domains never reach each other's memory (every
 *   page of the IOVA window probed, reads and writes, TLBs warm);
 * - a shared buffer is reachable only by the masters it is attached to,
 *   only while attached, only with its direction's permissions;
 * - after a strict unmap returns, no DMA through the IOVA succeeds;
 * - in lazy mode the stale window is measured and bounded by the flush
 *   policy (queue size and timeout);
 * - bypassing streams and disabled units are reported as unprotected.
 */
import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  type Domain,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuUnit,
  type Master,
  type Soc,
} from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  SharedDmaBuffer,
} from "../core/dma/mod.ts";
import { buildPlatform } from "../core/platform.ts";
import { genericIommu, setStreamBypass } from "../plugins/generic_iommu/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";
import { EXYNOS4210_DTB, GENERIC_SOC_DTB } from "../platforms/mod.ts";
import { type Target, TARGETS, targetSystem } from "./support/rigs.ts";
import { seededRandom } from "./support/model.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const MB = 1 << 20;
const PAGE = 4096;

interface Pair {
  soc: Soc;
  units: IommuUnit[];
  a: Master;
  b: Master;
  da: Domain;
  db: Domain;
  sid: [number, number];
}

function pair(t: Target): Pair {
  const { soc, units } = targetSystem(t, ["mmu_a", "mmu_b"]);
  const ua = units[0]!, ub = units[units.length - 1]!;
  const sid: [number, number] = [1, 2];
  const a = soc.addMaster({
    name: "a",
    ports: [{ unit: ua, ...(t.central ? { streamIds: [1] } : {}) }],
  });
  const b = soc.addMaster({
    name: "b",
    ports: [{ unit: ub, ...(t.central ? { streamIds: [2] } : {}) }],
  });
  const da = soc.createDomain(ua), db = soc.createDomain(ub);
  // Handlers take the faults this test provokes (an Exynos unit would block
  // on an unhandled one, as the real one does).
  da.setFaultHandler(() => true);
  db.setFaultHandler(() => true);
  da.attach(ua, t.central ? [1] : []);
  db.attach(ub, t.central ? [2] : []);
  return { soc, units, a, b, da, db, sid };
}

const figures = { probes: 0, crossings: 0, staleMeasured: 0 };

Deno.test("domains are isolated: every page of the window, both masters, both directions", async (t) => {
  for (const target of TARGETS) {
    await t.step(target.name, () => {
      const rand = seededRandom(0x150 + target.name.length);
      const s = pair(target);
      const mem = s.soc.memory;
      // Two private buffers and the IOVA window both domains use.
      const bufA = mem.frames.alloc(4 * MB), bufB = mem.frames.alloc(4 * MB);
      mem.fill(bufA, 4 * MB, 0xaa);
      mem.fill(bufB, 4 * MB, 0xbb);
      const window = 0x1000_0000, pages = 512;
      const mappedA = new Map<number, number>(),
        mappedB = new Map<number, number>();
      for (let i = 0; i < pages; i++) {
        const r = rand();
        // The same IOVAs in both domains point at different buffers.
        if (r < 0.4) mappedA.set(i, bufA + Math.floor(rand() * 1024) * PAGE);
        if (r > 0.3 && r < 0.8) {
          mappedB.set(i, bufB + Math.floor(rand() * 1024) * PAGE);
        }
      }
      for (const [i, pa] of mappedA) s.da.map(window + i * PAGE, pa, PAGE, RW);
      for (const [i, pa] of mappedB) s.db.map(window + i * PAGE, pa, PAGE, RW);
      const digestB = (): string => {
        let h = 0;
        const bytes = mem.readBytes(bufB, 4 * MB);
        for (let i = 0; i < bytes.length; i += 64) h = (h * 31 + bytes[i]!) | 0;
        return String(h);
      };
      const beforeB = digestB();
      for (let round = 0; round < 2; round++) { // round 2: TLBs warm
        for (let i = 0; i < pages; i++) {
          const iova = window + i * PAGE + 64;
          const into = new Uint8Array(8);
          const f = s.a.port().read(iova, into);
          figures.probes++;
          if (mappedA.has(i)) {
            assertEquals(f, null, `A read its page ${i}`);
            assert(
              into.every((x) => x === 0xaa),
              `A read foreign bytes at page ${i}`,
            );
          } else {
            assert(f !== null, `A read page ${i} mapped only for B`);
            figures.crossings++;
          }
          const w = s.a.port().write(iova, new Uint8Array(8).fill(0xaa));
          figures.probes++;
          assertEquals(w === null, mappedA.has(i), `A write page ${i}`);
        }
      }
      assertEquals(digestB(), beforeB, "A changed B's memory");
      // And B reads only its own bytes.
      for (const [i] of mappedB) {
        const got = s.b.port().readBytes(window + i * PAGE, 16);
        figures.probes++;
        assert(got.every((x) => x === 0xbb), `B read A's bytes at page ${i}`);
      }
    });
  }
});

Deno.test("a shared buffer: only attached masters, only while attached, only with the direction's permissions", async (t) => {
  for (
    const target of TARGETS.filter((x) => x.name !== "samsung-sysmmu v7.4")
  ) {
    await t.step(target.name, () => {
      const { soc, units } = targetSystem(target, [
        "mmu_cam",
        "mmu_disp",
        "mmu_gpu",
      ]);
      const mk = (name: string, i: number): Master =>
        soc.addMaster({
          name,
          ports: [{
            unit: units[target.central ? 0 : i]!,
            ...(target.central ? { streamIds: [10 + i] } : {}),
          }],
        });
      const cam = createDmaMapper(soc, mk("cam", 0));
      const disp = createDmaMapper(soc, mk("disp", 1));
      const gpu = createDmaMapper(soc, mk("gpu", 2));
      for (const m of [cam, disp, gpu]) m.domain!.setFaultHandler(() => true);
      // The gpu maps something of its own so its domain is live.
      const own = gpu.cpu.allocBuffer(PAGE);
      const ownAddr = gpu.mapSingle(own, DMA_BIDIRECTIONAL);
      gpu.mappingError(ownAddr);
      const shared = SharedDmaBuffer.export(
        cam.cpu,
        cam.cpu.allocBuffer(16384),
      );
      const camAt = shared.attach(cam), dispAt = shared.attach(disp);
      const camSg = camAt.map(DMA_FROM_DEVICE); // camera writes frames
      const dispSg = dispAt.map(DMA_TO_DEVICE); // display reads them
      const camAddr = camSg.dmaAddress[0]!, dispAddr = dispSg.dmaAddress[0]!;
      cam.port().writeBytes(camAddr, new Uint8Array([1, 2, 3, 4]));
      assertEquals([...disp.port().readBytes(dispAddr, 4)], [1, 2, 3, 4]);
      // The display may not write (TO_DEVICE is read-only for the device).
      assert(
        disp.port().write(dispAddr, new Uint8Array([9])) !== null,
        "display wrote a TO_DEVICE buffer",
      );
      // The GPU is not attached: the same addresses do not reach the buffer.
      for (const a of [camAddr, dispAddr]) {
        const into = new Uint8Array(4);
        const f = gpu.port().read(a, into);
        assert(
          f !== null || !into.every((x, i) => x === i + 1),
          "an unattached master read the shared buffer",
        );
      }
      // After the display detaches, its old address faults.
      dispAt.unmap();
      dispAt.detach();
      assert(
        disp.port().read(dispAddr, new Uint8Array(4)) !== null,
        "a detached master still reads the shared buffer",
      );
      camAt.unmap();
      camAt.detach();
      assert(
        cam.port().write(camAddr, new Uint8Array(4)) !== null,
        "a detached master still writes the shared buffer",
      );
      shared.put();
      gpu.unmapSingle(ownAddr, PAGE, DMA_BIDIRECTIONAL);
      own.free();
      figures.probes += 7;
    });
  }
});

Deno.test("strict unmap: once it returns, no DMA through the IOVA succeeds (every page size, warm TLBs)", async (t) => {
  for (const target of TARGETS) {
    await t.step(target.name, () => {
      const s = pair(target);
      const mem = s.soc.memory;
      for (const size of s.da.pageSizes.filter((p) => p <= 4 * MB)) {
        const pa = mem.frames.alloc(size);
        const iova = 0x2000_0000;
        for (let k = 0; k < 3; k++) {
          s.da.map(iova, pa, size, RW);
          // Warm every TLB level with hits all over the page.
          for (let off = 0; off < size; off += Math.max(PAGE, size / 8)) {
            s.a.port().readBytes(iova + off, 4);
          }
          s.da.unmap(iova, size);
          for (let off = 0; off < size; off += Math.max(PAGE, size / 8)) {
            assert(
              s.a.port().read(iova + off, new Uint8Array(4)) !== null,
              `${size}-byte page: read after strict unmap`,
            );
            assert(
              s.a.port().write(iova + off, new Uint8Array(4)) !== null,
              `${size}-byte page: write after strict unmap`,
            );
            figures.probes += 2;
          }
        }
        mem.frames.free(pa);
      }
      // The DMA mapper in strict mode: the same after unmapSingle. A
      // per-device unit serves one master, so "strict" gets a unit of its own.
      const dev = s.soc.addMaster({
        name: "strict",
        ports: [{
          unit: target.central ? s.units[0]! : s.soc.probeUnit({
            name: "mmu_s",
            compatible: [target.compatible],
          }),
          ...(target.central ? { streamIds: [7] } : {}),
        }],
      });
      const dma = createDmaMapper(s.soc, dev, { policy: "strict" });
      dma.domain!.setFaultHandler(() => true);
      for (let i = 0; i < 32; i++) {
        const buf = dma.cpu.allocBuffer(3 * PAGE);
        const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
        dma.mappingError(addr);
        dma.port().readBytes(addr, 8);
        dma.unmapSingle(addr, 3 * PAGE, DMA_BIDIRECTIONAL);
        assert(
          dma.port().read(addr, new Uint8Array(8)) !== null,
          "DMA after a strict unmapSingle",
        );
        figures.probes++;
        buf.free();
      }
      assertEquals(dma.stats().staleAccesses, 0);
    });
  }
});

Deno.test("lazy mode: the stale window is measured and bounded by the flush queue size and timeout", async (t) => {
  for (
    const target of TARGETS.filter((x) => x.name !== "samsung-sysmmu v7.4")
  ) {
    await t.step(target.name, () => {
      const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 * MB } });
      soc.use(target.plugin());
      const unit = soc.probeUnit({
        name: "u",
        compatible: [target.compatible],
      });
      const dev = soc.addMaster({
        name: "dev",
        ports: [{ unit, ...(target.central ? { streamIds: [3] } : {}) }],
      });
      const QUEUE = 8, TIMEOUT = 10;
      const dma = createDmaMapper(soc, dev, {
        policy: "lazy",
        flushQueueSize: QUEUE,
        flushTimeoutMs: TIMEOUT,
      });
      dma.domain!.setFaultHandler(() => true);
      // A long-lived mapping keeps the page tables of the region alive, so
      // unmaps below it free no table (which would invalidate at once).
      const keep = dma.cpu.allocBuffer(PAGE);
      const keepAddr = dma.mapSingle(keep, DMA_BIDIRECTIONAL);
      dma.mappingError(keepAddr);
      // Unmap N buffers (TLB warm); count how many old addresses are still
      // reachable: never more than the queue holds, none after a flush.
      const old: number[] = [];
      let maxStale = 0;
      for (let i = 0; i < 3 * QUEUE; i++) {
        const buf = dma.cpu.allocBuffer(PAGE);
        const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
        dma.mappingError(addr);
        dma.port().readBytes(addr, 8);
        dma.unmapSingle(addr, PAGE, DMA_BIDIRECTIONAL);
        buf.free();
        old.push(addr);
        // IOVAs are reused after a flush: count each address once.
        let stale = 0;
        for (const a of new Set(old)) {
          if (dma.port().read(a, new Uint8Array(8)) === null) stale++;
        }
        maxStale = Math.max(maxStale, stale);
        assert(
          stale <= QUEUE,
          `${stale} stale addresses with a queue of ${QUEUE}`,
        );
        assert(
          stale <= dma.stats().pendingUnmaps,
          "a flushed address is still reachable",
        );
      }
      // The timer bounds the window in time: after TIMEOUT ms nothing is stale.
      dma.flush();
      const buf = dma.cpu.allocBuffer(PAGE);
      const addr = dma.mapSingle(buf, DMA_BIDIRECTIONAL);
      dma.mappingError(addr);
      dma.port().readBytes(addr, 8);
      dma.unmapSingle(addr, PAGE, DMA_BIDIRECTIONAL);
      buf.free();
      dma.advanceTime(TIMEOUT - 1);
      const before = dma.port().read(addr, new Uint8Array(8)) === null;
      assertEquals(dma.stats().pendingUnmaps, 1, "flushed before the timer");
      dma.advanceTime(1);
      assertEquals(dma.stats().pendingUnmaps, 0, "the timer did not flush");
      assert(
        dma.port().read(addr, new Uint8Array(8)) !== null,
        `still reachable ${TIMEOUT} ms after unmap`,
      );
      for (const a of old) {
        assert(
          dma.port().read(a, new Uint8Array(8)) !== null,
          "reachable after the timer flush",
        );
      }
      const st = dma.stats();
      figures.staleMeasured += st.staleAccesses;
      console.log(
        `  ${target.name}: lazy stale window: at most ${maxStale} stale IOVAs (queue ${QUEUE}), ${st.staleAccesses} stale accesses (${st.staleBytes} bytes) measured, ${st.flushes} flushes; reachable just before the ${TIMEOUT} ms timer: ${before}, after: false`,
      );
      assert(st.flushes >= 3, "the queue size forced flushes");
      dma.unmapSingle(keepAddr, PAGE, DMA_BIDIRECTIONAL);
      keep.free();
    });
  }
});

Deno.test("bypassing streams and disabled units are reported as unprotected", () => {
  // Per-device: an Exynos unit with no domain is disabled and passes DMA
  // through; attaching makes the master protected again.
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 * MB } })
    .use(samsungSysmmu());
  const unit = soc.probeUnit({
    name: "sysmmu",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const m = soc.addMaster({ name: "fimd", ports: [{ unit }] });
  const direct = soc.addMaster({ name: "direct", ports: [{}] });
  assertEquals(soc.unprotectedMasters().map((x) => x.name).sort(), [
    "direct",
    "fimd",
  ]);
  const d = soc.createDomain(unit);
  d.attach(unit);
  assertEquals(soc.unprotectedMasters().map((x) => x.name), ["direct"]);
  // Power off disables the unit: unprotected while off.
  unit.hardware.setPower(false);
  assert(m.unprotected, "a powered-off unit passes DMA through");
  unit.hardware.setPower(true);
  assert(!m.unprotected, "power on re-enables translation");
  d.detach(unit);
  assert(m.unprotected);
  void direct;

  // Central: an unattached stream aborts (protected); a bypassing one is not.
  const soc2 = createSoc({ memory: { base: 0x4000_0000, size: 64 * MB } })
    .use(genericIommu());
  const smmu = soc2.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const nic = soc2.addMaster({
    name: "nic",
    ports: [{ unit: smmu, streamIds: [4] }],
  });
  assert(!nic.unprotected, "an unattached central stream aborts");
  assert(
    nic.port().read(0x4000_0000, new Uint8Array(4)) !== null,
    "an aborting stream reached RAM",
  );
  setStreamBypass(smmu, 4);
  assert(nic.unprotected, "a bypassing stream is unprotected");
  assertEquals(soc2.unprotectedMasters().map((x) => x.name), ["nic"]);

  // The platform builder reports its `iommukit,bypass` masters.
  const p = buildPlatform(GENERIC_SOC_DTB, { plugins: [genericIommu()] });
  const unprotected = p.unprotectedMasters();
  assert(unprotected.length > 0, "the generic SoC has a bypassing master");
  for (const pm of unprotected) {
    assert(pm.bypass || pm.master.unprotected);
  }
  for (const pm of p.masters) {
    if (pm.ports.every((port) => port.unit === null)) {
      assert(
        unprotected.includes(pm),
        `${pm.name} has no IOMMU but is not reported`,
      );
    }
  }
});

Deno.test("an Exynos platform is unprotected until every System MMU has a domain", () => {
  const p = buildPlatform(EXYNOS4210_DTB, { plugins: [samsungSysmmu()] });
  const behind = p.masters.filter((m) => m.ports.some((x) => x.unit !== null));
  assert(behind.length > 0);
  // The live state (soc): disabled units pass DMA through, so every master
  // behind one is reported. Platform.unprotectedMasters() lists only the
  // masters unprotected by design (no unit, iommukit,bypass).
  const live = (): string[] => p.soc.unprotectedMasters().map((m) => m.name);
  for (const m of behind) {
    assert(live().includes(m.master.name), `${m.name} not reported`);
    assert(
      m.master.port().read(p.soc.memory.base, new Uint8Array(4)) === null,
      `${m.name}: a disabled unit should pass DMA through`,
    );
  }
  for (const u of p.units) {
    const d = p.soc.createDomain(u.unit);
    d.setFaultHandler(() => true);
    d.attach(u.unit);
  }
  for (const m of behind) {
    assert(!live().includes(m.master.name), `${m.name} still reported`);
    assert(
      m.master.port().read(p.soc.memory.base, new Uint8Array(4)) !== null,
      `${m.name}: an enabled unit with an empty domain let DMA through`,
    );
  }
  assertEquals(
    p.unprotectedMasters().length,
    0,
    "no master is unprotected by design",
  );
});

Deno.test("isolation figures", () => {
  console.log(
    `isolation: ${figures.probes} DMA probes, ${figures.crossings} cross-domain attempts refused, ${figures.staleMeasured} lazy stale accesses measured, 0 escapes`,
  );
  assert(figures.probes > 0);
});
