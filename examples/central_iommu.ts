/**
 * A central IOMMU shared by several masters, told apart by stream IDs:
 *
 * - a NIC-like master (stream 1) with a descriptor ring and scattered packet
 *   buffers mapped in one batched call;
 * - a GPU-like master (stream 2) with one large buffer, mapped with 1 GiB and
 *   2 MiB blocks;
 * - a legacy master that drives only 32-bit addresses (stream 3), reaching
 *   RAM that starts at 4 GiB through a low IOVA;
 * - a debug DMA engine (stream 4) left in bypass.
 *
 * Each translating master has its own domain, so none reaches another's
 * memory; faults come back as event records. The last part drives a second
 * unit through the virtio-iommu request front end.
 *
 * Run: `deno run examples/central_iommu.ts`
 *
 * @module
 */
import {
  createSoc,
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
} from "../core/mod.ts";
import {
  createVirtioIommu,
  encodeAttach,
  encodeMap,
  encodeUnmap,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  setStreamBypass,
  tailStatus,
  VIRTIO_IOMMU_MAP_F_READ,
  VIRTIO_IOMMU_MAP_F_WRITE,
  VIRTIO_IOMMU_STATUS_NAMES,
} from "../plugins/generic_iommu/mod.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const GIB = 2 ** 30;

// 4 GiB of sparse RAM starting at 4 GiB (only what is touched costs host
// memory): a 32-bit master cannot reach any of it without the IOMMU.
const soc = createSoc({ memory: { base: 4 * GIB, size: 4 * GIB } }).use(
  genericIommu(),
);
const smmu = soc.probeUnit({
  name: "smmu",
  compatible: ["iommukit,generic-iommu"],
  props: { "iommukit,stream-ids": 64, "iommukit,input-bits": 48 },
});
const nic = soc.addMaster({
  name: "nic",
  ports: [{ unit: smmu, streamIds: [1] }],
});
const gpu = soc.addMaster({
  name: "gpu",
  ports: [{ unit: smmu, streamIds: [2] }],
});
const legacy = soc.addMaster({
  name: "legacy",
  dmaBits: 32,
  ports: [{ unit: smmu, streamIds: [3] }],
});
const dbg = soc.addMaster({
  name: "debug-dma",
  ports: [{ unit: smmu, streamIds: [4] }],
});
const frames = soc.memory.frames;

// NIC: a 4 KiB descriptor ring and 64 packet buffers scattered in RAM, mapped
// at consecutive IOVAs in one driver call.
const nicDomain = soc.createDomain(smmu);
nicDomain.attach(smmu, [1]);
const ring = frames.alloc(4096);
nicDomain.map(0x1000, ring, 4096, RW | IOMMU_CACHE);
const packets = Array.from({ length: 64 }, () => frames.alloc(4096));
packets.reverse(); // physically scattered order
nicDomain.mapPages(0x10_0000, packets, RW);
for (let i = 0; i < 64; i++) {
  nic.port().writeBytes(
    0x10_0000 + i * 4096,
    new TextEncoder().encode(`packet ${i}`),
  );
  const desc = new Uint8Array(16);
  new DataView(desc.buffer).setUint32(0, 0x10_0000 + i * 4096, true);
  nic.port().writeBytes(0x1000 + i * 16, desc);
}

// GPU: a 1 GiB + 2 MiB buffer; the domain picks 1 GiB and 2 MiB blocks.
const gpuDomain = soc.createDomain(smmu);
gpuDomain.attach(smmu, [2]);
const big = frames.alloc(GIB);
const tail = frames.alloc(2 ** 21);
gpuDomain.map(0x40_0000_0000, big, GIB, RW);
gpuDomain.map(0x40_4000_0000, tail, 2 ** 21, RW);
gpu.port().writeBytes(0x40_3fff_fff0, new Uint8Array(16).fill(0x6b));

// Legacy 32-bit master: all RAM is above 4 GiB; the IOMMU lets it reach its
// buffer through a low IOVA.
const legacyDomain = soc.createDomain(smmu);
legacyDomain.attach(smmu, [3]);
const high = frames.alloc(2 ** 16);
legacyDomain.map(0x8000_0000, high, 2 ** 16, RW);
legacy.port().writeBytes(0x8000_0100, new Uint8Array([1, 2, 3, 4]));
console.log(
  `legacy master wrote through IOVA 0x80000100 into PA 0x${
    (high + 0x100).toString(16)
  }`,
);

// Debug DMA: bypass, so it sees physical addresses directly.
setStreamBypass(smmu, 4);
dbg.port().readBytes(ring, 16);

// Isolation: the NIC cannot reach the GPU's IOVAs, nor the legacy buffer.
const f1 = nic.port().read(0x40_0000_0000, new Uint8Array(4));
const f2 = gpu.port().write(0x8000_0100, new Uint8Array(4));
// An access that succeeded here would mean the domains leak into each other.
if (f1 === null || f2 === null) {
  throw new Error(
    `isolation failed: nic -> gpu buffer ${
      f1 === null ? "succeeded" : "faulted"
    }, gpu -> legacy buffer ${f2 === null ? "succeeded" : "faulted"}`,
  );
}
console.log(
  "nic -> gpu buffer:",
  f1.reason,
  "| gpu -> legacy buffer:",
  f2.reason,
);

const driver = genericDriverOf(smmu);
console.log(
  "event records:",
  driver.drainEvents().map((e) =>
    `${e.kind}@sid${e.streamId}:0x${e.iova.toString(16)}`
  ),
);
console.log(
  "unprotected masters:",
  soc.unprotectedMasters().map((m) => m.name),
);
console.log(
  "gpu leaves:",
  gpuDomain.leaves().map((l) =>
    `0x${l.iova.toString(16)}+0x${l.pageSize.toString(16)}`
  ),
);

// Strict unmap of the packet buffers: one call removes all 64 pages, queues
// one range invalidation for them and syncs before it returns, so no stale
// translation is left (lazy unmap would be unmapNoSync plus Domain.sync).
console.log("nic unmapped bytes:", nicDomain.unmap(0x10_0000, 64 * 4096));

const c = genericHardwareOf(smmu).counters();
console.table({
  microTlb: {
    lookups: c["microTlb.lookups"],
    misses: c["microTlb.misses"],
    hitRate: c["microTlb.hitRate"],
  },
  iotlb: {
    lookups: c["iotlb.lookups"],
    misses: c["iotlb.misses"],
    hitRate: c["iotlb.hitRate"],
  },
  "walkCache.L2": {
    lookups: c["walkCache.L2.lookups"],
    misses: c["walkCache.L2.misses"],
    hitRate: c["walkCache.L2.hitRate"],
  },
  configCache: {
    lookups: c["configCache.lookups"],
    misses: c["configCache.misses"],
    hitRate: c["configCache.hitRate"],
  },
});
console.log(
  `walks ${c["walks"]} (descriptor reads L0..L3: ${c["walks.L0"]}/${
    c["walks.L1"]
  }/${c["walks.L2"]}/${c["walks.L3"]}), commands ${c["commands"]}, syncs ${
    c["commands.sync"]
  }, events ${c["events"]}`,
);

// A second unit driven through virtio-iommu requests (wire format).
const viommu = soc.probeUnit({
  name: "viommu",
  compatible: ["virtio,pci-iommu"],
});
const vdev = createVirtioIommu(soc, viommu);
const disk = soc.addMaster({
  name: "virtio-blk",
  ports: [{ unit: viommu, streamIds: [8] }],
});
const blkBuf = frames.alloc(8192);
const status = (b: Uint8Array) =>
  VIRTIO_IOMMU_STATUS_NAMES[tailStatus(vdev.handleRequest(b))];
console.log("ATTACH", status(encodeAttach(1, 8)));
console.log(
  "MAP",
  status(
    encodeMap(
      1,
      0x2000,
      0x3fff,
      blkBuf,
      VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE,
    ),
  ),
);
disk.port().writeBytes(0x2ff0, new Uint8Array(32).fill(0xd1));
console.log(
  "UNMAP half of it:",
  status(encodeUnmap(1, 0x2000, 0x2fff)),
  "(a mapping is never split)",
);
console.log("UNMAP all of it:", status(encodeUnmap(1, 0x2000, 0x3fff)));
disk.port().read(0x2000, new Uint8Array(4));
console.log("virtio fault records:", vdev.takeEvents().length);
