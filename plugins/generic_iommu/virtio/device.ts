/**
 * A virtio-iommu device front end for a generic-iommu unit: it takes requests
 * in their little-endian wire format, applies them to the unit through core
 * domains, and writes the tail (status) the way a device would.
 *
 * Endpoints are the unit's stream IDs; virtio domain IDs map to core
 * `Domain`s (created on the first ATTACH, freed with their mappings when the
 * last endpoint detaches). Bypass domains (ATTACH_F_BYPASS) and the config
 * `bypass` field put streams into STE bypass.
 *
 * Reserved regions (PROBE RESV_MEM) act on DMA as QEMU's translate path
 * does: an access into an MSI region (subtype 1) passes through untranslated
 * (identity, reads and writes allowed) while the endpoint is attached to a
 * translating domain, and an access into any other region faults (R_MAPPING)
 * even where a MAP covered it. Every translating domain holds an identity
 * mapping (MMIO memory type) of the 4 KiB pages that hold each MSI region,
 * from its creation to its end; it is not a MAP region (not listed by
 * {@linkcode VirtioIommu.mappings}, never removed by UNMAP), so moving,
 * detaching, reattaching and {@linkcode VirtioIommu.reset} keep every
 * attached endpoint's doorbells reachable. An unattached endpoint not in
 * bypass reaches nothing, MSI regions included (spec bypass rules).
 *
 * Check order, `strict` profile (the first failing check decides):
 * - any request: shorter than its layout (or than 8 bytes) → nothing written
 *   (used length 0); unknown type → nothing written.
 * - ATTACH: reserved≠0 INVAL → unknown flag (or BYPASS without
 *   BYPASS_CONFIG) INVAL → endpoint unknown NOENT → domain outside
 *   domain_range RANGE → existing domain of the other bypass kind INVAL →
 *   domain full (maxEndpointsPerDomain) UNSUPP → already attached there OK →
 *   domain cap or allocation failure NOMEM → OK (an endpoint attached
 *   elsewhere moves; a domain left empty ceases to exist).
 * - DETACH: endpoint unknown NOENT → domain unknown or endpoint not in it
 *   INVAL → OK (reserved is ignored).
 * - MAP: MAP_UNMAP not offered UNSUPP → unknown flag (or MMIO without F_MMIO)
 *   INVAL → domain unknown NOENT → bypass domain INVAL → virt_end < virt_start
 *   INVAL → size of 2^64 DEVERR → outside input_range (the unit's input size)
 *   RANGE, also without INPUT_RANGE: the driver then takes the range as
 *   0..2^64-1, but a region the unit cannot translate is refused rather than
 *   recorded with every DMA to it faulting → unaligned
 *   virt_start, virt_end+1 or phys_start RANGE → physical end beyond the
 *   unit's output size RANGE → RESV_MEM overlap (any subtype) INVAL →
 *   overlap with a
 *   mapping INVAL → mapping cap NOMEM → non-MMIO physical range not in RAM
 *   FAULT → page-table allocation NOMEM → OK.
 * - UNMAP: MAP_UNMAP not offered UNSUPP → reserved≠0 INVAL → domain unknown
 *   NOENT → bypass domain INVAL → virt_end < virt_start INVAL → a mapping
 *   would be split RANGE (nothing removed) → OK (every covered mapping
 *   removed, one invalidation).
 * - PROBE: not offered → nothing written; endpoint unknown NOENT →
 *   properties larger than probe_size INVAL (no property written) → OK.
 * - Any operation whose invalidation fails in the unit (command queue
 *   stopped) → IOERR; any other unexpected failure → DEVERR. An ATTACH or
 *   DETACH answered IOERR changes nothing: the endpoint stays where it was.
 *
 * Core domains the unit could not free (the invalidation that freeing needs
 * failed) are kept aside, not leaked: a domain created by an ATTACH that then
 * failed is reused by the next ATTACH that needs a new domain, and every
 * domain kept aside is freed at the start of the next request (or
 * {@linkcode VirtioIommu.reset}) once the unit completes its invalidation.
 * A DETACH whose endpoint left but whose emptied domain could not be freed
 * yet answers OK.
 *
 * Fault records (24 bytes, eventq layout): a stream that is not an endpoint
 * → R_UNKNOWN; an endpoint with no domain and no bypass → R_DOMAIN; no
 * mapping, a forbidden access or an address beyond the input size →
 * R_MAPPING. Flags are F_READ or F_WRITE plus F_ADDRESS. Records beyond
 * `eventQueueSize` are dropped (counted as `eventsDropped`). An access the
 * unit translated (or let through) but that found no RAM (core `bus-error`,
 * such as a doorbell write to an MSI region outside RAM) is not a
 * translation fault: it gives no record.
 *
 * `qemu-compat` profile: a 1-byte granule (page_size_mask bit 0) and no
 * alignment, input_range, output-size, RESV_MEM or FAULT checks on MAP
 * (QEMU's order: flags → domain → bypass → overlap); UNMAP does not check
 * reserved; an unknown type is answered UNSUPP; regions not aligned to 4 KiB
 * or beyond the unit's input or output size are recorded but not written to
 * the page table (DMA to them faults); a region overlapping reserved regions
 * is written except the 4 KiB pages that hold them (those keep the identity
 * of an MSI region or the fault of another one, as in QEMU, whose translate
 * path checks the reserved regions before the mappings); `bypass` defaults
 * to 1.
 *
 * @module
 */
import {
  checkAddress,
  checkList,
  checkObject,
  type Domain,
  hex,
  IOMMU_MMIO,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuFault,
  type IommuUnit,
  IotlbGather,
  type Soc,
} from "../../../core/mod.ts";
import { genericDriverOf } from "../plugin.ts";
import {
  VIRTIO_IOMMU_ATTACH_BYTES,
  VIRTIO_IOMMU_ATTACH_F_BYPASS,
  VIRTIO_IOMMU_CONFIG_BYTES,
  VIRTIO_IOMMU_DETACH_BYTES,
  VIRTIO_IOMMU_F_BYPASS,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_DOMAIN_RANGE,
  VIRTIO_IOMMU_F_INPUT_RANGE,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_FAULT_F_ADDRESS,
  VIRTIO_IOMMU_FAULT_F_READ,
  VIRTIO_IOMMU_FAULT_F_WRITE,
  VIRTIO_IOMMU_FAULT_R_DOMAIN,
  VIRTIO_IOMMU_FAULT_R_MAPPING,
  VIRTIO_IOMMU_FAULT_R_UNKNOWN,
  VIRTIO_IOMMU_MAP_BYTES,
  VIRTIO_IOMMU_MAP_F_MASK,
  VIRTIO_IOMMU_MAP_F_MMIO,
  VIRTIO_IOMMU_MAP_F_READ,
  VIRTIO_IOMMU_MAP_F_WRITE,
  VIRTIO_IOMMU_PROBE_HEAD_BYTES,
  VIRTIO_IOMMU_PROBE_T_RESV_MEM,
  VIRTIO_IOMMU_RESV_MEM_BYTES,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  VIRTIO_IOMMU_S_DEVERR,
  VIRTIO_IOMMU_S_FAULT,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_IOERR,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_NOMEM,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_S_RANGE,
  VIRTIO_IOMMU_S_UNSUPP,
  VIRTIO_IOMMU_STATUS_NAMES,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_PROBE,
  VIRTIO_IOMMU_T_UNMAP,
  VIRTIO_IOMMU_UNMAP_BYTES,
} from "./constants.ts";
import { MappingList, type VirtioMapping } from "./mapping_list.ts";
import { encodeFaultRecord } from "./wire.ts";

/** Which status rules the device follows (see the module documentation). */
export type VirtioIommuProfile = "strict" | "qemu-compat";

/** A reserved region reported by PROBE (RESV_MEM) and refused by MAP. */
export interface VirtioResvRegion {
  /** First address. */
  start: number;
  /** Last address, inclusive. */
  end: number;
  /**
   * 0 reserved (DMA into it faults), 1 MSI doorbell (DMA into it passes
   * through untranslated while the endpoint is attached to a translating
   * domain); other values are reported by PROBE and act as reserved.
   */
  subtype: number;
}

/** Options of {@linkcode createVirtioIommu}. */
export interface VirtioIommuOptions {
  /** Status rules; default `strict`. */
  profile?: VirtioIommuProfile;
  /**
   * Offered feature bits (`VIRTIO_IOMMU_F_*`), an integer from 0 to
   * 0xffffffff; default INPUT_RANGE | DOMAIN_RANGE | MAP_UNMAP | PROBE |
   * MMIO | BYPASS_CONFIG. Without INPUT_RANGE a `strict` MAP still answers
   * RANGE beyond the unit's input size.
   */
  features?: number;
  /** Initial `bypass` config value; default false (`qemu-compat`: true). */
  bypass?: boolean;
  /**
   * Valid domain IDs, inclusive: two integers from 0 to 0xffffffff (the
   * 32-bit config fields), first ≤ last; default [0, 0xffffffff].
   */
  domainRange?: readonly [number, number];
  /** Bytes of the PROBE property area, 0 to 0xffffffff; default 512. */
  probeSize?: number;
  /** Endpoints (stream IDs) that exist; default every stream of the unit. */
  endpoints?: readonly number[];
  /**
   * Reserved regions of every endpoint (RESV_MEM): `start` ≤ `end`, both
   * non-negative safe integers, `subtype` an integer from 0 to 255. The
   * 4 KiB pages holding an MSI region (subtype 1) are identity-mapped in
   * every translating domain, so they must lie below both the unit's input
   * and output sizes and hold no byte of a region of another subtype.
   * Default none.
   */
  reservedRegions?: readonly VirtioResvRegion[];
  /**
   * Domains alive at once before ATTACH answers NOMEM; default 65536. This
   * and the other limits below are non-negative safe integers or `Infinity`.
   */
  maxDomains?: number;
  /** Mappings per domain before MAP answers NOMEM; default 2^20. */
  maxMappingsPerDomain?: number;
  /** Endpoints per domain before ATTACH answers UNSUPP; default unlimited. */
  maxEndpointsPerDomain?: number;
  /** Fault records kept until taken; later ones are dropped. Default 64. */
  eventQueueSize?: number;
}

/** Counters of the front end. */
export interface VirtioIommuCounters {
  /** Requests handled, by status name (and `NOREPLY` for used length 0). */
  [status: string]: number;
}

interface VDomain {
  id: number;
  bypass: boolean;
  domain: Domain | null;
  endpoints: Set<number>;
  mappings: MappingList;
}

const U64_MAX = (1n << 64n) - 1n;
const GRANULE = 4096n;

/**
 * The device. Create it with {@linkcode createVirtioIommu}.
 */
export class VirtioIommu {
  /** The generic-iommu unit behind the device. */
  readonly unit: IommuUnit;
  /** Status profile. */
  readonly profile: VirtioIommuProfile;
  /** Offered feature bits. */
  readonly features: number;
  /** Bytes of the PROBE property area. */
  readonly probeSize: number;
  #soc: Soc;
  #endpoints: Set<number>;
  #domains = new Map<number, VDomain>();
  #attached = new Map<number, VDomain>();
  #bypass: boolean;
  #domainRange: readonly [number, number];
  #resv: readonly VirtioResvRegion[];
  #maxDomains: number;
  #maxMappings: number;
  #maxEndpoints: number;
  #granule: bigint;
  // Identity-mapped in every translating domain: the pages holding the MSI
  // regions, merged, as [start, end) runs.
  #msiPages: [bigint, bigint][];
  // The pages holding any reserved region, sorted by start, as [start, end)
  // runs (may overlap): MAP never writes them.
  #resvPages: [bigint, bigint][];
  #inputEnd: bigint;
  #outputEnd: bigint;
  #events: Uint8Array[] = [];
  #eventLimit: number;
  #eventsDropped = 0;
  #counts: VirtioIommuCounters = {};
  #unlisten: () => void;
  // A core domain created by an ATTACH that failed and that could not be
  // freed: no stream ever translated through it and it holds only the MSI
  // identity mappings, so the next ATTACH needing a new domain may take it.
  #spare: Domain | null = null;
  // Emptied core domains whose free failed (the unit's invalidation did not
  // complete); freed at the start of a later request.
  #unfreed: Domain[] = [];

  /**
   * Build it (see the class documentation).
   *
   * @param soc The system the unit belongs to.
   * @param unit A generic-iommu unit.
   * @param options Device options.
   * @throws {IommuError} `EINVAL` for another plugin's unit or bad options
   * (an unknown profile, endpoints beyond the unit's streams, a value that
   * does not fit its config or PROBE field, a `domainRange` or reserved
   * region whose start is above its end, an MSI region whose pages reach
   * the unit's input or output size or hold a byte of another reserved
   * region, or a limit that is not a non-negative integer); the message
   * names the option.
   */
  constructor(soc: Soc, unit: IommuUnit, options: VirtioIommuOptions = {}) {
    genericDriverOf(unit);
    checkOptions(options);
    this.#soc = soc;
    this.unit = unit;
    const profile = options.profile ?? "strict";
    if (profile !== "strict" && profile !== "qemu-compat") {
      throw new IommuError(
        "EINVAL",
        `unknown virtio-iommu profile ${String(profile)}`,
      );
    }
    this.profile = profile;
    this.features = options.features ??
      (VIRTIO_IOMMU_F_INPUT_RANGE | VIRTIO_IOMMU_F_DOMAIN_RANGE |
        VIRTIO_IOMMU_F_MAP_UNMAP |
        VIRTIO_IOMMU_F_PROBE | VIRTIO_IOMMU_F_MMIO |
        VIRTIO_IOMMU_F_BYPASS_CONFIG);
    this.probeSize = options.probeSize ?? 512;
    const streams = unit.caps.streamIds;
    const eps = options.endpoints !== undefined
      ? Array.from(options.endpoints)
      : Array.from({ length: streams }, (_, i) => i);
    for (const e of eps) {
      checkAddress(e, "virtio-iommu option endpoints: endpoint");
      if (e >= streams) {
        throw new IommuError(
          "EINVAL",
          `endpoint ${hex(e)} is beyond unit ${unit.name}'s ${streams} streams`,
        );
      }
    }
    this.#endpoints = new Set(eps);
    const range = options.domainRange;
    this.#domainRange = range !== undefined
      ? [range[0]!, range[1]!]
      : [0, 0xffffffff];
    this.#resv = Array.from(
      options.reservedRegions ?? [],
      (r) => ({ start: r.start, end: r.end, subtype: r.subtype }),
    );
    this.#maxDomains = options.maxDomains ?? 65536;
    this.#maxMappings = options.maxMappingsPerDomain ?? 1 << 20;
    this.#maxEndpoints = options.maxEndpointsPerDomain ?? Infinity;
    this.#eventLimit = options.eventQueueSize ?? 64;
    this.#granule = profile === "qemu-compat" ? 1n : GRANULE;
    this.#inputEnd = (1n << BigInt(unit.caps.inputBits)) - 1n;
    this.#outputEnd = 1n << BigInt(unit.caps.outputBits);
    this.#resvPages = this.#resv.map(pagesOf).sort((a, b) =>
      a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
    );
    this.#msiPages = msiPages(
      this.#resv,
      this.#inputEnd + 1n < this.#outputEnd
        ? this.#inputEnd + 1n
        : this.#outputEnd,
    );
    this.#bypass = options.bypass ?? profile === "qemu-compat";
    for (const ep of this.#endpoints) this.#applyIdle(ep);
    this.#unlisten = soc.faults.onFault((f) => this.#onFault(f));
  }

  // Whether an unattached endpoint bypasses: the `bypass` field with
  // BYPASS_CONFIG, else the legacy BYPASS feature (spec bypass rules).
  #idleBypass(): boolean {
    if ((this.features & VIRTIO_IOMMU_F_BYPASS_CONFIG) !== 0) {
      return this.#bypass;
    }
    return (this.features & VIRTIO_IOMMU_F_BYPASS) !== 0;
  }

  // What an endpoint's stream does while no translating domain holds it.
  #applyIdle(ep: number): void {
    const d = this.#attached.get(ep);
    const bypass = d !== undefined ? d.bypass : this.#idleBypass();
    genericDriverOf(this.unit).setStreamBypass(ep, bypass);
  }

  /**
   * Device reset: every endpoint is detached and every domain (with its
   * mappings) dropped; `bypass` keeps its value, as the spec asks.
   *
   * @throws {IommuError} `EIO` when the unit's command queue fails: the
   * endpoints detached until then stay detached, the others stay attached
   * (their domains and mappings kept), and pending fault records are kept.
   */
  reset(): void {
    this.#releaseHeld();
    for (const [ep, d] of this.#attached) this.#detachEndpoint(d, ep);
    for (const ep of this.#endpoints) this.#applyIdle(ep);
    this.#events = [];
  }

  // Free the core domains kept aside, stopping at the first the unit still
  // cannot free (its command queue is stalled: the others would fail too).
  #releaseHeld(): void {
    if (this.#spare !== null) {
      if (!freeDomain(this.#spare)) return;
      this.#spare = null;
    }
    while (this.#unfreed.length > 0) {
      if (!freeDomain(this.#unfreed[this.#unfreed.length - 1]!)) return;
      this.#unfreed.pop();
    }
  }

  /** The `bypass` config field (true = 1). */
  get bypass(): boolean {
    return this.#bypass;
  }

  /**
   * Driver write of the `bypass` config field (only with BYPASS_CONFIG):
   * every unattached endpoint follows it at once.
   *
   * @param on The new value.
   * @throws {IommuError} `EPERM` when BYPASS_CONFIG is not offered.
   */
  setBypass(on: boolean): void {
    if ((this.features & VIRTIO_IOMMU_F_BYPASS_CONFIG) === 0) {
      throw new IommuError(
        "EPERM",
        "bypass is writable only with VIRTIO_IOMMU_F_BYPASS_CONFIG",
      );
    }
    this.#bypass = on;
    for (const ep of this.#endpoints) {
      if (!this.#attached.has(ep)) this.#applyIdle(ep);
    }
  }

  /**
   * The 40-byte little-endian config space: page_size_mask, input_range,
   * domain_range, probe_size, bypass.
   *
   * @returns A new buffer.
   */
  config(): Uint8Array {
    const b = new Uint8Array(VIRTIO_IOMMU_CONFIG_BYTES);
    const v = new DataView(b.buffer);
    let mask = 0n;
    for (const s of this.unit.caps.pageSizes) mask |= BigInt(s);
    if (this.#granule === 1n) mask |= 1n;
    v.setBigUint64(0, mask, true);
    v.setBigUint64(8, 0n, true);
    v.setBigUint64(16, this.#inputEnd, true);
    v.setUint32(24, this.#domainRange[0], true);
    v.setUint32(28, this.#domainRange[1], true);
    v.setUint32(32, this.probeSize, true);
    b[36] = this.#bypass ? 1 : 0;
    return b;
  }

  /**
   * Handle one request. The device-writable part (the 4-byte tail, or a
   * PROBE's properties and tail) is written into `request` in place and
   * returned; an empty result means used length 0 (nothing written).
   *
   * @param request Device-readable bytes followed by room for the reply.
   * @returns The written bytes (a view into `request`), or an empty array.
   */
  handleRequest(request: Uint8Array): Uint8Array {
    if (this.#spare !== null || this.#unfreed.length > 0) this.#releaseHeld();
    const out = this.#dispatch(request);
    const name = out.length === 0
      ? "NOREPLY"
      : statusName(out[out.length - 4]!);
    this.#counts[name] = (this.#counts[name] ?? 0) + 1;
    return out;
  }

  #dispatch(req: Uint8Array): Uint8Array {
    if (req.length < 8) return new Uint8Array(0);
    const v = new DataView(req.buffer, req.byteOffset, req.byteLength);
    const type = req[0]!;
    const sizes: Record<number, number> = {
      [VIRTIO_IOMMU_T_ATTACH]: VIRTIO_IOMMU_ATTACH_BYTES,
      [VIRTIO_IOMMU_T_DETACH]: VIRTIO_IOMMU_DETACH_BYTES,
      [VIRTIO_IOMMU_T_MAP]: VIRTIO_IOMMU_MAP_BYTES,
      [VIRTIO_IOMMU_T_UNMAP]: VIRTIO_IOMMU_UNMAP_BYTES,
      [VIRTIO_IOMMU_T_PROBE]: VIRTIO_IOMMU_PROBE_HEAD_BYTES + this.probeSize +
        4,
    };
    const size = sizes[type];
    if (size === undefined) {
      if (this.profile === "qemu-compat") {
        return this.#tail(req, req.length - 4, VIRTIO_IOMMU_S_UNSUPP);
      }
      return new Uint8Array(0);
    }
    if (req.length < size) return new Uint8Array(0);
    if (
      type === VIRTIO_IOMMU_T_PROBE &&
      (this.features & VIRTIO_IOMMU_F_PROBE) === 0
    ) {
      return new Uint8Array(0);
    }
    let status: number;
    try {
      switch (type) {
        case VIRTIO_IOMMU_T_ATTACH:
          status = this.#attach(
            v.getUint32(4, true),
            v.getUint32(8, true),
            v.getUint32(12, true),
            v.getUint32(16, true),
          );
          break;
        case VIRTIO_IOMMU_T_DETACH:
          status = this.#detach(v.getUint32(4, true), v.getUint32(8, true));
          break;
        case VIRTIO_IOMMU_T_MAP:
          status = this.#map(
            v.getUint32(4, true),
            v.getBigUint64(8, true),
            v.getBigUint64(16, true),
            v.getBigUint64(24, true),
            v.getUint32(32, true),
          );
          break;
        case VIRTIO_IOMMU_T_UNMAP:
          status = this.#unmap(
            v.getUint32(4, true),
            v.getBigUint64(8, true),
            v.getBigUint64(16, true),
            v.getUint32(24, true),
          );
          break;
        default:
          return this.#probe(req, v.getUint32(4, true));
      }
    } catch (e) {
      status = e instanceof IommuError && e.kind === "EIO"
        ? VIRTIO_IOMMU_S_IOERR
        : VIRTIO_IOMMU_S_DEVERR;
    }
    return this.#tail(req, size - 4, status);
  }

  #tail(req: Uint8Array, at: number, status: number): Uint8Array {
    req.fill(0, at, at + 4);
    req[at] = status;
    return req.subarray(at, at + 4);
  }

  #attach(id: number, ep: number, flags: number, reserved: number): number {
    if (reserved !== 0) return VIRTIO_IOMMU_S_INVAL;
    const allowed = (this.features & VIRTIO_IOMMU_F_BYPASS_CONFIG) !== 0
      ? VIRTIO_IOMMU_ATTACH_F_BYPASS
      : 0;
    if ((flags & ~allowed) !== 0) return VIRTIO_IOMMU_S_INVAL;
    if (!this.#endpoints.has(ep)) return VIRTIO_IOMMU_S_NOENT;
    if (!this.#domainOk(id)) return VIRTIO_IOMMU_S_RANGE;
    const bypass = (flags & VIRTIO_IOMMU_ATTACH_F_BYPASS) !== 0;
    let d = this.#domains.get(id);
    if (d !== undefined && d.bypass !== bypass) return VIRTIO_IOMMU_S_INVAL;
    if (
      d !== undefined && !d.endpoints.has(ep) &&
      d.endpoints.size >= this.#maxEndpoints
    ) {
      return VIRTIO_IOMMU_S_UNSUPP;
    }
    const old = this.#attached.get(ep);
    if (old === d && d !== undefined) return VIRTIO_IOMMU_S_OK;
    let created = false;
    if (d === undefined) {
      if (this.#domains.size >= this.#maxDomains) return VIRTIO_IOMMU_S_NOMEM;
      let core: Domain | null = null;
      if (!bypass && this.#spare !== null) {
        core = this.#spare;
        this.#spare = null;
      } else if (!bypass) {
        try {
          core = this.#newCore();
        } catch (e) {
          if (
            e instanceof IommuError &&
            (e.kind === "ENOMEM" || e.kind === "ENOSPC")
          ) return VIRTIO_IOMMU_S_NOMEM;
          throw e;
        }
      }
      d = {
        id,
        bypass,
        domain: core,
        endpoints: new Set(),
        mappings: new MappingList(),
      };
      created = true;
    }
    const drv = genericDriverOf(this.unit);
    try {
      if (!bypass) {
        // One STE store moves the stream from its old domain (or from bypass).
        d.domain!.attach(this.unit, [ep]);
      } else if (old === undefined || old.domain !== null) {
        // An unattached stream takes the bypass STE now; an attached one
        // lands in bypass when its domain lets it go.
        drv.setStreamBypass(ep, true);
        old?.domain?.detach(this.unit, [ep]);
      }
    } catch (e) {
      if (bypass && old === undefined) {
        this.#restoreMode(ep, this.#idleBypass());
      }
      const core = created ? d.domain : null;
      // The unit put the stream back; the new domain was never used. It
      // cannot be freed while the queue that failed is needed to free it.
      if (core !== null && !freeDomain(core)) {
        if (core.attachments().length === 0) this.#spare = core;
        else this.#unfreed.push(core);
      }
      throw e;
    }
    if (created) this.#domains.set(id, d);
    d.endpoints.add(ep);
    this.#attached.set(ep, d);
    if (old !== undefined) this.#leave(old, ep);
    return VIRTIO_IOMMU_S_OK;
  }

  // A new translating core domain holding the identity mappings of the MSI
  // pages; an allocation failure (ENOMEM) leaves no domain behind.
  #newCore(): Domain {
    const core = this.#soc.createDomain(this.unit);
    try {
      for (const [s, e] of this.#msiPages) {
        core.map(
          Number(s),
          Number(s),
          Number(e - s),
          IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO,
        );
      }
    } catch (e) {
      if (!freeDomain(core)) this.#unfreed.push(core);
      throw e;
    }
    return core;
  }

  // The parts of [start, end) outside every reserved region's pages, in
  // order: what a MAP writes to the page table (all of it in `strict`,
  // where MAP refuses any overlap with a reserved region).
  #runs(start: bigint, end: bigint): [bigint, bigint][] {
    const out: [bigint, bigint][] = [];
    let at = start;
    for (const [s, e] of this.#resvPages) {
      if (s >= end) break;
      if (e <= at) continue;
      if (s > at) out.push([at, s]);
      at = e;
      if (at >= end) break;
    }
    if (at < end) out.push([at, end]);
    return out;
  }

  // Put the mode of a stream no domain translates back to `bypass` after a
  // change the queue failed to complete (the restored STE waits for the
  // unit to refetch it).
  #restoreMode(ep: number, bypass: boolean): void {
    try {
      genericDriverOf(this.unit).setStreamBypass(ep, bypass);
    } catch {
      // The entry in RAM is restored; only its invalidation is pending.
    }
  }

  // Take `ep` out of `d` in the unit, then in the bookkeeping. A throw
  // (EIO) leaves the endpoint attached to `d`.
  #detachEndpoint(d: VDomain, ep: number): void {
    const drv = genericDriverOf(this.unit);
    const idle = this.#idleBypass();
    if (d.domain !== null) {
      // The idle mode first (a flag only while the stream translates), so
      // the detach lands there in one STE store.
      drv.setStreamBypass(ep, idle);
      d.domain.detach(this.unit, [ep]);
    } else {
      // A bypass domain: the stream's STE is bypass already.
      try {
        drv.setStreamBypass(ep, idle);
      } catch (e) {
        this.#restoreMode(ep, true);
        throw e;
      }
    }
    this.#attached.delete(ep);
    this.#leave(d, ep);
  }

  // Drop `ep` from `d`'s bookkeeping; an empty domain ceases to exist (its
  // core domain is kept aside when the unit cannot free it yet).
  #leave(d: VDomain, ep: number): void {
    d.endpoints.delete(ep);
    if (d.endpoints.size === 0) {
      this.#domains.delete(d.id);
      if (d.domain !== null && !freeDomain(d.domain)) {
        this.#unfreed.push(d.domain);
      }
    }
  }

  #domainOk(id: number): boolean {
    if ((this.features & VIRTIO_IOMMU_F_DOMAIN_RANGE) === 0) return true;
    return id >= this.#domainRange[0] && id <= this.#domainRange[1];
  }

  #detach(id: number, ep: number): number {
    if (!this.#endpoints.has(ep)) return VIRTIO_IOMMU_S_NOENT;
    const d = this.#domains.get(id);
    if (d === undefined || !d.endpoints.has(ep)) return VIRTIO_IOMMU_S_INVAL;
    this.#detachEndpoint(d, ep);
    return VIRTIO_IOMMU_S_OK;
  }

  #map(
    id: number,
    start: bigint,
    end: bigint,
    phys: bigint,
    flags: number,
  ): number {
    if ((this.features & VIRTIO_IOMMU_F_MAP_UNMAP) === 0) {
      return VIRTIO_IOMMU_S_UNSUPP;
    }
    const mmioOk = (this.features & VIRTIO_IOMMU_F_MMIO) !== 0;
    const allowed = VIRTIO_IOMMU_MAP_F_MASK &
      ~(mmioOk ? 0 : VIRTIO_IOMMU_MAP_F_MMIO);
    if ((flags & ~allowed) !== 0) return VIRTIO_IOMMU_S_INVAL;
    const d = this.#domains.get(id);
    if (d === undefined) return VIRTIO_IOMMU_S_NOENT;
    if (d.bypass) return VIRTIO_IOMMU_S_INVAL;
    const strict = this.profile === "strict";
    if (strict) {
      if (end < start) return VIRTIO_IOMMU_S_INVAL;
      if (start === 0n && end === U64_MAX) return VIRTIO_IOMMU_S_DEVERR;
      // Without INPUT_RANGE too: the unit cannot translate beyond its input.
      if (end > this.#inputEnd) return VIRTIO_IOMMU_S_RANGE;
      const g = this.#granule;
      if (start % g !== 0n || (end + 1n) % g !== 0n || phys % g !== 0n) {
        return VIRTIO_IOMMU_S_RANGE;
      }
      if (phys + (end - start) >= this.#outputEnd) return VIRTIO_IOMMU_S_RANGE;
      for (const r of this.#resv) {
        if (BigInt(r.start) <= end && BigInt(r.end) >= start) {
          return VIRTIO_IOMMU_S_INVAL;
        }
      }
    } else if (end < start) {
      return VIRTIO_IOMMU_S_INVAL;
    }
    if (d.mappings.overlaps(start, end)) return VIRTIO_IOMMU_S_INVAL;
    if (d.mappings.size >= this.#maxMappings) return VIRTIO_IOMMU_S_NOMEM;
    const mmio = (flags & VIRTIO_IOMMU_MAP_F_MMIO) !== 0;
    const mem = this.#soc.memory;
    const size = end - start + 1n;
    if (strict && !mmio) {
      const p = Number(phys), n = Number(size);
      if (!mem.contains(p, n)) return VIRTIO_IOMMU_S_FAULT;
    }
    const prot = ((flags & VIRTIO_IOMMU_MAP_F_READ) !== 0 ? IOMMU_READ : 0) |
      ((flags & VIRTIO_IOMMU_MAP_F_WRITE) !== 0 ? IOMMU_WRITE : 0);
    const runs = prot !== 0 && start % GRANULE === 0n &&
        size % GRANULE === 0n && phys % GRANULE === 0n &&
        end <= this.#inputEnd && phys + size <= this.#outputEnd
      ? this.#runs(start, end + 1n)
      : [];
    const backed = runs.length > 0;
    const dom = d.domain!;
    let done = 0;
    try {
      for (const [s, e] of runs) {
        dom.map(
          Number(s),
          Number(phys + (s - start)),
          Number(e - s),
          prot | (mmio ? IOMMU_MMIO : 0),
        );
        done++;
      }
    } catch (e) {
      if (done > 0) {
        // No partial mapping: take back the runs written before the failure.
        const gather = new IotlbGather();
        for (const [s, t] of runs.slice(0, done)) {
          dom.unmapNoSync(Number(s), Number(t - s), gather);
        }
        dom.sync(gather);
      }
      if (e instanceof IommuError && e.kind === "ENOMEM") {
        return VIRTIO_IOMMU_S_NOMEM;
      }
      if (e instanceof IommuError && e.kind === "EEXIST") {
        return VIRTIO_IOMMU_S_INVAL;
      }
      throw e;
    }
    d.mappings.insert({ start, end, phys, flags, backed });
    return VIRTIO_IOMMU_S_OK;
  }

  #unmap(id: number, start: bigint, end: bigint, reserved: number): number {
    if ((this.features & VIRTIO_IOMMU_F_MAP_UNMAP) === 0) {
      return VIRTIO_IOMMU_S_UNSUPP;
    }
    if (this.profile === "strict" && reserved !== 0) {
      return VIRTIO_IOMMU_S_INVAL;
    }
    const d = this.#domains.get(id);
    if (d === undefined) return VIRTIO_IOMMU_S_NOENT;
    if (d.bypass) return VIRTIO_IOMMU_S_INVAL;
    if (end < start) return VIRTIO_IOMMU_S_INVAL;
    const hit = d.mappings.intersecting(start, end);
    for (const m of hit) {
      if (m.start < start || m.end > end) return VIRTIO_IOMMU_S_RANGE;
    }
    if (hit.length === 0) return VIRTIO_IOMMU_S_OK;
    const gather = new IotlbGather();
    const dom = d.domain!;
    for (const m of hit) {
      if (!m.backed) continue;
      for (const [s, e] of this.#runs(m.start, m.end + 1n)) {
        dom.unmapNoSync(Number(s), Number(e - s), gather);
      }
    }
    d.mappings.remove(hit);
    dom.sync(gather);
    return VIRTIO_IOMMU_S_OK;
  }

  #probe(req: Uint8Array, ep: number): Uint8Array {
    const at = VIRTIO_IOMMU_PROBE_HEAD_BYTES;
    const tailAt = at + this.probeSize;
    req.fill(0, at, tailAt + 4);
    let status = VIRTIO_IOMMU_S_OK;
    if (!this.#endpoints.has(ep)) status = VIRTIO_IOMMU_S_NOENT;
    else if (this.#resv.length * VIRTIO_IOMMU_RESV_MEM_BYTES > this.probeSize) {
      status = VIRTIO_IOMMU_S_INVAL;
    } else {
      const v = new DataView(req.buffer, req.byteOffset, req.byteLength);
      let off = at;
      for (const r of this.#resv) {
        v.setUint16(off, VIRTIO_IOMMU_PROBE_T_RESV_MEM, true);
        v.setUint16(off + 2, VIRTIO_IOMMU_RESV_MEM_BYTES - 4, true);
        req[off + 4] = r.subtype;
        v.setBigUint64(off + 8, BigInt(r.start), true);
        v.setBigUint64(off + 16, BigInt(r.end), true);
        off += VIRTIO_IOMMU_RESV_MEM_BYTES;
      }
    }
    req[tailAt] = status;
    return req.subarray(at, tailAt + 4);
  }

  #onFault(f: IommuFault): void {
    if (f.unit !== this.unit.name) return;
    // The memory behind a translated address, not the IOMMU, refused it.
    if (f.reason === "bus-error") return;
    let reason = VIRTIO_IOMMU_FAULT_R_UNKNOWN;
    if (!this.#endpoints.has(f.streamId)) {
      // Not an endpoint of this device (QEMU: unknown SID → R_UNKNOWN).
    } else if (
      f.reason === "translation" || f.reason === "permission" ||
      f.reason === "address-size"
    ) {
      reason = VIRTIO_IOMMU_FAULT_R_MAPPING;
    } else if (f.reason === "bad-stream-entry" || f.reason === "blocked") {
      reason = VIRTIO_IOMMU_FAULT_R_DOMAIN;
    }
    if (this.#events.length >= this.#eventLimit) {
      this.#eventsDropped++;
      return;
    }
    const flags =
      (f.access === "write"
        ? VIRTIO_IOMMU_FAULT_F_WRITE
        : VIRTIO_IOMMU_FAULT_F_READ) |
      VIRTIO_IOMMU_FAULT_F_ADDRESS;
    this.#events.push(encodeFaultRecord({
      reason,
      flags,
      endpoint: Number.isSafeInteger(f.streamId) && f.streamId >= 0
        ? f.streamId >>> 0
        : 0xffffffff,
      address: Number.isSafeInteger(f.iova) && f.iova >= 0
        ? BigInt(f.iova)
        : 0n,
    }));
  }

  /**
   * Take the pending fault records (24 bytes each, oldest first), as the
   * driver would from the event virtqueue.
   *
   * @returns The records.
   */
  takeEvents(): Uint8Array[] {
    const out = this.#events;
    this.#events = [];
    return out;
  }

  /**
   * The domain an endpoint is attached to.
   *
   * @param endpoint Endpoint ID.
   * @returns The virtio domain ID, or -1 when unattached.
   */
  domainOf(endpoint: number): number {
    return this.#attached.get(endpoint)?.id ?? -1;
  }

  /**
   * The MAP regions of a domain.
   *
   * @param id Virtio domain ID.
   * @returns Regions in IOVA order, or null when the domain does not exist.
   */
  mappings(id: number): VirtioMapping[] | null {
    return this.#domains.get(id)?.mappings.all() ?? null;
  }

  /**
   * The core domain behind a virtio domain (null for bypass or unknown ones).
   *
   * @param id Virtio domain ID.
   * @returns The core domain or null.
   */
  coreDomain(id: number): Domain | null {
    return this.#domains.get(id)?.domain ?? null;
  }

  /** Number of domains alive. */
  get domainCount(): number {
    return this.#domains.size;
  }

  /** Requests by status name, plus `eventsDropped`. */
  counters(): VirtioIommuCounters {
    return { ...this.#counts, eventsDropped: this.#eventsDropped };
  }

  /** Stop listening for faults (the device is being removed). */
  close(): void {
    this.#unlisten();
  }
}

// Free a core domain; false when the unit could not (it stays alive).
function freeDomain(d: Domain): boolean {
  try {
    d.free();
  } catch {
    // EIO (stalled queue) or EBUSY (attached elsewhere): retried later.
  }
  return d.freed;
}

// The 4 KiB pages holding a reserved region, as a [start, end) run.
function pagesOf(r: VirtioResvRegion): [bigint, bigint] {
  const start = BigInt(r.start), end = BigInt(r.end) + 1n;
  return [start - start % GRANULE, end + (GRANULE - end % GRANULE) % GRANULE];
}

// The merged pages of the MSI regions, each checked to lie below `limit`
// (the smaller of the unit's input and output sizes) and to hold no byte of
// a region of another subtype.
function msiPages(
  resv: readonly VirtioResvRegion[],
  limit: bigint,
): [bigint, bigint][] {
  const what = "virtio-iommu option reservedRegions";
  const pages: [bigint, bigint][] = [];
  for (const r of resv) {
    if (r.subtype !== VIRTIO_IOMMU_RESV_MEM_T_MSI) continue;
    const [s, e] = pagesOf(r);
    if (e > limit) {
      throw new IommuError(
        "EINVAL",
        `${what}: MSI region ${hex(r.start)}-${hex(r.end)} is beyond the ` +
          `unit's input or output size (its pages pass through untranslated)`,
      );
    }
    for (const o of resv) {
      if (
        o.subtype !== VIRTIO_IOMMU_RESV_MEM_T_MSI && BigInt(o.start) < e &&
        BigInt(o.end) >= s
      ) {
        throw new IommuError(
          "EINVAL",
          `${what}: the pages of MSI region ${hex(r.start)}-${hex(r.end)} ` +
            `hold reserved region ${hex(o.start)}-${hex(o.end)}`,
        );
      }
    }
    pages.push([s, e]);
  }
  pages.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const p of pages) {
    const last = merged[merged.length - 1];
    if (last !== undefined && p[0] <= last[1]) {
      if (p[1] > last[1]) last[1] = p[1];
    } else merged.push([p[0], p[1]]);
  }
  return merged;
}

// A limit: a non-negative safe integer, or Infinity for none.
function checkLimit(value: unknown, name: string): void {
  if (value === undefined || value === Infinity) return;
  checkAddress(value as number, `virtio-iommu option ${name}`);
}

// An integer that fits an unsigned wire field of `bits` bits.
function checkUint(value: unknown, bits: number, what: string): void {
  checkAddress(value as number, what);
  if ((value as number) >= 2 ** bits) {
    throw new IommuError(
      "EINVAL",
      `${what} must fit ${bits} bits, got ${hex(value as number)}`,
    );
  }
}

// Every option that ends up in a wire field or a limit, before any is used.
function checkOptions(o: VirtioIommuOptions): void {
  checkObject(o, "virtio-iommu options");
  const opt = "virtio-iommu option";
  if (o.features !== undefined) checkUint(o.features, 32, `${opt} features`);
  if (o.bypass !== undefined && typeof o.bypass !== "boolean") {
    throw new IommuError(
      "EINVAL",
      `${opt} bypass must be a boolean, got ${String(o.bypass)}`,
    );
  }
  if (o.probeSize !== undefined) {
    checkUint(o.probeSize, 32, `${opt} probeSize`);
  }
  if (o.endpoints !== undefined) checkList(o.endpoints, `${opt} endpoints`);
  const range = o.domainRange;
  if (range !== undefined) {
    checkList(range, `${opt} domainRange`);
    if (range.length !== 2) {
      throw new IommuError(
        "EINVAL",
        `${opt} domainRange must be [first, last], got ${range.length} values`,
      );
    }
    checkUint(range[0], 32, `${opt} domainRange[0]`);
    checkUint(range[1], 32, `${opt} domainRange[1]`);
    if (range[0] > range[1]) {
      throw new IommuError(
        "EINVAL",
        `${opt} domainRange [${range[0]}, ${range[1]}] is empty`,
      );
    }
  }
  if (o.reservedRegions !== undefined) {
    checkList(o.reservedRegions, `${opt} reservedRegions`);
    for (let i = 0; i < o.reservedRegions.length; i++) {
      const r = o.reservedRegions[i];
      const what = `${opt} reservedRegions[${i}]`;
      checkObject(r, what);
      checkAddress(r.start, `${what}.start`);
      checkAddress(r.end, `${what}.end`);
      checkUint(r.subtype, 8, `${what}.subtype`);
      if (r.start > r.end) {
        throw new IommuError(
          "EINVAL",
          `${what} starts at ${hex(r.start)}, after its end ${hex(r.end)}`,
        );
      }
    }
  }
  checkLimit(o.maxDomains, "maxDomains");
  checkLimit(o.maxMappingsPerDomain, "maxMappingsPerDomain");
  checkLimit(o.maxEndpointsPerDomain, "maxEndpointsPerDomain");
  checkLimit(o.eventQueueSize, "eventQueueSize");
}

function statusName(s: number): string {
  return VIRTIO_IOMMU_STATUS_NAMES[s] ?? `S${s}`;
}

/**
 * Create a virtio-iommu front end for a generic-iommu unit.
 *
 * @param soc The system.
 * @param unit A unit probed by `genericIommu()`.
 * @param options Device options.
 * @returns The device.
 * @throws {IommuError} `EINVAL` for another plugin's unit or bad options
 * (see the {@linkcode VirtioIommu} constructor).
 *
 * @example
 * ```ts
 * import { createSoc } from "../../../core/mod.ts";
 * import { genericIommu } from "../plugin.ts";
 * import { createVirtioIommu } from "./device.ts";
 * import { encodeAttach, tailStatus } from "./wire.ts";
 * const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
 * const unit = soc.probeUnit({ name: "viommu", compatible: ["virtio,pci-iommu"] });
 * const dev = createVirtioIommu(soc, unit);
 * if (tailStatus(dev.handleRequest(encodeAttach(1, 8))) !== 0) throw new Error();
 * ```
 */
export function createVirtioIommu(
  soc: Soc,
  unit: IommuUnit,
  options: VirtioIommuOptions = {},
): VirtioIommu {
  return new VirtioIommu(soc, unit, options);
}
