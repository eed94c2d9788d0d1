/**
 * The OS side of the generic central IOMMU: it allocates the stream table,
 * context descriptors and both queues in RAM at probe, programs the unit's
 * registers, and afterwards talks to the unit only through STE/CD stores,
 * commands and the event queue.
 *
 * @module
 */
import {
  checkAddress,
  hex,
  type IommuDriver,
  IommuError,
  type IommuUnit,
  type PhysicalMemory,
} from "../../core/mod.ts";
import {
  CD_BYTES,
  CMD_BYTES,
  CMD_CFGI_STE_RANGE,
  CR0_CMDQEN,
  CR0_EVTQEN,
  CR0_SMMUEN,
  EVT_BYTES,
  REG_CMDQ_BASE,
  REG_CMDQ_BASE_HI,
  REG_CMDQ_CONS,
  REG_CMDQ_PROD,
  REG_CR0,
  REG_EVTQ_BASE,
  REG_EVTQ_BASE_HI,
  REG_EVTQ_CONS,
  REG_EVTQ_PROD,
  REG_STRTAB_BASE,
  REG_STRTAB_BASE_CFG,
  REG_STRTAB_BASE_HI,
  STE_BYTES,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
  STE_CFG_S1,
  STE_CFG_S2,
} from "./constants.ts";
import { CommandQueue } from "./command_queue.ts";
import { EventQueueReader, type GenericEvent } from "./event_queue.ts";
import type { GenericIommuHardware } from "./hardware.ts";
import { type DomainHost, GenericDomainOps } from "./domain_ops.ts";
import { LpaePageTable } from "./page_table.ts";
import type { LpaeStage } from "./lpae.ts";
import { clearCd, writeCd, writeSte } from "./stream_table.ts";

/** Driver parameters (fixed at probe). */
export interface GenericDriverConfig {
  /** Stream IDs (a power of two). */
  streamIds: number;
  /** IOVA width of every domain, in bits. */
  inputBits: number;
  /** Output address width, in bits. */
  outputBits: number;
  /** Descriptor stage (1: CD per domain; 2: VMID and table in the STE). */
  stage: LpaeStage;
  /** Context descriptors (domains alive at once + 1; context 0 is never used). */
  contexts: number;
  /** log2 of command-queue entries. */
  cmdqLog2: number;
  /** log2 of event-queue entries. */
  evtqLog2: number;
}

/** How a stream is configured now (as the driver wrote its STE). */
export type StreamMode = "abort" | "bypass" | "translate";

/**
 * The generic IOMMU's driver. Besides `allocDomain` it offers the stream
 * bypass switch, the event-queue reader and a full invalidation.
 */
export class GenericIommuDriver implements IommuDriver, DomainHost {
  /** Stream table address (linear, 64 bytes per stream). */
  readonly streamTable: number;
  /** Context descriptor table address (64 bytes per context). */
  readonly contextTable: number;
  /** The command queue (driver side). */
  readonly commands: CommandQueue;
  /** The event queue (driver side). */
  readonly events: EventQueueReader;
  /** The unit's hardware model (only its registers are used). */
  readonly hardware: GenericIommuHardware;
  #memory: PhysicalMemory;
  #cfg: GenericDriverConfig;
  #unit: IommuUnit | null = null;
  #owner: (GenericDomainOps | null)[];
  #bypass: Uint8Array;
  #contextUsed: Uint8Array;
  #contextHint = 1;

  /**
   * Allocate the stream table, CD table and queues, write every STE as
   * abort, program the registers and enable the unit.
   *
   * @param memory RAM.
   * @param hardware The unit's hardware model.
   * @param config Parameters.
   * @throws {IommuError} `ENOMEM` when the structures cannot be allocated
   * (nothing stays allocated).
   */
  constructor(
    memory: PhysicalMemory,
    hardware: GenericIommuHardware,
    config: GenericDriverConfig,
  ) {
    this.#memory = memory;
    this.#cfg = config;
    this.hardware = hardware;
    const frames = memory.frames;
    const got: number[] = [];
    try {
      for (
        const bytes of [
          config.streamIds * STE_BYTES,
          config.contexts * CD_BYTES,
          (1 << config.cmdqLog2) * CMD_BYTES,
          (1 << config.evtqLog2) * EVT_BYTES,
        ]
      ) got.push(frames.alloc(bytes));
    } catch (e) {
      for (const pa of got) frames.free(pa);
      throw e;
    }
    const [st, cd, cq, eq] = got as [number, number, number, number];
    this.streamTable = st;
    this.contextTable = cd;
    this.#owner = new Array<GenericDomainOps | null>(config.streamIds).fill(
      null,
    );
    this.#bypass = new Uint8Array(config.streamIds);
    this.#contextUsed = new Uint8Array(config.contexts);
    this.#contextUsed[0] = 1;
    for (let sid = 0; sid < config.streamIds; sid++) {
      writeSte(memory, st + sid * STE_BYTES, STE_CFG_ABORT, 0, null);
    }
    const hw = hardware;
    hw.writeRegister(REG_STRTAB_BASE, st % 0x100000000);
    hw.writeRegister(REG_STRTAB_BASE_HI, Math.floor(st / 0x100000000));
    hw.writeRegister(REG_STRTAB_BASE_CFG, Math.log2(config.streamIds));
    hw.writeRegister(REG_CMDQ_BASE, (cq % 0x100000000) | config.cmdqLog2);
    hw.writeRegister(REG_CMDQ_BASE_HI, Math.floor(cq / 0x100000000));
    hw.writeRegister(REG_CMDQ_PROD, 0);
    hw.writeRegister(REG_CMDQ_CONS, 0);
    hw.writeRegister(REG_EVTQ_BASE, (eq % 0x100000000) | config.evtqLog2);
    hw.writeRegister(REG_EVTQ_BASE_HI, Math.floor(eq / 0x100000000));
    hw.writeRegister(REG_EVTQ_PROD, 0);
    hw.writeRegister(REG_EVTQ_CONS, 0);
    this.commands = new CommandQueue(memory, hw, cq, config.cmdqLog2);
    this.events = new EventQueueReader(memory, hw, eq, config.evtqLog2);
    hw.writeRegister(REG_CR0, CR0_CMDQEN | CR0_EVTQEN);
    this.commands.push(CMD_CFGI_STE_RANGE, 0, 31, 0);
    this.commands.tlbiAll();
    this.commands.sync();
    hw.writeRegister(REG_CR0, CR0_CMDQEN | CR0_EVTQEN | CR0_SMMUEN);
  }

  /**
   * Tell the driver which unit it drives (the plugin does this once).
   *
   * @param unit The unit.
   */
  bindUnit(unit: IommuUnit): void {
    this.#unit = unit;
  }

  /**
   * Allocate a context and an empty page table.
   *
   * @returns The domain operations.
   * @throws {IommuError} `ENOSPC` when every context is in use; `ENOMEM`
   * when the root table cannot be allocated (the context stays free).
   */
  allocDomain(): GenericDomainOps {
    const ctx = this.#takeContext();
    let table: LpaePageTable;
    try {
      table = new LpaePageTable(this.#memory, {
        inputBits: this.#cfg.inputBits,
        outputBits: this.#cfg.outputBits,
        stage: this.#cfg.stage,
      });
    } catch (e) {
      this.#contextUsed[ctx] = 0;
      throw e;
    }
    let cd = 0;
    if (this.#cfg.stage === 1) {
      cd = this.contextTable + ctx * CD_BYTES;
      writeCd(
        this.#memory,
        cd,
        ctx,
        this.#cfg.inputBits,
        this.#cfg.outputBits,
        table.root,
      );
    }
    return new GenericDomainOps(this, ctx, cd, table);
  }

  #takeContext(): number {
    const used = this.#contextUsed;
    const n = used.length;
    for (let k = 0; k < n; k++) {
      const c = (this.#contextHint + k) % n;
      if (used[c] === 0) {
        used[c] = 1;
        this.#contextHint = c + 1;
        return c;
      }
    }
    throw new IommuError(
      "ENOSPC",
      `all ${n - 1} contexts of the unit are in use`,
    );
  }

  /**
   * Free a context and invalidate its descriptor (called by a domain's free).
   *
   * @param context Context tag.
   * @throws {IommuError} `EINVAL` for a malformed or out-of-range tag;
   * `ENOENT` for a context not allocated; `EBUSY` while a stream still
   * translates through it (nothing changes).
   */
  releaseContext(context: number): void {
    this.#checkContext(context);
    if (context === 0 || this.#contextUsed[context] === 0) {
      throw new IommuError("ENOENT", `context ${context} is not allocated`);
    }
    const owner = this.#owner;
    for (let sid = 0; sid < owner.length; sid++) {
      if (owner[sid]?.contextId === context) {
        throw new IommuError(
          "EBUSY",
          `context ${context} still translates stream ${hex(sid)}`,
        );
      }
    }
    if (this.#cfg.stage === 1) {
      clearCd(this.#memory, this.contextTable + context * CD_BYTES);
    }
    this.#contextUsed[context] = 0;
  }

  // A context tag: an integer below the context count.
  #checkContext(context: number): void {
    if (
      !(typeof context === "number" && Number.isInteger(context) &&
        context >= 0 && context < this.#contextUsed.length)
    ) {
      throw new IommuError(
        "EINVAL",
        `context ${String(context)} is not an integer from 0 to ${
          this.#contextUsed.length - 1
        }`,
      );
    }
  }

  #checkUnit(unit: IommuUnit, streamIds: readonly number[]): void {
    if (!Array.isArray(streamIds)) {
      throw new IommuError(
        "EINVAL",
        `stream IDs must be an array, got ${String(streamIds)}`,
      );
    }
    if (unit === null || typeof unit !== "object" || unit.driver !== this) {
      throw new IommuError(
        "EINVAL",
        `unit ${
          typeof unit === "object" && unit !== null ? unit.name : String(unit)
        } is not driven by this generic-iommu driver${
          this.#unit === null ? "" : ` (of ${this.#unit.name})`
        }`,
      );
    }
  }

  #checkSid(sid: number): void {
    checkAddress(sid, "stream ID");
    if (sid >= this.#cfg.streamIds) {
      throw new IommuError(
        "ERANGE",
        `stream ID ${hex(sid)} is beyond ${hex(this.#cfg.streamIds)} streams`,
      );
    }
  }

  #writeTranslate(domain: GenericDomainOps, sid: number): void {
    const ste = this.streamTable + sid * STE_BYTES;
    if (this.#cfg.stage === 1) {
      writeSte(this.#memory, ste, STE_CFG_S1, domain.contextDescriptor, null);
    } else {
      writeSte(this.#memory, ste, STE_CFG_S2, 0, {
        vmid: domain.contextId,
        inputBits: this.#cfg.inputBits,
        root: domain.rootTable,
      });
    }
  }

  #writeIdle(sid: number): void {
    writeSte(
      this.#memory,
      this.streamTable + sid * STE_BYTES,
      this.#bypass[sid] === 1 ? STE_CFG_BYPASS : STE_CFG_ABORT,
      0,
      null,
    );
  }

  /**
   * Point streams at `domain`: one STE store per stream (a stream attached
   * elsewhere moves in that single store, so its DMA sees the old or the
   * new table, never neither), CFGI_STE per stream, one CMD_SYNC.
   *
   * @param domain The domain.
   * @param unit Must be this driver's unit.
   * @param streamIds Streams.
   * @throws {IommuError} `EINVAL` for another unit or a malformed ID,
   * `ERANGE` for an ID beyond the stream table; `EIO` when the command
   * queue does not complete (every STE is restored). Nothing changes then.
   */
  attachStreams(
    domain: GenericDomainOps,
    unit: IommuUnit,
    streamIds: readonly number[],
  ): void {
    this.#checkUnit(unit, streamIds);
    for (const sid of streamIds) this.#checkSid(sid);
    const undo: [number, GenericDomainOps | null][] = [];
    try {
      for (const sid of streamIds) {
        const old = this.#owner[sid]!;
        if (old === domain) continue;
        this.#writeTranslate(domain, sid);
        undo.push([sid, old]);
        if (old !== null) old.streams.delete(sid);
        this.#owner[sid] = domain;
        domain.streams.add(sid);
        this.commands.cfgiSte(sid);
      }
      if (undo.length > 0) this.commands.sync();
    } catch (e) {
      // The command queue did not complete (EIO): put every STE back so
      // that nothing changed, as attach promises; the CFGIs left queued only
      // make the unit refetch the restored entries.
      for (const [sid, old] of undo.reverse()) {
        domain.streams.delete(sid);
        this.#owner[sid] = old;
        if (old !== null) {
          old.streams.add(sid);
          this.#writeTranslate(old, sid);
        } else this.#writeIdle(sid);
      }
      throw e;
    }
  }

  /**
   * Return streams to abort (or bypass when configured so), then CFGI_STE
   * and one CMD_SYNC.
   *
   * @param domain The domain they are attached to.
   * @param unit Must be this driver's unit.
   * @param streamIds Streams.
   * @throws {IommuError} `ENOENT` when a stream is not attached to `domain`;
   * `EINVAL` for another unit; `EIO` when the command queue does not
   * complete (every STE is restored). Nothing changes then.
   */
  detachStreams(
    domain: GenericDomainOps,
    unit: IommuUnit,
    streamIds: readonly number[],
  ): void {
    this.#checkUnit(unit, streamIds);
    for (const sid of streamIds) {
      this.#checkSid(sid);
      if (this.#owner[sid] !== domain) {
        throw new IommuError(
          "ENOENT",
          `stream ${hex(sid)} is not attached to context ${domain.contextId}`,
        );
      }
    }
    const undo: number[] = [];
    try {
      for (const sid of streamIds) {
        this.#writeIdle(sid);
        undo.push(sid);
        this.#owner[sid] = null;
        domain.streams.delete(sid);
        this.commands.cfgiSte(sid);
      }
      if (streamIds.length > 0) this.commands.sync();
    } catch (e) {
      // As in attachStreams: the queue failed, so the streams stay attached.
      for (const sid of undo) {
        this.#owner[sid] = domain;
        domain.streams.add(sid);
        this.#writeTranslate(domain, sid);
      }
      throw e;
    }
  }

  /**
   * Configure what a stream does while no domain is attached: bypass
   * (identity, every access allowed) or abort (the default). An unattached
   * stream changes at once; an attached one when it is detached.
   *
   * @param sid Stream ID.
   * @param bypass True for bypass, false for abort.
   * @throws {IommuError} `EINVAL` for a malformed ID; `ERANGE` beyond the table.
   */
  setStreamBypass(sid: number, bypass: boolean): void {
    this.#checkSid(sid);
    const flag = bypass ? 1 : 0;
    if (this.#bypass[sid] === flag) return;
    this.#bypass[sid] = flag;
    if (this.#owner[sid] === null) {
      this.#writeIdle(sid);
      this.commands.cfgiSte(sid);
      this.commands.sync();
    }
  }

  /**
   * How a stream is configured now.
   *
   * @param sid Stream ID.
   * @returns `translate` when a domain is attached, else `bypass` or `abort`.
   * @throws {IommuError} as {@linkcode GenericIommuDriver.setStreamBypass}.
   */
  streamMode(sid: number): StreamMode {
    this.#checkSid(sid);
    if (this.#owner[sid] !== null) return "translate";
    return this.#bypass[sid] === 1 ? "bypass" : "abort";
  }

  /**
   * The domain a stream translates through, or null.
   *
   * @param sid Stream ID.
   * @returns Its domain operations or null.
   * @throws {IommuError} as {@linkcode GenericIommuDriver.setStreamBypass}.
   */
  streamDomain(sid: number): GenericDomainOps | null {
    this.#checkSid(sid);
    return this.#owner[sid] ?? null;
  }

  /**
   * Queue TLBI_NH_VA for `[start, end]` of a context (TLB and walk caches)
   * and CMD_SYNC.
   *
   * @param context Context tag.
   * @param start First byte.
   * @param end Last byte, inclusive.
   * @throws {IommuError} `EINVAL` for a malformed context tag, a start or
   * end that is not a non-negative safe integer, or an end below the start
   * (nothing queued); `EIO` when the command queue does not complete.
   */
  invalidateRange(context: number, start: number, end: number): void {
    this.#checkContext(context);
    checkAddress(start, "invalidation start");
    checkAddress(end, "invalidation end");
    if (end < start) {
      throw new IommuError(
        "EINVAL",
        `invalidation end ${hex(end)} is below its start ${hex(start)}`,
      );
    }
    this.commands.tlbiRange(context, start, end);
    this.commands.sync();
  }

  /**
   * Queue TLBI_NH_ASID for a context and CMD_SYNC.
   *
   * @param context Context tag.
   * @throws {IommuError} `EINVAL` for a malformed context tag (nothing
   * queued); `EIO` when the command queue does not complete.
   */
  invalidateContext(context: number): void {
    this.#checkContext(context);
    this.commands.tlbiAsid(context);
    this.commands.sync();
  }

  /**
   * Invalidate every cached configuration and translation (CFGI_ALL,
   * TLBI_NH_ALL, CMD_SYNC).
   *
   * @throws {IommuError} `EIO` when the command queue does not complete.
   */
  invalidateAll(): void {
    this.commands.push(CMD_CFGI_STE_RANGE, 0, 31, 0);
    this.commands.tlbiAll();
    this.commands.sync();
  }

  /**
   * Read and consume the pending event records (the interrupt handler's job).
   *
   * @returns Events, oldest first.
   */
  drainEvents(): GenericEvent[] {
    return this.events.drain();
  }

  /** Registers the driver programmed, for dumps: name → value. */
  registers(): Record<string, number> {
    const hw = this.hardware;
    return {
      CR0: hw.readRegister(REG_CR0),
      STRTAB_BASE: hw.readRegister(REG_STRTAB_BASE),
      STRTAB_BASE_CFG: hw.readRegister(REG_STRTAB_BASE_CFG),
      CMDQ_BASE: hw.readRegister(REG_CMDQ_BASE),
      CMDQ_PROD: hw.readRegister(REG_CMDQ_PROD),
      CMDQ_CONS: hw.readRegister(REG_CMDQ_CONS),
      EVTQ_BASE: hw.readRegister(REG_EVTQ_BASE),
      EVTQ_PROD: hw.readRegister(REG_EVTQ_PROD),
      EVTQ_CONS: hw.readRegister(REG_EVTQ_CONS),
    };
  }
}
