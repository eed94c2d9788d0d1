/**
 * The generic unit's event queue producer and its interrupt lines: event
 * records written to RAM while EVTQEN is set, records lost to a full queue
 * or a slot outside RAM reported through GERROR, listeners told of each
 * interrupt (internal; not exported from mod.ts).
 *
 * @module
 */
import type { PhysicalMemory } from "../../core/mod.ts";
import { CR0_EVTQEN, EVT_BYTES, GERROR_EVTQ_ABT } from "./constants.ts";
import { writeEventRecord } from "./event_queue.ts";
import type { GenericIrqLine, GenericIrqListener } from "./hardware_types.ts";
import type { RegisterFile } from "./registers.ts";

/** Posts event records and raises interrupts. */
export class EventProducer {
  /** Records written. */
  events = 0;
  /** Records dropped: the queue was full or its slot lay outside RAM. */
  dropped = 0;
  /** Interrupts raised, per line. */
  readonly irqs = { event: 0, gerror: 0 };
  #listeners: GenericIrqListener[] = [];
  #memory: PhysicalMemory;
  #regs: RegisterFile;

  /**
   * @param memory RAM (the queue lives there).
   * @param regs The registers (queue base, indexes, GERROR).
   */
  constructor(memory: PhysicalMemory, regs: RegisterFile) {
    this.#memory = memory;
    this.#regs = regs;
  }

  /**
   * Write one event record; never throws. Nothing happens while EVTQEN is
   * clear. A record that cannot be written, because the queue is full or its
   * slot is not wholly inside RAM, is dropped (counted in
   * {@linkcode EventProducer.dropped}) and raises GERROR.EVTQ_ABT with a
   * `gerror` interrupt, once until software acknowledges it in GERRORN.
   *
   * @param id Event ID.
   * @param sid Stream ID (any number; malformed ones are recorded as all-ones).
   * @param read Whether the access was a read.
   * @param iova Input address.
   * @param address Fault address (walks), or 0.
   */
  post(
    id: number,
    sid: number,
    read: boolean,
    iova: number,
    address: number,
  ): void {
    if ((this.#regs.cr0 & CR0_EVTQEN) === 0) return;
    const log2 = this.#regs.evtqLog2;
    const mask = (1 << log2) - 1;
    const wrapMask = (2 << log2) - 1;
    const prod = this.#regs.evtqProd & wrapMask;
    const cons = this.#regs.evtqCons & wrapMask;
    const at = this.#regs.evtqBase() + (prod & mask) * EVT_BYTES;
    if (
      (((prod ^ cons) & mask) === 0 && prod !== cons) ||
      !this.#memory.contains(at, EVT_BYTES)
    ) {
      // Full, or the slot is not RAM (software programmed a bad base): the
      // record is lost, as an aborted queue write is on SMMUv3.
      this.dropped++;
      if (((this.#regs.gerror ^ this.#regs.gerrorn) & GERROR_EVTQ_ABT) === 0) {
        this.#regs.gerror ^= GERROR_EVTQ_ABT;
        this.irq("gerror");
      }
      return;
    }
    const safeSid = Number.isSafeInteger(sid) && sid >= 0
      ? sid % 0x100000000
      : 0xffffffff;
    const safeIova = Number.isSafeInteger(iova) && iova >= 0 ? iova : 0;
    writeEventRecord(
      this.#memory,
      at,
      id,
      safeSid,
      read,
      safeIova,
      address,
    );
    this.#regs.evtqProd = (prod + 1) & wrapMask;
    this.events++;
    this.irq("event");
  }

  /**
   * Raise an interrupt.
   *
   * @param line The line.
   */
  irq(line: GenericIrqLine): void {
    this.irqs[line]++;
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
}
