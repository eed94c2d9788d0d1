/**
 * A tiny command-line parser: `--name value`, `--name=value`, boolean
 * `--flag`, `-h`, and positionals; anything else is a usage error.
 *
 * @module
 */

/** What an option takes. */
export type OptionType = "string" | "number" | "boolean";

/** One option of a command. */
export interface OptionSpec {
  /** Long name without dashes, e.g. `platform`. */
  name: string;
  /** What it takes. */
  type: OptionType;
  /** One line of help. */
  help: string;
  /** Placeholder in help, e.g. `NAME|FILE`. */
  value?: string;
  /** Default value shown in help. */
  default?: string;
}

/** Parsed arguments. */
export interface ParsedArgs {
  /** Option values by name (booleans are `true` when given). */
  options: Record<string, string | number | boolean>;
  /** Positional arguments in order. */
  positionals: string[];
}

/** A mistake on the command line: printed as one line, exit code 2. */
export class UsageError extends Error {
  /** The command it concerns (for the `--help` hint), or empty. */
  readonly command: string;
  /**
   * A usage error.
   *
   * @param command The command.
   * @param message One sentence.
   */
  constructor(command: string, message: string) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/**
 * Parse `args` against `specs`. `-h`/`--help` is always accepted as the
 * boolean option `help`.
 *
 * @param command Command name (for messages).
 * @param args The arguments after the command.
 * @param specs Accepted options.
 * @param maxPositionals How many positionals are allowed.
 * @returns The options and positionals.
 * @throws {UsageError} for an unknown option, a missing or malformed value,
 * a repeated option, or too many positionals.
 */
export function parseArgs(
  command: string,
  args: readonly string[],
  specs: readonly OptionSpec[],
  maxPositionals = 0,
): ParsedArgs {
  const options: Record<string, string | number | boolean> = {};
  const positionals: string[] = [];
  const byName = new Map(specs.map((s) => [s.name, s]));
  let onlyPositionals = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (onlyPositionals || !a.startsWith("-") || a === "-") {
      if (positionals.length >= maxPositionals) {
        throw new UsageError(
          command,
          maxPositionals === 0
            ? `unexpected argument "${a}"`
            : `too many arguments ("${a}")`,
        );
      }
      positionals.push(a);
      continue;
    }
    if (a === "--") {
      onlyPositionals = true;
      continue;
    }
    if (a === "-h" || a === "--help") {
      options.help = true;
      continue;
    }
    if (!a.startsWith("--")) {
      throw new UsageError(command, `unknown option ${a}`);
    }
    const eq = a.indexOf("=");
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) {
      throw new UsageError(command, `unknown option --${name}`);
    }
    if (Object.hasOwn(options, name)) {
      throw new UsageError(command, `option --${name} given twice`);
    }
    if (spec.type === "boolean") {
      if (eq >= 0) {
        throw new UsageError(command, `option --${name} takes no value`);
      }
      options[name] = true;
      continue;
    }
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw new UsageError(
          command,
          `option --${name} needs a value (${spec.value ?? spec.type})`,
        );
      }
      value = next;
      i++;
    }
    if (spec.type === "number") {
      const t = value.trim();
      const n = /^(0x[0-9a-f]+|\d+)$/i.test(t) ? Number(t) : NaN;
      if (!Number.isSafeInteger(n)) {
        throw new UsageError(
          command,
          `option --${name} needs a non-negative integer, got "${value}"`,
        );
      }
      options[name] = n;
    } else options[name] = value;
  }
  return { options, positionals };
}

/**
 * Format the options of a command as help lines.
 *
 * @param specs The options.
 * @returns Indented, aligned lines.
 */
export function optionHelp(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => [
    `--${s.name}${
      s.type === "boolean" ? "" : ` ${s.value ?? s.type.toUpperCase()}`
    }`,
    s.help + (s.default !== undefined ? ` (default: ${s.default})` : ""),
  ]);
  rows.push(["-h, --help", "show this help"]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`).join("\n");
}
