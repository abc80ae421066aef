/**
 * Operator authentication: every operator route (drift, versions, baseline, alerts, routing,
 * stats, the telemetry figures) requires `Authorization: Bearer <OPERATOR_TOKEN>`.
 *
 * - The scheme is matched case-insensitively (RFC 9110 §11.1: "It uses a case-insensitive
 *   token to identify the authentication scheme"), one or more spaces before the credentials.
 * - The credentials are compared in constant time (tokenEquals), so the answer's timing says
 *   nothing about how much of a guess was right.
 * - Without OPERATOR_TOKEN the operator routes are off: 404 `operator_disabled`.
 * - A missing or wrong token throws OperatorAuthError, which the app's error handler answers
 *   with 401 and `WWW-Authenticate: Bearer`.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { ValidationError } from '../core/index.ts';

/** A missing or wrong operator token (401). Carries no detail: which part was wrong is not told. */
export class OperatorAuthError extends Error {
  override readonly name = 'OperatorAuthError';
  constructor() {
    super('a valid operator bearer token is required');
  }
}

const utf8 = new TextEncoder();

/**
 * Whether two strings are equal, in time that depends only on their lengths, never on where they
 * first differ. Compares UTF-8 bytes (so strings with lone surrogates compare by their U+FFFD
 * replacement, which never matters for a configured token: it is well-formed).
 */
export function tokenEquals(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.max(x.length, y.length);
  // Out-of-range reads of a typed array give undefined; `| 0` makes them 0 without a branch.
  let diff = x.length ^ y.length;
  for (let i = 0; i < n; i++) diff |= (x[i]! | 0) ^ (y[i]! | 0);
  return diff === 0;
}

/** The credentials of an `Authorization: Bearer <credentials>` header (any case of "Bearer"), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^bearer +([^ ].*)$/i.exec(header.trim());
  return m ? m[1].trimEnd() : undefined;
}

/**
 * Throws unless the request carries the operator token: ValidationError 404 `operator_disabled`
 * when OPERATOR_TOKEN is unset or empty, OperatorAuthError (401) when the token is missing or wrong.
 */
export function checkOperator(c: Context): void {
  const token = (c.env as { OPERATOR_TOKEN?: string } | undefined)?.OPERATOR_TOKEN;
  if (!token) throw new ValidationError('operator routes are disabled: set the OPERATOR_TOKEN secret', 'authorization', 404, 'operator_disabled');
  const given = bearerToken(c.req.header('authorization'));
  // Compared even when absent (against ''), so a missing header takes the same path as a wrong one.
  if (!tokenEquals(given ?? '', token) || given === undefined) throw new OperatorAuthError();
}

/** Middleware: the route behind it answers only with the operator token (see checkOperator). */
export function operatorAuth(): MiddlewareHandler {
  return async function operatorAuth(c, next) {
    checkOperator(c);
    await next();
  };
}
