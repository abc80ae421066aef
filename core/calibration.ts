/**
 * Calibration of a binary classifier's scores: the map from a score to the probability that the
 * row is positive, fitted on labelled reference rows by isotonic regression (pool adjacent
 * violators: the non-decreasing step function closest to the labels in squared error), kept as at
 * most MAX_CALIBRATION_POINTS knots and read by linear interpolation between them. The estimated
 * AUC before labels (outcomes.ts estimateAuc, as NannyML's CBPE) reads scores through it, so a
 * model that is over- or under-confident is estimated on what its scores mean, not what they say.
 */

/** Knots a calibration keeps at most (a manifest field). */
export const MAX_CALIBRATION_POINTS = 64;

/** A fitted calibration, as the manifest keeps it. */
export interface Calibration {
  method: 'isotonic';
  /** Labelled rows it was fitted on. */
  rows: number;
  /** Where the rows came from, in words. */
  source: string;
  /** [score, P(positive)] knots, scores increasing, probabilities non-decreasing. */
  points: [number, number][];
}

/**
 * Isotonic regression of `labels` (0/1) on `scores`, as knots: each block of the fit becomes one
 * knot at its rows' mean score with its positive rate; adjacent blocks with the fewest rows are
 * pooled until at most `maxPoints` are left (pooling two non-decreasing blocks keeps the fit
 * non-decreasing). Rows with a score that is not finite are left out.
 */
export function fitIsotonic(scores: ArrayLike<number>, labels: ArrayLike<number>, maxPoints = MAX_CALIBRATION_POINTS): [number, number][] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) if (Number.isFinite(scores[i])) idx.push(i);
  idx.sort((a, b) => scores[a] - scores[b]);
  // Blocks: [sum of scores, sum of labels, rows]. Rows of one score are one block from the start
  // (a function of the score gives them one value), then adjacent violators are pooled.
  const blocks: [number, number, number][] = [];
  for (let i = 0; i < idx.length; ) {
    const s = scores[idx[i]];
    let y = 0;
    let j = i;
    for (; j < idx.length && scores[idx[j]] === s; j++) y += labels[idx[j]] ? 1 : 0;
    blocks.push([s * (j - i), y, j - i]);
    i = j;
    // Pool while the previous block's rate is at or above the last one's.
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a[1] / a[2] < b[1] / b[2]) break;
      a[0] += b[0];
      a[1] += b[1];
      a[2] += b[2];
      blocks.pop();
    }
  }
  while (blocks.length > Math.max(2, maxPoints)) {
    let k = 0;
    for (let i = 1; i < blocks.length - 1; i++) if (blocks[i][2] + blocks[i + 1][2] < blocks[k][2] + blocks[k + 1][2]) k = i;
    const [a, b] = [blocks[k], blocks[k + 1]];
    blocks.splice(k, 2, [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
  }
  return blocks.map(([s, y, n]) => [s / n, y / n]);
}

/** The calibration map of knots: linear between them, flat beyond the first and the last. */
export function calibrator(points: readonly (readonly [number, number])[]): (score: number) => number {
  if (points.length === 0) return (s) => Math.min(1, Math.max(0, s));
  return (s) => {
    if (!(s > points[0][0])) return points[0][1];
    const last = points[points.length - 1];
    if (s >= last[0]) return last[1];
    let lo = 0;
    let hi = points.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (points[mid][0] <= s) lo = mid;
      else hi = mid;
    }
    const [x0, y0] = points[lo];
    const [x1, y1] = points[hi];
    return x1 > x0 ? y0 + ((s - x0) / (x1 - x0)) * (y1 - y0) : y1;
  };
}

/**
 * Expected calibration error over `bins` equal-width score bins: the rows' weighted mean of
 * |mean predicted probability − positive rate| per bin. `calibrate` maps a score first.
 */
export function expectedCalibrationError(scores: ArrayLike<number>, labels: ArrayLike<number>, calibrate: (s: number) => number = (s) => s, bins = 10): number {
  const sum = new Float64Array(bins);
  const pos = new Float64Array(bins);
  const n = new Float64Array(bins);
  let total = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) continue;
    const p = Math.min(1, Math.max(0, calibrate(scores[i])));
    const b = Math.min(bins - 1, Math.floor(p * bins));
    sum[b] += p;
    pos[b] += labels[i] ? 1 : 0;
    n[b]++;
    total++;
  }
  let e = 0;
  for (let b = 0; b < bins; b++) if (n[b]) e += Math.abs(sum[b] - pos[b]);
  return total ? e / total : 0;
}
