import { assert, assertEquals } from "@std/assert";
import { createSoc, IOMMU_READ } from "../core/mod.ts";
import {
  genericHardwareOf,
  genericIommu,
  REG_IDR5,
} from "../plugins/generic_iommu/mod.ts";

function rig(outputBits: number) {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(
    genericIommu({ outputBits }),
  );
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  return { soc, unit, hw: genericHardwareOf(unit) };
}

Deno.test("generic cmdq: IDR5.OAS advertises the largest encodable output size not above the unit's", () => {
  const sizes = [32, 36, 40, 42, 44, 48];
  for (let bits = 32; bits <= 48; bits++) {
    const { hw } = rig(bits);
    const idr5 = hw.readRegister(REG_IDR5);
    assertEquals(idr5 & (1 << 4), 1 << 4, "GRAN4K");
    const advertised = sizes[idr5 & 7]!;
    assert(advertised <= bits, `${bits} bits advertise ${advertised}`);
    assertEquals(advertised, sizes.filter((s) => s <= bits).at(-1), `${bits}`);
  }
  // 38 bits: OAS says 36, and a page at 2^36 (inside the unit's size) maps.
  const r = rig(38);
  assertEquals(r.hw.readRegister(REG_IDR5) & 7, 1);
  const d = r.soc.createDomain(r.unit);
  d.map(0x1000, 2 ** 36, 4096, IOMMU_READ);
});
