import { assertEquals } from "@std/assert";
import { IOMMU_READ, IOMMU_WRITE } from "../core/mod.ts";
import { loadPlatform } from "../platforms/mod.ts";
import {
  setMasterPower,
  type SysmmuHardware,
} from "../plugins/samsung_sysmmu/mod.ts";

Deno.test("the built-in Exynos4210 device tree probes twelve v3.3 System MMUs", () => {
  const p = loadPlatform("exynos4210");
  assertEquals(p.units.length, 12);
  for (const u of p.units) {
    const hw = u.unit.hardware as SysmmuHardware;
    assertEquals([u.plugin, hw.version.major, hw.version.minor], [
      "samsung-sysmmu",
      3,
      3,
    ]);
    assertEquals(hw.readRegister(0x34), 0x30600000);
  }
  // No domain attached yet: every System MMU is disabled (identity).
  assertEquals(p.soc.unprotectedMasters().length, 10);

  const mfc = p.master("codec");
  const left = p.unit("sysmmu@13620000").unit;
  const right = p.unit("sysmmu@13630000").unit;
  const d = p.soc.createDomain(left);
  d.attach(left);
  d.attach(right);
  assertEquals(
    p.soc.unprotectedMasters().some((m) => m.name === mfc.name),
    false,
  );
  const buf = p.soc.memory.frames.alloc(0x10000);
  d.map(0x1000_0000, buf, 0x10000, IOMMU_READ | IOMMU_WRITE);
  mfc.master.port("left").writeBytes(0x1000_0020, new Uint8Array([5, 6, 7]));
  assertEquals([...mfc.master.port("right").readBytes(0x1000_0020, 3)], [
    5,
    6,
    7,
  ]);
  setMasterPower(mfc.master, false);
  assertEquals(
    [left, right].map((u) => (u.hardware as SysmmuHardware).powered),
    [false, false],
  );
});
