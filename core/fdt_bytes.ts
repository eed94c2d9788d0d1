/**
 * Byte-level helpers of the FDT reader: big-endian cells, alignment,
 * name bytes, and the `EIO` error naming a blob offset (internal; not
 * exported from mod.ts).
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import { hex } from "./address.ts";

/**
 * Throw the reader's corruption error.
 *
 * @param offset Byte offset in the blob.
 * @param message What is wrong.
 * @throws {IommuError} `EIO`, always.
 */
export function eio(offset: number, message: string): never {
  throw new IommuError("EIO", `FDT: ${message} at offset ${hex(offset)}`);
}

/**
 * @param n Bytes.
 * @returns `n` rounded up to a multiple of 4.
 */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * Names must be printable ASCII: anything else is corruption, and a '/' in
 * a node name would make paths ambiguous.
 *
 * @param b A byte.
 * @param isNode Whether the name is a node name.
 * @returns Whether the byte may appear in the name.
 */
export function isNameByte(b: number, isNode: boolean): boolean {
  return b > 0x20 && b < 0x7f && !(isNode && b === 0x2f);
}

/**
 * @param bytes The bytes.
 * @param at Byte offset.
 * @returns The big-endian u32 there.
 */
export function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
}
