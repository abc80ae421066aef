/**
 * Drift statistics between a baseline sketch and a window sketch, computed on the sketches
 * alone. Each returns a DriftResult whose `drifted` is `statistic > threshold`.
 *
 * Defaults are the ones operators know from Evidently, NannyML and credit-risk practice:
 * PSI 0.1 warn / 0.25 alert; Wasserstein-1 normalised by the baseline's standard deviation,
 * 0.1; Jensen-Shannon distance (natural log, as scipy.spatial.distance.jensenshannon and
 * Evidently compute it, so at most √ln 2 ≈ 0.833), 0.1. The two tests whose critical value
 * shrinks with sample size (KS, chi-square) also require an effect size (KS D ≥ 0.1,
 * Cohen's w ≥ 0.1) so that negligible shifts are not flagged at very large n.
 *
 * Sketch error: on t-digests every cumulative share is within the digest's rank error (see
 * tdigest.ts), so KS is within about twice that and binned PSI / JS shares within it per
 * edge; histograms are exact for their bins. Categorical sketches are exact until they
 * evict; after that, values are taken at their guaranteed counts with the rest in "other"
 * (see CategoricalSketch.distribution).
 */
import type { CategoricalSketch } from './categorical.ts';
import type { Histogram } from './histogram.ts';
import type { SketchKind } from './sketch.ts';
import { chiSquareCritical, chiSquareSurvival, kolmogorovSurvival } from './stats.ts';
import type { TDigest } from './tdigest.ts';

export type DriftMethod = 'psi' | 'ks' | 'wasserstein' | 'jensen_shannon' | 'chi_square' | 'out_of_range' | 'off_clock';

export interface DriftResult {
  method: DriftMethod;
  statistic: number;
  threshold: number;
  drifted: boolean;
  /** Window count. */
  n: number;
  /** Baseline count. */
  nBaseline: number;
  /** PSI only: 'ok' below `warn`, 'warn' up to the alert threshold, 'alert' above. */
  level?: 'ok' | 'warn' | 'alert';
  /** KS and chi-square: asymptotic p-value of the two-sample test. */
  pValue?: number;
  /**
   * What the statistic comes to on average from sampling noise alone (two samples of one
   * distribution of these sizes): the zero of the scale on which core/judge.ts windowScore adds
   * up evidence across windows, whose 1 is `threshold`.
   */
  expected?: number;
}

export type NumericSketch = TDigest | Histogram;

/** Shares smaller than this are raised to it before PSI's logarithm (Evidently's 1e-4). */
export const PSI_EPSILON = 1e-4;

export interface PsiOptions {
  /** Number of baseline-quantile bins for digests (ignored for histograms). Default 10. */
  bins?: number;
  warn?: number;
  alert?: number;
  epsilon?: number;
}

/**
 * Population Stability Index Σ (w − b)·ln(w / b) over bins, where b and w are the baseline
 * and window shares. Digests are binned at the baseline's deciles (by default); histograms
 * use their own edges. Shares below `epsilon` are raised to it (a bin empty on one side
 * would otherwise make PSI infinite).
 */
export function psi(
  baseline: NumericSketch,
  current: NumericSketch,
  { bins = 10, warn = 0.1, alert = 0.25, epsilon = PSI_EPSILON }: PsiOptions = {},
): DriftResult {
  const [b, w] = binShares(baseline, current, bins);
  let statistic = 0;
  if (w) {
    for (let i = 0; i < b.length; i++) {
      const bi = Math.max(b[i], epsilon);
      const wi = Math.max(w[i], epsilon);
      statistic += (wi - bi) * Math.log(wi / bi);
    }
  }
  const level = !w ? 'ok' : statistic > alert ? 'alert' : statistic > warn ? 'warn' : 'ok';
  // Sampling noise alone gives two samples of one distribution a PSI of about
  // χ²(k − 1)·(1/n + 1/m) (PSI ≈ Σ (w − b)²/b, and each (w − b)² has variance b(1 − b)(1/n + 1/m)):
  // 0.2 on average for 10 bins and 50 rows, so the alert level alone flags most small windows.
  // The bar is the alert level plus that noise at its 99th percentile; `level` keeps the plain
  // conventional reading.
  let k = 0;
  if (w) for (let i = 0; i < b.length; i++) if (b[i] > 0 || w[i] > 0) k++;
  const scale = 1 / Math.max(1, current.count) + 1 / Math.max(1, baseline.count);
  const noise = w && k > 1 ? chiSquareCritical(0.01, k - 1) * scale : 0;
  return result('psi', w ? statistic : 0, alert + noise, baseline, current, { level, expected: w && k > 1 ? (k - 1) * scale : 0 });
}

export interface JensenShannonOptions {
  bins?: number;
  threshold?: number;
}

/**
 * Jensen-Shannon distance √JSD (natural log) between the binned baseline and window, or
 * between two categorical sketches (monitored values plus "other"). The threshold is raised by
 * the divergence sampling noise alone would give (see below), so small windows over many
 * categories are not flagged for noise.
 */
export function jensenShannon(
  baseline: NumericSketch | CategoricalSketch,
  current: NumericSketch | CategoricalSketch,
  { bins = 10, threshold = 0.1 }: JensenShannonOptions = {},
): DriftResult {
  let b: Float64Array;
  let w: Float64Array | undefined;
  if (baseline.kind === 'categorical' || current.kind === 'categorical') {
    if (!(baseline.kind === 'categorical' && current.kind === 'categorical')) {
      throw new TypeError('jensenShannon needs two categorical sketches or two numeric sketches');
    }
    const [bc, wc] = alignCategories(baseline, current);
    b = normalise(bc);
    w = current.count > 0 ? normalise(wc) : undefined;
  } else {
    [b, w] = binShares(baseline, current, bins);
  }
  let jsd = 0;
  if (w) {
    for (let i = 0; i < b.length; i++) {
      const m = (b[i] + w[i]) / 2;
      if (b[i] > 0) jsd += 0.5 * b[i] * Math.log(b[i] / m);
      if (w[i] > 0) jsd += 0.5 * w[i] * Math.log(w[i] / m);
    }
  }
  // Sampling noise alone gives two samples of one distribution a JS divergence of about
  // (k − 1)/8 · (1/n + 1/m) (natural log; k categories or bins with mass), which for many
  // categories and a small window exceeds the threshold (0.22 for 200 airports and 500 rows).
  // So the threshold applies to what lies beyond that noise: the statistic stays the plain
  // distance, comparable with other tools, and the bar rises to √(threshold² + 2·noise).
  let k = 0;
  if (w) for (let i = 0; i < b.length; i++) if (b[i] > 0 || w[i] > 0) k++;
  const noise = w && k > 1 ? ((k - 1) / 8) * (1 / Math.max(1, current.count) + 1 / Math.max(1, baseline.count)) : 0;
  return result('jensen_shannon', Math.sqrt(Math.max(0, jsd)), Math.sqrt(threshold * threshold + 2 * noise), baseline, current, {
    expected: Math.sqrt(noise),
  });
}

/** The mean of the Kolmogorov distribution (of √nₑ·D for two samples of one continuous distribution): √(π/2)·ln 2. */
const KOLMOGOROV_MEAN = Math.sqrt(Math.PI / 2) * Math.LN2;

export interface KsOptions {
  /** Significance level of the two-sample test. Default 0.05. */
  alpha?: number;
  /** Smallest D that counts as drift however large n is. Default 0.1. */
  minEffect?: number;
}

/**
 * Two-sample Kolmogorov-Smirnov statistic D = sup |F_b − F_w| from the digests' CDFs,
 * evaluated at every centroid and at both ends of each (where the sup of two piecewise
 * linear CDFs lies); exactly when both digests are exact (few distinct values: TDigest.exact),
 * which is also the only case with a `pValue`. Otherwise within about half the largest
 * centroid's share of each digest, π/(4δ) ≈ 0.008 at δ = 100 (docs/DESIGN.md, measured in
 * bench/drift.ts). Drifted when D exceeds both the critical value
 * c(α)·√((n + m)/(n·m)), c(α) = √(−ln(α/2)/2), and `minEffect`.
 */
export function ks(baseline: TDigest, current: TDigest, { alpha = 0.05, minEffect = 0.1 }: KsOptions = {}): DriftResult {
  const n = baseline.count;
  const m = current.count;
  if (n === 0 || m === 0) return result('ks', 0, Infinity, baseline, current, { pValue: 1 });
  const exact = baseline.exact && current.exact;
  let statistic = 0;
  if (exact) statistic = exactKs(baseline, current);
  else {
    const points: number[] = [baseline.min, baseline.max, current.min, current.max];
    for (const d of [baseline, current]) for (const x of d.centroids().means) points.push(x);
    for (const x of points) {
      const diff = Math.abs(baseline.cdf(x) - current.cdf(x));
      if (diff > statistic) statistic = diff;
    }
  }
  const ne = (n * m) / (n + m);
  const critical = Math.sqrt(-Math.log(alpha / 2) / 2) / Math.sqrt(ne);
  const sqrtNe = Math.sqrt(ne);
  // A p-value only for the exact statistic: from a sketched one it can be off by far more than its own scale.
  const pValue = exact ? kolmogorovSurvival((sqrtNe + 0.12 + 0.11 / sqrtNe) * statistic) : undefined;
  // The mean of the Kolmogorov distribution, √(π/2)·ln 2, over √nₑ (less on data with ties).
  const expected = KOLMOGOROV_MEAN / sqrtNe;
  return result('ks', statistic, Math.max(critical, minEffect), baseline, current, pValue === undefined ? { expected } : { pValue, expected });
}

/** The exact KS statistic of two exact digests: the largest gap between their distribution functions (≤ x) over both supports. */
function exactKs(a: TDigest, b: TDigest): number {
  const ca = a.centroids();
  const cb = b.centroids();
  const ta = a.count;
  const tb = b.count;
  let i = 0;
  let j = 0;
  let fa = 0;
  let fb = 0;
  let d = 0;
  while (i < ca.means.length || j < cb.means.length) {
    const x = j >= cb.means.length || (i < ca.means.length && ca.means[i] <= cb.means[j]) ? ca.means[i] : cb.means[j];
    if (i < ca.means.length && ca.means[i] === x) fa += ca.weights[i++];
    if (j < cb.means.length && cb.means[j] === x) fb += cb.weights[j++];
    d = Math.max(d, Math.abs(fa / ta - fb / tb));
  }
  return d;
}

export interface WassersteinOptions {
  threshold?: number;
  /** Quantile grid points for the integral. Default 1000. */
  gridSize?: number;
}

/**
 * Wasserstein-1 distance ∫₀¹ |Q_b(q) − Q_w(q)| dq (midpoint rule on the quantile functions),
 * divided by the baseline's standard deviation (as Evidently normalises it; the deviation is
 * estimated from the centroids, see digestStd). A constant baseline gives 0 when the window
 * equals it and +Infinity otherwise.
 */
export function wasserstein(baseline: TDigest, current: TDigest, { threshold = 0.1, gridSize = 1000 }: WassersteinOptions = {}): DriftResult {
  if (baseline.count === 0 || current.count === 0) return result('wasserstein', 0, threshold, baseline, current);
  // Work in units of the largest magnitude either side has seen, so that nothing overflows
  // for data near ±1.8e308 (the statistic is a ratio and does not depend on the unit).
  const unit = Math.max(Math.abs(baseline.min), Math.abs(baseline.max), Math.abs(current.min), Math.abs(current.max)) || 1;
  let w1 = 0;
  for (let i = 0; i < gridSize; i++) {
    const q = (i + 0.5) / gridSize;
    w1 += Math.abs(baseline.quantile(q) / unit - current.quantile(q) / unit);
  }
  w1 /= gridSize;
  const std = digestStd(baseline, unit);
  const statistic = std > 0 ? w1 / std : w1 === 0 ? 0 : Infinity;
  // Two samples of one distribution F are apart by W1 ≈ √(2/π)·J·√(1/n + 1/m) on average,
  // J = ∫ √(F(1 − F)) dx (the mean of ∫|B(F(x))|dx for a Brownian bridge B): 0.07 baseline
  // deviations for 100 rows of a normal. The bar rises to √(threshold² + (3·noise)²), so only
  // what lies beyond three times that noise counts.
  let j = 0;
  let prev = baseline.quantile(0.5 / gridSize) / unit;
  for (let i = 1; i < gridSize; i++) {
    const q = (i + 0.5) / gridSize;
    const x = baseline.quantile(q) / unit;
    const mid = i / gridSize;
    j += Math.sqrt(mid * (1 - mid)) * (x - prev);
    prev = x;
  }
  const noise = std > 0 ? Math.sqrt(2 / Math.PI) * (j / std) * Math.sqrt(1 / current.count + 1 / baseline.count) : 0;
  return result('wasserstein', statistic, Math.sqrt(threshold * threshold + 9 * noise * noise), baseline, current, { expected: noise });
}

/**
 * Standard deviation of the digest's distribution in units of `unit`: the spread of the
 * centroid means plus, for each centroid of weight > 1, the variance of a uniform spread over
 * the span halfway to its neighbours (the digest's own interpolation model). Exactly 0 when
 * min === max.
 */
function digestStd(d: TDigest, unit: number): number {
  if (d.min === d.max) return 0;
  const { means, weights } = d.centroids();
  const n = means.length;
  let total = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) {
    total += weights[i];
    mean += weights[i] * (means[i] / unit);
  }
  mean /= total;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const m = means[i] / unit;
    let within = 0;
    if (weights[i] > 1) {
      const lo = i > 0 ? (means[i - 1] / unit + m) / 2 : d.min / unit;
      const hi = i < n - 1 ? (m + means[i + 1] / unit) / 2 : d.max / unit;
      within = (hi - lo) ** 2 / 12;
    }
    v += weights[i] * ((m - mean) ** 2 + within);
  }
  return Math.sqrt(v / total);
}

export interface ChiSquareOptions {
  /**
   * Significance level. Default 0.01: live categorical traffic varies from day to day beyond
   * multinomial sampling (overdispersion), and at 0.05 one window in twenty of unchanged flights
   * flags its airports however the reference is matched (bench/drift.ts).
   */
  alpha?: number;
  /**
   * Smallest effect that counts as drift however large the window is: Cohen's w, the root of
   * Σ (w − b)²/b over the window's and the baseline's shares. Default 0.1 ("small").
   */
  minEffect?: number;
  /** Fewest rows the window is expected to have in a cell; rarer cells are pooled (Cochran's rule). Default 5. */
  minExpected?: number;
}

/**
 * Pearson chi-square test of homogeneity on the 2 × k table of baseline and window counts
 * (monitored values plus "other"; values absent from both dropped).
 *
 * Cells where the window is expected to have fewer than `minExpected` rows are pooled, smallest
 * first, until the pool too reaches it: with a few hundred rows over hundreds of airports most
 * cells expect less than one row, and the asymptotic test then flags one window in five of an
 * unchanged distribution (scipy's does, measured in bench/drift.ts). A category new to the
 * window lands in the pool, and still moves it.
 *
 * Drifted when χ² exceeds both the critical value at `alpha` (df = cells − 1) and the effect
 * floor minEffect²·nₑ, nₑ = n·m/(n + m): χ² ≈ nₑ·w², so that is Cohen's w ≥ minEffect. (The floor
 * scales with the window, not with the baseline: a million-row baseline does not silence a
 * window of 200.)
 */
export function chiSquare(
  baseline: CategoricalSketch,
  current: CategoricalSketch,
  { alpha = 0.01, minEffect = 0.1, minExpected = 5 }: ChiSquareOptions = {},
): DriftResult {
  const nb = baseline.count;
  const nw = current.count;
  if (nb === 0 || nw === 0) return result('chi_square', 0, Infinity, baseline, current, { pValue: 1 });
  const [bc, wc] = alignCategories(baseline, current);
  const total = nb + nw;
  // Cells by the window's expected count, ascending; the rarest pooled until the pool and every cell left expect minExpected.
  const cells: number[] = [];
  for (let i = 0; i < bc.length; i++) if (bc[i] + wc[i] > 0) cells.push(i);
  cells.sort((a, b) => bc[a] + wc[a] - (bc[b] + wc[b]));
  const expectedW = (col: number) => (col * nw) / total;
  let statistic = 0;
  let k = 0;
  const add = (b: number, w: number) => {
    const col = b + w;
    const eb = (col * nb) / total;
    const ew = expectedW(col);
    statistic += (b - eb) ** 2 / eb + (w - ew) ** 2 / ew;
    k++;
  };
  let poolB = 0;
  let poolW = 0;
  let i = 0;
  while (i < cells.length && (expectedW(poolB + poolW) < minExpected || expectedW(bc[cells[i]] + wc[cells[i]]) < minExpected)) {
    poolB += bc[cells[i]];
    poolW += wc[cells[i]];
    i++;
  }
  if (poolB + poolW > 0) add(poolB, poolW);
  for (; i < cells.length; i++) add(bc[cells[i]], wc[cells[i]]);
  if (k < 2) return result('chi_square', 0, Infinity, baseline, current, { pValue: 1 });
  const df = k - 1;
  const threshold = Math.max(chiSquareCritical(alpha, df), minEffect * minEffect * ((nb * nw) / total));
  return result('chi_square', statistic, threshold, baseline, current, { pValue: chiSquareSurvival(statistic, df), expected: df });
}

export interface OutOfRangeOptions {
  /** Share of the window outside the baseline's [min, max] that counts as drift. Default 0.02. */
  threshold?: number;
  /** Fewest values outside that count, however few values the compared sketch holds (default 3). */
  minValues?: number;
}

/**
 * Share of the window's values outside the baseline's observed range [min, max]: values the
 * model never saw in training. Values equal to an end are inside; when the window reaches
 * past an end, its mass there is read from the window's mid-distribution function, so values
 * exactly at the end count by half (an overestimate only where the window also has mass at
 * the end). Drifted above `threshold` and at least `minValues` values.
 */
export function outOfRange(baseline: TDigest, current: TDigest, { threshold = 0.02, minValues = 3 }: OutOfRangeOptions = {}): DriftResult {
  // Infinities are outside any finite range (NaN is not a value and is left out).
  const finite = current.count;
  const n = finite + current.posInfCount + current.negInfCount;
  if (baseline.count === 0 || n === 0) return result('out_of_range', 0, threshold, baseline, current);
  let outside = (current.posInfCount + current.negInfCount) / n;
  if (finite > 0) {
    const share = finite / n;
    if (current.min < baseline.min) outside += share * current.cdf(baseline.min);
    if (current.max > baseline.max) outside += share * (1 - current.cdf(baseline.max));
  }
  // A window of the reference's own distribution has 2/(m + 1) of its values outside the range
  // of m reference values on average: negligible against a training set, not against a small
  // moving reference, so twice that is added to the bar.
  return result('out_of_range', outside, Math.max(threshold, minValues / n) + 4 / (baseline.count + 1), baseline, current, {
    expected: 2 / (baseline.count + 1),
  });
}

/**
 * Share of the window's values its own times cannot have: for a feature that is a reading of the
 * event time (the hour, weekday or month of it, core/manifest.ts eventTime), `possible` holds the
 * readings of every instant of the window's span on the event clock (core/clock.ts
 * possibleReadings), and a value outside it says the feature and the clock disagree upstream (a
 * time-zone bug, a weekday off by one), however short the window and whatever the reference.
 * Needs an exact digest (every value a point, as a calendar feature's are); undefined otherwise.
 * Drifted past `threshold` of the window and at least `minValues` values.
 */
export function offClock(
  current: TDigest,
  possible: ReadonlySet<number>,
  { threshold = 0.02, minValues = 3 }: OutOfRangeOptions = {},
): DriftResult | undefined {
  if (!current.exact) return undefined;
  const n = current.count + current.posInfCount + current.negInfCount;
  const empty = { count: 0 };
  if (n === 0) return result('off_clock', 0, threshold, empty, current, { expected: 0 });
  const { means, weights } = current.centroids();
  let off = current.posInfCount + current.negInfCount;
  for (let i = 0; i < means.length; i++) if (!possible.has(means[i])) off += weights[i];
  // Noise alone puts no value off the clock: the bar is the plain one.
  return result('off_clock', off / n, Math.max(threshold, minValues / n), empty, current, { expected: 0 });
}

export interface CompareOptions {
  /**
   * A calendar feature (month, weekday, hour): a window shorter than its cycle legitimately
   * differs from the training period's distribution, so only values outside the training
   * range count (out_of_range).
   */
  seasonal?: boolean;
  /**
   * Include out_of_range for numeric sketches (default true). Off where the reference is not a
   * population the window should stay within, e.g. one model version's outputs against another's.
   */
  range?: boolean;
}

/** The statistics that apply to a pair of sketches of one kind, by method. */
export function compareSketches(
  baseline: TDigest | Histogram | CategoricalSketch,
  current: TDigest | Histogram | CategoricalSketch,
  { seasonal = false, range = true }: CompareOptions = {},
): Partial<Record<DriftMethod, DriftResult>> {
  if (baseline.kind === 'tdigest' && current.kind === 'tdigest') {
    if (seasonal) return { out_of_range: outOfRange(baseline, current) };
    const shape = {
      psi: psi(baseline, current),
      ks: ks(baseline, current),
      wasserstein: wasserstein(baseline, current),
      jensen_shannon: jensenShannon(baseline, current),
    };
    return range ? { ...shape, out_of_range: outOfRange(baseline, current) } : shape;
  }
  if (baseline.kind === 'histogram' && current.kind === 'histogram') {
    return { psi: psi(baseline, current), jensen_shannon: jensenShannon(baseline, current) };
  }
  if (baseline.kind === 'categorical' && current.kind === 'categorical') {
    return { jensen_shannon: jensenShannon(baseline, current), chi_square: chiSquare(baseline, current) };
  }
  throw new TypeError(`cannot compare a ${KIND_NAMES[baseline.kind]} baseline with a ${KIND_NAMES[current.kind]} window`);
}

const KIND_NAMES: Record<SketchKind, string> = { tdigest: 't-digest', histogram: 'histogram', categorical: 'categorical' };

function result(
  method: DriftMethod,
  statistic: number,
  threshold: number,
  baseline: { count: number },
  current: { count: number },
  extra: Pick<DriftResult, 'level' | 'pValue' | 'expected'> = {},
): DriftResult {
  return { method, statistic, threshold, drifted: statistic > threshold, n: current.count, nBaseline: baseline.count, ...extra };
}

/**
 * The share of a digest's values ≤ x: exact (every value equal to x counted) for an exact digest,
 * whose values are points; the digest's interpolated cdf otherwise, where values are spread.
 */
function atMost(d: TDigest): (x: number) => number {
  if (!d.exact) return (x) => d.cdf(x);
  const { means, weights } = d.centroids();
  let total = 0;
  for (const w of weights) total += w;
  return (x) => {
    let below = 0;
    for (let i = 0; i < means.length && means[i] <= x; i++) below += weights[i];
    return total > 0 ? below / total : Number.NaN;
  };
}

/**
 * Baseline and window shares on common bins; the window's are undefined when it is empty.
 * Digest bins are (−∞, e1], (e1, e2], …, (e_{k−1}, ∞) at the baseline's quantiles i/bins, each
 * value wholly in one bin (the standard binned PSI, as numpy's histogram bins it up to the side
 * the edge falls on): on integer data an edge at a value holds all of it, not half in each
 * neighbour.
 */
function binShares(baseline: NumericSketch, current: NumericSketch, bins: number): [Float64Array, Float64Array | undefined] {
  if (baseline.kind === 'histogram' && current.kind === 'histogram') {
    if (baseline.edges.length !== current.edges.length || baseline.edges.some((e, i) => e !== current.edges[i])) {
      throw new RangeError('histograms compared for drift must have the same edges');
    }
    // An empty baseline is no reference: nothing can be said to have drifted from it.
    if (baseline.count === 0) return [new Float64Array(1).fill(1), current.count > 0 ? new Float64Array(1).fill(1) : undefined];
    return [normalise(baseline.counts()), current.count > 0 ? normalise(current.counts()) : undefined];
  }
  if (!(baseline.kind === 'tdigest' && current.kind === 'tdigest')) {
    throw new TypeError('binned statistics need two t-digests or two histograms');
  }
  if (!(Number.isInteger(bins) && bins >= 2)) throw new RangeError(`bins must be an integer >= 2, got ${bins}`);
  if (baseline.count === 0) return [new Float64Array(1).fill(1), current.count > 0 ? new Float64Array(1).fill(1) : undefined];
  const edges: number[] = [];
  for (let i = 1; i < bins; i++) {
    const e = baseline.quantile(i / bins);
    if (edges.length === 0 || e > edges[edges.length - 1]) edges.push(e);
  }
  const shares = (d: TDigest): Float64Array => {
    const s = new Float64Array(edges.length + 1);
    const below = atMost(d);
    let prev = 0;
    for (let i = 0; i < edges.length; i++) {
      const c = below(edges[i]);
      s[i] = Math.max(0, c - prev);
      prev = Math.max(prev, c);
    }
    s[edges.length] = Math.max(0, 1 - prev);
    return s;
  };
  return [shares(baseline), current.count > 0 ? shares(current) : undefined];
}

function normalise(counts: Float64Array): Float64Array {
  let total = 0;
  for (const c of counts) total += c;
  return total > 0 ? counts.map((c) => c / total) : counts;
}

/**
 * Counts of both sketches over common categories, with "other" last.
 *
 * Exact sketches are compared value by value. Past capacity, the counts of rarely seen
 * monitored values are mostly eviction error, and which rare values happen to be monitored
 * depends on the order of the stream, not on the distribution, so comparing them value by
 * value flags identical distributions. So a value gets its own category only when it is
 * reliable in one of the sketches (exact there, or with a guaranteed count of at least twice
 * that sketch's absentBound); each sketch's estimate of it is the midpoint of its bounds
 * ([count − error, count] when monitored, [0, absentBound] when not), and everything else is
 * "other" = total − the estimates.
 */
function alignCategories(baseline: CategoricalSketch, current: CategoricalSketch): [Float64Array, Float64Array] {
  const reliable = (s: CategoricalSketch) =>
    s
      .top()
      .filter((c) => (c.error === 0 ? s.absentBound === 0 || c.count >= 2 * s.absentBound : c.count - c.error >= 2 * s.absentBound))
      .map((c) => c.value);
  const keys = [...new Set([...reliable(baseline), ...reliable(current)])].sort();
  const estimates = (s: CategoricalSketch): Float64Array => {
    const out = new Float64Array(keys.length + 1);
    let attributed = 0;
    keys.forEach((k, i) => {
      const { count, error } = s.estimate(k);
      out[i] = Math.max(0, count - error / 2);
      attributed += out[i];
    });
    out[keys.length] = Math.max(0, s.count - attributed);
    return out;
  };
  return [estimates(baseline), estimates(current)];
}
