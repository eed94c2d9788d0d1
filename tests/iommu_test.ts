import { assert, assertEquals } from "@std/assert";
import {
  ACCESS_READ,
  ACCESS_WRITE,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_PROT_MASK,
  IOMMU_READ,
  IOMMU_WRITE,
} from "../core/mod.ts";

Deno.test("prot bits are distinct single bits and the mask is exactly their union", () => {
  const bits = [
    IOMMU_READ,
    IOMMU_WRITE,
    IOMMU_CACHE,
    IOMMU_NOEXEC,
    IOMMU_MMIO,
    IOMMU_PRIV,
  ];
  assertEquals(bits, [1, 2, 4, 8, 16, 32]);
  let union = 0;
  for (const b of bits) {
    assert((union & b) === 0, `bit ${b} repeats`);
    union |= b;
  }
  assertEquals(IOMMU_PROT_MASK, union);
});

Deno.test("access codes equal the prot bits they need, so prot & access tests them", () => {
  assertEquals(ACCESS_READ, IOMMU_READ);
  assertEquals(ACCESS_WRITE, IOMMU_WRITE);
  assertEquals(IOMMU_READ & ACCESS_WRITE, 0);
  assert(((IOMMU_READ | IOMMU_WRITE) & ACCESS_WRITE) !== 0);
});
