/**
 * onnxruntime-web's WASM backend inside workerd: the one place that knows the trick.
 *
 * Workers forbid compiling WebAssembly from bytes at run time ("Wasm code generation disallowed
 * by embedder"), and ort-web cannot find its .wasm by URL there ("cannot determine the script
 * source URL"). So:
 * 1. the .wasm is imported as a module: wrangler compiles it at deploy time and hands us a
 *    WebAssembly.Module (wrangler's default CompiledWasm rule for *.wasm);
 * 2. `onnxruntime-web/wasm` resolves to ort.wasm.bundle.min.mjs, which carries its Emscripten
 *    glue inline (no dynamic import);
 * 3. ort gets one thread, no proxy worker, and a 4-byte placeholder `wasmBinary`, so it calls
 *    `WebAssembly.instantiate(placeholder, imports)` exactly once;
 * 4. that call, recognised by its 4 bytes (ort copies the buffer; no real module is 4 bytes
 *    long), is routed to the imported Module with ort's imports and answers with the
 *    `{ instance, module }` shape that instantiating bytes returns. Every other call passes
 *    through untouched.
 * Found working with onnxruntime-web 1.30.0 (see shared/FIELD-NOTES.md).
 */
import * as ort from 'onnxruntime-web/wasm';
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import type { Tensor, TensorData } from '../../core/index.ts';
import type { SessionFactory } from './model-engine.ts';

const PLACEHOLDER = new Uint8Array([0x00, 0x61, 0x73, 0x6d]);
let configured = false;

function isPlaceholder(source: unknown): boolean {
  let bytes: Uint8Array | undefined;
  if (source instanceof ArrayBuffer) bytes = new Uint8Array(source);
  else if (ArrayBuffer.isView(source)) bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  return bytes !== undefined && bytes.byteLength === PLACEHOLDER.byteLength && bytes.every((b, i) => b === PLACEHOLDER[i]);
}

function configure(): void {
  if (configured) return;
  configured = true;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = PLACEHOLDER;
  const original = WebAssembly.instantiate.bind(WebAssembly);
  WebAssembly.instantiate = ((source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) => {
    if (isPlaceholder(source)) {
      return original(ortWasm, imports).then((instance) => ({ instance, module: ortWasm }));
    }
    return original(source as WebAssembly.Module, imports);
  }) as typeof WebAssembly.instantiate;
}

/** An InferenceSession on ort-web's WASM execution provider, from model bytes. */
export async function createOrtSession(model: Uint8Array): Promise<ort.InferenceSession> {
  configure();
  return ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
}

/** The engine's Session interface over an ort-web session. */
export const createWasmSession: SessionFactory = async (model) => {
  const s = await createOrtSession(model);
  return {
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    inputMetadata: s.inputMetadata,
    outputMetadata: s.outputMetadata,
    release: () => s.release(),
    async run(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [k, t] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(t.dtype, t.data, t.dims);
      const out = await s.run(ortFeeds);
      const result: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(out)) result[k] = { dtype: t.type as Tensor['dtype'], dims: [...t.dims], data: t.data as TensorData };
      return result;
    },
  };
};

export { ort };
