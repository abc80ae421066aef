/**
 * RoutingStore: one Durable Object per model (by name) holding its canary/shadow routing table
 * in the object's SQLite-backed storage, so an operator can change the table without a
 * redeploy, and the model's history: every change to what serves or could serve (a table
 * replaced, a version pushed or deleted), with who made it (the operator token's name), when,
 * from what to what, and why. Validation is core's (validateRoutingTable), done by the route
 * before `put`; the table and its history entry are written in one storage transaction, and so
 * is the webhook it owes: each entry is POSTed to ALERT_WEBHOOK_URL as
 * `{ event: 'history.<action>', model, entry }` (signed as alerts are, see webhook.ts) by the
 * object's alarm, in order, retried on later alarms up to ten attempts.
 */
import { DurableObject } from 'cloudflare:workers';
import type { RoutingTable } from '../core/index.ts';
import { aggregatorConfig } from './config.ts';
import type { Env } from './env.ts';
import { postEvent } from './webhook.ts';

/** One change in a model's history (GET /v1/models/{name}/history answers these, newest first). */
export interface HistoryEntry {
  /** 1, 2, ...: the order of changes, gap-free. */
  seq: number;
  at: string;
  /** The operator token's name (OPERATOR_TOKEN is "operator"). */
  who: string;
  action: 'route' | 'push' | 'delete';
  /** The table before and after ('route'); the version ('push', 'delete'). */
  from?: RoutingTable | null;
  to?: RoutingTable;
  version?: string;
  sha256?: string;
  /** The reason given (x-change-reason), if any. */
  why?: string;
}

/** Entries kept per model; older ones are dropped as new ones come (a model changes far less often). */
export const MAX_HISTORY = 10_000;
const WEBHOOK_MAX_ATTEMPTS = 10;
/** Owed posts: `w:<seq>` -> attempts so far. */
const owed = (seq: number) => `w:${String(seq).padStart(12, '0')}`;
const key = (seq: number) => `h:${String(seq).padStart(12, '0')}`;

export class RoutingStore extends DurableObject<Env> {
  async getTable(): Promise<{ table: RoutingTable | null; updatedAt: string | null }> {
    const table = (await this.ctx.storage.get<RoutingTable>('table')) ?? null;
    const updatedAt = (await this.ctx.storage.get<string>('updatedAt')) ?? null;
    return { table, updatedAt };
  }

  /** Replaces the table, and records the change (`who`, `why`) with the table it replaced. `model`: the name this object is addressed by, for the webhook. */
  async putTable(table: RoutingTable, change: { who: string; why?: string; model?: string } = { who: 'unknown' }): Promise<{ updatedAt: string; seq: number }> {
    const updatedAt = new Date().toISOString();
    const seq = await this.ctx.storage.transaction(async (txn) => {
      const from = (await txn.get<RoutingTable>('table')) ?? null;
      await txn.put({ table, updatedAt });
      return this.#append(txn, change.model, { at: updatedAt, who: change.who, action: 'route', from, to: table, ...(change.why ? { why: change.why } : {}) });
    });
    await this.#arm();
    return { updatedAt, seq };
  }

  async clearTable(): Promise<void> {
    await this.ctx.storage.delete(['table', 'updatedAt']);
  }

  /** Records a registry change of this model (a version pushed or deleted). */
  async record({
    model,
    ...change
  }: {
    model?: string;
    who: string;
    action: 'push' | 'delete';
    version: string;
    sha256?: string;
    why?: string;
  }): Promise<number> {
    const seq = await this.ctx.storage.transaction((txn) => this.#append(txn, model, { at: new Date().toISOString(), ...change }));
    await this.#arm();
    return seq;
  }

  /** The newest `limit` entries before `before` (a seq; default: from the newest), newest first. */
  async history(limit = 100, before?: number): Promise<HistoryEntry[]> {
    const end = before === undefined ? undefined : key(Math.max(0, before));
    const got = await this.ctx.storage.list<HistoryEntry>({ prefix: 'h:', reverse: true, limit, ...(end ? { end } : {}) });
    return [...got.values()];
  }

  async #append(txn: DurableObjectTransaction, model: string | undefined, entry: Omit<HistoryEntry, 'seq'>): Promise<number> {
    const seq = ((await txn.get<number>('seq')) ?? 0) + 1;
    await txn.put({ seq, [key(seq)]: { seq, ...entry } });
    if (model) await txn.put('model', model);
    // The post it owes, written with the entry: a restart between the two cannot lose it.
    if (aggregatorConfig(this.env).webhookUrl) await txn.put(owed(seq), 0);
    if (seq > MAX_HISTORY) await txn.delete(key(seq - MAX_HISTORY));
    return seq;
  }

  async #arm(): Promise<void> {
    if (aggregatorConfig(this.env).webhookUrl && (await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now());
  }

  /** Posts the owed history events in order; a failure stops the round (order kept) and is retried after ALERT_EVAL_INTERVAL_MS. */
  override async alarm(): Promise<void> {
    const { webhookUrl, webhookSecret, intervalMs } = aggregatorConfig(this.env);
    if (!webhookUrl) return;
    const model = (await this.ctx.storage.get<string>('model')) ?? '';
    const pending = await this.ctx.storage.list<number>({ prefix: 'w:', limit: 20 });
    for (const [k, attempts] of pending) {
      const entry = await this.ctx.storage.get<HistoryEntry>(`h:${k.slice(2)}`);
      const event = `history.${entry?.action ?? 'dropped'}`;
      if (entry && (await postEvent(webhookUrl, webhookSecret, event, JSON.stringify({ event, model, entry })))) {
        await this.ctx.storage.delete(k);
        continue;
      }
      if (!entry || attempts + 1 >= WEBHOOK_MAX_ATTEMPTS) await this.ctx.storage.delete(k);
      else await this.ctx.storage.put(k, attempts + 1);
      await this.ctx.storage.setAlarm(Date.now() + intervalMs);
      return;
    }
    if (pending.size === 20) await this.ctx.storage.setAlarm(Date.now());
  }
}
