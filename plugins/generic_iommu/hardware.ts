/**
 * The hardware side of the generic central IOMMU: registers, the stream table
 * and context descriptors read from RAM (with a per-stream config cache), the
 * IOTLB and walk caches, the command queue consumer and the event queue
 * producer with its interrupt.
 *
 * Translation order for an access (stream `sid`, `iova`):
 * 1. `sid` beyond the stream table: C_BAD_STREAMID event, fault `bad-stream`.
 * 2. SMMUEN clear: GBPA.ABORT ? fault `blocked` (no event) : identity.
 * 3. Config (config cache, else STE/CD fetch): invalid STE → C_BAD_STE, invalid
 *    CD → C_BAD_CD (fault `bad-stream-entry`); abort → fault
 *    `bad-stream-entry` without event (as SMMUv3); bypass → identity.
 * 4. IOVA at or beyond 2^inputBits: F_ADDR_SIZE, fault `address-size`.
 * 5. Micro TLB (one entry per stream), then IOTLB lookup (tag = context),
 *    else walk (walk caches, then RAM): F_TRANSLATION / F_ADDR_SIZE /
 *    F_ACCESS (fault `permission`) / F_WALK_EABT (fault `bus-error`).
 * 6. Permission check against the leaf: F_PERMISSION, fault `permission`.
 *
 * F_* events are recorded only when the context asks (CD.R / STE.S2R), and
 * only while CR0.EVTQEN is set; a full event queue drops the record and
 * raises GERROR.EVTQ_ABT once. The model has no stall mode: a faulting
 * access is terminated.
 *
 * Simplifications (documented, deliberate): a linear stream table only; one
 * context descriptor per domain (no substreams); event-queue PROD/CONS in
 * the first register page; a config cache with one slot per stream
 * (unbounded, like QEMU's); TLBI_NH_VA carries a 20-bit page count instead
 * of SMMUv3's NUM/SCALE encoding; invalidations complete at once.
 *
 * @module
 */
import {
  ACCESS_WRITE,
  type FaultReason,
  hex,
  IommuError,
  type IommuFault,
  type IommuHardware,
  type PhysicalMemory,
  type ProbeContext,
} from "../../core/mod.ts";
import { Tlb, type TlbOptions } from "../../core/mod.ts";
import {
  CD_HI_AA64,
  CD_HI_R,
  CD_V,
  CERROR_ILL,
  CMD_BYTES,
  CMD_CFGI_CD,
  CMD_CFGI_CD_ALL,
  CMD_CFGI_STE,
  CMD_CFGI_STE_RANGE,
  CMD_SYNC,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CONS_ERR_SHIFT,
  CR0_CMDQEN,
  CR0_EVTQEN,
  CR0_SMMUEN,
  EVT_BYTES,
  EVT_C_BAD_CD,
  EVT_C_BAD_STE,
  EVT_C_BAD_STREAMID,
  EVT_F_ACCESS,
  EVT_F_ADDR_SIZE,
  EVT_F_PERMISSION,
  EVT_F_WALK_EABT,
  GBPA_ABORT,
  GERROR_CMDQ_ERR,
  GERROR_EVTQ_ABT,
  REG_CMDQ_BASE,
  REG_CMDQ_BASE_HI,
  REG_CMDQ_CONS,
  REG_CMDQ_PROD,
  REG_CR0,
  REG_CR0ACK,
  REG_EVTQ_BASE,
  REG_EVTQ_BASE_HI,
  REG_EVTQ_CONS,
  REG_EVTQ_PROD,
  REG_GBPA,
  REG_GERROR,
  REG_GERRORN,
  REG_IDR0,
  REG_IDR1,
  REG_IDR3,
  REG_IDR5,
  REG_STRTAB_BASE,
  REG_STRTAB_BASE_CFG,
  REG_STRTAB_BASE_HI,
  STE_BYTES,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
  STE_CFG_S1,
  STE_CFG_S2,
  STE_HI_S2AA64,
  STE_HI_S2R,
} from "./constants.ts";
import { writeEventRecord } from "./event_queue.ts";
import { Walker } from "./walker.ts";
import { oasCode } from "./stream_table.ts";
import type { LpaeStage } from "./lpae.ts";

/** Bytes of the register window. */
export const REGISTER_WINDOW = 0x1000;

/**
 * Default IOTLB shape: gem5's SMMUv3 main TLB (2048 entries, 4-way,
 * round-robin).
 */
export const DEFAULT_IOTLB: TlbOptions = {
  sets: 512,
  ways: 4,
  replacement: "round-robin",
};

/** Figures of one stream (see {@linkcode GenericIommuHardware.streamCounters}). */
export interface GenericStreamCounters {
  /** Accesses translated (or refused) while translation was enabled. */
  translations: number;
  /** Table walks (IOTLB misses). */
  walks: number;
  /** Faults. */
  faults: number;
}

/** Which interrupt line fired. */
export type GenericIrqLine = "event" | "gerror";

/** Called when the unit raises an interrupt. */
export type GenericIrqListener = (line: GenericIrqLine) => void;

/** Hardware parameters (fixed at probe). */
export interface GenericHardwareConfig {
  /** Unit name (faults carry it). */
  name: string;
  /** Stream IDs, a power of two. */
  streamIds: number;
  /** Largest IOVA width in bits a context may use. */
  inputBits: number;
  /** Output address width in bits. */
  outputBits: number;
  /** Descriptor stage the walker decodes (1 or 2). */
  stage: LpaeStage;
  /** IOTLB shape. */
  iotlb: TlbOptions;
  /** Walk-cache shapes for levels 0, 1, 2. */
  walkCache: readonly TlbOptions[];
  /** Whether each stream has a one-entry micro TLB in front of the IOTLB. */
  microTlb: boolean;
  /** log2 of command-queue entries (advertised in IDR1). */
  cmdqLog2: number;
  /** log2 of event-queue entries (advertised in IDR1). */
  evtqLog2: number;
}

// Config-cache states per stream.
const CFG_UNCACHED = 0;
const CFG_ABORT = 1;
const CFG_BYPASS = 2;
const CFG_TRANSLATE = 3;
const CFG_BAD_STE = 4;
const CFG_BAD_CD = 5;

const FAULT_KINDS = [
  "bad-stream",
  "bad-stream-entry",
  "blocked",
  "translation",
  "address-size",
  "permission",
  "bus-error",
] as const;

/**
 * The unit's hardware model. It only sees RAM and its registers: the driver
 * programs it exactly as software would program an SMMUv3-like unit.
 */
export class GenericIommuHardware implements IommuHardware {
  /** Unit name. */
  readonly name: string;
  /** Number of stream IDs. */
  readonly streamIds: number;
  /** The IOTLB (core `Tlb`, tagged by context). */
  readonly iotlb: Tlb;
  /** The walker and its walk caches. */
  readonly walker: Walker;
  #memory: PhysicalMemory;
  #ctx: ProbeContext;
  #cfg: GenericHardwareConfig;
  #outEnd: number;
  // Registers.
  #cr0 = 0;
  #gbpa = GBPA_ABORT;
  #gerror = 0;
  #gerrorn = 0;
  #strtabLo = 0;
  #strtabHi = 0;
  #strtabCfg = 0;
  #streamLimit = 0;
  #cmdqLo = 0;
  #cmdqHi = 0;
  #cmdqProd = 0;
  #cmdqCons = 0;
  #evtqLo = 0;
  #evtqHi = 0;
  #evtqProd = 0;
  #evtqCons = 0;
  // Config cache, one slot per stream.
  #cfgState: Uint8Array;
  #cfgCtx: Int32Array;
  #cfgRoot: Float64Array;
  #cfgStart: Uint8Array;
  #cfgInEnd: Float64Array;
  #cfgRecord: Uint8Array;
  #cfgLookups = 0;
  #cfgMisses = 0;
  #steFetches = 0;
  #cdFetches = 0;
  // Statistics.
  #translations = 0;
  #bypassed = 0;
  #faults = new Float64Array(FAULT_KINDS.length);
  #events = 0;
  #eventsDropped = 0;
  #commands = 0;
  #syncs = 0;
  #tlbis = 0;
  #cfgis = 0;
  #cmdErrors = 0;
  #irqs = { event: 0, gerror: 0 };
  #listeners: GenericIrqListener[] = [];
  #lastSpan = 0;
  #lastFault: IommuFault | null = null;
  // Micro TLB: one entry per stream (gem5 keeps a small one per device
  // interface). An entry is valid while its generation equals #gen; every
  // invalidation command or configuration change bumps #gen.
  #microEnabled: boolean;
  #gen = 1;
  #uGen: Uint32Array;
  #uBase: Float64Array;
  #uSize: Float64Array;
  #uPa: Float64Array;
  #uPerm: Uint8Array;
  #uLookups = 0;
  #uHits = 0;
  // Per-stream (per-master) figures.
  #sTrans: Float64Array;
  #sWalks: Float64Array;
  #sFaults: Float64Array;

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM.
   * @param ctx Probe context (fault reporting).
   * @param config Parameters.
   * @throws {IommuError} `EINVAL`/`ERANGE` for bad cache shapes.
   */
  constructor(
    memory: PhysicalMemory,
    ctx: ProbeContext,
    config: GenericHardwareConfig,
  ) {
    this.name = config.name;
    this.streamIds = config.streamIds;
    this.#memory = memory;
    this.#ctx = ctx;
    this.#cfg = config;
    this.#outEnd = 2 ** config.outputBits;
    this.iotlb = new Tlb(config.iotlb);
    this.walker = new Walker(memory, config.stage, config.walkCache);
    const n = config.streamIds;
    this.#cfgState = new Uint8Array(n);
    this.#cfgCtx = new Int32Array(n);
    this.#cfgRoot = new Float64Array(n);
    this.#cfgStart = new Uint8Array(n);
    this.#cfgInEnd = new Float64Array(n);
    this.#cfgRecord = new Uint8Array(n);
    this.#microEnabled = config.microTlb;
    this.#uGen = new Uint32Array(n);
    this.#uBase = new Float64Array(n);
    this.#uSize = new Float64Array(n);
    this.#uPa = new Float64Array(n);
    this.#uPerm = new Uint8Array(n);
    this.#sTrans = new Float64Array(n);
    this.#sWalks = new Float64Array(n);
    this.#sFaults = new Float64Array(n);
  }

  /**
   * Per-stream figures (per master): accesses translated while SMMUEN was
   * set, table walks, and faults.
   *
   * @param streamId Stream ID.
   * @returns A snapshot.
   * @throws {IommuError} `EINVAL` for a malformed ID; `ERANGE` beyond the
   * stream table.
   */
  streamCounters(streamId: number): GenericStreamCounters {
    if (!Number.isInteger(streamId) || streamId < 0) {
      throw new IommuError(
        "EINVAL",
        `stream ID must be a non-negative integer, got ${String(streamId)}`,
      );
    }
    if (streamId >= this.streamIds) {
      throw new IommuError(
        "ERANGE",
        `stream ID ${hex(streamId)} is beyond ${hex(this.streamIds)} streams`,
      );
    }
    return {
      translations: this.#sTrans[streamId]!,
      walks: this.#sWalks[streamId]!,
      faults: this.#sFaults[streamId]!,
    };
  }

  /** Bytes from the last translated PA to the end of its page (or of memory for bypass). */
  get lastSpan(): number {
    return this.#lastSpan;
  }

  /** The most recent fault, or null. */
  get lastFault(): IommuFault | null {
    return this.#lastFault;
  }

  /**
   * Translate one access (see the module documentation for the order of checks).
   *
   * @param streamId Requester stream ID.
   * @param iova Bus address.
   * @param access `ACCESS_READ` or `ACCESS_WRITE`.
   * @returns The physical address, or -1 after reporting a fault.
   */
  translate(streamId: number, iova: number, access: number): number {
    if (
      !(streamId >= 0 && streamId < this.#streamLimit &&
        (streamId | 0) === streamId)
    ) {
      return this.#fault(
        streamId,
        iova,
        access,
        0,
        EVT_C_BAD_STREAMID,
        true,
        0,
      );
    }
    if ((this.#cr0 & CR0_SMMUEN) === 0) {
      if ((this.#gbpa & GBPA_ABORT) !== 0) {
        return this.#fault(streamId, iova, access, 2, -1, false, 0);
      }
      return this.#identity(iova);
    }
    this.#translations++;
    this.#sTrans[streamId]!++;
    this.#cfgLookups++;
    let st = this.#cfgState[streamId]!;
    if (st === CFG_UNCACHED) {
      this.#cfgMisses++;
      st = this.#fetchConfig(streamId);
    }
    if (st === CFG_TRANSLATE) {
      if (!(iova < this.#cfgInEnd[streamId]!)) {
        return this.#fault(
          streamId,
          iova,
          access,
          4,
          EVT_F_ADDR_SIZE,
          this.#cfgRecord[streamId] === 1,
          0,
        );
      }
      if (this.#microEnabled) {
        this.#uLookups++;
        if (this.#uGen[streamId] === this.#gen) {
          const off = iova - this.#uBase[streamId]!;
          if (off >= 0 && off < this.#uSize[streamId]!) {
            if ((this.#uPerm[streamId]! & access) !== access) {
              return this.#fault(
                streamId,
                iova,
                access,
                5,
                EVT_F_PERMISSION,
                this.#cfgRecord[streamId] === 1,
                0,
              );
            }
            this.#uHits++;
            this.#lastSpan = this.#uSize[streamId]! - off;
            return this.#uPa[streamId]! + off;
          }
        }
      }
      const ctx = this.#cfgCtx[streamId]!;
      const tlb = this.iotlb;
      const pa = tlb.lookup(ctx, iova);
      if (pa >= 0) {
        if (this.#microEnabled) {
          this.#uGen[streamId] = this.#gen;
          this.#uBase[streamId] = iova - (pa - tlb.lastPaBase);
          this.#uSize[streamId] = tlb.lastPageSize;
          this.#uPa[streamId] = tlb.lastPaBase;
          this.#uPerm[streamId] = tlb.lastPerm;
        }
        if ((tlb.lastPerm & access) !== access) {
          return this.#fault(
            streamId,
            iova,
            access,
            5,
            EVT_F_PERMISSION,
            this.#cfgRecord[streamId] === 1,
            0,
          );
        }
        this.#lastSpan = tlb.lastPageSize - (pa - tlb.lastPaBase);
        return pa;
      }
      return this.#walk(streamId, ctx, iova, access);
    }
    if (st === CFG_BYPASS) return this.#identity(iova);
    if (st === CFG_ABORT) {
      return this.#fault(streamId, iova, access, 1, -1, false, 0);
    }
    return this.#fault(
      streamId,
      iova,
      access,
      1,
      st === CFG_BAD_CD ? EVT_C_BAD_CD : EVT_C_BAD_STE,
      true,
      0,
    );
  }

  #identity(iova: number): number {
    this.#bypassed++;
    this.#lastSpan = Number.MAX_SAFE_INTEGER - iova;
    return iova;
  }

  #walk(sid: number, ctx: number, iova: number, access: number): number {
    this.#sWalks[sid]!++;
    const w = this.walker;
    const code = w.walk(
      ctx,
      this.#cfgRoot[sid]!,
      this.#cfgStart[sid]!,
      iova,
      this.#outEnd,
    );
    const record = this.#cfgRecord[sid] === 1;
    if (code !== 0) {
      const kind = code === EVT_F_ADDR_SIZE
        ? 4
        : code === EVT_F_WALK_EABT
        ? 6
        : code === EVT_F_ACCESS
        ? 5
        : 3;
      return this.#fault(sid, iova, access, kind, code, record, w.faultAddress);
    }
    const size = w.leafSize;
    const base = Math.floor(iova / size) * size;
    if (this.iotlb.capacity !== 0) {
      this.iotlb.insert(ctx, base, size, w.leafPa, w.leafAccess);
    }
    if (this.#microEnabled) {
      this.#uGen[sid] = this.#gen;
      this.#uBase[sid] = base;
      this.#uSize[sid] = size;
      this.#uPa[sid] = w.leafPa;
      this.#uPerm[sid] = w.leafAccess;
    }
    if ((w.leafAccess & access) !== access) {
      return this.#fault(sid, iova, access, 5, EVT_F_PERMISSION, record, 0);
    }
    const off = iova - base;
    this.#lastSpan = size - off;
    return w.leafPa + off;
  }

  // kind indexes FAULT_KINDS; eventId < 0 means no record.
  #fault(
    sid: number,
    iova: number,
    access: number,
    kind: number,
    eventId: number,
    record: boolean,
    address: number,
  ): number {
    this.#faults[kind]!++;
    if (sid >= 0 && sid < this.streamIds && (sid | 0) === sid) {
      this.#sFaults[sid]!++;
    }
    const write = access === ACCESS_WRITE;
    if (eventId >= 0 && record) {
      this.#postEvent(eventId, sid, !write, iova, address);
    }
    const fault: IommuFault = {
      unit: this.name,
      streamId: sid,
      iova,
      access: write ? "write" : "read",
      reason: FAULT_KINDS[kind] as FaultReason,
    };
    this.#lastFault = fault;
    this.#ctx.reportFault(fault);
    return -1;
  }

  #postEvent(
    id: number,
    sid: number,
    read: boolean,
    iova: number,
    address: number,
  ): void {
    if ((this.#cr0 & CR0_EVTQEN) === 0) return;
    const log2 = this.#evtqLo & 31;
    const mask = (1 << log2) - 1;
    const wrapMask = (2 << log2) - 1;
    const prod = this.#evtqProd & wrapMask;
    const cons = this.#evtqCons & wrapMask;
    if (((prod ^ cons) & mask) === 0 && prod !== cons) {
      this.#eventsDropped++;
      if (((this.#gerror ^ this.#gerrorn) & GERROR_EVTQ_ABT) === 0) {
        this.#gerror ^= GERROR_EVTQ_ABT;
        this.#irq("gerror");
      }
      return;
    }
    const base = this.#evtqBase();
    const safeSid = Number.isSafeInteger(sid) && sid >= 0
      ? sid % 0x100000000
      : 0xffffffff;
    const safeIova = Number.isSafeInteger(iova) && iova >= 0 ? iova : 0;
    writeEventRecord(
      this.#memory,
      base + (prod & mask) * EVT_BYTES,
      id,
      safeSid,
      read,
      safeIova,
      address,
    );
    this.#evtqProd = (prod + 1) & wrapMask;
    this.#events++;
    this.#irq("event");
  }

  #irq(line: GenericIrqLine): void {
    this.#irqs[line]++;
    for (const l of this.#listeners) l(line);
  }

  /**
   * Be told about interrupts (event queue non-empty, global error).
   *
   * @param listener Called with the line.
   * @returns A function removing the listener.
   */
  onInterrupt(listener: GenericIrqListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  #strtabBase(): number {
    return (this.#strtabHi & 0xffff) * 0x100000000 +
      ((this.#strtabLo & 0xffffffc0) >>> 0);
  }

  #evtqBase(): number {
    return (this.#evtqHi & 0xffff) * 0x100000000 +
      ((this.#evtqLo & 0xffffffe0) >>> 0);
  }

  #cmdqBase(): number {
    return (this.#cmdqHi & 0xffff) * 0x100000000 +
      ((this.#cmdqLo & 0xffffffe0) >>> 0);
  }

  // Read the STE (and CD) of `sid` from RAM into the config cache.
  #fetchConfig(sid: number): number {
    const mem = this.#memory;
    const ste = this.#strtabBase() + sid * STE_BYTES;
    this.#steFetches++;
    let st: number;
    if (!mem.contains(ste, STE_BYTES)) st = CFG_BAD_STE;
    else st = this.#decodeSte(mem, ste, sid);
    this.#cfgState[sid] = st;
    return st;
  }

  #decodeSte(mem: PhysicalMemory, ste: number, sid: number): number {
    const lo = mem.read32(ste);
    if ((lo & 1) === 0) return CFG_BAD_STE;
    const config = (lo >>> 1) & 7;
    if (config === STE_CFG_ABORT) return CFG_ABORT;
    if (config === STE_CFG_BYPASS) return CFG_BYPASS;
    const stage = this.#cfg.stage;
    if (config === STE_CFG_S1 && stage === 1) {
      const cd = (mem.read32(ste + 4) & 0xffff) * 0x100000000 +
        ((lo & 0xffffffc0) >>> 0);
      this.#cdFetches++;
      if (!mem.contains(cd, 64)) return CFG_BAD_CD;
      const w0 = mem.read32(cd);
      const w1 = mem.read32(cd + 4);
      const t0sz = w0 & 63;
      const tg0 = (w0 >>> 6) & 3;
      if ((w0 & CD_V) === 0 || (w1 & CD_HI_AA64) === 0 || tg0 !== 0) {
        return CFG_BAD_CD;
      }
      const ias = 64 - t0sz;
      if (ias < 32 || ias > this.#cfg.inputBits) return CFG_BAD_CD;
      this.#cfgCtx[sid] = w1 >>> 16;
      this.#cfgRecord[sid] = (w1 & CD_HI_R) !== 0 ? 1 : 0;
      this.#cfgRoot[sid] = (mem.read32(cd + 12) & 0xffff) * 0x100000000 +
        ((mem.read32(cd + 8) & 0xfffffff0) >>> 0);
      this.#cfgInEnd[sid] = 2 ** ias;
      this.#cfgStart[sid] = ias > 39 ? 0 : 1;
      return CFG_TRANSLATE;
    }
    if (config === STE_CFG_S2 && stage === 2) {
      const w2 = mem.read32(ste + 16);
      const w3 = mem.read32(ste + 20);
      const ias = 64 - (w3 & 63);
      if ((w3 & STE_HI_S2AA64) === 0 || ias < 32 || ias > this.#cfg.inputBits) {
        return CFG_BAD_STE;
      }
      this.#cfgCtx[sid] = w2 & 0xffff;
      this.#cfgRecord[sid] = (w3 & STE_HI_S2R) !== 0 ? 1 : 0;
      this.#cfgRoot[sid] = (mem.read32(ste + 28) & 0xffff) * 0x100000000 +
        ((mem.read32(ste + 24) & 0xfffffff0) >>> 0);
      this.#cfgInEnd[sid] = 2 ** ias;
      this.#cfgStart[sid] = ias > 39 ? 0 : 1;
      return CFG_TRANSLATE;
    }
    return CFG_BAD_STE;
  }

  /**
   * True when `streamId` reaches RAM untranslated: SMMUEN clear with GBPA
   * bypass, or its STE (read from RAM now, no cache, no counters) says bypass.
   *
   * @param streamId Stream ID.
   * @returns Whether it bypasses.
   */
  isBypassing(streamId: number): boolean {
    if (
      !(Number.isInteger(streamId) && streamId >= 0 &&
        streamId < this.#streamLimit)
    ) return false;
    if ((this.#cr0 & CR0_SMMUEN) === 0) return (this.#gbpa & GBPA_ABORT) === 0;
    const ste = this.#strtabBase() + streamId * STE_BYTES;
    if (!this.#memory.contains(ste, STE_BYTES)) return false;
    const lo = this.#memory.read32(ste);
    return (lo & 1) !== 0 && ((lo >>> 1) & 7) === STE_CFG_BYPASS;
  }

  /**
   * This unit has no power management (the feature is not declared): the
   * call is ignored.
   *
   * @param _on Ignored.
   */
  setPower(_on: boolean): void {}

  #checkOffset(offset: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0) {
      throw new IommuError(
        "EINVAL",
        `register offset ${String(offset)} is not a 4-byte aligned offset`,
      );
    }
    if (offset >= REGISTER_WINDOW) {
      throw new IommuError(
        "ERANGE",
        `register offset ${hex(offset)} is beyond the ${
          hex(REGISTER_WINDOW)
        }-byte window`,
      );
    }
  }

  /**
   * Read a 32-bit register; reserved offsets read as zero.
   *
   * @param offset Byte offset in the register window.
   * @returns The value.
   * @throws {IommuError} `EINVAL` for an unaligned or malformed offset;
   * `ERANGE` beyond the window.
   */
  readRegister(offset: number): number {
    this.#checkOffset(offset);
    const c = this.#cfg;
    switch (offset) {
      case REG_IDR0:
        return ((2 << 21) | (1 << 12) | (1 << 4) | (2 << 2) |
          (c.stage === 1 ? 2 : 1)) >>> 0;
      case REG_IDR1:
        return ((c.cmdqLog2 << 21) | (c.evtqLog2 << 16) |
          Math.log2(c.streamIds)) >>> 0;
      case REG_IDR3:
        return 1 << 10;
      case REG_IDR5:
        return (1 << 4) | oasCode(c.outputBits);
      case REG_CR0:
        return this.#cr0;
      case REG_CR0ACK:
        return this.#cr0 & (CR0_SMMUEN | CR0_EVTQEN | CR0_CMDQEN);
      case REG_GBPA:
        return this.#gbpa;
      case REG_GERROR:
        return this.#gerror;
      case REG_GERRORN:
        return this.#gerrorn;
      case REG_STRTAB_BASE:
        return this.#strtabLo;
      case REG_STRTAB_BASE_HI:
        return this.#strtabHi;
      case REG_STRTAB_BASE_CFG:
        return this.#strtabCfg;
      case REG_CMDQ_BASE:
        return this.#cmdqLo;
      case REG_CMDQ_BASE_HI:
        return this.#cmdqHi;
      case REG_CMDQ_PROD:
        return this.#cmdqProd;
      case REG_CMDQ_CONS:
        return this.#cmdqCons >>> 0;
      case REG_EVTQ_BASE:
        return this.#evtqLo;
      case REG_EVTQ_BASE_HI:
        return this.#evtqHi;
      case REG_EVTQ_PROD:
        return this.#evtqProd;
      case REG_EVTQ_CONS:
        return this.#evtqCons;
      default:
        return 0;
    }
  }

  /**
   * Write a 32-bit register; writes to read-only or reserved offsets are
   * ignored. Writing CMDQ_PROD rings the doorbell: the unit consumes
   * commands at once (when CMDQEN is set and no error is pending).
   *
   * @param offset Byte offset.
   * @param value The value (taken modulo 2^32).
   * @throws {IommuError} as {@linkcode GenericIommuHardware.readRegister}.
   */
  writeRegister(offset: number, value: number): void {
    this.#checkOffset(offset);
    const v = value >>> 0;
    switch (offset) {
      case REG_CR0: {
        const was = this.#cr0;
        this.#cr0 = v & (CR0_SMMUEN | CR0_EVTQEN | CR0_CMDQEN);
        this.#gen++;
        if ((this.#cr0 & ~was & CR0_CMDQEN) !== 0) this.#consume();
        return;
      }
      case REG_GBPA:
        this.#gbpa = v & GBPA_ABORT;
        return;
      case REG_GERRORN: {
        const was = (this.#gerror ^ this.#gerrorn) & GERROR_CMDQ_ERR;
        this.#gerrorn = v & (GERROR_CMDQ_ERR | GERROR_EVTQ_ABT);
        if (
          was !== 0 && ((this.#gerror ^ this.#gerrorn) & GERROR_CMDQ_ERR) === 0
        ) {
          this.#cmdqCons &= ~(0x7f << CONS_ERR_SHIFT);
          this.#consume();
        }
        return;
      }
      case REG_STRTAB_BASE:
        this.#strtabLo = v;
        this.#invalidateConfigs(0, this.streamIds);
        return;
      case REG_STRTAB_BASE_HI:
        this.#strtabHi = v;
        this.#invalidateConfigs(0, this.streamIds);
        return;
      case REG_STRTAB_BASE_CFG:
        this.#strtabCfg = v & ((3 << 16) | 63);
        this.#streamLimit = ((v >>> 16) & 3) !== 0
          ? 0
          : Math.min(this.streamIds, 2 ** (v & 63));
        this.#invalidateConfigs(0, this.streamIds);
        return;
      case REG_CMDQ_BASE:
        this.#cmdqLo = v;
        return;
      case REG_CMDQ_BASE_HI:
        this.#cmdqHi = v;
        return;
      case REG_CMDQ_PROD:
        this.#cmdqProd = v & ((2 << (this.#cmdqLo & 31)) - 1);
        this.#consume();
        return;
      case REG_CMDQ_CONS:
        if ((this.#cr0 & CR0_CMDQEN) === 0) {
          this.#cmdqCons = v & ((2 << (this.#cmdqLo & 31)) - 1);
        }
        return;
      case REG_EVTQ_BASE:
        this.#evtqLo = v;
        return;
      case REG_EVTQ_BASE_HI:
        this.#evtqHi = v;
        return;
      case REG_EVTQ_PROD:
        if ((this.#cr0 & CR0_EVTQEN) === 0) {
          this.#evtqProd = v & ((2 << (this.#evtqLo & 31)) - 1);
        }
        return;
      case REG_EVTQ_CONS:
        this.#evtqCons = v & ((2 << (this.#evtqLo & 31)) - 1);
        return;
      default:
        return;
    }
  }

  #invalidateConfigs(first: number, count: number): void {
    this.#gen++;
    const end = Math.min(this.streamIds, first + count);
    if (first < end) this.#cfgState.fill(CFG_UNCACHED, first, end);
  }

  // Consume commands from CONS to PROD; stop on an illegal one.
  #consume(): void {
    if ((this.#cr0 & CR0_CMDQEN) === 0) return;
    if (((this.#gerror ^ this.#gerrorn) & GERROR_CMDQ_ERR) !== 0) return;
    const log2 = this.#cmdqLo & 31;
    const mask = (1 << log2) - 1;
    const wrapMask = (2 << log2) - 1;
    const base = this.#cmdqBase();
    const mem = this.#memory;
    let cons = this.#cmdqCons & wrapMask;
    while (cons !== this.#cmdqProd) {
      const at = base + (cons & mask) * CMD_BYTES;
      const ok = mem.contains(at, CMD_BYTES) &&
        this.#execute(
          mem.read32(at),
          mem.read32(at + 4),
          mem.read32(at + 8),
          mem.read32(at + 12),
        );
      if (!ok) {
        this.#cmdErrors++;
        this.#cmdqCons = (cons | (CERROR_ILL << CONS_ERR_SHIFT)) >>> 0;
        this.#gerror ^= GERROR_CMDQ_ERR;
        this.#irq("gerror");
        return;
      }
      this.#commands++;
      cons = (cons + 1) & wrapMask;
      this.#cmdqCons = cons;
    }
  }

  #execute(w0: number, w1: number, w2: number, w3: number): boolean {
    switch (w0 & 0xff) {
      case 0x01: // PREFETCH_CONFIG
      case 0x02: // PREFETCH_ADDR
        return true;
      case CMD_CFGI_STE:
      case CMD_CFGI_CD:
        this.#cfgis++;
        this.#gen++;
        if (w1 < this.streamIds) this.#cfgState[w1] = CFG_UNCACHED;
        return true;
      case CMD_CFGI_STE_RANGE: {
        this.#cfgis++;
        const range = w2 & 31;
        if (range === 31) this.#invalidateConfigs(0, this.streamIds);
        else {
          const n = 2 ** (range + 1);
          this.#invalidateConfigs(w1 - (w1 % n), n);
        }
        return true;
      }
      case CMD_CFGI_CD_ALL:
        this.#cfgis++;
        this.#invalidateConfigs(0, this.streamIds);
        return true;
      case CMD_TLBI_NH_ALL:
        this.#tlbis++;
        this.#gen++;
        this.iotlb.invalidateAll();
        this.walker.invalidateAll();
        return true;
      case CMD_TLBI_NH_ASID:
        this.#tlbis++;
        this.#gen++;
        this.iotlb.invalidateContext(w1 >>> 16);
        this.walker.invalidateContext(w1 >>> 16);
        return true;
      case CMD_TLBI_NH_VA: {
        this.#tlbis++;
        this.#gen++;
        const asid = w1 >>> 16;
        const pages = ((w0 >>> 12) & 0xfffff) + 1;
        const addr = w3 * 0x100000000 + ((w2 & 0xfffff000) >>> 0);
        const size = pages * 4096;
        // A range larger than the TLB costs more to probe than a scan of
        // the context; like real units, fall back to invalidating it all.
        if (pages > this.iotlb.capacity) this.iotlb.invalidateContext(asid);
        else if (this.iotlb.size !== 0) {
          this.iotlb.invalidateRange(asid, addr, size);
        }
        this.walker.invalidateRange(asid, addr, size);
        return true;
      }
      case CMD_SYNC: {
        this.#syncs++;
        const msi = (w3 & 0xffff) * 0x100000000 + ((w2 & 0xfffffffc) >>> 0);
        if (msi !== 0 && this.#memory.contains(msi, 4)) {
          this.#memory.write32(msi, w1);
        }
        return true;
      }
      default:
        return false;
    }
  }

  /**
   * Statistics as a flat object: IOTLB and per-level walk-cache lookups,
   * misses and hit rates (gem5's `totalLookups`/`totalMisses`/
   * `averageHitRate`), descriptors read per level, config-cache figures,
   * commands, events and faults by reason.
   *
   * @returns A snapshot.
   */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    const rate = (lookups: number, misses: number): number =>
      lookups === 0 ? 0 : (lookups - misses) / lookups;
    const t = this.iotlb.counters();
    out["translations"] = this.#translations;
    out["bypassed"] = this.#bypassed;
    out["microTlb.lookups"] = this.#uLookups;
    out["microTlb.hits"] = this.#uHits;
    out["microTlb.misses"] = this.#uLookups - this.#uHits;
    out["microTlb.hitRate"] = rate(
      this.#uLookups,
      this.#uLookups - this.#uHits,
    );
    out["iotlb.lookups"] = t.lookups;
    out["iotlb.hits"] = t.hits;
    out["iotlb.misses"] = t.misses;
    out["iotlb.hitRate"] = rate(t.lookups, t.misses);
    out["iotlb.fills"] = t.fills;
    out["iotlb.evictions"] = t.evictions;
    out["iotlb.invalidations"] = t.invalidations;
    out["iotlb.entries"] = this.iotlb.size;
    this.walker.caches.forEach((c, l) => {
      const w = c.counters();
      out[`walkCache.L${l}.lookups`] = w.lookups;
      out[`walkCache.L${l}.misses`] = w.misses;
      out[`walkCache.L${l}.hitRate`] = rate(w.lookups, w.misses);
      out[`walkCache.L${l}.fills`] = w.fills;
    });
    out["walks"] = this.walker.walks;
    for (let l = 0; l < 4; l++) out[`walks.L${l}`] = this.walker.reads[l]!;
    out["configCache.lookups"] = this.#cfgLookups;
    out["configCache.misses"] = this.#cfgMisses;
    out["configCache.hitRate"] = rate(this.#cfgLookups, this.#cfgMisses);
    out["steFetches"] = this.#steFetches;
    out["cdFetches"] = this.#cdFetches;
    out["commands"] = this.#commands;
    out["commands.sync"] = this.#syncs;
    out["commands.tlbi"] = this.#tlbis;
    out["commands.cfgi"] = this.#cfgis;
    out["commands.errors"] = this.#cmdErrors;
    out["events"] = this.#events;
    out["events.dropped"] = this.#eventsDropped;
    out["irqs.event"] = this.#irqs.event;
    out["irqs.gerror"] = this.#irqs.gerror;
    let faults = 0;
    FAULT_KINDS.forEach((k, i) => {
      out[`faults.${k}`] = this.#faults[i]!;
      faults += this.#faults[i]!;
    });
    out["faults"] = faults;
    return out;
  }
}
