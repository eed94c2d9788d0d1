/**
 * Decoding an untrusted DTB: header checks, the memory reservation block,
 * the structure block walked into {@linkcode Node}s, strings, and phandle
 * validation (internal; {@linkcode parseFdt} calls it).
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
  FDT_MIN_VERSION,
  FDT_NOP,
  FDT_PROP,
  FDT_VERSION,
  type FdtHeader,
  type FdtReservation,
} from "./fdt_format.ts";
import { align4, eio, isNameByte, readU32 } from "./fdt_bytes.ts";
import { Node } from "./fdt_node.ts";

/** What the decoder found. */
export interface Decoded {
  header: FdtHeader;
  reservations: FdtReservation[];
  root: Node;
  nodes: Node[];
  byPhandle: Map<number, Node>;
}

// Reads an untrusted blob. Every loop advances through the blob, so the work is
// bounded by its size; every read is checked against the enclosing block.
export function decode(blob: Uint8Array): Decoded {
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
