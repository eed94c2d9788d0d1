/**
 * Encoders and decoders for virtio-iommu requests, tails, config space,
 * probe properties and fault records, byte for byte in the little-endian
 * wire layout. The encoders build what a driver would place in a virtqueue
 * (the device-writable part zeroed).
 *
 * @module
 */
import {
  VIRTIO_IOMMU_ATTACH_BYTES,
  VIRTIO_IOMMU_DETACH_BYTES,
  VIRTIO_IOMMU_FAULT_BYTES,
  VIRTIO_IOMMU_MAP_BYTES,
  VIRTIO_IOMMU_PROBE_HEAD_BYTES,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_PROBE,
  VIRTIO_IOMMU_T_UNMAP,
  VIRTIO_IOMMU_UNMAP_BYTES,
} from "./constants.ts";

/** A 64-bit wire value given as a number (safe integer) or a bigint. */
export type U64 = number | bigint;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Encode an ATTACH request (24 bytes).
 *
 * @param domain Domain ID.
 * @param endpoint Endpoint ID (a stream ID).
 * @param flags ATTACH flags (default 0).
 * @param reserved Value of the 4 reserved bytes as a le32 (default 0; non-zero for tests).
 * @returns The request buffer.
 */
export function encodeAttach(
  domain: number,
  endpoint: number,
  flags = 0,
  reserved = 0,
): Uint8Array {
  const b = new Uint8Array(VIRTIO_IOMMU_ATTACH_BYTES);
  const v = dv(b);
  b[0] = VIRTIO_IOMMU_T_ATTACH;
  v.setUint32(4, domain, true);
  v.setUint32(8, endpoint, true);
  v.setUint32(12, flags, true);
  v.setUint32(16, reserved, true);
  return b;
}

/**
 * Encode a DETACH request (24 bytes).
 *
 * @param domain Domain ID.
 * @param endpoint Endpoint ID.
 * @returns The request buffer.
 */
export function encodeDetach(domain: number, endpoint: number): Uint8Array {
  const b = new Uint8Array(VIRTIO_IOMMU_DETACH_BYTES);
  const v = dv(b);
  b[0] = VIRTIO_IOMMU_T_DETACH;
  v.setUint32(4, domain, true);
  v.setUint32(8, endpoint, true);
  return b;
}

/**
 * Encode a MAP request (40 bytes).
 *
 * @param domain Domain ID.
 * @param virtStart First IOVA.
 * @param virtEnd Last IOVA, inclusive.
 * @param physStart First physical address.
 * @param flags MAP flags.
 * @returns The request buffer.
 */
export function encodeMap(
  domain: number,
  virtStart: U64,
  virtEnd: U64,
  physStart: U64,
  flags: number,
): Uint8Array {
  const b = new Uint8Array(VIRTIO_IOMMU_MAP_BYTES);
  const v = dv(b);
  b[0] = VIRTIO_IOMMU_T_MAP;
  v.setUint32(4, domain, true);
  v.setBigUint64(8, BigInt(virtStart), true);
  v.setBigUint64(16, BigInt(virtEnd), true);
  v.setBigUint64(24, BigInt(physStart), true);
  v.setUint32(32, flags, true);
  return b;
}

/**
 * Encode an UNMAP request (32 bytes).
 *
 * @param domain Domain ID.
 * @param virtStart First IOVA.
 * @param virtEnd Last IOVA, inclusive.
 * @param reserved Value of the reserved le32 (default 0).
 * @returns The request buffer.
 */
export function encodeUnmap(
  domain: number,
  virtStart: U64,
  virtEnd: U64,
  reserved = 0,
): Uint8Array {
  const b = new Uint8Array(VIRTIO_IOMMU_UNMAP_BYTES);
  const v = dv(b);
  b[0] = VIRTIO_IOMMU_T_UNMAP;
  v.setUint32(4, domain, true);
  v.setBigUint64(8, BigInt(virtStart), true);
  v.setBigUint64(16, BigInt(virtEnd), true);
  v.setUint32(24, reserved, true);
  return b;
}

/**
 * Encode a PROBE request: 72 readable bytes, then `probeSize` bytes of
 * properties and the 4-byte tail, all zero.
 *
 * @param endpoint Endpoint ID.
 * @param probeSize The device's `probe_size`.
 * @returns The request buffer.
 */
export function encodeProbe(endpoint: number, probeSize: number): Uint8Array {
  const b = new Uint8Array(VIRTIO_IOMMU_PROBE_HEAD_BYTES + probeSize + 4);
  b[0] = VIRTIO_IOMMU_T_PROBE;
  dv(b).setUint32(4, endpoint, true);
  return b;
}

/**
 * The status byte of a tail (the last 4 bytes the device wrote).
 *
 * @param written What the device returned.
 * @returns The status, or -1 when nothing was written (used length 0,
 * which a driver treats as IOERR).
 */
export function tailStatus(written: Uint8Array): number {
  return written.length < 4 ? -1 : written[written.length - 4]!;
}

/** A decoded config space. */
export interface VirtioIommuConfig {
  /** Supported page sizes; the lowest set bit is the granule. */
  pageSizeMask: bigint;
  /** First valid IOVA. */
  inputStart: bigint;
  /** Last valid IOVA (inclusive). */
  inputEnd: bigint;
  /** First valid domain ID. */
  domainStart: number;
  /** Last valid domain ID (inclusive). */
  domainEnd: number;
  /** Bytes of the property area of a PROBE request. */
  probeSize: number;
  /** 1 when unattached endpoints bypass. */
  bypass: number;
}

/**
 * Decode the 40-byte config space.
 *
 * @param b The bytes.
 * @returns The fields.
 */
export function decodeConfig(b: Uint8Array): VirtioIommuConfig {
  const v = dv(b);
  return {
    pageSizeMask: v.getBigUint64(0, true),
    inputStart: v.getBigUint64(8, true),
    inputEnd: v.getBigUint64(16, true),
    domainStart: v.getUint32(24, true),
    domainEnd: v.getUint32(28, true),
    probeSize: v.getUint32(32, true),
    bypass: b[36]!,
  };
}

/** One property decoded from a PROBE reply. */
export interface VirtioProbeProperty {
  /** Property type (1 = RESV_MEM). */
  type: number;
  /** For RESV_MEM: subtype (0 reserved, 1 MSI). */
  subtype: number;
  /** For RESV_MEM: first address. */
  start: bigint;
  /** For RESV_MEM: last address, inclusive. */
  end: bigint;
}

/**
 * Parse the property area of a PROBE reply (stops at type NONE or the end;
 * properties with reserved header bits set are skipped, as the spec requires).
 *
 * @param props The `probe_size` bytes.
 * @returns The properties.
 */
export function decodeProbeProperties(
  props: Uint8Array,
): VirtioProbeProperty[] {
  const v = dv(props);
  const out: VirtioProbeProperty[] = [];
  let off = 0;
  while (off + 4 <= props.length) {
    const head = v.getUint16(off, true);
    const len = v.getUint16(off + 2, true);
    const type = head & 0xfff;
    if (type === 0) break;
    if (
      (head & 0xf000) === 0 && type === 1 && len >= 20 &&
      off + 24 <= props.length
    ) {
      out.push({
        type,
        subtype: props[off + 4]!,
        start: v.getBigUint64(off + 8, true),
        end: v.getBigUint64(off + 16, true),
      });
    }
    off += 4 + len;
  }
  return out;
}

/** A decoded fault record. */
export interface VirtioFaultRecord {
  /** Reason: 0 unknown, 1 domain, 2 mapping. */
  reason: number;
  /** Flags: F_READ, F_WRITE, F_ADDRESS. */
  flags: number;
  /** The endpoint. */
  endpoint: number;
  /** The faulting address (valid with F_ADDRESS). */
  address: bigint;
}

/**
 * Encode a 24-byte fault record.
 *
 * @param r The fields.
 * @returns The bytes.
 */
export function encodeFaultRecord(r: VirtioFaultRecord): Uint8Array {
  const b = new Uint8Array(VIRTIO_IOMMU_FAULT_BYTES);
  const v = dv(b);
  b[0] = r.reason;
  v.setUint32(4, r.flags, true);
  v.setUint32(8, r.endpoint, true);
  v.setBigUint64(16, r.address, true);
  return b;
}

/**
 * Decode a 24-byte fault record.
 *
 * @param b The bytes.
 * @returns The fields.
 */
export function decodeFaultRecord(b: Uint8Array): VirtioFaultRecord {
  const v = dv(b);
  return {
    reason: b[0]!,
    flags: v.getUint32(4, true),
    endpoint: v.getUint32(8, true),
    address: v.getBigUint64(16, true),
  };
}
