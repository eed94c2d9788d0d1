/**
 * Event records (32-byte SMMUv3-style records) in the event queue in RAM:
 * the unit's writer and the driver's reader.
 *
 * Record layout: dword0 = EventID[7:0] | StreamID[63:32]; dword1 bit 35 RnW
 * (1 = read); dword2 = the input address (IOVA); dword3 = the output or
 * fetch address involved (0 when none).
 *
 * @module
 */
import type { PhysicalMemory } from "../../core/mod.ts";
import {
  EVT_BYTES,
  EVT_C_BAD_CD,
  EVT_C_BAD_STE,
  EVT_C_BAD_STREAMID,
  EVT_F_ACCESS,
  EVT_F_ADDR_SIZE,
  EVT_F_PERMISSION,
  EVT_F_TRANSLATION,
  EVT_F_WALK_EABT,
  EVT_HI_RNW,
  REG_EVTQ_CONS,
  REG_EVTQ_PROD,
} from "./constants.ts";
import { checkQueueShape, type QueueRegisters } from "./command_queue.ts";

/** Names of the event IDs the unit writes. */
export type GenericEventKind =
  | "bad-stream-id"
  | "bad-stream-entry"
  | "bad-context"
  | "translation"
  | "address-size"
  | "access"
  | "permission"
  | "walk-abort"
  | "unknown";

/** One decoded event record. */
export interface GenericEvent {
  /** Raw EventID (for example 0x10 for F_TRANSLATION). */
  id: number;
  /** Its name. */
  kind: GenericEventKind;
  /** Stream ID of the access. */
  streamId: number;
  /** True for a read, false for a write. */
  read: boolean;
  /** The IOVA of the access, in bytes. */
  iova: number;
  /** The output or fetch address recorded (bytes), 0 when none. */
  address: number;
}

/**
 * The name of an event ID.
 *
 * @param id EventID.
 * @returns Its kind (`unknown` for IDs the model never writes).
 */
export function eventKind(id: number): GenericEventKind {
  switch (id) {
    case EVT_C_BAD_STREAMID:
      return "bad-stream-id";
    case EVT_C_BAD_STE:
      return "bad-stream-entry";
    case EVT_C_BAD_CD:
      return "bad-context";
    case EVT_F_TRANSLATION:
      return "translation";
    case EVT_F_ADDR_SIZE:
      return "address-size";
    case EVT_F_ACCESS:
      return "access";
    case EVT_F_PERMISSION:
      return "permission";
    case EVT_F_WALK_EABT:
      return "walk-abort";
    default:
      return "unknown";
  }
}

/**
 * Write one record at `at`.
 *
 * @param memory RAM.
 * @param at Record address.
 * @param id EventID.
 * @param sid Stream ID.
 * @param read Whether the access was a read.
 * @param iova Input address.
 * @param address Output or fetch address (0 for none).
 */
export function writeEventRecord(
  memory: PhysicalMemory,
  at: number,
  id: number,
  sid: number,
  read: boolean,
  iova: number,
  address: number,
): void {
  memory.write32(at, id & 0xff);
  memory.write32(at + 4, sid >>> 0);
  memory.write32(at + 8, 0);
  // CLASS (dword1 bits 41:40): 1, a translation table fetch, for
  // F_WALK_EABT; 0 otherwise.
  memory.write32(
    at + 12,
    (read ? EVT_HI_RNW : 0) | (id === EVT_F_WALK_EABT ? 1 << 8 : 0),
  );
  memory.write32(at + 16, iova % 0x100000000);
  memory.write32(at + 20, Math.floor(iova / 0x100000000) >>> 0);
  memory.write32(at + 24, address % 0x100000000);
  memory.write32(at + 28, Math.floor(address / 0x100000000) >>> 0);
}

/**
 * Decode the record at `at`.
 *
 * @param memory RAM.
 * @param at Record address.
 * @returns The event.
 */
export function readEventRecord(
  memory: PhysicalMemory,
  at: number,
): GenericEvent {
  const id = memory.read32(at) & 0xff;
  return {
    id,
    kind: eventKind(id),
    streamId: memory.read32(at + 4),
    read: (memory.read32(at + 12) & EVT_HI_RNW) !== 0,
    iova: memory.read32(at + 20) * 0x100000000 + memory.read32(at + 16),
    address: memory.read32(at + 28) * 0x100000000 + memory.read32(at + 24),
  };
}

/**
 * Driver side of the event queue: read records between CONS and PROD and
 * advance CONS.
 */
export class EventQueueReader {
  /** Queue base in RAM. */
  readonly base: number;
  /** log2 of the number of records. */
  readonly log2Size: number;
  #memory: PhysicalMemory;
  #regs: QueueRegisters;

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM.
   * @param regs The unit's registers.
   * @param base Queue address (aligned to its size).
   * @param log2Size log2 of the number of records.
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
    checkQueueShape("event", memory, regs, base, log2Size, EVT_BYTES);
    this.#memory = memory;
    this.#regs = regs;
    this.base = base;
    this.log2Size = log2Size;
  }

  /**
   * Take every pending record (oldest first) and free their slots.
   *
   * @returns The decoded events.
   */
  drain(): GenericEvent[] {
    const mask = (1 << this.log2Size) - 1;
    const wrapMask = (2 << this.log2Size) - 1;
    const prod = this.#regs.readRegister(REG_EVTQ_PROD) & wrapMask;
    let cons = this.#regs.readRegister(REG_EVTQ_CONS) & wrapMask;
    const out: GenericEvent[] = [];
    while (cons !== prod) {
      out.push(
        readEventRecord(this.#memory, this.base + (cons & mask) * EVT_BYTES),
      );
      cons = (cons + 1) & wrapMask;
    }
    this.#regs.writeRegister(REG_EVTQ_CONS, cons);
    return out;
  }
}
