/**
 * Late labels: POST /v1/models/{name}/feedback joins labels to the predictions they are about
 * (by the prediction id every answer carries), in the model's DriftAggregator; GET
 * /v1/models/{name}/performance shows the realized performance per version and window, with the
 * share of predictions labelled so far (core/outcomes.ts).
 */
import {
  compareSketches,
  decodeSummary,
  emptyOutcomes,
  estimateAuc,
  MAX_FEEDBACK,
  mergeOutcomes,
  outcomeTask,
  realized,
  ValidationError,
  type FeedbackResult,
  type EstimatedAuc,
  type OutcomeState,
  type PerformanceAnswer,
  type Sketch,
} from '../../core/index.ts';
import { feedbackAuth } from '../auth.ts';
import { model, needsAggregator, operatorAuth } from '../http/middleware.ts';
import { answer, bearer, document, documentedApp, input, ModelParams, operatorErrors, WindowedQuery, z } from '../http/openapi.ts';
import { body, limit, range, windowStep } from '../http/request.ts';

export const outcomes = documentedApp();

/** Windows the estimate is computed for, at most (each one is an aggregator read). */
const MAX_ESTIMATED_WINDOWS = 100;

/** The performance route's query: a range in windows, one version or all. */
const PerformanceQuery = WindowedQuery;

document(outcomes, {
  method: 'post',
  path: '/v1/models/{name}/feedback',
  summary: 'Labels for past predictions, by prediction id, joined in the window of the prediction; each item answered on its own',
  security: bearer,
  request: {
    params: ModelParams,
    body: {
      content: {
        'application/json': {
          schema: z.strictObject({
            feedback: z.array(z.object({ prediction_id: z.string(), label: z.union([z.number(), z.boolean()]) })).max(MAX_FEEDBACK),
          }),
        },
      },
      required: true,
    },
  },
  responses: { 200: answer('per item: joined, duplicate, unknown, expired or invalid (with the reason), and the counts'), ...operatorErrors },
});
document(outcomes, {
  method: 'get',
  path: '/v1/models/{name}/performance',
  summary: 'Realized performance per version and window from the labels joined so far, with the share of predictions labelled',
  security: bearer,
  request: { params: ModelParams, query: PerformanceQuery },
  responses: { 200: answer('per window and version: AUC, log loss, calibration (binary) or MAE, RMSE, bias (regression)'), ...operatorErrors },
});

const taskOf = (m: Parameters<typeof outcomeTask>[0] & { name: string; task: string }) => {
  const task = outcomeTask(m);
  if (!task)
    throw new ValidationError(
      `model ${m.name} is a ${m.task} model: labels are joined for binary classifiers and regressors so far`,
      'model',
      422,
      'task_not_scored',
    );
  return task;
};

outcomes.post('/v1/models/:name/feedback', feedbackAuth(), model, limit, needsAggregator, async (c) => {
  const m = c.var.engine.manifest;
  const task = taskOf(m);
  const raw = await body(c);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.hasOwn(raw, 'feedback'))
    throw new ValidationError('the body must be {"feedback": [{"prediction_id", "label"}, ...]}', 'feedback');
  for (const k of Object.keys(raw)) if (k !== 'feedback') throw new ValidationError(`unknown field "${k.slice(0, 64)}" (known: feedback)`, k.slice(0, 64));
  const items = (raw as { feedback: unknown }).feedback;
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_FEEDBACK)
    throw new ValidationError(
      `feedback must be an array of 1 to ${MAX_FEEDBACK} items`,
      'feedback',
      Array.isArray(items) && items.length > MAX_FEEDBACK ? 413 : 400,
    );
  // Each item is checked on its own: one bad item is answered `invalid`, the others still join.
  const checked = items.map((it): { prediction_id: unknown; label: unknown } | FeedbackResult => {
    if (typeof it !== 'object' || it === null || Array.isArray(it)) return { status: 'invalid', reason: 'an item must be {"prediction_id", "label"}' };
    const extra = Object.keys(it).find((k) => k !== 'prediction_id' && k !== 'label');
    if (extra !== undefined) return { status: 'invalid', reason: `unknown field "${extra.slice(0, 64)}"` };
    const o = it as { prediction_id?: unknown; label?: unknown };
    return { prediction_id: o.prediction_id, label: o.label };
  });
  const toJoin = checked.filter((x): x is { prediction_id: unknown; label: unknown } => !Object.hasOwn(x, 'status'));
  const joined = toJoin.length ? await c.var.aggregator.feedback(task, toJoin) : [];
  let j = 0;
  const results = checked.map((x, i) => {
    const r = Object.hasOwn(x, 'status') ? (x as FeedbackResult) : joined[j++];
    const id = (items[i] as { prediction_id?: unknown })?.prediction_id;
    return { prediction_id: typeof id === 'string' ? id.slice(0, 64) : null, ...r };
  });
  const counts = { joined: 0, duplicate: 0, unknown: 0, expired: 0, invalid: 0 };
  for (const r of results) counts[r.status]++;
  return c.json({ model: m.name, results, ...counts });
});

outcomes.get('/v1/models/:name/performance', operatorAuth(), model, needsAggregator, async (c) => {
  const m = c.var.engine.manifest;
  const task = taskOf(m);
  const q = input(PerformanceQuery, c.req.query(), 'query');
  const { from, to } = range(q);
  const step = windowStep(q.step, from, to);
  const rows = await c.var.aggregator.outcomes(from, to);
  const windows: PerformanceAnswer['windows'] = [];
  const total = new Map<string, OutcomeState>();
  const byWindow = new Map<number, Map<string, OutcomeState>>();
  for (const r of rows) {
    if (q.version !== undefined && r.version !== q.version) continue;
    const w = from + Math.floor((r.minute - from) / step) * step;
    const st = JSON.parse(r.state) as OutcomeState;
    if (!byWindow.has(w)) byWindow.set(w, new Map());
    const per = byWindow.get(w)!;
    per.set(r.version, mergeOutcomes(per.get(r.version) ?? emptyOutcomes(), st));
    total.set(r.version, mergeOutcomes(total.get(r.version) ?? emptyOutcomes(), JSON.parse(r.state) as OutcomeState));
  }
  // Binary classifiers: the AUC each version's score distribution implies, before (and beside)
  // the labels, for at most MAX_ESTIMATED_WINDOWS windows (one aggregator read each).
  const score = task === 'binary-classification' ? m.outputs.find((o) => o.dtype === 'float32')?.name : undefined;
  const estimate = score !== undefined && (to - from) / step <= MAX_ESTIMATED_WINDOWS;
  let reference: Sketch | undefined;
  if (estimate) reference = decodeSummary(new Uint8Array((await c.var.aggregator.baseline(m.name)).bytes)).outputs.get(score);
  for (let t = from; t < to; t += step) {
    const per = byWindow.get(t);
    const end = Math.min(to, t + step);
    let estimated: Record<string, EstimatedAuc> | undefined;
    if (estimate) {
      estimated = {};
      for (const [v, bytes] of Object.entries(await c.var.aggregator.versions(t, end))) {
        if (q.version !== undefined && v !== q.version) continue;
        const sketch = decodeSummary(new Uint8Array(bytes)).outputs.get(score);
        if (sketch?.kind !== 'tdigest' || sketch.count === 0) continue;
        const outside = reference?.kind === 'tdigest' ? (compareSketches(reference, sketch, { seasonal: true }).out_of_range?.statistic ?? 0) : 0;
        estimated[v] = estimateAuc((x) => sketch.quantile(x), sketch.count, { outsideShare: outside });
      }
    }
    windows.push({
      from: new Date(t).toISOString(),
      to: new Date(end).toISOString(),
      versions: Object.fromEntries([...(per ?? [])].map(([v, st]) => [v, realized(st, task)])),
      ...(estimated ? { estimated } : {}),
    });
  }
  return c.json({
    model: m.name,
    task,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    total: Object.fromEntries([...total].map(([v, st]) => [v, realized(st, task)])),
    windows,
    ...(estimate
      ? {
          estimate_assumptions:
            'estimated AUC reads each score as the probability that the row is positive (calibrated scores) and assumes no concept drift (P(label | inputs) as in training); it is marked invalid on fewer than 100 rows or when over 5% of the scores are outside the range the reference saw. Realized figures need none of this.',
        }
      : {}),
  } satisfies PerformanceAnswer);
});
