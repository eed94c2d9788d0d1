import { assert, assertEquals } from "@std/assert";
import { IommuError } from "../core/errors.ts";
import {
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_MAGIC,
  FDT_MAX_DEPTH,
  FDT_NOP,
  FDT_PROP,
  type FdtNode,
  parseFdt,
} from "../core/fdt.ts";
import {
  describeFdtNode,
  encodeFdt,
  type FdtNodeDescription,
  u64Cells,
} from "../core/fdt_writer.ts";
import { EXYNOS4210_DTB, GENERIC_SOC_DTB } from "../platforms/mod.ts";
import { expectError } from "./support/assertions.ts";

const EXYNOS = await Deno.readFile(
  new URL("../platforms/exynos4210.dtb", import.meta.url),
);
const GENERIC = await Deno.readFile(
  new URL("../platforms/generic_soc.dtb", import.meta.url),
);

/** EIO whose message names the given byte offset. */
function assertEioAt(fn: () => unknown, offset: number): IommuError {
  return expectError(
    fn,
    "EIO",
    new RegExp(`offset 0x${offset.toString(16)}\\b`),
  );
}

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at);
}

/** A copy of `b` with the big-endian u32 at `at` replaced. */
function patched(b: Uint8Array, at: number, value: number): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(at, value);
  return c;
}

/** A v17 blob from raw structure words/bytes and a strings block. */
function rawBlob(struct: Uint8Array, strings: Uint8Array): Uint8Array {
  const offStruct = 40 + 16;
  const offStrings = offStruct + struct.length;
  const out = new Uint8Array(offStrings + strings.length);
  const v = new DataView(out.buffer);
  [
    FDT_MAGIC,
    out.length,
    offStruct,
    offStrings,
    40,
    17,
    16,
    0,
    strings.length,
    struct.length,
  ].forEach((x, i) => v.setUint32(i * 4, x));
  out.set(struct, offStruct);
  out.set(strings, offStrings);
  return out;
}

/** Structure-block bytes from tokens: numbers are u32 words, strings are padded names. */
function words(...items: (number | string)[]): Uint8Array {
  const parts: number[] = [];
  for (const item of items) {
    if (typeof item === "number") {
      parts.push(
        item >>> 24,
        (item >>> 16) & 0xff,
        (item >>> 8) & 0xff,
        item & 0xff,
      );
    } else {
      for (const ch of item) parts.push(ch.charCodeAt(0));
      parts.push(0);
      while (parts.length % 4 !== 0) parts.push(0);
    }
  }
  return new Uint8Array(parts);
}

const NAMES = new TextEncoder().encode("reg\0");

function parseDesc(desc: FdtNodeDescription): ReturnType<typeof parseFdt> {
  return parseFdt(encodeFdt(desc));
}

function node(fdt: ReturnType<typeof parseFdt>, path: string): FdtNode {
  const n = fdt.findByPath(path);
  if (n === undefined) throw new Error(`no node ${path}`);
  return n;
}

Deno.test("committed blobs and embedded modules", async (t) => {
  await t.step("embedded modules are byte-identical to the .dtb files", () => {
    assertEquals(EXYNOS4210_DTB, EXYNOS);
    assertEquals(GENERIC_SOC_DTB, GENERIC);
  });

  await t.step(
    "dtc output re-encodes to the same bytes (writer layout = dtc layout)",
    () => {
      for (const blob of [EXYNOS, GENERIC]) {
        const fdt = parseFdt(blob);
        const again = encodeFdt(describeFdtNode(fdt.root), {
          reservations: fdt.reservations,
          bootCpuid: fdt.header.bootCpuid,
        });
        assertEquals(again, blob);
      }
    },
  );
});

Deno.test("exynos4210 platform", async (t) => {
  const fdt = parseFdt(EXYNOS);

  await t.step("header and root", () => {
    assertEquals(fdt.header.magic, FDT_MAGIC);
    assertEquals(fdt.header.version, 17);
    assertEquals(fdt.header.lastCompVersion, 16);
    assertEquals(fdt.header.totalSize, EXYNOS.length);
    assertEquals(fdt.header.offMemRsvmap, 40);
    assertEquals(fdt.header.bootCpuid, 0x900); // dtc takes it from the first cpu's reg
    assertEquals(fdt.reservations, []);
    assertEquals(fdt.root.path, "/");
    assertEquals(fdt.root.name, "");
    assertEquals(fdt.root.parent, null);
    assertEquals(fdt.root.getStringList("compatible"), [
      "samsung,exynos4210",
      "samsung,exynos4",
    ]);
    assertEquals(
      fdt.root.getString("model"),
      "Samsung Exynos4210 (iommukit model)",
    );
    assertEquals(fdt.root.addressCells(), 1);
    assertEquals(fdt.root.sizeCells(), 1);
    assertEquals([...fdt].length, fdt.nodeCount);
    assertEquals([...fdt.nodes()][0], fdt.root);
  });

  await t.step("memory: 1 GiB at 0x40000000", () => {
    const mem = node(fdt, "/memory");
    assertEquals(mem.name, "memory@40000000");
    assertEquals(mem.nodeName, "memory");
    assertEquals(mem.unitAddress, "40000000");
    assertEquals(mem.getString("device_type"), "memory");
    assertEquals(mem.reg(), [{ address: 0x40000000, size: 0x40000000 }]);
    assertEquals(fdt.findByPath("/memory@40000000"), mem);
  });

  const table: [string, number, number, number, number, string | null][] = [
    // label, base, combiner group, bit, sysmmu clock, master path
    ["fimc0", 0x11a20000, 4, 2, 263, "/fimc@11800000"],
    ["fimc1", 0x11a30000, 4, 3, 264, "/fimc@11810000"],
    ["fimc2", 0x11a40000, 4, 4, 265, "/fimc@11820000"],
    ["fimc3", 0x11a50000, 4, 5, 266, "/fimc@11830000"],
    ["jpeg", 0x11a60000, 4, 6, 267, "/jpeg-codec@11840000"],
    ["fimd0", 0x11e20000, 5, 2, 287, "/fimd@11c00000"],
    ["fimd1", 0x12220000, 5, 3, 291, null],
    ["g2d", 0x12a20000, 4, 7, 280, "/g2d@12800000"],
    ["rotator", 0x12a30000, 5, 0, 281, "/rotator@12810000"],
    ["tv", 0x12e20000, 5, 4, 272, "/mixer@12c10000"],
    ["mfc_l", 0x13620000, 5, 5, 274, "/codec@13400000"],
    ["mfc_r", 0x13630000, 5, 6, 275, "/codec@13400000"],
  ];

  await t.step("the twelve System MMUs match the reference table", () => {
    const units = fdt.findCompatible("samsung,exynos-sysmmu");
    assertEquals(units.length, 12);
    const combiner = node(fdt, "/interrupt-controller@10440000");
    const clock = node(fdt, "/clock-controller@10030000");
    assertEquals(combiner.getU32("#interrupt-cells"), 2);
    for (const [label, base, group, bit, clk] of table) {
      const u = node(fdt, `/sysmmu@${base.toString(16)}`);
      assert(units.includes(u), label);
      assert(u.isEnabled(), label);
      assertEquals(u.reg(), [{ address: base, size: 0x1000 }], label);
      assertEquals(u.getU32("#iommu-cells"), 0, label);
      assertEquals(u.getU32("iommukit,sysmmu-version"), 0x30600000, label);
      assertEquals(u.interrupts(), [group, bit], label);
      assertEquals(fdt.interruptParent(u), combiner, label);
      assertEquals(fdt.interruptSpecifiers(u), [[group, bit]], label);
      assertEquals(u.getStringList("clock-names"), ["sysmmu", "master"]);
      const clocks = u.getU32Array("clocks")!;
      assertEquals(clocks.length, 4);
      assertEquals(fdt.findByPhandle(clocks[0]!), clock);
      assertEquals(clocks[1], clk, label);
      if (label === "fimd1") {
        // dtc gives phandles only to referenced nodes, and nothing uses FIMD1's.
        assertEquals(u.phandle, undefined);
      } else {
        assert(u.phandle !== undefined, label);
        assertEquals(fdt.findByPhandle(u.phandle ?? -1), u, label);
      }
    }
  });

  await t.step("v3.3 version value decodes to MAJ 3, MIN 3", () => {
    const v = node(fdt, "/sysmmu@13620000").getU32("iommukit,sysmmu-version")!;
    assertEquals(v >>> 28, 3);
    assertEquals((v >>> 21) & 0x7f, 3);
  });

  await t.step("masters name their System MMUs with iommus", () => {
    const masters = new Map<string, string[]>();
    for (const [, base, , , , master] of table) {
      if (master === null) continue;
      masters.set(master, [
        ...(masters.get(master) ?? []),
        `/sysmmu@${base.toString(16)}`,
      ]);
    }
    let referencing = 0;
    for (const n of fdt) {
      const refs = fdt.iommus(n);
      if (refs.length === 0) continue;
      referencing++;
      assertEquals(
        refs.map((r) => r.iommuNode.path),
        masters.get(n.path),
        n.path,
      );
      for (const r of refs) assertEquals(r.args, []);
    }
    assertEquals(referencing, masters.size);
    // No master references FIMD1's unit.
    const fimd1 = node(fdt, "/sysmmu@12220000");
    for (const n of fdt) {
      assert(fdt.iommus(n).every((r) => r.iommuNode !== fimd1));
    }
  });

  await t.step("MFC has a left and a right System MMU", () => {
    const mfc = node(fdt, "/codec@13400000");
    assert(mfc.isCompatible("samsung,mfc-v5"));
    assertEquals(mfc.reg(), [{ address: 0x13400000, size: 0x10000 }]);
    const refs = fdt.iommus(mfc);
    assertEquals(refs.map((r) => [r.iommuNode.reg()[0]!.address, r.name]), [
      [0x13620000, "left"],
      [0x13630000, "right"],
    ]);
    assertEquals(fdt.findCompatible("samsung,mfc-v5"), [mfc]);
  });

  await t.step("master compatibles and interrupts", () => {
    const gic = node(fdt, "/interrupt-controller@10490000");
    assertEquals(fdt.findCompatible("samsung,exynos4210-fimc").length, 4);
    for (
      const c of [
        "samsung,exynos4210-fimd",
        "samsung,s5pv210-g2d",
        "samsung,exynos4210-jpeg",
        "samsung,exynos4210-rotator",
        "samsung,exynos4210-mixer",
      ]
    ) {
      assertEquals(fdt.findCompatible(c).length, 1, c);
    }
    const g2d = node(fdt, "/g2d@12800000");
    assertEquals(fdt.interruptParent(g2d), gic); // inherited from the root
    assertEquals(fdt.interruptSpecifiers(g2d), [[0, 89, 4]]);
    const fimd = node(fdt, "/fimd@11c00000");
    assertEquals(fdt.interruptSpecifiers(fimd), [[11, 0], [11, 1], [11, 2]]);
    // The combiner's 16 groups go to GIC SPI 0..15.
    const combiner = node(fdt, "/interrupt-controller@10440000");
    const specs = fdt.interruptSpecifiers(combiner);
    assertEquals(specs.length, 16);
    specs.forEach((s, i) => assertEquals(s, [0, i, 4]));
    assertEquals(fdt.interruptParent(gic), gic);
    assertEquals(fdt.interruptSpecifiers(gic), []);
  });

  await t.step("cpus use their own cell counts", () => {
    const cpu = node(fdt, "/cpus/cpu@901");
    assertEquals(cpu.path, "/cpus/cpu@901");
    assertEquals(cpu.depth, 2);
    assertEquals(cpu.parent?.path, "/cpus");
    assertEquals(cpu.reg(), [{ address: 0x901, size: 0 }]);
    assertEquals(node(fdt, "/cpus").children.length, 2);
    assertEquals(fdt.findByPath("/cpus/cpu"), node(fdt, "/cpus/cpu@900"));
  });
});

Deno.test("generic SoC platform", async (t) => {
  const fdt = parseFdt(GENERIC);
  const smmu = node(fdt, "/iommu@fd800000");

  await t.step("memory, reservation and 2-cell reg", () => {
    assertEquals(fdt.header.bootCpuid, 0);
    assertEquals(fdt.reservations, [{ address: 0x80000000, size: 0x200000 }]);
    assertEquals(fdt.root.addressCells(), 2);
    assertEquals(fdt.root.sizeCells(), 2);
    assertEquals(node(fdt, "/memory").reg(), [
      { address: 0x80000000, size: 0x1_0000_0000 },
    ]);
  });

  await t.step("the central IOMMU", () => {
    assertEquals(fdt.findCompatible("iommukit,generic-iommu"), [smmu]);
    assertEquals(smmu.getU32("#iommu-cells"), 1);
    assertEquals(smmu.reg(), [{ address: 0xfd800000, size: 0x20000 }]);
    assertEquals(fdt.interruptSpecifiers(smmu), [[0, 64, 4], [0, 65, 4], [
      0,
      66,
      4,
    ]]);
    assertEquals(smmu.getStringList("interrupt-names"), [
      "eventq",
      "gerror",
      "cmdq-sync",
    ]);
  });

  await t.step("masters and their stream IDs", () => {
    const streams = (path: string): number[][] =>
      fdt.iommus(node(fdt, path)).map((r) => {
        assertEquals(r.iommuNode, smmu);
        assertEquals(r.name, undefined);
        return [...r.args];
      });
    assertEquals(streams("/ethernet@fe000000"), [[0x10]]);
    assertEquals(streams("/gpu@fe100000"), [[0x20], [0x21]]);
    assertEquals(streams("/dma@fe200000"), [[0x30]]);
    assertEquals(streams("/display@fe300000"), [[0x40]]);
    assertEquals(streams("/accelerator@fe400000"), [[0x50]]);
    assertEquals(streams("/camera@fe500000"), [[0x60]]);
    assertEquals(streams("/audio@fe600000"), []);
  });

  await t.step("iommukit properties, dma-coherent and status", () => {
    assertEquals(node(fdt, "/dma@fe200000").getU32("iommukit,dma-bits"), 32);
    assertEquals(node(fdt, "/ethernet").getU32("iommukit,dma-bits"), undefined);
    const display = node(fdt, "/display");
    assert(display.has("iommukit,bypass"));
    assertEquals(display.getProperty("iommukit,bypass")?.length, 0);
    assert(!node(fdt, "/gpu").has("iommukit,bypass"));
    assert(node(fdt, "/accelerator").has("dma-coherent"));
    assert(!node(fdt, "/gpu").has("dma-coherent"));
    assert(!node(fdt, "/camera").isEnabled());
    const enabled = [...fdt].filter((n) => n.isEnabled()).length;
    assertEquals(enabled, fdt.nodeCount - 1);
  });
});

Deno.test("node accessors", async (t) => {
  const fdt = parseDesc({
    props: {
      "#address-cells": 1,
      "#size-cells": 1,
      strs: ["a", "", "bc"],
      one: "x",
      empty: true,
      u8: new Uint8Array([1, 2, 3]),
      cells: [1, 2, 0xffffffff],
    },
    children: [
      { name: "aliases", props: { mmu: "/bus@0/mmu@100", bad: [1] } },
      {
        name: "bus@0",
        props: { "#address-cells": 2, "#size-cells": 2, reg: [0, 0x100] },
        children: [
          {
            name: "mmu@100",
            props: {
              reg: [...u64Cells(2 ** 40), ...u64Cells(0x2000)],
              phandle: 7,
            },
          },
          {
            name: "huge@0",
            props: { reg: [0x200000, 0, 0, 1] },
          },
          {
            name: "frac@0",
            props: { reg: [0, 1, 2] },
          },
          {
            name: "nocells",
            props: { "#address-cells": 3 },
            children: [{ name: "x", props: { reg: [1, 2, 3, 4] } }],
          },
        ],
      },
      {
        name: "defaults",
        children: [{ name: "d@1", props: { reg: [0, 1, 2] } }],
      },
      {
        name: "zero",
        props: { "#address-cells": 0, "#size-cells": 0 },
        children: [{ name: "z", props: { reg: true } }, {
          name: "w",
          props: { reg: 1 },
        }],
      },
      {
        name: "status",
        children: [
          { name: "okay", props: { status: "okay" } },
          { name: "ok", props: { status: "ok" } },
          { name: "disabled", props: { status: "disabled" } },
          { name: "fail", props: { status: "fail" } },
          { name: "garbage", props: { status: new Uint8Array([0x6f]) } },
        ],
      },
    ],
  });
  const root = fdt.root;

  await t.step("typed getters", () => {
    assertEquals(root.getStringList("strs"), ["a", "", "bc"]);
    assertEquals(root.getString("strs"), "a");
    assertEquals(root.getString("one"), "x");
    assertEquals(root.getStringList("empty"), []);
    assertEquals(root.getU32Array("empty"), []);
    assertEquals(root.getU32Array("cells"), [1, 2, 0xffffffff]);
    assertEquals(root.getU32("missing"), undefined);
    assertEquals(root.getU32Array("missing"), undefined);
    assertEquals(root.getString("missing"), undefined);
    assertEquals(root.getStringList("missing"), undefined);
    assertEquals(root.getProperty("u8"), new Uint8Array([1, 2, 3]));
    assert(root.has("empty") && !root.has("missing"));
    assertEquals(root.propertyOffset("missing"), undefined);
    assertEquals(root.reg(), []);
    assertEquals(root.interrupts(), []);
    assert(!root.isCompatible("anything"));
    assertEquals([...root.properties.keys()].slice(0, 3), [
      "#address-cells",
      "#size-cells",
      "strs",
    ]);
  });

  await t.step("malformed property values give EIO naming the offset", () => {
    const at = root.propertyOffset("cells")!;
    assertEioAt(() => root.getU32("cells"), at);
    assertEioAt(() => root.getU32("u8"), root.propertyOffset("u8")!);
    assertEioAt(() => root.getU32Array("u8"), root.propertyOffset("u8")!);
    assertEioAt(() => root.getString("u8"), root.propertyOffset("u8")!);
    assertEioAt(() => root.getString("empty"), root.propertyOffset("empty")!);
    assertEioAt(() => root.getStringList("u8"), root.propertyOffset("u8")! + 2);
    expectError(() => node(fdt, "/status/garbage").isEnabled(), "EIO");
  });

  await t.step("status", () => {
    assert(node(fdt, "/status/okay").isEnabled());
    assert(node(fdt, "/status/ok").isEnabled());
    assert(!node(fdt, "/status/disabled").isEnabled());
    assert(!node(fdt, "/status/fail").isEnabled());
    assert(node(fdt, "/status").isEnabled());
  });

  await t.step("reg uses the parent's cells", () => {
    assertEquals(node(fdt, "/bus@0").reg(), [{ address: 0, size: 0x100 }]);
    assertEquals(node(fdt, "/bus/mmu@100").reg(), [{
      address: 2 ** 40,
      size: 0x2000,
    }]);
    // Parent without cell properties: defaults 2 address + 1 size.
    assertEquals(node(fdt, "/defaults/d@1").reg(), [{ address: 1, size: 2 }]);
    assertEquals(node(fdt, "/zero/z").reg(), []);
  });

  await t.step("reg errors", () => {
    const huge = node(fdt, "/bus/huge@0");
    expectError(() => huge.reg(), "ERANGE", /offset 0x[0-9a-f]+/);
    const frac = node(fdt, "/bus/frac@0");
    assertEioAt(() => frac.reg(), frac.propertyOffset("reg")!);
    expectError(
      () => node(fdt, "/bus/nocells/x").reg(),
      "ERANGE",
      /#address-cells 3/,
    );
    expectError(() => node(fdt, "/zero/w").reg(), "EIO");
  });

  await t.step("lookups", () => {
    const mmu = node(fdt, "/bus@0/mmu@100");
    assertEquals(fdt.findByPath("/bus/mmu"), mmu);
    assertEquals(fdt.findByPath("mmu"), mmu);
    assertEquals(fdt.findByPath("/bus@0/mmu@100/"), mmu);
    assertEquals(fdt.findByPath("/"), root);
    assertEquals(fdt.findByPath("/nothing"), undefined);
    assertEquals(fdt.findByPath("/bus@0/mmu@200"), undefined);
    assertEquals(fdt.findByPath("/bus@0/mmu@100/deeper"), undefined);
    assertEquals(fdt.findByPath("nothing"), undefined);
    assertEquals(fdt.findByPath("bad"), undefined); // alias value is not a string
    assertEquals(fdt.findByPhandle(7), mmu);
    assertEquals(fdt.findByPhandle(8), undefined);
    assertEquals(mmu.phandle, 7);
    assertEquals(root.child("bus"), node(fdt, "/bus@0"));
    assertEquals(root.child("bus@1"), undefined);
    assertEquals(mmu.offset < node(fdt, "/bus/huge").offset, true);
    assertEquals(u32(encodeFdt(describeFdtNode(root)), 0), FDT_MAGIC);
  });
});

Deno.test("iommus and interrupt decoding errors", async (t) => {
  const base = (masterProps: Record<string, number[] | string[] | number>) =>
    parseDesc({
      props: { "#address-cells": 1, "#size-cells": 1 },
      children: [
        { name: "iommu@0", props: { phandle: 1, "#iommu-cells": 1 } },
        { name: "sysmmu@1", props: { phandle: 2, "#iommu-cells": 0 } },
        { name: "nocells@2", props: { phandle: 3 } },
        { name: "bigcells@3", props: { phandle: 4, "#iommu-cells": 17 } },
        {
          name: "intc",
          props: {
            phandle: 5,
            "interrupt-controller": true,
            "#interrupt-cells": 2,
          },
        },
        { name: "intc-nocells", props: { phandle: 6 } },
        { name: "master", props: masterProps },
      ],
    });

  await t.step("mixed cell counts decode in order", () => {
    const fdt = base({
      iommus: [1, 9, 2, 1, 10],
      "iommu-names": ["a", "b", "c"],
    });
    const refs = fdt.iommus(node(fdt, "/master"));
    assertEquals(refs.map((r) => [r.iommuNode.name, r.args, r.name]), [
      ["iommu@0", [9], "a"],
      ["sysmmu@1", [], "b"],
      ["iommu@0", [10], "c"],
    ]);
  });

  await t.step("a dangling phandle is ENOENT naming the offset", () => {
    const fdt = base({ iommus: [1, 9, 42] });
    const m = node(fdt, "/master");
    expectError(
      () => fdt.iommus(m),
      "ENOENT",
      new RegExp(
        `phandle 0x2a.*offset 0x${
          (m.propertyOffset("iommus")! + 8).toString(16)
        }\\b`,
      ),
    );
  });

  await t.step("an IOMMU without #iommu-cells is EINVAL", () => {
    const fdt = base({ iommus: [3] });
    expectError(
      () => fdt.iommus(node(fdt, "/master")),
      "EINVAL",
      /#iommu-cells/,
    );
  });

  await t.step("a cell count mismatch is EIO", () => {
    const fdt = base({ iommus: [2, 1] }); // sysmmu (0 cells), then iommu@0 missing its arg
    const m = node(fdt, "/master");
    assertEioAt(() => fdt.iommus(m), m.propertyOffset("iommus")! + 4);
  });

  await t.step("#iommu-cells beyond the limit is EIO", () => {
    const fdt = base({ iommus: [4, 0] });
    expectError(() => fdt.iommus(node(fdt, "/master")), "EIO", /#iommu-cells/);
  });

  await t.step("iommu-names count mismatch is EIO", () => {
    const fdt = base({ iommus: [2], "iommu-names": ["a", "b"] });
    expectError(() => fdt.iommus(node(fdt, "/master")), "EIO", /iommu-names/);
  });

  await t.step("a malformed iommus length is EIO", () => {
    const fdt = parseDesc({
      children: [{ name: "m", props: { iommus: new Uint8Array(6) } }],
    });
    expectError(() => fdt.iommus(node(fdt, "/m")), "EIO");
  });

  await t.step("interrupt parent and specifier errors", () => {
    let fdt = base({ interrupts: [1, 2, 3, 4], "interrupt-parent": 5 });
    assertEquals(fdt.interruptSpecifiers(node(fdt, "/master")), [[1, 2], [
      3,
      4,
    ]]);
    fdt = base({ interrupts: [1, 2, 3], "interrupt-parent": 5 });
    expectError(() => fdt.interruptSpecifiers(node(fdt, "/master")), "EIO");
    fdt = base({ interrupts: [1, 2], "interrupt-parent": 99 });
    expectError(
      () => fdt.interruptParent(node(fdt, "/master")),
      "ENOENT",
      /0x63/,
    );
    fdt = base({ interrupts: [1, 2] });
    assertEquals(fdt.interruptParent(node(fdt, "/master")), undefined);
    expectError(() => fdt.interruptSpecifiers(node(fdt, "/master")), "ENOENT");
    fdt = base({ interrupts: [1, 2], "interrupt-parent": 6 });
    expectError(() => fdt.interruptSpecifiers(node(fdt, "/master")), "EINVAL");
  });
});

Deno.test("writer", async (t) => {
  await t.step(
    "round-trips every value type, reservations and boot CPU",
    () => {
      const blob = encodeFdt({
        name: "",
        props: new Map<string, string | number | true | number[]>([
          ["0", 5],
          ["compatible", "acme,board"],
          ["flag", true],
          ["cells", [1, 2]],
        ]),
        children: [{ name: "child@1" }],
      }, {
        reservations: [{ address: 2 ** 40, size: 0x1000 }, {
          address: 0,
          size: 1,
        }],
        bootCpuid: 3,
      });
      const fdt = parseFdt(blob);
      assertEquals([...fdt.root.properties.keys()], [
        "0",
        "compatible",
        "flag",
        "cells",
      ]);
      assertEquals(fdt.root.getU32("0"), 5);
      assertEquals(fdt.reservations, [
        { address: 2 ** 40, size: 0x1000 },
        { address: 0, size: 1 },
      ]);
      assertEquals(fdt.header.bootCpuid, 3);
      assertEquals(fdt.header.totalSize, blob.length);
      assertEquals(node(fdt, "/child@1").properties.size, 0);
    },
  );

  await t.step("strings share suffixes like dtc", () => {
    const fdt = parseFdt(
      encodeFdt({ props: { "#size-cells": 1, "size-cells": 2 } }),
    );
    assertEquals(fdt.header.sizeDtStrings, "#size-cells\0".length);
  });

  await t.step("64 levels encode and parse", () => {
    let desc: FdtNodeDescription = { name: "n" };
    for (let i = 0; i < FDT_MAX_DEPTH - 2; i++) {
      desc = { name: "n", children: [desc] };
    }
    const fdt = parseDesc({ children: [desc] });
    assertEquals(Math.max(...[...fdt].map((n) => n.depth)), FDT_MAX_DEPTH - 1);
    expectError(
      () => encodeFdt({ children: [{ name: "n", children: [desc] }] }),
      "EINVAL",
      /deeper/,
    );
  });

  await t.step("invalid descriptions are EINVAL", () => {
    const bad: [FdtNodeDescription, RegExp][] = [
      [{ name: "root" }, /root/],
      [{ children: [{ name: "" }] }, /empty node name/],
      [{ children: [{}] }, /empty node name/],
      [{ children: [{ name: "a/b" }] }, /invalid character 0x2f/],
      [{ children: [{ name: "a b" }] }, /invalid character 0x20/],
      [{ children: [{ name: "x".repeat(300) }] }, /longer than/],
      [{ children: [{ name: "a" }, { name: "a" }] }, /duplicate node/],
      [{ props: { "": 1 } }, /empty property name/],
      [{ props: { "é": 1 } }, /invalid character/],
      [{ props: { p: 2 ** 32 } }, /0x100000000|4294967296/],
      [{ props: { p: -1 } }, /-1/],
      [{ props: { p: 1.5 } }, /1\.5/],
      [{ props: { p: [1, NaN] } }, /cell 1/],
      [{ props: { p: "a\0b" } }, /NUL/],
      [{ props: { p: ["a", 1] as unknown as string[] } }, /mixes/],
      [{ props: { p: { x: 1 } as unknown as string } }, /unsupported/],
      [{ props: { p: false as unknown as true } }, /unsupported/],
    ];
    for (const [desc, re] of bad) {
      expectError(() => encodeFdt(desc), "EINVAL", re);
    }
    expectError(() => encodeFdt({}, { bootCpuid: -1 }), "EINVAL");
    expectError(
      () => encodeFdt({}, { reservations: [{ address: 0, size: 0 }] }),
      "EINVAL",
      /all zero/,
    );
    expectError(
      () => encodeFdt({}, { reservations: [{ address: 0.5, size: 1 }] }),
      "EINVAL",
    );
    expectError(() => u64Cells(-1), "EINVAL");
    expectError(() => u64Cells(2 ** 53), "EINVAL");
    assertEquals(u64Cells(0x1_2345_6789), [1, 0x23456789]);
  });
});

Deno.test("malformed blobs", async (t) => {
  const good = encodeFdt({
    props: { "#address-cells": 1, "#size-cells": 1, compatible: "acme,x" },
    children: [{ name: "a@0", props: { reg: [0, 4], phandle: 1 } }, {
      name: "b",
    }],
  }, { reservations: [{ address: 0x1000, size: 0x1000 }] });
  const fdt = parseFdt(good);
  const h = fdt.header;

  await t.step("not a Uint8Array is EINVAL", () => {
    expectError(() => parseFdt([1, 2] as unknown as Uint8Array), "EINVAL");
  });

  await t.step("header fields", () => {
    assertEioAt(() => parseFdt(patched(good, 0, 0xd00dfeee)), 0);
    assertEioAt(() => parseFdt(patched(good, 20, 15)), 0x14);
    assertEioAt(() => parseFdt(patched(good, 24, 18)), 0x18);
    assertEioAt(() => parseFdt(patched(patched(good, 20, 16), 24, 17)), 0x18);
    assertEioAt(() => parseFdt(patched(good, 4, good.length + 1)), 4);
    assertEioAt(() => parseFdt(patched(good, 4, 39)), 4);
    assertEioAt(() => parseFdt(new Uint8Array(12)), 0xc);
  });

  await t.step("version 16 and trailing bytes are accepted", () => {
    const v16 = parseFdt(patched(good, 20, 16));
    assertEquals(v16.header.sizeDtStruct, good.length - h.offDtStruct);
    assertEquals(v16.nodeCount, 3);
    const longer = new Uint8Array(good.length + 8);
    longer.set(good);
    assertEquals(parseFdt(longer).nodeCount, 3);
  });

  await t.step("truncation at every length", () => {
    for (let len = 0; len < good.length; len++) {
      expectError(
        () => parseFdt(good.subarray(0, len)),
        "EIO",
        /offset 0x[0-9a-f]+/,
      );
    }
    for (const blob of [EXYNOS, GENERIC]) {
      for (let len = 0; len < blob.length; len += 7) {
        expectError(() => parseFdt(blob.subarray(0, len)), "EIO", /offset 0x/);
      }
    }
  });

  await t.step("structure block cut short at every word", () => {
    for (let size = 0; size < h.sizeDtStruct; size += 4) {
      expectError(() => parseFdt(patched(good, 36, size)), "EIO", /offset 0x/);
    }
  });

  await t.step("block offsets and sizes outside the blob", () => {
    assertEioAt(() => parseFdt(patched(good, 8, good.length + 4)), 8);
    assertEioAt(() => parseFdt(patched(good, 8, 4)), 8); // inside the header
    assertEioAt(
      () => parseFdt(patched(good, 36, h.sizeDtStruct + 4 + h.sizeDtStrings)),
      8,
    );
    assertEioAt(() => parseFdt(patched(good, 12, good.length + 1)), 0xc);
    assertEioAt(() => parseFdt(patched(good, 32, h.sizeDtStrings + 1)), 0xc);
    assertEioAt(() => parseFdt(patched(good, 16, good.length + 8)), 0x10);
    assertEioAt(() => parseFdt(patched(good, 16, 44)), 0x10); // not 8-aligned
    assertEioAt(() => parseFdt(patched(good, 8, h.offDtStruct + 2)), 8); // not 4-aligned
    assertEioAt(
      () => parseFdt(patched(good, 16, good.length - 8)),
      good.length - 8,
    );
  });

  await t.step("memory reservations", () => {
    // 0x00200000_00000000 = 2^53: not a safe integer.
    expectError(
      () => parseFdt(patched(good, 40, 0x200000)),
      "ERANGE",
      /offset 0x28/,
    );
    expectError(
      () => parseFdt(patched(good, 48, 0x200000)),
      "ERANGE",
      /offset 0x28/,
    );
  });

  await t.step("structure tokens", () => {
    const root = fdt.root;
    const a = node(fdt, "/a@0");
    const regTok = a.propertyOffset("reg")! - 12;
    assertEquals(u32(good, regTok), FDT_PROP);
    assertEioAt(() => parseFdt(patched(good, regTok, 7)), regTok);
    expectError(
      () => parseFdt(patched(good, regTok, 7)),
      "EIO",
      /unknown structure token 0x7/,
    );
    // Property name offset outside the strings block.
    assertEioAt(
      () => parseFdt(patched(good, regTok + 8, h.sizeDtStrings)),
      regTok + 8,
    );
    assertEioAt(
      () => parseFdt(patched(good, regTok + 8, 0xffffffff)),
      regTok + 8,
    );
    // Value length past the end of the structure block.
    assertEioAt(
      () => parseFdt(patched(good, regTok + 4, 0x10000)),
      regTok + 12,
    );
    // Root's END_NODE replaced with NOP: FDT_END arrives with the root still open.
    const endTok = h.offDtStruct + h.sizeDtStruct - 8;
    assertEquals(u32(good, endTok), FDT_END_NODE);
    assertEioAt(() => parseFdt(patched(good, endTok, FDT_NOP)), endTok + 4);
    // FDT_END replaced with NOP: no FDT_END at all.
    assertEioAt(() => parseFdt(patched(good, endTok + 4, FDT_NOP)), endTok + 8);
    // An extra END_NODE where the FDT_END should be.
    assertEioAt(
      () => parseFdt(patched(good, endTok + 4, FDT_END_NODE)),
      endTok + 4,
    );
    // Root node given a name.
    assertEioAt(
      () => parseFdt(patched(good, root.offset + 4, 0x61000000)),
      root.offset,
    );
    // Unterminated property name: the strings block's last NUL overwritten.
    const last = h.offDtStrings + h.sizeDtStrings - 4;
    const noNul = patched(good, last, u32(good, last) | 0x41);
    expectError(
      () => parseFdt(noNul),
      "EIO",
      /not NUL-terminated|non-printable/,
    );
    // Phandle 0 is reserved.
    const ph = a.propertyOffset("phandle")!;
    assertEioAt(() => parseFdt(patched(good, ph, 0)), ph);
    assertEioAt(() => parseFdt(patched(good, ph, 0xffffffff)), ph);
  });

  await t.step("hand-built structure blocks", () => {
    const cases: [Uint8Array, Uint8Array, number, RegExp][] = [
      // Unterminated node name running to the end of the structure block.
      [
        new Uint8Array([0, 0, 0, 1, 0x61, 0x62]),
        NAMES,
        60,
        /not NUL-terminated/,
      ],
      // END_NODE with nothing open.
      [words(FDT_END_NODE), NAMES, 56, /without an open node/],
      // Property before any node.
      [words(FDT_PROP, 0, 0), NAMES, 56, /outside any node/],
      // No root at all.
      [words(FDT_NOP, FDT_END), NAMES, 60, /no root/],
      // Two roots.
      [
        words(
          FDT_BEGIN_NODE,
          "",
          FDT_END_NODE,
          FDT_BEGIN_NODE,
          "",
          FDT_END_NODE,
          FDT_END,
        ),
        NAMES,
        68,
        /second root/,
      ],
      // Empty child name.
      [
        words(
          FDT_BEGIN_NODE,
          "",
          FDT_BEGIN_NODE,
          "",
          FDT_END_NODE,
          FDT_END_NODE,
          FDT_END,
        ),
        NAMES,
        64,
        /empty name/,
      ],
      // Bad byte in a node name.
      [
        words(
          FDT_BEGIN_NODE,
          "",
          FDT_BEGIN_NODE,
          "a/b",
          FDT_END_NODE,
          FDT_END_NODE,
          FDT_END,
        ),
        NAMES,
        69,
        /invalid byte 0x2f/,
      ],
      // Duplicate node.
      [
        words(
          FDT_BEGIN_NODE,
          "",
          FDT_BEGIN_NODE,
          "a",
          FDT_END_NODE,
          FDT_BEGIN_NODE,
          "a",
          FDT_END_NODE,
          FDT_END_NODE,
          FDT_END,
        ),
        NAMES,
        76,
        /duplicate node \/a/,
      ],
      // Duplicate property.
      [
        words(
          FDT_BEGIN_NODE,
          "",
          FDT_PROP,
          0,
          0,
          FDT_PROP,
          0,
          0,
          FDT_END_NODE,
          FDT_END,
        ),
        NAMES,
        76,
        /duplicate property 'reg'/,
      ],
      // Property after a subnode.
      [
        words(
          FDT_BEGIN_NODE,
          "",
          FDT_BEGIN_NODE,
          "a",
          FDT_END_NODE,
          FDT_PROP,
          0,
          0,
          FDT_END_NODE,
          FDT_END,
        ),
        NAMES,
        76,
        /follows a subnode/,
      ],
      // Property header cut by the block end.
      [words(FDT_BEGIN_NODE, "", FDT_PROP, 0), NAMES, 68, /property header/],
      // Empty property name.
      [
        words(FDT_BEGIN_NODE, "", FDT_PROP, 0, 3, FDT_END_NODE, FDT_END),
        NAMES,
        87, // the NUL at strings offset 3
        /empty property name/,
      ],
      // Non-printable property name.
      [
        words(FDT_BEGIN_NODE, "", FDT_PROP, 0, 0, FDT_END_NODE, FDT_END),
        new Uint8Array([1, 0]),
        84, // the strings block start
        /non-printable/,
      ],
      // Unknown token.
      [
        words(FDT_BEGIN_NODE, "", 0x12345678),
        NAMES,
        64,
        /unknown structure token 0x12345678/,
      ],
    ];
    for (const [struct, strings, offset, re] of cases) {
      const e = assertEioAt(() => parseFdt(rawBlob(struct, strings)), offset);
      assert(re.test(e.message), `'${e.message}' does not match ${re}`);
    }
  });

  await t.step("phandle conflicts", () => {
    const twoPh = words(
      FDT_BEGIN_NODE,
      "",
      FDT_PROP,
      4,
      0,
      1,
      FDT_PROP,
      4,
      8,
      2,
      FDT_END_NODE,
      FDT_END,
    );
    const strings = new TextEncoder().encode("phandle\0linux,phandle\0");
    expectError(
      () => parseFdt(rawBlob(twoPh, strings)),
      "EIO",
      /two different phandles 0x1 and 0x2/,
    );
    const dup = encodeFdt({
      children: [{ name: "a", props: { phandle: 3 } }, {
        name: "b",
        props: { phandle: 3 },
      }],
    });
    expectError(
      () => parseFdt(dup),
      "EIO",
      /phandle 0x3 of \/b is already used by \/a/,
    );
    const same = encodeFdt({ props: { phandle: 3, "linux,phandle": 3 } });
    assertEquals(parseFdt(same).findByPhandle(3)?.path, "/");
    const short = encodeFdt({ props: { phandle: new Uint8Array(2) } });
    expectError(() => parseFdt(short), "EIO", /phandle/);
  });

  await t.step("nesting deeper than the limit", () => {
    const items: (number | string)[] = [FDT_BEGIN_NODE, ""];
    for (let i = 1; i < FDT_MAX_DEPTH; i++) items.push(FDT_BEGIN_NODE, "n");
    const okItems = [...items];
    for (let i = 0; i < FDT_MAX_DEPTH; i++) okItems.push(FDT_END_NODE);
    okItems.push(FDT_END);
    assertEquals(
      parseFdt(rawBlob(words(...okItems), NAMES)).nodeCount,
      FDT_MAX_DEPTH,
    );
    const deepAt = 56 + 8 + (FDT_MAX_DEPTH - 1) * 8;
    items.push(FDT_BEGIN_NODE, "n");
    for (let i = 0; i <= FDT_MAX_DEPTH; i++) items.push(FDT_END_NODE);
    items.push(FDT_END);
    assertEioAt(() => parseFdt(rawBlob(words(...items), NAMES)), deepAt);
  });
});

Deno.test("randomized mutations only ever throw IommuError", () => {
  // mulberry32: small, seeded, reproducible.
  let seed = 0x1badf00d;
  const rand = (): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = seed;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (n: number): number => Math.floor(rand() * n);
  const blobs = [
    GENERIC,
    EXYNOS,
    encodeFdt({
      props: { a: 1 },
      children: [{ name: "b", props: { iommus: [1] } }],
    }),
  ];
  const interesting = [0, 1, 2, 3, 4, 9, 0xffffffff, 0x7fffffff, 0x10000];
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 3000; i++) {
    const src = blobs[i % blobs.length]!;
    let blob = src.slice();
    const kind = pick(4);
    if (kind === 0) {
      for (let f = 1 + pick(4); f > 0; f--) {
        const at = pick(blob.length);
        blob[at] = blob[at]! ^ (1 << pick(8));
      }
    } else if (kind === 1) {
      blob = blob.subarray(0, pick(blob.length));
    } else if (kind === 2) {
      const at = pick(blob.length >> 2) * 4;
      new DataView(blob.buffer).setUint32(
        at,
        interesting[pick(interesting.length)]!,
      );
    } else {
      // Header field corruption keeps the body intact.
      new DataView(blob.buffer).setUint32(
        pick(10) * 4,
        Math.floor(rand() * 0x100000000),
      );
    }
    try {
      const fdt = parseFdt(blob);
      parsed++;
      for (const n of fdt) {
        for (
          const f of [
            () => n.reg(),
            () => fdt.iommus(n),
            () => fdt.interruptSpecifiers(n),
            () => n.isEnabled(),
            () => n.getStringList("compatible"),
            () => n.getU32("#iommu-cells"),
          ]
        ) {
          try {
            f();
          } catch (e) {
            if (!(e instanceof IommuError)) throw e;
          }
        }
      }
    } catch (e) {
      if (!(e instanceof IommuError)) throw e;
      assert(/offset 0x[0-9a-f]+/.test(e.message), e.message);
      rejected++;
    }
  }
  // Both outcomes must occur, or the loop is not exercising the parser.
  assert(parsed > 100, `only ${parsed} mutants parsed`);
  assert(rejected > 1000, `only ${rejected} mutants rejected`);
});
