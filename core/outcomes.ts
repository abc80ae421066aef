/**
 * Outcomes: what happened after a prediction (a label that arrives late), joined to the
 * prediction by its id, and the realized performance per model version and window.
 *
 * Prediction ids: `<time>.<random>`: the prediction's time (the telemetry clock, ms, base 36) and
 * 16 random bytes (base64url), so an id is unique and unguessable, and a label for an id past the
 * join horizon can be told `expired` rather than `unknown` without keeping it. A request of
 * several rows gives each row the request's id and `:<row>`.
 *
 * What the join keeps per prediction (no inputs): the version that served it, its time and the
 * one value the realized metrics need: a binary classifier's score, a regressor's value.
 *
 * Outcome state per (version, window), merged by addition:
 * - `predicted`: predictions recorded; `labelled`: labels joined;
 * - binary: label counts per score bin (AUC_BINS bins of [0, 1], so AUC is computed with ties
 *   only inside a bin of width 0.001), the summed log loss, and per decile the scores' sum and
 *   the positives (calibration);
 * - regression: the sums of error, |error| and error² (bias, MAE, RMSE).
 */
import type { ModelManifest } from './manifest.ts';

export const AUC_BINS = 1000;
/** Prediction records per aggregator call, and labels per feedback call. */
export const MAX_PREDICTIONS = 5000;
export const MAX_FEEDBACK = 1000;

/** What the join keeps of one prediction (see the header). */
export interface PredictionRecord {
  id: string;
  version: string;
  /** ms; the time in its id. */
  at: number;
  value: number;
}

/** One label's fate (POST /v1/models/{name}/feedback answers one per item). */
export interface FeedbackResult {
  status: 'joined' | 'duplicate' | 'unknown' | 'expired' | 'invalid';
  reason?: string;
  /** The version that served the prediction (joined). */
  version?: string;
}
/** A score is clipped to [EPS, 1 - EPS] in the log loss, as scikit-learn does. */
const EPS = 1e-15;

const ID = /^([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})(?::(\d{1,4}))?$/;

/** A new prediction id for a prediction at `at` (ms); `random`: 16 bytes from a CSPRNG. */
export function newPredictionId(at: number, random: Uint8Array): string {
  let b = '';
  for (const x of random.subarray(0, 16)) b += String.fromCharCode(x);
  const r = btoa(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${Math.max(0, Math.floor(at)).toString(36)}.${r}`;
}

/** The time a prediction id was made at, or undefined when it is not one. */
export function predictionTime(id: unknown): number | undefined {
  if (typeof id !== 'string' || id.length > 48) return undefined;
  const m = ID.exec(id);
  if (!m) return undefined;
  const t = Number.parseInt(m[1], 36);
  return Number.isSafeInteger(t) ? t : undefined;
}

/** Tasks whose outcomes the join scores (multiclass and ranking come later). */
export type OutcomeTask = 'binary-classification' | 'regression';
export const outcomeTask = (m: Pick<ModelManifest, 'task'>): OutcomeTask | undefined =>
  m.task === 'binary-classification' || m.task === 'regression' ? m.task : undefined;

/** The value the join keeps of one prediction (see the header), or undefined for a task it does not score. */
export function joinValue(m: Pick<ModelManifest, 'task' | 'outputs'>, prediction: Record<string, number | number[]>): number | undefined {
  if (!outcomeTask(m)) return undefined;
  const out = m.outputs.find((o) => o.dtype === 'float32');
  if (!out) return undefined;
  const v = prediction[out.name]; // proto-safe: a manifest output name
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'number' && Number.isFinite(x) ? x : undefined;
}

/** A label as a client sends it, checked for the task: 0/1 or true/false for binary, a finite number for regression. */
export function parseLabel(task: OutcomeTask, label: unknown): number | string {
  if (task === 'binary-classification') {
    if (label === true || label === 1) return 1;
    if (label === false || label === 0) return 0;
    return 'label must be 0, 1, true or false for a binary classifier';
  }
  if (typeof label === 'number' && Number.isFinite(label)) return label;
  return 'label must be a finite number for a regressor';
}

export interface OutcomeState {
  predicted: number;
  labelled: number;
  /** Binary: [negatives, positives] per score bin (bin index as the key). */
  bins?: Record<string, [number, number]>;
  logLoss?: number;
  /** Binary, per decile of score: [count, sum of scores, positives]. */
  deciles?: [number, number, number][];
  /** Regression: Σ (value − label), Σ |value − label|, Σ (value − label)². */
  err?: number;
  absErr?: number;
  sqErr?: number;
}

export const emptyOutcomes = (): OutcomeState => ({ predicted: 0, labelled: 0 });

/** Adds one joined label of a prediction with value `value`. */
export function addOutcome(s: OutcomeState, task: OutcomeTask, value: number, label: number): void {
  s.labelled++;
  if (task === 'binary-classification') {
    const p = Math.min(1, Math.max(0, value));
    const bin = String(Math.min(AUC_BINS - 1, Math.floor(p * AUC_BINS)));
    s.bins ??= {};
    const b = (s.bins[bin] ??= [0, 0]); // proto-safe: bin is a number's string
    b[label ? 1 : 0]++;
    const q = Math.min(1 - EPS, Math.max(EPS, p));
    s.logLoss = (s.logLoss ?? 0) - (label ? Math.log(q) : Math.log(1 - q));
    s.deciles ??= Array.from({ length: 10 }, () => [0, 0, 0] as [number, number, number]);
    const d = s.deciles[Math.min(9, Math.floor(p * 10))];
    d[0]++;
    d[1] += p;
    d[2] += label ? 1 : 0;
    return;
  }
  const e = value - label;
  s.err = (s.err ?? 0) + e;
  s.absErr = (s.absErr ?? 0) + Math.abs(e);
  s.sqErr = (s.sqErr ?? 0) + e * e;
}

/** `a` plus `b`, into `a`. */
export function mergeOutcomes(a: OutcomeState, b: OutcomeState): OutcomeState {
  a.predicted += b.predicted;
  a.labelled += b.labelled;
  if (b.bins) {
    a.bins ??= {};
    for (const [k, [n, p]] of Object.entries(b.bins)) {
      const x = (a.bins[k] ??= [0, 0]); // proto-safe: own keys of bin indexes
      x[0] += n;
      x[1] += p;
    }
  }
  if (b.logLoss !== undefined) a.logLoss = (a.logLoss ?? 0) + b.logLoss;
  if (b.deciles) {
    a.deciles ??= Array.from({ length: 10 }, () => [0, 0, 0] as [number, number, number]);
    b.deciles.forEach((d, i) => {
      for (let j = 0; j < 3; j++) a.deciles![i][j] += d[j];
    });
  }
  for (const k of ['err', 'absErr', 'sqErr'] as const) if (b[k] !== undefined) a[k] = (a[k] ?? 0) + b[k]!;
  return a;
}

export interface RealizedPerformance {
  predicted: number;
  labelled: number;
  /** labelled / predicted (null with no prediction recorded). */
  labelled_share: number | null;
  auc?: number | null;
  log_loss?: number | null;
  positive_rate?: number | null;
  calibration?: { bucket: [number, number]; n: number; mean_score: number; positive_rate: number }[];
  mae?: number | null;
  rmse?: number | null;
  bias?: number | null;
}

/**
 * The realized figures of a state. AUC: the probability that a positive scores above a negative
 * (ties count one half), over score bins: a positive-negative pair in one bin counts one half, so
 * the error is at most half the share of pairs that share a bin of width 1/AUC_BINS (well under
 * 0.01 for scores spread over more than a few bins). Null without both classes.
 */
export function realized(s: OutcomeState, task: OutcomeTask): RealizedPerformance {
  const base = { predicted: s.predicted, labelled: s.labelled, labelled_share: s.predicted ? Math.min(1, s.labelled / s.predicted) : null };
  if (task === 'binary-classification') {
    const bins = Object.entries(s.bins ?? {})
      .map(([k, v]) => [Number(k), v] as const)
      .sort((a, b) => a[0] - b[0]);
    let neg = 0;
    let pos = 0;
    let above = 0;
    for (const [, [n, p]] of bins) {
      above += p * neg + 0.5 * p * n;
      neg += n;
      pos += p;
    }
    return {
      ...base,
      auc: pos && neg ? above / (pos * neg) : null,
      log_loss: s.labelled ? (s.logLoss ?? 0) / s.labelled : null,
      positive_rate: s.labelled ? pos / s.labelled : null,
      calibration: (s.deciles ?? [])
        .map((d, i) => ({
          bucket: [i / 10, (i + 1) / 10] as [number, number],
          n: d[0],
          mean_score: d[0] ? d[1] / d[0] : 0,
          positive_rate: d[0] ? d[2] / d[0] : 0,
        }))
        .filter((d) => d.n > 0),
    };
  }
  const n = s.labelled;
  return { ...base, mae: n ? (s.absErr ?? 0) / n : null, rmse: n ? Math.sqrt((s.sqErr ?? 0) / n) : null, bias: n ? (s.err ?? 0) / n : null };
}
