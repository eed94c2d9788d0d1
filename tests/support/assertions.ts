/**
 * Assertion helpers shared by the test files: one checked version instead of
 * a copy per file, so every error-path test asserts the same things.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { IommuError, type IommuErrorKind } from "../../core/mod.ts";

/**
 * Asserts that `fn` throws an {@link IommuError} of the given `kind` whose
 * message contains every string in `mentions` (typically the bad value,
 * formatted with `hex()`, or the name of the bad argument) and matches every
 * regular expression in it (for wording that varies, or a word boundary).
 *
 * @param fn the call expected to throw.
 * @param kind the expected `IommuError.kind`.
 * @param mentions substrings the error message must contain, or patterns it
 * must match.
 * @returns the thrown error, for further checks.
 * @throws AssertionError when `fn` does not throw, throws something other
 * than an `IommuError`, the kind differs, or a mention is missing.
 */
export function expectError(
  fn: () => unknown,
  kind: IommuErrorKind,
  ...mentions: (string | RegExp)[]
): IommuError {
  const e = assertThrows(fn, IommuError);
  assertEquals(e.kind, kind, e.message);
  for (const m of mentions) {
    if (typeof m === "string") {
      assert(e.message.includes(m), `"${e.message}" should mention ${m}`);
    } else {
      assert(m.test(e.message), `"${e.message}" should match ${m}`);
    }
  }
  return e;
}
