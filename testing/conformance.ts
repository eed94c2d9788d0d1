/**
 * The conformance suite every IOMMU plugin must pass: mapping and
 * translation of every page size, overlap and partial-unmap errors, rollback
 * on every injected allocation failure, faults, strict invalidation of every
 * page of a multi-page unmap, DMA split at page boundaries (`lastSpan`),
 * detach, moving a unit between domains, and isolation between domains. It
 * drives the plugin only through the core (Soc, Domain, Port), so it checks
 * exactly what users rely on.
 *
 * @module
 */
import {
  createSoc,
  type DeviceNodeSpec,
  type Domain,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuPlugin,
  type IommuUnit,
  type Master,
  type PhysicalMemoryOptions,
  type Soc,
} from "../core/mod.ts";

/** How to set up a plugin for the suite. */
export interface ConformanceConfig {
  /** Makes a fresh plugin; every case builds a new system with it. */
  plugin: () => IommuPlugin;
  /**
   * Unit nodes: two for a per-device plugin (isolation needs two units),
   * one or two for a central plugin.
   */
  units: readonly DeviceNodeSpec[];
  /** For a central plugin: stream IDs of the two test masters. Default `[1, 2]`. */
  streamIds?: readonly [number, number];
  /** RAM; default 1 GiB at 0x4000_0000 (sparse, so cheap). */
  memory?: PhysicalMemoryOptions;
  /** Whether the hardware enforces read/write permissions; default true. */
  enforcesPermissions?: boolean;
  /**
   * Called once each case's system is built (its two domains created and
   * attached), for example to power units on, to install fault handlers on
   * `soc.domains()` for a unit that stops on an unhandled fault, or to
   * switch off a fault/event queue the unit writes into RAM: several cases
   * digest all of RAM around faulting accesses to prove no DMA data moved,
   * and such a queue would change the digest. Domains a case creates later
   * get a handler from the case itself where it makes them fault.
   */
  prepare?: (soc: Soc, units: readonly IommuUnit[]) => void;
}

/** One case of the suite: a name and a function that throws on failure. */
export interface ConformanceCase {
  /** What the case checks, as a sentence. */
  name: string;
  /**
   * Why the case does not apply to this unit (for example a single page size
   * has nothing to split), or null when it applies. Inapplicable cases are
   * reported as ignored, never as passed.
   */
  notApplicable?(unit: IommuUnit): string | null;
  /** Runs the case; throws an `Error` describing the first violation. */
  run(): void;
}

/** The system one case runs on. */
interface Bench {
  soc: Soc;
  units: IommuUnit[];
  a: Master;
  b: Master;
  da: Domain;
  db: Domain;
}

function fail(message: string): never {
  throw new Error(`conformance: ${message}`);
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

function expectError(fn: () => unknown, kind: string, what: string): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof IommuError && e.kind === kind) return;
    fail(`${what}: expected IommuError ${kind}, got ${String(e)}`);
  }
  fail(`${what}: expected IommuError ${kind}, but it succeeded`);
}

const RW = IOMMU_READ | IOMMU_WRITE;

function build(config: ConformanceConfig): Bench {
  const soc = createSoc({
    memory: config.memory ?? { base: 0x4000_0000, size: 0x4000_0000 },
  });
  soc.use(config.plugin());
  const units = config.units.map((n) => soc.probeUnit(n));
  const u0 = units[0];
  if (u0 === undefined) fail("config.units is empty");
  const central = u0.caps.topology === "central";
  const [s0, s1] = config.streamIds ?? [1, 2];
  const u1 = central ? units[1] ?? u0 : units[1];
  if (u1 === undefined) fail("a per-device plugin needs two unit nodes");
  const a = soc.addMaster({
    name: "master-a",
    ports: [{ unit: u0, ...(central ? { streamIds: [s0] } : {}) }],
  });
  const b = soc.addMaster({
    name: "master-b",
    ports: [{ unit: u1, ...(central ? { streamIds: [s1] } : {}) }],
  });
  const da = soc.createDomain(u0);
  const db = soc.createDomain(u1);
  da.attach(u0, central ? [s0] : []);
  db.attach(u1, central ? [s1] : []);
  config.prepare?.(soc, units);
  return { soc, units, a, b, da, db };
}

// A test IOVA aligned to `align`, inside the aperture, away from 0.
function iovaFor(domain: Domain, align: number): number {
  const base = Math.max(align, 0x100000);
  if (base + align > domain.apertureEnd) {
    fail("aperture too small for the suite");
  }
  return base;
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}

// A fresh bench with one smallest page mapped read-write for master a:
// the unit a sits behind, the stream IDs a attaches with, the IOVA and the
// frame behind it. (The detach and move cases start here.)
function onePageMapped(config: ConformanceConfig): {
  s: Bench;
  u0: IommuUnit;
  ids: number[];
  iova: number;
  buf: number;
} {
  const s = build(config);
  const u0 = s.units[0]!;
  const [s0] = config.streamIds ?? [1, 2];
  const ids = u0.caps.topology === "central" ? [s0!] : [];
  const p = s.da.minPageSize;
  const iova = iovaFor(s.da, p);
  const buf = s.soc.memory.frames.alloc(p);
  s.da.map(iova, buf, p, RW);
  return { s, u0, ids, iova, buf };
}

// A DMA write of 8 pattern bytes through master a at `iova` must succeed
// and land in RAM at `pa`.
function expectWriteLands(
  s: Bench,
  iova: number,
  pa: number,
  seed: number,
  when: string,
): void {
  const data = pattern(8, seed);
  if (s.a.port().write(iova, data) !== null) {
    fail(`DMA write faulted ${when}`);
  }
  expectEqual(
    [...s.soc.memory.readBytes(pa, 8)],
    [...data],
    `bytes in RAM ${when}`,
  );
}

/**
 * Build the suite's cases for a plugin.
 *
 * @param config How to set up the plugin.
 * @returns The cases, each runnable on its own.
 */
export function conformanceCases(config: ConformanceConfig): ConformanceCase[] {
  const enforces = config.enforcesPermissions ?? true;
  return [
    {
      name: "maps, translates, moves data through and unmaps every page size",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        for (const size of s.da.pageSizes) {
          const pa = Math.ceil(mem.base / size) * size;
          if (pa + size > mem.end) {
            fail(`RAM too small for a ${size}-byte page`);
          }
          const iova = iovaFor(s.da, size);
          s.da.map(iova, pa, size, RW);
          const leaves = s.da.leaves();
          expectEqual(
            leaves.map((l) => [l.iova, l.pa, l.pageSize]),
            [[iova, pa, size]],
            `leaves after mapping one ${size}-byte page`,
          );
          expectEqual(
            s.da.iovaToPhys(iova + size - 8),
            pa + size - 8,
            "iovaToPhys",
          );
          const data = pattern(64, size % 251);
          const off = size / 2;
          if (s.a.port().write(iova + off, data) !== null) {
            fail("DMA write faulted");
          }
          expectEqual(
            [...mem.readBytes(pa + off, 64)],
            [...data],
            "bytes in RAM",
          );
          expectEqual(s.da.unmap(iova, size), size, "bytes unmapped");
          expectEqual(s.da.iovaToPhys(iova), -1, "iovaToPhys after unmap");
          const f = s.a.port().read(iova + off, new Uint8Array(4));
          if (f === null) {
            fail(`DMA succeeded after unmapping the ${size}-byte page`);
          }
          mem.fill(pa + off, 64, 0);
        }
      },
    },
    {
      name: "refuses overlapping maps with EEXIST and changes nothing",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const iova = iovaFor(s.da, p);
        const f0 = mem.frames.alloc(p),
          f1 = mem.frames.alloc(p),
          f2 = mem.frames.alloc(p);
        s.da.mapPages(iova + 2 * p, [f0], RW);
        const before = mem.digest(), live = mem.frames.liveBytes;
        expectError(
          () => s.da.map(iova + 2 * p, f1, p, RW),
          "EEXIST",
          "map over a page",
        );
        expectError(
          () => s.da.mapPages(iova, [f1, f2, f0], RW),
          "EEXIST",
          "batch ending on a page",
        );
        expectEqual(mem.digest(), before, "RAM after refused maps");
        expectEqual(mem.frames.liveBytes, live, "frames after refused maps");
        expectEqual(s.da.leaves().length, 1, "leaves after refused maps");
      },
    },
    {
      name:
        "refuses a partial unmap of a larger page with EINVAL and changes nothing",
      notApplicable(unit: IommuUnit): string | null {
        const [small, ...rest] = unit.caps.pageSizes;
        return rest.some((x) => x > small! && x <= 64 << 20)
          ? null
          : "the unit has no second page size up to 64 MiB";
      },
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const sizes = s.da.pageSizes;
        const small = sizes[0]!;
        const big = sizes.find((x) => x > small && x <= 64 << 20);
        if (big === undefined) fail("no larger page size to split");
        const iova = iovaFor(s.da, big);
        const pa = Math.ceil(mem.base / big) * big;
        s.da.map(iova, pa, big, RW);
        const before = mem.digest();
        expectError(
          () => s.da.unmap(iova, small),
          "EINVAL",
          "unmap of the first small page",
        );
        expectError(
          () => s.da.unmap(iova + big - small, small),
          "EINVAL",
          "unmap of the last small page",
        );
        expectEqual(mem.digest(), before, "RAM after refused unmaps");
        expectEqual(s.da.unmap(iova, big), big, "whole unmap");
      },
    },
    {
      name: "rolls back every injected allocation failure and then succeeds",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const pages = Math.max(2048, Math.ceil((8 << 20) / p));
        // Congruence broken on purpose so only the smallest pages fit.
        const iova = iovaFor(s.da, 1 << 20) + 2 * p;
        const pa = Math.ceil(mem.base / (1 << 20)) * (1 << 20) + 3 * p +
          (64 << 20);
        let injected = 0;
        for (let n = 1; n < 10_000; n++) {
          const before = mem.digest(), live = mem.frames.liveBytes;
          const leaves = s.da.leaves().length;
          mem.frames.failNth(n);
          try {
            s.da.map(iova, pa, pages * p, RW);
          } catch (e) {
            mem.frames.failNth(0);
            if (!(e instanceof IommuError) || e.kind !== "ENOMEM") {
              fail(`allocation ${n}: expected ENOMEM, got ${String(e)}`);
            }
            expectEqual(
              mem.digest(),
              before,
              `RAM after failing allocation ${n}`,
            );
            expectEqual(
              mem.frames.liveBytes,
              live,
              `frames after failing allocation ${n}`,
            );
            expectEqual(
              s.da.leaves().length,
              leaves,
              `leaves after failing allocation ${n}`,
            );
            injected++;
            continue;
          }
          mem.frames.failNth(0);
          break;
        }
        if (injected === 0) fail("the map made no allocation to fail");
        expectEqual(
          s.da.iovaToPhys(iova + (pages - 1) * p),
          pa + (pages - 1) * p,
          "last page after success",
        );
        expectEqual(
          s.da.unmap(iova, pages * p),
          pages * p,
          "unmap after success",
        );
      },
    },
    {
      name: "faults on unmapped IOVAs and transfers nothing",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const iova = iovaFor(s.da, s.da.minPageSize);
        const before = mem.digest();
        const w = s.a.port().write(iova, pattern(32, 1));
        if (w === null || w.access !== "write") {
          fail("unmapped write did not fault as a write");
        }
        const into = new Uint8Array(16).fill(0xaa);
        const r = s.a.port().read(iova, into);
        if (r === null || r.access !== "read") {
          fail("unmapped read did not fault as a read");
        }
        expectEqual(
          into.every((x) => x === 0xaa),
          true,
          "read buffer untouched",
        );
        expectEqual(
          mem.digest(),
          before,
          "RAM after faulting accesses (a unit that records faults in RAM must switch that off in config.prepare)",
        );
      },
    },
    {
      name: "enforces read-only and write-only permissions",
      notApplicable(): string | null {
        return enforces ? null : "config.enforcesPermissions is false";
      },
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const iova = iovaFor(s.da, p);
        const buf = mem.frames.alloc(p);
        mem.writeBytes(buf, pattern(16, 3));
        s.da.map(iova, buf, p, IOMMU_READ);
        const before = mem.digest();
        const f = s.a.port().write(iova, pattern(16, 9));
        if (f === null || f.reason !== "permission") {
          fail(`write to read-only page: ${JSON.stringify(f)}`);
        }
        expectEqual(
          mem.digest(),
          before,
          "RAM after refused write (a unit that records faults in RAM must switch that off in config.prepare)",
        );
        expectEqual(
          [...s.a.port().readBytes(iova, 16)],
          [...pattern(16, 3)],
          "read of read-only page",
        );
        if (s.units[0]!.caps.features.includes("write-only")) {
          s.da.map(iova + p, buf, p, IOMMU_WRITE);
          const g = s.a.port().read(iova + p, new Uint8Array(4));
          if (g === null || g.reason !== "permission") {
            fail("read of write-only page did not fault");
          }
        }
      },
    },
    {
      name: "isolates domains: each master reaches only its own mappings",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = Math.max(s.da.minPageSize, s.db.minPageSize);
        const iova = iovaFor(s.da, p);
        const bufA = mem.frames.alloc(p), bufB = mem.frames.alloc(p);
        s.da.map(iova, bufA, p, RW);
        s.db.map(iova, bufB, p, RW);
        s.db.map(iova + p, bufA, p, IOMMU_READ);
        s.a.port().writeBytes(iova, pattern(32, 5));
        s.b.port().writeBytes(iova, pattern(32, 6));
        expectEqual(
          [...mem.readBytes(bufA, 32)],
          [...pattern(32, 5)],
          "A's buffer",
        );
        expectEqual(
          [...mem.readBytes(bufB, 32)],
          [...pattern(32, 6)],
          "B's buffer",
        );
        expectEqual([...s.b.port().readBytes(iova + p, 32)], [
          ...pattern(32, 5),
        ], "B reads A's shared page");
        if (s.a.port().read(iova + p, new Uint8Array(4)) === null) {
          fail("A reached an IOVA mapped only in B's domain");
        }
      },
    },
    {
      name:
        "strict unmap: no DMA through any page of a multi-page unmap succeeds after it returns",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const iova = iovaFor(s.da, p);
        const n = 4;
        const frames: number[] = [];
        for (let i = 0; i < n; i++) frames.push(mem.frames.alloc(p));
        s.da.mapPages(iova, frames, RW);
        // Warm any TLB with every page, twice, the first page last.
        for (let round = 0; round < 2; round++) {
          for (let i = n - 1; i >= 0; i--) {
            s.a.port().readBytes(iova + i * p + 8, 8);
          }
        }
        expectEqual(s.da.unmap(iova, n * p), n * p, "bytes unmapped");
        for (let i = 0; i < n; i++) {
          for (const off of [8, p - 8]) {
            if (
              s.a.port().read(iova + i * p + off, new Uint8Array(8)) === null
            ) {
              fail(
                `DMA to page ${i} of ${n} (offset ${off}) succeeded through a stale translation after one strict unmap of all ${n}`,
              );
            }
          }
        }
      },
    },
    {
      name:
        "a DMA across a page boundary into discontiguous frames splits at the boundary",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const iova = iovaFor(s.da, p);
        // Three contiguous frames; the middle one stays unmapped, so a unit
        // whose lastSpan runs past the end of a page lands in it.
        const run = mem.frames.alloc(3 * p);
        const first = run, between = run + p, second = run + 2 * p;
        s.da.map(iova, first, p, RW);
        s.da.map(iova + p, second, p, RW);
        const data = pattern(32, 11);
        const at = iova + p - 16;
        const middle = [...mem.readBytes(between, p)];
        if (s.a.port().write(at, data) !== null) {
          fail("DMA write across the page boundary faulted");
        }
        expectEqual(
          [...mem.readBytes(first + p - 16, 16)],
          [...data.subarray(0, 16)],
          "the first 16 bytes, at the end of the first frame",
        );
        expectEqual(
          [...mem.readBytes(second, 16)],
          [...data.subarray(16)],
          "the last 16 bytes, at the start of the second frame",
        );
        expectEqual(
          [...mem.readBytes(between, p)],
          middle,
          "the unmapped frame between them is untouched (lastSpan too large?)",
        );
        expectEqual(
          [...s.a.port().readBytes(at, 32)],
          [...data],
          "DMA read back across the boundary",
        );
      },
    },
    {
      name: "no DMA through the domain succeeds after the unit is detached",
      run(): void {
        const { s, u0, ids, iova, buf } = onePageMapped(config);
        const mem = s.soc.memory;
        for (let i = 0; i < 4; i++) s.a.port().readBytes(iova, 8); // warm any TLB
        s.da.detach(u0, ids);
        // A detached per-device unit may pass DMA through untranslated
        // (docs: "the unit disabled"); then the IOVA is a physical address
        // and must not reach the domain's frame.
        const open = s.a.port().unprotected;
        const into = new Uint8Array(8).fill(0xaa);
        if (s.a.port().read(iova, into) === null && !open) {
          fail("DMA read through the detached domain's mapping succeeded");
        }
        if (s.a.port().write(iova, pattern(8, 13)) === null && !open) {
          fail("DMA write through the detached domain's mapping succeeded");
        }
        expectEqual(
          [...mem.readBytes(buf, 8)].every((x) => x === 0),
          true,
          "the detached domain's frame is untouched",
        );
      },
    },
    {
      name:
        "moving a unit to an empty domain leaves no DMA through the old domain's mappings",
      run(): void {
        const { s, u0, ids, iova, buf } = onePageMapped(config);
        const mem = s.soc.memory;
        for (let i = 0; i < 4; i++) s.a.port().readBytes(iova, 8); // warm any TLB
        const empty = s.soc.createDomain(u0);
        // A unit that blocks on unhandled faults (samsung-sysmmu) needs a
        // handler on the domain that takes this case's fault.
        empty.setFaultHandler(() => true);
        empty.attach(u0, ids);
        // A read, as warmed, and a write.
        if (s.a.port().read(iova, new Uint8Array(8)) === null) {
          fail(
            "DMA read went through the old domain's (stale) translation after the unit moved to an empty domain",
          );
        }
        if (s.a.port().write(iova, pattern(8, 17)) === null) {
          fail(
            "DMA write went through the old domain's (stale) translation after the unit moved to an empty domain",
          );
        }
        expectEqual(
          [...mem.readBytes(buf, 8)].every((x) => x === 0),
          true,
          "the old domain's frame is untouched",
        );
        expectError(
          () => s.da.detach(u0, ids),
          "ENOENT",
          "detach from the old domain after the move",
        );
        // Moving back finds the old mappings again.
        s.da.attach(u0, ids);
        expectEqual(
          [...s.a.port().readBytes(iova, 8)].every((x) => x === 0),
          true,
          "DMA read after moving back",
        );
        expectWriteLands(s, iova, buf, 19, "after moving back");
      },
    },
    {
      name:
        "detaching a unit that is not attached throws ENOENT and changes nothing",
      run(): void {
        const { s, u0, ids, iova, buf } = onePageMapped(config);
        const u1 = s.units[1] ?? u0;
        const central = u0.caps.topology === "central";
        const [, s1] = config.streamIds ?? [1, 2];
        const spare = s.soc.createDomain(u0);
        expectError(
          () => spare.detach(u0, ids),
          "ENOENT",
          "detach of a domain never attached",
        );
        if (central || u1 !== u0) {
          expectError(
            () => s.da.detach(u1, central ? [s1] : []),
            "ENOENT",
            "detach of the other master's unit/stream",
          );
        }
        expectWriteLands(s, iova, buf, 23, "after a refused detach");
      },
    },
    {
      name:
        "mapPages coalesces contiguous aligned frames and keeps discontiguous ones apart",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const sizes = s.da.pageSizes;
        const small = sizes[0]!;
        const big = sizes.find((x) => x > small && x <= 64 << 20);
        const frames: number[] = [];
        for (let i = 0; i < 8; i++) frames.push(mem.frames.alloc(small));
        const scatter = [frames[3]!, frames[0]!, frames[6]!];
        const iova = iovaFor(s.da, big ?? small);
        s.da.mapPages(iova, scatter, RW);
        expectEqual(
          s.da.leaves().map((l) => l.pa),
          scatter,
          "scattered leaves",
        );
        s.da.unmap(iova, scatter.length * small);
        if (big === undefined) return;
        const run = mem.frames.alloc(big);
        const list = Array.from(
          { length: big / small },
          (_, i) => run + i * small,
        );
        s.da.mapPages(iova, list, RW);
        expectEqual(
          s.da.leaves().map((l) => [l.pa, l.pageSize]),
          [[run, big]],
          "coalesced leaf",
        );
      },
    },
    {
      name:
        "unmap skips holes, returns the bytes removed, and 0 the second time",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const iova = iovaFor(s.da, p);
        s.da.map(iova, mem.frames.alloc(p), p, RW);
        s.da.map(iova + 2 * p, mem.frames.alloc(p), p, RW);
        expectEqual(s.da.unmap(iova, 3 * p), 2 * p, "first unmap");
        expectEqual(s.da.unmap(iova, 3 * p), 0, "second unmap");
      },
    },
    {
      name: "routes faults to the domain's handler with the fault's details",
      run(): void {
        const s = build(config);
        const seen: string[] = [];
        s.da.setFaultHandler((f) => {
          seen.push(`${f.access}@${f.iova}:${f.reason}`);
          return true;
        });
        const iova = iovaFor(s.da, s.da.minPageSize) + 0x40;
        s.a.port().write(iova, new Uint8Array(4));
        expectEqual(seen, [`write@${iova}:translation`], "handler calls");
        expectEqual(s.da.counters().faults, 1, "domain fault counter");
      },
    },
    {
      name: "freeing a domain returns every page-table frame",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const unit = s.units[0]!;
        const live = mem.frames.liveBytes;
        const d = s.soc.createDomain(unit);
        const p = d.minPageSize;
        const far = Math.min(d.apertureEnd / 2, 2 ** 31);
        d.map(iovaFor(d, p), mem.base + p, 64 * p, RW);
        d.map(far - 4 * p, mem.base + 128 * p, 4 * p, RW);
        d.unmap(far - 4 * p, 4 * p);
        d.free();
        expectEqual(mem.frames.liveBytes, live, "live frame bytes after free");
        expectError(
          () => d.map(0x100000, mem.base, p, RW),
          "EPERM",
          "map after free",
        );
      },
    },
  ];
}

/**
 * Run the conformance suite as steps of a Deno test: one step per case of
 * {@linkcode conformanceCases}, each on a freshly built system; a case that
 * does not apply to the unit is an ignored step.
 *
 * Several cases digest all of RAM around a refused or faulting access to
 * prove that nothing moved. A unit that writes into RAM on a fault (an
 * in-memory event or fault queue, as generic-iommu keeps) changes that
 * digest: switch the recording off in {@linkcode ConformanceConfig.prepare},
 * and test the queue on its own. A unit that stops on an unhandled fault
 * (samsung-sysmmu) needs `prepare` to install fault handlers that take them.
 *
 * @param t The test context (`Deno.test("…", (t) => runConformance(t, cfg))`).
 * @param config How to set up the plugin.
 * @returns Resolves when every step has run; a failing step fails the test.
 *
 * @example generic-iommu, its event queue switched off
 * ```ts
 * import { runConformance } from "@iommukit/iommukit/testing";
 * import {
 *   CR0_CMDQEN,
 *   CR0_SMMUEN,
 *   genericHardwareOf,
 *   genericIommu,
 *   REG_CR0,
 * } from "@iommukit/iommukit/plugins/generic-iommu";
 *
 * Deno.test("generic-iommu conforms", (t) =>
 *   runConformance(t, {
 *     plugin: () => genericIommu(),
 *     units: [{ name: "smmu", compatible: ["iommukit,generic-iommu"] }],
 *     // CR0 without EVTQEN: faults write no event records into RAM.
 *     prepare: (_soc, units) => {
 *       for (const u of units) {
 *         genericHardwareOf(u).writeRegister(REG_CR0, CR0_SMMUEN | CR0_CMDQEN);
 *       }
 *     },
 *   }));
 * ```
 */
export async function runConformance(
  t: Deno.TestContext,
  config: ConformanceConfig,
): Promise<void> {
  const unit = build(config).units[0]!;
  for (const c of conformanceCases(config)) {
    const reason = c.notApplicable?.(unit) ?? null;
    await t.step({
      name: reason === null ? c.name : `${c.name} (not applicable: ${reason})`,
      ignore: reason !== null,
      fn: () => c.run(),
    });
  }
}
