// The plugin guide (docs/plugins.md) is executable: its TypeScript blocks,
// concatenated, are the tiny-iommu plugin this file tests with the
// conformance suite; its JSON block is the platform built at the end.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { denoIo, memoryIo, runCli } from "../cli.ts";
import { IOMMU_READ, IOMMU_WRITE, type IommuPlugin } from "../core/mod.ts";
import { type ConformanceConfig, runConformance } from "../testing/mod.ts";
import { buildPlatform } from "../core/mod.ts";
import type { PlatformJson } from "../core/mod.ts";

const guide = await Deno.readTextFile(
  new URL("../docs/plugins.md", import.meta.url),
);

function blocks(lang: string): string[] {
  // `ts ignore`: the blocks only make sense together, so `deno test --doc`
  // must not check them one by one; this file checks them as one module.
  const re = new RegExp(
    "^```" + lang + "(?: ignore)?\\n([\\s\\S]*?)^```$",
    "gm",
  );
  return [...guide.matchAll(re)].map((m) => m[1]!);
}

// Write the module to a temporary directory (outside the repository, so no
// stray file is left for fmt or lint), pointing the package's export names
// at this checkout.
const dir = new URL(
  `file://${await Deno.makeTempDir({ prefix: "iommukit-guide-" })}/`,
);
const file = new URL("tiny_iommu.ts", dir);
const source = blocks("ts").join("\n")
  .replaceAll(
    '"@iommukit/iommukit/core"',
    JSON.stringify(new URL("../core/mod.ts", import.meta.url).href),
  )
  .replaceAll(
    '"@iommukit/iommukit/testing"',
    JSON.stringify(new URL("../testing/mod.ts", import.meta.url).href),
  );
assert(!source.includes("@iommukit/"), "an import the test does not map");
await Deno.writeTextFile(
  file,
  "// Generated from docs/plugins.md by tests/plugin_guide_test.ts\n" + source,
);
const mod = await import(file.href) as {
  tinyIommu: () => IommuPlugin;
  tinyConformance: ConformanceConfig;
};

Deno.test("the guide has its code blocks", () => {
  assert(blocks("ts").length >= 5, "TypeScript blocks went missing");
  assertEquals(blocks("json").length, 1);
  assertEquals(typeof mod.tinyIommu, "function");
});

Deno.test("the guide's tiny-iommu passes the conformance suite", (t) =>
  runConformance(t, mod.tinyConformance));

Deno.test("the guide's JSON platform builds and moves data through tiny-iommu", () => {
  const json = JSON.parse(blocks("json")[0]!) as PlatformJson;
  const p = buildPlatform(json, { plugins: [mod.tinyIommu()] });
  const dma = p.master("dma0");
  assert(dma.deferred, "dma0 comes before mmu0 in the guide");
  const unit = p.unit("mmu0").unit;
  assertEquals(unit.plugin, "tiny-iommu");
  const domain = p.soc.createDomain(unit);
  domain.attach(unit);
  const buf = p.soc.memory.frames.alloc(8192);
  domain.map(0x100000, buf, 8192, IOMMU_READ | IOMMU_WRITE);
  const data = new Uint8Array(6000).map((_, i) => i * 7);
  dma.master.port().writeBytes(0x100100, data);
  assertEquals(p.soc.memory.readBytes(buf + 0x100, 6000), data);
  // The TLB: warm it, unmap (strict), and the next access must fault.
  dma.master.port().readBytes(0x100000, 16);
  const before = unit.hardware.counters();
  dma.master.port().readBytes(0x100000, 16);
  const after = unit.hardware.counters();
  assertEquals(after.hits! - before.hits!, 1);
  assertEquals(after.walks, before.walks);
  domain.unmap(0x100000, 8192);
  assert(unit.hardware.counters().invalidations! > before.invalidations!);
  const fault = dma.master.port().read(0x100000, new Uint8Array(4));
  assertEquals(fault?.reason, "translation");
  assertEquals(unit.hardware.counters().faults, 1);
  assertEquals(domain.leaves(), []);
});

Deno.test("the guide's command lines work with the generated module", async () => {
  const board = new URL("tiny-board.json", dir);
  await Deno.writeTextFile(board, blocks("json")[0]!);
  const plugin = `${file.pathname}#tinyIommu`;
  const io = memoryIo();
  const code = await runCli([
    "run",
    "--platform",
    board.pathname,
    "--plugin",
    plugin,
    "--workload",
    "net-rx",
  ], { ...denoIo(), stdout: io.stdout, stderr: io.stderr });
  const out = io.out.join("");
  assertEquals(code, 0, io.err.join(""));
  assertMatch(out, /data checks: \d+ passed, 0 failed/);
  assertMatch(out, /^mmu0\s+tiny-iommu\s+[1-9]/m);
  assertMatch(out, /^dma0\s+iommu\s/m);
  // The guide shows these exact command lines.
  assert(
    guide.includes(
      "inspect tiny-board.json --plugin ./tiny_iommu.ts#tinyIommu",
    ),
  );
  assert(
    guide.includes(
      "run --platform tiny-board.json --plugin ./tiny_iommu.ts#tinyIommu --workload net-rx",
    ),
  );
});

Deno.test("the guide's probe refuses RAM it cannot address", () => {
  const json = JSON.parse(blocks("json")[0]!) as PlatformJson;
  json.memory = { base: "0x100000000", size: "0x1000000" };
  let kind = "";
  try {
    buildPlatform(json, { plugins: [mod.tinyIommu()] });
  } catch (e) {
    kind = (e as { kind: string }).kind;
  }
  assertEquals(kind, "EINVAL");
});

Deno.test("clean up the generated module", async () => {
  await Deno.remove(dir, { recursive: true });
});
