/**
 * Browser telemetry, the judgement and the state behind POST /v1/telemetry (routes/browser.ts):
 * the tokens the worker signs (HMAC-SHA256, WebCrypto) and verifies, the rules a summary must
 * keep to be one an honest page could have sent (refuse), the rate limits, and the per-isolate
 * merge of accepted summaries by (model, version, minute) that is forwarded to each model's
 * DriftAggregator as one write per interval. Client networks are counted as hashed address
 * groups (addressGroup), never stored as addresses.
 */
import {
  encodeSummary,
  MAX_CLASSES,
  MAX_SERVED_ITEMS,
  mergeInto,
  outcomeTask,
  predictionTime,
  type ModelManifest,
  type PredictionRecord,
  type Profile,
  type TDigest,
  type TelemetryGrant,
} from '../../core/index.ts';
import { SOURCE_ROWS_PER_MIN } from '../config.ts';

import { byModel } from './telemetry.ts';
export { SOURCE_ROWS_PER_MIN };

/** Largest summary body accepted, bytes. The default recommender's browser window is 5-17 KB (full sketches: 17 KB). */
export const TELEMETRY_MAX_BYTES = 64 * 1024;
/** How long after expiry a token still proves which source a renewing browser is (its source id is kept). */
export const RENEW_GRACE_MS = 24 * 3600_000;
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

export type Refusal = { status: 403 | 422; code: string; message: string };

/** What the artifact descriptor and the renewal route give a browser (core/contracts.ts). */
export type Grant = TelemetryGrant;

/**
 * Why a decoded browser summary cannot be accepted under these claims, or undefined. Nothing a
 * browser reports is trusted beyond what its own rows could have produced: only known counters,
 * each at most the rows; rows at most one source's allowance per minute; every sketch of the
 * manifest's kind and capacity, its weight at most what the rows could add, categories no longer
 * than the edge's validation allows, numeric values inside the feature's range. So a summary that
 * passes is one an honest page could have sent, and one source's say is bounded by its rows.
 */
export function refuse(p: Profile, claims: TokenClaims, m: ModelManifest, now: number, maxRows: number): Refusal | undefined {
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
      const actual = s.kind === 'tdigest' ? 'numeric' : s.kind;
      if (!rule || rule.kind !== actual)
        return { status: 422, code: 'unexpected_sketch', message: `${section} "${name}" is ${rule ? `not a ${rule.kind} sketch` : 'not in the manifest'}` };
      const bound = rows * rule.perRow;
      const bad = (message: string): Refusal => ({ status: 422, code: 'invalid_sketch', message: `${section} "${name}": ${message}` });
      if (s.kind === 'tdigest') {
        // A digest of another compression would decide the compression of every digest merged into it.
        if (s.compression !== COMPRESSION) return bad(`compression ${s.compression} is not the profiler's ${COMPRESSION}`);
        if (weight(s) > bound) return bad(`weight ${weight(s)} is more than ${rows} rows can add (${bound})`);
        if (s.nanCount || s.posInfCount || s.negInfCount) return bad('holds NaN or infinite values, which neither the edge nor a model answer gives');
        if (rule.range && s.count > 0 && (s.min < rule.range[0] || s.max > rule.range[1]))
          return bad(`values [${s.min}, ${s.max}] are outside the feature's range [${rule.range[0]}, ${rule.range[1]}]`);
      } else if (s.kind === 'categorical') {
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

// --- Predictions made on the device (the join of late labels) ------------------------------------

/** Records one POST /v1/telemetry/predictions may carry, and its largest body in bytes. */
export const MAX_BROWSER_PREDICTIONS = 500;
export const PREDICTIONS_MAX_BYTES = 256 * 1024;
/** Feedback items one call authorised by a browser's telemetry token may carry (FEEDBACK_TOKEN and operators: core's MAX_FEEDBACK). */
export const MAX_BROWSER_FEEDBACK = 100;
/** Oldest prediction a browser may report (it may have been offline), at most; the join horizon when shorter. */
export const MAX_PREDICTION_AGE_MS = MAX_AGE_MS;

/** A refusal of a browser's request body, naming the field at fault (`predictions[3].items`). */
export type FieldRefusal = { status: 400 | 413 | 422; code: string; message: string; field: string };

const RECORD_FIELDS = ['id', 'version', 'value', 'items'];
const isPlainObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
/** An integer id as String(number) writes it, as core's joinValue writes a ranking's integer ids. */
const isCanonicalInteger = (s: string) => /^-?\d{1,16}$/.test(s) && Number.isSafeInteger(Number(s)) && String(Number(s)) === s;

/** Longest list a ranking's output can serve: its K, or the request parameter K names at its largest; at most MAX_SERVED_ITEMS. */
function longestList(m: ModelManifest, output: string): number {
  const spec = m.outputs.find((o) => o.name === output);
  let n = 1;
  for (const d of spec?.shape.slice(1) ?? []) {
    const param = typeof d === 'string' ? m.parameters?.find((p) => p.name.toUpperCase() === d) : undefined;
    n *= typeof d === 'number' ? d : (param?.range[1] ?? MAX_SERVED_ITEMS);
  }
  return Math.min(n, MAX_SERVED_ITEMS);
}

/**
 * The records of a browser's `{"predictions": [{id, version, value, items?}]}`, or the first
 * reason it cannot be accepted, naming the field. Nothing is taken on trust: the body has that
 * shape and no other key (own keys only, so "__proto__" is just an unknown field); 1 to
 * `maxRecords` records (MAX_BROWSER_PREDICTIONS), ids distinct, each an id this edge's format allows whose time
 * is within `maxAgeMs` before `now` and MAX_SKEW_MS after; the version one the registry serves for
 * `model` (`manifestOf`); the value what that version's task could answer (a probability, a class
 * index, a finite number) and, for a ranking, its list: 1 to the model's longest distinct ids, each
 * as the model writes them, with the value their count. The time kept is the id's.
 */
export function checkPredictions(
  body: unknown,
  manifestOf: (version: string) => ModelManifest | undefined,
  now: number,
  maxAgeMs: number,
  maxRecords = MAX_BROWSER_PREDICTIONS,
): { records: PredictionRecord[] } | FieldRefusal {
  const bad = (field: string, message: string, code = 'invalid_prediction', status: FieldRefusal['status'] = 422): FieldRefusal => ({
    status,
    code,
    message,
    field,
  });
  if (!isPlainObject(body)) return bad('body', 'the body must be {"predictions": [{"id", "version", "value", "items"?}, ...]}', 'invalid_predictions', 400);
  for (const k of Object.keys(body))
    if (k !== 'predictions') return bad(k.slice(0, 64), `unknown field "${k.slice(0, 64)}" (known: predictions)`, 'invalid_predictions', 400);
  const list = Object.hasOwn(body, 'predictions') ? body.predictions : undefined;
  if (!Array.isArray(list) || list.length === 0) return bad('predictions', 'predictions must be an array of 1 or more records', 'invalid_predictions', 400);
  if (list.length > maxRecords) return bad('predictions', `at most ${maxRecords} records a call, got ${list.length}`, 'too_many_predictions', 413);
  const seen = new Set<string>();
  const records: PredictionRecord[] = [];
  for (let i = 0; i < list.length; i++) {
    const r: unknown = list[i];
    const at = `predictions[${i}]`;
    if (!isPlainObject(r)) return bad(at, 'a record must be {"id", "version", "value", "items"?}', 'invalid_predictions', 400);
    for (const k of Object.keys(r))
      if (!RECORD_FIELDS.includes(k))
        return bad(`${at}.${k.slice(0, 64)}`, `unknown field "${k.slice(0, 64)}" (a record is id, version, value, items)`, 'invalid_predictions', 400);
    const own = (k: string) => (Object.hasOwn(r, k) ? r[k] : undefined); // proto-safe: k is one of RECORD_FIELDS, read only when own
    const id = own('id');
    const t = predictionTime(id);
    if (t === undefined) return bad(`${at}.id`, 'id must be a prediction id (<time in base 36>.<22 base64url characters>)');
    if (t < now - maxAgeMs || t > now + MAX_SKEW_MS)
      return bad(
        `${at}.id`,
        `the id's time ${new Date(t).toISOString()} is more than ${Math.round(maxAgeMs / 60_000)} minutes old or in the future`,
        'prediction_out_of_range',
      );
    if (seen.has(id as string)) return bad(`${at}.id`, 'the same id twice in one call', 'duplicate_prediction');
    seen.add(id as string);
    const version = own('version');
    const m = typeof version === 'string' && version.length <= 128 ? manifestOf(version) : undefined;
    if (!m)
      return bad(`${at}.version`, `version ${JSON.stringify(String(version).slice(0, 64))} is not one the registry serves for this model`, 'unknown_version');
    const task = outcomeTask(m);
    if (!task) return bad(`${at}.version`, `version ${m.version} is a ${m.task} model, whose outcomes are not joined`, 'task_not_scored');
    const value = own('value');
    if (typeof value !== 'number' || !Number.isFinite(value)) return bad(`${at}.value`, 'value must be a finite number');
    const items = own('items');
    if (task !== 'top-k-recommendation') {
      if (items !== undefined) return bad(`${at}.items`, `items are a ranking's; a ${task} prediction has a value only`);
      if (task === 'binary-classification' && !(value >= 0 && value <= 1))
        return bad(`${at}.value`, "value must be the positive class's probability, in [0, 1]");
      if (task === 'multiclass-classification' && !(Number.isInteger(value) && value >= 0 && value < MAX_CLASSES))
        return bad(`${at}.value`, `value must be the predicted class index, an integer in [0, ${MAX_CLASSES})`);
      records.push({ id: id as string, version: m.version, at: t, value });
      continue;
    }
    const ids = m.outputs.find((o) => o.dtype === 'int64' || o.dtype === 'int32');
    const longest = ids ? longestList(m, ids.name) : MAX_SERVED_ITEMS;
    if (!Array.isArray(items) || items.length === 0 || items.length > longest)
      return bad(`${at}.items`, `items must be the served list: 1 to ${longest} ids, best first`);
    const distinct = new Set<string>();
    for (const x of items) {
      if (typeof x !== 'string' || (ids ? !isCanonicalInteger(x) : x.length === 0 || x.length > 64))
        return bad(`${at}.items`, ids ? `every item must be an integer id as a string (${ids.name})` : 'every item must be a string of 1 to 64 characters');
      distinct.add(x);
    }
    if (distinct.size !== items.length) return bad(`${at}.items`, 'a served list holds each id once');
    if (value !== items.length) return bad(`${at}.value`, `a ranking's value is its list's length (${items.length}), got ${value}`);
    records.push({ id: id as string, version: m.version, at: t, value, items: [...(items as string[])] });
  }
  return { records };
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

/** One app's browser telemetry (c.var.edge.browser): the merge slots, the rate limits every browser route shares, the figures. */
export type BrowserTelemetry = ReturnType<typeof createBrowserTelemetry>;

export function createBrowserTelemetry() {
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
    /** Prediction records from browsers passed to the aggregators, and what they answered; feedback calls a telemetry token made. */
    predictions: { calls: 0, records: 0, stored: 0, duplicate: 0, rejected: 0, failures: 0 },
    feedbackCalls: 0,
    refused: {} as Record<string, number>,
  };

  return {
    stats: () => ({
      ...stats,
      predictions: { ...stats.predictions },
      refused: { ...stats.refused },
      pending: pending.size,
      retrying: retry.length,
      source: sourceId,
    }),
    /** Counts a batch of browser predictions passed on, with the aggregator's answer (undefined: the call failed). */
    predictionsForwarded(records: number, answer: { stored: number; duplicate: number; rejected: number } | undefined) {
      const p = stats.predictions;
      p.calls++;
      p.records += records;
      if (!answer) p.failures++;
      else {
        p.stored += answer.stored;
        p.duplicate += answer.duplicate;
        p.rejected += answer.rejected;
      }
    },
    feedback() {
      stats.feedbackCalls++;
    },
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
      for (const [model, batch] of byModel(out)) {
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
export function addressGroup(ip: string, key: string | undefined): Promise<string> {
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
