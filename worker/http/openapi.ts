/**
 * The operator routes' inputs as schemas (zod, through @hono/zod-openapi): each one validates the
 * request in its handler (`input(schema, value)`, a 400 naming the field on failure, the same
 * error body as everywhere) and describes the route in the OpenAPI document served at
 * `/openapi.json` (`document(app, route)`). The inference path keeps core's validator, which is
 * faster and platform-free; so do routing tables (core/routing.ts validateRoutingTable, which
 * also checks the deployed versions), whose schema here documents them.
 */
import { createRoute, OpenAPIHono, z, type RouteConfig } from '@hono/zod-openapi';
import { ValidationError } from '../../core/index.ts';
import type { AppEnv } from './context.ts';
import { instant, timeMessage } from './request.ts';

export { z };

/** A sub-app whose routes are described in the OpenAPI document (merged by the app's `route()`). */
export const documentedApp = () => new OpenAPIHono<AppEnv>();

/** Adds a route's description to its sub-app's part of the OpenAPI document. */
export function document(app: OpenAPIHono<AppEnv>, route: RouteConfig): void {
  app.openAPIRegistry.registerPath(createRoute(route));
}

/** `value` checked against `schema`: its output, or a ValidationError (400) with the first issue's message and field. */
export function input<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue.path.length ? issue.path.map(String).join('.') : where;
  throw new ValidationError(issue.message, field);
}

/** A time in a query or body: ms since the epoch (digits, or a number in a body) or an ISO date. */
const valid = (v: unknown) => !Number.isNaN(instant(v));
const TIME_DOC = { description: 'ms since the epoch, or an ISO 8601 date', example: '2026-12-01T00:00:00Z' };
const queryTime = (field: string) =>
  z
    .string()
    .refine(valid, { error: (iss) => timeMessage(field, iss.input) })
    .openapi(TIME_DOC);
const bodyTime = (field: string) =>
  z
    .union([z.number(), z.string()], { error: (iss) => timeMessage(field, iss.input) })
    .refine(valid, { error: (iss) => timeMessage(field, iss.input) })
    .openapi(TIME_DOC);

export const ModelParams = z.object({
  name: z.string().openapi({ param: { name: 'name', in: 'path' }, description: 'a served model', example: 'my-model' }),
});

export const RangeQuery = z.object({
  from: queryTime('from').optional().openapi({ description: 'start (inclusive); default: a day before `to`' }),
  to: queryTime('to').optional().openapi({ description: 'end (exclusive); default: a minute from now' }),
});

export const REFERENCES = ['baseline', 'previous_day', 'previous_week', 'previous_window'] as const;

/** A range cut into windows: `step` and one version (drift, performance). */
export const WindowedQuery = RangeQuery.extend({
  step: z
    .string()
    .regex(/^\d+$/, { error: (iss) => `step must be a whole number of ms; got ${JSON.stringify(String(iss.input).slice(0, 64))}` })
    .optional()
    .openapi({ description: 'window length, ms (at least 60000, at most 500 windows); default: the whole range' }),
  version: z.string().optional().openapi({ description: 'one version only; default: all' }),
});

export const DriftQuery = WindowedQuery.extend({
  reference: z
    .enum(REFERENCES, {
      error: (iss) => `reference must be one of ${REFERENCES.join(', ')}; got ${JSON.stringify(String(iss.input).slice(0, 64))}`,
    })
    .optional()
    .openapi({ description: 'what each window is judged against; default: the baseline in force' }),
});

export const BaselineBody = z
  .object({ from: bodyTime('from'), to: bodyTime('to') }, { error: 'the body must be {"from": ..., "to": ...}' })
  .openapi('BaselineWindow', { description: 'the window of live traffic that becomes the baseline' });

export const RoutingTableSchema = z
  .strictObject({
    stable: z.string().openapi({ description: 'the version that serves everyone else' }),
    canary: z
      .strictObject({ version: z.string(), share: z.number().min(0).max(1).openapi({ description: 'share of callers (sticky by x-user-key)' }) })
      .nullable()
      .optional(),
    shadows: z
      .array(z.strictObject({ version: z.string(), sampleRate: z.number().min(0).max(1) }))
      .max(4)
      .optional()
      .openapi({ description: 'versions run on a sample of served requests after the answer, compared, never returned' }),
  })
  .openapi('RoutingTable');

/** The JSON error body of the operator routes (core/contracts.ts ErrorBodyV1). */
export const ErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }) })
  .openapi('Error', { description: 'what was wrong, and which field' });

const json = (schema: z.ZodType, description: string) => ({ content: { 'application/json': { schema } }, description });

/** The answers every operator route may give besides its own. */
export const operatorErrors = {
  400: json(ErrorSchema, 'a query or body that is not valid (the field is named)'),
  401: json(ErrorSchema, 'the operator bearer token is missing or wrong'),
  404: json(ErrorSchema, 'unknown model, operator routes disabled, or the store this route reads is not bound'),
} as const;

/** An answer of `description`, JSON of any shape (the worker checks its answers against core/contracts.ts). */
export const answer = (description: string) => json(z.looseObject({}), description);

export const bearer = [{ operator: [] as string[] }];
