/**
 * Validation of scatter-gather entries (internal; not exported from
 * mod.ts): the slow path that names what is wrong with an entry, and the
 * plain check of a whole list for paths that lay it out separately.
 *
 * @module
 */
import {
  hex,
  IommuError,
  type PhysicalMemory,
  type SgSegment,
} from "../mod.ts";

/**
 * Throw the error an entry that failed the combined fast check deserves.
 *
 * @param mem RAM.
 * @param i Index of the entry.
 * @param pa Its physical address.
 * @param len Its length in bytes.
 * @throws {IommuError} `EINVAL` for a malformed address or length,
 * `ERANGE` for a range outside RAM.
 */
export function badSegment(
  mem: PhysicalMemory,
  i: number,
  pa: number,
  len: number,
): never {
  if (
    !Number.isSafeInteger(pa) || pa < 0 || !Number.isSafeInteger(len) ||
    len <= 0
  ) {
    throw new IommuError(
      "EINVAL",
      `segment ${i}: address ${String(pa)} / length ${
        String(len)
      } must be non-negative / positive integers`,
    );
  }
  if (!mem.contains(pa, len)) {
    throw new IommuError(
      "ERANGE",
      `segment ${i}: ${hex(pa)}+${hex(len)} is not in RAM`,
    );
  }
  throw new IommuError("EINVAL", `segment ${i} is malformed`);
}

/**
 * Check every entry of a list.
 *
 * @param mem RAM.
 * @param segments Entries.
 * @returns Sum of the entry lengths, in bytes.
 * @throws {IommuError} as {@linkcode badSegment}, for the first bad entry.
 */
export function checkSegments(
  mem: PhysicalMemory,
  segments: readonly SgSegment[],
): number {
  const base = mem.base, end = mem.end;
  let total = 0;
  let i = 0;
  for (; i < segments.length; i++) {
    const s = segments[i]!;
    const pa = s.pa, len = s.length;
    if (
      !(Number.isSafeInteger(pa) && Number.isSafeInteger(len) && len > 0 &&
        pa >= base && pa + len <= end)
    ) break; // thrown below: a call site in the loop slows every entry
    total += len;
  }
  if (i < segments.length) {
    badSegment(mem, i, segments[i]!.pa, segments[i]!.length);
  }
  return total;
}
