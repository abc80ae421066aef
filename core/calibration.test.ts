import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rng } from '../models/lib/rng.ts';
import { calibrator, expectedCalibrationError, fitIsotonic, MAX_CALIBRATION_POINTS } from './calibration.ts';
import { checkManifest } from './manifest-check.ts';
import { estimateAuc } from './outcomes.ts';

/**
 * The isotonic fit by its definition, row by row: the non-decreasing function of the score with
 * least squared error (pool adjacent violators over the distinct scores, each with its rows).
 */
function isotonicByDefinition(scores: number[], labels: number[]): number[] {
  const distinct = [...new Set(scores)].sort((a, b) => a - b);
  const blocks: { sum: number; n: number }[] = [];
  for (const s of distinct) {
    const mine = labels.filter((_, i) => scores[i] === s);
    blocks.push({ sum: mine.reduce((a, b) => a + b, 0), n: mine.length });
    while (blocks.length > 1 && blocks[blocks.length - 2].sum / blocks[blocks.length - 2].n >= blocks[blocks.length - 1].sum / blocks[blocks.length - 1].n) {
      const b = blocks.pop()!;
      blocks[blocks.length - 1].sum += b.sum;
      blocks[blocks.length - 1].n += b.n;
    }
  }
  return blocks.flatMap((b) => Array<number>(b.n).fill(b.sum / b.n));
}

describe('isotonic calibration', () => {
  it('is non-decreasing, keeps the positives, has at most the knots asked, and matches the definition when nothing is pooled for size', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1 })), { minLength: 1, maxLength: 300 }), (rows) => {
        const scores = rows.map(([s]) => s / 1000);
        const labels = rows.map(([, y]) => y);
        const points = fitIsotonic(scores, labels, 1000);
        for (let i = 1; i < points.length; i++) {
          expect(points[i][0]).toBeGreaterThan(points[i - 1][0]);
          expect(points[i][1]).toBeGreaterThanOrEqual(points[i - 1][1]);
        }
        // Each row's fitted value: the knot whose block holds it is the value the definition gives.
        const want = isotonicByDefinition(scores, labels);
        expect(points.map(([, y]) => y.toFixed(12))).toEqual([...new Set(want.map((v) => v.toFixed(12)))]);
        // The positives are kept: each knot's rate times its rows sums to them.
        expect(want.reduce((a, b) => a + b, 0)).toBeCloseTo(
          labels.reduce((a, b) => a + b, 0),
          9,
        );
        const few = fitIsotonic(scores, labels, 4);
        expect(few.length).toBeLessThanOrEqual(Math.max(2, 4));
        for (let i = 1; i < few.length; i++) expect(few[i][1]).toBeGreaterThanOrEqual(few[i - 1][1]);
      }),
    );
  });

  it("turns an overconfident model's scores into probabilities: lower calibration error, and an AUC estimate (CBPE) near the realized one", () => {
    const r = rng(7);
    const n = 20_000;
    const scores: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const logit = 1.2 * (r() * 4 - 2);
      const p = 1 / (1 + Math.exp(-logit));
      labels.push(r() < p ? 1 : 0);
      scores.push(1 / (1 + Math.exp(-4 * logit))); // told with 4 times the confidence
    }
    const points = fitIsotonic(scores, labels);
    expect(points.length).toBeLessThanOrEqual(MAX_CALIBRATION_POINTS);
    const c = calibrator(points);
    const before = expectedCalibrationError(scores, labels);
    const after = expectedCalibrationError(scores, labels, c);
    expect(before).toBeGreaterThan(0.1);
    expect(after).toBeLessThan(0.02);
    // Realized AUC, exactly, against the estimates with and without the calibration.
    const order = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
    let neg = 0;
    let ordered = 0;
    let pos = 0;
    for (const i of order) {
      if (labels[i]) {
        ordered += neg;
        pos++;
      } else neg++;
    }
    const realized = ordered / (pos * neg);
    const sorted = order.map((i) => scores[i]);
    const quantile = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))];
    const naive = estimateAuc(quantile, n).auc!;
    const calibrated = estimateAuc(quantile, n, { calibrate: c }).auc!;
    expect(Math.abs(calibrated - realized)).toBeLessThan(0.01);
    expect(naive - realized).toBeGreaterThan(0.05);
  });

  it('reads knots linearly between them and flat beyond them', () => {
    const c = calibrator([
      [0.2, 0.1],
      [0.6, 0.5],
      [0.8, 0.9],
    ]);
    expect([0, 0.2, 0.4, 0.6, 0.7, 0.8, 1, Number.NaN].map((s) => Number(c(s).toFixed(12)))).toEqual([0.1, 0.1, 0.3, 0.5, 0.7, 0.9, 0.9, 0.1]);
  });

  it('is checked when a manifest carries one', () => {
    const base = {
      name: 'm',
      version: '1',
      task: 'binary-classification',
      inputs: [{ name: 'x', dtype: 'float32', shape: ['N'] }],
      outputs: [{ name: 'p', dtype: 'float32', shape: ['N'] }],
      features: [{ name: 'x', kind: 'numeric', input: 'x', range: [0, 1] }],
      sketchedOutputs: [{ name: 'p', kind: 'numeric' }],
    };
    const at = { name: 'm', version: '1' };
    const ok = checkManifest(
      {
        ...base,
        calibration: {
          method: 'isotonic',
          rows: 10,
          points: [
            [0.1, 0],
            [0.5, 0.4],
            [0.9, 1],
          ],
        },
      },
      at,
    );
    expect(ok.calibration?.points).toHaveLength(3);
    for (const [calibration, field] of [
      [{ method: 'platt', rows: 10, points: [[0.1, 0]] }, 'calibration.method'],
      [
        {
          method: 'isotonic',
          rows: 10,
          points: [
            [0.5, 0.4],
            [0.1, 0.5],
          ],
        },
        'calibration.points[1]',
      ],
      [
        {
          method: 'isotonic',
          rows: 10,
          points: [
            [0.1, 0.5],
            [0.5, 0.4],
          ],
        },
        'calibration.points[1]',
      ],
      [{ method: 'isotonic', rows: 10, points: [[0.1, 1.5]] }, 'calibration.points[0][1]'],
      [{ method: 'isotonic', rows: 10, points: Array.from({ length: 65 }, (_, i) => [i, 0.5]) }, 'calibration.points'],
      [{ method: 'isotonic', rows: 0, points: [[0.1, 0]] }, 'calibration.rows'],
    ] as const)
      expect(() => checkManifest({ ...base, calibration }, at), field).toThrow(expect.objectContaining({ field }));
  });
});
