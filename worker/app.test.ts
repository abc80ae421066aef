// The edge API inside workerd (Workers vitest pool) on the real bundled int8 models.
import { env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import flightGolden from '../models/flight-delay/golden.json';
import movieGolden from '../models/movielens-topk/golden.json';
import { createApp, type Env } from './app.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../models/defaults.ts';
import { errorOf, jsonClient, type Json } from '../test/support/app-client.ts';

function newApp(env: Env = {}) {
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  return { app, call: jsonClient(app, env, { strict: true }) };
}

const OPERATOR = { authorization: 'Bearer op' };

const flightRows = flightGolden.rows as { features: Json; inputs: Json; expected: { int8: { p_delay: number } } }[];
const movieRows = movieGolden.rows as {
  features: { history: number[]; k: number };
  inputs: { history: number[] };
  expected: { int8: { movie_ids: number[]; scores: number[] } };
}[];

describe('health and metadata', () => {
  const { call } = newApp();
  it('live, ready (both models load), metadata from the manifest', async () => {
    expect((await call('GET', '/v2/health/live')).json).toEqual({ live: true });
    const ready = await call('GET', '/v2/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.json.models['flight-delay'].state).toBe('ready');
    const meta = await call('GET', '/v2/models/flight-delay');
    expect(meta.json.inputs.map((i: Json) => i.name)).toContain('origin');
    expect(meta.json.inputs.find((i: Json) => i.name === 'distance').datatype).toBe('FP32');
    expect((await call('GET', '/v2/models/movielens-topk/ready')).json.ready).toBe(true);
    expect((await call('GET', '/v2/models/nope')).status).toBe(404);
    const missing = await call('GET', '/v2/models/flight-delay/versions/9/ready');
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ error: expect.stringMatching(/no version "9"/), code: 'version_not_found', field: 'version' });
  });
});

describe('golden sets through the routes', () => {
  const { call } = newApp({ CACHE_MAX_BYTES: '0' });

  it('flight-delay /v1 predict with named features matches the int8 golden outputs', async () => {
    const res = await call('POST', '/v1/models/flight-delay/predict', { instances: flightRows.map((r) => r.features) });
    expect(res.status).toBe(200);
    expect(res.json.served_by).toBe('edge');
    res.json.predictions.forEach((p: Json, i: number) =>
      expect(Math.abs(p.p_delay - flightRows[i].expected.int8.p_delay)).toBeLessThanOrEqual(flightGolden.tolerance.p_delay_abs),
    );
  });

  it('flight-delay /v2 infer with tensors matches the golden outputs', async () => {
    const rows = flightRows.slice(0, 20);
    const inputs = ['month', 'day_of_week', 'hour', 'origin', 'destination'].map((name) => ({
      name,
      datatype: 'INT64',
      shape: [rows.length],
      data: rows.map((r) => r.inputs[name]),
    }));
    inputs.push({ name: 'distance', datatype: 'FP32', shape: [rows.length], data: rows.map((r) => r.inputs.distance) });
    const res = await call('POST', '/v2/models/flight-delay/versions/1/infer', { id: 'golden', inputs });
    expect(res.status).toBe(200);
    expect(res.json.id).toBe('golden');
    const out = res.json.outputs[0];
    expect(out.name).toBe('p_delay');
    expect(out.shape).toEqual([rows.length]);
    out.data.forEach((p: number, i: number) => expect(Math.abs(p - rows[i].expected.int8.p_delay)).toBeLessThanOrEqual(flightGolden.tolerance.p_delay_abs));
  });

  it('movielens-topk /v1 predict returns the golden top-10 (>= 9 of 10, scores within tolerance)', async () => {
    for (const row of movieRows.slice(0, 12)) {
      const res = await call('POST', '/v1/models/movielens-topk/predict', { instances: [row.features] });
      expect(res.status).toBe(200);
      const [p] = res.json.predictions;
      expect(p.movie_ids.filter((id: number) => row.expected.int8.movie_ids.includes(id)).length).toBeGreaterThanOrEqual(
        movieGolden.tolerance.min_overlap_at_10,
      );
      p.scores.forEach((s: number, j: number) => expect(Math.abs(s - row.expected.int8.scores[j])).toBeLessThanOrEqual(movieGolden.tolerance.score_abs));
    }
  });

  it('movielens-topk: k cuts the list, and requests with different k batched together each get their own k', async () => {
    const row = movieRows[3];
    const [a, b] = await Promise.all([
      call('POST', '/v1/models/movielens-topk/predict', { instances: [{ ...row.features, k: 3 }] }),
      call('POST', '/v1/models/movielens-topk/predict', { instances: [{ ...row.features, k: 10 }] }),
    ]);
    expect(a.json.predictions[0].movie_ids).toHaveLength(3);
    expect(b.json.predictions[0].movie_ids).toHaveLength(10);
    expect(a.json.predictions[0].movie_ids).toEqual(b.json.predictions[0].movie_ids.slice(0, 3));
  });
});

describe('validation: every bad input is a 4xx JSON error naming the field', () => {
  const { call } = newApp();
  const good = flightRows[0].features;
  const cases: [string, string, unknown, number, string][] = [
    ['unknown model', '/v1/models/nope/predict', { instances: [good] }, 404, 'name'],
    ['not JSON', '/v1/models/flight-delay/predict', '{"instances": [', 400, 'body'],
    ['no instances', '/v1/models/flight-delay/predict', {}, 400, 'instances'],
    ['extra top-level field', '/v1/models/flight-delay/predict', { instances: [good], foo: 1 }, 400, 'foo'],
    ['missing feature', '/v1/models/flight-delay/predict', { instances: [{ ...good, hour: undefined }] }, 400, 'instances[0].hour'],
    ['extra feature', '/v1/models/flight-delay/predict', { instances: [{ ...good, wind: 3 }] }, 400, 'instances[0].wind'],
    ['string for a number', '/v1/models/flight-delay/predict', { instances: [{ ...good, distance: '700' }] }, 400, 'instances[0].distance'],
    ['out of range', '/v1/models/flight-delay/predict', { instances: [good, { ...good, day_of_week: 7 }] }, 400, 'instances[1].day_of_week'],
    ['not an integer', '/v1/models/flight-delay/predict', { instances: [{ ...good, hour: 7.5 }] }, 400, 'instances[0].hour'],
    ['too many instances', '/v1/models/flight-delay/predict', { instances: Array(1000).fill(good) }, 413, 'instances'],
    ['history not a list', '/v1/models/movielens-topk/predict', { instances: [{ history: 5 }] }, 400, 'instances[0].history'],
    ['k out of range', '/v1/models/movielens-topk/predict', { instances: [{ history: [1], k: 0 }] }, 400, 'instances[0].k'],
    ['v2 missing tensor', '/v2/models/flight-delay/infer', { inputs: [] }, 400, 'inputs'],
    ['v2 wrong datatype', '/v2/models/flight-delay/infer', { inputs: [{ name: 'month', datatype: 'FP32', shape: [1], data: [1] }] }, 400, 'inputs[0].datatype'],
    [
      'v2 wrong element count',
      '/v2/models/flight-delay/infer',
      { inputs: [{ name: 'month', datatype: 'INT64', shape: [2], data: [1] }] },
      400,
      'inputs[0].data',
    ],
    [
      'v2 index out of vocabulary range',
      '/v2/models/flight-delay/infer',
      { inputs: [{ name: 'origin', datatype: 'INT64', shape: [1], data: [100000] }] },
      400,
      'inputs[0].data',
    ],
    ['v2 unknown input', '/v2/models/flight-delay/infer', { inputs: [{ name: 'wind', datatype: 'FP32', shape: [1], data: [1] }] }, 400, 'inputs[0].name'],
  ];
  for (const [what, path, body, status, field] of cases) {
    it(what, async () => {
      const res = await call('POST', path, body);
      expect(res.status).toBe(status);
      const err = errorOf(path, res.json);
      expect(err.field).toBe(field);
      expect(err.message.length).toBeGreaterThan(5);
    });
  }

  it('a body over 256 KiB is refused with 413', async () => {
    const res = await call('POST', '/v1/models/flight-delay/predict', JSON.stringify({ instances: [good], pad: 'x'.repeat(300_000) }));
    expect(res.status).toBe(413);
  });

  it('a bad latency budget header is a 400 naming the header', async () => {
    const res = await call('POST', '/v1/models/flight-delay/predict', { instances: [good] }, { 'x-latency-budget-ms': 'soon' });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe('x-latency-budget-ms');
  });

  it('generated bad bodies never cause a 5xx (property)', async () => {
    const value = fc.oneof(
      fc.integer(),
      fc.double(),
      fc.string({ maxLength: 8 }),
      fc.constant(null),
      fc.boolean(),
      fc.array(fc.integer(), { maxLength: 4 }),
      fc.constantFrom(1e308, -1, 0, 'ORD', 'LAX'),
    );
    const instance = fc.dictionary(fc.constantFrom('month', 'day_of_week', 'hour', 'distance', 'origin', 'destination', 'history', 'k', 'x'), value);
    const body = fc.oneof(
      fc.record({ instances: fc.array(instance, { maxLength: 4 }) }),
      fc.record({
        inputs: fc.array(
          fc.record({
            name: fc.constantFrom('month', 'origin', 'distance', 'history', 'k'),
            datatype: fc.constantFrom('INT64', 'FP32', 'BYTES'),
            shape: fc.array(fc.integer({ min: -1, max: 3 }), { maxLength: 3 }),
            data: fc.array(value, { maxLength: 6 }),
          }),
          { maxLength: 7 },
        ),
      }),
      fc.jsonValue(),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          '/v1/models/flight-delay/predict',
          '/v1/models/movielens-topk/predict',
          '/v2/models/flight-delay/infer',
          '/v2/models/movielens-topk/infer',
        ),
        body,
        async (path, b) => {
          const res = await call('POST', path, b);
          if (res.status >= 500) throw new Error(`${path} ${JSON.stringify(b)} -> ${res.status} ${JSON.stringify(res.json)}`);
          if (res.status !== 200) expect(typeof errorOf(path, res.json).code).toBe('string');
        },
      ),
      { seed: 99, numRuns: 300 },
    );
  });
});

describe('batching, deadlines and the cache', () => {
  // The adaptive batcher waits only when waiting pays (interval·n < fixed cost); here each
  // request's handling (~0.5 ms) outlasts a run (~0.3 ms), so it rightly runs them as they come.
  // The fixed window forces batches, which is what checks that batching is exact.
  for (const mode of ['fixed', 'adaptive'] as const) {
    it(`concurrent requests (${mode}) get exactly the unbatched answers, in order`, async () => {
      const { call } = newApp({ CACHE_MAX_BYTES: '0', BATCH_MODE: mode, BATCH_MAX_WAIT_MS: '5', OPERATOR_TOKEN: 'op' });
      const rows = flightRows.slice(0, 40);
      const alone: number[] = [];
      // Budgets run from receipt: 40 requests parsed side by side on a loaded test machine may
      // take longer than the default 50 ms, and this test is about exact batching, not budgets.
      const budget = { 'x-latency-budget-ms': '10000' };
      for (const r of rows) {
        const res = await call('POST', '/v1/models/flight-delay/predict', { instances: [r.features] }, budget);
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        alone.push(res.json.predictions[0].p_delay);
      }
      const together = await Promise.all(rows.map((r) => call('POST', '/v1/models/flight-delay/predict', { instances: [r.features] }, budget)));
      together.forEach((res, i) => expect(res.json.predictions[0].p_delay).toBeCloseTo(alone[i], 6));
      const stats = (await call('GET', '/v1/models/flight-delay/stats', undefined, OPERATOR)).json;
      expect(stats.batcher.items).toBe(80);
      if (mode === 'fixed') {
        const batchedItems = stats.batcher.batchSizes.reduce((a: number, c: number, n: number) => a + (n > 1 ? c * n : 0), 0);
        expect(batchedItems, JSON.stringify(stats.batcher)).toBeGreaterThan(20);
      }
    });
  }

  it('a lone request on an idle engine runs alone and at once (a batch of 1)', async () => {
    const { call } = newApp({ CACHE_MAX_BYTES: '0', OPERATOR_TOKEN: 'op' });
    await call('POST', '/v1/models/flight-delay/predict', { instances: [flightRows[0].features] });
    const stats = (await call('GET', '/v1/models/flight-delay/stats', undefined, OPERATOR)).json;
    expect(stats.batcher.batchSizes[1]).toBe(1);
  });

  it('a budget that cannot be met is refused early with 503, Retry-After and a JSON error', async () => {
    const { call } = newApp({ CACHE_MAX_BYTES: '0' });
    await call('POST', '/v1/models/flight-delay/predict', { instances: [flightRows[0].features] });
    const res = await call('POST', '/v1/models/flight-delay/predict', { instances: [flightRows[1].features] }, { 'x-latency-budget-ms': '0.0001' });
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('deadline');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('repeats are served from the cache, per instance, until they expire', async () => {
    const { call } = newApp({ CACHE_TTL_MS: '300' });
    const [a, b] = [flightRows[0].features, flightRows[1].features];
    const first = await call('POST', '/v1/models/flight-delay/predict', { instances: [a] });
    expect(first.json.served_by).toBe('edge');
    const again = await call('POST', '/v1/models/flight-delay/predict', { instances: [a] });
    expect(again.json.served_by).toBe('cache');
    expect(again.headers.get('x-served-by')).toBe('cache');
    // The same answer, under an id of its own (every answer is a prediction of its own).
    const strip = (ps: { prediction_id: string }[]) => ps.map(({ prediction_id, ...p }) => p);
    expect(strip(again.json.predictions)).toEqual(strip(first.json.predictions));
    expect(again.json.predictions[0].prediction_id).not.toBe(first.json.predictions[0].prediction_id);
    // Key order does not matter; a new instance in the request is computed.
    const reordered = Object.fromEntries(Object.entries(a).reverse());
    expect((await call('POST', '/v1/models/flight-delay/predict', { instances: [reordered] })).json.served_by).toBe('cache');
    const mixed = await call('POST', '/v1/models/flight-delay/predict', { instances: [b, a] });
    expect(mixed.json.served_by).toBe('edge');
    expect(strip(mixed.json.predictions)[1]).toEqual(strip(first.json.predictions)[0]);
    await new Promise((r) => setTimeout(r, 400)); // the clock is the point: CACHE_TTL_MS (300 ms) passes
    expect((await call('POST', '/v1/models/flight-delay/predict', { instances: [a] })).json.served_by).toBe('edge');
  });
});

describe('cross-origin pages', () => {
  it('may call the inference API (preflight and answer carry CORS headers), not the operator routes', async () => {
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
    const bindings = { ...(env as object), OPERATOR_TOKEN: 'op' };
    const origin = { origin: 'https://shop.example' };
    const pre = await app.request(
      '/v2/models/movielens-topk/infer',
      { method: 'OPTIONS', headers: { ...origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } },
      bindings,
    );
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/POST/);
    const res = await app.request(
      '/v1/models/flight-delay/predict',
      {
        method: 'POST',
        headers: { ...origin, 'content-type': 'application/json', 'x-latency-budget-ms': '10000' },
        body: JSON.stringify({ instances: [{ month: 4, day_of_week: 5, hour: 18, distance: 1846, origin: 'ORD', destination: 'LAX' }] }),
      },
      bindings,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toMatch(/x-served-by/);
    const op = await app.request('/v1/models/flight-delay/alerts', { headers: { ...origin, authorization: 'Bearer op' } }, bindings);
    expect(op.headers.get('access-control-allow-origin')).toBeNull();
  });
});
