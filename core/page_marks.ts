/**
 * A reusable set of physical addresses in typed arrays, for marks that are
 * filled and emptied over and over (a domain's note of the page-table pages
 * it deferred into a gather): emptying it is O(1) and, once it has grown to
 * the largest population seen, adding allocates nothing.
 *
 * @module
 */

const FIRST_CAPACITY = 64;

/** {@linkcode PageMarks.visit}: a member, first visited in this pass. */
export const VISIT_FIRST = 1;
/** {@linkcode PageMarks.visit}: a member visited already in this pass. */
export const VISIT_AGAIN = 0;
/** {@linkcode PageMarks.visit}: not a member. */
export const NOT_MEMBER = -1;

/**
 * A set of addresses (non-negative safe integers, bytes) with an epoch
 * label and a visit pass for finding duplicates in a list of members.
 * Internal to the core (not exported from mod.ts).
 */
export class PageMarks {
  /** The gather epoch these marks belong to (the owner sets and compares it). */
  epoch: number;
  // Open addressing with linear probing; a slot is a member only when its
  // stamp is the current generation, so clear() is one increment (stamps
  // are doubles: counting to 2^53 never wraps).
  #keys = new Float64Array(FIRST_CAPACITY);
  #stamps = new Float64Array(FIRST_CAPACITY);
  #visits = new Float64Array(FIRST_CAPACITY);
  #shift = 32 - Math.log2(FIRST_CAPACITY);
  #gen = 1;
  #visit = 1;
  #count = 0;

  /**
   * An empty set.
   *
   * @param epoch The initial {@linkcode PageMarks.epoch}.
   */
  constructor(epoch: number) {
    this.epoch = epoch;
  }

  /** Members (distinct addresses added since the last clear). */
  get size(): number {
    return this.#count;
  }

  /** Forget every member (and every visit), keeping the storage. */
  clear(): void {
    this.#count = 0;
    this.#gen++;
  }

  /**
   * Add `pa` (no effect when it is a member already).
   *
   * @param pa An address in bytes, a non-negative safe integer.
   */
  add(pa: number): void {
    if (2 * (this.#count + 1) > this.#keys.length) this.#grow();
    const i = this.#probe(pa);
    if (i >= 0) return;
    this.#keys[~i] = pa;
    this.#stamps[~i] = this.#gen;
    this.#visits[~i] = 0;
    this.#count++;
  }

  /**
   * Whether `value` is a member.
   *
   * @param value Anything (a non-number is never a member).
   * @returns True for a member.
   */
  has(value: unknown): boolean {
    return typeof value === "number" && this.#probe(value) >= 0;
  }

  /** Start a visit pass: no member has been visited in it yet. */
  startVisits(): void {
    this.#visit++;
  }

  /**
   * Visit `value` in the current pass: one probe answers both whether it is
   * a member and whether this pass has visited it already.
   *
   * @param value Anything (a non-number is never a member).
   * @returns {@linkcode VISIT_FIRST} the first time a member is visited in
   * the pass, {@linkcode VISIT_AGAIN} when it was visited already,
   * {@linkcode NOT_MEMBER} for a non-member (nothing is recorded then).
   */
  visit(value: unknown): number {
    if (typeof value !== "number") return NOT_MEMBER;
    const i = this.#probe(value);
    if (i < 0) return NOT_MEMBER;
    if (this.#visits[i] === this.#visit) return VISIT_AGAIN;
    this.#visits[i] = this.#visit;
    return VISIT_FIRST;
  }

  // The slot holding `pa`, or ~(the free slot where it would go).
  #probe(pa: number): number {
    const keys = this.#keys;
    const stamps = this.#stamps;
    const gen = this.#gen;
    const mask = keys.length - 1;
    let i = markHash(pa, this.#shift);
    while (stamps[i] === gen) {
      if (keys[i] === pa) return i;
      i = (i + 1) & mask;
    }
    return ~i;
  }

  // Double the capacity, moving the members (their visits restart).
  #grow(): void {
    const keys = this.#keys;
    const stamps = this.#stamps;
    const gen = this.#gen;
    const cap = 2 * keys.length;
    const nextKeys = new Float64Array(cap);
    const nextStamps = new Float64Array(cap);
    const shift = 32 - Math.log2(cap);
    const mask = cap - 1;
    for (let j = 0; j < keys.length; j++) {
      if (stamps[j] !== gen) continue;
      let i = markHash(keys[j]!, shift);
      while (nextStamps[i] === 1) i = (i + 1) & mask;
      nextKeys[i] = keys[j]!;
      nextStamps[i] = 1;
    }
    this.#keys = nextKeys;
    this.#stamps = nextStamps;
    this.#visits = new Float64Array(cap);
    this.#shift = shift;
    this.#gen = 1;
    this.#visit = 1;
  }
}

// Table index of an address: its 1 KiB block number split into 32-bit
// halves, mixed, top bits kept (page-table pages are 1 KiB aligned; any
// other number only collides more).
function markHash(pa: number, shift: number): number {
  const k = pa / 1024;
  const lo = k >>> 0;
  const hi = (k / 4294967296) >>> 0;
  return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> shift;
}
