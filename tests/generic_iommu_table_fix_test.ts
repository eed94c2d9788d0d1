/**
 * Fixes to the generic IOMMU's LPAE page table and hardware walker:
 * - a map whose protection grants neither read nor write is refused
 *   (`EINVAL`, nothing installed) instead of installing a leaf that stage 1
 *   reads as readable;
 * - a block descriptor's output address is masked to the block size before
 *   the IOVA's offset is added (its low address bits are RES0), in the
 *   hardware walk and in the table's `iovaToPhys` / `leaves`.
 */
import { assertEquals, assertThrows } from "@std/assert";
import {
  ACCESS_READ,
  ACCESS_WRITE,
  createSoc,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  PhysicalMemory,
  type TlbOptions,
} from "../core/mod.ts";
import {
  descAddress,
  type GenericDomainOps,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  LpaePageTable,
  tableIndex,
} from "../plugins/generic_iommu/mod.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const MIB = 2 ** 20;
const MIB2 = 2 ** 21;
const GIB = 2 ** 30;

Deno.test("LpaePageTable: a protection without READ or WRITE maps nothing (EINVAL)", () => {
  for (const stage of [1, 2] as const) {
    const ram = new PhysicalMemory({ base: 0, size: 16 * MIB });
    const pt = new LpaePageTable(ram, {
      inputBits: 48,
      outputBits: 48,
      stage,
    });
    const frames = ram.frames.liveBlocks;
    const bad = [
      0,
      IOMMU_NOEXEC,
      IOMMU_CACHE,
      IOMMU_PRIV,
      IOMMU_MMIO,
      IOMMU_NOEXEC | IOMMU_CACHE | IOMMU_PRIV | IOMMU_MMIO,
      64, // no such bit
      RW | 64,
      2 ** 32 + IOMMU_READ,
      -1,
      1.5,
      NaN,
    ];
    for (const prot of bad) {
      const what = `stage ${stage} prot ${prot}`;
      const e = assertThrows(
        () => pt.mapRange(0x1000, 0x20_0000, 4096, 4, prot),
        IommuError,
        undefined,
        what,
      );
      assertEquals(e.kind, "EINVAL", what);
      const e2 = assertThrows(
        () =>
          pt.map({
            count: 1,
            iova: new Float64Array([MIB2]),
            pa: new Float64Array([MIB2]),
            pageSize: new Float64Array([MIB2]),
            pages: new Float64Array([1]),
          }, prot),
        IommuError,
        undefined,
        what,
      );
      assertEquals(e2.kind, "EINVAL", what);
      // Nothing changed: no leaf, no table, no frame.
      assertEquals(pt.leaves(), [], what);
      assertEquals(pt.iovaToPhys(0x1000), -1, what);
      assertEquals(pt.iovaToPhys(MIB2), -1, what);
      assertEquals(pt.tableCount, 1, what);
      assertEquals(ram.frames.liveBlocks, frames, what);
    }
    // Read-only and write-only still map (stage 1 reads a write-only leaf
    // as read-write: its AP bits cannot express write-only).
    pt.mapRange(0x1000, 0x20_0000, 4096, 1, IOMMU_READ | IOMMU_NOEXEC);
    pt.mapRange(0x2000, 0x30_0000, 4096, 1, IOMMU_WRITE);
    const leaves = pt.leaves();
    assertEquals(leaves.map((l) => [l.iova, l.pa]), [
      [0x1000, 0x20_0000],
      [0x2000, 0x30_0000],
    ]);
    assertEquals(leaves[0]!.prot & RW, IOMMU_READ);
    assertEquals(leaves[1]!.prot & RW, stage === 1 ? RW : IOMMU_WRITE);
    pt.free();
  }
});

// Set the output-address bits `stray` (inside the block, RES0) in the block
// descriptor mapping `iova` at `level` of `pt`.
function dirtyBlock(
  ram: PhysicalMemory,
  pt: LpaePageTable,
  iova: number,
  level: number,
  stray: number,
): void {
  let table = pt.root;
  for (let l = pt.startLevel; l < level; l++) {
    const at = table + tableIndex(iova, l) * 8;
    table = descAddress(ram.read32(at), ram.read32(at + 4));
  }
  const at = table + tableIndex(iova, level) * 8;
  const lo = ram.read32(at);
  assertEquals(lo & 3, 1, "a block descriptor");
  ram.write32(at, (lo | stray) >>> 0);
}

Deno.test("LpaePageTable: a block's low address bits do not move iovaToPhys or leaves outside it", () => {
  const ram = new PhysicalMemory({ base: 0, size: 16 * MIB });
  const pt = new LpaePageTable(ram, {
    inputBits: 48,
    outputBits: 48,
    stage: 1,
  });
  const I2 = 0x4000_0000, P2 = 0x40_0000;
  const I1 = 4 * GIB, P1 = 2 * GIB;
  pt.mapRange(I2, P2, MIB2, 1, RW);
  pt.mapRange(I1, P1, GIB, 1, RW);
  dirtyBlock(ram, pt, I2, 2, 0x1000); // bit 12
  dirtyBlock(ram, pt, I1, 1, 0x3ff0_0000); // bits 29:20
  assertEquals(pt.iovaToPhys(I2), P2);
  assertEquals(pt.iovaToPhys(I2 + 0x1000), P2 + 0x1000);
  // Unmasked, these read 0x60_0000 and 0x60_0fff: past the block's end.
  assertEquals(pt.iovaToPhys(I2 + 0x1f_f000), P2 + 0x1f_f000);
  assertEquals(pt.iovaToPhys(I2 + MIB2 - 1), P2 + MIB2 - 1);
  assertEquals(pt.iovaToPhys(I1 + GIB - 1), P1 + GIB - 1);
  assertEquals(pt.iovaToPhys(I1 + 0x10_0000), P1 + 0x10_0000);
  assertEquals(
    pt.leaves().map((l) => [l.iova, l.pa, l.pageSize]),
    [[I2, P2, MIB2], [I1, P1, GIB]],
  );
});

const WALK_CACHES: [string, readonly TlbOptions[] | undefined][] = [
  ["default walk caches", undefined],
  ["no walk cache", [
    { ways: 0, sets: 0 },
    { ways: 0, sets: 0 },
    { ways: 0, sets: 0 },
  ]],
];

Deno.test("generic IOMMU hardware: a block's low address bits do not move a translation outside it", () => {
  for (const [name, walkCache] of WALK_CACHES) {
    for (const stage of [1, 2] as const) {
      for (const microTlb of [false, true]) {
        const what = `${name}, stage ${stage}, micro TLB ${microTlb}`;
        const soc = createSoc({ memory: { size: 64 << 20 } }).use(
          genericIommu({
            stage,
            microTlb,
            ...(walkCache === undefined ? {} : { walkCache }),
          }),
        );
        const unit = soc.probeUnit({
          name: "smmu",
          compatible: ["iommukit,generic-iommu"],
        });
        const drv = genericDriverOf(unit), hw = genericHardwareOf(unit);
        const d = soc.createDomain(unit);
        d.attach(unit, [1]);
        const I2 = 0x4000_0000, P2 = 0x40_0000;
        const I1 = 4 * GIB, P1 = 0;
        d.map(I2, P2, MIB2, RW);
        d.map(I1, P1, GIB, RW);
        const pt = (d.ops as GenericDomainOps).table;
        dirtyBlock(soc.memory, pt, I2, 2, 0x1000);
        dirtyBlock(soc.memory, pt, I1, 1, 0x3000_0000);
        drv.commands.tlbiAll();
        drv.commands.sync();
        // Each offset first through a walk (after an invalidation), then
        // again through whatever the walk filled.
        const cases: [number, number][] = [
          [I2 + 0x1f_f000, P2 + 0x1f_f000], // unmasked: 0x60_0000
          [I2 + 0x1000, P2 + 0x1000], // unmasked: 0x40_2000
          [I2 + MIB2 - 8, P2 + MIB2 - 8],
          [I1 + GIB - 4096, P1 + GIB - 4096],
          [I1 + 0x123_4000, P1 + 0x123_4000],
        ];
        for (const [iova, pa] of cases) {
          drv.commands.tlbiAll();
          drv.commands.sync();
          for (const access of [ACCESS_READ, ACCESS_WRITE, ACCESS_READ]) {
            assertEquals(
              hw.translate(1, iova, access),
              pa,
              `${what}: ${iova.toString(16)}`,
            );
          }
        }
        // Without an invalidation between them: the second offset of a
        // block comes from the entry the first filled.
        drv.commands.tlbiAll();
        drv.commands.sync();
        for (const [iova, pa] of cases) {
          assertEquals(hw.translate(1, iova, ACCESS_READ), pa, what);
        }
        assertEquals(d.iovaToPhys(I2 + 0x1f_f000), P2 + 0x1f_f000, what);
      }
    }
  }
});
