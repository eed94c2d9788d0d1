// Shared set-up for the DMA adapter tests: a system with the flat test
// plugin (optionally with a small IOTLB wrapped around it, so that lazy
// invalidation has something stale to hit), and masters behind it or not.
import {
  createSoc,
  type DeviceNode,
  type IommuDomainOps,
  type IommuHardware,
  type IommuPlugin,
  type IommuUnit,
  type IotlbGather,
  type Master,
  type Soc,
} from "../../core/mod.ts";
import { flatIommu } from "./flat_iommu.ts";

/** The flat plugin with a per-unit translation cache (4 KiB entries, per access kind). */
export function cachedFlatIommu(): IommuPlugin {
  const inner = flatIommu();
  const caches = new Map<IommuUnit, Map<number, number>>();
  const wrapped = new Map<IommuUnit, IommuUnit>(); // outer -> inner
  const attachedTo = new Map<IommuDomainOps, Set<IommuUnit>>();
  return {
    name: "cached-flat-iommu",
    compatible: ["iommukit,cached-flat-iommu"],
    iommuCells: 0,
    probe(node: DeviceNode, ctx): IommuUnit {
      const innerUnit = inner.probe(node, ctx);
      const cache = new Map<number, number>();
      const hw = innerUnit.hardware;
      const counters = { hits: 0, misses: 0 };
      const hardware: IommuHardware = {
        translate(sid: number, iova: number, access: number): number {
          const key = Math.floor(iova / 4096) * 4 + access;
          const base = cache.get(key);
          if (base !== undefined) {
            counters.hits++;
            (hardware as { lastSpan: number }).lastSpan = 4096 - (iova % 4096);
            return base + (iova % 4096);
          }
          counters.misses++;
          const pa = hw.translate(sid, iova, access);
          if (pa >= 0) {
            cache.set(key, pa - (iova % 4096));
            (hardware as { lastSpan: number }).lastSpan = 4096 - (iova % 4096);
          }
          return pa;
        },
        lastSpan: 0,
        get lastFault() {
          return hw.lastFault;
        },
        isBypassing: (sid) => hw.isBypassing(sid),
        setPower: (on) => hw.setPower(on),
        readRegister: (o) => hw.readRegister(o),
        writeRegister: (o, v) => hw.writeRegister(o, v),
        counters: () => ({ ...hw.counters(), ...counters }),
      };
      const outer: IommuUnit = {
        name: innerUnit.name,
        plugin: "cached-flat-iommu",
        caps: innerUnit.caps,
        hardware,
        driver: {
          allocDomain(): IommuDomainOps {
            const ops = innerUnit.driver.allocDomain();
            const units = new Set<IommuUnit>();
            attachedTo.set(ops, units);
            const flush = () => {
              for (const u of units) caches.get(u)!.clear();
            };
            return {
              contextId: ops.contextId,
              rootTable: ops.rootTable,
              map: (plan, prot) => ops.map(plan, prot),
              unmapPages: (iova, ps, n, g: IotlbGather) =>
                ops.unmapPages(iova, ps, n, g),
              leafSize: (iova) => ops.leafSize(iova),
              iovaToPhys: (iova) => ops.iovaToPhys(iova),
              iotlbSync: (g) => {
                ops.iotlbSync(g);
                flush();
              },
              flushAll: () => {
                ops.flushAll();
                flush();
              },
              attach: (unit, sids) => {
                ops.attach(wrapped.get(unit) ?? unit, sids);
                for (const [o, set] of attachedTo) {
                  if (o !== ops) set.delete(unit);
                }
                caches.get(unit)?.clear();
                units.add(unit);
              },
              detach: (unit, sids) => {
                ops.detach(wrapped.get(unit) ?? unit, sids);
                units.delete(unit);
                caches.get(unit)?.clear();
              },
              leaves: () => ops.leaves(),
              tableStats: () => ops.tableStats(),
              free: () => ops.free(),
            };
          },
        },
      };
      caches.set(outer, cache);
      wrapped.set(outer, innerUnit);
      return outer;
    },
  };
}

export interface DmaRig {
  soc: Soc;
  unit: IommuUnit | null;
  master: Master;
}

/** One master: behind a flat unit ("flat"), a cached flat unit ("cached") or none ("direct"). */
export function dmaRig(
  kind: "flat" | "cached" | "direct",
  master: { coherent?: boolean; dmaBits?: number; name?: string } = {},
  memory: { base?: number; size: number } = { size: 64 << 20 },
): DmaRig {
  const soc = createSoc({ memory });
  let unit: IommuUnit | null = null;
  if (kind === "flat") {
    soc.use(flatIommu());
    unit = soc.probeUnit({ name: "mmu", compatible: ["iommukit,flat-iommu"] });
  } else if (kind === "cached") {
    soc.use(cachedFlatIommu());
    unit = soc.probeUnit({
      name: "mmu",
      compatible: ["iommukit,cached-flat-iommu"],
    });
  }
  const m = soc.addMaster({
    name: master.name ?? "dev",
    ports: [{ unit }],
    ...(master.coherent !== undefined ? { coherent: master.coherent } : {}),
    ...(master.dmaBits !== undefined ? { dmaBits: master.dmaBits } : {}),
  });
  return { soc, unit, master: m };
}

/** Bytes 0..n-1 plus a seed, for recognisable patterns. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}
