// The drift evaluation of issue 16 in the suite (the full one, with the exact tests beside it, is
// `npm run bench:drift`): the flight-delay baseline as models:build ships it, with its
// time-matched slots, against live windows of real January-February 2001 flights drawn as the
// aggregator's aligned windows see traffic (models/lib/flights.ts alignedWindow), judged as the
// aggregator judges them (judgeWindow with the manifest's calendar features). Bounded: a few
// hundred windows.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  alertWatch,
  calendarCycles,
  CategoricalSketch,
  createProfile,
  dailyFeatures,
  decodeSummary,
  eventTimeFeatures,
  judgeWindow,
  seasonalFeatures,
  windowScore,
  type SketchJudgement,
  TDigest,
  type BuiltManifest,
  type Profile,
} from '../../core/index.ts';
import { alignedWindow, loadFlights, rowFeatures, type Flights } from '../../models/lib/flights.ts';
import { rng } from '../../models/lib/rng.ts';
import { ROOT } from '../support/servers.ts';

const manifest = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/manifest.json'), 'utf8')) as BuiltManifest;
const baseline = decodeSummary(readFileSync(join(ROOT, 'models/flight-delay/baseline.dwsm')));
const options = { seasonal: seasonalFeatures(manifest), daily: dailyFeatures(manifest), cycles: calendarCycles(manifest) };
/** Airports outside the model's vocabulary, as the edge sketches them (one OOV_CATEGORY). */
const vocabulary = new Set((manifest.features.find((f) => f.name === 'origin') as { vocabulary: string[] }).vocabulary);
type Row = ReturnType<typeof rowFeatures>;

let flights: Flights;
let janFeb: number[];
let times: Float64Array;
beforeAll(async () => {
  flights = await loadFlights();
  janFeb = [];
  for (let i = 0; i < flights.n; i++) if (flights.month[i] <= 2) janFeb.push(i);
  janFeb.sort((a, b) => flights.time[a] - flights.time[b]);
  times = Float64Array.from(janFeb, (i) => flights.time[i]);
}, 120_000);

/** A window's rows as a profile of the window's span, sketched as the edge sketches them. */
function profileOf(rows: Row[], start: number, end: number): Profile {
  const p = createProfile({ model: 'flight-delay', modelVersion: '1', windowStart: start, windowEnd: end });
  for (const name of ['month', 'day_of_week', 'hour', 'distance'] as const) p.features.set(name, new TDigest().addAll(rows.map((r) => r[name])));
  for (const name of ['origin', 'destination'] as const) {
    const s = new CategoricalSketch({ capacity: 512 });
    for (const r of rows) s.add(r[name]);
    p.features.set(name, s);
  }
  p.counters.rows = rows.length;
  return p;
}
function liveWindow(n: number, random: () => number, keep?: (row: Row) => boolean): { rows: Row[]; start: number; end: number } {
  const w = alignedWindow(times, n, random, keep && ((i) => keep(rowFeatures(flights, janFeb[i], vocabulary))));
  return { rows: w.indices.map((i) => rowFeatures(flights, janFeb[i], vocabulary)), start: w.start, end: w.end };
}

describe('drift on live-ordered flights (the shipped baseline and its time-matched slots)', () => {
  it('the baseline carries 20-minute slots of the day, and the hour is a daily calendar feature', () => {
    expect(baseline.slots?.minutes).toBe(20);
    expect(baseline.slots!.profiles.size).toBeGreaterThan(60);
    expect([...options.daily]).toEqual(['hour']);
  });

  it('unchanged traffic: each feature, the clock ones included, flags at most 1 window in 10 of 80 at n = 200 (bench:drift: at most 4% of 100)', () => {
    const r = rng(1601);
    const flagged = new Map<string, number>();
    let matched = 0;
    for (let k = 0; k < 80; k++) {
      const w = liveWindow(200, r);
      const j = judgeWindow(baseline, profileOf(w.rows, w.start, w.end), options);
      matched += Number(j.timeMatched);
      for (const [name, v] of j.features) flagged.set(name, (flagged.get(name) ?? 0) + Number(v.drifted));
    }
    expect(matched).toBe(80);
    expect([...flagged.keys()].sort()).toEqual(['day_of_week', 'destination', 'distance', 'hour', 'month', 'origin']);
    for (const [name, count] of flagged) expect(count, name).toBeLessThanOrEqual(8);
    // Against the whole day (no slots), the same kind of windows flag the hour in most of them.
    const r2 = rng(1601);
    let hourWhole = 0;
    for (let k = 0; k < 20; k++) {
      const w = liveWindow(200, r2);
      const j = judgeWindow({ ...baseline, slots: undefined }, profileOf(w.rows, w.start, w.end), { seasonal: new Set(['month', 'day_of_week']) });
      hourWhole += Number(j.features.get('hour')!.drifted);
    }
    expect(hourWhole).toBeGreaterThanOrEqual(18);
  });

  it('a time-zone bug upstream (every hour + 3) is caught in every window of 200, which judging the hour by range cannot do', () => {
    const r = rng(1602);
    let caught = 0;
    let byRange = 0;
    for (let k = 0; k < 30; k++) {
      const w = liveWindow(200, r);
      const rows = w.rows.map((x) => ({ ...x, hour: (x.hour + 3) % 24 }));
      const p = profileOf(rows, w.start, w.end);
      caught += Number(judgeWindow(baseline, p, options).features.get('hour')!.drifted);
      byRange += Number(judgeWindow(baseline, p, { seasonal: options.seasonal }).features.get('hour')!.drifted);
    }
    expect(caught).toBe(30);
    expect(byRange).toBe(0);
  });

  it('a weekday off by one upstream: on the event clock, every window of 200 holds a weekday its own span cannot have (off_clock); by range or on the wall clock, none', () => {
    const r = rng(1606);
    const onClock = { ...options, eventTime: eventTimeFeatures(manifest), clock: 'event' as const };
    let caught = 0;
    let byRange = 0;
    let onWall = 0;
    for (let k = 0; k < 30; k++) {
      const w = liveWindow(200, r);
      const p = profileOf(
        w.rows.map((x) => ({ ...x, day_of_week: (x.day_of_week + 1) % 7 })),
        w.start,
        w.end,
      );
      const j = judgeWindow(baseline, p, onClock).features.get('day_of_week')!;
      // A live window of 200 flights spans under a day here: one or two weekdays possible, the shifted one not among them unless it crosses midnight.
      caught += Number(j.drifted);
      byRange += Number(judgeWindow(baseline, p, options).features.get('day_of_week')!.drifted);
      onWall += Number(judgeWindow(baseline, p, { ...onClock, clock: 'wall' }).features.get('day_of_week')!.drifted);
      // Unchanged flights are on the clock.
      expect(judgeWindow(baseline, profileOf(w.rows, w.start, w.end), onClock).features.get('day_of_week')!.drift.off_clock?.statistic).toBe(0);
    }
    expect(caught).toBeGreaterThanOrEqual(27);
    expect([byRange, onWall]).toEqual([0, 0]);
  });

  it('no departures from ORD (5.5% of flights) is caught in most windows of 1,000', () => {
    const r = rng(1603);
    let caught = 0;
    for (let k = 0; k < 30; k++) {
      const w = liveWindow(1000, r, (x) => x.origin !== 'ORD');
      caught += Number(judgeWindow(baseline, profileOf(w.rows, w.start, w.end), options).features.get('origin')!.drifted);
    }
    expect(caught).toBeGreaterThanOrEqual(18);
  });

  /** Alerts opened over a stream of one feature's judgements, with the sequential evidence or by hysteresis alone (ALERT_HYSTERESIS 3). */
  function watcher(evidence: boolean) {
    const watch = alertWatch(3, evidence ? undefined : Number.POSITIVE_INFINITY);
    let opened = 0;
    return {
      see(j: SketchJudgement, w: number) {
        if (watch.see(j.drifted, w, evidence ? windowScore(j) : undefined) === 'open') opened++;
      },
      get opened() {
        return opened;
      },
    };
  }

  it('a stream of unchanged traffic opens no alert with the sequential evidence on: three weekdays of 20-minute windows of 200', () => {
    const r = rng(1604);
    const span = 20 * 60_000;
    const watch = new Map<string, ReturnType<typeof watcher>>();
    let windows = 0;
    let i = 0;
    // 2001-01-08 to 2001-01-11, Monday to Wednesday (local departure time read as UTC).
    for (let start = Date.UTC(2001, 0, 8); start < Date.UTC(2001, 0, 11); start += span) {
      const rows: Row[] = [];
      while (times[i] < start) i++;
      for (; times[i] < start + span; i++) rows.push(rowFeatures(flights, janFeb[i], vocabulary));
      if (rows.length < 200) continue;
      for (let a = 0; a < 200; a++) {
        const b = a + Math.floor(r() * (rows.length - a));
        [rows[a], rows[b]] = [rows[b], rows[a]];
      }
      const judged = judgeWindow(baseline, profileOf(rows.slice(0, 200), start, start + span), options);
      windows++;
      for (const [name, j] of judged.features) {
        if (!watch.has(name)) watch.set(name, watcher(true));
        watch.get(name)!.see(j, start);
      }
    }
    expect(windows).toBeGreaterThan(120);
    expect(Object.fromEntries([...watch].map(([name, w]) => [name, w.opened]))).toEqual({
      month: 0,
      day_of_week: 0,
      hour: 0,
      distance: 0,
      origin: 0,
      destination: 0,
    });
  });

  it('the clock an hour late in windows of 200: the evidence opens an alert within 10 windows in most streams, three drifted windows in a row in few', () => {
    const r = rng(1605);
    let byEvidence = 0;
    let byHysteresis = 0;
    const onsets = 24;
    for (let o = 0; o < onsets; o++) {
      const withEvidence = watcher(true);
      const alone = watcher(false);
      for (let k = 0; k < 10; k++) {
        // Random windows of the whole period: nothing to time-match, the hour judged in full.
        const rows = Array.from({ length: 200 }, () => {
          const x = rowFeatures(flights, janFeb[Math.floor(r() * janFeb.length)], vocabulary);
          return { ...x, hour: (x.hour + 1) % 24 };
        });
        const j = judgeWindow(baseline, profileOf(rows, times[0], times[times.length - 1]), options).features.get('hour')!;
        withEvidence.see(j, k);
        alone.see(j, k);
      }
      byEvidence += Number(withEvidence.opened > 0);
      byHysteresis += Number(alone.opened > 0);
    }
    // Measured with three seeds: 15-16 streams by evidence, 1-5 by hysteresis alone (bench:drift,
    // through the edge's profiler: 92% and 21%).
    expect(byEvidence).toBeGreaterThanOrEqual(12);
    expect(byHysteresis).toBeLessThanOrEqual(8);
    expect(byEvidence - byHysteresis).toBeGreaterThanOrEqual(6);
  });
});
