/**
 * DMA directions and the page protections they become.
 *
 * @module
 */
import {
  hex,
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
} from "../mod.ts";

/** Data moves both ways; always legal, may cost more cache maintenance. */
export const DMA_BIDIRECTIONAL = 0;
/** Data moves from memory to the device: the device only reads. */
export const DMA_TO_DEVICE = 1;
/** Data moves from the device to memory: the device only writes. */
export const DMA_FROM_DEVICE = 2;
/** A placeholder for debugging; never valid for a map, unmap or sync. */
export const DMA_NONE = 3;

/** One of {@linkcode DMA_BIDIRECTIONAL}, {@linkcode DMA_TO_DEVICE}, {@linkcode DMA_FROM_DEVICE}, {@linkcode DMA_NONE}. */
export type DmaDirection = 0 | 1 | 2 | 3;

/** The value a failed mapping returns in the kernel API (all ones); never a valid DMA address here. */
export const DMA_MAPPING_ERROR: number = Number.MAX_SAFE_INTEGER;

const NAMES = ["bidirectional", "to-device", "from-device", "none"] as const;

/**
 * Name of a direction, for messages and reports.
 *
 * @param direction A direction value.
 * @returns `"to-device"` style text, or the number for unknown values.
 */
export function directionName(direction: number): string {
  return NAMES[direction] ?? String(direction);
}

/**
 * Check that `direction` may be used for a map, unmap or sync.
 *
 * @param direction The value to check.
 * @returns The direction, typed.
 * @throws {IommuError} `EINVAL` for {@linkcode DMA_NONE} and anything that
 * is not a direction.
 */
export function checkDirection(direction: number): DmaDirection {
  if (
    direction !== DMA_BIDIRECTIONAL && direction !== DMA_TO_DEVICE &&
    direction !== DMA_FROM_DEVICE
  ) {
    throw new IommuError(
      "EINVAL",
      `DMA direction ${
        typeof direction === "number" ? hex(direction) : String(direction)
      } (${directionName(direction)}) is not valid for a map, unmap or sync`,
    );
  }
  return direction;
}

/**
 * The IOMMU protection a streaming mapping gets: to-device is read-only,
 * from-device write-only, bidirectional both; coherent masters add
 * {@linkcode IOMMU_CACHE}.
 *
 * @param direction A valid direction.
 * @param coherent Whether the master snoops CPU caches.
 * @returns `IOMMU_*` bits.
 */
export function directionToProt(
  direction: DmaDirection,
  coherent: boolean,
): number {
  const base = direction === DMA_TO_DEVICE
    ? IOMMU_READ
    : direction === DMA_FROM_DEVICE
    ? IOMMU_WRITE
    : IOMMU_READ | IOMMU_WRITE;
  return coherent ? base | IOMMU_CACHE : base;
}
