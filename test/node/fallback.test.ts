// Budgets are generous (2 s) except where the budget is the point: these drills run four servers
// on two cores, and they test who answers, not how fast.
//
// Fault tests on real processes: the worker under `wrangler dev` and the origin (onnxruntime-node)
// as separate processes on 127.0.0.1, with the origin killed mid-run, slow, and restarted, and the
// edge engine made to fail its load. Every request must get exactly one answer, a 200 or a JSON 503
// with Retry-After, never a hang, and the counts of who served what must add up.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startOrigin, startWorker, stop, waitFor as waitForUrl } from '../support/servers.ts';
import { waitFor } from '../support/wait.ts';

const procs: ChildProcess[] = [];
const origin = (port: number, delayMs = 0) => {
  const p = startOrigin(port, delayMs);
  procs.push(p);
  return p;
};
const worker = async (port: number, vars: Record<string, string>) => {
  const p = await startWorker(port, vars);
  procs.push(p);
  return p;
};
const kill = stop;

interface Golden {
  rows: { inputs: Record<string, number | number[]> }[];
}
const flight = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/golden.json'), 'utf8')) as Golden;
const movies = JSON.parse(readFileSync(join(ROOT, 'models/movielens-topk/golden.json'), 'utf8')) as Golden;

/** A v2 infer body for golden row i, with an id to match the answer to the request. */
function v2Body(model: 'flight-delay' | 'movielens-topk', i: number, id: string): string {
  if (model === 'flight-delay') {
    const r = flight.rows[i % flight.rows.length].inputs;
    const inputs = ['month', 'day_of_week', 'hour', 'origin', 'destination'].map((name) => ({ name, datatype: 'INT64', shape: [1], data: [r[name]] }));
    inputs.push({ name: 'distance', datatype: 'FP32', shape: [1], data: [r.distance] });
    return JSON.stringify({ id, inputs });
  }
  const h = movies.rows[i % movies.rows.length].inputs.history as number[];
  return JSON.stringify({
    id,
    inputs: [
      { name: 'history', datatype: 'INT64', shape: [1, h.length], data: h },
      { name: 'k', datatype: 'INT64', shape: [1], data: [10] },
    ],
  });
}

interface Outcome {
  status: number;
  servedBy?: string;
  code?: string;
  message?: string;
  retryAfter?: string | null;
  ms: number;
}

/** Sends n requests with `concurrency` in flight; every answer is checked against its request id. */
async function drive(
  port: number,
  model: 'flight-delay' | 'movielens-topk',
  n: number,
  concurrency: number,
  budgetMs?: number,
  onSent?: (i: number) => void,
): Promise<Outcome[]> {
  const out: Outcome[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        onSent?.(i);
        const id = `req-${i}`;
        const t = performance.now();
        const res = await fetch(`http://127.0.0.1:${port}/v2/models/${model}/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(budgetMs ? { 'x-latency-budget-ms': String(budgetMs) } : {}) },
          body: v2Body(model, i, id),
          signal: AbortSignal.timeout(15_000),
        });
        // /v2 errors as the Open Inference Protocol has them: {"error": "<message>"}, the code beside it.
        const json = (await res.json()) as { id?: string; parameters?: { served_by: string }; error?: string; code?: string };
        if (res.status === 200) expect(json.id).toBe(id);
        out[i] = {
          status: res.status,
          servedBy: json.parameters?.served_by,
          code: json.code,
          message: json.error,
          retryAfter: res.headers.get('retry-after'),
          ms: performance.now() - t,
        };
      }
    }),
  );
  return out;
}

const OPERATOR = 'fallback-drills';
/** A worker's /stats for a model (operator token). */
const stats = async (port: number, model: string) =>
  (await (await fetch(`http://127.0.0.1:${port}/v1/models/${model}/stats`, { headers: { authorization: `Bearer ${OPERATOR}` } })).json()) as {
    engine: { error?: string };
    fallback: { breaker: { opened: number; rejected: number; state: string } };
  };

const count = (xs: Outcome[], f: (o: Outcome) => boolean) => xs.filter(f).length;
/** "200 edge: 190, 200 fallback: 10" — the assertion message when counts are off. */
const summary = (xs: Outcome[]) => {
  const m = new Map<string, number>();
  for (const o of xs) m.set(`${o.status} ${o.servedBy ?? o.code}`, (m.get(`${o.status} ${o.servedBy ?? o.code}`) ?? 0) + 1);
  const first = xs.find((o) => o.status !== 200);
  return [...m].map(([k, v]) => `${k}: ${v}`).join(', ') + (first ? `; first error: ${first.message}` : '');
};

let ports: { o1: number; o2: number; w1: number; w2: number };
let o1: ChildProcess;

const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;
const breakerOf = async (model: string) => (await stats(ports.w1, model)).fallback.breaker;

/**
 * W1's fallback as the drills that use it need it, whatever ran before: origin O1 up and ready,
 * and movielens-topk's breaker closed (after a kill it stays open until a trial call succeeds).
 */
async function healthyFallback(): Promise<void> {
  if (!running(o1)) {
    o1 = origin(ports.o1);
    await waitForUrl(`http://127.0.0.1:${ports.o1}/v2/health/ready`);
  }
  if ((await breakerOf('movielens-topk')).state === 'closed') return;
  // Open: wait out BREAKER_OPEN_MS, then one trial call (to the live origin) closes it.
  await waitFor(async () => ['half-open', 'closed'].includes((await breakerOf('movielens-topk')).state), {
    what: "movielens-topk's breaker on W1 to half-open",
    timeoutMs: 10_000,
  });
  await drive(ports.w1, 'movielens-topk', 1, 1, 2000);
  await waitFor(async () => (await breakerOf('movielens-topk')).state === 'closed', { what: "movielens-topk's breaker on W1 to close", timeoutMs: 10_000 });
}

beforeAll(async () => {
  ports = { o1: await freePort(), o2: await freePort(), w1: await freePort(), w2: await freePort() };
  o1 = origin(ports.o1);
  origin(ports.o2, 400); // a slow origin: 400 ms per inference
  // W1: flight-delay on the edge, movielens-topk's engine fails to load; both fall back to O1.
  await worker(ports.w1, {
    OPERATOR_TOKEN: OPERATOR,
    FALLBACK_URL: `http://127.0.0.1:${ports.o1}`,
    FAIL_MODEL_LOAD: 'movielens-topk',
    CACHE_MAX_BYTES: '0',
    BREAKER_FAILURES: '3',
    BREAKER_OPEN_MS: '1500',
    FALLBACK_TIMEOUT_MS: '1000',
  });
  // W2: flight-delay's engine fails to load and its fallback is the slow origin.
  await worker(ports.w2, {
    OPERATOR_TOKEN: OPERATOR,
    FALLBACK_URL: `http://127.0.0.1:${ports.o2}`,
    FAIL_MODEL_LOAD: 'flight-delay',
    CACHE_MAX_BYTES: '0',
    FALLBACK_RETRIES: '0',
  });
  await Promise.all([
    waitForUrl(`http://127.0.0.1:${ports.o1}/v2/health/ready`),
    waitForUrl(`http://127.0.0.1:${ports.o2}/v2/health/ready`),
    waitForUrl(`http://127.0.0.1:${ports.w1}/v2/health/live`),
    waitForUrl(`http://127.0.0.1:${ports.w2}/v2/health/live`),
  ]);
  // Load the edge engines before the drills (a cold load blocks the isolate for ~0.4 s; the
  // cold path itself is covered by the worker's tests). Readiness is 503 here by design: one
  // model of each worker fails its load (400: not ready).
  for (const w of [ports.w1, ports.w2]) await fetch(`http://127.0.0.1:${w}/v2/health/ready`);
}, 180_000);

afterAll(async () => {
  await Promise.all(procs.map(kill));
});

describe('hosted fallback and circuit breaker, real processes', () => {
  it('healthy edge: every request is answered by the edge', async () => {
    const out = await drive(ports.w1, 'flight-delay', 200, 8, 2000);
    expect(
      count(out, (o) => o.status === 200),
      summary(out),
    ).toBe(200);
    expect(count(out, (o) => o.servedBy === 'edge') + count(out, (o) => o.servedBy === 'fallback')).toBe(200);
    expect(
      count(out, (o) => o.servedBy === 'edge'),
      summary(out),
    ).toBe(200);
  });

  it('the engine fails its load: every request is served by the fallback, and /v2/health/ready says why', async () => {
    await healthyFallback();
    const out = await drive(ports.w1, 'movielens-topk', 150, 8, 2000);
    expect(
      count(out, (o) => o.status === 200 && o.servedBy === 'fallback'),
      summary(out),
    ).toBe(150);
    // The Open Inference Protocol: not ready is a 4xx; why is for operators only.
    const ready = await fetch(`http://127.0.0.1:${ports.w1}/v2/models/movielens-topk/ready`);
    expect(ready.status).toBe(400);
    const body = (await ready.json()) as { error: string; code: string };
    expect(body.code).toBe('model_unavailable');
    expect(body.error).not.toMatch(/FAIL_MODEL_LOAD/);
    expect((await stats(ports.w1, 'movielens-topk')).engine.error).toMatch(/FAIL_MODEL_LOAD/);
  });

  it('the origin killed mid-run: the healthy edge keeps answering; the failing model gets JSON 503s with Retry-After, fast, and the breaker opens', async () => {
    await healthyFallback();
    let killed: Promise<void> | undefined;
    const [edgeOut, fbOut] = await Promise.all([
      drive(ports.w1, 'flight-delay', 300, 4, 2000, (i) => {
        if (i === 100) killed = kill(o1);
      }),
      drive(ports.w1, 'movielens-topk', 200, 4, 2000),
    ]);
    await killed;
    expect(
      count(edgeOut, (o) => o.status === 200),
      summary(edgeOut),
    ).toBe(300);
    // Before the kill the fallback serves; after it, refusals are JSON 503s with Retry-After.
    expect(count(fbOut, (o) => o.status === 200) + count(fbOut, (o) => o.status === 503)).toBe(200);
    expect(count(fbOut, (o) => o.status === 503)).toBeGreaterThan(0);
    for (const o of fbOut.filter((x) => x.status === 503)) {
      expect(o.code).toBe('unavailable');
      expect(Number(o.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(o.ms).toBeLessThan(3000);
    }
    const s = await stats(ports.w1, 'movielens-topk');
    expect(s.fallback.breaker.opened).toBeGreaterThanOrEqual(1);
    expect(s.fallback.breaker.rejected).toBeGreaterThan(0);
  });

  it('the origin restarted: the breaker half-opens, closes, and the fallback serves again', async () => {
    // Its own starting point, whatever ran before: the origin down and the breaker opened by it.
    await kill(o1);
    await waitFor(
      async () => {
        await drive(ports.w1, 'movielens-topk', 1, 1, 2000);
        return (await breakerOf('movielens-topk')).state === 'open';
      },
      { what: "movielens-topk's breaker on W1 to open with the origin down", timeoutMs: 20_000, intervalMs: 0 },
    );
    o1 = origin(ports.o1);
    await waitForUrl(`http://127.0.0.1:${ports.o1}/v2/health/ready`);
    // BREAKER_OPEN_MS (1.5 s) after it opened, the breaker lets a trial call through.
    await waitFor(async () => (await breakerOf('movielens-topk')).state === 'half-open', {
      what: "movielens-topk's breaker on W1 to half-open",
      timeoutMs: 10_000,
    });
    const out = await drive(ports.w1, 'movielens-topk', 40, 2, 2000);
    expect(
      count(out.slice(5), (o) => o.status === 200 && o.servedBy === 'fallback'),
      summary(out),
    ).toBe(35);
    expect((await stats(ports.w1, 'movielens-topk')).fallback.breaker.state).toBe('closed');
  });

  it('a slow origin and a 150 ms budget: a clear 503 within about the budget, never a hang', async () => {
    const out = await drive(ports.w2, 'flight-delay', 20, 4, 150);
    for (const o of out) {
      expect(o.status, summary(out)).toBe(503);
      expect(o.code).toBe('unavailable');
      expect(
        o.message,
        out
          .filter((x) => !/budget/.test(x.message ?? ''))
          .map((x) => x.message)
          .join(' / '),
      ).toMatch(/budget/);
      expect(o.ms).toBeLessThan(1500);
    }
    // Running out of the caller's budget says nothing about the origin: the breaker stays closed,
    // and with a budget above the origin's 400 ms the same requests succeed via the fallback.
    const ok = await drive(ports.w2, 'flight-delay', 8, 4, 3000);
    expect(
      count(ok, (o) => o.status === 200 && o.servedBy === 'fallback'),
      summary(ok),
    ).toBe(8);
  });
});
