/**
 * The state one app keeps across requests (one per isolate in workerd): its runtime, built from
 * the environment at the first request; the isolate's start, paid outside any request's clock;
 * engines warmed in the background while no request is in flight; admission (early shedding);
 * each model's routing table, read from its RoutingStore and cached; and browsers' telemetry
 * state (merge slots and rate limits, serving/browser-telemetry.ts). Routes reach it as
 * `c.var.edge`; the benchmark worker mounts its routes beside the same one.
 */
import {
  assignVersion,
  canonicalKey,
  decodeSummary,
  encodeInstances,
  observedFromFeeds,
  type ModelManifest,
  type Profile,
  type RoutingTable,
} from '../../core/index.ts';
import type { ModelEngine } from '../engine/model-engine.ts';
import type { Env } from '../env.ts';
import type { VersionRecord } from '../registry/registry.ts';
import { createAdmission } from './admission.ts';
import { createBrowserTelemetry } from './browser-telemetry.ts';
import type { Background } from './background.ts';
import { createRuntime, syncCatalog, type Runtime, type ServingOptions } from './runtime.ts';
import { sampleInstance } from './tensors.ts';

/** Longest an isolate's start waits for the routing tables (see start). */
const ISOLATE_START_WAIT_MS = 500;
/** Longest a request waits for its model's routing store (see pick). */
const ROUTING_WAIT_MS = 20;
/** How long a routing table read from its store is used before it is read again. */
const ROUTING_TTL_MS = 5000;
/** How long the registry's catalog is used before it is read again (in the background). */
const CATALOG_TTL_MS = 5000;
/** A request naming a model or version this isolate does not know reads the catalog again, at most this often. */
const CATALOG_MISS_MS = 1000;

export class Edge {
  readonly options: ServingOptions;
  readonly admission = createAdmission();
  /** Browsers' telemetry: merge slots, and the rate limits that their summaries, prediction records and feedback share. */
  readonly browser = createBrowserTelemetry();
  #runtime: Runtime | undefined;
  /** Requests in flight past the clock middleware, and who waits for there to be none. */
  #inflight = 0;
  #idleWaiters: (() => void)[] = [];
  #started = false;
  #starting: Promise<void> | undefined;
  /** The engine load in progress in the background, if any (see warm). */
  #warming: Promise<void> | undefined;
  #warmed = false;
  /** Reads of each model's RoutingStore in flight: one at a time, shared by the requests that wait for it. */
  readonly #tableReads = new Map<string, Promise<RoutingTable | undefined>>();
  /** Training baselines decoded, by the sha256 of their file. */
  readonly #baselines = new Map<string, Profile>();
  /** The catalog read in flight, shared by whoever needs it. */
  #refreshing: Promise<void> | undefined;

  constructor(options: ServingOptions) {
    this.options = options;
  }

  /** The isolate's runtime, built from the environment on first use (a bad setting throws, naming it). */
  runtime(env: Env | undefined): Runtime {
    this.#runtime ??= createRuntime(env, this.options);
    return this.#runtime;
  }

  /**
   * Wraps a request (the first middleware). Its first requests wait for the isolate's start
   * (not theirs to pay), and one received during a background engine load waits for it; then
   * `received()` restarts the request's clock. After the first answer, every stable engine starts
   * loading in the background (warm), so a cold load is on no later request's clock.
   */
  async around(env: Env | undefined, background: Background, received: (isolateMs?: number) => void, next: () => Promise<void>): Promise<void> {
    if (!this.#started && env) {
      const t = performance.now();
      this.#starting ??= this.#start(env, background).finally(() => {
        this.#started = true;
      });
      await this.#starting;
      received(performance.now() - t);
    }
    if (this.#warming) {
      await this.#warming;
      received();
    }
    this.#inflight++;
    try {
      await next();
    } finally {
      if (--this.#inflight === 0) {
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        for (const w of waiters) w();
        // A request may have loaded a session: keep the loaded artifacts within MODEL_CACHE_BYTES
        // (checked here, so a request under budget schedules nothing).
        const r = this.#runtime;
        if (r && env && this.#loadedBytes(r) > r.config.modelCacheBytes)
          background(this.evict(env).catch((err) => console.error('evicting sessions failed', err)));
      }
    }
    // Without bindings (app.request with no env) there is no runtime to warm.
    if (!this.#warmed && env) {
      this.#warmed = true;
      this.warm(background, () => [...this.runtime(env).engines.values()]);
    }
  }

  /**
   * An isolate's start, once, before its first request is timed: the runtime built from the
   * environment, each model's request path run once on a made-up instance (validation, encoding,
   * keys, sketching: the first run of this code costs tens of ms, JIT and lazy setup), and the
   * routing tables read (a Durable Object that starts, tens of ms more under wrangler dev, where it
   * shares this thread). Measured on the cold first request through wrangler dev: 75 ms of this
   * before its engine or fallback was called, against a 50 ms budget. Engines load later (warm).
   */
  async #start(env: Env, background: Background): Promise<void> {
    const r = this.runtime(env);
    try {
      const seeded = await r.registry.seed(this.options.seed ?? []);
      if (seeded) console.log(`registry: seeded ${seeded} default model version(s)`);
    } catch (err) {
      console.error('registry: seeding failed', err);
    }
    await this.refresh(env).catch((err) => console.error('registry: catalog unavailable', err));
    for (const e of r.engines.values()) {
      try {
        const m = e.manifest;
        const enc = encodeInstances(m, JSON.parse(JSON.stringify({ instances: [sampleInstance(m)] })));
        canonicalKey(enc.observed);
        r.profiler && observedFromFeeds(m, enc.feeds, enc.rows);
      } catch (err) {
        console.error('isolate start: the request path of a model did not run', err);
      }
    }
    const reads = [...r.engines.values()].map((e) => this.tableOf(env, background, e).catch(() => undefined));
    await Promise.race([Promise.all(reads), new Promise((res) => setTimeout(res, ISOLATE_START_WAIT_MS))]);
  }

  /**
   * Loads engines in the background, one at a time, each only once no request is in flight:
   * creating a session blocks the isolate for most of its length, and a request that arrives
   * meanwhile is received (its clock starts) only after it, and so is one that arrives during
   * an await of the load (see around). No request is in flight when a load starts.
   */
  warm(background: Background, engines: () => ModelEngine[]): void {
    const work = (async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 0));
        if (this.#inflight > 0) {
          await new Promise<void>((r) => this.#idleWaiters.push(r));
          continue;
        }
        // Only what fits in MODEL_CACHE_BYTES beside the sessions loaded: a warm-up must not evict a session in use.
        const r = this.#runtime;
        const room = r ? r.config.modelCacheBytes - this.#loadedBytes(r) : Infinity;
        const e = engines().find((x) => x.status().state === 'unloaded' && (!r || this.#bytesOf(r, x) <= room));
        if (!e) return;
        // A failure is remembered by the engine (status 'failed'); requests take their fallback path.
        this.#warming = e.load().catch(() => undefined);
        await this.#warming;
        this.#warming = undefined;
        if (this.#runtime) await this.evict(undefined, e);
      }
    })();
    work.catch((err) => console.error('warm-up failed', err));
    background(work);
  }

  /**
   * Reads the registry's catalog and brings the engines in step (syncCatalog): new versions get
   * an engine (loaded later, by warm or their first request), deleted ones are unloaded. One read
   * at a time; callers during a read share it.
   */
  refresh(env: Env | undefined): Promise<void> {
    this.#refreshing ??= (async () => {
      const r = this.runtime(env);
      const catalog = await r.registry.catalog();
      const fresh = [...catalog.values()].flat().filter((x) => !r.versions.get(x.model)?.has(x.version));
      const manifests = new Map<string, ModelManifest>();
      await Promise.all(
        fresh.map(async (x) => {
          try {
            manifests.set(`${x.model}/${x.version}`, await r.registry.manifest(x));
          } catch (err) {
            console.error(`registry: ${x.model}/${x.version} is skipped`, err);
          }
        }),
      );
      for (const e of syncCatalog(r, catalog, manifests, this.options.createSession)) void e.unload();
      r.catalogAt = Date.now();
    })().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Keeps the catalog fresh for a request: past CATALOG_TTL_MS it is read again in the background
   * (the request goes on with what it has); a request naming a model or version this isolate
   * does not know waits for a read, at most one per CATALOG_MISS_MS, so a version pushed through
   * another isolate serves here within seconds and unknown names cannot make every request read.
   */
  async fresh(env: Env | undefined, background: Background, name?: string, version?: string): Promise<void> {
    const r = this.runtime(env);
    const age = Date.now() - r.catalogAt;
    const known = name === undefined || (r.versions.has(name) && (version === undefined || r.versions.get(name)!.has(version)));
    if (!known && age > CATALOG_MISS_MS) {
      await this.refresh(env).catch((err) => console.error('registry: catalog unavailable', err));
      return;
    }
    if (age > CATALOG_TTL_MS) background(this.refresh(env).catch((err) => console.error('registry: catalog unavailable', err)));
  }

  /** The commit record of a version this isolate serves. */
  record(env: Env | undefined, name: string, version: string): VersionRecord | undefined {
    return this.runtime(env).records.get(name)?.get(version);
  }

  /** The model.onnx bytes of an engine's version (what its session costs, roughly). */
  #bytesOf(r: Runtime, e: ModelEngine): number {
    return r.records.get(e.manifest.name)?.get(e.manifest.version)?.files['model.onnx']?.bytes ?? 0;
  }

  /** The artifacts of every loaded session in this isolate, bytes (the stats route shows it). */
  loadedBytes(env: Env | undefined): number {
    return this.#loadedBytes(this.runtime(env));
  }

  #loadedBytes(r: Runtime): number {
    let total = 0;
    for (const byVersion of r.versions.values()) for (const e of byVersion.values()) if (e.status().state === 'ready') total += this.#bytesOf(r, e);
    return total;
  }

  /**
   * Frees the least recently used sessions while the loaded artifacts pass MODEL_CACHE_BYTES (an
   * isolate has 128 MB): never the one just loaded (`keep`), never the most recently used one
   * (a single model over the budget still serves), never one serving a request. A freed version
   * loads again on its next request.
   */
  async evict(env: Env | undefined, keep?: ModelEngine): Promise<void> {
    const r = this.runtime(env);
    const loaded: { e: ModelEngine; bytes: number }[] = [];
    for (const byVersion of r.versions.values())
      for (const e of byVersion.values()) if (e.status().state === 'ready') loaded.push({ e, bytes: this.#bytesOf(r, e) });
    let total = this.#loadedBytes(r);
    if (total <= r.config.modelCacheBytes) return;
    loaded.sort((a, b) => a.e.lastUsed() - b.e.lastUsed());
    for (const { e, bytes } of loaded.slice(0, -1)) {
      if (total <= r.config.modelCacheBytes) break;
      if (e !== keep && (await e.unload())) {
        total -= bytes;
        r.evicted++;
      }
    }
  }

  /**
   * The model's routing table: from its RoutingStore, cached per isolate for 5 s. A request waits
   * for the store at most `waitMs` (a part of its budget): a cold store (its object starting, tens
   * of ms under load) must not spend a request's budget, so past that the request goes on with the
   * last table known (the default one if none), and the read completes in the background for the
   * requests that follow. An unreachable store keeps the last table as well.
   */
  async tableOf(env: Env | undefined, background: Background, e: ModelEngine, waitMs = Infinity): Promise<RoutingTable> {
    const r = this.runtime(env);
    const name = e.manifest.name;
    const cached = r.routing.get(name);
    if (cached && cached.until > Date.now()) return cached.table;
    const fallback: RoutingTable = cached?.table ?? { stable: e.manifest.version };
    const store = env?.ROUTING;
    if (!store) return this.remember(background, r, name, fallback);
    let read = this.#tableReads.get(name);
    if (!read) {
      read = store
        .get(store.idFromName(name))
        .getTable()
        .then((stored) => this.remember(background, r, name, stored.table ?? { stable: e.manifest.version }))
        .catch((err) => {
          console.error('routing table unavailable', err);
          this.remember(background, r, name, fallback);
          return undefined;
        })
        .finally(() => this.#tableReads.delete(name));
      this.#tableReads.set(name, read);
      background(read);
    }
    if (waitMs === Infinity) return (await read) ?? fallback;
    let timer: unknown;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, Math.max(0, waitMs))));
    try {
      return (await Promise.race([read, late])) ?? fallback;
    } finally {
      clearTimeout(timer as Parameters<typeof clearTimeout>[0]);
    }
  }

  /**
   * Caches a model's table, and warms in the background every version it names (stable, canary,
   * shadows) that is not loaded yet: a version that takes traffic must not carry its cold load
   * into its first answers, nor into the latency its canary verdict is judged on.
   */
  remember(background: Background, r: Runtime, name: string, table: RoutingTable): RoutingTable {
    r.routing.set(name, { table, until: Date.now() + ROUTING_TTL_MS });
    const byVersion = r.versions.get(name);
    const named = [table.stable, table.canary?.version, ...(table.shadows ?? []).map((s) => s.version)];
    const cold = named.flatMap((v) => {
      const e = v === undefined ? undefined : byVersion?.get(v);
      return e && e.status().state === 'unloaded' ? [e] : [];
    });
    if (cold.length) this.warm(background, () => cold);
    return table;
  }

  /**
   * The engine (version) that serves a caller: exactly `e` when the path pinned a version (no
   * canary assignment, no shadows), else by the routing table, sticky by `userKey`, else by the
   * request's own key. The store is waited on for at most a fifth of the budget left, and 20 ms.
   */
  async pick(
    env: Env | undefined,
    background: Background,
    e: ModelEngine,
    { pinned, requestKey, userKey, deadline }: { pinned: boolean; requestKey: string; userKey: string | undefined; deadline: number },
  ): Promise<{ engine: ModelEngine; key: string; table: RoutingTable | undefined }> {
    if (pinned) return { engine: e, key: requestKey, table: undefined };
    const table = await this.tableOf(env, background, e, Math.min(ROUTING_WAIT_MS, (deadline - performance.now()) / 5));
    const key = userKey ?? requestKey;
    const version = assignVersion(table, key);
    const engine = this.runtime(env).versions.get(e.manifest.name)?.get(version) ?? e;
    return { engine, key, table };
  }

  /** A model's training baseline: its default version's baseline.dwsm from the registry, decoded once per file. */
  async trainingBaseline(env: Env | undefined, name: string): Promise<Profile> {
    const r = this.runtime(env);
    const e = r.engines.get(name);
    const rec = e && r.records.get(name)?.get(e.manifest.version);
    if (!rec) throw new Error(`no model "${name}" is served`);
    const sha = rec.files['baseline.dwsm']?.sha256 ?? '';
    let b = this.#baselines.get(sha);
    if (!b) {
      const bytes = await r.registry.file(rec, 'baseline.dwsm');
      if (!bytes) throw new Error(`${name}/${rec.version} has no baseline.dwsm`);
      this.#baselines.set(sha, (b = decodeSummary(bytes)));
    }
    return b;
  }
}
