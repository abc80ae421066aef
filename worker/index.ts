/**
 * The worker's entry: the edge API over the bundled int8 models, with onnxruntime-web's WASM
 * backend inside workerd, and the Durable Objects it uses (the drift aggregator judging the same
 * models).
 */
import { createApp } from './app.ts';
import { DriftAggregator as Aggregator } from './aggregator.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import type { Env } from './env.ts';
import { BUNDLED_MODELS } from './models.ts';

export type { Env };
export { RoutingStore } from './routing-store.ts';

const MODELS = new Map(Object.entries(BUNDLED_MODELS));

/** The DriftAggregator bound as AGGREGATOR: judges the bundled models. */
export class DriftAggregator extends Aggregator {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, MODELS);
  }
}

const app = createApp({ models: BUNDLED_MODELS, createSession: createWasmSession });

export default app;
