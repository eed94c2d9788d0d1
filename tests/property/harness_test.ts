/**
 * The model-based harness must catch bugs: it is run against deliberately
 * broken variants (mutants) of the flat test plugin and has to report a
 * divergence for each, with a shrunk, replayable counterexample.
 */
import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomainOps,
  type IommuPlugin,
  type IommuUnit,
  type ProbeContext,
} from "../../core/mod.ts";
import { flatIommu } from "../support/flat_iommu.ts";
import {
  opArbitrary,
  type PropertyStats,
  type PropertyTarget,
  runSequence,
} from "./harness.ts";

type Mutation = (ops: IommuDomainOps, ctx: ProbeContext) => void;

function mutant(
  mutate: Mutation,
  hardware?: (unit: IommuUnit) => void,
): () => IommuPlugin {
  return () => {
    const base = flatIommu();
    return {
      ...base,
      probe(node, ctx): IommuUnit {
        const unit = base.probe(node, ctx);
        const driver = unit.driver;
        const alloc = driver.allocDomain.bind(driver);
        driver.allocDomain = () => {
          const ops = alloc();
          mutate(ops, ctx);
          return ops;
        };
        hardware?.(unit);
        return unit;
      },
    };
  };
}

const MUTANTS: [string, () => IommuPlugin][] = [
  [
    "map drops the last run of a batch",
    mutant((ops) => {
      const map = ops.map.bind(ops);
      ops.map = (plan, prot) => {
        if (plan.count > 1) plan.count--;
        map(plan, prot);
      };
    }),
  ],
  [
    "map writes read-only descriptors",
    mutant((ops) => {
      const map = ops.map.bind(ops);
      ops.map = (plan, prot) => map(plan, prot & ~IOMMU_WRITE | IOMMU_READ);
    }),
  ],
  [
    "unmap removes nothing",
    mutant((ops) => {
      ops.unmapPages = () => 0;
    }),
  ],
  [
    "map leaks a frame",
    mutant((ops, ctx) => {
      const map = ops.map.bind(ops);
      ops.map = (plan, prot) => {
        map(plan, prot);
        ctx.memory.frames.alloc(1024);
      };
    }),
  ],
  [
    "the hardware never forgets a translation (no invalidation)",
    mutant(
      () => {},
      (unit) => {
        const hw = unit.hardware;
        const translate = hw.translate.bind(hw);
        const cache = new Map<number, number>();
        hw.translate = (sid, iova, access) => {
          const page = Math.floor(iova / 4096);
          const hit = cache.get(page);
          if (hit !== undefined) {
            Object.defineProperty(hw, "lastSpan", {
              value: 4096 - (iova % 4096),
              configurable: true,
            });
            return hit + (iova % 4096);
          }
          const pa = translate(sid, iova, access);
          if (pa >= 0) cache.set(page, pa - (iova % 4096));
          return pa;
        };
      },
    ),
  ],
];

Deno.test("the harness finds every mutant of the flat plugin and shrinks it", () => {
  let caught = 0;
  for (const [name, plugin] of MUTANTS) {
    const target: PropertyTarget = {
      name: `mutant: ${name}`,
      plugin,
      units: [
        { name: "mmu0", compatible: ["iommukit,flat-iommu"] },
        { name: "mmu1", compatible: ["iommukit,flat-iommu"] },
      ],
      memory: { base: 0, size: 256 << 20 },
      pageSizes: [4096, 4 << 20],
      protMask: IOMMU_READ | IOMMU_WRITE,
    };
    const stats: PropertyStats = {
      requested: 2000,
      sequences: 0,
      steps: 0,
      dma: 0,
      dmaFaults: 0,
      errors: {},
      injected: 0,
    };
    const out = fc.check(
      fc.property(
        fc.array(opArbitrary(target), { minLength: 5, maxLength: 20 }),
        (ops) => runSequence(target, ops, stats),
      ),
      { numRuns: 2000, seed: 7 },
    );
    assert(out.failed, `the harness missed the mutant "${name}"`);
    const example = out.counterexample;
    if (example === null) throw new Error(`no counterexample for "${name}"`);
    // The shrunk counterexample is short and replays to the same failure.
    assert(
      example[0].length <= 8,
      `counterexample of "${name}" not shrunk`,
    );
    let replayed = false;
    try {
      runSequence(target, example[0], stats);
    } catch {
      replayed = true;
    }
    assert(replayed, `counterexample of "${name}" does not replay`);
    caught++;
  }
  assertEquals(caught, MUTANTS.length);
  console.log(
    `harness: ${caught} of ${MUTANTS.length} mutants caught, each shrunk and replayed`,
  );
});
