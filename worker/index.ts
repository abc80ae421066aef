/**
 * The worker's entry: the edge API over the models in the registry (the MODELS bucket, seeded on
 * first start with the default models, which travel in the bundle as data), with
 * onnxruntime-web's WASM backend inside workerd, and the Durable Objects it uses (the drift
 * aggregator judging the same models, read from the same registry).
 */
import { createApp } from './app.ts';
import { DriftAggregator as Aggregator } from './aggregator.ts';
import { createWasmSession } from './engine/ort-workerd.ts';
import type { Env } from './env.ts';
import { DEFAULT_VERSIONS } from '../models/defaults.ts';
import { registryModels } from './registry/models.ts';

export type { Env };
export { RoutingStore } from './routing-store.ts';

/** The DriftAggregator bound as AGGREGATOR: judges the models of the registry. */
export class DriftAggregator extends Aggregator {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, registryModels(env.MODELS, DEFAULT_VERSIONS));
  }
}

const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });

export default app;
