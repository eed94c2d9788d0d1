/**
 * Who owns which bytes of a streaming mapping, for the DMA debug ownership
 * check (internal; not exported from mod.ts). A mapping belongs to the
 * device when mapped; a sync for the CPU hands the bytes it names to the
 * CPU, a sync for the device hands them back. A partial sync moves only its
 * own bytes, so reading bytes that were never synced is still reported.
 *
 * Bytes are counted as offsets into the mapping's CPU data: its buffer for
 * a single mapping, its sg list's segments one after another for an sg
 * list (the order of the record's `ranges`). The DMA segments of a mapping,
 * taken in order, hold the same bytes in the same order.
 *
 * @module
 */
import type { Live } from "./live_table.ts";

/**
 * Hand the bytes of `rec` that the DMA range `[lo, hi)` holds to the CPU
 * (`forCpu`) or to the device. Parts of the range outside the mapping are
 * left alone (a sync may run on into another mapping).
 *
 * @param rec A live record whose ownership is tracked (`ranges` set).
 * @param forCpu To the CPU (true) or to the device.
 * @param lo First DMA address, in bytes.
 * @param hi Exclusive end DMA address, in bytes.
 */
export function moveOwnership(
  rec: Live,
  forCpu: boolean,
  lo: number,
  hi: number,
): void {
  const sg = rec.sg;
  if (rec.type !== "sg" || sg === null) {
    const a = Math.max(lo, rec.dmaAddr);
    const b = Math.min(hi, rec.end);
    if (a < b) movePart(rec, forCpu, a - rec.dmaAddr, b - rec.dmaAddr);
    return;
  }
  let offset = 0;
  for (let k = 0; k < sg.count; k++) {
    const start = sg.dmaAddress[k]!;
    const length = sg.dmaLength[k]!;
    const a = Math.max(lo, start);
    const b = Math.min(hi, start + length);
    if (a < b) movePart(rec, forCpu, offset + a - start, offset + b - start);
    offset += length;
  }
}

/**
 * Hand the whole of `rec` to the CPU or to the device (a sync of a whole sg
 * list, a map).
 *
 * @param rec A live record whose ownership is tracked.
 * @param forCpu To the CPU (true) or to the device.
 */
export function moveAllOwnership(rec: Live, forCpu: boolean): void {
  rec.cpuParts = forCpu ? [0, rec.size] : [];
  rec.deviceOwned = !forCpu;
}

/**
 * Whether any byte of the CPU access `[pa, end)` lies in a part of a
 * record the device owns.
 *
 * @param ranges A record's PA [start, end) pairs, in offset order.
 * @param cpuParts Its CPU-owned offset intervals, sorted and disjoint.
 * @param pa First physical byte accessed.
 * @param end Exclusive end of the access.
 * @returns True when the access touches device-owned bytes.
 */
export function touchesDeviceOwned(
  ranges: Float64Array,
  cpuParts: readonly number[],
  pa: number,
  end: number,
): boolean {
  let offset = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    const s = ranges[i]!;
    const e = ranges[i + 1]!;
    const a = Math.max(pa, s);
    const b = Math.min(end, e);
    if (a < b && !covered(cpuParts, offset + a - s, offset + b - s)) {
      return true;
    }
    offset += e - s;
  }
  return false;
}

// Whether the sorted, disjoint intervals cover [a, b) entirely (adjacent
// intervals are always merged, so one interval must hold it).
function covered(parts: readonly number[], a: number, b: number): boolean {
  for (let i = 0; i < parts.length; i += 2) {
    if (parts[i]! <= a && b <= parts[i + 1]!) return true;
  }
  return false;
}

// Add [a, b) to the CPU's parts (forCpu) or take it out, keeping them
// sorted, disjoint and merged; the device owns the mapping while they do
// not cover it all.
function movePart(rec: Live, forCpu: boolean, a: number, b: number): void {
  const old = rec.cpuParts;
  const parts: number[] = [];
  if (forCpu) {
    let lo = a;
    let hi = b;
    let placed = false;
    for (let i = 0; i < old.length; i += 2) {
      const s = old[i]!;
      const e = old[i + 1]!;
      if (e < lo) parts.push(s, e);
      else if (s > hi) {
        if (!placed) parts.push(lo, hi);
        placed = true;
        parts.push(s, e);
      } else {
        lo = Math.min(lo, s);
        hi = Math.max(hi, e);
      }
    }
    if (!placed) parts.push(lo, hi);
  } else {
    for (let i = 0; i < old.length; i += 2) {
      const s = old[i]!;
      const e = old[i + 1]!;
      if (e <= a || s >= b) parts.push(s, e);
      else {
        if (s < a) parts.push(s, a);
        if (e > b) parts.push(b, e);
      }
    }
  }
  rec.cpuParts = parts;
  rec.deviceOwned =
    !(parts.length === 2 && parts[0]! <= 0 && parts[1]! >= rec.size);
}
