import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createProfile, type Profile } from './profile.ts';
import { assignVersion } from './routing.ts';
import {
  analyzeStage,
  DEFAULT_PLAN,
  DEFAULT_THRESHOLDS,
  parseDurationMs,
  rollbackTable,
  rolloutPlanToJSON,
  stageTable,
  validateRolloutPlan,
  type RolloutStage,
} from './rollout.ts';
import { TDigest } from './tdigest.ts';
import { ValidationError } from './validate.ts';

/** A seeded profile: `rows` rows, `errors` of them failed, latencies around `latencyMs`, scores from `score`. */
function profile(
  version: string,
  {
    rows,
    errors = 0,
    latencyMs = 10,
    score = (i: number) => (i % 100) / 100,
    shadow = false,
    agree,
  }: {
    rows: number;
    errors?: number;
    latencyMs?: number;
    score?: (i: number) => number;
    shadow?: boolean;
    agree?: number;
  },
): Profile {
  const p = createProfile({ model: 'm', modelVersion: version, windowStart: 0, windowEnd: 60_000 });
  const out = new TDigest();
  for (let i = 0; i < rows; i++) {
    out.add(score(i));
    p.latency.add(latencyMs + ((i * 7) % 10) / 10);
  }
  p.outputs.set('p', out);
  p.counters.rows = rows;
  p.counters.errors = errors;
  if (shadow) {
    p.counters.shadowRows = rows;
    p.counters.shadowCompared = rows;
    p.counters.shadowAgree = agree ?? rows;
  }
  return p;
}

const canary: RolloutStage = { kind: 'canary', share: 0.05, minRows: 200, minDurationMs: 60_000 };
const shadowStage: RolloutStage = { kind: 'shadow', share: 0.1, minRows: 200, minDurationMs: 60_000 };
const t = DEFAULT_THRESHOLDS;

describe('rollout plans', () => {
  it('reads ISO 8601 durations of seconds to days, and nothing else', () => {
    expect(parseDurationMs('PT30S')).toBe(30_000);
    expect(parseDurationMs('PT10M')).toBe(600_000);
    expect(parseDurationMs('PT1H30M')).toBe(5_400_000);
    expect(parseDurationMs('P1DT12H')).toBe(129_600_000);
    for (const bad of ['P', 'PT', '10M', 'PT-1M', 'PT1.5M', 'P1W', 'pt10m', 'P1DT']) expect(parseDurationMs(bad), bad).toBeUndefined();
  });

  it('fills defaults, keeps what is given, and round-trips through its JSON form', () => {
    expect(validateRolloutPlan(undefined)).toEqual(DEFAULT_PLAN);
    const plan = validateRolloutPlan({
      shadow: { sample_rate: 0.2, min_rows: 50, min_duration: 'PT1M' },
      steps: [{ share: 0.1 }, { share: 0.5, min_rows: 10, min_duration: 'PT30S' }, { share: 1 }],
      thresholds: { shadow_agreement: 0.95 },
    });
    expect(plan.stages).toEqual([
      { kind: 'shadow', share: 0.2, minRows: 50, minDurationMs: 60_000 },
      { kind: 'canary', share: 0.1, minRows: 200, minDurationMs: 600_000 },
      { kind: 'canary', share: 0.5, minRows: 10, minDurationMs: 30_000 },
    ]);
    expect(plan.thresholds).toEqual({ ...DEFAULT_THRESHOLDS, shadowAgreement: 0.95 });
    expect(validateRolloutPlan(rolloutPlanToJSON(plan))).toEqual(plan);
    expect(validateRolloutPlan({ shadow: null, steps: [{ share: 0.5 }] }).stages.map((s) => s.kind)).toEqual(['canary']);
  });

  it('refuses a bad plan with an error naming the field', () => {
    const cases: [unknown, string][] = [
      [[1], 'plan'],
      [{ stepz: [] }, 'stepz'],
      [{ steps: [{ share: 0.5 }, { share: 0.2 }] }, 'steps[1].share'],
      [{ steps: [{ share: 0.5 }, { share: 0.5 }] }, 'steps[1].share'],
      [{ steps: [{ share: 1 }, { share: 0.5 }] }, 'steps[0].share'],
      [{ steps: [{ share: 0 }] }, 'steps[0].share'],
      [{ steps: [{ share: '0.5' }] }, 'steps[0].share'],
      [{ steps: [{ share: 0.5, min_rows: 1.5 }] }, 'steps[0].min_rows'],
      [{ steps: [{ share: 0.5, min_duration: 'ten minutes' }] }, 'steps[0].min_duration'],
      [{ steps: [{ share: 0.5, __proto__x: 1 }] }, 'steps[0].__proto__x'],
      [{ shadow: { sample_rate: 2 } }, 'shadow.sample_rate'],
      [{ thresholds: { error_rate: -1 } }, 'thresholds.error_rate'],
      [{ thresholds: { constructor: 1 } }, 'thresholds.constructor'],
      [{ steps: Array.from({ length: 21 }, (_, i) => ({ share: (i + 1) / 22 })) }, 'steps'],
    ];
    for (const [plan, field] of cases) {
      const err = (() => {
        try {
          validateRolloutPlan(plan);
        } catch (e) {
          return e;
        }
      })();
      expect(err, JSON.stringify(plan)).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toBe(field);
    }
  });
});

describe('stage tables', () => {
  it('keeps other shadows, adds the candidate as a shadow or the canary, and rolls back to stable without it', () => {
    const base = { stable: '1', shadows: [{ version: 'x', sampleRate: 0.1 }] };
    expect(stageTable(base, '2', shadowStage)).toEqual({
      stable: '1',
      shadows: [
        { version: 'x', sampleRate: 0.1 },
        { version: '2', sampleRate: 0.1 },
      ],
    });
    expect(stageTable(base, '2', canary)).toEqual({ stable: '1', canary: { version: '2', share: 0.05 }, shadows: [{ version: 'x', sampleRate: 0.1 }] });
    expect(stageTable(base, '2', undefined)).toEqual({ stable: '2', shadows: [{ version: 'x', sampleRate: 0.1 }] });
    expect(rollbackTable({ stable: '1', shadows: [{ version: '2', sampleRate: 1 }] }, '2')).toEqual({ stable: '1' });
  });

  it('is sticky across steps: a caller on the candidate stays on it as the share rises', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string(), { minLength: 1, maxLength: 50 }),
        fc.array(fc.double({ min: 0.0001, max: 0.9999, noNaN: true }), { minLength: 2, maxLength: 6 }),
        (keys, raw) => {
          const shares = [...new Set(raw)].sort((a, b) => a - b);
          for (const key of keys) {
            let onCandidate = false;
            for (const share of shares) {
              const v = assignVersion(stageTable({ stable: '1' }, '2', { ...canary, share }), key);
              if (onCandidate) expect(v).toBe('2');
              onCandidate = v === '2';
            }
            expect(assignVersion(stageTable({ stable: '1' }, '2', undefined), key)).toBe('2');
          }
        },
      ),
    );
  });
});

describe('stage analysis', () => {
  const minute = 60_000;
  it('passes a candidate like stable once it has its rows and its time, and waits before', () => {
    const ev = { stable: profile('1', { rows: 4000 }), candidate: profile('2', { rows: 250 }), elapsedMs: 2 * minute };
    const a = analyzeStage(canary, t, ev);
    expect(a.verdict, JSON.stringify(a.checks)).toBe('pass');
    expect(a.checks.map((c) => c.name)).toEqual(['rows', 'duration', 'error_rate', 'fallback_rate', 'latency_p50', 'latency_p99', 'output:p']);
    expect(analyzeStage(canary, t, { ...ev, elapsedMs: 30_000 }).verdict).toBe('wait');
    const few = analyzeStage(canary, t, { ...ev, candidate: profile('2', { rows: 150, errors: 150 }) });
    expect(few.verdict).toBe('wait');
    expect(few.checks.find((c) => c.name === 'rows')!.detail).toContain('candidate 150');
  });

  it('fails a candidate that errors, is slower, or answers differently, naming the check and its evidence', () => {
    const stable = profile('1', { rows: 4000, errors: 4 });
    const fail = (candidate: Profile, ...failed: string[]) => {
      const a = analyzeStage(canary, t, { stable, candidate, elapsedMs: 0 });
      expect(a.verdict).toBe('fail');
      expect(a.checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual(failed);
      return a.checks.find((c) => c.name === failed[0])!;
    };
    expect(fail(profile('2', { rows: 300, errors: 30 }), 'error_rate').detail).toContain('10.00% against stable');
    // p99 from 300 rows: too few rows beyond it to fail on (it waits); p50 is sure.
    expect(fail(profile('2', { rows: 300, latencyMs: 40 }), 'latency_p50').candidate).toBeGreaterThan(39);
    const slowTail = analyzeStage(canary, t, { stable: profile('1', { rows: 4000 }), candidate: profile('2', { rows: 1200, latencyMs: 40 }), elapsedMs: 0 });
    expect(slowTail.checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual(['latency_p50', 'latency_p99']);
    expect(fail(profile('2', { rows: 300, score: (i) => 0.5 + (i % 50) / 100 }), 'output:p').detail).toMatch(/psi .*jensen_shannon/);
  });

  it('waits on a rise that sampling noise could give, rather than guessing', () => {
    // 3 errors in 200 rows against 0.1%: 1.5% is past +1 point, but not beyond noise.
    const a = analyzeStage(canary, t, {
      stable: profile('1', { rows: 4000, errors: 4 }),
      candidate: profile('2', { rows: 200, errors: 3 }),
      elapsedMs: minute,
    });
    expect(a.checks.find((c) => c.name === 'error_rate')!.status).toBe('wait');
    expect(a.verdict).toBe('wait');
    // The same rate on 20x the rows is.
    const b = analyzeStage(canary, t, {
      stable: profile('1', { rows: 40_000, errors: 40 }),
      candidate: profile('2', { rows: 4000, errors: 80 }),
      elapsedMs: minute,
    });
    expect(b.checks.find((c) => c.name === 'error_rate')!.status).toBe('fail');
  });

  it('judges a shadow on its agreement with the served answers and its outputs, not its latency', () => {
    const stable = profile('1', { rows: 4000 });
    const ok = analyzeStage(shadowStage, t, { stable, candidate: profile('2', { rows: 300, shadow: true, agree: 295, latencyMs: 100 }), elapsedMs: minute });
    expect(ok.verdict, JSON.stringify(ok.checks)).toBe('pass');
    expect(ok.checks.map((c) => c.name)).not.toContain('latency_p99');
    const bad = analyzeStage(shadowStage, t, { stable, candidate: profile('2', { rows: 300, shadow: true, agree: 210 }), elapsedMs: minute });
    expect(bad.verdict).toBe('fail');
    expect(bad.checks.find((c) => c.name === 'shadow_agreement')!.detail).toContain('210 of 300');
    // 86% of 300 is under 90%, but not surely: wait.
    expect(analyzeStage(shadowStage, t, { stable, candidate: profile('2', { rows: 300, shadow: true, agree: 258 }), elapsedMs: minute }).verdict).toBe('wait');
  });

  it('fails a canary whose traffic has a drift alert that stable does not', () => {
    const ev = { stable: profile('1', { rows: 4000 }), candidate: profile('2', { rows: 300 }), elapsedMs: minute };
    const a = analyzeStage(canary, t, { ...ev, openAlerts: { candidate: ['distance', 'output:p', 'hour'], stable: ['hour'] } });
    expect(a.verdict).toBe('fail');
    expect(a.checks.find((c) => c.name === 'input_drift')!.candidate).toEqual(['distance']);
    expect(analyzeStage(canary, t, { ...ev, openAlerts: { candidate: ['hour'], stable: ['hour'] } }).verdict).toBe('pass');
  });
});
