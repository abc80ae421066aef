/**
 * Late labels: POST /v1/models/{name}/feedback joins labels to the predictions they are about
 * (by the prediction id every answer carries), in the model's DriftAggregator; GET
 * /v1/models/{name}/performance shows the realized performance per version and window, with the
 * share of predictions labelled so far (core/outcomes.ts).
 */
import {
  calibrator,
  compareSketches,
  decodeSummary,
  emptyOutcomes,
  estimateAuc,
  MAX_FEEDBACK,
  MIN_ESTIMATE_ROWS,
  mergeOutcomes,
  outcomeTask,
  realized,
  ValidationError,
  RANKING_EVENTS,
  type FeedbackAnswer,
  type FeedbackItem,
  type FeedbackResult,
  type EstimatedAuc,
  type OutcomeState,
  type PerformanceAnswer,
  type Sketch,
} from '../../core/index.ts';
import { feedbackAuth } from '../auth.ts';
import { model, needsAggregator, operatorAuth } from '../http/middleware.ts';
import { browserFeedbackLimit, telemetryTokenHolder } from '../http/telemetry-token.ts';
import { answer, BaselineBody, bearer, document, documentedApp, input, ModelParams, operatorErrors, WindowedQuery, z } from '../http/openapi.ts';
import { body, limit, range, time, windowStep } from '../http/request.ts';

export const outcomes = documentedApp();

/** Windows the estimate is computed for, at most (each one is an aggregator read). */
const MAX_ESTIMATED_WINDOWS = 100;

/** The performance route's query: a range in windows, one version or all. */
const PerformanceQuery = WindowedQuery;

document(outcomes, {
  method: 'post',
  path: '/v1/models/{name}/feedback',
  summary:
    'Labels (or, for a ranking, click and convert events) for past predictions, by prediction id, joined in the window of the prediction; each item answered on its own',
  security: bearer,
  request: {
    params: ModelParams,
    body: {
      content: {
        'application/json': {
          schema: z.strictObject({
            feedback: z
              .array(
                z.union([
                  z
                    .strictObject({ prediction_id: z.string(), label: z.union([z.number(), z.boolean()]) })
                    .describe('classification (0/1, true/false, or a class index) and regression'),
                  z
                    .strictObject({ prediction_id: z.string(), event: z.enum(RANKING_EVENTS), item: z.union([z.string(), z.number().int()]) })
                    .describe('ranking: a click on, or a conversion of, an item'),
                ]),
              )
              .max(MAX_FEEDBACK),
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
  responses: {
    200: answer(
      'per window and version: AUC, log loss, calibration (binary); accuracy, macro F1 (multiclass); MAE, RMSE, bias (regression); CTR@k, hit rate, conversion rate (ranking)',
    ),
    ...operatorErrors,
  },
});

const taskOf = (m: Parameters<typeof outcomeTask>[0] & { name: string; task: string }) => {
  const task = outcomeTask(m);
  if (!task) throw new ValidationError(`model ${m.name} is a ${m.task} model, whose outcomes are not joined`, 'model', 422, 'task_not_scored');
  return task;
};

document(outcomes, {
  method: 'post',
  path: '/v1/models/{name}/performance/reference',
  summary: "The reference performance alerts judge against: the watched metric's realized figure over a labelled period",
  security: bearer,
  request: { params: ModelParams, body: { content: { 'application/json': { schema: BaselineBody } }, required: true } },
  responses: {
    200: answer('the metric, its reference value and the labels it is from'),
    422: answer('the period cannot be a reference (too few labels)'),
    ...operatorErrors,
  },
});
outcomes.post('/v1/models/:name/performance/reference', operatorAuth(), model, needsAggregator, limit, async (c) => {
  const m = c.var.engine.manifest;
  taskOf(m);
  const b = input(BaselineBody, await body(c), 'body');
  const from = time(b.from, 'from');
  const to = time(b.to, 'to');
  if (!(from < to)) throw new ValidationError('from must be before to', 'from');
  const res = await c.var.aggregator.setPerformanceReference(m.name, from, to);
  // proto-safe: `res` is the aggregator's typed union, not a client's object.
  if ('error' in res) throw new ValidationError(`cannot set the reference: ${res.error}`, 'from', 422, 'reference_period_unusable');
  return c.json({ model: m.name, reference: res });
});

// A browser's telemetry token for this model may send feedback too, at most MAX_BROWSER_FEEDBACK items a call (http/telemetry-token.ts).
const feedbackHolder = feedbackAuth({ verifyToken: telemetryTokenHolder });
outcomes.post('/v1/models/:name/feedback', feedbackHolder, model, limit, browserFeedbackLimit, needsAggregator, async (c) => {
  const m = c.var.engine.manifest;
  const task = taskOf(m);
  const raw = await body(c);
  // A ranking's feedback is an event on an item; the other tasks' a label.
  const fields = task === 'top-k-recommendation' ? ['prediction_id', 'event', 'item'] : ['prediction_id', 'label'];
  const shape = `{${fields.map((f) => `"${f}"`).join(', ')}}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.hasOwn(raw, 'feedback'))
    throw new ValidationError(`the body must be {"feedback": [${shape}, ...]}`, 'feedback');
  for (const k of Object.keys(raw)) if (k !== 'feedback') throw new ValidationError(`unknown field "${k.slice(0, 64)}" (known: feedback)`, k.slice(0, 64));
  const items = (raw as { feedback: unknown }).feedback;
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_FEEDBACK)
    throw new ValidationError(
      `feedback must be an array of 1 to ${MAX_FEEDBACK} items`,
      'feedback',
      Array.isArray(items) && items.length > MAX_FEEDBACK ? 413 : 400,
    );
  // Each item is checked on its own: one bad item is answered `invalid`, the others still join.
  const checked = items.map((it): FeedbackItem | FeedbackResult => {
    if (typeof it !== 'object' || it === null || Array.isArray(it)) return { status: 'invalid', reason: `an item must be ${shape}` };
    const extra = Object.keys(it).find((k) => !fields.includes(k));
    if (extra !== undefined) return { status: 'invalid', reason: `unknown field "${extra.slice(0, 64)}" (an item is ${shape})` };
    const o = it as FeedbackItem;
    return task === 'top-k-recommendation'
      ? { prediction_id: o.prediction_id, event: o.event, item: o.item }
      : { prediction_id: o.prediction_id, label: o.label };
  });
  const toJoin = checked.filter((x): x is FeedbackItem => !Object.hasOwn(x, 'status'));
  const joined = toJoin.length ? await c.var.aggregator.feedback(task, toJoin) : [];
  let j = 0;
  const results = checked.map((x, i) => {
    const r = Object.hasOwn(x, 'status') ? (x as FeedbackResult) : joined[j++];
    const id = (items[i] as { prediction_id?: unknown })?.prediction_id;
    return { prediction_id: typeof id === 'string' ? id.slice(0, 64) : null, ...r };
  });
  const counts = { joined: 0, duplicate: 0, unknown: 0, expired: 0, invalid: 0 };
  for (const r of results) counts[r.status]++;
  return c.json({ model: m.name, results, ...counts } satisfies FeedbackAnswer);
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
  let baselineScores: Sketch | undefined;
  // Scores read through the model's calibration when its import fitted one (core/calibration.ts).
  const calibrate = m.calibration ? calibrator(m.calibration.points) : undefined;
  if (estimate) baselineScores = decodeSummary(new Uint8Array((await c.var.aggregator.baseline(m.name)).bytes)).outputs.get(score);
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
        const outside = baselineScores?.kind === 'tdigest' ? (compareSketches(baselineScores, sketch, { seasonal: true }).out_of_range?.statistic ?? 0) : 0;
        estimated[v] = estimateAuc((x) => sketch.quantile(x), sketch.count, { outsideShare: outside, calibrate });
      }
    }
    const versions = Object.fromEntries([...(per ?? [])].map(([v, st]) => [v, realized(st, task)]));
    // Once enough labels are in, a realized AUC outside the estimate's band says its assumptions
    // failed (concept drift, or scores that mean something else than the calibration says).
    for (const [v, e] of Object.entries(estimated ?? {})) {
      const r = per?.get(v) ? versions[v] : undefined; // proto-safe: v is a version the aggregator listed, read only when `per` has it
      if (!e.band || r?.auc == null || r.labelled < MIN_ESTIMATE_ROWS) continue;
      if (r.auc < e.band[0] || r.auc > e.band[1]) {
        e.valid = false;
        e.contradicted = true;
        e.reasons.push(
          `the realized AUC ${r.auc.toFixed(3)} (${r.labelled} labels) is outside the band: concept drift, or scores that do not mean what the calibration says`,
        );
      }
    }
    windows.push({ from: new Date(t).toISOString(), to: new Date(end).toISOString(), versions, ...(estimated ? { estimated } : {}) });
  }
  const reference = await c.var.aggregator.performanceReference(m.name);
  return c.json({
    model: m.name,
    task,
    // What performance alerts judge against (null: no reference, no alert).
    reference,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    total: Object.fromEntries([...total].map(([v, st]) => [v, realized(st, task)])),
    windows,
    ...(estimate
      ? {
          estimate_assumptions: `estimated AUC reads each score as the probability that the row is positive (${
            m.calibration
              ? `through the isotonic calibration fitted on ${m.calibration.rows} labelled reference rows${m.calibration.source ? `, ${m.calibration.source}` : ''}`
              : 'calibrated scores: no calibration was fitted at import'
          }) and assumes no concept drift (P(label | inputs) as in training); it is marked invalid on fewer than 100 rows or when over 5% of the scores are outside the range the reference saw. Realized figures need none of this.`,
        }
      : {}),
  } satisfies PerformanceAnswer);
});
