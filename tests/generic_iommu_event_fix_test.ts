// F_WALK_EABT is recorded whatever CD.R says (CD.R / STE.S2R gate the
// translation faults only), and its record carries CLASS 1 (a translation
// table fetch) and the fetch address; found by a review against the
// SMMUv3 fact sheet.
import { assertEquals } from "@std/assert";
import { ACCESS_READ, createSoc } from "../core/mod.ts";
import {
  CD_HI_R,
  type GenericDomainOps,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
} from "../plugins/generic_iommu/mod.ts";

Deno.test("generic-iommu: a walk abort is recorded with CLASS 1 even with CD.R clear; a translation fault is not", () => {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const mem = soc.memory;
  const d = soc.createDomain(unit);
  d.attach(unit, [3]);
  const cd = (d.ops as GenericDomainOps).contextDescriptor;
  mem.write32(cd + 4, mem.read32(cd + 4) & ~CD_HI_R); // CD.R = 0
  drv.commands.cfgiSte(3);
  drv.commands.sync();
  // A level-0 table descriptor pointing outside RAM: the fetch aborts.
  mem.write32(d.ops.rootTable, 0x7000_0003);
  assertEquals(hw.translate(3, 0x1000, ACCESS_READ), -1);
  const events = drv.drainEvents();
  assertEquals(events.map((e) => e.kind), ["walk-abort"]);
  assertEquals(events[0]!.address, 0x7000_0000);
  // The raw record in the queue: CLASS (dword1 bits 41:40) is 1.
  const q = drv.events;
  let classes: number[] = [];
  for (let i = 0; i < 1 << q.log2Size; i++) {
    const at = q.base + i * 32;
    if ((mem.read32(at) & 0xff) === 0x0b) {
      classes = [...classes, (mem.read32(at + 12) >>> 8) & 3];
    }
  }
  assertEquals(classes, [1]);
  // A translation fault with CD.R clear is not recorded.
  mem.write32(d.ops.rootTable, 0);
  drv.commands.tlbiAll(); // the walk caches forget the old descriptor
  drv.commands.sync();
  assertEquals(hw.translate(3, 0x1000, ACCESS_READ), -1);
  assertEquals(drv.drainEvents(), []);
});
