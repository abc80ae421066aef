/**
 * Rollout plans and their analysis, platform-free: the RoutingStore (worker/routing-store.ts)
 * keeps a rollout's state and runs it on its alarm; everything it decides is decided here.
 *
 * A plan is an optional shadow stage (the candidate runs beside stable on a sample of requests,
 * answering none), then canary steps with increasing traffic shares, then promotion (all the
 * traffic). Each stage needs a minimum number of the candidate's rows and a minimum duration on
 * the data clock (event time for a replay) before it can pass.
 *
 * analyzeStage compares the candidate with stable over the stage's windows and answers
 * pass | fail | wait with every check and its evidence. Noise-aware: a check fails only when the
 * evidence is strong (a one-sided 99% bound past the threshold, or core's noise-corrected drift
 * statistics); a point estimate past the threshold without that strength waits for more rows
 * rather than guessing; nothing is judged before the stage's minimum rows.
 */
import { jensenShannon, psi, type DriftResult } from './drift.ts';
import type { Profile, Sketch } from './profile.ts';
import type { RoutingTable } from './routing.ts';
import { ValidationError } from './validate.ts';

export interface RolloutStage {
  kind: 'shadow' | 'canary';
  /** The canary's traffic share, or the shadow's sample rate, in (0, 1). */
  share: number;
  /** The candidate's rows (shadow runs, or requests it served) before the stage can pass. */
  minRows: number;
  /** Data-clock time (ms) the stage lasts at least. */
  minDurationMs: number;
}

export interface RolloutThresholds {
  /** Largest rise of the error rate over stable's (absolute, 0.01 = one point). */
  errorRate: number;
  /** Largest rise of the fallback rate over stable's. */
  fallbackRate: number;
  /** Latency (p50 and p99) is worse when it is both this many times stable's and `latencyMs` more. */
  latencyRatio: number;
  latencyMs: number;
  /** Smallest share of shadow comparisons that agree with the served answer (see worker/serving/shadow.ts). */
  shadowAgreement: number;
  /** PSI and Jensen-Shannon alert levels for the candidate's output distributions against stable's. */
  outputPsi: number;
  outputJs: number;
}

export interface RolloutPlan {
  stages: RolloutStage[];
  thresholds: RolloutThresholds;
}

export const DEFAULT_THRESHOLDS: RolloutThresholds = {
  errorRate: 0.01,
  fallbackRate: 0.05,
  latencyRatio: 1.5,
  latencyMs: 5,
  shadowAgreement: 0.9,
  outputPsi: 0.25,
  outputJs: 0.1,
};

const MINUTE = 60_000;
/** Shadow 10% of requests, then 1% -> 5% -> 25% -> 50% of the traffic, each for 200 of the candidate's rows and 10 minutes, then promote. */
export const DEFAULT_PLAN: RolloutPlan = {
  stages: [
    { kind: 'shadow', share: 0.1, minRows: 200, minDurationMs: 10 * MINUTE },
    ...[0.01, 0.05, 0.25, 0.5].map((share): RolloutStage => ({ kind: 'canary', share, minRows: 200, minDurationMs: 10 * MINUTE })),
  ],
  thresholds: DEFAULT_THRESHOLDS,
};

/** `PT30S`, `PT10M`, `PT1H30M`, `P1D`, `P1DT12H` as ms, or undefined when it is not one of these. */
export function parseDurationMs(s: string): number | undefined {
  const m = /^P(?:(\d{1,4})D)?(?:T(?:(\d{1,5})H)?(?:(\d{1,6})M)?(?:(\d{1,7})S)?)?$/.exec(s);
  if (!m || s === 'P' || s.endsWith('T') || m.slice(1).every((x) => x === undefined)) return undefined;
  const [d, h, min, sec] = m.slice(1).map((x) => Number(x ?? 0));
  return (((d * 24 + h) * 60 + min) * 60 + sec) * 1000;
}

/**
 * Checks a plan as an operator sends it (parsed JSON), filling defaults; throws a ValidationError
 * naming the field. The JSON form:
 *
 *   { "shadow": { "sample_rate": 0.1, "min_rows": 200, "min_duration": "PT10M" } | null,
 *     "steps": [ { "share": 0.01, "min_rows": 200, "min_duration": "PT10M" }, ... ],
 *     "thresholds": { "error_rate": 0.01, "fallback_rate": 0.05, "latency_ratio": 1.5, "latency_ms": 5,
 *                     "shadow_agreement": 0.9, "output_psi": 0.25, "output_js": 0.1 } }
 *
 * Every part is optional (undefined: DEFAULT_PLAN's; `"shadow": null`: no shadow stage). Steps'
 * shares increase strictly in (0, 1); a last step of 1 is the promotion that ends every plan.
 */
export function validateRolloutPlan(value: unknown): RolloutPlan {
  if (value === undefined || value === null) return DEFAULT_PLAN;
  const obj = (v: unknown, f: string) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(`${f} must be an object`, f);
    const o = v as Record<string, unknown>;
    return o;
  };
  const only = (o: Record<string, unknown>, f: string, keys: string[]) => {
    for (const k of Object.keys(o))
      if (!keys.includes(k)) throw new ValidationError(`unknown field "${f ? `${f}.` : ''}${k}" (known: ${keys.join(', ')})`, f ? `${f}.${k}` : k);
  };
  const num = (v: unknown, f: string, lo: number, hi: number, whole = false) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (whole && !Number.isInteger(v)))
      throw new ValidationError(`${f} must be ${whole ? 'a whole number' : 'a number'} in [${lo}, ${hi}], got ${JSON.stringify(v)?.slice(0, 40)}`, f);
    return v;
  };
  const duration = (v: unknown, f: string) => {
    const ms = typeof v === 'string' ? parseDurationMs(v) : undefined;
    if (ms === undefined || ms > 30 * 24 * 60 * MINUTE)
      throw new ValidationError(`${f} must be an ISO 8601 duration up to 30 days (PT30S, PT10M, PT1H, P1D), got ${JSON.stringify(v)?.slice(0, 40)}`, f);
    return ms;
  };
  const plan = obj(value, 'plan');
  only(plan, '', ['shadow', 'steps', 'thresholds']);
  const stages: RolloutStage[] = [];
  const defaultShadow = DEFAULT_PLAN.stages[0];
  if (plan.shadow !== null) {
    const s = plan.shadow === undefined ? {} : obj(plan.shadow, 'shadow');
    only(s, 'shadow', ['sample_rate', 'min_rows', 'min_duration']);
    stages.push({
      kind: 'shadow',
      share: s.sample_rate === undefined ? defaultShadow.share : num(s.sample_rate, 'shadow.sample_rate', 0.0001, 1),
      minRows: s.min_rows === undefined ? defaultShadow.minRows : num(s.min_rows, 'shadow.min_rows', 1, 1e9, true),
      minDurationMs: s.min_duration === undefined ? defaultShadow.minDurationMs : duration(s.min_duration, 'shadow.min_duration'),
    });
  }
  if (plan.steps === undefined) stages.push(...DEFAULT_PLAN.stages.filter((s) => s.kind === 'canary'));
  else {
    if (!Array.isArray(plan.steps) || plan.steps.length > 20) throw new ValidationError('steps must be an array of at most 20 steps', 'steps');
    let last = 0;
    const steps: unknown[] = plan.steps;
    steps.forEach((raw, i) => {
      const f = `steps[${i}]`;
      const s = obj(raw, f);
      only(s, f, ['share', 'min_rows', 'min_duration']);
      const share = num(s.share, `${f}.share`, 0.0001, 1);
      if (share <= last) throw new ValidationError(`${f}.share must be larger than the step before (${last}), got ${share}`, `${f}.share`);
      last = share;
      if (share === 1) {
        if (i !== steps.length - 1) throw new ValidationError(`${f}.share 1 is the promotion; it can only be the last step`, `${f}.share`);
        return;
      }
      stages.push({
        kind: 'canary',
        share,
        minRows: s.min_rows === undefined ? 200 : num(s.min_rows, `${f}.min_rows`, 1, 1e9, true),
        minDurationMs: s.min_duration === undefined ? 10 * MINUTE : duration(s.min_duration, `${f}.min_duration`),
      });
    });
  }
  const t = plan.thresholds === undefined ? {} : obj(plan.thresholds, 'thresholds');
  const names: [keyof RolloutThresholds, string, number, number][] = [
    ['errorRate', 'error_rate', 0, 1],
    ['fallbackRate', 'fallback_rate', 0, 1],
    ['latencyRatio', 'latency_ratio', 1, 100],
    ['latencyMs', 'latency_ms', 0, 60_000],
    ['shadowAgreement', 'shadow_agreement', 0, 1],
    ['outputPsi', 'output_psi', 0, 100],
    ['outputJs', 'output_js', 0, 1],
  ];
  only(
    t,
    'thresholds',
    names.map((n) => n[1]),
  );
  const thresholds = { ...DEFAULT_THRESHOLDS };
  // proto-safe: `json` and `key` come from the fixed list above, not from the client
  for (const [key, json, lo, hi] of names) if (t[json] !== undefined) thresholds[key] = num(t[json], `thresholds.${json}`, lo, hi);
  return { stages, thresholds };
}

/** The plan in its JSON form (validateRolloutPlan reads it back to the same plan). */
export function rolloutPlanToJSON(plan: RolloutPlan): Record<string, unknown> {
  const iso = (ms: number) => {
    const s = ms / 1000;
    return s % 3600 === 0 ? `PT${s / 3600}H` : s % 60 === 0 ? `PT${s / 60}M` : `PT${s}S`;
  };
  const shadow = plan.stages.find((s) => s.kind === 'shadow');
  const t = plan.thresholds;
  return {
    shadow: shadow ? { sample_rate: shadow.share, min_rows: shadow.minRows, min_duration: iso(shadow.minDurationMs) } : null,
    steps: plan.stages.filter((s) => s.kind === 'canary').map((s) => ({ share: s.share, min_rows: s.minRows, min_duration: iso(s.minDurationMs) })),
    thresholds: {
      error_rate: t.errorRate,
      fallback_rate: t.fallbackRate,
      latency_ratio: t.latencyRatio,
      latency_ms: t.latencyMs,
      shadow_agreement: t.shadowAgreement,
      output_psi: t.outputPsi,
      output_js: t.outputJs,
    },
  };
}

/**
 * The routing table while `stage` runs (undefined: after the last stage, promoted), built on
 * `base` (the table when the rollout began): stable stays, the candidate is the canary or one
 * more shadow, other shadows stay. Assignment is sticky (core/routing.ts): raising the share
 * only moves callers from stable to the candidate, never back.
 */
export function stageTable(base: RoutingTable, candidate: string, stage: RolloutStage | undefined): RoutingTable {
  const shadows = (base.shadows ?? []).filter((s) => s.version !== candidate);
  if (!stage) return { stable: candidate, ...(shadows.length ? { shadows } : {}) };
  if (stage.kind === 'shadow') return { stable: base.stable, shadows: [...shadows.slice(0, 3), { version: candidate, sampleRate: stage.share }] };
  return { stable: base.stable, canary: { version: candidate, share: stage.share }, ...(shadows.length ? { shadows } : {}) };
}

/** The table a rollout ends with when it is rolled back or aborted: `base` without the candidate. */
export function rollbackTable(base: RoutingTable, candidate: string): RoutingTable {
  const shadows = (base.shadows ?? []).filter((s) => s.version !== candidate);
  return { stable: base.stable, ...(shadows.length ? { shadows } : {}) };
}

/** A refusal the operator API turns into a 4xx: the rollout's state does not allow the call. */
export interface RolloutRefusal {
  error: string;
  code: 'rollout_running' | 'no_rollout' | 'rollout_ended' | 'same_version' | 'no_previous_stable';
  status: 404 | 409 | 422;
}

/** Whether a call was refused (its answer is a RolloutRefusal). */
export const isRefusal = (r: object): r is RolloutRefusal => Object.hasOwn(r, 'error');

export type CheckStatus = 'pass' | 'fail' | 'wait';

export interface RolloutCheck {
  /** rows, duration, error_rate, fallback_rate, latency_p50, latency_p99, shadow_agreement, output:<name>, input_drift, performance. */
  name: string;
  status: CheckStatus;
  candidate?: number | string[];
  stable?: number | string[];
  threshold?: number;
  detail: string;
}

export interface StageAnalysis {
  verdict: CheckStatus;
  checks: RolloutCheck[];
  /** The candidate's rows in the stage (shadow runs or served requests), and stable's served rows. */
  rows: { candidate: number; stable: number };
  elapsedMs: number;
}

export interface StageEvidence {
  /** The merged profiles of the stage's windows, per version (undefined: no rows yet). */
  stable: Profile | undefined;
  candidate: Profile | undefined;
  /** Data-clock time since the stage's evidence began. */
  elapsedMs: number;
  /** Input features with an open drift alert on each version's traffic. */
  openAlerts?: { candidate: string[]; stable: string[] };
}

/** One-sided 99% normal quantile. */
const Z = 2.326;

/**
 * The candidate against stable over one stage (see the header): `fail` when any check fails,
 * `pass` when every check passes and the stage has its rows and duration, else `wait`.
 */
export function analyzeStage(stage: RolloutStage, t: RolloutThresholds, ev: StageEvidence): StageAnalysis {
  const { stable, candidate: cand } = ev;
  const shadowRows = (p: Profile | undefined) => p?.counters.shadowRows ?? 0;
  const served = (p: Profile | undefined) => (p ? p.counters.rows - shadowRows(p) : 0);
  const nc = stage.kind === 'shadow' ? shadowRows(cand) : served(cand);
  const ns = served(stable);
  const checks: RolloutCheck[] = [];
  const enough = nc >= stage.minRows && ns >= stage.minRows;
  checks.push({
    name: 'rows',
    status: enough ? 'pass' : 'wait',
    candidate: nc,
    stable: ns,
    threshold: stage.minRows,
    detail: enough ? `${nc} of the candidate's rows, ${ns} of stable's` : `waiting for ${stage.minRows} rows of each (candidate ${nc}, stable ${ns})`,
  });
  const timed = ev.elapsedMs >= stage.minDurationMs;
  checks.push({
    name: 'duration',
    status: timed ? 'pass' : 'wait',
    candidate: ev.elapsedMs,
    threshold: stage.minDurationMs,
    detail: `${Math.round(ev.elapsedMs / 1000)} s of ${Math.round(stage.minDurationMs / 1000)} s`,
  });
  if (enough && cand && stable) {
    // In the shadow stage the candidate's rows are its shadow runs: its rates are over those.
    const rateOf = (p: Profile, k: string, n: number) => ({ x: p.counters[k] ?? 0, n });
    const fallbackRows = (p: Profile) => (p === cand && stage.kind === 'shadow' ? 0 : (p.counters.fallbacks ?? 0));
    checks.push(rateCheck('error_rate', rateOf(cand, 'errors', nc), rateOf(stable, 'errors', ns), t.errorRate));
    if (stage.kind === 'canary') checks.push(rateCheck('fallback_rate', { x: fallbackRows(cand), n: nc }, { x: fallbackRows(stable), n: ns }, t.fallbackRate));
    if (stage.kind === 'canary') {
      // A shadow's latency is its inference alone, after the answer: only a serving candidate's compares with stable's.
      checks.push(latencyCheck('latency_p50', cand, stable, 0.5, t));
      checks.push(latencyCheck('latency_p99', cand, stable, 0.99, t));
    }
    const compared = cand.counters.shadowCompared ?? 0;
    if (compared > 0) checks.push(agreementCheck(cand.counters.shadowAgree ?? 0, compared, t.shadowAgreement));
    for (const [name, s] of cand.outputs) {
      const ref = stable.outputs.get(name);
      if (ref) checks.push(outputCheck(name, ref, s, t));
    }
    if (ev.openAlerts) {
      // Performance alerts (realized from late labels, or estimated from the scores) the candidate has and stable has not.
      const onStable = new Set(ev.openAlerts.stable);
      const worse = ev.openAlerts.candidate.filter((f) => f.startsWith('performance:') && !onStable.has(f));
      if (ev.openAlerts.candidate.some((f) => f.startsWith('performance:')))
        checks.push({
          name: 'performance',
          status: worse.length ? 'fail' : 'pass',
          candidate: worse,
          stable: ev.openAlerts.stable.filter((f) => f.startsWith('performance:')),
          detail: worse.length ? `open performance alerts on the candidate that stable does not have: ${worse.join(', ')}` : 'no performance alert of its own',
        });
    }
    if (stage.kind === 'canary' && ev.openAlerts) {
      const onStable = new Set(ev.openAlerts.stable);
      const own = ev.openAlerts.candidate.filter((f) => !f.startsWith('output:') && !f.startsWith('performance:') && !onStable.has(f));
      checks.push({
        name: 'input_drift',
        status: own.length ? 'fail' : 'pass',
        candidate: own,
        stable: ev.openAlerts.stable,
        detail: own.length ? `open drift alerts on the candidate's traffic that stable does not have: ${own.join(', ')}` : 'no drift alert of its own',
      });
    }
  }
  const verdict: CheckStatus = checks.some((c) => c.status === 'fail') ? 'fail' : checks.every((c) => c.status === 'pass') ? 'pass' : 'wait';
  return { verdict, checks, rows: { candidate: nc, stable: ns }, elapsedMs: ev.elapsedMs };
}

/**
 * A rate that must not rise by more than `limit`: fails when the lower 99% bound of the rise is
 * past it, waits when only the point estimate is, passes otherwise. Rates use the add-one
 * (Laplace) estimate in the standard error, so zero errors on both sides still has a width.
 */
function rateCheck(name: string, c: { x: number; n: number }, s: { x: number; n: number }, limit: number): RolloutCheck {
  const pc = c.x / c.n;
  const ps = s.x / s.n;
  const lc = (c.x + 1) / (c.n + 2);
  const ls = (s.x + 1) / (s.n + 2);
  const se = Math.sqrt((lc * (1 - lc)) / c.n + (ls * (1 - ls)) / s.n);
  const rise = pc - ps;
  const status: CheckStatus = rise - Z * se > limit ? 'fail' : rise > limit ? 'wait' : 'pass';
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  return {
    name,
    status,
    candidate: pc,
    stable: ps,
    threshold: limit,
    detail: `${pct(pc)} against stable's ${pct(ps)} (${c.x}/${c.n} and ${s.x}/${s.n}); ${status === 'fail' ? 'worse beyond noise' : status === 'wait' ? 'higher, not yet beyond noise' : 'no worse'} than +${pct(limit)}`,
  };
}

/**
 * A latency quantile: worse when both `ratio` times stable's and `ms` more. A quantile is only as
 * sure as the rows beyond it: with fewer than 10 rows past it on either side (n·(1 − q) < 10: p50
 * under 20 rows, p99 under 1,000), a handful of slow requests (a cold engine's first, a
 * neighbour's CPU) decide it, so a worse one cannot fail, only wait for rows.
 */
export function latencyCheck(name: string, cand: Profile, stable: Profile, q: number, t: RolloutThresholds): RolloutCheck {
  const minRows = Math.ceil(10 / (1 - q) - 1e-9);
  if (!cand.latency.count || !stable.latency.count) return { name, status: 'pass', detail: 'no latency recorded' };
  const a = cand.latency.quantile(q);
  const b = stable.latency.quantile(q);
  const worse = a > t.latencyRatio * b && a - b > t.latencyMs;
  const sure = cand.latency.count >= minRows && stable.latency.count >= minRows;
  return {
    name,
    status: worse ? (sure ? 'fail' : 'wait') : 'pass',
    candidate: a,
    stable: b,
    threshold: t.latencyRatio,
    detail: `${a.toFixed(1)} ms against stable's ${b.toFixed(1)} ms${worse ? ` (more than ${t.latencyRatio}x and ${t.latencyMs} ms${sure ? '' : `; fewer than ${minRows} rows, waiting`})` : ''}`,
  };
}

/** Shadow agreement: fails when even its upper 99% bound is under `min`, waits when only the point estimate is. */
function agreementCheck(agree: number, n: number, min: number): RolloutCheck {
  const a = agree / n;
  const la = (agree + 1) / (n + 2);
  const upper = a + Z * Math.sqrt((la * (1 - la)) / n);
  const status: CheckStatus = upper < min ? 'fail' : a < min ? 'wait' : 'pass';
  return {
    name: 'shadow_agreement',
    status,
    candidate: a,
    threshold: min,
    detail: `${agree} of ${n} shadow comparisons agree with the served answer (${(100 * a).toFixed(1)}%; at least ${(100 * min).toFixed(0)}% wanted)`,
  };
}

/** An output's distribution against stable's: PSI (numeric) and Jensen-Shannon, with core's noise-raised thresholds. */
function outputCheck(name: string, ref: Sketch, s: Sketch, t: RolloutThresholds): RolloutCheck {
  const results: DriftResult[] = [];
  if (ref.kind === 'categorical' && s.kind === 'categorical') results.push(jensenShannon(ref, s, { threshold: t.outputJs }));
  else if (ref.kind !== 'categorical' && s.kind !== 'categorical' && ref.kind === s.kind) {
    results.push(psi(ref, s, { alert: t.outputPsi }), jensenShannon(ref, s, { threshold: t.outputJs }));
  }
  if (!results.length) return { name: `output:${name}`, status: 'pass', detail: 'not comparable (sketch kinds differ)' };
  const bad = results.filter((r) => r.drifted);
  return {
    name: `output:${name}`,
    status: bad.length ? 'fail' : 'pass',
    detail: results.map((r) => `${r.method} ${r.statistic.toFixed(3)} (bar ${r.threshold.toFixed(3)})`).join(', '),
    candidate: results[0].statistic,
    threshold: results[0].threshold,
  };
}
