// The operator API's OpenAPI document (GET /openapi.json) is generated from the same schemas the
// routes validate with: every operator route is in it with its parameters and bodies, and what
// the schemas refuse is a 400 naming the field, in the API's error body.
import { env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isolatedNamespace } from '../../test/support/namespaces.ts';
import { jsonClient } from '../../test/support/app-client.ts';
import type { DriftAggregator } from '../aggregator.ts';
import { createApp } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';

const TOKEN = 'openapi-operator';
const bindings = {
  OPERATOR_TOKEN: TOKEN,
  AGGREGATOR: isolatedNamespace((env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR, 'openapi'),
};
const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
const call = jsonClient(app, bindings, { strict: true });
const auth = { authorization: `Bearer ${TOKEN}` };

describe('GET /openapi.json', () => {
  it('describes every operator route with its parameters, bodies and the bearer scheme', async () => {
    const { status, json: doc } = await call('GET', '/openapi.json');
    expect(status).toBe(200);
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(ops.sort()).toEqual(
      [
        'GET /v1/models/{name}/alerts',
        'GET /v1/models/{name}/drift',
        'GET /v1/models/{name}/history',
        'GET /v1/models/{name}/routing',
        'GET /v1/models/{name}/stats',
        'GET /v1/models/{name}/versions',
        'POST /v1/models/{name}/baseline',
        'PUT /v1/models/{name}/routing',
        'PUT /v1/models/{name}/versions/{version}',
        'DELETE /v1/models/{name}/versions/{version}',
        'POST /v1/models/{name}/rollouts',
        'GET /v1/models/{name}/rollouts',
        'GET /v1/models/{name}/rollouts/{id}',
        'POST /v1/models/{name}/rollouts/{id}/pause',
        'POST /v1/models/{name}/rollouts/{id}/resume',
        'POST /v1/models/{name}/rollouts/{id}/abort',
        'POST /v1/models/{name}/rollouts/{id}/promote',
        'POST /v1/models/{name}/rollback',
        'GET /v1/models/{name}/rollout-plan',
        'PUT /v1/models/{name}/rollout-plan',
        'POST /v1/models/{name}/feedback',
        'POST /v1/models/{name}/performance/reference',
        'GET /v1/models/{name}/performance',
      ].sort(),
    );
    const drift = doc.paths['/v1/models/{name}/drift'].get;
    expect(drift.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort()).toEqual(
      ['path:name', 'query:from', 'query:to', 'query:step', 'query:version', 'query:reference'].sort(),
    );
    const reference = drift.parameters.find((p: { name: string }) => p.name === 'reference');
    expect(reference.schema.enum).toEqual(['baseline', 'previous_day', 'previous_week', 'previous_window']);
    expect(drift.security).toEqual([{ operator: [] }]);
    expect(Object.keys(drift.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '404']));
    expect(doc.paths['/v1/models/{name}/baseline'].post.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/BaselineWindow',
    });
    expect(doc.paths['/v1/models/{name}/routing'].put.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/RoutingTable' });
    expect(doc.components.schemas.RoutingTable.required).toEqual(['stable']);
    const pushBody = doc.paths['/v1/models/{name}/versions/{version}'].put.requestBody.content['multipart/form-data'].schema;
    expect(pushBody.required).toEqual(['model.onnx', 'manifest.json', 'baseline.dwsm', 'golden.json']);
    expect(doc.components.securitySchemes.operator).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
  });
});

describe('the schemas validate what they document', () => {
  it('refuses a bad query or body with 400 naming the field, after the operator check', async () => {
    // Without the token the schema is never reached.
    expect((await call('GET', '/v1/models/flight-delay/drift?reference=nope')).status).toBe(401);
    const bad: [string, string, unknown, string, RegExp][] = [
      ['GET', '/v1/models/flight-delay/drift?reference=nope', undefined, 'reference', /reference must be one of baseline, previous_day/],
      ['GET', '/v1/models/flight-delay/drift?from=yesterday', undefined, 'from', /from must be ms since the epoch or an ISO date/],
      ['GET', '/v1/models/flight-delay/drift?step=1m', undefined, 'step', /step must be a whole number of ms/],
      ['GET', '/v1/models/flight-delay/versions?to=-5', undefined, 'to', /to must be ms since the epoch/],
      ['POST', '/v1/models/flight-delay/baseline', [1, 2], 'body', /the body must be \{"from": \.\.\., "to": \.\.\.\}/],
      ['POST', '/v1/models/flight-delay/baseline', { from: true, to: 5 }, 'from', /from must be ms since the epoch/],
      ['POST', '/v1/models/flight-delay/baseline', { from: 0 }, 'to', /to must be ms since the epoch/],
      ['POST', '/v1/models/flight-delay/baseline', { __proto__: { from: 0, to: 1 } }, 'from', /from must be/],
    ];
    for (const [method, path, body, field, message] of bad) {
      const res = await call(method, path, body, auth);
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(res.json.error.field, `${method} ${path}`).toBe(field);
      expect(res.json.error.message, `${method} ${path}`).toMatch(message);
    }
  });

  it('passes what they accept on to the route', async () => {
    const res = await call(
      'GET',
      `/v1/models/flight-delay/drift?from=${Date.UTC(2026, 0, 1)}&to=2026-01-01T00:10:00Z&step=300000&reference=previous_window`,
      undefined,
      auth,
    );
    expect(res.status).toBe(200);
    expect(res.json.reference).toBe('previous_window');
    expect(res.json.windows).toHaveLength(2);
  });

  it('hostile queries and bodies (property): always 200 or a 4xx JSON error naming a field, never a 5xx', async () => {
    const HOUR = 3_600_000;
    const T0 = Date.UTC(2026, 0, 1);
    const timeLike = fc.oneof(
      fc.integer({ min: 0, max: 48 }).map((h) => String(T0 + h * HOUR)),
      fc.integer({ min: 0, max: 48 }).map((h) => new Date(T0 + h * HOUR).toISOString()),
      fc.constantFrom(
        '',
        '-5',
        '1e3',
        '0x10',
        'NaN',
        'Infinity',
        '99999999999999999999',
        '2026-13-45',
        '2026-01-01T25:00:00Z',
        '__proto__',
        'constructor',
        '\u0000',
      ),
      fc.string({ maxLength: 30 }),
    );
    const q = fc.record(
      {
        from: timeLike,
        to: timeLike,
        step: fc.oneof(fc.constantFrom('60000', '300000', '3600000', '0', '-1', '1.5', '1m', ''), fc.string({ maxLength: 12 })),
        reference: fc.oneof(
          fc.constantFrom('baseline', 'previous_day', 'previous_week', 'previous_window', '__proto__', 'toString', ''),
          fc.string({ maxLength: 12 }),
        ),
        version: fc.oneof(fc.constantFrom('1', '1-float32', '__proto__', 'constructor'), fc.string({ maxLength: 12 })),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(q, fc.constantFrom('drift', 'versions'), async (query, route) => {
        const res = await call('GET', `/v1/models/flight-delay/${route}?${new URLSearchParams(query as Record<string, string>)}`, undefined, auth);
        expect([200, 400], JSON.stringify({ route, query, body: res.json })).toContain(res.status);
        if (res.status === 400) expect(typeof res.json.error.field).toBe('string');
      }),
      { numRuns: 60 },
    );
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ from: fc.oneof(fc.jsonValue(), timeLike), to: fc.oneof(fc.jsonValue(), timeLike) }, { requiredKeys: [] }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await call('POST', '/v1/models/flight-delay/baseline', b, auth);
        // 422: a valid window with too few rows to be a baseline (nothing was sent to this aggregator).
        expect([400, 422], JSON.stringify({ b, body: res.json })).toContain(res.status);
        expect(typeof res.json.error.code).toBe('string');
      }),
      { numRuns: 60 },
    );
  });
});
