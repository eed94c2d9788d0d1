// The command line, run as a subprocess (as users run it) for every
// command, plus in-process checks of the parser, tables and progress line.
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { encodeFdt } from "../core/mod.ts";
import { type CliIo, denoIo, memoryIo, runCli } from "../cli.ts";
import { parseArgs, UsageError } from "../cli/argv.ts";
import { progressLine } from "../cli/command.ts";
import { formatCount, percent, renderTable } from "../cli/table.ts";
import { checkXml } from "./support/xml_wellformed.ts";

const root = new URL("../", import.meta.url);
const tmp = await Deno.makeTempDir({ prefix: "iommukit-cli-" });
const file = (name: string) => `${tmp}/${name}`;

await Deno.writeTextFile(
  file("small-vd.json"),
  JSON.stringify({
    kind: "video-decode",
    name: "small-vd",
    params: {
      frames: 3,
      width: 64,
      height: 32,
      buffers: 2,
      bitstreamKiB: 4,
      firmwareKiB: 0,
    },
  }),
);
await Deno.writeTextFile(
  file("small-rx.json"),
  JSON.stringify({
    kind: "net-rx",
    params: { packets: 40, ring: 8, lateDmaPercent: 50 },
  }),
);
await Deno.writeTextFile(
  file("small-gpu.json"),
  JSON.stringify({
    kind: "gpu",
    params: { allocations: 2, maxKiB: 1024, shared: 1, sharedKiB: 64 },
  }),
);

interface Result {
  code: number;
  out: string;
  err: string;
}

async function cli(...args: string[]): Promise<Result> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "cli.ts", ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

// The same command line in process (real files, captured output): for the
// many small cases, so the file stays fast.
async function inProcess(...args: string[]): Promise<Result> {
  const out: string[] = [], err: string[] = [];
  // Relative paths resolve against the repository, as for the subprocesses
  // (no chdir: other test files may run in the same process).
  const at = (path: string) =>
    path.startsWith("/") ? path : new URL(path, root);
  const io: CliIo = {
    ...denoIo(),
    stdout: (t) => void out.push(t),
    stderr: (t) => void err.push(t),
    readFile: (path) => Deno.readFileSync(at(path)),
    writeFile: (path, text) => Deno.writeTextFileSync(at(path), text),
    stderrIsTerminal: () => false,
  };
  const code = await runCli(args, io);
  return { code, out: out.join(""), err: err.join("") };
}

function oneLine(r: Result, code: number, re: RegExp): void {
  assertEquals(r.code, code, r.err);
  const lines = r.err.trimEnd().split("\n");
  assertEquals(lines.length, 1, `one error line, got: ${r.err}`);
  assertMatch(lines[0]!, re);
}

Deno.test("--help on the program and every command", async () => {
  const top = await cli("--help");
  assertEquals(top.code, 0);
  for (const c of ["run", "dump", "inspect", "platforms", "workloads"]) {
    assertStringIncludes(top.out, `  ${c} `);
    const h = await inProcess(c, "--help");
    assertEquals(h.code, 0, c);
    assertStringIncludes(h.out, `Usage: iommukit ${c}`);
    assertStringIncludes(h.out, "-h, --help");
  }
  const run = await inProcess("run", "-h");
  for (
    const o of [
      "--platform",
      "--workload",
      "--seed",
      "--strict",
      "--lazy",
      "--json",
      "--svg",
    ]
  ) {
    assertStringIncludes(run.out, o);
  }
  const none = await inProcess();
  assertEquals(none.code, 2);
  assertEquals(
    (await inProcess("--version")).out.startsWith("iommukit "),
    true,
  );
});

Deno.test("platforms and workloads list what is built in", async () => {
  const p = await cli("platforms");
  assertEquals(p.code, 0);
  assertMatch(
    p.out,
    /exynos4210\s+1 GiB at 0x40000000\s+12\s+samsung-sysmmu\s+10/,
  );
  assertMatch(
    p.out,
    /generic-soc\s+4 GiB at 0x80000000\s+1\s+generic-iommu\s+6/,
  );
  const pj = JSON.parse((await inProcess("platforms", "--json")).out);
  assertEquals(pj.map((x: { name: string }) => x.name), [
    "exynos4210",
    "generic-soc",
  ]);
  const w = await cli("workloads");
  assertEquals(w.code, 0);
  for (const n of ["video-decode", "net-rx", "gpu"]) {
    assertMatch(w.out, new RegExp(`^${n} `, "m"));
  }
  assertStringIncludes(w.out, "frames=12");
  const wj = JSON.parse((await inProcess("workloads", "--json")).out);
  assertEquals(wj.length, 3);
});

Deno.test("run prints a table per unit and per master", async () => {
  const r = await cli(
    "run",
    "--platform",
    "exynos4210",
    "--workload",
    file("small-vd.json"),
  );
  assertEquals(r.code, 0, r.err);
  assertStringIncludes(
    r.out,
    "platform exynos4210, workload small-vd, seed 1, strict invalidation",
  );
  assertStringIncludes(
    r.out,
    "data checks: 9 passed, 0 failed; device faults: 0",
  );
  assertMatch(
    r.out,
    /unit\s+plugin\s+maps\s+unmaps\s+pages mapped\s+TLB hit rate\s+walks\s+invalidations\s+faults/,
  );
  // Both MFC units did work; idle units are left out and counted.
  assertMatch(
    r.out,
    /sysmmu@13620000\s+samsung-sysmmu\s+[1-9]\d*\s+\d+\s+[1-9]/,
  );
  assertMatch(r.out, /sysmmu@13630000\s+samsung-sysmmu\s+[1-9]/);
  assert(!r.out.includes("sysmmu@12220000"), "idle unit listed");
  assertStringIncludes(r.out, "\n9 idle units not shown; --all shows them\n");
  // --all lists them: an idle unit shows zeros and no hit rate.
  const all = await inProcess(
    "run",
    "--platform",
    "exynos4210",
    "--workload",
    file("small-vd.json"),
    "--all",
  );
  assertEquals(all.code, 0, all.err);
  assertMatch(
    all.out,
    /sysmmu@12220000\s+samsung-sysmmu\s+0\s+0\s+0\s+-\s+0\s+0\s+0/,
  );
  assert(!all.out.includes("idle unit"), "--all still hides units");
  assertEquals(all.out.match(/samsung-sysmmu/g)?.length, 12);
  assertEquals(r.out.match(/samsung-sysmmu/g)?.length, 3);
  assertMatch(
    r.out,
    /master\s+mode\s+bytes moved\s+live mappings\s+IOVA in use\s+faults\n/,
  );
  assertMatch(r.out, /codec@13400000\s+iommu\s+\S+ KiB\s+2\s+/);
  assertMatch(r.out, /fimd@11c00000\s+iommu\s+24 KiB\s+2\s+/);
  assert(!r.out.includes("stale accesses"), "stale column only in lazy mode");
});

Deno.test("run --lazy --json --svg: one JSON document, stale accesses, a picture", async () => {
  const svg = file("rx.svg");
  const r = await cli(
    "run",
    "--platform",
    "generic-soc",
    "--workload",
    file("small-rx.json"),
    "--lazy",
    "--seed",
    "9",
    "--json",
    "--svg",
    svg,
  );
  assertEquals(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assertEquals([j.platform, j.workload, j.seed, j.policy], [
    "generic-soc",
    "net-rx",
    9,
    "lazy",
  ]);
  assertEquals(j.checks.failed, 0);
  assertEquals(j.masters[0].name, "ethernet@fe000000");
  assert(j.masters[0].staleAccesses > 0);
  assert(j.units[0].lookups > 0 && j.units[0].walks > 0);
  assertStringIncludes(r.err, `wrote ${svg} (1 domain)`);
  const els = checkXml(await Deno.readTextFile(svg));
  assertEquals(
    els.filter((e) => e.name === "g" && e.attrs.class === "domain").length,
    1,
  );
  // Same seed, same document.
  const again = await inProcess(
    "run",
    "--platform",
    "generic-soc",
    "--workload",
    file("small-rx.json"),
    "--lazy",
    "--seed",
    "9",
    "--json",
  );
  assertEquals(again.out, r.out);
  const text = await inProcess(
    "run",
    "--platform",
    "generic-soc",
    "--workload",
    file("small-rx.json"),
    "--lazy",
  );
  assertMatch(
    text.out,
    /stale accesses\s+pending unmaps\s+timer flushes\s+size flushes/,
  );
  // 40 packets of 100 us: 4 ms, under the 10 ms timeout and the 256-entry
  // queue, so no flush yet; JSON splits flushes by cause.
  assertEquals(
    [j.masters[0].timerFlushes, j.masters[0].sizeFlushes, j.masters[0].flushes],
    [0, 0, 0],
  );
  assertMatch(
    text.out,
    /ethernet@fe000000\s+iommu\s+\S+ KiB\s+\d+\s+\S+ KiB\s+0\s+\d+\s+\d+\s+0\s+0\n/,
  );
});

Deno.test("dump walks the page tables range by range", async () => {
  const r = await cli(
    "dump",
    "--platform",
    "generic-soc",
    "--workload",
    file("small-gpu.json"),
    "--master",
    "gpu",
  );
  assertEquals(r.code, 0, r.err);
  assertMatch(
    r.out,
    /^---\[ domain 1: gpu@fe100000: units iommu@fd800000, 48-bit IOVA \]---$/m,
  );
  assertMatch(
    r.out,
    /^0x[0-9a-f]{12}-0x[0-9a-f]{12}\s+\S+ \S+\s+\d+ x (4 KiB|2 MiB)\s+RW\s+-> /m,
  );
  assertMatch(r.out, /level 4: \d+ table\(s\), \d+ KiB, \d+\/\d+ entries used/);
  assert(!r.out.includes("accelerator"), "--master picks one domain");
  const j = JSON.parse(
    (await inProcess(
      "dump",
      "--platform",
      "generic-soc",
      "--workload",
      file("small-gpu.json"),
      "--json",
    )).out,
  );
  assertEquals(j.domains.map((d: { master: string }) => d.master), [
    "gpu@fe100000",
    "accelerator@fe400000",
  ]);
  const ranges = j.domains[1].ranges;
  assertEquals(
    ranges.reduce((s: number, x: { size: number }) => s + x.size, 0),
    64 * 1024,
  );
  assertEquals(ranges[0].prot & 3, 1, "the consumer maps TO_DEVICE: read-only");
  const none = await inProcess(
    "dump",
    "--workload",
    "none",
    "--master",
    "codec",
  );
  assertEquals(none.code, 0, none.err);
  assertStringIncludes(none.out, "platform exynos4210, no workload");
  assertStringIncludes(none.out, "(no mappings)");
});

Deno.test("inspect shows the tree, the bindings and the wiring; --json round-trips", async () => {
  const r = await cli("inspect", "platforms/exynos4210.dtb");
  assertEquals(r.code, 0, r.err);
  assertStringIncludes(r.out, 'model "Samsung Exynos4210 (iommukit model)"');
  assertMatch(r.out, /^Tree$/m);
  assertMatch(
    r.out,
    /^ {2}codec@13400000\s+samsung,mfc-v5\s+master: left -> sysmmu@13620000, right -> sysmmu@13630000$/m,
  );
  assertMatch(
    r.out,
    /^ {2}sysmmu@13620000\s+samsung,exynos-sysmmu\s+unit sysmmu@13620000 \(plugin samsung-sysmmu\)$/m,
  );
  assertMatch(
    r.out,
    /^sysmmu@12220000\s+samsung-sysmmu\s+\/sysmmu@12220000\s+per-device\s+4 KiB, 64 KiB, 1 MiB\s+\(none\)$/m,
  );
  assertMatch(
    r.out,
    /^codec@13400000\s+left\s+sysmmu@13620000\s+-\s+64\s+no\s+no\s+yes$/m,
  );
  assertMatch(r.out, /^\s+right\s+sysmmu@13630000/m);
  assertStringIncludes(
    r.out,
    "deferred: master codec@13400000 deferred: /sysmmu@13620000 is not probed yet",
  );
  const g = await inProcess("inspect", "generic-soc");
  assertMatch(
    g.out,
    /gpu@fe100000\s+iommukit,generic-gpu\s+master: port0 -> iommu@fd800000 \[0x20\], port1 -> iommu@fd800000 \[0x21\]/,
  );
  assertStringIncludes(
    g.out,
    "Unprotected masters: display@fe300000, audio@fe600000",
  );
  assertMatch(g.out, /camera@fe500000\s+iommukit,generic-camera\s+disabled/);
  // DTB -> JSON through the CLI, then run on the JSON.
  const j = await inProcess("inspect", "platforms/generic_soc.dtb", "--json");
  assertEquals(j.code, 0);
  await Deno.writeTextFile(file("generic.json"), j.out);
  const run = await inProcess(
    "run",
    "--platform",
    file("generic.json"),
    "--workload",
    file("small-rx.json"),
    "--json",
  );
  assertEquals(run.code, 0, run.err);
  assertEquals(JSON.parse(run.out).platform, "generic-soc");
  const ij = await inProcess("inspect", file("generic.json"));
  assertEquals(ij.code, 0, ij.err);
  assertStringIncludes(ij.out, "JSON description, 8 devices");
  assertMatch(ij.out, /^gpu@fe100000\s+port0\s+iommu@fd800000\s+0x20/m);
});

Deno.test("user errors: one clear line and exit code 2", async () => {
  oneLine(
    await cli("run", "--platform", "nope"),
    2,
    /^iommukit run: unknown platform "nope" \(built-in: exynos4210, generic-soc/,
  );
  oneLine(
    await inProcess("run", "--workload", "nope"),
    2,
    /unknown workload "nope"/,
  );
  oneLine(
    await inProcess("run", "--seed", "-3"),
    2,
    /option --seed needs a non-negative integer, got "-3"/,
  );
  oneLine(
    await inProcess("run", "--strict", "--lazy"),
    2,
    /--strict and --lazy exclude each other/,
  );
  oneLine(
    await inProcess("run", "--frames", "3"),
    2,
    /unknown option --frames/,
  );
  oneLine(await inProcess("dump", "stray"), 2, /unexpected argument "stray"/);
  oneLine(
    await inProcess("frobnicate"),
    2,
    /^iommukit: unknown command "frobnicate"/,
  );
  oneLine(await inProcess("inspect"), 2, /missing FILE\.dtb/);
  oneLine(
    await inProcess("inspect", file("missing.dtb")),
    2,
    /cannot read .*missing\.dtb: no such file/,
  );
  await Deno.writeFile(
    file("bad.dtb"),
    new Uint8Array([0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 8]),
  );
  oneLine(
    await cli("run", "--platform", file("bad.dtb")),
    2,
    /^iommukit run: EIO: FDT: /,
  );
  await Deno.writeTextFile(
    file("bad.json"),
    '{"kind": "gpu", "params": {"allocations": 0}}',
  );
  oneLine(
    await inProcess("run", "--workload", file("bad.json")),
    2,
    /EINVAL: workload gpu: parameter allocations must be an integer from 1/,
  );
  oneLine(
    await inProcess("dump", "--workload", "none", "--master", "nobody"),
    2,
    /^iommukit dump: unknown master "nobody" on platform exynos4210 \(masters: fimc@11800000, .*codec@13400000\) \(see iommukit dump --help\)$/,
  );
  oneLine(
    await inProcess("dump", "--workload", "none", "--master", "fimc"),
    2,
    /^iommukit dump: master "fimc" is ambiguous on exynos4210: fimc@11800000, /,
  );
  // A DTB whose IOMMU no plugin binds: the tree is still shown.
  await Deno.writeFile(
    file("unknown.dtb"),
    encodeFdt({
      props: {
        compatible: "acme,board",
        "#address-cells": 1,
        "#size-cells": 1,
      },
      children: [
        {
          name: "memory@40000000",
          props: { device_type: "memory", reg: [0x4000_0000, 0x100_0000] },
        },
        {
          name: "mmu@1000",
          props: { compatible: "acme,mmu", "#iommu-cells": 0, phandle: 1 },
        },
        { name: "dev@2000", props: { compatible: "acme,dev", iommus: [1] } },
      ],
    }),
  );
  const u = await inProcess("inspect", file("unknown.dtb"));
  oneLine(
    u,
    2,
    /ENODEV: master dev@2000: iommus entry 0 names \/mmu@1000 \(compatible "acme,mmu"\), which no registered plugin binds/,
  );
  assertMatch(u.out, /mmu@1000\s+acme,mmu/);
});

Deno.test("--plugin registers plugins from a module", async () => {
  const support = new URL("./support/flat_iommu.ts", import.meta.url).href;
  await Deno.writeTextFile(
    file("plugins.ts"),
    `export { flatIommu } from "${support}";\nexport const notAPlugin = 3;\n`,
  );
  await Deno.writeTextFile(
    file("flat.json"),
    JSON.stringify({
      name: "flat-board",
      memory: { base: "0x40000000", size: "0x4000000" },
      devices: [
        {
          name: "nic",
          compatible: ["iommukit,generic-nic"],
          iommus: [{ iommu: "mmu" }],
        },
        { name: "mmu", compatible: ["iommukit,flat-iommu"], iommuCells: 0 },
      ],
    }),
  );
  const r = await cli(
    "run",
    "--plugin",
    `${file("plugins.ts")}#flatIommu`,
    "--platform",
    file("flat.json"),
    "--workload",
    file("small-rx.json"),
  );
  assertEquals(r.code, 0, r.err);
  assertMatch(r.out, /^mmu\s+flat-iommu\s+[1-9]/m);
  assertMatch(r.out, /^nic\s+iommu\s/m);
  const i = await inProcess(
    "inspect",
    file("flat.json"),
    "--plugin",
    `${file("plugins.ts")}#flatIommu`,
  );
  assertEquals(i.code, 0, i.err);
  assertMatch(i.out, /^mmu\s+flat-iommu\s+\/mmu/m);
  // Without it the IOMMU has no plugin.
  oneLine(
    await inProcess("run", "--platform", file("flat.json")),
    2,
    /ENODEV: master nic: .*no registered plugin binds/,
  );
  oneLine(
    await inProcess("run", "--plugin", file("plugins.ts")),
    2,
    /plugin module .*plugins\.ts has no export "default" \(exports: flatIommu, notAPlugin; pick one with/,
  );
  oneLine(
    await inProcess("run", "--plugin", `${file("plugins.ts")}#notAPlugin`),
    2,
    /plugins\.ts#notAPlugin is not an IOMMU plugin/,
  );
  oneLine(
    await inProcess("dump", "--plugin", file("nope.ts")),
    2,
    /cannot load plugin module .*nope\.ts/,
  );
  // A path with characters that mean something in a URL names the file.
  for (const dir of ["q?x", "d#1", "50%25 off"]) {
    await Deno.mkdir(file(dir), { recursive: true });
    await Deno.copyFile(file("plugins.ts"), file(`${dir}/plugins.ts`));
    const r = await inProcess(
      "inspect",
      file("flat.json"),
      "--plugin",
      `${file(dir)}/plugins.ts#flatIommu`,
    );
    assertEquals(r.code, 0, `${dir}: ${r.err}`);
    assertMatch(r.out, /^mmu\s+flat-iommu\s+\/mmu/m);
  }
});

Deno.test("dump --master of a master without a domain in the run is a usage error", async () => {
  // The default workload (video-decode) never maps for g2d.
  oneLine(
    await inProcess("dump", "--master", "g2d"),
    2,
    /^iommukit dump: master g2d@12800000 took no part in workload video-decode: no domain to dump \(masters used: .*codec@13400000.*\) \(see iommukit dump --help\)$/,
  );
  oneLine(
    await inProcess(
      "dump",
      "--platform",
      "generic-soc",
      "--workload",
      "none",
      "--master",
      "audio",
    ),
    2,
    /^iommukit dump: master audio@fe600000 has no IOMMU: its DMA addresses are physical/,
  );
});

Deno.test("simulation errors exit with 1", async () => {
  await Deno.writeTextFile(
    file("empty.json"),
    JSON.stringify({ memory: { size: "0x1000000" }, devices: [] }),
  );
  oneLine(
    await cli("run", "--platform", file("empty.json"), "--workload", "net-rx"),
    1,
    /^iommukit run: simulation failed: ENODEV: workload net-rx needs a NIC/,
  );
});

Deno.test("in process: parser, tables, progress line", async () => {
  const specs = [
    { name: "seed", type: "number" as const, help: "" },
    { name: "json", type: "boolean" as const, help: "" },
    { name: "svg", type: "string" as const, help: "" },
  ];
  assertEquals(
    parseArgs(
      "x",
      ["--seed=0x10", "--json", "--svg", "a.svg", "pos"],
      specs,
      1,
    ),
    {
      options: { seed: 16, json: true, svg: "a.svg" },
      positionals: ["pos"],
    },
  );
  assertEquals(parseArgs("x", ["--", "--json"], specs, 1).positionals, [
    "--json",
  ]);
  for (
    const [args, re] of [
      [["--json=1"], /takes no value/],
      [["--svg"], /needs a value/],
      [["--svg", "--json"], /needs a value/],
      [["--seed", "1", "--seed", "2"], /given twice/],
      [["-x"], /unknown option -x/],
      [["a", "b"], /too many arguments/],
    ] as const
  ) {
    const e = assertThrows(() => parseArgs("x", args, specs, 1), UsageError);
    assertMatch(e.message, re);
  }
  assertEquals(formatCount(1234567), "1,234,567");
  assertEquals(formatCount(-12.5), "-12.50");
  assertEquals(percent(1, 3), "33.3%");
  assertEquals(percent(0, 0), "-");
  assertEquals(
    renderTable(["a", "n"], [["x", 5], ["yy", 1000]]),
    "a       n\n--  -----\nx       5\nyy  1,000",
  );

  const io = memoryIo();
  assertEquals(await runCli(["workloads"], io), 0);
  assertStringIncludes(io.out.join(""), "video-decode");

  // The progress line appears only on a terminal and after a second.
  const draw = (tty: boolean) => {
    const err: string[] = [];
    let t = 0;
    const fake: CliIo = {
      ...memoryIo(),
      stderr: (s) => void err.push(s),
      stderrIsTerminal: () => tty,
      now: () => (t += 300),
    };
    const p = progressLine(fake, "job");
    for (let i = 1; i <= 10; i++) p.update(i, 10);
    p.finish();
    return err.join("");
  };
  assertMatch(draw(true), /\rjob: \d+% \(\d+\/10\)/);
  assert(draw(true).endsWith("\r\x1b[K"));
  assertEquals(draw(false), "");
});

Deno.test({
  name: "clean up",
  fn: async () => {
    await Deno.remove(tmp, { recursive: true });
  },
});
