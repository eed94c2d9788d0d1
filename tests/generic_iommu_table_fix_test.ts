/**
 * Fixes to the generic IOMMU's LPAE page table and hardware walker:
 * - a map whose protection grants neither read nor write is refused
 *   (`EINVAL`, nothing installed) instead of installing a leaf that stage 1
 *   reads as readable.
 */
import { assertEquals, assertThrows } from "@std/assert";
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  PhysicalMemory,
} from "../core/mod.ts";
import { LpaePageTable } from "../plugins/generic_iommu/mod.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const MIB = 2 ** 20;
const MIB2 = 2 ** 21;

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
