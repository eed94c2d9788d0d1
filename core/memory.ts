/**
 * Sparse simulated physical memory. Storage is materialised in 64 KiB chunks
 * on first write; untouched memory reads as zeros and costs nothing.
 *
 * @module
 */
import {
  checkAddress,
  checkRange,
  checkSize,
  describeValue,
  hex,
  isWord32,
} from "./address.ts";
import { IommuError } from "./errors.ts";
import { FrameAllocator } from "./frame_allocator.ts";
import { ramAccess } from "./memory_access.ts";

// A value that does not fit a `bits`-wide store (signed or unsigned):
// EINVAL naming it, built out of line so the store paths stay small.
function badValue(what: string, value: unknown, bits: number): IommuError {
  return new IommuError(
    "EINVAL",
    `${what} takes ${
      bits === 8 ? "an" : "a"
    } ${bits}-bit integer (signed or unsigned), got ${describeValue(value)}`,
  );
}

// Bytes that are not a Uint8Array (null used to throw a raw TypeError, a
// string to write into a read-only string).
function badBytes(what: string, value: unknown): IommuError {
  return new IommuError(
    "EINVAL",
    `${what} takes a Uint8Array, got ${describeValue(value)}`,
  );
}

// An integer a byte store keeps whole: -128..255.
function isByte(value: number): boolean {
  return typeof value === "number" && (value | 0) === value &&
    value >= -0x80 && value <= 0xff;
}

const MIN_I64 = -(2n ** 63n);
const MAX_U64 = 2n ** 64n - 1n;

const CHUNK_BITS = 16;
const CHUNK_BYTES = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_BYTES - 1;
// Multiplying by an exact power-of-two reciprocal is cheaper than dividing.
const PER_CHUNK = 1 / CHUNK_BYTES;
// Copies up to this many bytes are a plain loop: cheaper than the set()
// builtin and the subarray view it needs.
const SMALL_COPY = 16;
const ZERO_CHUNK = new Uint8Array(CHUNK_BYTES);
const ZERO_WORDS = new Uint32Array(ZERO_CHUNK.buffer);
// Direct-mapped cache of materialised chunks. A walk alternates between
// page-table chunks and the data chunk, which a one-entry cache thrashes.
const CACHE_SLOTS = 32;
const CACHE_MASK = CACHE_SLOTS - 1;
const HOST_IS_LITTLE_ENDIAN =
  new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Options for {@linkcode PhysicalMemory}. */
export interface PhysicalMemoryOptions {
  /** First physical address of RAM in bytes (default 0); a multiple of 64 KiB. */
  base?: number;
  /** Bytes of RAM; a multiple of 64 KiB, up to 2^48. */
  size: number;
}

/** A plain-object snapshot of memory usage. */
export interface PhysicalMemoryStats {
  /** Bytes of RAM modelled. */
  size: number;
  /** Bytes actually backed by host memory (materialised 64 KiB chunks). */
  materializedBytes: number;
}

/**
 * Simulated RAM at `[base, base + size)`, little-endian, with a buddy
 * {@linkcode FrameAllocator} over the same range (`frames`). Every access is
 * bounds-checked (`ERANGE` outside RAM; `EINVAL` for an address or length that
 * is not a non-negative safe integer); a frame freed to the allocator is zeroed.
 *
 * @example Reading back what was written
 * ```ts
 * import { PhysicalMemory } from "@iommukit/iommukit/core";
 * const ram = new PhysicalMemory({ base: 0x4000_0000, size: 1 << 30 });
 * ram.write32(0x4000_1000, 0xdeadbeef);
 * if (ram.read32(0x4000_1000) !== 0xdeadbeef) throw new Error("lost a write");
 * if (ram.read32(0x7fff_fffc) !== 0) throw new Error("untouched RAM reads 0");
 * ```
 */
export class PhysicalMemory {
  /** First byte of RAM. */
  readonly base: number;
  /** Bytes of RAM. */
  readonly size: number;
  /** One past the last byte of RAM. */
  readonly end: number;
  /** The frame allocator over this RAM. */
  readonly frames: FrameAllocator;
  #chunks = new Map<number, Uint8Array>();
  #words = new Map<number, Uint32Array>();
  // Chunk cache, slot = index mod CACHE_SLOTS. Chunks are never dropped,
  // so an entry never goes stale; only materialised chunks are cached.
  #cIndex = new Float64Array(CACHE_SLOTS).fill(-1);
  #cBytes: Uint8Array[] = new Array<Uint8Array>(CACHE_SLOTS).fill(ZERO_CHUNK);
  #cWords: Uint32Array[] = new Array<Uint32Array>(CACHE_SLOTS).fill(
    ZERO_WORDS,
  );

  static {
    // The bus checks a DMA's whole range once, then copies unchecked.
    ramAccess.copyIn = (m, pa, src, from, length) =>
      m.#copyIn(pa, src, from, length);
    ramAccess.copyOut = (m, pa, dst, from, length) =>
      m.#copyOut(pa, dst, from, length);
  }

  /**
   * Create RAM that reads as zeros everywhere.
   *
   * @param options Base and size of RAM.
   * @throws {IommuError} `EINVAL` for sizes or bases that are not multiples of
   * 64 KiB; `ERANGE` when RAM would end beyond 2^48.
   */
  constructor(options: PhysicalMemoryOptions) {
    const base = options.base ?? 0;
    checkAddress(base, "memory base");
    checkSize(options.size, "memory size");
    if (base % CHUNK_BYTES !== 0 || options.size % CHUNK_BYTES !== 0) {
      throw new IommuError(
        "EINVAL",
        `memory ${hex(base)}+${hex(options.size)} is not a multiple of 64 KiB`,
      );
    }
    checkRange(base, options.size, "memory", 2 ** 48);
    this.base = base;
    this.size = options.size;
    this.end = base + options.size;
    this.frames = new FrameAllocator(
      base,
      options.size,
      (pa, bytes) => this.#zero(pa, bytes),
    );
  }

  /**
   * True when `[pa, pa + length)` lies inside RAM.
   *
   * @param pa First byte.
   * @param length Bytes, default 1.
   * @returns Whether the whole range is RAM.
   */
  contains(pa: number, length = 1): boolean {
    return Number.isSafeInteger(pa) && Number.isSafeInteger(length) &&
      length >= 0 && pa >= this.base && pa + length <= this.end;
  }

  #check(pa: number, length: number): void {
    if (!this.contains(pa, length) || length <= 0) {
      // Malformed numbers are EINVAL (never truncated); only well-formed
      // ranges that miss RAM are ERANGE.
      checkAddress(pa, "physical address");
      checkSize(length, "physical access length");
      throw new IommuError(
        "ERANGE",
        `physical access ${hex(pa)}+${hex(length)} is outside RAM ${
          hex(this.base)
        }-${hex(this.end)}`,
      );
    }
  }

  // Cache slot holding chunk `index`, filled from the maps (materialising
  // the chunk when `create`); -1 when it is untouched and not created.
  #slot(index: number, create: boolean): number {
    const slot = index & CACHE_MASK;
    if (this.#cIndex[slot] === index) return slot;
    let c = this.#chunks.get(index);
    let w: Uint32Array;
    if (c === undefined) {
      if (!create) return -1;
      c = new Uint8Array(CHUNK_BYTES);
      w = new Uint32Array(c.buffer);
      this.#chunks.set(index, c);
      this.#words.set(index, w);
    } else w = this.#words.get(index)!;
    this.#cIndex[slot] = index;
    this.#cBytes[slot] = c;
    this.#cWords[slot] = w;
    return slot;
  }

  // The chunk holding `pa` for reading: the shared zero chunk if untouched.
  #readChunk(index: number): Uint8Array {
    const slot = this.#slot(index, false);
    return slot < 0 ? ZERO_CHUNK : this.#cBytes[slot]!;
  }

  #writeChunk(index: number): Uint8Array {
    return this.#cBytes[this.#slot(index, true)]!;
  }

  /**
   * Read one byte.
   *
   * @param pa Physical address.
   * @returns The byte, 0 to 255.
   * @throws {IommuError} `EINVAL` for a malformed address (NaN, fraction,
   * negative, a bigint); `ERANGE` for a well-formed one outside RAM.
   */
  read8(pa: number): number {
    this.#check(pa, 1);
    const off = pa - this.base;
    return this.#readChunk(Math.floor(off / CHUNK_BYTES))[off & CHUNK_MASK]!;
  }

  /**
   * Write one byte.
   *
   * @param pa Physical address.
   * @param value The byte: an integer from -128 to 255 (negative values
   * store their two's complement).
   * @throws {IommuError} `EINVAL` for a malformed address (NaN, fraction,
   * negative, a bigint) or a value that is not such an integer (nothing written);
   * `ERANGE` for a well-formed address outside RAM.
   */
  write8(pa: number, value: number): void {
    if (!isByte(value)) throw badValue("write8", value, 8);
    this.#check(pa, 1);
    const off = pa - this.base;
    this.#writeChunk(Math.floor(off / CHUNK_BYTES))[off & CHUNK_MASK] = value;
  }

  /**
   * Read a little-endian 32-bit word. Aligned reads are the fast path.
   *
   * @param pa Physical address.
   * @returns The unsigned value.
   * @throws {IommuError} `EINVAL` for a malformed address (NaN, fraction,
   * negative, a bigint); `ERANGE` for a well-formed one outside RAM.
   */
  read32(pa: number): number {
    // Number.isInteger: `&` would silently truncate a fractional address;
    // tested on pa before any arithmetic, a bigint (raw TypeError from `-`)
    // goes to the checked path at no extra cost.
    const off = Number.isInteger(pa) ? pa - this.base : -1;
    if (
      (off & 3) === 0 && off >= 0 && pa + 4 <= this.end &&
      HOST_IS_LITTLE_ENDIAN
    ) {
      const index = Math.floor(off / CHUNK_BYTES);
      const slot = index & CACHE_MASK;
      if (this.#cIndex[slot] === index) {
        return this.#cWords[slot]![(off & CHUNK_MASK) >>> 2]!;
      }
      const s = this.#slot(index, false);
      return s < 0 ? 0 : this.#cWords[s]![(off & CHUNK_MASK) >>> 2]!;
    }
    this.#check(pa, 4);
    return (this.read8(pa) | (this.read8(pa + 1) << 8) |
      (this.read8(pa + 2) << 16) | (this.read8(pa + 3) << 24)) >>> 0;
  }

  /**
   * Write a little-endian 32-bit word.
   *
   * @param pa Physical address.
   * @param value The value: an integer from -2^31 to 2^32 - 1 (negative
   * values store their two's complement, as `|` results do).
   * @throws {IommuError} `EINVAL` for a malformed address (NaN, fraction,
   * negative, a bigint) or a value that is not such an integer (nothing written; it
   * used to be truncated); `ERANGE` for a well-formed address outside RAM.
   */
  write32(pa: number, value: number): void {
    // As read32: the integer test on pa comes before any arithmetic.
    const off = Number.isInteger(pa) ? pa - this.base : -1;
    if (
      (off & 3) === 0 && off >= 0 && pa + 4 <= this.end &&
      // isWord32(value) written out: the call measured up to 1 ns slower
      // per write32 + read32 pair here.
      HOST_IS_LITTLE_ENDIAN && typeof value === "number" &&
      ((value | 0) === value || value >>> 0 === value)
    ) {
      const slot = this.#slot(Math.floor(off / CHUNK_BYTES), true);
      this.#cWords[slot]![(off & CHUNK_MASK) >>> 2] = value;
      return;
    }
    if (!isWord32(value)) throw badValue("write32", value, 32);
    this.#check(pa, 4);
    for (let i = 0; i < 4; i++) this.write8(pa + i, (value >>> (8 * i)) & 0xff);
  }

  /**
   * Read a little-endian 64-bit word.
   *
   * @param pa Physical address.
   * @returns The value as a bigint (descriptors use bits above 2^53).
   * @throws {IommuError} `EINVAL` for a malformed address (NaN, fraction,
   * negative, a bigint); `ERANGE` for a well-formed one outside RAM.
   */
  read64(pa: number): bigint {
    this.#check(pa, 8);
    return (BigInt(this.read32(pa + 4)) << 32n) | BigInt(this.read32(pa));
  }

  /**
   * Write a little-endian 64-bit word.
   *
   * @param pa Physical address.
   * @param value The value: a bigint from -2^63 to 2^64 - 1 (negative
   * values store their two's complement).
   * @throws {IommuError} `EINVAL` for a malformed address (NaN, fraction,
   * negative, a bigint) or a value that is not such a bigint (a number, or one that
   * does not fit 64 bits; nothing written); `ERANGE` for a well-formed
   * address outside RAM.
   */
  write64(pa: number, value: bigint): void {
    if (!(typeof value === "bigint" && value >= MIN_I64 && value <= MAX_U64)) {
      throw badValue("write64", value, 64);
    }
    this.#check(pa, 8);
    const v = BigInt.asUintN(64, value);
    this.write32(pa, Number(v & 0xffffffffn));
    this.write32(pa + 4, Number(v >> 32n));
  }

  /**
   * Copy RAM into `into` (untouched memory reads as zeros).
   *
   * @param pa First physical byte.
   * @param into Destination; its length is the number of bytes read.
   * @throws {IommuError} `EINVAL` for a malformed address or length, or
   * `into` not a `Uint8Array`; `ERANGE` when the range leaves RAM.
   */
  readInto(pa: number, into: Uint8Array): void {
    if (!(into instanceof Uint8Array)) throw badBytes("readInto", into);
    const len = into.length;
    if (len === 0) return;
    this.#check(pa, len);
    this.#copyOut(pa, into, 0, len);
  }

  // Copy [pa, pa + len) into dst[from...]; the caller checked both ranges.
  #copyOut(pa: number, dst: Uint8Array, from: number, len: number): void {
    const off = pa - this.base;
    const at = off & CHUNK_MASK;
    if (at + len <= CHUNK_BYTES) {
      // One chunk, the common DMA case: no subarray object for small copies.
      const index = Math.floor(off * PER_CHUNK);
      const slot = index & CACHE_MASK;
      const c = this.#cIndex[slot] === index
        ? this.#cBytes[slot]!
        : this.#readChunk(index);
      if (len <= SMALL_COPY) {
        for (let i = 0; i < len; i++) dst[from + i] = c[at + i]!;
      } else if (from === 0 && len === dst.length) {
        dst.set(c.subarray(at, at + len));
      } else dst.set(c.subarray(at, at + len), from);
      return;
    }
    this.#copyOutChunks(off, dst, from, len);
  }

  #copyOutChunks(
    off: number,
    dst: Uint8Array,
    from: number,
    len: number,
  ): void {
    let done = 0;
    while (done < len) {
      const index = Math.floor(off * PER_CHUNK);
      const inChunk = off & CHUNK_MASK;
      const n = Math.min(CHUNK_BYTES - inChunk, len - done);
      const c = this.#chunks.get(index);
      if (c === undefined) dst.fill(0, from + done, from + done + n);
      else dst.set(c.subarray(inChunk, inChunk + n), from + done);
      done += n;
      off += n;
    }
  }

  /**
   * Read `length` bytes into a new array.
   *
   * @param pa First physical byte.
   * @param length Bytes to read.
   * @returns A copy of the bytes.
   * @throws {IommuError} `EINVAL` for a malformed address or length;
   * `ERANGE` when the range leaves RAM.
   */
  readBytes(pa: number, length: number): Uint8Array {
    // Checked before allocating: a bad length must be EINVAL, not a RangeError.
    if (length !== 0) this.#check(pa, length);
    const out = new Uint8Array(length);
    this.readInto(pa, out);
    return out;
  }

  /**
   * Write `data` at `pa`.
   *
   * @param pa First physical byte.
   * @param data The bytes.
   * @throws {IommuError} `EINVAL` for a malformed address or `data` not a
   * `Uint8Array`; `ERANGE` when the range leaves RAM (nothing written).
   */
  writeBytes(pa: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw badBytes("writeBytes", data);
    const len = data.length;
    if (len === 0) return;
    this.#check(pa, len);
    this.#copyIn(pa, data, 0, len);
  }

  // Copy src[from...from + len) to [pa, pa + len); the caller checked both.
  #copyIn(pa: number, src: Uint8Array, from: number, len: number): void {
    const off = pa - this.base;
    const at = off & CHUNK_MASK;
    if (at + len <= CHUNK_BYTES) {
      // One chunk, the common DMA case: one copy, no subarray object.
      const index = Math.floor(off * PER_CHUNK);
      const slot = index & CACHE_MASK;
      const c = this.#cIndex[slot] === index
        ? this.#cBytes[slot]!
        : this.#writeChunk(index);
      if (len <= SMALL_COPY) {
        for (let i = 0; i < len; i++) c[at + i] = src[from + i]!;
      } else if (from === 0 && len === src.length) c.set(src, at);
      else c.set(src.subarray(from, from + len), at);
      return;
    }
    this.#copyInChunks(off, src, from, len);
  }

  #copyInChunks(off: number, src: Uint8Array, from: number, len: number): void {
    let done = 0;
    while (done < len) {
      const index = Math.floor(off * PER_CHUNK);
      const inChunk = off & CHUNK_MASK;
      const n = Math.min(CHUNK_BYTES - inChunk, len - done);
      this.#writeChunk(index).set(
        src.subarray(from + done, from + done + n),
        inChunk,
      );
      done += n;
      off += n;
    }
  }

  /**
   * Fill `[pa, pa + length)` with a byte value. Filling with zero does not
   * materialise untouched chunks.
   *
   * @param pa First physical byte.
   * @param length Bytes.
   * @param value The byte value, default 0: an integer from -128 to 255.
   * @throws {IommuError} `EINVAL` for a malformed address or length, or a
   * value that is not such an integer (nothing written; it used to be
   * truncated); `ERANGE` when the range leaves RAM.
   */
  fill(pa: number, length: number, value = 0): void {
    if (!isByte(value)) throw badValue("fill", value, 8);
    this.#check(pa, length);
    if ((value & 0xff) === 0) {
      this.#zero(pa, length);
      return;
    }
    let off = pa - this.base;
    let left = length;
    while (left > 0) {
      const inChunk = off & CHUNK_MASK;
      const n = Math.min(CHUNK_BYTES - inChunk, left);
      this.#writeChunk(Math.floor(off / CHUNK_BYTES)).fill(
        value,
        inChunk,
        inChunk + n,
      );
      off += n;
      left -= n;
    }
  }

  #zero(pa: number, length: number): void {
    if (length / CHUNK_BYTES > 2 * this.#chunks.size + 2) {
      // Huge, mostly untouched range: visit only the chunks that exist.
      const first = pa - this.base, last = first + length;
      for (const [index, chunk] of this.#chunks) {
        const start = Math.max(first, index * CHUNK_BYTES);
        const end = Math.min(last, (index + 1) * CHUNK_BYTES);
        if (start < end) {
          chunk.fill(0, start - index * CHUNK_BYTES, end - index * CHUNK_BYTES);
        }
      }
      return;
    }
    let off = pa - this.base;
    let left = length;
    while (left > 0) {
      const index = Math.floor(off / CHUNK_BYTES);
      const inChunk = off & CHUNK_MASK;
      const n = Math.min(CHUNK_BYTES - inChunk, left);
      // Chunks are never dropped: drivers may hold views into them.
      this.#chunks.get(index)?.fill(0, inChunk, inChunk + n);
      off += n;
      left -= n;
    }
  }

  /**
   * A live `Uint32Array` view of `[pa, pa + bytes)` for drivers and walkers
   * that touch a page table often. The range is materialised and must lie in
   * one 64 KiB chunk, which every naturally aligned table up to 64 KiB does.
   *
   * @param pa First byte, 4-byte aligned.
   * @param bytes Length in bytes, a multiple of 4.
   * @returns A view aliasing simulated RAM (writes through it are writes to RAM).
   * @throws {IommuError} `ERANGE` outside RAM; `EINVAL` when unaligned or
   * crossing a 64 KiB boundary.
   */
  view32(pa: number, bytes: number): Uint32Array {
    this.#check(pa, bytes);
    const off = pa - this.base;
    if ((off & 3) !== 0 || (bytes & 3) !== 0) {
      throw new IommuError(
        "EINVAL",
        `view at ${hex(pa)}+${hex(bytes)} is not 4-byte aligned`,
      );
    }
    const inChunk = off & CHUNK_MASK;
    if (inChunk + bytes > CHUNK_BYTES) {
      throw new IommuError(
        "EINVAL",
        `view at ${hex(pa)}+${hex(bytes)} crosses a 64 KiB boundary`,
      );
    }
    const slot = this.#slot(Math.floor(off / CHUNK_BYTES), true);
    return this.#cWords[slot]!.subarray(inChunk >>> 2, (inChunk + bytes) >>> 2);
  }

  /**
   * A fingerprint of every byte of RAM (FNV-1a over the non-zero content of
   * each materialised chunk, in address order). Two equal digests mean equal
   * memory; tests use it to prove that a failed operation changed nothing.
   * Cold path: cost grows with materialised memory.
   *
   * @returns A hexadecimal digest.
   */
  digest(): string {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    const indices = [...this.#chunks.keys()].sort((a, b) => a - b);
    for (const index of indices) {
      const words = this.#words.get(index)!;
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        if (w === 0) continue;
        h1 = Math.imul(h1 ^ w, 0x01000193) >>> 0;
        h1 = Math.imul(h1 ^ (index * 16384 + i), 0x01000193) >>> 0;
        // The chunk index too: h1 keeps only the low 18 bits of it.
        h2 = ((Math.imul(h2 ^ w, 0x5bd1e995) ^ index) + i) >>> 0;
      }
    }
    return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
  }

  /**
   * Usage figures as a plain object.
   *
   * @returns The figures.
   */
  stats(): PhysicalMemoryStats {
    return {
      size: this.size,
      materializedBytes: this.#chunks.size * CHUNK_BYTES,
    };
  }
}
