/**
 * The one plan `checkMapPlan` may skip: the private plan a `Domain` has just
 * filled from arguments it validated itself; and which address lists may
 * be checked and then used in place. Kept out of core/mod.ts so only
 * core code can mark a plan; a caller never holds a domain's plan, so it
 * cannot smuggle an unchecked one past a driver's entry check.
 *
 * @module
 */

let trusted: object | null = null;

/**
 * Mark `plan` as built from checked arguments (called by `Domain` right
 * before it hands the plan to its driver, and with null right after, so a
 * plan someone kept a reference to is not trusted later).
 *
 * @param plan A plan only the caller holds, or null to drop the mark.
 */
export function trustPlan(plan: object | null): void {
  trusted = plan;
}

/**
 * Whether `plan` is the plan marked by {@linkcode trustPlan}; a match uses
 * the mark up (one check per driver call).
 *
 * @param plan Any plan.
 * @returns True when the entry check may skip it.
 */
export function isTrustedPlan(plan: unknown): boolean {
  if (plan !== trusted) return false;
  trusted = null;
  return true;
}

/**
 * Whether `list` is a plain `Float64Array`, whose values nobody but its
 * holder can change between two reads: not a proxy (which passes
 * `instanceof`), not a view of a `SharedArrayBuffer` (another thread could
 * write it). Such a list may be checked and then used in place; any other
 * is copied first.
 *
 * @param list A list of addresses.
 * @returns True for a plain `Float64Array`.
 */
export function isStableFloat64Array(
  list: ArrayLike<number>,
): list is Float64Array {
  return list instanceof Float64Array && ArrayBuffer.isView(list) &&
    !(list.buffer instanceof SharedArrayBuffer);
}
