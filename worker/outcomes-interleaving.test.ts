// Property (issue 15): through the real aggregator and its SQLite storage, any interleaving of
// prediction records (flushes retried), labels or ranking events (sent before their prediction
// was recorded, sent twice, sent again after an object restart) gives exactly the figures
// computed on the final truth.
import { abortAllDurableObjects, env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  emptyOutcomes,
  type FeedbackItem,
  mergeOutcomes,
  newPredictionId,
  realized,
  type OutcomeState,
  type OutcomeTask,
  type PredictionRecord,
} from '../core/index.ts';
import { summaryBytes } from '../test/support/summaries.ts';
import type { DriftAggregator } from './aggregator.ts';

const ns = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;
const T0 = Date.UTC(2026, 2, 2, 10, 0, 0);
const MIN = 60_000;
let runs = 0;

/** One prediction of the generated stream: its version, minute, value (score on a 0.001 grid, class, or list length) and truth. */
interface Gen {
  version: '1' | '2';
  minute: number;
  value: number;
  truth: number;
  /** Ranking: served positions clicked (−1: an item not served), and whether it converted. */
  clicks: number[];
  converted: boolean;
}

const gen = (task: OutcomeTask): fc.Arbitrary<Gen> =>
  fc.record({
    version: fc.constantFrom('1' as const, '2' as const),
    minute: fc.integer({ min: 0, max: 3 }),
    value:
      task === 'binary-classification'
        ? fc.integer({ min: 0, max: 999 }).map((k) => (k + 0.5) / 1000)
        : task === 'multiclass-classification'
          ? fc.integer({ min: 0, max: 3 })
          : fc.constant(5),
    truth: task === 'binary-classification' ? fc.integer({ min: 0, max: 1 }) : fc.integer({ min: 0, max: 3 }),
    clicks: task === 'top-k-recommendation' ? fc.array(fc.integer({ min: -1, max: 4 }), { maxLength: 3 }) : fc.constant<number[]>([]),
    converted: fc.boolean(),
  });

/** The exact figures of each version from the generated truth. */
function exact(task: OutcomeTask, rows: Gen[], version: string) {
  const mine = rows.filter((r) => r.version === version);
  if (task === 'top-k-recommendation') {
    const withEvents = mine.filter((r) => r.clicks.length || r.converted);
    const ctr = (k: number) => mine.filter((r) => r.clicks.some((p) => p >= 0 && p < k)).length / mine.length;
    const clicks = mine.flatMap((r) => [...new Set(r.clicks)]);
    return { predicted: mine.length, labelled: withEvents.length, ctr1: ctr(1), ctr5: ctr(5), clicks: clicks.length };
  }
  if (task === 'multiclass-classification')
    return { predicted: mine.length, labelled: mine.length, accuracy: mine.filter((r) => r.value === r.truth).length / mine.length };
  let s = 0;
  let n = 0;
  for (const a of mine)
    for (const b of mine)
      if (a.truth === 1 && b.truth === 0) {
        s += a.value > b.value ? 1 : a.value === b.value ? 0.5 : 0;
        n++;
      }
  return { predicted: mine.length, labelled: mine.length, auc: n ? s / n : null };
}

describe('outcomes through the aggregator, in any interleaving', () => {
  for (const task of ['binary-classification', 'multiclass-classification', 'top-k-recommendation'] as const)
    it(`${task}: figures equal the exact ones whatever the order, retries and restarts`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(gen(task), { minLength: 1, maxLength: 40 }),
          fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
          fc.boolean(),
          async (rows, seeds, restart) => {
            const name = `interleave-${task}-${runs++}`;
            const agg = () => ns.get(ns.idFromName(name));
            const items = (i: number) => Array.from({ length: 5 }, (_, k) => `item-${i}-${k}`);
            const records: PredictionRecord[] = rows.map((r, i) => {
              const at = T0 + r.minute * MIN + i;
              const id = newPredictionId(
                at,
                Uint8Array.from({ length: 16 }, (_, k) => (i * 31 + k * 7 + runs * 13) & 255),
              );
              return { id, version: r.version, at, value: r.value, ...(task === 'top-k-recommendation' ? { items: items(i) } : {}) };
            });
            // What the clients will send: one label per prediction, or a ranking's events.
            const feedback: FeedbackItem[] = rows.flatMap((r, i): FeedbackItem[] =>
              task === 'top-k-recommendation'
                ? [
                    ...r.clicks.map((p) => ({ prediction_id: records[i].id, event: 'click', item: p >= 0 ? items(i)[p] : `elsewhere-${i}` })),
                    ...(r.converted ? [{ prediction_id: records[i].id, event: 'convert', item: items(i)[0] }] : []),
                  ]
                : [{ prediction_id: records[i].id, label: r.truth }],
            );
            // A schedule: record batches (each sent twice, in a shuffled order) interleaved with
            // feedback batches, each item sent until it is joined or a duplicate.
            const pick = (xs: unknown[], seed: number) => [...xs].sort((a, b) => ((xs.indexOf(a) * 7919 + seed) % 97) - ((xs.indexOf(b) * 7919 + seed) % 97));
            const recs = pick(records, seeds[0]) as PredictionRecord[];
            let pending = pick(feedback, seeds[1]) as typeof feedback;
            const cut = 1 + (seeds[2] % Math.max(1, recs.length));
            for (const [k, part] of [recs.slice(0, cut), recs.slice(cut)].entries()) {
              if (part.length) {
                await agg().recordPredictions('m', part);
                await agg().recordPredictions('m', part.slice(0, 1 + (seeds[3 + k] % part.length)));
              }
              if (restart && k === 0) await abortAllDurableObjects();
              // Feedback now: items whose prediction is not recorded yet come back `unknown`, and are sent again later.
              const sent = pending.concat(pending.slice(0, seeds[5] % 4));
              const res = sent.length ? await agg().feedback(task, sent) : [];
              res.forEach((r) => expect(['joined', 'duplicate', 'unknown']).toContain(r.status));
              pending = pending.filter((_, i) => res[i]?.status === 'unknown');
            }
            expect(pending).toEqual([]);
            const byVersion = new Map<string, OutcomeState>();
            for (const r of await agg().outcomes(T0, T0 + 10 * MIN))
              byVersion.set(r.version, mergeOutcomes(byVersion.get(r.version) ?? emptyOutcomes(), JSON.parse(r.state) as OutcomeState));
            for (const v of new Set(rows.map((r) => r.version))) {
              const got = realized(byVersion.get(v)!, task);
              const want = exact(task, rows, v) as {
                predicted: number;
                labelled: number;
                auc?: number | null;
                accuracy?: number;
                ctr1?: number;
                ctr5?: number;
                clicks?: number;
              };
              expect(got.predicted, `${v} predicted`).toBe(want.predicted);
              expect(got.labelled, `${v} labelled`).toBe(want.labelled);
              if (task === 'binary-classification') expect(got.auc ?? null).toEqual(want.auc == null ? null : expect.closeTo(want.auc, 12));
              if (task === 'multiclass-classification') expect(got.accuracy).toBeCloseTo(want.accuracy!, 12);
              if (task === 'top-k-recommendation') {
                expect(got.ctr_at!['1']).toBeCloseTo(want.ctr1!, 12);
                expect(got.ctr_at!['5']).toBeCloseTo(want.ctr5!, 12);
                expect(got.clicks).toBe(want.clicks);
              }
            }
          },
        ),
        { numRuns: 25 },
      );
    });
});

describe('outcome states over time', () => {
  it('roll up into hours past the hourly horizon, losing nothing and keeping late labels for a rolled-up hour', async () => {
    const agg = ns.get(ns.idFromName('outcome-rollup'));
    const H = 3_600_000;
    const t0 = Date.UTC(2001, 0, 1, 0, 0, 0);
    // 3 hours of predictions, 20 per 10 minutes, labelled: scores rising with the label.
    const records: PredictionRecord[] = Array.from({ length: 360 }, (_, i) => {
      const at = t0 + Math.floor(i / 20) * 10 * MIN + (i % 20) * 1000;
      return {
        id: newPredictionId(
          at,
          Uint8Array.from({ length: 16 }, (_, k) => (i * 7 + k) & 255),
        ),
        version: '1',
        at,
        value: ((i * 37) % 1000) / 1000 + 0.0005,
      };
    });
    expect((await agg.recordPredictions('flight-delay', records)).stored).toBe(360);
    const label = (i: number) => (((i * 37) % 1000) / 1000 > 0.4 === (i % 3 !== 0) ? 1 : 0);
    expect(
      (
        await agg.feedback(
          'binary-classification',
          records.slice(0, 300).map((r, i) => ({ prediction_id: r.id, label: label(i) })),
        )
      ).every((r) => r.status === 'joined'),
    ).toBe(true);
    const figures = async () => {
      const st = emptyOutcomes();
      for (const r of await agg.outcomes(t0, t0 + 3 * H)) mergeOutcomes(st, JSON.parse(r.state) as OutcomeState);
      return realized(st, 'binary-classification');
    };
    const before = await figures();
    expect((await agg.outcomes(t0, t0 + 3 * H)).length).toBe(18);
    // The data clock moves 3 days on (a summary that late); the roll-up runs.
    expect((await agg.ingest('flight-delay', summaryBytes('flight-delay', 'late', 1, t0 + 3 * 24 * H, [1]))).status).toBe('stored');
    while (await agg.rollup(Date.now()));
    const rows = await agg.outcomes(t0, t0 + 3 * H);
    expect(rows.map((r) => r.minute)).toEqual([t0, t0 + H, t0 + 2 * H]);
    const after = await figures();
    expect({ ...after, log_loss: undefined, calibration: undefined }).toEqual({ ...before, log_loss: undefined, calibration: undefined });
    expect(after.log_loss).toBeCloseTo(before.log_loss!, 12);
    expect(after.calibration!.map((c) => c.n)).toEqual(before.calibration!.map((c) => c.n));
    // A late label for a rolled-up hour lands beside it, and the next pass merges them.
    expect((await agg.feedback('binary-classification', [{ prediction_id: records[300].id, label: 1 }]))[0].status).toBe('joined');
    expect((await agg.outcomes(t0, t0 + 3 * H)).length).toBe(4);
    while (await agg.rollup(Date.now()));
    expect((await agg.outcomes(t0, t0 + 3 * H)).length).toBe(3);
    expect((await figures()).labelled).toBe(301);
  });
});

describe('outcomes of browser-recorded predictions', () => {
  /** 3 minutes of 200 browser-recorded predictions whose labels say the opposite of their scores, from `groups` address groups; then the data clock moves 2 days on and the object evaluates. */
  async function reversed(name: string, groups: string[]) {
    const agg = ns.get(ns.idFromName(name));
    const t0 = Date.UTC(2026, 0, 7, 9, 0, 0);
    const records: PredictionRecord[] = Array.from({ length: 600 }, (_, i) => {
      const at = t0 + Math.floor(i / 200) * MIN + (i % 200) * 100;
      return {
        id: newPredictionId(
          at,
          Uint8Array.from({ length: 16 }, (_, k) => (i * 11 + k * 3 + name.length) & 255),
        ),
        version: '1',
        at,
        value: (i % 100) / 100 + 0.005,
      };
    });
    for (const [g, group] of groups.entries()) {
      const mine = records.filter((_, i) => i % groups.length === g);
      expect((await agg.recordPredictions('flight-delay', mine, { group })).stored).toBe(mine.length);
    }
    const joined = await agg.feedback(
      'binary-classification',
      records.map((r) => ({ prediction_id: r.id, label: r.value > 0.5 ? 0 : 1 })),
    );
    expect(joined.every((r) => r.status === 'joined')).toBe(true);
    expect((await agg.ingest('flight-delay', summaryBytes('flight-delay', 'clock', 1, t0 + 2 * 86_400_000, [1]))).status).toBe('stored');
    await agg.evaluate(Date.now());
    return (await agg.alerts()).filter((a) => a.feature.startsWith('performance:')).map((a) => a.feature);
  }

  it('count for alerts only from ALERT_MIN_SOURCES address groups, as browser drift evidence does', async () => {
    // One network's word alone (however many predictions): no alert; the figures still show it.
    expect(await reversed('browser-one-group', ['0123456789abcdef'])).toEqual([]);
    // Three networks: the same outcomes open the alert.
    expect(await reversed('browser-three-groups', ['0123456789abcdef', '1123456789abcdef', '2123456789abcdef'])).toEqual(['performance:auc']);
    // A group that is not one the edge computes is refused whole.
    const agg = ns.get(ns.idFromName('browser-bad-group'));
    const at = Date.UTC(2026, 0, 7, 9, 0, 0);
    expect(
      await agg.recordPredictions('flight-delay', [{ id: newPredictionId(at, new Uint8Array(16)), version: '1', at, value: 0.5 }], { group: '__proto__' }),
    ).toEqual({
      stored: 0,
      duplicate: 0,
      rejected: 1,
    });
  });
});
