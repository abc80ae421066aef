/**
 * The models this worker serves (public: names, versions, features, outputs, quality), and for
 * operators what this isolate's engine, batcher, cache, fallback and shadows are doing.
 */
import { Hono, type Context } from 'hono';
import { staleness } from '../../core/index.ts';
import { runtimeOf, type AppEnv } from '../http/context.ts';
import { model, operatorAuth } from '../http/middleware.ts';
import { answer, bearer, document, documentedApp, ModelParams, operatorErrors } from '../http/openapi.ts';
import { engineOf } from '../http/request.ts';

export const models = new Hono<AppEnv>();
export const stats = documentedApp();

document(stats, {
  method: 'get',
  path: '/v1/models/{name}/stats',
  summary: "What this isolate's engine, batcher, cache, fallback, telemetry and shadows are doing",
  security: bearer,
  request: { params: ModelParams },
  responses: { 200: answer('figures of the isolate that answered'), ...operatorErrors },
});

/** What the registry holds of a model: each version with its size, sha256, task, quality and when it was pushed, oldest first. */
const versionsOf = (c: Context<AppEnv>, name: string) =>
  [...(runtimeOf(c).records.get(name)?.values() ?? [])]
    .sort((a, b) => (a.pushed_at < b.pushed_at ? -1 : a.pushed_at > b.pushed_at ? 1 : a.version < b.version ? -1 : 1))
    .map((r) => ({
      version: r.version,
      pushed_at: r.pushed_at,
      task: r.task,
      bytes: r.files['model.onnx']?.bytes ?? 0,
      sha256: r.files['model.onnx']?.sha256 ?? '',
      quality: r.quality?.metrics ?? null,
    }));

/**
 * Who owns a model and how old it is against its retrain cadence: the manifest's ownership of
 * the version serving everyone (the routing table's stable one as this isolate knows it, else the
 * default), its age since the end of its training period (else since its push), when retraining
 * is due and whether that is past. Null when the manifest names no owner or cadence.
 */
const ownershipOf = (c: Context<AppEnv>, name: string) => {
  const r = runtimeOf(c);
  const stable = r.routing.get(name)?.table.stable ?? r.engines.get(name)?.manifest.version;
  const e = stable === undefined ? undefined : r.versions.get(name)?.get(stable);
  const rec = stable === undefined ? undefined : r.records.get(name)?.get(stable);
  if (!e || !rec || !e.manifest.ownership) return null;
  const o = e.manifest.ownership;
  return {
    version: stable,
    owner: o.owner ?? null,
    trained: o.trained ?? null,
    retrain_every: o.retrain_every ?? null,
    pushed_at: rec.pushed_at,
    ...(staleness(e.manifest, rec.pushed_at, Date.now()) ?? { age_days: null, due_at: null, stale: null }),
  };
};

models.get('/v1/models', (c) =>
  c.json({
    models: [...runtimeOf(c).engines.values()].map((e) => ({
      name: e.manifest.name,
      // The default version: what serves when no routing table says otherwise.
      version: e.manifest.version,
      description: e.manifest.description,
      task: e.manifest.task,
      versions: versionsOf(c, e.manifest.name),
      ownership: ownershipOf(c, e.manifest.name),
    })),
  }),
);
models.get('/v1/models/:name', (c) => {
  const m = engineOf(c).manifest;
  return c.json({
    name: m.name,
    version: m.version,
    description: m.description,
    task: m.task,
    features: m.features.map((f) => ({
      name: f.name,
      kind: f.kind,
      description: f.description,
      ...(f.kind === 'numeric' ? { range: f.range, integer: f.integer ?? false } : { vocabulary_size: f.vocabulary.length, oov: f.oov }),
    })),
    parameters: m.parameters ?? [],
    outputs: m.outputs,
    quality: m.quality ?? null,
    serving: m.serving,
    versions: versionsOf(c, m.name),
    ownership: ownershipOf(c, m.name),
  });
});

// Operators: what this isolate's engine and cache are doing (the fallback's URL among them).
stats.get('/v1/models/:name/stats', operatorAuth(), model, (c) => {
  const e = c.var.engine;
  const r = runtimeOf(c);
  const fb = r.fallbacks.get(e.manifest.name);
  return c.json({
    model: e.manifest.name,
    version: e.manifest.version,
    engine: e.status(),
    // Every deployed version's engine in this isolate (a routing table's versions are warmed when it is read).
    versions: Object.fromEntries([...(r.versions.get(e.manifest.name) ?? [])].map(([v, x]) => [v, x.status().state])),
    // Sessions this isolate holds, all models together, against MODEL_CACHE_BYTES (freed least recently used first).
    sessions: {
      loaded_bytes: c.var.edge.loadedBytes(c.env),
      budget_bytes: r.config.modelCacheBytes,
      evicted: r.evicted,
    },
    batcher: e.batcher()?.stats() ?? null,
    cache: r.cache?.stats() ?? null,
    fallback: fb ? { url: fb.url, breaker: fb.breaker.stats(), ...fb.stats() } : null,
    served_by_version: Object.fromEntries(r.served.get(e.manifest.name) ?? []),
    telemetry: r.profiler?.stats() ?? null,
    // What the join of late labels still has to ship of this isolate's predictions (all models), and what it dropped past its bound.
    predictions: { pending: r.predictions.pending.length, dropped: r.predictions.dropped },
    shadows: Object.fromEntries(
      [...(r.shadows.get(e.manifest.name) ?? [])].map(([v, st]) => [
        v,
        {
          runs: st.runs,
          errors: st.errors,
          same_class: st.sameClass,
          score_diff_p50: st.scoreDiff.count ? st.scoreDiff.quantile(0.5) : null,
          score_diff_p99: st.scoreDiff.count ? st.scoreDiff.quantile(0.99) : null,
          overlap_mean_p50: st.overlap.count ? st.overlap.quantile(0.5) : null,
        },
      ]),
    ),
    config: {
      batchMode: r.config.batch.mode,
      maxWaitMs: r.config.batch.maxWaitMs,
      maxQueue: r.config.batch.maxQueue,
      cacheBytes: r.config.cache.maxBytes,
      cacheTtlMs: r.config.cache.ttlMs,
    },
    admission: c.var.edge.admission.stats(),
  });
});
