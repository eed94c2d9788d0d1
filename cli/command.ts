/**
 * The shape every command shares, the two error classes that decide the
 * exit code, and the progress line.
 *
 * @module
 */
import { IommuError } from "../core/mod.ts";
import type { OptionSpec, ParsedArgs } from "./argv.ts";
import type { CliIo } from "./io.ts";

/** Exit code: success. */
export const EXIT_OK = 0;
/** Exit code: the simulation failed (an error while running, or a data check). */
export const EXIT_FAILURE = 1;
/** Exit code: a usage error (bad arguments, unreadable or malformed input). */
export const EXIT_USAGE = 2;

/** One command of the command line. */
export interface Command {
  /** Its name, e.g. `run`. */
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The usage line after `iommukit `. */
  readonly usage: string;
  /** Paragraphs after the options in `--help`. */
  readonly details?: string;
  /** Its options. */
  readonly options: readonly OptionSpec[];
  /** Positionals accepted. */
  readonly maxPositionals: number;
  /**
   * Run it.
   * @returns The exit code.
   * @throws {InputError} or {@linkcode IommuError} on failure.
   */
  run(args: ParsedArgs, io: CliIo): number | Promise<number>;
}

/** Bad input found before anything ran (exit code 2). */
export class InputError extends Error {
  /**
   * An input error.
   *
   * @param message One line.
   */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/**
 * Run `fn`, turning an {@linkcode IommuError} into an {@linkcode InputError}
 * (for loading platforms and workloads: a malformed file is the user's to fix).
 *
 * @param fn What to run.
 * @returns Its result.
 * @throws {InputError} for an `IommuError`; anything else as thrown.
 */
export function asInput<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof IommuError) {
      throw new InputError(`${e.kind}: ${e.message}`);
    }
    throw e;
  }
}

/** A progress reporter for long runs. */
export interface Progress {
  /** Feed it work done so far. */
  update(done: number, total: number): void;
  /** Clear the line (if one was drawn). */
  finish(): void;
}

/**
 * A progress line on standard error, drawn only when standard error is a
 * terminal and the run has lasted over a second, at most ten times a second.
 *
 * @param io The I/O.
 * @param label What is running.
 * @returns The reporter.
 */
export function progressLine(io: CliIo, label: string): Progress {
  const start = io.now();
  const tty = io.stderrIsTerminal();
  let last = 0;
  let drawn = false;
  return {
    update(done: number, total: number): void {
      if (!tty) return;
      const now = io.now();
      if (now - start < 1000 || now - last < 100) return;
      last = now;
      drawn = true;
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      io.stderr(`\r${label}: ${pct}% (${done}/${total})\x1b[K`);
    },
    finish(): void {
      if (drawn) io.stderr("\r\x1b[K");
    },
  };
}
