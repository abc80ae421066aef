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
import { decodeSummary, encodeSummary, mergeProfiles, SummaryDecodeError, type Profile } from '../core/index.ts';

export const MINUTE_MS = 60_000;

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
    return this.ctx.storage.transactionSync(() => {
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
      return { status: 'stored' as const, minute };
    });
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

  async counters(): Promise<Record<string, number>> {
    this.#schema();
    return Object.fromEntries(this.ctx.storage.sql.exec(`SELECT name, value FROM counters`).toArray().map((r) => [r.name as string, r.value as number]));
  }

  async minutes(): Promise<{ version: string; minute: number }[]> {
    this.#schema();
    return this.ctx.storage.sql.exec(`SELECT model_version, minute FROM buckets ORDER BY minute`).toArray().map((r) => ({ version: r.model_version as string, minute: r.minute as number }));
  }
}
