/**
 * An isolate's serving state, built once from the environment (edgeConfig) on its first
 * request: an engine per deployed version of each model, the fallback clients with their
 * circuit breakers, the answer cache, the window profiler, and the figures the operator's stats
 * route reads. The serving functions (serve, shadow, telemetry) take it as their first argument;
 * the routes reach it through `c.var.edge.runtime(c.env)`.
 */
import { createCache, createCircuitBreaker, createWindowProfiler, TDigest, type Cache, type RoutingTable, type WindowProfiler } from '../../core/index.ts';
import { edgeConfig, type EdgeConfig } from '../config.ts';
import { createModelEngine, type ModelEngine, type SessionFactory } from '../engine/model-engine.ts';
import type { Env } from '../env.ts';
import { createFallbackClient, type FallbackClient } from '../fallback.ts';
import type { BundledModel } from '../models.ts';

export interface ServingOptions {
  models: Record<string, BundledModel>;
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
  /** The stable (manifest) version's engine per model. */
  engines: Map<string, ModelEngine>;
  /** Every deployable version per model (the stable one included), for canary and shadow. */
  versions: Map<string, Map<string, ModelEngine>>;
  /** Routing tables read from each model's RoutingStore, cached until `until`. */
  routing: Map<string, { table: RoutingTable; until: number }>;
  shadows: Map<string, Map<string, ShadowStats>>;
  served: Map<string, Map<string, number>>;
  profiler: WindowProfiler | undefined;
  /** TELEMETRY_CLOCK=event: the newest x-event-time sketched, the profiler's clock for replays. */
  eventClock: number;
  flushing: boolean;
  cache: Cache<unknown> | undefined;
  fallbacks: Map<string, FallbackClient>;
  /** Edge latency per model, for the hedging delay. */
  latency: Map<string, TDigest>;
}

/** Builds an isolate's runtime; a setting that is not valid throws an Error naming it. */
export function createRuntime(env: Env | undefined, { models, createSession, servedBy = 'edge' }: ServingOptions): Runtime {
  const config = edgeConfig(env);
  const { batch } = config;
  const engines = new Map<string, ModelEngine>();
  const versions = new Map<string, Map<string, ModelEngine>>();
  for (const [name, m] of Object.entries(models)) {
    const byVersion = new Map<string, ModelEngine>();
    for (const [version, bytes] of [[m.manifest.version, m.artifact] as const, ...Object.entries(m.variants ?? {})]) {
      const fail = config.failModelLoad;
      const artifact = () => {
        if (fail.has(name) || fail.has(`${name}@${version}`) || fail.has('*')) throw new Error('load failure injected by FAIL_MODEL_LOAD');
        return new Uint8Array(bytes);
      };
      const manifest = version === m.manifest.version ? m.manifest : { ...m.manifest, version };
      byVersion.set(version, createModelEngine({ manifest, artifact, createSession, batch: { ...batch } }));
    }
    versions.set(name, byVersion);
    engines.set(name, byVersion.get(m.manifest.version)!);
  }
  // One client, and so one circuit breaker, per fallback target.
  const byUrl = new Map<string, FallbackClient>();
  const fallbacks = new Map<string, FallbackClient>();
  for (const name of Object.keys(models)) {
    const url = config.fallbackUrl(name);
    if (!url) continue;
    let client = byUrl.get(url);
    if (!client) {
      const { timeoutMs, authorization, retries, breaker } = config.fallback;
      client = createFallbackClient({ url, timeoutMs, authorization, retries, breaker: createCircuitBreaker(breaker) });
      byUrl.set(url, client);
    }
    fallbacks.set(name, client);
  }
  const { telemetry } = config;
  const runtime: Runtime = {
    selfName: servedBy,
    config,
    engines,
    versions,
    routing: new Map(),
    shadows: new Map(),
    served: new Map(),
    eventClock: Date.now(),
    flushing: false,
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
    fallbacks,
    latency: new Map([...engines.keys()].map((k) => [k, new TDigest({ compression: 50 })])),
  };
  return runtime;
}

/** Counts an answer served by `version` of `model` (the stats route's served_by_version). */
export function countServed(r: Runtime, model: string, version: string): void {
  if (!r.served.has(model)) r.served.set(model, new Map());
  const v = r.served.get(model)!;
  v.set(version, (v.get(version) ?? 0) + 1);
}
