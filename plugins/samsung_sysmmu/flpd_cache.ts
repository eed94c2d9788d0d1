/**
 * The FLPD cache of System MMU v3.2/v3.3: a small fully associative cache of
 * level-1 descriptors, fault descriptors included. A stale entry here is why
 * the Linux driver links empty level-1 slots to an all-zero level-2 table
 * and flushes when such a link is replaced.
 *
 * @module
 */
import { IommuError } from "../../core/mod.ts";

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

/**
 * A direct-mapped cache of `capacity` level-1 entries (a power of two):
 * slot `s` lives in line `s % capacity`, tagged by (table base, slot). The
 * v3.3 prefetch of 16 consecutive entries therefore fills 16 lines without
 * evicting each other. All storage is typed arrays.
 */
export class FlpdCache {
  /** Entries it holds at most (0 = no cache). */
  readonly capacity: number;
  #mask: number;
  #slot: Int32Array;
  #base: Float64Array;
  #value: Uint32Array;
  // Plain number fields: cheaper to bump on the walk path than an object's.
  #hits = 0;
  #misses = 0;
  #fills = 0;
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
    this.#mask = capacity - 1;
    this.#slot = new Int32Array(capacity).fill(-1);
    this.#base = new Float64Array(capacity);
    this.#value = new Uint32Array(capacity);
  }

  /**
   * The cached entry for `slot` of the table at `base`.
   *
   * @param base Level-1 table PA in bytes.
   * @param slot Level-1 index, 0..4095.
   * @returns The cached descriptor (u32), or -1 on a miss.
   */
  lookup(base: number, slot: number): number {
    const i = slot & this.#mask;
    if (this.capacity > 0 && this.#slot[i] === slot && this.#base[i] === base) {
      this.#hits++;
      return this.#value[i]!;
    }
    this.#misses++;
    return -1;
  }

  /**
   * Cache (or refresh) the entry for `slot`, evicting whatever shared its line.
   *
   * @param base Level-1 table PA.
   * @param slot Level-1 index.
   * @param value The descriptor read from RAM.
   */
  fill(base: number, slot: number, value: number): void {
    if (this.capacity === 0) return;
    const i = slot & this.#mask;
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
   */
  fillRun(base: number, first: number, count: number, l1: Uint32Array): void {
    if (this.capacity === 0) return;
    const mask = this.#mask;
    const slots = this.#slot;
    const bases = this.#base;
    const values = this.#value;
    const end = first + count;
    for (let s = first; s < end; s++) {
      const i = s & mask;
      slots[i] = s;
      bases[i] = base;
      values[i] = l1[s]!;
    }
    this.#fills += count;
  }

  /**
   * Drop the entries of level-1 slots `first..last` (any table).
   *
   * @param first First slot.
   * @param last Last slot, inclusive.
   */
  invalidateSlots(first: number, last: number): void {
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
    for (let i = 0; i < this.capacity; i++) if (this.#slot[i]! >= 0) n++;
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
      misses: this.#misses,
      fills: this.#fills,
      invalidated: this.#invalidated,
    };
  }
}
