/**
 * What the two inference routes (OIP infer and predict) share around serving: the version that
 * serves this caller, serve() timed for Server-Timing, and the record of what was served
 * (counts, telemetry, shadows).
 */
import {
  joinValue,
  newPredictionId,
  predictionTime,
  refusedField,
  ValidationError,
  type ModelManifest,
  type observedFromFeeds,
  type PredictionRecord,
  type RoutingTable,
  type Tensor,
} from '../../core/index.ts';
import type { EngineRequest, ModelEngine } from '../engine/model-engine.ts';
import { backgroundOf } from '../serving/background.ts';
import { countServed } from '../serving/runtime.ts';
import { serve, type Served } from '../serving/serve.ts';
import { shadow } from '../serving/shadow.ts';
import { keepPredictions, ship, telemetry } from '../serving/telemetry.ts';
import { runtimeOf, type AppContext } from './context.ts';
import { clockOf } from './request.ts';

/** The engine that serves this caller (see Edge.pick): the path's version if it pins one, else by the routing table, sticky by x-user-key. */
export function pick(c: AppContext, e: ModelEngine, requestKey: string, deadline: number) {
  return c.var.edge.pick(c.env, backgroundOf(c), e, {
    pinned: c.req.param('version') !== undefined,
    requestKey,
    userKey: c.req.header('x-user-key'),
    deadline,
  });
}

/** serve(), timed for Server-Timing: the engine's share (queue and run) or the fallback's. */
export async function timedServe(c: AppContext, e: ModelEngine, req: EngineRequest, dl: number): Promise<Served> {
  const k = clockOf(c);
  k.timed = true;
  const t = performance.now();
  const r = runtimeOf(c);
  let servedBy = r.selfName;
  try {
    const served = await serve(r, backgroundOf(c), e, req, dl);
    servedBy = served.servedBy;
    return served;
  } finally {
    const ms = performance.now() - t;
    if (servedBy === 'fallback') k.fallbackMs = (k.fallbackMs ?? 0) + ms;
    else k.engineMs = (k.engineMs ?? 0) + ms;
  }
}

/** Runs the shadow versions of the routing table on a served request, after the answer (serving/shadow.ts). */
export function shadowAfter(
  c: AppContext,
  e: ModelEngine,
  route: { table: RoutingTable | undefined; key: string },
  version: string,
  req: EngineRequest,
  outputs: Record<string, Tensor>,
): void {
  shadow(runtimeOf(c), backgroundOf(c), e, route.table, route.key, version, req, outputs);
}

/**
 * 16 bytes from the CSPRNG, drawn 4 KiB at a time: one getRandomValues call costs microseconds
 * (about 5 µs on Node), a slice of a pool costs nothing; each slice is used once.
 */
let pool = new Uint8Array(0);
let used = 0;
function randomBytes16(): Uint8Array {
  if (used + 16 > pool.length) {
    pool = crypto.getRandomValues(new Uint8Array(4096));
    used = 0;
  }
  used += 16;
  return pool.subarray(used - 16, used);
}

/**
 * The prediction ids of a request's rows (core/outcomes.ts): one random id at the telemetry clock
 * (the request's x-event-time on a replay), and `<id>:<row>` for each row of a batch.
 */
export function predictionIds(c: AppContext, rows: number): { id: string; rows: string[] } {
  const at = clockOf(c).eventTime ?? Date.now();
  const id = newPredictionId(at, randomBytes16());
  return { id, rows: rows === 1 ? [id] : Array.from({ length: rows }, (_, i) => `${id}:${i}`) };
}

/**
 * Records an answer: counted per version, sketched into the isolate's drift telemetry, and, for a
 * task whose outcomes are joined, what the join of late labels needs of each row (`ids`).
 */
export function recordServed(
  c: AppContext,
  m: ModelManifest,
  version: string,
  observed: ReturnType<typeof observedFromFeeds>,
  predictions: Record<string, unknown>[],
  servedBy: string,
  ids?: string[],
): void {
  const r = runtimeOf(c);
  const k = clockOf(c);
  countServed(r, m.name, version);
  if (ids && r.profiler && c.env?.AGGREGATOR) {
    const records: PredictionRecord[] = [];
    predictions.forEach((p, i) => {
      const kept = joinValue(m, p as Record<string, number | number[]>);
      const at = predictionTime(ids[i]);
      if (kept === undefined || at === undefined) return;
      const rec: PredictionRecord = { id: ids[i], version, at, value: kept.value };
      if (kept.items) rec.items = kept.items;
      records.push(rec);
    });
    if (records.length) keepPredictions(r, m.name, records);
  }
  telemetry(r, c.env?.AGGREGATOR, backgroundOf(c), k.eventTime, m, version, observed, predictions, performance.now() - k.received, servedBy);
}

/**
 * Counts a request refused by validation in the drift telemetry (core/refusals.ts), under the
 * version that serves most callers (the routing table's stable one): how a field that starts
 * arriving missing, as a string or out of range shows up. Never fails the request's answer.
 */
export function recordRefused(c: AppContext, m: ModelManifest, err: unknown): void {
  if (!(err instanceof ValidationError)) return;
  const r = runtimeOf(c);
  if (!r.profiler) return;
  const k = clockOf(c);
  if (k.eventTime !== undefined) r.eventClock = k.eventTime;
  try {
    r.profiler.refused(m, r.routing.get(m.name)?.table.stable ?? m.version, refusedField(m, err.field));
    r.profiler.tick();
  } catch (e) {
    console.error('telemetry: cannot count a refusal', e);
    return;
  }
  ship(r, c.env?.AGGREGATOR, backgroundOf(c));
}
