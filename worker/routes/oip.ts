/**
 * The Open Inference Protocol (KServe v2) that Triton, KServe and MLServer speak: server and
 * model health, model metadata, and infer, for the stable version or a pinned one. Errors here
 * are the OIP's `{ "error": "<message>" }` (http/errors.ts). Pages on any origin may call it.
 */
import { Hono } from 'hono';
import { canonicalKey, decodeV2Inputs, observedFromFeeds, V2_DATATYPE, type ModelManifest, type Tensor } from '../../core/index.ts';
import { runtimeOf, type AppContext, type AppEnv } from '../http/context.ts';
import { pick, predictionIds, recordRefused, recordServed, shadowAfter, timedServe } from '../http/inference.ts';
import { eventTime, publicApi, shed } from '../http/middleware.ts';
import { body, clockOf, deadline, engineOf, limit } from '../http/request.ts';
import { paramsOf, toPredictions } from '../serving/tensors.ts';

export const oip = new Hono<AppEnv>();

oip.use('/v2/*', publicApi);

// --- Open Inference Protocol: health and metadata --------------------------------------
oip.get('/v2', (c) => c.json({ name: 'driftwatch-edge', version: '0.1.0', extensions: [] }));
oip.get('/v2/health/live', (c) => c.json({ live: true }));
oip.get('/v2/health/ready', async (c) => {
  const { engines } = runtimeOf(c);
  const statuses = new Map<string, unknown>();
  let ready = true;
  for (const [name, e] of engines) {
    await e.load().catch(() => undefined);
    const s = e.status();
    // Public: the state only; why a load failed is for operators (/v1/models/{name}/stats).
    statuses.set(name, { state: s.state });
    ready &&= s.state === 'ready';
  }
  const models = Object.fromEntries(statuses);
  // OIP: "200 indicates ready, 4xx indicates not ready" (as Triton: 400).
  return c.json({ ready, models }, ready ? 200 : 400);
});

const metadata = (c: AppContext, m: ModelManifest) => ({
  name: m.name,
  // OIP: "the model versions that may be explicitly requested via the appropriate endpoint".
  versions: [...runtimeOf(c).versions.get(m.name)!.keys()],
  platform: 'onnxruntime_onnx',
  inputs: m.inputs.map((i) => ({ name: i.name, datatype: V2_DATATYPE[i.dtype], shape: i.shape.map((d) => (typeof d === 'number' ? d : -1)) })),
  outputs: m.outputs.map((o) => ({ name: o.name, datatype: V2_DATATYPE[o.dtype], shape: o.shape.map((d) => (typeof d === 'number' ? d : -1)) })),
});
oip.get('/v2/models/:name', (c) => c.json(metadata(c, engineOf(c).manifest)));
oip.get('/v2/models/:name/versions/:version', (c) => c.json(metadata(c, engineOf(c).manifest)));
/**
 * OIP model ready: "200 indicates model ready, 4xx indicates not ready" (Triton answers 400).
 * A model that failed to load says why in `error`, the OIP error member (a string).
 */
const readyRoute = async (c: AppContext) => {
  const e = engineOf(c);
  await e.load().catch(() => undefined);
  const s = e.status();
  const ready = s.state === 'ready';
  return c.json(
    {
      name: e.manifest.name,
      version: e.manifest.version,
      ready,
      ...(s.state === 'failed'
        ? {
            error: `model ${e.manifest.name} version ${e.manifest.version} failed to load (operators: see /v1/models/${e.manifest.name}/stats)`,
            code: 'model_unavailable',
          }
        : ready
          ? {}
          : { error: `model ${e.manifest.name} version ${e.manifest.version} is ${s.state}`, code: 'model_not_ready' }),
    },
    ready ? 200 : 400,
  );
};
oip.get('/v2/models/:name/ready', readyRoute);
oip.get('/v2/models/:name/versions/:version/ready', readyRoute);

const infer = async (c: AppContext) => {
  clockOf(c).timed = true;
  const e = engineOf(c);
  const m = e.manifest;
  let req: ReturnType<typeof decodeV2Inputs>;
  try {
    req = decodeV2Inputs(m, await body(c));
  } catch (err) {
    recordRefused(c, m, err);
    throw err;
  }
  const { deadline: dl } = deadline(c, m);
  const { cache } = runtimeOf(c);
  const key = `v2|${m.name}@${m.version}|${canonicalKey({ i: Object.fromEntries(Object.entries(req.feeds).map(([k, t]) => [k, [t.dims, t.data]])), o: req.outputs ?? null })}`;
  const route = await pick(c, e, key, dl);
  const version = route.engine.manifest.version;
  const versionKey = `${key}|${version}`;
  let servedBy = 'cache';
  let outputs = cache?.get(versionKey) as Record<string, Tensor> | undefined;
  if (!outputs) {
    const engineReq = { rows: req.rows, feeds: req.feeds, params: paramsOf(m, req.feeds) };
    const served = await timedServe(c, route.engine, engineReq, dl);
    outputs = served.outputs;
    servedBy = served.servedBy;
    cache?.set(
      versionKey,
      outputs,
      Object.values(outputs).reduce((a, t) => a + t.data.byteLength, 0),
    );
    shadowAfter(c, e, route, version, engineReq, outputs);
  }
  const ids = predictionIds(c, req.rows);
  recordServed(c, m, version, observedFromFeeds(m, req.feeds, req.rows), toPredictions(m, outputs, req.rows), servedBy, ids.rows);
  const wanted = req.outputs ?? m.outputs.map((o) => o.name);
  c.header('x-served-by', servedBy);
  c.header('x-model-version', version);
  c.header('x-prediction-id', ids.id);
  return c.json({
    model_name: m.name,
    model_version: version,
    // The request's own id when it gave one (the protocol echoes it), else the prediction id.
    id: req.id ?? ids.id,
    parameters: { served_by: servedBy, prediction_id: ids.id, ...(req.rows > 1 ? { prediction_ids: ids.rows } : {}) },
    outputs: wanted.map((name) => {
      const t = outputs[name]; // proto-safe: `wanted` holds manifest output names (decodeV2Inputs checks the client's)
      return { name, datatype: V2_DATATYPE[t.dtype], shape: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
    }),
  });
};

oip.post('/v2/models/:name/infer', shed, limit, eventTime, infer);
oip.post('/v2/models/:name/versions/:version/infer', shed, limit, eventTime, infer);
