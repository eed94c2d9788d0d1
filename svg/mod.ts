/**
 * Pictures of I/O address spaces: {@linkcode renderIovaSvg} draws every
 * domain's IOVA space (mapped runs coloured by master and page size, holes
 * hatched) and its page-table occupancy per level, as one standalone SVG;
 * {@linkcode protString} is the permission text `dump` and the picture share.
 *
 * @example
 * ```ts
 * import { renderIovaSvg } from "./mod.ts";
 * const svg = renderIovaSvg([{
 *   label: "domain 1", masters: ["dma0"], inputBits: 32,
 *   leaves: [{ iova: 0x10000, pa: 0x4000_0000, pageSize: 4096, prot: 3 }],
 *   tableStats: [],
 * }], { title: "one page" });
 * if (!svg.includes("one page")) throw new Error();
 * ```
 *
 * @module
 */
export * from "./iova_picture.ts";
export * from "./prot_text.ts";
