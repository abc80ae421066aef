import { describe, expect, it } from 'vitest';
import flightManifest from '../models/flight-delay/manifest.json';
import movieManifest from '../models/movielens-topk/manifest.json';
import { checkManifest } from './manifest-check.ts';
import { cadenceDays, dailyFeatures, eventTimeFeatures, seasonalFeatures, staleness, type ModelManifest } from './manifest.ts';
import { encodeInstances, observedFromFeeds } from './validate.ts';

/** A small model of one FLOAT [N, 3] input fed by three named columns, as skl2onnx writes a pipeline. */
const columns = () => ({
  name: 'm',
  task: 'regression',
  inputs: [{ name: 'X', dtype: 'float32', shape: ['N', 3] }],
  outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 1] }],
  features: [
    { name: 'a', kind: 'numeric', input: 'X', column: 0, range: [0, 10] },
    { name: 'b', kind: 'numeric', input: 'X', column: 1, range: [-1, 1] },
    { name: 'c', kind: 'numeric', input: 'X', column: 2, range: [0, 100], integer: true },
  ],
  sketchedOutputs: [{ name: 'y', kind: 'numeric' }],
});

describe('checkManifest', () => {
  it('passes the default models as built, filling nothing they set', () => {
    for (const m of [flightManifest, movieManifest] as unknown as ModelManifest[]) {
      const checked = checkManifest(m, { name: m.name, version: m.version });
      expect(checked.features).toEqual(m.features.map((f) => expect.objectContaining({ name: f.name, kind: f.kind, input: f.input })));
      expect(checked.serving).toEqual(m.serving);
    }
  });

  it('encodes named features into one [N, F] tensor by column, and reads them back', () => {
    const m = checkManifest(columns(), { name: 'm', version: '1' });
    expect(m.serving).toEqual({ defaultLatencyBudgetMs: 50, maxBatch: 64 });
    const enc = encodeInstances(m, {
      instances: [
        { a: 1, b: 0.5, c: 7 },
        { a: 2, b: -1, c: 9 },
      ],
    });
    expect(enc.feeds.X.dims).toEqual([2, 3]);
    expect(Array.from(enc.feeds.X.data as Float32Array)).toEqual([1, 0.5, 7, 2, -1, 9]);
    expect(observedFromFeeds(m, enc.feeds, 2)).toEqual([
      { a: 1, b: 0.5, c: 7 },
      { a: 2, b: -1, c: 9 },
    ]);
    expect(() => encodeInstances(m, { instances: [{ a: 1, b: 2, c: 7 }] })).toThrow(/instances\[0\].b must be in \[-1, 1\]/);
  });

  const bad: [string, (m: any) => void, RegExp][] = [
    ['a column outside its input', (m) => (m.features[2].column = 3), /features\[2\].column must be in \[0, 2\]/],
    ['a column fed twice', (m) => (m.features[2].column = 1), /column 1 of "X" is fed by another feature/],
    ['a column fed by no feature', (m) => m.features.pop(), /no feature fills column 2 of "X"/],
    ['a feature of an input that is not there', (m) => (m.features[0].input = 'Z'), /features\[0\].input "Z" is not one of the inputs/],
    ['an unknown task', (m) => (m.task = 'ranking'), /task must be one of binary-classification/],
    ['a sketched output that is not an output', (m) => (m.sketchedOutputs[0].name = 'z'), /sketchedOutputs\[0\].name "z" is not one of the outputs/],
    ['an empty range', (m) => (m.features[0].range = [5, 1]), /features\[0\].range is empty/],
    ['a name of the wrong model', (m) => (m.name = 'other'), /name must be the model's name "m"/],
    ['a cadence that is not a duration', (m) => (m.ownership = { retrain_every: '30 days' }), /ownership.retrain_every must be an ISO 8601 duration/],
    ['a training period backwards', (m) => (m.ownership = { trained: ['2024-06-01', '2024-01-01'] }), /ownership.trained is empty/],
    ['an owner with control characters', (m) => (m.ownership = { owner: 'a\u0007b' }), /ownership.owner must not hold control characters/],
    [
      'a calendar cycle that is not one',
      (m) => Object.assign(m.features[2], { seasonal: true, cycle: 'hourly' }),
      /features\[2\].cycle must be one of day, week, year/,
    ],
    [
      'a cycle on a feature that is not a calendar one',
      (m) => Object.assign(m.features[2], { cycle: 'day' }),
      /features\[2\].seasonal must be true for a feature with a cycle/,
    ],
    [
      'a reading of the event time that is not one',
      (m) => Object.assign(m.features[2], { seasonal: true, cycle: 'day', integer: true, eventTime: '__proto__' }),
      /features\[2\].eventTime must be one of hour, weekday, weekday_monday0, iso_weekday, month, month0/,
    ],
    [
      "a reading of another cycle than the feature's",
      (m) => Object.assign(m.features[2], { seasonal: true, cycle: 'day', integer: true, eventTime: 'weekday' }),
      /features\[2\].eventTime "weekday" is a reading of the week: the feature's cycle must be "week"/,
    ],
    [
      'a reading of the event time on a feature that is not an integer',
      (m) => Object.assign(m.features[2], { seasonal: true, cycle: 'day', integer: false, eventTime: 'hour' }),
      /features\[2\].eventTime a reading of the event time is an integer feature/,
    ],
  ];
  for (const [what, spoil, message] of bad) {
    it(`refuses ${what}, naming the field (422 invalid_manifest)`, () => {
      const m = columns();
      spoil(m);
      expect(() => checkManifest(m, { name: 'm', version: '1' })).toThrow(message);
      try {
        checkManifest(m, { name: 'm', version: '1' });
      } catch (e) {
        expect(e).toMatchObject({ status: 422, code: 'invalid_manifest' });
      }
    });
  }
});

describe('calendar features', () => {
  it('keep their cycle and rangeOnly; dailyFeatures are the daily ones not judged by range only', () => {
    const m = columns();
    Object.assign(m.features[2], { seasonal: true, cycle: 'day' });
    Object.assign(m.features[0], { seasonal: true, cycle: 'day', rangeOnly: true });
    const checked = checkManifest(m, { name: 'm', version: '1' });
    expect(checked.features[2]).toMatchObject({ seasonal: true, cycle: 'day' });
    expect(checked.features[0]).toMatchObject({ seasonal: true, cycle: 'day', rangeOnly: true });
    expect([...seasonalFeatures(checked)]).toEqual(['a', 'c']);
    expect([...dailyFeatures(checked)]).toEqual(['c']);
    // flight-delay: the hour is judged time-matched; weekday and month by range.
    expect([...dailyFeatures(flightManifest as unknown as ModelManifest)]).toEqual(['hour']);
    // Its calendar features are readings of the departure time, its replays' event time.
    expect(Object.fromEntries(eventTimeFeatures(checkManifest(flightManifest, { name: 'flight-delay', version: flightManifest.version })))).toEqual({
      month: 'month',
      day_of_week: 'weekday',
      hour: 'hour',
    });
  });
});

describe('ownership', () => {
  it('reads cadences of days, weeks, months and years; age runs from the end of the training period', () => {
    expect([cadenceDays('P30D'), cadenceDays('P6W'), cadenceDays('P3M'), cadenceDays('P1Y')]).toEqual([30, 42, 90, 365]);
    for (const s of ['P0D', 'P1.5D', 'PT1H', 'P1D2W', '30D', '']) expect(cadenceDays(s), s).toBeUndefined();
    const now = Date.parse('2024-08-15T00:00:00Z');
    expect(staleness({ ownership: { trained: ['2024-01-01', '2024-06-30'], retrain_every: 'P30D' } }, '2024-08-01T00:00:00Z', now)).toEqual({
      age_days: 46,
      due_at: '2024-07-30T00:00:00.000Z',
      stale: true,
    });
    expect(staleness({ ownership: { retrain_every: 'P30D' } }, '2024-08-01T00:00:00Z', now)).toMatchObject({ age_days: 14, stale: false });
    expect(staleness({ ownership: { owner: 'me' } }, '2024-08-01T00:00:00Z', now)).toBeUndefined();
  });
});
