import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuFault,
  type IommuHardware,
  type IommuPlugin,
  type IommuUnit,
  Master,
  type Soc,
} from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";
import { flatIommu } from "./support/flat_iommu.ts";

const K4 = 0x1000;
const MiB = 0x10_0000;
const RW = IOMMU_READ | IOMMU_WRITE;
const FLAT = "iommukit,flat-iommu";

function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 13 + seed * 5 + 3) & 0xff;
  return out;
}

function flatSoc(): { soc: Soc; unit: IommuUnit } {
  const soc = createSoc({ memory: { base: 0, size: 256 * MiB } }).use(
    flatIommu(),
  );
  const unit = soc.probeUnit({ name: "mmu0", compatible: [FLAT] });
  return { soc, unit };
}

// Test hardware with no registers, no power state, no counters and no
// bypassed stream: subclasses script translate().
abstract class ScriptHardware implements IommuHardware {
  lastSpan = 0;
  lastFault: IommuFault | null = null;
  abstract translate(streamId: number, iova: number, access: number): number;
  isBypassing(_sid: number): boolean {
    return false;
  }
  setPower(): void {}
  readRegister(): number {
    return 0;
  }
  writeRegister(): void {}
  counters(): Record<string, number> {
    return {};
  }
}

// A central unit with 16 streams whose hardware maps every IOVA to IOVA +
// 1 MiB in 4 KiB pages, bypasses stream 15 and records the stream IDs it saw.
function identityCentral(soc: Soc): { unit: IommuUnit; sids: number[] } {
  const sids: number[] = [];
  class Identity extends ScriptHardware {
    translate(streamId: number, iova: number): number {
      sids.push(streamId);
      if (streamId === 15) {
        this.lastSpan = Infinity;
        return iova;
      }
      this.lastSpan = K4 - (iova % K4);
      return iova + MiB;
    }
    override isBypassing(sid: number): boolean {
      return sid === 15;
    }
  }
  const hw = new Identity();
  const plugin: IommuPlugin = {
    name: "identity",
    compatible: ["test,identity"],
    iommuCells: 1,
    probe: (node) => ({
      name: node.name,
      plugin: "identity",
      caps: {
        topology: "central",
        pageSizes: [K4],
        inputBits: 48,
        outputBits: 48,
        streamIds: 16,
        features: ["bypass"],
      },
      hardware: hw,
      driver: {
        allocDomain: () => {
          throw new IommuError("EOPNOTSUPP", "no domains");
        },
      },
    }),
  };
  soc.use(plugin);
  return {
    unit: soc.probeUnit({ name: "smmu", compatible: ["test,identity"] }),
    sids,
  };
}

Deno.test("a port without a unit reaches RAM directly and is unprotected", () => {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 16 * MiB } });
  const m = soc.addMaster({ name: "dma", ports: [{}] });
  const p = m.port();
  assertEquals(p.name, "port0");
  assertEquals(p.unit, null);
  assert(p.unprotected);
  assert(m.unprotected);
  assertEquals(m.dmaBits, 64);
  assertEquals(m.coherent, false);
  const data = pattern(3 * 0x10000 + 5);
  assertEquals(p.write(0x4000_fff0, data), null);
  assertEquals(soc.memory.readBytes(0x4000_fff0, data.length), data);
  const back = new Uint8Array(data.length);
  assertEquals(p.read(0x4000_fff0, back), null);
  assertEquals(back, data);
  assertEquals(p.readBytes(0x4000_fff0, 5), data.subarray(0, 5));
  p.writeBytes(0x4000_0000, new Uint8Array([9]));
  assertEquals(soc.memory.read8(0x4000_0000), 9);
  assertEquals(p.counters(), {
    accesses: 4,
    bytesRead: data.length + 5,
    bytesWritten: data.length + 1,
    faults: 0,
  });
});

Deno.test("a direct access outside RAM is a bus-error fault that transfers nothing", () => {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 16 * MiB } });
  const p = soc.addMaster({ name: "dma", ports: [{}] }).port();
  const end = 0x4000_0000 + 16 * MiB;
  const before = soc.memory.digest();
  const f = p.write(end - 2, new Uint8Array([1, 2, 3, 4]));
  assertEquals(f, {
    unit: "bus",
    streamId: 0,
    iova: end - 2,
    access: "write",
    reason: "bus-error",
  });
  assertEquals(soc.memory.digest(), before);
  const into = new Uint8Array(4).fill(0xee);
  assertEquals(p.read(0x1000, into)?.reason, "bus-error");
  assertEquals(into, new Uint8Array(4).fill(0xee), "into untouched");
  assertEquals(soc.faults.counters(), { faults: 2, unhandled: 2 });
  assertEquals(soc.faults.recent[0], f!);
  assertEquals(p.counters(), {
    accesses: 0,
    bytesRead: 0,
    bytesWritten: 0,
    faults: 2,
  });
  const e = expectError(
    () => p.readBytes(0x1000, 4),
    "EFAULT",
    "0x1000",
    "bus",
    "bus-error",
  );
  assertEquals((e.detail as IommuFault).reason, "bus-error");
});

Deno.test("through a unit: multi-page accesses cross pages into discontiguous frames", () => {
  const { soc, unit } = flatSoc();
  const m = soc.addMaster({ name: "dev", ports: [{ unit }] });
  const p = m.port();
  assert(!p.unprotected);
  assertEquals(soc.unprotectedMasters(), []);
  const d = soc.createDomain(unit);
  d.attach(unit);
  const frames = [0x30_0000, 0x10_5000, 0x20_0000, 0x20_1000];
  d.mapPages(0x10000, frames, RW);
  const start = 0x10000 + K4 - 100;
  const data = pattern(100 + K4 + K4 + 50);
  assertEquals(p.write(start, data), null);
  assertEquals(
    soc.memory.readBytes(0x30_0000 + K4 - 100, 100),
    data.subarray(0, 100),
  );
  assertEquals(
    soc.memory.readBytes(0x10_5000, K4),
    data.subarray(100, 100 + K4),
  );
  assertEquals(
    soc.memory.readBytes(0x20_0000, K4 + 50),
    data.subarray(100 + K4),
  );
  assertEquals(soc.memory.read8(0x10_4fff), 0, "nothing before the frame");
  assertEquals(soc.memory.read8(0x10_6000), 0, "nothing after the frame");
  assertEquals(p.readBytes(start, data.length), data);
  // Whole mapped range, page-aligned.
  const all = new Uint8Array(4 * K4);
  assertEquals(p.read(0x10000, all), null);
  assertEquals(all.subarray(K4 - 100, K4 - 100 + data.length), data);
  assertEquals(p.counters().accesses, 3);
  assertEquals(p.counters().bytesWritten, data.length);
  assertEquals(p.counters().bytesRead, data.length + 4 * K4);
});

Deno.test("a fault on any page of an access transfers nothing at all", () => {
  const { soc, unit } = flatSoc();
  const p = soc.addMaster({ name: "dev", ports: [{ name: "rw", unit }] }).port(
    "rw",
  );
  const d = soc.createDomain(unit);
  d.attach(unit);
  d.mapPages(0x10000, [0x30_0000, 0x31_0000], RW);
  d.map(0x12000, 0x32_0000, K4, IOMMU_READ); // third page read-only
  const before = soc.memory.digest();
  const f = p.write(0x10800, pattern(2 * K4 + 16));
  assertEquals(f, {
    unit: "mmu0",
    streamId: 0,
    iova: 0x12000,
    access: "write",
    reason: "permission",
  });
  assertEquals(soc.memory.digest(), before, "first two pages not written");
  // Unmapped fourth page: a read faults and leaves `into` as it was.
  soc.memory.fill(0x30_0000, 3 * K4, 0x11);
  const into = new Uint8Array(3 * K4).fill(0xee);
  const r = p.read(0x11000, into);
  assertEquals(r?.reason, "translation");
  assertEquals(r?.iova, 0x13000);
  assertEquals(into, new Uint8Array(3 * K4).fill(0xee));
  const e = expectError(
    () => p.writeBytes(0x13000, new Uint8Array(1)),
    "EFAULT",
    "write",
    "0x13000",
    "mmu0",
    "translation",
  );
  assertEquals(e.detail, {
    unit: "mmu0",
    streamId: 0,
    iova: 0x13000,
    access: "write",
    reason: "translation",
  });
  const e2 = expectError(
    () => p.readBytes(0x12ff0, 32),
    "EFAULT",
    "read",
    "0x13000",
  );
  assertEquals((e2.detail as IommuFault).access, "read");
  assertEquals(p.counters(), {
    accesses: 0,
    bytesRead: 0,
    bytesWritten: 0,
    faults: 4,
  });
  assertEquals(soc.faults.counters().faults, 4);
});

Deno.test("a translation to a PA outside RAM is a bus-error fault", () => {
  const { soc, unit } = flatSoc();
  const p = soc.addMaster({ name: "dev", ports: [{ unit }] }).port();
  const d = soc.createDomain(unit);
  d.attach(unit);
  d.map(0x10000, 0x8000_0000, K4, RW); // valid output address, but no RAM there
  const f = p.write(0x10000, new Uint8Array(4));
  assertEquals(f, {
    unit: "mmu0",
    streamId: 0,
    iova: 0x10000,
    access: "write",
    reason: "bus-error",
  });
  assertEquals(soc.faults.recent.at(-1), f!);
  assertEquals(d.counters().faults, 1, "routed to the attached domain");
});

Deno.test("an access over more than 4096 discontiguous pages is EINVAL and transfers nothing", () => {
  const { soc, unit } = flatSoc();
  const p = soc.addMaster({ name: "dev", ports: [{ unit }] }).port();
  const d = soc.createDomain(unit);
  d.attach(unit);
  const frames = Array.from(
    { length: 4097 },
    (_, i) => 0x100_0000 + i * 2 * K4,
  );
  d.mapPages(0, frames, RW);
  const before = soc.memory.digest();
  const data = new Uint8Array(4097 * K4).fill(2);
  expectError(() => p.write(0, data), "EINVAL", "4096");
  assertEquals(soc.memory.digest(), before);
  // 4096 pieces are fine.
  assertEquals(p.write(0, data.subarray(0, 4096 * K4)), null);
  assertEquals(soc.memory.read8(frames[4095]! + K4 - 1), 2);
  assertEquals(soc.memory.read8(frames[4096]!), 0);
});

Deno.test("port access errors: EINVAL malformed address or empty data, ERANGE beyond the DMA mask", () => {
  const soc = createSoc({ memory: { size: 16 * MiB } });
  const m = soc.addMaster({
    name: "dev32",
    ports: [{}],
    dmaBits: 32,
    coherent: true,
  });
  assert(m.coherent);
  const p = m.port();
  for (
    const [v, text] of [[NaN, "NaN"], [-1, "-1"], [1.5, "1.5"], [
      2 ** 53,
      "9007199254740992",
    ]] as const
  ) {
    expectError(
      () => p.write(v, new Uint8Array(1)),
      "EINVAL",
      "DMA address",
      text,
    );
    expectError(() => p.read(v, new Uint8Array(1)), "EINVAL", text);
  }
  expectError(() => p.write(0, new Uint8Array(0)), "EINVAL", "DMA length", "0");
  expectError(() => p.read(0, new Uint8Array(0)), "EINVAL", "DMA length");
  expectError(() => p.readBytes(0, 0), "EINVAL", "DMA length");
  for (const [len, text] of [[-1, "-1"], [1.5, "1.5"], [NaN, "NaN"]] as const) {
    expectError(() => p.readBytes(0, len), "EINVAL", text);
  }
  expectError(
    () => p.write(2 ** 32 - 2, new Uint8Array(4)),
    "ERANGE",
    "0xfffffffe",
    "dev32",
    "32-bit",
  );
  expectError(() => p.readBytes(2 ** 32, 1), "ERANGE", "0x100000000");
  assertEquals(p.counters(), {
    accesses: 0,
    bytesRead: 0,
    bytesWritten: 0,
    faults: 0,
  });
  assertEquals(soc.faults.counters().faults, 0);
  // The last byte under the mask is fine (it is a bus error here: no RAM).
  assertEquals(p.write(2 ** 32 - 1, new Uint8Array(1))?.reason, "bus-error");
});

Deno.test("master errors: no ports, duplicate port names, bad dmaBits, stream IDs without a central unit", () => {
  const { soc, unit } = flatSoc();
  expectError(
    () => soc.addMaster({ name: "m0", ports: [] }),
    "EINVAL",
    "m0",
    "no ports",
  );
  expectError(
    () => soc.addMaster({ name: "m1", ports: [{ name: "a" }, { name: "a" }] }),
    "EINVAL",
    "m1",
    "duplicate",
  );
  // Default names collide with an explicit one.
  expectError(
    () => soc.addMaster({ name: "m1b", ports: [{}, { name: "port0" }] }),
    "EINVAL",
    "duplicate",
  );
  for (const bits of [11, 65, 0, -1, 32.5, NaN]) {
    expectError(
      () => soc.addMaster({ name: "m2", ports: [{}], dmaBits: bits }),
      "EINVAL",
      "m2",
      "dmaBits",
      String(bits),
    );
  }
  expectError(
    () => soc.addMaster({ name: "m3", ports: [{ streamIds: [1] }] }),
    "EINVAL",
    "m3",
    "stream",
  );
  expectError(
    () => soc.addMaster({ name: "m4", ports: [{ unit, streamIds: [0] }] }),
    "EINVAL",
    "m4",
    "stream",
  );
  const { unit: smmu } = identityCentral(soc);
  expectError(
    () => soc.addMaster({ name: "m5", ports: [{ unit: smmu }] }),
    "EINVAL",
    "m5",
    "smmu",
    "stream",
  );
  expectError(
    () =>
      soc.addMaster({ name: "m6", ports: [{ unit: smmu, streamIds: [16] }] }),
    "ERANGE",
    "m6",
    "0x10",
    "smmu",
  );
  expectError(
    () =>
      soc.addMaster({
        name: "m7",
        ports: [{ unit: smmu, streamIds: [1, -2] }],
      }),
    "EINVAL",
    "-2",
  );
  expectError(
    () =>
      soc.addMaster({ name: "m8", ports: [{ unit: smmu, streamIds: [0.5] }] }),
    "EINVAL",
    "0.5",
  );
  assertEquals(soc.masters(), [], "no failed master was added");
  // Valid extremes.
  assertEquals(
    soc.addMaster({ name: "ok12", ports: [{}], dmaBits: 12 }).dmaBits,
    12,
  );
  assertEquals(
    soc.addMaster({ name: "ok64", ports: [{}], dmaBits: 64 }).dmaBits,
    64,
  );
});

Deno.test("port lookup by name or index, ENOENT otherwise", () => {
  const { soc, unit } = flatSoc();
  const unit1 = soc.probeUnit({ name: "mmu1", compatible: [FLAT] });
  const m = soc.addMaster({
    name: "mfc",
    ports: [{ name: "left", unit }, { name: "right", unit: unit1 }],
  });
  assertEquals(m.ports.length, 2);
  assert(m.port() === m.ports[0]);
  assert(m.port("right") === m.ports[1]);
  assert(m.port(1).master === m);
  assertEquals(m.port("left").unit, unit);
  expectError(() => m.port("middle"), "ENOENT", "mfc", "middle");
  expectError(() => m.port(2), "ENOENT", "2");
  expectError(() => m.port(-1), "ENOENT", "-1");
});

Deno.test("central units: the first stream ID tags a port's traffic; bypassing ports are unprotected", () => {
  const soc = createSoc({ memory: { size: 64 * MiB } });
  const { unit: smmu, sids } = identityCentral(soc);
  const a = soc.addMaster({
    name: "a",
    ports: [{ unit: smmu, streamIds: [3, 4] }],
  });
  const b = soc.addMaster({
    name: "b",
    ports: [{ unit: smmu, streamIds: [15] }],
  });
  const c = soc.addMaster({ name: "c", ports: [{}] });
  assertEquals(a.port().streamIds, [3, 4]);
  a.port().writeBytes(0x2ffe, new Uint8Array([1, 2, 3, 4]));
  assertEquals(sids, [3, 3]);
  assertEquals(
    soc.memory.readBytes(MiB + 0x2ffe, 4),
    new Uint8Array([1, 2, 3, 4]),
  );
  b.port().writeBytes(0x5000, new Uint8Array([7]));
  assertEquals(soc.memory.read8(0x5000), 7);
  assert(!a.unprotected);
  assert(b.unprotected);
  assertEquals(soc.unprotectedMasters().map((m) => m.name), ["b", "c"]);
  assert(c instanceof Master);
});

Deno.test("a master with one protected and one direct port is unprotected", () => {
  const { soc, unit } = flatSoc();
  const m = soc.addMaster({
    name: "mixed",
    ports: [{ unit }, { name: "raw" }],
  });
  assert(!m.port(0).unprotected);
  assert(m.port("raw").unprotected);
  assert(m.unprotected);
  assertEquals(soc.unprotectedMasters(), [m]);
});

Deno.test("port observer: told after every access, EBUSY for a second one, null removes", () => {
  const { soc, unit } = flatSoc();
  const p = soc.addMaster({ name: "dev", ports: [{ unit }] }).port();
  const d = soc.createDomain(unit);
  d.attach(unit);
  d.map(0x10000, 0x20_0000, K4, RW);
  const seen: [number, number, number, string | null][] = [];
  const watcher = (
    port: typeof p,
    iova: number,
    length: number,
    access: number,
    fault: IommuFault | null,
  ): void => {
    assert(port === p);
    seen.push([iova, length, access, fault?.reason ?? null]);
  };
  p.observe(watcher);
  expectError(() => p.observe(() => {}), "EBUSY", "dev", "port0");
  p.write(0x10000, new Uint8Array(8));
  p.read(0x10004, new Uint8Array(2));
  p.read(0x20000, new Uint8Array(2));
  // Argument errors throw before the observer is told anything.
  expectError(() => p.write(0x10000, new Uint8Array(0)), "EINVAL");
  assertEquals(seen, [
    [0x10000, 8, 2, null],
    [0x10004, 2, 1, null],
    [0x20000, 2, 1, "translation"],
  ]);
  p.observe(null);
  p.write(0x10000, new Uint8Array(1));
  assertEquals(seen.length, 3);
  p.observe(() => {}); // free again after removal
});

// A per-device unit whose hardware translates by `to(iova)` in 4 KiB pages
// (-1: a translation fault) and records every IOVA it was asked about.
function scriptedUnit(
  soc: Soc,
  to: (iova: number) => number,
): { unit: IommuUnit; asked: number[] } {
  const asked: number[] = [];
  class Scripted extends ScriptHardware {
    translate(streamId: number, iova: number, access: number): number {
      asked.push(iova);
      const pa = to(iova);
      if (pa === -1) {
        this.lastFault = {
          unit: "scripted",
          streamId,
          iova,
          access: access === 2 ? "write" : "read",
          reason: "translation",
        };
        return -1;
      }
      this.lastSpan = K4 - (iova % K4);
      return pa;
    }
  }
  return { unit: perDeviceUnit(soc, "scripted", new Scripted()), asked };
}

/** A per-device unit named `name` (a plugin of that name) around `hw`. */
function perDeviceUnit(soc: Soc, name: string, hw: IommuHardware): IommuUnit {
  soc.use({
    name,
    compatible: [`test,${name}`],
    iommuCells: 0,
    probe: (node) => ({
      name: node.name,
      plugin: name,
      caps: {
        topology: "per-device",
        pageSizes: [K4],
        inputBits: 48,
        outputBits: 48,
        streamIds: 0,
        features: [],
      },
      hardware: hw,
      driver: {
        allocDomain: () => {
          throw new IommuError("EOPNOTSUPP", "no domains");
        },
      },
    }),
  });
  return soc.probeUnit({ name, compatible: [`test,${name}`] });
}

Deno.test("each page of an access is translated once; a fault stops the walk and transfers nothing", () => {
  const soc = createSoc({ memory: { size: 16 * MiB } });
  // Pages map to scattered frames; page 0x13000 faults.
  const frames = new Map([[0x10, 0x5000], [0x11, 0x9000], [0x12, 0x6000]]);
  const { unit, asked } = scriptedUnit(
    soc,
    (iova) => {
      const f = frames.get(Math.floor(iova / K4));
      return f === undefined ? -1 : f + (iova % K4);
    },
  );
  const p = soc.addMaster({ name: "dev", ports: [{ unit }] }).port();
  assertEquals(p.write(0x10ff0, pattern(8)), null);
  assertEquals(asked, [0x10ff0], "one page, one translation");
  asked.length = 0;
  const data = pattern(K4 + 32, 3);
  assertEquals(p.write(0x10ff0, data), null);
  assertEquals(asked, [0x10ff0, 0x11000, 0x12000], "the first is reused");
  assertEquals(soc.memory.readBytes(0x5ff0, 16), data.subarray(0, 16));
  assertEquals(soc.memory.readBytes(0x9000, K4), data.subarray(16, 16 + K4));
  assertEquals(soc.memory.readBytes(0x6000, 16), data.subarray(16 + K4));
  asked.length = 0;
  const back = new Uint8Array(data.length);
  assertEquals(p.read(0x10ff0, back), null);
  assertEquals(back, data);
  assertEquals(asked, [0x10ff0, 0x11000, 0x12000]);
  // A fault on the second of three pages: the third is never asked about.
  frames.delete(0x11);
  asked.length = 0;
  const before = soc.memory.digest();
  const f = p.write(0x10800, pattern(2 * K4, 9));
  assertEquals(f?.iova, 0x11000);
  assertEquals(f?.reason, "translation");
  assertEquals(asked, [0x10800, 0x11000]);
  assertEquals(soc.memory.digest(), before, "page 0x10000 not written");
  const into = new Uint8Array(2 * K4).fill(0xee);
  assertEquals(p.read(0x10800, into)?.iova, 0x11000);
  assertEquals(into, new Uint8Array(2 * K4).fill(0xee));
  // A fault on the first page: one translation, nothing moved.
  asked.length = 0;
  assertEquals(p.write(0x20000, pattern(4))?.iova, 0x20000);
  assertEquals(asked, [0x20000]);
  assertEquals(p.counters(), {
    accesses: 3,
    bytesRead: data.length,
    bytesWritten: 8 + data.length,
    faults: 3,
  });
  assertEquals(soc.memory.digest(), before);
});

Deno.test("a translation to a malformed PA or past the end of RAM is a bus-error fault that transfers nothing", () => {
  const end = 16 * MiB;
  const soc = createSoc({ memory: { size: end } });
  const to = new Map<number, number>([
    [0x10, end - K4], // the last frame of RAM
    [0x11, end], // the first byte after RAM
    [0x20, 0x5000 + 0.5], // a fraction
    [0x21, NaN],
    [0x22, 2 ** 53], // beyond any safe address
  ]);
  const { unit, asked } = scriptedUnit(
    soc,
    (iova) => (to.get(Math.floor(iova / K4)) ?? -1) + (iova % K4),
  );
  const p = soc.addMaster({ name: "dev", ports: [{ unit }] }).port();
  // The last bytes of RAM, fast path and whole page.
  assertEquals(p.write(0x10ffc, new Uint8Array([1, 2, 3, 4])), null);
  assertEquals(soc.memory.read32(end - 4), 0x04030201);
  assertEquals(p.write(0x10000, new Uint8Array(K4).fill(7)), null);
  assertEquals(soc.memory.read8(end - 1), 7);
  const before = soc.memory.digest();
  // Crossing from the last frame into no RAM: nothing written at all.
  asked.length = 0;
  const f = p.write(0x10ff0, new Uint8Array(32).fill(9));
  assertEquals(f, {
    unit: "scripted",
    streamId: 0,
    iova: 0x11000,
    access: "write",
    reason: "bus-error",
  });
  assertEquals(asked, [0x10ff0, 0x11000]);
  assertEquals(soc.memory.digest(), before);
  const into = new Uint8Array(32).fill(0xee);
  assertEquals(p.read(0x10ff0, into)?.reason, "bus-error");
  assertEquals(into, new Uint8Array(32).fill(0xee));
  for (const iova of [0x20000, 0x21000, 0x22000]) {
    assertEquals(p.write(iova, new Uint8Array(4))?.reason, "bus-error");
    assertEquals(p.read(iova, new Uint8Array(4))?.reason, "bus-error");
  }
  assertEquals(soc.memory.digest(), before);
  assertEquals(p.counters().faults, 8);
  assertEquals(soc.faults.counters().faults, 8);
});

Deno.test("a unit that reports a translation covering no byte is EIO, not a hang", () => {
  const soc = createSoc({ memory: { size: 16 * MiB } });
  class Empty extends ScriptHardware {
    translate(_sid: number, iova: number): number {
      this.lastSpan = iova % K4 === 0 ? K4 - 1 : 0; // one byte short
      return 0x10_0000 + iova;
    }
  }
  const unit = perDeviceUnit(soc, "empty-span", new Empty());
  const p = soc.addMaster({ name: "dev", ports: [{ unit }] }).port();
  const before = soc.memory.digest();
  // A whole page: the first translation covers all but its last byte, the
  // next one none.
  expectError(() => p.write(0, new Uint8Array(K4)), "EIO", "lastSpan 0");
  expectError(() => p.read(0, new Uint8Array(K4)), "EIO", "lastSpan 0");
  assertEquals(soc.memory.digest(), before);
  // What the unit does cover still works.
  assertEquals(p.write(0, new Uint8Array(16).fill(3)), null);
  assertEquals(soc.memory.read8(0x10_0000 + 15), 3);
});
