// Late labels (issue 15, first part) through the app and the real aggregator: every answer
// carries a prediction id; labels sent later join their prediction in its own window, once;
// unknown, expired, duplicate and invalid ones are answered per item; the realized AUC is the
// exact one.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { newPredictionId, predictionTime } from '../../core/index.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';
import { isolatedNamespace } from '../../test/support/namespaces.ts';
import { rng } from '../../test/support/data.ts';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';

const OP = { authorization: 'Bearer op-secret' };
const FEED = { authorization: 'Bearer feed-secret' };
const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);

function setup() {
  const tag = crypto.randomUUID();
  const bindings: Env = {
    ...(env as Env),
    AGGREGATOR: isolatedNamespace((env as Env).AGGREGATOR!, tag),
    ROUTING: isolatedNamespace((env as Env).ROUTING!, tag),
    OPERATOR_TOKEN: 'op-secret',
    FEEDBACK_TOKEN: 'feed-secret',
    TELEMETRY_CLOCK: 'event',
    TELEMETRY_WINDOW_MS: String(MIN),
    CACHE_MAX_BYTES: '0',
  };
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const request = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const ctx = createExecutionContext();
    const res = await app.request(
      path,
      // A generous budget: a loaded CI machine must not turn a slow answer into a 503 (deadline) here.
      {
        method,
        headers: { 'content-type': 'application/json', 'x-latency-budget-ms': '10000', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      },
      bindings,
      ctx,
    );
    const json = (await res.json()) as any;
    await waitOnExecutionContext(ctx);
    return { status: res.status, json, headers: res.headers };
  };
  return { request };
}

const flight = (i: number) => ({
  month: 1 + (i % 2),
  day_of_week: i % 7,
  hour: 6 + (i % 15),
  distance: 200 + ((i * 37) % 2400),
  origin: ['ORD', 'ATL', 'LAX', 'DFW', 'SFO'][i % 5],
  destination: ['SEA', 'BOS', 'DEN', 'PHX'][i % 4],
});

/** Exact AUC: P(score of a positive > score of a negative), ties one half. */
function exactAuc(rows: { p: number; y: number }[]): number {
  let s = 0;
  let n = 0;
  for (const a of rows)
    for (const b of rows)
      if (a.y === 1 && b.y === 0) {
        s += a.p > b.p ? 1 : a.p === b.p ? 0.5 : 0;
        n++;
      }
  return s / n;
}

describe('prediction ids and late labels', () => {
  it('every answer carries an unguessable id, per row, on both protocols', async () => {
    const { request } = setup();
    const v1 = await request('POST', '/v1/models/flight-delay/predict', { instances: [flight(1), flight(2)] }, { 'x-event-time': String(T0) });
    expect(v1.status).toBe(200);
    const [a, b] = v1.json.predictions.map((p: any) => p.prediction_id);
    const base = v1.headers.get('x-prediction-id')!;
    expect([a, b]).toEqual([`${base}:0`, `${base}:1`]);
    expect(predictionTime(a)).toBe(T0);
    expect(base).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    const oip = await request('POST', '/v2/models/flight-delay/infer', {
      inputs: Object.entries(flight(3)).map(([name, v]) =>
        typeof v === 'number'
          ? { name, datatype: name === 'distance' ? 'FP32' : 'INT64', shape: [1], data: [v] }
          : { name, datatype: 'INT64', shape: [1], data: [1] },
      ),
    });
    expect(oip.status, JSON.stringify(oip.json)).toBe(200);
    expect(oip.json.id).toBe(oip.json.parameters.prediction_id);
    expect(oip.headers.get('x-prediction-id')).toBe(oip.json.id);
    expect(new Set([a, b, oip.json.id]).size).toBe(3);
  });

  it('joins labels sent later to their predictions, in the window of the prediction, once each; the realized AUC is the exact one', async () => {
    const { request } = setup();
    const r = rng(11);
    const served: { id: string; p: number; y: number; minute: number }[] = [];
    // Three minutes of 80 single-row predictions each, then one more request that ships the last window.
    for (let m = 0; m < 3; m++)
      for (let i = 0; i < 80; i++) {
        const res = await request(
          'POST',
          '/v1/models/flight-delay/predict',
          { instances: [flight(m * 80 + i)] },
          { 'x-event-time': String(T0 + m * MIN + i * 500) },
        );
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        const { prediction_id, p_delay } = res.json.predictions[0];
        served.push({ id: prediction_id, p: p_delay, y: r() < p_delay ? 1 : 0, minute: m });
      }
    await request('POST', '/v1/models/flight-delay/predict', { instances: [flight(0)] }, { 'x-event-time': String(T0 + 5 * MIN) });
    // Labels for all but the last 40, in a shuffled order, with a duplicate, an unknown id, an expired one and bad labels.
    const labelled = served.slice(0, 200).sort(() => r() - 0.5);
    const items: unknown[] = labelled.map((s) => ({ prediction_id: s.id, label: s.y === 1 }));
    items.push({ prediction_id: labelled[0].id, label: 1 });
    items.push({ prediction_id: newPredictionId(T0, new Uint8Array(16).fill(7)), label: 0 });
    items.push({ prediction_id: newPredictionId(T0 - 30 * 86_400_000, new Uint8Array(16).fill(9)), label: 0 });
    items.push({ prediction_id: served[220].id, label: 'late' });
    items.push({ prediction_id: 'x', label: 1 }, { prediction_id: served[221].id, label: 1, extra: 1 }, 7);
    const res = await request('POST', '/v1/models/flight-delay/feedback', { feedback: items }, FEED);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect({ joined: res.json.joined, duplicate: res.json.duplicate, unknown: res.json.unknown, expired: res.json.expired, invalid: res.json.invalid }).toEqual(
      {
        joined: 200,
        duplicate: 1,
        unknown: 1,
        expired: 1,
        invalid: 4,
      },
    );
    expect(res.json.results[0]).toMatchObject({ prediction_id: labelled[0].id, status: 'joined', version: '1' });
    expect(res.json.results.at(-4).reason).toContain('label must be 0, 1, true or false');
    // Sent again, nothing counts twice.
    const again = await request('POST', '/v1/models/flight-delay/feedback', { feedback: items.slice(0, 50) }, OP);
    expect(again.json.duplicate).toBe(50);

    const perf = await request('GET', `/v1/models/flight-delay/performance?from=${T0}&to=${T0 + 3 * MIN}&step=${MIN}`, undefined, OP);
    expect(perf.status, JSON.stringify(perf.json)).toBe(200);
    const total = perf.json.total['1'];
    expect(total).toMatchObject({ predicted: 240, labelled: 200 });
    expect(total.labelled_share).toBeCloseTo(200 / 240, 10);
    expect(Math.abs(total.auc - exactAuc(served.slice(0, 200)))).toBeLessThan(0.01);
    // Per window: the labels counted where their predictions were.
    for (const m of [0, 1, 2]) {
      const w = perf.json.windows[m].versions['1'];
      const rows = served.slice(0, 200).filter((s) => s.minute === m);
      expect(w.labelled, `minute ${m}`).toBe(rows.length);
      expect(w.predicted).toBe(80);
      expect(Math.abs(w.auc - exactAuc(rows))).toBeLessThan(0.01);
      const ll = rows.reduce((a, s) => a - (s.y ? Math.log(s.p) : Math.log(1 - s.p)), 0) / rows.length;
      expect(w.log_loss).toBeCloseTo(ll, 4);
    }
    expect(total.calibration.reduce((a: number, d: any) => a + d.n, 0)).toBe(200);
    // Before labels, each window's AUC estimated from its scores: too few rows here to be trusted, and it says so.
    expect(perf.json.windows[0].estimated['1']).toMatchObject({ rows: 80, valid: false, reasons: ['80 rows, fewer than 100'] });
    expect(perf.json.estimate_assumptions).toContain('calibrated');
    // The versions view carries the same outcomes per version, for canaries.
    const versions = await request('GET', `/v1/models/flight-delay/versions?from=${T0}&to=${T0 + 3 * MIN}`, undefined, OP);
    expect(versions.json.versions['1'].outcomes).toMatchObject({ predicted: 240, labelled: 200, auc: total.auc });
  });

  it('refuses what it cannot take: no token, a bad body, a task it does not score', async () => {
    const { request } = setup();
    expect((await request('POST', '/v1/models/flight-delay/feedback', { feedback: [] })).status).toBe(401);
    for (const [b, field] of [
      [{ feedback: [] }, 'feedback'],
      [{ labels: [] }, 'feedback'],
      [{ feedback: [], more: 1 }, 'more'],
      [[1], 'feedback'],
    ] as const) {
      const r = await request('POST', '/v1/models/flight-delay/feedback', b, FEED);
      expect(r.status, JSON.stringify(b)).toBe(400);
      expect(r.json.error.field).toBe(field);
    }
    const big = await request(
      'POST',
      '/v1/models/flight-delay/feedback',
      { feedback: Array.from({ length: 1001 }, () => ({ prediction_id: 'a', label: 1 })) },
      FEED,
    );
    expect(big.status).toBe(413);
    const rank = await request('POST', '/v1/models/movielens-topk/feedback', { feedback: [{ prediction_id: 'a', label: 1 }] }, FEED);
    expect(rank.status).toBe(422);
    expect(rank.json.error.code).toBe('task_not_scored');
    // The feedback token opens nothing else.
    expect((await request('GET', '/v1/models/flight-delay/performance', undefined, FEED)).status).toBe(401);
  });
});
