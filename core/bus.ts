/**
 * Masters, their ports, and the interconnect that routes each port's DMA
 * through its IOMMU unit (or straight to memory) into simulated RAM.
 *
 * @module
 */
import {
  checkAddress,
  checkList,
  checkObject,
  checkSize,
  describeValue,
  hex,
} from "./address.ts";
import { IommuError } from "./errors.ts";
import type { IommuFault } from "./fault.ts";
import type { FaultRouter } from "./fault_router.ts";
import {
  ACCESS_READ,
  ACCESS_WRITE,
  type IommuHardware,
  type IommuUnit,
} from "./iommu.ts";
import type { PhysicalMemory } from "./memory.ts";
import { ramAccess } from "./memory_access.ts";

/** How a port is wired. */
export interface PortSpec {
  /** Port name (for example `"left"`); default `"port<index>"`. */
  name?: string;
  /**
   * The unit in front of the port, or null/absent for direct access to RAM.
   * A per-device unit serves one master only: several ports of that master
   * may name it (as the Linux binding lists a System MMU twice and keeps
   * one), another master may not. A central unit serves any number.
   */
  unit?: IommuUnit | null;
  /** Stream IDs on a central unit (the first tags this port's traffic). */
  streamIds?: readonly number[];
}

/** How a master is described. */
export interface MasterSpec {
  /** Unique master name. */
  name: string;
  /** Its ports (at least one). */
  ports: readonly PortSpec[];
  /** Width of addresses the master can drive, in bits (DMA mask); default 64. */
  dmaBits?: number;
  /** True when the master snoops CPU caches (needs no syncs); default false. */
  coherent?: boolean;
}

/** Per-port traffic counters. */
export interface PortCounters {
  /** Accesses that completed. */
  accesses: number;
  /** Bytes read by the device. */
  bytesRead: number;
  /** Bytes written by the device. */
  bytesWritten: number;
  /** Accesses that faulted (nothing transferred). */
  faults: number;
}

/**
 * Watches a port's DMA (for example the DMA adapter measuring accesses to
 * unmapped IOVAs): called after every access with the fault, or null when
 * it completed.
 */
export type PortObserver = (
  port: Port,
  iova: number,
  length: number,
  access: number,
  fault: IommuFault | null,
) => void;

// Largest number of pages one access may touch; bounds the scratch arrays.
const MAX_PIECES = 4096;
const C_ACCESSES = 0;
const C_READ = 1;
const C_WRITTEN = 2;
const C_FAULTS = 3;

/**
 * One bus port of a master. Its DMA goes through its unit's `translate`
 * page by page; an access that faults anywhere transfers nothing.
 */
export class Port {
  /** The owning master. */
  readonly master: Master;
  /** Port name. */
  readonly name: string;
  /** The unit in front of this port, or null when wired straight to RAM. */
  readonly unit: IommuUnit | null;
  /** Stream IDs (central units); the first one tags this port's traffic. */
  readonly streamIds: readonly number[];
  #memory: PhysicalMemory;
  #ramBase: number;
  #ramEnd: number;
  #hw: IommuHardware | null;
  #router: FaultRouter;
  #sid: number;
  #dmaLimit: number; // 2^dmaBits: the first address the master cannot drive
  #pa = new Float64Array(MAX_PIECES);
  #len = new Float64Array(MAX_PIECES);
  // The fault of the last access #resolve refused (so it returns a number).
  #fault: IommuFault | null = null;
  // Counters as C_* slots of a typed array: no boxed doubles to update.
  #c = new Float64Array(4);
  #observer: PortObserver | null = null;

  /**
   * Create a port wired as `spec` says (masters make their ports).
   *
   * @param master Owner.
   * @param spec Wiring.
   * @param index Index among the master's ports (for the default name).
   * @param memory RAM.
   * @param router Fault router (bus errors are reported there).
   */
  constructor(
    master: Master,
    spec: PortSpec,
    index: number,
    memory: PhysicalMemory,
    router: FaultRouter,
  ) {
    this.master = master;
    this.name = spec.name ?? `port${index}`;
    this.unit = spec.unit ?? null;
    this.streamIds = Array.from(spec.streamIds ?? []);
    this.#sid = this.streamIds[0] ?? 0;
    this.#dmaLimit = master.dmaBits >= 53 ? Infinity : 2 ** master.dmaBits;
    this.#memory = memory;
    this.#ramBase = memory.base;
    this.#ramEnd = memory.end;
    this.#hw = this.unit?.hardware ?? null;
    this.#router = router;
  }

  /**
   * Install the port's one observer, or remove it with null. Costs nothing
   * while none is installed.
   *
   * @param observer Called after each access.
   * @throws {IommuError} `EBUSY` when another observer is installed.
   */
  observe(observer: PortObserver | null): void {
    if (observer !== null && this.#observer !== null) {
      throw new IommuError(
        "EBUSY",
        `port ${this.name} of master ${this.master.name} is already observed`,
      );
    }
    this.#observer = observer;
  }

  /** True when this port reaches RAM untranslated (no unit, or bypassing). */
  get unprotected(): boolean {
    return this.unit === null || this.unit.hardware.isBypassing(this.#sid);
  }

  // Throws the error of an access that failed write()/read()'s combined
  // check, in the order: buffer, address, length, DMA mask.
  #badAccess(iova: number, buffer: unknown): never {
    if (!(buffer instanceof Uint8Array)) {
      throw new IommuError(
        "EINVAL",
        `DMA buffer must be a Uint8Array, got ${
          ArrayBuffer.isView(buffer)
            ? `a ${buffer.constructor.name}`
            : describeValue(buffer)
        }`,
      );
    }
    const length = buffer.length;
    checkAddress(iova, "DMA address");
    checkSize(length, "DMA length");
    throw new IommuError(
      "ERANGE",
      `DMA ${hex(iova)}+${
        hex(length)
      } is beyond master ${this.master.name}'s ${this.master.dmaBits}-bit mask`,
    );
  }

  // Resolve [iova, iova+length) into physical pieces, given the first
  // translation (pa, span) already made by the caller; returns the piece
  // count, or -1 with the fault in #fault. Nothing is transferred here.
  #resolve(
    iova: number,
    length: number,
    access: number,
    pa: number,
    span: number,
  ): number {
    const hw = this.#hw;
    let pieces = 0;
    let done = 0;
    for (;;) {
      const at = iova + done;
      if (done > 0) {
        // Only a unit splits an access: without one the first piece is all.
        pa = hw!.translate(this.#sid, at, access);
        span = pa < 0 ? 0 : hw!.lastSpan;
      }
      if (pa < 0 && hw !== null) {
        this.#fault = hw.lastFault ??
          this.#busFault(at, access, "translation");
        return -1;
      }
      if (!(span >= 1)) {
        // A unit that reports a translation covering no byte would make
        // this loop spin for ever: a broken plugin, reported as such.
        throw new IommuError(
          "EIO",
          `unit ${this.unit!.name} translated ${
            hex(at)
          } but reported lastSpan ${
            String(span)
          } (a translation covers at least one byte)`,
        );
      }
      span = Math.min(span, length - done);
      if (!this.#memory.contains(pa, span)) {
        this.#fault = this.#busFault(at, access, "bus-error");
        return -1;
      }
      if (pieces > 0 && this.#pa[pieces - 1]! + this.#len[pieces - 1]! === pa) {
        this.#len[pieces - 1]! += span;
      } else {
        if (pieces === MAX_PIECES) {
          throw new IommuError(
            "EINVAL",
            `DMA ${hex(iova)}+${
              hex(length)
            } touches more than ${MAX_PIECES} discontiguous pages; split it`,
          );
        }
        this.#pa[pieces] = pa;
        this.#len[pieces] = span;
        pieces++;
      }
      done += span;
      if (done >= length) return pieces;
    }
  }

  #busFault(
    iova: number,
    access: number,
    reason: "bus-error" | "translation",
  ): IommuFault {
    const fault: IommuFault = {
      unit: this.unit?.name ?? "bus",
      streamId: this.#sid,
      iova,
      access: access === ACCESS_WRITE ? "write" : "read",
      reason,
    };
    this.#router.report(fault);
    return fault;
  }

  // The fault #resolve left, counted and shown to the observer.
  #faulted(iova: number, length: number, access: number): IommuFault {
    const fault = this.#fault!;
    this.#fault = null;
    this.#c[C_FAULTS]!++;
    this.#observer?.(this, iova, length, access, fault);
    return fault;
  }

  /**
   * Device write: `data` to `iova`. All pages are translated first; if any
   * faults, nothing is written.
   *
   * @param iova Bus address the device drives.
   * @param data Bytes to write (at least one).
   * @returns null on success, or the fault.
   * @throws {IommuError} `EINVAL` for data that is not a Uint8Array (another
   * typed array, a string, a plain array: nothing is written), a malformed
   * address or empty data; `ERANGE` beyond the master's DMA mask; `EIO`
   * when the unit breaks its contract by reporting a translation that
   * covers no byte (`lastSpan` below 1; nothing is written).
   */
  write(iova: number, data: Uint8Array): IommuFault | null {
    // `?.`: null/undefined data falls to the out-of-line EINVAL below.
    const length = data?.length;
    if (
      !(data instanceof Uint8Array && Number.isSafeInteger(iova) &&
        iova >= 0 && length > 0 && iova + length <= this.#dmaLimit)
    ) this.#badAccess(iova, data);
    const hw = this.#hw;
    let pa = iova;
    let span = length;
    if (hw !== null) {
      pa = hw.translate(this.#sid, iova, ACCESS_WRITE);
      span = pa < 0 ? 0 : hw.lastSpan;
    }
    if (
      span >= length && pa >= this.#ramBase && pa + length <= this.#ramEnd &&
      Number.isInteger(pa)
    ) {
      // The common case: one page, checked once here, copied unchecked.
      ramAccess.copyIn(this.#memory, pa, data, 0, length);
    } else {
      const r = this.#resolve(iova, length, ACCESS_WRITE, pa, span);
      if (r < 0) return this.#faulted(iova, length, ACCESS_WRITE);
      let off = 0;
      for (let i = 0; i < r; i++) {
        const n = this.#len[i]!;
        ramAccess.copyIn(this.#memory, this.#pa[i]!, data, off, n);
        off += n;
      }
    }
    this.#c[C_ACCESSES]!++;
    this.#c[C_WRITTEN]! += length;
    if (this.#observer !== null) {
      this.#observer(this, iova, length, ACCESS_WRITE, null);
    }
    return null;
  }

  /**
   * Device read: fill `into` from `iova`. On a fault `into` is untouched.
   *
   * @param iova Bus address.
   * @param into Destination (at least one byte).
   * @returns null on success, or the fault.
   * @throws {IommuError} as {@linkcode Port.write} (`into` must be a
   * Uint8Array; anything else is left untouched).
   */
  read(iova: number, into: Uint8Array): IommuFault | null {
    const length = into?.length;
    if (
      !(into instanceof Uint8Array && Number.isSafeInteger(iova) &&
        iova >= 0 && length > 0 && iova + length <= this.#dmaLimit)
    ) this.#badAccess(iova, into);
    const hw = this.#hw;
    let pa = iova;
    let span = length;
    if (hw !== null) {
      pa = hw.translate(this.#sid, iova, ACCESS_READ);
      span = pa < 0 ? 0 : hw.lastSpan;
    }
    if (
      span >= length && pa >= this.#ramBase && pa + length <= this.#ramEnd &&
      Number.isInteger(pa)
    ) {
      ramAccess.copyOut(this.#memory, pa, into, 0, length);
    } else {
      const r = this.#resolve(iova, length, ACCESS_READ, pa, span);
      if (r < 0) return this.#faulted(iova, length, ACCESS_READ);
      let off = 0;
      for (let i = 0; i < r; i++) {
        const n = this.#len[i]!;
        ramAccess.copyOut(this.#memory, this.#pa[i]!, into, off, n);
        off += n;
      }
    }
    this.#c[C_ACCESSES]!++;
    this.#c[C_READ]! += length;
    if (this.#observer !== null) {
      this.#observer(this, iova, length, ACCESS_READ, null);
    }
    return null;
  }

  /**
   * Device read into a new array, throwing on a fault.
   *
   * @param iova Bus address.
   * @param length Bytes.
   * @returns The bytes read.
   * @throws {IommuError} `EFAULT` (with the fault as `detail`) when the access
   * faulted; otherwise as {@linkcode Port.write}.
   */
  readBytes(iova: number, length: number): Uint8Array {
    // Before allocating: a bad length must be EINVAL, not a RangeError.
    checkSize(length, "DMA length");
    const out = new Uint8Array(length);
    const fault = this.read(iova, out);
    if (fault !== null) throw faultError(fault);
    return out;
  }

  /**
   * Device write, throwing on a fault.
   *
   * @param iova Bus address.
   * @param data Bytes.
   * @throws {IommuError} `EFAULT` (with the fault as `detail`) when it faulted.
   */
  writeBytes(iova: number, data: Uint8Array): void {
    const fault = this.write(iova, data);
    if (fault !== null) throw faultError(fault);
  }

  /** Traffic counters as a plain object. */
  counters(): PortCounters {
    const c = this.#c;
    return {
      accesses: c[C_ACCESSES]!,
      bytesRead: c[C_READ]!,
      bytesWritten: c[C_WRITTEN]!,
      faults: c[C_FAULTS]!,
    };
  }
}

function faultError(fault: IommuFault): IommuError {
  return new IommuError(
    "EFAULT",
    `DMA ${fault.access} at ${
      hex(fault.iova)
    } faulted in ${fault.unit}: ${fault.reason}`,
    { detail: fault },
  );
}

// The master each per-device unit serves (set once a master is built).
const perDeviceOwner = new WeakMap<IommuUnit, Master>();

/**
 * A device that does DMA through one or more ports.
 *
 * Wiring rule: a per-device unit (`caps.topology === "per-device"`) serves
 * one master. That master may put it in front of one port or of several
 * (the same System MMU named twice is one unit, powered with its master);
 * it may also have other ports behind other per-device units, as the Exynos
 * video codec has a left and a right System MMU. A second master behind the
 * same per-device unit is refused: powering either master down would turn
 * the shared unit off under the other. Central units serve any number of
 * masters, told apart by stream ID.
 */
export class Master {
  /** Unique name. */
  readonly name: string;
  /** DMA mask width in bits. */
  readonly dmaBits: number;
  /** Whether it snoops CPU caches. */
  readonly coherent: boolean;
  /** Its ports, in the order given. */
  readonly ports: readonly Port[];

  /**
   * Create a master and its ports (prefer `Soc.addMaster`).
   *
   * @param spec Description.
   * @param memory RAM.
   * @param router Fault router.
   * @throws {IommuError} `EINVAL` for no ports, duplicate port names, a bad
   * `dmaBits`, a port whose unit is not a unit object, stream IDs that are
   * not a list or do not match the unit's topology; `ERANGE` for a stream
   * ID beyond a central unit's; `EBUSY` for a per-device unit that already
   * serves another master (see the wiring rule above). Nothing is claimed
   * when it throws.
   */
  constructor(spec: MasterSpec, memory: PhysicalMemory, router: FaultRouter) {
    checkObject(spec, "master spec");
    checkList(spec.ports, `master ${String(spec.name)} ports`);
    const specs = Array.from(spec.ports);
    for (let i = 0; i < specs.length; i++) {
      const p = specs[i];
      const what = `master ${String(spec.name)} port ${i}`;
      checkObject(p, what);
      if (p.unit !== undefined && p.unit !== null) {
        checkObject(p.unit, `${what} unit`);
        checkObject(p.unit.caps, `${what} unit ${String(p.unit.name)} caps`);
        checkObject(
          p.unit.hardware,
          `${what} unit ${String(p.unit.name)} hardware`,
        );
      }
      if (p.streamIds !== undefined && p.streamIds !== null) {
        checkList(p.streamIds, `${what} stream ID list`);
      }
    }
    this.name = spec.name;
    const bits = spec.dmaBits ?? 64;
    if (!Number.isInteger(bits) || bits < 12 || bits > 64) {
      throw new IommuError(
        "EINVAL",
        `master ${spec.name}: dmaBits must be an integer from 12 to 64, got ${
          String(bits)
        }`,
      );
    }
    this.dmaBits = bits;
    this.coherent = spec.coherent ?? false;
    if (specs.length === 0) {
      throw new IommuError("EINVAL", `master ${spec.name} has no ports`);
    }
    const ports = specs.map((p, i) => {
      const central = p.unit?.caps.topology === "central";
      const ids = Array.from(p.streamIds ?? []);
      if (central && ids.length === 0) {
        throw new IommuError(
          "EINVAL",
          `master ${spec.name}: a port behind central unit ${
            p.unit!.name
          } needs a stream ID`,
        );
      }
      if (!central && ids.length > 0) {
        throw new IommuError(
          "EINVAL",
          `master ${spec.name}: stream IDs given for a port without a central unit`,
        );
      }
      for (const sid of ids) {
        checkAddress(sid, "stream ID");
        if (sid >= p.unit!.caps.streamIds) {
          throw new IommuError(
            "ERANGE",
            `master ${spec.name}: stream ID ${hex(sid)} beyond ${
              p.unit!.name
            }'s ${hex(p.unit!.caps.streamIds)} streams`,
          );
        }
      }
      return new Port(this, p, i, memory, router);
    });
    const names = new Set(ports.map((p) => p.name));
    if (names.size !== ports.length) {
      throw new IommuError(
        "EINVAL",
        `master ${spec.name} has duplicate port names`,
      );
    }
    const claimed: IommuUnit[] = [];
    for (const p of ports) {
      const u = p.unit;
      if (u === null || u.caps.topology === "central") continue;
      const owner = perDeviceOwner.get(u);
      if (owner !== undefined) {
        throw new IommuError(
          "EBUSY",
          `master ${spec.name}: port ${p.name} names per-device unit ${u.name}, which already serves master ${owner.name} (a per-device unit serves one master; put a unit of its own in front of each)`,
        );
      }
      claimed.push(u);
    }
    this.ports = ports;
    for (const u of claimed) perDeviceOwner.set(u, this);
  }

  /**
   * A port by name or index.
   *
   * @param which Name or index; default the first port.
   * @returns The port.
   * @throws {IommuError} `ENOENT` when there is no such port.
   */
  port(which: string | number = 0): Port {
    const p = typeof which === "number"
      ? this.ports[which]
      : this.ports.find((x) => x.name === which);
    if (p === undefined) {
      throw new IommuError(
        "ENOENT",
        `master ${this.name} has no port ${String(which)}`,
      );
    }
    return p;
  }

  /** True when any port reaches RAM untranslated. */
  get unprotected(): boolean {
    return this.ports.some((p) => p.unprotected);
  }
}
