/**
 * Exynos4210-like video pipeline: the MFC video codec (two System MMUs, its
 * left and right bus ports) decodes frames into buffers that the display
 * controller FIMD0 (its own System MMU) scans out. Each master sees the
 * buffers at its own I/O virtual addresses; the bytes arrive intact because
 * both System MMUs walk real Exynos page tables in simulated RAM.
 *
 * Run: deno run examples/exynos4_mfc.ts
 *
 * @module
 */
import { createSoc, IOMMU_READ, IOMMU_WRITE } from "../core/mod.ts";
import {
  samsungSysmmu,
  setMasterPower,
  type SysmmuHardware,
} from "../plugins/samsung_sysmmu/mod.ts";

/** What the demo measured, for tests and curious readers. */
export interface MfcDemoResult {
  /** Bytes decoded by the MFC and read back intact by FIMD. */
  bytesVerified: number;
  /** Frames (buffers) that went through the pipeline. */
  frames: number;
  /** Register writes each System MMU saw, by unit name. */
  registerWrites: Record<string, number>;
  /** Whether DMA faulted after the buffers were unmapped (it must). */
  faultAfterUnmap: boolean;
}

const SYSMMU = "samsung,exynos-sysmmu";
const V3_3 = 0x30600000; // iommukit's model choice for Exynos4210
const FRAME_BYTES = 256 << 10; // a small frame: 256 KiB
const FRAMES = 3;
const MFC_IOVA = 0x2000_0000;
const FIMD_IOVA = 0x3000_0000;

/**
 * Build the platform, decode, scan out, verify, tear down.
 *
 * @param log Where to print progress (default: nowhere).
 * @returns The figures.
 */
export function runExynos4Mfc(
  log: (line: string) => void = () => {},
): MfcDemoResult {
  // 1 GiB of DRAM at 0x4000_0000 (sparse: only touched pages cost memory).
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 1 << 30 } })
    .use(samsungSysmmu());
  const node = (name: string, base: number) => ({
    name,
    path: `/soc/sysmmu@${base.toString(16)}`,
    compatible: [SYSMMU],
    reg: [{ address: base, size: 0x1000 }],
    props: { "iommukit,sysmmu-version": V3_3 },
  });
  // Base addresses of the Exynos4210 device tree.
  const mfcL = soc.probeUnit(node("sysmmu_mfc_l", 0x1362_0000));
  const mfcR = soc.probeUnit(node("sysmmu_mfc_r", 0x1363_0000));
  const fimdU = soc.probeUnit(node("sysmmu_fimd0", 0x11e2_0000));
  const mfc = soc.addMaster({
    name: "codec@13400000",
    ports: [{ name: "left", unit: mfcL }, { name: "right", unit: mfcR }],
    dmaBits: 32,
  });
  const fimd = soc.addMaster({
    name: "fimd@11c00000",
    ports: [{ unit: fimdU }],
    dmaBits: 32,
  });

  // One IOVA space for the MFC, shared by both of its System MMUs.
  const mfcSpace = soc.createDomain(mfcL);
  mfcSpace.attach(mfcL);
  mfcSpace.attach(mfcR);
  const fimdSpace = soc.createDomain(fimdU);
  fimdSpace.attach(fimdU);
  for (const u of [mfcL, mfcR, fimdU]) {
    (u.hardware as SysmmuHardware).startTrace();
  }

  // Frame buffers from scattered 4 KiB pages, as a kernel allocator gives them.
  const ram = soc.memory.frames;
  const pagesPerFrame = FRAME_BYTES / 4096;
  const pages: number[][] = [];
  for (let f = 0; f < FRAMES; f++) {
    const list: number[] = [];
    for (let p = 0; p < pagesPerFrame; p++) {
      list.push(ram.alloc(4096));
      if (p % 3 === 0) ram.alloc(4096); // leave holes: not contiguous
    }
    pages.push(list);
    // The decoder writes, the display only reads.
    mfcSpace.mapPages(MFC_IOVA + f * FRAME_BYTES, list, IOMMU_WRITE);
    fimdSpace.mapPages(FIMD_IOVA + f * FRAME_BYTES, list, IOMMU_READ);
  }
  log(
    `mapped ${FRAMES} frames of ${pagesPerFrame} scattered pages ` +
      `at MFC ${MFC_IOVA.toString(16)} and FIMD ${FIMD_IOVA.toString(16)}`,
  );

  // "Decode": luma through the left port, chroma through the right port.
  const half = FRAME_BYTES / 2;
  const frame = new Uint8Array(FRAME_BYTES);
  let verified = 0;
  for (let f = 0; f < FRAMES; f++) {
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 13 + f * 101) & 0xff;
    const at = MFC_IOVA + f * FRAME_BYTES;
    mfc.port("left").writeBytes(at, frame.subarray(0, half));
    mfc.port("right").writeBytes(at + half, frame.subarray(half));
    // Scan-out through FIMD's own System MMU and IOVA.
    const shown = fimd.port().readBytes(
      FIMD_IOVA + f * FRAME_BYTES,
      FRAME_BYTES,
    );
    for (let i = 0; i < frame.length; i++) {
      if (shown[i] !== frame[i]) {
        throw new Error(`frame ${f} byte ${i}: ${shown[i]} != ${frame[i]}`);
      }
    }
    verified += FRAME_BYTES;
  }
  log(`FIMD read back ${verified} bytes exactly as the MFC wrote them`);
  // A display refresh of the top lines: now the TLB hits.
  fimd.port().readBytes(FIMD_IOVA + (FRAMES - 1) * FRAME_BYTES, 32 << 10);

  // The display may not write into the decoder's buffers.
  const refused = fimd.port().write(FIMD_IOVA, new Uint8Array(4));
  log(`FIMD write attempt: ${refused?.reason ?? "allowed?!"}`);
  (fimdU.hardware as SysmmuHardware).clearFault();

  // The codec goes idle: its System MMUs power down with it.
  setMasterPower(mfc, false);
  mfcSpace.unmap(MFC_IOVA, FRAMES * FRAME_BYTES); // no register touched
  setMasterPower(mfc, true); // base reprogrammed, TLB flushed
  const stale = mfc.port("left").write(MFC_IOVA, new Uint8Array(1));
  log(`MFC DMA after unmap: ${stale?.reason ?? "reached memory?!"}`);

  const registerWrites: Record<string, number> = {};
  for (const u of [mfcL, mfcR, fimdU]) {
    const hw = u.hardware as SysmmuHardware;
    registerWrites[u.name] = hw.trace().length;
    const c = hw.counters();
    log(
      `${u.name}: ${c.tlbHits} TLB hits, ${c.walks} walks, ` +
        `${c.faults} faults, ${hw.trace().length} register writes`,
    );
  }
  return {
    bytesVerified: verified,
    frames: FRAMES,
    registerWrites,
    faultAfterUnmap: stale !== null,
  };
}

if (import.meta.main) runExynos4Mfc(console.log);
