/**
 * A minimal per-device IOMMU plugin used only by the core's own tests (not
 * shipped). Two levels of 32-bit descriptors: level 1 has 1024 entries of
 * 4 MiB each (a 4 MiB block or a link to a level-2 table), level 2 has 1024
 * entries of 4 KiB pages. Descriptor: bits 31..12 = PA >> 12, bit 0 valid,
 * bit 1 read, bit 2 write, bit 3 (level 1) link to a table. No TLB.
 */
import {
  ACCESS_WRITE,
  type DeviceNode,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomainOps,
  IommuError,
  type IommuFault,
  type IommuHardware,
  type IommuPlugin,
  type IommuUnit,
  type IotlbGather,
  type MappingRecord,
  type MapPlan,
  type PageTableLevelStats,
  type PhysicalMemory,
  type ProbeContext,
} from "../../core/mod.ts";

const BLOCK = 4 << 20;
const PAGE = 4096;
const VALID = 1, READ = 2, WRITE = 4, LINK = 8;

function encode(pa: number, prot: number): number {
  return ((pa & ~0xfff) | VALID | ((prot & IOMMU_READ) ? READ : 0) |
    ((prot & IOMMU_WRITE) ? WRITE : 0)) >>> 0;
}

function base(desc: number): number {
  return (desc & ~0xfff) >>> 0;
}

function protOf(desc: number): number {
  return ((desc & READ) ? IOMMU_READ : 0) | ((desc & WRITE) ? IOMMU_WRITE : 0);
}

class FlatDomain implements IommuDomainOps {
  readonly contextId: number;
  readonly rootTable: number;
  #mem: PhysicalMemory;
  #driver: FlatDriver;
  #l1: Uint32Array;
  #used = new Uint16Array(1024); // live entries per level-2 table
  units = new Set<FlatUnit>();

  constructor(mem: PhysicalMemory, driver: FlatDriver, id: number) {
    this.#mem = mem;
    this.#driver = driver;
    this.contextId = id;
    this.rootTable = mem.frames.alloc(4096);
    this.#l1 = mem.view32(this.rootTable, 4096);
  }

  #l2(slot: number): Uint32Array | null {
    const d = this.#l1[slot]!;
    return (d & LINK) ? this.#mem.view32(base(d), 4096) : null;
  }

  map(plan: MapPlan, prot: number): void {
    const need: number[] = [];
    for (let r = 0; r < plan.count; r++) {
      const size = plan.pageSize[r]!, n = plan.pages[r]!;
      for (let i = 0; i < n; i++) {
        const iova = plan.iova[r]! + i * size;
        const slot = Math.floor(iova / BLOCK);
        const d = this.#l1[slot]!;
        if (size === BLOCK) {
          if (d !== 0) this.#busy(iova);
        } else if (d & LINK) {
          if (this.#l2(slot)![(iova / PAGE) & 1023] !== 0) this.#busy(iova);
        } else if (d !== 0) this.#busy(iova);
        else if (!need.includes(slot)) need.push(slot);
      }
    }
    const tables: number[] = [];
    try {
      for (let i = 0; i < need.length; i++) {
        tables.push(this.#mem.frames.alloc(4096));
      }
    } catch (e) {
      for (const t of tables) this.#mem.frames.free(t);
      throw e;
    }
    need.forEach((slot, i) =>
      this.#l1[slot] = (tables[i]! | VALID | LINK) >>> 0
    );
    for (let r = 0; r < plan.count; r++) {
      const size = plan.pageSize[r]!, n = plan.pages[r]!;
      for (let i = 0; i < n; i++) {
        const iova = plan.iova[r]! + i * size, pa = plan.pa[r]! + i * size;
        const slot = Math.floor(iova / BLOCK);
        if (size === BLOCK) this.#l1[slot] = encode(pa, prot);
        else {
          this.#l2(slot)![(iova / PAGE) & 1023] = encode(pa, prot);
          this.#used[slot]!++;
        }
      }
    }
  }

  #busy(iova: number): never {
    throw new IommuError(
      "EEXIST",
      `IOVA 0x${iova.toString(16)} is already mapped`,
    );
  }

  unmapPages(
    iova: number,
    pageSize: number,
    count: number,
    gather: IotlbGather,
  ): number {
    let bytes = 0;
    const end = iova + pageSize * count;
    for (let at = iova; at < end;) {
      const slot = Math.floor(at / BLOCK);
      const d = this.#l1[slot]!;
      if (d & LINK) {
        const l2 = this.#l2(slot)!;
        const e = l2[(at / PAGE) & 1023]!;
        if (e !== 0) {
          l2[(at / PAGE) & 1023] = 0;
          gather.add(at, PAGE);
          bytes += PAGE;
          if (--this.#used[slot]! === 0) {
            this.#l1[slot] = 0;
            gather.deferFree(base(d));
          }
        }
        at += PAGE;
      } else if (d & VALID) {
        this.#l1[slot] = 0;
        gather.add(at, BLOCK);
        bytes += BLOCK;
        at += BLOCK;
      } else at = Math.min(end, (slot + 1) * BLOCK);
    }
    return bytes;
  }

  leafSize(iova: number): number {
    const slot = Math.floor(iova / BLOCK);
    const d = this.#l1[slot] ?? 0;
    if (d & LINK) return this.#l2(slot)![(iova / PAGE) & 1023] ? PAGE : 0;
    return d & VALID ? BLOCK : 0;
  }

  iovaToPhys(iova: number): number {
    const slot = Math.floor(iova / BLOCK);
    const d = this.#l1[slot] ?? 0;
    if (d & LINK) {
      const e = this.#l2(slot)![(iova / PAGE) & 1023]!;
      return e ? base(e) + (iova % PAGE) : -1;
    }
    return d & VALID ? base(d) - (base(d) % BLOCK) + (iova % BLOCK) : -1;
  }

  iotlbSync(_gather: IotlbGather): void {}
  flushAll(): void {}

  attach(unit: IommuUnit, _streamIds: readonly number[]): void {
    if (!(unit instanceof FlatUnit) || unit.driver !== this.#driver) {
      throw new IommuError(
        "EINVAL",
        `unit ${unit.name} is not a flat-iommu unit of this driver`,
      );
    }
    unit.attached?.units.delete(unit);
    unit.attached = this;
    this.units.add(unit);
  }

  detach(unit: IommuUnit, _streamIds: readonly number[]): void {
    const u = unit as FlatUnit;
    if (u.attached !== this) throw new IommuError("ENOENT", "not attached");
    u.attached = null;
    this.units.delete(u);
  }

  leaves(): MappingRecord[] {
    const out: MappingRecord[] = [];
    for (let slot = 0; slot < 1024; slot++) {
      const d = this.#l1[slot]!;
      if (d & LINK) {
        const l2 = this.#l2(slot)!;
        for (let i = 0; i < 1024; i++) {
          const e = l2[i]!;
          if (e) {
            out.push({
              iova: slot * BLOCK + i * PAGE,
              pa: base(e),
              pageSize: PAGE,
              prot: protOf(e),
            });
          }
        }
      } else if (d & VALID) {
        out.push({
          iova: slot * BLOCK,
          pa: base(d),
          pageSize: BLOCK,
          prot: protOf(d),
        });
      }
    }
    return out;
  }

  tableStats(): PageTableLevelStats[] {
    let tables = 0, used1 = 0, used2 = 0;
    for (let slot = 0; slot < 1024; slot++) {
      if (this.#l1[slot]) used1++;
      if (this.#l1[slot]! & LINK) {
        tables++;
        used2 += this.#used[slot]!;
      }
    }
    return [
      {
        level: 1,
        tables: 1,
        bytes: 4096,
        entriesUsed: used1,
        entriesTotal: 1024,
      },
      {
        level: 2,
        tables,
        bytes: tables * 4096,
        entriesUsed: used2,
        entriesTotal: tables * 1024,
      },
    ];
  }

  free(): void {
    for (let slot = 0; slot < 1024; slot++) {
      const d = this.#l1[slot]!;
      if (d & LINK) this.#mem.frames.free(base(d));
    }
    this.#l1.fill(0);
    this.#mem.frames.free(this.rootTable);
  }
}

class FlatDriver {
  #mem: PhysicalMemory;
  #next = 1;
  constructor(mem: PhysicalMemory) {
    this.#mem = mem;
  }
  allocDomain(): IommuDomainOps {
    return new FlatDomain(this.#mem, this, this.#next++);
  }
}

class FlatHardware implements IommuHardware {
  lastSpan = 0;
  lastFault: IommuFault | null = null;
  #unit: FlatUnit;
  #mem: PhysicalMemory;
  #ctx: ProbeContext;
  #c = { translations: 0, walks: 0, faults: 0 };
  constructor(unit: FlatUnit, ctx: ProbeContext) {
    this.#unit = unit;
    this.#mem = ctx.memory;
    this.#ctx = ctx;
  }
  /**
   * Translate one access (see `IommuHardware.translate`).
   *
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer number (a bigint, NaN, -1) or `access` is not 1 or 2; no
   * counter moves and no fault is reported then.
   */
  translate(streamId: number, iova: number, access: number): number {
    // One combined test; a bigint iova fails the typeof before any
    // arithmetic (it used to throw a raw TypeError from the division).
    if (
      typeof iova !== "number" || !(iova >= 0) || iova % 1 !== 0 ||
      iova > Number.MAX_SAFE_INTEGER || (access !== 1 && access !== 2)
    ) {
      throw new IommuError(
        "EINVAL",
        `flat-iommu translate wants a non-negative safe integer IOVA and access 1 (read) or 2 (write), got ${
          show(iova)
        } and ${show(access)}`,
      );
    }
    this.#c.translations++;
    const domain = this.#unit.attached;
    let pa = -1;
    let perm = 0;
    if (domain !== null && iova < 2 ** 32) {
      this.#c.walks++;
      const d = this.#mem.read32(
        domain.rootTable + Math.floor(iova / BLOCK) * 4,
      );
      if (d & LINK) {
        const e = this.#mem.read32(base(d) + ((iova / PAGE) & 1023) * 4);
        if (e & VALID) {
          pa = base(e) + (iova % PAGE);
          perm = e;
          this.lastSpan = PAGE - (iova % PAGE);
        }
      } else if (d & VALID) {
        pa = base(d) + (iova % BLOCK);
        perm = d;
        this.lastSpan = BLOCK - (iova % BLOCK);
      }
    }
    const want = access === ACCESS_WRITE ? WRITE : READ;
    if (pa >= 0 && (perm & want)) return pa;
    this.#c.faults++;
    this.lastFault = {
      unit: this.#unit.name,
      streamId,
      iova,
      access: access === ACCESS_WRITE ? "write" : "read",
      reason: pa >= 0 ? "permission" : "translation",
    };
    this.#ctx.reportFault(this.lastFault);
    return -1;
  }
  isBypassing(): boolean {
    return false;
  }
  setPower(): void {}
  readRegister(): number {
    return 0;
  }
  writeRegister(): void {}
  counters(): Record<string, number> {
    return { ...this.#c };
  }
}

class FlatUnit implements IommuUnit {
  readonly name: string;
  readonly plugin = "flat-iommu";
  readonly caps = {
    topology: "per-device" as const,
    pageSizes: [PAGE, BLOCK],
    inputBits: 32,
    outputBits: 32,
    streamIds: 0,
    features: [],
  };
  readonly hardware: IommuHardware;
  readonly driver: FlatDriver;
  attached: FlatDomain | null = null;
  constructor(node: DeviceNode, ctx: ProbeContext, driver: FlatDriver) {
    this.name = node.name;
    this.driver = driver;
    this.hardware = new FlatHardware(this, ctx);
  }
}

/** The minimal test plugin: compatible "iommukit,flat-iommu", per-device, 4 KiB + 4 MiB pages. */
export function flatIommu(): IommuPlugin {
  const drivers = new WeakMap<PhysicalMemory, FlatDriver>();
  return {
    name: "flat-iommu",
    compatible: ["iommukit,flat-iommu"],
    iommuCells: 0,
    probe(node: DeviceNode, ctx: ProbeContext): IommuUnit {
      let driver = drivers.get(ctx.memory);
      if (driver === undefined) {
        driver = new FlatDriver(ctx.memory);
        drivers.set(ctx.memory, driver);
      }
      return new FlatUnit(node, ctx, driver);
    },
  };
}

/** A value for an error message (a bigint keeps its n). */
function show(v: unknown): string {
  return typeof v === "bigint" ? `${v}n` : String(v);
}
