/**
 * Operators: each model's routing table (canary and shadow versions), read and replaced. The
 * table lives in the model's RoutingStore (a Durable Object); this isolate uses a new one at
 * once, others within 5 s.
 */
import { validateRoutingTable, ValidationError, type HistoryAnswer } from '../../core/index.ts';
import { compatible } from '../http/compatible.ts';
import { runtimeOf } from '../http/context.ts';
import { model, operatorAuth } from '../http/middleware.ts';
import { answer, bearer, document, documentedApp, ModelParams, operatorErrors, RoutingTableSchema, z } from '../http/openapi.ts';
import { body, changeReason, limit } from '../http/request.ts';
import { backgroundOf } from '../serving/background.ts';

export const routing = documentedApp();

document(routing, {
  method: 'get',
  path: '/v1/models/{name}/routing',
  summary: "A model's routing table (stable, canary, shadows) and its deployed versions",
  security: bearer,
  request: { params: ModelParams },
  responses: { 200: answer('the table in force (the default one when none is stored), when it was stored, and the versions'), ...operatorErrors },
});
document(routing, {
  method: 'get',
  path: '/v1/models/{name}/history',
  summary: "A model's history: every routing table replaced and every version pushed or deleted, with who, when, from what to what, and why",
  security: bearer,
  request: {
    params: ModelParams,
    query: z.object({
      limit: z.string().optional().openapi({ description: 'entries, 1-1000 (default 100)' }),
      before: z.string().optional().openapi({ description: 'only entries older than this seq (paging)' }),
    }),
  },
  responses: { 200: answer('the entries, newest first'), ...operatorErrors },
});
document(routing, {
  method: 'put',
  path: '/v1/models/{name}/routing',
  summary: "Replaces a model's routing table (validated against the deployed versions)",
  security: bearer,
  request: { params: ModelParams, body: { content: { 'application/json': { schema: RoutingTableSchema } }, required: true } },
  responses: { 200: answer('the table stored, and when'), 422: answer('a version that is not deployed'), ...operatorErrors },
});

routing.get('/v1/models/:name/routing', operatorAuth(), model, async (c) => {
  const e = c.var.engine;
  const versions = [...runtimeOf(c).versions.get(e.manifest.name)!.keys()];
  const stored = c.env.ROUTING ? await c.env.ROUTING.get(c.env.ROUTING.idFromName(e.manifest.name)).getTable() : { table: null, updatedAt: null };
  return c.json({
    model: e.manifest.name,
    versions,
    table: stored.table ?? { stable: e.manifest.version },
    updated_at: stored.updatedAt,
    default: stored.table === null,
  });
});
routing.put('/v1/models/:name/routing', operatorAuth(), model, limit, async (c) => {
  const e = c.var.engine;
  const versions = [...runtimeOf(c).versions.get(e.manifest.name)!.keys()];
  const table = validateRoutingTable(await body(c), versions);
  compatible(c, table);
  if (!c.env.ROUTING) throw new ValidationError('no routing store is bound (ROUTING)', 'ROUTING', 404, 'routing_unavailable');
  const { updatedAt } = await c.env.ROUTING.get(c.env.ROUTING.idFromName(e.manifest.name)).putTable(table, {
    who: c.var.operator,
    why: changeReason(c),
    model: e.manifest.name,
  });
  // This isolate uses it at once (and warms the versions it names); others within 5 s.
  c.var.edge.remember(backgroundOf(c), runtimeOf(c), e.manifest.name, table);
  return c.json({ model: e.manifest.name, table, updated_at: updatedAt });
});

routing.get('/v1/models/:name/history', operatorAuth(), model, async (c) => {
  const name = c.var.engine.manifest.name;
  const int = (field: string, v: string | undefined, lo: number, hi: number, fallback: number | undefined) => {
    if (v === undefined) return fallback;
    if (!/^\d{1,12}$/.test(v) || Number(v) < lo || Number(v) > hi)
      throw new ValidationError(`${field} must be a whole number in [${lo}, ${hi}]; got ${JSON.stringify(v.slice(0, 64))}`, field);
    return Number(v);
  };
  const limit = int('limit', c.req.query('limit'), 1, 1000, 100)!;
  const before = int('before', c.req.query('before'), 1, Number.MAX_SAFE_INTEGER, undefined);
  if (!c.env.ROUTING) throw new ValidationError('no routing store is bound (ROUTING)', 'ROUTING', 404, 'routing_unavailable');
  const entries = await c.env.ROUTING.get(c.env.ROUTING.idFromName(name)).history(limit, before);
  return c.json({ model: name, entries } satisfies HistoryAnswer);
});
