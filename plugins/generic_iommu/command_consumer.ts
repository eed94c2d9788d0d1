/**
 * The generic unit's command queue consumer: reads commands from RAM
 * between CONS and PROD and executes them (config and TLB invalidations,
 * SYNC with its MSI write), stopping with CMDQ_ERR on an illegal one
 * (CERROR_ILL) or on a command not wholly in RAM (CERROR_ABT). Commands for
 * features the unit lacks (EL2/EL3 regimes, ATS, PRI, stalls) are no-ops;
 * commands that need a stage the unit lacks are illegal (internal; not
 * exported from mod.ts).
 *
 * @module
 */
import type { PhysicalMemory, Tlb } from "../../core/mod.ts";
import {
  CERROR_ABT,
  CERROR_ILL,
  CMD_ATC_INV,
  CMD_BYTES,
  CMD_CFGI_CD,
  CMD_CFGI_CD_ALL,
  CMD_CFGI_STE,
  CMD_CFGI_STE_RANGE,
  CMD_PRI_RESP,
  CMD_RESUME,
  CMD_STALL_TERM,
  CMD_SYNC,
  CMD_TLBI_EL2_ALL,
  CMD_TLBI_EL2_ASID,
  CMD_TLBI_EL2_VA,
  CMD_TLBI_EL2_VAA,
  CMD_TLBI_EL3_ALL,
  CMD_TLBI_EL3_VA,
  CMD_TLBI_NH_ALL,
  CMD_TLBI_NH_ASID,
  CMD_TLBI_NH_VA,
  CMD_TLBI_NH_VAA,
  CMD_TLBI_NSNH_ALL,
  CMD_TLBI_S12_VMALL,
  CMD_TLBI_S2_IPA,
  CONS_ERR_SHIFT,
  CR0_CMDQEN,
  GERROR_CMDQ_ERR,
  REG_IDR0,
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
  // The stages IDR0 advertises (S1P b1, S2P b0): a command for a missing
  // stage is illegal.
  #s1: boolean;
  #s2: boolean;

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
    const idr0 = t.regs.read(REG_IDR0);
    this.#s1 = (idr0 & 2) !== 0;
    this.#s2 = (idr0 & 1) !== 0;
  }

  /**
   * Consume commands from CONS to PROD; stop on an illegal one (CONS.ERR =
   * CERROR_ILL) or on one not wholly in RAM (CERROR_ABT), with GERROR.CMDQ_ERR
   * toggled and a `gerror` interrupt.
   */
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
      const err = !mem.contains(at, CMD_BYTES) ? CERROR_ABT : this.#execute(
          mem.read32(at),
          mem.read32(at + 4),
          mem.read32(at + 8),
          mem.read32(at + 12),
        )
        ? 0
        : CERROR_ILL;
      if (err !== 0) {
        this.errors++;
        this.#regs.cmdqCons = (cons | (err << CONS_ERR_SHIFT)) >>> 0;
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
      case CMD_TLBI_NSNH_ALL:
        this.tlbis++;
        this.#micro.bump();
        this.#iotlb.invalidateAll();
        this.#walker.invalidateAll();
        return true;
      case CMD_TLBI_NH_ASID:
        this.#invalidateContext(w1 >>> 16);
        return true;
      case CMD_TLBI_NH_VA:
        this.tlbis++;
        this.#micro.bump();
        this.#invalidateRange(
          w1 >>> 16,
          w3 * 0x100000000 + ((w2 & 0xfffff000) >>> 0),
          rangeBytes(w0, w2),
        );
        return true;
      case CMD_TLBI_NH_VAA: {
        if (!this.#s1) return false;
        this.tlbis++;
        this.#micro.bump();
        const addr = w3 * 0x100000000 + ((w2 & 0xfffff000) >>> 0);
        const size = rangeBytes(w0, w2);
        for (const ctx of this.#contexts()) {
          this.#invalidateRange(ctx, addr, size);
        }
        return true;
      }
      case CMD_TLBI_S12_VMALL:
        if (!this.#s2) return false;
        this.#invalidateContext(w1 & 0xffff);
        return true;
      case CMD_TLBI_S2_IPA:
        if (!this.#s2) return false;
        this.tlbis++;
        this.#micro.bump();
        this.#invalidateRange(
          w1 & 0xffff,
          (w3 & 0xfffff) * 0x100000000 + ((w2 & 0xfffff000) >>> 0),
          rangeBytes(w0, w2),
        );
        return true;
      case CMD_TLBI_EL3_ALL:
      case CMD_TLBI_EL3_VA:
      case CMD_TLBI_EL2_ALL:
      case CMD_TLBI_EL2_ASID:
      case CMD_TLBI_EL2_VA:
      case CMD_TLBI_EL2_VAA:
      case CMD_ATC_INV:
      case CMD_PRI_RESP:
      case CMD_RESUME:
      case CMD_STALL_TERM:
        // Regimes and features the unit does not have: nothing is cached
        // for them (as QEMU, which accepts them as no-ops).
        return true;
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

  // One TLBI of a whole context (ASID or VMID): every cache that holds it.
  #invalidateContext(ctx: number): void {
    this.tlbis++;
    this.#micro.bump();
    this.#iotlb.invalidateContext(ctx);
    this.#walker.invalidateContext(ctx);
  }

  /**
   * Drop the TLB and walk-cache entries of `ctx` overlapping
   * `[addr, addr + size)`. Nothing is cached at or beyond 2^53 (input sizes
   * are at most 48 bits), so the range is clipped there.
   */
  #invalidateRange(ctx: number, addr: number, size: number): void {
    if (addr >= LIMIT) return;
    const bytes = Math.min(size, LIMIT - addr);
    // A range larger than the TLB costs more to probe than a scan of
    // the context; like real units, fall back to invalidating it all.
    if (bytes / 4096 > this.#iotlb.capacity) {
      this.#iotlb.invalidateContext(ctx);
    } else if (this.#iotlb.size !== 0) {
      this.#iotlb.invalidateRange(ctx, addr, bytes);
    }
    this.#walker.invalidateRange(ctx, addr, bytes);
  }

  /** The context tags of every IOTLB and walk-cache entry (for TLBI_NH_VAA). */
  #contexts(): Set<number> {
    const out = new Set<number>();
    for (const c of [this.#iotlb, ...this.#walker.caches]) {
      if (c.size === 0) continue;
      for (const e of c.entries()) out.add(e.context);
    }
    return out;
  }
}

/** Addresses from 2^53 up hold no cached entry (and are not exact numbers). */
const LIMIT = 2 ** 53;

/**
 * Bytes a range invalidation (TLBI_NH_VA, TLBI_NH_VAA, TLBI_S2_IPA) names:
 * (NUM + 1) * 2^SCALE granules of the size TG gives (TG = 1, 2, 3: 4, 16,
 * 64 KiB), or one 4 KiB page when TG is 0.
 *
 * @param w0 dword0 low word (NUM[16:12], SCALE[24:20]).
 * @param w2 dword1 low word (TG[11:10]).
 * @returns The range length in bytes, 4 KiB to 2^52.
 */
function rangeBytes(w0: number, w2: number): number {
  const tg = (w2 >>> 10) & 3;
  if (tg === 0) return 4096;
  const num = (w0 >>> 12) & 31;
  const scale = (w0 >>> 20) & 31;
  return (num + 1) * 2 ** (scale + 2 * tg + 10);
}
