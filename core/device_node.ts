/**
 * A plain-object description of a device-tree node, for building systems in
 * code or from JSON without a DTB.
 *
 * @module
 */
import type { DeviceNode } from "./iommu.ts";
import {
  checkAddress,
  checkList,
  checkObject,
  describeValue,
} from "./address.ts";
import { IommuError } from "./errors.ts";

/** A node described as data. Property values: numbers, cell arrays, strings or `true`. */
export interface DeviceNodeSpec {
  /** Unique name (label) of the node. */
  name: string;
  /** `compatible` list, most specific first. */
  compatible: readonly string[];
  /** Full path; default `/<name>`. */
  path?: string;
  /** Register windows in bytes. */
  reg?: readonly { address: number; size: number }[];
  /** Other properties by name. */
  props?: Readonly<Record<string, number | readonly number[] | string | true>>;
}

/**
 * Wrap a {@linkcode DeviceNodeSpec} as the {@linkcode DeviceNode} plugins read.
 *
 * @param spec The description.
 * @returns A node view of it (a copy: later changes to `spec` are not seen).
 * @throws {IommuError} `EINVAL` when `spec` is not an object, `name` is not
 * a non-empty string, `path` is given and not a string, `compatible` is not
 * a list of strings, `reg` is given and not a list of `{ address, size }`
 * windows in bytes (non-negative safe integers), or `props` is given and not
 * an object.
 */
export function deviceNodeFromSpec(spec: DeviceNodeSpec): DeviceNode {
  checkSpec(spec);
  const props = spec.props ?? {};
  return {
    path: spec.path ?? `/${spec.name}`,
    name: spec.name,
    compatible: Array.from(spec.compatible),
    reg: Array.from(spec.reg ?? [], (w) => ({
      address: w.address,
      size: w.size,
    })),
    u32(property: string): number | undefined {
      const v = props[property];
      if (typeof v === "number") return v;
      if (Array.isArray(v)) return v[0] as number | undefined;
      return undefined;
    },
    has(property: string): boolean {
      return Object.hasOwn(props, property);
    },
    string(property: string): string | undefined {
      const v = props[property];
      return typeof v === "string" ? v : undefined;
    },
  };
}

// Everything deviceNodeFromSpec copies, checked before anything is built.
function checkSpec(spec: DeviceNodeSpec): void {
  checkObject(spec, "device node spec");
  const name: unknown = spec.name;
  if (typeof name !== "string" || name === "") {
    throw new IommuError(
      "EINVAL",
      `device node name must be a non-empty string, got ${describeValue(name)}`,
    );
  }
  const what = `device node ${name}`;
  if (spec.path !== undefined && typeof spec.path !== "string") {
    throw new IommuError(
      "EINVAL",
      `${what} path must be a string, got ${describeValue(spec.path)}`,
    );
  }
  checkList(spec.compatible, `${what} compatible list`);
  for (let i = 0; i < spec.compatible.length; i++) {
    const c: unknown = spec.compatible[i];
    if (typeof c !== "string") {
      throw new IommuError(
        "EINVAL",
        `${what} compatible entry ${i} must be a string, got ${
          describeValue(c)
        }`,
      );
    }
  }
  if (spec.reg !== undefined) {
    checkList(spec.reg, `${what} reg list`);
    for (let i = 0; i < spec.reg.length; i++) {
      const w = spec.reg[i];
      checkObject(w, `${what} reg entry ${i}`);
      checkAddress(w.address, `${what} reg entry ${i} address`);
      checkAddress(w.size, `${what} reg entry ${i} size`);
    }
  }
  if (spec.props !== undefined && spec.props !== null) {
    checkObject(spec.props, `${what} props`);
  }
}
