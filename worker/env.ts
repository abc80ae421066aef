/**
 * The worker's bindings and settings, as wrangler passes them (vars and secrets are strings; see
 * the README's configuration table, and worker/config.ts, which parses them). The bindings are
 * generated from wrangler.toml by `npm run types` (`wrangler types`, into env.generated.d.ts;
 * `npm run typecheck` fails when that file is out of date); optional here, since tests and Node
 * (origin/) run the app without them. Its own module so that every part of the worker can name
 * it without importing the app.
 */
export interface Env extends Partial<Cloudflare.Env> {
  /** 'adaptive' (default), 'fixed' or 'off'. */
  BATCH_MODE?: string;
  BATCH_MAX_WAIT_MS?: string;
  BATCH_MAX_QUEUE?: string;
  /** Cache budget in bytes; "0" turns the cache off. Default 8 MiB. */
  CACHE_MAX_BYTES?: string;
  CACHE_TTL_MS?: string;
  /** Base URL of the hosted fallback (KServe v2), for every model; FALLBACK_URL_<MODEL> overrides per model (MODEL in upper snake case, e.g. FALLBACK_URL_MY_MODEL for my-model). */
  FALLBACK_URL?: string;
  [perModelUrl: `FALLBACK_URL_${string}`]: string | undefined;
  /** Per attempt, ms (never more than the request's budget left). Default 2000. */
  FALLBACK_TIMEOUT_MS?: string;
  /** Authorization header value for the fallback (a secret: `wrangler secret put FALLBACK_AUTH`). */
  FALLBACK_AUTH?: string;
  /** Retries after a failed attempt, within the budget. Default 1. */
  FALLBACK_RETRIES?: string;
  /** Circuit breaker per fallback target: failures within the window that open it, window, open time. Defaults 5, 10000, 5000. */
  BREAKER_FAILURES?: string;
  BREAKER_WINDOW_MS?: string;
  BREAKER_OPEN_MS?: string;
  /** Hedging: when set (e.g. "0.95"), a request the edge has not answered by that quantile of its own latency also goes to the fallback; the first answer wins. */
  HEDGE_QUANTILE?: string;
  /** Testing and drills: comma-separated models (or model@version) whose edge engine fails to load ("*" for all). */
  FAIL_MODEL_LOAD?: string;
  /** Largest push to the model registry in bytes, all files together. Default 33554432 (32 MiB). */
  MODEL_MAX_BYTES?: string;
  /** Bytes of loaded model artifacts an isolate keeps sessions for; past it the least recently used is freed. Default 50331648 (48 MiB). */
  MODEL_CACHE_BYTES?: string;
  /** Days (on the data clock) a prediction can still be joined to a late label. Default 7. */
  PREDICTION_HORIZON_DAYS?: string;
  PERFORMANCE_LABEL_DELAY_MS?: string;
  PERFORMANCE_TOLERANCE?: string;
  /** Bearer token that may send feedback (labels) only, for apps that should not hold the operator token (a secret). */
  FEEDBACK_TOKEN?: string;
  /** More operator tokens, each with the name the history records: `alice:<token>,deploy-bot:<token>` (a secret). */
  OPERATOR_TOKENS?: string;
  /** Bearer token for the operator routes (a secret; locally from .dev.vars). */
  OPERATOR_TOKEN?: string;
  /** Drift summaries: the window each isolate sketches before flushing (ms), and rows per window. Defaults 5000 and 2000; TELEMETRY=off disables. */
  TELEMETRY?: string;
  TELEMETRY_WINDOW_MS?: string;
  TELEMETRY_MAX_ROWS?: string;
  /**
   * Replays: "event" makes the profiler's clock the request's `x-event-time` header (ISO date or
   * ms since the epoch), so replayed traffic is sketched into windows of its own time.
   */
  TELEMETRY_CLOCK?: string;
  /** Secret: HMAC key for browser telemetry tokens (`wrangler secret put TELEMETRY_SIGNING_KEY`). */
  TELEMETRY_SIGNING_KEY?: string;
  /** Browser telemetry token lifetime, ms. Default 900000 (15 min). */
  TELEMETRY_TOKEN_TTL_MS?: string;
  /** How long browser summaries are merged in the isolate before forwarding, ms. Default 5000. */
  TELEMETRY_BROWSER_FLUSH_MS?: string;
  /** Browser summaries accepted per token per minute (burst the same). Default 60. */
  TELEMETRY_RATE_PER_MIN?: string;
  /** Browser summaries accepted per client address (CF-Connecting-IP) per minute, whatever its tokens. Default 600. */
  TELEMETRY_RATE_PER_IP_PER_MIN?: string;
  /**
   * Rows one browser source may report per minute (burst the same), default 1000: about 17
   * predictions a second from one page. A summary claiming more is refused (422); one that fits
   * the limit but not what is left of this minute's allowance is told to come back (429).
   */
  TELEMETRY_SOURCE_ROWS_PER_MIN?: string;
  /** Telemetry tokens (artifact descriptors and renewals) minted per client address per minute. Default 30. */
  TELEMETRY_TOKENS_PER_IP_PER_MIN?: string;
  /** Aggregator: the evaluation window (ms, whole minutes; default 60000), rows it needs (200), windows in a row that open or resolve an alert (3). */
  ALERT_WINDOW_MS?: string;
  ALERT_MIN_ROWS?: string;
  ALERT_HYSTERESIS?: string;
  /** Sequential evidence (a CUSUM of window scores, core/judge.ts) that opens an alert; default 2.5, `off` for hysteresis alone. */
  ALERT_EVIDENCE?: string;
  /** Aggregator: how far behind the newest data a window must end to be judged (ms, default 30000), and the alarm period (ms, default 60000). */
  ALERT_GRACE_MS?: string;
  ALERT_EVAL_INTERVAL_MS?: string;
  /** Aggregator: distinct client networks whose browser evidence may drift a window (default 3; edge isolates are trusted). */
  ALERT_MIN_SOURCES?: string;
  /** Aggregator: each alert's opening and resolution is POSTed here as JSON; the secret signs it (x-driftwatch-signature: sha256=HMAC). */
  ALERT_WEBHOOK_URL?: string;
  ALERT_WEBHOOK_SECRET?: string;
  /** Aggregator storage: minutes roll up into hours after 48 h, hours into days after 30 days; buckets are deleted after 400 days. */
  ROLLUP_HOURLY_AFTER_HOURS?: string;
  ROLLUP_DAILY_AFTER_DAYS?: string;
  RETENTION_DAYS?: string;
}
