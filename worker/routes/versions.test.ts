// Versions side by side: stable and canary traffic through the routes, telemetry into the real
// aggregator, and the operator's comparison with a verdict.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import flightGolden from '../../models/flight-delay/golden.json';
import { isolatedNamespace } from '../../test/support/namespaces.ts';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';

const rows = (flightGolden.rows as { features: Record<string, unknown> }[]).map((r) => r.features);

/**
 * A test's own app and bindings: its own routing table and aggregator for flight-delay (the
 * workers pool shares storage across a file's tests, and both objects are named by the model),
 * OPERATOR_TOKEN set whatever the developer's .dev.vars holds, and one execution context for every
 * prediction, so that `settled()` waits for exactly the work they left behind (flushes, shadows).
 */
function setup(tag: string) {
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const e = env as Env;
  const bindings: Env = {
    ...e,
    AGGREGATOR: isolatedNamespace(e.AGGREGATOR!, tag),
    ROUTING: isolatedNamespace(e.ROUTING!, tag),
    OPERATOR_TOKEN: 'op',
    CACHE_MAX_BYTES: '0',
    TELEMETRY_MAX_ROWS: '50',
  };
  const ctx = createExecutionContext();
  const predict = (init: RequestInit) => app.request('/v1/models/flight-delay/predict', init, bindings, ctx);
  const settled = () => waitOnExecutionContext(ctx);
  /**
   * Both versions loaded before the traffic (the ready route loads a version without serving
   * anything): the app warms only the stable one by itself, so otherwise the first request of
   * the other carries its cold load, and its p99 latency with it on a busy machine.
   */
  const warm = async () => {
    for (const v of ['1', '1-float32']) expect((await app.request(`/v2/models/flight-delay/versions/${v}/ready`, {}, bindings)).status).toBe(200);
  };
  return { app, bindings, predict, settled, warm };
}

describe('versions side by side', () => {
  it('shows stable and canary with their rates, latency and outputs, and judges the canary against stable', async () => {
    const { app, bindings, predict, settled, warm } = setup('versions-canary');
    await warm();
    const auth = { authorization: 'Bearer op', 'content-type': 'application/json' };
    const put = await app.request(
      '/v1/models/flight-delay/routing',
      { method: 'PUT', headers: auth, body: JSON.stringify({ stable: '1', canary: { version: '1-float32', share: 0.5 } }) },
      bindings,
    );
    expect(put.status).toBe(200);
    for (let i = 0; i < 600; i++) {
      const res = await predict({
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-key': `u${i}`, 'x-latency-budget-ms': '10000' },
        body: JSON.stringify({ instances: [rows[i % rows.length]] }),
      });
      expect(res.status).toBe(200);
    }
    await settled(); // the last flushes run after the responses
    const res = await app.request('/v1/models/flight-delay/versions', { headers: auth }, bindings);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      versions: Record<
        string,
        { role: string; rows: number; error_rate: number; verdict?: string; reasons?: string[]; outputs: Record<string, { p50: number }> }
      >;
    };
    const stable = body.versions['1'];
    const canary = body.versions['1-float32'];
    expect(stable.role).toBe('stable');
    expect(canary.role).toBe('canary');
    expect(stable.rows + canary.rows).toBeGreaterThanOrEqual(500); // all but the two windows still open (50 rows at most each)
    expect(canary.rows).toBeGreaterThan(200);
    expect(stable.error_rate).toBe(0);
    // The float32 build answers like the int8 one: no worse.
    expect(canary.verdict, JSON.stringify(canary.reasons)).toBe('no worse');
    expect(Math.abs(canary.outputs.p_delay.p50 - stable.outputs.p_delay.p50)).toBeLessThan(0.02);
    expect((await app.request('/v1/models/flight-delay/versions', {}, bindings)).status).toBe(401);
  });
});

describe('shadow versions in the summaries', () => {
  it('ship their own outputs and their agreement with the served answer to the aggregator, shown side by side', async () => {
    const { app, bindings, predict, settled, warm } = setup('versions-shadow');
    await warm();
    const auth = { authorization: 'Bearer op', 'content-type': 'application/json' };
    const from = Date.now() - 120_000; // buckets are whole minutes
    expect(
      (
        await app.request(
          '/v1/models/flight-delay/routing',
          { method: 'PUT', headers: auth, body: JSON.stringify({ stable: '1', shadows: [{ version: '1-float32', sampleRate: 1 }] }) },
          bindings,
        )
      ).status,
    ).toBe(200);
    for (let i = 0; i < 300; i++) {
      const res = await predict({
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-latency-budget-ms': '10000' },
        body: JSON.stringify({ instances: [rows[i % rows.length]] }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-model-version')).toBe('1'); // shadows never serve
    }
    await settled(); // shadows and flushes run after the responses
    const res = await app.request(`/v1/models/flight-delay/versions?from=${from}&to=${Date.now() + 60_000}`, { headers: auth }, bindings);
    const body = (await res.json()) as {
      versions: Record<string, { role: string; rows: number; shadow_rows?: number; shadow_agreement?: number; verdict?: string; reasons?: string[] }>;
    };
    const shadow = body.versions['1-float32'];
    expect(shadow, JSON.stringify(body)).toBeDefined();
    expect(shadow.role).toBe('shadow');
    expect(shadow.shadow_rows).toBeGreaterThanOrEqual(250); // all but the window still open
    // float32 and int8 put the same flights on the same side of 0.5 almost always.
    expect(shadow.shadow_agreement).toBeGreaterThan(0.95);
    expect(shadow.verdict, JSON.stringify(shadow.reasons)).toBe('no worse');
    expect(body.versions['1'].shadow_rows).toBeUndefined();
  });
});
