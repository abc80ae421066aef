/**
 * An isolate's serving state, built once from the environment (edgeConfig) on its first
 * request: the model registry it serves from, an engine per committed version of each model
 * (kept in step with the registry by Edge.refresh, see syncCatalog), the fallback clients with their
 * circuit breakers, the answer cache, the window profiler, and the figures the operator's stats
 * route reads. The serving functions (serve, shadow, telemetry) take it as their first argument;
 * the routes reach it through `c.var.edge.runtime(c.env)`.
 */
import {
  type PredictionRecord,
  createCache,
  createCircuitBreaker,
  createWindowProfiler,
  TDigest,
  type Cache,
  type ModelManifest,
  type RoutingTable,
  type WindowProfiler,
} from '../../core/index.ts';
import { edgeConfig, type EdgeConfig } from '../config.ts';
import { createModelEngine, type ModelEngine, type SessionFactory } from '../engine/model-engine.ts';
import type { Env } from '../env.ts';
import { createFallbackClient, type FallbackClient } from '../fallback.ts';
import { memoryBucket, Registry, type SeedVersion, type VersionRecord } from '../registry/registry.ts';

export interface ServingOptions {
  /** Versions the registry is seeded with on first start (the default models); none by default. */
  seed?: readonly SeedVersion[];
  createSession: SessionFactory;
  /** What this server calls itself in `served_by` ("edge" for the worker, "origin" for origin/). */
  servedBy?: string;
}

/** A shadow version's agreement with the served one, in this isolate. */
export interface ShadowStats {
  runs: number;
  errors: number;
  /** Binary classifiers: served and shadow on the same side of 0.5. */
  sameClass: number;
  /** |served − shadow| of the score (binary) or of the first score (ranking). */
  scoreDiff: TDigest;
  /** Ranking models: |served top-k ∩ shadow top-k| / k. */
  overlap: TDigest;
}

export interface Runtime {
  /** What answers carry in `served_by` when this isolate's engine served them. */
  selfName: string;
  config: EdgeConfig;
  /** The registry: the MODELS bucket, or one in memory when none is bound (Node, tests without bindings). */
  registry: Registry;
  /** Each model's default version's engine (its first pushed version: what serves when no routing table says otherwise). */
  engines: Map<string, ModelEngine>;
  /** Every committed version per model (the default one included), for canary and shadow. */
  versions: Map<string, Map<string, ModelEngine>>;
  /** The commit record of every version with an engine. */
  records: Map<string, Map<string, VersionRecord>>;
  /** When the catalog was last read from the registry (Date.now()), 0 never. */
  catalogAt: number;
  /** Sessions freed to keep the loaded artifacts within MODEL_CACHE_BYTES. */
  evicted: number;
  /** Routing tables read from each model's RoutingStore, cached until `until`. */
  routing: Map<string, { table: RoutingTable; until: number }>;
  shadows: Map<string, Map<string, ShadowStats>>;
  served: Map<string, Map<string, number>>;
  profiler: WindowProfiler | undefined;
  /** TELEMETRY_CLOCK=event: the newest x-event-time sketched, the profiler's clock for replays. */
  eventClock: number;
  flushing: boolean;
  /** What the join of late labels needs of each prediction served, waiting to go to the aggregator (bounded: MAX_PENDING_PREDICTIONS, oldest dropped and counted). */
  predictions: { pending: (PredictionRecord & { model: string })[]; dropped: number };
  cache: Cache<unknown> | undefined;
  fallbacks: Map<string, FallbackClient>;
  /** Edge latency per model, for the hedging delay. */
  latency: Map<string, TDigest>;
}

/** Builds an isolate's runtime; a setting that is not valid throws an Error naming it. */
export function createRuntime(env: Env | undefined, { servedBy = 'edge' }: ServingOptions): Runtime {
  const config = edgeConfig(env);
  const { telemetry } = config;
  const runtime: Runtime = {
    selfName: servedBy,
    config,
    registry: new Registry(env?.MODELS ?? memoryBucket()),
    engines: new Map(),
    versions: new Map(),
    records: new Map(),
    catalogAt: 0,
    evicted: 0,
    routing: new Map(),
    shadows: new Map(),
    served: new Map(),
    eventClock: Date.now(),
    flushing: false,
    predictions: { pending: [], dropped: 0 },
    profiler: telemetry.enabled
      ? createWindowProfiler({
          source: { kind: 'edge', id: `${servedBy}-${crypto.randomUUID().slice(0, 8)}` },
          windowMs: telemetry.windowMs,
          maxRows: telemetry.maxRows,
          align: true,
          ...(telemetry.clock === 'event' ? { now: () => runtime.eventClock } : {}),
        })
      : undefined,
    cache: config.cache.maxBytes > 0 ? createCache({ maxBytes: config.cache.maxBytes, ttlMs: config.cache.ttlMs }) : undefined,
    fallbacks: new Map(),
    latency: new Map(),
  };
  return runtime;
}

/**
 * Brings the runtime's engines in step with the registry's catalog: an engine for each version
 * it does not have yet (`manifests` holds those versions' manifests, read by the caller), none
 * for versions no longer committed (returned, for the caller to unload), and each model's
 * default (first pushed) version. A model seen for the first time gets its fallback client and
 * latency digest. A version whose manifest could not be read is left out until the next sync.
 */
export function syncCatalog(
  r: Runtime,
  catalog: Map<string, VersionRecord[]>,
  manifests: Map<string, ModelManifest>,
  createSession: SessionFactory,
): ModelEngine[] {
  const dropped: ModelEngine[] = [];
  for (const [name, byVersion] of r.versions) {
    const committed = new Set((catalog.get(name) ?? []).map((x) => x.version));
    for (const [v, e] of byVersion)
      if (!committed.has(v)) {
        byVersion.delete(v);
        r.records.get(name)?.delete(v);
        dropped.push(e);
      }
    if (byVersion.size === 0) {
      r.versions.delete(name);
      r.records.delete(name);
      r.engines.delete(name);
    }
  }
  const { batch, failModelLoad: fail } = r.config;
  for (const [name, list] of catalog) {
    let byVersion = r.versions.get(name);
    for (const rec of list) {
      if (byVersion?.has(rec.version)) continue;
      const manifest = manifests.get(`${name}/${rec.version}`);
      if (!manifest) continue;
      const version = rec.version;
      const artifact = async () => {
        if (fail.has(name) || fail.has(`${name}@${version}`) || fail.has('*')) throw new Error('load failure injected by FAIL_MODEL_LOAD');
        const bytes = await r.registry.file(rec, 'model.onnx');
        if (!bytes) throw new Error(`${name}/${version} has no model.onnx`);
        return bytes;
      };
      if (!byVersion) {
        byVersion = new Map();
        r.versions.set(name, byVersion);
        r.records.set(name, new Map());
        addModel(r, name);
      }
      byVersion.set(version, createModelEngine({ manifest, artifact, createSession, batch: { ...batch } }));
      r.records.get(name)!.set(version, rec);
    }
    const first = list.find((x) => byVersion?.has(x.version));
    if (first) r.engines.set(name, byVersion!.get(first.version)!);
  }
  return dropped;
}

/** A model's per-isolate state besides its engines: its fallback client (one per target, and so one breaker) and its latency digest. */
function addModel(r: Runtime, name: string): void {
  r.latency.set(name, new TDigest({ compression: 50 }));
  const url = r.config.fallbackUrl(name);
  if (!url) return;
  const shared = [...r.fallbacks.values()].find((f) => f.url === url.replace(/\/+$/, ''));
  if (shared) {
    r.fallbacks.set(name, shared);
    return;
  }
  const { timeoutMs, authorization, retries, breaker } = r.config.fallback;
  r.fallbacks.set(name, createFallbackClient({ url, timeoutMs, authorization, retries, breaker: createCircuitBreaker(breaker) }));
}

/** Counts an answer served by `version` of `model` (the stats route's served_by_version). */
export function countServed(r: Runtime, model: string, version: string): void {
  if (!r.served.has(model)) r.served.set(model, new Map());
  const v = r.served.get(model)!;
  v.set(version, (v.get(version) ?? 0) + 1);
}
