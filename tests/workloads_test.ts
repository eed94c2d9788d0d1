import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
} from "@std/assert";
import type { IommuPlugin, IommuUnit } from "../core/mod.ts";
import { buildPlatform } from "../core/mod.ts";
import type { PlatformJson } from "../core/mod.ts";
import { loadPlatform } from "../platforms/mod.ts";
import {
  crc32,
  pickMaster,
  Rng,
  simulate,
  workloadByName,
  workloadFromJson,
  workloadFromJsonText,
} from "../workloads/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";
import { expectError } from "./support/assertions.ts";

const SMALL: Record<string, Record<string, number>> = {
  "video-decode": {
    frames: 3,
    width: 64,
    height: 32,
    buffers: 2,
    bitstreamKiB: 4,
    firmwareKiB: 0,
  },
  "net-rx": { packets: 40, ring: 8, lateDmaPercent: 20 },
  "gpu": {
    allocations: 3,
    minKiB: 64,
    maxKiB: 2048,
    shared: 1,
    sharedKiB: 128,
  },
};

Deno.test("every workload passes its data checks on both built-in platforms, strict and lazy", () => {
  for (const platform of ["exynos4210", "generic-soc"]) {
    for (const [name, params] of Object.entries(SMALL)) {
      for (const policy of ["strict", "lazy"] as const) {
        const p = loadPlatform(platform);
        const { report } = simulate(p, workloadByName(name, params), {
          seed: 5,
          policy,
        });
        const what = `${platform} ${name} ${policy}`;
        assertEquals(
          report.checks.failed,
          0,
          `${what}: ${JSON.stringify(report.checks.failures)}`,
        );
        assert(report.checks.passed > 0, what);
        assert(report.masters.length >= 1, what);
        assert(report.masters.every((m) => m.mode === "iommu"), what);
        assert(report.masters.some((m) => m.bytesMoved > 0), what);
        assert(report.domains.length === report.masters.length, what);
        assert(report.units.some((u) => u.maps > 0 && u.walks > 0), what);
      }
    }
  }
});

Deno.test("video-decode uses both MFC ports and shares frame buffers with FIMD", () => {
  const p = loadPlatform("exynos4210");
  const sim = simulate(
    p,
    workloadByName("video-decode", SMALL["video-decode"]),
  );
  const r = sim.report;
  assertEquals(r.masters.map((m) => m.name), [
    "codec@13400000",
    "fimd@11c00000",
  ]);
  const mfc = p.master("codec").master;
  assert(
    mfc.port("left").counters().bytesRead > 0,
    "bitstream through the left port",
  );
  assert(
    mfc.port("right").counters().bytesWritten > 0,
    "frames through the right port",
  );
  assertEquals(
    p.master("fimd").master.port().counters().bytesRead,
    3 * 64 * 32 * 4,
  );
  // Frame buffers stay mapped in both domains, at different IOVAs.
  assertEquals(r.masters.map((m) => m.liveMappings), [2, 2]);
  const [dec, disp] = sim.mappers.map((m) => m.mapper.domain!);
  const pa = (d: typeof dec) => d!.leaves().map((l) => l.pa).sort();
  assertEquals(pa(dec), pa(disp), "the same frames in both address spaces");
  const mfcUnits = r.units.filter((u) =>
    u.name === "sysmmu@13620000" || u.name === "sysmmu@13630000"
  );
  assert(mfcUnits.every((u) => u.maps > 0 && u.lookups > 0));
  // 3 checks per frame.
  assertEquals(r.checks.passed, 9);
});

Deno.test("video-decode: the MFC firmware is one coherent buffer on large pages", () => {
  const run = (firmwareKiB: number) => {
    const sim = simulate(
      loadPlatform("exynos4210"),
      workloadByName("video-decode", { ...SMALL["video-decode"], firmwareKiB }),
    );
    return { sim, r: sim.report };
  };
  const { sim, r } = run(1024);
  assertEquals(r.checks.failed, 0);
  // 3 checks per frame plus the firmware read-back.
  assertEquals(r.checks.passed, 10);
  const dec = r.domains[0]!;
  // Exynos sections are 1 MiB: the whole firmware is one leaf.
  assertEquals(dec.pageSizes[String(1 << 20)], 1);
  assertEquals(r.domains[1]!.pageSizes[String(1 << 20)], undefined);
  const big = sim.mappers[0]!.mapper.domain!.leaves().filter((l) =>
    l.pageSize === 1 << 20
  );
  assertEquals(big.length, 1);
  assertEquals(big[0]!.iova % (1 << 20), 0, "section-aligned IOVA");
  // Without firmware: no large page, one check fewer.
  const none = run(0).r;
  assertEquals(none.checks.passed, 9);
  assertEquals(none.domains[0]!.pageSizes[String(1 << 20)], undefined);
});

Deno.test("lazy mode flushes on the simulated timer; the stale window stays bounded", () => {
  const packets = 600;
  const lazy = (packetUs: number) =>
    simulate(
      loadPlatform("generic-soc"),
      workloadByName("net-rx", {
        packets,
        ring: 8,
        lateDmaPercent: 100,
        packetUs,
      }),
      { policy: "lazy" },
    ).report.masters[0]!;
  // 100 us per packet, 10 ms timeout: a timer flush about every 100
  // packets, long before the 256-entry queue fills.
  const m = lazy(100);
  assert(m.timerFlushes > 1, `timer flushes: ${m.timerFlushes}`);
  // 60 ms of traffic: 6 timeouts, give or take one for the 0.1 ms steps
  // not summing to exactly 10 ms in floating point.
  assert(m.timerFlushes >= 5 && m.timerFlushes <= 6, `${m.timerFlushes}`);
  assertEquals(m.sizeFlushes, 0);
  assertEquals(m.flushes, m.timerFlushes + m.sizeFlushes);
  // At most one timeout's worth of unmaps waits; every late read (one per
  // packet) is at most one stale access.
  assert(m.pendingUnmaps <= 10 / 0.1, `pending ${m.pendingUnmaps}`);
  assert(m.staleAccesses > 0, "late reads went through the stale window");
  assert(m.staleAccesses <= packets, `stale ${m.staleAccesses}`);
  // No time passing: only a full queue flushes, and more unmaps wait.
  const frozen = lazy(0);
  assertEquals(frozen.timerFlushes, 0);
  assertEquals(frozen.sizeFlushes, Math.floor(packets / 256));
  assertEquals(frozen.pendingUnmaps, packets - 256 * frozen.sizeFlushes);
  // Video frames (33 ms) and GPU frames (16 ms) outlast the timeout too:
  // each frame's bitstream unmap is flushed one frame later; the GPU's
  // frees at the end, one frame after them.
  for (const [name, timer] of [["video-decode", 3], ["gpu", 1]] as const) {
    const r = simulate(
      loadPlatform("generic-soc"),
      workloadByName(name, SMALL[name]),
      { policy: "lazy" },
    ).report;
    assertEquals(r.checks.failed, 0, name);
    const first = r.masters[0]!;
    assertEquals(first.timerFlushes, timer, name);
    assertEquals(first.sizeFlushes, 0, name);
    assertEquals(first.pendingUnmaps, 0, name);
  }
});

Deno.test("strict mode never flushes on a timer", () => {
  const r = simulate(
    loadPlatform("generic-soc"),
    workloadByName("net-rx", { packets: 300, ring: 4 }),
  ).report.masters[0]!;
  assertEquals([r.flushes, r.timerFlushes, r.sizeFlushes], [0, 0, 0]);
});

Deno.test("runs are deterministic per seed and differ across seeds", () => {
  const run = (seed: number) =>
    simulate(
      loadPlatform("generic-soc"),
      workloadByName("net-rx", SMALL["net-rx"]),
      { seed },
    ).report;
  const a = run(11), b = run(11), c = run(12);
  assertEquals(a, b);
  assertNotEquals(a.masters[0]!.bytesMoved, c.masters[0]!.bytesMoved);
});

Deno.test("net-rx: strict unmap makes late DMA fault; lazy leaves a counted stale window", () => {
  const params = { packets: 60, ring: 4, lateDmaPercent: 100 };
  const strict =
    simulate(loadPlatform("generic-soc"), workloadByName("net-rx", params), {
      policy: "strict",
    }).report;
  assertEquals(strict.checks.failed, 0);
  assertEquals(strict.masters[0]!.staleAccesses, 0);
  assertEquals(strict.faults, 60);
  assertEquals(strict.masters[0]!.faults, 60);
  assertEquals(strict.masters[0]!.pendingUnmaps, 0);
  const lazy =
    simulate(loadPlatform("generic-soc"), workloadByName("net-rx", params), {
      policy: "lazy",
    }).report;
  assertEquals(lazy.checks.failed, 0);
  assertEquals(lazy.faults, 0);
  assert(
    lazy.masters[0]!.staleAccesses > 0,
    "late reads went through the stale IOTLB",
  );
  assert(lazy.masters[0]!.pendingUnmaps > 0);
  // Strict pays one invalidation per unmap; lazy batches them.
  const inv = (r: typeof strict) => r.units[0]!.invalidations;
  assert(inv(lazy) < inv(strict), `${inv(lazy)} < ${inv(strict)}`);
});

// A unit that mistranslates one page in sixteen by one page: a driver or
// walker bug the checksums must catch.
function sabotaged(): IommuPlugin {
  const inner = flatIommu();
  return {
    name: "sabotaged-flat",
    compatible: ["acme,sabotaged"],
    iommuCells: 0,
    probe(node, ctx): IommuUnit {
      const u = inner.probe(node, ctx);
      const hw = u.hardware;
      const real = hw.translate.bind(hw);
      hw.translate = (sid: number, iova: number, access: number) => {
        const pa = real(sid, iova, access);
        return pa >= 0 && Math.floor(iova / 4096) % 16 === 5 ? pa ^ 0x1000 : pa;
      };
      return u;
    },
  };
}

function twoMasterJson(compatible: string): PlatformJson {
  return {
    name: "bench",
    memory: { base: "0x40000000", size: "0x4000000" },
    devices: [
      { name: "mmu0", compatible: [compatible], iommuCells: 0 },
      { name: "mmu1", compatible: [compatible], iommuCells: 0 },
      { name: "mmu2", compatible: [compatible], iommuCells: 0 },
      {
        name: "mfc",
        compatible: ["samsung,mfc-v5"],
        iommus: [{ iommu: "mmu0", name: "left" }, {
          iommu: "mmu1",
          name: "right",
        }],
      },
      {
        name: "fimd",
        compatible: ["samsung,exynos4210-fimd"],
        iommus: [{ iommu: "mmu2" }],
      },
    ],
  };
}

Deno.test("a wrong translation is caught by the checksums, not just counted", () => {
  // Frames and bitstreams of 16 pages, so the bad page is inside each.
  const w = workloadByName("video-decode", {
    frames: 2,
    width: 128,
    height: 128,
    buffers: 2,
    bitstreamKiB: 64,
    firmwareKiB: 0,
  });
  const good = simulate(
    buildPlatform(twoMasterJson("iommukit,flat-iommu"), {
      plugins: [flatIommu()],
    }),
    w,
  ).report;
  assertEquals(good.checks.failed, 0);
  const bad = simulate(
    buildPlatform(twoMasterJson("acme,sabotaged"), { plugins: [sabotaged()] }),
    w,
  ).report;
  assert(bad.checks.failed > 0, "the sabotage went unnoticed");
  assertEquals(bad.faults, 0, "nothing faulted: only the data is wrong");
  assertMatch(
    bad.checks.failures[0]!.what,
    /frame 0: (bitstream read by mfc|scanned out by fimd)/,
  );
  // 32 ring slots: 32 distinct buffer pages, some of them bad.
  const more = { "net-rx": { packets: 64, ring: 32 }, "gpu": SMALL.gpu! };
  for (const [name, params] of Object.entries(more)) {
    const r = simulate(
      buildPlatform(twoMasterJson("acme,sabotaged"), {
        plugins: [sabotaged()],
      }),
      workloadByName(name, params),
    ).report;
    assert(r.checks.failed > 0, `${name} missed the sabotage`);
  }
});

Deno.test("masters without an IOMMU run in direct mode", () => {
  const p = buildPlatform({
    memory: { size: "0x4000000" },
    devices: [
      { name: "nic", compatible: ["iommukit,generic-nic"], dmaMaster: true },
    ],
  }, { plugins: [] });
  const { report } = simulate(p, workloadByName("net-rx", SMALL["net-rx"]));
  assertEquals(report.checks.failed, 0);
  assertEquals(report.masters[0]!.mode, "direct");
  assertEquals(report.domains, []);
});

Deno.test("workload parameters, names and JSON are validated", () => {
  expectError(
    () => workloadByName("mpeg"),
    "ENOENT",
    /no workload named "mpeg"/,
  );
  expectError(
    () => workloadByName("gpu", { colour: 1 }),
    "EINVAL",
    /no parameter "colour"/,
  );
  expectError(
    () => workloadByName("net-rx", { packets: 0 }),
    "EINVAL",
    /packets must be an integer from 1/,
  );
  expectError(() => workloadByName("net-rx", { packets: 1.5 }), "EINVAL");
  expectError(
    () => workloadByName("gpu", { minKiB: 512, maxKiB: 256 }),
    "EINVAL",
    /minKiB/,
  );
  const w = workloadFromJson({
    kind: "gpu",
    name: "small-gpu",
    params: { allocations: 2 },
  });
  assertEquals([w.name, w.kind, w.params.allocations], ["small-gpu", "gpu", 2]);
  assertEquals(workloadFromJsonText('{"kind":"net-rx"}').name, "net-rx");
  expectError(
    () => workloadFromJson({ kind: "gpu", param: {} }),
    "EINVAL",
    /unknown key "param"/,
  );
  expectError(
    () => workloadFromJson({ name: "x" }),
    "EINVAL",
    /"kind" must be one of/,
  );
  expectError(
    () => workloadFromJson({ kind: "gpu", params: [1] }),
    "EINVAL",
    /"params"/,
  );
  expectError(
    () => workloadFromJson({ kind: "gpu", name: 3 }),
    "EINVAL",
    /"name" must be a string/,
  );
  expectError(() => workloadFromJson([]), "EINVAL");
  expectError(() => workloadFromJson({ kind: "toString" }), "ENOENT");
  expectError(() => workloadFromJsonText("{"), "EIO", /not valid JSON/);
});

Deno.test("a workload on a platform without a suitable master says which role is missing", () => {
  const p = buildPlatform({ memory: { size: "0x1000000" }, devices: [] }, {
    plugins: [],
  });
  expectError(
    () => simulate(p, workloadByName("net-rx")),
    "ENODEV",
    /workload net-rx needs a NIC .*platform json has none left/,
  );
  const one = loadPlatform("generic-soc");
  const nic = pickMaster(one, "x", {
    role: "NIC",
    prefer: ["iommukit,generic-nic"],
  });
  assertEquals(nic.name, "ethernet@fe000000");
  const gpu = pickMaster(one, "x", { role: "any", prefer: [], minPorts: 2 });
  assertEquals(gpu.name, "gpu@fe100000");
});

Deno.test("checksum and random source", () => {
  assertEquals(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assertEquals(crc32(new Uint8Array(0)), 0);
  const data = new TextEncoder().encode("hello world");
  assertEquals(
    crc32(data.subarray(5), crc32(data.subarray(0, 5))),
    crc32(data),
  );
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const xs = Array.from({ length: 8 }, () => a.u32());
  assertEquals(xs, Array.from({ length: 8 }, () => b.u32()));
  assertNotEquals(xs, Array.from({ length: 8 }, () => c.u32()));
  const r = new Rng(1);
  for (let i = 0; i < 1000; i++) {
    const v = r.int(3, 7);
    assert(v >= 3 && v <= 7);
  }
  const bytes = new Rng(9).bytes(new Uint8Array(4097));
  assert(new Set(bytes).size > 200);
});

Deno.test("faults are counted by reason", () => {
  const { report } = simulate(
    loadPlatform("exynos4210"),
    workloadByName("net-rx", { packets: 30, ring: 4, lateDmaPercent: 100 }),
  );
  assertEquals(report.faults, 30);
  assertEquals(report.faultReasons, { translation: 30 });
  assertEquals(report.checks.failed, 0);
});
