/**
 * The built-in workloads by name, and workloads loaded from JSON: a JSON
 * workload picks a built-in engine (`kind`) and sets its parameters.
 *
 * @module
 */
import { IommuError } from "../core/mod.ts";
import { gpu } from "./gpu.ts";
import { netRx } from "./net_rx.ts";
import { videoDecode } from "./video_decode.ts";
import type { Workload } from "./workload.ts";

/** A workload as JSON. */
export interface WorkloadJson {
  /** Built-in engine: `video-decode`, `net-rx` or `gpu`. */
  kind: string;
  /** Name to report (default: the kind). */
  name?: string;
  /** Description to list (default: the engine's). */
  description?: string;
  /** Engine parameters (see `iommukit workloads`). */
  params?: Record<string, number>;
}

/** Workload factories by engine name. */
export const WORKLOAD_FACTORIES: Readonly<
  Record<string, (params?: Readonly<Record<string, unknown>>) => Workload>
> = Object.freeze({
  "video-decode": videoDecode,
  "net-rx": netRx,
  "gpu": gpu,
});

/**
 * Every built-in workload with its default parameters.
 *
 * @returns The workloads, in a stable order.
 */
export function builtinWorkloads(): Workload[] {
  return Object.values(WORKLOAD_FACTORIES).map((f) => f());
}

/**
 * A built-in workload by name.
 *
 * @param name `video-decode`, `net-rx` or `gpu`.
 * @param params Parameters to override.
 * @returns The workload.
 * @throws {IommuError} `ENOENT` for an unknown name; `EINVAL` for bad parameters.
 */
export function workloadByName(
  name: string,
  params: Readonly<Record<string, unknown>> = {},
): Workload {
  const f = WORKLOAD_FACTORIES[name];
  if (f === undefined || !Object.hasOwn(WORKLOAD_FACTORIES, name)) {
    throw new IommuError(
      "ENOENT",
      `no workload named "${name}" (built-in: ${
        Object.keys(WORKLOAD_FACTORIES).join(", ")
      })`,
    );
  }
  return f(params);
}

/**
 * A workload from its JSON description.
 *
 * @param json The parsed JSON value.
 * @returns The workload.
 * @throws {IommuError} `EINVAL` for a malformed description or bad
 * parameters; `ENOENT` for an unknown `kind`.
 */
export function workloadFromJson(json: unknown): Workload {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new IommuError(
      "EINVAL",
      "workload JSON: the top level must be an object",
    );
  }
  const j = json as Record<string, unknown>;
  for (const k of Object.keys(j)) {
    if (!["kind", "name", "description", "params"].includes(k)) {
      throw new IommuError("EINVAL", `workload JSON: unknown key "${k}"`);
    }
  }
  if (typeof j.kind !== "string") {
    throw new IommuError(
      "EINVAL",
      `workload JSON: "kind" must be one of ${
        Object.keys(WORKLOAD_FACTORIES).join(", ")
      }`,
    );
  }
  for (const k of ["name", "description"]) {
    if (j[k] !== undefined && typeof j[k] !== "string") {
      throw new IommuError("EINVAL", `workload JSON: "${k}" must be a string`);
    }
  }
  const params = j.params ?? {};
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new IommuError("EINVAL", `workload JSON: "params" must be an object`);
  }
  const w = workloadByName(j.kind, params as Record<string, unknown>);
  return {
    ...w,
    name: (j.name as string | undefined) ?? w.name,
    description: (j.description as string | undefined) ?? w.description,
  };
}

/**
 * A workload from JSON text.
 *
 * @param text The document.
 * @returns The workload.
 * @throws {IommuError} `EIO` when the text is not JSON; as {@linkcode workloadFromJson}.
 */
export function workloadFromJsonText(text: string): Workload {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new IommuError(
      "EIO",
      `workload JSON: not valid JSON (${(e as Error).message})`,
    );
  }
  return workloadFromJson(json);
}
