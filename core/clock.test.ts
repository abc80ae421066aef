import { describe, expect, it } from 'vitest';
import { CategoricalSketch } from './categorical.ts';
import { DAY_MS, MINUTE_MS, possibleReadings, slotOf, slotsCovering, slotSplitter, timeMatchedReference } from './clock.ts';
import { offClock } from './drift.ts';
import { judgeWindow } from './judge.ts';
import { createProfile, type Profile } from './profile.ts';
import { TDigest } from './tdigest.ts';
import { rng } from '../models/lib/rng.ts';

const HOUR = 60 * MINUTE_MS;
const T0 = Date.UTC(2001, 0, 1);

describe('slots of the day', () => {
  it('slotOf and slotsCovering: UTC time of day, whole slots, wrapping at midnight, at most a day of them', () => {
    expect(slotOf(T0, 20)).toBe(0);
    expect(slotOf(T0 + 59 * MINUTE_MS, 20)).toBe(2);
    expect(slotOf(T0 + 23 * HOUR + 59 * MINUTE_MS, 60)).toBe(23);
    expect(slotOf(T0 - 1, 60)).toBe(23);
    expect(slotsCovering(T0 + 10 * HOUR, T0 + 10 * HOUR + MINUTE_MS, 60)).toEqual([10]);
    expect(slotsCovering(T0 + 10 * HOUR, T0 + 11 * HOUR, 60)).toEqual([10]);
    expect(slotsCovering(T0 + 10 * HOUR + 30 * MINUTE_MS, T0 + 11 * HOUR + 1, 20)).toEqual([31, 32, 33]);
    expect(slotsCovering(T0 + 23 * HOUR, T0 + 25 * HOUR, 60)).toEqual([23, 0]);
    expect(slotsCovering(T0, T0 + 3 * DAY_MS, 60)).toHaveLength(24);
    expect(slotsCovering(T0, T0, 60)).toEqual([0]);
    expect(slotsCovering(Number.NaN, T0, 60)).toEqual([]);
    expect(slotsCovering(T0, T0 + HOUR, 7)).toEqual([]);
    expect(() => slotSplitter(7, 'wall', () => createProfile({ model: 'm', modelVersion: '1', windowStart: 0 }))).toThrow(/does not divide a day/);
  });
});

/**
 * A synthetic day of traffic that follows the clock: `hour` is the hour of the row's time, `load`
 * rises through the day (a feature that moves with the clock), `origin` is a hub by day and
 * another at night. Ten days of it make the reference, with 60-minute slots.
 */
function traffic(days: number, seed: number, shift = 0): { t: number; hour: number; load: number; origin: string }[] {
  const r = rng(seed);
  const rows = [];
  for (let d = 0; d < days; d++)
    for (let i = 0; i < 2400; i++) {
      const t = T0 + d * DAY_MS + Math.floor(r() * DAY_MS);
      const h = new Date(t).getUTCHours();
      rows.push({ t, hour: (h + shift) % 24, load: h * 10 + r() * 5, origin: h >= 6 && h < 22 ? (r() < 0.7 ? 'ORD' : 'ATL') : r() < 0.7 ? 'LAX' : 'SEA' });
    }
  return rows.sort((a, b) => a.t - b.t);
}
function profileOf(rows: ReturnType<typeof traffic>, windowStart: number, windowEnd: number): Profile {
  const p = createProfile({ model: 'm', modelVersion: '1', windowStart, windowEnd });
  const hour = new TDigest();
  const load = new TDigest();
  const origin = new CategoricalSketch({ capacity: 16 });
  for (const x of rows) {
    hour.add(x.hour);
    load.add(x.load);
    origin.add(x.origin);
  }
  p.features.set('hour', hour).set('load', load).set('origin', origin);
  p.counters.rows = rows.length;
  return p;
}
function reference(minutes = 60): Profile {
  const rows = traffic(10, 1);
  const whole = profileOf(rows, T0, T0 + 10 * DAY_MS);
  const split = slotSplitter(minutes, 'wall', () => createProfile({ model: 'm', modelVersion: '1', windowStart: 0 }));
  const bySlot = new Map<Profile, ReturnType<typeof traffic>>();
  for (const x of rows) {
    const p = split.slotFor(x.t);
    bySlot.set(p, [...(bySlot.get(p) ?? []), x]);
  }
  for (const [p, xs] of bySlot) {
    const built = profileOf(xs, 0, 0);
    p.features = built.features;
    p.counters.rows = xs.length;
  }
  whole.slots = split.slots;
  return whole;
}
/** Two hours of a later day, [14:00, 16:00), optionally with every hour shifted upstream. */
function window(shift = 0): Profile {
  const start = T0 + 20 * DAY_MS + 14 * HOUR;
  const end = start + 2 * HOUR;
  return profileOf(
    traffic(1, 7, shift)
      .map((x) => ({ ...x, t: x.t + 20 * DAY_MS }))
      .filter((x) => x.t >= start && x.t < end),
    start,
    end,
  );
}

describe('the time-matched reference (core/clock.ts) in judgeWindow', () => {
  const seasonal = new Set(['hour']);
  const daily = new Set(['hour']);

  it('picks the slots a window covers, merged, memoised; none for a day-long window or a baseline without slots', () => {
    const ref = reference();
    const m = timeMatchedReference(ref, T0 + 14 * HOUR, T0 + 16 * HOUR)!;
    expect((m.features.get('hour') as TDigest).min).toBe(14);
    expect((m.features.get('hour') as TDigest).max).toBe(15);
    expect(m.counters.rows).toBe(ref.slots!.profiles.get(14)!.counters.rows + ref.slots!.profiles.get(15)!.counters.rows);
    expect(timeMatchedReference(ref, T0 + 14 * HOUR, T0 + 16 * HOUR)).toBe(m);
    expect(timeMatchedReference(ref, T0, T0 + DAY_MS)).toBeUndefined();
    expect(timeMatchedReference({}, T0, T0 + HOUR)).toBeUndefined();
    // The slots themselves are not changed by the merge.
    expect((ref.slots!.profiles.get(14)!.features.get('hour') as TDigest).max).toBe(14);
  });

  it('traffic that follows the clock is quiet against the same hours, and flagged against the whole day', () => {
    const ref = reference();
    const w = window();
    const matched = judgeWindow(ref, w, { seasonal, daily });
    expect(matched.timeMatched).toBe(true);
    for (const name of ['hour', 'load', 'origin']) expect(matched.features.get(name)!.drifted, name).toBe(false);
    // Without slots, the clock-following features look drifted; the calendar one is judged by range only.
    const whole = judgeWindow({ ...ref, slots: undefined }, w, { seasonal, daily });
    expect(whole.timeMatched).toBe(false);
    expect(whole.features.get('load')!.drifted).toBe(true);
    expect(whole.features.get('origin')!.drifted).toBe(true);
    expect(Object.keys(whole.features.get('hour')!.drift)).toEqual(['out_of_range']);
    expect(whole.features.get('hour')!.drifted).toBe(false);
  });

  it('a clock moved 3 hours upstream is caught at once, which range-only cannot see', () => {
    const ref = reference();
    const w = window(3);
    const j = judgeWindow(ref, w, { seasonal, daily });
    expect(j.features.get('hour')!.drifted).toBe(true);
    expect(j.features.get('hour')!.drift.ks!.statistic).toBeGreaterThan(0.9);
    // rangeOnly (not in `daily`): judged by range, and the shifted hours are all inside it.
    expect(judgeWindow(ref, w, { seasonal }).features.get('hour')!.drifted).toBe(false);
  });

  it('out_of_range stays against the whole baseline: a value seen only at other hours is not out of range', () => {
    const ref = reference();
    const w = window();
    const j = judgeWindow(ref, w, { seasonal, daily });
    // The window's load (140-159) is outside no range of the whole reference (0-234).
    expect(j.features.get('load')!.drift.out_of_range!.statistic).toBe(0);
    const far = window();
    far.features.set('load', new TDigest().addAll(Array.from({ length: 200 }, (_, i) => 1000 + i)));
    expect(judgeWindow(ref, far, { seasonal, daily }).features.get('load')!.drift.out_of_range!.drifted).toBe(true);
  });

  it('matches only windows on the clock the slots were taken on', () => {
    const ref = reference(); // slots on the wall clock
    expect(judgeWindow(ref, window(), { seasonal, daily, clock: 'wall' }).timeMatched).toBe(true);
    // On another clock the hour does not follow the window's: judged in full against the whole baseline.
    const other = judgeWindow(ref, window(), { seasonal, daily, clock: 'event' });
    expect(other.timeMatched).toBe(false);
    expect(other.features.get('hour')!.drift.ks).toBeDefined();
    expect(other.features.get('hour')!.drifted).toBe(true);
    expect(timeMatchedReference(ref, T0 + 14 * HOUR, T0 + 15 * HOUR, 'event')).toBeUndefined();
  });

  it('a window of a whole day holds the whole cycle: the daily feature is judged in full against the whole baseline', () => {
    const ref = reference();
    const day = profileOf(
      traffic(1, 9).map((x) => ({ ...x, t: x.t + 20 * DAY_MS })),
      T0 + 20 * DAY_MS,
      T0 + 21 * DAY_MS,
    );
    const j = judgeWindow(ref, day, { seasonal, daily });
    expect(j.timeMatched).toBe(false);
    expect(j.features.get('hour')!.drift.ks).toBeDefined();
    for (const name of ['hour', 'load', 'origin']) expect(j.features.get(name)!.drifted, name).toBe(false);
  });

  it('slots that cannot merge (a feature of another kind in one: a hand-made baseline) give no match, and judging does not throw', () => {
    const ref = reference();
    const odd = new CategoricalSketch({ capacity: 4 }).add('x');
    ref.slots!.profiles.get(15)!.features.set('load', odd);
    expect(timeMatchedReference(ref, T0 + 14 * HOUR, T0 + 16 * HOUR)).toBeUndefined();
    expect(judgeWindow(ref, window(), { seasonal, daily }).timeMatched).toBe(false);
  });

  it('a window at times the reference never saw falls back to the whole baseline', () => {
    const ref = reference();
    ref.slots!.profiles.delete(14);
    ref.slots!.profiles.delete(15);
    const j = judgeWindow(ref, window(), { seasonal, daily });
    expect(j.timeMatched).toBe(false);
    expect(Object.keys(j.features.get('hour')!.drift)).toEqual(['out_of_range']);
  });
});

describe('readings of the event time (off_clock)', () => {
  const at = (iso: string) => Date.parse(iso);
  it('possibleReadings: every value an instant of [start, end) can read; none for a span holding the whole cycle', () => {
    // 2001-01-02 is a Tuesday.
    expect([...possibleReadings('hour', at('2001-01-02T14:05Z'), at('2001-01-02T14:25Z'))!]).toEqual([14]);
    expect([...possibleReadings('hour', at('2001-01-02T14:00Z'), at('2001-01-02T15:00Z'))!]).toEqual([14]);
    expect([...possibleReadings('hour', at('2001-01-02T14:00Z'), at('2001-01-02T15:00Z') + 1)!].sort((a, b) => a - b)).toEqual([14, 15]);
    expect([...possibleReadings('hour', at('2001-01-02T22:30Z'), at('2001-01-03T01:10Z'))!].sort((a, b) => a - b)).toEqual([0, 1, 22, 23]);
    expect(possibleReadings('hour', at('2001-01-02T00:00Z'), at('2001-01-03T00:00Z'))).toBeUndefined();
    expect([...possibleReadings('weekday', at('2001-01-02T10:00Z'), at('2001-01-02T11:00Z'))!]).toEqual([2]);
    expect([...possibleReadings('weekday_monday0', at('2001-01-02T10:00Z'), at('2001-01-02T11:00Z'))!]).toEqual([1]);
    expect([...possibleReadings('iso_weekday', at('2001-01-07T10:00Z'), at('2001-01-07T11:00Z'))!]).toEqual([7]);
    expect([...possibleReadings('weekday', at('2001-01-06T23:00Z'), at('2001-01-08T01:00Z'))!].sort()).toEqual([0, 1, 6]);
    expect([...possibleReadings('weekday', at('2001-01-02T00:00Z'), at('2001-01-03T00:00Z'))!]).toEqual([2]);
    expect(possibleReadings('weekday', at('2001-01-01T00:00Z'), at('2001-01-08T00:00Z'))).toBeUndefined();
    expect([...possibleReadings('month', at('2001-01-30T00:00Z'), at('2001-02-02T00:00Z'))!].sort()).toEqual([1, 2]);
    expect([...possibleReadings('month0', at('2001-01-30T00:00Z'), at('2001-01-31T00:00Z'))!]).toEqual([0]);
    for (const [s, e] of [
      [5, 5],
      [5, 1],
      [Number.NaN, 5],
      [0, Number.POSITIVE_INFINITY],
      // Far past what a Date holds, a step would not move the walk: refused, not looped on.
      [1e300, 1e300 + 1e285],
      [-9e15, -9e15 + 1000],
    ])
      expect(possibleReadings('hour', s, e)).toBeUndefined();
  });

  it('offClock: the share of values the span cannot have, on exact digests only, with the out-of-range bar', () => {
    const possible = new Set([14]);
    const on = new TDigest().addAll(Array(200).fill(14));
    expect(offClock(on, possible)).toMatchObject({ method: 'off_clock', statistic: 0, drifted: false, expected: 0 });
    const late = new TDigest().addAll([...Array(190).fill(14), ...Array(10).fill(15)]);
    expect(offClock(late, possible)).toMatchObject({ statistic: 0.05, threshold: 0.02, drifted: true });
    // Two stray values of 200 are under the bar (at least 3 values).
    expect(offClock(new TDigest().addAll([...Array(198).fill(14), 3, 4]), possible)?.drifted).toBe(false);
    // A digest past exact mode (more distinct values than it keeps) says nothing.
    expect(offClock(new TDigest().addAll(Array.from({ length: 5000 }, (_, i) => i / 7)), possible)).toBeUndefined();
  });

  it('judgeWindow adds off_clock on the event clock only: a weekday off by one in a window of one day, where the range and the slots see nothing', () => {
    const ref = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    ref.features.set('day_of_week', new TDigest().addAll(Array.from({ length: 700 }, (_, i) => i % 7)));
    const options = {
      seasonal: new Set(['day_of_week']),
      cycles: new Map([['day_of_week', 7 * DAY_MS]]),
      eventTime: new Map([['day_of_week', 'weekday' as const]]),
    };
    // Tuesday 10:00-11:00 holding Wednesday's weekday.
    const w = { ...createProfile({ model: 'm', modelVersion: '1', windowStart: at('2001-01-02T10:00Z'), windowEnd: at('2001-01-02T11:00Z') }) };
    w.features.set('day_of_week', new TDigest().addAll(Array(300).fill(3)));
    const event = judgeWindow(ref, w, { ...options, clock: 'event' }).features.get('day_of_week')!;
    expect(event.drift.off_clock).toMatchObject({ statistic: 1, drifted: true });
    expect(event.drift.out_of_range?.drifted).toBe(false);
    expect(event.drifted).toBe(true);
    for (const clock of ['wall', undefined] as const)
      expect(judgeWindow(ref, w, { ...options, clock }).features.get('day_of_week')).toMatchObject({ drifted: false });
    // The right weekday: nothing off the clock.
    w.features.set('day_of_week', new TDigest().addAll(Array(300).fill(2)));
    expect(judgeWindow(ref, w, { ...options, clock: 'event' }).features.get('day_of_week')).toMatchObject({ drifted: false });
  });
});
