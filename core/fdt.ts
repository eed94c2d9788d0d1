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
 * @module
 */
import { IommuError } from "./errors.ts";
import { hex } from "./address.ts";

/** The FDT header magic number (big-endian at offset 0). */
export const FDT_MAGIC = 0xd00dfeed;
/** Structure-block token: start of a node, followed by its NUL-terminated name. */
export const FDT_BEGIN_NODE = 0x1;
/** Structure-block token: end of the innermost open node. */
export const FDT_END_NODE = 0x2;
/** Structure-block token: a property (u32 length, u32 name offset, value). */
export const FDT_PROP = 0x3;
/** Structure-block token: no operation (skipped). */
export const FDT_NOP = 0x4;
/** Structure-block token: end of the structure block. */
export const FDT_END = 0x9;
/** The newest blob version this reader understands (and the writer emits). */
export const FDT_VERSION = 17;
/** The oldest blob version this reader accepts. */
export const FDT_MIN_VERSION = 16;
/** Size in bytes of a version-17 header. */
export const FDT_HEADER_SIZE = 40;
/** Deepest node nesting accepted (the root is depth 1); deeper blobs give `EIO`. */
export const FDT_MAX_DEPTH = 64;
/** Longest node or property name accepted, in bytes (bounds every name scan). */
export const FDT_MAX_NAME_LENGTH = 256;
/** Most `#address-cells` / `#size-cells` a `reg` decode supports (2 cells = 64 bits). */
export const FDT_MAX_REG_CELLS = 2;
/** Most `#iommu-cells` accepted before the value is treated as corrupt. */
export const FDT_MAX_IOMMU_CELLS = 16;

/** The decoded FDT header. Offsets and sizes are in bytes from the blob start. */
export interface FdtHeader {
  /** Always {@linkcode FDT_MAGIC}. */
  readonly magic: number;
  /** Size of the whole blob in bytes. */
  readonly totalSize: number;
  /** Byte offset of the structure block. */
  readonly offDtStruct: number;
  /** Byte offset of the strings block. */
  readonly offDtStrings: number;
  /** Byte offset of the memory reservation block. */
  readonly offMemRsvmap: number;
  /** Blob format version (16 or 17). */
  readonly version: number;
  /** Oldest version this blob is backwards compatible with. */
  readonly lastCompVersion: number;
  /** Physical ID of the boot CPU. */
  readonly bootCpuid: number;
  /** Size of the strings block in bytes. */
  readonly sizeDtStrings: number;
  /** Size of the structure block in bytes (derived for version 16 blobs). */
  readonly sizeDtStruct: number;
}

/** One `/memreserve/` entry: a physical range the OS must not use. */
export interface FdtReservation {
  /** Physical start address in bytes. */
  readonly address: number;
  /** Length in bytes. */
  readonly size: number;
}

/** One `reg` entry, in the parent bus's address space. */
export interface FdtRegion {
  /** Start address in bytes. */
  readonly address: number;
  /** Length in bytes (0 when the parent has `#size-cells = <0>`). */
  readonly size: number;
}

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

function eio(offset: number, message: string): never {
  throw new IommuError("EIO", `FDT: ${message} at offset ${hex(offset)}`);
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

// Names must be printable ASCII: anything else is corruption, and a '/' in a
// node name would make paths ambiguous.
function isNameByte(b: number, isNode: boolean): boolean {
  return b > 0x20 && b < 0x7f && !(isNode && b === 0x2f);
}

class Node implements FdtNode {
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

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
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

interface Decoded {
  header: FdtHeader;
  reservations: FdtReservation[];
  root: Node;
  nodes: Node[];
  byPhandle: Map<number, Node>;
}

// Reads an untrusted blob. Every loop advances through the blob, so the work is
// bounded by its size; every read is checked against the enclosing block.
function decode(blob: Uint8Array): Decoded {
  if (!(blob instanceof Uint8Array)) {
    throw new IommuError(
      "EINVAL",
      `FDT: blob must be a Uint8Array, got ${typeof blob}`,
    );
  }
  if (blob.length < FDT_HEADER_SIZE) {
    eio(
      blob.length,
      `blob of ${blob.length} bytes is shorter than the ${FDT_HEADER_SIZE}-byte header`,
    );
  }
  const u32 = (at: number): number => readU32(blob, at);
  const magic = u32(0);
  if (magic !== FDT_MAGIC) {
    eio(0, `bad magic ${hex(magic)}, expected ${hex(FDT_MAGIC)}`);
  }
  const totalSize = u32(4);
  if (totalSize > blob.length) {
    eio(
      4,
      `totalsize ${hex(totalSize)} exceeds the ${
        hex(blob.length)
      } bytes given (truncated blob)`,
    );
  }
  if (totalSize < FDT_HEADER_SIZE) {
    eio(4, `totalsize ${hex(totalSize)} is smaller than the header`);
  }
  const offDtStruct = u32(8);
  const offDtStrings = u32(12);
  const offMemRsvmap = u32(16);
  const version = u32(20);
  const lastCompVersion = u32(24);
  const bootCpuid = u32(28);
  const sizeDtStrings = u32(32);
  if (version < FDT_MIN_VERSION) {
    eio(20, `version ${version} is older than ${FDT_MIN_VERSION}`);
  }
  if (lastCompVersion > FDT_VERSION) {
    eio(
      24,
      `last_comp_version ${lastCompVersion} is newer than ${FDT_VERSION}`,
    );
  }
  if (lastCompVersion > version) {
    eio(24, `last_comp_version ${lastCompVersion} is above version ${version}`);
  }
  const headerSize = version >= 17 ? FDT_HEADER_SIZE : 36;
  const sizeDtStruct = version >= 17 ? u32(36) : totalSize - offDtStruct;

  const checkBlock = (
    off: number,
    size: number,
    fieldAt: number,
    what: string,
    align: number,
  ): void => {
    if (off < headerSize || off > totalSize) {
      eio(
        fieldAt,
        `${what} offset ${hex(off)} lies outside ${hex(headerSize)}..${
          hex(totalSize)
        }`,
      );
    }
    if (off % align !== 0) {
      eio(fieldAt, `${what} offset ${hex(off)} is not ${align}-byte aligned`);
    }
    if (size > totalSize - off) {
      eio(
        fieldAt,
        `${what} ${hex(off)}+${hex(size)} runs past totalsize ${
          hex(totalSize)
        }`,
      );
    }
  };
  checkBlock(offMemRsvmap, 0, 16, "memory reservation block", 8);
  checkBlock(offDtStruct, sizeDtStruct, 8, "structure block", 4);
  checkBlock(offDtStrings, sizeDtStrings, 12, "strings block", 1);

  const header: FdtHeader = {
    magic,
    totalSize,
    offDtStruct,
    offDtStrings,
    offMemRsvmap,
    version,
    lastCompVersion,
    bootCpuid,
    sizeDtStrings,
    sizeDtStruct,
  };

  // Property values become views into this private copy, so a caller that
  // later reuses its buffer cannot change a parsed tree.
  const data = blob.slice(0, totalSize);

  const reservations: FdtReservation[] = [];
  for (let at = offMemRsvmap;; at += 16) {
    if (at + 16 > totalSize) {
      eio(
        at,
        "memory reservation block runs past the end without its terminating entry",
      );
    }
    const aHi = readU32(data, at);
    const aLo = readU32(data, at + 4);
    const sHi = readU32(data, at + 8);
    const sLo = readU32(data, at + 12);
    if ((aHi | aLo | sHi | sLo) === 0) break;
    if (aHi >= 0x200000 || sHi >= 0x200000) {
      throw new IommuError(
        "ERANGE",
        `FDT: memory reservation at offset ${hex(at)} does not fit in 2^53 - 1`,
      );
    }
    reservations.push({
      address: aHi * 0x100000000 + aLo,
      size: sHi * 0x100000000 + sLo,
    });
  }

  const stringsEnd = offDtStrings + sizeDtStrings;
  const nameCache = new Map<number, string>();
  const propName = (nameOff: number, fieldAt: number): string => {
    const cached = nameCache.get(nameOff);
    if (cached !== undefined) return cached;
    if (nameOff >= sizeDtStrings) {
      eio(
        fieldAt,
        `property name offset ${hex(nameOff)} lies outside the ${
          hex(sizeDtStrings)
        }-byte strings block`,
      );
    }
    const start = offDtStrings + nameOff;
    // The length cap keeps this scan O(1) per property, whatever the blob.
    const limit = Math.min(stringsEnd, start + FDT_MAX_NAME_LENGTH + 1);
    let end = start;
    while (end < limit && data[end] !== 0) {
      if (!isNameByte(data[end]!, false)) {
        eio(end, `property name has non-printable byte ${hex(data[end]!)}`);
      }
      end++;
    }
    if (end >= limit) {
      eio(
        start,
        "property name is not NUL-terminated within the strings block (or too long)",
      );
    }
    if (end === start) eio(start, "empty property name");
    const name = String.fromCharCode(...data.subarray(start, end));
    nameCache.set(nameOff, name);
    return name;
  };

  const structEnd = offDtStruct + sizeDtStruct;
  const stack: Node[] = [];
  const nodes: Node[] = [];
  let root: Node | undefined;
  let pos = offDtStruct;
  for (;;) {
    if (pos + 4 > structEnd) {
      eio(pos, "structure block ends without an FDT_END token");
    }
    const tokAt = pos;
    const token = readU32(data, pos);
    pos += 4;
    if (token === FDT_BEGIN_NODE) {
      const limit = Math.min(structEnd, pos + FDT_MAX_NAME_LENGTH + 1);
      let end = pos;
      while (end < limit && data[end] !== 0) {
        if (!isNameByte(data[end]!, true)) {
          eio(end, `node name has invalid byte ${hex(data[end]!)}`);
        }
        end++;
      }
      if (end >= limit) {
        eio(
          pos,
          "node name is not NUL-terminated within the structure block (or too long)",
        );
      }
      const name = String.fromCharCode(...data.subarray(pos, end));
      pos = align4(end + 1);
      const parent = stack[stack.length - 1];
      if (parent === undefined) {
        if (root !== undefined) {
          eio(tokAt, "a second root node follows the first");
        }
        if (name !== "") {
          eio(tokAt, `root node has name '${name}', expected an empty name`);
        }
        root = new Node("", null, tokAt);
        stack.push(root);
        nodes.push(root);
        continue;
      }
      if (name === "") {
        eio(tokAt, `node under ${parent.path} has an empty name`);
      }
      if (stack.length >= FDT_MAX_DEPTH) {
        eio(tokAt, `nodes nest deeper than ${FDT_MAX_DEPTH} levels`);
      }
      const node = new Node(name, parent, tokAt);
      if (!parent.addChild(node)) {
        eio(tokAt, `duplicate node ${node.path}`);
      }
      stack.push(node);
      nodes.push(node);
    } else if (token === FDT_END_NODE) {
      if (stack.pop() === undefined) {
        eio(tokAt, "FDT_END_NODE without an open node");
      }
    } else if (token === FDT_PROP) {
      const node = stack[stack.length - 1];
      if (node === undefined) eio(tokAt, "property outside any node");
      if (pos + 8 > structEnd) {
        eio(pos, "property header runs past the structure block");
      }
      const len = readU32(data, pos);
      const nameOff = readU32(data, pos + 4);
      pos += 8;
      if (len > structEnd - pos) {
        eio(
          pos,
          `property value of ${
            hex(len)
          } bytes runs past the structure block end ${hex(structEnd)}`,
        );
      }
      const name = propName(nameOff, tokAt + 8);
      if (node.children.length > 0) {
        eio(tokAt, `property '${name}' of ${node.path} follows a subnode`);
      }
      if (!node.addProperty(name, data.subarray(pos, pos + len), pos)) {
        eio(tokAt, `duplicate property '${name}' in ${node.path}`);
      }
      pos = align4(pos + len);
    } else if (token === FDT_NOP) {
      continue;
    } else if (token === FDT_END) {
      if (root === undefined) eio(tokAt, "structure block has no root node");
      if (stack.length !== 0) {
        eio(
          tokAt,
          `FDT_END with ${stack.length} node(s) still open (missing FDT_END_NODE)`,
        );
      }
      break;
    } else {
      eio(tokAt, `unknown structure token ${hex(token)}`);
    }
  }

  const byPhandle = new Map<number, Node>();
  for (const node of nodes) {
    let ph: number | undefined;
    for (const prop of ["phandle", "linux,phandle"]) {
      const v = node.getU32(prop);
      if (v === undefined) continue;
      if (v === 0 || v === 0xffffffff) {
        eio(
          node.propertyOffset(prop)!,
          `${node.path} has reserved phandle ${hex(v)}`,
        );
      }
      if (ph !== undefined && ph !== v) {
        eio(
          node.propertyOffset(prop)!,
          `${node.path} has two different phandles ${hex(ph)} and ${hex(v)}`,
        );
      }
      ph = v;
    }
    if (ph === undefined) continue;
    const other = byPhandle.get(ph);
    if (other !== undefined) {
      eio(
        node.offset,
        `phandle ${hex(ph)} of ${node.path} is already used by ${other.path}`,
      );
    }
    node.phandle = ph;
    byPhandle.set(ph, node);
  }

  return { header, reservations, root: root!, nodes, byPhandle };
}

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
    const cells = master.getU32Array("iommus");
    if (cells === undefined) return [];
    const at = master.propertyOffset("iommus") ?? master.offset;
    const names = master.getStringList("iommu-names");
    const out: FdtIommuRef[] = [];
    let i = 0;
    while (i < cells.length) {
      const phandle = cells[i]!;
      const iommu = this.#byPhandle.get(phandle);
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
   * @returns The controller node, or `undefined` when no ancestor names one.
   * @throws {IommuError} `ENOENT` when the phandle names no node; `EIO` when
   * `interrupt-parent` is malformed.
   */
  interruptParent(node: FdtNode): FdtNode | undefined {
    for (let n: FdtNode | null = node; n !== null; n = n.parent) {
      const ph = n.getU32("interrupt-parent");
      if (ph === undefined) continue;
      const target = this.#byPhandle.get(ph);
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
   * @returns One cell array per interrupt; empty without `interrupts`.
   * @throws {IommuError} `ENOENT` when there is no (or a dangling) interrupt
   * parent; `EINVAL` when it has no `#interrupt-cells`; `EIO` when the cells
   * do not divide into whole specifiers.
   */
  interruptSpecifiers(node: FdtNode): number[][] {
    const cells = node.interrupts();
    if (cells.length === 0) return [];
    const parent = this.interruptParent(node);
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
