/**
 * A Profile is what one source saw of one model version during one window: a sketch per
 * input feature and per output, a latency digest and counters. Profiles merge (the
 * aggregator merges thousands), travel in the compact binary summary format, and have a JSON
 * view for humans and Python tools.
 *
 * Summary format, version 1 (little-endian):
 *
 *   magic "DWSM" · u8 version (1) · u8 flags (0)
 *   string model · string modelVersion · u8 source kind · string source id
 *   varint sequence · f64 windowStart · f64 windowEnd (ms since the epoch, [start, end))
 *   varint counters · (string name · varint value)*
 *   sketch latency
 *   varint features · (string name · sketch)*
 *   varint outputs  · (string name · sketch)*
 *   [flags bit 0] varint slot minutes · u8 clock (0 wall, 1 event) · varint slots · (varint slot · varint byte length · summary)*
 *   u32 CRC-32 of every byte before it
 *
 *   string := varint byte length · UTF-8 bytes
 *   sketch := u8 kind (1 t-digest, 2 histogram, 3 categorical) · varint byte length · body
 *             (the body is the sketch's own toBytes(); Sketch.encode() writes the whole
 *             record, decodeSketch reads one)
 *
 * Slots (flag bit 0, baselines only): the reference split by the time of day (UTC) of its rows'
 * timestamps into spans of `slot minutes` (dividing a day), slot i holding [i·minutes, (i + 1)·minutes)
 * of each day; each a whole summary without slots of its own, slots ascending. `clock` says what
 * the timestamps were: arrival (`wall`) or the traffic's own event time (`event`, what replays send
 * as x-event-time). They are what a live window on the same clock is compared with at its own
 * times of day (core/clock.ts, the time-matched reference).
 *
 * decodeSummary checks magic, version and CRC before parsing, bounds every declared length by
 * the bytes that remain, and throws only SummaryDecodeError.
 */
import { ByteReader, ByteWriter, isWellFormed } from './bytes.ts';
import { CategoricalSketch } from './categorical.ts';
import { crc32 } from './crc32.ts';
import { SketchMergeError, SummaryDecodeError } from './errors.ts';
import { Histogram, sameEdges } from './histogram.ts';
import { frameSketch, SKETCH_WIRE_CODES } from './sketch.ts';
import { TDigest, type TDigestBytesOptions } from './tdigest.ts';

/**
 * A sketch of a profile: one of the three classes, each implementing the Sketch interface of
 * sketch.ts (merge, clone, encode, describe), told apart by `kind` ('tdigest' narrows to
 * TDigest, and so on).
 */
export type Sketch = TDigest | Histogram | CategoricalSketch;
export type SourceKind = 'edge' | 'browser' | 'baseline' | 'merged';
export const SOURCE_KINDS: readonly SourceKind[] = ['edge', 'browser', 'baseline', 'merged'];

/** Counters every profile carries; others may be added by name. */
export interface Counters {
  rows: number;
  errors: number;
  cacheHits: number;
  fallbacks: number;
  [name: string]: number;
}

export interface Profile {
  model: string;
  modelVersion: string;
  source: { kind: SourceKind; id: string };
  /** Per source, increasing; with the source it identifies a summary for deduplication. */
  sequence: number;
  /** Window [windowStart, windowEnd) in ms since the epoch. */
  windowStart: number;
  windowEnd: number;
  features: Map<string, Sketch>;
  outputs: Map<string, Sketch>;
  latency: TDigest;
  counters: Counters;
  /**
   * Baselines only: the same reference split by the time of day (UTC) of its rows' timestamps
   * (the time-matched reference, core/clock.ts). Absent when the reference rows had no timestamps.
   */
  slots?: TimeSlots;
}

/** A reference split by time of day: `profiles.get(i)` holds its rows of [i·minutes, (i + 1)·minutes) of each day (UTC). */
export interface TimeSlots {
  /** Slot length in minutes; divides a day (1440). */
  minutes: number;
  /**
   * The clock of the reference's timestamps, as TELEMETRY_CLOCK names them: `wall` (when rows
   * arrived) or `event` (the rows' own time). Windows are matched only on the same clock.
   */
  clock: SlotClock;
  profiles: Map<number, Profile>;
}

export type SlotClock = 'wall' | 'event';
export const SLOT_CLOCKS: readonly SlotClock[] = ['wall', 'event'];

/** Whether `m` is a valid slot length in minutes: a whole number dividing a day, 1 to 720. */
export function validSlotMinutes(m: number): boolean {
  return Number.isInteger(m) && m >= 1 && m <= 720 && 1440 % m === 0;
}

export const SUMMARY_MAGIC = Uint8Array.of(0x44, 0x57, 0x53, 0x4d); // "DWSM"
export const SUMMARY_VERSION = 1;
/** Limits that keep a decoded summary small whatever the input claims. */
export const SUMMARY_LIMITS = { nameBytes: 256, modelBytes: 128, sourceIdBytes: 128, counters: 64, sketches: 1024 } as const;
/** Counter names: identifiers, so that they are safe as object keys (no __proto__) and in JSON. */
export const COUNTER_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

export interface CreateProfileOptions {
  model: string;
  modelVersion: string;
  source?: { kind: SourceKind; id: string };
  sequence?: number;
  windowStart: number;
  windowEnd?: number;
  /** Compression of the latency digest. Default 100. */
  compression?: number;
}

export function createProfile({
  model,
  modelVersion,
  source = { kind: 'edge', id: '' },
  sequence = 0,
  windowStart,
  windowEnd = windowStart,
  compression = 100,
}: CreateProfileOptions): Profile {
  return {
    model,
    modelVersion,
    source: { ...source },
    sequence,
    windowStart,
    windowEnd,
    features: new Map(),
    outputs: new Map(),
    latency: new TDigest({ compression }),
    counters: { rows: 0, errors: 0, cacheHits: 0, fallbacks: 0 },
  };
}

/**
 * A new profile holding everything `a` and `b` saw; neither is changed. Both must describe
 * the same model and version. The window becomes the smallest one covering both. The source
 * is kept when both share it (with the larger sequence); otherwise it becomes
 * { kind: the common kind or 'merged', id: '' } with sequence 0.
 */
export function mergeProfiles(a: Profile, b: Profile): Profile {
  return mergeInto(cloneProfile(a), b);
}

/** A deep copy: nothing it holds is shared with `p`. */
export function cloneProfile(p: Profile): Profile {
  const copy: Profile = {
    ...p,
    source: { ...p.source },
    features: new Map([...p.features].map(([k, v]) => [k, v.clone()])),
    outputs: new Map([...p.outputs].map(([k, v]) => [k, v.clone()])),
    latency: p.latency.clone(),
    counters: { ...p.counters },
  };
  if (p.slots) copy.slots = { minutes: p.slots.minutes, clock: p.slots.clock, profiles: new Map([...p.slots.profiles].map(([i, s]) => [i, cloneProfile(s)])) };
  return copy;
}

/**
 * Merges `from` into `into` in place (the cheap way to fold many profiles into one): `into`
 * then holds everything both saw, as mergeProfiles(into, from) would, and `from` is not
 * changed. Everything is checked before anything changes, so on a SketchMergeError (another
 * model or version, a sketch of another kind, histograms with other edges) `into` is intact.
 * Slots (baselines) of the same length merge slot by slot; the result keeps slots only when both
 * had them alike (rows without a time of day have no slot to go to).
 */
export function mergeInto(into: Profile, from: Profile): Profile {
  const slotted = into.slots !== undefined && from.slots !== undefined && into.slots.minutes === from.slots.minutes && into.slots.clock === from.slots.clock;
  checkMergeable(into, from);
  // Checked first too: a slot that cannot merge leaves `into` intact.
  if (slotted)
    for (const [h, s] of from.slots!.profiles) {
      const mine = into.slots!.profiles.get(h);
      if (mine) checkMergeable(mine, s);
    }
  const counterOf = (c: Counters, k: string) => (Object.hasOwn(c, k) ? c[k] : 0);
  const sameSource = into.source.kind === from.source.kind && into.source.id === from.source.id;
  for (const [k, v] of Object.entries(from.counters)) into.counters[k] = counterOf(into.counters, k) + v; // proto-safe: own properties only (counterOf)
  if (sameSource) into.sequence = Math.max(into.sequence, from.sequence);
  else {
    into.source = { kind: into.source.kind === from.source.kind ? into.source.kind : 'merged', id: '' };
    into.sequence = 0;
  }
  into.windowStart = Math.min(into.windowStart, from.windowStart);
  into.windowEnd = Math.max(into.windowEnd, from.windowEnd);
  for (const [k, v, m, mine] of sketchPairs(into, from)) {
    if (m) m.merge(v);
    else mine.set(k, v.clone());
  }
  into.latency.merge(from.latency);
  if (slotted)
    for (const [h, s] of from.slots!.profiles) {
      const mine = into.slots!.profiles.get(h);
      if (mine) mergeInto(mine, s);
      else into.slots!.profiles.set(h, cloneProfile(s));
    }
  else delete into.slots;
  return into;
}

/** Each sketch of `from` (features, then outputs) with `into`'s of the same name, if any, and the map that holds it. */
function* sketchPairs(into: Profile, from: Profile): Generator<[string, Sketch, Sketch | undefined, Map<string, Sketch>]> {
  for (const [mine, theirs] of [
    [into.features, from.features],
    [into.outputs, from.outputs],
  ] as const)
    for (const [k, v] of theirs) yield [k, v, mine.get(k), mine];
}

/** Throws SketchMergeError when `from` cannot be merged into `into` (the slots apart); changes nothing. */
function checkMergeable(into: Profile, from: Profile): void {
  if (into.model !== from.model || into.modelVersion !== from.modelVersion) {
    throw new SketchMergeError(`cannot merge profiles of ${into.model}@${into.modelVersion} and ${from.model}@${from.modelVersion}`);
  }
  for (const [k, v, m] of sketchPairs(into, from)) {
    if (!m) continue;
    if (m.kind !== v.kind) throw new SketchMergeError(`sketch "${k}" has different kinds in the two profiles`);
    if (m.kind === 'histogram' && v.kind === 'histogram' && !sameEdges(m.edges, v.edges))
      throw new SketchMergeError(`cannot merge histograms "${k}" with different edges`);
    checkSums(`sketch "${k}"`, m, v);
  }
  // Checked arithmetic: every integer the summary format stores as a varint must stay exact, so
  // that nothing merged can later fail to encode (a fold or a flush that throws there wedges).
  for (const [k, v] of Object.entries(from.counters)) {
    const mine = Object.hasOwn(into.counters, k) ? into.counters[k] : 0; // proto-safe: own properties only
    if (!Number.isSafeInteger(mine + v)) throw new SketchMergeError(`counter "${k}" would pass 2^53 - 1 (${mine} + ${v})`);
  }
  checkSums('latency', into.latency, from.latency);
}

/** Throws SketchMergeError when merging `b` into `a` would take an integer count past 2^53 - 1. */
function checkSums(what: string, a: Sketch, b: Sketch): void {
  const pairs: [string, number, number][] =
    a.kind === 'tdigest' && b.kind === 'tdigest'
      ? [
          ['NaN count', a.nanCount, b.nanCount],
          ['+Infinity count', a.posInfCount, b.posInfCount],
          ['-Infinity count', a.negInfCount, b.negInfCount],
        ]
      : a.kind === 'categorical' && b.kind === 'categorical'
        ? [
            ['total', a.count, b.count],
            // A count (or the absent bound) after the merge is at most the largest of each side plus both bounds.
            ['count', a.maxCount + a.absentBound, b.maxCount + b.absentBound],
          ]
        : [];
  for (const [name, x, y] of pairs) {
    if (!Number.isSafeInteger(x + y)) throw new SketchMergeError(`${what}: ${name} would pass 2^53 - 1 (${x} + ${y})`);
  }
}

const utf8 = new TextEncoder();

function checkName(what: string, s: string, maxBytes: number): void {
  if (typeof s !== 'string') throw new TypeError(`${what} must be a string`);
  if (!isWellFormed(s)) throw new TypeError(`${what} is not well-formed UTF-16 (lone surrogate)`);
  if (utf8.encode(s).length > maxBytes) throw new RangeError(`${what} is longer than ${maxBytes} UTF-8 bytes`);
}

/** The profile in the binary summary format (see the header). The profile is not changed. */
export function encodeSummary(profile: Profile, opts: TDigestBytesOptions = {}): Uint8Array {
  const { model, modelVersion, source, sequence, windowStart, windowEnd } = profile;
  checkName('model', model, SUMMARY_LIMITS.modelBytes);
  checkName('modelVersion', modelVersion, SUMMARY_LIMITS.modelBytes);
  checkName('source id', source.id, SUMMARY_LIMITS.sourceIdBytes);
  const kind = SOURCE_KINDS.indexOf(source.kind);
  if (kind < 0) throw new RangeError(`unknown source kind ${source.kind}`);
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new RangeError(`sequence must be a non-negative integer, got ${sequence}`);
  if (!(Number.isFinite(windowStart) && Number.isFinite(windowEnd) && windowStart <= windowEnd)) {
    throw new RangeError(`window [${windowStart}, ${windowEnd}) is not finite and ordered`);
  }
  const counters = Object.entries(profile.counters);
  if (counters.length > SUMMARY_LIMITS.counters) throw new RangeError(`more than ${SUMMARY_LIMITS.counters} counters`);
  for (const m of [profile.features, profile.outputs]) {
    if (m.size > SUMMARY_LIMITS.sketches) throw new RangeError(`more than ${SUMMARY_LIMITS.sketches} sketches`);
  }

  const slotMinutes = profile.slots?.minutes ?? 0;
  const slots = profile.slots ? [...profile.slots.profiles].sort((a, b) => a[0] - b[0]) : [];
  if (slots.length > 0 && !validSlotMinutes(slotMinutes)) throw new RangeError(`slot length ${slotMinutes} minutes does not divide a day`);
  const slotClock = profile.slots ? SLOT_CLOCKS.indexOf(profile.slots.clock) : 0;
  if (slotClock < 0) throw new RangeError(`slot clock ${profile.slots?.clock} is not one of ${SLOT_CLOCKS.join(', ')}`);
  for (const [i, p] of slots) {
    if (!(Number.isInteger(i) && i >= 0 && i < 1440 / slotMinutes)) throw new RangeError(`slot ${i} is not a slot of the day at ${slotMinutes} minutes`);
    if (p.slots) throw new RangeError(`slot ${i} has slots of its own`);
  }
  const w = new ByteWriter(1024);
  w.bytes(SUMMARY_MAGIC)
    .u8(SUMMARY_VERSION)
    .u8(slots.length > 0 ? 1 : 0);
  w.string(model).string(modelVersion).u8(kind).string(source.id);
  // + 0 turns −0 into +0: the format is canonical, and JSON cannot carry −0.
  w.varint(sequence)
    .f64(windowStart + 0)
    .f64(windowEnd + 0);
  w.varint(counters.length);
  for (const [name, value] of counters) {
    if (!COUNTER_NAME.test(name)) throw new RangeError(`counter name ${JSON.stringify(name)} must match ${COUNTER_NAME}`);
    if (Object.hasOwn(Object.prototype, name)) throw new RangeError(`counter name ${JSON.stringify(name)} is a member of Object.prototype`);
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`counter ${name} must be a non-negative integer, got ${value}`);
    w.string(name).varint(value);
  }
  w.bytes(profile.latency.encode(opts));
  for (const m of [profile.features, profile.outputs]) {
    w.varint(m.size);
    for (const [name, s] of m) {
      checkName('sketch name', name, SUMMARY_LIMITS.nameBytes);
      w.string(name).bytes(s.encode(opts));
    }
  }
  if (slots.length > 0) {
    w.varint(slotMinutes).u8(slotClock).varint(slots.length);
    for (const [h, p] of slots) {
      const bytes = encodeSummary(p, opts);
      w.varint(h).varint(bytes.length).bytes(bytes);
    }
  }
  const body = w.finish();
  const out = new ByteWriter(body.length + 4);
  return out.bytes(body).u32(crc32(body)).finish();
}

/** The reader of each sketch kind code. */
const SKETCH_READERS = new Map<number, (r: ByteReader) => Sketch>([
  [SKETCH_WIRE_CODES.tdigest, (r) => TDigest.read(r)],
  [SKETCH_WIRE_CODES.histogram, (r) => Histogram.read(r)],
  [SKETCH_WIRE_CODES.categorical, (r) => CategoricalSketch.read(r)],
]);

function readSketch(r: ByteReader, what: string): Sketch {
  const kindAt = r.offset;
  const kind = r.u8(`${what} kind`);
  const read = SKETCH_READERS.get(kind);
  if (!read) throw new SummaryDecodeError(`${what} has unknown kind ${kind}`, { offset: kindAt });
  const len = r.count(`${what} length`, 1);
  const start = r.offset;
  const sub = new ByteReader(r.bytes(len, what));
  try {
    const s = read(sub);
    sub.end(what);
    return s;
  } catch (e) {
    // Offsets inside the body are relative to it; report them in the whole input.
    if (e instanceof SummaryDecodeError) throw new SummaryDecodeError(`${what}: ${e.reason}`, { offset: start + (e.offset ?? 0), cause: e });
    throw e;
  }
}

function readSketches(r: ByteReader, what: string): Map<string, Sketch> {
  const n = r.count(`${what} count`, 4, SUMMARY_LIMITS.sketches);
  const m = new Map<string, Sketch>();
  for (let i = 0; i < n; i++) {
    const name = r.string(`${what} name`, SUMMARY_LIMITS.nameBytes);
    if (m.has(name)) r.fail(`${what} ${JSON.stringify(name)} appears twice`);
    m.set(name, readSketch(r, `${what} ${JSON.stringify(name)}`));
  }
  return m;
}

/**
 * Decodes a summary. Throws SummaryDecodeError, and nothing else, for anything malformed:
 * short input, wrong magic or version, CRC mismatch, lengths past the end, invalid sketches.
 */
export function decodeSummary(bytes: Uint8Array): Profile {
  return decodeOnly('summary', () => decodeUnchecked(bytes));
}

/**
 * Decodes one sketch record as Sketch.encode() writes it (and the summary format holds it).
 * Throws SummaryDecodeError, and nothing else, for anything malformed or trailing bytes.
 */
export function decodeSketch(bytes: Uint8Array): Sketch {
  return decodeOnly('sketch', () => {
    if (!(bytes instanceof Uint8Array)) throw new SummaryDecodeError('sketch must be a Uint8Array');
    const r = new ByteReader(bytes);
    const s = readSketch(r, 'sketch');
    r.end('sketch');
    return s;
  });
}

function decodeOnly<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    if (e instanceof SummaryDecodeError) throw e;
    // Defence in depth: any other failure in parsing is still the input's fault.
    throw new SummaryDecodeError(`malformed ${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

function decodeUnchecked(bytes: Uint8Array, slotsAllowed = true): Profile {
  if (!(bytes instanceof Uint8Array)) throw new SummaryDecodeError('summary must be a Uint8Array');
  if (bytes.length < 10) throw new SummaryDecodeError(`summary is ${bytes.length} bytes, shorter than any valid one`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== SUMMARY_MAGIC[i]) throw new SummaryDecodeError('not a summary: bad magic bytes', { offset: 0 });
  }
  if (bytes[4] !== SUMMARY_VERSION)
    throw new SummaryDecodeError(`unsupported summary version ${bytes[4]} (this build reads ${SUMMARY_VERSION})`, { offset: 4 });
  const end = bytes.length - 4;
  const stored = new DataView(bytes.buffer, bytes.byteOffset + end, 4).getUint32(0, true);
  const actual = crc32(bytes, 0, end);
  if (stored !== actual) throw new SummaryDecodeError(`CRC-32 mismatch: stored ${hex(stored)}, computed ${hex(actual)}`, { offset: end });

  const r = new ByteReader(bytes, 5, end);
  const flags = r.u8('flags');
  if ((flags & ~1) !== 0 || (flags !== 0 && !slotsAllowed)) r.fail(`unknown summary flags 0x${flags.toString(16)}`);
  const model = r.string('model', SUMMARY_LIMITS.modelBytes);
  const modelVersion = r.string('modelVersion', SUMMARY_LIMITS.modelBytes);
  const kindIndex = r.u8('source kind');
  const kind = SOURCE_KINDS[kindIndex];
  if (kind === undefined) r.fail(`unknown source kind ${kindIndex}`);
  const id = r.string('source id', SUMMARY_LIMITS.sourceIdBytes);
  const sequence = r.varint('sequence');
  const windowStart = r.f64('windowStart');
  const windowEnd = r.f64('windowEnd');
  if (!(Number.isFinite(windowStart) && Number.isFinite(windowEnd) && windowStart <= windowEnd)) {
    r.fail(`window [${windowStart}, ${windowEnd}) is not finite and ordered`);
  }
  const nCounters = r.count('counter count', 2, SUMMARY_LIMITS.counters);
  const counters = { rows: 0, errors: 0, cacheHits: 0, fallbacks: 0 } as Counters;
  const seen = new Set<string>();
  for (let i = 0; i < nCounters; i++) {
    const name = r.string('counter name', 64);
    if (!COUNTER_NAME.test(name)) r.fail(`counter name ${JSON.stringify(name)} must match ${COUNTER_NAME}`);
    if (Object.hasOwn(Object.prototype, name)) r.fail(`counter name ${JSON.stringify(name)} is a member of Object.prototype`);
    if (seen.has(name)) r.fail(`counter ${JSON.stringify(name)} appears twice`);
    seen.add(name);
    counters[name] = r.varint(`counter ${name}`); // proto-safe: name matches COUNTER_NAME and is no Object.prototype member
  }
  // The four standard counters are always present, and count against the limit.
  if (Object.keys(counters).length > SUMMARY_LIMITS.counters) r.fail(`more than ${SUMMARY_LIMITS.counters} counters with the standard four`);
  const latency = readSketch(r, 'latency');
  if (latency.kind !== 'tdigest') throw new SummaryDecodeError('latency must be a t-digest', { offset: r.offset });
  const features = readSketches(r, 'feature');
  const outputs = readSketches(r, 'output');
  const profile: Profile = { model, modelVersion, source: { kind, id }, sequence, windowStart, windowEnd, features, outputs, latency, counters };
  if (flags & 1) {
    const minutes = r.varint('slot minutes');
    if (!validSlotMinutes(minutes)) r.fail(`slot length ${minutes} minutes does not divide a day`);
    const clockCode = r.u8('slot clock');
    const clock = SLOT_CLOCKS[clockCode];
    if (clock === undefined) r.fail(`unknown slot clock ${clockCode}`);
    const n = r.count('slot count', 12, 1440 / minutes);
    if (n === 0) r.fail('slot flag set with no slots');
    const profiles = new Map<number, Profile>();
    profile.slots = { minutes, clock, profiles };
    let previous = -1;
    for (let i = 0; i < n; i++) {
      const h = r.varint('slot');
      if (h >= 1440 / minutes || h <= previous) r.fail(`slot ${h} is not a slot of the day at ${minutes} minutes after ${previous}`);
      previous = h;
      const len = r.count(`slot ${h} length`, 1);
      const start = r.offset;
      const inner = r.bytes(len, `slot ${h}`);
      let slot: Profile;
      try {
        slot = decodeUnchecked(inner, false);
      } catch (e) {
        // Offsets inside the slot are relative to it; report them in the whole input.
        if (e instanceof SummaryDecodeError) throw new SummaryDecodeError(`slot ${h}: ${e.reason}`, { offset: start + (e.offset ?? 0), cause: e });
        throw e;
      }
      if (slot.model !== model || slot.modelVersion !== modelVersion) r.fail(`slot ${h} is of ${slot.model}@${slot.modelVersion}`);
      profiles.set(h, slot);
    }
  }
  r.end('summary');
  return profile;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------
// JSON view

export type SketchJSON =
  | {
      kind: 'tdigest';
      compression: number;
      count: number;
      min: number | null;
      max: number | null;
      nanCount: number;
      posInfCount: number;
      negInfCount: number;
      /** [mean, weight] pairs, means ascending. */
      centroids: [number, number][];
      /** Every centroid is one distinct value with its exact weight (TDigest.exact). */
      exact: boolean;
      /** Every value seen is an integer (TDigest.integers): quantiles are integers. */
      integers: boolean;
      /** Convenience for readers: p1, p5, p25, p50, p75, p95, p99 (null when empty). */
      quantiles: Record<string, number | null>;
    }
  | { kind: 'histogram'; edges: number[]; counts: number[]; nanCount: number }
  | { kind: 'categorical'; capacity: number; count: number; absentBound: number; items: { value: string; count: number; error: number }[] };

export interface ProfileJSON {
  format: 'driftwatch-summary';
  version: 1;
  model: string;
  modelVersion: string;
  source: { kind: SourceKind; id: string };
  sequence: number;
  windowStart: number;
  windowEnd: number;
  counters: Record<string, number>;
  latency: SketchJSON;
  features: Record<string, SketchJSON>;
  outputs: Record<string, SketchJSON>;
  /** Baselines with a time-matched reference: the slot length and the profile of each slot of the day (keys "0", "1", …). */
  slots?: { minutes: number; clock: SlotClock; profiles: Record<string, ProfileJSON> };
}

const JSON_QUANTILES: [string, number][] = [
  ['p1', 0.01],
  ['p5', 0.05],
  ['p25', 0.25],
  ['p50', 0.5],
  ['p75', 0.75],
  ['p95', 0.95],
  ['p99', 0.99],
];

export function sketchToJSON(s: Sketch): SketchJSON {
  if (s.kind === 'tdigest') {
    const { means, weights } = s.centroids();
    const empty = s.count === 0;
    return {
      kind: 'tdigest',
      compression: s.compression,
      count: s.count,
      min: empty ? null : s.min,
      max: empty ? null : s.max,
      nanCount: s.nanCount,
      posInfCount: s.posInfCount,
      negInfCount: s.negInfCount,
      centroids: Array.from(means, (m, i) => [m, weights[i]]),
      exact: s.exact,
      integers: s.integers && s.count > 0,
      quantiles: Object.fromEntries(JSON_QUANTILES.map(([k, q]) => [k, empty ? null : s.quantile(q)])),
    };
  }
  if (s.kind === 'histogram') return { kind: 'histogram', edges: Array.from(s.edges), counts: Array.from(s.counts()), nanCount: s.nanCount };
  return { kind: 'categorical', capacity: s.capacity, count: s.count, absentBound: s.absentBound, items: s.top() };
}

/** The profile as plain JSON-safe data. `profileFromJSON` turns it back into the same profile. */
export function profileToJSON(p: Profile): ProfileJSON {
  const sketches = (m: Map<string, Sketch>) => Object.fromEntries([...m].map(([k, s]) => [k, sketchToJSON(s)]));
  return {
    format: 'driftwatch-summary',
    version: 1,
    model: p.model,
    modelVersion: p.modelVersion,
    source: { ...p.source },
    sequence: p.sequence,
    windowStart: p.windowStart,
    windowEnd: p.windowEnd,
    counters: { ...p.counters },
    latency: sketchToJSON(p.latency),
    features: sketches(p.features),
    outputs: sketches(p.outputs),
    ...(p.slots
      ? {
          slots: {
            minutes: p.slots.minutes,
            clock: p.slots.clock,
            profiles: Object.fromEntries([...p.slots.profiles].sort((a, b) => a[0] - b[0]).map(([i, s]) => [String(i), profileToJSON(s)])),
          },
        }
      : {}),
  };
}

/**
 * Rebuilds a profile from its JSON view by writing the binary form and decoding it, so the
 * JSON is held to exactly the checks binary summaries are. Throws SummaryDecodeError when
 * the JSON does not describe a valid profile.
 */
export function profileFromJSON(json: unknown): Profile {
  const fail = (m: string): never => {
    throw new SummaryDecodeError(`profile JSON: ${m}`);
  };
  const obj = (v: unknown, what: string): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : fail(`${what} must be an object`);
  const num = (v: unknown, what: string): number => (typeof v === 'number' ? v : fail(`${what} must be a number`));
  const str = (v: unknown, what: string): string => (typeof v === 'string' ? v : fail(`${what} must be a string`));
  const arr = (v: unknown, what: string): unknown[] => (Array.isArray(v) ? v : fail(`${what} must be an array`));

  const sketchBytes = (v: unknown, what: string): Uint8Array => {
    const s = obj(v, what);
    const w = new ByteWriter(256);
    try {
      if (s.kind === 'tdigest') {
        const centroids = arr(s.centroids, `${what}.centroids`).map((c, i) => arr(c, `${what}.centroids[${i}]`));
        let integral = true;
        for (const c of centroids) integral &&= Number.isSafeInteger(c[1]);
        w.u8(1)
          .u8(1 | (integral ? 0 : 2) | (s.exact === true && centroids.length > 0 ? 4 : 0) | (s.integers === true && centroids.length > 0 ? 8 : 0))
          .f64(num(s.compression, `${what}.compression`));
        w.varint(num(s.nanCount, `${what}.nanCount`))
          .varint(num(s.posInfCount, `${what}.posInfCount`))
          .varint(num(s.negInfCount, `${what}.negInfCount`));
        w.varint(centroids.length);
        if (centroids.length > 0) {
          w.f64(num(s.min, `${what}.min`)).f64(num(s.max, `${what}.max`));
          for (const c of centroids) w.f64(num(c[0], `${what} centroid mean`));
          for (const c of centroids) integral ? w.varint(num(c[1], `${what} centroid weight`)) : w.f64(num(c[1], `${what} centroid weight`));
        }
        return frameSketch('tdigest', w.finish());
      }
      if (s.kind === 'histogram') {
        const edges = arr(s.edges, `${what}.edges`).map((e) => num(e, `${what}.edges[]`));
        const counts = arr(s.counts, `${what}.counts`).map((c) => num(c, `${what}.counts[]`));
        if (counts.length !== edges.length + 1) fail(`${what}.counts must have one more entry than edges`);
        const nan = num(s.nanCount, `${what}.nanCount`);
        const integral = [...counts, nan].every((c) => Number.isSafeInteger(c));
        w.u8(1)
          .u8(integral ? 0 : 1)
          .varint(edges.length);
        for (const e of edges) w.f64(e);
        for (const c of [...counts, nan]) integral ? w.varint(c) : w.f64(c);
        return frameSketch('histogram', w.finish());
      }
      if (s.kind === 'categorical') {
        const items = arr(s.items, `${what}.items`).map((it, i) => obj(it, `${what}.items[${i}]`));
        w.u8(1)
          .varint(num(s.capacity, `${what}.capacity`))
          .varint(num(s.count, `${what}.count`))
          .varint(num(s.absentBound, `${what}.absentBound`));
        w.varint(items.length);
        for (const it of items)
          w.string(str(it.value, `${what} item value`))
            .varint(num(it.count, `${what} item count`))
            .varint(num(it.error, `${what} item error`));
        return frameSketch('categorical', w.finish());
      }
    } catch (e) {
      if (e instanceof RangeError || e instanceof TypeError) fail(`${what}: ${e.message}`);
      throw e;
    }
    return fail(`${what}.kind must be tdigest, histogram or categorical`);
  };

  const p = obj(json, 'profile');
  if (p.format !== 'driftwatch-summary' || p.version !== 1) fail('format must be "driftwatch-summary" version 1');
  const source = obj(p.source, 'source');
  const kind = SOURCE_KINDS.indexOf(source.kind as SourceKind);
  if (kind < 0) fail(`source.kind must be one of ${SOURCE_KINDS.join(', ')}`);
  const w = new ByteWriter(1024);
  try {
    w.bytes(SUMMARY_MAGIC).u8(SUMMARY_VERSION).u8(0);
    w.string(str(p.model, 'model')).string(str(p.modelVersion, 'modelVersion')).u8(kind).string(str(source.id, 'source.id'));
    w.varint(num(p.sequence, 'sequence')).f64(num(p.windowStart, 'windowStart')).f64(num(p.windowEnd, 'windowEnd'));
    const counters = Object.entries(obj(p.counters, 'counters'));
    w.varint(counters.length);
    for (const [k, v] of counters) w.string(k).varint(num(v, `counters.${k}`));
    w.bytes(sketchBytes(p.latency, 'latency'));
    for (const key of ['features', 'outputs'] as const) {
      const entries = Object.entries(obj(p[key], key)); // proto-safe: key is 'features' or 'outputs'
      w.varint(entries.length);
      for (const [k, v] of entries) w.string(k).bytes(sketchBytes(v, `${key}.${k}`));
    }
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) fail(e.message);
    throw e;
  }
  const body = w.finish();
  const profile = decodeSummary(new ByteWriter(body.length + 4).bytes(body).u32(crc32(body)).finish());
  if (p.slots === undefined) return profile;
  const slots = obj(p.slots, 'slots');
  const minutes = num(slots.minutes, 'slots.minutes');
  const clock = SLOT_CLOCKS.find((c) => c === slots.clock) ?? fail(`slots.clock must be one of ${SLOT_CLOCKS.join(', ')}`);
  profile.slots = { minutes, clock, profiles: new Map() };
  for (const [k, v] of Object.entries(obj(slots.profiles, 'slots.profiles'))) {
    if (!/^(?:0|[1-9][0-9]{0,3})$/.test(k)) fail(`slots.profiles key ${JSON.stringify(k.slice(0, 16))} is not a slot number`);
    if (obj(v, `slots.profiles.${k}`).slots !== undefined) fail(`slots.profiles.${k} has slots of its own`);
    profile.slots.profiles.set(Number(k), profileFromJSON(v));
  }
  // Through the binary form, so that the slots are held to the same checks (model, version, size).
  let bytes: Uint8Array;
  try {
    bytes = encodeSummary(profile, { meanPrecision: 'f64' });
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  return decodeSummary(bytes);
}
