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
 *
 * `/demo` (the on-device movie recommendation demo) and `/demo-sw.js` (its service worker) are
 * static assets, not routes: browser/demo/, built by browser/build.ts.
 *
 * Secrets: TELEMETRY_SIGNING_KEY signs tokens. When it is unset, each isolate signs with a
 * random key of its own: tokens then verify only in the isolate that issued them, which is
 * right for `wrangler dev` (one isolate) and fails closed in production (refused, counted).
 */
import type { Context, Hono } from 'hono';
import { cors } from 'hono/cors';
import {
  CategoricalSketch,
  decodeSummary,
  encodeSummary,
  mergeInto,
  SketchMergeError,
  SummaryDecodeError,
  TDigest,
  type ArtifactDescriptor,
  type ErrorBodyV1,
  type ModelManifest,
  type Profile,
  type TelemetryGrant,
} from '../core/index.ts';
import flightGolden from '../models/flight-delay/golden.json';
import movieGolden from '../models/movielens-topk/golden.json';
import type { Env } from './env.ts';
import { bearerToken as bearer, checkOperator } from './auth.ts';
import { configNumber } from './config.ts';
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
  /**
   * Rows one browser source may report per minute (burst the same), default 1000: about 17
   * predictions a second from one page. A summary claiming more is refused (422); one that fits
   * the limit but not what is left of this minute's allowance is told to come back (429).
   */
  TELEMETRY_SOURCE_ROWS_PER_MIN?: string;
  /** Telemetry tokens (artifact descriptors and renewals) minted per client address per minute. Default 30. */
  TELEMETRY_TOKENS_PER_IP_PER_MIN?: string;
}

/** Largest summary body accepted, bytes. A movielens-topk browser window is 5-17 KB (full sketches: 17 KB). */
export const TELEMETRY_MAX_BYTES = 64 * 1024;
/** Rows one browser source may report per minute, by default (TELEMETRY_SOURCE_ROWS_PER_MIN). */
export const SOURCE_ROWS_PER_MIN = 1000;
/** How long after expiry a token still proves which source a renewing browser is (its source id is kept). */
const RENEW_GRACE_MS = 24 * 3600_000;
/**
 * Counters a browser summary may carry (core's profiler: rows and outcomes; mergedWindows when
 * its outbox merged windows while offline). Every one of them counts at most one per row.
 */
const BROWSER_COUNTERS = new Set(['rows', 'errors', 'cacheHits', 'fallbacks', 'mergedWindows']);
/** Compression of every digest a browser's profiler makes (core's createWindowProfiler default). */
const COMPRESSION = 100;
/** Longest latency a browser may report, ms (a minute: far past any budget, short of a hostile 1e300). */
const MAX_LATENCY_MS = 60_000;
/** Longest category a browser may report: what core/validate.ts accepts for a categorical value and a list id. */
const MAX_LABEL = { categorical: 256, 'categorical-list': 64 } as const;
/** Oldest window start accepted (a browser may have been offline), and the clock skew allowed. */
const MAX_AGE_MS = 24 * 3600_000;
const MAX_SKEW_MS = 5 * 60_000;
/** The extra categorical feature a browser summary carries: which backend answered each row. */
export const BACKEND_FEATURE = 'backend';
const BACKENDS = ['webgpu', 'wasm', 'edge', 'cache'];
/** Golden rows shipped to browsers for the backend check (each backend runs them all). */
const GOLDEN_ROWS = 16;

type Golden = { tolerance: Record<string, number>; rows: { features: Record<string, unknown>; expected: { int8: Record<string, number | number[]> } }[] };
const GOLDEN = new Map<string, Golden>([
  ['flight-delay', flightGolden as never],
  ['movielens-topk', movieGolden as never],
]);

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
const b64url = (b: Uint8Array) =>
  btoa(String.fromCharCode(...b))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
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
export async function verifyToken(
  token: string,
  secret: string | undefined,
  now = Date.now(),
): Promise<{ claims: TokenClaims } | { error: 'invalid_token' | 'token_expired' }> {
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
  if (typeof claims?.m !== 'string' || typeof claims.v !== 'string' || typeof claims.s !== 'string' || typeof claims.e !== 'number')
    return { error: 'invalid_token' };
  if (claims.e <= now) return { error: 'token_expired' };
  return { claims };
}

// --- Summary checks ---------------------------------------------------------------------------

/** What a browser's sketch of one feature or output must look like, from the manifest. */
interface SketchRule {
  kind: 'numeric' | 'categorical';
  /** Largest weight the sketch may hold per row (an id list holds up to maxLength ids a row; a top-k output k). */
  perRow: number;
  /** Categorical: the capacity the profiler gives it, and the longest label, or the only labels allowed. */
  capacity?: number;
  maxLabel?: number;
  labels?: ReadonlySet<string>;
  /** Numeric: the values the edge's validation lets through (a feature's range, a probability); NaN and ±Infinity never. */
  range?: [number, number];
}

const rulesCache = new WeakMap<ModelManifest, { features: Map<string, SketchRule>; outputs: Map<string, SketchRule> }>();

/** The rule for each feature and output of a browser summary, from the manifest (see SketchRule). */
function sketchRules(m: ModelManifest): { features: Map<string, SketchRule>; outputs: Map<string, SketchRule> } {
  let rules = rulesCache.get(m);
  if (rules) return rules;
  const features = new Map<string, SketchRule>([[BACKEND_FEATURE, { kind: 'categorical', perRow: 1, capacity: 8, labels: new Set(BACKENDS) }]]);
  for (const f of m.features) {
    if (f.kind === 'numeric') features.set(f.name, { kind: 'numeric', perRow: 1, range: f.range });
    else if (f.kind === 'categorical') features.set(f.name, { kind: 'categorical', perRow: 1, capacity: f.sketchCapacity, maxLabel: MAX_LABEL.categorical });
    else {
      features.set(f.name, { kind: 'categorical', perRow: f.maxLength, capacity: f.sketchCapacity, maxLabel: MAX_LABEL['categorical-list'] });
      features.set(`${f.name}_length`, { kind: 'numeric', perRow: 1, range: [f.minLength, f.maxLength] });
    }
  }
  const outputs = new Map<string, SketchRule>();
  for (const o of m.sketchedOutputs) {
    // An output [N, K] whose K is a request parameter holds up to that parameter's maximum per row.
    const spec = m.outputs.find((x) => x.name === o.name);
    const inner = spec?.shape.slice(1) ?? [];
    let perRow = 1;
    for (const d of inner) {
      const param = typeof d === 'string' ? m.parameters?.find((p) => p.name.toUpperCase() === d) : undefined;
      perRow *= typeof d === 'number' ? d : (param?.range[1] ?? 1);
    }
    // A binary classifier's score is a probability.
    const range: [number, number] | undefined = m.task === 'binary-classification' && o.name === m.outputs[0]?.name ? [0, 1] : undefined;
    outputs.set(
      o.name,
      o.kind === 'numeric' ? { kind: 'numeric', perRow, range } : { kind: 'categorical', perRow, capacity: o.sketchCapacity ?? 256, maxLabel: 64 },
    );
  }
  rules = { features, outputs };
  rulesCache.set(m, rules);
  return rules;
}

type Refusal = { status: 403 | 422; code: string; message: string };

/** What the artifact descriptor and the renewal route give a browser (core/contracts.ts). */
type Grant = TelemetryGrant;

/**
 * Why a decoded browser summary cannot be accepted under these claims, or undefined. Nothing a
 * browser reports is trusted beyond what its own rows could have produced: only known counters,
 * each at most the rows; rows at most one source's allowance per minute; every sketch of the
 * manifest's kind and capacity, its weight at most what the rows could add, categories no longer
 * than the edge's validation allows, numeric values inside the feature's range. So a summary that
 * passes is one an honest page could have sent, and one source's say is bounded by its rows.
 */
function refuse(p: Profile, claims: TokenClaims, m: ModelManifest, now: number, maxRows: number): Refusal | undefined {
  if (p.model !== claims.m) return { status: 403, code: 'token_scope', message: `the token is for model "${claims.m}", the summary for "${p.model}"` };
  if (p.source.kind !== 'browser' || p.source.id !== claims.s)
    return { status: 403, code: 'token_scope', message: `the summary's source must be browser:${claims.s}, got ${p.source.kind}:${p.source.id}` };
  if (p.modelVersion !== m.version)
    return { status: 422, code: 'unknown_version', message: `model "${m.name}" serves browsers version ${m.version}, not ${p.modelVersion}` };
  if (p.windowStart < now - MAX_AGE_MS || p.windowEnd > now + MAX_SKEW_MS)
    return { status: 422, code: 'window_out_of_range', message: 'the summary window is older than 24 h or in the future' };
  const rows = p.counters.rows;
  if (rows < 1 || rows > maxRows)
    return { status: 422, code: 'invalid_rows', message: `rows must be in [1, ${maxRows}] (one source's rows per minute), got ${rows}` };
  for (const [name, value] of Object.entries(p.counters)) {
    if (!BROWSER_COUNTERS.has(name))
      return { status: 422, code: 'unknown_counter', message: `counter "${name}" is not one a browser reports (${[...BROWSER_COUNTERS].join(', ')})` };
    if (value > rows) return { status: 422, code: 'invalid_counter', message: `counter "${name}" is ${value}, more than the ${rows} rows` };
  }
  const weight = (s: TDigest) => s.count + s.nanCount + s.posInfCount + s.negInfCount;
  if (weight(p.latency) > rows) return { status: 422, code: 'invalid_rows', message: 'more latency observations than rows' };
  if (p.latency.compression !== COMPRESSION)
    return { status: 422, code: 'invalid_sketch', message: `latency: compression ${p.latency.compression} is not the profiler's ${COMPRESSION}` };
  if (
    p.latency.nanCount + p.latency.posInfCount + p.latency.negInfCount > 0 ||
    (p.latency.count > 0 && (p.latency.min < 0 || p.latency.max > MAX_LATENCY_MS))
  ) {
    return { status: 422, code: 'invalid_sketch', message: `latency: values must be finite ms in [0, ${MAX_LATENCY_MS}]` };
  }
  const rules = sketchRules(m);
  for (const [section, live, expected] of [
    ['feature', p.features, rules.features],
    ['output', p.outputs, rules.outputs],
  ] as const) {
    for (const [name, s] of live) {
      const rule = expected.get(name);
      const actual = s instanceof TDigest ? 'numeric' : s instanceof CategoricalSketch ? 'categorical' : 'histogram';
      if (!rule || rule.kind !== actual)
        return { status: 422, code: 'unexpected_sketch', message: `${section} "${name}" is ${rule ? `not a ${rule.kind} sketch` : 'not in the manifest'}` };
      const bound = rows * rule.perRow;
      const bad = (message: string): Refusal => ({ status: 422, code: 'invalid_sketch', message: `${section} "${name}": ${message}` });
      if (s instanceof TDigest) {
        // A digest of another compression would decide the compression of every digest merged into it.
        if (s.compression !== COMPRESSION) return bad(`compression ${s.compression} is not the profiler's ${COMPRESSION}`);
        if (weight(s) > bound) return bad(`weight ${weight(s)} is more than ${rows} rows can add (${bound})`);
        if (s.nanCount || s.posInfCount || s.negInfCount) return bad('holds NaN or infinite values, which neither the edge nor a model answer gives');
        if (rule.range && s.count > 0 && (s.min < rule.range[0] || s.max > rule.range[1]))
          return bad(`values [${s.min}, ${s.max}] are outside the feature's range [${rule.range[0]}, ${rule.range[1]}]`);
      } else if (s instanceof CategoricalSketch) {
        if (s.capacity !== rule.capacity) return bad(`capacity ${s.capacity} is not the manifest's ${rule.capacity}`);
        if (s.count > bound) return bad(`weight ${s.count} is more than ${rows} rows can add (${bound})`);
        if (s.maxCount > s.count || s.absentBound > s.count) return bad('a count or its bound exceeds the total');
        for (const { value } of s.top()) {
          if (rule.labels ? !rule.labels.has(value) : value.length > rule.maxLabel!) {
            return bad(
              rule.labels
                ? `category ${JSON.stringify(value.slice(0, 32))} is not one of ${[...rule.labels].join(', ')}`
                : `a category is longer than ${rule.maxLabel} characters`,
            );
          }
        }
      }
    }
  }
  return undefined;
}

// --- Per-isolate telemetry state ---------------------------------------------------------------

interface Pending {
  model: string;
  profile: Profile;
  /** Hashed client address groups whose summaries this slot merges (saturates at MAX_SLOT_GROUPS). */
  groups: Set<string>;
}

interface Bucket {
  tokens: number;
  at: number;
}

const RATE_KEYS = 10_000;
const SEEN_KEYS = 50_000;
/** Address groups remembered per slot: far above any ALERT_MIN_SOURCES, so the count they give is exact where it matters. */
const MAX_SLOT_GROUPS = 64;
/** New slots one address group may open between two flushes (so that one client cannot take them all). */
export const SLOTS_PER_GROUP = 16;
/** (source, minute) row counts remembered (see add): a bounded map, oldest first out. */
const WINDOW_ROW_KEYS = 50_000;
/** (model, version, minute) slots merged at once; a summary for a new slot past this waits (503). */
export const PENDING_SLOTS = 256;

function createBrowserTelemetry() {
  const pending = new Map<string, Pending>();
  /** Forwarded-but-failed merged summaries, retried with the same sequence (bounded). */
  const retry: { model: string; bytes: Uint8Array; rows: number; groups: string[] }[] = [];
  /** Slots each address group opened since the last flush. */
  const opened = new Map<string, number>();
  /** Rows each source reported for each window minute: its share of a window is capped, whenever it reports. */
  const windowRows = new Map<string, number>();
  const rate = new Map<string, Bucket>();
  /** (source, version, sequence) seen in this isolate: a browser's retried summary is counted once. */
  const seen = new Set<string>();
  // Random values are not allowed at global scope in workerd (createApp runs there): made on first use.
  let sourceId: string | undefined;
  let sequence = 0;
  let scheduled = false;
  const stats = {
    accepted: 0,
    duplicates: 0,
    rows: 0,
    forwarded: 0,
    forwardedRows: 0,
    forwardFailures: 0,
    dropped: 0,
    unencodable: 0,
    tokens: 0,
    refused: {} as Record<string, number>,
  };

  return {
    stats: () => ({ ...stats, refused: { ...stats.refused }, pending: pending.size, retrying: retry.length, source: sourceId }),
    refused(code: string) {
      stats.refused[code] = (stats.refused[code] ?? 0) + 1;
    },
    minted() {
      stats.tokens++;
    },
    /**
     * Token bucket per key (a browser source, a client address): `perMin` units a minute, burst
     * `perMin`; `cost` units are taken (a summary, or its rows). Returns 0 when allowed, else
     * the ms until `cost` units will be there (Infinity when `cost` exceeds the burst).
     */
    allow(key: string, perMin: number, now: number, cost = 1): number {
      let b = rate.get(key);
      if (!b) {
        if (rate.size >= RATE_KEYS) rate.delete(rate.keys().next().value!);
        b = { tokens: perMin, at: now };
      }
      rate.delete(key);
      rate.set(key, b);
      b.tokens = Math.min(perMin, b.tokens + ((now - b.at) / 60_000) * perMin);
      b.at = now;
      if (cost > perMin) return Infinity;
      if (b.tokens < cost) return Math.ceil(((cost - b.tokens) / perMin) * 60_000);
      b.tokens -= cost;
      return 0;
    },
    /**
     * Merges an accepted summary into its (model, version, minute) slot, in place: 'duplicate'
     * if seen, 'full' if no slot is free. Throws SketchMergeError (the slot left as it was) when
     * it cannot merge; the summary is then not counted as seen.
     */
    /** Whether this source may still report p's rows for p's window minute (see add). */
    fitsWindow(p: Profile, rowsPerWindow: number): boolean {
      return (windowRows.get(`${p.source.id}\u0000${p.modelVersion}\u0000${Math.floor(p.windowStart / 60_000)}`) ?? 0) + p.counters.rows <= rowsPerWindow;
    },
    add(p: Profile, group: string, rowsPerWindow: number): 'accepted' | 'duplicate' | 'full' | 'window_full' | 'group_full' {
      const id = `${p.source.id}\u0000${p.modelVersion}\u0000${p.sequence}`;
      if (seen.has(id)) {
        stats.duplicates++;
        return 'duplicate';
      }
      const minute = Math.floor(p.windowStart / 60_000);
      // One source's rows in one window minute, whenever they are reported (late, or in pieces).
      const share = `${p.source.id}\u0000${p.modelVersion}\u0000${minute}`;
      const had = windowRows.get(share) ?? 0;
      if (had + p.counters.rows > rowsPerWindow) return 'window_full';
      const key = `${p.model}\u0000${p.modelVersion}\u0000${minute}`;
      const cur = pending.get(key);
      if (!cur && pending.size >= PENDING_SLOTS) return 'full';
      if (!cur && (opened.get(group) ?? 0) >= SLOTS_PER_GROUP) return 'group_full';
      if (cur) {
        mergeInto(cur.profile, p);
        if (cur.groups.size < MAX_SLOT_GROUPS) cur.groups.add(group);
      } else {
        pending.set(key, { model: p.model, profile: p, groups: new Set([group]) });
        opened.set(group, (opened.get(group) ?? 0) + 1);
      }
      windowRows.delete(share);
      windowRows.set(share, had + p.counters.rows);
      if (windowRows.size > WINDOW_ROW_KEYS) windowRows.delete(windowRows.keys().next().value!);
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
    /**
     * Sends every merged profile (and earlier failures) to the aggregators; keeps failures for
     * the next flush. The slots are emptied first, and a slot that cannot be encoded is dropped
     * and counted, so nothing can wedge a flush or leave a slot taken.
     */
    async flush(agg: NonNullable<Env['AGGREGATOR']>): Promise<void> {
      scheduled = false;
      const out = retry.splice(0);
      const slots = [...pending.values()];
      pending.clear();
      opened.clear();
      for (const { model, profile, groups } of slots) {
        // Forwarded as a browser summary of this isolate's own: the aggregator tells browser
        // evidence from the edge's by the source kind; the address groups travel beside it.
        profile.source = { kind: 'browser', id: (sourceId ??= `browsers-${crypto.randomUUID().slice(0, 8)}`) };
        profile.sequence = ++sequence;
        try {
          out.push({ model, bytes: encodeSummary(profile), rows: profile.counters.rows, groups: [...groups] });
        } catch (err) {
          console.error('browser telemetry: a merged window cannot be encoded, dropped', err);
          stats.unencodable++;
          stats.dropped++;
        }
      }
      // One ingestMany call per model's aggregator.
      const byModel = new Map<string, typeof out>();
      for (const s of out) {
        if (!byModel.has(s.model)) byModel.set(s.model, []);
        byModel.get(s.model)!.push(s);
      }
      for (const [model, batch] of byModel) {
        try {
          const results = await agg.get(agg.idFromName(model)).ingestMany(
            model,
            batch.map((s) => s.bytes),
            batch.map((s) => s.groups),
          );
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
  return c.json({ error: { code, message, ...(field ? { field } : {}) } } satisfies ErrorBodyV1, status as 400);
};

/** A numeric setting (see worker/config.ts): unset gives the default, anything else must be a number >= min. */
const num = (v: string | undefined, fallback: number, name: string, min = 0) => configNumber(v, fallback, name, min);

/** The client's address as Cloudflare (and `wrangler dev`) reports it, or undefined. */
const clientAddress = (c: Context) => c.req.header('cf-connecting-ip') || undefined;

/** The first three 16-bit groups of an IPv6 address ("::" expanded), canonical hex. */
function ipv6Prefix48(ip: string): string {
  const [head, tail] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const full = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return full
    .slice(0, 3)
    .map((x) => (parseInt(x, 16) || 0).toString(16))
    .join(':');
}

const groupCache = new Map<string, Promise<string>>();
/**
 * The client's address group, hashed: its IPv4 /24 or IPv6 /48 (what one client rarely spans),
 * as 16 hex digits of SHA-256 over the group and the signing key, so that the aggregator counts
 * distinct networks (ALERT_MIN_SOURCES) without storing an address.
 */
function addressGroup(ip: string, key: string | undefined): Promise<string> {
  const group = ip.includes(':') ? ipv6Prefix48(ip) : ip.split('.').slice(0, 3).join('.');
  const id = `${group}\u0000${key ?? ''}`;
  let h = groupCache.get(id);
  if (!h) {
    if (groupCache.size >= RATE_KEYS) groupCache.delete(groupCache.keys().next().value!);
    h = crypto.subtle
      .digest('SHA-256', te.encode(id))
      .then((d) => Array.from(new Uint8Array(d).subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(''));
    groupCache.set(id, h);
  }
  return h;
}

export function mountBrowserRoutes(app: Hono<{ Bindings: Env }>, { models }: { models: Record<string, BundledModel> }): void {
  const telemetry = createBrowserTelemetry();
  // Own-property lookups only: a model name comes from the client ("__proto__", "constructor").
  const byName = new Map(Object.entries(models));
  const vars = (c: Context<{ Bindings: Env }>) => c.env as Env & BrowserVars;

  const modelOf = (c: Context<{ Bindings: Env }>) => byName.get(c.req.param('name')!);

  /**
   * A telemetry grant, or why none is given. The source id is the worker's: a new random one,
   * or, for a browser renewing (`authorization: Bearer <its previous token>`, valid or expired
   * less than a day), the one that token names, so a client can never speak for a source it
   * was not given. Minting is limited per client address; an unknown address gets no token.
   */
  const grant = async (
    c: Context<{ Bindings: Env }>,
    manifest: ModelManifest,
  ): Promise<Grant | { status: 403 | 429; code: string; message: string; retryMs?: number }> => {
    const v = vars(c);
    const ip = clientAddress(c);
    if (!ip) return { status: 403, code: 'address_unknown', message: 'telemetry tokens are issued only to clients whose address is known (CF-Connecting-IP)' };
    const wait = telemetry.allow(`t:${ip}`, num(v.TELEMETRY_TOKENS_PER_IP_PER_MIN, 30, 'TELEMETRY_TOKENS_PER_IP_PER_MIN', 1), Date.now());
    if (wait > 0) return { status: 429, code: 'rate_limited', message: 'too many telemetry tokens for this address', retryMs: wait };
    let source: string | undefined;
    const previous = bearer(c.req.header('authorization'));
    if (previous) {
      const old = await verifyToken(previous, v.TELEMETRY_SIGNING_KEY, Date.now() - RENEW_GRACE_MS);
      if ('claims' in old && old.claims.m === manifest.name) source = old.claims.s; // proto-safe: narrows verifyToken's own union
    }
    source ??= Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    const expires = Date.now() + num(v.TELEMETRY_TOKEN_TTL_MS, 15 * 60_000, 'TELEMETRY_TOKEN_TTL_MS', 1000);
    const token = await signToken({ m: manifest.name, v: manifest.version, s: source, e: expires }, v.TELEMETRY_SIGNING_KEY);
    telemetry.minted();
    return { endpoint: '/v1/telemetry', token, source, expires_at: expires };
  };

  // Apps on other origins may host the runtime (its module worker must be same-origin with the
  // page) and call these routes; nothing here uses cookies, tokens travel explicitly.
  const crossOrigin = cors({ origin: '*', allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['authorization', 'content-type'], maxAge: 600 });
  for (const path of ['/v1/models/:name/artifact', '/v1/models/:name/artifact/:sha256', '/v1/models/:name/telemetry-token', '/v1/telemetry'])
    app.use(path, crossOrigin);

  app.get('/v1/models/:name/artifact', async (c) => {
    const m = modelOf(c);
    if (!m) return json(c, 404, 'model_not_found', `unknown model "${c.req.param('name')}" (serving ${[...byName.keys()].join(', ')})`, 'name');
    const manifest = m.manifest;
    const spec = manifest.artifacts[manifest.serve];
    const golden = GOLDEN.get(manifest.name);
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
            rows: golden.rows.slice(0, GOLDEN_ROWS).map((r) => ({ features: r.features, expected: r.expected[manifest.serve as 'int8'] })),
          }
        : null,
      telemetry: g && 'token' in g ? g : null, // proto-safe: narrows grant()'s own union
    } satisfies ArtifactDescriptor);
  });

  // A fresh token for a browser that already has the model (keeps its source id when it shows its previous token).
  app.get('/v1/models/:name/telemetry-token', async (c) => {
    const m = modelOf(c);
    if (!m) return json(c, 404, 'model_not_found', `unknown model "${c.req.param('name')}"`, 'name');
    if (!c.env.AGGREGATOR) return json(c, 404, 'telemetry_unavailable', 'no aggregator is bound (AGGREGATOR): telemetry is off', 'name');
    const g = await grant(c, m.manifest);
    // proto-safe: narrows grant()'s own union
    if (!('token' in g)) {
      telemetry.refused(g.code);
      return json(c, g.status, g.code, g.message, undefined, g.retryMs ? { 'retry-after': String(Math.max(1, Math.ceil(g.retryMs / 1000))) } : {});
    }
    c.header('cache-control', 'no-store');
    return c.json(g);
  });

  app.get('/v1/models/:name/artifact/:sha256', (c) => {
    const m = modelOf(c);
    if (!m) return json(c, 404, 'model_not_found', `unknown model "${c.req.param('name')}"`, 'name');
    const spec = m.manifest.artifacts[m.manifest.serve];
    if (c.req.param('sha256') !== spec.sha256)
      return json(
        c,
        404,
        'artifact_not_found',
        `model "${m.manifest.name}" serves ${spec.sha256}; fetch /v1/models/${m.manifest.name}/artifact again`,
        'sha256',
      );
    return c.body(m.artifact, 200, {
      'content-type': 'application/octet-stream',
      'cache-control': 'public, max-age=31536000, immutable',
      etag: `"${spec.sha256}"`,
      'x-model-sha256': spec.sha256,
      'x-model-version': m.manifest.version,
    });
  });

  // This isolate's figures: operators only (they show sources and refusals).
  app.get('/v1/telemetry', (c) => {
    checkOperator(c);
    return c.json(telemetry.stats());
  });

  app.post('/v1/telemetry', async (c) => {
    const v = vars(c);
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
    const verdict = await verifyToken(token, v.TELEMETRY_SIGNING_KEY);
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
    const m = byName.get(claims.m);
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
    const wait = Math.max(
      telemetry.allow(`s:${claims.s}`, num(v.TELEMETRY_RATE_PER_MIN, 60, 'TELEMETRY_RATE_PER_MIN', 1), now),
      telemetry.allow(`ip:${ip}`, num(v.TELEMETRY_RATE_PER_IP_PER_MIN, 600, 'TELEMETRY_RATE_PER_IP_PER_MIN', 1), now),
    );
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
    const rowsPerMin = num(v.TELEMETRY_SOURCE_ROWS_PER_MIN, SOURCE_ROWS_PER_MIN, 'TELEMETRY_SOURCE_ROWS_PER_MIN', 1);
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
      added = telemetry.add(p, await addressGroup(ip, v.TELEMETRY_SIGNING_KEY), rowsPerMin);
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
      const flushMs = num(v.TELEMETRY_BROWSER_FLUSH_MS, 5000, 'TELEMETRY_BROWSER_FLUSH_MS');
      const work = new Promise((r) => setTimeout(r, flushMs)).then(() => telemetry.flush(agg));
      try {
        c.executionCtx.waitUntil(work);
      } catch {
        // No execution context (app.request in tests): the timer runs anyway.
      }
    }
    return c.json({ status: added, rows: p.counters.rows }, 202);
  });
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
