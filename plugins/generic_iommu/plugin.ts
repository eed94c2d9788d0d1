/**
 * The plugin factory: probes a device-tree node into a generic central IOMMU
 * unit (hardware model + driver sharing one RAM).
 *
 * Node properties read:
 * - `iommukit,stream-ids` (u32): number of stream IDs, a power of two from 1
 *   to 65536; default {@linkcode GenericIommuOptions.streamIds} (256).
 * - `iommukit,input-bits` (u32): IOVA width, 32 to 48; default
 *   {@linkcode GenericIommuOptions.inputBits} (48).
 *
 * @module
 */
import {
  type DeviceNode,
  hex,
  type IommuCaps,
  IommuError,
  type IommuFeature,
  type IommuPlugin,
  type IommuUnit,
  type ProbeContext,
} from "../../core/mod.ts";
import type { TlbOptions } from "../../core/mod.ts";
import { GenericIommuDriver } from "./driver.ts";
import { GenericIommuHardware } from "./hardware.ts";
import { DEFAULT_IOTLB } from "./hardware_types.ts";
import { LPAE_PAGE_SIZES, type LpaeStage } from "./lpae.ts";
import { DEFAULT_WALK_CACHE } from "./walker.ts";
import { microTlbEntries } from "./micro_tlb.ts";

/** The plugin's name. */
export const GENERIC_IOMMU_NAME = "generic-iommu";

/**
 * Compatible strings bound: the iommukit one, and the device-tree binding of
 * a virtio-iommu (`virtio,pci-iommu`, a virtio-iommu on PCI described in the
 * DT with `#iommu-cells = <1>`; a virtio-mmio transport uses the generic
 * `virtio,mmio` string, which names no device type, so it is not bound).
 */
export const GENERIC_IOMMU_COMPATIBLE: readonly string[] = [
  "iommukit,generic-iommu",
  "virtio,pci-iommu",
];

/** Options of {@linkcode genericIommu}; node properties override the first two. */
export interface GenericIommuOptions {
  /** Stream IDs per unit, a power of two from 1 to 65536 (default 256). */
  streamIds?: number;
  /** IOVA width in bits, 32 to 48 (default 48). */
  inputBits?: number;
  /** Output address width in bits, 32 to 48 (default 48). */
  outputBits?: number;
  /**
   * Descriptor format: 1 (stage-1 AP bits through a context descriptor; reads
   * always allowed, so write-only mappings read too) or 2 (stage-2 HAP
   * read/write bits, VMID and table in the STE; write-only enforced). Default 1.
   */
  stage?: LpaeStage;
  /** IOTLB shape (core `Tlb` options); default gem5's main TLB, 512 sets × 4 ways, round-robin. */
  iotlb?: TlbOptions;
  /** Walk-cache shapes for levels 0, 1, 2; default 1×4, 8×4, 64×4, round-robin. */
  walkCache?: readonly TlbOptions[];
  /**
   * The per-stream micro TLB in front of the IOTLB: `true` (default) for 32
   * entries per stream (gem5's micro TLB size), `false` or 0 for none, or a
   * power of two from 1 to 4096 entries. Deviation from gem5, for the speed
   * of the model: gem5's micro TLB is fully associative with round-robin
   * replacement; this one is direct-mapped, entry `(iova >>> 12) & (entries
   * - 1)` (the low bits of the 4 KiB page number), so a hit is one compare
   * instead of a 32-way scan. A leaf larger than 4 KiB fills every entry
   * one of its 4 KiB pages indexes (all 32 by default, for a 2 MiB or 1 GiB
   * leaf), so any access inside it hits after one miss. Every invalidation command and
   * config change drops every entry. Its figures are the `microTlb.*`
   * counters; IOTLB lookups count its misses only.
   */
  microTlb?: boolean | number;
  /** Contexts per unit including the unused context 0, 2 to 65536 (default 1024). */
  contexts?: number;
  /** log2 of command-queue entries, 1 to 15 (default 8: 256 commands). */
  commandQueueLog2?: number;
  /** log2 of event-queue entries, 1 to 15 (default 7: 128 records). */
  eventQueueLog2?: number;
}

function intIn(v: number, lo: number, hi: number, what: string): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new IommuError(
      "EINVAL",
      `${what} must be an integer from ${lo} to ${hi}, got ${String(v)}`,
    );
  }
  return v;
}

/**
 * Create the generic central IOMMU plugin (`#iommu-cells = <1>`: masters are
 * named by stream IDs).
 *
 * @param options Defaults for every unit it probes.
 * @returns The plugin.
 * @throws {IommuError} `EINVAL` for malformed options (checked here, before any probe).
 *
 * @example
 * ```ts
 * import { createSoc } from "../../core/mod.ts";
 * import { genericIommu } from "./plugin.ts";
 * const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
 * const unit = soc.probeUnit({ name: "smmu", compatible: ["iommukit,generic-iommu"] });
 * if (unit.caps.streamIds !== 256) throw new Error();
 * ```
 */
export function genericIommu(options: GenericIommuOptions = {}): IommuPlugin {
  const stage = options.stage ?? 1;
  if (stage !== 1 && stage !== 2) {
    throw new IommuError(
      "EINVAL",
      `stage must be 1 or 2, got ${String(stage)}`,
    );
  }
  const outputBits = intIn(options.outputBits ?? 48, 32, 48, "outputBits");
  const contexts = intIn(options.contexts ?? 1024, 2, 65536, "contexts");
  const cmdqLog2 = intIn(
    options.commandQueueLog2 ?? 8,
    1,
    15,
    "commandQueueLog2",
  );
  const evtqLog2 = intIn(options.eventQueueLog2 ?? 7, 1, 15, "eventQueueLog2");
  const defaultSids = options.streamIds ?? 256;
  const defaultBits = options.inputBits ?? 48;
  const iotlb = options.iotlb ?? DEFAULT_IOTLB;
  const microTlb = microTlbEntries(options.microTlb ?? true);
  const walkCache = options.walkCache ?? DEFAULT_WALK_CACHE;
  return {
    name: GENERIC_IOMMU_NAME,
    compatible: GENERIC_IOMMU_COMPATIBLE,
    iommuCells: 1,
    probe(node: DeviceNode, ctx: ProbeContext): IommuUnit {
      const streamIds = intIn(
        node.u32("iommukit,stream-ids") ?? defaultSids,
        1,
        65536,
        `${node.path}: iommukit,stream-ids`,
      );
      if ((streamIds & (streamIds - 1)) !== 0) {
        throw new IommuError(
          "EINVAL",
          `${node.path}: iommukit,stream-ids ${
            hex(streamIds)
          } is not a power of two`,
        );
      }
      const inputBits = intIn(
        node.u32("iommukit,input-bits") ?? defaultBits,
        32,
        48,
        `${node.path}: iommukit,input-bits`,
      );
      const hardware = new GenericIommuHardware(ctx.memory, ctx, {
        name: node.name,
        streamIds,
        inputBits,
        outputBits,
        stage,
        iotlb,
        walkCache,
        microTlb,
        cmdqLog2,
        evtqLog2,
      });
      const driver = new GenericIommuDriver(ctx.memory, hardware, {
        streamIds,
        inputBits,
        outputBits,
        stage,
        contexts,
        cmdqLog2,
        evtqLog2,
      });
      const features: IommuFeature[] = [
        "range-invalidation",
        "bypass",
        "deferred-flush",
        "event-queue",
      ];
      if (stage === 2) features.push("write-only");
      const caps: IommuCaps = {
        topology: "central",
        pageSizes: LPAE_PAGE_SIZES,
        inputBits,
        outputBits,
        streamIds,
        features,
      };
      const unit: IommuUnit = {
        name: node.name,
        plugin: GENERIC_IOMMU_NAME,
        caps,
        hardware,
        driver,
      };
      driver.bindUnit(unit);
      return unit;
    },
  };
}

/**
 * The hardware model of a generic-iommu unit.
 *
 * @param unit A probed unit.
 * @returns Its {@linkcode GenericIommuHardware}.
 * @throws {IommuError} `EINVAL` for a unit of another plugin.
 */
export function genericHardwareOf(unit: IommuUnit): GenericIommuHardware {
  if (!(unit.hardware instanceof GenericIommuHardware)) {
    throw new IommuError(
      "EINVAL",
      `unit ${unit.name} is not a generic-iommu unit (plugin ${unit.plugin})`,
    );
  }
  return unit.hardware;
}

/**
 * The driver of a generic-iommu unit.
 *
 * @param unit A probed unit.
 * @returns Its {@linkcode GenericIommuDriver}.
 * @throws {IommuError} `EINVAL` for a unit of another plugin.
 */
export function genericDriverOf(unit: IommuUnit): GenericIommuDriver {
  if (!(unit.driver instanceof GenericIommuDriver)) {
    throw new IommuError(
      "EINVAL",
      `unit ${unit.name} is not a generic-iommu unit (plugin ${unit.plugin})`,
    );
  }
  return unit.driver;
}

/**
 * Make a stream of a generic-iommu unit bypass (identity, no checks) while
 * no domain is attached to it, or abort again (`bypass = false`). Platforms
 * call it for masters with the `iommukit,bypass` property.
 *
 * @param unit A generic-iommu unit.
 * @param streamId The stream.
 * @param bypass True (default) for bypass, false for abort.
 * @throws {IommuError} `EINVAL` for another plugin's unit or a malformed ID;
 * `ERANGE` for an ID beyond the unit's streams.
 */
export function setStreamBypass(
  unit: IommuUnit,
  streamId: number,
  bypass = true,
): void {
  genericDriverOf(unit).setStreamBypass(streamId, bypass);
}

/**
 * Put streams of a generic-iommu unit into bypass; the shape of the platform
 * builder's `configureBypass` hook (`iommukit,bypass` masters).
 *
 * @param unit A generic-iommu unit.
 * @param streamIds The master port's streams.
 * @throws {IommuError} as {@linkcode setStreamBypass}; all IDs are checked
 * before any stream changes.
 */
export function bypassStreams(
  unit: IommuUnit,
  streamIds: readonly number[],
): void {
  const driver = genericDriverOf(unit);
  for (const sid of streamIds) driver.streamMode(sid);
  for (const sid of streamIds) driver.setStreamBypass(sid, true);
}
