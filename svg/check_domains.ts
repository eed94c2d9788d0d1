/**
 * Input checks of {@linkcode renderIovaSvg}: the picture is drawn from
 * plain data (what a domain's `leaves()` and `tableStats()` return, or a
 * saved copy of it), so every field it reads is checked before anything is
 * drawn.
 *
 * @module
 */
import {
  checkAddress,
  checkList,
  checkObject,
  checkSize,
  describeValue,
  IommuError,
} from "../core/mod.ts";
import type { SvgDomain } from "./iova_picture.ts";

function checkString(value: unknown, what: string): void {
  if (typeof value !== "string") {
    throw new IommuError(
      "EINVAL",
      `${what} must be a string, got ${describeValue(value)}`,
    );
  }
}

// A range ending at `end` bytes must lie in the 2^bits-byte aperture.
function checkInAperture(end: number, bits: number, what: string): void {
  if (end > 2 ** bits) {
    throw new IommuError(
      "EINVAL",
      `${what} ends at ${end}, past the 2^${bits}-byte aperture`,
    );
  }
}

/**
 * Check the domains given to {@linkcode renderIovaSvg}.
 *
 * @param domains The domains to draw.
 * @throws {IommuError} `EINVAL` naming the first malformed field: a list
 * that is not a list; a domain that is not an object; a label or master
 * name that is not a string; `inputBits` that is not an integer from 1 to
 * 64; a leaf whose `iova`, `pa` or `prot` is not a non-negative safe
 * integer or whose `pageSize` is not a positive one; leaves not in
 * ascending IOVA order or overlapping; a leaf or owner range ending past
 * the aperture (`2^inputBits` bytes); a table-level record whose counts are
 * not non-negative safe integers.
 */
export function checkSvgDomains(domains: readonly SvgDomain[]): void {
  checkList(domains, "SVG domain list");
  for (let i = 0; i < domains.length; i++) {
    const d = domains[i]!;
    const what = `SVG domain ${i}`;
    checkObject(d, what);
    checkString(d.label, `${what} label`);
    checkList(d.masters, `${what} masters`);
    for (let k = 0; k < d.masters.length; k++) {
      checkString(d.masters[k], `${what} master ${k}`);
    }
    const bits: unknown = d.inputBits;
    if (
      typeof bits !== "number" || !Number.isInteger(bits) || bits < 1 ||
      bits > 64
    ) {
      throw new IommuError(
        "EINVAL",
        `${what} inputBits must be an integer from 1 to 64, got ${
          describeValue(bits)
        }`,
      );
    }
    checkList(d.leaves, `${what} leaves`);
    let end = 0;
    for (let k = 0; k < d.leaves.length; k++) {
      const l = d.leaves[k]!;
      const leaf = `${what} leaf ${k}`;
      checkObject(l, leaf);
      checkAddress(l.iova, `${leaf} iova`);
      checkAddress(l.pa, `${leaf} pa`);
      checkSize(l.pageSize, `${leaf} pageSize`);
      checkAddress(l.prot, `${leaf} prot`);
      if (l.iova < end) {
        throw new IommuError(
          "EINVAL",
          `${leaf} at ${l.iova} starts below the end of the one before (${end}): leaves must be in ascending IOVA order, without overlaps`,
        );
      }
      end = l.iova + l.pageSize;
      checkInAperture(end, bits, leaf);
    }
    checkList(d.tableStats, `${what} tableStats`);
    for (let k = 0; k < d.tableStats.length; k++) {
      const s = d.tableStats[k]!;
      const level = `${what} tableStats ${k}`;
      checkObject(s, level);
      for (
        const key of [
          "level",
          "tables",
          "bytes",
          "entriesUsed",
          "entriesTotal",
        ] as const
      ) {
        checkAddress(s[key], `${level} ${key}`);
      }
    }
    if (d.owners !== undefined) {
      checkList(d.owners, `${what} owners`);
      for (let k = 0; k < d.owners.length; k++) {
        const o = d.owners[k]!;
        const owner = `${what} owner ${k}`;
        checkObject(o, owner);
        checkAddress(o.iova, `${owner} iova`);
        checkSize(o.size, `${owner} size`);
        checkString(o.master, `${owner} master`);
        checkInAperture(o.iova + o.size, bits, owner);
      }
    }
  }
}
