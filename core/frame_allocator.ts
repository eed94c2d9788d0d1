/**
 * A buddy allocator over a range of simulated physical memory. It hands out
 * naturally aligned power-of-two blocks, from 1 KiB page-table granules up to
 * whole-RAM buffers, counts what is live (for leak checks) and can be told to
 * fail a chosen allocation (for fault-injection tests).
 *
 * @module
 */
import { checkAddress, checkSize, hex } from "./address.ts";
import { IommuError } from "./errors.ts";

/** Smallest block the allocator hands out: 1 KiB (an Exynos level-2 table). */
export const MIN_BLOCK_BYTES = 1024;
const MIN_ORDER = 10;
// Orders 0..53 have free lists (index = log2(block size)); list LIVE holds
// the live blocks in allocation order.
const ORDERS = 54;
const LIVE = ORDERS;
const FREE = 1;
const LIVE_STATE = 2;
// 2^k for every order (2 ** k compiles to a pow call).
const POW2 = new Float64Array(ORDERS + 1).map((_, k) => 2 ** k);
const FIRST_SLOTS = 64;

/** A snapshot of the allocator's bookkeeping, as a plain object. */
export interface FrameAllocatorStats {
  /** Blocks handed out and not yet freed. */
  liveBlocks: number;
  /** Bytes in live blocks (each block counts its full power-of-two size). */
  liveBytes: number;
  /** Bytes still free. */
  freeBytes: number;
  /** Successful allocations since creation. */
  allocations: number;
  /** Frees since creation. */
  frees: number;
  /** Allocations refused (out of memory or injected failure). */
  failures: number;
  /** Bytes held back by {@linkcode FrameAllocator.reserve} (never handed out). */
  reservedBytes: number;
}

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
export class FrameAllocator {
  /** First byte managed. */
  readonly base: number;
  /** Bytes managed. */
  readonly size: number;
  // Every block the allocator knows (free or live) has a slot in typed
  // arrays, found by address through an open-addressing table, and is
  // linked into one list: its order's free list or the live list. The lists
  // keep insertion order (alloc takes the oldest free block, reserve and
  // the overlap check walk oldest first), so the choices are those of the
  // per-order insertion-ordered sets this replaces, without their garbage:
  // an operation allocates nothing unless the slots must grow, and memory
  // grows with the number of blocks, never with the range managed.
  #addr = new Float64Array(FIRST_SLOTS);
  #order = new Uint8Array(FIRST_SLOTS);
  #state = new Uint8Array(FIRST_SLOTS); // 0 unused, FREE or LIVE_STATE
  #prev = new Int32Array(FIRST_SLOTS);
  #next = new Int32Array(FIRST_SLOTS); // also chains unused slots
  #home = new Int32Array(FIRST_SLOTS); // the slot's table index by hash
  #used = 0; // slots in use
  #top = 0; // slots ever used
  #unused = -1; // first unused slot below #top, chained through #next
  // Table of slot + 1 (0 empty), linear probing, twice the slot capacity
  // so that it is at most half full.
  #table = new Int32Array(2 * FIRST_SLOTS);
  #shift = 32 - Math.log2(2 * FIRST_SLOTS);
  #head = new Int32Array(ORDERS + 1).fill(-1);
  #tail = new Int32Array(ORDERS + 1).fill(-1);
  #liveBlocks = 0;
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
    this.#carve(base, base + size);
  }

  // Put [at, end) on the free lists as the largest naturally aligned blocks.
  #carve(at: number, end: number): void {
    while (at < end) {
      let order = MIN_ORDER;
      while (
        order < 52 && at % POW2[order + 1]! === 0 &&
        at + POW2[order + 1]! <= end
      ) order++;
      this.#addFree(at, order);
      at += POW2[order]!;
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
    // Oldest live block first, so the error names the one it always named.
    for (let s = this.#head[LIVE]!; s >= 0; s = this.#next[s]!) {
      const block = this.#addr[s]!;
      const size = POW2[this.#order[s]!]!;
      if (block < hi && block + size > lo) {
        throw new IommuError(
          "EBUSY",
          `reserved range ${hex(pa)}+${hex(bytes)} overlaps the live block ${
            hex(block)
          }+${hex(size)}`,
        );
      }
    }
    let held = 0;
    for (let order = MIN_ORDER; order < ORDERS; order++) {
      const size = POW2[order]!;
      // Carving adds only smaller blocks, so this list changes only where
      // the walk removes the block it stands on.
      let s = this.#head[order]!;
      while (s >= 0) {
        const after = this.#next[s]!;
        const block = this.#addr[s]!;
        const blockEnd = block + size;
        if (block < hi && blockEnd > lo) {
          // Split the free block: what lies outside [lo, hi) stays free.
          this.#drop(order, s);
          this.#carve(block, Math.max(block, lo));
          this.#carve(Math.min(blockEnd, hi), blockEnd);
          held += Math.min(blockEnd, hi) - Math.max(block, lo);
        }
        s = after;
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
    if (POW2[order]! < bytes) order++;
    if (this.#failCountdown > 0 && --this.#failCountdown === 0) {
      this.#failures++;
      throw new IommuError(
        "ENOMEM",
        `injected allocation failure for ${hex(bytes)} bytes`,
      );
    }
    const head = this.#head;
    let from = order;
    while (from < ORDERS && head[from]! < 0) from++;
    if (from >= ORDERS) {
      this.#failures++;
      throw new IommuError(
        "ENOMEM",
        `no free block of ${hex(POW2[order]!)} bytes for a request of ${
          hex(bytes)
        }`,
      );
    }
    // Room for the upper buddies first, so nothing fails half-way.
    if (this.#used + from - order > this.#addr.length) this.#grow();
    const s = head[from]!;
    const block = this.#addr[s]!;
    this.#unlink(from, s);
    // Split down, keeping the lower half and freeing the upper buddies.
    while (from > order) {
      from--;
      this.#addFree(block + POW2[from]!, from);
    }
    // The slot (and its table entry: same address) now holds the live block.
    this.#order[s] = order;
    this.#state[s] = LIVE_STATE;
    this.#link(LIVE, s);
    this.#liveBlocks++;
    this.#liveBytes += POW2[order]!;
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
    const s = typeof pa === "number" ? this.#find(pa) : -1;
    if (s < 0 || this.#state[s] !== LIVE_STATE) {
      throw new IommuError(
        "ENOENT",
        `physical address ${hex(pa)} is not an allocated block`,
      );
    }
    const order = this.#order[s]!;
    // The stored address: +0 where the caller passed -0.
    let block = this.#addr[s]!;
    this.#drop(LIVE, s);
    this.#liveBlocks--;
    this.#liveBytes -= POW2[order]!;
    this.#frees++;
    this.#onFree?.(pa, POW2[order]!);
    let o = order;
    while (o < 52) {
      const size = POW2[o]!;
      const buddy = (block / size) % 2 === 0 ? block + size : block - size;
      const b = this.#find(buddy);
      if (b < 0 || this.#state[b] !== FREE || this.#order[b] !== o) break;
      this.#drop(o, b);
      block = Math.min(block, buddy);
      o++;
    }
    this.#addFree(block, o);
  }

  /**
   * Size in bytes of the live block starting at `pa`, or 0 when there is none.
   *
   * @param pa A block address.
   * @returns The block's size in bytes, or 0.
   */
  blockSize(pa: number): number {
    const s = typeof pa === "number" ? this.#find(pa) : -1;
    return s >= 0 && this.#state[s] === LIVE_STATE ? POW2[this.#order[s]!]! : 0;
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
    return this.#liveBlocks;
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
      liveBlocks: this.#liveBlocks,
      liveBytes: this.#liveBytes,
      freeBytes: this.size - this.#liveBytes - this.#reservedBytes,
      allocations: this.#allocations,
      frees: this.#frees,
      failures: this.#failures,
      reservedBytes: this.#reservedBytes,
    };
  }

  // A new free block at the end of its order's list.
  #addFree(at: number, order: number): void {
    if (this.#used === this.#addr.length) this.#grow();
    let s = this.#unused;
    if (s >= 0) this.#unused = this.#next[s]!;
    else s = this.#top++;
    this.#used++;
    this.#addr[s] = at;
    this.#order[s] = order;
    this.#state[s] = FREE;
    this.#link(order, s);
    const table = this.#table;
    const mask = table.length - 1;
    let i = slotHash(at, this.#shift);
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = s + 1;
    this.#home[s] = i;
  }

  // The slot of the block at `pa`, or -1.
  #find(pa: number): number {
    const table = this.#table;
    const addr = this.#addr;
    const mask = table.length - 1;
    let i = slotHash(pa, this.#shift);
    for (;;) {
      const s = table[i]! - 1;
      if (s < 0) return -1;
      if (addr[s] === pa) return s;
      i = (i + 1) & mask;
    }
  }

  // Forget the block in slot `s` (on list `list`): unlink it, take it out of
  // the table (later entries of its probe run shift back into the hole) and
  // make the slot unused.
  #drop(list: number, s: number): void {
    this.#unlink(list, s);
    const table = this.#table;
    const home = this.#home;
    const mask = table.length - 1;
    const shift = this.#shift;
    const addr = this.#addr;
    let hole = home[s]!;
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const t = table[j]! - 1;
      if (t < 0) break;
      const want = slotHash(addr[t]!, shift);
      // The entry at j may move back only when its hashed position is not
      // cyclically inside (hole, j].
      const stays = hole <= j
        ? want > hole && want <= j
        : want > hole || want <= j;
      if (!stays) {
        table[hole] = t + 1;
        home[t] = hole;
        hole = j;
      }
    }
    table[hole] = 0;
    this.#state[s] = 0;
    this.#next[s] = this.#unused;
    this.#unused = s;
    this.#used--;
  }

  #link(list: number, s: number): void {
    const last = this.#tail[list]!;
    this.#prev[s] = last;
    this.#next[s] = -1;
    if (last < 0) this.#head[list] = s;
    else this.#next[last] = s;
    this.#tail[list] = s;
  }

  #unlink(list: number, s: number): void {
    const p = this.#prev[s]!;
    const n = this.#next[s]!;
    if (p < 0) this.#head[list] = n;
    else this.#next[p] = n;
    if (n < 0) this.#tail[list] = p;
    else this.#prev[n] = p;
  }

  // Double the slots (and the table, rebuilt from the slots in use).
  #grow(): void {
    const cap = 2 * this.#addr.length;
    const addr = new Float64Array(cap);
    addr.set(this.#addr);
    const order = new Uint8Array(cap);
    order.set(this.#order);
    const state = new Uint8Array(cap);
    state.set(this.#state);
    const prev = new Int32Array(cap);
    prev.set(this.#prev);
    const next = new Int32Array(cap);
    next.set(this.#next);
    const home = new Int32Array(cap);
    const table = new Int32Array(2 * cap);
    const shift = 32 - Math.log2(2 * cap);
    const mask = table.length - 1;
    for (let s = 0; s < this.#top; s++) {
      if (state[s] === 0) continue;
      let i = slotHash(addr[s]!, shift);
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = s + 1;
      home[s] = i;
    }
    this.#addr = addr;
    this.#order = order;
    this.#state = state;
    this.#prev = prev;
    this.#next = next;
    this.#home = home;
    this.#table = table;
    this.#shift = shift;
  }
}

// Table index of a block address (a multiple of 1 KiB below 2^53: its
// block number split into 32-bit halves, mixed, top bits kept). Any other
// number hashes somewhere harmless and is never found.
function slotHash(pa: number, shift: number): number {
  const k = pa / MIN_BLOCK_BYTES;
  const lo = k >>> 0;
  const hi = (k / 4294967296) >>> 0;
  return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> shift;
}
