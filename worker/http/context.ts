/**
 * What every route's Context carries: the bindings (Env) and, set by the app's first middleware,
 * `edge` (the app's per-isolate state, serving/edge.ts); operator routes behind the `model`
 * middleware also find their model's engine in `engine`, and behind `needsAggregator` the
 * model's DriftAggregator stub in `aggregator`.
 */
import type { Context } from 'hono';
import type { DriftAggregator } from '../aggregator.ts';
import type { ModelEngine } from '../engine/model-engine.ts';
import type { Env } from '../env.ts';
import type { Edge } from '../serving/edge.ts';
import type { Runtime } from '../serving/runtime.ts';

export interface AppEnv {
  Bindings: Env;
  Variables: {
    edge: Edge;
    engine: ModelEngine;
    aggregator: DurableObjectStub<DriftAggregator>;
    /** Behind operatorAuth: the name of the operator whose token the request carries. */
    operator: string;
  };
}

export type AppContext = Context<AppEnv>;

/** The isolate's runtime (built from the environment at first use). */
export const runtimeOf = (c: AppContext): Runtime => c.var.edge.runtime(c.env);
