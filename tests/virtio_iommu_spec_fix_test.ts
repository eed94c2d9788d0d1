/**
 * Reviewed spec defects of the virtio-iommu front end (central-iommu sheet
 * §1.2, §1.4): a strict MAP the unit cannot translate is answered RANGE
 * even without INPUT_RANGE.
 */
import { assertEquals } from "@std/assert";
import { createSoc, type Master, type Soc } from "../core/mod.ts";
import {
  createVirtioIommu,
  encodeAttach,
  encodeMap,
  genericIommu,
  tailStatus,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
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
