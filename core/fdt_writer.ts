/**
 * Flattened device tree (DTB) writer: turns a plain tree description into a
 * version-17 blob laid out the way `dtc` lays it out (header, memory
 * reservation block, structure block, strings block with shared suffixes), so
 * tests and fuzzers can build blobs without a compiler.
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import { hex } from "./address.ts";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_HEADER_SIZE,
  FDT_MAGIC,
  FDT_MAX_DEPTH,
  FDT_MAX_NAME_LENGTH,
  FDT_PROP,
  FDT_VERSION,
  type FdtNode,
  type FdtReservation,
} from "./fdt.ts";

/**
 * A property value for {@linkcode encodeFdt}:
 * - `true`: an empty (boolean) property such as `dma-coherent`;
 * - `string`: one NUL-terminated string;
 * - `string[]`: a string list such as `compatible`;
 * - `number`: one big-endian u32 cell (0 .. 0xffffffff);
 * - `number[]`: u32 cells, e.g. `reg` (split 64-bit values with {@linkcode u64Cells});
 * - `Uint8Array`: raw bytes, written as they are.
 */
export type FdtPropertyValue =
  | true
  | string
  | readonly string[]
  | number
  | readonly number[]
  | Uint8Array;

/** A node for {@linkcode encodeFdt}. Properties are written before children, in order. */
export interface FdtNodeDescription {
  /** Node name with unit address (`"uart@1000"`); empty or omitted for the root. */
  readonly name?: string;
  /** Properties in write order (a `Map` keeps the order of integer-like names too). */
  readonly props?:
    | Readonly<Record<string, FdtPropertyValue>>
    | ReadonlyMap<string, FdtPropertyValue>;
  /** Child nodes in write order. */
  readonly children?: readonly FdtNodeDescription[];
}

/** Header fields and reservations for {@linkcode encodeFdt}. */
export interface FdtEncodeOptions {
  /** `/memreserve/` entries (address and size in bytes). */
  readonly reservations?: readonly FdtReservation[];
  /** Physical ID of the boot CPU (header `boot_cpuid_phys`); default 0. */
  readonly bootCpuid?: number;
}

function einval(message: string): never {
  throw new IommuError("EINVAL", `FDT writer: ${message}`);
}

function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    einval(`${what} must be a u32 cell (0..0xffffffff), got ${String(value)}`);
  }
  return value;
}

function checkName(name: string, isNode: boolean, where: string): void {
  if (name.length === 0) {
    einval(`empty ${isNode ? "node" : "property"} name ${where}`);
  }
  if (name.length > FDT_MAX_NAME_LENGTH) {
    einval(
      `name '${
        name.slice(0, 32)
      }…' ${where} is longer than ${FDT_MAX_NAME_LENGTH} bytes`,
    );
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || (isNode && c === 0x2f)) {
      einval(`name '${name}' ${where} has invalid character ${hex(c)}`);
    }
  }
}

/**
 * Split a 64-bit value into two u32 cells, high first, for `reg`-style
 * properties with 2 address or size cells.
 *
 * @param value A non-negative safe integer (bytes or an address).
 * @returns `[high, low]`.
 * @throws {IommuError} `EINVAL` when `value` is not a non-negative safe integer.
 */
export function u64Cells(value: number): [number, number] {
  if (!Number.isSafeInteger(value) || value < 0) {
    einval(
      `64-bit cell value must be a non-negative safe integer, got ${
        String(value)
      }`,
    );
  }
  return [Math.floor(value / 0x100000000), value % 0x100000000];
}

const encoder = new TextEncoder();

function encodeValue(value: FdtPropertyValue, where: string): Uint8Array {
  if (value === true) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return encodeStrings([value], where);
  if (typeof value === "number") {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, checkU32(value, where));
    return out;
  }
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "string")) {
      return encodeStrings(value as readonly string[], where);
    }
    const cells = value as readonly unknown[];
    const out = new Uint8Array(cells.length * 4);
    const view = new DataView(out.buffer);
    cells.forEach((c, i) => {
      if (typeof c !== "number") einval(`${where} mixes cells and strings`);
      view.setUint32(i * 4, checkU32(c, `${where} cell ${i}`));
    });
    return out;
  }
  return einval(`${where} has unsupported value type ${typeof value}`);
}

function encodeStrings(strings: readonly string[], where: string): Uint8Array {
  const parts = strings.map((s) => {
    if (s.includes("\0")) einval(`${where} string contains a NUL character`);
    return encoder.encode(s);
  });
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length + 1;
  }
  return out;
}

// Growable big-endian byte buffer; blobs are small, so doubling is plenty.
class ByteSink {
  bytes: Uint8Array = new Uint8Array(256);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }

  u32(v: number): void {
    this.#reserve(4);
    new DataView(this.bytes.buffer).setUint32(this.length, v);
    this.length += 4;
  }

  raw(b: Uint8Array): void {
    this.#reserve(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }

  pad4(): void {
    const n = (4 - (this.length & 3)) & 3;
    this.#reserve(n);
    this.bytes.fill(0, this.length, this.length + n);
    this.length += n;
  }

  take(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

/**
 * Encode a tree description as a version-17 DTB, laid out like `dtc` output
 * (so a tree read back with {@linkcode describeFdtNode} re-encodes to the
 * same bytes `dtc` produced).
 *
 * @example
 * ```ts
 * import { encodeFdt } from "./fdt_writer.ts";
 * const dtb = encodeFdt({
 *   props: { compatible: ["acme,board"], "#address-cells": 1, "#size-cells": 1 },
 *   children: [{ name: "iommu@1000", props: { reg: [0x1000, 0x1000], "#iommu-cells": 0 } }],
 * });
 * if (dtb[0] !== 0xd0) throw new Error("not a DTB");
 * ```
 *
 * @param root The root node (its name must be empty or omitted).
 * @param options Reservations and the boot CPU ID.
 * @returns The blob.
 * @throws {IommuError} `EINVAL` for a named root, an empty, over-long or
 * non-printable name (or a `/` in a node name), duplicate child names, a cell
 * outside u32, a string containing NUL, nesting deeper than
 * {@linkcode FDT_MAX_DEPTH}, or a reservation that is not a safe integer.
 */
export function encodeFdt(
  root: FdtNodeDescription,
  options: FdtEncodeOptions = {},
): Uint8Array {
  if (root.name !== undefined && root.name !== "") {
    einval(`root node must have an empty name, got '${root.name}'`);
  }
  const bootCpuid = checkU32(options.bootCpuid ?? 0, "bootCpuid");

  const strings = new ByteSink();
  const stringText: string[] = [];
  const stringOffset = (name: string): number => {
    // Share any earlier string ending with this one, as dtc does.
    const joined = stringText.join("");
    for (let i = 0; i <= joined.length - name.length - 1; i++) {
      if (joined.startsWith(name + "\0", i)) return i;
    }
    const at = strings.length;
    const bytes = encoder.encode(name + "\0");
    strings.raw(bytes);
    stringText.push(name + "\0");
    return at;
  };

  const struct = new ByteSink();
  const writeNode = (
    node: FdtNodeDescription,
    path: string,
    depth: number,
  ): void => {
    if (depth > FDT_MAX_DEPTH) {
      einval(`nodes nest deeper than ${FDT_MAX_DEPTH} levels at ${path}`);
    }
    struct.u32(FDT_BEGIN_NODE);
    struct.raw(encoder.encode((node.name ?? "") + "\0"));
    struct.pad4();
    const props = node.props === undefined
      ? []
      : node.props instanceof Map
      ? [...(node.props as ReadonlyMap<string, FdtPropertyValue>)]
      : Object.entries(node.props);
    for (const [name, value] of props) {
      checkName(name, false, `in ${path}`);
      const bytes = encodeValue(value, `property '${name}' of ${path}`);
      struct.u32(FDT_PROP);
      struct.u32(bytes.length);
      struct.u32(stringOffset(name));
      struct.raw(bytes);
      struct.pad4();
    }
    const seen = new Set<string>();
    for (const child of node.children ?? []) {
      const name = child.name ?? "";
      checkName(name, true, `under ${path}`);
      if (seen.has(name)) einval(`duplicate node '${name}' under ${path}`);
      seen.add(name);
      writeNode(
        child,
        path === "/" ? "/" + name : path + "/" + name,
        depth + 1,
      );
    }
    struct.u32(FDT_END_NODE);
  };
  writeNode(root, "/", 1);
  struct.u32(FDT_END);

  const rsv = new ByteSink();
  for (const [i, r] of (options.reservations ?? []).entries()) {
    const [aHi, aLo] = u64Cells(r.address);
    const [sHi, sLo] = u64Cells(r.size);
    if ((aHi | aLo | sHi | sLo) === 0) {
      einval(`reservation ${i} is all zero (that marks the end)`);
    }
    rsv.u32(aHi);
    rsv.u32(aLo);
    rsv.u32(sHi);
    rsv.u32(sLo);
  }
  for (let i = 0; i < 4; i++) rsv.u32(0);

  const offRsv = FDT_HEADER_SIZE; // already 8-byte aligned
  const offStruct = offRsv + rsv.length;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const header = [
    FDT_MAGIC,
    total,
    offStruct,
    offStrings,
    offRsv,
    FDT_VERSION,
    16,
    bootCpuid,
    strings.length,
    struct.length,
  ];
  header.forEach((v, i) => view.setUint32(i * 4, v));
  out.set(rsv.take(), offRsv);
  out.set(struct.take(), offStruct);
  out.set(strings.take(), offStrings);
  return out;
}

/**
 * Turn a parsed node (and its subtree) back into a description whose
 * properties are raw bytes, e.g. to re-encode a DTB or to edit one in tests.
 *
 * @param node A node from {@linkcode parseFdt}.
 * @returns The description (property values are copies).
 */
export function describeFdtNode(node: FdtNode): FdtNodeDescription {
  const props = new Map<string, FdtPropertyValue>();
  for (const [name, value] of node.properties) props.set(name, value.slice());
  return {
    name: node.name,
    props,
    children: node.children.map(describeFdtNode),
  };
}
