/**
 * A system on chip: RAM, a registry of IOMMU plugins and their units, the
 * masters on the interconnect, domains and the fault router, in one object.
 *
 * @module
 */
import { checkObject } from "./address.ts";
import { deviceNodeFromSpec, type DeviceNodeSpec } from "./device_node.ts";
import { Domain, type DomainOptions } from "./domain.ts";
import { IommuError } from "./errors.ts";
import { FaultRouter } from "./fault_router.ts";
import type { DeviceNode, IommuPlugin, IommuUnit } from "./iommu.ts";
import { Master, type MasterSpec } from "./bus.ts";
import { PhysicalMemory, type PhysicalMemoryOptions } from "./memory.ts";
import { Registry } from "./registry.ts";

/** Options for {@linkcode createSoc}. */
export interface SocOptions {
  /** RAM: options for a new memory, or an existing one. */
  memory: PhysicalMemoryOptions | PhysicalMemory;
}

/**
 * A whole simulated system. Build it with {@linkcode createSoc}, register
 * plugins with {@linkcode Soc.use}, probe units, add masters, create domains.
 *
 * @example A central IOMMU in front of one master
 * ```ts
 * import { createSoc, IOMMU_READ, IOMMU_WRITE } from "@iommukit/iommukit/core";
 * import { genericIommu } from "@iommukit/iommukit/plugins/generic-iommu";
 * const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
 * const unit = soc.probeUnit({ name: "smmu", compatible: ["iommukit,generic-iommu"] });
 * const dev = soc.addMaster({ name: "dma0", ports: [{ unit, streamIds: [3] }] });
 * const domain = soc.createDomain(unit);
 * domain.attach(unit, [3]);
 * const buf = soc.memory.frames.alloc(4096);
 * domain.map(0x1000, buf, 4096, IOMMU_READ | IOMMU_WRITE);
 * dev.port().writeBytes(0x1010, new Uint8Array([1, 2, 3]));
 * if (soc.memory.read8(buf + 0x12) !== 3) throw new Error("DMA went astray");
 * ```
 */
export class Soc {
  /** Simulated RAM. */
  readonly memory: PhysicalMemory;
  /** Plugins and units. */
  readonly registry: Registry = new Registry();
  /** Routes faults to domains. */
  readonly faults: FaultRouter = new FaultRouter();
  #masters: Master[] = [];
  #domains = new Set<Domain>();

  /**
   * Create a system with the given RAM and no plugins.
   *
   * @param options RAM.
   * @throws {IommuError} `EINVAL` when `options` or `options.memory` is not
   * an object; otherwise as {@linkcode PhysicalMemory}.
   */
  constructor(options: SocOptions) {
    checkObject(options, "SoC options");
    checkObject(options.memory, "SoC memory");
    this.memory = options.memory instanceof PhysicalMemory
      ? options.memory
      : new PhysicalMemory(options.memory);
  }

  /**
   * Register a plugin.
   *
   * @param plugin The plugin.
   * @returns This system, for chaining.
   * @throws {IommuError} `EEXIST` for a duplicate name or compatible string;
   * `EINVAL` when `plugin` is not an object.
   */
  use(plugin: IommuPlugin): this {
    checkObject(plugin, "plugin");
    this.registry.use(plugin);
    return this;
  }

  /**
   * Bind a node to its plugin and probe it into a unit.
   *
   * @param node A device-tree node, or a plain description of one.
   * @returns The unit.
   * @throws {IommuError} `EINVAL` when `node` is not an object, or a spec
   * that {@linkcode deviceNodeFromSpec} refuses (a missing name, a
   * compatible list that is not a list of strings, malformed `reg`
   * windows); `ENODEV` with no matching plugin; `EEXIST`
   * when bound already; whatever the plugin's probe throws.
   */
  probeUnit(node: DeviceNode | DeviceNodeSpec): IommuUnit {
    checkObject(node, "device node or node spec");
    const n = "u32" in node ? node : deviceNodeFromSpec(node);
    return this.registry.probe(n, {
      memory: this.memory,
      reportFault: (fault) => this.faults.report(fault),
    });
  }

  /**
   * A probed unit by name.
   *
   * @param name Unit name.
   * @returns The unit.
   * @throws {IommuError} `ENOENT` when there is none.
   */
  unit(name: string): IommuUnit {
    return this.registry.unit(name);
  }

  /** All units, in probe order. */
  units(): IommuUnit[] {
    return this.registry.units();
  }

  /**
   * Put a master on the interconnect.
   *
   * @param spec Its name, ports and DMA properties.
   * @returns The master.
   * @throws {IommuError} `EEXIST` for a duplicate name; `EBUSY` for a port
   * on a per-device unit that already serves another master (one master per
   * per-device unit; see {@linkcode Master}); `EINVAL` / `ERANGE` as
   * {@linkcode Master}. Nothing is added when it throws.
   */
  addMaster(spec: MasterSpec): Master {
    checkObject(spec, "master spec");
    if (this.#masters.some((m) => m.name === spec.name)) {
      throw new IommuError(
        "EEXIST",
        `a master named ${spec.name} already exists`,
      );
    }
    const m = new Master(spec, this.memory, this.faults);
    this.#masters.push(m);
    return m;
  }

  /**
   * A master by name.
   *
   * @param name Master name.
   * @returns The master.
   * @throws {IommuError} `ENOENT` when there is none.
   */
  master(name: string): Master {
    const m = this.#masters.find((x) => x.name === name);
    if (m === undefined) {
      throw new IommuError("ENOENT", `no master named ${name}`);
    }
    return m;
  }

  /** All masters, in the order added. */
  masters(): readonly Master[] {
    return [...this.#masters];
  }

  /** Masters with at least one port that reaches RAM untranslated. */
  unprotectedMasters(): Master[] {
    return this.#masters.filter((m) => m.unprotected);
  }

  /**
   * Create an empty paging domain for `unit`'s plugin.
   *
   * @param unit The unit whose driver makes the tables.
   * @param options Page-size restriction.
   * @returns The domain (not attached yet).
   * @throws {IommuError} `ENOMEM` when the root table cannot be allocated;
   * `EINVAL` for bad options or a `unit` that is not a unit object.
   */
  createDomain(unit: IommuUnit, options: DomainOptions = {}): Domain {
    const d = new Domain(
      unit,
      { memory: this.memory, router: this.faults },
      options,
    );
    this.#domains.add(d);
    return d;
  }

  /** Domains created here and not yet freed. */
  domains(): Domain[] {
    return [...this.#domains].filter((d) => !d.freed);
  }
}

/**
 * Create a {@linkcode Soc}.
 *
 * @param options RAM.
 * @returns The new system.
 * @throws {IommuError} as {@linkcode Soc}'s constructor.
 */
export function createSoc(options: SocOptions): Soc {
  return new Soc(options);
}
