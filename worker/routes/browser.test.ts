// The browser runtime's worker routes inside workerd: artifact descriptor and bytes, telemetry
// tokens, and browser summaries verified, limited, merged in the isolate and forwarded to the
// model's DriftAggregator (real Durable Object storage) as one write; the records of predictions
// made on the device, and feedback on them sent with the page's telemetry token, attacked with
// hostile bodies (issue 15).
import { env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createWindowProfiler,
  decodeSummary,
  encodeSummary,
  newPredictionId,
  type CategoricalSketch,
  type ModelManifest,
  type TDigest,
} from '../../core/index.ts';
import movieGolden from '../../models/movielens-topk/golden.json';
import type { DriftAggregator } from '../aggregator.ts';
import { createApp, type Env } from '../app.ts';
import { PENDING_SLOTS, signToken } from '../serving/browser-telemetry.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
import { DEFAULT_VERSIONS, DEFAULTS } from '../../models/defaults.ts';
import { isolatedNamespace } from '../../test/support/namespaces.ts';

type Bindings = Env & Record<string, unknown>;
const aggregator = () => {
  const ns = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;
  return ns.get(ns.idFromName('movielens-topk'));
};

const OPERATOR = 'browser-routes-operator';
/** The address Cloudflare (and wrangler dev) reports as CF-Connecting-IP; telemetry is refused without one. */
const CLIENT = '198.51.100.1';

function setup(vars: Record<string, string> = {}) {
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  // Signed with the isolate's own random key whatever the developer's .dev.vars holds.
  const bindings: Bindings = { ...(env as Env), TELEMETRY_SIGNING_KEY: undefined, OPERATOR_TOKEN: OPERATOR, TELEMETRY_BROWSER_FLUSH_MS: '20', ...vars };
  const get = (path: string, headers: Record<string, string> = {}) => app.request(path, { headers: { 'cf-connecting-ip': CLIENT, ...headers } }, bindings);
  const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
    app.request(path, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'cf-connecting-ip': CLIENT, ...headers } }, bindings);
  /** This isolate's telemetry figures (operator only). */
  const stats = async () => (await get('/v1/telemetry', { authorization: `Bearer ${OPERATOR}` })).json() as Promise<TelemetryStats>;
  return { app, bindings, get, post, stats };
}

interface TelemetryStats {
  accepted: number;
  duplicates: number;
  rows: number;
  pending: number;
  forwarded: number;
  forwardedRows: number;
  dropped: number;
  unencodable: number;
  refused: Record<string, number>;
}

/** Waits until this app has forwarded what it accepted (so tests do not see each other's writes). */
async function forwarded(stats: () => Promise<TelemetryStats>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const s = await stats();
    if (s.pending === 0 && s.forwarded > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`browser summaries were not forwarded within ${ms} ms`);
}

interface Descriptor {
  manifest: ModelManifest;
  artifact: { url: string; sha256: string; bytes: number };
  golden: { tolerance: Record<string, number>; rows: { features: Record<string, unknown>; expected: Record<string, number[]> }[] };
  telemetry: { endpoint: string; token: string; source: string; expires_at: number };
}

/** A browser's summary: golden rows sketched the way browser/telemetry.ts does. */
function browserSummary(manifest: ModelManifest, source: string, rows = 8, sequence = 1): Uint8Array {
  const withBackend: ModelManifest = {
    ...manifest,
    features: [...manifest.features, { name: 'backend', kind: 'categorical', input: '', vocabulary: [], oov: 'unknown', sketchCapacity: 8 }],
  };
  const profiler = createWindowProfiler({ source: { kind: 'browser', id: source } });
  const golden = movieGolden.rows as { features: { history: number[] }; expected: { int8: { movie_ids: number[]; scores: number[] } } }[];
  for (let i = 0; i < rows; i++) {
    const g = golden[i % golden.length];
    profiler.observe(withBackend, manifest.version, [{ features: { history: g.features.history, backend: 'wasm' }, outputs: g.expected.int8 }], 2 + i, 'edge');
  }
  profiler.closeAll();
  const [s] = profiler.take();
  if (sequence === s.sequence) return s.bytes;
  const p = decodeSummary(s.bytes);
  p.sequence = sequence;
  return encodeSummary(p);
}

describe('GET /v1/models/{name}/artifact', () => {
  it('describes a version of the registry by ?version=; an unknown or hostile one is a 404 naming the version', async () => {
    const { get } = setup();
    const pinned = await get('/v1/models/flight-delay/artifact?version=1-float32');
    expect(pinned.status).toBe(200);
    const d = (await pinned.json()) as Descriptor & { version: string };
    expect([d.version, d.artifact.sha256]).toEqual(['1-float32', DEFAULTS['flight-delay'].manifest.artifacts.float32.sha256]);
    for (const v of ['9', '__proto__', 'constructor', '%00']) {
      const res = await get(`/v1/models/flight-delay/artifact?version=${v}`);
      expect(res.status, v).toBe(404);
      expect(((await res.json()) as { error: { code: string; field: string } }).error).toMatchObject({ code: 'version_not_found', field: 'version' });
    }
  });

  it('describes the served artifact, whose bytes match the manifest sha256, with golden rows and a token', async () => {
    const { get } = setup();
    const res = await get('/v1/models/movielens-topk/artifact');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const d = (await res.json()) as Descriptor;
    expect(d.manifest.name).toBe('movielens-topk');
    expect(d.artifact.sha256).toBe(DEFAULTS['movielens-topk'].manifest.artifacts.int8.sha256);
    expect(d.golden.rows.length).toBeGreaterThanOrEqual(8);
    expect(d.golden.rows[0].expected.movie_ids).toHaveLength(10);
    expect(d.telemetry.token.split('.')).toHaveLength(3);
    expect(d.telemetry.source).toMatch(/^[0-9a-f]{16}$/);
    expect(d.telemetry.expires_at).toBeGreaterThan(Date.now());

    const bytes = await get(d.artifact.url);
    expect(bytes.status).toBe(200);
    expect(bytes.headers.get('cache-control')).toContain('immutable');
    const body = new Uint8Array(await bytes.arrayBuffer());
    expect(body.byteLength).toBe(d.artifact.bytes);
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', body)), (b) => b.toString(16).padStart(2, '0')).join('');
    expect(digest).toBe(d.artifact.sha256);
  });

  it('issues source ids itself: a renewal showing the previous token keeps its source, a client never names one; unknown models and stale hashes are refused', async () => {
    const { get } = setup();
    // Issue 11: a client picked its own source id (?source=), so it could spend a victim's budget.
    const chosen = (await (await get('/v1/models/movielens-topk/artifact?source=0123456789abcdef')).json()) as Descriptor;
    expect(chosen.telemetry.source).toMatch(/^[0-9a-f]{16}$/);
    expect(chosen.telemetry.source).not.toBe('0123456789abcdef');
    expect(((await (await get('/v1/models/movielens-topk/telemetry-token?source=0123456789abcdef')).json()) as Descriptor['telemetry']).source).not.toBe(
      '0123456789abcdef',
    );
    const d = chosen;
    // Renewal: a fresh token for the same source, without the manifest, proven by the previous token (valid or expired < 24 h).
    const renewed = await get('/v1/models/movielens-topk/telemetry-token', { authorization: `Bearer ${d.telemetry.token}` });
    expect(renewed.headers.get('cache-control')).toBe('no-store');
    const grant = (await renewed.json()) as Descriptor['telemetry'];
    expect(grant).toMatchObject({ endpoint: '/v1/telemetry', source: d.telemetry.source });
    expect(grant.token).not.toBe(d.telemetry.token);
    const lapsed = await signToken({ m: 'movielens-topk', v: '1', s: 'feedfacefeedface', e: Date.now() - 3600_000 }, undefined);
    expect(
      ((await (await get('/v1/models/movielens-topk/telemetry-token', { authorization: `Bearer ${lapsed}` })).json()) as Descriptor['telemetry']).source,
    ).toBe('feedfacefeedface');
    const ancient = await signToken({ m: 'movielens-topk', v: '1', s: 'feedfacefeedface', e: Date.now() - 25 * 3600_000 }, undefined);
    const forged = await signToken({ m: 'movielens-topk', v: '1', s: 'feedfacefeedface', e: Date.now() + 60_000 }, 'not-this-isolates-key');
    const foreign = await signToken({ m: 'flight-delay', v: '1', s: 'feedfacefeedface', e: Date.now() + 60_000 }, undefined);
    for (const t of [ancient, forged, foreign, 'garbage']) {
      expect(
        ((await (await get('/v1/models/movielens-topk/telemetry-token', { authorization: `Bearer ${t}` })).json()) as Descriptor['telemetry']).source,
      ).not.toBe('feedfacefeedface');
    }
    const other = setup();
    const res = await other.post(`/v1/telemetry?token=${grant.token}`, browserSummary(d.manifest, d.telemetry.source));
    expect(res.status).toBe(202);
    await forwarded(other.stats);
    // Cross-origin apps: CORS on these routes, preflight included.
    expect(renewed.headers.get('access-control-allow-origin')).toBe('*');
    const preflight = await other.app.request(
      '/v1/telemetry',
      {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      },
      other.bindings,
    );
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    const missing = await get('/v1/models/nope/artifact');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    const stale = await get(`/v1/models/movielens-topk/artifact/${'0'.repeat(64)}`);
    expect(stale.status).toBe(404);
    expect(((await stale.json()) as { error: { code: string } }).error.code).toBe('artifact_not_found');
  });
});

describe('POST /v1/telemetry', () => {
  it('refuses a missing, tampered, expired or foreign token, and malformed or mis-scoped summaries, with 4xx JSON', async () => {
    const { get, post, stats } = setup();
    const d = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
    const good = browserSummary(d.manifest, d.telemetry.source);
    const code = async (res: Response) => [res.status, ((await res.json()) as { error: { code: string } }).error.code];

    expect(await code(await post('/v1/telemetry', good))).toEqual([401, 'missing_token']);
    const [h, claims, sig] = d.telemetry.token.split('.');
    const forged = `${h}.${btoa(JSON.stringify({ m: 'movielens-topk', v: '1', s: d.telemetry.source, e: Date.now() + 1e9 })).replace(/=+$/, '')}.${sig}`;
    expect(await code(await post(`/v1/telemetry?token=${forged}`, good))).toEqual([401, 'invalid_token']);
    expect(await code(await post(`/v1/telemetry?token=${h}.${claims}.${sig.slice(0, -2)}AA`, good))).toEqual([401, 'invalid_token']);
    expect(await code(await post('/v1/telemetry?token=garbage', good))).toEqual([401, 'invalid_token']);
    const expired = await signToken({ m: 'movielens-topk', v: '1', s: d.telemetry.source, e: Date.now() - 1 }, undefined);
    expect(await code(await post(`/v1/telemetry?token=${expired}`, good))).toEqual([401, 'token_expired']);
    // Signed with another key (a secret the test isolate does not use).
    const otherKey = await signToken({ m: 'movielens-topk', v: '1', s: d.telemetry.source, e: Date.now() + 60_000 }, 'another-secret');
    expect(await code(await post(`/v1/telemetry?token=${otherKey}`, good))).toEqual([401, 'invalid_token']);

    const t = `/v1/telemetry?token=${d.telemetry.token}`;
    expect(await code(await post(t, new Uint8Array([1, 2, 3])))).toEqual([400, 'invalid_summary']);
    const flipped = good.slice();
    flipped[40] ^= 0xff; // CRC catches it
    expect(await code(await post(t, flipped))).toEqual([400, 'invalid_summary']);
    expect(await code(await post(t, browserSummary(d.manifest, 'ffffffffffffffff')))).toEqual([403, 'token_scope']);
    const edge = decodeSummary(good);
    edge.source = { kind: 'edge', id: d.telemetry.source };
    expect(await code(await post(t, encodeSummary(edge)))).toEqual([403, 'token_scope']);
    const version = decodeSummary(good);
    version.modelVersion = '2';
    expect(await code(await post(t, encodeSummary(version)))).toEqual([422, 'unknown_version']);
    const extra = decodeSummary(good);
    extra.features.set('email', extra.features.get('backend')!);
    expect(await code(await post(t, encodeSummary(extra)))).toEqual([422, 'unexpected_sketch']);
    const old = decodeSummary(good);
    old.windowStart = old.windowEnd = Date.now() - 2 * 86_400_000;
    expect(await code(await post(t, encodeSummary(old)))).toEqual([422, 'window_out_of_range']);
    expect(await code(await post(t, new Uint8Array(64 * 1024 + 1)))).toEqual([413, 'body_too_large']);

    const figures = await stats();
    expect(figures.accepted).toBe(0);
    expect(figures.refused.invalid_token).toBe(4);
  });

  it('limits the rate per token with 429 and Retry-After', async () => {
    const { get, post, stats } = setup({ TELEMETRY_RATE_PER_MIN: '3' });
    const d = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
    const statuses = [];
    for (let i = 1; i <= 5; i++) {
      const res = await post(`/v1/telemetry?token=${d.telemetry.token}`, browserSummary(d.manifest, d.telemetry.source, 2, i));
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(statuses).toEqual([202, 202, 202, 429, 429]);
    // Another browser's token has its own budget.
    const other = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
    expect((await post(`/v1/telemetry?token=${other.telemetry.token}`, browserSummary(other.manifest, other.telemetry.source))).status).toBe(202);
    await forwarded(stats);
  });

  it('limits the rate per client address too, however many tokens it mints', async () => {
    const { get, post, stats } = setup({ TELEMETRY_RATE_PER_IP_PER_MIN: '4' });
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const d = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
      statuses.push(
        (await post(`/v1/telemetry?token=${d.telemetry.token}`, browserSummary(d.manifest, d.telemetry.source), { 'cf-connecting-ip': '203.0.113.7' })).status,
      );
    }
    expect(statuses).toEqual([202, 202, 202, 202, 429, 429]);
    const d = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
    expect(
      (await post(`/v1/telemetry?token=${d.telemetry.token}`, browserSummary(d.manifest, d.telemetry.source), { 'cf-connecting-ip': '203.0.113.8' })).status,
    ).toBe(202);
    await forwarded(stats);
  });

  it('merges at most PENDING_SLOTS windows at once; a summary for one more waits with 503 busy', async () => {
    const { get, post, stats } = setup({ TELEMETRY_RATE_PER_MIN: '100000', TELEMETRY_BROWSER_FLUSH_MS: '4000' });
    const d = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
    const base = decodeSummary(browserSummary(d.manifest, d.telemetry.source, 1));
    // One clock reading: minutes counted back from it stay distinct even if a minute turns meanwhile.
    const t0 = Date.now();
    const at = (minute: number, sequence: number) => {
      const p = decodeSummary(encodeSummary(base));
      p.windowStart = p.windowEnd = Math.floor(t0 / 60_000 - minute) * 60_000;
      p.sequence = sequence;
      return encodeSummary(p);
    };
    // Each window from a network of its own: one network may open only SLOTS_PER_GROUP between flushes.
    const ip = (i: number) => ({ 'cf-connecting-ip': `10.${(i >> 8) & 255}.${i & 255}.1` });
    for (let i = 0; i < PENDING_SLOTS; i++) expect((await post(`/v1/telemetry?token=${d.telemetry.token}`, at(i, i + 1), ip(i))).status).toBe(202);
    const busy = await post(`/v1/telemetry?token=${d.telemetry.token}`, at(PENDING_SLOTS, PENDING_SLOTS + 1), ip(PENDING_SLOTS));
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('5');
    // A window whose slot is already open still merges.
    expect((await post(`/v1/telemetry?token=${d.telemetry.token}`, at(3, PENDING_SLOTS + 2))).status).toBe(202);
    await forwarded(stats, 15_000);
    expect(await stats()).toMatchObject({ forwarded: PENDING_SLOTS, forwardedRows: PENDING_SLOTS + 1, refused: { busy: 1 } });
  });

  it('merges many browsers into one aggregator write per minute, counting a retried summary once', async () => {
    const { get, post, stats } = setup();
    const before = await aggregator().counters();
    const browsers = 6;
    let rows = 0;
    for (let b = 0; b < browsers; b++) {
      const d = (await (await get('/v1/models/movielens-topk/artifact')).json()) as Descriptor;
      const s = browserSummary(d.manifest, d.telemetry.source, 5 + b);
      rows += 5 + b;
      const res = await post('/v1/telemetry', s, { authorization: `Bearer ${d.telemetry.token}` });
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ status: 'accepted', rows: 5 + b });
      if (b === 0) {
        const again = await post('/v1/telemetry', s, { authorization: `Bearer ${d.telemetry.token}` });
        expect(await again.json()).toEqual({ status: 'duplicate', rows: 5 });
      }
    }
    // The flush runs TELEMETRY_BROWSER_FLUSH_MS after the first summary.
    const until = Date.now() + 5000;
    let after = await aggregator().counters();
    while ((after.rows ?? 0) - (before.rows ?? 0) < rows && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      after = await aggregator().counters();
    }
    expect((after.rows ?? 0) - (before.rows ?? 0)).toBe(rows);
    // One write (or two if the summaries straddled a minute boundary), not one per browser.
    const writes = (after.stored ?? 0) - (before.stored ?? 0);
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(2);
    expect(await stats()).toMatchObject({ accepted: browsers, duplicates: 1, forwarded: writes });

    const w = decodeSummary((await aggregator().window(Date.now() - 120_000, Date.now() + 60_000))!);
    expect((w.features.get('backend') as CategoricalSketch).estimate('wasm').count).toBeGreaterThanOrEqual(rows);
    expect((w.outputs.get('scores') as TDigest).count).toBeGreaterThanOrEqual(rows * 10);
  });
});

// --- On-device predictions and their feedback (issue 15) ------------------------------------------

/** An app with Durable Objects of its own (isolatedNamespace), so that what these tests store is all their aggregator holds. */
function isolated(vars: Record<string, string> = {}) {
  const tag = crypto.randomUUID();
  const base = env as Env;
  const s = setup({ ...vars });
  Object.assign(s.bindings, {
    AGGREGATOR: isolatedNamespace(base.AGGREGATOR!, tag),
    ROUTING: isolatedNamespace(base.ROUTING!, tag),
    FEEDBACK_TOKEN: 'feedback-secret',
  });
  const agg = (model = 'movielens-topk') => s.bindings.AGGREGATOR!.get(s.bindings.AGGREGATOR!.idFromName(model));
  const send = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    s.post(path, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json', ...headers });
  const descriptor = async (model = 'movielens-topk') => (await (await s.get(`/v1/models/${model}/artifact`)).json()) as Descriptor;
  return { ...s, agg, send, descriptor };
}

const errorOf = async (res: Response) => {
  const body = (await res.json()) as { error?: { code: string; field?: string } };
  return [res.status, body.error?.code, body.error?.field];
};

/** Lists a page shows, as the runtime records them: an id made now, the version, the served ids as strings and their count. */
function onDevice(n: number, at = Date.now()) {
  const golden = movieGolden.rows as { expected: { int8: { movie_ids: number[] } } }[];
  return Array.from({ length: n }, (_, i) => {
    const items = golden[i % golden.length].expected.int8.movie_ids.map(String);
    return { id: newPredictionId(at, crypto.getRandomValues(new Uint8Array(16))), version: '1', value: items.length, items };
  });
}

describe('POST /v1/telemetry/predictions and feedback with a telemetry token', () => {
  it("records a page's on-device predictions once, joins its clicks on them, and CTR@k is the exact one", async () => {
    const { send, get, descriptor, agg } = isolated();
    const d = await descriptor();
    const lists = onDevice(12);
    const path = `/v1/telemetry/predictions?token=${d.telemetry.token}`;
    const first = await send(path, { predictions: lists });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ stored: 12, duplicate: 0, rejected: 0 });
    // A retried flush (the answer was lost) stores nothing twice.
    expect(await (await send(path, { predictions: lists.slice(0, 5) })).json()).toEqual({ stored: 0, duplicate: 5, rejected: 0 });

    // Clicks with the page's token: lists 0-3 at positions 0..3, list 4 twice (best position counts), a conversion on list 5.
    const bearer = { authorization: `Bearer ${d.telemetry.token}` };
    const clicks = [
      ...[0, 1, 2, 3].map((i) => ({ prediction_id: lists[i].id, event: 'click', item: Number(lists[i].items[i]) })),
      { prediction_id: lists[4].id, event: 'click', item: lists[4].items[6] },
      { prediction_id: lists[4].id, event: 'click', item: lists[4].items[2] },
      { prediction_id: lists[5].id, event: 'convert', item: lists[5].items[0] },
    ];
    const fb = await send('/v1/models/movielens-topk/feedback', { feedback: clicks }, bearer);
    expect(fb.status).toBe(200);
    expect(fb.headers.get('access-control-allow-origin')).toBe('*');
    const answer = (await fb.json()) as { joined: number; results: { status: string; version?: string }[] };
    expect(answer.joined).toBe(7);
    expect(answer.results.every((r) => r.version === '1')).toBe(true);
    const again = (await (
      await send('/v1/models/movielens-topk/feedback', { feedback: [clicks[0], { ...clicks[0], prediction_id: onDevice(1)[0].id }] }, bearer)
    ).json()) as {
      results: { status: string }[];
    };
    expect(again.results.map((r) => r.status)).toEqual(['duplicate', 'unknown']);

    const perf = await get('/v1/models/movielens-topk/performance', { authorization: `Bearer ${OPERATOR}` });
    expect(perf.status).toBe(200);
    const total = ((await perf.json()) as { total: Record<string, { predicted: number; labelled: number; clicks: number; ctr_at: Record<string, number> }> })
      .total['1'];
    // Best click positions: 0, 1, 2, 3 and 2 (list 4): CTR@1 = 1/12, CTR@3 = 4/12, CTR@5 = 5/12; list 5 converted without a click.
    expect(total).toMatchObject({ predicted: 12, labelled: 6, clicks: 6 });
    expect(total.ctr_at['1']).toBeCloseTo(1 / 12, 12);
    expect(total.ctr_at['3']).toBeCloseTo(4 / 12, 12);
    expect(total.ctr_at['5']).toBeCloseTo(5 / 12, 12);
    expect((await agg().counters()).predictions_stored).toBe(12);
  });

  it('takes a telemetry token for its own model only, at most 100 items a call, and keeps FEEDBACK_TOKEN and operators as they were', async () => {
    const { send, descriptor, app, bindings } = isolated();
    const d = await descriptor();
    const lists = onDevice(2);
    expect((await send(`/v1/telemetry/predictions?token=${d.telemetry.token}`, { predictions: lists })).status).toBe(200);
    const click = (i: number) => ({ prediction_id: lists[i].id, event: 'click', item: lists[i].items[0] });
    const feedback = (items: unknown[], token: string) => send('/v1/models/movielens-topk/feedback', { feedback: items }, { authorization: `Bearer ${token}` });

    const flight = await descriptor('flight-delay');
    expect(await errorOf(await feedback([click(0)], flight.telemetry.token))).toEqual([403, 'token_scope', 'authorization']);
    const expired = await signToken({ m: 'movielens-topk', v: '1', s: d.telemetry.source, e: Date.now() - 1 }, undefined);
    expect(await errorOf(await feedback([click(0)], expired))).toEqual([401, 'token_expired', 'authorization']);
    const forged = await signToken({ m: 'movielens-topk', v: '1', s: d.telemetry.source, e: Date.now() + 60_000 }, 'not-this-isolates-key');
    expect(await errorOf(await feedback([click(0)], forged))).toEqual([401, 'invalid_token', 'authorization']);
    const [h, , sig] = d.telemetry.token.split('.');
    const swapped = `${h}.${btoa(JSON.stringify({ m: 'movielens-topk', v: '1', s: 'ffffffffffffffff', e: Date.now() + 1e9 })).replace(/=+$/, '')}.${sig}`;
    expect(await errorOf(await feedback([click(0)], swapped))).toEqual([401, 'invalid_token', 'authorization']);
    expect(await errorOf(await feedback([click(0)], 'not-a-token'))).toEqual([401, 'unauthorized', 'authorization']);
    // 101 items: over a browser's limit, within FEEDBACK_TOKEN's.
    const many = Array.from({ length: 101 }, () => click(0));
    expect(await errorOf(await feedback(many, d.telemetry.token))).toEqual([413, 'too_many_items', 'feedback']);
    expect((await feedback(many.slice(0, 100), d.telemetry.token)).status).toBe(200);
    const byFeedbackToken = (await (await feedback(many, 'feedback-secret')).json()) as { duplicate: number };
    expect(byFeedbackToken.duplicate).toBe(101);
    expect(((await (await feedback([click(1)], OPERATOR)).json()) as { joined: number }).joined).toBe(1);
    // The token names no other model's route, and is no operator token.
    expect((await send('/v1/models/flight-delay/feedback', { feedback: [] }, { authorization: `Bearer ${d.telemetry.token}` })).status).toBe(403);
    expect((await app.request('/v1/models/movielens-topk/performance', { headers: { authorization: `Bearer ${d.telemetry.token}` } }, bindings)).status).toBe(
      401,
    );
    // Cross-origin pages: the preflight allows the bearer header.
    const preflight = await app.request(
      '/v1/models/movielens-topk/feedback',
      {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      },
      bindings,
    );
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
  });

  it('spends the budgets summaries spend (calls per token and address) and records per source a minute', async () => {
    const { send, descriptor } = isolated({ TELEMETRY_RATE_PER_MIN: '3', TELEMETRY_SOURCE_ROWS_PER_MIN: '10' });
    const d = await descriptor();
    const path = `/v1/telemetry/predictions?token=${d.telemetry.token}`;
    // More than a minute's records in one call can never be allowed: refused, not delayed.
    expect(await errorOf(await send(path, { predictions: onDevice(11) }))).toEqual([413, 'too_many_predictions', 'predictions']);
    const lists = onDevice(8);
    expect((await send(path, { predictions: lists })).status).toBe(200);
    const over = await send(path, { predictions: onDevice(8) });
    expect(await errorOf(over)).toEqual([429, 'rate_limited', 'body']);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // The fourth call of this token this minute (feedback spends calls as summaries and records do).
    const fb = await send(
      '/v1/models/movielens-topk/feedback',
      { feedback: [{ prediction_id: lists[0].id, event: 'click', item: lists[0].items[0] }] },
      { authorization: `Bearer ${d.telemetry.token}` },
    );
    expect(await errorOf(fb)).toEqual([429, 'rate_limited', 'authorization']);
    // Another page has budgets of its own; a client whose address is unknown gets nothing.
    const other = await descriptor();
    expect((await send(`/v1/telemetry/predictions?token=${other.telemetry.token}`, { predictions: onDevice(2) })).status).toBe(200);
    expect(
      await errorOf(await send(`/v1/telemetry/predictions?token=${other.telemetry.token}`, { predictions: onDevice(1) }, { 'cf-connecting-ip': '' })),
    ).toEqual([403, 'address_unknown', undefined]);
  });

  it('refuses hostile bodies with 4xx naming the field, and stores nothing of them', async () => {
    const { send, post, descriptor, agg } = isolated({ TELEMETRY_RATE_PER_MIN: '100000', TELEMETRY_RATE_PER_IP_PER_MIN: '100000' });
    const d = await descriptor();
    const path = `/v1/telemetry/predictions?token=${d.telemetry.token}`;
    const [good] = onDevice(1);
    const rec = (change: Record<string, unknown>) => ({ predictions: [{ ...good, ...change }] });
    const DAY = 86_400_000;
    const cases: [string, unknown, number, string, string | undefined][] = [
      ['not JSON', '{"predictions": [', 400, 'invalid_json', 'body'],
      ['an array', '[]', 400, 'invalid_predictions', 'body'],
      ['null', 'null', 400, 'invalid_predictions', 'body'],
      ['no records', { predictions: [] }, 400, 'invalid_predictions', 'predictions'],
      ['records as an object with a lying length', '{"predictions": {"0": {}, "length": 1}}', 400, 'invalid_predictions', 'predictions'],
      ['__proto__ beside them', `{"__proto__": {"polluted": 1}, "predictions": ${JSON.stringify([good])}}`, 400, 'invalid_predictions', '__proto__'],
      ['another field', { predictions: [good], version: '2' }, 400, 'invalid_predictions', 'version'],
      ['a record that is a list', { predictions: [[good.id, '1', 10]] }, 400, 'invalid_predictions', 'predictions[0]'],
      [
        'constructor in a record',
        `{"predictions": [{"id": "${good.id}", "version": "1", "value": 10, "constructor": {"prototype": {}}}]}`,
        400,
        'invalid_predictions',
        'predictions[0].constructor',
      ],
      [
        '__proto__ in a record',
        `{"predictions": [{"__proto__": {"id": "${good.id}", "version": "1", "value": 10}}]}`,
        400,
        'invalid_predictions',
        'predictions[0].__proto__',
      ],
      ['no id', rec({ id: undefined }), 422, 'invalid_prediction', 'predictions[0].id'],
      ['an id of another form', rec({ id: 'mx5d1xdv.not-base64url!!!!!!!!!!!!!!' }), 422, 'invalid_prediction', 'predictions[0].id'],
      ['an id dated tomorrow', rec({ id: newPredictionId(Date.now() + DAY, new Uint8Array(16)) }), 422, 'prediction_out_of_range', 'predictions[0].id'],
      ['an id dated two days ago', rec({ id: newPredictionId(Date.now() - 2 * DAY, new Uint8Array(16)) }), 422, 'prediction_out_of_range', 'predictions[0].id'],
      ['an id dated 1970', rec({ id: `0.${'A'.repeat(22)}` }), 422, 'prediction_out_of_range', 'predictions[0].id'],
      ['one id twice', { predictions: [good, good] }, 422, 'duplicate_prediction', 'predictions[1].id'],
      ['a version the registry lacks', rec({ version: '2' }), 422, 'unknown_version', 'predictions[0].version'],
      ['version __proto__', rec({ version: '__proto__' }), 422, 'unknown_version', 'predictions[0].version'],
      ['a version that is not a string', rec({ version: 1 }), 422, 'unknown_version', 'predictions[0].version'],
      ['a value that lies about the list', rec({ value: 99 }), 422, 'invalid_prediction', 'predictions[0].value'],
      [
        'an infinite value',
        `{"predictions": [{"id": "${good.id}", "version": "1", "value": 1e999, "items": ["1"]}]}`,
        422,
        'invalid_prediction',
        'predictions[0].value',
      ],
      ['a value that is a string', rec({ value: '10' }), 422, 'invalid_prediction', 'predictions[0].value'],
      ['no list', rec({ items: undefined }), 422, 'invalid_prediction', 'predictions[0].items'],
      ['an empty list', rec({ items: [], value: 0 }), 422, 'invalid_prediction', 'predictions[0].items'],
      [
        'a list longer than k can be',
        rec({ items: Array.from({ length: 101 }, (_, i) => String(i + 1)), value: 101 }),
        422,
        'invalid_prediction',
        'predictions[0].items',
      ],
      ['ids twice in a list', rec({ items: ['1', '1'], value: 2 }), 422, 'invalid_prediction', 'predictions[0].items'],
      ['ids that are not integers', rec({ items: ['abc'], value: 1 }), 422, 'invalid_prediction', 'predictions[0].items'],
      ['ids written otherwise', rec({ items: ['007'], value: 1 }), 422, 'invalid_prediction', 'predictions[0].items'],
      ['ids as numbers', rec({ items: [1, 2], value: 2 }), 422, 'invalid_prediction', 'predictions[0].items'],
      ['a list that is an object', rec({ items: { length: 1, 0: '1' }, value: 1 }), 422, 'invalid_prediction', 'predictions[0].items'],
      ['501 records', { predictions: onDevice(501) }, 413, 'too_many_predictions', 'predictions'],
      ['a body over 256 KiB', { predictions: [good], pad: 'x'.repeat(300 * 1024) }, 413, 'body_too_large', 'body'],
    ];
    for (const [what, body, status, code, field] of cases) {
      expect(await errorOf(await send(path, body)), what).toEqual([status, code, field]);
    }
    // Huge and without a content-length (a stream): read no further than the limit.
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 40; i++) controller.enqueue(new TextEncoder().encode(' '.repeat(16 * 1024)));
        controller.close();
      },
    });
    expect(await errorOf(await post(path, stream as unknown as BodyInit))).toEqual([413, 'body_too_large', 'body']);
    // The token decides the model: a flight-delay token's records are judged as flight-delay's (a ranking's list is not one of its answers).
    const flight = await descriptor('flight-delay');
    expect(await errorOf(await send(`/v1/telemetry/predictions?token=${flight.telemetry.token}`, { predictions: [good] }))).toEqual([
      422,
      'invalid_prediction',
      'predictions[0].items',
    ]);
    expect(
      await errorOf(await send(`/v1/telemetry/predictions?token=${flight.telemetry.token}`, { predictions: [{ id: good.id, version: '1', value: 1.5 }] })),
    ).toEqual([422, 'invalid_prediction', 'predictions[0].value']);
    const forged = await signToken({ m: 'movielens-topk', v: '1', s: d.telemetry.source, e: Date.now() + 60_000 }, 'another-secret');
    expect(await errorOf(await send(`/v1/telemetry/predictions?token=${forged}`, { predictions: [good] }))).toEqual([401, 'invalid_token', 'token']);
    expect(await errorOf(await send('/v1/telemetry/predictions', { predictions: [good] }))).toEqual([401, 'missing_token', 'token']);
    const unknownModel = await signToken({ m: '__proto__', v: '1', s: d.telemetry.source, e: Date.now() + 60_000 }, undefined);
    expect(await errorOf(await send(`/v1/telemetry/predictions?token=${unknownModel}`, { predictions: [good] }))).toEqual([404, 'model_not_found', 'token']);

    // Any JSON at all: a 4xx, never a 5xx, and nothing stored unless it is a good body.
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue(),
          fc.record({ predictions: fc.array(fc.jsonValue(), { maxLength: 4 }) }),
          fc.record({
            predictions: fc.array(
              fc.record(
                {
                  id: fc.oneof(fc.constant(good.id), fc.string()),
                  version: fc.constantFrom('1', '2', '__proto__', ''),
                  value: fc.jsonValue(),
                  items: fc.jsonValue(),
                },
                { requiredKeys: [] },
              ),
              { maxLength: 3 },
            ),
          }),
        ),
        async (body) => {
          const res = await send(path, JSON.stringify(body));
          expect(res.status, JSON.stringify(body).slice(0, 200)).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          await res.body?.cancel();
        },
      ),
      { numRuns: 150, seed: 15 },
    );
    expect((await agg().counters()).predictions_stored ?? 0).toBe(0);
    // After all that, the good record is taken.
    expect(await (await send(path, { predictions: [good] })).json()).toEqual({ stored: 1, duplicate: 0, rejected: 0 });
  });
});
