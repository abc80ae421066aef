// The public entry of core/: platform-free TypeScript shared by the worker, the browser
// runtime and the aggregator. Re-exports only.
export { TDigest, type TDigestOptions, type TDigestBytesOptions } from './tdigest.ts';
export { Histogram, MAX_HISTOGRAM_EDGES } from './histogram.ts';
export { CategoricalSketch, MAX_CATEGORICAL_CAPACITY, MAX_CATEGORY_LENGTH, type CategoryCount } from './categorical.ts';
export {
  psi,
  ks,
  wasserstein,
  jensenShannon,
  chiSquare,
  compareSketches,
  PSI_EPSILON,
  type DriftResult,
  type DriftMethod,
  type NumericSketch,
} from './drift.ts';
export {
  judgeSketch,
  judgeWindow,
  windowScore,
  nextStreak,
  alertStep,
  alertSince,
  EVIDENCE_ALLOWANCE,
  EVIDENCE_CAP,
  EVIDENCE_THRESHOLD,
  type SketchJudgement,
  type WindowJudgement,
  type JudgeWindowOptions,
  type Streak,
} from './judge.ts';
export {
  createProfile,
  cloneProfile,
  mergeProfiles,
  validSlotMinutes,
  type TimeSlots,
  type SlotClock,
  SLOT_CLOCKS,
  mergeInto,
  encodeSummary,
  decodeSummary,
  decodeSketch,
  profileToJSON,
  profileFromJSON,
  sketchToJSON,
  SUMMARY_MAGIC,
  SUMMARY_VERSION,
  SUMMARY_LIMITS,
  SOURCE_KINDS,
  type Profile,
  type ProfileJSON,
  type SketchJSON,
  type Sketch,
  type SourceKind,
  type Counters,
  type CreateProfileOptions,
} from './profile.ts';
// The contract the three sketch classes implement (its interface is core/sketch.ts's Sketch; the
// `Sketch` above is their union, discriminated by `kind`).
export type { SketchKind, SketchDescription, SketchEncodeOptions } from './sketch.ts';
export { SummaryDecodeError, SketchMergeError } from './errors.ts';
export { crc32 } from './crc32.ts';
export type {
  ModelManifest,
  BuiltManifest,
  ModelTask,
  FeatureSpec,
  TensorSpec,
  TensorDType,
  NumericFeature,
  CategoricalFeature,
  CategoricalListFeature,
  ArtifactSpec,
} from './manifest.ts';
export { calibrator, expectedCalibrationError, fitIsotonic, MAX_CALIBRATION_POINTS, type Calibration } from './calibration.ts';
export { cadenceDays, calendarCycles, CYCLE_MS, dailyFeatures, encodingInterface, seasonalFeatures, staleness, MODEL_TASKS } from './manifest.ts';
export { DAY_MS, MINUTE_MS, slotOf, slotsCovering, slotSplitter, timeMatchedReference } from './clock.ts';
export { checkManifest, MAX_VOCABULARY } from './manifest-check.ts';
export {
  createBatcher,
  DeadlineError,
  OverloadedError,
  type Batcher,
  type BatcherOptions,
  type BatcherStats,
  type BatchMode,
  type SubmitOptions,
} from './batcher.ts';
export { createCache, canonicalKey, type Cache, type CacheOptions, type CacheStats } from './cache.ts';
export {
  encodeInstances,
  decodeV2Inputs,
  observedFromFeeds,
  OOV_CATEGORY,
  ValidationError,
  V2_DATATYPE,
  type Tensor,
  type TensorData,
  type EncodedRequest,
} from './validate.ts';
export { createCircuitBreaker, type CircuitBreaker, type BreakerOptions, type BreakerState, type BreakerStats } from './breaker.ts';
export { assignVersion, shadowVersions, validateRoutingTable, callerPoint, hash32, type RoutingTable } from './routing.ts';
export { createWindowProfiler, type WindowProfiler, type ProfilerOptions, type ObservedRow, type Shipment, type Outcome } from './profiler.ts';
export type {
  Alert,
  AlertsAnswer,
  ArtifactDescriptor,
  BrowserPrediction,
  BrowserPredictionsAnswer,
  BrowserPredictionsBody,
  DriftAnswer,
  DriftWindow,
  ErrorBodyV1,
  ErrorBodyV2,
  FeedbackAnswer,
  FeedbackEntry,
  GoldenRow,
  HistoryAction,
  HistoryAnswer,
  HistoryEntry,
  JudgedSketch,
  PerformanceAnswer,
  RolloutStatus,
  RolloutsAnswer,
  RolloutView,
  TelemetryGrant,
  VersionsAnswer,
  VersionSummary,
} from './contracts.ts';
export {
  analyzeStage,
  DEFAULT_PLAN,
  DEFAULT_THRESHOLDS,
  isRefusal,
  parseDurationMs,
  rollbackTable,
  latencyCheck,
  rolloutPlanToJSON,
  stageTable,
  validateRolloutPlan,
  type CheckStatus,
  type RolloutCheck,
  type RolloutPlan,
  type RolloutRefusal,
  type RolloutStage,
  type RolloutThresholds,
  type StageAnalysis,
  type StageEvidence,
} from './rollout.ts';
export { countRefusal, judgeRefusals, MAX_REFUSED_FIELDS, REFUSED_PREFIX, refusedCounter, refusedField, seenOf, type RefusalJudgement } from './refusals.ts';
export {
  addOutcome,
  addRankingEvent,
  aucStandardError,
  AUC_BINS,
  emptyOutcomes,
  estimateAuc,
  joinValue,
  judgePerformance,
  MIN_ESTIMATE_ROWS,
  MAX_CLASSES,
  MAX_EVENTS_PER_PREDICTION,
  MAX_FEEDBACK,
  MAX_PREDICTIONS,
  MAX_SERVED_ITEMS,
  mergeOutcomes,
  newPredictionId,
  outcomeTask,
  parseEvent,
  parseLabel,
  predictionTime,
  RANKING_EVENTS,
  realized,
  referencePerformance,
  WATCHED_METRIC,
  type EstimatedAuc,
  type FeedbackItem,
  type FeedbackResult,
  type PerformanceJudgement,
  type OutcomeState,
  type OutcomeTask,
  type PredictionRecord,
  type RealizedPerformance,
} from './outcomes.ts';
