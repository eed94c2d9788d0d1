/**
 * The iommukit command line: `run` (simulate a workload on a platform),
 * `dump` (page tables from simulated RAM), `inspect` (a device tree and its
 * wiring), `platforms`, `workloads`. {@linkcode runCli} runs one command
 * line and returns the exit code: 0 ok, 1 the simulation failed (an error or
 * a data check), 2 a usage or input error.
 *
 * @example
 * ```ts
 * import { memoryIo, runCli } from "./mod.ts";
 * const io = memoryIo();
 * const code = await runCli(["workloads"], io);
 * if (code !== 0 || !io.out.join("").includes("video-decode")) throw new Error();
 * ```
 *
 * @module
 */
import { IommuError } from "../core/mod.ts";
import { optionHelp, parseArgs, UsageError } from "./argv.ts";
import {
  type Command,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  InputError,
} from "./command.ts";
import { dumpCommand } from "./dump_command.ts";
import { inspectCommand } from "./inspect_command.ts";
import { type CliIo, denoIo } from "./io.ts";
import { platformsCommand, workloadsCommand } from "./list_commands.ts";
import { runCommand } from "./run_command.ts";

export { type CliIo, denoIo, type MemoryIo, memoryIo } from "./io.ts";
export {
  type Command,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  InputError,
} from "./command.ts";
export {
  type OptionSpec,
  type OptionType,
  parseArgs,
  type ParsedArgs,
  UsageError,
} from "./argv.ts";

/** The commands, in help order. */
export const COMMANDS: readonly Command[] = [
  runCommand,
  dumpCommand,
  inspectCommand,
  platformsCommand,
  workloadsCommand,
];

const VERSION = "0.1.0";

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "iommukit: simulate IOMMUs and the DMA layer above them",
    "",
    "Usage: iommukit <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    "Options:",
    "  -h, --help     show help (also: iommukit <command> --help)",
    "  --version      print the version",
    "",
    "Exit codes: 0 ok, 1 simulation failed (error or data check), 2 usage or input error.",
    "Example: iommukit run --platform exynos4210 --workload video-decode --svg iova.svg",
    "",
  ].join("\n");
}

function commandHelp(c: Command): string {
  return [
    `Usage: iommukit ${c.usage}`,
    "",
    c.summary.charAt(0).toUpperCase() + c.summary.slice(1) + ".",
    "",
    "Options:",
    optionHelp(c.options),
    ...(c.details === undefined ? [] : ["", c.details]),
    "",
  ].join("\n");
}

/**
 * Run one command line.
 *
 * @param args The arguments (without the program name).
 * @param io Where output goes and files come from (default: the real ones).
 * @returns The exit code.
 */
export function runCli(
  args: readonly string[],
  io: CliIo = denoIo(),
): Promise<number> {
  return runCliAsync(args, io);
}

async function runCliAsync(
  args: readonly string[],
  io: CliIo,
): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "-h" || first === "--help") {
    io.stdout(mainHelp());
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === "--version") {
    io.stdout(`iommukit ${VERSION}\n`);
    return EXIT_OK;
  }
  if (first === "help") {
    const c = COMMANDS.find((x) => x.name === rest[0]);
    io.stdout(c === undefined ? mainHelp() : commandHelp(c));
    return EXIT_OK;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (command === undefined) {
    io.stderr(
      `iommukit: unknown command "${first}" (commands: ${
        COMMANDS.map((c) => c.name).join(", ")
      }; see iommukit --help)\n`,
    );
    return EXIT_USAGE;
  }
  try {
    const parsed = parseArgs(
      command.name,
      rest,
      command.options,
      command.maxPositionals,
    );
    if (parsed.options.help === true) {
      io.stdout(commandHelp(command));
      return EXIT_OK;
    }
    return await command.run(parsed, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(
        `iommukit ${command.name}: ${e.message} (see iommukit ${command.name} --help)\n`,
      );
      return EXIT_USAGE;
    }
    if (e instanceof InputError) {
      io.stderr(`iommukit ${command.name}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof IommuError) {
      io.stderr(
        `iommukit ${command.name}: simulation failed: ${e.kind}: ${e.message}\n`,
      );
      return EXIT_FAILURE;
    }
    io.stderr(
      `iommukit ${command.name}: internal error: ${
        (e as Error)?.stack ?? String(e)
      }\n`,
    );
    return EXIT_FAILURE;
  }
}
