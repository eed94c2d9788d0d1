import { assert, assertEquals } from "@std/assert";
import {
  FAULT_LOG_LIMIT,
  FaultRouter,
  type FaultTarget,
  type IommuFault,
} from "../core/mod.ts";

function fault(unit: string, streamId: number, iova = 0x1000): IommuFault {
  return { unit, streamId, iova, access: "write", reason: "translation" };
}

function target(answer: boolean): FaultTarget & { seen: IommuFault[] } {
  const seen: IommuFault[] = [];
  return {
    seen,
    handleFault(f: IommuFault): boolean {
      seen.push(f);
      return answer;
    },
  };
}

Deno.test("unbound faults are logged, counted as unhandled and return false", () => {
  const r = new FaultRouter();
  assertEquals(r.counters(), { faults: 0, unhandled: 0 });
  const f = fault("mmu0", 0);
  assertEquals(r.report(f), false);
  assertEquals(r.counters(), { faults: 1, unhandled: 1 });
  assertEquals(r.recent, [f]);
  assert(r.recent[0] === f, "the record itself is kept");
});

Deno.test("faults route by unit and stream to the bound target", () => {
  const r = new FaultRouter();
  const a = target(true), b = target(false);
  r.bind("smmu", 1, a);
  r.bind("smmu", 2, b);
  assert(r.boundTo("smmu", 1) === a);
  assert(r.boundTo("smmu", 3) === undefined);
  assert(r.boundTo("other", 1) === undefined);
  assertEquals(r.report(fault("smmu", 1)), true);
  assertEquals(r.report(fault("smmu", 2)), false);
  assertEquals(r.report(fault("smmu", 3)), false);
  // A unit name that would collide if keys were naively concatenated.
  assertEquals(r.report(fault("smmu#1", 0)), false);
  assertEquals(a.seen.length, 1);
  assertEquals(b.seen.length, 1);
  assertEquals(r.counters(), { faults: 4, unhandled: 3 });
});

Deno.test("bind replaces; unbind only removes the target that is bound", () => {
  const r = new FaultRouter();
  const a = target(true), b = target(true);
  r.bind("u", 0, a);
  r.bind("u", 0, b);
  r.report(fault("u", 0));
  assertEquals([a.seen.length, b.seen.length], [0, 1]);
  r.unbind("u", 0, a); // not bound there: no-op
  assert(r.boundTo("u", 0) === b);
  r.unbind("u", 0, b);
  assert(r.boundTo("u", 0) === undefined);
  assertEquals(r.report(fault("u", 0)), false);
});

Deno.test("listeners hear every fault with the handled flag, until removed", () => {
  const r = new FaultRouter();
  r.bind("u", 0, target(true));
  const heard: [number, boolean][] = [];
  const off = r.onFault((f, handled) => heard.push([f.iova, handled]));
  r.report(fault("u", 0, 0x1000));
  r.report(fault("u", 1, 0x2000));
  off();
  off(); // removing twice is harmless
  r.report(fault("u", 0, 0x3000));
  assertEquals(heard, [[0x1000, true], [0x2000, false]]);
});

Deno.test("a listener that removes itself does not make others miss the fault", () => {
  const r = new FaultRouter();
  const heard: string[] = [];
  const offOnce: () => void = r.onFault(() => {
    heard.push("once");
    offOnce();
  });
  r.onFault(() => heard.push("always"));
  r.report(fault("u", 0));
  r.report(fault("u", 0));
  assertEquals(heard, ["once", "always", "always"]);
});

Deno.test("the log keeps the most recent FAULT_LOG_LIMIT faults, oldest first", () => {
  const r = new FaultRouter();
  const n = FAULT_LOG_LIMIT + 10;
  for (let i = 0; i < n; i++) r.report(fault("u", 0, i * 0x1000));
  assertEquals(r.recent.length, FAULT_LOG_LIMIT);
  assertEquals(r.recent[0]!.iova, 10 * 0x1000);
  assertEquals(r.recent[FAULT_LOG_LIMIT - 1]!.iova, (n - 1) * 0x1000);
  assertEquals(r.counters(), { faults: n, unhandled: n });
  assertEquals(FAULT_LOG_LIMIT, 1024);
});

Deno.test("a listener added during a report hears only later faults", () => {
  const r = new FaultRouter();
  const heard: string[] = [];
  let added = false;
  r.onFault(() => {
    heard.push("first");
    if (!added) {
      added = true;
      r.onFault(() => heard.push("late"));
    }
  });
  r.report(fault("u", 0));
  r.report(fault("u", 0));
  assertEquals(heard, ["first", "first", "late"]);
});
