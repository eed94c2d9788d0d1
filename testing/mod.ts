/**
 * Test support for plugin authors: the conformance suite every IOMMU plugin
 * must pass, as Deno test steps or as plain cases.
 *
 * @example Listing the cases
 * ```ts
 * import { conformanceCases } from "@iommukit/iommukit/testing";
 * const names = conformanceCases({ plugin: () => { throw new Error("unused"); }, units: [] })
 *   .map((c) => c.name);
 * if (names.length < 10) throw new Error("the suite lost cases");
 * ```
 *
 * @module
 */
export * from "./conformance.ts";
