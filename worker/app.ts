/**
 * The edge API (Hono): the Open Inference Protocol (KServe v2) routes that Triton, KServe and
 * MLServer speak, and a friendlier named-feature route. Every input is validated against the
 * model's manifest (core/validate.ts) before it can reach the engine; answers are cached per
 * instance; concurrent requests are micro-batched per model (core/batcher.ts).
 *
 * Errors are JSON, always, 4xx for the caller's mistakes, 503 with Retry-After when the engine
 * cannot serve in time, 500 without internals. Under /v2 the body is the Open Inference
 * Protocol's `{ "error": "<message>" }` with `code` and `field` beside it as extra members;
 * elsewhere `{ "error": { "code", "message", "field"? } }`. A path served for other methods
 * answers 405 with `Allow`.
 *
 * Lookups by a client's string (model, version, reference) go through Maps or own-property
 * checks only: `__proto__`, `constructor` and friends are unknown names like any other
 * (test/node/proto-scan.test.ts keeps it so).
 *
 * Time: a request's budget runs from the moment the worker received it (the first middleware),
 * and inference answers carry `Server-Timing` with the worker's own time and the engine's.
 */
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { TrieRouter } from 'hono/router/trie-router';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import {
  assignVersion,
  canonicalKey,
  createCache,
  createCircuitBreaker,
  shadowVersions,
  validateRoutingTable,
  createWindowProfiler,
  observedFromFeeds,
  judgeSketch,
  seasonalFeatures,
  decodeSummary,
  CategoricalSketch,
  type Profile,
  type Sketch,
  type WindowProfiler,
  type Outcome,
  type RoutingTable,
  TDigest,
  DeadlineError,
  decodeV2Inputs,
  encodeInstances,
  OverloadedError,
  V2_DATATYPE,
  ValidationError,
  type BatchMode,
  type Cache,
  type ErrorBodyV1,
  type ErrorBodyV2,
  type ModelManifest,
  type Tensor,
} from '../core/index.ts';
import { createModelEngine, ModelLoadError, type EngineRequest, type ModelEngine, type SessionFactory } from './engine/model-engine.ts';
import type { Env } from './env.ts';
import { createFallbackClient, FallbackError, type FallbackClient } from './fallback.ts';
import { checkOperator, OperatorAuthError } from './auth.ts';
import type { BundledModel } from './models.ts';
import { mountBenchRoutes } from './bench-routes.ts';
import { configNumber } from './config.ts';
import { mountBrowserRoutes } from './browser-routes.ts';
import { mountDashboard } from './dashboard.ts';

export type { Env } from './env.ts';

export interface AppOptions {
  models: Record<string, BundledModel>;
  createSession: SessionFactory;
  /** What this server calls itself in `served_by` ("edge" for the worker, "origin" for origin/). */
  servedBy?: string;
}

interface ShadowStats {
  runs: number;
  errors: number;
  /** Binary classifiers: served and shadow on the same side of 0.5. */
  sameClass: number;
  /** |served − shadow| of the score (binary) or of the first score (ranking). */
  scoreDiff: TDigest;
  /** Ranking models: |served top-k ∩ shadow top-k| / k. */
  overlap: TDigest;
}

interface Runtime {
  engines: Map<string, ModelEngine>;
  /** Every deployable version per model (the stable one included), for canary and shadow. */
  versions: Map<string, Map<string, ModelEngine>>;
  routing: Map<string, { table: RoutingTable; until: number }>;
  shadows: Map<string, Map<string, ShadowStats>>;
  served: Map<string, Map<string, number>>;
  profiler: WindowProfiler | undefined;
  flushing: boolean;
  cache: Cache<unknown> | undefined;
  fallbacks: Map<string, FallbackClient>;
  /** Edge latency per model, for the hedging delay. */
  latency: Map<string, TDigest>;
  hedgeQuantile: number | undefined;
  config: { batchMode: BatchMode; maxWaitMs: number; maxQueue: number; cacheBytes: number; cacheTtlMs: number };
}

const BUDGET_HEADER = 'x-latency-budget-ms';
/** Longest an isolate's start waits for the routing tables (see startIsolate). */
const ISOLATE_START_WAIT_MS = 500;
/** Longest a request waits for its model's routing store (see tableOf). */
const ROUTING_WAIT_MS = 20;
const MAX_BUDGET_MS = 60_000;
/** Times the routes accept, ms since the epoch: the range of a JS Date (ECMA-262 §21.4.1.22), so every one has an ISO form. */
export const MAX_TIME_MS = 8.64e15;

/**
 * When the worker received a request, and what its inference spent; keyed by the Context, the one
 * object every middleware and the handler share (bodyLimit replaces c.req.raw), so no route
 * needs typed variables for it.
 */
interface RequestClock {
  received: number;
  /** TELEMETRY_CLOCK=event: this request's x-event-time, the profiler's clock once it is sketched. */
  eventTime?: number;
  /** The isolate's start, waited for before `received` (its first requests only). */
  isolateMs?: number;
  /** Set by inference routes: the engine's share (queue and run together; the batcher does not report them apart). */
  engineMs?: number;
  /** Time spent waiting on the hosted fallback. */
  fallbackMs?: number;
  timed: boolean;
}
const clocks = new WeakMap<Context, RequestClock>();
const clockOf = (c: Context): RequestClock => {
  let k = clocks.get(c);
  if (!k) clocks.set(c, (k = { received: performance.now(), timed: false }));
  return k;
};

/**
 * Pages that must not be framed (clickjacking): CSP `frame-ancestors 'none'` and, for browsers
 * without CSP level 2, `X-Frame-Options: DENY`. A route that sets its own CSP (the dashboard pins
 * its inline script and style by hash) keeps it; others get PAGE_CSP.
 *
 * PAGE_CSP fits /demo: its script, the Web Worker and service worker are same-origin files,
 * onnxruntime-web compiles WebAssembly ('wasm-unsafe-eval'), it fetches only this origin; its one
 * inline <style> is allowed by hash (computed from the page at first use).
 */
const FRAMED_PAGES = new Set(['/demo', '/dashboard']);
const PAGE_CSP = (styleHashes: string[]) =>
  `default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; img-src 'self' data:; style-src ${styleHashes.length ? styleHashes.join(' ') : "'none'"}; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

async function sha256Source(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  let bin = '';
  for (const b of digest) bin += String.fromCharCode(b);
  return `'sha256-${btoa(bin)}'`;
}

/** The CSP hash sources of every inline <style> element of an HTML page. */
async function inlineStyleHashes(html: string): Promise<string[]> {
  return Promise.all([...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => sha256Source(m[1])));
}

/** Whether a path is under the Open Inference Protocol's prefix, whose error body is `{ "error": "<message>" }`. */
const isV2 = (path: string) => path === '/v2' || path.startsWith('/v2/');

/**
 * An error answer in the shape of the route's protocol: under /v2 `{ error: message, code,
 * field? }` (OIP: "error" is a string; extra members are allowed), elsewhere
 * `{ error: { code, message, field? } }`. `extra` holds further members (field, reason).
 */
export function errorJson(c: Context, status: number, code: string, message: string, extra: Record<string, unknown> = {}): Response {
  const defined = Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined));
  const body: ErrorBodyV1 | ErrorBodyV2 = isV2(c.req.path)
    ? ({ error: message, code, ...defined } satisfies ErrorBodyV2)
    : ({ error: { code, message, ...defined } } satisfies ErrorBodyV1);
  return c.json(body, status as ContentfulStatusCode);
}

/** Methods every path answers besides its routes': HEAD wherever GET is (Hono serves HEAD from GET), OPTIONS. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const num = (v: string | undefined, fallback: number, name: string) => configNumber(v, fallback, name);

/**
 * Early shedding for one isolate. An isolate runs one request's JavaScript at a time, so a request
 * arriving behind `inflight` others waits about inflight × gap, where gap is the EWMA of the time
 * between consecutive completions while other requests stayed in flight (1 / throughput under
 * load, whatever the requests wait on: Little's law). A lone request's latency is no sample: with
 * batching, concurrent requests complete far faster than one after another. When that wait alone exceeds the request's budget it is refused at once with
 * 503 and Retry-After, before its body is read, instead of queueing past its budget.
 *
 * It refuses nothing before `minSamples` gaps are measured nor below `minInflight` requests in
 * flight, so a lone caller (or a few) is never refused by it; refusals drain the isolate, and the
 * estimate is corrected by the completions that follow. In workerd the clock moves only across
 * I/O, so pure CPU work reads as gap 0 and sheds nothing (the batcher's deadline checks remain).
 */
export function createAdmission({
  minInflight = 8,
  minSamples = 16,
  alpha = 0.2,
  now = () => performance.now(),
}: {
  minInflight?: number;
  minSamples?: number;
  alpha?: number;
  now?: () => number;
} = {}) {
  let inflight = 0;
  let last: number | undefined;
  let gap = 0;
  let samples = 0;
  let shed = 0;
  return {
    /** The ms to suggest in Retry-After when a request with this budget must be refused now, else undefined. */
    refuse(budgetMs: number): number | undefined {
      if (inflight < minInflight || samples < minSamples) return undefined;
      const wait = inflight * gap;
      if (wait <= budgetMs) return undefined;
      shed++;
      return wait;
    },
    start(): void {
      inflight++;
    },
    done(): void {
      const t = now();
      if (last !== undefined) {
        gap = samples === 0 ? t - last : gap + alpha * (t - last - gap);
        samples++;
      }
      // The next completion is a sample only if the isolate stays busy until then.
      last = --inflight === 0 ? undefined : t;
    },
    stats: () => ({ inflight, gapMs: gap, samples, shed }),
  };
}

export function createApp({ models, createSession, servedBy: selfName = 'edge' }: AppOptions) {
  let runtime: Runtime | undefined;
  /** TELEMETRY_CLOCK=event: the newest x-event-time seen, the profiler's clock for replays. */
  let eventClock = Date.now();

  /** Per-isolate state, built from the environment on the first request. */
  function rt(env: Env): Runtime {
    if (runtime) return runtime;
    const mode = (env.BATCH_MODE ?? 'adaptive') as BatchMode;
    if (!['adaptive', 'fixed', 'off'].includes(mode)) throw new Error(`configuration BATCH_MODE=${mode} must be adaptive, fixed or off`);
    const config = {
      batchMode: mode,
      maxWaitMs: num(env.BATCH_MAX_WAIT_MS, 2, 'BATCH_MAX_WAIT_MS'),
      maxQueue: num(env.BATCH_MAX_QUEUE, 256, 'BATCH_MAX_QUEUE'),
      cacheBytes: num(env.CACHE_MAX_BYTES, 8 * 1024 * 1024, 'CACHE_MAX_BYTES'),
      cacheTtlMs: num(env.CACHE_TTL_MS, 60_000, 'CACHE_TTL_MS'),
    };
    const failLoad = new Set(
      (env.FAIL_MODEL_LOAD ?? '')
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    );
    const engines = new Map<string, ModelEngine>();
    const versions = new Map<string, Map<string, ModelEngine>>();
    for (const [name, m] of Object.entries(models)) {
      const byVersion = new Map<string, ModelEngine>();
      for (const [version, bytes] of [[m.manifest.version, m.artifact] as const, ...Object.entries(m.variants ?? {})]) {
        const artifact = () => {
          if (failLoad.has(name) || failLoad.has(`${name}@${version}`) || failLoad.has('*')) throw new Error('load failure injected by FAIL_MODEL_LOAD');
          return new Uint8Array(bytes);
        };
        const manifest = version === m.manifest.version ? m.manifest : { ...m.manifest, version };
        byVersion.set(
          version,
          createModelEngine({ manifest, artifact, createSession, batch: { mode, maxWaitMs: config.maxWaitMs, maxQueue: config.maxQueue } }),
        );
      }
      versions.set(name, byVersion);
      engines.set(name, byVersion.get(m.manifest.version)!);
    }
    // One client, and so one circuit breaker, per fallback target.
    const byUrl = new Map<string, FallbackClient>();
    const fallbacks = new Map<string, FallbackClient>();
    for (const name of Object.keys(models)) {
      const url = env[`FALLBACK_URL_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] ?? env.FALLBACK_URL;
      if (!url) continue;
      let client = byUrl.get(url);
      if (!client) {
        client = createFallbackClient({
          url,
          timeoutMs: num(env.FALLBACK_TIMEOUT_MS, 2000, 'FALLBACK_TIMEOUT_MS'),
          authorization: env.FALLBACK_AUTH || undefined,
          retries: num(env.FALLBACK_RETRIES, 1, 'FALLBACK_RETRIES'),
          breaker: createCircuitBreaker({
            failureThreshold: num(env.BREAKER_FAILURES, 5, 'BREAKER_FAILURES'),
            windowMs: num(env.BREAKER_WINDOW_MS, 10_000, 'BREAKER_WINDOW_MS'),
            openMs: num(env.BREAKER_OPEN_MS, 5000, 'BREAKER_OPEN_MS'),
          }),
        });
        byUrl.set(url, client);
      }
      fallbacks.set(name, client);
    }
    const clock = env.TELEMETRY_CLOCK ?? 'wall';
    if (clock !== 'wall' && clock !== 'event') throw new Error(`configuration TELEMETRY_CLOCK=${clock} must be wall or event`);
    const hedge = env.HEDGE_QUANTILE ? num(env.HEDGE_QUANTILE, 0.95, 'HEDGE_QUANTILE') : undefined;
    if (hedge !== undefined && !(hedge > 0 && hedge < 1)) throw new Error(`configuration HEDGE_QUANTILE=${hedge} must be in (0, 1)`);
    runtime = {
      engines,
      versions,
      routing: new Map(),
      shadows: new Map(),
      served: new Map(),
      flushing: false,
      profiler:
        env.TELEMETRY === 'off'
          ? undefined
          : createWindowProfiler({
              source: { kind: 'edge', id: `${selfName}-${crypto.randomUUID().slice(0, 8)}` },
              windowMs: num(env.TELEMETRY_WINDOW_MS, 5000, 'TELEMETRY_WINDOW_MS'),
              maxRows: num(env.TELEMETRY_MAX_ROWS, 2000, 'TELEMETRY_MAX_ROWS'),
              align: true,
              ...(clock === 'event' ? { now: () => eventClock } : {}),
            }),
      config,
      cache: config.cacheBytes > 0 ? createCache({ maxBytes: config.cacheBytes, ttlMs: config.cacheTtlMs }) : undefined,
      fallbacks,
      latency: new Map([...engines.keys()].map((k) => [k, new TDigest({ compression: 50 })])),
      hedgeQuantile: hedge,
    };
    return runtime;
  }

  const app = new Hono<{ Bindings: Env }>();
  const admission = createAdmission();

  /**
   * The first middleware: the request's clock starts here, before any body is read, so budgets
   * and Server-Timing count the worker's whole time. After the first answer of an isolate, every
   * stable engine starts loading in the background (warm), so a cold load is on no later
   * request's clock.
   */
  let warmed = false;
  let inflight = 0;
  let idleWaiters: (() => void)[] = [];
  const pageCsp = new Map<string, Promise<string>>();
  app.use('*', async function clock(c, next) {
    const k = clockOf(c);
    // The isolate's first requests wait for its start (see startIsolate), which is not theirs to pay.
    if (!started && c.env) {
      const t = performance.now();
      await (starting ??= startIsolate(c).finally(() => (started = true)));
      k.isolateMs = performance.now() - t;
      k.received = performance.now();
    }
    // Received during a warm load (its async steps let requests in): the load is not this
    // request's to pay, so its clock starts when the load is done.
    if (warming) {
      await warming;
      k.received = performance.now();
    }
    inflight++;
    try {
      await next();
    } finally {
      if (--inflight === 0) {
        const waiters = idleWaiters;
        idleWaiters = [];
        for (const w of waiters) w();
      }
    }
    if (FRAMED_PAGES.has(c.req.path) && c.res.headers.get('content-type')?.startsWith('text/html')) {
      const h = c.res.headers;
      if (!h.has('content-security-policy')) {
        let csp = pageCsp.get(c.req.path);
        if (!csp) pageCsp.set(c.req.path, (csp = c.res.clone().text().then(inlineStyleHashes).then(PAGE_CSP)));
        h.set('content-security-policy', await csp);
      }
      h.set('x-frame-options', 'DENY');
      h.set('x-content-type-options', 'nosniff');
    }
    if (k.timed) c.res.headers.set('server-timing', serverTiming(k));
    // Without bindings (app.request with no env) there is no runtime to warm.
    if (!warmed && c.env) {
      warmed = true;
      warm(c, () => [...rt(c.env).engines.values()]);
    }
  });

  /**
   * An isolate's start, once, before its first request is timed: the runtime built from the
   * environment, each model's request path run once on a made-up instance (validation, encoding,
   * keys, sketching: the first run of this code costs tens of ms, JIT and lazy setup), and the
   * routing tables read (a Durable Object that starts, tens of ms more under wrangler dev, where it
   * shares this thread). Measured on the cold first request through wrangler dev: 75 ms of this
   * before its engine or fallback was called, against a 50 ms budget. Engines load later (warm).
   */
  let started = false;
  let starting: Promise<void> | undefined;
  async function startIsolate(c: Context<{ Bindings: Env }>): Promise<void> {
    const r = rt(c.env);
    for (const e of r.engines.values()) {
      try {
        const m = e.manifest;
        const enc = encodeInstances(m, JSON.parse(JSON.stringify({ instances: [sampleInstance(m)] })));
        canonicalKey(enc.observed);
        r.profiler && observedFromFeeds(m, enc.feeds, enc.rows);
      } catch (err) {
        console.error('isolate start: the request path of a model did not run', err);
      }
    }
    const reads = [...r.engines.values()].map((e) => tableOf(c, e).catch(() => undefined));
    await Promise.race([Promise.all(reads), new Promise((res) => setTimeout(res, ISOLATE_START_WAIT_MS))]);
  }

  /**
   * Loads engines in the background, one at a time, each only once no request is in flight:
   * creating a session blocks the isolate for most of its length, and a request that arrives
   * meanwhile is received (its clock starts) only after it, and so is one that arrives during
   * an await of the load (see the clock middleware). No request is in flight when a load starts.
   */
  let warming: Promise<void> | undefined;
  function warm(c: Context<{ Bindings: Env }>, engines: () => ModelEngine[]): void {
    const work = (async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 0));
        if (inflight > 0) {
          await new Promise<void>((r) => idleWaiters.push(r));
          continue;
        }
        const e = engines().find((x) => x.status().state === 'unloaded');
        if (!e) return;
        // A failure is remembered by the engine (status 'failed'); requests take their fallback path.
        warming = e.load().catch(() => undefined);
        await warming;
        warming = undefined;
      }
    })();
    work.catch((err) => console.error('warm-up failed', err));
    try {
      c.executionCtx.waitUntil(work);
    } catch {
      // No execution context (app.request in tests, Node): the promise runs anyway.
    }
  }

  app.onError((err, c) => errorResponse(c, err));

  // Which methods a path is served for: Hono's own matcher over the routes (middleware left out),
  // built at the first miss, when every route is registered.
  let methodsRouter: TrieRouter<string> | undefined;
  const allowedMethods = (path: string): string[] => {
    if (!methodsRouter) {
      methodsRouter = new TrieRouter<string>();
      for (const r of app.routes) if (r.method !== 'ALL') methodsRouter.add(r.method, r.path, r.method);
    }
    const served = new Set<string>();
    for (const m of METHODS) if (methodsRouter.match(m, path)[0].length > 0) served.add(m);
    if (served.size === 0) return [];
    if (served.has('GET')) served.add('HEAD');
    served.add('OPTIONS');
    return METHODS.filter((m) => served.has(m));
  };
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length === 0) return errorJson(c, 404, 'not_found', `no route for ${c.req.path}`);
    c.header('Allow', allow.join(', '));
    if (c.req.method === 'OPTIONS') return c.body(null, 204);
    return errorJson(c, 405, 'method_not_allowed', `${c.req.path} answers ${allow.join(', ')}, not ${c.req.method}`, { field: 'method' });
  });

  // The inference API answers pages on any origin (no cookies are involved): the browser
  // runtime's edge step, and apps that call the edge directly. Operator routes do not.
  const publicApi = cors({
    origin: '*',
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    allowHeaders: ['content-type', 'x-latency-budget-ms', 'x-user-key'],
    exposeHeaders: ['x-served-by', 'x-model-version', 'retry-after'],
    maxAge: 600,
  });
  app.use('/v2/*', publicApi);
  app.use('/v1/models/:name/predict', publicApi);

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  // --- Open Inference Protocol: health and metadata --------------------------------------
  app.get('/v2', (c) => c.json({ name: 'driftwatch-edge', version: '0.1.0', extensions: [] }));
  app.get('/v2/health/live', (c) => c.json({ live: true }));
  app.get('/v2/health/ready', async (c) => {
    const { engines } = rt(c.env);
    const statuses = new Map<string, unknown>();
    let ready = true;
    for (const [name, e] of engines) {
      await e.load().catch(() => undefined);
      const s = e.status();
      // Public: the state only; why a load failed is for operators (/v1/models/{name}/stats).
      statuses.set(name, { state: s.state });
      ready &&= s.state === 'ready';
    }
    const models = Object.fromEntries(statuses);
    // OIP: "200 indicates ready, 4xx indicates not ready" (as Triton: 400).
    return c.json({ ready, models }, ready ? 200 : 400);
  });

  /**
   * The model named in the path, and the version when the path names one: any deployed version
   * (the manifest's and its variants), looked up in Maps only. Without a version, the manifest's
   * (the routing table may then send the request to another, see pick).
   */
  const engineOf = (c: Context<{ Bindings: Env }>): ModelEngine => {
    const name = c.req.param('name')!;
    const r = rt(c.env);
    const e = r.engines.get(name);
    if (!e) throw new ValidationError(`unknown model ${JSON.stringify(name)} (serving ${[...r.engines.keys()].join(', ')})`, 'name', 404, 'model_not_found');
    const version = c.req.param('version');
    if (version === undefined) return e;
    const byVersion = r.versions.get(name)!;
    const pinned = byVersion.get(version);
    if (!pinned)
      throw new ValidationError(
        `model "${name}" has no version ${JSON.stringify(version)} (deployed: ${[...byVersion.keys()].join(', ')})`,
        'version',
        404,
        'version_not_found',
      );
    return pinned;
  };

  const metadata = (c: Context<{ Bindings: Env }>, m: ModelManifest) => ({
    name: m.name,
    // OIP: "the model versions that may be explicitly requested via the appropriate endpoint".
    versions: [...rt(c.env).versions.get(m.name)!.keys()],
    platform: 'onnxruntime_onnx',
    inputs: m.inputs.map((i) => ({ name: i.name, datatype: V2_DATATYPE[i.dtype], shape: i.shape.map((d) => (typeof d === 'number' ? d : -1)) })),
    outputs: m.outputs.map((o) => ({ name: o.name, datatype: V2_DATATYPE[o.dtype], shape: o.shape.map((d) => (typeof d === 'number' ? d : -1)) })),
  });
  app.get('/v2/models/:name', (c) => c.json(metadata(c, engineOf(c).manifest)));
  app.get('/v2/models/:name/versions/:version', (c) => c.json(metadata(c, engineOf(c).manifest)));
  /**
   * OIP model ready: "200 indicates model ready, 4xx indicates not ready" (Triton answers 400).
   * A model that failed to load says why in `error`, the OIP error member (a string).
   */
  const readyRoute = async (c: Context<{ Bindings: Env }>) => {
    const e = engineOf(c);
    await e.load().catch(() => undefined);
    const s = e.status();
    const ready = s.state === 'ready';
    return c.json(
      {
        name: e.manifest.name,
        version: e.manifest.version,
        ready,
        ...(s.state === 'failed'
          ? {
              error: `model ${e.manifest.name} version ${e.manifest.version} failed to load (operators: see /v1/models/${e.manifest.name}/stats)`,
              code: 'model_unavailable',
            }
          : ready
            ? {}
            : { error: `model ${e.manifest.name} version ${e.manifest.version} is ${s.state}`, code: 'model_not_ready' }),
      },
      ready ? 200 : 400,
    );
  };
  app.get('/v2/models/:name/ready', readyRoute);
  app.get('/v2/models/:name/versions/:version/ready', readyRoute);

  // --- Inference -------------------------------------------------------------------------
  const limit = bodyLimit({
    maxSize: 256 * 1024,
    onError: (c) => errorJson(c, 413, 'body_too_large', 'request body exceeds 262144 bytes', { field: 'body' }),
  });

  /**
   * The JSON body. A content-type, when given, must be the media type application/json, with
   * parameters or not (RFC 9110 §8.3.1: type and subtype are case-insensitive); "text/json-ish"
   * or "application/jsonp" are not it.
   */
  async function body(c: Context<{ Bindings: Env }>): Promise<unknown> {
    const type = c.req.header('content-type');
    if (type && !/^application\/json[ \t]*(;.*)?$/is.test(type.trim())) {
      throw new ValidationError(
        `content-type must be application/json, got ${JSON.stringify(type.slice(0, 100))}`,
        'content-type',
        400,
        'unsupported_media_type',
      );
    }
    try {
      return await c.req.json();
    } catch {
      throw new ValidationError('the body is not valid JSON', 'body', 400, 'invalid_json');
    }
  }

  /** The request's budget and its deadline, counted from when the worker received it (clock middleware). */
  function deadline(c: Context<{ Bindings: Env }>, m: ModelManifest): { budgetMs: number; deadline: number } {
    const h = c.req.header(BUDGET_HEADER);
    let budgetMs = m.serving.defaultLatencyBudgetMs;
    if (h !== undefined) {
      // Decimal milliseconds only (Number() would also read "0x20", "1e3" or " 5 ").
      budgetMs = /^\d+(\.\d+)?$/.test(h) ? Number(h) : NaN;
      if (!Number.isFinite(budgetMs) || budgetMs <= 0 || budgetMs > MAX_BUDGET_MS) {
        throw new ValidationError(`${BUDGET_HEADER} must be a number of milliseconds in (0, ${MAX_BUDGET_MS}], got ${JSON.stringify(h)}`, BUDGET_HEADER);
      }
    }
    return { budgetMs, deadline: clockOf(c).received + budgetMs };
  }

  /** The model's routing table: from its RoutingStore, cached per isolate for 5 s. */
  /** Reads of each model's RoutingStore in flight: one at a time, shared by the requests that wait for it. */
  const tableReads = new Map<string, Promise<RoutingTable | undefined>>();

  /**
   * The model's routing table: from its RoutingStore, cached per isolate for 5 s. A request waits
   * for the store at most `waitMs` (a part of its budget): a cold store (its object starting, tens
   * of ms under load) must not spend a request's budget, so past that the request goes on with the
   * last table known (the default one if none), and the read completes in the background for the
   * requests that follow. An unreachable store keeps the last table as well.
   */
  async function tableOf(c: Context<{ Bindings: Env }>, e: ModelEngine, waitMs = Infinity): Promise<RoutingTable> {
    const r = rt(c.env);
    const name = e.manifest.name;
    const cached = r.routing.get(name);
    if (cached && cached.until > Date.now()) return cached.table;
    const fallback: RoutingTable = cached?.table ?? { stable: e.manifest.version };
    const store = c.env.ROUTING;
    if (!store) return remember(c, r, name, fallback);
    let read = tableReads.get(name);
    if (!read) {
      read = store
        .get(store.idFromName(name))
        .getTable()
        .then((stored) => remember(c, r, name, stored.table ?? { stable: e.manifest.version }))
        .catch((err) => {
          console.error('routing table unavailable', err);
          remember(c, r, name, fallback);
          return undefined;
        })
        .finally(() => tableReads.delete(name));
      tableReads.set(name, read);
      try {
        c.executionCtx.waitUntil(read);
      } catch {
        // No execution context (tests calling app.request, or Node): the read runs anyway.
      }
    }
    if (waitMs === Infinity) return (await read) ?? fallback;
    let timer: unknown;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, Math.max(0, waitMs))));
    try {
      return (await Promise.race([read, late])) ?? fallback;
    } finally {
      clearTimeout(timer as Parameters<typeof clearTimeout>[0]);
    }
  }

  function remember(c: Context<{ Bindings: Env }>, r: Runtime, name: string, table: RoutingTable): RoutingTable {
    r.routing.set(name, { table, until: Date.now() + 5000 });
    // A table may make another deployed version stable: it is warmed like the default one.
    const stable = r.versions.get(name)?.get(table.stable);
    if (stable && stable.status().state === 'unloaded') warm(c, () => [stable]);
    return table;
  }

  /**
   * The engine (version) that serves this caller: the path's version when it names one (exactly
   * that version: no canary assignment, no shadows), else by the routing table, sticky by
   * x-user-key, else by the request.
   */
  async function pick(
    c: Context<{ Bindings: Env }>,
    e: ModelEngine,
    requestKey: string,
    dl: number,
  ): Promise<{ engine: ModelEngine; key: string; table: RoutingTable | undefined }> {
    if (c.req.param('version') !== undefined) return { engine: e, key: requestKey, table: undefined };
    // At most a fifth of the budget left, and 20 ms, on the routing store.
    const table = await tableOf(c, e, Math.min(ROUTING_WAIT_MS, (dl - performance.now()) / 5));
    const key = c.req.header('x-user-key') ?? requestKey;
    const version = assignVersion(table, key);
    const engine = rt(c.env).versions.get(e.manifest.name)?.get(version) ?? e;
    return { engine, key, table };
  }

  function countServed(c: Context<{ Bindings: Env }>, model: string, version: string): void {
    const m = rt(c.env).served;
    if (!m.has(model)) m.set(model, new Map());
    const v = m.get(model)!;
    v.set(version, (v.get(version) ?? 0) + 1);
  }

  /**
   * Sketches a served request into the isolate's window profile and, in waitUntil, ships the
   * windows that are due to the model's DriftAggregator. A failed shipment stays in the outbox
   * and goes again with the same sequence (the aggregator deduplicates); nothing here can delay
   * or fail the request.
   */
  function telemetry(
    c: Context<{ Bindings: Env }>,
    m: ModelManifest,
    version: string,
    observed: ReturnType<typeof observedFromFeeds>,
    predictions: Record<string, unknown>[],
    latencyMs: number,
    outcome: string,
  ): void {
    const r = rt(c.env);
    if (!r.profiler) return;
    const at = clockOf(c).eventTime;
    if (at !== undefined) eventClock = at;
    try {
      r.profiler.observe(
        m,
        version,
        observed.map((features, i) => ({ features, outputs: (predictions[i] ?? {}) as Record<string, number> })),
        latencyMs,
        outcome as Outcome,
      );
      r.profiler.tick();
    } catch (err) {
      console.error('telemetry: cannot sketch', err);
      return;
    }
    if (r.flushing || !c.env.AGGREGATOR || r.profiler.stats().outbox === 0) return;
    r.flushing = true;
    const agg = c.env.AGGREGATOR;
    const profiler = r.profiler;
    const work = (async () => {
      try {
        // Rounds of one ingestMany call per model's aggregator for everything due, until nothing
        // is left (windows that closed during a round go in the next) or a call fails.
        for (let round = 0, failed = false; round < 4 && !failed && profiler.stats().outbox > 0; round++) {
          const byModel = new Map<string, ReturnType<typeof profiler.take>>();
          for (const s of profiler.take()) {
            if (!byModel.has(s.model)) byModel.set(s.model, []);
            byModel.get(s.model)!.push(s);
          }
          for (const [model, batch] of byModel) {
            try {
              const results = await agg.get(agg.idFromName(model)).ingestMany(
                model,
                batch.map((s) => s.bytes),
              );
              for (const res of results) if (res.status === 'rejected') console.error(`telemetry: aggregator refused a summary: ${res.reason}`);
              profiler.ack(batch);
            } catch (err) {
              // These may or may not have landed: they stay in flight and go again with the
              // same sequences at the next flush (the aggregator deduplicates).
              console.error('telemetry: flush failed, will retry', err);
              failed = true;
            }
          }
        }
      } finally {
        r.flushing = false;
      }
    })();
    try {
      c.executionCtx.waitUntil(work);
    } catch {
      // No execution context (tests, Node): the work runs anyway.
    }
  }

  /**
   * Runs the shadow versions on the same request after the response is sent (waitUntil): they
   * never delay or change it and never use the caller's budget. Their agreement with the served
   * output is recorded per version; a shadow that fails is counted and harms nothing.
   */
  function shadow(
    c: Context<{ Bindings: Env }>,
    e: ModelEngine,
    table: RoutingTable | undefined,
    key: string,
    served: string,
    req: EngineRequest,
    outputs: Record<string, Tensor>,
  ): void {
    if (!table) return;
    const names = shadowVersions(table, key, served);
    if (names.length === 0) return;
    const r = rt(c.env);
    const model = e.manifest.name;
    const work = (async () => {
      // The served inputs as the profiles name them, once for every shadow version.
      const observed = r.profiler ? observedFromFeeds(e.manifest, req.feeds, req.rows) : [];
      for (const v of names) {
        const engine = r.versions.get(model)?.get(v);
        if (!engine) continue;
        if (!r.shadows.has(model)) r.shadows.set(model, new Map());
        const byV = r.shadows.get(model)!;
        if (!byV.has(v))
          byV.set(v, { runs: 0, errors: 0, sameClass: 0, scoreDiff: new TDigest({ compression: 50 }), overlap: new TDigest({ compression: 50 }) });
        const st = byV.get(v)!;
        st.runs++;
        const t0 = performance.now();
        try {
          const out = await engine.infer(req);
          const agreement = compare(e.manifest, outputs, out, st);
          // The shadow's own profile: its outputs on the served inputs, and how often it agrees.
          const predictions = toPredictions(e.manifest, out, req.rows);
          r.profiler?.observe(
            engine.manifest,
            v,
            observed.map((features, i) => ({ features, outputs: (predictions[i] ?? {}) as Record<string, number> })),
            performance.now() - t0,
            'shadow',
            agreement,
          );
        } catch {
          st.errors++;
          r.profiler?.observe(
            engine.manifest,
            v,
            observed.map((features) => ({ features, outputs: {} })),
            performance.now() - t0,
            'shadow',
            { errors: 1 },
          );
        }
      }
    })();
    try {
      c.executionCtx.waitUntil(work);
    } catch {
      // No execution context (app.request in tests, Node): the work runs anyway.
    }
  }

  /**
   * Runs a request on the edge engine, and on the hosted fallback when the edge cannot serve
   * it (load failure, refused for its deadline, overloaded, or an engine error), with the
   * budget that is left. With hedging on, a request the edge has not answered by the hedge
   * quantile of its own latency goes to the fallback too, and the first answer wins.
   */
  async function serve(
    c: Context<{ Bindings: Env }>,
    e: ModelEngine,
    req: EngineRequest,
    dl: number,
  ): Promise<{ outputs: Record<string, Tensor>; servedBy: string }> {
    const r = rt(c.env);
    const name = e.manifest.name;
    const fallback = r.fallbacks.get(name);
    const digest = r.latency.get(name)!;
    const t0 = performance.now();
    // A cold engine (first request in this isolate) takes hundreds of ms to load, more than a
    // typical budget: with a fallback configured, this request goes there at once while the
    // engine loads in the background; without one, it waits for the load.
    const state = e.status().state;
    if (fallback && state !== 'ready' && state !== 'failed') {
      // Creating the session blocks the isolate for its whole length, so it starts only once
      // the fallback has answered (in a later task, after this response is on its way).
      const answer = viaFallbackFirst(e, req, dl, fallback);
      const loading = answer
        .catch(() => undefined)
        .then(() => new Promise((r) => setTimeout(r, 0)))
        .then(() => e.load())
        .catch(() => undefined);
      try {
        c.executionCtx.waitUntil(loading);
      } catch {
        // No execution context (tests calling app.request, or Node): the promise runs anyway.
      }
      return answer;
    }
    if (!fallback && state !== 'ready' && state !== 'failed') {
      // Nothing else can answer: the cold load is not the request's fault, so its time is not
      // taken from the request's budget.
      const t = performance.now();
      await e.load().catch(() => undefined);
      dl += performance.now() - t;
    }
    // Spent before it reached the engine (waiting behind other requests' work): refused now,
    // neither queued nor sent to the fallback with no time left.
    if (performance.now() >= dl) throw new DeadlineError('the latency budget was spent before the request reached the engine', 1000);
    const edge = e.infer(req, { deadline: dl }).then((outputs) => {
      digest.add(Math.max(0, performance.now() - t0));
      return { outputs, servedBy: selfName };
    });
    const viaFallback = async (edgeError?: unknown) => {
      if (!fallback) throw edgeError;
      try {
        return { outputs: await fallback.infer(e.manifest, req, dl - performance.now()), servedBy: 'fallback' };
      } catch (fe) {
        if (edgeError === undefined) throw fe;
        const why = (x: unknown) => (x instanceof Error ? x.message : String(x));
        throw new FallbackError(
          `the edge could not serve (${why(edgeError)}) and neither could the fallback (${why(fe)})`,
          fe instanceof FallbackError ? fe.reason : 'upstream',
          Math.max(fe instanceof FallbackError ? fe.retryAfterMs : 1000, retryMs(edgeError)),
          { cause: fe },
        );
      }
    };
    const onEdgeError = (err: unknown) => {
      if (err instanceof ValidationError) throw err;
      return viaFallback(err);
    };
    if (!fallback || r.hedgeQuantile === undefined || digest.count < 50) return edge.catch(onEdgeError);
    // Hedged: race the edge against a delayed fallback call.
    const delay = Math.max(1, digest.quantile(r.hedgeQuantile));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hedged = new Promise<{ outputs: Record<string, Tensor>; servedBy: string }>((resolve, reject) => {
      timer = setTimeout(() => viaFallback().then(resolve, reject), delay);
    });
    const edgeOrFallback = edge.catch((err) => {
      clearTimeout(timer);
      return onEdgeError(err);
    });
    try {
      return await Promise.any([edgeOrFallback, hedged]);
    } catch (agg) {
      throw (agg as AggregateError).errors?.[0] ?? agg;
    } finally {
      clearTimeout(timer);
    }
  }

  async function viaFallbackFirst(e: ModelEngine, req: EngineRequest, dl: number, fallback: FallbackClient) {
    return { outputs: await fallback.infer(e.manifest, req, dl - performance.now()), servedBy: 'fallback' };
  }

  /**
   * Inference admission (see createAdmission), before the body is read. A name or budget header
   * that is not valid is left to the route to refuse.
   */
  const shed = async (c: Context<{ Bindings: Env }>, next: () => Promise<void>) => {
    const e = rt(c.env).engines.get(c.req.param('name') ?? '');
    const header = Number(c.req.header(BUDGET_HEADER));
    const budgetMs = Number.isFinite(header) && header > 0 ? header : e?.manifest.serving.defaultLatencyBudgetMs;
    const wait = budgetMs === undefined ? undefined : admission.refuse(budgetMs - (performance.now() - clockOf(c).received));
    if (wait !== undefined)
      throw new OverloadedError(`this edge is busy: about ${Math.ceil(wait)} ms of requests are ahead of this one, over its budget`, wait);
    admission.start();
    try {
      await next();
    } finally {
      admission.done();
    }
  };

  /** serve(), timed for Server-Timing: the engine's share (queue and run) or the fallback's. */
  async function timedServe(
    c: Context<{ Bindings: Env }>,
    e: ModelEngine,
    req: EngineRequest,
    dl: number,
  ): Promise<{ outputs: Record<string, Tensor>; servedBy: string }> {
    const k = clockOf(c);
    k.timed = true;
    const t = performance.now();
    let servedBy = selfName;
    try {
      const served = await serve(c, e, req, dl);
      servedBy = served.servedBy;
      return served;
    } finally {
      const ms = performance.now() - t;
      if (servedBy === 'fallback') k.fallbackMs = (k.fallbackMs ?? 0) + ms;
      else k.engineMs = (k.engineMs ?? 0) + ms;
    }
  }

  const infer = async (c: Context<{ Bindings: Env }>) => {
    clockOf(c).timed = true;
    const started = clockOf(c).received;
    const e = engineOf(c);
    const m = e.manifest;
    const req = decodeV2Inputs(m, await body(c));
    const { deadline: dl } = deadline(c, m);
    const { cache } = rt(c.env);
    const key = `v2|${m.name}@${m.version}|${canonicalKey({ i: Object.fromEntries(Object.entries(req.feeds).map(([k, t]) => [k, [t.dims, t.data]])), o: req.outputs ?? null })}`;
    const route = await pick(c, e, key, dl);
    const version = route.engine.manifest.version;
    const versionKey = `${key}|${version}`;
    let servedBy = 'cache';
    let outputs = cache?.get(versionKey) as Record<string, Tensor> | undefined;
    if (!outputs) {
      const engineReq = { rows: req.rows, feeds: req.feeds, params: paramsOf(m, req.feeds) };
      const served = await timedServe(c, route.engine, engineReq, dl);
      outputs = served.outputs;
      servedBy = served.servedBy;
      cache?.set(
        versionKey,
        outputs,
        Object.values(outputs).reduce((a, t) => a + t.data.byteLength, 0),
      );
      shadow(c, e, route.table, route.key, version, engineReq, outputs);
    }
    countServed(c, m.name, version);
    telemetry(c, m, version, observedFromFeeds(m, req.feeds, req.rows), toPredictions(m, outputs, req.rows), performance.now() - started, servedBy);
    const wanted = req.outputs ?? m.outputs.map((o) => o.name);
    c.header('x-served-by', servedBy);
    c.header('x-model-version', version);
    return c.json({
      model_name: m.name,
      model_version: version,
      ...(req.id !== undefined ? { id: req.id } : {}),
      parameters: { served_by: servedBy },
      outputs: wanted.map((name) => {
        const t = outputs[name]; // proto-safe: `wanted` holds manifest output names (decodeV2Inputs checks the client's)
        return { name, datatype: V2_DATATYPE[t.dtype], shape: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
      }),
    });
  };
  /**
   * TELEMETRY_CLOCK=event (replays): the request's x-event-time (ISO date or ms since the epoch)
   * becomes the profiler's clock, so its rows land in windows of their own time. A malformed one
   * is a 400; elsewhere the header is ignored.
   */
  const eventTime = async (c: Context<{ Bindings: Env }>, next: () => Promise<void>) => {
    const raw = c.req.header('x-event-time');
    if (raw !== undefined && c.env.TELEMETRY_CLOCK === 'event') {
      const t = instant(raw);
      if (!Number.isFinite(t) || t < 0 || t > Date.now() + 5 * 60_000)
        throw new ValidationError(
          `x-event-time must be an ISO date or ms since the epoch, not in the future; got ${JSON.stringify(raw.slice(0, 64))}`,
          'x-event-time',
        );
      // The clock moves only when this request is sketched (telemetry()): a request refused for
      // its body or its model must not move the isolate's windows.
      clockOf(c).eventTime = t;
    }
    await next();
  };
  app.post('/v2/models/:name/infer', shed, limit, eventTime, infer);
  app.post('/v2/models/:name/versions/:version/infer', shed, limit, eventTime, infer);

  app.post('/v1/models/:name/predict', shed, limit, eventTime, async (c) => {
    clockOf(c).timed = true;
    const started = clockOf(c).received;
    const e = engineOf(c);
    const m = e.manifest;
    const raw = await body(c);
    const enc = encodeInstances(m, raw);
    const { deadline: dl } = deadline(c, m);
    const { cache } = rt(c.env);
    const instances = (raw as { instances: unknown[] }).instances;
    const route = await pick(c, e, canonicalKey(instances), dl);
    const version = route.engine.manifest.version;
    const keys = instances.map((inst) => `v1|${m.name}@${version}|${canonicalKey({ inst, p: enc.params })}`);
    const predictions: unknown[] = keys.map((k) => cache?.get(k));
    const missing = predictions.flatMap((p, i) => (p === undefined ? [i] : []));
    let servedBy = 'cache';
    if (missing.length) {
      const sub = missing.length === enc.rows ? enc : subset(m, enc, missing);
      const engineReq = { rows: sub.rows, feeds: sub.feeds, params: enc.params };
      const served = await timedServe(c, route.engine, engineReq, dl);
      servedBy = served.servedBy;
      shadow(c, e, route.table, route.key, version, engineReq, served.outputs);
      const preds = toPredictions(m, served.outputs, sub.rows);
      missing.forEach((i, j) => {
        predictions[i] = preds[j];
        cache?.set(keys[i], preds[j], JSON.stringify(preds[j]).length);
      });
    }
    countServed(c, m.name, version);
    telemetry(c, m, version, enc.observed, predictions as Record<string, unknown>[], performance.now() - started, servedBy);
    c.header('x-served-by', servedBy);
    c.header('x-model-version', version);
    return c.json({ predictions, model_version: version, served_by: servedBy });
  });

  // Benchmarks only (BENCH_ROUTES=1): time direct session runs of the posted instances inside
  // this isolate, so that ort-web in workerd can be compared with onnxruntime-node.
  app.post('/v1/models/:name/bench', limit, async (c) => {
    if (c.env.BENCH_ROUTES !== '1') return errorJson(c, 404, 'not_found', 'bench routes are off (BENCH_ROUTES=1 turns them on)');
    const e = engineOf(c);
    const raw = (await body(c)) as { instances?: unknown; runs?: unknown };
    const runs = Number(raw.runs ?? 200);
    if (!Number.isInteger(runs) || runs < 1 || runs > 100_000) throw new ValidationError('runs must be an integer in [1, 100000]', 'runs');
    const enc = encodeInstances(e.manifest, { instances: raw.instances }, { maxBatch: 1024 });
    const concurrency = Number((raw as { concurrency?: unknown }).concurrency ?? 0);
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

  // --- Routes kept in their own modules -------------------------------------------------------
  mountDashboard(app);
  mountBrowserRoutes(app, { models });
  mountBenchRoutes(app, { models });

  // --- Operators: routing tables (canary and shadow) ----------------------------------------
  // Every operator route needs the operator token (worker/auth.ts: constant-time, any case of "Bearer").
  const operator = checkOperator;
  app.get('/v1/models/:name/routing', async (c) => {
    operator(c);
    const e = engineOf(c);
    const versions = [...rt(c.env).versions.get(e.manifest.name)!.keys()];
    const stored = c.env.ROUTING ? await c.env.ROUTING.get(c.env.ROUTING.idFromName(e.manifest.name)).getTable() : { table: null, updatedAt: null };
    return c.json({
      model: e.manifest.name,
      versions,
      table: stored.table ?? { stable: e.manifest.version },
      updated_at: stored.updatedAt,
      default: stored.table === null,
    });
  });
  app.put('/v1/models/:name/routing', limit, async (c) => {
    operator(c);
    const e = engineOf(c);
    const versions = [...rt(c.env).versions.get(e.manifest.name)!.keys()];
    const table = validateRoutingTable(await body(c), versions);
    if (!c.env.ROUTING) throw new ValidationError('no routing store is bound (ROUTING)', 'ROUTING', 404, 'routing_unavailable');
    const { updatedAt } = await c.env.ROUTING.get(c.env.ROUTING.idFromName(e.manifest.name)).putTable(table);
    rt(c.env).routing.set(e.manifest.name, { table, until: Date.now() + 5000 });
    return c.json({ model: e.manifest.name, table, updated_at: updatedAt });
  });

  /** `from` and `to` of an operator query: times (see time()), to defaulting to a minute ahead, from to a day before to. */
  const range = (c: Context<{ Bindings: Env }>) => {
    const q = (k: string) => {
      const v = c.req.query(k);
      return v === undefined ? undefined : time(v, k);
    };
    const to = q('to') ?? Math.min(MAX_TIME_MS, Date.now() + 60_000);
    const from = q('from') ?? Math.max(0, to - 24 * 3600_000);
    if (!(from < to)) throw new ValidationError('from must be before to', 'from');
    return { from, to };
  };

  // --- Operators: drift against the training baseline ---------------------------------------
  const baselines = new Map<string, Profile>();
  const baselineOf = (name: string): Profile => {
    let b = baselines.get(name);
    // proto-safe: `name` is a served manifest's name (engineOf found it in the engines Map)
    if (!b) baselines.set(name, (b = decodeSummary(new Uint8Array(models[name].baseline))));
    return b;
  };
  const describeSketch = (s: Sketch) =>
    s instanceof TDigest
      ? {
          kind: 'numeric',
          count: s.count,
          min: s.count ? s.min : null,
          max: s.count ? s.max : null,
          p05: s.count ? s.quantile(0.05) : null,
          p50: s.count ? s.quantile(0.5) : null,
          p95: s.count ? s.quantile(0.95) : null,
        }
      : s instanceof CategoricalSketch
        ? { kind: 'categorical', count: s.count, top: s.top(10) }
        : { kind: 'histogram', count: s.count };
  app.get('/v1/models/:name/drift', async (c) => {
    operator(c);
    const e = engineOf(c);
    const m = e.manifest;
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    const { from, to } = range(c);
    const step = c.req.query('step') === undefined ? to - from : duration(c.req.query('step')!, 'step');
    if (!(step >= 60_000) || (to - from) / step > 500) throw new ValidationError('step must be at least 60000 ms and give at most 500 windows', 'step');
    const version = c.req.query('version');
    // The reference: the baseline in force (training, or an operator's re-baseline), or a moving
    // one: the same window a day or a week earlier, or the window just before.
    // A moving reference before the epoch has no data: its windows compare against nothing.
    const reference = c.req.query('reference') ?? 'baseline';
    const shifts = new Map<string, ((t: number) => number) | undefined>([
      ['baseline', undefined],
      ['previous_day', (t) => Math.max(0, t - 86_400_000)],
      ['previous_week', (t) => Math.max(0, t - 7 * 86_400_000)],
      ['previous_window', (t) => Math.max(0, t - step)],
    ]);
    if (!shifts.has(reference))
      throw new ValidationError(`reference must be one of ${[...shifts.keys()].join(', ')}; got ${JSON.stringify(reference.slice(0, 64))}`, 'reference');
    const shift = shifts.get(reference);
    const agg = c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(m.name));
    const inForce = await agg.baseline(m.name);
    const baseline = inForce.training ? baselineOf(m.name) : decodeSummary(inForce.bytes);
    const seasonal = seasonalFeatures(m);
    const windows = [];
    for (let t = from; t < to; t += step) {
      const end = Math.min(to, t + step);
      const bytes = await agg.window(t, end, version);
      if (!bytes) {
        windows.push({ from: new Date(t).toISOString(), to: new Date(end).toISOString(), rows: 0 });
        continue;
      }
      const w = decodeSummary(bytes);
      let ref = baseline;
      let refRows: number | undefined;
      if (shift) {
        const refBytes = await agg.window(shift(t), shift(end), version);
        const p = refBytes ? decodeSummary(refBytes) : undefined;
        refRows = p?.counters.rows ?? 0;
        // Too few rows to stand for anything: no statistics rather than noise.
        ref = p && refRows >= 30 ? p : { ...baseline, features: new Map(), outputs: new Map() };
      }
      const section = (live: Map<string, Sketch>, base: Map<string, Sketch>, isFeature: boolean) =>
        Object.fromEntries(
          [...live].map(([name, sketch]) => {
            // Against a moving reference of the same season, calendar features compare in full.
            const j = judgeSketch(base.get(name), sketch, { seasonal: isFeature && !shift && seasonal.has(name) });
            return [name, { ...describeSketch(sketch), drifted: j?.drifted ?? false, drift: j?.drift ?? {} }];
          }),
        );
      const features = section(w.features, ref.features, true);
      const outputs = section(w.outputs, ref.outputs, false);
      windows.push({
        from: new Date(t).toISOString(),
        to: new Date(end).toISOString(),
        rows: w.counters.rows,
        ...(shift ? { reference_rows: refRows } : {}),
        counters: w.counters,
        latency_ms: { p50: w.latency.count ? w.latency.quantile(0.5) : null, p99: w.latency.count ? w.latency.quantile(0.99) : null },
        drifted: [...Object.entries(features), ...Object.entries(outputs)].filter(([, v]) => v.drifted).map(([k]) => k),
        features,
        outputs,
      });
    }
    return c.json({
      model: m.name,
      version: version ?? 'all',
      reference,
      // The aggregator's own account: summaries stored, duplicates, refusals, roll-ups, webhooks.
      aggregator: await agg.counters(),
      baseline: {
        source: inForce.training ? 'training' : baseline.source.id,
        window: inForce.training ? m.baseline.window : [new Date(baseline.windowStart).toISOString(), new Date(baseline.windowEnd).toISOString()],
        rows: baseline.counters.rows,
        features: Object.fromEntries([...baseline.features].map(([k, s]) => [k, describeSketch(s)])),
        outputs: Object.fromEntries([...baseline.outputs].map(([k, s]) => [k, describeSketch(s)])),
      },
      windows,
    });
  });

  /**
   * Versions side by side over [from, to): rows, error, cache and fallback rates, latency and
   * output distributions per version, and for each non-stable version a verdict against stable:
   * "worse" when its error rate is 1 point higher, its fallback rate 5 points higher, its p99
   * latency 1.5x and 5 ms more (workerd's clock moves in whole ms, only across I/O, so smaller
   * gaps are noise), its shadow agreement under 90%, or its outputs drifted from stable's;
   * "insufficient data" under 200 rows.
   */
  app.get('/v1/models/:name/versions', async (c) => {
    operator(c);
    const e = engineOf(c);
    const m = e.manifest;
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    const { from, to } = range(c);
    const table = await tableOf(c, e);
    const raw = await c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(m.name)).versions(from, to);
    const profiles = new Map(Object.entries(raw).map(([v, b]) => [v, decodeSummary(new Uint8Array(b))]));
    const rate = (p: Profile, k: string) => (p.counters.rows ? (p.counters[k] ?? 0) / p.counters.rows : 0);
    const summary = (p: Profile) => ({
      rows: p.counters.rows,
      error_rate: rate(p, 'errors'),
      cache_rate: rate(p, 'cacheHits'),
      fallback_rate: rate(p, 'fallbacks'),
      latency_ms: { p50: p.latency.count ? p.latency.quantile(0.5) : null, p99: p.latency.count ? p.latency.quantile(0.99) : null },
      outputs: Object.fromEntries([...p.outputs].map(([k, s]) => [k, describeSketch(s)])),
      // Shadow runs (counted apart from served rows) and their agreement with the served answer.
      ...(p.counters.shadowRows
        ? { shadow_rows: p.counters.shadowRows, shadow_agreement: p.counters.shadowCompared ? (p.counters.shadowAgree ?? 0) / p.counters.shadowCompared : null }
        : {}),
    });
    const stable = profiles.get(table.stable);
    const versions = Object.fromEntries(
      [...profiles].map(([v, p]) => {
        const role =
          v === table.stable ? 'stable' : v === table.canary?.version ? 'canary' : (table.shadows ?? []).some((x) => x.version === v) ? 'shadow' : 'other';
        let verdict: string | undefined;
        const reasons: string[] = [];
        if (v !== table.stable) {
          if (!stable || stable.counters.rows < 200 || p.counters.rows < 200) verdict = 'insufficient data';
          else {
            if (rate(p, 'errors') > rate(stable, 'errors') + 0.01) reasons.push('error rate');
            if (p.counters.shadowCompared && (p.counters.shadowAgree ?? 0) / p.counters.shadowCompared < 0.9) reasons.push('shadow agreement below 90%');
            if (rate(p, 'fallbacks') > rate(stable, 'fallbacks') + 0.05) reasons.push('fallback rate');
            const p99 = (q: Profile) => (q.latency.count ? q.latency.quantile(0.99) : 0);
            if (p99(p) > 1.5 * p99(stable) && p99(p) - p99(stable) > 5)
              reasons.push(`p99 latency (${p99(p).toFixed(1)} ms against ${p99(stable).toFixed(1)} ms)`);
            for (const [k, s] of p.outputs) {
              const j = judgeSketch(stable.outputs.get(k), s, { range: false });
              const flagged = j
                ? Object.entries(j.drift)
                    .filter(([, r]) => r?.drifted)
                    .map(([m]) => m)
                : [];
              if (flagged.length) reasons.push(`output ${k} distribution (${flagged.join(', ')})`);
            }
            verdict = reasons.length ? 'worse' : 'no worse';
          }
        }
        return [v, { role, ...summary(p), ...(verdict ? { verdict, reasons } : {}) }];
      }),
    );
    return c.json({ model: m.name, from: new Date(from).toISOString(), to: new Date(to).toISOString(), routing: table, versions });
  });

  app.post('/v1/models/:name/baseline', limit, async (c) => {
    operator(c);
    const e = engineOf(c);
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    const b = await body(c);
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ValidationError('the body must be {"from": ..., "to": ...}', 'body');
    const own = (k: string) => (Object.hasOwn(b, k) ? (b as Record<string, unknown>)[k] : undefined); // proto-safe: own property
    const from = time(own('from'), 'from');
    const to = time(own('to'), 'to');
    if (!(from < to)) throw new ValidationError('from must be before to', 'from');
    const res = await c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(e.manifest.name)).setBaseline(from, to);
    // proto-safe: `res` is the aggregator's typed union, not a client's object.
    if ('error' in res) throw new ValidationError(`cannot re-baseline: ${res.error}`, 'from', 422, 'baseline_window_unusable');
    return c.json({ model: e.manifest.name, baseline: { from: new Date(from).toISOString(), to: new Date(to).toISOString(), rows: res.rows } });
  });

  app.get('/v1/models/:name/alerts', async (c) => {
    operator(c);
    const e = engineOf(c);
    if (!c.env.AGGREGATOR) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
    const alerts = await c.env.AGGREGATOR.get(c.env.AGGREGATOR.idFromName(e.manifest.name)).alerts();
    return c.json({ model: e.manifest.name, open: alerts.filter((a) => a.resolved_at === null).length, alerts });
  });

  // Operators: what this isolate's engine and cache are doing (the fallback's URL among them).
  app.get('/v1/models/:name/stats', (c) => {
    operator(c);
    const e = engineOf(c);
    const fb = rt(c.env).fallbacks.get(e.manifest.name);
    return c.json({
      model: e.manifest.name,
      version: e.manifest.version,
      engine: e.status(),
      batcher: e.batcher()?.stats() ?? null,
      cache: rt(c.env).cache?.stats() ?? null,
      fallback: fb ? { url: fb.url, breaker: fb.breaker.stats(), ...fb.stats() } : null,
      served_by_version: Object.fromEntries(rt(c.env).served.get(e.manifest.name) ?? []),
      telemetry: rt(c.env).profiler?.stats() ?? null,
      shadows: Object.fromEntries(
        [...(rt(c.env).shadows.get(e.manifest.name) ?? [])].map(([v, st]) => [
          v,
          {
            runs: st.runs,
            errors: st.errors,
            same_class: st.sameClass,
            score_diff_p50: st.scoreDiff.count ? st.scoreDiff.quantile(0.5) : null,
            score_diff_p99: st.scoreDiff.count ? st.scoreDiff.quantile(0.99) : null,
            overlap_mean_p50: st.overlap.count ? st.overlap.quantile(0.5) : null,
          },
        ]),
      ),
      config: rt(c.env).config,
      admission: admission.stats(),
    });
  });

  app.get('/v1/models', (c) =>
    c.json({
      models: [...rt(c.env).engines.values()].map((e) => ({
        name: e.manifest.name,
        version: e.manifest.version,
        description: e.manifest.description,
        task: e.manifest.task,
      })),
    }),
  );
  app.get('/v1/models/:name', (c) => {
    const m = engineOf(c).manifest;
    return c.json({
      name: m.name,
      version: m.version,
      description: m.description,
      task: m.task,
      features: m.features.map((f) => ({
        name: f.name,
        kind: f.kind,
        description: f.description,
        ...(f.kind === 'numeric' ? { range: f.range, integer: f.integer ?? false } : { vocabulary_size: f.vocabulary.length, oov: f.oov }),
      })),
      parameters: m.parameters ?? [],
      outputs: m.outputs,
      quality: m.quality,
      serving: m.serving,
    });
  });

  return app;
}

/**
 * A time as the operator routes and x-event-time take it: ms since the epoch (number or digits)
 * or an ISO date, within [0, MAX_TIME_MS] (so `new Date(t).toISOString()` cannot throw); NaN
 * otherwise.
 */
function instant(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v !== 'string' ? NaN : /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) && n >= 0 && n <= MAX_TIME_MS ? n : NaN;
}

/** instant(), or a 400 naming the field. */
function time(v: unknown, field: string): number {
  const n = instant(v);
  if (Number.isNaN(n))
    throw new ValidationError(
      `${field} must be ms since the epoch or an ISO date, from 1970 to ${new Date(MAX_TIME_MS).toISOString()}; got ${JSON.stringify(v)?.slice(0, 64)}`,
      field,
    );
  return n;
}

/** A step in ms (digits), at most the whole Date range; a 400 naming the field otherwise. */
function duration(v: string, field: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= MAX_TIME_MS)) throw new ValidationError(`${field} must be a whole number of ms; got ${JSON.stringify(v.slice(0, 64))}`, field);
  return n;
}

/** The request parameters (k) as the engine needs them, read back from the feeds. */
function paramsOf(m: ModelManifest, feeds: Record<string, Tensor>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of m.parameters ?? []) out[p.name] = Number(feeds[p.input].data[0]);
  return out;
}

/** The rows `rows` of an encoded request. */
function subset(m: ModelManifest, enc: ReturnType<typeof encodeInstances>, rows: number[]) {
  const feeds: Record<string, Tensor> = {};
  for (const spec of m.inputs) {
    const t = enc.feeds[spec.name];
    if (spec.shape[0] !== 'N') {
      feeds[spec.name] = t;
      continue;
    }
    const rowSize = t.dims.slice(1).reduce((a, b) => a * b, 1);
    const data = new (t.data.constructor as new (n: number) => typeof t.data)(rows.length * rowSize);
    rows.forEach((r, j) => (data as Float32Array).set((t.data as Float32Array).subarray(r * rowSize, (r + 1) * rowSize), j * rowSize));
    feeds[spec.name] = { dtype: t.dtype, dims: [rows.length, ...t.dims.slice(1)], data };
  }
  return { rows: rows.length, feeds };
}

/** Output tensors as one JSON prediction per row: scalars per row, or arrays for ranked lists. */
function toPredictions(m: ModelManifest, out: Record<string, Tensor>, rows: number): Record<string, number | number[]>[] {
  return Array.from({ length: rows }, (_, r) => {
    const p: Record<string, number | number[]> = {};
    for (const spec of m.outputs) {
      const t = out[spec.name];
      const size = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const vals = Array.from(t.data as ArrayLike<number | bigint> as ArrayLike<number>, Number).slice(r * size, (r + 1) * size);
      p[spec.name] = t.dims.length === 1 ? vals[0] : vals;
    }
    return p;
  });
}

/**
 * Agreement of a shadow's outputs with the served ones (see ShadowStats), also returned as
 * counters for its window profile: `shadowCompared` (rows, or top-k slots for ranking models)
 * and `shadowAgree` (rows on the same side of 0.5, or slots whose id is in the served top-k).
 */
function compare(
  m: ModelManifest,
  served: Record<string, Tensor>,
  shadow: Record<string, Tensor>,
  st: ShadowStats,
): { shadowCompared: number; shadowAgree: number } {
  if (m.task === 'binary-classification') {
    const output = m.outputs[0].name;
    const a = served[output].data as Float32Array;
    const b = shadow[output].data as Float32Array;
    let agree = 0;
    for (let i = 0; i < a.length; i++) {
      if (a[i] >= 0.5 === b[i] >= 0.5) agree++;
      st.scoreDiff.add(Math.abs(a[i] - b[i]));
    }
    st.sameClass += agree;
    return { shadowCompared: a.length, shadowAgree: agree };
  }
  const ids = m.outputs.find((o) => o.dtype === 'int64')!.name;
  const scores = m.outputs.find((o) => o.dtype === 'float32')!.name;
  const a = served[ids];
  const b = shadow[ids];
  const k = a.dims[1];
  let agree = 0;
  for (let r = 0; r < a.dims[0]; r++) {
    const mine = new Set(Array.from((a.data as BigInt64Array).subarray(r * k, (r + 1) * k), String));
    const theirs = Array.from((b.data as BigInt64Array).subarray(r * b.dims[1], (r + 1) * b.dims[1]), String);
    const same = theirs.filter((x) => mine.has(x)).length;
    agree += same;
    st.overlap.add(same / k);
    st.scoreDiff.add(Math.abs((served[scores].data as Float32Array)[r * k] - (shadow[scores].data as Float32Array)[r * b.dims[1]]));
  }
  return { shadowCompared: a.dims[0] * k, shadowAgree: agree };
}

/** How long the edge says to wait after its own failure. */
function retryMs(err: unknown): number {
  if (err instanceof DeadlineError || err instanceof OverloadedError) return err.retryAfterMs;
  if (err instanceof ModelLoadError) return Math.max(1000, err.retryAt - performance.now());
  return 1000;
}

/**
 * What a fallback failure tells the client, by reason: never the fallback's URL, its answer's
 * text or a network error's message (those go to the log).
 */
const FALLBACK_PUBLIC: ReadonlyMap<string, string> = new Map([
  ['budget', 'the fallback cannot answer within the latency budget left'],
  ['timeout', 'the fallback did not answer within the latency budget left'],
  ['network', 'the fallback is unreachable'],
  ['breaker_open', 'the fallback is unavailable (circuit open)'],
  ['upstream', 'the fallback failed'],
]);

/** The answer for a thrown error: 4xx with its message for the caller's mistakes, 503 + Retry-After when serving failed, 500 with nothing internal. */
function errorResponse(c: Context, err: unknown): Response {
  if (err instanceof OperatorAuthError) {
    c.header('WWW-Authenticate', 'Bearer');
    return errorJson(c, 401, 'unauthorized', 'a valid operator bearer token is required', { field: 'authorization' });
  }
  if (err instanceof ValidationError) return errorJson(c, err.status, err.code, err.message, { field: err.field });
  const retry = (ms: number) => c.header('Retry-After', String(Math.max(1, Math.ceil(ms / 1000))));
  if (err instanceof DeadlineError) {
    retry(err.retryAfterMs);
    return errorJson(c, 503, 'deadline', err.message);
  }
  if (err instanceof OverloadedError) {
    retry(err.retryAfterMs);
    return errorJson(c, 503, 'overloaded', err.message);
  }
  if (err instanceof ModelLoadError) {
    console.error('model load failed', err.message);
    retry(err.retryAt - performance.now());
    return errorJson(c, 503, 'model_unavailable', 'the model failed to load on this edge and no fallback answered; retry later');
  }
  if (err instanceof FallbackError) {
    console.error('fallback failed', err.message);
    retry(err.retryAfterMs);
    return errorJson(c, 503, 'unavailable', FALLBACK_PUBLIC.get(err.reason) ?? 'the fallback failed', { reason: err.reason });
  }
  console.error('internal error', err);
  return errorJson(c, 500, 'internal', 'internal error');
}

/** An instance of `m` made of allowed values (each range's low end, the first vocabulary entry): runs the request path before a request needs it. */
function sampleInstance(m: ModelManifest): Record<string, unknown> {
  const inst: Record<string, unknown> = {};
  for (const f of m.features) {
    if (f.kind === 'numeric') inst[f.name] = f.range[0];
    else if (f.kind === 'categorical') inst[f.name] = f.vocabulary[0] ?? 'unknown';
    else inst[f.name] = Array.from({ length: Math.max(1, f.minLength) }, () => f.vocabulary[0]);
  }
  for (const p of m.parameters ?? []) inst[p.name] = p.default;
  return inst;
}

/** `Server-Timing` (W3C Server Timing) of an inference answer: the worker's own time, the engine's (queue and run together), the fallback's, and the total, from receipt. */
function serverTiming(k: RequestClock): string {
  const ms = (x: number) => Math.max(0, x).toFixed(1);
  const total = performance.now() - k.received;
  const parts = [`edge;dur=${ms(total - (k.engineMs ?? 0) - (k.fallbackMs ?? 0))};desc="worker"`];
  if (k.engineMs !== undefined) parts.push(`engine;dur=${ms(k.engineMs)};desc="queue+inference"`);
  if (k.fallbackMs !== undefined) parts.push(`fallback;dur=${ms(k.fallbackMs)}`);
  parts.push(`total;dur=${ms(total)}`);
  // Before `received`, so outside the total: the isolate's start, paid by its first requests.
  if (k.isolateMs !== undefined) parts.push(`isolate;dur=${ms(k.isolateMs)};desc="isolate start"`);
  return parts.join(', ');
}
