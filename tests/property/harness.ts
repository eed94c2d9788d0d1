/**
 * Model-based random testing of a plugin through the core: random short
 * sequences of map (three APIs), strict and lazy unmap, sync, flush, attach,
 * detach, DMA reads and writes, domain free/re-create, power cycling and
 * injected allocation failures, each checked against {@linkcode DomainModel}.
 *
 * After every step: decoded leaves equal the model's, iovaToPhys agrees,
 * domain counters add up, live frame bytes equal page tables + deferred
 * frees + a constant, and DMA reaches exactly the model's pages (or a stale
 * page of a lazy unmap that is not yet synced).
 *
 * Replay a failure with `IOMMUKIT_SEED=<seed> IOMMUKIT_PATH=<path>`.
 */
import fc from "fast-check";
import {
  createSoc,
  type DeviceNodeSpec,
  type Domain,
  IOMMU_CACHE,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuPlugin,
  type IommuUnit,
  IotlbGather,
  type Master,
  type Soc,
} from "../../core/mod.ts";
import {
  diffLeaves,
  DomainModel,
  type ModelOutcome,
  type ModelRun,
  runsFromSegments,
} from "../support/model.ts";

/** A plugin set up for the model-based run. */
export interface PropertyTarget {
  /** Name in messages. */
  name: string;
  /** Fresh plugin. */
  plugin: () => IommuPlugin;
  /** Unit nodes: one per master (per-device) or one (central). */
  units: readonly DeviceNodeSpec[];
  /** Stream IDs of the masters on a central unit. */
  streamIds?: readonly number[];
  /** RAM. */
  memory: { base: number; size: number };
  /** Page sizes the domains use (a subset of the unit's), ascending. */
  pageSizes: readonly number[];
  /** Protection bits the format keeps and `leaves()` reports. */
  protMask: number;
  /**
   * The protection the format stores and enforces for a requested one
   * (for example write-only widened to read-write); default unchanged.
   */
  effectiveProt?: (prot: number) => number;
  /** Whether to include power on/off steps. */
  power?: boolean;
  /** Called once the units are probed (power on, enable…). */
  prepare?: (soc: Soc, units: readonly IommuUnit[]) => void;
}

/** One abstract step; concrete addresses are derived at run time. */
export type Op =
  | {
    t: "map";
    d: number;
    api: number;
    cls: number;
    slot: number;
    off: number;
    n: number;
    extra: number;
    pslot: number;
    poff: number;
    prot: number;
    shuffle: boolean;
    gap: boolean;
  }
  | {
    t: "unmap";
    d: number;
    cls: number;
    slot: number;
    off: number;
    n: number;
    extra: number;
    lazy: boolean;
  }
  | { t: "sync"; d: number }
  | { t: "flush"; d: number }
  | { t: "attach"; d: number; m: number }
  | { t: "detach"; d: number; m: number }
  | {
    t: "dma";
    m: number;
    write: boolean;
    slot: number;
    off: number;
    sub: number;
    len: number;
    pick: number;
    /**
     * Aim at a live leaf of the domain of an attached, powered master
     * (the first such from `m` on), with an access its protection permits,
     * inside one smallest page: such a DMA transfers data unless a stale
     * translation or a fault is the model's answer. With no such master
     * the step does nothing.
     */
    aim?: boolean;
  }
  | { t: "recycle"; d: number }
  | { t: "power"; m: number; on: boolean }
  | { t: "fail"; n: number };

/** Figures of one run. */
export interface PropertyStats {
  /** Sequences asked for (after the IOMMUKIT_RUNS override). */
  requested: number;
  sequences: number;
  steps: number;
  dma: number;
  dmaFaults: number;
  errors: Record<string, number>;
  injected: number;
}

const PROTS = [
  IOMMU_READ,
  IOMMU_WRITE,
  IOMMU_READ | IOMMU_WRITE,
  IOMMU_READ | IOMMU_CACHE,
  IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC,
  IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE,
];

const offArb = fc.oneof(
  fc.integer({ min: 0, max: 7 }),
  fc.integer({ min: -8, max: -1 }),
  fc.nat({ max: 1 << 20 }),
);

/**
 * The arbitrary of one step for `target`.
 *
 * @param target The target.
 * @returns An arbitrary of {@linkcode Op}.
 */
export function opArbitrary(target: PropertyTarget): fc.Arbitrary<Op> {
  const masters = Math.max(target.units.length, target.streamIds?.length ?? 0);
  const d = fc.integer({ min: 0, max: 1 });
  const m = fc.integer({ min: 0, max: masters - 1 });
  const slot = fc.integer({ min: 0, max: 3 });
  const cls = fc.nat({ max: 7 });
  const arbs: fc.WeightedArbitrary<Op>[] = [
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant("map" as const),
        d,
        api: fc.integer({ min: 0, max: 2 }),
        cls,
        slot,
        off: offArb,
        n: fc.integer({ min: 1, max: 3 }),
        extra: fc.integer({ min: 0, max: 2 }),
        pslot: slot,
        poff: offArb,
        prot: fc.integer({ min: 0, max: PROTS.length - 1 }),
        shuffle: fc.boolean(),
        gap: fc.boolean(),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant("unmap" as const),
        d,
        cls,
        slot,
        off: offArb,
        n: fc.integer({ min: 1, max: 3 }),
        extra: fc.integer({ min: 0, max: 2 }),
        lazy: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("sync" as const), d }) },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant("flush" as const), d }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant("attach" as const), d, m }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant("detach" as const), d, m }),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant("dma" as const),
        m,
        write: fc.boolean(),
        slot,
        off: offArb,
        sub: fc.integer({ min: -3, max: 15 }),
        len: fc.integer({ min: 1, max: 64 }),
        pick: fc.integer({ min: -400, max: 1000 }),
      }),
    },
    {
      // Most random DMA above faults (unattached master, empty domain,
      // wrong direction, page ends); this one mostly transfers data.
      weight: 12,
      arbitrary: fc.record({
        t: fc.constant("dma" as const),
        m,
        write: fc.boolean(),
        slot,
        off: offArb,
        sub: fc.integer({ min: 0, max: 15 }),
        len: fc.integer({ min: 1, max: 64 }),
        pick: fc.nat({ max: 1000 }),
        aim: fc.constant(true),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant("recycle" as const), d }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant("fail" as const),
        n: fc.integer({ min: 1, max: 3 }),
      }),
    },
  ];
  if (target.power) {
    arbs.push({
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant("power" as const),
        m,
        on: fc.boolean(),
      }),
    });
  }
  return fc.oneof(...arbs);
}

function kindOf(e: unknown): string {
  if (e instanceof IommuError) return e.kind;
  throw e;
}

class Divergence extends Error {}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Divergence(what);
}

/** The system under test for one sequence, with its model. */
class World {
  readonly soc: Soc;
  readonly units: IommuUnit[];
  readonly masters: Master[] = [];
  readonly unitOf: IommuUnit[] = [];
  readonly sidOf: number[] = [];
  readonly domains: Domain[] = [];
  readonly models: DomainModel[] = [];
  readonly gathers: IotlbGather[] = [];
  readonly att: (number | null)[] = [];
  readonly powered: boolean[] = [];
  readonly small: number;
  readonly big: number;
  readonly window: number;
  readonly baseline: number;
  other = 0;
  dmaTried: number[] = [];
  stamp = 1;

  constructor(readonly target: PropertyTarget, readonly stats: PropertyStats) {
    const soc = createSoc({ memory: target.memory });
    soc.use(target.plugin());
    this.soc = soc;
    this.units = target.units.map((n) => soc.probeUnit(n));
    target.prepare?.(soc, this.units);
    this.small = target.pageSizes[0]!;
    this.big = target.pageSizes[target.pageSizes.length - 1]!;
    // Pool of physical pages the maps point at, reserved so that no page
    // table ever lands there; the IOVA window is the same numbers, so a
    // bypassing stream also lands in the pool.
    this.window = soc.memory.frames.alloc(8 * this.big);
    const central = this.units[0]!.caps.topology === "central";
    const count = central ? target.streamIds!.length : this.units.length;
    for (let i = 0; i < count; i++) {
      const unit = central ? this.units[0]! : this.units[i]!;
      const sid = central ? target.streamIds![i]! : 0;
      this.masters.push(soc.addMaster({
        name: `m${i}`,
        ports: [{ unit, ...(central ? { streamIds: [sid] } : {}) }],
      }));
      this.unitOf.push(unit);
      this.sidOf.push(sid);
      this.att.push(null);
      this.powered.push(true);
      this.dmaTried.push(0);
    }
    this.baseline = soc.memory.frames.liveBytes;
    for (let i = 0; i < 2; i++) {
      this.domains.push(
        soc.createDomain(this.units[i % this.units.length]!, {
          pageSizes: target.pageSizes,
        }),
      );
      // Faults are expected here; a handler that takes them keeps units
      // that block on unhandled faults (Exynos) running.
      this.domains[i]!.setFaultHandler(() => true);
      this.models.push(new DomainModel(target.pageSizes));
      this.gathers.push(new IotlbGather());
    }
    for (let i = 0; i < 2 && i < this.masters.length; i++) this.attach(i, i);
    this.other = this.frameOther();
  }

  // Page-table bytes per domain, refreshed only for domains an operation
  // may have changed (decoding every table each step would dominate).
  #tables: number[] = [];

  tableBytes(d: number): number {
    let b = 0;
    for (const s of this.domains[d]!.tableStats()) b += s.bytes;
    for (const pa of this.gathers[d]!.freeList) {
      b += this.soc.memory.frames.blockSize(pa);
    }
    this.#tables[d] = b;
    return b;
  }

  #lastLive = -1;

  frameOther(touched: readonly number[] = [0, 1]): number {
    const live = this.soc.memory.frames.liveBytes;
    // Unchanged live bytes mean no table was allocated or freed.
    if (live !== this.#lastLive || touched.length === 2) {
      for (const d of touched) this.tableBytes(d);
    }
    this.#lastLive = live;
    let b = 0;
    for (let d = 0; d < this.domains.length; d++) b += this.#tables[d] ?? 0;
    return this.soc.memory.frames.liveBytes - b;
  }

  at(slot: number, off: number, size: number): number {
    const perBig = this.big / this.small;
    const o = ((off % perBig) + perBig) % perBig;
    const bytes = Math.floor((o * this.small) / size) * size;
    return this.window + slot * this.big + bytes;
  }

  sizeOf(cls: number): number {
    return this.target.pageSizes[cls % this.target.pageSizes.length]!;
  }

  run(op: Op): void {
    switch (op.t) {
      case "map":
        return this.map(op);
      case "unmap":
        return this.unmap(op);
      case "sync": {
        this.domains[op.d]!.sync(this.gathers[op.d]!);
        this.models[op.d]!.invalidate();
        return;
      }
      case "flush": {
        this.domains[op.d]!.flushAll();
        this.models[op.d]!.invalidate();
        return;
      }
      case "attach":
        return this.attach(op.d, op.m);
      case "detach":
        return this.detach(op.d, op.m);
      case "dma":
        return this.dma(op);
      case "recycle":
        return this.recycle(op.d);
      case "power": {
        this.unitOf[op.m]!.hardware.setPower(op.on);
        this.powered[op.m] = op.on;
        // Powering on reprograms and flushes: no stale entry survives.
        if (op.on) { for (const m of this.models) m.invalidate(); }
        this.other = this.frameOther();
        return;
      }
      case "fail":
        return;
    }
  }

  outcome(
    predicted: ModelOutcome,
    fn: () => void,
    armed: boolean,
  ): boolean {
    let got = "ok";
    try {
      fn();
    } catch (e) {
      got = kindOf(e);
    }
    if (got !== "ok") {
      this.stats.errors[got] = (this.stats.errors[got] ?? 0) + 1;
    }
    if (armed && got === "ENOMEM") {
      this.stats.injected++;
      return false;
    }
    check(got === predicted, `expected ${predicted}, got ${got}`);
    return got === "ok";
  }

  map(op: Extract<Op, { t: "map" }>, armed = false): void {
    const size = this.sizeOf(op.cls);
    const iova = this.at(op.slot, op.off, size);
    const pa = this.at(op.pslot, op.poff, size);
    const dom = this.domains[op.d]!, model = this.models[op.d]!;
    const prot = PROTS[op.prot]!;
    const kept = this.target.effectiveProt?.(prot) ?? prot;
    let runs: ModelRun[];
    let call: () => void;
    if (op.api === 1) {
      const frames = Array.from({ length: op.n }, (_, i) => pa + i * size);
      if (op.shuffle) frames.reverse();
      runs = runsFromSegments(
        iova,
        frames.map((f) => ({ pa: f, length: size })),
      );
      call = () => dom.mapPages(iova, frames, prot, size);
    } else if (op.api === 2) {
      const total = op.n * size + op.extra * this.small;
      const cut = Math.max(
        this.small,
        Math.floor(total / 2 / this.small) * this.small,
      );
      const segs = cut < total
        ? [
          { pa, length: cut },
          { pa: pa + cut + (op.gap ? this.small : 0), length: total - cut },
        ]
        : [{ pa, length: total }];
      runs = runsFromSegments(iova, segs);
      call = () => dom.mapSg(iova, segs, prot);
    } else {
      const total = op.n * size + op.extra * this.small;
      runs = [{ iova, pa, size: total }];
      call = () => dom.map(iova, pa, total, prot);
    }
    const predicted = model.map(runs, kept, false);
    if (this.outcome(predicted, call, armed)) model.map(runs, kept);
  }

  unmap(op: Extract<Op, { t: "unmap" }>, armed = false): void {
    const size = this.sizeOf(op.cls);
    const iova = this.at(op.slot, op.off, size);
    const total = op.n * size + op.extra * this.small;
    const dom = this.domains[op.d]!, model = this.models[op.d]!;
    const predicted = model.unmap(iova, total, op.lazy, false);
    let bytes = -1;
    const ok = this.outcome(
      predicted === "EINVAL" ? "EINVAL" : "ok",
      () => {
        bytes = op.lazy
          ? dom.unmapNoSync(iova, total, this.gathers[op.d]!)
          : dom.unmap(iova, total);
      },
      armed,
    );
    if (ok) {
      check(bytes === predicted, `unmap returned ${bytes}, model ${predicted}`);
      model.unmap(iova, total, op.lazy);
    }
  }

  attach(d: number, m: number, armed = false): void {
    const sids = this.unitOf[m]!.caps.topology === "central"
      ? [this.sidOf[m]!]
      : [];
    const ok = this.outcome(
      "ok",
      () => this.domains[d]!.attach(this.unitOf[m]!, sids),
      armed,
    );
    if (ok) {
      // Per-device: the unit is the attachment; every master behind it moves.
      for (let i = 0; i < this.att.length; i++) {
        if (
          this.unitOf[i] === this.unitOf[m] && this.sidOf[i] === this.sidOf[m]
        ) {
          this.att[i] = d;
        }
      }
    }
    this.other = this.frameOther();
  }

  detach(d: number, m: number, armed = false): void {
    const sids = this.unitOf[m]!.caps.topology === "central"
      ? [this.sidOf[m]!]
      : [];
    const ok = this.outcome(
      this.att[m] === d ? "ok" : "ENOENT",
      () => this.domains[d]!.detach(this.unitOf[m]!, sids),
      armed,
    );
    if (ok) {
      for (let i = 0; i < this.att.length; i++) {
        if (
          this.unitOf[i] === this.unitOf[m] && this.sidOf[i] === this.sidOf[m]
        ) {
          this.att[i] = null;
        }
      }
    }
    this.other = this.frameOther();
  }

  recycle(d: number, armed = false): void {
    const busy = this.att.includes(d);
    const dom = this.domains[d]!;
    const ok = this.outcome(busy ? "EBUSY" : "ok", () => {
      dom.sync(this.gathers[d]!);
      dom.free();
    }, armed);
    if (!ok) {
      this.models[d]!.invalidate();
      return;
    }
    this.models[d] = new DomainModel(this.target.pageSizes);
    check(dom.freed, "domain not marked freed");
    let threw: unknown = null;
    try {
      dom.map(this.window, this.window, this.small, IOMMU_READ);
    } catch (e) {
      threw = e;
    }
    check(
      threw instanceof IommuError && threw.kind === "EPERM",
      "map after free did not throw EPERM",
    );
    for (;;) {
      try {
        this.domains[d] = this.soc.createDomain(
          this.units[d % this.units.length]!,
          {
            pageSizes: this.target.pageSizes,
          },
        );
        this.domains[d]!.setFaultHandler(() => true);
        break;
      } catch (e) {
        // An armed failure may hit the new root table: it must be ENOMEM
        // and leak nothing; then try again.
        check(
          armed && kindOf(e) === "ENOMEM",
          `createDomain threw ${String(e)}`,
        );
        this.stats.injected++;
        this.soc.memory.frames.failNth(0);
      }
    }
    this.other = this.frameOther();
  }

  /** The first attached, powered master from `from` on whose domain has leaves, or -1. */
  liveMaster(from: number): number {
    const n = this.masters.length;
    for (let k = 0; k < n; k++) {
      const m = (from + k) % n;
      const d = this.att[m];
      if (
        d !== null && d !== undefined && this.powered[m] &&
        this.models[d]!.leaves.length > 0
      ) return m;
    }
    return -1;
  }

  dma(op: Extract<Op, { t: "dma" }>): void {
    const aimed = op.aim === true ? this.liveMaster(op.m) : -1;
    // Nothing live to aim at: the unaimed DMA steps cover faulting accesses.
    if (op.aim === true && aimed < 0) return;
    const m = aimed >= 0 ? aimed : op.m;
    let write = op.write;
    const port = this.masters[m]!.port();
    const hw = this.unitOf[m]!.hardware;
    const sid = this.sidOf[m]!;
    const small = this.small;
    let page = this.at(op.slot, op.off, small);
    const target = this.att[m];
    if (op.pick >= 0 && target !== null && target !== undefined) {
      // Aim at a mapped leaf most of the time, so DMA mostly lands.
      const ls = this.models[target]!.leaves;
      const l = ls[op.pick % Math.max(1, ls.length)];
      if (l !== undefined) {
        page = l.iova + (Math.abs(op.off) % (l.pageSize / small)) * small;
        // Aimed: take the direction the leaf permits (both: keep op.write).
        if (aimed >= 0) {
          if (write && (l.prot & IOMMU_WRITE) === 0) write = false;
          else if (!write && (l.prot & IOMMU_READ) === 0) write = true;
        }
      }
    }
    const start = op.sub < 0 ? page + small - 8 : page + op.sub * 16;
    const len = op.sub < 0 ? 16 : op.len;
    const access = write ? IOMMU_WRITE : IOMMU_READ;
    this.stats.dma++;
    this.dmaTried[m]!++;
    const mem = this.soc.memory;
    const data = new Uint8Array(len);
    const stamp = this.stamp++;
    for (let i = 0; i < len; i++) data[i] = (stamp * 131 + i * 7 + 1) & 0xff;
    // Per-piece candidates (pieces never cross a smallest-page boundary).
    const pieces: {
      at: number;
      n: number;
      live: number;
      stale: number[];
      mapped: boolean;
    }[] = [];
    const d = this.att[m];
    const bypass = hw.isBypassing(sid);
    for (let at = start; at < start + len;) {
      const n = Math.min(start + len - at, small - (at % small));
      if (bypass) pieces.push({ at, n, live: at, stale: [], mapped: true });
      else if (d === null || d === undefined) {
        pieces.push({ at, n, live: -1, stale: [], mapped: false });
      } else {
        const r = this.models[d]!.reachable(at, access);
        pieces.push({ at, n, live: r.live, stale: r.stale, mapped: r.mapped });
      }
      at += n;
    }
    // A powered-off unit reports itself bypassing (checked exactly above);
    // one that is off but not bypassing is only required to transfer to a
    // permitted page or fault.
    const uncertain = pieces.some((p) => p.stale.length > 0) ||
      (!this.powered[m] && !bypass);
    const allLive = pieces.every((p) => p.live >= 0);
    const before = pieces.map((p) =>
      p.live >= 0 || p.mapped
        ? mem.readBytes(p.live >= 0 ? p.live : p.at, p.n)
        : null
    );
    let fault;
    const into = new Uint8Array(len).fill(0xee);
    if (write) fault = port.write(start, data);
    else fault = port.read(start, into);
    if (fault !== null) this.stats.dmaFaults++;
    if (uncertain) {
      if (fault !== null) return;
      // Success through live or stale translations: each piece must match
      // one of its candidates.
      let off = 0;
      for (const p of pieces) {
        const cands = [...(p.live >= 0 ? [p.live] : []), ...p.stale];
        const want = write
          ? data.subarray(off, off + p.n)
          : into.subarray(off, off + p.n);
        check(
          cands.some((pa) =>
            mem.readBytes(pa, p.n).every((x, i) => x === want[i])
          ),
          `DMA ${write ? "write" : "read"} at ${
            start.toString(16)
          } reached no permitted page`,
        );
        off += p.n;
      }
      return;
    }
    if (!allLive) {
      check(
        fault !== null,
        `DMA ${write ? "write" : "read"} at 0x${
          start.toString(16)
        } (master ${m}, domain ${d}) succeeded without a permitting mapping`,
      );
      check(fault!.access === (write ? "write" : "read"), "fault access");
      // A faulting access transfers nothing.
      pieces.forEach((p, i) => {
        const b = before[i];
        if (b === null || b === undefined) return;
        const now = mem.readBytes(p.live >= 0 ? p.live : p.at, p.n);
        check(now.every((x, j) => x === b[j]), "faulting write changed RAM");
      });
      if (!write) {
        check(into.every((x) => x === 0xee), "faulting read filled the buffer");
      }
      return;
    }
    check(
      fault === null,
      `DMA ${write ? "write" : "read"} at 0x${
        start.toString(16)
      } (master ${m}, domain ${d}) faulted: ${JSON.stringify(fault)}`,
    );
    let off = 0;
    for (const p of pieces) {
      const got = mem.readBytes(p.live, p.n);
      const want = write
        ? data.subarray(off, off + p.n)
        : into.subarray(off, off + p.n);
      check(
        got.every((x, i) => x === want[i]),
        `DMA data at 0x${p.at.toString(16)} went astray`,
      );
      off += p.n;
    }
  }

  verify(kind: string, touched: readonly number[] = [0, 1]): void {
    for (const i of touched) {
      const dom = this.domains[i]!, model = this.models[i]!;
      const diff = diffLeaves(dom.leaves(), model.leaves, this.target.protMask);
      check(diff === null, `domain ${i}: ${diff}`);
      const c = dom.counters();
      check(
        c.liveBytes === model.bytes,
        `domain ${i}: counters.liveBytes ${c.liveBytes} != model ${model.bytes}`,
      );
      check(
        c.bytesMapped - c.bytesUnmapped === c.liveBytes,
        `domain ${i}: bytesMapped - bytesUnmapped != liveBytes`,
      );
      check(
        c.leavesMapped - c.leavesUnmapped === model.leaves.length,
        `domain ${i}: leaf counters ${c.leavesMapped}-${c.leavesUnmapped} != ${model.leaves.length}`,
      );
      // A sample of leaves (all of them when few): first, last, and a stride.
      const ls = model.leaves;
      const stride = Math.max(1, Math.floor(ls.length / 16));
      for (
        let k = 0;
        k < ls.length;
        k += k === ls.length - 1 ? 1 : Math.min(stride, ls.length - 1 - k)
      ) {
        const l = ls[k]!;
        const last = l.iova + l.pageSize - 1;
        check(
          dom.iovaToPhys(l.iova) === l.pa,
          `iovaToPhys(${l.iova.toString(16)})`,
        );
        check(
          dom.iovaToPhys(last) === l.pa + l.pageSize - 1,
          `iovaToPhys(last of ${l.iova.toString(16)})`,
        );
        check(dom.ops.leafSize(l.iova) === l.pageSize, "leafSize");
      }
    }
    const other = this.frameOther(touched);
    if (
      kind === "map" || kind === "unmap" || kind === "sync" || kind === "dma" ||
      kind === "flush"
    ) {
      check(
        other === this.other,
        `after ${kind}: frames outside page tables changed from ${this.other} to ${other}`,
      );
    }
    this.other = other;
  }

  teardown(): void {
    this.verify("end");
    for (let i = 0; i < this.domains.length; i++) {
      const dom = this.domains[i]!;
      dom.sync(this.gathers[i]!);
      dom.unmap(this.window, 8 * this.big);
      check(dom.leaves().length === 0, "leaves after unmapping everything");
      for (const a of dom.attachments()) dom.detach(a.unit, a.streamIds);
      dom.free();
    }
    const live = this.soc.memory.frames.liveBytes;
    check(
      live === this.baseline,
      `leak: ${
        live - this.baseline
      } frame bytes live after freeing every domain`,
    );
    let portFaults = 0;
    this.masters.forEach((m, i) => {
      const c = m.port().counters();
      check(c.accesses + c.faults === this.dmaTried[i], `port ${i} counters`);
      portFaults += c.faults;
    });
    // Every faulting access reported exactly one fault, and the units'
    // cache counters add up (hits + misses = lookups).
    check(
      this.soc.faults.counters().faults === portFaults,
      `router saw ${this.soc.faults.counters().faults} faults, ports ${portFaults}`,
    );
    let unitFaults = 0;
    for (const u of this.units) {
      const c = u.hardware.counters();
      unitFaults += c.faults ?? 0;
      for (const key of Object.keys(c)) {
        if (!key.endsWith("lookups")) continue;
        const p = key.slice(0, -"lookups".length);
        const hits = c[`${p}hits`], misses = c[`${p}misses`];
        if (hits !== undefined && misses !== undefined) {
          check(
            hits + misses === c[key],
            `${u.name}: ${p}hits + ${p}misses != ${p}lookups`,
          );
        }
      }
    }
    check(
      unitFaults === portFaults,
      `units counted ${unitFaults} faults, ports ${portFaults}`,
    );
  }
}

/**
 * Run one sequence; throws (a Divergence or the unexpected error) on failure.
 *
 * @param target The target.
 * @param ops The steps.
 * @param stats Figures to add to.
 */
export function runSequence(
  target: PropertyTarget,
  ops: readonly Op[],
  stats: PropertyStats,
): void {
  const w = new World(target, stats);
  stats.sequences++;
  let armed = false;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    stats.steps++;
    try {
      if (op.t === "fail") {
        w.soc.memory.frames.failNth(op.n);
        armed = true;
        continue;
      }
      if (armed) {
        switch (op.t) {
          case "map":
            w.map(op, true);
            break;
          case "unmap":
            w.unmap(op, true);
            break;
          case "attach":
            w.attach(op.d, op.m, true);
            break;
          case "detach":
            w.detach(op.d, op.m, true);
            break;
          case "recycle":
            w.recycle(op.d, true);
            break;
          default:
            w.run(op);
        }
        w.soc.memory.frames.failNth(0);
        armed = false;
      } else w.run(op);
      // Steps that change one domain's tables re-check that domain; the
      // rest (attach, DMA, power, failures) re-check both.
      w.verify(
        op.t,
        op.t === "map" || op.t === "unmap" || op.t === "sync" ||
          op.t === "flush"
          ? [op.d]
          : op.t === "dma"
          ? []
          : [0, 1],
      );
    } catch (e) {
      if (e instanceof Error) {
        e.message = `${target.name} step ${i} ${
          JSON.stringify(op)
        }: ${e.message}`;
      }
      throw e;
    }
  }
  w.soc.memory.frames.failNth(0);
  w.teardown();
}

/**
 * Run `numRuns` random sequences with fast-check (shrinking on failure;
 * the seed and path are printed by fast-check).
 *
 * @param target The target.
 * @param numRuns How many sequences.
 * @returns Figures.
 */
export function runProperty(
  target: PropertyTarget,
  numRuns: number,
): PropertyStats {
  const requested = Number(Deno.env.get("IOMMUKIT_RUNS") ?? numRuns);
  const stats: PropertyStats = {
    requested,
    sequences: 0,
    steps: 0,
    dma: 0,
    dmaFaults: 0,
    errors: {},
    injected: 0,
  };
  const seedText = Deno.env.get("IOMMUKIT_SEED");
  const path = Deno.env.get("IOMMUKIT_PATH");
  fc.assert(
    fc.property(
      fc.array(opArbitrary(target), { minLength: 5, maxLength: 20 }),
      (ops) => runSequence(target, ops, stats),
    ),
    {
      // IOMMUKIT_RUNS overrides the count (for example to soak locally).
      numRuns: requested,
      seed: seedText === undefined ? 0x10aa : Number(seedText),
      ...(path === undefined ? {} : { path }),
    },
  );
  return stats;
}

/**
 * The one-line summary a property test prints.
 *
 * @param label Target name.
 * @param stats Figures of the run.
 * @param ms Wall time of the run (milliseconds).
 * @returns The line.
 */
export function summaryLine(
  label: string,
  stats: PropertyStats,
  ms: number,
): string {
  return `${label}: ${stats.sequences} sequences, ${stats.steps} steps, ${stats.dma} DMA (${
    stats.dma - stats.dmaFaults
  } transferred, ${stats.dmaFaults} faulted), ${stats.injected} injected ENOMEM, errors ${
    JSON.stringify(stats.errors)
  }, 0 divergences, ${Math.round(ms)} ms`;
}
