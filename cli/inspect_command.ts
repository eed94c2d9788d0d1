/**
 * `iommukit inspect`: show a device tree (or JSON description), which plugin
 * bound which node, and how every master is wired; `--json` converts it to
 * the JSON description.
 *
 * @module
 */
import { type FdtNode, hex, IommuError, parseFdt } from "../core/mod.ts";
import type { Platform } from "../core/mod.ts";
import { type PlatformJson, platformJsonFromDtb } from "../core/mod.ts";
import { BUILTIN_PLATFORMS, loadPlatform } from "../platforms/mod.ts";
import { formatBytes } from "../svg/mod.ts";
import type { ParsedArgs } from "./argv.ts";
import { UsageError } from "./argv.ts";
import { type Command, EXIT_OK, InputError } from "./command.ts";
import type { CliIo } from "./io.ts";
import { loadPluginArgs, readPlatformArg } from "./sources.ts";
import { PLUGIN_OPTION } from "./run_command.ts";
import { renderTable } from "./table.ts";

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function roleOf(p: Platform | null, path: string): string {
  if (p === null) return "";
  const u = p.units.find((x) => x.path === path);
  if (u !== undefined) return `unit ${u.name} (plugin ${u.plugin})`;
  const m = p.masters.find((x) => x.path === path);
  if (m !== undefined) {
    return `master: ${
      m.ports.map((q) =>
        `${q.name} -> ${q.unit?.name ?? "memory"}${
          q.streamIds.length > 0 ? ` [${q.streamIds.map(hex).join(", ")}]` : ""
        }`
      ).join(", ")
    }`;
  }
  return "";
}

function treeLines(root: FdtNode, p: Platform | null): string[] {
  const rows: string[][] = [];
  const walk = (n: FdtNode) => {
    const name = n.depth === 0 ? "/" : "  ".repeat(n.depth) + n.name;
    let compat = "";
    let note = "";
    try {
      compat = n.getStringList("compatible")?.[0] ?? "";
      if (!n.isEnabled()) note = "disabled";
      else if (n.getString("device_type") === "memory") {
        note = n.reg().map((r) => `RAM ${hex(r.address)}+${hex(r.size)}`).join(
          ", ",
        );
      } else note = roleOf(p, n.path);
    } catch (e) {
      note = `malformed: ${(e as Error).message}`;
    }
    rows.push([name, compat, note]);
    for (const c of n.children) walk(c);
  };
  walk(root);
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const w1 = Math.max(...rows.map((r) => r[1]!.length));
  return rows.map((r) =>
    `${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[2]}`.trimEnd()
  );
}

function platformTables(p: Platform): string[] {
  const lines: string[] = [];
  lines.push("", "Units (which plugin bound which node)");
  lines.push(renderTable(
    ["unit", "plugin", "node", "topology", "page sizes", "masters"],
    p.units.map((u) => [
      u.name,
      u.plugin,
      u.path,
      u.unit.caps.topology,
      u.unit.caps.pageSizes.map(formatBytes).join(", "),
      u.masters.join(", ") || "(none)",
    ]),
  ));
  lines.push("", "Masters (wiring)");
  const rows: (string | number)[][] = [];
  for (const m of p.masters) {
    m.ports.forEach((q, i) => {
      rows.push([
        i === 0 ? m.name : "",
        q.name,
        q.unit?.name ?? "(memory)",
        q.streamIds.map(hex).join(", ") || "-",
        i === 0 ? String(m.dmaBits) : "",
        i === 0 ? (m.coherent ? "yes" : "no") : "",
        i === 0 ? (m.bypass ? "yes" : "no") : "",
        i === 0 ? (m.deferred ? "yes" : "no") : "",
      ]);
    });
  }
  lines.push(renderTable(
    [
      "master",
      "port",
      "unit",
      "streams",
      "dma bits",
      "coherent",
      "bypass",
      "deferred",
    ],
    rows,
  ));
  const unprotected = p.unprotectedMasters().map((m) => m.name);
  lines.push(
    "",
    `Unprotected masters: ${
      unprotected.length === 0 ? "none" : unprotected.join(", ")
    }`,
  );
  const notable = p.log.filter((e) => e.kind !== "bound" && e.kind !== "wired");
  if (notable.length > 0) {
    lines.push("", "Probe log");
    for (const e of notable) lines.push(`  ${e.kind}: ${e.message}`);
  }
  return lines;
}

/** `iommukit inspect`. */
export const inspectCommand: Command = {
  name: "inspect",
  summary:
    "show a device tree, which plugin bound which node, and every master's wiring",
  usage: "inspect FILE.dtb|FILE.json|NAME [--json] [--plugin FILE[#EXPORT]]",
  details:
    "With --json, prints the platform as the JSON description `run --platform` accepts\n" +
    "(a way to get an editable platform without dtc).",
  options: [
    PLUGIN_OPTION,
    {
      name: "json",
      type: "boolean",
      help: "print the platform as a JSON description instead",
    },
  ],
  maxPositionals: 1,
  async run(args: ParsedArgs, io: CliIo): Promise<number> {
    const plugins = await loadPluginArgs(
      io,
      "inspect",
      args.options.plugin as string | undefined,
    );
    const arg = args.positionals[0];
    if (arg === undefined) {
      throw new UsageError(
        "inspect",
        "missing FILE.dtb, FILE.json or platform name",
      );
    }
    const src = readPlatformArg(io, "inspect", arg);
    const builtin = BUILTIN_PLATFORMS.find((b) => b.name === arg.toLowerCase());
    const dtb = src.kind === "builtin"
      ? builtin!.dtb
      : src.kind === "dtb"
      ? src.bytes!
      : null;
    let json: PlatformJson | null = null;
    if (dtb === null) {
      try {
        json = JSON.parse(new TextDecoder().decode(src.bytes!)) as PlatformJson;
      } catch (e) {
        throw new InputError(
          `EIO: ${arg} is neither a DTB nor JSON (${(e as Error).message})`,
        );
      }
    }
    if (args.options.json === true) {
      try {
        const out = dtb !== null ? platformJsonFromDtb(dtb) : json!;
        io.stdout(JSON.stringify(out, null, 2) + "\n");
        return EXIT_OK;
      } catch (e) {
        if (e instanceof IommuError) {
          throw new InputError(`${e.kind}: ${e.message}`);
        }
        throw e;
      }
    }
    let platform: Platform | null = null;
    let failure: IommuError | null = null;
    try {
      platform = loadPlatform(dtb ?? json!, { plugins });
    } catch (e) {
      if (!(e instanceof IommuError)) throw e;
      failure = e;
    }
    const lines: string[] = [];
    if (dtb !== null) {
      let fdt;
      try {
        fdt = parseFdt(dtb);
      } catch (e) {
        if (e instanceof IommuError) {
          throw new InputError(`${e.kind}: ${e.message}`);
        }
        throw e;
      }
      const model = fdt.root.getString("model");
      lines.push(
        `${arg}: device tree, ${dtb.length} bytes, ${fdt.nodeCount} nodes${
          model === undefined ? "" : `, model "${model}"`
        }`,
      );
      if (platform !== null) {
        lines.push(
          `platform ${platform.name}: RAM ${
            formatBytes(platform.memory.size)
          } at ${hex(platform.memory.address)}, ${
            plural(platform.units.length, "unit")
          }, ${plural(platform.masters.length, "master")}`,
        );
      }
      for (const r of fdt.reservations) {
        lines.push(`reserved: ${hex(r.address)}+${hex(r.size)}`);
      }
      lines.push("", "Tree", ...treeLines(fdt.root, platform));
    } else {
      lines.push(
        `${arg}: JSON description, ${json?.devices?.length ?? 0} devices`,
      );
      if (platform !== null) {
        lines.push(
          `platform ${platform.name}: RAM ${
            formatBytes(platform.memory.size)
          } at ${hex(platform.memory.address)}, ${
            plural(platform.units.length, "unit")
          }, ${plural(platform.masters.length, "master")}`,
        );
      }
    }
    if (platform !== null) lines.push(...platformTables(platform));
    io.stdout(lines.join("\n") + "\n");
    if (failure !== null) {
      throw new InputError(`${failure.kind}: ${failure.message}`);
    }
    return EXIT_OK;
  },
};
