/**
 * One guard for the IOVA structures' growth: the host may refuse a large
 * buffer (a RangeError from an ArrayBuffer or typed array constructor), and
 * the caller must then fail with ENOMEM having changed nothing. Internal to
 * core/dma (not exported from mod.ts).
 *
 * @module
 */

import { IommuError } from "../errors.ts";

/**
 * Run `make`, which allocates everything a growth needs (buffers and the
 * typed-array views of them) and changes no state, and return what it made.
 * The caller swaps its fields only afterwards, so a refusal anywhere in
 * `make` leaves it as it was.
 *
 * @param make Allocates and returns the new buffers; must not change state.
 * @param what What was being allocated, for the message ("an IOVA tree of
 * 1536 nodes").
 * @returns What `make` returned.
 * @throws {IommuError} `ENOMEM` when the host refused an allocation (a
 * RangeError from `make`); any other error from `make` is rethrown as is.
 */
export function hostAlloc<T>(make: () => T, what: string): T {
  const made = tryHostAlloc(make);
  if (made === undefined) {
    throw new IommuError("ENOMEM", `no host memory for ${what}`);
  }
  return made;
}

/**
 * Run `make` as {@linkcode hostAlloc} does, for a caller that can do
 * without what it makes (a cache magazine, a smaller table, a compaction).
 *
 * @param make Allocates and returns the new buffers (never undefined);
 * must not change state.
 * @returns What `make` returned, or undefined when the host refused an
 * allocation (a RangeError from `make`).
 * @throws Any other error from `make`, as is.
 */
export function tryHostAlloc<T>(make: () => T): T | undefined {
  try {
    return make();
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return undefined;
  }
}
