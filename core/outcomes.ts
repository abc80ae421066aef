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
 * one value the realized metrics need: a binary classifier's score, a regressor's value, a
 * multiclass classifier's predicted class; for a ranking, the served list's ids (value: its length).
 *
 * Outcome state per (version, window), merged by addition:
 * - `predicted`: predictions recorded; `labelled`: labels joined;
 * - binary: label counts per score bin (AUC_BINS bins of [0, 1], so AUC is computed with ties
 *   only inside a bin of width 0.001), the summed log loss, and per decile the scores' sum and
 *   the positives (calibration);
 * - regression: the sums of error, |error| and error² (bias, MAE, RMSE);
 * - multiclass: the confusion counts (label, predicted) (accuracy, macro F1);
 * - ranking: per position, the predictions whose best click was there (CTR@k for every k), the
 *   click events and those on a served item (hit rate), the predictions converted.
 *   For a ranking, a prediction without a click is a list not clicked (so far): its `labelled`
 *   counts the predictions with any event.
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
  /** A ranking's served ids, best first (value: their count). */
  items?: string[];
}

/** One feedback item as the aggregator takes it: a label, or a ranking's event on an item. */
export interface FeedbackItem {
  prediction_id: unknown;
  label?: unknown;
  event?: unknown;
  item?: unknown;
}

/** Ids kept of a served list, at most; and events joined per prediction (a ranking), at most. */
export const MAX_SERVED_ITEMS = 100;
export const MAX_EVENTS_PER_PREDICTION = 64;
/** Class indexes a multiclass label may take: [0, MAX_CLASSES). */
export const MAX_CLASSES = 1024;
/** The ranking events feedback takes. */
export const RANKING_EVENTS = ['click', 'convert'] as const;

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

/** Tasks whose outcomes the join scores. */
export type OutcomeTask = 'binary-classification' | 'multiclass-classification' | 'regression' | 'top-k-recommendation';
const OUTCOME_TASKS: readonly string[] = ['binary-classification', 'multiclass-classification', 'regression', 'top-k-recommendation'];
export const outcomeTask = (m: Pick<ModelManifest, 'task'>): OutcomeTask | undefined => (OUTCOME_TASKS.includes(m.task) ? (m.task as OutcomeTask) : undefined);

const isInteger = (o: { dtype: string }) => o.dtype === 'int64' || o.dtype === 'int32';
const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * What the join keeps of one prediction (see the header), or undefined when the answer lacks it:
 * - binary and regression: the first float32 output (its first value);
 * - multiclass: the integer label output, else the argmax of the float32 output's values;
 * - ranking: the first integer output's ids as strings (at most MAX_SERVED_ITEMS), value their count.
 */
export function joinValue(
  m: Pick<ModelManifest, 'task' | 'outputs'>,
  prediction: Record<string, number | number[]>,
): { value: number; items?: string[] } | undefined {
  const task = outcomeTask(m);
  if (!task) return undefined;
  if (task === 'top-k-recommendation') {
    const out = m.outputs.find(isInteger);
    const v = out ? prediction[out.name] : undefined; // proto-safe: a manifest output name
    if (!Array.isArray(v) || !v.every(finite)) return undefined;
    const items = v.slice(0, MAX_SERVED_ITEMS).map(String);
    return { value: items.length, items };
  }
  if (task === 'multiclass-classification') {
    const label = m.outputs.find((o) => isInteger(o) && o.shape.length === 1);
    const l = label ? prediction[label.name] : undefined; // proto-safe: a manifest output name
    const x = Array.isArray(l) ? l[0] : l;
    if (finite(x)) return { value: x };
    const probs = m.outputs.find((o) => o.dtype === 'float32');
    const p = probs ? prediction[probs.name] : undefined; // proto-safe: a manifest output name
    if (!Array.isArray(p) || p.length === 0 || !p.every(finite)) return undefined;
    let best = 0;
    for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
    return { value: best };
  }
  const out = m.outputs.find((o) => o.dtype === 'float32');
  if (!out) return undefined;
  const v = prediction[out.name]; // proto-safe: a manifest output name
  const x = Array.isArray(v) ? v[0] : v;
  return finite(x) ? { value: x } : undefined;
}

/**
 * A label as a client sends it, checked for the task: 0/1 or true/false for binary, a finite
 * number for regression, a class index in [0, MAX_CLASSES) for multiclass. A ranking takes events
 * (parseEvent), not labels.
 */
export function parseLabel(task: OutcomeTask, label: unknown): number | string {
  if (task === 'binary-classification') {
    if (label === true || label === 1) return 1;
    if (label === false || label === 0) return 0;
    return 'label must be 0, 1, true or false for a binary classifier';
  }
  if (task === 'multiclass-classification') {
    if (typeof label === 'number' && Number.isInteger(label) && label >= 0 && label < MAX_CLASSES) return label;
    return `label must be a class index, an integer in [0, ${MAX_CLASSES}), for a multiclass classifier`;
  }
  if (task === 'top-k-recommendation') return 'a ranking takes {"prediction_id", "event": "click" | "convert", "item"}, not a label';
  if (typeof label === 'number' && Number.isFinite(label)) return label;
  return 'label must be a finite number for a regressor';
}

/** A ranking's event as a client sends it: `click` or `convert` on an item id (a string or an integer), or why not. */
export function parseEvent(event: unknown, item: unknown): { event: (typeof RANKING_EVENTS)[number]; item: string } | string {
  if (event !== 'click' && event !== 'convert') return 'event must be "click" or "convert"';
  if (typeof item === 'number' && Number.isSafeInteger(item)) return { event, item: String(item) };
  if (typeof item === 'string' && item.length > 0 && item.length <= 64) return { event, item };
  return 'item must be the id of the item (a string of 1 to 64 characters, or an integer)';
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
  /** Multiclass: joined labels per "label,predicted" pair. */
  confusion?: Record<string, number>;
  /** Ranking: predictions per position of their best click on a served item (0 = the first item). */
  firstClick?: number[];
  /** Ranking: click events, those on a served item, and predictions with a conversion. */
  clicks?: number;
  servedClicks?: number;
  converted?: number;
  /** Ranking: the longest list served (the CTR@k reported go up to it). */
  longest?: number;
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
  if (task === 'multiclass-classification') {
    const key = `${label},${value}`;
    s.confusion ??= {};
    s.confusion[key] = (s.confusion[key] ?? 0) + 1; // proto-safe: two numbers joined by a comma
    return;
  }
  const e = value - label;
  s.err = (s.err ?? 0) + e;
  s.absErr = (s.absErr ?? 0) + Math.abs(e);
  s.sqErr = (s.sqErr ?? 0) + e * e;
}

/**
 * Adds a ranking's event on one prediction to its window's state: `first` for the prediction's
 * first event of any kind (it becomes labelled); a click moves the prediction's best click position
 * from `before` (undefined: none yet) to `after` when it is better; `converted` for its first conversion.
 */
export function addRankingEvent(
  s: OutcomeState,
  e: { first: boolean; click?: { served: boolean; before?: number; after?: number }; converted?: boolean },
): void {
  if (e.first) s.labelled++;
  if (e.click) {
    s.clicks = (s.clicks ?? 0) + 1;
    if (e.click.served) s.servedClicks = (s.servedClicks ?? 0) + 1;
    const { before, after } = e.click;
    if (after !== undefined && after !== before) {
      s.firstClick ??= [];
      while (s.firstClick.length <= after) s.firstClick.push(0);
      s.firstClick[after]++;
      if (before !== undefined) s.firstClick[before]--;
    }
  }
  if (e.converted) s.converted = (s.converted ?? 0) + 1;
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
  for (const k of ['err', 'absErr', 'sqErr', 'clicks', 'servedClicks', 'converted'] as const) if (b[k] !== undefined) a[k] = (a[k] ?? 0) + b[k]!;
  if (b.confusion) {
    a.confusion ??= {};
    for (const [k, n] of Object.entries(b.confusion)) a.confusion[k] = (a.confusion[k] ?? 0) + n; // proto-safe: own keys "label,predicted"
  }
  if (b.longest !== undefined) a.longest = Math.max(a.longest ?? 0, b.longest);
  if (b.firstClick) {
    a.firstClick ??= [];
    b.firstClick.forEach((n, i) => {
      while (a.firstClick!.length <= i) a.firstClick!.push(0);
      a.firstClick![i] += n;
    });
  }
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
  /** Multiclass: the share of labels predicted right, and the mean per-class F1 over the classes seen (as labels or predictions). */
  accuracy?: number | null;
  macro_f1?: number | null;
  classes?: number;
  /** Ranking: the share of served lists with a click on one of their first k items, for k = 1, 3, 5, 10, 20, 50, 100 up to the longest list served; `ctr` at any position. */
  ctr?: number | null;
  ctr_at?: Record<string, number>;
  /** Ranking: the share of click events on an item the list served; click events; the share of lists converted. */
  hit_rate?: number | null;
  clicks?: number;
  conversion_rate?: number | null;
}

const CTR_KS = [1, 3, 5, 10, 20, 50, 100];

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
  if (task === 'multiclass-classification') {
    const pairs = Object.entries(s.confusion ?? {}).map(([k, n]) => {
      const [t, p] = k.split(',').map(Number);
      return { t, p, n };
    });
    const classes = [...new Set(pairs.flatMap(({ t, p }) => [t, p]))];
    const total = pairs.reduce((a, x) => a + x.n, 0);
    const right = pairs.reduce((a, x) => a + (x.t === x.p ? x.n : 0), 0);
    const f1 = classes.map((c) => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (const x of pairs) {
        if (x.t === c && x.p === c) tp += x.n;
        else if (x.p === c) fp += x.n;
        else if (x.t === c) fn += x.n;
      }
      return (2 * tp) / (2 * tp + fp + fn);
    });
    return {
      ...base,
      accuracy: total ? right / total : null,
      macro_f1: classes.length ? f1.reduce((a, b) => a + b, 0) / classes.length : null,
      classes: classes.length,
    };
  }
  if (task === 'top-k-recommendation') {
    const first = s.firstClick ?? [];
    const clicked = first.reduce((a, b) => a + b, 0);
    const ctrAt: Record<string, number> = {};
    for (const k of CTR_KS) {
      if (k > 1 && k > (s.longest ?? 0)) break;
      ctrAt[String(k)] = s.predicted ? first.slice(0, k).reduce((a, b) => a + b, 0) / s.predicted : 0; // proto-safe: a number's string
    }
    return {
      ...base,
      ctr: s.predicted ? clicked / s.predicted : null,
      ctr_at: ctrAt,
      hit_rate: s.clicks ? (s.servedClicks ?? 0) / s.clicks : null,
      clicks: s.clicks ?? 0,
      conversion_rate: s.predicted ? (s.converted ?? 0) / s.predicted : null,
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
  /** Set by the performance route once enough labels are in and the realized AUC falls outside the band: the assumptions failed. */
  contradicted?: boolean;
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
  const se = aucStandardError(a, pos, neg);
  const z = Z99;
  return {
    auc: a,
    band: [Math.max(0, a - z * se), Math.min(1, a + z * se)],
    rows,
    expected_positive_rate: pos / rows,
    valid: reasons.length === 0,
    reasons,
  };
}

/** The two-sided 99% normal quantile: bands and alert bounds here are 99%. */
const Z99 = 2.576;

/** The standard error of an AUC `a` on `pos` positives and `neg` negatives (Hanley and McNeil 1982). */
export function aucStandardError(a: number, pos: number, neg: number): number {
  const q1 = a / (2 - a);
  const q2 = (2 * a * a) / (1 + a);
  return Math.sqrt(Math.max(0, (a * (1 - a) + (pos - 1) * (q1 - a * a) + (neg - 1) * (q2 - a * a)) / (pos * neg)));
}

/** The figure a task's performance alert watches, and which way is worse. */
export const WATCHED_METRIC: Record<OutcomeTask, { metric: 'auc' | 'accuracy' | 'mae' | 'ctr'; higherIsBetter: boolean }> = {
  'binary-classification': { metric: 'auc', higherIsBetter: true },
  'multiclass-classification': { metric: 'accuracy', higherIsBetter: true },
  regression: { metric: 'mae', higherIsBetter: false },
  'top-k-recommendation': { metric: 'ctr', higherIsBetter: true },
};

/**
 * The reference figure of a model's watched metric from its manifest's quality report (what it
 * scored on held-out data when it was built or imported): the served build's value of the first
 * metric named after it (`auc_held_out` before `auc_test` before other `auc…`), or undefined.
 */
export function referencePerformance(m: Pick<ModelManifest, 'task' | 'quality' | 'serve'>): { metric: string; source: string; value: number } | undefined {
  const task = outcomeTask(m);
  // The quality report is kept as pushed (core/manifest-check.ts does not check it): read defensively.
  const metrics: unknown = m.quality?.metrics;
  if (!task || typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) return undefined;
  const { metric } = WATCHED_METRIC[task];
  const names = Object.keys(metrics)
    .filter((k) => k === metric || k.startsWith(`${metric}_`))
    .sort((a, b) => Number(b.endsWith('held_out')) - Number(a.endsWith('held_out')) || Number(b.endsWith('test')) - Number(a.endsWith('test')));
  for (const k of names) {
    const q = (metrics as Record<string, unknown>)[k] as Record<string, unknown> | null | undefined; // proto-safe: an own key of the manifest's object
    const v = typeof q === 'object' && q !== null ? (Object.hasOwn(q, m.serve) ? q[m.serve] : q.float32) : undefined; // proto-safe: serve is int8 or float32
    if (typeof v === 'number' && Number.isFinite(v)) return { metric, source: `manifest quality ${k}`, value: v };
  }
  return undefined;
}

/** A window's watched figure against the reference (see judgePerformance). */
export interface PerformanceJudgement {
  metric: string;
  value: number;
  /** The 99% bound on the worse side's opposite: the best the figure may be, given the rows. */
  bound: number;
  reference: number;
  threshold: number;
  /** Labels (or, for a ranking, lists served) the figure is from. */
  n: number;
  worse: boolean;
}

/**
 * A window's realized figure judged against `reference` with a relative `tolerance`: worse when
 * even its 99% bound is past reference × (1 − tolerance) (or × (1 + tolerance) for an error), so a
 * window of few labels, whose figure is noisy, cannot raise an alert by chance. Undefined without
 * enough data: fewer than `minLabels` labels, or a binary window without both classes.
 */
export function judgePerformance(
  task: OutcomeTask,
  s: OutcomeState,
  reference: number,
  tolerance: number,
  minLabels: number,
): PerformanceJudgement | undefined {
  const { metric, higherIsBetter } = WATCHED_METRIC[task];
  const r = realized(s, task);
  let value: number | null | undefined;
  let se = 0;
  let n = s.labelled;
  if (task === 'binary-classification') {
    value = r.auc;
    const pos = Math.round((r.positive_rate ?? 0) * s.labelled);
    if (value != null) se = aucStandardError(value, pos, s.labelled - pos);
  } else if (task === 'multiclass-classification') {
    value = r.accuracy;
    if (value != null) se = Math.sqrt((value * (1 - value)) / n);
  } else if (task === 'regression') {
    value = r.mae;
    if (value != null) se = Math.sqrt(Math.max(0, (s.sqErr ?? 0) / n - value * value) / n);
  } else {
    value = r.ctr;
    n = s.predicted;
    if (value != null) se = Math.sqrt((value * (1 - value)) / n);
  }
  if (value == null || n < minLabels) return undefined;
  const threshold = higherIsBetter ? reference * (1 - tolerance) : reference * (1 + tolerance);
  const bound = higherIsBetter ? value + Z99 * se : Math.max(0, value - Z99 * se);
  return { metric, value, bound, reference, threshold, n, worse: higherIsBetter ? bound < threshold : bound > threshold };
}
