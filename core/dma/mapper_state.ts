/**
 * The state one {@linkcode DmaMapper} shares with the files that implement
 * its calls (internal; not exported from mod.ts): fixed configuration,
 * live mappings, counters, scratch arrays, the bounce pool and the lazy
 * invalidation queue.
 *
 * @module
 */
import {
  type Domain,
  hex,
  IommuError,
  IotlbGather,
  type Master,
  type Soc,
} from "../mod.ts";
import type { IovaAllocator } from "./iova_allocator.ts";
import type { CpuCache } from "./cpu_cache.ts";
import type { DmaDebug } from "./debug.ts";
import type { FlushQueue } from "./flush_queue.ts";
import { BouncePool } from "./bounce_pool.ts";
import { LiveTable } from "./live_table.ts";
import { SgScratch } from "./sg_scratch.ts";
import type { DmaMapperStats } from "./mapper_types.ts";

/**
 * The mapper's counters (spread into `stats()`): the fields of
 * {@linkcode DmaMapperStats} that only ever count up.
 */
export type MapperCounters = Omit<
  DmaMapperStats,
  "mode" | "policy" | "liveMappings" | "pendingUnmaps" | "iova"
>;

/** Fixed configuration of a mapper, decided by its constructor. */
export interface MapperConfig {
  /** The system. */
  soc: Soc;
  /** The master served. */
  master: Master;
  /** The system's CPU cache. */
  cpu: CpuCache;
  /** The IOVA space's domain, or null (direct). */
  domain: Domain | null;
  /** The IOVA allocator, or null (direct). */
  iova: IovaAllocator | null;
  /** The checker, or null. */
  debug: DmaDebug | null;
  /** Longest DMA segment, in bytes. */
  maxSegmentSize: number;
  /** Segment boundary in bytes (`NO_BOUNDARY` = none). */
  segmentBoundary: number;
  /** Exclusive upper bound of DMA addresses. */
  dmaLimit: number;
  /** Lazy mode's queue, or null. */
  queue: FlushQueue | null;
  /** Bounce pool bytes (direct mode). */
  poolSize: number;
}

/** Everything the mapper's pieces share. */
export class MapperState {
  /** The system. */
  readonly soc: Soc;
  /** The master served. */
  readonly master: Master;
  /** The system's CPU cache. */
  readonly cpu: CpuCache;
  /** The IOVA space's domain, or null (direct). */
  readonly domain: Domain | null;
  /** The IOVA allocator, or null (direct). */
  readonly iova: IovaAllocator | null;
  /** The checker, or null. */
  readonly debug: DmaDebug | null;
  /** Longest DMA segment, in bytes. */
  readonly maxSegmentSize: number;
  /** Segment boundary in bytes. */
  readonly segmentBoundary: number;
  /** Exclusive upper bound of DMA addresses. */
  readonly dmaLimit: number;
  /** Whether the master snoops CPU caches. */
  readonly coherent: boolean;
  /** Lazy mode's queue, or null. */
  readonly queue: FlushQueue | null;
  /** Invalidations and freed tables gathered by lazy unmaps. */
  readonly gather: IotlbGather = new IotlbGather();
  /** Counters. */
  readonly s: MapperCounters = {
    singleMaps: 0,
    sgMaps: 0,
    coherentAllocs: 0,
    unmaps: 0,
    syncs: 0,
    bounces: 0,
    bounceBytes: 0,
    flushes: 0,
    staleAccesses: 0,
    staleBytes: 0,
    staleFaults: 0,
  };
  /** Live mappings. */
  readonly live: LiveTable;
  /** Bounce slots (direct mode). */
  readonly bounce: BouncePool;
  /** Hot-path scratch arrays. */
  readonly scratch: SgScratch = new SgScratch();
  /** Debug ownership tracking is on (records carry PA ranges). */
  tracksOwnership = false;
  /** The mapper was removed. */
  disposed = false;

  /** @param c The configuration. */
  constructor(c: MapperConfig) {
    this.soc = c.soc;
    this.master = c.master;
    this.cpu = c.cpu;
    this.domain = c.domain;
    this.iova = c.iova;
    this.debug = c.debug;
    this.maxSegmentSize = c.maxSegmentSize;
    this.segmentBoundary = c.segmentBoundary;
    this.dmaLimit = c.dmaLimit;
    this.coherent = c.master.coherent;
    this.queue = c.queue;
    this.live = new LiveTable(c.debug, c.domain === null, c.iova);
    this.bounce = new BouncePool(
      c.soc.memory,
      c.cpu,
      c.poolSize,
      c.dmaLimit,
      this.s,
    );
  }

  /** @throws {IommuError} `EPERM` after removal. */
  alive(): void {
    if (this.disposed) {
      throw new IommuError(
        "EPERM",
        `the DMA mapper of ${this.master.name} was removed`,
      );
    }
  }

  /** @returns Where the current call was made ("" without debug). */
  stack(): string {
    return this.debug === null ? "" : this.debug.captureStack();
  }

  /**
   * @param pa Physical address.
   * @param size Bytes.
   * @param what What the range is, for the message.
   * @throws {IommuError} `ERANGE` when the range is not in RAM.
   */
  checkRam(pa: number, size: number, what: string): void {
    if (!this.soc.memory.contains(pa, size)) {
      throw new IommuError(
        "ERANGE",
        `${what} ${hex(pa)}+${hex(size)} is not in RAM`,
      );
    }
  }
}
