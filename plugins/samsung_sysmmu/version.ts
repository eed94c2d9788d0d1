/**
 * The MMU_VERSION register: decoding a raw value into a version and the
 * register layout and page-table generation it implies.
 *
 * @module
 */
import { hex, IommuError } from "../../core/mod.ts";

/** Register layouts: v1-v3, v5, v7 without and with VM registers. */
export type SysmmuLayoutName = "v1" | "v5" | "v7" | "v7-vm";

/** The raw value some SoCs report instead of a real version; read as v1.0. */
export const SYSMMU_BOGUS_VERSION = 0x80000001;

/** CAPA0 bit 11: CAPA1 is implemented (v7). */
export const CAPA0_CAPA1_EXIST = 1 << 11;
/** CAPA1 bit 14: the unit has VM control registers (v7-VM layout). */
export const CAPA1_VCR_ENABLED = 1 << 14;

/** A decoded version. */
export interface SysmmuVersion {
  /** The raw MMU_VERSION register value (u32). */
  readonly raw: number;
  /** Major version (register bits 31:28; 1 for the bogus value). */
  readonly major: number;
  /** Minor version (register bits 27:21). */
  readonly minor: number;
  /** `(major << 7) | minor`: compare versions with this number. */
  readonly value: number;
  /** Register layout (for v7, chosen by CAPA0/CAPA1). */
  readonly layout: SysmmuLayoutName;
  /**
   * Right shift applied to physical addresses stored in descriptors: 0 before
   * v5 (32-bit PA), 4 from v5 (entries hold PA >> 4, 36-bit PA).
   */
  readonly pgShift: 0 | 4;
}

/**
 * `(major << 7) | minor`, the number versions are compared by.
 *
 * @param major Major version.
 * @param minor Minor version (0..127).
 * @returns The comparable value.
 */
export function makeVersion(major: number, minor: number): number {
  return (major << 7) | minor;
}

/**
 * The raw MMU_VERSION register value of `major.minor` (revision bits zero),
 * for example `sysmmuVersionRegister(3, 3) === 0x30600000`.
 *
 * @param major Major version, 0..15.
 * @param minor Minor version, 0..127.
 * @returns The u32 register value.
 * @throws {IommuError} `EINVAL` for a field out of range.
 */
export function sysmmuVersionRegister(major: number, minor: number): number {
  if (
    !Number.isInteger(major) || major < 0 || major > 15 ||
    !Number.isInteger(minor) || minor < 0 || minor > 127
  ) {
    throw new IommuError(
      "EINVAL",
      `SYSMMU version ${String(major)}.${
        String(minor)
      } does not fit the MMU_VERSION fields`,
    );
  }
  return (makeVersion(major, minor) << 21) >>> 0;
}

/**
 * Decode a raw MMU_VERSION value the way the Linux driver does: raw 11-bit
 * field at bits 31:21, major = its top 4 bits, minor = its low 7 bits; the
 * value 0x80000001 is forced to v1.0. On v7 the layout is v7-VM when CAPA0
 * bit 11 and CAPA1 bit 14 are both set.
 *
 * Modelled versions: 1.x, 2.x, 3.0-3.3, 5.x and 7.x.
 *
 * @param raw The register value, a u32.
 * @param capa0 The v7 CAPA0 register value (ignored before v7).
 * @param capa1 The v7 CAPA1 register value (ignored before v7).
 * @returns The decoded version.
 * @throws {IommuError} `EINVAL` for a value that is not a u32 or a version
 * iommukit does not model (major 0, 4, 6, 8+, or 3.4+).
 */
export function decodeSysmmuVersion(
  raw: number,
  capa0 = 0,
  capa1 = 0,
): SysmmuVersion {
  if (!Number.isInteger(raw) || raw < 0 || raw > 0xffffffff) {
    throw new IommuError(
      "EINVAL",
      `MMU_VERSION ${String(raw)} is not a 32-bit register value`,
    );
  }
  let major: number;
  let minor: number;
  if (raw === SYSMMU_BOGUS_VERSION) {
    major = 1;
    minor = 0;
  } else {
    const field = (raw >>> 21) & 0x7ff;
    major = field >>> 7;
    minor = field & 0x7f;
  }
  const modelled = major === 1 || major === 2 ||
    (major === 3 && minor <= 3) || major === 5 || major === 7;
  if (!modelled) {
    throw new IommuError(
      "EINVAL",
      `MMU_VERSION ${
        hex(raw)
      } decodes to v${major}.${minor}, which is not modelled (1.x, 2.x, 3.0-3.3, 5.x, 7.x)`,
    );
  }
  let layout: SysmmuLayoutName;
  if (major < 5) layout = "v1";
  else if (major < 7) layout = "v5";
  else {
    const vm = (capa0 & CAPA0_CAPA1_EXIST) !== 0 &&
      (capa1 & CAPA1_VCR_ENABLED) !== 0;
    layout = vm ? "v7-vm" : "v7";
  }
  return {
    raw,
    major,
    minor,
    value: makeVersion(major, minor),
    layout,
    pgShift: major >= 5 ? 4 : 0,
  };
}

/**
 * `"v3.3"`-style name of a version.
 *
 * @param v A decoded version.
 * @returns Its name.
 */
export function versionName(v: SysmmuVersion): string {
  return `v${v.major}.${v.minor}`;
}
