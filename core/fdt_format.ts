/**
 * The flattened device tree format's constants and block layouts (DTSpec
 * v0.4 chapter 5): header, tokens, the reader's limits, and the header and
 * memory-reservation records.
 *
 * @module
 */

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
