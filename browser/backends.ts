/**
 * The backends of the ladder behind one interface, created inside the inference worker:
 * - webgpu: onnxruntime-web's native WebGPU execution provider (`onnxruntime-web/jspi`, the
 *   JSPI build of the same EP as `onnxruntime-web/webgpu`; its wasm is 16.7 MB where the
 *   asyncify one is 26.8 MB, over the 25 MiB static-asset limit of Workers). Not the default
 *   `onnxruntime-web` import: its JSEP WebGPU kernels gave wrong int8 DequantizeLinear and
 *   QLinearMatMul results here (shared/FIELD-NOTES.md). Needs an adapter and JSPI.
 * - wasm: `onnxruntime-web/wasm` (SIMD, one thread).
 * - edge: the worker's Open Inference Protocol route (POST /v2/models/{name}/infer); its rows keep
 *   the edge's prediction ids.
 * Probes run in create(), never at import.
 */
import { V2_DATATYPE, type ModelManifest, type Tensor, type TensorData } from '../core/index.ts';
import { dom } from './dom.ts';
import type { BackendName } from './protocol.ts';

export interface Backend {
  readonly name: BackendName;
  /** The outputs; the edge's also carry each row's prediction id (the edge records those predictions for the join itself). */
  run(feeds: Record<string, Tensor>): Promise<BackendRun>;
  release(): Promise<void>;
}

export interface BackendRun {
  outputs: Record<string, Tensor>;
  /** Per row: the edge's prediction id (its answer's `parameters.prediction_id`, or `prediction_ids` for several rows). */
  ids?: string[];
}

type Ort = typeof import('onnxruntime-web');

const ortModules = new Map<string, Promise<Ort>>();

/** The ort build for a backend, configured once: wasm files from `ortBase`, one thread unless isolated. */
export function ortFor(kind: 'wasm' | 'webgpu', ortBase: string): Promise<Ort> {
  let m = ortModules.get(kind);
  if (!m) {
    m = (kind === 'webgpu' ? import('onnxruntime-web/jspi') : import('onnxruntime-web/wasm')).then((mod) => {
      const ort = ((mod as { default?: Ort }).default ?? mod) as Ort;
      // Only the .wasm: the bundled builds carry their Emscripten glue (a prefix would make ort
      // import the glue's .mjs from there too).
      ort.env.wasm.wasmPaths = { wasm: `${ortBase}${kind === 'webgpu' ? 'ort-wasm-simd-threaded.jspi.wasm' : 'ort-wasm-simd-threaded.wasm'}` };
      ort.env.wasm.proxy = false;
      // One thread, even in a cross-origin isolated page: ort's pthread workers would load the
      // glue from its own module URL, which in this bundle is a chunk of the runtime (untested),
      // and threads gave nothing on the 2-core machines measured (shared/FIELD-NOTES.md).
      ort.env.wasm.numThreads = 1;
      ort.env.logLevel = 'error';
      return ort;
    });
    ortModules.set(kind, m);
    m.catch(() => ortModules.delete(kind));
  }
  return m;
}

/** Why WebGPU cannot be used here, or undefined when an adapter exists and JSPI is available. */
export async function probeWebGpu(): Promise<{ reason?: string; adapter?: string }> {
  const gpu = dom.navigator.gpu;
  if (!gpu) return { reason: 'navigator.gpu is missing (WebGPU disabled or unsupported)' };
  let adapter: Awaited<ReturnType<typeof gpu.requestAdapter>>;
  try {
    adapter = await gpu.requestAdapter();
  } catch (err) {
    return { reason: `requestAdapter failed: ${(err as Error).message}` };
  }
  if (!adapter) return { reason: 'no WebGPU adapter' };
  if (typeof (WebAssembly as unknown as { Suspending?: unknown }).Suspending !== 'function')
    return { reason: 'no JSPI (WebAssembly.Suspending) for the native WebGPU build' };
  const info = adapter.info ?? {};
  return { adapter: [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown adapter' };
}

export async function createOrtBackend(name: 'wasm' | 'webgpu', bytes: Uint8Array, ortBase: string, ep: 'wasm' | 'webgpu' = name): Promise<Backend> {
  const ort = await ortFor(name, ortBase);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: [ep], graphOptimizationLevel: 'all' });
  return {
    name,
    async run(feeds) {
      const input: Record<string, InstanceType<Ort['Tensor']>> = {};
      for (const [k, t] of Object.entries(feeds)) input[k] = new ort.Tensor(t.dtype, t.data as never, t.dims);
      const out = await session.run(input);
      const result: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(out)) {
        const data = (t.location && t.location !== 'cpu' ? await t.getData(true) : t.data) as TensorData;
        result[k] = { dtype: t.type as Tensor['dtype'], dims: [...t.dims], data };
        t.dispose?.();
      }
      return { outputs: result };
    },
    release: () => session.release(),
  };
}

const FROM_DTYPE = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array } as const;

export class EdgeError extends Error {
  override readonly name = 'EdgeError';
}

/** The edge: the worker's KServe v2 route, with the same tensors (vocabulary indices). */
export function createEdgeBackend(endpoint: string, manifest: ModelManifest, { timeoutMs = 10_000 } = {}): Backend {
  return {
    name: 'edge',
    async run(feeds) {
      const body = {
        inputs: Object.entries(feeds).map(([name, t]) => ({
          name,
          datatype: V2_DATATYPE[t.dtype],
          shape: t.dims,
          data: Array.from(t.data as ArrayLike<number | bigint>, Number),
        })),
      };
      const json = JSON.stringify(body);
      const post = () =>
        fetch(`${endpoint}/v2/models/${encodeURIComponent(manifest.name)}/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-latency-budget-ms': String(timeoutMs) },
          body: json,
          signal: AbortSignal.timeout(timeoutMs),
        });
      // One retry for what is transient (a network error, 503 with Retry-After up to 1 s): the
      // edge is the last step of the ladder, with nothing after it to demote to.
      let res = await post().catch(() => undefined);
      if (!res || res.status === 503) {
        const after = Math.min(1, Number(res?.headers.get('retry-after') ?? 0.1) || 0.1);
        await res?.body?.cancel();
        await new Promise((r) => setTimeout(r, after * 1000));
        res = await post();
      }
      if (!res.ok) throw new EdgeError(`edge answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      const answer = (await res.json()) as {
        outputs: { name: string; shape: number[]; data: number[] }[];
        parameters?: { prediction_id?: unknown; prediction_ids?: unknown };
      };
      const out: Record<string, Tensor> = {};
      for (const o of answer.outputs) {
        const spec = manifest.outputs.find((s) => s.name === o.name);
        if (!spec) continue;
        const data = spec.dtype === 'int64' ? BigInt64Array.from(o.data, (x) => BigInt(x)) : new FROM_DTYPE[spec.dtype](o.data as never);
        out[o.name] = { dtype: spec.dtype, dims: o.shape, data: data as TensorData };
      }
      const p = answer.parameters;
      const ids = Array.isArray(p?.prediction_ids) ? p.prediction_ids : typeof p?.prediction_id === 'string' ? [p.prediction_id] : undefined;
      const rows = Number(feeds[manifest.inputs.find((i) => i.shape[0] === 'N')?.name ?? '']?.dims[0] ?? 0);
      return { outputs: out, ...(ids?.length === rows && ids.every((x) => typeof x === 'string') ? { ids: ids as string[] } : {}) };
    },
    release: async () => undefined,
  };
}
