/**
 * CPU buffers the DMA API maps: a list of 4 KiB page frames plus a byte
 * offset and length, physically contiguous or not.
 *
 * @module
 */
import {
  checkAddress,
  checkRange,
  checkSize,
  hex,
  IommuError,
  type PhysicalMemory,
} from "../mod.ts";

/** The CPU page size DMA buffers are made of, in bytes. */
export const DMA_PAGE_SIZE = 4096;

/** Options of {@linkcode DmaBuffer.alloc}. */
export interface DmaBufferAllocOptions {
  /**
   * True (default) for one physically contiguous block; false for separate
   * 4 KiB frames, used in descending address order so that neighbouring
   * pages are never physically adjacent (exercises scatter paths).
   */
  contiguous?: boolean;
  /**
   * Exclusive upper bound in bytes every frame must lie below (a DMA mask
   * plus one); default none.
   */
  limit?: number;
  /** Called with each range just before its frames go back to the allocator. */
  onFree?: (pa: number, size: number) => void;
}

// Tries before an allocation below a limit gives up: the buddy allocator
// hands out blocks in no address order, so a few may land above the limit.
const LIMIT_TRIES = 64;

/**
 * Allocate one block of `bytes` bytes (rounded up to a power of two of at
 * least 4 KiB) ending at or below `limit`.
 *
 * @param memory The RAM whose frame allocator is used.
 * @param bytes Bytes wanted.
 * @param limit Exclusive upper bound in bytes; `Infinity` for none.
 * @returns The block's physical address.
 * @throws {IommuError} `EINVAL` for a bad size; `ENOMEM` when no block fits
 * (nothing stays allocated).
 */
export function allocBelow(
  memory: PhysicalMemory,
  bytes: number,
  limit: number,
): number {
  checkSize(bytes, "allocation size");
  const want = Math.max(bytes, DMA_PAGE_SIZE);
  const held: number[] = [];
  try {
    for (let i = 0; i < LIMIT_TRIES; i++) {
      const pa = memory.frames.alloc(want);
      if (pa + memory.frames.blockSize(pa) <= limit) return pa;
      held.push(pa);
    }
  } finally {
    for (const pa of held) memory.frames.free(pa);
  }
  throw new IommuError(
    "ENOMEM",
    `no free block of ${hex(want)} bytes below ${hex(limit)}`,
  );
}

/**
 * A CPU buffer: `size` bytes starting `offset` bytes into the first of
 * `frames` (physical addresses of 4 KiB pages, in buffer order). Buffers
 * from {@linkcode DmaBuffer.alloc} own their frames and free them with
 * {@linkcode DmaBuffer.free}; views ({@linkcode DmaBuffer.fromFrames},
 * {@linkcode DmaBuffer.slice}) own nothing.
 */
export class DmaBuffer {
  /** Physical address of each 4 KiB page, in buffer order. */
  readonly frames: Float64Array;
  /** Byte offset of the buffer's first byte in the first frame (0 to 4095). */
  readonly offset: number;
  /** Length in bytes. */
  readonly size: number;
  #blocks: number[] | null;
  #memory: PhysicalMemory | null;
  #onFree: ((pa: number, size: number) => void) | undefined;
  #freed = false;
  #contiguous: boolean;

  private constructor(
    frames: Float64Array,
    offset: number,
    size: number,
    blocks: number[] | null,
    memory: PhysicalMemory | null,
    onFree?: (pa: number, size: number) => void,
  ) {
    this.frames = frames;
    this.offset = offset;
    this.size = size;
    this.#blocks = blocks;
    this.#memory = memory;
    this.#onFree = onFree;
    let c = true;
    for (let i = 1; i < frames.length; i++) {
      if (frames[i] !== frames[i - 1]! + DMA_PAGE_SIZE) c = false;
    }
    this.#contiguous = c;
  }

  /**
   * Allocate a zeroed buffer of `size` bytes from `memory.frames`.
   *
   * @param memory The RAM.
   * @param size Bytes, greater than zero.
   * @param options Contiguity, an address limit and a free hook.
   * @returns The buffer (offset 0).
   * @throws {IommuError} `EINVAL` for a bad size; `ENOMEM` when frames run
   * out (nothing stays allocated).
   */
  static alloc(
    memory: PhysicalMemory,
    size: number,
    options: DmaBufferAllocOptions = {},
  ): DmaBuffer {
    checkSize(size, "buffer size");
    const pages = Math.ceil(size / DMA_PAGE_SIZE);
    const limit = options.limit ?? Infinity;
    const frames = new Float64Array(pages);
    const blocks: number[] = [];
    if (options.contiguous ?? true) {
      const pa = allocBelow(memory, pages * DMA_PAGE_SIZE, limit);
      blocks.push(pa);
      for (let i = 0; i < pages; i++) frames[i] = pa + i * DMA_PAGE_SIZE;
    } else {
      try {
        for (let i = 0; i < pages; i++) {
          blocks.push(allocBelow(memory, DMA_PAGE_SIZE, limit));
        }
      } catch (e) {
        for (const pa of blocks) memory.frames.free(pa);
        throw e;
      }
      const sorted = [...blocks].sort((a, b) => b - a);
      for (let i = 0; i < pages; i++) frames[i] = sorted[i]!;
    }
    return new DmaBuffer(frames, 0, size, blocks, memory, options.onFree);
  }

  /**
   * Take ownership of blocks already allocated from `memory.frames` (each
   * at least 4 KiB and 4 KiB-aligned), laid out in the order given.
   *
   * @param memory The RAM the blocks came from.
   * @param blocks Block addresses, in buffer order.
   * @param size Bytes of the buffer, at most the blocks' total.
   * @param onFree Called with each block before it is freed.
   * @returns The owning buffer (offset 0).
   * @throws {IommuError} `EINVAL` for an empty list, a block that is not a
   * live block of at least 4 KiB, or a size beyond the blocks' total.
   */
  static adopt(
    memory: PhysicalMemory,
    blocks: readonly number[],
    size: number,
    onFree?: (pa: number, size: number) => void,
  ): DmaBuffer {
    checkSize(size, "buffer size");
    let pages = 0;
    for (const b of blocks) {
      const bytes = memory.frames.blockSize(b);
      if (bytes < DMA_PAGE_SIZE) {
        throw new IommuError(
          "EINVAL",
          `${hex(b)} is not a live block of at least ${
            hex(DMA_PAGE_SIZE)
          } bytes`,
        );
      }
      pages += bytes / DMA_PAGE_SIZE;
    }
    if (pages === 0 || size > pages * DMA_PAGE_SIZE) {
      throw new IommuError(
        "EINVAL",
        `buffer size ${hex(size)} does not fit ${pages} adopted pages`,
      );
    }
    const frames = new Float64Array(pages);
    let k = 0;
    for (const b of blocks) {
      const n = memory.frames.blockSize(b) / DMA_PAGE_SIZE;
      for (let i = 0; i < n; i++) frames[k++] = b + i * DMA_PAGE_SIZE;
    }
    return new DmaBuffer(frames, 0, size, [...blocks], memory, onFree);
  }

  /**
   * A view of existing frames (owns nothing; {@linkcode DmaBuffer.free} refuses).
   *
   * @param frames 4 KiB-aligned physical page addresses, in buffer order.
   * @param offset Byte offset into the first frame, 0 to 4095.
   * @param size Bytes; default to the end of the last frame.
   * @returns The view.
   * @throws {IommuError} `EINVAL` for an empty list, an unaligned frame, a bad
   * offset or size; `ERANGE` when `offset + size` passes the last frame.
   */
  static fromFrames(
    frames: ArrayLike<number>,
    offset = 0,
    size?: number,
  ): DmaBuffer {
    const n = frames.length;
    if (n === 0) throw new IommuError("EINVAL", "frame list must not be empty");
    const copy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const f = checkAddress(frames[i]!, `frame ${i}`);
      if (f % DMA_PAGE_SIZE !== 0) {
        throw new IommuError(
          "EINVAL",
          `frame ${i} (${hex(f)}) is not aligned to ${hex(DMA_PAGE_SIZE)}`,
        );
      }
      copy[i] = f;
    }
    checkAddress(offset, "buffer offset");
    if (offset >= DMA_PAGE_SIZE) {
      throw new IommuError(
        "EINVAL",
        `buffer offset ${hex(offset)} is not inside the first 4 KiB frame`,
      );
    }
    const len = size ?? n * DMA_PAGE_SIZE - offset;
    checkRange(offset, len, "buffer", n * DMA_PAGE_SIZE);
    return new DmaBuffer(copy, offset, len, null, null);
  }

  /**
   * A view of the physically contiguous range `[pa, pa + size)`.
   *
   * @param pa First byte.
   * @param size Bytes.
   * @returns The view.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a malformed range.
   */
  static fromRange(pa: number, size: number): DmaBuffer {
    checkRange(pa, size, "buffer");
    const first = pa - (pa % DMA_PAGE_SIZE);
    const pages = Math.ceil((pa + size - first) / DMA_PAGE_SIZE);
    const frames = new Float64Array(pages);
    for (let i = 0; i < pages; i++) frames[i] = first + i * DMA_PAGE_SIZE;
    return new DmaBuffer(frames, pa - first, size, null, null);
  }

  /** Physical address of the first byte. */
  get pa(): number {
    return this.frames[0]! + this.offset;
  }

  /** True when every frame follows the previous one in physical memory. */
  get contiguous(): boolean {
    return this.#contiguous;
  }

  /** True when this buffer owns its frames (made by {@linkcode DmaBuffer.alloc}). */
  get owned(): boolean {
    return this.#blocks !== null;
  }

  /** True once {@linkcode DmaBuffer.free} ran. */
  get freed(): boolean {
    return this.#freed;
  }

  /**
   * Physical address of the byte at `offset` into the buffer.
   *
   * @param offset Bytes from the buffer's start, below `size`.
   * @returns The physical address.
   * @throws {IommuError} `ERANGE` outside the buffer.
   */
  paAt(offset: number): number {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) {
      throw new IommuError(
        "ERANGE",
        `offset ${String(offset)} is outside the ${hex(this.size)}-byte buffer`,
      );
    }
    const at = this.offset + offset;
    return this.frames[Math.floor(at / DMA_PAGE_SIZE)]! + (at % DMA_PAGE_SIZE);
  }

  /**
   * A view of `[offset, offset + size)` of this buffer (owns nothing).
   *
   * @param offset Bytes from this buffer's start.
   * @param size Bytes.
   * @returns The view.
   * @throws {IommuError} `EINVAL`/`ERANGE` for a range outside the buffer.
   */
  slice(offset: number, size: number): DmaBuffer {
    checkRange(offset, size, "slice", this.size);
    const at = this.offset + offset;
    const first = Math.floor(at / DMA_PAGE_SIZE);
    const last = Math.floor((at + size - 1) / DMA_PAGE_SIZE);
    return new DmaBuffer(
      this.frames.slice(first, last + 1),
      at % DMA_PAGE_SIZE,
      size,
      null,
      null,
    );
  }

  /**
   * Return the frames to the allocator.
   *
   * @throws {IommuError} `EPERM` for a view (owns no frames) or when freed
   * already.
   */
  free(): void {
    if (this.#blocks === null || this.#memory === null) {
      throw new IommuError("EPERM", "a buffer view owns no frames to free");
    }
    if (this.#freed) {
      throw new IommuError(
        "EPERM",
        `buffer at ${hex(this.pa)} was freed already`,
      );
    }
    this.#freed = true;
    const frames = this.#memory.frames;
    for (const pa of this.#blocks) {
      this.#onFree?.(pa, frames.blockSize(pa));
      frames.free(pa);
    }
  }
}
