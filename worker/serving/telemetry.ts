/**
 * The edge's telemetry hot path: a served request sketched into the isolate's window profile,
 * and windows that are due shipped to each model's DriftAggregator in the background. Called by
 * the inference routes and by the telemetry benchmark, so both measure the same code.
 */
import type { ModelManifest, Outcome, observedFromFeeds } from '../../core/index.ts';
import { MAX_PREDICTIONS, type PredictionRecord } from '../../core/index.ts';
import type { DriftAggregator } from '../aggregator.ts';
import type { Background } from './background.ts';
import type { Runtime } from './runtime.ts';

/**
 * Sketches a served request into the isolate's window profile and, in waitUntil, ships the
 * windows that are due to the model's DriftAggregator. A failed shipment stays in the outbox
 * and goes again with the same sequence (the aggregator deduplicates); nothing here can delay
 * or fail the request.
 */
export function telemetry(
  r: Runtime,
  aggregators: DurableObjectNamespace<DriftAggregator> | undefined,
  background: Background,
  eventTime: number | undefined,
  m: ModelManifest,
  version: string,
  observed: ReturnType<typeof observedFromFeeds>,
  predictions: Record<string, unknown>[],
  latencyMs: number,
  outcome: string,
): void {
  if (!r.profiler) return;
  if (eventTime !== undefined) r.eventClock = eventTime;
  try {
    r.profiler.observe(
      m,
      version,
      observed.map((features, i) => ({ features, outputs: (predictions[i] ?? {}) as Record<string, number> })),
      latencyMs,
      outcome as Outcome,
    );
    r.profiler.tick();
  } catch (err) {
    console.error('telemetry: cannot sketch', err);
    return;
  }
  ship(r, aggregators, background);
}

/**
 * Ships the windows that are due to each model's DriftAggregator, in waitUntil (one flush at a
 * time per isolate). A failed shipment stays in the outbox and goes again with the same sequence.
 */
export function ship(r: Runtime, aggregators: DurableObjectNamespace<DriftAggregator> | undefined, background: Background): void {
  if (!r.profiler || r.flushing || !aggregators) return;
  // Prediction records go with the summaries, but need not wait for a window to close: a label may follow soon.
  if (r.profiler.stats().outbox === 0 && r.predictions.pending.length === 0) return;
  r.flushing = true;
  const agg = aggregators;
  const profiler = r.profiler;
  const work = (async () => {
    try {
      // Rounds of one ingestMany call per model's aggregator for everything due, then the
      // prediction records, until nothing is left (windows that closed and predictions served
      // during a round go in the next) or a call fails.
      for (let round = 0, failed = false; round < 4 && !failed; round++) {
        if (profiler.stats().outbox === 0 && r.predictions.pending.length === 0) break;
        for (const [model, batch] of byModel(profiler.take())) {
          try {
            const results = await agg.get(agg.idFromName(model)).ingestMany(
              model,
              batch.map((s) => s.bytes),
            );
            for (const res of results) if (res.status === 'rejected') console.error(`telemetry: aggregator refused a summary: ${res.reason}`);
            profiler.ack(batch);
          } catch (err) {
            // These may or may not have landed: they stay in flight and go again with the
            // same sequences at the next flush (the aggregator deduplicates).
            console.error('telemetry: flush failed, will retry', err);
            failed = true;
          }
        }
        if (!failed) failed = !(await shipPredictions(r, agg));
      }
    } finally {
      r.flushing = false;
    }
  })();
  background(work);
}

/** Summaries by the model they are for: each model's aggregator takes its own in one ingestMany call. */
export function byModel<T extends { model: string }>(items: Iterable<T>): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const s of items) {
    let list = out.get(s.model);
    if (!list) out.set(s.model, (list = []));
    list.push(s);
  }
  return out;
}

/** Predictions kept in an isolate while the aggregator cannot take them; past this the oldest are dropped (counted). */
export const MAX_PENDING_PREDICTIONS = 50_000;

/** Queues what the join needs of served predictions (core/outcomes.ts), for the next flush. */
export function keepPredictions(r: Runtime, model: string, records: PredictionRecord[]): void {
  const q = r.predictions;
  for (const rec of records) q.pending.push({ model, ...rec });
  const over = q.pending.length - MAX_PENDING_PREDICTIONS;
  if (over > 0) {
    q.pending.splice(0, over);
    q.dropped += over;
  }
}

/** Sends one batch of the pending prediction records (MAX_PREDICTIONS), one recordPredictions call per model; false when a call failed (the batch is kept for the next flush; the aggregator stores an id once). */
async function shipPredictions(r: Runtime, agg: DurableObjectNamespace<DriftAggregator>): Promise<boolean> {
  const batch = r.predictions.pending.splice(0, MAX_PREDICTIONS);
  try {
    for (const [model, recs] of byModel(batch)) {
      await agg.get(agg.idFromName(model)).recordPredictions(
        model,
        recs.map(({ id, version, at, value, items }) => ({ id, version, at, value, ...(items ? { items } : {}) })),
      );
    }
    return true;
  } catch (err) {
    console.error('telemetry: predictions not recorded, will retry', err);
    r.predictions.pending.unshift(...batch);
    return false;
  }
}
