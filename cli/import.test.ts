// Bring your own model, end to end: two models the project did not build, exported the way other
// tools write them (test/fixtures/export_models.py, with Debian's python3-onnx and python3-sklearn:
// an iris MLP classifier and a diabetes regressor, each one FLOAT [N, F] input with the scaler in
// the graph), imported with `driftwatch import`, pushed with `driftwatch push` to a real worker
// under wrangler dev, and then: the edge's answers against onnxruntime-node's, OIP metadata and
// infer, drift flagged on the one feature whose unit changed (x1.8) and on no other, and both
// still served after the worker restarts on its persisted state.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../test/support/cli.ts';
import { freePort, ROOT, startOrigin, startWorkerUp, stop, waitFor } from '../test/support/servers.ts';
import { decodeSummary, estimateAuc, type TDigest } from '../core/index.ts';
import { GraphBuilder } from '../models/lib/onnx-builder.ts';
import { importModel, quantizeWeights, readGraph, readReference } from './import.ts';

const TOKEN = 'import-operator';
const PYTHON = process.env.DRIFTWATCH_PYTHON ?? '/usr/bin/python3';
const HOUR = 3_600_000;
/** Debian's python3-onnx and python3-sklearn (.ci/run installs them); without them outside CI the suite says why it skips. */
const python = (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import onnx, sklearn'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI) throw new Error(`${PYTHON} cannot import onnx and sklearn: install python3-onnx and python3-sklearn (.ci/run does)`);
    return false;
  }
})();

const dir = mkdtempSync(join(tmpdir(), 'dw-import-'));
let port = 0;
let base = '';
let worker: ChildProcess | undefined;
let origin: ReturnType<typeof startOrigin> | undefined;
const VARS = { OPERATOR_TOKEN: TOKEN, CACHE_MAX_BYTES: '0', TELEMETRY_CLOCK: 'event', TELEMETRY_WINDOW_MS: String(HOUR), TELEMETRY_MAX_ROWS: '100000' };
const cli = (args: string[]) => runCli(args, { DRIFTWATCH_ENDPOINT: base, DRIFTWATCH_TOKEN: TOKEN });
const timings: Record<string, number> = {};
async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await f();
  } finally {
    timings[what] = Math.round(performance.now() - t);
  }
}

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'x-latency-budget-ms': '5000', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as any, headers: res.headers };
}

/** onnxruntime-node's outputs for rows of a float [N, F] model. */
async function reference(model: string, input: string, rows: number[][]): Promise<Record<string, number[]>> {
  // The graph as written (see cli/import.ts SESSION: fused int8 kernels on the CPU provider compute something else).
  const s = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'basic' });
  const out = await s.run({ [input]: new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0].length]) });
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Array.from(t.data as ArrayLike<number | bigint>, Number)]));
}

const describeOrSkip = python ? describe : describe.skip;

describeOrSkip('driftwatch import and push: models exported by other tools, served and watched', () => {
  const iris = { onnx: join(dir, 'iris-mlp.onnx'), csv: join(dir, 'iris.csv'), out: join(dir, 'models/iris-mlp') };
  const diabetes = { onnx: join(dir, 'diabetes-ridge.onnx'), csv: join(dir, 'diabetes.csv'), out: join(dir, 'models/diabetes') };
  let irisRows: Record<string, number>[] = [];
  let diabetesRows: Record<string, number>[] = [];
  const IRIS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
  /** What the edge served, for the late labels: prediction id, answer and the row's true value. */
  const irisServed: { id: string; label: number; truth: number }[] = [];
  const diabetesServed: { id: string; value: number; truth: number; hour: number }[] = [];
  const DIABETES = ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'];

  beforeAll(async () => {
    execFileSync(PYTHON, [join(ROOT, 'test/fixtures/export_models.py'), dir], { stdio: 'pipe' });
    irisRows = (await readReference(iris.csv)).rows as Record<string, number>[];
    diabetesRows = (await readReference(diabetes.csv)).rows as Record<string, number>[];
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    worker = await startWorkerUp(port, VARS, { probe: '/healthz' });
  }, 180_000);
  afterAll(async () => {
    if (worker) await stop(worker);
    if (origin) await stop(origin);
    rmSync(dir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log(`import walk-through (ms): ${JSON.stringify(timings)}`);
  });

  it('reads the graphs as exported: one FLOAT [N, F] input, label and probabilities, a [N, 1] regression output', () => {
    const g = readGraph(readFileSync(iris.onnx), iris.onnx);
    expect(g.inputs).toEqual([{ name: 'float_input', dtype: 'float32', shape: ['N', 4] }]);
    expect(g.outputs.map((o) => `${o.name} ${o.dtype} [${o.shape.join(', ')}]`)).toEqual(['label int64 [N]', 'probabilities float32 [N, 3]']);
    expect(readGraph(readFileSync(diabetes.onnx), diabetes.onnx).outputs).toEqual([{ name: 'variable', dtype: 'float32', shape: ['N', 1] }]);
    expect(() => readGraph(new Uint8Array([1, 2, 3, 4, 5]), 'junk.onnx')).toThrow(/junk.onnx is not an ONNX model/);
    // int8: both weight matrices, dequantized in the graph.
    expect(quantizeWeights(readFileSync(iris.onnx)).weights).toBe(2);
  });

  it('imports both: manifest inferred from the graph and the rows, quality reported, an int8 build checked against float32', async () => {
    const a = await timed('import iris (int8)', () =>
      cli(['import', iris.onnx, '--name', 'iris-mlp', '--reference', iris.csv, '--label', 'species', '--quantize', 'int8', '--out', iris.out]),
    );
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/iris-mlp version 1: multiclass-classification, 4 features, 2 output\(s\), serving the int8 build/);
    expect(a.out).toMatch(/feature sepal_length\s+numeric in \[0, [\d.]+\]\s+-> float_input\[:, 0\]/);
    expect(a.out).toMatch(/quality accuracy\s+float32 0\.9\d+, int8 0\.9\d+/);
    expect(a.out).toMatch(/labels agree: (1\.0000|0\.99\d\d)/);
    const m = JSON.parse(readFileSync(join(iris.out, 'manifest.json'), 'utf8'));
    expect(m.features.map((f: { name: string; column: number }) => `${f.name}@${f.column}`)).toEqual(IRIS.map((f, i) => `${f}@${i}`));
    expect(m.sketchedOutputs).toEqual([{ name: 'label', kind: 'categorical', sketchCapacity: 256 }]);
    for (const f of ['model.onnx', 'model.float32.onnx', 'baseline.dwsm', 'golden.json']) expect(existsSync(join(iris.out, f)), f).toBe(true);

    const b = await timed('import diabetes', () =>
      cli([
        'import',
        diabetes.onnx,
        '--name',
        'diabetes',
        '--reference',
        diabetes.csv,
        '--label',
        'progression',
        '--owner',
        'ml-team@example.com',
        '--retrain-every',
        'P30D',
        '--out',
        diabetes.out,
      ]),
    );
    expect(b.code, b.err).toBe(0);
    expect(b.out).toMatch(/diabetes version 1: regression, 10 features, 1 output\(s\), serving the float32 build/);
    expect(b.out).toMatch(/feature sex\s+numeric \(integer\)/);
    expect(b.out).toMatch(/quality r2\s+float32 0\.5\d+/);

    // Mistakes are one line and an exit status.
    const noLabel = await cli(['import', iris.onnx, '--name', 'iris-mlp', '--reference', iris.csv, '--out', join(dir, 'x')]);
    expect(noLabel.code).toBe(1);
    expect(noLabel.err).toMatch(/^driftwatch: input "float_input" takes 4 columns; the reference has 5 besides the label .* name the label with --label\n$/);
    const badName = await cli(['import', iris.onnx, '--name', 'Iris', '--reference', iris.csv]);
    expect(badName.code).toBe(2);
  });

  it('pushes both to the edge, which checks them on its engine and serves them: answers match onnxruntime-node, on /v1 and the OIP routes', async () => {
    const pushed = await timed('push iris', () => cli(['push', iris.out]));
    expect(pushed.code, pushed.err).toBe(0);
    expect(pushed.out).toMatch(/^pushed iris-mlp version 1: model.onnx [\d.]+ KB, sha256 [0-9a-f]{16}/m);
    expect(pushed.out).toMatch(/checked on the edge engine: loaded in [\d.]+ ms; 32 golden rows reproduce/);
    expect(pushed.out).toMatch(/default version: serves now/);
    const p2 = await timed('push diabetes', () => cli(['push', diabetes.out]));
    expect(p2.code, p2.err).toBe(0);
    const again = await cli(['push', diabetes.out]);
    expect(again.out).toMatch(/^already there: diabetes version 1/m);
    const models = await cli(['models']);
    expect(models.out).toMatch(/^iris-mlp\s+1\s+multiclass-classification\s+1\s/m);
    expect(models.out).toMatch(/^diabetes\s+1\s+regression.*\s0 d of P30D, ml-team@example.com$/m);

    // Every reference row through the edge, against onnxruntime-node on the same artifact.
    const irisX = irisRows.map((r) => IRIS.map((f) => r[f]));
    const irisWant = await reference(join(iris.out, 'model.onnx'), 'float_input', irisX);
    for (let i = 0; i < irisRows.length; i += 50) {
      const chunk = irisRows.slice(i, i + 50).map((r) => Object.fromEntries(IRIS.map((f) => [f, r[f]])));
      const res = await api('POST', '/v1/models/iris-mlp/predict', { instances: chunk });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      res.json.predictions.forEach((p: { label: number; probabilities: number[]; prediction_id: string }, j: number) => {
        irisServed.push({ id: p.prediction_id, label: p.label, truth: irisRows[i + j].species });
        const want = irisWant.probabilities.slice((i + j) * 3, (i + j + 1) * 3);
        p.probabilities.forEach((x, c) => expect(Math.abs(x - want[c])).toBeLessThan(1e-4));
        const [first, second] = [...want].sort((a, b) => b - a);
        if (first - second > 2e-4) expect(p.label).toBe(irisWant.label[i + j]);
      });
    }
    const meta = await api('GET', '/v2/models/diabetes');
    expect(meta.status).toBe(200);
    expect(meta.json.inputs).toEqual([{ name: 'X', datatype: 'FP32', shape: [-1, 10] }]);
    expect(meta.json.outputs).toEqual([{ name: 'variable', datatype: 'FP32', shape: [-1, 1] }]);
    const X = diabetesRows.slice(0, 20).map((r) => DIABETES.map((f) => r[f]));
    const want = await reference(diabetes.onnx, 'X', X);
    const infer = await api('POST', '/v2/models/diabetes/versions/1/infer', { inputs: [{ name: 'X', datatype: 'FP32', shape: [20, 10], data: X.flat() }] });
    expect(infer.status, JSON.stringify(infer.json)).toBe(200);
    const got = infer.json.outputs.find((o: { name: string }) => o.name === 'variable');
    expect(got.shape).toEqual([20, 1]);
    got.data.forEach((v: number, i: number) => expect(Math.abs(v - want.variable[i])).toBeLessThan(1e-3));
    // A value outside the inferred range is refused by name, not served.
    const far = await api('POST', '/v1/models/diabetes/predict', {
      instances: [{ ...Object.fromEntries(DIABETES.map((f) => [f, diabetesRows[0][f]])), bmi: -5 }],
    });
    expect(far.status).toBe(400);
    expect(far.json.error.field).toBe('instances[0].bmi');
  });

  it('flags drift on the feature whose unit changed (bmi x1.8), on no feature that did not move, and serves both after a restart', async () => {
    const start = Math.floor((Date.now() - 6 * HOUR) / HOUR) * HOUR;
    const send = async (rows: Record<string, number>[], at: number, scale: Record<string, number> = {}) => {
      for (let i = 0; i < rows.length; i += 32) {
        const instances = rows.slice(i, i + 32).map((r) => Object.fromEntries(DIABETES.map((f) => [f, r[f] * (scale[f] ?? 1)])));
        const res = await api('POST', '/v1/models/diabetes/predict', { instances }, { 'x-event-time': String(at + i) });
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        res.json.predictions.forEach((p: { variable: number[]; prediction_id: string }, j: number) =>
          diabetesServed.push({ id: p.prediction_id, value: p.variable[0], truth: rows[i + j].progression, hour: Math.floor((at - start) / HOUR) }),
        );
      }
    };
    await timed('traffic: 2 x 442 rows', async () => {
      await send(diabetesRows, start);
      await send(diabetesRows, start + HOUR, { bmi: 1.8 });
      // One more request an hour later closes the second window (the event clock moves it).
      await send(diabetesRows.slice(0, 1), start + 2 * HOUR);
    });
    // Until both windows have reached the aggregator.
    let drift: any;
    for (let i = 0; i < 100; i++) {
      drift = (await api('GET', `/v1/models/diabetes/drift?from=${start}&to=${start + 2 * HOUR}&step=${HOUR}`)).json;
      if (drift.windows?.every((w: { rows: number }) => w.rows === diabetesRows.length)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(drift.windows.map((w: { rows: number }) => w.rows)).toEqual([diabetesRows.length, diabetesRows.length]);
    const [same, moved] = drift.windows;
    expect(same.drifted.filter((x: string) => DIABETES.includes(x))).toEqual([]);
    expect(moved.drifted.filter((x: string) => DIABETES.includes(x))).toEqual(['bmi']);
    // The regression output moved with it.
    expect(moved.drifted).toContain('variable');
    expect(drift.baseline.source).toBe('training');
    expect(drift.baseline.rows).toBe(diabetesRows.length);

    // The hosted fallback pulls the pushed versions from the edge's registry (by sha256) and serves them too.
    const originPort = await freePort();
    origin = startOrigin(originPort, 0, { registry: base, token: TOKEN });
    await waitFor(`http://127.0.0.1:${originPort}/v2/health/ready`);
    const fromOrigin = async () => {
      for (let i = 0; i < 100; i++) {
        const res = await fetch(`http://127.0.0.1:${originPort}/v1/models/diabetes/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ instances: [Object.fromEntries(DIABETES.map((f) => [f, diabetesRows[0][f]]))] }),
        });
        if (res.status === 200) return (await res.json()) as { predictions: { variable: number[] }[]; served_by: string };
        await new Promise((r) => setTimeout(r, 300));
      }
      throw new Error('the origin never served diabetes');
    };
    const o = await fromOrigin();
    expect(o.served_by).toBe('origin');
    const edgeAnswer = await api('POST', '/v1/models/diabetes/predict', { instances: [Object.fromEntries(DIABETES.map((f) => [f, diabetesRows[0][f]]))] });
    expect(Math.abs(o.predictions[0].variable[0] - edgeAnswer.json.predictions[0].variable[0])).toBeLessThan(1e-3);

    // Late labels, shuffled: the first hour's before the restart, the rest after it.
    const feedback = async (model: string, items: { prediction_id: string; label: number }[]) => {
      const res = await api('POST', `/v1/models/${model}/feedback`, { feedback: items });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      return res.json as { joined: number; duplicate: number };
    };
    const shuffled = [...diabetesServed].sort((a, b) => (a.id < b.id ? -1 : 1));
    const firstHour = shuffled.filter((d) => d.hour === 0).map((d) => ({ prediction_id: d.id, label: d.truth }));
    expect((await feedback('diabetes', firstHour)).joined).toBe(diabetesRows.length);

    // The worker restarts on its persisted state (R2 and the Durable Objects): both still served,
    // and diabetes through the fallback when its edge engine fails to load.
    await stop(worker!);
    worker = await timed('restart', async () => {
      return startWorkerUp(port, { ...VARS, FALLBACK_URL: `http://127.0.0.1:${originPort}`, FAIL_MODEL_LOAD: 'diabetes' }, { probe: '/healthz' });
    });
    const fellBack = await api('POST', '/v1/models/diabetes/predict', { instances: [Object.fromEntries(DIABETES.map((f) => [f, diabetesRows[0][f]]))] });
    expect(fellBack.status, JSON.stringify(fellBack.json)).toBe(200);
    expect(fellBack.json.served_by).toBe('fallback');
    const listed = (await api('GET', '/v1/models')).json.models.map((m: { name: string }) => m.name);
    expect(listed).toEqual(expect.arrayContaining(['iris-mlp', 'diabetes', 'flight-delay', 'movielens-topk']));
    const after = await api('POST', '/v1/models/iris-mlp/predict', { instances: [Object.fromEntries(IRIS.map((f) => [f, irisRows[0][f]]))] });
    expect(after.status).toBe(200);
    expect(after.headers.get('x-model-version')).toBe('1');
    const still = (await api('GET', `/v1/models/diabetes/drift?from=${start}&to=${start + 2 * HOUR}&step=${HOUR}`)).json;
    expect(still.windows[1].drifted).toContain('bmi');

    // The labels after the restart: nothing joined before it counts twice, and each window's
    // MAE, RMSE and bias are the exact ones of its rows.
    const rest = shuffled.filter((d) => d.hour > 0).map((d) => ({ prediction_id: d.id, label: d.truth }));
    const late = await feedback('diabetes', [...rest, ...firstHour.slice(0, 10)]);
    expect(late).toMatchObject({ joined: rest.length, duplicate: 10 });
    const perf = (await api('GET', `/v1/models/diabetes/performance?from=${start}&to=${start + 2 * HOUR}&step=${HOUR}`)).json;
    for (const h of [0, 1]) {
      const rows = diabetesServed.filter((d) => d.hour === h);
      const e = rows.map((d) => d.value - d.truth);
      const got = perf.windows[h].versions['1'];
      expect(got).toMatchObject({ predicted: rows.length, labelled: rows.length });
      expect(got.mae).toBeCloseTo(e.reduce((a, x) => a + Math.abs(x), 0) / e.length, 6);
      expect(got.rmse).toBeCloseTo(Math.sqrt(e.reduce((a, x) => a + x * x, 0) / e.length), 6);
      expect(got.bias).toBeCloseTo(e.reduce((a, x) => a + x, 0) / e.length, 6);
    }
    // bmi x1.8 moved the predictions: the second hour's error is the larger.
    expect(perf.windows[1].versions['1'].mae).toBeGreaterThan(perf.windows[0].versions['1'].mae);

    // The multiclass model's labels: accuracy and macro F1 exactly as scikit-learn counts them.
    const irisLate = await feedback(
      'iris-mlp',
      irisServed.map((d) => ({ prediction_id: d.id, label: d.truth })),
    );
    expect(irisLate.joined).toBe(irisRows.length);
    const irisPerf = (await api('GET', `/v1/models/iris-mlp/performance?from=${start}&to=${Date.now() + HOUR}&step=${8 * HOUR}`)).json;
    const iris1 = irisPerf.total['1'];
    expect(iris1).toMatchObject({ labelled: irisRows.length, classes: 3 });
    expect(iris1.accuracy).toBeCloseTo(irisServed.filter((d) => d.label === d.truth).length / irisServed.length, 12);
    const f1 = [0, 1, 2].map((c) => {
      const tp = irisServed.filter((d) => d.truth === c && d.label === c).length;
      const fp = irisServed.filter((d) => d.truth !== c && d.label === c).length;
      const fn = irisServed.filter((d) => d.truth === c && d.label !== c).length;
      return (2 * tp) / (2 * tp + fp + fn);
    });
    expect(iris1.macro_f1).toBeCloseTo((f1[0] + f1[1] + f1[2]) / 3, 12);
    expect(iris1.accuracy).toBeGreaterThan(0.9);
    const shown = await cli(['performance', 'iris-mlp', '--from', String(start), '--to', String(Date.now() + HOUR), '--step', String(8 * HOUR)]);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toMatch(/accuracy\s+macro F1\s+classes/);
    writeFileSync(join(dir, 'timings.json'), JSON.stringify(timings));
  }, 180_000);

  it("fits an overconfident classifier's calibration at import: the AUC the edge estimates before labels is then close to the realized one", async () => {
    const risk = { onnx: join(dir, 'risk-logit.onnx'), csv: join(dir, 'risk.csv'), out: join(dir, 'models/risk') };
    const a = await cli([
      'import',
      risk.onnx,
      '--name',
      'risk',
      '--reference',
      risk.csv,
      '--label',
      'high',
      '--task',
      'binary-classification',
      '--out',
      risk.out,
    ]);
    expect(a.code, a.err).toBe(0);
    const m = JSON.parse(readFileSync(join(risk.out, 'manifest.json'), 'utf8'));
    expect(m.calibration).toMatchObject({ method: 'isotonic', rows: 442 });
    const [before, after] = /expected calibration error ([\d.]+) -> ([\d.]+)/.exec(a.out)!.slice(1).map(Number);
    expect(after).toBeLessThan(before);
    expect(m.quality.metrics.auc.float32).toBeGreaterThan(0.75);
    expect((await cli(['push', risk.out])).code).toBe(0);

    // Every reference row through the edge in one hour of event time, then the labels.
    const rows = (await readReference(risk.csv)).rows as Record<string, number>[];
    const at = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
    const served: { id: string; p: number; y: number }[] = [];
    for (let i = 0; i < rows.length; i += 50) {
      const instances = rows.slice(i, i + 50).map((r) => Object.fromEntries(DIABETES.map((f) => [f, r[f]])));
      const res = await api('POST', '/v1/models/risk/predict', { instances }, { 'x-event-time': String(at + i) });
      expect(res.status, JSON.stringify(res.json)).toBe(200);
      res.json.predictions.forEach((p: { p_high: number[]; prediction_id: string }, j: number) =>
        served.push({ id: p.prediction_id, p: p.p_high[0], y: rows[i + j].high }),
      );
    }
    await api(
      'POST',
      '/v1/models/risk/predict',
      { instances: [Object.fromEntries(Array.from({ length: 30 }, (_, k) => [`f${k}`, rows[0][`f${k}`]]))] },
      {
        'x-event-time': String(at + HOUR),
      },
    );
    const joined = await api('POST', '/v1/models/risk/feedback', { feedback: served.map((s) => ({ prediction_id: s.id, label: s.y })) });
    expect(joined.json.joined).toBe(rows.length);
    let perf: any;
    for (let i = 0; i < 100; i++) {
      perf = (await api('GET', `/v1/models/risk/performance?from=${at}&to=${at + HOUR}&step=${HOUR}`)).json;
      if (perf.windows?.[0]?.estimated?.['1']?.rows === rows.length) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const realizedAuc = perf.windows[0].versions['1'].auc;
    const estimated = perf.windows[0].estimated['1'];
    expect(estimated.valid, JSON.stringify(estimated)).toBe(true);
    expect(perf.estimate_assumptions).toContain('isotonic calibration fitted on 442 labelled reference rows');
    // The scores taken at their word (no calibration): what the estimate would say without it.
    const raw = served.map((s) => s.p).sort((x, y) => x - y);
    const naive = estimateAuc((q) => raw[Math.min(raw.length - 1, Math.floor(q * raw.length))], raw.length).auc!;
    console.log(`risk: realized AUC ${realizedAuc.toFixed(4)}; estimated ${estimated.auc.toFixed(4)} calibrated, ${naive.toFixed(4)} uncalibrated`);
    expect(Math.abs(estimated.auc - realizedAuc)).toBeLessThan(Math.abs(naive - realizedAuc));
    expect(realizedAuc).toBeGreaterThanOrEqual(estimated.band[0]);
    expect(realizedAuc).toBeLessThanOrEqual(estimated.band[1]);
  }, 120_000);
});

describe('driftwatch import: inputs of one feature each, text columns, JSON lines and quoted CSV', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dw-import-unit-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  /** y = 2x + (city index): one FLOAT [N] input and one INT64 [N] input fed through a vocabulary. */
  const model = () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['N']);
    const city = g.input('city', 'int64', ['N']);
    const two = g.init('two', 'float32', [], [2]);
    g.op('Add', [g.op('Mul', [x, two]), g.op('Cast', [city], { to: 1 })], {}, 'y');
    g.output('y', 'float32', ['N']);
    const path = join(tmp, 'y.onnx');
    writeFileSync(path, g.toBytes({ name: 'y' }));
    return path;
  };

  it('reads quoted CSV fields (commas, quotes, CRLF), JSON lines and Parquet, and names the line at fault', async () => {
    writeFileSync(join(tmp, 'q.csv'), 'name,x\r\n"Smith, J.",1.5\r\n"say ""hi""",2\r\n');
    expect(await readReference(join(tmp, 'q.csv'))).toEqual({
      columns: ['name', 'x'],
      rows: [
        { name: 'Smith, J.', x: 1.5 },
        { name: 'say "hi"', x: 2 },
      ],
    });
    writeFileSync(join(tmp, 'r.jsonl'), '{"x": 1, "city": "Oslo"}\n\n{"x": 2, "city": "Lima"}\n');
    expect((await readReference(join(tmp, 'r.jsonl'))).rows).toHaveLength(2);
    writeFileSync(join(tmp, 'bad.jsonl'), '{"x": 1}\n[1, 2]\n');
    await expect(readReference(join(tmp, 'bad.jsonl'))).rejects.toThrow(/bad.jsonl line 2 is not a JSON object/);
    writeFileSync(join(tmp, 'short.csv'), 'a,b\n1,2\n3\n');
    await expect(readReference(join(tmp, 'short.csv'))).rejects.toThrow(/short.csv line 3 has 1 fields; the header has 2/);
    await expect(readReference(join(tmp, 'rows.xlsx'))).rejects.toThrow(/must be .csv, .jsonl or .parquet/);
    // Parquet as pandas and Spark write it: typed columns, 64-bit integers read back as numbers.
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'city', data: ['Oslo', 'Lima'], type: 'STRING' },
        { name: 'n', data: [3n, 4n], type: 'INT64' },
        { name: 'x', data: [0.5, 1.5], type: 'DOUBLE' },
      ],
    });
    writeFileSync(join(tmp, 'r.parquet'), new Uint8Array(buf));
    expect(await readReference(join(tmp, 'r.parquet'))).toEqual({
      columns: ['city', 'n', 'x'],
      rows: [
        { city: 'Oslo', n: 3, x: 0.5 },
        { city: 'Lima', n: 4, x: 1.5 },
      ],
    });
  });

  it('maps inputs by name: numbers to a numeric feature, text to a categorical one with its vocabulary; --quantize needs weights', async () => {
    const path = model();
    const cities = ['Oslo', 'Lima', 'Oslo', 'Pune', 'Oslo', 'Lima'];
    writeFileSync(join(tmp, 'rows.jsonl'), cities.map((c, i) => JSON.stringify({ x: i / 2, city: c })).join('\n'));
    const r = await importModel({ model: path, name: 'y-model', reference: join(tmp, 'rows.jsonl'), version: '1', out: join(tmp, 'out') });
    expect(r.manifest.task).toBe('regression');
    expect(r.manifest.features).toEqual([
      { name: 'x', kind: 'numeric', input: 'x', range: [0, 12.5] },
      { name: 'city', kind: 'categorical', input: 'city', vocabulary: ['Oslo', 'Lima', 'Pune'], oov: 'unknown', sketchCapacity: 16 },
    ]);
    // Golden rows hold what onnxruntime-node computed: Oslo is index 1, so y = 2 * 0 + 1.
    const golden = JSON.parse(readFileSync(join(tmp, 'out/golden.json'), 'utf8'));
    expect(golden.rows[0]).toEqual({ features: { x: 0, city: 'Oslo' }, expected: { float32: { y: 1 } } });
    await expect(
      importModel({ model: path, name: 'y-model', reference: join(tmp, 'rows.jsonl'), version: '1', quantize: 'int8', out: join(tmp, 'q') }),
    ).rejects.toThrow(/--quantize int8 found no MatMul or Gemm weight matrix/);
    await expect(
      importModel({ model: path, name: 'y-model', reference: join(tmp, 'rows.jsonl'), version: '1', task: 'ranking', out: join(tmp, 't') }),
    ).rejects.toThrow(/--task must be one of binary-classification, multiclass-classification, regression, top-k-recommendation/);
    writeFileSync(join(tmp, 'missing.jsonl'), JSON.stringify({ x: 1, town: 'Oslo' }));
    await expect(importModel({ model: path, name: 'y-model', reference: join(tmp, 'missing.jsonl'), version: '1', out: join(tmp, 'm') })).rejects.toThrow(
      /input "city" has no column of that name in the reference \(columns: x, town\)/,
    );
  });

  it('--timestamp: calendar features derived from it are marked with their cycle, and the baseline gets time slots; named ones are marked without it', async () => {
    // flight-delay's own graph (one input per feature) and 3,600 replayed flights with their departure times.
    const rows = readFileSync(join(ROOT, 'models/flight-delay/replay.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; features: Record<string, number | string> })
      .map((r) => ({ time: r.time, ...r.features }));
    writeFileSync(join(tmp, 'flights.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const model = join(ROOT, 'models/flight-delay/model.int8.onnx');
    const base = { model, name: 'flights', reference: join(tmp, 'flights.jsonl'), version: '1' };
    const r = await importModel({ ...base, timestamp: 'time', slotMinutes: 20, slotClock: 'event', out: join(tmp, 'flights') });
    // On the event clock, each is also the reading of the event time it equals (Sunday-0 weekdays, months from 1).
    expect(r.calendar).toEqual([
      { feature: 'month', cycle: 'year', because: 'derived from --timestamp time', eventTime: 'month' },
      { feature: 'day_of_week', cycle: 'week', because: 'derived from --timestamp time', eventTime: 'weekday' },
      { feature: 'hour', cycle: 'day', because: 'derived from --timestamp time', eventTime: 'hour' },
    ]);
    expect(r.manifest.features.find((f) => f.name === 'hour')).toMatchObject({ seasonal: true, cycle: 'day', eventTime: 'hour' });
    expect(r.lines.join('\n')).toMatch(/feature day_of_week .*calendar, weekly cycle \(derived from --timestamp time; the weekday of the event time\)/);
    expect(r.manifest.features.find((f) => f.name === 'distance')).not.toHaveProperty('seasonal');
    expect(r.manifest.features.map((f) => f.name)).not.toContain('time');
    expect(r.lines.join('\n')).toMatch(/feature hour .*calendar, daily cycle \(derived from --timestamp time; the hour of the event time\)/);
    const baseline = decodeSummary(readFileSync(join(tmp, 'flights/baseline.dwsm')));
    expect(baseline.slots?.minutes).toBe(20);
    expect(baseline.slots?.clock).toBe('event');
    expect(r.slots).toEqual({ minutes: 20, filled: baseline.slots!.profiles.size });
    // Each slot holds the flights of its 20 minutes of the day: their hour is the slot's.
    for (const [i, p] of baseline.slots!.profiles) {
      const hour = p.features.get('hour') as TDigest;
      expect([hour.min, hour.max], `slot ${i}`).toEqual([Math.floor(i / 3), Math.floor(i / 3)]);
    }
    const total = [...baseline.slots!.profiles.values()].reduce((a, p) => a + p.counters.rows, 0);
    expect(total).toBe(rows.length);

    // Without --timestamp: marked by name, no slots.
    const named = await importModel({ ...base, out: join(tmp, 'named') });
    expect(named.calendar.map((c) => [c.feature, c.cycle, c.because])).toEqual([
      ['month', 'year', 'named like one'],
      ['day_of_week', 'week', 'named like one'],
      ['hour', 'day', 'named like one'],
    ]);
    expect(decodeSummary(readFileSync(join(tmp, 'named/baseline.dwsm'))).slots).toBeUndefined();
    // On the wall clock (the default), the timestamp is not what windows run on: derived, but no reading of the event time.
    const wall = await importModel({ ...base, timestamp: 'time', out: join(tmp, 'wall') });
    expect(wall.calendar.map((c) => c.because)).toEqual(Array(3).fill('derived from --timestamp time'));
    expect(wall.manifest.features.filter((f) => f.kind === 'numeric' && f.eventTime)).toEqual([]);

    await expect(importModel({ ...base, timestamp: 'when', out: join(tmp, 'x') })).rejects.toThrow(/--timestamp when is not a column/);
    await expect(importModel({ ...base, timestamp: 'time', slotMinutes: 7, out: join(tmp, 'x') })).rejects.toThrow(/--slot-minutes 7 must be/);
    await expect(importModel({ ...base, timestamp: 'time', slotClock: 'utc', out: join(tmp, 'x') })).rejects.toThrow(
      /--slot-clock utc must be one of wall, event/,
    );
    writeFileSync(join(tmp, 'bad-time.jsonl'), rows.map((x, i) => JSON.stringify(i === 5 ? { ...x, time: 'soon' } : x)).join('\n'));
    await expect(importModel({ ...base, reference: join(tmp, 'bad-time.jsonl'), timestamp: 'time', out: join(tmp, 'x') })).rejects.toThrow(
      /--timestamp time: row 6 is "soon", not an ISO date/,
    );
  }, 120_000);
});
