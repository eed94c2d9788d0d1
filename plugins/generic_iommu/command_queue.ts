/**
 * Command encoding (16-byte SMMUv3-style commands) and the driver's producer
 * side of the command queue in RAM: write commands at PROD, ring the doorbell
 * (a PROD register write), and check that the unit consumed them.
 *
 * @module
 */
import {
  checkAddress,
  hex,
  IommuError,
  PhysicalMemory,
} from "../../core/mod.ts";
import {
  CMD_BYTES,
  CMD_CFGI_STE,
  CMD_SYNC,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CONS_ERR_SHIFT,
  REG_CMDQ_CONS,
  REG_CMDQ_PROD,
} from "./constants.ts";

/** The registers the producer needs (the hardware model implements them). */
export interface QueueRegisters {
  /** Read a 32-bit register. */
  readRegister(offset: number): number;
  /** Write a 32-bit register. */
  writeRegister(offset: number, value: number): void;
}

/**
 * Most 4 KiB pages one TLBI_NH_VA names with range invalidation (TG = 4 KiB,
 * NUM + 1 up to 32, SCALE up to 31): 2^36.
 */
export const TLBI_VA_MAX_PAGES = 2 ** 36;

/**
 * Pages above which {@linkcode CommandQueue.tlbiRange} invalidates the whole
 * context instead (2^24, 64 GiB): a range that large holds more than any
 * IOTLB, and the unit would scan the context anyway.
 */
const TLBI_ASID_FALLBACK_PAGES = 1 << 24;

/**
 * Driver side of the command queue: 2^log2Size commands of 16 bytes at
 * `base`. Commands are written and the doorbell rung per batch; the unit
 * consumes synchronously when its queue is enabled.
 */
export class CommandQueue {
  /** Queue base in RAM. */
  readonly base: number;
  /** log2 of the number of entries. */
  readonly log2Size: number;
  #memory: PhysicalMemory;
  #regs: QueueRegisters;
  #prod = 0;
  #mask: number;
  #wrapMask: number;
  /** Commands written since creation. */
  issued = 0;

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM.
   * @param regs The unit's registers.
   * @param base Queue address (aligned to its size).
   * @param log2Size log2 of the number of entries.
   * @throws {IommuError} `EINVAL` when `memory` is not a `PhysicalMemory`,
   * `regs` lacks `readRegister`/`writeRegister`, `log2Size` is not an
   * integer from 1 to 15, or `base` is not an address aligned to the
   * queue's size; `ERANGE` when the queue does not fit in RAM.
   */
  constructor(
    memory: PhysicalMemory,
    regs: QueueRegisters,
    base: number,
    log2Size: number,
  ) {
    checkQueueShape("command", memory, regs, base, log2Size, CMD_BYTES);
    this.#memory = memory;
    this.#regs = regs;
    this.base = base;
    this.log2Size = log2Size;
    this.#mask = (1 << log2Size) - 1;
    this.#wrapMask = (2 << log2Size) - 1;
  }

  #full(): boolean {
    const cons = this.#regs.readRegister(REG_CMDQ_CONS) & this.#wrapMask;
    return ((cons ^ this.#prod) & this.#mask) === 0 && cons !== this.#prod;
  }

  /**
   * Append one command (four 32-bit words: dword0 low/high, dword1 low/high).
   *
   * @throws {IommuError} `EIO` when the queue is full and the unit does not
   * drain it (queue disabled or stopped on an error).
   */
  push(w0: number, w1: number, w2: number, w3: number): void {
    if (this.#full()) {
      this.#doorbell();
      if (this.#full()) {
        throw new IommuError(
          "EIO",
          "command queue is full and the unit does not consume it",
        );
      }
    }
    const at = this.base + (this.#prod & this.#mask) * CMD_BYTES;
    const m = this.#memory;
    m.write32(at, w0 >>> 0);
    m.write32(at + 4, w1 >>> 0);
    m.write32(at + 8, w2 >>> 0);
    m.write32(at + 12, w3 >>> 0);
    this.#prod = (this.#prod + 1) & this.#wrapMask;
    this.issued++;
  }

  #doorbell(): void {
    this.#regs.writeRegister(REG_CMDQ_PROD, this.#prod);
  }

  /**
   * Append CMD_SYNC, ring the doorbell and check the unit consumed
   * everything.
   *
   * @throws {IommuError} `EIO` when the unit stopped on an error (CONS.ERR)
   * or did not consume the queue (for example the queue is disabled).
   */
  sync(): void {
    this.push(CMD_SYNC, 0, 0, 0);
    this.#doorbell();
    const cons = this.#regs.readRegister(REG_CMDQ_CONS);
    if ((cons & this.#wrapMask) !== this.#prod) {
      const err = (cons >>> CONS_ERR_SHIFT) & 0x7f;
      throw new IommuError(
        "EIO",
        err !== 0
          ? `command queue stopped with error ${err} at index ${
            hex(cons & this.#mask)
          }`
          : `command queue did not complete: CONS ${
            hex(cons & this.#wrapMask)
          }, PROD ${hex(this.#prod)}`,
      );
    }
  }

  /** Re-read PROD from the register (after a reset of the queue by software). */
  resync(): void {
    this.#prod = this.#regs.readRegister(REG_CMDQ_PROD) & this.#wrapMask;
  }

  /**
   * Queue a configuration invalidation of one stream.
   *
   * @param sid Stream ID.
   */
  cfgiSte(sid: number): void {
    this.push(CMD_CFGI_STE, sid, 0, 0);
  }

  /**
   * Queue a TLB (and walk-cache) invalidation of one context.
   *
   * @param asid Context tag.
   */
  tlbiAsid(asid: number): void {
    this.push(CMD_TLBI_NH_ASID, (asid & 0xffff) << 16, 0, 0);
  }

  /** Queue an invalidation of everything cached. */
  tlbiAll(): void {
    this.push(CMD_TLBI_NH_ALL, 0, 0, 0);
  }

  /**
   * Queue invalidations of `[start, end]` (inclusive, bytes) in one context
   * as range invalidations (IDR3.RIL: TG = 4 KiB, each command naming
   * (NUM + 1) * 2^SCALE pages, the ranges back to back), at most a few
   * commands per call; a range over 2^24 pages (64 GiB) queues one
   * TLBI_NH_ASID instead.
   *
   * @param asid Context tag.
   * @param start First byte.
   * @param end Last byte (inclusive).
   */
  tlbiRange(asid: number, start: number, end: number): void {
    const first = Math.floor(start / 4096);
    const pages = Math.floor(end / 4096) - first + 1;
    if (pages > TLBI_ASID_FALLBACK_PAGES) {
      this.tlbiAsid(asid);
      return;
    }
    let page = first;
    let left = pages;
    while (left > 0) {
      // The top five bits of what is left: NUM + 1 from 1 to 31 pages of
      // 2^SCALE; what remains is below 2^SCALE pages.
      const scale = Math.max(0, Math.floor(Math.log2(left)) - 4);
      const n = Math.min(32, Math.floor(left / 2 ** scale));
      const addr = page * 4096;
      this.push(
        CMD_TLBI_NH_VA | ((n - 1) << 12) | (scale << 20),
        (asid & 0xffff) << 16,
        (addr % 0x100000000) | TLBI_TG_4K,
        Math.floor(addr / 0x100000000),
      );
      page += n * 2 ** scale;
      left -= n * 2 ** scale;
    }
  }
}

/** TLBI dword1 TG[11:10] = 1: the range counts 4 KiB pages. */
const TLBI_TG_4K = 1 << 10;

/**
 * Check the shape of an in-RAM queue (shared by the command and event
 * queues): real RAM, a register file, 2^1..2^15 entries, a base aligned to
 * the queue's size with the whole queue inside RAM.
 *
 * @param what Queue name for messages.
 * @param memory RAM.
 * @param regs Registers.
 * @param base Queue address in bytes.
 * @param log2Size log2 of the number of entries.
 * @param entryBytes Bytes per entry.
 * @throws {IommuError} `EINVAL` or `ERANGE` as the constructors say.
 */
export function checkQueueShape(
  what: string,
  memory: PhysicalMemory,
  regs: QueueRegisters,
  base: number,
  log2Size: number,
  entryBytes: number,
): void {
  if (!(memory instanceof PhysicalMemory)) {
    throw new IommuError(
      "EINVAL",
      `${what} queue needs a PhysicalMemory, got ${String(memory)}`,
    );
  }
  if (
    regs === null || typeof regs !== "object" ||
    typeof regs.readRegister !== "function" ||
    typeof regs.writeRegister !== "function"
  ) {
    throw new IommuError(
      "EINVAL",
      `${what} queue needs registers with readRegister and writeRegister, got ${
        String(regs)
      }`,
    );
  }
  if (!(Number.isInteger(log2Size) && log2Size >= 1 && log2Size <= 15)) {
    throw new IommuError(
      "EINVAL",
      `${what} queue log2 size must be an integer from 1 to 15, got ${
        String(log2Size)
      }`,
    );
  }
  checkAddress(base, `${what} queue base`);
  const bytes = entryBytes * 2 ** log2Size;
  if (base % bytes !== 0) {
    throw new IommuError(
      "EINVAL",
      `${what} queue base ${hex(base)} is not aligned to its ${
        hex(bytes)
      } bytes`,
    );
  }
  if (!memory.contains(base, bytes)) {
    throw new IommuError(
      "ERANGE",
      `${what} queue ${hex(base)}+${hex(bytes)} is outside RAM`,
    );
  }
}
