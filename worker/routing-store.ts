/**
 * RoutingStore: one Durable Object per model (by name) holding its canary/shadow routing table
 * in the object's SQLite-backed storage, so an operator can change the table without a
 * redeploy. A thin RPC shell: validation is core's (validateRoutingTable), done by the route
 * before `put`.
 */
import { DurableObject } from 'cloudflare:workers';
import type { RoutingTable } from '../core/index.ts';

export class RoutingStore extends DurableObject {
  async getTable(): Promise<{ table: RoutingTable | null; updatedAt: string | null }> {
    const table = (await this.ctx.storage.get<RoutingTable>('table')) ?? null;
    const updatedAt = (await this.ctx.storage.get<string>('updatedAt')) ?? null;
    return { table, updatedAt };
  }

  async putTable(table: RoutingTable): Promise<{ updatedAt: string }> {
    const updatedAt = new Date().toISOString();
    await this.ctx.storage.put({ table, updatedAt });
    return { updatedAt };
  }

  async clearTable(): Promise<void> {
    await this.ctx.storage.delete(['table', 'updatedAt']);
  }
}
