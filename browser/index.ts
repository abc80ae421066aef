/**
 * The browser runtime: on-device inference for any model in the edge's registry with WebGPU,
 * WASM and the edge as a ladder, in a dedicated Web Worker so the page never freezes.
 *
 *   const rt = createRuntime({ model: 'my-recommender', endpoint: location.origin });
 *   await rt.ready;                          // the ladder was probed; rt.backend says who won
 *   const picks = await rt.recommend([1, 260, 1196], 10);   // [{ id, score }] best first, and picks.prediction_id
 *   await rt.feedback([{ prediction_id: picks.prediction_id, event: 'click', item: picks[0].id }]);
 *   rt.addEventListener('backendchange', (e) => console.warn(e.detail));  // { from, to, reason }
 *   rt.dispose();
 *
 * - Nothing is probed at import: createRuntime() starts the worker, whose init() fetches the
 *   descriptor and the artifact (sha256-checked, kept in Cache Storage) and walks `prefer`,
 *   taking the first backend whose golden outputs agree with the reference (see
 *   inference-worker.ts). `ready` rejects with every backend's reason when none can serve.
 * - predict() validates instances against the manifest (core/validate.ts: the same checks and
 *   errors as the edge), answers repeats from core's cache, and gathers concurrent calls with
 *   core's batcher into one worker run (tensors transferred, not copied).
 * - A backend that fails at run time is replaced by the next one; `backend` changes and a
 *   `backendchange` event says why. The batch that failed is retried there.
 * - Every answer carries a `prediction_id` (predict(): each prediction's; recommend(): the
 *   list's, as `prediction_id` on the returned array). Rows the edge answered keep the edge's id
 *   (the edge records them for the join itself). Every other answer is a prediction made on the
 *   device, a cache hit included (a list shown again is another prediction, whose clicks are its
 *   own): a new id (core's newPredictionId: the time and 16 random bytes) and a record of what
 *   the join of late labels needs (core's joinValue: version, value, a ranking's served ids;
 *   never the inputs), queued and sent with the telemetry flush to POST
 *   /v1/telemetry/predictions, with the telemetry token.
 * - feedback(items) sends labels, or a ranking's clicks and conversions, to POST
 *   /v1/models/{name}/feedback with the same token (the edge takes it for this model only, 100
 *   items a call; this sends more in several calls), after the queued records, so that the edge
 *   knows the ids it names. Each item is answered on its own (joined, duplicate, unknown,
 *   expired, invalid); a refused call throws FeedbackError with the edge's status and code.
 * - Telemetry (unless `telemetry: false`, which turns off the prediction records and feedback
 *   too): sketches and prediction records only, see telemetry.ts.
 */
import * as Comlink from 'comlink';
import {
  canonicalKey,
  createBatcher,
  createCache,
  encodeInstances,
  joinValue,
  newPredictionId,
  type Batcher,
  type BrowserPrediction,
  type Cache,
  type FeedbackAnswer,
  type FeedbackEntry,
  type ModelManifest,
  type Tensor,
} from '../core/index.ts';
import { dom } from './dom.ts';
import { BACKENDS, type Attempt, type BackendChange, type BackendName, type InferenceApi, type InitReport } from './protocol.ts';
import { createReporter, type Reporter, type TelemetryOptions, type TelemetryStats } from './telemetry.ts';
import { buffersOf, concatRequests, toPredictions, type Prediction } from './tensors.ts';

export type { BackendName, BackendChange, Attempt, InitReport, Prediction, TelemetryOptions, TelemetryStats, FeedbackAnswer, FeedbackEntry };

/** One answer of predict(): the model's outputs by name, and the prediction's id (what feedback names). */
export interface Answer {
  prediction_id: string;
  [output: string]: number | number[] | string;
}

/** recommend()'s answer: the list, best first, and the list's prediction id (a click names it, with the item). */
export type Recommendations = { id: number; score: number }[] & { prediction_id: string };

/** Items a feedback call carries, at most (the edge's limit for a browser's telemetry token). */
export const MAX_FEEDBACK_PER_CALL = 100;

/** A feedback call the edge refused (or could not be made): its HTTP status (0: no answer) and error code. */
export class FeedbackError extends Error {
  override readonly name = 'FeedbackError';
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RuntimeOptions {
  model: string;
  /** A version in the edge's registry (pushed with `driftwatch push`). Default: the model's default version. */
  version?: string;
  /** The worker's origin. Default: this page's origin. */
  endpoint?: string;
  /** The ladder, fastest first. Default ['webgpu', 'wasm', 'edge']. */
  prefer?: BackendName[];
  /** Drift telemetry: false turns it off. Default on, flushed every 10 s and on pagehide. */
  telemetry?: boolean | TelemetryOptions;
  /** Where the runtime's files are (inference-worker.js, ort/). Default: next to this module. */
  baseUrl?: string;
  /** Cache Storage name for the descriptor and artifact. Default 'driftwatch-models-v1'. */
  cacheName?: string;
  /** core's cache for repeated inputs: byte budget (0 turns it off) and time to live. Defaults 1 MiB, 10 min. */
  cache?: { maxBytes?: number; ttlMs?: number };
  /** core's batcher: largest batch (default the manifest's serving.maxBatch) and longest wait (default 2 ms). */
  batch?: { maxBatch?: number; maxWaitMs?: number };
}

export interface RuntimeStats {
  backend: BackendName | undefined;
  attempts: Attempt[];
  /** Rows answered, by who answered them. */
  served: Record<BackendName | 'cache', number>;
  last: { backend: BackendName | 'cache'; ms: number } | undefined;
  load: InitReport['load'] | undefined;
  batcher: ReturnType<Batcher<unknown, unknown>['stats']> | undefined;
  cache: ReturnType<Cache<unknown>['stats']> | undefined;
  telemetry: TelemetryStats | undefined;
}

export interface Runtime extends EventTarget {
  /** Resolves once a backend is chosen; rejects with every backend's reason if none can serve. */
  readonly ready: Promise<InitReport>;
  /** The backend answering now (undefined before ready). */
  readonly backend: BackendName | undefined;
  readonly manifest: ModelManifest | undefined;
  /** Named-feature instances, as POST /v1/models/{name}/predict takes them; one prediction per instance, each with its prediction_id. */
  predict(instances: Record<string, unknown>[]): Promise<Answer[]>;
  /** Top-k for a history of liked ids (most recent last), best first: ranking models (task top-k-recommendation). */
  recommend(history: (number | string)[], k?: number): Promise<Recommendations>;
  /**
   * Labels or, for a ranking, click and convert events on this page's predictions (or any whose
   * id it holds), sent to POST /v1/models/{name}/feedback with the telemetry token after the
   * queued prediction records, 100 items a call. Resolves with each item's fate; throws
   * FeedbackError when the edge refuses a call (the calls before it were sent) or there is no
   * token (`telemetry: false`, or none was granted).
   */
  feedback(items: FeedbackEntry[]): Promise<FeedbackAnswer>;
  stats(): RuntimeStats;
  /** Sends the telemetry gathered so far now (it is also sent on an interval and on pagehide). */
  flushTelemetry(): Promise<void>;
  /** Testing and drills: the next run on `backend` fails, as a lost GPU device would. */
  failNextRun(backend: BackendName, reason?: string): Promise<void>;
  dispose(): void;
}

/** One instance, encoded (the batcher gathers them along N). */
interface Item {
  rows: 1;
  feeds: Record<string, Tensor>;
  params: Record<string, number>;
}

export function createRuntime({
  model,
  version,
  endpoint = dom.location.origin,
  prefer = [...BACKENDS],
  telemetry = true,
  baseUrl,
  cacheName = 'driftwatch-models-v1',
  cache: cacheOptions = {},
  batch = {},
}: RuntimeOptions): Runtime {
  for (const b of prefer) if (!BACKENDS.includes(b)) throw new TypeError(`prefer: unknown backend "${b}" (expected ${BACKENDS.join(', ')})`);
  if (prefer.length === 0) throw new TypeError('prefer must name at least one backend');
  const base = new URL(baseUrl ?? './', baseUrl ? dom.location.href : import.meta.url).href;
  const events = new EventTarget();
  const worker = new dom.Worker(new URL('inference-worker.js', base), { type: 'module', name: `driftwatch-${model}` });
  const remote = Comlink.wrap<InferenceApi>(worker);
  let backend: BackendName | undefined;
  let manifest: ModelManifest | undefined;
  let report: InitReport | undefined;
  let batcher: Batcher<Item, { prediction: Prediction; backend: BackendName; id?: string }> | undefined;
  let reporter: Reporter | undefined;
  let disposed = false;
  const served: RuntimeStats['served'] = { webgpu: 0, wasm: 0, edge: 0, cache: 0 };
  let last: RuntimeStats['last'];
  const cache =
    (cacheOptions.maxBytes ?? 1 << 20) > 0
      ? createCache<Prediction>({ maxBytes: cacheOptions.maxBytes ?? 1 << 20, ttlMs: cacheOptions.ttlMs ?? 600_000 })
      : undefined;

  const onChange = (c: BackendChange, attempts: Attempt[]) => {
    backend = c.to;
    if (report) report.attempts = attempts;
    events.dispatchEvent(new CustomEvent('backendchange', { detail: c }));
  };

  // A worker whose script cannot load (offline, blocked) never answers: fail `ready` instead of hanging.
  const failed = new Promise<never>((_, reject) =>
    worker.addEventListener('error', (e) => {
      const ev = e as unknown as { message?: string; preventDefault?: () => void };
      ev.preventDefault?.();
      reject(new Error(`the inference worker did not start${ev.message ? `: ${ev.message}` : ''} (${new URL('inference-worker.js', base).href})`));
    }),
  );
  failed.catch(() => undefined);
  const ready = Promise.race([
    remote.init(
      { model, ...(version === undefined ? {} : { version }), endpoint, prefer, ortBase: new URL('ort/', base).href, cacheName },
      Comlink.proxy(onChange),
    ),
    failed,
  ]).then((r) => {
    report = r;
    backend = r.backend;
    manifest = r.descriptor.manifest;
    const m = manifest;
    batcher = createBatcher<Item, { prediction: Prediction; backend: BackendName; id?: string }>({
      maxBatch: batch.maxBatch ?? m.serving.maxBatch,
      maxWaitMs: batch.maxWaitMs ?? 2,
      run: async (items) => {
        const merged = concatRequests(m, items);
        const res = await remote.run(Comlink.transfer(merged, buffersOf(merged.feeds)));
        backend = res.backend;
        // Each row cut back to its own k (the batch ran with the largest).
        const keep = m.parameters?.length ? items.map((it) => it.params[m.parameters![0].name] ?? Infinity) : undefined;
        // The edge's rows keep its ids (it recorded them); rows made here get theirs in predict().
        return toPredictions(m, res.outputs, merged.rows, keep).map((prediction, i) => ({
          prediction,
          backend: res.backend,
          ...(res.ids ? { id: res.ids[i] } : {}),
        }));
      },
    });
    if (telemetry !== false && r.descriptor.telemetry)
      reporter = createReporter({ endpoint, manifest: m, grant: r.descriptor.telemetry, options: telemetry === true ? {} : telemetry });
    return r;
  });
  ready.catch(() => undefined);

  /** An id for a prediction made on the device now: the time and 16 bytes of the CSPRNG (core/outcomes.ts). */
  const deviceId = () => newPredictionId(Date.now(), crypto.getRandomValues(new Uint8Array(16)));

  async function predict(instances: Record<string, unknown>[]): Promise<Answer[]> {
    if (disposed) throw new Error('the runtime was disposed');
    await ready;
    const m = manifest!;
    const t0 = performance.now();
    // Validates the whole call first (ValidationError names the field), as the edge does.
    const enc = encodeInstances(m, { instances }, { maxBatch: Math.max(m.serving.maxBatch, instances.length) });
    const keys = instances.map((inst) => `${m.name}@${m.version}|${canonicalKey({ inst, p: enc.params })}`);
    const out: (Prediction | undefined)[] = keys.map((k) => cache?.get(k));
    const missing = out.flatMap((p, i) => (p === undefined ? [i] : []));
    /** The edge's ids of the rows it answered. */
    const edgeIds: (string | undefined)[] = [];
    let by: BackendName | undefined;
    if (missing.length) {
      const results = await Promise.all(
        missing.map((i) => {
          const one = encodeInstances(m, { instances: [instances[i]] });
          return batcher!.submit({ rows: 1, feeds: one.feeds, params: one.params });
        }),
      );
      missing.forEach((i, j) => {
        const { prediction, backend: b, id } = results[j];
        by = b;
        out[i] = prediction;
        edgeIds[i] = id;
        cache?.set(keys[i], prediction, JSON.stringify(prediction).length * 2 + keys[i].length * 2);
      });
    }
    const ms = performance.now() - t0;
    const hits = instances.length - missing.length;
    served.cache += hits;
    if (by) served[by] += missing.length;
    last = { backend: by ?? 'cache', ms };
    try {
      // Cached rows and computed rows are sketched apart, each with who answered it.
      const rows = (idx: number[]) => idx.map((i) => ({ features: enc.observed[i], outputs: out[i]! }));
      if (hits) reporter?.observe(rows(out.flatMap((_, i) => (missing.includes(i) ? [] : [i]))), 'cache', ms, 'cache');
      if (by) reporter?.observe(rows(missing), by, ms, by === 'edge' ? 'fallback' : 'edge');
    } catch (err) {
      console.warn('driftwatch: cannot sketch', err);
    }
    // Ids, and the join's records of the predictions made here (the edge keeps its own).
    const records: BrowserPrediction[] = [];
    const answers = (out as Prediction[]).map((p, i): Answer => {
      const edge = edgeIds[i];
      if (edge !== undefined) return { ...p, prediction_id: edge };
      const id = deviceId();
      const kept = joinValue(m, p);
      if (kept) records.push({ id, version: m.version, ...kept });
      return { ...p, prediction_id: id };
    });
    if (records.length) reporter?.record(records);
    return answers;
  }

  async function feedback(items: FeedbackEntry[]): Promise<FeedbackAnswer> {
    if (disposed) throw new Error('the runtime was disposed');
    if (!Array.isArray(items) || items.length === 0) throw new TypeError('feedback takes an array of 1 or more items');
    await ready;
    const r = reporter;
    if (!r)
      throw new FeedbackError('feedback needs the telemetry token, and this runtime has none (telemetry: false, or the edge granted none)', 0, 'no_token');
    // The records first: feedback on an id the edge has not recorded yet would be `unknown`.
    await r.flushPredictions();
    const total: FeedbackAnswer = { model, results: [], joined: 0, duplicate: 0, unknown: 0, expired: 0, invalid: 0 };
    for (let i = 0; i < items.length; i += MAX_FEEDBACK_PER_CALL) {
      const body = JSON.stringify({ feedback: items.slice(i, i + MAX_FEEDBACK_PER_CALL) });
      const send = async () =>
        fetch(`${endpoint}/v1/models/${encodeURIComponent(model)}/feedback`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${await r.token()}` },
          body,
        });
      let res: Response;
      try {
        res = await send();
        // An expired token: renewed once, and the call made again.
        if (res.status === 401 && (await r.renew())) res = await send();
      } catch (err) {
        throw new FeedbackError(`feedback could not be sent: ${(err as Error).message}`, 0, 'network', { cause: err });
      }
      const json = (await res.json().catch(() => undefined)) as (FeedbackAnswer & { error?: { code: string; message: string } }) | undefined;
      if (!res.ok || !json || !Array.isArray(json.results))
        throw new FeedbackError(`feedback refused: ${res.status} ${json?.error?.message ?? ''}`.trim(), res.status, json?.error?.code ?? 'unexpected_answer');
      total.results.push(...json.results);
      for (const k of ['joined', 'duplicate', 'unknown', 'expired', 'invalid'] as const) total[k] += json[k];
    }
    return total;
  }

  const rt = events as Runtime;
  Object.defineProperties(rt, {
    ready: { value: ready },
    backend: { get: () => backend },
    manifest: { get: () => manifest },
  });
  Object.assign(rt, {
    predict,
    feedback,
    async recommend(history: (number | string)[], k = 10): Promise<Recommendations> {
      const [p] = await predict([{ history, k }]);
      const ids = p.movie_ids as number[];
      const scores = p.scores as number[];
      return Object.assign(
        ids.map((id, i) => ({ id, score: scores[i] })),
        { prediction_id: p.prediction_id },
      );
    },
    stats: (): RuntimeStats => ({
      backend,
      attempts: report?.attempts ?? [],
      served: { ...served },
      last,
      load: report?.load,
      batcher: batcher?.stats(),
      cache: cache?.stats(),
      telemetry: reporter?.stats(),
    }),
    flushTelemetry: async () => {
      await ready;
      await reporter?.flushAll();
    },
    failNextRun: (b: BackendName, reason = 'injected failure') => remote.failNextRun(b, reason),
    dispose() {
      if (disposed) return;
      disposed = true;
      reporter?.beacon();
      reporter?.dispose();
      void remote
        .dispose()
        .catch(() => undefined)
        .finally(() => {
          remote[Comlink.releaseProxy]();
          worker.terminate();
        });
    },
  });
  return rt;
}
