/**
 * RoutingStore: one Durable Object per model (by name) holding, in its storage:
 *
 * - the model's canary/shadow routing table, which an operator changes without a redeploy
 *   (validated by the route with core's validateRoutingTable before `putTable`);
 * - its rollouts: a candidate version walked through a plan (core/rollout.ts) by this object's
 *   alarm. Each tick reads the stage's evidence from the model's DriftAggregator (its data clock,
 *   the per-version profiles of the stage's windows, open drift alerts), judges it with
 *   analyzeStage, and passes the stage (next step, or promotion), rolls back at once on a
 *   failing check, or waits. A person's pause, resume, abort and promote win over the plan: each
 *   decision is written only if the rollout is still in the state it was judged in, so a tick
 *   that raced a person's call is dropped, and no stage is taken twice (also across restarts:
 *   the state is storage's, and the alarm is re-armed by the first table read after a restart);
 * - its history: every change to what serves or could serve (a table replaced by a person, a
 *   version pushed or deleted, a rollout's start, steps, promotion, rollback, pause, resume,
 *   abort), with who (the operator token's name, or "rollout" for the plan), when, from what to
 *   what, and why (for the plan, the analysis with every check's evidence).
 *
 * A change, its history entry and the webhook it owes are written in one storage transaction:
 * each entry is POSTed to ALERT_WEBHOOK_URL as `{ event: 'history.<action>', model, entry }`
 * (signed as alerts are, see webhook.ts) by the alarm, in order, retried on later alarms up to
 * ten attempts.
 */
import { DurableObject } from 'cloudflare:workers';
import {
  analyzeStage,
  decodeSummary,
  rollbackTable,
  stageTable,
  type HistoryAction,
  type HistoryEntry,
  isRefusal,
  type RolloutPlan,
  type RolloutRefusal,
  type RolloutStatus,
  type RoutingTable,
  type StageAnalysis,
} from '../core/index.ts';
import { aggregatorConfig, MINUTE_MS } from './config.ts';
import type { Env } from './env.ts';
import { postEvent } from './webhook.ts';

export type { HistoryAction, HistoryEntry, RolloutStatus } from '../core/index.ts';

/** A rollout as this object keeps it (the route shows it as core/contracts.ts's RolloutView). */
export interface Rollout {
  id: number;
  model: string;
  candidate: string;
  /** The table when it began: its stable is the version a rollback returns to. */
  base: RoutingTable;
  plan: RolloutPlan;
  /** The stage running (index into plan.stages); plan.stages.length once promoted. */
  stage: number;
  status: RolloutStatus;
  /** Data-clock time (ms) the running stage's evidence starts at; null until its first tick. */
  stageFrom: number | null;
  startedAt: string;
  startedBy: string;
  updatedAt: string;
  /** The latest analysis of the running stage (or the one that ended the rollout). */
  analysis?: StageAnalysis;
  /** Why it ended, or why it is paused. */
  reason?: string;
  /** The DriftAggregator holding the model's evidence, by id (the route's namespace addressed it by the model's name). */
  aggregator?: string;
  /** Bumped by every change: a decision judged on an older revision is dropped. */
  rev: number;
  /** After promotion: whether the aggregator has made the candidate's baseline the reference. */
  rebaselined?: boolean;
}

export { isRefusal, type RolloutRefusal } from '../core/index.ts';

/** Entries kept per model; older ones are dropped as new ones come (a model changes far less often). */
export const MAX_HISTORY = 10_000;
/** Rollouts kept per model (the active one is never dropped). */
const MAX_ROLLOUTS = 100;
const WEBHOOK_MAX_ATTEMPTS = 10;
/** Owed posts: `w:<seq>` -> attempts so far. */
const owed = (seq: number) => `w:${String(seq).padStart(12, '0')}`;
const key = (seq: number) => `h:${String(seq).padStart(12, '0')}`;
const rkey = (id: number) => `r:${String(id).padStart(8, '0')}`;
const ACTIVE: RolloutStatus[] = ['running', 'paused'];

export class RoutingStore extends DurableObject<Env> {
  #armedChecked = false;

  async getTable(): Promise<{ table: RoutingTable | null; updatedAt: string | null }> {
    const table = (await this.ctx.storage.get<RoutingTable>('table')) ?? null;
    const updatedAt = (await this.ctx.storage.get<string>('updatedAt')) ?? null;
    // Every isolate reads the table every few seconds: after a restart the first read re-arms a running rollout's alarm.
    if (!this.#armedChecked) {
      this.#armedChecked = true;
      if ((await this.#active())?.status === 'running') await this.#arm(0);
    }
    return { table, updatedAt };
  }

  /**
   * Replaces the table, and records the change (`who`, `why`) with the table it replaced.
   * `model`: the name this object is addressed by, for the webhook. A person's edit while a
   * rollout runs pauses it (the person wins; resume puts the plan's table back).
   */
  async putTable(table: RoutingTable, change: { who: string; why?: string; model?: string } = { who: 'unknown' }): Promise<{ updatedAt: string; seq: number }> {
    const updatedAt = new Date().toISOString();
    const seq = await this.ctx.storage.transaction(async (txn) => {
      const from = (await txn.get<RoutingTable>('table')) ?? null;
      await txn.put({ table, updatedAt });
      const active = await this.#activeIn(txn);
      if (active?.status === 'running')
        await this.#saveRollout(txn, { ...active, status: 'paused', reason: `the routing table was replaced by ${change.who}`, updatedAt });
      return this.#append(txn, change.model, { at: updatedAt, who: change.who, action: 'route', from, to: table, ...(change.why ? { why: change.why } : {}) });
    });
    await this.#arm(0);
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
    await this.#arm(0);
    return seq;
  }

  /** The newest `limit` entries before `before` (a seq; default: from the newest), newest first. */
  async history(limit = 100, before?: number): Promise<HistoryEntry[]> {
    const end = before === undefined ? undefined : key(Math.max(0, before));
    const got = await this.ctx.storage.list<HistoryEntry>({ prefix: 'h:', reverse: true, limit, ...(end ? { end } : {}) });
    return [...got.values()];
  }

  /**
   * Starts a rollout of `candidate` with `plan` from `current` (the table in force, as the route
   * read it: the stored one or the model's default). Refused while another one is running or
   * paused, and for the stable version itself.
   */
  async startRollout({
    model,
    candidate,
    plan,
    current,
    who,
    why,
    aggregator,
  }: {
    model: string;
    aggregator?: string;
    candidate: string;
    plan: RolloutPlan;
    current: RoutingTable;
    who: string;
    why?: string;
  }): Promise<Rollout | RolloutRefusal> {
    const result = await this.ctx.storage.transaction(async (txn): Promise<Rollout | RolloutRefusal> => {
      const active = await this.#activeIn(txn);
      if (active)
        return {
          error: `rollout ${active.id} of version ${active.candidate} is ${active.status}; abort or promote it first`,
          code: 'rollout_running',
          status: 409,
        };
      const base = (await txn.get<RoutingTable>('table')) ?? current;
      if (base.stable === candidate) return { error: `version ${candidate} is already stable`, code: 'same_version', status: 422 };
      const id = ((await txn.get<number>('rollout_seq')) ?? 0) + 1;
      const at = new Date().toISOString();
      const rollout: Rollout = {
        id,
        model,
        ...(aggregator ? { aggregator } : {}),
        candidate,
        base,
        plan,
        stage: 0,
        status: 'running',
        stageFrom: null,
        startedAt: at,
        startedBy: who,
        updatedAt: at,
        rev: 0,
      };
      await txn.put({ rollout_seq: id, rollout_active: id });
      if (id > MAX_ROLLOUTS) await txn.delete(rkey(id - MAX_ROLLOUTS));
      await this.#change(
        txn,
        rollout,
        'rollout',
        who,
        why ?? `rollout of ${candidate} started (${describeStage(plan, 0)})`,
        stageTable(base, candidate, plan.stages[0]),
      );
      return rollout;
    });
    if (!isRefusal(result)) await this.#arm(0);
    return result;
  }

  /** The model's own rollout plan (PUT /v1/models/{name}/rollout-plan): what a rollout started without one uses. */
  async plan(): Promise<{ plan: RolloutPlan | null; updatedAt: string | null }> {
    return { plan: (await this.ctx.storage.get<RolloutPlan>('plan')) ?? null, updatedAt: (await this.ctx.storage.get<string>('planUpdatedAt')) ?? null };
  }

  async setPlan(plan: RolloutPlan): Promise<{ updatedAt: string }> {
    const updatedAt = new Date().toISOString();
    await this.ctx.storage.put({ plan, planUpdatedAt: updatedAt });
    return { updatedAt };
  }

  /** The rollout `id`, or the latest one; undefined when there is none. */
  async rollout(id?: number): Promise<Rollout | undefined> {
    const want = id ?? (await this.ctx.storage.get<number>('rollout_seq'));
    return want === undefined ? undefined : this.ctx.storage.get<Rollout>(rkey(want));
  }

  /** The newest `limit` rollouts, newest first. */
  async rollouts(limit = 20): Promise<Rollout[]> {
    return [...(await this.ctx.storage.list<Rollout>({ prefix: 'r:', reverse: true, limit })).values()];
  }

  /**
   * A person takes over rollout `id`: pause (the table stays, the plan stops judging), resume
   * (the stage's table again; its evidence starts afresh), abort (back to the stable it began
   * from) or promote (all the traffic to the candidate now).
   */
  async control(id: number, action: 'pause' | 'resume' | 'abort' | 'promote', who: string, why?: string): Promise<Rollout | RolloutRefusal> {
    const result = await this.ctx.storage.transaction(async (txn): Promise<Rollout | RolloutRefusal> => {
      const r = await txn.get<Rollout>(rkey(id));
      if (!r) return { error: `no rollout ${id}`, code: 'no_rollout', status: 404 };
      if (!ACTIVE.includes(r.status)) return { error: `rollout ${id} has ended (${r.status})`, code: 'rollout_ended', status: 409 };
      if (action === 'pause' && r.status === 'paused') return r;
      if (action === 'resume' && r.status === 'running') return r;
      const by = `${action} by ${who}${why ? `: ${why}` : ''}`;
      if (action === 'pause') return this.#change(txn, { ...r, status: 'paused', reason: by }, 'pause', who, why);
      if (action === 'resume')
        return this.#change(
          txn,
          { ...r, status: 'running', stageFrom: null, reason: undefined },
          'resume',
          who,
          why,
          stageTable(r.base, r.candidate, r.plan.stages[r.stage]),
        );
      if (action === 'abort') return this.#change(txn, { ...r, status: 'aborted', reason: by }, 'abort', who, why, rollbackTable(r.base, r.candidate));
      return this.#change(
        txn,
        { ...r, status: 'promoted', stage: r.plan.stages.length, reason: by },
        'promote',
        who,
        why,
        stageTable(r.base, r.candidate, undefined),
      );
    });
    if (!isRefusal(result)) await this.#arm(0);
    return result;
  }

  /**
   * Rolls back now: the running or paused rollout is rolled back to the stable it began from;
   * without one, the table goes back to the last version that had all the traffic before the
   * current stable (from the history).
   */
  async rollback(model: string, who: string, why?: string, current?: RoutingTable): Promise<{ table: RoutingTable; rollout?: number } | RolloutRefusal> {
    const result = await this.ctx.storage.transaction(async (txn): Promise<{ table: RoutingTable; rollout?: number } | RolloutRefusal> => {
      const active = await this.#activeIn(txn);
      if (active) {
        const table = rollbackTable(active.base, active.candidate);
        await this.#change(txn, { ...active, status: 'rolled_back', reason: `rolled back by ${who}${why ? `: ${why}` : ''}` }, 'rollback', who, why, table);
        return { table, rollout: active.id };
      }
      const now = (await txn.get<RoutingTable>('table')) ?? current;
      if (!now) return { error: 'no routing table to roll back', code: 'no_previous_stable', status: 409 };
      const previous = await this.#previousStable(txn, now.stable);
      if (!previous) return { error: `no version had all the traffic before ${now.stable}`, code: 'no_previous_stable', status: 409 };
      const table: RoutingTable = { stable: previous, ...(now.shadows?.length ? { shadows: now.shadows.filter((s) => s.version !== previous) } : {}) };
      const at = new Date().toISOString();
      await txn.put({ table, updatedAt: at });
      await this.#append(txn, model, {
        at,
        who,
        action: 'rollback',
        from: now,
        to: table,
        why: why ?? `back to ${previous}, the last version that had all the traffic`,
      });
      return { table };
    });
    if (!isRefusal(result)) await this.#arm(0);
    return result;
  }

  /** The stable before `stable` took over, from the newest history entries; a rollback is not a take-over (rolling back twice does not undo the first). */
  async #previousStable(txn: DurableObjectTransaction, stable: string): Promise<string | undefined> {
    let before: string | undefined;
    for (let round = 0; round < 10; round++) {
      const page = await txn.list<HistoryEntry>({ prefix: 'h:', reverse: true, limit: 1000, ...(before ? { end: before } : {}) });
      for (const [k, e] of page) {
        before = k;
        if (e.action !== 'rollback' && e.to?.stable === stable && e.from && e.from.stable !== stable) return e.from.stable;
      }
      if (page.size < 1000) return undefined;
    }
    return undefined;
  }

  async #activeIn(txn: DurableObjectTransaction): Promise<Rollout | undefined> {
    const id = await txn.get<number>('rollout_active');
    const r = id === undefined ? undefined : await txn.get<Rollout>(rkey(id));
    return r && ACTIVE.includes(r.status) ? r : undefined;
  }

  async #active(): Promise<Rollout | undefined> {
    const id = await this.ctx.storage.get<number>('rollout_active');
    const r = id === undefined ? undefined : await this.ctx.storage.get<Rollout>(rkey(id));
    return r && ACTIVE.includes(r.status) ? r : undefined;
  }

  async #saveRollout(txn: DurableObjectTransaction, r: Rollout): Promise<Rollout> {
    const next = { ...r, rev: r.rev + 1 };
    await txn.put(rkey(r.id), next);
    return next;
  }

  /** Saves the rollout's new state, the table it serves with (when it changes), and their history entry. */
  async #change(
    txn: DurableObjectTransaction,
    r: Rollout,
    action: HistoryAction,
    who: string,
    why: string | undefined,
    table?: RoutingTable,
    evidence?: StageAnalysis,
  ): Promise<Rollout> {
    const at = new Date().toISOString();
    const saved = await this.#saveRollout(txn, { ...r, updatedAt: at, ...(evidence ? { analysis: evidence } : {}) });
    const from = (await txn.get<RoutingTable>('table')) ?? r.base;
    if (table) await txn.put({ table, updatedAt: at });
    await this.#append(txn, r.model, {
      at,
      who,
      action,
      from,
      to: table ?? from,
      version: r.candidate,
      rollout: r.id,
      stage: r.stage,
      ...(why ? { why } : {}),
      ...(evidence ? { evidence } : {}),
    });
    return saved;
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

  /** Arms the alarm `inMs` from now unless it is armed sooner; only when there is work (owed posts or a running rollout). */
  async #arm(inMs: number): Promise<void> {
    const at = Date.now() + inMs;
    const current = await this.ctx.storage.getAlarm();
    if (current !== null && current <= at) return;
    const work =
      (aggregatorConfig(this.env).webhookUrl && (await this.ctx.storage.list({ prefix: 'w:', limit: 1 })).size > 0) ||
      (await this.#active())?.status === 'running';
    if (work) await this.ctx.storage.setAlarm(at);
  }

  /** Runs the rollout (one tick), then posts the owed history events; again after ALERT_EVAL_INTERVAL_MS while either has work. */
  override async alarm(): Promise<void> {
    const { intervalMs } = aggregatorConfig(this.env);
    try {
      await this.#tick();
    } catch (err) {
      console.error('rollout: tick failed, retried on the next alarm', err);
    }
    const more = await this.#post();
    if ((await this.#active())?.status === 'running' || more) await this.ctx.storage.setAlarm(Date.now() + intervalMs);
  }

  /**
   * One judgement of the running rollout's stage: its evidence from the aggregator, then pass
   * (next stage, or promote after the last), fail (roll back) or wait. The decision is written
   * only if the rollout has not changed meanwhile (rev).
   */
  async #tick(): Promise<void> {
    const r = await this.#active();
    if (!r) {
      await this.#rebaseline();
      return;
    }
    if (r.status !== 'running') return;
    const agg = this.#aggregator(r);
    if (!agg) return;
    const stable = r.base.stable;
    const ev = await agg.evidence(r.stageFrom, [stable, r.candidate]);
    // Evidence starts at the first whole minute after the data clock (buckets are minutes; the
    // clock is the end of the newest window received, and the edge's open windows lag behind it):
    // rows served under the table before are not counted.
    const startOf = (clock: number | null) => (Math.floor((clock ?? Date.now()) / MINUTE_MS) + 1) * MINUTE_MS;
    if (r.stageFrom === null) {
      await this.ctx.storage.transaction(async (txn) => {
        const now = await txn.get<Rollout>(rkey(r.id));
        if (now?.rev === r.rev) await this.#saveRollout(txn, { ...now, stageFrom: startOf(ev.clock) });
      });
      return;
    }
    const stage = r.plan.stages[r.stage];
    const profile = (v: string) => {
      const b = ev.profiles[v];
      return b ? decodeSummary(new Uint8Array(b)) : undefined;
    };
    const analysis = analyzeStage(stage, r.plan.thresholds, {
      stable: profile(stable),
      candidate: profile(r.candidate),
      elapsedMs: Math.max(0, (ev.clock ?? 0) - r.stageFrom),
      openAlerts: { stable: ev.alerts[stable] ?? [], candidate: ev.alerts[r.candidate] ?? [] },
    });
    await this.ctx.storage.transaction(async (txn) => {
      const now = await txn.get<Rollout>(rkey(r.id));
      if (now?.rev !== r.rev || now.status !== 'running') return; // a person acted meanwhile: their call wins
      if (analysis.verdict === 'wait') {
        await this.#saveRollout(txn, { ...now, analysis, updatedAt: new Date().toISOString() });
        return;
      }
      if (analysis.verdict === 'fail') {
        const failed = analysis.checks.filter((c) => c.status === 'fail');
        const why = `${describeStage(r.plan, r.stage)} failed: ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}`;
        await this.#change(txn, { ...now, status: 'rolled_back', reason: why }, 'rollback', 'rollout', why, rollbackTable(r.base, r.candidate), analysis);
        return;
      }
      const next = r.stage + 1;
      const passed = `${describeStage(r.plan, r.stage)} passed (${analysis.rows.candidate} rows of the candidate, ${analysis.rows.stable} of stable)`;
      if (next >= r.plan.stages.length)
        await this.#change(
          txn,
          { ...now, status: 'promoted', stage: next, reason: passed },
          'promote',
          'rollout',
          passed,
          stageTable(r.base, r.candidate, undefined),
          analysis,
        );
      else
        await this.#change(
          txn,
          { ...now, stage: next, stageFrom: startOf(ev.clock) },
          'step',
          'rollout',
          `${passed}; now ${describeStage(r.plan, next)}`,
          stageTable(r.base, r.candidate, r.plan.stages[next]),
          analysis,
        );
    });
    await this.#rebaseline();
  }

  #aggregator(r: Rollout) {
    const ns = this.env.AGGREGATOR;
    if (!ns) return undefined;
    return ns.get(r.aggregator ? ns.idFromString(r.aggregator) : ns.idFromName(r.model));
  }

  /** After a promotion (by the plan or a person): the candidate's baseline becomes the aggregator's reference, once. */
  async #rebaseline(): Promise<void> {
    const r = await this.rollout();
    const agg = r && this.#aggregator(r);
    if (!r || !agg || r.status !== 'promoted' || r.rebaselined) return;
    await agg.promote(r.candidate);
    await this.ctx.storage.transaction(async (txn) => {
      const now = await txn.get<Rollout>(rkey(r.id));
      if (now) await txn.put(rkey(r.id), { ...now, rebaselined: true });
    });
  }

  /** Posts the owed history events in order; a failure stops the round (order kept). True when posts remain. */
  async #post(): Promise<boolean> {
    const { webhookUrl, webhookSecret } = aggregatorConfig(this.env);
    if (!webhookUrl) return false;
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
      return true;
    }
    return pending.size === 20;
  }
}

/** "shadow at 10%" or "step 2 of 4 at 5%". */
function describeStage(plan: RolloutPlan, i: number): string {
  const s = plan.stages[i];
  if (!s) return 'promotion';
  const pct = `${+(s.share * 100).toFixed(2)}%`;
  if (s.kind === 'shadow') return `shadow at ${pct}`;
  const steps = plan.stages.filter((x) => x.kind === 'canary');
  return `step ${steps.indexOf(s) + 1} of ${steps.length} at ${pct}`;
}
