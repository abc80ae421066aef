/**
 * The onnxruntime backends the conformance suites run against, behind one interface. Each one's
 * runtime is imported in `init()` (memoised), never at module load.
 */
import type { TensorData, TestTensor } from './onnx-testdata.ts';

export interface OutputTensor {
  type: string;
  dims: readonly number[];
  data: unknown;
}

export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Feeds each tensor to the model input of the same key. */
  run(feeds: Record<string, TestTensor>): Promise<Record<string, OutputTensor>>;
  release(): Promise<void>;
}

export interface Backend {
  /** Shown in test names: `<case> [<name>]`. */
  readonly name: string;
  createSession(model: Uint8Array): Promise<Session>;
}

/** The part of onnxruntime-common's API that both packages export. */
interface OrtApi {
  Tensor: new (type: string, data: TensorData, dims: readonly number[]) => unknown;
  InferenceSession: {
    create(model: Uint8Array, options?: { executionProviders?: string[] }): Promise<OrtSession>;
  };
}

interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, OutputTensor>>;
  release(): Promise<void>;
}

/**
 * onnxruntime-web's WASM backend in Node, through `onnxruntime-web/wasm`, the entry point that runs on
 * workerd (see FIELD-NOTES). In Node its `import` condition resolves to dist/ort.wasm.bundle.min.mjs,
 * which imports the Emscripten loader dist/ort-wasm-simd-threaded.mjs beside it; the loader resolves
 * `new URL('ort-wasm-simd-threaded.wasm', import.meta.url)` to that same dist/ folder and, on Node, reads
 * the file: URL with fs (all three files seen opened with strace). So `env.wasm.wasmPaths` stays unset.
 * (The bare `onnxruntime-web` import resolves to dist/ort.node.min.mjs under Node and loads the same
 * two files.) One thread, as on workerd, and so that no worker_threads start inside the test worker.
 */
async function ortWebForNode(): Promise<OrtApi> {
  const ort = await import('onnxruntime-web/wasm');
  ort.env.wasm.numThreads = 1;
  return ort as unknown as OrtApi;
}

function backend(name: string, load: () => Promise<OrtApi>, executionProviders: string[]): Backend {
  let ort: Promise<OrtApi> | undefined;
  const init = () => (ort ??= load());
  return {
    name,
    async createSession(model) {
      const api = await init();
      const session = await api.InferenceSession.create(model, { executionProviders });
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        run: (feeds) => session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new api.Tensor(t.dataType, t.data, t.dims)]))),
        release: () => session.release(),
      };
    },
  };
}

/** onnxruntime-web, WASM execution provider. */
export function ortWebWasm(): Backend {
  return backend('onnxruntime-web/wasm', ortWebForNode, ['wasm']);
}

/** onnxruntime-node, CPU execution provider (its native binaries ship in the package). */
export function ortNodeCpu(): Backend {
  return backend('onnxruntime-node', async () => (await import('onnxruntime-node')) as unknown as OrtApi, ['cpu']);
}
