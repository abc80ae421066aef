import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter } from './bytes.ts';
import { crc32 } from './crc32.ts';
import { SummaryDecodeError } from './errors.ts';

describe('crc32', () => {
  it('matches the IEEE check value and zlib on known inputs', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array())).toBe(0);
    expect(crc32(new TextEncoder().encode('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  it('equals the bitwise definition on any bytes and ranges (property)', () => {
    const slow = (b: Uint8Array) => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (b, s, e) => {
        const start = s % (b.length + 1);
        const end = start + (e % (b.length - start + 1));
        return crc32(b, start, end) === slow(b.subarray(start, end));
      }),
      { seed: 41, numRuns: 500 },
    );
  });
});

describe('ByteWriter / ByteReader', () => {
  it('round-trip every field type (property)', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.double(), fc.string({ maxLength: 50 }), fc.integer({ min: 0, max: 0xffffffff }), (n, d, s, u) => {
        const bytes = new ByteWriter(4).varint(n).f64(d).string(s).u32(u).u8(7).finish();
        const r = new ByteReader(bytes);
        const ok = r.varint() === n && Object.is(r.f64(), d) && r.string('s', 1000) === s && r.u32() === u && r.u8() === 7;
        r.end('test');
        return ok;
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it('refuses overlong, non-minimal and out-of-range varints, bad UTF-8 and truncation', () => {
    expect(() => new ByteReader(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)).varint()).toThrow(/longer than 8 bytes/);
    expect(() => new ByteReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)).varint()).toThrow(/2\^53/);
    expect(() => new ByteReader(Uint8Array.of(0x81, 0x00)).varint()).toThrow(/minimally/);
    expect(() => new ByteReader(Uint8Array.of(2, 0xc3, 0x28)).string()).toThrow(/UTF-8/);
    expect(() => new ByteReader(Uint8Array.of(1, 2)).f64()).toThrow(SummaryDecodeError);
    expect(() => new ByteReader(Uint8Array.of(5, 1, 2)).count('items', 1)).toThrow(/cannot fit/);
    expect(() => new ByteWriter().varint(-1)).toThrow(RangeError);
    expect(() => new ByteWriter().varint(2 ** 53)).toThrow(RangeError);
  });
});
