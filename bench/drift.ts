// npm run bench:drift — how right the drift detector is on real traffic (issue 16), measured
// side by side with exact tests on the same windows in one run:
//
// - Data: the US flights of January-February 2001 (vega-datasets, the training period of
//   flight-delay), all ~1M of them as the reference population. The reference sketch is built
//   from those rows with the production sketches (t-digest δ = 100, categorical capacity 512),
//   with its time-matched slots (FLIGHT_SLOT_MINUTES of the day, core/clock.ts) as models:build
//   builds them; the exact tests use the raw rows.
// - Windows of n = 200, 1,000 and 10,000 flights, drawn two ways: `random` (rows sampled
//   uniformly from the whole period: no time of day to match) and `time-ordered` (n departures
//   of one clock-aligned span, 10 minutes to two days, the shortest holding n: what an aligned
//   live window holds). Each goes the production path: the edge's window profiler (2,000 rows a
//   summary), the summary bytes, decoded and merged as the aggregator merges them, then
//   judgeWindow against the reference (the flight-delay manifest's calendar features).
// - The exact tests on the same rows against the same reference (the rows at the window's times
//   of day where ours was time-matched), as scipy computes them: two-sample Kolmogorov-Smirnov
//   (exact D, asymptotic p) for numeric features and a chi-square test of homogeneity for
//   categorical ones, each flagging at p < 0.05 (neither controls false alarms on real data).
// - Faults on both kinds of window: distances in km, the clock moved 1 or 3 hours, days of the
//   week off by one, no departures from ORD, a tenth of the distances 0.
//
// Prints three tables (false alarms, detection, statistic accuracy) and writes them to
// bench/out/drift.md. Options: --windows 100 (per cell at n <= 1,000; a third of it at 10,000).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  alertWatch,
  calendarCycles,
  eventTimeFeatures,
  CategoricalSketch,
  createProfile,
  createWindowProfiler,
  dailyFeatures,
  decodeSummary,
  encodeSummary,
  slotOf,
  slotsCovering,
  judgeWindow,
  mergeProfiles,
  seasonalFeatures,
  slotSplitter,
  TDigest,
  windowScore,
  EVIDENCE_THRESHOLD,
  type BuiltManifest,
  type Profile,
} from '../core/index.ts';
import { ks as coreKs } from '../core/drift.ts';
import { ALERT_HYSTERESIS } from '../worker/config.ts';
import { chiSquareSurvival, kolmogorovSurvival } from '../core/stats.ts';
import { alignedWindow, FLIGHT_SLOT_MINUTES, loadFlights, rowFeatures } from '../models/lib/flights.ts';
import { rng } from '../models/lib/rng.ts';
import { markdownTable, numberArg, progress } from './lib/report.ts';

const ROOT = join(import.meta.dirname, '..');
const WINDOWS = numberArg('windows', 100);
const SIZES = [200, 1000, 10_000];
const NUMERIC = ['month', 'day_of_week', 'hour', 'distance'] as const;
const CATEGORICAL = ['origin', 'destination'] as const;
const FEATURES = [...NUMERIC, ...CATEGORICAL];
type Row = ReturnType<typeof rowFeatures>;

const manifest = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/manifest.json'), 'utf8')) as BuiltManifest;
const seasonal = seasonalFeatures(manifest);
const daily = dailyFeatures(manifest);
const cycles = calendarCycles(manifest);
const eventTime = eventTimeFeatures(manifest);

progress('loading the flights of January-February 2001');
const f = await loadFlights();
const idx: number[] = [];
for (let i = 0; i < f.n; i++) if (f.month[i] <= 2) idx.push(i);
idx.sort((a, b) => f.time[a] - f.time[b]);
// Airports outside the model's vocabulary as the edge sketches them (one '<other>' category).
const vocabulary = new Set((manifest.features.find((x) => x.name === 'origin') as { vocabulary: string[] }).vocabulary);
const population: Row[] = idx.map((i) => rowFeatures(f, i, vocabulary));
/** Each row's scheduled departure (ms, local time read as UTC, as the replay's x-event-time carries it). */
const times = Float64Array.from(idx, (i) => f.time[i]);
progress(`${population.length} reference flights`);

// --- The reference: the production sketches of every row, and the exact distributions ----------
const reference: Profile = createProfile({ model: 'flight-delay', modelVersion: '1', source: { kind: 'baseline', id: 'bench' }, windowStart: 0, windowEnd: 1 });
for (const name of NUMERIC) reference.features.set(name, new TDigest().addAll(population.map((r) => r[name])));
for (const name of CATEGORICAL) {
  const s = new CategoricalSketch({ capacity: 512 });
  for (const r of population) s.add(r[name]);
  reference.features.set(name, s);
}
reference.counters.rows = population.length;
reference.windowStart = times[0];
reference.windowEnd = times[times.length - 1] + 60_000;
// The time-matched reference: the same rows split by time of day, as models:build sketches them.
const split = slotSplitter(FLIGHT_SLOT_MINUTES, 'event', () =>
  createProfile({ model: 'flight-delay', modelVersion: '1', source: { kind: 'baseline', id: 'bench' }, windowStart: 0 }),
);
const slotSketch = (p: Profile, name: string, make: () => TDigest | CategoricalSketch) => {
  let s = p.features.get(name) as TDigest | CategoricalSketch | undefined;
  if (!s) p.features.set(name, (s = make()));
  return s;
};
population.forEach((row, i) => {
  const p = split.slotFor(times[i]);
  for (const name of NUMERIC) (slotSketch(p, name, () => new TDigest()) as TDigest).add(row[name]);
  for (const name of CATEGORICAL) (slotSketch(p, name, () => new CategoricalSketch({ capacity: 512 })) as CategoricalSketch).add(row[name]);
  p.counters.rows++;
});
reference.slots = split.slots;
const referenceBytes = encodeSummary(reference).length;
const slotBytes = [...split.slots.profiles.values()].reduce((a, p) => a + encodeSummary(p).length, 0);
progress(
  `reference summary ${(referenceBytes / 1024).toFixed(1)} KB, of which ${(slotBytes / 1024).toFixed(1)} KB are the ${split.slots.profiles.size} slots of ${FLIGHT_SLOT_MINUTES} minutes`,
);

/** A numeric feature's reference as sorted distinct values with their cumulative shares (the exact ECDF). */
function ecdfOf(values: number[]): { x: Float64Array; cum: Float64Array } {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const x = Float64Array.from(counts.keys()).sort();
  const cum = new Float64Array(x.length);
  let c = 0;
  x.forEach((v, i) => {
    c += counts.get(v)!;
    cum[i] = c / values.length;
  });
  return { x, cum };
}
/** The exact reference of a set of rows: each numeric feature's ECDF and each categorical feature's counts. */
interface ExactReference {
  rows: number;
  ecdf: Record<(typeof NUMERIC)[number], ReturnType<typeof ecdfOf>>;
  counts: Record<(typeof CATEGORICAL)[number], Map<string, number>>;
}
function exactReference(rows: Row[]): ExactReference {
  return {
    rows: rows.length,
    ecdf: Object.fromEntries(NUMERIC.map((n) => [n, ecdfOf(rows.map((r) => r[n]))])) as ExactReference['ecdf'],
    counts: Object.fromEntries(
      CATEGORICAL.map((n) => {
        const m = new Map<string, number>();
        for (const r of rows) m.set(r[n], (m.get(r[n]) ?? 0) + 1);
        return [n, m];
      }),
    ) as ExactReference['counts'],
  };
}
const wholeReference = exactReference(population);
/** The exact time-matched reference: the reference rows in the given slots of the day (cached by slots). */
const matchedExact = new Map<string, ExactReference>();
function exactAtSlots(slots: number[]): ExactReference {
  const key = [...slots].sort((a, b) => a - b).join(',');
  let e = matchedExact.get(key);
  if (!e) {
    const set = new Set(slots);
    matchedExact.set(key, (e = exactReference(population.filter((_, i) => set.has(slotOf(times[i], FLIGHT_SLOT_MINUTES))))));
  }
  return e;
}

/** Exact two-sample KS between the reference and `values`: D (right-continuous ECDFs) and the asymptotic p-value. */
function exactKs(reference: ExactReference, name: (typeof NUMERIC)[number], values: number[]): { d: number; p: number } {
  const ref = reference.ecdf[name];
  const w = ecdfOf(values);
  let d = 0;
  let i = 0;
  let j = 0;
  // Walk the union of distinct values; at each, both ECDFs (≤ x).
  while (i < ref.x.length || j < w.x.length) {
    const x = j >= w.x.length || (i < ref.x.length && ref.x[i] <= w.x[j]) ? ref.x[i] : w.x[j];
    while (i < ref.x.length && ref.x[i] <= x) i++;
    while (j < w.x.length && w.x[j] <= x) j++;
    const diff = Math.abs((i ? ref.cum[i - 1] : 0) - (j ? w.cum[j - 1] : 0));
    if (diff > d) d = diff;
  }
  const n = reference.rows;
  const m = values.length;
  const ne = Math.sqrt((n * m) / (n + m));
  return { d, p: kolmogorovSurvival((ne + 0.12 + 0.11 / ne) * d) };
}

/** Chi-square test of homogeneity between the reference counts and the window's, over the categories either has. */
function exactChiSquare(reference: ExactReference, name: (typeof CATEGORICAL)[number], values: string[]): number {
  const ref = reference.counts[name];
  const w = new Map<string, number>();
  for (const v of values) w.set(v, (w.get(v) ?? 0) + 1);
  const nb = reference.rows;
  const nw = values.length;
  const total = nb + nw;
  let stat = 0;
  let k = 0;
  for (const key of new Set([...ref.keys(), ...w.keys()])) {
    const a = ref.get(key) ?? 0;
    const b = w.get(key) ?? 0;
    const col = a + b;
    const ea = (col * nb) / total;
    const eb = (col * nw) / total;
    stat += (a - ea) ** 2 / ea + (b - eb) ** 2 / eb;
    k++;
  }
  return chiSquareSurvival(stat, k - 1);
}

/** A window's rows through the production path: the edge's profiler (2,000 rows a summary), the bytes, decoded and merged. */
function sketched({ rows, start, end }: Window): Profile {
  let clock = 0;
  const profiler = createWindowProfiler({ source: { kind: 'edge', id: 'bench' }, windowMs: 3_600_000, maxRows: 2000, align: true, now: () => clock });
  for (const r of rows) profiler.observe(manifest, '1', [{ features: r, outputs: {} }], 1, 'edge');
  profiler.closeAll();
  clock++;
  const parts = profiler.take().map((s) => decodeSummary(s.bytes));
  const p = parts.slice(1).reduce((a, p) => mergeProfiles(a, p), parts[0]);
  // The window's own time span, as the aggregator's window would have it.
  p.windowStart = start;
  p.windowEnd = end;
  return p;
}

interface Verdict {
  ours: Record<string, boolean>;
  /** Each feature's windowScore (where it lies between noise, 0, and the bar, 1), for the sequential evidence. */
  scores: Record<string, number>;
  exact: Record<string, boolean>;
  ksError: Record<string, number>;
}
/** A window's rows and its time span [start, end). */
interface Window {
  rows: Row[];
  start: number;
  end: number;
}
function judge(w: Window): Verdict {
  const { rows } = w;
  // Windows on the departure clock (the event clock of a replay): time-matched, and the calendar readings checked against each window's span.
  const j = judgeWindow(reference, sketched(w), { seasonal, daily, cycles, eventTime, clock: 'event' });
  // The exact tests against the same reference: the time-matched rows where ours had them.
  const ref = j.timeMatched ? exactAtSlots(slotsCovering(w.start, w.end, FLIGHT_SLOT_MINUTES)) : wholeReference;
  const ours: Record<string, boolean> = {};
  const exact: Record<string, boolean> = {};
  const ksError: Record<string, number> = {};
  const scores: Record<string, number> = {};
  for (const name of FEATURES) {
    const f = j.features.get(name);
    ours[name] = f?.drifted ?? false;
    scores[name] = f ? windowScore(f) : -1;
  }
  for (const name of NUMERIC) {
    const e = exactKs(
      ref,
      name,
      rows.map((r) => r[name]),
    );
    exact[name] = e.p < 0.05;
    // The sketch's KS statistic against the exact one (seasonal features are judged by range: core's ks() here).
    const live = new TDigest().addAll(rows.map((r) => r[name]));
    const ks = j.features.get(name)?.drift.ks?.statistic;
    ksError[name] = Math.abs((ks ?? coreKs(reference.features.get(name) as TDigest, live).statistic) - e.d);
  }
  for (const name of CATEGORICAL)
    exact[name] =
      exactChiSquare(
        ref,
        name,
        rows.map((r) => r[name]),
      ) < 0.05;
  return { ours, scores, exact, ksError };
}

const r = rng(16);
const randomWindow = (n: number, keep: (row: Row) => boolean = () => true): Window => {
  const rows: Row[] = [];
  while (rows.length < n) {
    const row = population[Math.floor(r() * population.length)];
    if (keep(row)) rows.push({ ...row });
  }
  return { rows, start: reference.windowStart, end: reference.windowEnd };
};
/** A live window: n departures of one clock-aligned span (models/lib/flights.ts alignedWindow), aligned like the aggregator's windows. */
const orderedWindow = (n: number, keep: (row: Row) => boolean = () => true): Window => {
  const w = alignedWindow(times, n, r, (i) => keep(population[i]));
  return { rows: w.indices.map((i) => ({ ...population[i] })), start: w.start, end: w.end };
};
const windowsFor = (n: number) => (n >= 10_000 ? Math.max(5, Math.round(WINDOWS / 3)) : WINDOWS);

// --- 1. False alarms ---------------------------------------------------------------------------
const alarmRows: (string | number)[][] = [];
const accuracy = new Map<string, number[]>();
for (const kind of ['random', 'time-ordered'] as const)
  for (const n of SIZES) {
    const k = windowsFor(n);
    progress(`false alarms: ${k} ${kind} windows of ${n}`);
    const ours: Record<string, number> = {};
    const exact: Record<string, number> = {};
    let anyOurs = 0;
    let anyExact = 0;
    for (let w = 0; w < k; w++) {
      const v = judge(kind === 'random' ? randomWindow(n) : orderedWindow(n));
      for (const name of FEATURES) {
        ours[name] = (ours[name] ?? 0) + Number(v.ours[name]);
        exact[name] = (exact[name] ?? 0) + Number(v.exact[name]);
      }
      anyOurs += Number(FEATURES.some((x) => v.ours[x]));
      anyExact += Number(FEATURES.some((x) => v.exact[x]));
      if (kind === 'random')
        for (const name of NUMERIC) {
          const key = `${name} ${n}`;
          accuracy.set(key, [...(accuracy.get(key) ?? []), v.ksError[name]]);
        }
    }
    const pct = (x: number) => `${Math.round((100 * x) / k)}%`;
    alarmRows.push([kind, n, k, ...FEATURES.map((x) => `${pct(ours[x])} / ${pct(exact[x])}`), `${pct(anyOurs)} / ${pct(anyExact)}`]);
  }
const alarms = markdownTable(['windows', 'n', 'count', ...FEATURES.map((x) => `${x}: ours / exact`), 'any feature: ours / exact'], alarmRows);

// --- 2. Detection of upstream faults -------------------------------------------------------------
const FAULTS: { name: string; feature: string; apply?: (row: Row) => void; keep?: (row: Row) => boolean }[] = [
  { name: 'distances in km (x1.609)', feature: 'distance', apply: (x) => void (x.distance = Math.round(x.distance * 1.609)) },
  { name: 'a tenth of the distances 0', feature: 'distance', apply: (x) => void (r() < 0.1 && (x.distance = 0)) },
  { name: 'the clock 1 hour late (hour + 1)', feature: 'hour', apply: (x) => void (x.hour = (x.hour + 1) % 24) },
  { name: 'a time zone bug (hour + 3)', feature: 'hour', apply: (x) => void (x.hour = (x.hour + 3) % 24) },
  { name: 'day of week off by one', feature: 'day_of_week', apply: (x) => void (x.day_of_week = (x.day_of_week + 1) % 7) },
  { name: 'no departures from ORD', feature: 'origin', keep: (x) => x.origin !== 'ORD' },
];
const detectRows: (string | number)[][] = [];
for (const fault of FAULTS)
  for (const n of SIZES) {
    const k = windowsFor(n);
    const cells: string[] = [];
    for (const kind of ['random', 'time-ordered'] as const) {
      progress(`detection: ${fault.name}, ${k} ${kind} windows of ${n}`);
      let ours = 0;
      let exact = 0;
      for (let w = 0; w < k; w++) {
        const win = kind === 'random' ? randomWindow(n, fault.keep) : orderedWindow(n, fault.keep);
        if (fault.apply) for (const row of win.rows) fault.apply(row);
        const v = judge(win);
        ours += Number(v.ours[fault.feature]);
        exact += Number(v.exact[fault.feature]);
      }
      cells.push(`${Math.round((100 * ours) / k)}% / ${Math.round((100 * exact) / k)}%`);
    }
    detectRows.push([fault.name, fault.feature, n, k, ...cells]);
  }
const detection = markdownTable(['fault', 'feature', 'n', 'windows', 'random windows: ours / exact', 'time-ordered windows: ours / exact'], detectRows);

// --- 3. The sketch's KS statistic against the exact one ------------------------------------------
const accRows: (string | number)[][] = [];
for (const name of NUMERIC)
  for (const n of SIZES) {
    const e = accuracy.get(`${name} ${n}`) ?? [];
    accRows.push([name, n, e.length, (e.reduce((a, b) => a + b, 0) / e.length).toFixed(4), Math.max(...e).toFixed(4)]);
  }
const statAccuracy = markdownTable(['feature', 'n', 'windows', 'mean of abs(D_sketch − D_exact)', 'largest'], accRows);

// --- 4. Alerts on streams of windows: the sequential evidence -----------------------------------
// The aggregator judges a stream: an alert opens after ALERT_HYSTERESIS drifted windows in a row
// or when the CUSUM of window scores reaches ALERT_EVIDENCE (core/judge.ts). Streams of unchanged
// traffic give the false alerts per day; faults switched on at random windows of a stream give
// the windows to detection. The exact tests get the same hysteresis rule on their p < 0.05 flags.
/** Stream window spans by n: about n departures in the busy hours; a day for n = 10,000. */
const STREAM_SPAN_MIN: Record<number, number> = { 200: 20, 1000: 120, 10000: 1440 };
/** Each clock-aligned span of the period holding at least n departures, as index ranges of `times`. */
function spansOf(n: number): { start: number; end: number; from: number; to: number }[] {
  const span = STREAM_SPAN_MIN[n] * 60_000;
  const out: { start: number; end: number; from: number; to: number }[] = [];
  let i = 0;
  for (let start = Math.floor(times[0] / span) * span; i < times.length; start += span) {
    const from = i;
    while (i < times.length && times[i] < start + span) i++;
    if (i - from >= n) out.push({ start, end: start + span, from, to: i });
  }
  return out;
}
/** The window of a span: n of its departures that `keep` passes, at random. */
function spanWindow(sp: { start: number; end: number; from: number; to: number }, n: number, keep: (row: Row) => boolean = () => true): Window {
  const rows: Row[] = [];
  for (let i = sp.from; i < sp.to; i++) if (keep(population[i])) rows.push(population[i]);
  for (let i = 0; i < Math.min(n, rows.length); i++) {
    const j = i + Math.floor(r() * (rows.length - i));
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
  return { rows: rows.slice(0, n).map((x) => ({ ...x })), start: sp.start, end: sp.end };
}
type Rule = 'hysteresis' | 'evidence' | 'exact';
const RULES: Rule[] = ['hysteresis', 'evidence', 'exact'];
/** One key's alert state under a rule: ours with hysteresis alone, ours with the evidence too, or the exact test's flags with hysteresis. */
function alarm(rule: Rule) {
  const watch = alertWatch(ALERT_HYSTERESIS, rule === 'evidence' ? EVIDENCE_THRESHOLD : Number.POSITIVE_INFINITY);
  return (v: Verdict, feature: string, w: number): boolean =>
    watch.see(rule === 'exact' ? v.exact[feature] : v.ours[feature], w, rule === 'evidence' ? v.scores[feature] : undefined) === 'open';
}
const STREAM_RANDOM = (n: number) => (n >= 10_000 ? 60 : n >= 1000 ? 300 : 1000);
const seqRows: (string | number)[][] = [];
const falseAlerts = new Set<string>();
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const nullScores = new Map<string, number[]>();
for (const kind of ['random', 'time-ordered'] as const)
  for (const n of SIZES) {
    const spans = kind === 'time-ordered' ? spansOf(n) : [];
    const count = kind === 'time-ordered' ? spans.length : STREAM_RANDOM(n);
    progress(`streams: ${count} ${kind} windows of ${n}, nothing changed`);
    const alarms = Object.fromEntries(RULES.map((rule) => [rule, Object.fromEntries(FEATURES.map((f) => [f, alarm(rule)]))]));
    const opened = Object.fromEntries(RULES.map((rule) => [rule, new Map<string, number>()]));
    for (let k = 0; k < count; k++) {
      const v = judge(kind === 'time-ordered' ? spanWindow(spans[k], n) : randomWindow(n));
      for (const f of FEATURES) {
        if (kind === 'time-ordered' && n === 200) nullScores.set(f, [...(nullScores.get(f) ?? []), v.scores[f]]);
        for (const rule of RULES)
          if (alarms[rule][f](v, f, k)) {
            opened[rule].set(f, (opened[rule].get(f) ?? 0) + 1);
            // When our false alerts open, and on which weekday: the note on them in bench/README.md reads these.
            if (rule !== 'exact' && kind === 'time-ordered')
              falseAlerts.add(
                `n = ${n}, ${f}, ${new Date(spans[k].end).toISOString().slice(0, 16).replace('T', ' ')} (${WEEKDAYS[new Date(spans[k].end).getUTCDay()]})`,
              );
          }
      }
    }
    const days = kind === 'time-ordered' ? (spans[spans.length - 1].end - spans[0].start) / 86_400_000 : undefined;
    const cell = (rule: Rule) => {
      const total = [...opened[rule].values()].reduce((a, b) => a + b, 0);
      const which = [...opened[rule]].map(([f, c]) => `${f} ${c}`).join(', ');
      return `${total}${which ? ` (${which})` : ''}`;
    };
    seqRows.push([kind, n, count, days === undefined ? '-' : days.toFixed(0), ...RULES.map(cell)]);
  }
const seqAlarms = markdownTable(
  ['stream', 'n', 'windows', 'days', 'alerts: ours, hysteresis alone', 'alerts: ours, hysteresis + evidence', 'alerts: exact tests, hysteresis'],
  seqRows,
);
// The same scores drawn independently: the false-alert rate the rule gives when windows do not share a day's peculiarities.
const BOOT = 1_000_000;
const bootRows: (string | number)[][] = [];
for (const [f, xs] of nullScores) {
  const watch = alertWatch(ALERT_HYSTERESIS);
  let opened = 0;
  for (let k = 0; k < BOOT; k++) {
    const score = xs[Math.floor(r() * xs.length)];
    // A window is drifted exactly when its score passes 1 (core/judge.ts windowScore).
    if (watch.see(score > 1, k, score) === 'open') opened++;
  }
  bootRows.push([f, xs.length, BOOT, opened, opened ? Math.round(BOOT / opened) : '> 1,000,000']);
}
const bootTable = markdownTable(
  ['feature', 'null scores (time-ordered, n = 200)', 'windows drawn', 'alerts (hysteresis + evidence)', 'windows per false alert'],
  bootRows,
);

// Faults switched on at a random window of a stream: windows until the faulty feature's alert opens.
const ONSETS = (n: number) => (n >= 10_000 ? 8 : 24);
const HORIZON = 10;
const delayRows: (string | number)[][] = [];
for (const fault of FAULTS)
  for (const n of SIZES)
    for (const kind of ['random', 'time-ordered'] as const) {
      const spans = kind === 'time-ordered' ? spansOf(n) : [];
      const onsets = ONSETS(n);
      progress(`streams: ${fault.name}, ${onsets} onsets in ${kind} windows of ${n}`);
      const delays = Object.fromEntries(RULES.map((rule) => [rule, [] as number[]]));
      for (let o = 0; o < onsets; o++) {
        const at = Math.floor(r() * Math.max(1, spans.length - HORIZON));
        const alarms = Object.fromEntries(RULES.map((rule) => [rule, alarm(rule)]));
        const first: Partial<Record<Rule, number>> = {};
        for (let k = 0; k < HORIZON && RULES.some((rule) => first[rule] === undefined); k++) {
          const win = kind === 'time-ordered' ? spanWindow(spans[at + k], n, fault.keep) : randomWindow(n, fault.keep);
          if (fault.apply) for (const row of win.rows) fault.apply(row);
          const v = judge(win);
          for (const rule of RULES) if (first[rule] === undefined && alarms[rule](v, fault.feature, k)) first[rule] = k + 1;
        }
        for (const rule of RULES) delays[rule].push(first[rule] ?? Number.POSITIVE_INFINITY);
      }
      const cell = (rule: Rule) => {
        const d = [...delays[rule]].sort((a, b) => a - b);
        const within = (k: number) => `${Math.round((100 * d.filter((x) => x <= k).length) / d.length)}%`;
        const median = d[Math.floor((d.length - 1) / 2)];
        return `${within(3)} / ${within(HORIZON)} / ${Number.isFinite(median) ? median : `> ${HORIZON}`}`;
      };
      delayRows.push([fault.name, n, kind, onsets, ...RULES.map(cell)]);
    }
const seqDelays = markdownTable(
  ['fault', 'n', 'stream', 'onsets', 'ours, hysteresis alone: within 3 / 10 windows / median', 'ours, hysteresis + evidence', 'exact tests, hysteresis'],
  delayRows,
);

const report = `### False alarms: share of windows flagged, nothing changed\n\n${alarms}\n\n### Detection of upstream faults (share of windows where the faulty feature is flagged)\n\n${detection}\n\n### KS statistic: sketches against the exact statistic (random windows)\n\n${statAccuracy}\n\n### Alerts on streams of unchanged traffic (ALERT_HYSTERESIS ${ALERT_HYSTERESIS}, evidence threshold ${EVIDENCE_THRESHOLD})\n\n${seqAlarms}\n\nOur false alerts on time-ordered streams opened at (the window's end, departure time):\n\n${[...falseAlerts].map((x) => `- ${x}`).join('\n') || '- none'}\n\n### Both rules on independent draws of the same null scores\n\n${bootTable}\n\n### Windows to an alert after a fault begins (${HORIZON} windows watched)\n\n${seqDelays}\n`;
console.log(`\n${report}`);
console.log(`machine: ${process.version}; ${population.length} reference flights; ${WINDOWS} windows per cell (a third at n = 10,000)`);
mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
writeFileSync(join(ROOT, 'bench/out/drift.md'), report);
