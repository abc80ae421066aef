// Rollouts (issue 14) on real Durable Object storage: the routes, and the RoutingStore's alarm
// judging each stage on what the model's real DriftAggregator holds. The summaries are built here
// so that each test controls the evidence exactly; test/node/rollout-replay.test.ts runs the same
// through wrangler dev with real traffic.
import { env, runDurableObjectAlarm } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createProfile, encodeSummary, TDigest } from '../../core/index.ts';
import { DEFAULT_VERSIONS, DEFAULTS } from '../../models/defaults.ts';
import { jsonClient } from '../../test/support/app-client.ts';
import { isolatedBucket, isolatedNamespace } from '../../test/support/namespaces.ts';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';

const OP = { authorization: 'Bearer op-secret' };
const ALICE = { authorization: 'Bearer alice-secret' };
const MIN = 60_000;
const flight = DEFAULTS['flight-delay'];
const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function setup() {
  const tag = crypto.randomUUID();
  const bindings: Env = {
    ...(env as Env),
    MODELS: isolatedBucket((env as Env).MODELS!, tag),
    ROUTING: isolatedNamespace((env as Env).ROUTING!, tag),
    AGGREGATOR: isolatedNamespace((env as Env).AGGREGATOR!, tag),
    OPERATOR_TOKEN: 'op-secret',
    OPERATOR_TOKENS: 'alice:alice-secret',
  };
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const call = jsonClient(app, bindings, { strict: true });
  const store = bindings.ROUTING!.get(bindings.ROUTING!.idFromName('flight-delay'));
  const agg = bindings.AGGREGATOR!.get(bindings.AGGREGATOR!.idFromName('flight-delay'));
  let seq = 0;
  /** One minute of a version's rows at `start`: `errors` of them failed, scores from `score`. */
  const minute = async (version: string, start: number, rows: number, { errors = 0, score = (i: number) => (i % 97) / 97 } = {}) => {
    const p = createProfile({
      model: 'flight-delay',
      modelVersion: version,
      source: { kind: 'edge', id: 'test' },
      sequence: ++seq,
      windowStart: start,
      windowEnd: start + MIN,
    });
    const out = new TDigest();
    for (let i = 0; i < rows; i++) {
      out.add(score(i));
      p.latency.add(8 + (i % 5));
    }
    p.outputs.set('p_delay', out);
    p.counters.rows = rows;
    p.counters.errors = errors;
    expect((await agg.ingest('flight-delay', encodeSummary(p))).status).toBe('stored');
  };
  const push = async (version: string) => {
    const f = new FormData();
    const files: Record<string, Uint8Array> = {
      'model.onnx': new Uint8Array(flight.artifact),
      'manifest.json': utf8({ ...flight.manifest, version }),
      'baseline.dwsm': new Uint8Array(flight.baseline),
      'golden.json': utf8(flight.golden),
    };
    for (const [name, bytes] of Object.entries(files)) f.append(name, new File([bytes as Uint8Array<ArrayBuffer>], name));
    const res = await app.request(`/v1/models/flight-delay/versions/${version}`, { method: 'PUT', body: f, headers: OP }, bindings);
    expect(res.status).toBe(201);
  };
  const tick = () => runDurableObjectAlarm(store);
  const table = async () => (await call('GET', '/v1/models/flight-delay/routing', undefined, OP)).json.table;
  const history = async () => (await call('GET', '/v1/models/flight-delay/history', undefined, OP)).json.entries as any[];
  return { call, push, minute, tick, table, history, agg };
}

const T0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;
const twoSteps = {
  shadow: null,
  steps: [
    { share: 0.2, min_rows: 100, min_duration: 'PT2M' },
    { share: 0.6, min_rows: 100, min_duration: 'PT2M' },
  ],
};

describe('rollouts', () => {
  it('refuses what it cannot run, naming the field', async () => {
    const { call, push } = setup();
    await push('2');
    const post = (b: unknown, h: Record<string, string> = OP) => call('POST', '/v1/models/flight-delay/rollouts', b, h);
    expect((await post({ version: '2' }, {})).status).toBe(401);
    const cases: [unknown, number, string][] = [
      [{ version: '9' }, 422, 'version'],
      [{ version: '__proto__' }, 422, 'version'],
      [{ version: '2', plan: { steps: [{ share: 0.5 }, { share: 0.1 }] } }, 400, 'steps[1].share'],
      [{ version: '2', plan: { steps: [{ share: 0.5, min_duration: '5 minutes' }] } }, 400, 'steps[0].min_duration'],
      [{ version: '2', planz: {} }, 400, 'planz'],
      [[1], 400, 'body'],
      [{ version: '1' }, 422, 'rollout'],
    ];
    for (const [b, status, field] of cases) {
      const r = await post(b);
      expect(r.status, JSON.stringify(b)).toBe(status);
      expect(r.json.error.field, JSON.stringify(b)).toBe(field);
    }
    expect((await call('GET', '/v1/models/flight-delay/rollouts/abc', undefined, OP)).status).toBe(404);
    expect((await call('POST', '/v1/models/flight-delay/rollouts/1/explode', undefined, OP)).status).toBe(404);
  });

  it('walks a candidate like stable through its steps to all the traffic on the data clock, one history entry per step', async () => {
    const { call, push, minute, tick, table, history, agg } = setup();
    await push('2');
    await minute('1', T0, 300);
    const started = await call('POST', '/v1/models/flight-delay/rollouts', { version: '2', plan: twoSteps }, { ...ALICE, 'x-change-reason': 'retrained' });
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({
      id: 1,
      version: '2',
      stable: '1',
      status: 'running',
      stage: { index: 0, kind: 'canary', share: 0.2 },
      started_by: 'alice',
    });
    expect(await table()).toEqual({ stable: '1', canary: { version: '2', share: 0.2 } });
    expect((await call('POST', '/v1/models/flight-delay/rollouts', { version: '2' }, OP)).status).toBe(409);

    expect(await tick()).toBe(true); // the stage's evidence starts at the data clock's next minute
    const from = Date.parse((await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json.stage_from);
    expect(from).toBe(T0 + 2 * MIN);
    await minute('1', from, 400);
    await minute('2', from, 100);
    await tick();
    let r = (await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json;
    expect(r.stage.index).toBe(0); // rows enough, one minute of two: waits
    expect(r.analysis.verdict).toBe('wait');
    expect(r.analysis.checks.find((c: any) => c.name === 'duration').status).toBe('wait');
    await minute('1', from + MIN, 400);
    await minute('2', from + MIN, 100);
    await tick();
    r = (await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json;
    expect(r.stage).toEqual({ index: 1, kind: 'canary', share: 0.6 });
    expect(await table()).toEqual({ stable: '1', canary: { version: '2', share: 0.6 } });
    // The next step counts only its own minutes.
    await tick();
    expect((await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json.analysis.rows.candidate).toBe(0);
    for (const m of [3, 4]) {
      await minute('1', from + m * MIN, 200);
      await minute('2', from + m * MIN, 300);
    }
    await tick();
    r = (await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json;
    expect(r.status).toBe('promoted');
    expect(await table()).toEqual({ stable: '2' });
    const h = await history();
    expect(h.slice(0, 3).map((e) => [e.action, e.who, e.stage])).toEqual([
      ['promote', 'rollout', 2],
      ['step', 'rollout', 1],
      ['rollout', 'alice', 0],
    ]);
    expect(h[0].evidence.verdict).toBe('pass');
    expect(h[0].why).toContain('step 2 of 2 at 60% passed');
    expect(h[2].why).toBe('retrained');
    // Promotion made version 2's baseline the reference for drift.
    await tick();
    expect((await agg.baseline('flight-delay')).training).toBe(true);
    expect(await agg.promote('2')).toEqual({ changed: false });
  });

  it('rolls back at once at the first failing check, with the evidence in the history', async () => {
    const { call, push, minute, tick, table, history } = setup();
    await push('2');
    await minute('1', T0, 300);
    await call('POST', '/v1/models/flight-delay/rollouts', { version: '2', plan: twoSteps }, OP);
    await tick();
    await minute('1', T0 + 2 * MIN, 400, { errors: 1 });
    await minute('2', T0 + 2 * MIN, 120, { errors: 30 });
    await tick(); // one minute of two, but failing beyond noise does not wait
    const r = (await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json;
    expect(r.status).toBe('rolled_back');
    expect(r.reason).toMatch(/^step 1 of 2 at 20% failed: error_rate \(25\.00% against stable's 0\.25%/);
    expect(await table()).toEqual({ stable: '1' });
    const [last] = await history();
    expect(last).toMatchObject({ action: 'rollback', who: 'rollout', from: { stable: '1', canary: { version: '2', share: 0.2 } }, to: { stable: '1' } });
    expect(last.evidence.checks.find((c: any) => c.name === 'error_rate').status).toBe('fail');
    // Ended: no more ticks change anything, and a new rollout may start.
    expect(await tick()).toBe(false);
    expect((await call('POST', '/v1/models/flight-delay/rollouts/1/resume', undefined, OP)).status).toBe(409);
    expect((await call('POST', '/v1/models/flight-delay/rollouts', { version: '2', plan: twoSteps }, OP)).status).toBe(201);
  });

  it("a person's pause, edit and abort win over the plan", async () => {
    const { call, push, minute, tick, table, history } = setup();
    await push('2');
    await minute('1', T0, 300);
    await call('POST', '/v1/models/flight-delay/rollouts', { version: '2', plan: twoSteps }, OP);
    await tick();
    expect((await call('POST', '/v1/models/flight-delay/rollouts/1/pause', undefined, { ...ALICE, 'x-change-reason': 'looking' })).json.status).toBe('paused');
    for (const m of [1, 2, 3]) {
      await minute('1', T0 + m * MIN, 400);
      await minute('2', T0 + m * MIN, 150);
    }
    await tick(); // paused: nothing is judged, and the alarm is not armed again
    expect(await tick()).toBe(false);
    expect((await call('GET', '/v1/models/flight-delay/rollouts', undefined, OP)).json.active).toMatchObject({ id: 1, status: 'paused', stage: { index: 0 } });
    expect((await call('POST', '/v1/models/flight-delay/rollouts/1/resume', undefined, OP)).json.status).toBe('running');
    // A person's table edit pauses it too.
    expect((await call('PUT', '/v1/models/flight-delay/routing', { stable: '1' }, ALICE)).status).toBe(200);
    const paused = (await call('GET', '/v1/models/flight-delay/rollouts/1', undefined, OP)).json;
    expect(paused).toMatchObject({ status: 'paused', reason: 'the routing table was replaced by alice' });
    // Out of the table, the candidate is still the paused rollout's: it cannot be deleted under it.
    const del = await call('DELETE', '/v1/models/flight-delay/versions/2', undefined, OP);
    expect(del.status).toBe(409);
    expect(del.json.error.message).toContain('rollout 1 (paused)');
    expect((await call('POST', '/v1/models/flight-delay/rollouts/1/abort', undefined, OP)).json.status).toBe('aborted');
    expect(await table()).toEqual({ stable: '1' });
    expect((await history()).slice(0, 5).map((e) => `${e.action}:${e.who}`)).toEqual([
      'abort:operator',
      'route:alice',
      'resume:operator',
      'pause:alice',
      'rollout:operator',
    ]);
  });

  it('takes hostile bodies without a 5xx, and a refused one changes nothing', async () => {
    const { call, push, history } = setup();
    await push('2');
    const before = (await history()).length;
    const plan = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.record(
        {
          shadow: fc.oneof(
            fc.constant(null),
            fc.jsonValue({ maxDepth: 2 }),
            fc.record({ sample_rate: fc.double(), min_rows: fc.integer(), min_duration: fc.string() }),
          ),
          steps: fc.oneof(
            fc.jsonValue({ maxDepth: 2 }),
            fc.array(fc.record({ share: fc.double(), min_rows: fc.oneof(fc.integer(), fc.double()) }), { maxLength: 25 }),
          ),
          thresholds: fc.dictionary(fc.constantFrom('error_rate', '__proto__', 'constructor', 'latency_ms', 'x'), fc.jsonValue({ maxDepth: 1 })),
        },
        { requiredKeys: [] },
      ),
    );
    const bodies = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.record({ version: fc.constantFrom('1', '9', '__proto__', 'constructor', '', '../2'), plan }, { requiredKeys: [] }),
    );
    let started = 0;
    await fc.assert(
      fc.asyncProperty(bodies, plan, async (b, p) => {
        const r = await call('POST', '/v1/models/flight-delay/rollouts', JSON.stringify(b), OP);
        expect(r.status, JSON.stringify(b)).toBeLessThan(500);
        if (r.status === 201) {
          started++;
          expect((await call('POST', `/v1/models/flight-delay/rollouts/${r.json.id}/abort`, undefined, OP)).status).toBe(200);
        } else expect(typeof r.json.error.field, JSON.stringify(r.json)).toBe('string');
        const q = await call('PUT', '/v1/models/flight-delay/rollout-plan', JSON.stringify(p), OP);
        expect(q.status, JSON.stringify(p)).toBeLessThan(500);
        if (q.status !== 200) expect(typeof q.json.error.field).toBe('string');
      }),
      { numRuns: 60 },
    );
    // Only a rollout that started (and its abort) went into the history.
    expect((await history()).length).toBe(before + 2 * started);
    const huge = await call('POST', '/v1/models/flight-delay/rollouts', JSON.stringify({ version: '2', plan: { steps: [], pad: 'x'.repeat(300_000) } }), OP);
    expect(huge.status).toBe(413);
  });

  it("keeps the model's own plan, which a rollout without one follows", async () => {
    const { call, push } = setup();
    await push('2');
    const shown = await call('GET', '/v1/models/flight-delay/rollout-plan', undefined, OP);
    expect(shown.json).toMatchObject({ default: true, plan: { shadow: { sample_rate: 0.1, min_rows: 200, min_duration: 'PT10M' } } });
    expect((await call('PUT', '/v1/models/flight-delay/rollout-plan', { steps: [{ share: 0.3 }], thresholds: { error_rate: 2 } }, OP)).json.error.field).toBe(
      'thresholds.error_rate',
    );
    const put = await call('PUT', '/v1/models/flight-delay/rollout-plan', { shadow: null, steps: [{ share: 0.3 }], thresholds: { error_rate: 0.02 } }, OP);
    expect(put.status).toBe(200);
    expect(put.json.plan).toMatchObject({ shadow: null, steps: [{ share: 0.3, min_rows: 200 }], thresholds: { error_rate: 0.02, shadow_agreement: 0.9 } });
    const r = await call('POST', '/v1/models/flight-delay/rollouts', { version: '2' }, OP);
    expect(r.json.stage).toEqual({ index: 0, kind: 'canary', share: 0.3 });
    expect(r.json.plan.thresholds.error_rate).toBe(0.02);
  });

  it("promotes on a person's word, and rolls back to the last version that had all the traffic", async () => {
    const { call, push, tick, table } = setup();
    await push('2');
    await call('POST', '/v1/models/flight-delay/rollouts', { version: '2' }, OP);
    expect((await call('POST', '/v1/models/flight-delay/rollouts/1/promote', undefined, OP)).json).toMatchObject({
      status: 'promoted',
      stage: { kind: 'promoted' },
    });
    expect(await table()).toEqual({ stable: '2' });
    await tick();
    const back = await call('POST', '/v1/models/flight-delay/rollback', undefined, { ...ALICE, 'x-change-reason': 'complaints' });
    expect(back.status).toBe(200);
    expect(back.json.table).toEqual({ stable: '1' });
    const none = await call('POST', '/v1/models/flight-delay/rollback', undefined, OP);
    expect(none.status).toBe(409);
    expect(none.json.error.code).toBe('no_previous_stable');
  });
});
