import { assert, assertEquals } from "@std/assert";
import {
  type DeviceNode,
  deviceNodeFromSpec,
  IommuError,
  type IommuPlugin,
  type IommuUnit,
  PhysicalMemory,
  type ProbeContext,
  Registry,
} from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";
import { flatIommu } from "./support/flat_iommu.ts";

const FLAT = "iommukit,flat-iommu";

function ctx(): ProbeContext {
  return {
    memory: new PhysicalMemory({ size: 16 << 20 }),
    reportFault: () => false,
  };
}

// A plugin whose probe records what it was given and delegates to flat.
function recording(
  name: string,
  compatible: string[],
): IommuPlugin & { probed: DeviceNode[] } {
  const inner = flatIommu();
  const probed: DeviceNode[] = [];
  return {
    name,
    compatible,
    iommuCells: 0,
    probed,
    probe(node: DeviceNode, c: ProbeContext): IommuUnit {
      probed.push(node);
      return inner.probe(node, c);
    },
  };
}

Deno.test("use registers a plugin under each compatible and chains", () => {
  const r = new Registry();
  const a = recording("a", ["vendor,a-v2", "vendor,a"]);
  const b = recording("b", ["vendor,b"]);
  assert(r.use(a).use(b) === r);
  assertEquals(r.plugins(), [a, b]);
  assert(r.pluginFor(["vendor,a"]) === a);
  assert(r.pluginFor(["vendor,a-v2"]) === a);
  assert(r.pluginFor(["vendor,unknown", "vendor,b"]) === b);
  // The first matching entry wins (most specific first).
  assert(r.pluginFor(["vendor,b", "vendor,a"]) === b);
  assertEquals(r.pluginFor(["vendor,none"]), undefined);
  assertEquals(r.pluginFor([]), undefined);
  // plugins() is a copy.
  (r.plugins() as IommuPlugin[]).pop();
  assertEquals(r.plugins().length, 2);
});

Deno.test("use errors: EEXIST by name and by compatible, EINVAL for an empty plugin; nothing registered", () => {
  const r = new Registry().use(recording("a", ["vendor,a"]));
  expectError(() => r.use(recording("a", ["vendor,other"])), "EEXIST", "a");
  assertEquals(
    r.pluginFor(["vendor,other"]),
    undefined,
    "no compatible leaked",
  );
  expectError(
    () => r.use(recording("c", ["vendor,c", "vendor,a"])),
    "EEXIST",
    "vendor,a",
    "a",
  );
  assertEquals(r.pluginFor(["vendor,c"]), undefined, "no partial registration");
  expectError(() => r.use(recording("", ["vendor,d"])), "EINVAL", '""');
  expectError(() => r.use(recording("d", [])), "EINVAL", '"d"');
  assertEquals(r.plugins().map((p) => p.name), ["a"]);
  // After the failures, a fresh name and compatible still register.
  r.use(recording("c", ["vendor,c"]));
  assertEquals(r.plugins().map((p) => p.name), ["a", "c"]);
});

Deno.test("probe binds a node to its plugin and keeps the unit", () => {
  const r = new Registry();
  const a = recording("a", ["vendor,a"]);
  r.use(a);
  const c = ctx();
  const node = deviceNodeFromSpec({
    name: "mmu0",
    compatible: ["vendor,a-v9", "vendor,a"],
  });
  const unit = r.probe(node, c);
  assertEquals(unit.name, "mmu0");
  assertEquals(a.probed, [node]);
  assert(r.unit("mmu0") === unit);
  assertEquals(r.units(), [unit]);
  const [b] = r.bindings();
  assert(b!.node === node && b!.plugin === a && b!.unit === unit);
  (r.bindings() as unknown[]).length = 0; // a copy
  assertEquals(r.bindings().length, 1);
  const u2 = r.probe(
    deviceNodeFromSpec({ name: "mmu1", compatible: ["vendor,a"] }),
    c,
  );
  assertEquals(r.units(), [unit, u2]);
});

Deno.test("probe errors: ENODEV without a plugin, EEXIST for a node or unit name bound twice", () => {
  const r = new Registry().use(recording("a", ["vendor,a"]));
  const c = ctx();
  expectError(
    () =>
      r.probe(
        deviceNodeFromSpec({
          name: "x",
          path: "/soc/x@0",
          compatible: ["vendor,x", "vendor,y"],
        }),
        c,
      ),
    "ENODEV",
    "/soc/x@0",
    '"vendor,x"',
    '"vendor,y"',
  );
  const node = deviceNodeFromSpec({
    name: "mmu0",
    path: "/soc/mmu@1000",
    compatible: ["vendor,a"],
  });
  r.probe(node, c);
  expectError(() => r.probe(node, c), "EEXIST", "/soc/mmu@1000");
  // Another node object with the same path.
  expectError(
    () =>
      r.probe(
        deviceNodeFromSpec({
          name: "other",
          path: "/soc/mmu@1000",
          compatible: ["vendor,a"],
        }),
        c,
      ),
    "EEXIST",
    "/soc/mmu@1000",
  );
  // Another path, but a unit of that name exists.
  expectError(
    () =>
      r.probe(
        deviceNodeFromSpec({
          name: "mmu0",
          path: "/soc/mmu@2000",
          compatible: ["vendor,a"],
        }),
        c,
      ),
    "EEXIST",
    "mmu0",
  );
  assertEquals(r.bindings().length, 1);
});

Deno.test("a throwing probe leaves no binding behind", () => {
  const r = new Registry().use({
    name: "picky",
    compatible: ["vendor,picky"],
    iommuCells: 0,
    probe(node): IommuUnit {
      throw new IommuError("EINVAL", `cannot model ${node.path}`);
    },
  });
  expectError(
    () =>
      r.probe(
        deviceNodeFromSpec({ name: "p", compatible: ["vendor,picky"] }),
        ctx(),
      ),
    "EINVAL",
    "/p",
  );
  assertEquals(r.bindings(), []);
  expectError(() => r.unit("p"), "ENOENT", "p");
});

Deno.test("unit lookup ENOENT names the unit", () => {
  const r = new Registry().use(flatIommu());
  expectError(() => r.unit("nope"), "ENOENT", "nope");
  r.probe(deviceNodeFromSpec({ name: "mmu", compatible: [FLAT] }), ctx());
  expectError(() => r.unit("mmu1"), "ENOENT", "mmu1");
  assertEquals(r.unit("mmu").plugin, "flat-iommu");
});

Deno.test("deviceNodeFromSpec: default path, reg, u32/has/string properties", () => {
  const n = deviceNodeFromSpec({
    name: "sysmmu_mfc_l",
    compatible: ["samsung,exynos-sysmmu"],
    reg: [{ address: 0x1362_0000, size: 0x1000 }],
    props: {
      "#iommu-cells": 0,
      "clock-ids": [7, 8],
      "status": "okay",
      "dma-coherent": true,
      "empty": [],
    },
  });
  assertEquals(n.path, "/sysmmu_mfc_l");
  assertEquals(n.name, "sysmmu_mfc_l");
  assertEquals(n.compatible, ["samsung,exynos-sysmmu"]);
  assertEquals(n.reg, [{ address: 0x1362_0000, size: 0x1000 }]);
  assertEquals(n.u32("#iommu-cells"), 0);
  assertEquals(n.u32("clock-ids"), 7);
  assertEquals(n.u32("empty"), undefined);
  assertEquals(n.u32("status"), undefined);
  assertEquals(n.u32("missing"), undefined);
  assert(n.has("dma-coherent"));
  assert(n.has("#iommu-cells"));
  assert(!n.has("missing"));
  assert(!n.has("toString"), "inherited names are not properties");
  assertEquals(n.string("status"), "okay");
  assertEquals(n.string("#iommu-cells"), undefined);
  const bare = deviceNodeFromSpec({
    name: "x",
    path: "/soc/x@0",
    compatible: ["a"],
  });
  assertEquals(bare.path, "/soc/x@0");
  assertEquals(bare.reg, []);
  assert(!bare.has("anything"));
});
