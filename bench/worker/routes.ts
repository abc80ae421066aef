/**
 * The benchmark worker's own routes, mounted beside the product's by bench/worker/index.ts (the
 * shipped worker has none of them), for `npm run bench:serve` and `npm run bench:telemetry`.
 *
 * - POST /v1/models/{name}/bench `{ instances, runs, concurrency? }`: direct session runs of the
 *   posted instances inside this isolate, timed (so that ort-web in workerd can be compared with
 *   onnxruntime-node); with `concurrency`, that many loops push `runs` one-row requests through
 *   the batcher, and the client times the whole request.
 *
 * Clocks inside workerd do not advance during CPU work, so nothing here times itself: the client
 * times whole requests and subtracts one that does the same setup and no work (`runs: 0`,
 * `count: 0`).
 *
 * - POST /v1/bench/telemetry/sketch `{ model, instances, predictions, latencies?, runs }`:
 *   the telemetry hot path of `runs` one-row requests: the inference routes' own telemetry()
 *   (worker/serving/telemetry.ts) on a runtime configured like the app's (TELEMETRY_WINDOW_MS,
 *   TELEMETRY_MAX_ROWS) with no aggregator bound; closed windows are encoded in tick() (as in
 *   the app) and taken and acknowledged as a successful flush would, without the RPC.
 * - POST /v1/bench/telemetry/summaries `{ model, instances, predictions, latencies?, count,
 *   distinct?, rowsPerWindow?, sources?, windowMs? }`: sketches `distinct` windows of real rows
 *   and from them `count` summaries as `sources` edge isolates would send them (see
 *   syntheticStream), encoded and kept in this isolate under a token.
 * - POST /v1/bench/telemetry/ingest `{ token, object, model, concurrency?, count?, maxMs?, probe?, batch? }`:
 *   ingests the first `count` kept summaries into the DriftAggregator named `object` over RPC,
 *   `concurrency` calls in flight: one `ingest(model, bytes)` call per summary, or with `batch`
 *   (1-256) one `ingestMany(model, summaries)` call per `batch` consecutive summaries, as an edge
 *   isolate's flush ships its outbox (the last call takes what is left). Floors, to see what an ingest costs around the aggregator's
 *   own work: `probe: "reject"` sends the same bytes with a bad magic byte (kept beside them),
 *   each refused at decode's first check (the RPC, the clone of the bytes, one counter upsert
 *   and its commit); `probe: "read"` makes as many `counters()` calls instead (an RPC and a
 *   read, no bytes, nothing written; not with `batch`). `probe: "reject"` with `batch` sends the
 *   bad bytes through ingestMany, `batch` refused at once per call.
 * - POST /v1/bench/telemetry/fold `{ object }`: makes the DriftAggregator named `object` fold its
 *   pending summaries into their minute buckets, through `minutes()` (the cheapest read: it folds
 *   first, as every read does, then lists the buckets without decoding them); answers the bucket
 *   count. Timed from the client against the same call on an object with nothing pending, it is
 *   the deferred part of ingest (ingest stores and merges in memory; the fold encodes).
 * - GET /v1/bench/telemetry/stored?object=: the object's counters and stored bucket sizes.
 */
import { Hono, type Context } from 'hono';
import {
  createWindowProfiler,
  decodeSummary,
  encodeInstances,
  encodeSummary,
  ValidationError,
  type ModelManifest,
  type ObservedRow,
  type Profile,
} from '../../core/index.ts';
import { runtimeOf, type AppEnv } from '../../worker/http/context.ts';
import { body, engineOf, limit } from '../../worker/http/request.ts';
import { createRuntime } from '../../worker/serving/runtime.ts';
import { subset } from '../../worker/serving/tensors.ts';
import { telemetry } from '../../worker/serving/telemetry.ts';

export interface StreamOptions {
  /** Summaries to make. */
  count: number;
  /** Edge isolates sending them, round robin; each numbers its own summaries 1, 2, ... */
  sources: number;
  /** Each source's window length; source s's windows are staggered by s · windowMs / sources. */
  windowMs: number;
  /** Start of the first window. */
  t0: number;
  /** A tag that makes the source ids unique to one run. */
  tag: string;
}

/**
 * Summary k of the stream: the content of base window (7k mod D) (7 is coprime with the 64 the
 * bench uses, so consecutive summaries differ), sent by source k mod S as its sequence
 * ⌊k / S⌋ + 1 for its window starting at t0 + (sequence − 1) · windowMs + stagger. Pure, so
 * that the bench can replay the same stream in Node.
 */
export function streamProfile(bases: Profile[], k: number, { sources, windowMs, t0, tag }: StreamOptions): Profile {
  const base = bases[(k * 7) % bases.length];
  const s = k % sources;
  const sequence = Math.floor(k / sources) + 1;
  const windowStart = t0 + (sequence - 1) * windowMs + Math.floor((s * windowMs) / sources);
  return { ...base, source: { kind: 'edge', id: `bench-${tag}-${s}` }, sequence, windowStart, windowEnd: windowStart + windowMs };
}

/** Base windows: `distinct` windows of `rowsPerWindow` one-row requests each, from staggered offsets in `rows`. */
export function sketchWindows(
  m: ModelManifest,
  rows: ObservedRow[],
  latencies: number[],
  { distinct, rowsPerWindow, compression = 100 }: { distinct: number; rowsPerWindow: number; compression?: number },
): Uint8Array[] {
  const out: Uint8Array[] = [];
  const stride = Math.max(1, Math.floor(rows.length / distinct));
  for (let j = 0; j < distinct; j++) {
    const profiler = createWindowProfiler({
      source: { kind: 'edge', id: `base-${j}` },
      windowMs: Number.MAX_SAFE_INTEGER,
      maxRows: rowsPerWindow + 1,
      compression,
      now: () => 0,
    });
    for (let i = 0; i < rowsPerWindow; i++) {
      const r = rows[(j * stride + i) % rows.length];
      profiler.observe(m, m.version, [r], latencies.length ? latencies[(j * stride + i) % latencies.length] : 5, 'edge');
    }
    profiler.closeAll();
    out.push(profiler.take()[0].bytes);
  }
  return out;
}

/** Summaries kept for the ingest route, by token (this isolate only; a few MB at most). */
const kept = new Map<string, Uint8Array[]>();
const MAX_KEPT = 8;

/** The bench routes over the models the app serves, as a sub-app to mount with `app.route('/', ...)`. */
export function benchRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post('/v1/models/:name/bench', limit, async (c) => {
    const e = engineOf(c);
    const raw = (await body(c)) as { instances?: unknown; runs?: unknown; concurrency?: unknown };
    const runs = Number(raw.runs ?? 200);
    if (!Number.isInteger(runs) || runs < 1 || runs > 100_000) throw new ValidationError('runs must be an integer in [1, 100000]', 'runs');
    const enc = encodeInstances(e.manifest, { instances: raw.instances }, { maxBatch: 1024 });
    const concurrency = Number(raw.concurrency ?? 0);
    if (concurrency > 0) {
      // Engine load without HTTP: `concurrency` loops push `runs` one-row requests through the
      // batcher; the client times the whole request.
      if (!Number.isInteger(concurrency) || concurrency > 1024) throw new ValidationError('concurrency must be an integer in [1, 1024]', 'concurrency');
      const one = (i: number) => subset(e.manifest, enc, [i % enc.rows]);
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < runs) {
            const r = one(next++);
            await e.infer({ rows: 1, feeds: r.feeds, params: enc.params });
          }
        }),
      );
      return c.json({ runs, concurrency, batcher: e.batcher()?.stats() ?? null });
    }
    const times = await e.timeRuns({ rows: enc.rows, feeds: enc.feeds, params: enc.params }, runs);
    return c.json({ rows: enc.rows, runs, ms: times });
  });

  const json = async (c: Context<AppEnv>): Promise<Record<string, unknown>> => {
    try {
      const b = await c.req.json();
      if (b && typeof b === 'object' && !Array.isArray(b)) return b as Record<string, unknown>;
    } catch {
      // fall through
    }
    throw new ValidationError('the body must be a JSON object', 'body', 400, 'invalid_json');
  };
  const int = (v: unknown, field: string, lo: number, hi: number, fallback?: number): number => {
    const n = v === undefined && fallback !== undefined ? fallback : Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new ValidationError(`${field} must be an integer in [${lo}, ${hi}]`, field);
    return n;
  };
  const manifestOf = (c: Context<AppEnv>, name: unknown): ModelManifest => {
    const engines = runtimeOf(c).engines;
    const m = typeof name === 'string' ? engines.get(name)?.manifest : undefined;
    if (!m) throw new ValidationError(`unknown model ${JSON.stringify(name)} (serving ${[...engines.keys()].join(', ')})`, 'model', 404, 'model_not_found');
    return m;
  };
  /** Real rows: features as the profiler sees them (encodeInstances' `observed`) with the outputs the client got for them. */
  const rowsOf = (m: ModelManifest, b: Record<string, unknown>): ObservedRow[] => {
    const enc = encodeInstances(m, { instances: b.instances }, { maxBatch: 10_000 });
    const preds = b.predictions;
    if (!Array.isArray(preds) || preds.length !== enc.rows)
      throw new ValidationError('predictions must be an array with one entry per instance', 'predictions');
    return enc.observed.map((features, i) => ({ features, outputs: preds[i] as ObservedRow['outputs'] }));
  };
  const latenciesOf = (b: Record<string, unknown>): number[] =>
    Array.isArray(b.latencies) ? b.latencies.map(Number).filter((x) => Number.isFinite(x) && x >= 0) : [];

  app.post('/v1/bench/telemetry/sketch', async (c) => {
    const b = await json(c);
    const m = manifestOf(c, b.model);
    const rows = rowsOf(m, b);
    const latencies = latenciesOf(b);
    const runs = int(b.runs, 'runs', 0, 1_000_000);
    // A runtime of its own (a fresh profiler, configured as the app's), never serving: no sessions.
    const rt = createRuntime(
      { ...c.env, TELEMETRY: 'on' },
      {
        createSession: () => Promise.reject(new Error('the sketch bench runs no model')),
        servedBy: 'bench',
      },
    );
    const profiler = rt.profiler!;
    const none = () => undefined;
    let flushed = 0;
    let bytes = 0;
    for (let i = 0; i < runs; i++) {
      const r = rows[i % rows.length];
      // The inference routes' own hot path, with no aggregator bound (so it never flushes itself).
      telemetry(rt, undefined, none, undefined, m, m.version, [r.features], [r.outputs], latencies.length ? latencies[i % latencies.length] : 5, 'edge');
      if (profiler.stats().outbox > 0) {
        const batch = profiler.take();
        for (const s of batch) bytes += s.bytes.length;
        profiler.ack(batch);
        flushed += batch.length;
      }
    }
    return c.json({ runs, rows: rows.length, flushed, bytes, stats: profiler.stats() });
  });

  app.post('/v1/bench/telemetry/summaries', async (c) => {
    const b = await json(c);
    const m = manifestOf(c, b.model);
    const rows = rowsOf(m, b);
    const count = int(b.count, 'count', 1, 20_000);
    const distinct = int(b.distinct, 'distinct', 1, 256, 64);
    const rowsPerWindow = int(b.rowsPerWindow, 'rowsPerWindow', 1, 10_000, 500);
    const windowMs = int(b.windowMs, 'windowMs', 1, 3_600_000, 5000);
    const sources = int(b.sources, 'sources', 1, 10_000, 50);
    const bases = sketchWindows(m, rows, latenciesOf(b), { distinct, rowsPerWindow });
    const decoded = bases.map((x) => decodeSummary(x));
    const tag = crypto.randomUUID().slice(0, 8);
    // Windows end before now: the minute a few minutes back, so retention keeps them and they are complete.
    const span = Math.ceil(count / sources) * windowMs;
    const t0 = Math.floor((Date.now() - span - 60_000) / 60_000) * 60_000;
    const opts: StreamOptions = { count, sources, windowMs, t0, tag };
    const list = Array.from({ length: count }, (_, k) => encodeSummary(streamProfile(decoded, k, opts)));
    const token = `${m.name}-${tag}`;
    kept.set(token, list);
    // The same bytes with the first magic byte flipped: refused at the first check of decode, so
    // ingesting them costs the RPC (the same bytes cloned), one counter upsert and no more.
    kept.set(
      `${token}/probe`,
      list.map((x) => {
        const y = x.slice();
        y[0] ^= 0xff;
        return y;
      }),
    );
    while (kept.size > MAX_KEPT) kept.delete(kept.keys().next().value!);
    const sizes = list.map((x) => x.length);
    return c.json({
      token,
      stream: opts,
      bytes: { total: sizes.reduce((a, x) => a + x, 0), min: Math.min(...sizes), max: Math.max(...sizes) },
      bases: bases.map((x) => bytesToBase64(x)),
    });
  });

  app.post('/v1/bench/telemetry/ingest', async (c) => {
    const b = await json(c);
    const probe = b.probe === undefined ? undefined : String(b.probe);
    if (probe !== undefined && probe !== 'reject' && probe !== 'read') throw new ValidationError('probe must be "reject" or "read"', 'probe');
    const list = kept.get(probe === 'reject' ? `${String(b.token)}/probe` : String(b.token));
    if (!list) throw new ValidationError(`no summaries kept under token ${JSON.stringify(b.token)} (in this isolate)`, 'token', 404, 'token_not_found');
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    const model = manifestOf(c, b.model).name;
    if (typeof b.object !== 'string' || !b.object) throw new ValidationError('object must name a DriftAggregator', 'object');
    const count = int(b.count, 'count', 0, list.length, list.length);
    const concurrency = int(b.concurrency, 'concurrency', 1, 1024, 16);
    const maxMs = int(b.maxMs, 'maxMs', 1, 600_000, 30_000);
    // At most MAX_BATCH (worker/aggregator.ts) per ingestMany call; not imported, so that Node can import this file.
    const batch = b.batch === undefined ? undefined : int(b.batch, 'batch', 1, 256);
    if (batch !== undefined && probe === 'read') throw new ValidationError('probe "read" takes no batch', 'batch');
    const stub = c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(b.object));
    const statuses: Record<string, number> = {};
    let reason: string | undefined;
    let next = 0;
    let calls = 0;
    // Date.now() moves on I/O (each RPC), so it bounds the run even though it cannot time CPU.
    const until = Date.now() + maxMs;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, Math.max(count, 1)) }, async () => {
        while (next < count && Date.now() < until) {
          if (probe === 'read') {
            next++;
            await stub.counters();
            calls++;
            statuses.read = (statuses.read ?? 0) + 1;
            continue;
          }
          if (batch !== undefined) {
            const slice = list.slice(next, Math.min(count, next + batch));
            next += slice.length;
            const results = await stub.ingestMany(model, slice);
            calls++;
            for (const res of results) {
              statuses[res.status] = (statuses[res.status] ?? 0) + 1;
              if (res.status === 'rejected') reason ??= res.reason;
            }
            continue;
          }
          const res = await stub.ingest(model, list[next++]);
          calls++;
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === 'rejected') reason ??= res.reason;
        }
      }),
    );
    return c.json({ done: Object.values(statuses).reduce((a, x) => a + x, 0), calls, statuses, ...(reason ? { reason } : {}) });
  });

  app.post('/v1/bench/telemetry/fold', async (c) => {
    const b = await json(c);
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    if (typeof b.object !== 'string' || !b.object) throw new ValidationError('object must name a DriftAggregator', 'object');
    const stub = c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(b.object));
    const buckets = await stub.minutes();
    return c.json({ buckets: buckets.length });
  });

  app.get('/v1/bench/telemetry/stored', async (c) => {
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    const object = c.req.query('object');
    if (!object) throw new ValidationError('object must name a DriftAggregator', 'object');
    const stub = c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(object));
    const counters = await stub.counters();
    const buckets: { version: string; minute: number; bytes: number }[] = [];
    for (const { version, minute } of await stub.minutes()) {
      const w = await stub.window(minute, minute + 60_000, version);
      buckets.push({ version, minute, bytes: w?.length ?? 0 });
    }
    return c.json({ counters, buckets });
  });
  return app;
}

function bytesToBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}
