/**
 * The frame allocator as it was at 86483ff (per-order insertion-ordered
 * Sets and a Map of live blocks), kept unchanged except for its name and
 * imports: the reference the typed-array allocator is tested against
 * (tests/frame_allocator_differential_test.ts), call for call.
 *
 * @module
 */
import {
  checkAddress,
  checkSize,
  type FrameAllocatorStats,
  hex,
  IommuError,
  MIN_BLOCK_BYTES,
} from "../../core/mod.ts";

const MIN_ORDER = 10;

/**
 * Buddy allocator over `[base, base + size)`. Every block is a power of two of
 * at least {@linkcode MIN_BLOCK_BYTES} bytes and aligned to its own size.
 *
 * @example Allocating a page-table granule and a buffer
 * ```ts
 * import { FrameAllocator } from "@iommukit/iommukit/core";
 * const frames = new FrameAllocator(0x4000_0000, 64 * 1024 * 1024);
 * const l2 = frames.alloc(1024); // 1 KiB, 1 KiB aligned
 * const buf = frames.alloc(2 * 1024 * 1024); // 2 MiB, 2 MiB aligned
 * frames.free(l2);
 * frames.free(buf);
 * if (frames.stats().liveBlocks !== 0) throw new Error("leak");
 * ```
 */
export class OldFrameAllocator {
  /** First byte managed. */
  readonly base: number;
  /** Bytes managed. */
  readonly size: number;
  // Free blocks per order (index = log2(block size)); Sets give O(1) buddy lookup.
  #free: Set<number>[] = [];
  #live = new Map<number, number>(); // block address -> order
  #liveBytes = 0;
  #allocations = 0;
  #frees = 0;
  #failures = 0;
  #reservedBytes = 0;
  #failCountdown = 0;
  #onFree: ((pa: number, bytes: number) => void) | undefined;

  /**
   * Create an allocator whose whole range is free.
   *
   * @param base First byte of the managed range, aligned to 1 KiB.
   * @param size Bytes to manage, a multiple of 1 KiB.
   * @param onFree Called with each block as it is freed, so its owner can
   * clear it (the memory zeroes freed frames, so every new block reads zero).
   * @throws {IommuError} `EINVAL` when base or size are not 1 KiB multiples.
   */
  constructor(
    base: number,
    size: number,
    onFree?: (pa: number, bytes: number) => void,
  ) {
    checkAddress(base, "allocator base");
    checkSize(size, "allocator size");
    if (base % MIN_BLOCK_BYTES !== 0 || size % MIN_BLOCK_BYTES !== 0) {
      throw new IommuError(
        "EINVAL",
        `allocator range ${hex(base)}+${hex(size)} is not a multiple of 1 KiB`,
      );
    }
    this.base = base;
    this.size = size;
    this.#onFree = onFree;
    for (let order = 0; order <= 53; order++) this.#free.push(new Set());
    this.#carve(base, base + size);
  }

  // Put [at, end) on the free lists as the largest naturally aligned blocks.
  #carve(at: number, end: number): void {
    while (at < end) {
      let order = MIN_ORDER;
      while (
        order < 52 && at % 2 ** (order + 1) === 0 &&
        at + 2 ** (order + 1) <= end
      ) order++;
      this.#free[order]!.add(at);
      at += 2 ** order;
    }
  }

  /**
   * Hold a physical range back for good, as firmware's `/memreserve/`
   * ranges are: no later allocation returns any byte of it. The range is
   * widened to whole 1 KiB blocks; bytes already reserved stay reserved.
   *
   * @param pa First byte of the range.
   * @param bytes Length of the range in bytes, greater than zero.
   * @returns The bytes newly held back (0 when all were reserved already).
   * @throws {IommuError} `EINVAL` for a bad address or size; `ERANGE` when
   * the range is not inside the managed range; `EBUSY` when a live block
   * overlaps it. Nothing changes when it throws.
   */
  reserve(pa: number, bytes: number): number {
    checkAddress(pa, "reserved range start");
    checkSize(bytes, "reserved range size");
    const end = pa + bytes;
    if (pa < this.base || end > this.base + this.size) {
      throw new IommuError(
        "ERANGE",
        `reserved range ${hex(pa)}+${hex(bytes)} is outside the allocator's ${
          hex(this.base)
        }+${hex(this.size)}`,
      );
    }
    const lo = Math.floor(pa / MIN_BLOCK_BYTES) * MIN_BLOCK_BYTES;
    const hi = Math.ceil(end / MIN_BLOCK_BYTES) * MIN_BLOCK_BYTES;
    for (const [block, order] of this.#live) {
      if (block < hi && block + 2 ** order > lo) {
        throw new IommuError(
          "EBUSY",
          `reserved range ${hex(pa)}+${hex(bytes)} overlaps the live block ${
            hex(block)
          }+${hex(2 ** order)}`,
        );
      }
    }
    let held = 0;
    for (let order = MIN_ORDER; order < this.#free.length; order++) {
      const set = this.#free[order]!;
      const size = 2 ** order;
      for (const block of [...set]) {
        const blockEnd = block + size;
        if (block >= hi || blockEnd <= lo) continue;
        // Split the free block: what lies outside [lo, hi) stays free.
        set.delete(block);
        this.#carve(block, Math.max(block, lo));
        this.#carve(Math.min(blockEnd, hi), blockEnd);
        held += Math.min(blockEnd, hi) - Math.max(block, lo);
      }
    }
    this.#reservedBytes += held;
    return held;
  }

  /**
   * Allocate a naturally aligned block of at least `bytes` bytes. The block is
   * the next power of two of at least 1 KiB; its memory reads as zeros.
   *
   * @param bytes Bytes wanted, greater than zero.
   * @returns The physical address of the block.
   * @throws {IommuError} `EINVAL` for a bad size; `ENOMEM` when no block is
   * free or an injected failure fires (see {@linkcode FrameAllocator.failNth}).
   */
  alloc(bytes: number): number {
    checkSize(bytes, "allocation size");
    let order = Math.max(MIN_ORDER, Math.ceil(Math.log2(bytes)));
    // log2 rounds 2^k + 1 down to exactly k for k >= 49.
    if (2 ** order < bytes) order++;
    if (this.#failCountdown > 0 && --this.#failCountdown === 0) {
      this.#failures++;
      throw new IommuError(
        "ENOMEM",
        `injected allocation failure for ${hex(bytes)} bytes`,
      );
    }
    let from = order;
    while (from < this.#free.length && this.#free[from]!.size === 0) from++;
    if (from >= this.#free.length) {
      this.#failures++;
      throw new IommuError(
        "ENOMEM",
        `no free block of ${hex(2 ** order)} bytes for a request of ${
          hex(bytes)
        }`,
      );
    }
    const set = this.#free[from]!;
    const block: number = set.values().next().value!;
    set.delete(block);
    // Split down, keeping the lower half and freeing the upper buddies.
    while (from > order) {
      from--;
      this.#free[from]!.add(block + 2 ** from);
    }
    this.#live.set(block, order);
    this.#liveBytes += 2 ** order;
    this.#allocations++;
    return block;
  }

  /**
   * Return a block to the allocator, merging it with free buddies.
   *
   * @param pa The address {@linkcode FrameAllocator.alloc} returned.
   * @throws {IommuError} `ENOENT` when `pa` is not a live block (double free,
   * or never allocated).
   */
  free(pa: number): void {
    const order = this.#live.get(pa);
    if (order === undefined) {
      throw new IommuError(
        "ENOENT",
        `physical address ${hex(pa)} is not an allocated block`,
      );
    }
    this.#live.delete(pa);
    this.#liveBytes -= 2 ** order;
    this.#frees++;
    this.#onFree?.(pa, 2 ** order);
    let block = pa;
    let o = order;
    while (o < 52) {
      const size = 2 ** o;
      const buddy = (block / size) % 2 === 0 ? block + size : block - size;
      const set = this.#free[o]!;
      if (!set.has(buddy)) break;
      set.delete(buddy);
      block = Math.min(block, buddy);
      o++;
    }
    this.#free[o]!.add(block);
  }

  /**
   * Size in bytes of the live block starting at `pa`, or 0 when there is none.
   *
   * @param pa A block address.
   * @returns The block's size in bytes, or 0.
   */
  blockSize(pa: number): number {
    const order = this.#live.get(pa);
    return order === undefined ? 0 : 2 ** order;
  }

  /**
   * Make the `n`th allocation from now fail with `ENOMEM` (1 = the next one);
   * 0 disarms. Used to test that every allocation point rolls back cleanly.
   *
   * @param n How many allocations from now, a non-negative integer.
   * @throws {IommuError} `EINVAL` when `n` is not a non-negative integer.
   */
  failNth(n: number): void {
    checkAddress(n, "failure countdown");
    this.#failCountdown = n;
  }

  /** Bytes in live blocks; a leak check compares this before and after. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Number of live blocks. */
  get liveBlocks(): number {
    return this.#live.size;
  }

  /** Successful allocations since creation (to count an operation's allocations). */
  get allocations(): number {
    return this.#allocations;
  }

  /**
   * A plain-object snapshot of the allocator's counters.
   *
   * @returns The counters.
   */
  stats(): FrameAllocatorStats {
    return {
      liveBlocks: this.#live.size,
      liveBytes: this.#liveBytes,
      freeBytes: this.size - this.#liveBytes - this.#reservedBytes,
      allocations: this.#allocations,
      frees: this.#frees,
      failures: this.#failures,
      reservedBytes: this.#reservedBytes,
    };
  }
}
