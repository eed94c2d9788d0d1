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

/**
 * `x % PAGE` without a floating-point remainder (addresses above 2^30 are
 * not small integers to V8, and its remainder on doubles is a slow call).
 *
 * @param x A non-negative address or length, in bytes.
 * @returns Its offset within its page, in bytes.
 */
export function pageOffset(x: number): number {
  return x - Math.floor(x / PAGE) * PAGE;
}
