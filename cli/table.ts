/**
 * Plain-text tables for the command line: aligned columns, numbers right,
 * text left, a rule under the header.
 *
 * @module
 */

/** A table cell: text, or a number (right-aligned). */
export type Cell = string | number;

/**
 * Render rows under a header as aligned text.
 *
 * @param header Column titles.
 * @param rows Rows of cells (as many as the header).
 * @returns The table, lines joined with `\n`, without a trailing newline.
 */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly Cell[])[],
): string {
  const text = rows.map((r) =>
    r.map((c) => (typeof c === "number" ? formatCount(c) : c))
  );
  const numeric = header.map((_, i) =>
    rows.length > 0 &&
    rows.every((r) =>
      typeof r[i] === "number" || /^[\d.,%-]+( \S+)?$/.test(String(r[i]))
    )
  );
  const widths = header.map((h, i) =>
    Math.max(h.length, ...text.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: readonly string[]) =>
    cells.map((
      c,
      i,
    ) => (numeric[i] && i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ").trimEnd();
  return [
    line(header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...text.map(line),
  ].join("\n");
}

/**
 * A count with thousands separators (`12,345`); non-integers keep two decimals.
 *
 * @param n The number.
 * @returns The text.
 */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const s = Number.isInteger(n) ? String(Math.abs(n)) : Math.abs(n).toFixed(2);
  const [int, frac] = s.split(".");
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (n < 0 ? "-" : "") + grouped + (frac !== undefined ? "." + frac : "");
}

/**
 * A ratio as a percentage with one decimal (`97.5%`), or `-` when undefined.
 *
 * @param num Numerator.
 * @param den Denominator.
 * @returns The text.
 */
export function percent(num: number, den: number): string {
  return den === 0 ? "-" : `${((num / den) * 100).toFixed(1)}%`;
}
