/**
 * Operators: the deployed versions side by side, from the aggregator's per-version profiles, with
 * a verdict for each non-stable version against stable.
 */
import {
  DEFAULT_THRESHOLDS,
  decodeSummary,
  emptyOutcomes,
  judgePerformance,
  judgeSketch,
  latencyCheck,
  mergeOutcomes,
  outcomeTask,
  realized,
  type OutcomeState,
  type Profile,
  type VersionsAnswer,
  type VersionSummary,
} from '../../core/index.ts';
import { model, needsAggregator, operatorAuth } from '../http/middleware.ts';
import { answer, bearer, document, documentedApp, input, ModelParams, operatorErrors, RangeQuery } from '../http/openapi.ts';
import { range } from '../http/request.ts';
import { backgroundOf } from '../serving/background.ts';

/** Labels each side needs before the versions view compares realized outcomes. */
const OUTCOME_MIN_LABELS = 100;

export const versions = documentedApp();

/**
 * Versions side by side over [from, to): rows, error, cache and fallback rates, latency and
 * output distributions per version, and for each non-stable version a verdict against stable:
 * "worse" when its error rate is 1 point higher, its fallback rate 5 points higher, its p99
 * latency 1.5x and 5 ms more (workerd's clock moves in whole ms, only across I/O, so smaller
 * gaps are noise), its shadow agreement under 90%, or its outputs drifted from stable's;
 * "insufficient data" under 200 rows.
 */
document(versions, {
  method: 'get',
  path: '/v1/models/{name}/versions',
  summary: 'Deployed versions side by side, with a verdict for each against stable',
  security: bearer,
  request: { params: ModelParams, query: RangeQuery },
  responses: { 200: answer('the routing table and, per version, its role, rates, latency, outputs and verdict'), ...operatorErrors },
});
versions.get('/v1/models/:name/versions', operatorAuth(), model, needsAggregator, async (c) => {
  const e = c.var.engine;
  const m = e.manifest;
  const { from, to } = range(input(RangeQuery, c.req.query(), 'query'));
  const table = await c.var.edge.tableOf(c.env, backgroundOf(c), e);
  const raw = await c.var.aggregator.versions(from, to);
  const profiles = new Map(Object.entries(raw).map(([v, b]) => [v, decodeSummary(new Uint8Array(b))]));
  // Outcomes (late labels joined so far), per version: a canary is judged on them too once they arrive.
  const task = outcomeTask(m);
  const outcomes = new Map<string, OutcomeState>();
  if (task)
    for (const r of await c.var.aggregator.outcomes(from, to))
      outcomes.set(r.version, mergeOutcomes(outcomes.get(r.version) ?? emptyOutcomes(), JSON.parse(r.state) as OutcomeState));
  const rate = (p: Profile, k: string) => (p.counters.rows ? (p.counters[k] ?? 0) / p.counters.rows : 0);
  const summary = (p: Profile) => ({
    rows: p.counters.rows,
    error_rate: rate(p, 'errors'),
    cache_rate: rate(p, 'cacheHits'),
    fallback_rate: rate(p, 'fallbacks'),
    latency_ms: { p50: p.latency.count ? p.latency.quantile(0.5) : null, p99: p.latency.count ? p.latency.quantile(0.99) : null },
    outputs: Object.fromEntries([...p.outputs].map(([k, s]) => [k, s.describe()])),
    // Shadow runs (counted apart from served rows) and their agreement with the served answer.
    ...(p.counters.shadowRows
      ? { shadow_rows: p.counters.shadowRows, shadow_agreement: p.counters.shadowCompared ? (p.counters.shadowAgree ?? 0) / p.counters.shadowCompared : null }
      : {}),
  });
  const stable = profiles.get(table.stable);
  const byVersion: Record<string, VersionSummary> = Object.fromEntries(
    [...profiles].map(([v, p]): [string, VersionSummary] => {
      const role =
        v === table.stable ? 'stable' : v === table.canary?.version ? 'canary' : (table.shadows ?? []).some((x) => x.version === v) ? 'shadow' : 'other';
      let verdict: VersionSummary['verdict'];
      const reasons: string[] = [];
      if (v !== table.stable) {
        if (!stable || stable.counters.rows < 200 || p.counters.rows < 200) verdict = 'insufficient data';
        else {
          if (rate(p, 'errors') > rate(stable, 'errors') + 0.01) reasons.push('error rate');
          if (p.counters.shadowCompared && (p.counters.shadowAgree ?? 0) / p.counters.shadowCompared < 0.9) reasons.push('shadow agreement below 90%');
          if (rate(p, 'fallbacks') > rate(stable, 'fallbacks') + 0.05) reasons.push('fallback rate');
          // The rollout analysis's rule: 1.5x and +5 ms, and only on a quantile with 10 rows past it on both sides.
          for (const [name, q] of [
            ['p50', 0.5],
            ['p99', 0.99],
          ] as const) {
            const l = latencyCheck(name, p, stable, q, DEFAULT_THRESHOLDS);
            if (l.status === 'fail') reasons.push(`${name} latency (${l.detail})`);
          }
          for (const [k, s] of p.outputs) {
            const j = judgeSketch(stable.outputs.get(k), s, { range: false });
            const flagged = j
              ? Object.entries(j.drift)
                  .filter(([, r]) => r?.drifted)
                  .map(([m]) => m)
              : [];
            if (flagged.length) reasons.push(`output ${k} distribution (${flagged.join(', ')})`);
          }
          // Outcomes joined so far: worse when even the 99% bound of its watched figure is more
          // than 10% (relative) past stable's over the same range, on 100+ labels each.
          const mine = task ? outcomes.get(v) : undefined;
          const theirs = task ? outcomes.get(table.stable) : undefined;
          if (task && mine && theirs) {
            const base = judgePerformance(task, theirs, 0, 0, OUTCOME_MIN_LABELS);
            const j = base ? judgePerformance(task, mine, base.value, 0.1, OUTCOME_MIN_LABELS) : undefined;
            if (j?.worse) reasons.push(`realized ${j.metric} (${j.value.toFixed(3)} on ${j.n} against stable's ${j.reference.toFixed(3)})`);
          }
          verdict = reasons.length ? 'worse' : 'no worse';
        }
      }
      const o = task ? outcomes.get(v) : undefined;
      return [v, { role, ...summary(p), ...(o && task ? { outcomes: realized(o, task) } : {}), ...(verdict ? { verdict, reasons } : {}) }];
    }),
  );
  return c.json({
    model: m.name,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    routing: table,
    versions: byVersion,
  } satisfies VersionsAnswer);
});
