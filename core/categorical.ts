/**
 * Categorical sketch: exact counts while at most `capacity` distinct values have been seen,
 * then Space-Saving (Metwally, Agrawal and El Abbadi, "Efficient computation of frequent and
 * top-k elements in data streams", ICDT 2005): a new value evicts the smallest counter and
 * inherits its count as error.
 *
 * Guarantees, for total weight N and capacity m:
 * - every monitored value's true count lies in [count − error, count];
 * - every unmonitored value's true count is at most `absentBound` (0 until the first
 *   eviction, then at most N/m);
 * - so any value with true count > N/m is monitored.
 * Merging follows Agarwal et al., "Mergeable summaries" (PODS 2012): counters are summed
 * (a value missing on one side gets that side's `absentBound` added to its count and its
 * error), then the m largest are kept; the guarantees above hold for the merged sketch with
 * N = N_a + N_b. Ties are broken by value, so merge is commutative exactly and associative
 * within the bounds.
 *
 * Weights are positive safe integers: these are counts.
 */
import { ByteReader, ByteWriter, isWellFormed } from './bytes.ts';
import { frameSketch, kindMismatch, type Sketch, type SketchDescription } from './sketch.ts';

const FORMAT = 1;
export const MAX_CATEGORICAL_CAPACITY = 65_536;
/** Longest category value accepted, in UTF-16 code units (so at most 768 UTF-8 bytes). */
export const MAX_CATEGORY_LENGTH = 256;

export interface CategoryCount {
  value: string;
  /** Upper bound on the true count (exact when `error` is 0). */
  count: number;
  /** count − error is a lower bound on the true count. */
  error: number;
}

export class CategoricalSketch implements Sketch {
  readonly capacity: number;
  // A binary min-heap on (count, value) over parallel arrays, plus value -> heap slot.
  #values: string[] = [];
  #counts: number[] = [];
  #errors: number[] = [];
  #slot = new Map<string, number>();
  #total = 0;
  #absent = 0;

  constructor({ capacity = 64 }: { capacity?: number } = {}) {
    if (!(Number.isInteger(capacity) && capacity >= 1 && capacity <= MAX_CATEGORICAL_CAPACITY)) {
      throw new RangeError(`CategoricalSketch capacity must be an integer in [1, ${MAX_CATEGORICAL_CAPACITY}], got ${capacity}`);
    }
    this.capacity = capacity;
  }

  get kind(): 'categorical' {
    return 'categorical';
  }

  /** Total weight added. */
  get count(): number {
    return this.#total;
  }

  /** Number of values monitored. */
  get size(): number {
    return this.#values.length;
  }

  /** Upper bound on the count of any value that is not monitored (0 while exact). */
  /** The largest count held (0 when empty): with absentBound, what bounds every count after a merge. O(n). */
  get maxCount(): number {
    let m = 0;
    for (let i = 0; i < this.#counts.length; i++) if (this.#counts[i] > m) m = this.#counts[i];
    return m;
  }

  get absentBound(): number {
    return this.#absent;
  }

  /** True while every count is exact (no value was ever evicted). */
  get exact(): boolean {
    return this.#absent === 0 && this.#errors.every((e) => e === 0);
  }

  add(value: string, weight = 1): this {
    if (typeof value !== 'string') throw new TypeError(`category must be a string, got ${typeof value}`);
    if (value.length > MAX_CATEGORY_LENGTH) throw new RangeError(`category is longer than ${MAX_CATEGORY_LENGTH} characters`);
    if (!isWellFormed(value)) throw new TypeError('category is not well-formed UTF-16 (lone surrogate)');
    if (!(Number.isSafeInteger(weight) && weight > 0)) throw new RangeError(`category weight must be a positive integer, got ${weight}`);
    this.#total += weight;
    const at = this.#slot.get(value);
    if (at !== undefined) {
      this.#counts[at] += weight;
      this.#siftDown(at);
    } else if (this.#values.length < this.capacity) {
      this.#push(value, this.#absent + weight, this.#absent);
    } else {
      // Evict the minimum; the newcomer may have been counted by it.
      const min = this.#counts[0];
      this.#slot.delete(this.#values[0]);
      this.#values[0] = value;
      this.#counts[0] = min + weight;
      this.#errors[0] = min;
      this.#slot.set(value, 0);
      if (min > this.#absent) this.#absent = min;
      this.#siftDown(0);
    }
    return this;
  }

  /** Estimated count of `value` (its upper bound); `absentBound` when not monitored. */
  estimate(value: string): CategoryCount {
    const at = this.#slot.get(value);
    if (at === undefined) return { value, count: this.#absent, error: this.#absent };
    return { value, count: this.#counts[at], error: this.#errors[at] };
  }

  /** Monitored values by count descending, ties by value; at most `k` (default all). */
  top(k = this.capacity): CategoryCount[] {
    const items: CategoryCount[] = this.#values.map((value, i) => ({ value, count: this.#counts[i], error: this.#errors[i] }));
    items.sort(byCountDesc);
    return items.slice(0, k);
  }

  /**
   * The sketch as a distribution that sums to `count`: each monitored value at its
   * guaranteed count (count − error), and everything not attributed with certainty in
   * `other`. Exact while the sketch is exact.
   */
  distribution(): { counts: Map<string, number>; other: number } {
    const counts = new Map<string, number>();
    let attributed = 0;
    for (const { value, count, error } of this.top()) {
      const c = count - error;
      if (c > 0) {
        counts.set(value, c);
        attributed += c;
      }
    }
    return { counts, other: Math.max(0, this.#total - attributed) };
  }

  /**
   * Adds everything `other` has seen (see the header for the bounds). `other` is not changed.
   * Throws SketchMergeError when it is not a CategoricalSketch; one of another capacity merges
   * (this one's capacity stays).
   */
  merge(other: Sketch): this {
    if (!(other instanceof CategoricalSketch)) throw kindMismatch('categorical', other);
    if (other === this) return this.merge(this.clone());
    this.#mergeInPlace(other);
    return this;
  }

  /**
   * The mergeable-summaries merge, in place, as an aggregator folds many windows into one
   * sketch: every value here gains other's absentBound (a uniform raise, which keeps the heap
   * order), a value monitored on both sides gains other's count less that bound instead (so
   * the two counts add), a value new here enters with this side's absentBound added; the
   * `capacity` largest by (count, value) stay, new values (largest first) replacing the heap's
   * minimum while they beat it, and absentBound rises to the largest count left out. O(n + m
   * log n) for m of other's values, where rebuilding the heap from a sorted union cost
   * O((n + m) log(n + m)) and most of an aggregator's fold; the property test checks it against
   * the formula written out independently, byte for byte.
   */
  #mergeInPlace(other: CategoricalSketch): void {
    const mine = this.#absent;
    const theirs = other.#absent;
    if (theirs !== 0) {
      for (let i = 0; i < this.#counts.length; i++) {
        this.#counts[i] += theirs;
        this.#errors[i] += theirs;
      }
    }
    const fresh: CategoryCount[] = [];
    for (let i = 0; i < other.#values.length; i++) {
      const v = other.#values[i];
      const at = this.#slot.get(v);
      if (at === undefined) fresh.push({ value: v, count: other.#counts[i] + mine, error: other.#errors[i] + mine });
      else {
        // A decoded sketch may hold counts under its own bound: then the count falls.
        this.#counts[at] += other.#counts[i] - theirs;
        this.#errors[at] += other.#errors[i] - theirs;
        this.#siftUp(at);
        this.#siftDown(this.#slot.get(v)!);
      }
    }
    fresh.sort(byCountDesc);
    let notKept = 0;
    for (const it of fresh) {
      if (this.#values.length < this.capacity) {
        this.#push(it.value, it.count, it.error);
        continue;
      }
      // The heap's minimum goes if the new value ranks above it (larger count, or equal count and smaller value).
      const c0 = this.#counts[0];
      if (c0 < it.count || (c0 === it.count && this.#values[0] > it.value)) {
        notKept = Math.max(notKept, c0);
        this.#slot.delete(this.#values[0]);
        this.#values[0] = it.value;
        this.#counts[0] = it.count;
        this.#errors[0] = it.error;
        this.#slot.set(it.value, 0);
        this.#siftDown(0);
      } else {
        // This one and every later (smaller) one stay out.
        notKept = Math.max(notKept, it.count);
        break;
      }
    }
    this.#absent = Math.max(mine + theirs, notKept);
    this.#total += other.#total;
  }

  clone(): CategoricalSketch {
    const c = new CategoricalSketch({ capacity: this.capacity });
    c.#values = this.#values.slice();
    c.#counts = this.#counts.slice();
    c.#errors = this.#errors.slice();
    c.#slot = new Map(this.#slot);
    c.#total = this.#total;
    c.#absent = this.#absent;
    return c;
  }

  /** The summary format's record of this sketch: its kind code, length and toBytes(). */
  encode(): Uint8Array {
    return frameSketch('categorical', this.toBytes());
  }

  /** The total and the 10 largest counts. */
  describe(): SketchDescription {
    return { kind: 'categorical', count: this.#total, top: this.top(10) };
  }

  /**
   * Layout: u8 format (1), varint capacity, varint total, varint absentBound, varint n, then
   * n × (string value, varint count, varint error) by count descending, ties by value.
   */
  toBytes(): Uint8Array {
    const w = new ByteWriter(16 + this.#values.length * 12);
    this.write(w);
    return w.finish();
  }

  /** @internal */
  write(w: ByteWriter): void {
    const items = this.top();
    w.u8(FORMAT).varint(this.capacity).varint(this.#total).varint(this.#absent).varint(items.length);
    for (const { value, count, error } of items) w.string(value).varint(count).varint(error);
  }

  static fromBytes(bytes: Uint8Array): CategoricalSketch {
    const r = new ByteReader(bytes);
    const s = CategoricalSketch.read(r);
    r.end('categorical sketch');
    return s;
  }

  /** @internal */
  static read(r: ByteReader): CategoricalSketch {
    const format = r.u8('categorical format');
    if (format !== FORMAT) r.fail(`unsupported categorical sketch format ${format}`);
    const capacity = r.varint('categorical capacity');
    if (capacity < 1 || capacity > MAX_CATEGORICAL_CAPACITY) r.fail(`categorical capacity ${capacity} is outside [1, ${MAX_CATEGORICAL_CAPACITY}]`);
    const total = r.varint('categorical total');
    const absent = r.varint('categorical absent bound');
    const n = r.count('categorical item count', 3, capacity);
    // Straight into the heap's arrays: the items come in top() order, so stored in reverse they
    // are sorted by (count ascending, value descending), which is already a valid min-heap; the
    // slot map doubles as the duplicate check. (Building item objects, a Set and pushing each
    // into the heap cost most of an aggregator's decode.)
    const values = new Array<string>(n);
    const counts = new Array<number>(n);
    const errors = new Array<number>(n);
    const slot = new Map<string, number>();
    let guaranteed = 0;
    let prevCount = Infinity;
    let prevValue = '';
    for (let i = 0; i < n; i++) {
      const value = r.string('category', MAX_CATEGORY_LENGTH * 3);
      if (value.length > MAX_CATEGORY_LENGTH) r.fail(`category is longer than ${MAX_CATEGORY_LENGTH} characters`);
      const count = r.varint('category count');
      const error = r.varint('category error');
      if (slot.has(value)) r.fail(`category ${JSON.stringify(value)} appears twice`);
      if (count < 1 || error > count) r.fail(`category ${JSON.stringify(value)} has count ${count} and error ${error}`);
      if (count > prevCount || (count === prevCount && prevValue > value)) r.fail('categories are not in count order');
      const k = n - 1 - i;
      values[k] = value;
      counts[k] = count;
      errors[k] = error;
      slot.set(value, k);
      prevCount = count;
      prevValue = value;
      guaranteed += count - error;
    }
    if (guaranteed > total) r.fail(`categorical counts (${guaranteed}) exceed the total ${total}`);
    const s = new CategoricalSketch({ capacity });
    s.#values = values;
    s.#counts = counts;
    s.#errors = errors;
    s.#slot = slot;
    s.#total = total;
    s.#absent = absent;
    return s;
  }

  #push(value: string, count: number, error: number): void {
    const i = this.#values.length;
    this.#values.push(value);
    this.#counts.push(count);
    this.#errors.push(error);
    this.#slot.set(value, i);
    this.#siftUp(i);
  }

  #less(i: number, j: number): boolean {
    const ci = this.#counts[i];
    const cj = this.#counts[j];
    // The heap's minimum is the value evicted next: smallest count, then largest value, so
    // that eviction order is the exact reverse of `top()` order.
    return ci < cj || (ci === cj && this.#values[i] > this.#values[j]);
  }

  #swap(i: number, j: number): void {
    const v = this.#values;
    const c = this.#counts;
    const e = this.#errors;
    [v[i], v[j]] = [v[j], v[i]];
    [c[i], c[j]] = [c[j], c[i]];
    [e[i], e[j]] = [e[j], e[i]];
    this.#slot.set(v[i], i);
    this.#slot.set(v[j], j);
  }

  #siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #siftDown(i: number): void {
    const n = this.#values.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const m = r < n && this.#less(r, l) ? r : l;
      if (!this.#less(m, i)) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

function byCountDesc(a: CategoryCount, b: CategoryCount): number {
  return b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0);
}
