/**
 * net-rx: a NIC-style receive ring. The descriptor ring is a coherent
 * allocation; every slot holds a streaming buffer mapped for the device.
 * Per packet the NIC fetches the slot's descriptor by DMA, writes the packet
 * to the buffer address it found there and writes the status back; the
 * driver unmaps the buffer, checks the packet, and refills the slot with a
 * freshly mapped buffer. A streaming map and unmap per packet is what makes
 * strict and lazy invalidation differ.
 *
 * With `lateDmaPercent`, the NIC sometimes reads a buffer again just after
 * the driver unmapped it (a device with a stale address): under strict
 * invalidation that must fault; under lazy invalidation it may still succeed
 * through the IOTLB until the next flush, which the master's stale-access
 * count shows.
 *
 * Time: every packet advances the simulated clock by `packetUs`
 * microseconds (default 100: 10,000 packets per second, an interrupt-
 * moderated gigabit NIC under moderate load). With the default 10 ms flush
 * timeout that is about 100 queued unmaps per timer flush, below the
 * 256-entry queue, so lazy mode flushes on the timer; `packetUs: 0` leaves
 * only full-queue flushes.
 *
 * @module
 */
import { crc32 } from "./checksum.ts";
import { DMA_FROM_DEVICE, type DmaBuffer } from "./dma.ts";
import {
  checked,
  pickMaster,
  resolveParams,
  type Workload,
  type WorkloadContext,
} from "./workload.ts";

const DEFAULTS = {
  packets: 512,
  ring: 32,
  bufferBytes: 2048,
  lateDmaPercent: 5,
  packetUs: 100,
};
const LIMITS = {
  packets: [1, 10_000_000],
  ring: [1, 4096],
  bufferBytes: [64, 65536],
  lateDmaPercent: [0, 100],
  packetUs: [0, 1_000_000],
} as const;

const DESC = 16; // bytes: u64 address, u32 length, u32 status
const STATUS_DONE = 1;

/**
 * The net-rx workload.
 *
 * @param params `packets`, `ring` (slots), `bufferBytes` (per slot),
 * `lateDmaPercent` (chance of a late device read after unmap), `packetUs`
 * (simulated microseconds per packet).
 * @returns The workload.
 * @throws {IommuError} `EINVAL` for unknown or out-of-range parameters.
 */
export function netRx(
  params: Readonly<Record<string, unknown>> = {},
): Workload {
  const p = resolveParams("net-rx", DEFAULTS, LIMITS, params);
  return {
    name: "net-rx",
    kind: "net-rx",
    description:
      "NIC receive ring: a streaming map and unmap per packet, descriptors in coherent memory",
    params: p,
    run(ctx: WorkloadContext): void {
      const nic = pickMaster(ctx.platform, "net-rx", {
        role: "NIC",
        prefer: ["iommukit,generic-nic"],
      });
      const dma = ctx.mapper(nic);
      const cpu = dma.cpu;
      const port = nic.master.port(0);
      const slots = p.ring!;
      const size = p.bufferBytes!;
      const ring = dma.allocCoherent(slots * DESC);
      const desc = new Uint8Array(DESC);
      const view = new DataView(desc.buffer);
      const bufs: DmaBuffer[] = [];
      const addrs: number[] = [];
      const fill = (slot: number) => {
        const buf = cpu.allocBuffer(size);
        const addr = checked(
          dma,
          dma.mapSingle(buf, DMA_FROM_DEVICE),
          "rx buffer",
        );
        bufs[slot] = buf;
        addrs[slot] = addr;
        view.setUint32(0, addr % 2 ** 32, true);
        view.setUint32(4, Math.floor(addr / 2 ** 32), true);
        view.setUint32(8, size, true);
        view.setUint32(12, 0, true);
        cpu.writeBuffer(ring.cpu, desc, slot * DESC);
      };
      for (let s = 0; s < slots; s++) fill(s);

      const packet = new Uint8Array(size);
      for (let n = 0; n < p.packets!; n++) {
        const slot = n % slots;
        const tag = `packet ${n}`;
        // NIC: fetch the descriptor by DMA and use the address it holds.
        const d = ctx.deviceRead(port, ring.dmaAddr + slot * DESC, DESC);
        if (!(d instanceof Uint8Array)) {
          ctx.check(`${tag}: descriptor fetch faulted`, 0, 1);
          ctx.advanceTime(dma, p.packetUs! / 1000);
          continue;
        }
        const dv = new DataView(d.buffer);
        const target = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
        if (!ctx.check(`${tag}: descriptor address`, addrs[slot]!, target)) {
          // A corrupted descriptor: the NIC would scribble somewhere else;
          // the mismatch is recorded, the slot left as it is.
          continue;
        }
        const len = ctx.rng.int(60, Math.min(1514, size));
        ctx.rng.bytes(packet.subarray(0, len));
        const want = crc32(packet.subarray(0, len));
        const wf = ctx.deviceWrite(port, target, packet.subarray(0, len));
        if (wf !== null) ctx.check(`${tag}: packet write faulted`, 0, 1);
        dv.setUint32(8, len, true);
        dv.setUint32(12, STATUS_DONE, true);
        ctx.deviceWrite(port, ring.dmaAddr + slot * DESC + 8, d.subarray(8));
        // Driver: read the status (coherent: no sync), unmap, check, refill.
        const st = cpu.readBuffer(ring.cpu, slot * DESC + 8, 8);
        const sv = new DataView(st.buffer);
        ctx.check(`${tag}: status`, STATUS_DONE, sv.getUint32(4, true));
        const got = sv.getUint32(0, true);
        dma.unmapSingle(addrs[slot]!, size, DMA_FROM_DEVICE);
        ctx.check(
          `${tag}: payload`,
          want,
          crc32(cpu.readBuffer(bufs[slot]!, 0, Math.min(got, size))),
        );
        const late = p.lateDmaPercent! > 0 &&
          ctx.rng.int(1, 100) <= p.lateDmaPercent!;
        if (late) {
          const r = port.read(addrs[slot]!, new Uint8Array(64));
          // Strict: the unmap invalidated the IOTLB, so this must fault.
          // Lazy: it may succeed until the flush (counted as stale access).
          if (ctx.policy === "strict" && dma.domain !== null) {
            ctx.check(
              `${tag}: late read after strict unmap faults`,
              1,
              r === null ? 0 : 1,
            );
          }
        }
        bufs[slot]!.free();
        fill(slot);
        ctx.advanceTime(dma, p.packetUs! / 1000);
        ctx.progress(n + 1, p.packets!);
      }
      // The ring stays populated, as a running interface keeps it.
    },
  };
}
