/**
 * Little-endian byte writer and bounds-checked reader shared by every binary format in core/.
 *
 * Varints are unsigned LEB128 limited to 2^53 - 1 (eight 7-bit groups cover 56 bits; the
 * reader refuses more than 8 bytes and anything above Number.MAX_SAFE_INTEGER), so every
 * decoded integer is exact in a JS number.
 */
import { SummaryDecodeError } from './errors.ts';

const utf8Encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the string, not a marker to strip.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** False when `s` holds a lone surrogate, which UTF-8 cannot carry (it would become U+FFFD). */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export class ByteWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(Math.max(16, initialCapacity));
    this.#view = new DataView(this.#buf.buffer);
  }

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    const need = this.#len + n;
    if (need <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  u32(v: number): this {
    this.#reserve(4);
    this.#view.setUint32(this.#len, v >>> 0, true);
    this.#len += 4;
    return this;
  }

  f32(v: number): this {
    this.#reserve(4);
    this.#view.setFloat32(this.#len, v, true);
    this.#len += 4;
    return this;
  }

  f64(v: number): this {
    this.#reserve(8);
    this.#view.setFloat64(this.#len, v, true);
    this.#len += 8;
    return this;
  }

  /** Unsigned LEB128; `v` must be a safe non-negative integer. */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.#reserve(8);
    while (v >= 0x80) {
      this.#buf[this.#len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buf[this.#len++] = v;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** Length-prefixed UTF-8. */
  string(s: string): this {
    const b = utf8Encoder.encode(s);
    return this.varint(b.length).bytes(b);
  }

  /** A copy of the bytes written so far, exactly sized. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #pos: number;
  readonly #end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#pos = start;
    this.#end = end;
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#end - this.#pos;
  }

  fail(message: string): never {
    throw new SummaryDecodeError(message, { offset: this.#pos });
  }

  #need(n: number, what: string): void {
    if (this.#end - this.#pos < n) this.fail(`truncated: ${what} needs ${n} bytes, ${this.#end - this.#pos} left`);
  }

  u8(what = 'byte'): number {
    this.#need(1, what);
    return this.#buf[this.#pos++];
  }

  u32(what = 'u32'): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.#pos, true);
    this.#pos += 4;
    return v;
  }

  f32(what = 'f32'): number {
    this.#need(4, what);
    const v = this.#view.getFloat32(this.#pos, true);
    this.#pos += 4;
    return v;
  }

  f64(what = 'f64'): number {
    this.#need(8, what);
    const v = this.#view.getFloat64(this.#pos, true);
    this.#pos += 8;
    return v;
  }

  varint(what = 'varint'): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      this.#need(1, what);
      const b = this.#buf[this.#pos++];
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (result > Number.MAX_SAFE_INTEGER) this.fail(`${what} exceeds 2^53 - 1`);
        if (i > 0 && b === 0) this.fail(`${what} is not minimally encoded`);
        return result;
      }
      scale *= 0x80;
    }
    return this.fail(`${what} is longer than 8 bytes`);
  }

  /**
   * A count of items that each take at least `minBytesEach` bytes: refused when the rest of
   * the input could not hold them, so a hostile length never drives a large allocation.
   */
  count(what: string, minBytesEach: number, max = Number.MAX_SAFE_INTEGER): number {
    const n = this.varint(what);
    if (n > max) this.fail(`${what} ${n} exceeds the limit ${max}`);
    if (n * minBytesEach > this.remaining) this.fail(`${what} ${n} cannot fit in the ${this.remaining} bytes left`);
    return n;
  }

  bytes(n: number, what = 'bytes'): Uint8Array {
    this.#need(n, what);
    const b = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return b;
  }

  string(what = 'string', maxBytes = 1024): string {
    const n = this.varint(`${what} length`);
    if (n > maxBytes) this.fail(`${what} is ${n} bytes, over the limit of ${maxBytes}`);
    const b = this.bytes(n, what);
    // Short ASCII (category labels, feature names: nearly every string here) without a
    // TextDecoder call each, which cost a sixth of an aggregator's ingest.
    if (n <= 64) {
      let s = '';
      let i = 0;
      for (; i < n; i++) {
        const c = b[i];
        if (c > 0x7f) break;
        s += String.fromCharCode(c);
      }
      if (i === n) return s;
    }
    try {
      return utf8Decoder.decode(b);
    } catch (cause) {
      throw new SummaryDecodeError(`${what} is not valid UTF-8`, { offset: this.#pos - n, cause });
    }
  }

  /** Asserts that every byte was consumed. */
  end(what: string): void {
    if (this.#pos !== this.#end) this.fail(`${this.#end - this.#pos} unexpected trailing bytes after ${what}`);
  }
}
