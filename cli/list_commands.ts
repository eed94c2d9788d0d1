/**
 * `iommukit platforms` and `iommukit workloads`: what is built in.
 *
 * @module
 */
import { hex } from "../core/mod.ts";
import { BUILTIN_PLATFORMS, loadPlatform } from "../platforms/mod.ts";
import { formatBytes } from "../svg/mod.ts";
import { builtinWorkloads } from "../workloads/mod.ts";
import type { ParsedArgs } from "./argv.ts";
import { type Command, EXIT_OK } from "./command.ts";
import type { CliIo } from "./io.ts";
import { renderTable } from "./table.ts";

/** `iommukit platforms`. */
export const platformsCommand: Command = {
  name: "platforms",
  summary: "list the built-in platforms",
  usage: "platforms [--json]",
  options: [{ name: "json", type: "boolean", help: "print the list as JSON" }],
  maxPositionals: 0,
  run(args: ParsedArgs, io: CliIo): number {
    const rows = BUILTIN_PLATFORMS.map((b) => {
      const p = loadPlatform(b.name);
      return {
        name: b.name,
        model: p.model ?? "",
        ram: { base: p.memory.address, size: p.memory.size },
        units: p.units.length,
        plugins: [...new Set(p.units.map((u) => u.plugin))],
        masters: p.masters.map((m) => m.name),
        description: b.description,
      };
    });
    if (args.options.json === true) {
      io.stdout(JSON.stringify(rows, null, 2) + "\n");
      return EXIT_OK;
    }
    io.stdout(
      renderTable(
        ["platform", "RAM", "units", "plugins", "masters", "description"],
        rows.map((r) => [
          r.name,
          `${formatBytes(r.ram.size)} at ${hex(r.ram.base)}`,
          r.units,
          r.plugins.join(", "),
          r.masters.length,
          r.description,
        ]),
      ) +
        "\n\nUse one with: iommukit run --platform NAME; see its wiring with: iommukit inspect NAME\n",
    );
    return EXIT_OK;
  },
};

/** `iommukit workloads`. */
export const workloadsCommand: Command = {
  name: "workloads",
  summary: "list the built-in workloads and their parameters",
  usage: "workloads [--json]",
  details:
    'A JSON workload file picks one and sets parameters:\n  {"kind": "net-rx", "name": "small-rx", "params": {"packets": 64}}',
  options: [{ name: "json", type: "boolean", help: "print the list as JSON" }],
  maxPositionals: 0,
  run(args: ParsedArgs, io: CliIo): number {
    const ws = builtinWorkloads();
    if (args.options.json === true) {
      io.stdout(
        JSON.stringify(
          ws.map((w) => ({
            name: w.name,
            description: w.description,
            params: w.params,
          })),
          null,
          2,
        ) + "\n",
      );
      return EXIT_OK;
    }
    io.stdout(
      renderTable(
        ["workload", "description", "parameters (defaults)"],
        ws.map((w) => [
          w.name,
          w.description,
          Object.entries(w.params).map(([k, v]) => `${k}=${v}`).join(" "),
        ]),
      ) +
        '\n\nA JSON workload file picks one and sets parameters, e.g.\n  {"kind": "net-rx", "name": "small-rx", "params": {"packets": 64}}\n',
    );
    return EXIT_OK;
  },
};
