/**
 * The JSON that crosses HTTP between the edge and its clients (the browser runtime, the
 * dashboard, scripts), typed once: the worker checks what it answers against these with
 * `satisfies`, and its clients read them through the same types (as comlink's protocol.ts does for
 * its wire). Types only: nothing here runs.
 */
import type { ModelManifest } from './manifest.ts';
import type { RoutingTable } from './routing.ts';
import type { EstimatedAuc, FeedbackResult, OutcomeTask, RealizedPerformance } from './outcomes.ts';
import type { StageAnalysis } from './rollout.ts';
import type { DriftMethod, DriftResult } from './drift.ts';
import type { SketchDescription } from './sketch.ts';

/** A golden row as shipped to browsers: features, and the outputs onnxruntime-node computed for the served artifact. */
export interface GoldenRow {
  features: Record<string, unknown>;
  expected: Record<string, number | number[]>;
}

/** What `GET /v1/models/{name}/telemetry-token` (and the descriptor) grant a browser. */
export interface TelemetryGrant {
  endpoint: string;
  token: string;
  /** The worker's id for this browser; a renewal showing this token keeps it. */
  source: string;
  expires_at: number;
}

/**
 * `POST /v1/telemetry/predictions?token=`: what the join of late labels keeps of predictions a
 * browser made on the device (core/outcomes.ts PredictionRecord; the time is read from the id).
 */
export interface BrowserPredictionsBody {
  predictions: BrowserPrediction[];
}
export interface BrowserPrediction {
  id: string;
  version: string;
  value: number;
  /** A ranking's served ids, best first (value: their count). */
  items?: string[];
}
/** Its answer: records stored, already stored (a retried flush), refused by the aggregator. */
export interface BrowserPredictionsAnswer {
  stored: number;
  duplicate: number;
  rejected: number;
}

/** One item of `POST /v1/models/{name}/feedback`: a label, or for a ranking an event on an item. */
export type FeedbackEntry = { prediction_id: string; label: number | boolean } | { prediction_id: string; event: 'click' | 'convert'; item: string | number };

/** `POST /v1/models/{name}/feedback`'s answer: each item's fate, in order, and the counts. */
export interface FeedbackAnswer {
  model: string;
  results: ({ prediction_id: string | null } & FeedbackResult)[];
  joined: number;
  duplicate: number;
  unknown: number;
  expired: number;
  invalid: number;
}

/** `GET /v1/models/{name}/artifact`. */
export interface ArtifactDescriptor {
  model: string;
  version: string;
  manifest: ModelManifest;
  artifact: { url: string; sha256: string; bytes: number; quantization: string };
  golden: { tolerance: Record<string, number>; rows: GoldenRow[] } | null;
  /** Null when the edge gives this client no token (telemetry off there, or its address unknown): the runtime then reports nothing. */
  telemetry: TelemetryGrant | null;
}

/** An error on the `/v1` routes. */
export interface ErrorBodyV1 {
  error: { code: string; message: string; field?: string; [extra: string]: unknown };
}

/** An error on the `/v2` routes, as the Open Inference Protocol has it: the message, the code and field beside it. */
export interface ErrorBodyV2 {
  error: string;
  code: string;
  field?: string;
  [extra: string]: unknown;
}

/** One feature's or output's sketch in a drift window, and how it was judged (core/judge.ts). */
export type JudgedSketch = SketchDescription & {
  drifted: boolean;
  /** Where the window lies between sampling noise (0) and the bar (1) by its most telling statistic (core/judge.ts windowScore); null when not judged. */
  score: number | null;
  /** Each statistic that applied, with its value, threshold and verdict. */
  drift: Partial<Record<DriftMethod, DriftResult>>;
};

/** A window of `GET /v1/models/{name}/drift`: empty (rows 0) or judged. */
export type DriftWindow =
  | { from: string; to: string; rows: 0 }
  | {
      from: string;
      to: string;
      rows: number;
      /** Moving references: the rows of the reference window (under 30, nothing is judged). */
      reference_rows?: number;
      /**
       * Against the baseline: whether the window was compared with the baseline's rows at the same
       * times of day (the time-matched reference, core/clock.ts) rather than with all of it.
       */
      time_matched?: boolean;
      counters: Record<string, number>;
      latency_ms: { p50: number | null; p99: number | null };
      /** The features and outputs judged drifted over this span. */
      drifted: string[];
      features: Record<string, JudgedSketch>;
      outputs: Record<string, JudgedSketch>;
    };

/** `GET /v1/models/{name}/drift`. */
export interface DriftAnswer {
  model: string;
  version: string;
  reference: 'baseline' | 'previous_day' | 'previous_week' | 'previous_window';
  /** The aggregator's own account: summaries stored, duplicates, refusals, roll-ups, webhooks. */
  aggregator: Record<string, number>;
  baseline: {
    /** 'training', or the source id of an operator's re-baseline. */
    source: string;
    window: readonly [string, string] | readonly string[];
    rows: number;
    features: Record<string, SketchDescription>;
    outputs: Record<string, SketchDescription>;
  };
  windows: DriftWindow[];
}

/** A drift alert as the aggregator keeps it (`GET /v1/models/{name}/alerts`). */
export interface Alert {
  id: number;
  version: string;
  feature: string;
  /**
   * Drifted since when: the start of the first drifted window of the run that opened it, or of the
   * window where its sequential evidence began to rise, whichever is earlier.
   */
  since: string;
  /** End of the window that confirmed it: the hysteresis-th drifted window in a row, or the one whose evidence reached ALERT_EVIDENCE. */
  opened_at: string;
  /** End of the window that confirmed it resolved, or null while open. */
  resolved_at: string | null;
  /**
   * The statistics of the window that opened it (a drift alert: by method past its bar, and
   * `sequential`: the evidence with its threshold, that window's score and the drifted windows in
   * a row; `refused:<field>`:
   * refusal_rate with refused, seen and reference_rate); `stale`: age_days, due_at, retrain_every, owner;
   * `performance:<metric>`: the metric's statistic, its 99% bound, threshold, reference,
   * reference_source and labels; `performance:estimated_auc`: estimated_auc with its band and rows.
   */
  evidence: Record<
    string,
    {
      statistic?: number;
      threshold?: number;
      refused?: number;
      seen?: number;
      reference_rate?: number;
      age_days?: number;
      due_at?: string;
      retrain_every?: string;
      owner?: string | null;
      bound?: number;
      band?: number[];
      reference?: number;
      reference_source?: string;
      labels?: number;
      rows?: number;
      evidence?: number;
      score?: number;
      drifted_in_a_row?: number;
    }
  >;
}

/** `GET /v1/models/{name}/alerts`. */
export interface AlertsAnswer {
  model: string;
  open: number;
  alerts: Alert[];
}

/** One version in `GET /v1/models/{name}/versions`. */
export interface VersionSummary {
  role: 'stable' | 'canary' | 'shadow' | 'other';
  rows: number;
  error_rate: number;
  cache_rate: number;
  fallback_rate: number;
  latency_ms: { p50: number | null; p99: number | null };
  outputs: Record<string, SketchDescription>;
  shadow_rows?: number;
  shadow_agreement?: number | null;
  /** Realized performance from the labels joined so far (binary classifiers and regressors). */
  outcomes?: RealizedPerformance;
  /** Non-stable versions: against stable, with the reasons when worse. */
  verdict?: 'worse' | 'no worse' | 'insufficient data';
  reasons?: string[];
}

/** `GET /v1/models/{name}/versions`. */
export interface VersionsAnswer {
  model: string;
  from: string;
  to: string;
  routing: { stable: string; canary?: { version: string; share: number }; shadows?: { version: string; sampleRate: number }[] };
  versions: Record<string, VersionSummary>;
}

export type HistoryAction = 'route' | 'push' | 'delete' | 'rollout' | 'step' | 'promote' | 'rollback' | 'pause' | 'resume' | 'abort';

/** One change in a model's history (`GET /v1/models/{name}/history`, and each `history.<action>` webhook post). */
export interface HistoryEntry {
  /** 1, 2, ...: the order of changes, gap-free. */
  seq: number;
  at: string;
  /** The operator token's name (OPERATOR_TOKEN is "operator"); "rollout" for a rollout plan's own decisions. */
  who: string;
  action: HistoryAction;
  /** The table before and after (every action but 'push' and 'delete'). */
  from?: RoutingTable | null;
  to?: RoutingTable;
  /** The version pushed or deleted, or the rollout's candidate. */
  version?: string;
  sha256?: string;
  /** The rollout the change belongs to, and its stage after the change (index into the plan's stages). */
  rollout?: number;
  stage?: number;
  /** The reason given (x-change-reason), or for the plan's decisions a one-line summary of the analysis. */
  why?: string;
  /** The plan's analysis behind a step, promotion or rollback: every check with its evidence. */
  evidence?: StageAnalysis;
}

/** `GET /v1/models/{name}/history`: newest first. */
export interface HistoryAnswer {
  model: string;
  entries: HistoryEntry[];
}

export type RolloutStatus = 'running' | 'paused' | 'promoted' | 'rolled_back' | 'aborted';

/** A rollout as the operator API shows it (`GET /v1/models/{name}/rollouts[/{id}]`). */
export interface RolloutView {
  id: number;
  model: string;
  /** The candidate. */
  version: string;
  /** The stable version it began from: where a rollback returns. */
  stable: string;
  status: RolloutStatus;
  /** The stage running (index into the plan's shadow and steps), or `promoted`. */
  stage: { index: number; kind: 'shadow' | 'canary' | 'promoted'; share: number };
  /** Where the stage's evidence starts on the data clock; null until its first tick. */
  stage_from: string | null;
  started_at: string;
  started_by: string;
  updated_at: string;
  /** Why it ended, or why it is paused. */
  reason?: string;
  /** The latest analysis of the running stage, or the one that ended it. */
  analysis?: StageAnalysis;
  /** The plan in its JSON form (core/rollout.ts validateRolloutPlan). */
  plan: {
    shadow: { sample_rate: number; min_rows: number; min_duration: string } | null;
    steps: { share: number; min_rows: number; min_duration: string }[];
    thresholds: Record<string, number>;
  };
}

/** `GET /v1/models/{name}/rollouts`: the running or paused one, and the latest ones, newest first. */
export interface RolloutsAnswer {
  model: string;
  active: RolloutView | null;
  rollouts: RolloutView[];
}

/** `GET /v1/models/{name}/performance`: realized performance from the labels joined so far, per version, over the range and per window. */
export interface PerformanceAnswer {
  model: string;
  task: OutcomeTask;
  /** What performance alerts judge against (the operator's reference period, else the manifest's quality report); null: none, so no performance alert. */
  reference: { metric: string; value: number; source: string } | null;
  from: string;
  to: string;
  total: Record<string, RealizedPerformance>;
  windows: {
    from: string;
    to: string;
    versions: Record<string, RealizedPerformance>;
    /** Binary classifiers: the AUC estimated from each version's scores before labels (core/outcomes.ts estimateAuc). */
    estimated?: Record<string, EstimatedAuc>;
  }[];
  /** What the estimates assume. */
  estimate_assumptions?: string;
}
