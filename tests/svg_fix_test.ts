// Fixes found in review of svg/: a domain with many separate mappings threw
// a raw RangeError (argument spreads over every run), control characters in
// names made the file ill-formed XML, and a NaN width was drawn as "NaN".
import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { renderIovaSvg, type SvgDomain, xmlEscape } from "../svg/mod.ts";
import { IommuError } from "../core/mod.ts";
import { checkXml } from "./support/xml_wellformed.ts";

// Characters XML 1.0 does not allow anywhere in a document.
const XML_ILLEGAL =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDFFF]/u;

function count(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
    n++;
  }
  return n;
}

Deno.test("renderIovaSvg draws a domain with 150,000 separate 4 KiB mappings", () => {
  const n = 150_000;
  const leaves = Array.from({ length: n }, (_, i) => ({
    iova: 0x100000 + i * 8192, // every other page: each leaf is its own run
    pa: 0x8000_0000 + i * 4096,
    pageSize: 4096,
    prot: 3,
  }));
  const svg = renderIovaSvg([{
    label: "big",
    masters: ["dma0"],
    inputBits: 48,
    leaves,
    tableStats: [],
  }]);
  assertStringIncludes(svg, `in ${n} run(s) of ${n} page(s)`);
  assertEquals(count(svg, 'class="run"'), n);
  // n - 1 holes between the runs, one before and one after.
  assertEquals(count(svg, 'class="hole"'), n + 1 + 1); // + the legend swatch
  assert(svg.endsWith("</svg>\n"));
});

Deno.test("renderIovaSvg output stays well-formed XML with control characters in names", () => {
  const name = 'dma<&>"\u0001x';
  const d: SvgDomain = {
    label: `domain 1: ${name}\u0000\uFFFF\uD800`,
    masters: [name],
    inputBits: 32,
    leaves: [{ iova: 0x10000, pa: 0x4000_0000, pageSize: 4096, prot: 3 }],
    tableStats: [],
  };
  const svg = renderIovaSvg([d], { title: "t\u0007\u001f" });
  assert(!XML_ILLEGAL.test(svg), "no character XML forbids");
  checkXml(svg);
  assertStringIncludes(svg, "dma&lt;&amp;&gt;&quot;\u2401x");
  assertStringIncludes(svg, "t\u2407\u241f");
  assertStringIncludes(svg, "\u2400\uFFFD\uFFFD");
});

Deno.test("xmlEscape replaces characters XML forbids and keeps the rest", () => {
  assertEquals(xmlEscape("a\u0001b"), "a\u2401b");
  assertEquals(xmlEscape("\u0000\u001b"), "\u2400\u241b");
  assertEquals(xmlEscape("tab\there\nline\rcr"), "tab\there\nline\rcr");
  assertEquals(xmlEscape("\uFFFE\uFFFF"), "\uFFFD\uFFFD");
  assertEquals(xmlEscape("lone \uDC00 \uD83D"), "lone \uFFFD \uFFFD");
  // A valid surrogate pair (an emoji) is text, not an error.
  assertEquals(xmlEscape("cam \u{1F4F7}"), "cam \u{1F4F7}");
  assertEquals(xmlEscape(`<a b='c'>&`), "&lt;a b=&#39;c&#39;&gt;&amp;");
});

Deno.test("renderIovaSvg refuses a width that is not a finite number (EINVAL)", () => {
  const d: SvgDomain[] = [{
    label: "d",
    masters: ["m"],
    inputBits: 32,
    leaves: [],
    tableStats: [],
  }];
  for (const width of [NaN, Infinity, -Infinity, "800" as unknown as number]) {
    const e = assertThrows(() => renderIovaSvg(d, { width }), IommuError);
    assertEquals(e.kind, "EINVAL", String(width));
  }
  const widthOf = (svg: string) => /^<svg [^>]*width="(\d+)"/.exec(svg)?.[1];
  assertEquals(widthOf(renderIovaSvg(d, { width: 120 })), "400");
  assertEquals(widthOf(renderIovaSvg(d, { width: 1234.7 })), "1234");
  assertEquals(widthOf(renderIovaSvg(d)), "1000");
  assert(!renderIovaSvg(d, { width: 700 }).includes("NaN"));
});

Deno.test("renderIovaSvg refuses malformed domains and options with EINVAL naming the field", () => {
  const leaf = { iova: 0x10000, pa: 0x4000_0000, pageSize: 4096, prot: 3 };
  const good: SvgDomain = {
    label: "d",
    masters: ["m"],
    inputBits: 32,
    leaves: [leaf],
    tableStats: [
      { level: 1, tables: 1, bytes: 16384, entriesUsed: 1, entriesTotal: 4096 },
    ],
    owners: [{ iova: 0x10000, size: 4096, master: "m" }],
  };
  assert(renderIovaSvg([good]).startsWith("<svg"));
  const bad: [string, unknown, unknown?][] = [
    ["SVG domain list must be an array", null],
    ["SVG domain 0 must be an object", [5]],
    ["label must be a string", [{ ...good, label: 1 }]],
    ["master 0 must be a string", [{ ...good, masters: [null] }]],
    ["inputBits must be an integer from 1 to 64", [{
      ...good,
      inputBits: NaN,
    }]],
    ["inputBits must be an integer from 1 to 64", [{ ...good, inputBits: 65 }]],
    ["leaves must be an array", [{ ...good, leaves: undefined }]],
    ["leaf 0 pa must be", [{ ...good, leaves: [{ ...leaf, pa: -1 }] }]],
    ["leaf 0 pageSize must be", [{
      ...good,
      leaves: [{ ...leaf, pageSize: 0 }],
    }]],
    ["ascending IOVA order", [{ ...good, leaves: [leaf, leaf] }]],
    [
      "past the 2^16-byte aperture",
      [{ ...good, inputBits: 16, owners: [] }],
    ],
    ["tableStats 0 bytes must be", [{
      ...good,
      tableStats: [{ ...good.tableStats[0]!, bytes: 1.5 }],
    }]],
    ["owner 0 master must be a string", [{
      ...good,
      owners: [{ iova: 0x10000, size: 4096, master: 7 }],
    }]],
    ["SVG options must be an object", [good], null],
    ["SVG title must be a string", [good], { title: 5 }],
  ];
  for (const [message, domains, options] of bad) {
    const e = assertThrows(
      () => renderIovaSvg(domains as SvgDomain[], options as never),
      IommuError,
    );
    assertEquals(e.kind, "EINVAL", message);
    assertStringIncludes(e.message, message);
  }
});
