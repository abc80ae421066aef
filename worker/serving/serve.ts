/**
 * Serving one request: on the edge engine, and on the hosted fallback when the edge cannot serve
 * it (or, with hedging, when it is slow). Called by the inference routes and the benchmarks alike.
 */
import { DeadlineError, OverloadedError, ValidationError, type Tensor } from '../../core/index.ts';
import { ModelLoadError, type EngineRequest, type ModelEngine } from '../engine/model-engine.ts';
import { FallbackError, type FallbackClient } from '../fallback.ts';
import type { Background } from './background.ts';
import type { Runtime } from './runtime.ts';

export interface Served {
  outputs: Record<string, Tensor>;
  /** `r.selfName` when the edge engine answered, else "fallback". */
  servedBy: string;
}

/**
 * Runs a request on the edge engine, and on the hosted fallback when the edge cannot serve
 * it (load failure, refused for its deadline, overloaded, or an engine error), with the
 * budget that is left. With hedging on, a request the edge has not answered by the hedge
 * quantile of its own latency goes to the fallback too, and the first answer wins.
 */
export async function serve(r: Runtime, background: Background, e: ModelEngine, req: EngineRequest, dl: number): Promise<Served> {
  const name = e.manifest.name;
  const fallback = r.fallbacks.get(name);
  const digest = r.latency.get(name)!;
  const t0 = performance.now();
  // A cold engine (first request in this isolate) takes hundreds of ms to load, more than a
  // typical budget: with a fallback configured, this request goes there at once while the
  // engine loads in the background; without one, it waits for the load.
  const state = e.status().state;
  if (fallback && state !== 'ready' && state !== 'failed') {
    // Creating the session blocks the isolate for its whole length, so it starts only once
    // the fallback has answered (in a later task, after this response is on its way).
    const answer = viaFallbackFirst(e, req, dl, fallback);
    const loading = answer
      .catch(() => undefined)
      .then(() => new Promise((r) => setTimeout(r, 0)))
      .then(() => e.load())
      .catch(() => undefined);
    background(loading);
    return answer;
  }
  if (!fallback && state !== 'ready' && state !== 'failed') {
    // Nothing else can answer: the cold load is not the request's fault, so its time is not
    // taken from the request's budget.
    const t = performance.now();
    await e.load().catch(() => undefined);
    dl += performance.now() - t;
  }
  // Spent before it reached the engine (waiting behind other requests' work): refused now,
  // neither queued nor sent to the fallback with no time left.
  if (performance.now() >= dl) throw new DeadlineError('the latency budget was spent before the request reached the engine', 1000);
  const edge = e.infer(req, { deadline: dl }).then((outputs) => {
    digest.add(Math.max(0, performance.now() - t0));
    return { outputs, servedBy: r.selfName };
  });
  const viaFallback = async (edgeError?: unknown) => {
    if (!fallback) throw edgeError;
    try {
      return { outputs: await fallback.infer(e.manifest, req, dl - performance.now()), servedBy: 'fallback' };
    } catch (fe) {
      if (edgeError === undefined) throw fe;
      const why = (x: unknown) => (x instanceof Error ? x.message : String(x));
      throw new FallbackError(
        `the edge could not serve (${why(edgeError)}) and neither could the fallback (${why(fe)})`,
        fe instanceof FallbackError ? fe.reason : 'upstream',
        Math.max(fe instanceof FallbackError ? fe.retryAfterMs : 1000, retryMs(edgeError)),
        { cause: fe },
      );
    }
  };
  const onEdgeError = (err: unknown) => {
    if (err instanceof ValidationError) throw err;
    return viaFallback(err);
  };
  if (!fallback || r.config.hedgeQuantile === undefined || digest.count < 50) return edge.catch(onEdgeError);
  // Hedged: race the edge against a delayed fallback call.
  const delay = Math.max(1, digest.quantile(r.config.hedgeQuantile));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hedged = new Promise<Served>((resolve, reject) => {
    timer = setTimeout(() => viaFallback().then(resolve, reject), delay);
  });
  const edgeOrFallback = edge.catch((err) => {
    clearTimeout(timer);
    return onEdgeError(err);
  });
  try {
    return await Promise.any([edgeOrFallback, hedged]);
  } catch (agg) {
    throw (agg as AggregateError).errors?.[0] ?? agg;
  } finally {
    clearTimeout(timer);
  }
}

async function viaFallbackFirst(e: ModelEngine, req: EngineRequest, dl: number, fallback: FallbackClient) {
  return { outputs: await fallback.infer(e.manifest, req, dl - performance.now()), servedBy: 'fallback' };
}

/** How long the edge says to wait after its own failure. */
export function retryMs(err: unknown): number {
  if (err instanceof DeadlineError || err instanceof OverloadedError) return err.retryAfterMs;
  if (err instanceof ModelLoadError) return Math.max(1000, err.retryAt - performance.now());
  return 1000;
}
