/**
 * The FLPD cache of System MMU v3.2/v3.3: a small fully associative cache of
 * level-1 descriptors, fault descriptors included. A stale entry here is why
 * the Linux driver links empty level-1 slots to an all-zero level-2 table
 * and flushes when such a link is replaced.
 *
 * @module
 */

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
 * A cache of `capacity` level-1 entries tagged by (table base, slot), with
 * round-robin replacement. All storage is typed arrays.
 */
export class FlpdCache {
  /** Entries it holds at most (0 = no cache). */
  readonly capacity: number;
  #slot: Int32Array;
  #base: Float64Array;
  #value: Uint32Array;
  #next = 0;
  #c: FlpdCounters = { hits: 0, misses: 0, fills: 0, invalidated: 0 };

  /**
   * @param capacity Number of level-1 entries cached (0 disables it).
   */
  constructor(capacity: number) {
    this.capacity = capacity;
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
    const slots = this.#slot;
    for (let i = 0; i < this.capacity; i++) {
      if (slots[i] === slot && this.#base[i] === base) {
        this.#c.hits++;
        return this.#value[i]!;
      }
    }
    this.#c.misses++;
    return -1;
  }

  /**
   * Cache (or refresh) the entry for `slot`.
   *
   * @param base Level-1 table PA.
   * @param slot Level-1 index.
   * @param value The descriptor read from RAM.
   */
  fill(base: number, slot: number, value: number): void {
    if (this.capacity === 0) return;
    const slots = this.#slot;
    let at = -1;
    for (let i = 0; i < this.capacity; i++) {
      if (slots[i] === slot && this.#base[i] === base) {
        at = i;
        break;
      }
    }
    if (at < 0) {
      at = this.#next;
      this.#next = at + 1 === this.capacity ? 0 : at + 1;
    }
    slots[at] = slot;
    this.#base[at] = base;
    this.#value[at] = value;
    this.#c.fills++;
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
        this.#c.invalidated++;
      }
    }
  }

  /** Drop every entry. */
  invalidateAll(): void {
    const slots = this.#slot;
    for (let i = 0; i < this.capacity; i++) {
      if (slots[i]! >= 0) {
        slots[i] = -1;
        this.#c.invalidated++;
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
    return { ...this.#c };
  }
}
