/**
 * One model in one isolate: its session, loaded lazily and once, with a failed load remembered
 * (and retried only after `retryLoadAfterMs`), and core's micro-batcher in front of it.
 *
 * Requests are batched along the leading 'N' dimension of every input. A dynamic inner
 * dimension (a history of length 'H') is padded with 0 to the longest in the batch (0 is the
 * padding index of every list feature). An input without 'N' is a request parameter (k for
 * top-k): the batch runs with the largest value, and each request's outputs are cut back to
 * its own along the output dimension named after it in capitals ('K'). That is exact for
 * top-k, whose first k of the top k' (k ≤ k') are the top k.
 *
 * Loading ends with one warm-up run (`warmupFeeds`): a session's first run pays for allocations
 * and kernel preparation (58-117 ms measured in workerd against ~0.1 ms warm), and if a request
 * paid it, the batcher's cost model would start from it. So `load()` resolving, and status
 * 'ready', mean warm. A warm-up that throws fails the load: a session that cannot run the
 * smallest valid input (every index 0, every dynamic dim 1, parameters at their minimum) cannot
 * serve requests either, and a failed load sends them to the fallback and is retried after
 * `retryLoadAfterMs`, where a "ready" engine would fail every request it is given.
 */
import { createBatcher, type Batcher, type BatchMode, type ModelManifest, type Tensor, type TensorData } from '../../core/index.ts';

export interface Session {
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** The graph's inputs and outputs with their element types and shapes, where the backend reports them (onnxruntime 1.22+). */
  readonly inputMetadata?: readonly SessionValue[];
  readonly outputMetadata?: readonly SessionValue[];
  /** Frees the session's memory (its WASM heap share); the session is not used after. */
  release?(): Promise<void>;
}

/** A graph input or output as the backend describes it: `type` an ONNX element type name ('float32', 'int64'), `shape` with symbolic dims as strings. */
export interface SessionValue {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: readonly (number | string)[];
}

export type SessionFactory = (model: Uint8Array) => Promise<Session>;

export interface EngineRequest {
  rows: number;
  feeds: Record<string, Tensor>;
  params: Record<string, number>;
}

export type EngineStatus =
  | { state: 'unloaded' }
  | { state: 'loading' }
  /** loadMs: creating the session; warmupMs: its first (warm-up) run. */
  | { state: 'ready'; loadMs: number; warmupMs: number }
  | { state: 'failed'; error: string; at: number };

/** The model could not be loaded; remembered until `retryAt`. */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
  constructor(
    message: string,
    readonly retryAt: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EngineOptions {
  manifest: ModelManifest;
  /** The served artifact's bytes, read at each load (from the registry) and dropped once the session exists. */
  artifact: () => Uint8Array | Promise<Uint8Array>;
  createSession: SessionFactory;
  batch?: { mode?: BatchMode; maxBatch?: number; maxWaitMs?: number; maxQueue?: number };
  retryLoadAfterMs?: number;
  now?: () => number;
}

export interface ModelEngine {
  readonly manifest: ModelManifest;
  status(): EngineStatus;
  /** Loads the session (memoised). Rejects with ModelLoadError while a failure is remembered. */
  load(): Promise<void>;
  infer(request: EngineRequest, options?: { deadline?: number }): Promise<Record<string, Tensor>>;
  batcher(): Batcher<EngineRequest, Record<string, Tensor>> | undefined;
  /** Times `runs` direct session runs of one request (no batcher), in ms each: for benchmarks. */
  timeRuns(request: EngineRequest, runs: number): Promise<number[]>;
  /** When the engine last served (its clock), for evicting the least recently used session. */
  lastUsed(): number;
  /**
   * Frees the session once no request is queued or running on it (state back to 'unloaded'; the
   * next request loads it again). False, and nothing done, while it is busy or not ready.
   */
  unload(): Promise<boolean>;
}

export function createModelEngine({
  manifest,
  artifact,
  createSession,
  batch = {},
  retryLoadAfterMs = 30_000,
  now = () => performance.now(),
}: EngineOptions): ModelEngine {
  let status: EngineStatus = { state: 'unloaded' };
  let loading: Promise<Session> | undefined;
  let session: Session | undefined;
  let batcher: Batcher<EngineRequest, Record<string, Tensor>> | undefined;
  let used = 0;
  let running = 0;

  function load(): Promise<void> {
    if (session) return Promise.resolve();
    if (status.state === 'failed') {
      const retryAt = status.at + retryLoadAfterMs;
      if (now() < retryAt) return Promise.reject(new ModelLoadError(`model ${manifest.name} failed to load: ${status.error}`, retryAt));
      loading = undefined;
    }
    loading ??= (async () => {
      status = { state: 'loading' };
      const t = now();
      try {
        const s = await createSession(await artifact());
        for (const i of manifest.inputs) if (!s.inputNames.includes(i.name)) throw new Error(`the artifact has no input "${i.name}"`);
        for (const o of manifest.outputs) if (!s.outputNames.includes(o.name)) throw new Error(`the artifact has no output "${o.name}"`);
        const loadMs = now() - t;
        const w = now();
        try {
          await s.run(warmupFeeds(manifest));
        } catch (e) {
          throw new Error(`its warm-up run failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        }
        session = s;
        status = { state: 'ready', loadMs, warmupMs: now() - w };
        return s;
      } catch (e) {
        status = { state: 'failed', error: e instanceof Error ? e.message : String(e), at: now() };
        throw new ModelLoadError(`model ${manifest.name} failed to load: ${status.error}`, now() + retryLoadAfterMs, { cause: e });
      }
    })();
    return loading.then(() => undefined);
  }

  async function run(items: EngineRequest[]): Promise<Record<string, Tensor>[]> {
    const s = session!;
    const feeds = items.length === 1 ? items[0].feeds : concat(manifest, items);
    if (items.length === 1 && Object.keys(items[0].params).length === 0) return [await s.run(feeds)];
    const out = await s.run(feeds);
    return split(manifest, items, out);
  }

  return {
    manifest,
    status: () => status,
    load,
    async infer(request, { deadline } = {}) {
      used = now();
      running++;
      try {
        await load();
        batcher ??= createBatcher({ run, now, ...batch, maxBatch: batch.maxBatch ?? manifest.serving.maxBatch });
        return await batcher.submit(request, { deadline });
      } finally {
        running--;
      }
    },
    lastUsed: () => used,
    async unload() {
      if (!session || running > 0) return false;
      const s = session;
      session = undefined;
      loading = undefined;
      batcher = undefined;
      status = { state: 'unloaded' };
      await s.release?.().catch((e) => console.error(`model ${manifest.name}@${manifest.version}: release failed`, e));
      return true;
    },
    batcher: () => batcher,
    async timeRuns(request, runs) {
      await load();
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = now();
        await session!.run(request.feeds);
        times.push(now() - t);
      }
      return times;
    },
  };
}

const ARRAYS: Record<Tensor['dtype'], new (n: number) => TensorData> = {
  float32: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  int8: Int8Array,
};

/**
 * The smallest valid request for a manifest: one row ('N' = 1), every other dynamic dim 1, every
 * value 0 (the padding index of list features, an in-range index of every categorical one), and
 * each parameter at the low end of its range.
 */
export function warmupFeeds(manifest: ModelManifest): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const spec of manifest.inputs) {
    const dims = spec.shape.map((d) => (typeof d === 'number' ? d : 1));
    const data = new ARRAYS[spec.dtype](dims.reduce((a, b) => a * b, 1));
    const param = manifest.parameters?.find((p) => p.input === spec.name);
    if (param) {
      const v = param.range[0];
      if (data instanceof BigInt64Array) data.fill(BigInt(v));
      else data.fill(v);
    }
    feeds[spec.name] = { dtype: spec.dtype, dims, data };
  }
  return feeds;
}

function allocate(like: TensorData, n: number): TensorData {
  return new (like.constructor as new (n: number) => TensorData)(n);
}

/** Concatenates the requests' feeds along 'N' (padding dynamic inner dims with 0). */
export function concat(manifest: ModelManifest, items: EngineRequest[]): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  const total = items.reduce((a, r) => a + r.rows, 0);
  for (const spec of manifest.inputs) {
    const first = items[0].feeds[spec.name];
    if (spec.shape[0] !== 'N') {
      // A parameter: the largest value serves every request (see the header).
      let best = first;
      for (const r of items) if (Number(r.feeds[spec.name].data[0]) > Number(best.data[0])) best = r.feeds[spec.name];
      feeds[spec.name] = best;
      continue;
    }
    const inner = first.dims.slice(1).map((_, k) => Math.max(...items.map((r) => r.feeds[spec.name].dims[k + 1])));
    const rowSize = inner.reduce((a, b) => a * b, 1);
    const data = allocate(first.data, total * rowSize);
    let offset = 0;
    for (const r of items) {
      const t = r.feeds[spec.name];
      const srcRow = t.dims.slice(1).reduce((a, b) => a * b, 1);
      if (srcRow === rowSize) (data as Float32Array).set(t.data as Float32Array, offset * rowSize);
      else {
        // Only the last dimension may be shorter (a padded list): copy row by row.
        for (let i = 0; i < r.rows; i++) (data as Float32Array).set((t.data as Float32Array).subarray(i * srcRow, (i + 1) * srcRow), (offset + i) * rowSize);
      }
      offset += r.rows;
    }
    feeds[spec.name] = { dtype: first.dtype, dims: [total, ...inner], data };
  }
  return feeds;
}

/** Splits batched outputs back per request, cutting 'K'-like dims to each request's parameter. */
export function split(manifest: ModelManifest, items: EngineRequest[], out: Record<string, Tensor>): Record<string, Tensor>[] {
  const results: Record<string, Tensor>[] = items.map(() => ({}));
  for (const spec of manifest.outputs) {
    const t = out[spec.name];
    const rowSize = t.dims.slice(1).reduce((a, b) => a * b, 1);
    let offset = 0;
    items.forEach((r, i) => {
      let data = t.data.slice(offset * rowSize, (offset + r.rows) * rowSize) as TensorData;
      let dims = [r.rows, ...t.dims.slice(1)];
      // An output dim named after a parameter (K for k) is cut to the request's value.
      const param = typeof spec.shape[1] === 'string' ? Object.entries(r.params).find(([k]) => k.toUpperCase() === spec.shape[1]) : undefined;
      if (param && dims.length === 2 && param[1] < dims[1]) {
        const k = param[1];
        const cut = allocate(data, r.rows * k);
        for (let row = 0; row < r.rows; row++) (cut as Float32Array).set((data as Float32Array).subarray(row * dims[1], row * dims[1] + k), row * k);
        data = cut;
        dims = [r.rows, k];
      }
      results[i][spec.name] = { dtype: t.dtype, dims, data };
      offset += r.rows;
    });
  }
  return results;
}
