/**
 * Flattened device tree (DTB) reader, per the Devicetree Specification v0.4
 * chapter 5: header, memory reservation block, structure block and strings
 * block, decoded into a tree of {@linkcode FdtNode}s with typed property
 * accessors and the lookups a platform builder needs (`reg`, phandles,
 * `compatible`, `iommus`, interrupts).
 *
 * The reader treats its input as untrusted: every read is bounds-checked and
 * every loop is bounded by the blob size, so a malformed or truncated blob
 * fails with an `EIO` {@linkcode IommuError} whose message names the byte
 * offset of the problem, never with a hang or another exception type.
 *
 * This file is the tree and its lookups; the format constants, the node
 * view, the decoder and the phandle-linked properties live in `fdt_*.ts`.
 *
 * @module
 */
export {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER_SIZE,
  FDT_MAGIC,
  FDT_MAX_DEPTH,
  FDT_MAX_IOMMU_CELLS,
  FDT_MAX_NAME_LENGTH,
  FDT_MAX_REG_CELLS,
  FDT_MIN_VERSION,
  FDT_NOP,
  FDT_PROP,
  FDT_VERSION,
  type FdtHeader,
  type FdtReservation,
} from "./fdt_format.ts";
export type { FdtNode, FdtRegion } from "./fdt_node.ts";
export type { FdtIommuRef } from "./fdt_specifiers.ts";
import type { FdtHeader, FdtReservation } from "./fdt_format.ts";
import type { FdtNode, Node } from "./fdt_node.ts";
import { decode, type Decoded } from "./fdt_decode.ts";
import {
  decodeIommus,
  type FdtIommuRef,
  findInterruptParent,
  splitInterrupts,
} from "./fdt_specifiers.ts";

/**
 * A parsed flattened device tree: header, memory reservations, the node tree
 * and lookups over it. Create one with {@linkcode parseFdt} or
 * {@linkcode Fdt.parse}.
 *
 * @example
 * ```ts
 * import { encodeFdt } from "./fdt_writer.ts";
 * import { parseFdt } from "./fdt.ts";
 * const fdt = parseFdt(encodeFdt({
 *   props: { "#address-cells": 1, "#size-cells": 1 },
 *   children: [{ name: "memory@40000000", props: { reg: [0x40000000, 0x1000] } }],
 * }));
 * if (fdt.findByPath("/memory")?.reg()[0]?.address !== 0x40000000) throw new Error();
 * ```
 */
export class Fdt {
  /** The decoded header. */
  readonly header: FdtHeader;
  /** The memory reservation block, without its terminating entry. */
  readonly reservations: readonly FdtReservation[];
  /** The root node (`"/"`). */
  readonly root: FdtNode;
  readonly #nodes: readonly Node[];
  readonly #byPhandle: ReadonlyMap<number, Node>;

  private constructor(decoded: Decoded) {
    this.header = decoded.header;
    this.reservations = decoded.reservations;
    this.root = decoded.root;
    this.#nodes = decoded.nodes;
    this.#byPhandle = decoded.byPhandle;
  }

  /**
   * Parse a DTB blob (version 16 or 17). The blob is copied; bytes beyond
   * the header's `totalsize` are ignored.
   *
   * @param blob The flattened device tree bytes.
   * @returns The parsed tree.
   * @throws {IommuError} `EIO` for any malformed or truncated blob (the message
   * names the byte offset); `ERANGE` for a memory reservation above 2^53 - 1;
   * `EINVAL` when `blob` is not a `Uint8Array`.
   */
  static parse(blob: Uint8Array): Fdt {
    return new Fdt(decode(blob));
  }

  /** Number of nodes, the root included. */
  get nodeCount(): number {
    return this.#nodes.length;
  }

  /**
   * Every node in blob order (depth-first, parents before children).
   * @returns An iterator over all nodes.
   */
  nodes(): IterableIterator<FdtNode> {
    return this.#nodes.values();
  }

  /**
   * Same as {@linkcode Fdt.nodes}, so `for (const node of fdt)` works.
   * @returns An iterator over all nodes.
   */
  [Symbol.iterator](): IterableIterator<FdtNode> {
    return this.#nodes.values();
  }

  /**
   * Find a node by absolute path (`"/codec@13400000"`); a component without
   * `@` also matches the first child with that node name (`"/memory"`). A
   * path not starting with `/` starts with an alias from `/aliases`.
   *
   * @param path The path.
   * @returns The node, or `undefined` when there is none.
   */
  findByPath(path: string): FdtNode | undefined {
    let node: Node | undefined = this.#nodes[0];
    let rest = path;
    if (!path.startsWith("/")) {
      const slash = path.indexOf("/");
      const alias = slash < 0 ? path : path.slice(0, slash);
      let target: string | undefined;
      try {
        target = this.#nodes[0]?.child("aliases")?.getString(alias);
      } catch {
        return undefined;
      }
      if (target === undefined || !target.startsWith("/")) return undefined;
      rest = target + (slash < 0 ? "" : path.slice(slash));
    }
    for (const part of rest.split("/")) {
      if (part === "" || node === undefined) continue;
      node = node.child(part);
    }
    return node;
  }

  /**
   * Find the node carrying a phandle.
   * @param phandle The phandle value.
   * @returns The node, or `undefined` when no node has it.
   */
  findByPhandle(phandle: number): FdtNode | undefined {
    return this.#byPhandle.get(phandle);
  }

  /**
   * Every node whose `compatible` lists the string, in blob order, enabled or
   * not (check {@linkcode FdtNode.isEnabled}).
   * @param compatible E.g. `"samsung,exynos-sysmmu"`.
   * @returns The matching nodes (possibly empty).
   * @throws {IommuError} `EIO` when some node's `compatible` is malformed.
   */
  findCompatible(compatible: string): FdtNode[] {
    return this.#nodes.filter((n) => n.isCompatible(compatible));
  }

  /**
   * Decode a master's `iommus` property: each entry is a phandle followed by
   * as many cells as the IOMMU node's `#iommu-cells`. Names come from
   * `iommu-names` when present.
   *
   * @param master The master (device) node.
   * @returns One entry per IOMMU port, in order; empty without `iommus`.
   * @throws {IommuError} `ENOENT` when a phandle names no node; `EINVAL`
   * when the IOMMU node has no `#iommu-cells`; `EIO` when the cells do not
   * divide into whole entries, `#iommu-cells` exceeds
   * {@linkcode FDT_MAX_IOMMU_CELLS}, or `iommu-names` has a different count.
   */
  iommus(master: FdtNode): FdtIommuRef[] {
    return decodeIommus(this.#byPhandle, master);
  }

  /**
   * The interrupt controller a node's interrupts go to: its own or its
   * nearest ancestor's `interrupt-parent`.
   * @param node The interrupt-generating node.
   * @returns The controller node, or `undefined` when no ancestor names one.
   * @throws {IommuError} `ENOENT` when the phandle names no node; `EIO` when
   * `interrupt-parent` is malformed.
   */
  interruptParent(node: FdtNode): FdtNode | undefined {
    return findInterruptParent(this.#byPhandle, node);
  }

  /**
   * A node's `interrupts` split into specifiers of the interrupt parent's
   * `#interrupt-cells` cells each.
   * @param node The interrupt-generating node.
   * @returns One cell array per interrupt; empty without `interrupts`.
   * @throws {IommuError} `ENOENT` when there is no (or a dangling) interrupt
   * parent; `EINVAL` when it has no `#interrupt-cells`; `EIO` when the cells
   * do not divide into whole specifiers.
   */
  interruptSpecifiers(node: FdtNode): number[][] {
    return splitInterrupts(this.#byPhandle, node);
  }
}

/**
 * Parse a DTB blob; the same as {@linkcode Fdt.parse}.
 *
 * @param blob The flattened device tree bytes (version 16 or 17).
 * @returns The parsed tree.
 * @throws {IommuError} `EIO` for any malformed or truncated blob (the message
 * names the byte offset); `ERANGE` for a memory reservation above 2^53 - 1;
 * `EINVAL` when `blob` is not a `Uint8Array`.
 */
export function parseFdt(blob: Uint8Array): Fdt {
  return Fdt.parse(blob);
}
