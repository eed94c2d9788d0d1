/**
 * Page arithmetic shared by the mapper's pieces (internal; not exported
 * from mod.ts).
 *
 * @module
 */
import { DMA_PAGE_SIZE } from "./dma_buffer.ts";

/** The CPU page, in bytes. */
export const PAGE = DMA_PAGE_SIZE;
/** Segment boundary meaning "none" (2^53 bytes). */
export const NO_BOUNDARY = 2 ** 53;

/** `PAGE - 1`: the offset bits of an address. */
export const PAGE_MASK = 4095;

/**
 * `x % PAGE` without a floating-point remainder (addresses above 2^30 are
 * not small integers to V8, and its remainder on doubles is a slow call).
 * A bitwise AND converts its operand modulo 2^32, which keeps the low 12
 * bits of every integer exact, however large.
 *
 * @param x A non-negative integer address or length, in bytes.
 * @returns Its offset within its page, in bytes.
 */
export function pageOffset(x: number): number {
  return x & PAGE_MASK;
}
