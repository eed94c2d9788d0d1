import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  type DeviceNode,
  deviceNodeFromSpec,
  FaultRouter,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuFault,
  type IommuPlugin,
  PhysicalMemory,
  Registry,
  Soc,
} from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";
import { flatIommu } from "./support/flat_iommu.ts";

const MiB = 0x10_0000;
const FLAT = "iommukit,flat-iommu";

Deno.test("createSoc builds memory, registry and fault router", () => {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 * MiB } });
  assert(soc instanceof Soc);
  assert(soc.memory instanceof PhysicalMemory);
  assertEquals([soc.memory.base, soc.memory.size], [0x4000_0000, 64 * MiB]);
  assert(soc.registry instanceof Registry);
  assert(soc.faults instanceof FaultRouter);
  assertEquals(soc.units(), []);
  assertEquals(soc.masters(), []);
  assertEquals(soc.domains(), []);
  assertEquals(soc.unprotectedMasters(), []);
});

Deno.test("createSoc reuses an existing PhysicalMemory and forwards memory errors", () => {
  const ram = new PhysicalMemory({ size: 16 * MiB });
  const soc = createSoc({ memory: ram });
  assert(soc.memory === ram);
  expectError(() => createSoc({ memory: { size: 1000 } }), "EINVAL", "0x3e8");
  expectError(
    () => createSoc({ memory: { base: 2 ** 48, size: MiB } }),
    "ERANGE",
  );
});

Deno.test("use chains, probeUnit takes a spec or a DeviceNode, unit lookups", () => {
  const soc = createSoc({ memory: { size: 64 * MiB } });
  assert(soc.use(flatIommu()) === soc);
  const a = soc.probeUnit({ name: "mmu0", compatible: [FLAT] });
  const node: DeviceNode = deviceNodeFromSpec({
    name: "mmu1",
    path: "/soc/mmu@1",
    compatible: [FLAT],
  });
  const b = soc.probeUnit(node);
  assert(soc.unit("mmu0") === a);
  assert(soc.unit("mmu1") === b);
  assertEquals(soc.units(), [a, b]);
  assert(soc.registry.bindings()[1]!.node === node);
  expectError(() => soc.unit("mmu2"), "ENOENT", "mmu2");
  expectError(() => soc.use(flatIommu()), "EEXIST", "flat-iommu");
  expectError(
    () => soc.probeUnit({ name: "x", compatible: ["nobody,home"] }),
    "ENODEV",
    "nobody,home",
  );
  expectError(
    () => soc.probeUnit({ name: "mmu0", compatible: [FLAT] }),
    "EEXIST",
    "mmu0",
  );
  assertEquals(soc.units().length, 2);
});

Deno.test("probe gets the soc's memory, and its reportFault feeds the soc's router", () => {
  const soc = createSoc({ memory: { size: 16 * MiB } });
  let reported: boolean | undefined;
  const plugin: IommuPlugin = {
    name: "spy",
    compatible: ["test,spy"],
    iommuCells: 0,
    probe(node, ctx) {
      assert(ctx.memory === soc.memory);
      const f: IommuFault = {
        unit: node.name,
        streamId: 0,
        iova: 0x1000,
        access: "read",
        reason: "translation",
      };
      reported = ctx.reportFault(f);
      return flatIommu().probe(node, ctx);
    },
  };
  soc.use(plugin).probeUnit({ name: "spy0", compatible: ["test,spy"] });
  assertEquals(reported, false);
  assertEquals(soc.faults.counters(), { faults: 1, unhandled: 1 });
  assertEquals(soc.faults.recent[0]!.unit, "spy0");
});

Deno.test("masters: addMaster, EEXIST for a duplicate name, master() ENOENT", () => {
  const soc = createSoc({ memory: { size: 16 * MiB } }).use(flatIommu());
  const unit = soc.probeUnit({ name: "mmu0", compatible: [FLAT] });
  const a = soc.addMaster({ name: "gpu", ports: [{ unit }] });
  const b = soc.addMaster({ name: "uart", ports: [{}] });
  assert(soc.master("gpu") === a);
  assertEquals(soc.masters(), [a, b]);
  expectError(
    () => soc.addMaster({ name: "gpu", ports: [{}] }),
    "EEXIST",
    "gpu",
  );
  expectError(() => soc.master("npu"), "ENOENT", "npu");
  expectError(() => soc.addMaster({ name: "bad", ports: [] }), "EINVAL", "bad");
  assertEquals(soc.masters().length, 2);
  (soc.masters() as unknown[]).length = 0; // a copy
  assertEquals(soc.masters().length, 2);
  assertEquals(soc.unprotectedMasters(), [b]);
});

Deno.test("domains: created, listed until freed; errors propagate", () => {
  const soc = createSoc({ memory: { size: 64 * MiB } }).use(flatIommu());
  const unit = soc.probeUnit({ name: "mmu0", compatible: [FLAT] });
  const d1 = soc.createDomain(unit);
  const d2 = soc.createDomain(unit, { pageSizes: [4096] });
  assertEquals(soc.domains(), [d1, d2]);
  assertEquals(d2.pageSizes, [4096]);
  d1.free();
  assertEquals(soc.domains(), [d2]);
  expectError(
    () => soc.createDomain(unit, { pageSizes: [8192] }),
    "EINVAL",
    "0x2000",
  );
  soc.memory.frames.failNth(1);
  expectError(() => soc.createDomain(unit), "ENOMEM");
  assertEquals(soc.domains(), [d2]);
});

Deno.test("end to end: DMA through a flat IOMMU lands in the mapped frame", () => {
  const soc = createSoc({ memory: { size: 64 * MiB } }).use(flatIommu());
  const unit = soc.probeUnit({ name: "mmu", compatible: [FLAT] });
  const dev = soc.addMaster({ name: "dma0", ports: [{ unit }] });
  const domain = soc.createDomain(unit);
  // Before attach, the unit has no domain: DMA faults.
  assertEquals(
    dev.port().write(0x1000, new Uint8Array([1]))?.reason,
    "translation",
  );
  domain.attach(unit);
  const buf = soc.memory.frames.alloc(4096);
  domain.map(0x1000, buf, 4096, IOMMU_READ | IOMMU_WRITE);
  dev.port().writeBytes(0x1010, new Uint8Array([1, 2, 3]));
  assertEquals(soc.memory.readBytes(buf + 0x10, 3), new Uint8Array([1, 2, 3]));
  assertEquals(dev.port().readBytes(0x1011, 2), new Uint8Array([2, 3]));
  domain.unmap(0x1000, 4096);
  expectError(() => dev.port().readBytes(0x1010, 1), "EFAULT", "0x1010");
  domain.detach(unit);
  domain.free();
  soc.memory.frames.free(buf);
  assertEquals(soc.memory.frames.liveBytes, 0, "nothing leaked");
});

Deno.test("node specs and page-size lists may be any array-like, and are copied", () => {
  const soc = createSoc({ memory: { size: 64 * MiB } }).use(flatIommu());
  // Array-likes without an iterator (as a plugin built from raw data may
  // pass) are read by index, not spread.
  const compatible = { length: 1, 0: FLAT } as unknown as readonly string[];
  const reg = [{ address: 0x1000_0000, size: 0x1000 }];
  const unit = soc.probeUnit({ name: "flat", compatible, reg });
  const node = soc.registry.bindings()[0]!.node;
  assertEquals(node.compatible, [FLAT]);
  // A later change to the spec does not reach the node.
  reg[0]!.address = 0;
  assertEquals(node.reg, [{ address: 0x1000_0000, size: 0x1000 }]);
  const pageSizes = { length: 1, 0: 4096 } as unknown as readonly number[];
  const like = { ...unit, caps: { ...unit.caps, pageSizes } };
  assertEquals(soc.createDomain(like).pageSizes, [4096]);
});

Deno.test("deviceNodeFromSpec refuses malformed specs with EINVAL", () => {
  const bad: [string, unknown][] = [
    ["must be an object", null],
    ["name must be a non-empty string", { name: "", compatible: [FLAT] }],
    ["compatible list must be an array", { name: "x" }],
    ["compatible entry 1 must be a string", {
      name: "x",
      compatible: [FLAT, 7],
    }],
    ["reg list must be an array", { name: "x", compatible: [FLAT], reg: {} }],
    ["reg entry 0 must be an object", { name: "x", compatible: [], reg: [1] }],
    [
      "reg entry 0 size must be a non-negative safe integer",
      { name: "x", compatible: [], reg: [{ address: 0, size: -1 }] },
    ],
    ["path must be a string", { name: "x", compatible: [], path: 1 }],
    ["props must be an object", { name: "x", compatible: [], props: "p" }],
  ];
  for (const [message, spec] of bad) {
    expectError(
      () => deviceNodeFromSpec(spec as never),
      "EINVAL",
      message,
    );
  }
});
