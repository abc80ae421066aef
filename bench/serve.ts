// npm run bench:serve — the edge API under load, measured side by side in one run.
//
// Starts `wrangler dev` on 127.0.0.1 once per configuration (batching off, fixed window as
// Triton does it, the adaptive batcher; cache off, and adaptive with the cache on) and drives it
// from this separate process with closed-loop clients replaying the flight-delay replay stream
// (one instance per request), bounded by --seconds per cell and --max-requests. Then times
// ort-web's session.run inside workerd (the bench route) beside onnxruntime-node in this Node
// process on the same model and batch sizes.
//
// Options: --seconds 3, --max-requests 30000, --concurrency 1,4,16,64, --port 8790
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../core/index.ts';
import { encodeInstances } from '../core/index.ts';
import { startWorker, stop as stopWorker, waitFor } from '../test/support/servers.ts';
import { markdownTable, progress } from './lib/report.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const SECONDS = Number(opt('seconds', '3'));
const MAX_REQUESTS = Number(opt('max-requests', '30000'));
const CONCURRENCY = opt('concurrency', '1,4,16,64').split(',').map(Number);
const PORT = Number(opt('port', '8790'));
const ROOT = join(import.meta.dirname, '..');

const manifest = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/manifest.json'), 'utf8')) as ModelManifest;
const replay = readFileSync(join(ROOT, 'models/flight-delay', manifest.replay.file), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { features: Record<string, unknown> }).features);
const bodies = replay.map((f) => JSON.stringify({ instances: [f] }));

async function startConfigured(vars: Record<string, string>): Promise<ChildProcess> {
  const child = await startWorker(PORT, vars);
  await waitFor(`http://127.0.0.1:${PORT}/v2/health/ready`, 60_000);
  return child;
}

interface Cell {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  cacheShare: number;
}

async function load(concurrency: number, seconds: number, maxRequests: number): Promise<Cell> {
  const url = `http://127.0.0.1:${PORT}/v1/models/flight-delay/predict`;
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let cached = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end && next < maxRequests) {
        const body = bodies[next++ % bodies.length];
        const t = performance.now();
        try {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const text = await res.text();
          if (res.status !== 200) errors++;
          else if (text.includes('"served_by":"cache"')) cached++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / elapsed,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
    errors,
    requests: latencies.length,
    cacheShare: cached / latencies.length,
  };
}

const configs: { name: string; vars: Record<string, string> }[] = [
  { name: 'batching off', vars: { BATCH_MODE: 'off', CACHE_MAX_BYTES: '0', BENCH_ROUTES: '1' } },
  { name: 'fixed window 2 ms', vars: { BATCH_MODE: 'fixed', BATCH_MAX_WAIT_MS: '2', CACHE_MAX_BYTES: '0', BENCH_ROUTES: '1' } },
  { name: 'adaptive', vars: { BATCH_MODE: 'adaptive', BATCH_MAX_WAIT_MS: '2', CACHE_MAX_BYTES: '0', BENCH_ROUTES: '1' } },
  { name: 'adaptive + cache', vars: { BATCH_MODE: 'adaptive', BATCH_MAX_WAIT_MS: '2', BENCH_ROUTES: '1' } },
];

const results = new Map<string, Map<number, Cell>>();
/** In-isolate engine throughput (requests/s through the batcher, no HTTP), by config and concurrency. */
const engineRps = new Map<string, Map<number, { rps: number; meanBatch: number }>>();
const ENGINE_REQUESTS = 4000;
let inWorkerd: Record<number, number> = {};
for (const config of configs) {
  progress(`starting wrangler dev (${config.name})`);
  const child = await startConfigured(config.vars);
  try {
    await load(4, 1, 400); // warm-up: JIT, session, connection pool
    const cells = new Map<number, Cell>();
    for (const c of CONCURRENCY) {
      progress(`${config.name}: concurrency ${c} for ${SECONDS} s`);
      cells.set(c, await load(c, SECONDS, MAX_REQUESTS));
    }
    results.set(config.name, cells);
    if (config.name !== 'adaptive + cache') {
      const byC = new Map<number, { rps: number; meanBatch: number }>();
      for (const c of [1, ...CONCURRENCY.filter((x) => x > 1)]) {
        progress(`${config.name}: ${ENGINE_REQUESTS} requests through the engine at concurrency ${c}, no HTTP`);
        const post = () =>
          fetch(`http://127.0.0.1:${PORT}/v1/models/flight-delay/bench`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ instances: replay.slice(0, 256), runs: ENGINE_REQUESTS, concurrency: c }) });
        await (await post()).text(); // warm-up
        let best = Infinity;
        let stats: { batcher: { items: number; batches: number } } | undefined;
        for (let rep = 0; rep < 3; rep++) {
          const t = performance.now();
          const res = await post();
          stats = (await res.json()) as typeof stats;
          best = Math.min(best, performance.now() - t);
        }
        byC.set(c, { rps: ENGINE_REQUESTS / (best / 1000), meanBatch: stats!.batcher.items / stats!.batcher.batches });
      }
      engineRps.set(config.name, byC);
    }
    if (config.name === 'adaptive + cache') {
      // Clocks inside workerd do not advance during CPU work, so time from outside: the wall
      // time of a request that runs the session R times, minus one that runs it once.
      const timed = async (n: number, runs: number) => {
        let best = Infinity;
        for (let rep = 0; rep < 5; rep++) {
          const t = performance.now();
          const res = await fetch(`http://127.0.0.1:${PORT}/v1/models/flight-delay/bench`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ instances: replay.slice(0, n), runs }) });
          await res.text();
          best = Math.min(best, performance.now() - t);
        }
        return best;
      };
      for (const n of [1, 32]) {
        progress(`ort-web in workerd: session.run at batch ${n}`);
        await timed(n, 200);
        inWorkerd[n] = ((await timed(n, 2001)) - (await timed(n, 1))) / 2000 * 1000;
      }
    }
  } finally {
    await stopWorker(child);
  }
}

// onnxruntime-node in this process, same artifact, same rows.
const session = await ort.InferenceSession.create(readFileSync(join(ROOT, 'models/flight-delay', manifest.artifacts.int8.file)));
const inNode: Record<number, number> = {};
for (const n of [1, 32]) {
  progress(`onnxruntime-node: session.run at batch ${n}`);
  const enc = encodeInstances(manifest, { instances: replay.slice(0, n) }, { maxBatch: 1024 });
  const feeds = Object.fromEntries(Object.entries(enc.feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, t.dims)]));
  const times: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t);
  }
  inNode[n] = median(times.slice(200)) * 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const header = ['configuration', ...CONCURRENCY.map((c) => `c=${c}: req/s · p50 · p99 ms`)];
const rows = configs.map((cfg) => [
  cfg.name,
  ...CONCURRENCY.map((c) => {
    const r = results.get(cfg.name)!.get(c)!;
    return `${r.rps.toFixed(0)} · ${r.p50.toFixed(2)} · ${r.p99.toFixed(2)}${r.errors ? ` (${r.errors} err)` : ''}${r.cacheShare > 0 ? ` (${(100 * r.cacheShare).toFixed(0)}% cache)` : ''}`;
  }),
]);
console.log(`\n## Edge serving: flight-delay int8 through wrangler dev, ${SECONDS} s per cell (Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)})\n`);
console.log(markdownTable(header, rows));
const engineCs = [...engineRps.get('adaptive')!.keys()];
console.log(`\n### The engine alone: ${ENGINE_REQUESTS} one-row requests through the batcher inside workerd, no HTTP (req/s · mean batch size; wall time of one request, best of 3)\n`);
console.log(markdownTable(['configuration', ...engineCs.map((c) => `c=${c}`)], [...engineRps].map(([name, m]) => [name, ...engineCs.map((c) => `${m.get(c)!.rps.toFixed(0)} · ${m.get(c)!.meanBatch.toFixed(1)}`)])));
console.log('\n### session.run per call, same int8 model and rows (µs; workerd: (wall time of 2,001 runs − 1 run) / 2,000, best of 5; Node: median of 1,800 after 200 warm-up)\n');
console.log(markdownTable(['batch', 'ort-web WASM in workerd', 'onnxruntime-node', 'ratio'], [1, 32].map((n) => [n, inWorkerd[n]?.toFixed(1) ?? '-', inNode[n].toFixed(1), inWorkerd[n] ? (inWorkerd[n] / inNode[n]).toFixed(2) + 'x' : '-'])));

// Targets.
const off = results.get('batching off')!;
const fixed = results.get('fixed window 2 ms')!;
const adaptive = results.get('adaptive')!;
const best = CONCURRENCY.map((c) => ({ c, gain: adaptive.get(c)!.rps / off.get(c)!.rps })).sort((a, b) => b.gain - a.gain)[0];
const engineBest = engineCs.map((c) => ({ c, gain: engineRps.get('adaptive')!.get(c)!.rps / engineRps.get('batching off')!.get(c)!.rps })).sort((a, b) => b.gain - a.gain)[0];
const p99ok = CONCURRENCY.every((c) => adaptive.get(c)!.p99 <= fixed.get(c)!.p99 * 1.05);
const c1 = adaptive.get(CONCURRENCY[0])!.p50 / off.get(CONCURRENCY[0])!.p50;
const ratio1 = inWorkerd[1] / inNode[1];
console.log('\n' + markdownTable(['target', 'measured', 'verdict'], [
  ['adaptive ≥ 2x the req/s of batching off where it matters (through HTTP)', `${best.gain.toFixed(2)}x at c=${best.c}`, best.gain >= 2 ? 'met' : 'MISSED'],
  ['the same, engine alone (no HTTP)', `${engineBest.gain.toFixed(2)}x at c=${engineBest.c}`, engineBest.gain >= 2 ? 'met' : 'MISSED'],
  ['adaptive p99 no worse than the fixed window', CONCURRENCY.map((c) => `c=${c}: ${adaptive.get(c)!.p99.toFixed(2)} vs ${fixed.get(c)!.p99.toFixed(2)}`).join('; '), p99ok ? 'met' : 'MISSED'],
  [`adaptive p50 within 10% of batching off at c=${CONCURRENCY[0]}`, `${((c1 - 1) * 100).toFixed(1)}%`, c1 <= 1.1 ? 'met' : 'MISSED'],
  ['ort-web in workerd within 2x of onnxruntime-node at batch 1', `${ratio1.toFixed(2)}x`, ratio1 <= 2 ? 'met' : 'MISSED'],
]));
