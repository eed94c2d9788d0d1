/**
 * Stream table entries (STE) and context descriptors (CD) in RAM: what the
 * driver writes and the hardware decodes. Simplified SMMUv3 layouts (64 bytes
 * each, linear stream table, one CD per context):
 *
 * - STE dword0: V b0, Config[3:1] (0 abort, 4 bypass, 5 stage-1, 6 stage-2),
 *   S1ContextPtr[47:6] (the CD). dword2: S2VMID[15:0], S2T0SZ[37:32],
 *   S2AA64 b51, S2R b58. dword3: S2TTB[47:4]. Other dwords are zero.
 * - CD dword0: T0SZ[5:0], TG0[7:6]=0 (4 KiB), EPD1 b30, V b31, IPS[34:32],
 *   AA64 b41, R b45, A b46, ASID[63:48]. dword1: TTB0[47:4].
 *
 * @module
 */
import type { PhysicalMemory } from "../../core/mod.ts";
import {
  CD_EPD1,
  CD_HI_A,
  CD_HI_AA64,
  CD_HI_R,
  CD_V,
  STE_BYTES,
  STE_CFG_S1,
  STE_CFG_S2,
  STE_HI_S2AA64,
  STE_HI_S2R,
  STE_V,
} from "./constants.ts";

/** SMMUv3 IPS/OAS code for an output size in bits (32, 36, 40, 42, 44, 48). */
export function oasCode(bits: number): number {
  return bits <= 32
    ? 0
    : bits <= 36
    ? 1
    : bits <= 40
    ? 2
    : bits <= 42
    ? 3
    : bits <= 44
    ? 4
    : 5;
}

/** Output size in bits for an IPS/OAS code (inverse of {@linkcode oasCode}; 48 for 5 and above). */
export function oasBits(code: number): number {
  return [32, 36, 40, 42, 44, 48][code] ?? 48;
}

/**
 * Write an STE's dword0 (and for stage 2, dwords 2-3 first) so that the
 * valid/config word is the last store: the entry changes in one step.
 *
 * @param memory RAM.
 * @param ste Address of the entry.
 * @param config Config value (abort, bypass, stage-1, stage-2).
 * @param cdPa Context descriptor for stage 1 (else 0).
 * @param s2 Stage-2 fields: VMID, input bits, table root; null otherwise.
 */
export function writeSte(
  memory: PhysicalMemory,
  ste: number,
  config: number,
  cdPa: number,
  s2: { vmid: number; inputBits: number; root: number } | null,
): void {
  if (config === STE_CFG_S2 && s2 !== null) {
    memory.write32(ste + 16, s2.vmid & 0xffff);
    memory.write32(ste + 20, (64 - s2.inputBits) | STE_HI_S2AA64 | STE_HI_S2R);
    memory.write32(ste + 24, s2.root % 0x100000000);
    memory.write32(ste + 28, Math.floor(s2.root / 0x100000000));
  } else {
    for (let off = 16; off < STE_BYTES; off += 4) memory.write32(ste + off, 0);
  }
  const ptr = config === STE_CFG_S1 ? cdPa : 0;
  memory.write32(ste + 4, Math.floor(ptr / 0x100000000));
  memory.write32(ste, ((ptr % 0x100000000) | (config << 1) | STE_V) >>> 0);
}

/**
 * Write a valid stage-1 context descriptor.
 *
 * @param memory RAM.
 * @param cd Address of the descriptor.
 * @param asid Context tag (16 bits).
 * @param inputBits IOVA width (T0SZ = 64 - inputBits).
 * @param outputBits Output width (IPS).
 * @param root Page-table root (TTB0).
 */
export function writeCd(
  memory: PhysicalMemory,
  cd: number,
  asid: number,
  inputBits: number,
  outputBits: number,
  root: number,
): void {
  memory.write32(cd + 8, root % 0x100000000);
  memory.write32(cd + 12, Math.floor(root / 0x100000000));
  memory.write32(
    cd + 4,
    (oasCode(outputBits) | CD_HI_AA64 | CD_HI_R | CD_HI_A |
      ((asid & 0xffff) << 16)) >>> 0,
  );
  memory.write32(cd, ((64 - inputBits) | CD_EPD1 | CD_V) >>> 0);
}

/**
 * Invalidate a context descriptor (V=0, everything zero).
 *
 * @param memory RAM.
 * @param cd Address of the descriptor.
 */
export function clearCd(memory: PhysicalMemory, cd: number): void {
  for (let off = 0; off < 64; off += 4) memory.write32(cd + off, 0);
}
