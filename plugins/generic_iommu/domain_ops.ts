/**
 * One paging domain of the generic central IOMMU (the core's
 * `IommuDomainOps`): an LPAE table, a context (ASID, or VMID for stage 2)
 * with its context descriptor, and the set of streams translating through it.
 *
 * @module
 */
import type {
  IommuDomainOps,
  IommuUnit,
  IotlbGather,
  MappingRecord,
  MapPlan,
  PageTableLevelStats,
} from "../../core/mod.ts";
import { checkGather, IommuError } from "../../core/mod.ts";
import type { LpaePageTable } from "./page_table.ts";

/** What a domain needs from its driver (implemented by `GenericIommuDriver`). */
export interface DomainHost {
  /** Point `streamIds` of `unit` at `domain` (moving them from other domains). */
  attachStreams(
    domain: GenericDomainOps,
    unit: IommuUnit,
    streamIds: readonly number[],
  ): void;
  /** Return `streamIds` to abort (or bypass when so configured). */
  detachStreams(
    domain: GenericDomainOps,
    unit: IommuUnit,
    streamIds: readonly number[],
  ): void;
  /** Queue a range invalidation of `[start, end]` in `context` and sync. */
  invalidateRange(context: number, start: number, end: number): void;
  /** Queue an invalidation of all of `context` and sync. */
  invalidateContext(context: number): void;
  /** Give the context (and its descriptor) back. */
  releaseContext(context: number): void;
}

/**
 * Domain operations of the generic central IOMMU. Create through the core
 * (`soc.createDomain(unit)`), which calls `driver.allocDomain()`.
 */
export class GenericDomainOps implements IommuDomainOps {
  /** Context tag (ASID, or VMID for stage 2); also the CD index. */
  readonly contextId: number;
  /** Root table address. */
  readonly rootTable: number;
  /** Address of the context descriptor (0 for stage 2, which has none). */
  readonly contextDescriptor: number;
  /** The page table. */
  readonly table: LpaePageTable;
  /** Streams translating through this domain now. */
  readonly streams: Set<number> = new Set();
  #host: DomainHost;
  #freed = false;

  /**
   * Build it (see the class documentation).
   *
   * @param host The driver.
   * @param contextId Context tag.
   * @param contextDescriptor CD address (0 for stage 2).
   * @param table The page table (already allocated).
   */
  constructor(
    host: DomainHost,
    contextId: number,
    contextDescriptor: number,
    table: LpaePageTable,
  ) {
    this.#host = host;
    this.contextId = contextId;
    this.contextDescriptor = contextDescriptor;
    this.table = table;
    this.rootTable = table.root;
  }

  /**
   * Map every run of `plan` atomically (see `LpaePageTable.map`). A block
   * mapped where an empty table stood unlinks that table: its range is
   * invalidated (walk caches may hold the table) before its frame is freed.
   *
   * When that invalidation does not complete (a stalled command queue) the
   * map still stands and the unlinked tables stay allocated, never reused
   * while a walk cache may hold them, until a later map, `flushAll` or
   * `free` invalidates them.
   *
   * @throws {IommuError} `EEXIST`, `ENOMEM`; nothing changes on a throw.
   */
  map(plan: MapPlan, prot: number): void {
    const table = this.table;
    table.map(plan, prot);
    if (table.releasedTables > 0) this.#releaseTables();
  }

  // Invalidate the range of the tables a map unlinked, then free them.
  #releaseTables(): void {
    const table = this.table;
    try {
      this.#host.invalidateRange(
        this.contextId,
        table.releasedStart,
        table.releasedEnd,
      );
    } catch {
      return; // kept allocated: retried by the next map, flushAll or free
    }
    table.freeReleased();
  }

  /**
   * Remove the leaves in the range; tables whose whole span the range
   * covers go to `gather.deferFree`, tables that merely lose their leaves stay.
   *
   * @returns Bytes unmapped.
   * @throws {IommuError} `EINVAL` when a leaf crosses an end of the range,
   * an argument is malformed or `gather` is not an `IotlbGather` (nothing
   * removed).
   */
  unmapPages(
    iova: number,
    pageSize: number,
    count: number,
    gather: IotlbGather,
  ): number {
    checkGather(gather);
    const tables = gather.freeList.length;
    const bytes = this.table.unmap(iova, pageSize, count, gather);
    if (gather.freeList.length > tables) {
      // A table was unlinked: the walk caches may still point at it, and a
      // later map in this range would then be walked through the stale
      // pointer and fault. Invalidate now, even in lazy mode (the table
      // frame itself is still freed only after the gather's sync).
      this.#host.invalidateRange(
        this.contextId,
        iova,
        iova + pageSize * count - 1,
      );
    }
    return bytes;
  }

  /**
   * Size of the leaf mapping `iova`, 0 when unmapped.
   *
   * @throws {IommuError} `EINVAL` for a malformed `iova`.
   */
  leafSize(iova: number): number {
    return this.table.leafSize(iova);
  }

  /**
   * Physical address of `iova` from the tables in RAM, -1 when unmapped.
   *
   * @throws {IommuError} `EINVAL` for a malformed `iova`.
   */
  iovaToPhys(iova: number): number {
    return this.table.iovaToPhys(iova);
  }

  /**
   * One TLBI_NH_VA batch for the gathered range (TLB and walk caches) and
   * one CMD_SYNC.
   *
   * @throws {IommuError} `EINVAL` when `gather` is not an `IotlbGather`;
   * `EIO` when the command queue does not complete.
   */
  iotlbSync(gather: IotlbGather): void {
    checkGather(gather);
    if (gather.end >= 0) {
      this.#host.invalidateRange(this.contextId, gather.start, gather.end);
    } else this.#host.invalidateContext(this.contextId);
  }

  /**
   * TLBI_NH_ASID for this context and CMD_SYNC.
   *
   * @throws {IommuError} `EIO` when the command queue does not complete.
   */
  flushAll(): void {
    this.#host.invalidateContext(this.contextId);
    if (this.table.releasedTables > 0) this.table.freeReleased();
  }

  /**
   * Translate `streamIds` through this domain (one STE store each, then
   * CFGI_STE and one CMD_SYNC).
   *
   * @throws {IommuError} `EINVAL` for a unit of another driver.
   */
  attach(unit: IommuUnit, streamIds: readonly number[]): void {
    this.#alive();
    this.#host.attachStreams(this, unit, streamIds);
  }

  /**
   * Stop translating `streamIds` here.
   *
   * @throws {IommuError} `ENOENT` when one is not attached here (nothing changes).
   */
  detach(unit: IommuUnit, streamIds: readonly number[]): void {
    this.#host.detachStreams(this, unit, streamIds);
  }

  /** Every leaf, decoded from RAM. */
  leaves(): MappingRecord[] {
    return this.table.leaves();
  }

  /** Occupancy per level. */
  tableStats(): PageTableLevelStats[] {
    return this.table.tableStats();
  }

  /**
   * Invalidate the context, free every table and give the context back.
   *
   * @throws {IommuError} `EBUSY` while a stream is attached; `EPERM` when
   * freed already; `EIO` when the invalidation does not complete (nothing freed).
   */
  free(): void {
    this.#alive();
    if (this.streams.size > 0) {
      throw new IommuError(
        "EBUSY",
        `context ${this.contextId} still translates streams ${
          [...this.streams].join(",")
        }`,
      );
    }
    this.#host.invalidateContext(this.contextId);
    this.table.free();
    this.#host.releaseContext(this.contextId);
    this.#freed = true;
  }

  /** True once freed. */
  get freed(): boolean {
    return this.#freed;
  }

  #alive(): void {
    if (this.#freed) {
      throw new IommuError("EPERM", `context ${this.contextId} has been freed`);
    }
  }
}
