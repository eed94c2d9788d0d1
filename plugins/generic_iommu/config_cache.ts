/**
 * The generic unit's config cache: one slot per stream holding what its
 * stream table entry (and context descriptor) said, fetched from RAM on
 * first use and decoded here (internal; not exported from mod.ts).
 *
 * @module
 */
import type { PhysicalMemory } from "../../core/mod.ts";
import {
  CD_HI_AA64,
  CD_HI_R,
  CD_V,
  STE_BYTES,
  STE_CFG_ABORT,
  STE_CFG_BYPASS,
  STE_CFG_S1,
  STE_CFG_S2,
  STE_HI_S2AA64,
  STE_HI_S2R,
} from "./constants.ts";
import type { LpaeStage } from "./lpae.ts";
import type { MicroTlb } from "./micro_tlb.ts";

/** Slot not filled: fetch the STE. */
export const CFG_UNCACHED = 0;
/** STE says abort. */
export const CFG_ABORT = 1;
/** STE says bypass. */
export const CFG_BYPASS = 2;
/** Translate with the slot's context, root, start level and input size. */
export const CFG_TRANSLATE = 3;
/** Invalid or unreachable STE. */
export const CFG_BAD_STE = 4;
/** Invalid or unreachable CD. */
export const CFG_BAD_CD = 5;

// Fields the validity checks read, as bits of the 32-bit words they sit
// in (CD dword0 low / high word, STE dword1 low word, STE dword2 high
// word); kept here beside the checks that are their only readers.
const CD_ENDI = 1 << 15; // CD dword0 b15
const CD_HI_HD = 1 << 10; // CD dword0 b42
const CD_HI_HA = 1 << 11; // b43
const CD_HI_S = 1 << 12; // b44
const CD_HI_A_BIT = 1 << 14; // b46
const STE_S1STALLD = 1 << 27; // STE dword1 b27
const STE_HI_S2ENDI = 1 << 20; // STE dword2 b52
const STE_HI_S2S = 1 << 25; // STE dword2 b57

/** Per-stream decoded configuration, in typed arrays. */
export class ConfigCache {
  /** `CFG_*` state of each stream. */
  readonly state: Uint8Array;
  /** Context (ASID/VMID) tag of each translating stream. */
  readonly ctx: Int32Array;
  /** Table root PA of each translating stream. */
  readonly root: Float64Array;
  /** Walk start level of each translating stream. */
  readonly start: Uint8Array;
  /** Exclusive IOVA bound of each translating stream, in bytes. */
  readonly inEnd: Float64Array;
  /** 1 when the context asks for F_* event records. */
  readonly record: Uint8Array;
  /** STEs read. */
  steFetches = 0;
  /** CDs read. */
  cdFetches = 0;
  #memory: PhysicalMemory;
  #stage: LpaeStage;
  #inputBits: number;
  #micro: MicroTlb;
  #outEnd: number;

  /**
   * @param memory RAM (the tables live there).
   * @param streams Stream IDs.
   * @param stage Descriptor stage the unit decodes.
   * @param inputBits Largest IOVA width a context may use.
   * @param micro The micro TLBs (a config change invalidates them).
   * @param outputBits Output address width: a table root at or above
   * 2^outputBits is a bad CD (stage 1).
   */
  constructor(
    memory: PhysicalMemory,
    streams: number,
    stage: LpaeStage,
    inputBits: number,
    micro: MicroTlb,
    outputBits = 52,
  ) {
    this.#memory = memory;
    this.#outEnd = 2 ** outputBits;
    this.#stage = stage;
    this.#inputBits = inputBits;
    this.#micro = micro;
    this.state = new Uint8Array(streams);
    this.ctx = new Int32Array(streams);
    this.root = new Float64Array(streams);
    this.start = new Uint8Array(streams);
    this.inEnd = new Float64Array(streams);
    this.record = new Uint8Array(streams);
  }

  /**
   * Forget the slots of `[first, first + count)` (and every micro TLB entry).
   *
   * @param first First stream ID.
   * @param count Streams.
   */
  invalidate(first: number, count: number): void {
    this.#micro.bump();
    const end = Math.min(this.state.length, first + count);
    if (first < end) this.state.fill(CFG_UNCACHED, first, end);
  }

  /**
   * Read the STE (and CD) of `sid` from RAM into its slot.
   *
   * @param sid Stream ID.
   * @param strtab Stream table base PA.
   * @returns The slot's new `CFG_*` state.
   */
  fetch(sid: number, strtab: number): number {
    const mem = this.#memory;
    const ste = strtab + sid * STE_BYTES;
    this.steFetches++;
    let st: number;
    if (!mem.contains(ste, STE_BYTES)) st = CFG_BAD_STE;
    else st = this.#decodeSte(mem, ste, sid);
    this.state[sid] = st;
    return st;
  }

  #decodeSte(mem: PhysicalMemory, ste: number, sid: number): number {
    const lo = mem.read32(ste);
    if ((lo & 1) === 0) return CFG_BAD_STE;
    const config = (lo >>> 1) & 7;
    if (config === STE_CFG_ABORT) return CFG_ABORT;
    if (config === STE_CFG_BYPASS) return CFG_BYPASS;
    const stage = this.#stage;
    if (config === STE_CFG_S1 && stage === 1) {
      const hi = mem.read32(ste + 4);
      // One context descriptor (S1CDMAX 0), no stall model (S1STALLD).
      if ((hi >>> 27) !== 0 || (mem.read32(ste + 8) & STE_S1STALLD) !== 0) {
        return CFG_BAD_STE;
      }
      const cd = (hi & 0xffff) * 0x100000000 + ((lo & 0xffffffc0) >>> 0);
      this.cdFetches++;
      if (!mem.contains(cd, 64)) return CFG_BAD_CD;
      const w0 = mem.read32(cd);
      const w1 = mem.read32(cd + 4);
      const t0sz = w0 & 63;
      const tg0 = (w0 >>> 6) & 3;
      // V and AA64 set, a 4 KiB granule, little-endian tables, A set, and
      // none of S (stall), HA / HD (hardware access / dirty flags), which
      // the model does not implement.
      if (
        (w0 & CD_V) === 0 || (w1 & CD_HI_AA64) === 0 || tg0 !== 0 ||
        (w0 & CD_ENDI) !== 0 || (w1 & CD_HI_A_BIT) === 0 ||
        (w1 & (CD_HI_S | CD_HI_HA | CD_HI_HD)) !== 0
      ) {
        return CFG_BAD_CD;
      }
      const ias = 64 - t0sz;
      if (ias < 32 || ias > this.#inputBits) return CFG_BAD_CD;
      const root = (mem.read32(cd + 12) & 0xffff) * 0x100000000 +
        ((mem.read32(cd + 8) & 0xfffffff0) >>> 0);
      if (root >= this.#outEnd) return CFG_BAD_CD;
      this.ctx[sid] = w1 >>> 16;
      this.record[sid] = (w1 & CD_HI_R) !== 0 ? 1 : 0;
      this.root[sid] = root;
      this.inEnd[sid] = 2 ** ias;
      this.start[sid] = ias > 39 ? 0 : 1;
      return CFG_TRANSLATE;
    }
    if (config === STE_CFG_S2 && stage === 2) {
      const w2 = mem.read32(ste + 16);
      const w3 = mem.read32(ste + 20);
      const ias = 64 - (w3 & 63);
      // AArch64 tables with a 4 KiB granule (S2TG 0), a start level the
      // format has (S2SL0 not 3), little-endian (not S2ENDI), no stall
      // model (not S2S).
      if (
        (w3 & STE_HI_S2AA64) === 0 || ias < 32 || ias > this.#inputBits ||
        ((w3 >>> 14) & 3) !== 0 || ((w3 >>> 6) & 3) === 3 ||
        (w3 & (STE_HI_S2ENDI | STE_HI_S2S)) !== 0
      ) {
        return CFG_BAD_STE;
      }
      this.ctx[sid] = w2 & 0xffff;
      this.record[sid] = (w3 & STE_HI_S2R) !== 0 ? 1 : 0;
      this.root[sid] = (mem.read32(ste + 28) & 0xffff) * 0x100000000 +
        ((mem.read32(ste + 24) & 0xfffffff0) >>> 0);
      this.inEnd[sid] = 2 ** ias;
      this.start[sid] = ias > 39 ? 0 : 1;
      return CFG_TRANSLATE;
    }
    return CFG_BAD_STE;
  }
}
