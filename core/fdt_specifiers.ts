/**
 * Decoding the properties that point across the tree by phandle: a
 * master's `iommus` (with `iommu-names`), and `interrupt-parent` /
 * `interrupts` split by the controller's `#interrupt-cells`.
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import { hex } from "./address.ts";
import { FDT_MAX_IOMMU_CELLS } from "./fdt_format.ts";
import { eio } from "./fdt_bytes.ts";
import type { FdtNode } from "./fdt_node.ts";

/** One decoded entry of a master's `iommus` property. */
export interface FdtIommuRef {
  /** The IOMMU node the phandle names. */
  readonly iommuNode: FdtNode;
  /** The specifier cells (`#iommu-cells` of them), e.g. a stream ID; empty for per-device units. */
  readonly args: readonly number[];
  /** The matching `iommu-names` entry, when the master has that property. */
  readonly name?: string;
}

/**
 * Decode a master's `iommus` property: each entry is a phandle followed by
 * as many cells as the IOMMU node's `#iommu-cells`. Names come from
 * `iommu-names` when present.
 *
 * @param master The master (device) node.
 * @param byPhandle Nodes by phandle.
 * @returns One entry per IOMMU port, in order; empty without `iommus`.
 * @throws {IommuError} `ENOENT` when a phandle names no node; `EINVAL`
 * when the IOMMU node has no `#iommu-cells`; `EIO` when the cells do not
 * divide into whole entries, `#iommu-cells` exceeds
 * {@linkcode FDT_MAX_IOMMU_CELLS}, or `iommu-names` has a different count.
 */
export function decodeIommus(
  byPhandle: ReadonlyMap<number, FdtNode>,
  master: FdtNode,
): FdtIommuRef[] {
  const cells = master.getU32Array("iommus");
  if (cells === undefined) return [];
  const at = master.propertyOffset("iommus") ?? master.offset;
  const names = master.getStringList("iommu-names");
  const out: FdtIommuRef[] = [];
  let i = 0;
  while (i < cells.length) {
    const phandle = cells[i]!;
    const iommu = byPhandle.get(phandle);
    if (iommu === undefined) {
      throw new IommuError(
        "ENOENT",
        `FDT: iommus entry ${out.length} of ${master.path} names phandle ${
          hex(phandle)
        }, which no node has (at offset ${hex(at + i * 4)})`,
      );
    }
    const n = iommu.getU32("#iommu-cells");
    if (n === undefined) {
      throw new IommuError(
        "EINVAL",
        `FDT: ${iommu.path} (phandle ${
          hex(phandle)
        }, used by ${master.path}) has no #iommu-cells (at offset ${
          hex(iommu.offset)
        })`,
      );
    }
    if (n > FDT_MAX_IOMMU_CELLS) {
      eio(
        iommu.propertyOffset("#iommu-cells")!,
        `#iommu-cells of ${iommu.path} is ${n}, above ${FDT_MAX_IOMMU_CELLS}`,
      );
    }
    if (i + 1 + n > cells.length) {
      eio(
        at + i * 4,
        `iommus of ${master.path} ends inside entry ${out.length}: ${iommu.path} needs ${n} argument cell(s), ${
          cells.length - i - 1
        } left`,
      );
    }
    const name = names?.[out.length];
    const args = cells.slice(i + 1, i + 1 + n);
    out.push(
      name === undefined
        ? { iommuNode: iommu, args }
        : { iommuNode: iommu, args, name },
    );
    i += 1 + n;
  }
  if (names !== undefined && names.length !== out.length) {
    eio(
      master.propertyOffset("iommu-names")!,
      `iommu-names of ${master.path} has ${names.length} name(s) for ${out.length} iommus entr${
        out.length === 1 ? "y" : "ies"
      }`,
    );
  }
  return out;
}
/**
 * The interrupt controller a node's interrupts go to: its own or its
 * nearest ancestor's `interrupt-parent`.
 * @param node The interrupt-generating node.
 * @param byPhandle Nodes by phandle.
 * @returns The controller node, or `undefined` when no ancestor names one.
 * @throws {IommuError} `ENOENT` when the phandle names no node; `EIO` when
 * `interrupt-parent` is malformed.
 */
export function findInterruptParent(
  byPhandle: ReadonlyMap<number, FdtNode>,
  node: FdtNode,
): FdtNode | undefined {
  for (let n: FdtNode | null = node; n !== null; n = n.parent) {
    const ph = n.getU32("interrupt-parent");
    if (ph === undefined) continue;
    const target = byPhandle.get(ph);
    if (target === undefined) {
      throw new IommuError(
        "ENOENT",
        `FDT: interrupt-parent of ${n.path} names phandle ${
          hex(ph)
        }, which no node has (at offset ${
          hex(n.propertyOffset("interrupt-parent")!)
        })`,
      );
    }
    return target;
  }
  return undefined;
}
/**
 * A node's `interrupts` split into specifiers of the interrupt parent's
 * `#interrupt-cells` cells each.
 * @param node The interrupt-generating node.
 * @param byPhandle Nodes by phandle.
 * @returns One cell array per interrupt; empty without `interrupts`.
 * @throws {IommuError} `ENOENT` when there is no (or a dangling) interrupt
 * parent; `EINVAL` when it has no `#interrupt-cells`; `EIO` when the cells
 * do not divide into whole specifiers.
 */
export function splitInterrupts(
  byPhandle: ReadonlyMap<number, FdtNode>,
  node: FdtNode,
): number[][] {
  const cells = node.interrupts();
  if (cells.length === 0) return [];
  const parent = findInterruptParent(byPhandle, node);
  if (parent === undefined) {
    throw new IommuError(
      "ENOENT",
      `FDT: ${node.path} has interrupts but no interrupt-parent (at offset ${
        hex(node.offset)
      })`,
    );
  }
  const n = parent.getU32("#interrupt-cells");
  if (n === undefined || n === 0) {
    throw new IommuError(
      "EINVAL",
      `FDT: interrupt controller ${parent.path} has no usable #interrupt-cells (at offset ${
        hex(parent.offset)
      })`,
    );
  }
  if (cells.length % n !== 0) {
    eio(
      node.propertyOffset("interrupts")!,
      `interrupts of ${node.path} has ${cells.length} cells, not a multiple of ${n} (#interrupt-cells of ${parent.path})`,
    );
  }
  const out: number[][] = [];
  for (let i = 0; i < cells.length; i += n) out.push(cells.slice(i, i + n));
  return out;
}
