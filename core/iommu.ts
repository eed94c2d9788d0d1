/**
 * The capability interfaces every IOMMU plugin implements. A plugin probes a
 * device-tree node into an {@linkcode IommuUnit}: static {@linkcode IommuCaps},
 * a hardware model ({@linkcode IommuHardware}, walks tables on every DMA
 * access) and a driver ({@linkcode IommuDriver}, writes tables into memory).
 * The two sides meet only through {@linkcode PhysicalMemory} and registers.
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import type { PhysicalMemory } from "./memory.ts";
import type { IotlbGather } from "./gather.ts";
import type { MapPlan } from "./map_plan.ts";
import type { IommuFault } from "./fault.ts";

/** Protection bit: the device may read (DMA to the device). */
export const IOMMU_READ = 1;
/** Protection bit: the device may write (DMA from the device). */
export const IOMMU_WRITE = 2;
/** Protection bit: the mapping is cache-coherent (snooped). */
export const IOMMU_CACHE = 4;
/** Protection bit: instruction fetches are refused. */
export const IOMMU_NOEXEC = 8;
/** Protection bit: the target is MMIO (device memory), never cached. */
export const IOMMU_MMIO = 16;
/** Protection bit: only privileged transactions get the other permissions. */
export const IOMMU_PRIV = 32;
/** Every protection bit iommukit knows; any other bit is rejected (`EINVAL`). */
export const IOMMU_PROT_MASK = 63;

/**
 * Check a mapping's protection: an integer of known `IOMMU_*` bits
 * ({@linkcode IOMMU_PROT_MASK}) that grants {@linkcode IOMMU_READ} or
 * {@linkcode IOMMU_WRITE} (a mapping granting neither would map nothing a
 * device could use). Domains and page-table implementations call it before
 * any change.
 *
 * @example
 * ```ts
 * import { checkProt, IOMMU_READ } from "./mod.ts";
 * checkProt(IOMMU_READ); // fine; checkProt(0) throws EINVAL
 * ```
 *
 * @param prot The protection bits.
 * @throws {IommuError} `EINVAL` for anything else (a fraction, a negative,
 * an unknown bit, or neither READ nor WRITE).
 */
export function checkProt(prot: number): void {
  if (
    // `> MASK` first: `&` alone would truncate 2^32 + 1 to a valid READ.
    !Number.isInteger(prot) || prot < 0 || prot > IOMMU_PROT_MASK ||
    (prot & (IOMMU_READ | IOMMU_WRITE)) === 0
  ) {
    throw new IommuError(
      "EINVAL",
      `protection ${
        String(prot)
      } must be a combination of known IOMMU_* bits including READ or WRITE`,
    );
  }
}

/** Access code of a DMA read (equal to {@linkcode IOMMU_READ}, so `prot & access` tests it). */
export const ACCESS_READ = 1;
/** Access code of a DMA write (equal to {@linkcode IOMMU_WRITE}). */
export const ACCESS_WRITE = 2;

/**
 * Throw the error a hardware model's `translate` gives for an access code
 * other than {@linkcode ACCESS_READ} or {@linkcode ACCESS_WRITE}, before it
 * counts or records anything. A function of its own so that a hot path
 * keeps only its test of the code.
 *
 * @param access The access code given.
 * @throws {IommuError} `EINVAL`, always, naming the value.
 */
export function throwBadAccess(access: unknown): never {
  throw new IommuError(
    "EINVAL",
    `translate: access ${
      String(access)
    } is not ACCESS_READ (1) or ACCESS_WRITE (2)`,
  );
}

/**
 * How a unit is wired: per device (one master, on one or more of its
 * ports) or central (many masters, told apart by stream ID).
 */
export type IommuTopology = "per-device" | "central";

/**
 * Optional behaviours a unit declares as data (never discovered by trying):
 * - `range-invalidation`: the TLB can be invalidated by address range in one operation.
 * - `write-only`: write-without-read mappings are enforced.
 * - `no-exec`: {@linkcode IOMMU_NOEXEC} is enforced.
 * - `bypass`: streams may be configured to pass through untranslated.
 * - `cache-coherency`: {@linkcode IOMMU_CACHE} is honoured.
 * - `deferred-flush`: unmap does not invalidate by itself, so lazy flushing pays off.
 * - `event-queue`: faults are also written as records into an in-memory queue.
 * - `power-management`: the unit is powered with its master (see {@linkcode IommuHardware.setPower}).
 */
export type IommuFeature =
  | "range-invalidation"
  | "write-only"
  | "no-exec"
  | "bypass"
  | "cache-coherency"
  | "deferred-flush"
  | "event-queue"
  | "power-management";

/** Extra rules an IOVA allocator must follow for this unit (for example Exynos v3.x). */
export interface IovaConstraints {
  /** Minimum alignment of every IOVA allocation, in bytes (a power of two). */
  alignment?: number;
  /** Bytes left unallocated after every allocation (guard gap). */
  guardGap?: number;
}

/** Static capabilities of a unit: plain, serialisable data. */
export interface IommuCaps {
  /**
   * Per-device (one master, possibly on several of its ports,
   * `#iommu-cells = <0>`) or central (stream IDs, `<1>`).
   */
  readonly topology: IommuTopology;
  /** Supported page sizes in bytes, ascending (for example `[4096, 65536, 1048576]`). */
  readonly pageSizes: readonly number[];
  /** Width of an IOVA in bits: the aperture is `[0, 2^inputBits)`. */
  readonly inputBits: number;
  /** Width of a physical address the tables can hold, in bits. */
  readonly outputBits: number;
  /** Number of stream IDs a central unit accepts (`[0, streamIds)`); 0 for per-device. */
  readonly streamIds: number;
  /** Behaviours this unit implements. */
  readonly features: readonly IommuFeature[];
  /** IOVA allocation rules the DMA layer must honour, if any. */
  readonly iovaConstraints?: IovaConstraints;
}

/** One leaf mapping decoded from a page table (for dumps and model checks). */
export interface MappingRecord {
  /** First IOVA of the leaf, in bytes. */
  iova: number;
  /** First physical address, in bytes. */
  pa: number;
  /** Leaf size in bytes (a page size of the unit). */
  pageSize: number;
  /** Protection bits the hardware will enforce ({@linkcode IOMMU_READ} …). */
  prot: number;
}

/** Occupancy of one page-table level (for pictures and memory checks). */
export interface PageTableLevelStats {
  /** Level number, 1 = the root level. */
  level: number;
  /** Tables allocated at this level. */
  tables: number;
  /** Bytes those tables take in RAM. */
  bytes: number;
  /** Entries in use (not invalid) across those tables. */
  entriesUsed: number;
  /** Entries in all those tables. */
  entriesTotal: number;
}

/**
 * The per-domain half of a driver (Linux `iommu_domain_ops`): one I/O
 * address space whose page table lives in {@linkcode PhysicalMemory}.
 * The core's {@linkcode Domain} validates arguments, splits requests into
 * page sizes and calls these; implementations may assume arguments are valid,
 * aligned and inside the aperture.
 */
export interface IommuDomainOps {
  /** Context number the hardware tags TLB entries with; unique per driver. */
  readonly contextId: number;
  /** Physical address of the root table, in bytes. */
  readonly rootTable: number;
  /**
   * Map every run of `plan` atomically: either all runs are mapped, or the
   * call throws and the page tables (bytes in RAM), the allocator and every
   * counter are exactly as before. Runs never overlap each other.
   * Mapping never needs a TLB invalidation (a miss refetches).
   * @throws {IommuError} `EEXIST` when any page of any run is already mapped;
   * `ENOMEM` when a page-table allocation fails.
   */
  map(plan: MapPlan, prot: number): void;
  /**
   * Remove the leaves in `[iova, iova + pageSize * count)`. Holes are skipped.
   * The core guarantees that no leaf crosses either end of the range.
   * Added ranges go to `gather`; the caller syncs it.
   * @returns Bytes actually unmapped (holes excluded).
   */
  unmapPages(
    iova: number,
    pageSize: number,
    count: number,
    gather: IotlbGather,
  ): number;
  /** Size in bytes of the leaf mapping `iova`, or 0 when `iova` is unmapped. */
  leafSize(iova: number): number;
  /** Physical address `iova` maps to, or -1 when unmapped (read from RAM). */
  iovaToPhys(iova: number): number;
  /** Invalidate the gathered range on every unit this domain is attached to. */
  iotlbSync(gather: IotlbGather): void;
  /** Invalidate every TLB entry of this domain on every attached unit. */
  flushAll(): void;
  /**
   * Make `unit` translate through this domain: for a per-device unit,
   * `streamIds` is empty; for a central unit, each listed stream.
   * If the unit/stream is attached to another domain of the same driver, it
   * is moved atomically (its DMA sees the old or the new table, never
   * neither) and the driver updates the old domain's own state; the core
   * updates its bookkeeping after this returns. Re-attaching to the same
   * domain is a no-op.
   * @throws {IommuError} `EINVAL` for a unit of another plugin or driver
   * instance; `ENOSPC` when contexts run out. On a throw nothing changed.
   */
  attach(unit: IommuUnit, streamIds: readonly number[]): void;
  /**
   * Stop translating `unit` (or those streams) through this domain; their
   * DMA is then blocked (central) or the unit disabled (per-device).
   * @throws {IommuError} `ENOENT` when not attached.
   */
  detach(unit: IommuUnit, streamIds: readonly number[]): void;
  /** Every leaf, decoded from the page-table bytes in RAM, in IOVA order. */
  leaves(): MappingRecord[];
  /** Occupancy per level. */
  tableStats(): PageTableLevelStats[];
  /**
   * Free the page tables. @throws {IommuError} `EBUSY` while attached.
   */
  free(): void;
}

/** The per-unit half of a driver (Linux `iommu_ops`). */
export interface IommuDriver {
  /**
   * Create an empty paging domain for this unit's plugin.
   * @throws {IommuError} `ENOMEM` when its root table cannot be allocated.
   */
  allocDomain(): IommuDomainOps;
}

/**
 * The hardware side of a unit: it translates each DMA access by walking the
 * tables in RAM (through its TLB) and raises faults. Everything observable
 * goes through RAM, registers and fault reports.
 */
export interface IommuHardware {
  /**
   * Translate one access. Hot path: no allocation on success.
   * @param streamId The requester's stream ID (ignored by per-device units, pass 0).
   * @param iova The address the device put on the bus.
   * @param access {@linkcode ACCESS_READ} or {@linkcode ACCESS_WRITE}.
   * @returns The physical address, or -1 when the access faulted; the fault
   * has then been reported (see {@linkcode ProbeContext.reportFault}) and is
   * readable as {@linkcode IommuHardware.lastFault}.
   */
  translate(streamId: number, iova: number, access: number): number;
  /** Bytes from the last successful translation's PA to the end of its page. */
  readonly lastSpan: number;
  /** The most recent fault this unit raised, or null. */
  readonly lastFault: IommuFault | null;
  /** True when `streamId` (0 for per-device) reaches memory untranslated. */
  isBypassing(streamId: number): boolean;
  /**
   * Model the master's power: off disables translation state; on reprograms
   * and flushes. Units without power management ignore it.
   */
  setPower(on: boolean): void;
  /** Read a memory-mapped register (offset in bytes from the unit's base). */
  readRegister(offset: number): number;
  /** Write a memory-mapped register. */
  writeRegister(offset: number, value: number): void;
  /** Counters (lookups, hits, misses, walks, invalidations, faults, …). */
  counters(): Record<string, number>;
}

/** One IOMMU instance, as probed from one device-tree node. */
export interface IommuUnit {
  /** Unique name (the node's label or path). */
  readonly name: string;
  /** Name of the plugin that probed it. */
  readonly plugin: string;
  /** Static capabilities. */
  readonly caps: IommuCaps;
  /** The hardware model. */
  readonly hardware: IommuHardware;
  /** The OS-side driver. */
  readonly driver: IommuDriver;
}

/** The properties of a device-tree node a plugin reads when probing. */
export interface DeviceNode {
  /** Full path, for example `/soc/sysmmu@13620000`. */
  readonly path: string;
  /** Label or short name used to name the unit. */
  readonly name: string;
  /** The `compatible` list, most specific first. */
  readonly compatible: readonly string[];
  /** Decoded `reg` entries (bytes). */
  readonly reg: readonly { address: number; size: number }[];
  /** A 32-bit cell property's first value, or undefined when absent. */
  u32(property: string): number | undefined;
  /** Whether a property is present (boolean properties). */
  has(property: string): boolean;
  /** A string property, or undefined. */
  string(property: string): string | undefined;
}

/** What the core hands a plugin's probe. */
export interface ProbeContext {
  /** The RAM the unit walks and the driver writes. */
  readonly memory: PhysicalMemory;
  /**
   * Report a fault to the core, which routes it to the handler of the domain
   * attached to that unit/stream.
   * @returns True when a handler took it; false when nobody handled it (the
   * unit should then stay blocked/record it, as its hardware would).
   */
  reportFault(fault: IommuFault): boolean;
}

/**
 * A plugin: named, matched by device-tree `compatible` strings, probing one
 * node into one unit.
 */
export interface IommuPlugin {
  /** Short unique name, for example `samsung-sysmmu`. */
  readonly name: string;
  /** `compatible` strings this plugin binds. */
  readonly compatible: readonly string[];
  /** Value of `#iommu-cells` its nodes carry (0 per-device, 1 stream ID). */
  readonly iommuCells: number;
  /**
   * Create a unit for `node`; the unit's name must be `node.name` (the core
   * routes faults and looks units up by that name).
   * @throws {IommuError} `EINVAL` for a node it cannot model.
   */
  probe(node: DeviceNode, ctx: ProbeContext): IommuUnit;
}
