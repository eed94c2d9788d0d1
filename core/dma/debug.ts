/**
 * DMA-API debugging: the checks of the kernel's dma-debug, as structured
 * reports that either throw or are recorded, each naming where the
 * mapping was made. Improvements over the kernel: every cache line of a
 * mapping is overlap-checked (not only the first), every error is
 * reported (no rate limit), an unchecked mapping error is flagged at the
 * mapping's first use (sync or unmap; in record mode once per mapping, in
 * throw mode at every use, each refused), and leaks are listed one by one.
 *
 * @module
 */
import {
  checkList,
  checkObject,
  describeValue,
  hex,
  IommuError,
  type IommuErrorKind,
} from "../mod.ts";
import type { DmaBuffer } from "./dma_buffer.ts";
import {
  directionName,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDirection,
} from "./direction.ts";
import { touchesDeviceOwned } from "./ownership.ts";

/** How a mapping was made (and must be undone). */
export type DmaMappingType = "single" | "sg" | "coherent";

/**
 * What a report is about:
 * - `unmap-invalid-address`: the mapping-error value was unmapped.
 * - `unmap-not-mapped`: unmap or free of an address never mapped or already unmapped.
 * - `unmap-wrong-size`: unmapped with another size than mapped.
 * - `unmap-wrong-function`: for example mapped single, unmapped sg.
 * - `unmap-wrong-cpu-address`: a coherent buffer freed with another CPU buffer.
 * - `unmap-wrong-nents`: an sg list unmapped with another entry count.
 * - `unmap-wrong-direction`: unmapped with another direction than mapped.
 * - `map-error-unchecked`: a single mapping used or unmapped without `mappingError()` having been called.
 * - `sync-not-mapped`: sync of memory no mapping contains.
 * - `sync-out-of-range`: sync that runs past the end of its mapping.
 * - `sync-wrong-direction`: sync with another direction than mapped.
 * - `sync-read-only-for-cpu`: sync for CPU of memory the device only reads.
 * - `sync-write-only-to-device`: sync for device of memory the device only writes.
 * - `sync-wrong-nents`: an sg sync with another entry count.
 * - `sg-segment-too-long`: an sg segment longer than the master's max segment size.
 * - `sg-segment-boundary`: a mapped DMA segment crossing the master's segment boundary.
 * - `cacheline-overlap`: a device-writable mapping shares cache lines with another one.
 * - `leak`: a mapping still live when its master is removed.
 * - `cpu-access-device-owned`: the CPU read memory the device may write, or
 *   wrote memory the device may read, while the device owned it (between a
 *   map or sync for device and the next sync for CPU or unmap); opt-in.
 */
export type DmaDebugKind =
  | "unmap-invalid-address"
  | "unmap-not-mapped"
  | "unmap-wrong-size"
  | "unmap-wrong-function"
  | "unmap-wrong-cpu-address"
  | "unmap-wrong-nents"
  | "unmap-wrong-direction"
  | "map-error-unchecked"
  | "sync-not-mapped"
  | "sync-out-of-range"
  | "sync-wrong-direction"
  | "sync-read-only-for-cpu"
  | "sync-write-only-to-device"
  | "sync-wrong-nents"
  | "sg-segment-too-long"
  | "sg-segment-boundary"
  | "cacheline-overlap"
  | "leak"
  | "cpu-access-device-owned";

/** The error kind each report throws as in `"throw"` mode. */
export const DMA_DEBUG_ERROR_KINDS: Readonly<
  Record<DmaDebugKind, IommuErrorKind>
> = {
  "unmap-invalid-address": "EINVAL",
  "unmap-not-mapped": "ENOENT",
  "unmap-wrong-size": "EINVAL",
  "unmap-wrong-function": "EINVAL",
  "unmap-wrong-cpu-address": "EINVAL",
  "unmap-wrong-nents": "EINVAL",
  "unmap-wrong-direction": "EINVAL",
  "map-error-unchecked": "EPERM",
  "sync-not-mapped": "ENOENT",
  "sync-out-of-range": "ERANGE",
  "sync-wrong-direction": "EINVAL",
  "sync-read-only-for-cpu": "EPERM",
  "sync-write-only-to-device": "EPERM",
  "sync-wrong-nents": "EINVAL",
  "sg-segment-too-long": "EINVAL",
  "sg-segment-boundary": "EINVAL",
  "cacheline-overlap": "EEXIST",
  "leak": "EBUSY",
  "cpu-access-device-owned": "EBUSY",
};

/** One finding of the checker. */
export interface DmaDebugReport {
  /** What is wrong. */
  kind: DmaDebugKind;
  /** A sentence naming the values involved. */
  message: string;
  /** The master whose mapper found it. */
  master: string;
  /** DMA address involved, in bytes. */
  dmaAddr: number;
  /** Size involved, in bytes. */
  size: number;
  /** Stack captured where the mapping concerned was made, when known. */
  mappedAt?: string;
}

/** Whether a report throws or is only recorded. */
export type DmaDebugMode = "throw" | "record";

/** Options of the checker of one mapper. */
export interface DmaDebugOptions {
  /**
   * `"throw"` (default): the offending call throws {@linkcode IommuError}
   * with the report as `detail`, before changing anything; `"record"`: the
   * report is kept and the call goes on, unless it cannot: a sync that
   * starts in no mapping does nothing, and one that runs from a mapping
   * into unmapped memory throws `ENOENT` after the report (nothing synced).
   */
  mode?: DmaDebugMode;
  /** Kinds not to check (each a {@linkcode DmaDebugKind}, else `EINVAL`). */
  ignore?: readonly DmaDebugKind[];
  /** Capture a stack at every map (default true). */
  stacks?: boolean;
  /**
   * Track who owns each byte of every streaming mapping (CPU or device) and
   * report CPU accesses to device-owned memory (default false). A sync of
   * part of a mapping moves only the bytes it names: after
   * `syncForCpu(addr, 64)` of a 4 KiB mapping, the CPU may touch those 64
   * bytes, and touching the rest is still reported.
   */
  ownership?: boolean;
}

/** Map-error check state of a mapping: not applicable, not checked, checked. */
export const MAP_ERR_NA = 0;
/** The mapping's address has not been passed to `mappingError()` yet. */
export const MAP_ERR_NOT_CHECKED = 1;
/** The mapping's address was passed to `mappingError()`. */
export const MAP_ERR_CHECKED = 2;

/** What the checker knows about one live mapping. */
export interface DmaMappingRecord {
  /** How it was made. */
  readonly type: DmaMappingType;
  /** DMA address handed out (first segment for sg), in bytes. */
  readonly dmaAddr: number;
  /** Bytes mapped as requested (sum of the segments for sg). */
  readonly size: number;
  /** Its direction (bidirectional for coherent memory). */
  readonly direction: DmaDirection;
  /** Entries passed to map (sg), otherwise 1. */
  readonly nents: number;
  /** The CPU buffer (single, coherent), or null. */
  readonly cpu: DmaBuffer | null;
  /** {@linkcode MAP_ERR_NA}, {@linkcode MAP_ERR_NOT_CHECKED} or {@linkcode MAP_ERR_CHECKED}. */
  mapErr: number;
  /** Stack where it was made ("" when not captured). */
  readonly mappedAt: string;
  /** Physical cache-line ranges [first, last] pairs it makes device-writable (overlap tracking), or null. */
  lines: Float64Array | null;
  /**
   * Mapped with `skipCpuSync`: its own map is not checked for shared cache
   * lines, but its lines are tracked, so a later mapping without the
   * attribute that shares them is reported (as the kernel's dma-debug
   * does). Absent means false.
   */
  readonly skipOverlapCheck?: boolean;
}

/** An unmap or free request, as the checker sees it. */
export interface DmaUnmapRequest {
  /** How the caller undoes it. */
  type: DmaMappingType;
  /** DMA address passed. */
  dmaAddr: number;
  /** Size passed. */
  size: number;
  /** Direction passed. */
  direction: DmaDirection;
  /** Entry count passed (sg). */
  nents: number;
  /** CPU buffer passed (coherent free). */
  cpu: DmaBuffer | null;
}

/** A sync request, as the checker sees it. */
export interface DmaSyncRequest {
  /** For CPU (true) or for device (false). */
  forCpu: boolean;
  /** First DMA address. */
  dmaAddr: number;
  /** Bytes. */
  size: number;
  /** Direction passed. */
  direction: DmaDirection;
  /** Entry count passed, or -1 for a single sync. */
  nents: number;
}

/** Cache-line overlap tracking shared by every mapper of one system (key: any object standing for the system). */
const activeLines = new WeakMap<object, Set<DmaMappingRecord>>();

/**
 * The DMA-API checker of one master's mapper. The mapper owns the table of
 * live mappings; this class judges requests against it and reports.
 */
export class DmaDebug {
  /** Master name reports carry. */
  readonly master: string;
  /** Throw or record. */
  readonly mode: DmaDebugMode;
  /** Whether stacks are captured at map time. */
  readonly stacks: boolean;
  /** Whether CPU accesses are checked against mapping ownership. */
  readonly ownership: boolean;
  #ignore: Set<DmaDebugKind>;
  #reports: DmaDebugReport[] = [];
  #active: Set<DmaMappingRecord>;

  /**
   * Create the checker of one master's mapper.
   *
   * @param master Master name for reports.
   * @param system Object standing for the system (cache-line overlaps are
   * checked across all mappers that share it).
   * @param options Mode, ignored kinds, stacks, ownership.
   * @throws {IommuError} `EINVAL` when `options` is not an object, for an
   * unknown mode, an `ignore` that is not an array or names anything but a
   * {@linkcode DmaDebugKind}, or `stacks` / `ownership` given but not a
   * boolean (nothing is set up).
   */
  constructor(master: string, system: object, options: DmaDebugOptions = {}) {
    checkObject(options, "DMA debug options");
    const mode = options.mode ?? "throw";
    if (mode !== "throw" && mode !== "record") {
      throw new IommuError("EINVAL", `unknown DMA debug mode ${String(mode)}`);
    }
    const ignore = options.ignore ?? [];
    checkList(ignore, "DMA debug ignore list");
    for (let i = 0; i < ignore.length; i++) {
      const kind: unknown = ignore[i];
      if (
        typeof kind !== "string" || !Object.hasOwn(DMA_DEBUG_ERROR_KINDS, kind)
      ) {
        throw new IommuError(
          "EINVAL",
          `DMA debug ignore list entry ${i} is not a report kind: ${
            describeValue(kind)
          }`,
        );
      }
    }
    for (const key of ["stacks", "ownership"] as const) {
      const v: unknown = options[key];
      if (v !== undefined && typeof v !== "boolean") {
        throw new IommuError(
          "EINVAL",
          `DMA debug option ${key} must be a boolean, got ${describeValue(v)}`,
        );
      }
    }
    this.master = master;
    this.mode = mode;
    this.stacks = options.stacks ?? true;
    this.ownership = options.ownership ?? false;
    this.#ignore = new Set(Array.from(ignore));
    let set = activeLines.get(system);
    if (set === undefined) {
      set = new Set();
      activeLines.set(system, set);
    }
    this.#active = set;
  }

  /** Stack text of the caller, or "" when stacks are off. @returns The stack. */
  captureStack(): string {
    if (!this.stacks) return "";
    const s = new Error().stack ?? "";
    // Drop the Error line and the frames inside the adapter itself.
    return s.split("\n").slice(1).filter((l) => !l.includes("/core/dma/"))
      .map((l) => l.trim()).slice(0, 5).join("\n");
  }

  #make(
    kind: DmaDebugKind,
    message: string,
    dmaAddr: number,
    size: number,
    rec: DmaMappingRecord | null,
  ): DmaDebugReport | null {
    if (this.#ignore.has(kind)) return null;
    const r: DmaDebugReport = {
      kind,
      message: `DMA-API ${this.master}: ${message}`,
      master: this.master,
      dmaAddr,
      size,
    };
    if (rec !== null && rec.mappedAt !== "") r.mappedAt = rec.mappedAt;
    return r;
  }

  #push(
    out: DmaDebugReport[],
    kind: DmaDebugKind,
    message: string,
    dmaAddr: number,
    size: number,
    rec: DmaMappingRecord | null,
  ): void {
    const r = this.#make(kind, message, dmaAddr, size, rec);
    if (r !== null) out.push(r);
  }

  /**
   * Checks at map time: segment lengths and boundaries (sg), cache-line
   * overlaps with other device-writable mappings (every line) and, for an
   * sg list, between the list's own entries (every line; the kernel checks
   * each entry's first line).
   *
   * @param rec The new mapping (its `lines` set when it is device-writable;
   * for sg, one [first, last] pair per entry in list order), its `dmaAddr`
   * set to the DMA address it gets (reports carry it).
   * @param segments For sg: the input entries, the DMA segments and the
   * master's limits; null otherwise.
   * @returns The reports (not yet emitted).
   */
  checkMap(
    rec: DmaMappingRecord,
    segments: {
      inputs: readonly { readonly length: number }[];
      dmaAddress: ArrayLike<number>;
      dmaLength: ArrayLike<number>;
      count: number;
      maxSegmentSize: number;
      segmentBoundary: number;
    } | null,
  ): DmaDebugReport[] {
    const out: DmaDebugReport[] = [];
    if (segments !== null) {
      for (let i = 0; i < segments.inputs.length; i++) {
        const len = segments.inputs[i]!.length;
        if (len > segments.maxSegmentSize) {
          this.#push(
            out,
            "sg-segment-too-long",
            `mapping sg segment ${i} longer than the device supports [len=${
              hex(len)
            }] [max=${hex(segments.maxSegmentSize)}]`,
            rec.dmaAddr,
            len,
            rec,
          );
        }
      }
      const b = segments.segmentBoundary;
      for (let i = 0; i < segments.count; i++) {
        const start = segments.dmaAddress[i]!;
        const end = start + segments.dmaLength[i]! - 1;
        if (Math.floor(start / b) !== Math.floor(end / b)) {
          this.#push(
            out,
            "sg-segment-boundary",
            `mapping sg segment across boundary [start=${hex(start)}] [end=${
              hex(end)
            }] [boundary=${hex(b)}]`,
            start,
            end - start + 1,
            rec,
          );
        }
      }
    }
    const lines = rec.skipOverlapCheck === true ? null : rec.lines;
    if (lines !== null && rec.type === "sg") {
      this.#checkOwnLines(out, rec, lines);
    }
    if (lines !== null) {
      for (const other of this.#active) {
        const o = other.lines!;
        let count = 0;
        let first = -1;
        let last = -1;
        for (let i = 0; i < lines.length; i += 2) {
          for (let j = 0; j < o.length; j += 2) {
            const lo = Math.max(lines[i]!, o[j]!);
            const hi = Math.min(lines[i + 1]!, o[j + 1]!);
            if (lo > hi) continue;
            count += hi - lo + 1;
            if (first < 0 || lo < first) first = lo;
            if (hi > last) last = hi;
          }
        }
        if (count > 0) {
          this.#push(
            out,
            "cacheline-overlap",
            `cacheline tracking EEXIST: ${count} cache line(s) from ${
              hex(first * 64)
            } to ${hex(last * 64 + 63)} overlap the ${
              directionName(other.direction)
            } mapping at ${hex(other.dmaAddr)}`,
            rec.dmaAddr,
            rec.size,
            other,
          );
        }
      }
    }
    return out;
  }

  /**
   * Report entries of one sg list that share cache lines with each other
   * (the list's own pairs, one per entry, in list order). The pairs are
   * swept in order of their first line (sorted only when the list is not
   * already in that order): every pair before the current one starts at or
   * before it, so the one reaching furthest covers every line of the
   * current pair that an earlier one covers. One report per entry that
   * shares lines with an entry before it in that order.
   */
  #checkOwnLines(
    out: DmaDebugReport[],
    rec: DmaMappingRecord,
    lines: Float64Array,
  ): void {
    if (this.#ignore.has("cacheline-overlap")) return;
    const n = lines.length / 2;
    if (n < 2) return;
    let order: Uint32Array | null = null;
    for (let i = 1; i < n; i++) {
      if (lines[2 * i]! < lines[2 * i - 2]!) {
        order = new Uint32Array(n);
        for (let k = 0; k < n; k++) order[k] = k;
        order.sort((a, b) => lines[2 * a]! - lines[2 * b]! || a - b);
        break;
      }
    }
    let reach = -1; // furthest last line of the pairs swept so far
    let reachEntry = -1; // the entry it belongs to
    for (let k = 0; k < n; k++) {
      const i = order === null ? k : order[k]!;
      const first = lines[2 * i]!;
      const last = lines[2 * i + 1]!;
      if (first <= reach) {
        const hi = Math.min(last, reach);
        this.#push(
          out,
          "cacheline-overlap",
          `cacheline tracking EEXIST: sg entries ${
            Math.min(i, reachEntry)
          } and ${Math.max(i, reachEntry)} of one ${
            directionName(rec.direction)
          } list share ${hi - first + 1} cache line(s) from ${
            hex(first * 64)
          } to ${hex(hi * 64 + 63)}`,
          rec.dmaAddr,
          rec.size,
          rec,
        );
      }
      if (last > reach) {
        reach = last;
        reachEntry = i;
      }
    }
  }

  /**
   * Start tracking a device-writable mapping's cache lines.
   *
   * @param rec A mapping with `lines` set.
   */
  track(rec: DmaMappingRecord): void {
    if (rec.lines !== null) this.#active.add(rec);
  }

  /**
   * Stop tracking a mapping's cache lines.
   *
   * @param rec The mapping.
   */
  untrack(rec: DmaMappingRecord): void {
    this.#active.delete(rec);
  }

  /**
   * Checks at unmap or free time.
   *
   * @param req What the caller passed.
   * @param rec The live mapping at `req.dmaAddr`, or undefined.
   * @param isError Whether `req.dmaAddr` is the mapping-error value.
   * @returns The reports (not yet emitted).
   */
  checkUnmap(
    req: DmaUnmapRequest,
    rec: DmaMappingRecord | undefined,
    isError: boolean,
  ): DmaDebugReport[] {
    const out: DmaDebugReport[] = [];
    const what = `[device address=${hex(req.dmaAddr)}] [size=${hex(req.size)}]`;
    if (rec === undefined) {
      if (isError) {
        this.#push(
          out,
          "unmap-invalid-address",
          `device driver tries to free an invalid DMA memory address ${what}`,
          req.dmaAddr,
          req.size,
          null,
        );
      } else {
        this.#push(
          out,
          "unmap-not-mapped",
          `device driver tries to free DMA memory it has not allocated ${what}`,
          req.dmaAddr,
          req.size,
          null,
        );
      }
      return out;
    }
    if (req.size !== rec.size) {
      this.#push(
        out,
        "unmap-wrong-size",
        `device driver frees DMA memory with different size [device address=${
          hex(req.dmaAddr)
        }] [map size=${hex(rec.size)}] [unmap size=${hex(req.size)}]`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    if (req.type !== rec.type) {
      this.#push(
        out,
        "unmap-wrong-function",
        `device driver frees DMA memory with wrong function [device address=${
          hex(req.dmaAddr)
        }] [mapped as ${rec.type}] [unmapped as ${req.type}]`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    if (
      req.type === "coherent" && rec.type === "coherent" && req.cpu !== rec.cpu
    ) {
      this.#push(
        out,
        "unmap-wrong-cpu-address",
        `device driver frees DMA memory with different CPU address [device address=${
          hex(req.dmaAddr)
        }] [cpu alloc address=${hex(rec.cpu?.pa ?? -1)}] [cpu free address=${
          hex(req.cpu?.pa ?? -1)
        }]`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    if (req.type === "sg" && rec.type === "sg" && req.nents !== rec.nents) {
      this.#push(
        out,
        "unmap-wrong-nents",
        `device driver frees DMA sg list with different entry count [map count=${rec.nents}] [unmap count=${req.nents}]`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    if (req.direction !== rec.direction) {
      this.#push(
        out,
        "unmap-wrong-direction",
        `device driver frees DMA memory with different direction [device address=${
          hex(req.dmaAddr)
        }] [mapped with ${directionName(rec.direction)}] [unmapped with ${
          directionName(req.direction)
        }]`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    this.#checkMapErr(out, rec);
    return out;
  }

  #checkMapErr(out: DmaDebugReport[], rec: DmaMappingRecord): void {
    if (rec.mapErr !== MAP_ERR_NOT_CHECKED) return;
    // Record mode: reported once per mapping, at its first use (the kernel
    // reports it once, at unmap), not again at every later sync and the
    // unmap. Throw mode refuses the call and changes nothing, so every use
    // stays refused until the driver checks.
    if (this.mode === "record") rec.mapErr = MAP_ERR_CHECKED;
    this.#push(
      out,
      "map-error-unchecked",
      `device driver failed to check map error [device address=${
        hex(rec.dmaAddr)
      }] [size=${hex(rec.size)}]`,
      rec.dmaAddr,
      rec.size,
      rec,
    );
  }

  /**
   * Checks at sync time.
   *
   * @param req What the caller passed.
   * @param rec The live mapping containing `req.dmaAddr`, or undefined.
   * @param reach End (exclusive), in bytes, of the part of `rec` a single
   * sync from `req.dmaAddr` may cover when the caller knows it: for an sg
   * mapping, the end of the DMA segments back to back from the one holding
   * `req.dmaAddr` (-1 when `req.dmaAddr` lies between segments). Default
   * `rec.dmaAddr + rec.size`, the end of a single or coherent mapping and
   * what a whole-list sg sync covers.
   * @returns The reports (not yet emitted).
   */
  checkSync(
    req: DmaSyncRequest,
    rec: DmaMappingRecord | undefined,
    reach?: number,
  ): DmaDebugReport[] {
    const out: DmaDebugReport[] = [];
    if (rec === undefined) {
      this.#push(
        out,
        "sync-not-mapped",
        `device driver tries to sync DMA memory it has not allocated [device address=${
          hex(req.dmaAddr)
        }] [size=${hex(req.size)}]`,
        req.dmaAddr,
        req.size,
        null,
      );
      return out;
    }
    const limit = reach ?? rec.dmaAddr + rec.size;
    if (req.dmaAddr + req.size > limit) {
      this.#push(
        out,
        "sync-out-of-range",
        `device driver syncs DMA memory outside allocated range [device address=${
          hex(rec.dmaAddr)
        }] [allocation size=${hex(rec.size)}] ${
          reach === undefined
            ? `[sync offset+size=${hex(req.dmaAddr - rec.dmaAddr + req.size)}]`
            : `[sync=${hex(req.dmaAddr)}+${hex(req.size)}] [${
              reach < 0 ? "between segments" : `segments end at ${hex(reach)}`
            }]`
        }`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    if (rec.direction !== DMA_BIDIRECTIONAL) {
      if (req.direction !== rec.direction) {
        this.#push(
          out,
          "sync-wrong-direction",
          `device driver syncs DMA memory with different direction [device address=${
            hex(req.dmaAddr)
          }] [mapped with ${directionName(rec.direction)}] [synced with ${
            directionName(req.direction)
          }]`,
          req.dmaAddr,
          req.size,
          rec,
        );
      }
      if (
        req.forCpu && rec.direction !== DMA_FROM_DEVICE &&
        req.direction !== DMA_TO_DEVICE
      ) {
        this.#push(
          out,
          "sync-read-only-for-cpu",
          `device driver syncs device read-only DMA memory for cpu [device address=${
            hex(req.dmaAddr)
          }] [mapped with ${directionName(rec.direction)}]`,
          req.dmaAddr,
          req.size,
          rec,
        );
      }
      if (
        !req.forCpu && rec.direction !== DMA_TO_DEVICE &&
        req.direction !== DMA_FROM_DEVICE
      ) {
        this.#push(
          out,
          "sync-write-only-to-device",
          `device driver syncs device write-only DMA memory to device [device address=${
            hex(req.dmaAddr)
          }] [mapped with ${directionName(rec.direction)}]`,
          req.dmaAddr,
          req.size,
          rec,
        );
      }
    }
    if (req.nents >= 0 && req.nents !== rec.nents) {
      this.#push(
        out,
        "sync-wrong-nents",
        `device driver syncs DMA sg list with different entry count [map count=${rec.nents}] [sync count=${req.nents}]`,
        req.dmaAddr,
        req.size,
        rec,
      );
    }
    this.#checkMapErr(out, rec);
    return out;
  }

  /**
   * Reports for mappings still live when the master goes away.
   *
   * @param live The live mappings.
   * @returns One report per mapping (not yet emitted).
   */
  checkLeaks(live: Iterable<DmaMappingRecord>): DmaDebugReport[] {
    const out: DmaDebugReport[] = [];
    for (const rec of live) {
      this.#push(
        out,
        "leak",
        `device driver has pending DMA allocations while released from device [device address=${
          hex(rec.dmaAddr)
        }] [size=${hex(rec.size)}] [mapped with ${
          directionName(rec.direction)
        }] [mapped as ${rec.type}]`,
        rec.dmaAddr,
        rec.size,
        rec,
      );
    }
    return out;
  }

  /**
   * Check a CPU access against the device-owned mappings.
   *
   * @param pa First byte accessed.
   * @param size Bytes.
   * @param write Whether the CPU writes.
   * @param live The mappings the device owns at least part of, with their
   * physical byte ranges ([start, end) pairs, in the order of the
   * mapping's bytes) and, optionally, the parts the CPU owns (sorted,
   * disjoint [start, end) byte offsets into those ranges; none when
   * absent). A report is made when the access touches a byte the device
   * owns.
   * @returns The reports (not yet emitted).
   */
  checkCpuAccess(
    pa: number,
    size: number,
    write: boolean,
    live: Iterable<{
      rec: DmaMappingRecord;
      ranges: Float64Array;
      cpuParts?: readonly number[];
    }>,
  ): DmaDebugReport[] {
    const out: DmaDebugReport[] = [];
    const end = pa + size;
    for (const { rec, ranges, cpuParts } of live) {
      if (!write && rec.direction === DMA_TO_DEVICE) continue;
      if (touchesDeviceOwned(ranges, cpuParts ?? [], pa, end)) {
        this.#push(
          out,
          "cpu-access-device-owned",
          `CPU ${write ? "write to" : "read of"} ${hex(pa)}+${
            hex(size)
          } while the device owns ${
            cpuParts === undefined || cpuParts.length === 0
              ? "the"
              : "part of the"
          } ${directionName(rec.direction)} mapping at ${
            hex(rec.dmaAddr)
          } (sync for CPU first)`,
          rec.dmaAddr,
          rec.size,
          rec,
        );
      }
    }
    return out;
  }

  /**
   * Keep the reports, and in `"throw"` mode throw the first as an
   * {@linkcode IommuError} (its `detail` is the report).
   *
   * @param reports What a check found.
   * @throws {IommuError} of the report's kind (see
   * {@linkcode DMA_DEBUG_ERROR_KINDS}) in `"throw"` mode when `reports` is
   * not empty.
   */
  emit(reports: readonly DmaDebugReport[]): void {
    if (reports.length === 0) return;
    for (const r of reports) this.#reports.push(r);
    if (this.mode === "throw") {
      const r = reports[0]!;
      throw new IommuError(DMA_DEBUG_ERROR_KINDS[r.kind], r.message, {
        detail: r,
      });
    }
  }

  /** Every report so far, oldest first (copies). @returns The reports. */
  reports(): DmaDebugReport[] {
    return this.#reports.map((r) => ({ ...r }));
  }

  /** Forget the reports so far. */
  clear(): void {
    this.#reports.length = 0;
  }
}

/**
 * Whether the direction lets the device write (so CPU-side cache lines can
 * go stale and overlaps matter).
 *
 * @param direction A direction.
 * @returns True for from-device and bidirectional.
 */
export function deviceWrites(direction: DmaDirection): boolean {
  return direction !== DMA_TO_DEVICE;
}
