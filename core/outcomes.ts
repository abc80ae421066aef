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

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const ID = /^([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})(?::(\d{1,4}))?$/;

/** A new prediction id for a prediction at `at` (ms); `random`: 16 bytes from a CSPRNG. */
export function newPredictionId(at: number, random: Uint8Array): string {
  // base64url of the 16 bytes (22 characters, no padding); core has no btoa.
  const bytes = random.subarray(0, 16);
  let r = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = i + 2 < bytes.length ? 4 : i + 1 < bytes.length ? 3 : 2;
    for (let k = 0; k < chars; k++) r += B64URL[(n >> (18 - 6 * k)) & 63];
  }
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

export interface EstimatedAuc {
  /** The AUC the score distribution implies if the scores are calibrated probabilities. */
  auc: number | null;
  /** 99% band of the realized AUC around it: the estimate's own sampling spread on this many rows (Hanley and McNeil 1982). */
  band: [number, number] | null;
  /** Rows the estimate was made from, and the positives it expects among them. */
  rows: number;
  expected_positive_rate: number | null;
  /** Whether the estimate can be trusted here, and why not when not. */
  valid: boolean;
  reasons: string[];
}

/** Rows an estimate needs before it is offered as valid. */
export const MIN_ESTIMATE_ROWS = 100;

/**
 * Confidence-based performance estimation (as NannyML's CBPE) for a binary classifier: before any
 * label, a window's AUC is estimated from its score distribution alone, reading each score s as
 * the probability c(s) that the row is positive. The expected AUC is the share of (positive,
 * negative) pairs ordered right when row i is positive with probability c(s_i): computed over
 * `bins` equal-mass bins of the window's score sketch (`quantile`: its quantile function).
 *
 * Assumptions, stated with every answer: the scores are calibrated (c is the identity, or the
 * calibration given), and there is no concept drift (P(y | x) as in training). It cannot be trusted
 * when the window's scores leave the range the reference saw (`outsideShare` of them, from core's
 * out-of-range statistic), or on fewer than MIN_ESTIMATE_ROWS rows.
 */
export function estimateAuc(
  quantile: (q: number) => number,
  rows: number,
  {
    calibrate = (s: number) => Math.min(1, Math.max(0, s)),
    bins = 100,
    outsideShare = 0,
  }: { calibrate?: (s: number) => number; bins?: number; outsideShare?: number } = {},
): EstimatedAuc {
  const reasons: string[] = [];
  if (rows < MIN_ESTIMATE_ROWS) reasons.push(`${rows} rows, fewer than ${MIN_ESTIMATE_ROWS}`);
  if (outsideShare > 0.05) reasons.push(`${(100 * outsideShare).toFixed(1)}% of the scores are outside the range the reference saw`);
  if (rows === 0) return { auc: null, band: null, rows, expected_positive_rate: null, valid: false, reasons };
  const w = rows / bins;
  let negBelow = 0;
  let pos = 0;
  let neg = 0;
  let ordered = 0;
  for (let i = 0; i < bins; i++) {
    const c = calibrate(quantile((i + 0.5) / bins));
    const p = w * c;
    const n = w * (1 - c);
    // Pairs across bins are ordered by the bins; pairs inside one bin count one half.
    ordered += p * negBelow + 0.5 * p * n;
    negBelow += n;
    pos += p;
    neg += n;
  }
  if (pos <= 0 || neg <= 0)
    return { auc: null, band: null, rows, expected_positive_rate: pos / rows, valid: false, reasons: [...reasons, 'the scores imply a single class'] };
  const a = ordered / (pos * neg);
  const q1 = a / (2 - a);
  const q2 = (2 * a * a) / (1 + a);
  const se = Math.sqrt(Math.max(0, (a * (1 - a) + (pos - 1) * (q1 - a * a) + (neg - 1) * (q2 - a * a)) / (pos * neg)));
  const z = 2.576;
  return {
    auc: a,
    band: [Math.max(0, a - z * se), Math.min(1, a + z * se)],
    rows,
    expected_positive_rate: pos / rows,
    valid: reasons.length === 0,
    reasons,
  };
}
