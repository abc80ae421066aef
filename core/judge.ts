/**
 * Window judgement and alert hysteresis, once, for every caller: the aggregator's alarm (which
 * opens and resolves alerts), the operator's drift route (which shows each window's verdict) and
 * the versions route (a candidate's outputs against stable's).
 *
 * - judgeSketch: a live sketch against its reference with core's statistics (compareSketches);
 *   `drifted` when any statistic is past its threshold. No judgement (undefined) without a
 *   reference of the same kind: a feature the reference never saw, or saw as another sketch kind.
 * - judgeWindow: every feature and output of a live profile. A window shorter than a day is
 *   compared with the time-matched reference where the baseline has one (core/clock.ts): the
 *   reference's rows at the window's hours of day, for the shape of every feature and output
 *   (PSI, KS, Wasserstein, JS, chi-square), while out_of_range stays against the whole baseline
 *   (values the model never saw at all). Calendar features (`seasonal`) are judged by range
 *   only, except those of the daily cycle (`daily`): the time-matched reference judges them in
 *   full, and so does the whole baseline for a window of a day or more or one on another clock
 *   than the slots' (the feature then does not follow the window's clock). Any other with a
 *   cycle (`cycles`: a weekday's week) is judged in full by a window spanning the whole cycle.
 *   On the event clock, a feature that is a reading of the event time (`eventTime`) is also
 *   checked against the window's own span: off_clock, the share of values its times cannot
 *   have. A version seen only as a shadow saw the inputs of the version that served them, so
 *   only its outputs are its own (`shadowOnly` leaves its features unjudged).
 * - windowScore: where a judged sketch lies between sampling noise (0) and its bar (1).
 * - nextStreak / alertStep: an alert opens on either of two rules over the stream of windows of
 *   one (version, feature): `hysteresis` drifted windows in a row, or sequential evidence (a
 *   CUSUM of window scores) reaching its threshold; it resolves after `hysteresis` clean windows
 *   once the evidence is back under it. The CUSUM is the lever for drift too small to pass the
 *   bar in every window but present in window after window (bench/drift.ts measures both rules
 *   on 59 days of real traffic: false alerts per day and windows to detection).
 */
import { DAY_MS, possibleReadings, timeMatchedReference } from './clock.ts';
import { compareSketches, offClock, outOfRange, type CompareOptions, type DriftMethod, type DriftResult } from './drift.ts';
import type { EventTimeReading } from './manifest.ts';
import type { TDigest } from './tdigest.ts';
import type { Profile, Sketch, SlotClock } from './profile.ts';

export interface SketchJudgement {
  drift: Partial<Record<DriftMethod, DriftResult>>;
  drifted: boolean;
}

/** `live` against `reference` (see the header); undefined when they cannot be compared. */
export function judgeSketch(reference: Sketch | undefined, live: Sketch, options: CompareOptions = {}): SketchJudgement | undefined {
  if (!reference || reference.kind !== live.kind) return undefined;
  const drift = compareSketches(reference, live, options);
  return { drift, drifted: Object.values(drift).some((r) => r?.drifted) };
}

/**
 * Where a judged sketch lies between noise and its bar, by its most telling statistic: for each,
 * (statistic − expected) / (threshold − expected), 0 where sampling noise alone puts it on
 * average and 1 at the threshold, so above 1 exactly when the sketch is drifted. Statistics
 * that cannot fire (an infinite threshold) give nothing; with none, -1. The sequential evidence
 * (nextStreak) adds these up across windows.
 */
export function windowScore(j: SketchJudgement): number {
  let score = -1;
  for (const r of Object.values(j.drift)) {
    if (!r || Number.isNaN(r.statistic) || r.threshold === Number.POSITIVE_INFINITY) continue;
    const zero = r.expected !== undefined && r.expected < r.threshold ? Math.max(0, r.expected) : 0;
    const x = r.threshold > zero ? (r.statistic - zero) / (r.threshold - zero) : r.drifted ? Number.POSITIVE_INFINITY : 0;
    if (x > score) score = x;
  }
  return score;
}

export interface WindowJudgement {
  features: Map<string, SketchJudgement>;
  outputs: Map<string, SketchJudgement>;
}

export interface JudgeWindowOptions {
  /** Calendar feature names, judged by range only unless daily and time-matched (core/manifest.ts seasonalFeatures). */
  seasonal?: ReadonlySet<string>;
  /** Calendar features of the daily cycle, judged in full against a time-matched reference (core/manifest.ts dailyFeatures). */
  daily?: ReadonlySet<string>;
  /** The window's version only shadowed: its features are the served version's (not judged). */
  shadowOnly?: boolean;
  /** The clock live windows are on (TELEMETRY_CLOCK): time-matched only against slots of that clock. Any when not given. */
  clock?: SlotClock;
  /** Calendar features' cycle lengths (core/manifest.ts calendarCycles): a window spanning its cycle judges one in full. */
  cycles?: ReadonlyMap<string, number>;
  /**
   * Features that are a reading of the event time (core/manifest.ts eventTimeFeatures): on the
   * event clock (`clock: 'event'`), their values must be ones the window's own span can have
   * (off_clock, core/drift.ts).
   */
  eventTime?: ReadonlyMap<string, EventTimeReading>;
}

/**
 * Every feature and output of `live` that `reference` has a comparable sketch for. `live`'s
 * window (when given) picks the time-matched reference; `timeMatched` in the answer says whether
 * there was one.
 */
export function judgeWindow(
  reference: Pick<Profile, 'features' | 'outputs' | 'slots'>,
  live: Pick<Profile, 'features' | 'outputs'> & Partial<Pick<Profile, 'windowStart' | 'windowEnd'>>,
  { seasonal = new Set(), daily = new Set(), shadowOnly = false, clock, cycles, eventTime }: JudgeWindowOptions = {},
): WindowJudgement & { timeMatched: boolean } {
  const matched =
    live.windowStart !== undefined && live.windowEnd !== undefined ? timeMatchedReference(reference, live.windowStart, live.windowEnd, clock) : undefined;
  // A daily calendar feature with no time-matched reference is judged in full against the whole
  // baseline where that is fair: a window of a day or more holds the whole cycle, and windows on
  // another clock than the slots' (flight-delay's departure hours served on the wall clock) do not
  // follow the feature's cycle. Otherwise (no slots: its clock unknown) by range.
  const span = live.windowStart !== undefined && live.windowEnd !== undefined ? live.windowEnd - live.windowStart : 0;
  const dailyInFull = span >= DAY_MS || (reference.slots !== undefined && clock !== undefined && clock !== reference.slots.clock);
  const judge = (name: string, whole: Sketch | undefined, atHours: Sketch | undefined, s: Sketch, calendar: boolean): SketchJudgement | undefined => {
    // A calendar feature not judged at its own hours: in full where that is fair (above, or a
    // window spanning its whole cycle: a week for a weekday), else by range.
    if (calendar && !(daily.has(name) && matched && atHours)) {
      const cycle = cycles?.get(name);
      const inFull = daily.has(name) ? dailyInFull : cycle !== undefined && span >= cycle;
      return judgeSketch(whole, s, { seasonal: !inFull });
    }
    if (!matched || !atHours || atHours.kind !== s.kind || whole?.kind !== s.kind) return judgeSketch(whole, s);
    // The shape against the same hours of the reference; the range against all of it.
    const drift = compareSketches(atHours, s, { range: false });
    if (whole.kind === 'tdigest' && s.kind === 'tdigest') drift.out_of_range = outOfRange(whole, s);
    return { drift, drifted: Object.values(drift).some((r) => r?.drifted) };
  };
  // A reading of the event time against the window's own span, on the event clock only (the one its rows' times are on).
  const offTheClock = (name: string, s: Sketch): DriftResult | undefined => {
    const reading = clock === 'event' && s.kind === 'tdigest' ? eventTime?.get(name) : undefined;
    if (reading === undefined || live.windowStart === undefined || live.windowEnd === undefined) return undefined;
    const possible = possibleReadings(reading, live.windowStart, live.windowEnd);
    return possible && offClock(s as TDigest, possible);
  };
  const features = new Map<string, SketchJudgement>();
  const outputs = new Map<string, SketchJudgement>();
  if (!shadowOnly) {
    for (const [name, s] of live.features) {
      let j = judge(name, reference.features.get(name), matched?.features.get(name), s, seasonal.has(name));
      const off = offTheClock(name, s);
      if (off) j = { drift: { ...j?.drift, off_clock: off }, drifted: (j?.drifted ?? false) || off.drifted };
      if (j) features.set(name, j);
    }
  }
  for (const [name, s] of live.outputs) {
    const j = judge(name, reference.outputs.get(name), matched?.outputs.get(name), s, false);
    if (j) outputs.set(name, j);
  }
  return { features, outputs, timeMatched: matched !== undefined };
}

/**
 * The CUSUM's allowance: a window adds its score less this, so windows halfway or less from noise
 * to the bar wear the evidence down and only a stream persistently past halfway builds it up.
 */
export const EVIDENCE_ALLOWANCE = 0.5;
/** Largest score one window adds (before the allowance): no single window, however odd, is more than this much evidence. */
export const EVIDENCE_CAP = 2;
/**
 * The evidence that opens an alert by default (ALERT_EVIDENCE). With the allowance and cap above:
 * two windows far past the bar, or a run most of the way to it (seven at nine tenths). On 59 days
 * of unchanged real flights (bench/drift.ts) it added one alert at 1,000 rows a window (the
 * evening a snowstorm closed LGA), none at 10,000 and none on random windows.
 */
export const EVIDENCE_THRESHOLD = 2.5;

export interface Streak {
  /** Drifted windows in a row (0 after a clean one). */
  drifted: number;
  /** Clean windows in a row (0 after a drifted one). */
  clean: number;
  /** Start of the first drifted window of the current streak; null while clean. */
  since: number | null;
  /**
   * The CUSUM of window scores: max(0, previous + min(score, EVIDENCE_CAP) − EVIDENCE_ALLOWANCE),
   * held at most `evidenceLimit` (so that an alert resolves within a bounded number of windows
   * once the drift ends). 0 for keys without scores (refusals, performance).
   */
  evidence: number;
  /** Start of the window where the evidence last rose from 0: the CUSUM's estimate of when the change began; null at 0. */
  evidenceSince: number | null;
}

/**
 * The streak after one more judged window starting at `windowStart`, with the window's score
 * (windowScore) where the key has one. `evidenceLimit` caps the evidence (twice the threshold).
 */
export function nextStreak(
  previous: Partial<Streak> | undefined,
  drifted: boolean,
  windowStart: number,
  score?: number,
  evidenceLimit = 2 * EVIDENCE_THRESHOLD,
): Streak {
  const before = previous?.evidence ?? 0;
  const evidence =
    score === undefined || Number.isNaN(score) ? 0 : Math.min(evidenceLimit, Math.max(0, before + Math.min(score, EVIDENCE_CAP) - EVIDENCE_ALLOWANCE));
  const evidenceSince = evidence > 0 ? (before > 0 ? (previous?.evidenceSince ?? windowStart) : windowStart) : null;
  if (drifted) {
    const d = (previous?.drifted ?? 0) + 1;
    return { drifted: d, clean: 0, since: d === 1 ? windowStart : (previous?.since ?? windowStart), evidence, evidenceSince };
  }
  return { drifted: 0, clean: (previous?.clean ?? 0) + 1, since: null, evidence, evidenceSince };
}

/**
 * What the streak does to an alert: open one (none open, and `hysteresis` drifted windows in a row
 * or evidence at `evidenceThreshold`), resolve the open one (`hysteresis` clean windows in a row
 * and the evidence back under the threshold), or nothing.
 */
export function alertStep(streak: Streak, open: boolean, hysteresis: number, evidenceThreshold = EVIDENCE_THRESHOLD): 'open' | 'resolve' | undefined {
  if (!open && (streak.drifted >= hysteresis || streak.evidence >= evidenceThreshold)) return 'open';
  if (open && streak.clean >= hysteresis && streak.evidence < evidenceThreshold) return 'resolve';
  return undefined;
}

/**
 * One key's alert state over a stream of windows, held in memory (the aggregator keeps the same in
 * its `streaks` rows): each judged window in (drifted or not, its start, its score), what it does
 * to the alert out. An infinite `evidenceThreshold` leaves the hysteresis alone.
 */
export function alertWatch(hysteresis: number, evidenceThreshold = EVIDENCE_THRESHOLD) {
  let streak: Streak | undefined;
  let open = false;
  return {
    see(drifted: boolean, windowStart: number, score?: number): 'open' | 'resolve' | undefined {
      streak = nextStreak(streak, drifted, windowStart, score, 2 * evidenceThreshold);
      const step = alertStep(streak, open, hysteresis, evidenceThreshold);
      if (step) open = step === 'open';
      return step;
    },
    get open(): boolean {
      return open;
    },
  };
}

/** When the drift behind an alert the streak opens began: the earlier of the drifted run's start and the evidence's. */
export function alertSince(streak: Streak): number | null {
  const starts = [streak.since, streak.evidenceSince].filter((x): x is number => x !== null);
  return starts.length ? Math.min(...starts) : null;
}
