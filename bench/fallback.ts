// npm run bench:fallback — the edge with its hosted fallback, under faults, measured in one run:
// p50/p99 latency, success rate and who served, for the edge healthy, the edge failing its
// load, the origin slow, with hedging off and on. Real processes on
// 127.0.0.1: the origin (onnxruntime-node) and the worker under wrangler dev, driven from this
// process with closed-loop clients (bounded by --seconds and --max-requests per scenario).
//
// Options: --seconds 3, --concurrency 8, --budget-ms 250, --max-requests 20000
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ROOT, startOrigin, startWorker, stop, waitFor } from '../test/support/servers.ts';
import { markdownTable, progress } from './lib/report.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const SECONDS = Number(opt('seconds', '3'));
const CONCURRENCY = Number(opt('concurrency', '8'));
const BUDGET = Number(opt('budget-ms', '250'));
const MAX_REQUESTS = Number(opt('max-requests', '20000'));

const replay = readFileSync(join(ROOT, 'models/flight-delay/replay.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.stringify({ instances: [(JSON.parse(l) as { features: unknown }).features] }));

interface Result {
  requests: number;
  ok: number;
  p50: number;
  p99: number;
  servedBy: Record<string, number>;
  codes: Record<string, number>;
}

async function drive(port: number): Promise<Result> {
  const lat: number[] = [];
  const servedBy: Record<string, number> = {};
  const codes: Record<string, number> = {};
  let ok = 0;
  let next = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end && next < MAX_REQUESTS) {
        const body = replay[next++ % replay.length];
        const t = performance.now();
        try {
          const res = await fetch(`http://127.0.0.1:${port}/v1/models/flight-delay/predict`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-latency-budget-ms': String(BUDGET) },
            body,
            signal: AbortSignal.timeout(10_000),
          });
          const json = (await res.json()) as { served_by?: string; error?: { code: string } };
          if (res.status === 200) {
            ok++;
            servedBy[json.served_by!] = (servedBy[json.served_by!] ?? 0) + 1;
          } else codes[json.error?.code ?? String(res.status)] = (codes[json.error?.code ?? String(res.status)] ?? 0) + 1;
        } catch (e) {
          codes[(e as Error).name] = (codes[(e as Error).name] ?? 0) + 1;
        }
        lat.push(performance.now() - t);
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { requests: lat.length, ok, p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)], servedBy, codes };
}

const healthyOrigin = await freePort();
const slowOrigin = await freePort();
const workerPort = await freePort();
const origins = [startOrigin(healthyOrigin), startOrigin(slowOrigin, 40)];
await Promise.all([waitFor(`http://127.0.0.1:${healthyOrigin}/v2/health/ready`), waitFor(`http://127.0.0.1:${slowOrigin}/v2/health/ready`)]);

const base = { CACHE_MAX_BYTES: '0' };
const scenarios: { name: string; originHealthy: boolean; vars: Record<string, string> }[] = [
  { name: 'edge healthy', originHealthy: true, vars: { ...base, FALLBACK_URL: `http://127.0.0.1:${healthyOrigin}` } },
  { name: 'edge healthy, hedging on (p95)', originHealthy: true, vars: { ...base, FALLBACK_URL: `http://127.0.0.1:${healthyOrigin}`, HEDGE_QUANTILE: '0.95' } },
  { name: 'edge fails its load', originHealthy: true, vars: { ...base, FALLBACK_URL: `http://127.0.0.1:${healthyOrigin}`, FAIL_MODEL_LOAD: 'flight-delay' } },
  {
    name: 'edge fails, origin slow (+40 ms)',
    originHealthy: false,
    vars: { ...base, FALLBACK_URL: `http://127.0.0.1:${slowOrigin}`, FAIL_MODEL_LOAD: 'flight-delay' },
  },
  {
    name: 'edge healthy, origin slow, hedging on',
    originHealthy: false,
    vars: { ...base, FALLBACK_URL: `http://127.0.0.1:${slowOrigin}`, HEDGE_QUANTILE: '0.95' },
  },
];

const results: [string, boolean, Result][] = [];
try {
  for (const sc of scenarios) {
    progress(`${sc.name}: starting wrangler dev`);
    const w: ChildProcess = await startWorker(workerPort, sc.vars);
    try {
      await waitFor(`http://127.0.0.1:${workerPort}/v2/health/live`);
      await fetch(`http://127.0.0.1:${workerPort}/v2/health/ready`).then((r) => r.text()); // load the engine
      await drive(workerPort); // warm-up (JIT, connections, the hedging delay's latency digest)
      progress(`${sc.name}: ${SECONDS} s at concurrency ${CONCURRENCY}, budget ${BUDGET} ms`);
      results.push([sc.name, sc.originHealthy, await drive(workerPort)]);
    } finally {
      await stop(w);
    }
  }
} finally {
  await Promise.all(origins.map(stop));
}

const fmt = (m: Record<string, number>, n: number) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${((100 * v) / n).toFixed(1)}%`)
    .join(', ') || '-';
console.log(
  `\n## Fallback under faults: flight-delay, ${SECONDS} s per scenario, concurrency ${CONCURRENCY}, budget ${BUDGET} ms (${new Date().toISOString().slice(0, 10)})\n`,
);
console.log(
  markdownTable(
    ['scenario', 'requests', 'success', 'p50 ms', 'p99 ms', 'served by', 'failures'],
    results.map(([name, , r]) => [
      name,
      r.requests,
      `${((100 * r.ok) / r.requests).toFixed(2)}%`,
      r.p50.toFixed(2),
      r.p99.toFixed(2),
      fmt(r.servedBy, r.requests),
      fmt(r.codes, r.requests),
    ]),
  ),
);
const failedWithHealthyOrigin = results.filter(([, healthy, r]) => healthy && r.ok !== r.requests);
console.log(
  `\n${markdownTable(['target', 'measured', 'verdict'], [['origin healthy: zero failed requests in every fault scenario', failedWithHealthyOrigin.length ? failedWithHealthyOrigin.map(([n, , r]) => `${n}: ${r.requests - r.ok} failed`).join('; ') : 'none failed', failedWithHealthyOrigin.length ? 'MISSED' : 'met']])}`,
);
