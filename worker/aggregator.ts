/**
 * DriftAggregator: one Durable Object per model (by name) that receives the compact summaries
 * every edge isolate and browser sends, and keeps them merged by minute in its SQLite storage.
 * A thin shell: decoding, merging and statistics are core's.
 *
 * ingest(bytes):
 * - decodes the summary; anything malformed (or for another model) is refused with the reason
 *   and counted, never stored;
 * - deduplicates by (source kind, source id, sequence), so a retried flush never counts twice;
 * - merges the profile into the bucket of its window's minute (per model version), in one
 *   storage transaction with the dedup record, so a crash can neither lose nor double it.
 */
import { DurableObject } from 'cloudflare:workers';
import { compareSketches, decodeSummary, encodeSummary, mergeProfiles, SummaryDecodeError, type Profile, type Sketch } from '../core/index.ts';
import { BUNDLED_MODELS } from './models.ts';

export const MINUTE_MS = 60_000;
/** Consecutive drifted (or clean) evaluated minutes that open (or resolve) an alert. */
export const ALERT_HYSTERESIS = 3;
/** Minutes with fewer rows than this are not evaluated (too few to judge). */
export const MIN_ROWS_TO_EVALUATE = 200;

export interface Alert {
  id: number;
  version: string;
  feature: string;
  opened_at: string;
  resolved_at: string | null;
  /** The statistics of the window that opened it. */
  evidence: Record<string, { statistic: number; threshold: number }>;
}

export interface IngestResult {
  status: 'stored' | 'duplicate' | 'rejected';
  reason?: string;
  minute?: number;
}

export class DriftAggregator extends DurableObject {
  #ready = false;

  #schema(): void {
    if (this.#ready) return;
    const sql = this.ctx.storage.sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS seen (source TEXT NOT NULL, sequence INTEGER NOT NULL, model_version TEXT NOT NULL, PRIMARY KEY (source, sequence, model_version))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS buckets (model_version TEXT NOT NULL, minute INTEGER NOT NULL, summary BLOB NOT NULL, PRIMARY KEY (model_version, minute))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS streaks (model_version TEXT NOT NULL, feature TEXT NOT NULL, drifted INTEGER NOT NULL, clean INTEGER NOT NULL, PRIMARY KEY (model_version, feature))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, model_version TEXT NOT NULL, feature TEXT NOT NULL, opened_at INTEGER NOT NULL, resolved_at INTEGER, evidence TEXT NOT NULL)`);
    this.#ready = true;
  }

  #count(name: string, by = 1): void {
    this.ctx.storage.sql.exec(`INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`, name, by);
  }

  /** Stores one summary for `model` (the name this object was addressed by). */
  async ingest(model: string, bytes: Uint8Array | ArrayBuffer): Promise<IngestResult> {
    this.#schema();
    let p: Profile;
    try {
      p = decodeSummary(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
    } catch (e) {
      this.#count('rejected');
      return { status: 'rejected', reason: e instanceof SummaryDecodeError ? e.message : 'malformed summary' };
    }
    if (p.model !== model) {
      this.#count('rejected');
      return { status: 'rejected', reason: `summary is for model "${p.model}", not "${model}"` };
    }
    const source = `${p.source.kind}:${p.source.id}`;
    const minute = Math.floor(p.windowStart / MINUTE_MS) * MINUTE_MS;
    const sql = this.ctx.storage.sql;
    const result = this.ctx.storage.transactionSync(() => {
      const dup = sql.exec(`SELECT 1 FROM seen WHERE source = ? AND sequence = ? AND model_version = ?`, source, p.sequence, p.modelVersion).toArray();
      if (dup.length) {
        this.#count('duplicates');
        return { status: 'duplicate' as const, minute };
      }
      const row = sql.exec(`SELECT summary FROM buckets WHERE model_version = ? AND minute = ?`, p.modelVersion, minute).toArray()[0];
      const base = row ? mergeProfiles(decodeSummary(new Uint8Array(row.summary as ArrayBuffer)), p) : p;
      const merged: Profile = { ...base, source: { kind: 'merged', id: '' }, sequence: 0 };
      sql.exec(`INSERT INTO buckets (model_version, minute, summary) VALUES (?, ?, ?) ON CONFLICT(model_version, minute) DO UPDATE SET summary = excluded.summary`, p.modelVersion, minute, encodeSummary(merged, { meanPrecision: 'f64' }));
      sql.exec(`INSERT INTO seen (source, sequence, model_version) VALUES (?, ?, ?)`, source, p.sequence, p.modelVersion);
      this.#count('stored');
      this.#count('rows', p.counters.rows);
      sql.exec(`INSERT INTO meta (key, value) VALUES ('model', ?) ON CONFLICT(key) DO NOTHING`, model);
      return { status: 'stored' as const, minute };
    });
    if (result.status === 'stored') await this.#arm();
    return result;
  }

  /** Ingest arms an alarm a minute ahead, which evaluates the minutes completed since the last one. */
  async #arm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + MINUTE_MS);
  }

  override async alarm(): Promise<void> {
    await this.evaluate(Date.now());
    // Keep going while minutes remain that have not been evaluated.
    const through = Number(this.ctx.storage.sql.exec(`SELECT value FROM meta WHERE key = 'evaluated_through'`).toArray()[0]?.value ?? -1);
    const pending = this.ctx.storage.sql.exec(`SELECT 1 FROM buckets WHERE minute > ? LIMIT 1`, through).toArray().length > 0;
    if (pending) await this.ctx.storage.setAlarm(Date.now() + MINUTE_MS);
  }

  /**
   * Evaluates every minute bucket that completed before `now` and was not evaluated yet, in
   * time order, against the training baseline: a feature or output counts as drifted in a
   * minute when any of core's statistics flags it; ALERT_HYSTERESIS drifted minutes in a row
   * open an alert, as many clean ones resolve it. Minutes with too few rows are skipped.
   * Returns the number of minutes evaluated.
   */
  async evaluate(now: number): Promise<number> {
    this.#schema();
    const sql = this.ctx.storage.sql;
    const model = sql.exec(`SELECT value FROM meta WHERE key = 'model'`).toArray()[0]?.value as string | undefined;
    const bundled = model ? BUNDLED_MODELS[model] : undefined;
    if (!bundled) return 0;
    const baseline = this.#baselineProfile(bundled.baseline);
    const last = Number(sql.exec(`SELECT value FROM meta WHERE key = 'evaluated_through'`).toArray()[0]?.value ?? -Infinity);
    const due = sql.exec(`SELECT model_version, minute, summary FROM buckets WHERE minute > ? AND minute + ? <= ? ORDER BY minute`, Number.isFinite(last) ? last : -1, MINUTE_MS, now).toArray();
    let evaluated = 0;
    let through = last;
    for (const row of due) {
      const p = decodeSummary(new Uint8Array(row.summary as ArrayBuffer));
      through = Math.max(through, row.minute as number);
      if (p.counters.rows < MIN_ROWS_TO_EVALUATE) continue;
      evaluated++;
      const version = row.model_version as string;
      for (const [kind, live, base] of [['feature', p.features, baseline.features], ['output', p.outputs, baseline.outputs]] as const) {
        for (const [name, sketch] of live as Map<string, Sketch>) {
          const b = (base as Map<string, Sketch>).get(name);
          if (!b || b.constructor !== sketch.constructor) continue;
          const results = compareSketches(b, sketch);
          const drifted = Object.values(results).some((r) => r?.drifted);
          const key = kind === 'output' ? `output:${name}` : name;
          const st = sql.exec(`SELECT drifted, clean FROM streaks WHERE model_version = ? AND feature = ?`, version, key).toArray()[0] as { drifted: number; clean: number } | undefined;
          const d = drifted ? (st?.drifted ?? 0) + 1 : 0;
          const c = drifted ? 0 : (st?.clean ?? 0) + 1;
          sql.exec(`INSERT INTO streaks (model_version, feature, drifted, clean) VALUES (?, ?, ?, ?) ON CONFLICT(model_version, feature) DO UPDATE SET drifted = excluded.drifted, clean = excluded.clean`, version, key, d, c);
          const open = sql.exec(`SELECT id FROM alerts WHERE model_version = ? AND feature = ? AND resolved_at IS NULL`, version, key).toArray()[0];
          if (!open && d >= ALERT_HYSTERESIS) {
            const evidence = Object.fromEntries(Object.entries(results).filter(([, r]) => r?.drifted).map(([m, r]) => [m, { statistic: r!.statistic, threshold: r!.threshold }]));
            sql.exec(`INSERT INTO alerts (model_version, feature, opened_at, evidence) VALUES (?, ?, ?, ?)`, version, key, row.minute as number, JSON.stringify(evidence));
            this.#count('alerts_opened');
          } else if (open && c >= ALERT_HYSTERESIS) {
            sql.exec(`UPDATE alerts SET resolved_at = ? WHERE id = ?`, row.minute as number, open.id as number);
            this.#count('alerts_resolved');
          }
        }
      }
    }
    if (through !== last) sql.exec(`INSERT INTO meta (key, value) VALUES ('evaluated_through', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, String(through));
    return evaluated;
  }

  /** Alerts, newest first. */
  async alerts(): Promise<Alert[]> {
    this.#schema();
    return this.ctx.storage.sql
      .exec(`SELECT id, model_version, feature, opened_at, resolved_at, evidence FROM alerts ORDER BY opened_at DESC, id DESC`)
      .toArray()
      .map((r) => ({
        id: r.id as number,
        version: r.model_version as string,
        feature: r.feature as string,
        opened_at: new Date(r.opened_at as number).toISOString(),
        resolved_at: r.resolved_at === null ? null : new Date(r.resolved_at as number).toISOString(),
        evidence: JSON.parse(r.evidence as string),
      }));
  }

  /** The merged profile of [from, to) for a version (all versions when omitted), or null. */
  async window(from: number, to: number, version?: string): Promise<Uint8Array | null> {
    this.#schema();
    const rows = this.ctx.storage.sql
      .exec(`SELECT summary FROM buckets WHERE minute >= ? AND minute < ? ${version ? 'AND model_version = ?' : ''} ORDER BY minute`, ...(version ? [from, to, version] : [from, to]))
      .toArray();
    let acc: Profile | undefined;
    for (const r of rows) {
      const p = decodeSummary(new Uint8Array(r.summary as ArrayBuffer));
      if (acc && acc.modelVersion !== p.modelVersion) p.modelVersion = acc.modelVersion; // versions pooled on request
      acc = acc ? mergeProfiles(acc, p) : p;
    }
    return acc ? encodeSummary(acc, { meanPrecision: 'f64' }) : null;
  }

  /** The baseline in force: an operator's re-baseline window, else the training baseline. */
  #baselineProfile(training: ArrayBuffer): Profile {
    const row = this.ctx.storage.sql.exec(`SELECT value FROM meta WHERE key = 'baseline'`).toArray()[0];
    return decodeSummary(row ? base64ToBytes(row.value as string) : new Uint8Array(training));
  }

  /**
   * Re-baselines to the merged window [from, to) (all versions): later evaluations and the
   * drift route compare with it. Refuses a window with fewer than MIN_ROWS_TO_EVALUATE rows.
   */
  async setBaseline(from: number, to: number): Promise<{ rows: number } | { error: string }> {
    const bytes = await this.window(from, to);
    if (!bytes) return { error: 'no data in that window' };
    const p = decodeSummary(bytes);
    if (p.counters.rows < MIN_ROWS_TO_EVALUATE) return { error: `the window has ${p.counters.rows} rows, fewer than ${MIN_ROWS_TO_EVALUATE}` };
    const rebased: Profile = { ...p, source: { kind: 'baseline', id: `rebaselined ${new Date(from).toISOString()}..${new Date(to).toISOString()}` }, sequence: 0 };
    this.ctx.storage.sql.exec(`INSERT INTO meta (key, value) VALUES ('baseline', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, bytesToBase64(encodeSummary(rebased, { meanPrecision: 'f64' })));
    // Streaks restart against the new reference.
    this.ctx.storage.sql.exec(`DELETE FROM streaks`);
    return { rows: p.counters.rows };
  }

  /** The baseline in force, encoded (for the drift route), and whether it is the training one. */
  async baseline(model: string): Promise<{ bytes: Uint8Array; training: boolean }> {
    this.#schema();
    const row = this.ctx.storage.sql.exec(`SELECT value FROM meta WHERE key = 'baseline'`).toArray()[0];
    if (row) return { bytes: base64ToBytes(row.value as string), training: false };
    return { bytes: new Uint8Array(BUNDLED_MODELS[model].baseline), training: true };
  }

  /** The merged profile of [from, to) per version. */
  async versions(from: number, to: number): Promise<Record<string, Uint8Array>> {
    this.#schema();
    const names = this.ctx.storage.sql.exec(`SELECT DISTINCT model_version FROM buckets WHERE minute >= ? AND minute < ?`, from, to).toArray().map((r) => r.model_version as string);
    const out: Record<string, Uint8Array> = {};
    for (const v of names) {
      const bytes = await this.window(from, to, v);
      if (bytes) out[v] = bytes;
    }
    return out;
  }

  async counters(): Promise<Record<string, number>> {
    this.#schema();
    return Object.fromEntries(this.ctx.storage.sql.exec(`SELECT name, value FROM counters`).toArray().map((r) => [r.name as string, r.value as number]));
  }

  async minutes(): Promise<{ version: string; minute: number }[]> {
    this.#schema();
    return this.ctx.storage.sql.exec(`SELECT model_version, minute FROM buckets ORDER BY minute`).toArray().map((r) => ({ version: r.model_version as string, minute: r.minute as number }));
  }
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
