/**
 * The device-tree node view: the {@linkcode FdtNode} interface, its
 * implementation built by the decoder, and the typed property accessors
 * (cells, strings, `reg`, `compatible`, `status`).
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import { hex } from "./address.ts";
import { FDT_MAX_REG_CELLS } from "./fdt_format.ts";
import { eio, readU32 } from "./fdt_bytes.ts";

/** One `reg` entry, in the parent bus's address space. */
export interface FdtRegion {
  /** Start address in bytes. */
  readonly address: number;
  /** Length in bytes (0 when the parent has `#size-cells = <0>`). */
  readonly size: number;
}

/**
 * One device-tree node. Built by {@linkcode parseFdt}; read-only.
 * Property values are views into the parser's private copy of the blob:
 * treat them as read-only.
 */
export interface FdtNode {
  /** Full node name with unit address, e.g. `"codec@13400000"`; `""` for the root. */
  readonly name: string;
  /** The name without the unit address, e.g. `"codec"`. */
  readonly nodeName: string;
  /** The unit address text after `@`, or `undefined` when there is none. */
  readonly unitAddress: string | undefined;
  /** Absolute path, e.g. `"/codec@13400000"`; `"/"` for the root. */
  readonly path: string;
  /** The parent node; `null` for the root. */
  readonly parent: FdtNode | null;
  /** Child nodes in blob order. */
  readonly children: readonly FdtNode[];
  /** Raw property values by name, in blob order. */
  readonly properties: ReadonlyMap<string, Uint8Array>;
  /** Byte offset of this node's `FDT_BEGIN_NODE` token in the blob. */
  readonly offset: number;
  /** Nesting depth: 0 for the root. */
  readonly depth: number;
  /** The node's `phandle` (or legacy `linux,phandle`), validated at parse time. */
  readonly phandle: number | undefined;

  /**
   * Whether the node has the property.
   * @param name Property name.
   * @returns True when present (even when empty).
   */
  has(name: string): boolean;
  /**
   * The raw value of a property.
   * @param name Property name.
   * @returns The bytes, or `undefined` when absent.
   */
  getProperty(name: string): Uint8Array | undefined;
  /**
   * Byte offset of a property's value in the blob (for error messages).
   * @param name Property name.
   * @returns The offset, or `undefined` when absent.
   */
  propertyOffset(name: string): number | undefined;
  /**
   * A property holding exactly one big-endian u32 cell.
   * @param name Property name.
   * @returns The value, or `undefined` when absent.
   * @throws {IommuError} `EIO` when the value is not exactly 4 bytes.
   */
  getU32(name: string): number | undefined;
  /**
   * A property holding big-endian u32 cells.
   * @param name Property name.
   * @returns The cells (empty for an empty property), or `undefined` when absent.
   * @throws {IommuError} `EIO` when the length is not a multiple of 4 bytes.
   */
  getU32Array(name: string): number[] | undefined;
  /**
   * A string property; for a string list this is its first string.
   * @param name Property name.
   * @returns The text (UTF-8 decoded), or `undefined` when absent.
   * @throws {IommuError} `EIO` when the value is empty or not NUL-terminated.
   */
  getString(name: string): string | undefined;
  /**
   * A string-list property such as `compatible`.
   * @param name Property name.
   * @returns The strings (empty for an empty property), or `undefined` when absent.
   * @throws {IommuError} `EIO` when a non-empty value is not NUL-terminated.
   */
  getStringList(name: string): string[] | undefined;
  /**
   * Whether `compatible` lists the given string.
   * @param compatible The compatible string, e.g. `"samsung,exynos-sysmmu"`.
   * @returns True when listed.
   * @throws {IommuError} `EIO` when `compatible` is malformed.
   */
  isCompatible(compatible: string): boolean;
  /**
   * Whether the device is usable: `status` absent, `"okay"` or `"ok"`.
   * @returns False for `"disabled"`, `"reserved"`, `"fail"` and anything else.
   * @throws {IommuError} `EIO` when `status` is malformed.
   */
  isEnabled(): boolean;
  /**
   * This node's `#address-cells` (how its children encode addresses).
   * @returns The cell count, 2 when absent (the spec default).
   * @throws {IommuError} `EIO` when the property is malformed.
   */
  addressCells(): number;
  /**
   * This node's `#size-cells` (how its children encode sizes).
   * @returns The cell count, 1 when absent (the spec default).
   * @throws {IommuError} `EIO` when the property is malformed.
   */
  sizeCells(): number;
  /**
   * The `reg` property decoded with the PARENT's `#address-cells` and
   * `#size-cells` (defaults 2 and 1; the root uses the defaults).
   * @returns The regions in bytes; empty when there is no `reg`.
   * @throws {IommuError} `EIO` when the length does not fit the cell counts;
   * `ERANGE` when a cell count exceeds {@linkcode FDT_MAX_REG_CELLS} or a
   * value exceeds 2^53 - 1.
   */
  reg(): FdtRegion[];
  /**
   * The raw `interrupts` cells (split them with
   * {@linkcode Fdt.interruptSpecifiers}).
   * @returns The cells; empty when there is no `interrupts`.
   * @throws {IommuError} `EIO` when the length is not a multiple of 4 bytes.
   */
  interrupts(): number[];
  /**
   * A direct child by full name, or by node name alone when the child has a
   * unit address and the name is unique enough to match first.
   * @param name E.g. `"memory@40000000"` or `"memory"`.
   * @returns The child, or `undefined`.
   */
  child(name: string): FdtNode | undefined;
}

const textDecoder = new TextDecoder();

/** The decoder's node: an {@linkcode FdtNode} it can still add to. */
export class Node implements FdtNode {
  readonly name: string;
  readonly nodeName: string;
  readonly unitAddress: string | undefined;
  readonly path: string;
  readonly parent: Node | null;
  readonly children: Node[] = [];
  readonly properties: Map<string, Uint8Array> = new Map();
  readonly offset: number;
  readonly depth: number;
  phandle: number | undefined = undefined;
  readonly #valueOffsets: Map<string, number> = new Map();
  readonly #childByName: Map<string, Node> = new Map();

  constructor(name: string, parent: Node | null, offset: number) {
    this.name = name;
    const at = name.indexOf("@");
    this.nodeName = at < 0 ? name : name.slice(0, at);
    this.unitAddress = at < 0 ? undefined : name.slice(at + 1);
    this.parent = parent;
    this.offset = offset;
    this.depth = parent === null ? 0 : parent.depth + 1;
    this.path = parent === null
      ? "/"
      : parent.parent === null
      ? "/" + name
      : parent.path + "/" + name;
  }

  addChild(child: Node): boolean {
    if (this.#childByName.has(child.name)) return false;
    this.#childByName.set(child.name, child);
    this.children.push(child);
    return true;
  }

  addProperty(name: string, value: Uint8Array, valueOffset: number): boolean {
    if (this.properties.has(name)) return false;
    this.properties.set(name, value);
    this.#valueOffsets.set(name, valueOffset);
    return true;
  }

  has(name: string): boolean {
    return this.properties.has(name);
  }

  getProperty(name: string): Uint8Array | undefined {
    return this.properties.get(name);
  }

  propertyOffset(name: string): number | undefined {
    return this.#valueOffsets.get(name);
  }

  #where(name: string): string {
    return `property '${name}' of ${this.path}`;
  }

  getU32(name: string): number | undefined {
    const v = this.properties.get(name);
    if (v === undefined) return undefined;
    if (v.length !== 4) {
      eio(
        this.#valueOffsets.get(name) ?? this.offset,
        `${this.#where(name)} has ${v.length} bytes, expected one 4-byte cell`,
      );
    }
    return readU32(v, 0);
  }

  getU32Array(name: string): number[] | undefined {
    const v = this.properties.get(name);
    if (v === undefined) return undefined;
    if (v.length % 4 !== 0) {
      eio(
        this.#valueOffsets.get(name) ?? this.offset,
        `${
          this.#where(name)
        } has ${v.length} bytes, not a whole number of 4-byte cells`,
      );
    }
    const out = new Array<number>(v.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = readU32(v, i * 4);
    return out;
  }

  getString(name: string): string | undefined {
    const v = this.properties.get(name);
    if (v === undefined) return undefined;
    const nul = v.indexOf(0);
    if (nul < 0) {
      eio(
        this.#valueOffsets.get(name) ?? this.offset,
        `${this.#where(name)} is not a NUL-terminated string`,
      );
    }
    return textDecoder.decode(v.subarray(0, nul));
  }

  getStringList(name: string): string[] | undefined {
    const v = this.properties.get(name);
    if (v === undefined) return undefined;
    if (v.length === 0) return [];
    if (v[v.length - 1] !== 0) {
      eio(
        (this.#valueOffsets.get(name) ?? this.offset) + v.length - 1,
        `${this.#where(name)} is not a NUL-terminated string list`,
      );
    }
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < v.length; i++) {
      if (v[i] === 0) {
        out.push(textDecoder.decode(v.subarray(start, i)));
        start = i + 1;
      }
    }
    return out;
  }

  isCompatible(compatible: string): boolean {
    return this.getStringList("compatible")?.includes(compatible) ?? false;
  }

  isEnabled(): boolean {
    const status = this.getString("status");
    return status === undefined || status === "okay" || status === "ok";
  }

  addressCells(): number {
    return this.getU32("#address-cells") ?? 2;
  }

  sizeCells(): number {
    return this.getU32("#size-cells") ?? 1;
  }

  reg(): FdtRegion[] {
    const cells = this.getU32Array("reg");
    if (cells === undefined) return [];
    const ac = this.parent?.addressCells() ?? 2;
    const sc = this.parent?.sizeCells() ?? 1;
    const at = this.#valueOffsets.get("reg") ?? this.offset;
    if (ac > FDT_MAX_REG_CELLS || sc > FDT_MAX_REG_CELLS) {
      throw new IommuError(
        "ERANGE",
        `FDT: reg of ${this.path} uses #address-cells ${ac} / #size-cells ${sc}; at most ${FDT_MAX_REG_CELLS} cells fit a number (at offset ${
          hex(at)
        })`,
      );
    }
    const stride = ac + sc;
    if (stride === 0) {
      if (cells.length === 0) return [];
      eio(
        at,
        `reg of ${this.path} cannot be decoded with zero address and size cells`,
      );
    }
    if (cells.length % stride !== 0) {
      eio(
        at,
        `reg of ${this.path} has ${cells.length} cells, not a multiple of ${stride} (#address-cells ${ac} + #size-cells ${sc})`,
      );
    }
    const out: FdtRegion[] = [];
    for (let i = 0; i < cells.length; i += stride) {
      out.push({
        address: joinCells(cells, i, ac, this.path, at + i * 4),
        size: joinCells(cells, i + ac, sc, this.path, at + (i + ac) * 4),
      });
    }
    return out;
  }

  interrupts(): number[] {
    return this.getU32Array("interrupts") ?? [];
  }

  child(name: string): Node | undefined {
    const exact = this.#childByName.get(name);
    if (exact !== undefined || name.includes("@")) return exact;
    return this.children.find((c) => c.nodeName === name);
  }
}

// Combines 0..2 big-endian cells into one number, refusing anything that would
// not be an exact safe integer.
function joinCells(
  cells: readonly number[],
  start: number,
  count: number,
  path: string,
  offset: number,
): number {
  if (count === 0) return 0;
  if (count === 1) return cells[start]!;
  const hi = cells[start]!;
  const lo = cells[start + 1]!;
  if (hi >= 0x200000) {
    throw new IommuError(
      "ERANGE",
      `FDT: reg of ${path} holds 0x${hi.toString(16)}${
        lo.toString(16).padStart(8, "0")
      }, above 2^53 - 1 (at offset ${hex(offset)})`,
    );
  }
  return hi * 0x100000000 + lo;
}
