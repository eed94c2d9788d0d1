import { assert, assertEquals, assertFalse } from "@std/assert";
import fc from "fast-check";
import {
  alignmentOf,
  checkAddress,
  checkAligned,
  checkRange,
  checkRegisterValue,
  checkSize,
  hex,
  IommuError,
  isPowerOfTwo,
  isWord32,
  MAX_ADDRESS,
} from "../core/mod.ts";
import { expectError } from "./support/assertions.ts";

const BAD_NUMBERS: [number, string][] = [
  [NaN, "NaN"],
  [Infinity, "Infinity"],
  [-Infinity, "-Infinity"],
  [1.5, "1.5"],
  [-1, "-1"],
  [2 ** 53, "9007199254740992"],
  [2 ** 60, String(2 ** 60)],
];

Deno.test("hex formats safe non-negative integers, other values verbatim", () => {
  assertEquals(hex(0), "0x0");
  assertEquals(hex(0x1f0000), "0x1f0000");
  assertEquals(hex(2 ** 40), "0x10000000000");
  assertEquals(hex(MAX_ADDRESS), "0x1fffffffffffff");
  assertEquals(hex(-1), "-1");
  assertEquals(hex(1.5), "1.5");
  assertEquals(hex(NaN), "NaN");
  assertEquals(hex(2 ** 53), "9007199254740992");
});

Deno.test("MAX_ADDRESS is 2^53 - 1", () => {
  assertEquals(MAX_ADDRESS, 2 ** 53 - 1);
});

Deno.test("checkAddress accepts 0..2^53-1 and rejects the rest with EINVAL naming the value", async (t) => {
  for (const ok of [0, 1, 0xffff_ffff, 2 ** 32, 2 ** 48 + 7, MAX_ADDRESS]) {
    assertEquals(checkAddress(ok, "IOVA"), ok);
  }
  for (const [bad, text] of BAD_NUMBERS) {
    await t.step(text, () => {
      expectError(() => checkAddress(bad, "IOVA"), "EINVAL", "IOVA", text);
    });
  }
  expectError(
    () => checkAddress("4096" as unknown as number, "PA"),
    "EINVAL",
    "PA",
    "4096",
  );
  expectError(
    () => checkAddress(4096n as unknown as number, "PA"),
    "EINVAL",
    "PA",
  );
});

Deno.test("checkSize accepts 1..2^53-1 and rejects zero and malformed sizes", () => {
  assertEquals(checkSize(1, "size"), 1);
  assertEquals(checkSize(MAX_ADDRESS, "size"), MAX_ADDRESS);
  expectError(() => checkSize(0, "length"), "EINVAL", "length", "0");
  for (const [bad, text] of BAD_NUMBERS) {
    expectError(() => checkSize(bad, "length"), "EINVAL", "length", text);
  }
});

Deno.test("checkRange: limits, wrapping and malformed parts", () => {
  checkRange(0, 1, "r");
  checkRange(0, 2 ** 32, "r", 2 ** 32);
  checkRange(2 ** 32 - 4096, 4096, "r", 2 ** 32);
  checkRange(MAX_ADDRESS - 1, 1, "r");
  checkRange(0, MAX_ADDRESS, "r");
  expectError(
    () => checkRange(2 ** 32 - 4096, 8192, "IOVA range", 2 ** 32),
    "ERANGE",
    "IOVA range",
    "0xfffff000",
    "0x2000",
    "0x100000000",
  );
  // Wrapping past 2^53 - 1 is ERANGE even without a limit.
  expectError(
    () => checkRange(MAX_ADDRESS, 1, "r"),
    "ERANGE",
    "0x1fffffffffffff",
  );
  expectError(() => checkRange(2 ** 52, 2 ** 52, "r"), "ERANGE");
  expectError(() => checkRange(MAX_ADDRESS - 4095, 8192, "r"), "ERANGE");
  expectError(() => checkRange(-4096, 4096, "win"), "EINVAL", "win start");
  expectError(() => checkRange(0.5, 4096, "win"), "EINVAL", "win start", "0.5");
  expectError(() => checkRange(0, 0, "win"), "EINVAL", "win size", "0");
  expectError(() => checkRange(0, NaN, "win"), "EINVAL", "win size", "NaN");
  expectError(() => checkRange(0, 2 ** 53, "win"), "EINVAL", "win size");
});

Deno.test("checkRange never accepts a range ending beyond its limit (property)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: MAX_ADDRESS }),
      fc.integer({ min: 1, max: MAX_ADDRESS }),
      fc.integer({ min: 1, max: MAX_ADDRESS }),
      (start, size, limit) => {
        let ok = true;
        try {
          checkRange(start, size, "r", limit);
        } catch (e) {
          if (!(e instanceof IommuError) || e.kind !== "ERANGE") throw e;
          ok = false;
        }
        const fits = BigInt(start) + BigInt(size) <= BigInt(limit);
        return ok === fits;
      },
    ),
  );
});

Deno.test("checkAligned accepts multiples and names the value and alignment otherwise", () => {
  checkAligned(0, 4096, "IOVA");
  checkAligned(0x40000000, 0x200000, "IOVA");
  checkAligned(2 ** 52, 2 ** 40, "IOVA");
  checkAligned(3 * 2 ** 33, 2 ** 33, "IOVA");
  expectError(
    () => checkAligned(0x1001, 4096, "IOVA"),
    "EINVAL",
    "IOVA",
    "0x1001",
    "0x1000",
  );
  // Above 2^32 the low bits still count.
  expectError(
    () => checkAligned(2 ** 40 + 2048, 4096, "PA"),
    "EINVAL",
    "0x10000000800",
  );
  expectError(
    () => checkAligned(2 ** 33, 2 ** 34, "PA"),
    "EINVAL",
    "0x200000000",
    "0x400000000",
  );
});

Deno.test("isPowerOfTwo, including above 2^32 and near 2^53", () => {
  for (let k = 0; k <= 52; k++) assert(isPowerOfTwo(2 ** k), `2^${k}`);
  for (
    const v of [
      0,
      -1,
      -4096,
      3,
      6,
      0x1001,
      2 ** 32 + 1,
      2 ** 40 - 1,
      2 ** 40 + 2 ** 12,
      MAX_ADDRESS,
      2 ** 53,
      0.5,
      1.5,
      NaN,
      Infinity,
    ]
  ) assertFalse(isPowerOfTwo(v), String(v));
});

Deno.test("alignmentOf gives the largest dividing power of two, also above 2^32", () => {
  assertEquals(alignmentOf(0), 2 ** 52);
  assertEquals(alignmentOf(1), 1);
  assertEquals(alignmentOf(0x1f0000), 0x10000);
  assertEquals(alignmentOf(0x8000_0000), 0x8000_0000);
  assertEquals(alignmentOf(0xffff_f000), 0x1000);
  assertEquals(alignmentOf(2 ** 32), 2 ** 32);
  assertEquals(alignmentOf(2 ** 32 + 0x1000), 0x1000);
  assertEquals(alignmentOf(3 * 2 ** 40), 2 ** 40);
  assertEquals(alignmentOf(2 ** 52), 2 ** 52);
  assertEquals(alignmentOf(MAX_ADDRESS), 1);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: MAX_ADDRESS }), (v) => {
      const a = alignmentOf(v);
      // a divides v, and 2a does not.
      return isPowerOfTwo(a) && v % a === 0 && v % (2 * a) !== 0;
    }),
  );
});

Deno.test("checkRegisterValue takes the 32 bits of an int32 or a uint32, nothing else", () => {
  for (const v of [0, 1, 0xffff_ffff, -1, -0x8000_0000, 0x8000_0000]) {
    assertEquals(checkRegisterValue(0x20, v), v);
  }
  for (
    const v of [NaN, 0.5, 2 ** 32, -0x8000_0001, Infinity, 2 ** 53, 1n, "1"]
  ) {
    // deno-lint-ignore no-explicit-any
    expectError(() => checkRegisterValue(0x20, v as any), "EINVAL");
  }
});

Deno.test("isWord32: integers from -2^31 to 2^32 - 1, nothing else", () => {
  for (const v of [0, -0, 1, 0x7fff_ffff, -0x8000_0000, 0xffff_ffff, -1]) {
    assert(isWord32(v), String(v));
  }
  for (
    const v of [2 ** 32, -0x8000_0001, 0.5, NaN, Infinity, 1n, "1", null]
  ) {
    assertFalse(isWord32(v), String(v));
  }
});
