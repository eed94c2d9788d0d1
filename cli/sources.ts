/**
 * Turn `--platform` and `--workload` arguments into a platform and a
 * workload: a built-in name, or a file (DTB or JSON).
 *
 * @module
 */
import { IommuError, type IommuPlugin } from "../core/mod.ts";
import type { Platform } from "../core/mod.ts";
import type { PlatformJson } from "../core/mod.ts";
import { BUILTIN_PLATFORMS, loadPlatform } from "../platforms/mod.ts";
import {
  type Workload,
  WORKLOAD_FACTORIES,
  workloadByName,
  workloadFromJsonText,
} from "../workloads/mod.ts";
import { UsageError } from "./argv.ts";
import type { CliIo } from "./io.ts";

/** A platform as given on the command line, loaded. */
export interface LoadedSource {
  /** The bytes when it came from a file (DTB or JSON), else null. */
  bytes: Uint8Array | null;
  /** `builtin`, `dtb` or `json`. */
  kind: "builtin" | "dtb" | "json";
}

function looksLikeFile(arg: string): boolean {
  return arg.includes("/") || arg.includes("\\") || /\.(dtb|json)$/i.test(arg);
}

/**
 * Read a file, turning I/O failures into a usage error.
 *
 * @param io The I/O.
 * @param command Command name.
 * @param path File path.
 * @returns The bytes.
 * @throws {UsageError} when the file cannot be read.
 */
export function readInput(
  io: CliIo,
  command: string,
  path: string,
): Uint8Array {
  try {
    return io.readFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied (run with --allow-read)"
      : (e as Error).message;
    throw new UsageError(command, `cannot read ${path}: ${why}`);
  }
}

function isDtb(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0xd0 && b[1] === 0x0d && b[2] === 0xfe &&
    b[3] === 0xed;
}

/**
 * Classify and read a platform argument.
 *
 * @param io The I/O.
 * @param command Command name.
 * @param arg A built-in name or a file path.
 * @returns The bytes (files) and kind.
 * @throws {UsageError} for an unknown name or an unreadable file.
 */
export function readPlatformArg(
  io: CliIo,
  command: string,
  arg: string,
): LoadedSource {
  if (
    BUILTIN_PLATFORMS.some((p) => p.name === arg.toLowerCase()) &&
    !looksLikeFile(arg)
  ) {
    return { bytes: null, kind: "builtin" };
  }
  if (!looksLikeFile(arg)) {
    throw new UsageError(
      command,
      `unknown platform "${arg}" (built-in: ${
        BUILTIN_PLATFORMS.map((p) => p.name).join(", ")
      }; or give a .dtb or .json file)`,
    );
  }
  const bytes = readInput(io, command, arg);
  return { bytes, kind: isDtb(bytes) ? "dtb" : "json" };
}

/**
 * Load a platform argument with the built-in plugins.
 *
 * @param io The I/O.
 * @param command Command name.
 * @param arg A built-in name or a file path.
 * @returns The platform.
 * @throws {UsageError} for an unknown name or an unreadable file;
 * {@linkcode IommuError} from the builder (malformed DTB or JSON, …).
 */
export function loadPlatformArg(
  io: CliIo,
  command: string,
  arg: string,
  plugins: readonly IommuPlugin[] = [],
): Platform {
  const src = readPlatformArg(io, command, arg);
  if (src.kind === "builtin") return loadPlatform(arg, { plugins });
  if (src.kind === "dtb") return loadPlatform(src.bytes!, { plugins });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(src.bytes!));
  } catch (e) {
    throw new IommuError(
      "EIO",
      `${arg} is neither a DTB nor JSON (${(e as Error).message})`,
    );
  }
  return loadPlatform(json as PlatformJson, { plugins });
}

function isPlugin(x: unknown): x is IommuPlugin {
  const p = x as IommuPlugin;
  return typeof x === "object" && x !== null && typeof p.name === "string" &&
    Array.isArray(p.compatible) && typeof p.iommuCells === "number" &&
    typeof p.probe === "function";
}

/**
 * Load `--plugin` modules: a comma-separated list of `FILE[#EXPORT]`. The
 * export (default: the module's default export) is a plugin object or a
 * factory called with no arguments that returns one.
 *
 * @param io The I/O.
 * @param command Command name.
 * @param arg The option value, or undefined.
 * @returns The plugins, in order.
 * @throws {UsageError} when a module cannot be loaded, lacks the export, or
 * the export is not a plugin.
 */
export async function loadPluginArgs(
  io: CliIo,
  command: string,
  arg: string | undefined,
): Promise<IommuPlugin[]> {
  if (arg === undefined) return [];
  const out: IommuPlugin[] = [];
  for (const item of arg.split(",").filter((x) => x !== "")) {
    const hash = item.lastIndexOf("#");
    const path = hash < 0 ? item : item.slice(0, hash);
    const name = hash < 0 ? "default" : item.slice(hash + 1);
    let mod: Record<string, unknown>;
    try {
      mod = await io.importModule(path);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "no such module"
        : (e as Error).message.split("\n")[0];
      throw new UsageError(
        command,
        `cannot load plugin module ${path}: ${why}`,
      );
    }
    const exp = mod[name];
    if (exp === undefined) {
      throw new UsageError(
        command,
        `plugin module ${path} has no export "${name}" (exports: ${
          Object.keys(mod).join(", ") || "none"
        }; pick one with ${path}#NAME)`,
      );
    }
    let plugin: unknown = exp;
    if (typeof exp === "function") {
      try {
        plugin = (exp as () => unknown)();
      } catch (e) {
        throw new UsageError(
          command,
          `plugin factory ${path}#${name} threw: ${(e as Error).message}`,
        );
      }
    }
    if (!isPlugin(plugin)) {
      throw new UsageError(
        command,
        `${path}#${name} is not an IOMMU plugin (needs name, compatible, iommuCells and probe)`,
      );
    }
    out.push(plugin);
  }
  return out;
}

/**
 * Load a workload argument: a built-in name or a JSON file.
 *
 * @param io The I/O.
 * @param command Command name.
 * @param arg The argument.
 * @returns The workload.
 * @throws {UsageError} for an unknown name or an unreadable file;
 * {@linkcode IommuError} for a malformed JSON workload.
 */
export function loadWorkloadArg(
  io: CliIo,
  command: string,
  arg: string,
): Workload {
  if (Object.hasOwn(WORKLOAD_FACTORIES, arg)) return workloadByName(arg);
  if (!looksLikeFile(arg)) {
    throw new UsageError(
      command,
      `unknown workload "${arg}" (built-in: ${
        Object.keys(WORKLOAD_FACTORIES).join(", ")
      }; or give a .json file)`,
    );
  }
  const bytes = readInput(io, command, arg);
  return workloadFromJsonText(new TextDecoder().decode(bytes));
}
