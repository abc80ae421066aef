/**
 * Seeded data for sketch tests and benchmarks: the same seed gives the same numbers on every
 * platform (mulberry32, then Box-Muller for normals).
 */
// The models' seeded generators (mulberry32, Box-Muller), shared so that one implementation
// serves builds, tests and benchmarks.
import { gaussian, rng } from '../../models/lib/rng.ts';

export { rng };
export const normal = gaussian;

export type Shape = 'uniform' | 'exponential' | 'lognormal' | 'bimodal' | 'sorted' | 'reversed' | 'constant' | 'duplicates' | 'negative' | 'mixed-sign';

export const SMOOTH_SHAPES: Shape[] = ['uniform', 'exponential', 'lognormal', 'bimodal', 'negative', 'mixed-sign'];
export const ALL_SHAPES: Shape[] = [...SMOOTH_SHAPES, 'sorted', 'reversed', 'constant', 'duplicates'];

/** A Poisson draw of `mean` (normal approximation past 30, rounded: ties stay). */
export function poisson(r: () => number, mean: number): number {
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(r)));
  let k = 0;
  for (let p = Math.exp(-mean), s = p, u = r(); u > s; s += p) p *= mean / ++k;
  return k;
}

/**
 * Integer data with ties, as discrete features are (counts, ratings, small codes): Poisson-like,
 * zero-inflated, small codes, and a wide Poisson (~450 distinct values: past a digest's exact mode).
 */
export const INTEGER_SHAPES: [string, (r: () => number) => number][] = [
  ['poisson(4)', (r) => poisson(r, 4)],
  ['zero-inflated', (r) => (r() < 0.7 ? 0 : 1 + poisson(r, 6))],
  ['small codes 0-20', (r) => Math.floor(r() ** 2 * 21)],
  ['wide poisson(5000)', (r) => poisson(r, 5000)],
];

/** n values of the given shape from `seed`. */
export function generate(shape: Shape, n: number, seed = 1): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  switch (shape) {
    case 'uniform':
      for (let i = 0; i < n; i++) out[i] = r();
      break;
    case 'exponential':
      for (let i = 0; i < n; i++) out[i] = -Math.log(1 - r());
      break;
    case 'lognormal':
      for (let i = 0; i < n; i++) out[i] = Math.exp(normal(r));
      break;
    case 'bimodal':
      for (let i = 0; i < n; i++) out[i] = (r() < 0.3 ? -5 : 5) + normal(r);
      break;
    case 'sorted':
      for (let i = 0; i < n; i++) out[i] = normal(r);
      out.sort();
      break;
    case 'reversed':
      for (let i = 0; i < n; i++) out[i] = normal(r);
      out.sort().reverse();
      break;
    case 'constant':
      out.fill(42.5);
      break;
    case 'duplicates':
      // Heavy ties: 20 distinct values, Zipf-like frequencies.
      for (let i = 0; i < n; i++) out[i] = Math.floor(20 * r() ** 3);
      break;
    case 'negative':
      for (let i = 0; i < n; i++) out[i] = -1000 - 50 * Math.log(1 - r());
      break;
    case 'mixed-sign':
      for (let i = 0; i < n; i++) out[i] = normal(r) * 10 ** (3 * r() - 1);
      break;
  }
  return out;
}

/** Exact rank error of `estimate` as the q-quantile of `sorted`: 0 inside its tie range. */
export function rankError(sorted: Float64Array, q: number, estimate: number): number {
  const n = sorted.length;
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sorted[m] < estimate) lo = m + 1;
    else hi = m;
  }
  const below = lo;
  hi = n;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sorted[m] <= estimate) lo = m + 1;
    else hi = m;
  }
  const atOrBelow = lo;
  const a = below / n;
  const b = atOrBelow / n;
  return q < a ? a - q : q > b ? q - b : 0;
}

/** Exact mid-distribution function: share below x plus half the share equal to x. */
export function midCdf(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sorted[m] < x) lo = m + 1;
    else hi = m;
  }
  const below = lo;
  hi = sorted.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sorted[m] <= x) lo = m + 1;
    else hi = m;
  }
  return (below + (lo - below) / 2) / sorted.length;
}

/** n draws from the categories `names` with relative `weights` (binary search on the CDF). */
export function categories(n: number, seed: number, names: readonly string[], weights: readonly number[]): string[] {
  const r = rng(seed);
  const total = weights.reduce((a, b) => a + b, 0);
  const cum: number[] = [];
  let acc = 0;
  for (const w of weights) cum.push((acc += w / total));
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const u = r();
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (cum[m] <= u) lo = m + 1;
      else hi = m;
    }
    out.push(names[lo]);
  }
  return out;
}
