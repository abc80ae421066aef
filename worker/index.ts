/**
 * The worker's entry: the edge API over the bundled int8 models, with onnxruntime-web's WASM
 * backend inside workerd, and the Durable Objects it uses.
 */
import { createApp, type Env } from './app.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import { BUNDLED_MODELS } from './models.ts';

export type { Env };
export { RoutingStore } from './routing-store.ts';
export { DriftAggregator } from './aggregator.ts';

const app = createApp({ models: BUNDLED_MODELS, createSession: createWasmSession });

export default app;
