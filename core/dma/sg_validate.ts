/**
 * Validation of scatter-gather entries (internal; not exported from
 * mod.ts): the slow path that names what is wrong with an entry, and the
 * plain check of a whole list for paths that lay it out separately.
 *
 * @module
 */
import { describeValue } from "../address.ts";
import type { Live } from "./live_table.ts";
import type { MapperState } from "./mapper_state.ts";
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

/**
 * The error for a list whose check failed with something other than an
 * {@linkcode IommuError}: `EINVAL` naming the first entry that is not an
 * object, else `cause` itself (a fault of the caller's list, such as a
 * throwing getter, passes through).
 *
 * @param segments The list as given.
 * @param cause What the check threw.
 * @returns The error to throw.
 */
export function notAnEntry(
  segments: ArrayLike<unknown>,
  cause: unknown,
): unknown {
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s === null || typeof s !== "object") {
      return new IommuError(
        "EINVAL",
        `segment ${i} must be an object with pa and length, got ${
          describeValue(s)
        }`,
      );
    }
  }
  return cause;
}

/**
 * Run the debug checks of a laid-out list on its final DMA segments (IOVAs,
 * bounce slots or physical addresses), against the mapper's segment limits,
 * with `rec.dmaAddr` set to the first; in `"throw"` mode the report throws
 * (the caller undoes what it allocated).
 *
 * @param st The mapper (debug on).
 * @param rec The list's record.
 * @param segments The input entries.
 * @param dmaAddress First DMA address of each segment, in bytes.
 * @param dmaLength Length of each segment, in bytes.
 * @param count Segments in use.
 */
export function checkSgMapping(
  st: MapperState,
  rec: Live,
  segments: readonly SgSegment[],
  dmaAddress: readonly number[],
  dmaLength: readonly number[],
  count: number,
): void {
  const debug = st.debug!;
  rec.dmaAddr = dmaAddress[0]!;
  debug.emit(
    debug.checkMap(rec, {
      inputs: segments,
      dmaAddress,
      dmaLength,
      count,
      maxSegmentSize: st.maxSegmentSize,
      segmentBoundary: st.segmentBoundary,
    }),
  );
}
