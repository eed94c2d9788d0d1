/**
 * Samsung Exynos System MMU (SYSMMU): a per-device IOMMU plugin whose driver
 * writes real Exynos two-level page tables into simulated RAM and whose
 * hardware model walks them.
 *
 * - Versions 1.x, 2.x, 3.0-3.3, 5.x and 7.x (with and without VM registers),
 *   chosen by the raw MMU_VERSION value ({@linkcode decodeSysmmuVersion};
 *   0x80000001 reads as v1.0).
 * - Descriptors: 32-bit PA before v5, `PA >> 4` (36-bit PA) from v5
 *   ({@linkcode PTE_V1}, {@linkcode PTE_V5}); 1 MiB sections, 64 KiB large
 *   pages (16 identical entries), 4 KiB small pages.
 * - Registers at their real offsets ({@linkcode LAYOUT_V1},
 *   {@linkcode LAYOUT_V5}, {@linkcode LAYOUT_V7}, {@linkcode LAYOUT_V7_VM});
 *   {@linkcode SysmmuHardware} exposes them and records write traces.
 * - A TLB (v2: 64 sets x 8 ways), and on v3.2/v3.3 an FLPD cache of
 *   level-1 entries (fault entries included; v3.3 prefetches 16 at a time).
 * - Faults set the version's interrupt bit and fault-address registers and
 *   block the unit; a fault no domain handler takes is recorded
 *   ({@linkcode SysmmuDriver.faultLog}) and leaves the unit blocked until
 *   {@linkcode SysmmuHardware.clearFault} (INT_CLEAR, then CTRL = ENABLE).
 * - A unit with no domain attached, or whose master is off, is disabled and
 *   passes addresses through untranslated.
 *
 * Model choices (where the reference leaves freedom, or the model differs
 * from Linux on purpose):
 *
 * - The TLB is untagged, as on silicon (the driver flushes it on every
 *   enable); the FLPD cache is direct-mapped, v3.3 prefetches the aligned
 *   line of 16 level-1 entries (16 MiB of IOVA) on a miss, v3.2 fetches one.
 *   FLUSH_ENTRY drops the FLPD entry of its MiB; FLUSH_ALL/FLUSH_RANGE too.
 * - The driver flushes the FLPD cache whenever a level-1 link changes (zero
 *   link to table, zero link or table to section) on every unit with the
 *   cache (v3.2+); Linux flushes only on v3.3+ and never on the section path.
 * - Maps are atomic and batched; unmaps gather and invalidate once per sync
 *   (range flush from v5, per-entry or FLUSH_ALL before), never per page.
 * - Registers cannot be reached while the master is powered off (`EIO`, the
 *   bus would abort); powering off resets them, the TLB and the FLPD cache.
 * - Access protection is checked only while `CFG.EAP` is set. v1-v3 AP bits:
 *   AP0 clear = no access, APX set = read-only.
 * - A fault blocks the unit until its interrupt bit is cleared AND CTRL is
 *   written with the block bit clear; accesses meanwhile fail as `"blocked"`.
 *   IOVAs above 32 bits fault as page faults (`"address-size"`), a table
 *   outside RAM as a walk/bus error (`"bus-error"`).
 * - Multi-hit: on v1-v5, a TLB hit while an entry of another page size
 *   also covers the address (a stale entry left by a lazy unmap) raises the
 *   multi-hit interrupt (v7 names no such fault: the first hit wins). The
 *   confirming probes count as TLB lookups.
 * - Not modelled: the v2 TLB's set indexing by 4 KiB page (the driver still
 *   flushes per 4 KiB on v2), prefetch buffers, security faults.
 *
 * Device-tree properties read from a `samsung,exynos-sysmmu` node (options
 * of {@linkcode samsungSysmmu} override them):
 *
 * | Property | Meaning |
 * | --- | --- |
 * | `iommukit,sysmmu-version` | raw MMU_VERSION (u32), default v3.3 (`0x30600000`) |
 * | `iommukit,sysmmu-capa0` | v7 CAPA0 (bit 11: CAPA1 present), default 0 |
 * | `iommukit,sysmmu-capa1` | v7 CAPA1 (bit 14: VM registers), default 0 |
 * | `iommukit,sysmmu-tlb-sets` / `-tlb-ways` | TLB geometry (both needed) |
 *
 * @example Map a buffer for the MFC's two System MMUs and DMA through it
 * ```ts
 * import { createSoc, IOMMU_READ, IOMMU_WRITE } from "../../core/mod.ts";
 * import { samsungSysmmu, type SysmmuHardware } from "./mod.ts";
 *
 * const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 << 20 } })
 *   .use(samsungSysmmu({ version: 0x30600000 })); // v3.3
 * const left = soc.probeUnit({ name: "sysmmu_mfc_l", compatible: ["samsung,exynos-sysmmu"] });
 * const right = soc.probeUnit({ name: "sysmmu_mfc_r", compatible: ["samsung,exynos-sysmmu"] });
 * const mfc = soc.addMaster({ name: "mfc", ports: [{ name: "left", unit: left }, { name: "right", unit: right }] });
 * const domain = soc.createDomain(left);
 * domain.attach(left);
 * domain.attach(right); // one IOVA space for both ports
 * const buf = soc.memory.frames.alloc(64 << 10);
 * domain.map(0x1000_0000, buf, 64 << 10, IOMMU_READ | IOMMU_WRITE);
 * mfc.port("left").writeBytes(0x1000_0010, new Uint8Array([7, 8, 9]));
 * const back = mfc.port("right").readBytes(0x1000_0010, 3);
 * if (back[2] !== 9) throw new Error("lost the data");
 * // The level-2 entry in RAM is exactly what an Exynos SoC walks:
 * const hw = left.hardware as SysmmuHardware;
 * if (hw.pageTableBase !== domain.ops.rootTable) throw new Error("not enabled");
 * ```
 *
 * @module
 */
export {
  DEFAULT_SYSMMU_VERSION,
  PROP_SYSMMU_CAPA0,
  PROP_SYSMMU_CAPA1,
  PROP_SYSMMU_TLB_SETS,
  PROP_SYSMMU_TLB_WAYS,
  PROP_SYSMMU_VERSION,
  samsungSysmmu,
  type SamsungSysmmuOptions,
  SYSMMU_DEFAULT_FLPD_ENTRIES,
  SYSMMU_DEFAULT_TLB,
  SYSMMU_V2_TLB,
  sysmmuCaps,
} from "./plugin.ts";
export {
  CAPA0_CAPA1_EXIST,
  CAPA1_VCR_ENABLED,
  decodeSysmmuVersion,
  makeVersion,
  SYSMMU_BOGUS_VERSION,
  type SysmmuLayoutName,
  type SysmmuVersion,
  sysmmuVersionRegister,
  versionName,
} from "./version.ts";
export * from "./registers.ts";
export * from "./pte.ts";
export {
  SYSMMU_REGISTER_SPAN,
  type SysmmuFaultKind,
  SysmmuHardware,
  type SysmmuHardwareConfig,
  type SysmmuHardwareCounters,
  type SysmmuIrqHandler,
  type SysmmuPowerHooks,
  type SysmmuTlbGeometry,
} from "./hardware.ts";
export {
  SYSMMU_BLOCK_POLL_LIMIT,
  SYSMMU_FAULT_LOG_LIMIT,
  SYSMMU_FLUSH_ENTRY_LIMIT,
  SysmmuDriver,
  type SysmmuDriverCounters,
  type SysmmuFaultInfo,
  type SysmmuUnitState,
} from "./driver.ts";
export { SysmmuDomain } from "./domain_ops.ts";
export { FlpdCache, type FlpdCounters } from "./flpd_cache.ts";
export {
  FLPD_PREFETCH_ENTRIES,
  SYSMMU_WALK_OK,
  SYSMMU_WALK_PAGE_FAULT,
  SYSMMU_WALK_PTW_ERROR,
  SysmmuWalker,
  type SysmmuWalkerCounters,
} from "./walker.ts";
export { setMasterPower } from "./power.ts";
