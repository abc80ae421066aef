// A model's history (the first part of issue 14): every routing table replaced and every version
// pushed or deleted, recorded in the model's RoutingStore (real Durable Object storage) with who
// (the operator token's name), when, from what to what, and why; and the named operator tokens
// behind "who".
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VERSIONS, DEFAULTS } from '../../models/defaults.ts';
import { isolatedBucket, isolatedNamespace } from '../../test/support/namespaces.ts';
import { createApp, type Env } from '../app.ts';
import { operatorTokens } from '../auth.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';

const ALICE = { authorization: 'Bearer alice-secret' };
const BOB = { authorization: 'Bearer bob-secret' };
const OPERATOR = { authorization: 'Bearer op-secret' };

function newApp() {
  const tag = crypto.randomUUID();
  const bindings: Env = {
    ...(env as Env),
    MODELS: isolatedBucket((env as Env).MODELS!, tag),
    ROUTING: isolatedNamespace((env as Env).ROUTING!, tag),
    AGGREGATOR: isolatedNamespace((env as Env).AGGREGATOR!, tag),
    OPERATOR_TOKEN: 'op-secret',
    OPERATOR_TOKENS: 'alice:alice-secret, bob:bob-secret',
  };
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const ctx = createExecutionContext();
  const request = async (method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}) => {
    const res = await app.request(path, { method, body, headers }, bindings, ctx);
    return { status: res.status, json: (await res.json()) as any };
  };
  return { request, settled: () => waitOnExecutionContext(ctx) };
}

const flight = DEFAULTS['flight-delay'];
const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
function version2(): FormData {
  const f = new FormData();
  const files: Record<string, Uint8Array> = {
    'model.onnx': new Uint8Array(flight.artifact),
    'manifest.json': utf8({ ...flight.manifest, version: '2' }),
    'baseline.dwsm': new Uint8Array(flight.baseline),
    'golden.json': utf8(flight.golden),
  };
  for (const [name, bytes] of Object.entries(files)) f.append(name, new File([bytes as Uint8Array<ArrayBuffer>], name));
  return f;
}

describe('a model history', () => {
  it('records who changed what serves, when, from what to what and why; newest first, paged', async () => {
    const app = newApp();
    const json = { 'content-type': 'application/json' };
    expect((await app.request('PUT', '/v1/models/flight-delay/versions/2', version2(), { ...BOB, 'x-change-reason': 'retrained on March' })).status).toBe(201);
    const canary = { stable: '1', canary: { version: '2', share: 0.05 } };
    expect(
      (await app.request('PUT', '/v1/models/flight-delay/routing', JSON.stringify(canary), { ...json, ...ALICE, 'x-change-reason': 'canary 5%' })).status,
    ).toBe(200);
    expect((await app.request('PUT', '/v1/models/flight-delay/routing', JSON.stringify({ stable: '2' }), { ...json, ...OPERATOR })).status).toBe(200);
    expect((await app.request('DELETE', '/v1/models/flight-delay/versions/1-float32', undefined, { ...ALICE, 'x-change-reason': 'unused' })).status).toBe(200);

    const h = await app.request('GET', '/v1/models/flight-delay/history', undefined, BOB);
    expect(h.status).toBe(200);
    const entries = h.json.entries as {
      seq: number;
      who: string;
      action: string;
      at: string;
      from?: unknown;
      to?: unknown;
      version?: string;
      why?: string;
      sha256?: string;
    }[];
    expect(entries.map((e) => [e.seq, e.who, e.action, e.version ?? null, e.why ?? null])).toEqual([
      [4, 'alice', 'delete', '1-float32', 'unused'],
      [3, 'operator', 'route', null, null],
      [2, 'alice', 'route', null, 'canary 5%'],
      [1, 'bob', 'push', '2', 'retrained on March'],
    ]);
    expect(entries[1]).toMatchObject({ from: canary, to: { stable: '2' } });
    expect(entries[2]).toMatchObject({ from: null, to: canary });
    expect(entries[3].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(entries[0].at)).toBeGreaterThanOrEqual(Date.parse(entries[3].at));
    const page = await app.request('GET', '/v1/models/flight-delay/history?limit=2&before=3', undefined, BOB);
    expect(page.json.entries.map((e: { seq: number }) => e.seq)).toEqual([2, 1]);
    await app.settled();
  });

  it('is for operators; bad queries and reasons are 400 naming the field, and change nothing', async () => {
    const app = newApp();
    expect((await app.request('GET', '/v1/models/flight-delay/history')).status).toBe(401);
    expect((await app.request('GET', '/v1/models/flight-delay/history', undefined, { authorization: 'Bearer alice' })).status).toBe(401);
    for (const [q, field] of [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=-5', 'limit'],
      ['before=0x10', 'before'],
    ]) {
      const res = await app.request('GET', `/v1/models/flight-delay/history?${q}`, undefined, ALICE);
      expect([res.status, res.json.error.field], q).toEqual([400, field]);
    }
    const bad = await app.request('PUT', '/v1/models/flight-delay/routing', JSON.stringify({ stable: '1' }), {
      'content-type': 'application/json',
      ...ALICE,
      'x-change-reason': 'a'.repeat(501),
    });
    expect([bad.status, bad.json.error.field]).toEqual([400, 'x-change-reason']);
    expect((await app.request('GET', '/v1/models/flight-delay/history', undefined, ALICE)).json.entries).toEqual([]);
    expect((await app.request('GET', '/v1/models/__proto__/history', undefined, ALICE)).status).toBe(404);
    await app.settled();
  });
});

describe('named operator tokens', () => {
  it('OPERATOR_TOKEN is "operator"; OPERATOR_TOKENS adds name:token pairs; malformed settings are errors naming the variable', () => {
    expect(operatorTokens({ OPERATOR_TOKEN: 't', OPERATOR_TOKENS: 'alice:a1, deploy-bot:b:2' })).toEqual([
      ['operator', 't'],
      ['alice', 'a1'],
      ['deploy-bot', 'b:2'],
    ]);
    expect(operatorTokens({})).toEqual([]);
    for (const bad of ['alice', ':x', 'al ice:x', 'alice:', 'a:1,a:2'])
      expect(() => operatorTokens({ OPERATOR_TOKENS: bad }), bad).toThrow(/configuration OPERATOR_TOKENS/);
    expect(() => operatorTokens({ OPERATOR_TOKEN: 't', OPERATOR_TOKENS: 'operator:x' })).toThrow(/names "operator" twice/);
  });
});
