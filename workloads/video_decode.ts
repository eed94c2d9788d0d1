/**
 * video-decode: a hardware video decoder (the Exynos MFC, two bus ports)
 * reads each frame's bitstream through one port and writes the decoded
 * frame through the other into a ring of frame buffers; a display
 * controller (FIMD) scans every frame out through its own IOMMU. The frame
 * buffers are shared buffers, mapped in both masters' address spaces.
 *
 * At start the decoder's firmware and working memory (`firmwareKiB`) is a
 * coherent allocation, as the MFC driver makes one: physically contiguous
 * where it can be, so it maps with large pages (a 1 MiB section on Exynos,
 * 64 KiB or 2 MiB blocks elsewhere) where IOVA alignment allows.
 *
 * Time: every frame advances each mapper's simulated clock by `frameMs`
 * (default 33 ms: 30 frames per second), longer than the 10 ms lazy flush
 * timeout, so in lazy mode each frame's bitstream unmap is flushed by the
 * timer one frame later.
 *
 * Checks: the firmware as the decoder read it; per frame the bitstream as
 * the decoder read it, the frame as the display scanned it out, and the
 * frame as the CPU reads it after syncing.
 *
 * @module
 */
import type { IommuFault } from "../core/mod.ts";
import { crc32 } from "./checksum.ts";
import { DMA_FROM_DEVICE, DMA_TO_DEVICE, SharedDmaBuffer } from "./dma.ts";
import {
  checked,
  pickMaster,
  resolveParams,
  type Workload,
  type WorkloadContext,
} from "./workload.ts";

const DEFAULTS = {
  frames: 12,
  width: 320,
  height: 240,
  buffers: 3,
  bitstreamKiB: 24,
  firmwareKiB: 1024,
  frameMs: 33,
};
const LIMITS = {
  frames: [1, 100_000],
  width: [16, 4096],
  height: [16, 4096],
  buffers: [1, 64],
  bitstreamKiB: [1, 4096],
  firmwareKiB: [0, 65536],
  frameMs: [0, 10_000],
} as const;

// The "decoder": expands the bitstream into a frame, deterministically, so
// the expected frame is known without trusting any DMA.
function decode(bitstream: Uint8Array, frame: number, out: Uint8Array): void {
  const n = bitstream.length;
  for (let i = 0; i < out.length; i++) {
    out[i] = bitstream[i % n]! ^ ((i >>> 10) + frame * 37);
  }
}

function isFault(x: Uint8Array | IommuFault): x is IommuFault {
  return !(x instanceof Uint8Array);
}

/**
 * The video-decode workload.
 *
 * @param params `frames`, `width`, `height` (pixels, 4 bytes each),
 * `buffers` (frame-buffer ring), `bitstreamKiB` (per frame), `firmwareKiB`
 * (decoder firmware and working memory, 0 for none), `frameMs` (simulated
 * milliseconds per frame).
 * @returns The workload.
 * @throws {IommuError} `EINVAL` for unknown or out-of-range parameters.
 */
export function videoDecode(
  params: Readonly<Record<string, unknown>> = {},
): Workload {
  const p = resolveParams("video-decode", DEFAULTS, LIMITS, params);
  return {
    name: "video-decode",
    kind: "video-decode",
    description:
      "MFC decodes frames through both ports into shared buffers that FIMD scans out",
    params: p,
    run(ctx: WorkloadContext): void {
      const pf = ctx.platform;
      const dec = pickMaster(pf, "video-decode", {
        role: "decoder",
        prefer: ["samsung,mfc-v5", "iommukit,generic-gpu"],
        minPorts: 2,
      });
      const disp = pickMaster(pf, "video-decode", {
        role: "display",
        prefer: ["samsung,exynos4210-fimd", "iommukit,generic-accel"],
        exclude: [dec],
      });
      const dm = ctx.mapper(dec);
      const fm = ctx.mapper(disp);
      const cpu = dm.cpu;
      const inPort = dec.master.port(0);
      const outPort = dec.master.port(dec.master.ports.length - 1);
      const scanPort = disp.master.port(0);
      const frameBytes = p.width! * p.height! * 4;
      const bsBytes = p.bitstreamKiB! * 1024;

      // Firmware: the CPU loads it into coherent memory, the decoder boots
      // from it through its first port. It stays allocated for the session.
      if (p.firmwareKiB! > 0) {
        const fwBytes = p.firmwareKiB! * 1024;
        const fw = dm.allocCoherent(fwBytes);
        const image = ctx.rng.bytes(new Uint8Array(fwBytes));
        cpu.writeBuffer(fw.cpu, image);
        const booted = ctx.deviceRead(inPort, fw.dmaAddr, fwBytes);
        ctx.check(
          `firmware read by ${dec.name}`,
          crc32(image),
          isFault(booted) ? -1 : crc32(booted),
        );
      }

      // Frame buffers: exported once, mapped by decoder (device writes)
      // and display (device reads) for the whole session.
      const ring = [];
      for (let b = 0; b < p.buffers!; b++) {
        const buffer = cpu.allocBuffer(frameBytes, { contiguous: false });
        const shared = SharedDmaBuffer.export(cpu, buffer, {
          name: `frame buffer ${b}`,
        });
        const forDec = shared.attach(dm);
        const forDisp = shared.attach(fm);
        const decAddr = forDec.map(DMA_FROM_DEVICE).dmaAddress[0]!;
        const dispAddr = forDisp.map(DMA_TO_DEVICE).dmaAddress[0]!;
        ring.push({ shared, decAddr, dispAddr });
      }

      const bitstream = new Uint8Array(bsBytes);
      const frame = new Uint8Array(frameBytes);
      for (let f = 0; f < p.frames!; f++) {
        const tag = `frame ${f}`;
        ctx.rng.bytes(bitstream);
        const bs = cpu.allocBuffer(bsBytes, { contiguous: false });
        cpu.writeBuffer(bs, bitstream);
        const bsAddr = checked(
          dm,
          dm.mapSingle(bs, DMA_TO_DEVICE),
          "bitstream",
        );
        // Decoder fetches the bitstream through its first port...
        const seen = ctx.deviceRead(inPort, bsAddr, bsBytes);
        const bsOk = !isFault(seen) &&
          ctx.check(
            `${tag}: bitstream read by ${dec.name}`,
            crc32(bitstream),
            crc32(seen),
          );
        if (isFault(seen)) {
          ctx.check(`${tag}: bitstream read by ${dec.name} faulted`, 0, 1);
        }
        dm.unmapSingle(bsAddr, bsBytes, DMA_TO_DEVICE);
        bs.free();
        // ...and writes the decoded frame through its last port.
        decode(bsOk ? (seen as Uint8Array) : bitstream, f, frame);
        const want = crc32(frame);
        const slot = ring[f % ring.length]!;
        const wf = ctx.deviceWrite(outPort, slot.decAddr, frame);
        if (wf !== null) {
          ctx.check(`${tag}: frame write by ${dec.name} faulted`, 0, 1);
        }
        // Display scans the frame out through its own unit.
        const out = ctx.deviceRead(scanPort, slot.dispAddr, frameBytes);
        ctx.check(
          `${tag}: scanned out by ${disp.name}`,
          want,
          isFault(out) ? -1 : crc32(out),
        );
        // The CPU looks at the frame too (syncs every importer for the CPU).
        slot.shared.beginCpuAccess(DMA_FROM_DEVICE);
        ctx.check(
          `${tag}: CPU view after sync`,
          want,
          crc32(cpu.readBuffer(slot.shared.buffer)),
        );
        slot.shared.endCpuAccess(DMA_FROM_DEVICE);
        ctx.advanceTime(dm, p.frameMs!);
        ctx.advanceTime(fm, p.frameMs!);
        ctx.progress(f + 1, p.frames!);
      }
      // The ring stays mapped: a decoder session keeps its buffers.
    },
  };
}
