/**
 * An SVG picture of I/O address spaces: one group per domain with an
 * overview bar of its whole aperture (to scale; mapped ranges at least 3 px
 * wide, the mapped span labelled), a condensed strip where every mapped run
 * and every hole between runs gets its own box (so a 4 KiB buffer next to a
 * 4 GiB hole stays visible; holes carry a break symbol and their exact
 * size because they are not to scale), and a grey bar per page-table level
 * showing how full that level is. Runs are coloured by master (hue) and
 * page size (lighter = larger pages); every box has a `<title>` tooltip.
 *
 * @module
 */
import {
  checkObject,
  describeValue,
  hex,
  IommuError,
  type MappingRecord,
  type PageTableLevelStats,
} from "../core/mod.ts";
import { protString } from "./prot_text.ts";
import { checkSvgDomains } from "./check_domains.ts";

/** Who mapped a range (for colouring by master). */
export interface SvgOwnerRange {
  /** First IOVA in bytes. */
  iova: number;
  /** Length in bytes. */
  size: number;
  /** Master name. */
  master: string;
}

/** One domain to draw. */
export interface SvgDomain {
  /** Heading, for example `domain 3: codec@13400000`. */
  label: string;
  /** Masters attached to the domain (the first is the default owner). */
  masters: readonly string[];
  /** IOVA bits of the unit: the aperture is `[0, 2^inputBits)`. */
  inputBits: number;
  /** Leaves as decoded from the page tables, in IOVA order. */
  leaves: readonly MappingRecord[];
  /** Page-table occupancy per level. */
  tableStats: readonly PageTableLevelStats[];
  /** Which master owns which IOVA range, when several share the domain. */
  owners?: readonly SvgOwnerRange[];
}

/** Options for {@linkcode renderIovaSvg}. */
export interface SvgOptions {
  /** Title line at the top. */
  title?: string;
  /**
   * Width of the picture in pixels (default 1000). Fractions are rounded
   * down and widths under 400 give 400; a value that is not a finite number
   * (NaN, Infinity, a string) makes {@linkcode renderIovaSvg} throw
   * `IommuError` `EINVAL`.
   */
  width?: number;
}

/** A run of adjacent leaves with the same page size, prot and owner. */
interface Run {
  iova: number;
  size: number;
  pageSize: number;
  prot: number;
  owner: string;
  leaves: number;
}

const PALETTE_HUES = [210, 20, 130, 280, 50, 340, 180, 95, 250, 0];

// Characters an XML 1.0 document may not contain (C0 controls other than
// tab, LF and CR; U+FFFE and U+FFFF; lone surrogates) plus the five that
// need an entity. The `u` flag makes the surrogate range match lone
// surrogates only, never a valid pair.
const XML_UNSAFE =
  // deno-lint-ignore no-control-regex
  /[&<>"'\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF\uD800-\uDFFF]/gu;

/**
 * Escape text for XML content and attribute values, so that any string
 * (a device or domain name from a device tree, a title) gives a well-formed
 * document.
 *
 * @example
 * ```ts
 * import { xmlEscape } from "./mod.ts";
 * if (xmlEscape('a<&>"\u0001') !== "a&lt;&amp;&gt;&quot;\u2401") throw new Error();
 * ```
 *
 * @param s Any text.
 * @returns The text with `& < > " '` escaped as entities, and every
 *   character XML 1.0 forbids replaced by a visible stand-in: a C0 control
 *   character U+0000..U+001F other than tab, LF and CR by its Unicode
 *   control picture (U+2400 + code, for example U+0001 becomes `␁`), and
 *   U+FFFE, U+FFFF and lone surrogates by U+FFFD `�`. Tab, LF and CR are
 *   kept.
 */
export function xmlEscape(s: string): string {
  return s.replace(XML_UNSAFE, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      case "'":
        return "&#39;";
    }
    const code = c.charCodeAt(0);
    return code < 0x20 ? String.fromCharCode(0x2400 + code) : "\uFFFD";
  });
}

/**
 * Format a byte count with a binary unit (`4 KiB`, `1.5 MiB`).
 *
 * @param bytes A non-negative number of bytes.
 * @returns The text.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const t = Number.isInteger(v)
    ? String(v)
    : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
  return `${t} ${units[i]}`;
}

function ownerOf(
  iova: number,
  d: SvgDomain,
): string {
  for (const o of d.owners ?? []) {
    if (iova >= o.iova && iova < o.iova + o.size) return o.master;
  }
  return d.masters[0] ?? "(none)";
}

function runsOf(d: SvgDomain): Run[] {
  const out: Run[] = [];
  for (const l of d.leaves) {
    const owner = ownerOf(l.iova, d);
    const last = out[out.length - 1];
    if (
      last !== undefined && last.iova + last.size === l.iova &&
      last.pageSize === l.pageSize && last.prot === l.prot &&
      last.owner === owner
    ) {
      last.size += l.pageSize;
      last.leaves++;
    } else {
      out.push({
        iova: l.iova,
        size: l.pageSize,
        pageSize: l.pageSize,
        prot: l.prot,
        owner,
        leaves: 1,
      });
    }
  }
  return out;
}

/**
 * Format a byte count for labels that must not mislead: exact multiples
 * print as integers (`4 GiB`), anything else is truncated (never rounded
 * up) to at most three decimals, so `0xffe80000` bytes reads `3.998 GiB`,
 * not `4.00 GiB`. A value that truncates to a whole number gets a `≈`.
 *
 * @example
 * ```ts
 * import { formatSize } from "./mod.ts";
 * if (formatSize(0xffe80000) !== "3.998 GiB") throw new Error();
 * if (formatSize(2 ** 32) !== "4 GiB") throw new Error();
 * ```
 *
 * @param bytes A non-negative number of bytes.
 * @returns The text.
 */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let div = 1;
  while (bytes >= div * 1024 && i < units.length - 1) {
    div *= 1024;
    i++;
  }
  const v = bytes / div;
  if (Number.isInteger(v)) return `${v} ${units[i]}`;
  const t = Math.floor(v * 1000) / 1000;
  if (Number.isInteger(t)) return `≈${t} ${units[i]}`;
  return `${t.toFixed(3).replace(/0+$/, "")} ${units[i]}`;
}

// Rough text widths (px) for deciding whether a label fits its box.
const SANS_PX = 5.8; // per character at 10 px sans-serif
const MONO_PX = 5.5; // per character at 9 px monospace

/** Lightness (%) from which run labels switch to dark text. */
const LIGHT_TEXT_LIMIT = 58;
/** Most strip rows per domain; beyond that boxes shrink instead. */
const MAX_ROWS = 16;

interface StripItem {
  kind: "run" | "hole";
  iova: number;
  size: number;
  run?: Run;
}

function stripItems(runs: readonly Run[], aperture: number): StripItem[] {
  const items: StripItem[] = [];
  let at = 0;
  for (const r of runs) {
    if (r.iova > at) items.push({ kind: "hole", iova: at, size: r.iova - at });
    items.push({ kind: "run", iova: r.iova, size: r.size, run: r });
    at = r.iova + r.size;
  }
  if (at < aperture) {
    items.push({ kind: "hole", iova: at, size: aperture - at });
  }
  return items;
}

// Split the strip into rows whose boxes keep their minimum widths (room for
// labels), then share each row's spare width by log2(size) so bigger things
// look bigger without being to scale.
function layoutStrip(
  items: readonly StripItem[],
  runMin: number,
  holeMin: number,
  barW: number,
): { item: StripItem; w: number }[][] {
  const min = (it: StripItem) => (it.kind === "run" ? runMin : holeMin);
  let rows: StripItem[][] = [];
  let cur: StripItem[] = [];
  let sum = 0;
  for (const it of items) {
    if (cur.length > 0 && sum + min(it) > barW) {
      rows.push(cur);
      cur = [];
      sum = 0;
    }
    cur.push(it);
    sum += min(it);
  }
  if (cur.length > 0) rows.push(cur);
  if (rows.length > 1) {
    // Even rows: a short last row would stretch its boxes and look to scale.
    const n = Math.min(rows.length, MAX_ROWS);
    rows = [];
    for (let r = 0; r < n; r++) {
      rows.push(
        items.slice(
          Math.round((r * items.length) / n),
          Math.round(((r + 1) * items.length) / n),
        ),
      );
    }
  }
  const weight = (s: number) => Math.max(1, Math.log2(s) - 9);
  return rows.map((row) => {
    const mins = row.map(min);
    const total = mins.reduce((a, b) => a + b, 0);
    const scale = Math.min(1, barW / total);
    const spare = barW - total * scale;
    const weights = row.reduce((a, it) => a + weight(it.size), 0);
    return row.map((item, i) => ({
      item,
      w: mins[i]! * scale + (spare * weight(item.size)) / weights,
    }));
  });
}

/**
 * Draw every domain's IOVA space and page-table occupancy as one SVG
 * document. The result is standalone (opens in a browser), with one
 * `<g class="domain">` per domain. Inside each: an overview bar of the whole
 * aperture (`class="overview"`), the condensed strip of runs
 * (`class="run"`) and holes (`class="hole"`, each with a `class="break"`
 * symbol and a size label), and one occupancy bar per level (`class="used"`).
 *
 * @example
 * ```ts
 * import { renderIovaSvg } from "./mod.ts";
 * const svg = renderIovaSvg([{
 *   label: "domain 1: dma0", masters: ["dma0"], inputBits: 32,
 *   leaves: [{ iova: 0x10000, pa: 0x4000_0000, pageSize: 4096, prot: 3 }],
 *   tableStats: [{ level: 1, tables: 1, bytes: 16384, entriesUsed: 1, entriesTotal: 4096 }],
 * }]);
 * if (!svg.startsWith("<svg") || !svg.includes('class="domain"')) throw new Error();
 * ```
 *
 * @param domains The domains, in drawing order.
 * @param options Title and width.
 * @returns The SVG text.
 * @throws {IommuError} `EINVAL` when `options` is not an object, its
 *   `width` is given but is not a finite number or its `title` is given but
 *   is not a string, or `domains` is malformed: not a list, a domain
 *   whose label or master names are not strings, `inputBits` not an
 *   integer from 1 to 64, leaves or owner ranges with addresses or sizes
 *   that are not non-negative safe integers, leaves out of IOVA order,
 *   overlapping or past the aperture, malformed table-level counts (nothing
 *   is drawn); `ENOMEM` when the document would be
 *   longer than the JavaScript engine's longest string (in V8 about 2^29
 *   characters, reached near a million separate runs; 200,000 separate
 *   4 KiB runs give about 110 MB).
 */
export function renderIovaSvg(
  domains: readonly SvgDomain[],
  options: SvgOptions = {},
): string {
  checkObject(options, "SVG options");
  if (options.title !== undefined && typeof options.title !== "string") {
    throw new IommuError(
      "EINVAL",
      `SVG title must be a string, got ${describeValue(options.title)}`,
    );
  }
  checkSvgDomains(domains);
  const width = options.width ?? 1000;
  if (typeof width !== "number" || !Number.isFinite(width)) {
    throw new IommuError(
      "EINVAL",
      `SVG width must be a finite number of pixels, got ${String(width)}`,
    );
  }
  const W = Math.max(400, Math.floor(width));
  const left = 20;
  const barW = W - 2 * left;
  const parts: string[] = [];
  const allRuns = domains.map(runsOf);
  // Colours: one hue per master across the whole picture; page sizes get
  // lighter as they grow, so big pages read as big at a glance.
  const masters: string[] = [];
  const sizes: number[] = [];
  const sizesOf = new Map<string, Set<number>>();
  domains.forEach((d, i) => {
    for (const m of d.masters) if (!masters.includes(m)) masters.push(m);
    for (const o of d.owners ?? []) {
      if (!masters.includes(o.master)) masters.push(o.master);
    }
    for (const r of allRuns[i]!) {
      if (!sizes.includes(r.pageSize)) sizes.push(r.pageSize);
      const set = sizesOf.get(r.owner) ?? new Set<number>();
      set.add(r.pageSize);
      sizesOf.set(r.owner, set);
    }
  });
  sizes.sort((a, b) => a - b);
  const hueOf = (m: string) =>
    PALETTE_HUES[Math.max(0, masters.indexOf(m)) % PALETTE_HUES.length]!;
  const lightOf = (ps: number) =>
    sizes.length <= 1
      ? 40
      : 36 + Math.round((sizes.indexOf(ps) / (sizes.length - 1)) * 36);
  const fill = (m: string, ps: number) =>
    `hsl(${hueOf(m)},65%,${lightOf(ps)}%)`;
  const textClass = (ps: number) =>
    lightOf(ps) >= LIGHT_TEXT_LIMIT ? "size dark" : "size";
  const breakMark = (bx: number, y0: number, h: number) =>
    `<g class="break"><path d="M${(bx - 4).toFixed(1)},${y0 + h + 3} L${
      (bx + 1).toFixed(1)
    },${y0 - 3} L${(bx + 5).toFixed(1)},${y0 - 3} L${bx.toFixed(1)},${
      y0 + h + 3
    } Z" fill="#fff"/><path d="M${(bx - 4).toFixed(1)},${y0 + h + 3} L${
      (bx + 1).toFixed(1)
    },${y0 - 3} M${bx.toFixed(1)},${y0 + h + 3} L${(bx + 5).toFixed(1)},${
      y0 - 3
    }" class="breakline"/></g>`;

  let y = 30;
  const title = options.title ?? "iommukit: IOVA spaces";
  parts.push(
    `<text x="${left}" y="${y}" class="title">${xmlEscape(title)}</text>`,
  );
  y += 22;
  // Legend: per master, one swatch per page size it maps, shaded exactly as
  // its runs are; then the hole and occupancy symbols.
  parts.push(`<g class="legend">`);
  for (const m of masters) {
    parts.push(
      `<text x="${left}" y="${y + 10}" class="heading">${xmlEscape(m)}</text>`,
    );
    let lx = left + Math.max(140, m.length * 7 + 14);
    const own = [...(sizesOf.get(m) ?? [])].sort((a, b) => a - b);
    for (const ps of own.length > 0 ? own : [sizes[0] ?? 4096]) {
      parts.push(
        `<rect x="${lx}" y="${y}" width="14" height="12" fill="${
          fill(m, ps)
        }" class="swatch"/>`,
        `<text x="${lx + 18}" y="${y + 10}">${
          own.length > 0 ? `${formatBytes(ps)} pages` : "(nothing mapped)"
        }</text>`,
      );
      lx += 110;
    }
    y += 18;
  }
  parts.push(
    `<rect x="${left}" y="${y}" width="22" height="12" class="hole"/>`,
    breakMark(left + 11, y, 12),
    `<text x="${left + 28}" y="${
      y + 10
    }">unmapped hole (in the strip: not to scale, exact size written in it)</text>`,
    `<rect x="${left + 420}" y="${y}" width="22" height="12" class="used"/>`,
    `<text x="${left + 448}" y="${y + 10}">page-table entries in use</text>`,
  );
  parts.push(`</g>`);
  y += 32;

  domains.forEach((d, index) => {
    const g: string[] = [];
    const top = y;
    const aperture = 2 ** d.inputBits;
    const runs = allRuns[index]!;
    const mapped = runs.reduce((s, r) => s + r.size, 0);
    g.push(
      `<text x="${left}" y="${y + 12}" class="heading">${
        xmlEscape(d.label)
      }</text>`,
      `<text x="${W - left}" y="${y + 12}" text-anchor="end">${
        formatSize(mapped)
      } mapped in ${runs.length} run(s) of ${d.leaves.length} page(s)</text>`,
    );
    y += 30;
    // Overview: the whole aperture, linear. Mapped ranges get at least 3 px
    // so a few MiB in a 4 GiB space still show, and the span is labelled.
    g.push(
      `<text x="${left}" y="${y}" class="note">whole aperture to scale: 0x0..${
        hex(aperture)
      } (${formatBytes(aperture)})</text>`,
    );
    y += 5;
    g.push(
      `<rect x="${left}" y="${y}" width="${barW}" height="12" class="overview"><title>aperture 0x0..${
        hex(aperture)
      }</title></rect>`,
    );
    const px = (a: number) => left + (a / aperture) * barW;
    for (const r of runs) {
      const w = Math.max(3, (r.size / aperture) * barW);
      const x = Math.min(px(r.iova), left + barW - w);
      g.push(
        `<rect x="${x.toFixed(2)}" y="${y}" width="${
          w.toFixed(2)
        }" height="12" fill="${fill(r.owner, r.pageSize)}" class="mark"/>`,
      );
    }
    if (runs.length > 0) {
      const s = runs[0]!.iova;
      const last = runs[runs.length - 1]!;
      const e = last.iova + last.size;
      const xe = Math.max(px(e), Math.min(px(s) + 3, left + barW));
      const xs = Math.min(px(s), xe - 3);
      const label = `mapped span ${hex(s)}..${hex(e)} (${formatSize(e - s)})`;
      const right = xe > left + barW / 2;
      g.push(
        `<path d="M${xs.toFixed(2)},${y + 12} V${y + 18} H${xe.toFixed(2)} V${
          y + 12
        }" class="span"/>`,
        `<text x="${(right ? xe : xs).toFixed(2)}" y="${
          y + 28
        }" class="addr" text-anchor="${right ? "end" : "start"}">${
          xmlEscape(label)
        }</text>`,
      );
    }
    y += 44;
    // Condensed strip: runs and holes in address order.
    g.push(
      `<text x="${left}" y="${y}" class="note">mapped runs and the holes between them, in address order (holes not to scale; run labels: start and end, end = first byte after the run)</text>`,
    );
    y += 8;
    const items = stripItems(runs, aperture);
    // Longest labels, by loops: a spread of one argument per run overflows
    // the call stack from about 100,000 runs.
    let addrLen = 0;
    for (const r of runs) {
      addrLen = Math.max(addrLen, `start ${hex(r.iova + r.size)}`.length);
    }
    const runMin = Math.max(90, addrLen * MONO_PX + 8);
    // Holes keep room for their size label plus the break symbol.
    let holeLen = 0;
    for (const it of items) {
      if (it.kind !== "hole") continue;
      holeLen = Math.max(
        holeLen,
        formatSize(it.size).length,
        hex(it.size).length,
      );
    }
    const holeMin = Math.min(120, Math.max(44, holeLen * SANS_PX + 22));
    const boxH = 30;
    const rowPitch = boxH + 30;
    for (const row of layoutStrip(items, runMin, holeMin, barW)) {
      let x = left;
      for (const { item: it, w } of row) {
        const range = `${hex(it.iova)}..${hex(it.iova + it.size)}`;
        const cx = x + w / 2;
        const fits = (text: string, room: number) =>
          text.length * SANS_PX <= room - 4;
        if (it.kind === "hole") {
          g.push(
            `<rect x="${x.toFixed(2)}" y="${y}" width="${
              w.toFixed(2)
            }" height="${boxH}" class="hole"><title>hole ${range} (${
              formatSize(it.size)
            } = ${hex(it.size)} bytes, not to scale)</title></rect>`,
          );
          // The break sits at the right edge so the size label stays clear.
          const room = w >= 24 ? w - 14 : w;
          g.push(breakMark(w >= 24 ? x + w - 8 : cx, y, boxH));
          const tx = (x + room / 2).toFixed(2);
          const size = formatSize(it.size);
          if (fits(size, room)) {
            g.push(
              `<text x="${tx}" y="${
                y + 13
              }" text-anchor="middle" class="gap">${size}</text>`,
            );
            if (fits(hex(it.size), room)) {
              g.push(
                `<text x="${tx}" y="${
                  y + 25
                }" text-anchor="middle" class="gap small">${
                  hex(it.size)
                }</text>`,
              );
            }
          }
        } else {
          const r = it.run!;
          g.push(
            `<rect x="${x.toFixed(2)}" y="${y}" width="${
              w.toFixed(2)
            }" height="${boxH}" fill="${
              fill(r.owner, r.pageSize)
            }" class="run"><title>${
              xmlEscape(
                `${range} ${formatSize(r.size)}: ${r.leaves} x ${
                  formatBytes(r.pageSize)
                } pages, ${protString(r.prot)}, ${r.owner}`,
              )
            }</title></rect>`,
          );
          const size = formatSize(r.size);
          const detail = `${r.leaves} x ${formatBytes(r.pageSize)}, ${
            protString(r.prot)
          }`;
          if (fits(size, w)) {
            g.push(
              `<text x="${cx.toFixed(2)}" y="${
                y + 13
              }" text-anchor="middle" class="${
                textClass(r.pageSize)
              }">${size}</text>`,
            );
          }
          if (fits(detail, w)) {
            g.push(
              `<text x="${cx.toFixed(2)}" y="${
                y + 25
              }" text-anchor="middle" class="${textClass(r.pageSize)} small">${
                xmlEscape(detail)
              }</text>`,
            );
          }
          const a = `start ${hex(r.iova)}`;
          const b = `end ${hex(r.iova + r.size)}`;
          if (Math.max(a.length, b.length) * MONO_PX <= w) {
            g.push(
              `<text x="${cx.toFixed(2)}" y="${
                y + boxH + 11
              }" text-anchor="middle" class="addr">${a}</text>`,
              `<text x="${cx.toFixed(2)}" y="${
                y + boxH + 22
              }" text-anchor="middle" class="addr">${b}</text>`,
            );
          }
        }
        x += w;
      }
      y += rowPitch;
    }
    y += 6;
    // Page-table occupancy per level (neutral grey: tables belong to the
    // domain, not to one master).
    g.push(
      `<text x="${left}" y="${
        y + 2
      }" class="note">page-table occupancy per level: entries in use / entries in the tables allocated</text>`,
    );
    y += 8;
    for (const s of d.tableStats) {
      const frac = s.entriesTotal === 0 ? 0 : s.entriesUsed / s.entriesTotal;
      const labelW = 230;
      const w = barW - labelW - 70;
      g.push(
        `<text x="${left}" y="${
          y + 10
        }">level ${s.level}: ${s.tables} table(s), ${
          formatBytes(s.bytes)
        }</text>`,
        `<rect x="${
          left + labelW
        }" y="${y}" width="${w}" height="12" class="free"/>`,
        `<rect x="${left + labelW}" y="${y}" width="${
          Math.max(frac > 0 ? 1 : 0, frac * w).toFixed(2)
        }" height="12" class="used"><title>${s.entriesUsed} of ${s.entriesTotal} entries used (${
          (frac * 100).toFixed(2)
        }%)</title></rect>`,
        `<text x="${W - left}" y="${
          y + 10
        }" text-anchor="end">${s.entriesUsed}/${s.entriesTotal}</text>`,
      );
      y += 16;
    }
    y += 22;
    parts.push(
      `<g class="domain" id="domain-${index}" data-label="${
        xmlEscape(d.label)
      }" data-top="${top}">`,
      // One string, not a spread: g holds several lines per run.
      joinLines(g, domains.length),
      `</g>`,
    );
  });
  const height = y + 10;
  return joinLines([
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="11">`,
    `<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d0d0d0" stroke-width="2"/></pattern></defs>`,
    `<style>.title{font-size:16px;font-weight:bold}.heading{font-weight:bold}.note{fill:#555;font-size:10px;font-style:italic}.addr{fill:#333;font-size:9px;font-family:monospace}.hole{fill:url(#hatch);stroke:#bbb;stroke-width:0.5}.overview{fill:#f4f4f4;stroke:#bbb;stroke-width:0.5}.run{stroke:#fff;stroke-width:1}.span{fill:none;stroke:#555;stroke-width:1}.breakline{fill:none;stroke:#555;stroke-width:1.2}.free{fill:#eee;stroke:#ccc;stroke-width:0.5}.used{fill:#8a8a8a}.size{fill:#fff;font-size:10px}.dark{fill:#222}.small{font-size:9px}.gap{fill:#666;font-size:10px}</style>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    `</svg>`,
    "",
  ], domains.length);
}

// Join lines into one string. A picture of about a million separate runs
// is longer than the longest string the JavaScript engine can build (about
// 2^29 characters in V8); that RangeError becomes ENOMEM.
function joinLines(lines: readonly string[], domains: number): string {
  try {
    return lines.join("\n");
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new IommuError(
      "ENOMEM",
      `SVG picture of ${domains} domain(s) is too large for one string ` +
        `(${lines.length} lines); draw fewer domains or fewer separate mappings`,
      { cause: e },
    );
  }
}
