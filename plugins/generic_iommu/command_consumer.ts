/**
 * The generic unit's command queue consumer: reads commands from RAM
 * between CONS and PROD and executes them (config and TLB invalidations,
 * SYNC with its MSI write), stopping with CMDQ_ERR on an illegal one
 * (internal; not exported from mod.ts).
 *
 * @module
 */
import type { PhysicalMemory, Tlb } from "../../core/mod.ts";
import {
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
  GERROR_CMDQ_ERR,
} from "./constants.ts";
import type { Walker } from "./walker.ts";
import { CFG_UNCACHED, type ConfigCache } from "./config_cache.ts";
import type { MicroTlb } from "./micro_tlb.ts";
import type { EventProducer } from "./event_producer.ts";
import type { RegisterFile } from "./registers.ts";

/** What the consumer acts on. */
export interface CommandTargets {
  /** RAM (the queue and SYNC's MSI target). */
  memory: PhysicalMemory;
  /** The registers (queue base and indexes, CR0, GERROR). */
  regs: RegisterFile;
  /** The IOTLB. */
  iotlb: Tlb;
  /** The walker and its caches. */
  walker: Walker;
  /** The config cache. */
  cache: ConfigCache;
  /** The micro TLBs. */
  micro: MicroTlb;
  /** Interrupts (GERROR on an illegal command). */
  events: EventProducer;
  /** Stream IDs. */
  streams: number;
}

/** Consumes the command queue. */
export class CommandConsumer {
  /** Commands executed. */
  commands = 0;
  /** SYNC commands. */
  syncs = 0;
  /** TLB invalidations. */
  tlbis = 0;
  /** Config invalidations. */
  cfgis = 0;
  /** Illegal commands. */
  errors = 0;
  #memory: PhysicalMemory;
  #regs: RegisterFile;
  #iotlb: Tlb;
  #walker: Walker;
  #cache: ConfigCache;
  #micro: MicroTlb;
  #events: EventProducer;
  #streams: number;

  /** @param t What the commands act on. */
  constructor(t: CommandTargets) {
    this.#memory = t.memory;
    this.#regs = t.regs;
    this.#iotlb = t.iotlb;
    this.#walker = t.walker;
    this.#cache = t.cache;
    this.#micro = t.micro;
    this.#events = t.events;
    this.#streams = t.streams;
  }

  /** Consume commands from CONS to PROD; stop on an illegal one. */
  consume(): void {
    if ((this.#regs.cr0 & CR0_CMDQEN) === 0) return;
    if (((this.#regs.gerror ^ this.#regs.gerrorn) & GERROR_CMDQ_ERR) !== 0) {
      return;
    }
    // The size capped at IDR1's; PROD beyond it (written under a larger
    // LOG2SIZE before the base was reprogrammed) is read modulo the wrap.
    const log2 = this.#regs.cmdqLog2;
    const mask = (1 << log2) - 1;
    const wrapMask = (2 << log2) - 1;
    const base = this.#regs.cmdqBase();
    const mem = this.#memory;
    let cons = this.#regs.cmdqCons & wrapMask;
    while (cons !== (this.#regs.cmdqProd & wrapMask)) {
      const at = base + (cons & mask) * CMD_BYTES;
      const ok = mem.contains(at, CMD_BYTES) &&
        this.#execute(
          mem.read32(at),
          mem.read32(at + 4),
          mem.read32(at + 8),
          mem.read32(at + 12),
        );
      if (!ok) {
        this.errors++;
        this.#regs.cmdqCons = (cons | (CERROR_ILL << CONS_ERR_SHIFT)) >>> 0;
        this.#regs.gerror ^= GERROR_CMDQ_ERR;
        this.#events.irq("gerror");
        return;
      }
      this.commands++;
      cons = (cons + 1) & wrapMask;
      this.#regs.cmdqCons = cons;
    }
  }

  #execute(w0: number, w1: number, w2: number, w3: number): boolean {
    switch (w0 & 0xff) {
      case 0x01: // PREFETCH_CONFIG
      case 0x02: // PREFETCH_ADDR
        return true;
      case CMD_CFGI_STE:
      case CMD_CFGI_CD:
        this.cfgis++;
        this.#micro.bump();
        if (w1 < this.#streams) this.#cache.state[w1] = CFG_UNCACHED;
        return true;
      case CMD_CFGI_STE_RANGE: {
        this.cfgis++;
        const range = w2 & 31;
        if (range === 31) this.#cache.invalidate(0, this.#streams);
        else {
          const n = 2 ** (range + 1);
          this.#cache.invalidate(w1 - (w1 % n), n);
        }
        return true;
      }
      case CMD_CFGI_CD_ALL:
        this.cfgis++;
        this.#cache.invalidate(0, this.#streams);
        return true;
      case CMD_TLBI_NH_ALL:
        this.tlbis++;
        this.#micro.bump();
        this.#iotlb.invalidateAll();
        this.#walker.invalidateAll();
        return true;
      case CMD_TLBI_NH_ASID:
        this.tlbis++;
        this.#micro.bump();
        this.#iotlb.invalidateContext(w1 >>> 16);
        this.#walker.invalidateContext(w1 >>> 16);
        return true;
      case CMD_TLBI_NH_VA: {
        this.tlbis++;
        this.#micro.bump();
        const asid = w1 >>> 16;
        const pages = ((w0 >>> 12) & 0xfffff) + 1;
        const addr = w3 * 0x100000000 + ((w2 & 0xfffff000) >>> 0);
        const size = pages * 4096;
        // A range larger than the TLB costs more to probe than a scan of
        // the context; like real units, fall back to invalidating it all.
        if (pages > this.#iotlb.capacity) this.#iotlb.invalidateContext(asid);
        else if (this.#iotlb.size !== 0) {
          this.#iotlb.invalidateRange(asid, addr, size);
        }
        this.#walker.invalidateRange(asid, addr, size);
        return true;
      }
      case CMD_SYNC: {
        this.syncs++;
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
}
