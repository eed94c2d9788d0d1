/**
 * Reviewed spec defects of the virtio-iommu front end (central-iommu sheet
 * §1.2, §1.4, §1.8, §1.9): a strict MAP the unit cannot translate is
 * answered RANGE even without INPUT_RANGE, and DMA into an MSI (RESV_MEM
 * subtype 1) region passes through untranslated while a RESERVED region
 * faults with R_MAPPING.
 */
import { assertEquals, assertThrows } from "@std/assert";
import { createSoc, IommuError, type Master, type Soc } from "../core/mod.ts";
import {
  createVirtioIommu,
  decodeFaultRecord,
  encodeAttach,
  encodeDetach,
  encodeMap,
  encodeUnmap,
  genericIommu,
  tailStatus,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_FAULT_F_ADDRESS,
  VIRTIO_IOMMU_FAULT_F_WRITE,
  VIRTIO_IOMMU_FAULT_R_DOMAIN,
  VIRTIO_IOMMU_FAULT_R_MAPPING,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  VIRTIO_IOMMU_RESV_MEM_T_RESERVED,
  type VirtioIommu,
  type VirtioIommuOptions,
} from "../plugins/generic_iommu/mod.ts";

const OK = 0, INVAL = 4, RANGE = 5;
const RW = 3;
const P = 4096;

interface Rig {
  soc: Soc;
  dev: VirtioIommu;
  nic: Master;
  req(b: Uint8Array): number;
}

function rig(options: VirtioIommuOptions = {}): Rig {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
  const unit = soc.probeUnit({
    name: "viommu",
    compatible: ["virtio,pci-iommu"],
  });
  const dev = createVirtioIommu(soc, unit, options);
  const nic = soc.addMaster({ name: "nic", ports: [{ unit, streamIds: [8] }] });
  return { soc, dev, nic, req: (b) => tailStatus(dev.handleRequest(b)) };
}

// A DMA write of `value` to `iova`; the IOMMU fault reason or "ok".
function dmaWrite(nic: Master, iova: number, value: number): string {
  const f = nic.port().write(iova, new Uint8Array([value, 0, 0, 0]));
  return f === null ? "ok" : f.reason;
}

Deno.test("strict MAP beyond the unit's input size answers RANGE without INPUT_RANGE", () => {
  // Without INPUT_RANGE the driver takes the input range as all 64 bits; a
  // MAP the unit cannot translate must fail, not record a dead mapping.
  const { soc, dev, nic, req } = rig({
    features: VIRTIO_IOMMU_F_MAP_UNMAP | VIRTIO_IOMMU_F_PROBE |
      VIRTIO_IOMMU_F_BYPASS_CONFIG | VIRTIO_IOMMU_F_MMIO,
  });
  const buf = soc.memory.frames.alloc(P);
  const top = 2 ** dev.unit.caps.inputBits;
  assertEquals(req(encodeAttach(1, 8)), OK);
  assertEquals(req(encodeMap(1, top, top + P - 1, buf, RW)), RANGE);
  assertEquals(req(encodeMap(1, top - P, top + P - 1, buf, RW)), RANGE);
  assertEquals(
    req(encodeMap(1, 0xffff_ffff_ffff_f000n, 0xffff_ffff_ffff_ffffn, buf, RW)),
    RANGE,
  );
  assertEquals(dev.mappings(1), [], "nothing recorded");
  // The last page the unit translates still maps, and DMA reaches it.
  assertEquals(req(encodeMap(1, top - P, top - 1, buf, RW)), OK);
  assertEquals(dmaWrite(nic, top - P + 8, 0x5a), "ok");
  assertEquals(soc.memory.readBytes(buf + 8, 1)[0], 0x5a);
  // The documented order: an unaligned range beyond the input size is
  // answered by the input-size check (RANGE either way), a bad flag first.
  assertEquals(req(encodeMap(1, top + 1, top + P, buf, RW)), RANGE);
  assertEquals(req(encodeMap(1, top, top + P - 1, buf, 0x80)), INVAL);
});

const MSI = 0x200_0000, RESV = 0x300_0000;
const regions = [
  { start: MSI, end: MSI + P - 1, subtype: VIRTIO_IOMMU_RESV_MEM_T_MSI },
  { start: RESV, end: RESV + P - 1, subtype: VIRTIO_IOMMU_RESV_MEM_T_RESERVED },
];

function faults(dev: VirtioIommu): [number, number, bigint][] {
  return dev.takeEvents().map((e) => {
    const r = decodeFaultRecord(e);
    return [r.reason, r.flags, r.address];
  });
}

Deno.test("DMA to an MSI region passes through untranslated; a RESERVED region faults R_MAPPING", async (t) => {
  const { soc, dev, nic, req } = rig({ reservedRegions: regions });
  const fw = VIRTIO_IOMMU_FAULT_F_WRITE | VIRTIO_IOMMU_FAULT_F_ADDRESS;
  // The doorbell write lands at the same physical address (identity).
  const msiOk = (value: number): void => {
    assertEquals(dmaWrite(nic, MSI + 0x40, value), "ok");
    assertEquals(soc.memory.readBytes(MSI + 0x40, 1)[0], value);
    assertEquals(faults(dev), []);
  };
  await t.step("attached to a translating domain", () => {
    assertEquals(req(encodeAttach(1, 8)), OK);
    msiOk(1);
    assertEquals(dmaWrite(nic, RESV + 0x40, 1), "translation");
    assertEquals(faults(dev), [[
      VIRTIO_IOMMU_FAULT_R_MAPPING,
      fw,
      BigInt(RESV + 0x40),
    ]]);
    // MAP over either region is refused (sheet §1.8), and leaves the
    // doorbell passing through; UNMAP of the range removes nothing of it.
    const buf = soc.memory.frames.alloc(P);
    assertEquals(req(encodeMap(1, MSI, MSI + P - 1, buf, RW)), INVAL);
    assertEquals(req(encodeMap(1, MSI - P, MSI + P - 1, buf, RW)), INVAL);
    assertEquals(req(encodeMap(1, RESV, RESV + P - 1, buf, RW)), INVAL);
    assertEquals(req(encodeUnmap(1, MSI - 0x10_0000, MSI + 0x10_0000)), OK);
    msiOk(2);
    assertEquals(dev.mappings(1), [], "the identity page is not a MAP region");
  });
  await t.step("moved to another domain, detached, reattached, reset", () => {
    assertEquals(req(encodeAttach(2, 8)), OK);
    msiOk(3);
    assertEquals(req(encodeDetach(2, 8)), OK);
    // Unattached and not in bypass: no access at all (spec §1.7).
    assertEquals(dmaWrite(nic, MSI + 0x40, 4) === "ok", false);
    assertEquals(faults(dev), [[
      VIRTIO_IOMMU_FAULT_R_DOMAIN,
      fw,
      BigInt(MSI + 0x40),
    ]]);
    assertEquals(req(encodeAttach(2, 8)), OK);
    msiOk(5);
    dev.reset();
    assertEquals(req(encodeAttach(7, 8)), OK);
    msiOk(6);
    assertEquals(dmaWrite(nic, RESV, 1), "translation");
    assertEquals(faults(dev)[0]?.[0], VIRTIO_IOMMU_FAULT_R_MAPPING);
  });
});

Deno.test("an MSI doorbell outside RAM is not an IOMMU fault: no fault record", () => {
  // The repro's layout: the doorbell window (0x8000000, Linux's software
  // MSI base) lies beyond 64 MiB of RAM.
  const doorbell = 0x800_0000;
  const { dev, nic, req } = rig({
    reservedRegions: [{
      start: doorbell,
      end: doorbell + 0xf_ffff,
      subtype: VIRTIO_IOMMU_RESV_MEM_T_MSI,
    }],
  });
  assertEquals(req(encodeAttach(1, 8)), OK);
  // The unit lets it through; only the memory system has nothing there.
  assertEquals(dmaWrite(nic, doorbell + 0x40, 1), "bus-error");
  assertEquals(faults(dev), []);
  // A real translation fault next to it is still reported.
  assertEquals(dmaWrite(nic, doorbell + 0x10_0000, 1), "translation");
  assertEquals(faults(dev)[0]?.[0], VIRTIO_IOMMU_FAULT_R_MAPPING);
});

Deno.test("qemu-compat: a MAP over reserved regions is kept out of them (MSI identity, RESERVED faults)", () => {
  const { soc, dev, nic, req } = rig({
    profile: "qemu-compat",
    reservedRegions: regions,
  });
  const buf = soc.memory.frames.alloc(8 * P);
  assertEquals(req(encodeAttach(1, 8)), OK);
  // QEMU answers OK (no RESV_MEM check on MAP) and its translate path
  // checks the regions first.
  assertEquals(req(encodeMap(1, MSI - P, MSI + 2 * P - 1, buf, RW)), OK);
  assertEquals(
    req(encodeMap(1, RESV - P, RESV + 2 * P - 1, buf + 3 * P, RW)),
    OK,
  );
  assertEquals(dmaWrite(nic, MSI + 0x40, 9), "ok");
  assertEquals(soc.memory.readBytes(MSI + 0x40, 1)[0], 9);
  assertEquals(dmaWrite(nic, MSI - P + 8, 0x11), "ok");
  assertEquals(soc.memory.readBytes(buf + 8, 1)[0], 0x11);
  assertEquals(dmaWrite(nic, MSI + P + 8, 0x22), "ok");
  assertEquals(soc.memory.readBytes(buf + 2 * P + 8, 1)[0], 0x22);
  assertEquals(dmaWrite(nic, RESV + 8, 1), "translation");
  assertEquals(faults(dev)[0]?.[0], VIRTIO_IOMMU_FAULT_R_MAPPING);
  assertEquals(dmaWrite(nic, RESV + P + 8, 0x33), "ok");
  assertEquals(soc.memory.readBytes(buf + 5 * P + 8, 1)[0], 0x33);
  // UNMAP removes the mapping's pages, not the doorbell's identity page.
  assertEquals(req(encodeUnmap(1, MSI - P, MSI + 2 * P - 1)), OK);
  assertEquals(dmaWrite(nic, MSI - P + 8, 1), "translation");
  assertEquals(dmaWrite(nic, MSI + 0x40, 10), "ok");
  assertEquals(soc.memory.readBytes(MSI + 0x40, 1)[0], 10);
});

Deno.test("MSI regions the unit cannot pass through are refused at creation", () => {
  const soc = createSoc({ memory: { size: 64 << 20 } }).use(genericIommu());
  const unit = soc.probeUnit({ name: "v", compatible: ["virtio,pci-iommu"] });
  const top = 2 ** unit.caps.inputBits;
  for (
    const reservedRegions of [
      [{ start: top, end: top + P - 1, subtype: VIRTIO_IOMMU_RESV_MEM_T_MSI }],
      [{ start: top - P, end: top, subtype: VIRTIO_IOMMU_RESV_MEM_T_MSI }],
      // The MSI region's page would let a RESERVED region's bytes through.
      [
        { start: MSI, end: MSI + 0xff, subtype: VIRTIO_IOMMU_RESV_MEM_T_MSI },
        { start: MSI + 0x800, end: MSI + 0x8ff, subtype: 0 },
      ],
    ]
  ) {
    const e = assertThrows(
      () => createVirtioIommu(soc, unit, { reservedRegions }),
      IommuError,
      "reservedRegions",
    );
    assertEquals(e.kind, "EINVAL");
  }
  // RESERVED regions may lie anywhere (nothing is mapped for them).
  createVirtioIommu(soc, unit, {
    reservedRegions: [{ start: top, end: top + P - 1, subtype: 0 }],
  }).close();
});
