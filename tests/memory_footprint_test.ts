// Memory footprint (issue "Performance", target "Memory"): page tables take
// exactly the bytes of the hardware format, the allocator hands out exactly
// those bytes, and simulated RAM costs nothing where nothing was written.
// Sizes, never timings.
import { assertEquals } from "@std/assert";
import {
  createSoc,
  type Domain,
  PhysicalMemory,
  type Soc,
} from "../core/mod.ts";
import { samsungSysmmu } from "../plugins/samsung_sysmmu/mod.ts";
import { genericIommu } from "../plugins/generic_iommu/mod.ts";

const K4 = 4096;
const MiB = 2 ** 20;

function scattered(n: number, base: number): Float64Array {
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = base + i * 2 * K4;
  return f;
}

function samsungDomain(): { soc: Soc; domain: Domain } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 1 << 30 } })
    .use(samsungSysmmu());
  const unit = soc.probeUnit({
    name: "mmu",
    compatible: ["samsung,exynos-sysmmu"],
  });
  return { soc, domain: soc.createDomain(unit) };
}

function genericDomain(): { soc: Soc; domain: Domain } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 1 << 30 } })
    .use(genericIommu());
  const unit = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  return { soc, domain: soc.createDomain(unit) };
}

function totalBytes(domain: Domain): number {
  return domain.tableStats().reduce((s, l) => s + l.bytes, 0);
}

Deno.test("samsung-sysmmu: 16 KiB level 1 plus 1 KiB per MiB touched, exactly", () => {
  const { soc, domain } = samsungDomain();
  const live0 = soc.memory.frames.stats().liveBytes;
  assertEquals(totalBytes(domain), 16384);
  // 65,536 pages from 0x1000_0000 span 256 MiB: 256 level-2 tables.
  domain.mapPages(0x1000_0000, scattered(65_536, 0x4000_0000), 3);
  const stats = domain.tableStats();
  assertEquals(stats[0]!.bytes, 16384);
  assertEquals(stats[1]!.tables, 256);
  assertEquals(stats[1]!.bytes, 256 * 1024);
  assertEquals(stats[1]!.entriesUsed, 65_536);
  // What the allocator handed out for them is the same number of bytes.
  assertEquals(soc.memory.frames.stats().liveBytes - live0, 256 * 1024);
  // A 1 MiB section needs no level-2 table at all.
  domain.map(0x4000_0000, 0x5000_0000, MiB, 3);
  assertEquals(totalBytes(domain), 16384 + 256 * 1024);
});

Deno.test("generic-iommu: one 4 KiB table per level and region touched, exactly", () => {
  const { soc, domain } = genericDomain();
  const live0 = soc.memory.frames.stats().liveBytes;
  assertEquals(totalBytes(domain), K4); // the level-0 root
  // 65,536 pages from 4 GiB: one level-1 table, one level-2 table (1 GiB),
  // 128 level-3 tables (2 MiB each).
  domain.mapPages(2 ** 32, scattered(65_536, 0x4000_0000), 3);
  const stats = domain.tableStats();
  assertEquals(stats.map((l) => l.tables), [1, 1, 1, 128]);
  assertEquals(stats.map((l) => l.bytes), [K4, K4, K4, 128 * K4]);
  assertEquals(stats[3]!.entriesUsed, 65_536);
  assertEquals(
    soc.memory.frames.stats().liveBytes - live0,
    (2 + 128) * K4,
  );
  // The unmap spans every level-3 table: they go back. The level-1 and
  // level-2 tables stay (as the kernel keeps them): the unmap does not span
  // their 512 GiB and 1 GiB.
  domain.unmap(2 ** 32, 65_536 * K4);
  assertEquals(domain.tableStats().map((l) => l.tables), [1, 1, 1, 0]);
  assertEquals(totalBytes(domain), 3 * K4);
  assertEquals(soc.memory.frames.stats().liveBytes - live0, 2 * K4);
  // A 1 GiB block is one descriptor in the level-1 table: no more.
  domain.map(2 ** 30, 2 ** 30, 2 ** 30, 3);
  assertEquals(totalBytes(domain), 3 * K4);
  // An unmap spanning root entry 0 (512 GiB) gives every non-root table back.
  domain.unmap(0, 2 ** 39);
  assertEquals(totalBytes(domain), K4);
  assertEquals(soc.memory.frames.stats().liveBytes, live0);
});

Deno.test("simulated RAM: untouched pages cost nothing, tables materialise only their chunks", () => {
  // 256 GiB of RAM, none of it touched.
  const ram = new PhysicalMemory({ base: 0, size: 2 ** 38 });
  assertEquals(ram.stats().materializedBytes, 0);
  assertEquals(ram.read32(2 ** 37), 0);
  ram.readBytes(2 ** 36, 4096);
  ram.fill(2 ** 35, 1 << 20, 0);
  assertEquals(ram.stats().materializedBytes, 0);
  // One write materialises one 64 KiB chunk.
  ram.write32(2 ** 37, 1);
  assertEquals(ram.stats().materializedBytes, 65536);

  const { soc, domain } = samsungDomain();
  const before = soc.memory.stats().materializedBytes;
  domain.mapPages(0x1000_0000, scattered(65_536, 0x4000_0000), 3);
  // 256 KiB of level-2 tables fill at most 5 chunks (alignment may split).
  const grown = soc.memory.stats().materializedBytes - before;
  assertEquals(grown <= 5 * 65536, true, `grew ${grown} bytes`);
  assertEquals(grown >= 4 * 65536, true, `grew ${grown} bytes`);
});
