/**
 * Cache maintenance of mapped memory: handing physically contiguous pieces
 * to the device and back (or marking them uncached for a coherent master),
 * and walking a buffer's pieces and cache lines (internal; not exported
 * from mod.ts).
 *
 * @module
 */
import type { DmaBuffer } from "./dma_buffer.ts";
import type { DmaDirection } from "./direction.ts";
import type { MapperState } from "./mapper_state.ts";
import { PAGE, pageOffset } from "./page_math.ts";

/**
 * Hand a physically contiguous piece to the device.
 *
 * @param st The mapper.
 * @param pa Physical address.
 * @param n Bytes.
 * @param dir Direction.
 * @param skip The caller syncs explicitly.
 */
export function pieceToDevice(
  st: MapperState,
  pa: number,
  n: number,
  dir: DmaDirection,
  skip: boolean,
): void {
  if (st.coherent) st.cpu.markUncached(pa, n);
  else if (!skip) st.cpu.handToDevice(pa, n, dir);
}

/**
 * Give a physically contiguous piece back to the CPU.
 *
 * @param st The mapper.
 * @param pa Physical address.
 * @param n Bytes.
 * @param dir Direction.
 * @param skip The caller syncs explicitly.
 */
export function pieceToCpu(
  st: MapperState,
  pa: number,
  n: number,
  dir: DmaDirection,
  skip: boolean,
): void {
  if (st.coherent) st.cpu.unmarkUncached(pa, n);
  else if (!skip) st.cpu.takeFromDevice(pa, n, dir);
}

/**
 * Call `fn` for each physically contiguous piece of a buffer.
 *
 * @param buf The buffer.
 * @param fn Receives physical address and bytes.
 */
export function bufferPieces(
  buf: DmaBuffer,
  fn: (pa: number, n: number) => void,
): void {
  let done = 0;
  while (done < buf.size) {
    const pa = buf.paAt(done);
    const n = Math.min(PAGE - pageOffset(pa), buf.size - done);
    // Merge physically adjacent pages into one call.
    let len = n;
    while (
      done + len < buf.size && buf.paAt(done + len) === pa + len
    ) {
      len += Math.min(PAGE, buf.size - done - len);
    }
    fn(pa, len);
    done += len;
  }
}

/**
 * Cache-line pairs [first, last] of a buffer's pieces (overlap tracking).
 *
 * @param buf The buffer.
 * @returns Line-number pairs.
 */
export function bufferLines(buf: DmaBuffer): Float64Array {
  const pairs: number[] = [];
  let done = 0;
  while (done < buf.size) {
    const pa = buf.paAt(done);
    const n = Math.min(PAGE - pageOffset(pa), buf.size - done);
    const first = Math.floor(pa / 64);
    const last = Math.floor((pa + n - 1) / 64);
    const k = pairs.length;
    if (k > 0 && pairs[k - 1] === first - 1) pairs[k - 1] = last;
    else pairs.push(first, last);
    done += n;
  }
  return new Float64Array(pairs);
}

/**
 * PA byte ranges of a buffer, for the ownership check.
 *
 * @param buf The buffer.
 * @returns Physical [start, end) pairs.
 */
export function bufferRanges(buf: DmaBuffer): Float64Array {
  const pairs: number[] = [];
  bufferPieces(buf, (pa, n) => pairs.push(pa, pa + n));
  return new Float64Array(pairs);
}
