/**
 * The edge API (Hono): a thin factory that builds the app's per-isolate state (serving/edge.ts),
 * puts it in every request's `c.var.edge`, and mounts one sub-app per concern from routes/:
 *
 * - routes/oip.ts: the Open Inference Protocol (KServe v2) that Triton, KServe and MLServer speak;
 * - routes/predict.ts: the friendlier named-feature route;
 * - routes/models.ts: the model list and each model's card, and operators' per-isolate stats;
 * - routes/routing.ts, rollouts.ts, drift.ts, versions.ts: operators' canary/shadow tables, rollouts, drift and alerts,
 *   versions side by side;
 * - routes/browser.ts: artifacts and telemetry for the browser runtime (serving/browser-telemetry.ts
 *   judges and merges the summaries).
 *
 * Every input is validated against the model's manifest (core/validate.ts) before it can reach
 * the engine; answers are cached per instance; concurrent requests are micro-batched per model
 * (core/batcher.ts). Errors are JSON, always (http/errors.ts). A path served for other methods
 * answers 405 with `Allow`.
 *
 * Lookups by a client's string (model, version, reference) go through Maps or own-property
 * checks only: `__proto__`, `constructor` and friends are unknown names like any other
 * (test/node/proto-scan.test.ts keeps it so).
 *
 * Time: a request's budget runs from the moment the worker received it (the first middleware),
 * and inference answers carry `Server-Timing` with the worker's own time and the engine's.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { TrieRouter } from 'hono/router/trie-router';
import type { AppEnv } from './http/context.ts';
import { errorJson, errorResponse } from './http/errors.ts';
import { clockOf, serverTiming } from './http/request.ts';
import { browserRoutes } from './routes/browser.ts';
import { drift } from './routes/drift.ts';
import { models, stats } from './routes/models.ts';
import { oip } from './routes/oip.ts';
import { predict } from './routes/predict.ts';
import { registry } from './routes/registry.ts';
import { outcomes } from './routes/outcomes.ts';
import { rollouts } from './routes/rollouts.ts';
import { routing } from './routes/routing.ts';
import { versions } from './routes/versions.ts';
import { backgroundOf } from './serving/background.ts';
import { Edge } from './serving/edge.ts';
import type { ServingOptions } from './serving/runtime.ts';

export type { Env } from './env.ts';
export type { AppEnv } from './http/context.ts';
export { errorJson } from './http/errors.ts';
export { MAX_TIME_MS } from './http/request.ts';
export { createAdmission } from './serving/admission.ts';

export type AppOptions = ServingOptions;

/** Methods every path answers besides its routes': HEAD wherever GET is (Hono serves HEAD from GET), OPTIONS. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export function createApp(options: AppOptions) {
  const edge = new Edge(options);
  const app = new OpenAPIHono<AppEnv>();

  /**
   * The first middleware: the request's clock starts here, before any body is read, so budgets
   * and Server-Timing count the worker's whole time (see Edge.around for the isolate's start and
   * background loads, which are not the request's to pay).
   */
  app.use('*', async function clock(c, next) {
    c.set('edge', edge);
    const k = clockOf(c);
    await edge.around(
      c.env,
      backgroundOf(c),
      (isolateMs) => {
        if (isolateMs !== undefined) k.isolateMs = isolateMs;
        k.received = performance.now();
      },
      next,
    );
    if (k.timed) c.res.headers.set('server-timing', serverTiming(k));
  });

  app.onError((err, c) => errorResponse(c, err));

  // The registry's catalog, fresh enough for the model and version the path names (Edge.fresh).
  app.use('*', async function catalog(c, next) {
    const m = /^\/v[12]\/models\/([^/]+)(?:\/versions\/([^/]+))?/.exec(c.req.path);
    const decode = (x: string | undefined) => {
      try {
        return x === undefined ? undefined : decodeURIComponent(x);
      } catch {
        return x;
      }
    };
    if (c.env) await edge.fresh(c.env, backgroundOf(c), decode(m?.[1]), decode(m?.[2]));
    await next();
  });

  // Which methods a path is served for: Hono's own matcher over the routes (middleware left out),
  // built at the first miss, when every route is registered.
  let methodsRouter: TrieRouter<string> | undefined;
  const allowedMethods = (path: string): string[] => {
    if (!methodsRouter) {
      methodsRouter = new TrieRouter<string>();
      for (const r of app.routes) if (r.method !== 'ALL') methodsRouter.add(r.method, r.path, r.method);
    }
    const served = new Set<string>();
    for (const m of METHODS) if (methodsRouter.match(m, path)[0].length > 0) served.add(m);
    if (served.size === 0) return [];
    if (served.has('GET')) served.add('HEAD');
    served.add('OPTIONS');
    return METHODS.filter((m) => served.has(m));
  };
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length === 0) return errorJson(c, 404, 'not_found', `no route for ${c.req.path}`);
    c.header('Allow', allow.join(', '));
    if (c.req.method === 'OPTIONS') return c.body(null, 204);
    return errorJson(c, 405, 'method_not_allowed', `${c.req.path} answers ${allow.join(', ')}, not ${c.req.method}`, { field: 'method' });
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.route('/', oip);
  app.route('/', predict);
  app.route('/', browserRoutes());
  app.route('/', routing);
  app.route('/', rollouts);
  app.route('/', outcomes);
  app.route('/', drift);
  app.route('/', versions);
  app.route('/', stats);
  app.route('/', registry);
  app.route('/', models);
  // The operator API's document, generated from the schemas the routes validate with (http/openapi.ts).
  app.openAPIRegistry.registerComponent('securitySchemes', 'operator', { type: 'http', scheme: 'bearer', description: 'OPERATOR_TOKEN' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'driftwatch-edge operator API',
      version: '0.1.0',
      description:
        'Drift, alerts, re-baselining, versions and routing of the models this worker serves. Inference speaks the Open Inference Protocol (KServe v2) under /v2.',
    },
  });
  return app;
}
