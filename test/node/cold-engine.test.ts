// A cold edge engine with a hosted fallback, on real processes: `wrangler dev` with FALLBACK_URL
// pointing at the origin (onnxruntime-node). The README's promise: the first request in an
// isolate goes to the fallback while the engine loads afterwards (in waitUntil, after the answer
// is on its way), and once loaded the edge serves. The worker's first request is the inference
// itself: any answer may start loading the engines, so nothing is asked of the worker before
// (waitForPort only connects; wrangler's proxy holds the request until the worker is up).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startOrigin, startWorker, stop, waitFor, waitForPort } from '../support/servers.ts';

const flight = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/golden.json'), 'utf8')) as { rows: { features: Record<string, unknown> }[] };
const movies = JSON.parse(readFileSync(join(ROOT, 'models/movielens-topk/golden.json'), 'utf8')) as { rows: { features: Record<string, unknown> }[] };

const procs: ChildProcess[] = [];
let origin: number;

beforeAll(async () => {
  origin = await freePort();
  procs.push(startOrigin(origin));
  await waitFor(`http://127.0.0.1:${origin}/v2/health/ready`);
}, 120_000);

afterAll(async () => {
  await Promise.all(procs.map(stop));
});

async function coldWorker(vars: Record<string, string> = {}): Promise<number> {
  const port = await freePort();
  procs.push(await startWorker(port, { FALLBACK_URL: `http://127.0.0.1:${origin}`, CACHE_MAX_BYTES: '0', OPERATOR_TOKEN: 'cold-op', ...vars }));
  await waitForPort(port);
  return port;
}

async function predict(port: number, model: string, features: Record<string, unknown>, budgetMs?: number, timeoutMs = 10_000) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/models/${model}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(budgetMs ? { 'x-latency-budget-ms': String(budgetMs) } : {}) },
    body: JSON.stringify({ instances: [features] }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const json = (await res.json()) as { served_by?: string; error?: { code: string; message: string } };
  return { status: res.status, servedBy: json.served_by, error: json.error };
}

/** Requests one after another, 50 ms apart, until the edge answers (at most `n`); who served each. */
async function untilEdge(port: number, model: string, rows: { features: Record<string, unknown> }[], n: number, budgetMs?: number) {
  const seen: string[] = [];
  for (let i = 1; i <= n; i++) {
    const r = await predict(port, model, rows[i % rows.length].features, budgetMs);
    seen.push(r.status === 200 ? r.servedBy! : `${r.status} ${r.error?.code}: ${r.error?.message}`);
    if (r.servedBy === 'edge') break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return seen;
}

describe('cold engine with a hosted fallback (wrangler dev + origin)', () => {
  // One fresh worker per model, so that each model's request is the first of its isolate (any
  // answer may start loading every engine, so only the isolate's first request finds it cold).
  const cases = [
    ['flight-delay', flight.rows],
    ['movielens-topk', movies.rows],
  ] as const;

  it('the first request is served by the fallback; the engine then loads and the edge serves the next ones', async () => {
    const ports = await Promise.all(cases.map(() => coldWorker()));
    for (const [i, [model, rows]] of cases.entries()) {
      const first = await predict(ports[i], model, rows[0].features, 2000, 90_000);
      expect(first, `${model}: ${JSON.stringify(first)}`).toMatchObject({ status: 200, servedBy: 'fallback' });
      // The load runs after the first answer; a few requests later the edge answers.
      const later = await untilEdge(ports[i], model, rows, 20, 2000);
      expect(later.at(-1), later.join(' / ')).toBe('edge');
      expect(later.length).toBeLessThanOrEqual(10);
      for (let j = 0; j < 5; j++) expect((await predict(ports[i], model, rows[j].features, 2000)).servedBy).toBe('edge');
      const stats = (await (await fetch(`http://127.0.0.1:${ports[i]}/v1/models/${model}/stats`, { headers: { authorization: 'Bearer cold-op' } })).json()) as {
        engine: { state: string };
        fallback: { successes: number };
      };
      expect(stats.engine.state).toBe('ready');
      expect(stats.fallback.successes).toBe(1);
    }
  }, 120_000);

  // The claim is a wall-clock one (50 ms through two processes) on a shared 2-core machine where
  // other test files run beside it: a fresh pair of isolates gets up to two more tries.
  it('at the default budgets (50 and 100 ms): the first request is answered by the fallback, and the edge takes over', {
    retry: 2,
    timeout: 120_000,
  }, async () => {
    const ports = await Promise.all(cases.map(() => coldWorker()));
    for (const [i, [model, rows]] of cases.entries()) {
      const first = await predict(ports[i], model, rows[0].features, undefined, 90_000);
      expect(first, `${model}: ${JSON.stringify(first)}`).toMatchObject({ status: 200, servedBy: 'fallback' });
      const later = await untilEdge(ports[i], model, rows, 40);
      expect(later.at(-1), later.join(' / ')).toBe('edge');
    }
  });
});
