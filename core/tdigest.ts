/**
 * Dunning's merging t-digest: incoming values collect in a buffer; when it fills, the buffer
 * is sorted and swept together with the existing (sorted) centroids, and neighbours are merged
 * while the merged centroid stays within one unit of the scale function k. There is no tree.
 *
 * Reference: T. Dunning and O. Ertl, "Computing extremely accurate quantiles using t-digests"
 * (2019), section 2.1 (merging digest) and section 2.3 (scale functions); the quantile and
 * cdf interpolation (singleton-aware, min/max anchored) follows the reference Java
 * MergingDigest.
 *
 * Scale: a centroid at quantile q may hold at most min(π·√(q(1−q)), 30·q(1−q), 1)/δ of the
 * total weight (see maxShare): Dunning's k1 at 2δ, so that "compression" means about as many
 * centroids as the Java MergingDigest keeps, with k2-shaped tails below q ≈ 0.011 and above
 * 0.989, and the centre capped at 1/δ. (Plain k1 at δ = 100 left 1e-4 to 8e-4 of rank error
 * at q = 0.001 and up to 1.2e-3 near the median.)
 *
 * Error bound: an estimate lies between two adjacent centroids, so the worst-case rank error
 * of `quantile(q)` and `cdf(x)` near q is twice that share: 0.02 in the centre and 6e-4 at
 * q = 0.001 for δ = 100. The estimate interpolates inside the centroids, so on continuous data
 * the error is typically 10–100x smaller: at δ = 100 on 1e6 values of the smooth shapes in the
 * test suite it stays under 1e-4 at q = 0.001 and 0.999 and under 1e-3 elsewhere (asserted in
 * tdigest.test.ts; measured figures in bench/README.md). After a merge pass a digest holds
 * about 1.5δ + 7·ln(n/δ) centroids: ~1.25 KB at δ = 100 and n = 1e6 with float32 means.
 *
 * Integer data: a digest remembers whether every value it saw was an integer (`integers`, bytes
 * flag 8) and then answers integer quantiles; below ⌈δ⌉ distinct values it is exact anyway.
 *
 * Non-finite input: NaN, +Infinity and −Infinity are counted apart (`nanCount`,
 * `posInfCount`, `negInfCount`) and never enter the centroids; `count`, `quantile` and `cdf`
 * describe the finite values only.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { frameSketch, kindMismatch, type Sketch, type SketchDescription, type SketchEncodeOptions } from './sketch.ts';
import { sortFloat64 } from './sort.ts';

export interface TDigestOptions {
  /** δ: larger keeps more centroids, more accurately. 10 ≤ δ ≤ 10000. Default 100. */
  compression?: number;
}

/** How `toBytes` and `encode` store the means (see SketchEncodeOptions.meanPrecision). */
export type TDigestBytesOptions = SketchEncodeOptions;

const FORMAT = 1;
const FLAG_MEANS_F64 = 1;
const FLAG_WEIGHTS_F64 = 2;
/** Every centroid is one distinct value with its exact count (see `exact`). */
const FLAG_EXACT = 4;
/** Every finite value the digest has seen is an integer (see `integers`). */
const FLAG_INTEGERS = 8;
const MIN_COMPRESSION = 10;
const MAX_COMPRESSION = 10_000;

/**
 * Largest share of the total weight that one centroid at quantile q may hold:
 * min(π·√(q(1−q)), 30·q(1−q), 1) / δ. The first term is 1/k'(q) for k(q) = (δ/π)·asin(2q − 1),
 * Dunning's k1 at twice the compression; the second (the k2 shape) takes over below
 * q ≈ 0.011 and above 0.989 and keeps the extreme tails three times finer; the cap of 1/δ
 * keeps the centre (0.11 < q < 0.89) 1.6x finer than k1 there.
 */
function maxShare(q: number, compression: number): number {
  const v = q * (1 - q);
  if (!(v > 0)) return 0;
  return Math.min(Math.PI * Math.sqrt(v), 30 * v, 1) / compression;
}

function weightedAverage(x1: number, w1: number, x2: number, w2: number): number {
  // Ordered so that the result stays between x1 and x2 despite rounding.
  if (x1 > x2) return weightedAverage(x2, w2, x1, w1);
  let x = (x1 * w1 + x2 * w2) / (w1 + w2);
  // Near ±1.8e308 the products overflow; the weights' shares cannot.
  if (!Number.isFinite(x)) x = x1 * (w1 / (w1 + w2)) + x2 * (w2 / (w1 + w2));
  return Math.max(x1, Math.min(x, x2));
}

/** a + (b − a)·t for t in [0, 1], also when b − a overflows (a and b of opposite sign near ±1.8e308). */
function lerp(a: number, b: number, t: number): number {
  const x = a + (b - a) * t;
  return Number.isFinite(x) ? x : a * (1 - t) + b * t;
}

export class TDigest implements Sketch {
  readonly compression: number;

  #means: Float64Array;
  #weights: Float64Array;
  #n = 0;
  /** Total weight of the centroids (not of the buffer). */
  #centroidWeight = 0;

  #buf: Float64Array | undefined;
  #bufW: Float64Array | undefined;
  #bufN = 0;
  /** True while every buffered weight is 1, which allows a plain numeric sort. */
  #bufUnit = true;
  #bufWeight = 0;

  #min = Infinity;
  #max = -Infinity;
  /** True while every centroid is one distinct value with its exact weight (see `exact`). */
  #exact = true;
  /** True while every finite value added is an integer (see `integers`). */
  #integers = true;
  #nan = 0;
  #posInf = 0;
  #negInf = 0;

  constructor({ compression = 100 }: TDigestOptions = {}) {
    if (!(compression >= MIN_COMPRESSION && compression <= MAX_COMPRESSION)) {
      throw new RangeError(`TDigest compression must be in [${MIN_COMPRESSION}, ${MAX_COMPRESSION}], got ${compression}`);
    }
    this.compression = compression;
    // Centroid arrays grow on demand, so that an empty or decoded digest costs only what it
    // holds (a decoder must never allocate much more than its input).
    this.#means = new Float64Array(0);
    this.#weights = new Float64Array(0);
  }

  get kind(): 'tdigest' {
    return 'tdigest';
  }

  /** Total weight of finite values seen. */
  get count(): number {
    return this.#centroidWeight + this.#bufWeight;
  }

  get nanCount(): number {
    return this.#nan;
  }

  get posInfCount(): number {
    return this.#posInf;
  }

  get negInfCount(): number {
    return this.#negInf;
  }

  /** Smallest finite value seen; +Infinity when there is none. */
  get min(): number {
    this.#flush();
    return this.#min;
  }

  /** Largest finite value seen; −Infinity when there is none. */
  get max(): number {
    this.#flush();
    return this.#max;
  }

  /**
   * True while the digest has seen at most ⌈compression⌉ distinct finite values: each centroid
   * is then one value with its exact weight (`centroids()` is the exact distribution, which the
   * drift statistics use), `quantile` is the exact inverse of the distribution (the smallest
   * value whose cumulative share reaches q, no interpolation) and `cdf` the exact
   * mid-distribution function. Past that many it becomes an ordinary t-digest for good; a
   * merge with a digest that is not exact is not exact either.
   */
  get exact(): boolean {
    this.#flush();
    return this.#exact;
  }

  /**
   * True while every finite value the digest has seen (merged ones included) is an integer.
   * `quantile` then answers an integer, as the quantile of integer data is: past exact mode an
   * interpolated estimate between two tie groups is off by the distance to the nearer group's
   * rank interval, and rounding puts it back inside one (on a wide Poisson merged from 50 parts,
   * mid-distribution rank error 1.5e-3 without, within 1e-3 with; core/tdigest.test.ts).
   */
  get integers(): boolean {
    return this.#integers;
  }

  /** Number of centroids after flushing the buffer. */
  get size(): number {
    this.#flush();
    return this.#n;
  }

  add(x: number, weight = 1): this {
    // Fast path: a finite value of weight 1 into a unit-weight buffer with room.
    const buf = this.#buf;
    if (weight === 1 && x - x === 0 && this.#bufUnit && buf !== undefined && this.#bufN < buf.length) {
      if (this.#integers && Math.floor(x) !== x) this.#integers = false;
      buf[this.#bufN++] = x;
      this.#bufWeight++;
      return this;
    }
    return this.#addSlow(x, weight);
  }

  #addSlow(x: number, weight: number): this {
    if (!(weight > 0 && weight < Infinity)) throw new RangeError(`TDigest weight must be finite and > 0, got ${weight}`);
    if (x - x !== 0) {
      this.#countNonFinite(x, weight);
      return this;
    }
    if (this.#integers && Math.floor(x) !== x) this.#integers = false;
    if (this.#buf === undefined) this.#allocBuffer();
    else if (this.#bufN === this.#buf.length) this.#compress();
    if (weight !== 1 && this.#bufUnit) this.#startWeighted();
    if (!this.#bufUnit) this.#bufW![this.#bufN] = weight;
    this.#buf![this.#bufN++] = x;
    this.#bufWeight += weight;
    return this;
  }

  addAll(values: ArrayLike<number>): this {
    if (!this.#bufUnit) {
      for (let i = 0; i < values.length; i++) this.add(values[i]);
      return this;
    }
    let buf = this.#buf ?? this.#allocBuffer();
    let n = this.#bufN;
    let added = 0;
    let integers = this.#integers;
    for (let i = 0; i < values.length; i++) {
      const x = values[i];
      if (x - x !== 0) {
        this.#countNonFinite(x, 1);
        continue;
      }
      if (integers && Math.floor(x) !== x) integers = false;
      if (n === buf.length) {
        this.#bufN = n;
        this.#bufWeight += added;
        added = 0;
        this.#compress();
        buf = this.#buf!;
        n = 0;
      }
      buf[n++] = x;
      added++;
    }
    this.#bufN = n;
    this.#bufWeight += added;
    this.#integers = integers;
    return this;
  }

  /**
   * Adds everything `other` has seen. `other` is not changed, not even flushed. Throws
   * SketchMergeError when it is not a TDigest. Digests of any compression merge (this one's
   * compression stays).
   */
  merge(other: Sketch): this {
    if (!(other instanceof TDigest)) throw kindMismatch('tdigest', other);
    if (other === this) return this.merge(TDigest.fromBytes(this.toBytes({ meanPrecision: 'f64' })));
    this.#nan += other.#nan;
    this.#posInf += other.#posInf;
    this.#negInf += other.#negInf;
    if (other.count === 0) return this;
    if (!other.#exact) this.#exact = false;
    if (!other.#integers) this.#integers = false;
    if (this.#bufN === 0 && other.#bufN === 0) {
      // Both sides are sorted already: one merge pass, no buffer, no sort (the common case
      // when an aggregator folds decoded digests together).
      this.#mergeSorted(other.#means, other.#weights, other.#n, other.#centroidWeight);
      if (other.#min < this.#min) this.#min = other.#min;
      if (other.#max > this.#max) this.#max = other.#max;
      return this;
    }
    this.#pushWeighted(other.#means, other.#weights, other.#n);
    if (other.#bufN > 0) this.#pushWeighted(other.#buf!, other.#bufUnit ? undefined : other.#bufW, other.#bufN);
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
    return this;
  }

  /**
   * Estimated value at quantile q ∈ [0, 1] of the finite values. q = 0 is `min`, q = 1 is
   * `max`. Returns NaN for an empty digest (not an error: an empty window is normal).
   */
  quantile(q: number): number {
    const x = this.#interpolatedQuantile(q);
    // Integer data has integer quantiles (see `integers`); min and max are integers then too.
    return this.#integers && !this.#exact && Number.isFinite(x) ? Math.round(x) : x;
  }

  #interpolatedQuantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile q must be in [0, 1], got ${q}`);
    this.#flush();
    const n = this.#n;
    if (n === 0) return NaN;
    const means = this.#means;
    const weights = this.#weights;
    const min = this.#min;
    const max = this.#max;
    if (n === 1) return means[0];
    const total = this.#centroidWeight;
    const index = q * total;
    if (this.#exact) {
      // The inverse of the exact step distribution: the smallest value whose cumulative weight reaches q.
      let cum = 0;
      for (let i = 0; i < n; i++) {
        cum += weights[i];
        if (cum >= index) return means[i];
      }
      return means[n - 1];
    }
    const clamp = (v: number) => (v < min ? min : Math.min(v, max));

    if (index < 1) return min;
    if (weights[0] > 1 && index < weights[0] / 2) {
      return clamp(lerp(min, means[0], (index - 1) / (weights[0] / 2 - 1)));
    }
    if (index > total - 1) return max;
    if (weights[n - 1] > 1 && total - index <= weights[n - 1] / 2) {
      return clamp(lerp(max, means[n - 1], (total - index - 1) / (weights[n - 1] / 2 - 1)));
    }

    let weightSoFar = weights[0] / 2;
    for (let i = 0; i < n - 1; i++) {
      const dw = (weights[i] + weights[i + 1]) / 2;
      if (weightSoFar + dw > index) {
        let leftUnit = 0;
        if (weights[i] === 1) {
          if (index - weightSoFar < 0.5) return means[i];
          leftUnit = 0.5;
        }
        let rightUnit = 0;
        if (weights[i + 1] === 1) {
          if (weightSoFar + dw - index <= 0.5) return means[i + 1];
          rightUnit = 0.5;
        }
        const z1 = index - weightSoFar - leftUnit;
        const z2 = weightSoFar + dw - index - rightUnit;
        return clamp(weightedAverage(means[i], z2, means[i + 1], z1));
      }
      weightSoFar += dw;
    }
    const z1 = index - total - weights[n - 1] / 2;
    const z2 = weights[n - 1] / 2 - z1;
    return clamp(weightedAverage(means[n - 1], z1, max, z2));
  }

  /**
   * Estimated share of the finite values that are ≤ x, counting values equal to x by half
   * (the mid-distribution function). NaN for an empty digest.
   */
  cdf(x: number): number {
    if (Number.isNaN(x)) throw new RangeError('cdf x must not be NaN');
    this.#flush();
    const n = this.#n;
    if (n === 0) return NaN;
    const means = this.#means;
    const weights = this.#weights;
    const min = this.#min;
    const max = this.#max;
    const total = this.#centroidWeight;
    if (x < min) return 0;
    if (x > max) return 1;
    if (this.#exact) {
      // The exact step distribution, the values equal to x counted by half.
      let below = 0;
      for (let i = 0; i < n && means[i] <= x; i++) below += means[i] < x ? weights[i] : weights[i] / 2;
      return below / total;
    }
    if (n === 1) return max - min > 0 ? (x - min) / (max - min) : 0.5;

    if (x < means[0]) {
      if (means[0] - min > 0) {
        if (x === min) return 0.5 / total;
        return (1 + ((x - min) / (means[0] - min)) * (weights[0] / 2 - 1)) / total;
      }
      return 0;
    }
    if (x > means[n - 1]) {
      if (max - means[n - 1] > 0) {
        if (x === max) return 1 - 0.5 / total;
        return 1 - (1 + ((max - x) / (max - means[n - 1])) * (weights[n - 1] / 2 - 1)) / total;
      }
      return 1;
    }

    let weightSoFar = 0;
    for (let i = 0; i < n - 1; i++) {
      if (means[i] === x) {
        let dw = 0;
        while (i < n && means[i] === x) dw += weights[i++];
        return (weightSoFar + dw / 2) / total;
      }
      if (means[i] <= x && x < means[i + 1]) {
        const dw = (weights[i] + weights[i + 1]) / 2;
        if (means[i + 1] - means[i] > 0) {
          let leftExcluded = 0;
          let rightExcluded = 0;
          if (weights[i] === 1) {
            if (weights[i + 1] === 1) return (weightSoFar + 1) / total;
            leftExcluded = 0.5;
          } else if (weights[i + 1] === 1) {
            rightExcluded = 0.5;
          }
          const dwInner = dw - leftExcluded - rightExcluded;
          const base = weightSoFar + weights[i] / 2 + leftExcluded;
          return (base + (dwInner * (x - means[i])) / (means[i + 1] - means[i])) / total;
        }
        return (weightSoFar + dw) / total;
      }
      weightSoFar += weights[i];
    }
    // x === means[n - 1]
    return (total - weights[n - 1] / 2) / total;
  }

  /** Copies of the centroids (means ascending, weights), after flushing the buffer. */
  centroids(): { means: Float64Array; weights: Float64Array } {
    this.#flush();
    return { means: this.#means.slice(0, this.#n), weights: this.#weights.slice(0, this.#n) };
  }

  /** A deep copy. */
  clone(): TDigest {
    const copy = new TDigest({ compression: this.compression });
    copy.merge(this);
    return copy;
  }

  /** The summary format's record of this digest: its kind code, length and toBytes(options). */
  encode(options?: SketchEncodeOptions): Uint8Array {
    return frameSketch('tdigest', this.toBytes(options));
  }

  /** Count, min, max, p05, p50 and p95 of the finite values (null when there are none). */
  describe(): SketchDescription {
    const n = this.count;
    return {
      kind: 'numeric',
      count: n,
      min: n ? this.min : null,
      max: n ? this.max : null,
      p05: n ? this.quantile(0.05) : null,
      p50: n ? this.quantile(0.5) : null,
      p95: n ? this.quantile(0.95) : null,
    };
  }

  /**
   * The digest's bytes (flushing the buffer first). `fromBytes(toBytes(d))` re-encodes to the
   * same bytes. Layout, little-endian: u8 format (1), u8 flags (bit 0 means float64, bit 1
   * weights float64, else varints), f64 compression, varint NaN, +Inf and −Inf counts, varint
   * centroid count n; when n > 0: f64 min, f64 max, n means, n weights.
   */
  toBytes({ meanPrecision = 'f32' }: TDigestBytesOptions = {}): Uint8Array {
    this.#flush();
    const n = this.#n;
    let integral = true;
    for (let i = 0; i < n; i++) {
      if (!Number.isSafeInteger(this.#weights[i])) {
        integral = false;
        break;
      }
    }
    // float32 means unless asked otherwise or a mean lies beyond float32's range.
    let f64Means = meanPrecision === 'f64';
    // An exact digest's values are kept exactly: float64 unless every one is a float32.
    const exact = this.#exact && n > 0;
    for (let i = 0; i < n && !f64Means; i++) f64Means = exact ? Math.fround(this.#means[i]) !== this.#means[i] : !Number.isFinite(Math.fround(this.#means[i]));
    const flags =
      (f64Means ? FLAG_MEANS_F64 : 0) | (integral ? 0 : FLAG_WEIGHTS_F64) | (exact ? FLAG_EXACT : 0) | (this.#integers && n > 0 ? FLAG_INTEGERS : 0);
    const w = new ByteWriter(32 + n * 12);
    w.u8(FORMAT).u8(flags).f64(this.compression).varint(this.#nan).varint(this.#posInf).varint(this.#negInf).varint(n);
    if (n > 0) {
      // + 0 writes −0 as +0 (equal numerically; canonical bytes, and JSON has no −0).
      w.f64(this.#min + 0).f64(this.#max + 0);
      for (let i = 0; i < n; i++) f64Means ? w.f64(this.#means[i] + 0) : w.f32(Math.fround(this.#means[i]) + 0);
      for (let i = 0; i < n; i++) integral ? w.varint(this.#weights[i]) : w.f64(this.#weights[i]);
    }
    return w.finish();
  }

  /** Decodes `toBytes` output; throws only SummaryDecodeError on malformed bytes. */
  static fromBytes(bytes: Uint8Array): TDigest {
    const r = new ByteReader(bytes);
    const d = TDigest.read(r);
    r.end('t-digest');
    return d;
  }

  /** @internal Reads one digest from a reader positioned at its first byte. */
  static read(r: ByteReader): TDigest {
    const format = r.u8('t-digest format');
    if (format !== FORMAT) r.fail(`unsupported t-digest format ${format}`);
    const flags = r.u8('t-digest flags');
    if (flags & ~(FLAG_MEANS_F64 | FLAG_WEIGHTS_F64 | FLAG_EXACT | FLAG_INTEGERS)) r.fail(`unknown t-digest flags 0x${flags.toString(16)}`);
    const compression = r.f64('t-digest compression');
    if (!(compression >= MIN_COMPRESSION && compression <= MAX_COMPRESSION)) {
      r.fail(`t-digest compression ${compression} is outside [${MIN_COMPRESSION}, ${MAX_COMPRESSION}]`);
    }
    const nan = r.varint('t-digest NaN count');
    const posInf = r.varint('t-digest +Infinity count');
    const negInf = r.varint('t-digest -Infinity count');
    const meanBytes = flags & FLAG_MEANS_F64 ? 8 : 4;
    const weightBytes = flags & FLAG_WEIGHTS_F64 ? 8 : 1;
    const n = r.count('t-digest centroid count', meanBytes + weightBytes, 4 * Math.ceil(compression) + 64);
    const d = new TDigest({ compression });
    d.#nan = nan;
    d.#posInf = posInf;
    d.#negInf = negInf;
    if (n === 0) {
      if (flags & FLAG_INTEGERS) r.fail('an empty t-digest carries the integers flag');
      return d;
    }
    const exact = (flags & FLAG_EXACT) !== 0;
    const integers = (flags & FLAG_INTEGERS) !== 0;
    if (exact && n > Math.ceil(compression)) r.fail(`an exact t-digest holds at most ${Math.ceil(compression)} values, got ${n}`);
    const min = r.f64('t-digest min');
    const max = r.f64('t-digest max');
    if (!(Number.isFinite(min) && Number.isFinite(max) && min <= max)) r.fail(`t-digest min ${min} and max ${max} are not finite with min <= max`);
    d.#ensureCapacity(n);
    let prev = -Infinity;
    for (let i = 0; i < n; i++) {
      const m = meanBytes === 8 ? r.f64('t-digest mean') : r.f32('t-digest mean');
      if (!Number.isFinite(m)) r.fail(`t-digest mean ${i} is not finite`);
      if (m < prev || (exact && m === prev)) r.fail(`t-digest means are not ${exact ? 'distinct and ' : ''}sorted at centroid ${i}`);
      d.#means[i] = prev = m;
    }
    let total = 0;
    for (let i = 0; i < n; i++) {
      const wt = weightBytes === 8 ? r.f64('t-digest weight') : r.varint('t-digest weight');
      if (!(wt > 0 && wt < Infinity)) r.fail(`t-digest weight ${i} must be finite and > 0, got ${wt}`);
      d.#weights[i] = wt;
      total += wt;
    }
    if (!Number.isFinite(total)) r.fail('t-digest total weight is not finite');
    if (exact && (min !== d.#means[0] || max !== d.#means[n - 1])) r.fail('an exact t-digest must start at its min and end at its max');
    if (integers && (Math.floor(min) !== min || Math.floor(max) !== max || (exact && d.#means.subarray(0, n).some((m) => Math.floor(m) !== m))))
      r.fail('a t-digest of integers has a value that is not one');
    d.#n = n;
    d.#centroidWeight = total;
    d.#min = min;
    d.#max = max;
    d.#exact = exact;
    d.#integers = integers;
    return d;
  }

  #mergeSorted(means: Float64Array, weights: Float64Array, n: number, weight: number): void {
    this.#replaceCentroids(means, weights, n, this.#centroidWeight + weight);
  }

  /**
   * Sweeps the centroids together with `n` sorted (value, weight) items into new centroids of
   * total weight `total` (fast arithmetic first, the stable form if it overflowed; a larger
   * output array if the first was too small).
   */
  #replaceCentroids(vals: Float64Array, wts: Float64Array | undefined, n: number, total: number): void {
    const [oldMeans, oldWeights, on] = [this.#means, this.#weights, this.#n];
    if (this.#exact) {
      if (this.#mergeExact(oldMeans, oldWeights, on, vals, wts, n, total)) return;
      this.#exact = false;
    }
    let means = new Float64Array(Math.min(on + n, Math.max(oldMeans.length, 2 * Math.ceil(this.compression) + 8)));
    let weights = new Float64Array(means.length);
    let stable = false;
    let out = this.#sweep(oldMeans, oldWeights, on, vals, wts, n, total, means, weights, stable);
    if (out < 0) out = this.#sweep(oldMeans, oldWeights, on, vals, wts, n, total, means, weights, (stable = true));
    if (out > means.length) {
      means = new Float64Array(out);
      weights = new Float64Array(out);
      out = this.#sweep(oldMeans, oldWeights, on, vals, wts, n, total, means, weights, stable);
    }
    // Incremental means can drift by an ulp out of order; keep the invariant exact.
    for (let k = 1; k < out; k++) if (means[k] < means[k - 1]) means[k] = means[k - 1];
    this.#means = means;
    this.#weights = weights;
    this.#n = out;
    this.#centroidWeight = total;
  }

  /**
   * The exact merge: the distinct values of the (exact) centroids and the sorted items, each with
   * its summed weight. False, changing nothing, when there would be more than ⌈compression⌉.
   */
  #mergeExact(
    oldMeans: Float64Array,
    oldWeights: Float64Array,
    on: number,
    vals: Float64Array,
    wts: Float64Array | undefined,
    n: number,
    total: number,
  ): boolean {
    const cap = Math.ceil(this.compression);
    const means = new Float64Array(Math.min(cap, on + n));
    const weights = new Float64Array(means.length);
    let out = 0;
    let i = 0;
    let j = 0;
    while (i < on || j < n) {
      const fromOld = j >= n || (i < on && oldMeans[i] <= vals[j]);
      const x = fromOld ? oldMeans[i] : vals[j];
      const w = fromOld ? oldWeights[i] : wts ? wts[j] : 1;
      if (fromOld) i++;
      else j++;
      if (out > 0 && means[out - 1] === x) weights[out - 1] += w;
      else {
        if (out === cap) return false;
        means[out] = x;
        weights[out++] = w;
      }
    }
    this.#means = means;
    this.#weights = weights;
    this.#n = out;
    this.#centroidWeight = total;
    return true;
  }

  #countNonFinite(x: number, weight: number): void {
    if (!Number.isSafeInteger(weight)) throw new RangeError(`weight of a non-finite value must be an integer, got ${weight}`);
    if (x === Infinity) this.#posInf += weight;
    else if (x === -Infinity) this.#negInf += weight;
    else this.#nan += weight;
  }

  #allocBuffer(): Float64Array {
    // Starts at 512 values and doubles at each merge pass up to 50δ (5,000 at δ = 100,
    // 40 KB): a busy digest gets few merge passes, which is both faster and more accurate
    // (every pass can widen centroids that already overlap), while a digest that sees little
    // stays small, and one that is only decoded, merged into and queried allocates none.
    const cap = this.#buf ? Math.min(this.#buf.length * 2, this.#maxBuffer()) : 512;
    const next = new Float64Array(cap);
    if (this.#buf) next.set(this.#buf.subarray(0, this.#bufN));
    this.#buf = next;
    if (this.#bufW) {
      const w = new Float64Array(cap);
      w.set(this.#bufW.subarray(0, this.#bufN));
      this.#bufW = w;
    }
    return next;
  }

  /** Switches the buffer to carrying explicit weights (all 1 so far). */
  #startWeighted(): void {
    const buf = this.#buf ?? this.#allocBuffer();
    if (!this.#bufW || this.#bufW.length !== buf.length) this.#bufW = new Float64Array(buf.length);
    this.#bufW.fill(1, 0, this.#bufN);
    this.#bufUnit = false;
  }

  #ensureCapacity(n: number): void {
    if (n <= this.#means.length) return;
    const cap = Math.max(n, this.#means.length * 2);
    const means = new Float64Array(cap);
    const weights = new Float64Array(cap);
    means.set(this.#means.subarray(0, this.#n));
    weights.set(this.#weights.subarray(0, this.#n));
    this.#means = means;
    this.#weights = weights;
  }

  #pushWeighted(values: Float64Array, weights: Float64Array | undefined, count: number): void {
    for (let i = 0; i < count; i++) {
      if (this.#buf === undefined) this.#allocBuffer();
      else if (this.#bufN === this.#buf.length) this.#compress();
      if (this.#bufUnit) this.#startWeighted();
      const w = weights ? weights[i] : 1;
      this.#buf![this.#bufN] = values[i];
      this.#bufW![this.#bufN++] = w;
      this.#bufWeight += w;
    }
  }

  #flush(): void {
    if (this.#bufN > 0) this.#compress();
  }

  /** Sorts the buffer and sweeps it together with the centroids under the k size limit. */
  #compress(): void {
    const bn = this.#bufN;
    if (bn === 0) return;
    const vals = this.#buf!;
    const unit = this.#bufUnit;
    const wts = unit ? undefined : this.#bufW!;
    sortFloat64(vals, bn, wts);
    if (vals[0] < this.#min) this.#min = vals[0];
    if (vals[bn - 1] > this.#max) this.#max = vals[bn - 1];

    this.#replaceCentroids(vals, wts, bn, this.#centroidWeight + this.#bufWeight);
    this.#bufN = 0;
    this.#bufWeight = 0;
    this.#bufUnit = true;
    if (vals.length < this.#maxBuffer()) this.#allocBuffer();
  }

  #maxBuffer(): number {
    return Math.max(512, Math.ceil(50 * this.compression));
  }

  /**
   * Two-way merge of the sorted centroids (i) and the sorted buffer (j), swept in order into
   * `means`/`weights` under the size limit. Returns the centroid count; more than
   * `means.length` when the output did not fit (nothing past the end is written); −1 when the
   * fast arithmetic overflowed (values near ±1.8e308), so the caller retries with `stable`.
   * The fast form keeps Σw·(x − base) per centroid (one multiply-add per item); the stable
   * form updates the mean incrementally (a division per item). The first and last items
   * never merge, so the extremes stay exact singletons.
   */
  #sweep(
    oldMeans: Float64Array,
    oldWeights: Float64Array,
    on: number,
    vals: Float64Array,
    wts: Float64Array | undefined,
    bn: number,
    total: number,
    means: Float64Array,
    weights: Float64Array,
    stable: boolean,
  ): number {
    const delta = this.compression;
    const incoming = on + bn;
    const cap = means.length;
    // Weight limit of the centroid being built, fixed when it starts at q0 = soFar/total: the
    // smaller of the allowed shares at q0 and at the farthest it could reach, q0 + share (the
    // allowed share is unimodal in q, so the smaller end bounds it over the span).
    const limitFrom = (soFar: number): number => {
      const q0 = soFar / total;
      const s0 = maxShare(q0, delta);
      return soFar + total * Math.min(s0, maxShare(Math.min(1, q0 + s0), delta));
    };
    let i = 0;
    let j = 0;
    let base = 0;
    let curWeight = 0;
    let curMean = 0;
    let curSum = 0;
    let out = 0;
    let weightSoFar = 0;
    let limit = limitFrom(0);
    for (let seen = 0; seen < incoming; seen++) {
      let x: number;
      let w: number;
      if (j >= bn || (i < on && oldMeans[i] <= vals[j])) {
        x = oldMeans[i];
        w = oldWeights[i++];
      } else {
        x = vals[j];
        w = wts ? wts[j] : 1;
        j++;
      }
      if (seen === 0) {
        base = curMean = x;
        curWeight = w;
        continue;
      }
      if (weightSoFar + curWeight + w <= limit && seen !== 1 && seen !== incoming - 1) {
        curWeight += w;
        if (stable) {
          const next = curMean + ((x - curMean) * w) / curWeight;
          // Values of opposite sign near ±1.8e308: their difference overflows, a weighted average of the two cannot.
          curMean = Number.isFinite(next) ? next : curMean * (1 - w / curWeight) + x * (w / curWeight);
        } else curSum += (x - base) * w;
      } else {
        const mean = stable ? curMean : base + curSum / curWeight;
        if (!Number.isFinite(mean)) return -1;
        if (out < cap) {
          means[out] = mean;
          weights[out] = curWeight;
        }
        out++;
        weightSoFar += curWeight;
        limit = limitFrom(weightSoFar);
        base = curMean = x;
        curSum = 0;
        curWeight = w;
      }
    }
    const mean = stable ? curMean : base + curSum / curWeight;
    if (!Number.isFinite(mean)) return -1;
    if (out < cap) {
      means[out] = mean;
      weights[out] = curWeight;
    }
    return out + 1;
  }
}
