import { assertEquals } from "@std/assert";
import { createSoc, IOMMU_READ, IOMMU_WRITE } from "../core/mod.ts";
import {
  decodeSysmmuVersion,
  LAYOUT_V1,
  LAYOUT_V5,
  LAYOUT_V7,
  LAYOUT_V7_VM,
  PTE_V1,
  PTE_V5,
  pteFormat,
  registerName,
  samsungSysmmu,
  type SamsungSysmmuOptions,
  sysmmuCaps,
  type SysmmuHardware,
  sysmmuVersionRegister,
  versionName,
} from "../plugins/samsung_sysmmu/mod.ts";
import {
  kindOf,
  RAM_BASE,
  rig,
  RW,
  V1_0,
  V2_1,
  V3_1,
  V3_2,
  V3_3,
  V5_0,
  V7_4,
} from "./support/samsung.ts";

Deno.test("MMU_VERSION decoding", async (t) => {
  await t.step("fields, layouts and generations", () => {
    const cases: [number, number, number, string, number][] = [
      [0x10000000, 1, 0, "v1", 0],
      [V2_1, 2, 1, "v1", 0],
      [V3_1, 3, 1, "v1", 0],
      [V3_2, 3, 2, "v1", 0],
      [V3_3, 3, 3, "v1", 0],
      [0x306fffff, 3, 3, "v1", 0], // revision bits are not part of the version
      [V5_0, 5, 0, "v5", 4],
      [0x50200000, 5, 1, "v5", 4],
      [V7_4, 7, 4, "v7", 4],
    ];
    for (const [raw, major, minor, layout, shift] of cases) {
      const v = decodeSysmmuVersion(raw);
      assertEquals(
        [v.major, v.minor, v.layout, v.pgShift, v.value],
        [major, minor, layout, shift, (major << 7) | minor],
        `raw ${raw.toString(16)}`,
      );
    }
    assertEquals(decodeSysmmuVersion(V3_3).value, 0x183);
    assertEquals(decodeSysmmuVersion(V5_0).value, 0x280);
    assertEquals(decodeSysmmuVersion(V7_4).value, 0x384);
    assertEquals(versionName(decodeSysmmuVersion(V3_3)), "v3.3");
  });

  await t.step("the bogus 0x80000001 reads as v1.0", () => {
    const v = decodeSysmmuVersion(V1_0);
    assertEquals([v.major, v.minor, v.layout, v.pgShift], [1, 0, "v1", 0]);
    assertEquals(v.raw, V1_0);
  });

  await t.step(
    "v7 picks the VM layout only with CAPA0 bit 11 and CAPA1 bit 14",
    () => {
      assertEquals(decodeSysmmuVersion(V7_4, 1 << 11, 1 << 14).layout, "v7-vm");
      assertEquals(decodeSysmmuVersion(V7_4, 0, 1 << 14).layout, "v7");
      assertEquals(decodeSysmmuVersion(V7_4, 1 << 11, 0).layout, "v7");
      // Capabilities mean nothing before v7.
      assertEquals(decodeSysmmuVersion(V5_0, 1 << 11, 1 << 14).layout, "v5");
    },
  );

  await t.step("register values round-trip", () => {
    assertEquals(sysmmuVersionRegister(3, 3), 0x30600000);
    assertEquals(sysmmuVersionRegister(5, 0), 0x50000000);
    assertEquals(sysmmuVersionRegister(7, 4), 0x70800000);
    assertEquals(kindOf(() => sysmmuVersionRegister(16, 0)), "EINVAL");
    assertEquals(kindOf(() => sysmmuVersionRegister(1, 128)), "EINVAL");
    assertEquals(kindOf(() => sysmmuVersionRegister(1.5, 0)), "EINVAL");
  });

  await t.step("unmodelled and malformed values are refused", () => {
    for (
      const raw of [
        0,
        0x40000000,
        0x60000000,
        0x80000000,
        0xf0000000,
        0x30800000,
        -1,
        2 ** 32,
        1.5,
        NaN,
      ]
    ) {
      assertEquals(kindOf(() => decodeSysmmuVersion(raw)), "EINVAL", `${raw}`);
    }
  });
});

Deno.test("golden descriptors: v1-v3 (32-bit PA, AP bits)", () => {
  assertEquals(PTE_V1.section(0x40100000, RW), 0x40100402);
  assertEquals(PTE_V1.section(0x40100000, IOMMU_READ), 0x40108402);
  assertEquals(PTE_V1.section(0x40100000, IOMMU_WRITE), 0x40100402); // no write-only
  assertEquals(PTE_V1.largePage(0x40030000, RW), 0x40030011);
  assertEquals(PTE_V1.largePage(0x40030000, IOMMU_READ), 0x40030211);
  assertEquals(PTE_V1.smallPage(0x40023000, RW), 0x40023012);
  assertEquals(PTE_V1.smallPage(0x40023000, IOMMU_READ), 0x40023212);
  assertEquals(PTE_V1.smallPage(0xfffff000, IOMMU_WRITE), 0xfffff012);
  assertEquals(PTE_V1.link(0x40004c00), 0x40004c01);
  assertEquals(PTE_V1.sectionPa(0x40108402), 0x40100000);
  assertEquals(PTE_V1.largePa(0x40030211), 0x40030000);
  assertEquals(PTE_V1.smallPa(0xfffff012), 0xfffff000);
  assertEquals(PTE_V1.linkPa(0x40004c01), 0x40004c00);
  assertEquals(PTE_V1.sectionPerm(0x40108402), IOMMU_READ);
  assertEquals(PTE_V1.sectionPerm(0x40100402), RW);
  assertEquals(PTE_V1.sectionPerm(0x40100002), 0);
  assertEquals(PTE_V1.lv2Perm(0x40023212), IOMMU_READ);
  assertEquals(PTE_V1.lv2Perm(0x40023012), RW);
  assertEquals(PTE_V1.lv2Perm(0x40023002), 0);
  assertEquals(pteFormat(0), PTE_V1);
});

Deno.test("golden descriptors: v5+ (PA >> 4, 36-bit PA, R/W bits)", () => {
  const sect = 0x8_4010_0000; // above 4 GiB: needs the shift
  assertEquals(PTE_V5.section(sect, RW), 0x84010032);
  assertEquals(PTE_V5.section(sect, IOMMU_READ), 0x84010012);
  assertEquals(PTE_V5.section(sect, IOMMU_WRITE), 0x84010022);
  assertEquals(PTE_V5.largePage(0x8_4003_0000, RW), 0x8400300d);
  assertEquals(PTE_V5.largePage(0x8_4003_0000, IOMMU_READ), 0x84003005);
  assertEquals(PTE_V5.smallPage(0x8_4002_3000, RW), 0x8400230e);
  assertEquals(PTE_V5.smallPage(0x8_4002_3000, IOMMU_WRITE), 0x8400230a);
  assertEquals(PTE_V5.smallPage(0xf_ffff_f000, IOMMU_READ), 0xffffff06);
  assertEquals(PTE_V5.link(0x8_4000_4c00), 0x840004c1);
  assertEquals(PTE_V5.sectionPa(0x84010032), sect);
  assertEquals(PTE_V5.largePa(0x8400300d), 0x8_4003_0000);
  assertEquals(PTE_V5.smallPa(0xffffff06), 0xf_ffff_f000);
  assertEquals(PTE_V5.linkPa(0x840004c1), 0x8_4000_4c00);
  assertEquals(PTE_V5.sectionPerm(0x84010022), IOMMU_WRITE);
  assertEquals(PTE_V5.lv2Perm(0x8400230a), IOMMU_WRITE);
  assertEquals(PTE_V5.lv2Perm(0x84002306), IOMMU_READ);
  assertEquals(pteFormat(4), PTE_V5);
});

Deno.test("the driver writes the golden descriptors into RAM for every version and page size", () => {
  // [label, options, PTE shift, register layout the unit must pick]
  const versions: [string, SamsungSysmmuOptions, number, string][] = [
    ["v1.0", { version: V1_0 }, 0, "v1"],
    ["v2.1", { version: V2_1 }, 0, "v1"],
    ["v3.1", { version: V3_1 }, 0, "v1"],
    ["v3.2", { version: V3_2 }, 0, "v1"],
    ["v3.3", { version: V3_3 }, 0, "v1"],
    ["v5.0", { version: V5_0 }, 4, "v5"],
    ["v7.4", { version: V7_4 }, 4, "v7"],
    // CAPA0 bit 11 + CAPA1 bit 14: the VM register block.
    ["v7.4 VM", { version: V7_4, capa0: 1 << 11, capa1: 1 << 14 }, 4, "v7-vm"],
  ];
  for (const [label, options, shift, layout] of versions) {
    const r = rig(options);
    assertEquals(r.hw[0]!.layout.name, layout, label);
    const mem = r.soc.memory;
    const fmt = pteFormat(shift as 0 | 4);
    const l1 = r.ops.rootTable;
    // 4 KiB, read-only, at 0x1000_3000 -> PA 0x4100_5000
    r.domain.map(0x1000_3000, 0x4100_5000, 0x1000, IOMMU_READ);
    const slot = 0x100;
    const l2 = r.ops.l2Table(slot);
    assertEquals(mem.read32(l1 + slot * 4), fmt.link(l2));
    assertEquals(
      mem.read32(l2 + 3 * 4),
      fmt.smallPage(0x4100_5000, IOMMU_READ),
    );
    // 64 KiB at 0x1001_0000 -> 0x4102_0000: 16 identical entries
    r.domain.map(0x1001_0000, 0x4102_0000, 0x10000, RW);
    const large = fmt.largePage(0x4102_0000, RW);
    for (let i = 16; i < 32; i++) assertEquals(mem.read32(l2 + i * 4), large);
    assertEquals(mem.read32(l2 + 32 * 4), 0);
    // 1 MiB at 0x2000_0000 -> 0x4200_0000
    r.domain.map(0x2000_0000, 0x4200_0000, 0x100000, RW);
    assertEquals(mem.read32(l1 + 0x200 * 4), fmt.section(0x4200_0000, RW));
    if (shift === 0) {
      assertEquals(mem.read32(l2 + 12), 0x41005212);
      assertEquals(mem.read32(l2 + 64), 0x41020011);
      assertEquals(mem.read32(l1 + 0x800), 0x42000402);
    } else {
      assertEquals(mem.read32(l2 + 12), 0x04100506);
      assertEquals(mem.read32(l2 + 64), 0x0410200d);
      assertEquals(mem.read32(l1 + 0x800), 0x04200032);
    }
    assertEquals(
      r.domain.leaves().map((l) => [l.iova, l.pa, l.pageSize, l.prot]),
      [
        [0x1000_3000, 0x4100_5000, 0x1000, IOMMU_READ],
        [0x1001_0000, 0x4102_0000, 0x10000, RW],
        [0x2000_0000, 0x4200_0000, 0x100000, RW],
      ],
    );
  }
});

Deno.test("write-only mappings: promoted to read/write before v5, kept from v5", () => {
  const old = rig({ version: V3_3 });
  old.domain.map(0x100000, RAM_BASE, 0x1000, IOMMU_WRITE);
  assertEquals(old.domain.leaves()[0]!.prot, RW);
  const v5 = rig({ version: V5_0 });
  v5.domain.map(0x100000, RAM_BASE, 0x1000, IOMMU_WRITE);
  assertEquals(v5.domain.leaves()[0]!.prot, IOMMU_WRITE);
});

Deno.test("a new domain fills level 1 with the zero link; the zero table is shared and all zero", () => {
  const r = rig({ version: V3_3 });
  const mem = r.soc.memory;
  const zero = r.driver.zeroTable;
  assertEquals(r.driver.zeroLink, PTE_V1.link(zero));
  const l1 = mem.view32(r.ops.rootTable, 16384);
  assertEquals(l1.every((e) => e === r.driver.zeroLink), true);
  assertEquals(mem.view32(zero, 1024).every((e) => e === 0), true);
  const other = r.soc.createDomain(r.units[0]!);
  assertEquals(mem.read32(other.ops.rootTable), r.driver.zeroLink);
  // Without the workaround level 1 starts as plain faults (zeros).
  const old = rig({ version: V3_3, flpdWorkaround: false });
  const l1old = old.soc.memory.view32(old.ops.rootTable, 16384);
  assertEquals(l1old.every((e) => e === 0), true);
  assertEquals(r.domain.iovaToPhys(0x1234_5000), -1);
  assertEquals(r.domain.tableStats()[1]!.tables, 0);
});

Deno.test("register layouts sit at their real offsets", () => {
  assertEquals(
    [LAYOUT_V1.ptBase, LAYOUT_V1.flushAll, LAYOUT_V1.flushEntry],
    [0x14, 0x0c, 0x10],
  );
  assertEquals([LAYOUT_V1.intStatus, LAYOUT_V1.intClear], [0x18, 0x1c]);
  assertEquals(
    [
      LAYOUT_V1.pageFaultAddr,
      LAYOUT_V1.awFaultAddr,
      LAYOUT_V1.arFaultAddr,
      LAYOUT_V1.busErrorAddr,
    ],
    [0x24, 0x28, 0x2c, 0x30],
  );
  assertEquals(LAYOUT_V1.flushRange, -1);
  assertEquals(
    [
      LAYOUT_V5.ptBase,
      LAYOUT_V5.flushAll,
      LAYOUT_V5.flushEntry,
      LAYOUT_V5.flushRange,
      LAYOUT_V5.rangeStart,
      LAYOUT_V5.rangeEnd,
    ],
    [0x0c, 0x10, 0x14, 0x18, 0x20, 0x24],
  );
  assertEquals(
    [LAYOUT_V5.intStatus, LAYOUT_V5.arFaultAddr, LAYOUT_V5.awFaultAddr],
    [0x60, 0x70, 0x80],
  );
  assertEquals([LAYOUT_V7.arFaultAddr, LAYOUT_V7.faultInfo], [0x70, 0x78]);
  assertEquals(
    [
      LAYOUT_V7_VM.vmCtrl,
      LAYOUT_V7_VM.ptBase,
      LAYOUT_V7_VM.flushAll,
      LAYOUT_V7_VM.flushEntry,
      LAYOUT_V7_VM.flushRange,
      LAYOUT_V7_VM.rangeStart,
      LAYOUT_V7_VM.rangeEnd,
      LAYOUT_V7_VM.intStatus,
      LAYOUT_V7_VM.arFaultAddr,
      LAYOUT_V7_VM.faultInfo,
    ],
    [
      0x8000,
      0x800c,
      0x8010,
      0x8014,
      0x8018,
      0x8020,
      0x8024,
      0x60,
      0x1000,
      0x1004,
    ],
  );
  assertEquals(registerName(LAYOUT_V1, 0x14), "PT_BASE");
  assertEquals(registerName(LAYOUT_V5, 0x14), "FLUSH_ENTRY");
  assertEquals(registerName(LAYOUT_V1, 0x2c), "AR_FAULT_ADDR");
  assertEquals(registerName(LAYOUT_V7, 0x870), "CAPA0");
  assertEquals(registerName(LAYOUT_V5, 0x870), "0x870");
});

Deno.test("probe: version from the node, options override, caps per version", async (t) => {
  await t.step("node property, default and override", () => {
    const soc = createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } })
      .use(samsungSysmmu());
    const a = soc.probeUnit({
      name: "a",
      compatible: ["samsung,exynos-sysmmu"],
      props: { "iommukit,sysmmu-version": V3_2 },
    });
    const b = soc.probeUnit({
      name: "b",
      compatible: ["samsung,exynos-sysmmu"],
    });
    assertEquals(
      (a.hardware as SysmmuHardware).version.value,
      decodeSysmmuVersion(V3_2).value,
    );
    assertEquals((b.hardware as SysmmuHardware).version.raw, V3_3);
    assertEquals(a.hardware.readRegister(0x34), V3_2);
    assertEquals(a.driver, b.driver); // one driver per RAM
    const soc2 = createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } })
      .use(samsungSysmmu({ version: V5_0 }));
    const c = soc2.probeUnit({
      name: "c",
      compatible: ["samsung,exynos-sysmmu"],
      props: { "iommukit,sysmmu-version": V3_2 },
    });
    assertEquals((c.hardware as SysmmuHardware).version.major, 5);
  });

  await t.step("v7 capability registers from node properties", () => {
    const soc = createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } })
      .use(samsungSysmmu());
    const u = soc.probeUnit({
      name: "vm",
      compatible: ["samsung,exynos-sysmmu"],
      props: {
        "iommukit,sysmmu-version": V7_4,
        "iommukit,sysmmu-capa0": 0x800,
        "iommukit,sysmmu-capa1": 0x4000,
        "iommukit,sysmmu-tlb-sets": 8,
        "iommukit,sysmmu-tlb-ways": 2,
      },
    });
    const hw = u.hardware as SysmmuHardware;
    assertEquals(hw.version.layout, "v7-vm");
    assertEquals([hw.readRegister(0x870), hw.readRegister(0x874)], [
      0x800,
      0x4000,
    ]);
    assertEquals([hw.tlb.sets, hw.tlb.ways], [8, 2]);
  });

  await t.step("TLB and FLPD geometry per version", () => {
    const v2 = rig({ version: V2_1 }).hw[0]!;
    assertEquals([v2.tlb.sets, v2.tlb.ways, v2.flpd.capacity], [64, 8, 0]);
    assertEquals(rig({ version: V3_1 }).hw[0]!.flpd.capacity, 0);
    assertEquals(rig({ version: V3_2 }).hw[0]!.flpd.capacity, 32);
    assertEquals(
      rig({ version: V3_3, flpdEntries: 8 }).hw[0]!.flpd.capacity,
      8,
    );
    assertEquals(rig({ version: V5_0 }).hw[0]!.flpd.capacity, 0);
    const custom = rig({ version: V5_0, tlb: { sets: 4, ways: 1 } }).hw[0]!;
    assertEquals(custom.tlb.capacity, 4);
  });

  await t.step("caps", () => {
    const c33 = sysmmuCaps(decodeSysmmuVersion(V3_3));
    assertEquals(c33.pageSizes, [0x1000, 0x10000, 0x100000]);
    assertEquals([c33.topology, c33.inputBits, c33.outputBits, c33.streamIds], [
      "per-device",
      32,
      32,
      0,
    ]);
    assertEquals(c33.features.includes("write-only"), false);
    assertEquals(c33.iovaConstraints, {
      alignment: 0x20000,
      guardGap: 0x20000,
    });
    assertEquals(
      sysmmuCaps(decodeSysmmuVersion(V3_1)).iovaConstraints,
      { alignment: 0x20000 },
    );
    assertEquals(
      sysmmuCaps(decodeSysmmuVersion(V3_2)).iovaConstraints,
      { alignment: 0x40000 },
    );
    const c5 = sysmmuCaps(decodeSysmmuVersion(V5_0));
    assertEquals(c5.outputBits, 36);
    assertEquals(c5.iovaConstraints, undefined);
    assertEquals(
      ["range-invalidation", "write-only"].every((f) =>
        c5.features.includes(f as never)
      ),
      true,
    );
  });

  await t.step("errors", () => {
    const mk = () => createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } });
    const node = { name: "x", compatible: ["samsung,exynos-sysmmu"] };
    assertEquals(
      kindOf(() =>
        mk().use(samsungSysmmu({ version: 0x40000000 })).probeUnit(node)
      ),
      "EINVAL",
    );
    assertEquals(
      kindOf(() =>
        mk().use(samsungSysmmu({ tlb: { sets: 3, ways: 1 } })).probeUnit(node)
      ),
      "EINVAL",
    );
    assertEquals(
      kindOf(() =>
        mk().use(samsungSysmmu({ flpdEntries: -1 })).probeUnit(node)
      ),
      "EINVAL",
    );
    assertEquals(
      kindOf(() =>
        mk().use(samsungSysmmu({ blockLatency: 0.5 })).probeUnit(node)
      ),
      "EINVAL",
    );
    // One page-table generation per system, as in Linux.
    const soc = mk().use(samsungSysmmu());
    soc.probeUnit({
      name: "old",
      compatible: ["samsung,exynos-sysmmu"],
      props: { "iommukit,sysmmu-version": V3_3 },
    });
    assertEquals(
      kindOf(() =>
        soc.probeUnit({
          name: "new",
          compatible: ["samsung,exynos-sysmmu"],
          props: { "iommukit,sysmmu-version": V5_0 },
        })
      ),
      "EINVAL",
    );
    // A zero table that cannot be allocated.
    const full = mk();
    full.memory.frames.failNth(1);
    assertEquals(
      kindOf(() => full.use(samsungSysmmu()).probeUnit(node)),
      "ENOMEM",
    );
    assertEquals(full.memory.frames.liveBytes, 0);
  });
});
