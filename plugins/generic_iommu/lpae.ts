/**
 * ARM LPAE (VMSAv8-64) descriptors with a 4 KiB granule: geometry of the
 * 4-level walk and the encoding of table, block and page descriptors. Each
 * 64-bit descriptor is handled as two little-endian 32-bit words (low word
 * first) so no bigint is needed on hot paths.
 *
 * Bits used (64-bit positions; low word = bits 31:0, high word = bits 63:32):
 * - [1:0] type: 0b11 table (levels 0-2) or page (level 3), 0b01 block
 *   (levels 1-2); bit 0 clear = invalid; 0b01 at level 3 is reserved.
 * - [47:12] output address (next table, block or page).
 * - Stage 1: AttrIndx[4:2] (0 normal non-cacheable, 1 cacheable, 2 device),
 *   AP_UNPRIV b6, AP_RDONLY b7, SH[9:8] (2 outer, 3 inner shareable), AF b10,
 *   nG b11.
 * - Stage 2: MemAttr[5:2] (0x5 non-cacheable, 0xf cacheable, 0x1 device),
 *   HAP[7:6] (b6 read, b7 write), SH[9:8], AF b10.
 * - XN[54:53] (both set for no-execute).
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
} from "../../core/mod.ts";

/** Translation stage whose attribute format the descriptors use. */
export type LpaeStage = 1 | 2;

/** Bytes of the 4 KiB granule (and of every non-root table). */
export const GRANULE = 4096;
/** Descriptors per full table. */
export const ENTRIES_PER_TABLE = 512;
/** Address shift of each level 0..3: 39, 30, 21, 12. */
export const LEVEL_SHIFT: readonly number[] = [39, 30, 21, 12];
/** Bytes one descriptor at each level 0..3 covers: 512 GiB, 1 GiB, 2 MiB, 4 KiB. */
export const LEVEL_SIZE: readonly number[] = [
  2 ** 39,
  2 ** 30,
  2 ** 21,
  2 ** 12,
];
/** Leaf sizes the format supports with a 4 KiB granule, ascending: 4 KiB, 2 MiB, 1 GiB. */
export const LPAE_PAGE_SIZES: readonly number[] = [4096, 2 ** 21, 2 ** 30];

/** Descriptor bit: valid. */
export const DESC_VALID = 1;
/** Type bits [1:0] of a table (levels 0-2) or page (level 3) descriptor. */
export const DESC_TYPE_TABLE = 3;
/** Type bits [1:0] of a block descriptor (levels 1-2). */
export const DESC_TYPE_BLOCK = 1;
/** Low-word mask of the output address bits [31:12]. */
export const DESC_ADDR_LO_MASK = 0xfffff000;
/** High-word mask of the output address bits [47:32]. */
export const DESC_ADDR_HI_MASK = 0xffff;
/** Stage-1 AttrIndx shift (bits [4:2]). */
export const S1_ATTRINDX_SHIFT = 2;
/** Stage-1 MAIR index: normal non-cacheable. */
export const S1_ATTR_NC = 0;
/** Stage-1 MAIR index: normal write-back cacheable. */
export const S1_ATTR_CACHE = 1;
/** Stage-1 MAIR index: device memory. */
export const S1_ATTR_DEV = 2;
/** Stage-1 bit 6: accessible at EL0 (unprivileged). */
export const S1_AP_UNPRIV = 1 << 6;
/** Stage-1 bit 7: read-only. */
export const S1_AP_RDONLY = 1 << 7;
/** Stage-1 bit 11: not global. */
export const S1_NG = 1 << 11;
/** Stage-2 MemAttr shift (bits [5:2]). */
export const S2_MEMATTR_SHIFT = 2;
/** Stage-2 MemAttr: normal outer/inner write-back. */
export const S2_MEMATTR_OIWB = 0xf;
/** Stage-2 MemAttr: normal non-cacheable. */
export const S2_MEMATTR_NC = 0x5;
/** Stage-2 MemAttr: device. */
export const S2_MEMATTR_DEV = 0x1;
/** Stage-2 bit 6: HAP read. */
export const S2_HAP_READ = 1 << 6;
/** Stage-2 bit 7: HAP write. */
export const S2_HAP_WRITE = 1 << 7;
/** Shareability shift (bits [9:8]). */
export const SH_SHIFT = 8;
/** Shareability: outer shareable. */
export const SH_OS = 2;
/** Shareability: inner shareable. */
export const SH_IS = 3;
/** Bit 10: access flag (the walker faults on a leaf without it). */
export const DESC_AF = 1 << 10;
/** High-word bits 22:21 (bits 54:53): execute never. */
export const DESC_HI_XN = 3 << 21;

/** Shape of a page-table walk for one input size. */
export interface LpaeGeometry {
  /** IOVA width in bits (32 to 48). */
  inputBits: number;
  /** First level walked: 0 for more than 39 input bits, else 1. */
  startLevel: number;
  /** Descriptors in the root table (a power of two up to 512). */
  rootEntries: number;
}

/**
 * Walk geometry for an input size (Linux `arm_lpae` rules with a 4 KiB
 * granule: 9 bits per level).
 *
 * @param inputBits IOVA width in bits, 32 to 48.
 * @returns Start level and root-table entries.
 */
export function lpaeGeometry(inputBits: number): LpaeGeometry {
  const vaBits = inputBits - 12;
  const levels = Math.ceil(vaBits / 9);
  const startLevel = 4 - levels;
  const pgdBits = vaBits - 9 * (levels - 1);
  return { inputBits, startLevel, rootEntries: 2 ** pgdBits };
}

/**
 * The level whose leaves have `pageSize` bytes: 3 for 4 KiB, 2 for 2 MiB,
 * 1 for 1 GiB, -1 otherwise.
 *
 * @param pageSize Leaf size in bytes.
 * @returns The level, or -1.
 */
export function levelOfSize(pageSize: number): number {
  return pageSize === 4096
    ? 3
    : pageSize === 2 ** 21
    ? 2
    : pageSize === 2 ** 30
    ? 1
    : -1;
}

/**
 * Index of `iova`'s descriptor in a table at `level` (full 9-bit index; the
 * root of a short walk only ever sees indexes below its entry count because
 * IOVAs are checked against the input size first).
 *
 * @param iova Input address in bytes (safe integer).
 * @param level 0 to 3.
 * @returns 0 to 511.
 */
export function tableIndex(iova: number, level: number): number {
  // `& 511` works on any safe integer: ToInt32 keeps the low 32 bits exactly.
  return Math.floor(iova / LEVEL_SIZE[level]!) & 511;
}

/**
 * Low-word attribute bits of a leaf for `prot` (type bits excluded).
 *
 * @param prot `IOMMU_*` bits.
 * @param stage Attribute format.
 * @returns Bits to OR into the low word.
 */
export function leafAttrLo(prot: number, stage: LpaeStage): number {
  const cache = (prot & IOMMU_CACHE) !== 0;
  let lo = DESC_AF | ((cache ? SH_IS : SH_OS) << SH_SHIFT);
  if (stage === 1) {
    lo |= S1_NG;
    if ((prot & IOMMU_WRITE) === 0) lo |= S1_AP_RDONLY;
    if ((prot & IOMMU_PRIV) === 0) lo |= S1_AP_UNPRIV;
    const idx = (prot & IOMMU_MMIO) !== 0
      ? S1_ATTR_DEV
      : cache
      ? S1_ATTR_CACHE
      : S1_ATTR_NC;
    lo |= idx << S1_ATTRINDX_SHIFT;
  } else {
    if ((prot & IOMMU_READ) !== 0) lo |= S2_HAP_READ;
    if ((prot & IOMMU_WRITE) !== 0) lo |= S2_HAP_WRITE;
    const attr = (prot & IOMMU_MMIO) !== 0
      ? S2_MEMATTR_DEV
      : cache
      ? S2_MEMATTR_OIWB
      : S2_MEMATTR_NC;
    lo |= attr << S2_MEMATTR_SHIFT;
  }
  return lo;
}

/**
 * High-word attribute bits of a leaf for `prot` (address bits excluded).
 *
 * @param prot `IOMMU_*` bits.
 * @returns Bits to OR into the high word.
 */
export function leafAttrHi(prot: number): number {
  return (prot & IOMMU_NOEXEC) !== 0 ? DESC_HI_XN : 0;
}

/**
 * The `IOMMU_*` bits a leaf grants, decoded from its words. Stage 1 cannot
 * express write-only, so every valid stage-1 leaf reads as readable.
 *
 * @param lo Low word.
 * @param hi High word.
 * @param stage Attribute format.
 * @returns `IOMMU_*` bits.
 */
export function decodeProt(lo: number, hi: number, stage: LpaeStage): number {
  let prot = 0;
  if (stage === 1) {
    prot |= IOMMU_READ;
    if ((lo & S1_AP_RDONLY) === 0) prot |= IOMMU_WRITE;
    if ((lo & S1_AP_UNPRIV) === 0) prot |= IOMMU_PRIV;
    const idx = (lo >>> S1_ATTRINDX_SHIFT) & 7;
    if (idx === S1_ATTR_CACHE) prot |= IOMMU_CACHE;
    else if (idx === S1_ATTR_DEV) prot |= IOMMU_MMIO;
  } else {
    if ((lo & S2_HAP_READ) !== 0) prot |= IOMMU_READ;
    if ((lo & S2_HAP_WRITE) !== 0) prot |= IOMMU_WRITE;
    const attr = (lo >>> S2_MEMATTR_SHIFT) & 15;
    if (attr === S2_MEMATTR_OIWB) prot |= IOMMU_CACHE;
    else if (attr === S2_MEMATTR_DEV) prot |= IOMMU_MMIO;
  }
  if ((hi & DESC_HI_XN) !== 0) prot |= IOMMU_NOEXEC;
  return prot;
}

/**
 * Access bits (1 read, 2 write) the hardware allows through a leaf; the
 * same values as `ACCESS_READ`/`ACCESS_WRITE`. Stage 1: readable, and
 * writable unless AP[2] (`S1_AP_RDONLY`, bit 7) is set; stage 2: HAP
 * (`S2_HAP_READ` bit 6, `S2_HAP_WRITE` bit 7). Small enough for V8 to
 * inline into a walk (the bits are literals: an imported constant costs a
 * load and a check in optimised code).
 *
 * @param lo Low word of the leaf (bits 31:0).
 * @param stage Attribute format.
 * @returns 0 to 3.
 */
export function leafAccess(lo: number, stage: LpaeStage): number {
  return stage === 1 ? ((lo & 0x80) === 0 ? 3 : 1) : (lo >>> 6) & 3;
}

/**
 * Output address held in a descriptor (bits [47:12]).
 *
 * @param lo Low word.
 * @param hi High word.
 * @returns The address in bytes.
 */
export function descAddress(lo: number, hi: number): number {
  return (hi & DESC_ADDR_HI_MASK) * 0x100000000 +
    ((lo & DESC_ADDR_LO_MASK) >>> 0);
}

/**
 * Output address of a leaf found at `level`, masked to the leaf's size: bits
 * [47:12] of a page (level 3), [47:21] of a 2 MiB block (level 2), [47:30]
 * of a 1 GiB block (level 1). A block's address bits below its size are
 * RES0 and ignored, so a stray bit there cannot move a translation outside
 * the block (the address plus the IOVA's offset in the leaf stays inside
 * the block's output range).
 *
 * @param lo Low word.
 * @param hi High word.
 * @param level 1 to 3 (any other level is decoded as a page).
 * @returns The address in bytes, aligned to the leaf size.
 */
export function leafAddress(lo: number, hi: number, level: number): number {
  const mask = level === 2 ? 0xffe00000 : level === 1 ? 0xc0000000 : 0xfffff000;
  return (hi & DESC_ADDR_HI_MASK) * 0x100000000 + ((lo & mask) >>> 0);
}

/** What a descriptor is, at a given level. */
export type DescriptorKind =
  | "invalid"
  | "table"
  | "block"
  | "page"
  | "reserved";

/**
 * Classify a descriptor found at `level`.
 *
 * @param lo Low word.
 * @param level 0 to 3.
 * @returns Its kind (level-0 blocks and level-3 0b01 are `reserved`).
 */
export function descKind(lo: number, level: number): DescriptorKind {
  if ((lo & DESC_VALID) === 0) return "invalid";
  const type = lo & 3;
  if (level === 3) return type === 3 ? "page" : "reserved";
  if (type === 3) return "table";
  return level === 0 ? "reserved" : "block";
}

/**
 * Encode a table descriptor pointing at `tablePa`.
 *
 * @param tablePa Next-level table, 4 KiB aligned.
 * @returns `[lo, hi]` words.
 */
export function encodeTable(tablePa: number): [number, number] {
  return [
    ((tablePa % 0x100000000) | DESC_TYPE_TABLE) >>> 0,
    Math.floor(tablePa / 0x100000000),
  ];
}

/**
 * Encode a leaf (block at levels 1-2, page at level 3).
 *
 * @param pa Output address, aligned to the leaf size.
 * @param level 1 to 3.
 * @param prot `IOMMU_*` bits.
 * @param stage Attribute format.
 * @returns `[lo, hi]` words.
 */
export function encodeLeaf(
  pa: number,
  level: number,
  prot: number,
  stage: LpaeStage,
): [number, number] {
  const type = level === 3 ? DESC_TYPE_TABLE : DESC_TYPE_BLOCK;
  return [
    ((pa % 0x100000000) | leafAttrLo(prot, stage) | type) >>> 0,
    (Math.floor(pa / 0x100000000) | leafAttrHi(prot)) >>> 0,
  ];
}
