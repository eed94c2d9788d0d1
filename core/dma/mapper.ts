/**
 * The DMA mapper of one master: the kernel's DMA API (streaming single and
 * scatter-gather mappings, coherent allocations, syncs) over any IOMMU
 * plugin's domain, or over no IOMMU at all (direct mapping with bounce
 * buffers below the DMA mask).
 *
 * @module
 */
import {
  type Domain,
  hex,
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuFault,
  type IommuUnit,
  IotlbGather,
  type Master,
  type Port,
  type SgSegment,
  type Soc,
} from "../mod.ts";
import { IovaAllocator, type IovaStats } from "./iova_allocator.ts";
import { type CpuCache, cpuCacheOf } from "./cpu_cache.ts";
import { allocBelow, DMA_PAGE_SIZE, DmaBuffer } from "./dma_buffer.ts";
import {
  checkDirection,
  directionToProt,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  type DmaDirection,
} from "./direction.ts";
import {
  deviceWrites,
  DmaDebug,
  type DmaDebugOptions,
  type DmaDebugReport,
  type DmaMappingRecord,
  type DmaMappingType,
  MAP_ERR_CHECKED,
  MAP_ERR_NA,
  MAP_ERR_NOT_CHECKED,
} from "./debug.ts";
import { FlushQueue } from "./flush_queue.ts";

const PAGE = DMA_PAGE_SIZE;
const NO_BOUNDARY = 2 ** 53;

// `x % PAGE` without a floating-point remainder (addresses above 2^30 are
// not small integers to V8, and its remainder on doubles is a slow call).
function pageOffset(x: number): number {
  return x - Math.floor(x / PAGE) * PAGE;
}

/** When unmapped IOVAs become unreachable: at once, or after a batched flush. */
export type DmaInvalidationPolicy = "strict" | "lazy";

/** Options of {@linkcode createDmaMapper}. */
export interface DmaMapperOptions {
  /** `"strict"` (default): unmap invalidates the IOTLBs before returning; `"lazy"`: a flush queue. */
  policy?: DmaInvalidationPolicy;
  /** Lazy mode: queued unmaps that force a flush (default 256). */
  flushQueueSize?: number;
  /** Lazy mode: simulated milliseconds from the first queued unmap to the timer flush (default 10). */
  flushTimeoutMs?: number;
  /** Longest DMA segment the master accepts, in bytes (default 64 KiB). */
  maxSegmentSize?: number;
  /** DMA segments never cross a multiple of this many bytes (a power of two; default none). */
  segmentBoundary?: number;
  /** DMA-API debug checks: true (default, mode `"throw"`), false, or options. */
  debug?: boolean | DmaDebugOptions;
  /** No-IOMMU masters: bytes of the bounce pool below the DMA mask (default 256 KiB). */
  bouncePoolSize?: number;
  /**
   * Watch the master's ports and count DMA accesses that still reach
   * unmapped IOVAs (`stats().staleAccesses`). Costs a lookup per device
   * access; default on in lazy mode, off in strict mode (turn it on to
   * prove a strict window is zero).
   */
  staleWindow?: boolean;
}

/** Attributes of one map or unmap call. */
export interface DmaAttrs {
  /** Skip the CPU cache maintenance (the caller syncs explicitly); also exempts the overlap check. */
  skipCpuSync?: boolean;
  /**
   * Promise that the CPU does not write the buffer's cache lines while it is
   * mapped, so sharing lines with other mappings is safe (exempts the
   * cache-line overlap check; the shared-buffer attachments use it).
   */
  cpuCacheClean?: boolean;
}

/** A coherent allocation: CPU buffer and device address of the same memory. */
export interface DmaCoherent {
  /** The CPU side (uncached: CPU accesses bypass the cache). */
  readonly cpu: DmaBuffer;
  /** The device address, in bytes. */
  readonly dmaAddr: number;
  /** Bytes requested. */
  readonly size: number;
}

/** Counters and state of a mapper, as a plain object. */
export interface DmaMapperStats {
  /** Translated by an IOMMU domain, or direct. */
  mode: "iommu" | "direct";
  /** Invalidation policy. */
  policy: DmaInvalidationPolicy;
  /** Mappings and allocations live now. */
  liveMappings: number;
  /** Streaming single mappings made. */
  singleMaps: number;
  /** Scatter-gather lists mapped. */
  sgMaps: number;
  /** Coherent allocations made. */
  coherentAllocs: number;
  /** Mappings undone (unmap or free). */
  unmaps: number;
  /** Sync calls. */
  syncs: number;
  /** Buffers (or sg segments) that went through the bounce pool. */
  bounces: number;
  /** Bytes copied to or from bounce slots. */
  bounceBytes: number;
  /** Lazy mode: full IOTLB flushes done. */
  flushes: number;
  /** Lazy mode: unmaps queued and not yet flushed. */
  pendingUnmaps: number;
  /** Successful DMA accesses by this master to IOVAs that were unmapped (queued for flush, or not live at all); counted while `staleWindow` is on. */
  staleAccesses: number;
  /** Bytes those accesses touched in unmapped ranges. */
  staleBytes: number;
  /** Accesses to queued (unmapped, unflushed) IOVAs that faulted anyway. */
  staleFaults: number;
  /** IOVA allocator counters (IOMMU mode), or null. */
  iova: IovaStats | null;
}

/**
 * A scatter-gather list as mapped: the DMA segments the device uses
 * (`count` of them, merged where the rules allow) and a copy of the input
 * entries. Pass it back to unmap and sync it.
 */
export class DmaSgMapping {
  /** The caller's entries, by reference (unchanged while mapped). */
  readonly segments: readonly SgSegment[];
  /** Entries passed to map (`segments.length`). */
  readonly nents: number;
  /** Direction mapped with. */
  readonly direction: DmaDirection;
  /** DMA segments (at most `nents`). */
  readonly count: number;
  /** Each DMA segment's address (`count` entries). */
  readonly dmaAddress: readonly number[];
  /** Each DMA segment's length in bytes (`count` entries). */
  readonly dmaLength: readonly number[];
  /** Start of the one IOVA range, or -1 for a direct mapping. */
  readonly iova: number;
  /** Bytes of that IOVA range (0 direct). */
  readonly iovaSize: number;
  /** Direct mode: bounce slot of each entry, or -1; null without bounces. */
  readonly bounce: readonly number[] | null;
  /** Sum of the entry lengths, in bytes. */
  readonly size: number;

  /**
   * Built by {@linkcode DmaMapper.mapSg}.
   *
   * @param fields Every field (`nents` and `count` follow from the arrays,
   * unless `nents` is given to describe a different list).
   */
  constructor(fields: {
    segments: readonly SgSegment[];
    nents?: number;
    direction: DmaDirection;
    dmaAddress: readonly number[];
    dmaLength: readonly number[];
    iova: number;
    iovaSize: number;
    bounce: readonly number[] | null;
    size: number;
  }) {
    this.segments = fields.segments;
    this.nents = fields.nents ?? fields.segments.length;
    this.direction = fields.direction;
    this.count = fields.dmaAddress.length;
    this.dmaAddress = fields.dmaAddress;
    this.dmaLength = fields.dmaLength;
    this.iova = fields.iova;
    this.iovaSize = fields.iovaSize;
    this.bounce = fields.bounce;
    this.size = fields.size;
  }

  #pa: Float64Array | null = null;
  #len: Float64Array | null = null;

  /** Physical address of each input entry (copied on first use; cold path). */
  get segmentPa(): Float64Array {
    if (this.#pa === null) {
      this.#pa = Float64Array.from(this.segments, (s) => s.pa);
    }
    return this.#pa;
  }

  /** Length in bytes of each input entry (copied on first use; cold path). */
  get segmentLength(): Float64Array {
    if (this.#len === null) {
      this.#len = Float64Array.from(this.segments, (s) => s.length);
    }
    return this.#len;
  }
}

// One live mapping: what the checker sees plus how to undo it.
class Live implements DmaMappingRecord {
  dmaAddr = -1;
  end = -1;
  mapErr: number;
  lines: Float64Array | null = null;
  iova = -1;
  iovaSize = 0;
  bounce = -1; // single, direct: slot PA
  bounceSize = 0;
  sg: DmaSgMapping | null = null;
  next: Live | null = null; // same DMA address (direct mode only)
  ranges: Float64Array | null = null; // PA [start, end) pairs (ownership debug)
  deviceOwned = false;
  constructor(
    readonly type: DmaMappingType,
    readonly direction: DmaDirection,
    readonly size: number,
    readonly nents: number,
    readonly cpu: DmaBuffer | null,
    mapErr: number,
    readonly mappedAt: string,
  ) {
    this.mapErr = mapErr;
  }
}

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
  #coherent: boolean;
  #live = new Map<number, Live>();
  #queue: FlushQueue | null;
  #gather = new IotlbGather();
  #units: { unit: IommuUnit; streamIds: number[] }[] = [];
  #ports: Port[];
  #frames = new Float64Array(256);
  #poolSize: number;
  #pool = -1;
  #slots: IovaAllocator | null = null;
  #bounced = 0; // live mappings holding bounce slots
  #internal = false; // the mapper's own CPU copies (not checked for ownership)
  #tracksOwnership = false;
  #disposed = false;
  #s = {
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
    const maxSeg = options.maxSegmentSize ?? 65536;
    if (!Number.isSafeInteger(maxSeg) || maxSeg < 1) {
      throw new IommuError(
        "EINVAL",
        `max segment size ${String(maxSeg)} must be a positive integer`,
      );
    }
    const boundary = options.segmentBoundary ?? NO_BOUNDARY;
    if (
      !Number.isSafeInteger(boundary) && boundary !== NO_BOUNDARY ||
      boundary < PAGE || 2 ** Math.round(Math.log2(boundary)) !== boundary
    ) {
      throw new IommuError(
        "EINVAL",
        `segment boundary ${
          String(boundary)
        } must be a power of two of at least ${hex(PAGE)}`,
      );
    }
    const poolSize = options.bouncePoolSize ?? 256 * 1024;
    if (
      !Number.isSafeInteger(poolSize) || poolSize < PAGE ||
      pageOffset(poolSize) !== 0
    ) {
      throw new IommuError(
        "EINVAL",
        `bounce pool size ${String(poolSize)} must be a positive multiple of ${
          hex(PAGE)
        }`,
      );
    }
    const policy = options.policy ?? "strict";
    if (policy !== "strict" && policy !== "lazy") {
      throw new IommuError(
        "EINVAL",
        `unknown invalidation policy ${String(policy)}`,
      );
    }
    const withUnit = master.ports.filter((p) => p.unit !== null);
    if (withUnit.length !== 0 && withUnit.length !== master.ports.length) {
      throw new IommuError(
        "EINVAL",
        `master ${master.name} mixes ports behind an IOMMU with direct ports; one IOVA space cannot serve both`,
      );
    }
    for (const p of master.ports) {
      if (p.unit === null) continue;
      const entry = this.#units.find((u) => u.unit === p.unit);
      if (entry === undefined) {
        this.#units.push({ unit: p.unit, streamIds: [...p.streamIds] });
      } else {
        for (const sid of p.streamIds) {
          if (!entry.streamIds.includes(sid)) entry.streamIds.push(sid);
        }
      }
    }
    const debugOpt = options.debug ?? true;
    const debug = debugOpt === false
      ? null
      : new DmaDebug(master.name, soc, debugOpt === true ? {} : debugOpt);
    const queue = policy === "lazy" && this.#units.length > 0
      ? new FlushQueue(options.flushQueueSize, options.flushTimeoutMs)
      : null;
    const maskEnd = master.dmaBits >= 53 ? NO_BOUNDARY : 2 ** master.dmaBits;
    let domain: Domain | null = null;
    let iova: IovaAllocator | null = null;
    let limit = maskEnd;
    if (this.#units.length > 0) {
      const first = this.#units[0]!.unit;
      domain = soc.createDomain(first);
      const attached: { unit: IommuUnit; streamIds: number[] }[] = [];
      try {
        if (domain.minPageSize !== PAGE) {
          throw new IommuError(
            "EINVAL",
            `unit ${first.name}'s smallest page ${
              hex(domain.minPageSize)
            } is not the ${hex(PAGE)} CPU page`,
          );
        }
        limit = Math.min(maskEnd, domain.apertureEnd, NO_BOUNDARY);
        let alignment = 0;
        let guardGap = 0;
        for (const u of this.#units) {
          const c = u.unit.caps.iovaConstraints;
          if (c?.alignment !== undefined) {
            alignment = Math.max(alignment, c.alignment);
          }
          if (c?.guardGap !== undefined) {
            guardGap = Math.max(guardGap, c.guardGap);
          }
        }
        iova = new IovaAllocator({
          granule: PAGE,
          end: limit,
          constraints: {
            ...(alignment > 0 ? { alignment } : {}),
            guardGap,
          },
        });
        for (const u of this.#units) {
          domain.attach(u.unit, u.streamIds);
          attached.push(u);
        }
      } catch (e) {
        for (const u of attached) domain.detach(u.unit, u.streamIds);
        domain.free();
        throw e;
      }
    }
    this.soc = soc;
    this.master = master;
    this.cpu = cpuCacheOf(soc);
    this.domain = domain;
    this.iova = iova;
    this.policy = domain === null ? "strict" : policy;
    this.debug = debug;
    this.maxSegmentSize = maxSeg;
    this.segmentBoundary = boundary;
    this.dmaLimit = limit;
    this.#coherent = master.coherent;
    this.#queue = queue;
    this.#poolSize = poolSize;
    const watch = options.staleWindow ?? policy === "lazy";
    this.#ports = domain === null || !watch ? [] : [...master.ports];
    const observed: Port[] = [];
    try {
      for (const p of this.#ports) {
        p.observe(this.#observe);
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
      this.#tracksOwnership = true;
      this.cpu.addAccessObserver(this.#checkCpu);
    }
  }

  // Debug ownership check of every CPU access.
  #checkCpu = (pa: number, size: number, write: boolean): void => {
    if (this.#internal || this.#disposed) return;
    const owned: { rec: Live; ranges: Float64Array }[] = [];
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        if (r.deviceOwned && r.ranges !== null) {
          owned.push({ rec: r, ranges: r.ranges });
        }
      }
    }
    if (owned.length === 0) return;
    const debug = this.debug!;
    debug.emit(debug.checkCpuAccess(pa, size, write, owned));
  };

  // PA byte ranges of a buffer, for the ownership check.
  #bufferRanges(buf: DmaBuffer): Float64Array {
    const pairs: number[] = [];
    this.#bufferPieces(buf, (pa, n) => pairs.push(pa, pa + n));
    return new Float64Array(pairs);
  }

  /** Whether the master snoops CPU caches (its mappings need no cache maintenance). */
  get coherent(): boolean {
    return this.#coherent;
  }

  /** True after {@linkcode DmaMapper.removeMaster}. */
  get removed(): boolean {
    return this.#disposed;
  }

  /** Simulated milliseconds (advanced by {@linkcode DmaMapper.advanceTime}). */
  get now(): number {
    return this.#queue?.now ?? 0;
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

  // Counts successful accesses to unmapped IOVAs (the lazy stale window).
  #observe = (
    _port: Port,
    iova: number,
    length: number,
    _access: number,
    fault: IommuFault | null,
  ): void => {
    const q = this.#queue;
    const pending = q === null ? 0 : q.overlap(iova, length);
    if (fault !== null) {
      if (pending > 0) this.#s.staleFaults++;
      return;
    }
    if (pending > 0) {
      this.#s.staleAccesses++;
      this.#s.staleBytes += pending;
      return;
    }
    const a = this.iova!;
    if (
      a.find(iova) === undefined || a.find(iova + length - 1) === undefined
    ) {
      this.#s.staleAccesses++;
      this.#s.staleBytes += length;
    }
  };

  #alive(): void {
    if (this.#disposed) {
      throw new IommuError(
        "EPERM",
        `the DMA mapper of ${this.master.name} was removed`,
      );
    }
  }

  #stack(): string {
    return this.debug === null ? "" : this.debug.captureStack();
  }

  #start = new Float64Array(256);
  #outAddr = new Float64Array(256);
  #outLen = new Float64Array(256);
  #outScratch(n: number): Float64Array {
    if (this.#outAddr.length < n) {
      this.#outAddr = new Float64Array(n);
      this.#outLen = new Float64Array(n);
    }
    return this.#outAddr;
  }
  #startScratch(n: number): Float64Array {
    if (this.#start.length < n) {
      this.#start = new Float64Array(Math.max(n, this.#start.length * 2));
    }
    return this.#start;
  }

  // Grows keeping its contents (the one-pass sg layout fills it as it goes).
  #scratch(n: number): Float64Array {
    if (this.#frames.length < n) {
      const next = new Float64Array(Math.max(n, this.#frames.length * 2));
      next.set(this.#frames);
      this.#frames = next;
    }
    return this.#frames;
  }

  #checkRam(pa: number, size: number, what: string): void {
    if (!this.soc.memory.contains(pa, size)) {
      throw new IommuError(
        "ERANGE",
        `${what} ${hex(pa)}+${hex(size)} is not in RAM`,
      );
    }
  }

  // Cache-line pairs [first, last] of a buffer's pieces (overlap tracking).
  #bufferLines(buf: DmaBuffer): Float64Array {
    const pairs: number[] = [];
    let done = 0;
    while (done < buf.size) {
      const pa = buf.paAt(done);
      const n = Math.min(PAGE - pageOffset(pa), buf.size - done);
      const first = Math.floor(pa / 64);
      const last = Math.floor((pa + n - 1) / 64);
      const k = pairs.length;
      if (k > 0 && pairs[k - 1] === first - 1) pairs[k - 1] = last;
      else pairs.push(first, last);
      done += n;
    }
    return new Float64Array(pairs);
  }

  #insert(rec: Live): void {
    const have = this.#live.get(rec.dmaAddr);
    if (have !== undefined) rec.next = have;
    this.#live.set(rec.dmaAddr, rec);
    this.debug?.track(rec);
  }

  #remove(rec: Live): void {
    const head = this.#live.get(rec.dmaAddr);
    if (head === rec) {
      if (rec.next === null) this.#live.delete(rec.dmaAddr);
      else this.#live.set(rec.dmaAddr, rec.next);
    } else {
      let p = head ?? null;
      while (p !== null && p.next !== rec) p = p.next;
      if (p !== null) p.next = rec.next;
    }
    rec.next = null;
    this.debug?.untrack(rec);
  }

  // Exact lookup; among duplicates (direct mode) the best-matching one.
  #lookup(
    dmaAddr: number,
    type: DmaMappingType,
    size: number,
    direction: DmaDirection,
  ): Live | undefined {
    let rec: Live | null = this.#live.get(dmaAddr) ?? null;
    if (rec === null || rec.next === null) return rec ?? undefined;
    let best = rec;
    let bestScore = -1;
    for (; rec !== null; rec = rec.next) {
      const score = (rec.type === type ? 1 : 0) + (rec.size === size ? 1 : 0) +
        (rec.direction === direction ? 1 : 0);
      if (score > bestScore) {
        best = rec;
        bestScore = score;
      }
    }
    return best;
  }

  #containing(dmaAddr: number): Live | undefined {
    for (const head of this.#live.values()) {
      for (let r: Live | null = head; r !== null; r = r.next) {
        if (dmaAddr >= r.dmaAddr && dmaAddr < r.end) return r;
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------- bounce

  #bounceAlloc(size: number, offset: number): number {
    if (this.#slots === null) {
      const pool = allocBelow(this.soc.memory, this.#poolSize, this.dmaLimit);
      this.#pool = pool;
      this.#slots = new IovaAllocator({
        granule: PAGE,
        start: pool,
        end: pool + this.#poolSize,
        cacheMaxSize: 0,
      });
      // Bounce slots are only ever touched uncached; drop stale lines once.
      this.cpu.invalidate(pool, this.#poolSize);
    }
    const bytes = Math.ceil((offset + size) / PAGE) * PAGE;
    return this.#slots.alloc(bytes) + offset;
  }

  #bounceFree(slot: number, size: number): void {
    const offset = pageOffset(slot);
    this.#slots!.free(slot - offset, Math.ceil((offset + size) / PAGE) * PAGE);
  }

  // The mapper's own CPU copies (bounce buffers) are not driver accesses.
  #cpuRead(pa: number, n: number): Uint8Array {
    this.#internal = true;
    try {
      return this.cpu.read(pa, n);
    } finally {
      this.#internal = false;
    }
  }

  #cpuWrite(pa: number, data: Uint8Array): void {
    this.#internal = true;
    try {
      this.cpu.write(pa, data);
    } finally {
      this.#internal = false;
    }
  }

  // Copy CPU view of `buf[offset..+size)` into the bounce slot in RAM.
  #bounceIn(buf: DmaBuffer, offset: number, slot: number, size: number): void {
    this.#internal = true;
    let data: Uint8Array;
    try {
      data = this.cpu.readBuffer(buf, offset, size);
    } finally {
      this.#internal = false;
    }
    this.soc.memory.writeBytes(slot, data);
    this.#s.bounceBytes += size;
  }

  // Copy the slot in RAM back into the CPU view of `buf[offset..+size)`.
  #bounceOut(buf: DmaBuffer, offset: number, slot: number, size: number): void {
    const data = this.soc.memory.readBytes(slot, size);
    this.#internal = true;
    try {
      this.cpu.writeBuffer(buf, data, offset);
    } finally {
      this.#internal = false;
    }
    this.#s.bounceBytes += size;
  }

  // ------------------------------------------------------- cache maintenance

  // Hand a physically contiguous piece to the device.
  #pieceToDevice(
    pa: number,
    n: number,
    dir: DmaDirection,
    skip: boolean,
  ): void {
    if (this.#coherent) this.cpu.markUncached(pa, n);
    else if (!skip) this.cpu.handToDevice(pa, n, dir);
  }

  #pieceToCpu(pa: number, n: number, dir: DmaDirection, skip: boolean): void {
    if (this.#coherent) this.cpu.unmarkUncached(pa, n);
    else if (!skip) this.cpu.takeFromDevice(pa, n, dir);
  }

  #bufferPieces(
    buf: DmaBuffer,
    fn: (pa: number, n: number) => void,
  ): void {
    let done = 0;
    while (done < buf.size) {
      const pa = buf.paAt(done);
      const n = Math.min(PAGE - pageOffset(pa), buf.size - done);
      // Merge physically adjacent pages into one call.
      let len = n;
      while (
        done + len < buf.size && buf.paAt(done + len) === pa + len
      ) {
        len += Math.min(PAGE, buf.size - done - len);
      }
      fn(pa, len);
      done += len;
    }
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
   * @throws {IommuError} `EINVAL` for a bad direction, a freed buffer or
   * (direct) a physically discontiguous buffer; `ERANGE` for frames outside
   * RAM; `ENOMEM` when IOVA space, page tables or bounce slots run out;
   * a debug report's kind in `"throw"` mode; `EPERM` after removal.
   */
  mapSingle(
    buffer: DmaBuffer | ArrayLike<number>,
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): number {
    this.#alive();
    const dir = checkDirection(direction);
    const buf = buffer instanceof DmaBuffer
      ? buffer
      : DmaBuffer.fromFrames(buffer);
    if (buf.freed) {
      throw new IommuError("EINVAL", `buffer at ${hex(buf.pa)} was freed`);
    }
    const pages = Math.ceil((buf.offset + buf.size) / PAGE);
    for (let i = 0; i < pages; i++) {
      this.#checkRam(buf.frames[i]!, PAGE, `frame ${i}`);
    }
    const skip = attrs.skipCpuSync === true;
    const debug = this.debug;
    const rec = new Live(
      "single",
      dir,
      buf.size,
      1,
      buf,
      debug === null ? MAP_ERR_NA : MAP_ERR_NOT_CHECKED,
      this.#stack(),
    );
    if (
      debug !== null && deviceWrites(dir) && !skip &&
      attrs.cpuCacheClean !== true
    ) {
      rec.lines = this.#bufferLines(buf);
    }
    if (debug !== null) debug.emit(debug.checkMap(rec, null));
    const domain = this.domain;
    if (domain !== null) {
      const alloc = this.iova!;
      const iova = alloc.alloc(pages * PAGE, this.dmaLimit);
      try {
        domain.mapPages(
          iova,
          pages === buf.frames.length
            ? buf.frames
            : buf.frames.subarray(0, pages),
          directionToProt(dir, this.#coherent),
          PAGE,
        );
      } catch (e) {
        alloc.free(iova, pages * PAGE);
        throw e;
      }
      rec.iova = iova;
      rec.iovaSize = pages * PAGE;
      rec.dmaAddr = iova + buf.offset;
    } else {
      if (!buf.contiguous) {
        throw new IommuError(
          "EINVAL",
          `master ${this.master.name} has no IOMMU: a single mapping needs a physically contiguous buffer`,
        );
      }
      const pa = buf.pa;
      if (pa + buf.size > this.dmaLimit) {
        const slot = this.#bounceAlloc(buf.size, pageOffset(pa));
        rec.bounce = slot;
        rec.bounceSize = buf.size;
        rec.dmaAddr = slot;
        this.#bounced++;
        this.#s.bounces++;
        if (dir !== DMA_FROM_DEVICE && !skip) {
          this.#bounceIn(buf, 0, slot, buf.size);
        }
      } else {
        rec.dmaAddr = pa;
      }
    }
    rec.end = rec.dmaAddr + buf.size;
    if (this.#tracksOwnership) {
      rec.ranges = this.#bufferRanges(buf);
      rec.deviceOwned = true;
    }
    if (rec.bounce < 0) {
      this.#bufferPieces(buf, (pa, n) => this.#pieceToDevice(pa, n, dir, skip));
    }
    this.#insert(rec);
    this.#s.singleMaps++;
    return rec.dmaAddr;
  }

  /**
   * Whether a DMA address is the mapping-error value; also records, for the
   * debug checks, that the driver checked this mapping.
   *
   * @param dmaAddr An address a map call returned.
   * @returns True only for {@linkcode DMA_MAPPING_ERROR}.
   */
  mappingError(dmaAddr: number): boolean {
    for (let r = this.#live.get(dmaAddr) ?? null; r !== null; r = r.next) {
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
    this.#unmapCommon("single", dmaAddr, size, direction, 1, null, attrs);
  }

  #unmapCommon(
    type: DmaMappingType,
    dmaAddr: number,
    size: number,
    direction: DmaDirection,
    nents: number,
    cpu: DmaBuffer | null,
    attrs: DmaAttrs,
  ): void {
    this.#alive();
    const dir = checkDirection(direction);
    if (!Number.isSafeInteger(dmaAddr) || dmaAddr < 0) {
      throw new IommuError(
        "EINVAL",
        `DMA address ${String(dmaAddr)} is not a non-negative safe integer`,
      );
    }
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new IommuError("EINVAL", `size ${String(size)} must be positive`);
    }
    const rec = this.#lookup(dmaAddr, type, size, dir);
    const debug = this.debug;
    if (debug !== null) {
      debug.emit(
        debug.checkUnmap(
          { type, dmaAddr, size, direction: dir, nents, cpu },
          rec,
          dmaAddr === DMA_MAPPING_ERROR,
        ),
      );
    }
    if (rec === undefined) {
      if (debug !== null) return; // recorded
      throw new IommuError(
        "ENOENT",
        `nothing is mapped at DMA address ${
          hex(dmaAddr)
        } for ${this.master.name}`,
      );
    }
    this.#teardown(rec, attrs.skipCpuSync === true);
  }

  // Undo a mapping by its own record (whatever the caller claimed).
  #teardown(rec: Live, skip: boolean): void {
    const dir = rec.direction;
    if (rec.type === "coherent") {
      const buf = rec.cpu!;
      for (let i = 0; i < buf.frames.length; i++) {
        this.cpu.unmarkUncached(buf.frames[i]!, PAGE);
      }
    } else if (rec.type === "single") {
      const buf = rec.cpu!;
      if (rec.bounce >= 0) {
        if (dir !== DMA_TO_DEVICE && !skip) {
          this.#bounceOut(buf, 0, rec.bounce, rec.bounceSize);
        }
        this.#bounceFree(rec.bounce, rec.bounceSize);
        this.#bounced--;
      } else {
        this.#bufferPieces(buf, (pa, n) => this.#pieceToCpu(pa, n, dir, skip));
      }
    } else {
      const sg = rec.sg!;
      const maintain = this.#coherent || sg.bounce !== null ||
        (!skip && dir !== DMA_TO_DEVICE && this.cpu.needsMaintenance);
      for (let i = 0; maintain && i < sg.nents; i++) {
        const slot = sg.bounce === null ? -1 : sg.bounce[i]!;
        const pa = sg.segments[i]!.pa;
        const len = sg.segments[i]!.length;
        if (slot >= 0) {
          if (dir !== DMA_TO_DEVICE && !skip) {
            this.soc.memory.readInto(slot, this.#tmp(len));
            this.#cpuWrite(pa, this.#tmp(len));
            this.#s.bounceBytes += len;
          }
          this.#bounceFree(slot, len);
        } else {
          this.#pieceToCpu(pa, len, dir, skip);
        }
      }
      if (sg.bounce !== null) this.#bounced--;
    }
    if (rec.iova >= 0) this.#unmapIova(rec.iova, rec.iovaSize);
    if (rec.type === "coherent") rec.cpu!.free();
    this.#remove(rec);
    this.#s.unmaps++;
  }

  #tmpBuf = new Uint8Array(PAGE);
  #tmp(n: number): Uint8Array {
    if (this.#tmpBuf.length < n) this.#tmpBuf = new Uint8Array(n);
    return this.#tmpBuf.subarray(0, n);
  }

  #unmapIova(iova: number, size: number): void {
    const domain = this.domain!;
    const q = this.#queue;
    if (q === null) {
      domain.unmap(iova, size);
      this.iova!.free(iova, size);
      return;
    }
    if (q.full) this.flush();
    domain.unmapNoSync(iova, size, this.#gather);
    q.push(iova, size);
  }

  // --------------------------------------------------------------- sg

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
   * @throws {IommuError} `EINVAL` for an empty list, a bad direction or a
   * malformed entry (the message names its index); `ERANGE` for memory
   * outside RAM; `ENOMEM` when IOVA space, page tables or bounce slots run
   * out; a debug report's kind in `"throw"` mode (nothing changes);
   * `EPERM` after removal.
   */
  mapSg(
    segments: readonly SgSegment[],
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): DmaSgMapping {
    this.#alive();
    const dir = checkDirection(direction);
    const n = segments.length;
    if (n === 0) {
      throw new IommuError("EINVAL", "scatter-gather list must not be empty");
    }
    const mem = this.soc.memory;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      const pa = s.pa;
      const len = s.length;
      if (
        !Number.isSafeInteger(pa) || pa < 0 || !Number.isSafeInteger(len) ||
        len <= 0
      ) {
        throw new IommuError(
          "EINVAL",
          `segment ${i}: address ${String(pa)} / length ${
            String(len)
          } must be non-negative / positive integers`,
        );
      }
      if (!mem.contains(pa, len)) {
        throw new IommuError(
          "ERANGE",
          `segment ${i}: ${hex(pa)}+${hex(len)} is not in RAM`,
        );
      }
      total += len;
    }
    const skip = attrs.skipCpuSync === true;
    const debug = this.debug;
    const rec = new Live("sg", dir, total, n, null, MAP_ERR_NA, this.#stack());
    if (
      debug !== null && deviceWrites(dir) && !skip &&
      attrs.cpuCacheClean !== true
    ) {
      const pairs = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) {
        const s = segments[i]!;
        pairs[2 * i] = Math.floor(s.pa / 64);
        pairs[2 * i + 1] = Math.floor((s.pa + s.length - 1) / 64);
      }
      rec.lines = pairs;
    }
    const sg = this.domain !== null
      ? this.#mapSgIommu(rec, segments, total, dir)
      : this.#mapSgDirect(rec, segments, total, dir, skip);
    rec.sg = sg;
    rec.iova = sg.iova;
    rec.iovaSize = sg.iovaSize;
    rec.dmaAddr = sg.dmaAddress[0]!;
    rec.end = sg.dmaAddress[sg.count - 1]! + sg.dmaLength[sg.count - 1]!;
    if (this.#tracksOwnership) {
      const pairs = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) {
        pairs[2 * i] = segments[i]!.pa;
        pairs[2 * i + 1] = segments[i]!.pa + segments[i]!.length;
      }
      rec.ranges = pairs;
      rec.deviceOwned = true;
    }
    if (this.#coherent || (!skip && this.cpu.needsMaintenance)) {
      for (let i = 0; i < n; i++) {
        if (sg.bounce === null || sg.bounce[i]! < 0) {
          const s = segments[i]!;
          this.#pieceToDevice(s.pa, s.length, dir, skip);
        }
      }
    }
    this.#insert(rec);
    this.#s.sgMaps++;
    return sg;
  }

  #mapSgIommu(
    rec: Live,
    segments: readonly SgSegment[],
    total: number,
    dir: DmaDirection,
  ): DmaSgMapping {
    const n = segments.length;
    const B = this.segmentBoundary;
    if (B === NO_BOUNDARY) return this.#mapSgFlat(rec, segments, total, dir);
    const start = this.#startScratch(n); // IOVA offset of each entry's first page
    let iovaLen = 0;
    let padded = false;
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      const off = pageOffset(s.pa);
      const alen = Math.ceil((off + s.length) / PAGE) * PAGE;
      if (B !== NO_BOUNDARY) {
        const pad = (B - (iovaLen % B)) % B;
        if (pad > 0 && alen > pad) {
          iovaLen += pad;
          padded = true;
        }
      }
      start[i] = iovaLen;
      iovaLen += alen;
    }
    const alloc = this.iova!;
    const iova = alloc.alloc(iovaLen, this.dmaLimit);
    const outAddr = this.#outScratch(n);
    const outLen = this.#outLen;
    let count = 0;
    let curLen = 0;
    const maxSeg = this.maxSegmentSize;
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      const off = pageOffset(s.pa);
      const len = s.length;
      const at = iova + start[i]!;
      if (
        curLen !== 0 && off === 0 && maxSeg - curLen >= len &&
        outAddr[count - 1]! + outLen[count - 1]! === at &&
        (B === NO_BOUNDARY || at - Math.floor(at / B) * B !== 0)
      ) {
        outLen[count - 1] = outLen[count - 1]! + len;
        curLen += len;
      } else {
        outAddr[count] = at + off;
        outLen[count] = len;
        count++;
        curLen = len;
      }
      if (pageOffset(off + len) !== 0) curLen = 0;
    }
    const dmaAddress: number[] = new Array(count);
    const dmaLength: number[] = new Array(count);
    for (let i = 0; i < count; i++) {
      dmaAddress[i] = outAddr[i]!;
      dmaLength[i] = outLen[i]!;
    }
    const debug = this.debug;
    if (debug !== null) {
      try {
        rec.dmaAddr = dmaAddress[0]!;
        debug.emit(
          debug.checkMap(rec, {
            inputs: segments,
            dmaAddress,
            dmaLength,
            count,
            maxSegmentSize: maxSeg,
            segmentBoundary: B,
          }),
        );
      } catch (e) {
        alloc.free(iova, iovaLen);
        throw e;
      }
    }
    const frames = this.#scratch(iovaLen / PAGE);
    const prot = directionToProt(dir, this.#coherent);
    const domain = this.domain!;
    try {
      if (!padded) {
        let k = 0;
        for (let i = 0; i < n; i++) {
          const s = segments[i]!;
          const end = s.pa + s.length;
          for (let pa = s.pa - pageOffset(s.pa); pa < end; pa += PAGE) {
            frames[k++] = pa;
          }
        }
        domain.mapPages(iova, frames.subarray(0, k), prot, PAGE);
      } else {
        this.#mapRuns(iova, start, segments, prot, frames);
      }
    } catch (e) {
      alloc.free(iova, iovaLen);
      throw e;
    }
    return new DmaSgMapping({
      segments,
      direction: dir,
      dmaAddress,
      dmaLength,
      iova,
      iovaSize: iovaLen,
      bounce: null,
      size: total,
    });
  }

  // The common case (no segment boundary) in one pass over the list: page
  // frames, IOVA layout and DMA-segment merging relative to the range
  // start; merging cannot depend on where the range lands.
  #mapSgFlat(
    rec: Live,
    segments: readonly SgSegment[],
    total: number,
    dir: DmaDirection,
  ): DmaSgMapping {
    const n = segments.length;
    let frames: Float64Array = this.#frames;
    const outAddr = this.#outScratch(n);
    const outLen = this.#outLen;
    const maxSeg = this.maxSegmentSize;
    let k = 0;
    let count = 0;
    let curLen = 0;
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      const pa = s.pa;
      const len = s.length;
      const off = pageOffset(pa);
      const at = k * PAGE;
      if (
        curLen !== 0 && off === 0 && maxSeg - curLen >= len &&
        outAddr[count - 1]! + outLen[count - 1]! === at
      ) {
        outLen[count - 1] = outLen[count - 1]! + len;
        curLen += len;
      } else {
        outAddr[count] = at + off;
        outLen[count] = len;
        count++;
        curLen = len;
      }
      if (pageOffset(off + len) !== 0) curLen = 0;
      const end = pa + len;
      const need = k + Math.ceil((off + len) / PAGE);
      if (need > frames.length) frames = this.#scratch(need);
      for (let f = pa - off; f < end; f += PAGE) frames[k++] = f;
    }
    const iovaLen = k * PAGE;
    const alloc = this.iova!;
    const iova = alloc.alloc(iovaLen, this.dmaLimit);
    const dmaAddress: number[] = new Array(count);
    const dmaLength: number[] = new Array(count);
    for (let i = 0; i < count; i++) {
      dmaAddress[i] = iova + outAddr[i]!;
      dmaLength[i] = outLen[i]!;
    }
    const debug = this.debug;
    try {
      if (debug !== null) {
        rec.dmaAddr = dmaAddress[0]!;
        debug.emit(
          debug.checkMap(rec, {
            inputs: segments,
            dmaAddress,
            dmaLength,
            count,
            maxSegmentSize: maxSeg,
            segmentBoundary: NO_BOUNDARY,
          }),
        );
      }
      this.domain!.mapPages(
        iova,
        frames.subarray(0, k),
        directionToProt(dir, this.#coherent),
        PAGE,
      );
    } catch (e) {
      alloc.free(iova, iovaLen);
      throw e;
    }
    return new DmaSgMapping({
      segments,
      direction: dir,
      dmaAddress,
      dmaLength,
      iova,
      iovaSize: iovaLen,
      bounce: null,
      size: total,
    });
  }

  // Map IOVA-contiguous runs separately (boundary gaps stay unmapped);
  // all or nothing.
  #mapRuns(
    iova: number,
    start: Float64Array,
    segments: readonly SgSegment[],
    prot: number,
    frames: Float64Array,
  ): void {
    const domain = this.domain!;
    const done: number[] = [];
    try {
      let k = 0;
      let runStart = 0;
      for (let i = 0; i < segments.length; i++) {
        if (k > 0 && start[i]! !== runStart + k * PAGE) {
          domain.mapPages(iova + runStart, frames.subarray(0, k), prot, PAGE);
          done.push(iova + runStart, k * PAGE);
          k = 0;
        }
        if (k === 0) runStart = start[i]!;
        const s = segments[i]!;
        const end = s.pa + s.length;
        for (let pa = s.pa - pageOffset(s.pa); pa < end; pa += PAGE) {
          frames[k++] = pa;
        }
      }
      domain.mapPages(iova + runStart, frames.subarray(0, k), prot, PAGE);
    } catch (e) {
      for (let j = 0; j < done.length; j += 2) {
        domain.unmap(done[j]!, done[j + 1]!);
      }
      throw e;
    }
  }

  #mapSgDirect(
    rec: Live,
    segments: readonly SgSegment[],
    total: number,
    dir: DmaDirection,
    skip: boolean,
  ): DmaSgMapping {
    const n = segments.length;
    const dmaAddress: number[] = new Array(n);
    const dmaLength: number[] = new Array(n);
    let bounce: number[] | null = null;
    for (let i = 0; i < n; i++) {
      const s = segments[i]!;
      dmaAddress[i] = s.pa;
      dmaLength[i] = s.length;
      if (s.pa + s.length > this.dmaLimit && bounce === null) {
        bounce = new Array<number>(n).fill(-1);
      }
    }
    const debug = this.debug;
    if (debug !== null) {
      rec.dmaAddr = dmaAddress[0]!;
      debug.emit(
        debug.checkMap(rec, {
          inputs: segments,
          dmaAddress,
          dmaLength,
          count: n,
          maxSegmentSize: this.maxSegmentSize,
          segmentBoundary: this.segmentBoundary,
        }),
      );
    }
    if (bounce !== null) {
      try {
        for (let i = 0; i < n; i++) {
          const s = segments[i]!;
          if (s.pa + s.length <= this.dmaLimit) continue;
          bounce[i] = this.#bounceAlloc(s.length, pageOffset(s.pa));
          dmaAddress[i] = bounce[i]!;
        }
      } catch (e) {
        for (let i = 0; i < n; i++) {
          if (bounce[i]! >= 0) {
            this.#bounceFree(bounce[i]!, segments[i]!.length);
          }
        }
        throw e;
      }
      for (let i = 0; i < n; i++) {
        if (bounce[i]! < 0) continue;
        this.#s.bounces++;
        const s = segments[i]!;
        if (dir !== DMA_FROM_DEVICE && !skip) {
          this.soc.memory.writeBytes(bounce[i]!, this.#cpuRead(s.pa, s.length));
          this.#s.bounceBytes += s.length;
        }
      }
      this.#bounced++;
    }
    return new DmaSgMapping({
      segments,
      direction: dir,
      dmaAddress,
      dmaLength,
      iova: -1,
      iovaSize: 0,
      bounce,
      size: total,
    });
  }

  /**
   * Undo {@linkcode DmaMapper.mapSg} (one unmap of the whole IOVA range).
   *
   * @param sg The mapping `mapSg` returned.
   * @param direction The direction, as mapped.
   * @param attrs Optional attributes (`skipCpuSync`).
   * @throws {IommuError} as {@linkcode DmaMapper.unmapSingle}.
   */
  unmapSg(
    sg: DmaSgMapping,
    direction: DmaDirection,
    attrs: DmaAttrs = {},
  ): void {
    this.#unmapCommon(
      "sg",
      sg.dmaAddress[0] ?? -1,
      sg.size,
      direction,
      sg.nents,
      null,
      attrs,
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
    this.#alive();
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new IommuError(
        "EINVAL",
        `coherent size ${String(size)} must be a positive safe integer`,
      );
    }
    const mem = this.soc.memory;
    const pages = Math.ceil(size / PAGE);
    const blocks: number[] = [];
    const domain = this.domain;
    let iova = -1;
    let buf: DmaBuffer;
    try {
      if (domain !== null) {
        let left = pages * PAGE;
        const sizes = domain.pageSizes;
        while (left > 0) {
          let got = -1;
          for (let s = sizes.length - 1; s >= 0 && got < 0; s--) {
            const chunk = sizes[s]!;
            if (chunk > left) continue;
            try {
              got = mem.frames.alloc(chunk);
            } catch (e) {
              if (s === 0) throw e; // the smallest page must succeed
            }
            if (got >= 0) left -= chunk;
          }
          blocks.push(got);
        }
        buf = DmaBuffer.adopt(mem, blocks, size);
        iova = this.iova!.alloc(pages * PAGE, this.dmaLimit);
        domain.mapPages(
          iova,
          buf.frames.subarray(0, pages),
          IOMMU_READ | IOMMU_WRITE | (this.#coherent ? IOMMU_CACHE : 0),
          PAGE,
        );
      } else {
        blocks.push(allocBelow(mem, pages * PAGE, this.dmaLimit));
        buf = DmaBuffer.adopt(mem, blocks, size);
      }
    } catch (e) {
      if (iova >= 0) this.iova!.free(iova, pages * PAGE);
      for (const b of blocks) mem.frames.free(b);
      throw e;
    }
    for (let i = 0; i < buf.frames.length; i++) {
      this.cpu.markUncached(buf.frames[i]!, PAGE);
    }
    const rec = new Live(
      "coherent",
      DMA_BIDIRECTIONAL,
      size,
      1,
      buf,
      MAP_ERR_NA,
      this.#stack(),
    );
    rec.iova = iova;
    rec.iovaSize = iova >= 0 ? pages * PAGE : 0;
    rec.dmaAddr = iova >= 0 ? iova : buf.pa;
    rec.end = rec.dmaAddr + size;
    this.#insert(rec);
    this.#s.coherentAllocs++;
    return { cpu: buf, dmaAddr: rec.dmaAddr, size };
  }

  /**
   * Free a coherent allocation.
   *
   * @param coherent What {@linkcode DmaMapper.allocCoherent} returned.
   * @throws {IommuError} as {@linkcode DmaMapper.unmapSingle}.
   */
  freeCoherent(coherent: DmaCoherent): void {
    this.#unmapCommon(
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
   * nothing is mapped there (debug off); a debug report's kind in
   * `"throw"` mode; `EPERM` after removal.
   */
  syncForCpu(dmaAddr: number, size: number, direction: DmaDirection): void {
    this.#sync(true, dmaAddr, size, direction, -1, null);
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
    this.#sync(false, dmaAddr, size, direction, -1, null);
  }

  /**
   * {@linkcode DmaMapper.syncForCpu} for every entry of an sg mapping.
   *
   * @param sg The mapping.
   * @param direction A valid direction.
   * @throws {IommuError} as {@linkcode DmaMapper.syncForCpu}.
   */
  syncSgForCpu(sg: DmaSgMapping, direction: DmaDirection): void {
    this.#sync(true, sg.dmaAddress[0] ?? -1, sg.size, direction, sg.nents, sg);
  }

  /**
   * {@linkcode DmaMapper.syncForDevice} for every entry of an sg mapping.
   *
   * @param sg The mapping.
   * @param direction A valid direction.
   * @throws {IommuError} as {@linkcode DmaMapper.syncForCpu}.
   */
  syncSgForDevice(sg: DmaSgMapping, direction: DmaDirection): void {
    this.#sync(false, sg.dmaAddress[0] ?? -1, sg.size, direction, sg.nents, sg);
  }

  #sync(
    forCpu: boolean,
    dmaAddr: number,
    size: number,
    direction: DmaDirection,
    nents: number,
    sg: DmaSgMapping | null,
  ): void {
    this.#alive();
    const dir = checkDirection(direction);
    if (!Number.isSafeInteger(dmaAddr) || dmaAddr < 0) {
      throw new IommuError(
        "EINVAL",
        `DMA address ${String(dmaAddr)} is not a non-negative safe integer`,
      );
    }
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new IommuError("EINVAL", `size ${String(size)} must be positive`);
    }
    const debug = this.debug;
    const needRec = debug !== null || this.#bounced > 0 || sg !== null;
    let rec: Live | undefined;
    if (needRec) {
      rec = sg !== null
        ? this.#lookup(dmaAddr, "sg", size, dir)
        : this.#containing(dmaAddr);
    }
    if (debug !== null) {
      debug.emit(
        debug.checkSync({ forCpu, dmaAddr, size, direction: dir, nents }, rec),
      );
      if (rec === undefined) return; // recorded
    }
    this.#s.syncs++;
    if (rec !== undefined) rec.deviceOwned = !forCpu;
    if (rec?.type === "sg") {
      this.#syncSg(forCpu, rec.sg!, dir);
      return;
    }
    if (rec !== undefined && rec.bounce >= 0) {
      const off = dmaAddr - rec.dmaAddr;
      const n = Math.min(size, rec.bounceSize - off);
      if (forCpu) this.#bounceOut(rec.cpu!, off, rec.bounce + off, n);
      else this.#bounceIn(rec.cpu!, off, rec.bounce + off, n);
      return;
    }
    if (this.#coherent) return;
    if (this.domain === null) {
      this.#checkRam(dmaAddr, size, "sync range");
      if (forCpu) this.cpu.takeFromDevice(dmaAddr, size, dir);
      else this.cpu.handToDevice(dmaAddr, size, dir);
      return;
    }
    // Translate page by page through the tables in RAM.
    const domain = this.domain;
    let done = 0;
    while (done < size) {
      const at = dmaAddr + done;
      const n = Math.min(PAGE - pageOffset(at), size - done);
      const pa = domain.iovaToPhys(at);
      if (pa < 0) {
        throw new IommuError(
          "ENOENT",
          `sync of ${hex(at)}: nothing is mapped there for ${this.master.name}`,
        );
      }
      if (forCpu) this.cpu.takeFromDevice(pa, n, dir);
      else this.cpu.handToDevice(pa, n, dir);
      done += n;
    }
  }

  #syncSg(forCpu: boolean, sg: DmaSgMapping, dir: DmaDirection): void {
    for (let i = 0; i < sg.nents; i++) {
      const pa = sg.segments[i]!.pa;
      const len = sg.segments[i]!.length;
      const slot = sg.bounce === null ? -1 : sg.bounce[i]!;
      if (slot >= 0) {
        if (forCpu) {
          this.#cpuWrite(pa, this.soc.memory.readBytes(slot, len));
        } else {
          this.soc.memory.writeBytes(slot, this.#cpuRead(pa, len));
        }
        this.#s.bounceBytes += len;
        continue;
      }
      if (this.#coherent) continue;
      if (forCpu) this.cpu.takeFromDevice(pa, len, dir);
      else this.cpu.handToDevice(pa, len, dir);
    }
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
    this.#alive();
    return this.#flush();
  }

  #flush(): number {
    const q = this.#queue;
    if (q === null || (q.length === 0 && this.#gather.isEmpty)) return 0;
    this.domain!.flushAll();
    const frames = this.soc.memory.frames;
    for (const pa of this.#gather.freeList) frames.free(pa);
    this.#gather.reset();
    const alloc = this.iova!;
    const n = q.drain((iova, size) => alloc.free(iova, size));
    this.#s.flushes++;
    return n;
  }

  /**
   * Advance the simulated clock; in lazy mode an expired flush timer flushes.
   *
   * @param ms Milliseconds, non-negative.
   * @returns Queued unmaps released by a timer flush (0 when none fired).
   * @throws {IommuError} `EINVAL` for a negative time; `EPERM` after removal.
   */
  advanceTime(ms: number): number {
    this.#alive();
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new IommuError("EINVAL", `time step ${String(ms)} ms must be >= 0`);
    }
    const q = this.#queue;
    if (q === null) return 0;
    return q.advance(ms) ? this.#flush() : 0;
  }

  // ----------------------------------------------------------- reporting

  /** Counters and state. @returns A snapshot. */
  stats(): DmaMapperStats {
    let live = 0;
    for (const head of this.#live.values()) {
      for (let x: Live | null = head; x !== null; x = x.next) live++;
    }
    return {
      mode: this.domain === null ? "direct" : "iommu",
      policy: this.policy,
      liveMappings: live,
      ...this.#s,
      pendingUnmaps: this.#queue?.length ?? 0,
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
    for (const head of this.#live.values()) {
      for (let x: Live | null = head; x !== null; x = x.next) {
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
   * `EPERM` when removed already.
   */
  removeMaster(options: { force?: boolean } = {}): DmaDebugReport[] {
    this.#alive();
    const live: Live[] = [];
    for (const head of this.#live.values()) {
      for (let x: Live | null = head; x !== null; x = x.next) live.push(x);
    }
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
    for (const rec of live) this.#teardown(rec, false);
    this.#flush();
    const domain = this.domain;
    if (domain !== null) {
      for (const u of this.#units) domain.detach(u.unit, u.streamIds);
      domain.free();
    }
    for (const p of this.#ports) p.observe(null);
    if (this.#tracksOwnership) this.cpu.removeAccessObserver(this.#checkCpu);
    if (this.#pool >= 0) {
      this.soc.memory.frames.free(this.#pool);
      this.#pool = -1;
    }
    mappers.delete(this.master);
    this.#disposed = true;
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
