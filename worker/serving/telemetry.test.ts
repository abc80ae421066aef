// Edge telemetry end to end inside workerd: requests are sketched per model version and the
// windows reach the model's DriftAggregator (real Durable Object storage), each exactly once.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { decodeSummary, type CategoricalSketch, type TDigest } from '../../core/index.ts';
import flightGolden from '../../models/flight-delay/golden.json';
import { isolatedNamespace } from '../../test/support/namespaces.ts';
import type { DriftAggregator } from '../aggregator.ts';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';

const rows = flightGolden.rows as { features: Record<string, unknown>; inputs: Record<string, number> }[];

describe('edge telemetry', () => {
  it('sketches every served row (v1 and v2) and ships closed windows to the aggregator once', async () => {
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
    // Windows close by rows only here (an aligned time boundary mid-test would cut one short).
    // This test's own aggregator (storage is shared across a file's tests), and one execution
    // context for every request, to wait for the flushes they leave behind.
    const ns = isolatedNamespace((env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR, 'edge-telemetry');
    const bindings = { ...(env as Env), AGGREGATOR: ns, CACHE_MAX_BYTES: '0', TELEMETRY_MAX_ROWS: '10', TELEMETRY_WINDOW_MS: '3600000', OPERATOR_TOKEN: 'op' };
    const ctx = createExecutionContext();
    const post = (path: string, body: unknown) =>
      app.request(
        path,
        { method: 'POST', headers: { 'content-type': 'application/json', 'x-latency-budget-ms': '10000' }, body: JSON.stringify(body) },
        bindings,
        ctx,
      );
    for (let i = 0; i < 25; i++) expect((await post('/v1/models/flight-delay/predict', { instances: [rows[i].features] })).status).toBe(200);
    const r = rows[0].inputs;
    const inputs = ['month', 'day_of_week', 'hour', 'origin', 'destination'].map((name) => ({ name, datatype: 'INT64', shape: [1], data: [r[name]] }));
    inputs.push({ name: 'distance', datatype: 'FP32', shape: [1], data: [r.distance] });
    for (let i = 0; i < 5; i++) expect((await post('/v2/models/flight-delay/infer', { inputs })).status).toBe(200);
    await waitOnExecutionContext(ctx); // flushes run after the responses

    const agg = ns.get(ns.idFromName('flight-delay'));
    const counters = await agg.counters();
    expect(counters.stored).toBe(3); // 30 rows in windows of 10
    expect(counters.rows).toBe(30);
    expect(counters.duplicates ?? 0).toBe(0);
    const w = decodeSummary((await agg.window(0, 2 ** 52))!);
    expect(w.counters.rows).toBe(30);
    expect((w.features.get('hour') as TDigest).count).toBe(30);
    expect((w.outputs.get('p_delay') as TDigest).count).toBe(30);
    // The v2 rows were mapped back from indices to airport codes.
    expect((w.features.get('origin') as CategoricalSketch).estimate(String(rows[0].features.origin)).count).toBeGreaterThanOrEqual(6);
    expect(w.latency.count).toBe(30);

    // The operator's view: these April-June rows against the January-February baseline.
    expect((await app.request('/v1/models/flight-delay/drift', {}, bindings)).status).toBe(401);
    const res = await app.request('/v1/models/flight-delay/drift', { headers: { authorization: 'Bearer op' } }, bindings);
    expect(res.status).toBe(200);
    const drift = (await res.json()) as {
      windows: { rows: number; drifted: string[]; features: Record<string, { drift: Record<string, { statistic: number; drifted: boolean }> }> }[];
    };
    const last = drift.windows.at(-1)!;
    expect(last.rows).toBe(30);
    expect(last.drifted).toContain('month'); // never April-June in training
    expect(last.features.month.drift.out_of_range.drifted).toBe(true); // a calendar feature: judged by its training range
    expect(last.features.hour.drift.ks).toBeDefined();
    const bad = await app.request('/v1/models/flight-delay/drift?step=5', { headers: { authorization: 'Bearer op' } }, bindings);
    expect(bad.status).toBe(400);
  });
});
