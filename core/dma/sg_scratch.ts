/**
 * Reusable typed arrays of the mapper's hot paths, so mapping and
 * unmapping a list allocates nothing per page (internal; not exported from
 * mod.ts).
 *
 * @module
 */
import { PAGE } from "./page_math.ts";

/** Scratch arrays that only ever grow. */
export class SgScratch {
  /** Page frames handed to the domain (grown by {@linkcode SgScratch.grow}). */
  frames: Float64Array = new Float64Array(256);
  /** IOVA offset of each entry's first page (boundary layout). */
  start: Float64Array = new Float64Array(256);
  /** DMA segment addresses being merged. */
  outAddr: Float64Array = new Float64Array(256);
  /** DMA segment lengths being merged (same length as `outAddr`). */
  outLen: Float64Array = new Float64Array(256);
  /** Frames laid out by the last flat sg layout (in `frames`). */
  pages = 0;
  /** DMA segments laid out by the last flat sg layout (in `outAddr`/`outLen`). */
  count = 0;
  #tmpBuf = new Uint8Array(PAGE);
  #view: Float64Array | null = null;

  /**
   * @param n Segments needed.
   * @returns `outAddr`, at least `n` long (and `outLen` with it).
   */
  out(n: number): Float64Array {
    if (this.outAddr.length < n) {
      this.outAddr = new Float64Array(n);
      this.outLen = new Float64Array(n);
    }
    return this.outAddr;
  }

  /**
   * @param n Entries needed.
   * @returns `start`, at least `n` long.
   */
  starts(n: number): Float64Array {
    if (this.start.length < n) {
      this.start = new Float64Array(Math.max(n, this.start.length * 2));
    }
    return this.start;
  }

  /**
   * Grows keeping its contents (the one-pass sg layout fills it as it goes).
   *
   * @param n Frames needed.
   * @returns `frames`, at least `n` long.
   */
  grow(n: number): Float64Array {
    if (this.frames.length < n) {
      const next = new Float64Array(Math.max(n, this.frames.length * 2));
      next.set(this.frames);
      this.frames = next;
    }
    return this.frames;
  }

  /**
   * The first `n` frames as their own array (reused while `frames` and `n`
   * stay the same: lists of one size map without allocating it again).
   *
   * @param n Frames.
   * @returns A view of `frames[0..n)`.
   */
  framesView(n: number): Float64Array {
    const v = this.#view;
    if (v !== null && v.length === n && v.buffer === this.frames.buffer) {
      return v;
    }
    return (this.#view = this.frames.subarray(0, n));
  }

  /**
   * @param n Bytes.
   * @returns A reused byte buffer of exactly `n` bytes.
   */
  tmp(n: number): Uint8Array {
    if (this.#tmpBuf.length < n) this.#tmpBuf = new Uint8Array(n);
    return this.#tmpBuf.subarray(0, n);
  }
}
