/**
 * POST /v1/models/{name}/predict: the friendlier route, `{ "instances": [ { feature: value } ] }`
 * in, `{ "predictions": [...] }` out, each instance validated against the manifest by name and
 * cached on its own. Pages on any origin may call it.
 */
import { Hono } from 'hono';
import { canonicalKey, encodeInstances } from '../../core/index.ts';
import { runtimeOf, type AppEnv } from '../http/context.ts';
import { pick, predictionIds, recordRefused, recordServed, shadowAfter, timedServe } from '../http/inference.ts';
import { eventTime, publicApi, shed } from '../http/middleware.ts';
import { body, clockOf, deadline, engineOf, limit } from '../http/request.ts';
import { subset, toPredictions } from '../serving/tensors.ts';

export const predict = new Hono<AppEnv>();

predict.use('/v1/models/:name/predict', publicApi);

predict.post('/v1/models/:name/predict', shed, limit, eventTime, async (c) => {
  clockOf(c).timed = true;
  const e = engineOf(c);
  const m = e.manifest;
  let raw: unknown;
  let enc: ReturnType<typeof encodeInstances>;
  try {
    raw = await body(c);
    enc = encodeInstances(m, raw);
  } catch (err) {
    recordRefused(c, m, err);
    throw err;
  }
  const { deadline: dl } = deadline(c, m);
  const { cache } = runtimeOf(c);
  const instances = (raw as { instances: unknown[] }).instances;
  const route = await pick(c, e, canonicalKey(instances), dl);
  const version = route.engine.manifest.version;
  const keys = instances.map((inst) => `v1|${m.name}@${version}|${canonicalKey({ inst, p: enc.params })}`);
  const predictions: unknown[] = keys.map((k) => cache?.get(k));
  const missing = predictions.flatMap((p, i) => (p === undefined ? [i] : []));
  let servedBy = 'cache';
  if (missing.length) {
    const sub = missing.length === enc.rows ? enc : subset(m, enc, missing);
    const engineReq = { rows: sub.rows, feeds: sub.feeds, params: enc.params };
    const served = await timedServe(c, route.engine, engineReq, dl);
    servedBy = served.servedBy;
    shadowAfter(c, e, route, version, engineReq, served.outputs);
    const preds = toPredictions(m, served.outputs, sub.rows);
    missing.forEach((i, j) => {
      predictions[i] = preds[j];
      cache?.set(keys[i], preds[j], JSON.stringify(preds[j]).length);
    });
  }
  const ids = predictionIds(c, instances.length);
  recordServed(c, m, version, enc.observed, predictions as Record<string, unknown>[], servedBy, ids.rows);
  c.header('x-served-by', servedBy);
  c.header('x-model-version', version);
  c.header('x-prediction-id', ids.id);
  // Each answer its own id (a cached prediction is shared: copied, not changed).
  return c.json({
    predictions: (predictions as Record<string, unknown>[]).map((p, i) => ({ ...p, prediction_id: ids.rows[i] })),
    model_version: version,
    served_by: servedBy,
  });
});
