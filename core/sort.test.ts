import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sortFloat64 } from './sort.ts';

function reference(vals: number[], wts?: number[]): { v: number[]; w?: number[] } {
  const idx = vals.map((_, i) => i).sort((a, b) => vals[a] - vals[b] || a - b);
  return { v: idx.map((i) => vals[i]), w: wts && idx.map((i) => wts[i]) };
}

describe('sortFloat64', () => {
  it('sorts any finite doubles like a comparison sort (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 3000 }), (xs) => {
        const a = Float64Array.from(xs);
        sortFloat64(a, a.length);
        const want = reference(xs).v;
        return a.every((v, i) => v === want[i] || (v === 0 && want[i] === 0));
      }),
      { seed: 31, numRuns: 300 },
    );
  });

  it('carries weights along with their values', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: -1e6, max: 1e6 }), fc.integer({ min: 1, max: 9 })), { maxLength: 2000 }), (pairs) => {
        // Distinct values, so the pairing is unambiguous.
        const seen = new Set<number>();
        const uniq = pairs.filter(([v]) => !seen.has(v) && seen.add(v));
        const v = Float64Array.from(uniq.map((p) => p[0] / 7));
        const w = Float64Array.from(uniq.map((p) => p[1]));
        sortFloat64(v, v.length, w);
        const want = reference(
          uniq.map((p) => p[0] / 7),
          uniq.map((p) => p[1]),
        );
        return Array.from(v).every((x, i) => x === want.v[i]) && Array.from(w).every((x, i) => x === want.w![i]);
      }),
      { seed: 32, numRuns: 200 },
    );
  });

  it('sorts only the first n values', () => {
    const a = Float64Array.from([5, 3, 1, 9, 0, -2, 8]);
    sortFloat64(a, 4);
    expect(Array.from(a)).toEqual([1, 3, 5, 9, 0, -2, 8]);
  });

  it('stays fast on values that tie in their upper 32 bits (timestamps a few ms apart)', () => {
    const n = 50_000;
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = 1.7e12 + ((i * 7919) % n);
    sortFloat64(a, n);
    for (let i = 1; i < n; i++) expect(a[i]).toBeGreaterThanOrEqual(a[i - 1]);
  });

  it('orders -0 before +0 and handles subnormals and extremes', () => {
    const a = Float64Array.from([0, -0, 5e-324, -5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 1, -1, ...new Array(100).fill(0.5)]);
    sortFloat64(a, a.length);
    expect(a[0]).toBe(-Number.MAX_VALUE);
    expect(a[a.length - 1]).toBe(Number.MAX_VALUE);
    for (let i = 1; i < a.length; i++) expect(a[i]).toBeGreaterThanOrEqual(a[i - 1]);
  });
});
