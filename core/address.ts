/**
 * Validation and formatting of addresses and sizes. Every public entry point
 * validates its numbers with these before touching any state.
 *
 * @module
 */
import { IommuError } from "./errors.ts";

/** The largest address iommukit accepts: 2^53 - 1 (`Number.MAX_SAFE_INTEGER`). */
export const MAX_ADDRESS: number = Number.MAX_SAFE_INTEGER;

/**
 * Format a number as `0x…` hexadecimal; other numbers are shown as they
 * are, and anything else as {@linkcode describeValue} does (error messages
 * about bad input format whatever came).
 *
 * @param value The number.
 * @returns `0x1f000` style text, or a description of anything else.
 */
export function hex(value: number): string {
  return Number.isSafeInteger(value) && value >= 0
    ? "0x" + value.toString(16)
    : typeof value === "number"
    ? String(value)
    : describeValue(value);
}

/**
 * Check that `value` is a safe, non-negative integer (an address or a count).
 *
 * @param value The number to check.
 * @param what What it is, for the message (for example `"IOVA"`).
 * @returns `value`, unchanged.
 * @throws {IommuError} `EINVAL` for NaN, infinities, fractions, negatives and
 * values above 2^53 - 1.
 */
export function checkAddress(value: number, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new IommuError(
      "EINVAL",
      `${what} must be a non-negative safe integer, got ${
        describeValue(value)
      }`,
    );
  }
  return value;
}

/**
 * Check that `size` is a safe integer greater than zero (a length in bytes).
 *
 * @param size The size in bytes.
 * @param what What it is, for the message.
 * @returns `size`, unchanged.
 * @throws {IommuError} `EINVAL` when it is not a safe integer or is zero or less.
 */
export function checkSize(size: number, what: string): number {
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0) {
    throw new IommuError(
      "EINVAL",
      `${what} must be a positive safe integer, got ${describeValue(size)}`,
    );
  }
  return size;
}

/**
 * Check an address range `[start, start + size)`: both valid, the end not
 * beyond 2^53 - 1 (no wrap), and, when `limit` is given, the end not beyond
 * `limit` bytes.
 *
 * @param start First byte of the range.
 * @param size Length in bytes, greater than zero.
 * @param what What it is, for the message.
 * @param limit Optional exclusive upper bound in bytes (for example 2^32).
 * @throws {IommuError} `EINVAL` for malformed numbers; `ERANGE` when the range
 * wraps or passes `limit`.
 */
export function checkRange(
  start: number,
  size: number,
  what: string,
  limit: number = MAX_ADDRESS,
): void {
  checkAddress(start, `${what} start`);
  checkSize(size, `${what} size`);
  if (start + size > limit || start > MAX_ADDRESS - size) {
    throw new IommuError(
      "ERANGE",
      `${what} ${hex(start)}+${hex(size)} ends beyond ${hex(limit)}`,
    );
  }
}

/**
 * Check that `value` is a multiple of `alignment` (a power of two).
 *
 * @param value An address or size already checked with {@linkcode checkAddress}.
 * @param alignment A power of two, in bytes.
 * @param what What it is, for the message.
 * @throws {IommuError} `EINVAL` when `value` is not a multiple of `alignment`.
 */
export function checkAligned(
  value: number,
  alignment: number,
  what: string,
): void {
  if (value % alignment !== 0) {
    throw new IommuError(
      "EINVAL",
      `${what} ${hex(value)} is not aligned to ${hex(alignment)} bytes`,
    );
  }
}

/**
 * True when `value` is a power of two (1, 2, 4, …) and a safe integer.
 *
 * @param value The number.
 * @returns Whether it is a power of two.
 */
export function isPowerOfTwo(value: number): boolean {
  if (!Number.isSafeInteger(value) || value <= 0) return false;
  // Works above 2^32 too, where bitwise operators would truncate.
  return 2 ** Math.round(Math.log2(value)) === value;
}

/**
 * The largest power of two that divides `value` (its natural alignment);
 * `2^52` for zero, which is aligned to everything iommukit can express.
 *
 * @param value A non-negative safe integer.
 * @returns The alignment in bytes.
 */
export function alignmentOf(value: number): number {
  if (value === 0) return 2 ** 52;
  const low = value % 0x100000000;
  if (low !== 0) return (low & -low) >>> 0;
  const high = Math.floor(value / 0x100000000);
  return ((high & -high) >>> 0) * 0x100000000;
}

/**
 * Whether `value` is a 32-bit word: an integer from -2^31 (an int32 holding
 * the same 32 bits, as `|` results are) to 2^32 - 1. Two compares, no
 * allocation: fit for a store path.
 *
 * @param value Anything.
 * @returns True for such a number (never for a bigint).
 */
export function isWord32(value: unknown): value is number {
  return typeof value === "number" &&
    ((value | 0) === value || value >>> 0 === value);
}

/**
 * Check a value written to a 32-bit device register: an integer from -2^31
 * (an int32 holding the same 32 bits) to 2^32 - 1.
 *
 * @param offset The register's offset in bytes, for the message.
 * @param value The value to write.
 * @returns `value`, unchanged.
 * @throws {IommuError} `EINVAL` for anything else (NaN, fractions, bigints,
 * values that do not fit 32 bits).
 */
export function checkRegisterValue(offset: number, value: number): number {
  if (!isWord32(value)) {
    throw new IommuError(
      "EINVAL",
      `register ${hex(offset)} takes a 32-bit value, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * A short description of any value for error messages: primitives as
 * themselves (`4096n`, `"4096"`, `NaN`, `null`), objects by kind.
 *
 * @param value Anything.
 * @returns The description.
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "bigint":
      return `${value}n`;
    case "string":
      return JSON.stringify(value);
    case "object":
      return value === null
        ? "null"
        : Array.isArray(value)
        ? "an array"
        : "an object";
    case "function":
      return "a function";
    case "symbol":
      return value.toString();
    default:
      return String(value);
  }
}

/**
 * Check that `value` is an object (not null, not a primitive), as an entry
 * point expecting a spec, a unit or a record needs before it reads fields.
 *
 * @param value The argument.
 * @param what What was expected, for the message (for example "master spec").
 * @throws {IommuError} `EINVAL` naming what was expected and what came.
 */
export function checkObject(
  value: unknown,
  what: string,
): asserts value is object {
  if (value === null || typeof value !== "object") {
    throw new IommuError(
      "EINVAL",
      `${what} must be an object, got ${describeValue(value)}`,
    );
  }
}

/**
 * Check that `value` is a list: an array, or an array-like object (a typed
 * array) whose `length` is a non-negative safe integer.
 *
 * @param value The argument.
 * @param what What was expected, for the message (for example "frame list").
 * @throws {IommuError} `EINVAL` naming what was expected and what came.
 */
export function checkList(
  value: unknown,
  what: string,
): asserts value is ArrayLike<unknown> {
  if (
    !(value !== null && typeof value === "object" &&
      Number.isSafeInteger((value as { length?: unknown }).length) &&
      (value as { length: number }).length >= 0)
  ) {
    throw new IommuError(
      "EINVAL",
      `${what} must be an array, got ${describeValue(value)}`,
    );
  }
}
