/**
 * An SVG picture of I/O address spaces: one group per domain with an
 * overview bar of its whole aperture, a condensed strip where every mapped
 * run and every hole between runs gets its own box (so a 4 KiB buffer next to
 * a 4 GiB hole stays visible), and a bar per page-table level showing how
 * full that level is. Runs are coloured by master (hue) and page size
 * (lightness); every box has a `<title>` tooltip with exact numbers.
 *
 * @module
 */
import {
  hex,
  type MappingRecord,
  type PageTableLevelStats,
} from "../core/mod.ts";

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
  /** Width of the picture in pixels (default 1000). */
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

/**
 * Escape text for XML content and attribute values.
 *
 * @param s Any text.
 * @returns The text with `& < > " '` escaped.
 */
export function xmlEscape(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) =>
      c === "&"
        ? "&amp;"
        : c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
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

function protText(prot: number): string {
  return `${prot & 1 ? "R" : "-"}${prot & 2 ? "W" : "-"}${prot & 8 ? "" : "X"}${
    prot & 4 ? " cache" : ""
  }${prot & 16 ? " mmio" : ""}${prot & 32 ? " priv" : ""}`;
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
 * Draw every domain's IOVA space and page-table occupancy as one SVG
 * document. The result is standalone (opens in a browser), with one
 * `<g class="domain">` per domain.
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
 */
export function renderIovaSvg(
  domains: readonly SvgDomain[],
  options: SvgOptions = {},
): string {
  const W = Math.max(400, Math.floor(options.width ?? 1000));
  const left = 20;
  const barW = W - 2 * left;
  const parts: string[] = [];
  // Colours: one hue per master across the whole picture; page sizes get
  // lighter as they grow, so big pages read as big at a glance.
  const masters: string[] = [];
  const sizes: number[] = [];
  for (const d of domains) {
    for (const m of d.masters) if (!masters.includes(m)) masters.push(m);
    for (const o of d.owners ?? []) {
      if (!masters.includes(o.master)) masters.push(o.master);
    }
    for (const l of d.leaves) {
      if (!sizes.includes(l.pageSize)) sizes.push(l.pageSize);
    }
  }
  sizes.sort((a, b) => a - b);
  const hueOf = (m: string) =>
    PALETTE_HUES[Math.max(0, masters.indexOf(m)) % PALETTE_HUES.length]!;
  const lightOf = (ps: number) =>
    sizes.length <= 1
      ? 45
      : 35 + Math.round((sizes.indexOf(ps) / (sizes.length - 1)) * 35);
  const fill = (m: string, ps: number) =>
    `hsl(${hueOf(m)},65%,${lightOf(ps)}%)`;

  let y = 30;
  const title = options.title ?? "iommukit: IOVA spaces";
  parts.push(
    `<text x="${left}" y="${y}" class="title">${xmlEscape(title)}</text>`,
  );
  y += 14;
  // Legend: masters, then page sizes.
  let lx = left;
  y += 10;
  for (const m of masters) {
    parts.push(
      `<rect x="${lx}" y="${y}" width="12" height="12" fill="${
        fill(m, sizes[0] ?? 4096)
      }"/>`,
      `<text x="${lx + 16}" y="${y + 10}">${xmlEscape(m)}</text>`,
    );
    lx += 24 + m.length * 7;
    if (lx > W - 150) {
      lx = left;
      y += 18;
    }
  }
  y += 20;
  lx = left;
  for (const ps of sizes) {
    parts.push(
      `<rect x="${lx}" y="${y}" width="12" height="12" fill="hsl(0,0%,${
        lightOf(ps)
      }%)"/>`,
      `<text x="${lx + 16}" y="${y + 10}">${formatBytes(ps)} pages</text>`,
    );
    lx += 110;
  }
  parts.push(
    `<rect x="${lx}" y="${y}" width="12" height="12" class="hole"/>`,
    `<text x="${lx + 16}" y="${y + 10}">unmapped</text>`,
  );
  y += 30;

  domains.forEach((d, index) => {
    const g: string[] = [];
    const top = y;
    const aperture = 2 ** d.inputBits;
    const runs = runsOf(d);
    const mapped = runs.reduce((s, r) => s + r.size, 0);
    g.push(
      `<text x="${left}" y="${y + 12}" class="heading">${
        xmlEscape(d.label)
      }</text>`,
      `<text x="${W - left}" y="${y + 12}" text-anchor="end">${
        formatBytes(mapped)
      } mapped in ${runs.length} run(s), ${d.leaves.length} leaves; aperture ${
        formatBytes(aperture)
      }</text>`,
    );
    y += 20;
    // Overview: the whole aperture, linear. Tiny runs get 1 px so they show.
    g.push(
      `<rect x="${left}" y="${y}" width="${barW}" height="14" class="hole"><title>aperture 0x0..${
        hex(aperture)
      }</title></rect>`,
    );
    for (const r of runs) {
      const x = left + (r.iova / aperture) * barW;
      const w = Math.max(1, (r.size / aperture) * barW);
      g.push(
        `<rect x="${x.toFixed(2)}" y="${y}" width="${
          w.toFixed(2)
        }" height="14" fill="${fill(r.owner, r.pageSize)}"/>`,
      );
    }
    g.push(
      `<text x="${left}" y="${y + 26}" class="axis">0x0</text>`,
      `<text x="${left + barW}" y="${y + 26}" class="axis" text-anchor="end">${
        hex(aperture)
      }</text>`,
    );
    y += 34;
    // Condensed strip: runs and holes in order; width grows with log2(size)
    // so both 4 KiB and 1 GiB stay readable.
    const items: {
      kind: "run" | "hole";
      iova: number;
      size: number;
      run?: Run;
    }[] = [];
    let at = 0;
    for (const r of runs) {
      if (r.iova > at) {
        items.push({ kind: "hole", iova: at, size: r.iova - at });
      }
      items.push({ kind: "run", iova: r.iova, size: r.size, run: r });
      at = r.iova + r.size;
    }
    if (at < aperture) {
      items.push({ kind: "hole", iova: at, size: aperture - at });
    }
    const weight = (s: number) => Math.max(1, Math.log2(s) - 9);
    let x = left;
    // Long strips wrap so each box keeps a visible width.
    const lines = 1 + Math.floor(items.length / 400);
    const rowH = 22;
    const perRow = Math.ceil(items.length / lines);
    const rowTotals: number[] = [];
    items.forEach((it, i) => {
      const r = Math.floor(i / perRow);
      rowTotals[r] = (rowTotals[r] ?? 0) + weight(it.size);
    });
    items.forEach((it, i) => {
      if (i > 0 && i % perRow === 0) {
        x = left;
        y += rowH + 4;
      }
      const w = (weight(it.size) / rowTotals[Math.floor(i / perRow)]!) * barW;
      const range = `${hex(it.iova)}..${hex(it.iova + it.size)}`;
      if (it.kind === "hole") {
        g.push(
          `<rect x="${x.toFixed(2)}" y="${y}" width="${
            w.toFixed(2)
          }" height="${rowH}" class="hole"><title>hole ${range} (${
            formatBytes(it.size)
          })</title></rect>`,
        );
      } else {
        const r = it.run!;
        g.push(
          `<rect x="${x.toFixed(2)}" y="${y}" width="${
            w.toFixed(2)
          }" height="${rowH}" fill="${
            fill(r.owner, r.pageSize)
          }" class="run"><title>${
            xmlEscape(
              `${range} ${formatBytes(r.size)}: ${r.leaves} x ${
                formatBytes(r.pageSize)
              } pages, ${protText(r.prot)}, ${r.owner}`,
            )
          }</title></rect>`,
        );
      }
      // Labels where they fit: sizes inside boxes, run start addresses below.
      const cx = (x + w / 2).toFixed(2);
      if (w >= 44) {
        g.push(
          `<text x="${cx}" y="${y + 15}" text-anchor="middle" class="${
            it.kind === "hole" ? "gap" : "size"
          }">${formatBytes(it.size)}</text>`,
        );
      }
      if (it.kind === "run" && w >= 70 && lines === 1) {
        g.push(
          `<text x="${x.toFixed(2)}" y="${y + rowH + 10}" class="axis">${
            hex(it.iova)
          }</text>`,
        );
      }
      x += w;
    });
    y += rowH + (lines === 1 ? 20 : 14);
    // Page-table occupancy per level.
    for (const s of d.tableStats) {
      const frac = s.entriesTotal === 0 ? 0 : s.entriesUsed / s.entriesTotal;
      const labelW = 230;
      const w = barW - labelW;
      g.push(
        `<text x="${left}" y="${
          y + 10
        }">level ${s.level}: ${s.tables} table(s), ${
          formatBytes(s.bytes)
        }</text>`,
        `<rect x="${
          left + labelW
        }" y="${y}" width="${w}" height="12" class="hole"/>`,
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
    y += 18;
    parts.push(
      `<g class="domain" id="domain-${index}" data-label="${
        xmlEscape(d.label)
      }" data-top="${top}">`,
      ...g,
      `</g>`,
    );
  });
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="11">`,
    `<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d0d0d0" stroke-width="2"/></pattern></defs>`,
    `<style>.title{font-size:16px;font-weight:bold}.heading{font-weight:bold}.axis{fill:#666;font-size:9px}.hole{fill:url(#hatch);stroke:#bbb;stroke-width:0.5}.run{stroke:#fff;stroke-width:0.5}.used{fill:#4a7bd0}.size{fill:#fff;font-size:10px}.gap{fill:#888;font-size:10px}</style>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}
