/**
 * The one shape both platform sources (a DTB and a JSON description) are
 * turned into before the builder runs, so the two give the same platform.
 *
 * @module
 */
import type { DeviceNode } from "./iommu.ts";

/** One `iommus` entry of a master, resolved to its target node. */
export interface SourceIommuRef {
  /** The IOMMU node the entry names. */
  readonly target: SourceNode;
  /** Specifier cells (`#iommu-cells` of them): the stream ID on a central unit. */
  readonly args: readonly number[];
  /** Port name from `iommu-names`, if any. */
  readonly name?: string;
}

/** One device node of a platform source. */
export interface SourceNode {
  /** Full path, unique. */
  readonly path: string;
  /** Unique name: the node name (`codec@13400000`), or the path when that repeats. */
  readonly name: string;
  /** `compatible`, most specific first (may be empty). */
  readonly compatible: readonly string[];
  /** False for `status = "disabled"` (and any status but okay/ok). */
  readonly enabled: boolean;
  /** `#iommu-cells`, or undefined when absent. */
  readonly iommuCells: number | undefined;
  /** True when the node has an `iommus` property. */
  readonly hasIommus: boolean;
  /** True when the node carries `iommukit,dma-master` (a master without IOMMU). */
  readonly dmaMaster: boolean;
  /** `iommukit,dma-bits`, or undefined. */
  readonly dmaBits: number | undefined;
  /** `dma-coherent`. */
  readonly coherent: boolean;
  /** `iommukit,bypass`. */
  readonly bypass: boolean;
  /** The view a plugin's probe reads. */
  readonly device: DeviceNode;
  /**
   * Decode the `iommus` entries.
   * @throws {IommuError} `ENOENT` for a dangling reference; `EINVAL` for a
   * target without `#iommu-cells`; `EIO` for malformed cells.
   */
  iommus(): SourceIommuRef[];
}

/** A memory range in bytes. */
export interface SourceRange {
  /** First byte. */
  readonly address: number;
  /** Length in bytes. */
  readonly size: number;
}

/** A whole platform source, nodes in tree order. */
export interface PlatformSource {
  /** Short platform name. */
  readonly name: string;
  /** Human-readable model, if given. */
  readonly model: string | undefined;
  /** RAM ranges from `/memory` (or the JSON `memory`). */
  readonly memory: readonly SourceRange[];
  /** Ranges the OS must not use (`/memreserve/`). */
  readonly reservations: readonly SourceRange[];
  /** Every node with a `compatible` or an `iommus`, in tree order. */
  readonly nodes: readonly SourceNode[];
  /** `"dtb"` or `"json"`. */
  readonly format: "dtb" | "json";
}
