import { assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  ACCESS_READ,
  createSoc,
  IOMMU_READ,
  IOMMU_WRITE,
  IotlbGather,
} from "../core/mod.ts";
import {
  FlpdCache,
  samsungSysmmu,
  type SysmmuHardware,
} from "../plugins/samsung_sysmmu/mod.ts";
import {
  kindOf,
  RAM_BASE,
  rig,
  RW,
  V3_2,
  V3_3,
  V5_0,
  V7_4,
} from "./support/samsung.ts";

Deno.test("v3.3 page fault: INT bit 0, PAGE_FAULT_ADDR, blocked until cleared", async (t) => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]!;
  const port = r.masters[0]!.port();
  const mem = r.soc.memory;
  const buf = mem.frames.alloc(0x1000);

  await t.step("the fault is latched and nothing reaches memory", () => {
    const into = new Uint8Array(4).fill(0xee);
    const f = port.read(0x1000_0040, into);
    assertEquals(f, {
      unit: "sysmmu0",
      streamId: 0,
      iova: 0x1000_0040,
      access: "read",
      reason: "translation",
    });
    assertEquals([...into], [0xee, 0xee, 0xee, 0xee]);
    assertEquals(hw.readRegister(0x18), 0x1); // INT_STATUS
    assertEquals(hw.readRegister(0x24), 0x1000_0040); // PAGE_FAULT_ADDR
    assertEquals(hw.readRegister(0x8), 1); // STATUS: blocked
    const log = r.driver.faultLog(r.units[0]!);
    assertEquals(
      log.map((x) => [x.itype, x.name, x.address, x.access, x.handled]),
      [
        [0, "PAGE", 0x1000_0040, "read", false],
      ],
    );
    assertEquals(r.soc.faults.counters().unhandled, 1);
    assertEquals(r.driver.counters().unhandledFaults, 1);
  });

  await t.step("while blocked even a mapped access is refused", () => {
    r.domain.map(0x1000_0000, buf, 0x1000, RW);
    const before = mem.digest();
    const f = port.write(0x1000_0000, new Uint8Array([1, 2, 3]));
    assertEquals(f?.reason, "blocked");
    assertEquals(mem.digest(), before);
    assertEquals(hw.counters().blockedAccesses, 1);
    assertEquals(r.soc.faults.recent.at(-1)?.reason, "blocked");
  });

  await t.step(
    "CTRL = ENABLE alone does not unblock, nor INT_CLEAR alone",
    () => {
      hw.writeRegister(0x0, 0x5);
      assertEquals(hw.blocked, true);
      hw.writeRegister(0x1c, 0x1);
      assertEquals(hw.readRegister(0x18), 0);
      assertEquals(hw.blocked, true);
      hw.writeRegister(0x0, 0x5);
      assertEquals(hw.blocked, false);
      port.writeBytes(0x1000_0000, new Uint8Array([4, 5]));
      assertEquals(mem.read8(buf + 1), 5);
    },
  );

  await t.step("clearFault does both and reports the pending bits", () => {
    port.read(0x1000_1000, new Uint8Array(1));
    assertEquals(hw.blocked, true);
    hw.startTrace();
    assertEquals(hw.clearFault(), 1);
    assertEquals(hw.trace(), ["INT_CLEAR=0x1", "CTRL=0x5"]);
    assertEquals(hw.blocked, false);
    assertEquals(hw.clearFault(), 0);
  });

  await t.step("page faults carry no direction on v1-v3", () => {
    port.write(0x1000_2000, new Uint8Array(1));
    const last = r.driver.faultLog(r.units[0]!).at(-1)!;
    assertEquals([last.itype, last.access, last.fault.access], [
      0,
      "read",
      "write",
    ]);
    hw.clearFault();
  });
});

Deno.test("a handled fault is cleared by the driver: INT_CLEAR then CTRL = ENABLE", () => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]!;
  const seen: string[] = [];
  r.domain.setFaultHandler((f) => {
    seen.push(`${f.access}:${f.reason}@${f.iova.toString(16)}`);
    return true;
  });
  const buf = r.soc.memory.frames.alloc(0x1000);
  r.domain.map(0x1000_0000, buf, 0x1000, IOMMU_READ);
  hw.startTrace();
  const f = r.masters[0]!.port().write(0x1000_0010, new Uint8Array(1));
  assertEquals(f?.reason, "permission");
  assertEquals(seen, ["write:permission@10000010"]);
  assertEquals(hw.trace(), ["INT_CLEAR=0x80", "CTRL=0x5"]);
  assertEquals(hw.blocked, false);
  assertEquals(hw.readRegister(0x28), 0x1000_0010); // AW_FAULT_ADDR
  const log = r.driver.faultLog(r.units[0]!);
  assertEquals([log[0]!.itype, log[0]!.name, log[0]!.handled], [
    7,
    "AW ACCESS PROTECTION",
    true,
  ]);
  // Reading the read-only page works; a write-only page reads fine on v3.
  assertEquals(r.masters[0]!.port().read(0x1000_0010, new Uint8Array(1)), null);
  r.domain.map(0x1000_1000, buf, 0x1000, IOMMU_WRITE);
  assertEquals(r.masters[0]!.port().read(0x1000_1000, new Uint8Array(1)), null);
});

Deno.test("v5 faults: read bits 0-4 with AR address, write bits 16-20 with AW address", () => {
  const r = rig({ version: V5_0 });
  const hw = r.hw[0]!;
  const port = r.masters[0]!.port();
  port.write(0x2000_0100, new Uint8Array(1));
  assertEquals(hw.readRegister(0x60), 1 << 17);
  assertEquals(hw.readRegister(0x80), 0x2000_0100);
  assertEquals(hw.readRegister(0x70), 0);
  hw.clearFault();
  const buf = r.soc.memory.frames.alloc(0x1000);
  r.domain.map(0x2000_0000, buf, 0x1000, IOMMU_WRITE); // write-only: real on v5
  assertEquals(port.read(0x2000_0008, new Uint8Array(1))?.reason, "permission");
  assertEquals(hw.readRegister(0x60), 1 << 3);
  assertEquals(hw.readRegister(0x70), 0x2000_0008);
  hw.clearFault();
  assertEquals(port.write(0x2000_0008, new Uint8Array(1)), null);
  assertEquals(
    r.driver.faultLog(r.units[0]!).map((x) => [x.itype, x.name, x.access]),
    [[17, "AW PAGE", "write"], [3, "AR ACCESS PROTECTION", "read"]],
  );
});

Deno.test("v7 faults: type from itype % 4, direction from FAULT_INFO bit 20", () => {
  for (
    const [capa0, capa1, va, info] of [
      [0, 0, 0x70, 0x78],
      [0x800, 0x4000, 0x1000, 0x1004],
    ]
  ) {
    const r = rig({ version: V7_4, capa0: capa0!, capa1: capa1! });
    const hw = r.hw[0]!;
    const port = r.masters[0]!.port();
    port.write(0x3000_0004, new Uint8Array(1));
    assertEquals(hw.readRegister(0x60), 1 << 1);
    assertEquals(hw.readRegister(va!), 0x3000_0004);
    assertEquals(hw.readRegister(info!), 1 << 20);
    hw.clearFault();
    const buf = r.soc.memory.frames.alloc(0x1000);
    r.domain.map(0x3000_0000, buf, 0x1000, IOMMU_WRITE);
    port.read(0x3000_0000, new Uint8Array(1));
    assertEquals(hw.readRegister(0x60), 1 << 2);
    assertEquals(hw.readRegister(info!), 0);
    assertEquals(
      r.driver.faultLog(r.units[0]!).map((x) => [x.itype, x.name, x.access]),
      [[1, "PAGE", "write"], [2, "ACCESS PROTECTION", "read"]],
    );
  }
});

Deno.test("page-table walk errors: a table outside RAM", () => {
  // v5: PT base moved outside RAM by a stray register write.
  const r5 = rig({ version: V5_0 });
  r5.hw[0]!.writeRegister(0x0c, 0x10); // PPN 0x10 = PA 0x10000, below RAM
  const f = r5.masters[0]!.port().read(0x100, new Uint8Array(1));
  assertEquals(f?.reason, "bus-error");
  assertEquals(r5.hw[0]!.readRegister(0x60), 1); // AR PTW
  assertEquals(r5.driver.faultLog(r5.units[0]!)[0]!.name, "AR PTW ACCESS");
  // v3.3: a level-1 link to a table that is not RAM.
  const r3 = rig({ version: V3_3 });
  r3.soc.memory.write32(r3.ops.rootTable + 0x300 * 4, 0x0000_4001);
  r3.masters[0]!.port().write(0x3000_0000, new Uint8Array(1));
  assertEquals(r3.hw[0]!.readRegister(0x18), 1 << 3); // BUS ERROR
  assertEquals(r3.hw[0]!.readRegister(0x30), 0x3000_0000);
});

Deno.test("an IOVA beyond 32 bits faults and never reaches memory", () => {
  const soc = createSoc({ memory: { base: RAM_BASE, size: 64 << 20 } })
    .use(samsungSysmmu({ version: V3_3 }));
  const unit = soc.probeUnit({
    name: "u",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const dev = soc.addMaster({ name: "wide", ports: [{ unit }], dmaBits: 40 });
  const d = soc.createDomain(unit);
  d.attach(unit);
  d.map(0, RAM_BASE, 0x1000, RW); // what a truncating unit would hit
  const f = dev.port().write(0x1_0000_0000, new Uint8Array([1]));
  assertEquals(f?.reason, "address-size");
  assertEquals(soc.memory.read8(RAM_BASE), 0);
});

Deno.test("permissions are enforced only while CFG.EAP is set", () => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]!;
  const buf = r.soc.memory.frames.alloc(0x1000);
  r.domain.map(0x1000_0000, buf, 0x1000, IOMMU_READ);
  hw.writeRegister(0x4, 0x1100780); // CFG without EAP
  assertEquals(
    r.masters[0]!.port().write(0x1000_0000, new Uint8Array([9])),
    null,
  );
  assertEquals(r.soc.memory.read8(buf), 9);
  hw.writeRegister(0x4, 0x1100784);
  assertEquals(
    r.masters[0]!.port().write(0x1000_0000, new Uint8Array([9]))?.reason,
    "permission",
  );
});

Deno.test("FLPD cache: the zero-level-2 workaround prevents stale faults", async (t) => {
  const scenario = (flpdWorkaround: boolean) => {
    const r = rig({ version: V3_3, flpdWorkaround });
    const port = r.masters[0]!.port();
    const buf = r.soc.memory.frames.alloc(0x2000);
    r.domain.map(0x1000_0000, buf, 0x1000, RW); // slot 0x100
    port.readBytes(0x1000_0000, 4); // walk: prefetches slots 0x100..0x10f
    r.domain.map(0x1010_0000, buf + 0x1000, 0x1000, RW); // slot 0x101
    return { r, fault: port.read(0x1010_0000, new Uint8Array(4)) };
  };

  await t.step(
    "without it: v3.3 serves a cached fault entry after the map",
    () => {
      const { r, fault } = scenario(false);
      assertEquals(r.hw[0]!.flpd.size, 16);
      assertEquals(fault?.reason, "translation");
      // The tables in RAM are right: only the cache is stale.
      assertEquals(r.domain.iovaToPhys(0x1010_0000) > 0, true);
      assertEquals(r.hw[0]!.counters().flpdHits > 0, true);
    },
  );

  await t.step(
    "with it: the replaced zero link is flushed and the access works",
    () => {
      const { r, fault } = scenario(true);
      assertEquals(fault, null);
      assertEquals(r.driver.counters().flpdFlushes, 2);
    },
  );

  await t.step(
    "v3.2 caches only the walked entry (no speculative prefetch)",
    () => {
      const r = rig({ version: V3_2 });
      const buf = r.soc.memory.frames.alloc(0x1000);
      r.domain.map(0x1000_0000, buf, 0x1000, RW);
      r.masters[0]!.port().readBytes(0x1000_0000, 4);
      assertEquals(r.hw[0]!.flpd.size, 1);
    },
  );

  await t.step(
    "v3.2: a slot that faulted once is flushed when it gets a table",
    () => {
      for (const workaround of [false, true]) {
        const r = rig({ version: V3_2, flpdWorkaround: workaround });
        r.domain.setFaultHandler(() => true);
        const port = r.masters[0]!.port();
        assertEquals(
          port.read(0x2000_0000, new Uint8Array(1))?.reason,
          "translation",
        );
        r.domain.map(
          0x2000_0000,
          r.soc.memory.frames.alloc(0x1000),
          0x1000,
          RW,
        );
        const again = port.read(0x2000_0000, new Uint8Array(1));
        assertEquals(again === null, workaround, `workaround ${workaround}`);
      }
    },
  );

  await t.step(
    "a section replacing a prefetched zero link is flushed too",
    () => {
      const r = rig({ version: V3_3 });
      const port = r.masters[0]!.port();
      r.domain.map(0x1000_0000, r.soc.memory.frames.alloc(0x1000), 0x1000, RW);
      port.readBytes(0x1000_0000, 1); // prefetch slot 0x102 (a zero link)
      r.domain.map(0x1020_0000, RAM_BASE + (16 << 20), 0x100000, RW);
      assertEquals(port.read(0x1020_0000, new Uint8Array(1)), null);
    },
  );

  await t.step(
    "flushes drop FLPD entries; CFG without FLPDCACHE bypasses it",
    () => {
      const r = rig({ version: V3_3 });
      const hw = r.hw[0]!;
      r.domain.map(0x1000_0000, r.soc.memory.frames.alloc(0x1000), 0x1000, RW);
      r.masters[0]!.port().readBytes(0x1000_0000, 1);
      assertEquals(hw.flpd.size, 16);
      hw.writeRegister(0x10, 0x1010_0001); // FLUSH_ENTRY in slot 0x101
      assertEquals(hw.flpd.size, 15);
      hw.writeRegister(0x0c, 1); // FLUSH_ALL
      assertEquals(hw.flpd.size, 0);
      hw.writeRegister(0x4, 0x1000784); // no CFG_FLPDCACHE
      r.masters[0]!.port().readBytes(0x1000_0000, 1);
      assertEquals(hw.flpd.size, 0);
    },
  );
});

Deno.test("section unmap writes the zero link back (or 0 without the workaround)", () => {
  for (const workaround of [true, false]) {
    const r = rig({ version: V3_3, flpdWorkaround: workaround });
    r.domain.map(0x4000_0000, RAM_BASE, 0x100000, RW);
    r.domain.unmap(0x4000_0000, 0x100000);
    const e = r.soc.memory.read32(r.ops.rootTable + 0x400 * 4);
    assertEquals(e, workaround ? r.driver.zeroLink : 0);
  }
});

Deno.test("hardware lastFault and counters", () => {
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]! as SysmmuHardware;
  assertEquals(hw.lastFault, null);
  r.masters[0]!.port().read(0x5000_0000, new Uint8Array(1));
  assertEquals(hw.lastFault?.iova, 0x5000_0000);
  const c = hw.counters();
  assertEquals([c.faults, c.walks, c.tlbMisses], [1, 1, 1]);
});

Deno.test("the FLPD cache is direct-mapped with a power-of-two capacity", () => {
  const cache = new FlpdCache(8);
  for (let s = 0; s < 16; s++) cache.fill(0x4000, s, s * 0x100 + 1);
  assertEquals(cache.size, 8); // slots 8..15 evicted 0..7
  assertEquals(cache.lookup(0x4000, 3), -1);
  assertEquals(cache.lookup(0x4000, 11), 0xb01);
  assertEquals(cache.lookup(0x8000, 11), -1); // another table
  cache.invalidateSlots(10, 12);
  assertEquals(cache.size, 5);
  cache.invalidateAll();
  assertEquals(cache.size, 0);
  assertEquals(cache.counters().invalidated, 8);
  const none = new FlpdCache(0);
  none.fill(0, 1, 1);
  assertEquals(none.lookup(0, 1), -1);
  for (const bad of [3, -1, 8192, 1.5]) {
    assertEquals(kindOf(() => new FlpdCache(bad)), "EINVAL");
  }
  assertEquals(kindOf(() => rig({ version: V3_3, flpdEntries: 24 })), "EINVAL");
});

Deno.test("FLPD cache fill and invalidateSlots refuse bad arguments and keep their entries", () => {
  for (const capacity of [8, 64]) {
    const cache = new FlpdCache(capacity);
    const l1 = new Uint32Array(4096).map((_, i) => i * 0x10 + 1);
    cache.fillRun(0x4000, 0, 16, l1);
    const before = [cache.size, JSON.stringify(cache.counters())];
    const bad: [string, () => void][] = [
      ["fill NaN base", () => cache.fill(NaN, 1, 1)],
      ["fill -0x4000 base", () => cache.fill(-0x4000, 1, 1)],
      ["fill NaN value", () => cache.fill(0x4000, 1, NaN)],
      ["fill 2^32 value", () => cache.fill(0x4000, 1, 2 ** 32)],
      ["fillRun NaN base", () => cache.fillRun(NaN, 0, 16, l1)],
      ["invalidateSlots 5..2", () => cache.invalidateSlots(5, 2)],
      ["invalidateSlots NaN", () => cache.invalidateSlots(NaN, 3)],
      ["invalidateSlots 0..4096", () => cache.invalidateSlots(0, 4096)],
    ];
    for (const [what, f] of bad) {
      assertEquals(kindOf(f), "EINVAL", what);
      assertEquals(
        [cache.size, JSON.stringify(cache.counters())],
        before,
        `${what} changed the cache`,
      );
    }
    assertEquals(cache.lookup(0x4000, 15), 0xf1);
    cache.fill(0x4000, 1, -1); // a signed 32-bit descriptor is kept whole
    assertEquals(cache.lookup(0x4000, 1), 0xffff_ffff);
  }
});

Deno.test("multi-hit: a stale 4 KiB entry under a new 1 MiB section", async (t) => {
  // A lazy unmap leaves the 4 KiB translation cached; a section then maps
  // the whole MiB; a walk elsewhere in it caches the section too.
  const scenario = (version: number, flpdWorkaround = true) => {
    const r = rig({ version, flpdWorkaround });
    const port = r.masters[0]!.port();
    const buf = r.soc.memory.frames.alloc(0x1000);
    r.domain.map(0x1000_4000, buf, 0x1000, RW);
    port.readBytes(0x1000_4000, 1);
    const g = new IotlbGather();
    r.domain.unmapNoSync(0x1000_4000, 0x1000, g); // no sync yet
    r.domain.map(0x1000_0000, RAM_BASE + (32 << 20), 1 << 20, RW);
    port.readBytes(0x1000_8000, 1); // caches the section
    return { r, port, g };
  };

  await t.step("v3.3: AR MULTI-HIT, address in AR_FAULT_ADDR", () => {
    const { r, port } = scenario(V3_3);
    const f = port.read(0x1000_4010, new Uint8Array(1));
    assertEquals(f?.reason, "multi-hit");
    assertEquals(r.hw[0]!.readRegister(0x18), 1 << 1);
    assertEquals(r.hw[0]!.readRegister(0x2c), 0x1000_4010);
    assertEquals(r.driver.faultLog(r.units[0]!).at(-1)?.name, "AR MULTI-HIT");
    r.hw[0]!.clearFault();
    assertEquals(
      port.write(0x1000_4010, new Uint8Array(1))?.reason,
      "multi-hit",
    );
    assertEquals(r.hw[0]!.readRegister(0x18), 1 << 2); // AW MULTI-HIT
  });

  await t.step(
    "v5 (without the FLPD flush-all that would hide it): bits 2 / 18",
    () => {
      const { r, port } = scenario(V5_0, false);
      port.write(0x1000_4000, new Uint8Array(1));
      assertEquals(r.hw[0]!.readRegister(0x60), 1 << 18);
      assertEquals(r.hw[0]!.readRegister(0x80), 0x1000_4000);
    },
  );

  await t.step("syncing the lazy unmap removes the stale entry", () => {
    const { r, port, g } = scenario(V3_3);
    r.domain.sync(g);
    assertEquals(port.read(0x1000_4010, new Uint8Array(1)), null);
  });

  await t.step("v7 has no multi-hit fault: the access translates", () => {
    const { port } = scenario(V7_4, false);
    assertEquals(port.read(0x1000_4010, new Uint8Array(1)), null);
  });

  await t.step("mixed page sizes in one MiB never multi-hit", () => {
    const r = rig({ version: V3_3 });
    const port = r.masters[0]!.port();
    r.domain.map(0x1001_0000, RAM_BASE, 0x10000, RW);
    r.domain.map(0x1002_0000, RAM_BASE + 0x20000, 0x1000, RW);
    r.domain.map(0x1003_0000, RAM_BASE + 0x30000, 0x1000, RW);
    for (let i = 0; i < 4; i++) {
      for (const a of [0x1001_0000, 0x1001_f000, 0x1002_0000, 0x1003_0000]) {
        assertEquals(port.read(a, new Uint8Array(1)), null);
      }
    }
    assertEquals(r.hw[0]!.counters().faults, 0);
  });
});

Deno.test("multi-hit is raised exactly when IOTLB entries of two sizes cover the address", () => {
  // The unit keeps per-granule notes of where entries of each size may
  // live so that most hits skip the probe of the other sizes; the notes
  // must never miss an entry. Lazy unmaps leave stale entries of one size
  // under new mappings of another; the IOTLB's own contents are the truth.
  const W = 0x1000_0000;
  const SIZES = [0x1000, 0x10000, 0x100000];
  // Two places in each of two MiBs, so that mappings of each size overlap
  // often.
  const at = fc.constantFrom(0x4010, 0x8000, 0x10_4000, 0x11_0010);
  const op = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant("map"),
        size: fc.constantFrom(...SIZES),
        at,
      }),
    },
    {
      weight: 8,
      arbitrary: fc.record({
        k: fc.constantFrom("lazy", "access", "access", "access"),
        size: fc.constant(0),
        at,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        k: fc.constantFrom("sync", "flush"),
        size: fc.constant(0),
        at: fc.constant(0),
      }),
    },
  );
  let multiHits = 0;
  fc.assert(
    fc.property(fc.array(op, { minLength: 30, maxLength: 80 }), (ops) => {
      const r = rig({ version: V3_3 });
      const hw = r.hw[0]!;
      const pending: IotlbGather[] = [];
      for (const o of ops) {
        if (o.k === "map") {
          const off = o.at - (o.at % o.size);
          try {
            r.domain.map(W + off, RAM_BASE + (64 << 20) + off, o.size, RW);
          } catch { /* overlaps a live mapping */ }
        } else if (o.k === "lazy") {
          const leaf = r.domain.leaves().find((l) =>
            l.iova <= W + o.at && W + o.at < l.iova + l.pageSize
          );
          if (leaf === undefined) continue;
          const g = new IotlbGather();
          r.domain.unmapNoSync(leaf.iova, leaf.pageSize, g);
          pending.push(g);
        } else if (o.k === "sync") {
          for (const g of pending.splice(0)) r.domain.sync(g);
        } else if (o.k === "flush") {
          r.domain.flushAll();
        } else {
          const iova = W + o.at;
          const sizes = new Set(
            hw.tlb.entries().filter((e) =>
              e.iova <= iova && iova < e.iova + e.pageSize
            ).map((e) => e.pageSize),
          );
          const pa = hw.translate(0, iova, 1);
          const isMulti = pa < 0 && hw.lastFault?.reason === "multi-hit";
          assertEquals(isMulti, sizes.size > 1, `access ${iova.toString(16)}`);
          if (isMulti) multiHits++;
          if (pa < 0) hw.clearFault();
        }
      }
    }),
    // A fixed seed: the count below is about the sequences, and a random
    // seed made it fall short now and then (9 of at least 10 once).
    { numRuns: 600, seed: 0x6d68 },
  );
  // The sequences do reach the case this test is about.
  assertEquals(multiHits >= 10, true, `${multiHits} multi-hits`);
});

Deno.test("translate refuses an access other than ACCESS_READ or ACCESS_WRITE in every state, counting nothing", () => {
  const BAD: unknown[] = [0, 3, 0.5, NaN, -1, 4, "1", 1n, null, undefined];
  const r = rig({ version: V3_3 });
  const hw = r.hw[0]! as SysmmuHardware;
  const mem = r.soc.memory;
  const buf = mem.frames.alloc(0x1000);
  r.domain.map(0x1000_0000, buf, 0x1000, IOMMU_READ); // read-only page
  const state = () =>
    JSON.stringify([
      hw.counters(),
      hw.lastFault,
      r.soc.faults.counters(),
      r.driver.faultLog(r.units[0]!).length,
      hw.readRegister(0x18),
      hw.tlb.counters(),
    ]);
  const cases: [string, number][] = [
    ["unmapped IOVA (IOTLB miss)", 0x2000_0000],
    ["mapped read-only page, IOTLB miss", 0x1000_0010],
    ["mapped read-only page, IOTLB hit", 0x1000_0020],
    ["IOVA beyond 32 bits", 2 ** 33],
  ];
  assertEquals(hw.translate(0, 0x1000_0020, ACCESS_READ), buf + 0x20);
  for (const [what, iova] of cases) {
    for (const access of BAD) {
      const before = state();
      const f = () => hw.translate(0, iova, access as number);
      assertEquals(kindOf(f), "EINVAL", `${what}, access ${String(access)}`);
      assertEquals(state(), before, `${what}, access ${String(access)}`);
    }
  }
  let message = "";
  try {
    hw.translate(0, 0x1000_0020, 0);
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(
    message,
    "translate: access 0 is not ACCESS_READ (1) or ACCESS_WRITE (2)",
  );
  // Disabled (identity) and powered off: refused too, nothing counted.
  r.domain.detach(r.units[0]!);
  const before = state();
  assertEquals(kindOf(() => hw.translate(0, 0x1000, 0)), "EINVAL");
  assertEquals(state(), before);
  assertEquals(hw.translate(0, 0x1000, ACCESS_READ), 0x1000);
});
