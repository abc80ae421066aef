import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CategoricalSketch } from './categorical.ts';
import { alertStep, judgeSketch, judgeWindow, nextStreak, type Streak } from './judge.ts';
import { createProfile } from './profile.ts';
import { TDigest } from './tdigest.ts';

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
