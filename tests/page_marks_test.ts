/**
 * PageMarks (the domain's typed-array note of the tables it deferred into a
 * gather) against a Set: membership through adds, clears and growth, and
 * the visit pass that finds an entry listed twice.
 */
import { assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  NOT_MEMBER,
  PageMarks,
  VISIT_AGAIN,
  VISIT_FIRST,
} from "../core/page_marks.ts";

type Op =
  | { add: number }
  | { has: number }
  | { clear: true }
  | { visits: number[] };

const addrArb = fc.oneof(
  // Few distinct table addresses (repeats), 1 KiB and 4 KiB aligned.
  fc.integer({ min: 0, max: 40 }).map((i) => 0x4000_0000 + i * 4096),
  fc.integer({ min: 0, max: 3000 }).map((i) => 0x3_4000_0000 + i * 1024),
  // Past 2^32 and 2^43, unaligned, zero.
  fc.integer({ min: 0, max: 2 ** 53 - 1 }),
  fc.constantFrom(0, 1, 4095, 2 ** 52),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ add: addrArb }) },
  { weight: 5, arbitrary: fc.record({ has: addrArb }) },
  { weight: 1, arbitrary: fc.constant({ clear: true as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      visits: fc.array(fc.nat(), { maxLength: 30 }),
    }),
  },
);

Deno.test("PageMarks answers as a Set through adds, clears and growth (property)", () => {
  fc.assert(
    fc.property(
      fc.array(
        opArb,
        { minLength: 10, maxLength: 400, size: "max" },
      ),
      (ops) => {
        const marks = new PageMarks(7);
        const set = new Set<number>();
        for (const op of ops) {
          if ("add" in op) {
            marks.add(op.add);
            set.add(op.add);
          } else if ("has" in op) {
            assertEquals(marks.has(op.has), set.has(op.has));
          } else if ("clear" in op) {
            marks.clear();
            set.clear();
          } else {
            // A list of members with repeats: visit says VISIT_FIRST exactly for the
            // first occurrence of each in the pass.
            const members = [...set];
            if (members.length === 0) continue;
            const list = op.visits.map((i) => members[i % members.length]!);
            const seen = new Set<number>();
            marks.startVisits();
            for (const pa of list) {
              assertEquals(
                marks.visit(pa),
                seen.has(pa) ? VISIT_AGAIN : VISIT_FIRST,
                `visit ${pa}`,
              );
              seen.add(pa);
            }
          }
          assertEquals(marks.size, set.size);
        }
        for (const pa of set) assertEquals(marks.has(pa), true);
        assertEquals(marks.epoch, 7);
      },
    ),
    { numRuns: 300, seed: 20261125 },
  );
});

Deno.test("PageMarks: thousands of members, cleared and refilled, non-numbers never members", () => {
  const marks = new PageMarks(0);
  for (let round = 0; round < 3; round++) {
    const base = 0x8000_0000 + round * 4096;
    for (let i = 0; i < 5000; i++) marks.add(base + i * 8192);
    assertEquals(marks.size, 5000);
    for (let i = 0; i < 5000; i++) {
      assertEquals(marks.has(base + i * 8192), true);
      assertEquals(marks.has(base + i * 8192 + 4096), false);
    }
    // Last round's members are gone after the clear.
    if (round > 0) assertEquals(marks.has(base - 4096), false);
    marks.startVisits();
    assertEquals(marks.visit(base), VISIT_FIRST);
    assertEquals(marks.visit(base), VISIT_AGAIN);
    assertEquals(marks.visit(base + 4096), NOT_MEMBER, "not a member");
    assertEquals(marks.visit("x"), NOT_MEMBER, "not a number");
    // A new pass: visited again once.
    marks.startVisits();
    assertEquals(marks.visit(base), VISIT_FIRST);
    marks.clear();
    assertEquals(marks.size, 0);
    assertEquals(marks.has(base), false);
  }
  marks.add(0);
  for (const v of [NaN, "0", null, undefined, {}, -1, 0.5]) {
    assertEquals(marks.has(v), false, String(v));
  }
  assertEquals(marks.has(-0), true, "-0 is 0, as in a Set");
});
