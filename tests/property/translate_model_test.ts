/**
 * Differential test of both plugins' translation against a plain page
 * model: random sequences of map, strict and lazy unmap, sync, flush,
 * attach, detach, domain re-creation and (Samsung) power cycling on two
 * masters and two domains, with direct `hardware.translate()` calls and
 * port DMA checked after every step.
 *
 * What is checked, per configuration of caches, sizes and versions:
 * - translate() of a mapped page that permits the access returns the
 *   model's PA, and `lastSpan` is exactly the bytes from the IOVA to the
 *   end of that page (1 GiB, 2 MiB, 1 MiB, 64 KiB or 4 KiB);
 * - an access the page does not permit, or an unmapped IOVA, faults (-1)
 *   with reason "permission" or "translation";
 * - while a lazy unmap awaits its sync, an IOVA it covered may fault or
 *   translate through the old or the new mapping, each with its own
 *   permission and a span inside that page, and nothing else;
 * - a detached (or powered-off) Samsung unit passes addresses through, a
 *   generic stream without a domain faults;
 * - port DMA moves exactly the model's bytes between the buffer and RAM, or
 *   faults without moving any.
 *
 * Replay a failure with `IOMMUKIT_SEED=<seed> IOMMUKIT_PATH=<path>` (and
 * `IOMMUKIT_RUNS` to change the count; fast-check prints seed and path).
 */
import { assert } from "@std/assert";
import fc from "fast-check";
import {
  createSoc,
  type Domain,
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
  genericIommu,
  type GenericIommuOptions,
} from "../../plugins/generic_iommu/mod.ts";
import {
  samsungSysmmu,
  type SamsungSysmmuOptions,
} from "../../plugins/samsung_sysmmu/mod.ts";

const K4 = 4096;
const M1 = 1 << 20;
const M2 = 2 << 20;
const G1 = 2 ** 30;
const RW = IOMMU_READ | IOMMU_WRITE;

/** One configuration of a plugin under test. */
interface Config {
  name: string;
  /** Whether the unit is central (stream IDs) or one unit per master. */
  central: boolean;
  /** Page sizes of the format, ascending. */
  sizes: readonly number[];
  /** Bases of the IOVA regions the steps use (each four largest pages). */
  bases: readonly number[];
  /** IOVAs at or above this are never used. */
  limit: number;
  /** Protections the maps ask for. */
  prots: readonly number[];
  /** Whether write-only widens to read-write (stage-1 LPAE, old Samsung). */
  widenWrite: boolean;
  /** Whether power on/off steps run (per-device units). */
  power: boolean;
  memory: { base: number; size: number };
  units: (soc: Soc) => IommuUnit[];
  plugin: () => IommuPlugin;
  runs: number;
  seed: number;
}

interface Leaf {
  iova: number;
  size: number;
  pa: number;
  prot: number;
}

/** The leaves of one domain and the leaves lazily unmapped since its sync. */
class PageModel {
  readonly live = new Map<number, Leaf>();
  stale: Leaf[] = [];

  constructor(readonly sizes: readonly number[]) {}

  leafAt(iova: number): Leaf | undefined {
    for (const s of this.sizes) {
      const l = this.live.get(Math.floor(iova / s) * s);
      if (l !== undefined && l.size === s) return l;
    }
    return undefined;
  }

  staleAt(iova: number): Leaf[] {
    return this.stale.filter((l) => iova >= l.iova && iova < l.iova + l.size);
  }

  overlapping(start: number, end: number): Leaf[] {
    return [...this.live.values()].filter((l) =>
      l.iova < end && start < l.iova + l.size
    );
  }
}

type Op =
  | {
    t: "map";
    d: number;
    cls: number;
    slot: number;
    k: number;
    n: number;
    pk: number;
    prot: number;
    api: number;
  }
  | {
    t: "unmap";
    d: number;
    cls: number;
    slot: number;
    k: number;
    n: number;
    lazy: boolean;
  }
  | { t: "sync"; d: number }
  | { t: "flush"; d: number }
  | { t: "attach"; d: number; m: number }
  | { t: "detach"; m: number }
  | { t: "recycle"; d: number }
  | { t: "power"; m: number; on: boolean }
  | {
    t: "xl";
    m: number;
    aim: number;
    off: number;
    write: boolean;
    aimed: boolean;
  }
  | {
    t: "dma";
    m: number;
    aim: number;
    off: number;
    len: number;
    write: boolean;
    aimed: boolean;
  };

function opArbitrary(cfg: Config): fc.Arbitrary<Op> {
  const d = fc.nat({ max: 1 });
  const m = fc.nat({ max: 1 });
  const slot = fc.nat({ max: cfg.bases.length * 4 - 1 });
  const cls = fc.nat({ max: cfg.sizes.length - 1 });
  const k = fc.nat({ max: 40 });
  const n = fc.integer({ min: 1, max: 3 });
  const aim = fc.nat({ max: 1000 });
  const off = fc.nat({ max: 0x7fffffff });
  const arbs: fc.WeightedArbitrary<Op>[] = [
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant("map" as const),
        d,
        cls,
        slot,
        k,
        n,
        pk: fc.nat({ max: 1000 }),
        prot: fc.nat({ max: cfg.prots.length - 1 }),
        api: fc.nat({ max: 2 }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant("unmap" as const),
        d,
        cls,
        slot,
        k,
        n,
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
      arbitrary: fc.record({ t: fc.constant("detach" as const), m }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ t: fc.constant("recycle" as const), d }),
    },
    {
      weight: 20,
      arbitrary: fc.record({
        t: fc.constant("xl" as const),
        m,
        aim,
        off,
        write: fc.boolean(),
        aimed: fc.oneof(
          { weight: 2, arbitrary: fc.constant(true) },
          { weight: 1, arbitrary: fc.constant(false) },
        ),
      }),
    },
    {
      weight: 8,
      arbitrary: fc.record({
        t: fc.constant("dma" as const),
        m,
        aim,
        off,
        // Mostly within a page, sometimes across several.
        len: fc.oneof(
          fc.integer({ min: 1, max: 64 }),
          fc.integer({ min: 1, max: 9000 }),
        ),
        write: fc.boolean(),
        aimed: fc.oneof(
          { weight: 3, arbitrary: fc.constant(true) },
          { weight: 1, arbitrary: fc.constant(false) },
        ),
      }),
    },
  ];
  if (cfg.power) {
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

interface Stats {
  sequences: number;
  translations: number;
  translated: number;
  staleLookups: number;
  /** Exact translations checked, by page size. */
  bySize: Record<string, number>;
  dma: number;
  dmaFaults: number;
}

class Divergence extends Error {}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Divergence(what);
}

const hex = (n: number): string => "0x" + n.toString(16);

function sizeLabel(size: number): string {
  return size >= G1
    ? `${size / G1} GiB`
    : size >= M1
    ? `${size / M1} MiB`
    : `${size / 1024} KiB`;
}

function describe(l: Leaf | undefined): string {
  return l === undefined
    ? "none"
    : `${hex(l.iova)}+${hex(l.size)}->${hex(l.pa)} prot ${l.prot}`;
}

/** The system under test for one sequence, and its model. */
class World {
  readonly soc: Soc;
  readonly units: IommuUnit[];
  readonly masters: Master[] = [];
  readonly unitOf: IommuUnit[] = [];
  readonly sidOf: number[] = [];
  readonly domains: Domain[] = [];
  readonly models: PageModel[] = [];
  readonly gathers: IotlbGather[] = [];
  readonly attached: (number | null)[] = [null, null];
  readonly powered = [true, true];
  /** Every leaf ever mapped, for aiming translations and DMA. */
  readonly history: Leaf[] = [];
  readonly big: number;
  readonly pool: number;

  constructor(readonly cfg: Config, readonly stats: Stats) {
    this.soc = createSoc({ memory: cfg.memory }).use(cfg.plugin());
    this.units = cfg.units(this.soc);
    this.big = cfg.sizes[cfg.sizes.length - 1]!;
    // Physical pages the maps point at.
    this.pool = this.soc.memory.frames.alloc(4 * this.big);
    for (let i = 0; i < 2; i++) {
      const unit = cfg.central ? this.units[0]! : this.units[i]!;
      const sid = cfg.central ? 5 + i : 0;
      this.masters.push(this.soc.addMaster({
        name: `m${i}`,
        ports: [{ unit, ...(cfg.central ? { streamIds: [sid] } : {}) }],
      }));
      this.unitOf.push(unit);
      this.sidOf.push(sid);
      this.newDomain(i);
    }
    this.attach(0, 0);
    this.attach(0, 1);
  }

  newDomain(d: number): void {
    this.domains[d] = this.soc.createDomain(this.units[0]!);
    // Faults are expected; a handler that takes them keeps units that
    // block on unhandled faults (Samsung) running.
    this.domains[d]!.setFaultHandler(() => true);
    this.models[d] = new PageModel(this.cfg.sizes);
    this.gathers[d] = new IotlbGather();
  }

  attach(d: number, m: number): void {
    this.domains[d]!.attach(
      this.unitOf[m]!,
      this.cfg.central ? [this.sidOf[m]!] : [],
    );
    this.attached[m] = d;
  }

  address(slot: number, k: number, size: number): number {
    const region = this.cfg.bases[Math.floor(slot / 4)]!;
    return region + (slot % 4) * this.big + (k * size) % this.big;
  }

  /**
   * An IOVA at, inside, at the end of or just before a leaf: mostly a live
   * leaf of master `m`'s domain, sometimes one of its lazily unmapped
   * leaves, or any leaf ever mapped.
   */
  aimAt(m: number, aim: number, off: number): number {
    const d = this.attached[m];
    const model = d === null || d === undefined ? undefined : this.models[d];
    const live = model === undefined ? [] : [...model.live.values()];
    const pick = aim % 8;
    const from = pick < 5 && live.length > 0
      ? live
      : pick < 7 && model !== undefined && model.stale.length > 0
      ? model.stale
      : this.history;
    const h = from[Math.floor(aim / 8) % Math.max(1, from.length)];
    if (h === undefined) return this.cfg.bases[0]! + (off % (4 * this.big));
    switch (off % 4) {
      case 0:
        return h.iova;
      case 1:
        return h.iova + h.size - 1;
      case 2:
        return h.iova + (off >>> 2) % h.size;
      default:
        return Math.max(0, h.iova - 1 - (off >>> 2) % 64);
    }
  }

  /**
   * A random IOVA in one of the regions (mostly unmapped), or on a central
   * unit sometimes one past the input range.
   */
  anywhere(aim: number, off: number): number {
    if (this.cfg.central && aim % 5 === 0) return this.cfg.limit + off;
    const slot = aim % (this.cfg.bases.length * 4);
    return this.address(slot, 0, this.big) + off % this.big;
  }

  run(op: Op): void {
    switch (op.t) {
      case "map":
        return this.map(op);
      case "unmap":
        return this.unmap(op);
      case "sync":
        this.domains[op.d]!.sync(this.gathers[op.d]!);
        this.models[op.d]!.stale = [];
        return;
      case "flush":
        this.domains[op.d]!.flushAll(this.gathers[op.d]!);
        this.models[op.d]!.stale = [];
        return;
      case "attach":
        return this.attach(op.d, op.m);
      case "detach": {
        const d = this.attached[op.m];
        if (d === null || d === undefined) return;
        this.domains[d]!.detach(
          this.unitOf[op.m]!,
          this.cfg.central ? [this.sidOf[op.m]!] : [],
        );
        this.attached[op.m] = null;
        return;
      }
      case "recycle": {
        if (this.attached.includes(op.d)) return;
        this.domains[op.d]!.sync(this.gathers[op.d]!);
        this.domains[op.d]!.free();
        return this.newDomain(op.d);
      }
      case "power":
        this.unitOf[op.m]!.hardware.setPower(op.on);
        this.powered[op.m] = op.on;
        return;
      case "xl":
        return this.translate(op);
      case "dma":
        return this.dma(op);
    }
  }

  map(op: Extract<Op, { t: "map" }>): void {
    const size = this.cfg.sizes[op.cls]!;
    const iova = this.address(op.slot, op.k, size);
    const total = op.n * size;
    if (iova + total > this.cfg.limit) return;
    const pa = this.pool + (op.pk % (4 * this.big / size - op.n + 1)) * size;
    const prot = this.cfg.prots[op.prot]!;
    const kept = this.cfg.widenWrite && prot === IOMMU_WRITE ? RW : prot;
    const dom = this.domains[op.d]!, model = this.models[op.d]!;
    const clash = model.overlapping(iova, iova + total).length > 0;
    let got = "ok";
    try {
      if (op.api === 0) dom.map(iova, pa, total, prot);
      else if (op.api === 1) {
        const pages = Array.from({ length: op.n }, (_, j) => pa + j * size);
        dom.mapPages(iova, pages, prot, size);
      } else dom.mapSg(iova, [{ pa, length: total }], prot);
    } catch (e) {
      if (!(e instanceof IommuError)) throw e;
      got = e.kind;
    }
    check(
      got === (clash ? "EEXIST" : "ok"),
      `map ${hex(iova)}+${hex(total)}: got ${got}, model ${
        clash ? "EEXIST" : "ok"
      }`,
    );
    if (got !== "ok") return;
    // The leaves: the largest page size both addresses are aligned to.
    for (let at = iova, p = pa; at < iova + total;) {
      let s = K4;
      for (const z of this.cfg.sizes) {
        if (at % z === 0 && p % z === 0 && at + z <= iova + total) s = z;
      }
      const leaf = { iova: at, size: s, pa: p, prot: kept };
      model.live.set(at, leaf);
      this.history.push(leaf);
      at += s;
      p += s;
    }
  }

  unmap(op: Extract<Op, { t: "unmap" }>): void {
    const size = this.cfg.sizes[op.cls]!;
    const iova = this.address(op.slot, op.k, size);
    const total = op.n * size;
    if (iova + total > this.cfg.limit) return;
    const dom = this.domains[op.d]!, model = this.models[op.d]!;
    const first = model.leafAt(iova), last = model.leafAt(iova + total - 1);
    const partial = (first !== undefined && first.iova < iova) ||
      (last !== undefined && last.iova + last.size > iova + total);
    let got = "ok", bytes = -1;
    try {
      bytes = op.lazy
        ? dom.unmapNoSync(iova, total, this.gathers[op.d]!)
        : dom.unmap(iova, total);
    } catch (e) {
      if (!(e instanceof IommuError)) throw e;
      got = e.kind;
    }
    check(
      got === (partial ? "EINVAL" : "ok"),
      `unmap ${hex(iova)}+${hex(total)}: got ${got}, model ${
        partial ? "EINVAL" : "ok"
      }`,
    );
    if (got !== "ok") return;
    let sum = 0;
    for (const l of model.overlapping(iova, iova + total)) {
      sum += l.size;
      model.live.delete(l.iova);
      if (op.lazy) model.stale.push(l);
    }
    check(bytes === sum, `unmap returned ${bytes} bytes, model ${sum}`);
  }

  /** Whether master `m` translates through a domain (attached and on). */
  translating(m: number): boolean {
    return this.attached[m] !== null && this.powered[m]!;
  }

  translate(op: Extract<Op, { t: "xl" }>): void {
    const iova = op.aimed
      ? this.aimAt(op.m, op.aim, op.off)
      : this.anywhere(op.aim, op.off);
    if (iova >= this.cfg.limit && !this.cfg.central) return;
    const hw = this.unitOf[op.m]!.hardware;
    const access = op.write ? IOMMU_WRITE : IOMMU_READ;
    const pa = hw.translate(this.sidOf[op.m]!, iova, access);
    const span = hw.lastSpan;
    this.stats.translations++;
    if (pa !== -1) this.stats.translated++;
    const what = `m${op.m} ${op.write ? "write" : "read"} ${hex(iova)} -> ${
      pa === -1 ? "fault" : hex(pa)
    } span ${hex(span)}`;
    if (!this.translating(op.m)) {
      // A Samsung unit without a domain, or powered off, passes addresses
      // through; a generic stream without a domain aborts.
      if (this.cfg.central) check(pa === -1, `no domain, translated: ${what}`);
      else check(pa === iova, `no domain or off, not identity: ${what}`);
      return;
    }
    if (iova >= this.cfg.limit) {
      check(pa === -1, `beyond the input range, translated: ${what}`);
      const reason = hw.lastFault?.reason;
      check(reason === "address-size", `fault reason ${reason}: ${what}`);
      return;
    }
    const model = this.models[this.attached[op.m]!]!;
    const live = model.leafAt(iova);
    const stale = model.staleAt(iova);
    const permits = (l: Leaf) => (l.prot & access) === access;
    if (stale.length > 0) {
      // Until the sync: a fault, or the old or new mapping (its own
      // permission, a span inside its page).
      this.stats.staleLookups++;
      if (pa === -1) return;
      const cands = [...(live === undefined ? [] : [live]), ...stale];
      check(
        cands.some((c) =>
          permits(c) && pa === c.pa + (iova - c.iova) && span > 0 &&
          span <= c.iova + c.size - iova
        ),
        `not the old or new mapping: ${what}; live ${describe(live)}, stale ${
          stale.map(describe).join(", ")
        }`,
      );
      return;
    }
    if (live !== undefined && permits(live)) {
      check(
        pa === live.pa + (iova - live.iova),
        `wrong PA: ${what}; model ${describe(live)}`,
      );
      check(
        span === live.iova + live.size - iova,
        `wrong lastSpan: ${what}; model ${
          hex(live.iova + live.size - iova)
        } to the end of ${describe(live)}`,
      );
      const size = sizeLabel(live.size);
      this.stats.bySize[size] = (this.stats.bySize[size] ?? 0) + 1;
      return;
    }
    check(pa === -1, `no fault: ${what}; model ${describe(live)}`);
    const reason = hw.lastFault?.reason;
    const want = live === undefined ? "translation" : "permission";
    check(
      reason === want,
      `fault reason ${reason}, model ${want}: ${what}; ${describe(live)}`,
    );
  }

  dma(op: Extract<Op, { t: "dma" }>): void {
    const m = op.m;
    if (!this.translating(m)) return;
    const start = op.aimed
      ? this.aimAt(m, op.aim, op.off)
      : this.anywhere(op.aim, op.off);
    const len = op.len;
    if (start + len > this.cfg.limit) return;
    const access = op.write ? IOMMU_WRITE : IOMMU_READ;
    const model = this.models[this.attached[m]!]!;
    // Pieces within one 4 KiB page: each lands on the model's PA (-1: the
    // page faults), or while a lazy unmap awaits its sync on any permitted
    // PA of the old or new mapping.
    const permits = (l: Leaf) => (l.prot & access) === access;
    const pieces: { at: number; n: number; pa: number; stale: number[] }[] = [];
    for (let at = start; at < start + len;) {
      const n = Math.min(start + len - at, K4 - at % K4);
      const l = model.leafAt(at);
      const pa = l !== undefined && permits(l) ? l.pa + (at - l.iova) : -1;
      const stale = model.staleAt(at).filter(permits).map((s) =>
        s.pa + (at - s.iova)
      );
      pieces.push({ at, n, pa, stale });
      at += n;
    }
    const mem = this.soc.memory;
    const data = new Uint8Array(len);
    const stamp = this.stats.dma++;
    for (let j = 0; j < len; j++) data[j] = (stamp * 37 + j * 7 + 1) & 0xff;
    const buf = new Uint8Array(len).fill(0xee);
    const before = pieces.map((p) =>
      p.pa >= 0 ? mem.readBytes(p.pa, p.n) : null
    );
    const port = this.masters[m]!.port();
    const fault = op.write ? port.write(start, data) : port.read(start, buf);
    if (fault !== null) this.stats.dmaFaults++;
    const what = `DMA m${m} ${op.write ? "write" : "read"} ${
      hex(start)
    }+${len}`;
    if (pieces.some((p) => model.staleAt(p.at).length > 0)) {
      // Stale entries: a fault, or every piece on one of its candidates.
      if (fault !== null) return;
      let off = 0;
      for (const p of pieces) {
        const want = op.write
          ? data.subarray(off, off + p.n)
          : buf.subarray(off, off + p.n);
        const cands = [...(p.pa >= 0 ? [p.pa] : []), ...p.stale];
        check(
          cands.some((pa) =>
            mem.readBytes(pa, p.n).every((x, j) => x === want[j])
          ),
          `${what}: bytes at IOVA ${
            hex(p.at)
          } reached neither the old nor the new mapping`,
        );
        off += p.n;
      }
      return;
    }
    const allOk = pieces.every((p) => p.pa >= 0);
    check(
      (fault === null) === allOk,
      `${what}: fault ${JSON.stringify(fault)}, model ${
        allOk ? "transfers" : "faults"
      }`,
    );
    let off = 0;
    for (const [i, p] of pieces.entries()) {
      if (p.pa >= 0) {
        const now = mem.readBytes(p.pa, p.n);
        const want = fault !== null
          ? before[i]!
          : op.write
          ? data.subarray(off, off + p.n)
          : buf.subarray(off, off + p.n);
        check(
          now.every((x, j) => x === want[j]),
          `${what}: bytes at IOVA ${hex(p.at)} (PA ${hex(p.pa)}) ${
            fault !== null ? "changed by a faulting write" : "went astray"
          }`,
        );
      }
      off += p.n;
    }
    if (fault !== null && !op.write) {
      check(buf.every((x) => x === 0xee), `${what}: faulting read filled data`);
    }
  }
}

function runSequence(cfg: Config, ops: readonly Op[], stats: Stats): void {
  const w = new World(cfg, stats);
  stats.sequences++;
  for (const [i, op] of ops.entries()) {
    try {
      w.run(op);
    } catch (e) {
      if (e instanceof Error) {
        e.message = `${cfg.name} step ${i} ${JSON.stringify(op)}: ${e.message}`;
      }
      throw e;
    }
  }
}

function runConfig(cfg: Config): void {
  const t0 = performance.now();
  const runs = Number(Deno.env.get("IOMMUKIT_RUNS") ?? cfg.runs);
  const seedText = Deno.env.get("IOMMUKIT_SEED");
  const path = Deno.env.get("IOMMUKIT_PATH");
  const stats: Stats = {
    sequences: 0,
    translations: 0,
    translated: 0,
    staleLookups: 0,
    bySize: {},
    dma: 0,
    dmaFaults: 0,
  };
  fc.assert(
    fc.property(
      fc.array(opArbitrary(cfg), {
        minLength: 20,
        maxLength: 120,
        size: "max",
      }),
      (ops) => runSequence(cfg, ops, stats),
    ),
    {
      numRuns: runs,
      seed: seedText === undefined ? cfg.seed : Number(seedText),
      ...(path === undefined ? {} : { path }),
      // Shrinking sequences of 120 steps can take many minutes: report the
      // first failing sequence as it is (its seed and path replay it).
      endOnFailure: true,
    },
  );
  assert(stats.sequences >= runs, `${cfg.name}: stopped before ${runs}`);
  if (runs >= 50) {
    // The generator still reaches what the test is for.
    assert(Object.keys(stats.bySize).length === cfg.sizes.length);
    assert(stats.staleLookups > 0 && stats.dma > stats.dmaFaults);
  }
  console.log(
    `${cfg.name}: ${stats.sequences} sequences, ${stats.translations} translations (${stats.translated} translated, ${stats.staleLookups} with stale entries; exact by page size ${
      JSON.stringify(stats.bySize)
    }), ${stats.dma} DMA (${stats.dmaFaults} faulted), 0 divergences, ${
      Math.round(performance.now() - t0)
    } ms`,
  );
}

const RUNS = 400;

function generic(
  label: string,
  options: GenericIommuOptions,
  seed: number,
  inputBits = 48,
): Config {
  return {
    name: `generic-iommu ${label}`,
    central: true,
    sizes: [K4, M2, G1],
    // Below 2^32, and four 1 GiB pages just below the top of the input range.
    bases: inputBits === 32 ? [0] : [0x8000_0000, 2 ** inputBits - 4 * G1],
    limit: 2 ** inputBits,
    prots: [IOMMU_READ, IOMMU_WRITE, RW],
    // Stage 1 cannot express write-only; stage 2 can.
    widenWrite: options.stage !== 2,
    power: false,
    memory: { base: 0, size: 16 * G1 },
    units: (soc) => [
      soc.probeUnit({ name: "smmu", compatible: ["iommukit,generic-iommu"] }),
    ],
    plugin: () => genericIommu(options),
    runs: RUNS,
    seed,
  };
}

const NO_WALK = [
  { sets: 0, ways: 0 },
  { sets: 0, ways: 0 },
  { sets: 0, ways: 0 },
];
const GENERIC: Config[] = [
  generic("defaults", {}, 0x7e01),
  generic("micro TLB off", { microTlb: false }, 0x7e02),
  generic("micro TLB of 1 entry", { microTlb: 1 }, 0x7e03),
  generic("walk caches off", { walkCache: NO_WALK }, 0x7e04),
  generic("no IOTLB", { iotlb: { sets: 0, ways: 0 } }, 0x7e05),
  generic(
    "no IOTLB, micro TLB or walk caches",
    { iotlb: { sets: 0, ways: 0 }, microTlb: false, walkCache: NO_WALK },
    0x7e06,
  ),
  generic("1-set IOTLB, tiny caches", {
    iotlb: { sets: 1, ways: 2 },
    walkCache: [{ sets: 1, ways: 1 }, { sets: 1, ways: 1 }, {
      sets: 1,
      ways: 1,
    }],
    microTlb: 2,
  }, 0x7e07),
  generic("random replacement", {
    iotlb: { sets: 4, ways: 2, replacement: "random" },
    microTlb: 4,
  }, 0x7e08),
  generic("stage 2", { stage: 2 }, 0x7e09),
  generic("inputBits 32", { inputBits: 32 }, 0x7e0a, 32),
  generic("inputBits 39", { inputBits: 39 }, 0x7e0b, 39),
  generic("outputBits 35", { outputBits: 35 }, 0x7e0c),
];

function samsung(
  label: string,
  options: SamsungSysmmuOptions,
  seed: number,
  ramBase = 0x4000_0000,
): Config {
  return {
    name: `samsung-sysmmu ${label}`,
    central: false,
    sizes: [K4, 64 << 10, M1],
    // Low, and the last four sections below 2^32.
    bases: [0x1000_0000, 0xffc0_0000],
    limit: 2 ** 32,
    prots: [IOMMU_READ, RW],
    widenWrite: false,
    power: true,
    memory: { base: ramBase, size: 256 << 20 },
    units: (soc) =>
      [0, 1].map((i) =>
        soc.probeUnit({
          name: `sysmmu${i}`,
          compatible: ["samsung,exynos-sysmmu"],
        })
      ),
    plugin: () => samsungSysmmu(options),
    runs: RUNS,
    seed,
  };
}

const V3_3 = 0x30600000;
const VM = { capa0: 1 << 11, capa1: 1 << 14 };
const SAMSUNG: Config[] = [
  samsung("v1.0", { version: 0x80000001 }, 0x5a01),
  samsung("v2.1", { version: 0x20200000 }, 0x5a02),
  samsung("v3.2", { version: 0x30400000 }, 0x5a03),
  samsung("v3.3", { version: V3_3 }, 0x5a04),
  samsung("v5.0", { version: 0x50000000 }, 0x5a05),
  samsung("v7.4 VM", { version: 0x70800000, ...VM }, 0x5a06),
  samsung("v3.3 1-entry TLB and FLPD cache", {
    version: V3_3,
    tlb: { sets: 1, ways: 1 },
    flpdEntries: 1,
  }, 0x5a07),
  samsung("v3.3 no FLPD cache", { version: V3_3, flpdEntries: 0 }, 0x5a08),
  samsung("v3.3 no TLB", { version: V3_3, tlb: { sets: 0, ways: 0 } }, 0x5a09),
  samsung("v3.2 2x2 TLB, 2 FLPD entries", {
    version: 0x30400000,
    tlb: { sets: 2, ways: 2 },
    flpdEntries: 2,
  }, 0x5a0a),
  samsung("v5.0 1-set TLB", {
    version: 0x50000000,
    tlb: { sets: 1, ways: 2 },
  }, 0x5a0b),
  samsung("v5.0 36-bit PAs", { version: 0x50000000 }, 0x5a0c, 0xf_0000_0000),
  samsung(
    "v7.4 VM 36-bit PAs",
    { version: 0x70800000, ...VM },
    0x5a0d,
    0xf_0000_0000,
  ),
];

Deno.test("generic-iommu translate() and DMA agree with a page model", async (t) => {
  for (const cfg of GENERIC) {
    await t.step(cfg.name, () => runConfig(cfg));
  }
});

Deno.test("samsung-sysmmu translate() and DMA agree with a page model", async (t) => {
  for (const cfg of SAMSUNG) {
    await t.step(cfg.name, () => runConfig(cfg));
  }
});
