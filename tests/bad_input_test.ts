/**
 * The bad-input catalogue: every public entry point fed malformed numbers,
 * wrong states and malformed external inputs. Each row names the entry
 * point, the input, the documented `IommuError` kind, and is run on a fresh
 * system whose whole state (RAM digest, live frames, decoded leaves,
 * counters, attachments, DMA mappings) must be unchanged by the refused
 * call. docs/errors.md carries the same table; a test keeps them in step
 * (`IOMMUKIT_WRITE_DOCS=1` rewrites the file from this catalogue).
 */
import { assert, assertEquals } from "@std/assert";
import {
  createSoc,
  type Domain,
  encodeFdt,
  FrameAllocator,
  IOMMU_READ,
  IOMMU_WRITE,
  IommuError,
  type IommuErrorKind,
  type IommuUnit,
  IotlbGather,
  MapPlan,
  type Master,
  parseFdt,
  PhysicalMemory,
  type Soc,
} from "../core/mod.ts";
import {
  createDmaMapper,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  type DmaBuffer,
  type DmaDirection,
  type DmaMapper,
  IovaAllocator,
} from "../core/dma/mod.ts";
import { buildPlatform } from "../core/platform.ts";
import { sourceFromJsonText } from "../core/platform_json.ts";
import { Tlb } from "../core/tlb.ts";
import {
  CommandQueue,
  EventQueueReader,
  type GenericDomainOps,
  genericDriverOf,
  genericIommu,
  LpaePageTable,
  setStreamBypass,
} from "../plugins/generic_iommu/mod.ts";
import {
  FlpdCache,
  samsungSysmmu,
  type SysmmuDriver,
  type SysmmuUnitState,
} from "../plugins/samsung_sysmmu/mod.ts";
import { GENERIC_SOC_DTB } from "../platforms/mod.ts";
import {
  createVirtioIommu,
  encodeAttach,
  encodeDetach,
  encodeMap,
  encodeProbe,
  encodeUnmap,
  VIRTIO_IOMMU_STATUS_NAMES,
  type VirtioIommu,
} from "../plugins/generic_iommu/virtio/mod.ts";
import { flatIommu } from "./support/flat_iommu.ts";
import { renderIovaSvg, type SvgDomain } from "../svg/mod.ts";

const RW = IOMMU_READ | IOMMU_WRITE;
const MB = 1 << 20;

/** The system every row runs on (fresh per row). */
interface World {
  soc: Soc;
  flat: IommuUnit;
  flat2: IommuUnit;
  sysmmu: IommuUnit;
  smmu: IommuUnit;
  /** Flat domain, attached to `flat`, with a 4 MiB block and two pages. */
  d: Domain;
  /** Generic domain attached to stream 3. */
  g: Domain;
  /** samsung-sysmmu domain attached to `sysmmu`, with a 1 MiB section. */
  s: Domain;
  /** A freed flat domain. */
  freed: Domain;
  dev: Master;
  gdev: Master;
  /** DMA mapper behind the generic unit (stream 5) with one live mapping. */
  dma: DmaMapper;
  buf: DmaBuffer;
  addr: number;
  freedBuf: DmaBuffer;
  removed: DmaMapper;
}

function world(): World {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 256 * MB } })
    .use(flatIommu())
    .use(samsungSysmmu())
    .use(genericIommu());
  const flat = soc.probeUnit({
    name: "flat",
    compatible: ["iommukit,flat-iommu"],
  });
  const flat2 = soc.probeUnit({
    name: "flat2",
    compatible: ["iommukit,flat-iommu"],
  });
  const sysmmu = soc.probeUnit({
    name: "sysmmu",
    compatible: ["samsung,exynos-sysmmu"],
  });
  const smmu = soc.probeUnit({
    name: "smmu",
    compatible: ["iommukit,generic-iommu"],
  });
  const dev = soc.addMaster({
    name: "dev",
    dmaBits: 32,
    ports: [{ unit: flat }],
  });
  const gdev = soc.addMaster({
    name: "gdev",
    ports: [{ unit: smmu, streamIds: [3] }],
  });
  const ddev = soc.addMaster({
    name: "ddev",
    ports: [{ unit: smmu, streamIds: [5] }],
  });
  const rdev = soc.addMaster({
    name: "rdev",
    ports: [{ unit: smmu, streamIds: [6] }],
  });
  // The one master the per-device sysmmu serves.
  soc.addMaster({ name: "sdev", ports: [{ unit: sysmmu }] });
  const d = soc.createDomain(flat);
  d.attach(flat);
  d.map(0x40_0000, 0x4800_0000, 4 * MB, RW);
  d.map(0x100_0000, 0x4900_0000, 8192, IOMMU_READ);
  const g = soc.createDomain(smmu);
  g.attach(smmu, [3]);
  g.map(0x20_0000, 0x4a00_0000, 2 * MB, RW);
  const s = soc.createDomain(sysmmu);
  s.attach(sysmmu);
  s.map(0x40_0000, 0x4c00_0000, MB, RW);
  s.map(0x80_0000, 0x4c10_0000, 8192, RW);
  const freed = soc.createDomain(flat);
  freed.free();
  const dma = createDmaMapper(soc, ddev);
  const buf = dma.cpu.allocBuffer(8192);
  const addr = dma.mapSingle(buf, DMA_TO_DEVICE);
  dma.mappingError(addr);
  const freedBuf = dma.cpu.allocBuffer(4096);
  freedBuf.free();
  const removed = createDmaMapper(soc, rdev);
  removed.removeMaster();
  return {
    soc,
    flat,
    flat2,
    sysmmu,
    smmu,
    d,
    g,
    s,
    freed,
    dev,
    gdev,
    dma,
    buf,
    addr,
    freedBuf,
    removed,
  };
}

function snapshot(w: World, withFaults = true): string {
  const iova = w.dma.stats().iova!;
  const dc = {
    ...w.d.counters(),
    faults: withFaults ? w.d.counters().faults : 0,
  };
  return JSON.stringify([
    w.soc.memory.digest(),
    w.soc.memory.frames.liveBytes,
    w.soc.memory.frames.liveBlocks,
    w.d.leaves(),
    dc,
    w.d.attachments().map((a) => [a.unit.name, a.streamIds]),
    w.g.leaves(),
    w.g.counters(),
    w.g.attachments().map((a) => [a.unit.name, a.streamIds]),
    w.s.leaves(),
    w.s.counters(),
    w.s.attachments().map((a) => [a.unit.name, a.streamIds]),
    w.soc.domains().length,
    w.soc.masters().length,
    w.soc.units().length,
    w.dma.mappings().map((m) => [m.dmaAddr, m.size, m.direction]),
    w.dma.stats().liveMappings,
    iova.liveRanges,
    iova.liveBytes,
    withFaults ? w.soc.faults.counters() : null,
  ]);
}

/** One row of the catalogue. */
interface Row {
  entry: string;
  input: string;
  kind: IommuErrorKind;
  run: (w: World) => unknown;
}

// deno-lint-ignore no-explicit-any
const any = (v: unknown): any => v;

const NUMBERS: [string, number][] = [
  ["NaN", NaN],
  ["1.5 (non-integer)", 1.5],
  ["-4096 (negative)", -4096],
  ["2^53 (above safe integers)", 2 ** 53],
  ["Infinity", Infinity],
];

const rows: Row[] = [];
function row(
  entry: string,
  input: string,
  kind: IommuErrorKind,
  run: (w: World) => unknown,
): void {
  rows.push({ entry, input, kind, run });
}

// ---------------------------------------------------------------- Domain
for (const [name, v] of NUMBERS) {
  row(
    "Domain.map",
    `iova ${name}`,
    "EINVAL",
    (w) => w.d.map(v, 0x4b00_0000, 4096, RW),
  );
  row(
    "Domain.map",
    `pa ${name}`,
    "EINVAL",
    (w) => w.d.map(0x200_0000, v, 4096, RW),
  );
  row(
    "Domain.map",
    `size ${name}`,
    "EINVAL",
    (w) => w.d.map(0x200_0000, 0x4b00_0000, v, RW),
  );
  row("Domain.unmap", `iova ${name}`, "EINVAL", (w) => w.d.unmap(v, 4096));
  row("Domain.unmap", `size ${name}`, "EINVAL", (w) => w.d.unmap(0x40_0000, v));
  row("Domain.iovaToPhys", `iova ${name}`, "EINVAL", (w) => w.d.iovaToPhys(v));
  row(
    "Domain.mapPages",
    `frame ${name}`,
    "EINVAL",
    (w) => w.d.mapPages(0x200_0000, [0x4b00_0000, v], RW),
  );
  row(
    "Domain.attach",
    `stream ID ${name}`,
    "EINVAL",
    (w) => w.g.attach(w.smmu, [v]),
  );
  row(
    "Port.write",
    `DMA address ${name}`,
    "EINVAL",
    (w) => w.dev.port().write(v, new Uint8Array(4)),
  );
  row(
    "Port.read",
    `DMA address ${name}`,
    "EINVAL",
    (w) => w.dev.port().read(v, new Uint8Array(4)),
  );
  row(
    "FrameAllocator.alloc",
    `bytes ${name}`,
    "EINVAL",
    (w) => w.soc.memory.frames.alloc(v),
  );
  row(
    "DmaMapper.allocCoherent",
    `size ${name}`,
    "EINVAL",
    (w) => w.dma.allocCoherent(v),
  );
}
row(
  "Domain.map",
  "size 0",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 0, RW),
);
row(
  "Domain.map",
  "iova string '0x1000'",
  "EINVAL",
  (w) => w.d.map(any("0x1000"), 0x4b00_0000, 4096, RW),
);
row(
  "Domain.map",
  "size wraps past 2^53",
  "ERANGE",
  (w) => w.d.map(4096, 0x4b00_0000, 2 ** 53 - 4096, RW),
);
row(
  "Domain.map",
  "unaligned iova 0x200_0800",
  "EINVAL",
  (w) => w.d.map(0x200_0800, 0x4b00_0000, 4096, RW),
);
row(
  "Domain.map",
  "unaligned size 100",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 100, RW),
);
row(
  "Domain.map",
  "unaligned pa",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0010, 4096, RW),
);
row(
  "Domain.map",
  "range past the 32-bit aperture",
  "ERANGE",
  (w) => w.d.map(0xffff_f000, 0x4b00_0000, 8192, RW),
);
row(
  "Domain.map",
  "iova at 2^32 (outside aperture)",
  "ERANGE",
  (w) => w.d.map(2 ** 32, 0x4b00_0000, 4096, RW),
);
row(
  "Domain.map",
  "pa beyond the 32-bit output range",
  "ERANGE",
  (w) => w.d.map(0x200_0000, 2 ** 32, 4096, RW),
);
row(
  "Domain.map",
  "overlaps a 4 MiB block",
  "EEXIST",
  (w) => w.d.map(0x50_0000, 0x4b00_0000, 4096, RW),
);
row(
  "Domain.map",
  "ends on a mapped page",
  "EEXIST",
  (w) => w.d.map(0xff_e000, 0x4b00_0000, 3 * 4096, RW),
);
row(
  "Domain.map",
  "prot 0 (neither read nor write)",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 4096, 0),
);
row(
  "Domain.map",
  "prot 64 (unknown bit)",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 4096, 64),
);
row(
  "Domain.map",
  "prot -1",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 4096, -1),
);
row(
  "Domain.map",
  "prot 2^32+1",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 4096, 2 ** 32 + 1),
);
row(
  "Domain.map",
  "prot 1.5",
  "EINVAL",
  (w) => w.d.map(0x200_0000, 0x4b00_0000, 4096, 1.5),
);
row(
  "Domain.map",
  "freed domain",
  "EPERM",
  (w) => w.freed.map(0x200_0000, 0x4b00_0000, 4096, RW),
);
row(
  "Domain.mapPages",
  "empty frame list",
  "EINVAL",
  (w) => w.d.mapPages(0x200_0000, [], RW),
);
row(
  "Domain.mapPages",
  "unaligned frame",
  "EINVAL",
  (w) => w.d.mapPages(0x200_0000, [0x4b00_0000, 0x4b00_0100], RW),
);
row(
  "Domain.mapPages",
  "unsupported page size 8192",
  "EINVAL",
  (w) => w.d.mapPages(0x200_0000, [0x4b00_0000], RW, 8192),
);
row(
  "Domain.mapPages",
  "iova unaligned to the page size",
  "EINVAL",
  (w) => w.d.mapPages(0x200_0000 + 4096, [0x4c00_0000], RW, 4 * MB),
);
row(
  "Domain.mapPages",
  "last frame overlaps a mapping",
  "EEXIST",
  (w) => w.d.mapPages(0xff_e000, [0x4b00_0000, 0x4b00_1000, 0x4b00_2000], RW),
);
row(
  "Domain.mapPages",
  "freed domain",
  "EPERM",
  (w) => w.freed.mapPages(0x200_0000, [0x4b00_0000], RW),
);
row(
  "Domain.mapSg",
  "empty list",
  "EINVAL",
  (w) => w.d.mapSg(0x200_0000, [], RW),
);
row(
  "Domain.mapSg",
  "segment length 0",
  "EINVAL",
  (w) =>
    w.d.mapSg(0x200_0000, [{ pa: 0x4b00_0000, length: 4096 }, {
      pa: 0x4c00_0000,
      length: 0,
    }], RW),
);
row(
  "Domain.mapSg",
  "segment length NaN",
  "EINVAL",
  (w) => w.d.mapSg(0x200_0000, [{ pa: 0x4b00_0000, length: NaN }], RW),
);
row(
  "Domain.mapSg",
  "unaligned segment pa",
  "EINVAL",
  (w) => w.d.mapSg(0x200_0000, [{ pa: 0x4b00_0004, length: 4096 }], RW),
);
row(
  "Domain.mapSg",
  "unaligned segment length",
  "EINVAL",
  (w) => w.d.mapSg(0x200_0000, [{ pa: 0x4b00_0000, length: 100 }], RW),
);
row("Domain.unmap", "size 0", "EINVAL", (w) => w.d.unmap(0x40_0000, 0));
row(
  "Domain.unmap",
  "unaligned iova",
  "EINVAL",
  (w) => w.d.unmap(0x40_0010, 4096),
);
row(
  "Domain.unmap",
  "unaligned size",
  "EINVAL",
  (w) => w.d.unmap(0x40_0000, 10),
);
row(
  "Domain.unmap",
  "first 4 KiB of a 4 MiB block (partial)",
  "EINVAL",
  (w) => w.d.unmap(0x40_0000, 4096),
);
row(
  "Domain.unmap",
  "last 4 KiB of a 4 MiB block (partial)",
  "EINVAL",
  (w) => w.d.unmap(0x7f_f000, 4096),
);
row(
  "Domain.unmap",
  "range past the aperture",
  "ERANGE",
  (w) => w.d.unmap(0xffff_f000, 8192),
);
row(
  "Domain.unmap",
  "freed domain",
  "EPERM",
  (w) => w.freed.unmap(0x40_0000, 4096),
);
row(
  "Domain.unmapNoSync",
  "partial unmap of a 2 MiB block (generic)",
  "EINVAL",
  (w) => w.g.unmapNoSync(0x20_0000 + 4096, 4096, new IotlbGather()),
);
row("Domain.iovaToPhys", "freed domain", "EPERM", (w) => w.freed.iovaToPhys(0));
row(
  "Domain.attach",
  "stream IDs on a per-device unit",
  "EINVAL",
  (w) => w.d.attach(w.flat, [1]),
);
row(
  "Domain.attach",
  "no stream ID on a central unit",
  "EINVAL",
  (w) => w.g.attach(w.smmu, []),
);
row(
  "Domain.attach",
  "stream ID beyond the unit's 256",
  "ERANGE",
  (w) => w.g.attach(w.smmu, [256]),
);
row(
  "Domain.attach",
  "unit of another plugin",
  "EINVAL",
  (w) => w.d.attach(w.sysmmu),
);
row("Domain.attach", "freed domain", "EPERM", (w) => w.freed.attach(w.flat2));
row(
  "Domain.detach",
  "unit it is not attached to",
  "ENOENT",
  (w) => w.d.detach(w.flat2),
);
row(
  "Domain.detach",
  "stream it is not attached to",
  "ENOENT",
  (w) => w.g.detach(w.smmu, [4]),
);
row("Domain.detach", "freed domain", "EPERM", (w) => w.freed.detach(w.flat));
row("Domain.free", "still attached", "EBUSY", (w) => w.d.free());
row("Domain.free", "freed twice", "EPERM", (w) => w.freed.free());
row("Domain.leaves", "freed domain", "EPERM", (w) => w.freed.leaves());
row("Domain.flushAll", "freed domain", "EPERM", (w) => w.freed.flushAll());

// ---------------------------------------------------------------- Soc, bus
row(
  "Soc.use",
  "plugin name registered twice",
  "EEXIST",
  (w) => w.soc.use(flatIommu()),
);
row(
  "Soc.probeUnit",
  "unknown compatible",
  "ENODEV",
  (w) => w.soc.probeUnit({ name: "x", compatible: ["acme,none"] }),
);
row(
  "Soc.probeUnit",
  "unit name taken",
  "EEXIST",
  (w) => w.soc.probeUnit({ name: "flat", compatible: ["iommukit,flat-iommu"] }),
);
row(
  "Soc.createDomain",
  "page size the unit lacks",
  "EINVAL",
  (w) => w.soc.createDomain(w.flat, { pageSizes: [8192] }),
);
row(
  "Soc.createDomain",
  "empty page-size list",
  "EINVAL",
  (w) => w.soc.createDomain(w.flat, { pageSizes: [] }),
);
row("Soc.unit", "unknown name", "ENOENT", (w) => w.soc.unit("nope"));
row("Soc.master", "unknown name", "ENOENT", (w) => w.soc.master("nope"));
row(
  "Soc.addMaster",
  "name taken",
  "EEXIST",
  (w) => w.soc.addMaster({ name: "dev", ports: [{}] }),
);
row(
  "Soc.addMaster",
  "no ports",
  "EINVAL",
  (w) => w.soc.addMaster({ name: "m", ports: [] }),
);
row(
  "Soc.addMaster",
  "dmaBits 8",
  "EINVAL",
  (w) => w.soc.addMaster({ name: "m", dmaBits: 8, ports: [{}] }),
);
row(
  "Soc.addMaster",
  "dmaBits 32.5",
  "EINVAL",
  (w) => w.soc.addMaster({ name: "m", dmaBits: 32.5, ports: [{}] }),
);
row(
  "Soc.addMaster",
  "central port without stream ID",
  "EINVAL",
  (w) => w.soc.addMaster({ name: "m", ports: [{ unit: w.smmu }] }),
);
row(
  "Soc.addMaster",
  "stream ID beyond the unit",
  "ERANGE",
  (w) =>
    w.soc.addMaster({ name: "m", ports: [{ unit: w.smmu, streamIds: [999] }] }),
);
row(
  "Soc.addMaster",
  "stream IDs on a per-device port",
  "EINVAL",
  (w) =>
    w.soc.addMaster({ name: "m", ports: [{ unit: w.flat, streamIds: [1] }] }),
);
row(
  "Soc.addMaster",
  "duplicate port names",
  "EINVAL",
  (w) => w.soc.addMaster({ name: "m", ports: [{ name: "a" }, { name: "a" }] }),
);
row(
  "Soc.addMaster",
  "a per-device unit that serves another master",
  "EBUSY",
  (w) => w.soc.addMaster({ name: "m", ports: [{ unit: w.sysmmu }] }),
);
row(
  "Soc.addMaster",
  "a direct port, then a per-device unit that serves another master",
  "EBUSY",
  (w) => w.soc.addMaster({ name: "m", ports: [{}, { unit: w.flat }] }),
);
row(
  "Port.write",
  "a Uint16Array",
  "EINVAL",
  (w) => w.dev.port().write(0x40_0000, any(new Uint16Array([0x1234]))),
);
row(
  "Port.write",
  'the string "AB"',
  "EINVAL",
  (w) => w.dev.port().write(0x40_0000, any("AB")),
);
row(
  "Port.read",
  "a Uint16Array",
  "EINVAL",
  (w) => w.dev.port().read(0x40_0000, any(new Uint16Array(2))),
);
row(
  "Port.read",
  "a plain array",
  "EINVAL",
  (w) => w.dev.port().read(0x40_0000, any([0, 0, 0, 0])),
);
row("Master.port", "unknown port", "ENOENT", (w) => w.dev.port("nope"));
row(
  "Port.write",
  "empty data",
  "EINVAL",
  (w) => w.dev.port().write(0x40_0000, new Uint8Array(0)),
);
row(
  "Port.write",
  "above the 32-bit DMA mask",
  "ERANGE",
  (w) => w.dev.port().write(0xffff_fffe, new Uint8Array(4)),
);
row(
  "Port.writeBytes",
  "unmapped IOVA (fault)",
  "EFAULT",
  (w) => w.dev.port().writeBytes(0x300_0000, new Uint8Array(4)),
);
row(
  "Port.writeBytes",
  "read-only page (fault)",
  "EFAULT",
  (w) => w.dev.port().writeBytes(0x100_0000, new Uint8Array(4)),
);
row(
  "Port.readBytes",
  "crosses into an unmapped page (fault)",
  "EFAULT",
  (w) => w.dev.port().readBytes(0x100_1ff0, 32),
);

// ---------------------------------------------------------------- memory
row(
  "PhysicalMemory",
  "size not a 64 KiB multiple",
  "EINVAL",
  () => new PhysicalMemory({ size: 1000 }),
);
row(
  "PhysicalMemory",
  "size 0",
  "EINVAL",
  () => new PhysicalMemory({ size: 0 }),
);
row(
  "PhysicalMemory",
  "ends beyond 2^48",
  "ERANGE",
  () => new PhysicalMemory({ base: 2 ** 48, size: 65536 }),
);
row(
  "PhysicalMemory.read32",
  "address 0x4000_0000n (a bigint)",
  "EINVAL",
  (w) => w.soc.memory.read32(any(0x4000_0000n)),
);
row(
  "PhysicalMemory.write32",
  "address 0x4f00_0000n (a bigint)",
  "EINVAL",
  (w) => w.soc.memory.write32(any(0x4f00_0000n), 1),
);
row(
  "PhysicalMemory.read32",
  "outside RAM",
  "ERANGE",
  (w) => w.soc.memory.read32(0x1000),
);
row(
  "PhysicalMemory.writeBytes",
  "runs past the end of RAM",
  "ERANGE",
  (w) => w.soc.memory.writeBytes(0x4fff_fffe, new Uint8Array(4)),
);
row(
  "PhysicalMemory.view32",
  "crosses a 64 KiB boundary",
  "EINVAL",
  (w) => w.soc.memory.view32(0x4000_f000, 8192),
);
row(
  "FrameAllocator.alloc",
  "more than RAM",
  "ENOMEM",
  (w) => w.soc.memory.frames.alloc(512 * MB),
);
row(
  "FrameAllocator.free",
  "never allocated",
  "ENOENT",
  (w) => w.soc.memory.frames.free(0x4f00_0000),
);
row("FrameAllocator.free", "double free", "ENOENT", (w) => {
  // A block freed inside the row: its double free must change nothing more.
  const f = w.soc.memory.frames;
  const b = f.alloc(4096);
  f.free(b);
  return snapshotThen(w, () => f.free(b));
});
row(
  "FrameAllocator.failNth",
  "-1",
  "EINVAL",
  (w) => w.soc.memory.frames.failNth(-1),
);
row(
  "FrameAllocator.reserve",
  "range outside RAM",
  "ERANGE",
  (w) => w.soc.memory.frames.reserve(0x3fff_f000, 0x2000),
);
row("FrameAllocator.reserve", "range over a live block", "EBUSY", (w) => {
  // A block allocated inside the row: the refused reserve must leave it live.
  const f = w.soc.memory.frames;
  const b = f.alloc(4096);
  return snapshotThen(w, () => f.reserve(b + 1024, 1));
});
row(
  "FrameAllocator",
  "base not 1 KiB aligned",
  "EINVAL",
  () => new FrameAllocator(100, 4096),
);

// ---------------------------------------------------------------- DMA
row(
  "DmaMapper.mapSingle",
  "direction 7",
  "EINVAL",
  (w) => w.dma.mapSingle(w.buf, 7 as DmaDirection),
);
row(
  "DmaMapper.mapSingle",
  "direction DMA_NONE",
  "EINVAL",
  (w) => w.dma.mapSingle(w.buf, DMA_NONE),
);
row(
  "DmaMapper.mapSingle",
  "buffer null",
  "EINVAL",
  (w) => w.dma.mapSingle(null as never, DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSingle",
  "attributes null",
  "EINVAL",
  (w) => w.dma.mapSingle(w.buf, DMA_TO_DEVICE, null as never),
);
row(
  "DmaMapper.mapSingle",
  "freed buffer (use after free)",
  "EINVAL",
  (w) => w.dma.mapSingle(w.freedBuf, DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSingle",
  "removed mapper (use after free)",
  "EPERM",
  (w) => w.removed.mapSingle(w.buf, DMA_TO_DEVICE),
);
row(
  "DmaMapper.unmapSingle",
  "address never mapped",
  "ENOENT",
  (w) => w.dma.unmapSingle(0x1234_5000, 4096, DMA_TO_DEVICE),
);
row(
  "DmaMapper.unmapSingle",
  "wrong size",
  "EINVAL",
  (w) => w.dma.unmapSingle(w.addr, 4096, DMA_TO_DEVICE),
);
row(
  "DmaMapper.unmapSingle",
  "wrong direction",
  "EINVAL",
  (w) => w.dma.unmapSingle(w.addr, 8192, DMA_FROM_DEVICE),
);
row(
  "DmaMapper.unmapSingle",
  "attributes null",
  "EINVAL",
  (w) => w.dma.unmapSingle(w.addr, 8192, DMA_TO_DEVICE, null as never),
);
row("DmaMapper.unmapSingle", "double unmap", "ENOENT", (w) => {
  w.dma.unmapSingle(w.addr, 8192, DMA_TO_DEVICE);
  return snapshotThen(w, () => w.dma.unmapSingle(w.addr, 8192, DMA_TO_DEVICE));
});
row(
  "DmaMapper.unmapSingle",
  "size NaN",
  "EINVAL",
  (w) => w.dma.unmapSingle(w.addr, NaN, DMA_TO_DEVICE),
);
row(
  "DmaMapper.syncForCpu",
  "address never mapped",
  "ENOENT",
  (w) => w.dma.syncForCpu(0x1234_5000, 4096, DMA_TO_DEVICE),
);
row(
  "DmaMapper.syncForCpu",
  "beyond the mapping",
  "ERANGE",
  (w) => w.dma.syncForCpu(w.addr, 3 * 4096, DMA_TO_DEVICE),
);
row(
  "DmaMapper.syncForDevice",
  "wrong direction",
  "EINVAL",
  (w) => w.dma.syncForDevice(w.addr, 4096, DMA_BIDIRECTIONAL),
);
row(
  "DmaMapper.mapSg",
  "empty list",
  "EINVAL",
  (w) => w.dma.mapSg([], DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSg",
  "entry length 0",
  "EINVAL",
  (w) => w.dma.mapSg([{ pa: w.buf.pa, length: 0 }], DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSg",
  "entry outside RAM",
  "ERANGE",
  (w) => w.dma.mapSg([{ pa: 0x1000, length: 4096 }], DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSg",
  "segment longer than max segment size",
  "EINVAL",
  (w) => w.dma.mapSg([{ pa: 0x4c00_0000, length: 256 * 1024 }], DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSg",
  "list null",
  "EINVAL",
  (w) => w.dma.mapSg(null as never, DMA_TO_DEVICE),
);
row(
  "DmaMapper.mapSg",
  "entry null",
  "EINVAL",
  (w) =>
    w.dma.mapSg(
      [{ pa: w.buf.pa, length: 4096 }, null as never],
      DMA_TO_DEVICE,
    ),
);
row(
  "DmaMapper.mapSg",
  "attributes null",
  "EINVAL",
  (w) =>
    w.dma.mapSg([{ pa: w.buf.pa, length: 4096 }], DMA_TO_DEVICE, null as never),
);
row(
  "DmaMapper.unmapSg",
  "attributes null",
  "EINVAL",
  (w) => {
    const sg = w.dma.mapSg([{ pa: w.buf.pa, length: 4096 }], DMA_TO_DEVICE);
    return snapshotThen(
      w,
      () => w.dma.unmapSg(sg, DMA_TO_DEVICE, null as never),
    );
  },
);
row(
  "DmaMapper.allocCoherent",
  "size 0",
  "EINVAL",
  (w) => w.dma.allocCoherent(0),
);
row(
  "DmaMapper.allocCoherent",
  "more than RAM",
  "ENOMEM",
  (w) => w.dma.allocCoherent(512 * MB),
);
row("DmaMapper.freeCoherent", "double free", "ENOENT", (w) => {
  const c = w.dma.allocCoherent(4096);
  w.dma.freeCoherent(c);
  return snapshotThen(w, () => w.dma.freeCoherent(c));
});
row("DmaMapper.advanceTime", "-1 ms", "EINVAL", (w) => w.dma.advanceTime(-1));
row(
  "DmaMapper.removeMaster",
  "live mappings (leak report)",
  "EBUSY",
  (w) => w.dma.removeMaster(),
);
row(
  "DmaMapper.removeMaster",
  "options null",
  "EINVAL",
  (w) => w.dma.removeMaster(null as never),
);
row(
  "DmaMapper.removeMaster",
  "removed twice",
  "EPERM",
  (w) => w.removed.removeMaster(),
);
row(
  "createDmaMapper",
  "master already has one",
  "EBUSY",
  (w) => createDmaMapper(w.soc, w.soc.master("ddev")),
);
row(
  "createDmaMapper",
  "maxSegmentSize 0",
  "EINVAL",
  (w) => createDmaMapper(w.soc, w.dev, { maxSegmentSize: 0 }),
);
row(
  "createDmaMapper",
  "debug ignore 5 (not a list)",
  "EINVAL",
  (w) => createDmaMapper(w.soc, w.dev, { debug: { ignore: 5 as never } }),
);
row(
  "createDmaMapper",
  'debug ignore ["lek"] (not a report kind)',
  "EINVAL",
  (w) => createDmaMapper(w.soc, w.dev, { debug: { ignore: ["lek" as never] } }),
);
row(
  "createDmaMapper",
  "segmentBoundary 3",
  "EINVAL",
  (w) => createDmaMapper(w.soc, w.dev, { segmentBoundary: 3 }),
);
row(
  "DmaBuffer.free",
  "freed twice (use after free)",
  "EPERM",
  (w) => w.freedBuf.free(),
);
row(
  "CpuCache.allocBuffer",
  "size 0",
  "EINVAL",
  (w) => w.dma.cpu.allocBuffer(0),
);
row(
  "IovaAllocator",
  "options undefined",
  "EINVAL",
  () => new IovaAllocator(undefined as never),
);
row(
  "IovaAllocator",
  "reserved range null",
  "EINVAL",
  () => new IovaAllocator({ end: 2 ** 32, reserved: [null as never] }),
);
row(
  "IovaAllocator",
  "granule 3",
  "EINVAL",
  () => new IovaAllocator({ granule: 3, end: 2 ** 32 }),
);
row(
  "IovaAllocator",
  "end beyond 2^53",
  "ERANGE",
  () => new IovaAllocator({ end: 2 ** 60 }),
);
row(
  "IovaAllocator.alloc",
  "size 0",
  "EINVAL",
  () => new IovaAllocator({ end: 2 ** 32 }).alloc(0),
);
row(
  "IovaAllocator.alloc",
  "larger than the whole space",
  "ERANGE",
  () => new IovaAllocator({ end: 2 ** 20 }).alloc(2 ** 21),
);
row("IovaAllocator.alloc", "space exhausted", "ENOMEM", () => {
  const a = new IovaAllocator({ end: 2 ** 20 });
  a.alloc(2 ** 19);
  const before = JSON.stringify(a.stats());
  try {
    return a.alloc(2 ** 19);
  } finally {
    assertEquals(
      JSON.stringify({ ...a.stats(), allocFailures: 0, allocs: 0 }),
      JSON.stringify({ ...JSON.parse(before), allocFailures: 0, allocs: 0 }),
    );
  }
});

// A warm allocator whose 8 KiB class has a cached range (the rcache fast
// path), and a check that a refused call leaves its stats and audit as they were.
function iovaUnchanged(fn: (a: IovaAllocator) => unknown): unknown {
  const a = new IovaAllocator({ end: 2 ** 32 });
  a.free(a.alloc(8192), 8192);
  a.alloc(8192);
  a.free(a.alloc(8192), 8192);
  const before = JSON.stringify([a.stats(), a.audit()]);
  try {
    return fn(a);
  } finally {
    assertEquals(JSON.stringify([a.stats(), a.audit()]), before);
  }
}
for (
  const [name, v] of [["8192n (a bigint)", 8192n], ["null", null]] as const
) {
  row(
    "IovaAllocator.alloc",
    `size ${name}, with a cached range of the class`,
    "EINVAL",
    () => iovaUnchanged((a) => a.alloc(any(v))),
  );
  row(
    "IovaAllocator.alloc",
    `limit ${name}`,
    "EINVAL",
    () => iovaUnchanged((a) => a.alloc(8192, any(v))),
  );
  row(
    "IovaAllocator.free",
    `size ${name}`,
    "EINVAL",
    () => iovaUnchanged((a) => a.free(2 ** 32 - 8192, any(v))),
  );
  row(
    "IovaAllocator.reserve",
    `start ${name}`,
    "EINVAL",
    () => iovaUnchanged((a) => a.reserve(any(v), 4096)),
  );
  row(
    "IovaAllocator.find",
    `iova ${name}`,
    "EINVAL",
    () => iovaUnchanged((a) => a.find(any(v))),
  );
}

// ---------------------------------------------------------------- plugins
row(
  "samsungSysmmu probe",
  "a v5 unit beside a v3.3 one (two table formats)",
  "EINVAL",
  (w) =>
    w.soc.probeUnit({
      name: "s2",
      compatible: ["samsung,exynos-sysmmu"],
      props: { "iommukit,sysmmu-version": 0x50000000 },
    }),
);
row(
  "genericIommu probe",
  "streamIds 100 (not a power of two)",
  "EINVAL",
  () =>
    createSoc({ memory: { size: 16 * MB } }).use(
      genericIommu({ streamIds: 100 }),
    ).probeUnit({ name: "s", compatible: ["iommukit,generic-iommu"] }),
);
row(
  "genericIommu probe",
  "inputBits 60",
  "EINVAL",
  () =>
    createSoc({ memory: { size: 16 * MB } }).use(
      genericIommu({ inputBits: 60 }),
    ).probeUnit({ name: "s", compatible: ["iommukit,generic-iommu"] }),
);
row(
  "setStreamBypass",
  "stream ID beyond the unit",
  "ERANGE",
  (w) => setStreamBypass(w.smmu, 4096),
);
row(
  "setStreamBypass",
  "unit of another plugin",
  "EINVAL",
  (w) => setStreamBypass(w.flat, 1),
);
row(
  "Domain.setFaultHandler",
  "a number instead of a function",
  "EINVAL",
  // deno-lint-ignore no-explicit-any
  (w) => w.g.setFaultHandler(42 as any),
);
row(
  "Domain.sync",
  "a live page-table root in the gather's free list, then NaN",
  "EINVAL",
  (w) => {
    const gather = new IotlbGather();
    gather.add(0x20_0000, 4096);
    gather.freeList.push(w.g.ops.rootTable, NaN);
    w.g.sync(gather);
  },
);
row(
  "Domain.sync",
  "the same page twice in the gather's free list",
  "EINVAL",
  (w) => {
    const gather = new IotlbGather();
    gather.freeList.push(w.g.ops.rootTable, w.g.ops.rootTable);
    w.g.sync(gather);
  },
);
row(
  "Domain.sync",
  "the domain's live root table in the caller's own gather (was freed)",
  "EINVAL",
  (w) => {
    const gather = new IotlbGather();
    gather.add(0x20_0000, 4096);
    gather.deferFree(w.g.ops.rootTable);
    w.g.sync(gather);
  },
);
row(
  "Domain.sync",
  "another domain's live root table",
  "EINVAL",
  (w) => {
    const gather = new IotlbGather();
    gather.deferFree(w.s.ops.rootTable);
    w.g.sync(gather);
  },
);
row(
  "Domain.flushAll",
  "a gather holding a live root table",
  "EINVAL",
  (w) => {
    const gather = new IotlbGather();
    gather.deferFree(w.d.ops.rootTable);
    w.d.flushAll(gather);
  },
);
row(
  "Domain.sync",
  "not a gather",
  "EINVAL",
  // deno-lint-ignore no-explicit-any
  (w) => w.g.sync(5 as any),
);
row("IotlbGather.add", "NaN IOVA", "EINVAL", () => {
  new IotlbGather().add(NaN, 4096);
});
row("IotlbGather.add", "fractional count", "EINVAL", () => {
  new IotlbGather().add(0, 4096, 0.5);
});
row("IotlbGather.deferFree", "-1", "EINVAL", () => {
  new IotlbGather().deferFree(-1);
});
row("MapPlan", "-1 runs", "EINVAL", () => new MapPlan(-1));
row("MapPlan", "NaN runs", "EINVAL", () => new MapPlan(NaN));
row(
  "MapPlan.reserve",
  "2^40 runs",
  "ERANGE",
  () => new MapPlan(4).reserve(2 ** 40),
);
for (const at of [0, 1, 2, 3]) {
  row(
    "MapPlan.push",
    `argument ${at} 4096n (a bigint)`,
    "EINVAL",
    () => {
      const p = new MapPlan(4);
      p.push(0x1000, 0x4000_0000, 4096, 1);
      const args = [0x2000, 0x4000_1000, 4096, 1];
      args[at] = any(4096n);
      try {
        return p.push(args[0]!, args[1]!, args[2]!, args[3]!);
      } finally {
        assertEquals(
          [p.count, p.iova[0], p.pa[0], p.pageSize[0], p.pages[0]],
          [1, 0x1000, 0x4000_0000, 4096, 1],
        );
      }
    },
  );
}
row("MapPlan.setUniform", "more pages than addresses", "EINVAL", () => {
  new MapPlan(4).setUniform(0, 4096, new Float64Array(2), 5);
});
row(
  "IommuHardware.writeRegister",
  "NaN value (samsung-sysmmu)",
  "EINVAL",
  (w) => w.sysmmu.hardware.writeRegister(0, NaN),
);
row(
  "IommuHardware.writeRegister",
  "2^32 + 1 (generic-iommu)",
  "EINVAL",
  (w) => w.smmu.hardware.writeRegister(0, 2 ** 32 + 1),
);
// A warm cache whose counters and cached line must not move.
function flpdUnchanged(
  fn: (c: FlpdCache, l1: Uint32Array) => unknown,
): unknown {
  const c = new FlpdCache(16);
  const l1 = new Uint32Array(4096).fill(0x100002);
  c.read(0x1000, 3, l1, true);
  const before = JSON.stringify(c.counters());
  try {
    return fn(c, l1);
  } finally {
    assertEquals(JSON.stringify(c.counters()), before);
    assertEquals(c.lookup(0x1000, 3), 0x100002); // still cached
  }
}
for (const prefetch of [true, false]) {
  row(
    "FlpdCache.read",
    `slot 3n (a bigint, cached), prefetch ${prefetch}`,
    "EINVAL",
    () => flpdUnchanged((c, l1) => c.read(0x1000, any(3n), l1, prefetch)),
  );
  row(
    "FlpdCache.read",
    `null level-1 table on a miss, prefetch ${prefetch}`,
    "EINVAL",
    () => flpdUnchanged((c) => c.read(0x1000, 40, any(null), prefetch)),
  );
}
row(
  "FlpdCache.lookup",
  "slot 3n (a bigint, cached)",
  "EINVAL",
  () => flpdUnchanged((c) => c.lookup(0x1000, any(3n))),
);
row("FlpdCache.read", "slot -1", "EINVAL", () => {
  new FlpdCache(16).read(0x1000, -1, new Uint32Array(4096), true);
});
row("FlpdCache.fill", "NaN table base (cached under NaN)", "EINVAL", () => {
  new FlpdCache(16).fill(NaN, 3, 0x1001);
});
row("FlpdCache.fill", "NaN descriptor (cached as 0)", "EINVAL", () => {
  new FlpdCache(16).fill(0x4000, 3, NaN);
});
row(
  "FlpdCache.invalidateSlots",
  "slots 5..2 (silently nothing)",
  "EINVAL",
  () => new FlpdCache(16).invalidateSlots(5, 2),
);
row("FlpdCache.fillRun", "past the level-1 table", "EINVAL", () => {
  new FlpdCache(16).fillRun(0x1000, 4090, 16, new Uint32Array(4096));
});
for (
  const [input, kind, count] of [
    ["2^53 leaves (ran 23 s, then a RangeError)", "EINVAL", 2 ** 53],
    ["Infinity leaves (hung)", "EINVAL", Infinity],
    ["2^40 leaves of 4 KiB (past 48 bits)", "ERANGE", 2 ** 40],
  ] as [string, IommuErrorKind, number][]
) {
  row("LpaePageTable.mapRange", input, kind, () => {
    const ram = new PhysicalMemory({ base: 0, size: 16 * MB });
    new LpaePageTable(ram, { inputBits: 48, outputBits: 48, stage: 1 })
      .mapRange(0x1000, 0x1000, 4096, count, RW);
  });
}
// Drivers' map trusts no plan: `domain.ops` is public.
function plan(...runs: [number, number, number, number][]): MapPlan {
  const p = new MapPlan(4);
  for (const [iova, pa, size, pages] of runs) p.push(iova, pa, size, pages);
  return p;
}
for (
  const [input, kind, runs] of [
    ["NaN physical address (mapped PA 0)", "EINVAL", [[
      0x200_0000,
      NaN,
      4096,
      1,
    ]]],
    ["IOVA -4096 (wrapped)", "EINVAL", [[-4096, 0x4b00_0000, 4096, 1]]],
    ["page size 3000 (mapped a 1 MiB section)", "EINVAL", [[
      0x200_0000,
      0x4b00_0000,
      3000,
      1,
    ]]],
    ["IOVA 2^53", "EINVAL", [[2 ** 53, 0x4b00_0000, 4096, 1]]],
    ["0.5 pages", "EINVAL", [[0x200_0000, 0x4b00_0000, 4096, 0.5]]],
    ["run ending past 4 GiB of IOVA", "ERANGE", [[
      0xfff0_0000,
      0x4b00_0000,
      MB,
      2,
    ]]],
    ["physical address past 32 bits", "ERANGE", [[
      0x200_0000,
      2 ** 32,
      4096,
      1,
    ]]],
    ["two runs on one page", "EINVAL", [[0x200_0000, 0x4b00_0000, 4096, 1], [
      0x200_0000,
      0x4b00_1000,
      4096,
      1,
    ]]],
  ] as [string, IommuErrorKind, [number, number, number, number][]][]
) {
  row("SysmmuDomain.map (samsung ops)", input, kind, (w) => {
    w.s.ops.map(plan(...runs), RW);
  });
}
row(
  "SysmmuDomain.map (samsung ops)",
  "uniform plan with a NaN frame",
  "EINVAL",
  (w) => {
    const p = new MapPlan(4);
    p.setUniform(0x200_0000, 4096, new Float64Array([0x4b00_0000, NaN]), 2);
    w.s.ops.map(p, RW);
  },
);
row("SysmmuDomain.map (samsung ops)", "run count -1", "EINVAL", (w) => {
  const p = plan([0x200_0000, 0x4b00_0000, 4096, 1]);
  p.count = -1;
  w.s.ops.map(p, RW);
});
for (
  const [input, kind, runs] of [
    ["NaN physical address", "EINVAL", [[0x400_0000, NaN, 4096, 1]]],
    ["IOVA -4096", "EINVAL", [[-4096, 0x4b00_0000, 4096, 1]]],
    ["page size 64 KiB (not an LPAE size)", "EINVAL", [[
      0x400_0000,
      0x4b00_0000,
      0x10000,
      1,
    ]]],
    ["misaligned 2 MiB block", "EINVAL", [[
      0x400_1000,
      0x4b00_0000,
      2 * MB,
      1,
    ]]],
    ["IOVA past 48 bits", "ERANGE", [[2 ** 48, 0x4b00_0000, 4096, 1]]],
    ["physical address past 48 bits", "ERANGE", [[
      0x400_0000,
      2 ** 48,
      4096,
      1,
    ]]],
  ] as [string, IommuErrorKind, [number, number, number, number][]][]
) {
  row("GenericDomainOps.map", input, kind, (w) => {
    w.g.ops.map(plan(...runs), RW);
  });
}
row(
  "GenericDomainOps.map",
  "uniform plan with a frame of -4096",
  "EINVAL",
  (w) => {
    const p = new MapPlan(4);
    p.setUniform(0x400_0000, 4096, [0x4b00_0000, -4096], 2);
    w.g.ops.map(p, RW);
  },
);
row("LpaePageTable.map", "NaN physical address", "EINVAL", () => {
  const ram = new PhysicalMemory({ base: 0, size: 16 * MB });
  new LpaePageTable(ram, { inputBits: 48, outputBits: 48, stage: 1 })
    .map(plan([0x1000, NaN, 4096, 1]), RW);
});
for (
  const [input, prot] of [
    ["protection 0 (installed a leaf stage 1 read as readable)", 0],
    ["protection 8 (neither READ nor WRITE)", 8],
  ] as [string, number][]
) {
  row("LpaePageTable.mapRange", input, "EINVAL", () => {
    const ram = new PhysicalMemory({ base: 0, size: 16 * MB });
    new LpaePageTable(ram, { inputBits: 48, outputBits: 48, stage: 1 })
      .mapRange(0x1000, 0x1000, 4096, 1, prot);
  });
  row("LpaePageTable.map", input, "EINVAL", () => {
    const ram = new PhysicalMemory({ base: 0, size: 16 * MB });
    new LpaePageTable(ram, { inputBits: 48, outputBits: 48, stage: 1 })
      .map(plan([0x1000, 0x1000, 4096, 1]), prot);
  });
}
row("LpaePageTable", "output size NaN", "EINVAL", () => {
  const ram = new PhysicalMemory({ base: 0, size: 16 * MB });
  new LpaePageTable(ram, { inputBits: 48, outputBits: NaN, stage: 1 });
});
row(
  "SysmmuDomain.attach (samsung ops)",
  "stream ID -1 (was accepted)",
  "EINVAL",
  (w) => w.s.ops.attach(w.sysmmu, [-1]),
);
row(
  "SysmmuDomain.detach (samsung ops)",
  "stream ID 0",
  "EINVAL",
  (w) => w.s.ops.detach(w.sysmmu, [0]),
);
row(
  "GenericIommuDriver.releaseContext",
  "context still bound to stream 3 (was released)",
  "EBUSY",
  (w) => genericDriverOf(w.smmu).releaseContext(w.g.ops.contextId),
);
row(
  "GenericIommuDriver.releaseContext",
  "context not allocated",
  "ENOENT",
  (w) => genericDriverOf(w.smmu).releaseContext(w.g.ops.contextId + 5),
);
for (const [name, v] of [["NaN", NaN], ["4096n", 4096n]] as const) {
  row(
    "GenericIommuDriver.releaseContext",
    `context ${name}`,
    "EINVAL",
    (w) => genericDriverOf(w.smmu).releaseContext(any(v)),
  );
  row(
    "GenericIommuDriver.invalidateContext",
    `context ${name}`,
    "EINVAL",
    (w) => genericDriverOf(w.smmu).invalidateContext(any(v)),
  );
  row(
    "GenericIommuDriver.invalidateRange",
    `start ${name} (issued a command)`,
    "EINVAL",
    (w) =>
      genericDriverOf(w.smmu).invalidateRange(w.g.ops.contextId, any(v), 0xfff),
  );
}
row(
  "GenericIommuDriver.invalidateRange",
  "end below start",
  "EINVAL",
  (w) =>
    genericDriverOf(w.smmu).invalidateRange(w.g.ops.contextId, 0x2000, 0xfff),
);
row(
  "GenericIommuDriver.attachStreams",
  "null unit",
  "EINVAL",
  (w) =>
    genericDriverOf(w.smmu).attachStreams(
      w.g.ops as GenericDomainOps,
      any(null),
      [4],
    ),
);
row(
  "SysmmuDriver.attach",
  "undefined unit",
  "EINVAL",
  (w) => w.s.ops.attach(any(undefined), []),
);
// The samsung driver's own entry points: the world snapshot does not see
// its counters or the unit's control register, so these rows check them.
function sysmmuUnchanged(
  w: World,
  fn: (drv: SysmmuDriver, units: Set<SysmmuUnitState>) => unknown,
): unknown {
  const drv = w.sysmmu.driver as SysmmuDriver;
  const units = (w.s.ops as unknown as { units: Set<SysmmuUnitState> }).units;
  const state = () =>
    JSON.stringify([
      drv.counters(),
      w.sysmmu.hardware.counters(),
      w.sysmmu.hardware.readRegister(0),
      units.size,
    ]);
  const before = state();
  try {
    return fn(drv, units);
  } finally {
    assertEquals(state(), before);
  }
}
for (
  const [name, v] of [
    ["42 (not iterable)", 42],
    ["null", null],
    ["[null]", [null]],
    ["[{} (not a unit state)]", [{}]],
    ["Set {{}} (one element, not a unit state)", new Set([{}])],
  ] as const
) {
  row(
    "SysmmuDriver.invalidateRange",
    `units ${name}`,
    "EINVAL",
    (w) => sysmmuUnchanged(w, (d) => d.invalidateRange(any(v), 0, 0xfff, 4096)),
  );
  row(
    "SysmmuDriver.flushFlpd",
    `units ${name}`,
    "EINVAL",
    (w) =>
      sysmmuUnchanged(w, (d) => d.flushFlpd(any(v), new Int32Array([1]), 1)),
  );
}
for (
  const [name, args] of [
    ["start NaN", [NaN, 0xfff, 4096]],
    ["start 4096n (a bigint)", [4096n, 0x1fff, 4096]],
    ["last below start", [0x2000, 0xfff, 4096]],
    ["last 2^32 (beyond the 32-bit IOVA space)", [0, 2 ** 32, 4096]],
    ["granule 0", [0, 0xfff, 0]],
    ["granule 4096n (a bigint)", [0, 0xfff, 4096n]],
  ] as const
) {
  row(
    "SysmmuDriver.invalidateRange",
    name,
    "EINVAL",
    (w) =>
      sysmmuUnchanged(
        w,
        (d, u) =>
          d.invalidateRange(u, any(args[0]), any(args[1]), any(args[2])),
      ),
  );
}
for (
  const [name, slots, count] of [
    ["slots [1, 2] (not an Int32Array)", [1, 2], 2],
    ["count 2 beyond 1 slot", new Int32Array([1]), 2],
    ["count 1n (a bigint)", new Int32Array([1]), 1n],
    ["slot 4096 (beyond level 1)", new Int32Array([4096]), 1],
  ] as const
) {
  row(
    "SysmmuDriver.flushFlpd",
    name,
    "EINVAL",
    (w) => sysmmuUnchanged(w, (d, u) => d.flushFlpd(u, any(slots), any(count))),
  );
}
for (
  const [name, args] of [
    ["unit null", (w: World) => [null, w.sysmmu.hardware, () => true]],
    [
      "hardware {} (not a SysmmuHardware)",
      (w: World) => [w.sysmmu, {}, () => true],
    ],
    ["fault route 42", (w: World) => [w.sysmmu, w.sysmmu.hardware, 42]],
  ] as const
) {
  row(
    "SysmmuDriver.addUnit",
    name,
    "EINVAL",
    (w) =>
      sysmmuUnchanged(w, (d) => {
        const [u, h, r] = args(w);
        return d.addUnit(any(u), any(h), any(r));
      }),
  );
}
row(
  "SysmmuDriver.addUnit",
  "the same hardware twice",
  "EEXIST",
  (w) =>
    sysmmuUnchanged(
      w,
      (d) => d.addUnit(w.sysmmu, any(w.sysmmu.hardware), () => true),
    ),
);

// RAM stores refuse values they would have wrapped.
const SPARE = 0x4f00_0000; // a RAM page nothing in the world uses
row(
  "PhysicalMemory.write32",
  "value 2^32 (stored 0)",
  "EINVAL",
  (w) => w.soc.memory.write32(SPARE, 0x1_0000_0000),
);
row(
  "PhysicalMemory.write32",
  "value 0.5, unaligned address",
  "EINVAL",
  (w) => w.soc.memory.write32(SPARE + 1, 0.5),
);
row(
  "PhysicalMemory.write32",
  "value 4096n (Cannot mix BigInt)",
  "EINVAL",
  (w) => w.soc.memory.write32(SPARE, any(4096n)),
);
row(
  "PhysicalMemory.write8",
  "value 300 (stored 44)",
  "EINVAL",
  (w) => w.soc.memory.write8(SPARE, 300),
);
row(
  "PhysicalMemory.fill",
  "value NaN (stored 0)",
  "EINVAL",
  (w) => w.soc.memory.fill(SPARE, 16, NaN),
);
row(
  "PhysicalMemory.write64",
  "value -1 as a number (raw TypeError)",
  "EINVAL",
  (w) => w.soc.memory.write64(SPARE, any(-1)),
);
row(
  "PhysicalMemory.write64",
  "value 2^64 + 5n (stored 5)",
  "EINVAL",
  (w) => w.soc.memory.write64(SPARE, 2n ** 64n + 5n),
);
for (
  const [name, v] of [["0 (no permission check)", 0], ["3", 3], ["0.5", 0.5], [
    "NaN",
    NaN,
  ], ["-1", -1]] as const
) {
  row(
    "IommuHardware.translate (samsung-sysmmu)",
    `access ${name}`,
    "EINVAL",
    (w) => w.sysmmu.hardware.translate(0, 0x40_0000, v),
  );
}
for (
  const [name, iova, access] of [
    ["iova 4096n (a bigint)", 4096n, 1],
    ["iova NaN", NaN, 1],
    ["iova -4096", -4096, 1],
    ["access 0", 0x40_0000, 0],
  ] as const
) {
  row(
    "IommuHardware.translate (flat test plugin)",
    name,
    "EINVAL",
    (w) => w.flat.hardware.translate(0, any(iova), access),
  );
}
for (
  const [input, kind, make] of [
    [
      "log2 size NaN",
      "EINVAL",
      (w: World) => [w.soc.memory, w.smmu.hardware, SPARE, NaN],
    ],
    [
      "log2 size 40",
      "EINVAL",
      (w: World) => [w.soc.memory, w.smmu.hardware, SPARE, 40],
    ],
    [
      "base NaN",
      "EINVAL",
      (w: World) => [w.soc.memory, w.smmu.hardware, NaN, 4],
    ],
    [
      "base not aligned to the queue",
      "EINVAL",
      (w: World) => [w.soc.memory, w.smmu.hardware, SPARE + 16, 4],
    ],
    [
      "queue outside RAM",
      "ERANGE",
      (w: World) => [w.soc.memory, w.smmu.hardware, 0x1000, 4],
    ],
    ["null registers", "EINVAL", (w: World) => [w.soc.memory, null, SPARE, 4]],
    ["memory {}", "EINVAL", (w: World) => [{}, w.smmu.hardware, SPARE, 4]],
  ] as [string, IommuErrorKind, (w: World) => unknown[]][]
) {
  row("CommandQueue", input, kind, (w) => {
    const [m, r, b, l] = make(w);
    new CommandQueue(any(m), any(r), any(b), any(l));
  });
  row("EventQueueReader", input, kind, (w) => {
    const [m, r, b, l] = make(w);
    new EventQueueReader(any(m), any(r), any(b), any(l));
  });
}
// Objects expected, something else given: EINVAL, not a raw TypeError.
for (
  const [entry, input, run] of [
    ["Soc.use", "null", (w: World) => w.soc.use(any(null))],
    ["Soc.probeUnit", "null", (w: World) => w.soc.probeUnit(any(null))],
    ["Soc.probeUnit", "-1", (w: World) => w.soc.probeUnit(any(-1))],
    [
      "Soc.probeUnit",
      "{} (no compatible list)",
      (w: World) => w.soc.probeUnit(any({})),
    ],
    [
      "Soc.probeUnit",
      "name 5",
      (w: World) =>
        w.soc.probeUnit(any({ name: 5, compatible: ["iommukit,flat-iommu"] })),
    ],
    [
      "Soc.probeUnit",
      "compatible [5]",
      (w: World) => w.soc.probeUnit(any({ name: "x", compatible: [5] })),
    ],
    [
      "Soc.probeUnit",
      "reg 5 (not a list)",
      (w: World) =>
        w.soc.probeUnit(
          any({ name: "x", compatible: ["iommukit,flat-iommu"], reg: 5 }),
        ),
    ],
    [
      "Soc.probeUnit",
      "reg [{ address: NaN, size: 4096 }]",
      (w: World) =>
        w.soc.probeUnit(any({
          name: "x",
          compatible: ["iommukit,flat-iommu"],
          reg: [{ address: NaN, size: 4096 }],
        })),
    ],
    [
      "Soc.probeUnit",
      "path 5",
      (w: World) =>
        w.soc.probeUnit(
          any({ name: "x", compatible: ["iommukit,flat-iommu"], path: 5 }),
        ),
    ],
    ["Soc.addMaster", "null", (w: World) => w.soc.addMaster(any(null))],
    [
      "Soc.addMaster",
      "a spec without ports",
      (w: World) => w.soc.addMaster(any({ name: "x" })),
    ],
    [
      "Soc.addMaster",
      "a null port",
      (w: World) => w.soc.addMaster(any({ name: "x", ports: [null] })),
    ],
    [
      "Soc.createDomain",
      "null unit",
      (w: World) => w.soc.createDomain(any(null)),
    ],
    [
      "Soc.createDomain",
      "unit 4096",
      (w: World) => w.soc.createDomain(any(4096)),
    ],
    [
      "Soc.createDomain",
      "pageSizes 4096 (not a list)",
      (w: World) => w.soc.createDomain(w.flat, any({ pageSizes: 4096 })),
    ],
    [
      "Soc.addMaster",
      "a port whose unit is {} (not a unit)",
      (w: World) => w.soc.addMaster(any({ name: "x", ports: [{ unit: {} }] })),
    ],
    [
      "Soc.addMaster",
      "streamIds 3 (not a list)",
      (w: World) =>
        w.soc.addMaster(
          any({ name: "x", ports: [{ unit: w.smmu, streamIds: 3 }] }),
        ),
    ],
    ["createSoc", "{} (no memory)", () => createSoc(any({}))],
    ["createSoc", "no options", () => any(createSoc)()],
    [
      "Registry.use",
      "a plugin without compatible",
      (w: World) => w.soc.registry.use(any({ name: "p", probe() {} })),
    ],
    [
      "Registry.use",
      'compatible "acme,iommu" (a string, not a list)',
      (w: World) =>
        w.soc.registry.use(
          any({ name: "p", compatible: "acme,iommu", probe() {} }),
        ),
    ],
    [
      "Registry.use",
      "a plugin without probe",
      (w: World) =>
        w.soc.registry.use(any({ name: "p", compatible: ["acme,iommu"] })),
    ],
    [
      "Registry.use",
      "compatible [7]",
      (w: World) =>
        w.soc.registry.use(any({ name: "p", compatible: [7], probe() {} })),
    ],
    [
      "FaultRouter.report",
      "null",
      (w: World) => w.soc.faults.report(any(null)),
    ],
    [
      "Domain.attach",
      "undefined unit",
      (w: World) => w.g.attach(any(undefined), [4]),
    ],
    [
      "Domain.attach",
      "stream ID list 7",
      (w: World) => w.g.attach(w.smmu, any(7)),
    ],
    [
      "Domain.mapPages",
      "null frame list",
      (w: World) => w.d.mapPages(0x200_0000, any(null), RW),
    ],
    [
      "Domain.mapSg",
      "undefined list",
      (w: World) => w.d.mapSg(0x200_0000, any(undefined), RW),
    ],
    [
      "Domain.mapSg",
      "a null segment",
      (w: World) => w.d.mapSg(0x200_0000, any([null]), RW),
    ],
    [
      "Domain.unmapNoSync",
      "gather 4096",
      (w: World) => w.d.unmapNoSync(0x40_0000, 4096, any(4096)),
    ],
    [
      "Port.write",
      "null data",
      (w: World) => w.dev.port().write(0x40_0000, any(null)),
    ],
    [
      "Port.read",
      "undefined buffer",
      (w: World) => w.dev.port().read(0x40_0000, any(undefined)),
    ],
    [
      "SysmmuDomain.unmapPages (samsung ops)",
      "null gather",
      (w: World) => w.s.ops.unmapPages(0x80_0000, 4096, 1, any(null)),
    ],
    [
      "SysmmuDomain.unmapPages (samsung ops)",
      "IOVA 4096n",
      (w: World) => w.s.ops.unmapPages(any(4096n), 4096, 1, new IotlbGather()),
    ],
    [
      "SysmmuDomain.leafSize (samsung ops)",
      "IOVA NaN (read slot 0)",
      (w: World) => w.s.ops.leafSize(NaN),
    ],
    [
      "SysmmuDomain.iovaToPhys (samsung ops)",
      "IOVA -1 (read slot 4095)",
      (w: World) => w.s.ops.iovaToPhys(-1),
    ],
    [
      "GenericDomainOps.iotlbSync",
      "undefined gather",
      (w: World) => w.g.ops.iotlbSync(any(undefined)),
    ],
    [
      "GenericDomainOps.unmapPages",
      "gather {}",
      (w: World) => w.g.ops.unmapPages(0x20_0000, 4096, 1, any({})),
    ],
    [
      "GenericDomainOps.leafSize",
      "IOVA 4096n",
      (w: World) => w.g.ops.leafSize(any(4096n)),
    ],
  ] as [string, string, (w: World) => unknown][]
) row(entry, input, "EINVAL", run);
for (
  const [entry, input, run] of [
    [
      "DmaMapper.unmapSg",
      "undefined mapping",
      (w: World) => w.dma.unmapSg(any(undefined), DMA_TO_DEVICE),
    ],
    [
      "DmaMapper.syncSgForCpu",
      "null mapping",
      (w: World) => w.dma.syncSgForCpu(any(null), DMA_TO_DEVICE),
    ],
    [
      "DmaMapper.syncSgForDevice",
      "mapping 4096",
      (w: World) => w.dma.syncSgForDevice(any(4096), DMA_TO_DEVICE),
    ],
    [
      "DmaMapper.freeCoherent",
      "null",
      (w: World) => w.dma.freeCoherent(any(null)),
    ],
    [
      "CpuCache.readBuffer",
      "null buffer",
      (w: World) => w.dma.cpu.readBuffer(any(null)),
    ],
    [
      "CpuCache.writeBuffer",
      "undefined data",
      (w: World) => w.dma.cpu.writeBuffer(w.buf, any(undefined)),
    ],
    [
      "CpuCache.write",
      "data 4096",
      (w: World) => w.dma.cpu.write(0x4f00_0000, any(4096)),
    ],
    [
      "CpuCache.lineState",
      "4096n",
      (w: World) => w.dma.cpu.lineState(any(4096n)),
    ],
  ] as [string, string, (w: World) => unknown][]
) row(entry, input, "EINVAL", run);
row(
  "PhysicalMemory.readInto",
  "a string buffer",
  "EINVAL",
  (w) => w.soc.memory.readInto(SPARE, any("4096")),
);
row(
  "PhysicalMemory.writeBytes",
  "null data",
  "EINVAL",
  (w) => w.soc.memory.writeBytes(SPARE, any(null)),
);
row("FlpdCache.fillRun", "null level-1 table", "EINVAL", () => {
  new FlpdCache(16).fillRun(0x4000, 0, 16, any(null));
});
row("Tlb", "-1 ways", "EINVAL", () => new Tlb({ sets: 4, ways: -1 }));
row(
  "Tlb",
  "3 sets (not a power of two)",
  "EINVAL",
  () => new Tlb({ sets: 3, ways: 4 }),
);

// ---------------------------------------------------------------- svg
// The picture of a world's flat domain, drawn from its own leaves, with one
// field spoiled.
function svgDomain(w: World, change: Record<string, unknown>): SvgDomain {
  return {
    label: "d",
    masters: ["dev"],
    inputBits: w.flat.caps.inputBits,
    leaves: w.d.leaves(),
    tableStats: w.d.tableStats(),
    ...change,
  };
}
for (
  const [input, run] of [
    ["domains null", () => renderIovaSvg(any(null))],
    [
      "inputBits NaN",
      (w: World) => renderIovaSvg([svgDomain(w, { inputBits: NaN })]),
    ],
    [
      "leaves out of IOVA order",
      (w: World) =>
        renderIovaSvg([svgDomain(w, { leaves: w.d.leaves().reverse() })]),
    ],
    ["a leaf with pageSize -4096", (w: World) =>
      renderIovaSvg([svgDomain(w, {
        leaves: [{ iova: 0, pa: 0, pageSize: -4096, prot: 3 }],
      })])],
    [
      "masters [1]",
      (w: World) => renderIovaSvg([svgDomain(w, { masters: [1] })]),
    ],
    [
      "width NaN",
      (w: World) => renderIovaSvg([svgDomain(w, {})], { width: NaN }),
    ],
    [
      "title 5",
      (w: World) => renderIovaSvg([svgDomain(w, {})], any({ title: 5 })),
    ],
  ] as [string, (w: World) => unknown][]
) {
  row("renderIovaSvg", input, "EINVAL", run);
}

// ---------------------------------------------------------------- DTB / JSON
const GOOD = GENERIC_SOC_DTB;
function patched(at: number, value: number, b: Uint8Array = GOOD): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(at, value);
  return c;
}
row("parseFdt", "empty blob", "EIO", () => parseFdt(new Uint8Array(0)));
row(
  "parseFdt",
  "truncated header (20 bytes)",
  "EIO",
  () => parseFdt(GOOD.slice(0, 20)),
);
row("parseFdt", "wrong magic", "EIO", () => parseFdt(patched(0, 0xfeedd00d)));
row(
  "parseFdt",
  "totalsize beyond the blob",
  "EIO",
  () => parseFdt(patched(4, GOOD.length + 4096)),
);
row(
  "parseFdt",
  "truncated body",
  "EIO",
  () => parseFdt(GOOD.slice(0, GOOD.length - 16)),
);
row(
  "parseFdt",
  "structure offset outside the blob",
  "EIO",
  () => parseFdt(patched(8, 0x7fff_fff0)),
);
row(
  "parseFdt",
  "strings offset outside the blob",
  "EIO",
  () => parseFdt(patched(12, 0x7fff_fff0)),
);
row(
  "parseFdt",
  "reservation-map offset outside",
  "EIO",
  () => parseFdt(patched(16, 0xffff_fff0)),
);
row("parseFdt", "memory reservation above 2^53", "ERANGE", () => {
  const b = GOOD.slice();
  const at = new DataView(b.buffer).getUint32(16);
  new DataView(b.buffer).setUint32(at, 0xffff_ffff);
  new DataView(b.buffer).setUint32(at + 8, 0);
  new DataView(b.buffer).setUint32(at + 12, 0x1000);
  return parseFdt(b);
});
row("parseFdt", "version 1", "EIO", () => parseFdt(patched(20, 1)));
row(
  "parseFdt",
  "structure size beyond the blob",
  "EIO",
  () => parseFdt(patched(36, 0x100_0000)),
);
row("parseFdt", "first token not BEGIN_NODE", "EIO", () => {
  const off = new DataView(GOOD.buffer, GOOD.byteOffset).getUint32(8);
  return parseFdt(patched(off, 0x9));
});
row("parseFdt", "unknown token 0x77", "EIO", () => {
  const off = new DataView(GOOD.buffer, GOOD.byteOffset).getUint32(8);
  return parseFdt(patched(off + 8, 0x77));
});
row(
  "buildPlatform (DTB)",
  "iommus phandle that names nothing",
  "ENOENT",
  () =>
    buildPlatform(
      encodeFdt({
        props: { "#address-cells": 1, "#size-cells": 1 },
        children: [
          {
            name: "memory@40000000",
            props: { device_type: "memory", reg: [0x4000_0000, 0x100_0000] },
          },
          { name: "dev", props: { compatible: "acme,dev", iommus: [0x77] } },
        ],
      }),
      { plugins: [genericIommu()] },
    ),
);
row(
  "buildPlatform (DTB)",
  "no /memory node",
  "EINVAL",
  () =>
    buildPlatform(
      encodeFdt({
        props: { "#address-cells": 1, "#size-cells": 1 },
        children: [],
      }),
      { plugins: [] },
    ),
);
row(
  "buildPlatform (JSON)",
  "memory size -1",
  "EINVAL",
  () =>
    buildPlatform(any({ memory: { base: 0, size: -1 }, devices: [] }), {
      plugins: [],
    }),
);
row(
  "buildPlatform (JSON)",
  "options undefined",
  "EINVAL",
  () =>
    buildPlatform(
      { memory: { base: "0x40000000", size: "0x1000000" }, devices: [] },
      any(undefined),
    ),
);
row(
  "buildPlatform (JSON)",
  "plugins 5 (not a list)",
  "EINVAL",
  () =>
    buildPlatform(
      { memory: { base: "0x40000000", size: "0x1000000" }, devices: [] },
      any({ plugins: 5 }),
    ),
);
row(
  "buildPlatform (JSON)",
  "configureBypass 5 (not a function)",
  "EINVAL",
  () =>
    buildPlatform(
      { memory: { base: "0x40000000", size: "0x1000000" }, devices: [] },
      any({ plugins: [], configureBypass: 5 }),
    ),
);
row(
  "buildPlatform (JSON)",
  "two masters naming one per-device unit",
  "EBUSY",
  () =>
    buildPlatform({
      memory: { base: "0x40000000", size: "0x4000000" },
      devices: [
        { name: "mmu", compatible: ["samsung,exynos-sysmmu"], iommuCells: 0 },
        { name: "a", iommus: [{ iommu: "mmu" }] },
        { name: "b", iommus: [{ iommu: "mmu" }] },
      ],
    }, { plugins: [samsungSysmmu()] }),
);
row(
  "buildPlatform (JSON)",
  "devices not an array",
  "EINVAL",
  () =>
    buildPlatform(any({ memory: { base: 0, size: "0x1000000" }, devices: 5 }), {
      plugins: [],
    }),
);
row(
  "buildPlatform (JSON)",
  "iommus naming an unknown device",
  "ENOENT",
  () =>
    buildPlatform(
      any({
        memory: { base: "0x40000000", size: "0x1000000" },
        devices: [{
          name: "d",
          compatible: ["acme,d"],
          iommus: [{ iommu: "ghost" }],
        }],
      }),
      { plugins: [] },
    ),
);
const MEMORY_NODE = {
  name: "memory@40000000",
  props: { device_type: "memory", reg: [0x4000_0000, 0x100_0000] },
};
row(
  "parseFdt",
  "two nodes with the same phandle",
  "EIO",
  () =>
    parseFdt(encodeFdt({
      props: { "#address-cells": 1, "#size-cells": 1 },
      children: [
        MEMORY_NODE,
        { name: "a", props: { phandle: 1 } },
        { name: "b", props: { phandle: 1 } },
      ],
    })),
);
row(
  "Fdt.interruptSpecifiers",
  "interrupt-parent loops to itself",
  "EINVAL",
  () => {
    const fdt = parseFdt(encodeFdt({
      props: { "#address-cells": 1, "#size-cells": 1 },
      children: [MEMORY_NODE, {
        name: "a",
        props: { phandle: 1, "interrupt-parent": 1, interrupts: [1] },
      }],
    }));
    return fdt.interruptSpecifiers(fdt.findByPath("/a")!);
  },
);
row(
  "buildPlatform (DTB)",
  "a master whose iommus names itself (loop)",
  "EINVAL",
  () =>
    buildPlatform(
      encodeFdt({
        props: { "#address-cells": 1, "#size-cells": 1 },
        children: [MEMORY_NODE, {
          name: "a",
          props: { compatible: "acme,a", phandle: 1, iommus: [1] },
        }],
      }),
      { plugins: [genericIommu()] },
    ),
);
row(
  "sourceFromJsonText",
  "not JSON",
  "EIO",
  () => sourceFromJsonText("{memory:"),
);
row(
  "sourceFromJsonText",
  "JSON null",
  "EINVAL",
  () => sourceFromJsonText("null"),
);

// Runs `fn` and checks the state right before it is unchanged after its throw.
function snapshotThen(w: World, fn: () => unknown): unknown {
  const before = snapshot(w);
  try {
    return fn();
  } finally {
    assertEquals(snapshot(w), before, "state changed by the repeated call");
  }
}

Deno.test("bad-input catalogue: every row throws its documented kind and changes nothing", () => {
  const t0 = performance.now();
  const wrong: string[] = [];
  for (const r of rows) {
    const w = world();
    // A faulting DMA records the fault (counters, log): that is its
    // purpose; everything else must stay.
    const faults = r.kind !== "EFAULT";
    const before = snapshot(w, faults);
    let threw: unknown = null;
    try {
      r.run(w);
    } catch (e) {
      threw = e;
    }
    const label = `${r.entry} | ${r.input}`;
    if (!(threw instanceof IommuError)) {
      wrong.push(
        `${label}: expected ${r.kind}, got ${
          threw === null ? "no error" : String(threw)
        }`,
      );
      continue;
    }
    if (threw.kind !== r.kind) {
      wrong.push(
        `${label}: expected ${r.kind}, got ${threw.kind} (${threw.message})`,
      );
      continue;
    }
    // Rows that mutate on purpose before the bad call check themselves.
    if (!r.run.toString().includes("snapshotThen")) {
      const after = snapshot(w, faults);
      if (after !== before) wrong.push(`${label}: state changed`);
    }
  }
  assertEquals(wrong, [], wrong.join("\n"));
  console.log(
    `bad inputs: ${rows.length} tried over ${
      new Set(rows.map((r) => r.entry)).size
    } entry points, 0 untyped, 0 wrong kinds, 0 state changes, ${
      Math.round(performance.now() - t0)
    } ms`,
  );
});

function table(): string {
  const lines = [
    "| Entry point | Bad input | Kind | State |",
    "| --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const state = r.kind === "EFAULT"
      ? "unchanged (fault recorded)"
      : "unchanged";
    lines.push(`| \`${r.entry}\` | ${r.input} | \`${r.kind}\` | ${state} |`);
  }
  return lines.join("\n");
}

function virtioTable(): string {
  const lines = [
    "| Request | Bad input | Status | State |",
    "| --- | --- | --- | --- |",
  ];
  for (const r of virtioRows) {
    const status = r.status === "none"
      ? "no reply (used length 0)"
      : `\`VIRTIO_IOMMU_S_${r.status}\``;
    lines.push(`| \`${r.request}\` | ${r.input} | ${status} | unchanged |`);
  }
  return lines.join("\n");
}

function cells(markdown: string): string[][] {
  return markdown.split("\n")
    .filter((l) => l.startsWith("|") && !/^\|[\s|-]+\|$/.test(l))
    .map((l) => l.slice(1, -1).split("|").map((c) => c.trim()));
}

Deno.test("docs/errors.md lists every row of the catalogue", async () => {
  const url = new URL("../docs/errors.md", import.meta.url);
  let doc = await Deno.readTextFile(url);
  const write = Deno.env.get("IOMMUKIT_WRITE_DOCS") !== undefined;
  for (
    const [name, text] of [
      ["catalogue", table()],
      ["virtio", virtioTable()],
    ] as const
  ) {
    const begin = `<!-- ${name}:begin -->`, end = `<!-- ${name}:end -->`;
    const i = doc.indexOf(begin), j = doc.indexOf(end);
    assert(i >= 0 && j > i, `docs/errors.md lacks the ${name} markers`);
    if (write) {
      // Written unaligned; \`deno fmt docs/errors.md\` aligns it.
      doc = `${doc.slice(0, i)}${begin}\n\n${text}\n\n${doc.slice(j)}`;
      continue;
    }
    assertEquals(
      cells(doc.slice(i, j)),
      cells(text),
      "run with IOMMUKIT_WRITE_DOCS=1, then deno fmt, to refresh docs/errors.md",
    );
  }
  if (write) await Deno.writeTextFile(url, doc);
});

// ------------------------------------------------------------ virtio wire
// Malformed virtio-iommu requests never throw: the device answers with a
// status in the reply tail (or writes nothing when no tail fits).

const S = VIRTIO_IOMMU_STATUS_NAMES;

interface VirtioRow {
  request: string;
  input: string;
  status: string;
  make: () => Uint8Array;
}

const virtioRows: VirtioRow[] = [];
function vrow(
  request: string,
  input: string,
  status: string,
  make: () => Uint8Array,
): void {
  virtioRows.push({ request, input, status, make });
}
const withType = (type: number, len: number): Uint8Array => {
  const b = new Uint8Array(len);
  b[0] = type;
  return b;
};
vrow("any", "4 bytes (no room for a tail)", "none", () => new Uint8Array(4));
vrow("any", "unknown type 9 (strict profile)", "none", () => withType(9, 64));
vrow(
  "MAP",
  "truncated to 16 bytes",
  "none",
  () => encodeMap(1, 0x40000, 0x40fff, 0x4020_0000, 1).slice(0, 16),
);
vrow(
  "ATTACH",
  "reserved field non-zero",
  "INVAL",
  () => encodeAttach(1, 4, 0, 1),
);
vrow("ATTACH", "unknown flag", "INVAL", () => encodeAttach(1, 4, 0x80));
vrow(
  "ATTACH",
  "unknown endpoint 2^20",
  "NOENT",
  () => encodeAttach(1, 1 << 20),
);
vrow(
  "DETACH",
  "domain the endpoint is not in",
  "INVAL",
  () => encodeDetach(2, 3),
);
vrow("DETACH", "unknown endpoint", "NOENT", () => encodeDetach(1, 1 << 20));
vrow(
  "MAP",
  "unknown domain",
  "NOENT",
  () => encodeMap(9, 0x40000, 0x40fff, 0x4020_0000, 1),
);
vrow(
  "MAP",
  "end below start",
  "INVAL",
  () => encodeMap(1, 0x40000, 0x3ffff, 0x4020_0000, 1),
);
vrow(
  "MAP",
  "overlaps a mapping",
  "INVAL",
  () => encodeMap(1, 0x1f000, 0x20fff, 0x4020_0000, 1),
);
vrow(
  "MAP",
  "unaligned start",
  "RANGE",
  () => encodeMap(1, 0x40010, 0x40fff, 0x4020_0000, 1),
);
vrow(
  "MAP",
  "unknown flag 0x80",
  "INVAL",
  () => encodeMap(1, 0x40000, 0x40fff, 0x4020_0000, 0x81),
);
vrow(
  "MAP",
  "end beyond the 48-bit input range",
  "RANGE",
  () => encodeMap(1, 0x40000, 2n ** 50n, 0x4020_0000, 1),
);
vrow(
  "MAP",
  "phys beyond the output range",
  "RANGE",
  () => encodeMap(1, 0x40000, 0x40fff, 2n ** 60n, 1),
);
vrow(
  "MAP",
  "phys outside RAM",
  "FAULT",
  () => encodeMap(1, 0x40000, 0x40fff, 0x1000, 1),
);
vrow(
  "UNMAP",
  "unknown domain",
  "NOENT",
  () => encodeUnmap(9, 0x10000, 0x1ffff),
);
vrow(
  "UNMAP",
  "end below start",
  "INVAL",
  () => encodeUnmap(1, 0x20000, 0x1ffff),
);
vrow(
  "UNMAP",
  "splits a mapping",
  "RANGE",
  () => encodeUnmap(1, 0x10000, 0x10fff),
);
vrow("PROBE", "unknown endpoint", "NOENT", () => encodeProbe(1 << 20, 512));

function virtioWorld(): { soc: Soc; v: VirtioIommu } {
  const soc = createSoc({ memory: { base: 0x4000_0000, size: 64 * MB } })
    .use(genericIommu());
  const unit = soc.probeUnit({
    name: "viommu",
    compatible: ["virtio,pci-iommu"],
  });
  const v = createVirtioIommu(soc, unit);
  assertEquals(v.handleRequest(encodeAttach(1, 3))[0], 0);
  assertEquals(
    v.handleRequest(encodeMap(1, 0x10000, 0x1ffff, 0x4010_0000, 3))[0],
    0,
  );
  return { soc, v };
}

function virtioState(w: { soc: Soc; v: VirtioIommu }): string {
  return JSON.stringify(
    [
      w.soc.memory.digest(),
      w.soc.memory.frames.liveBytes,
      w.v.mappings(1),
      w.v.coreDomain(1)?.leaves(),
      w.v.domainOf(3),
      w.soc.domains().length,
    ],
    (_k, x) => typeof x === "bigint" ? x.toString() : x,
  );
}

Deno.test("bad-input catalogue: malformed virtio-iommu requests get their status and change nothing", () => {
  const wrong: string[] = [];
  for (const r of virtioRows) {
    const w = virtioWorld();
    const before = virtioState(w);
    let status = "";
    try {
      const out = w.v.handleRequest(r.make());
      status = out.length === 0 ? "none" : S[out[out.length - 4]!] ?? "?";
    } catch (e) {
      status = `threw ${String(e)}`;
    }
    if (status !== r.status) {
      wrong.push(
        `${r.request} | ${r.input}: expected ${r.status}, got ${status}`,
      );
    } else if (virtioState(w) !== before) {
      wrong.push(`${r.request} | ${r.input}: state changed`);
    }
  }
  assertEquals(wrong, [], wrong.join("\n"));
  console.log(
    `bad virtio requests: ${virtioRows.length} tried, 0 exceptions, 0 wrong statuses, 0 state changes`,
  );
});
