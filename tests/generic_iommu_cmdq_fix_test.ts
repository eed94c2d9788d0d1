import { assert, assertEquals } from "@std/assert";
import {
  ACCESS_READ,
  createSoc,
  type Domain,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuUnit,
  IotlbGather,
  type Soc,
} from "../core/mod.ts";
import {
  CERROR_ABT,
  CERROR_ILL,
  CMD_ATC_INV,
  CMD_PRI_RESP,
  CMD_RESUME,
  CMD_STALL_TERM,
  CMD_TLBI_EL2_ALL,
  CMD_TLBI_EL2_ASID,
  CMD_TLBI_EL2_VA,
  CMD_TLBI_EL2_VAA,
  CMD_TLBI_EL3_ALL,
  CMD_TLBI_EL3_VA,
  CMD_TLBI_NH_VA,
  CMD_TLBI_NH_VAA,
  CMD_TLBI_NSNH_ALL,
  CMD_TLBI_S12_VMALL,
  CMD_TLBI_S2_IPA,
  CONS_ERR_SHIFT,
  CR0_CMDQEN,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  type GenericIommuDriver,
  type GenericIommuHardware,
  type GenericIommuOptions,
  GERROR_CMDQ_ERR,
  REG_CMDQ_BASE,
  REG_CMDQ_BASE_HI,
  REG_CMDQ_CONS,
  REG_CMDQ_PROD,
  REG_CR0,
  REG_GERROR,
  REG_GERRORN,
  REG_IDR3,
  REG_IDR5,
} from "../plugins/generic_iommu/mod.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const MIB2 = 2 << 20;

interface Rig {
  soc: Soc;
  unit: IommuUnit;
  hw: GenericIommuHardware;
  drv: GenericIommuDriver;
}

function rig(options: GenericIommuOptions = {}): Rig {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(
    genericIommu({
      iotlb: { sets: 2048, ways: 4, replacement: "lru" },
      microTlb: false,
      ...options,
    }),
  );
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  return {
    soc,
    unit,
    hw: genericHardwareOf(unit),
    drv: genericDriverOf(unit),
  };
}

// A domain on `sid` with `pages` 4 KiB pages at `iova`, every page looked
// up once (so the IOTLB holds it), then unmapped behind the unit's back:
// until an invalidation reaches it, the unit still translates the stale
// entries from its IOTLB.
function staleRange(
  r: Rig,
  sid: number,
  iova: number,
  pages: number,
  blocks = false,
): { d: Domain; pa: number } {
  const d = r.soc.createDomain(r.unit);
  d.attach(r.unit, [sid]);
  // Frames are naturally aligned: a 2 MiB-aligned run for blocks, one
  // page past a boundary (never 2 MiB-aligned) otherwise.
  const pa = blocks
    ? r.soc.memory.frames.alloc(pages * 4096)
    : r.soc.memory.frames.alloc((pages + 1) * 4096) + 4096;
  d.map(iova, pa, pages * 4096, RW);
  for (let p = 0; p < pages; p++) {
    assertEquals(
      r.hw.translate(sid, iova + p * 4096, ACCESS_READ),
      pa + p * 4096,
    );
  }
  d.unmapNoSync(iova, pages * 4096, new IotlbGather());
  return { d, pa };
}

// Range-TLBI words as the fact sheet and SMMUv3 lay them out: NUM[16:12]
// and SCALE[24:20] in dword0, TG[11:10] in dword1 with the address.
function rangeTlbi(
  op: number,
  tag: number,
  addr: number,
  num: number,
  scale: number,
  tg = 1,
): [number, number, number, number] {
  return [
    op | (num << 12) | (scale << 20),
    tag,
    (addr % 2 ** 32) | (tg << 10),
    Math.floor(addr / 2 ** 32),
  ];
}

function consErr(hw: GenericIommuHardware): number {
  return (hw.readRegister(REG_CMDQ_CONS) >>> CONS_ERR_SHIFT) & 0x7f;
}

Deno.test("generic cmdq: a range TLBI_NH_VA covers (NUM + 1) * 2^SCALE pages, as IDR3.RIL advertises", () => {
  const r = rig();
  assertEquals((r.hw.readRegister(REG_IDR3) >>> 10) & 1, 1);
  const X = 0x1_0000_0000;
  // 16 MiB of 2 MiB blocks: eight IOTLB entries.
  const { d, pa } = staleRange(r, 1, X, 4096, true);
  // NUM = 2, SCALE = 10: 3 * 1024 pages = 12 MiB, the first six blocks.
  r.drv.commands.push(
    ...rangeTlbi(CMD_TLBI_NH_VA, d.ops.contextId << 16, X, 2, 10),
  );
  r.drv.commands.sync();
  for (let b = 0; b < 8; b++) {
    const last = X + b * MIB2 + MIB2 - 4096;
    const want = b < 6 ? -1 : pa + b * MIB2 + MIB2 - 4096;
    assertEquals(r.hw.translate(1, last, ACCESS_READ), want, `block ${b}`);
  }
  // NUM = 0, SCALE = 12: 4096 pages, the whole range (the reviewer's case).
  r.drv.commands.push(
    ...rangeTlbi(CMD_TLBI_NH_VA, d.ops.contextId << 16, X, 0, 12),
  );
  r.drv.commands.sync();
  assertEquals(r.hw.translate(1, X + 4095 * 4096, ACCESS_READ), -1);
});

Deno.test("generic cmdq: a TLBI_NH_VA without TG invalidates one page", () => {
  const r = rig();
  const { d, pa } = staleRange(r, 1, 0x40_0000, 4);
  // NUM and SCALE are ignored without TG.
  r.drv.commands.push(
    ...rangeTlbi(CMD_TLBI_NH_VA, d.ops.contextId << 16, 0x40_1000, 31, 31, 0),
  );
  r.drv.commands.sync();
  assertEquals(r.hw.translate(1, 0x40_1000, ACCESS_READ), -1);
  assertEquals(r.hw.translate(1, 0x40_2000, ACCESS_READ), pa + 0x2000);
  assertEquals(r.hw.translate(1, 0x40_0000, ACCESS_READ), pa);
});

Deno.test("generic cmdq: the driver's range invalidations drop exactly the IOTLB entries of the range", () => {
  for (const stage of [1, 2] as const) {
    for (
      const [lead, n] of [[0, 1], [3, 31], [5, 32], [1, 33], [7, 1000], [
        0,
        1024,
      ], [9, 1537]] as const
    ) {
      const r = rig({ stage });
      const base = 0x100_0000;
      const total = 1600;
      const d = r.soc.createDomain(r.unit);
      d.attach(r.unit, [1]);
      const pa = r.soc.memory.frames.alloc((total + 1) * 4096) + 4096;
      d.map(base, pa, total * 4096, RW);
      for (let p = 0; p < total; p++) {
        r.hw.translate(1, base + p * 4096, ACCESS_READ);
      }
      assertEquals(r.hw.iotlb.size, total);
      const start = base + lead * 4096;
      r.drv.invalidateRange(
        d.ops.contextId,
        start + 0x10,
        start + n * 4096 - 1,
      );
      const left = r.hw.iotlb.entries().map((e) => (e.iova - base) / 4096);
      const want: number[] = [];
      for (let p = 0; p < total; p++) {
        if (p < lead || p >= lead + n) want.push(p);
      }
      assertEquals(
        left.sort((a, b) => a - b),
        want,
        `stage ${stage}, ${lead}+${n}`,
      );
    }
  }
});

Deno.test("generic cmdq: a command queue slot outside RAM stops the queue with CERROR_ABT", () => {
  const { hw } = rig();
  const irqs: string[] = [];
  hw.onInterrupt((line) => irqs.push(line));
  const cr0 = hw.readRegister(REG_CR0);
  hw.writeRegister(REG_CR0, cr0 & ~CR0_CMDQEN);
  hw.writeRegister(REG_CMDQ_BASE, 0x7000_0000 | 4); // no RAM there
  hw.writeRegister(REG_CMDQ_BASE_HI, 0);
  hw.writeRegister(REG_CMDQ_CONS, 0);
  hw.writeRegister(REG_CMDQ_PROD, 0);
  hw.writeRegister(REG_CR0, cr0);
  hw.writeRegister(REG_CMDQ_PROD, 1);
  assertEquals(consErr(hw), CERROR_ABT);
  assertEquals(hw.readRegister(REG_CMDQ_CONS) & 31, 0);
  assertEquals(hw.readRegister(REG_GERROR) & GERROR_CMDQ_ERR, GERROR_CMDQ_ERR);
  assertEquals(irqs, ["gerror"]);
  assertEquals(hw.counters()["commands.errors"], 1);
  // An illegal command in RAM still reports CERROR_ILL.
  const r = rig();
  r.drv.commands.push(0x7f, 0, 0, 0);
  try {
    r.drv.commands.sync();
  } catch {
    // EIO: checked through the register below.
  }
  assertEquals(consErr(r.hw), CERROR_ILL);
});

Deno.test("generic cmdq: TLBI_NSNH_ALL drops every context's entries", () => {
  for (const stage of [1, 2] as const) {
    const r = rig({ stage });
    staleRange(r, 1, 0x40_0000, 2);
    staleRange(r, 2, 0x80_0000, 2);
    r.drv.commands.push(CMD_TLBI_NSNH_ALL, 0, 0, 0);
    r.drv.commands.sync();
    assertEquals(r.hw.iotlb.size, 0, `stage ${stage}`);
    assertEquals(r.hw.translate(1, 0x40_0000, ACCESS_READ), -1);
    assertEquals(r.hw.translate(2, 0x80_1000, ACCESS_READ), -1);
  }
});

Deno.test("generic cmdq: TLBI_NH_VAA invalidates a range in every context on a stage-1 unit and is illegal on a stage-2 unit", () => {
  const r = rig({ stage: 1 });
  const a = staleRange(r, 1, 0x40_0000, 4);
  const b = staleRange(r, 2, 0x40_0000, 4);
  assert(a.d.ops.contextId !== b.d.ops.contextId);
  // Pages 1 and 2 of every context; the ASID field is ignored.
  r.drv.commands.push(
    ...rangeTlbi(CMD_TLBI_NH_VAA, 0x7777 << 16, 0x40_1000, 1, 0),
  );
  r.drv.commands.sync();
  for (const [sid, pa] of [[1, a.pa], [2, b.pa]]) {
    assertEquals(r.hw.translate(sid!, 0x40_0000, ACCESS_READ), pa);
    assertEquals(r.hw.translate(sid!, 0x40_1000, ACCESS_READ), -1);
    assertEquals(r.hw.translate(sid!, 0x40_2000, ACCESS_READ), -1);
    assertEquals(r.hw.translate(sid!, 0x40_3000, ACCESS_READ), pa! + 0x3000);
  }
  const s2 = rig({ stage: 2 });
  s2.drv.commands.push(CMD_TLBI_NH_VAA, 0, 0, 0);
  try {
    s2.drv.commands.sync();
  } catch {
    // EIO: checked through the register below.
  }
  assertEquals(consErr(s2.hw), CERROR_ILL);
});

Deno.test("generic cmdq: TLBI_S12_VMALL and TLBI_S2_IPA act on one VMID of a stage-2 unit and are illegal on a stage-1 unit", () => {
  const r = rig({ stage: 2 });
  const a = staleRange(r, 1, 0x40_0000, 4);
  const b = staleRange(r, 2, 0x40_0000, 4);
  const va = a.d.ops.contextId;
  const vb = b.d.ops.contextId;
  assert(va !== vb);
  // S2_IPA: VMID in dword0[47:32], pages 2 and 3 of VMID a only.
  r.drv.commands.push(...rangeTlbi(CMD_TLBI_S2_IPA, va, 0x40_2000, 1, 0));
  r.drv.commands.sync();
  assertEquals(r.hw.translate(1, 0x40_1000, ACCESS_READ), a.pa + 0x1000);
  assertEquals(r.hw.translate(1, 0x40_2000, ACCESS_READ), -1);
  assertEquals(r.hw.translate(1, 0x40_3000, ACCESS_READ), -1);
  assertEquals(r.hw.translate(2, 0x40_3000, ACCESS_READ), b.pa + 0x3000);
  // S12_VMALL: every entry of VMID b, none of a.
  r.drv.commands.push(CMD_TLBI_S12_VMALL, vb, 0, 0);
  r.drv.commands.sync();
  assertEquals(r.hw.translate(2, 0x40_0000, ACCESS_READ), -1);
  assertEquals(r.hw.translate(1, 0x40_0000, ACCESS_READ), a.pa);
  for (const op of [CMD_TLBI_S12_VMALL, CMD_TLBI_S2_IPA]) {
    const s1 = rig({ stage: 1 });
    s1.drv.commands.push(op, 0, 0, 0);
    try {
      s1.drv.commands.sync();
    } catch {
      // EIO: checked through the registers below.
    }
    assertEquals(consErr(s1.hw), CERROR_ILL, `opcode ${op}`);
    assertEquals(s1.hw.readRegister(REG_GERROR) & GERROR_CMDQ_ERR, 1);
    assertEquals(s1.hw.readRegister(REG_GERRORN), 0);
  }
});

Deno.test("generic cmdq: EL2/EL3 TLBIs, ATC_INV, PRI_RESP, RESUME and STALL_TERM complete as no-ops", () => {
  for (const stage of [1, 2] as const) {
    const r = rig({ stage });
    const { pa } = staleRange(r, 1, 0x40_0000, 2);
    for (
      const op of [
        CMD_TLBI_EL3_ALL,
        CMD_TLBI_EL3_VA,
        CMD_TLBI_EL2_ALL,
        CMD_TLBI_EL2_ASID,
        CMD_TLBI_EL2_VA,
        CMD_TLBI_EL2_VAA,
        CMD_ATC_INV,
        CMD_PRI_RESP,
        CMD_RESUME,
        CMD_STALL_TERM,
      ]
    ) {
      r.drv.commands.push(op, 0, 0, 0);
      r.drv.commands.sync();
      assertEquals(consErr(r.hw), 0, `opcode ${op}`);
    }
    assertEquals(r.hw.readRegister(REG_GERROR), 0);
    // Nothing was invalidated: the stale page still translates.
    assertEquals(r.hw.translate(1, 0x40_1000, ACCESS_READ), pa + 0x1000);
  }
});

Deno.test("generic cmdq: IDR5.OAS advertises the largest encodable output size not above the unit's", () => {
  const sizes = [32, 36, 40, 42, 44, 48];
  for (let bits = 32; bits <= 48; bits++) {
    const { hw } = rig({ outputBits: bits });
    const idr5 = hw.readRegister(REG_IDR5);
    assertEquals(idr5 & (1 << 4), 1 << 4, "GRAN4K");
    const advertised = sizes[idr5 & 7]!;
    assert(advertised <= bits, `${bits} bits advertise ${advertised}`);
    assertEquals(advertised, sizes.filter((s) => s <= bits).at(-1), `${bits}`);
  }
  // 38 bits: OAS says 36, and a page at 2^36 (inside the unit's size) maps.
  const r = rig({ outputBits: 38 });
  assertEquals(r.hw.readRegister(REG_IDR5) & 7, 1);
  const d = r.soc.createDomain(r.unit);
  d.map(0x1000, 2 ** 36, 4096, IOMMU_READ);
});
