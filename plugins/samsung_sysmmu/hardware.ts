/**
 * The hardware side of one System MMU: its register file, TLB, FLPD cache,
 * page-table walker, fault latching and power state.
 *
 * @module
 */
import {
  ACCESS_READ,
  ACCESS_WRITE,
  checkAddress,
  checkRegisterValue,
  type FaultReason,
  hex,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuFault,
  type IommuHardware,
  PhysicalMemory,
  throwBadAccess,
  Tlb,
  type TlbReplacement,
} from "../../core/mod.ts";
import { FlpdCache } from "./flpd_cache.ts";
import { pteFormat } from "./pte.ts";
import {
  CFG_EAP,
  CFG_FLPDCACHE,
  CTRL_BLOCK_BIT,
  CTRL_ENABLE,
  CTRL_VM_ENABLE,
  FAULT_INFO_WRITE,
  FLUSH_TRIGGER,
  INT_V1_AR_ACCESS,
  INT_V1_AR_MULTI_HIT,
  INT_V1_AW_ACCESS,
  INT_V1_AW_MULTI_HIT,
  INT_V1_BUS_ERROR,
  INT_V1_PAGE_FAULT,
  INT_V5_ACCESS,
  INT_V5_MULTI_HIT,
  INT_V5_PAGE,
  INT_V5_PTW,
  INT_V5_WRITE_OFFSET,
  INT_V7_ACCESS,
  INT_V7_PAGE,
  INT_V7_PTW,
  REG_MMU_CFG,
  REG_MMU_CTRL,
  REG_MMU_STATUS,
  REG_MMU_VERSION,
  REG_V7_CAPA0,
  REG_V7_CAPA1,
  registerLayout,
  registerName,
  STATUS_BLOCKED,
  type SysmmuRegisterLayout,
} from "./registers.ts";
import { makeVersion, type SysmmuVersion } from "./version.ts";
import {
  SYSMMU_WALK_OK,
  SYSMMU_WALK_PAGE_FAULT,
  SysmmuWalker,
} from "./walker.ts";

/** Register window size: offsets must be below this (the v7-VM block ends at 0x8024). */
export const SYSMMU_REGISTER_SPAN = 0x10000;

/** TLB geometry of a unit. */
export interface SysmmuTlbGeometry {
  /** Sets (a power of two). */
  sets: number;
  /** Ways per set. */
  ways: number;
  /** Replacement policy; default `"lru"`. */
  replacement?: TlbReplacement;
}

/** What a {@linkcode SysmmuHardware} is built from. */
export interface SysmmuHardwareConfig {
  /** Unit name (fault records carry it). */
  name: string;
  /** The decoded version. */
  version: SysmmuVersion;
  /** v7 CAPA0 value. */
  capa0: number;
  /** v7 CAPA1 value. */
  capa1: number;
  /** TLB geometry. */
  tlb: SysmmuTlbGeometry;
  /** FLPD cache entries (0 = none). */
  flpdEntries: number;
  /** STATUS reads after a block request before the unit reports blocked. */
  blockLatency: number;
  /** Initial master power. */
  powered: boolean;
}

/** The fault kinds the walker and TLB produce. */
export type SysmmuFaultKind = "page" | "access" | "ptw" | "multi-hit";

/** Hardware statistics, as a plain object. */
export type SysmmuHardwareCounters = {
  /** Translated accesses (TLB lookups). */
  lookups: number;
  /** TLB hits. */
  tlbHits: number;
  /** TLB misses (each one walks). */
  tlbMisses: number;
  /** Page-table walks. */
  walks: number;
  /** FLPD cache hits. */
  flpdHits: number;
  /** FLPD cache misses. */
  flpdMisses: number;
  /** Accesses passed through untranslated (unit disabled or off). */
  identity: number;
  /** Fault interrupts raised. */
  faults: number;
  /** Accesses refused because the unit was blocked. */
  blockedAccesses: number;
  /** FLUSH_ALL writes. */
  flushAll: number;
  /** FLUSH_ENTRY writes. */
  flushEntry: number;
  /** FLUSH_RANGE writes. */
  flushRange: number;
  /** Register writes. */
  registerWrites: number;
  /** Times the unit was powered up. */
  powerUps: number;
};

/** Called when the unit raises its interrupt (the driver's IRQ handler). */
export type SysmmuIrqHandler = (hw: SysmmuHardware) => void;

/** Runtime-PM callbacks of the driver, run by {@linkcode SysmmuHardware.setPower}. */
export interface SysmmuPowerHooks {
  /** Runs while the unit is still powered, just before power goes. */
  suspend(hw: SysmmuHardware): void;
  /** Runs right after power comes back (registers at reset values). */
  resume(hw: SysmmuHardware): void;
}

const IDENTITY_SPAN = 2 ** 52;

/** The permission bits a walk reports. */
const RW = IOMMU_READ | IOMMU_WRITE;

/** Fills a flush undoes one by one; beyond this it clears the whole maps. */
const FILL_LOG_ENTRIES = 1024;

// Never used: what the TLB, FLPD cache and walker fields hold until the
// constructor sets them. Declared without a value, a field starts as
// undefined and optimised code checks the kind of object it holds at
// each use; these give it its final kind from the start.
const NO_TLB = new Tlb({ sets: 0, ways: 0 });
const NO_FLPD = new FlpdCache(0);
const NO_WALKER = new SysmmuWalker(
  new PhysicalMemory({ base: 0, size: 0x10000 }),
  pteFormat(0),
);

/**
 * One System MMU as the SoC has it. Registers are reached with
 * {@linkcode SysmmuHardware.readRegister}/{@linkcode SysmmuHardware.writeRegister}
 * at their real offsets for the unit's layout; while the master is powered
 * off they cannot be reached (`EIO`). A disabled unit passes addresses
 * through untranslated; a fault blocks the unit until software clears the
 * interrupt bit (INT_CLEAR) and writes CTRL = ENABLE.
 */
export class SysmmuHardware implements IommuHardware {
  /** Unit name. */
  readonly name: string;
  /** Decoded version. */
  readonly version: SysmmuVersion;
  /** Register offsets of this unit's layout. */
  readonly layout: SysmmuRegisterLayout;
  /**
   * The TLB (untagged: one translation context, flushed on every enable),
   * for inspection, counters and invalidation. Entries come from walks
   * only: the unit keeps per-flush notes of the page sizes and permissions
   * it filled, so an entry inserted here directly may be hit with the
   * wrong span or permission until the next FLUSH_ALL.
   */
  readonly tlb: Tlb = NO_TLB;
  /** The FLPD cache (capacity 0 when the version has none). */
  readonly flpd: FlpdCache = NO_FLPD;
  /** Bytes from the last translated PA to the end of its page. */
  lastSpan = 0;
  /** The most recent fault (including refusals while blocked), or null. */
  lastFault: IommuFault | null = null;
  /** The driver's interrupt handler; null leaves faults to `reportFault`. */
  irqHandler: SysmmuIrqHandler | null = null;
  /** The driver's runtime-PM callbacks. */
  powerHooks: SysmmuPowerHooks | null = null;

  #memory: PhysicalMemory;
  #report: (fault: IommuFault) => boolean;
  #walker: SysmmuWalker = NO_WALKER;
  #capa0: number;
  #capa1: number;
  #blockLatency: number;
  #prefetch: boolean;
  #powered: boolean;
  #ctrl = 0;
  #cfg = 0;
  #ptBaseReg = 0;
  #ptBase = 0;
  #intStatus = 0;
  #latched = new Map<number, number>();
  #vmCtrl = 0;
  #rangeStart = 0;
  #rangeEnd = 0;
  #swBlocked = false;
  #blockPolls = 0;
  #faultBlocked = false;
  #translating = false;
  #blocked = false;
  #ready = false; // translating and not blocked: the hot path's one test
  #eap = false;
  // The FLPD cache while CFG enables it (and it exists), else null: what
  // walks consult.
  #flpdWalk: FlpdCache | null = null;
  // Multi-hit detection (v1-v5): where TLB entries of each size may live.
  // Set on every fill, cleared by FLUSH_ALL; a stale "may" is confirmed
  // with a probe, so evictions need no bookkeeping.
  #multiHit: boolean;
  #large64 = new Uint8Array(65536); // a 64 KiB entry in this 64 KiB granule
  #small64 = new Uint8Array(65536); // a 4 KiB entry in this 64 KiB granule
  #sect1m = new Uint8Array(4096); // a 1 MiB entry for this MiB
  #sub1m = new Uint8Array(4096); // a 4 KiB or 64 KiB entry in this MiB
  // The 64 KiB granules marked since the last flush (all four arrays are
  // indexed from it), while there are at most FILL_LOG_ENTRIES of them.
  #fillLog = new Int32Array(FILL_LOG_ENTRIES);
  #fillLogCount = 0;
  // Every TLB entry was filled since the last FLUSH_ALL (or power-off), so
  // these describe the sizes it can hold (any layout).
  #sizesFilled = 0; // OR of the page sizes filled since the last flush
  #mixedSizes = false; // more than one size filled since the last flush
  #permsFilled = RW; // AND of the permissions filled since the last flush
  #hasTlb: boolean;
  #trace: string[] | null = null;
  #c: SysmmuHardwareCounters = {
    lookups: 0,
    tlbHits: 0,
    tlbMisses: 0,
    walks: 0,
    flpdHits: 0,
    flpdMisses: 0,
    identity: 0,
    faults: 0,
    blockedAccesses: 0,
    flushAll: 0,
    flushEntry: 0,
    flushRange: 0,
    registerWrites: 0,
    powerUps: 0,
  };

  /**
   * Build a unit in its reset state (disabled, registers zero).
   *
   * @param config Version, geometry and initial power.
   * @param memory The RAM it walks.
   * @param report Where faults go when no IRQ handler is installed.
   * @throws {IommuError} `EINVAL` for a bad TLB geometry.
   */
  constructor(
    config: SysmmuHardwareConfig,
    memory: PhysicalMemory,
    report: (fault: IommuFault) => boolean,
  ) {
    this.name = config.name;
    this.version = config.version;
    this.layout = registerLayout(config.version.layout);
    const tlbOptions = {
      sets: config.tlb.sets,
      ways: config.tlb.ways,
      ...(config.tlb.replacement === undefined
        ? {}
        : { replacement: config.tlb.replacement }),
    };
    this.tlb = new Tlb(tlbOptions);
    this.flpd = new FlpdCache(config.flpdEntries);
    this.#memory = memory;
    this.#report = report;
    this.#walker = new SysmmuWalker(memory, pteFormat(config.version.pgShift));
    this.#capa0 = config.capa0 >>> 0;
    this.#capa1 = config.capa1 >>> 0;
    this.#blockLatency = config.blockLatency;
    this.#prefetch = config.version.value >= makeVersion(3, 3);
    this.#powered = config.powered;
    this.#multiHit = this.layout.name === "v1" || this.layout.name === "v5";
    this.#hasTlb = this.tlb.capacity > 0;
  }

  // ---- translation (hot path) ----

  /**
   * Translate one access of the master.
   *
   * @param _streamId Ignored (per-device unit).
   * @param iova The bus address.
   * @param access `ACCESS_READ` or `ACCESS_WRITE`.
   * @returns The PA, or -1 when the access faulted or the unit is blocked.
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer, or `access` is neither `ACCESS_READ` (1) nor `ACCESS_WRITE`
   * (2) (nothing is counted or recorded, no fault), whatever the unit's
   * state.
   */
  translate(_streamId: number, iova: number, access: number): number {
    // One test for the common case: enabled, powered, not blocked, an
    // IOVA that fits 32 bits and a read or a write. Anything else (NaN
    // included) goes out of line.
    if (
      !(this.#ready === true && iova <= 0xffffffff &&
        (access === 1 || access === 2))
    ) {
      return this.#offPath(iova, access);
    }
    const tlb = this.tlb;
    const pa = tlb.lookup(0, iova);
    if (pa < 0) return this.#miss(iova, access);
    if (this.#mixedSizes === true) return this.#mixedHit(iova, access, pa);
    // One page size filled since the last flush: the entry hit has it.
    const size = this.#sizesFilled;
    // Every entry filled since then grants `access`: so does this one.
    if (
      this.#eap === true && (this.#permsFilled & access) === 0 &&
      (tlb.lastPerm & access) === 0
    ) {
      return this.#raise("access", iova, access, "permission");
    }
    this.lastSpan = size - (iova & (size - 1));
    return pa;
  }

  // A hit while entries of several sizes may be cached: the entry's own
  // size, and (v1-v5) whether another size also covers `iova`.
  #mixedHit(iova: number, access: number, pa: number): number {
    const tlb = this.tlb;
    const size = tlb.lastPageSize;
    const perm = tlb.lastPerm; // before any multi-hit probe overwrites it
    if (this.#multiHit && this.#otherSizeMayHit(iova, size)) {
      return this.#raise("multi-hit", iova, access, "multi-hit");
    }
    if (this.#eap && (perm & access) === 0) {
      return this.#raise("access", iova, access, "permission");
    }
    this.lastSpan = size - (iova & (size - 1));
    return pa;
  }

  // Not translating, blocked, or an IOVA beyond 32 bits or not a number.
  #offPath(iova: number, access: number): number {
    // Before anything is counted or recorded, in every state (access 0
    // used to pass with no permission check).
    if (access !== ACCESS_READ && access !== ACCESS_WRITE) {
      throwBadAccess(access);
    }
    if (!this.#ready) return this.#notReady(iova, access);
    if (iova > 0xffffffff) {
      return this.#raise("page", iova, access, "address-size");
    }
    // NaN or not a number: the IOTLB lookup names it (EINVAL, nothing
    // counted), as it did when this test sat after the lookup.
    this.tlb.lookup(0, iova);
    throw new IommuError("EINVAL", `IOVA ${String(iova)} is not an address`);
  }

  // Disabled (identity) or blocked (refused): off the hot path. A bad
  // IOVA is EINVAL here too (nothing counted), not passed through.
  #notReady(iova: number, access: number): number {
    checkAddress(iova, "IOVA");
    if (!this.#translating) {
      this.#c.identity++;
      this.lastSpan = iova < IDENTITY_SPAN
        ? IDENTITY_SPAN - iova
        : 2 * IDENTITY_SPAN - iova;
      return iova;
    }
    return this.#refuseBlocked(iova, access);
  }

  /** True when a TLB entry of another size also covers `iova` (multi-hit). */
  #otherSizeMayHit(iova: number, size: number): boolean {
    const g = iova >>> 16;
    const s = iova >>> 20;
    if (size === 0x1000) {
      if (this.#large64[g] === 0 && this.#sect1m[s] === 0) return false;
    } else if (size === 0x10000) {
      if (this.#small64[g] === 0 && this.#sect1m[s] === 0) return false;
    } else if (this.#sub1m[s] === 0) return false;
    return this.#probeOthers(iova, size);
  }

  // Rare path: probe the other sizes (these probes count as TLB lookups).
  #probeOthers(iova: number, size: number): boolean {
    const tlb = this.tlb;
    const g = iova >>> 16;
    const s = iova >>> 20;
    if (size !== 0x1000 && this.#small64[g] !== 0) {
      if (tlb.lookupSize(0, iova, 0x1000) >= 0) return true;
    }
    if (size !== 0x10000 && this.#large64[g] !== 0) {
      if (tlb.lookupSize(0, iova, 0x10000) >= 0) return true;
      this.#large64[g] = 0; // the only 64 KiB entry that could be there
    }
    if (size !== 0x100000 && this.#sect1m[s] !== 0) {
      if (tlb.lookupSize(0, iova, 0x100000) >= 0) return true;
      this.#sect1m[s] = 0;
    }
    return false;
  }

  #forgetSizes(): void {
    const n = this.#fillLogCount;
    if (n <= FILL_LOG_ENTRIES) {
      // Few fills since the last flush: clear just the granules they marked
      // (a strict unmap flushes every time; 139 KB of fill(0) cost more
      // than the unmap's own work).
      const log = this.#fillLog;
      for (let i = 0; i < n; i++) {
        const g = log[i]!;
        this.#large64[g] = 0;
        this.#small64[g] = 0;
        this.#sect1m[g >>> 4] = 0;
        this.#sub1m[g >>> 4] = 0;
      }
    } else {
      this.#large64.fill(0);
      this.#small64.fill(0);
      this.#sect1m.fill(0);
      this.#sub1m.fill(0);
    }
    this.#fillLogCount = 0;
    this.#sizesFilled = 0;
    this.#mixedSizes = false;
    this.#permsFilled = RW;
  }

  #miss(iova: number, access: number): number {
    const w = this.#walker;
    const r = w.walk(
      this.#ptBase,
      iova,
      this.#flpdWalk,
      this.#prefetch,
    );
    if (r !== SYSMMU_WALK_OK) {
      return r === SYSMMU_WALK_PAGE_FAULT
        ? this.#raise("page", iova, access, "translation")
        : this.#raise("ptw", iova, access, "bus-error");
    }
    const size = w.pageSize;
    const paBase = w.paBase;
    const perm = w.perm;
    // The entry is cached even when the access is then refused, as a TLB
    // caches what it walked. A TLB of capacity 0 ignores inserts (and
    // these arguments are always valid), so there is nothing to do.
    if (this.#hasTlb === true) {
      this.tlb.insert(0, iova, size, paBase, perm);
      if (size !== this.#sizesFilled) this.#noteSize(size);
      this.#permsFilled &= perm;
      if (this.#multiHit === true) this.#noteFill(iova, size);
    }
    if (this.#eap === true && (perm & access) === 0) {
      return this.#raise("access", iova, access, "permission");
    }
    const off = iova & (size - 1);
    this.lastSpan = size - off;
    return paBase + off;
  }

  // Record where an entry of `size` may now live, for multi-hit checks.
  // A mark already set needs nothing: it was logged when it was set, and
  // a 4 KiB or 64 KiB mark implies its MiB's sub1m mark (only a flush
  // clears that, and a flush clears both), so only new marks are logged.
  #noteFill(iova: number, size: number): void {
    const g = iova >>> 16;
    if (size === 0x1000) {
      if (this.#small64[g] !== 0) return;
      this.#small64[g] = 1;
      this.#sub1m[iova >>> 20] = 1;
    } else if (size === 0x10000) {
      if (this.#large64[g] !== 0) return;
      this.#large64[g] = 1;
      this.#sub1m[iova >>> 20] = 1;
    } else {
      if (this.#sect1m[iova >>> 20] !== 0) return;
      this.#sect1m[iova >>> 20] = 1;
    }
    const n = this.#fillLogCount;
    if (n < FILL_LOG_ENTRIES) this.#fillLog[n] = g;
    this.#fillLogCount = n + 1;
  }

  // A first fill since the last flush, or a fill of another size. Two sizes
  // filled since the last flush: only then can two entries of different
  // sizes cover one address (so only then do hits check for a multi-hit),
  // and only then can a hit not take its size from #sizesFilled.
  #noteSize(size: number): void {
    const filled = this.#sizesFilled | size;
    this.#sizesFilled = filled;
    if (filled !== size) this.#mixedSizes = true;
  }

  #refuseBlocked(iova: number, access: number): number {
    this.#c.blockedAccesses++;
    const fault: IommuFault = {
      unit: this.name,
      streamId: 0,
      iova,
      access: access === ACCESS_WRITE ? "write" : "read",
      reason: "blocked",
    };
    this.lastFault = fault;
    // No new interrupt: the unit is already stalled. Logged for visibility.
    this.#report(fault);
    return -1;
  }

  /** Latch the fault into the registers, block, and raise the interrupt. */
  #raise(
    kind: SysmmuFaultKind,
    iova: number,
    access: number,
    reason: FaultReason,
  ): number {
    const write = access === ACCESS_WRITE;
    const l = this.layout;
    const va = iova >>> 0;
    let bit: number;
    if (l.name === "v1") {
      if (kind === "page") {
        bit = INT_V1_PAGE_FAULT;
        this.#latched.set(l.pageFaultAddr, va);
      } else if (kind === "access" || kind === "multi-hit") {
        bit = kind === "access"
          ? (write ? INT_V1_AW_ACCESS : INT_V1_AR_ACCESS)
          : (write ? INT_V1_AW_MULTI_HIT : INT_V1_AR_MULTI_HIT);
        this.#latched.set(write ? l.awFaultAddr : l.arFaultAddr, va);
      } else {
        bit = INT_V1_BUS_ERROR;
        this.#latched.set(l.busErrorAddr, va);
      }
    } else if (l.name === "v5") {
      bit = (kind === "page"
        ? INT_V5_PAGE
        : kind === "access"
        ? INT_V5_ACCESS
        : kind === "multi-hit"
        ? INT_V5_MULTI_HIT
        : INT_V5_PTW) + (write ? INT_V5_WRITE_OFFSET : 0);
      this.#latched.set(write ? l.awFaultAddr : l.arFaultAddr, va);
    } else {
      bit = kind === "page"
        ? INT_V7_PAGE
        : kind === "access"
        ? INT_V7_ACCESS
        : INT_V7_PTW;
      this.#latched.set(l.arFaultAddr, va);
      this.#latched.set(l.faultInfo, write ? FAULT_INFO_WRITE : 0);
    }
    this.#intStatus = (this.#intStatus | (1 << bit)) >>> 0;
    this.#faultBlocked = true;
    this.#update();
    this.#c.faults++;
    const fault: IommuFault = {
      unit: this.name,
      streamId: 0,
      iova,
      access: write ? "write" : "read",
      reason,
    };
    this.lastFault = fault;
    if (this.irqHandler !== null) this.irqHandler(this);
    else this.#report(fault);
    return -1;
  }

  /**
   * True when the master's accesses reach memory untranslated (the unit is
   * disabled or powered off: there is no other bypass mode).
   *
   * @param _streamId Ignored.
   * @returns Whether it passes addresses through.
   */
  isBypassing(_streamId: number): boolean {
    return !this.#translating;
  }

  // ---- power ----

  /**
   * Model the master's runtime power (the SYSMMU is in its power domain).
   * Going off runs the driver's suspend hook first, then resets every
   * register, the TLB and the FLPD cache; coming on runs the resume hook.
   *
   * @param on Whether the master is powered.
   */
  setPower(on: boolean): void {
    if (on === this.#powered) return;
    if (!on) {
      this.powerHooks?.suspend(this);
      this.#powered = false;
      this.#ctrl = 0;
      this.#cfg = 0;
      this.#ptBaseReg = 0;
      this.#ptBase = 0;
      this.#intStatus = 0;
      this.#latched.clear();
      this.#vmCtrl = 0;
      this.#rangeStart = 0;
      this.#rangeEnd = 0;
      this.#swBlocked = false;
      this.#blockPolls = 0;
      this.#faultBlocked = false;
      this.#eap = false;
      this.#flpdWalk = null;
      this.tlb.invalidateAll();
      this.#forgetSizes();
      this.flpd.invalidateAll();
      this.#update();
      return;
    }
    this.#powered = true;
    this.#c.powerUps++;
    this.#update();
    this.powerHooks?.resume(this);
  }

  /** Whether the master (and so this unit) is powered. */
  get powered(): boolean {
    return this.#powered;
  }

  /** Whether translation is enabled (CTRL enable, and VM 0 on v7-VM). */
  get enabled(): boolean {
    return this.#translating;
  }

  /** Whether the unit is blocked (by CTRL or by a pending fault). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** The level-1 table PA the unit walks (decoded from the PT base register). */
  get pageTableBase(): number {
    return this.#ptBase;
  }

  // ---- registers ----

  #update(): void {
    this.#translating = this.#powered && (this.#ctrl & CTRL_ENABLE) ===
        CTRL_ENABLE &&
      (this.layout.vmCtrl < 0 || (this.#vmCtrl & CTRL_VM_ENABLE) !== 0);
    this.#blocked = this.#swBlocked || this.#faultBlocked;
    this.#ready = this.#translating && !this.#blocked;
  }

  #checkAccess(offset: number): void {
    if (
      !Number.isInteger(offset) || offset < 0 ||
      offset >= SYSMMU_REGISTER_SPAN || (offset & 3) !== 0
    ) {
      throw new IommuError(
        "EINVAL",
        `register offset ${
          String(offset)
        } of ${this.name} is not a 4-byte aligned offset below ${
          hex(SYSMMU_REGISTER_SPAN)
        }`,
      );
    }
    if (!this.#powered) {
      throw new IommuError(
        "EIO",
        `register ${
          registerName(this.layout, offset)
        } of ${this.name} accessed while its master is powered off`,
      );
    }
  }

  /**
   * Read a register.
   *
   * @param offset Byte offset from the unit's base.
   * @returns The u32 value (0 for unimplemented offsets).
   * @throws {IommuError} `EINVAL` for a bad offset; `EIO` while powered off.
   */
  readRegister(offset: number): number {
    this.#checkAccess(offset);
    const l = this.layout;
    switch (offset) {
      case REG_MMU_CTRL:
        return this.#ctrl;
      case REG_MMU_CFG:
        return this.#cfg;
      case REG_MMU_STATUS:
        if (this.#blockPolls > 0 && --this.#blockPolls === 0) {
          this.#swBlocked = true;
          this.#update();
        }
        return this.#blocked ? STATUS_BLOCKED : 0;
      case REG_MMU_VERSION:
        return this.version.raw;
    }
    if (offset === l.ptBase) return this.#ptBaseReg;
    if (offset === l.intStatus) return this.#intStatus;
    if (offset === l.rangeStart) return this.#rangeStart;
    if (offset === l.rangeEnd) return this.#rangeEnd;
    if (offset === l.vmCtrl) return this.#vmCtrl;
    if (l.name === "v7" || l.name === "v7-vm") {
      if (offset === REG_V7_CAPA0) return this.#capa0;
      if (offset === REG_V7_CAPA1) return this.#capa1;
    }
    return this.#latched.get(offset) ?? 0;
  }

  /**
   * Write a register. Read-only and unimplemented offsets ignore writes.
   *
   * @param offset Byte offset from the unit's base.
   * @param value The value (taken modulo 2^32).
   * @throws {IommuError} `EINVAL` for a bad offset or a value that is not a
   * 32-bit integer (-2^31 to 2^32 - 1); `EIO` while powered off.
   */
  writeRegister(offset: number, value: number): void {
    this.#checkAccess(offset);
    checkRegisterValue(offset, value);
    const v = value >>> 0;
    this.#c.registerWrites++;
    if (this.#trace !== null) {
      this.#trace.push(`${registerName(this.layout, offset)}=${hex(v)}`);
    }
    const l = this.layout;
    if (offset === REG_MMU_CTRL) {
      this.#ctrl = v & 7;
      if ((v & CTRL_BLOCK_BIT) !== 0) {
        if (this.#blockLatency === 0) this.#swBlocked = true;
        else if (!this.#swBlocked) this.#blockPolls = this.#blockLatency;
      } else {
        this.#swBlocked = false;
        this.#blockPolls = 0;
        // A fault keeps the unit stalled until its interrupt bit is cleared.
        if (this.#intStatus === 0) this.#faultBlocked = false;
      }
      this.#update();
    } else if (offset === REG_MMU_CFG) {
      this.#cfg = v;
      this.#eap = (v & CFG_EAP) !== 0;
      this.#flpdWalk = this.flpd.capacity > 0 && (v & CFG_FLPDCACHE) !== 0
        ? this.flpd
        : null;
    } else if (offset === l.ptBase) {
      this.#ptBaseReg = v;
      // The level-1 table is 16 KiB aligned: low bits are not decoded.
      this.#ptBase = l.name === "v1"
        ? (v & 0xffffc000) >>> 0
        : (v & 0xfffffc) * 4096;
    } else if (offset === l.flushAll) {
      if ((v & FLUSH_TRIGGER) !== 0) {
        this.#c.flushAll++;
        this.tlb.invalidateAll();
        this.#forgetSizes();
        this.flpd.invalidateAll();
      }
    } else if (offset === l.flushEntry) {
      if ((v & FLUSH_TRIGGER) !== 0) {
        this.#c.flushEntry++;
        const va = (v & 0xfffff000) >>> 0;
        this.tlb.invalidateRange(0, va, 4096);
        this.flpd.invalidateSlots(va >>> 20, va >>> 20);
      }
    } else if (offset === l.flushRange) {
      if ((v & FLUSH_TRIGGER) !== 0) {
        this.#c.flushRange++;
        const s = (this.#rangeStart & 0xfffff000) >>> 0;
        const e = (this.#rangeEnd & 0xfffff000) >>> 0;
        if (e >= s) {
          this.tlb.invalidateRange(0, s, e - s + 4096);
          this.flpd.invalidateSlots(s >>> 20, e >>> 20);
        }
      }
    } else if (offset === l.rangeStart) {
      this.#rangeStart = v;
    } else if (offset === l.rangeEnd) {
      this.#rangeEnd = v;
    } else if (offset === l.intClear) {
      this.#intStatus = (this.#intStatus & ~v) >>> 0;
    } else if (offset === l.vmCtrl) {
      this.#vmCtrl = v;
      this.#update();
    }
  }

  /**
   * Software recovery from an unhandled fault, through the registers: write
   * every pending bit to INT_CLEAR, then CTRL = ENABLE (when the unit was
   * enabled), which unblocks it.
   *
   * @returns The interrupt bits that were pending.
   * @throws {IommuError} `EIO` while powered off.
   */
  clearFault(): number {
    const pending = this.readRegister(this.layout.intStatus);
    if (pending !== 0) this.writeRegister(this.layout.intClear, pending);
    if ((this.#ctrl & CTRL_ENABLE) === CTRL_ENABLE) {
      this.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
    }
    return pending;
  }

  // ---- observability ----

  /** Start recording register writes as `"NAME=0xvalue"` strings (clears any earlier trace). */
  startTrace(): void {
    this.#trace = [];
  }

  /**
   * The writes recorded since {@linkcode SysmmuHardware.startTrace}; recording
   * continues.
   *
   * @returns A copy of the trace (empty when tracing is off).
   */
  trace(): string[] {
    return this.#trace === null ? [] : [...this.#trace];
  }

  /** Stop recording and drop the trace. */
  stopTrace(): void {
    this.#trace = null;
  }

  /**
   * Counters as a plain object (hardware, FLPD and walker statistics).
   *
   * @returns A snapshot.
   */
  counters(): SysmmuHardwareCounters {
    // Lookups, hits and misses are the TLB's own counts (the hot path keeps
    // no second copy); walks are the walker's.
    const f = this.flpd.counters();
    const t = this.tlb.counters();
    return {
      ...this.#c,
      lookups: t.lookups,
      tlbHits: t.hits,
      tlbMisses: t.misses,
      walks: this.#walker.counters().walks,
      flpdHits: f.hits,
      flpdMisses: f.misses,
    };
  }

  /** The RAM this unit walks. */
  get memory(): PhysicalMemory {
    return this.#memory;
  }
}
