/**
 * The FLPD cache of System MMU v3.2/v3.3: a small direct-mapped cache of
 * level-1 descriptors, fault descriptors included. A stale entry here is why
 * the Linux driver links empty level-1 slots to an all-zero level-2 table
 * and flushes when such a link is replaced.
 *
 * @module
 */
import { checkAddress, hex, IommuError, isWord32 } from "../../core/mod.ts";

/** FLPD cache statistics. */
export interface FlpdCounters {
  /** Lookups that found the level-1 entry cached. */
  hits: number;
  /** Lookups that missed. */
  misses: number;
  /** Entries filled (walked or prefetched). */
  fills: number;
  /** Entries removed by flushes. */
  invalidated: number;
}

/** Lines per run block: the v3.3 prefetcher fetches 16 aligned entries. */
const RUN = 16;
/** A block's first slot when it holds no run and no valid per-line tag. */
const NO_LINES = -1;
/** A block's first slot when it holds no run and per-line tags that may be valid. */
const LINES = -2;

/**
 * A direct-mapped cache of `capacity` level-1 entries (a power of two):
 * slot `s` lives in line `s % capacity`, tagged by (table base, slot). The
 * v3.3 prefetch of 16 consecutive entries therefore fills 16 lines without
 * evicting each other. All storage is typed arrays.
 *
 * A prefetch of 16 aligned entries is kept as one tag per block of 16 lines
 * (table base, first slot) plus the 16 descriptors, instead of a tag per
 * line: the same contents, hits, misses and evictions as 16 single fills,
 * for a third of the stores. A single fill into such a block, or a flush
 * that covers only part of it, first splits it into per-line tags; a flush
 * that covers it whole drops it (rare: v3.3 fills whole runs, v3.2 single
 * entries).
 */
export class FlpdCache {
  // Every field gets a value of its final kind at declaration (the
  // constructor replaces it): declared without one it would start as
  // undefined, and optimised code would check the kind at each use.

  /** Entries it holds at most (0 = no cache). */
  readonly capacity: number = 0;
  #mask = 0;
  // Per line: its tag when its block holds no run (slot -1 = empty).
  #slot = new Int32Array(0);
  #base = new Float64Array(0);
  #value = new Uint32Array(0);
  // #value as 64-bit words (empty below 16 lines): a prefetch copies 8 of
  // them rather than 16 descriptors.
  #value64 = new BigUint64Array(0);
  // Per block of 16 lines (one block that never holds a run when the
  // capacity is below 16): the run's first slot and table base; or, when
  // the block holds none, NO_LINES (no per-line tag of the block is valid)
  // or LINES (some may be) and NaN. A probe reads the per-line tags only
  // under LINES: a probe of a run block that misses touches one array.
  #runFirst = new Int32Array(0);
  #runBase = new Float64Array(0);
  #runs = false;
  // The level-1 view fillRun last copied from (none yet: an empty view),
  // and the same memory as 64-bit words (empty when it is not 8-byte
  // aligned).
  #src: Uint32Array = new Uint32Array(0);
  #src64: BigUint64Array = new BigUint64Array(0);
  /** Level-1 entries the last {@linkcode FlpdCache.read} read from RAM: 0, 1 or 16. */
  lastReads = 0;
  // Plain number fields: cheaper to bump on the walk path than an object's.
  #hits = 0;
  #misses = 0;
  #fills = 0;
  // Misses of read() that prefetched a run: each is also a miss and RUN
  // fills (one count instead of two on the walk path).
  #runMisses = 0;
  #invalidated = 0;

  /**
   * Build an empty cache.
   *
   * @param capacity Number of level-1 entries cached: 0 (no cache) or a
   * power of two up to 4096.
   * @throws {IommuError} `EINVAL` for any other value.
   */
  constructor(capacity: number) {
    if (
      !Number.isInteger(capacity) || capacity < 0 || capacity > 4096 ||
      (capacity & (capacity - 1)) !== 0
    ) {
      throw new IommuError(
        "EINVAL",
        `FLPD cache capacity must be 0 or a power of two up to 4096, got ${
          String(capacity)
        }`,
      );
    }
    this.capacity = capacity;
    // Capacity 0 keeps one line that is never filled: every slot probes it
    // and misses, with no test of the capacity on the lookup path.
    const lines = Math.max(capacity, 1);
    this.#mask = lines - 1;
    this.#slot = new Int32Array(lines).fill(-1);
    this.#base = new Float64Array(lines);
    this.#value = new Uint32Array(lines);
    this.#runs = capacity >= RUN;
    if (this.#runs) {
      this.#value64 = new BigUint64Array(this.#value.buffer, 0, capacity / 2);
    }
    const blocks = Math.max(1, capacity / RUN);
    this.#runFirst = new Int32Array(blocks).fill(NO_LINES);
    this.#runBase = new Float64Array(blocks).fill(NaN);
  }

  /**
   * The cached entry for `slot` of the table at `base`.
   *
   * @param base Level-1 table PA in bytes.
   * @param slot Level-1 index, 0..4095.
   * @returns The cached descriptor (u32), or -1 on a miss.
   * @throws {IommuError} `EINVAL` when `slot` is not a number (a bigint);
   * nothing is counted.
   */
  lookup(base: number, slot: number): number {
    // A bigint would throw a raw TypeError from `&`.
    if (typeof slot !== "number") throw badRead(slot, null, false);
    const i = slot & this.#mask;
    const b = i >> 4;
    // A run's first slot plus the line's place in the block is the slot
    // it holds there (slot & 15 === i & 15 when the capacity is >= 16);
    // only a block without a run (LINES) has per-line tags to look at.
    const f = this.#runFirst[b]!;
    if (
      f >= 0
        ? f + (i & 15) === slot && this.#runBase[b] === base
        : f === LINES && this.#slot[i] === slot && this.#base[i] === base
    ) {
      this.#hits++;
      return this.#value[i]!;
    }
    this.#misses++;
    return -1;
  }

  /**
   * What a walk does with the cache: on a hit, the cached entry for `slot`
   * of the table at `base`; on a miss, the entry read from `l1` after
   * caching it, with the rest of its aligned 16-entry line when `prefetch`
   * (as {@linkcode FlpdCache.fillRun} would). Counts a lookup and those
   * fills; {@linkcode FlpdCache.lastReads} then tells how many level-1
   * entries it read from `l1`.
   *
   * @param base Level-1 table PA in bytes.
   * @param slot Level-1 index, 0..4095 (below `l1.length`).
   * @param l1 The level-1 table (a live view of it), indexed by slot.
   * @param prefetch Whether a miss fetches the whole aligned 16-entry line
   * (v3.3) instead of the one entry.
   * @returns The descriptor (u32).
   * @throws {IommuError} `EINVAL` when `slot` is not a number (a bigint),
   * on a miss when `l1` is not a table (null) or `slot` is not an index of
   * `l1` from 0 to 4095, or, with `prefetch`, when `l1` ends inside the aligned line
   * holding `slot` (nothing cached, nothing counted).
   */
  read(base: number, slot: number, l1: Uint32Array, prefetch: boolean): number {
    // lookup() and fillRun() in one call: one walk, one pass over the tags.
    // A bigint would throw a raw TypeError from `&`.
    if (typeof slot !== "number") throw badRead(slot, l1, prefetch);
    const i = slot & this.#mask;
    const b = i >> 4;
    const f = this.#runFirst[b]!;
    if (
      f >= 0
        ? f + (i & 15) === slot && this.#runBase[b] === base
        : f === LINES && this.#slot[i] === slot && this.#base[i] === base
    ) {
      this.#hits++;
      this.lastReads = 0;
      return this.#value[i]!;
    }
    // Not an index of `l1` (negative, fractional, past the end): undefined;
    // no table (null) is undefined too, not a raw TypeError.
    const e = l1?.[slot];
    if (
      e === undefined || slot > 4095 ||
      (prefetch === true && (slot | 15) >= l1.length)
    ) {
      throw badRead(slot, l1, prefetch);
    }
    if (prefetch === true && this.#runs === true) {
      // What fillRun() does for the aligned run holding `slot`, without
      // its tests of what this case already knows; one count for the miss
      // and its fills.
      this.#takeRun(base, slot & -RUN, b, l1);
      this.#runMisses++;
      this.lastReads = RUN;
      return e;
    }
    this.#misses++;
    if (prefetch === true) {
      // Below 16 lines: single fills.
      this.fillRun(base, slot & ~(RUN - 1), RUN, l1);
      this.lastReads = RUN;
    } else {
      this.#fillLine(base, slot, e);
      this.lastReads = 1;
    }
    return e;
  }

  /**
   * Cache (or refresh) the entry for `slot`, evicting whatever shared its line.
   *
   * @param base Level-1 table PA.
   * @param slot Level-1 index, 0..4095.
   * @param value The descriptor read from RAM: a 32-bit integer (signed
   * or unsigned).
   * @throws {IommuError} `EINVAL` when `slot` is not an integer from 0 to
   * 4095, `base` not a non-negative safe integer or `value` not a 32-bit
   * integer (nothing cached).
   */
  fill(base: number, slot: number, value: number): void {
    checkSlot(slot);
    checkAddress(base, "FLPD table base");
    if (!isWord32(value)) {
      throw new IommuError(
        "EINVAL",
        `FLPD descriptor must be a 32-bit integer, got ${String(value)}`,
      );
    }
    this.#fillLine(base, slot, value);
  }

  // fill() for a slot its caller has already checked (read's miss,
  // fillRun's slots).
  #fillLine(base: number, slot: number, value: number): void {
    if (this.capacity === 0) return;
    const i = slot & this.#mask;
    const b = i >> 4;
    if (this.#runFirst[b]! >= 0) this.#split(b);
    this.#runFirst[b] = LINES;
    this.#slot[i] = slot;
    this.#base[i] = base;
    this.#value[i] = value;
    this.#fills++;
  }

  /**
   * Cache `count` consecutive entries at once, as the v3.3 prefetcher does:
   * the same as calling {@linkcode FlpdCache.fill} for slots
   * `first..first + count - 1` in order, with values `l1[slot]`.
   *
   * @param base Level-1 table PA.
   * @param first First level-1 index.
   * @param count Number of entries (`first + count` at most `l1.length`).
   * @param l1 The level-1 table (a live view of it), indexed by slot.
   * @throws {IommuError} `EINVAL` when `first` or `count` is not a
   * non-negative integer, or the slots run past 4095 or past the end of
   * `l1` (or `l1` is not a `Uint32Array`), or `base` is not a non-negative
   * safe integer (nothing cached).
   */
  fillRun(base: number, first: number, count: number, l1: Uint32Array): void {
    checkAddress(base, "FLPD table base");
    if (
      !(l1 instanceof Uint32Array && Number.isInteger(first) && first >= 0 &&
        Number.isInteger(count) &&
        count >= 0 && first + count <= Math.min(l1.length, 4096))
    ) {
      throw new IommuError(
        "EINVAL",
        `FLPD fill of ${String(count)} slots from ${
          String(first)
        } does not fit a level-1 table of ${
          l1 instanceof Uint32Array
            ? `${Math.min(l1.length, 4096)} slots`
            : `(not a Uint32Array: ${String(l1)})`
        }`,
      );
    }
    if (this.capacity === 0) return;
    if (count === RUN && this.#runs === true && (first & (RUN - 1)) === 0) {
      this.#takeRun(base, first, (first & this.#mask) >> 4, l1);
      this.#fills += RUN;
      return;
    }
    const end = first + count;
    for (let s = first; s < end; s++) this.#fillLine(base, s, l1[s]!);
  }

  // Exactly one block of lines (block `b`, where aligned slot `first`
  // lives): tag the block with the run, copy its 16 descriptors.
  #takeRun(base: number, first: number, b: number, l1: Uint32Array): void {
    const i0 = b * RUN;
    if (this.#runFirst[b] === LINES) this.#slot.fill(-1, i0, i0 + RUN);
    this.#runFirst[b] = first;
    this.#runBase[b] = base;
    if (l1 !== this.#src) this.#setSource(l1);
    const src = this.#src64;
    if (src.length !== 0) copyRun64(this.#value64, i0 >> 1, src, first >> 1);
    else copyRun(this.#value, i0, l1, first);
  }

  // Remember `l1` and view it as 64-bit words when it is 8-byte aligned
  // (a level-1 table is: 16 KiB aligned in its RAM chunk).
  #setSource(l1: Uint32Array): void {
    this.#src = l1;
    this.#src64 = (l1.byteOffset & 7) === 0
      ? new BigUint64Array(l1.buffer, l1.byteOffset, l1.length >>> 1)
      : new BigUint64Array(0);
  }

  // Turn block `b`'s run into per-line tags (same contents).
  #split(b: number): void {
    const first = this.#runFirst[b]!;
    const base = this.#runBase[b]!;
    const i0 = b * RUN;
    for (let k = 0; k < RUN; k++) {
      this.#slot[i0 + k] = first + k;
      this.#base[i0 + k] = base;
    }
    this.#runFirst[b] = LINES;
    this.#runBase[b] = NaN;
  }

  // Drop the runs wholly inside slots `first..last` and split those that
  // straddle an end, so that the per-line scan below sees the rest.
  #dropRuns(first: number, last: number): void {
    if (!this.#runs) return;
    for (let b = 0; b < this.#runFirst.length; b++) {
      const f = this.#runFirst[b]!;
      if (f < 0 || f + RUN - 1 < first || f > last) continue;
      if (f >= first && f + RUN - 1 <= last) {
        // A block holding a run has no valid per-line tag.
        this.#runFirst[b] = NO_LINES;
        this.#runBase[b] = NaN;
        this.#invalidated += RUN;
      } else this.#split(b);
    }
  }

  /**
   * Drop the entries of level-1 slots `first..last` (any table).
   *
   * @param first First slot.
   * @param last Last slot, inclusive.
   * @throws {IommuError} `EINVAL` when either is not an integer from 0 to
   * 4095 or `last` is below `first` (nothing dropped).
   */
  invalidateSlots(first: number, last: number): void {
    checkSlot(first);
    checkSlot(last);
    if (last < first) {
      throw new IommuError(
        "EINVAL",
        `FLPD invalidation of slots ${first}..${last} ends before it starts`,
      );
    }
    this.#dropRuns(first, last);
    const slots = this.#slot;
    for (let i = 0; i < this.capacity; i++) {
      const s = slots[i]!;
      if (s >= first && s <= last) {
        slots[i] = -1;
        this.#invalidated++;
      }
    }
  }

  /** Drop every entry. */
  invalidateAll(): void {
    this.#dropRuns(0, Infinity);
    const slots = this.#slot;
    for (let i = 0; i < this.capacity; i++) {
      if (slots[i]! >= 0) {
        slots[i] = -1;
        this.#invalidated++;
      }
    }
  }

  /** Number of valid entries. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      if (this.#runFirst[i >> 4]! >= 0 || this.#slot[i]! >= 0) n++;
    }
    return n;
  }

  /**
   * Statistics.
   *
   * @returns A snapshot.
   */
  counters(): FlpdCounters {
    return {
      hits: this.#hits,
      misses: this.#misses + this.#runMisses,
      fills: this.#fills + this.#runMisses * RUN,
      invalidated: this.#invalidated,
    };
  }
}

/**
 * `to[at..at + 7] = from[first..first + 7]`: 16 descriptors moved as 64-bit
 * words, written out like {@linkcode copyRun}, with half its loads, stores
 * and bounds checks (~4 vs ~8 ns a run in a scratch loop). Optimised code
 * moves the words without making BigInts.
 */
function copyRun64(
  to: BigUint64Array,
  at: number,
  from: BigUint64Array,
  first: number,
): void {
  to[at] = from[first]!;
  to[at + 1] = from[first + 1]!;
  to[at + 2] = from[first + 2]!;
  to[at + 3] = from[first + 3]!;
  to[at + 4] = from[first + 4]!;
  to[at + 5] = from[first + 5]!;
  to[at + 6] = from[first + 6]!;
  to[at + 7] = from[first + 7]!;
}

/**
 * `to[at..at + 15] = from[first..first + 15]`, written out: V8 neither
 * unrolls the equivalent loop nor drops its per-element checks, and this
 * copy is most of what an FLPD miss costs (~9 vs ~13 ns for a fillRun,
 * scratch loop). Module-level so fillRun stays small enough to inline.
 */
function copyRun(
  to: Uint32Array,
  at: number,
  from: Uint32Array,
  first: number,
): void {
  to[at] = from[first]!;
  to[at + 1] = from[first + 1]!;
  to[at + 2] = from[first + 2]!;
  to[at + 3] = from[first + 3]!;
  to[at + 4] = from[first + 4]!;
  to[at + 5] = from[first + 5]!;
  to[at + 6] = from[first + 6]!;
  to[at + 7] = from[first + 7]!;
  to[at + 8] = from[first + 8]!;
  to[at + 9] = from[first + 9]!;
  to[at + 10] = from[first + 10]!;
  to[at + 11] = from[first + 11]!;
  to[at + 12] = from[first + 12]!;
  to[at + 13] = from[first + 13]!;
  to[at + 14] = from[first + 14]!;
  to[at + 15] = from[first + 15]!;
}

// A level-1 slot outside 0..4095: EINVAL.
function checkSlot(slot: number): void {
  if (!(Number.isInteger(slot) && slot >= 0 && slot <= 4095)) {
    throw new IommuError(
      "EINVAL",
      `FLPD slot must be an integer from 0 to 4095, got ${String(slot)}`,
    );
  }
}

// Out of line: the walk's miss path only tests.
function badRead(
  slot: unknown,
  l1: Uint32Array | null,
  prefetch: boolean,
): IommuError {
  if (!(l1 instanceof Uint32Array)) {
    return new IommuError(
      "EINVAL",
      `FLPD read wants a number slot and a Uint32Array level-1 table, got slot ${
        typeof slot === "bigint" ? `${slot}n` : String(slot)
      } and table ${l1 === null ? "null" : typeof l1}`,
    );
  }
  return new IommuError(
    "EINVAL",
    prefetch && typeof slot === "number" && Number.isInteger(slot) &&
      slot >= 0 && slot < l1.length && slot <= 4095
      ? `FLPD prefetch of the line holding slot ${
        hex(slot)
      } runs past the level-1 table's ${l1.length} slots`
      : `FLPD slot ${
        typeof slot === "bigint" ? `${slot}n` : String(slot)
      } is not an index from 0 to 4095 of a level-1 table of ${l1.length} slots`,
  );
}
