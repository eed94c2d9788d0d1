/**
 * The OS side shared by every System MMU a plugin instance probed on one
 * RAM: the shared zero level-2 table, attach/detach, runtime PM, the
 * block-flush-unblock invalidation protocol and the fault interrupt handler.
 *
 * @module
 */
import {
  checkObject,
  describeValue,
  hex,
  type IommuDomainOps,
  type IommuDriver,
  IommuError,
  type IommuFault,
  type IommuUnit,
  type PhysicalMemory,
} from "../../core/mod.ts";
import { SysmmuHardware } from "./hardware.ts";
import { LV2_TABLE_BYTES, pteFormat, type SysmmuPteFormat } from "./pte.ts";
import {
  cfgValueFor,
  CTRL_BLOCK,
  CTRL_DISABLE,
  CTRL_ENABLE,
  CTRL_VM_ENABLE,
  CTRL_VM_FAULT_MODE_STALL,
  FAULT_INFO_WRITE,
  FLUSH_TRIGGER,
  INT_V5_WRITE_OFFSET,
  REG_MMU_CFG,
  REG_MMU_CTRL,
  REG_MMU_STATUS,
  STATUS_BLOCKED,
} from "./registers.ts";
import { makeVersion } from "./version.ts";
import { SysmmuDomain } from "./domain_ops.ts";

/** STATUS reads the driver makes before giving up on a block request. */
export const SYSMMU_BLOCK_POLL_LIMIT = 120;
/** More per-entry flushes than this and one FLUSH_ALL is cheaper. */
export const SYSMMU_FLUSH_ENTRY_LIMIT = 64;
/** Unhandled faults kept per unit. */
export const SYSMMU_FAULT_LOG_LIMIT = 256;

/** A fault interrupt as the driver decoded it from the registers. */
export interface SysmmuFaultInfo {
  /** Unit name. */
  unit: string;
  /** The interrupt bit handled (the lowest one set). */
  itype: number;
  /** Fault type name as the version names it (`"PAGE"`, `"AW ACCESS PROTECTION"`, ...). */
  name: string;
  /** Faulting address read from the version's fault-address register. */
  address: number;
  /** Direction the version reports. */
  access: "read" | "write";
  /** Whether a domain fault handler took it (the unit was then unblocked). */
  handled: boolean;
  /** The fault record routed to the core. */
  fault: IommuFault;
}

/** Driver statistics. */
export interface SysmmuDriverCounters {
  /** Enable sequences run. */
  enables: number;
  /** Disable sequences run. */
  disables: number;
  /** Block/flush/unblock sequences run (one per active unit). */
  invalidations: number;
  /** Invalidations skipped because the unit did not report blocked in time. */
  blockTimeouts: number;
  /** FLPD-cache flushes issued after a level-1 link changed. */
  flpdFlushes: number;
  /** Fault interrupts handled. */
  irqs: number;
  /** Fault interrupts no handler took (the unit stayed blocked). */
  unhandledFaults: number;
}

/** Driver-side state of one unit (internal to the plugin). */
export interface SysmmuUnitState {
  /** The unit. */
  readonly unit: IommuUnit;
  /** Its hardware model. */
  readonly hw: SysmmuHardware;
  /** Where its faults go. */
  readonly report: (fault: IommuFault) => boolean;
  /** The attached domain, or null (unit disabled = identity). */
  domain: SysmmuDomain | null;
  /** Whether the unit is enabled (powered and attached). */
  active: boolean;
  /**
   * Whether this version needs FLPD flushes on link changes: v3.2+ (Linux
   * flushes only from v3.3, although v3.2 has the cache too).
   */
  readonly flushFlpd: boolean;
  /** Whether FLUSH_ENTRY must be issued per 4 KiB (v2). */
  readonly perPageFlush: boolean;
  /** Decoded interrupts, newest last (bounded). */
  readonly faults: SysmmuFaultInfo[];
}

/**
 * The driver of one plugin instance on one RAM. Every unit it probed shares
 * it, so a domain can be attached to several units (all System MMUs of a
 * master, or several masters).
 */
export class SysmmuDriver implements IommuDriver {
  /** The RAM tables live in. */
  readonly memory: PhysicalMemory;
  /** The descriptor format: one generation per driver, as in Linux. */
  readonly format: SysmmuPteFormat;
  /** PA of the shared all-zero level-2 table. */
  readonly zeroTable: number;
  /** The `ZERO_LV2LINK` value: a link to {@linkcode SysmmuDriver.zeroTable}. */
  readonly zeroLink: number;
  /**
   * Whether domains use the FLPD workaround (level 1 filled with the zero
   * link; FLPD flush when a link changes). Off = the driver before it.
   */
  readonly flpdWorkaround: boolean;
  #units = new Map<SysmmuHardware, SysmmuUnitState>();
  #nextContext = 1;
  #c: SysmmuDriverCounters = {
    enables: 0,
    disables: 0,
    invalidations: 0,
    blockTimeouts: 0,
    flpdFlushes: 0,
    irqs: 0,
    unhandledFaults: 0,
  };

  /**
   * Create the driver and its shared zero level-2 table.
   *
   * @param memory The RAM.
   * @param pgShift The generation's descriptor shift (0 or 4).
   * @param flpdWorkaround Whether to apply the FLPD workaround.
   * @throws {IommuError} `ENOMEM` when the zero table cannot be allocated.
   */
  constructor(memory: PhysicalMemory, pgShift: 0 | 4, flpdWorkaround: boolean) {
    this.memory = memory;
    this.format = pteFormat(pgShift);
    this.flpdWorkaround = flpdWorkaround;
    this.zeroTable = this.allocTable(LV2_TABLE_BYTES);
    this.zeroLink = this.format.link(this.zeroTable);
  }

  /**
   * Allocate a zeroed page-table block the units can address.
   *
   * @param bytes Table size.
   * @returns Its PA.
   * @throws {IommuError} `ENOMEM` when none is free or it is above the
   * format's PA range (nothing is leaked).
   */
  allocTable(bytes: number): number {
    const pa = this.memory.frames.alloc(bytes);
    if (pa + bytes > 2 ** this.format.paBits) {
      this.memory.frames.free(pa);
      throw new IommuError(
        "ENOMEM",
        `page table at ${
          hex(pa)
        } is beyond the ${this.format.paBits}-bit physical range of the System MMU`,
      );
    }
    return pa;
  }

  /**
   * Register a probed unit.
   *
   * @param unit The unit.
   * @param hw Its hardware.
   * @param report Its fault route.
   * @throws {IommuError} `EINVAL` when `unit` is not an object, `hw` is not
   * a {@linkcode SysmmuHardware} or `report` is not a function; `EEXIST`
   * when `hw` is registered already. Nothing is registered then.
   */
  addUnit(
    unit: IommuUnit,
    hw: SysmmuHardware,
    report: (fault: IommuFault) => boolean,
  ): void {
    checkObject(unit, "System MMU unit");
    if (!(hw instanceof SysmmuHardware)) {
      throw new IommuError(
        "EINVAL",
        `System MMU hardware must be a SysmmuHardware, got ${
          describeValue(hw)
        }`,
      );
    }
    if (typeof report !== "function") {
      throw new IommuError(
        "EINVAL",
        `System MMU fault route must be a function, got ${
          describeValue(report)
        }`,
      );
    }
    if (this.#units.has(hw)) {
      throw new IommuError(
        "EEXIST",
        `System MMU hardware of unit ${
          describeValue(unit.name)
        } is registered already`,
      );
    }
    const state: SysmmuUnitState = {
      unit,
      hw,
      report,
      domain: null,
      active: false,
      flushFlpd: hw.version.value >= makeVersion(3, 2),
      perPageFlush: hw.version.major === 2,
      faults: [],
    };
    this.#units.set(hw, state);
    hw.irqHandler = (h) => this.#irq(h);
    hw.powerHooks = {
      suspend: (h) => this.#suspend(h),
      resume: (h) => this.#resume(h),
    };
  }

  /**
   * Create an empty domain: a 16 KiB level-1 table filled with the zero link.
   *
   * @returns The domain.
   * @throws {IommuError} `ENOMEM` when the table cannot be allocated.
   */
  allocDomain(): IommuDomainOps {
    return new SysmmuDomain(this, this.#nextContext++);
  }

  /**
   * The state of `unit` if this driver owns it.
   *
   * @param unit Any unit.
   * @returns Its state.
   * @throws {IommuError} `EINVAL` for a unit of another driver.
   */
  stateOf(unit: IommuUnit): SysmmuUnitState {
    const s = typeof unit === "object" && unit !== null
      ? this.#units.get(unit.hardware as SysmmuHardware)
      : undefined;
    if (s === undefined || s.unit !== unit) {
      throw new IommuError(
        "EINVAL",
        `unit ${
          typeof unit === "object" && unit !== null ? unit.name : String(unit)
        } does not belong to this samsung-sysmmu driver instance`,
      );
    }
    return s;
  }

  /**
   * Point `unit` at `domain`, enabling it now if its master is powered. A
   * unit attached elsewhere switches tables inside one block window, so its
   * DMA never runs untranslated in between.
   *
   * @param domain The new domain.
   * @param unit The unit.
   * @throws {IommuError} `EINVAL` for a foreign unit.
   */
  attach(domain: SysmmuDomain, unit: IommuUnit): void {
    const s = this.stateOf(unit);
    if (s.domain === domain) return;
    s.domain?.units.delete(s);
    s.domain = domain;
    domain.units.add(s);
    if (s.hw.powered) this.#enable(s);
  }

  /**
   * Disable `unit` and forget its domain.
   *
   * @param domain The domain it should be attached to.
   * @param unit The unit.
   * @throws {IommuError} `ENOENT` when it is not attached to `domain`;
   * `EINVAL` for a foreign unit.
   */
  detach(domain: SysmmuDomain, unit: IommuUnit): void {
    const s = this.stateOf(unit);
    if (s.domain !== domain) {
      throw new IommuError(
        "ENOENT",
        `unit ${unit.name} is not attached to domain context ${domain.contextId}`,
      );
    }
    if (s.active) this.#disable(s);
    s.domain = null;
    domain.units.delete(s);
  }

  // ---- register sequences ----

  #enable(s: SysmmuUnitState): void {
    const hw = s.hw;
    const l = hw.layout;
    const pgd = s.domain!.rootTable;
    hw.writeRegister(REG_MMU_CTRL, CTRL_BLOCK);
    hw.writeRegister(REG_MMU_CFG, cfgValueFor(hw.version));
    hw.writeRegister(l.ptBase, l.name === "v1" ? pgd : pgd / 4096);
    hw.writeRegister(l.flushAll, FLUSH_TRIGGER);
    if (l.vmCtrl >= 0) {
      hw.writeRegister(
        l.vmCtrl,
        hw.readRegister(l.vmCtrl) | CTRL_VM_ENABLE | CTRL_VM_FAULT_MODE_STALL,
      );
    }
    hw.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
    s.active = true;
    this.#c.enables++;
  }

  #disable(s: SysmmuUnitState): void {
    s.hw.writeRegister(REG_MMU_CTRL, CTRL_DISABLE);
    s.hw.writeRegister(REG_MMU_CFG, 0);
    s.active = false;
    this.#c.disables++;
  }

  #suspend(hw: SysmmuHardware): void {
    const s = this.#units.get(hw);
    if (s !== undefined && s.active) this.#disable(s);
  }

  #resume(hw: SysmmuHardware): void {
    const s = this.#units.get(hw);
    if (s !== undefined && s.domain !== null) this.#enable(s);
  }

  /** Block the unit; false (after unblocking again) when it never blocked. */
  #block(s: SysmmuUnitState): boolean {
    const hw = s.hw;
    hw.writeRegister(REG_MMU_CTRL, CTRL_BLOCK);
    for (let i = 0; i < SYSMMU_BLOCK_POLL_LIMIT; i++) {
      if ((hw.readRegister(REG_MMU_STATUS) & STATUS_BLOCKED) !== 0) {
        return true;
      }
    }
    hw.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
    this.#c.blockTimeouts++;
    return false;
  }

  /**
   * Invalidate `[start, last]` (bytes, inclusive) on every active unit of
   * `units`: one range flush where the layout has it, otherwise one
   * FLUSH_ENTRY per `granule` (per 4 KiB on v2), or FLUSH_ALL when that
   * would take more than {@linkcode SYSMMU_FLUSH_ENTRY_LIMIT} writes.
   *
   * @param units The domain's units.
   * @param start First byte.
   * @param last Last byte.
   * @param granule Smallest leaf size in the range, bytes.
   * @throws {IommuError} `EINVAL` when `units` is not an iterable of this
   * driver's unit states, or `start`/`last` are not integers with
   * `0 <= start <= last < 2^32`, or `granule` is not an integer in
   * 1..2^32; nothing is blocked or flushed then.
   */
  invalidateRange(
    units: Iterable<SysmmuUnitState>,
    start: number,
    last: number,
    granule: number,
  ): void {
    // One combined test (false for NaN, bigint-free compares); the precise
    // complaint is built out of line.
    if (
      !(start >= 0 && last >= start && last <= 0xffff_ffff &&
        granule >= 1 && granule <= 2 ** 32) ||
      typeof start !== "number" || typeof last !== "number" ||
      typeof granule !== "number" || start % 1 !== 0 || last % 1 !== 0 ||
      granule % 1 !== 0
    ) {
      throw badRange(start, last, granule);
    }
    // A domain's set holds one unit almost always: then the element is
    // checked in the loop, before anything is done (a separate pass cost
    // ~30 ns per unmap); larger or other iterables are checked first.
    const one = units instanceof Set && units.size <= 1;
    if (!one) this.#checkUnits(units);
    for (const s of units) {
      // Checked before its `active` flag is read, so an object that is not
      // a unit state is refused whether or not it looks active.
      if (
        one &&
        (s === null || typeof s !== "object" ||
          !(s.hw instanceof SysmmuHardware))
      ) throw badUnit(s);
      if (!s.active) continue;
      if (!this.#block(s)) continue;
      const hw = s.hw;
      const l = hw.layout;
      const first = start - (start % 4096);
      const lastPage = last - (last % 4096);
      const step = s.perPageFlush ? 4096 : Math.max(granule, 4096);
      const entries = Math.floor((lastPage - first) / step) + 1;
      if (l.flushRange >= 0 && lastPage > first) {
        hw.writeRegister(l.rangeStart, first);
        hw.writeRegister(l.rangeEnd, lastPage);
        hw.writeRegister(l.flushRange, FLUSH_TRIGGER);
      } else if (entries > SYSMMU_FLUSH_ENTRY_LIMIT) {
        hw.writeRegister(l.flushAll, FLUSH_TRIGGER);
      } else {
        for (let i = 0, va = first; i < entries; i++, va += step) {
          hw.writeRegister(l.flushEntry, (va | FLUSH_TRIGGER) >>> 0);
        }
      }
      hw.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
      this.#c.invalidations++;
    }
  }

  /**
   * FLUSH_ALL on every active unit of `units`.
   *
   * @param units The domain's units.
   */
  flushAll(units: Iterable<SysmmuUnitState>): void {
    for (const s of units) {
      if (!s.active || !this.#block(s)) continue;
      s.hw.writeRegister(s.hw.layout.flushAll, FLUSH_TRIGGER);
      s.hw.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
      this.#c.invalidations++;
    }
  }

  /**
   * Flush the FLPD cache entries of level-1 `slots[0..count)` on every
   * active v3.2+ unit (v5+: FLUSH_ALL; v3.x: FLUSH_ENTRY per slot, or
   * FLUSH_ALL past {@linkcode SYSMMU_FLUSH_ENTRY_LIMIT}).
   *
   * @param units The domain's units.
   * @param slots Level-1 indices whose entry changed.
   * @param count How many of `slots` are valid.
   * @throws {IommuError} `EINVAL` when `units` is not an iterable of this
   * driver's unit states, `slots` is not an Int32Array of level-1 indices
   * (0..4095) or `count` is not an integer in 0..slots.length (a count of 0
   * flushes nothing and checks nothing); nothing is flushed then.
   */
  flushFlpd(
    units: Iterable<SysmmuUnitState>,
    slots: Int32Array,
    count: number,
  ): void {
    // Nothing to flush (the common case on map): nothing is used, so
    // nothing is checked; any other count is checked out of line.
    if (count === 0) return;
    this.#checkFlpd(units, slots, count);
    if (!this.flpdWorkaround) return;
    for (const s of units) {
      if (!s.active || !s.flushFlpd || !this.#block(s)) continue;
      const hw = s.hw;
      const l = hw.layout;
      if (l.name !== "v1" || count > SYSMMU_FLUSH_ENTRY_LIMIT) {
        hw.writeRegister(l.flushAll, FLUSH_TRIGGER);
      } else {
        for (let i = 0; i < count; i++) {
          hw.writeRegister(
            l.flushEntry,
            ((slots[i]! << 20) | FLUSH_TRIGGER) >>> 0,
          );
        }
      }
      hw.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
      this.#c.flpdFlushes++;
    }
  }

  /** Throws what flushFlpd owes for malformed arguments. */
  #checkFlpd(units: unknown, slots: unknown, count: unknown): void {
    if (
      !(slots instanceof Int32Array) || typeof count !== "number" ||
      !Number.isInteger(count) || count < 0 || count > slots.length
    ) {
      throw new IommuError(
        "EINVAL",
        `FLPD flush wants an Int32Array of slots and a count within it, got ${
          describeValue(slots)
        } and ${describeValue(count)}`,
      );
    }
    for (let i = 0; i < count; i++) {
      const slot = slots[i]!;
      if (slot < 0 || slot > 4095) {
        throw new IommuError(
          "EINVAL",
          `FLPD flush slot ${slot} is not a level-1 index (0..4095)`,
        );
      }
    }
    this.#checkUnits(units as Iterable<SysmmuUnitState>);
  }

  /** Throws EINVAL unless `units` iterates over unit states. */
  #checkUnits(units: Iterable<SysmmuUnitState>): void {
    checkIterable(units);
    for (const s of units as Iterable<unknown>) {
      if (!isUnitState(s)) throw badUnit(s);
    }
  }

  // ---- faults ----

  #irq(hw: SysmmuHardware): void {
    const s = this.#units.get(hw);
    if (s === undefined) return;
    const l = hw.layout;
    const status = hw.readRegister(l.intStatus);
    if (status === 0) return;
    this.#c.irqs++;
    const itype = 31 - Math.clz32(status & -status);
    let name: string;
    let address: number;
    let write: boolean;
    if (l.name === "v1") {
      const names = [
        "PAGE",
        "AR MULTI-HIT",
        "AW MULTI-HIT",
        "BUS ERROR",
        "AR SECURITY PROTECTION",
        "AR ACCESS PROTECTION",
        "AW SECURITY PROTECTION",
        "AW ACCESS PROTECTION",
      ];
      const regs = [
        l.pageFaultAddr,
        l.arFaultAddr,
        l.awFaultAddr,
        l.busErrorAddr,
        l.arFaultAddr,
        l.arFaultAddr,
        l.awFaultAddr,
        l.awFaultAddr,
      ];
      name = names[itype] ?? `UNKNOWN ${itype}`;
      address = itype < 8 ? hw.readRegister(regs[itype]!) : 0;
      write = itype === 2 || itype === 6 || itype === 7;
    } else if (l.name === "v5") {
      write = itype >= INT_V5_WRITE_OFFSET;
      const base = write ? itype - INT_V5_WRITE_OFFSET : itype;
      const names = [
        "PTW ACCESS",
        "PAGE",
        "MULTI-HIT",
        "ACCESS PROTECTION",
        "SECURITY PROTECTION",
      ];
      name = (write ? "AW " : "AR ") + (names[base] ?? `UNKNOWN ${base}`);
      address = hw.readRegister(write ? l.awFaultAddr : l.arFaultAddr);
    } else {
      name = ["PTW", "PAGE", "ACCESS PROTECTION", "RESERVED"][itype % 4]!;
      address = hw.readRegister(l.arFaultAddr);
      write = (hw.readRegister(l.faultInfo) & FAULT_INFO_WRITE) !== 0;
    }
    const fault: IommuFault = hw.lastFault ?? {
      unit: hw.name,
      streamId: 0,
      iova: address,
      access: write ? "write" : "read",
      reason: "translation",
    };
    // A unit without a domain is disabled and cannot fault; treat as handled.
    const handled = s.domain === null ? true : s.report(fault);
    if (s.faults.length === SYSMMU_FAULT_LOG_LIMIT) s.faults.shift();
    s.faults.push({
      unit: hw.name,
      itype,
      name,
      address,
      access: write ? "write" : "read",
      handled,
      fault,
    });
    if (handled) {
      hw.writeRegister(l.intClear, (1 << itype) >>> 0);
      hw.writeRegister(REG_MMU_CTRL, CTRL_ENABLE);
    } else {
      // Linux panics here; the model keeps the unit blocked and records it.
      this.#c.unhandledFaults++;
    }
  }

  /**
   * The fault interrupts `unit` raised, as the driver decoded them (oldest
   * first, at most {@linkcode SYSMMU_FAULT_LOG_LIMIT}).
   *
   * @param unit A unit of this driver.
   * @returns Copies of the records.
   * @throws {IommuError} `EINVAL` for a foreign unit.
   */
  faultLog(unit: IommuUnit): SysmmuFaultInfo[] {
    return this.stateOf(unit).faults.map((f) => ({ ...f }));
  }

  /**
   * Whether `unit` is enabled by the driver (attached and powered).
   *
   * @param unit A unit of this driver.
   * @returns The driver's `active` flag.
   * @throws {IommuError} `EINVAL` for a foreign unit.
   */
  isActive(unit: IommuUnit): boolean {
    return this.stateOf(unit).active;
  }

  /**
   * Counters as a plain object.
   *
   * @returns A snapshot.
   */
  counters(): SysmmuDriverCounters {
    return { ...this.#c };
  }
}

function badRange(start: unknown, last: unknown, granule: unknown): IommuError {
  return new IommuError(
    "EINVAL",
    `System MMU invalidation of ${describeValue(start)}..${
      describeValue(last)
    } by ${
      describeValue(granule)
    } must have integers 0 <= start <= last < 2^32 and a granule of 1..2^32`,
  );
}

/** Throws EINVAL unless `units` is an object with an iterator. */
function checkIterable(units: unknown): void {
  if (
    units === null || typeof units !== "object" ||
    typeof (units as { [Symbol.iterator]?: unknown })[Symbol.iterator] !==
      "function"
  ) {
    throw new IommuError(
      "EINVAL",
      `System MMU units must be an iterable of unit states, got ${
        describeValue(units)
      }`,
    );
  }
}

/** A unit state: an object whose hw is a SysmmuHardware (cheaper than a Map lookup). */
function isUnitState(s: unknown): boolean {
  return s !== null && typeof s === "object" &&
    (s as SysmmuUnitState).hw instanceof SysmmuHardware;
}

function badUnit(s: unknown): IommuError {
  return new IommuError(
    "EINVAL",
    `System MMU units hold ${describeValue(s)}, not a unit state`,
  );
}
