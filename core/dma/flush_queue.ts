/**
 * The lazy-invalidation flush queue: unmapped IOVA ranges wait here, still
 * reachable through stale IOTLB entries, until one full flush releases them
 * all. The queue is drained when it is full or when its simulated timer
 * expires; no real timer exists, so nothing leaks out of tests.
 *
 * @module
 */
import { hex, IommuError } from "../mod.ts";

/** Default entries before a full queue forces a flush (the kernel's per-CPU size). */
export const FLUSH_QUEUE_SIZE = 256;
/** Default milliseconds from the first queued entry to the timer flush (the kernel's per-CPU timeout). */
export const FLUSH_QUEUE_TIMEOUT_MS = 10;

/**
 * Pending unmapped ranges in typed arrays, plus a simulated clock. The
 * owner performs the flush; the queue only decides when and remembers what.
 */
export class FlushQueue {
  /** Entries that force a flush before one more can be queued. */
  readonly capacity: number;
  /** Milliseconds after arming until the timer asks for a flush. */
  readonly timeoutMs: number;
  #iova: Float64Array;
  #size: Float64Array;
  #count = 0;
  #lo = Infinity;
  #hi = -Infinity;
  #now = 0;
  #deadline = Infinity;

  /**
   * Create an empty queue with its timer unarmed at time 0.
   *
   * @param capacity Entries, a positive integer.
   * @param timeoutMs Milliseconds, positive.
   * @throws {IommuError} `EINVAL` for a bad capacity or timeout.
   */
  constructor(
    capacity: number = FLUSH_QUEUE_SIZE,
    timeoutMs: number = FLUSH_QUEUE_TIMEOUT_MS,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 2 ** 24) {
      throw new IommuError(
        "EINVAL",
        `flush queue size ${
          String(capacity)
        } must be an integer from 1 to 2^24`,
      );
    }
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw new IommuError(
        "EINVAL",
        `flush queue timeout ${String(timeoutMs)} ms must be positive`,
      );
    }
    this.capacity = capacity;
    this.timeoutMs = timeoutMs;
    this.#iova = new Float64Array(capacity);
    this.#size = new Float64Array(capacity);
  }

  /** Entries waiting. */
  get length(): number {
    return this.#count;
  }

  /** True when one more entry needs a flush first. */
  get full(): boolean {
    return this.#count === this.capacity;
  }

  /** Simulated time in milliseconds. */
  get now(): number {
    return this.#now;
  }

  /** When the armed timer fires (simulated ms), or `Infinity` when unarmed. */
  get deadline(): number {
    return this.#deadline;
  }

  /**
   * Queue a range; arms the timer when it is not armed. The caller must
   * drain a full queue first.
   *
   * @param iova First byte.
   * @param size Bytes.
   * @throws {IommuError} `ENOSPC` when the queue is full.
   */
  push(iova: number, size: number): void {
    if (this.#count === this.capacity) {
      throw new IommuError(
        "ENOSPC",
        `flush queue is full (${this.capacity} entries) queuing ${hex(iova)}`,
      );
    }
    this.#iova[this.#count] = iova;
    this.#size[this.#count] = size;
    this.#count++;
    if (iova < this.#lo) this.#lo = iova;
    if (iova + size > this.#hi) this.#hi = iova + size;
    if (this.#deadline === Infinity) {
      this.#deadline = this.#now + this.timeoutMs;
    }
  }

  /**
   * Advance the clock.
   *
   * @param ms Milliseconds, non-negative.
   * @returns True when the timer expired (the owner should flush now).
   * @throws {IommuError} `EINVAL` for a negative or non-finite time.
   */
  advance(ms: number): boolean {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new IommuError("EINVAL", `time step ${String(ms)} ms must be >= 0`);
    }
    this.#now += ms;
    return this.#now >= this.#deadline;
  }

  /**
   * Bytes of `[iova, iova + length)` that lie in queued ranges (0 when none).
   *
   * @param iova First byte.
   * @param length Bytes.
   * @returns Overlapping bytes.
   */
  overlap(iova: number, length: number): number {
    if (this.#count === 0 || iova >= this.#hi || iova + length <= this.#lo) {
      return 0;
    }
    let n = 0;
    const end = iova + length;
    for (let i = 0; i < this.#count; i++) {
      const s = this.#iova[i]!;
      const e = s + this.#size[i]!;
      const lo = s > iova ? s : iova;
      const hi = e < end ? e : end;
      if (hi > lo) n += hi - lo;
    }
    return n;
  }

  /**
   * Hand every entry to `release` (after the owner's flush), then empty the
   * queue and disarm the timer.
   *
   * @param release Called with each entry's IOVA and size.
   * @returns Entries released.
   */
  drain(release: (iova: number, size: number) => void): number {
    const n = this.#count;
    for (let i = 0; i < n; i++) release(this.#iova[i]!, this.#size[i]!);
    this.#count = 0;
    this.#lo = Infinity;
    this.#hi = -Infinity;
    this.#deadline = Infinity;
    return n;
  }
}
