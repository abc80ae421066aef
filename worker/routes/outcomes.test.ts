// Late labels (issue 15) through the app and the real aggregator: every answer carries a
// prediction id; labels sent later join their prediction in its own window, once; unknown,
// expired, duplicate and invalid ones are answered per item; the realized AUC is the exact one;
// a ranking's late clicks give each version's CTR@k exactly.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newPredictionId, predictionTime } from '../../core/index.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';
import { isolatedNamespace } from '../../test/support/namespaces.ts';
import { rng } from '../../test/support/data.ts';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
// Real MovieLens histories (the ranking replay), as text (Vite's ?raw).
import movieReplay from '../../models/movielens-topk/replay.jsonl?raw';

const OP = { authorization: 'Bearer op-secret' };
const FEED = { authorization: 'Bearer feed-secret' };
const MIN = 60_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);

function setup(vars: Partial<Env> = {}) {
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
    ...vars,
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
  const aggregator = () => bindings.AGGREGATOR!.get(bindings.AGGREGATOR!.idFromName('flight-delay'));
  return { request, aggregator };
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
    expect(perf.json.estimate_assumptions).toContain('isotonic calibration fitted on 48665 labelled reference rows');
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
    // A ranking takes events, not labels: answered per item.
    const rank = await request('POST', '/v1/models/movielens-topk/feedback', { feedback: [{ prediction_id: 'a', label: 1 }] }, FEED);
    expect(rank.status).toBe(200);
    expect(rank.json.results[0]).toMatchObject({ status: 'invalid', reason: 'unknown field "label" (an item is {"prediction_id", "event", "item"})' });
    // The feedback token opens nothing else.
    expect((await request('GET', '/v1/models/flight-delay/performance', undefined, FEED)).status).toBe(401);
  });
});

describe('a ranking replay with late clicks', () => {
  it("gives each version's CTR@k, hit rate and conversion rate exactly, clicks arriving late, shuffled and retried", async () => {
    const { request } = setup();
    expect((await request('PUT', '/v1/models/movielens-topk/routing', { stable: '1', canary: { version: '1-float32', share: 0.5 } }, OP)).status).toBe(200);
    const histories = movieReplay
      .trim()
      .split('\n')
      .slice(0, 240)
      .map((l) => (JSON.parse(l) as { features: { history: number[] } }).features.history);
    const r = rng(5);
    const served: { id: string; version: string; items: number[]; history: number[]; minute: number }[] = [];
    for (const [i, history] of histories.entries()) {
      const res = await request(
        'POST',
        '/v1/models/movielens-topk/predict',
        { instances: [{ history, k: 10 }] },
        { 'x-event-time': String(T0 + i * 1000), 'x-user-key': `user-${i % 90}` },
      );
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      const p = res.json.predictions[0];
      served.push({ id: p.prediction_id, version: res.headers.get('x-model-version')!, items: p.movie_ids, history, minute: Math.floor(i / 60) });
    }
    await request('POST', '/v1/models/movielens-topk/predict', { instances: [{ history: [1], k: 10 }] }, { 'x-event-time': String(T0 + 10 * MIN) });
    expect(new Set(served.map((s) => s.version))).toEqual(new Set(['1', '1-float32']));

    // What users did: clicks on served items (the first positions more often), clicks elsewhere
    // (a movie of their own history), conversions of what they clicked.
    const events: { prediction_id: string; event: 'click' | 'convert'; item: number }[] = [];
    for (const s of served) {
      if (r() < 0.4) {
        const pos = Math.min(9, Math.floor(-Math.log(1 - r()) * 3));
        events.push({ prediction_id: s.id, event: 'click', item: s.items[pos] });
        if (r() < 0.3) events.push({ prediction_id: s.id, event: 'click', item: s.items[Math.floor(r() * 10)] });
        if (r() < 0.25) events.push({ prediction_id: s.id, event: 'convert', item: s.items[pos] });
      }
      if (r() < 0.1) events.push({ prediction_id: s.id, event: 'click', item: s.history[0] });
    }
    const unique = events.filter((e, i) => events.findIndex((x) => x.prediction_id === e.prediction_id && x.event === e.event && x.item === e.item) === i);
    // Delivered late in shuffled batches, a tenth of each batch sent again (a client's retry).
    const shuffled = [...events].sort(() => r() - 0.5);
    let joined = 0;
    let duplicate = 0;
    let resent = 0;
    for (let i = 0; i < shuffled.length; i += 50) {
      const batch = shuffled.slice(i, i + 50);
      resent += Math.min(5, batch.length);
      const res = await request('POST', '/v1/models/movielens-topk/feedback', { feedback: [...batch, ...batch.slice(0, 5)] }, FEED);
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      joined += res.json.joined;
      duplicate += res.json.duplicate;
      expect(res.json.invalid + res.json.unknown + res.json.expired).toBe(0);
    }
    expect(joined).toBe(unique.length);
    expect(duplicate).toBe(events.length - unique.length + resent);

    // The exact figures, per version, from what was served and what users did.
    const exact = (rows: typeof served) => {
      const ev = (s: (typeof served)[number]) => unique.filter((e) => e.prediction_id === s.id);
      const best = (s: (typeof served)[number]) => {
        const pos = ev(s)
          .filter((e) => e.event === 'click')
          .map((e) => s.items.indexOf(e.item))
          .filter((p) => p >= 0);
        return pos.length ? Math.min(...pos) : undefined;
      };
      const clicks = rows.flatMap((s) =>
        ev(s)
          .filter((e) => e.event === 'click')
          .map((e) => s.items.includes(e.item)),
      );
      return {
        predicted: rows.length,
        labelled: rows.filter((s) => ev(s).length > 0).length,
        ctr_at: Object.fromEntries([1, 3, 5, 10].map((k) => [String(k), rows.filter((s) => (best(s) ?? 99) < k).length / rows.length])),
        clicks: clicks.length,
        hit_rate: clicks.filter(Boolean).length / clicks.length,
        conversion_rate: rows.filter((s) => ev(s).some((e) => e.event === 'convert')).length / rows.length,
      };
    };
    const perf = await request('GET', `/v1/models/movielens-topk/performance?from=${T0}&to=${T0 + 4 * MIN}&step=${MIN}`, undefined, OP);
    expect(perf.status, JSON.stringify(perf.json)).toBe(200);
    for (const v of ['1', '1-float32']) {
      const want = exact(served.filter((s) => s.version === v));
      const got = perf.json.total[v];
      expect(got, v).toMatchObject({ predicted: want.predicted, labelled: want.labelled, clicks: want.clicks });
      for (const k of ['1', '3', '5', '10']) expect(got.ctr_at[k], `${v} CTR@${k}`).toBeCloseTo(want.ctr_at[k], 12);
      expect(got.hit_rate).toBeCloseTo(want.hit_rate, 12);
      expect(got.conversion_rate).toBeCloseTo(want.conversion_rate, 12);
      // Each click in the window of its prediction.
      for (const m of [0, 1, 2, 3]) {
        const w = exact(served.filter((s) => s.version === v && s.minute === m));
        expect(perf.json.windows[m].versions[v].ctr_at['10'], `${v} minute ${m}`).toBeCloseTo(w.ctr_at['10'], 12);
      }
    }
    expect(perf.json.windows[0].estimated).toBeUndefined(); // no estimate for a ranking
  });
});

describe('performance alerts', () => {
  it('open when the labels stop following the scores (concept drift), judged once the labels had time to arrive, with hysteresis', async () => {
    // The aggregator's own settings are its defaults here (its object has its own environment):
    // windows of a minute, 200 labels to judge one, 3 in a row, judged a day behind the data clock.
    const { request, aggregator } = setup();
    const r = rng(23);
    const labels: { prediction_id: string; label: number }[] = [];
    // Six minutes of 200 predictions; labels drawn from the scores, then (minutes 3-5) reversed.
    for (let m = 0; m < 6; m++)
      for (let i = 0; i < 200; i++) {
        const res = await request(
          'POST',
          '/v1/models/flight-delay/predict',
          { instances: [flight(m * 200 + i)] },
          { 'x-event-time': String(T0 + m * MIN + i * 250) },
        );
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        const { prediction_id, p_delay } = res.json.predictions[0];
        const y = r() < p_delay ? 1 : 0;
        labels.push({ prediction_id, label: m < 3 ? y : 1 - y });
      }
    // The labels arrive late (all after the traffic above).
    for (let i = 0; i < labels.length; i += 600) {
      const res = await request('POST', '/v1/models/flight-delay/feedback', { feedback: labels.slice(i, i + 600) }, FEED);
      expect(res.json.joined).toBe(600);
    }
    // Judged before the label delay has passed: nothing yet.
    await aggregator().evaluate(Date.now());
    const early = (await request('GET', '/v1/models/flight-delay/alerts', undefined, OP)).json.alerts as any[];
    expect(early.filter((a) => a.feature.startsWith('performance:'))).toEqual([]);
    // A day later on the data clock (two more requests: the second closes the first's window).
    for (const m of [0, 2])
      await request('POST', '/v1/models/flight-delay/predict', { instances: [flight(m)] }, { 'x-event-time': String(T0 + DAY + (10 + m) * MIN) });
    await aggregator().evaluate(Date.now());
    const alerts = (await request('GET', '/v1/models/flight-delay/alerts', undefined, OP)).json.alerts as any[];
    const perf = alerts.filter((a) => a.feature.startsWith('performance:'));
    expect(perf.map((a) => a.feature)).toEqual(['performance:auc']);
    const [a] = perf;
    // Three reversed windows in a row (minutes 3 to 5) open it, from minute 3.
    expect(a.since).toBe(new Date(T0 + 3 * MIN).toISOString());
    expect(a.opened_at).toBe(new Date(T0 + 6 * MIN).toISOString());
    expect(a.evidence.auc).toMatchObject({ reference: expect.closeTo(0.7266, 3), reference_source: 'manifest quality auc_held_out', labels: 200 });
    expect(a.evidence.auc.bound).toBeLessThan(a.evidence.auc.threshold);
    // The performance route says what the alerts judge against.
    const answer = await request('GET', `/v1/models/flight-delay/performance?from=${T0}&to=${T0 + 6 * MIN}&step=${MIN}`, undefined, OP);
    expect(answer.json.reference).toMatchObject({ metric: 'auc', source: 'manifest quality auc_held_out' });
    expect(answer.json.windows[4].versions['1'].auc).toBeLessThan(0.5);
    // The estimate could not see it coming (the scores did not change): the labels contradict it now.
    for (const m of [3, 4, 5]) {
      const e = answer.json.windows[m].estimated['1'];
      expect(e, `minute ${m}`).toMatchObject({ contradicted: true, valid: false });
      expect(e.reasons.at(-1)).toMatch(/the realized AUC 0\.\d+ \(200 labels\) is outside the band: concept drift/);
    }
    expect(answer.json.windows[0].estimated['1'].contradicted).toBeUndefined();

    // An operator's reference period replaces the manifest's: the first three minutes' realized AUC.
    const set = await request('POST', '/v1/models/flight-delay/performance/reference', { from: T0, to: T0 + 3 * MIN }, OP);
    expect(set.status, JSON.stringify(set.json)).toBe(200);
    expect(set.json.reference).toMatchObject({ metric: 'auc', labels: 600 });
    expect(set.json.reference.value).toBeCloseTo(
      (await request('GET', `/v1/models/flight-delay/performance?from=${T0}&to=${T0 + 3 * MIN}&step=${3 * MIN}`, undefined, OP)).json.total['1'].auc,
      12,
    );
    const bad = await request('POST', '/v1/models/flight-delay/performance/reference', { from: T0 + 7 * MIN, to: T0 + 60 * MIN }, OP);
    expect(bad.status).toBe(422);
    expect(bad.json.error.code).toBe('reference_period_unusable');
  });
});

describe('a canary judged on its outcomes', () => {
  it("the versions view calls a canary worse when its realized AUC is past stable's by more than its 99% bound allows", async () => {
    const { request } = setup();
    expect((await request('PUT', '/v1/models/flight-delay/routing', { stable: '1', canary: { version: '1-float32', share: 0.5 } }, OP)).status).toBe(200);
    const r = rng(31);
    const labels: { prediction_id: string; label: number }[] = [];
    const byVersion = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const res = await request(
        'POST',
        '/v1/models/flight-delay/predict',
        { instances: [flight(i)] },
        { 'x-event-time': String(T0 + Math.floor(i / 150) * MIN + (i % 150) * 300), 'x-user-key': `u${i}` },
      );
      expect(res.status).toBe(200);
      const v = res.headers.get('x-model-version')!;
      byVersion.set(v, (byVersion.get(v) ?? 0) + 1);
      const { prediction_id, p_delay } = res.json.predictions[0];
      const y = r() < p_delay ? 1 : 0;
      // The canary's world answers the opposite of what its scores say (a model that learned the label backwards).
      labels.push({ prediction_id, label: v === '1-float32' ? 1 - y : y });
    }
    await request('POST', '/v1/models/flight-delay/predict', { instances: [flight(0)] }, { 'x-event-time': String(T0 + 6 * MIN) });
    expect((await request('POST', '/v1/models/flight-delay/feedback', { feedback: labels }, FEED)).json.joined).toBe(600);
    const view = await request('GET', `/v1/models/flight-delay/versions?from=${T0}&to=${T0 + 5 * MIN}`, undefined, OP);
    const canary = view.json.versions['1-float32'];
    expect(canary.outcomes.labelled).toBe(byVersion.get('1-float32'));
    expect(canary.verdict, JSON.stringify(canary.reasons)).toBe('worse');
    expect(canary.reasons).toEqual([expect.stringMatching(/^realized auc \(0\.\d{3} on \d+ against stable's 0\.\d{3}\)$/)]);
  });
});

describe('hostile feedback', () => {
  it('any body answers 200 per item, 400 or 413 naming the field, never 5xx; nothing is joined without a real id (property)', async () => {
    const { request } = setup();
    // One real prediction of each model: its outcome state must not move.
    const flightAnswer = await request('POST', '/v1/models/flight-delay/predict', { instances: [flight(1)] }, { 'x-event-time': String(T0) });
    const movieAnswer = await request(
      'POST',
      '/v1/models/movielens-topk/predict',
      { instances: [{ history: [1, 260], k: 10 }] },
      { 'x-event-time': String(T0) },
    );
    expect([flightAnswer.status, movieAnswer.status]).toEqual([200, 200]);
    const realId = flightAnswer.json.predictions[0].prediction_id as string;
    const key = fc.oneof(fc.constantFrom('prediction_id', 'label', 'event', 'item', '__proto__', 'constructor', 'toString'), fc.string({ maxLength: 8 }));
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(realId.slice(0, -1), `${realId}:99999`, `${realId}x`, 'click', 'convert', '__proto__', 'x'.repeat(70), 1e308, -0),
    );
    const item = fc.oneof(fc.dictionary(key, value, { maxKeys: 4 }), fc.jsonValue({ maxDepth: 1 }));
    const body = fc.oneof(
      fc.record({ feedback: fc.array(item, { maxLength: 12 }) }),
      fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
      fc.jsonValue({ maxDepth: 2 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('flight-delay', 'movielens-topk'), body, async (model, b) => {
        const res = await request('POST', `/v1/models/${model}/feedback`, b, FEED);
        expect([200, 400, 413], JSON.stringify(res.json)).toContain(res.status);
        if (res.status === 200) {
          const items = (b as { feedback: unknown[] }).feedback;
          expect(res.json.results).toHaveLength(items.length);
          expect(res.json.joined).toBe(0);
        } else expect(typeof res.json.error.field).toBe('string');
      }),
      { numRuns: 150 },
    );
    for (const model of ['flight-delay', 'movielens-topk']) {
      const perf = await request('GET', `/v1/models/${model}/performance?from=${T0}&to=${T0 + MIN}&step=${MIN}`, undefined, OP);
      expect(perf.json.total['1'], model).toMatchObject({ predicted: 1, labelled: 0 });
    }
  });
});
