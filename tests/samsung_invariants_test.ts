import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { IommuError } from "../core/mod.ts";
import { PTE_V1, PTE_V5 } from "../plugins/samsung_sysmmu/mod.ts";
import { RAM_BASE, rig, RW, V3_3, V5_0 } from "./support/samsung.ts";

// Random maps and unmaps over a 4 MiB window; after every step the level-1
// table, the level-2 tables and the free-entry counters must agree with
// each other and with the leaves decoded from RAM.
const SIZES = [0x1000, 0x10000, 0x100000];
const WINDOW = 0x1000_0000;

const op = fc.record({
  unmap: fc.boolean(),
  size: fc.constantFrom(...SIZES),
  slot: fc.integer({ min: 0, max: 3 }),
  index: fc.integer({ min: 0, max: 255 }),
  count: fc.integer({ min: 1, max: 20 }),
});

for (
  const [label, version, fmt] of [["v3.3", V3_3, PTE_V1], [
    "v5.0",
    V5_0,
    PTE_V5,
  ]] as const
) {
  Deno.test(`${label}: level 1, level 2 and free counters stay consistent`, () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const r = rig({ version }, 1, { base: RAM_BASE, size: 64 << 20 });
        const mem = r.soc.memory;
        const baseline = mem.frames.liveBytes;
        for (const o of ops) {
          const align = o.size / 0x1000;
          const idx = Math.floor(o.index / align) * align;
          const iova = WINDOW + o.slot * 0x100000 + idx * 0x1000;
          const bytes = Math.min(
            o.count * o.size,
            WINDOW + 4 * 0x100000 - iova,
          );
          try {
            if (o.unmap) r.domain.unmap(iova, bytes);
            else {r.domain.map(
                iova,
                RAM_BASE + (8 << 20) + (iova - WINDOW),
                bytes,
                RW,
              );}
          } catch (e) {
            if (!(e instanceof IommuError)) throw e;
            if (!["EEXIST", "EINVAL"].includes(e.kind)) throw e;
          }
          check();
        }
        function check(): void {
          let tables = 0;
          for (let slot = 0x100; slot < 0x104; slot++) {
            const e = mem.read32(r.ops.rootTable + slot * 4);
            const l2 = r.ops.l2Table(slot);
            if (l2 >= 0) {
              tables++;
              assertEquals(e, fmt.link(l2));
              let used = 0;
              for (let i = 0; i < 256; i++) {
                if (mem.read32(l2 + i * 4) !== 0) used++;
              }
              assertEquals(r.ops.freeEntries(slot), 256 - used);
            } else {
              assertEquals(e === r.driver.zeroLink || (e & 3) === 2, true);
              assertEquals(r.ops.freeEntries(slot), 0);
            }
          }
          // Every leaf translates to where the window maps it.
          for (const leaf of r.domain.leaves()) {
            assertEquals(leaf.pa, RAM_BASE + (8 << 20) + (leaf.iova - WINDOW));
          }
          assertEquals(
            mem.frames.liveBytes,
            baseline + tables * 1024,
          );
        }
      }),
      { numRuns: 60 },
    );
  });
}
