/**
 * The generic central IOMMU plugin: one unit serves many masters told apart
 * by stream IDs. A stream table in RAM maps each stream to abort, bypass or a
 * domain's context; domains use ARM LPAE page tables (4 KiB granule, 4 KiB
 * pages, 2 MiB and 1 GiB blocks, 32- to 48-bit input); the hardware walks
 * them through a per-stream micro TLB, an IOTLB and per-level walk caches
 * (gem5 SMMUv3 sizes; the 32-entry micro TLB is direct-mapped by the 4 KiB
 * page number rather than fully associative, a deviation for the speed of
 * the model, see the `microTlb` option); invalidations go through a
 * command queue and faults come back as event records plus an interrupt.
 * A virtio-iommu front end drives the same unit with wire-format requests.
 *
 * @example Two masters behind one unit, isolated from each other
 * ```ts
 * import { createSoc, IOMMU_READ, IOMMU_WRITE } from "../../core/mod.ts";
 * import { genericIommu } from "./mod.ts";
 * const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
 * const unit = soc.probeUnit({ name: "smmu", compatible: ["iommukit,generic-iommu"] });
 * const nic = soc.addMaster({ name: "nic", ports: [{ unit, streamIds: [1] }] });
 * const gpu = soc.addMaster({ name: "gpu", ports: [{ unit, streamIds: [2] }] });
 * const d = soc.createDomain(unit);
 * d.attach(unit, [1]);
 * const buf = soc.memory.frames.alloc(4096);
 * d.map(0x1000, buf, 4096, IOMMU_READ | IOMMU_WRITE);
 * nic.port().writeBytes(0x1000, new Uint8Array([7]));
 * if (soc.memory.read8(buf) !== 7) throw new Error("DMA lost");
 * if (gpu.port().write(0x1000, new Uint8Array([1])) === null) throw new Error("not isolated");
 * ```
 *
 * @module
 */
export {
  bypassStreams,
  GENERIC_IOMMU_COMPATIBLE,
  GENERIC_IOMMU_NAME,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  type GenericIommuOptions,
  setStreamBypass,
} from "./plugin.ts";
export { GenericIommuHardware } from "./hardware.ts";
export {
  DEFAULT_IOTLB,
  type GenericHardwareConfig,
  type GenericIrqLine,
  type GenericIrqListener,
  type GenericStreamCounters,
  REGISTER_WINDOW,
} from "./hardware_types.ts";
export {
  type GenericDriverConfig,
  GenericIommuDriver,
  type StreamMode,
} from "./driver.ts";
export { type DomainHost, GenericDomainOps } from "./domain_ops.ts";
export {
  LpaePageTable,
  type LpaePageTableOptions,
  type MapPlanLike,
} from "./page_table.ts";
export * from "./lpae.ts";
export * from "./constants.ts";
export {
  CommandQueue,
  type QueueRegisters,
  TLBI_VA_MAX_PAGES,
} from "./command_queue.ts";
export {
  eventKind,
  EventQueueReader,
  type GenericEvent,
  type GenericEventKind,
  readEventRecord,
  writeEventRecord,
} from "./event_queue.ts";
export {
  DEFAULT_WALK_CACHE,
  Walker,
  type WalkerInlinePath,
  type WalkerTableMemos,
} from "./walker.ts";
export {
  clearCd,
  oasBits,
  oasCode,
  writeCd,
  writeSte,
} from "./stream_table.ts";
export * from "./virtio/mod.ts";
