// Upstream changes and ownership (issue 14), through the app and the real aggregator on event
// time: requests refused by validation are counted per version and field in the window
// profiles and alerted on when their rate jumps, and a reference version past its retrain
// cadence raises `stale` once.
import { createExecutionContext, env, runDurableObjectAlarm, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { countRefusal, createProfile, decodeSummary, encodeSummary, judgeRefusals } from '../core/index.ts';
import { DEFAULT_VERSIONS, DEFAULTS } from '../models/defaults.ts';
import { isolatedNamespace } from '../test/support/namespaces.ts';
import type { DriftAggregator } from './aggregator.ts';
import { createApp, type Env } from './app.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
// The replay's rows, as text (Vite's ?raw): real flights, January-February, what the model was trained on.
import replayText from '../models/flight-delay/replay.jsonl?raw';
import { Registry } from './registry/registry.ts';

const MIN = 60_000;
const flight = DEFAULTS['flight-delay'];
const flights = (replayText as string)
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { time: string; features: Record<string, number | string> })
  .filter((x) => x.time < '2001-03-01')
  .map((x) => x.features);

describe('refused requests', () => {
  it('count per field under the window, and never under a name a client chose', () => {
    const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    countRefusal(p.counters, 'distance');
    countRefusal(p.counters, 'distance');
    countRefusal(p.counters, 'a b/c');
    for (let i = 0; i < 40; i++) countRefusal(p.counters, `f${i}`);
    expect(p.counters.refused).toBe(43);
    expect(p.counters['refused:distance']).toBe(2);
    expect(p.counters['refused:a_b_c']).toBe(1);
    expect(Object.keys(p.counters).filter((k) => k.startsWith('refused:')).length).toBe(17); // 16 fields and "other"
    expect(p.counters['refused:other']).toBe(26);
    // A jump: 5% of 400 against none in the reference; 1 in 400 is not one, nor 4% of 50 (too few).
    const w = (refused: number, rows: number) => ({ counters: { rows, errors: 0, cacheHits: 0, fallbacks: 0, refused, 'refused:x': refused } });
    expect(judgeRefusals(w(20, 380), undefined)[0].drifted).toBe(true);
    expect(judgeRefusals(w(1, 399), undefined)[0].drifted).toBe(false);
    expect(judgeRefusals(w(2, 48), undefined)[0].drifted).toBe(false);
    // Against a reference that refuses 4% already, 5% is no jump.
    expect(judgeRefusals(w(20, 380), w(16, 384))[0].drifted).toBe(false);
  });

  it('a field that starts arriving as a string raises the refusal alert, and nothing else', async () => {
    const tag = crypto.randomUUID();
    const AGGREGATOR = isolatedNamespace((env as Env).AGGREGATOR!, tag);
    const bindings: Env = {
      ...(env as Env),
      AGGREGATOR,
      ROUTING: isolatedNamespace((env as Env).ROUTING!, tag),
      TELEMETRY_CLOCK: 'event',
      TELEMETRY_WINDOW_MS: String(MIN),
      TELEMETRY_MAX_ROWS: '100000',
      CACHE_MAX_BYTES: '0',
    };
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
    const t0 = Date.UTC(2026, 0, 5, 9, 0, 0);
    const statuses: number[] = [];
    // Ten minutes of 240 requests; from minute 3 on, a fifth of them send distance as a string.
    for (let m = 0; m < 10; m++) {
      const ctx = createExecutionContext();
      const answers: number[] = [];
      // 16 at a time: the edge sheds load past its queue (503), which is not what this is about.
      for (let chunk = 0; chunk < 240; chunk += 16) {
        answers.push(
          ...(await Promise.all(
            Array.from({ length: 16 }, async (_, k) => {
              const i = chunk + k;
              const row = { ...flights[(m * 240 + i) % flights.length] };
              if (m >= 3 && i % 5 === 0) row.distance = String(row.distance);
              // A 503 is the edge shedding load (a busy machine): sent again, as a client would.
              for (let attempt = 0; ; attempt++) {
                const res = await app.request(
                  '/v1/models/flight-delay/predict',
                  {
                    method: 'POST',
                    headers: { 'content-type': 'application/json', 'x-event-time': String(t0 + m * MIN + i * 200) },
                    body: JSON.stringify({ instances: [row] }),
                  },
                  bindings,
                  ctx,
                );
                await res.arrayBuffer();
                if (res.status !== 503 || attempt >= 20) return res.status;
                await new Promise((r) => setTimeout(r, 20));
              }
            }),
          )),
        );
      }
      statuses.push(...answers);
      await waitOnExecutionContext(ctx);
    }
    expect(Object.fromEntries([...new Set(statuses)].map((s) => [s, statuses.filter((x) => x === s).length]))).toEqual({ 200: 10 * 240 - 7 * 48, 400: 7 * 48 });
    expect(statuses.filter((s) => s === 400).length).toBe(7 * 48);
    expect(statuses.filter((s) => s === 200).length).toBe(10 * 240 - 7 * 48);
    const agg = AGGREGATOR.get(AGGREGATOR.idFromName('flight-delay')) as DurableObjectStub<DriftAggregator>;
    expect(await runDurableObjectAlarm(agg)).toBe(true);
    const alerts = await agg.alerts();
    expect(alerts.map((a) => a.feature)).toEqual(['refused:distance']);
    const [a] = alerts;
    // Refused from minute 3: three windows in a row open it.
    expect(a.since).toBe(new Date(t0 + 3 * MIN).toISOString());
    expect(a.opened_at).toBe(new Date(t0 + 6 * MIN).toISOString());
    expect(a.evidence.refusal_rate).toMatchObject({ refused: 48, seen: 240, reference_rate: 0 });
    expect(a.evidence.refusal_rate.statistic).toBeCloseTo(0.2, 5);
    // The window profiles carry the count, per version and field.
    const w = decodeSummary(new Uint8Array((await agg.window(t0 + 4 * MIN, t0 + 5 * MIN, '1'))!));
    expect(w.counters).toMatchObject({ rows: 192, refused: 48, 'refused:distance': 48 });
  });
});

describe('ownership', () => {
  it('a reference version past its retrain cadence raises stale once; promoting another resolves it', async () => {
    const tag = crypto.randomUUID();
    const AGGREGATOR = isolatedNamespace((env as Env).AGGREGATOR!, tag);
    const agg = AGGREGATOR.get(AGGREGATOR.idFromName('flight-delay')) as DurableObjectStub<DriftAggregator>;
    // The aggregator reads versions from the worker's registry bucket: a version of this test's own.
    const version = `old-${tag.slice(0, 8)}`;
    const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const manifest = {
      ...flight.manifest,
      version,
      ownership: { owner: 'ml-team@example.com', trained: ['2024-01-01', '2024-06-30'] as [string, string], retrain_every: 'P90D' },
    };
    await new Registry((env as Env).MODELS!).commit(
      'flight-delay',
      version,
      {
        'model.onnx': new Uint8Array(flight.artifact),
        'manifest.json': utf8(manifest),
        'baseline.dwsm': new Uint8Array(flight.baseline),
        'golden.json': utf8(flight.golden),
      },
      manifest,
    );
    expect(await agg.promote(version)).toEqual({ changed: true });
    const p = createProfile({
      model: 'flight-delay',
      modelVersion: version,
      source: { kind: 'edge', id: 't' },
      sequence: 1,
      windowStart: Date.now() - 10 * MIN,
      windowEnd: Date.now() - 9 * MIN,
    });
    p.counters.rows = 1;
    expect((await agg.ingest('flight-delay', encodeSummary(p))).status).toBe('stored');
    await agg.evaluate(Date.now());
    await agg.evaluate(Date.now() + MIN);
    const stale = (await agg.alerts()).filter((a) => a.feature === 'stale');
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({ version, since: '2024-09-28T00:00:00.000Z', resolved_at: null });
    expect(stale[0].evidence.stale).toMatchObject({ retrain_every: 'P90D', owner: 'ml-team@example.com' });
    await agg.promote('1');
    expect((await agg.alerts()).find((a) => a.feature === 'stale')!.resolved_at).not.toBeNull();
  });
});
