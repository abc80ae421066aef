// What an anonymous client can send to the edge API, through the real app in workerd (real
// Durable Objects behind AGGREGATOR and ROUTING): every refusal is a 4xx JSON error in the
// route's protocol, never a 500, and nothing it names is looked up through a prototype.
import { env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import flightGolden from '../models/flight-delay/golden.json';
import { createAdmission, createApp, type Env } from './app.ts';
import { bearerToken, tokenEquals } from './auth.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../models/defaults.ts';
import { errorOf, jsonClient, type Json } from '../test/support/app-client.ts';
import { isolatedNamespace } from '../test/support/namespaces.ts';
import { waitFor } from '../test/support/wait.ts';

const TOKEN = 'hardening-operator';
const OP = { authorization: `Bearer ${TOKEN}` };
const good = (flightGolden.rows as { features: Json }[])[0].features;
const v2Rows = (flightGolden.rows as { inputs: Json }[]).slice(0, 2);
const v2Body = {
  inputs: [
    ...['month', 'day_of_week', 'hour', 'origin', 'destination'].map((name) => ({
      name,
      datatype: 'INT64',
      shape: [2],
      data: v2Rows.map((r) => r.inputs[name]),
    })),
    { name: 'distance', datatype: 'FP32', shape: [2], data: v2Rows.map((r) => r.inputs.distance) },
  ],
};

/** An app with routing tables and aggregators of its own (the workers pool shares storage across a file's tests). */
function newApp(vars: Partial<Env> = {}) {
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const e = env as Env;
  const tag = crypto.randomUUID();
  const objects = { ROUTING: isolatedNamespace(e.ROUTING!, tag), AGGREGATOR: isolatedNamespace(e.AGGREGATOR!, tag) };
  const bindings = { ...e, ...objects, OPERATOR_TOKEN: TOKEN, CACHE_MAX_BYTES: '0', ...vars };
  const call = jsonClient(app, bindings);
  return { app, call, bindings };
}

const HOSTILE = ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'valueOf'];

describe('names a client chooses are never prototype lookups', () => {
  const { call } = newApp();
  // Every route that takes a model name, version or reference from the client.
  const routes = (x: string): [string, string, unknown?][] => [
    ['GET', `/v2/models/${x}`],
    ['GET', `/v2/models/${x}/ready`],
    ['POST', `/v2/models/${x}/infer`, v2Body],
    ['GET', `/v2/models/flight-delay/versions/${x}`],
    ['GET', `/v2/models/flight-delay/versions/${x}/ready`],
    ['POST', `/v2/models/flight-delay/versions/${x}/infer`, v2Body],
    ['POST', `/v2/models/${x}/versions/1/infer`, v2Body],
    ['GET', `/v1/models/${x}`],
    ['POST', `/v1/models/${x}/predict`, { instances: [good] }],
    ['GET', `/v1/models/${x}/stats`],
    ['GET', `/v1/models/${x}/routing`],
    ['PUT', `/v1/models/${x}/routing`, { stable: '1' }],
    ['PUT', `/v1/models/flight-delay/routing`, { stable: x }],
    ['GET', `/v1/models/${x}/drift`],
    ['GET', `/v1/models/flight-delay/drift?reference=${x}`],
    ['GET', `/v1/models/${x}/versions`],
    ['POST', `/v1/models/${x}/baseline`, { from: 0, to: 60_000 }],
    ['GET', `/v1/models/${x}/alerts`],
    ['GET', `/v1/models/${x}/artifact`],
    ['GET', `/v1/models/${x}/artifact/${'0'.repeat(64)}`],
    ['GET', `/v1/models/${x}/telemetry-token`],
  ];
  for (const name of HOSTILE) {
    it(`"${name}" as a model, version or reference: 4xx JSON everywhere`, async () => {
      for (const [method, path, body] of routes(name)) {
        const res = await call(method, path, body, OP);
        expect(res.json, `${method} ${path} answered ${res.status} ${res.text.slice(0, 120)}`).toBeDefined();
        expect(res.status, `${method} ${path}: ${res.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${method} ${path}: ${res.text.slice(0, 200)}`).toBeLessThan(500);
        expect(typeof errorOf(path, res.json).code, `${method} ${path}: ${res.text.slice(0, 200)}`).toBe('string');
      }
    });
  }

  it('an unknown reference is a 400 naming it', async () => {
    for (const reference of [...HOSTILE, 'yesterday']) {
      const res = await call('GET', `/v1/models/flight-delay/drift?reference=${reference}`, undefined, OP);
      expect(res.status).toBe(400);
      expect(res.json?.error.field).toBe('reference');
    }
  });

  it('own-property checks in the request body: "constructor" or "toString" as features are unknown, not present', async () => {
    const { hour: _drop, ...noHour } = good;
    for (const extra of [{}, { constructor: 1 }, { toString: 'x' }, { ['__proto__']: { hour: 3 } }]) {
      const res = await call('POST', '/v1/models/flight-delay/predict', { instances: [{ ...noHour, ...extra }] });
      expect(res.status).toBe(400);
      expect(['instances[0].hour', 'instances[0].constructor', 'instances[0].toString', 'instances[0].__proto__']).toContain(res.json?.error.field);
    }
  });
});

describe('times out of range', () => {
  const { call } = newApp();
  const cases: [string, string, unknown?][] = [
    ['GET', '/v1/models/flight-delay/drift?to=99999999999999999999'],
    ['GET', '/v1/models/flight-delay/drift?from=-1&to=60000'],
    ['GET', `/v1/models/flight-delay/drift?from=0&to=${8.64e15 + 1}`],
    ['GET', '/v1/models/flight-delay/drift?from=0&to=86400000000&step=1e300'],
    ['GET', '/v1/models/flight-delay/versions?from=-1e300&to=1e300'],
    ['GET', '/v1/models/flight-delay/versions?to=1e999'],
    ['GET', '/v1/models/flight-delay/versions?from=5&to=4'],
    ['POST', '/v1/models/flight-delay/baseline', { from: 0, to: 1e20 }],
    ['POST', '/v1/models/flight-delay/baseline', { from: -5, to: 60_000 }],
    ['POST', '/v1/models/flight-delay/baseline', { from: '275760-09-14T00:00:00.000Z', to: '+275760-09-13T00:00:00.000Z' }],
    ['POST', '/v1/models/flight-delay/baseline', [0, 1]],
  ];
  for (const [method, path, body] of cases) {
    it(`${method} ${path} ${body === undefined ? '' : JSON.stringify(body)}: 400 JSON`, async () => {
      const res = await call(method, path, body, OP);
      expect(res.status, res.text).toBe(400);
      expect(typeof res.json?.error.field).toBe('string');
    });
  }

  it('the edges of the Date range are accepted (every instant has an ISO form)', async () => {
    const res = await call('GET', `/v1/models/flight-delay/versions?from=0&to=${8.64e15}`, undefined, OP);
    expect(res.status, res.text).toBe(200);
    expect(res.json?.to).toBe(new Date(8.64e15).toISOString());
  });

  it('any query time answers 200 or 400, never 5xx (property)', async () => {
    const t = fc.oneof(
      fc.integer({ min: -1e6, max: 1e6 }).map(String),
      fc.double().map(String),
      fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String),
      fc.constantFrom('', 'now', '2026-01-01', '+275760-09-13T00:00:00Z', '8640000000000000', '8640000000000001'),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('drift', 'versions'), t, t, async (route, from, to) => {
        const res = await call(
          'GET',
          `/v1/models/flight-delay/${route}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&step=${8.64e15}`,
          undefined,
          OP,
        );
        expect([200, 400], `${route} ${from} ${to}: ${res.text.slice(0, 200)}`).toContain(res.status);
      }),
      { seed: 11, numRuns: 60 },
    );
  });
});

describe('methods', () => {
  const { call, app, bindings } = newApp();
  const wrong: [string, string, string][] = [
    ['GET', '/v2/models/flight-delay/infer', 'POST'],
    ['DELETE', '/v2/models/flight-delay', 'GET, HEAD'],
    ['POST', '/v1/models/flight-delay/stats', 'GET, HEAD'],
    ['DELETE', '/v1/models/flight-delay/routing', 'GET, HEAD, PUT'],
    ['PUT', '/v1/models/flight-delay/predict', 'POST'],
    ['POST', '/healthz', 'GET, HEAD'],
    // Mounted from browser-routes.ts (/demo and /dashboard are static assets: test/node/pages.test.ts).
    ['PUT', '/v1/telemetry', 'GET, HEAD, POST'],
    ['POST', '/v1/models/flight-delay/artifact', 'GET, HEAD'],
    ['PATCH', '/v1/models/flight-delay/baseline', 'POST'],
    ['PROPFIND', '/v2/models/flight-delay/ready', 'GET, HEAD'],
  ];
  for (const [method, path, allow] of wrong) {
    it(`${method} ${path}: 405, Allow: ${allow}, JSON`, async () => {
      const res = await call(method, path);
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe(`${allow}, OPTIONS`);
      expect(errorOf(path, res.json).code).toBe('method_not_allowed');
    });
  }

  it('a path no route serves is still a 404 JSON; OPTIONS on a served path lists its methods', async () => {
    const nope = await call('POST', '/v2/nothing/here');
    expect(nope.status).toBe(404);
    expect(nope.json).toMatchObject({ error: expect.any(String), code: 'not_found' });
    const v1 = await call('DELETE', '/v1/nothing');
    expect(v1.json?.error.code).toBe('not_found');
    const options = await app.request('/v1/models/flight-delay/alerts', { method: 'OPTIONS' }, bindings);
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
  });

  it('HEAD is served wherever GET is', async () => {
    const res = await app.request('/healthz', { method: 'HEAD' }, bindings);
    expect(res.status).toBe(200);
  });
});

describe('strings and media types', () => {
  const { call } = newApp();

  it('a lone surrogate in a feature is a 400 naming it, and nothing of the row is sketched', async () => {
    const { call, app, bindings } = newApp({ TELEMETRY_MAX_ROWS: '1000000' });
    const stats = async () => (await (await app.request('/v1/models/flight-delay/stats', { headers: OP }, bindings)).json()) as Json;
    await call('POST', '/v1/models/flight-delay/predict', { instances: [good] });
    const before = (await stats()).telemetry;
    const bad = `{"instances": [${JSON.stringify({ ...good, origin: 'X' }).replace('"X"', '"\\ud800"')}]}`;
    const res = await call('POST', '/v1/models/flight-delay/predict', bad);
    expect(res.status).toBe(400);
    expect(res.json?.error).toMatchObject({ code: 'invalid_string', field: 'instances[0].origin' });
    expect((await stats()).telemetry).toEqual(before);
  });

  it('lone surrogates anywhere in the body (values, keys, v2 ids and names) are refused, naming the place', async () => {
    const cases: [string, string, string][] = [
      ['/v1/models/flight-delay/predict', `{"instances": [{"origin": "\\udc00"}]}`, 'instances[0].origin'],
      ['/v1/models/flight-delay/predict', `{"instances": [{"\\ud800": 1}]}`, 'instances[0]["\\ud800"]'],
      ['/v1/models/movielens-topk/predict', `{"instances": [{"history": [1, "\\ud83d"]}]}`, 'instances[0].history[1]'],
      ['/v2/models/flight-delay/infer', `{"id": "a\\ud800", "inputs": []}`, 'id'],
      ['/v2/models/flight-delay/infer', `{"inputs": [{"name": "\\udfff", "datatype": "INT64", "shape": [1], "data": [1]}]}`, 'inputs[0].name'],
    ];
    for (const [path, body, field] of cases) {
      const res = await call('POST', path, body);
      expect(res.status, `${path} ${body}`).toBe(400);
      expect(errorOf(path, res.json)).toMatchObject({ code: 'invalid_string', field });
    }
    // Well-formed pairs are fine (an unknown category of the vocabulary, served as "other").
    expect((await call('POST', '/v1/models/flight-delay/predict', { instances: [{ ...good, origin: '😀' }] })).status).toBe(200);
  });

  it('the content type must be application/json (parameters allowed), not any type that mentions json', async () => {
    const body = JSON.stringify({ instances: [good] });
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON;charset=UTF-8']) {
      expect((await call('POST', '/v1/models/flight-delay/predict', body, { 'content-type': type })).status, type).toBe(200);
    }
    for (const type of ['text/json-bad', 'application/jsonp', 'application/x-json', 'text/plain; note=json', 'multipart/form-data; boundary=json']) {
      const res = await call('POST', '/v1/models/flight-delay/predict', body, { 'content-type': type });
      expect(res.status, type).toBe(400);
      expect(res.json?.error).toMatchObject({ code: 'unsupported_media_type', field: 'content-type' });
    }
  });
});

describe('versions in the path', () => {
  it('each deployed version answers as itself, whatever the routing table makes stable; unknown ones are 404', async () => {
    const { call } = newApp();
    expect((await call('PUT', '/v1/models/flight-delay/routing', { stable: '1-float32', canary: { version: '1', share: 0.5 } }, OP)).status).toBe(200);
    try {
      for (const version of ['1', '1-float32']) {
        for (let i = 0; i < 6; i++) {
          const res = await call('POST', `/v2/models/flight-delay/versions/${version}/infer`, v2Body, {
            'x-user-key': `user-${i}`,
            'x-latency-budget-ms': '10000',
          });
          expect(res.status, res.text).toBe(200);
          expect(res.json?.model_version).toBe(version);
          expect(res.headers.get('x-model-version')).toBe(version);
        }
        const meta = await call('GET', `/v2/models/flight-delay/versions/${version}`);
        expect(meta.status).toBe(200);
        expect(meta.json?.versions).toEqual(['1', '1-float32']);
        const ready = await call('GET', `/v2/models/flight-delay/versions/${version}/ready`);
        expect(ready.status).toBe(200);
        expect(ready.json).toMatchObject({ name: 'flight-delay', version, ready: true });
      }
      const missing = await call('POST', '/v2/models/flight-delay/versions/2/infer', v2Body);
      expect(missing.status).toBe(404);
      expect(missing.json).toMatchObject({ code: 'version_not_found', field: 'version' });
    } finally {
      await call('PUT', '/v1/models/flight-delay/routing', { stable: '1' }, OP);
    }
  });

  it('the float32 and int8 builds answer differently, and each pinned request runs its own', async () => {
    const { call } = newApp();
    const a = await call('POST', '/v2/models/flight-delay/versions/1/infer', v2Body, { 'x-latency-budget-ms': '10000' });
    const b = await call('POST', '/v2/models/flight-delay/versions/1-float32/infer', v2Body, { 'x-latency-budget-ms': '10000' });
    expect(a.json?.outputs[0].data).not.toEqual(b.json?.outputs[0].data);
  });
});

describe('the Open Inference Protocol on errors and readiness', () => {
  it('/v2 errors are { error: "<message>" } with code and field beside; /v1 keeps its object', async () => {
    const { call } = newApp();
    const v2 = await call('POST', '/v2/models/flight-delay/infer', '{"inputs": [');
    expect(v2.status).toBe(400);
    expect(v2.json).toEqual({ error: 'the body is not valid JSON', code: 'invalid_json', field: 'body' });
    const big = await call('POST', '/v2/models/flight-delay/infer', JSON.stringify({ inputs: [], pad: 'x'.repeat(300_000) }));
    expect(big.status).toBe(413);
    expect(typeof big.json?.error).toBe('string');
    const v1 = await call('POST', '/v1/models/flight-delay/predict', '{"instances": [');
    expect(v1.json).toEqual({ error: { code: 'invalid_json', message: 'the body is not valid JSON', field: 'body' } });
  });

  it('a model or version that is not ready answers its ready route with 400, saying why; the server ready route too', async () => {
    const { call } = newApp({ FAIL_MODEL_LOAD: 'flight-delay@1-float32' });
    const version = await call('GET', '/v2/models/flight-delay/versions/1-float32/ready');
    expect(version.status).toBe(400);
    // Why it failed is for operators (/stats); the public answer names no internals.
    expect(version.json).toMatchObject({ ready: false, code: 'model_unavailable', error: expect.stringMatching(/failed to load/) });
    expect(version.text).not.toMatch(/FAIL_MODEL_LOAD/);
    expect((await call('GET', '/v2/models/flight-delay/versions/1/ready')).status).toBe(200);
    const broken = newApp({ FAIL_MODEL_LOAD: 'movielens-topk' });
    expect((await broken.call('GET', '/v2/models/movielens-topk/ready')).status).toBe(400);
    const server = await broken.call('GET', '/v2/health/ready');
    expect(server.status).toBe(400);
    expect(server.json?.ready).toBe(false);
    expect(server.text).not.toMatch(/FAIL_MODEL_LOAD/);
  });
});

describe('operator data', () => {
  it('stats need the operator token and are the only place the fallback URL appears', async () => {
    const { call } = newApp({ FALLBACK_URL: 'http://fallback.internal.example:9999' });
    const anon = await call('GET', '/v1/models/flight-delay/stats');
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Bearer');
    expect(anon.text).not.toMatch(/fallback\.internal/);
    const op = await call('GET', '/v1/models/flight-delay/stats', undefined, OP);
    expect(op.status).toBe(200);
    expect(op.json?.fallback.url).toBe('http://fallback.internal.example:9999');
  });

  it('a failing fallback is reported by reason, never by its URL or its answer', async () => {
    // Nothing listens there: the fallback is unreachable; the engine fails its load.
    const { call } = newApp({ FALLBACK_URL: 'http://127.0.0.1:9', FAIL_MODEL_LOAD: 'flight-delay', FALLBACK_RETRIES: '0' });
    for (let i = 0; i < 8; i++) {
      const res = await call('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-latency-budget-ms': '2000' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(res.text).not.toMatch(/127\.0\.0\.1|:9\b|http/);
    }
  });

  it('the scheme is any case of Bearer; the token must match exactly', async () => {
    const { call } = newApp();
    for (const h of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER  ${TOKEN}`, `bEaReR ${TOKEN} `])
      expect((await call('GET', '/v1/models/flight-delay/alerts', undefined, { authorization: h })).status, h).toBe(200);
    for (const h of [
      TOKEN,
      `Basic ${TOKEN}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      'Bearer',
      `Bearer${TOKEN}`,
      `Bearer ${TOKEN.toUpperCase()}`,
    ]) {
      const res = await call('GET', '/v1/models/flight-delay/alerts', undefined, { authorization: h });
      expect(res.status, h).toBe(401);
      expect(res.json?.error.code).toBe('unauthorized');
    }
    expect((await newApp({ OPERATOR_TOKEN: '' }).call('GET', '/v1/models/flight-delay/alerts', undefined, { authorization: 'Bearer ' })).status).toBe(404);
  });

  it('tokenEquals is string equality (property); bearerToken takes the credentials of any-case Bearer', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(tokenEquals(a, b)).toBe(a === b);
        expect(tokenEquals(a, a)).toBe(true);
      }),
      { seed: 5, numRuns: 500 },
    );
    expect(tokenEquals('abc', 'abc\0')).toBe(false);
    expect(tokenEquals('', '')).toBe(true);
    expect(bearerToken('BeArEr t0k')).toBe('t0k');
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('time budgets and Server-Timing', () => {
  it('inference answers say where their time went, from receipt', async () => {
    const { call } = newApp();
    // The isolate's first request waits for its start, outside its own clock, and says so.
    const first = await call(
      'POST',
      '/v1/models/flight-delay/predict',
      { instances: [(flightGolden.rows as { features: Json }[])[1].features] },
      { 'x-latency-budget-ms': '10000' },
    );
    expect(first.headers.get('server-timing')).toMatch(/, isolate;dur=\d+\.\d;desc="isolate start"$/);
    const res = await call('POST', '/v1/models/flight-delay/predict', { instances: [good] }, { 'x-latency-budget-ms': '10000' });
    expect(res.status).toBe(200);
    const timing = res.headers.get('server-timing')!;
    expect(timing).toMatch(/^edge;dur=\d+\.\d;desc="worker", engine;dur=\d+\.\d;desc="queue\+inference", total;dur=\d+\.\d$/);
    const dur = (name: string) => Number(new RegExp(`${name};dur=([\\d.]+)`).exec(timing)![1]);
    expect(dur('edge') + dur('engine')).toBeCloseTo(dur('total'), 0);
    const refused = await call('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-latency-budget-ms': '0.0001' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('server-timing')).toMatch(/total;dur=/);
  });

  it('after the first answer every stable engine is warmed in the background', async () => {
    const { call, app, bindings } = newApp();
    await call('GET', '/healthz');
    // Nothing asks for movielens-topk: its engine gets ready in the background, or not at all.
    const stats = async () => (await (await app.request('/v1/models/movielens-topk/stats', { headers: OP }, bindings)).json()) as Json;
    await waitFor(async () => (await stats()).engine.state === 'ready', { what: "movielens-topk's engine warmed in the background", timeoutMs: 5000 });
    expect((await stats()).engine.state).toBe('ready');
  });

  it('admission sheds when the work ahead exceeds the budget, never a lone caller, and recovers as the isolate drains', () => {
    let t = 0;
    const a = createAdmission({ minInflight: 4, minSamples: 4, now: () => t });
    // A lone caller, however slow, teaches nothing and is never refused.
    for (let i = 0; i < 10; i++) {
      expect(a.refuse(1)).toBeUndefined();
      a.start();
      t += 500;
      a.done();
    }
    expect(a.stats().samples).toBe(0);
    // 20 concurrent requests completing 10 ms apart: gap 10 ms.
    for (let i = 0; i < 20; i++) a.start();
    for (let i = 0; i < 10; i++) {
      t += 10;
      a.done();
    }
    expect(a.stats().gapMs).toBeCloseTo(10, 6);
    // 10 in flight x 10 ms = 100 ms ahead: a 50 ms budget is shed, a 200 ms one admitted.
    expect(a.refuse(50)).toBeCloseTo(100, 6);
    expect(a.refuse(200)).toBeUndefined();
    for (let i = 0; i < 7; i++) {
      t += 10;
      a.done();
    }
    // 3 in flight: under minInflight, nothing is shed.
    expect(a.refuse(1)).toBeUndefined();
  });
});

describe('red-team findings on the inference routes', () => {
  const { call } = newApp();
  const history = (n: number) => Array.from({ length: n }, (_, i) => (i % 100) + 1);
  const movies = (h: number[], extra: Json = {}) => ({
    inputs: [
      { name: 'history', datatype: 'INT64', shape: [1, h.length], data: h },
      { name: 'k', datatype: 'INT64', shape: [1], data: [10] },
    ],
    ...extra,
  });

  it('an id list on /v2 is at most its feature maxLength wide (a 100,000-wide history cost the engine ~0.4-0.9 s)', async () => {
    expect((await call('POST', '/v2/models/movielens-topk/infer', movies(history(50)))).status).toBe(200);
    const wide = await call('POST', '/v2/models/movielens-topk/infer', movies(history(51)));
    expect(wide.status).toBe(413);
    expect(wide.json).toMatchObject({ code: 'too_large', field: 'inputs[0].shape' });
  });

  it('outputs named twice, or more than the model has, are refused (10,000 copies made a 12 MB answer)', async () => {
    const twice = await call('POST', '/v2/models/movielens-topk/infer', movies(history(5), { outputs: [{ name: 'scores' }, { name: 'scores' }] }));
    expect(twice.status).toBe(400);
    expect(twice.json?.error).toMatch(/twice/);
    expect((await call('POST', '/v2/models/flight-delay/infer', { ...v2Body, outputs: [{ name: 'p_delay' }, { name: 'p_delay' }] })).status).toBe(400);
    const many = await call('POST', '/v2/models/flight-delay/infer', { ...v2Body, outputs: Array.from({ length: 10_000 }, () => ({ name: 'p_delay' })) });
    expect(many.status).toBe(400);
    expect((await call('POST', '/v2/models/flight-delay/infer', { ...v2Body, outputs: [{ name: 'p_delay' }] })).status).toBe(200);
  });

  it('"parameters" must be an object, and the budget header decimal milliseconds', async () => {
    expect((await call('POST', '/v2/models/flight-delay/infer', { ...v2Body, parameters: [1] })).json).toMatchObject({ field: 'parameters' });
    expect((await call('POST', '/v2/models/flight-delay/infer', { ...v2Body, parameters: {} })).status).toBe(200);
    for (const h of ['0x20', '1e3', '5ms', 'Infinity', '-1']) {
      const res = await call('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-latency-budget-ms': h });
      expect(res.status, h).toBe(400);
      expect(res.json?.field, h).toBe('x-latency-budget-ms');
    }
    expect((await call('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-latency-budget-ms': '2500.5' })).status).toBe(200);
  });

  it('with TELEMETRY_CLOCK=event, a refused request does not move the telemetry clock, nor can one from the future', async () => {
    const { call: replay, app, bindings } = newApp({ TELEMETRY_CLOCK: 'event', TELEMETRY_WINDOW_MS: '60000' });
    const past = Date.UTC(2025, 0, 1, 12, 0, 0);
    expect((await replay('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-event-time': String(past) })).status).toBe(200);
    // A bad body with a time an hour ahead, and a good one half an hour ahead: neither opens a window in the future.
    expect((await replay('POST', '/v2/models/flight-delay/infer', { nope: 1 }, { 'x-event-time': String(Date.now() + 3_600_000) })).status).toBe(400);
    expect((await replay('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-event-time': String(Date.now() + 1_800_000) })).status).toBe(400);
    expect((await replay('POST', '/v2/models/flight-delay/infer', v2Body, { 'x-event-time': String(past + 1000) })).status).toBe(200);
    const stats = (await (await app.request('/v1/models/flight-delay/stats', { headers: OP }, bindings)).json()) as Json;
    // Both served requests landed in one open window of their own time: the clock never left it.
    expect(stats.telemetry).toMatchObject({ open: 1, rows: 4 });
  });
});
