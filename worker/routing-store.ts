/**
 * RoutingStore: one Durable Object per model (by name) holding its canary/shadow routing table
 * in the object's SQLite-backed storage, so an operator can change the table without a
 * redeploy, and the model's history: every change to what serves or could serve (a table
 * replaced, a version pushed or deleted), with who made it (the operator token's name), when,
 * from what to what, and why. Validation is core's (validateRoutingTable), done by the route
 * before `put`; the table and its history entry are written in one storage transaction.
 */
import { DurableObject } from 'cloudflare:workers';
import type { RoutingTable } from '../core/index.ts';

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
const key = (seq: number) => `h:${String(seq).padStart(12, '0')}`;

export class RoutingStore extends DurableObject {
  async getTable(): Promise<{ table: RoutingTable | null; updatedAt: string | null }> {
    const table = (await this.ctx.storage.get<RoutingTable>('table')) ?? null;
    const updatedAt = (await this.ctx.storage.get<string>('updatedAt')) ?? null;
    return { table, updatedAt };
  }

  /** Replaces the table, and records the change (`who`, `why`) with the table it replaced. */
  async putTable(table: RoutingTable, change: { who: string; why?: string } = { who: 'unknown' }): Promise<{ updatedAt: string; seq: number }> {
    const updatedAt = new Date().toISOString();
    return this.ctx.storage.transaction(async (txn) => {
      const from = (await txn.get<RoutingTable>('table')) ?? null;
      await txn.put({ table, updatedAt });
      const seq = await this.#append(txn, { at: updatedAt, who: change.who, action: 'route', from, to: table, ...(change.why ? { why: change.why } : {}) });
      return { updatedAt, seq };
    });
  }

  async clearTable(): Promise<void> {
    await this.ctx.storage.delete(['table', 'updatedAt']);
  }

  /** Records a registry change of this model (a version pushed or deleted). */
  async record(change: { who: string; action: 'push' | 'delete'; version: string; sha256?: string; why?: string }): Promise<number> {
    return this.ctx.storage.transaction((txn) => this.#append(txn, { at: new Date().toISOString(), ...change }));
  }

  /** The newest `limit` entries before `before` (a seq; default: from the newest), newest first. */
  async history(limit = 100, before?: number): Promise<HistoryEntry[]> {
    const end = before === undefined ? undefined : key(Math.max(0, before));
    const got = await this.ctx.storage.list<HistoryEntry>({ prefix: 'h:', reverse: true, limit, ...(end ? { end } : {}) });
    return [...got.values()];
  }

  async #append(txn: DurableObjectTransaction, entry: Omit<HistoryEntry, 'seq'>): Promise<number> {
    const seq = ((await txn.get<number>('seq')) ?? 0) + 1;
    await txn.put({ seq, [key(seq)]: { seq, ...entry } });
    if (seq > MAX_HISTORY) await txn.delete(key(seq - MAX_HISTORY));
    return seq;
  }
}
