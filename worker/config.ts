/**
 * Every setting of the worker, parsed once from the environment into typed values, strictly: a
 * value that is set but not valid is an Error naming the variable (`configuration NAME=value
 * must ...`), never a silent fallback. Unset or empty gives the default. The README's
 * configuration table lists the same settings.
 *
 * - edgeConfig(env): the edge worker's settings (batching, cache, fallback and its breaker,
 *   hedging, telemetry, browser telemetry, the operator token), parsed once per environment
 *   object (workerd passes the same object to every request of an isolate).
 * - aggregatorConfig(env): the DriftAggregator's (its Durable Object has its own environment).
 */
import { operatorTokens } from './auth.ts';
import { EVIDENCE_ALLOWANCE, EVIDENCE_CAP, EVIDENCE_THRESHOLD, type BatchMode } from '../core/index.ts';
import type { Env } from './env.ts';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** Consecutive drifted (or clean) evaluated windows that open (or resolve) an alert, by default. */
export const ALERT_HYSTERESIS = 3;
/**
 * Distinct client address groups (a /24 of IPv4, a /48 of IPv6, hashed by the edge) whose browser
 * evidence may drift a window, by default (ALERT_MIN_SOURCES). Address groups, not token source
 * ids: one client mints as many sources as it likes, not as many networks.
 */
export const ALERT_MIN_SOURCES = 3;
/** Windows with fewer rows than this are not evaluated (too few to judge), by default. */
export const MIN_ROWS_TO_EVALUATE = 200;
/** Rows one browser source may report per minute, by default (TELEMETRY_SOURCE_ROWS_PER_MIN). */
export const SOURCE_ROWS_PER_MIN = 1000;

/** A numeric setting from the environment: unset or empty gives the default; anything else must be a number ≥ `min`, or an Error names the variable. */
export function configNumber(value: string | undefined, fallback: number, name: string, min = 0): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`configuration ${name}=${value} must be a number >= ${min}`);
  return n;
}

/** One of `allowed`, or the default when unset or empty; anything else is an Error naming the variable. */
function configChoice<T extends string>(value: string | undefined, fallback: T, name: string, allowed: readonly T[]): T {
  if (value === undefined || value === '') return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`configuration ${name}=${value} must be ${allowed.join(', ')}`);
  return value as T;
}

export interface FallbackConfig {
  /** Per attempt, ms (never more than the request's budget left). */
  timeoutMs: number;
  authorization: string | undefined;
  retries: number;
  breaker: { failureThreshold: number; windowMs: number; openMs: number };
}

export interface EdgeConfig {
  batch: { mode: BatchMode; maxWaitMs: number; maxQueue: number };
  cache: { maxBytes: number; ttlMs: number };
  /** Models (or model@version, or "*") whose edge engine fails to load: drills and tests. */
  failModelLoad: ReadonlySet<string>;
  /** The hosted fallback's base URL for a model: FALLBACK_URL_<MODEL>, else FALLBACK_URL, else none. */
  fallbackUrl(model: string): string | undefined;
  fallback: FallbackConfig;
  /** Hedging quantile in (0, 1), or undefined when hedging is off. */
  hedgeQuantile: number | undefined;
  telemetry: { enabled: boolean; windowMs: number; maxRows: number; clock: 'wall' | 'event' };
  browser: {
    signingKey: string | undefined;
    tokenTtlMs: number;
    flushMs: number;
    ratePerMin: number;
    ratePerIpPerMin: number;
    sourceRowsPerMin: number;
    tokensPerIpPerMin: number;
  };
  /** The operator routes' bearer token; undefined turns them off (404 operator_disabled). */
  operatorToken: string | undefined;
  /** The names of the operator tokens (OPERATOR_TOKEN is "operator", then OPERATOR_TOKENS'). */
  operators: string[];
  /** Largest push to the registry, all files together (MODEL_MAX_BYTES, default 32 MiB). */
  modelMaxBytes: number;
  /** Loaded artifacts an isolate keeps sessions for before freeing the least recently used (MODEL_CACHE_BYTES, default 48 MiB). */
  modelCacheBytes: number;
}

const parsed = new WeakMap<object, EdgeConfig>();

/** The edge worker's settings (see the module comment); parsed once per environment object. */
export function edgeConfig(env: Env | undefined): EdgeConfig {
  const e = env ?? {};
  let config = parsed.get(e);
  if (!config) parsed.set(e, (config = parseEdgeConfig(e)));
  return config;
}

function parseEdgeConfig(env: Env): EdgeConfig {
  const num = (name: keyof Env & string, fallback: number, min = 0) => configNumber(env[name] as string | undefined, fallback, name, min); // proto-safe: name is a setting's name, not a client's
  const hedge = env.HEDGE_QUANTILE ? num('HEDGE_QUANTILE', 0.95) : undefined;
  if (hedge !== undefined && !(hedge > 0 && hedge < 1)) throw new Error(`configuration HEDGE_QUANTILE=${hedge} must be in (0, 1)`);
  const failModelLoad = new Set(
    (env.FAIL_MODEL_LOAD ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );
  const fallbackUrl = (model: string) => {
    const url = env[`FALLBACK_URL_${model.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] || env.FALLBACK_URL || undefined;
    if (url && !/^https?:\/\//.test(url)) throw new Error(`configuration FALLBACK_URL=${url} must be an http(s) URL`);
    return url;
  };
  return {
    batch: {
      mode: configChoice<BatchMode>(env.BATCH_MODE, 'adaptive', 'BATCH_MODE', ['adaptive', 'fixed', 'off']),
      maxWaitMs: num('BATCH_MAX_WAIT_MS', 2),
      maxQueue: num('BATCH_MAX_QUEUE', 256),
    },
    cache: { maxBytes: num('CACHE_MAX_BYTES', 8 * 1024 * 1024), ttlMs: num('CACHE_TTL_MS', 60_000) },
    modelMaxBytes: num('MODEL_MAX_BYTES', 32 * 1024 * 1024, 1024),
    modelCacheBytes: num('MODEL_CACHE_BYTES', 48 * 1024 * 1024, 0),
    failModelLoad,
    fallbackUrl,
    fallback: {
      timeoutMs: num('FALLBACK_TIMEOUT_MS', 2000),
      authorization: env.FALLBACK_AUTH || undefined,
      retries: num('FALLBACK_RETRIES', 1),
      breaker: {
        failureThreshold: num('BREAKER_FAILURES', 5),
        windowMs: num('BREAKER_WINDOW_MS', 10_000),
        openMs: num('BREAKER_OPEN_MS', 5000),
      },
    },
    hedgeQuantile: hedge,
    telemetry: {
      enabled: env.TELEMETRY !== 'off',
      windowMs: num('TELEMETRY_WINDOW_MS', 5000, 1),
      maxRows: num('TELEMETRY_MAX_ROWS', 2000, 1),
      clock: configChoice(env.TELEMETRY_CLOCK, 'wall', 'TELEMETRY_CLOCK', ['wall', 'event']),
    },
    browser: {
      signingKey: env.TELEMETRY_SIGNING_KEY || undefined,
      tokenTtlMs: num('TELEMETRY_TOKEN_TTL_MS', 15 * 60_000, 1000),
      flushMs: num('TELEMETRY_BROWSER_FLUSH_MS', 5000),
      ratePerMin: num('TELEMETRY_RATE_PER_MIN', 60, 1),
      ratePerIpPerMin: num('TELEMETRY_RATE_PER_IP_PER_MIN', 600, 1),
      sourceRowsPerMin: num('TELEMETRY_SOURCE_ROWS_PER_MIN', SOURCE_ROWS_PER_MIN, 1),
      tokensPerIpPerMin: num('TELEMETRY_TOKENS_PER_IP_PER_MIN', 30, 1),
    },
    operatorToken: env.OPERATOR_TOKEN || undefined,
    // Parsed here too, so that a malformed OPERATOR_TOKENS stops the worker with its name.
    operators: operatorTokens(env).map(([name]) => name),
  };
}

export interface AggregatorConfig {
  windowMs: number;
  minRows: number;
  hysteresis: number;
  /** Sequential evidence (core/judge.ts: the CUSUM of window scores) that opens an alert; Infinity with ALERT_EVIDENCE=off. */
  evidenceThreshold: number;
  graceMs: number;
  intervalMs: number;
  hourlyAfterMs: number;
  dailyAfterMs: number;
  retentionMs: number;
  webhookUrl: string | undefined;
  webhookSecret: string | undefined;
  /** Distinct client address groups a window's browser-sourced evidence needs before it counts (edge isolates are trusted). */
  minSources: number;
  /** How long (on the data clock) a prediction can still be joined to its label. */
  predictionHorizonMs: number;
  /** How long after a window ends (on the data clock) its realized performance is judged: labels arrive late. */
  performanceDelayMs: number;
  /** Relative drop of the watched metric (rise, for an error) past the reference that counts as worse. */
  performanceTolerance: number;
}

export type AggregatorEnv = Pick<
  Env,
  | 'ALERT_WINDOW_MS'
  | 'ALERT_MIN_ROWS'
  | 'ALERT_HYSTERESIS'
  | 'ALERT_EVIDENCE'
  | 'ALERT_GRACE_MS'
  | 'ALERT_EVAL_INTERVAL_MS'
  | 'ALERT_WEBHOOK_URL'
  | 'ALERT_WEBHOOK_SECRET'
  | 'ALERT_MIN_SOURCES'
  | 'ROLLUP_HOURLY_AFTER_HOURS'
  | 'ROLLUP_DAILY_AFTER_DAYS'
  | 'RETENTION_DAYS'
  | 'PREDICTION_HORIZON_DAYS'
  | 'PERFORMANCE_LABEL_DELAY_MS'
  | 'PERFORMANCE_TOLERANCE'
>;

/** The aggregator's settings from the environment; a bad value is an Error naming it. */
export function aggregatorConfig(env: AggregatorEnv): AggregatorConfig {
  const num = (name: keyof AggregatorEnv, fallback: number, min: number) => configNumber(env[name], fallback, name, min); // proto-safe: name is a setting's name, not a client's
  const windowMs = num('ALERT_WINDOW_MS', MINUTE_MS, MINUTE_MS);
  if (windowMs % MINUTE_MS !== 0) throw new Error(`configuration ALERT_WINDOW_MS=${windowMs} must be a whole number of minutes`);
  const webhookUrl = env.ALERT_WEBHOOK_URL || undefined;
  if (webhookUrl && !/^https?:\/\//.test(webhookUrl)) throw new Error(`configuration ALERT_WEBHOOK_URL=${webhookUrl} must be an http(s) URL`);
  const hourlyAfterMs = num('ROLLUP_HOURLY_AFTER_HOURS', 48, 1) * HOUR_MS;
  const dailyAfterMs = num('ROLLUP_DAILY_AFTER_DAYS', 30, 1) * DAY_MS;
  const retentionMs = num('RETENTION_DAYS', 400, 1) * DAY_MS;
  if (!(hourlyAfterMs < dailyAfterMs && dailyAfterMs < retentionMs))
    throw new Error('configuration: ROLLUP_HOURLY_AFTER_HOURS < ROLLUP_DAILY_AFTER_DAYS < RETENTION_DAYS must hold');
  return {
    windowMs,
    minRows: num('ALERT_MIN_ROWS', MIN_ROWS_TO_EVALUATE, 1),
    hysteresis: Math.round(num('ALERT_HYSTERESIS', ALERT_HYSTERESIS, 1)),
    // A threshold under the cap's one-window step (EVIDENCE_CAP − EVIDENCE_ALLOWANCE) would let a single window open an alert.
    evidenceThreshold: env.ALERT_EVIDENCE === 'off' ? Number.POSITIVE_INFINITY : num('ALERT_EVIDENCE', EVIDENCE_THRESHOLD, EVIDENCE_CAP - EVIDENCE_ALLOWANCE),
    graceMs: num('ALERT_GRACE_MS', 30_000, 0),
    intervalMs: num('ALERT_EVAL_INTERVAL_MS', MINUTE_MS, 100),
    hourlyAfterMs,
    dailyAfterMs,
    retentionMs,
    webhookUrl,
    webhookSecret: env.ALERT_WEBHOOK_SECRET || undefined,
    minSources: Math.round(num('ALERT_MIN_SOURCES', ALERT_MIN_SOURCES, 1)),
    predictionHorizonMs: num('PREDICTION_HORIZON_DAYS', 7, 0.001) * DAY_MS,
    performanceDelayMs: num('PERFORMANCE_LABEL_DELAY_MS', DAY_MS, 0),
    performanceTolerance: (() => {
      const t = num('PERFORMANCE_TOLERANCE', 0.1, 0);
      if (t >= 1) throw new Error(`configuration PERFORMANCE_TOLERANCE=${t} must be in [0, 1)`);
      return t;
    })(),
  };
}
