// npm run bench:serve — the edge API under load: batching off, the fixed window (as Triton
// does it) and the adaptive batcher, side by side, for every bundled model.
//
// Starts one `wrangler dev` per configuration (cache off, so every request reaches the engine)
// and keeps all three up; `/v2/health/ready` loads and warms every engine before any cell.
// Closed-loop clients replay each model's replay stream (one instance per request). The cells
// are interleaved: for each model and concurrency, --reps rounds, each visiting the three
// configurations in a rotated order, so that a noisy neighbour on a shared machine lands on all
// of them alike; a configuration's figures pool its rounds. Each cell is bounded by --seconds and
// --max-requests. Then the engine alone (the batcher and session inside workerd, no HTTP:
// the bench route) and session.run itself (ort-web in workerd beside onnxruntime-node).
//
// Options: --seconds 2, --reps 2, --max-requests 20000, --concurrency 1,4,16,64,
// --models flight-delay,movielens-topk, --engine-requests 2000, --port 8790
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { BuiltManifest } from '../core/index.ts';
import { encodeInstances } from '../core/index.ts';
import { BENCH_CONFIG, startWorker, stop as stopWorker, waitFor } from '../test/support/servers.ts';
import { markdownTable, progress } from './lib/report.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const SECONDS = Number(opt('seconds', '2'));
const REPS = Number(opt('reps', '2'));
const MAX_REQUESTS = Number(opt('max-requests', '20000'));
const CONCURRENCY = opt('concurrency', '1,4,16,64').split(',').map(Number);
const MODELS = opt('models', 'flight-delay,movielens-topk').split(',');
const ENGINE_REQUESTS = Number(opt('engine-requests', '2000'));
const PORT = Number(opt('port', '8790'));
const ROOT = join(import.meta.dirname, '..');
const OPERATOR_TOKEN = 'bench-serve';
const started = performance.now();

interface Model {
  name: string;
  manifest: BuiltManifest;
  instances: Record<string, unknown>[];
  bodies: string[];
}

const models: Model[] = MODELS.map((name) => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'models', name, 'manifest.json'), 'utf8')) as BuiltManifest;
  const instances = readFileSync(join(ROOT, 'models', name, manifest.replay.file), 'utf8')
    .trim()
    .split('\n')
    .slice(0, 4096)
    .map((l) => (JSON.parse(l) as { features: Record<string, unknown> }).features);
  return { name, manifest, instances, bodies: instances.map((f) => JSON.stringify({ instances: [f] })) };
});

const configs = [
  { name: 'batching off', vars: { BATCH_MODE: 'off' } },
  { name: 'fixed window 2 ms', vars: { BATCH_MODE: 'fixed', BATCH_MAX_WAIT_MS: '2' } },
  { name: 'adaptive', vars: { BATCH_MODE: 'adaptive', BATCH_MAX_WAIT_MS: '2' } },
] as const;
type ConfigName = (typeof configs)[number]['name'];
const portOf = new Map<ConfigName, number>(configs.map((c, i) => [c.name, PORT + i]));

interface Sample {
  latencies: number[];
  seconds: number;
  errors: number;
  /** Batches and items run by the engine during the cell (undefined when stats are unreadable). */
  batches?: number;
  items?: number;
}

async function batcherCounts(port: number, model: string): Promise<{ batches: number; items: number } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1/models/${model}/stats`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
    if (!res.ok) {
      await res.text();
      return undefined;
    }
    const s = (await res.json()) as { batcher: { batches: number; items: number } | null };
    return s.batcher ? { batches: s.batcher.batches, items: s.batcher.items } : { batches: 0, items: 0 };
  } catch {
    return undefined;
  }
}

async function load(port: number, m: Model, concurrency: number, seconds: number, maxRequests: number): Promise<Sample> {
  const url = `http://127.0.0.1:${port}/v1/models/${m.name}/predict`;
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  const before = await batcherCounts(port, m.name);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end && next < maxRequests) {
        const body = m.bodies[next++ % m.bodies.length];
        const t = performance.now();
        try {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          await res.text();
          if (res.status !== 200) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const after = await batcherCounts(port, m.name);
  const counts = before && after ? { batches: after.batches - before.batches, items: after.items - before.items } : {};
  return { latencies, seconds: elapsed, errors, ...counts };
}

function pool(samples: Sample[]) {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const seconds = samples.reduce((a, s) => a + s.seconds, 0);
  const batches = samples.every((s) => s.batches !== undefined) ? samples.reduce((a, s) => a + s.batches!, 0) : undefined;
  const items = samples.reduce((a, s) => a + (s.items ?? 0), 0);
  return {
    rps: latencies.length / seconds,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
    errors: samples.reduce((a, s) => a + s.errors, 0),
    requests: latencies.length,
    meanBatch: batches ? items / batches : undefined,
  };
}
type Cell = ReturnType<typeof pool>;

const children = new Map<ConfigName, ChildProcess>();
const http = new Map<string, Cell>(); // `${model}|${config}|${c}`
const engine = new Map<string, { rps: number; meanBatch: number }>(); // `${model}|${config}|${c}`
const sessionUs = new Map<string, { workerd: number; node: number }>(); // `${model}|${n}`
const key = (...parts: (string | number)[]) => parts.join('|');

try {
  progress(`starting ${configs.length} wrangler dev processes (ports ${PORT}-${PORT + configs.length - 1})`);
  for (const cfg of configs) {
    children.set(cfg.name, await startWorker(portOf.get(cfg.name)!, { ...cfg.vars, CACHE_MAX_BYTES: '0', OPERATOR_TOKEN }, { config: BENCH_CONFIG }));
  }
  for (const cfg of configs) {
    // Loads and warms every engine (model-engine's warm-up run) before anything is measured.
    await waitFor(`http://127.0.0.1:${portOf.get(cfg.name)}/v2/health/ready`, 120_000);
    for (const m of models) await load(portOf.get(cfg.name)!, m, 4, 1, 400); // JIT, connection pool
  }

  const cells = models.length * CONCURRENCY.length * REPS * configs.length;
  let done = 0;
  for (const m of models) {
    for (const [ci, c] of CONCURRENCY.entries()) {
      const samples = new Map<ConfigName, Sample[]>(configs.map((cfg) => [cfg.name, []]));
      for (let rep = 0; rep < REPS; rep++) {
        const shift = (rep + ci) % configs.length;
        const order = [...configs.slice(shift), ...configs.slice(0, shift)];
        for (const cfg of order) {
          progress(`[${++done}/${cells}] ${m.name}, c=${c}, round ${rep + 1}/${REPS}: ${cfg.name} for ${SECONDS} s`);
          samples.get(cfg.name)!.push(await load(portOf.get(cfg.name)!, m, c, SECONDS, MAX_REQUESTS));
        }
      }
      for (const cfg of configs) http.set(key(m.name, cfg.name, c), pool(samples.get(cfg.name)!));
    }
  }

  for (const m of models) {
    for (const cfg of configs) {
      const port = portOf.get(cfg.name)!;
      for (const c of CONCURRENCY) {
        progress(`${m.name}, ${cfg.name}: ${ENGINE_REQUESTS} requests through the engine at concurrency ${c}, no HTTP`);
        const post = () =>
          fetch(`http://127.0.0.1:${port}/v1/models/${m.name}/bench`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ instances: m.instances.slice(0, 256), runs: ENGINE_REQUESTS, concurrency: c }),
          });
        let best = Infinity;
        let meanBatch = NaN;
        for (let rep = 0; rep < 2; rep++) {
          const before = await batcherCounts(port, m.name);
          const t = performance.now();
          const res = await post();
          await res.text();
          const ms = performance.now() - t;
          const after = await batcherCounts(port, m.name);
          if (ms < best) {
            best = ms;
            meanBatch = before && after ? (after.items - before.items) / (after.batches - before.batches) : NaN;
          }
        }
        engine.set(key(m.name, cfg.name, c), { rps: ENGINE_REQUESTS / (best / 1000), meanBatch });
      }
    }
  }

  // session.run alone: wall time of a request that runs it R times, minus one that runs it once.
  const adaptivePort = portOf.get('adaptive')!;
  for (const m of models) {
    const timed = async (n: number, runs: number) => {
      let best = Infinity;
      for (let rep = 0; rep < 5; rep++) {
        const t = performance.now();
        const res = await fetch(`http://127.0.0.1:${adaptivePort}/v1/models/${m.name}/bench`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ instances: m.instances.slice(0, n), runs }),
        });
        await res.text();
        best = Math.min(best, performance.now() - t);
      }
      return best;
    };
    const session = await ort.InferenceSession.create(readFileSync(join(ROOT, 'models', m.name, m.manifest.artifacts.int8.file)));
    for (const n of [1, 32]) {
      progress(`${m.name}: session.run at batch ${n}, ort-web in workerd and onnxruntime-node`);
      await timed(n, 200);
      const workerd = (((await timed(n, 1001)) - (await timed(n, 1))) / 1000) * 1000;
      const enc = encodeInstances(m.manifest, { instances: m.instances.slice(0, n) }, { maxBatch: 1024 });
      const feeds = Object.fromEntries(Object.entries(enc.feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, t.dims)]));
      const times: number[] = [];
      for (let i = 0; i < 1200; i++) {
        const t = performance.now();
        await session.run(feeds);
        times.push(performance.now() - t);
      }
      sessionUs.set(key(m.name, n), { workerd, node: median(times.slice(200)) * 1000 });
    }
  }
} finally {
  await Promise.all([...children.values()].map((child) => stopWorker(child)));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const minutes = ((performance.now() - started) / 60_000).toFixed(1);
console.log(`\n## Edge serving through wrangler dev (Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)}, ${minutes} min)\n`);
console.log(
  `Per cell: ${REPS} interleaved rounds of ${SECONDS} s, pooled; cache off; one request = one instance. req/s · p50 · p99 ms (· mean batch size run by the engine).\n`,
);
for (const m of models) {
  console.log(`### ${m.name} (default budget ${m.manifest.serving.defaultLatencyBudgetMs} ms, maxBatch ${m.manifest.serving.maxBatch})\n`);
  console.log(
    markdownTable(
      ['configuration', ...CONCURRENCY.map((c) => `c=${c}`)],
      configs.map((cfg) => [
        cfg.name,
        ...CONCURRENCY.map((c) => {
          const r = http.get(key(m.name, cfg.name, c))!;
          return `${r.rps.toFixed(0)} · ${r.p50.toFixed(2)} · ${r.p99.toFixed(2)}${r.meanBatch !== undefined ? ` · ${r.meanBatch.toFixed(2)}` : ''}${r.errors ? ` (${r.errors} err)` : ''}`;
        }),
      ]),
    ),
  );
  console.log('');
}

console.log(
  `### The engine alone: ${ENGINE_REQUESTS} one-row requests through the batcher inside workerd, no HTTP (req/s · mean batch size; wall time of one request, best of 2)\n`,
);
console.log(
  markdownTable(
    ['model', 'configuration', ...CONCURRENCY.map((c) => `c=${c}`)],
    models.flatMap((m) =>
      configs.map((cfg) => [
        m.name,
        cfg.name,
        ...CONCURRENCY.map((c) => {
          const e = engine.get(key(m.name, cfg.name, c))!;
          return `${e.rps.toFixed(0)} · ${e.meanBatch.toFixed(1)}`;
        }),
      ]),
    ),
  ),
);
console.log('\n### session.run per call, int8 (µs; workerd: (wall time of 1,001 runs − 1 run) / 1,000, best of 5; Node: median of 1,000 after 200 warm-up)\n');
console.log(
  markdownTable(
    ['model', 'batch', 'ort-web WASM in workerd', 'onnxruntime-node', 'ratio'],
    models.flatMap((m) =>
      [1, 32].map((n) => {
        const s = sessionUs.get(key(m.name, n))!;
        return [m.name, n, s.workerd.toFixed(1), s.node.toFixed(1), `${(s.workerd / s.node).toFixed(2)}x`];
      }),
    ),
  ),
);

// Targets. "No worse" allows 5% (the interleaved rounds of one cell still differ by about that here).
const rows: string[][] = [];
for (const m of models) {
  const get = (cfg: ConfigName, c: number) => http.get(key(m.name, cfg, c))!;
  const c1 = CONCURRENCY[0];
  const p50 = get('adaptive', c1).p50 / get('batching off', c1).p50 - 1;
  rows.push([`${m.name}: adaptive p50 within 5% of batching off at c=${c1}`, `${(p50 * 100).toFixed(1)}%`, p50 <= 0.05 ? 'met' : 'MISSED']);
  const ratios = CONCURRENCY.map((c) => ({ c, r: get('adaptive', c).rps / get('batching off', c).rps }));
  rows.push([
    `${m.name}: adaptive req/s no worse than batching off at any c (≥ 0.95x)`,
    ratios.map(({ c, r }) => `c=${c}: ${r.toFixed(2)}x`).join('; '),
    ratios.every(({ r }) => r >= 0.95) ? 'met' : 'MISSED',
  ]);
  // Errors are 503s from the worker's end-to-end budget, which refuses in every mode once HTTP
  // queueing alone exceeds the budget; the batcher must not add to them.
  const errs = (cfg: ConfigName) => CONCURRENCY.reduce((a, c) => a + get(cfg, c).errors, 0);
  rows.push([
    `${m.name}: adaptive errors no more than batching off's (+5% of off's, at least 5)`,
    `${errs('adaptive')} vs ${errs('batching off')}`,
    errs('adaptive') <= errs('batching off') * 1.05 + 5 ? 'met' : 'MISSED',
  ]);
  const eng = CONCURRENCY.map((c) => ({ c, g: engine.get(key(m.name, 'adaptive', c))!.rps / engine.get(key(m.name, 'batching off', c))!.rps })).sort(
    (a, b) => b.g - a.g,
  )[0];
  rows.push([`${m.name}: engine alone, adaptive ≥ 2x batching off where it matters`, `${eng.g.toFixed(2)}x at c=${eng.c}`, eng.g >= 2 ? 'met' : 'MISSED']);
}
console.log(`\n${markdownTable(['target', 'measured', 'verdict'], rows)}`);
