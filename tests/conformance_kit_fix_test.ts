// The conformance kit must fail plugins with the defects a reviewer showed it
// passed: a strict unmap that invalidates only its first page, a lastSpan
// that runs past the end of a page, a detach that keeps translating, and a
// move to another domain that keeps the old domain's TLB entries. Each
// broken plugin here is the test plugin of tests/support/flat_iommu.ts
// behind a small wrapper that adds a TLB and one defect; the same wrapper
// without a defect passes every case, so each failure is the defect's.
import { assert, assertEquals } from "@std/assert";
import type {
  IommuCaps,
  IommuDomainOps,
  IommuDriver,
  IommuFault,
  IommuHardware,
  IommuPlugin,
  IommuUnit,
  IotlbGather,
  MappingRecord,
  MapPlan,
  PageTableLevelStats,
} from "../core/mod.ts";
import { conformanceCases, type ConformanceConfig } from "../testing/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";

type Defect =
  | "none"
  | "invalidate-first-page-only"
  | "last-span-huge"
  | "detach-keeps-translating"
  | "move-keeps-old-tlb";

const PAGE = 4096;

interface Entry {
  pa: number; // physical address of the 4 KiB page
  domain: object; // the domain the entry was filled from
}

// A 4 KiB-granule TLB in front of the flat unit's walker, tagged with the
// domain attached when the entry was filled.
class CachedHardware implements IommuHardware {
  lastSpan = 0;
  readonly tlb = new Map<number, Entry>(); // key: page * 4 + access
  domain: object | null = null;
  readonly #inner: IommuHardware;
  readonly #defect: Defect;
  constructor(inner: IommuHardware, defect: Defect) {
    this.#inner = inner;
    this.#defect = defect;
  }
  get lastFault(): IommuFault | null {
    return this.#inner.lastFault;
  }
  translate(streamId: number, iova: number, access: number): number {
    const page = Math.floor(iova / PAGE), off = iova % PAGE;
    const hit = this.tlb.get(page * 4 + access);
    const tagged = this.#defect === "move-keeps-old-tlb" ||
      hit?.domain === this.domain;
    let pa: number;
    if (hit !== undefined && tagged) pa = hit.pa + off;
    else {
      pa = this.#inner.translate(streamId, iova, access);
      if (pa < 0) return -1;
      if (this.domain !== null) {
        this.tlb.set(page * 4 + access, { pa: pa - off, domain: this.domain });
      }
    }
    this.lastSpan = this.#defect === "last-span-huge" ? 2 ** 32 : PAGE - off;
    return pa;
  }
  invalidate(first: number, last: number): void {
    for (const key of [...this.tlb.keys()]) {
      const page = Math.floor(key / 4);
      if (page * PAGE <= last && page * PAGE + PAGE > first) {
        this.tlb.delete(key);
      }
    }
  }
  isBypassing(streamId: number): boolean {
    return this.#inner.isBypassing(streamId);
  }
  setPower(on: boolean): void {
    this.#inner.setPower(on);
  }
  readRegister(offset: number): number {
    return this.#inner.readRegister(offset);
  }
  writeRegister(offset: number, value: number): void {
    this.#inner.writeRegister(offset, value);
  }
  counters(): Record<string, number> {
    return this.#inner.counters();
  }
}

// A unit of the wrapper: the flat unit's name and caps, the TLB in front of
// its hardware, and a driver whose domains keep the TLB coherent (or not).
class CachedUnit implements IommuUnit {
  readonly name: string;
  readonly plugin: string;
  readonly caps: IommuCaps;
  readonly hardware: CachedHardware;
  readonly driver: IommuDriver;
  readonly inner: IommuUnit;
  domain: CachedDomain | null = null;
  constructor(inner: IommuUnit, defect: Defect) {
    this.inner = inner;
    this.name = inner.name;
    this.plugin = inner.plugin;
    this.caps = inner.caps;
    this.hardware = new CachedHardware(inner.hardware, defect);
    this.driver = {
      allocDomain: () => new CachedDomain(inner.driver.allocDomain(), defect),
    };
  }
}

class CachedDomain implements IommuDomainOps {
  readonly #ops: IommuDomainOps;
  readonly #defect: Defect;
  readonly units = new Set<CachedUnit>();
  readonly contextId: number;
  readonly rootTable: number;
  constructor(ops: IommuDomainOps, defect: Defect) {
    this.#ops = ops;
    this.#defect = defect;
    this.contextId = ops.contextId;
    this.rootTable = ops.rootTable;
  }
  map(plan: MapPlan, prot: number): void {
    this.#ops.map(plan, prot);
  }
  unmapPages(
    iova: number,
    pageSize: number,
    count: number,
    gather: IotlbGather,
  ): number {
    return this.#ops.unmapPages(iova, pageSize, count, gather);
  }
  leafSize(iova: number): number {
    return this.#ops.leafSize(iova);
  }
  iovaToPhys(iova: number): number {
    return this.#ops.iovaToPhys(iova);
  }
  iotlbSync(gather: IotlbGather): void {
    this.#ops.iotlbSync(gather);
    if (gather.end < 0) return;
    const last = this.#defect === "invalidate-first-page-only"
      ? gather.start
      : gather.end;
    for (const u of this.units) u.hardware.invalidate(gather.start, last);
  }
  flushAll(): void {
    this.#ops.flushAll();
    for (const u of this.units) u.hardware.tlb.clear();
  }
  attach(unit: IommuUnit, streamIds: readonly number[]): void {
    const u = unit as CachedUnit;
    this.#ops.attach(u.inner, streamIds);
    u.domain?.units.delete(u);
    u.domain = this;
    this.units.add(u);
    u.hardware.domain = this;
    if (this.#defect !== "move-keeps-old-tlb") u.hardware.tlb.clear();
  }
  detach(unit: IommuUnit, streamIds: readonly number[]): void {
    const u = unit as CachedUnit;
    if (this.#defect === "detach-keeps-translating") return;
    this.#ops.detach(u.inner, streamIds);
    this.units.delete(u);
    u.domain = null;
    u.hardware.domain = null;
    u.hardware.tlb.clear();
  }
  leaves(): MappingRecord[] {
    return this.#ops.leaves();
  }
  tableStats(): PageTableLevelStats[] {
    return this.#ops.tableStats();
  }
  free(): void {
    this.#ops.free();
  }
}

// flat-iommu with a TLB and `defect`.
function cachedFlat(defect: Defect): IommuPlugin {
  const base = flatIommu();
  return {
    name: base.name,
    compatible: base.compatible,
    iommuCells: base.iommuCells,
    probe: (node, ctx): IommuUnit =>
      new CachedUnit(base.probe(node, ctx), defect),
  };
}

function config(defect: Defect): ConformanceConfig {
  return {
    plugin: () => cachedFlat(defect),
    units: [
      { name: "mmu0", compatible: ["iommukit,flat-iommu"] },
      { name: "mmu1", compatible: ["iommukit,flat-iommu"] },
    ],
  };
}

// The names of the cases that fail, each with its message.
function failures(defect: Defect): string[] {
  const out: string[] = [];
  for (const c of conformanceCases(config(defect))) {
    try {
      c.run();
    } catch (e) {
      out.push(`${c.name}: ${String(e)}`);
    }
  }
  return out;
}

Deno.test("the kit's TLB wrapper without a defect passes every case", () => {
  assertEquals(failures("none"), []);
});

const expected: [Defect, string][] = [
  ["invalidate-first-page-only", "strict unmap"],
  ["last-span-huge", "across a page boundary"],
  ["detach-keeps-translating", "after the unit is detached"],
  ["move-keeps-old-tlb", "moving a unit to an empty domain"],
];

for (const [defect, caseName] of expected) {
  Deno.test(`the kit fails a plugin with the defect ${defect}`, () => {
    const failed = failures(defect);
    assert(
      failed.some((f) => f.includes(caseName)),
      `no failing case mentions "${caseName}"; failures: ${
        JSON.stringify(failed)
      }`,
    );
  });
}
