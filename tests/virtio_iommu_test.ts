import { assert, assertEquals, assertThrows } from "@std/assert";
import fc from "fast-check";
import { createSoc, IommuError, type Soc } from "../core/mod.ts";
import {
  CR0_EVTQEN,
  CR0_SMMUEN,
  createVirtioIommu,
  decodeConfig,
  decodeFaultRecord,
  decodeProbeProperties,
  encodeAttach,
  encodeDetach,
  encodeMap,
  encodeProbe,
  encodeUnmap,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  REG_CR0,
  tailStatus,
  VIRTIO_IOMMU_ATTACH_F_BYPASS as F_BYPASS,
  VIRTIO_IOMMU_F_BYPASS,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_FAULT_F_ADDRESS,
  VIRTIO_IOMMU_FAULT_F_READ,
  VIRTIO_IOMMU_FAULT_F_WRITE,
  VIRTIO_IOMMU_FAULT_R_DOMAIN,
  VIRTIO_IOMMU_FAULT_R_MAPPING,
  VIRTIO_IOMMU_FAULT_R_UNKNOWN,
  VIRTIO_IOMMU_MAP_F_MMIO as MMIO,
  VIRTIO_IOMMU_MAP_F_READ as R,
  VIRTIO_IOMMU_MAP_F_WRITE as W,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  type VirtioIommu,
  type VirtioIommuOptions,
} from "../plugins/generic_iommu/mod.ts";

const OK = 0,
  IOERR = 1,
  UNSUPP = 2,
  DEVERR = 3,
  INVAL = 4,
  RANGE = 5,
  NOENT = 6,
  FAULT = 7,
  NOMEM = 8;
const P = 4096;

interface Dev {
  soc: Soc;
  dev: VirtioIommu;
  req(b: Uint8Array): number;
}

function device(options: VirtioIommuOptions = {}, memSize = 64 << 20): Dev {
  const soc = createSoc({ memory: { size: memSize } }).use(genericIommu());
  const unit = soc.probeUnit({
    name: "viommu",
    compatible: ["virtio,pci-iommu"],
  });
  const dev = createVirtioIommu(soc, unit, options);
  return { soc, dev, req: (b) => tailStatus(dev.handleRequest(b)) };
}

Deno.test("config space layout (and QEMU's config assertions)", () => {
  const { dev } = device({ probeSize: 64 });
  const raw = dev.config();
  assertEquals(raw.length, 40);
  const c = decodeConfig(raw);
  assertEquals(c.pageSizeMask, 0x4020_1000n);
  assertEquals([c.inputStart, c.inputEnd], [0n, (1n << 48n) - 1n]);
  assertEquals([c.domainStart, c.domainEnd], [0, 0xffffffff]);
  assertEquals([c.probeSize, c.bypass], [64, 0]);
  assertEquals([...raw.subarray(0, 8)], [0, 0x10, 0x20, 0x40, 0, 0, 0, 0]);
  const q = decodeConfig(device({ profile: "qemu-compat" }).dev.config());
  assert(q.inputStart === 0n && q.inputEnd >= 0xffffffffn);
  assertEquals([q.domainStart, q.domainEnd, q.bypass], [0, 0xffffffff, 1]);
  assertEquals(q.pageSizeMask & 1n, 1n, "1-byte granule");
});

Deno.test("QEMU qtest attach_detach replayed", () => {
  const { req, dev } = device({ profile: "qemu-compat", endpoints: [0] });
  assertEquals(req(encodeAttach(0, 0)), OK);
  assertEquals(req(encodeAttach(0, 444)), NOENT);
  assertEquals(req(encodeDetach(0, 1)), NOENT);
  assertEquals(req(encodeAttach(1, 0)), OK);
  assertEquals(dev.domainCount, 1, "domain 0 ceased to exist");
  assertEquals(req(encodeDetach(0, 0)), INVAL);
  assertEquals(req(encodeDetach(1, 0)), OK);
  assertEquals(req(encodeAttach(1, 0)), OK);
  assertEquals(req(encodeMap(1, 0, 0xfff, 0xa1000, R)), OK);
  assertEquals(req(encodeMap(1, 0x2000, 0x2fff, 0xb1000, R)), OK);
  assertEquals(req(encodeDetach(1, 0)), OK);
  assertEquals(dev.mappings(1), null, "mappings dropped with the domain");
});

// The 7 normative UNMAP examples, with `u` the address unit (1 byte for the
// QEMU replay, one page for the strict device).
function specExamples(
  req: (b: Uint8Array) => number,
  dev: VirtioIommu,
  d: number,
  u: number,
): void {
  const map = (a: number, b: number) =>
    req(encodeMap(d, a * u, (b + 1) * u - 1, a * u, R));
  const unmap = (a: number, b: number) =>
    req(encodeUnmap(d, a * u, (b + 1) * u - 1));
  const left = () =>
    dev.mappings(d)!.map((
      m,
    ) => [Number(m.start) / u, (Number(m.end) + 1) / u - 1]);
  assertEquals(unmap(0, 4), OK, "1");
  assertEquals([map(0, 9), unmap(0, 9), left().length], [OK, OK, 0], "2");
  assertEquals([map(0, 4), map(5, 9), unmap(0, 9), left().length], [
    OK,
    OK,
    OK,
    0,
  ], "3");
  assertEquals([map(0, 9), unmap(0, 4)], [OK, RANGE], "4");
  assertEquals(left(), [[0, 9]], "4 removes nothing");
  assertEquals(unmap(0, 9), OK);
  assertEquals([map(0, 4), map(5, 9), unmap(0, 4)], [OK, OK, OK], "5");
  assertEquals(left(), [[5, 9]], "5 removes a only");
  assertEquals(unmap(5, 9), OK);
  assertEquals([map(0, 4), unmap(0, 9), left().length], [OK, OK, 0], "6");
  assertEquals([map(0, 4), map(10, 14), unmap(0, 14), left().length], [
    OK,
    OK,
    OK,
    0,
  ], "7");
}

Deno.test("QEMU qtest map_unmap replayed (1-byte granule profile)", () => {
  const { req, dev } = device({ profile: "qemu-compat", endpoints: [0] });
  assertEquals(req(encodeAttach(1, 0)), OK);
  assertEquals(req(encodeMap(0, 0, 0xfff, 0xa1000, R)), NOENT);
  assertEquals(req(encodeMap(1, 0, 0xfff, 0xa1000, R)), OK);
  assertEquals(req(encodeMap(1, 0, 0xffff, 0xb1000, R)), INVAL);
  assertEquals(req(encodeUnmap(4, 0x10, 0xfff)), NOENT);
  assertEquals(req(encodeUnmap(1, 0x10, 0xfff)), RANGE);
  assertEquals(req(encodeUnmap(1, 0, 0x1000)), OK);
  specExamples(req, dev, 1, 1);
  assertEquals(req(encodeMap(1, 10, 14, 10, R)), OK);
  assertEquals(req(encodeMap(1, 0, 4, 0, R)), OK);
  assertEquals(req(encodeUnmap(1, 0, 4)), OK);
  assertEquals(req(encodeMap(1, 10, 14, 10, R)), INVAL);
});

Deno.test("the spec's UNMAP examples hold on the strict device, in pages, with page tables", () => {
  const { req, dev } = device();
  assertEquals(req(encodeAttach(7, 3)), OK);
  specExamples(req, dev, 7, P);
  assertEquals(dev.coreDomain(7)!.leaves(), []);
  assertEquals(req(encodeMap(7, 0, 10 * P - 1, 0x100000, R | W)), OK);
  assertEquals(dev.coreDomain(7)!.leaves().length, 10);
  assertEquals(req(encodeUnmap(7, 0, 5 * P - 1)), RANGE);
  assertEquals(
    dev.coreDomain(7)!.leaves().length,
    10,
    "nothing removed on RANGE",
  );
});

Deno.test("every status code, under the documented check order", async (t) => {
  await t.step("OK and NOENT", () => {
    const { req } = device({ endpoints: [1, 2] });
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(req(encodeAttach(1, 3)), NOENT);
    assertEquals(req(encodeDetach(1, 3)), NOENT);
    assertEquals(req(encodeMap(9, 0, P - 1, 0, R)), NOENT);
    assertEquals(req(encodeUnmap(9, 0, P - 1)), NOENT);
    const probe = encodeProbe(3, 512);
    assertEquals(
      tailStatus(device({ endpoints: [1] }).dev.handleRequest(probe)),
      NOENT,
    );
  });
  await t.step("INVAL", () => {
    const { req } = device();
    assertEquals(req(encodeAttach(1, 1, 0, 1)), INVAL, "reserved");
    assertEquals(req(encodeAttach(1, 1, 2)), INVAL, "unknown flag");
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(
      req(encodeAttach(1, 2, F_BYPASS)),
      INVAL,
      "bypass kind mismatch",
    );
    assertEquals(req(encodeDetach(2, 1)), INVAL, "unknown domain");
    assertEquals(req(encodeDetach(1, 2)), INVAL, "not attached there");
    assertEquals(
      req(encodeMap(1, 0, P - 1, 0, 8)),
      INVAL,
      "MAP flag bit 3 (the v0.9 MMIO)",
    );
    assertEquals(req(encodeMap(1, P, 0, 0, R)), INVAL, "end before start");
    assertEquals(req(encodeMap(1, 0, P - 1, 0x10000, R)), OK);
    assertEquals(req(encodeMap(1, 0, 2 * P - 1, 0x20000, R)), INVAL, "overlap");
    assertEquals(req(encodeUnmap(1, 0, P - 1, 1)), INVAL, "reserved");
    assertEquals(req(encodeUnmap(1, P, 0)), INVAL, "end before start");
    assertEquals(req(encodeAttach(5, 4, F_BYPASS)), OK);
    assertEquals(req(encodeMap(5, 0, P - 1, 0, R)), INVAL, "bypass domain");
    assertEquals(req(encodeUnmap(5, 0, P - 1)), INVAL, "bypass domain");
  });
  await t.step("RANGE", () => {
    const { req } = device({ domainRange: [1, 100] });
    assertEquals(req(encodeAttach(101, 1)), RANGE, "domain range");
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(req(encodeMap(1, 0x10, P + 0xf, 0, R)), RANGE, "virt_start");
    assertEquals(req(encodeMap(1, 0, P, 0, R)), RANGE, "virt_end + 1");
    assertEquals(req(encodeMap(1, 0, P - 1, 0x10, R)), RANGE, "phys_start");
    assertEquals(
      req(encodeMap(1, 2 ** 48, 2 ** 48 + P - 1, 0, R)),
      RANGE,
      "input_range",
    );
    assertEquals(
      req(encodeMap(1, 0, P - 1, 2 ** 48, R | MMIO)),
      RANGE,
      "output size",
    );
    assertEquals(req(encodeMap(1, 0, 2 * P - 1, 0, R)), OK);
    assertEquals(req(encodeUnmap(1, 0, P - 1)), RANGE, "split");
  });
  await t.step("UNSUPP", () => {
    const a = device({ features: VIRTIO_IOMMU_F_BYPASS_CONFIG });
    assertEquals(a.req(encodeAttach(1, 1)), OK);
    assertEquals(a.req(encodeMap(1, 0, P - 1, 0, R)), UNSUPP);
    assertEquals(a.req(encodeUnmap(1, 0, P - 1)), UNSUPP);
    const b = device({ maxEndpointsPerDomain: 1 });
    assertEquals(b.req(encodeAttach(1, 1)), OK);
    assertEquals(b.req(encodeAttach(1, 2)), UNSUPP);
    assertEquals(b.req(encodeAttach(1, 1)), OK, "re-attach is fine");
    const q = device({ profile: "qemu-compat" });
    const unknown = new Uint8Array(8);
    unknown[0] = 9;
    assertEquals(q.req(unknown), UNSUPP);
  });
  await t.step("DEVERR: a MAP of the whole 64-bit space", () => {
    const { req } = device();
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(req(encodeMap(1, 0n, (1n << 64n) - 1n, 0, R)), DEVERR);
  });
  await t.step("FAULT: a non-MMIO physical range outside RAM", () => {
    const { req, dev } = device();
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(req(encodeMap(1, 0, P - 1, 0x8000_0000, R)), FAULT);
    assertEquals(
      req(encodeMap(1, 0, P - 1, 0x8000_0000, R | MMIO)),
      OK,
      "MMIO may point anywhere",
    );
    assertEquals(dev.coreDomain(1)!.leaves()[0]!.prot & 16, 16, "IOMMU_MMIO");
  });
  await t.step("NOMEM: domain cap, mapping cap, page-table allocation", () => {
    const a = device({ maxDomains: 1, maxMappingsPerDomain: 1 });
    assertEquals(a.req(encodeAttach(1, 1)), OK);
    assertEquals(a.req(encodeAttach(2, 2)), NOMEM);
    assertEquals(a.req(encodeMap(1, 0, P - 1, 0, R)), OK);
    assertEquals(a.req(encodeMap(1, P, 2 * P - 1, 0, R)), NOMEM);
    a.soc.memory.frames.failNth(1);
    assertEquals(a.req(encodeAttach(1, 2)), OK, "no allocation needed");
    const b = device();
    assertEquals(b.req(encodeAttach(1, 1)), OK);
    b.soc.memory.frames.failNth(1);
    assertEquals(
      b.req(encodeMap(1, 0x7f_0000_0000, 0x7f_0000_0fff, 0, R)),
      NOMEM,
    );
    assertEquals(b.dev.mappings(1), [], "nothing recorded");
    b.soc.memory.frames.failNth(1);
    assertEquals(b.req(encodeAttach(2, 2)), NOMEM);
    assertEquals(b.dev.domainCount, 1);
  });
  await t.step("IOERR: the unit's command queue stops", () => {
    const { req, dev } = device();
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(req(encodeMap(1, 0, P - 1, 0, R)), OK);
    const hw = genericHardwareOf(dev.unit);
    hw.writeRegister(REG_CR0, CR0_SMMUEN | CR0_EVTQEN);
    assertEquals(req(encodeUnmap(1, 0, P - 1)), IOERR);
  });
  await t.step("check order: the first failing check decides", () => {
    const { req } = device({ domainRange: [0, 10] });
    assertEquals(
      req(encodeAttach(50, 999, 2, 1)),
      INVAL,
      "reserved before flags, endpoint, range",
    );
    assertEquals(req(encodeAttach(50, 999, 2)), INVAL, "flags before endpoint");
    assertEquals(
      req(encodeAttach(50, 999)),
      NOENT,
      "endpoint before domain range",
    );
    assertEquals(req(encodeAttach(1, 1)), OK);
    assertEquals(
      req(encodeMap(9, 0x10, 0x20, 0x30, 8)),
      INVAL,
      "flags before domain",
    );
    assertEquals(
      req(encodeMap(9, 0x10, 0x20, 0x30, R)),
      NOENT,
      "domain before alignment",
    );
    assertEquals(
      req(encodeMap(1, 2 ** 48 + 1, 2 ** 48 + 2, 0, R)),
      RANGE,
      "input range",
    );
    assertEquals(req(encodeMap(1, 0, P - 1, 0x10000, R)), OK);
    assertEquals(
      req(encodeMap(1, 0x10, 0x20, 0x30, R)),
      RANGE,
      "alignment before overlap",
    );
    assertEquals(
      req(encodeMap(1, 0, P - 1, 0x9000_0000, R)),
      INVAL,
      "overlap before FAULT",
    );
    assertEquals(req(encodeUnmap(9, 0, 0, 1)), INVAL, "reserved before domain");
  });
});

Deno.test("malformed and unknown requests are not answered (used length 0)", () => {
  const { dev } = device();
  assertEquals(dev.handleRequest(new Uint8Array(3)).length, 0);
  const unknown = new Uint8Array(24);
  unknown[0] = 6;
  assertEquals(dev.handleRequest(unknown).length, 0);
  assertEquals(
    [...unknown],
    new Array(24).fill(0).map((_, i) => (i === 0 ? 6 : 0)),
    "buffer untouched",
  );
  assertEquals(
    dev.handleRequest(encodeMap(1, 0, 1, 2, 3).subarray(0, 36)).length,
    0,
    "too short for MAP",
  );
  assertEquals(tailStatus(new Uint8Array(0)), -1);
  const noProbe = device({ features: VIRTIO_IOMMU_F_MAP_UNMAP }).dev;
  assertEquals(noProbe.handleRequest(encodeProbe(1, 512)).length, 0);
  assert(dev.counters()["NOREPLY"]! >= 3);
});

Deno.test("PROBE reports RESV_MEM; MAP over a reserved region is refused", () => {
  const resv = [
    {
      start: 0x800_0000,
      end: 0x80f_ffff,
      subtype: VIRTIO_IOMMU_RESV_MEM_T_MSI,
    },
    { start: 0xfee0_0000, end: 0xfeef_ffff, subtype: 0 },
  ];
  const { req, dev } = device({ reservedRegions: resv, probeSize: 64 });
  const probe = encodeProbe(5, 64);
  const out = dev.handleRequest(probe);
  assertEquals(out.length, 68);
  assertEquals(tailStatus(out), OK);
  assertEquals(
    [...probe.subarray(72, 76)],
    [1, 0, 20, 0],
    "RESV_MEM header, length 20",
  );
  const props = decodeProbeProperties(out.subarray(0, 64));
  assertEquals(props.map((p) => [p.subtype, p.start, p.end]), [
    [1, 0x800_0000n, 0x80f_ffffn],
    [0, 0xfee0_0000n, 0xfeef_ffffn],
  ]);
  assertEquals(
    [...out.subarray(48, 64)].every((x) => x === 0),
    true,
    "unused bytes zero",
  );
  assertEquals(req(encodeAttach(1, 5)), OK);
  assertEquals(req(encodeMap(1, 0x80f_f000, 0x810_0fff, 0x1000, R)), INVAL);
  assertEquals(req(encodeMap(1, 0x810_0000, 0x810_0fff, 0x1000, R)), OK);
  const small = device({ reservedRegions: resv, probeSize: 24 }).dev;
  const p2 = encodeProbe(5, 24);
  assertEquals(tailStatus(small.handleRequest(p2)), INVAL);
  assertEquals(
    [...p2.subarray(72, 96)].every((x) => x === 0),
    true,
    "no property written",
  );
});

Deno.test("DMA through virtio mappings, fault records, bypass rules and domain lifecycle", async (t) => {
  const { soc, dev, req } = device();
  const unit = dev.unit;
  const nic = soc.addMaster({ name: "nic", ports: [{ unit, streamIds: [8] }] });
  const disk = soc.addMaster({
    name: "disk",
    ports: [{ unit, streamIds: [9] }],
  });
  const buf = soc.memory.frames.alloc(2 * P);
  const live = soc.memory.frames.liveBytes;
  await t.step("unattached endpoints are blocked and report R_DOMAIN", () => {
    assert(nic.port().write(0x1000, new Uint8Array([1])) !== null);
    const [ev] = dev.takeEvents();
    const r = decodeFaultRecord(ev!);
    assertEquals(r, {
      reason: VIRTIO_IOMMU_FAULT_R_DOMAIN,
      flags: VIRTIO_IOMMU_FAULT_F_WRITE | VIRTIO_IOMMU_FAULT_F_ADDRESS,
      endpoint: 8,
      address: 0x1000n,
    });
    assertEquals(ev!.length, 24);
  });
  await t.step("mapped DMA works; unmapped DMA reports R_MAPPING", () => {
    assertEquals(req(encodeAttach(3, 8)), OK);
    assertEquals(req(encodeMap(3, 0x10000, 0x11fff, buf, R | W)), OK);
    nic.port().writeBytes(
      0x10ff0,
      new Uint8Array([
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        20,
      ]),
    );
    assertEquals(soc.memory.read8(buf + 0x1003), 20);
    assert(nic.port().read(0x20000, new Uint8Array(4)) !== null);
    const r = decodeFaultRecord(dev.takeEvents()[0]!);
    assertEquals([r.reason, r.flags, r.address], [
      VIRTIO_IOMMU_FAULT_R_MAPPING,
      VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_ADDRESS,
      0x20000n,
    ]);
  });
  await t.step(
    "two endpoints share a domain; the last detach drops it and its tables",
    () => {
      assertEquals(req(encodeAttach(3, 9)), OK);
      assertEquals(disk.port().readBytes(0x11003, 1)[0], 20);
      assertEquals(req(encodeDetach(3, 8)), OK);
      assert(nic.port().read(0x11000, new Uint8Array(1)) !== null);
      assertEquals(req(encodeDetach(3, 9)), OK);
      assertEquals(dev.domainCount, 0);
      assertEquals(soc.memory.frames.liveBytes, live);
      assertEquals(req(encodeMap(3, 0, P - 1, 0, R)), NOENT);
    },
  );
  await t.step("moving an endpoint between domains", () => {
    assertEquals(req(encodeAttach(1, 8)), OK);
    assertEquals(req(encodeMap(1, 0, P - 1, buf, R)), OK);
    assertEquals(req(encodeAttach(2, 8)), OK);
    assertEquals(dev.domainOf(8), 2);
    assertEquals(dev.mappings(1), null, "domain 1 lost its last endpoint");
    assert(nic.port().read(0, new Uint8Array(1)) !== null);
  });
  await t.step("bypass config, bypass domains", () => {
    dev.takeEvents();
    dev.setBypass(true);
    assertEquals(decodeConfig(dev.config()).bypass, 1);
    assertEquals(
      disk.port().readBytes(buf + 0x1003, 1)[0],
      20,
      "unattached endpoint bypasses",
    );
    assert(
      nic.port().read(buf, new Uint8Array(1)) !== null,
      "attached endpoint still translates",
    );
    assertEquals(req(encodeDetach(2, 8)), OK);
    assertEquals(
      nic.port().readBytes(buf + 0x1003, 1)[0],
      20,
      "detached into bypass",
    );
    dev.setBypass(false);
    assert(nic.port().read(buf, new Uint8Array(1)) !== null);
    assertEquals(req(encodeAttach(4, 8, F_BYPASS)), OK);
    assertEquals(nic.port().readBytes(buf + 0x1003, 1)[0], 20, "bypass domain");
    assertEquals(genericDriverOf(unit).streamMode(8), "bypass");
    assertEquals(
      req(encodeAttach(5, 8)),
      OK,
      "from bypass domain to a paging one",
    );
    assert(nic.port().read(buf, new Uint8Array(1)) !== null);
    assertEquals(req(encodeAttach(4, 8, F_BYPASS)), OK, "and back");
    assertEquals(dev.domainCount, 1);
    assertEquals(req(encodeDetach(4, 8)), OK);
    assert(nic.port().read(buf, new Uint8Array(1)) !== null);
    assertEquals(soc.memory.frames.liveBytes, live);
    const noCfg = device({ features: VIRTIO_IOMMU_F_MAP_UNMAP }).dev;
    assertThrows(() => noCfg.setBypass(true), IommuError);
    assertEquals(
      tailStatus(noCfg.handleRequest(encodeAttach(1, 1, F_BYPASS))),
      INVAL,
    );
  });
  await t.step("a stream that is not an endpoint reports R_UNKNOWN", () => {
    dev.takeEvents();
    genericHardwareOf(unit).translate(999, 0x1000, 1);
    genericHardwareOf(unit).translate(dev.unit.caps.streamIds - 1, 0x1000, 1);
    const rs = dev.takeEvents().map((e) => decodeFaultRecord(e).reason);
    assertEquals(rs, [
      VIRTIO_IOMMU_FAULT_R_UNKNOWN,
      VIRTIO_IOMMU_FAULT_R_DOMAIN,
    ]);
  });
  await t.step("counters and close", () => {
    nic.port().read(0x9000, new Uint8Array(1));
    const c = dev.counters();
    assert(c["OK"]! > 10);
    assert(dev.takeEvents().length > 0);
    dev.close();
    nic.port().read(0x5000, new Uint8Array(1));
    assertEquals(dev.takeEvents(), []);
  });
});

Deno.test("legacy BYPASS feature and device reset", () => {
  const soc = createSoc({ memory: { size: 16 << 20 } }).use(genericIommu());
  const unit = soc.probeUnit({ name: "v", compatible: ["virtio,pci-iommu"] });
  const legacy = createVirtioIommu(soc, unit, {
    features: VIRTIO_IOMMU_F_MAP_UNMAP | VIRTIO_IOMMU_F_BYPASS,
  });
  const hw = genericHardwareOf(unit);
  assertEquals(
    hw.isBypassing(3),
    true,
    "unattached endpoints bypass with legacy BYPASS",
  );
  assertEquals(tailStatus(legacy.handleRequest(encodeAttach(1, 3))), OK);
  assertEquals(
    tailStatus(legacy.handleRequest(encodeMap(1, 0, P - 1, 0x1000, R))),
    OK,
  );
  assertEquals(hw.isBypassing(3), false);
  const live = soc.memory.frames.liveBytes;
  legacy.reset();
  assertEquals(legacy.domainCount, 0);
  assertEquals(legacy.domainOf(3), -1);
  assertEquals(hw.isBypassing(3), true);
  assert(soc.memory.frames.liveBytes < live, "domain tables freed");
  const strict = device({ bypass: true });
  assertEquals(
    tailStatus(strict.dev.handleRequest(encodeAttach(1, 3, F_BYPASS))),
    OK,
  );
  strict.dev.reset();
  assertEquals(
    decodeConfig(strict.dev.config()).bypass,
    1,
    "bypass survives a device reset",
  );
  assertEquals(genericHardwareOf(strict.dev.unit).isBypassing(3), true);
});

Deno.test("front-end construction errors", () => {
  const soc = createSoc({ memory: { size: 16 << 20 } }).use(genericIommu());
  const unit = soc.probeUnit({
    name: "v",
    compatible: ["virtio,pci-iommu"],
    props: { "iommukit,stream-ids": 4 },
  });
  const e1 = assertThrows(
    () => createVirtioIommu(soc, unit, { endpoints: [4] }),
    IommuError,
  );
  assertEquals(e1.kind, "EINVAL");
  const e2 = assertThrows(
    () => createVirtioIommu(soc, unit, { profile: "loose" as never }),
    IommuError,
  );
  assertEquals(e2.kind, "EINVAL");
  const e3 = assertThrows(
    () => createVirtioIommu(soc, { ...unit, driver: {} as never }),
    IommuError,
  );
  assertEquals(e3.kind, "EINVAL");
});

Deno.test("random wire requests never throw and always leave a consistent device", () => {
  const { soc, dev } = device({
    probeSize: 48,
    maxDomains: 8,
    endpoints: [0, 1, 2, 3],
  });
  const live0 = soc.memory.frames.liveBytes;
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.uint8Array({ minLength: 0, maxLength: 140 }),
          fc.tuple(
            fc.integer({ min: 0, max: 9 }),
            fc.integer({ min: 0, max: 5 }),
            fc.nat(3),
          )
            .map(([d, e, f]) => encodeAttach(d, e, f & 1)),
          fc.tuple(
            fc.integer({ min: 0, max: 9 }),
            fc.integer({ min: 0, max: 5 }),
          )
            .map(([d, e]) => encodeDetach(d, e)),
          fc.tuple(
            fc.integer({ min: 0, max: 9 }),
            fc.nat(64),
            fc.integer({ min: 1, max: 4 }),
            fc.nat(8),
          )
            .map(([d, p, n, f]) =>
              encodeMap(d, p * P, (p + n) * P - 1, 0x10_0000 + p * P, f)
            ),
          fc.tuple(
            fc.integer({ min: 0, max: 9 }),
            fc.nat(64),
            fc.integer({ min: 1, max: 8 }),
          )
            .map(([d, p, n]) => encodeUnmap(d, p * P, (p + n) * P - 1)),
          fc.integer({ min: 0, max: 5 }).map((e) => encodeProbe(e, 48)),
        ),
        { maxLength: 40 },
      ),
      (reqs) => {
        for (const r of reqs) {
          const out = dev.handleRequest(r);
          const ok = out.length === 0 || out.length === 4 || out.length === 52;
          if (!ok) return false;
          if (out.length > 0 && out[out.length - 4]! > 8) return false;
        }
        // Every backed mapping of every live domain is what the table holds
        // (MAPs without READ or WRITE are recorded only).
        for (let d = 0; d <= 9; d++) {
          const maps = dev.mappings(d);
          const core = dev.coreDomain(d);
          if (maps === null || core === null) continue;
          let pages = 0;
          for (const m of maps) {
            if (m.backed) pages += Number(m.end - m.start + 1n) / P;
          }
          if (core.leaves().length !== pages) return false;
        }
        return true;
      },
    ),
    { numRuns: 150, seed: 7 },
  );
  const c = dev.counters();
  assert(
    c["OK"]! > 100 && c["NOENT"]! > 0 && c["INVAL"]! > 0 && c["NOREPLY"]! > 0,
    JSON.stringify(c),
  );
  dev.reset();
  assertEquals(dev.domainCount, 0);
  assertEquals(soc.memory.frames.liveBytes, live0, "reset frees every table");
});
