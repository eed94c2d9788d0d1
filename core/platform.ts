/**
 * A whole platform built from a device tree (DTB) or its JSON equivalent:
 * RAM from `/memory`, one unit for every enabled node a registered plugin
 * binds, and one master for every enabled node with `iommus` (or the
 * `iommukit,dma-master` marker), each port wired to its unit.
 *
 * Probing follows the device tree in order, as a kernel would: a master whose
 * IOMMU has not been probed yet is deferred and wired as soon as that unit
 * appears. Errors name the node: an `iommus` phandle that names nothing
 * (`ENOENT`), an IOMMU node no plugin binds (`ENODEV`), `#iommu-cells` that
 * disagrees with the plugin (`EINVAL`).
 *
 * @module
 */
import { checkList, checkObject, describeValue, hex } from "./address.ts";
import { IommuError } from "./errors.ts";
import type { IommuPlugin, IommuUnit } from "./iommu.ts";
import type { Master, MasterSpec, PortSpec } from "./bus.ts";
import { createSoc, type Soc } from "./soc.ts";
import { sourceFromDtb } from "./platform_dtb.ts";
import { type PlatformJson, sourceFromJson } from "./platform_json.ts";
import type {
  PlatformSource,
  SourceNode,
  SourceRange,
} from "./platform_source.ts";

/** Options for {@linkcode buildPlatform}. */
export interface PlatformOptions {
  /** The plugins that may bind nodes, in priority order. */
  plugins: readonly IommuPlugin[];
  /** Platform name; default from the root `compatible` (or JSON `name`). */
  name?: string;
  /**
   * Called for every port of a master marked `iommukit,bypass` that sits
   * behind a unit, to put its stream(s) into bypass. How is plugin-specific,
   * so the core leaves it to the caller; without it such ports stay
   * translated and the log says so.
   */
  configureBypass?: (unit: IommuUnit, streamIds: readonly number[]) => void;
}

/** A unit of the platform: which node it came from and which plugin bound it. */
export interface PlatformUnit {
  /** Unit name (the node name, or its path when the name repeats). */
  readonly name: string;
  /** Device-tree path of the node. */
  readonly path: string;
  /** The node's `compatible`. */
  readonly compatible: readonly string[];
  /** Name of the plugin that bound the node. */
  readonly plugin: string;
  /** The probed unit. */
  readonly unit: IommuUnit;
  /** `master/port` names wired to it, in wiring order. */
  readonly masters: readonly string[];
}

/** One port of a platform master. */
export interface PlatformPort {
  /** Port name (`iommu-names` entry, or `port<index>`). */
  readonly name: string;
  /** The unit in front of it, or null when its DMA goes straight to RAM. */
  readonly unit: IommuUnit | null;
  /** Stream IDs on a central unit; empty otherwise. */
  readonly streamIds: readonly number[];
}

/** A master of the platform and the facts its DMA layer needs. */
export interface PlatformMaster {
  /** Master name (node name, or path when the name repeats). */
  readonly name: string;
  /** Device-tree path. */
  readonly path: string;
  /** The node's `compatible`. */
  readonly compatible: readonly string[];
  /** The core master on the interconnect. */
  readonly master: Master;
  /** The spec it was created from (`dmaBits`, `coherent`, ports). */
  readonly spec: MasterSpec;
  /** Its ports as wired. */
  readonly ports: readonly PlatformPort[];
  /** Address bits the master drives (its DMA mask width). */
  readonly dmaBits: number;
  /** True when it snoops CPU caches (`dma-coherent`). */
  readonly coherent: boolean;
  /** True when its streams are meant to bypass translation (`iommukit,bypass`). */
  readonly bypass: boolean;
  /** True when its probe was deferred until its IOMMU appeared. */
  readonly deferred: boolean;
}

/** Kinds of probe-log lines. */
export type ProbeEventKind =
  | "bound"
  | "deferred"
  | "wired"
  | "skipped"
  | "idle"
  | "reserved"
  | "warning";

/** One line of the probe log, in the order things happened. */
export interface ProbeEvent {
  /** What happened. */
  readonly kind: ProbeEventKind;
  /** The node it happened to. */
  readonly path: string;
  /** A sentence for people. */
  readonly message: string;
}

/**
 * A built platform. Get one from {@linkcode buildPlatform}.
 */
export class Platform {
  /** Short name (for example `exynos4210`). */
  readonly name: string;
  /** Human-readable model, if the source has one. */
  readonly model: string | undefined;
  /** Where it came from. */
  readonly format: "dtb" | "json";
  /** The simulated system: RAM, registry, masters, domains, faults. */
  readonly soc: Soc;
  /** RAM in bytes. */
  readonly memory: SourceRange;
  /** Ranges the OS must not use (`/memreserve/`), in bytes. */
  readonly reservations: readonly SourceRange[];
  /** Units in probe order. */
  readonly units: readonly PlatformUnit[];
  /** Masters in wiring order. */
  readonly masters: readonly PlatformMaster[];
  /** What the builder did, in order. */
  readonly log: readonly ProbeEvent[];

  /**
   * Assemble a platform from its parts (use {@linkcode buildPlatform}).
   *
   * @param init The parts.
   */
  constructor(init: {
    name: string;
    model: string | undefined;
    format: "dtb" | "json";
    soc: Soc;
    memory: SourceRange;
    reservations: readonly SourceRange[];
    units: readonly PlatformUnit[];
    masters: readonly PlatformMaster[];
    log: readonly ProbeEvent[];
  }) {
    this.name = init.name;
    this.model = init.model;
    this.format = init.format;
    this.soc = init.soc;
    this.memory = init.memory;
    this.reservations = init.reservations;
    this.units = init.units;
    this.masters = init.masters;
    this.log = init.log;
  }

  /** Warnings from the probe log (for example a port wired past a disabled IOMMU). */
  get warnings(): string[] {
    return this.log.filter((e) => e.kind === "warning").map((e) => e.message);
  }

  /**
   * A unit by name or device-tree path.
   *
   * @param name Unit name or path.
   * @returns The unit record.
   * @throws {IommuError} `ENOENT` when there is none.
   */
  unit(name: string): PlatformUnit {
    const u = this.units.find((x) => x.name === name || x.path === name);
    if (u === undefined) {
      throw new IommuError(
        "ENOENT",
        `platform ${this.name} has no unit ${name} (units: ${
          this.units.map((x) => x.name).join(", ") || "none"
        })`,
      );
    }
    return u;
  }

  /**
   * A master by name, path, node name without unit address (`codec`) when
   * that is unambiguous, or `compatible` string.
   *
   * @param query What to look for.
   * @returns The master record.
   * @throws {IommuError} `ENOENT` when nothing matches; `EINVAL` when a short
   * name matches several masters.
   */
  master(query: string): PlatformMaster {
    const exact = this.masters.find((m) =>
      m.name === query || m.path === query
    );
    if (exact !== undefined) return exact;
    const short = this.masters.filter((m) =>
      m.name.split("/").pop()!.split("@")[0] === query
    );
    if (short.length === 1) return short[0]!;
    if (short.length > 1) {
      throw new IommuError(
        "EINVAL",
        `master "${query}" is ambiguous on ${this.name}: ${
          short.map((m) => m.name).join(", ")
        }`,
      );
    }
    const byCompat = this.findMasters(query);
    if (byCompat.length > 0) return byCompat[0]!;
    throw new IommuError(
      "ENOENT",
      `platform ${this.name} has no master "${query}" (masters: ${
        this.masters.map((m) => m.name).join(", ") || "none"
      })`,
    );
  }

  /**
   * Masters whose `compatible` lists a string.
   *
   * @param compatible E.g. `"samsung,mfc-v5"`.
   * @returns Matching masters in wiring order (possibly none).
   */
  findMasters(compatible: string): PlatformMaster[] {
    return this.masters.filter((m) => m.compatible.includes(compatible));
  }

  /**
   * Masters whose DMA can reach RAM untranslated: by design (a port without a
   * unit, or the `iommukit,bypass` marker) or in the hardware's current state
   * (a bypassing stream, or a per-device unit that is disabled and so passes
   * addresses through, as an Exynos System MMU does until a domain is
   * attached and its master is powered).
   *
   * @returns Those masters, in wiring order.
   */
  unprotectedMasters(): PlatformMaster[] {
    return this.masters.filter((m) =>
      m.bypass || m.ports.some((p) => p.unit === null) || m.master.unprotected
    );
  }
}

function prefixed(e: unknown, prefix: string): never {
  if (e instanceof IommuError) {
    throw new IommuError(e.kind, `${prefix}: ${e.message}`, {
      cause: e,
      detail: e.detail,
    });
  }
  throw e;
}

function pickMemory(
  src: PlatformSource,
  log: ProbeEvent[],
): SourceRange {
  const first = src.memory[0];
  if (first === undefined) {
    throw new IommuError(
      "EINVAL",
      `platform ${src.name}: no RAM (a DTB needs a /memory node with reg; JSON needs "memory")`,
    );
  }
  // Merge contiguous banks; the core models one RAM range.
  const sorted = [...src.memory].sort((a, b) => a.address - b.address);
  const base = sorted[0]!.address;
  let end = base + sorted[0]!.size;
  for (const r of sorted.slice(1)) {
    if (r.address === end) end += r.size;
    else {
      log.push({
        kind: "warning",
        path: "/memory",
        message: `RAM bank ${hex(r.address)}+${
          hex(r.size)
        } is not contiguous with ${hex(base)}..${
          hex(end)
        }; only the first is modelled`,
      });
      break;
    }
  }
  return { address: base, size: end - base };
}

type WireResult = { deferredOn: string } | PlatformMaster;

/**
 * Build a platform from a DTB or a JSON description.
 *
 * @example A platform described as JSON (no IOMMU: the master is unprotected)
 * ```ts
 * import { buildPlatform } from "./platform.ts";
 * const p = buildPlatform({
 *   memory: { base: "0x40000000", size: "0x1000000" },
 *   devices: [{ name: "dma0", compatible: ["acme,dma"], dmaMaster: true }],
 * }, { plugins: [] });
 * if (p.unprotectedMasters()[0]?.name !== "dma0") throw new Error();
 * ```
 *
 * @param source DTB bytes, or a {@linkcode PlatformJson} value.
 * @param options The plugins that may bind nodes.
 * @returns The platform.
 * @throws {IommuError} `EIO` for a malformed DTB; `EINVAL` for malformed
 * JSON, missing RAM, `#iommu-cells` that disagrees with the binding plugin,
 * an unusable `iommukit,dma-bits`, `options` that is not an object with a
 * `plugins` list, or a `configureBypass` that is not a function; `ENOENT` for an `iommus` reference that names nothing;
 * `ENODEV` for an `iommus` target no plugin binds; `EEXIST` for duplicate
 * plugins; `EBUSY` for a per-device unit named in the `iommus` of two
 * masters (a per-device unit serves one master; one master may name it more
 * than once); whatever a plugin's probe throws. Every message names the
 * node.
 */
export function buildPlatform(
  source: Uint8Array | PlatformJson,
  options: PlatformOptions,
): Platform {
  checkOptions(options);
  const src = source instanceof Uint8Array
    ? sourceFromDtb(source)
    : sourceFromJson(source);
  return buildFromSource(src, options);
}

// `/memreserve/` ranges belong to firmware: keep page tables and buffers
// out of them (the part inside RAM; a range outside RAM only gets a warning).
function holdBackReservations(
  soc: Soc,
  reservations: readonly SourceRange[],
  ram: SourceRange,
  log: ProbeEvent[],
): void {
  for (const r of reservations) {
    const what = `reservation ${hex(r.address)}+${hex(r.size)}`;
    const lo = Math.max(r.address, ram.address);
    const hi = Math.min(r.address + r.size, ram.address + ram.size);
    if (r.size === 0 || hi <= lo) {
      log.push({
        kind: "warning",
        path: "/memreserve/",
        message: `${what} is not in RAM; nothing held back`,
      });
      continue;
    }
    const held = soc.memory.frames.reserve(lo, hi - lo);
    log.push({
      kind: "reserved",
      path: "/memreserve/",
      message: `${what}: ${hex(held)} bytes of RAM held back from allocation`,
    });
  }
}

// Before anything is read from them: an options object with a plugin list.
function checkOptions(options: PlatformOptions): void {
  checkObject(options, "platform options");
  checkList(options.plugins, "platform options plugins");
  if (
    options.configureBypass !== undefined &&
    typeof options.configureBypass !== "function"
  ) {
    throw new IommuError(
      "EINVAL",
      `platform options configureBypass must be a function, got ${
        describeValue(options.configureBypass)
      }`,
    );
  }
}

/**
 * Build a platform from an already decoded source (see
 * {@linkcode buildPlatform}, which most callers want).
 *
 * @param src The source.
 * @param options The plugins.
 * @returns The platform.
 * @throws {IommuError} as {@linkcode buildPlatform}.
 */
export function buildFromSource(
  src: PlatformSource,
  options: PlatformOptions,
): Platform {
  checkOptions(options);
  const name = options.name ?? src.name;
  const log: ProbeEvent[] = [];
  const ram = pickMemory(src, log);
  let soc: Soc;
  try {
    soc = createSoc({ memory: { base: ram.address, size: ram.size } });
  } catch (e) {
    prefixed(e, `platform ${name}: RAM ${hex(ram.address)}+${hex(ram.size)}`);
  }
  holdBackReservations(soc, src.reservations, ram, log);
  for (let i = 0; i < options.plugins.length; i++) {
    soc.use(options.plugins[i]!);
  }

  const units: (PlatformUnit & { masters: string[] })[] = [];
  const unitByPath = new Map<string, PlatformUnit & { masters: string[] }>();
  const masters: PlatformMaster[] = [];
  let pending: SourceNode[] = [];
  const deferredPaths = new Set<string>();

  const checkCells = (node: SourceNode, plugin: IommuPlugin, who: string) => {
    if (node.iommuCells === undefined) {
      throw new IommuError(
        "EINVAL",
        `${who}${node.path} is bound by plugin ${plugin.name} but has no #iommu-cells (the plugin expects ${plugin.iommuCells})`,
      );
    }
    if (node.iommuCells !== plugin.iommuCells) {
      throw new IommuError(
        "EINVAL",
        `${who}${node.path} has #iommu-cells = <${node.iommuCells}>, but plugin ${plugin.name} expects <${plugin.iommuCells}>`,
      );
    }
  };

  const wire = (node: SourceNode): WireResult => {
    const who = `master ${node.name}`;
    let refs;
    try {
      refs = node.iommus();
    } catch (e) {
      prefixed(e, who);
    }
    const ports: PortSpec[] = [];
    const wired: PlatformPort[] = [];
    // Logged only once the master is wired (a deferred try may repeat).
    const warnings: ProbeEvent[] = [];
    for (const [i, ref] of refs.entries()) {
      const t = ref.target;
      const portName = ref.name ?? `port${i}`;
      if (!t.enabled) {
        warnings.push({
          kind: "warning",
          path: node.path,
          message:
            `${who}: iommus entry ${i} names ${t.path}, which is disabled; port ${portName} reaches memory untranslated`,
        });
        ports.push({ name: portName, unit: null });
        wired.push({ name: portName, unit: null, streamIds: [] });
        continue;
      }
      const plugin = soc.registry.pluginFor(t.compatible);
      if (plugin === undefined) {
        throw new IommuError(
          "ENODEV",
          `${who}: iommus entry ${i} names ${t.path} (compatible ${
            t.compatible.map((c) => `"${c}"`).join(", ") || "none"
          }), which no registered plugin binds`,
        );
      }
      checkCells(t, plugin, `${who}: iommus entry ${i}: `);
      const u = unitByPath.get(t.path);
      if (u === undefined) return { deferredOn: t.path };
      if (ref.args.length > 1) {
        throw new IommuError(
          "EINVAL",
          `${who}: iommus entry ${i} has ${ref.args.length} specifier cells; iommukit models at most one (the stream ID)`,
        );
      }
      const streamIds = ref.args.length === 1 ? [ref.args[0]!] : [];
      ports.push(
        u.unit.caps.topology === "central" || streamIds.length > 0
          ? { name: portName, unit: u.unit, streamIds }
          : { name: portName, unit: u.unit },
      );
      wired.push({ name: portName, unit: u.unit, streamIds });
    }
    if (ports.length === 0) {
      ports.push({ name: "port0", unit: null });
      wired.push({ name: "port0", unit: null, streamIds: [] });
    }
    const spec: MasterSpec = node.dmaBits === undefined
      ? { name: node.name, ports, coherent: node.coherent }
      : {
        name: node.name,
        ports,
        coherent: node.coherent,
        dmaBits: node.dmaBits,
      };
    let master: Master;
    try {
      master = soc.addMaster(spec);
    } catch (e) {
      prefixed(e, `${node.path}`);
    }
    for (const p of wired) {
      if (p.unit === null) continue;
      const u = units.find((x) => x.unit === p.unit)!;
      u.masters.push(`${node.name}/${p.name}`);
    }
    log.push(...warnings);
    if (node.bypass) {
      for (const p of wired) {
        if (p.unit === null) continue;
        if (options.configureBypass === undefined) {
          log.push({
            kind: "warning",
            path: node.path,
            message:
              `${who}: iommukit,bypass given but no bypass hook; port ${p.name} stays translated`,
          });
          continue;
        }
        try {
          options.configureBypass(p.unit, p.streamIds);
        } catch (e) {
          prefixed(e, `${who}: bypass of port ${p.name}`);
        }
      }
    }
    const m: PlatformMaster = {
      name: node.name,
      path: node.path,
      compatible: node.compatible,
      master,
      spec,
      ports: wired,
      dmaBits: master.dmaBits,
      coherent: master.coherent,
      bypass: node.bypass,
      deferred: deferredPaths.has(node.path),
    };
    masters.push(m);
    log.push({
      kind: "wired",
      path: node.path,
      message: `${who}: ${
        wired.map((p) =>
          `${p.name} -> ${p.unit?.name ?? "memory"}${
            p.streamIds.length > 0
              ? ` (stream ${p.streamIds.map(hex).join(", ")})`
              : ""
          }`
        ).join("; ")
      }`,
    });
    return m;
  };

  const retryPending = () => {
    const still: SourceNode[] = [];
    for (const n of pending) {
      const r = wire(n);
      if ("deferredOn" in r) still.push(n);
    }
    pending = still;
  };

  for (const node of src.nodes) {
    if (!node.enabled) {
      log.push({
        kind: "skipped",
        path: node.path,
        message: `${node.path} is disabled`,
      });
      continue;
    }
    const plugin = soc.registry.pluginFor(node.compatible);
    if (plugin !== undefined) {
      checkCells(node, plugin, "");
      let unit: IommuUnit;
      try {
        unit = soc.probeUnit(node.device);
      } catch (e) {
        prefixed(e, `${node.path}`);
      }
      const rec = {
        name: unit.name,
        path: node.path,
        compatible: node.compatible,
        plugin: plugin.name,
        unit,
        masters: [] as string[],
      };
      units.push(rec);
      unitByPath.set(node.path, rec);
      log.push({
        kind: "bound",
        path: node.path,
        message: `${node.path} bound by ${plugin.name} as unit ${unit.name}`,
      });
      if (pending.length > 0) retryPending();
      continue;
    }
    if (!node.hasIommus && !node.dmaMaster) continue;
    const r = wire(node);
    if ("deferredOn" in r) {
      deferredPaths.add(node.path);
      pending.push(node);
      log.push({
        kind: "deferred",
        path: node.path,
        message:
          `master ${node.name} deferred: ${r.deferredOn} is not probed yet`,
      });
    }
  }
  if (pending.length > 0) {
    // Unreachable with a well-formed source (every enabled, bound target is
    // probed in the loop), but a clear error beats a silently missing master.
    const n = pending[0]!;
    throw new IommuError(
      "ENODEV",
      `master ${n.name} (${n.path}) was deferred and its IOMMU never probed`,
    );
  }
  for (const u of units) {
    if (u.masters.length === 0) {
      log.push({
        kind: "idle",
        path: u.path,
        message: `unit ${u.name} serves no master`,
      });
    }
  }
  return new Platform({
    name,
    model: src.model,
    format: src.format,
    soc,
    memory: ram,
    reservations: src.reservations,
    units,
    masters,
    log,
  });
}
