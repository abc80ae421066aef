/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib, PNG and gzip compute it.
 * Slicing-by-4 tables: about 4x the speed of the byte-at-a-time loop on summary-sized inputs.
 */
const TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0, new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  for (let n = 0; n < 256; n++) {
    let c = t0[n];
    for (let k = 1; k < 4; k++) {
      c = t0[c & 0xff] ^ (c >>> 8);
      tables[k][n] = c >>> 0;
    }
  }
  return tables;
})();

/** CRC-32 of `bytes[start, end)`. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const [t0, t1, t2, t3] = TABLES;
  let crc = 0xffffffff;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    crc ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    crc = t3[crc & 0xff] ^ t2[(crc >>> 8) & 0xff] ^ t1[(crc >>> 16) & 0xff] ^ t0[crc >>> 24];
  }
  for (; i < end; i++) crc = t0[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
