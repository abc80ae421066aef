/**
 * Middleware the routes compose: operator authentication, the model of the path, the
 * aggregator guard, inference admission (early shedding), the event clock of replays, and the
 * CORS policy of the public inference API.
 */
import { createMiddleware } from 'hono/factory';
import { cors } from 'hono/cors';
import { OverloadedError, ValidationError } from '../../core/index.ts';
import { edgeConfig } from '../config.ts';
import { runtimeOf, type AppEnv } from './context.ts';
import { BUDGET_HEADER, clockOf, engineOf, instant } from './request.ts';

export { operatorAuth } from '../auth.ts';

/** The model (and version) of the path, resolved once into `c.var.engine`; 404 naming it when unknown. */
export const model = createMiddleware<AppEnv>(async (c, next) => {
  c.set('engine', engineOf(c));
  await next();
});

/** Routes that read the drift aggregator: 404 `aggregator_unavailable` when none is bound, else its stub for this model in `c.var.aggregator`. */
export const needsAggregator = createMiddleware<AppEnv>(async (c, next) => {
  const ns = c.env?.AGGREGATOR;
  if (!ns) throw new ValidationError('no aggregator is bound (AGGREGATOR)', 'AGGREGATOR', 404, 'aggregator_unavailable');
  c.set('aggregator', ns.get(ns.idFromName(c.var.engine.manifest.name)));
  await next();
});

// The inference API answers pages on any origin (no cookies are involved): the browser
// runtime's edge step, and apps that call the edge directly. Operator routes do not.
export const publicApi = cors({
  origin: '*',
  allowMethods: ['GET', 'POST', 'OPTIONS'],
  allowHeaders: ['content-type', 'x-latency-budget-ms', 'x-user-key'],
  exposeHeaders: ['x-served-by', 'x-model-version', 'retry-after'],
  maxAge: 600,
});

/**
 * Inference admission (see createAdmission), before the body is read. A name or budget header
 * that is not valid is left to the route to refuse.
 */
export const shed = createMiddleware<AppEnv>(async (c, next) => {
  const e = runtimeOf(c).engines.get(c.req.param('name') ?? '');
  const header = Number(c.req.header(BUDGET_HEADER));
  const budgetMs = Number.isFinite(header) && header > 0 ? header : e?.manifest.serving.defaultLatencyBudgetMs;
  const wait = budgetMs === undefined ? undefined : c.var.edge.admission.refuse(budgetMs - (performance.now() - clockOf(c).received));
  if (wait !== undefined) throw new OverloadedError(`this edge is busy: about ${Math.ceil(wait)} ms of requests are ahead of this one, over its budget`, wait);
  c.var.edge.admission.start();
  try {
    await next();
  } finally {
    c.var.edge.admission.done();
  }
});

/**
 * TELEMETRY_CLOCK=event (replays): the request's x-event-time (ISO date or ms since the epoch)
 * becomes the profiler's clock, so its rows land in windows of their own time. A malformed one
 * is a 400; elsewhere the header is ignored.
 */
export const eventTime = createMiddleware<AppEnv>(async (c, next) => {
  const raw = c.req.header('x-event-time');
  if (raw !== undefined && edgeConfig(c.env).telemetry.clock === 'event') {
    const t = instant(raw);
    if (!Number.isFinite(t) || t < 0 || t > Date.now() + 5 * 60_000)
      throw new ValidationError(
        `x-event-time must be an ISO date or ms since the epoch, not in the future; got ${JSON.stringify(raw.slice(0, 64))}`,
        'x-event-time',
      );
    // The clock moves only when this request is sketched (serving/telemetry.ts): a request refused for
    // its body or its model must not move the isolate's windows.
    clockOf(c).eventTime = t;
  }
  await next();
});
