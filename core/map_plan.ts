/**
 * A map plan: the runs one batched map hands to a driver, in typed arrays so
 * that a 65,536-page batch allocates no per-page objects.
 *
 * @module
 */

/**
 * A list of runs. Run `i` maps `pages[i]` leaves of `pageSize[i]` bytes at
 * `iova[i]`, physically contiguous from `pa[i]`. All values are bytes.
 */
export class MapPlan {
  /** Number of runs. */
  count = 0;
  /**
   * A hint for drivers: when non-zero, every run is exactly one page of
   * this many bytes and run `i` starts at `iova[0] + i * uniform` (the plan
   * of a scattered `mapPages` or scatter-gather list). A driver may then read
   * only `pa` and walk its tables in IOVA order; the other arrays are filled
   * all the same. Zero when unknown.
   */
  uniform = 0;
  /** First IOVA of each run. */
  iova: Float64Array;
  /** First physical address of each run. */
  pa: Float64Array;
  /** Leaf size of each run. */
  pageSize: Float64Array;
  /** Leaves in each run. */
  pages: Float64Array;

  /**
   * Create an empty plan.
   *
   * @param capacity Initial number of runs to make room for (grows as needed).
   */
  constructor(capacity = 64) {
    this.iova = new Float64Array(capacity);
    this.pa = new Float64Array(capacity);
    this.pageSize = new Float64Array(capacity);
    this.pages = new Float64Array(capacity);
  }

  /**
   * Append a run.
   *
   * @param iova First IOVA.
   * @param pa First physical address.
   * @param pageSize Leaf size.
   * @param pages Number of leaves.
   */
  push(iova: number, pa: number, pageSize: number, pages: number): void {
    const i = this.count;
    if (i === this.iova.length) this.#grow();
    this.iova[i] = iova;
    this.pa[i] = pa;
    this.pageSize[i] = pageSize;
    this.pages[i] = pages;
    this.count = i + 1;
  }

  /**
   * Make room for at least `capacity` runs, so that a caller may store runs
   * `count .. capacity - 1` straight into the arrays (re-read the array
   * fields after this call: they may be new arrays).
   *
   * @param capacity Runs.
   */
  reserve(capacity: number): void {
    while (this.iova.length < capacity) this.#grow();
  }

  /** Empty the plan, keeping its storage. */
  clear(): void {
    this.count = 0;
    this.uniform = 0;
  }

  /** Bytes covered by all runs. */
  get bytes(): number {
    let total = 0;
    for (let i = 0; i < this.count; i++) {
      total += this.pageSize[i]! * this.pages[i]!;
    }
    return total;
  }

  #grow(): void {
    // At least 1: a plan created with capacity 0 would otherwise never grow.
    const n = Math.max(1, this.iova.length * 2);
    const grow = (a: Float64Array): Float64Array => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.iova = grow(this.iova);
    this.pa = grow(this.pa);
    this.pageSize = grow(this.pageSize);
    this.pages = grow(this.pages);
  }
}
