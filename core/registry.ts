/**
 * The hardware-abstraction registry: plugins by device-tree `compatible`,
 * which node each plugin bound, and the probed units.
 *
 * @module
 */
import { checkObject, describeValue } from "./address.ts";
import { IommuError } from "./errors.ts";
import type {
  DeviceNode,
  IommuPlugin,
  IommuUnit,
  ProbeContext,
} from "./iommu.ts";

/** Which plugin bound which node, and the unit it made. */
export interface Binding {
  /** The node. */
  node: DeviceNode;
  /** The plugin that bound it. */
  plugin: IommuPlugin;
  /** The probed unit. */
  unit: IommuUnit;
}

/**
 * Registered plugins and probed units.
 *
 * @example
 * ```ts
 * import { Registry } from "@iommukit/iommukit/core";
 * import { genericIommu } from "@iommukit/iommukit/plugins/generic-iommu";
 * const registry = new Registry().use(genericIommu());
 * if (registry.pluginFor(["iommukit,generic-iommu"])?.name !== "generic-iommu") throw new Error();
 * ```
 */
export class Registry {
  #plugins: IommuPlugin[] = [];
  #byCompatible = new Map<string, IommuPlugin>();
  #bindings: Binding[] = [];

  /**
   * Register a plugin under each of its `compatible` strings.
   *
   * @param plugin The plugin.
   * @returns This registry, for chaining.
   * @throws {IommuError} `EEXIST` when a name or compatible string is taken;
   * `EINVAL` for a plugin that is not an object, has no name or no `probe`
   * function, or whose `compatible` is not a non-empty array of non-empty
   * strings (a single string is refused, not split into characters).
   * Nothing is registered when it throws.
   */
  use(plugin: IommuPlugin): this {
    checkObject(plugin, "plugin");
    const compatible: unknown = plugin.compatible;
    if (
      typeof plugin.name !== "string" || plugin.name === "" ||
      !Array.isArray(compatible) || compatible.length === 0
    ) {
      throw new IommuError(
        "EINVAL",
        `plugin ${
          describeValue(plugin.name)
        } needs a name and a non-empty array of compatible strings, got compatible ${
          describeValue(compatible)
        }`,
      );
    }
    if (typeof plugin.probe !== "function") {
      throw new IommuError(
        "EINVAL",
        `plugin ${plugin.name}: probe must be a function, got ${
          describeValue(plugin.probe)
        }`,
      );
    }
    for (const c of compatible) {
      if (typeof c !== "string" || c === "") {
        throw new IommuError(
          "EINVAL",
          `plugin ${plugin.name}: compatible entries must be non-empty strings, got ${
            describeValue(c)
          }`,
        );
      }
    }
    if (this.#plugins.some((p) => p.name === plugin.name)) {
      throw new IommuError(
        "EEXIST",
        `a plugin named ${plugin.name} is already registered`,
      );
    }
    for (const c of plugin.compatible) {
      const owner = this.#byCompatible.get(c);
      if (owner !== undefined) {
        throw new IommuError(
          "EEXIST",
          `compatible "${c}" is already bound by plugin ${owner.name}`,
        );
      }
    }
    this.#plugins.push(plugin);
    for (const c of plugin.compatible) this.#byCompatible.set(c, plugin);
    return this;
  }

  /** The registered plugins, in registration order. */
  plugins(): readonly IommuPlugin[] {
    return [...this.#plugins];
  }

  /**
   * The plugin for the first matching entry of a `compatible` list.
   *
   * @param compatible The node's list, most specific first.
   * @returns The plugin, or undefined.
   */
  pluginFor(compatible: readonly string[]): IommuPlugin | undefined {
    for (const c of compatible) {
      const p = this.#byCompatible.get(c);
      if (p !== undefined) return p;
    }
    return undefined;
  }

  /**
   * Bind `node` to its plugin and probe it.
   *
   * @param node The device-tree node.
   * @param ctx What the plugin's probe gets.
   * @returns The new unit.
   * @throws {IommuError} `ENODEV` when no plugin matches; `EEXIST` when the
   * node (by path) or a unit of that name is already bound; whatever the
   * plugin's probe throws.
   */
  probe(node: DeviceNode, ctx: ProbeContext): IommuUnit {
    const plugin = this.pluginFor(node.compatible);
    if (plugin === undefined) {
      throw new IommuError(
        "ENODEV",
        `no plugin is registered for ${node.path} (compatible ${
          node.compatible.map((c) => `"${c}"`).join(", ")
        })`,
      );
    }
    if (this.#bindings.some((b) => b.node.path === node.path)) {
      throw new IommuError("EEXIST", `node ${node.path} is already bound`);
    }
    if (this.#bindings.some((b) => b.unit.name === node.name)) {
      throw new IommuError(
        "EEXIST",
        `a unit named ${node.name} already exists`,
      );
    }
    const unit = plugin.probe(node, ctx);
    this.#bindings.push({ node, plugin, unit });
    return unit;
  }

  /** Every binding, in probe order. */
  bindings(): readonly Binding[] {
    return [...this.#bindings];
  }

  /**
   * The unit with this name.
   *
   * @param name Unit name.
   * @returns The unit.
   * @throws {IommuError} `ENOENT` when there is none.
   */
  unit(name: string): IommuUnit {
    const b = this.#bindings.find((x) => x.unit.name === name);
    if (b === undefined) {
      throw new IommuError("ENOENT", `no unit named ${name}`);
    }
    return b.unit;
  }

  /** All probed units, in probe order. */
  units(): IommuUnit[] {
    return this.#bindings.map((b) => b.unit);
  }
}
