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
 * 5. Micro TLB (per stream, direct-mapped: see micro_tlb.ts), then IOTLB
 *    lookup (tag = context), else walk (walk caches, then RAM):
 *    F_TRANSLATION / F_ADDR_SIZE / F_ACCESS (fault `permission`) /
 *    F_WALK_EABT (fault `bus-error`).
 * 6. Permission check against the leaf: F_PERMISSION, fault `permission`.
 *
 * F_TRANSLATION / F_ADDR_SIZE / F_ACCESS / F_PERMISSION are recorded only
 * when the context asks (CD.R / STE.S2R), F_WALK_EABT always (its record
 * has CLASS 1, a table fetch, and the fetch address); every event only
 * while CR0.EVTQEN is set; a full event queue drops the record and
 * raises GERROR.EVTQ_ABT once. The model has no stall mode: a faulting
 * access is terminated.
 *
 * Simplifications (documented, deliberate): a linear stream table only; one
 * context descriptor per domain (no substreams); event-queue PROD/CONS in
 * the first register page; a config cache with one slot per stream
 * (unbounded, like QEMU's); TLBI_NH_VA carries a 20-bit page count instead
 * of SMMUv3's NUM/SCALE encoding; invalidations complete at once; the
 * micro TLB (32 entries per stream by default, as gem5's per device
 * interface) is direct-mapped by the low bits of the 4 KiB page number
 * instead of fully associative with round-robin replacement, so a hit is
 * one probe rather than a 32-way scan (speed of the model; see
 * micro_tlb.ts), and every invalidation drops all of it.
 *
 * This file is the unit's shell and its translation path. The hot path
 * reads one per-stream row and one micro TLB entry (micro_tlb.ts): a micro
 * TLB hit is decided there; a stream whose row says "config checked in
 * this generation" goes straight to the IOTLB (on a unit without micro
 * TLBs, a hit in the IOTLB's most recently hit page size is finished
 * inline, the rest out of line); everything else (first use,
 * a generation bump by any invalidation or CR0/stream-table write, bypass,
 * abort, faults) takes the slow path, which checks in the order above.
 * On an IOTLB miss, the walker's commonest walk (the level-2 walk cache's
 * hit table names a level-3 table the walker knows: one descriptor read;
 * with no walk caches, a walk from level 0 whose table descriptors equal
 * the walker's memos) is finished by the out-of-line rest itself, with the
 * IOTLB fill inlined and the descriptors read before the IOTLB lookup (see
 * Walker.inlinePath()); every other walk, and every walk fault, is
 * Walker.walkIn's.
 * Registers, the config cache, the command consumer, the event producer
 * and statistics live in their own files.
 *
 * @module
 */
import {
  ACCESS_READ,
  ACCESS_WRITE,
  checkAddress,
  checkRegisterValue,
  type FaultReason,
  hex,
  IommuError,
  type IommuFault,
  type IommuHardware,
  type PhysicalMemory,
  type ProbeContext,
  throwBadAccess,
} from "../../core/mod.ts";
import { Tlb } from "../../core/mod.ts";
import {
  CR0_SMMUEN,
  EVT_C_BAD_CD,
  EVT_C_BAD_STE,
  EVT_C_BAD_STREAMID,
  EVT_F_ADDR_SIZE,
  EVT_F_PERMISSION,
  GBPA_ABORT,
  STE_BYTES,
  STE_CFG_BYPASS,
} from "./constants.ts";
import { Walker, type WalkerTableMemos } from "./walker.ts";
import type {
  GenericHardwareConfig,
  GenericIrqListener,
  GenericStreamCounters,
} from "./hardware_types.ts";
import {
  CFG_ABORT,
  CFG_BAD_CD,
  CFG_BYPASS,
  CFG_TRANSLATE,
  CFG_UNCACHED,
  ConfigCache,
} from "./config_cache.ts";
import {
  MicroTlb,
  microTlbEntries,
  ROW_CFG_GEN,
  ROW_CTX,
  ROW_IN_END,
  ROW_STRIDE,
  ROW_TRANSLATIONS,
  ROW_U_BLOCK,
  ROW_U_HITS,
  U_BASE,
  U_DELTA_PERM,
  U_END,
} from "./micro_tlb.ts";
import { RegisterFile } from "./registers.ts";
import { EventProducer } from "./event_producer.ts";
import { CommandConsumer } from "./command_consumer.ts";
import {
  FAULT_KINDS,
  hardwareCounters,
  TranslationStats,
} from "./hardware_stats.ts";

/** A builtin as a module constant: less bytecode in translate(). */
const isSafe = Number.isSafeInteger;

// Initial values of fields translate() reads: a field declared without one
// starts as undefined, so V8 types it "any value" and optimised code checks
// every load (a Smi tag or an array map); one of the kind the field keeps
// lets those loads go unchecked.
const NO_ROWS = new Float64Array(0);

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
  #outEnd: number;
  #regs: RegisterFile;
  #cache: ConfigCache;
  #events: EventProducer;
  #commands: CommandConsumer;
  #stats: TranslationStats;
  // The translate path reads the config cache arrays and the stream rows
  // (owned by their objects, never reallocated) through its own fields.
  #cfgState: Uint8Array;
  #cfgCtx: Int32Array;
  #cfgRoot: Float64Array;
  #cfgStart: Uint8Array;
  #cfgInEnd: Float64Array;
  #cfgRecord: Uint8Array;
  #streams = 0;
  #micro: MicroTlb;
  // 1 when the micro TLBs are on (a Smi: a boolean field is tested
  // against every falsy value in optimised code).
  #microOn: number;
  // The micro TLB's entry mask; -1 when there is no micro TLB and the
  // IOTLB can hold something: translate() then skips the micro TLB probe
  // and tries the IOTLB's hit inline (one register test on either path).
  #uMask = 0;
  #rows: Float64Array = NO_ROWS;
  #sWalks: Float64Array;
  #bypassed = 0;
  #cfgMisses = 0;
  // Accesses the slow path counted per stream (ROW_TRANSLATIONS) that
  // never reached the micro TLB (bypass, aborts, bad configs, address
  // size): the counted accesses that are not micro hits minus these are
  // the micro TLB's misses.
  #noProbe = 0;
  #lastSpan = 0;
  #lastFault: IommuFault | null = null;
  #pa = 0.5; // a double from the start: stores never box
  // (Declared last: the fields translate() reads keep their places in
  // the object.)
  // The walker's inline path (Walker.inlinePath()) when the output size
  // is 2^32 to 2^48: 1 when the level-2 walk cache can hold entries, 2
  // when no walk cache can (the table walk from the root), else 0.
  #inline: number;
  #wHits: Float64Array;
  #wState: Float64Array;
  #wViews: readonly Uint32Array[];
  #wTables: WalkerTableMemos;
  #wNums: Float64Array;
  #wOffs: Int32Array;
  #wL2: Float64Array;
  #wL2Views: readonly Uint32Array[];
  #wL2Offs: Int32Array;
  // outputBits - 32: a page is inside the output size when the high
  // word of its address shifted by this is 0.
  #outShift: number;
  // 1 for stage 1 (a Smi: a boolean field is tested against every
  // falsy value in optimised code).
  #stage1: number;

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM.
   * @param ctx Probe context (fault reporting).
   * @param config Parameters.
   * @throws {IommuError} `EINVAL`/`ERANGE` for bad cache shapes (IOTLB,
   * walk caches, micro TLB entries).
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
    this.#outEnd = 2 ** config.outputBits;
    const n = config.streamIds;
    const micro = new MicroTlb(n, microTlbEntries(config.microTlb));
    this.iotlb = new Tlb(config.iotlb);
    // Direct invalidations of the public `iotlb` must drop the micro TLBs'
    // copies too (the command queue's TLBIs bump them as well). A listener,
    // not a subclass: another class of Tlb would make every Tlb's hit
    // slower (polymorphic field access inside Tlb.lookup).
    this.iotlb.onInvalidate(() => micro.bump());
    this.walker = new Walker(memory, config.stage, config.walkCache);
    const path = this.walker.inlinePath();
    this.#wHits = path.hits;
    this.#wState = path.state;
    this.#wViews = path.views;
    const tables = path.tables;
    this.#wTables = tables;
    this.#wNums = tables.nums;
    this.#wOffs = tables.offs;
    this.#wL2 = tables.l2;
    this.#wL2Views = tables.l2Views;
    this.#wL2Offs = tables.l2Offs;
    const ob = config.outputBits;
    this.#outShift = ob - 32;
    const caches = this.walker.caches;
    this.#inline = !(Number.isInteger(ob) && ob >= 32 && ob <= 48)
      ? 0
      : caches[2]!.capacity !== 0
      ? 1
      : caches.every((c) => c.capacity === 0)
      ? 2
      : 0;
    this.#stage1 = config.stage === 1 ? 1 : 0;
    this.#streams = n;
    this.#micro = micro;
    this.#uMask = !micro.enabled && this.iotlb.capacity > 0 ? -1 : micro.mask;
    const cache = new ConfigCache(
      memory,
      n,
      config.stage,
      config.inputBits,
      micro,
      config.outputBits,
    );
    this.#cache = cache;
    const stats = new TranslationStats(n);
    this.#stats = stats;
    this.#cfgState = cache.state;
    this.#cfgCtx = cache.ctx;
    this.#cfgRoot = cache.root;
    this.#cfgStart = cache.start;
    this.#cfgInEnd = cache.inEnd;
    this.#cfgRecord = cache.record;
    this.#microOn = micro.enabled ? 1 : 0;
    this.#rows = micro.rows;
    this.#sWalks = stats.sWalks;
    const regs = new RegisterFile(config, {
      configChanged: () => micro.bump(),
      consume: () => this.#commands.consume(),
      invalidateConfigs: (first, count) => cache.invalidate(first, count),
    });
    this.#regs = regs;
    this.#events = new EventProducer(memory, regs);
    this.#commands = new CommandConsumer({
      memory,
      regs,
      iotlb: this.iotlb,
      walker: this.walker,
      cache,
      micro,
      events: this.#events,
      streams: n,
    });
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
      translations:
        this.#rows[(streamId + 1) * ROW_STRIDE + ROW_TRANSLATIONS]! +
        this.#rows[(streamId + 1) * ROW_STRIDE + ROW_U_HITS]!,
      walks: this.#stats.sWalks[streamId]!,
      faults: this.#stats.sFaults[streamId]!,
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
   * @throws {IommuError} `EINVAL` when `streamId` or `iova` is not a number,
   * `iova` is not a non-negative safe integer, or `access` is neither
   * `ACCESS_READ` (1) nor `ACCESS_WRITE` (2) (nothing is counted or
   * recorded).
   */
  translate(streamId: number, iova: number, access: number): number {
    // What the out-of-line rest does: 3 the slow path, 0 a micro TLB
    // permission fault, 1 an IOTLB hit that refuses `access`, 2 the IOTLB
    // lookup (then a hit, or 4: a walk). One call site for all of them
    // keeps this method small enough to inline into its callers together
    // with the IOTLB probe.
    let rest = 3;
    // The micro TLB entry probed (passed to the rest for its fill), -1 none.
    let u = -1;
    // The typeof test keeps a bigint away from `>>>` (isSafeInteger is
    // false for one).
    if (
      typeof streamId === "number" && (streamId >>> 0) === streamId &&
      streamId < this.#streams && isSafe(iova) && iova >= 0 &&
      (access === 1 || access === 2)
    ) {
      // Row and entry slots as literals (see micro_tlb.ts: ROW_STRIDE 8,
      // ROW_CFG_GEN 0, ROW_IN_END 1, ROW_TRANSLATIONS 2, ROW_U_HITS 3,
      // ROW_U_BLOCK 4, ROW_CTX 5; U_GEN 0, U_BASE 1, U_END 2,
      // U_DELTA_PERM 3; a test pins them): an imported constant costs a
      // load and a check per use in optimised code, and the smaller
      // bytecode keeps translate cheap to inline into callers. Entries and
      // config copies of an earlier generation fail the compares and take
      // the slow path. A row starts at a multiple of 8 and an entry at a
      // multiple of 4, so `i | 5` is `i + 5` without the overflow check
      // optimised code adds to an int32 `+`.
      const r = this.#rows;
      const i = (streamId + 1) << 3;
      const gen = r[0];
      const m = this.#uMask;
      // Block offsets are below 2^31 (array indexes): `| 0` keeps the
      // index arithmetic in int32. A unit with micro TLBs off but an IOTLB
      // (m -1) does not probe; with neither, the block is one that never
      // hits.
      if (
        m >= 0 &&
        r[u = (r[i | 4]! | 0) + (((iova >>> 12) & m) << 2)] === gen &&
        iova >= r[u | 1]! && iova < r[u | 2]!
      ) {
        // A valid micro entry implies a valid config row of this generation.
        const dp = r[u | 3]!;
        const perm = dp & 3;
        if ((perm & access) === access) {
          r[i | 3]!++;
          this.#lastSpan = r[u | 2]! - iova;
          return iova + (dp - perm);
        }
        rest = 0;
      } else if (r[i] === gen && iova < r[i | 1]!) {
        r[i | 2]!++;
        rest = 2;
        // No micro TLB (so nothing to fill) and an IOTLB: a hit in the
        // size hit last that grants `access` finishes here. Anything else
        // is the rest's full lookup: with micro TLBs, an IOTLB hit fills
        // one, and a miss would probe that size twice. The context comes
        // from the row (an int32: `| 0` is exact).
        if (m < 0) {
          const tlb = this.iotlb;
          // A PA when the entry grants `access` (-2: a hit that does not).
          const pa = tlb.lookupHitIf(r[i | 5]! | 0, iova, access);
          if (pa >= 0) {
            this.#lastSpan = tlb.hitEnd - iova;
            return pa;
          }
          if (pa === -2) rest = 1;
        }
      }
    }
    return this.#rest(streamId, iova, access, rest, u) === 0 ? this.#pa : -1;
  }

  // Everything translate() does not finish inline (`rest` as there): 0
  // with the PA in #pa, or -1 after reporting a fault. For an IOTLB hit
  // (1) the entry is in the `last*` getters; a miss (4) walks, which fills
  // the IOTLB; both then fill the micro TLB, check the permission and set
  // the span.
  //
  // One method over V8's 460-byte inlining limit on purpose: it is never
  // inlined, so callers that inline translate() keep their inlining
  // budget for the IOTLB lookup. Never a double in or out: a call that is
  // not inlined boxes one (a heap allocation per access).
  //
  // `at`: the micro TLB entry translate() probed (its slot in the rows,
  // the one a 4 KiB fill writes), or -1 when it did not probe one.
  #rest(
    sid: number,
    iova: number,
    access: number,
    rest: number,
    at: number,
  ): number {
    if (rest === 3) return this.#translateSlow(sid, iova, access);
    if (rest === 0) {
      // A micro TLB hit on an entry that does not grant `access`: a miss
      // of the micro TLB (counted as such in counters()) and a permission
      // fault, as the IOTLB path would find.
      this.#rows[((sid + 1) << 3) + 2]!++;
      return this.#permissionFault(sid, iova, access);
    }
    let size: number;
    let perm: number;
    let off: number;
    let pa: number;
    // The walker's common cases, which the walk below finishes itself (no
    // call, and the IOTLB fill inlined): a level-2 hit-table hit whose
    // level-3 table's view is known (hit-table and state slots as
    // literals, see walk_cache.ts and Walker.inlinePath()), or with no
    // walk cache, a walk from level 0 whose descriptors at levels 0-2
    // equal the walker's memos. The level-3 descriptor is read before the
    // IOTLB lookup, which cannot change the walk caches or the memos, so
    // that the two reads overlap. `j` is the hit slot, -2 for the memo
    // walk, else -1.
    let j = -1;
    let lo = 0;
    let hi = 0;
    const ctx = this.#cfgCtx[sid]!;
    if (rest === 2) {
      if (this.#inline === 1 && this.#cfgStart[sid]! <= 2) {
        const s = this.#wState;
        const h = this.#wHits;
        const k = ((((iova * s[1]!) >>> 0) ^ ctx) & s[2]!) << 3;
        const kept = h[k | 7]!;
        if (
          iova >= h[k]! && iova < h[k | 1]! && h[k | 2] === ctx &&
          h[k | 3] === s[0] && kept >= 0
        ) {
          const words = this.#wViews[kept >>> 14]!;
          const at = (kept & 16383) + (((iova >>> 12) & 511) << 1);
          lo = words[at]!;
          hi = words[at | 1]! & 0xffff;
          j = k;
        }
      } else if (this.#inline === 2 && this.#cfgStart[sid] === 0) {
        // Walker.walkIn's table walk when its root view and memos hold
        // (see Walker.inlinePath()): the three table descriptors read as
        // doubles, each equal to its level's memo (NaN, none, equals
        // nothing), and the level-3 descriptor read first from the table
        // the level-2 slot names (a zero view before it names one).
        const n = this.#wNums;
        if (this.#cfgRoot[sid] === n[2] && this.#outEnd === n[3]) {
          const ilo = iova >>> 0;
          const i2 = (ilo >>> 21) & 511;
          const words = this.#wL2Views[i2]!;
          const at = this.#wL2Offs[i2]! + (((ilo >>> 12) & 511) << 1);
          const plo = words[at]!;
          const phi = words[at | 1]!;
          const ihi = (iova * 2.3283064365386963e-10) >>> 0;
          const o = this.#wOffs;
          const t = this.#wTables;
          if (
            t.root[o[0]! + ((ihi >>> 7) & 511)] === n[0] &&
            t.l0[o[1]! + (((ilo >>> 30) | (ihi << 2)) & 511)] === n[1] &&
            t.l1[o[2]! + i2] === this.#wL2[i2]
          ) {
            lo = plo;
            hi = phi & 0xffff;
            j = -2;
          }
        }
      }
      // The size hit last does not hold it: the full lookup (every size,
      // counted), which may still hit. lookupOne is lookup with a cheaper
      // probe when one size is present (miss + walk measured 2-3 ns
      // faster), and small enough that insert below is inlined too. With
      // no micro TLB, translate() has just probed the IOTLB's last-hit
      // size (lookupHitIf): lookupAfterMiss is lookupOne without probing
      // that size again when it is the only one (miss + walk with the
      // micro TLB off measured 3 ns faster).
      const tlb = this.iotlb;
      rest = (this.#uMask < 0
          ? tlb.lookupAfterMiss(ctx, iova)
          : tlb.lookupOne(ctx, iova)) < 0
        ? 4
        : 1;
    }
    if (rest === 1) {
      const tlb = this.iotlb;
      size = tlb.lastPageSize;
      perm = tlb.lastPerm;
      // The offset in the page, exact for any entry size (an entry put
      // into the public `iotlb` directly may exceed the 1 GiB walks fill).
      off = iova - (tlb.lastPageEndIf(0) - size);
      pa = tlb.lastPaBase + off;
    } else {
      this.#sWalks[sid]!++;
      const w = this.walker;
      // The common case (see above) with a valid page (0b11) with the
      // access flag (bit 10) below 2^outputBits: it counts and sets
      // exactly what Walker.walkIn does for that walk. Anything else
      // (including every fault) is walkIn's.
      let code = 1;
      size = 4096;
      perm = 0;
      off = 0;
      pa = 0;
      if (
        j !== -1 && (lo & 0x403) === 0x403 && (hi >>> this.#outShift) === 0
      ) {
        w.walks++;
        w.faultAddress = 0;
        const reads = w.reads;
        if (j >= 0) {
          const s = this.#wState;
          s[3]!++;
          s[4] = j;
        } else {
          reads[0]!++;
          reads[1]!++;
          reads[2]!++;
        }
        reads[3]!++;
        // lpae.leafAccess(lo, stage) written out: calling it here changes
        // what V8 inlines into #rest, and miss + walk measured 3-4 ns slower.
        perm = this.#stage1 === 1
          ? ((lo & 0x80) === 0 ? 3 : 1)
          : (lo >>> 6) & 3;
        // The page number (a Smi while below 2^31) times 4096: written as
        // `hi * 2^32 + (lo & ~0xfff)`, V8 speculated the add on safe
        // integers (a checked conversion of the double sum back to an
        // integer), and miss + walk measured 2 ns slower.
        const base = ((lo >>> 12) + hi * 0x100000) * 4096;
        w.leafPa = base;
        w.leafSize = 4096;
        w.leafAccess = perm;
        off = (iova >>> 0) & 4095;
        const tlb = this.iotlb;
        if (tlb.capacity !== 0) {
          tlb.insert(ctx, iova - off, 4096, base, perm);
        }
        pa = base + off;
        code = 0;
      }
      if (code !== 0) {
        code = w.walkIn(
          ctx,
          this.#cfgRoot,
          sid,
          this.#cfgStart[sid]!,
          iova,
          this.#outEnd,
          this.iotlb,
        );
        if (code !== 0) {
          return this.#fault(
            sid,
            iova,
            access,
            code === 0x11 // EVT_F_ADDR_SIZE
              ? 4
              : code === 0x0b // EVT_F_WALK_EABT
              ? 6
              : code === 0x12 // EVT_F_ACCESS
              ? 5
              : 3,
            code,
            // A descriptor fetch that aborts is always recorded; CD.R /
            // STE.S2R gate the translation faults only.
            code === 0x0b || this.#cfgRecord[sid] === 1,
            w.faultAddress,
          );
        }
        size = w.leafSize;
        perm = w.leafAccess;
        // Leaves are at most 1 GiB (level-0 blocks fault): the offset is
        // in the low 32 bits, which `>>> 0` keeps exactly for any safe
        // integer.
        off = (iova >>> 0) & (size - 1);
        pa = w.leafPa + off;
      }
    }
    if (this.#microOn === 1) {
      if (size === 4096) {
        // The entry of this 4 KiB page (slots as in translate()): the one
        // translate() probed, when it did.
        const r = this.#rows;
        const u = at >= 0 ? at : (r[((sid + 1) << 3) | 4]! | 0) +
          (((iova >>> 12) & this.#uMask) << 2);
        // `pa - (iova - p)`, not `pa - iova + p`: the same value (exact
        // either way); written the second way, V8 compiled its final add
        // as a checked safe-integer add.
        const pb = iova - off;
        r[u] = r[0]!;
        r[u | 1] = pb;
        r[u | 2] = pb + 4096;
        r[u | 3] = pa - (iova - (perm & 3));
      } else this.#fillLeaf(sid, iova - off, size, pa - off, perm);
    }
    if ((perm & access) !== access) {
      return this.#permissionFault(sid, iova, access);
    }
    this.#lastSpan = size - off;
    this.#pa = pa;
    return 0;
  }

  // A leaf larger than 4 KiB fills every entry one of its 4 KiB pages
  // indexes (all of them from 2 MiB up with the default 32), so an access
  // anywhere in it hits after one miss, as with a fully associative micro
  // TLB.
  #fillLeaf(
    sid: number,
    base: number,
    size: number,
    pa: number,
    perm: number,
  ): void {
    const r = this.#rows;
    const block = r[(sid + 1) * ROW_STRIDE + ROW_U_BLOCK]! | 0;
    const mask = this.#uMask;
    const gen = r[0]!;
    const end = base + size;
    const dp = pa - base + (perm & 3);
    const n = Math.min(mask + 1, size / 4096);
    const first = base >>> 12;
    for (let k = 0; k < n; k++) {
      const u = block + (((first + k) & mask) << 2);
      r[u] = gen;
      r[u + U_BASE] = base;
      r[u + U_END] = end;
      r[u + U_DELTA_PERM] = dp;
    }
  }

  // Every access the fast tests of translate() refuse, checked in the
  // documented order: 0 with the PA in #pa, or -1 after reporting a fault.
  // A stream found translating gets its config row (licence for the fast
  // path until the next generation).
  #translateSlow(streamId: number, iova: number, access: number): number {
    if (typeof streamId !== "number") {
      throw new IommuError(
        "EINVAL",
        `stream ID must be a number, got ${typeof streamId}`,
      );
    }
    checkAddress(iova, "IOVA");
    // Before anything is counted or recorded: the fast tests of
    // translate() let only these two through.
    if (access !== ACCESS_READ && access !== ACCESS_WRITE) {
      throwBadAccess(access);
    }
    const regs = this.#regs;
    if (
      !(streamId >= 0 && streamId < regs.streamLimit &&
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
    if ((regs.cr0 & CR0_SMMUEN) === 0) {
      if ((regs.gbpa & GBPA_ABORT) !== 0) {
        return this.#fault(streamId, iova, access, 2, -1, false, 0);
      }
      return this.#identity(iova);
    }
    const r = this.#rows;
    const i = (streamId + 1) * ROW_STRIDE;
    r[i + ROW_TRANSLATIONS]!++;
    this.#noProbe++;
    let st = this.#cfgState[streamId]!;
    if (st === CFG_UNCACHED) {
      this.#cfgMisses++;
      st = this.#cache.fetch(streamId, regs.strtabBase());
    }
    if (st === CFG_TRANSLATE) {
      // The stream's micro TLB block, on its first translation (this may
      // replace the rows array).
      this.#micro.assign(streamId);
      const rows = this.#micro.rows;
      this.#rows = rows;
      rows[i + ROW_CFG_GEN] = rows[0]!;
      rows[i + ROW_IN_END] = this.#cfgInEnd[streamId]!;
      // The context, for translate()'s inline IOTLB hit: valid as long as
      // the row (a new config is fetched only after a generation bump).
      rows[i + ROW_CTX] = this.#cfgCtx[streamId]!;
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
      this.#noProbe--;
      return this.#rest(streamId, iova, access, 2, -1);
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

  #permissionFault(sid: number, iova: number, access: number): number {
    return this.#fault(
      sid,
      iova,
      access,
      5,
      EVT_F_PERMISSION,
      this.#cfgRecord[sid] === 1,
      0,
    );
  }

  // An untranslated access: 0 with `iova` in #pa.
  #identity(iova: number): number {
    this.#bypassed++;
    this.#lastSpan = Number.MAX_SAFE_INTEGER - iova;
    this.#pa = iova;
    return 0;
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
    this.#stats.faults[kind]!++;
    if (sid >= 0 && sid < this.streamIds && (sid | 0) === sid) {
      this.#stats.sFaults[sid]!++;
    }
    const write = access === ACCESS_WRITE;
    if (eventId >= 0 && record) {
      this.#events.post(eventId, sid, !write, iova, address);
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

  /**
   * Be told about interrupts (event queue non-empty, global error).
   *
   * @param listener Called with the line.
   * @returns A function removing the listener.
   */
  onInterrupt(listener: GenericIrqListener): () => void {
    return this.#events.onInterrupt(listener);
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
        streamId < this.#regs.streamLimit)
    ) return false;
    if ((this.#regs.cr0 & CR0_SMMUEN) === 0) {
      return (this.#regs.gbpa & GBPA_ABORT) === 0;
    }
    const ste = this.#regs.strtabBase() + streamId * STE_BYTES;
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

  /**
   * Read a 32-bit register; reserved offsets read as zero.
   *
   * @param offset Byte offset in the register window.
   * @returns The value, an unsigned 32-bit number.
   * @throws {IommuError} `EINVAL` for an unaligned or malformed offset;
   * `ERANGE` beyond the window.
   */
  readRegister(offset: number): number {
    return this.#regs.read(offset);
  }

  /**
   * Write a 32-bit register; writes to read-only or reserved offsets are
   * ignored. Writing CMDQ_PROD rings the doorbell: the unit consumes
   * commands at once (when CMDQEN is set and no error is pending).
   *
   * @param offset Byte offset.
   * @param value The value (taken modulo 2^32).
   * @throws {IommuError} as {@linkcode GenericIommuHardware.readRegister};
   * `EINVAL` for a value that is not a 32-bit integer (-2^31 to 2^32 - 1).
   */
  writeRegister(offset: number, value: number): void {
    checkRegisterValue(offset, value);
    this.#regs.write(offset, value);
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
    const translations = this.#micro.translations();
    const uHits = this.#micro.hits();
    return hardwareCounters({
      translate: {
        // Every access counted per stream went through one config lookup.
        translations: translations,
        bypassed: this.#bypassed,
        cfgLookups: translations,
        cfgMisses: this.#cfgMisses,
        microLookups: this.#microOn === 1 ? translations - this.#noProbe : 0,
        microHits: uHits,
      },
      stats: this.#stats,
      iotlb: this.iotlb,
      walker: this.walker,

      cache: this.#cache,
      commands: this.#commands,
      events: this.#events,
    });
  }
}
