/**
 * A reusable set-associative translation cache: the IOTLB of an IOMMU
 * hardware model, or a walk cache of intermediate descriptors.
 *
 * Entries are keyed by (context, page base, page size). A context is any
 * non-negative integer the caller chooses (a domain ID, a stream ID, or a
 * context combined with a walk level). A page size is any power of two from
 * 1 KiB to 2^52 bytes, and entries of several sizes live side by side.
 *
 * Everything is kept in typed arrays, so a lookup or an insert allocates
 * nothing.
 *
 * @module
 */
import { IommuError } from "./errors.ts";
import {
  checkAddress,
  checkRange,
  hex,
  isPowerOfTwo,
  MAX_ADDRESS,
} from "./address.ts";

/**
 * How a full set picks the way to evict. Every policy first fills an
 * invalid (empty) way when the set has one.
 *
 * - `"lru"`: the least recently used way (true LRU; hits and fills count as use).
 * - `"round-robin"`: a pointer per set that moves to the next way after each eviction.
 * - `"random"`: a way drawn from a seeded xorshift generator, reproducible per seed.
 */
export type TlbReplacement = "lru" | "round-robin" | "random";

/** Every {@linkcode TlbReplacement}, in a stable order (for validation and tables). */
export const TLB_REPLACEMENTS: readonly TlbReplacement[] = [
  "lru",
  "round-robin",
  "random",
];

/** The smallest page size a TLB entry may cover: 1 KiB, in bytes. */
export const TLB_MIN_PAGE_SIZE: number = 1024;

/** The largest page size a TLB entry may cover: 2^52 bytes. */
export const TLB_MAX_PAGE_SIZE: number = 2 ** 52;

/** The largest capacity (sets × ways, in entries) a {@linkcode Tlb} accepts: 2^24. */
export const TLB_MAX_ENTRIES: number = 2 ** 24;

/** Shape of a {@linkcode Tlb}. */
export interface TlbOptions {
  /**
   * Number of sets: a power of two, or 0. `sets * ways === 0` builds a TLB
   * that holds nothing (every lookup misses, inserts are ignored).
   */
  sets: number;
  /** Entries per set (the associativity): a non-negative integer. */
  ways: number;
  /** Victim choice in a full set; `"lru"` when omitted. */
  replacement?: TlbReplacement;
  /** Seed of the `"random"` policy (any safe integer); 1 when omitted. */
  seed?: number;
}

/** A plain snapshot of a {@linkcode Tlb}'s statistics, all counts of events. */
export interface TlbCounters {
  /** Calls to `lookup` / `lookupSize`. */
  lookups: number;
  /** Lookups that found an entry. */
  hits: number;
  /** Lookups that found nothing (`lookups - hits`). */
  misses: number;
  /** Accepted inserts, including the refresh of an entry already present. */
  fills: number;
  /** Valid entries displaced by an insert of another key. */
  evictions: number;
  /** Calls to the `invalidate*` methods. */
  invalidations: number;
  /** Entries removed by invalidations. */
  invalidatedEntries: number;
}

/** One live entry, as listed by {@linkcode Tlb.entries} (for dumps and tests). */
export interface TlbEntry {
  /** The context (domain, stream, ...) the entry belongs to. */
  context: number;
  /** The first input address (IOVA) the entry covers: its page base, in bytes. */
  iova: number;
  /** The span the entry covers, in bytes (a power of two). */
  pageSize: number;
  /** The physical address of the page base, in bytes (what was inserted). */
  pa: number;
  /** The permission bits that were inserted (opaque to the TLB). */
  perm: number;
  /** The set the entry lives in. */
  set: number;
  /** The way within the set. */
  way: number;
}

/** Largest log2 of a page size, plus one: the size of per-size tables. */
const SIZE_SLOTS = 64;

// Builtins as module constants: a call through one costs less bytecode
// than `Math.floor` (which helps the hot methods stay small enough to
// inline) and compiles to the same machine code.
const isSafe = Number.isSafeInteger;
const floor = Math.floor;
const imul = Math.imul;
/** {@linkcode MAX_ADDRESS} as a local: hot methods then skip an import check. */
const MAX = MAX_ADDRESS;

// Initial values of fields the constructor sets. A field declared without
// one starts as undefined, and V8 then tracks it as any value: every read
// in optimised code would check a map or a Smi tag. Starting with a value
// of the final kind keeps the field's kind exact, so reads check nothing.
const NO_F64 = new Float64Array(0);
const NO_U8 = new Uint8Array(0);
const NO_I32 = new Int32Array(0);

/**
 * Numbers per slot in `#e`, and where each sits: page base (0), then
 * these. A hit stamps E_STAMP under LRU; under other policies `lookup`
 * and `lookupHit` write E_UNUSED instead (never read; a slot fills one
 * 64-byte line) and `lookupHitIf` writes nothing.
 */
const SLOT = 8;
const E_SIZE = 1;
const E_CTX = 2;
const E_PA = 3;
const E_PERM = 4;
const E_STAMP = 5;
const E_REC = 6;
const E_UNUSED = 7;

/**
 * A set-associative IOTLB with LRU, round-robin or seeded-random replacement.
 *
 * Set index: `(pageNumber XOR context) mod sets`, where `pageNumber` is the
 * entry's own page number (`floor(iova / pageSize)`). A key therefore always
 * lands in the same set whatever address inside the page filled it, and a
 * lookup probes one set per page size currently present (the most recently
 * hit size first). Mixing in the context spreads contexts that use the same
 * IOVAs over different sets. The bitwise operators used for this take the
 * low 32 bits of the page number, which the language defines exactly
 * (modulo 2^32) for every safe integer, so nothing is truncated wrongly.
 *
 * Entries of different sizes may overlap (a 4 KiB entry inside a cached
 * 2 MiB one); the TLB keeps both, as hardware would, and a lookup returns
 * whichever it probes first.
 *
 * @example
 * ```ts
 * import { Tlb } from "./tlb.ts";
 * const tlb = new Tlb({ sets: 64, ways: 8, replacement: "lru" });
 * tlb.insert(1, 0x20_0000, 0x20_0000, 0x8000_0000, 3); // a 2 MiB page
 * console.assert(tlb.lookup(1, 0x21_2345) === 0x8001_2345);
 * console.assert(tlb.lastPageSize === 0x20_0000);
 * console.assert(tlb.lookup(2, 0x21_2345) === -1); // other context
 * tlb.invalidateRange(1, 0x20_1000, 0x1000); // overlaps the 2 MiB entry
 * console.assert(tlb.size === 0);
 * ```
 */
export class Tlb {
  /** Number of sets. */
  readonly sets: number = 0;
  /** Entries per set. */
  readonly ways: number = 0;
  /** Total entries the TLB can hold (`sets * ways`); 0 means no TLB. */
  readonly capacity: number = 0;
  /** The replacement policy in use. */
  readonly replacement: TlbReplacement;
  /** The seed of the random policy (kept even when another policy is used). */
  readonly seed: number = 0;

  #setMask = 0;
  #setSpan = 0; // numbers in `#e` per set: ways * SLOT
  // Per slot (slot = set * ways + way). A size of 0 marks an invalid slot, so
  // the tag compare needs no separate valid bit.
  // Eight numbers per slot side by side (page base, page size, context,
  // PA, perm, stamp, rec, unused; see SLOT), one 64-byte line: a probe, a
  // hit and a fill touch one array, not five (each typed array a code
  // path touches costs it a map check, a length and a data pointer).
  #e: Float64Array = NO_F64;
  #shift: Uint8Array = NO_U8;
  // Where in a slot `lookup` and `lookupHit` stamp a hit: E_STAMP under
  // LRU, else E_UNUSED (only LRU reads stamps of hits). No test of the
  // policy in their hit paths (a test there measured 1.5 ns slower on
  // samsung's hit). `lookupHitIf` tests it instead (see `#hits`).
  #hitOff = 0;
  #policy = 0; // 0 lru, 1 round-robin, 2 random: a number is cheaper to switch on
  #rng = 0;
  // Ticks once per fill (new entry or refresh) and once per hit, except
  // the hits of `lookupHitIf` and the fast fills of `insert` under a policy
  // other than LRU (only LRU reads stamps; `counters` corrects for both):
  // the LRU stamps, and the hit count (see `#hitsBase`).
  #clock = 0;
  #live = 0;
  // Valid ways per set: a full set needs no search for an invalid way.
  #used: Int32Array = NO_I32;
  // The victim of a full set is way `#next[set]` when that is not -1 and
  // the way's stamp still equals its rec (E_REC: the stamp it had when it
  // entered the set's order); otherwise `#victim` chooses.
  // LRU: the set's ways in circular order from `#next[set]` have rising
  // rec stamps, each way's stamp is at least its rec, and a way used
  // since (a larger stamp) is newer than every rec of the set. So the
  // way at `#next` is the least recently used when its stamp still
  // equals its rec; filling it makes it the newest, the last of the
  // order. A scan of a full set whose stamps rise circularly from its LRU
  // way records the order (-1: none); so streaming misses take the ways in
  // turn with no scan, and a hit needs no bookkeeping beyond its stamp.
  // Round-robin: `#next[set]` is the pointer. Random: `#next` is -1.
  #next: Int32Array = NO_I32;
  // The key of the last lookup that missed every size present, kept until
  // anything changes the entries (`#missCtx` NaN: none). An insert of that
  // key right after (a walk's fill) knows the set holds no duplicate, so
  // it skips the scan for one.
  #missIova = -1;
  #missCtx = NaN;
  // Of that lookup, the last size probed (NaN: none), its page base and
  // its set: an insert of that size right after takes them instead of
  // working them out again.
  #missSize = NaN;
  #missBase = 0;
  #missSet = 0;
  // The key of the last `lookupHitIf` that probed and found nothing
  // (context -1: none), forgotten when the entries change, as the memo
  // above is: while one size is present, that probe was a full lookup's,
  // so `lookupAfterMiss` of the key needs no second one.
  #hitIfIova = -0.5;
  #hitIfCtx = -1;
  // Page sizes present, in probe order, with their reciprocals (exact for
  // powers of two) so the page number is a multiply rather than a divide.
  #sizeCount: Float64Array = new Float64Array(SIZE_SLOTS);
  // NaN in slot 0 until a size is present: `lookup` probes it unguarded.
  #sizes: Float64Array = new Float64Array(SIZE_SLOTS).fill(NaN);
  #invs: Float64Array = new Float64Array(SIZE_SLOTS);
  #nsizes = 0;
  // Copies of `#sizes[0]` and `#invs[0]` for `lookupHit`: two field reads
  // instead of two typed-array reads (each with its length check).
  #size0 = NaN;
  #inv0 = 0;
  // Of that size, when it is at most 2^30: its log2 and `size - 1` (both
  // Smis, one load each; a double field is a pointer to a box, two loads
  // in a row). `#mask0` -1: no such size, take the double arithmetic.
  #shift0 = 0;
  #mask0 = -1;
  // Set by `lookupHitIf` when it returns a PA (a double from the start).
  #hitEnd = 0.5;

  #fillSize = -1; // no size validated yet (0 is not a valid size)
  #fillShift = 0;
  #fillInv = 0;
  #probeSize = -1;
  #probeInv = 0;

  // The slot the last lookup hit, read by the last* getters (a hit stores
  // one number instead of four). Two slots past the sets, never probed:
  // `capacity` keeps a copy of an entry hit that has changed since (a
  // change to the slot last hit first copies it there, so the getters keep
  // reporting what was hit), and `capacity + 1` says "no entry" (base -1,
  // size 0, PA -1, perm 0) for a miss. So the getters need no test.
  #lastSlot = 0;

  // Lookups are hits + misses, and hits are the clock's ticks since the
  // last reset that were not fills: a hit bumps no counter of its own.
  #misses = 0;
  #hitsBase = 0; // the clock at the last reset
  // Hits of `lookupHitIf` under a policy other than LRU: it stamps
  // nothing (only LRU reads stamps), so they count here instead of
  // ticking the clock.
  #hits = 0;
  #fills = 0;
  #evictions = 0;
  // Fills by the fast path of `insert`, each also an eviction (one count
  // instead of two there).
  #quickFills = 0;
  #invalidations = 0;
  #invalidatedEntries = 0;
  // Told of every invalidation (a cache layered in front drops its copies).
  #onInvalidate: (() => void) | null = null;

  /**
   * Build an empty TLB.
   *
   * @param options Geometry, replacement policy and seed.
   * @throws {IommuError} `EINVAL` when `options` is not an object, `sets` or
   * `ways` is not a non-negative integer, `sets` is neither 0 nor a power of
   * two, `replacement` is unknown, or `seed` is not a safe integer.
   * `ERANGE` when `sets * ways` exceeds {@linkcode TLB_MAX_ENTRIES}.
   */
  constructor(options: TlbOptions) {
    if (typeof options !== "object" || options === null) {
      throw new IommuError(
        "EINVAL",
        `TLB options must be an object, got ${String(options)}`,
      );
    }
    const { sets, ways } = options;
    const replacement = options.replacement ?? "lru";
    const seed = options.seed ?? 1;
    checkCount(sets, "TLB sets");
    checkCount(ways, "TLB ways");
    if (sets !== 0 && !isPowerOfTwo(sets)) {
      throw new IommuError(
        "EINVAL",
        `TLB sets must be 0 or a power of two, got ${sets}`,
      );
    }
    const policy = TLB_REPLACEMENTS.indexOf(replacement);
    if (policy < 0) {
      throw new IommuError(
        "EINVAL",
        `TLB replacement must be one of ${TLB_REPLACEMENTS.join(", ")}, got ${
          String(replacement)
        }`,
      );
    }
    if (typeof seed !== "number" || !Number.isSafeInteger(seed)) {
      throw new IommuError(
        "EINVAL",
        `TLB seed must be a safe integer, got ${String(seed)}`,
      );
    }
    const capacity = sets * ways;
    if (capacity > TLB_MAX_ENTRIES) {
      throw new IommuError(
        "ERANGE",
        `TLB of ${sets} sets x ${ways} ways has ${capacity} entries, more than ${TLB_MAX_ENTRIES}`,
      );
    }
    this.sets = sets;
    this.ways = ways;
    this.capacity = capacity;
    this.replacement = replacement;
    this.seed = seed;
    this.#policy = policy;
    this.#hitOff = policy === 0 ? E_STAMP : E_UNUSED;
    this.#setMask = sets > 0 ? sets - 1 : 0;
    this.#setSpan = ways * SLOT;
    this.#e = new Float64Array((capacity + 2) * SLOT);
    // The "no entry" slot (see `#lastSlot`).
    this.#e[(capacity + 1) * SLOT] = -1;
    this.#e[(capacity + 1) * SLOT + E_PA] = -1;
    this.#lastSlot = capacity + 1;
    this.#shift = new Uint8Array(capacity);
    // Empty when nothing can be cached, so `insert` never takes a set
    // for full (and `#insert` ignores the fill).
    this.#used = new Int32Array(capacity === 0 ? 0 : sets);
    this.#next = new Int32Array(sets).fill(policy === 1 ? 0 : -1);
    this.#rng = seedState(seed);
  }

  /** Number of live (valid) entries. */
  get size(): number {
    return this.#live;
  }

  /** Page size in bytes of the entry the last lookup hit; 0 after a miss. */
  get lastPageSize(): number {
    return this.#e[this.#lastSlot * 8 + 1]!;
  }

  /** Permission bits of the entry the last lookup hit; 0 after a miss. */
  get lastPerm(): number {
    return this.#e[this.#lastSlot * 8 + 4]!;
  }

  /**
   * Physical address (bytes) stored in the entry the last lookup hit, without
   * the offset within the page (a walk cache reads its table address here);
   * -1 after a miss.
   */
  get lastPaBase(): number {
    return this.#e[this.#lastSlot * 8 + 3]!;
  }

  /**
   * One past the last input address (bytes) of the entry the last lookup
   * hit, its page base plus its page size, when that entry's permission
   * bits include every bit of `need`; -1 when they do not, or after a
   * miss. `lastPageEndIf(access) - iova` is the span from a translated
   * address to the end of its page: a hardware model's hit path makes one
   * call instead of reading {@linkcode Tlb.lastPerm},
   * {@linkcode Tlb.lastPageSize} and {@linkcode Tlb.lastPaBase}.
   *
   * @param need Permission bits the entry must have (0: none); a value
   * that is not an integer from 0 to 0x7fffffff matches no entry.
   * @returns The page end in bytes, or -1.
   */
  lastPageEndIf(need: number): number {
    // A bigint would throw from `&`: it matches no entry, as documented.
    if (typeof need !== "number") return -1;
    const j = this.#lastSlot * 8;
    const e = this.#e;
    // After a miss: base -1 plus size 0.
    return (e[j + 4]! & need) === need ? e[j]! + e[j + 1]! : -1;
  }

  /**
   * Translate `iova` in `context`, probing every page size present.
   * Counts a lookup and a hit or a miss; a hit makes the entry most recently
   * used and sets {@linkcode Tlb.lastPageSize}, {@linkcode Tlb.lastPerm} and
   * {@linkcode Tlb.lastPaBase}.
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @returns The physical address in bytes (entry PA + offset in the page),
   * or -1 on a miss.
   * @throws {IommuError} `EINVAL` when `context` or `iova` is not a
   * non-negative safe integer (nothing is counted).
   */
  lookup(context: number, iova: number): number {
    if (!(isSafe(iova) && iova >= 0 && isSafe(context) && context >= 0)) {
      throwBadKey(context, iova);
    }
    const e = this.#e;
    const span = this.#setSpan;
    // Outside the loop: the miss memo keeps the last size probed.
    let size = NaN;
    let base = 0;
    let set = 0;
    for (let k = 0; k < this.#nsizes; k++) {
      size = this.#sizes[k]!;
      // The page number is floor(x) (exact: a power-of-two scale). `^`
      // takes the low 32 bits of x's integer part itself: the set needs
      // no floor, nor a check that the page number is an int32.
      const x = iova * this.#invs[k]!;
      base = floor(x) * size;
      set = (x ^ context) & this.#setMask;
      // int32 arithmetic (imul, |0): no overflow checks in the probe.
      let j = imul(set, span);
      const end = (j + span) | 0;
      // Literal offsets into a slot (see `#e`): named constants would cost
      // the bytecode that keeps this method small enough to inline.
      for (; j < end; j = (j + 8) | 0) {
        if (e[j] === base && e[j + 1] === size && e[j + 2] === context) {
          if (k !== 0) this.#toFront(k);
          // The tick counts the hit (see `#hitOff`).
          e[j + this.#hitOff] = ++this.#clock;
          this.#lastSlot = j >> 3;
          return e[j + 3]! + (iova - base);
        }
      }
    }
    // A miss: count it, and remember the key, with the size, page base and
    // set probed last, for the insert that follows.
    this.#misses++;
    this.#lastSlot = this.capacity + 1;
    this.#missIova = iova;
    this.#missCtx = context;
    this.#missSize = size;
    this.#missBase = base;
    this.#missSet = set;
    return -1;
  }

  /**
   * Exactly {@linkcode Tlb.lookup} (the same result, counters, use stamp,
   * `last*` getters and memo for an `insert` that follows), with a cheaper
   * probe when one page size is present, it is at most 2^30 bytes and
   * `iova` is below 2^32: a shift and a mask, as in
   * {@linkcode Tlb.lookupHitIf}, instead of a multiply, a floor and a
   * truncation. Otherwise it calls `lookup`. Smaller than `lookup`, so a
   * hardware model's miss path can inline it beside `insert`.
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @returns The physical address in bytes, or -1 on a miss.
   * @throws {IommuError} `EINVAL` when `context` or `iova` is not a
   * non-negative safe integer (nothing is counted).
   */
  lookupOne(context: number, iova: number): number {
    const n = this.#nsizes;
    const m = this.#mask0;
    if (
      !((n === 0 || (n === 1 && m >= 0 && iova < 4294967296)) &&
        iova >= 0 && isSafe(iova) && isSafe(context) && context >= 0)
    ) {
      return this.lookup(context, iova);
    }
    // No size present: `lookup`'s miss, with its memo (no size, base 0,
    // set 0). One size: the set and page base of `lookup`'s double
    // arithmetic (the low bits of the same page number; see
    // `lookupHitIf`).
    let size = NaN;
    let base = 0;
    let set = 0;
    if (n === 1) {
      size = this.#size0;
      base = iova - (iova & m);
      set = ((iova >>> this.#shift0) ^ context) & this.#setMask;
      const e = this.#e;
      const span = this.#setSpan;
      let j = imul(set, span);
      const end = (j + span) | 0;
      for (; j < end; j = (j + 8) | 0) {
        if (e[j] === base && e[j | 1] === size && e[j | 2] === context) {
          e[j | this.#hitOff] = ++this.#clock;
          this.#lastSlot = j >> 3;
          return e[j | 3]! + (iova - base);
        }
      }
    }
    this.#misses++;
    this.#lastSlot = this.capacity + 1;
    this.#missIova = iova;
    this.#missCtx = context;
    this.#missSize = size;
    this.#missBase = base;
    this.#missSet = set;
    return -1;
  }

  /**
   * Exactly {@linkcode Tlb.lookupOne} (result, counters, `last*` getters,
   * the memo for an `insert` that follows), without a second probe when
   * the last {@linkcode Tlb.lookupHitIf} probed this key and found nothing,
   * nothing has changed the entries since, and one page size is present:
   * that probe was then a full lookup's miss, and this only counts and
   * records it. For a hardware model whose hit path tries `lookupHitIf`
   * first and whose miss path then needs the counted lookup.
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @returns The physical address in bytes, or -1 on a miss.
   * @throws {IommuError} `EINVAL` when `context` or `iova` is not a
   * non-negative safe integer (nothing is counted).
   */
  lookupAfterMiss(context: number, iova: number): number {
    // `context >= 0`: a fill forgets the key by setting its context to
    // -1, which a caller may pass; only a key lookupHitIf checked skips
    // the checks here.
    if (
      !(iova === this.#hitIfIova && context === this.#hitIfCtx &&
        context >= 0 && this.#nsizes === 1)
    ) {
      return this.lookupOne(context, iova);
    }
    // `lookupOne`'s miss for its one-size probe (`lookupHitIf` probed
    // that size: at most 2^30 bytes, `iova` below 2^32).
    const m = this.#mask0;
    this.#misses++;
    this.#lastSlot = this.capacity + 1;
    this.#missIova = iova;
    this.#missCtx = context;
    this.#missSize = this.#size0;
    this.#missBase = iova - (iova & m);
    this.#missSet = ((iova >>> this.#shift0) ^ context) & this.#setMask;
    return -1;
  }

  /**
   * The hit half of {@linkcode Tlb.lookup}, for a hardware model's hot
   * path: probes only the page size that hit last. When that finds the
   * entry, this is exactly `lookup` (the hit counted, the entry made most
   * recently used, the `last*` getters set); otherwise it returns -1 and
   * changes and counts nothing, and the caller then calls `lookup` (which
   * probes every size and counts the lookup). Small enough to inline where
   * `lookup` is not.
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @returns The physical address in bytes, or -1 when that size does not
   * hold it.
   * @throws {IommuError} `EINVAL` when `context` or `iova` is not a
   * non-negative safe integer (nothing is counted).
   */
  lookupHit(context: number, iova: number): number {
    if (!(isSafe(iova) && iova >= 0 && isSafe(context) && context >= 0)) {
      throwBadKey(context, iova);
    }
    // With no size present, `#sizes[0]` is NaN or a size no slot holds:
    // nothing matches. The set and the compare as in `lookup`.
    const size = this.#size0;
    const x = iova * this.#inv0;
    const base = floor(x) * size;
    const e = this.#e;
    const span = this.#setSpan;
    let j = imul((x ^ context) & this.#setMask, span);
    const end = (j + span) | 0;
    for (; j < end; j = (j + 8) | 0) {
      if (e[j] === base && e[j | 1] === size && e[j | 2] === context) {
        e[j | this.#hitOff] = ++this.#clock;
        this.#lastSlot = j >> 3;
        return e[j | 3]! + (iova - base);
      }
    }
    return -1;
  }

  /**
   * {@linkcode Tlb.lookupHit} and {@linkcode Tlb.lastPageEndIf} in one
   * call, for a hardware model's hit path: probes only the page size that
   * hit last, and only when that size is at most 2^30 bytes and `iova` is
   * below 2^32 (32-bit arithmetic; otherwise -1, as for a miss: the caller
   * then calls `lookup`). A hit is counted and recorded exactly as by `lookupHit`
   * (most recently used, the `last*` getters set) whether or not the entry
   * grants `need`; when it does, {@linkcode Tlb.hitEnd} is the entry's
   * page end and the PA is returned. One probe with no second load of the
   * slot: the page base and size the compare used give the end.
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @param need Permission bits the entry must have (0: none); a value
   * that is not an integer from 0 to 0x7fffffff matches no entry.
   * @returns The physical address in bytes; -1 when that size does not
   * hold `iova` or was not probed (nothing changed or counted: call
   * `lookup`, or {@linkcode Tlb.lookupAfterMiss}, which skips the probe
   * this one made); -2 after a hit on an entry that lacks a bit of `need`.
   * @throws {IommuError} `EINVAL` when `context` or `iova` is not a
   * non-negative safe integer (nothing is counted).
   */
  lookupHitIf(context: number, iova: number, need: number): number {
    if (!(isSafe(iova) && iova >= 0 && isSafe(context) && context >= 0)) {
      throwBadKey(context, iova);
    }
    // Beyond the shift arithmetic (a page larger than 2^30 bytes, an IOVA
    // from 2^32 up, or no size yet): the caller's full lookup.
    const m = this.#mask0;
    if (m < 0 || iova >= 4294967296) return -1;
    // The page number is a shift and the base a mask: the same set as
    // `lookup`'s double arithmetic (the low bits of the same page number),
    // with a shorter chain of dependent instructions to the first tag
    // load. (`m + 1` for the size measured 1 ns slower than the field.)
    const size = this.#size0;
    const base = iova - (iova & m);
    const e = this.#e;
    const span = this.#setSpan;
    let j = imul(((iova >>> this.#shift0) ^ context) & this.#setMask, span);
    const end = (j + span) | 0;
    // `j` is a slot's first number, a multiple of 8: `j | 1` is `j + 1`
    // without the overflow check optimised code adds to an int32 `+` (in
    // `lookup` it measured no faster for samsung-sysmmu's hit: kept `+`).
    for (; j < end; j = (j + 8) | 0) {
      if (e[j] === base && e[j | 1] === size && e[j | 2] === context) {
        if (this.#policy === 0) e[j | 5] = ++this.#clock;
        else this.#hits++;
        this.#lastSlot = j >> 3;
        if ((e[j | 4]! & need) !== need) return -2;
        this.#hitEnd = base + size;
        return e[j | 3]! + (iova - base);
      }
    }
    // A miss of this size (see `lookupAfterMiss`).
    this.#hitIfIova = iova;
    this.#hitIfCtx = context;
    return -1;
  }

  /**
   * One past the last input address (bytes) of the entry the last
   * {@linkcode Tlb.lookupHitIf} that returned a PA hit: its page end.
   * Other calls leave it unchanged.
   */
  get hitEnd(): number {
    return this.#hitEnd;
  }

  /**
   * Like {@linkcode Tlb.lookup} but probes one page size only (for a walk
   * cache that asks level by level, or a TLB split by page size).
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @param pageSize The page size to probe, in bytes.
   * @returns The physical address in bytes, or -1 on a miss.
   * @throws {IommuError} `EINVAL` for a bad `context` or `iova`, or a
   * `pageSize` that is not a power of two between 1 KiB and 2^52.
   */
  lookupSize(context: number, iova: number, pageSize: number): number {
    if (
      !(Number.isSafeInteger(iova) && iova >= 0 &&
        Number.isSafeInteger(context) && context >= 0)
    ) {
      throwBadKey(context, iova);
    }
    // Walk caches probe one size per level over and over: validate a size
    // once and keep its reciprocal.
    if (pageSize !== this.#probeSize) {
      checkPageSize(pageSize);
      this.#probeSize = pageSize;
      this.#probeInv = 1 / pageSize;
    }
    const slot = this.#find(context, iova, pageSize, this.#probeInv);
    if (slot < 0) {
      this.#misses++;
      this.#lastSlot = this.capacity + 1;
      return -1;
    }
    this.#e[slot * SLOT + E_STAMP] = ++this.#clock; // counts the hit
    const pa = this.#e[slot * SLOT + E_PA]!;
    this.#lastSlot = slot;
    return pa + (iova - this.#e[slot * SLOT]!);
  }

  /**
   * Translate like {@linkcode Tlb.lookup} without side effects: no counter,
   * no LRU update, `last*` untouched. For dumps, tests and debuggers.
   *
   * @param context The context (non-negative safe integer).
   * @param iova The input address in bytes.
   * @returns The physical address in bytes, or -1 when no entry covers it.
   * @throws {IommuError} `EINVAL` for a bad `context` or `iova`.
   */
  peek(context: number, iova: number): number {
    if (
      !(Number.isSafeInteger(iova) && iova >= 0 &&
        Number.isSafeInteger(context) && context >= 0)
    ) {
      throwBadKey(context, iova);
    }
    for (let k = 0; k < this.#nsizes; k++) {
      const slot = this.#find(context, iova, this.#sizes[k]!, this.#invs[k]!);
      if (slot >= 0) {
        return this.#e[slot * SLOT + E_PA]! + (iova - this.#e[slot * SLOT]!);
      }
    }
    return -1;
  }

  /**
   * Cache a translation. An entry with the same (context, page, size) is
   * updated in place; otherwise an invalid way of the set is used, or the
   * policy picks a victim (counted as an eviction). Ignored when the
   * capacity is 0.
   *
   * @param context The context (non-negative safe integer).
   * @param iova Any input address inside the page, in bytes.
   * @param pageSize The span the entry covers, in bytes: a power of two
   * from 1 KiB to 2^52.
   * @param paBase The physical address of the page base, in bytes (not
   * required to be aligned, so a walk cache can store a table address).
   * @param perm Permission bits, an integer from 0 to 0x7fffffff (opaque).
   * @throws {IommuError} `EINVAL` for a bad context, address, page size or
   * perm; `ERANGE` when the page or `[paBase, paBase + pageSize)` would end
   * beyond 2^53 - 1.
   */
  insert(
    context: number,
    iova: number,
    pageSize: number,
    paBase: number,
    perm: number,
  ): void {
    // The fill a walk makes right after `lookup` missed this key (the
    // IOVA it looked up, or its page base) with the last size it probed,
    // in a full set whose victim is the next way in its order and holds an
    // entry of the same size: the lookup validated the key and probed the
    // set, so the set holds no duplicate. One combined test, so that this
    // method stays small enough for V8 to inline into its callers;
    // anything else (and every bad argument) takes the general path.
    const set = this.#missSet;
    const ways = this.ways;
    const way = this.#next[set]!;
    // int32 arithmetic (a slot is below 2^24): no overflow checks.
    const slot = (imul(set, ways) + way) | 0;
    const j = slot << 3;
    const e = this.#e;
    const base = this.#missBase;
    // NaN (every test below fails) when no lookup left a memo.
    const top = MAX - this.#missSize;
    // Literal offsets into the slot, as in `lookup` (`j | n` as in
    // `lookupHitIf`): its stamp equals its rec, and it holds this size.
    if (
      pageSize === this.#missSize && context === this.#missCtx &&
      (iova === base || iova === this.#missIova) && base <= top &&
      isSafe(paBase) && paBase >= 0 && paBase <= top &&
      typeof perm === "number" && (perm & 0x7fffffff) === perm &&
      this.#used[set] === ways && way >= 0 && e[j | 1] === pageSize &&
      slot !== this.#lastSlot && (this.#policy !== 0 || e[j | 5] === e[j | 6])
    ) {
      this.#next[set] = way + 1 === ways ? 0 : way + 1;
      this.#missCtx = NaN;
      this.#hitIfCtx = -1;
      e[j] = base;
      e[j | 2] = context;
      e[j | 3] = paBase;
      e[j | 4] = perm | 0; // never -0
      if (this.#policy === 0) {
        // Only LRU reads stamps: the newest of the order. Other policies
        // do not tick the clock here (see `counters`).
        const t = ++this.#clock;
        e[j | 5] = t;
        e[j | 6] = t;
      }
      this.#quickFills++;
      return;
    }
    this.#insert(context, iova, pageSize, paBase, perm);
  }

  /**
   * {@linkcode Tlb.insert} when no just-missed lookup vouches for the set:
   * validation, a refresh in place, an invalid way, or the victim. One
   * function over V8's 460-bytecode inlining limit, so `insert` (about
   * 450) stays small enough to be inlined into its callers.
   */
  #insert(
    context: number,
    iova: number,
    pageSize: number,
    paBase: number,
    perm: number,
  ): void {
    // Fills come in runs of one size: its log and reciprocal are taken
    // once. The out-of-line check names what is wrong.
    if (pageSize !== this.#fillSize) this.#setFillSize(pageSize);
    if (!isFill(context, iova, pageSize, paBase, perm)) {
      throwBadFill(context, iova, pageSize, paBase, perm);
    }
    const vpn = floor(iova * this.#fillInv);
    const base = vpn * pageSize;
    if (base > MAX - pageSize) throwBadPage(base, pageSize);
    if (this.capacity === 0) return;
    const set = (vpn ^ context) & this.#setMask;
    const ways = this.ways;
    const e = this.#e;
    const d = this.#missIova - base;
    let slot = -1;
    let evicted = true;
    if (
      d >= 0 && d < pageSize && context === this.#missCtx &&
      this.#used[set] === ways && this.#sizeCount[this.#fillShift] !== 0
    ) {
      // The lookup that just missed probed this very set for this size
      // and nothing changed since: no duplicate, no invalid way.
      slot = this.#victim(set);
    } else {
      // A refresh of the same key in place, else the first invalid way,
      // else the victim.
      const first = set * ways;
      const end = first + ways;
      for (let i = first, j = first * SLOT; i < end; i++, j += SLOT) {
        const s = e[j + E_SIZE]!;
        if (s === pageSize && e[j] === base && e[j + E_CTX] === context) {
          if (i === this.#lastSlot) this.#snapshot();
          e[j + E_PA] = paBase;
          e[j + E_PERM] = perm | 0;
          e[j + E_STAMP] = ++this.#clock;
          this.#fills++;
          this.#missCtx = NaN;
          this.#hitIfCtx = -1;
          return;
        }
        if (s === 0 && slot < 0) slot = i;
      }
      if (slot < 0) slot = this.#victim(set);
      else evicted = false;
    }
    this.#missCtx = NaN;
    this.#hitIfCtx = -1;
    const j = slot * SLOT;
    if (slot === this.#lastSlot || e[j + E_SIZE] !== pageSize) {
      this.#prepare(slot, set, pageSize);
    }
    e[j] = base;
    e[j + E_CTX] = context;
    e[j + E_PA] = paBase;
    e[j + E_PERM] = perm | 0;
    const t = ++this.#clock;
    e[j + E_STAMP] = t;
    // A victim becomes the newest of its set's order; a way that was
    // invalid keeps its old place there, looking used since.
    if (evicted) e[j + E_REC] = t;
    this.#fills++;
  }

  /** Validate a page size new to `insert` and keep its log and reciprocal. */
  #setFillSize(pageSize: number): void {
    checkPageSize(pageSize);
    this.#fillSize = pageSize;
    this.#fillShift = Math.round(Math.log2(pageSize));
    this.#fillInv = 1 / pageSize;
  }

  /**
   * Ready a slot that `insert` is about to write when it is the slot the
   * last lookup hit (keep what was hit) or does not hold `pageSize` yet:
   * it was invalid (now live), or held an evicted entry of another size.
   */
  #prepare(slot: number, set: number, pageSize: number): void {
    if (slot === this.#lastSlot) this.#snapshot();
    const j = slot * SLOT + E_SIZE;
    if (this.#e[j] === pageSize) return;
    if (this.#e[j] !== 0) this.#dropSize(slot);
    else {
      this.#used[set]!++;
      this.#live++;
    }
    // The fast path of `insert` fills a size present without `#fillSize`.
    if (pageSize !== this.#fillSize) this.#setFillSize(pageSize);
    const shift = this.#fillShift;
    this.#e[j] = pageSize;
    this.#shift[slot] = shift;
    if (this.#sizeCount[shift]!++ === 0) {
      const n = this.#nsizes++;
      this.#sizes[n] = pageSize;
      this.#invs[n] = 1 / pageSize;
      if (n === 0) this.#sync0();
    }
  }

  /**
   * Install the one listener told of every invalidation, or remove it with
   * null. It runs after each `invalidateAll`, `invalidateContext` and
   * `invalidateRange` that did not throw, even one that removed nothing: a
   * cache in front of this one (a micro TLB) may hold copies of entries
   * this one already evicted.
   *
   * @param listener Called with no arguments; null removes it.
   */
  onInvalidate(listener: (() => void) | null): void {
    this.#onInvalidate = listener;
  }

  /**
   * Remove every entry.
   *
   * @returns The number of entries removed.
   */
  invalidateAll(): number {
    if (this.#lastSlot < this.capacity) this.#snapshot();
    const removed = this.#live;
    // An empty TLB has nothing to clear (sizes, counts and size list are
    // already zero): repeated flushes of an idle unit cost nothing.
    if (removed !== 0) {
      this.#e.fill(0, 0, this.capacity * SLOT); // not the two extra slots
      this.#shift.fill(0);
      this.#sizeCount.fill(0);
      this.#used.fill(0);
      this.#nsizes = 0;
      this.#live = 0;
    }
    this.#missCtx = NaN;
    this.#hitIfCtx = -1;
    this.#invalidations++;
    this.#invalidatedEntries += removed;
    this.#onInvalidate?.();
    return removed;
  }

  /**
   * Remove every entry of one context.
   *
   * @param context The context (non-negative safe integer).
   * @returns The number of entries removed.
   * @throws {IommuError} `EINVAL` for a bad context.
   */
  invalidateContext(context: number): number {
    checkContext(context);
    let removed = 0;
    // Stop once every live entry was seen: an empty or sparse TLB (lazy
    // flushes of an idle domain) costs next to nothing instead of a scan.
    let left = this.#live;
    const e = this.#e;
    for (let slot = 0; left > 0 && slot < this.capacity; slot++) {
      if (e[slot * SLOT + E_SIZE] !== 0) {
        left--;
        if (e[slot * SLOT + E_CTX] === context) {
          this.#drop(slot);
          removed++;
        }
      }
    }
    this.#invalidations++;
    this.#invalidatedEntries += removed;
    this.#onInvalidate?.();
    return removed;
  }

  /**
   * Remove every entry of `context` that overlaps `[iova, iova + size)`,
   * even partly: a 4 KiB invalidation inside a cached 2 MiB page removes
   * the 2 MiB entry.
   *
   * @param context The context (non-negative safe integer).
   * @param iova First byte of the range.
   * @param size Length of the range in bytes (greater than zero).
   * @returns The number of entries removed.
   * @throws {IommuError} `EINVAL` for a bad context, address or size;
   * `ERANGE` when the range ends beyond 2^53 - 1.
   */
  invalidateRange(context: number, iova: number, size: number): number {
    checkContext(context);
    checkRange(iova, size, "TLB invalidation range");
    const last = iova + size - 1;
    // Probe only the sets the range can touch when that is cheaper than
    // scanning the whole array (the common case: unmapping a few pages).
    let probes = 0;
    for (let k = 0; k < this.#nsizes; k++) {
      const inv = this.#invs[k]!;
      probes += Math.floor(last * inv) - Math.floor(iova * inv) + 1;
    }
    let removed = 0;
    const e = this.#e;
    if (probes * this.ways < this.capacity) {
      // Downwards: dropping a size's last entry moves the list's tail
      // (already visited) into slot k, so nothing is skipped.
      for (let k = this.#nsizes - 1; k >= 0; k--) {
        const pageSize = this.#sizes[k]!;
        const inv = this.#invs[k]!;
        const lastVpn = Math.floor(last * inv);
        for (let vpn = Math.floor(iova * inv); vpn <= lastVpn; vpn++) {
          const base = vpn * pageSize;
          const first = ((vpn ^ context) & this.#setMask) * this.ways;
          for (let slot = first; slot < first + this.ways; slot++) {
            if (
              e[slot * SLOT] === base && e[slot * SLOT + E_SIZE] === pageSize &&
              e[slot * SLOT + E_CTX] === context
            ) {
              this.#drop(slot);
              removed++;
            }
          }
        }
      }
    } else {
      for (let slot = 0; slot < this.capacity; slot++) {
        const s = e[slot * SLOT + E_SIZE]!;
        if (
          s !== 0 && e[slot * SLOT + E_CTX] === context &&
          e[slot * SLOT]! <= last &&
          e[slot * SLOT]! + s > iova
        ) {
          this.#drop(slot);
          removed++;
        }
      }
    }
    this.#invalidations++;
    this.#invalidatedEntries += removed;
    this.#onInvalidate?.();
    return removed;
  }

  /**
   * A snapshot of the statistics.
   *
   * @returns A new plain object; later activity does not change it.
   */
  counters(): TlbCounters {
    const fills = this.#fills + this.#quickFills;
    // Ticks that were not hits: every fill, except the fast fills of a
    // policy other than LRU (no stamp to write: they do not tick).
    const ticks = this.#policy === 0 ? fills : this.#fills;
    const hits = this.#clock - this.#hitsBase - ticks + this.#hits;
    return {
      lookups: hits + this.#misses,
      hits,
      misses: this.#misses,
      fills,
      evictions: this.#evictions + this.#quickFills,
      invalidations: this.#invalidations,
      invalidatedEntries: this.#invalidatedEntries,
    };
  }

  /** Set every counter back to zero (the entries stay). */
  resetCounters(): void {
    this.#misses = 0;
    this.#hitsBase = this.#clock;
    this.#hits = 0;
    this.#fills = 0;
    this.#evictions = 0;
    this.#quickFills = 0;
    this.#invalidations = 0;
    this.#invalidatedEntries = 0;
  }

  /**
   * List the live entries in slot order (set by set, way by way). Allocates;
   * meant for dumps and tests, not for hot paths.
   *
   * @returns A new array of {@linkcode TlbEntry}.
   */
  entries(): TlbEntry[] {
    const out: TlbEntry[] = [];
    for (let slot = 0; slot < this.capacity; slot++) {
      const pageSize = this.#e[slot * SLOT + E_SIZE]!;
      if (pageSize === 0) continue;
      out.push({
        context: this.#e[slot * SLOT + E_CTX]!,
        iova: this.#e[slot * SLOT]!,
        pageSize,
        pa: this.#e[slot * SLOT + E_PA]!,
        perm: this.#e[slot * SLOT + E_PERM]!,
        set: Math.floor(slot / this.ways),
        way: slot % this.ways,
      });
    }
    return out;
  }

  /** The slot holding exactly (context, page of iova, pageSize), or -1; `inv` is `1 / pageSize`. */
  #find(
    context: number,
    iova: number,
    pageSize: number,
    inv: number,
  ): number {
    if (this.capacity === 0) return -1;
    const vpn = Math.floor(iova * inv);
    const base = vpn * pageSize;
    const e = this.#e;
    // int32 arithmetic (Math.imul, |0): no overflow checks in the probe.
    let j = Math.imul((vpn ^ context) & this.#setMask, this.#setSpan);
    const end = (j + this.#setSpan) | 0;
    for (; j < end; j = (j + SLOT) | 0) {
      if (
        e[j] === base && e[j | E_SIZE] === pageSize && e[j | E_CTX] === context
      ) {
        return j >> 3; // j / SLOT
      }
    }
    return -1;
  }

  /**
   * The slot of the full set `set` that the policy evicts; counts the
   * eviction (the caller overwrites the slot).
   */
  #victim(set: number): number {
    // Only the general path (`#insert`) gets here; the fast path of
    // `insert` takes the next way of the order itself.
    const ways = this.ways;
    const first = set * ways;
    const e = this.#e;
    this.#evictions++;
    if (this.#policy === 1) {
      const way = this.#next[set]!;
      this.#next[set] = way + 1 === ways ? 0 : way + 1;
      return first + way;
    }
    if (this.#policy === 2) {
      // xorshift32: small, fast and fully determined by the seed.
      let x = this.#rng;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.#rng = x;
      return first + (x >>> 0) % ways;
    }
    // LRU: the next way of the recorded order when not used since.
    const way = this.#next[set]!;
    const w = (first + way) * SLOT;
    if (way >= 0 && e[w + E_STAMP] === e[w + E_REC]) {
      this.#next[set] = way + 1 === ways ? 0 : way + 1;
      return first + way;
    }
    // Else scan for the least recently used way, and note whether the
    // stamps rise circularly from it: then they become the order, so that
    // the next evictions need no scan.
    const end = first + ways;
    let best = first;
    let min = e[first * SLOT + E_STAMP]!;
    let prev = min;
    let falls = 0;
    for (let slot = first + 1; slot < end; slot++) {
      const t = e[slot * SLOT + E_STAMP]!;
      if (t < prev) falls++;
      if (t < min) {
        min = t;
        best = slot;
      }
      prev = t;
    }
    if (prev > e[first * SLOT + E_STAMP]!) falls++;
    // One fall (into the minimum) means the stamps rise from `best` around
    // the set; the fill about to happen makes `best` the newest, so the
    // order then starts at the way after it.
    if (falls <= 1) {
      for (let j = first * SLOT; j < end * SLOT; j += SLOT) {
        e[j + E_REC] = e[j + E_STAMP]!;
      }
      const next = best - first + 1;
      this.#next[set] = next === ways ? 0 : next;
    } else this.#next[set] = -1;
    return best;
  }

  /** Move the size at probe position `k` to the front (accesses cluster by size). */
  #toFront(k: number): void {
    const sizes = this.#sizes;
    const invs = this.#invs;
    const size = sizes[k]!;
    const inv = invs[k]!;
    sizes[k] = sizes[0]!;
    invs[k] = invs[0]!;
    sizes[0] = size;
    invs[0] = inv;
    this.#front(size, inv);
  }

  /** Copy the size probed first to `#size0` / `#inv0`. */
  #sync0(): void {
    this.#front(this.#sizes[0]!, this.#invs[0]!);
  }

  /** Set the copies of the size probed first (see `#size0`, `#mask0`). */
  #front(size: number, inv: number): void {
    this.#size0 = size;
    this.#inv0 = inv;
    if (size <= 2 ** 30) {
      // `| 0`: Smis. One double stored into a field turns it into a boxed
      // double for good (`size - 1` of a Float64Array's size is one), and
      // lookupHitIf then loads the box and converts it with a check.
      this.#shift0 = Math.round(Math.log2(size)) | 0;
      this.#mask0 = (size - 1) | 0;
    } else {
      this.#shift0 = 0;
      this.#mask0 = -1;
    }
  }

  /** Keep what the last lookup hit before its slot changes (see #lastSlot). */
  #snapshot(): void {
    const e = this.#e;
    const from = this.#lastSlot * SLOT;
    const to = this.capacity * SLOT;
    e[to] = e[from]!;
    e[to + E_SIZE] = e[from + E_SIZE]!;
    e[to + E_CTX] = e[from + E_CTX]!;
    e[to + E_PA] = e[from + E_PA]!;
    e[to + E_PERM] = e[from + E_PERM]!;
    this.#lastSlot = this.capacity;
  }

  /** Invalidate one valid slot and keep the page-size list in step. */
  #drop(slot: number): void {
    if (slot === this.#lastSlot) this.#snapshot();
    this.#e[slot * SLOT + E_SIZE] = 0;
    this.#dropSize(slot);
    this.#live--;
    const set = (slot / this.ways) | 0;
    this.#used[set]!--;
    this.#missCtx = NaN;
    this.#hitIfCtx = -1;
  }

  /** Forget the page size of a slot whose entry just went (size list in step). */
  #dropSize(slot: number): void {
    const shift = this.#shift[slot]!;
    this.#shift[slot] = 0;
    if (--this.#sizeCount[shift]! === 0) {
      const pageSize = 2 ** shift;
      const n = --this.#nsizes;
      for (let k = 0; k <= n; k++) {
        if (this.#sizes[k] === pageSize) {
          this.#sizes[k] = this.#sizes[n]!;
          this.#invs[k] = this.#invs[n]!;
          if (k === 0) this.#sync0();
          break;
        }
      }
    }
  }
}

/** Reject a count that is not a non-negative safe integer. */
function checkCount(value: number, what: string): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new IommuError(
      "EINVAL",
      `${what} must be a non-negative integer, got ${String(value)}`,
    );
  }
}

/** Reject a context that is not a non-negative safe integer. */
function checkContext(context: number): void {
  if (
    typeof context !== "number" || !Number.isSafeInteger(context) ||
    context < 0
  ) {
    throw new IommuError(
      "EINVAL",
      `TLB context must be a non-negative safe integer, got ${String(context)}`,
    );
  }
}

/** Reject a page size that is not a power of two in [1 KiB, 2^52]. */
function checkPageSize(pageSize: number): void {
  if (
    typeof pageSize !== "number" || !isPowerOfTwo(pageSize) ||
    pageSize < TLB_MIN_PAGE_SIZE || pageSize > TLB_MAX_PAGE_SIZE
  ) {
    throw new IommuError(
      "EINVAL",
      `TLB page size must be a power of two from ${hex(TLB_MIN_PAGE_SIZE)} to ${
        hex(TLB_MAX_PAGE_SIZE)
      }, got ${
        typeof pageSize === "number" ? hex(pageSize) : String(pageSize)
      }`,
    );
  }
}

/**
 * True when the arguments of an insert are valid (`pageSize` already is):
 * one combined test, a function of its own so `insert` stays small enough
 * to inline.
 */
function isFill(
  context: number,
  iova: number,
  pageSize: number,
  paBase: number,
  perm: number,
): boolean {
  return isSafe(context) && context >= 0 && isSafe(iova) && iova >= 0 &&
    isSafe(paBase) && paBase >= 0 && paBase <= MAX - pageSize &&
    typeof perm === "number" && (perm & 0x7fffffff) === perm;
}

/**
 * Out of line so the insert stays small: name the first bad argument of a
 * fill that failed the combined test.
 */
function throwBadFill(
  context: number,
  iova: number,
  pageSize: number,
  paBase: number,
  perm: number,
): never {
  checkContext(context);
  checkAddress(iova, "TLB IOVA");
  checkAddress(paBase, "TLB PA");
  if (
    typeof perm !== "number" || !Number.isInteger(perm) || perm < 0 ||
    perm > 0x7fffffff
  ) {
    throw new IommuError(
      "EINVAL",
      `TLB perm must be an integer from 0 to 0x7fffffff, got ${String(perm)}`,
    );
  }
  checkRange(paBase, pageSize, "TLB PA page");
  throw new IommuError("EINVAL", "TLB fill is invalid");
}

/** Out of line so the insert stays small: a page that ends beyond 2^53 - 1. */
function throwBadPage(base: number, pageSize: number): never {
  checkRange(base, pageSize, "TLB page");
  throw new IommuError("ERANGE", "TLB page is out of range");
}

/** Out of line so the lookup stays small enough to inline. */
function throwBadKey(context: number, iova: number): never {
  checkContext(context);
  checkAddress(iova, "TLB IOVA");
  throw new IommuError("EINVAL", "TLB lookup key is invalid");
}

/** Fold a safe-integer seed into a non-zero 32-bit xorshift state. */
function seedState(seed: number): number {
  const lo = seed % 0x100000000;
  const hi = Math.floor(seed / 0x100000000);
  const mixed = (lo ^ Math.imul(hi, 0x85ebca6b) ^ 0x9e3779b9) | 0;
  return mixed === 0 ? 0x6d2b79f5 : mixed;
}
