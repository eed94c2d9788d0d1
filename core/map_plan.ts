/**
 * A map plan: the runs one batched map hands to a driver, in typed arrays so
 * that a 65,536-page batch allocates no per-page objects.
 *
 * @module
 */
import { describeValue, hex, MAX_ADDRESS } from "./address.ts";
import { IommuError } from "./errors.ts";
import { isStableFloat64Array, isTrustedPlan } from "./plan_trust.ts";

/** Most runs a plan holds (2^26: 2 GiB of run arrays). */
const MAX_RUNS = 2 ** 26;

// A run count: an integer from 0 to MAX_RUNS, else EINVAL / ERANGE.
function checkRuns(n: number, what: string): void {
  if (!(Number.isSafeInteger(n) && n >= 0)) {
    throw new IommuError(
      "EINVAL",
      `${what} must be a non-negative integer, got ${String(n)}`,
    );
  }
  if (n > MAX_RUNS) {
    throw new IommuError(
      "ERANGE",
      `${what} ${n} exceeds the ${MAX_RUNS} runs a plan can hold`,
    );
  }
}

/**
 * A list of runs. Run `i` maps `pages[i]` leaves of `pageSize[i]` bytes at
 * `iova[i]`, physically contiguous from `pa[i]`. All values are bytes.
 */
export class MapPlan {
  /** Number of runs. */
  count = 0;
  /**
   * Uniform page size in bytes, or zero (the default): when non-zero the
   * plan is read as `count` pages of this many bytes, run `i` one page at
   * `start + i * uniform` mapping `pa[i]` (the plan of a scattered
   * `mapPages` or scatter-gather list), and drivers walk their tables in
   * IOVA order. {@linkcode checkMapPlan} then checks only `count`, `start`
   * and `pa`, so a driver must read a uniform plan through those fields
   * alone, never through `iova`, `pageSize` or `pages`. In a plan made by
   * {@linkcode MapPlan.setUniform} those arrays hold the same runs (written
   * on first access); nothing checks that they agree when a caller sets
   * this field or pushes more runs (`push` leaves it as it is), and it is
   * the field, not the arrays, that says what is mapped then.
   */
  uniform = 0;
  /**
   * First physical address of each run. After
   * {@linkcode MapPlan.setUniform} with a `Float64Array`, this is that
   * array itself (not a copy) until the plan is cleared or changed.
   */
  pa: Float64Array;
  #iova: Float64Array;
  #pageSize: Float64Array;
  #pages: Float64Array;
  // The plan's own pa storage (`pa` may point at a caller's frame array).
  #paOwn: Float64Array;
  // Runs 0..#lazy-1 of a uniform plan whose iova/pageSize/pages are not
  // written yet: a scattered batch needs only `pa`, and writing three
  // 8-byte arrays per page costs more than the driver's own work.
  #lazy = 0;
  #start = 0;

  /**
   * Create an empty plan.
   *
   * @param capacity Initial number of runs to make room for (grows as needed).
   * @throws {IommuError} `EINVAL` when `capacity` is not a non-negative
   * integer; `ERANGE` above 2^26 runs.
   */
  constructor(capacity = 64) {
    checkRuns(capacity, "plan capacity");
    this.#iova = new Float64Array(capacity);
    this.#paOwn = new Float64Array(capacity);
    this.pa = this.#paOwn;
    this.#pageSize = new Float64Array(capacity);
    this.#pages = new Float64Array(capacity);
  }

  /** First IOVA of each run. */
  get iova(): Float64Array {
    if (this.#lazy > 0) this.#fill();
    return this.#iova;
  }

  /** Leaf size of each run. */
  get pageSize(): Float64Array {
    if (this.#lazy > 0) this.#fill();
    return this.#pageSize;
  }

  /** Leaves in each run. */
  get pages(): Float64Array {
    if (this.#lazy > 0) this.#fill();
    return this.#pages;
  }

  /** First IOVA of run 0 in bytes (`iova[0]`; 0 for an empty plan). */
  get start(): number {
    if (this.count === 0) return 0;
    return this.#lazy > 0 ? this.#start : this.#iova[0]!;
  }

  /**
   * Make the plan `count` runs of one `pageSize` page each at consecutive
   * IOVAs from `iova`, run `i` mapping `pa[i]`, and set
   * {@linkcode MapPlan.uniform}. A `Float64Array` `pa` is used in place
   * (keep it unchanged while the plan is in use); other lists (a proxy or
   * one over a SharedArrayBuffer too) are copied.
   * Values must already be valid.
   *
   * @param iova First IOVA in bytes.
   * @param pageSize Page size in bytes.
   * @param pa Physical address of each page, bytes (at least `count`).
   * @param count Pages.
   * @throws {IommuError} `EINVAL` when `count` is not a non-negative integer
   * or `pa` holds fewer than `count` addresses; `ERANGE` above 2^26 (the
   * plan is left as it was).
   */
  setUniform(
    iova: number,
    pageSize: number,
    pa: ArrayLike<number>,
    count: number,
  ): void {
    checkRuns(count, "uniform plan pages");
    if (!(pa !== null && typeof pa === "object" && pa.length >= count)) {
      throw new IommuError(
        "EINVAL",
        `uniform plan of ${count} pages needs as many addresses`,
      );
    }
    this.clear();
    if (isStableFloat64Array(pa)) {
      this.pa = pa;
    } else {
      this.reserve(count);
      const own = this.#paOwn;
      for (let i = 0; i < count; i++) own[i] = pa[i]!;
    }
    this.count = count;
    this.uniform = pageSize;
    this.#start = iova;
    this.#lazy = count;
  }

  /**
   * Append a run.
   *
   * @param iova First IOVA.
   * @param pa First physical address.
   * @param pageSize Leaf size.
   * @param pages Number of leaves.
   * @throws {IommuError} `EINVAL` when an argument is not a number (a
   * bigint would not fit the Float64Array and threw a raw TypeError); the
   * plan is unchanged. The values themselves are checked by the Domain.
   */
  push(iova: number, pa: number, pageSize: number, pages: number): void {
    if (
      typeof iova !== "number" || typeof pa !== "number" ||
      typeof pageSize !== "number" || typeof pages !== "number"
    ) {
      throw notNumbers(iova, pa, pageSize, pages);
    }
    const i = this.count;
    if (this.#lazy > 0 || this.pa !== this.#paOwn) this.#own();
    if (i === this.#iova.length) this.#grow();
    this.#iova[i] = iova;
    this.#paOwn[i] = pa;
    this.#pageSize[i] = pageSize;
    this.#pages[i] = pages;
    this.count = i + 1;
  }

  /**
   * Make room for at least `capacity` runs, so that a caller may store runs
   * `count .. capacity - 1` straight into the arrays (re-read the array
   * fields after this call: they may be new arrays).
   *
   * @param capacity Runs.
   * @throws {IommuError} `EINVAL` when `capacity` is not a non-negative
   * integer; `ERANGE` above 2^26 runs.
   */
  reserve(capacity: number): void {
    checkRuns(capacity, "plan capacity");
    if (this.#lazy > 0 || this.pa !== this.#paOwn) this.#own();
    while (this.#iova.length < capacity) this.#grow();
  }

  /** Empty the plan, keeping its storage. */
  clear(): void {
    this.count = 0;
    this.uniform = 0;
    this.#lazy = 0;
    this.pa = this.#paOwn;
  }

  /** Bytes covered by all runs. */
  get bytes(): number {
    if (this.#lazy > 0) return this.#lazy * this.uniform;
    let total = 0;
    for (let i = 0; i < this.count; i++) {
      total += this.#pageSize[i]! * this.#pages[i]!;
    }
    return total;
  }

  // Write the deferred arrays of a uniform plan.
  #fill(): void {
    const n = this.#lazy;
    this.#lazy = 0;
    while (this.#iova.length < n) this.#grow();
    const iova = this.#iova;
    const size = this.uniform;
    const start = this.#start;
    for (let i = 0; i < n; i++) iova[i] = start + i * size;
    this.#pageSize.fill(size, 0, n);
    this.#pages.fill(1, 0, n);
  }

  // Bring every array, pa included, into the plan's own storage.
  #own(): void {
    if (this.#lazy > 0) this.#fill();
    if (this.pa !== this.#paOwn) {
      const from = this.pa;
      const n = this.count;
      while (this.#iova.length < n) this.#grow();
      this.#paOwn.set(from.subarray(0, n));
      this.pa = this.#paOwn;
    }
  }

  #grow(): void {
    // At least 1: a plan created with capacity 0 would otherwise never grow.
    const n = Math.max(1, this.#iova.length * 2);
    const grow = (a: Float64Array): Float64Array => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const paIsOwn = this.pa === this.#paOwn;
    this.#iova = grow(this.#iova);
    this.#paOwn = grow(this.#paOwn);
    this.#pageSize = grow(this.#pageSize);
    this.#pages = grow(this.#pages);
    if (paIsOwn) this.pa = this.#paOwn;
  }
}

/**
 * What a driver's tables can hold, for {@linkcode checkMapPlan}: an
 * `IommuCaps` fits.
 */
export interface MapPlanLimits {
  /** Leaf sizes in bytes the tables can write. */
  readonly pageSizes: readonly number[];
  /** IOVA width in bits (IOVAs below `2^inputBits`). */
  readonly inputBits: number;
  /** Physical address width in bits (addresses below `2^outputBits`). */
  readonly outputBits: number;
}

/** The fields of a plan {@linkcode checkMapPlan} reads (a plan or a look-alike). */
export type MapPlanInput =
  & Pick<MapPlan, "count" | "iova" | "pa" | "pageSize" | "pages">
  & Partial<Pick<MapPlan, "uniform" | "start">>;

// A failed plan check.
function badPlan(kind: "EINVAL" | "ERANGE", message: string): never {
  throw new IommuError(kind, `map plan: ${message}`);
}

// `v` an aligned address whose `bytes` end at or below `end`; otherwise the
// error naming run `r` and `what`.
function checkRunRange(
  v: number,
  bytes: number,
  align: number,
  end: number,
  r: number,
  what: string,
): void {
  if (!(typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) {
    badPlan(
      "EINVAL",
      `run ${r} ${what} ${String(v)} is not a non-negative safe integer`,
    );
  }
  // Dividing by a power of two is exact (no slow `%` on doubles).
  if (Math.floor(v / align) * align !== v) {
    badPlan(
      "EINVAL",
      `run ${r} ${what} ${hex(v)} is not aligned to ${hex(align)}`,
    );
  }
  if (v + bytes > end) {
    badPlan(
      "ERANGE",
      `run ${r} ${what} ${hex(v)}+${hex(bytes)} ends beyond ${hex(end)}`,
    );
  }
}

/**
 * Check a plan handed to a driver's `map` before anything is written: a
 * sane run count; each run's IOVA, physical address and page count
 * non-negative safe integers; its page size one of `limits.pageSizes`, both
 * addresses aligned to it and every page inside the input and output
 * ranges. Costs one pass over the runs (a uniform plan: over its
 * addresses); skips the plan a `Domain` built from arguments it checked.
 * Runs must come in ascending IOVA order without overlapping. For a plan
 * with a non-zero `uniform` only `count`, `uniform`, `start` (else
 * `iova[0]`) and `pa` are checked, as `count` pages from `start`: its other
 * arrays are not, so the driver must map such a plan from those fields
 * alone (see {@linkcode MapPlan.uniform}).
 *
 * @param plan The plan (a `MapPlan` or a look-alike with the same fields).
 * @param limits Page sizes and address widths of the tables.
 * @throws {IommuError} `EINVAL` for a plan that is not an object, a run
 * count that is not a non-negative safe integer (or exceeds the arrays), a
 * page size not in `limits`, an address or page count that is not a safe
 * integer (NaN, negative, fractional), a misaligned address or a run
 * overlapping or preceding the run before it; `ERANGE`
 * when a run ends beyond `2^inputBits` (IOVA) or `2^outputBits` (physical).
 */
export function checkMapPlan(plan: MapPlanInput, limits: MapPlanLimits): void {
  if (isTrustedPlan(plan)) return;
  if (plan === null || typeof plan !== "object") {
    badPlan("EINVAL", `expected a MapPlan, got ${String(plan)}`);
  }
  const n = plan.count;
  if (!(typeof n === "number" && Number.isSafeInteger(n) && n >= 0)) {
    badPlan(
      "EINVAL",
      `run count ${String(n)} is not a non-negative safe integer`,
    );
  }
  if (n === 0) return;
  const sizes = limits.pageSizes;
  const inEnd = Math.min(2 ** limits.inputBits, MAX_ADDRESS + 1);
  const outEnd = Math.min(2 ** limits.outputBits, MAX_ADDRESS + 1);
  const uniform = plan.uniform ?? 0;
  const pa = plan.pa;
  if (uniform !== 0) {
    if (!sizes.includes(uniform)) {
      badPlan(
        "EINVAL",
        `uniform page size ${String(uniform)} is not one of ${
          sizes.map(hex).join(", ")
        }`,
      );
    }
    const start = plan.start ?? plan.iova[0]!;
    checkRunRange(start, n * uniform, uniform, inEnd, 0, "IOVA");
    if (!(pa.length >= n)) {
      badPlan("EINVAL", `${n} runs but ${pa.length} physical addresses`);
    }
    for (let r = 0; r < n; r++) {
      const p = pa[r]!;
      // One combined test per page; the error is built out of line.
      if (
        !(p >= 0 && p + uniform <= outEnd &&
          Math.floor(p / uniform) * uniform === p)
      ) checkRunRange(p, uniform, uniform, outEnd, r, "physical address");
    }
    return;
  }
  const iova = plan.iova, size = plan.pageSize, pages = plan.pages;
  if (
    !(iova.length >= n && pa.length >= n && size.length >= n &&
      pages.length >= n)
  ) {
    badPlan("EINVAL", `run count ${n} exceeds the plan's arrays`);
  }
  let next = 0;
  for (let r = 0; r < n; r++) {
    const s = size[r]!;
    if (!sizes.includes(s)) {
      badPlan(
        "EINVAL",
        `run ${r} page size ${String(s)} is not one of ${
          sizes.map(hex).join(", ")
        }`,
      );
    }
    const k = pages[r]!;
    if (!(Number.isSafeInteger(k) && k > 0)) {
      badPlan(
        "EINVAL",
        `run ${r} page count ${String(k)} is not a positive integer`,
      );
    }
    const at = iova[r]!;
    checkRunRange(at, k * s, s, inEnd, r, "IOVA");
    // Drivers check each run against the tables as they were, so two runs
    // of one plan must never claim the same IOVA.
    if (at < next) {
      badPlan(
        "EINVAL",
        `run ${r} IOVA ${hex(at)} overlaps or precedes run ${r - 1}`,
      );
    }
    next = at + k * s;
    checkRunRange(pa[r]!, k * s, s, outEnd, r, "physical address");
  }
}

function notNumbers(...values: unknown[]): IommuError {
  return new IommuError(
    "EINVAL",
    `MapPlan.push takes numbers, got ${values.map(describeValue).join(", ")}`,
  );
}
