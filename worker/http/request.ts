/**
 * Reading a request: when the worker received it (its clock, from which budgets and
 * Server-Timing count), its JSON body, its latency budget, the model and version its path names,
 * and the times operator queries take.
 */
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ValidationError, type ModelManifest } from '../../core/index.ts';
import type { ModelEngine } from '../engine/model-engine.ts';
import { runtimeOf, type AppContext } from './context.ts';
import { errorJson } from './errors.ts';

export const BUDGET_HEADER = 'x-latency-budget-ms';
export const MAX_BUDGET_MS = 60_000;
/** Times the routes accept, ms since the epoch: the range of a JS Date (ECMA-262 §21.4.1.22), so every one has an ISO form. */
export const MAX_TIME_MS = 8.64e15;

/**
 * When the worker received a request, and what its inference spent; keyed by the Context, the one
 * object every middleware and the handler share (bodyLimit replaces c.req.raw), so no route
 * needs typed variables for it.
 */
export interface RequestClock {
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
export const clockOf = (c: Context): RequestClock => {
  let k = clocks.get(c);
  if (!k) clocks.set(c, (k = { received: performance.now(), timed: false }));
  return k;
};

/**
 * The model named in the path, and the version when the path names one: any deployed version
 * (the manifest's and its variants), looked up in Maps only. Without a version, the manifest's
 * (the routing table may then send the request to another, see Edge.pick).
 */
export const engineOf = (c: AppContext): ModelEngine => {
  const name = c.req.param('name')!;
  const r = runtimeOf(c);
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

/** Request bodies of inference and operator routes: at most 256 KiB. */
export const limit = bodyLimit({
  maxSize: 256 * 1024,
  onError: (c) => errorJson(c, 413, 'body_too_large', 'request body exceeds 262144 bytes', { field: 'body' }),
});

/**
 * The JSON body. A content-type, when given, must be the media type application/json, with
 * parameters or not (RFC 9110 §8.3.1: type and subtype are case-insensitive); "text/json-ish"
 * or "application/jsonp" are not it.
 */
export async function body(c: Context): Promise<unknown> {
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
export function deadline(c: Context, m: ModelManifest): { budgetMs: number; deadline: number } {
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

/** `from` and `to` of an operator query: times (see time()), to defaulting to a minute ahead, from to a day before to. */
export const range = (query: { from?: string; to?: string }) => {
  const to = query.to === undefined ? Math.min(MAX_TIME_MS, Date.now() + 60_000) : time(query.to, 'to');
  const from = query.from === undefined ? Math.max(0, to - 24 * 3600_000) : time(query.from, 'from');
  if (!(from < to)) throw new ValidationError('from must be before to', 'from');
  return { from, to };
};

/** An ISO 8601 date, or date and time with an optional offset: what Date.parse reads the same everywhere. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * A time as the operator routes and x-event-time take it: ms since the epoch (number or digits)
 * or an ISO 8601 date, within [0, MAX_TIME_MS] (so `new Date(t).toISOString()` cannot throw);
 * NaN otherwise. Only the ISO form goes to Date.parse: its fallback parser would read "-5" as
 * May 2001.
 */
export function instant(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v !== 'string' ? NaN : /^\d+$/.test(v) ? Number(v) : ISO_DATE.test(v) ? Date.parse(v) : NaN;
  return Number.isFinite(n) && n >= 0 && n <= MAX_TIME_MS ? n : NaN;
}

/** Why a value is not a time (see instant()), naming the field. */
export const timeMessage = (field: string, v: unknown) =>
  `${field} must be ms since the epoch or an ISO date, from 1970 to ${new Date(MAX_TIME_MS).toISOString()}; got ${JSON.stringify(v)?.slice(0, 64)}`;

/** instant(), or a 400 naming the field. */
export function time(v: unknown, field: string): number {
  const n = instant(v);
  if (Number.isNaN(n)) throw new ValidationError(timeMessage(field, v), field);
  return n;
}

/** A step in ms (digits), at most the whole Date range; a 400 naming the field otherwise. */
export function duration(v: string, field: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= MAX_TIME_MS)) throw new ValidationError(`${field} must be a whole number of ms; got ${JSON.stringify(v.slice(0, 64))}`, field);
  return n;
}

/** A windowed query's step in ms (default: the whole range), at least a minute and at most 500 windows; a 400 naming `step` otherwise. */
export function windowStep(step: string | undefined, from: number, to: number): number {
  const ms = step === undefined ? to - from : duration(step, 'step');
  if (!(ms >= 60_000) || (to - from) / ms > 500) throw new ValidationError('step must be at least 60000 ms and give at most 500 windows', 'step');
  return ms;
}

/** `Server-Timing` (W3C Server Timing) of an inference answer: the worker's own time, the engine's (queue and run together), the fallback's, and the total, from receipt. */
export function serverTiming(k: RequestClock): string {
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

/** The reason an operator gives for a change (the `x-change-reason` header, kept in the model's history), or undefined. */
export function changeReason(c: AppContext): string | undefined {
  const raw = c.req.header('x-change-reason');
  if (raw === undefined || raw.trim() === '') return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (raw.length > 500 || /[\u0000-\u001f\u007f]/.test(raw))
    throw new ValidationError('x-change-reason must be at most 500 characters, without control characters', 'x-change-reason');
  return raw.trim();
}
