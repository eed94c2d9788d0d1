/**
 * How masters may be wired to units (one master per per-device unit, as the
 * Exynos binding says: "one System MMU can handle transactions from only one
 * peripheral device"), and what a port accepts as a DMA buffer.
 */
import { assertEquals } from "@std/assert";
import {
  createSoc,
  IOMMU_READ,
  IOMMU_WRITE,
  Master,
  type Soc,
} from "../core/mod.ts";
import { buildPlatform } from "../core/platform.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";
import {
  samsungSysmmu,
  setMasterPower,
} from "../plugins/samsung_sysmmu/mod.ts";
import { expectError } from "./support/assertions.ts";

const SYSMMU = "samsung,exynos-sysmmu";
const MB = 1 << 20;

function sysmmuSoc(): Soc {
  return createSoc({ memory: { base: 0x4000_0000, size: 64 * MB } })
    .use(samsungSysmmu())
    .use(genericIommu());
}

Deno.test("wiring: a second master behind a per-device unit is refused and nothing is added", () => {
  const soc = sysmmuSoc();
  const u = soc.probeUnit({ name: "sysmmu", compatible: [SYSMMU] });
  const a = soc.addMaster({ name: "a", ports: [{ unit: u }] });
  expectError(
    () => soc.addMaster({ name: "b", ports: [{ unit: u }] }),
    "EBUSY",
    "already serves master a",
  );
  assertEquals(soc.masters().map((m) => m.name), ["a"]);
  // The refused name is free and the unit still belongs to a alone: a master
  // on another unit can take the name.
  const v = soc.probeUnit({ name: "sysmmu2", compatible: [SYSMMU] });
  const b = soc.addMaster({ name: "b", ports: [{ unit: v }] });
  assertEquals(b.port().unit, v);
  // Refused for a master that has a good port first, too.
  expectError(
    () => soc.addMaster({ name: "c", ports: [{}, { unit: u }] }),
    "EBUSY",
  );
  // Built outside a Soc as well.
  expectError(
    () =>
      new Master({ name: "d", ports: [{ unit: v }] }, soc.memory, soc.faults),
    "EBUSY",
    "sysmmu2",
  );
  assertEquals(soc.masters().map((m) => m.name), ["a", "b"]);
  // Only a is behind u, so a's power-off leaves no other master untranslated.
  assertEquals(
    soc.masters().filter((m) => m.ports.some((p) => p.unit === u)),
    [a],
  );
  const d = soc.createDomain(u);
  d.attach(u);
  setMasterPower(a, false);
  setMasterPower(a, true);
  const pa = soc.memory.frames.alloc(4096);
  d.map(0x1000, pa, 4096, IOMMU_READ | IOMMU_WRITE);
  a.port().writeBytes(0x1008, new Uint8Array([9]));
  assertEquals(soc.memory.read8(pa + 8), 9);
});

Deno.test("wiring: one master keeps several per-device units, or one unit on two of its ports", () => {
  const soc = sysmmuSoc();
  const left = soc.probeUnit({ name: "mfc_l", compatible: [SYSMMU] });
  const right = soc.probeUnit({ name: "mfc_r", compatible: [SYSMMU] });
  const mfc = soc.addMaster({
    name: "mfc",
    ports: [{ name: "left", unit: left }, { name: "right", unit: right }],
  });
  const d = soc.createDomain(left);
  d.attach(left);
  d.attach(right);
  const pa = soc.memory.frames.alloc(4096);
  d.map(0x10_0000, pa, 4096, IOMMU_READ | IOMMU_WRITE);
  mfc.port("right").writeBytes(0x10_0004, new Uint8Array([7]));
  assertEquals(mfc.port("left").readBytes(0x10_0004, 1), new Uint8Array([7]));
  // The same unit listed twice for one master (the Linux binding skips the
  // duplicate): still that master's unit alone.
  const g2d = soc.probeUnit({ name: "g2d", compatible: [SYSMMU] });
  const m = soc.addMaster({
    name: "g2d",
    ports: [{ name: "rd", unit: g2d }, { name: "wr", unit: g2d }],
  });
  assertEquals(m.ports.map((p) => p.unit), [g2d, g2d]);
  expectError(
    () => soc.addMaster({ name: "x", ports: [{ unit: g2d }] }),
    "EBUSY",
    "g2d",
  );
  // Central units keep serving many masters.
  const smmu = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  soc.addMaster({ name: "s1", ports: [{ unit: smmu, streamIds: [1] }] });
  soc.addMaster({ name: "s2", ports: [{ unit: smmu, streamIds: [2] }] });
});

Deno.test("wiring: buildPlatform refuses two masters naming one per-device unit", () => {
  const mmu = { name: "mmu", compatible: [SYSMMU], iommuCells: 0 };
  const base = (devices: unknown[]) => ({
    memory: { base: "0x40000000", size: "0x4000000" },
    devices,
  });
  const plugins = () => [samsungSysmmu(), genericIommu()];
  expectError(
    () =>
      buildPlatform(
        base([
          mmu,
          { name: "a", iommus: [{ iommu: "mmu" }] },
          { name: "b", iommus: [{ iommu: "mmu" }] },
        ]) as never,
        { plugins: plugins() },
      ),
    "EBUSY",
    "/b",
  );
  // One master naming it twice is accepted, and both ports are listed.
  const p = buildPlatform(
    base([mmu, {
      name: "a",
      iommus: [{ iommu: "mmu" }, { iommu: "mmu" }],
    }]) as never,
    { plugins: plugins() },
  );
  assertEquals(p.units[0]!.masters, ["a/port0", "a/port1"]);
});

Deno.test("Port.read / Port.write take only a Uint8Array and change nothing otherwise", () => {
  const soc = createSoc({ memory: { base: 0, size: MB } });
  const port = soc.addMaster({ name: "m", ports: [{}] }).port();
  soc.memory.writeBytes(0x1000, new Uint8Array([1, 2, 3, 4]));
  // deno-lint-ignore no-explicit-any
  const any = (v: unknown): any => v;
  const digest = soc.memory.digest();
  for (
    const bad of [
      new Uint16Array([0x1234, 0x5678]),
      "AB",
      [1, 2],
      new Int8Array(2),
      new DataView(new ArrayBuffer(2)),
    ]
  ) {
    expectError(() => port.write(0x2000, any(bad)), "EINVAL", "Uint8Array");
    expectError(
      () => port.writeBytes(0x2000, any(bad)),
      "EINVAL",
      "Uint8Array",
    );
  }
  assertEquals(soc.memory.digest(), digest);
  const u16 = new Uint16Array(2);
  expectError(() => port.read(0x1000, any(u16)), "EINVAL", "Uint8Array");
  assertEquals(u16, new Uint16Array(2));
  const arr = [9, 9];
  expectError(() => port.read(0x1000, any(arr)), "EINVAL", "Uint8Array");
  assertEquals(arr, [9, 9]);
  assertEquals(port.counters().accesses, 0);
  // A Uint8Array view at an offset, and a subclass, still work.
  const backing = new Uint8Array(8);
  const view = backing.subarray(2, 6);
  assertEquals(port.read(0x1000, view), null);
  assertEquals([...backing], [0, 0, 1, 2, 3, 4, 0, 0]);
  class Tagged extends Uint8Array {}
  assertEquals(port.write(0x3000, new Tagged([5, 6])), null);
  assertEquals(soc.memory.readBytes(0x3000, 2), new Uint8Array([5, 6]));
});
