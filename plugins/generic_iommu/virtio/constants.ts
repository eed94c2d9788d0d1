/**
 * virtio-iommu constants (final v0.12 / virtio spec layout, little-endian).
 *
 * @module
 */

/** virtio device ID of an IOMMU. */
export const VIRTIO_ID_IOMMU = 23;

/** Request type: attach an endpoint to a domain. */
export const VIRTIO_IOMMU_T_ATTACH = 1;
/** Request type: detach an endpoint from a domain. */
export const VIRTIO_IOMMU_T_DETACH = 2;
/** Request type: map a range. */
export const VIRTIO_IOMMU_T_MAP = 3;
/** Request type: unmap a range. */
export const VIRTIO_IOMMU_T_UNMAP = 4;
/** Request type: probe an endpoint's properties. */
export const VIRTIO_IOMMU_T_PROBE = 5;

/** Status: success. */
export const VIRTIO_IOMMU_S_OK = 0;
/** Status: I/O error (here: the unit's command queue failed; the change may be partly visible). */
export const VIRTIO_IOMMU_S_IOERR = 1;
/** Status: unsupported request (MAP/UNMAP not offered; a domain that cannot take more endpoints; qemu-compat: unknown type). */
export const VIRTIO_IOMMU_S_UNSUPP = 2;
/** Status: device error (here: a MAP whose size overflows 64 bits, or an unexpected internal failure). */
export const VIRTIO_IOMMU_S_DEVERR = 3;
/** Status: invalid argument. */
export const VIRTIO_IOMMU_S_INVAL = 4;
/** Status: out of range (alignment, input range, output size, domain range, split by UNMAP). */
export const VIRTIO_IOMMU_S_RANGE = 5;
/** Status: no such endpoint or domain. */
export const VIRTIO_IOMMU_S_NOENT = 6;
/** Status: bad address (here: a non-MMIO MAP whose physical range is not RAM). */
export const VIRTIO_IOMMU_S_FAULT = 7;
/** Status: out of memory (domain or mapping cap, page-table or context exhaustion). */
export const VIRTIO_IOMMU_S_NOMEM = 8;

/** Status names by value, for messages and tables. */
export const VIRTIO_IOMMU_STATUS_NAMES: readonly string[] = [
  "OK",
  "IOERR",
  "UNSUPP",
  "DEVERR",
  "INVAL",
  "RANGE",
  "NOENT",
  "FAULT",
  "NOMEM",
];

/** Feature bit 0: `input_range` is valid. */
export const VIRTIO_IOMMU_F_INPUT_RANGE = 1 << 0;
/** Feature bit 1: `domain_range` is valid. */
export const VIRTIO_IOMMU_F_DOMAIN_RANGE = 1 << 1;
/** Feature bit 2: MAP and UNMAP are available. */
export const VIRTIO_IOMMU_F_MAP_UNMAP = 1 << 2;
/** Feature bit 3: legacy, unattached endpoints bypass. */
export const VIRTIO_IOMMU_F_BYPASS = 1 << 3;
/** Feature bit 4: PROBE is available. */
export const VIRTIO_IOMMU_F_PROBE = 1 << 4;
/** Feature bit 5: MAP_F_MMIO is available. */
export const VIRTIO_IOMMU_F_MMIO = 1 << 5;
/** Feature bit 6: the `bypass` config field and ATTACH_F_BYPASS are used. */
export const VIRTIO_IOMMU_F_BYPASS_CONFIG = 1 << 6;

/** ATTACH flag: the domain is a bypass (identity) domain. */
export const VIRTIO_IOMMU_ATTACH_F_BYPASS = 1 << 0;
/** MAP flag: reads allowed. */
export const VIRTIO_IOMMU_MAP_F_READ = 1 << 0;
/** MAP flag: writes allowed. */
export const VIRTIO_IOMMU_MAP_F_WRITE = 1 << 1;
/** MAP flag: the target is MMIO (final layout bit 2; the v0.9 draft's bit 3 is not accepted). */
export const VIRTIO_IOMMU_MAP_F_MMIO = 1 << 2;
/** Every MAP flag. */
export const VIRTIO_IOMMU_MAP_F_MASK = 7;

/** Probe property type: end of the list. */
export const VIRTIO_IOMMU_PROBE_T_NONE = 0;
/** Probe property type: a reserved memory region. */
export const VIRTIO_IOMMU_PROBE_T_RESV_MEM = 1;
/** RESV_MEM subtype: must not be mapped. */
export const VIRTIO_IOMMU_RESV_MEM_T_RESERVED = 0;
/** RESV_MEM subtype: an MSI doorbell (must not be mapped). */
export const VIRTIO_IOMMU_RESV_MEM_T_MSI = 1;
/** Bytes of one RESV_MEM property, header included. */
export const VIRTIO_IOMMU_RESV_MEM_BYTES = 24;

/** Fault reason: unknown. */
export const VIRTIO_IOMMU_FAULT_R_UNKNOWN = 0;
/** Fault reason: the endpoint is not attached to a domain. */
export const VIRTIO_IOMMU_FAULT_R_DOMAIN = 1;
/** Fault reason: no mapping, or the mapping forbids the access. */
export const VIRTIO_IOMMU_FAULT_R_MAPPING = 2;
/** Fault flag: read access. */
export const VIRTIO_IOMMU_FAULT_F_READ = 1 << 0;
/** Fault flag: write access. */
export const VIRTIO_IOMMU_FAULT_F_WRITE = 1 << 1;
/** Fault flag: `address` is valid. */
export const VIRTIO_IOMMU_FAULT_F_ADDRESS = 1 << 8;
/** Bytes of a fault record. */
export const VIRTIO_IOMMU_FAULT_BYTES = 24;

/** Bytes of the config space. */
export const VIRTIO_IOMMU_CONFIG_BYTES = 40;
/** Total bytes of an ATTACH request (tail included). */
export const VIRTIO_IOMMU_ATTACH_BYTES = 24;
/** Total bytes of a DETACH request. */
export const VIRTIO_IOMMU_DETACH_BYTES = 24;
/** Total bytes of a MAP request. */
export const VIRTIO_IOMMU_MAP_BYTES = 40;
/** Total bytes of an UNMAP request. */
export const VIRTIO_IOMMU_UNMAP_BYTES = 32;
/** Bytes of a PROBE request's device-readable part (head, endpoint, reserved[64]). */
export const VIRTIO_IOMMU_PROBE_HEAD_BYTES = 72;
