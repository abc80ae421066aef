/**
 * DriftAggregator: one Durable Object per model (by name) that receives the compact summaries
 * every edge isolate and browser sends, and keeps them merged by minute in its SQLite storage.
 * A thin shell: decoding, merging and statistics are core's.
 *
 * ingest(bytes):
 * - decodes the summary; anything malformed, for another model, from the future or older than
 *   the deduplication horizon is refused with the reason and counted, never stored;
 * - deduplicates by (source kind, source id, sequence), so a retried flush never counts twice;
 * - stores the summary, as received, as pending for its window's minute (per model version),
 *   in one storage transaction with the dedup record, so a crash can neither lose nor double it.
 *   Pending summaries are folded into their minute bucket (one bucket decode and encode for all
 *   of them) before anything reads buckets and on every alarm: folding per summary would cost
 *   three quarters of ingest in decoding, merging and encoding the bucket again and again.
 *
 * The alarm (armed by ingest, every ALERT_EVAL_INTERVAL_MS while there is work):
 * - evaluates drift per evaluation window (ALERT_WINDOW_MS, a minute by default) once the
 *   window is complete by event time: its end is behind the newest data received by
 *   ALERT_GRACE_MS, or, for live traffic that went quiet, five minutes behind the clock. So a
 *   replayed stream (event times in the past) is judged in its own time, window by window;
 * - opens and resolves alerts with hysteresis, and posts each to ALERT_WEBHOOK_URL (signed with
 *   ALERT_WEBHOOK_SECRET when set), retrying on later alarms;
 * - rolls evaluated minutes up into hours after ROLLUP_HOURLY_AFTER_HOURS and hours into days
 *   after ROLLUP_DAILY_AFTER_DAYS, deletes buckets past RETENTION_DAYS, and forgets dedup
 *   records older than the hourly roll-up (summaries that old are refused from then on).
 * Ages are measured on the data clock, min(now, newest window end), so a replay of last year's
 * traffic is rolled up by its own timeline, not all at once.
 */
import { DurableObject } from 'cloudflare:workers';
import {
  addOutcome,
  addRankingEvent,
  calibrator,
  compareSketches,
  emptyOutcomes,
  estimateAuc,
  judgePerformance,
  mergeOutcomes,
  outcomeTask,
  referencePerformance,
  WATCHED_METRIC,
  MAX_EVENTS_PER_PREDICTION,
  MAX_FEEDBACK,
  MAX_PREDICTIONS,
  MAX_SERVED_ITEMS,
  parseEvent,
  type FeedbackItem,
  type FeedbackResult,
  type PredictionRecord,
  parseLabel,
  predictionTime,
  type OutcomeState,
  type OutcomeTask,
  alertSince,
  alertStep,
  decodeSummary,
  encodeSummary,
  judgeRefusals,
  judgeWindow,
  mergeInto,
  mergeProfiles,
  nextStreak,
  seasonalFeatures,
  dailyFeatures,
  calendarCycles,
  eventTimeFeatures,
  seenOf,
  staleness,
  windowScore,
  SketchMergeError,
  SummaryDecodeError,
  type Alert,
  type ModelManifest,
  type Profile,
  type Streak,
} from '../core/index.ts';
import type { Env } from './env.ts';
import { postEvent } from './webhook.ts';
import { aggregatorConfig, DAY_MS, edgeConfig, HOUR_MS, MINUTE_MS, type AggregatorConfig } from './config.ts';

export { aggregatorConfig, ALERT_HYSTERESIS, ALERT_MIN_SOURCES, DAY_MS, HOUR_MS, MIN_ROWS_TO_EVALUATE, MINUTE_MS, type AggregatorConfig } from './config.ts';

/**
 * The models an aggregator judges, by name: each one's manifest (features, which are seasonal) and
 * its training baseline (an encoded summary), or undefined for a name no model has: of `version`
 * when given (the version last promoted), else of the model's default version. The worker's
 * entry reads them from the registry (registry/models.ts).
 */
export type AggregatorModels = (name: string, version?: string) => Promise<{ manifest: ModelManifest; baseline: Uint8Array; pushedAt?: string } | undefined>;
/**
 * Largest bucket kept: a Durable Object's SQLite row holds at most 2 MB. A fold that would grow
 * a bucket past this keeps the summaries that fit and drops (and counts) the rest.
 */
export const MAX_BUCKET_BYTES = 1536 * 1024;
/** Larger summaries are refused unread (an isolate's window is a few KB; the format allows far more). */
export const MAX_SUMMARY_BYTES = 1 << 20;
/** Summaries whose window starts this far past the clock are refused (a skewed client clock). */
export const MAX_FUTURE_MS = HOUR_MS;
/** Live traffic that went quiet: windows this far behind the clock are complete anyway. */
const IDLE_CLOSE_MS = 5 * MINUTE_MS;
/** Buckets read per evaluate() call, and roll-up groups per alarm (bounded work). */
const MAX_BUCKETS_PER_CALL = 20_000;
const MAX_ROLLUPS_PER_ALARM = 200;
const WEBHOOK_MAX_ATTEMPTS = 10;
// Live traffic touches a few minutes between folds; a replay more. Each memo is a decoded profile
// (tens of KB for a model with large categorical sketches), so keep few: past this, folds decode rows.
const MAX_MEMO = 64;
/** Evaluation windows of realized performance judged per alarm, at most. */
const MAX_PERFORMANCE_WINDOWS = 500;
/** Address groups remembered per (version, minute): far above any ALERT_MIN_SOURCES. */
const MAX_GROUPS_PER_MINUTE = 64;
/** Training baselines decoded, by their bytes object (the bundled or registry copy): decoded once, never changed. */
const decodedBaselines = new WeakMap<Uint8Array, Profile>();
/** Summaries per ingestMany call. */
export const MAX_BATCH = 256;
export type { FeedbackResult, PredictionRecord } from '../core/index.ts';

/** A drift alert as this object keeps it: typed once in core/contracts.ts (the alerts route answers it). */
export type { Alert } from '../core/index.ts';

export interface IngestResult {
  status: 'stored' | 'duplicate' | 'rejected';
  reason?: string;
  minute?: number;
}

/**
 * The Durable Object. It judges the models it is given (the worker's entry subclasses it with
 * the models it serves), so that nothing here depends on where models come from.
 */
export class DriftAggregator extends DurableObject<Env> {
  #ready = false;
  readonly #models: AggregatorModels;

  /** The schema is set up once, before the object takes any call (the Durable Object templates' way). */
  constructor(ctx: DurableObjectState, env: Env, models: AggregatorModels) {
    super(ctx, env);
    this.#models = models;
    void ctx.blockConcurrencyWhile(async () => this.#schema());
  }

  #config: AggregatorConfig | undefined;
  #modelKnown = false;
  #maxEnd: number | undefined;
  /**
   * The pending summaries of each (version, minute) already merged in memory as they came in,
   * with how many and the last pending id they cover: a fold uses it instead of decoding those
   * rows again when it covers exactly the rows pending. Lost on restart, which only means the
   * fold decodes the rows. Bounded: past MAX_MEMO groups the oldest is forgotten.
   */
  #memo = new Map<string, { acc: Profile; rows: number; last: number }>();

  /**
   * Folds pending summaries into their minute buckets: per (version, minute, origin), one decode
   * of the bucket, in-place merges, one encode, and the pending rows deleted, in one transaction.
   * Nothing a summary holds can wedge it: one that cannot merge with its bucket (a sketch of
   * another kind under the same name, counts past 2^53 - 1) is dropped and counted
   * (`incompatible`); if the merged bucket still cannot be encoded, or would pass
   * MAX_BUCKET_BYTES, the summaries are added one at a time and only those the bucket can take
   * are kept (the rest counted as `oversize`). A late summary for an hour or day already rolled
   * up merges into the bucket starting at its minute if there is one (keeping its span);
   * otherwise it becomes a minute bucket that the next roll-up merges up.
   */
  #fold(): void {
    const sql = this.ctx.storage.sql;
    const groups = sql
      .exec(`SELECT model_version, minute, origin, MAX(id) AS last, COUNT(*) AS n FROM pending GROUP BY model_version, minute, origin`)
      .toArray();
    for (const g of groups) {
      const key = `${g.model_version}\u0000${g.minute}\u0000${g.origin}`;
      const memo = this.#memo.get(key);
      this.#memo.delete(key);
      this.ctx.storage.transactionSync(() => this.#foldGroup(g as { model_version: string; minute: number; origin: string; last: number; n: number }, memo));
    }
  }

  #foldGroup(
    g: { model_version: string; minute: number; origin: string; last: number; n: number },
    memo: { acc: Profile; rows: number; last: number } | undefined,
  ): void {
    const sql = this.ctx.storage.sql;
    const where = [g.model_version, g.minute, g.origin] as const;
    const stored = sql.exec(`SELECT summary FROM buckets WHERE model_version = ? AND minute = ? AND origin = ?`, ...where).toArray()[0]?.summary as
      | ArrayBuffer
      | undefined;
    const bucket = (): Profile | undefined => {
      if (!stored) return undefined;
      try {
        return decodeSummary(new Uint8Array(stored));
      } catch (e) {
        // Only this code writes buckets; should one ever be unreadable, it must not block the rest.
        console.error('aggregator: a stored bucket does not decode; starting it again', e);
        this.#count('buckets_unreadable');
        return undefined;
      }
    };
    const pendingRows = () =>
      sql
        .exec(`SELECT summary FROM pending WHERE model_version = ? AND minute = ? AND origin = ? AND id <= ? ORDER BY id`, ...where, g.last)
        .toArray()
        .map((r) => decodeSummary(new Uint8Array(r.summary as ArrayBuffer)));
    const drop = (why: string, p: Profile) => {
      this.#count(why);
      this.#count('rows', -p.counters.rows);
    };
    const encoded = (acc: Profile): Uint8Array | undefined => {
      try {
        const bytes = encodeSummary({ ...acc, source: { kind: 'merged', id: '' }, sequence: 0 }, { meanPrecision: 'f64' });
        return bytes.byteLength <= MAX_BUCKET_BYTES ? bytes : undefined;
      } catch {
        return undefined;
      }
    };
    let acc = bucket();
    let bytes: Uint8Array | undefined;
    if (memo && memo.rows === g.n && memo.last === g.last) {
      try {
        acc = acc ? mergeInto(acc, memo.acc) : memo.acc;
        bytes = encoded(acc);
      } catch (e) {
        if (!(e instanceof SketchMergeError)) throw e;
      }
      if (!bytes) acc = bucket(); // then one by one below, to drop only the culprits
    }
    if (!bytes) {
      const summaries = pendingRows();
      for (const p of summaries) {
        if (!acc) acc = p;
        else {
          try {
            mergeInto(acc, p);
          } catch (e) {
            if (!(e instanceof SketchMergeError)) throw e;
            drop('incompatible', p);
          }
        }
      }
      bytes = acc && encoded(acc);
      if (acc && !bytes) {
        // Something merged cannot be stored: keep the bucket and each summary only while the result
        // can (decoded again: the first pass merged into the first of them).
        acc = bucket();
        bytes = acc && encoded(acc);
        for (const p of pendingRows()) {
          let next: Profile;
          try {
            next = acc ? mergeProfiles(acc, p) : p;
          } catch (e) {
            if (!(e instanceof SketchMergeError)) throw e;
            continue; // counted above
          }
          const b = encoded(next);
          if (b) [acc, bytes] = [next, b];
          else drop('oversize', p);
        }
      }
    }
    if (bytes) {
      sql.exec(
        `INSERT INTO buckets (model_version, minute, origin, summary) VALUES (?, ?, ?, ?) ON CONFLICT(model_version, minute, origin) DO UPDATE SET summary = excluded.summary`,
        ...where,
        bytes,
      );
    }
    sql.exec(`DELETE FROM pending WHERE model_version = ? AND minute = ? AND origin = ? AND id <= ?`, ...where, g.last);
  }

  get config(): AggregatorConfig {
    return (this.#config ??= aggregatorConfig(this.env ?? {}));
  }

  #schema(): void {
    if (this.#ready) return;
    const sql = this.ctx.storage.sql;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS seen (source TEXT NOT NULL, sequence INTEGER NOT NULL, model_version TEXT NOT NULL, window_start INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (source, sequence, model_version))`,
    );
    // origin: 'edge' (an edge isolate's own rows, trusted) or 'browser' (browsers' summaries that
    // an isolate merged and forwarded): kept apart so that evaluation can tell whose evidence it is.
    sql.exec(
      `CREATE TABLE IF NOT EXISTS buckets (model_version TEXT NOT NULL, minute INTEGER NOT NULL, origin TEXT NOT NULL DEFAULT 'edge', summary BLOB NOT NULL, span INTEGER NOT NULL DEFAULT ${MINUTE_MS}, PRIMARY KEY (model_version, minute, origin))`,
    );
    sql.exec(
      `CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY AUTOINCREMENT, model_version TEXT NOT NULL, minute INTEGER NOT NULL, origin TEXT NOT NULL DEFAULT 'edge', summary BLOB NOT NULL)`,
    );
    sql.exec(`CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`);
    // The client address groups behind each minute's browser rows (hashes; see ALERT_MIN_SOURCES).
    sql.exec(
      `CREATE TABLE IF NOT EXISTS browser_groups (model_version TEXT NOT NULL, minute INTEGER NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (model_version, minute, grp))`,
    );
    sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    sql.exec(
      `CREATE TABLE IF NOT EXISTS streaks (model_version TEXT NOT NULL, feature TEXT NOT NULL, drifted INTEGER NOT NULL, clean INTEGER NOT NULL, since INTEGER, evidence REAL NOT NULL DEFAULT 0, evidence_since INTEGER, PRIMARY KEY (model_version, feature))`,
    );
    sql.exec(
      `CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, model_version TEXT NOT NULL, feature TEXT NOT NULL, opened_at INTEGER NOT NULL, resolved_at INTEGER, evidence TEXT NOT NULL, since INTEGER, notified_open INTEGER NOT NULL DEFAULT 0, notified_resolved INTEGER NOT NULL DEFAULT 0, notify_attempts INTEGER NOT NULL DEFAULT 0)`,
    );
    // The join of late labels (core/outcomes.ts): each prediction's version, time and value until
    // the horizon; the outcome state per (version, minute of the prediction).
    sql.exec(
      `CREATE TABLE IF NOT EXISTS predictions (id TEXT PRIMARY KEY, model_version TEXT NOT NULL, at INTEGER NOT NULL, value REAL NOT NULL, joined INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID`,
    );
    sql.exec(`CREATE INDEX IF NOT EXISTS predictions_at ON predictions (at)`);
    sql.exec(
      `CREATE TABLE IF NOT EXISTS outcomes (model_version TEXT NOT NULL, minute INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (model_version, minute))`,
    );
    // Outcomes of predictions browsers recorded (POST /v1/telemetry/predictions) are kept apart,
    // with the address groups behind them per minute: they count for alerts only from enough
    // groups (ALERT_MIN_SOURCES), as browser drift evidence does.
    sql.exec(
      `CREATE TABLE IF NOT EXISTS browser_outcomes (model_version TEXT NOT NULL, minute INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (model_version, minute))`,
    );
    sql.exec(
      `CREATE TABLE IF NOT EXISTS outcome_groups (model_version TEXT NOT NULL, minute INTEGER NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (model_version, minute, grp))`,
    );
    // A ranking's events joined so far, one row each (a retried event is a duplicate), until its prediction expires.
    sql.exec(
      `CREATE TABLE IF NOT EXISTS ranking_events (id TEXT NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (id, kind, item)) WITHOUT ROWID`,
    );
    sql.exec(`CREATE INDEX IF NOT EXISTS ranking_events_at ON ranking_events (at)`);
    // Objects created by earlier versions lack the newer columns.
    const add = (table: string, column: string, decl: string) => {
      try {
        sql.exec(`SELECT ${column} FROM ${table} LIMIT 0`);
      } catch {
        sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${decl}`);
      }
    };
    add('seen', 'window_start', 'INTEGER NOT NULL DEFAULT 0');
    add('buckets', 'span', `INTEGER NOT NULL DEFAULT ${MINUTE_MS}`);
    add('pending', 'origin', `TEXT NOT NULL DEFAULT 'edge'`);
    try {
      sql.exec(`SELECT origin FROM buckets LIMIT 0`);
    } catch {
      // Buckets from before origins were kept apart: the key changes, so the table is rebuilt
      // (what they hold is counted as the edge's, as it was judged then).
      this.ctx.storage.transactionSync(() => {
        sql.exec(
          `CREATE TABLE buckets_v2 (model_version TEXT NOT NULL, minute INTEGER NOT NULL, origin TEXT NOT NULL DEFAULT 'edge', summary BLOB NOT NULL, span INTEGER NOT NULL DEFAULT ${MINUTE_MS}, PRIMARY KEY (model_version, minute, origin))`,
        );
        sql.exec(`INSERT INTO buckets_v2 (model_version, minute, origin, summary, span) SELECT model_version, minute, 'edge', summary, span FROM buckets`);
        sql.exec(`DROP TABLE buckets`);
        sql.exec(`ALTER TABLE buckets_v2 RENAME TO buckets`);
      });
    }
    add('streaks', 'since', 'INTEGER');
    // The sequential evidence (core/judge.ts nextStreak), from before it existed: none yet.
    add('streaks', 'evidence', 'REAL NOT NULL DEFAULT 0');
    add('streaks', 'evidence_since', 'INTEGER');
    // A ranking's served ids (a JSON array), null for the other tasks.
    add('predictions', 'items', 'TEXT');
    // The address group of a browser that recorded the prediction, null for the edge's own.
    add('predictions', 'grp', 'TEXT');
    add('alerts', 'since', 'INTEGER');
    add('alerts', 'notified_open', 'INTEGER NOT NULL DEFAULT 0');
    add('alerts', 'notified_resolved', 'INTEGER NOT NULL DEFAULT 0');
    add('alerts', 'notify_attempts', 'INTEGER NOT NULL DEFAULT 0');
    this.#ready = true;
  }

  #count(name: string, by = 1): void {
    this.ctx.storage.sql.exec(`INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`, name, by);
  }

  #meta(key: string): string | undefined {
    return this.ctx.storage.sql.exec(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value as string | undefined;
  }

  #setMeta(key: string, value: string | number): void {
    this.ctx.storage.sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, String(value));
  }

  /** Stores one summary for `model` (the name this object was addressed by). */
  async ingest(model: string, bytes: Uint8Array | ArrayBuffer): Promise<IngestResult> {
    const result = this.#ingestOne(model, bytes);
    if (result.status === 'stored') await this.#arm();
    return result;
  }

  /**
   * Stores several summaries in one call (an isolate's outbox): the results in the same order,
   * each exactly as ingest() would give it. One call instead of one per summary is what lets a
   * single object take thousands of summaries a second (the per-call cost alone capped it at
   * ~1,000/s on a 2-core machine). At most MAX_BATCH summaries; a larger batch is refused whole.
   */
  async ingestMany(model: string, summaries: (Uint8Array | ArrayBuffer)[], groups?: (readonly string[] | undefined)[]): Promise<IngestResult[]> {
    if (!Array.isArray(summaries)) return [this.#refuse('ingestMany takes an array of summaries')];
    if (summaries.length > MAX_BATCH)
      return summaries.map(() => this.#refuse(`a batch holds at most ${MAX_BATCH} summaries; this one had ${summaries.length}`));
    const results = summaries.map((b, i) => this.#ingestOne(model, b, Array.isArray(groups) ? groups[i] : undefined));
    if (results.some((r) => r.status === 'stored')) await this.#arm();
    return results;
  }

  #refuse(reason: string): IngestResult {
    this.#count('rejected');
    return { status: 'rejected', reason };
  }

  /**
   * `groups`: for a browser summary an edge isolate forwards, the hashed client address groups
   * its rows came from (see ALERT_MIN_SOURCES); recorded for its minute, also for a duplicate
   * (the same groups again change nothing).
   */
  #ingestOne(model: string, bytes: Uint8Array | ArrayBuffer, groups?: readonly string[]): IngestResult {
    if (!(bytes instanceof Uint8Array || bytes instanceof ArrayBuffer)) return this.#refuse('a summary must be bytes (Uint8Array or ArrayBuffer)');
    if (bytes.byteLength > MAX_SUMMARY_BYTES) return this.#refuse(`summary is ${bytes.byteLength} bytes, more than ${MAX_SUMMARY_BYTES}`);
    const raw = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let p: Profile;
    try {
      p = decodeSummary(raw);
    } catch (e) {
      return this.#refuse(e instanceof SummaryDecodeError ? e.message : 'malformed summary');
    }
    if (p.model !== model) return this.#refuse(`summary is for model "${p.model}", not "${model}"`);
    if (p.windowStart > Date.now() + MAX_FUTURE_MS)
      return this.#refuse(`summary window starts at ${new Date(p.windowStart).toISOString()}, more than an hour in the future (check the sender's clock)`);
    const horizon = Number(this.#meta('pruned_before') ?? -Infinity);
    if (p.windowStart < horizon)
      return this.#refuse(
        `summary window starts at ${new Date(p.windowStart).toISOString()}, before the deduplication horizon ${new Date(horizon).toISOString()}: too old to be counted exactly once`,
      );
    const source = `${p.source.kind}:${p.source.id}`;
    const origin = originOf(p);
    const minute = Math.floor(p.windowStart / MINUTE_MS) * MINUTE_MS;
    const sql = this.ctx.storage.sql;
    const result = this.ctx.storage.transactionSync(() => {
      const dup = sql.exec(`SELECT 1 FROM seen WHERE source = ? AND sequence = ? AND model_version = ?`, source, p.sequence, p.modelVersion).toArray();
      if (dup.length) {
        this.#count('duplicates');
        return { status: 'duplicate' as const, minute };
      }
      const id = sql
        .exec(`INSERT INTO pending (model_version, minute, origin, summary) VALUES (?, ?, ?, ?) RETURNING id`, p.modelVersion, minute, origin, raw)
        .one().id as number;
      sql.exec(`INSERT INTO seen (source, sequence, model_version, window_start) VALUES (?, ?, ?, ?)`, source, p.sequence, p.modelVersion, p.windowStart);
      this.#count('stored');
      this.#count('rows', p.counters.rows);
      if (!this.#modelKnown) {
        sql.exec(`INSERT INTO meta (key, value) VALUES ('model', ?) ON CONFLICT(key) DO NOTHING`, model);
        this.#modelKnown = true;
      }
      this.#maxEnd ??= Number(this.#meta('max_end') ?? -Infinity);
      if (p.windowEnd > this.#maxEnd) this.#setMeta('max_end', p.windowEnd);
      return { status: 'stored' as const, minute, id };
    });
    if (origin === 'browser' && Array.isArray(groups)) this.#recordGroups(p.modelVersion, minute, groups);
    if (result.status === 'stored') {
      // In-memory state follows storage only once the transaction committed.
      if (p.windowEnd > (this.#maxEnd ?? -Infinity)) this.#maxEnd = p.windowEnd;
      const key = `${p.modelVersion}\u0000${minute}\u0000${origin}`;
      const memo = this.#memo.get(key);
      if (!memo) {
        // A memo must cover every pending row of its group: only start one for a group with no other rows.
        if (sql.exec(`SELECT COUNT(*) AS n FROM pending WHERE model_version = ? AND minute = ? AND origin = ?`, p.modelVersion, minute, origin).one().n === 1) {
          this.#memo.set(key, { acc: p, rows: 1, last: result.id });
          if (this.#memo.size > MAX_MEMO) this.#memo.delete(this.#memo.keys().next().value!);
        }
      } else {
        try {
          mergeInto(memo.acc, p);
          memo.rows++;
          memo.last = result.id;
        } catch {
          this.#memo.delete(key); // the fold decodes the rows and drops only the incompatible one
        }
      }
    }
    return { status: result.status, minute: result.minute };
  }

  #recordGroups(version: string, minute: number, groups: readonly string[]): void {
    const sql = this.ctx.storage.sql;
    let room =
      MAX_GROUPS_PER_MINUTE - (sql.exec(`SELECT COUNT(*) AS n FROM browser_groups WHERE model_version = ? AND minute = ?`, version, minute).one().n as number);
    for (const g of groups.slice(0, MAX_GROUPS_PER_MINUTE)) {
      if (room <= 0) break;
      if (typeof g !== 'string' || !/^[0-9a-f]{16,64}$/.test(g)) continue;
      room -= sql.exec(`INSERT OR IGNORE INTO browser_groups (model_version, minute, grp) VALUES (?, ?, ?)`, version, minute, g).rowsWritten;
    }
  }

  /** Ingest arms the alarm, which evaluates, rolls up and notifies. */
  async #arm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + this.config.intervalMs);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const evaluated = await this.evaluate(now);
    const rollupsLeft = await this.rollup(now);
    const notificationsLeft = await this.notify();
    // Keep going while windows wait for evaluation (live data completes by the clock; a
    // replayed stream only by more data, which arms the alarm again), roll-ups remain or
    // webhooks are owed.
    const sql = this.ctx.storage.sql;
    const through = Number(this.#meta('evaluated_through') ?? -Infinity);
    const live = Number(this.#meta('max_end') ?? -Infinity) >= now - DAY_MS;
    const pending =
      sql.exec(`SELECT 1 FROM buckets WHERE minute >= ? LIMIT 1`, Number.isFinite(through) ? through + this.config.windowMs : 0).toArray().length > 0;
    if ((pending && (live || evaluated > 0)) || rollupsLeft || notificationsLeft) await this.ctx.storage.setAlarm(Date.now() + this.config.intervalMs);
  }

  /** min(now, newest window end): the clock that ages data (a replay ages by its own timeline). */
  #dataClock(now: number): number {
    return Math.min(now, Number(this.#meta('max_end') ?? -Infinity));
  }

  /**
   * Evaluates every complete evaluation window not evaluated yet, in time order, per version,
   * against the baseline in force: a feature or output counts as drifted in a window when any of
   * core's statistics flags it (calendar features marked `seasonal` in the manifest: only values
   * outside the training range); `hysteresis` drifted windows in a row open an alert, as many
   * clean ones resolve it. Windows with fewer than `minRows` rows are skipped. A window is
   * complete when its end is ALERT_GRACE_MS behind the newest data, or (live traffic that
   * stopped) five minutes behind `now`. Returns the number of (window, version) pairs evaluated.
   */
  async evaluate(now: number): Promise<number> {
    // The one await, first: from here on the evaluation runs without yielding to other calls.
    const model = this.#meta('model');
    const bundled = model ? await this.#reference(model) : undefined;
    if (!bundled) return 0;
    this.#staleCheck(bundled, now);
    this.#fold();
    this.#evaluatePerformance(bundled.manifest, now);
    const { windowMs: W, minRows, graceMs, minSources } = this.config;
    const sql = this.ctx.storage.sql;
    const maxEnd = Number(this.#meta('max_end') ?? -Infinity);
    if (!Number.isFinite(maxEnd)) return 0;
    const live = maxEnd >= now - DAY_MS;
    const watermark = Math.min(now, live ? Math.max(maxEnd - graceMs, now - IDLE_CLOSE_MS) : maxEnd - graceMs);
    const last = Number(this.#meta('evaluated_through') ?? -Infinity);
    let lower: number;
    if (Number.isFinite(last)) lower = last + W;
    else {
      const first = sql.exec(`SELECT MIN(minute) AS m FROM buckets`).toArray()[0]?.m as number | null;
      if (first === null || first === undefined) return 0;
      lower = Math.floor(first / W) * W;
    }
    let upper = Math.floor(watermark / W) * W;
    if (!(upper > lower)) return 0;
    const rows = sql
      .exec(
        `SELECT model_version, minute, origin, summary FROM buckets WHERE minute >= ? AND minute < ? ORDER BY minute LIMIT ?`,
        lower,
        upper,
        MAX_BUCKETS_PER_CALL + 1,
      )
      .toArray();
    // Bounded work: stop before the window of the first bucket past the limit (the next call goes on from there).
    if (rows.length > MAX_BUCKETS_PER_CALL) upper = Math.max(lower + W, Math.floor((rows[MAX_BUCKETS_PER_CALL].minute as number) / W) * W);
    const baseline = this.#baselineProfile(bundled.baseline);
    const seasonal = seasonalFeatures(bundled.manifest);
    const daily = dailyFeatures(bundled.manifest);
    const cycles = calendarCycles(bundled.manifest);
    const eventTime = eventTimeFeatures(bundled.manifest);
    // Windows are on the data clock: time-matched only against slots of that clock (core/clock.ts).
    const clock = edgeConfig(this.env).telemetry.clock;
    // Merge the buckets of each (window, version), in time order: everything, and the edge's own
    // rows apart (trusted); the address groups behind the rest are in browser_groups.
    interface Judged {
      all: Profile;
      edge: Profile | undefined;
      browserRows: number;
    }
    const windows = new Map<number, Map<string, Judged>>();
    for (const row of rows) {
      if ((row.minute as number) >= upper) break;
      const w = Math.floor((row.minute as number) / W) * W;
      let byVersion = windows.get(w);
      if (!byVersion) windows.set(w, (byVersion = new Map()));
      const version = row.model_version as string;
      const fromEdge = row.origin === 'edge';
      const p = decodeSummary(new Uint8Array(row.summary as ArrayBuffer));
      const j = byVersion.get(version);
      if (!j) {
        // `all` is merged into in place: the edge's part starts as a copy of its own.
        const edge = fromEdge ? decodeSummary(new Uint8Array(row.summary as ArrayBuffer)) : undefined;
        byVersion.set(version, { all: p, edge, browserRows: fromEdge ? 0 : p.counters.rows });
        continue;
      }
      if (!tryMerge(j.all, p)) continue;
      if (fromEdge) {
        // mergeInto leaves its source untouched: p may start the edge's part itself.
        if (!j.edge) j.edge = p;
        else tryMerge(j.edge, p);
      } else j.browserRows += p.counters.rows;
    }
    let evaluated = 0;
    const judgeKey = (version: string, key: string, drifted: boolean, w: number, evidence: () => Record<string, unknown>, score?: number) =>
      this.#judgeKey(version, key, drifted, w, evidence, score);
    // The AUC a binary classifier's scores imply (CBPE), judged with the drift, before any label.
    const estimated = this.#estimateWatch(bundled.manifest, baseline);
    for (const w of [...windows.keys()].sort((a, b) => a - b)) {
      for (const [version, j] of windows.get(w)!) {
        // Refusals (core/refusals.ts) are the edge's own count: browsers' summaries say nothing of
        // requests the edge refused, and a counter a client sends is not evidence of anything.
        if (j.edge && seenOf(j.edge) >= minRows) {
          const watched = sql
            .exec(`SELECT feature FROM streaks WHERE model_version = ? AND feature LIKE 'refused:%'`, version)
            .toArray()
            .map((r) => r.feature as string);
          for (const r of judgeRefusals(j.edge, baseline, watched))
            judgeKey(version, r.key, r.drifted, w, () => ({
              refusal_rate: { statistic: r.rate, threshold: r.threshold, refused: r.count, seen: r.seen, reference_rate: r.referenceRate },
            }));
        }
        // Browser evidence counts only from enough distinct sources; below that, the window is
        // judged on the edge's own rows, and not at all when those are too few.
        const groups = () =>
          sql.exec(`SELECT COUNT(DISTINCT grp) AS n FROM browser_groups WHERE model_version = ? AND minute >= ? AND minute < ?`, version, w, w + W).one()
            .n as number;
        const trusted = j.browserRows === 0 || groups() >= minSources;
        const p = trusted ? j.all : j.edge;
        if (!p || p.counters.rows < minRows) {
          if (!trusted && j.all.counters.rows >= minRows) this.#count('windows_untrusted');
          continue;
        }
        evaluated++;
        // A version seen only as a shadow saw the same inputs as the served one: only its outputs are its own.
        const judged = judgeWindow(baseline, p, { seasonal, daily, cycles, eventTime, clock, shadowOnly: (p.counters.shadowRows ?? 0) >= p.counters.rows });
        estimated?.(version, p, w);
        for (const [key, x] of [...judged.features, ...[...judged.outputs].map(([name, x]) => [`output:${name}`, x] as const)])
          judgeKey(
            version,
            key,
            x.drifted,
            w,
            () =>
              Object.fromEntries(
                Object.entries(x.drift)
                  .filter(([, r]) => r?.drifted)
                  .map(([m, r]) => [m, { statistic: r!.statistic, threshold: r!.threshold }]),
              ),
            windowScore(x),
          );
      }
    }
    // Every window before `upper` is now judged (empty ones included).
    this.#setMeta('evaluated_through', upper - W);
    return evaluated;
  }

  /**
   * One more judged window `w` of (version, key): its streak and sequential evidence (with the
   * window's score where the key has one), and the alert they open or resolve (core/judge.ts alertStep).
   */
  #judgeKey(version: string, key: string, drifted: boolean, w: number, evidence: () => Record<string, unknown>, score?: number): void {
    const sql = this.ctx.storage.sql;
    const { windowMs: W, evidenceThreshold } = this.config;
    const st = sql
      .exec(`SELECT drifted, clean, since, evidence, evidence_since AS evidenceSince FROM streaks WHERE model_version = ? AND feature = ?`, version, key)
      .toArray()[0] as unknown as Streak | undefined;
    const streak = nextStreak(st, drifted, w, score, 2 * evidenceThreshold);
    sql.exec(
      `INSERT INTO streaks (model_version, feature, drifted, clean, since, evidence, evidence_since) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(model_version, feature) DO UPDATE SET drifted = excluded.drifted, clean = excluded.clean, since = excluded.since, evidence = excluded.evidence, evidence_since = excluded.evidence_since`,
      version,
      key,
      streak.drifted,
      streak.clean,
      streak.since,
      streak.evidence,
      streak.evidenceSince,
    );
    const open = sql.exec(`SELECT id FROM alerts WHERE model_version = ? AND feature = ? AND resolved_at IS NULL`, version, key).toArray()[0];
    const step = alertStep(streak, open !== undefined, this.config.hysteresis, evidenceThreshold);
    if (step === 'open') {
      // What opened it: the drifted run (hysteresis) and/or the evidence, with the statistics past their bars.
      const why = {
        ...evidence(),
        ...(score === undefined ? {} : { sequential: { evidence: streak.evidence, threshold: evidenceThreshold, score, drifted_in_a_row: streak.drifted } }),
      };
      sql.exec(
        `INSERT INTO alerts (model_version, feature, opened_at, since, evidence) VALUES (?, ?, ?, ?, ?)`,
        version,
        key,
        w + W,
        alertSince(streak),
        JSON.stringify(why),
      );
      this.#count('alerts_opened');
    } else if (step === 'resolve') {
      sql.exec(`UPDATE alerts SET resolved_at = ? WHERE id = ?`, w + W, open!.id as number);
      this.#count('alerts_resolved');
    }
  }

  /** The reference a model's performance is judged against: the operator's (PUT .../performance/reference), else the manifest's quality report. */
  #performanceReference(m: ModelManifest): { metric: string; source: string; value: number } | undefined {
    const task = outcomeTask(m);
    if (!task) return undefined;
    const set = this.#meta('performance_reference');
    if (set) {
      const r = JSON.parse(set) as { metric: string; source: string; value: number };
      if (r.metric === WATCHED_METRIC[task].metric) return r;
    }
    return referencePerformance(m);
  }

  /**
   * A binary classifier's estimated AUC (core/outcomes.ts estimateAuc) for a window's profile,
   * judged against the reference (`performance:estimated_auc`): worse when the estimate is valid
   * and even its band's upper end is under the threshold. Undefined for other models or without a reference.
   */
  #estimateWatch(m: ModelManifest, baseline: Profile): ((version: string, p: Profile, w: number) => void) | undefined {
    if (m.task !== 'binary-classification') return undefined;
    const ref = this.#performanceReference(m);
    const score = m.outputs.find((o) => o.dtype === 'float32')?.name;
    if (!ref || score === undefined) return undefined;
    const threshold = ref.value * (1 - this.config.performanceTolerance);
    const base = baseline.outputs.get(score);
    const calibrate = m.calibration ? calibrator(m.calibration.points) : undefined;
    return (version, p, w) => {
      const sketch = p.outputs.get(score);
      if (sketch?.kind !== 'tdigest' || sketch.count < this.config.minRows) return;
      const outside = base?.kind === 'tdigest' ? (compareSketches(base, sketch, { seasonal: true }).out_of_range?.statistic ?? 0) : 0;
      const e = estimateAuc((q) => sketch.quantile(q), sketch.count, { outsideShare: outside, calibrate });
      if (!e.valid || e.auc === null || !e.band) return;
      this.#judgeKey(version, 'performance:estimated_auc', e.band[1] < threshold, w, () => ({
        estimated_auc: { statistic: e.auc, band: e.band, threshold, reference: ref.value, reference_source: ref.source, rows: e.rows },
      }));
    };
  }

  /**
   * Judges each version's realized performance (the watched metric of core/outcomes.ts) per
   * evaluation window once the window is PERFORMANCE_LABEL_DELAY_MS behind the data clock (labels
   * arrive late: a window judged at once would be judged on its first few), in time order, with
   * the drift alerts' hysteresis: key `performance:<metric>`. Windows with fewer than
   * ALERT_MIN_ROWS labels are skipped. Bounded work per call.
   */
  #evaluatePerformance(m: ModelManifest, now: number): void {
    const task = outcomeTask(m);
    const ref = this.#performanceReference(m);
    if (!task || !ref) return;
    const sql = this.ctx.storage.sql;
    const { windowMs: W, performanceDelayMs, performanceTolerance, minRows } = this.config;
    const clock = this.#dataClock(now);
    if (!Number.isFinite(clock)) return;
    const last = Number(this.#meta('performance_through') ?? -Infinity);
    let lower: number;
    if (Number.isFinite(last)) lower = last + W;
    else {
      const first = sql.exec(`SELECT MIN(m) AS m FROM (SELECT MIN(minute) AS m FROM outcomes UNION ALL SELECT MIN(minute) FROM browser_outcomes)`).toArray()[0]
        ?.m as number | null;
      if (first === null || first === undefined) return;
      lower = Math.floor(first / W) * W;
    }
    let upper = Math.min(Math.floor((clock - performanceDelayMs) / W) * W, lower + MAX_PERFORMANCE_WINDOWS * W);
    if (!(upper > lower)) return;
    // Both tables, the browsers' marked: `b` is 1 for a row of browser_outcomes.
    const read = (to: number, limit: number) =>
      sql
        .exec(
          `SELECT model_version, minute, state, b FROM (SELECT model_version, minute, state, 0 AS b FROM outcomes WHERE minute >= ?1 AND minute < ?2 UNION ALL SELECT model_version, minute, state, 1 AS b FROM browser_outcomes WHERE minute >= ?1 AND minute < ?2) ORDER BY minute LIMIT ?3`,
          lower,
          to,
          limit,
        )
        .toArray();
    let rows = read(upper, MAX_BUCKETS_PER_CALL + 1);
    if (rows.length > MAX_BUCKETS_PER_CALL) {
      // Bounded work: stop before the window of the first row past the limit (the next alarm goes
      // on from there); a first window larger than the limit is read whole (a window is judged on all its rows).
      upper = Math.max(lower + W, Math.floor((rows[MAX_BUCKETS_PER_CALL].minute as number) / W) * W);
      if (upper === lower + W) rows = read(upper, Number.MAX_SAFE_INTEGER);
    }
    // Per (window, version): the edge's outcomes, and the browsers'.
    const windows = new Map<number, Map<string, { edge: OutcomeState; browser?: OutcomeState }>>();
    for (const r of rows) {
      if ((r.minute as number) >= upper) break;
      const w = Math.floor((r.minute as number) / W) * W;
      if (!windows.has(w)) windows.set(w, new Map());
      const per = windows.get(w)!;
      const v = r.model_version as string;
      const x = per.get(v) ?? { edge: emptyOutcomes() };
      const st = JSON.parse(r.state as string) as OutcomeState;
      if (r.b) x.browser = mergeOutcomes(x.browser ?? emptyOutcomes(), st);
      else mergeOutcomes(x.edge, st);
      per.set(v, x);
    }
    for (const w of [...windows.keys()].sort((a, b) => a - b))
      for (const [version, x] of windows.get(w)!) {
        // Browser-recorded outcomes count only from enough address groups (ALERT_MIN_SOURCES), as
        // browser drift evidence does; below that the window is judged on the edge's own.
        const groups = () =>
          sql.exec(`SELECT COUNT(DISTINCT grp) AS n FROM outcome_groups WHERE model_version = ? AND minute >= ? AND minute < ?`, version, w, w + W).one()
            .n as number;
        const trusted = !x.browser || groups() >= this.config.minSources;
        if (!trusted) this.#count('performance_windows_untrusted');
        const st = trusted && x.browser ? mergeOutcomes(mergeOutcomes(emptyOutcomes(), x.edge), x.browser) : x.edge;
        const j = judgePerformance(task, st, ref.value, performanceTolerance, minRows);
        if (!j) continue;
        this.#count('performance_windows_judged');
        this.#judgeKey(version, `performance:${j.metric}`, j.worse, w, () => ({
          [j.metric]: { statistic: j.value, bound: j.bound, threshold: j.threshold, reference: j.reference, reference_source: ref.source, labels: j.n },
        }));
      }
    this.#setMeta('performance_through', upper - W);
  }

  /**
   * Rolls evaluated minute buckets older than the hourly horizon into hour buckets, hours older
   * than the daily horizon into days, deletes buckets past retention and forgets dedup records
   * older than the hourly horizon. Bounded work per call; returns true when work remains.
   */
  async rollup(now: number): Promise<boolean> {
    this.#fold();
    const sql = this.ctx.storage.sql;
    const { hourlyAfterMs, dailyAfterMs, retentionMs, windowMs } = this.config;
    const clock = this.#dataClock(now);
    if (!Number.isFinite(clock)) return false;
    const through = Number(this.#meta('evaluated_through') ?? -Infinity);
    const evaluatedEnd = Number.isFinite(through) ? through + windowMs : -Infinity;
    let budget = MAX_ROLLUPS_PER_ALARM;
    let more = false;
    for (const [span, after] of [
      [HOUR_MS, hourlyAfterMs],
      [DAY_MS, dailyAfterMs],
    ] as const) {
      const horizon = Math.floor(Math.min(clock - after, evaluatedEnd) / span) * span;
      if (!Number.isFinite(horizon)) continue;
      const groups = sql
        .exec(
          `SELECT DISTINCT model_version, origin, CAST(minute / ? AS INTEGER) * ? AS g FROM buckets WHERE span < ? AND minute < ? ORDER BY g LIMIT ?`,
          span,
          span,
          span,
          horizon,
          budget + 1,
        )
        .toArray();
      for (const { model_version: version, origin, g } of groups.slice(0, budget)) {
        this.ctx.storage.transactionSync(() => {
          const range = [version, origin, g, (g as number) + span] as const;
          const rows = sql.exec(`SELECT summary FROM buckets WHERE model_version = ? AND origin = ? AND minute >= ? AND minute < ?`, ...range).toArray();
          let acc: Profile | undefined;
          for (const r of rows) {
            const p = decodeSummary(new Uint8Array(r.summary as ArrayBuffer));
            if (!acc) acc = p;
            else if (!tryMerge(acc, p)) this.#count('rollup_incompatible');
          }
          const bytes = acc && encodeSummary({ ...acc, source: { kind: 'merged', id: '' }, sequence: 0 }, { meanPrecision: 'f64' });
          sql.exec(`DELETE FROM buckets WHERE model_version = ? AND origin = ? AND minute >= ? AND minute < ?`, ...range);
          if (bytes) sql.exec(`INSERT INTO buckets (model_version, minute, origin, span, summary) VALUES (?, ?, ?, ?, ?)`, version, g, origin, span, bytes);
          this.#count(span === HOUR_MS ? 'rollups_hourly' : 'rollups_daily');
        });
      }
      if (groups.length > budget) more = true;
      budget -= Math.min(budget, groups.length);
    }
    // Outcome states: minutes past the hourly horizon (and judged for performance alerts, when
    // they are) merge into one row per (version, hour), at the hour's start. Labels still arriving
    // for a rolled-up hour add a minute row beside it, merged on a later pass: states add up.
    const judged = Number(this.#meta('performance_through') ?? Number.NaN) + windowMs;
    const outcomeLimit = Math.floor(Math.min(clock - hourlyAfterMs, Number.isFinite(judged) ? judged : Infinity) / HOUR_MS) * HOUR_MS;
    for (const table of ['outcomes', 'browser_outcomes']) {
      const hours = sql
        .exec(
          `SELECT model_version, minute - (minute % ${HOUR_MS}) AS h, COUNT(*) AS n FROM ${table} WHERE minute < ? GROUP BY model_version, h HAVING n > 1 ORDER BY h LIMIT ?`,
          outcomeLimit,
          budget + 1,
        )
        .toArray();
      for (const g of hours.slice(0, budget)) {
        const [version, h] = [g.model_version as string, g.h as number];
        this.ctx.storage.transactionSync(() => {
          const merged = emptyOutcomes();
          for (const r of sql.exec(`SELECT state FROM ${table} WHERE model_version = ? AND minute >= ? AND minute < ?`, version, h, h + HOUR_MS))
            mergeOutcomes(merged, JSON.parse(r.state as string) as OutcomeState);
          sql.exec(`DELETE FROM ${table} WHERE model_version = ? AND minute >= ? AND minute < ?`, version, h, h + HOUR_MS);
          sql.exec(`INSERT INTO ${table} (model_version, minute, state) VALUES (?, ?, ?)`, version, h, JSON.stringify(merged));
        });
        this.#count('outcome_rollups_hourly');
      }
      if (hours.length > budget) more = true;
      budget -= Math.min(budget, hours.length);
    }
    const forgotten = sql.exec(`DELETE FROM predictions WHERE at < ?`, clock - this.config.predictionHorizonMs).rowsWritten;
    if (forgotten) this.#count('predictions_expired', forgotten);
    sql.exec(`DELETE FROM ranking_events WHERE at < ?`, clock - this.config.predictionHorizonMs);
    sql.exec(`DELETE FROM outcomes WHERE minute < ?`, clock - retentionMs);
    sql.exec(`DELETE FROM browser_outcomes WHERE minute < ?`, clock - retentionMs);
    // Address groups are needed until their windows are judged (then only the states are kept).
    sql.exec(`DELETE FROM outcome_groups WHERE minute < ?`, Number.isFinite(judged) ? Math.min(clock - hourlyAfterMs, judged) : clock - hourlyAfterMs);
    const expired = sql.exec(`DELETE FROM buckets WHERE minute + span <= ?`, clock - retentionMs).rowsWritten;
    if (expired) this.#count('buckets_expired', expired);
    const horizon = clock - hourlyAfterMs;
    if (horizon > Number(this.#meta('pruned_before') ?? -Infinity)) {
      sql.exec(`DELETE FROM seen WHERE window_start < ?`, horizon);
      sql.exec(`DELETE FROM browser_groups WHERE minute < ?`, Math.min(horizon, evaluatedEnd));
      this.#setMeta('pruned_before', horizon);
    }
    return more;
  }

  /**
   * Posts each alert's opening and resolution to ALERT_WEBHOOK_URL as JSON, once each:
   * { event: 'alert.opened' | 'alert.resolved', model, alert }, with
   * `x-driftwatch-signature: sha256=<hex HMAC of the body>` when ALERT_WEBHOOK_SECRET is set.
   * A failed post is retried on later alarms, up to ten attempts. Returns true when posts remain.
   */
  async notify(): Promise<boolean> {
    const { webhookUrl, webhookSecret } = this.config;
    if (!webhookUrl) return false;
    const sql = this.ctx.storage.sql;
    const model = this.#meta('model') ?? '';
    const pending = sql
      .exec(
        `SELECT id, notified_open, notified_resolved, resolved_at FROM alerts WHERE (notified_open = 0 OR (resolved_at IS NOT NULL AND notified_resolved = 0)) AND notify_attempts < ? ORDER BY id LIMIT 20`,
        WEBHOOK_MAX_ATTEMPTS,
      )
      .toArray();
    const all = new Map((await this.alerts()).map((a) => [a.id, a]));
    for (const row of pending) {
      const alert = all.get(row.id as number)!;
      const events: ['alert.opened' | 'alert.resolved', string][] = [];
      if (!row.notified_open) events.push(['alert.opened', 'notified_open']);
      if (row.resolved_at !== null && !row.notified_resolved) events.push(['alert.resolved', 'notified_resolved']);
      for (const [event, column] of events) {
        const body = JSON.stringify({ event, model, alert: event === 'alert.opened' ? { ...alert, resolved_at: null } : alert });
        if (!(await postEvent(webhookUrl, webhookSecret, event, body))) {
          sql.exec(`UPDATE alerts SET notify_attempts = notify_attempts + 1 WHERE id = ?`, row.id as number);
          this.#count('webhook_failures');
          return true;
        }
        sql.exec(`UPDATE alerts SET ${column} = 1 WHERE id = ?`, row.id as number);
        this.#count('webhook_sent');
      }
    }
    return pending.length === 20;
  }

  /** Alerts, newest first. */
  async alerts(): Promise<Alert[]> {
    return this.ctx.storage.sql
      .exec(`SELECT id, model_version, feature, since, opened_at, resolved_at, evidence FROM alerts ORDER BY opened_at DESC, id DESC`)
      .toArray()
      .map((r) => ({
        id: r.id as number,
        version: r.model_version as string,
        feature: r.feature as string,
        since: new Date((r.since ?? r.opened_at) as number).toISOString(),
        opened_at: new Date(r.opened_at as number).toISOString(),
        resolved_at: r.resolved_at === null ? null : new Date(r.resolved_at as number).toISOString(),
        evidence: JSON.parse(r.evidence as string),
      }));
  }

  /**
   * The merged profile of the buckets starting in [from, to) for a version (all versions when
   * omitted), or null. Older data is held by the hour or the day, so its resolution is coarser.
   */
  async window(from: number, to: number, version?: string): Promise<Uint8Array | null> {
    this.#fold();
    const rows = this.ctx.storage.sql
      .exec(
        `SELECT summary FROM buckets WHERE minute >= ? AND minute < ? ${version ? 'AND model_version = ?' : ''} ORDER BY minute`,
        ...(version ? [from, to, version] : [from, to]),
      )
      .toArray();
    let acc: Profile | undefined;
    for (const r of rows) {
      const p = decodeSummary(new Uint8Array(r.summary as ArrayBuffer));
      if (acc && acc.modelVersion !== p.modelVersion) p.modelVersion = acc.modelVersion; // versions pooled on request
      if (!acc) acc = p;
      else tryMerge(acc, p);
    }
    return acc ? encodeSummary({ ...acc, source: { kind: 'merged', id: '' }, sequence: 0 }, { meanPrecision: 'f64' }) : null;
  }

  /**
   * The baseline in force: an operator's re-baseline window, else the training baseline. The
   * training one is decoded once per bytes object (a baseline with time slots is a few hundred
   * KB, and its merged slots are memoised on the decoded profile, core/clock.ts).
   */
  #baselineProfile(training: Uint8Array): Profile {
    const stored = this.#meta('baseline');
    if (stored) return decodeSummary(base64ToBytes(stored));
    let p = decodedBaselines.get(training);
    if (!p) decodedBaselines.set(training, (p = decodeSummary(training)));
    return p;
  }

  /**
   * Re-baselines to the merged window [from, to) (all versions): later evaluations and the
   * drift route compare with it. Refuses a window with fewer rows than the evaluation minimum.
   */
  async setBaseline(from: number, to: number): Promise<{ rows: number } | { error: string }> {
    const bytes = await this.window(from, to);
    if (!bytes) return { error: 'no data in that window' };
    const p = decodeSummary(bytes);
    const { minRows } = this.config;
    if (p.counters.rows < minRows) return { error: `the window has ${p.counters.rows} rows, fewer than ${minRows}` };
    const rebased: Profile = {
      ...p,
      source: { kind: 'baseline', id: `rebaselined ${new Date(from).toISOString()}..${new Date(to).toISOString()}` },
      sequence: 0,
    };
    this.#setMeta('baseline', bytesToBase64(encodeSummary(rebased, { meanPrecision: 'f64' })));
    // Streaks restart against the new reference.
    this.ctx.storage.sql.exec(`DELETE FROM streaks`);
    return { rows: p.counters.rows };
  }

  /**
   * The reference performance alerts judge against: the watched metric's realized figure over a
   * labelled period [from, to) of every version, from then on (performance streaks restart).
   */
  async setPerformanceReference(
    model: string,
    from: number,
    to: number,
  ): Promise<{ metric: string; value: number; labels: number; source: string } | { error: string }> {
    const bundled = await this.#reference(model);
    const task = bundled ? outcomeTask(bundled.manifest) : undefined;
    if (!task) return { error: 'the model has no scored outcomes' };
    const st = emptyOutcomes();
    for (const r of await this.outcomes(from, to)) mergeOutcomes(st, JSON.parse(r.state) as OutcomeState);
    // Tolerance 0 and reference 0: only the figure (and its count) matter here.
    const j = judgePerformance(task, st, 0, 0, this.config.minRows);
    if (!j)
      return {
        error: `the period has ${task === 'top-k-recommendation' ? st.predicted : st.labelled} labelled predictions (or a single class), fewer than ${this.config.minRows} usable`,
      };
    const ref = { metric: j.metric, value: j.value, source: `realized ${new Date(from).toISOString()}..${new Date(to).toISOString()}` };
    this.#setMeta('performance_reference', JSON.stringify(ref));
    this.ctx.storage.sql.exec(`DELETE FROM streaks WHERE feature LIKE 'performance:%'`);
    return { ...ref, labels: j.n };
  }

  /** The reference performance alerts judge against (see #performanceReference), or null without one. */
  async performanceReference(model: string): Promise<{ metric: string; value: number; source: string } | null> {
    const bundled = await this.#reference(model);
    return bundled ? (this.#performanceReference(bundled.manifest) ?? null) : null;
  }

  /** The baseline in force, encoded (for the drift route), and whether it is the training one. */
  async baseline(model: string): Promise<{ bytes: Uint8Array; training: boolean }> {
    const stored = this.#meta('baseline');
    if (stored) return { bytes: base64ToBytes(stored), training: false };
    const bundled = await this.#reference(model);
    if (!bundled) throw new Error(`no model "${model}" is served`);
    return { bytes: bundled.baseline, training: true };
  }

  /**
   * A `stale` alert, once per version, when the reference version is past its retrain cadence
   * (core/manifest.ts staleness: the end of its training period, else when it was pushed, plus
   * `retrain_every`); promoting another version resolves it.
   */
  #staleCheck(ref: { manifest: ModelManifest; pushedAt?: string }, now: number): void {
    const s = staleness(ref.manifest, ref.pushedAt ?? '', now);
    if (!s?.stale) return;
    const sql = this.ctx.storage.sql;
    const version = ref.manifest.version;
    if (sql.exec(`SELECT 1 FROM alerts WHERE model_version = ? AND feature = 'stale' LIMIT 1`, version).toArray().length) return;
    const evidence = {
      stale: { age_days: s.age_days, due_at: s.due_at, retrain_every: ref.manifest.ownership?.retrain_every, owner: ref.manifest.ownership?.owner ?? null },
    };
    sql.exec(
      `INSERT INTO alerts (model_version, feature, opened_at, since, evidence) VALUES (?, 'stale', ?, ?, ?)`,
      version,
      now,
      Date.parse(s.due_at),
      JSON.stringify(evidence),
    );
    this.#count('alerts_opened');
  }

  /** The model's manifest and training baseline in force: the version last promoted's, else the default version's. */
  async #reference(model: string): Promise<Awaited<ReturnType<AggregatorModels>>> {
    const promoted = this.#meta('reference_version');
    return (promoted ? await this.#models(model, promoted) : undefined) ?? (await this.#models(model));
  }

  /**
   * A promoted version's training baseline becomes the reference for drift: windows evaluated from
   * here on are judged against it (those already evaluated keep their verdicts and alerts), an
   * operator's re-baseline window is dropped (it described the old version's traffic) and streaks
   * restart. Idempotent: promoting the version in force again changes nothing.
   */
  async promote(version: string): Promise<{ changed: boolean }> {
    if (this.#meta('reference_version') === version) return { changed: false };
    this.ctx.storage.transactionSync(() => {
      this.#setMeta('reference_version', version);
      this.ctx.storage.sql.exec(`DELETE FROM meta WHERE key = 'baseline'`);
      this.ctx.storage.sql.exec(
        `UPDATE alerts SET resolved_at = ? WHERE feature = 'stale' AND resolved_at IS NULL AND model_version != ?`,
        Date.now(),
        version,
      );
      this.ctx.storage.sql.exec(`DELETE FROM streaks`);
    });
    return { changed: true };
  }

  /**
   * What a rollout stage is judged on (worker/routing-store.ts): the data clock (the newest window
   * end received, ms; null before any data), each of `versions`' merged profile of the buckets
   * from `from` on (null: none yet), and the input features and outputs with an open drift alert
   * per version.
   */
  async evidence(
    from: number | null,
    versions: string[],
  ): Promise<{ clock: number | null; profiles: Record<string, Uint8Array | null>; alerts: Record<string, string[]> }> {
    this.#fold();
    const max = Number(this.#meta('max_end') ?? Number.NaN);
    const profiles: Record<string, Uint8Array | null> = {};
    const alerts: Record<string, string[]> = {};
    for (const v of versions.slice(0, 8)) {
      profiles[v] = from === null ? null : await this.window(from, Number.MAX_SAFE_INTEGER, v);
      alerts[v] = this.ctx.storage.sql
        .exec(`SELECT feature FROM alerts WHERE model_version = ? AND resolved_at IS NULL`, v)
        .toArray()
        .map((r) => r.feature as string);
    }
    return { clock: Number.isFinite(max) ? max : null, profiles, alerts };
  }

  /**
   * Records what the join needs of predictions the edge served (their ids, versions, times and
   * values; core/outcomes.ts): a retried flush stores nothing twice, and each new one counts as
   * predicted in its version's minute. Predictions already past the horizon, and malformed
   * records, are refused and counted. At most MAX_PREDICTIONS a call.
   */
  async recordPredictions(
    model: string,
    records: PredictionRecord[],
    browser?: { group: string },
  ): Promise<{ stored: number; duplicate: number; rejected: number }> {
    // A browser's records (`browser`: the address group it came from) keep their outcomes apart.
    const group = browser && typeof browser.group === 'string' && /^[0-9a-f]{16,64}$/.test(browser.group) ? browser.group : undefined;
    if (browser && group === undefined) {
      this.#count('predictions_rejected', Array.isArray(records) ? records.length : 1);
      return { stored: 0, duplicate: 0, rejected: Array.isArray(records) ? records.length : 1 };
    }
    if (!Array.isArray(records) || records.length > MAX_PREDICTIONS) {
      this.#count('predictions_rejected', Array.isArray(records) ? records.length : 1);
      return { stored: 0, duplicate: 0, rejected: Array.isArray(records) ? records.length : 1 };
    }
    const sql = this.ctx.storage.sql;
    const horizon = this.#dataClock(Date.now()) - this.config.predictionHorizonMs;
    let stored = 0;
    let duplicate = 0;
    let rejected = 0;
    this.ctx.storage.transactionSync(() => {
      const fresh = new Map<string, { n: number; longest: number }>();
      for (const r of records) {
        const at = predictionTime(r?.id);
        const items = r?.items;
        const itemsOk =
          items === undefined ||
          (Array.isArray(items) && items.length <= MAX_SERVED_ITEMS && items.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 64));
        if (
          at === undefined ||
          at !== r.at ||
          typeof r.version !== 'string' ||
          r.version.length > 128 ||
          typeof r.value !== 'number' ||
          !Number.isFinite(r.value) ||
          !itemsOk ||
          at < horizon
        ) {
          rejected++;
          continue;
        }
        const n = sql.exec(
          `INSERT OR IGNORE INTO predictions (id, model_version, at, value, items, grp) VALUES (?, ?, ?, ?, ?, ?)`,
          r.id,
          r.version,
          at,
          r.value,
          items ? JSON.stringify(items) : null,
          group ?? null,
        ).rowsWritten;
        if (!n) {
          duplicate++;
          continue;
        }
        stored++;
        const key = `${r.version}\u0000${Math.floor(at / MINUTE_MS) * MINUTE_MS}`;
        const f = fresh.get(key) ?? { n: 0, longest: 0 };
        fresh.set(key, { n: f.n + 1, longest: Math.max(f.longest, items?.length ?? 0) });
      }
      for (const [key, { n, longest }] of fresh) {
        const [version, minute] = key.split('\u0000');
        this.#updateOutcome(
          version,
          Number(minute),
          (st) => {
            st.predicted += n;
            if (longest) st.longest = Math.max(st.longest ?? 0, longest);
          },
          group !== undefined,
        );
        if (group !== undefined) {
          const known = sql.exec(`SELECT COUNT(*) AS n FROM outcome_groups WHERE model_version = ? AND minute = ?`, version, Number(minute)).one().n as number;
          if (known < MAX_GROUPS_PER_MINUTE)
            sql.exec(`INSERT OR IGNORE INTO outcome_groups (model_version, minute, grp) VALUES (?, ?, ?)`, version, Number(minute), group);
        }
      }
      if (!this.#modelKnown && stored) {
        sql.exec(`INSERT INTO meta (key, value) VALUES ('model', ?) ON CONFLICT(key) DO NOTHING`, model);
        this.#modelKnown = true;
      }
    });
    if (stored) this.#count('predictions_stored', stored);
    if (rejected) this.#count('predictions_rejected', rejected);
    return { stored, duplicate, rejected };
  }

  /** Updates the outcome state of (version, minute): the edge's (`outcomes`), or with `browser` the browsers' (`browser_outcomes`). */
  #updateOutcome(version: string, minute: number, change: (s: OutcomeState) => void, browser = false): void {
    const sql = this.ctx.storage.sql;
    const table = browser ? 'browser_outcomes' : 'outcomes';
    const row = sql.exec(`SELECT state FROM ${table} WHERE model_version = ? AND minute = ?`, version, minute).toArray()[0];
    const st = row ? (JSON.parse(row.state as string) as OutcomeState) : emptyOutcomes();
    change(st);
    sql.exec(
      `INSERT INTO ${table} (model_version, minute, state) VALUES (?, ?, ?) ON CONFLICT(model_version, minute) DO UPDATE SET state = excluded.state`,
      version,
      minute,
      JSON.stringify(st),
    );
  }

  /**
   * Joins labels to their predictions, each answered on its own: `joined` (counted in the
   * window of the prediction, not of the label's arrival), `duplicate` (that prediction has its
   * label already: never counted twice), `expired` (past the join horizon), `unknown` (no such
   * prediction, or not recorded yet: the edge ships them within a telemetry window), `invalid`.
   */
  async feedback(task: OutcomeTask, items: FeedbackItem[]): Promise<FeedbackResult[]> {
    if (!Array.isArray(items) || items.length > MAX_FEEDBACK) return [{ status: 'invalid', reason: `at most ${MAX_FEEDBACK} items a call` }];
    const sql = this.ctx.storage.sql;
    const horizon = this.#dataClock(Date.now()) - this.config.predictionHorizonMs;
    const results = this.ctx.storage.transactionSync(() =>
      items.map((item): FeedbackResult => {
        const id = item?.prediction_id;
        const at = predictionTime(id);
        if (at === undefined) return { status: 'invalid', reason: 'prediction_id is not an id this edge gives' };
        if (task === 'top-k-recommendation') return this.#rankingEvent(id as string, at, horizon, item);
        const label = parseLabel(task, item.label);
        if (typeof label === 'string') return { status: 'invalid', reason: label };
        const row = sql.exec(`SELECT model_version, at, value, joined, grp FROM predictions WHERE id = ?`, id as string).toArray()[0];
        if (!row) return at < horizon ? { status: 'expired', reason: 'past the join horizon (PREDICTION_HORIZON_DAYS)' } : { status: 'unknown' };
        if (row.joined) return { status: 'duplicate' };
        sql.exec(`UPDATE predictions SET joined = 1 WHERE id = ?`, id as string);
        this.#updateOutcome(
          row.model_version as string,
          Math.floor((row.at as number) / MINUTE_MS) * MINUTE_MS,
          (st) => addOutcome(st, task, row.value as number, label),
          row.grp !== null,
        );
        return { status: 'joined', version: row.model_version as string };
      }),
    );
    for (const r of results) this.#count(`feedback_${r.status}`);
    return results;
  }

  /**
   * One click or conversion on a ranking's prediction: stored once per (prediction, event, item),
   * at most MAX_EVENTS_PER_PREDICTION per prediction. A click on a served item may move the
   * prediction's best click position (CTR@k counts each list once, at its best click).
   */
  #rankingEvent(id: string, at: number, horizon: number, item: FeedbackItem): FeedbackResult {
    const sql = this.ctx.storage.sql;
    const ev = parseEvent(item.event, item.item);
    if (typeof ev === 'string') return { status: 'invalid', reason: ev };
    const row = sql.exec(`SELECT model_version, at, items, grp FROM predictions WHERE id = ?`, id).toArray()[0];
    if (!row) return at < horizon ? { status: 'expired', reason: 'past the join horizon (PREDICTION_HORIZON_DAYS)' } : { status: 'unknown' };
    const served = row.items === null ? [] : (JSON.parse(row.items as string) as string[]);
    const earlier = sql.exec(`SELECT kind, item FROM ranking_events WHERE id = ?`, id).toArray() as { kind: string; item: string }[];
    if (earlier.some((e) => e.kind === ev.event && e.item === ev.item)) return { status: 'duplicate' };
    if (earlier.length >= MAX_EVENTS_PER_PREDICTION) return { status: 'invalid', reason: `at most ${MAX_EVENTS_PER_PREDICTION} events per prediction` };
    sql.exec(`INSERT INTO ranking_events (id, kind, item, at) VALUES (?, ?, ?, ?)`, id, ev.event, ev.item, row.at as number);
    const best = (clicks: { kind: string; item: string }[]) => {
      const positions = clicks
        .filter((e) => e.kind === 'click')
        .map((e) => served.indexOf(e.item))
        .filter((p) => p >= 0);
      return positions.length ? Math.min(...positions) : undefined;
    };
    this.#updateOutcome(
      row.model_version as string,
      Math.floor((row.at as number) / MINUTE_MS) * MINUTE_MS,
      (st) =>
        addRankingEvent(st, {
          first: earlier.length === 0,
          ...(ev.event === 'click'
            ? { click: { served: served.includes(ev.item), before: best(earlier), after: best([...earlier, { kind: 'click', item: ev.item }]) } }
            : { converted: !earlier.some((e) => e.kind === 'convert') }),
        }),
      row.grp !== null,
    );
    return { status: 'joined', version: row.model_version as string };
  }

  /** The outcome states of the minutes in [from, to), per version: what the performance route reads. */
  async outcomes(from: number, to: number): Promise<{ version: string; minute: number; state: string }[]> {
    return this.ctx.storage.sql
      .exec(
        `SELECT model_version, minute, state FROM (SELECT model_version, minute, state FROM outcomes WHERE minute >= ?1 AND minute < ?2 UNION ALL SELECT model_version, minute, state FROM browser_outcomes WHERE minute >= ?1 AND minute < ?2) ORDER BY minute LIMIT 200000`,
        from,
        to,
      )
      .toArray()
      .map((r) => ({ version: r.model_version as string, minute: r.minute as number, state: r.state as string }));
  }

  /** The merged profile of [from, to) per version. */
  async versions(from: number, to: number): Promise<Record<string, Uint8Array>> {
    this.#fold();
    const names = this.ctx.storage.sql
      .exec(`SELECT DISTINCT model_version FROM buckets WHERE minute >= ? AND minute < ?`, from, to)
      .toArray()
      .map((r) => r.model_version as string);
    const out: Record<string, Uint8Array> = {};
    for (const v of names) {
      const bytes = await this.window(from, to, v);
      if (bytes) out[v] = bytes;
    }
    return out;
  }

  async counters(): Promise<Record<string, number>> {
    return Object.fromEntries(
      this.ctx.storage.sql
        .exec(`SELECT name, value FROM counters`)
        .toArray()
        .map((r) => [r.name as string, r.value as number]),
    );
  }

  /** Stored buckets: version, start and span (a minute, an hour or a day). */
  async minutes(): Promise<{ version: string; minute: number; span: number; origin: 'edge' | 'browser' }[]> {
    this.#fold();
    return this.ctx.storage.sql
      .exec(`SELECT model_version, minute, span, origin FROM buckets ORDER BY minute, model_version, origin`)
      .toArray()
      .map((r) => ({ version: r.model_version as string, minute: r.minute as number, span: r.span as number, origin: r.origin as 'edge' | 'browser' }));
  }
}

/** Whose evidence a summary is: an edge isolate's own ('edge', trusted), or browsers' ('browser'). */
/**
 * Merges `p` into `acc`; false (nothing changed, counted by the caller's log) when the two cannot
 * merge. Stored buckets were each accepted, but two of them need not be compatible (versions
 * pooled on request, a sketch redefined between deploys): a read skips what does not fit.
 */
function tryMerge(acc: Profile, p: Profile): boolean {
  try {
    mergeInto(acc, p);
    return true;
  } catch (e) {
    if (!(e instanceof SketchMergeError)) throw e;
    console.error(`aggregator: a bucket of ${p.modelVersion} does not merge with the others, left out: ${e.message}`);
    return false;
  }
}

function originOf(p: Profile): 'edge' | 'browser' {
  return p.source.kind === 'edge' ? 'edge' : 'browser';
}

function bytesToBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
