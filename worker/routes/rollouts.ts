/**
 * Operators: rollouts, a pushed version walked from shadow through canary steps to all the
 * traffic by the model's RoutingStore (its alarm judges each stage on the aggregator's live
 * sketches; see worker/routing-store.ts and core/rollout.ts), and rollback. Every change lands in
 * the model's history and on the webhook.
 */
import {
  DEFAULT_PLAN,
  isRefusal,
  type RolloutRefusal,
  rolloutPlanToJSON,
  stageTable,
  validateRolloutPlan,
  ValidationError,
  type RolloutsAnswer,
  type RolloutView,
  type RoutingTable,
} from '../../core/index.ts';
import type { AppContext } from '../http/context.ts';
import { runtimeOf } from '../http/context.ts';
import { model, operatorAuth } from '../http/middleware.ts';
import { answer, bearer, document, documentedApp, ModelParams, operatorErrors, z } from '../http/openapi.ts';
import { body, changeReason, limit } from '../http/request.ts';
import type { Rollout } from '../routing-store.ts';
import { backgroundOf } from '../serving/background.ts';
import { compatible } from '../http/compatible.ts';

export const rollouts = documentedApp();

const RolloutParams = ModelParams.extend({ id: z.string().openapi({ description: 'the rollout id' }) });
const ACTIONS = ['pause', 'resume', 'abort', 'promote'] as const;

document(rollouts, {
  method: 'post',
  path: '/v1/models/{name}/rollouts',
  summary: 'Starts a rollout of a pushed version: shadow, canary steps, promotion, each judged on live sketches; rolled back at the first failing check',
  security: bearer,
  request: {
    params: ModelParams,
    body: {
      content: {
        'application/json': {
          schema: z.strictObject({
            version: z.string(),
            plan: z.looseObject({}).optional().openapi({ description: "shadow, steps and thresholds (see the README); the model's rollout plan when omitted" }),
          }),
        },
      },
      required: true,
    },
  },
  responses: { 201: answer('the rollout, at its first stage'), 409: answer('another rollout is running or paused'), ...operatorErrors },
});
document(rollouts, {
  method: 'get',
  path: '/v1/models/{name}/rollout-plan',
  summary: "The model's rollout plan: what a rollout started without a plan follows (the default plan until one is stored)",
  security: bearer,
  request: { params: ModelParams },
  responses: { 200: answer('the plan in its JSON form, and whether it is the default'), ...operatorErrors },
});
document(rollouts, {
  method: 'put',
  path: '/v1/models/{name}/rollout-plan',
  summary: "Stores the model's rollout plan: shadow, steps and thresholds (every part optional)",
  security: bearer,
  request: { params: ModelParams, body: { content: { 'application/json': { schema: z.looseObject({}) } }, required: true } },
  responses: { 200: answer('the plan stored, with the defaults filled in'), ...operatorErrors },
});
document(rollouts, {
  method: 'get',
  path: '/v1/models/{name}/rollouts',
  summary: "A model's rollouts, newest first, with the running one's stage and latest analysis",
  security: bearer,
  request: { params: ModelParams },
  responses: { 200: answer('the rollouts'), ...operatorErrors },
});
document(rollouts, {
  method: 'get',
  path: '/v1/models/{name}/rollouts/{id}',
  summary: 'One rollout',
  security: bearer,
  request: { params: RolloutParams },
  responses: { 200: answer('the rollout'), ...operatorErrors },
});
for (const action of ACTIONS)
  document(rollouts, {
    method: 'post',
    path: `/v1/models/{name}/rollouts/{id}/${action}`,
    summary: {
      pause: 'Pauses the plan (the table stays as it is)',
      resume: "Resumes the plan at its stage (the stage's evidence starts afresh)",
      abort: 'Aborts: back to the stable version the rollout began from',
      promote: 'Promotes the candidate now: all the traffic, its baseline the reference for drift',
    }[action],
    security: bearer,
    request: { params: RolloutParams },
    responses: { 200: answer('the rollout after the change'), 409: answer('the rollout has ended'), ...operatorErrors },
  });
document(rollouts, {
  method: 'post',
  path: '/v1/models/{name}/rollback',
  summary: 'Rolls back now: the running rollout to the stable it began from, else to the last version that had all the traffic',
  security: bearer,
  request: { params: ModelParams },
  responses: { 200: answer('the table now in force'), 409: answer('nothing to roll back to'), ...operatorErrors },
});

const storeOf = (c: AppContext) => {
  if (!c.env.ROUTING) throw new ValidationError('no routing store is bound (ROUTING)', 'ROUTING', 404, 'routing_unavailable');
  return c.env.ROUTING.get(c.env.ROUTING.idFromName(c.var.engine.manifest.name));
};

/** The rollout as the API shows it: the plan in its JSON form and the stage spelled out. */
function view(r: Rollout): RolloutView {
  const stage = r.plan.stages[r.stage];
  return {
    id: r.id,
    model: r.model,
    version: r.candidate,
    stable: r.base.stable,
    status: r.status,
    stage: stage ? { index: r.stage, kind: stage.kind, share: stage.share } : { index: r.stage, kind: 'promoted', share: 1 },
    stage_from: r.stageFrom === null ? null : new Date(r.stageFrom).toISOString(),
    started_at: r.startedAt,
    started_by: r.startedBy,
    updated_at: r.updatedAt,
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.analysis ? { analysis: r.analysis } : {}),
    plan: rolloutPlanToJSON(r.plan) as RolloutView['plan'],
  };
}

function refused(r: RolloutRefusal): never {
  throw new ValidationError(r.error, 'rollout', r.status, r.code);
}

/** This isolate serves `table` at once (others within 5 s). */
const apply = (c: AppContext, table: RoutingTable) => c.var.edge.remember(backgroundOf(c), runtimeOf(c), c.var.engine.manifest.name, table);

const rolloutId = (c: AppContext) => {
  const raw = c.req.param('id') ?? '';
  if (!/^[1-9]\d{0,8}$/.test(raw))
    throw new ValidationError(`rollout id must be a positive whole number, got ${JSON.stringify(raw.slice(0, 40))}`, 'id', 404, 'no_rollout');
  return Number(raw);
};

rollouts.post('/v1/models/:name/rollouts', operatorAuth(), model, limit, async (c) => {
  const e = c.var.engine;
  const raw = await body(c);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ValidationError('the body must be an object { version, plan? }', 'body');
  const b = raw as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (k !== 'version' && k !== 'plan') throw new ValidationError(`unknown field "${k.slice(0, 64)}" (known: version, plan)`, k.slice(0, 64));
  const versions = runtimeOf(c).versions.get(e.manifest.name)!;
  if (typeof b.version !== 'string' || !versions.has(b.version))
    throw new ValidationError(
      `version must be one of the pushed versions ${[...versions.keys()].map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(b.version)?.slice(0, 80)}`,
      'version',
      422,
      'unknown_version',
    );
  const store = storeOf(c);
  const plan = b.plan === undefined ? ((await store.plan()).plan ?? DEFAULT_PLAN) : validateRolloutPlan(b.plan);
  const current = (await store.getTable()).table ?? { stable: e.manifest.version };
  for (const stage of [...plan.stages, undefined]) compatible(c, stageTable(current, b.version, stage));
  const aggregator = c.env.AGGREGATOR?.idFromName(e.manifest.name).toString();
  const r = await store.startRollout({ model: e.manifest.name, aggregator, candidate: b.version, plan, current, who: c.var.operator, why: changeReason(c) });
  if (isRefusal(r)) refused(r);
  apply(c, stageTable(r.base, r.candidate, r.plan.stages[0]));
  return c.json(view(r), 201);
});

rollouts.get('/v1/models/:name/rollout-plan', operatorAuth(), model, async (c) => {
  const { plan, updatedAt } = await storeOf(c).plan();
  return c.json({ model: c.var.engine.manifest.name, plan: rolloutPlanToJSON(plan ?? DEFAULT_PLAN), default: plan === null, updated_at: updatedAt });
});

rollouts.put('/v1/models/:name/rollout-plan', operatorAuth(), model, limit, async (c) => {
  const raw = await body(c);
  if (raw === null) throw new ValidationError('the plan must be an object (shadow, steps, thresholds)', 'plan');
  const plan = validateRolloutPlan(raw);
  const { updatedAt } = await storeOf(c).setPlan(plan);
  return c.json({ model: c.var.engine.manifest.name, plan: rolloutPlanToJSON(plan), default: false, updated_at: updatedAt });
});

rollouts.get('/v1/models/:name/rollouts', operatorAuth(), model, async (c) => {
  const all = await storeOf(c).rollouts(50);
  const active = all.find((r) => r.status === 'running' || r.status === 'paused');
  return c.json({ model: c.var.engine.manifest.name, active: active ? view(active) : null, rollouts: all.map(view) } satisfies RolloutsAnswer);
});

rollouts.get('/v1/models/:name/rollouts/:id', operatorAuth(), model, async (c) => {
  const id = rolloutId(c);
  const r = await storeOf(c).rollout(id);
  if (!r) throw new ValidationError(`no rollout ${id} of ${c.var.engine.manifest.name}`, 'id', 404, 'no_rollout');
  return c.json(view(r));
});

rollouts.post('/v1/models/:name/rollouts/:id/:action', operatorAuth(), model, async (c) => {
  const action = c.req.param('action') as (typeof ACTIONS)[number];
  if (!ACTIONS.includes(action))
    throw new ValidationError(`unknown action ${JSON.stringify(action.slice(0, 40))} (one of ${ACTIONS.join(', ')})`, 'action', 404, 'not_found');
  const r = await storeOf(c).control(rolloutId(c), action, c.var.operator, changeReason(c));
  if (isRefusal(r)) refused(r);
  const table = (await storeOf(c).getTable()).table;
  if (table) apply(c, table);
  return c.json(view(r));
});

rollouts.post('/v1/models/:name/rollback', operatorAuth(), model, async (c) => {
  const e = c.var.engine;
  const r = await storeOf(c).rollback(e.manifest.name, c.var.operator, changeReason(c), { stable: e.manifest.version });
  if (isRefusal(r)) refused(r);
  apply(c, r.table);
  return c.json({ model: e.manifest.name, table: r.table, ...(r.rollout ? { rollout: r.rollout } : {}) });
});
