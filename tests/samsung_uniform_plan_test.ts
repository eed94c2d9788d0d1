// A MapPlan with a non-zero `uniform` means `count` pages of that size at
// consecutive IOVAs from `start`, mapping `pa`; checkMapPlan checks only
// those fields. The System MMU driver must map every uniform size (4 KiB,
// 64 KiB, 1 MiB) from them, never from the unchecked run arrays, and a
// refused plan must leave the domain as it was.
import { assertEquals } from "@std/assert";
import {
  createSoc,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  IotlbGather,
  MapPlan,
} from "../core/mod.ts";
import {
  samsungSysmmu,
  type SysmmuDomain,
} from "../plugins/samsung_sysmmu/mod.ts";

const K4 = 0x1000;
const K64 = 0x1_0000;
const M1 = 0x10_0000;
const RW = IOMMU_READ | IOMMU_WRITE;

function setup() {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 << 20 } })
    .use(samsungSysmmu());
  const unit = soc.probeUnit({
    name: "s",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const domain = soc.createDomain(unit);
  const ops = domain.ops as SysmmuDomain;
  return { soc, domain, ops };
}

function leavesOf(ops: SysmmuDomain): string[] {
  return ops.leaves().map((l) =>
    `${l.iova.toString(16)}->${l.pa.toString(16)}/${l.pageSize.toString(16)}`
  );
}

// The level-2 counters agree with the entries the leaves occupy.
function assertCountersAgree(ops: SysmmuDomain): void {
  const inL2 = ops.leaves().reduce(
    (n, l) => n + (l.pageSize === M1 ? 0 : l.pageSize / K4),
    0,
  );
  assertEquals(ops.tableStats()[1]!.entriesUsed, inL2);
}

function kindOf(f: () => void): string {
  try {
    f();
  } catch (e) {
    return e instanceof IommuError ? e.kind : `raw ${String(e)}`;
  }
  return "accepted";
}

Deno.test("samsung: a uniform 64 KiB plan maps its pages from start and pa, not from runs it did not check", () => {
  const { ops } = setup();
  // Two pushed runs at one IOVA, marked uniform: the hint says two pages
  // at 0x100000 and 0x110000.
  const p = new MapPlan();
  p.push(0x10_0000, 0x4010_0000, K64, 1);
  p.push(0x10_0000, 0x4020_0000, K64, 1);
  p.uniform = K64;
  ops.map(p, RW);
  assertEquals(leavesOf(ops), [
    "100000->40100000/10000",
    "110000->40200000/10000",
  ]);
  assertEquals(ops.freeEntries(1), 256 - 32);
  assertCountersAgree(ops);
  // Every entry it counted can be unmapped again.
  const g = new IotlbGather();
  assertEquals(ops.unmapPages(0x10_0000, K64, 2, g), 2 * K64);
  assertEquals(ops.freeEntries(1), 256);

  // One pushed run of 0x200 4 KiB pages ending past 4 GiB, marked uniform
  // 64 KiB: one 64 KiB page at 0xfff00000; nothing wraps to low IOVAs.
  const q = new MapPlan();
  q.push(0xfff0_0000, 0x4000_0000, K4, 0x200);
  q.uniform = K64;
  ops.map(q, RW);
  assertEquals(ops.iovaToPhys(0), -1);
  assertEquals(ops.iovaToPhys(0xfff0_0000), 0x4000_0000);
  assertEquals(ops.iovaToPhys(0xfff1_0000), -1);
  assertEquals(leavesOf(ops), ["fff00000->40000000/10000"]);
  assertCountersAgree(ops);
});

Deno.test("samsung: a uniform 1 MiB plan maps its sections from start and pa", () => {
  const { ops } = setup();
  const p = new MapPlan();
  p.push(0x10_0000, 0x4010_0000, M1, 1);
  p.push(0x10_0000, 0x4020_0000, M1, 1);
  p.uniform = M1;
  ops.map(p, RW);
  assertEquals(leavesOf(ops), [
    "100000->40100000/100000",
    "200000->40200000/100000",
  ]);
  // setUniform plans of 64 KiB across a 1 MiB boundary and of 1 MiB over
  // an empty level-2 table (which the section replaces and frees).
  const frames = Float64Array.from(
    { length: 20 },
    (_, i) => 0x4100_0000 + (19 - i) * K64,
  );
  const u = new MapPlan();
  u.setUniform(0x80_0000 - 4 * K64, K64, frames, 20);
  ops.map(u, RW);
  for (let i = 0; i < 20; i++) {
    assertEquals(
      ops.iovaToPhys(0x80_0000 - 4 * K64 + i * K64 + 5),
      frames[i]! + 5,
    );
  }
  assertCountersAgree(ops);
  const one = new MapPlan();
  one.push(0x300_0000, 0x4000_0000, K4, 1);
  ops.map(one, RW);
  const g = new IotlbGather();
  ops.unmapPages(0x300_0000, K4, 1, g);
  assertEquals(ops.l2Table(0x30) >= 0, true);
  const s = new MapPlan();
  s.setUniform(0x300_0000, M1, new Float64Array([0x4030_0000, 0x4050_0000]), 2);
  ops.map(s, RW);
  assertEquals(ops.l2Table(0x30), -1);
  assertEquals(ops.iovaToPhys(0x310_0004), 0x4050_0004);
  assertCountersAgree(ops);
});

Deno.test("samsung: a refused uniform plan leaves the domain as it was, whatever its arrays say", () => {
  const { soc, ops } = setup();
  const one = new MapPlan();
  one.push(0x51_0000, 0x4000_0000, K4, 1);
  ops.map(one, RW);
  const digest = soc.memory.digest();
  const live = soc.memory.frames.liveBytes;
  const before = leavesOf(ops);
  // The arrays name free IOVAs; the hint's second page (0x510000) is
  // mapped already.
  const p = new MapPlan();
  p.push(0x50_0000, 0x4010_0000, K64, 1);
  p.push(0x90_0000, 0x4020_0000, K64, 1);
  p.uniform = K64;
  assertEquals(kindOf(() => ops.map(p, RW)), "EEXIST");
  // The same with sections: the hint's second section holds a table.
  const s = new MapPlan();
  s.push(0x40_0000, 0x4010_0000, M1, 1);
  s.push(0x90_0000, 0x4020_0000, M1, 1);
  s.uniform = M1;
  assertEquals(kindOf(() => ops.map(s, RW)), "EEXIST");
  // A hint running past 4 GiB.
  const r = new MapPlan();
  r.push(0xfff0_0000, 0x4000_0000, K64, 1);
  r.push(0, 0x4001_0000, K64, 1);
  r.uniform = M1;
  assertEquals(kindOf(() => ops.map(r, RW)), "ERANGE");
  assertEquals(soc.memory.digest(), digest);
  assertEquals(soc.memory.frames.liveBytes, live);
  assertEquals(leavesOf(ops), before);
  assertCountersAgree(ops);
});

Deno.test("samsung: a uniform plan-like object without start begins at iova[0]", () => {
  for (const size of [K4, K64]) {
    const { ops } = setup();
    const plan = {
      count: 2,
      uniform: size,
      iova: new Float64Array([0x30_0000, 0x30_0000 + size]),
      pa: new Float64Array([0x4010_0000, 0x4020_0000]),
      pageSize: new Float64Array([size, size]),
      pages: new Float64Array([1, 1]),
    };
    ops.map(plan as unknown as MapPlan, RW);
    assertEquals(ops.iovaToPhys(0x30_0000), 0x4010_0000);
    assertEquals(ops.iovaToPhys(0x30_0000 + size), 0x4020_0000);
    assertEquals(ops.iovaToPhys(0), -1);
    assertEquals(ops.leaves().length, 2);
  }
});
