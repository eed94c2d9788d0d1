/**
 * Reviewed defects of the virtio-iommu front end: requests that fail in the
 * unit (command queue stalled) leave no leaked domain and no inconsistent
 * endpoint bookkeeping, and device options that do not fit their wire
 * fields are refused with EINVAL.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { createSoc, IommuError, type Soc } from "../core/mod.ts";
import {
  CR0_CMDQEN,
  createVirtioIommu,
  decodeConfig,
  encodeAttach,
  encodeDetach,
  encodeMap,
  encodeProbe,
  genericDriverOf,
  genericHardwareOf,
  genericIommu,
  type GenericIommuOptions,
  REG_CR0,
  tailStatus,
  VIRTIO_IOMMU_ATTACH_F_BYPASS as ATTACH_F_BYPASS,
  type VirtioIommu,
  type VirtioIommuOptions,
  type VirtioResvRegion,
} from "../plugins/generic_iommu/mod.ts";

const OK = 0, IOERR = 1, INVAL = 4;
const RW = 3;

interface Rig {
  soc: Soc;
  dev: VirtioIommu;
  req(b: Uint8Array): number;
  stall(on: boolean): void;
}

function rig(
  plugin: GenericIommuOptions = {},
  options: VirtioIommuOptions = {},
): Rig {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(
    genericIommu(plugin),
  );
  const unit = soc.probeUnit({
    name: "viommu",
    compatible: ["virtio,pci-iommu"],
  });
  const dev = createVirtioIommu(soc, unit, options);
  const hw = genericHardwareOf(unit);
  return {
    soc,
    dev,
    req: (b) => tailStatus(dev.handleRequest(b)),
    // Clearing CMDQEN stops the unit consuming commands: every sync is EIO.
    stall(on) {
      const cr0 = hw.readRegister(REG_CR0);
      hw.writeRegister(REG_CR0, on ? cr0 & ~CR0_CMDQEN : cr0 | CR0_CMDQEN);
    },
  };
}

Deno.test("virtio ATTACH failing in the unit leaks no domain: IOERR, then OK once the queue works", () => {
  const { soc, dev, req, stall } = rig({ contexts: 4 });
  const live0 = soc.memory.frames.liveBytes;
  stall(true);
  // More failed ATTACHes than the unit has contexts: each answers IOERR.
  for (let i = 0; i < 5; i++) {
    assertEquals(req(encodeAttach(10 + i, 8)), IOERR, `attach ${i}`);
    assertEquals(dev.domainCount, 0);
    assertEquals(dev.domainOf(8), -1);
  }
  stall(false);
  // The next request, whatever it is, gives back what the failures held.
  assertEquals(req(encodeDetach(1, 8)), INVAL);
  assertEquals(soc.memory.frames.liveBytes, live0, "leaked frames");
  assertEquals(soc.domains().length, 0, "core domains left alive");
  assertEquals(req(encodeAttach(1, 8)), OK);
  assertEquals(req(encodeAttach(2, 9)), OK);
  assertEquals(req(encodeAttach(3, 10)), OK);
  for (const [d, ep] of [[1, 8], [2, 9], [3, 10]] as const) {
    assertEquals(req(encodeDetach(d, ep)), OK);
  }
  assertEquals(soc.memory.frames.liveBytes, live0);
});

Deno.test("virtio DETACH failing in the unit changes nothing: the endpoint stays in its domain", () => {
  const { soc, dev, req, stall } = rig();
  const buf = soc.memory.frames.alloc(4096);
  assertEquals(req(encodeAttach(1, 8)), OK);
  assertEquals(req(encodeMap(1, 0x1000, 0x1fff, buf, RW)), OK);
  const core = dev.coreDomain(1);
  stall(true);
  assertEquals(req(encodeDetach(1, 8)), IOERR);
  assertEquals(dev.domainOf(8), 1);
  assertEquals(dev.domainCount, 1);
  assertEquals(dev.coreDomain(1), core);
  assertEquals(dev.mappings(1)?.length, 1);
  stall(false);
  assertEquals(req(encodeDetach(1, 8)), OK);
  assertEquals(dev.domainOf(8), -1);
  assertEquals(dev.domainCount, 0);
  assert(core?.freed);
});

Deno.test("virtio bypass ATTACH and DETACH failing in the unit change nothing", () => {
  const { dev, req, stall } = rig();
  const drv = genericDriverOf(dev.unit);
  assertEquals(drv.streamMode(8), "abort");
  stall(true);
  assertEquals(req(encodeAttach(4, 8, ATTACH_F_BYPASS)), IOERR);
  assertEquals(dev.domainOf(8), -1);
  assertEquals(dev.domainCount, 0);
  stall(false);
  assertEquals(req(encodeAttach(4, 8, ATTACH_F_BYPASS)), OK);
  assertEquals(drv.streamMode(8), "bypass");
  stall(true);
  assertEquals(req(encodeDetach(4, 8)), IOERR);
  assertEquals(dev.domainOf(8), 4);
  assertEquals(dev.domainCount, 1);
  assertEquals(drv.streamMode(8), "bypass");
  stall(false);
  assertEquals(req(encodeDetach(4, 8)), OK);
  assertEquals(drv.streamMode(8), "abort");
  assertEquals(dev.domainCount, 0);
});

Deno.test("virtio reset failing in the unit keeps the endpoint bookkeeping of what it did not detach", () => {
  const { dev, req, stall } = rig();
  assertEquals(req(encodeAttach(1, 8)), OK);
  stall(true);
  assertThrows(() => dev.reset(), IommuError, "command queue");
  assertEquals(dev.domainOf(8), 1);
  assertEquals(dev.domainCount, 1);
  stall(false);
  dev.reset();
  assertEquals(dev.domainOf(8), -1);
  assertEquals(dev.domainCount, 0);
});

Deno.test("virtio DETACH answers OK when only freeing the emptied domain fails; the domain is freed later", () => {
  const { soc, dev, req } = rig();
  const live0 = soc.memory.frames.liveBytes;
  assertEquals(req(encodeAttach(1, 8)), OK);
  const core = dev.coreDomain(1)!;
  const drv = genericDriverOf(dev.unit);
  // The TLB invalidation that freeing needs fails once.
  const real = drv.invalidateContext.bind(drv);
  drv.invalidateContext = () => {
    throw new IommuError("EIO", "injected");
  };
  assertEquals(req(encodeDetach(1, 8)), OK);
  assertEquals(dev.domainOf(8), -1);
  assertEquals(dev.domainCount, 0);
  assert(!core.freed);
  drv.invalidateContext = real;
  assertEquals(req(encodeProbe(8, dev.probeSize)), OK);
  assert(core.freed);
  assertEquals(soc.memory.frames.liveBytes, live0);
});

Deno.test("virtio options that do not fit their wire fields are EINVAL naming the option", () => {
  const bad: [string, VirtioIommuOptions][] = [
    ["domainRange", { domainRange: [0, 2 ** 40] }],
    ["domainRange", { domainRange: [9, 3] }],
    ["domainRange", { domainRange: [-1, 3] }],
    ["domainRange", { domainRange: [1] as unknown as [number, number] }],
    ["probeSize", { probeSize: 2 ** 33 }],
    ["probeSize", { probeSize: 1.5 }],
    ["reservedRegions", {
      reservedRegions: [{ start: 1.5, end: 0x1fff, subtype: 0 }],
    }],
    ["reservedRegions", {
      reservedRegions: [{ start: -4096, end: 0x1fff, subtype: 1 }],
    }],
    ["reservedRegions", {
      reservedRegions: [{ start: 0x2000, end: 0x1fff, subtype: 0 }],
    }],
    ["reservedRegions", {
      reservedRegions: [{ start: 0x8000000, end: 0x80fffff, subtype: 300 }],
    }],
    ["reservedRegions", {
      reservedRegions: [null] as unknown as VirtioResvRegion[],
    }],
    ["eventQueueSize", { eventQueueSize: -1 }],
    ["maxDomains", { maxDomains: NaN }],
    ["maxMappingsPerDomain", { maxMappingsPerDomain: 0.5 }],
    ["maxEndpointsPerDomain", { maxEndpointsPerDomain: -Infinity }],
    ["features", { features: -1 }],
    ["bypass", { bypass: 1 as unknown as boolean }],
    ["endpoints", { endpoints: 8 as unknown as number[] }],
  ];
  for (const [name, o] of bad) {
    const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
    const unit = soc.probeUnit({ name: "v", compatible: ["virtio,pci-iommu"] });
    const e = assertThrows(
      () => createVirtioIommu(soc, unit, o),
      IommuError,
      name,
      JSON.stringify(o),
    );
    assertEquals(e.kind, "EINVAL", JSON.stringify(o));
  }
  // The edges of each wire field are accepted and advertised as given.
  const { dev, req } = rig({}, {
    domainRange: [0xffffffff, 0xffffffff],
    probeSize: 0xffff,
    reservedRegions: [{ start: 0, end: 0xfff, subtype: 255 }],
    maxEndpointsPerDomain: Infinity,
    eventQueueSize: 0,
  });
  const cfg = decodeConfig(dev.config());
  assertEquals([cfg.domainStart, cfg.domainEnd], [0xffffffff, 0xffffffff]);
  assertEquals(cfg.probeSize, 0xffff);
  assertEquals(req(encodeAttach(0xffffffff, 8)), OK);
  assertEquals(req(encodeProbe(8, dev.probeSize)), OK);
});
