/**
 * The CPU side of DMA: a write-back data cache in front of simulated RAM.
 * Non-coherent masters' DMA goes straight to RAM, so the CPU sees stale
 * cached lines, and devices miss dirty ones, unless the DMA API cleans and
 * invalidates at the right moments. One cache per {@linkcode Soc}.
 *
 * @module
 */
import {
  checkAddress,
  checkRange,
  describeValue,
  hex,
  IommuError,
  type PhysicalMemory,
  type Soc,
} from "../mod.ts";
import {
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDirection,
} from "./direction.ts";
import {
  DMA_PAGE_SIZE,
  DmaBuffer,
  type DmaBufferAllocOptions,
} from "./dma_buffer.ts";

/** Bytes in one cache line. */
export const CACHE_LINE_BYTES = 64;

/**
 * Which architecture's cache maintenance the DMA API performs when a buffer
 * is handed to a device: `"arm64"` always cleans (since 2022); `"arm32"`
 * invalidates from-device buffers and cleans the others.
 */
export type CacheArch = "arm64" | "arm32";

/** Options of a {@linkcode CpuCache}. */
export interface CpuCacheOptions {
  /** Capacity in lines (fully associative); default 512 (32 KiB). */
  lines?: number;
  /** Maintenance flavour; default `"arm64"`. */
  arch?: CacheArch;
  /**
   * Probability (0 to 1) that each line of a buffer handed to a
   * non-coherent device is speculatively pulled into the cache right after
   * the hand-off (while the device owns it); default 0.
   */
  speculation?: number;
  /** Seed of the deterministic generator behind speculation and eviction; default 1. */
  seed?: number;
}

/**
 * Called before a CPU access (the DMA debug ownership check uses it); it
 * may throw to refuse the access, which then does nothing.
 */
export type CpuAccessObserver = (
  pa: number,
  size: number,
  write: boolean,
) => void;

/** Counters of a {@linkcode CpuCache}, as a plain object. */
export interface CpuCacheCounters {
  /** Lines looked up by CPU reads and writes. */
  accesses: number;
  /** Lookups that found the line. */
  hits: number;
  /** Lines filled from RAM on a miss. */
  fills: number;
  /** Lines pulled in speculatively. */
  speculativeFills: number;
  /** Dirty lines written back to RAM (by clean or eviction). */
  writeBacks: number;
  /** Lines displaced to make room. */
  evictions: number;
  /** Lines dropped by invalidation (dirty data in them is lost). */
  invalidated: number;
  /** CPU accesses to uncached pages (coherent memory), which bypass the cache. */
  uncachedAccesses: number;
}

/**
 * A fully associative write-back, write-allocate data cache of 64-byte
 * lines over a {@linkcode PhysicalMemory}. Pages marked uncached (coherent
 * allocations, buffers of coherent masters) bypass it. Deterministic:
 * eviction victims and speculative fills come from a seeded generator.
 *
 * @example A dirty line the device does not see
 * ```ts
 * import { CpuCache } from "./cpu_cache.ts";
 * import { PhysicalMemory } from "../mod.ts";
 * const ram = new PhysicalMemory({ size: 1 << 20 });
 * const cpu = new CpuCache(ram);
 * cpu.write(0x1000, new Uint8Array([7]));
 * if (ram.read8(0x1000) !== 0) throw new Error("write-back cache wrote through");
 * cpu.clean(0x1000, 64);
 * if (ram.read8(0x1000) !== 7) throw new Error("clean lost the line");
 * ```
 */
export class CpuCache {
  /** The RAM behind the cache. */
  readonly memory: PhysicalMemory;
  /** Capacity in lines. */
  readonly capacity: number;
  /** Maintenance flavour used by the DMA API. */
  readonly arch: CacheArch;
  #map = new Map<number, number>(); // line index -> slot
  #tag: Float64Array;
  #dirty: Uint8Array;
  #data: Uint8Array;
  #freeSlots: Int32Array;
  #freeCount: number;
  #rng: number;
  #speculation: number;
  // Uncached-page counts by page index from the RAM base: a dense array
  // for RAM up to 4 GiB (O(1) on the map path), a Map beyond.
  #uncached = new Map<number, number>();
  #dense: Uint32Array | null = null;
  #uncachedPages = 0;
  #observers: CpuAccessObserver[] = [];
  #c: CpuCacheCounters = {
    accesses: 0,
    hits: 0,
    fills: 0,
    speculativeFills: 0,
    writeBacks: 0,
    evictions: 0,
    invalidated: 0,
    uncachedAccesses: 0,
  };

  /**
   * Create an empty cache in front of `memory`.
   *
   * @param memory The RAM.
   * @param options Size, flavour, speculation and seed.
   * @throws {IommuError} `EINVAL` for a capacity that is not a positive
   * integer up to 2^20, an unknown arch, a speculation outside 0..1 or a
   * seed that is not a safe integer.
   */
  constructor(memory: PhysicalMemory, options: CpuCacheOptions = {}) {
    const lines = options.lines ?? 512;
    if (!Number.isInteger(lines) || lines < 1 || lines > 2 ** 20) {
      throw new IommuError(
        "EINVAL",
        `cache capacity ${String(lines)} must be 1 to 2^20 lines`,
      );
    }
    const arch = options.arch ?? "arm64";
    if (arch !== "arm64" && arch !== "arm32") {
      throw new IommuError("EINVAL", `unknown cache arch ${String(arch)}`);
    }
    const seed = options.seed ?? 1;
    if (!Number.isSafeInteger(seed)) {
      throw new IommuError(
        "EINVAL",
        `seed ${String(seed)} is not a safe integer`,
      );
    }
    this.memory = memory;
    this.capacity = lines;
    this.arch = arch;
    this.#speculation = 0;
    this.setSpeculation(options.speculation ?? 0);
    this.#tag = new Float64Array(lines).fill(-1);
    this.#dirty = new Uint8Array(lines);
    this.#data = new Uint8Array(lines * CACHE_LINE_BYTES);
    this.#freeSlots = new Int32Array(lines);
    for (let i = 0; i < lines; i++) this.#freeSlots[i] = lines - 1 - i;
    this.#freeCount = lines;
    this.#rng = (seed % 0x7fffffff) || 1;
  }

  /**
   * Change the speculation probability (see {@linkcode CpuCacheOptions.speculation}).
   *
   * @param probability 0 to 1.
   * @throws {IommuError} `EINVAL` outside 0..1.
   */
  setSpeculation(probability: number): void {
    if (!(probability >= 0 && probability <= 1)) {
      throw new IommuError(
        "EINVAL",
        `speculation probability ${String(probability)} is not within 0..1`,
      );
    }
    this.#speculation = probability;
  }

  // Deterministic xorshift32 in [0, 1).
  #random(): number {
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0 || 1;
    return this.#rng / 4294967296;
  }

  /**
   * Watch CPU reads and writes (costs nothing while none is installed).
   *
   * @param observer Called before each access with its range.
   */
  addAccessObserver(observer: CpuAccessObserver): void {
    this.#observers = [...this.#observers, observer];
  }

  /**
   * Stop watching.
   *
   * @param observer An observer given to {@linkcode CpuCache.addAccessObserver}.
   */
  removeAccessObserver(observer: CpuAccessObserver): void {
    this.#observers = this.#observers.filter((o) => o !== observer);
  }

  #notify(pa: number, size: number, write: boolean): void {
    for (const o of this.#observers) o(pa, size, write);
  }

  #isUncached(pa: number): boolean {
    if (this.#uncachedPages === 0) return false;
    const p = Math.floor((pa - this.memory.base) / DMA_PAGE_SIZE);
    return this.#dense !== null ? this.#dense[p] !== 0 : this.#uncached.has(p);
  }

  #check(pa: number, size: number): void {
    checkRange(pa, size, "CPU access");
    if (!this.memory.contains(pa, size)) {
      throw new IommuError(
        "ERANGE",
        `CPU access ${hex(pa)}+${hex(size)} is outside RAM`,
      );
    }
  }

  // Slot for `line`, filling it from RAM on a miss.
  #slot(line: number, speculative: boolean): number {
    const hit = this.#map.get(line);
    if (hit !== undefined) return hit;
    let slot: number;
    if (this.#freeCount > 0) {
      slot = this.#freeSlots[--this.#freeCount]!;
    } else {
      slot = Math.floor(this.#random() * this.capacity);
      this.#drop(slot, true);
      this.#c.evictions++;
      slot = this.#freeSlots[--this.#freeCount]!;
    }
    const at = slot * CACHE_LINE_BYTES;
    this.memory.readInto(
      line * CACHE_LINE_BYTES,
      this.#data.subarray(at, at + CACHE_LINE_BYTES),
    );
    this.#tag[slot] = line;
    this.#dirty[slot] = 0;
    this.#map.set(line, slot);
    if (speculative) this.#c.speculativeFills++;
    else this.#c.fills++;
    return slot;
  }

  // Remove `slot`, writing it back first when asked and dirty.
  #drop(slot: number, writeBack: boolean): void {
    const line = this.#tag[slot]!;
    if (line < 0) return;
    if (writeBack && this.#dirty[slot] === 1) this.#writeBack(slot);
    this.#map.delete(line);
    this.#tag[slot] = -1;
    this.#dirty[slot] = 0;
    this.#freeSlots[this.#freeCount++] = slot;
  }

  #writeBack(slot: number): void {
    const at = slot * CACHE_LINE_BYTES;
    this.memory.writeBytes(
      this.#tag[slot]! * CACHE_LINE_BYTES,
      this.#data.subarray(at, at + CACHE_LINE_BYTES),
    );
    this.#dirty[slot] = 0;
    this.#c.writeBacks++;
  }

  /**
   * CPU load of `into.length` bytes from `pa`, through the cache.
   *
   * @param pa First physical byte.
   * @param into Destination.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a range outside RAM;
   * `EINVAL` when the bytes are not a `Uint8Array`.
   */
  readInto(pa: number, into: Uint8Array): void {
    if (!(into instanceof Uint8Array)) badBytes("CPU read buffer", into);
    if (into.length === 0) return;
    this.#check(pa, into.length);
    if (this.#observers.length !== 0) this.#notify(pa, into.length, false);
    let done = 0;
    while (done < into.length) {
      const at = pa + done;
      const inLine = at % CACHE_LINE_BYTES;
      const n = Math.min(CACHE_LINE_BYTES - inLine, into.length - done);
      if (this.#isUncached(at)) {
        this.memory.readInto(at, into.subarray(done, done + n));
        this.#c.uncachedAccesses++;
      } else {
        const line = (at - inLine) / CACHE_LINE_BYTES;
        this.#c.accesses++;
        if (this.#map.has(line)) this.#c.hits++;
        const base = this.#slot(line, false) * CACHE_LINE_BYTES + inLine;
        into.set(this.#data.subarray(base, base + n), done);
      }
      done += n;
    }
  }

  /**
   * CPU load into a new array.
   *
   * @param pa First physical byte.
   * @param length Bytes.
   * @returns What the CPU sees.
   * @throws {IommuError} as {@linkcode CpuCache.readInto}.
   */
  read(pa: number, length: number): Uint8Array {
    checkAddress(length, "read length");
    const out = new Uint8Array(length);
    this.readInto(pa, out);
    return out;
  }

  /**
   * CPU store of `data` at `pa`: allocates lines and leaves them dirty.
   *
   * @param pa First physical byte.
   * @param data Bytes.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a range outside RAM;
   * `EINVAL` when the bytes are not a `Uint8Array`.
   */
  write(pa: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) badBytes("CPU write data", data);
    if (data.length === 0) return;
    this.#check(pa, data.length);
    if (this.#observers.length !== 0) this.#notify(pa, data.length, true);
    let done = 0;
    while (done < data.length) {
      const at = pa + done;
      const inLine = at % CACHE_LINE_BYTES;
      const n = Math.min(CACHE_LINE_BYTES - inLine, data.length - done);
      if (this.#isUncached(at)) {
        this.memory.writeBytes(at, data.subarray(done, done + n));
        this.#c.uncachedAccesses++;
      } else {
        const line = (at - inLine) / CACHE_LINE_BYTES;
        this.#c.accesses++;
        if (this.#map.has(line)) this.#c.hits++;
        const slot = this.#slot(line, false);
        this.#data.set(
          data.subarray(done, done + n),
          slot * CACHE_LINE_BYTES + inLine,
        );
        this.#dirty[slot] = 1;
      }
      done += n;
    }
  }

  /**
   * CPU load of part of a buffer (follows its frames).
   *
   * @param buffer The buffer.
   * @param offset Bytes from its start; default 0.
   * @param length Bytes; default to its end.
   * @returns What the CPU sees.
   * @throws {IommuError} `ERANGE` outside the buffer; `EINVAL` when
   * `buffer` is not a `DmaBuffer`.
   */
  readBuffer(
    buffer: DmaBuffer,
    offset = 0,
    length: number = checkBuffer(buffer).size - offset,
  ): Uint8Array {
    checkBuffer(buffer);
    checkRange(offset, length, "buffer read", buffer.size);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const pa = buffer.paAt(offset + done);
      const n = Math.min(DMA_PAGE_SIZE - (pa % DMA_PAGE_SIZE), length - done);
      this.readInto(pa, out.subarray(done, done + n));
      done += n;
    }
    return out;
  }

  /**
   * CPU store into part of a buffer (follows its frames).
   *
   * @param buffer The buffer.
   * @param data Bytes.
   * @param offset Bytes from its start; default 0.
   * @throws {IommuError} `ERANGE` when the data passes the buffer's end;
   * `EINVAL` when `buffer` is not a `DmaBuffer` or `data` not a
   * `Uint8Array`.
   */
  writeBuffer(buffer: DmaBuffer, data: Uint8Array, offset = 0): void {
    checkBuffer(buffer);
    if (!(data instanceof Uint8Array)) badBytes("CPU write data", data);
    if (data.length === 0) return;
    checkRange(offset, data.length, "buffer write", buffer.size);
    let done = 0;
    while (done < data.length) {
      const pa = buffer.paAt(offset + done);
      const n = Math.min(
        DMA_PAGE_SIZE - (pa % DMA_PAGE_SIZE),
        data.length - done,
      );
      this.write(pa, data.subarray(done, done + n));
      done += n;
    }
  }

  // Visit the cached lines of [pa, pa+size), cheaply when few are cached.
  #each(pa: number, size: number, op: 0 | 1 | 2): number {
    if (this.#map.size === 0 || size <= 0) return 0;
    const first = Math.floor(pa / CACHE_LINE_BYTES);
    const last = Math.floor((pa + size - 1) / CACHE_LINE_BYTES);
    let n = 0;
    if (last - first + 1 > this.capacity) {
      for (let slot = 0; slot < this.capacity; slot++) {
        const line = this.#tag[slot]!;
        if (line >= first && line <= last) n += this.#apply(slot, op);
      }
    } else {
      for (let line = first; line <= last; line++) {
        const slot = this.#map.get(line);
        if (slot !== undefined) n += this.#apply(slot, op);
      }
    }
    return n;
  }

  // op 0 clean, 1 invalidate (discard), 2 clean + invalidate.
  #apply(slot: number, op: 0 | 1 | 2): number {
    if (op === 0) {
      if (this.#dirty[slot] !== 1) return 0;
      this.#writeBack(slot);
      return 1;
    }
    this.#drop(slot, op === 2);
    this.#c.invalidated++;
    return 1;
  }

  /**
   * Write dirty lines of `[pa, pa + size)` back to RAM; they stay cached, clean.
   *
   * @param pa First byte (any alignment: whole lines are affected).
   * @param size Bytes.
   * @returns Lines written back.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range.
   */
  clean(pa: number, size: number): number {
    checkRange(pa, size, "clean range");
    return this.#each(pa, size, 0);
  }

  /**
   * Drop the lines of `[pa, pa + size)` without writing them back: dirty
   * data in them is lost, including bytes outside the range that share a
   * line with it.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @returns Lines dropped.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range.
   */
  invalidate(pa: number, size: number): number {
    checkRange(pa, size, "invalidate range");
    return this.#each(pa, size, 1);
  }

  /**
   * Write back, then drop, the lines of `[pa, pa + size)`.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @returns Lines dropped.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range.
   */
  cleanInvalidate(pa: number, size: number): number {
    checkRange(pa, size, "clean+invalidate range");
    return this.#each(pa, size, 2);
  }

  /** Write every dirty line back (as a burst of natural evictions would). @returns Lines written. */
  writeBackAll(): number {
    let n = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.#tag[slot]! >= 0 && this.#dirty[slot] === 1) {
        this.#writeBack(slot);
        n++;
      }
    }
    return n;
  }

  /**
   * Pull clean lines of `[pa, pa + size)` into the cache from RAM, as a
   * prefetcher may at any time; lines already cached and uncached pages are
   * left alone.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @param probability Chance for each line, 0 to 1; default 1.
   * @returns Lines filled.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range or probability.
   */
  speculate(pa: number, size: number, probability = 1): number {
    this.#check(pa, size);
    if (!(probability >= 0 && probability <= 1)) {
      throw new IommuError(
        "EINVAL",
        `speculation probability ${String(probability)} is not within 0..1`,
      );
    }
    if (probability === 0) return 0;
    const first = Math.floor(pa / CACHE_LINE_BYTES);
    const last = Math.floor((pa + size - 1) / CACHE_LINE_BYTES);
    let n = 0;
    for (let line = first; line <= last; line++) {
      if (this.#map.has(line)) continue;
      if (this.#isUncached(line * CACHE_LINE_BYTES)) continue;
      if (probability < 1 && this.#random() >= probability) continue;
      this.#slot(line, true);
      n++;
    }
    return n;
  }

  /**
   * Cache maintenance before a device gets `[pa, pa + size)` (map and sync
   * for device), then the configured speculation while the device owns it.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @param direction The mapping's direction.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range.
   */
  handToDevice(pa: number, size: number, direction: DmaDirection): void {
    if (this.arch === "arm32" && direction === DMA_FROM_DEVICE) {
      this.invalidate(pa, size);
    } else {
      this.clean(pa, size);
    }
    if (this.#speculation > 0) this.speculate(pa, size, this.#speculation);
  }

  /**
   * Cache maintenance before the CPU takes `[pa, pa + size)` back (unmap and
   * sync for CPU): invalidate unless the device only read it.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @param direction The mapping's direction.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range.
   */
  takeFromDevice(pa: number, size: number, direction: DmaDirection): void {
    if (direction !== DMA_TO_DEVICE) this.invalidate(pa, size);
  }

  /**
   * Make CPU accesses to the 4 KiB pages of `[pa, pa + size)` bypass the
   * cache (coherent memory); counted, so nested marks need as many unmarks.
   * Lines already cached anywhere in those pages are written back and
   * dropped first: a CPU access to any byte of a marked page bypasses the
   * cache, so a dirty line left outside `[pa, pa + size)` would hide the
   * CPU's own data until the unmark brought it back over newer stores.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range or one
   * outside RAM.
   */
  markUncached(pa: number, size: number): void {
    this.#check(pa, size);
    const base = this.memory.base;
    const first = Math.floor((pa - base) / DMA_PAGE_SIZE);
    const last = Math.floor((pa + size - 1 - base) / DMA_PAGE_SIZE);
    // The whole pages, clipped to RAM (its ends need not be page-aligned).
    const lo = Math.max(base, base + first * DMA_PAGE_SIZE);
    const hi = Math.min(
      base + this.memory.size,
      base + (last + 1) * DMA_PAGE_SIZE,
    );
    this.cleanInvalidate(lo, hi - lo);
    if (this.#dense === null && this.memory.size <= 2 ** 32) {
      this.#dense = new Uint32Array(this.memory.size / DMA_PAGE_SIZE);
    }
    const dense = this.#dense;
    for (let p = first; p <= last; p++) {
      if (dense !== null) {
        if (dense[p]!++ === 0) this.#uncachedPages++;
      } else {
        const n = this.#uncached.get(p) ?? 0;
        if (n === 0) this.#uncachedPages++;
        this.#uncached.set(p, n + 1);
      }
    }
  }

  /**
   * Undo one {@linkcode CpuCache.markUncached} of the same range.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range or one
   * outside RAM.
   */
  unmarkUncached(pa: number, size: number): void {
    this.#check(pa, size);
    const base = this.memory.base;
    const first = Math.floor((pa - base) / DMA_PAGE_SIZE);
    const last = Math.floor((pa + size - 1 - base) / DMA_PAGE_SIZE);
    const dense = this.#dense;
    for (let p = first; p <= last; p++) {
      if (dense !== null) {
        if (dense[p] === 0) continue;
        if (--dense[p]! === 0) this.#uncachedPages--;
      } else {
        const n = this.#uncached.get(p) ?? 0;
        if (n === 0) continue;
        if (n === 1) {
          this.#uncached.delete(p);
          this.#uncachedPages--;
        } else this.#uncached.set(p, n - 1);
      }
    }
  }

  /**
   * Whether the line holding `pa` is cached, and whether it is dirty.
   *
   * @param pa Any byte.
   * @returns `"dirty"`, `"clean"` or `"absent"`.
   * @throws {IommuError} `EINVAL` when `pa` is not an address.
   */
  lineState(pa: number): "dirty" | "clean" | "absent" {
    checkAddress(pa, "physical address");
    const slot = this.#map.get(Math.floor(pa / CACHE_LINE_BYTES));
    if (slot === undefined) return "absent";
    return this.#dirty[slot] === 1 ? "dirty" : "clean";
  }

  /**
   * False when hand-overs are no-ops right now (nothing cached, no
   * speculation), so callers may skip per-piece maintenance calls.
   */
  get needsMaintenance(): boolean {
    return this.#map.size !== 0 || this.#speculation !== 0;
  }

  /** Lines cached now. */
  get cachedLines(): number {
    return this.#map.size;
  }

  /**
   * Allocate a zeroed CPU buffer whose stale lines (from earlier users of
   * the frames) are dropped, and which drops its lines again when freed.
   *
   * @param size Bytes.
   * @param options Contiguity and address limit.
   * @returns The buffer.
   * @throws {IommuError} as {@linkcode DmaBuffer.alloc}.
   */
  allocBuffer(size: number, options: DmaBufferAllocOptions = {}): DmaBuffer {
    const buf = DmaBuffer.alloc(this.memory, size, {
      ...options,
      onFree: (pa, bytes) => this.#each(pa, bytes, 1),
    });
    for (let i = 0; i < buf.frames.length; i++) {
      this.#each(buf.frames[i]!, DMA_PAGE_SIZE, 1);
    }
    return buf;
  }

  /** Counters as a plain object. @returns A snapshot. */
  counters(): CpuCacheCounters {
    return { ...this.#c };
  }
}

const caches = new WeakMap<Soc, CpuCache>();

/**
 * The one CPU cache of `soc`, created on first use (every DMA mapper of the
 * system shares it).
 *
 * @param soc The system.
 * @param options Options for the cache when it is created by this call.
 * @returns The cache.
 * @throws {IommuError} `EEXIST` when `options` are given but the cache
 * already exists; as {@linkcode CpuCache} for bad options.
 */
export function cpuCacheOf(soc: Soc, options?: CpuCacheOptions): CpuCache {
  const have = caches.get(soc);
  if (have !== undefined) {
    if (options !== undefined) {
      throw new IommuError(
        "EEXIST",
        "this system's CPU cache exists already; pass options before the first mapper",
      );
    }
    return have;
  }
  const c = new CpuCache(soc.memory, options);
  caches.set(soc, c);
  return c;
}

// Out of line: bytes that are not a Uint8Array.
function badBytes(what: string, value: unknown): never {
  throw new IommuError(
    "EINVAL",
    `${what} must be a Uint8Array, got ${describeValue(value)}`,
  );
}

// A DmaBuffer argument (null or another object used to throw TypeErrors).
function checkBuffer(buffer: DmaBuffer): DmaBuffer {
  if (!(buffer instanceof DmaBuffer)) {
    throw new IommuError(
      "EINVAL",
      `expected a DmaBuffer, got ${describeValue(buffer)}`,
    );
  }
  return buffer;
}
