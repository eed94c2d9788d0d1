/**
 * Memory check (issue target "Memory"): map 1M scattered 4 KiB pages in one
 * domain per plugin and measure
 * - the JS heap the mappings cost (`Deno.memoryUsage().heapUsed` after a
 *   full GC, before and after; typed-array storage is outside that heap and
 *   is reported apart as `external`);
 * - page-table bytes from `domain.tableStats()` against the bytes the
 *   hardware format needs for this layout, and against what the frame
 *   allocator handed out for tables;
 * - simulated RAM materialised (RAM is 2 GiB; untouched pages cost nothing).
 *
 * Run (gc must be exposed):
 *   deno run -A --v8-flags=--expose-gc bench/heap_check.ts
 *
 * Exits non-zero when a target is missed, so it can run in CI.
 *
 * @module
 */
import { PLUGIN_LABEL, type PluginKind, rig, scatteredFrames } from "./rig.ts";

const PAGES = 1 << 20;
const HEAP_LIMIT = 64 * 2 ** 20;
const MiB = 2 ** 20;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("run with --v8-flags=--expose-gc");
  Deno.exit(2);
}

function settle(): Deno.MemoryUsage {
  for (let i = 0; i < 4; i++) gc!();
  return Deno.memoryUsage();
}

/** Table bytes the format needs for PAGES 4 KiB pages from `base`. */
function expectedTableBytes(kind: PluginKind, base: number): number {
  const span = PAGES * 4096;
  const count = (unit: number): number =>
    Math.ceil((base + span) / unit) - Math.floor(base / unit);
  if (kind === "generic") {
    // 48-bit LPAE, 4 KiB granule: one 4 KiB table per level-0 root, per
    // 512 GiB (level 1), per 1 GiB (level 2) and per 2 MiB (level 3).
    return 4096 *
      (1 + count(512 * 2 ** 30) + count(2 ** 30) + count(2 * MiB));
  }
  // Exynos: one 16 KiB level-1 table; one 1 KiB level-2 table per MiB.
  return 16384 + 1024 * count(MiB);
}

const frames = scatteredFrames(PAGES);
let failed = false;
const rows: string[] = [];

for (const kind of ["samsung", "generic"] as PluginKind[]) {
  const base = kind === "generic" ? 0x1_0000_0000 : 0;
  const r = rig(kind);
  const ram0 = r.soc.memory.stats().materializedBytes;
  const alloc0 = r.soc.memory.frames.stats().liveBytes;
  const mid = settle();
  r.domain.mapPages(base, frames, 3);
  const after = settle();
  const heap = after.heapUsed - mid.heapUsed;
  const external = after.external - mid.external;
  const stats = r.domain.tableStats();
  const tableBytes = stats.reduce((s, l) => s + l.bytes, 0);
  const expected = expectedTableBytes(kind, base);
  const allocated = r.soc.memory.frames.stats().liveBytes - alloc0;
  const ram = r.soc.memory.stats().materializedBytes;
  const ok = heap <= HEAP_LIMIT && tableBytes === expected &&
    allocated === tableBytes - (kind === "samsung" ? 16384 : 4096);
  if (!ok) failed = true;
  rows.push(
    `| ${PLUGIN_LABEL[kind]} | ${(heap / MiB).toFixed(2)} MiB | ${
      (external / MiB).toFixed(2)
    } MiB | ${tableBytes.toLocaleString("en-US")} | ${
      expected.toLocaleString("en-US")
    } | ${(ram0 / MiB).toFixed(2)} → ${(ram / MiB).toFixed(2)} MiB | ${
      ok ? "met" : "MISSED"
    } |`,
  );
  // Keep the domain alive until measured.
  if (r.domain.iovaToPhys(base) !== frames[0]) throw new Error("bad map");
}

console.log(
  `1,048,576 live 4 KiB mappings (scattered frames) in one domain; ${
    new Date().toISOString().slice(0, 16)
  }Z, Deno ${Deno.version.deno}\n`,
);
console.log(
  "| plugin | JS heap (heapUsed) | typed arrays (external) | table bytes (tableStats) | format needs | RAM materialised (empty → mapped) | target |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
for (const row of rows) console.log(row);
if (failed) Deno.exit(1);
