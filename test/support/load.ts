/**
 * Load for the soak test and bench/soak.ts: a seeded mix of valid requests to both models at
 * every batch size and of bad ones, and a closed-loop driver with a wall-clock bound. Every
 * planned request names the statuses that are right for it, so the driver can count the wrong
 * ones (a 500, a 200 for garbage) apart from the slow ones.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelManifest } from '../../core/index.ts';
import { rng } from '../../models/lib/rng.ts';
import { ROOT, rssBytes, startWorker, stop, waitFor, workerdPids, workerInspector } from './servers.ts';

const manifest = (name: string) => JSON.parse(readFileSync(join(ROOT, `models/${name}/manifest.json`), 'utf8')) as ModelManifest;
const flight = manifest('flight-delay');
const movies = manifest('movielens-topk');
const airports = (flight.features.find((f) => f.name === 'origin') as { vocabulary: string[] }).vocabulary;
const catalogue = (movies.features.find((f) => f.name === 'history') as { vocabulary: string[] }).vocabulary.map(Number);

export type Kind = 'flight' | 'flight-v2' | 'movies' | 'malformed-json' | 'wrong-type' | 'unknown-model' | 'huge-ids' | 'too-many-rows';

export interface Planned {
  kind: Kind;
  path: string;
  body: string;
  rows: number;
  /** Statuses that are correct answers to this request. */
  ok: (status: number) => boolean;
}

/** 200, or a 503 that refuses in time (deadline, overloaded): load may shed, never fail. */
const served = (s: number) => s === 200 || s === 503;
const refused = (s: number) => s >= 400 && s < 500;

/**
 * The next request of the mix for `seed`: 80% valid (flight-delay v1 and v2, movielens-topk v1;
 * 1..maxBatch rows, log-uniform), 20% bad. Inputs are
 * drawn fresh, so most miss the cache and some repeat (a pool of 512 flight rows).
 */
export function requestMix(seed: number, { maxRows }: { maxRows?: number } = {}): () => Planned {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const flightPool = Array.from({ length: 512 }, () => ({
    month: int(1, 12),
    day_of_week: int(0, 6),
    hour: int(0, 23),
    distance: int(60, 2800),
    origin: pick(airports),
    destination: pick(airports),
  }));
  const flightRow = () =>
    r() < 0.5
      ? pick(flightPool)
      : {
          month: int(1, 12),
          day_of_week: int(0, 6),
          hour: int(0, 23),
          distance: int(60, 2800),
          origin: r() < 0.05 ? 'ZZZ' : pick(airports),
          destination: pick(airports),
        };
  const movieRow = () => ({ history: Array.from({ length: int(1, 50) }, () => pick(catalogue)), k: int(1, 100) });
  // Log-uniform in [1, max]: every size occurs, full batches included, small ones most often
  // (as on a live edge), which keeps 10k requests within a couple of minutes on two cores.
  const rows = (max: number) => {
    const m = Math.min(max, maxRows ?? max);
    return Math.min(m, Math.floor(Math.exp(r() * Math.log(m + 1))));
  };
  return () => {
    const x = r();
    if (x < 0.4) {
      const n = rows(flight.serving.maxBatch);
      return {
        kind: 'flight',
        path: '/v1/models/flight-delay/predict',
        body: JSON.stringify({ instances: Array.from({ length: n }, flightRow) }),
        rows: n,
        ok: served,
      };
    }
    if (x < 0.5) {
      const n = rows(flight.serving.maxBatch);
      const names = ['month', 'day_of_week', 'hour', 'origin', 'destination'];
      const inputs: { name: string; datatype: string; shape: number[]; data: number[] }[] = names.map((name) => ({
        name,
        datatype: 'INT64',
        shape: [n],
        data: Array.from({ length: n }, () =>
          name === 'origin' || name === 'destination' ? int(0, airports.length) : name === 'month' ? int(1, 12) : name === 'hour' ? int(0, 23) : int(0, 6),
        ),
      }));
      inputs.push({ name: 'distance', datatype: 'FP32', shape: [n], data: Array.from({ length: n }, () => int(60, 2800)) });
      return { kind: 'flight-v2', path: '/v2/models/flight-delay/infer', body: JSON.stringify({ inputs }), rows: n, ok: served };
    }
    if (x < 0.8) {
      const n = rows(movies.serving.maxBatch);
      const k = int(1, 100);
      return {
        kind: 'movies',
        path: '/v1/models/movielens-topk/predict',
        body: JSON.stringify({ instances: Array.from({ length: n }, () => ({ ...movieRow(), k })) }),
        rows: n,
        ok: served,
      };
    }
    if (x < 0.84)
      return {
        kind: 'malformed-json',
        path: pick(['/v1/models/flight-delay/predict', '/v2/models/movielens-topk/infer']),
        body: '{"instances": [{"month": 4,',
        rows: 0,
        ok: refused,
      };
    if (x < 0.88)
      return {
        kind: 'wrong-type',
        path: '/v1/models/flight-delay/predict',
        body: JSON.stringify({ instances: [{ ...flightRow(), month: pick(['April', null, [4], { m: 4 }, true]) }] }),
        rows: 0,
        ok: refused,
      };
    if (x < 0.92)
      return {
        kind: 'unknown-model',
        path: `/v1/models/${pick(['nope', 'flight-delay-2', 'x'.repeat(200)])}/predict`,
        body: JSON.stringify({ instances: [flightRow()] }),
        rows: 0,
        ok: (s) => s === 404,
      };
    if (x < 0.96) {
      // Ids far outside the catalogue (ignored when served, or refused), and numbers past 2^53.
      // biome-ignore lint/correctness/noPrecisionLoss: a number past 2^53 on purpose (it must be refused)
      const history = Array.from({ length: int(1, 50) }, () => pick([1e300, 2 ** 53 + 2, -1, 1e21, 9_007_199_254_740_993, pick(catalogue)]));
      return {
        kind: 'huge-ids',
        path: '/v1/models/movielens-topk/predict',
        body: JSON.stringify({ instances: [{ history, k: 10 }] }),
        rows: 1,
        ok: (s) => served(s) || refused(s),
      };
    }
    const n = flight.serving.maxBatch + int(1, 64);
    return {
      kind: 'too-many-rows',
      path: '/v1/models/flight-delay/predict',
      body: JSON.stringify({ instances: Array.from({ length: n }, flightRow) }),
      rows: 0,
      ok: refused,
    };
  };
}

export interface Result {
  kind: Kind;
  status: number;
  /** 0 for an answer in time; otherwise why there was none (a timeout, a reset). */
  error?: string;
  ok: boolean;
  ms: number;
  code?: string;
}

/**
 * Sends `n` requests from `next` with `concurrency` in flight, each with its own timeout; stops
 * early (leaving the rest unsent) once `until` (performance.now()) has passed.
 */
export async function drive(
  base: string,
  next: () => Planned,
  {
    n,
    concurrency,
    until = Infinity,
    timeoutMs = 15_000,
    headers = {},
  }: { n: number; concurrency: number; until?: number; timeoutMs?: number; headers?: Record<string, string> },
): Promise<Result[]> {
  const out: Result[] = [];
  let sent = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < n && performance.now() < until) {
        sent++;
        const p = next();
        const t = performance.now();
        try {
          const res = await fetch(base + p.path, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...headers },
            body: p.body,
            signal: AbortSignal.timeout(timeoutMs),
          });
          const text = await res.text();
          let code: string | undefined;
          try {
            const e = (JSON.parse(text) as { error?: { code?: string } | string }).error;
            code = typeof e === 'string' ? e : e?.code;
          } catch {
            code = 'non-json';
          }
          out.push({ kind: p.kind, status: res.status, ok: p.ok(res.status) && code !== 'non-json', ms: performance.now() - t, code });
        } catch (e) {
          out.push({ kind: p.kind, status: 0, error: (e as Error).name ?? String(e), ok: false, ms: performance.now() - t });
        }
      }
    }),
  );
  return out;
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** "flight 200: 3990, flight 503: 10, malformed-json 400: 400, ..." */
export function tally(results: Result[]): string {
  const m = new Map<string, number>();
  for (const r of results) {
    const k = `${r.kind} ${r.status || r.error}${r.code && r.status !== 200 ? ` ${r.code}` : ''}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return [...m]
    .sort()
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
}

export interface SoakOptions {
  port: number;
  /** Worker settings (wrangler --var). */
  vars?: Record<string, string>;
  warmup: number;
  requests: number;
  concurrency: number;
  /** RSS is read after every `every` requests of the measured part. */
  every?: number;
  /** Wall-clock bound for the warm-up and the measured part together, ms. */
  budgetMs: number;
  seed?: number;
  /** The checkout wrangler runs (startWorker's cwd). */
  cwd?: string;
  /** The requests to send (default: requestMix(seed)). */
  mix?: () => Planned;
}

export interface SoakReport {
  /** At rest after each chunk: the user worker's workerd RSS, wrangler's proxy workerd RSS, the worker's JS heap used, ArrayBuffer backing stores, and WebAssembly memory (ort-web's heap). */
  samples: { requests: number; pid: number; rssMiB: number; proxyMiB: number; heapMiB: number; backingMiB: number; wasmMiB: number }[];
  results: Result[];
  /** Requests sent in the measured part (fewer than asked when the time bound cut it short). */
  measured: number;
  elapsedMs: number;
  /**
   * User workerd processes seen (pids): more than one means wrangler restarted the worker during
   * the run (it reloads when a source file changes), and RSS figures across a restart do not compare.
   */
  workerPids: number[];
  /** The worker's own figures at the end, per model (cache, telemetry, engine). */
  stats: Record<string, unknown>;
}

/**
 * Starts `wrangler dev` (startWorker), loads both engines, sends `warmup` requests of the mix,
 * reads workerd's RSS after a second at rest, then sends `requests` more in chunks of `every`,
 * reading RSS after each chunk at rest, within `budgetMs` in all. The worker is stopped at the end.
 */
export async function soak({ port, vars = {}, warmup, requests, concurrency, every = 1000, budgetMs, seed = 11, cwd, mix }: SoakOptions): Promise<SoakReport> {
  const child = await startWorker(port, { OPERATOR_TOKEN: 'soak-operator', ...vars }, { cwd });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${base}/v2/health/ready`, 90_000);
    const inspector = await workerInspector(child);
    const workerPids: number[] = [];
    const MiB = 2 ** 20;
    const rss = async (requests: number) => {
      await new Promise((r) => setTimeout(r, 1000)); // the measurement: memory after a second at rest, not a wait for work
      const pids = workerdPids(child);
      if (pids.worker === undefined) throw new Error("no user workerd (started with --inspector-addr) in the worker's process group");
      if (!workerPids.includes(pids.worker)) workerPids.push(pids.worker);
      const heap = await inspector.heap().catch((e: unknown) => {
        console.error(`soak: no heap reading at ${requests} requests: ${e}`);
        return { used: NaN, backing: NaN, wasm: NaN };
      });
      return {
        requests,
        pid: pids.worker,
        rssMiB: (rssBytes(pids.worker) ?? NaN) / MiB,
        proxyMiB: (pids.proxy ? (rssBytes(pids.proxy) ?? NaN) : NaN) / MiB,
        heapMiB: heap.used / MiB,
        backingMiB: heap.backing / MiB,
        wasmMiB: heap.wasm / MiB,
      };
    };
    const next = mix ?? requestMix(seed);
    const t0 = performance.now();
    const until = t0 + budgetMs;
    const samples = [await rss(0)];
    const results: Result[] = [];
    results.push(...(await drive(base, next, { n: warmup, concurrency, until })));
    samples.push(await rss(results.length));
    let measured = 0;
    while (measured < requests && performance.now() < until) {
      const chunk = await drive(base, next, { n: Math.min(every, requests - measured), concurrency, until });
      measured += chunk.length;
      results.push(...chunk);
      samples.push(await rss(results.length));
    }
    const stats: Record<string, unknown> = {};
    for (const m of ['flight-delay', 'movielens-topk']) {
      const s = (await (await fetch(`${base}/v1/models/${m}/stats`, { headers: { authorization: 'Bearer soak-operator' } })).json()) as Record<string, unknown>;
      stats[m] = { cache: s.cache, telemetry: s.telemetry, engine: s.engine };
    }
    inspector.close();
    return { samples, results, measured, elapsedMs: performance.now() - t0, workerPids, stats };
  } finally {
    await stop(child);
  }
}

/** Requests that reach the worker and touch no model, cache or telemetry (a 404 JSON each): what the runtime itself keeps per request. */
export const noModelMix = (): Planned => ({
  kind: 'unknown-model',
  path: '/v1/models/none/predict',
  body: '{"instances": [{}]}',
  rows: 0,
  ok: (s) => s === 404,
});
