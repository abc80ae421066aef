/**
 * A small PNG decoder for screenshot checks: 8-bit greyscale, RGB, greyscale+alpha and RGBA,
 * not interlaced (what Chromium writes). Every chunk's CRC-32 is checked; anything else throws.
 * PNG spec: https://www.w3.org/TR/png-3/ (filters: section 7.3, chunk layout: section 5.3).
 */
import { crc32, inflateSync } from 'node:zlib';

export interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, rows top to bottom. */
  rgba: Uint8Array;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

export function decodePng(buf: Uint8Array): Image {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error('not a PNG (bad signature)');
  let width = 0,
    height = 0,
    colorType = -1;
  const idat: Buffer[] = [];
  for (let at = 8; at < bytes.length; ) {
    if (at + 12 > bytes.length) throw new Error(`truncated chunk at byte ${at}`);
    const len = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (at + 12 + len > bytes.length) throw new Error(`chunk ${type} overruns the file`);
    const data = bytes.subarray(at + 8, at + 8 + len);
    if (crc32(bytes.subarray(at + 4, at + 8 + len)) !== bytes.readUInt32BE(at + 8 + len)) throw new Error(`bad CRC in chunk ${type}`);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, ct, , , interlace] = data.subarray(8, 13);
      if (depth !== 8 || !(ct in CHANNELS) || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${ct}, interlace ${interlace}`);
      colorType = ct;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + len;
  }
  if (colorType < 0 || !idat.length) throw new Error('PNG without IHDR or IDAT');
  const ch = CHANNELS[colorType];
  const stride = width * ch;
  const raw = inflateSync(Buffer.concat(idat));
  if (raw.length < height * (stride + 1)) throw new Error(`image data too short: ${raw.length} < ${height * (stride + 1)}`);
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = px.subarray(y * stride, (y + 1) * stride);
    const up = y ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= ch ? out[i - ch] : 0;
      const b = up[i];
      const c = i >= ch ? up[i - ch] : 0;
      let v: number;
      switch (filter) {
        case 0:
          v = 0;
          break;
        case 1:
          v = a;
          break;
        case 2:
          v = b;
          break;
        case 3:
          v = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c,
            pa = Math.abs(p - a),
            pb = Math.abs(p - b),
            pc = Math.abs(p - c);
          v = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`bad filter type ${filter} on row ${y}`);
      }
      out[i] = (line[i] + v) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = p * ch;
    const [r, g, b, al] =
      ch === 1
        ? [px[s], px[s], px[s], 255]
        : ch === 2
          ? [px[s], px[s], px[s], px[s + 1]]
          : ch === 3
            ? [px[s], px[s + 1], px[s + 2], 255]
            : [px[s], px[s + 1], px[s + 2], px[s + 3]];
    rgba.set([r, g, b, al], p * 4);
  }
  return { width, height, rgba };
}

/** Colour statistics of a rectangle (clipped to the image). */
export function regionStats(img: Image, box: { x: number; y: number; width: number; height: number }, background: [number, number, number], tolerance = 6) {
  const x0 = Math.max(0, Math.floor(box.x)),
    y0 = Math.max(0, Math.floor(box.y));
  const x1 = Math.min(img.width, Math.ceil(box.x + box.width)),
    y1 = Math.min(img.height, Math.ceil(box.y + box.height));
  const colours = new Map<number, number>();
  let total = 0,
    foreground = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * img.width + x) * 4;
      const [r, g, b] = [img.rgba[i], img.rgba[i + 1], img.rgba[i + 2]];
      total++;
      if (Math.abs(r - background[0]) > tolerance || Math.abs(g - background[1]) > tolerance || Math.abs(b - background[2]) > tolerance) foreground++;
      const key = (r << 16) | (g << 8) | b;
      colours.set(key, (colours.get(key) ?? 0) + 1);
    }
  }
  /** Pixels within `tol` of a colour. */
  const near = (rgb: [number, number, number], tol = 24) => {
    let n = 0;
    for (const [key, count] of colours) {
      const r = key >> 16,
        g = (key >> 8) & 0xff,
        b = key & 0xff;
      if (Math.abs(r - rgb[0]) <= tol && Math.abs(g - rgb[1]) <= tol && Math.abs(b - rgb[2]) <= tol) n += count;
    }
    return n;
  };
  return { total, foreground, foregroundShare: total ? foreground / total : 0, distinct: colours.size, near };
}
