/**
 * The driver's LPAE page table: builds, changes and frees 4 KiB-granule
 * tables in simulated RAM. Descriptors are written through live `Uint32Array`
 * views of each table (two words per descriptor, low word first); a small
 * node per table (never per page) keeps the view, the live-entry count and the
 * child nodes, so a batch of pages costs typed-array stores only.
 *
 * @module
 */
import {
  checkAddress,
  checkMapPlan,
  checkProt,
  checkUnmapArgs,
  hex,
  IommuError,
  type IotlbGather,
  type MappingRecord,
  type MapPlan,
  type MapPlanLimits,
  type PageTableLevelStats,
  type PhysicalMemory,
} from "../../core/mod.ts";
import {
  decodeProt,
  DESC_TYPE_BLOCK,
  DESC_TYPE_TABLE,
  descAddress,
  ENTRIES_PER_TABLE,
  GRANULE,
  leafAddress,
  leafAttrHi,
  leafAttrLo,
  LEVEL_SIZE,
  levelOfSize,
  LPAE_PAGE_SIZES,
  lpaeGeometry,
  type LpaeStage,
} from "./lpae.ts";

/** One table in RAM and the driver's bookkeeping for it. */
class TableNode {
  readonly pa: number;
  readonly level: number;
  readonly view: Uint32Array;
  /** Valid descriptors in the table. */
  live = 0;
  /** Child tables by index (levels above the last); null at level 3. */
  readonly children: (TableNode | undefined)[] | null;

  constructor(pa: number, level: number, view: Uint32Array) {
    this.pa = pa;
    this.level = level;
    this.view = view;
    this.children = level < 3
      ? new Array<TableNode | undefined>(view.length >>> 1)
      : null;
  }
}

/** Options of an {@linkcode LpaePageTable}. */
export interface LpaePageTableOptions {
  /** IOVA width in bits, 32 to 48. */
  inputBits: number;
  /** Output address width in bits, 32 to 48 (`map` refuses addresses beyond). */
  outputBits: number;
  /** Attribute format (1: AP bits, read always allowed; 2: HAP read/write bits). */
  stage: LpaeStage;
}

/**
 * An LPAE page table with a 4 KiB granule (4 KiB pages, 2 MiB and 1 GiB
 * blocks). The root is allocated at construction.
 *
 * @example
 * ```ts
 * import { PhysicalMemory } from "../../core/mod.ts";
 * import { LpaePageTable } from "./page_table.ts";
 * const ram = new PhysicalMemory({ size: 64 << 20 });
 * const pt = new LpaePageTable(ram, { inputBits: 48, outputBits: 48, stage: 1 });
 * pt.mapRange(0x20_0000, 0x40_0000, 0x20_0000, 1, 3);
 * if (pt.iovaToPhys(0x20_1234) !== 0x40_1234) throw new Error("bad walk");
 * ```
 */
export class LpaePageTable {
  /** Physical address of the root table. */
  readonly root: number;
  /** First level walked (0 or 1). */
  readonly startLevel: number;
  /** Descriptors in the root table. */
  readonly rootEntries: number;
  /** IOVA width in bits. */
  readonly inputBits: number;
  /** Attribute format. */
  readonly stage: LpaeStage;
  #memory: PhysicalMemory;
  #limits: MapPlanLimits; // what map accepts
  #inputEnd: number; // 2^inputBits, one past the last IOVA
  #root: TableNode;
  #tables = 1;
  // The most tables held at once: bounds the node cache below.
  #peakTables = 1;
  #freed = false;
  // The check pass's count of new tables: per level, the base of the last
  // region whose table it counted. checkMapPlan refuses runs that are not
  // in ascending IOVA order (and the core's own plans are built that way),
  // so each level's regions come in ascending order and a table is new
  // exactly when its region lies above the last one counted. (A Set of the
  // regions allocated as it grew and again once cleared: about 80 bytes
  // per table.)
  #pendTop = new Float64Array(4);
  // Write-pass cursor: the last leaf table written and the region it covers.
  #wLevel = -1;
  #wRegion = -1;
  #wNode: TableNode | null = null;
  // Check-pass cursor and the count of tables the plan creates.
  #cLevel = -1;
  #cRegion = -1;
  #cNode: TableNode | null = null;
  #needed = 0;
  // Frames allocated for the new tables (the first #poolN), taken from the
  // end; kept between maps so a large map does not grow an array each time.
  #pool = new Float64Array(16);
  #poolN = 0;
  // The node of each table frame this page table has built (at most about
  // twice the most tables it has held at once, plus 256; dropped by free()),
  // kept after the table is freed: when the
  // allocator hands the frame back for a table of the same level, the node
  // and its view are reused instead of allocated.
  // A large map and unmap would otherwise allocate two objects per table
  // each time, which the engine promotes and keeps until a full collection
  // (growing its heap; on a VM each new page of heap costs a page fault).
  #nodes = new Map<number, TableNode>(); // by frame number (pa / 4 KiB)
  // Empty tables the checked plan replaces by blocks: parent, index and the
  // IOVA of the entry (filled by the check pass, acted on after allocation).
  #repNode: TableNode[] = [];
  #repIdx: number[] = [];
  #repIova: number[] = [];
  // Tables unlinked by a map (replaced by blocks) and not yet freed, and the
  // IOVA range they covered (inclusive end).
  #released: number[] = [];
  #relStart = Infinity;
  #relEnd = -1;
  #plan1: MapPlanLike = {
    count: 0,
    iova: new Float64Array(1),
    pa: new Float64Array(1),
    pageSize: new Float64Array(1),
    pages: new Float64Array(1),
  };

  /**
   * Build it (see the class documentation).
   *
   * @param memory RAM the tables live in.
   * @param options Geometry and attribute format.
   * @throws {IommuError} `EINVAL` for an input or output size outside
   * 32..48; `ENOMEM` when the root table cannot be allocated.
   */
  constructor(memory: PhysicalMemory, options: LpaePageTableOptions) {
    const { inputBits, outputBits } = options;
    for (
      const [what, bits] of [["input", inputBits], [
        "output",
        outputBits,
      ]] as const
    ) {
      if (!Number.isInteger(bits) || bits < 32 || bits > 48) {
        throw new IommuError(
          "EINVAL",
          `LPAE ${what} size must be 32 to 48 bits, got ${String(bits)}`,
        );
      }
    }
    this.#limits = { pageSizes: LPAE_PAGE_SIZES, inputBits, outputBits };
    this.#inputEnd = 2 ** inputBits;
    const g = lpaeGeometry(inputBits);
    this.startLevel = g.startLevel;
    this.rootEntries = g.rootEntries;
    this.inputBits = inputBits;
    this.stage = options.stage;
    this.#memory = memory;
    const bytes = Math.max(g.rootEntries * 8, 64);
    this.root = memory.frames.alloc(bytes);
    this.#root = new TableNode(
      this.root,
      g.startLevel,
      memory.view32(this.root, g.rootEntries * 8),
    );
  }

  /** Number of tables (root included) currently allocated. */
  get tableCount(): number {
    return this.#tables;
  }

  /**
   * Map every run of `plan` atomically. Three passes: check every page for an
   * existing mapping and count the tables to create (no change), allocate
   * them all (freed again on `ENOMEM`), then link tables and write leaves.
   *
   * @param plan Runs (page sizes 4 KiB, 2 MiB or 1 GiB; aligned; inside the input size).
   * @param prot `IOMMU_*` bits: a combination of the known bits
   * (`IOMMU_PROT_MASK`) including `IOMMU_READ` or `IOMMU_WRITE`.
   * @throws {IommuError} `EINVAL` for a `prot` with neither `IOMMU_READ`
   * nor `IOMMU_WRITE` (as `Domain.map`; Linux's io-pgtable maps nothing
   * and returns 0: a leaf would still read as readable at stage 1), with an
   * unknown bit, or not an integer; `EINVAL`/`ERANGE` for a malformed plan
   * (see `checkMapPlan`: a NaN or negative address, a page size other than
   * 4 KiB, 2 MiB or 1 GiB, a misaligned address, a run past the input or
   * output size); `EEXIST` when a page is mapped already (by a leaf of any
   * size, or a table where a block should go); `ENOMEM` when a table cannot
   * be allocated; `EPERM` after `free`. Nothing changes on a throw.
   */
  map(plan: MapPlanLike, prot: number): void {
    this.#alive();
    checkProt(prot);
    checkMapPlan(plan, this.#limits);
    const uniform = plan.uniform ?? 0;
    // A uniform plan is read through `start` and `pa` only: its other
    // arrays may not be written out yet, and reading them would.
    const start = uniform > 0 ? plan.start ?? plan.iova[0]! : 0;
    const needed = uniform > 0
      ? this.#checkUniform(start, uniform, plan.count)
      : this.#check(plan);
    let pool = this.#pool;
    if (pool.length < needed) {
      pool = this.#pool = new Float64Array(Math.max(needed, pool.length * 2));
    }
    this.#poolN = 0;
    try {
      for (let i = 0; i < needed; i++) {
        pool[i] = this.#memory.frames.alloc(GRANULE);
        this.#poolN = i + 1;
      }
    } catch (e) {
      for (let i = 0; i < this.#poolN; i++) this.#memory.frames.free(pool[i]!);
      this.#poolN = 0;
      throw e;
    }
    if (this.#repNode.length > 0) this.#replaceEmpty();
    this.#wLevel = -1;
    this.#wNode = null;
    const attrLo = leafAttrLo(prot, this.stage);
    const attrHi = leafAttrHi(prot);
    if (uniform > 0) {
      this.#writeUniform(start, uniform, plan.pa, plan.count, attrLo, attrHi);
      return;
    }
    const count = plan.count;
    const pIova = plan.iova,
      pPa = plan.pa,
      pSize = plan.pageSize,
      pPages = plan.pages;
    let r = 0;
    while (r < count) {
      const size = pSize[r]!;
      if (pPages[r] !== 1) {
        this.#writeRun(pIova[r]!, pPa[r]!, size, pPages[r]!, attrLo, attrHi);
        r++;
        continue;
      }
      // A chain of one-leaf runs at consecutive IOVAs: fill each table in
      // one loop.
      const leafLevel = levelOfSize(size);
      const lo0 = attrLo |
        (leafLevel === 3 ? DESC_TYPE_TABLE : DESC_TYPE_BLOCK);
      let iova = pIova[r]!;
      const node = this.#leafTable(iova, leafLevel);
      const v = node.view;
      const room = node === this.#root ? this.rootEntries : ENTRIES_PER_TABLE;
      const idx = Math.floor(iova / size) & 511;
      let j = idx;
      do {
        const pa = pPa[r]!;
        // ToUint32 is the exact low word of any integer below 2^53 (a `%`
        // on doubles above 2^31 is a slow floating-point remainder).
        const lo = pa >>> 0;
        v[j << 1] = lo | lo0;
        v[(j << 1) + 1] = ((pa - lo) / 0x100000000) | attrHi;
        j++;
        r++;
        iova += size;
      } while (
        r < count && j < room && pPages[r] === 1 && pSize[r] === size &&
        pIova[r] === iova
      );
      node.live += j - idx;
    }
  }

  /**
   * Map `count` leaves of `pageSize` bytes from `iova` to contiguous `pa`
   * (one run); same contract as {@linkcode LpaePageTable.map}.
   *
   * @param iova First IOVA.
   * @param pa First physical address.
   * @param pageSize 4 KiB, 2 MiB or 1 GiB.
   * @param count Leaves.
   * @param prot `IOMMU_*` bits.
   * @throws {IommuError} as {@linkcode LpaePageTable.map}; `EINVAL` when
   * `iova` or `pa` is not a non-negative safe integer or `count` not a
   * positive one; `ERANGE` when the leaves run past the input size (nothing
   * changes).
   */
  mapRange(
    iova: number,
    pa: number,
    pageSize: number,
    count: number,
    prot: number,
  ): void {
    checkAddress(iova, "IOVA");
    checkAddress(pa, "physical address");
    if (!(Number.isSafeInteger(count) && count > 0)) {
      throw new IommuError(
        "EINVAL",
        `leaf count must be a positive integer, got ${String(count)}`,
      );
    }
    // Checked before the leaf size (map's first test), so a bad size is
    // still map's EINVAL: the input size bounds any size's leaves.
    if (iova + count * pageSize > 2 ** this.inputBits) {
      throw new IommuError(
        "ERANGE",
        `${count} leaves of ${hex(pageSize)} bytes at ${
          hex(iova)
        } run past the ${this.inputBits}-bit input size`,
      );
    }
    const p = this.#plan1;
    p.count = 1;
    p.iova[0] = iova;
    p.pa[0] = pa;
    p.pageSize[0] = pageSize;
    p.pages[0] = count;
    this.map(p, prot);
  }

  // Forget the previous check pass (pending tables, cursor, replacements).
  #resetCheck(): void {
    this.#pendTop.fill(-1);
    this.#needed = 0;
    this.#cLevel = -1;
    this.#repNode.length = 0;
    this.#repIdx.length = 0;
    this.#repIova.length = 0;
  }

  // Pass 1: read-only. Returns how many tables the plan creates. Runs of
  // one leaf at consecutive IOVAs (scattered frames, the common case of
  // mapPages) are checked table by table in one loop.
  #check(plan: MapPlanLike): number {
    this.#resetCheck();
    const count = plan.count;
    const pIova = plan.iova, pSize = plan.pageSize, pPages = plan.pages;
    let r = 0;
    while (r < count) {
      const size = pSize[r]!;
      const leafLevel = levelOfSize(size);
      if (leafLevel < 0) {
        throw new IommuError(
          "EINVAL",
          `page size ${hex(size)} is not an LPAE leaf size`,
        );
      }
      let iova = pIova[r]!;
      if (pPages[r] === 1) {
        const node = this.#probe(iova, leafLevel);
        const idx = Math.floor(iova / size) & 511;
        const room = node === this.#root ? this.rootEntries : ENTRIES_PER_TABLE;
        let j = idx;
        do {
          if (node !== null && (node.view[j << 1]! & 1) !== 0) {
            this.#occupied(node, j, iova, leafLevel);
          }
          j++;
          r++;
          iova += size;
        } while (
          r < count && j < room && pPages[r] === 1 && pSize[r] === size &&
          pIova[r] === iova
        );
        continue;
      }
      let left = pPages[r]!;
      while (left > 0) {
        const node = this.#probe(iova, leafLevel);
        const idx = Math.floor(iova / size) & 511;
        const room =
          (node === this.#root ? this.rootEntries : ENTRIES_PER_TABLE) - idx;
        const n = left < room ? left : room;
        if (node !== null) {
          const v = node.view;
          const end = (idx + n) << 1;
          for (let j = idx << 1; j < end; j += 2) {
            if ((v[j]! & 1) !== 0) {
              this.#occupied(
                node,
                j >> 1,
                iova + ((j >> 1) - idx) * size,
                leafLevel,
              );
            }
          }
        }
        iova += n * size;
        left -= n;
      }
      r++;
    }
    return this.#needed;
  }

  // Pass 1 of a uniform plan (`count` pages of `size` bytes at consecutive
  // IOVAs from `start`): the same checks, table by table.
  #checkUniform(start: number, size: number, count: number): number {
    this.#resetCheck();
    const leafLevel = levelOfSize(size);
    if (leafLevel < 0) {
      throw new IommuError(
        "EINVAL",
        `page size ${hex(size)} is not an LPAE leaf size`,
      );
    }
    let iova = start;
    let r = 0;
    while (r < count) {
      const node = this.#probe(iova, leafLevel);
      const idx = Math.floor(iova / size) & 511;
      const room = node === this.#root ? this.rootEntries : ENTRIES_PER_TABLE;
      const stop = Math.min(room, idx + count - r);
      if (node !== null) {
        const v = node.view;
        for (let i = idx; i < stop; i++) {
          if ((v[i << 1]! & 1) !== 0) {
            this.#occupied(node, i, iova + (i - idx) * size, leafLevel);
          }
        }
      }
      r += stop - idx;
      iova += (stop - idx) * size;
    }
    return this.#needed;
  }

  // Pass 3 of a uniform plan: one loop per leaf table.
  #writeUniform(
    start: number,
    size: number,
    pPa: Float64Array,
    count: number,
    attrLo: number,
    attrHi: number,
  ): void {
    const leafLevel = levelOfSize(size);
    const lo0 = attrLo | (leafLevel === 3 ? DESC_TYPE_TABLE : DESC_TYPE_BLOCK);
    let iova = start;
    let r = 0;
    while (r < count) {
      const node = this.#leafTable(iova, leafLevel);
      const v = node.view;
      const room = node === this.#root ? this.rootEntries : ENTRIES_PER_TABLE;
      const idx = Math.floor(iova / size) & 511;
      const stop = Math.min(room, idx + count - r);
      for (let j = idx; j < stop; j++, r++) {
        const pa = pPa[r]!;
        const lo = pa >>> 0; // exact low word (see map)
        v[j << 1] = lo | lo0;
        v[(j << 1) + 1] = ((pa - lo) / 0x100000000) | attrHi;
      }
      node.live += stop - idx;
      iova += (stop - idx) * size;
    }
  }

  // The existing table that holds leaves of `leafLevel` for `iova`, or null
  // when it would be created (then counted once in #needed). Read-only; a
  // cursor remembers the last answer.
  #probe(iova: number, leafLevel: number): TableNode | null {
    const start = this.startLevel;
    if (leafLevel === start) return this.#root;
    const region = Math.floor(iova / LEVEL_SIZE[leafLevel - 1]!);
    if (leafLevel === this.#cLevel && region === this.#cRegion) {
      return this.#cNode;
    }
    let node: TableNode | null = this.#root;
    let level = start;
    while (level < leafLevel) {
      const i = Math.floor(iova / LEVEL_SIZE[level]!) & 511;
      const lo = node.view[i << 1]!;
      if ((lo & 1) === 0) break;
      if ((lo & 3) !== 3) this.#exists(iova, level);
      node = node.children![i]!;
      level++;
    }
    if (level < leafLevel) {
      // Tables at levels level+1 .. leafLevel are created; counted once
      // per region since later runs may need them too.
      for (let k = level + 1; k <= leafLevel; k++) {
        const span = LEVEL_SIZE[k - 1]!;
        const base = Math.floor(iova / span) * span;
        const top = this.#pendTop[k]!;
        // Runs arrive in ascending IOVA order (checkMapPlan refuses any
        // other plan; a Domain builds its trusted plans ascending), so a
        // region at or below the last one counted is that one.
        if (base > top) {
          this.#pendTop[k] = base;
          this.#needed++;
        }
      }
      node = null;
    }
    this.#cLevel = leafLevel;
    this.#cRegion = region;
    this.#cNode = node;
    return node;
  }

  // A valid entry where a leaf of `leafLevel` should go. A table that maps
  // nothing (kept after its leaves were unmapped) gives way to a block: it is
  // recorded here and unlinked once the map cannot fail any more; anything
  // else is EEXIST.
  #occupied(
    node: TableNode,
    idx: number,
    iova: number,
    leafLevel: number,
  ): void {
    const lo = node.view[idx << 1]!;
    if (leafLevel < 3 && (lo & 3) === 3) {
      const child = node.children![idx]!;
      if (mapsNothing(child)) {
        this.#repNode.push(node);
        this.#repIdx.push(idx);
        this.#repIova.push(iova);
        return;
      }
    }
    this.#exists(iova, leafLevel);
  }

  // Unlink the empty tables the check pass found under future blocks; their
  // frames wait in #released until the walk caches forget them.
  #replaceEmpty(): void {
    const nodes = this.#repNode, idxs = this.#repIdx, iovas = this.#repIova;
    for (let k = 0; k < nodes.length; k++) {
      const node = nodes[k]!;
      const idx = idxs[k]!;
      const child = node.children![idx]!;
      node.view[idx << 1] = 0;
      node.view[(idx << 1) + 1] = 0;
      node.children![idx] = undefined;
      node.live--;
      this.#tables -= this.#release(child);
      const start = iovas[k]!;
      const end = start + LEVEL_SIZE[node.level]! - 1;
      if (start < this.#relStart) this.#relStart = start;
      if (end > this.#relEnd) this.#relEnd = end;
    }
    nodes.length = 0;
    idxs.length = 0;
    iovas.length = 0;
  }

  // Queue a subtree's frames in #released; returns how many tables.
  #release(node: TableNode): number {
    let n = 1;
    if (node.children !== null) {
      for (const c of node.children) if (c !== undefined) n += this.#release(c);
    }
    this.#released.push(node.pa);
    return n;
  }

  /**
   * Tables a map unlinked to put blocks in their place (they mapped
   * nothing), still allocated: free them with
   * {@linkcode LpaePageTable.freeReleased} once no walk cache can hold them.
   */
  get releasedTables(): number {
    return this.#released.length;
  }

  /** First IOVA the released tables covered (`Infinity` when none). */
  get releasedStart(): number {
    return this.#relStart;
  }

  /** Last IOVA byte the released tables covered, inclusive (-1 when none). */
  get releasedEnd(): number {
    return this.#relEnd;
  }

  /** Free the released tables' frames (after the walk-cache invalidation). */
  freeReleased(): void {
    const frames = this.#memory.frames;
    for (const pa of this.#released) frames.free(pa);
    this.#released.length = 0;
    this.#relStart = Infinity;
    this.#relEnd = -1;
  }

  #exists(iova: number, level: number): never {
    throw new IommuError(
      "EEXIST",
      `IOVA ${hex(iova)} is already mapped (level ${level} descriptor in use)`,
    );
  }

  // Pass 3: every page is known free and every table pre-allocated.
  #writeRun(
    iova: number,
    pa: number,
    size: number,
    pages: number,
    attrLo: number,
    attrHi: number,
  ): void {
    const leafLevel = levelOfSize(size);
    const type = leafLevel === 3 ? DESC_TYPE_TABLE : DESC_TYPE_BLOCK;
    const lo0 = attrLo | type;
    let left = pages;
    let addrLo = pa >>> 0;
    let addrHi = (pa - addrLo) / 0x100000000;
    while (left > 0) {
      const node = this.#leafTable(iova, leafLevel);
      const idx = Math.floor(iova / size) & 511;
      const room =
        (node === this.#root ? this.rootEntries : ENTRIES_PER_TABLE) - idx;
      const n = left < room ? left : room;
      const v = node.view;
      const end = (idx + n) << 1;
      for (let j = idx << 1; j < end; j += 2) {
        v[j] = addrLo | lo0;
        v[j + 1] = addrHi | attrHi;
        addrLo += size;
        if (addrLo >= 0x100000000) {
          addrLo -= 0x100000000;
          addrHi++;
        }
      }
      node.live += n;
      iova += n * size;
      left -= n;
    }
  }

  // The table holding leaves of `leafLevel` for `iova`, creating missing
  // tables from the pre-allocated pool; a cursor remembers the last one.
  #leafTable(iova: number, leafLevel: number): TableNode {
    if (leafLevel === this.startLevel) return this.#root;
    const region = Math.floor(iova / LEVEL_SIZE[leafLevel - 1]!);
    if (leafLevel === this.#wLevel && region === this.#wRegion) {
      return this.#wNode!;
    }
    let node = this.#root;
    for (let level = this.startLevel; level < leafLevel; level++) {
      const idx = Math.floor(iova / LEVEL_SIZE[level]!) & 511;
      let child = node.children![idx];
      if (child === undefined) {
        const tpa = this.#pool[--this.#poolN]!;
        child = this.#node(tpa, level + 1);
        node.children![idx] = child;
        node.view[idx << 1] = ((tpa % 0x100000000) | DESC_TYPE_TABLE) >>> 0;
        node.view[(idx << 1) + 1] = Math.floor(tpa / 0x100000000);
        node.live++;
        if (++this.#tables > this.#peakTables) this.#peakTables = this.#tables;
      }
      node = child;
    }
    this.#wLevel = leafLevel;
    this.#wRegion = region;
    this.#wNode = node;
    return node;
  }

  // The node for a new table at frame `pa`: the one kept from an earlier
  // table of the same level in that frame (emptied: the frame reads as
  // zeros again), else a new one.
  #node(pa: number, level: number): TableNode {
    // Keyed by frame number: a small integer, where the address (above
    // 2^30) would be boxed for every lookup.
    const key = pa / GRANULE;
    const kept = this.#nodes.get(key);
    if (kept !== undefined && kept.level === level) {
      kept.live = 0;
      kept.children?.fill(undefined);
      return kept;
    }
    // Bounded: tables that keep landing in new frames (RAM shared with
    // other users) must not make it grow for good, and a table that stays
    // small keeps few nodes.
    if (this.#nodes.size >= 2 * this.#peakTables + 256) this.#nodes.clear();
    const node = new TableNode(pa, level, this.#memory.view32(pa, GRANULE));
    this.#nodes.set(key, node);
    return node;
  }

  /**
   * Remove every leaf inside `[iova, iova + pageSize * count)`; holes are
   * skipped. A table whose whole span lies inside the range is unlinked and
   * handed to `gather.deferFree` (freed after the invalidation); a table
   * that only loses leaves stays, even when empty, as the kernel's LPAE code
   * keeps it (the next map in its span reuses it instead of allocating and
   * zeroing a frame; a block mapped over it later replaces it).
   *
   * @param iova First IOVA.
   * @param pageSize Unit of the range in bytes (leaves inside may be smaller).
   * @param count Units.
   * @param gather Collects the removed ranges and the tables to free.
   * @returns Bytes unmapped.
   * @throws {IommuError} `EINVAL` for a malformed `iova`, `pageSize`,
   * `count` or `gather`, or when a leaf crosses either end of the range
   * (checked before any change: a block is never split).
   */
  unmap(
    iova: number,
    pageSize: number,
    count: number,
    gather: IotlbGather,
  ): number {
    this.#alive();
    checkUnmapArgs(iova, pageSize, count, gather);
    const end = iova + pageSize * count;
    const first = this.#leafSize(iova);
    if (first > 0 && iova % first !== 0) this.#partial(iova, first);
    const last = this.#leafSize(end - 1);
    if (last > 0 && end % last !== 0) this.#partial(end - 1, last);
    return this.#unmapIn(this.#root, iova, end, gather);
  }

  #partial(at: number, leaf: number): never {
    throw new IommuError(
      "EINVAL",
      `unmap would split the ${hex(leaf)}-byte leaf at ${
        hex(at - (at % leaf))
      }`,
    );
  }

  #unmapIn(
    node: TableNode,
    start: number,
    end: number,
    gather: IotlbGather,
  ): number {
    const level = node.level;
    const size = LEVEL_SIZE[level]!;
    const v = node.view;
    let bytes = 0;
    if (level === 3) {
      // Hot loop: contiguous 4 KiB entries of one table.
      const i0 = Math.floor(start / size) & 511;
      const n = Math.ceil((end - start) / size);
      let removed = 0;
      let firstIdx = -1;
      let lastIdx = -1;
      const stop = (i0 + n) << 1;
      for (let j = i0 << 1; j < stop; j += 2) {
        if ((v[j]! & 1) !== 0) {
          v[j] = 0;
          v[j + 1] = 0;
          if (firstIdx < 0) firstIdx = j;
          lastIdx = j;
          removed++;
        }
      }
      if (removed > 0) {
        const base = start - i0 * size;
        gather.add(base + (firstIdx >> 1) * size, size, 1);
        if (removed > 1) {
          gather.add(base + (lastIdx >> 1) * size, size, 1);
          gather.leaves += removed - 2;
        }
        node.live -= removed;
      }
      return removed * size;
    }
    let a = start;
    while (a < end) {
      const idx = Math.floor(a / size) & 511;
      const entryBase = Math.floor(a / size) * size;
      const entryEnd = entryBase + size;
      const stop = entryEnd < end ? entryEnd : end;
      const j = idx << 1;
      const lo = v[j]!;
      if ((lo & 1) !== 0) {
        if ((lo & 3) === 3) {
          const child = node.children![idx]!;
          bytes += this.#unmapIn(child, a, stop, gather);
          if (a === entryBase && stop === entryEnd) {
            // The range spans the whole entry: the table goes too.
            v[j] = 0;
            v[j + 1] = 0;
            node.children![idx] = undefined;
            node.live--;
            this.#tables--;
            gather.deferFree(child.pa);
          }
        } else {
          // A block: the end checks guarantee it lies inside the range.
          v[j] = 0;
          v[j + 1] = 0;
          node.live--;
          gather.add(entryBase, size, 1);
          bytes += size;
        }
      }
      a = stop;
    }
    return bytes;
  }

  /**
   * Size of the leaf that maps `iova`, or 0 when it is unmapped.
   *
   * @param iova An IOVA inside the input size.
   * @returns Bytes (4 KiB, 2 MiB or 1 GiB) or 0 (also beyond the input
   * size).
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer (NaN, -1 and fractions used to read some other slot).
   */
  leafSize(iova: number): number {
    // NaN, -1 and 0.5 used to read some slot of the root.
    if (!(iova >= 0 && Number.isSafeInteger(iova))) checkAddress(iova, "IOVA");
    return this.#leafSize(iova);
  }

  // leafSize for an IOVA already checked (unmap's ends).
  #leafSize(iova: number): number {
    if (iova >= this.#inputEnd) return 0;
    let node: TableNode | undefined = this.#root;
    for (let level = this.startLevel; level <= 3; level++) {
      const idx = Math.floor(iova / LEVEL_SIZE[level]!) & 511;
      const lo = node!.view[idx << 1]!;
      if ((lo & 1) === 0) return 0;
      if (level === 3 || (lo & 3) === 1) return LEVEL_SIZE[level]!;
      node = node!.children![idx];
    }
    return 0;
  }

  /**
   * Walk the descriptors in RAM (not the driver's nodes) for `iova`.
   *
   * @param iova An IOVA.
   * @returns The physical address, or -1 when unmapped or beyond the input
   * size. A block's output address is masked to the block size first (its
   * low address bits are RES0), so the result stays inside the block.
   * @throws {IommuError} `EINVAL` when `iova` is not a non-negative safe
   * integer (NaN, -1 and fractions used to read some other slot).
   */
  iovaToPhys(iova: number): number {
    if (!(iova >= 0 && Number.isSafeInteger(iova))) checkAddress(iova, "IOVA");
    if (iova >= this.#inputEnd) return -1;
    const mem = this.#memory;
    let table = this.root;
    for (let level = this.startLevel; level <= 3; level++) {
      const size = LEVEL_SIZE[level]!;
      const at = table + (Math.floor(iova / size) & 511) * 8;
      const lo = mem.read32(at);
      if ((lo & 1) === 0) return -1;
      const hi = mem.read32(at + 4);
      const addr = descAddress(lo, hi);
      if (level < 3 && (lo & 3) === 3) {
        table = addr;
        continue;
      }
      if (level === 0 || (level === 3 && (lo & 3) !== 3)) return -1;
      // The leaf's address masked to its size (a block's RES0 bits ignored).
      return leafAddress(lo, hi, level) + (iova % size);
    }
    return -1;
  }

  /**
   * Every leaf decoded from the bytes in RAM, in IOVA order.
   *
   * @returns Records with `IOMMU_*` protection decoded from the attributes
   * and the output address masked to the leaf size.
   */
  leaves(): MappingRecord[] {
    const out: MappingRecord[] = [];
    this.#collect(this.root, this.startLevel, 0, this.rootEntries, out);
    return out;
  }

  #collect(
    table: number,
    level: number,
    base: number,
    entries: number,
    out: MappingRecord[],
  ): void {
    const mem = this.#memory;
    const size = LEVEL_SIZE[level]!;
    for (let i = 0; i < entries; i++) {
      const lo = mem.read32(table + i * 8);
      if ((lo & 1) === 0) continue;
      const hi = mem.read32(table + i * 8 + 4);
      const iova = base + i * size;
      if (level < 3 && (lo & 3) === 3) {
        this.#collect(
          descAddress(lo, hi),
          level + 1,
          iova,
          ENTRIES_PER_TABLE,
          out,
        );
      } else if (level > 0 && (level < 3 || (lo & 3) === 3)) {
        out.push({
          iova,
          pa: leafAddress(lo, hi, level),
          pageSize: size,
          prot: decodeProt(lo, hi, this.stage),
        });
      }
    }
  }

  /**
   * Occupancy per level, level 1 being the root.
   *
   * @returns One record per walked level.
   */
  tableStats(): PageTableLevelStats[] {
    const levels = 4 - this.startLevel;
    const stats: PageTableLevelStats[] = [];
    for (let i = 0; i < levels; i++) {
      stats.push({
        level: i + 1,
        tables: 0,
        bytes: 0,
        entriesUsed: 0,
        entriesTotal: 0,
      });
    }
    const visit = (node: TableNode): void => {
      const s = stats[node.level - this.startLevel]!;
      const entries = node.view.length >>> 1;
      s.tables++;
      s.bytes += node === this.#root
        ? this.#memory.frames.blockSize(node.pa)
        : GRANULE;
      s.entriesUsed += node.live;
      s.entriesTotal += entries;
      if (node.children !== null) {
        for (const c of node.children) if (c !== undefined) visit(c);
      }
    };
    visit(this.#root);
    return stats;
  }

  /** Free every table, the root included; later calls throw `EPERM`. */
  free(): void {
    this.#alive();
    this.freeReleased();
    const frames = this.#memory.frames;
    const drop = (node: TableNode): void => {
      if (node.children !== null) {
        for (const c of node.children) if (c !== undefined) drop(c);
      }
      frames.free(node.pa);
    };
    drop(this.#root);
    this.#nodes.clear();
    this.#tables = 0;
    this.#freed = true;
  }

  #alive(): void {
    if (this.#freed) throw new IommuError("EPERM", "page table has been freed");
  }
}

// True when no leaf lies anywhere under `node` (tables only, or nothing).
function mapsNothing(node: TableNode): boolean {
  if (node.live === 0) return true;
  if (node.children === null) return false;
  const v = node.view;
  for (let i = 0; i < node.children.length; i++) {
    const lo = v[i << 1]!;
    if ((lo & 1) === 0) continue;
    if ((lo & 3) !== 3 || !mapsNothing(node.children[i]!)) return false;
  }
  return true;
}

/** The fields of a core `MapPlan` the table reads (a plan or a look-alike). */
export type MapPlanLike =
  & Pick<MapPlan, "count" | "iova" | "pa" | "pageSize" | "pages">
  & Partial<Pick<MapPlan, "uniform" | "start">>;
