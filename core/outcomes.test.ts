import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addOutcome,
  emptyOutcomes,
  estimateAuc,
  joinValue,
  mergeOutcomes,
  newPredictionId,
  parseLabel,
  predictionTime,
  realized,
  type OutcomeState,
} from './outcomes.ts';

describe('prediction ids', () => {
  it('carry their time, are unguessable (16 random bytes) and refuse anything else', () => {
    const id = newPredictionId(
      983_404_920_000,
      Uint8Array.from({ length: 16 }, (_, i) => i * 17),
    );
    expect(id).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    expect(predictionTime(id)).toBe(983_404_920_000);
    expect(predictionTime(`${id}:12`)).toBe(983_404_920_000);
    for (const bad of ['', 'x', `${id}:`, `${id}:12345`, `${id}x`, `__proto__`, 42, null, `${id.split('.')[0]}.short`, 'a'.repeat(60)])
      expect(predictionTime(bad), String(bad)).toBeUndefined();
  });

  it('checks labels per task', () => {
    expect([true, false, 1, 0].map((l) => parseLabel('binary-classification', l))).toEqual([1, 0, 1, 0]);
    for (const l of [2, '1', null, 0.5]) expect(typeof parseLabel('binary-classification', l)).toBe('string');
    expect(parseLabel('regression', 3.5)).toBe(3.5);
    for (const l of [Number.NaN, Infinity, '3', true]) expect(typeof parseLabel('regression', l)).toBe('string');
  });

  it('keeps a binary score or a regression value, nothing for other tasks', () => {
    const out = [{ name: 'p', dtype: 'float32' as const, shape: ['N'] }];
    expect(joinValue({ task: 'binary-classification', outputs: out }, { p: 0.3 })).toBe(0.3);
    expect(joinValue({ task: 'regression', outputs: out }, { p: [12] })).toBe(12);
    expect(joinValue({ task: 'top-k-recommendation', outputs: out }, { p: 1 })).toBeUndefined();
  });
});

/** Exact figures of (score, label) rows. */
function exact(rows: [number, number][]) {
  let s = 0;
  let n = 0;
  for (const [p, y] of rows)
    for (const [q, z] of rows)
      if (y === 1 && z === 0) {
        s += p > q ? 1 : p === q ? 0.5 : 0;
        n++;
      }
  return { auc: n ? s / n : null, logLoss: rows.reduce((a, [p, y]) => a - (y ? Math.log(p) : Math.log(1 - p)), 0) / rows.length };
}

describe('outcome state', () => {
  it('any split and merge order of the labels gives the exact figures (AUC within its documented bound)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0.001, max: 0.999, noNaN: true }), fc.integer({ min: 0, max: 1 })), { minLength: 2, maxLength: 120 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        (rows, cuts) => {
          // The rows in several states (as if labelled by different calls, in pieces), merged in a shuffled order.
          const parts: OutcomeState[] = cuts.map(() => emptyOutcomes());
          rows.forEach(([p, y], i) => addOutcome(parts[(cuts[i % cuts.length] + i) % parts.length], 'binary-classification', p, y));
          const merged = parts.reverse().reduce((a, b) => mergeOutcomes(a, b), emptyOutcomes());
          const r = realized({ ...merged, predicted: rows.length }, 'binary-classification');
          const e = exact(rows);
          expect(r.labelled).toBe(rows.length);
          if (e.auc === null) expect(r.auc).toBeNull();
          else {
            // The bound: half the share of positive-negative pairs that fall in one bin of width 0.001.
            const bin = (p: number) => Math.min(999, Math.floor(p * 1000));
            let same = 0;
            let pairs = 0;
            for (const [p, y] of rows)
              for (const [q, z] of rows)
                if (y === 1 && z === 0) {
                  pairs++;
                  if (bin(p) === bin(q)) same++;
                }
            expect(Math.abs(r.auc! - e.auc)).toBeLessThanOrEqual(same / pairs / 2 + 1e-12);
          }
          expect(r.log_loss).toBeCloseTo(e.logLoss, 6);
          expect(r.calibration!.reduce((a, d) => a + d.n, 0)).toBe(rows.length);
        },
      ),
    );
  });

  it('regression: MAE, RMSE and bias of the errors', () => {
    const s = emptyOutcomes();
    for (const [v, y] of [
      [10, 12],
      [5, 4],
      [7, 7],
    ])
      addOutcome(s, 'regression', v, y);
    expect(realized(s, 'regression')).toMatchObject({ labelled: 3, mae: 1, bias: -1 / 3 });
    expect(realized(s, 'regression').rmse).toBeCloseTo(Math.sqrt(5 / 3), 12);
  });
});

describe('estimated AUC (CBPE)', () => {
  /** Deterministic pseudo-random numbers. */
  const lcg = (seed: number) => () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;

  it('on calibrated scores, the realized AUC falls inside the stated band, window after window', () => {
    const r = lcg(42);
    let inside = 0;
    for (let w = 0; w < 40; w++) {
      // Scores from a skewed distribution; each row positive with probability equal to its score.
      const rows = Array.from({ length: 400 }, () => {
        const s = r() ** 2;
        return [s, r() < s ? 1 : 0] as [number, number];
      });
      const sorted = rows.map((x) => x[0]).sort((a, b) => a - b);
      const est = estimateAuc((q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))], rows.length);
      expect(est.valid).toBe(true);
      const st = emptyOutcomes();
      for (const [p, y] of rows) addOutcome(st, 'binary-classification', p, y);
      const real = realized(st, 'binary-classification').auc!;
      if (real >= est.band![0] && real <= est.band![1]) inside++;
    }
    // A 99% band: at most a window or two of forty outside by chance.
    expect(inside).toBeGreaterThanOrEqual(38);
  });

  it('says when it cannot be trusted, and why', () => {
    expect(estimateAuc(() => 0.3, 50)).toMatchObject({ valid: false, reasons: ['50 rows, fewer than 100'] });
    expect(estimateAuc((q) => q, 500, { outsideShare: 0.2 }).reasons).toEqual(['20.0% of the scores are outside the range the reference saw']);
    expect(estimateAuc(() => 0, 500)).toMatchObject({ auc: null, valid: false });
  });
});
