/**
 * Exact reference statistics on raw arrays, for checking the sketch-based drift statistics
 * in core/drift.ts. Deliberately naive and direct (sort, count, sum): these are the
 * definitions, not estimates. Platform-free, so they run in Node and in workerd.
 */

/** A sorted copy of `values`. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/** Share of `sortedValues` that is <= x (the right-continuous empirical CDF). */
export function ecdf(sortedValues: Float64Array, x: number): number {
  let lo = 0;
  let hi = sortedValues.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sortedValues[m] <= x) lo = m + 1;
    else hi = m;
  }
  return lo / sortedValues.length;
}

/** Exact q-quantile by linear interpolation between order statistics (Hyndman-Fan type 7). */
export function exactQuantile(sortedValues: Float64Array, q: number): number {
  const h = (sortedValues.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sortedValues.length - 1);
  return sortedValues[lo] + (h - lo) * (sortedValues[hi] - sortedValues[lo]);
}

/** Exact baseline quantiles 1/bins, …, (bins−1)/bins, repeats removed (drift.ts's digest bins). */
export function quantileEdges(sortedBaseline: Float64Array, bins = 10): number[] {
  const edges: number[] = [];
  for (let i = 1; i < bins; i++) {
    const e = exactQuantile(sortedBaseline, i / bins);
    if (edges.length === 0 || e > edges[edges.length - 1]) edges.push(e);
  }
  return edges;
}

/**
 * Shares of `values` in the edges.length + 1 bins. 'right': (−∞, e0], (e0, e1], …, (e_last, ∞),
 * the digest convention of drift.ts. 'left': (−∞, e0), [e0, e1), …, [e_last, ∞), the Histogram
 * convention.
 */
export function binShares(values: ArrayLike<number>, edges: ArrayLike<number>, closed: 'right' | 'left'): Float64Array {
  const counts = new Float64Array(edges.length + 1);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (closed === 'right' ? x > edges[m] : x >= edges[m]) lo = m + 1;
      else hi = m;
    }
    counts[lo]++;
  }
  return counts.map((c) => c / values.length);
}

/** PSI Σ (w − b)·ln(w / b) with both shares floored at `epsilon` (Evidently's convention). */
export function psiFromShares(b: ArrayLike<number>, w: ArrayLike<number>, epsilon = 1e-4): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    const bi = Math.max(b[i], epsilon);
    const wi = Math.max(w[i], epsilon);
    s += (wi - bi) * Math.log(wi / bi);
  }
  return s;
}

/** Jensen-Shannon distance √JSD, natural log, of two distributions given as counts or shares. */
export function jsDistance(b: ArrayLike<number>, w: ArrayLike<number>): number {
  let tb = 0;
  let tw = 0;
  for (let i = 0; i < b.length; i++) {
    tb += b[i];
    tw += w[i];
  }
  let jsd = 0;
  for (let i = 0; i < b.length; i++) {
    const p = b[i] / tb;
    const q = w[i] / tw;
    const m = (p + q) / 2;
    if (p > 0) jsd += 0.5 * p * Math.log(p / m);
    if (q > 0) jsd += 0.5 * q * Math.log(q / m);
  }
  return Math.sqrt(Math.max(0, jsd));
}

/** Two-sample KS statistic sup |F1 − F2| over the pooled sorted data (scipy's ks_2samp D). */
export function ksStatistic(sortedA: Float64Array, sortedB: Float64Array): number {
  const n = sortedA.length;
  const m = sortedB.length;
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n && j < m) {
    const x = Math.min(sortedA[i], sortedB[j]);
    while (i < n && sortedA[i] === x) i++;
    while (j < m && sortedB[j] === x) j++;
    d = Math.max(d, Math.abs(i / n - j / m));
  }
  return d;
}

/** Population standard deviation (two-pass). */
export function populationStd(values: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < values.length; i++) mean += values[i];
  mean /= values.length;
  let v = 0;
  for (let i = 0; i < values.length; i++) v += (values[i] - mean) ** 2;
  return Math.sqrt(v / values.length);
}

/** Wasserstein-1 distance ∫ |F1(x) − F2(x)| dx between two empirical distributions. */
export function wasserstein1(sortedA: Float64Array, sortedB: Float64Array): number {
  const n = sortedA.length;
  const m = sortedB.length;
  let i = 0;
  let j = 0;
  let prev = Math.min(sortedA[0], sortedB[0]);
  let total = 0;
  while (i < n || j < m) {
    const x = j >= m || (i < n && sortedA[i] <= sortedB[j]) ? sortedA[i] : sortedB[j];
    total += Math.abs(i / n - j / m) * (x - prev);
    prev = x;
    while (i < n && sortedA[i] === x) i++;
    while (j < m && sortedB[j] === x) j++;
  }
  return total;
}

/** W1 divided by the baseline's population standard deviation (Evidently's normalisation). */
export function normalisedWasserstein(sortedBaseline: Float64Array, sortedWindow: Float64Array): number {
  return wasserstein1(sortedBaseline, sortedWindow) / populationStd(sortedBaseline);
}

/** Counts of each string. */
export function countValues(values: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

/** Counts of two tallies over the sorted union of their keys. */
export function alignCounts(b: Map<string, number>, w: Map<string, number>): [number[], number[]] {
  const keys = [...new Set([...b.keys(), ...w.keys()])].sort();
  return [keys.map((k) => b.get(k) ?? 0), keys.map((k) => w.get(k) ?? 0)];
}

/** Pearson chi-square statistic of homogeneity on the 2 × k table, columns empty on both sides dropped. */
export function chiSquareStatistic(b: ArrayLike<number>, w: ArrayLike<number>): { statistic: number; df: number } {
  let nb = 0;
  let nw = 0;
  for (let i = 0; i < b.length; i++) {
    nb += b[i];
    nw += w[i];
  }
  const total = nb + nw;
  let statistic = 0;
  let k = 0;
  for (let i = 0; i < b.length; i++) {
    const col = b[i] + w[i];
    if (col === 0) continue;
    k++;
    const eb = (col * nb) / total;
    const ew = (col * nw) / total;
    statistic += (b[i] - eb) ** 2 / eb + (w[i] - ew) ** 2 / ew;
  }
  return { statistic, df: k - 1 };
}
