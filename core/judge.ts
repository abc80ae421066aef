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
 *   than the slots' (the feature then does not follow the window's clock). A version seen only
 *   as a shadow saw the inputs of the version that served them, so only its outputs are its own
 *   (`shadowOnly` leaves its features unjudged).
 * - nextStreak / alertStep: `hysteresis` drifted windows in a row open an alert, as many clean ones
 *   resolve it; `since` is the start of the first drifted window of the streak.
 */
import { DAY_MS, timeMatchedReference } from './clock.ts';
import { compareSketches, outOfRange, type CompareOptions, type DriftMethod, type DriftResult } from './drift.ts';
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
}

/**
 * Every feature and output of `live` that `reference` has a comparable sketch for. `live`'s
 * window (when given) picks the time-matched reference; `timeMatched` in the answer says whether
 * there was one.
 */
export function judgeWindow(
  reference: Pick<Profile, 'features' | 'outputs' | 'slots'>,
  live: Pick<Profile, 'features' | 'outputs'> & Partial<Pick<Profile, 'windowStart' | 'windowEnd'>>,
  { seasonal = new Set(), daily = new Set(), shadowOnly = false, clock }: JudgeWindowOptions = {},
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
    // A calendar feature not judged at its own hours: in full where that is fair (above), else by range.
    if (calendar && !(daily.has(name) && matched && atHours)) return judgeSketch(whole, s, { seasonal: !(daily.has(name) && dailyInFull) });
    if (!matched || !atHours || atHours.kind !== s.kind || whole?.kind !== s.kind) return judgeSketch(whole, s);
    // The shape against the same hours of the reference; the range against all of it.
    const drift = compareSketches(atHours, s, { range: false });
    if (whole.kind === 'tdigest' && s.kind === 'tdigest') drift.out_of_range = outOfRange(whole, s);
    return { drift, drifted: Object.values(drift).some((r) => r?.drifted) };
  };
  const features = new Map<string, SketchJudgement>();
  const outputs = new Map<string, SketchJudgement>();
  if (!shadowOnly) {
    for (const [name, s] of live.features) {
      const j = judge(name, reference.features.get(name), matched?.features.get(name), s, seasonal.has(name));
      if (j) features.set(name, j);
    }
  }
  for (const [name, s] of live.outputs) {
    const j = judge(name, reference.outputs.get(name), matched?.outputs.get(name), s, false);
    if (j) outputs.set(name, j);
  }
  return { features, outputs, timeMatched: matched !== undefined };
}

export interface Streak {
  /** Drifted windows in a row (0 after a clean one). */
  drifted: number;
  /** Clean windows in a row (0 after a drifted one). */
  clean: number;
  /** Start of the first drifted window of the current streak; null while clean. */
  since: number | null;
}

/** The streak after one more judged window starting at `windowStart`. */
export function nextStreak(previous: Streak | undefined, drifted: boolean, windowStart: number): Streak {
  if (drifted) {
    const d = (previous?.drifted ?? 0) + 1;
    return { drifted: d, clean: 0, since: d === 1 ? windowStart : (previous?.since ?? windowStart) };
  }
  return { drifted: 0, clean: (previous?.clean ?? 0) + 1, since: null };
}

/** What the streak does to an alert: open one (none open, `hysteresis` drifted in a row), resolve the open one, or nothing. */
export function alertStep(streak: Streak, open: boolean, hysteresis: number): 'open' | 'resolve' | undefined {
  if (!open && streak.drifted >= hysteresis) return 'open';
  if (open && streak.clean >= hysteresis) return 'resolve';
  return undefined;
}
