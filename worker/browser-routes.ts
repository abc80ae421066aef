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
 * - `GET /v1/telemetry`: this isolate's figures (accepted, refused by reason, forwarded).
 * - `GET /demo`: the on-device movie recommendation demo (its script is a static asset), and
 *   `GET /demo-sw.js`, its service worker (reloads offline once loaded).
 *
 * Secrets: TELEMETRY_SIGNING_KEY signs tokens. When it is unset, each isolate signs with a
 * random key of its own: tokens then verify only in the isolate that issued them, which is
 * right for `wrangler dev` (one isolate) and fails closed in production (refused, counted).
 */
import type { Context, Hono } from 'hono';
import { cors } from 'hono/cors';
import { CategoricalSketch, decodeSummary, encodeSummary, mergeProfiles, SketchMergeError, SummaryDecodeError, TDigest, type ModelManifest, type Profile } from '../core/index.ts';
import { demoPage } from '../browser/demo/page.ts';
import { demoServiceWorker } from '../browser/demo/sw.ts';
import flightGolden from '../models/flight-delay/golden.json';
import movieGolden from '../models/movielens-topk/golden.json';
import type { Env } from './app.ts';
import type { BundledModel } from './models.ts';

/** Settings this module reads (strings, as wrangler vars and secrets are). */
export interface BrowserVars {
  /** Secret: HMAC key for telemetry tokens (`wrangler secret put TELEMETRY_SIGNING_KEY`). */
  TELEMETRY_SIGNING_KEY?: string;
  /** Token lifetime, ms. Default 900000 (15 min). */
  TELEMETRY_TOKEN_TTL_MS?: string;
  /** How long browser summaries are merged in the isolate before forwarding, ms. Default 5000. */
  TELEMETRY_BROWSER_FLUSH_MS?: string;
  /** Summaries accepted per token per minute (burst the same). Default 60. */
  TELEMETRY_RATE_PER_MIN?: string;
  /** Summaries accepted per client address (CF-Connecting-IP) per minute, whatever its tokens. Default 600. */
  TELEMETRY_RATE_PER_IP_PER_MIN?: string;
}

/** Largest summary body accepted, bytes. A movielens-topk browser window is 5-17 KB (full sketches: 17 KB). */
export const TELEMETRY_MAX_BYTES = 64 * 1024;
/** Rows one browser summary may claim. */
export const TELEMETRY_MAX_ROWS = 100_000;
/** Oldest window start accepted (a browser may have been offline), and the clock skew allowed. */
const MAX_AGE_MS = 24 * 3600_000;
const MAX_SKEW_MS = 5 * 60_000;
/** The extra categorical feature a browser summary carries: which backend answered each row. */
export const BACKEND_FEATURE = 'backend';
const BACKENDS = ['webgpu', 'wasm', 'edge', 'cache'];
/** Golden rows shipped to browsers for the backend check (each backend runs them all). */
const GOLDEN_ROWS = 16;

const GOLDEN: Record<string, { tolerance: Record<string, number>; rows: { features: Record<string, unknown>; expected: { int8: Record<string, unknown> } }[] }> = {
  'flight-delay': flightGolden as never,
  'movielens-topk': movieGolden as never,
};

// --- Tokens ----------------------------------------------------------------------------------

export interface TokenClaims {
  /** Model name. */
  m: string;
  /** Model version. */
  v: string;
  /** The browser's source id (its summaries must carry it). */
  s: string;
  /** Expiry, ms since the epoch. */
  e: number;
}

const te = new TextEncoder();
const td = new TextDecoder();
const b64url = (b: Uint8Array) => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
function unb64url(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  try {
    const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

let isolateKey: Uint8Array | undefined;
const keys = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string | undefined): Promise<CryptoKey> {
  const raw = secret ? te.encode(secret) : (isolateKey ??= crypto.getRandomValues(new Uint8Array(32)));
  const id = secret ? `s:${secret}` : 'isolate';
  let k = keys.get(id);
  if (!k) keys.set(id, (k = crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])));
  return k;
}

/** `v1.<claims>.<HMAC-SHA256 of "v1.<claims>">`, base64url. */
export async function signToken(claims: TokenClaims, secret: string | undefined): Promise<string> {
  const body = `v1.${b64url(te.encode(JSON.stringify(claims)))}`;
  const sig = new Uint8Array(await crypto.subtle.sign('HMAC', await hmacKey(secret), te.encode(body)));
  return `${body}.${b64url(sig)}`;
}

/** The claims of a valid, unexpired token, or why not (never throws). */
export async function verifyToken(token: string, secret: string | undefined, now = Date.now()): Promise<{ claims: TokenClaims } | { error: 'invalid_token' | 'token_expired' }> {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== 'v1' || token.length > 1024) return { error: 'invalid_token' };
  const sig = unb64url(parts[2]);
  const payload = unb64url(parts[1]);
  if (!sig || !payload) return { error: 'invalid_token' };
  // crypto.subtle.verify compares in constant time.
  const ok = await crypto.subtle.verify('HMAC', await hmacKey(secret), sig, te.encode(`${parts[0]}.${parts[1]}`));
  if (!ok) return { error: 'invalid_token' };
  let claims: TokenClaims;
  try {
    claims = JSON.parse(td.decode(payload)) as TokenClaims;
  } catch {
    return { error: 'invalid_token' };
  }
  if (typeof claims?.m !== 'string' || typeof claims.v !== 'string' || typeof claims.s !== 'string' || typeof claims.e !== 'number') return { error: 'invalid_token' };
  if (claims.e <= now) return { error: 'token_expired' };
  return { claims };
}

// --- Summary checks ---------------------------------------------------------------------------

/** The sketch kind each feature and output of a browser summary must have, from the manifest. */
function expectedSketches(m: ModelManifest): { features: Map<string, 'numeric' | 'categorical'>; outputs: Map<string, 'numeric' | 'categorical'> } {
  const features = new Map<string, 'numeric' | 'categorical'>([[BACKEND_FEATURE, 'categorical']]);
  for (const f of m.features) {
    if (f.kind === 'numeric') features.set(f.name, 'numeric');
    else if (f.kind === 'categorical') features.set(f.name, 'categorical');
    else {
      features.set(f.name, 'categorical');
      features.set(`${f.name}_length`, 'numeric');
    }
  }
  return { features, outputs: new Map(m.sketchedOutputs.map((o) => [o.name, o.kind])) };
}

/** Why a decoded browser summary cannot be accepted under these claims, or undefined. */
function refuse(p: Profile, claims: TokenClaims, m: ModelManifest, now: number): { status: 403 | 422; code: string; message: string } | undefined {
  if (p.model !== claims.m) return { status: 403, code: 'token_scope', message: `the token is for model "${claims.m}", the summary for "${p.model}"` };
  if (p.source.kind !== 'browser' || p.source.id !== claims.s) return { status: 403, code: 'token_scope', message: `the summary's source must be browser:${claims.s}, got ${p.source.kind}:${p.source.id}` };
  if (p.modelVersion !== m.version) return { status: 422, code: 'unknown_version', message: `model "${m.name}" serves browsers version ${m.version}, not ${p.modelVersion}` };
  if (p.windowStart < now - MAX_AGE_MS || p.windowEnd > now + MAX_SKEW_MS) return { status: 422, code: 'window_out_of_range', message: 'the summary window is older than 24 h or in the future' };
  if (p.counters.rows < 1 || p.counters.rows > TELEMETRY_MAX_ROWS) return { status: 422, code: 'invalid_rows', message: `rows must be in [1, ${TELEMETRY_MAX_ROWS}], got ${p.counters.rows}` };
  const want = expectedSketches(m);
  for (const [section, live, expected] of [['feature', p.features, want.features], ['output', p.outputs, want.outputs]] as const) {
    for (const [name, s] of live) {
      const kind = expected.get(name);
      const actual = s instanceof TDigest ? 'numeric' : s instanceof CategoricalSketch ? 'categorical' : 'histogram';
      if (kind !== actual) return { status: 422, code: 'unexpected_sketch', message: `${section} "${name}" is ${kind ? `not a ${kind} sketch` : 'not in the manifest'}` };
    }
  }
  if (p.latency.count > p.counters.rows) return { status: 422, code: 'invalid_rows', message: 'more latency observations than rows' };
  return undefined;
}

// --- Per-isolate telemetry state ---------------------------------------------------------------

interface Pending {
  model: string;
  profile: Profile;
}

interface Bucket {
  tokens: number;
  at: number;
}

const RATE_KEYS = 10_000;
const SEEN_KEYS = 50_000;
/** (model, version, minute) slots merged at once; a summary for a new slot past this waits (503). */
export const PENDING_SLOTS = 256;

function createBrowserTelemetry() {
  const pending = new Map<string, Pending>();
  /** Forwarded-but-failed merged summaries, retried with the same sequence (bounded). */
  const retry: { model: string; bytes: Uint8Array; rows: number }[] = [];
  const rate = new Map<string, Bucket>();
  /** (source, version, sequence) seen in this isolate: a browser's retried summary is counted once. */
  const seen = new Set<string>();
  // Random values are not allowed at global scope in workerd (createApp runs there): made on first use.
  let sourceId: string | undefined;
  let sequence = 0;
  let scheduled = false;
  const stats = { accepted: 0, duplicates: 0, rows: 0, forwarded: 0, forwardedRows: 0, forwardFailures: 0, dropped: 0, refused: {} as Record<string, number> };

  return {
    stats: () => ({ ...stats, refused: { ...stats.refused }, pending: pending.size, retrying: retry.length, source: sourceId }),
    refused(code: string) {
      stats.refused[code] = (stats.refused[code] ?? 0) + 1;
    },
    /** Token bucket per key (a browser source, or a client address): `perMin` a minute, burst `perMin`. */
    allow(source: string, perMin: number, now: number): number {
      let b = rate.get(source);
      if (!b) {
        if (rate.size >= RATE_KEYS) rate.delete(rate.keys().next().value!);
        b = { tokens: perMin, at: now };
      }
      rate.delete(source);
      rate.set(source, b);
      b.tokens = Math.min(perMin, b.tokens + ((now - b.at) / 60_000) * perMin);
      b.at = now;
      if (b.tokens < 1) return Math.ceil(((1 - b.tokens) / perMin) * 60_000);
      b.tokens -= 1;
      return 0;
    },
    /** Merges an accepted summary into its (model, version, minute) slot: 'duplicate' if seen, 'full' if no slot is free. */
    add(p: Profile): 'accepted' | 'duplicate' | 'full' {
      const id = `${p.source.id}\u0000${p.modelVersion}\u0000${p.sequence}`;
      if (seen.has(id)) {
        stats.duplicates++;
        return 'duplicate';
      }
      const key = `${p.model}\u0000${p.modelVersion}\u0000${Math.floor(p.windowStart / 60_000)}`;
      const cur = pending.get(key);
      if (!cur && pending.size >= PENDING_SLOTS) return 'full';
      const merged = cur ? mergeProfiles(cur.profile, p) : p;
      merged.source = { kind: 'merged', id: (sourceId ??= `browsers-${crypto.randomUUID().slice(0, 8)}`) };
      pending.set(key, { model: p.model, profile: merged });
      if (seen.size >= SEEN_KEYS) seen.delete(seen.values().next().value!);
      seen.add(id);
      stats.accepted++;
      stats.rows += p.counters.rows;
      return 'accepted';
    },
    /** Whether a flush should be scheduled now (one at a time). */
    claimSchedule(): boolean {
      if (scheduled) return false;
      scheduled = true;
      return true;
    },
    /** Sends every merged profile (and earlier failures) to the aggregators; keeps failures for the next flush. */
    async flush(agg: NonNullable<Env['AGGREGATOR']>): Promise<void> {
      scheduled = false;
      const out = retry.splice(0);
      for (const { model, profile } of pending.values()) {
        profile.sequence = ++sequence;
        out.push({ model, bytes: encodeSummary(profile), rows: profile.counters.rows });
      }
      pending.clear();
      // One ingestMany call per model's aggregator.
      const byModel = new Map<string, typeof out>();
      for (const s of out) {
        if (!byModel.has(s.model)) byModel.set(s.model, []);
        byModel.get(s.model)!.push(s);
      }
      for (const [model, batch] of byModel) {
        try {
          const results = await agg.get(agg.idFromName(model)).ingestMany(model, batch.map((s) => s.bytes));
          for (const res of results) if (res.status === 'rejected') console.error(`browser telemetry: aggregator refused a merged summary: ${res.reason}`);
          stats.forwarded += batch.length;
          stats.forwardedRows += batch.reduce((a, s) => a + s.rows, 0);
        } catch (err) {
          console.error('browser telemetry: forward failed, will retry', err);
          stats.forwardFailures++;
          for (const s of batch) {
            if (retry.length < 64) retry.push(s);
            else stats.dropped++;
          }
        }
      }
    },
  };
}

// --- Routes -------------------------------------------------------------------------------------

const json = (c: Context, status: number, code: string, message: string, field?: string, headers: Record<string, string> = {}) => {
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  return c.json({ error: { code, message, ...(field ? { field } : {}) } }, status as 400);
};

function num(v: string | undefined, fallback: number): number {
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export function mountBrowserRoutes(app: Hono<{ Bindings: Env }>, { models }: { models: Record<string, BundledModel> }): void {
  const telemetry = createBrowserTelemetry();
  const vars = (c: Context<{ Bindings: Env }>) => c.env as Env & BrowserVars;

  const modelOf = (c: Context<{ Bindings: Env }>) => {
    const name = c.req.param('name')!;
    return models[name];
  };

  /** A telemetry grant; a browser keeps its source id across renewals (?source=), else gets a new one. */
  const grant = async (c: Context<{ Bindings: Env }>, manifest: ModelManifest) => {
    const asked = c.req.query('source');
    const source = asked && /^[0-9a-f]{16}$/.test(asked) ? asked : Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    const expires = Date.now() + num(vars(c).TELEMETRY_TOKEN_TTL_MS, 15 * 60_000);
    const token = await signToken({ m: manifest.name, v: manifest.version, s: source, e: expires }, vars(c).TELEMETRY_SIGNING_KEY);
    return { endpoint: '/v1/telemetry', token, source, expires_at: expires };
  };

  // Apps on other origins may host the runtime (its module worker must be same-origin with the
  // page) and call these routes; nothing here uses cookies, tokens travel explicitly.
  const crossOrigin = cors({ origin: '*', allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['authorization', 'content-type'], maxAge: 600 });
  for (const path of ['/v1/models/:name/artifact', '/v1/models/:name/artifact/:sha256', '/v1/models/:name/telemetry-token', '/v1/telemetry']) app.use(path, crossOrigin);

  app.get('/v1/models/:name/artifact', async (c) => {
    const m = modelOf(c);
    if (!m) return json(c, 404, 'model_not_found', `unknown model "${c.req.param('name')}" (serving ${Object.keys(models).join(', ')})`, 'name');
    const manifest = m.manifest;
    const spec = manifest.artifacts[manifest.serve];
    const golden = GOLDEN[manifest.name];
    c.header('cache-control', 'no-store');
    return c.json({
      model: manifest.name,
      version: manifest.version,
      manifest,
      artifact: { url: `/v1/models/${manifest.name}/artifact/${spec.sha256}`, sha256: spec.sha256, bytes: spec.bytes, quantization: manifest.serve },
      golden: golden ? { tolerance: golden.tolerance, rows: golden.rows.slice(0, GOLDEN_ROWS).map((r) => ({ features: r.features, expected: r.expected[manifest.serve as 'int8'] })) } : null,
      telemetry: await grant(c, manifest),
    });
  });

  // A fresh token for a browser that already has the model (keeps its source id).
  app.get('/v1/models/:name/telemetry-token', async (c) => {
    const m = modelOf(c);
    if (!m) return json(c, 404, 'model_not_found', `unknown model "${c.req.param('name')}"`, 'name');
    c.header('cache-control', 'no-store');
    return c.json(await grant(c, m.manifest));
  });

  app.get('/v1/models/:name/artifact/:sha256', (c) => {
    const m = modelOf(c);
    if (!m) return json(c, 404, 'model_not_found', `unknown model "${c.req.param('name')}"`, 'name');
    const spec = m.manifest.artifacts[m.manifest.serve];
    if (c.req.param('sha256') !== spec.sha256) return json(c, 404, 'artifact_not_found', `model "${m.manifest.name}" serves ${spec.sha256}; fetch /v1/models/${m.manifest.name}/artifact again`, 'sha256');
    return c.body(m.artifact, 200, {
      'content-type': 'application/octet-stream',
      'cache-control': 'public, max-age=31536000, immutable',
      etag: `"${spec.sha256}"`,
      'x-model-sha256': spec.sha256,
      'x-model-version': m.manifest.version,
    });
  });

  app.get('/v1/telemetry', (c) => c.json(telemetry.stats()));

  app.post('/v1/telemetry', async (c) => {
    const v = vars(c);
    const header = c.req.header('authorization');
    const token = c.req.query('token') ?? (header?.startsWith('Bearer ') ? header.slice(7) : undefined);
    if (!token) {
      telemetry.refused('missing_token');
      return json(c, 401, 'missing_token', 'a telemetry token is required (?token= or authorization: Bearer), from GET /v1/models/{name}/artifact', 'token', { 'www-authenticate': 'Bearer' });
    }
    const verdict = await verifyToken(token, v.TELEMETRY_SIGNING_KEY);
    if ('error' in verdict) {
      telemetry.refused(verdict.error);
      return json(c, 401, verdict.error, verdict.error === 'token_expired' ? 'the telemetry token has expired; fetch the artifact descriptor again' : 'the telemetry token is not valid', 'token', { 'www-authenticate': 'Bearer' });
    }
    const { claims } = verdict;
    const m = models[claims.m];
    if (!m) {
      telemetry.refused('model_not_found');
      return json(c, 404, 'model_not_found', `model "${claims.m}" is not served here`, 'token');
    }
    const now = Date.now();
    // Per token, and per address: tokens are free to mint, so the per-token limit alone bounds
    // a well-behaved page, not a client minting a token per summary.
    const ip = c.req.header('cf-connecting-ip');
    const wait = Math.max(telemetry.allow(`s:${claims.s}`, num(v.TELEMETRY_RATE_PER_MIN, 60) || 60, now), ip ? telemetry.allow(`ip:${ip}`, num(v.TELEMETRY_RATE_PER_IP_PER_MIN, 600) || 600, now) : 0);
    if (wait > 0) {
      telemetry.refused('rate_limited');
      return json(c, 429, 'rate_limited', 'too many summaries for this token or address', 'token', { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) });
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
    const why = refuse(p, claims, m.manifest, now);
    if (why) {
      telemetry.refused(why.code);
      return json(c, why.status, why.code, why.message, 'body');
    }
    let added: 'accepted' | 'duplicate' | 'full';
    try {
      added = telemetry.add(p);
    } catch (err) {
      // A sketch that cannot merge with the others (e.g. another categorical capacity).
      if (!(err instanceof SketchMergeError)) throw err;
      telemetry.refused('unexpected_sketch');
      return json(c, 422, 'unexpected_sketch', err.message, 'body');
    }
    if (added === 'full') {
      telemetry.refused('busy');
      return json(c, 503, 'busy', `${PENDING_SLOTS} windows are being merged here; send this one again later`, undefined, { 'retry-after': '5' });
    }
    if (added === 'accepted' && c.env.AGGREGATOR && telemetry.claimSchedule()) {
      const agg = c.env.AGGREGATOR;
      const flushMs = num(v.TELEMETRY_BROWSER_FLUSH_MS, 5000);
      const work = new Promise((r) => setTimeout(r, flushMs)).then(() => telemetry.flush(agg));
      try {
        c.executionCtx.waitUntil(work);
      } catch {
        // No execution context (app.request in tests): the timer runs anyway.
      }
    }
    return c.json({ status: added, rows: p.counters.rows }, 202);
  });

  app.get('/demo', (c) => c.html(demoPage()));
  app.get('/demo-sw.js', (c) => c.body(demoServiceWorker(), 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }));
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
