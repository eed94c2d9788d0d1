/**
 * Setting a mapper up: validating its options, finding the units in front
 * of the master, and opening the IOVA space (internal; not exported from
 * mod.ts).
 *
 * @module
 */
import {
  type Domain,
  hex,
  IommuError,
  type IommuUnit,
  type Master,
  type Soc,
} from "../mod.ts";
import { IovaAllocator } from "./iova_allocator.ts";
import type {
  DmaInvalidationPolicy,
  DmaMapperOptions,
} from "./mapper_types.ts";
import { NO_BOUNDARY, PAGE, pageOffset } from "./page_math.ts";

/** Validated numeric options of a mapper. */
export interface ParsedMapperOptions {
  /** Longest DMA segment, in bytes. */
  maxSeg: number;
  /** Segment boundary, in bytes (`NO_BOUNDARY` = none). */
  boundary: number;
  /** Bounce pool bytes. */
  poolSize: number;
  /** Invalidation policy. */
  policy: DmaInvalidationPolicy;
}

/**
 * Validate the options that need no system state, in the order the errors
 * are reported.
 *
 * @param options The caller's options.
 * @returns The values with defaults applied.
 * @throws {IommuError} `EINVAL` naming the first bad option.
 */
export function parseMapperOptions(
  options: DmaMapperOptions,
): ParsedMapperOptions {
  const maxSeg = options.maxSegmentSize ?? 65536;
  if (!Number.isSafeInteger(maxSeg) || maxSeg < 1) {
    throw new IommuError(
      "EINVAL",
      `max segment size ${String(maxSeg)} must be a positive integer`,
    );
  }
  const boundary = options.segmentBoundary ?? NO_BOUNDARY;
  if (
    !Number.isSafeInteger(boundary) && boundary !== NO_BOUNDARY ||
    boundary < PAGE || 2 ** Math.round(Math.log2(boundary)) !== boundary
  ) {
    throw new IommuError(
      "EINVAL",
      `segment boundary ${
        String(boundary)
      } must be a power of two of at least ${hex(PAGE)}`,
    );
  }
  const poolSize = options.bouncePoolSize ?? 256 * 1024;
  if (
    !Number.isSafeInteger(poolSize) || poolSize < PAGE ||
    pageOffset(poolSize) !== 0
  ) {
    throw new IommuError(
      "EINVAL",
      `bounce pool size ${String(poolSize)} must be a positive multiple of ${
        hex(PAGE)
      }`,
    );
  }
  const policy = options.policy ?? "strict";
  if (policy !== "strict" && policy !== "lazy") {
    throw new IommuError(
      "EINVAL",
      `unknown invalidation policy ${String(policy)}`,
    );
  }
  return { maxSeg, boundary, poolSize, policy };
}

/** A unit in front of the master and the stream IDs its ports use. */
export interface MasterUnit {
  /** The unit. */
  unit: IommuUnit;
  /** Stream IDs of the master's ports behind it (no duplicates). */
  streamIds: number[];
}

/**
 * The units in front of a master's ports (one IOVA space serves them all).
 *
 * @param master The master.
 * @returns Each unit once with its stream IDs; empty for a direct master.
 * @throws {IommuError} `EINVAL` when some ports are direct and some are not.
 */
export function masterUnits(master: Master): MasterUnit[] {
  const units: MasterUnit[] = [];
  const withUnit = master.ports.filter((p) => p.unit !== null);
  if (withUnit.length !== 0 && withUnit.length !== master.ports.length) {
    throw new IommuError(
      "EINVAL",
      `master ${master.name} mixes ports behind an IOMMU with direct ports; one IOVA space cannot serve both`,
    );
  }
  for (const p of master.ports) {
    if (p.unit === null) continue;
    const entry = units.find((u) => u.unit === p.unit);
    if (entry === undefined) {
      units.push({ unit: p.unit, streamIds: [...p.streamIds] });
    } else {
      for (const sid of p.streamIds) {
        if (!entry.streamIds.includes(sid)) entry.streamIds.push(sid);
      }
    }
  }
  return units;
}

/** The domain and IOVA allocator of an IOMMU master, or nulls. */
export interface IovaSpace {
  /** The domain attached to every unit, or null (direct). */
  domain: Domain | null;
  /** The allocator, or null (direct). */
  iova: IovaAllocator | null;
  /** Exclusive upper bound of DMA addresses, in bytes. */
  limit: number;
}

/**
 * Create the master's domain on the first unit, attach it to every unit,
 * and size the IOVA allocator by the aperture, the DMA mask and the units'
 * constraints; all or nothing.
 *
 * @param soc The system.
 * @param master The master (its DMA mask).
 * @param units What {@linkcode masterUnits} returned.
 * @returns The space (nulls and the mask for a direct master).
 * @throws {IommuError} `EINVAL` for a smallest page other than 4 KiB;
 * errors of domain creation and attach (nothing stays created).
 */
export function openIovaSpace(
  soc: Soc,
  master: Master,
  units: MasterUnit[],
): IovaSpace {
  const maskEnd = master.dmaBits >= 53 ? NO_BOUNDARY : 2 ** master.dmaBits;
  let domain: Domain | null = null;
  let iova: IovaAllocator | null = null;
  let limit = maskEnd;
  if (units.length > 0) {
    const first = units[0]!.unit;
    domain = soc.createDomain(first);
    const attached: { unit: IommuUnit; streamIds: number[] }[] = [];
    try {
      if (domain.minPageSize !== PAGE) {
        throw new IommuError(
          "EINVAL",
          `unit ${first.name}'s smallest page ${
            hex(domain.minPageSize)
          } is not the ${hex(PAGE)} CPU page`,
        );
      }
      limit = Math.min(maskEnd, domain.apertureEnd, NO_BOUNDARY);
      let alignment = 0;
      let guardGap = 0;
      for (const u of units) {
        const c = u.unit.caps.iovaConstraints;
        if (c?.alignment !== undefined) {
          alignment = Math.max(alignment, c.alignment);
        }
        if (c?.guardGap !== undefined) {
          guardGap = Math.max(guardGap, c.guardGap);
        }
      }
      iova = new IovaAllocator({
        granule: PAGE,
        end: limit,
        constraints: {
          ...(alignment > 0 ? { alignment } : {}),
          guardGap,
        },
      });
      for (const u of units) {
        domain.attach(u.unit, u.streamIds);
        attached.push(u);
      }
    } catch (e) {
      for (const u of attached) domain.detach(u.unit, u.streamIds);
      domain.free();
      throw e;
    }
  }
  return { domain, iova, limit };
}
