import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  encodeFdt,
  type FdtNodeDescription,
  IommuError,
  type IommuPlugin,
  type IommuUnit,
} from "../core/mod.ts";
import { buildPlatform, type Platform } from "../core/mod.ts";
import {
  type PlatformJson,
  platformJsonFromDtb,
  sourceFromJsonText,
} from "../core/mod.ts";
import {
  builtinBypass,
  EXYNOS4210_DTB,
  GENERIC_SOC_DTB,
  loadPlatform,
} from "../platforms/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";
import {
  simulate,
  workloadByName,
  workloadFromJson,
} from "../workloads/mod.ts";
import { expectError } from "./support/assertions.ts";

// A per-device stand-in for the Exynos System MMU: the builder only cares
// about compatible strings, #iommu-cells and the probed unit.
function fakeSysmmu(): IommuPlugin {
  const flat = flatIommu();
  return {
    name: "fake-sysmmu",
    compatible: ["samsung,exynos-sysmmu"],
    iommuCells: 0,
    probe: (node, ctx) => flat.probe(node, ctx),
  };
}

// A central stand-in: stream IDs, no tables.
function fakeCentral(compatible = "iommukit,generic-iommu"): IommuPlugin {
  return {
    name: "fake-central",
    compatible: [compatible],
    iommuCells: 1,
    probe(node): IommuUnit {
      return {
        name: node.name,
        plugin: "fake-central",
        caps: {
          topology: "central",
          pageSizes: [4096],
          inputBits: 48,
          outputBits: 48,
          streamIds: 256,
          features: [],
        },
        hardware: {
          translate: (_s, iova) => iova,
          lastSpan: 4096,
          lastFault: null,
          isBypassing: () => false,
          setPower() {},
          readRegister: () => 0,
          writeRegister() {},
          counters: () => ({}),
        },
        driver: {
          allocDomain() {
            throw new IommuError("EOPNOTSUPP", "fake");
          },
        },
      };
    },
  };
}

function summary(p: Platform) {
  return {
    memory: p.memory,
    units: p.units.map((u) => [u.name, u.plugin, [...u.masters]]),
    masters: p.masters.map((m) => ({
      name: m.name,
      dmaBits: m.dmaBits,
      coherent: m.coherent,
      bypass: m.bypass,
      deferred: m.deferred,
      ports: m.ports.map((
        x,
      ) => [x.name, x.unit?.name ?? null, [...x.streamIds]]),
    })),
    unprotected: p.unprotectedMasters().map((m) => m.name),
  };
}

Deno.test("exynos4210 DTB: 12 units, 10 masters, MFC on two ports", () => {
  const p = buildPlatform(EXYNOS4210_DTB, { plugins: [fakeSysmmu()] });
  assertEquals(p.name, "exynos4210");
  assertEquals(p.format, "dtb");
  assertEquals(p.memory, { address: 0x4000_0000, size: 0x4000_0000 });
  assertEquals(p.soc.memory.base, 0x4000_0000);
  assertEquals(p.units.length, 12);
  assert(p.units.every((u) => u.plugin === "fake-sysmmu"));
  assertEquals(p.masters.length, 10);
  const mfc = p.master("codec");
  assertEquals(mfc, p.master("samsung,mfc-v5"));
  assertEquals(mfc.name, "codec@13400000");
  assertEquals(
    mfc.ports.map((x) => [x.name, x.unit?.name]),
    [["left", "sysmmu@13620000"], ["right", "sysmmu@13630000"]],
  );
  assertEquals(mfc.master.ports.length, 2);
  assertEquals(mfc.master.port("right").unit?.name, "sysmmu@13630000");
  // Every master precedes its System MMU in the tree: all were deferred.
  assert(p.masters.every((m) => m.deferred));
  assertEquals(p.log.filter((e) => e.kind === "deferred").length, 10);
  assertEquals(p.unit("sysmmu@13620000").masters, ["codec@13400000/left"]);
  // FIMD1's System MMU has no master.
  assertEquals(p.unit("sysmmu@12220000").masters, []);
  assert(p.log.some((e) => e.kind === "idle" && e.path === "/sysmmu@12220000"));
  assertEquals(p.unprotectedMasters(), []);
  assertEquals(p.warnings, []);
  assertEquals(p.soc.units().length, 12);
  assertEquals(p.soc.masters().length, 10);
});

Deno.test("generic-soc DTB: central unit, stream IDs, dma-bits, bypass, coherent, disabled", () => {
  const bypassed: [string, number[]][] = [];
  const p = buildPlatform(GENERIC_SOC_DTB, {
    plugins: [fakeCentral()],
    configureBypass: (unit, sids) => bypassed.push([unit.name, [...sids]]),
  });
  assertEquals(bypassed, [["iommu@fd800000", [0x40]]]);
  assertEquals(p.warnings, []);
  const noHook = buildPlatform(GENERIC_SOC_DTB, { plugins: [fakeCentral()] });
  assertEquals(noHook.warnings.length, 1);
  assertMatch(
    noHook.warnings[0]!,
    /display@fe300000: iommukit,bypass given but no bypass hook/,
  );
  expectError(
    () =>
      buildPlatform(GENERIC_SOC_DTB, {
        plugins: [fakeCentral()],
        configureBypass: () => {
          throw new IommuError("ENOSPC", "no");
        },
      }),
    "ENOSPC",
    /master display@fe300000: bypass of port port0: no/,
  );
  assertEquals(p.name, "generic-soc");
  assertEquals(p.memory, { address: 0x8000_0000, size: 0x1_0000_0000 });
  assertEquals(p.reservations, [{ address: 0x8000_0000, size: 0x20_0000 }]);
  assertEquals(p.units.map((u) => u.name), ["iommu@fd800000"]);
  assertEquals(p.masters.map((m) => m.name), [
    "ethernet@fe000000",
    "gpu@fe100000",
    "dma@fe200000",
    "display@fe300000",
    "accelerator@fe400000",
    "audio@fe600000",
  ]);
  // The audio device has no IOMMU: one port straight to memory.
  assertEquals(p.master("audio").ports.map((x) => [x.name, x.unit]), [[
    "port0",
    null,
  ]]);
  assertEquals(
    p.master("gpu").ports.map((x) => [x.name, [...x.streamIds]]),
    [["port0", [0x20]], ["port1", [0x21]]],
  );
  assertEquals(p.master("ethernet").ports[0]!.streamIds, [0x10]);
  assertEquals(p.master("dma").dmaBits, 32);
  assertEquals(p.master("ethernet").dmaBits, 64);
  assert(p.master("accelerator").coherent);
  assert(!p.master("ethernet").coherent);
  assert(p.master("display").bypass);
  assertEquals(p.unprotectedMasters().map((m) => m.name), [
    "display@fe300000",
    "audio@fe600000",
  ]);
  assert(
    p.log.some((e) => e.kind === "skipped" && e.path === "/camera@fe500000"),
  );
  expectError(() => p.master("camera"), "ENOENT", /no master "camera"/);
  assert(p.masters.every((m) => !m.deferred));
});

Deno.test("/memreserve/ ranges are held back: no page table or buffer lands in them", () => {
  const p = buildPlatform(GENERIC_SOC_DTB, { plugins: [fakeCentral()] });
  const frames = p.soc.memory.frames;
  assertEquals(frames.stats().reservedBytes, 0x20_0000);
  assert(
    p.log.some((e) =>
      e.kind === "reserved" &&
      /0x80000000\+0x200000: 0x200000 bytes/.test(e.message)
    ),
  );
  const got: number[] = [];
  for (let i = 0; i < 64; i++) got.push(frames.alloc(4096));
  got.push(frames.alloc(0x10_0000));
  for (const pa of got) {
    assert(pa >= 0x8020_0000, `frame at ${pa.toString(16)}`);
  }
  // Only the part inside RAM is held back; a range wholly outside is a warning.
  const json = {
    memory: { base: "0x40000000", size: "0x1000000" },
    reserved: [
      { address: "0x3ff00000", size: "0x200000" },
      { address: "0x80000000", size: "0x1000" },
    ],
    devices: [],
  };
  const q = buildPlatform(json, { plugins: [] });
  assertEquals(q.soc.memory.frames.stats().reservedBytes, 0x10_0000);
  assertEquals(q.warnings, [
    "reservation 0x80000000+0x1000 is not in RAM; nothing held back",
  ]);
});

Deno.test("a JSON description gives the same platform as the DTB", () => {
  for (
    const [dtb, plugins] of [
      [EXYNOS4210_DTB, () => [fakeSysmmu()]],
      [GENERIC_SOC_DTB, () => [fakeCentral()]],
    ] as const
  ) {
    const fromDtb = buildPlatform(dtb, { plugins: plugins() });
    const json = platformJsonFromDtb(dtb);
    // Through text, as a user would keep it.
    const text = JSON.stringify(json);
    const fromJson = buildPlatform(JSON.parse(text), { plugins: plugins() });
    assertEquals(fromJson.format, "json");
    assertEquals(fromJson.name, fromDtb.name);
    assertEquals(summary(fromJson), summary(fromDtb));
    sourceFromJsonText(text); // parses as text too
  }
  const exy = platformJsonFromDtb(EXYNOS4210_DTB);
  const sysmmu = exy.devices.find((d) => d.name === "sysmmu@13620000")!;
  assertEquals(sysmmu.props?.["iommukit,sysmmu-version"], 0x30600000);
  assertEquals(sysmmu.reg, [["0x13620000", "0x1000"]]);
});

function tinyJson(over: Partial<PlatformJson> = {}): PlatformJson {
  return {
    name: "tiny",
    memory: { base: "0x40000000", size: 16 << 20 },
    devices: [
      {
        name: "dev",
        compatible: ["acme,dev"],
        iommus: [{ iommu: "mmu0", name: "rd" }, { iommu: "mmu1", name: "wr" }],
        dmaBits: 40,
      },
      { name: "mmu0", compatible: ["iommukit,flat-iommu"], iommuCells: 0 },
      { name: "mmu1", compatible: ["iommukit,flat-iommu"], iommuCells: 0 },
      { name: "plain", compatible: ["acme,plain"], dmaMaster: true },
    ],
    ...over,
  };
}

Deno.test("JSON: deferral, multi-port master, direct master", () => {
  const p = buildPlatform(tinyJson(), { plugins: [flatIommu()] });
  const dev = p.master("dev");
  assert(dev.deferred);
  assertEquals(dev.dmaBits, 40);
  assertEquals(dev.ports.map((x) => x.unit?.name), ["mmu0", "mmu1"]);
  // Deferred at first sight, wired right after mmu1 was bound.
  const kinds = p.log.map((e) => `${e.kind} ${e.path}`);
  assertEquals(kinds.slice(0, 4), [
    "deferred /dev",
    "bound /mmu0",
    "bound /mmu1",
    "wired /dev",
  ]);
  assertEquals(p.master("plain").ports[0]!.unit, null);
  assertEquals(p.unprotectedMasters().map((m) => m.name), ["plain"]);
  // The DMA really goes through the units.
  const domain = p.soc.createDomain(p.unit("mmu0").unit);
  domain.attach(p.unit("mmu0").unit);
  const buf = p.soc.memory.frames.alloc(4096);
  domain.map(0x10000, buf, 4096, 3);
  dev.master.port("rd").writeBytes(0x10004, new Uint8Array([7]));
  assertEquals(p.soc.memory.read8(buf + 4), 7);
});

Deno.test("a master wired past a disabled IOMMU reaches memory untranslated, with a warning", () => {
  const j = tinyJson();
  j.devices[2]!.status = "disabled";
  const p = buildPlatform(j, { plugins: [flatIommu()] });
  assertEquals(p.master("dev").ports.map((x) => x.unit?.name ?? null), [
    "mmu0",
    null,
  ]);
  assertEquals(p.warnings.length, 1);
  assertMatch(p.warnings[0]!, /\/mmu1, which is disabled/);
  assert(p.unprotectedMasters().some((m) => m.name === "dev"));
  // The disabled entry comes first and the master is deferred on the
  // second: the warning is still logged once.
  const k = tinyJson();
  k.devices[1]!.status = "disabled";
  const q = buildPlatform(k, { plugins: [flatIommu()] });
  assert(q.master("dev").deferred);
  assertEquals(q.warnings.length, 1);
  assertMatch(q.warnings[0]!, /\/mmu0, which is disabled/);
});

Deno.test("JSON errors name the field", () => {
  const opts = { plugins: [flatIommu()] };
  const mut = (f: (j: PlatformJson) => void) => {
    const j = tinyJson();
    f(j);
    return () => buildPlatform(j, opts);
  };
  expectError(
    mut((j) => j.devices[0]!.iommus![0]!.iommu = "nope"),
    "ENOENT",
    /master dev: .*"nope", which does not exist/,
  );
  expectError(
    mut((j) => j.devices[0]!.iommus![0]!.args = [1]),
    "EINVAL",
    /1 argument cell\(s\), but \/mmu0 has iommuCells = 0/,
  );
  expectError(
    mut((j) => (j.devices[0] as unknown as Record<string, unknown>).iomus = []),
    "EINVAL",
    /unknown key "iomus"/,
  );
  expectError(mut((j) => j.devices[1]!.name = "dev"), "EEXIST", /two devices/);
  expectError(
    mut((j) => j.memory.size = "lots"),
    "EINVAL",
    /memory.size must be a number/,
  );
  expectError(
    mut((j) => j.memory.size = -1),
    "EINVAL",
    /memory.size must be a non-negative/,
  );
  expectError(
    mut((j) => {
      j.devices[1]!.iommuCells = 1;
      j.devices[0]!.iommus![0]!.args = ["0x3"];
    }),
    "EINVAL",
    /#iommu-cells = <1>, but plugin flat-iommu expects <0>/,
  );
  expectError(
    mut((j) => j.devices[1]!.compatible = ["acme,unknown-iommu"]),
    "ENODEV",
    /master dev: iommus entry 0 names \/mmu0 .*"acme,unknown-iommu".*no registered plugin/,
  );
  expectError(
    mut((j) => j.devices[0]!.dmaBits = 8),
    "EINVAL",
    /dmaBits must be an integer from 12 to 64/,
  );
  expectError(
    mut((j) => j.memory.size = 12345),
    "EINVAL",
    /platform tiny: RAM .*not a multiple of 64 KiB/,
  );
  expectError(
    () =>
      buildPlatform({ memory: { size: 1 << 20 }, devices: "x" } as never, opts),
    "EINVAL",
    /"devices" must be an array/,
  );
  expectError(() => buildPlatform(null as never, opts), "EINVAL");
  expectError(() => sourceFromJsonText("{ nope"), "EIO", /not valid JSON/);
  expectError(
    () => buildPlatform(tinyJson(), { plugins: [flatIommu(), flatIommu()] }),
    "EEXIST",
  );
});

// Build a small DTB around one master and one IOMMU node.
function dtb(
  iommu: Record<string, unknown>,
  master: Record<string, unknown>,
  withMemory = true,
): Uint8Array {
  const children: FdtNodeDescription[] = [];
  if (withMemory) {
    children.push({
      name: "memory@40000000",
      props: { device_type: "memory", reg: [0x4000_0000, 0x100_0000] },
    });
  }
  children.push(
    { name: "mmu@1000", props: { reg: [0x1000, 0x1000], ...iommu } as never },
    { name: "dev@2000", props: { reg: [0x2000, 0x100], ...master } as never },
  );
  return encodeFdt({
    props: { compatible: "acme,board", "#address-cells": 1, "#size-cells": 1 },
    children,
  });
}

Deno.test("DTB errors: dangling phandle, unknown compatible, cells, memory", () => {
  const opts = { plugins: [flatIommu(), fakeCentral("acme,central")] };
  const good = dtb(
    { compatible: "iommukit,flat-iommu", "#iommu-cells": 0, phandle: 1 },
    { compatible: "acme,dev", iommus: [1] },
  );
  const p = buildPlatform(good, opts);
  assertEquals(p.name, "board");
  assertEquals(p.master("dev").ports[0]!.unit?.name, "mmu@1000");

  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "iommukit,flat-iommu", "#iommu-cells": 0, phandle: 1 },
          { compatible: "acme,dev", iommus: [0x99] },
        ),
        opts,
      ),
    "ENOENT",
    /master dev@2000: .*\/dev@2000 names phandle 0x99, which no node has/,
  );
  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "acme,mystery-iommu", "#iommu-cells": 0, phandle: 1 },
          { compatible: "acme,dev", iommus: [1] },
        ),
        opts,
      ),
    "ENODEV",
    /\/mmu@1000 \(compatible "acme,mystery-iommu"\), which no registered plugin binds/,
  );
  // The master comes after its IOMMU here: the check happens at probe time.
  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "iommukit,flat-iommu", "#iommu-cells": 1, phandle: 1 },
          { compatible: "acme,dev", iommus: [1, 5] },
        ),
        opts,
      ),
    "EINVAL",
    /\/mmu@1000 has #iommu-cells = <1>, but plugin flat-iommu expects <0>/,
  );
  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "iommukit,flat-iommu", phandle: 1 },
          { compatible: "acme,dev" },
        ),
        opts,
      ),
    "EINVAL",
    /\/mmu@1000 is bound by plugin flat-iommu but has no #iommu-cells/,
  );
  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "acme,central", "#iommu-cells": 2, phandle: 1 },
          { compatible: "acme,dev", iommus: [1, 5, 6] },
        ),
        { plugins: [{ ...fakeCentral("acme,central"), iommuCells: 2 }] },
      ),
    "EINVAL",
    /2 specifier cells; iommukit models at most one/,
  );
  expectError(
    () =>
      buildPlatform(
        dtb(
          { "#iommu-cells": 0, phandle: 1 },
          { compatible: "acme,dev", iommus: [1] },
        ),
        opts,
      ),
    "ENODEV",
    /\/mmu@1000, which has no compatible string/,
  );
  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "iommukit,flat-iommu", "#iommu-cells": 0, phandle: 1 },
          { compatible: "acme,dev", iommus: [1] },
          false,
        ),
        opts,
      ),
    "EINVAL",
    /no RAM/,
  );
  expectError(
    () =>
      buildPlatform(
        dtb(
          { compatible: "iommukit,flat-iommu", "#iommu-cells": 0, phandle: 1 },
          { compatible: "acme,dev", iommus: [1], "iommukit,dma-bits": 4 },
        ),
        opts,
      ),
    "EINVAL",
    /dmaBits must be an integer from 12 to 64/,
  );
  expectError(
    () => buildPlatform(EXYNOS4210_DTB.slice(0, 100), opts),
    "EIO",
  );
  // No plugin for the System MMUs at all: the first master names its unit.
  expectError(
    () => buildPlatform(EXYNOS4210_DTB, { plugins: [] }),
    "ENODEV",
    /master fimc@11800000: iommus entry 0 names \/sysmmu@11a20000/,
  );
});

Deno.test("lookups: ambiguous, unknown", () => {
  const p = buildPlatform(EXYNOS4210_DTB, { plugins: [fakeSysmmu()] });
  expectError(() => p.master("fimc"), "EINVAL", /ambiguous/);
  assertEquals(p.findMasters("samsung,exynos4210-fimc").length, 4);
  expectError(() => p.master("gpu"), "ENOENT", /no master "gpu"/);
  expectError(() => p.unit("nope"), "ENOENT", /no unit nope/);
  assertEquals(p.unit("/sysmmu@11a20000").name, "sysmmu@11a20000");
});

Deno.test("built-in platforms with the built-in plugins (loadPlatform)", () => {
  const exy = loadPlatform("exynos4210");
  assertEquals(exy.units.length, 12);
  assert(exy.units.every((u) => u.plugin === "samsung-sysmmu"));
  assertEquals(exy.unit("sysmmu@13620000").unit.caps.pageSizes, [
    4096,
    65536,
    1048576,
  ]);
  assertEquals(exy.master("codec").ports.map((x) => x.name), ["left", "right"]);

  const gen = loadPlatform("GENERIC-SOC");
  assertEquals(gen.name, "generic-soc");
  assertEquals(gen.units[0]!.plugin, "generic-iommu");
  assertEquals(gen.warnings, []);
  // The display's stream really bypasses: its DMA address is physical.
  const display = gen.master("display").master;
  assert(display.port().unprotected);
  assertEquals(gen.soc.unprotectedMasters().map((m) => m.name), [
    "display@fe300000",
    "audio@fe600000",
  ]);
  const pa = gen.soc.memory.frames.alloc(4096);
  display.port().writeBytes(pa + 8, new Uint8Array([0x5a]));
  assertEquals(gen.soc.memory.read8(pa + 8), 0x5a);
  // Any other stream without a domain aborts.
  const fault = gen.master("ethernet").master.port().write(
    pa,
    new Uint8Array([1]),
  );
  assert(fault !== null, "an unattached stream must not reach memory");
  assertEquals(gen.soc.memory.read8(pa), 0);

  expectError(
    () => loadPlatform("vax"),
    "ENOENT",
    /no built-in platform named "vax"/,
  );
  expectError(
    () => loadPlatform("exynos4210", { builtinPlugins: false }),
    "ENODEV",
  );
  const withFlat = loadPlatform(tinyJson(), { plugins: [flatIommu()] });
  assertEquals(withFlat.units.map((u) => u.plugin), [
    "flat-iommu",
    "flat-iommu",
  ]);
  const central = fakeCentral().probe(
    {
      path: "/x",
      name: "x",
      compatible: [],
      reg: [],
      u32: () => undefined,
      has: () => false,
      string: () => undefined,
    },
    { memory: gen.soc.memory, reportFault: () => false },
  );
  expectError(
    () => builtinBypass(central, [1]),
    "EOPNOTSUPP",
    /unit x \(plugin fake-central\) has no bypass mode/,
  );
  builtinBypass(exy.units[0]!.unit, []); // per-device: nothing to do
});

Deno.test("the examples in docs/platforms.md build and run", async () => {
  const doc = await Deno.readTextFile(
    new URL("../docs/platforms.md", import.meta.url),
  );
  const blocks = [...doc.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((m) =>
    JSON.parse(m[1]!)
  );
  assertEquals(blocks.length, 2);
  const p = loadPlatform(blocks[0]);
  assertEquals(p.name, "two-port-board");
  assertEquals(p.reservations, [{ address: 0x4000_0000, size: 0x10_0000 }]);
  assertEquals(p.master("codec").ports.map((x) => x.unit?.name), [
    "mmu-left",
    "mmu-right",
  ]);
  assert(p.master("codec").deferred);
  assertEquals(p.master("codec").dmaBits, 32);
  // Until domains are attached, the System MMUs are disabled and pass DMA
  // through, so the codec and the display are unprotected too.
  assertEquals(p.unprotectedMasters().map((m) => m.name), [
    "codec",
    "display",
    "uart",
  ]);
  const w = workloadFromJson(blocks[1]);
  assertEquals([w.name, w.params.packets, w.params.ring], ["small-rx", 64, 16]);
  const { report } = simulate(
    loadPlatform(blocks[0]),
    workloadByName("video-decode", { frames: 2, width: 64, height: 32 }),
  );
  assertEquals(report.checks.failed, 0);
  assertEquals(report.masters.map((m) => m.name), ["codec", "display"]);
});

Deno.test("exynos4210: a master is unprotected until its System MMUs translate for it", () => {
  const p = loadPlatform("exynos4210");
  const codec = p.masters.find((m) => m.name.startsWith("codec"))!;
  assert(
    p.unprotectedMasters().includes(codec),
    "disabled units pass DMA through",
  );
  const domain = p.soc.createDomain(codec.ports[0]!.unit!);
  for (const port of codec.ports) domain.attach(port.unit!);
  assert(!p.unprotectedMasters().includes(codec), "both units now translate");
  for (const port of codec.ports) domain.detach(port.unit!);
  assert(p.unprotectedMasters().includes(codec), "detached again");
});
