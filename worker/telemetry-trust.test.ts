// Issue 11: no anonymous client can break or poison the drift data. Each finding of the attack
// on `npm start` is replayed here against the real worker app and the real DriftAggregator
// (Durable Object SQLite storage), and must now be refused at the door or contained in the fold.
import { abortAllDurableObjects, env, runInDurableObject } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CategoricalSketch,
  createProfile,
  createWindowProfiler,
  decodeSummary,
  encodeSummary,
  TDigest,
  type ModelManifest,
  type Profile,
} from '../core/index.ts';
import flightGolden from '../models/flight-delay/golden.json';
import { rng } from '../test/support/data.ts';
import { ALERT_HYSTERESIS, MAX_BUCKET_BYTES, type DriftAggregator } from './aggregator.ts';
import { SLOTS_PER_GROUP } from './serving/browser-telemetry.ts';
import { createApp, type Env } from './app.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import { DEFAULT_VERSIONS, DEFAULTS } from '../models/defaults.ts';

const ns = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;
const OPERATOR = 'trust-operator';
const FLIGHT = DEFAULTS['flight-delay'].manifest;
const baseline = decodeSummary(new Uint8Array(DEFAULTS['flight-delay'].baseline));

function setup(vars: Record<string, string> = {}) {
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const bindings = { ...(env as Env), TELEMETRY_SIGNING_KEY: undefined, OPERATOR_TOKEN: OPERATOR, TELEMETRY_BROWSER_FLUSH_MS: '0', ...vars } as Env &
    Record<string, unknown>;
  const get = (path: string, headers: Record<string, string> = {}) =>
    app.request(path, { headers: { 'cf-connecting-ip': '198.51.100.9', ...headers } }, bindings);
  const op = (path: string) => get(path, { authorization: `Bearer ${OPERATOR}` });
  const post = (token: string, body: Uint8Array, ip = '198.51.100.9') =>
    app.request(
      `/v1/telemetry?token=${encodeURIComponent(token)}`,
      { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'cf-connecting-ip': ip } },
      bindings,
    );
  const grant = async (model = 'flight-delay') =>
    ((await (await get(`/v1/models/${model}/artifact`)).json()) as { telemetry: { token: string; source: string } }).telemetry;
  const stats = async () =>
    (await op('/v1/telemetry')).json() as Promise<{
      accepted: number;
      rows: number;
      pending: number;
      forwarded: number;
      forwardedRows: number;
      refused: Record<string, number>;
    }>;
  /** Waits until everything accepted has been forwarded to the aggregator. */
  const drained = async (ms = 5000) => {
    const until = Date.now() + ms;
    for (;;) {
      const s = await stats();
      if (s.pending === 0 && s.forwardedRows === s.rows) return s;
      if (Date.now() > until) throw new Error('browser summaries were not forwarded in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { app, bindings, get, op, post, grant, stats, drained };
}

const withBackend = (m: ModelManifest): ModelManifest => ({
  ...m,
  features: [...m.features, { name: 'backend', kind: 'categorical', input: '', vocabulary: [], oov: 'unknown', sketchCapacity: 8 }],
});

/** An honest browser's summary of `rows` flight-delay golden rows, sketched as browser/telemetry.ts does. */
function honest(source: string, rows: number, sequence = 1): Profile {
  const profiler = createWindowProfiler({ source: { kind: 'browser', id: source } });
  const golden = flightGolden.rows as unknown as { features: Record<string, number | string>; expected: { int8: { p_delay: number } } }[];
  for (let i = 0; i < rows; i++) {
    const g = golden[i % golden.length];
    profiler.observe(withBackend(FLIGHT), FLIGHT.version, [{ features: { ...g.features, backend: 'wasm' }, outputs: g.expected.int8 }], 3, 'edge');
  }
  profiler.closeAll();
  const p = decodeSummary(profiler.take()[0].bytes);
  p.sequence = sequence;
  return p;
}

const code = async (res: Response) => [res.status, ((await res.clone().json()) as { error?: { code: string } }).error?.code ?? 'ok'];

describe('browser summaries are judged before they are accepted', () => {
  it('refuses what an honest page could not have sent, naming the reason, and counts it', async () => {
    const { post, grant, stats, drained } = setup();
    const g = await grant();
    const cases: [string, (p: Profile) => void, number, string][] = [
      // The attack: rows: 100000 and a month digest of one centroid of weight 1e6 at 99.
      ['rows past one source per minute', (p) => (p.counters.rows = 100_000), 422, 'invalid_rows'],
      ['a counter past 2^53 - 1 / 2', (p) => (p.counters.errors = 2 ** 52), 422, 'invalid_counter'],
      ['a counter above rows', (p) => (p.counters.fallbacks = p.counters.rows + 1), 422, 'invalid_counter'],
      ['an unknown counter', (p) => (p.counters.shadowRows = 1), 422, 'unknown_counter'],
      ['a digest heavier than the rows', (p) => p.features.set('month', new TDigest().add(3, 1e6)), 422, 'invalid_sketch'],
      ['a month of 99', (p) => p.features.set('month', new TDigest().add(99, 1)), 422, 'invalid_sketch'],
      ['NaN in a feature', (p) => p.features.set('distance', new TDigest().add(NaN)), 422, 'invalid_sketch'],
      [
        'a categorical total of 2^53 - 1',
        (p) => p.features.set('origin', new CategoricalSketch({ capacity: 512 }).add('ORD', Number.MAX_SAFE_INTEGER)),
        422,
        'invalid_sketch',
      ],
      [
        'capacity 65,536 with 250-character labels',
        (p) => p.features.set('origin', new CategoricalSketch({ capacity: 65_536 }).add('x'.repeat(250))),
        422,
        'invalid_sketch',
      ],
      ['a backend no runtime has', (p) => p.features.set('backend', new CategoricalSketch({ capacity: 8 }).add('quantum')), 422, 'invalid_sketch'],
      ['latency weight above rows', (p) => p.latency.add(1, 1000), 422, 'invalid_rows'],
      ['an output digest heavier than the rows', (p) => p.outputs.set('p_delay', new TDigest().add(0.5, 1e6)), 422, 'invalid_sketch'],
      // Red-team findings: outputs, latency and compression were taken as sent.
      ['a probability of 1e300', (p) => p.outputs.set('p_delay', new TDigest().add(1e300)), 422, 'invalid_sketch'],
      ['a probability of -5', (p) => p.outputs.set('p_delay', new TDigest().add(-5)), 422, 'invalid_sketch'],
      ['a NaN output', (p) => p.outputs.set('p_delay', new TDigest().add(NaN)), 422, 'invalid_sketch'],
      ['a latency of 1e300 ms', (p) => (p.latency = new TDigest().add(1e300)), 422, 'invalid_sketch'],
      ['a NaN latency', (p) => (p.latency = new TDigest().add(NaN)), 422, 'invalid_sketch'],
      ['a digest of compression 10,000', (p) => p.features.set('distance', new TDigest({ compression: 10_000 }).add(500)), 422, 'invalid_sketch'],
      ['a latency digest of compression 10,000', (p) => (p.latency = new TDigest({ compression: 10_000 }).add(3)), 422, 'invalid_sketch'],
    ];
    let seq = 0;
    for (const [what, mutate, status, reason] of cases) {
      const p = honest(g.source, 20, ++seq);
      mutate(p);
      expect(await code(await post(g.token, encodeSummary(p))), what).toEqual([status, reason]);
    }
    const s = await stats();
    expect(s.accepted).toBe(0);
    expect(Object.values(s.refused).reduce((a, b) => a + b, 0)).toBe(cases.length);
    // The honest summary itself passes.
    expect(await code(await post(g.token, encodeSummary(honest(g.source, 20, ++seq))))).toEqual([202, 'ok']);
    await drained();
  });

  it('one source reports at most TELEMETRY_SOURCE_ROWS_PER_MIN rows a minute (429 with Retry-After past it), whatever tokens it holds', async () => {
    const { post, grant, get, drained } = setup({ TELEMETRY_SOURCE_ROWS_PER_MIN: '100', TELEMETRY_RATE_PER_MIN: '1000' });
    const g = await grant();
    // Windows of three different minutes (a backlog): each fits its window, not the clock's minute.
    // From the test's start, so a minute boundary crossed mid-test cannot move "3 minutes ago".
    const startMinute = Math.floor(Date.now() / 60_000);
    const ago = (p: Profile, minutes: number) => {
      p.windowStart = (startMinute - minutes) * 60_000;
      p.windowEnd = p.windowStart + 1000;
      return encodeSummary(p);
    };
    expect((await post(g.token, ago(honest(g.source, 60, 1), 1))).status).toBe(202);
    const over = await post(g.token, ago(honest(g.source, 60, 2), 2));
    expect(await code(over)).toEqual([429, 'rate_limited']);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // A renewed token names the same source, so it shares the same allowance.
    const renewed = (await (await get('/v1/models/flight-delay/telemetry-token', { authorization: `Bearer ${g.token}` })).json()) as {
      token: string;
      source: string;
    };
    expect(renewed.source).toBe(g.source);
    expect((await post(renewed.token, ago(honest(g.source, 60, 3), 3))).status).toBe(429);
    expect((await post(renewed.token, ago(honest(g.source, 30, 4), 3))).status).toBe(202);
    // The same window again: its minute has 30 of its 100 rows, so 80 more are refused for good (422).
    expect(await code(await post(renewed.token, ago(honest(g.source, 80, 5), 3)))).toEqual([422, 'window_full']);
    await drained();
  });

  it(`one network opens at most SLOTS_PER_GROUP windows between flushes; one source's rows in one window minute are capped however late they come`, async () => {
    const { post, grant, drained } = setup({ TELEMETRY_SOURCE_ROWS_PER_MIN: '600', TELEMETRY_RATE_PER_MIN: '1000', TELEMETRY_BROWSER_FLUSH_MS: '5000' });
    // Minutes counted from the test's start, not from each call: the 3.2 s wait below may cross a
    // minute boundary, and "5 minutes ago" must stay the same window minute across it.
    const startMinute = Math.floor(Date.now() / 60_000);
    const at = (p: Profile, minutesAgo: number) => {
      p.windowStart = (startMinute - minutesAgo) * 60_000;
      p.windowEnd = p.windowStart + 1000;
      return encodeSummary(p);
    };
    // Windows opened by one network (one /24): SLOTS_PER_GROUP, then 503 until the next flush;
    // another network is not held up.
    const statuses: number[] = [];
    for (let i = 0; i < SLOTS_PER_GROUP + 2; i++) {
      const t = await grant();
      statuses.push((await post(t.token, at(honest(t.source, 1, 1), 10 + i), `198.51.100.${10 + i}`)).status);
    }
    expect(statuses.slice(0, SLOTS_PER_GROUP).every((x) => x === 202)).toBe(true);
    expect(statuses.slice(SLOTS_PER_GROUP)).toEqual([503, 503]);
    const other = await grant();
    expect((await post(other.token, at(honest(other.source, 1, 1), 40), '203.0.113.5')).status).toBe(202);
    // A source's rows for one window minute: the wall-clock allowance refills (10 rows a second
    // here), the window's does not.
    const g = await grant();
    expect((await post(g.token, at(honest(g.source, 600, 1), 5), '192.0.2.1')).status).toBe(202);
    await new Promise((r) => setTimeout(r, 3200)); // the clock is the point: 3.2 s refill the wall-clock allowance (10 rows/s), not the window's
    expect(await code(await post(g.token, at(honest(g.source, 30, 2), 5), '192.0.2.1'))).toEqual([422, 'window_full']);
    expect((await post(g.token, at(honest(g.source, 30, 3), 6), '192.0.2.1')).status).toBe(202);
    await drained(20_000);
  });

  it('an unknown client address fails closed, and minting tokens is limited per address', async () => {
    const { app, bindings, get, grant } = setup({ TELEMETRY_TOKENS_PER_IP_PER_MIN: '3' });
    const g = await grant();
    const anonymous = await app.request(`/v1/telemetry?token=${g.token}`, { method: 'POST', body: encodeSummary(honest(g.source, 5)) }, bindings);
    expect(await code(anonymous)).toEqual([403, 'address_unknown']);
    // Without an address the model is still described, with no telemetry grant.
    const d = (await (await app.request('/v1/models/flight-delay/artifact', {}, bindings)).json()) as { telemetry: unknown; artifact: unknown };
    expect(d.artifact).toBeTruthy();
    expect(d.telemetry).toBeNull();
    expect(await code(await app.request('/v1/models/flight-delay/telemetry-token', {}, bindings))).toEqual([403, 'address_unknown']);
    // grant() took one; two more, then 429.
    expect((await get('/v1/models/flight-delay/telemetry-token')).status).toBe(200);
    expect((await get('/v1/models/flight-delay/telemetry-token')).status).toBe(200);
    const limited = await get('/v1/models/flight-delay/telemetry-token');
    expect(await code(limited)).toEqual([429, 'rate_limited']);
    expect(limited.headers.get('retry-after')).toBeTruthy();
    expect((await get('/v1/models/flight-delay/telemetry-token', { 'cf-connecting-ip': '198.51.100.77' })).status).toBe(200);
  });

  it('the isolate figures (GET /v1/telemetry) need the operator token', async () => {
    const { get, op } = setup();
    expect((await get('/v1/telemetry')).status).toBe(401);
    expect((await get('/v1/telemetry', { authorization: 'Bearer nope' })).status).toBe(401);
    expect((await op('/v1/telemetry')).status).toBe(200);
  });

  it('a summary that cannot merge with its slot is refused and leaves the slot, and an honest browser rows, intact', async () => {
    const { post, grant, drained } = setup({ TELEMETRY_BROWSER_FLUSH_MS: '50' });
    const agg = ns.get(ns.idFromName('flight-delay'));
    const before = (await agg.counters()).rows ?? 0;
    const honestGrant = await grant();
    expect((await post(honestGrant.token, encodeSummary(honest(honestGrant.source, 37)))).status).toBe(202);
    const attacker = await grant();
    const p = honest(attacker.source, 10);
    p.features.set('distance', new CategoricalSketch({ capacity: 512 }).add('far')); // the slot holds a digest there
    expect(await code(await post(attacker.token, encodeSummary(p)))).toEqual([422, 'unexpected_sketch']);
    const s = await drained();
    expect(s.forwardedRows).toBe(37);
    const until = Date.now() + 5000;
    while (((await agg.counters()).rows ?? 0) - before < 37 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(((await agg.counters()).rows ?? 0) - before).toBe(37);
  });
});

/** A minute of flight-delay rows drawn from the baseline; `shift` sets month to 5 (never in training), from `source`. */
function minute(start: number, sequence: number, seed: number, shift: boolean, source: Profile['source'], rows = 500): Uint8Array {
  const r = rng(seed);
  const p = createProfile({ model: 'flight-delay', modelVersion: '1', source, sequence, windowStart: start, windowEnd: start + 59_000 });
  for (const [name, sketch] of baseline.features) {
    if (sketch instanceof TDigest) {
      const d = new TDigest();
      for (let i = 0; i < rows; i++) d.add(shift && name === 'month' ? 5 : name === 'distance' ? sketch.quantile(r()) : Math.round(sketch.quantile(r())));
      p.features.set(name, d);
    } else if (sketch instanceof CategoricalSketch) {
      const c = new CategoricalSketch({ capacity: 512 });
      const top = sketch.top(512);
      const total = top.reduce((a, x) => a + x.count, 0);
      for (let i = 0; i < rows; i++) {
        let u = r() * total;
        c.add((top.find((t) => (u -= t.count) <= 0) ?? top[0]).value);
      }
      p.features.set(name, c);
    }
  }
  p.counters.rows = rows;
  return encodeSummary(p);
}

describe('no lone browser source decides an alert', () => {
  // An object of its own per case (named apart, holding flight-delay: it judges against that baseline).
  const run = async (name: string, source: Profile['source'], groups: string[] | undefined, honestEdgeRows = 0) => {
    const agg = ns.get(ns.idFromName(`trust-${name}`));
    const t0 = Date.UTC(2026, 1, 1, 0, 0, 0);
    let seq = 0;
    for (let i = 0; i < 8; i++) {
      // Shifted from the second minute on, for longer than the hysteresis; forwarded as an isolate does (groups beside).
      const [r] = await agg.ingestMany('flight-delay', [minute(t0 + i * 60_000, ++seq, i + 1, i >= 1, source, 500)], [groups]);
      expect(r.status).toBe('stored');
      if (honestEdgeRows)
        expect(
          (await agg.ingest('flight-delay', minute(t0 + i * 60_000, ++seq, 100 + i, false, { kind: 'edge', id: 'isolate-a' }, honestEdgeRows))).status,
        ).toBe('stored');
    }
    await agg.evaluate(Date.now());
    return { alerts: (await agg.alerts()).map((a) => a.feature), counters: await agg.counters() };
  };
  const g = (n: number) => Array.from({ length: n }, (_, i) => `${i}`.padStart(16, 'a'));

  it(`browser evidence from fewer than ALERT_MIN_SOURCES address groups opens nothing; from enough it does; the edge's own rows always count`, async () => {
    // One isolate forwarding one network's shifted minutes: not enough to judge.
    const lone = await run('lone', { kind: 'browser', id: 'browsers-1' }, g(1));
    expect(lone.alerts).not.toContain('month');
    expect(lone.counters.windows_untrusted).toBeGreaterThanOrEqual(ALERT_HYSTERESIS);
    // The same group again and again (many flushes, many isolates) is still one.
    const repeated = await run('repeated', { kind: 'browser', id: 'browsers-1b' }, [...g(1), ...g(1), ...g(1)]);
    expect(repeated.alerts).not.toContain('month');
    // The same shifted minutes from three networks: an alert.
    expect((await run('many', { kind: 'browser', id: 'browsers-2' }, g(3))).alerts).toContain('month');
    // A lone network beside the edge's own honest rows: judged on the edge's rows, which did not move.
    expect((await run('beside', { kind: 'browser', id: 'browsers-3' }, g(1), 300)).alerts).not.toContain('month');
    // The edge is trusted.
    expect((await run('edge', { kind: 'edge', id: 'isolate-e' }, undefined)).alerts).toContain('month');
  });

  it('through the worker: one address minting many sources, flushed many times, is one group', async () => {
    // Red-team finding: the per-flush count of distinct sources was summed by the fold, so one
    // source flushed three times counted as three; and one address minted three sources.
    const { post, grant, drained } = setup({ TELEMETRY_BROWSER_FLUSH_MS: '0', TELEMETRY_RATE_PER_MIN: '1000' });
    const agg = ns.get(ns.idFromName('flight-delay'));
    const minuteAgo = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    for (let k = 0; k < 3; k++) {
      const token = await grant();
      const p = honest(token.source, 50, 1);
      p.windowStart = minuteAgo + k;
      p.windowEnd = minuteAgo + k + 1000;
      expect((await post(token.token, encodeSummary(p))).status).toBe(202);
      await drained();
    }
    const groups = await runInDurableObject(
      agg,
      (_, state) => state.storage.sql.exec(`SELECT COUNT(DISTINCT grp) AS n FROM browser_groups WHERE minute = ?`, minuteAgo).one().n,
    );
    expect(groups).toBe(1);
  });
});

describe('the fold never wedges', () => {
  it('summaries whose counters add past 2^53 - 1 are dropped and counted; every read keeps answering, also after a restart', async () => {
    for (const restart of [false, true]) {
      const name = `flight-delay-overflow-${restart}`;
      const agg = () => ns.get(ns.idFromName(name));
      const t = Date.UTC(2026, 2, 1, 0, 0, 0);
      const big = (id: string, seq: number) => {
        const p = createProfile({ model: name, modelVersion: '1', source: { kind: 'edge', id }, sequence: seq, windowStart: t, windowEnd: t + 1000 });
        p.counters.rows = 2 ** 52 + 1;
        p.features.set('origin', new CategoricalSketch({ capacity: 4 }).add('ORD', 2 ** 52 + 1));
        return encodeSummary(p);
      };
      expect((await agg().ingest(name, big('a', 1))).status).toBe('stored');
      expect((await agg().ingest(name, big('b', 1))).status).toBe('stored');
      // A restart loses the in-memory merge: the fold then reads the pending rows one by one.
      if (restart) await abortAllDurableObjects();
      const w = await agg().window(t, t + 60_000);
      expect(w, `restart: ${restart}`).not.toBeNull();
      expect(decodeSummary(w!).counters.rows).toBe(2 ** 52 + 1);
      expect((await agg().counters()).incompatible).toBe(1);
      expect(await agg().versions(t, t + 60_000)).toHaveProperty('1');
      expect((await agg().minutes()).length).toBe(1);
    }
  });

  it(`a bucket that would pass MAX_BUCKET_BYTES keeps the summaries that fit and counts the rest as oversize`, async () => {
    const name = 'flight-delay-oversize';
    const agg = ns.get(ns.idFromName(name));
    const t = Date.UTC(2026, 2, 2, 0, 0, 0);
    // Each ~0.75 MB: 3,000 distinct 250-character labels (as a trusted sender might, in a capacity-65,536 sketch).
    const huge = (seq: number) => {
      const p = createProfile({ model: name, modelVersion: '1', source: { kind: 'edge', id: 'x' }, sequence: seq, windowStart: t, windowEnd: t + 1000 });
      const c = new CategoricalSketch({ capacity: 65_536 });
      for (let i = 0; i < 3000; i++) c.add(`${seq}-${i}-`.padEnd(250, 'z'));
      p.features.set('origin', c);
      p.counters.rows = 3000;
      return encodeSummary(p);
    };
    for (let s = 1; s <= 3; s++) expect((await agg.ingest(name, huge(s))).status).toBe('stored');
    const w = decodeSummary((await agg.window(t, t + 60_000))!);
    const counters = await agg.counters();
    expect(counters.oversize).toBeGreaterThanOrEqual(1);
    expect(w.counters.rows).toBe(3000 * (3 - counters.oversize));
    expect(w.counters.rows).toBe(counters.rows);
    expect(encodeSummary(w).byteLength).toBeLessThanOrEqual(MAX_BUCKET_BYTES);
  });
});

describe('property: whatever an anonymous client sends within its limits', () => {
  it('every route keeps answering 2xx/4xx, no stored count exceeds the rows, and an honest source is stored exactly once', async () => {
    const { post, grant, op, drained } = setup({
      TELEMETRY_RATE_PER_MIN: '100000',
      TELEMETRY_RATE_PER_IP_PER_MIN: '100000',
      TELEMETRY_TOKENS_PER_IP_PER_MIN: '100000',
    });
    const agg = ns.get(ns.idFromName('flight-delay'));
    const MAX = Number.MAX_SAFE_INTEGER;
    const num = fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.constantFrom(MAX, MAX - 1, 2 ** 52, 2 ** 31, -1, 1e300, NaN, Infinity));
    const mutation = fc.oneof(
      fc.record({ counter: fc.constantFrom('rows', 'errors', 'cacheHits', 'fallbacks', 'mergedWindows', 'shadowRows', 'sources', 'zz'), value: num }).map(
        ({ counter, value }) =>
          (p: Profile) =>
            (p.counters[counter] = Number.isSafeInteger(value) && value >= 0 ? value : 0),
      ),
      fc
        .record({ feature: fc.constantFrom('month', 'hour', 'distance', 'p_delay'), value: fc.double(), weight: num })
        .map(({ feature, value, weight }) => (p: Profile) => {
          const d = new TDigest();
          if (weight > 0 && weight < 1e300) d.add(value, weight);
          (feature === 'p_delay' ? p.outputs : p.features).set(feature, d);
        }),
      fc
        .record({
          feature: fc.constantFrom('origin', 'destination', 'backend'),
          capacity: fc.constantFrom(1, 8, 512, 65_536),
          label: fc.string({ maxLength: 300 }),
          weight: num,
        })
        .map(({ feature, capacity, label, weight }) => (p: Profile) => {
          const c = new CategoricalSketch({ capacity });
          if (Number.isSafeInteger(weight) && weight > 0) c.add(label, weight);
          p.features.set(feature, c);
        }),
    );
    const before = await agg.counters();
    let honestRows = 0;
    let attackerRows = 0;
    let seq = 0;
    const good = await grant();
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 200 }), async (mutations, rows) => {
        const bad = await grant();
        const p = honest(bad.source, rows, ++seq);
        for (const m of mutations) m(p);
        let bytes: Uint8Array;
        try {
          bytes = encodeSummary(p);
        } catch {
          return; // not even sendable
        }
        const res = await post(bad.token, bytes);
        expect(res.status, await res.clone().text()).toBeGreaterThanOrEqual(200);
        expect(res.status).toBeLessThan(500);
        if (res.status === 202) attackerRows += p.counters.rows;
        const mine = await post(good.token, encodeSummary(honest(good.source, 3, ++seq)));
        expect(mine.status).toBe(202);
        honestRows += 3;
      }),
      { seed: 42, numRuns: 40 },
    );
    await drained();
    const until = Date.now() + 10_000;
    let after = await agg.counters();
    while ((after.rows ?? 0) - (before.rows ?? 0) < honestRows + attackerRows && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      after = await agg.counters();
    }
    expect((after.rows ?? 0) - (before.rows ?? 0)).toBe(honestRows + attackerRows);
    expect(after.incompatible ?? 0).toBe(before.incompatible ?? 0);
    const now = Date.now();
    const w = decodeSummary((await agg.window(now - 3 * 3600_000, now + 60_000))!);
    for (const [k, v] of Object.entries(w.counters)) expect(v, k).toBeLessThanOrEqual(w.counters.rows);
    for (const s of w.features.values()) if (s instanceof TDigest) expect(s.count).toBeLessThanOrEqual(w.counters.rows);
    for (const path of ['/v1/models/flight-delay/drift', '/v1/models/flight-delay/versions', '/v1/models/flight-delay/alerts']) {
      const res = await op(path);
      expect(res.status, path).toBe(200);
    }
  });
});
