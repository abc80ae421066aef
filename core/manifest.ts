/**
 * The model manifest (models/<name>/manifest.json): what the runtime needs to validate, run,
 * sketch and explain a model, written by models/build.ts. Types only; the worker and the
 * browser validate requests against it.
 */
import type { Calibration } from './calibration.ts';

export type TensorDType = 'float32' | 'int64' | 'int32' | 'uint8' | 'int8';

export interface TensorSpec {
  name: string;
  dtype: TensorDType;
  /** Dimensions; a string is a dynamic dimension (e.g. 'N' for the batch). */
  shape: (number | string)[];
  description?: string;
}

interface FeatureBase {
  /** The name /v1/models/{name}/predict instances use. */
  name: string;
  description?: string;
  /** The graph input this feature feeds. */
  input: string;
}

export interface NumericFeature extends FeatureBase {
  kind: 'numeric';
  /** Valid values are within [min, max] (inclusive); others are refused. */
  range: [number, number];
  integer?: boolean;
  /**
   * The column this feature fills when its input is one FLOAT tensor [N, F] holding every
   * numeric feature (as skl2onnx and most tabular exporters write it); absent when the input is
   * the feature's own [N] tensor.
   */
  column?: number;
  /**
   * A calendar feature (month, weekday, hour): a window shorter than its cycle legitimately
   * differs from the training period's distribution. One of the daily cycle is judged against the
   * time-matched reference (the baseline's rows of the same hours, core/clock.ts) where the
   * baseline has one; any other, by the training range only (core/drift.ts compareSketches,
   * `seasonal`).
   */
  seasonal?: boolean;
  /** The cycle a calendar feature repeats over: 'day' (hour of day), 'week' (day of week), 'year' (month). */
  cycle?: 'day' | 'week' | 'year';
  /** Judge this calendar feature by range only, even where a time-matched reference could judge it in full. */
  rangeOnly?: boolean;
  /**
   * The feature is this reading of each row's event time (UTC), the time its telemetry is
   * windowed by on the event clock (x-event-time): a window on that clock can then hold only the
   * values its own span can have, and any other is off the clock (core/drift.ts offClock: an
   * upstream clock bug, a weekday off by one). `driftwatch import` sets it for a feature derived
   * from --timestamp with --slot-clock event.
   */
  eventTime?: EventTimeReading;
}

/** Readings of a time (UTC) a calendar feature can be (FeatureSpec.eventTime), with their cycles. */
export const EVENT_TIME_READINGS = {
  hour: { cycle: 'day', of: (t: Date) => t.getUTCHours() },
  /** Sunday 0 (JavaScript's getUTCDay). */
  weekday: { cycle: 'week', of: (t: Date) => t.getUTCDay() },
  /** Monday 0 (pandas' dayofweek). */
  weekday_monday0: { cycle: 'week', of: (t: Date) => (t.getUTCDay() + 6) % 7 },
  /** Monday 1 to Sunday 7 (ISO 8601). */
  iso_weekday: { cycle: 'week', of: (t: Date) => ((t.getUTCDay() + 6) % 7) + 1 },
  /** January 1. */
  month: { cycle: 'year', of: (t: Date) => t.getUTCMonth() + 1 },
  /** January 0 (JavaScript's getUTCMonth). */
  month0: { cycle: 'year', of: (t: Date) => t.getUTCMonth() },
} as const satisfies Record<string, { cycle: 'day' | 'week' | 'year'; of: (t: Date) => number }>;
export type EventTimeReading = keyof typeof EVENT_TIME_READINGS;

export interface CategoricalFeature extends FeatureBase {
  kind: 'categorical';
  /** Index i + 1 in the graph input is vocabulary[i]; index 0 is "unknown". */
  vocabulary: string[];
  /** 'unknown': values outside the vocabulary are fed as index 0 (and still sketched); 'reject': 4xx. */
  oov: 'unknown' | 'reject';
  /** Categorical sketch capacity for this feature's drift profile. */
  sketchCapacity: number;
}

/** A list of categorical ids (a user's history), padded to `maxLength` with index 0. */
export interface CategoricalListFeature extends FeatureBase {
  kind: 'categorical-list';
  /** The ids that may appear, as strings of their canonical form; index i + 1 is vocabulary[i]. */
  vocabulary: string[];
  oov: 'ignore' | 'reject';
  maxLength: number;
  minLength: number;
  sketchCapacity: number;
}

export type FeatureSpec = NumericFeature | CategoricalFeature | CategoricalListFeature;

export interface ArtifactSpec {
  file: string;
  sha256: string;
  bytes: number;
}

/** What a model answers; shadow agreement and canary verdicts are defined per task. */
export type ModelTask = 'binary-classification' | 'multiclass-classification' | 'regression' | 'top-k-recommendation';
export const MODEL_TASKS: readonly ModelTask[] = ['binary-classification', 'multiclass-classification', 'regression', 'top-k-recommendation'];

export interface ModelManifest {
  name: string;
  version: string;
  description: string;
  opset: number;
  task: ModelTask;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  features: FeatureSpec[];
  /** Outputs sketched for drift, by name and kind. */
  sketchedOutputs: { name: string; kind: 'numeric' | 'categorical'; sketchCapacity?: number }[];
  /** Extra scalar parameters a request may set (e.g. k for top-k), with their ranges. */
  parameters?: { name: string; input: string; range: [number, number]; default: number }[];
  /** The builds made from the same training run (models/build.ts writes both); absent for imported models, whose registry record holds the artifact's sha256. */
  artifacts?: { float32?: ArtifactSpec; int8?: ArtifactSpec };
  /** Which build `model.onnx` is: the golden rows' expected outputs are read under this key. */
  serve: 'int8' | 'float32';
  quantization?: { scheme: string; details: string };
  quality?: { split: string; metrics: Record<string, { float32?: number; int8?: number; baseline?: number; baselineName?: string }> };
  training?: Record<string, string | number>;
  baseline?: ArtifactSpec & { rows: number; window: [string, string] };
  golden?: ArtifactSpec & { rows: number; tolerance: Record<string, number> };
  replay?: ArtifactSpec & { rows: number; period: [string, string] };
  serving: { defaultLatencyBudgetMs: number; maxBatch: number };
  /** A binary classifier's score calibration, fitted on labelled reference rows (core/calibration.ts): the estimated AUC reads scores through it. */
  calibration?: Calibration;
  /** Who owns the model, the period its training data covers, and how often it should be retrained (ISO 8601 duration: P30D, P6W, P3M, P1Y). */
  ownership?: { owner?: string; trained?: [string, string]; retrain_every?: string };
}

/** Days in a retrain cadence (`P<n>D`, `P<n>W`, `P<n>M` as 30 days, `P<n>Y` as 365), or undefined when it is not one. */
export function cadenceDays(s: string): number | undefined {
  const m = /^P([1-9]\d{0,3})([DWMY])$/.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * { D: 1, W: 7, M: 30, Y: 365 }[m[2] as 'D' | 'W' | 'M' | 'Y'];
}

/**
 * A model's age against its retrain cadence: days since the end of the period it was trained on
 * (else since `since`, when its version was pushed), when the next training is due, and whether
 * that is past. Undefined without a cadence.
 */
export function staleness(m: Pick<ModelManifest, 'ownership'>, since: string, now: number): { age_days: number; due_at: string; stale: boolean } | undefined {
  const days = m.ownership?.retrain_every ? cadenceDays(m.ownership.retrain_every) : undefined;
  if (days === undefined) return undefined;
  const from = Date.parse(m.ownership?.trained?.[1] ?? since);
  if (!Number.isFinite(from)) return undefined;
  const due = from + days * 86_400_000;
  return { age_days: Math.floor((now - from) / 86_400_000), due_at: new Date(due).toISOString(), stale: now > due };
}

/** The names of the manifest's calendar features (`seasonal`), judged by range only unless daily (below) and time-matched. */
export function seasonalFeatures(m: Pick<ModelManifest, 'features'>): Set<string> {
  return new Set(m.features.filter((f) => f.kind === 'numeric' && f.seasonal).map((f) => f.name));
}

/** Each cycle's length (ms): a window at least this long holds the whole cycle. */
export const CYCLE_MS = { day: 86_400_000, week: 7 * 86_400_000, year: 365 * 86_400_000 } as const;

/** The calendar features with a cycle (not `rangeOnly`), by name, with their cycle's length: a window spanning it judges them in full. */
export function calendarCycles(m: Pick<ModelManifest, 'features'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of m.features) if (f.kind === 'numeric' && f.seasonal && f.cycle && !f.rangeOnly) out.set(f.name, CYCLE_MS[f.cycle]);
  return out;
}

/** The features that are a reading of the event time (`eventTime`), by name. */
export function eventTimeFeatures(m: Pick<ModelManifest, 'features'>): Map<string, EventTimeReading> {
  const out = new Map<string, EventTimeReading>();
  for (const f of m.features) if (f.kind === 'numeric' && f.eventTime) out.set(f.name, f.eventTime);
  return out;
}

/** The calendar features of the daily cycle a time-matched reference judges in full (not `rangeOnly`). */
export function dailyFeatures(m: Pick<ModelManifest, 'features'>): Set<string> {
  return new Set(m.features.filter((f) => f.kind === 'numeric' && f.seasonal && f.cycle === 'day' && !f.rangeOnly).map((f) => f.name));
}

/** A manifest as models/build.ts writes it for the project's own models: both builds, their quality, the data files. */
export interface BuiltManifest extends ModelManifest {
  artifacts: { float32: ArtifactSpec; int8: ArtifactSpec };
  quantization: { scheme: string; details: string };
  quality: { split: string; metrics: Record<string, { float32: number; int8: number; baseline?: number; baselineName?: string }> };
  training: Record<string, string | number>;
  baseline: ArtifactSpec & { rows: number; window: [string, string] };
  golden: ArtifactSpec & { rows: number; tolerance: Record<string, number> };
  replay: ArtifactSpec & { rows: number; period: [string, string] };
}

/**
 * What a request is encoded by: the graph inputs, and each feature's input, column, vocabulary
 * and list length, and the parameters. Two versions with the same interface take the same
 * tensors for the same request, so one may stand in for the other (canary, shadow); ranges,
 * descriptions and sketch sizes may differ.
 */
export function encodingInterface(m: Pick<ModelManifest, 'inputs' | 'features' | 'parameters'>): string {
  return JSON.stringify({
    inputs: m.inputs.map((i) => [i.name, i.dtype, i.shape]),
    features: m.features.map((f) => [
      f.name,
      f.kind,
      f.input,
      f.kind === 'numeric' ? (f.column ?? null) : f.vocabulary,
      f.kind === 'categorical-list' ? f.maxLength : null,
    ]),
    parameters: (m.parameters ?? []).map((p) => [p.name, p.input]),
  });
}
