/**
 * The DMA mapper of one master: the kernel's DMA API (streaming single and
 * scatter-gather mappings, coherent allocations, syncs) over any IOMMU
 * plugin's domain, or over no IOMMU at all (direct mapping with bounce
 * buffers below the DMA mask). This file is the class shell and its
 * lifecycle (options, domain and IOVA space, removal, reporting); each call
 * is implemented in its own file.
 *
 * @module
 */
import {
  checkList,
  checkObject,
  type Domain,
  IommuError,
  type Master,
  type Port,
  type SgSegment,
  type Soc,
} from "../mod.ts";
import type { IovaAllocator } from "./iova_allocator.ts";
import { type CpuCache, cpuCacheOf } from "./cpu_cache.ts";
import type { DmaBuffer } from "./dma_buffer.ts";
import {
  DMA_BIDIRECTIONAL,
  DMA_MAPPING_ERROR,
  type DmaDirection,
} from "./direction.ts";
import {
  DmaDebug,
  type DmaDebugReport,
  type DmaMappingRecord,
  MAP_ERR_CHECKED,
  MAP_ERR_NOT_CHECKED,
} from "./debug.ts";
import { FlushQueue } from "./flush_queue.ts";
import type {
  DmaAttrs,
  DmaCoherent,
  DmaInvalidationPolicy,
  DmaMapperOptions,
  DmaMapperStats,
} from "./mapper_types.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import { MapperState } from "./mapper_state.ts";
import {
  type MasterUnit,
  masterUnits,
  openIovaSpace,
  parseMapperOptions,
} from "./mapper_setup.ts";
import { mapSingle } from "./map_single.ts";
import { mapSg } from "./map_sg.ts";
import { allocCoherent } from "./coherent.ts";
import { teardown, unmapCommon } from "./unmap.ts";
import { syncCommon } from "./dma_sync.ts";
import { flushQueued, staleWindowObserver } from "./invalidation.ts";

const mappers = new WeakMap<Master, DmaMapper>();

/**
 * The DMA API of one master. Create it with {@linkcode createDmaMapper}.
 *
 * Over an IOMMU, one domain is attached to every unit in front of the
 * master's ports (one IOVA space; every map visible through every port,
 * every invalidation sent to every unit). Without an IOMMU, DMA addresses
 * are physical and buffers above the DMA mask bounce through a pool below it.
 *
 * @example Streaming DMA over no IOMMU
 * ```ts
 * import { createSoc } from "../mod.ts";
 * import { createDmaMapper, DMA_TO_DEVICE } from "./mod.ts";
 * const soc = createSoc({ memory: { size: 16 << 20 } });
 * const dev = soc.addMaster({ name: "uart", ports: [{}] });
 * const dma = createDmaMapper(soc, dev);
 * const buf = dma.cpu.allocBuffer(4096);
 * dma.cpu.writeBuffer(buf, new Uint8Array([1, 2, 3]));
 * const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
 * if (dma.mappingError(addr)) throw new Error("map failed");
 * const seen = dev.port().readBytes(addr, 3); // the device reads RAM
 * if (seen[2] !== 3) throw new Error("the map did not clean the cache");
 * dma.unmapSingle(addr, 4096, DMA_TO_DEVICE);
 * dma.removeMaster();
 * ```
 */
export class DmaMapper {
  /** The system. */
  readonly soc: Soc;
  /** The master this mapper serves. */
  readonly master: Master;
  /** The system's CPU cache (CPU reads and writes of buffers go through it). */
  readonly cpu: CpuCache;
  /** The IOVA space's domain, or null for a direct (no IOMMU) master. */
  readonly domain: Domain | null;
  /** The IOVA allocator, or null for a direct master. */
  readonly iova: IovaAllocator | null;
  /** Invalidation policy (always strict for direct masters). */
  readonly policy: DmaInvalidationPolicy;
  /** The checker, or null when debugging is off. */
  readonly debug: DmaDebug | null;
  /** Longest DMA segment, in bytes. */
  readonly maxSegmentSize: number;
  /** Segment boundary in bytes (2^53 = none). */
  readonly segmentBoundary: number;
  /** Exclusive upper bound of DMA addresses the master can drive. */
  readonly dmaLimit: number;
  #st: MapperState;
  #units: MasterUnit[];
  #ports: Port[];

  /**
   * Use {@linkcode createDmaMapper}.
   *
   * @param soc The system.
   * @param master The master.
   * @param options Policy, limits, debug.
   * @throws {IommuError} as {@linkcode createDmaMapper}.
   */
  constructor(soc: Soc, master: Master, options: DmaMapperOptions = {}) {
    if (mappers.has(master)) {
      throw new IommuError(
        "EBUSY",
        `master ${master.name} already has a DMA mapper`,
      );
    }
    const { maxSeg, boundary, poolSize, policy } = parseMapperOptions(
      options,
    );
    const units = masterUnits(master);
    this.#units = units;
    const debugOpt = options.debug ?? true;
    const debug = debugOpt === false
      ? null
      : new DmaDebug(master.name, soc, debugOpt === true ? {} : debugOpt);
    const queue = policy === "lazy" && units.length > 0
      ? new FlushQueue(options.flushQueueSize, options.flushTimeoutMs)
      : null;
    const { domain, iova, limit } = openIovaSpace(soc, master, units);
    const st = new MapperState({
      soc,
      master,
      cpu: cpuCacheOf(soc),
      domain,
      iova,
      debug,
      maxSegmentSize: maxSeg,
      segmentBoundary: boundary,
      dmaLimit: limit,
      queue,
      poolSize,
    });
    this.soc = soc;
    this.master = master;
    this.cpu = st.cpu;
    this.domain = domain;
    this.iova = iova;
    this.policy = domain === null ? "strict" : policy;
    this.debug = debug;
    this.maxSegmentSize = maxSeg;
    this.segmentBoundary = boundary;
    this.dmaLimit = limit;
    this.#st = st;
    const watch = options.staleWindow ?? policy === "lazy";
    this.#ports = domain === null || !watch ? [] : [...master.ports];
    const observe = staleWindowObserver(st);
    const observed: Port[] = [];
    try {
      for (const p of this.#ports) {
        p.observe(observe);
        observed.push(p);
      }
    } catch (e) {
      for (const p of observed) p.observe(null);
      if (domain !== null) {
        for (const u of this.#units) domain.detach(u.unit, u.streamIds);
        domain.free();
      }
      throw e;
    }
    mappers.set(master, this);
    if (debug !== null && debug.ownership && !master.coherent) {
      st.tracksOwnership = true;
      this.cpu.addAccessObserver(this.#checkCpu);
    }
  }

  // Debug ownership check of every CPU access.
  #checkCpu = (pa: number, size: number, write: boolean): void => {
    const st = this.#st;
    if (st.bounce.internal || st.disposed) return;
    const owned = st.live.owned();
    if (owned.length === 0) return;
    const debug = st.debug!;
    debug.emit(debug.checkCpuAccess(pa, size, write, owned));
  };

  /** Whether the master snoops CPU caches (its mappings need no cache maintenance). */
  get coherent(): boolean {
    return this.#st.coherent;
  }

  /** True after {@linkcode DmaMapper.removeMaster}. */
  get removed(): boolean {
    return this.#st.disposed;
  }

  /** Simulated milliseconds (advanced by {@linkcode DmaMapper.advanceTime}). */
  get now(): number {
    return this.#st.queue?.now ?? 0;
  }

  /**
   * A port of the master (convenience for driving device DMA in tests).
   *
   * @param which Name or index; default the first.
   * @returns The port.
   * @throws {IommuError} `ENOENT` when there is none.
   */
  port(which: string | number = 0): Port {
    return this.master.port(which);
  }

  // ------------------------------------------------------------- single

  /**
   * Map a CPU buffer (or whole 4 KiB frames) for one streaming transfer.
   * Over an IOMMU the buffer's frames get one contiguous IOVA range and the
   * DMA address keeps the buffer's offset within its first page; without
   * one the DMA address is physical (bounced below the DMA mask when needed).
   * Non-coherent masters get the cache maintenance of the direction.
   *
   * @param buffer The buffer, or page frame addresses (whole pages).
   * @param direction {@linkcode DMA_TO_DEVICE}, {@linkcode DMA_FROM_DEVICE} or
   * {@linkcode DMA_BIDIRECTIONAL}.
   * @param attrs Optional attributes.
   * @returns The DMA address; pass it to {@linkcode DmaMapper.mappingError}.
   * @throws {IommuError} `EINVAL` for a bad direction, a buffer that is
   * neither a `DmaBuffer` nor a list of frame addresses, attributes that are
   * not an object, a freed buffer or (direct) a physically discontiguous
   * buffer; `ERANGE` for frames outside RAM; `ENOMEM` when IOVA space, page
   * tables or bounce slots run out; a debug report's kind in `"throw"` mode;
   * `EPERM` after removal.
   */
  mapSingle(
    buffer: DmaBuffer | ArrayLike<number>,
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): number {
    return mapSingle(this.#st, buffer, direction, attrs);
  }

  /**
   * Whether a DMA address is the mapping-error value; also records, for the
   * debug checks, that the driver checked this mapping.
   *
   * @param dmaAddr An address a map call returned.
   * @returns True only for {@linkcode DMA_MAPPING_ERROR}.
   */
  mappingError(dmaAddr: number): boolean {
    for (let r = this.#st.live.head(dmaAddr); r !== null; r = r.next) {
      if (r.mapErr === MAP_ERR_NOT_CHECKED) {
        r.mapErr = MAP_ERR_CHECKED;
        break;
      }
    }
    return dmaAddr === DMA_MAPPING_ERROR;
  }

  /**
   * Undo {@linkcode DmaMapper.mapSingle}: cache maintenance for the CPU,
   * bounce copy-back, then unmap (strict: invalidated before returning;
   * lazy: queued) and release the IOVA (lazy: after the flush).
   *
   * @param dmaAddr The address `mapSingle` returned.
   * @param size The buffer's size, as mapped.
   * @param direction The direction, as mapped.
   * @param attrs Optional attributes (`skipCpuSync`).
   * @throws {IommuError} `EINVAL` for a bad direction or malformed numbers;
   * `ENOENT` when nothing is mapped at `dmaAddr` (debug off); a debug
   * report's kind in `"throw"` mode (nothing changes); `EPERM` after removal.
   */
  unmapSingle(
    dmaAddr: number,
    size: number,
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): void {
    unmapCommon(this.#st, "single", dmaAddr, size, direction, 1, null, attrs);
  }

  /**
   * Map a scatter-gather list. Over an IOMMU the whole list gets ONE
   * contiguous IOVA range: each entry is widened to whole pages, entries
   * that would cross the segment boundary start on the next boundary (the
   * gap stays unmapped), and the DMA segments are merged where an entry
   * starts on a page, does not start on a boundary and fits the max segment
   * size. Without an IOMMU each entry is its own DMA segment (bounced below
   * the mask when needed). The list is kept by reference, as the kernel
   * keeps the caller's scatterlist: do not change it while it is mapped.
   *
   * @param segments Entries: physical address and length in bytes (any alignment).
   * @param direction A valid direction.
   * @param attrs Optional attributes.
   * @returns The mapping; pass it to unmap and sync.
   * @throws {IommuError} `EINVAL` for an empty list, a list, entry or
   * attributes that are not one, a bad direction or a malformed entry (the
   * message names its index); `ERANGE` for memory
   * outside RAM; `ENOMEM` when IOVA space, page tables or bounce slots run
   * out; a debug report's kind in `"throw"` mode (nothing changes);
   * `EPERM` after removal.
   */
  mapSg(
    segments: readonly SgSegment[],
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): DmaSgMapping {
    return mapSg(this.#st, segments, direction, attrs);
  }

  /**
   * Undo {@linkcode DmaMapper.mapSg} (one unmap of the whole IOVA range).
   *
   * @param sg The mapping `mapSg` returned.
   * @param direction The direction, as mapped.
   * @param attrs Optional attributes (`skipCpuSync`).
   * @throws {IommuError} as {@linkcode DmaMapper.unmapSingle}; `EINVAL`
   * when `sg` is not an sg mapping object.
   */
  unmapSg(
    sg: DmaSgMapping,
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): void {
    checkSg(sg);
    unmapCommon(
      this.#st,
      "sg",
      sg.dmaAddress[0] ?? -1,
      sg.size,
      direction,
      sg.nents,
      null,
      attrs,
      sg,
    );
  }

  // ----------------------------------------------------------- coherent

  /**
   * Allocate zeroed memory both the CPU and the device see coherently: over
   * an IOMMU from discontiguous blocks (largest page sizes first) mapped
   * contiguously, bidirectional; without one a contiguous block below the
   * DMA mask. The CPU side is uncached (no syncs needed).
   *
   * @param size Bytes, greater than zero.
   * @returns The CPU buffer and the DMA address.
   * @throws {IommuError} `EINVAL` for a bad size; `ENOMEM` when frames, IOVA
   * space or page tables run out (nothing stays allocated); `EPERM` after
   * removal.
   */
  allocCoherent(size: number): DmaCoherent {
    return allocCoherent(this.#st, size);
  }

  /**
   * Free a coherent allocation.
   *
   * @param coherent What {@linkcode DmaMapper.allocCoherent} returned.
   * @throws {IommuError} as {@linkcode DmaMapper.unmapSingle}; `EINVAL`
   * when `coherent` is not an object.
   */
  freeCoherent(coherent: DmaCoherent): void {
    checkObject(coherent, "coherent allocation");
    unmapCommon(
      this.#st,
      "coherent",
      coherent.dmaAddr,
      coherent.size,
      DMA_BIDIRECTIONAL,
      1,
      coherent.cpu,
      {},
    );
  }

  // --------------------------------------------------------------- sync

  /**
   * Give the CPU ownership of `[dmaAddr, dmaAddr + size)` of a streaming
   * mapping: invalidate stale lines (non-coherent masters, unless the
   * direction is to-device) and copy bounced data back.
   *
   * @param dmaAddr First DMA address (any part of a mapping).
   * @param size Bytes.
   * @param direction A valid direction.
   * @throws {IommuError} `EINVAL` for malformed arguments; `ENOENT` when
   * part of the range lies in no live mapping, with debug off, or in
   * `"record"` mode (after the report is kept) when the range starts in a
   * mapping and runs past it; nothing is synced or counted then (in
   * `"record"` mode a sync that starts in no mapping is only recorded); a
   * debug report's kind in `"throw"` mode; `EPERM` after removal.
   */
  syncForCpu(dmaAddr: number, size: number, direction: DmaDirection): void {
    syncCommon(this.#st, true, dmaAddr, size, direction, -1, null);
  }

  /**
   * Give the device ownership again: copy into bounce slots, then clean
   * (non-coherent masters; arm32 invalidates from-device buffers).
   *
   * @param dmaAddr First DMA address.
   * @param size Bytes.
   * @param direction A valid direction.
   * @throws {IommuError} as {@linkcode DmaMapper.syncForCpu}.
   */
  syncForDevice(dmaAddr: number, size: number, direction: DmaDirection): void {
    syncCommon(this.#st, false, dmaAddr, size, direction, -1, null);
  }

  /**
   * {@linkcode DmaMapper.syncForCpu} for every entry of an sg mapping.
   *
   * @param sg The mapping.
   * @param direction A valid direction.
   * @throws {IommuError} as {@linkcode DmaMapper.syncForCpu}; `EINVAL`
   * when `sg` is not an sg mapping object.
   */
  syncSgForCpu(sg: DmaSgMapping, direction: DmaDirection): void {
    checkSg(sg);
    syncCommon(
      this.#st,
      true,
      sg.dmaAddress[0] ?? -1,
      sg.size,
      direction,
      sg.nents,
      sg,
    );
  }

  /**
   * {@linkcode DmaMapper.syncForDevice} for every entry of an sg mapping.
   *
   * @param sg The mapping.
   * @param direction A valid direction.
   * @throws {IommuError} as {@linkcode DmaMapper.syncForCpu}; `EINVAL`
   * when `sg` is not an sg mapping object.
   */
  syncSgForDevice(sg: DmaSgMapping, direction: DmaDirection): void {
    checkSg(sg);
    syncCommon(
      this.#st,
      false,
      sg.dmaAddress[0] ?? -1,
      sg.size,
      direction,
      sg.nents,
      sg,
    );
  }

  // ------------------------------------------------------------- lazy mode

  /**
   * Lazy mode: invalidate every IOTLB of the domain once, free the page
   * tables the queued unmaps emptied, and release their IOVAs. Strict and
   * direct mappers have nothing queued.
   *
   * @returns Queued unmaps released.
   * @throws {IommuError} `EPERM` after removal.
   */
  flush(): number {
    this.#st.alive();
    return flushQueued(this.#st);
  }

  /**
   * Advance the simulated clock; in lazy mode an expired flush timer flushes.
   *
   * @param ms Milliseconds, non-negative.
   * @returns Queued unmaps released by a timer flush (0 when none fired).
   * @throws {IommuError} `EINVAL` for a negative time; `EPERM` after removal.
   */
  advanceTime(ms: number): number {
    this.#st.alive();
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new IommuError("EINVAL", `time step ${String(ms)} ms must be >= 0`);
    }
    const q = this.#st.queue;
    if (q === null) return 0;
    return q.advance(ms) ? flushQueued(this.#st) : 0;
  }

  // ----------------------------------------------------------- reporting

  /** Counters and state. @returns A snapshot. */
  stats(): DmaMapperStats {
    const st = this.#st;
    return {
      mode: this.domain === null ? "direct" : "iommu",
      policy: this.policy,
      liveMappings: st.live.count(),
      ...st.s,
      pendingUnmaps: st.queue?.length ?? 0,
      iova: this.iova?.stats() ?? null,
    };
  }

  /** Debug reports so far (empty when debugging is off). @returns Copies. */
  reports(): DmaDebugReport[] {
    return this.debug?.reports() ?? [];
  }

  /** Live mappings, as the checker sees them (copies). @returns The records. */
  mappings(): DmaMappingRecord[] {
    const out: DmaMappingRecord[] = [];
    for (const x of this.#st.live.all()) {
      out.push({
        type: x.type,
        dmaAddr: x.dmaAddr,
        size: x.size,
        direction: x.direction,
        nents: x.nents,
        cpu: x.cpu,
        mapErr: x.mapErr,
        mappedAt: x.mappedAt,
        lines: x.lines,
      });
    }
    return out;
  }

  /**
   * The master goes away: report leaks (one report per live mapping, with
   * where it was made), tear every mapping down, flush, detach and free the
   * domain, release the bounce pool.
   *
   * @param options `force`: tear down even in `"throw"` mode with leaks.
   * @returns The leak reports (also kept in {@linkcode DmaMapper.reports}).
   * @throws {IommuError} `EBUSY` (detail: the leak reports) in `"throw"`
   * mode when mappings are live and `force` is not set (nothing changes);
   * `EINVAL` when `options` is not an object (nothing changes); `EPERM`
   * when removed already.
   */
  removeMaster(options: { force?: boolean } = {}): DmaDebugReport[] {
    const st = this.#st;
    st.alive();
    checkObject(options, "removeMaster options");
    const live = st.live.all();
    const debug = this.debug;
    const leaks = debug === null ? [] : debug.checkLeaks(live);
    if (
      debug !== null && debug.mode === "throw" && leaks.length > 0 &&
      options.force !== true
    ) {
      throw new IommuError(
        "EBUSY",
        `master ${this.master.name} has ${leaks.length} pending DMA mapping(s); unmap them or pass force`,
        { detail: leaks },
      );
    }
    if (debug !== null && leaks.length > 0) {
      try {
        debug.emit(leaks);
      } catch {
        // force in throw mode: keep the reports, carry on tearing down
      }
    }
    for (const rec of live) teardown(st, rec, false);
    flushQueued(st);
    const domain = this.domain;
    if (domain !== null) {
      for (const u of this.#units) domain.detach(u.unit, u.streamIds);
      domain.free();
    }
    for (const p of this.#ports) p.observe(null);
    if (st.tracksOwnership) this.cpu.removeAccessObserver(this.#checkCpu);
    st.bounce.release();
    mappers.delete(this.master);
    st.disposed = true;
    return leaks;
  }
}

/**
 * Create the DMA mapper of a master: over an IOMMU when its ports sit
 * behind units (one domain, created on the first port's unit and attached
 * to every port's unit with the ports' stream IDs), direct otherwise.
 *
 * @param soc The system the master belongs to.
 * @param master The master.
 * @param options Policy, limits, debug.
 * @returns The mapper.
 * @throws {IommuError} `EBUSY` when the master already has a mapper or its
 * ports are observed; `EINVAL` for ports that mix direct and IOMMU access,
 * units of different plugins, a smallest page other than 4 KiB, or bad
 * options; `ENOMEM`/`ENOSPC` when the domain cannot be created or attached
 * (nothing stays created).
 */
export function createDmaMapper(
  soc: Soc,
  master: Master,
  options: DmaMapperOptions = {},
): DmaMapper {
  return new DmaMapper(soc, master, options);
}

/**
 * The live mapper of a master, if any.
 *
 * @param master The master.
 * @returns Its mapper, or undefined.
 */
export function dmaMapperOf(master: Master): DmaMapper | undefined {
  return mappers.get(master);
}

// An sg mapping argument: an object with a dmaAddress list (null, undefined
// or a number used to throw TypeErrors).
function checkSg(sg: DmaSgMapping): void {
  checkObject(sg, "sg mapping");
  checkList(sg.dmaAddress, "sg mapping dmaAddress");
}
