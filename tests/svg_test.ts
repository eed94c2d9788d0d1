import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  formatBytes,
  renderIovaSvg,
  type SvgDomain,
  xmlEscape,
} from "../svg/mod.ts";
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
    "0x0..0x10000 (64 KiB)",
    "0x12000..0x100000 (952 KiB)",
    "0x200000..0x300000 (1 MiB)",
    "0x301000..0x100000000 (4.00 GiB)",
    "0x0..0x100000000 (4 GiB)",
  ]);
  assertMatch(
    svg,
    /0x10000\.\.0x12000 8 KiB: 2 x 4 KiB pages, RWX, codec@13400000/,
  );
  assertMatch(
    svg,
    /0x300000\.\.0x301000 4 KiB: 1 x 4 KiB pages, -WX, fimd@11c00000/,
  );
  // Two masters, two hues; two page sizes, two lightnesses.
  const fills = new Set(
    [...svg.matchAll(/class="run"/g)].length > 0
      ? [...svg.matchAll(/fill="(hsl\([^"]*\))" class="run"/g)].map((m) => m[1])
      : [],
  );
  assertEquals(fills.size, 3);
  assertMatch(svg, /level 1: 1 table\(s\), 16 KiB/);
  assertMatch(svg, /3 of 4096 entries used \(0\.07%\)/);
  assertMatch(svg, /4 KiB pages/);
  assertMatch(svg, /1 MiB pages/);
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
  assertThrows(() => checkXml("<svg><g></svg>"));
  assertThrows(() => checkXml("<svg a=1></svg>"));
  assertThrows(() => checkXml("<svg>&nope;</svg>"));
  assertThrows(() => checkXml("<svg/><svg/>"));
});
