/**
 * Reads a DTB into a {@linkcode PlatformSource}: device nodes in tree order,
 * RAM from `/memory`, reservations from `/memreserve/`.
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import { type Fdt, type FdtNode, parseFdt } from "./fdt.ts";
import type { DeviceNode } from "./iommu.ts";
import type {
  PlatformSource,
  SourceIommuRef,
  SourceNode,
  SourceRange,
} from "./platform_source.ts";

// Nodes that describe the machine rather than a device.
const NOT_DEVICES = new Set(["cpus", "aliases", "chosen", "__symbols__"]);

function isMemoryNode(n: FdtNode): boolean {
  return n.getString("device_type") === "memory" || n.nodeName === "memory";
}

function deviceNodeOf(n: FdtNode, name: string): DeviceNode {
  return {
    path: n.path,
    name,
    compatible: n.getStringList("compatible") ?? [],
    reg: n.reg(),
    u32(property: string): number | undefined {
      const cells = n.getU32Array(property);
      return cells?.[0];
    },
    has(property: string): boolean {
      return n.has(property);
    },
    string(property: string): string | undefined {
      return n.getString(property);
    },
  };
}

function underNonDevice(n: FdtNode): boolean {
  for (let p: FdtNode | null = n; p !== null; p = p.parent) {
    if (p.depth === 1 && NOT_DEVICES.has(p.nodeName)) return true;
  }
  return false;
}

/**
 * Turn a parsed device tree into a platform source.
 *
 * @param fdt The parsed tree.
 * @param fallbackName Name when the root has no `compatible`.
 * @returns The source (the `iommus` of each node decode lazily).
 * @throws {IommuError} `EIO` for malformed properties (`compatible`,
 * `status`, `reg`, `iommukit,dma-bits`); `ERANGE` for `reg` values beyond 2^53.
 */
export function sourceFromFdt(fdt: Fdt, fallbackName = "dtb"): PlatformSource {
  const memory: SourceRange[] = [];
  const candidates: FdtNode[] = [];
  for (const n of fdt.nodes()) {
    if (n.depth === 0 || underNonDevice(n)) continue;
    if (isMemoryNode(n) && n.depth === 1) {
      if (n.isEnabled()) {
        for (const r of n.reg()) {
          if (r.size > 0) memory.push({ address: r.address, size: r.size });
        }
      }
      continue;
    }
    if (n.has("compatible") || n.has("iommus")) candidates.push(n);
  }
  const count = new Map<string, number>();
  for (const n of candidates) count.set(n.name, (count.get(n.name) ?? 0) + 1);
  const byNode = new Map<FdtNode, SourceNode>();
  const nodes: SourceNode[] = candidates.map((n) => {
    const name = count.get(n.name) === 1 ? n.name : n.path;
    const node: SourceNode = {
      path: n.path,
      name,
      compatible: n.getStringList("compatible") ?? [],
      enabled: n.isEnabled(),
      iommuCells: n.getU32("#iommu-cells"),
      hasIommus: n.has("iommus"),
      dmaMaster: n.has("iommukit,dma-master"),
      dmaBits: n.getU32("iommukit,dma-bits"),
      coherent: n.has("dma-coherent"),
      bypass: n.has("iommukit,bypass"),
      device: deviceNodeOf(n, name),
      iommus(): SourceIommuRef[] {
        return fdt.iommus(n).map((ref) => {
          let target = byNode.get(ref.iommuNode);
          if (target === undefined) {
            // The target has no compatible: still name it clearly.
            throw new IommuError(
              "ENODEV",
              `${n.path}: iommus names ${ref.iommuNode.path}, which has no compatible string`,
            );
          }
          target = target as SourceNode;
          return ref.name === undefined
            ? { target, args: ref.args }
            : { target, args: ref.args, name: ref.name };
        });
      },
    };
    byNode.set(n, node);
    return node;
  });
  const rootCompat = fdt.root.getStringList("compatible")?.[0];
  const name = rootCompat === undefined
    ? fallbackName
    : rootCompat.slice(rootCompat.indexOf(",") + 1);
  return {
    name,
    model: fdt.root.getString("model"),
    memory,
    reservations: fdt.reservations.map((r) => ({
      address: r.address,
      size: r.size,
    })),
    nodes,
    format: "dtb",
  };
}

/**
 * Parse a DTB blob into a platform source.
 *
 * @param blob The DTB bytes.
 * @returns The source.
 * @throws {IommuError} `EIO` for a malformed blob; as {@linkcode sourceFromFdt}.
 */
export function sourceFromDtb(blob: Uint8Array): PlatformSource {
  return sourceFromFdt(parseFdt(blob));
}
