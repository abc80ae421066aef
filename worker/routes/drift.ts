/**
 * Operators: drift. Windows of live traffic judged against the baseline in force (training, or
 * an operator's re-baseline) or a moving reference, the re-baseline itself, and the alerts the
 * aggregator opened and resolved. Everything is read from the model's DriftAggregator.
 */
import {
  calendarCycles,
  eventTimeFeatures,
  dailyFeatures,
  decodeSummary,
  judgeWindow,
  seasonalFeatures,
  ValidationError,
  type AlertsAnswer,
  type DriftAnswer,
  type DriftWindow,
  type JudgedSketch,
  type Sketch,
  type SketchJudgement,
  windowScore,
} from '../../core/index.ts';
import { edgeConfig } from '../config.ts';
import { model, needsAggregator, operatorAuth } from '../http/middleware.ts';
import { answer, BaselineBody, bearer, document, documentedApp, DriftQuery, input, ModelParams, operatorErrors } from '../http/openapi.ts';
import { body, limit, range, time, windowStep } from '../http/request.ts';

export const drift = documentedApp();

document(drift, {
  method: 'get',
  path: '/v1/models/{name}/drift',
  summary: 'Drift of live traffic, window by window, against the baseline in force or a moving reference',
  security: bearer,
  request: { params: ModelParams, query: DriftQuery },
  responses: {
    200: answer(
      "the baseline, the aggregator's counters, and each window: rows, counters, latency, whether it was compared with the baseline's rows at its own times of day (time_matched), and every feature and output described and judged",
    ),
    ...operatorErrors,
  },
});
drift.get('/v1/models/:name/drift', operatorAuth(), model, needsAggregator, async (c) => {
  const m = c.var.engine.manifest;
  const q = input(DriftQuery, c.req.query(), 'query');
  const { from, to } = range(q);
  const step = windowStep(q.step, from, to);
  const version = q.version;
  // The reference: the baseline in force (training, or an operator's re-baseline), or a moving
  // one: the same window a day or a week earlier, or the window just before.
  // A moving reference before the epoch has no data: its windows compare against nothing.
  const reference = q.reference ?? 'baseline';
  const shifts = new Map<string, ((t: number) => number) | undefined>([
    ['baseline', undefined],
    ['previous_day', (t) => Math.max(0, t - 86_400_000)],
    ['previous_week', (t) => Math.max(0, t - 7 * 86_400_000)],
    ['previous_window', (t) => Math.max(0, t - step)],
  ]);
  const shift = shifts.get(reference);
  const agg = c.var.aggregator;
  const inForce = await agg.baseline(m.name);
  const baseline = inForce.training ? await c.var.edge.trainingBaseline(c.env, m.name) : decodeSummary(inForce.bytes);
  const seasonal = seasonalFeatures(m);
  const daily = dailyFeatures(m);
  const cycles = calendarCycles(m);
  const eventTime = eventTimeFeatures(m);
  const windows: DriftWindow[] = [];
  for (let t = from; t < to; t += step) {
    const end = Math.min(to, t + step);
    const bytes = await agg.window(t, end, version);
    if (!bytes) {
      windows.push({ from: new Date(t).toISOString(), to: new Date(end).toISOString(), rows: 0 });
      continue;
    }
    const w = decodeSummary(bytes);
    let ref = baseline;
    let refRows: number | undefined;
    if (shift) {
      const refBytes = await agg.window(shift(t), shift(end), version);
      const p = refBytes ? decodeSummary(refBytes) : undefined;
      refRows = p?.counters.rows ?? 0;
      // Too few rows to stand for anything: no statistics rather than noise.
      ref = p && refRows >= 30 ? p : { ...baseline, features: new Map(), outputs: new Map(), slots: undefined };
    }
    // As the aggregator judges: against the baseline, time-matched where it has slots, calendar
    // features by range unless daily and matched; against a moving reference of the same season,
    // calendar features compare in full.
    const judged = judgeWindow(ref, w, shift ? {} : { seasonal, daily, cycles, eventTime, clock: edgeConfig(c.env).telemetry.clock });
    const section = (live: Map<string, Sketch>, verdicts: Map<string, SketchJudgement>): Record<string, JudgedSketch> =>
      Object.fromEntries(
        [...live].map(([name, sketch]) => {
          const j = verdicts.get(name);
          return [name, { ...sketch.describe(), drifted: j?.drifted ?? false, score: j ? windowScore(j) : null, drift: j?.drift ?? {} }];
        }),
      );
    const features = section(w.features, judged.features);
    const outputs = section(w.outputs, judged.outputs);
    windows.push({
      from: new Date(t).toISOString(),
      to: new Date(end).toISOString(),
      rows: w.counters.rows,
      ...(shift ? { reference_rows: refRows } : { time_matched: judged.timeMatched }),
      counters: w.counters,
      latency_ms: { p50: w.latency.count ? w.latency.quantile(0.5) : null, p99: w.latency.count ? w.latency.quantile(0.99) : null },
      drifted: [...Object.entries(features), ...Object.entries(outputs)].filter(([, v]) => v.drifted).map(([k]) => k),
      features,
      outputs,
    });
  }
  return c.json({
    model: m.name,
    version: version ?? 'all',
    reference,
    // The aggregator's own account: summaries stored, duplicates, refusals, roll-ups, webhooks.
    aggregator: await agg.counters(),
    baseline: {
      source: inForce.training ? 'training' : baseline.source.id,
      window: (inForce.training ? m.baseline?.window : undefined) ?? [new Date(baseline.windowStart).toISOString(), new Date(baseline.windowEnd).toISOString()],
      rows: baseline.counters.rows,
      features: Object.fromEntries([...baseline.features].map(([k, s]) => [k, s.describe()])),
      outputs: Object.fromEntries([...baseline.outputs].map(([k, s]) => [k, s.describe()])),
    },
    windows,
  } satisfies DriftAnswer);
});

document(drift, {
  method: 'post',
  path: '/v1/models/{name}/baseline',
  summary: 'Re-baseline: a window of live traffic becomes the reference drift is judged against',
  security: bearer,
  request: { params: ModelParams, body: { content: { 'application/json': { schema: BaselineBody } }, required: true } },
  responses: {
    200: answer('the new baseline window and its rows'),
    422: answer('the window cannot be a baseline (too few rows)'),
    ...operatorErrors,
  },
});
drift.post('/v1/models/:name/baseline', operatorAuth(), model, needsAggregator, limit, async (c) => {
  const e = c.var.engine;
  const b = input(BaselineBody, await body(c), 'body');
  const from = time(b.from, 'from');
  const to = time(b.to, 'to');
  if (!(from < to)) throw new ValidationError('from must be before to', 'from');
  const res = await c.var.aggregator.setBaseline(from, to);
  // proto-safe: `res` is the aggregator's typed union, not a client's object.
  if ('error' in res) throw new ValidationError(`cannot re-baseline: ${res.error}`, 'from', 422, 'baseline_window_unusable');
  return c.json({ model: e.manifest.name, baseline: { from: new Date(from).toISOString(), to: new Date(to).toISOString(), rows: res.rows } });
});

document(drift, {
  method: 'get',
  path: '/v1/models/{name}/alerts',
  summary: 'Drift alerts the aggregator opened (and resolved), with their evidence',
  security: bearer,
  request: { params: ModelParams },
  responses: { 200: answer('the number open, and every alert'), ...operatorErrors },
});
drift.get('/v1/models/:name/alerts', operatorAuth(), model, needsAggregator, async (c) => {
  const e = c.var.engine;
  const alerts = await c.var.aggregator.alerts();
  return c.json({ model: e.manifest.name, open: alerts.filter((a) => a.resolved_at === null).length, alerts } satisfies AlertsAnswer);
});
