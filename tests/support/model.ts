/**
 * A deliberately simple reference model of one I/O address space, used by
 * the model-based tests: a sorted list of leaves (IOVA, physical address,
 * page size, protection) and nothing else. It re-derives the page-size split
 * from first principles (at every position the largest page size that the
 * IOVA, the physical address and the remaining length allow), so a bug in
 * the core's splitter or a plugin's encoder shows up as a divergence.
 *
 * Stale translations (lazy unmap before sync) are modelled as a list of
 * removed leaves that a device may still hit until the next sync or flush.
 */

/** One leaf in the model. */
export interface ModelLeaf {
  /** First IOVA, bytes. */
  iova: number;
  /** First physical address, bytes. */
  pa: number;
  /** Leaf size, bytes. */
  pageSize: number;
  /** IOMMU_* protection bits. */
  prot: number;
}

/** A contiguous IOVA run to map onto contiguous physical memory. */
export interface ModelRun {
  /** First IOVA. */
  iova: number;
  /** First physical address. */
  pa: number;
  /** Bytes. */
  size: number;
}

/** What the model predicts for an operation: success, or an error kind. */
export type ModelOutcome = "ok" | "EEXIST" | "EINVAL" | "ENOENT" | "EBUSY";

function alignment(v: number): number {
  if (v === 0) return 2 ** 52;
  if (v < 2 ** 31) return v & -v;
  let a = 1;
  while (v % (a * 2) === 0) a *= 2;
  return a;
}

/**
 * Split `[iova, iova + size)` onto `[pa, …)` into leaves: at each position
 * the largest page size dividing both addresses and fitting in what is left.
 *
 * @param run The run.
 * @param pageSizes Ascending page sizes.
 * @param prot Protection for every leaf.
 * @returns The leaves, in IOVA order.
 */
export function splitRun(
  run: ModelRun,
  pageSizes: readonly number[],
  prot: number,
): ModelLeaf[] {
  const out: ModelLeaf[] = [];
  let { iova, pa, size } = run;
  while (size > 0) {
    const align = Math.min(alignment(iova), alignment(pa));
    let s = pageSizes[0]!;
    for (const p of pageSizes) if (p <= align && p <= size) s = p;
    out.push({ iova, pa, pageSize: s, prot });
    iova += s;
    pa += s;
    size -= s;
  }
  return out;
}

/**
 * Merge physically adjacent consecutive segments (as `mapSg`/`mapPages` do)
 * into runs at consecutive IOVAs from `iova`.
 *
 * @param iova First IOVA.
 * @param segments Physical segments in order.
 * @returns Runs.
 */
export function runsFromSegments(
  iova: number,
  segments: readonly { pa: number; length: number }[],
): ModelRun[] {
  const runs: ModelRun[] = [];
  let at = iova;
  for (const s of segments) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last.pa + last.size === s.pa) {
      last.size += s.length;
    } else runs.push({ iova: at, pa: s.pa, size: s.length });
    at += s.length;
  }
  return runs;
}

/** The model of one domain's page tables. */
export class DomainModel {
  /** Page sizes the domain uses, ascending. */
  readonly pageSizes: readonly number[];
  /** Leaves, sorted by IOVA. */
  leaves: ModelLeaf[] = [];
  /** Leaves removed lazily and not yet invalidated (a TLB may still hold them). */
  stale: ModelLeaf[] = [];

  /** @param pageSizes Ascending page sizes. */
  constructor(pageSizes: readonly number[]) {
    this.pageSizes = [...pageSizes];
  }

  /** Bytes mapped. */
  get bytes(): number {
    let b = 0;
    for (const l of this.leaves) b += l.pageSize;
    return b;
  }

  /**
   * The leaf containing `iova`, if any.
   *
   * @param iova An IOVA.
   * @returns The leaf or undefined.
   */
  leafAt(iova: number): ModelLeaf | undefined {
    for (const l of this.leaves) {
      if (iova >= l.iova && iova < l.iova + l.pageSize) return l;
    }
    return undefined;
  }

  /**
   * Physical address of `iova`, or -1.
   *
   * @param iova An IOVA.
   * @returns The PA or -1.
   */
  translate(iova: number): number {
    const l = this.leafAt(iova);
    return l === undefined ? -1 : l.pa + (iova - l.iova);
  }

  /**
   * Predict and apply a map of several runs with one protection.
   *
   * @param runs Runs (not overlapping each other).
   * @param prot Protection.
   * @param apply When false, only predict.
   * @returns "ok" or "EEXIST".
   */
  map(runs: readonly ModelRun[], prot: number, apply = true): ModelOutcome {
    const add: ModelLeaf[] = [];
    for (const r of runs) add.push(...splitRun(r, this.pageSizes, prot));
    for (const n of add) {
      for (const l of this.leaves) {
        if (n.iova < l.iova + l.pageSize && l.iova < n.iova + n.pageSize) {
          return "EEXIST";
        }
      }
    }
    if (apply) {
      this.leaves.push(...add);
      this.leaves.sort((a, b) => a.iova - b.iova);
    }
    return "ok";
  }

  /**
   * Predict and apply an unmap of `[iova, iova + size)`.
   *
   * @param iova First IOVA.
   * @param size Bytes.
   * @param lazy When true, removed leaves stay reachable as stale entries.
   * @param apply When false, only predict.
   * @returns Bytes removed, or "EINVAL" when a leaf crosses either end.
   */
  unmap(
    iova: number,
    size: number,
    lazy: boolean,
    apply = true,
  ): number | "EINVAL" {
    const end = iova + size;
    let bytes = 0;
    const keep: ModelLeaf[] = [];
    const gone: ModelLeaf[] = [];
    for (const l of this.leaves) {
      const lend = l.iova + l.pageSize;
      if (lend <= iova || l.iova >= end) keep.push(l);
      else if (l.iova >= iova && lend <= end) {
        gone.push(l);
        bytes += l.pageSize;
      } else return "EINVAL";
    }
    if (apply) {
      this.leaves = keep;
      if (lazy) this.stale.push(...gone);
    }
    return bytes;
  }

  /** Forget stale entries (after a sync or a full flush). */
  invalidate(): void {
    this.stale = [];
  }

  /**
   * Every physical address a device may legally reach at `iova` with
   * `access` (IOMMU_READ or IOMMU_WRITE bit): the live mapping when it
   * permits the access, plus any stale leaf that does.
   *
   * @param iova An IOVA.
   * @param access 1 (read) or 2 (write).
   * @returns `{ live, stale }`: live PA or -1, and stale PAs.
   */
  reachable(
    iova: number,
    access: number,
  ): { live: number; mapped: boolean; stale: number[] } {
    const l = this.leafAt(iova);
    const live = l !== undefined && (l.prot & access) !== 0
      ? l.pa + (iova - l.iova)
      : -1;
    const stale: number[] = [];
    for (const s of this.stale) {
      if (iova >= s.iova && iova < s.iova + s.pageSize) {
        stale.push(s.pa + (iova - s.iova));
      }
    }
    return { live, mapped: l !== undefined, stale };
  }
}

/**
 * Compare decoded leaves with the model's; returns a description of the
 * first difference or null when equal.
 *
 * @param actual Leaves decoded from RAM by the plugin.
 * @param expected The model's leaves.
 * @param protMask Protection bits the plugin's format keeps.
 * @returns null, or what differs.
 */
export function diffLeaves(
  actual: readonly ModelLeaf[],
  expected: readonly ModelLeaf[],
  protMask: number,
): string | null {
  const n = Math.max(actual.length, expected.length);
  const fmt = (l: ModelLeaf | undefined): string =>
    l === undefined
      ? "none"
      : `${l.iova.toString(16)}->${l.pa.toString(16)}/${
        l.pageSize.toString(16)
      }:${l.prot & protMask}`;
  for (let i = 0; i < n; i++) {
    const a = actual[i], e = expected[i];
    if (
      a === undefined || e === undefined || a.iova !== e.iova ||
      a.pa !== e.pa || a.pageSize !== e.pageSize ||
      (a.prot & protMask) !== (e.prot & protMask)
    ) {
      return `leaf ${i}: table has ${fmt(a)}, model has ${
        fmt(e)
      } (table ${actual.length} leaves, model ${expected.length})`;
    }
  }
  return null;
}

/**
 * mulberry32: a small, seeded, reproducible PRNG for fuzzers.
 *
 * @param seed Any 32-bit integer.
 * @returns A function giving floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
