import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rng } from '../models/lib/rng.ts';
import {
  addOutcome,
  addRankingEvent,
  emptyOutcomes,
  estimateAuc,
  joinValue,
  judgePerformance,
  mergeOutcomes,
  newPredictionId,
  parseEvent,
  parseLabel,
  predictionTime,
  realized,
  referencePerformance,
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
    expect([0, 3, 1023].map((l) => parseLabel('multiclass-classification', l))).toEqual([0, 3, 1023]);
    for (const l of [-1, 1.5, 1024, '2', true, '__proto__']) expect(typeof parseLabel('multiclass-classification', l)).toBe('string');
    expect(parseLabel('top-k-recommendation', 1)).toContain('"event"');
    expect(parseEvent('click', 260)).toEqual({ event: 'click', item: '260' });
    expect(parseEvent('convert', 'sku-1')).toEqual({ event: 'convert', item: 'sku-1' });
    for (const [e, i] of [
      ['view', 1],
      ['click', ''],
      ['click', 1.5],
      ['click', 'x'.repeat(65)],
      ['click', null],
      ['__proto__', 1],
    ])
      expect(typeof parseEvent(e, i), `${e} ${i}`).toBe('string');
  });

  it('keeps what each task is scored on: a score, a value, a class, a served list', () => {
    const out = [{ name: 'p', dtype: 'float32' as const, shape: ['N'] }];
    expect(joinValue({ task: 'binary-classification', outputs: out }, { p: 0.3 })).toEqual({ value: 0.3 });
    expect(joinValue({ task: 'regression', outputs: out }, { p: [12] })).toEqual({ value: 12 });
    expect(joinValue({ task: 'regression', outputs: out }, { p: Number.NaN })).toBeUndefined();
    const multi = [
      { name: 'label', dtype: 'int64' as const, shape: ['N'] },
      { name: 'probabilities', dtype: 'float32' as const, shape: ['N', 3] },
    ];
    expect(joinValue({ task: 'multiclass-classification', outputs: multi }, { label: 2, probabilities: [0.1, 0.2, 0.7] })).toEqual({ value: 2 });
    // Without a label output, the most probable class.
    expect(joinValue({ task: 'multiclass-classification', outputs: multi.slice(1) }, { probabilities: [0.1, 0.7, 0.2] })).toEqual({ value: 1 });
    const ranked = [
      { name: 'movie_ids', dtype: 'int64' as const, shape: ['N', 'K'] },
      { name: 'scores', dtype: 'float32' as const, shape: ['N', 'K'] },
    ];
    expect(joinValue({ task: 'top-k-recommendation', outputs: ranked }, { movie_ids: [260, 1196, 1], scores: [3, 2, 1] })).toEqual({
      value: 3,
      items: ['260', '1196', '1'],
    });
    expect(joinValue({ task: 'top-k-recommendation', outputs: ranked }, { movie_ids: Array.from({ length: 500 }, (_, i) => i) })?.items).toHaveLength(100);
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

describe('multiclass and ranking outcomes', () => {
  it('multiclass: accuracy and macro F1 as scikit-learn computes them, whatever the split and merge order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 5 }),
        (rows, k) => {
          const parts = Array.from({ length: k }, () => emptyOutcomes());
          rows.forEach(([y, p], i) => addOutcome(parts[i % k], 'multiclass-classification', p, y));
          const r = realized(
            parts.reduceRight((a, b) => mergeOutcomes(a, b), emptyOutcomes()),
            'multiclass-classification',
          );
          expect(r.accuracy).toBeCloseTo(rows.filter(([y, p]) => y === p).length / rows.length, 12);
          // f1_score(average='macro') over the classes seen as labels or predictions.
          const classes = [...new Set(rows.flat())];
          const f1 = classes.map((c) => {
            const tp = rows.filter(([y, p]) => y === c && p === c).length;
            const fp = rows.filter(([y, p]) => y !== c && p === c).length;
            const fn = rows.filter(([y, p]) => y === c && p !== c).length;
            return (2 * tp) / (2 * tp + fp + fn);
          });
          expect(r.macro_f1).toBeCloseTo(f1.reduce((a, b) => a + b, 0) / classes.length, 12);
          expect(r.classes).toBe(classes.length);
        },
      ),
    );
  });

  it('ranking: CTR@k counts each list once, at its best click, however its clicks arrive', () => {
    // Lists of 10 served items; each gets clicks on served positions or elsewhere (-1), in any order.
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: -1, max: 9 }), { maxLength: 4 }), { minLength: 1, maxLength: 60 }), (lists) => {
        const s: OutcomeState = { ...emptyOutcomes(), predicted: lists.length, longest: 10 };
        for (const clicks of lists) {
          let best: number | undefined;
          clicks.forEach((pos, i) => {
            const after = pos >= 0 && (best === undefined || pos < best) ? pos : best;
            addRankingEvent(s, { first: i === 0, click: { served: pos >= 0, before: best, after } });
            best = after;
          });
        }
        const r = realized(s, 'top-k-recommendation');
        for (const k of [1, 3, 5, 10]) {
          const exact = lists.filter((c) => c.some((p) => p >= 0 && p < k)).length / lists.length;
          expect(r.ctr_at![String(k)], `CTR@${k}`).toBeCloseTo(exact, 12);
        }
        expect(Object.keys(r.ctr_at!)).toEqual(['1', '3', '5', '10']);
        const all = lists.flat();
        expect(r.clicks).toBe(all.length);
        expect(r.hit_rate ?? null).toEqual(all.length ? all.filter((p) => p >= 0).length / all.length : null);
        expect(r.labelled).toBe(lists.filter((c) => c.length).length);
      }),
    );
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

describe('performance against its reference', () => {
  it('takes the reference from the manifest quality report: held-out first, the served build', () => {
    const quality = (metrics: Record<string, { float32?: number; int8?: number }>) => ({ split: 's', metrics });
    expect(
      referencePerformance({
        task: 'binary-classification',
        serve: 'int8',
        quality: quality({ auc_test: { float32: 0.67, int8: 0.66 }, auc_held_out: { float32: 0.73, int8: 0.72 }, log_loss_test: { int8: 0.4 } }),
      }),
    ).toEqual({ metric: 'auc', source: 'manifest quality auc_held_out', value: 0.72 });
    expect(referencePerformance({ task: 'regression', serve: 'float32', quality: quality({ r2: { float32: 0.5 }, mae: { float32: 43 } }) })).toMatchObject({
      metric: 'mae',
      value: 43,
    });
    expect(referencePerformance({ task: 'top-k-recommendation', serve: 'int8', quality: quality({ recall_at_10: { int8: 0.1 } }) })).toBeUndefined();
    expect(referencePerformance({ task: 'multiclass-classification', serve: 'int8' })).toBeUndefined();
  });

  it('calls a window worse only when even its 99% bound is past the threshold: few labels never do by chance', () => {
    const r = rng(3);
    const window = (n: number, flip: boolean) => {
      const s = emptyOutcomes();
      for (let i = 0; i < n; i++) {
        const p = 0.05 + 0.9 * r();
        const y = r() < p ? 1 : 0;
        addOutcome(s, 'binary-classification', p, flip ? 1 - y : y);
      }
      return s;
    };
    // Labels drawn from the scores: AUC about 0.78, reference 0.8, threshold 0.72.
    for (const n of [60, 500, 5000]) expect(judgePerformance('binary-classification', window(n, false), 0.8, 0.1, 50)!.worse, `n=${n}`).toBe(false);
    // The labels' relation to the scores reversed (concept drift): AUC about 0.22.
    const flipped = judgePerformance('binary-classification', window(500, true), 0.8, 0.1, 50)!;
    expect(flipped.worse).toBe(true);
    expect(flipped.bound).toBeLessThan(0.72);
    expect(flipped).toMatchObject({ metric: 'auc', reference: 0.8, n: 500 });
    expect(flipped.threshold).toBeCloseTo(0.72, 12);
    // Too few labels: not judged at all.
    expect(judgePerformance('binary-classification', window(40, true), 0.8, 0.1, 50)).toBeUndefined();
    // An error metric is worse upward.
    const reg = emptyOutcomes();
    for (let i = 0; i < 400; i++) addOutcome(reg, 'regression', 100 + 80 * (r() - 0.5), 100);
    expect(judgePerformance('regression', reg, 20, 0.1, 50)!.worse).toBe(false);
    expect(judgePerformance('regression', reg, 10, 0.1, 50)!.worse).toBe(true);
  });
});
