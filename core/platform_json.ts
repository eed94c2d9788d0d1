/**
 * A platform as JSON, for users without `dtc`: the same facts a DTB gives
 * the platform builder (RAM, IOMMU nodes, masters and their `iommus`), as
 * plain data. {@linkcode platformJsonFromDtb} converts a DTB into it.
 *
 * Numbers may be written as JSON numbers or as `"0x…"` strings (addresses
 * read better in hex); property values in `props` are kept as given.
 *
 * @module
 */
import { hex } from "./address.ts";
import { deviceNodeFromSpec } from "./device_node.ts";
import { IommuError } from "./errors.ts";
import { type FdtNode, parseFdt } from "./fdt.ts";
import { sourceFromFdt } from "./platform_dtb.ts";
import type {
  PlatformSource,
  SourceIommuRef,
  SourceNode,
  SourceRange,
} from "./platform_source.ts";

/** A number, or a string holding a decimal or `0x` hexadecimal integer. */
export type JsonNumber = number | string;

/** A property value as {@linkcode DeviceNodeSpec} takes it. */
export type JsonPropValue = number | number[] | string | true;

/** One `iommus` entry of a JSON master. */
export interface PlatformJsonIommuRef {
  /** `name` of the IOMMU device this port goes through. */
  iommu: string;
  /** Specifier cells (`#iommu-cells` of them): the stream ID on a central unit. */
  args?: JsonNumber[];
  /** Port name (what `iommu-names` gives in a DTB). */
  name?: string;
}

/**
 * One device: an IOMMU when it has `iommuCells`, a master when it has
 * `iommus` or `dmaMaster`.
 */
export interface PlatformJsonDevice {
  /** Unique name; units and masters are called by it. */
  name: string;
  /** `compatible` list, most specific first. */
  compatible?: string[];
  /** `"okay"` (default) or `"disabled"`. */
  status?: string;
  /** Register windows `[address, size]`. */
  reg?: [JsonNumber, JsonNumber][];
  /** `#iommu-cells` of an IOMMU (0 per-device, 1 stream ID). */
  iommuCells?: number;
  /** Other properties a plugin reads, by device-tree name. */
  props?: Record<string, JsonPropValue>;
  /** The master's IOMMU ports, in order. */
  iommus?: PlatformJsonIommuRef[];
  /** A master without IOMMU (`iommukit,dma-master`). */
  dmaMaster?: boolean;
  /** Address bits the master drives (`iommukit,dma-bits`). */
  dmaBits?: number;
  /** Snoops CPU caches (`dma-coherent`). */
  coherent?: boolean;
  /** Its stream passes untranslated (`iommukit,bypass`). */
  bypass?: boolean;
}

/** A whole platform as JSON. */
export interface PlatformJson {
  /** Short name. */
  name?: string;
  /** Human-readable model. */
  model?: string;
  /** RAM. */
  memory: { base?: JsonNumber; size: JsonNumber };
  /** Ranges the OS must not use. */
  reserved?: { address: JsonNumber; size: JsonNumber }[];
  /** Devices in probe order (masters may come before their IOMMUs). */
  devices: PlatformJsonDevice[];
}

function bad(message: string): never {
  throw new IommuError("EINVAL", `platform JSON: ${message}`);
}

function num(v: unknown, what: string): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (
    typeof v === "string" && /^(0x[0-9a-f_]+|[0-9_]+)$/i.test(v.trim())
  ) {
    n = Number(v.trim().replaceAll("_", ""));
  } else {return bad(
      `${what} must be a number or a "0x…" string, got ${JSON.stringify(v)}`,
    );}
  if (!Number.isSafeInteger(n) || n < 0) {
    bad(
      `${what} must be a non-negative safe integer, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    bad(`${what} must be an array of strings`);
  }
  return v as string[];
}

function bool(v: unknown, what: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") bad(`${what} must be true or false`);
  return v;
}

const DEVICE_KEYS = new Set([
  "name",
  "compatible",
  "status",
  "reg",
  "iommuCells",
  "props",
  "iommus",
  "dmaMaster",
  "dmaBits",
  "coherent",
  "bypass",
]);

/**
 * Validate a JSON description and turn it into a platform source.
 *
 * @param json The parsed JSON value.
 * @returns The source.
 * @throws {IommuError} `EINVAL` naming the first malformed field (unknown
 * keys included, so typos are caught); `EEXIST` for a duplicate device name.
 */
export function sourceFromJson(json: unknown): PlatformSource {
  if (!isObject(json)) bad("the top level must be an object");
  const memory = json.memory;
  if (!isObject(memory)) bad(`"memory" must be an object { base, size }`);
  const ram: SourceRange = {
    address: num(memory.base ?? 0, "memory.base"),
    size: num(memory.size, "memory.size"),
  };
  const reservations: SourceRange[] = [];
  if (json.reserved !== undefined) {
    if (!Array.isArray(json.reserved)) bad(`"reserved" must be an array`);
    json.reserved.forEach((r, i) => {
      if (!isObject(r)) bad(`reserved[${i}] must be an object`);
      reservations.push({
        address: num(r.address, `reserved[${i}].address`),
        size: num(r.size, `reserved[${i}].size`),
      });
    });
  }
  if (!Array.isArray(json.devices)) bad(`"devices" must be an array`);
  const byName = new Map<string, SourceNode>();
  const nodes: SourceNode[] = [];
  for (const [i, d] of json.devices.entries()) {
    if (!isObject(d)) bad(`devices[${i}] must be an object`);
    if (typeof d.name !== "string" || d.name === "") {
      bad(`devices[${i}].name must be a non-empty string`);
    }
    const name = d.name;
    const where = `device ${name}`;
    for (const k of Object.keys(d)) {
      if (!DEVICE_KEYS.has(k)) bad(`${where} has unknown key "${k}"`);
    }
    if (byName.has(name)) {
      throw new IommuError(
        "EEXIST",
        `platform JSON: two devices are named ${name}`,
      );
    }
    const compatible = d.compatible === undefined
      ? []
      : strings(d.compatible, `${where}: compatible`);
    if (d.status !== undefined && typeof d.status !== "string") {
      bad(`${where}: status must be a string`);
    }
    const status = d.status ?? "okay";
    const reg = d.reg === undefined ? [] : (() => {
      if (!Array.isArray(d.reg)) {
        bad(`${where}: reg must be [[address, size], …]`);
      }
      return d.reg.map((r, j) => {
        if (!Array.isArray(r) || r.length !== 2) {
          bad(`${where}: reg[${j}] must be [address, size]`);
        }
        return {
          address: num(r[0], `${where}: reg[${j}] address`),
          size: num(r[1], `${where}: reg[${j}] size`),
        };
      });
    })();
    const iommuCells = d.iommuCells === undefined
      ? undefined
      : num(d.iommuCells, `${where}: iommuCells`);
    const props: Record<string, JsonPropValue> = {};
    if (d.props !== undefined) {
      if (!isObject(d.props)) bad(`${where}: props must be an object`);
      for (const [k, v] of Object.entries(d.props)) {
        const okArray = Array.isArray(v) &&
          v.every((x) => typeof x === "number" && Number.isInteger(x));
        if (
          !(typeof v === "number" && Number.isInteger(v)) && !okArray &&
          typeof v !== "string" && v !== true
        ) {
          bad(
            `${where}: props["${k}"] must be an integer, an integer array, a string or true`,
          );
        }
        props[k] = v as JsonPropValue;
      }
    }
    if (iommuCells !== undefined) props["#iommu-cells"] = iommuCells;
    const dmaBits = d.dmaBits === undefined
      ? undefined
      : num(d.dmaBits, `${where}: dmaBits`);
    const rawRefs = d.iommus;
    if (rawRefs !== undefined && !Array.isArray(rawRefs)) {
      bad(`${where}: iommus must be an array`);
    }
    const refs = (rawRefs ?? []).map((r, j) => {
      if (!isObject(r) || typeof r.iommu !== "string") {
        bad(
          `${where}: iommus[${j}] must be { iommu: "<device name>", args?, name? }`,
        );
      }
      if (r.name !== undefined && typeof r.name !== "string") {
        bad(`${where}: iommus[${j}].name must be a string`);
      }
      if (r.args !== undefined && !Array.isArray(r.args)) {
        bad(`${where}: iommus[${j}].args must be an array`);
      }
      return {
        iommu: r.iommu,
        args: (r.args ?? []).map((a: unknown, k: number) =>
          num(a, `${where}: iommus[${j}].args[${k}]`)
        ),
        name: r.name as string | undefined,
      };
    });
    const path = `/${name}`;
    const node: SourceNode = {
      path,
      name,
      compatible,
      enabled: status === "okay" || status === "ok",
      iommuCells,
      hasIommus: rawRefs !== undefined,
      dmaMaster: bool(d.dmaMaster, `${where}: dmaMaster`),
      dmaBits,
      coherent: bool(d.coherent, `${where}: coherent`),
      bypass: bool(d.bypass, `${where}: bypass`),
      device: deviceNodeFromSpec({ name, path, compatible, reg, props }),
      iommus(): SourceIommuRef[] {
        return refs.map((r, j) => {
          const target = byName.get(r.iommu);
          if (target === undefined) {
            throw new IommuError(
              "ENOENT",
              `iommus entry ${j} names device "${r.iommu}", which does not exist`,
            );
          }
          if (target.iommuCells === undefined) {
            throw new IommuError(
              "EINVAL",
              `iommus entry ${j} names ${target.path}, which has no iommuCells`,
            );
          }
          if (r.args.length !== target.iommuCells) {
            throw new IommuError(
              "EINVAL",
              `iommus entry ${j} gives ${r.args.length} argument cell(s), but ${target.path} has iommuCells = ${target.iommuCells}`,
            );
          }
          return r.name === undefined
            ? { target, args: r.args }
            : { target, args: r.args, name: r.name };
        });
      },
    };
    byName.set(name, node);
    nodes.push(node);
  }
  if (json.name !== undefined && typeof json.name !== "string") {
    bad(`"name" must be a string`);
  }
  if (json.model !== undefined && typeof json.model !== "string") {
    bad(`"model" must be a string`);
  }
  return {
    name: (json.name as string | undefined) ?? "json",
    model: json.model as string | undefined,
    memory: [ram],
    reservations,
    nodes,
    format: "json",
  };
}

/**
 * Parse JSON text into a platform source.
 *
 * @param text The JSON document.
 * @returns The source.
 * @throws {IommuError} `EIO` when the text is not JSON; as {@linkcode sourceFromJson}.
 */
export function sourceFromJsonText(text: string): PlatformSource {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new IommuError(
      "EIO",
      `platform JSON: not valid JSON (${(e as Error).message})`,
    );
  }
  return sourceFromJson(json);
}

// Properties the JSON form carries in its own fields, or phandles that mean
// nothing outside the blob.
const SKIP_PROPS = new Set([
  "compatible",
  "status",
  "reg",
  "#iommu-cells",
  "iommus",
  "iommu-names",
  "phandle",
  "linux,phandle",
  "dma-coherent",
  "iommukit,bypass",
  "iommukit,dma-bits",
  "iommukit,dma-master",
  "interrupt-parent",
  "clocks",
  "power-domains",
]);

function propToJson(value: Uint8Array): JsonPropValue {
  if (value.length === 0) return true;
  const last = value[value.length - 1];
  const printable = value.every((b, i) =>
    (b >= 0x20 && b < 0x7f) || (b === 0 && i > 0 && value[i - 1] !== 0)
  );
  if (last === 0 && printable) {
    return new TextDecoder().decode(value.subarray(0, value.length - 1))
      .split("\0").join("\n");
  }
  if (value.length % 4 === 0) {
    const view = new DataView(value.buffer, value.byteOffset, value.length);
    const cells: number[] = [];
    for (let i = 0; i < value.length; i += 4) cells.push(view.getUint32(i));
    return cells.length === 1 ? cells[0]! : cells;
  }
  return Array.from(value);
}

/**
 * Convert a DTB into the JSON description the builder accepts, so the same
 * platform can be kept and edited without `dtc`. Nodes with `#iommu-cells`
 * become IOMMU devices; nodes with `iommus` or a DMA marker become masters.
 * Phandle-valued properties (`clocks`, `power-domains`, …) are dropped; a
 * string list is joined with newlines.
 *
 * @param blob The DTB.
 * @returns The description.
 * @throws {IommuError} `EIO` for a malformed blob; `ENOENT` for a dangling
 * `iommus` phandle; `EINVAL` when RAM is missing.
 */
export function platformJsonFromDtb(blob: Uint8Array): PlatformJson {
  const fdt = parseFdt(blob);
  const src = sourceFromFdt(fdt);
  const ram = src.memory[0];
  if (ram === undefined) {
    throw new IommuError("EINVAL", "DTB has no /memory node with a reg");
  }
  const fdtByPath = new Map<string, FdtNode>();
  for (const n of fdt.nodes()) fdtByPath.set(n.path, n);
  const devices: PlatformJsonDevice[] = [];
  for (const n of src.nodes) {
    const isIommu = n.iommuCells !== undefined;
    const isMaster = n.hasIommus || n.dmaMaster;
    if (!isIommu && !isMaster) continue;
    const f = fdtByPath.get(n.path)!;
    const d: PlatformJsonDevice = {
      name: n.name,
      compatible: [...n.compatible],
    };
    if (!n.enabled) d.status = f.getString("status") ?? "disabled";
    if (n.device.reg.length > 0) {
      d.reg = n.device.reg.map((r) => [hex(r.address), hex(r.size)]);
    }
    if (isIommu) d.iommuCells = n.iommuCells!;
    const props: Record<string, JsonPropValue> = {};
    for (const [k, v] of f.properties) {
      if (!SKIP_PROPS.has(k)) props[k] = propToJson(v);
    }
    if (Object.keys(props).length > 0) d.props = props;
    if (n.hasIommus) {
      d.iommus = n.iommus().map((r) => {
        const ref: PlatformJsonIommuRef = { iommu: r.target.name };
        if (r.args.length > 0) ref.args = r.args.map((a) => hex(a));
        if (r.name !== undefined) ref.name = r.name;
        return ref;
      });
    }
    if (n.dmaMaster) d.dmaMaster = true;
    if (n.dmaBits !== undefined) d.dmaBits = n.dmaBits;
    if (n.coherent) d.coherent = true;
    if (n.bypass) d.bypass = true;
    devices.push(d);
  }
  const out: PlatformJson = {
    name: src.name,
    memory: { base: hex(ram.address), size: hex(ram.size) },
    devices,
  };
  if (src.model !== undefined) out.model = src.model;
  if (src.reservations.length > 0) {
    out.reserved = src.reservations.map((r) => ({
      address: hex(r.address),
      size: hex(r.size),
    }));
  }
  return out;
}
