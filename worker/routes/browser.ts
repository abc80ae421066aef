/**
 * The browser runtime's routes (issue 7):
 *
 * - `GET /v1/models/{name}/artifact`: what a browser needs to run the model on the device: the
 *   manifest, where the int8 bytes are (a content-addressed URL) with their sha256, the golden
 *   rows every backend is checked against before use, and a short-lived telemetry token.
 *   Never cached (the token is fresh each time).
 * - `GET /v1/models/{name}/artifact/{sha256}`: the model bytes, immutable (cacheable forever,
 *   kept in Cache Storage by the runtime). A stale hash is a 404, never other bytes.
 * - `POST /v1/telemetry?token=...` (or `authorization: Bearer <token>`; sendBeacon cannot set
 *   headers): one browser summary (core's binary format). The token is verified (HMAC-SHA256,
 *   WebCrypto), its rate is limited, the summary is decoded and checked against the model's
 *   manifest; accepted ones are merged in this isolate by (model, version, minute) and the
 *   merged profiles go to the model's DriftAggregator in waitUntil after
 *   TELEMETRY_BROWSER_FLUSH_MS, so the aggregator sees a few writes per isolate per interval,
 *   not one per browser. Refusals are 4xx JSON naming the reason.
 * - `POST /v1/telemetry/predictions?token=...` (or Bearer): what the join of late labels needs of
 *   the predictions the browser made on the device, `{"predictions": [{id, version, value,
 *   items?}]}` (core/contracts.ts), at most MAX_BROWSER_PREDICTIONS records and
 *   PREDICTIONS_MAX_BYTES, JSON whatever the content-type (sendBeacon). Everything in it is
 *   a call of the token's budgets (http/telemetry-token.ts: as a summary does), then is checked
 *   (checkPredictions: ids well formed and dated within a day back or five minutes ahead,
 *   versions the registry serves for the token's model, values its task could give), spends
 *   records (TELEMETRY_SOURCE_ROWS_PER_MIN per source a minute) and goes to the model's DriftAggregator
 *   (`recordPredictions`, INSERT OR IGNORE by id: a retried flush stores nothing twice), awaited,
 *   so that feedback sent after the answer finds them. 200 `{stored, duplicate, rejected}`.
 * - `GET /v1/telemetry`: this isolate's figures (accepted, refused by reason, forwarded).
 *
 * `/demo` (the on-device movie recommendation demo) and `/demo-sw.js` (its service worker) are
 * static assets, not routes: browser/demo/, built by browser/build.ts.
 *
 * Secrets: TELEMETRY_SIGNING_KEY signs tokens. When it is unset, each isolate signs with a
 * random key of its own: tokens then verify only in the isolate that issued them, which is
 * right for `wrangler dev` (one isolate) and fails closed in production (refused, counted).
 */
import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import {
  decodeSummary,
  SketchMergeError,
  SummaryDecodeError,
  type ArtifactDescriptor,
  type BrowserPredictionsAnswer,
  type ErrorBodyV1,
  type ModelManifest,
  type Profile,
} from '../../core/index.ts';
import { bearerToken as bearer, checkOperator } from '../auth.ts';
import { aggregatorConfig, edgeConfig } from '../config.ts';
import { runtimeOf, type AppEnv } from '../http/context.ts';
import { spendCall, spendRecords, verifyTelemetryToken } from '../http/telemetry-token.ts';
import type { ModelEngine } from '../engine/model-engine.ts';
import { backgroundOf } from '../serving/background.ts';
import {
  addressGroup,
  checkPredictions,
  MAX_BROWSER_PREDICTIONS,
  MAX_PREDICTION_AGE_MS,
  PENDING_SLOTS,
  PREDICTIONS_MAX_BYTES,
  refuse,
  RENEW_GRACE_MS,
  signToken,
  SLOTS_PER_GROUP,
  TELEMETRY_MAX_BYTES,
  verifyToken,
  type Grant,
} from '../serving/browser-telemetry.ts';

/** Golden rows in a descriptor: enough for every backend's check, small enough to ship. */
const GOLDEN_ROWS = 16;

/** A version's golden set (golden.json in the registry): features and the outputs onnxruntime-node computed, per build. */
type Golden = { tolerance: Record<string, number>; rows: { features: Record<string, unknown>; expected: Record<string, Record<string, number | number[]>> }[] };
/** Golden sets parsed, by the sha256 of their file (a few per model; bounded all the same). */
const MAX_GOLDEN = 64;

// --- Routes -------------------------------------------------------------------------------------

const json = (c: Context, status: number, code: string, message: string, field?: string, headers: Record<string, string> = {}) => {
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  return c.json({ error: { code, message, ...(field ? { field } : {}) } } satisfies ErrorBodyV1, status as 400);
};

/** The client's address as Cloudflare (and `wrangler dev`) reports it, or undefined. */
const clientAddress = (c: Context) => c.req.header('cf-connecting-ip') || undefined;

/** The routes over the registry's models, with this app's browser telemetry state, as a sub-app to mount with `app.route('/', ...)`. */
export function browserRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const goldens = new Map<string, Golden>();
  const settings = (c: Context<AppEnv>) => edgeConfig(c.env).browser;

  /** The engine of a model's version (Maps only: a name comes from the client, "__proto__" included); its default version when none is named. */
  const engineAt = (c: Context<AppEnv>, name: string, version?: string): ModelEngine | undefined => {
    const r = runtimeOf(c);
    return version === undefined ? r.engines.get(name) : r.versions.get(name)?.get(version);
  };
  const modelOf = (c: Context<AppEnv>) => engineAt(c, c.req.param('name')!, c.req.query('version'));
  const notFound = (c: Context<AppEnv>) => {
    const name = c.req.param('name')!;
    const version = c.req.query('version');
    const r = runtimeOf(c);
    return version !== undefined && r.versions.has(name)
      ? json(
          c,
          404,
          'version_not_found',
          `model "${name}" has no version ${JSON.stringify(version)} (deployed: ${[...r.versions.get(name)!.keys()].join(', ')})`,
          'version',
        )
      : json(c, 404, 'model_not_found', `unknown model ${JSON.stringify(name)} (serving ${[...r.engines.keys()].join(', ')})`, 'name');
  };

  const goldenOf = async (c: Context<AppEnv>, manifest: ModelManifest): Promise<Golden | undefined> => {
    const rec = c.var.edge.record(c.env, manifest.name, manifest.version);
    const sha = rec?.files['golden.json']?.sha256;
    if (!rec || !sha) return undefined;
    let g = goldens.get(sha);
    if (!g) {
      const bytes = await runtimeOf(c).registry.file(rec, 'golden.json');
      if (!bytes) return undefined;
      g = JSON.parse(new TextDecoder().decode(bytes)) as Golden;
      if (goldens.size >= MAX_GOLDEN) goldens.delete(goldens.keys().next().value!);
      goldens.set(sha, g);
    }
    return g;
  };

  /**
   * A telemetry grant, or why none is given. The source id is the worker's: a new random one,
   * or, for a browser renewing (`authorization: Bearer <its previous token>`, valid or expired
   * less than a day), the one that token names, so a client can never speak for a source it
   * was not given. Minting is limited per client address; an unknown address gets no token.
   */
  const grant = async (
    c: Context<AppEnv>,
    manifest: ModelManifest,
  ): Promise<Grant | { status: 403 | 429; code: string; message: string; retryMs?: number }> => {
    const v = settings(c);
    const telemetry = c.var.edge.browser;
    const ip = clientAddress(c);
    if (!ip) return { status: 403, code: 'address_unknown', message: 'telemetry tokens are issued only to clients whose address is known (CF-Connecting-IP)' };
    const wait = telemetry.allow(`t:${ip}`, v.tokensPerIpPerMin, Date.now());
    if (wait > 0) return { status: 429, code: 'rate_limited', message: 'too many telemetry tokens for this address', retryMs: wait };
    let source: string | undefined;
    const previous = bearer(c.req.header('authorization'));
    if (previous) {
      const old = await verifyToken(previous, v.signingKey, Date.now() - RENEW_GRACE_MS);
      if ('claims' in old && old.claims.m === manifest.name) source = old.claims.s; // proto-safe: narrows verifyToken's own union
    }
    source ??= Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    const expires = Date.now() + v.tokenTtlMs;
    const token = await signToken({ m: manifest.name, v: manifest.version, s: source, e: expires }, v.signingKey);
    telemetry.minted();
    return { endpoint: '/v1/telemetry', token, source, expires_at: expires };
  };

  // Apps on other origins may host the runtime (its module worker must be same-origin with the
  // page) and call these routes; nothing here uses cookies, tokens travel explicitly.
  const crossOrigin = cors({ origin: '*', allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['authorization', 'content-type'], maxAge: 600 });
  // The feedback route (routes/outcomes.ts) too: a page sends its clicks with its telemetry token.
  for (const path of [
    '/v1/models/:name/artifact',
    '/v1/models/:name/artifact/:sha256',
    '/v1/models/:name/telemetry-token',
    '/v1/telemetry',
    '/v1/telemetry/predictions',
    '/v1/models/:name/feedback',
  ])
    app.use(path, crossOrigin);

  app.get('/v1/models/:name/artifact', async (c) => {
    const m = modelOf(c);
    if (!m) return notFound(c);
    const manifest = m.manifest;
    const spec = c.var.edge.record(c.env, manifest.name, manifest.version)?.files['model.onnx'];
    if (!spec) return notFound(c);
    const golden = await goldenOf(c, manifest);
    // The model is served whatever happens to telemetry; without a grant the runtime reports nothing.
    const g = c.env.AGGREGATOR ? await grant(c, manifest) : undefined;
    c.header('cache-control', 'no-store');
    return c.json({
      model: manifest.name,
      version: manifest.version,
      manifest,
      artifact: { url: `/v1/models/${manifest.name}/artifact/${spec.sha256}`, sha256: spec.sha256, bytes: spec.bytes, quantization: manifest.serve },
      golden: golden
        ? {
            tolerance: golden.tolerance,
            rows: golden.rows.slice(0, GOLDEN_ROWS).map((r) => ({ features: r.features, expected: r.expected[manifest.serve] ?? {} })),
          }
        : null,
      telemetry: g && 'token' in g ? g : null, // proto-safe: narrows grant()'s own union
    } satisfies ArtifactDescriptor);
  });

  // A fresh token for a browser that already has the model (keeps its source id when it shows its previous token).
  app.get('/v1/models/:name/telemetry-token', async (c) => {
    const m = modelOf(c);
    if (!m) return notFound(c);
    if (!c.env.AGGREGATOR) return json(c, 404, 'telemetry_unavailable', 'no aggregator is bound (AGGREGATOR): telemetry is off', 'name');
    const g = await grant(c, m.manifest);
    // proto-safe: narrows grant()'s own union
    if (!('token' in g)) {
      c.var.edge.browser.refused(g.code);
      return json(c, g.status, g.code, g.message, undefined, g.retryMs ? { 'retry-after': String(Math.max(1, Math.ceil(g.retryMs / 1000))) } : {});
    }
    c.header('cache-control', 'no-store');
    return c.json(g);
  });

  // Any committed version's bytes, by their sha256 (the descriptor names the default's, or ?version='s).
  app.get('/v1/models/:name/artifact/:sha256', async (c) => {
    const name = c.req.param('name');
    const r = runtimeOf(c);
    const records = r.records.get(name);
    if (!records) return json(c, 404, 'model_not_found', `unknown model ${JSON.stringify(name)}`, 'name');
    const sha = c.req.param('sha256');
    const rec = [...records.values()].find((x) => x.files['model.onnx']?.sha256 === sha);
    if (!rec)
      return json(
        c,
        404,
        'artifact_not_found',
        `model "${name}" has no version with model.onnx ${JSON.stringify(sha.slice(0, 64))}; fetch /v1/models/${name}/artifact again`,
        'sha256',
      );
    const bytes = await r.registry.file(rec, 'model.onnx');
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      'content-type': 'application/octet-stream',
      'cache-control': 'public, max-age=31536000, immutable',
      etag: `"${sha}"`,
      'x-model-sha256': sha,
      'x-model-version': rec.version,
    });
  });

  // This isolate's figures: operators only (they show sources and refusals).
  app.get('/v1/telemetry', (c) => {
    checkOperator(c);
    return c.json(c.var.edge.browser.stats());
  });

  app.post('/v1/telemetry', async (c) => {
    const v = settings(c);
    const telemetry = c.var.edge.browser;
    if (!c.env.AGGREGATOR) {
      telemetry.refused('telemetry_unavailable');
      return json(c, 404, 'telemetry_unavailable', 'no aggregator is bound (AGGREGATOR): telemetry is off');
    }
    const token = c.req.query('token') ?? bearer(c.req.header('authorization'));
    if (!token) {
      telemetry.refused('missing_token');
      return json(c, 401, 'missing_token', 'a telemetry token is required (?token= or authorization: Bearer), from GET /v1/models/{name}/artifact', 'token', {
        'www-authenticate': 'Bearer',
      });
    }
    const verdict = await verifyToken(token, v.signingKey);
    // proto-safe: narrows verifyToken's own union
    if ('error' in verdict) {
      telemetry.refused(verdict.error);
      return json(
        c,
        401,
        verdict.error,
        verdict.error === 'token_expired' ? 'the telemetry token has expired; fetch the artifact descriptor again' : 'the telemetry token is not valid',
        'token',
        { 'www-authenticate': 'Bearer' },
      );
    }
    const { claims } = verdict;
    // The version the token was issued for (its own features), else the model's default.
    const m = engineAt(c, claims.m, claims.v) ?? engineAt(c, claims.m);
    if (!m) {
      telemetry.refused('model_not_found');
      return json(c, 404, 'model_not_found', `model "${claims.m}" is not served here`, 'token');
    }
    const now = Date.now();
    // Per token, and per address: tokens are free to mint (within their own limit), so the
    // per-token limit alone bounds a well-behaved page, not a client holding many tokens. An
    // unknown address fails closed.
    const ip = clientAddress(c);
    if (!ip) {
      telemetry.refused('address_unknown');
      return json(c, 403, 'address_unknown', 'telemetry is accepted only from clients whose address is known (CF-Connecting-IP)');
    }
    const wait = Math.max(telemetry.allow(`s:${claims.s}`, v.ratePerMin, now), telemetry.allow(`ip:${ip}`, v.ratePerIpPerMin, now));
    if (wait > 0) {
      telemetry.refused('rate_limited');
      return json(c, 429, 'rate_limited', 'too many summaries for this token or address', 'token', {
        'retry-after': String(Math.max(1, Math.ceil(wait / 1000))),
      });
    }
    const declared = Number(c.req.header('content-length') ?? NaN);
    if (declared > TELEMETRY_MAX_BYTES) {
      telemetry.refused('body_too_large');
      return json(c, 413, 'body_too_large', `a summary must be at most ${TELEMETRY_MAX_BYTES} bytes`, 'body');
    }
    const bytes = await readLimited(c.req.raw, TELEMETRY_MAX_BYTES);
    if (!bytes) {
      telemetry.refused('body_too_large');
      return json(c, 413, 'body_too_large', `a summary must be at most ${TELEMETRY_MAX_BYTES} bytes`, 'body');
    }
    let p: Profile;
    try {
      p = decodeSummary(bytes);
    } catch (err) {
      telemetry.refused('invalid_summary');
      return json(c, 400, 'invalid_summary', err instanceof SummaryDecodeError ? err.message : 'malformed summary', 'body');
    }
    const rowsPerMin = v.sourceRowsPerMin;
    const why = refuse(p, claims, m.manifest, now, rowsPerMin);
    if (why) {
      telemetry.refused(why.code);
      return json(c, why.status, why.code, why.message, 'body');
    }
    // One source's rows per window minute, whenever they come (late, or in pieces)...
    if (!telemetry.fitsWindow(p, rowsPerMin)) {
      telemetry.refused('window_full');
      return json(c, 422, 'window_full', `this source has reported rows for that minute already; ${rowsPerMin} is the most one source may`, 'body');
    }
    // ...and per minute of the clock: together they bound its share of any window the aggregator judges.
    const rowsWait = telemetry.allow(`r:${claims.s}`, rowsPerMin, now, p.counters.rows);
    if (rowsWait > 0) {
      telemetry.refused('rows_rate_limited');
      return json(c, 429, 'rate_limited', `this source has reported its ${rowsPerMin} rows for this minute`, 'body', {
        'retry-after': String(Math.max(1, Math.ceil(rowsWait / 1000))),
      });
    }
    let added: ReturnType<typeof telemetry.add>;
    try {
      added = telemetry.add(p, await addressGroup(ip, v.signingKey), rowsPerMin);
    } catch (err) {
      // A sketch that cannot merge with the others (or whose counts would overflow): refused, the slot intact.
      if (!(err instanceof SketchMergeError)) throw err;
      telemetry.refused('unexpected_sketch');
      return json(c, 422, 'unexpected_sketch', err.message, 'body');
    }
    if (added === 'window_full') {
      telemetry.refused('window_full');
      return json(c, 422, 'window_full', `this source has reported rows for that minute already; ${rowsPerMin} is the most one source may`, 'body');
    }
    if (added === 'full' || added === 'group_full') {
      telemetry.refused('busy');
      const why =
        added === 'full' ? `${PENDING_SLOTS} windows are being merged here` : `clients of this network opened ${SLOTS_PER_GROUP} windows since the last flush`;
      return json(c, 503, 'busy', `${why}; send this one again later`, undefined, { 'retry-after': '5' });
    }
    if (added === 'accepted' && telemetry.claimSchedule()) {
      const agg = c.env.AGGREGATOR;
      const flushMs = v.flushMs;
      const work = new Promise((r) => setTimeout(r, flushMs)).then(() => telemetry.flush(agg));
      backgroundOf(c)(work);
    }
    return c.json({ status: added, rows: p.counters.rows }, 202);
  });

  // What the join of late labels needs of the predictions a browser made on the device (see checkPredictions).
  app.post('/v1/telemetry/predictions', async (c) => {
    const telemetry = c.var.edge.browser;
    const agg = c.env.AGGREGATOR;
    if (!agg) {
      telemetry.refused('telemetry_unavailable');
      return json(c, 404, 'telemetry_unavailable', 'no aggregator is bound (AGGREGATOR): telemetry is off');
    }
    const claims = await verifyTelemetryToken(c, c.req.query('token') ?? bearer(c.req.header('authorization')));
    if (claims instanceof Response) return claims;
    const versions = runtimeOf(c).versions.get(claims.m);
    if (!versions) {
      telemetry.refused('model_not_found');
      return json(c, 404, 'model_not_found', `model "${claims.m}" is not served here`, 'token');
    }
    const calls = spendCall(c, claims, 'token');
    if (calls) return calls;
    const declared = Number(c.req.header('content-length') ?? NaN);
    const bytes = declared > PREDICTIONS_MAX_BYTES ? undefined : await readLimited(c.req.raw, PREDICTIONS_MAX_BYTES);
    if (!bytes) {
      telemetry.refused('body_too_large');
      return json(c, 413, 'body_too_large', `a predictions body must be at most ${PREDICTIONS_MAX_BYTES} bytes`, 'body');
    }
    let raw: unknown;
    try {
      // JSON whatever the content-type: sendBeacon sends bytes without one.
      raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      telemetry.refused('invalid_json');
      return json(c, 400, 'invalid_json', 'the body is not valid JSON (UTF-8)', 'body');
    }
    const horizonMs = aggregatorConfig(c.env).predictionHorizonMs;
    // At most a minute's records of one source a call (a smaller TELEMETRY_SOURCE_ROWS_PER_MIN lowers it: a call it can never allow is refused, not delayed).
    const maxRecords = Math.min(MAX_BROWSER_PREDICTIONS, settings(c).sourceRowsPerMin);
    const checked = checkPredictions(raw, (v) => versions.get(v)?.manifest, Date.now(), Math.min(MAX_PREDICTION_AGE_MS, horizonMs), maxRecords);
    // proto-safe: narrows checkPredictions' own union
    if ('field' in checked) {
      telemetry.refused(checked.code);
      return json(c, checked.status, checked.code, checked.message, checked.field);
    }
    // Records once the body is known good (a refused body spent its call, not records).
    const over = spendRecords(c, claims, 'p', checked.records.length, 'body');
    if (over) return over;
    let answer: BrowserPredictionsAnswer;
    try {
      // With the client's address group: outcomes of browser-recorded predictions count for alerts only from enough groups.
      const group = await addressGroup(clientAddress(c) ?? '', settings(c).signingKey);
      answer = await agg.get(agg.idFromName(claims.m)).recordPredictions(claims.m, checked.records, { group });
    } catch (err) {
      console.error('browser predictions: the aggregator did not record them', err);
      telemetry.predictionsForwarded(checked.records.length, undefined);
      return json(c, 503, 'busy', 'the predictions could not be recorded now; send them again later', undefined, { 'retry-after': '5' });
    }
    telemetry.predictionsForwarded(checked.records.length, answer);
    return c.json({ stored: answer.stored, duplicate: answer.duplicate, rejected: answer.rejected } satisfies BrowserPredictionsAnswer);
  });
  return app;
}

/** The body, or undefined when it is longer than `max` bytes (read no further than that). */
async function readLimited(req: Request, max: number): Promise<Uint8Array | undefined> {
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const ch of chunks) {
    out.set(ch, o);
    o += ch.byteLength;
  }
  return out;
}
