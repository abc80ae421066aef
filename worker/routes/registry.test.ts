// The model registry through its routes, in workerd: versions pushed as multipart into the real
// (emulated) R2 bucket, checked on onnxruntime-web, listed, served, deleted; bad pushes refused
// naming the file, with the registry as it was and the previous version still serving.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CategoricalSketch, decodeSummary, encodeSummary } from '../../core/index.ts';
import { DEFAULT_VERSIONS, DEFAULTS } from '../../models/defaults.ts';
import { isolatedBucket, isolatedNamespace } from '../../test/support/namespaces.ts';
import { createApp, type Env } from '../app.ts';
import { createWasmSession } from '../engine/ort-workerd.ts';
import { sha256Hex } from '../registry/registry.ts';

const TOKEN = 'test-operator-token';
const auth = { authorization: `Bearer ${TOKEN}` };

/** An app over a registry (and routing tables) of its own, seeded with the default models. */
function newApp(vars: Partial<Env> = {}) {
  const tag = crypto.randomUUID();
  const bucket = isolatedBucket((env as Env).MODELS!, tag);
  const bindings: Env = {
    ...(env as Env),
    MODELS: bucket,
    ROUTING: isolatedNamespace((env as Env).ROUTING!, tag),
    AGGREGATOR: isolatedNamespace((env as Env).AGGREGATOR!, tag),
    OPERATOR_TOKEN: TOKEN,
    CACHE_MAX_BYTES: '0',
    ...vars,
  };
  const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
  const ctx = createExecutionContext();
  const request = async (method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}) => {
    const res = await app.request(path, { method, body, headers }, bindings, ctx);
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${method} ${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, json, headers: res.headers };
  };
  return { app, bindings, bucket, request, settled: () => waitOnExecutionContext(ctx) };
}

const utf8 = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const flight = DEFAULTS['flight-delay'];

/** The flight-delay int8 build's files, as a version of a model named `name`. */
function flightFiles(name: string, version: string) {
  return {
    'model.onnx': new Uint8Array(flight.artifact),
    'manifest.json': utf8({ ...flight.manifest, name, version }),
    'baseline.dwsm': new Uint8Array(flight.baseline),
    'golden.json': utf8(flight.golden),
  } as Record<string, Uint8Array>;
}

function form(files: Record<string, Uint8Array | string>): FormData {
  const f = new FormData();
  for (const [name, bytes] of Object.entries(files)) f.append(name, typeof bytes === 'string' ? bytes : new File([bytes as Uint8Array<ArrayBuffer>], name));
  return f;
}

const push = (app: ReturnType<typeof newApp>, name: string, version: string, files: Record<string, Uint8Array | string>, headers = auth) =>
  app.request('PUT', `/v1/models/${name}/versions/${version}`, form(files), headers);

const instance = flight.golden.rows[0].features;
const predict = (app: ReturnType<typeof newApp>, name: string) =>
  app.request('POST', `/v1/models/${name}/predict`, JSON.stringify({ instances: [instance] }), {
    'content-type': 'application/json',
    'x-latency-budget-ms': '10000',
  });

/** What the registry lists for a model, oldest first: [version, sha256 of model.onnx]. */
async function listed(app: ReturnType<typeof newApp>, name: string): Promise<[string, string][]> {
  const res = await app.request('GET', '/v1/models');
  const m = res.json.models.find((x: { name: string }) => x.name === name);
  return (m?.versions ?? []).map((v: { version: string; sha256: string }) => [v.version, v.sha256]);
}
const versionsListed = async (app: ReturnType<typeof newApp>, name: string) => (await listed(app, name)).map(([v]) => v);

describe('pushing a version', () => {
  it('checks it on the edge engine, commits it, lists it and serves it as the first version of a new model', async () => {
    const app = newApp();
    const res = await push(app, 'flights-copy', '7', flightFiles('flights-copy', '7'));
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.created).toBe(true);
    expect(res.json.record.files['model.onnx'].sha256).toBe(await sha256Hex(flight.artifact));
    expect(res.json.checks.golden_rows).toBe(flight.golden.rows.length);
    expect(res.json.checks.agreement.p_delay.max_abs_diff).toBeLessThanOrEqual(flight.golden.tolerance.p_delay_abs);
    expect(res.json.serving).toMatch(/serves now/);
    expect(await listed(app, 'flights-copy')).toEqual([['7', await sha256Hex(flight.artifact)]]);

    // Served: the same answer as the model it copies, on the named route and the OIP ones.
    const copy = await predict(app, 'flights-copy');
    const original = await predict(app, 'flight-delay');
    expect(copy.status).toBe(200);
    expect(copy.headers.get('x-model-version')).toBe('7');
    const strip = (ps: { prediction_id: string }[]) => ps.map(({ prediction_id, ...p }) => p);
    expect(strip(copy.json.predictions)).toEqual(strip(original.json.predictions));
    const meta = await app.request('GET', '/v2/models/flights-copy/versions/7');
    expect(meta.status).toBe(200);
    expect(meta.json.inputs.map((i: { name: string }) => i.name)).toEqual(flight.manifest.inputs.map((i) => i.name));
    const card = await app.request('GET', '/v1/models/flights-copy/versions/7');
    expect(card.json.manifest.name).toBe('flights-copy');
    expect(card.json.pushed_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    // Its files, for operators (the hosted fallback pulls versions this way), by their sha256.
    const file = await app.app.request('/v1/models/flights-copy/versions/7/files/model.onnx', { headers: auth }, app.bindings);
    expect(file.status).toBe(200);
    expect(await sha256Hex(await file.arrayBuffer())).toBe(await sha256Hex(flight.artifact));
    expect(file.headers.get('x-sha256')).toBe(await sha256Hex(flight.artifact));
    expect((await app.request('GET', '/v1/models/flights-copy/versions/7/files/model.onnx')).status).toBe(401);
    const none = await app.request('GET', '/v1/models/flights-copy/versions/7/files/model.float32.onnx', undefined, auth);
    expect([none.status, none.json.error.code]).toEqual([404, 'file_not_found']);
    expect((await app.request('GET', '/v1/models/flights-copy/versions/7/files/__proto__', undefined, auth)).status).toBe(404);
    await app.settled();
  });

  it('is idempotent with the same bytes (200), refuses other bytes under the same version (409), and never changes what serves', async () => {
    const app = newApp();
    expect((await push(app, 'flight-delay', '2', flightFiles('flight-delay', '2'))).status).toBe(201);
    const again = await push(app, 'flight-delay', '2', flightFiles('flight-delay', '2'));
    expect(again.status).toBe(200);
    expect(again.json.created).toBe(false);
    const other = flightFiles('flight-delay', '2');
    other['model.onnx'] = new Uint8Array(flight.float32);
    const conflict = await push(app, 'flight-delay', '2', other);
    expect(conflict.status).toBe(409);
    expect(conflict.json.error.code).toBe('version_exists');
    expect(conflict.json.error.field).toBe('model.onnx');
    // A new version of a served model does not serve until the routing table names it.
    expect((await predict(app, 'flight-delay')).headers.get('x-model-version')).toBe('1');
    expect(await versionsListed(app, 'flight-delay')).toEqual(['1', '1-float32', '2']);
    await app.settled();
  });

  // Each bad push: the status, the file named, and the words of the reason.
  const bad: [string, (f: Record<string, Uint8Array>) => void, number, string, RegExp][] = [
    ['a truncated ONNX', (f) => (f['model.onnx'] = f['model.onnx'].slice(0, 5000)), 422, 'model.onnx', /does not load in onnxruntime-web/],
    [
      'a manifest that does not match the graph',
      (f) => {
        const m = JSON.parse(new TextDecoder().decode(f['manifest.json']));
        m.inputs[0].name = 'month_of_year';
        m.features[0].input = 'month_of_year';
        f['manifest.json'] = utf8(m);
      },
      422,
      'manifest.json',
      /"month_of_year", which the graph does not have|does not describe the graph's input/,
    ],
    [
      'a manifest whose dtype differs from the graph',
      (f) => {
        const m = JSON.parse(new TextDecoder().decode(f['manifest.json']));
        m.inputs[3].dtype = 'int64';
        f['manifest.json'] = utf8(m);
      },
      422,
      'manifest.json',
      /"distance" is int64; the graph has float32/,
    ],
    [
      'golden rows that do not reproduce',
      (f) => {
        const g = structuredClone(flight.golden);
        g.rows[3].expected.int8.p_delay = (g.rows[3].expected.int8.p_delay as number) + 0.05;
        f['golden.json'] = utf8(g);
      },
      422,
      'golden.json',
      /row 3 does not reproduce on the edge engine: "p_delay" differs by 0\.05/,
    ],
    [
      'a baseline for other features',
      (f) => (f['baseline.dwsm'] = new Uint8Array(DEFAULTS['movielens-topk'].baseline)),
      422,
      'baseline.dwsm',
      /has no profile of the manifest's feature "month"/,
    ],
    [
      'a baseline whose time slot sketches a feature as another kind',
      (f) => {
        const b = decodeSummary(new Uint8Array(DEFAULTS['flight-delay'].baseline));
        const slot = [...b.slots!.profiles.values()][10];
        slot.features.set('distance', new CategoricalSketch({ capacity: 4 }).add('far'));
        f['baseline.dwsm'] = encodeSummary(b);
      },
      422,
      'baseline.dwsm',
      /slot \d+ sketches "distance" as categorical, and the whole baseline as tdigest/,
    ],
    [
      'a calendar feature reading the event time by a prototype name',
      (f) => {
        const m = JSON.parse(new TextDecoder().decode(f['manifest.json']));
        m.features[2].eventTime = '__proto__';
        f['manifest.json'] = utf8(m);
      },
      422,
      'features[2].eventTime',
      /must be one of hour, weekday/,
    ],
    [
      'an hour feature that claims to be the weekday of the event time',
      (f) => {
        const m = JSON.parse(new TextDecoder().decode(f['manifest.json']));
        m.features[2].eventTime = 'weekday';
        f['manifest.json'] = utf8(m);
      },
      422,
      'features[2].eventTime',
      /"weekday" is a reading of the week: the feature's cycle must be "week"/,
    ],
    ['a baseline that is not a summary', (f) => (f['baseline.dwsm'] = utf8('not a summary')), 422, 'baseline.dwsm', /is not a summary/],
    ['a manifest that is not JSON', (f) => (f['manifest.json'] = utf8('{"name": ')), 422, 'manifest.json', /is not JSON/],
    ['a missing golden set', (f) => delete f['golden.json'], 400, 'golden.json', /is missing/],
    [
      'a manifest naming another model',
      (f) => (f['manifest.json'] = utf8({ ...flight.manifest, name: 'someone-else' })),
      422,
      'name',
      /must be the model's name "flight-delay"/,
    ],
  ];
  for (const [what, spoil, status, field, reason] of bad) {
    it(`refuses ${what}, naming ${field}; nothing is committed and version 1 still serves`, async () => {
      const app = newApp();
      const before = await listed(app, 'flight-delay');
      const files = flightFiles('flight-delay', '2');
      spoil(files);
      const res = await push(app, 'flight-delay', '2', files);
      expect(res.status, JSON.stringify(res.json)).toBe(status);
      expect(res.json.error.field).toBe(field);
      expect(res.json.error.message).toMatch(reason);
      expect(await listed(app, 'flight-delay')).toEqual(before);
      const served = await predict(app, 'flight-delay');
      expect(served.status).toBe(200);
      expect(served.headers.get('x-model-version')).toBe('1');
      await app.settled();
    });
  }

  it('refuses a push over MODEL_MAX_BYTES (413, counted as the bytes arrive), without the token (401), and bodies that are not a version', async () => {
    // Between a version's files (about 320 KB, the baseline with its time slots most of it) and the same with the float32 build beside them (about 380 KB).
    const app = newApp({ MODEL_MAX_BYTES: '350000' });
    const big = await push(app, 'flight-delay', '2', { ...flightFiles('flight-delay', '2'), 'model.float32.onnx': new Uint8Array(flight.float32) });
    expect(big.status).toBe(413);
    expect(big.json.error.message).toMatch(/MODEL_MAX_BYTES \(350000 bytes\)/);
    const noToken = await push(app, 'flight-delay', '2', flightFiles('flight-delay', '2'), {} as typeof auth);
    expect(noToken.status).toBe(401);
    const wrongToken = await push(app, 'flight-delay', '2', flightFiles('flight-delay', '2'), { authorization: 'Bearer nope' });
    expect(wrongToken.status).toBe(401);
    const json = await app.request('PUT', '/v1/models/flight-delay/versions/2', JSON.stringify({}), { ...auth, 'content-type': 'application/json' });
    expect(json.status).toBe(400);
    expect(json.json.error.field).toBe('content-type');
    const unknown = await push(app, 'flight-delay', '2', { ...flightFiles('flight-delay', '2'), 'evil.sh': utf8('rm -rf /') });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error.code).toBe('unknown_file');
    for (const [name, version, field] of [
      ['Flight', '2', 'name'],
      ['flight-delay', '.hidden', 'version'],
      ['__proto__', '2', 'name'],
      ['flight-delay', 'a'.repeat(65), 'version'],
    ]) {
      const res = await push(app, name, version, flightFiles(name, version));
      expect(res.status, `${name}/${version}`).toBe(400);
      expect(res.json.error.field).toBe(field);
    }
    expect(await versionsListed(app, 'flight-delay')).toEqual(['1', '1-float32']);
    await app.settled();
  });

  it('survives hostile multipart bodies: always a 4xx JSON error, never a 5xx, and nothing committed', async () => {
    const app = newApp();
    const names = fc.constantFrom('model.onnx', 'manifest.json', 'baseline.dwsm', 'golden.json', 'model.float32.onnx', '__proto__', 'constructor', '');
    await fc.assert(
      fc.asyncProperty(fc.dictionary(names, fc.uint8Array({ maxLength: 300 }), { maxKeys: 5 }), async (files) => {
        const res = await push(app, 'flight-delay', 'fuzz', files);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(typeof res.json.error.message).toBe('string');
      }),
      { numRuns: 40 },
    );
    expect(await versionsListed(app, 'flight-delay')).toEqual(['1', '1-float32']);
    await app.settled();
  });

  it('never serves bytes that changed under a commit record: the version fails to load and its requests take the fallback path', async () => {
    const app = newApp();
    expect((await push(app, 'flights-copy', '1', flightFiles('flights-copy', '1'))).status).toBe(201);
    await app.settled();
    // Someone overwrites the artifact in the bucket behind the registry's back.
    await app.bucket.put('flights-copy/1/model.onnx', new Uint8Array(flight.float32));
    const fresh = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
    const res = await fresh.request(
      '/v1/models/flights-copy/predict',
      { method: 'POST', body: JSON.stringify({ instances: [instance] }), headers: { 'content-type': 'application/json' } },
      app.bindings,
    );
    expect(res.status).toBe(503);
    expect((await res.json()) as object).toMatchObject({ error: { code: 'model_unavailable' } });
    const stats = await fresh.request('/v1/models/flights-copy/stats', { headers: auth }, app.bindings);
    expect(((await stats.json()) as { engine: { state: string; error: string } }).engine).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/flights-copy\/1\/model.onnx does not match its sha256/),
    });
  });
});

describe('ownership', () => {
  it("shows each model's owner and its age against its retrain cadence; a cadence that is not one is refused by name", async () => {
    const app = newApp();
    const files = flightFiles('owned', '1');
    const m = JSON.parse(new TextDecoder().decode(files['manifest.json']));
    m.ownership = { owner: 'ml-team@example.com', trained: ['2024-01-01', '2024-06-30'], retrain_every: 'P30D' };
    files['manifest.json'] = utf8(m);
    const bad = flightFiles('owned', '1');
    bad['manifest.json'] = utf8({ ...m, ownership: { retrain_every: 'monthly' } });
    const refused = await push(app, 'owned', '1', bad);
    expect([refused.status, refused.json.error.field]).toEqual([422, 'ownership.retrain_every']);
    expect((await push(app, 'owned', '1', files)).status).toBe(201);
    const card = await app.request('GET', '/v1/models/owned');
    expect(card.json.ownership).toMatchObject({
      version: '1',
      owner: 'ml-team@example.com',
      retrain_every: 'P30D',
      due_at: '2024-07-30T00:00:00.000Z',
      stale: true,
    });
    expect(card.json.ownership.age_days).toBeGreaterThan(100);
    const list = await app.request('GET', '/v1/models');
    expect(list.json.models.find((x: { name: string }) => x.name === 'owned').ownership.stale).toBe(true);
    expect(list.json.models.find((x: { name: string }) => x.name === 'flight-delay').ownership).toBeNull();
    await app.settled();
  });
});

describe('routing across pushed versions', () => {
  it('a pushed version serves as a canary once routed; one that encodes requests differently is refused by the routing table', async () => {
    const app = newApp();
    expect((await push(app, 'flight-delay', '2', flightFiles('flight-delay', '2'))).status).toBe(201);
    // Version 3 knows one more airport: index 1 + n for "ZZZ" means something else to its graph.
    const files = flightFiles('flight-delay', '3');
    const m = JSON.parse(new TextDecoder().decode(files['manifest.json']));
    m.features.find((f: { name: string }) => f.name === 'origin').vocabulary.push('ZZZ');
    files['manifest.json'] = utf8(m);
    expect((await push(app, 'flight-delay', '3', files)).status).toBe(201);
    const put = (table: object) =>
      app.request('PUT', '/v1/models/flight-delay/routing', JSON.stringify(table), { ...auth, 'content-type': 'application/json' });
    const refused = await put({ stable: '1', canary: { version: '3', share: 0.5 } });
    expect([refused.status, refused.json.error.code, refused.json.error.field]).toEqual([422, 'incompatible_version', 'canary.version']);
    expect(refused.json.error.message).toMatch(/version 3 encodes requests differently from the default version 1/);
    expect((await put({ stable: '2' })).status).toBe(200);
    const served = await predict(app, 'flight-delay');
    expect(served.headers.get('x-model-version')).toBe('2');
    // Version 2 is version 1's bytes: the same answer, now named 2.
    expect(Math.abs(served.json.predictions[0].p_delay - (flight.golden.rows[0].expected.int8.p_delay as number))).toBeLessThan(1e-4);
    await app.settled();
  });
});

describe('sessions within MODEL_CACHE_BYTES', () => {
  it('frees the least recently used session past the budget; a freed version loads again on its next request', async () => {
    // flight-delay 1 (int8, 20,576 bytes) and 1-float32 (61,205 bytes) do not fit in 70,000 together.
    const app = newApp({ MODEL_CACHE_BYTES: '70000' });
    const g = flight.golden.rows[0];
    const enc = (await import('../../core/index.ts')).encodeInstances(flight.manifest, { instances: [g.features] });
    const body = JSON.stringify({
      inputs: flight.manifest.inputs.map((i) => ({
        name: i.name,
        datatype: i.dtype === 'float32' ? 'FP32' : 'INT64',
        shape: [1],
        data: Array.from(enc.feeds[i.name].data as ArrayLike<number | bigint>, Number),
      })),
    });
    const infer = (v: string) =>
      app.request('POST', `/v2/models/flight-delay/versions/${v}/infer`, body, { 'content-type': 'application/json', 'x-latency-budget-ms': '10000' });
    const stats = async () => (await app.request('GET', '/v1/models/flight-delay/stats', undefined, auth)).json;
    for (const [v, want] of [
      ['1', g.expected.int8.p_delay],
      ['1-float32', g.expected.float32.p_delay],
      ['1', g.expected.int8.p_delay],
    ] as const) {
      const res = await infer(v);
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      expect(Math.abs(res.json.outputs[0].data[0] - (want as number))).toBeLessThan(1e-4);
      await app.settled();
      const s = await stats();
      const other = v === '1' ? '1-float32' : '1';
      expect(s.versions[v], JSON.stringify(s.versions)).toBe('ready');
      expect(s.versions[other], JSON.stringify(s.versions)).not.toBe('ready');
      expect(s.sessions.loaded_bytes).toBeLessThanOrEqual(70_000);
    }
    expect((await stats()).sessions.evicted).toBeGreaterThanOrEqual(2);
  });
});

describe('deleting a version', () => {
  it('refuses the version the routing table uses, deletes another, and answers 404 for one that is not there', async () => {
    const app = newApp();
    const inUse = await app.request('DELETE', '/v1/models/flight-delay/versions/1', undefined, auth);
    expect(inUse.status).toBe(409);
    expect(inUse.json.error.code).toBe('version_in_use');
    // A canary makes 1-float32 in use too.
    const table = { stable: '1', canary: { version: '1-float32', share: 0.1 } };
    expect((await app.request('PUT', '/v1/models/flight-delay/routing', JSON.stringify(table), { ...auth, 'content-type': 'application/json' })).status).toBe(
      200,
    );
    expect((await app.request('DELETE', '/v1/models/flight-delay/versions/1-float32', undefined, auth)).status).toBe(409);
    expect(
      (await app.request('PUT', '/v1/models/flight-delay/routing', JSON.stringify({ stable: '1' }), { ...auth, 'content-type': 'application/json' })).status,
    ).toBe(200);
    const gone = await app.request('DELETE', '/v1/models/flight-delay/versions/1-float32', undefined, auth);
    expect(gone.status).toBe(200);
    expect(await versionsListed(app, 'flight-delay')).toEqual(['1']);
    expect((await app.request('GET', '/v2/models/flight-delay/versions/1-float32')).status).toBe(404);
    expect((await app.request('DELETE', '/v1/models/flight-delay/versions/1-float32', undefined, auth)).status).toBe(404);
    expect((await app.request('DELETE', '/v1/models/flight-delay/versions/1', undefined)).status).toBe(401);
    await app.settled();
  });
});
