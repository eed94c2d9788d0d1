/**
 * What a workload is and what it gets to run: a platform, a seeded random
 * source, one DMA mapper per master, device-side DMA helpers, and a ledger
 * of data checks (every workload checksums what it expected against what
 * the devices and the CPU actually saw).
 *
 * @module
 */
import { hex, IommuError, type IommuFault, type Port } from "../core/mod.ts";
import type { Platform, PlatformMaster } from "../core/mod.ts";
import {
  createDmaMapper,
  type DmaInvalidationPolicy,
  type DmaMapper,
} from "./dma.ts";
import type { Rng } from "./rng.ts";

/** Numeric parameters of a workload, by name. */
export type WorkloadParams = Readonly<Record<string, number>>;

/** A workload: named, parameterised, deterministic for a given seed. */
export interface Workload {
  /** Short name, e.g. `video-decode`. */
  readonly name: string;
  /** The built-in engine it runs (`video-decode`, `net-rx` or `gpu`). */
  readonly kind: string;
  /** One sentence for listings. */
  readonly description: string;
  /** The parameters in effect (defaults filled in). */
  readonly params: WorkloadParams;
  /**
   * Run it. Data mismatches are recorded with {@linkcode WorkloadContext.check},
   * not thrown.
   * @throws {IommuError} `ENODEV` when the platform lacks a master it needs;
   * whatever the DMA layer throws for a broken driver sequence.
   */
  run(ctx: WorkloadContext): void;
}

/** One failed data check. */
export interface CheckFailure {
  /** What was checked. */
  readonly what: string;
  /** Expected checksum (CRC-32) or value. */
  readonly expected: number;
  /** What was seen. */
  readonly actual: number;
}

/** Counts of data checks. */
export interface CheckSummary {
  /** Checks that matched. */
  passed: number;
  /** Checks that did not. */
  failed: number;
  /** The first failures (at most 20), in order. */
  failures: CheckFailure[];
}

/**
 * Longest single device access the helpers issue, in bytes: an AXI-style
 * burst (a real master never moves a whole frame in one transaction, and
 * many bursts per page are what make an IOTLB pay off).
 */
export const DEVICE_BURST = 256;

/**
 * The environment a workload runs in. Create with {@linkcode createContext}.
 */
export class WorkloadContext {
  /** The platform. */
  readonly platform: Platform;
  /** The seeded random source. */
  readonly rng: Rng;
  /** Invalidation policy every mapper gets. */
  readonly policy: DmaInvalidationPolicy;
  /** Data-check ledger. */
  readonly checks: CheckSummary = { passed: 0, failed: 0, failures: [] };
  /** The first 1000 faults the devices hit (handled by the workloads' fault handlers). */
  readonly faults: IommuFault[] = [];
  /** Every fault the devices hit, counted by reason. */
  readonly faultReasons: Record<string, number> = {};
  #mappers = new Map<string, DmaMapper>();
  #timerFlushes = new Map<DmaMapper, number>();
  #order: PlatformMaster[] = [];
  #progress: (done: number, total: number) => void;

  /**
   * A context for one run.
   *
   * @param platform The platform.
   * @param rng The random source.
   * @param policy Strict or lazy invalidation.
   * @param progress Called as work advances.
   */
  constructor(
    platform: Platform,
    rng: Rng,
    policy: DmaInvalidationPolicy,
    progress: (done: number, total: number) => void = () => {},
  ) {
    this.platform = platform;
    this.rng = rng;
    this.policy = policy;
    this.#progress = progress;
  }

  /**
   * The DMA mapper of a master, created on first use with the context's
   * policy. Its domain (if any) gets a fault handler that records the fault
   * and lets the unit resume, as a driver's handler would.
   *
   * @param m The master.
   * @returns Its mapper.
   * @throws {IommuError} as `createDmaMapper`.
   */
  mapper(m: PlatformMaster): DmaMapper {
    let d = this.#mappers.get(m.name);
    if (d === undefined) {
      d = createDmaMapper(this.platform.soc, m.master, { policy: this.policy });
      d.domain?.setFaultHandler((f) => {
        if (this.faults.length < 1000) this.faults.push(f);
        this.faultReasons[f.reason] = (this.faultReasons[f.reason] ?? 0) + 1;
        return true;
      });
      this.#mappers.set(m.name, d);
      this.#order.push(m);
    }
    return d;
  }

  /**
   * Let simulated time pass for a mapper (a workload calls this once per
   * packet or frame with its documented time step). In lazy mode an expired
   * flush timer flushes here; those flushes are counted as timer flushes.
   *
   * @param mapper A mapper from {@linkcode WorkloadContext.mapper}.
   * @param ms Simulated milliseconds, non-negative.
   * @returns Whether the flush timer fired (a flush happened).
   * @throws {IommuError} `EINVAL` for a negative or non-finite step.
   */
  advanceTime(mapper: DmaMapper, ms: number): boolean {
    const before = mapper.stats().flushes;
    mapper.advanceTime(ms);
    const fired = mapper.stats().flushes - before;
    if (fired > 0) {
      this.#timerFlushes.set(
        mapper,
        (this.#timerFlushes.get(mapper) ?? 0) + fired,
      );
    }
    return fired > 0;
  }

  /**
   * Lazy flushes a mapper's simulated timer caused so far.
   *
   * @param mapper The mapper.
   * @returns Flushes (0 in strict mode).
   */
  timerFlushes(mapper: DmaMapper): number {
    return this.#timerFlushes.get(mapper) ?? 0;
  }

  /** Masters that got a mapper, in first-use order, with their mappers. */
  mappers(): { master: PlatformMaster; mapper: DmaMapper }[] {
    return this.#order.map((master) => ({
      master,
      mapper: this.#mappers.get(master.name)!,
    }));
  }

  /**
   * Record a data check.
   *
   * @param what What was compared.
   * @param expected Expected value (usually a CRC-32).
   * @param actual Observed value.
   * @returns Whether they matched.
   */
  check(what: string, expected: number, actual: number): boolean {
    if (expected === actual) {
      this.checks.passed++;
      return true;
    }
    this.checks.failed++;
    if (this.checks.failures.length < 20) {
      this.checks.failures.push({ what, expected, actual });
    }
    return false;
  }

  /**
   * Report progress.
   * @param done Units of work done.
   * @param total Units of work in all.
   */
  progress(done: number, total: number): void {
    this.#progress(done, total);
  }

  /**
   * A device writes `data` at `iova` through `port`, in bursts. A fault
   * stops the transfer (the bursts before it landed).
   *
   * @param port The port.
   * @param iova Bus address.
   * @param data Bytes.
   * @returns null, or the first fault.
   * @throws {IommuError} as `Port.write` (malformed addresses, DMA mask).
   */
  deviceWrite(port: Port, iova: number, data: Uint8Array): IommuFault | null {
    for (let off = 0; off < data.length; off += DEVICE_BURST) {
      const f = port.write(
        iova + off,
        data.subarray(off, Math.min(data.length, off + DEVICE_BURST)),
      );
      if (f !== null) return f;
    }
    return null;
  }

  /**
   * A device reads `length` bytes at `iova` through `port`, in bursts.
   *
   * @param port The port.
   * @param iova Bus address.
   * @param length Bytes.
   * @returns The bytes, or the first fault.
   * @throws {IommuError} as `Port.read`.
   */
  deviceRead(
    port: Port,
    iova: number,
    length: number,
  ): Uint8Array | IommuFault {
    const out = new Uint8Array(length);
    for (let off = 0; off < length; off += DEVICE_BURST) {
      const f = port.read(
        iova + off,
        out.subarray(off, Math.min(length, off + DEVICE_BURST)),
      );
      if (f !== null) return f;
    }
    return out;
  }
}

/** How a workload picks a master. */
export interface MasterChoice {
  /** What the master is for (for messages), e.g. `decoder`. */
  role: string;
  /** `compatible` strings to prefer, in order. */
  prefer: readonly string[];
  /** Fewest ports wanted for a fallback pick (prefers more). */
  minPorts?: number;
  /** Masters already taken. */
  exclude?: readonly PlatformMaster[];
}

/**
 * Pick a master: the first whose `compatible` is preferred, otherwise a
 * translated master (every port behind a unit, no bypass), most ports first
 * when `minPorts` asks for several, otherwise any master left.
 *
 * @param platform The platform.
 * @param workload Workload name (for the error).
 * @param choice What to look for.
 * @returns The master.
 * @throws {IommuError} `ENODEV` when no master fits.
 */
export function pickMaster(
  platform: Platform,
  workload: string,
  choice: MasterChoice,
): PlatformMaster {
  const taken = new Set((choice.exclude ?? []).map((m) => m.name));
  const free = platform.masters.filter((m) => !taken.has(m.name));
  for (const c of choice.prefer) {
    const m = free.find((x) => x.compatible.includes(c));
    if (m !== undefined) return m;
  }
  const translated = free.filter((m) =>
    !m.bypass && m.ports.every((p) => p.unit !== null)
  );
  const want = choice.minPorts ?? 1;
  const sorted = want > 1
    ? [...translated].sort((a, b) => b.ports.length - a.ports.length)
    : translated;
  // Direct (untranslated) masters still work, through the DMA API's direct mode.
  const m = sorted[0] ?? free[0];
  if (m === undefined) {
    throw new IommuError(
      "ENODEV",
      `workload ${workload} needs a ${choice.role} (compatible ${
        choice.prefer.join(" or ")
      }, or any master behind an IOMMU); platform ${platform.name} has none left`,
    );
  }
  return m;
}

/**
 * Check a DMA address from a map call, as a driver must.
 *
 * @param mapper The mapper that returned it.
 * @param addr The address.
 * @param what What was mapped (for the error).
 * @returns `addr`.
 * @throws {IommuError} `ENOMEM` when it is the mapping-error value.
 */
export function checked(mapper: DmaMapper, addr: number, what: string): number {
  if (mapper.mappingError(addr)) {
    throw new IommuError(
      "ENOMEM",
      `mapping ${what} for ${mapper.master.name} failed (${hex(addr)})`,
    );
  }
  return addr;
}

/**
 * Validate and fill workload parameters.
 *
 * @param workload Workload name (for messages).
 * @param defaults Every accepted parameter with its default.
 * @param limits Inclusive `[min, max]` per parameter.
 * @param given Parameters supplied.
 * @returns The parameters in effect.
 * @throws {IommuError} `EINVAL` for an unknown parameter or a value that is
 * not an integer within its limits.
 */
export function resolveParams(
  workload: string,
  defaults: Record<string, number>,
  limits: Record<string, readonly [number, number]>,
  given: Readonly<Record<string, unknown>> = {},
): Record<string, number> {
  const out = { ...defaults };
  for (const [k, v] of Object.entries(given)) {
    if (!Object.hasOwn(defaults, k)) {
      throw new IommuError(
        "EINVAL",
        `workload ${workload} has no parameter "${k}" (parameters: ${
          Object.keys(defaults).join(", ")
        })`,
      );
    }
    const [lo, hi] = limits[k]!;
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
      throw new IommuError(
        "EINVAL",
        `workload ${workload}: parameter ${k} must be an integer from ${lo} to ${hi}, got ${
          JSON.stringify(v)
        }`,
      );
    }
    out[k] = v;
  }
  return out;
}
