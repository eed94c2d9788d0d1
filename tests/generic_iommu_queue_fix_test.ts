import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  type IommuFault,
  type IommuUnit,
  type Soc,
} from "../core/mod.ts";
import {
  CMD_BYTES,
  CMD_SYNC,
  CONS_ERR_SHIFT,
  CR0_CMDQEN,
  CR0_EVTQEN,
  genericHardwareOf,
  genericIommu,
  type GenericIommuHardware,
  GERROR_CMDQ_ERR,
  REG_CMDQ_BASE,
  REG_CMDQ_BASE_HI,
  REG_CMDQ_CONS,
  REG_CMDQ_PROD,
  REG_CR0,
  REG_EVTQ_BASE,
  REG_EVTQ_BASE_HI,
  REG_EVTQ_CONS,
  REG_EVTQ_PROD,
  REG_GERROR,
  REG_IDR1,
} from "../plugins/generic_iommu/mod.ts";

const RAM = 64 << 20;

function setup(): {
  soc: Soc;
  unit: IommuUnit;
  hw: GenericIommuHardware;
  faults: IommuFault[];
} {
  const soc = createSoc({ memory: { size: RAM } }).use(genericIommu());
  const unit = soc.probeUnit({
    name: "u",
    compatible: ["iommukit,generic-iommu"],
  });
  const hw = genericHardwareOf(unit);
  soc.createDomain(unit).attach(unit, [3]);
  const faults: IommuFault[] = [];
  soc.faults.onFault((f) => faults.push(f));
  return { soc, unit, hw, faults };
}

// Reprogram the event queue with EVTQEN clear, as software must.
function moveEventQueue(hw: GenericIommuHardware, lo: number): void {
  const cr0 = hw.readRegister(REG_CR0);
  hw.writeRegister(REG_CR0, cr0 & ~CR0_EVTQEN);
  hw.writeRegister(REG_EVTQ_BASE, lo);
  hw.writeRegister(REG_EVTQ_BASE_HI, 0);
  hw.writeRegister(REG_EVTQ_PROD, 0);
  hw.writeRegister(REG_EVTQ_CONS, 0);
  hw.writeRegister(REG_CR0, cr0);
}

// Reprogram the command queue with CMDQEN clear, as software must.
function moveCommandQueue(
  hw: GenericIommuHardware,
  lo: number,
  prod = 0,
): void {
  const cr0 = hw.readRegister(REG_CR0);
  hw.writeRegister(REG_CR0, cr0 & ~CR0_CMDQEN);
  hw.writeRegister(REG_CMDQ_BASE, lo);
  hw.writeRegister(REG_CMDQ_BASE_HI, 0);
  hw.writeRegister(REG_CMDQ_CONS, 0);
  hw.writeRegister(REG_CMDQ_PROD, prod);
}

Deno.test("generic iommu: register reads are unsigned and a queue LOG2SIZE above IDR1's acts as IDR1's", () => {
  const { hw } = setup();
  const idr1 = hw.readRegister(REG_IDR1);
  const cmdqs = (idr1 >>> 21) & 31;
  const evtqs = (idr1 >>> 16) & 31;
  for (const log2 of [31, 30, 20, cmdqs, 1, 0]) {
    moveCommandQueue(hw, 0x10000 | log2);
    hw.writeRegister(REG_CMDQ_PROD, 0xffffffff);
    assertEquals(hw.readRegister(REG_CMDQ_BASE), 0x10000 | log2);
    assertEquals(
      hw.readRegister(REG_CMDQ_PROD),
      (2 << Math.min(log2, cmdqs)) - 1,
    );
    moveEventQueue(hw, 0x20000 | log2);
    hw.writeRegister(REG_EVTQ_CONS, 0xffffffff);
    assertEquals(
      hw.readRegister(REG_EVTQ_CONS),
      (2 << Math.min(log2, evtqs)) - 1,
    );
    for (let off = 0; off < 0x100; off += 4) {
      const v = hw.readRegister(off);
      assert(
        Number.isInteger(v) && v >= 0 && v <= 0xffffffff,
        `register ${off} read ${v}`,
      );
    }
  }
});

Deno.test("generic iommu: the command queue wraps at the size IDR1 advertises", () => {
  const { soc, hw } = setup();
  const cmdqs = (hw.readRegister(REG_IDR1) >>> 21) & 31;
  // Exactly 2^cmdqs slots of harmless SYNCs (no MSI) end at the end of RAM.
  const base = RAM - (1 << cmdqs) * CMD_BYTES;
  for (let i = 0; i < 1 << cmdqs; i++) {
    soc.memory.write32(base + i * CMD_BYTES, CMD_SYNC);
  }
  moveCommandQueue(hw, base | 20);
  hw.writeRegister(REG_CR0, hw.readRegister(REG_CR0) | CR0_CMDQEN);
  const before = hw.counters()["commands"]!;
  const prod = (1 << cmdqs) + 44; // wrapped once, 44 into the second lap
  hw.writeRegister(REG_CMDQ_PROD, prod);
  assertEquals(hw.readRegister(REG_GERROR) & GERROR_CMDQ_ERR, 0);
  assertEquals(hw.readRegister(REG_CMDQ_CONS), prod);
  assertEquals(hw.counters()["commands"]! - before, prod);
});

Deno.test("generic iommu: a PROD left from a larger queue is read modulo the new size", () => {
  const { soc, hw } = setup();
  const base = soc.memory.frames.alloc(4096);
  // Slot 0: SYNC; slot 1: SYNC whose MSI overwrites slot 0 with an illegal
  // opcode, so running on past PROD shows up as CMDQ_ERR.
  soc.memory.write32(base, CMD_SYNC);
  soc.memory.write32(base + CMD_BYTES, CMD_SYNC);
  soc.memory.write32(base + CMD_BYTES + 4, 0xff);
  soc.memory.write32(base + CMD_BYTES + 8, base);
  moveCommandQueue(hw, base | 8, 0x100); // full 256-entry queue
  hw.writeRegister(REG_CMDQ_BASE, base | 1); // now 2 entries: PROD = CONS
  hw.writeRegister(REG_CR0, hw.readRegister(REG_CR0) | CR0_CMDQEN);
  assertEquals(hw.readRegister(REG_GERROR) & GERROR_CMDQ_ERR, 0);
  assertEquals(hw.readRegister(REG_CMDQ_CONS) >>> CONS_ERR_SHIFT, 0);
  assertEquals(hw.readRegister(REG_CMDQ_CONS), 0);
});
