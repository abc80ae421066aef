/**
 * The hosted fallback: an HTTP endpoint that speaks the same Open Inference Protocol (KServe v2
 * JSON) as the edge: our origin server (origin/), or Triton, KServe or MLServer unchanged.
 *
 * - The caller's remaining latency budget is passed on (`x-latency-budget-ms`) and bounds every
 *   attempt (AbortSignal timeout = min(timeoutMs, budget left)).
 * - Inference is idempotent, so a failed attempt (network error, 5xx) is retried with jitter
 *   while the budget allows; a 4xx is not retried (the request itself is at fault).
 * - A circuit breaker per target refuses at once while the target is known to be down.
 */
import { createCircuitBreaker, V2_DATATYPE, type CircuitBreaker, type ModelManifest, type Tensor, type TensorDType } from '../core/index.ts';
import type { EngineRequest } from './engine/model-engine.ts';

/** The fallback could not answer. `retryAfterMs` feeds the 503's Retry-After. */
export class FallbackError extends Error {
  override readonly name = 'FallbackError';
  constructor(
    message: string,
    readonly reason: 'not_configured' | 'breaker_open' | 'budget' | 'timeout' | 'upstream' | 'network',
    readonly retryAfterMs = 1000,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface FallbackOptions {
  /** Base URL of the v2 server, e.g. http://127.0.0.1:8791 */
  url: string;
  timeoutMs?: number;
  /** Value of the Authorization header (from a secret), if the target needs one. */
  authorization?: string;
  retries?: number;
  breaker?: CircuitBreaker;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface FallbackClient {
  readonly url: string;
  readonly breaker: CircuitBreaker;
  infer(manifest: ModelManifest, request: EngineRequest, budgetMs: number): Promise<Record<string, Tensor>>;
  stats(): { attempts: number; successes: number; failures: number; retries: number };
}

const FROM_V2 = Object.fromEntries(Object.entries(V2_DATATYPE).map(([k, v]) => [v, k])) as Record<string, TensorDType>;

function toTensor(o: { datatype: string; shape: number[]; data: unknown[] }): Tensor {
  const dtype = FROM_V2[o.datatype];
  if (!dtype) throw new Error(`fallback answered datatype ${o.datatype}`);
  const flat = (o.data as unknown[]).flat(8) as number[];
  const data =
    dtype === 'int64'
      ? BigInt64Array.from(flat, (v) => BigInt(v))
      : dtype === 'float32'
        ? Float32Array.from(flat)
        : dtype === 'int32'
          ? Int32Array.from(flat)
          : dtype === 'uint8'
            ? Uint8Array.from(flat)
            : Int8Array.from(flat);
  return { dtype, dims: o.shape, data };
}

export function createFallbackClient({
  url,
  timeoutMs = 2000,
  authorization,
  retries = 1,
  breaker = createCircuitBreaker(),
  fetch: doFetch = fetch,
  now = () => performance.now(),
}: FallbackOptions): FallbackClient {
  const base = url.replace(/\/+$/, '');
  const s = { attempts: 0, successes: 0, failures: 0, retries: 0 };

  async function attempt(manifest: ModelManifest, body: string, timeout: number, budgetLeft: number): Promise<Record<string, Tensor>> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-latency-budget-ms': String(Math.max(1, Math.floor(budgetLeft))) };
    if (authorization) headers.authorization = authorization;
    s.attempts++;
    let res: Response;
    try {
      res = await doFetch(`${base}/v2/models/${encodeURIComponent(manifest.name)}/infer`, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(Math.max(1, Math.floor(timeout))),
      });
    } catch (e) {
      // workerd's abort reason is a DOMException, which need not be an instanceof Error.
      const name = (e as { name?: unknown } | null)?.name;
      const timedOut = name === 'TimeoutError' || name === 'AbortError';
      throw new FallbackError(
        timedOut ? `fallback did not answer within ${Math.floor(timeout)} ms` : `fallback unreachable: ${e instanceof Error ? e.message : e}`,
        timedOut ? 'timeout' : 'network',
        1000,
        { cause: e },
      );
    }
    const text = await res.text();
    if (res.status === 503 && /"code"\s*:\s*"deadline"/.test(text)) {
      // The target refused because it cannot meet the budget we passed on: not a failure of it.
      throw new FallbackError(`fallback cannot answer within the ${Math.floor(budgetLeft)} ms of budget left`, 'budget', retryAfterFrom(res));
    }
    if (res.status >= 500) throw new FallbackError(`fallback answered ${res.status}: ${text.slice(0, 200)}`, 'upstream', retryAfterFrom(res));
    if (res.status !== 200) {
      const err = new FallbackError(`fallback refused the request (${res.status}): ${text.slice(0, 200)}`, 'upstream', 1000);
      (err as { final?: boolean }).final = true;
      throw err;
    }
    const json = JSON.parse(text) as { outputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[] };
    const out: Record<string, Tensor> = {};
    for (const o of json.outputs) out[o.name] = toTensor(o);
    for (const spec of manifest.outputs) if (!out[spec.name]) throw new FallbackError(`fallback answered without output "${spec.name}"`, 'upstream');
    return out;
  }

  return {
    url: base,
    breaker,
    stats: () => ({ ...s }),
    async infer(manifest, request, budgetMs) {
      const deadline = now() + budgetMs;
      const body = JSON.stringify({
        inputs: manifest.inputs.map((spec) => {
          const t = request.feeds[spec.name];
          return { name: spec.name, datatype: V2_DATATYPE[t.dtype], shape: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
        }),
      });
      let last: unknown;
      for (let i = 0; i <= retries; i++) {
        const left = deadline - now();
        if (left < 1) throw new FallbackError('no latency budget left for the fallback', 'budget', 1000, { cause: last });
        if (!breaker.allow()) {
          const st = breaker.stats();
          throw new FallbackError(
            `fallback ${base} is unavailable (circuit open)`,
            'breaker_open',
            st.retryAt !== undefined ? Math.max(1000, st.retryAt - Date.now()) : 1000,
            { cause: last },
          );
        }
        try {
          const out = await attempt(manifest, body, Math.min(timeoutMs, left), left);
          breaker.success();
          s.successes++;
          return out;
        } catch (e) {
          last = e;
          // Cut short by the caller's budget, not by the target's own timeout: no verdict on
          // the target, so the breaker is not told it failed.
          if (e instanceof FallbackError && e.reason === 'timeout' && Math.min(timeoutMs, left) < timeoutMs) {
            breaker.release();
            s.failures++;
            throw new FallbackError(`fallback did not answer within the ${Math.floor(left)} ms of budget left`, 'budget', 1000, { cause: e });
          }
          if (e instanceof FallbackError && e.reason === 'budget') {
            breaker.release();
            s.failures++;
            throw e;
          }
          if ((e as { final?: boolean }).final) {
            // The target answered: it is up, whatever it thought of the request.
            breaker.success();
            s.failures++;
            throw e;
          }
          breaker.failure();
          s.failures++;
          if (i < retries) {
            s.retries++;
            // Full jitter, a few ms, and only if the budget still allows another attempt.
            const pause = Math.random() * Math.min(20, Math.max(0, (deadline - now()) / 4));
            await new Promise((r) => setTimeout(r, pause));
          }
        }
      }
      throw last instanceof FallbackError ? last : new FallbackError(`fallback failed: ${String(last)}`, 'upstream', 1000, { cause: last });
    },
  };
}

function retryAfterFrom(res: Response): number {
  const h = Number(res.headers.get('retry-after'));
  return Number.isFinite(h) && h > 0 ? h * 1000 : 1000;
}
