// The aggregator's storage over time, in its real SQLite storage: restarts mid-stream, event-time
// evaluation windows, roll-ups into hours and days, retention, and the deduplication horizon.
import { abortAllDurableObjects, env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CategoricalSketch, createProfile, decodeSummary, encodeSummary, type TDigest } from '../core/index.ts';
import { summaryBytes } from '../test/support/summaries.ts';
import { aggregatorConfig, DAY_MS, HOUR_MS, MINUTE_MS, type DriftAggregator } from './aggregator.ts';

const ns = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;

const summary = (source: string, sequence: number, windowStart: number, values: number[]) =>
  summaryBytes('flight-delay', source, sequence, windowStart, values);

describe('DriftAggregator storage', () => {
  it('restarted mid-stream (every object aborted, storage kept) loses nothing and counts nothing twice when senders retry', async () => {
    const agg = () => ns.get(ns.idFromName('flight-delay-restart'));
    const t = Date.UTC(2001, 4, 1, 0, 0, 0);
    const sources = 8;
    const perSource = 12;
    let aborted = false;
    // Each source sends its summaries in order and retries one until it gets an answer, as the
    // edge does (same sequence, so the object must deduplicate).
    const sender = async (s: number) => {
      for (let q = 1; q <= perSource; q++) {
        for (let attempt = 0; ; attempt++) {
          try {
            const r = await agg().ingest('flight-delay', summary(`src-${s}`, q, t + q * 1000, [s + 1, q]));
            expect(['stored', 'duplicate']).toContain(r.status);
            break;
          } catch (e) {
            expect(attempt, String(e)).toBeLessThan(20);
            await new Promise((r) => setTimeout(r, 5)); // a retry's pause while the aborted object restarts (bounded: 20 attempts)
          }
        }
        if (s === 0 && q === perSource / 2 && !aborted) {
          aborted = true;
          await abortAllDurableObjects();
        }
      }
    };
    await Promise.all(Array.from({ length: sources }, (_, s) => sender(s)));
    expect(aborted).toBe(true);
    const counters = await agg().counters();
    expect(counters.stored).toBe(sources * perSource);
    expect(counters.rows).toBe(sources * perSource * 2);
    const w = decodeSummary((await agg().window(t, t + MINUTE_MS))!);
    expect(w.counters.rows).toBe(sources * perSource * 2);
    expect((w.features.get('distance') as TDigest).count).toBe(sources * perSource * 2);
    // Everything again (every sender retrying everything after the restart): all duplicates.
    for (let s = 0; s < sources; s++)
      for (let q = 1; q <= perSource; q++)
        expect((await agg().ingest('flight-delay', summary(`src-${s}`, q, t + q * 1000, [s + 1, q]))).status).toBe('duplicate');
    expect((await agg().counters()).rows).toBe(sources * perSource * 2);
  });

  it('rolls evaluated minutes into hours and days by the data clock, keeps every row, forgets old dedup records safely, and applies retention', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-rollup'));
    const t0 = Date.UTC(2001, 0, 1, 0, 0, 0);
    const at = [0, 5 * MINUTE_MS, HOUR_MS + 7 * MINUTE_MS, DAY_MS + 3 * HOUR_MS, 3 * DAY_MS, 20 * DAY_MS + 30 * MINUTE_MS, 40 * DAY_MS];
    for (const [i, dt] of at.entries()) expect((await agg.ingest('flight-delay', summary('a', i + 1, t0 + dt, [i + 1, i + 2, i + 3]))).status).toBe('stored');
    const now = Date.now();
    await agg.evaluate(now);
    expect(await agg.rollup(now)).toBe(false);
    // Data clock = t0 + 40 d (+10 s): hourly horizon t0 + 38 d, daily horizon t0 + 10 d.
    const buckets = await agg.minutes();
    expect(buckets).toEqual([
      { version: '1', minute: t0, span: DAY_MS, origin: 'edge' }, // t0 and t0+5m and t0+1h07 in one day
      { version: '1', minute: t0 + DAY_MS, span: DAY_MS, origin: 'edge' },
      { version: '1', minute: t0 + 3 * DAY_MS, span: DAY_MS, origin: 'edge' },
      { version: '1', minute: t0 + 20 * DAY_MS, span: HOUR_MS, origin: 'edge' },
      { version: '1', minute: t0 + 40 * DAY_MS, span: MINUTE_MS, origin: 'edge' }, // not evaluated yet: never rolled
    ]);
    const all = decodeSummary((await agg.window(0, 2 ** 52))!);
    expect(all.counters.rows).toBe(3 * at.length);
    expect((all.features.get('distance') as TDigest).count).toBe(3 * at.length);
    const day0 = decodeSummary((await agg.window(t0, t0 + DAY_MS))!);
    expect(day0.counters.rows).toBe(9);
    // Dedup records older than the hourly horizon are gone, so summaries that old are refused
    // (not counted a second time); recent ones still deduplicate.
    const old = await agg.ingest('flight-delay', summary('a', 1, t0, [1, 2, 3]));
    expect(old.status).toBe('rejected');
    expect(old.reason).toMatch(/deduplication horizon/);
    expect((await agg.ingest('flight-delay', summary('a', 7, t0 + 40 * DAY_MS, [7, 8, 9]))).status).toBe('duplicate');
    expect(decodeSummary((await agg.window(0, 2 ** 52))!).counters.rows).toBe(3 * at.length);
    // 500 days later everything before day 100 is past retention (400 days).
    expect((await agg.ingest('flight-delay', summary('b', 1, t0 + 500 * DAY_MS, [1]))).status).toBe('stored');
    await agg.evaluate(Date.now());
    await agg.rollup(Date.now());
    expect(await agg.window(t0, t0 + 41 * DAY_MS)).toBeNull();
    expect((await agg.counters()).buckets_expired).toBe(5);
    expect((await agg.minutes()).map((b) => b.minute)).toEqual([t0 + 500 * DAY_MS]);
  });

  it('refuses summaries from the future (a skewed clock) and leaves storage as it was', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-future'));
    const r = await agg.ingest('flight-delay', summary('a', 1, Date.now() + 2 * HOUR_MS, [1]));
    expect(r.status).toBe('rejected');
    expect(r.reason).toMatch(/future/);
    expect(await agg.minutes()).toEqual([]);
  });

  it('a valid summary that cannot merge with its minute (a sketch of another kind) is dropped and counted at the fold; the rest stays exact', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-incompatible'));
    const t = Date.UTC(2001, 6, 1);
    expect((await agg.ingest('flight-delay', summary('a', 1, t, [1, 2]))).status).toBe('stored');
    const odd = createProfile({
      model: 'flight-delay',
      modelVersion: '1',
      source: { kind: 'edge', id: 'b' },
      sequence: 1,
      windowStart: t + 1000,
      windowEnd: t + 2000,
    });
    odd.features.set('distance', new CategoricalSketch().add('far', 5));
    odd.counters.rows = 5;
    expect((await agg.ingest('flight-delay', encodeSummary(odd))).status).toBe('stored');
    expect((await agg.ingest('flight-delay', summary('c', 1, t + 3000, [3]))).status).toBe('stored');
    const w = decodeSummary((await agg.window(t, t + MINUTE_MS))!);
    expect(w.counters.rows).toBe(3);
    expect((w.features.get('distance') as TDigest).count).toBe(3);
    expect(await agg.counters()).toMatchObject({ stored: 3, incompatible: 1, rows: 3 });
  });

  it('configuration errors name the variable', () => {
    expect(() => aggregatorConfig({ ALERT_WINDOW_MS: '90000' })).toThrow(/ALERT_WINDOW_MS/);
    expect(() => aggregatorConfig({ ALERT_WINDOW_MS: 'soon' })).toThrow(/ALERT_WINDOW_MS/);
    expect(() => aggregatorConfig({ ALERT_WEBHOOK_URL: 'ftp://x' })).toThrow(/ALERT_WEBHOOK_URL/);
    expect(() => aggregatorConfig({ ROLLUP_DAILY_AFTER_DAYS: '500' })).toThrow(/RETENTION_DAYS/);
    expect(aggregatorConfig({}).windowMs).toBe(MINUTE_MS);
    // The sequential evidence: 2.5 by default, off for the hysteresis alone, never under one window's most (1.5).
    expect(aggregatorConfig({}).evidenceThreshold).toBe(2.5);
    expect(aggregatorConfig({ ALERT_EVIDENCE: 'off' }).evidenceThreshold).toBe(Number.POSITIVE_INFINITY);
    expect(aggregatorConfig({ ALERT_EVIDENCE: '4' }).evidenceThreshold).toBe(4);
    for (const bad of ['1', '-3', 'NaN', 'Infinity', 'on']) expect(() => aggregatorConfig({ ALERT_EVIDENCE: bad }), bad).toThrow(/ALERT_EVIDENCE/);
  });

  it('any interleaving of stored summaries and retries gives the same rows as storing each once (property)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ source: fc.integer({ min: 0, max: 3 }), seq: fc.integer({ min: 1, max: 6 }), minute: fc.integer({ min: 0, max: 5 }) }), {
          minLength: 1,
          maxLength: 25,
        }),
        async (sends) => {
          const agg = ns.get(ns.idFromName(`flight-delay-prop-${run++}`));
          const t = Date.UTC(2001, 5, 1);
          const first = new Map<string, number>();
          for (const s of sends) {
            // The same (source, sequence) always carries the same window (a retry), as senders guarantee.
            const key = `${s.source}:${s.seq}`;
            if (!first.has(key)) first.set(key, s.minute);
            const minute = first.get(key)!;
            await agg.ingest('flight-delay', summary(`s${s.source}`, s.seq, t + minute * MINUTE_MS, [s.source + s.seq]));
          }
          const bytes = await agg.window(0, 2 ** 52);
          expect(bytes ? decodeSummary(bytes).counters.rows : 0).toBe(first.size);
          expect((await agg.counters()).stored).toBe(first.size);
        },
      ),
      { numRuns: 15 },
    );
  });
});
