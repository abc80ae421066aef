import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generate } from '../test/support/data.ts';
import { SummaryDecodeError } from './errors.ts';
import { Histogram } from './histogram.ts';
import { TDigest } from './tdigest.ts';

describe('Histogram', () => {
  it('bins values as documented: (-inf, e0), [e0, e1), ..., [ek, inf); NaN apart', () => {
    const h = new Histogram({ edges: [0, 10, 20] });
    h.addAll([-Infinity, -1, 0, 5, 10, 19.999, 20, 1e9, Infinity, NaN]);
    expect(Array.from(h.counts())).toEqual([2, 2, 2, 3]);
    expect(h.nanCount).toBe(1);
    expect(h.count).toBe(9);
  });

  it('takes edges from a baseline digest, dropping repeated quantiles', () => {
    const base = new TDigest().addAll(generate('exponential', 50_000, 1));
    const h = Histogram.fromBaseline(base, 10);
    expect(h.binCount).toBe(10);
    const ties = new TDigest().addAll(generate('duplicates', 50_000, 1));
    const hd = Histogram.fromBaseline(ties, 10);
    expect(hd.binCount).toBeLessThan(10);
    expect(() => Histogram.fromBaseline(new TDigest())).toThrow(/empty baseline/);
  });

  it('merges exactly, is commutative and associative, and leaves the argument alone (property)', () => {
    const vals = fc.array(fc.double({ noNaN: false }), { maxLength: 200 });
    fc.assert(
      fc.property(vals, vals, vals, (a, b, c) => {
        const mk = (xs: number[]) => new Histogram({ edges: [-1, 0, 1, 100] }).addAll(xs);
        const hb = mk(b);
        const before = hb.toBytes();
        const x = mk(a).merge(hb).merge(mk(c));
        const y = mk(a).merge(mk(b).merge(mk(c)));
        const z = mk([...a, ...b, ...c]);
        return eq(x.toBytes(), z.toBytes()) && eq(y.toBytes(), z.toBytes()) && eq(hb.toBytes(), before);
      }),
      { seed: 21, numRuns: 300 },
    );
  });

  it('refuses bad edges', () => {
    expect(() => new Histogram({ edges: [] })).toThrow(RangeError);
    expect(() => new Histogram({ edges: [1, 1] })).toThrow(/increase strictly/);
    expect(() => new Histogram({ edges: [0, NaN] })).toThrow(/not finite/);
  });

  it('round-trips byte for byte, integer and fractional weights; rejects malformed bytes', () => {
    const h = new Histogram({ edges: [1, 2, 3] }).addAll(generate('uniform', 1000, 1).map((x) => x * 4));
    const bytes = h.toBytes();
    expect(Histogram.fromBytes(bytes).toBytes()).toEqual(bytes);
    const hw = new Histogram({ edges: [1] }).add(0, 0.25).add(5, 2);
    expect(Histogram.fromBytes(hw.toBytes()).toBytes()).toEqual(hw.toBytes());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.nat(255), (noise, at, v) => {
        const m = bytes.slice();
        m[at % m.length] = v;
        for (const input of [noise, bytes.slice(0, at % bytes.length), m]) {
          try {
            Histogram.fromBytes(input);
          } catch (e) {
            if (!(e instanceof SummaryDecodeError)) return false;
          }
        }
        return true;
      }),
      { seed: 22, numRuns: 1500 },
    );
  });
});

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
