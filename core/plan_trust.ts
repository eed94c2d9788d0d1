/**
 * The one plan `checkMapPlan` may skip: the private plan a `Domain` has just
 * filled from arguments it validated itself. Kept out of core/mod.ts so only
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
