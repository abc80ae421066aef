// The Sketch contract (sketch.ts), run over each of the three sketch classes with the same
// properties. What only one sketch promises (accuracy, bounds, its own byte layout) stays in its
// own test file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CategoricalSketch } from './categorical.ts';
import { SketchMergeError } from './errors.ts';
import { Histogram } from './histogram.ts';
import { createProfile, decodeSketch, encodeSummary, type Sketch, sketchToJSON } from './profile.ts';
import type { SketchKind } from './sketch.ts';
import { TDigest } from './tdigest.ts';

interface Subject<P, S extends Sketch, R> {
  kind: SketchKind;
  params: fc.Arbitrary<P>;
  make(params: P): S;
  rows: fc.Arbitrary<R[]>;
  add(s: S, row: R): void;
  /** What one row adds to `count`. */
  weight(row: R): number;
  /**
   * Whether merging sketches of these rows, in any order or grouping, gives the same describe():
   * the sketch holds them without approximation.
   */
  exact(params: P, rows: R[]): boolean;
  /** Sketches that a sketch made with `params` must refuse to merge, and how the refusal reads. */
  incompatible(params: P): [Sketch, RegExp][];
}

const anyDouble = fc.double();
const digestValue = fc.oneof({ arbitrary: fc.double({ min: -1e300, max: 1e300 }), weight: 20 }, fc.constantFrom(NaN, Infinity, -Infinity));

const tdigest: Subject<number, TDigest, number> = {
  kind: 'tdigest',
  params: fc.integer({ min: 10, max: 500 }),
  make: (compression) => new TDigest({ compression }),
  // Mostly small; sometimes past the 512-value buffer, so that a digest holds centroids and an
  // unflushed buffer at once. Finite values stay within ±1e300: past 2δ values near ±1.8e308 of
  // both signs, the digest's centroid sweep overflows (a t-digest bug of its own, not the contract's).
  rows: fc.oneof(
    { arbitrary: fc.array(digestValue, { maxLength: 60, size: 'max' }), weight: 4 },
    { arbitrary: fc.array(digestValue, { minLength: 513, maxLength: 1200, size: 'max' }), weight: 1 },
  ),
  add: (s, x) => s.add(x),
  weight: (x) => (Number.isFinite(x) ? 1 : 0),
  // Exact when it has seen at most ⌈δ⌉ distinct values (TDigest.exact: one centroid a value,
  // whatever the merge order); and below 2δ finite values, all distinct, no two can share a
  // centroid (one may hold at most 1/δ of the total).
  exact: (compression, rows) => {
    const finite = rows.filter(Number.isFinite).map((x) => x + 0);
    const distinct = new Set(finite).size;
    return distinct <= Math.ceil(compression) || (finite.length < 2 * compression && distinct === finite.length);
  },
  incompatible: () => [
    [new Histogram({ edges: [0] }).add(1), /cannot merge a histogram sketch into a tdigest sketch/],
    [new CategoricalSketch().add('a'), /cannot merge a categorical sketch into a tdigest sketch/],
  ],
};

const histogram: Subject<number[], Histogram, number> = {
  kind: 'histogram',
  params: fc
    .array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 8 })
    .map((xs) => [...new Set(xs.map((x) => x + 0))].sort((a, b) => a - b)),
  make: (edges) => new Histogram({ edges }),
  rows: fc.array(anyDouble, { maxLength: 200, size: 'max' }),
  add: (s, x) => s.add(x),
  weight: (x) => (Number.isNaN(x) ? 0 : 1),
  exact: () => true,
  incompatible: (edges) => [
    [new Histogram({ edges: edges.length > 1 ? edges.slice(1) : [edges[0] === 0 ? 1 : 0] }).add(0), /different edges/],
    [new TDigest().add(1), /cannot merge a tdigest sketch into a histogram sketch/],
    [new CategoricalSketch().add('a'), /cannot merge a categorical sketch into a histogram sketch/],
  ],
};

const categorical: Subject<number, CategoricalSketch, string> = {
  kind: 'categorical',
  params: fc.integer({ min: 1, max: 16 }),
  make: (capacity) => new CategoricalSketch({ capacity }),
  rows: fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', '', 'ünï ✈'), { maxLength: 80, size: 'max' }),
  add: (s, v) => s.add(v),
  weight: () => 1,
  // Exact until a value is evicted. (Another capacity is no incompatibility: such sketches merge.)
  exact: (capacity, rows) => new Set(rows).size <= capacity,
  incompatible: () => [
    [new TDigest().add(1), /cannot merge a tdigest sketch into a categorical sketch/],
    [new Histogram({ edges: [0] }).add(1), /cannot merge a histogram sketch into a categorical sketch/],
  ],
};

/** describe() as JSON carries it (−0 is 0, as the drift route sends it). */
function described(s: Sketch): unknown {
  return JSON.parse(JSON.stringify(s.describe()));
}

/** Everything a sketch holds: its bytes (t-digest means at full precision) and its JSON view. */
function state(s: Sketch): { bytes: number[]; json: unknown } {
  return { bytes: Array.from(s.encode({ meanPrecision: 'f64' })), json: JSON.parse(JSON.stringify(sketchToJSON(s))) };
}

function contract<P, S extends Sketch, R>(subject: Subject<P, S, R>): void {
  const build = (params: P, rows: R[]): S => {
    const s = subject.make(params);
    for (const row of rows) subject.add(s, row);
    return s;
  };
  const total = (rows: R[]) => rows.reduce((n, row) => n + subject.weight(row), 0);
  // A failing case with a thousand rows shrinks slowly: the time limit keeps that bounded (and fails).
  const run = { numRuns: 100, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true };

  describe(`Sketch contract: ${subject.kind}`, () => {
    it('kind names the sketch; count is the weight of the rows added; describe() holds that count', () => {
      fc.assert(
        fc.property(subject.params, subject.rows, (params, rows) => {
          const s = build(params, rows);
          expect(s.kind).toBe(subject.kind);
          expect(s.count).toBe(total(rows));
          expect(s.describe().count).toBe(total(rows));
        }),
        run,
      );
    });

    it('merge is commutative and associative in count, and in describe() where the sketch is exact', () => {
      // Some operands flushed (as decoded ones are), some not: merges take other paths.
      const flushes = fc.array(fc.boolean(), { minLength: 11, maxLength: 11 });
      fc.assert(
        fc.property(subject.params, subject.rows, subject.rows, subject.rows, flushes, (params, a, b, c, flush) => {
          let made = 0;
          const mk = (rows: R[]) => {
            const s = build(params, rows);
            if (flush[made++]) s.encode();
            return s;
          };
          const ab = mk(a).merge(mk(b));
          const ba = mk(b).merge(mk(a));
          const left = mk(a).merge(mk(b)).merge(mk(c));
          const right = mk(a).merge(mk(b).merge(mk(c)));
          expect(ab.count).toBe(total([...a, ...b]));
          expect(ba.count).toBe(ab.count);
          expect(left.count).toBe(total([...a, ...b, ...c]));
          expect(right.count).toBe(left.count);
          if (subject.exact(params, [...a, ...b, ...c])) {
            expect(described(ba)).toEqual(described(ab));
            expect(described(right)).toEqual(described(left));
            expect(described(left)).toEqual(described(mk([...a, ...b, ...c])));
          }
        }),
        run,
      );
    });

    it('merge never changes its argument, flushed or not', () => {
      fc.assert(
        fc.property(subject.params, subject.rows, subject.rows, (params, a, b) => {
          const into = build(params, a);
          const arg = build(params, b);
          const twin = build(params, b);
          into.merge(arg);
          expect(state(arg)).toEqual(state(twin));
          into.merge(arg); // flushed now
          expect(state(arg)).toEqual(state(twin));
          expect(into.count).toBe(total(a) + 2 * total(b));
        }),
        run,
      );
    });

    it('clone is independent: changing either leaves the other as it was', () => {
      fc.assert(
        fc.property(
          subject.params,
          subject.rows,
          subject.rows.filter((r) => r.length > 0),
          (params, rows, more) => {
            const s = build(params, rows);
            const c = s.clone();
            expect(c).not.toBe(s);
            expect(c.kind).toBe(s.kind);
            expect(c.count).toBe(s.count);
            if (subject.exact(params, rows)) expect(described(c)).toEqual(described(s));
            const cloneBefore = state(c);
            const twin = build(params, rows);
            for (const row of more) subject.add(c as S, row);
            expect(state(s)).toEqual(state(twin));
            for (const row of more) subject.add(s, row);
            expect(state(c)).not.toEqual(cloneBefore); // (the rows did change the clone)
            const c2 = s.clone();
            const c2Before = state(c2);
            for (const row of more) subject.add(s, row);
            expect(state(c2)).toEqual(c2Before);
          },
        ),
        run,
      );
    });

    it('encode() is what the summary format writes; decodeSketch reads it back to the same describe() and bytes', () => {
      fc.assert(
        fc.property(subject.params, subject.rows, (params, rows) => {
          const s = build(params, rows);
          for (const meanPrecision of ['f32', 'f64'] as const) {
            const bytes = s.encode({ meanPrecision });
            const back = decodeSketch(bytes);
            expect(back.kind).toBe(subject.kind);
            expect(back.count).toBe(s.count);
            expect(Array.from(back.encode({ meanPrecision }))).toEqual(Array.from(bytes));
            // f32 means round each centroid, so the rest is compared at full precision.
            if (meanPrecision === 'f64') {
              expect(described(back)).toEqual(described(s));
              expect(state(back)).toEqual(state(s));
            }
            // In a summary: features "x" -> this record, then no outputs (one byte) and the CRC.
            const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
            p.features.set('x', s);
            const summary = encodeSummary(p, { meanPrecision });
            expect(Array.from(summary.subarray(summary.length - 5 - bytes.length, summary.length - 5))).toEqual(Array.from(bytes));
          }
          expect(() => decodeSketch(Uint8Array.of(...s.encode(), 0))).toThrow(/trailing/);
        }),
        run,
      );
    });

    it('merge refuses another kind or incompatible parameters with SketchMergeError and changes nothing', () => {
      fc.assert(
        fc.property(subject.params, subject.rows, (params, rows) => {
          const s = build(params, rows);
          const twin = build(params, rows);
          for (const [other, message] of subject.incompatible(params)) {
            const otherBefore = state(other);
            expect(() => s.merge(other)).toThrow(SketchMergeError);
            expect(() => s.merge(other)).toThrow(message);
            expect(state(s)).toEqual(state(twin));
            expect(state(other)).toEqual(otherBefore);
          }
          // A look-alike (say, from another copy of core/) is refused too, not half merged.
          const lookAlike = { kind: subject.kind, count: 1 } as unknown as Sketch;
          expect(() => s.merge(lookAlike)).toThrow(SketchMergeError);
          expect(() => s.merge(lookAlike)).toThrow(/another copy of core/);
          expect(state(s)).toEqual(state(twin));
        }),
        run,
      );
    });

    it('merging an empty sketch changes nothing; merging into an empty one gives the same count (and describe() where exact)', () => {
      fc.assert(
        fc.property(subject.params, subject.rows, (params, rows) => {
          const s = build(params, rows);
          const twin = build(params, rows);
          expect(s.merge(subject.make(params))).toBe(s);
          expect(state(s)).toEqual(state(twin));
          const into = subject.make(params).merge(twin);
          expect(into.count).toBe(s.count);
          if (subject.exact(params, rows)) expect(described(into)).toEqual(described(s));
        }),
        run,
      );
    });
  });
}

contract(tdigest);
contract(histogram);
contract(categorical);

describe('Sketch contract: describe()', () => {
  // The figures the drift route has shown since before the interface existed.
  it('gives what the drift route shows: a digest numeric with nulls while empty, the 10 largest categories, a histogram count', () => {
    expect(new TDigest().add(NaN).describe()).toEqual({ kind: 'numeric', count: 0, min: null, max: null, p05: null, p50: null, p95: null });
    const d = new TDigest().addAll(Array.from({ length: 100 }, (_, i) => 100 - i));
    // 100 distinct values: an exact digest, whose quantiles are the inverse of the distribution (type 1).
    expect(d.describe()).toEqual({ kind: 'numeric', count: 100, min: 1, max: 100, p05: 5, p50: 50, p95: 95 });
    const c = new CategoricalSketch({ capacity: 32 });
    for (let i = 0; i < 12; i++) c.add(`v${i}`, 12 - i);
    expect(c.describe()).toEqual({ kind: 'categorical', count: 78, top: c.top(10) });
    expect(c.describe()).toMatchObject({ top: { length: 10, 0: { value: 'v0', count: 12, error: 0 } } });
    expect(new Histogram({ edges: [0, 1] }).addAll([-1, 0.5, 2, NaN]).describe()).toEqual({ kind: 'histogram', count: 3 });
  });
});
