// Resilience promises of the README that only run with a real execution context (waitUntil) or
// a second answerer: hedging to the fallback, the cold engine's first request going to the
// fallback, and the edge's own telemetry flush failing, retrying with the same sequences, and
// staying bounded while the aggregator is unreachable. Requests go through `app.fetch(req, env,
// ctx)` with a ctx from `createExecutionContext()`, so `waitUntil` work is awaited as workerd
// runs it; the aggregator is the real Durable Object (SQLite storage) behind a binding that can
// be made to fail.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeSummary } from '../core/index.ts';
import flightGolden from '../models/flight-delay/golden.json';
import type { DriftAggregator } from './aggregator.ts';
import { createApp, type Env } from './app.ts';
import type { SessionFactory } from './engine/model-engine.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../models/defaults.ts';

type Json = Record<string, any>;
const rows = flightGolden.rows as { features: Json }[];
const realAggregators = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;
const FALLBACK_URL = 'http://fallback.invalid';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sessions whose runs can be slowed on demand (the edge engine "slow" relative to its own past latency). */
function slowableSessions() {
  const control = { delayMs: 0, runs: 0 };
  const createSession: SessionFactory = async (bytes) => {
    const s = await createWasmSession(bytes);
    return {
      inputNames: s.inputNames,
      outputNames: s.outputNames,
      async run(feeds) {
        control.runs++;
        if (control.delayMs > 0) await sleep(control.delayMs);
        return s.run(feeds);
      },
    };
  };
  return { control, createSession };
}

/**
 * A stand-in for the hosted fallback, installed as the global fetch (the fallback client takes the
 * global when the app builds its runtime): it answers flight-delay v2 requests with p_delay 0.125
 * for every row after `delayMs`, and records each call with its headers.
 */
function fakeFallback() {
  const control = { delayMs: 5, calls: [] as { url: string; budget: string | null }[] };
  const real = globalThis.fetch;
  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    if (!req.url.startsWith(FALLBACK_URL)) return real(input, init);
    control.calls.push({ url: req.url, budget: req.headers.get('x-latency-budget-ms') });
    const body = (await req.json()) as { inputs: { name: string; shape: number[] }[] };
    const n = body.inputs[0].shape[0];
    await sleep(control.delayMs);
    return Response.json({ model_name: 'flight-delay', outputs: [{ name: 'p_delay', datatype: 'FP32', shape: [n], data: Array(n).fill(0.125) }] });
  });
  return control;
}

/** POST one request through app.fetch with a real execution context, and wait for its waitUntil work. */
async function call(app: ReturnType<typeof createApp>, bindings: Env, path: string, body: unknown, headers: Record<string, string> = {}) {
  const ctx = createExecutionContext();
  const t = performance.now();
  const res = await app.fetch(
    new Request(`http://edge.test${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }),
    bindings,
    ctx,
  );
  const json = (await res.json()) as Json;
  const ms = performance.now() - t;
  await waitOnExecutionContext(ctx);
  return { status: res.status, json, ms };
}

const predict = (i: number) => ({ instances: [rows[i % rows.length].features] });

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe('hedging (HEDGE_QUANTILE)', () => {
  const bindings = (hedge: boolean): Env => ({
    FALLBACK_URL,
    ...(hedge ? { HEDGE_QUANTILE: '0.9' } : {}),
    CACHE_MAX_BYTES: '0',
    BATCH_MODE: 'off',
    TELEMETRY: 'off',
  });

  /** An app whose flight-delay engine is loaded and has 60 edge latencies behind it (hedging needs 50). */
  async function warmed(hedge: boolean) {
    const fallback = fakeFallback();
    const { control, createSession } = slowableSessions();
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession });
    const b = bindings(hedge);
    // The first request of a cold engine goes to the fallback by design (see below); load first.
    await app.request('/v2/models/flight-delay/ready', {}, b);
    for (let i = 0; i < 60; i++) {
      const r = await call(app, b, '/v1/models/flight-delay/predict', predict(i), { 'x-latency-budget-ms': '5000' });
      expect(r.json.served_by).toBe('edge');
    }
    fallback.calls.length = 0;
    return { app, b, edge: control, fallback };
  }

  it('on: a request the edge has not answered by its latency quantile also goes to the fallback, which answers first', async () => {
    const { app, b, edge, fallback } = await warmed(true);
    edge.delayMs = 400;
    fallback.delayMs = 10;
    const r = await call(app, b, '/v1/models/flight-delay/predict', predict(0), { 'x-latency-budget-ms': '5000' });
    expect(r.status).toBe(200);
    expect(r.json.served_by).toBe('fallback');
    expect(r.json.predictions).toEqual([{ p_delay: 0.125, prediction_id: expect.any(String) }]);
    expect(r.ms).toBeLessThan(300);
    expect(fallback.calls).toHaveLength(1);
    // The budget left travels on, less what the hedge delay and the edge already used.
    expect(Number(fallback.calls[0].budget)).toBeLessThanOrEqual(5000);
    expect(Number(fallback.calls[0].budget)).toBeGreaterThan(4000);
  });

  it('on: when the edge answers before the hedged fallback call, the edge wins', async () => {
    const { app, b, edge, fallback } = await warmed(true);
    edge.delayMs = 100;
    fallback.delayMs = 1500;
    const r = await call(app, b, '/v1/models/flight-delay/predict', predict(1), { 'x-latency-budget-ms': '5000' });
    expect(r.status).toBe(200);
    expect(r.json.served_by).toBe('edge');
    expect(r.ms).toBeLessThan(1000);
    // The hedge did fire (the edge was past its quantile), and lost.
    expect(fallback.calls).toHaveLength(1);
  });

  it('off: the same slow edge is waited for and the fallback is never asked', async () => {
    const { app, b, edge, fallback } = await warmed(false);
    edge.delayMs = 400;
    fallback.delayMs = 10;
    const r = await call(app, b, '/v1/models/flight-delay/predict', predict(0), { 'x-latency-budget-ms': '5000' });
    expect(r.status).toBe(200);
    expect(r.json.served_by).toBe('edge');
    expect(r.ms).toBeGreaterThanOrEqual(390);
    expect(fallback.calls).toHaveLength(0);
  });
});

describe('cold engine with a fallback', () => {
  it('the first request goes to the fallback; the engine loads in waitUntil and serves the next ones', async () => {
    const fallback = fakeFallback();
    const { createSession } = slowableSessions();
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession });
    const b: Env = { FALLBACK_URL, CACHE_MAX_BYTES: '0', TELEMETRY: 'off' };
    const first = await call(app, b, '/v1/models/flight-delay/predict', predict(0), { 'x-latency-budget-ms': '2000' });
    expect(first.status).toBe(200);
    expect(first.json.served_by).toBe('fallback');
    expect(fallback.calls).toHaveLength(1);
    expect(first.json.predictions).toEqual([{ p_delay: 0.125, prediction_id: expect.any(String) }]);
    // waitOnExecutionContext has awaited the load started in waitUntil: the engine is ready.
    const stats = (await (
      await app.request('/v1/models/flight-delay/stats', { headers: { authorization: 'Bearer op' } }, { ...b, OPERATOR_TOKEN: 'op' })
    ).json()) as Json;
    expect(stats.engine.state).toBe('ready');
    for (let i = 1; i <= 5; i++) {
      const r = await call(app, b, '/v1/models/flight-delay/predict', predict(i), { 'x-latency-budget-ms': '2000' });
      expect(r.json.served_by).toBe('edge');
    }
    expect(fallback.calls).toHaveLength(1);
  });
});

/**
 * An AGGREGATOR binding over the real namespace whose `ingestMany` fails as told: 'before' throws
 * without delivering (unreachable), 'after' delivers and then throws (the answer lost), 'ok'
 * delivers. Objects are named `<model>|<tag>` so that each test has its own real aggregator.
 */
function flakyAggregators(tag: string, plan: (call: number) => 'before' | 'after' | 'ok') {
  const calls: { model: string; sequences: number[]; sources: string[]; outcome: string }[] = [];
  const ns = {
    idFromName: (name: string) => realAggregators.idFromName(`${name}|${tag}`),
    get: (id: DurableObjectId) => {
      const real = realAggregators.get(id);
      return {
        async ingestMany(model: string, batch: Uint8Array[]) {
          const outcome = plan(calls.length);
          const decoded = batch.map((b) => decodeSummary(b));
          calls.push({ model, sequences: decoded.map((p) => p.sequence), sources: decoded.map((p) => p.source.id), outcome });
          if (outcome === 'before') throw new Error('aggregator unreachable (injected)');
          const results = await real.ingestMany(model, batch);
          if (outcome === 'after') throw new Error('connection reset after delivery (injected)');
          return results;
        },
      };
    },
  };
  const real = (model: string) => realAggregators.get(realAggregators.idFromName(`${model}|${tag}`));
  return { ns: ns as unknown as Env['AGGREGATOR'], calls, real };
}

describe('edge telemetry flush: failure, retry, bounded outbox', () => {
  // One row per window, so every request closes a window and triggers a flush.
  const bindings = (agg: Env['AGGREGATOR']): Env => ({
    AGGREGATOR: agg,
    CACHE_MAX_BYTES: '0',
    TELEMETRY_MAX_ROWS: '1',
    TELEMETRY_WINDOW_MS: '3600000',
    OPERATOR_TOKEN: 'op',
  });
  const telemetryStats = async (app: ReturnType<typeof createApp>, b: Env) =>
    ((await (await app.request('/v1/models/flight-delay/stats', { headers: { authorization: 'Bearer op' } }, b)).json()) as Json).telemetry as {
      outbox: number;
      mergedDown: number;
      riskyMerges: number;
      rows: number;
    };

  it('a failed flush is retried with the same sequences at the next flush; each summary is stored exactly once', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    // Calls 0 and 1: unreachable; call 2: delivered but the answer lost; then healthy.
    const flaky = flakyAggregators('retry', (n) => (n < 2 ? 'before' : n === 2 ? 'after' : 'ok'));
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
    const b = bindings(flaky.ns);
    const n = 6;
    for (let i = 0; i < n; i++) expect((await call(app, b, '/v1/models/flight-delay/predict', predict(i), { 'x-latency-budget-ms': '5000' })).status).toBe(200);

    const seqs = flaky.calls.map((c) => c.sequences);
    expect(flaky.calls.map((c) => c.outcome)).toEqual(['before', 'before', 'after', 'ok', 'ok', 'ok']);
    // Every failed call's summaries go again, with the same sequences, in the next call.
    expect(seqs[0]).toHaveLength(1);
    for (let k = 0; k < 3; k++) expect(seqs[k + 1]).toEqual(expect.arrayContaining(seqs[k]));
    expect(new Set(flaky.calls.flatMap((c) => c.sources)).size).toBe(1);
    // After a success, nothing acknowledged is sent again.
    expect(seqs[4].some((s) => seqs[3].includes(s))).toBe(false);

    const counters = await flaky.real('flight-delay').counters();
    expect(counters.stored).toBe(n);
    expect(counters.rows).toBe(n);
    // The summaries delivered by call 2 (answer lost) came again in call 3 and were recognised.
    expect(counters.duplicates).toBe(seqs[2].length);
    expect((await telemetryStats(app, b)).outbox).toBe(0);
    expect(logged.mock.calls.filter((c) => /flush failed, will retry/.test(String(c[0])))).toHaveLength(3);
  });

  it('while the aggregator is unreachable the outbox stays bounded by merging (counted); once it is back, every row is stored exactly once', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let down = true;
    const flaky = flakyAggregators('outage', () => (down ? 'before' : 'ok'));
    const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
    const b = bindings(flaky.ns);
    const served = 150;
    let maxOutbox = 0;
    for (let i = 0; i < served; i++) {
      expect((await call(app, b, '/v1/models/flight-delay/predict', predict(i), { 'x-latency-budget-ms': '5000' })).status).toBe(200);
      maxOutbox = Math.max(maxOutbox, (await telemetryStats(app, b)).outbox);
    }
    const during = await telemetryStats(app, b);
    expect(during.rows).toBe(served);
    // core/profiler.ts: the outbox holds 32 summaries; past twice that, in-flight ones merge too.
    expect(maxOutbox).toBeLessThanOrEqual(64);
    expect(during.mergedDown).toBeGreaterThan(0);
    expect(during.mergedDown).toBe(served - during.outbox);
    expect(flaky.calls.length).toBeGreaterThan(0);
    expect((await flaky.real('flight-delay').counters()).stored ?? 0).toBe(0);

    down = false;
    expect((await call(app, b, '/v1/models/flight-delay/predict', predict(0), { 'x-latency-budget-ms': '5000' })).status).toBe(200);
    const after = await telemetryStats(app, b);
    expect(after.outbox, JSON.stringify({ during, after })).toBe(0);
    const counters = await flaky.real('flight-delay').counters();
    expect(counters.rows).toBe(served + 1);
    expect(counters.duplicates ?? 0).toBe(0);
    const all = decodeSummary((await flaky.real('flight-delay').window(0, 2 ** 52))!);
    expect(all.counters.rows).toBe(served + 1);
    // Each merge is on the record: the stored windows say how many were merged down.
    expect(all.counters.mergedWindows).toBe(after.mergedDown);
  });
});
