import {
  assert,
  assertEquals,
  assertMatch,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  formatBytes,
  formatSize,
  protString,
  renderIovaSvg,
  type SvgDomain,
  xmlEscape,
} from "../svg/mod.ts";
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
} from "../core/mod.ts";
import { protString as dumpProtString } from "../cli/dump_command.ts";
import { checkXml } from "./support/xml_wellformed.ts";

const two: SvgDomain[] = [
  {
    label: "domain 1: codec <left & right>",
    masters: ["codec@13400000"],
    inputBits: 32,
    leaves: [
      { iova: 0x10000, pa: 0x4000_0000, pageSize: 4096, prot: 3 },
      { iova: 0x11000, pa: 0x4000_1000, pageSize: 4096, prot: 3 },
      { iova: 0x100000, pa: 0x4010_0000, pageSize: 0x100000, prot: 1 },
      { iova: 0x300000, pa: 0x4030_0000, pageSize: 4096, prot: 2 },
    ],
    tableStats: [
      { level: 1, tables: 1, bytes: 16384, entriesUsed: 3, entriesTotal: 4096 },
      { level: 2, tables: 2, bytes: 2048, entriesUsed: 3, entriesTotal: 512 },
    ],
    owners: [{ iova: 0x300000, size: 4096, master: "fimd@11c00000" }],
  },
  {
    label: "domain 2: fimd",
    masters: ["fimd@11c00000"],
    inputBits: 32,
    leaves: [],
    tableStats: [
      { level: 1, tables: 1, bytes: 16384, entriesUsed: 0, entriesTotal: 4096 },
    ],
  },
];

Deno.test("SVG is well-formed XML with one group per domain", () => {
  const svg = renderIovaSvg(two, { title: "t & <t>" });
  const els = checkXml(svg);
  assertEquals(els[0]!.name, "svg");
  assertEquals(els[0]!.attrs.xmlns, "http://www.w3.org/2000/svg");
  const groups = els.filter((e) =>
    e.name === "g" && e.attrs.class === "domain"
  );
  assertEquals(groups.length, 2);
  assertEquals(groups.map((g) => g.attrs["data-label"]), [
    "domain 1: codec &lt;left &amp; right&gt;",
    "domain 2: fimd",
  ]);
  assert(svg.includes("t &amp; &lt;t&gt;"));
});

Deno.test("SVG: runs merge, holes are drawn, owners and page sizes colour runs", () => {
  const svg = renderIovaSvg(two);
  const els = checkXml(svg);
  // Domain 1: runs 0x10000+8K (4K pages), 0x100000 1M page, 0x300000 4K (fimd).
  assertEquals(els.filter((e) => e.attrs.class === "run").length, 3);
  // Holes: before, between x2, after = 4 in domain 1, 1 in domain 2 (plus
  // the overview bars, the legend swatch and the occupancy backgrounds).
  const titles = [...svg.matchAll(/<title>hole ([^<]*)<\/title>/g)].map((m) =>
    m[1]
  );
  assertEquals(titles, [
    "0x0..0x10000 (64 KiB = 0x10000 bytes, not to scale)",
    "0x12000..0x100000 (952 KiB = 0xee000 bytes, not to scale)",
    "0x200000..0x300000 (1 MiB = 0x100000 bytes, not to scale)",
    "0x301000..0x100000000 (3.997 GiB = 0xffcff000 bytes, not to scale)",
    "0x0..0x100000000 (4 GiB = 0x100000000 bytes, not to scale)",
  ]);
  // Permissions as `dump` prints them: no made-up execute bit.
  assertMatch(
    svg,
    /0x10000\.\.0x12000 8 KiB: 2 x 4 KiB pages, RW, codec@13400000/,
  );
  assertMatch(
    svg,
    /0x300000\.\.0x301000 4 KiB: 1 x 4 KiB pages, -W, fimd@11c00000/,
  );
  assert(!/RWX|-WX|R-X/.test(svg), "execute permission is not modelled");
  // Two masters, two hues; two page sizes, two lightnesses.
  const fills = new Set(
    [...svg.matchAll(/fill="(hsl\([^"]*\))" class="run"/g)].map((m) => m[1]),
  );
  assertEquals(fills.size, 3);
  assertMatch(svg, /level 1: 1 table\(s\), 16 KiB/);
  assertMatch(svg, /3 of 4096 entries used \(0\.07%\)/);
  assertMatch(svg, /4 KiB pages/);
  assertMatch(svg, /1 MiB pages/);
});

Deno.test("SVG: holes carry a break symbol and exact sizes, runs their start and end", () => {
  const svg = renderIovaSvg(two);
  const els = checkXml(svg);
  const domain1 = svg.slice(
    svg.indexOf('id="domain-0"'),
    svg.indexOf('</g>\n<g class="domain" id="domain-1"'),
  );
  // One break symbol per hole in the strip (4 + 1) plus the legend's.
  assertEquals(els.filter((e) => e.attrs.class === "hole").length, 6);
  assertEquals(els.filter((e) => e.attrs.class === "break").length, 6);
  assertStringIncludes(svg, "holes not to scale");
  // Hole labels: exact sizes, never rounded up to a round number.
  const gaps = [...svg.matchAll(/class="gap(?: small)?">([^<]*)</g)].map((m) =>
    m[1]
  );
  for (
    const want of [
      "64 KiB",
      "0x10000",
      "952 KiB",
      "0xee000",
      "3.997 GiB",
      "0xffcff000",
      "4 GiB",
      "0x100000000",
    ]
  ) {
    assert(gaps.includes(want), `hole label ${want} in ${gaps.join(", ")}`);
  }
  assert(!gaps.includes("4.00 GiB"));
  // Runs: start and end (first byte after) below each box.
  const addrs = [...domain1.matchAll(/class="addr">([^<]*)</g)].map((m) =>
    m[1]
  );
  assertEquals(addrs, [
    "start 0x10000",
    "end 0x12000",
    "start 0x100000",
    "end 0x200000",
    "start 0x300000",
    "end 0x301000",
  ]);
  // Overview: every run at least 3 px wide, the span labelled.
  const marks = els.filter((e) => e.attrs.class === "mark");
  assertEquals(marks.length, 3);
  assert(marks.every((m) => Number(m.attrs.width) >= 3));
  assertStringIncludes(svg, "mapped span 0x10000..0x301000 (2.941 MiB)");
  assertEquals(els.filter((e) => e.attrs.class === "overview").length, 2);
});

Deno.test("SVG: legend shading matches the runs; occupancy bars are neutral", () => {
  const svg = renderIovaSvg(two);
  const els = checkXml(svg);
  const runFills = new Set(
    els.filter((e) => e.attrs.class === "run").map((e) => e.attrs.fill),
  );
  const swatches = els.filter((e) => e.attrs.class === "swatch").map((e) =>
    e.attrs.fill
  );
  // codec: 4 KiB and 1 MiB; fimd: 4 KiB; each exactly a run's colour.
  assertEquals(swatches.length, 3);
  assertEquals(new Set(swatches), runFills);
  assertMatch(svg, /4 KiB pages/);
  assertMatch(svg, /1 MiB pages/);
  // Page-table bars carry no master colour.
  const used = els.filter((e) => e.attrs.class === "used");
  assertEquals(used.length, 1 + 3); // the legend swatch and three levels
  assert(used.every((e) => e.attrs.fill === undefined));
  assertMatch(svg, /\.used\{fill:#8a8a8a\}/);
  // A domain without runs still gets a legend row for its master.
  const idle = renderIovaSvg([{ ...two[1]!, masters: ["idle"] }]);
  checkXml(idle);
  assertStringIncludes(idle, "(nothing mapped)");
  assert(!svg.includes("(nothing mapped)"));
});

Deno.test("SVG: a large domain wraps its strip and stays well-formed", () => {
  const leaves = [];
  for (let i = 0; i < 1000; i++) {
    leaves.push({
      iova: 0x100000 + i * 0x2000,
      pa: 0x4000_0000 + i * 0x1000,
      pageSize: 4096,
      prot: 3,
    });
  }
  const svg = renderIovaSvg([{
    label: "big",
    masters: ["m"],
    inputBits: 48,
    leaves,
    tableStats: [],
  }]);
  const els = checkXml(svg);
  assertEquals(els.filter((e) => e.attrs.class === "run").length, 1000);
  const ys = new Set(
    els.filter((e) => e.attrs.class === "run").map((e) => e.attrs.y),
  );
  assert(ys.size >= 3, `expected wrapped rows, got ${ys.size}`);
  // Rows are balanced (a short last row would look stretched) and capped.
  const perRow = new Map<string, number>();
  for (const e of els) {
    if (e.attrs.class === "run" || e.attrs.class === "hole") {
      perRow.set(e.attrs.y!, (perRow.get(e.attrs.y!) ?? 0) + 1);
    }
  }
  const counts = [...perRow.values()].filter((n) => n > 1); // legend, overview
  assert(counts.length <= 16, `${counts.length} rows`);
  assert(Math.max(...counts) - Math.min(...counts) <= 1, counts.join(","));
});

Deno.test("helpers: escaping, byte formatting, and the checker rejects bad XML", () => {
  assertEquals(
    xmlEscape(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
  );
  assertEquals(formatBytes(4096), "4 KiB");
  assertEquals(formatBytes(1536), "1.50 KiB");
  assertEquals(formatBytes(2 ** 48), "256 TiB");
  assertEquals(formatBytes(12), "12 B");
  assertEquals(formatSize(0xffe80000), "3.998 GiB");
  assertEquals(formatSize(2 ** 32), "4 GiB");
  assertEquals(formatSize(2 ** 32 - 4096), "3.999 GiB");
  assertEquals(formatSize(0x236000), "2.21 MiB");
  assertEquals(formatSize(2 ** 20 + 1), "≈1 MiB");
  assertEquals(formatSize(0), "0 B");
  assertEquals(protString(IOMMU_READ | IOMMU_WRITE), "RW");
  assertEquals(protString(IOMMU_WRITE), "-W");
  assertEquals(
    protString(
      IOMMU_READ | IOMMU_NOEXEC | IOMMU_CACHE | IOMMU_MMIO | IOMMU_PRIV,
    ),
    "R- nx cache mmio priv",
  );
  assertEquals(protString(0), "--");
  // dump prints permissions with the very same helper.
  assertStrictEquals(dumpProtString, protString);
  assertThrows(() => checkXml("<svg><g></svg>"));
  assertThrows(() => checkXml("<svg a=1></svg>"));
  assertThrows(() => checkXml("<svg>&nope;</svg>"));
  assertThrows(() => checkXml("<svg/><svg/>"));
});
