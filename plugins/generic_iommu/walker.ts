/**
 * The hardware's page-table walker: reads LPAE descriptors from RAM, with one
 * walk cache per intermediate level (levels 0-2, each caching the address of
 * the next-level table for the region its descriptor covers).
 *
 * The walk's hot code spells event IDs (EVT_F_*), descriptor bits and
 * level sizes as literals: each use of an imported constant costs a load
 * and a check in optimised code (a few ns per walk).
 *
 * @module
 */
import {
  checkAddress,
  checkSize,
  hex,
  IommuError,
  type PhysicalMemory,
  type Tlb,
  type TlbOptions,
} from "../../core/mod.ts";
import {
  EVT_F_ADDR_SIZE,
  EVT_F_TRANSLATION,
  EVT_F_WALK_EABT,
} from "./constants.ts";
import { leafAccess, LEVEL_SIZE, type LpaeStage } from "./lpae.ts";
import { WalkCache } from "./walk_cache.ts";

// Slots of the walker's chunk-view cache (64 KiB chunks: 16 MiB of tables).
const CHUNK_SLOTS = 256;
const EMPTY_WORDS = new Uint32Array(0);
const EMPTY_DOUBLES = new Float64Array(0);
// A chunk-sized view of nothing (zeros): what a level-2 memo slot names
// before it memoises a table, so a read through any slot stays in bounds.
const NO_TABLE = new Uint32Array(16384);

/**
 * Default walk-cache shapes for levels 0, 1 and 2: gem5's SMMUv3 walk cache
 * holds 4/28/348 entries per level, 4-way, round-robin; the model rounds to
 * power-of-two set counts (4, 32 and 256 entries).
 */
export const DEFAULT_WALK_CACHE: readonly TlbOptions[] = [
  { sets: 1, ways: 4, replacement: "round-robin" },
  { sets: 8, ways: 4, replacement: "round-robin" },
  { sets: 64, ways: 4, replacement: "round-robin" },
];

// The Walker constructor's argument checks (see its @throws).
function checkWalkerArgs(
  memory: unknown,
  stage: unknown,
  walkCache: unknown,
): void {
  // By shape, not instanceof: RAM from another copy of the core module
  // works as well.
  const m = memory as Partial<PhysicalMemory> | null;
  if (
    typeof m !== "object" || m === null || typeof m.read32 !== "function" ||
    typeof m.view32 !== "function" || !Number.isSafeInteger(m.base) ||
    !Number.isSafeInteger(m.end)
  ) {
    throw new IommuError(
      "EINVAL",
      `walker memory ${describe(memory)} is not a PhysicalMemory`,
    );
  }
  if (stage !== 1 && stage !== 2) {
    throw new IommuError(
      "EINVAL",
      `walker stage ${describe(stage)} is not 1 or 2`,
    );
  }
  if (!Array.isArray(walkCache) || walkCache.length > 3) {
    throw new IommuError(
      "EINVAL",
      `walk cache shapes ${
        describe(walkCache)
      } are not an array of at most 3 (levels 0, 1, 2)`,
    );
  }
  for (let l = 0; l < walkCache.length; l++) {
    const shape: unknown = walkCache[l];
    if (shape !== undefined && (typeof shape !== "object" || shape === null)) {
      throw new IommuError(
        "EINVAL",
        `walk cache shape ${describe(shape)} of level ${l} is not an object`,
      );
    }
  }
}

// Walker.walk's argument checks (see its @throws).
function checkWalkArgs(
  ctx: number,
  root: number,
  startLevel: number,
  iova: number,
  outEnd: number,
): void {
  checkAddress(ctx, "walk context");
  checkAddress(root, "root table address");
  checkAddress(iova, "walk IOVA");
  if (iova >= 2 ** 48) {
    throw new IommuError(
      "EINVAL",
      `walk IOVA ${hex(iova)} is not below 2^48 (the largest input size)`,
    );
  }
  if (
    startLevel !== 0 && startLevel !== 1 && startLevel !== 2 && startLevel !== 3
  ) {
    throw new IommuError(
      "EINVAL",
      `walk start level ${describe(startLevel)} is not 0, 1, 2 or 3`,
    );
  }
  checkSize(outEnd, "walk output end");
}

// A bad argument for a message: numbers in hex, arrays with their length.
function describe(value: unknown): string {
  if (typeof value === "number") return hex(value);
  if (Array.isArray(value)) return `(array of ${value.length})`;
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || typeof value !== "object") return String(value);
  return `(${value.constructor?.name ?? "object"})`;
}

// The table walk's descriptor memos as translate's inline walk reads
// them (WalkerInlinePath.tables): copies of the Walker's own fields,
// written wherever those change (rarely), so the walker's own walk keeps
// reading fields.
class TableMemos {
  readonly nums: Float64Array = new Float64Array(4).fill(NaN);
  readonly offs: Int32Array = new Int32Array(3);
  root: Float64Array = EMPTY_DOUBLES;
  l0: Float64Array = EMPTY_DOUBLES;
  l1: Float64Array = EMPTY_DOUBLES;
  constructor(
    readonly l2: Float64Array,
    readonly l2Views: readonly Uint32Array[],
    readonly l2Offs: Int32Array,
  ) {}
}

/**
 * The descriptor memos of a table walk that starts at the root (see
 * {@linkcode Walker.inlinePath}). Every descriptor offset is in the
 * units of the view it indexes.
 */
export interface WalkerTableMemos {
  /**
   * 0: the level-0 memo, the double the 8 bytes of the last table
   * descriptor read there read as (NaN: none); 1: the same for level 1; 2:
   * the root table address the walker has views of (-1: none, or a root it
   * reads word by word); 3: the output bound (bytes) the memos hold for.
   */
  readonly nums: Float64Array;
  /**
   * The first double of the root table, of the level-1 table the level-0
   * memo names and of the level-2 table the level-1 memo names, in
   * `root`, `l0` and `l1`.
   */
  readonly offs: Int32Array;
  /** The root table's RAM chunk as doubles. */
  readonly root: Float64Array;
  /** The RAM chunk of the table the level-0 memo names, as doubles. */
  readonly l0: Float64Array;
  /** The RAM chunk of the table the level-1 memo names, as doubles. */
  readonly l1: Float64Array;
  /**
   * Level-2 memos by the descriptor's index in its table: the double the
   * descriptor read as (NaN: none).
   */
  readonly l2: Float64Array;
  /** The RAM chunk of the level-3 table each level-2 memo names. */
  readonly l2Views: readonly Uint32Array[];
  /** That table's first word in its chunk. */
  readonly l2Offs: Int32Array;
}

/**
 * See {@linkcode Walker.inlinePath}.
 */
export interface WalkerInlinePath {
  /** The level-2 walk cache's hit table (8 numbers per slot). */
  readonly hits: Float64Array;
  /** Its state (`S_*` slots of walk_cache.ts). */
  readonly state: Float64Array;
  /** Views of RAM chunks, by the id slot 7 of a hit-table slot names. */
  readonly views: readonly Uint32Array[];
  /**
   * The descriptor memos of a table walk from the root (live: the walker
   * updates them in place). A walk from level 0 whose root is `nums[2]`,
   * with the output bound `nums[3]`, reading at levels 0, 1 and 2
   * descriptors equal to the memos of their level (slot), finds the
   * level-3 table those memos name.
   */
  readonly tables: WalkerTableMemos;
}

/**
 * Walks tables in RAM for the hardware model. Results of the last walk are
 * left in fields so a walk allocates nothing.
 */
export class Walker {
  /** Walk caches for levels 0, 1, 2 (index = level). */
  readonly caches: readonly Tlb[];
  /** Descriptors read per level 0..3. */
  readonly reads: Float64Array = new Float64Array(4);
  /** Walks started. */
  walks = 0;
  /** Output address of the leaf found by the last successful walk. */
  leafPa = 0;
  /** Size in bytes of that leaf. */
  leafSize = 0;
  /** Access bits (1 read, 2 write) that leaf grants. */
  leafAccess = 0;
  /** Address involved in the last failed walk (output or fetch address). */
  faultAddress = 0;
  #memory: PhysicalMemory;
  #memBase: number;
  #memEnd: number;
  #stage: LpaeStage;
  // 1 when any walk cache can hold entries (a number: cheaper to test).
  #anyCache: number;
  // The caches with their probe (the same objects as `caches`).
  #wc: readonly WalkCache[];
  // The level-2 cache, and whether it can hold anything (the fast path
  // probes it first).
  #c2: WalkCache;
  #probe2: number;
  // Its hit table and the table's state (WalkCache.hits(), state()).
  // Slot 7 of a hit-table slot keeps where its level-3 table is:
  // `id * 16384 + w`, the table's first word `w` in `#views[id]` (-1:
  // not known yet; a probe that writes the slot resets it).
  #h2: Float64Array;
  #s2: Float64Array;
  // Views of the RAM chunks holding such tables, one per chunk (RAM never
  // drops a chunk), by id; and the id of each chunk's view.
  #views: Uint32Array[] = [];
  #viewIds: Map<number, number> = new Map();
  // Direct-mapped cache of live Uint32Array views of whole 64 KiB RAM
  // chunks (RAM never drops a chunk, so a view never goes stale): a
  // descriptor read is an index into one of them, with no per-table view
  // object and no Map lookup.
  #chunkKey: Float64Array = new Float64Array(CHUNK_SLOTS).fill(-1);
  #chunkView: Uint32Array[] = new Array<Uint32Array>(CHUNK_SLOTS).fill(
    EMPTY_WORDS,
  );
  // The same chunks as Float64Arrays: a table descriptor at levels 0-2 is
  // read as one double (see the descriptor memos below).
  #chunkDoubles: Float64Array[] = new Array<Float64Array>(CHUNK_SLOTS).fill(
    EMPTY_DOUBLES,
  );
  // Descriptor memos. Levels 0 and 1: the last table descriptor read there
  // that named a table inside RAM, as the double its 8 bytes read as
  // (#md0, #md1; NaN: none), the views of that table's chunk (#mw, #mf),
  // its first double in them (#mo) and its address (#mt, for the walk
  // caches). Level 2, direct-mapped by the descriptor's index in its
  // table (a walk striding over many level-3 tables finds each): the same
  // per slot (#m2d, #m2w, #m2o: the level-3 table's first word, #m2t).
  // Two doubles are equal only when their bits are (no NaN equals
  // anything; -0 equals +0, but a table descriptor, bits 1:0 set, is
  // never a zero), so one compare of the double read against the memo
  // stands for both words and their type test. Valid for the output
  // bound #memoEnd, which every memoised address is below. (Fields, not
  // an array, where they can be: V8 then knows each holds a typed array of
  // its kind and checks nothing when the walk indexes it.)
  #md0 = NaN;
  #md1 = NaN;
  #mw0: Uint32Array = EMPTY_WORDS;
  #mw1: Uint32Array = EMPTY_WORDS;
  #mf0: Float64Array = EMPTY_DOUBLES;
  #mf1: Float64Array = EMPTY_DOUBLES;
  #mo0 = 0;
  #mo1 = 0;
  #mt0 = 0;
  #mt1 = 0;
  #m2d: Float64Array = new Float64Array(512).fill(NaN);
  #m2w: Uint32Array[] = new Array<Uint32Array>(512).fill(NO_TABLE);
  #m2o: Int32Array = new Int32Array(512);
  #m2t: Float64Array = new Float64Array(512);
  // Copies of the memos for translate's inline walk (see TableMemos).
  #tm: TableMemos = new TableMemos(this.#m2d, this.#m2w, this.#m2o);
  #memoEnd = -1;
  // floor(#memoEnd / 2^32): an output address whose bits 47:32 are below
  // it is inside the output size, whatever its low word.
  #hiEnd = 0;
  #root: Float64Array = new Float64Array(1);
  #rootPa = -1;
  #rootWords: Uint32Array | null = null;
  #rootDoubles: Float64Array = EMPTY_DOUBLES;
  // Where a table walk that walkIn finishes starts (see #walkNext).
  #nextLevel = 0;
  #nextWords: Uint32Array = EMPTY_WORDS;
  #nextDoubles: Float64Array = EMPTY_DOUBLES;
  #nextOff = 0;
  #rootOff = 0;

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM the tables are in.
   * @param stage Descriptor attribute format.
   * @param walkCache Shapes of the level 0, 1, 2 caches (at most three;
   * a missing or `undefined` entry takes its {@linkcode DEFAULT_WALK_CACHE}
   * shape).
   * @throws {IommuError} `EINVAL` when `memory` is not a `PhysicalMemory`
   * (an object with `read32`, `view32` and integer `base` and `end`),
   * `stage` is not 1 or 2, `walkCache` is not an array of at most three
   * entries or an entry is not an object; `EINVAL`/`ERANGE` for a bad cache
   * shape (from `Tlb`). Nothing is built then.
   */
  constructor(
    memory: PhysicalMemory,
    stage: LpaeStage,
    walkCache: readonly TlbOptions[],
  ) {
    checkWalkerArgs(memory, stage, walkCache);
    this.#memory = memory;
    this.#memBase = memory.base;
    this.#memEnd = memory.end;
    this.#stage = stage;
    const caches = [0, 1, 2].map((l) =>
      new WalkCache(walkCache[l] ?? DEFAULT_WALK_CACHE[l]!)
    );
    this.caches = caches;
    this.#wc = caches;
    this.#anyCache = caches.some((c) => c.capacity !== 0) ? 1 : 0;
    this.#c2 = caches[2]!;
    this.#probe2 = caches[2]!.capacity !== 0 ? 1 : 0;
    this.#h2 = caches[2]!.hits();
    this.#s2 = caches[2]!.state();
  }

  /**
   * What a unit's translate path needs to finish the common walks itself:
   * - a level-2 walk-cache hit whose level-3 table is known: the level-2
   *   walk cache's hit table and state (as `WalkCache.hits()` and
   *   `state()`; slot 7 of a hit-table slot is `id * 16384 + w` for the
   *   slot's table starting at word `w` of `views[id]`, or -1), and the
   *   views;
   * - with no walk caches, a walk from level 0 whose table descriptors
   *   equal the walker's memos: `tables` (see {@linkcode WalkerTableMemos}).
   *
   * Either walk must count what {@linkcode Walker.walkIn} counts for it
   * (`walks`, `reads` per level read) and set the same fields (`leafPa`,
   * `leafSize`, `faultAddress` cleared); anything the memos do not cover
   * (another root or bound, a changed descriptor, a fault) is left to
   * `walkIn`.
   *
   * @returns The live arrays (never replaced).
   */
  inlinePath(): WalkerInlinePath {
    return {
      hits: this.#h2,
      state: this.#s2,
      views: this.#views,
      tables: this.#tm,
    };
  }

  /**
   * Walk for `iova` in context `ctx`.
   *
   * @param ctx Context tag of the walk cache entries.
   * @param root Root table address.
   * @param startLevel First level.
   * @param iova Input address (inside the input size).
   * @param outEnd One past the largest output address allowed.
   * @param fill A TLB (the unit's IOTLB) to insert the leaf found into,
   * tagged `ctx`, before returning; none when omitted.
   * @returns 0 on success (leaf fields set), else the event ID of the fault.
   * A root outside RAM or misaligned is a fault (walk abort), not an error.
   * @throws {IommuError} `EINVAL`, before anything is walked or counted,
   * for a context, root or IOVA that is not a non-negative safe integer, a
   * start level other than 0-3, an IOVA of 2^48 or more, or an `outEnd`
   * that is not a safe integer above 0; else only from `fill.insert`
   * (never for a leaf found in RAM: its page and address are valid TLB
   * keys).
   */
  walk(
    ctx: number,
    root: number,
    startLevel: number,
    iova: number,
    outEnd: number,
    fill?: Tlb,
  ): number {
    checkWalkArgs(ctx, root, startLevel, iova, outEnd);
    this.#root[0] = root;
    return this.walkIn(ctx, this.#root, 0, startLevel, iova, outEnd, fill);
  }

  /**
   * {@linkcode Walker.walk} with the root table address read from
   * `roots[index]` (a unit's per-stream config array): a root above 2^30
   * passed as an argument would be boxed into a new heap number on every
   * walk.
   *
   * @param ctx Context tag of the walk cache entries.
   * @param roots Root table addresses.
   * @param index Where this walk's root is in `roots`.
   * @param startLevel First level.
   * @param iova Input address (inside the input size).
   * @param outEnd One past the largest output address allowed.
   * @param fill As for {@linkcode Walker.walk}.
   * @returns 0 on success (leaf fields set), else the event ID of the fault.
   * @throws {IommuError} from `fill.insert` only. Unlike
   * {@linkcode Walker.walk} it does not check its arguments: it is the
   * hardware's per-access path, whose caller has checked the stream, the
   * IOVA and the access already.
   */
  walkIn(
    ctx: number,
    roots: Float64Array,
    index: number,
    startLevel: number,
    iova: number,
    outEnd: number,
    fill?: Tlb,
  ): number {
    this.walks++;
    this.faultAddress = 0;
    // -1: walk the tables from `level`, `words`, `woff` (below); `words`
    // stays EMPTY_WORDS unless the root is the fast path's.
    let code = -1;
    let level = startLevel;
    let words: Uint32Array = EMPTY_WORDS;
    // The same table as doubles (levels 0-2).
    let doubles: Float64Array = EMPTY_DOUBLES;
    let woff = 0;
    const rootWords = this.#rootWords;
    // The common case on its own, small enough to compile tightly: the
    // level-2 walk cache's hit table (see walk_cache.ts; slots spelled as
    // literals: S_GEN 0, S_INV 1, S_MASK 2, S_HITS 3, S_LAST 4) or its
    // lookup names the level-3 table, inside a RAM chunk the view cache
    // holds. The typeof tests keep a bigint away from the arithmetic (the
    // lookup names it).
    if (
      this.#probe2 === 1 && startLevel <= 2 && typeof iova === "number" &&
      typeof ctx === "number"
    ) {
      const s = this.#s2;
      const j = ((((iova * s[1]!) >>> 0) ^ ctx) & s[2]!) << 3;
      const h = this.#h2;
      if (
        iova >= h[j]! && iova < h[j + 1]! && h[j + 2] === ctx &&
        h[j + 3] === s[0] && Math.floor(iova) === iova
      ) {
        s[3]!++;
        s[4] = j;
        // The level-3 table's view and first word, kept in the slot:
        // found without the table address (the loads overlap).
        const kept = h[j + 7]!;
        if (kept >= 0) {
          const kw = this.#views[kept >>> 14]!;
          const at = (kept & 16383) + (((iova >>> 12) & 511) << 1);
          this.reads[3]!++;
          code = this.#page(kw[at]!, kw[at + 1]!, outEnd);
        } else code = this.#hitTable(ctx, j, h[j + 4]!, iova, outEnd);
      } else {
        const table = this.#c2.probeTlb(ctx, iova);
        code = table < 0
          ? this.#walkGeneral(ctx, roots, index, startLevel, iova, outEnd, 1)
          : this.#hitTable(ctx, -1, table, iova, outEnd);
      }
    } else if (
      // No walk cache: straight to the tables when the root is the last
      // walk's (its view known) and the descriptor memos hold for
      // `outEnd`.
      this.#anyCache === 0 && roots[index] === this.#rootPa &&
      outEnd === this.#memoEnd && rootWords !== null
    ) {
      words = rootWords;
      doubles = this.#rootDoubles;
      woff = this.#rootOff;
    } else {
      code = this.#walkGeneral(ctx, roots, index, startLevel, iova, outEnd, 2);
    }
    if (code === -1 && words === EMPTY_WORDS) {
      // A method above handed the table walk back (see #walkNext).
      level = this.#nextLevel;
      words = this.#nextWords;
      doubles = this.#nextDoubles;
      woff = this.#nextOff;
    }
    // The walk from `level` through tables that are 4 KiB aligned inside
    // RAM, read through chunk views (`words`, the table's first word at
    // `woff`; `doubles` the same chunk). A table descriptor at levels 0-2
    // is read as one double: equal to the memo of its level (slot), it
    // names the memoised table, whose views and output-size check are
    // known: no address arithmetic, no view lookup, and its words are
    // read only when it differs. One block per level, each with its index
    // shift as a literal. Every path here has made `#memoEnd` equal to
    // `outEnd`. (In this method, not one of its own: the call cost a few
    // ns per walk.)
    walk: if (code === -1) {
      const ilo = iova >>> 0;
      const reads = this.reads;
      // The level-3 descriptor in the table level-2 slot `i2` memoises,
      // read first: its address needs no descriptor of this walk, so the
      // load (often a host cache miss) overlaps levels 0-2. It is used
      // only when level 2 finds that slot's descriptor (`pre` 1).
      const i2 = (ilo >>> 21) & 511;
      const pw = this.#m2w[i2]!;
      const pat = this.#m2o[i2]! + (((ilo >>> 12) & 511) << 1);
      const plo = pw[pat]!;
      const phi = pw[pat + 1]!;
      let pre = 0;
      let lo = 0;
      let hi = 0;
      if (level <= 1) {
        const ihi = (iova * 2.3283064365386963e-10) >>> 0;
        if (level === 0) {
          const at = (woff >>> 1) + ((ihi >>> 7) & 511);
          reads[0]!++;
          const d = doubles[at]!;
          if (d !== this.#md0) {
            lo = words[at << 1]!;
            hi = words[(at << 1) + 1]!;
            const c = this.#follow(0, lo, hi);
            if (c !== 0) {
              code = this.#off(c, ctx, 0, lo, hi, iova, outEnd);
              break walk;
            }
            this.#md0 = d;
            this.#tm.nums[0] = d;
          }
          if (this.#anyCache === 1) this.#cacheAt(ctx, 0, iova, this.#mt0);
          words = this.#mw0;
          doubles = this.#mf0;
          woff = this.#mo0;
        }
        const at = (woff >>> 1) + (((ilo >>> 30) | (ihi << 2)) & 511);
        reads[1]!++;
        const d = doubles[at]!;
        if (d !== this.#md1) {
          lo = words[at << 1]!;
          hi = words[(at << 1) + 1]!;
          const c = this.#follow(1, lo, hi);
          if (c !== 0) {
            code = this.#off(c, ctx, 1, lo, hi, iova, outEnd);
            break walk;
          }
          this.#md1 = d;
          this.#tm.nums[1] = d;
        }
        if (this.#anyCache === 1) this.#cacheAt(ctx, 1, iova, this.#mt1);
        words = this.#mw1;
        doubles = this.#mf1;
        woff = this.#mo1;
        level = 2;
      }
      if (level === 2) {
        const i = i2;
        const at = (woff >>> 1) + i;
        reads[2]!++;
        const d = doubles[at]!;
        const m2d = this.#m2d;
        if (d === m2d[i]) pre = 1;
        else {
          // Not the table memoised in slot `i`. A table inside the output
          // size, in a chunk whose view is cached, is decoded and
          // memoised here; anything else by #follow.
          lo = words[at << 1]!;
          hi = words[(at << 1) + 1]!;
          const ah = hi & 0xffff;
          const chunk = ah * 65536 + (lo >>> 16);
          const slot = chunk & 255;
          if (
            (lo & 3) === 3 && ah < this.#hiEnd && this.#chunkKey[slot] === chunk
          ) {
            this.#m2w[i] = this.#chunkView[slot]!;
            this.#m2o[i] = (lo & 0xf000) >>> 2;
            this.#m2t[i] = ah * 0x100000000 + ((lo & 0xfffff000) >>> 0);
          } else {
            const c = this.#follow(2 + i, lo, hi);
            if (c !== 0) {
              code = this.#off(c, ctx, 2, lo, hi, iova, outEnd);
              break walk;
            }
          }
          m2d[i] = d;
        }
        if (this.#anyCache === 1) this.#cacheAt(ctx, 2, iova, this.#m2t[i]!);
        words = this.#m2w[i]!;
        woff = this.#m2o[i]!;
      }
      reads[3]!++;
      if (pre === 1) {
        lo = plo;
        hi = phi;
      } else {
        const at = woff + (((ilo >>> 12) & 511) << 1);
        lo = words[at]!;
        hi = words[at + 1]!;
      }
      // A valid page (0b11) with the access flag (bit 10), below the
      // output bound by its high word alone (see #hiEnd).
      if ((lo & 0x403) === 0x403 && (hi & 0xffff) < this.#hiEnd) {
        // The page number times 4096 (exact): ending in a multiply, the
        // double is computed without the checked safe-integer add V8
        // speculates for `hi * 2^32 + (lo & ~0xfff)`.
        this.leafPa = ((lo >>> 12) + (hi & 0xffff) * 0x100000) * 4096;
        this.leafSize = 4096;
        this.leafAccess = leafAccess(lo, this.#stage);
        code = 0;
      } else code = this.#page(lo, hi, outEnd);
    }
    // The IOTLB fill, once here for every kind of walk: inlined into this
    // method, where the leaf's base and address stay unboxed (a call
    // taking them boxes each into a new heap number).
    if (code === 0 && fill !== undefined && fill.capacity !== 0) {
      const size = this.leafSize;
      // Leaves are at most 1 GiB: the offset is in the low 32 bits.
      fill.insert(
        ctx,
        iova - ((iova >>> 0) & (size - 1)),
        size,
        this.leafPa,
        this.leafAccess,
      );
    }
    return code;
  }

  // A level-2 walk-cache hit naming the level-3 table at `table`: its view
  // from the chunk-view cache, kept in hit-table slot `j` (-1: a lookup's
  // hit, no slot), then the page descriptor. Returns as walkIn, or -1 (see
  // #walkNext).
  #hitTable(
    ctx: number,
    j: number,
    table: number,
    iova: number,
    outEnd: number,
  ): number {
    // A table descriptor named it, so it is 4 KiB aligned: its chunk's
    // view (`* 2 ** -16`: exact, and no divide).
    const chunk = Math.floor(table * 0.0000152587890625);
    const slot = chunk & 255;
    if (this.#chunkKey[slot] !== chunk) {
      return this.#walkCached(ctx, table, iova, outEnd);
    }
    const words = this.#chunkView[slot]!;
    const woff = ((table >>> 0) & 0xf000) >>> 2;
    // Ids stay below 2^17 (`>>> 14` of the kept number is exact): beyond
    // 8 GiB of chunks with tables, slots keep nothing.
    if (j >= 0 && (this.#viewIds.has(chunk) || this.#views.length < 131072)) {
      let id = this.#viewIds.get(chunk);
      if (id === undefined) {
        id = this.#views.length;
        this.#views.push(words);
        this.#viewIds.set(chunk, id);
      }
      this.#h2[j + 7] = id * 16384 + woff;
    }
    const at = woff + (((iova >>> 12) & 511) << 1);
    this.reads[3]!++;
    return this.#page(words[at]!, words[at + 1]!, outEnd);
  }

  // The level-3 descriptor (lo, hi) a walk read: a valid page inside the
  // output size is the leaf, anything else the fault #leaf names.
  #page(lo: number, hi: number, outEnd: number): number {
    // Valid page (type 0b11) with the access flag (bit 10).
    if ((lo & 0x403) === 0x403) {
      const addr = (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0);
      if (addr + 4096 <= outEnd) {
        const access = leafAccess(lo, this.#stage);
        this.leafPa = addr;
        this.leafSize = 4096;
        this.leafAccess = access;
        return 0;
      }
    }
    if ((lo & 1) === 0) return 0x10; // EVT_F_TRANSLATION
    return this.#leaf(3, lo, hi, outEnd);
  }

  // A level-2 walk-cache hit whose table's chunk view is not cached yet
  // (or the table is not inside RAM). Returns as #hitTable.
  #walkCached(
    ctx: number,
    table: number,
    iova: number,
    outEnd: number,
  ): number {
    if (outEnd !== this.#memoEnd) this.#forgetMemos(outEnd);
    const words = this.#tableWords(table);
    if (words === null) return this.#walkFrom(ctx, 3, table, iova, outEnd);
    return this.#walkNext(3, words, EMPTY_DOUBLES, table);
  }

  // The walk after the fast path: walk caches from level `top` down
  // (deepest first, as hardware does: a hit skips every level above it),
  // then the tables (returns as #hitTable).
  #walkGeneral(
    ctx: number,
    roots: Float64Array,
    index: number,
    startLevel: number,
    iova: number,
    outEnd: number,
    top: number,
  ): number {
    if (outEnd !== this.#memoEnd) this.#forgetMemos(outEnd);
    let level = startLevel;
    let table = roots[index]!;
    let words: Uint32Array | null = null;
    let doubles: Float64Array = EMPTY_DOUBLES;
    let cached = false;
    if (this.#anyCache === 1) {
      const caches = this.#wc;
      for (let l = top; l >= startLevel; l--) {
        const c = caches[l]!;
        const hit = c.capacity === 0 ? -1 : c.probe(ctx, iova);
        if (hit >= 0) {
          table = hit;
          level = l + 1;
          const chunk = Math.floor(table * 0.0000152587890625);
          const slot = chunk & 255;
          words = this.#chunkKey[slot] === chunk
            ? this.#chunkView[slot]!
            : this.#tableWords(table);
          // (#tableWords puts a view it returns into this slot.)
          doubles = this.#chunkDoubles[slot]!;
          cached = true;
          break;
        }
      }
    }
    if (!cached) {
      words = table === this.#rootPa ? this.#rootWords : this.#rootOf(table);
      doubles = this.#rootDoubles;
    }
    if (words === null) return this.#walkFrom(ctx, level, table, iova, outEnd);
    return this.#walkNext(level, words, doubles, table);
  }

  // Leave the table walk from `level` at `table` (inside RAM, 4 KiB
  // aligned, in the chunk views `words` and `doubles`; the latter unused
  // at level 3) to walkIn: -1.
  #walkNext(
    level: number,
    words: Uint32Array,
    doubles: Float64Array,
    table: number,
  ): number {
    this.#nextLevel = level;
    this.#nextWords = words;
    this.#nextDoubles = doubles;
    this.#nextOff = ((table >>> 0) & 0xf000) >>> 2;
    return -1;
  }

  // A descriptor at `level` that #follow refused (`code`): a leaf or
  // invalid descriptor (-2), its fault, or a table outside RAM (-1),
  // which the checked path reads.
  #off(
    code: number,
    ctx: number,
    level: number,
    lo: number,
    hi: number,
    iova: number,
    outEnd: number,
  ): number {
    if (code === -2) {
      if ((lo & 1) === 0) return 0x10; // EVT_F_TRANSLATION
      return this.#leaf(level, lo, hi, outEnd);
    }
    if (code > 0) return code;
    const addr = (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0);
    this.#cacheTable(ctx, level, iova, lo, hi);
    return this.#walkFrom(ctx, level + 1, addr, iova, outEnd);
  }

  // A descriptor (lo, hi) read at table level `level` that differs from
  // the memo: a table inside the output size is memoised with its table's
  // views (0; the caller then sets the memo's double). `level` 2 + i
  // stands for slot i of level 2. Else -2 when it is not a table, the
  // fault's event ID, or -1 when the table is not inside RAM (not
  // memoised).
  #follow(level: number, lo: number, hi: number): number {
    if ((lo & 3) !== 3) return -2;
    const ah = hi & 0xffff;
    const table = ah * 0x100000000 + ((lo & 0xfffff000) >>> 0);
    if (ah >= this.#hiEnd && table >= this.#memoEnd) {
      this.faultAddress = table;
      return 0x11; // EVT_F_ADDR_SIZE
    }
    const words = this.#tableWords(table);
    if (words === null) return -1;
    if (level >= 2) {
      const i = level - 2;
      this.#m2d[i] = NaN;
      this.#m2w[i] = words;
      this.#m2o[i] = (lo & 0xf000) >>> 2;
      this.#m2t[i] = table;
      return 0;
    }
    // The chunk is in the view cache: #tableWords just put it there.
    const doubles = this.#chunkDoubles[(ah * 65536 + (lo >>> 16)) & 255]!;
    const tm = this.#tm;
    if (level === 0) {
      this.#md0 = NaN;
      this.#mw0 = words;
      this.#mf0 = doubles;
      this.#mo0 = (lo & 0xf000) >>> 2;
      this.#mt0 = table;
      tm.nums[0] = NaN;
      tm.l0 = doubles;
    } else {
      this.#md1 = NaN;
      this.#mw1 = words;
      this.#mf1 = doubles;
      this.#mo1 = (lo & 0xf000) >>> 2;
      this.#mt1 = table;
      tm.nums[1] = NaN;
      tm.l1 = doubles;
    }
    tm.offs[level + 1] = (lo & 0xf000) >>> 3;
    return 0;
  }

  // Fill the walk cache of `level` with the table the descriptor (lo, hi)
  // there named.
  #cacheTable(
    ctx: number,
    level: number,
    iova: number,
    lo: number,
    hi: number,
  ): void {
    this.#cacheAt(
      ctx,
      level,
      iova,
      (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0),
    );
  }

  // #cacheTable for a table address.
  #cacheAt(ctx: number, level: number, iova: number, table: number): void {
    const c = this.caches[level]!;
    if (c.capacity !== 0) c.insert(ctx, iova, LEVEL_SIZE[level]!, table, 0);
  }

  // Decode the leaf (lo, hi) found at `level`: 0 with the leaf fields set,
  // else the fault's event ID.
  #leaf(level: number, lo: number, hi: number, outEnd: number): number {
    if (level === 0 || (level === 3 && (lo & 3) !== 3)) {
      return 0x10; // EVT_F_TRANSLATION
    }
    // The output address masked to the leaf size: a block's address bits
    // below its size are RES0 and ignored (lpae.leafAddress), so the leaf
    // address plus the IOVA's offset stays inside the block.
    const mask = level === 3
      ? 0xfffff000
      : level === 2
      ? 0xffe00000
      : 0xc0000000;
    const addr = (hi & 0xffff) * 0x100000000 + ((lo & mask) >>> 0);
    const size = level === 3 ? 4096 : level === 2 ? 0x200000 : 0x40000000;
    if (addr + size > outEnd) {
      this.faultAddress = addr;
      return 0x11; // EVT_F_ADDR_SIZE
    }
    if ((lo & 0x400) === 0) return 0x12; // EVT_F_ACCESS
    this.leafPa = addr;
    this.leafSize = size;
    this.leafAccess = leafAccess(lo, this.#stage);
    return 0;
  }

  // The checked walk from `level` at `table`: RAM read word by word with
  // a bounds check (an unaligned root, or a table outside RAM).
  #walkFrom(
    ctx: number,
    start: number,
    startTable: number,
    iova: number,
    outEnd: number,
  ): number {
    let table = startTable;
    const ilo = iova >>> 0;
    const ihi = (iova / 0x100000000) >>> 0;
    for (let level = start;; level++) {
      const idx = level === 3
        ? (ilo >>> 12) & 511
        : level === 2
        ? (ilo >>> 21) & 511
        : level === 1
        ? ((ilo >>> 30) | (ihi << 2)) & 511
        : (ihi >>> 7) & 511;
      this.reads[level]!++;
      const at = table + idx * 8;
      if (!(at >= this.#memBase && at + 8 <= this.#memEnd)) {
        this.faultAddress = at;
        return EVT_F_WALK_EABT;
      }
      const lo = this.#memory.read32(at);
      const hi = this.#memory.read32(at + 4);
      if ((lo & 1) === 0) return EVT_F_TRANSLATION;
      if (level === 3 || (lo & 3) !== 3) {
        return this.#leaf(level, lo, hi, outEnd);
      }
      const addr = (hi & 0xffff) * 0x100000000 + ((lo & 0xfffff000) >>> 0);
      if (addr >= outEnd) {
        this.faultAddress = addr;
        return EVT_F_ADDR_SIZE;
      }
      if (this.#anyCache === 1) this.#cacheAt(ctx, level, iova, addr);
      table = addr;
    }
  }

  // Forget the descriptor memos (their output-size checks were for
  // another bound).
  #forgetMemos(outEnd: number): void {
    this.#memoEnd = outEnd;
    this.#hiEnd = Math.floor(outEnd * 2.3283064365386963e-10);
    this.#md0 = NaN;
    this.#md1 = NaN;
    this.#m2d.fill(NaN);
    const nums = this.#tm.nums;
    nums[0] = NaN;
    nums[1] = NaN;
    nums[3] = outEnd;
  }

  // The view of the chunk holding the table at `table` (whose first word
  // in it is `(table & 0xf000) >>> 2`), or null when the table is not 4 KiB
  // aligned or not inside RAM (the walk then reads RAM word by word).
  #tableWords(table: number): Uint32Array | null {
    if (((table >>> 0) & 4095) !== 0) return null;
    const chunk = Math.floor(table * 0.0000152587890625); // / 65536, exact
    const slot = chunk & (CHUNK_SLOTS - 1);
    if (this.#chunkKey[slot] === chunk) return this.#chunkView[slot]!;
    const pa = chunk * 65536;
    if (!(pa >= this.#memBase && pa + 65536 <= this.#memEnd)) return null;
    const v = this.#memory.view32(pa, 65536);
    // A double view needs 8-byte alignment (PhysicalMemory's chunks have
    // it; other RAM-shaped objects are read word by word).
    if ((v.byteOffset & 7) !== 0 || v.length !== 16384) return null;
    this.#chunkKey[slot] = chunk;
    this.#chunkView[slot] = v;
    this.#chunkDoubles[slot] = new Float64Array(v.buffer, v.byteOffset, 8192);
    return v;
  }

  // #tableWords for a walk's first table, remembered for the next walk.
  #rootOf(table: number): Uint32Array | null {
    const words = this.#tableWords(table);
    this.#rootPa = table;
    this.#rootWords = words;
    this.#rootDoubles = words === null
      ? EMPTY_DOUBLES
      : this.#chunkDoubles[Math.floor(table * 0.0000152587890625) & 255]!;
    this.#rootOff = ((table >>> 0) & 0xf000) >>> 2;
    const tm = this.#tm;
    tm.nums[2] = words === null ? -1 : table;
    tm.root = this.#rootDoubles;
    tm.offs[0] = this.#rootOff >>> 1;
    return words;
  }

  /**
   * Drop walk-cache entries of `ctx` overlapping `[start, start + size)`.
   *
   * @param ctx Context tag.
   * @param start First byte.
   * @param size Bytes.
   */
  invalidateRange(ctx: number, start: number, size: number): void {
    for (const c of this.caches) {
      if (c.size !== 0) c.invalidateRange(ctx, start, size);
    }
  }

  /**
   * Drop every walk-cache entry of `ctx`.
   *
   * @param ctx Context tag.
   */
  invalidateContext(ctx: number): void {
    for (const c of this.caches) if (c.size !== 0) c.invalidateContext(ctx);
  }

  /** Drop every walk-cache entry. */
  invalidateAll(): void {
    for (const c of this.caches) c.invalidateAll();
  }
}
