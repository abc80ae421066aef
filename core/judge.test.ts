import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CategoricalSketch } from './categorical.ts';
import {
  alertSince,
  alertStep,
  alertWatch,
  EVIDENCE_ALLOWANCE,
  EVIDENCE_CAP,
  EVIDENCE_THRESHOLD,
  judgeSketch,
  judgeWindow,
  nextStreak,
  windowScore,
  type Streak,
} from './judge.ts';
import { CYCLE_MS } from './manifest.ts';
import { createProfile } from './profile.ts';
import { TDigest } from './tdigest.ts';
import { normal, rng } from '../test/support/data.ts';

const digest = (from: number, to: number, n = 2000) => new TDigest().addAll(Array.from({ length: n }, (_, i) => from + ((to - from) * i) / (n - 1)));

describe('judgeSketch and judgeWindow', () => {
  it('drifted when any statistic passes its threshold; no judgement without a comparable reference', () => {
    expect(judgeSketch(digest(0, 10), digest(0, 10))?.drifted).toBe(false);
    const moved = judgeSketch(digest(0, 10), digest(20, 30));
    expect(moved?.drifted).toBe(true);
    expect(Object.values(moved!.drift).some((r) => r?.drifted)).toBe(true);
    expect(judgeSketch(undefined, digest(0, 10))).toBeUndefined();
    expect(judgeSketch(new CategoricalSketch().add('a', 10), digest(0, 10))).toBeUndefined();
  });

  it('seasonal features are judged by range only; a shadow-only window judges its outputs alone', () => {
    const ref = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    ref.features.set('month', digest(1, 12));
    ref.outputs.set('p', digest(0, 1));
    const w = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    w.features.set('month', digest(3, 3, 500)); // one month: differs in shape, inside the range
    w.features.set('unknown', digest(0, 1));
    w.outputs.set('p', digest(0.9, 1));
    const calendar = judgeWindow(ref, w, { seasonal: new Set(['month']) });
    expect(calendar.features.get('month')).toMatchObject({ drifted: false });
    expect(Object.keys(calendar.features.get('month')!.drift)).toEqual(['out_of_range']);
    expect(calendar.features.has('unknown')).toBe(false);
    expect(judgeWindow(ref, w).features.get('month')?.drifted).toBe(true);
    const shadow = judgeWindow(ref, w, { shadowOnly: true });
    expect(shadow.features.size).toBe(0);
    expect(shadow.outputs.get('p')?.drifted).toBe(true);
  });

  it('a calendar feature with a cycle is judged in full by a window spanning the cycle, by range in a shorter one', () => {
    const ref = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    ref.features.set('day_of_week', digest(0, 6));
    const w = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    w.features.set('day_of_week', digest(2, 2, 500)); // one weekday: in range, not the week's shape
    const options = { seasonal: new Set(['day_of_week']), cycles: new Map([['day_of_week', CYCLE_MS.week]]) };
    const day = judgeWindow(ref, { ...w, windowStart: 0, windowEnd: CYCLE_MS.day }, options).features.get('day_of_week')!;
    expect(Object.keys(day.drift)).toEqual(['out_of_range']);
    expect(day.drifted).toBe(false);
    const week = judgeWindow(ref, { ...w, windowStart: 0, windowEnd: CYCLE_MS.week }, options).features.get('day_of_week')!;
    expect(week.drift.ks?.drifted).toBe(true);
    // Without a span (or without the cycle), by range as before.
    expect(judgeWindow(ref, w, options).features.get('day_of_week')?.drifted).toBe(false);
    expect(judgeWindow(ref, { ...w, windowStart: 0, windowEnd: CYCLE_MS.week }, { seasonal: options.seasonal }).features.get('day_of_week')?.drifted).toBe(
      false,
    );
  });
});

describe('windowScore: where a window lies between noise (0) and the bar (1)', () => {
  const sample = (r: () => number, n: number, shift = 0) => new TDigest().addAll(Array.from({ length: n }, () => shift + normal(r)));

  it('property: above 1 exactly when the judgement is drifted, for numeric and categorical sketches', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 20, max: 800 }), fc.double({ min: 0, max: 1.5, noNaN: true }), (seed, n, shift) => {
        const r = rng(seed);
        const j = judgeSketch(sample(r, 3000), sample(r, n, shift))!;
        expect(windowScore(j) > 1).toBe(j.drifted);
        const cats = (k: number, skew: number) => {
          const c = new CategoricalSketch();
          for (let i = 0; i < k; i++) c.add(String(Math.floor(r() ** (1 + skew) * 12)));
          return c;
        };
        const jc = judgeSketch(cats(3000, 0), cats(n, shift))!;
        expect(windowScore(jc) > 1).toBe(jc.drifted);
      }),
      { seed: 16, numRuns: 60 },
    );
  });

  it('sits near 0 for windows of the reference distribution and past 1 for a shift of half a deviation', () => {
    const r = rng(7);
    const reference = sample(r, 20_000);
    const scores = Array.from({ length: 40 }, () => windowScore(judgeSketch(reference, sample(r, 500))!));
    const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
    // Sampling noise is 0 on this scale on average; the largest of several statistics sits a little above it.
    expect(Math.abs(mean)).toBeLessThan(EVIDENCE_ALLOWANCE);
    expect(windowScore(judgeSketch(reference, sample(r, 500, 0.5))!)).toBeGreaterThan(1);
  });

  it('is -1 when no statistic can fire, 0 for an empty window (nothing past the noise)', () => {
    expect(windowScore({ drift: {}, drifted: false })).toBe(-1);
    expect(windowScore({ drift: { ks: judgeSketch(digest(0, 1), new TDigest())!.drift.ks }, drifted: false })).toBe(-1);
    expect(windowScore(judgeSketch(digest(0, 1), new TDigest())!)).toBe(0);
  });
});

describe('streaks and alerts', () => {
  it('hysteresis drifted windows open, as many clean ones resolve; since is the first drifted window of the streak', () => {
    let s: Streak | undefined;
    let open = false;
    const events: string[] = [];
    const plan = [false, true, true, false, true, true, true, true, false, false, true, false, false, false];
    plan.forEach((drifted, i) => {
      s = nextStreak(s, drifted, i * 60);
      const step = alertStep(s, open, 3);
      if (step === 'open') {
        open = true;
        events.push(`open@${i} since ${s.since}`);
      } else if (step === 'resolve') {
        open = false;
        events.push(`resolve@${i}`);
      }
    });
    expect(events).toEqual(['open@6 since 240', 'resolve@13']);
  });

  it('property: an alert never opens without hysteresis drifted windows in a row, nor resolves without as many clean ones', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), (plan, h) => {
        let s: Streak | undefined;
        let open = false;
        let run = { d: 0, c: 0 };
        plan.forEach((drifted, i) => {
          s = nextStreak(s, drifted, i);
          run = drifted ? { d: run.d + 1, c: 0 } : { d: 0, c: run.c + 1 };
          expect([s.drifted, s.clean]).toEqual([run.d, run.c]);
          if (drifted) expect(s.since).toBe(i - run.d + 1);
          const step = alertStep(s, open, h);
          if (step === 'open') {
            expect(run.d).toBeGreaterThanOrEqual(h);
            open = true;
          } else if (step === 'resolve') {
            expect(run.c).toBeGreaterThanOrEqual(h);
            open = false;
          }
        });
      }),
      { seed: 12, numRuns: 300 },
    );
  });
});

describe('sequential evidence (a CUSUM of window scores)', () => {
  it('adds each score less the allowance, capped per window and in total; two windows far past the bar open an alert before the hysteresis', () => {
    let s: Streak | undefined;
    const trace: number[] = [];
    for (const score of [100, 100, 100, 100, 0, 0]) {
      s = nextStreak(s, score > 1, trace.length * 60, score);
      trace.push(s.evidence);
    }
    const step = EVIDENCE_CAP - EVIDENCE_ALLOWANCE;
    expect(trace).toEqual([
      step,
      2 * step,
      3 * step,
      2 * EVIDENCE_THRESHOLD,
      2 * EVIDENCE_THRESHOLD - EVIDENCE_ALLOWANCE,
      2 * EVIDENCE_THRESHOLD - 2 * EVIDENCE_ALLOWANCE,
    ]);
    const two = nextStreak(nextStreak(undefined, true, 0, 100), true, 60, 100);
    expect(alertStep(two, false, 3)).toBe('open');
    expect(alertStep(two, false, 3, Number.POSITIVE_INFINITY)).toBeUndefined();
  });

  it('a drift under the bar in every window opens an alert by evidence alone, since where the evidence began; it resolves once clean windows bring the evidence down', () => {
    let s: Streak | undefined;
    let open = false;
    const events: string[] = [];
    // Two quiet windows, ten at 0.9 of the way to the bar (never drifted), then quiet ones.
    const plan = [0, 0, ...Array(10).fill(0.9), ...Array(12).fill(0)];
    plan.forEach((score, i) => {
      s = nextStreak(s, score > 1, i * 60, score);
      const step = alertStep(s, open, 3);
      if (step === 'open') {
        open = true;
        events.push(`open@${i} since ${alertSince(s)} drifted ${s.drifted}`);
      } else if (step === 'resolve') {
        open = false;
        events.push(`resolve@${i}`);
      }
    });
    // 0.4 a window: 2.8 ≥ 2.5 at the seventh (index 8); it rises to 4 and falls 0.5 a quiet window: 2 at index 15.
    expect(events).toEqual(['open@8 since 120 drifted 0', 'resolve@15']);
  });

  it("alertWatch holds one key's state in memory as the aggregator holds it in storage", () => {
    const watch = alertWatch(3);
    const plan = [0, 0, ...Array(10).fill(0.9), ...Array(12).fill(0)];
    const steps = plan
      .map((score, i) => watch.see(score > 1, i * 60, score))
      .map((step, i) => (step ? `${step}@${i}` : ''))
      .filter(Boolean);
    expect(steps).toEqual(['open@8', 'resolve@15']);
    expect(watch.open).toBe(false);
    // By hysteresis alone the same stream opens nothing.
    const alone = alertWatch(3, Number.POSITIVE_INFINITY);
    expect(plan.map((score, i) => alone.see(score > 1, i * 60)).filter(Boolean)).toEqual([]);
  });

  it('keys without scores keep no evidence, and a NaN score is none', () => {
    const s = nextStreak({ drifted: 0, clean: 0, since: null, evidence: 3, evidenceSince: 0 }, false, 60);
    expect([s.evidence, s.evidenceSince]).toEqual([0, null]);
    expect(nextStreak(undefined, false, 0, Number.NaN).evidence).toBe(0);
    // A streak stored before the evidence existed reads as none.
    expect(nextStreak({ drifted: 2, clean: 0, since: 0 }, true, 120, 1.2)).toMatchObject({ drifted: 3, since: 0, evidence: 0.7, evidenceSince: 120 });
  });

  it('property: the evidence follows the recurrence within [0, limit]; an alert opens only on hysteresis or evidence, resolves only when both are quiet', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -2, max: 6, noNaN: true }), { maxLength: 80 }),
        fc.integer({ min: 1, max: 5 }),
        fc.double({ min: 1.5, max: 6, noNaN: true }),
        (scores, h, threshold) => {
          let s: Streak | undefined;
          let open = false;
          let e = 0;
          scores.forEach((score, i) => {
            const before = s;
            s = nextStreak(s, score > 1, i, score, 2 * threshold);
            e = Math.min(2 * threshold, Math.max(0, e + Math.min(score, EVIDENCE_CAP) - EVIDENCE_ALLOWANCE));
            expect(s.evidence).toBeCloseTo(e, 9);
            expect(s.evidenceSince === null).toBe(s.evidence === 0);
            if (s.evidenceSince !== null && (before?.evidence ?? 0) > 0) expect(s.evidenceSince).toBe(before?.evidenceSince);
            const step = alertStep(s, open, h, threshold);
            if (step === 'open') {
              expect(s.drifted >= h || s.evidence >= threshold).toBe(true);
              expect(alertSince(s)).not.toBeNull();
              open = true;
            } else if (step === 'resolve') {
              expect(s.clean).toBeGreaterThanOrEqual(h);
              expect(s.evidence).toBeLessThan(threshold);
              open = false;
            }
          });
        },
      ),
      { seed: 1616, numRuns: 300 },
    );
  });
});
