/**
 * The conformance suite every IOMMU plugin must pass: mapping and
 * translation of every page size, overlap and partial-unmap errors, rollback
 * on every injected allocation failure, faults, strict invalidation and
 * isolation between domains. It drives the plugin only through the core
 * (Soc, Domain, Port), so it checks exactly what users rely on.
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
  /** Called once the system is built, for example to power units on. */
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
        expectEqual(mem.digest(), before, "RAM after faulting accesses");
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
        expectEqual(mem.digest(), before, "RAM after refused write");
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
        "strict unmap: no DMA through the IOVA succeeds after unmap returns",
      run(): void {
        const s = build(config);
        const mem = s.soc.memory;
        const p = s.da.minPageSize;
        const iova = iovaFor(s.da, p);
        const buf = mem.frames.alloc(p);
        s.da.map(iova, buf, p, RW);
        for (let i = 0; i < 4; i++) s.a.port().readBytes(iova, 8); // warm any TLB
        s.da.unmap(iova, p);
        if (s.a.port().read(iova, new Uint8Array(8)) === null) {
          fail(
            "DMA succeeded through a stale translation after a strict unmap",
          );
        }
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
 * Run the conformance suite as steps of a Deno test.
 *
 * @param t The test context (`Deno.test("…", (t) => runConformance(t, cfg))`).
 * @param config How to set up the plugin.
 * @returns Resolves when every step has run; a failing step fails the test.
 *
 * @example
 * ```ts ignore
 * import { runConformance } from "@iommukit/iommukit/testing";
 * import { genericIommu } from "@iommukit/iommukit/plugins/generic-iommu";
 * Deno.test("generic-iommu conforms", (t) =>
 *   runConformance(t, {
 *     plugin: () => genericIommu(),
 *     units: [{ name: "smmu", compatible: ["iommukit,generic-iommu"] }],
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
