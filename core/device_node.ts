/**
 * A plain-object description of a device-tree node, for building systems in
 * code or from JSON without a DTB.
 *
 * @module
 */
import type { DeviceNode } from "./iommu.ts";

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
 * @returns A node view of it.
 */
export function deviceNodeFromSpec(spec: DeviceNodeSpec): DeviceNode {
  const props = spec.props ?? {};
  return {
    path: spec.path ?? `/${spec.name}`,
    name: spec.name,
    compatible: [...spec.compatible],
    reg: [...(spec.reg ?? [])],
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
