/**
 * The generic unit's register file: the values software programs, their
 * read decoding (ID registers from the parameters), and write decoding
 * whose side effects (command consumption, config invalidation) go to the
 * unit through {@linkcode RegisterHooks} (internal; not exported from
 * mod.ts).
 *
 * @module
 */
import { hex, IommuError } from "../../core/mod.ts";
import {
  CONS_ERR_SHIFT,
  CR0_CMDQEN,
  CR0_EVTQEN,
  CR0_SMMUEN,
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
} from "./constants.ts";
import {
  type GenericHardwareConfig,
  REGISTER_WINDOW,
} from "./hardware_types.ts";

/** What register writes ask of the rest of the unit. */
export interface RegisterHooks {
  /** CR0 changed: cached translations of the old configuration are stale. */
  configChanged(): void;
  /** Run the command queue (doorbell, CMDQEN set, error acknowledged). */
  consume(): void;
  /**
   * Forget cached configs of `[first, first + count)`.
   *
   * @param first First stream ID.
   * @param count Streams.
   */
  invalidateConfigs(first: number, count: number): void;
}

/**
 * Check a register offset.
 *
 * @param offset Byte offset in the register window.
 * @throws {IommuError} `EINVAL` for an unaligned or malformed offset;
 * `ERANGE` beyond the window.
 */
export function checkOffset(offset: number): void {
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
 * IDR5.OAS for an output size: the largest encodable size (32, 36, 40, 42,
 * 44, 48 bits) not above `bits`, so that the register never promises output
 * addresses the unit faults on (38 bits reads as 36). The unit's output sizes
 * are 32 to 48 bits (checked by the plugin options).
 *
 * @param bits Output address bits of the unit.
 * @returns The OAS code, 0 to 5.
 */
function idrOasCode(bits: number): number {
  return bits >= 48
    ? 5
    : bits >= 44
    ? 4
    : bits >= 42
    ? 3
    : bits >= 40
    ? 2
    : bits >= 36
    ? 1
    : 0;
}

/** The register values and their decoding. */
export class RegisterFile {
  /** CR0 value. */
  cr0 = 0;
  /** GBPA value. */
  gbpa = GBPA_ABORT;
  /** GERROR value. */
  gerror = 0;
  /** GERRORN value. */
  gerrorn = 0;
  /** STRTABLO value. */
  strtabLo = 0;
  /** STRTABHI value. */
  strtabHi = 0;
  /** STRTABCFG value. */
  strtabCfg = 0;
  /** CMDQLO value. */
  cmdqLo = 0;
  /** CMDQHI value. */
  cmdqHi = 0;
  /** CMDQPROD value. */
  cmdqProd = 0;
  /** CMDQCONS value. */
  cmdqCons = 0;
  /** EVTQLO value. */
  evtqLo = 0;
  /** EVTQHI value. */
  evtqHi = 0;
  /** EVTQPROD value. */
  evtqProd = 0;
  /** EVTQCONS value. */
  evtqCons = 0;
  /**
   * Effective command queue size as log2 of its entries: CMDQ_BASE's
   * LOG2SIZE field capped at the size IDR1 advertises (the register itself
   * reads back as written).
   */
  cmdqLog2 = 0;
  /**
   * Effective event queue size as log2 of its entries: EVTQ_BASE's LOG2SIZE
   * field capped at the size IDR1 advertises (the register itself reads back
   * as written).
   */
  evtqLog2 = 0;
  /** Stream IDs the programmed stream table covers. */
  streamLimit = 0;
  #cfg: GenericHardwareConfig;
  #streams: number;
  #hooks: RegisterHooks;

  /**
   * @param cfg Parameters (the ID registers advertise them).
   * @param hooks Side effects of writes.
   */
  constructor(cfg: GenericHardwareConfig, hooks: RegisterHooks) {
    this.#cfg = cfg;
    this.#streams = cfg.streamIds;
    this.#hooks = hooks;
  }

  /** @returns Stream table base PA. */
  strtabBase(): number {
    return (this.strtabHi & 0xffff) * 0x100000000 +
      ((this.strtabLo & 0xffffffc0) >>> 0);
  }

  /** @returns Event queue base PA. */
  evtqBase(): number {
    return (this.evtqHi & 0xffff) * 0x100000000 +
      ((this.evtqLo & 0xffffffe0) >>> 0);
  }

  /** @returns Command queue base PA. */
  cmdqBase(): number {
    return (this.cmdqHi & 0xffff) * 0x100000000 +
      ((this.cmdqLo & 0xffffffe0) >>> 0);
  }

  /**
   * Read a register.
   *
   * @param offset Byte offset in the register window.
   * @returns The 32-bit value, unsigned (0 to 2^32 - 1).
   * @throws {IommuError} as {@linkcode checkOffset}.
   */
  read(offset: number): number {
    return this.#read(offset) >>> 0;
  }

  #read(offset: number): number {
    checkOffset(offset);
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
        return (1 << 4) | idrOasCode(c.outputBits);
      case REG_CR0:
        return this.cr0;
      case REG_CR0ACK:
        return this.cr0 & (CR0_SMMUEN | CR0_EVTQEN | CR0_CMDQEN);
      case REG_GBPA:
        return this.gbpa;
      case REG_GERROR:
        return this.gerror;
      case REG_GERRORN:
        return this.gerrorn;
      case REG_STRTAB_BASE:
        return this.strtabLo;
      case REG_STRTAB_BASE_HI:
        return this.strtabHi;
      case REG_STRTAB_BASE_CFG:
        return this.strtabCfg;
      case REG_CMDQ_BASE:
        return this.cmdqLo;
      case REG_CMDQ_BASE_HI:
        return this.cmdqHi;
      case REG_CMDQ_PROD:
        return this.cmdqProd;
      case REG_CMDQ_CONS:
        return this.cmdqCons >>> 0;
      case REG_EVTQ_BASE:
        return this.evtqLo;
      case REG_EVTQ_BASE_HI:
        return this.evtqHi;
      case REG_EVTQ_PROD:
        return this.evtqProd;
      case REG_EVTQ_CONS:
        return this.evtqCons;
      default:
        return 0;
    }
  }

  /**
   * Write a register and run its side effects. A queue's LOG2SIZE above the
   * size IDR1 advertises acts as that size, and PROD/CONS keep only the
   * index and wrap bits of the effective size.
   *
   * @param offset Byte offset in the register window.
   * @param value The value (taken modulo 2^32).
   * @throws {IommuError} as {@linkcode checkOffset}.
   */
  write(offset: number, value: number): void {
    checkOffset(offset);
    const v = value >>> 0;
    switch (offset) {
      case REG_CR0: {
        const was = this.cr0;
        this.cr0 = v & (CR0_SMMUEN | CR0_EVTQEN | CR0_CMDQEN);
        this.#hooks.configChanged();
        if ((this.cr0 & ~was & CR0_CMDQEN) !== 0) this.#hooks.consume();
        return;
      }
      case REG_GBPA:
        this.gbpa = v & GBPA_ABORT;
        return;
      case REG_GERRORN: {
        const was = (this.gerror ^ this.gerrorn) & GERROR_CMDQ_ERR;
        this.gerrorn = v & (GERROR_CMDQ_ERR | GERROR_EVTQ_ABT);
        if (
          was !== 0 && ((this.gerror ^ this.gerrorn) & GERROR_CMDQ_ERR) === 0
        ) {
          this.cmdqCons &= ~(0x7f << CONS_ERR_SHIFT);
          this.#hooks.consume();
        }
        return;
      }
      case REG_STRTAB_BASE:
        this.strtabLo = v;
        this.#hooks.invalidateConfigs(0, this.#streams);
        return;
      case REG_STRTAB_BASE_HI:
        this.strtabHi = v;
        this.#hooks.invalidateConfigs(0, this.#streams);
        return;
      case REG_STRTAB_BASE_CFG:
        this.strtabCfg = v & ((3 << 16) | 63);
        this.streamLimit = ((v >>> 16) & 3) !== 0
          ? 0
          : Math.min(this.#streams, 2 ** (v & 63));
        this.#hooks.invalidateConfigs(0, this.#streams);
        return;
      case REG_CMDQ_BASE:
        this.cmdqLo = v;
        this.cmdqLog2 = Math.min(v & 31, this.#cfg.cmdqLog2);
        return;
      case REG_CMDQ_BASE_HI:
        this.cmdqHi = v;
        return;
      case REG_CMDQ_PROD:
        this.cmdqProd = v & ((2 << this.cmdqLog2) - 1);
        this.#hooks.consume();
        return;
      case REG_CMDQ_CONS:
        if ((this.cr0 & CR0_CMDQEN) === 0) {
          this.cmdqCons = v & ((2 << this.cmdqLog2) - 1);
        }
        return;
      case REG_EVTQ_BASE:
        this.evtqLo = v;
        this.evtqLog2 = Math.min(v & 31, this.#cfg.evtqLog2);
        return;
      case REG_EVTQ_BASE_HI:
        this.evtqHi = v;
        return;
      case REG_EVTQ_PROD:
        if ((this.cr0 & CR0_EVTQEN) === 0) {
          this.evtqProd = v & ((2 << this.evtqLog2) - 1);
        }
        return;
      case REG_EVTQ_CONS:
        this.evtqCons = v & ((2 << this.evtqLog2) - 1);
        return;
      default:
        return;
    }
  }
}
