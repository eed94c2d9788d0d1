/**
 * Exynos descriptors: the encoding of level-1 and level-2 entries for each
 * page-table generation. v1-v3 store 32-bit physical addresses; v5+ store
 * `PA >> 4` (36-bit PA) and put the permission bits elsewhere.
 *
 * @module
 */

/** Level-1 entries: 4096 x 4 bytes (16 KiB), one per MiB of IOVA. */
export const LV1_ENTRIES = 4096;
/** Level-2 entries: 256 x 4 bytes (1 KiB), one per 4 KiB page. */
export const LV2_ENTRIES = 256;
/** Level-1 table bytes. */
export const LV1_TABLE_BYTES = 16384;
/** Level-2 table bytes. */
export const LV2_TABLE_BYTES = 1024;
/** Section (1 MiB) size in bytes. */
export const SECT_SIZE = 0x100000;
/** Large page (64 KiB) size in bytes. */
export const LPAGE_SIZE = 0x10000;
/** Small page (4 KiB) size in bytes. */
export const SPAGE_SIZE = 0x1000;
/** Level-2 entries a large page is stored as. */
export const SPAGES_PER_LPAGE = 16;

/** Low two bits of a level-1 entry: fault (0 and 3 both fault). */
export const LV1_TYPE_FAULT = 0;
/** Low two bits of a level-1 entry: link to a level-2 table. */
export const LV1_TYPE_PAGE = 1;
/** Low two bits of a level-1 entry: 1 MiB section. */
export const LV1_TYPE_SECTION = 2;
/** Low two bits of a level-2 entry: 64 KiB large page (2 and 3 are small). */
export const LV2_TYPE_LARGE = 1;
/** Low two bits of a level-2 entry: 4 KiB small page. */
export const LV2_TYPE_SMALL = 2;

const R = 1; // IOMMU_READ
const W = 2; // IOMMU_WRITE

/**
 * Encode and decode descriptors of one generation. Addresses are bytes; the
 * `prot` arguments are `IOMMU_READ`/`IOMMU_WRITE` bits (others ignored), and
 * permissions decode to the same bits.
 */
export interface SysmmuPteFormat {
  /** Right shift of stored addresses: 0 (v1-v3) or 4 (v5+). */
  readonly shift: 0 | 4;
  /** Physical address bits the descriptors hold: 32 or 36. */
  readonly paBits: 32 | 36;
  /** Whether write-only permission exists (v5+). */
  readonly writeOnly: boolean;
  /** Level-1 section entry for a 1 MiB-aligned `pa`. */
  section(pa: number, prot: number): number;
  /** Level-1 link to the 1 KiB-aligned level-2 table at `pa`. */
  link(pa: number): number;
  /** Level-2 large-page entry (stored 16 times) for a 64 KiB-aligned `pa`. */
  largePage(pa: number, prot: number): number;
  /** Level-2 small-page entry for a 4 KiB-aligned `pa`. */
  smallPage(pa: number, prot: number): number;
  /** Permission bits written into a section for `prot`. */
  lv1Prot(prot: number): number;
  /** Permission bits written into a level-2 entry for `prot`. */
  lv2Prot(prot: number): number;
  /** Section base PA of a section entry. */
  sectionPa(entry: number): number;
  /** Level-2 table PA of a link entry. */
  linkPa(entry: number): number;
  /** Page base PA of a large-page entry. */
  largePa(entry: number): number;
  /** Page base PA of a small-page entry. */
  smallPa(entry: number): number;
  /** `IOMMU_READ`/`IOMMU_WRITE` bits a section grants. */
  sectionPerm(entry: number): number;
  /** `IOMMU_READ`/`IOMMU_WRITE` bits a level-2 entry grants. */
  lv2Perm(entry: number): number;
}

// v1-v3: ARM short-descriptor style AP bits. AP0 set = accessible, APX set
// additionally = read-only; AP0 clear = no access. WRITE alone becomes RW.
const V1_LV1_AP0 = 1 << 10;
const V1_LV1_APX = 1 << 15;
const V1_LV2_AP0 = 1 << 4;
const V1_LV2_APX = 1 << 9;

/** v1-v3 format: 32-bit PA, AP bits (no write-only). */
export const PTE_V1: SysmmuPteFormat = Object.freeze({
  shift: 0,
  paBits: 32,
  writeOnly: false,
  lv1Prot(prot: number): number {
    const p = prot & 3;
    return p === 0 ? 0 : p === R ? V1_LV1_APX | V1_LV1_AP0 : V1_LV1_AP0;
  },
  lv2Prot(prot: number): number {
    const p = prot & 3;
    return p === 0 ? 0 : p === R ? V1_LV2_APX | V1_LV2_AP0 : V1_LV2_AP0;
  },
  section(pa: number, prot: number): number {
    return (pa | PTE_V1.lv1Prot(prot) | LV1_TYPE_SECTION) >>> 0;
  },
  link(pa: number): number {
    return (pa | LV1_TYPE_PAGE) >>> 0;
  },
  largePage(pa: number, prot: number): number {
    return (pa | PTE_V1.lv2Prot(prot) | LV2_TYPE_LARGE) >>> 0;
  },
  smallPage(pa: number, prot: number): number {
    return (pa | PTE_V1.lv2Prot(prot) | LV2_TYPE_SMALL) >>> 0;
  },
  sectionPa: (e: number): number => (e & 0xfff00000) >>> 0,
  linkPa: (e: number): number => (e & 0xffffffc0) >>> 0,
  largePa: (e: number): number => (e & 0xffff0000) >>> 0,
  smallPa: (e: number): number => (e & 0xfffff000) >>> 0,
  sectionPerm(e: number): number {
    if ((e & V1_LV1_AP0) === 0) return 0;
    return (e & V1_LV1_APX) !== 0 ? R : R | W;
  },
  lv2Perm(e: number): number {
    if ((e & V1_LV2_AP0) === 0) return 0;
    return (e & V1_LV2_APX) !== 0 ? R : R | W;
  },
});

/** v5+ format: entries hold PA >> 4 (36-bit PA); R/W bit pairs. */
export const PTE_V5: SysmmuPteFormat = Object.freeze({
  shift: 4,
  paBits: 36,
  writeOnly: true,
  // R = low bit, W = high bit: exactly IOMMU_READ/IOMMU_WRITE shifted.
  lv1Prot: (prot: number): number => (prot & 3) << 4,
  lv2Prot: (prot: number): number => (prot & 3) << 2,
  section(pa: number, prot: number): number {
    return ((pa / 16) | ((prot & 3) << 4) | LV1_TYPE_SECTION) >>> 0;
  },
  link(pa: number): number {
    return ((pa / 16) | LV1_TYPE_PAGE) >>> 0;
  },
  largePage(pa: number, prot: number): number {
    return ((pa / 16) | ((prot & 3) << 2) | LV2_TYPE_LARGE) >>> 0;
  },
  smallPage(pa: number, prot: number): number {
    return ((pa / 16) | ((prot & 3) << 2) | LV2_TYPE_SMALL) >>> 0;
  },
  sectionPa: (e: number): number => ((e & 0xffff0000) >>> 0) * 16,
  linkPa: (e: number): number => ((e & 0xffffffc0) >>> 0) * 16,
  largePa: (e: number): number => ((e & 0xfffff000) >>> 0) * 16,
  smallPa: (e: number): number => ((e & 0xffffff00) >>> 0) * 16,
  sectionPerm: (e: number): number => (e >>> 4) & 3,
  lv2Perm: (e: number): number => (e >>> 2) & 3,
});

/**
 * The format of a page-table generation.
 *
 * @param pgShift 0 (v1-v3) or 4 (v5+).
 * @returns The format.
 */
export function pteFormat(pgShift: 0 | 4): SysmmuPteFormat {
  return pgShift === 0 ? PTE_V1 : PTE_V5;
}

/**
 * True when a level-1 entry faults: type 0 or 3, or the shared zero link.
 *
 * @param entry The level-1 entry.
 * @param zeroLink The domain's `ZERO_LV2LINK` value (or -1 if none).
 * @returns Whether it is a fault entry.
 */
export function lv1IsFault(entry: number, zeroLink: number): boolean {
  const t = entry & 3;
  return t === 0 || t === 3 || entry === zeroLink;
}
