/**
 * Window judgement and alert hysteresis, once, for every caller: the aggregator's alarm (which
 * opens and resolves alerts), the operator's drift route (which shows each window's verdict) and
 * the versions route (a candidate's outputs against stable's).
 *
 * - judgeSketch: a live sketch against its reference with core's statistics (compareSketches);
 *   `drifted` when any statistic is past its threshold. No judgement (undefined) without a
 *   reference of the same kind: a feature the reference never saw, or saw as another sketch kind.
 * - judgeWindow: every feature and output of a live profile. Calendar features (`seasonal`) are judged
 *   by range only. A version seen only as a shadow saw the inputs of the version that served
 *   them, so only its outputs are its own (`shadowOnly` leaves its features unjudged).
 * - nextStreak / alertStep: `hysteresis` drifted windows in a row open an alert, as many clean ones
 *   resolve it; `since` is the start of the first drifted window of the streak.
 */
import { compareSketches, type CompareOptions, type DriftMethod, type DriftResult } from './drift.ts';
import type { Profile, Sketch } from './profile.ts';

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
  /** Feature names judged by range only (core/manifest.ts seasonalFeatures). */
  seasonal?: ReadonlySet<string>;
  /** The window's version only shadowed: its features are the served version's (not judged). */
  shadowOnly?: boolean;
}

/** Every feature and output of `live` that `reference` has a comparable sketch for. */
export function judgeWindow(
  reference: Pick<Profile, 'features' | 'outputs'>,
  live: Pick<Profile, 'features' | 'outputs'>,
  { seasonal = new Set(), shadowOnly = false }: JudgeWindowOptions = {},
): WindowJudgement {
  const features = new Map<string, SketchJudgement>();
  const outputs = new Map<string, SketchJudgement>();
  if (!shadowOnly) {
    for (const [name, s] of live.features) {
      const j = judgeSketch(reference.features.get(name), s, { seasonal: seasonal.has(name) });
      if (j) features.set(name, j);
    }
  }
  for (const [name, s] of live.outputs) {
    const j = judgeSketch(reference.outputs.get(name), s);
    if (j) outputs.set(name, j);
  }
  return { features, outputs };
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
