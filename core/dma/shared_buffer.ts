/**
 * Shared buffers in the style of dma-buf: one set of frames exported once
 * and attached by several masters, each mapping it in its own domain and
 * IOVA space, with reference counts, clean teardown, and CPU access
 * brackets that drive the syncs of every attached non-coherent master.
 *
 * @module
 */
import { hex, IommuError, type SgSegment } from "../mod.ts";
import type { CpuCache } from "./cpu_cache.ts";
import { checkDirection, type DmaDirection } from "./direction.ts";
import type { DmaBuffer } from "./dma_buffer.ts";
import type { DmaMapper } from "./mapper.ts";
import type { DmaSgMapping } from "./sg_mapping.ts";
import { NO_BOUNDARY, PAGE, pageOffset } from "./page_math.ts";

/** Options of {@linkcode SharedDmaBuffer.export}. */
export interface SharedDmaBufferOptions {
  /** Free the buffer when the last reference drops (default: when the buffer owns its frames). */
  freeOnRelease?: boolean;
  /** Name for messages. */
  name?: string;
}

/**
 * One master's attachment to a shared buffer: its own mapping (own domain,
 * own IOVA), made with {@linkcode DmaBufAttachment.map}.
 */
export class DmaBufAttachment {
  /** The buffer. */
  readonly shared: SharedDmaBuffer;
  /** The importing master's mapper. */
  readonly mapper: DmaMapper;
  #sg: DmaSgMapping | null = null;
  #direction: DmaDirection = 0;
  #detached = false;
  #onDetach: (a: DmaBufAttachment) => void;

  /**
   * Made by {@linkcode SharedDmaBuffer.attach}.
   *
   * @param shared The buffer.
   * @param mapper The importer.
   * @param onDetach Called once when detached.
   */
  constructor(
    shared: SharedDmaBuffer,
    mapper: DmaMapper,
    onDetach: (a: DmaBufAttachment) => void,
  ) {
    this.shared = shared;
    this.mapper = mapper;
    this.#onDetach = onDetach;
  }

  /**
   * The current mapping, or null when unmapped or when the importer's mapper
   * was removed ({@linkcode DmaMapper.removeMaster} tears every mapping of
   * the master down).
   */
  get sg(): DmaSgMapping | null {
    return this.mapper.removed ? null : this.#sg;
  }

  /** Direction of the current mapping. */
  get direction(): DmaDirection {
    return this.#direction;
  }

  /** True once detached. */
  get detached(): boolean {
    return this.#detached;
  }

  /**
   * Map the buffer for this master. The list handed to
   * {@linkcode DmaMapper.mapSg} is cut to the importer's limits: no entry is
   * longer than its `maxSegmentSize` or crosses its `segmentBoundary`, and
   * entries are cut on page boundaries where the limits allow it (a max
   * segment size of at least 4 KiB), so over an IOMMU the buffer still gets
   * one contiguous IOVA range.
   *
   * @param direction A valid direction.
   * @returns The mapping: its DMA segments are `dmaAddress[i]` /
   * `dmaLength[i]`; over an IOMMU with a max segment size of at least 4 KiB,
   * `dmaAddress[0]` is where the device sees the whole buffer.
   * @throws {IommuError} `EBUSY` when mapped already; `EPERM` when detached;
   * whatever {@linkcode DmaMapper.mapSg} throws (`EPERM` after the
   * importer's mapper was removed).
   */
  map(direction: DmaDirection): DmaSgMapping {
    this.#live();
    const dir = checkDirection(direction);
    if (this.sg !== null) {
      throw new IommuError(
        "EBUSY",
        `${this.shared.name} is already mapped for ${this.mapper.master.name}`,
      );
    }
    // Several importers may map the same lines; the buffer's CPU access
    // brackets, not the mappers, keep the caches straight.
    const m = this.mapper;
    const list = cutSegments(
      this.shared.segments(),
      this.shared.buffer.offset,
      m.maxSegmentSize,
      m.segmentBoundary,
      m.domain !== null,
    );
    this.#sg = m.mapSg(list, dir, { cpuCacheClean: true });
    this.#direction = dir;
    return this.#sg;
  }

  /**
   * Undo {@linkcode DmaBufAttachment.map}.
   *
   * @throws {IommuError} `ENOENT` when not mapped; `EPERM` when detached;
   * whatever {@linkcode DmaMapper.unmapSg} throws.
   */
  unmap(): void {
    this.#live();
    if (this.#sg === null) {
      throw new IommuError(
        "ENOENT",
        `${this.shared.name} is not mapped for ${this.mapper.master.name}`,
      );
    }
    this.mapper.unmapSg(this.#sg, this.#direction);
    this.#sg = null;
  }

  /**
   * Unmap if mapped, then drop this attachment's reference. After the
   * importer's mapper was removed its mapping is gone already: the
   * attachment just lets go of it.
   *
   * @throws {IommuError} `EPERM` when detached already; whatever
   * {@linkcode DmaMapper.unmapSg} throws (nothing changes then).
   */
  detach(): void {
    this.#live();
    if (this.sg !== null) this.unmap();
    this.#sg = null;
    this.#detached = true;
    this.#onDetach(this);
  }

  #live(): void {
    if (this.#detached) {
      throw new IommuError(
        "EPERM",
        `the attachment of ${this.mapper.master.name} to ${this.shared.name} was detached`,
      );
    }
  }
}

/**
 * A buffer exported once and shared by several masters. The exporter holds
 * one reference; every attachment holds one more; the frames are freed when
 * the last reference drops.
 *
 * @example Two importers, one buffer
 * ```ts
 * import { createSoc } from "../mod.ts";
 * import { createDmaMapper, DMA_FROM_DEVICE, DMA_TO_DEVICE, SharedDmaBuffer } from "./mod.ts";
 * const soc = createSoc({ memory: { size: 16 << 20 } });
 * const cam = createDmaMapper(soc, soc.addMaster({ name: "cam", ports: [{}] }));
 * const gpu = createDmaMapper(soc, soc.addMaster({ name: "gpu", ports: [{}] }));
 * const shared = SharedDmaBuffer.export(cam.cpu, cam.cpu.allocBuffer(8192));
 * const a = shared.attach(cam);
 * const b = shared.attach(gpu);
 * const w = a.map(DMA_FROM_DEVICE);
 * b.map(DMA_TO_DEVICE);
 * cam.port().writeBytes(w.dmaAddress[0]!, new Uint8Array([42]));
 * shared.beginCpuAccess(DMA_FROM_DEVICE);
 * if (shared.cpu.readBuffer(shared.buffer, 0, 1)[0] !== 42) throw new Error("stale");
 * shared.endCpuAccess(DMA_FROM_DEVICE);
 * a.detach();
 * b.detach();
 * shared.put();
 * ```
 */
export class SharedDmaBuffer {
  /** The frames shared. */
  readonly buffer: DmaBuffer;
  /** The CPU cache of the system (all importers must share it). */
  readonly cpu: CpuCache;
  /** Name for messages. */
  readonly name: string;
  #refs = 1;
  #attachments = new Set<DmaBufAttachment>();
  #freeOnRelease: boolean;
  #inCpuAccess = false;

  private constructor(
    cpu: CpuCache,
    buffer: DmaBuffer,
    options: SharedDmaBufferOptions,
  ) {
    this.cpu = cpu;
    this.buffer = buffer;
    this.name = options.name ?? `shared buffer ${hex(buffer.pa)}`;
    this.#freeOnRelease = options.freeOnRelease ?? buffer.owned;
  }

  /**
   * Export a buffer; the caller holds the first reference.
   *
   * @param cpu The system's CPU cache.
   * @param buffer The frames to share.
   * @param options Naming and release behaviour.
   * @returns The shared buffer.
   * @throws {IommuError} `EINVAL` for a freed buffer or `freeOnRelease` on a
   * buffer that owns no frames.
   */
  static export(
    cpu: CpuCache,
    buffer: DmaBuffer,
    options: SharedDmaBufferOptions = {},
  ): SharedDmaBuffer {
    if (buffer.freed) {
      throw new IommuError("EINVAL", `buffer at ${hex(buffer.pa)} was freed`);
    }
    if (options.freeOnRelease === true && !buffer.owned) {
      throw new IommuError(
        "EINVAL",
        "freeOnRelease needs a buffer that owns its frames",
      );
    }
    return new SharedDmaBuffer(cpu, buffer, options);
  }

  /** References held (exporter, importers, extra gets). */
  get refs(): number {
    return this.#refs;
  }

  /** True once the last reference dropped. */
  get released(): boolean {
    return this.#refs === 0;
  }

  /** Live attachments. @returns A copy of the list. */
  attachments(): DmaBufAttachment[] {
    return [...this.#attachments];
  }

  /** The buffer as scatter-gather entries (physically adjacent pages merged). @returns New entries. */
  segments(): SgSegment[] {
    const out: SgSegment[] = [];
    const b = this.buffer;
    let done = 0;
    while (done < b.size) {
      const pa = b.paAt(done);
      const n = Math.min(4096 - (pa % 4096), b.size - done);
      const last = out[out.length - 1];
      if (last !== undefined && last.pa + last.length === pa) last.length += n;
      else out.push({ pa, length: n });
      done += n;
    }
    return out;
  }

  #alive(): void {
    if (this.#refs === 0) {
      throw new IommuError("EPERM", `${this.name} was released`);
    }
  }

  /**
   * Take one more reference.
   *
   * @returns This buffer.
   * @throws {IommuError} `EPERM` after release.
   */
  get(): this {
    this.#alive();
    this.#refs++;
    return this;
  }

  /**
   * Drop one reference; the last one frees the frames (when configured).
   *
   * @throws {IommuError} `EPERM` after release.
   */
  put(): void {
    this.#alive();
    this.#refs--;
    if (this.#refs === 0 && this.#freeOnRelease) this.buffer.free();
  }

  /**
   * Attach a master (takes a reference).
   *
   * @param mapper The importer's mapper.
   * @returns The attachment.
   * @throws {IommuError} `EPERM` after release or for a removed mapper;
   * `EINVAL` for a mapper of another system; `EEXIST` when that master is
   * attached already.
   */
  attach(mapper: DmaMapper): DmaBufAttachment {
    this.#alive();
    if (mapper.removed) {
      throw new IommuError(
        "EPERM",
        `the mapper of ${mapper.master.name} was removed`,
      );
    }
    if (mapper.cpu !== this.cpu) {
      throw new IommuError(
        "EINVAL",
        `${mapper.master.name} belongs to another system than ${this.name}`,
      );
    }
    for (const a of this.#attachments) {
      if (a.mapper === mapper) {
        throw new IommuError(
          "EEXIST",
          `${mapper.master.name} is already attached to ${this.name}`,
        );
      }
    }
    const a = new DmaBufAttachment(this, mapper, (x) => {
      this.#attachments.delete(x);
      this.put();
    });
    this.#attachments.add(a);
    this.#refs++;
    return a;
  }

  /**
   * The CPU is about to access the buffer: every mapped attachment of a
   * non-coherent master syncs for the CPU (with its own direction).
   * Attachments whose mapper was removed have no mapping and are skipped.
   *
   * @param direction What the CPU access is for (a valid direction).
   * @throws {IommuError} `EINVAL` for a bad direction; `EBUSY` when a CPU
   * access is open already; `EPERM` after release.
   */
  beginCpuAccess(direction: DmaDirection): void {
    this.#alive();
    checkDirection(direction);
    if (this.#inCpuAccess) {
      throw new IommuError("EBUSY", `${this.name} is already in CPU access`);
    }
    for (const a of this.#attachments) {
      const sg = a.sg;
      if (sg !== null) a.mapper.syncSgForCpu(sg, a.direction);
    }
    this.#inCpuAccess = true;
  }

  /**
   * The CPU is done: every mapped attachment syncs for its device again
   * (attachments whose mapper was removed are skipped).
   *
   * @param direction What the CPU access was for.
   * @throws {IommuError} `EINVAL` for a bad direction; `EPERM` when no CPU
   * access is open or after release.
   */
  endCpuAccess(direction: DmaDirection): void {
    this.#alive();
    checkDirection(direction);
    if (!this.#inCpuAccess) {
      throw new IommuError("EPERM", `${this.name} is not in CPU access`);
    }
    for (const a of this.#attachments) {
      const sg = a.sg;
      if (sg !== null) a.mapper.syncSgForDevice(sg, a.direction);
    }
    this.#inCpuAccess = false;
  }

  /** Whether a CPU access bracket is open. */
  get inCpuAccess(): boolean {
    return this.#inCpuAccess;
  }
}

/**
 * Cut a buffer's scatter list to an importer's limits: every entry at most
 * `maxSeg` bytes and inside one `boundary` window. With `maxSeg` of a page
 * or more, cuts fall on page boundaries, so an IOMMU lays the pieces out
 * back to back. Boundary windows are counted in physical addresses for a
 * direct importer (its DMA addresses are physical) and from the buffer's
 * first page for an IOMMU importer (the IOVA layout starts there).
 *
 * @param runs The buffer's physically contiguous runs, in order.
 * @param offset The buffer's offset into its first page, in bytes.
 * @param maxSeg The importer's max segment size, in bytes (at least 1).
 * @param boundary The importer's segment boundary, in bytes (a power of two
 * of at least a page, or `NO_BOUNDARY`).
 * @param iommu Whether the importer maps through an IOMMU.
 * @returns New entries covering the same bytes in the same order.
 */
function cutSegments(
  runs: readonly SgSegment[],
  offset: number,
  maxSeg: number,
  boundary: number,
  iommu: boolean,
): SgSegment[] {
  const out: SgSegment[] = [];
  let at = offset; // IOVA offset of `pa` from the layout's first page
  for (const r of runs) {
    const end = r.pa + r.length;
    let pa = r.pa;
    while (pa < end) {
      let cut = pa + maxSeg;
      if (maxSeg >= PAGE) cut -= pageOffset(cut);
      if (boundary !== NO_BOUNDARY) {
        const from = iommu ? at : pa;
        cut = Math.min(cut, pa + boundary - (from % boundary));
      }
      if (cut > end) cut = end;
      out.push({ pa, length: cut - pa });
      at += cut - pa;
      pa = cut;
    }
  }
  return out;
}
