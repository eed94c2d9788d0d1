/**
 * gpu: large coherent allocations (big pages where the unit has them) that
 * the GPU fills through one port and reads back through another, and shared
 * buffers the GPU renders into and a second master reads, each in its own
 * address space. Half the allocations are freed at the end so the IOVA
 * space shows holes.
 *
 * Time: every allocation and every shared buffer is one frame of
 * `frameMs` simulated milliseconds (default 16: 60 frames per second) on
 * every mapper; one more frame passes after the frees, so in lazy mode the
 * flush timer releases them.
 *
 * Checks: every allocation as read back by the GPU and by the CPU; every
 * shared buffer as the consumer read it and as the CPU reads it after sync.
 *
 * @module
 */
import { crc32 } from "./checksum.ts";
import { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, SharedDmaBuffer } from "./dma.ts";
import {
  pickMaster,
  resolveParams,
  type Workload,
  type WorkloadContext,
} from "./workload.ts";

const DEFAULTS = {
  allocations: 6,
  minKiB: 256,
  maxKiB: 4096,
  shared: 2,
  sharedKiB: 512,
  frameMs: 16,
};
const LIMITS = {
  allocations: [1, 4096],
  minKiB: [4, 1 << 20],
  maxKiB: [4, 1 << 20],
  shared: [0, 1024],
  sharedKiB: [4, 1 << 20],
  frameMs: [0, 10_000],
} as const;

/**
 * The gpu workload.
 *
 * @param params `allocations` (coherent), their size range `minKiB`..`maxKiB`,
 * `shared` buffers of `sharedKiB` each, `frameMs` (simulated milliseconds
 * per allocation or shared buffer).
 * @returns The workload.
 * @throws {IommuError} `EINVAL` for unknown or out-of-range parameters
 * (also when `minKiB` exceeds `maxKiB`).
 */
export function gpu(params: Readonly<Record<string, unknown>> = {}): Workload {
  const p = resolveParams("gpu", DEFAULTS, LIMITS, params);
  if (p.minKiB! > p.maxKiB!) {
    resolveParams("gpu", DEFAULTS, { ...LIMITS, minKiB: [4, p.maxKiB!] }, {
      minKiB: p.minKiB,
    });
  }
  return {
    name: "gpu",
    kind: "gpu",
    description:
      "large coherent allocations filled and read back through two ports, shared buffers read by a second master",
    params: p,
    run(ctx: WorkloadContext): void {
      const g = pickMaster(ctx.platform, "gpu", {
        role: "GPU",
        prefer: ["iommukit,generic-gpu", "samsung,s5pv210-g2d"],
        minPorts: 2,
      });
      const dma = ctx.mapper(g);
      const cpu = dma.cpu;
      const wr = g.master.port(0);
      const rd = g.master.port(g.master.ports.length - 1);
      const total = p.allocations! + p.shared!;
      const frame = () => {
        for (const m of ctx.mappers()) ctx.advanceTime(m.mapper, p.frameMs!);
      };
      const allocs = [];
      for (let i = 0; i < p.allocations!; i++) {
        const kib = ctx.rng.int(p.minKiB!, p.maxKiB!);
        const size = Math.ceil(kib / 4) * 4096;
        const c = dma.allocCoherent(size);
        const data = ctx.rng.bytes(new Uint8Array(size));
        const want = crc32(data);
        const tag = `allocation ${i} (${kib} KiB)`;
        if (ctx.deviceWrite(wr, c.dmaAddr, data) !== null) {
          ctx.check(`${tag}: GPU write faulted`, 0, 1);
        }
        const back = ctx.deviceRead(rd, c.dmaAddr, size);
        ctx.check(
          `${tag}: read back by ${g.name}`,
          want,
          back instanceof Uint8Array ? crc32(back) : -1,
        );
        ctx.check(`${tag}: CPU view`, want, crc32(cpu.readBuffer(c.cpu)));
        allocs.push(c);
        frame();
        ctx.progress(i + 1, total);
      }
      if (p.shared! > 0) {
        const consumer = pickMaster(ctx.platform, "gpu", {
          role: "consumer of shared buffers",
          prefer: ["iommukit,generic-accel", "samsung,exynos4210-fimd"],
          exclude: [g],
        });
        const cm = ctx.mapper(consumer);
        const size = p.sharedKiB! * 1024;
        for (let j = 0; j < p.shared!; j++) {
          const tag = `shared buffer ${j}`;
          const shared = SharedDmaBuffer.export(
            cpu,
            cpu.allocBuffer(size, { contiguous: false }),
            { name: tag },
          );
          const ga = shared.attach(dma).map(DMA_BIDIRECTIONAL).dmaAddress[0]!;
          const ca = shared.attach(cm).map(DMA_TO_DEVICE).dmaAddress[0]!;
          const data = ctx.rng.bytes(new Uint8Array(size));
          const want = crc32(data);
          if (ctx.deviceWrite(wr, ga, data) !== null) {
            ctx.check(`${tag}: GPU render faulted`, 0, 1);
          }
          const seen = ctx.deviceRead(consumer.master.port(0), ca, size);
          ctx.check(
            `${tag}: read by ${consumer.name}`,
            want,
            seen instanceof Uint8Array ? crc32(seen) : -1,
          );
          shared.beginCpuAccess(DMA_BIDIRECTIONAL);
          ctx.check(
            `${tag}: CPU view after sync`,
            want,
            crc32(cpu.readBuffer(shared.buffer)),
          );
          shared.endCpuAccess(DMA_BIDIRECTIONAL);
          shared.put(); // the attachments keep it alive
          frame();
          ctx.progress(p.allocations! + j + 1, total);
        }
      }
      // Free every other allocation: holes in the IOVA space.
      for (let i = 1; i < allocs.length; i += 2) dma.freeCoherent(allocs[i]!);
      frame();
    },
  };
}
