/**
 * Fixed-edge histogram: counts of values in bins whose edges come from a training baseline,
 * so that a live window and the baseline are binned identically and PSI / Jensen-Shannon on
 * the bins are exact for the binned data (no sketch error at all).
 *
 * With edges e[0] < … < e[k−1] there are k + 1 bins: (−∞, e[0]), [e[0], e[1]), …,
 * [e[k−1], +∞). ±Infinity fall in the outer bins; NaN is counted apart (`nanCount`).
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { SketchMergeError } from './errors.ts';
import { frameSketch, kindMismatch, type Sketch, type SketchDescription } from './sketch.ts';
import type { TDigest } from './tdigest.ts';

const FORMAT = 1;
/** Upper bound on edges, so a decoded histogram can never be absurdly large. */
export const MAX_HISTOGRAM_EDGES = 4096;

export class Histogram implements Sketch {
  readonly edges: Float64Array;
  readonly #counts: Float64Array;
  #nan = 0;

  /** `edges`: finite, strictly increasing, 1 to 4096 of them. */
  constructor({ edges }: { edges: ArrayLike<number> }) {
    if (edges.length < 1 || edges.length > MAX_HISTOGRAM_EDGES) {
      throw new RangeError(`Histogram needs 1 to ${MAX_HISTOGRAM_EDGES} edges, got ${edges.length}`);
    }
    for (let i = 0; i < edges.length; i++) {
      if (!Number.isFinite(edges[i])) throw new RangeError(`Histogram edge ${i} is not finite: ${edges[i]}`);
      if (i > 0 && !(edges[i] > edges[i - 1])) throw new RangeError(`Histogram edges must increase strictly (edge ${i})`);
    }
    this.edges = Float64Array.from(edges, (e) => e + 0); // −0 → +0
    this.#counts = new Float64Array(edges.length + 1);
  }

  /**
   * Edges at the baseline's quantiles 1/bins, …, (bins−1)/bins, with repeats removed (a
   * baseline with heavy ties yields fewer, wider bins). Throws on an empty baseline.
   */
  static fromBaseline(baseline: TDigest, bins = 10): Histogram {
    if (baseline.count === 0) throw new RangeError('cannot take histogram edges from an empty baseline');
    const edges: number[] = [];
    for (let i = 1; i < bins; i++) {
      const e = baseline.quantile(i / bins);
      if (edges.length === 0 || e > edges[edges.length - 1]) edges.push(e);
    }
    if (edges.length === 0) edges.push(baseline.quantile(0.5));
    return new Histogram({ edges });
  }

  get kind(): 'histogram' {
    return 'histogram';
  }

  get binCount(): number {
    return this.#counts.length;
  }

  /** Total weight of non-NaN values. */
  get count(): number {
    let c = 0;
    for (let i = 0; i < this.#counts.length; i++) c += this.#counts[i];
    return c;
  }

  get nanCount(): number {
    return this.#nan;
  }

  /** Copy of the bin counts. */
  counts(): Float64Array {
    return this.#counts.slice();
  }

  /** Index of the bin holding x (binary search over the edges). */
  binOf(x: number): number {
    const e = this.edges;
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (x >= e[mid]) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(x: number, weight = 1): this {
    if (!(weight > 0 && weight < Infinity)) throw new RangeError(`Histogram weight must be finite and > 0, got ${weight}`);
    if (Number.isNaN(x)) this.#nan += weight;
    else this.#counts[this.binOf(x)] += weight;
    return this;
  }

  addAll(values: ArrayLike<number>): this {
    for (let i = 0; i < values.length; i++) this.add(values[i]);
    return this;
  }

  /**
   * Adds `other`'s counts. `other` is not changed. Throws SketchMergeError when it is not a
   * Histogram or its edges are not identical.
   */
  merge(other: Sketch): this {
    if (!(other instanceof Histogram)) throw kindMismatch('histogram', other);
    if (!sameEdges(this.edges, other.edges)) throw new SketchMergeError('cannot merge histograms with different edges');
    const counts = other.#counts;
    for (let i = 0; i < counts.length; i++) this.#counts[i] += counts[i];
    this.#nan += other.#nan;
    return this;
  }

  clone(): Histogram {
    return new Histogram({ edges: this.edges }).merge(this);
  }

  /** The summary format's record of this histogram: its kind code, length and toBytes(). */
  encode(): Uint8Array {
    return frameSketch('histogram', this.toBytes());
  }

  describe(): SketchDescription {
    return { kind: 'histogram', count: this.count };
  }

  /**
   * Layout: u8 format (1), u8 flags (bit 0: counts are float64, else varints), varint edge
   * count k, k f64 edges, k + 1 counts, then the NaN count in the same encoding.
   */
  toBytes(): Uint8Array {
    const counts = this.#counts;
    let integral = Number.isSafeInteger(this.#nan);
    for (let i = 0; i < counts.length && integral; i++) integral = Number.isSafeInteger(counts[i]);
    const w = new ByteWriter(16 + this.edges.length * 10);
    w.u8(FORMAT)
      .u8(integral ? 0 : 1)
      .varint(this.edges.length);
    for (const e of this.edges) w.f64(e);
    for (const c of counts) integral ? w.varint(c) : w.f64(c);
    integral ? w.varint(this.#nan) : w.f64(this.#nan);
    return w.finish();
  }

  static fromBytes(bytes: Uint8Array): Histogram {
    const r = new ByteReader(bytes);
    const h = Histogram.read(r);
    r.end('histogram');
    return h;
  }

  /** @internal */
  static read(r: ByteReader): Histogram {
    const format = r.u8('histogram format');
    if (format !== FORMAT) r.fail(`unsupported histogram format ${format}`);
    const flags = r.u8('histogram flags');
    if (flags > 1) r.fail(`unknown histogram flags 0x${flags.toString(16)}`);
    const k = r.count('histogram edge count', 9, MAX_HISTOGRAM_EDGES);
    if (k < 1) r.fail('histogram has no edges');
    const edges = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      edges[i] = r.f64('histogram edge');
      if (!Number.isFinite(edges[i]) || (i > 0 && !(edges[i] > edges[i - 1]))) r.fail(`histogram edge ${i} is not finite and increasing`);
    }
    const h = new Histogram({ edges });
    const readCount = (what: string): number => {
      const c = flags ? r.f64(what) : r.varint(what);
      if (!(c >= 0 && c < Infinity)) r.fail(`${what} must be finite and >= 0, got ${c}`);
      return c;
    };
    for (let i = 0; i <= k; i++) h.#counts[i] = readCount('histogram count');
    h.#nan = readCount('histogram NaN count');
    return h;
  }
}

/** @internal Whether two edge lists are the same (merge compatibility). */
export function sameEdges(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
