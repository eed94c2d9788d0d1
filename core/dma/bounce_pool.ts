/**
 * The bounce pool of a no-IOMMU master: page-granular slots below the DMA
 * mask for buffers the master cannot reach, and the CPU copies through
 * them (internal; not exported from mod.ts).
 *
 * @module
 */
import { hex, IommuError, type PhysicalMemory } from "../mod.ts";
import { IovaAllocator } from "./iova_allocator.ts";
import type { CpuCache } from "./cpu_cache.ts";
import { allocBelow, type DmaBuffer } from "./dma_buffer.ts";
import { PAGE, pageOffset } from "./page_math.ts";

/** Bounce slots, created on first use, and the copies into and out of them. */
export class BouncePool {
  /**
   * True while the pool copies through the CPU cache: the mapper's own
   * copies are not driver accesses (the ownership check skips them).
   */
  internal = false;
  /** Live mappings holding slots. */
  live = 0;
  #memory: PhysicalMemory;
  #cpu: CpuCache;
  #size: number;
  #limit: number;
  #counters: { bounceBytes: number };
  #pool = -1;
  #slots: IovaAllocator | null = null;

  /**
   * @param memory System RAM.
   * @param cpu The CPU cache.
   * @param size Pool bytes (a multiple of the page).
   * @param limit Exclusive upper bound of addresses the master can drive.
   * @param counters Where copied bytes are counted.
   */
  constructor(
    memory: PhysicalMemory,
    cpu: CpuCache,
    size: number,
    limit: number,
    counters: { bounceBytes: number },
  ) {
    this.#memory = memory;
    this.#cpu = cpu;
    this.#size = size;
    this.#limit = limit;
    this.#counters = counters;
  }

  /**
   * A slot keeping the page offset of the data it stands for.
   *
   * @param size Bytes.
   * @param offset Offset within the first page, in bytes.
   * @returns The slot's physical address.
   * @throws {IommuError} `ENOMEM`, naming the bounce pool, when the pool
   * has no free slot that large (it is full, or smaller than the slot) or
   * RAM below the mask has no room for the pool (no slot stays allocated).
   */
  alloc(size: number, offset: number): number {
    if (this.#slots === null) {
      let pool: number;
      try {
        pool = allocBelow(this.#memory, this.#size, this.#limit);
      } catch (e) {
        if (!(e instanceof IommuError) || e.kind !== "ENOMEM") throw e;
        throw new IommuError(
          "ENOMEM",
          `no RAM below ${hex(this.#limit)} for a bounce pool of ${
            hex(this.#size)
          } bytes`,
          { cause: e },
        );
      }
      this.#pool = pool;
      this.#slots = new IovaAllocator({
        granule: PAGE,
        start: pool,
        end: pool + this.#size,
        cacheMaxSize: 0,
      });
      // Bounce slots are only ever touched uncached; drop stale lines once.
      this.#cpu.invalidate(pool, this.#size);
    }
    const bytes = Math.ceil((offset + size) / PAGE) * PAGE;
    try {
      return this.#slots.alloc(bytes) + offset;
    } catch (e) {
      // The slot allocator says ERANGE (larger than the pool) or ENOMEM
      // (no free range); both mean the pool cannot hold this buffer.
      if (
        !(e instanceof IommuError) ||
        (e.kind !== "ERANGE" && e.kind !== "ENOMEM")
      ) throw e;
      throw new IommuError(
        "ENOMEM",
        bytes > this.#size
          ? `a bounce slot of ${
            hex(bytes)
          } bytes is larger than the bounce pool of ${
            hex(this.#size)
          } bytes (see the bouncePoolSize option)`
          : `bounce pool of ${hex(this.#size)} bytes has no free slot of ${
            hex(bytes)
          } bytes (${this.live} mappings hold slots)`,
        { cause: e },
      );
    }
  }

  /**
   * @param slot What {@linkcode BouncePool.alloc} returned.
   * @param size Bytes, as allocated.
   */
  free(slot: number, size: number): void {
    const offset = pageOffset(slot);
    this.#slots!.free(slot - offset, Math.ceil((offset + size) / PAGE) * PAGE);
  }

  /** Give the pool's frames back (the master goes away). */
  release(): void {
    if (this.#pool >= 0) {
      this.#memory.frames.free(this.#pool);
      this.#pool = -1;
    }
  }

  /**
   * CPU read the ownership check does not see.
   *
   * @param pa Physical address.
   * @param n Bytes.
   * @returns The CPU view.
   */
  cpuRead(pa: number, n: number): Uint8Array {
    this.internal = true;
    try {
      return this.#cpu.read(pa, n);
    } finally {
      this.internal = false;
    }
  }

  /**
   * CPU write the ownership check does not see.
   *
   * @param pa Physical address.
   * @param data Bytes to write.
   */
  cpuWrite(pa: number, data: Uint8Array): void {
    this.internal = true;
    try {
      this.#cpu.write(pa, data);
    } finally {
      this.internal = false;
    }
  }

  /**
   * Copy CPU view of `buf[offset..+size)` into the bounce slot in RAM.
   *
   * @param buf The buffer.
   * @param offset Byte offset in the buffer.
   * @param slot Slot address for that offset.
   * @param size Bytes.
   */
  copyIn(buf: DmaBuffer, offset: number, slot: number, size: number): void {
    this.internal = true;
    let data: Uint8Array;
    try {
      data = this.#cpu.readBuffer(buf, offset, size);
    } finally {
      this.internal = false;
    }
    this.#memory.writeBytes(slot, data);
    this.#counters.bounceBytes += size;
  }

  /**
   * Copy the slot in RAM back into the CPU view of `buf[offset..+size)`.
   *
   * @param buf The buffer.
   * @param offset Byte offset in the buffer.
   * @param slot Slot address for that offset.
   * @param size Bytes.
   */
  copyOut(buf: DmaBuffer, offset: number, slot: number, size: number): void {
    const data = this.#memory.readBytes(slot, size);
    this.internal = true;
    try {
      this.#cpu.writeBuffer(buf, data, offset);
    } finally {
      this.internal = false;
    }
    this.#counters.bounceBytes += size;
  }

  /**
   * Copy between a bounce slot and the CPU view of physical memory (an sg
   * entry, which has no buffer), counted like the buffer copies: to the
   * CPU (`toCpu`, the slot's bytes into the CPU view at `pa`) or to the
   * device (the CPU view into the slot).
   *
   * @param toCpu Direction of the copy.
   * @param pa Physical address of the CPU side.
   * @param slot Slot address.
   * @param size Bytes.
   */
  copyAt(toCpu: boolean, pa: number, slot: number, size: number): void {
    if (toCpu) this.cpuWrite(pa, this.#memory.readBytes(slot, size));
    else this.#memory.writeBytes(slot, this.cpuRead(pa, size));
    this.#counters.bounceBytes += size;
  }
}
