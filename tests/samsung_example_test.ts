import { assertEquals } from "@std/assert";
import { runExynos4Mfc } from "../examples/exynos4_mfc.ts";

Deno.test("examples/exynos4_mfc.ts: MFC output reaches FIMD intact through two IOVA spaces", () => {
  const lines: string[] = [];
  const r = runExynos4Mfc((l) => lines.push(l));
  assertEquals(r.bytesVerified, 3 * (256 << 10));
  assertEquals(r.faultAfterUnmap, true);
  // FLPD flush (3) + power down (2) + power up (5) on each MFC unit;
  // FLPD flush (3) + fault clear (2) on FIMD's.
  assertEquals(r.registerWrites, {
    sysmmu_mfc_l: 10,
    sysmmu_mfc_r: 10,
    sysmmu_fimd0: 5,
  });
  assertEquals(
    lines.some((l) => l.includes("FIMD write attempt: permission")),
    true,
  );
  assertEquals(
    lines.some((l) => /sysmmu_fimd0: [1-9]\d* TLB hits/.test(l)),
    true,
  );
});
