// npm run origin — the reference hosted fallback: the float32 models on onnxruntime-node,
// served over the same Open Inference Protocol (and named-feature) routes as the edge, by the
// same Hono app, on 127.0.0.1.
//
// Options (flags or environment): --port / ORIGIN_PORT (8791), --delay-ms / ORIGIN_DELAY_MS
// (added before every inference: a slow origin for drills), --precision float32|int8,
// --registry / ORIGIN_REGISTRY (an edge whose pushed versions the origin pulls, every
// --pull-ms / ORIGIN_PULL_MS, default 30000, with ORIGIN_REGISTRY_TOKEN, else OPERATOR_TOKEN in
// .dev.vars, as the bearer token: see origin/pull.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { serve } from '@hono/node-server';
import * as ort from 'onnxruntime-node';
import type { BuiltManifest, Tensor, TensorData } from '../core/index.ts';
import { createApp, type Env } from '../worker/app.ts';
import type { SessionFactory } from '../worker/engine/model-engine.ts';
import type { SeedVersion } from '../worker/registry/registry.ts';
import { pullRegistry } from './pull.ts';

const args = process.argv.slice(2);
const flag = (name: string, env: string, fallback: string) =>
  args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : (process.env[env] ?? fallback);
const port = Number(flag('port', 'ORIGIN_PORT', '8791'));
const delayMs = Number(flag('delay-ms', 'ORIGIN_DELAY_MS', '0'));
const precision = flag('precision', 'ORIGIN_PRECISION', 'float32') as 'float32' | 'int8';
const registry = flag('registry', 'ORIGIN_REGISTRY', '').replace(/\/+$/, '');
const pullMs = Number(flag('pull-ms', 'ORIGIN_PULL_MS', '30000'));
const devToken = () => {
  try {
    return /^OPERATOR_TOKEN=(.*)$/m.exec(readFileSync('.dev.vars', 'utf8'))?.[1]?.trim();
  } catch {
    return undefined;
  }
};
const registryToken = process.env.ORIGIN_REGISTRY_TOKEN ?? devToken() ?? '';
const MODELS = join(import.meta.dirname, '..', 'models');

/** A default model's versions as the origin serves them: `1` and `1-float32`, both the `precision` build. */
function load(name: string): SeedVersion[] {
  const read = (file: string) => new Uint8Array(readFileSync(join(MODELS, name, file)));
  const manifest = JSON.parse(readFileSync(join(MODELS, name, 'manifest.json'), 'utf8')) as BuiltManifest;
  const model = read(manifest.artifacts[precision].file);
  const files = (version: string) => ({
    'model.onnx': model,
    'manifest.json': new TextEncoder().encode(JSON.stringify({ ...manifest, version, serve: precision })),
    'baseline.dwsm': read('baseline.dwsm'),
    'golden.json': read('golden.json'),
  });
  return [
    { model: name, version: manifest.version, files: files(manifest.version) },
    { model: name, version: `${manifest.version}-float32`, files: files(`${manifest.version}-float32`) },
  ];
}

const createNodeSession: SessionFactory = async (model) => {
  const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  return {
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    async run(feeds) {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const out = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, t.dims)])));
      return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { dtype: t.type as Tensor['dtype'], dims: [...t.dims], data: t.data as TensorData }]));
    },
  };
};

const app = createApp({
  seed: [...load('flight-delay'), ...load('movielens-topk')],
  createSession: createNodeSession,
  servedBy: 'origin',
});
// The origin answers every request it gets: no cache (the edge caches), batching as usual.
// Its own operator token: the origin's registry takes the versions pulled from the edge through its own PUT route.
const env: Env = { CACHE_MAX_BYTES: '0', BATCH_MAX_QUEUE: '4096', OPERATOR_TOKEN: randomUUID() };
// Load every model before listening: a fallback must not be cold.
const ready = await app.request('/v2/health/ready', {}, env);
if (ready.status !== 200) throw new Error(`origin: models failed to load: ${await ready.text()}`);
const server = serve({ fetch: (req) => app.fetch(req, env), hostname: '127.0.0.1', port }, (info) => {
  console.log(`origin: ${precision} models on http://127.0.0.1:${info.port} (Open Inference Protocol)${delayMs ? `, +${delayMs} ms per inference` : ''}`);
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => server.close(() => process.exit(0)));

// The edge's pushed versions, pulled now and then; an edge that is not up yet is tried again later.
if (registry) {
  let reached = false;
  let waiting = false;
  const pull = async () => {
    try {
      const r = await pullRegistry({ edge: registry, token: registryToken, app, env });
      for (const v of r.pulled) console.log(`origin: pulled ${v} from ${registry}`);
      for (const x of r.refused) console.error(`origin: ${x.version} from ${registry} refused (${x.status}): ${x.message}`);
    } catch (err) {
      // npm start starts the origin first: the edge answering a few seconds later is the usual case.
      if (!reached) {
        if (!waiting) console.log(`origin: the edge at ${registry} does not answer yet; pulling its pushed versions every ${pullMs / 1000} s`);
        waiting = true;
      } else console.error(`origin: cannot pull from ${registry}: ${(err as Error).message}`);
      return;
    }
    reached = true;
  };
  await pull();
  setInterval(pull, pullMs).unref();
}
