/**
 * Protection bits as short text, shared by the `dump` listing and the SVG
 * tooltips so both say the same thing for the same mapping.
 *
 * @module
 */
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
} from "../core/mod.ts";

/**
 * Protection bits as text: `R`/`W` (or `-`), then `nx`, `cache`, `mmio`,
 * `priv` for the flags that are set. Execute permission is not shown:
 * iommukit models only `IOMMU_NOEXEC` (printed as `nx`), never an "X" bit.
 *
 * @example
 * ```ts
 * import { protString } from "./mod.ts";
 * if (protString(3) !== "RW") throw new Error();
 * if (protString(1 | 8) !== "R- nx") throw new Error();
 * ```
 *
 * @param prot `IOMMU_*` bits.
 * @returns The text, for example `RW cache`.
 */
export function protString(prot: number): string {
  const parts = [
    `${prot & IOMMU_READ ? "R" : "-"}${prot & IOMMU_WRITE ? "W" : "-"}`,
  ];
  if (prot & IOMMU_NOEXEC) parts.push("nx");
  if (prot & IOMMU_CACHE) parts.push("cache");
  if (prot & IOMMU_MMIO) parts.push("mmio");
  if (prot & IOMMU_PRIV) parts.push("priv");
  return parts.join(" ");
}
