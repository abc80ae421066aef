import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { categories } from '../test/support/data.ts';
import { CategoricalSketch } from './categorical.ts';
import { SummaryDecodeError } from './errors.ts';

function zipfStream(n: number, distinct: number, seed: number, s = 1.1): string[] {
  const names = Array.from({ length: distinct }, (_, i) => `v${i}`);
  return categories(
    n,
    seed,
    names,
    names.map((_, i) => 1 / (i + 1) ** s),
  );
}

function exactCounts(xs: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

/** Asserts the Space-Saving guarantees of `s` against the exact counts of the stream. */
function checkBounds(s: CategoricalSketch, exact: Map<string, number>): void {
  const n = [...exact.values()].reduce((a, b) => a + b, 0);
  expect(s.count).toBe(n);
  for (const { value, count, error } of s.top()) {
    const truth = exact.get(value) ?? 0;
    expect(truth, value).toBeLessThanOrEqual(count);
    expect(truth, value).toBeGreaterThanOrEqual(count - error);
  }
  expect(s.absentBound).toBeLessThanOrEqual(n / s.capacity + 1e-9);
  const monitored = new Set(s.top().map((c) => c.value));
  for (const [value, truth] of exact) {
    if (!monitored.has(value)) expect(truth, value).toBeLessThanOrEqual(s.absentBound);
    if (truth > n / s.capacity) expect(monitored.has(value), `${value} (${truth} > N/m) is monitored`).toBe(true);
  }
  const { counts, other } = s.distribution();
  expect([...counts.values()].reduce((a, b) => a + b, 0) + other).toBe(n);
}

describe('CategoricalSketch', () => {
  it('is exact up to its capacity', () => {
    const s = new CategoricalSketch({ capacity: 10 });
    const xs = zipfStream(5000, 10, 1);
    for (const x of xs) s.add(x);
    expect(s.exact).toBe(true);
    const exact = exactCounts(xs);
    for (const { value, count, error } of s.top()) {
      expect(count).toBe(exact.get(value));
      expect(error).toBe(0);
    }
    expect(s.distribution().other).toBe(0);
  });

  it('holds the Space-Saving bounds past its capacity', () => {
    for (const [distinct, capacity] of [
      [1000, 32],
      [200, 64],
      [50, 16],
    ]) {
      const xs = zipfStream(50_000, distinct, distinct);
      const s = new CategoricalSketch({ capacity });
      for (const x of xs) s.add(x);
      expect(s.exact).toBe(false);
      checkBounds(s, exactCounts(xs));
    }
  });

  it('finds the heavy hitters of a skewed stream', () => {
    const xs = zipfStream(100_000, 5000, 3, 1.3);
    const s = new CategoricalSketch({ capacity: 64 });
    for (const x of xs) s.add(x);
    const top5 = s.top(5).map((c) => c.value);
    expect(top5).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });

  it('merge keeps the bounds, for any split of any stream (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 600 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 600 }),
        fc.integer({ min: 1, max: 16 }),
        (a, b, capacity) => {
          const xa = a.map((v) => `c${v}`);
          const xb = b.map((v) => `c${v}`);
          const sa = new CategoricalSketch({ capacity });
          const sb = new CategoricalSketch({ capacity });
          for (const x of xa) sa.add(x);
          for (const x of xb) sb.add(x);
          const ab = sa.clone().merge(sb);
          const ba = sb.clone().merge(sa);
          checkBounds(ab, exactCounts([...xa, ...xb]));
          // Commutative exactly.
          expect(ab.toBytes()).toEqual(ba.toBytes());
        },
      ),
      { seed: 11, numRuns: 300 },
    );
  });

  it('merge is associative within the bounds (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 300 }), { minLength: 3, maxLength: 3 }),
        fc.integer({ min: 2, max: 12 }),
        ([a, b, c], capacity) => {
          const mk = (xs: number[]) => {
            const s = new CategoricalSketch({ capacity });
            for (const x of xs) s.add(`k${x}`);
            return s;
          };
          const exact = exactCounts([...a, ...b, ...c].map((x) => `k${x}`));
          checkBounds(mk(a).merge(mk(b)).merge(mk(c)), exact);
          checkBounds(mk(a).merge(mk(b).merge(mk(c))), exact);
        },
      ),
      { seed: 12, numRuns: 200 },
    );
  });

  it('round-trips byte for byte and rejects malformed bytes with SummaryDecodeError', () => {
    const s = new CategoricalSketch({ capacity: 16 });
    for (const x of zipfStream(3000, 100, 4)) s.add(x);
    s.add('ünïcødé ✈', 3);
    const bytes = s.toBytes();
    expect(CategoricalSketch.fromBytes(bytes).toBytes()).toEqual(bytes);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), fc.nat(255), (noise, at, v) => {
        const mutated = bytes.slice();
        mutated[at % bytes.length] = v;
        for (const input of [noise, bytes.slice(0, at % bytes.length), mutated]) {
          try {
            CategoricalSketch.fromBytes(input);
          } catch (e) {
            if (!(e instanceof SummaryDecodeError)) return false;
          }
        }
        return true;
      }),
      { seed: 13, numRuns: 1500 },
    );
    expect(() => CategoricalSketch.fromBytes(Uint8Array.of(1, 4, 10, 0, 2, 1, 0x61, 3, 0, 1, 0x61, 2, 0))).toThrow(/appears twice/);
    expect(() => CategoricalSketch.fromBytes(Uint8Array.of(1, 4, 1, 0, 1, 1, 0x61, 3, 0))).toThrow(/exceed the total/);
  });

  it('refuses bad arguments', () => {
    expect(() => new CategoricalSketch({ capacity: 0 })).toThrow(RangeError);
    expect(() => new CategoricalSketch().add('a', 1.5)).toThrow(/positive integer/);
    expect(() => new CategoricalSketch().add('x'.repeat(300))).toThrow(/longer than 256/);
    expect(() => new CategoricalSketch().add(5 as unknown as string)).toThrow(TypeError);
  });
});

describe('merge fast path', () => {
  it('adding counters in place gives the same sketch, byte for byte, as the general merge (property)', () => {
    const values = fc.constantFrom(...Array.from({ length: 40 }, (_, i) => `v${i}`));
    fc.assert(
      fc.property(fc.array(values, { maxLength: 120 }), fc.array(values, { maxLength: 60 }), fc.integer({ min: 1, max: 50 }), (a, b, capacity) => {
        const sa = new CategoricalSketch({ capacity });
        for (const v of a) sa.add(v);
        // Same capacity (other may have evicted: the general path), and a larger one that never
        // evicts (the in-place path, evicting here when this side is full).
        for (const bCapacity of [capacity, 64]) {
          const sb = new CategoricalSketch({ capacity: bCapacity });
          for (const v of b) sb.add(v);
          const expected = reference(CategoricalSketch.fromBytes(sa.toBytes()), sb);
          const got = sa.clone().merge(sb);
          expect(Array.from(got.toBytes())).toEqual(Array.from(expected.toBytes()));
          expect(got.top()).toEqual(expected.top());
          expect(got.absentBound).toBe(expected.absentBound);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** The general merge formula (Agarwal et al.), written out independently of the class. */
function reference(a: CategoricalSketch, b: CategoricalSketch): CategoricalSketch {
  const m = new Map<string, { count: number; error: number }>();
  for (const x of a.top()) m.set(x.value, { count: x.count + b.absentBound, error: x.error + b.absentBound });
  for (const x of b.top()) {
    const mine = m.get(x.value);
    if (mine) {
      mine.count += x.count - b.absentBound;
      mine.error += x.error - b.absentBound;
    } else m.set(x.value, { count: x.count + a.absentBound, error: x.error + a.absentBound });
  }
  const items = [...m].map(([value, c]) => ({ value, ...c })).sort((p, q) => q.count - p.count || (p.value < q.value ? -1 : p.value > q.value ? 1 : 0));
  let absent = a.absentBound + b.absentBound;
  if (items.length > a.capacity) absent = Math.max(absent, items[a.capacity].count);
  const kept = items.slice(0, a.capacity);
  // Through the wire format, the one public way to build a sketch from counters.
  const w: number[] = [];
  const varint = (n: number) => {
    while (n >= 0x80) {
      w.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    w.push(n);
  };
  w.push(1);
  varint(a.capacity);
  varint(a.count + b.count);
  varint(absent);
  varint(kept.length);
  for (const it of kept) {
    const bytes = new TextEncoder().encode(it.value);
    varint(bytes.length);
    w.push(...bytes);
    varint(it.count);
    varint(it.error);
  }
  return CategoricalSketch.fromBytes(Uint8Array.from(w));
}
