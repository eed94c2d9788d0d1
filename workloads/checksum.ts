/**
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): workloads checksum
 * what they expect and what the devices actually moved, so a wrong
 * translation shows up as a mismatch.
 *
 * @module
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 of `data`, optionally continuing from a previous value.
 *
 * @param data Bytes.
 * @param previous The CRC of the bytes before (default 0: start fresh).
 * @returns The CRC as an unsigned 32-bit integer.
 */
export function crc32(data: Uint8Array, previous = 0): number {
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) {
    c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}
