/**
 * Register offsets and bit values of each SYSMMU register layout.
 *
 * @module
 */
import type { SysmmuLayoutName, SysmmuVersion } from "./version.ts";
import { makeVersion } from "./version.ts";

/** MMU_CTRL, all versions. */
export const REG_MMU_CTRL = 0x000;
/** MMU_CFG, all versions. */
export const REG_MMU_CFG = 0x004;
/** MMU_STATUS, all versions: bit 0 = blocked. */
export const REG_MMU_STATUS = 0x008;
/** MMU_VERSION, all versions (read-only). */
export const REG_MMU_VERSION = 0x034;
/** v7 capability register 0 (read-only). */
export const REG_V7_CAPA0 = 0x870;
/** v7 capability register 1 (read-only). */
export const REG_V7_CAPA1 = 0x874;

/** MMU_CTRL value: translation enabled, not blocked. */
export const CTRL_ENABLE = 0x5;
/** MMU_CTRL value: enabled and blocked (flush window). */
export const CTRL_BLOCK = 0x7;
/** MMU_CTRL value: disabled (identity). */
export const CTRL_DISABLE = 0x0;
/** MMU_CTRL bit 1: block request. */
export const CTRL_BLOCK_BIT = 0x2;
/** MMU_STATUS bit 0: the unit is blocked. */
export const STATUS_BLOCKED = 0x1;

/** MMU_CFG bit 0: LRU replacement (v3.2 and older). */
export const CFG_LRU = 1 << 0;
/** MMU_CFG bit 2: enforce the permission bits of descriptors. */
export const CFG_EAP = 1 << 2;
/** MMU_CFG bits 10:7: bus QoS; the driver always writes 15. */
export const CFG_QOS_15 = 15 << 7;
/** MMU_CFG bit 20: FLPD cache enable (v3.2+). */
export const CFG_FLPDCACHE = 1 << 20;
/** MMU_CFG bit 22: system select (v3.2 only). */
export const CFG_SYSSEL = 1 << 22;
/** MMU_CFG bit 24: automatic clock gating (v3.3+). */
export const CFG_ACGEN = 1 << 24;

/** v7-VM control register bit 0: VM 0 enabled. */
export const CTRL_VM_ENABLE = 1 << 0;
/** v7-VM control register bit 3: stall on fault. */
export const CTRL_VM_FAULT_MODE_STALL = 1 << 3;

/** FLUSH_ENTRY / FLUSH_ALL / FLUSH_RANGE trigger bit. */
export const FLUSH_TRIGGER = 1;

/** Where each function lives in one layout; -1 when the layout lacks it. */
export interface SysmmuRegisterLayout {
  /** Layout name. */
  readonly name: SysmmuLayoutName;
  /** Page-table base (full PA on v1, PPN from v5). */
  readonly ptBase: number;
  /** Flush all (write 1). */
  readonly flushAll: number;
  /** Flush entry (write `(va & ~0xfff) | 1`). */
  readonly flushEntry: number;
  /** Flush range (write 1), v5+. */
  readonly flushRange: number;
  /** Range start, v5+. */
  readonly rangeStart: number;
  /** Range end (inclusive page), v5+. */
  readonly rangeEnd: number;
  /** Interrupt status. */
  readonly intStatus: number;
  /** Interrupt clear (write 1 to clear). */
  readonly intClear: number;
  /** v1: page-fault address. */
  readonly pageFaultAddr: number;
  /** Fault address of reads (v1 AR_FAULT_ADDR, v5 AR fault VA, v7 fault VA). */
  readonly arFaultAddr: number;
  /** Fault address of writes (v1 AW_FAULT_ADDR, v5 AW fault VA, v7 fault VA). */
  readonly awFaultAddr: number;
  /** v1: default-slave (bus error) address. */
  readonly busErrorAddr: number;
  /** v7: fault info (bit 20 = write). */
  readonly faultInfo: number;
  /** v7-VM: VM 0 control. */
  readonly vmCtrl: number;
}

/** v1-v3 layout. */
export const LAYOUT_V1: SysmmuRegisterLayout = Object.freeze({
  name: "v1",
  ptBase: 0x014,
  flushAll: 0x00c,
  flushEntry: 0x010,
  flushRange: -1,
  rangeStart: -1,
  rangeEnd: -1,
  intStatus: 0x018,
  intClear: 0x01c,
  pageFaultAddr: 0x024,
  arFaultAddr: 0x02c,
  awFaultAddr: 0x028,
  busErrorAddr: 0x030,
  faultInfo: -1,
  vmCtrl: -1,
});

/** v5 layout. */
export const LAYOUT_V5: SysmmuRegisterLayout = Object.freeze({
  name: "v5",
  ptBase: 0x00c,
  flushAll: 0x010,
  flushEntry: 0x014,
  flushRange: 0x018,
  rangeStart: 0x020,
  rangeEnd: 0x024,
  intStatus: 0x060,
  intClear: 0x064,
  pageFaultAddr: -1,
  arFaultAddr: 0x070,
  awFaultAddr: 0x080,
  busErrorAddr: -1,
  faultInfo: -1,
  vmCtrl: -1,
});

/** v7 layout without VM registers. */
export const LAYOUT_V7: SysmmuRegisterLayout = Object.freeze({
  ...LAYOUT_V5,
  name: "v7",
  awFaultAddr: 0x070,
  faultInfo: 0x078,
});

/** v7 layout with VM registers (VM 0 only). */
export const LAYOUT_V7_VM: SysmmuRegisterLayout = Object.freeze({
  ...LAYOUT_V5,
  name: "v7-vm",
  ptBase: 0x800c,
  flushAll: 0x8010,
  flushEntry: 0x8014,
  flushRange: 0x8018,
  rangeStart: 0x8020,
  rangeEnd: 0x8024,
  arFaultAddr: 0x1000,
  awFaultAddr: 0x1000,
  faultInfo: 0x1004,
  vmCtrl: 0x8000,
});

/**
 * The layout object of a layout name.
 *
 * @param name Layout name.
 * @returns Its register offsets.
 */
export function registerLayout(name: SysmmuLayoutName): SysmmuRegisterLayout {
  switch (name) {
    case "v1":
      return LAYOUT_V1;
    case "v5":
      return LAYOUT_V5;
    case "v7":
      return LAYOUT_V7;
    default:
      return LAYOUT_V7_VM;
  }
}

/** v7 fault info bit 20: the faulting access was a write. */
export const FAULT_INFO_WRITE = 1 << 20;

/**
 * Interrupt bits. v1-v3: one bit per fault type and direction. v5: bits
 * 0..4 for reads, the same +16 for writes. v7: `itype % 4` names the type.
 */
export const INT_V1_PAGE_FAULT = 0;
/** v1-v3 read multi-hit. */
export const INT_V1_AR_MULTI_HIT = 1;
/** v1-v3 write multi-hit. */
export const INT_V1_AW_MULTI_HIT = 2;
/** v1-v3 bus error (a table or target that is not memory). */
export const INT_V1_BUS_ERROR = 3;
/** v1-v3 read security protection. */
export const INT_V1_AR_SECURITY = 4;
/** v1-v3 read access protection. */
export const INT_V1_AR_ACCESS = 5;
/** v1-v3 write security protection. */
export const INT_V1_AW_SECURITY = 6;
/** v1-v3 write access protection. */
export const INT_V1_AW_ACCESS = 7;
/** v5 page-table-walk error (reads; +16 for writes). */
export const INT_V5_PTW = 0;
/** v5 page fault (reads; +16 for writes). */
export const INT_V5_PAGE = 1;
/** v5 multi-hit (reads; +16 for writes). */
export const INT_V5_MULTI_HIT = 2;
/** v5 access protection (reads; +16 for writes). */
export const INT_V5_ACCESS = 3;
/** v5 security protection (reads; +16 for writes). */
export const INT_V5_SECURITY = 4;
/** v5: offset of the write-direction bits. */
export const INT_V5_WRITE_OFFSET = 16;
/** v7 page-table-walk error. */
export const INT_V7_PTW = 0;
/** v7 page fault. */
export const INT_V7_PAGE = 1;
/** v7 access protection. */
export const INT_V7_ACCESS = 2;

/**
 * The MMU_CFG value the driver writes for a version: 0x785 up to v3.1,
 * 0x500785 on v3.2, 0x1100784 from v3.3 (every value sets `CFG_EAP`).
 *
 * @param v The unit's version.
 * @returns The CFG value.
 */
export function cfgValueFor(v: SysmmuVersion): number {
  if (v.value <= makeVersion(3, 1)) return CFG_QOS_15 | CFG_EAP | CFG_LRU;
  if (v.value === makeVersion(3, 2)) {
    return CFG_QOS_15 | CFG_EAP | CFG_LRU | CFG_FLPDCACHE | CFG_SYSSEL;
  }
  return CFG_QOS_15 | CFG_EAP | CFG_FLPDCACHE | CFG_ACGEN;
}

/**
 * A register's name in a layout, for traces (`"0x..."` when unnamed).
 *
 * @param layout The layout.
 * @param offset Byte offset.
 * @returns The name.
 */
export function registerName(
  layout: SysmmuRegisterLayout,
  offset: number,
): string {
  switch (offset) {
    case REG_MMU_CTRL:
      return "CTRL";
    case REG_MMU_CFG:
      return "CFG";
    case REG_MMU_STATUS:
      return "STATUS";
    case REG_MMU_VERSION:
      return "VERSION";
  }
  if (layout.name === "v7" || layout.name === "v7-vm") {
    if (offset === REG_V7_CAPA0) return "CAPA0";
    if (offset === REG_V7_CAPA1) return "CAPA1";
  }
  const names: [keyof SysmmuRegisterLayout, string][] = [
    ["ptBase", "PT_BASE"],
    ["flushAll", "FLUSH_ALL"],
    ["flushEntry", "FLUSH_ENTRY"],
    ["flushRange", "FLUSH_RANGE"],
    ["rangeStart", "RANGE_START"],
    ["rangeEnd", "RANGE_END"],
    ["intStatus", "INT_STATUS"],
    ["intClear", "INT_CLEAR"],
    ["pageFaultAddr", "PAGE_FAULT_ADDR"],
    ["arFaultAddr", layout.name === "v5" ? "AR_FAULT_ADDR" : "FAULT_VA"],
    ["awFaultAddr", layout.name === "v5" ? "AW_FAULT_ADDR" : "FAULT_VA"],
    ["busErrorAddr", "BUS_ERROR_ADDR"],
    ["faultInfo", "FAULT_INFO"],
    ["vmCtrl", "CTRL_VM"],
  ];
  if (layout.name === "v1") {
    names[9] = ["arFaultAddr", "AR_FAULT_ADDR"];
    names[10] = ["awFaultAddr", "AW_FAULT_ADDR"];
  }
  for (const [key, name] of names) {
    if (layout[key] === offset) return name;
  }
  return "0x" + offset.toString(16).padStart(3, "0");
}
