// The stream-table entry and context-descriptor fields the model does not
// implement (the fact sheet's C_BAD_STE / C_BAD_CD conditions) were
// accepted and walked as if absent: a big-endian or 64 KiB-granule
// configuration was translated as little-endian 4 KiB. Found by a review
// against the SMMUv3 fact sheet.
import { assert, assertEquals } from "@std/assert";
import {
  ACCESS_READ,
  createSoc,
  IOMMU_READ,
  IOMMU_WRITE,
} from "../core/mod.ts";
import {
  type GenericDomainOps,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  STE_BYTES,
} from "../plugins/generic_iommu/mod.ts";

type Word = (ste: number, cd: number) => number;
/** A field change: the word it is in, the bits to set, the bits to clear. */
type Change = [name: string, word: Word, set: number, clear: number];

const CD_LO: Word = (_, cd) => cd;
const CD_HI: Word = (_, cd) => cd + 4;
const CD_TTB_HI: Word = (_, cd) => cd + 12;
const STE_W1: Word = (ste) => ste + 4;
const STE_W2: Word = (ste) => ste + 8;
const STE_VTCR: Word = (ste) => ste + 20;

const STAGE1: Change[] = [
  ["CD.A clear", CD_HI, 0, 1 << 14],
  ["CD.S set", CD_HI, 1 << 12, 0],
  ["CD.HA set", CD_HI, 1 << 11, 0],
  ["CD.HD set", CD_HI, 1 << 10, 0],
  ["CD.ENDI set", CD_LO, 1 << 15, 0],
  ["CD.TTB0 beyond the output size", CD_TTB_HI, 1 << 15, 0],
  ["STE.S1CDMAX 1", STE_W1, 1 << 27, 0],
  ["STE.S1STALLD set", STE_W2, 1 << 27, 0],
];
const STAGE2: Change[] = [
  ["STE.S2TG 64 KiB", STE_VTCR, 1 << 14, 3 << 14],
  ["STE.S2SL0 3", STE_VTCR, 3 << 6, 0],
  ["STE.S2ENDI set", STE_VTCR, 1 << 20, 0],
  ["STE.S2S set", STE_VTCR, 1 << 25, 0],
];

function attempt(stage: 1 | 2, change: Change | null): {
  pa: number;
  frame: number;
  events: string[];
} {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(
    genericIommu({ stage, outputBits: 40 }),
  );
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const drv = genericDriverOf(unit);
  const hw = genericHardwareOf(unit);
  const mem = soc.memory;
  const d = soc.createDomain(unit);
  d.attach(unit, [3]);
  const frame = mem.frames.alloc(4096);
  d.map(0x1000, frame, 4096, IOMMU_READ | IOMMU_WRITE);
  if (change !== null) {
    const [, word, set, clear] = change;
    const at = word(
      drv.streamTable + 3 * STE_BYTES,
      stage === 1 ? (d.ops as GenericDomainOps).contextDescriptor : 0,
    );
    mem.write32(at, ((mem.read32(at) & ~clear) | set) >>> 0);
    drv.commands.cfgiSte(3);
    drv.commands.tlbiAll();
    drv.commands.sync();
  }
  const pa = hw.translate(3, 0x1000, ACCESS_READ);
  return { pa, frame, events: drv.drainEvents().map((e) => e.kind) };
}

Deno.test("generic-iommu: unsupported STE / CD settings are C_BAD_STE / C_BAD_CD, not walked", async (t) => {
  for (const stage of [1, 2] as const) {
    const clean = attempt(stage, null);
    assertEquals(clean.pa, clean.frame, `stage ${stage}: the driver's own`);
    for (const change of stage === 1 ? STAGE1 : STAGE2) {
      await t.step(`stage ${stage}: ${change[0]}`, () => {
        const r = attempt(stage, change);
        assertEquals(r.pa, -1);
        const want = change[0].startsWith("CD")
          ? "bad-context"
          : "bad-stream-entry";
        assert(r.events.includes(want), JSON.stringify(r.events));
      });
    }
  }
});
