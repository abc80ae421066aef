/**
 * Error answers. Under /v2 the body is the Open Inference Protocol's `{ "error": "<message>" }`
 * with `code` and `field` beside it as extra members; elsewhere `{ "error": { "code", "message",
 * "field"? } }` (core/contracts.ts types both). A thrown error becomes 4xx with its message for
 * the caller's mistakes, 503 with Retry-After when serving failed, 500 with nothing internal.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { DeadlineError, OverloadedError, ValidationError, type ErrorBodyV1, type ErrorBodyV2 } from '../../core/index.ts';
import { OperatorAuthError } from '../auth.ts';
import { ModelLoadError } from '../engine/model-engine.ts';
import { FallbackError } from '../fallback.ts';

/** Whether a path is under the Open Inference Protocol's prefix, whose error body is `{ "error": "<message>" }`. */
const isV2 = (path: string) => path === '/v2' || path.startsWith('/v2/');

/**
 * An error answer in the shape of the route's protocol: under /v2 `{ error: message, code,
 * field? }` (OIP: "error" is a string; extra members are allowed), elsewhere
 * `{ error: { code, message, field? } }`. `extra` holds further members (field, reason).
 */
export function errorJson(c: Context, status: number, code: string, message: string, extra: Record<string, unknown> = {}): Response {
  const defined = Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined));
  const body: ErrorBodyV1 | ErrorBodyV2 = isV2(c.req.path)
    ? ({ error: message, code, ...defined } satisfies ErrorBodyV2)
    : ({ error: { code, message, ...defined } } satisfies ErrorBodyV1);
  return c.json(body, status as ContentfulStatusCode);
}

/**
 * What a fallback failure tells the client, by reason: never the fallback's URL, its answer's
 * text or a network error's message (those go to the log).
 */
const FALLBACK_PUBLIC: ReadonlyMap<string, string> = new Map([
  ['budget', 'the fallback cannot answer within the latency budget left'],
  ['timeout', 'the fallback did not answer within the latency budget left'],
  ['network', 'the fallback is unreachable'],
  ['breaker_open', 'the fallback is unavailable (circuit open)'],
  ['upstream', 'the fallback failed'],
]);

/** The answer for a thrown error: 4xx with its message for the caller's mistakes, 503 + Retry-After when serving failed, 500 with nothing internal. */
export function errorResponse(c: Context, err: unknown): Response {
  if (err instanceof OperatorAuthError) {
    c.header('WWW-Authenticate', 'Bearer');
    return errorJson(c, 401, 'unauthorized', 'a valid operator bearer token is required', { field: 'authorization' });
  }
  if (err instanceof ValidationError) return errorJson(c, err.status, err.code, err.message, { field: err.field });
  const retry = (ms: number) => c.header('Retry-After', String(Math.max(1, Math.ceil(ms / 1000))));
  if (err instanceof DeadlineError) {
    retry(err.retryAfterMs);
    return errorJson(c, 503, 'deadline', err.message);
  }
  if (err instanceof OverloadedError) {
    retry(err.retryAfterMs);
    return errorJson(c, 503, 'overloaded', err.message);
  }
  if (err instanceof ModelLoadError) {
    console.error('model load failed', err.message);
    retry(err.retryAt - performance.now());
    return errorJson(c, 503, 'model_unavailable', 'the model failed to load on this edge and no fallback answered; retry later');
  }
  if (err instanceof FallbackError) {
    console.error('fallback failed', err.message);
    retry(err.retryAfterMs);
    return errorJson(c, 503, 'unavailable', FALLBACK_PUBLIC.get(err.reason) ?? 'the fallback failed', { reason: err.reason });
  }
  console.error('internal error', err);
  return errorJson(c, 500, 'internal', 'internal error');
}
