import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generate, rankError, SMOOTH_SHAPES } from '../test/support/data.ts';
import { ByteWriter } from './bytes.ts';
import { CategoricalSketch } from './categorical.ts';
import { crc32 } from './crc32.ts';
import { SketchMergeError, SummaryDecodeError } from './errors.ts';
import { Histogram } from './histogram.ts';
import {
  cloneProfile,
  createProfile,
  decodeSummary,
  encodeSummary,
  mergeInto,
  mergeProfiles,
  profileFromJSON,
  profileToJSON,
  SUMMARY_MAGIC,
  SUMMARY_VERSION,
  type Profile,
} from './profile.ts';
import { TDigest } from './tdigest.ts';

// ---------------------------------------------------------------------------------------
// Fixtures

const WINDOW_START = 1_795_000_000_000;

/** Every sketch kind and encoding path: NaN/±Inf counts, fractional weights, evictions, Unicode. */
function realisticProfile(seed = 1, values = 5000): Profile {
  const p = createProfile({
    model: 'fraud-scorer',
    modelVersion: '2026.11.2',
    source: { kind: 'edge', id: 'colo-LHR-03' },
    sequence: 4711,
    windowStart: WINDOW_START,
    windowEnd: WINDOW_START + 60_000,
  });
  const amount = new TDigest().addAll(generate('lognormal', values, seed));
  amount.add(NaN).add(Infinity).add(-Infinity).add(NaN);
  p.features.set('amount', amount);
  p.features.set('age', new TDigest().addAll(generate('duplicates', values, seed + 1)));
  p.features.set('größe 🙂', new TDigest({ compression: 50 }).addAll(generate('mixed-sign', values, seed + 2)));
  const weighted = new TDigest();
  for (const x of generate('uniform', 200, seed + 3)) weighted.add(x, 0.25 + x);
  p.features.set('weighted', weighted);
  const score = generate('bimodal', values, seed + 4);
  p.features.set('score (histogram)', Histogram.fromBaseline(new TDigest().addAll(score), 20).addAll(score).add(NaN));
  const country = new CategoricalSketch({ capacity: 16 });
  const countries = Array.from({ length: 40 }, (_, i) => `C${i}`);
  generate('exponential', values, seed + 5).forEach((x) => country.add(countries[Math.min(39, Math.floor(x * 6))]));
  p.features.set('country', country);
  const device = new CategoricalSketch();
  device.add('mobile', 40).add('desktop', 25).add('タブレット', 3).add('', 1);
  p.features.set('device', device);
  p.features.set('empty', new TDigest());
  p.outputs.set('probability', new TDigest().addAll(generate('uniform', values, seed + 6)));
  p.outputs.set('label', new CategoricalSketch().add('ok', values - 40).add('fraud', 40));
  p.latency.addAll(generate('exponential', values, seed + 7).map((x) => 20 * x));
  Object.assign(p.counters, { rows: values, errors: 3, cacheHits: 1200, fallbacks: 2, timeouts: 7, 'retries.upstream': 11 });
  return p;
}

/** A small profile for mutation fuzzing: every section and sketch kind in ~600 bytes. */
function smallProfile(): Profile {
  const p = createProfile({ model: 'm', modelVersion: 'v1', source: { kind: 'browser', id: 'tab' }, sequence: 3, windowStart: 1000, windowEnd: 2000 });
  p.features.set('x', new TDigest().addAll(generate('lognormal', 40, 3)).add(NaN));
  p.features.set('h', new Histogram({ edges: [0, 1, 2] }).addAll([-1, 0.5, 1.5, 1.5, 9]));
  p.features.set('c', new CategoricalSketch({ capacity: 4 }).add('a', 5).add('b', 2).add('ü'));
  p.outputs.set('y', new TDigest().addAll([0.1, 0.9, 0.5]));
  p.latency.addAll([3, 5, 8]);
  p.counters.rows = 40;
  p.counters.timeouts = 1;
  return p;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** body ‖ CRC-32(body), as encodeSummary frames it. */
function seal(body: Uint8Array): Uint8Array {
  return new ByteWriter(body.length + 4).bytes(body).u32(crc32(body)).finish();
}

/** The body of a summary (everything before the CRC). */
const bodyOf = (summary: Uint8Array): Uint8Array => summary.slice(0, summary.length - 4);

/** decodeSummary's result, or the SummaryDecodeError it threw; anything else thrown fails the test. */
function decodeOrError(bytes: Uint8Array): Profile | SummaryDecodeError {
  try {
    return decodeSummary(bytes);
  } catch (e) {
    if (!(e instanceof SummaryDecodeError)) throw new Error(`decodeSummary threw ${String(e)}, not a SummaryDecodeError`, { cause: e });
    // A specific message: not empty, and not the catch-all wrapper (which would mean the parser
    // itself missed a check and something else threw).
    if (e.message.length < 10 || e.message.startsWith('malformed summary')) throw new Error(`unspecific decode error: ${e.message}`, { cause: e });
    // The offset, when given, points into the input.
    if (e.offset !== undefined && !(e.offset >= 0 && e.offset <= bytes.length)) {
      throw new Error(`offset ${e.offset} outside a ${bytes.length}-byte input: ${e.message}`, { cause: e });
    }
    return e;
  }
}

function expectDecodeError(bytes: Uint8Array, pattern: RegExp): SummaryDecodeError {
  const r = decodeOrError(bytes);
  expect(r, `expected a SummaryDecodeError matching ${pattern}`).toBeInstanceOf(SummaryDecodeError);
  expect((r as SummaryDecodeError).message).toMatch(pattern);
  return r as SummaryDecodeError;
}

/**
 * Hostile bytes that decoded anyway must yield a profile whose re-encoding stays within the
 * allocation bound (16x the input plus a small constant: the four default counters).
 */
function checkDecodedHostile(input: Uint8Array, p: Profile): void {
  const again = encodeSummary(p);
  if (again.length > 16 * input.length + 64) throw new Error(`a ${input.length}-byte input decoded to a profile that encodes to ${again.length} bytes`);
  // The decoded profile is a normal profile: its JSON view and its re-encoding decode again.
  profileToJSON(p);
  decodeSummary(again);
}

// Hand-built summaries, section by section, for the hostile cases.
type Section = (w: ByteWriter) => void;
interface Craft {
  version?: number;
  flags?: number;
  model?: Section;
  sourceKind?: number;
  window?: [number, number];
  counters?: Section;
  latency?: Section;
  features?: Section;
  outputs?: Section;
  trailing?: number[];
}
const EMPTY_DIGEST = new TDigest().toBytes();
const DIGEST_123 = new TDigest().addAll([1, 2, 3]).toBytes();
const rawString = (w: ByteWriter, bytes: ArrayLike<number>): ByteWriter => w.varint(bytes.length).bytes(Uint8Array.from(bytes));
const sketch = (w: ByteWriter, kind: number, body: ArrayLike<number>): ByteWriter => rawString(w.u8(kind), body);

function craftBody(o: Craft = {}): Uint8Array {
  const w = new ByteWriter();
  w.bytes(SUMMARY_MAGIC)
    .u8(o.version ?? SUMMARY_VERSION)
    .u8(o.flags ?? 0);
  (o.model ?? ((x) => x.string('model')))(w);
  w.string('1.0')
    .u8(o.sourceKind ?? 0)
    .string('colo-1')
    .varint(7);
  const [start, end] = o.window ?? [1000, 2000];
  w.f64(start).f64(end);
  (o.counters ?? ((x) => x.varint(1).string('rows').varint(3)))(w);
  (o.latency ?? ((x) => sketch(x, 1, EMPTY_DIGEST)))(w);
  (o.features ?? ((x) => sketch(x.varint(1).string('f'), 1, DIGEST_123)))(w);
  (o.outputs ?? ((x) => x.varint(0)))(w);
  for (const b of o.trailing ?? []) w.u8(b);
  return w.finish();
}
const craft = (o?: Craft): Uint8Array => seal(craftBody(o));

/** A raw varint byte sequence (for values ByteWriter refuses to write). */
const rawVarint =
  (bytes: number[]): Section =>
  (w) =>
    void w.bytes(Uint8Array.from(bytes));
const TWO_40 = 2 ** 40;

// ---------------------------------------------------------------------------------------

describe('encodeSummary / decodeSummary round trip', () => {
  it('a realistic profile decodes to the same profile and re-encodes to identical bytes (f32 and f64 means)', () => {
    const p = realisticProfile();
    for (const meanPrecision of ['f32', 'f64'] as const) {
      const bytes = encodeSummary(p, { meanPrecision });
      const d = decodeSummary(bytes);
      expect(sameBytes(encodeSummary(d, { meanPrecision }), bytes), meanPrecision).toBe(true);
      expect(d.model).toBe(p.model);
      expect(d.modelVersion).toBe(p.modelVersion);
      expect(d.source).toEqual(p.source);
      expect(d.sequence).toBe(4711);
      expect([d.windowStart, d.windowEnd]).toEqual([p.windowStart, p.windowEnd]);
      expect(d.counters).toEqual(p.counters);
      expect([...d.features.keys()]).toEqual([...p.features.keys()]);
      expect([...d.outputs.keys()]).toEqual([...p.outputs.keys()]);
      for (const [name, s] of p.features) {
        const t = d.features.get(name)!;
        expect(t.constructor, name).toBe(s.constructor);
        expect(t.count, name).toBe(s.count);
      }
      const amount = d.features.get('amount') as TDigest;
      expect([amount.nanCount, amount.posInfCount, amount.negInfCount]).toEqual([2, 1, 1]);
      expect(amount.quantile(0.5)).toBeCloseTo((p.features.get('amount') as TDigest).quantile(0.5), 5);
      expect((d.features.get('country') as CategoricalSketch).top()).toEqual((p.features.get('country') as CategoricalSketch).top());
      expect((d.features.get('score (histogram)') as Histogram).counts()).toEqual((p.features.get('score (histogram)') as Histogram).counts());
      expect(d.latency.count).toBe(5000);
    }
  });

  it('profileToJSON -> JSON.stringify -> JSON.parse -> profileFromJSON encodes to identical bytes', () => {
    for (const p of [realisticProfile(), smallProfile(), createProfile({ model: 'empty', modelVersion: '0', windowStart: 0 })]) {
      const bytes = encodeSummary(p);
      const back = profileFromJSON(JSON.parse(JSON.stringify(profileToJSON(p))));
      expect(sameBytes(encodeSummary(back), bytes), p.model).toBe(true);
      expect(sameBytes(encodeSummary(back, { meanPrecision: 'f64' }), encodeSummary(p, { meanPrecision: 'f64' })), p.model).toBe(true);
    }
  });

  it('decodes from a view into a larger buffer (non-zero byteOffset)', () => {
    const bytes = encodeSummary(smallProfile());
    const big = new Uint8Array(bytes.length + 13).fill(0xa5);
    big.set(bytes, 7);
    expect(sameBytes(encodeSummary(decodeSummary(big.subarray(7, 7 + bytes.length))), bytes)).toBe(true);
  });

  it('size: one numeric feature that has seen 1e5 values at compression 100 encodes to <= 1536 bytes', () => {
    const p = createProfile({ model: 'model', modelVersion: '1', windowStart: WINDOW_START, windowEnd: WINDOW_START + 60_000 });
    p.features.set('x', new TDigest({ compression: 100 }).addAll(generate('lognormal', 100_000, 9)));
    p.counters.rows = 100_000;
    const bytes = encodeSummary(p);
    console.log(`summary with one 1e5-value feature (compression 100, f32 means): ${bytes.length} bytes`);
    expect(bytes.length).toBeLessThanOrEqual(1536);
  });

  // Regression test; this was a bug in (core/bytes.ts: `new TextDecoder('utf-8', { fatal: true })` without `ignoreBOM: true`):
  // the decoder strips a leading U+FEFF from every string, so a model, feature or category
  // name that starts with a BOM comes back changed (the re-encoding is 3 bytes shorter), and
  // a profile with features "\uFEFFa" and "a" encodes to a summary that decodeSummary rejects
  // ('feature "a" appears twice').
  it('names starting with U+FEFF survive the round trip', () => {
    const p = createProfile({ model: '\uFEFFmodel', modelVersion: '1', windowStart: 0 });
    p.features.set('\uFEFFa', new TDigest().add(1));
    p.features.set('a', new TDigest().add(2));
    const bytes = encodeSummary(p);
    const d = decodeSummary(bytes);
    expect(d.model).toBe('\uFEFFmodel');
    expect(sameBytes(encodeSummary(d), bytes)).toBe(true);
  });

  // Regression test; this was a bug in (core/profile.ts checkName): encodeSummary accepts names that are not well-formed
  // UTF-16 (lone surrogates); TextEncoder writes each as U+FFFD, so features "a\uD800" and
  // "a\uDC00" both become "a\uFFFD" and the summary is rejected by decodeSummary ('feature
  // "a\uFFFD" appears twice'). The encoder should refuse such names with a TypeError naming
  // the field (String.prototype.isWellFormed), as it does for other bad fields.
  it('encodeSummary never produces a summary that decodeSummary rejects (lone surrogates in names)', () => {
    const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    p.features.set('a\uD800', new TDigest());
    p.features.set('a\uDC00', new TDigest());
    let bytes: Uint8Array | undefined;
    try {
      bytes = encodeSummary(p);
    } catch (e) {
      expect(e).toBeInstanceOf(TypeError); // refusing is fine
      return;
    }
    expect(() => decodeSummary(bytes!)).not.toThrow();
  });

  // The four standard counters are always present and count against the limit of 64, so a
  // summary that decodes can always be re-encoded (found by fuzzing: 64 non-standard counters
  // used to decode into 68 that encodeSummary refused).
  it('every summary that decodes can be re-encoded: 64 non-standard counters are refused, 60 decode and re-encode', () => {
    const withCounters = (n: number) =>
      craft({
        counters: (w) => {
          w.varint(n);
          for (let i = 0; i < n; i++) w.string(`c${i}`).varint(i);
        },
      });
    expectDecodeError(withCounters(64), /more than 64 counters with the standard four/);
    expect(() => encodeSummary(decodeSummary(withCounters(60)))).not.toThrow();
  });

  // Regression test; this was a bug in (core/profile.ts profileToJSON/profileFromJSON): JSON has no -0, so a digest that saw
  // -0 (min and a centroid mean of -0) or a window starting at -0 comes back with +0 and
  // encodes to different bytes, against "profileFromJSON turns it back into the same profile".
  it('the JSON round trip keeps -0 (a digest that saw -0)', () => {
    const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    p.features.set('x', new TDigest().addAll([-0, 1, 2]));
    expect(sameBytes(encodeSummary(profileFromJSON(JSON.parse(JSON.stringify(profileToJSON(p))))), encodeSummary(p))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------

describe('mergeProfiles', () => {
  function pair(): [Profile, Profile] {
    const data = generate('lognormal', 10_000, 5);
    const edges = [0.5, 1, 2, 4];
    const a = createProfile({ model: 'm', modelVersion: '3', source: { kind: 'edge', id: 'colo-A' }, sequence: 3, windowStart: 1000, windowEnd: 2000 });
    const b = createProfile({ model: 'm', modelVersion: '3', source: { kind: 'edge', id: 'colo-A' }, sequence: 5, windowStart: 1500, windowEnd: 3000 });
    a.features.set('x', new TDigest().addAll(data.subarray(0, 5000)));
    b.features.set('x', new TDigest().addAll(data.subarray(5000)));
    a.features.set('h', new Histogram({ edges }).addAll(data.subarray(0, 5000)));
    b.features.set('h', new Histogram({ edges }).addAll(data.subarray(5000)).add(NaN));
    a.features.set('c', new CategoricalSketch().add('red', 10).add('blue', 5));
    b.features.set('c', new CategoricalSketch().add('red', 1).add('green', 7));
    b.features.set('onlyB', new TDigest().addAll([1, 2, 3]));
    a.outputs.set('y', new TDigest().addAll([0.2, 0.4]));
    b.outputs.set('z', new CategoricalSketch().add('yes', 2));
    a.latency.addAll([1, 2, 3]);
    b.latency.addAll([4, 5]);
    Object.assign(a.counters, { rows: 5000, errors: 1, cacheHits: 10, fallbacks: 0, timeouts: 2 });
    Object.assign(b.counters, { rows: 5000, errors: 2, cacheHits: 0, fallbacks: 4, retries: 9 });
    return [a, b];
  }

  it('adds counters, widens the window, keeps a shared source with the larger sequence, merges every sketch', () => {
    const [a, b] = pair();
    const m = mergeProfiles(a, b);
    expect(m.counters).toEqual({ rows: 10_000, errors: 3, cacheHits: 10, fallbacks: 4, timeouts: 2, retries: 9 });
    expect([m.windowStart, m.windowEnd]).toEqual([1000, 3000]);
    expect(m.source).toEqual({ kind: 'edge', id: 'colo-A' });
    expect(m.sequence).toBe(5);
    expect([...m.features.keys()].sort()).toEqual(['c', 'h', 'onlyB', 'x']);
    expect([...m.outputs.keys()].sort()).toEqual(['y', 'z']);
    expect((m.features.get('x') as TDigest).count).toBe(10_000);
    const h = m.features.get('h') as Histogram;
    expect(Array.from(h.counts())).toEqual(
      Array.from((a.features.get('h') as Histogram).counts()).map((c, i) => c + (b.features.get('h') as Histogram).counts()[i]),
    );
    expect(h.nanCount).toBe(1);
    expect((m.features.get('c') as CategoricalSketch).top()).toEqual([
      { value: 'red', count: 11, error: 0 },
      { value: 'green', count: 7, error: 0 },
      { value: 'blue', count: 5, error: 0 },
    ]);
    expect(m.latency.count).toBe(5);
    expect(m.latency.max).toBe(5);
    // The merged profile owns its sketches.
    expect(m.features.get('onlyB')).not.toBe(b.features.get('onlyB'));
    (m.features.get('onlyB') as TDigest).add(100);
    expect((b.features.get('onlyB') as TDigest).count).toBe(3);
    // And it is a valid profile.
    expect(sameBytes(encodeSummary(decodeSummary(encodeSummary(m))), encodeSummary(m))).toBe(true);
  });

  it('leaves both inputs unchanged (their encodings before and after are identical), also when it throws', () => {
    const [a, b] = pair();
    const before = [encodeSummary(a), encodeSummary(b)];
    mergeProfiles(a, b);
    mergeProfiles(b, a);
    mergeProfiles(a, a);
    const bad = createProfile({ model: 'm', modelVersion: '3', windowStart: 0 });
    bad.features.set('x', new CategoricalSketch().add('q'));
    expect(() => mergeProfiles(a, bad)).toThrow(SketchMergeError);
    expect(sameBytes(encodeSummary(a), before[0])).toBe(true);
    expect(sameBytes(encodeSummary(b), before[1])).toBe(true);
  });

  it('sources: same kind, different id -> that kind with id "" and sequence 0; different kinds -> "merged"', () => {
    const [a, b] = pair();
    b.source = { kind: 'edge', id: 'colo-B' };
    expect(mergeProfiles(a, b).source).toEqual({ kind: 'edge', id: '' });
    expect(mergeProfiles(a, b).sequence).toBe(0);
    b.source = { kind: 'browser', id: 'colo-A' };
    expect(mergeProfiles(a, b).source).toEqual({ kind: 'merged', id: '' });
  });

  it('throws SketchMergeError for a different model or version, or one feature name with two sketch kinds or histogram edges', () => {
    const [a] = pair();
    const other = (model: string, modelVersion: string) => createProfile({ model, modelVersion, windowStart: 0 });
    expect(() => mergeProfiles(a, other('m2', '3'))).toThrow(SketchMergeError);
    expect(() => mergeProfiles(a, other('m', '4'))).toThrow(/m@3 and m@4/);
    for (const s of [new Histogram({ edges: [0] }), new CategoricalSketch()]) {
      const b = other('m', '3');
      b.features.set('x', s);
      expect(() => mergeProfiles(a, b)).toThrow(SketchMergeError);
      expect(() => mergeProfiles(a, b)).toThrow(/"x" has different kinds/);
    }
    const b = other('m', '3');
    b.outputs.set('y', new Histogram({ edges: [1] }));
    expect(() => mergeProfiles(a, b)).toThrow(SketchMergeError);
    const c = other('m', '3');
    c.features.set('h', new Histogram({ edges: [0.5, 1, 2, 5] }));
    expect(() => mergeProfiles(a, c)).toThrow(SketchMergeError);
  });

  it('mergeInto gives what mergeProfiles gives, changes only its target, and leaves it intact when it throws', () => {
    for (const [x, y] of [pair(), pair().reverse() as [Profile, Profile]]) {
      const copy = () => decodeSummary(encodeSummary(x, { meanPrecision: 'f64' }));
      const expected = encodeSummary(mergeProfiles(copy(), y));
      const yBefore = encodeSummary(y);
      const target = copy();
      expect(mergeInto(target, y)).toBe(target);
      // The same content: mergeProfiles clones its first side (a digest re-merged into itself
      // may compress its centroids differently), so digests agree within their rank error.
      const e = decodeSummary(expected);
      expect([target.counters, target.windowStart, target.windowEnd, target.source, target.sequence]).toEqual([
        e.counters,
        e.windowStart,
        e.windowEnd,
        e.source,
        e.sequence,
      ]);
      for (const section of ['features', 'outputs'] as const) {
        expect([...target[section].keys()].sort()).toEqual([...e[section].keys()].sort());
        for (const [k, got] of target[section]) {
          const want = e[section].get(k)!;
          if (got instanceof TDigest) {
            const w = want as TDigest;
            expect([got.count, got.min, got.max, got.nanCount]).toEqual([w.count, w.min, w.max, w.nanCount]);
            for (const q of [0.01, 0.25, 0.5, 0.75, 0.99])
              expect(Math.abs(got.quantile(q) - w.quantile(q)), `${k} q=${q}`).toBeLessThanOrEqual(0.01 * (w.max - w.min));
          } else if (got instanceof Histogram) expect(Array.from(got.counts())).toEqual(Array.from((want as Histogram).counts()));
          else expect((got as CategoricalSketch).top()).toEqual((want as CategoricalSketch).top());
        }
      }
      expect(target.latency.count).toBe(e.latency.count);
      expect(sameBytes(encodeSummary(y), yBefore)).toBe(true);
      // Sketches taken from y are copies.
      if (target.features.has('onlyB') && y.features.has('onlyB')) expect(target.features.get('onlyB')).not.toBe(y.features.get('onlyB'));
    }
    const [a] = pair();
    const before = encodeSummary(a);
    const bad = createProfile({ model: 'm', modelVersion: '3', windowStart: 0 });
    bad.features.set('x', new TDigest().add(1)); // compatible, listed first
    bad.features.set('h', new Histogram({ edges: [0.5, 1, 2, 5] })); // not
    bad.counters.rows = 7;
    expect(() => mergeInto(a, bad)).toThrow(SketchMergeError);
    expect(sameBytes(encodeSummary(a), before)).toBe(true);
    expect(() => mergeInto(a, createProfile({ model: 'm', modelVersion: '4', windowStart: 0 }))).toThrow(/m@3 and m@4/);
  });

  // Issue 11: two anonymous browser summaries whose counters added past 2^53 - 1 made
  // encodeSummary throw inside the aggregator's fold and wedged it. A merge now refuses first.
  it('checked arithmetic: a merge that would take a counter, a categorical total or count, or a digest NaN count past 2^53 - 1 throws SketchMergeError and changes nothing', () => {
    const MAX = Number.MAX_SAFE_INTEGER;
    const base = () => createProfile({ model: 'm', modelVersion: '3', windowStart: 0 });
    const cases: [string, (p: Profile) => void][] = [
      ['counter "rows"', (p) => (p.counters.rows = Math.ceil(MAX / 2) + 1)],
      ['counter "anything"', (p) => (p.counters.anything = Math.ceil(MAX / 2) + 1)],
      ['total', (p) => p.features.set('c', new CategoricalSketch().add('a', Math.ceil(MAX / 2) + 1))],
      ['NaN count', (p) => p.features.set('x', new TDigest().add(NaN, Math.ceil(MAX / 2) + 1))],
      ['latency', (p) => p.latency.add(Infinity, Math.ceil(MAX / 2) + 1)],
    ];
    for (const [what, set] of cases) {
      const a = base();
      const b = base();
      set(a);
      set(b);
      const before = encodeSummary(a);
      expect(() => mergeInto(a, b), what).toThrow(SketchMergeError);
      expect(() => mergeInto(a, b), what).toThrow(/2\^53 - 1/);
      expect(sameBytes(encodeSummary(a), before), what).toBe(true);
    }
    // A decoded categorical sketch may hold one count far above its total (its error as large):
    // the bound is on counts, not only totals.
    const big = new ByteWriter();
    big
      .u8(1)
      .varint(4)
      .varint(1)
      .varint(0)
      .varint(1)
      .string('a')
      .varint(MAX - 1)
      .varint(MAX - 1);
    const huge = CategoricalSketch.fromBytes(big.finish());
    expect(huge.count).toBe(1);
    const a = base();
    const other = base();
    a.features.set('c', huge);
    other.features.set('c', huge.clone());
    expect(() => mergeInto(a, other)).toThrow(SketchMergeError);
  });

  // A counter named like a member of Object.prototype read back the inherited function on the
  // side that lacked it: mergeInto made "function Object() {...}5" of it.
  it('mergeInto never reads a counter through the prototype', () => {
    const a = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    const b = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    Object.defineProperty(b.counters, 'constructor', { value: 5, enumerable: true, writable: true, configurable: true });
    mergeInto(a, b);
    expect(Object.hasOwn(a.counters, 'constructor') && a.counters.constructor).toBe(5);
  });

  it('property: whatever two decodable profiles hold, mergeInto either throws SketchMergeError or leaves a profile that encodes', () => {
    const MAX = Number.MAX_SAFE_INTEGER;
    const big = fc.oneof(
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: MAX - 1000, max: MAX }),
      fc.integer({ min: Math.floor(MAX / 2) - 10, max: Math.floor(MAX / 2) + 10 }),
    );
    const profile = fc.record({ rows: big, other: big, cat: big, nan: fc.integer({ min: 1, max: MAX }) }).map(({ rows, other, cat, nan }) => {
      const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
      p.counters.rows = rows;
      p.counters.other = other;
      if (cat > 0) p.features.set('c', new CategoricalSketch({ capacity: 2 }).add('x', cat));
      p.features.set('n', new TDigest().add(NaN, nan).add(1));
      return decodeSummary(encodeSummary(p));
    });
    fc.assert(
      fc.property(profile, profile, (a, b) => {
        try {
          mergeInto(a, b);
        } catch (e) {
          expect(e).toBeInstanceOf(SketchMergeError);
          return;
        }
        expect(decodeSummary(encodeSummary(a)).counters.rows).toBe(a.counters.rows);
      }),
      { seed: 11, numRuns: 300 },
    );
  });

  // At n = 1e4 a compression-100 digest's rank error away from the tails is ~1e-3 whether built
  // directly or merged (the 1e-3 figure in tdigest.ts is for 1e6 values); measured worst over
  // 6 shapes x 5 seeds x 2 splits: 1.3e-3 merged, 1.0e-3 direct. So 2e-3 in the body, and the
  // documented worst-case bound 3e-4 at q = 0.001 and 0.999 (measured 1e-4).
  it('merge(A, B) matches one profile built from A u B: quantiles within 2e-3 rank error (3e-4 at q = 0.001, 0.999) on 1e4 values', () => {
    const qs = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999];
    for (const shape of SMOOTH_SHAPES) {
      const data = generate(shape, 10_000, 17);
      const sorted = Float64Array.from(data).sort();
      const a = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
      const b = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
      const whole = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
      a.features.set('x', new TDigest().addAll(data.subarray(0, 4000)));
      b.features.set('x', new TDigest().addAll(data.subarray(4000)));
      whole.features.set('x', new TDigest().addAll(data));
      const merged = mergeProfiles(a, b).features.get('x') as TDigest;
      const direct = whole.features.get('x') as TDigest;
      expect(merged.count).toBe(10_000);
      expect([merged.min, merged.max]).toEqual([sorted[0], sorted[9999]]);
      for (const q of qs) {
        const bound = q === 0.001 || q === 0.999 ? 3e-4 : 2e-3;
        expect(rankError(sorted, q, merged.quantile(q)), `${shape} merged q=${q}`).toBeLessThanOrEqual(bound);
        expect(rankError(sorted, q, direct.quantile(q)), `${shape} direct q=${q}`).toBeLessThanOrEqual(bound);
      }
      // And through the wire: merging decoded summaries gives the same digest as merging the originals.
      const viaWire = mergeProfiles(decodeSummary(encodeSummary(a, { meanPrecision: 'f64' })), decodeSummary(encodeSummary(b, { meanPrecision: 'f64' })));
      expect(sameBytes(encodeSummary(viaWire), encodeSummary(mergeProfiles(a, b))), shape).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------

describe('decodeSummary on hostile input throws only SummaryDecodeError, with a specific message', () => {
  const valid = encodeSummary(realisticProfile(2, 2000));
  const small = encodeSummary(smallProfile());

  it('the hand-built baseline summary decodes (so each case below differs only where intended)', () => {
    const p = decodeSummary(craft());
    expect(p.model).toBe('model');
    expect((p.features.get('f') as TDigest).count).toBe(3);
  });

  it('empty, short and non-Uint8Array input', () => {
    expectDecodeError(new Uint8Array(0), /0 bytes, shorter than any valid/);
    expectDecodeError(SUMMARY_MAGIC, /shorter than any valid/);
    for (const v of [null, undefined, 'DWSM', [0x44, 0x57, 0x53, 0x4d, 1, 0, 0, 0, 0, 0], new Uint16Array(20), valid.buffer, new DataView(valid.buffer)]) {
      expectDecodeError(v as unknown as Uint8Array, /must be a Uint8Array/);
    }
  });

  it('wrong magic and wrong version (with the CRC left as is and recomputed)', () => {
    for (const [i, v] of [
      [0, 0x45],
      [3, 0x4e],
      [1, 0],
    ]) {
      const bad = valid.slice();
      bad[i] = v;
      expectDecodeError(bad, /bad magic/);
      expectDecodeError(seal(bodyOf(bad)), /bad magic/);
    }
    for (const version of [0, 2, 255]) {
      expectDecodeError(craft({ version }), new RegExp(`unsupported summary version ${version}`));
      const bad = valid.slice();
      bad[4] = version;
      expectDecodeError(bad, /unsupported summary version/);
    }
  });

  it('a wrong CRC, and bytes appended after the CRC', () => {
    const bad = valid.slice();
    bad[bad.length - 1] ^= 1;
    expectDecodeError(bad, /CRC-32 mismatch/);
    const longer = new Uint8Array(valid.length + 3);
    longer.set(valid);
    expectDecodeError(longer, /CRC-32 mismatch/);
  });

  it('every truncation of a valid summary, with the CRC left as is and recomputed over the truncated body', () => {
    for (const summary of [small, valid]) {
      const body = bodyOf(summary);
      for (let len = 0; len < summary.length; len++) decodeTruncated(summary.subarray(0, len));
      for (let len = 6; len < body.length; len++) {
        const e = expectDecodeError(seal(body.subarray(0, len)), /truncated|cannot fit|over the limit|needs|not valid UTF-8|left/);
        expect(e.offset, `len ${len}`).toBeDefined();
      }
    }
    function decodeTruncated(bytes: Uint8Array): void {
      expectDecodeError(bytes, /shorter than any valid|CRC-32 mismatch|bad magic|version/);
    }
  });

  it('every single bit flip of a small summary: CRC as is -> always rejected; CRC recomputed -> rejected or a bounded profile', () => {
    let decoded = 0;
    for (let bit = 0; bit < small.length * 8; bit++) {
      const bad = small.slice();
      bad[bit >> 3] ^= 1 << (bit & 7);
      expectDecodeError(bad, /CRC-32 mismatch|bad magic|version/);
      if (bit < (small.length - 4) * 8) {
        const sealed = seal(bodyOf(bad));
        const r = decodeOrError(sealed);
        if (!(r instanceof SummaryDecodeError)) {
          decoded++;
          checkDecodedHostile(sealed, r);
        }
      }
    }
    // Flips inside float payloads (means, window, edges) decode: the recomputed-CRC path reaches
    // the parser's value checks and past them.
    expect(decoded).toBeGreaterThan(0);
  });

  it('random multiple bit flips (fast-check, seeded): CRC as is -> rejected; CRC recomputed -> rejected or a bounded profile', () => {
    const flips = fc.array(fc.nat(), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(flips, fc.boolean(), (positions, useSmall) => {
        const base = useSmall ? small : valid;
        const bad = base.slice();
        const bits = base.length * 8;
        for (const p of positions) bad[(p % bits) >> 3] ^= 1 << (p % 8);
        if (sameBytes(bad, base)) return; // flips cancelled out
        const r1 = decodeOrError(bad);
        if (!(r1 instanceof SummaryDecodeError)) throw new Error('a corrupted summary passed the CRC check');
        const sealed = seal(bodyOf(bad));
        const r2 = decodeOrError(sealed);
        if (!(r2 instanceof SummaryDecodeError)) checkDecodedHostile(sealed, r2);
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('random byte overwrites, insertions, deletions and duplications with the CRC recomputed (fast-check, seeded)', () => {
    const edit = fc.oneof(
      fc.record({ op: fc.constant('set' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
      fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
      fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
      // Varints of every size at random places: absurd counts and lengths.
      fc.record({ op: fc.constant('varint' as const), at: fc.nat(), value: fc.oneof(fc.nat(300), fc.constantFrom(2 ** 31, TWO_40, Number.MAX_SAFE_INTEGER)) }),
    );
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), fc.boolean(), (edits, useSmall) => {
        let body: Uint8Array = bodyOf(useSmall ? small : valid);
        for (const e of edits) {
          const at = 5 + (e.at % (body.length - 5)); // keep magic and version, which are checked first
          const before = body.subarray(0, at);
          if (e.op === 'set') {
            body = body.slice();
            body.set(e.bytes.subarray(0, body.length - at), at);
          } else if (e.op === 'insert') {
            body = new ByteWriter(body.length + e.bytes.length).bytes(before).bytes(e.bytes).bytes(body.subarray(at)).finish();
          } else if (e.op === 'delete') {
            body = new ByteWriter(body.length)
              .bytes(before)
              .bytes(body.subarray(at + e.len))
              .finish();
          } else if (e.op === 'duplicate') {
            body = new ByteWriter(body.length * 2)
              .bytes(body.subarray(0, at + e.len))
              .bytes(body.subarray(at))
              .finish();
          } else {
            body = new ByteWriter(body.length + 8)
              .bytes(before)
              .varint(e.value)
              .bytes(body.subarray(at + 1))
              .finish();
          }
        }
        const sealed = seal(body);
        const r = decodeOrError(sealed);
        if (!(r instanceof SummaryDecodeError)) checkDecodedHostile(sealed, r);
      }),
      { seed: 42, numRuns: 1500 },
    );
  });

  it('random bytes of many lengths, bare and behind a valid header and CRC (fast-check, seeded)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        expect(decodeOrError(bytes)).toBeInstanceOf(SummaryDecodeError);
      }),
      { seed: 42, numRuns: 1000 },
    );
    const header = Uint8Array.from([...SUMMARY_MAGIC, SUMMARY_VERSION, 0]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (rest) => {
        const sealed = seal(new ByteWriter(rest.length + 6).bytes(header).bytes(rest).finish());
        const r = decodeOrError(sealed);
        if (!(r instanceof SummaryDecodeError)) checkDecodedHostile(sealed, r);
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('absurd declared lengths and counts behind a valid CRC (2^40 and friends) are refused before any allocation', () => {
    const digestHead = (w: ByteWriter) => w.u8(1).u8(0).f64(100).varint(0).varint(0).varint(0);
    const cases: [string, Craft, RegExp][] = [
      ['counter count 2^40', { counters: (w) => void w.varint(TWO_40) }, /counter count 1099511627776 exceeds the limit 64/],
      ['counter count 60 in a few bytes', { counters: (w) => void w.varint(60) }, /counter count 60 cannot fit/],
      ['feature count 2^40', { features: (w) => void w.varint(TWO_40) }, /feature count 1099511627776 exceeds the limit 1024/],
      ['feature count 1000 in a few bytes', { features: (w) => void w.varint(1000) }, /feature count 1000 cannot fit/],
      ['output count 2^40', { outputs: (w) => void w.varint(TWO_40) }, /output count 1099511627776 exceeds the limit/],
      ['model length 2^40', { model: (w) => void w.varint(TWO_40) }, /model is 1099511627776 bytes, over the limit of 128/],
      [
        'output name length 100, 3 bytes present',
        {
          outputs: (w) =>
            void w
              .varint(1)
              .varint(100)
              .bytes(Uint8Array.of(1, 2, 3)),
        },
        /truncated: output name needs 100 bytes, 3 left/,
      ],
      ['latency sketch length 2^40', { latency: (w) => void w.u8(1).varint(TWO_40) }, /latency length 1099511627776 cannot fit/],
      ['feature sketch length 2^40', { features: (w) => void w.varint(1).string('f').u8(1).varint(TWO_40) }, /feature "f" length 1099511627776 cannot fit/],
      [
        't-digest centroid count 2^40',
        { features: (w) => void sketch(w.varint(1).string('f'), 1, digestHead(new ByteWriter()).varint(TWO_40).finish()) },
        /t-digest centroid count 1099511627776 exceeds the limit/,
      ],
      [
        't-digest centroid count 400 with no centroids',
        { features: (w) => void sketch(w.varint(1).string('f'), 1, digestHead(new ByteWriter()).varint(400).finish()) },
        /t-digest centroid count 400 cannot fit/,
      ],
      [
        'histogram edge count 2^40',
        { features: (w) => void sketch(w.varint(1).string('f'), 2, new ByteWriter().u8(1).u8(0).varint(TWO_40).finish()) },
        /histogram edge count 1099511627776 exceeds the limit 4096/,
      ],
      [
        'categorical capacity 2^40',
        { features: (w) => void sketch(w.varint(1).string('f'), 3, new ByteWriter().u8(1).varint(TWO_40).varint(0).varint(0).varint(0).finish()) },
        /categorical capacity 1099511627776 is outside/,
      ],
      [
        'categorical item count 2^40',
        { features: (w) => void sketch(w.varint(1).string('f'), 3, new ByteWriter().u8(1).varint(64).varint(0).varint(0).varint(TWO_40).finish()) },
        /categorical item count 1099511627776 exceeds the limit 64/,
      ],
      [
        'a counter of 2^53 (beyond safe integers)',
        {
          counters: (w) =>
            void w
              .varint(1)
              .string('rows')
              .bytes(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)),
        },
        /exceeds 2\^53 - 1/,
      ],
      ['a varint longer than 8 bytes', { features: rawVarint([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]) }, /longer than 8 bytes/],
      ['a non-minimal varint', { features: rawVarint([0x81, 0x00]) }, /not minimally encoded/],
    ];
    for (const [, o, pattern] of cases) expectDecodeError(craft(o), pattern);
  });

  it('invalid UTF-8 in the model, a counter, a feature or output name, a category value', () => {
    const invalid = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x61, 0xf8, 0x88, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80]];
    for (const bytes of invalid) {
      const label = bytes.map((b) => b.toString(16)).join(' ');
      expectDecodeError(craft({ model: (w) => void rawString(w, bytes) }), /model is not valid UTF-8/);
      expectDecodeError(craft({ counters: (w) => void rawString(w.varint(1), bytes).varint(1) }), /counter name is not valid UTF-8/);
      expectDecodeError(craft({ features: (w) => void sketch(rawString(w.varint(1), bytes), 1, DIGEST_123) }), /feature name is not valid UTF-8/);
      expectDecodeError(craft({ outputs: (w) => void sketch(rawString(w.varint(1), bytes), 1, DIGEST_123) }), /output name is not valid UTF-8/);
      const category = rawString(new ByteWriter().u8(1).varint(8).varint(2).varint(0).varint(1), bytes).varint(2).varint(0).finish();
      const e = expectDecodeError(craft({ features: (w) => void sketch(w.varint(1).string('c'), 3, category) }), /category is not valid UTF-8/);
      expect(e.message, label).toMatch(/feature "c"/);
    }
  });

  // Regression test; this was a bug in (core/profile.ts readSketch): the unknown-kind check calls the outer reader's r.fail()
  // inside the try whose catch re-wraps sub-reader errors, adding the sketch's start to an
  // offset that is already absolute and repeating the prefix: a 71-byte summary yields
  // 'feature "f": feature "f" has unknown kind 4 (at byte 66) (at byte 129)', offset 129.
  //
  it('the offset of an unknown-sketch-kind error points into the input', () => {
    const bytes = craft({ features: (w) => void sketch(w.varint(1).string('f'), 4, [1, 2, 3]) });
    const e = expectDecodeError(bytes, /unknown kind 4/);
    expect(e.offset!).toBeLessThanOrEqual(bytes.length);
    expect(e.message).not.toMatch(/feature "f".*feature "f"/);
  });

  // Counter names must be identifiers (COUNTER_NAME): "__proto__" would otherwise hit the
  // prototype setter of the decoded counters object and be dropped silently.
  it('a counter named "__proto__" is refused with a clear error, on decode and on encode', () => {
    expectDecodeError(craft({ counters: (w) => void w.varint(1).string('__proto__').varint(5) }), /counter name "__proto__" must match/);
    const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
    Object.defineProperty(p.counters, '__proto__', { value: 5, enumerable: true });
    expect(() => encodeSummary(p)).toThrow(/counter name "__proto__" must match/);
  });

  it('counter names that Object.prototype holds (constructor, toString, valueOf, ...) are refused on decode and encode', () => {
    for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf']) {
      expectDecodeError(craft({ counters: (w) => void w.varint(1).string(name).varint(5) }), /Object\.prototype/);
      const p = createProfile({ model: 'm', modelVersion: '1', windowStart: 0 });
      p.counters[name] = 5;
      expect(() => encodeSummary(p), name).toThrow(/Object\.prototype/);
    }
  });

  it('duplicate feature, output, counter and category names', () => {
    const twice = (what: 'features' | 'outputs'): Craft => ({
      [what]: (w: ByteWriter) => void sketch(sketch(w.varint(2).string('a'), 1, DIGEST_123).string('a'), 1, DIGEST_123),
    });
    expectDecodeError(craft(twice('features')), /feature "a" appears twice/);
    expectDecodeError(craft(twice('outputs')), /output "a" appears twice/);
    expectDecodeError(craft({ counters: (w) => void w.varint(2).string('rows').varint(1).string('rows').varint(2) }), /counter "rows" appears twice/);
    const category = new ByteWriter().u8(1).varint(8).varint(4).varint(0).varint(2).string('x').varint(2).varint(0).string('x').varint(2).varint(0).finish();
    expectDecodeError(craft({ features: (w) => void sketch(w.varint(1).string('c'), 3, category) }), /category "x" appears twice/);
  });

  it('trailing bytes: after the outputs, and inside a sketch body beyond the sketch', () => {
    expectDecodeError(craft({ trailing: [0] }), /1 unexpected trailing bytes after summary/);
    expectDecodeError(craft({ trailing: [1, 2, 3] }), /3 unexpected trailing bytes after summary/);
    const padded = Uint8Array.from([...DIGEST_123, 0, 0]);
    expectDecodeError(craft({ features: (w) => void sketch(w.varint(1).string('f'), 1, padded) }), /feature "f".*2 unexpected trailing bytes/);
  });

  it('invalid header fields and sketches: flags, source kind, window, latency kind, unknown sketch kind, bad digests', () => {
    expectDecodeError(craft({ flags: 2 }), /unknown summary flags 0x2/);
    expectDecodeError(craft({ sourceKind: 4 }), /unknown source kind 4/);
    expectDecodeError(craft({ window: [2000, 1000] }), /window .* not finite and ordered/);
    expectDecodeError(craft({ window: [NaN, 1000] }), /window/);
    expectDecodeError(craft({ window: [0, Infinity] }), /window/);
    expectDecodeError(craft({ latency: (w) => void sketch(w, 2, new Histogram({ edges: [1] }).toBytes()) }), /latency must be a t-digest/);
    expectDecodeError(craft({ features: (w) => void sketch(w.varint(1).string('f'), 4, [1, 2, 3]) }), /feature "f" has unknown kind 4/);
    expectDecodeError(craft({ features: (w) => void sketch(w.varint(1).string('f'), 1, []) }), /feature "f".*truncated/);
    const body = (f: (w: ByteWriter) => ByteWriter) => craft({ features: (w) => void sketch(w.varint(1).string('f'), 1, f(new ByteWriter()).finish()) });
    expectDecodeError(
      body((w) => w.u8(2)),
      /unsupported t-digest format 2/,
    );
    expectDecodeError(
      body((w) => w.u8(1).u8(16)),
      /unknown t-digest flags/,
    );
    // An exact digest must hold distinct values, at most ⌈compression⌉ of them, from its min to its max.
    const exactDigest =
      (n: number, means: number[], min = means[0], max = means.at(-1)!) =>
      (w: ByteWriter) => {
        w.u8(1).u8(5).f64(n).varint(0).varint(0).varint(0).varint(means.length).f64(min).f64(max);
        for (const m of means) w.f64(m);
        for (const _ of means) w.varint(2);
        return w;
      };
    expectDecodeError(body(exactDigest(10, [1, 2, 2])), /t-digest means are not distinct and sorted at centroid 2/);
    expectDecodeError(
      body(
        exactDigest(
          10,
          Array.from({ length: 11 }, (_, i) => i),
        ),
      ),
      /an exact t-digest holds at most 10 values, got 11/,
    );
    expectDecodeError(body(exactDigest(10, [1, 2, 3], 0)), /an exact t-digest must start at its min and end at its max/);
    expectDecodeError(
      body((w) => w.u8(1).u8(0).f64(5).varint(0).varint(0).varint(0).varint(0)),
      /compression 5 is outside/,
    );
    expectDecodeError(
      body((w) => w.u8(1).u8(0).f64(NaN).varint(0).varint(0).varint(0).varint(0)),
      /compression NaN/,
    );
    const twoCentroids = (min: number, max: number, m1: number, m2: number, w1: number, w2: number) => (w: ByteWriter) =>
      w.u8(1).u8(1).f64(100).varint(0).varint(0).varint(0).varint(2).f64(min).f64(max).f64(m1).f64(m2).varint(w1).varint(w2);
    expect(decodeSummary(body(twoCentroids(0, 3, 1, 2, 1, 1))).features.get('f')!.count).toBe(2); // the template is valid
    expectDecodeError(body(twoCentroids(3, 0, 1, 2, 1, 1)), /min 3 and max 0/);
    expectDecodeError(body(twoCentroids(0, 3, 2, 1, 1, 1)), /not sorted at centroid 1/);
    expectDecodeError(body(twoCentroids(0, 3, 1, 2, 1, 0)), /weight 1 must be finite and > 0/);
    expectDecodeError(body(twoCentroids(0, Infinity, 1, 2, 1, 1)), /not finite/);
    expectDecodeError(body(twoCentroids(0, 3, 1, NaN, 1, 1)), /mean 1 is not finite/);
  });

  it('profileFromJSON on a valid JSON view with one value replaced by arbitrary JSON: a profile or a SummaryDecodeError, nothing else', () => {
    const json = profileToJSON(smallProfile());
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, path: (string | number)[]) => {
      paths.push(path);
      if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...path, Array.isArray(v) ? Number(k) : k]);
    };
    walk(json, []);
    fc.assert(
      fc.property(fc.nat(), fc.jsonValue(), (i, replacement) => {
        const copy = JSON.parse(JSON.stringify(json));
        const path = paths[i % paths.length];
        if (path.length === 0) return;
        let at = copy;
        for (const k of path.slice(0, -1)) at = at[k];
        at[path[path.length - 1]] = replacement;
        try {
          const p = profileFromJSON(copy);
          encodeSummary(p);
        } catch (e) {
          if (!(e instanceof SummaryDecodeError)) throw new Error(`profileFromJSON threw ${String(e)} at ${path.join('.')}`, { cause: e });
          expect(e.message.length).toBeGreaterThan(10);
        }
      }),
      { seed: 42, numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------

describe('encodeSummary refuses bad profiles with a RangeError or TypeError naming the field', () => {
  const bad = (f: (p: Profile) => void): Profile => {
    const p = smallProfile();
    f(p);
    return p;
  };
  const cases: [string, (p: Profile) => void, ErrorConstructor, RegExp][] = [
    ['a negative counter', (p) => void (p.counters.rows = -1), RangeError, /counter rows must be a non-negative integer, got -1/],
    ['a fractional counter', (p) => void (p.counters.timeouts = 1.5), RangeError, /counter timeouts/],
    ['a NaN counter', (p) => void (p.counters.errors = NaN), RangeError, /counter errors/],
    ['a non-integer sequence', (p) => void (p.sequence = 1.5), RangeError, /sequence must be a non-negative integer, got 1.5/],
    ['a negative sequence', (p) => void (p.sequence = -1), RangeError, /sequence/],
    ['a window end before its start', (p) => void (p.windowEnd = p.windowStart - 1), RangeError, /window \[1000, 999\) is not finite and ordered/],
    ['a NaN window start', (p) => void (p.windowStart = NaN), RangeError, /window/],
    ['an unknown source kind', (p) => void (p.source = { kind: 'cloud' as 'edge', id: '' }), RangeError, /unknown source kind cloud/],
    ['a 129-byte model name', (p) => void (p.model = 'm'.repeat(129)), RangeError, /model is longer than 128 UTF-8 bytes/],
    ['a model name of 43 three-byte characters (129 bytes)', (p) => void (p.model = '€'.repeat(43)), RangeError, /model is longer than 128/],
    ['a model name that is not a string', (p) => void (p.model = 42 as unknown as string), TypeError, /model must be a string/],
    ['a 129-byte model version', (p) => void (p.modelVersion = 'v'.repeat(129)), RangeError, /modelVersion is longer than 128/],
    ['a 129-byte source id', (p) => void (p.source.id = 's'.repeat(129)), RangeError, /source id is longer than 128/],
    ['a 257-byte feature name', (p) => void p.features.set('f'.repeat(257), new TDigest()), RangeError, /sketch name is longer than 256/],
    ['a 257-byte counter name', (p) => void (p.counters['c'.repeat(257)] = 1), RangeError, /counter name "c+" must match/],
    [
      '65 counters',
      (p) => {
        for (let i = 0; i < 60; i++) p.counters[`c${i}`] = i; // + the 5 of smallProfile
      },
      RangeError,
      /more than 64 counters/,
    ],
    [
      '1025 features',
      (p) => {
        for (let i = 0; i < 1025; i++) p.features.set(`f${i}`, new TDigest());
      },
      RangeError,
      /more than 1024 sketches/,
    ],
  ];
  it.each(cases)('%s', (_label, mutate, type, pattern) => {
    const p = bad(mutate);
    expect(() => encodeSummary(p)).toThrow(type);
    expect(() => encodeSummary(p)).toThrow(pattern);
  });

  it('the limits themselves are accepted: 128-byte model, 256-byte names, 64 counters, sequence 2^53 - 1', () => {
    const p = smallProfile();
    p.model = 'm'.repeat(128);
    p.features.set('f'.repeat(256), new TDigest());
    for (let i = 0; i < 59; i++) p.counters[`c${i}`] = i; // + the 5 of smallProfile
    p.sequence = Number.MAX_SAFE_INTEGER;
    expect(Object.keys(p.counters)).toHaveLength(64);
    const bytes = encodeSummary(p);
    expect(sameBytes(encodeSummary(decodeSummary(bytes)), bytes)).toBe(true);
  });
});

describe('time slots (the time-matched reference a baseline carries, core/clock.ts)', () => {
  const slotProfile = (values: number[], airports: string[]): Profile => {
    const p = createProfile({ model: 'm', modelVersion: '1', source: { kind: 'baseline', id: 'training' }, windowStart: 0, windowEnd: 1 });
    p.features.set('hour', new TDigest().addAll(values));
    const c = new CategoricalSketch({ capacity: 8 });
    for (const a of airports) c.add(a);
    p.features.set('origin', c);
    p.counters.rows = values.length;
    return p;
  };
  const slotted = (): Profile => {
    const p = slotProfile([0, 7, 7, 23], ['ORD', 'ATL', 'ATL', 'SFO']);
    p.slots = {
      minutes: 20,
      clock: 'event',
      profiles: new Map([
        [0, slotProfile([0], ['SFO'])],
        [21, slotProfile([7, 7], ['ATL', 'ATL'])],
        [71, slotProfile([23], ['ORD'])],
      ]),
    };
    return p;
  };

  it('round-trip byte for byte, through the binary form and the JSON view, and merge slot by slot', () => {
    const p = slotted();
    const bytes = encodeSummary(p);
    const back = decodeSummary(bytes);
    expect(back.slots?.minutes).toBe(20);
    expect(back.slots?.clock).toBe('event');
    expect([...back.slots!.profiles.keys()]).toEqual([0, 21, 71]);
    expect((back.slots!.profiles.get(21)!.features.get('hour') as TDigest).count).toBe(2);
    expect(encodeSummary(back)).toEqual(bytes);
    const json = JSON.parse(JSON.stringify(profileToJSON(back)));
    expect(Object.keys(json.slots.profiles)).toEqual(['0', '21', '71']);
    expect(encodeSummary(profileFromJSON(json))).toEqual(bytes);

    const twice = mergeProfiles(back, decodeSummary(bytes));
    expect((twice.slots!.profiles.get(21)!.features.get('hour') as TDigest).count).toBe(4);
    // Both inputs unchanged; a profile without slots merged in drops them (its rows have no time of day).
    expect((back.slots!.profiles.get(21)!.features.get('hour') as TDigest).count).toBe(2);
    expect(mergeProfiles(back, slotProfile([3], ['SFO'])).slots).toBeUndefined();
    const copy = cloneProfile(back);
    copy.slots!.profiles.get(0)!.counters.rows = 99;
    expect(back.slots!.profiles.get(0)!.counters.rows).toBe(1);
  });

  it('refuse to encode slots that are not slots of the day', () => {
    const p = slotted();
    p.slots!.minutes = 7;
    expect(() => encodeSummary(p)).toThrow(/does not divide a day/);
    const q = slotted();
    q.slots!.profiles.set(72, slotProfile([1], ['SFO']));
    expect(() => encodeSummary(q)).toThrow(/slot 72 is not a slot of the day at 20 minutes/);
    const r = slotted();
    r.slots!.profiles.get(0)!.slots = { minutes: 60, clock: 'wall', profiles: new Map([[1, slotProfile([1], ['SFO'])]]) };
    expect(() => encodeSummary(r)).toThrow(/slot 0 has slots of its own/);
  });

  it('hostile slot sections: each refused by name, as a SummaryDecodeError', () => {
    const inner = encodeSummary({ ...slotProfile([1], ['SFO']), model: 'model', modelVersion: '1.0' });
    const withSlots = (section: (w: ByteWriter) => void) => {
      const w = new ByteWriter();
      section(w);
      return craft({ flags: 1, trailing: [...w.finish()] });
    };
    const one =
      (slot: number, bytes: Uint8Array, minutes = 20, clock = 1) =>
      (w: ByteWriter) =>
        void w.varint(minutes).u8(clock).varint(1).varint(slot).varint(bytes.length).bytes(bytes);
    // The well-formed one decodes: it is the crafted summary's own model and version.
    expect(decodeSummary(withSlots(one(3, inner))).slots?.profiles.get(3)?.counters.rows).toBe(1);
    expectDecodeError(withSlots(one(3, inner, 7)), /slot length 7 minutes does not divide a day/);
    expectDecodeError(withSlots(one(3, inner, 0)), /slot length 0 minutes/);
    expectDecodeError(withSlots(one(3, inner, 20, 2)), /unknown slot clock 2/);
    expectDecodeError(withSlots(one(72, inner)), /slot 72 is not a slot of the day at 20 minutes/);
    expectDecodeError(
      withSlots((w) => void w.varint(20).u8(0).varint(2).varint(5).varint(inner.length).bytes(inner).varint(5).varint(inner.length).bytes(inner)),
      /slot 5 is not a slot of the day at 20 minutes after 5/,
    );
    expectDecodeError(
      withSlots((w) => void w.varint(20).u8(0).varint(73)),
      /slot count 73 exceeds the limit 72/,
    );
    expectDecodeError(
      withSlots((w) => void w.varint(20).u8(0).varint(0)),
      /slot flag set with no slots/,
    );
    const corrupt = inner.slice();
    corrupt[20] ^= 0xff;
    expectDecodeError(withSlots(one(3, corrupt)), /slot 3: CRC-32 mismatch/);
    const nested = encodeSummary({ ...slotted(), model: 'model', modelVersion: '1.0' });
    expectDecodeError(withSlots(one(3, nested)), /slot 3: unknown summary flags 0x1/);
    const other = encodeSummary({ ...slotProfile([1], ['SFO']), model: 'other', modelVersion: '1.0' });
    expectDecodeError(withSlots(one(3, other)), /slot 3 is of other@1.0/);
    expectDecodeError(
      withSlots(
        (w) =>
          void w
            .varint(20)
            .u8(0)
            .varint(1)
            .varint(3)
            .varint(inner.length + 50)
            .bytes(inner),
      ),
      /slot 3/,
    );
  });
});
