/**
 * Operator authentication: every operator route (drift, versions, baseline, alerts, routing,
 * stats, the telemetry figures, the registry's writes) requires `Authorization: Bearer <token>`:
 * OPERATOR_TOKEN (whose holder is named "operator"), or one of OPERATOR_TOKENS
 * (`name:token,name:token`), so that the history of what served says who changed it.
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

const OPERATOR_NAME = /^[A-Za-z0-9][\w.@-]{0,63}$/;
const parsedTokens = new WeakMap<object, [string, string][]>();

/**
 * The operator tokens of an environment, as [name, token]: OPERATOR_TOKEN as "operator", then
 * each `name:token` of OPERATOR_TOKENS. A malformed entry (no name, a name of other characters,
 * an empty token, a name given twice) is an Error naming the variable, as every setting's is.
 */
export function operatorTokens(env: { OPERATOR_TOKEN?: string; OPERATOR_TOKENS?: string } | undefined): [string, string][] {
  const e = env ?? {};
  let tokens = parsedTokens.get(e);
  if (tokens) return tokens;
  tokens = e.OPERATOR_TOKEN ? [['operator', e.OPERATOR_TOKEN]] : [];
  for (const entry of (e.OPERATOR_TOKENS ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const at = entry.indexOf(':');
    const name = entry.slice(0, at);
    const token = entry.slice(at + 1);
    if (at < 1 || !OPERATOR_NAME.test(name) || !token)
      throw new Error(
        `configuration OPERATOR_TOKENS must be name:token pairs separated by commas (names of letters, digits, '_', '.', '@', '-'); "${name || entry.slice(0, 12)}..." is not`,
      );
    if (tokens.some(([n]) => n === name)) throw new Error(`configuration OPERATOR_TOKENS names "${name}" twice (OPERATOR_TOKEN is "operator")`);
    tokens.push([name, token]);
  }
  parsedTokens.set(e, tokens);
  return tokens;
}

/**
 * The name of the operator the request's token belongs to; throws unless it carries one:
 * ValidationError 404 `operator_disabled` when no operator token is set, OperatorAuthError (401)
 * when the token is missing or wrong. Every configured token is compared, in constant time each,
 * so the answer's timing says nothing of which one came close.
 */
export function checkOperator(c: Context): string {
  const tokens = operatorTokens(c.env as { OPERATOR_TOKEN?: string; OPERATOR_TOKENS?: string } | undefined);
  if (tokens.length === 0)
    throw new ValidationError('operator routes are disabled: set the OPERATOR_TOKEN secret (or OPERATOR_TOKENS)', 'authorization', 404, 'operator_disabled');
  const given = bearerToken(c.req.header('authorization'));
  // Compared even when absent (against ''), so a missing header takes the same path as a wrong one.
  let who: string | undefined;
  for (const [name, token] of tokens) if (tokenEquals(given ?? '', token) && who === undefined) who = name;
  if (who === undefined || given === undefined) throw new OperatorAuthError();
  return who;
}

export interface FeedbackAuthOptions {
  /**
   * Another kind of credential the route takes (as hono's bearerAuth takes `verifyToken`), asked
   * only when the token is neither FEEDBACK_TOKEN nor an operator's: the holder's name when it
   * is one and may send, an answer (a refusal) when it is one and may not, undefined when it is
   * not one (the operator check's 401 or 404 stands). The edge passes a browser's telemetry token
   * for the path's model (http/telemetry-token.ts), kept out of this module so that it needs no
   * configuration (config.ts imports this one).
   */
  verifyToken?: (token: string, c: Context) => Promise<string | Response | undefined>;
}

/**
 * Middleware for the feedback route: FEEDBACK_TOKEN (a token that may send labels and nothing
 * else), an operator token, or what `verifyToken` accepts; `c.var.operator` is "feedback", the
 * operator's name, or the name `verifyToken` gave.
 */
export function feedbackAuth({ verifyToken }: FeedbackAuthOptions = {}): MiddlewareHandler {
  return async function feedbackAuth(c, next) {
    const feedback = (c.env as { FEEDBACK_TOKEN?: string } | undefined)?.FEEDBACK_TOKEN;
    const given = bearerToken(c.req.header('authorization'));
    if (feedback && given !== undefined && tokenEquals(given, feedback)) c.set('operator', 'feedback');
    else {
      let holder: string;
      try {
        holder = checkOperator(c);
      } catch (err) {
        const other = verifyToken && given !== undefined ? await verifyToken(given, c) : undefined;
        if (other === undefined) throw err;
        if (other instanceof Response) return other;
        holder = other;
      }
      c.set('operator', holder);
    }
    await next();
  };
}

/** Middleware: the route behind it answers only with an operator token (see checkOperator); `c.var.operator` names its holder. */
export function operatorAuth(): MiddlewareHandler {
  return async function operatorAuth(c, next) {
    c.set('operator', checkOperator(c));
    await next();
  };
}
