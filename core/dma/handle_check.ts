/**
 * The argument check that unmap and sync share (internal; not exported from
 * mod.ts).
 *
 * @module
 */
import { IommuError } from "../mod.ts";

/**
 * Check the DMA address and size a caller hands back to the mapper.
 *
 * @param dmaAddr The DMA address, in bytes.
 * @param size The size, in bytes.
 * @throws {IommuError} `EINVAL` when `dmaAddr` is not a non-negative safe
 * integer or `size` is not a positive safe integer.
 */
export function checkDmaHandle(dmaAddr: number, size: number): void {
  if (!Number.isSafeInteger(dmaAddr) || dmaAddr < 0) {
    throw new IommuError(
      "EINVAL",
      `DMA address ${String(dmaAddr)} is not a non-negative safe integer`,
    );
  }
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new IommuError("EINVAL", `size ${String(size)} must be positive`);
  }
}
