import { assertEquals } from "@std/assert";
import { createSoc, IOMMU_READ, IotlbGather } from "../core/mod.ts";
import {
  samsungSysmmu,
  setMasterPower,
  type SysmmuDriver,
  type SysmmuHardware,
} from "../plugins/samsung_sysmmu/mod.ts";
import {
  kindOf,
  RAM_BASE,
  rig,
  RW,
  V2_1,
  V3_1,
  V3_2,
  V3_3,
  V5_0,
  V7_4,
} from "./support/samsung.ts";

const hex = (n: number) => "0x" + n.toString(16);

Deno.test("enable sequence per version: BLOCK, CFG, PT_BASE, FLUSH_ALL, (VM), ENABLE", () => {
  const cases: [string, number, number, number, number, string, string][] = [
    ["v3.1", V3_1, 0, 0, 0x785, "PT_BASE", "full"],
    ["v3.2", V3_2, 0, 0, 0x500785, "PT_BASE", "full"],
    ["v3.3", V3_3, 0, 0, 0x1100784, "PT_BASE", "full"],
    ["v5.0", V5_0, 0, 0, 0x1100784, "PT_BASE", "ppn"],
    ["v7.4", V7_4, 0, 0, 0x1100784, "PT_BASE", "ppn"],
    ["v7.4-vm", V7_4, 0x800, 0x4000, 0x1100784, "PT_BASE", "ppn"],
  ];
  for (const [label, version, capa0, capa1, cfg, , base] of cases) {
    const soc = createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } })
      .use(samsungSysmmu({ version, capa0, capa1 }));
    const unit = soc.probeUnit({
      name: "u",
      compatible: ["samsung,exynos-sysmmu"],
    });
    const hw = unit.hardware as SysmmuHardware;
    const d = soc.createDomain(unit);
    hw.startTrace();
    assertEquals(hw.enabled, false, label);
    d.attach(unit);
    const pt = d.ops.rootTable;
    const ptValue = base === "full" ? pt : pt / 4096;
    const expected = [
      "CTRL=0x7",
      `CFG=${hex(cfg)}`,
      `PT_BASE=${hex(ptValue)}`,
      "FLUSH_ALL=0x1",
      ...(label.endsWith("vm") ? ["CTRL_VM=0x9"] : []),
      "CTRL=0x5",
    ];
    assertEquals(hw.trace(), expected, label);
    assertEquals(hw.enabled, true, label);
    assertEquals(hw.pageTableBase, pt, label);
    assertEquals(hw.readRegister(hw.layout.ptBase), ptValue, label);
    assertEquals(hw.readRegister(0x0), 0x5, label);
    assertEquals(hw.readRegister(0x4), cfg, label);
    assertEquals(hw.readRegister(0x8), 0, label); // not blocked
  }
});

Deno.test("a disabled unit passes addresses through untranslated", () => {
  const soc = createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } })
    .use(samsungSysmmu());
  const unit = soc.probeUnit({
    name: "u",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const dev = soc.addMaster({ name: "dev", ports: [{ unit }] });
  assertEquals(unit.hardware.isBypassing(0), true);
  assertEquals(soc.unprotectedMasters().map((m) => m.name), ["dev"]);
  dev.port().writeBytes(RAM_BASE + 0x5000, new Uint8Array([1, 2]));
  assertEquals(soc.memory.read8(RAM_BASE + 0x5001), 2);
  const d = soc.createDomain(unit);
  d.attach(unit);
  assertEquals(unit.hardware.isBypassing(0), false);
  assertEquals(soc.unprotectedMasters(), []);
  // Translated now: the same address is an unmapped IOVA.
  assertEquals(
    dev.port().write(RAM_BASE + 0x5000, new Uint8Array([9]))?.reason,
    "translation",
  );
  const hw = unit.hardware as SysmmuHardware;
  hw.clearFault();
  hw.startTrace();
  d.detach(unit);
  assertEquals(hw.trace(), ["CTRL=0x0", "CFG=0x0"]);
  assertEquals(unit.hardware.isBypassing(0), true);
  assertEquals(soc.memory.read8(RAM_BASE + 0x5000), 1);
});

Deno.test("v7-VM translates only while VM 0 is enabled", () => {
  const r = rig({ version: V7_4, capa0: 0x800, capa1: 0x4000 });
  const hw = r.hw[0]!;
  assertEquals(hw.readRegister(0x8000), 0x9);
  assertEquals(hw.enabled, true);
  hw.writeRegister(0x8000, 0);
  assertEquals(hw.enabled, false);
  assertEquals(hw.isBypassing(0), true);
});

Deno.test("invalidation sequences: block, flush, unblock", async (t) => {
  await t.step("v3.3: one FLUSH_ENTRY per leaf of the gathered range", () => {
    const r = rig({ version: V3_3 });
    const hw = r.hw[0]!;
    r.domain.map(0x1000_0000, RAM_BASE, 0x3000, RW);
    r.domain.map(0x1001_0000, RAM_BASE + 0x10000, 0x10000, RW);
    hw.startTrace();
    assertEquals(r.domain.unmap(0x1000_1000, 0x1000), 0x1000);
    assertEquals(hw.trace(), [
      "CTRL=0x7",
      "FLUSH_ENTRY=0x10001001",
      "CTRL=0x5",
    ]);
    hw.startTrace();
    r.domain.unmap(0x1001_0000, 0x10000); // one large page: one entry
    assertEquals(hw.trace(), [
      "CTRL=0x7",
      "FLUSH_ENTRY=0x10010001",
      "CTRL=0x5",
    ]);
    hw.startTrace();
    r.domain.unmap(0x1000_0000, 0x3000); // two pages left, a hole between
    assertEquals(hw.trace(), [
      "CTRL=0x7",
      "FLUSH_ENTRY=0x10000001",
      "FLUSH_ENTRY=0x10001001",
      "FLUSH_ENTRY=0x10002001",
      "CTRL=0x5",
    ]);
  });

  await t.step(
    "v3.3: FLUSH_ALL when more than 64 entries would be needed",
    () => {
      const r = rig({ version: V3_3 });
      const hw = r.hw[0]!;
      const frames = Array.from(
        { length: 100 },
        (_, i) => RAM_BASE + i * 0x2000,
      );
      r.domain.mapPages(0x1000_0000, frames, RW);
      hw.startTrace();
      assertEquals(r.domain.unmap(0x1000_0000, 100 * 0x1000), 100 * 0x1000);
      assertEquals(hw.trace(), ["CTRL=0x7", "FLUSH_ALL=0x1", "CTRL=0x5"]);
    },
  );

  await t.step(
    "v2: per 4 KiB even for a 64 KiB page (set-associative TLB)",
    () => {
      const r = rig({ version: V2_1 });
      const hw = r.hw[0]!;
      r.domain.map(0x1001_0000, RAM_BASE, 0x10000, RW);
      hw.startTrace();
      r.domain.unmap(0x1001_0000, 0x10000);
      const t2 = hw.trace();
      assertEquals(t2.length, 18);
      assertEquals(t2[1], "FLUSH_ENTRY=0x10010001");
      assertEquals(t2[16], "FLUSH_ENTRY=0x1001f001");
    },
  );

  await t.step(
    "v5/v7: one range flush per batch, one entry flush for one page",
    () => {
      for (
        const [version, capa0, capa1, prefix] of [
          [V5_0, 0, 0, ""],
          [V7_4, 0x800, 0x4000, ""],
        ] as const
      ) {
        const r = rig({ version, capa0, capa1 });
        const hw = r.hw[0]!;
        const frames = Array.from(
          { length: 300 },
          (_, i) => RAM_BASE + i * 0x2000,
        );
        r.domain.mapPages(0x1000_0000, frames, RW);
        hw.startTrace();
        r.domain.unmap(0x1000_0000, 300 * 0x1000);
        assertEquals(hw.trace(), [
          "CTRL=0x7",
          `${prefix}RANGE_START=0x10000000`,
          "RANGE_END=0x1012b000",
          "FLUSH_RANGE=0x1",
          "CTRL=0x5",
        ]);
        r.domain.map(0x2000_0000, RAM_BASE, 0x1000, RW);
        hw.startTrace();
        r.domain.unmap(0x2000_0000, 0x1000);
        assertEquals(hw.trace(), [
          "CTRL=0x7",
          "FLUSH_ENTRY=0x20000001",
          "CTRL=0x5",
        ]);
      }
    },
  );

  await t.step("lazy unmaps are invalidated once, at sync", () => {
    const r = rig({ version: V5_0 });
    const hw = r.hw[0]!;
    r.domain.map(0x1000_0000, RAM_BASE, 0x8000, RW);
    const g = new IotlbGather();
    hw.startTrace();
    r.domain.unmapNoSync(0x1000_0000, 0x2000, g);
    r.domain.unmapNoSync(0x1000_4000, 0x2000, g);
    assertEquals(hw.trace(), []);
    r.domain.sync(g);
    assertEquals(hw.trace(), [
      "CTRL=0x7",
      "RANGE_START=0x10000000",
      "RANGE_END=0x10005000",
      "FLUSH_RANGE=0x1",
      "CTRL=0x5",
    ]);
  });

  await t.step(
    "maps touch no register except the FLPD flush of a replaced zero link",
    () => {
      const r31 = rig({ version: V3_1 });
      r31.hw[0]!.startTrace();
      r31.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
      assertEquals(r31.hw[0]!.trace(), []);
      const r = rig({ version: V3_3 });
      const hw = r.hw[0]!;
      hw.startTrace();
      r.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
      assertEquals(hw.trace(), [
        "CTRL=0x7",
        "FLUSH_ENTRY=0x10000001",
        "CTRL=0x5",
      ]);
      hw.startTrace();
      r.domain.map(0x1000_1000, RAM_BASE, 0x1000, RW); // same level-2 table
      assertEquals(hw.trace(), []);
      const r5 = rig({ version: V5_0 });
      r5.hw[0]!.startTrace();
      r5.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
      assertEquals(r5.hw[0]!.trace(), [
        "CTRL=0x7",
        "FLUSH_ALL=0x1",
        "CTRL=0x5",
      ]);
      // Without the workaround, no FLPD flush at all.
      const old = rig({ version: V3_3, flpdWorkaround: false });
      old.hw[0]!.startTrace();
      old.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
      assertEquals(old.hw[0]!.trace(), []);
    },
  );

  await t.step("unmapping an unmapped area writes nothing", () => {
    const r = rig({ version: V3_3 });
    r.hw[0]!.startTrace();
    assertEquals(r.domain.unmap(0x3000_0000, 0x200000), 0);
    assertEquals(r.hw[0]!.trace(), []);
  });

  await t.step(
    "a unit that never blocks: the flush is skipped after 120 polls",
    () => {
      const r = rig({ version: V3_3, blockLatency: 121 });
      const hw = r.hw[0]!;
      r.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW); // its FLPD flush times out too
      r.masters[0]!.port().readBytes(0x1000_0000, 4); // fill the TLB
      const before = (r.driver as SysmmuDriver).counters().blockTimeouts;
      hw.startTrace();
      r.domain.unmap(0x1000_0000, 0x1000);
      assertEquals(hw.trace(), ["CTRL=0x7", "CTRL=0x5"]);
      assertEquals(
        (r.driver as SysmmuDriver).counters().blockTimeouts,
        before + 1,
      );
      // Silent skip: the stale TLB entry still translates, as on the board.
      assertEquals(
        r.masters[0]!.port().read(0x1000_0000, new Uint8Array(4)),
        null,
      );
      // A unit that blocks after a few polls is fine.
      const slow = rig({ version: V3_3, blockLatency: 5 });
      slow.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
      slow.masters[0]!.port().readBytes(0x1000_0000, 4);
      slow.domain.unmap(0x1000_0000, 0x1000);
      assertEquals(
        slow.masters[0]!.port().read(0x1000_0000, new Uint8Array(4))?.reason,
        "translation",
      );
    },
  );

  await t.step("flushAll", () => {
    const r = rig({ version: V3_3 });
    r.hw[0]!.startTrace();
    r.domain.flushAll();
    assertEquals(r.hw[0]!.trace(), ["CTRL=0x7", "FLUSH_ALL=0x1", "CTRL=0x5"]);
  });
});

Deno.test("register access errors", () => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]!;
  assertEquals(kindOf(() => hw.readRegister(2)), "EINVAL");
  assertEquals(kindOf(() => hw.readRegister(0x10000)), "EINVAL");
  assertEquals(kindOf(() => hw.writeRegister(-4, 0)), "EINVAL");
  assertEquals(kindOf(() => hw.writeRegister(1.5, 0)), "EINVAL");
  assertEquals(hw.readRegister(0x870), 0); // no CAPA before v7
  hw.writeRegister(0x34, 0); // VERSION is read-only
  assertEquals(hw.readRegister(0x34), V3_3);
  hw.setPower(false);
  assertEquals(kindOf(() => hw.readRegister(0)), "EIO");
  assertEquals(kindOf(() => hw.writeRegister(0, 5)), "EIO");
  assertEquals(kindOf(() => hw.clearFault()), "EIO");
});

Deno.test("runtime PM: enabled only while the master is powered", async (t) => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]!;
  const port = r.masters[0]!.port();
  const mem = r.soc.memory;
  const buf = mem.frames.alloc(0x2000);
  r.domain.map(0x1000_0000, buf, 0x1000, RW);
  port.readBytes(0x1000_0000, 4); // cached in the TLB

  await t.step(
    "power down: CTRL = 0, CFG = 0, then nothing is reachable",
    () => {
      hw.startTrace();
      hw.setPower(false);
      assertEquals(hw.trace(), ["CTRL=0x0", "CFG=0x0"]);
      assertEquals(r.driver.isActive(r.units[0]!), false);
      assertEquals(hw.powered, false);
      assertEquals(hw.isBypassing(0), true);
      assertEquals(hw.tlb.size, 0);
    },
  );

  await t.step("map/unmap while off update RAM and touch no register", () => {
    const inv = r.driver.counters().invalidations;
    r.domain.unmap(0x1000_0000, 0x1000);
    r.domain.map(0x1000_0000, buf + 0x1000, 0x1000, RW);
    r.domain.map(0x2000_0000, buf, 0x1000, IOMMU_READ); // new table: no FLPD flush
    assertEquals(hw.trace(), ["CTRL=0x0", "CFG=0x0"]);
    assertEquals(r.driver.counters().invalidations, inv);
    assertEquals(r.domain.iovaToPhys(0x1000_0000), buf + 0x1000);
  });

  await t.step("power up: base reprogrammed and TLB flushed", () => {
    hw.startTrace();
    hw.setPower(true);
    assertEquals(hw.trace(), [
      "CTRL=0x7",
      "CFG=0x1100784",
      `PT_BASE=${hex(r.ops.rootTable)}`,
      "FLUSH_ALL=0x1",
      "CTRL=0x5",
    ]);
    mem.write8(buf + 0x1000, 0x5a);
    assertEquals(port.readBytes(0x1000_0000, 1)[0], 0x5a);
    assertEquals(r.driver.isActive(r.units[0]!), true);
  });

  await t.step("a powered-up unit with no domain stays disabled", () => {
    r.domain.detach(r.units[0]!);
    hw.setPower(false);
    hw.startTrace();
    hw.setPower(true);
    assertEquals(hw.trace(), []);
    assertEquals(hw.enabled, false);
    assertEquals(hw.counters().powerUps, 2);
  });

  await t.step("attach while off enables at power-up", () => {
    hw.setPower(false);
    r.domain.attach(r.units[0]!);
    assertEquals(hw.enabled, false);
    hw.setPower(true);
    assertEquals(hw.enabled, true);
    assertEquals(hw.pageTableBase, r.ops.rootTable);
  });
});

Deno.test("one master, two System MMUs: one table, power together, every invalidation reaches both", () => {
  const soc = createSoc({ memory: { base: RAM_BASE, size: 128 << 20 } })
    .use(samsungSysmmu({ version: V3_3 }));
  const left = soc.probeUnit({
    name: "sysmmu_mfc_l",
    compatible: ["samsung,exynos-sysmmu"],
    reg: [{ address: 0x13620000, size: 0x1000 }],
  });
  const right = soc.probeUnit({
    name: "sysmmu_mfc_r",
    compatible: ["samsung,exynos-sysmmu"],
    reg: [{ address: 0x13630000, size: 0x1000 }],
  });
  const mfc = soc.addMaster({
    name: "mfc",
    ports: [{ name: "left", unit: left }, { name: "right", unit: right }],
  });
  const hl = left.hardware as SysmmuHardware;
  const hr = right.hardware as SysmmuHardware;
  const d = soc.createDomain(left);
  d.attach(left);
  d.attach(right);
  assertEquals(hl.pageTableBase, d.ops.rootTable);
  assertEquals(hr.pageTableBase, d.ops.rootTable);
  const buf = soc.memory.frames.alloc(0x10000);
  d.map(0x2000_0000, buf, 0x10000, RW);
  mfc.port("left").writeBytes(0x2000_0100, new Uint8Array([1, 2, 3]));
  assertEquals([...mfc.port("right").readBytes(0x2000_0100, 3)], [1, 2, 3]);
  assertEquals(hl.tlb.size, 1);
  assertEquals(hr.tlb.size, 1);
  hl.startTrace();
  hr.startTrace();
  d.unmap(0x2000_0000, 0x10000);
  const seq = ["CTRL=0x7", "FLUSH_ENTRY=0x20000001", "CTRL=0x5"];
  assertEquals(hl.trace(), seq);
  assertEquals(hr.trace(), seq);
  assertEquals([hl.tlb.size, hr.tlb.size], [0, 0]);
  assertEquals(
    mfc.port("left").read(0x2000_0100, new Uint8Array(1))?.reason,
    "translation",
  );
  assertEquals(
    mfc.port("right").read(0x2000_0100, new Uint8Array(1))?.reason,
    "translation",
  );
  // Nobody handled those faults: both units are blocked until cleared...
  assertEquals([hl.blocked, hr.blocked], [true, true]);
  // ...or until the master's power goes, which resets them.
  setMasterPower(mfc, false);
  assertEquals([hl.powered, hr.powered, hl.enabled, hr.enabled], [
    false,
    false,
    false,
    false,
  ]);
  setMasterPower(mfc, true);
  assertEquals([hl.enabled, hr.enabled], [true, true]);
  assertEquals([hl.blocked, hr.blocked], [false, false]);
  assertEquals([hl.readRegister(0x18), hr.readRegister(0x18)], [0, 0]);
  assertEquals([hl.pageTableBase, hr.pageTableBase], [
    d.ops.rootTable,
    d.ops.rootTable,
  ]);
});

Deno.test("re-attaching a unit to another domain switches tables inside one block window", () => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]!;
  const d2 = r.soc.createDomain(r.units[0]!);
  r.domain.map(0x1000_0000, RAM_BASE, 0x1000, RW);
  d2.map(0x1000_0000, RAM_BASE + 0x1000, 0x1000, RW);
  r.masters[0]!.port().readBytes(0x1000_0000, 1);
  hw.startTrace();
  d2.attach(r.units[0]!);
  assertEquals(hw.trace(), [
    "CTRL=0x7",
    "CFG=0x1100784",
    `PT_BASE=${hex(d2.ops.rootTable)}`,
    "FLUSH_ALL=0x1",
    "CTRL=0x5",
  ]);
  assertEquals(r.domain.attachments(), []);
  r.soc.memory.write8(RAM_BASE + 0x1000, 0x77);
  assertEquals(r.masters[0]!.port().readBytes(0x1000_0000, 1)[0], 0x77);
  r.domain.free(); // no longer attached
  assertEquals(kindOf(() => d2.free()), "EBUSY");
  assertEquals(kindOf(() => d2.ops.free()), "EBUSY");
  d2.attach(r.units[0]!); // no-op
  assertEquals(hw.trace().length, 5);
});
