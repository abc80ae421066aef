/**
 * A browser's telemetry token as a credential beyond its summaries: for the records of the
 * predictions it made on the device (POST /v1/telemetry/predictions) and for feedback on its own
 * model's predictions (POST /v1/models/{name}/feedback, through feedbackAuth's `verifyToken`): a
 * prediction id is unguessable, so holding one is the right to label it.
 *
 * - The token is verified as POST /v1/telemetry verifies it (HMAC-SHA256, expiry); refusals are
 *   401 `missing_token` / `invalid_token` / `token_expired`, naming the field.
 * - The client's address must be known (403 `address_unknown`), and each call spends the same
 *   per-source (TELEMETRY_RATE_PER_MIN) and per-address (TELEMETRY_RATE_PER_IP_PER_MIN) budgets
 *   as a summary does (429 `rate_limited` with Retry-After): one BrowserTelemetry per app,
 *   `c.var.edge.browser`, so a page's three kinds of call share them.
 * - For feedback, the token's model must be the path's (403 `token_scope`), and a call carries at
 *   most MAX_BROWSER_FEEDBACK items (413, browserFeedbackLimit).
 */
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { edgeConfig } from '../config.ts';
import { MAX_BROWSER_FEEDBACK, verifyToken, type TokenClaims } from '../serving/browser-telemetry.ts';
import type { AppContext, AppEnv } from './context.ts';
import { errorJson } from './errors.ts';
import { body } from './request.ts';

/** The prefix feedbackAuth's holder name takes for a browser (`browser:<source id>`). */
export const BROWSER_HOLDER = 'browser:';

/** A refusal, counted in the isolate's telemetry figures. */
function refuse(c: AppContext, status: number, code: string, message: string, field?: string, headers: Record<string, string> = {}): Response {
  c.var.edge.browser.refused(code);
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  return errorJson(c, status, code, message, field === undefined ? {} : { field });
}

/** Whether a bearer credential has a telemetry token's form (`v1.<claims>.<signature>`), so that other tokens are left to other checks. */
export const isTelemetryToken = (token: string): boolean => token.startsWith('v1.') && token.split('.').length === 3;

/** The claims of a valid, unexpired telemetry token, or the 401 answer. */
export async function verifyTelemetryToken(c: AppContext, token: string | undefined, field = 'token'): Promise<TokenClaims | Response> {
  if (!token)
    return refuse(c, 401, 'missing_token', 'a telemetry token is required (?token= or authorization: Bearer)', field, { 'www-authenticate': 'Bearer' });
  const verdict = await verifyToken(token, edgeConfig(c.env).browser.signingKey);
  // proto-safe: narrows verifyToken's own union
  if ('error' in verdict)
    return refuse(
      c,
      401,
      verdict.error,
      verdict.error === 'token_expired'
        ? 'the telemetry token has expired; renew it (GET /v1/models/{name}/telemetry-token)'
        : 'the telemetry token is not valid',
      field,
      { 'www-authenticate': 'Bearer' },
    );
  return verdict.claims;
}

/** The 429 answer for a wait of `ms` (Infinity: more than a burst could ever hold). */
const limited = (c: AppContext, ms: number, field: string) =>
  refuse(c, 429, 'rate_limited', 'too many calls (or records) for this token or address', field, {
    'retry-after': String(Number.isFinite(ms) ? Math.max(1, Math.ceil(ms / 1000)) : 60),
  });

/** The client's address as Cloudflare (and `wrangler dev`) reports it, or undefined. */
const clientAddress = (c: AppContext) => c.req.header('cf-connecting-ip') || undefined;

/**
 * Spends one call of the token's source and of the client's address: the budgets summaries
 * spend (TELEMETRY_RATE_PER_MIN, TELEMETRY_RATE_PER_IP_PER_MIN). Undefined when allowed, else the
 * 403 (address unknown) or 429 answer.
 */
export function spendCall(c: AppContext, claims: TokenClaims, field: string): Response | undefined {
  const v = edgeConfig(c.env).browser;
  const ip = clientAddress(c);
  if (!ip) return refuse(c, 403, 'address_unknown', 'browser calls are accepted only from clients whose address is known (CF-Connecting-IP)');
  const t = c.var.edge.browser;
  const now = Date.now();
  const wait = Math.max(t.allow(`s:${claims.s}`, v.ratePerMin, now), t.allow(`ip:${ip}`, v.ratePerIpPerMin, now));
  return wait > 0 ? limited(c, wait, field) : undefined;
}

/**
 * Spends `n` records of the token's source (TELEMETRY_SOURCE_ROWS_PER_MIN a minute) and of the
 * client's address (that many times the addresses' share of calls, TELEMETRY_RATE_PER_IP_PER_MIN
 * / TELEMETRY_RATE_PER_MIN), under keys of their own (`kind`): prediction records are not a
 * summary's rows. Undefined when allowed, else the 429 answer.
 */
export function spendRecords(c: AppContext, claims: TokenClaims, kind: string, n: number, field: string): Response | undefined {
  const v = edgeConfig(c.env).browser;
  const ip = clientAddress(c) ?? '';
  const t = c.var.edge.browser;
  const now = Date.now();
  const perIp = v.sourceRowsPerMin * Math.max(1, v.ratePerIpPerMin / v.ratePerMin);
  const wait = Math.max(t.allow(`${kind}:${claims.s}`, v.sourceRowsPerMin, now, n), t.allow(`${kind}ip:${ip}`, perIp, now, n));
  return wait > 0 ? limited(c, wait, field) : undefined;
}

/**
 * feedbackAuth's `verifyToken`: a browser's telemetry token for the path's model, within its
 * budgets, holds the name `browser:<source>`; a token of that form that is not valid, is for
 * another model or is over budget is answered here; any other credential is left to feedbackAuth.
 */
export async function telemetryTokenHolder(token: string, c: Context): Promise<string | Response | undefined> {
  if (!isTelemetryToken(token)) return undefined;
  const ctx = c as AppContext;
  const claims = await verifyTelemetryToken(ctx, token, 'authorization');
  if (claims instanceof Response) return claims;
  const name = ctx.req.param('name');
  if (claims.m !== name)
    return refuse(ctx, 403, 'token_scope', `the telemetry token is for model "${claims.m}", not ${JSON.stringify(String(name).slice(0, 64))}`, 'authorization');
  const over = spendCall(ctx, claims, 'authorization');
  if (over) return over;
  ctx.var.edge.browser.feedback();
  return `${BROWSER_HOLDER}${claims.s}`;
}

/** After `limit`: a call authorised by a browser's telemetry token carries at most MAX_BROWSER_FEEDBACK items (413 naming `feedback`); the route reads the same parsed body. */
export const browserFeedbackLimit = createMiddleware<AppEnv>(async (c, next) => {
  if (c.var.operator?.startsWith(BROWSER_HOLDER)) {
    const raw = await body(c);
    const items = typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'feedback') ? (raw as { feedback: unknown }).feedback : undefined;
    if (Array.isArray(items) && items.length > MAX_BROWSER_FEEDBACK)
      return refuse(
        c,
        413,
        'too_many_items',
        `a browser's telemetry token sends at most ${MAX_BROWSER_FEEDBACK} feedback items a call, got ${items.length}`,
        'feedback',
      );
  }
  await next();
});
