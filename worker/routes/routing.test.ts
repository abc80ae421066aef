// Canary and shadow routing through the routes, in workerd, with the routing table stored in the
// real RoutingStore Durable Object (the Workers vitest pool provides the binding).
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import flightGolden from '../../models/flight-delay/golden.json';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';
import { jsonClient, type Json } from '../../test/support/app-client.ts';
import { isolatedNamespace } from '../../test/support/namespaces.ts';

const TOKEN = 'test-operator-token';

/**
 * An app with a routing table of its own (the workers pool shares storage across a file's tests,
 * and the table is stored per model name), whose requests share one execution context:
 * `settled()` waits for the work they left behind (shadows).
 */
function newApp(vars: Partial<Env> = {}) {
  const ROUTING = isolatedNamespace((env as Env).ROUTING!, crypto.randomUUID());
  const bindings = { ...(env as Env), ROUTING, OPERATOR_TOKEN: TOKEN, CACHE_MAX_BYTES: '0', ...vars };
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const ctx = createExecutionContext();
  const call = jsonClient({ request: (path: string, init: RequestInit, b: object) => app.request(path, init, b, ctx) }, bindings, { strict: true });
  const auth = { authorization: `Bearer ${TOKEN}` };
  return { call, auth, settled: () => waitOnExecutionContext(ctx) };
}

const rows = (flightGolden.rows as { features: Json }[]).map((r) => r.features);
// A generous budget: these tests are about who serves, and run beside the whole suite on 2 cores.
const predict = (call: ReturnType<typeof newApp>['call'], i: number, user?: string) =>
  call(
    'POST',
    '/v1/models/flight-delay/predict',
    { instances: [rows[i % rows.length]] },
    { 'x-latency-budget-ms': '10000', ...(user ? { 'x-user-key': user } : {}) },
  );

describe('routing tables', () => {
  it('operator routes need the bearer token; bad tables are refused with a clear error and store nothing', async () => {
    const { call, auth } = newApp();
    expect((await call('GET', '/v1/models/flight-delay/routing')).status).toBe(401);
    expect((await call('PUT', '/v1/models/flight-delay/routing', { stable: '1' }, { authorization: 'Bearer nope' })).status).toBe(401);
    const initial = await call('GET', '/v1/models/flight-delay/routing', undefined, auth);
    expect(initial.json.versions).toEqual(['1', '1-float32']);
    const bad = [
      [{ stable: '7' }, 422, 'stable'],
      [{ stable: '1', canary: { version: '1-float32', share: 1.5 } }, 400, 'canary.share'],
      [{ stable: '1', canary: { version: '1', share: 0.1 } }, 400, 'canary.version'],
      [{ stable: '1', extra: true }, 400, 'extra'],
    ] as const;
    for (const [table, status, field] of bad) {
      const res = await call('PUT', '/v1/models/flight-delay/routing', table, auth);
      expect(res.status).toBe(status);
      expect(res.json.error.field).toBe(field);
    }
    expect((await call('GET', '/v1/models/flight-delay/routing', undefined, auth)).json.default).toBe(true);
  });

  it('a canary share holds within statistical bounds over many users, each user sticks to one version, and every answer names its version', async () => {
    const { call, auth } = newApp();
    const put = await call('PUT', '/v1/models/flight-delay/routing', { stable: '1', canary: { version: '1-float32', share: 0.3 } }, auth);
    expect(put.status).toBe(200);
    const n = 400;
    const seen = new Map<string, string>();
    let canary = 0;
    for (let u = 0; u < n; u++) {
      const res = await predict(call, u, `user-${u}`);
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      expect(res.headers.get('x-model-version')).toBe(res.json.model_version);
      seen.set(`user-${u}`, res.json.model_version);
      if (res.json.model_version === '1-float32') canary++;
    }
    const se = Math.sqrt((0.3 * 0.7) / n);
    expect(Math.abs(canary / n - 0.3)).toBeLessThan(4 * se);
    for (let u = 0; u < 40; u++) expect((await predict(call, u + 7, `user-${u}`)).json.model_version).toBe(seen.get(`user-${u}`));
  });

  it('shadows never change the served answer; their agreement is recorded; a failing shadow harms nothing', async () => {
    const plain = newApp();
    await plain.call('PUT', '/v1/models/flight-delay/routing', { stable: '1' }, plain.auth);
    // The answers without their prediction ids (each answer has an id of its own).
    const answer = (j: Record<string, any>) => ({ ...j, predictions: (j.predictions as { prediction_id?: string }[]).map(({ prediction_id, ...p }) => p) });
    const expected = [];
    for (let i = 0; i < 20; i++) expected.push(answer((await predict(plain.call, i, `u${i}`)).json));

    const { call, auth, settled } = newApp({ FAIL_MODEL_LOAD: '' });
    await call('PUT', '/v1/models/flight-delay/routing', { stable: '1', shadows: [{ version: '1-float32', sampleRate: 1 }] }, auth);
    for (let i = 0; i < 20; i++) expect(answer((await predict(call, i, `u${i}`)).json)).toEqual(expected[i]);
    await settled(); // shadows run after the responses
    const stats = (await call('GET', '/v1/models/flight-delay/stats', undefined, auth)).json;
    expect(stats.shadows['1-float32'].runs).toBe(20);
    expect(stats.shadows['1-float32'].errors).toBe(0);
    expect(stats.shadows['1-float32'].same_class).toBeGreaterThanOrEqual(19);
    expect(stats.shadows['1-float32'].score_diff_p99).toBeLessThan(0.02);

    const broken = newApp({ FAIL_MODEL_LOAD: 'flight-delay@1-float32' });
    await broken.call('PUT', '/v1/models/flight-delay/routing', { stable: '1', shadows: [{ version: '1-float32', sampleRate: 1 }] }, broken.auth);
    for (let i = 0; i < 10; i++) expect(answer((await predict(broken.call, i, `u${i}`)).json)).toEqual(expected[i]);
    await broken.settled();
    const bstats = (await broken.call('GET', '/v1/models/flight-delay/stats', undefined, broken.auth)).json;
    expect(bstats.shadows['1-float32'].errors).toBe(10);
  });

  it('a table warms the versions it names in the background, so a canary takes no cold load on its first answers', async () => {
    const { call, auth, settled } = newApp();
    // One answer starts the isolate (the stable version is warmed after it); the float32 build is not.
    expect((await predict(call, 0)).status).toBe(200);
    await settled();
    const before = await call('GET', '/v1/models/flight-delay/stats', undefined, auth);
    expect(before.json.versions).toEqual({ '1': 'ready', '1-float32': 'unloaded' });
    const put = await call('PUT', '/v1/models/flight-delay/routing', { stable: '1', canary: { version: '1-float32', share: 0.1 } }, auth);
    expect(put.status).toBe(200);
    await settled();
    const after = await call('GET', '/v1/models/flight-delay/stats', undefined, auth);
    expect(after.json.versions).toEqual({ '1': 'ready', '1-float32': 'ready' });
  });
});
