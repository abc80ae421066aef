import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALL_SHAPES, generate, INTEGER_SHAPES, rankError, rng, SMOOTH_SHAPES, type Shape } from '../test/support/data.ts';
import { SummaryDecodeError } from './errors.ts';
import { TDigest } from './tdigest.ts';

const QS = [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999];

/** The documented worst case: twice the share one centroid may hold around q (see tdigest.ts). */
function worstCase(q: number, compression = 100): number {
  const v = Math.max(q * (1 - q), 1e-12);
  return (2 * Math.min(Math.PI * Math.sqrt(v), 30 * v, 1)) / compression;
}

function sortedCopy(xs: Float64Array): Float64Array {
  return xs.slice().sort();
}

function maxRankError(d: TDigest, sorted: Float64Array, qs = QS): number {
  return Math.max(...qs.map((q) => rankError(sorted, q, d.quantile(q))));
}

describe('TDigest basics', () => {
  it('an empty digest has count 0 and NaN quantiles and cdf (documented, not an error)', () => {
    const d = new TDigest();
    expect(d.count).toBe(0);
    expect(d.quantile(0.5)).toBeNaN();
    expect(d.cdf(1)).toBeNaN();
    expect(d.min).toBe(Infinity);
    expect(d.max).toBe(-Infinity);
  });

  it('one value is every quantile', () => {
    const d = new TDigest().add(3.5);
    for (const q of [0, 0.001, 0.5, 1]) expect(d.quantile(q)).toBe(3.5);
    expect(d.cdf(3.5)).toBe(0.5);
    expect(d.cdf(3)).toBe(0);
    expect(d.cdf(4)).toBe(1);
  });

  it('two values: extremes exact, median between', () => {
    const d = new TDigest().add(1).add(2);
    expect(d.quantile(0)).toBe(1);
    expect(d.quantile(1)).toBe(2);
    const m = d.quantile(0.5);
    expect(m).toBeGreaterThanOrEqual(1);
    expect(m).toBeLessThanOrEqual(2);
  });

  it('ten values are kept exactly', () => {
    const xs = Float64Array.from({ length: 10 }, (_, i) => i * 1.5 - 3);
    const d = new TDigest().addAll(xs);
    expect(d.size).toBe(10);
    expect(d.quantile(0)).toBe(-3);
    expect(d.quantile(1)).toBe(10.5);
    for (let i = 0; i < 10; i++) expect(rankError(xs, (i + 0.5) / 10, d.quantile((i + 0.5) / 10))).toBe(0);
  });

  it('counts NaN and ±Infinity apart, never in the centroids', () => {
    const d = new TDigest().addAll([1, NaN, 2, Infinity, -Infinity, Infinity, 3]);
    d.add(NaN, 5);
    expect(d.count).toBe(3);
    expect(d.nanCount).toBe(6);
    expect(d.posInfCount).toBe(2);
    expect(d.negInfCount).toBe(1);
    expect(d.min).toBe(1);
    expect(d.max).toBe(3);
    expect(Number.isFinite(d.quantile(0.999))).toBe(true);
  });

  it('refuses bad arguments with RangeError', () => {
    expect(() => new TDigest({ compression: 5 })).toThrow(RangeError);
    expect(() => new TDigest({ compression: NaN })).toThrow(RangeError);
    expect(() => new TDigest().add(1, 0)).toThrow(/weight/);
    expect(() => new TDigest().add(1, -1)).toThrow(RangeError);
    expect(() => new TDigest().add(1, Infinity)).toThrow(RangeError);
    expect(() => new TDigest().add(1).quantile(1.5)).toThrow(/quantile q/);
    expect(() => new TDigest().add(1).quantile(NaN)).toThrow(RangeError);
    expect(() => new TDigest().add(1).cdf(NaN)).toThrow(RangeError);
  });

  it('add and addAll build the same digest', () => {
    const xs = generate('lognormal', 20_000, 3);
    const a = new TDigest().addAll(xs);
    const b = new TDigest();
    for (const x of xs) b.add(x);
    expect(a.toBytes()).toEqual(b.toBytes());
  });

  it('weighted adds count as repeated values', () => {
    const r = rng(9);
    const a = new TDigest();
    const b = new TDigest();
    for (let i = 0; i < 5000; i++) {
      const x = Math.round(r() * 1000);
      const w = 1 + Math.floor(r() * 5);
      a.add(x, w);
      for (let k = 0; k < w; k++) b.add(x);
    }
    expect(a.count).toBe(b.count);
    for (const q of QS) expect(Math.abs(a.cdf(a.quantile(q)) - b.cdf(a.quantile(q)))).toBeLessThan(2e-3);
  });
});

describe('TDigest rank error against exact quantiles', () => {
  // The targets at compression 100 on 1e6 values of the smooth shapes: at most 1e-4
  // at q = 0.001 and 0.999, at most 1e-3 elsewhere.
  for (const shape of ['uniform', 'exponential', 'lognormal', 'bimodal'] as Shape[]) {
    it(`${shape}, 1e6 values: <= 1e-4 at the 0.001/0.999 tails, <= 1e-3 elsewhere`, () => {
      const xs = generate(shape, 1_000_000, 11);
      const d = new TDigest({ compression: 100 }).addAll(xs);
      const sorted = sortedCopy(xs);
      for (const q of QS) {
        const err = rankError(sorted, q, d.quantile(q));
        expect(err, `q=${q}`).toBeLessThanOrEqual(q === 0.001 || q === 0.999 ? 1e-4 : 1e-3);
      }
    });
  }

  // Every shape and size within the documented worst case (one centroid's share), plus
  // the 1/n that a discrete rank can add.
  for (const shape of ALL_SHAPES) {
    for (const n of [0, 1, 2, 10, 1000, 100_000]) {
      it(`${shape}, n=${n}: within the documented worst case`, () => {
        const xs = generate(shape, n, 5);
        const d = new TDigest().addAll(xs);
        expect(d.count).toBe(n);
        if (n === 0) return;
        const sorted = sortedCopy(xs);
        expect(d.min).toBe(sorted[0]);
        expect(d.max).toBe(sorted[n - 1]);
        for (const q of QS) {
          expect(rankError(sorted, q, d.quantile(q)), `q=${q}`).toBeLessThanOrEqual(worstCase(q) + 1 / n);
        }
      });
    }
  }

  it('cdf agrees with the exact mid-distribution function on smooth shapes', () => {
    for (const shape of SMOOTH_SHAPES) {
      const xs = generate(shape, 100_000, 21);
      const d = new TDigest().addAll(xs);
      const sorted = sortedCopy(xs);
      for (const q of QS) {
        const x = sorted[Math.floor(q * (sorted.length - 1))];
        const exact = (q * (sorted.length - 1) + 0.5) / sorted.length;
        expect(Math.abs(d.cdf(x) - exact), `${shape} q=${q}`).toBeLessThan(2e-3);
      }
    }
  });

  it('keeps its serialised size under 1.5 KB at compression 100 on 1e6 values', () => {
    for (const shape of SMOOTH_SHAPES) {
      const d = new TDigest().addAll(generate(shape, 1_000_000, 2));
      expect(d.toBytes().length, shape).toBeLessThanOrEqual(1536);
    }
  });
});

describe('TDigest merge', () => {
  it('merge(A, B) matches build(A ∪ B), including mixed-sign data', () => {
    for (const [sa, sb] of [
      ['mixed-sign', 'negative'],
      ['exponential', 'bimodal'],
      ['negative', 'uniform'],
      ['sorted', 'reversed'],
    ] as [Shape, Shape][]) {
      const a = generate(sa, 50_000, 1);
      const b = generate(sb, 30_000, 2);
      const merged = new TDigest().addAll(a).merge(new TDigest().addAll(b));
      const all = new Float64Array(a.length + b.length);
      all.set(a);
      all.set(b, a.length);
      const sorted = sortedCopy(all);
      const built = new TDigest().addAll(all);
      expect(merged.count).toBe(all.length);
      expect(merged.min).toBe(sorted[0]);
      expect(merged.max).toBe(sorted[sorted.length - 1]);
      for (const q of QS) {
        expect(rankError(sorted, q, merged.quantile(q)), `${sa}+${sb} merged q=${q}`).toBeLessThan(worstCase(q) / 4);
        expect(rankError(sorted, q, built.quantile(q)), `${sa}+${sb} built q=${q}`).toBeLessThan(worstCase(q) / 4);
      }
      console.log(
        `merge ${sa}+${sb}: max rank error merged ${maxRankError(merged, sorted).toExponential(2)}, built ${maxRankError(built, sorted).toExponential(2)}`,
      );
    }
  });

  it('merging 1000 small digests stays accurate', () => {
    const all = generate('lognormal', 200_000, 4);
    const total = new TDigest();
    for (let i = 0; i < 1000; i++) total.merge(new TDigest().addAll(all.subarray(i * 200, (i + 1) * 200)));
    expect(total.count).toBe(all.length);
    expect(maxRankError(total, sortedCopy(all))).toBeLessThan(2e-3);
  });

  it('merges itself as doubling', () => {
    const d = new TDigest().addAll(generate('uniform', 1000, 3));
    const m = d.quantile(0.5);
    d.merge(d);
    expect(d.count).toBe(2000);
    expect(Math.abs(d.quantile(0.5) - m)).toBeLessThan(0.02);
  });

  it('is commutative and associative within the rank-error bound (property)', () => {
    const arr = fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 400 });
    fc.assert(
      fc.property(arr, arr, arr, (xa, xb, xc) => {
        const d = (xs: number[]) => new TDigest({ compression: 20 }).addAll(xs);
        const ab = d(xa).merge(d(xb));
        const ba = d(xb).merge(d(xa));
        const abc1 = d(xa).merge(d(xb)).merge(d(xc));
        const abc2 = d(xa).merge(d(xb).merge(d(xc)));
        const all = Float64Array.from([...xa, ...xb, ...xc]).sort();
        const two = Float64Array.from([...xa, ...xb]).sort();
        for (const q of [0.01, 0.25, 0.5, 0.75, 0.99]) {
          const bound = worstCase(q, 20) + 2 / two.length;
          if (rankError(two, q, ab.quantile(q)) > bound) return false;
          if (rankError(two, q, ba.quantile(q)) > bound) return false;
          const b3 = worstCase(q, 20) + 2 / all.length;
          if (rankError(all, q, abc1.quantile(q)) > b3 || rankError(all, q, abc2.quantile(q)) > b3) return false;
        }
        return ab.count === ba.count && abc1.count === abc2.count && ab.min === ba.min && ab.max === ba.max;
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});

describe('TDigest bytes', () => {
  it('values of opposite sign near ±1.8e308 compress and encode (their difference overflows; the centroid mean must not)', () => {
    const d = new TDigest({ compression: 100 });
    for (let i = 0; i < 2000; i++) d.add(i % 2 ? 1.7e308 : -1.7e308);
    const bytes = d.toBytes();
    const back = TDigest.fromBytes(bytes);
    expect(back.count).toBe(2000);
    expect(back.min).toBe(-1.7e308);
    expect(back.max).toBe(1.7e308);
    expect(Number.isFinite(back.quantile(0.5))).toBe(true);
    expect(back.quantile(0.01)).toBeLessThan(0);
    expect(back.quantile(0.99)).toBeGreaterThan(0);
  });

  it('round-trips byte for byte, f32 and f64 means, every shape', () => {
    for (const shape of ALL_SHAPES) {
      for (const n of [0, 1, 2, 10, 1000, 50_000]) {
        const d = new TDigest().addAll(generate(shape, n, 6));
        d.add(NaN).add(Infinity);
        for (const meanPrecision of ['f32', 'f64'] as const) {
          const bytes = d.toBytes({ meanPrecision });
          const back = TDigest.fromBytes(bytes);
          expect(back.toBytes({ meanPrecision })).toEqual(bytes);
          expect(back.count).toBe(d.count);
          expect(back.nanCount).toBe(1);
          expect(back.posInfCount).toBe(1);
          if (meanPrecision === 'f64') expect(back.quantile(0.3)).toBe(d.quantile(0.3));
        }
      }
    }
  });

  it('round-trips non-integer weights', () => {
    const d = new TDigest().add(1, 0.5).add(2, 2.25).add(3, 1);
    const bytes = d.toBytes();
    expect(TDigest.fromBytes(bytes).toBytes()).toEqual(bytes);
    expect(TDigest.fromBytes(bytes).count).toBe(3.75);
  });

  it('round-trips any data (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: false }), { maxLength: 3000 }), fc.integer({ min: 10, max: 500 }), (xs, compression) => {
        const d = new TDigest({ compression }).addAll(xs);
        const bytes = d.toBytes();
        const back = TDigest.fromBytes(bytes);
        return equalBytes(back.toBytes(), bytes) && back.count === d.count;
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it('rejects malformed bytes with SummaryDecodeError only', () => {
    const good = new TDigest().addAll(generate('bimodal', 5000, 1)).toBytes();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.nat(255), (noise, at, value) => {
        for (const bytes of [noise, good.slice(0, at % good.length), mutate(good, at % good.length, value)]) {
          try {
            TDigest.fromBytes(bytes);
          } catch (e) {
            if (!(e instanceof SummaryDecodeError) || e.message.length === 0) return false;
          }
        }
        return true;
      }),
      { seed: 5, numRuns: 2000 },
    );
  });

  it('names what is wrong', () => {
    expect(() => TDigest.fromBytes(new Uint8Array())).toThrow(/truncated: t-digest format/);
    expect(() => TDigest.fromBytes(Uint8Array.of(9))).toThrow(/unsupported t-digest format 9/);
    const good = new TDigest().addAll([1, 2, 3]).toBytes();
    expect(() => TDigest.fromBytes(Uint8Array.of(...good, 0))).toThrow(/trailing/);
    // A centroid count of 2^40 in a tiny input: refused before anything is allocated.
    const huge = Uint8Array.of(1, 0, ...new Uint8Array(new Float64Array([100]).buffer), 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20);
    expect(() => TDigest.fromBytes(huge)).toThrow(/cannot fit|exceeds the limit/);
  });
});

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function mutate(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = value;
  return copy;
}

describe('TDigest on integer data with ties, merged from 50 parts', () => {
  // Exact digests (at most δ distinct values) meet the targets with no error at all. Past that, an
  // interpolated quantile between two tie groups would be off by the distance to the nearer group's
  // rank interval (1.5e-3 mid-distribution on the wide Poisson); a digest of integers answers integers.
  // The shapes (test/support/data.ts INTEGER_SHAPES) are bench:sketch's too.
  for (const [name, draw] of INTEGER_SHAPES) {
    it(`${name}: rank error <= 1e-4 at q = 0.001/0.999 and <= 1e-3 elsewhere, byte-exact round trip, <= 1.5 KB`, () => {
      const r = rng(name.length * 7919);
      const parts: TDigest[] = [];
      const all: number[] = [];
      for (let p = 0; p < 50; p++) {
        const values = Array.from({ length: 4000 }, () => draw(r));
        all.push(...values);
        parts.push(new TDigest().addAll(values));
      }
      const merged = parts.reduce((a, b) => a.merge(b), new TDigest());
      const sorted = Float64Array.from(all).sort();
      const distinct = new Set(all).size;
      expect(merged.exact, `${distinct} distinct values`).toBe(distinct <= 100);
      for (const q of [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]) {
        const tail = q <= 0.001 || q >= 0.999;
        expect(rankError(sorted, q, merged.quantile(q)), `q ${q}`).toBeLessThanOrEqual(tail ? 1e-4 : 1e-3);
      }
      expect(merged.integers).toBe(true);
      const bytes = merged.toBytes();
      expect(bytes.length).toBeLessThanOrEqual(1536);
      const back = TDigest.fromBytes(bytes);
      expect(back.toBytes()).toEqual(bytes);
      expect(back.integers).toBe(true);
      expect(back.quantile(0.37)).toBe(merged.quantile(0.37));
    });
  }

  it('integers: one non-integer added or merged ends it; the flag travels in the bytes and is checked there', () => {
    const ints = new TDigest().addAll(Array.from({ length: 5000 }, (_, i) => i % 700));
    expect(ints.integers && !ints.exact).toBe(true);
    expect(Number.isInteger(ints.quantile(0.3))).toBe(true);
    const mixed = ints.clone().add(2.5);
    expect(mixed.integers).toBe(false);
    expect(ints.clone().merge(new TDigest().add(0.25)).integers).toBe(false);
    expect(new TDigest().merge(ints).integers).toBe(true);
    // A digest of non-integers answers interpolated quantiles, as before.
    const halves = new TDigest().addAll(Array.from({ length: 5000 }, (_, i) => (i % 700) + 0.5));
    expect(halves.integers).toBe(false);
    // The flag on a digest whose min is not an integer is refused.
    const bytes = ints.toBytes();
    const lying = bytes.slice();
    // min: after format, flags, compression, the three counts (a byte each here) and the centroid count (a varint).
    new DataView(lying.buffer).setFloat64(1 + 1 + 8 + 3 + (ints.size < 128 ? 1 : 2), 0.5, true);
    expect(() => TDigest.fromBytes(lying)).toThrow(/a t-digest of integers has a value that is not one/);
    const noFlag = bytes.slice();
    noFlag[1] &= ~8;
    expect(TDigest.fromBytes(noFlag).integers).toBe(false);
  });
});
