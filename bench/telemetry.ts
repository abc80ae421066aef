// npm run bench:telemetry — what drift telemetry costs, measured side by side in one run:
//
// 1. The added per-request cost of sketching. (a) End to end: two `wrangler dev` processes on
//    127.0.0.1, TELEMETRY=off and on (cache off, so every request reaches the engine), the same
//    replayed one-row requests sent to both, alternating which goes first, so machine noise hits
//    both alike: p50/p99 and the relative difference of p50 with a bootstrap 95% interval.
//    (b) In the isolate: the profiler's observe() + tick() as telemetry() runs it (bench route)
//    against the engine's inference of one row (the existing /v1/models/{name}/bench route),
//    timed from outside as (wall time of N runs − 0 or 1 run) / N, best of 5.
// 2. Summary bytes per flush: encodeSummary of a window of real rows and outputs (100, 1,000,
//    2,000 rows) against the same rows as JSON lines (raw and gzipped).
// 3. One DriftAggregator object's ingest rate over RPC with its real SQLite storage under
//    wrangler dev: realistic summaries (500-row windows of real rows, 50 sources, 5 s windows).
//    Ingest defers work (it stores each summary as a pending row and merges it in memory; the
//    pending rows are folded into their minute buckets before any read and on alarms), so it is
//    reported twice: (a) ingest alone, as the sender sees it, and (b) sustained: the same N
//    summaries ingested and then folded (a minutes() read on the object forces the fold),
//    N / (ingest + fold). Then the same again as retries (duplicates); an RPC floor (the same
//    bytes with a bad magic byte, refused at decode's first check). All of that one summary per
//    ingest() call, then again through ingestMany in batches of 32 (a full edge outbox), 8 and 1
//    (how an isolate's flush ships them: one ingestMany call per model), with batched retries and
//    a batched floor; stored bytes; and where the time goes (decode, in-memory merge, SQL at ingest; encode and SQL at the fold) replayed in
//    this Node process.
//
// Options: --pairs 1500 (per model), --seconds 36 (cap per model), --rounds 3, --summaries 1500,
// --repeats 1 (fresh objects for the c=16 ingest + fold; the table shows the median), --quick,
// --only aggregator (part 3 alone: one wrangler dev process, TELEMETRY=off; the summaries' latency
// digests come from 200 warm-up requests instead of part 1's end-to-end run)
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  createWindowProfiler,
  decodeSummary,
  encodeInstances,
  encodeSummary,
  mergeInto,
  type BuiltManifest,
  type ObservedRow,
  type Profile,
} from '../core/index.ts';
import { BENCH_CONFIG, freePort, ROOT, startWorker, stop, waitFor } from '../test/support/servers.ts';
import { streamProfile, type StreamOptions } from './worker/routes.ts';
import { rng } from '../models/lib/rng.ts';
import { markdownTable, progress } from './lib/report.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const QUICK = args.includes('--quick');
const PAIRS = Number(opt('pairs', QUICK ? '300' : '1500'));
const SECONDS = Number(opt('seconds', QUICK ? '10' : '36'));
const SUMMARIES = Number(opt('summaries', QUICK ? '300' : '1500'));
const REPEATS = Math.max(1, Number(opt('repeats', '1')));
const ONLY = args.includes('--only') ? opt('only', '') : '';
if (ONLY && ONLY !== 'aggregator') {
  console.error(`--only ${ONLY}: only "aggregator" (part 3) can run alone`);
  process.exit(2);
}
const AGG_ONLY = ONLY === 'aggregator';
/** Pairs of processes the end-to-end comparison is split over. */
const ROUNDS = Number(opt('rounds', '3'));
/** A generous budget, so that no request is refused for its deadline on this loaded machine (refusals are faster and would flatter either side). */
const BUDGET_MS = 1000;
const MODELS = ['flight-delay', 'movielens-topk'] as const;
type Model = (typeof MODELS)[number];
const started = Date.now();

const manifests = Object.fromEntries(
  MODELS.map((m) => [m, JSON.parse(readFileSync(join(ROOT, 'models', m, 'manifest.json'), 'utf8')) as BuiltManifest]),
) as Record<Model, BuiltManifest>;
const replay = Object.fromEntries(
  MODELS.map((m) => [
    m,
    readFileSync(join(ROOT, 'models', m, manifests[m].replay.file), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { features: Record<string, unknown> }).features),
  ]),
) as Record<Model, Record<string, unknown>[]>;

// --- helpers ------------------------------------------------------------------------------------
async function post(port: number, path: string, body: unknown): Promise<{ status: number; json: any; ms: number }> {
  const t = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-latency-budget-ms': '10000' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const json = await res.json();
  return { status: res.status, json, ms: performance.now() - t };
}

async function must(port: number, path: string, body: unknown): Promise<{ json: any; ms: number }> {
  const r = await post(port, path, body);
  if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
  return r;
}

/** Best (smallest) wall time of `reps` calls, ms. */
async function best(reps: number, fn: () => Promise<{ ms: number }>): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < reps; i++) b = Math.min(b, (await fn()).ms);
  return b;
}

const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** Relative difference of the p-quantile (on / off − 1) with a percentile-bootstrap 95% interval. */
function relDiff(off: number[], on: number[], p: number, resamples = 400): { d: number; lo: number; hi: number } {
  const r = rng(7);
  const pick = (xs: number[]) => q(sortNum(Array.from(xs, () => xs[Math.floor(r() * xs.length)])), p);
  const ds: number[] = [];
  for (let i = 0; i < resamples; i++) ds.push(pick(on) / pick(off) - 1);
  ds.sort((a, b) => a - b);
  return { d: q(sortNum(on), p) / q(sortNum(off), p) - 1, lo: q(ds, 0.025), hi: q(ds, 0.975) };
}

const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

// --- the two workers ------------------------------------------------------------------------------
const base = { CACHE_MAX_BYTES: '0' };
const children: ChildProcess[] = [];
const stopAll = async () => {
  await Promise.all(children.map(stop));
  children.length = 0;
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)));

interface E2E {
  off: number[];
  on: number[];
  errors: number;
  /** Δ p50 per pair of processes (a process's own speed is part of the noise). */
  rounds: number[];
}
const e2e: Partial<Record<Model, E2E>> = {};
const rowsOf: Partial<Record<Model, { instances: Record<string, unknown>[]; predictions: Record<string, unknown>[] }>> = {};
const hot: Partial<Record<Model, { sketchUs: number; inferUs: number; sessionUs: number; flushed: number; flushedBytes: number; runs: number }>> = {};
interface IngestRun {
  mode: 'ingest' | 'fold' | 'sustained' | 'retries' | 'reject floor' | 'read floor';
  what: string;
  concurrency: number;
  /** Summaries per ingestMany call; undefined: one ingest() call per summary. */
  batch?: number;
  /** RPCs made. */
  calls?: number;
  done: number;
  statuses: Record<string, number>;
  ms: number;
  rate: number;
}
interface Sustained {
  concurrency: number;
  batch?: number;
  ingest: IngestRun;
  fold: IngestRun;
  sustained: IngestRun;
}
const ingest: Partial<
  Record<
    Model,
    {
      meanBytes: number;
      runs: IngestRun[];
      repeats: Sustained[];
      batched: Record<number, Sustained[]>;
      stored: { buckets: number; bytes: number; counters: Record<string, number> } | null;
      bases: string[];
      stream: StreamOptions;
    }
  >
> = {};
/** Client latencies of the warm-up requests (--only aggregator), for the summaries' latency digests. */
const warmLat: Partial<Record<Model, number[]>> = {};
const latOf = (m: Model): number[] => e2e[m]?.on ?? warmLat[m]!;
let emptyIngestMs = 0;
let emptyFoldMs = 0;
const loads: { at: string; load: number[] }[] = [];
const markLoad = (at: string) => loads.push({ at, load: loadavg().map((x) => Number(x.toFixed(2))) });
let OFF = 0;
let ON = 0;

async function startPair(round: number): Promise<void> {
  OFF = await freePort();
  ON = await freePort();
  progress(`round ${round + 1}/${ROUNDS}: starting two wrangler dev processes, telemetry off (:${OFF}) and on (:${ON})`);
  children.push(await startWorker(OFF, { ...base, TELEMETRY: 'off' }, { config: BENCH_CONFIG }));
  children.push(await startWorker(ON, { ...base }, { config: BENCH_CONFIG }));
  await Promise.all([waitFor(`http://127.0.0.1:${OFF}/v2/health/ready`, 120_000), waitFor(`http://127.0.0.1:${ON}/v2/health/ready`, 120_000)]);
}

/** Real outputs for every replayed row, in batches; asked of every worker alike, so that all have done the same work before they are compared. */
async function predictAll(ports: number[]): Promise<void> {
  for (const m of MODELS) {
    progress(`${m}: predictions for ${replay[m].length} replayed rows (from ${ports.length === 1 ? 'the worker' : 'both workers'})`);
    const predictions: Record<string, unknown>[] = [];
    const step = manifests[m].serving.maxBatch;
    for (let i = 0; i < replay[m].length; i += step) {
      const { json } = await must(ports[0], `/v1/models/${m}/predict`, { instances: replay[m].slice(i, i + step) });
      for (const port of ports.slice(1)) await must(port, `/v1/models/${m}/predict`, { instances: replay[m].slice(i, i + step) });
      predictions.push(...(json.predictions as Record<string, unknown>[]));
    }
    rowsOf[m] = { instances: replay[m], predictions };
  }
}

markLoad('start');
try {
  if (AGG_ONLY) {
    OFF = await freePort();
    progress(`part 3 only: starting one wrangler dev process, telemetry off (:${OFF})`);
    children.push(await startWorker(OFF, { ...base, TELEMETRY: 'off' }, { config: BENCH_CONFIG }));
    await waitFor(`http://127.0.0.1:${OFF}/v2/health/ready`, 120_000);
    await predictAll([OFF]);
    for (const m of MODELS) {
      progress(`${m}: warm-up, 200 one-row requests (their latencies go into the summaries)`);
      const lat: number[] = [];
      for (let i = 0; i < 200; i++) lat.push((await must(OFF, `/v1/models/${m}/predict`, { instances: [replay[m][(i * 13) % replay[m].length]] })).ms);
      warmLat[m] = lat;
    }
  }
  for (let round = 0; round < (AGG_ONLY ? 0 : ROUNDS); round++) {
    await startPair(round);
    if (round === 0) await predictAll([OFF, ON]);

    // 1a. End to end, alternating.
    for (const m of MODELS) {
      const bodies = replay[m].map((f) => JSON.stringify({ instances: [f] }));
      const send = async (port: number, body: string) => {
        const t = performance.now();
        const res = await fetch(`http://127.0.0.1:${port}/v1/models/${m}/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-latency-budget-ms': String(BUDGET_MS) },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        await res.text();
        return { ms: performance.now() - t, ok: res.status === 200 };
      };
      progress(`${m}: warm-up, 200 requests to each worker`);
      for (let i = 0; i < 200; i++) for (const port of [OFF, ON]) await send(port, bodies[(i * 13) % bodies.length]);
      const pairs = Math.ceil(PAIRS / ROUNDS);
      progress(`${m}: end to end, up to ${pairs} alternated pairs or ${(SECONDS / ROUNDS).toFixed(0)} s`);
      const r = (e2e[m] ??= { off: [], on: [], errors: 0, rounds: [] });
      const off: number[] = [];
      const on: number[] = [];
      const end = performance.now() + (SECONDS / ROUNDS) * 1000;
      let lastReport = performance.now();
      for (let i = 0; i < pairs && performance.now() < end; i++) {
        const body = bodies[(round * pairs + i) % bodies.length];
        for (const port of i % 2 ? [OFF, ON] : [ON, OFF]) {
          const x = await send(port, body);
          (port === OFF ? off : on).push(x.ms);
          if (!x.ok) r.errors++;
        }
        if (performance.now() - lastReport > 5000) {
          lastReport = performance.now();
          progress(`${m}: ${i + 1} pairs`);
        }
      }
      r.off.push(...off);
      r.on.push(...on);
      r.rounds.push(q(sortNum(on), 0.5) / q(sortNum(off), 0.5) - 1);
    }
    if (round < ROUNDS - 1) {
      progress('stopping the pair');
      await stopAll();
    }
  }

  // 1b. The hot path inside the isolate (off worker; the routes do not depend on TELEMETRY).
  for (const m of AGG_ONLY ? [] : MODELS) {
    const n = 256;
    const { instances, predictions } = rowsOf[m]!;
    const latencies = sortNum(e2e[m]!.on).filter((_, i) => i % 7 === 0);
    const sketchRuns = QUICK ? 4000 : m === 'flight-delay' ? 20_000 : 10_000;
    const sketch = (runs: number) => JSON.stringify({ model: m, instances: instances.slice(0, n), predictions: predictions.slice(0, n), latencies, runs });
    progress(`${m}: in-isolate hot path, observe + tick × ${sketchRuns}`);
    const full = sketch(sketchRuns);
    const empty = sketch(0);
    const warm = await must(OFF, '/v1/bench/telemetry/sketch', full);
    const tN = await best(5, () => must(OFF, '/v1/bench/telemetry/sketch', full));
    const t0 = await best(5, () => must(OFF, '/v1/bench/telemetry/sketch', empty));
    const inferRuns = QUICK ? 500 : 2000;
    progress(`${m}: in-isolate inference, one row × ${inferRuns} (batcher + session.run, and session.run alone)`);
    const viaEngine = (runs: number) => JSON.stringify({ instances: instances.slice(0, n), runs, concurrency: 1 });
    await must(OFF, `/v1/models/${m}/bench`, viaEngine(inferRuns));
    const eN = await best(5, () => must(OFF, `/v1/models/${m}/bench`, viaEngine(inferRuns + 1)));
    const e1 = await best(5, () => must(OFF, `/v1/models/${m}/bench`, viaEngine(1)));
    const session = (runs: number) => JSON.stringify({ instances: instances.slice(0, 1), runs });
    const sN = await best(5, () => must(OFF, `/v1/models/${m}/bench`, session(inferRuns + 1)));
    const s1 = await best(5, () => must(OFF, `/v1/models/${m}/bench`, session(1)));
    hot[m] = {
      sketchUs: ((tN - t0) / sketchRuns) * 1000,
      inferUs: ((eN - e1) / inferRuns) * 1000,
      sessionUs: ((sN - s1) / inferRuns) * 1000,
      flushed: warm.json.flushed,
      flushedBytes: warm.json.bytes,
      runs: sketchRuns,
    };
  }

  // 3. Ingest into one DriftAggregator object (off worker: its own telemetry does not flush).
  markLoad('part 3 start');
  const run = `${Date.now().toString(36)}`;
  emptyIngestMs = Infinity;
  for (const m of MODELS) {
    const { instances, predictions } = rowsOf[m]!;
    progress(`${m}: building ${SUMMARIES} summaries (64 distinct 500-row windows, 50 sources, 5 s windows)`);
    const prep = await must(OFF, '/v1/bench/telemetry/summaries', {
      model: m,
      instances,
      predictions,
      latencies: latOf(m),
      count: SUMMARIES,
      distinct: 64,
      rowsPerWindow: 500,
      sources: 50,
      windowMs: 5000,
    });
    const token = prep.json.token as string;
    if (emptyIngestMs === Infinity) {
      // Baselines: the same request doing no ingest (no RPC), and a fold of an object with nothing pending (one RPC, no fold work).
      emptyIngestMs = await best(5, () => must(OFF, '/v1/bench/telemetry/ingest', { token, model: m, object: `bench-${run}-empty`, count: 0 }));
      emptyFoldMs = await best(5, () => must(OFF, '/v1/bench/telemetry/fold', { object: `bench-${run}-empty` }));
    }
    const runs: IngestRun[] = [];
    const ingestRun = async (
      mode: IngestRun['mode'],
      what: string,
      object: string,
      concurrency: number,
      count: number,
      probe?: 'reject' | 'read',
      batch?: number,
    ): Promise<IngestRun> => {
      progress(`${m}: ${what}: ${count} into ${object} at concurrency ${concurrency}${batch ? `, ingestMany of ${batch}` : ''}`);
      const r = await must(OFF, '/v1/bench/telemetry/ingest', { token, model: m, object, concurrency, count, maxMs: 60_000, probe, batch });
      const ms = Math.max(0.001, r.ms - emptyIngestMs);
      if (r.json.reason && !probe) progress(`${m}: rejected: ${r.json.reason}`);
      return { mode, what, concurrency, batch, calls: r.json.calls, done: r.json.done, statuses: r.json.statuses, ms, rate: r.json.done / (ms / 1000) };
    };
    /** N new summaries into a fresh object, then the fold that a read forces: ingest alone, fold, and sustained (N / both). */
    const sustainedRun = async (object: string, concurrency: number, count: number, batch?: number): Promise<Sustained> => {
      const ing = await ingestRun('ingest', 'ingest alone (as the sender sees it)', object, concurrency, count, undefined, batch);
      progress(`${m}: fold of ${object} (minutes())`);
      const f = await must(OFF, '/v1/bench/telemetry/fold', { object });
      const foldMs = Math.max(0.001, f.ms - emptyFoldMs);
      const stored = ing.statuses.stored ?? 0;
      const fold: IngestRun = {
        mode: 'fold',
        what: 'fold of those (a minutes() read)',
        concurrency: 1,
        batch,
        calls: 1,
        done: stored,
        statuses: { [`into ${f.json.buckets} buckets`]: stored },
        ms: foldMs,
        rate: stored / (foldMs / 1000),
      };
      const total = ing.ms + foldMs;
      const sus: IngestRun = {
        mode: 'sustained',
        what: 'sustained: ingest + fold',
        concurrency,
        batch,
        calls: (ing.calls ?? 0) + 1,
        done: stored,
        statuses: { stored },
        ms: total,
        rate: stored / (total / 1000),
      };
      return { concurrency, batch, ingest: ing, fold, sustained: sus };
    };
    const pushSustained = (x: Sustained, label = '') =>
      runs.push({ ...x.ingest, what: x.ingest.what + label }, { ...x.fold, what: x.fold.what + label }, { ...x.sustained, what: x.sustained.what + label });
    if (m === 'flight-delay') pushSustained(await sustainedRun(`bench-${run}-${m}-c1`, 1, Math.min(SUMMARIES, 500)));
    /** REPEATS fresh objects at c=16 (one ingest() per summary, or ingestMany of `batch`); pushes the median's rows, answers all and the median's object. */
    const repeated = async (batch?: number): Promise<{ all: Sustained[]; object: string }> => {
      const all: Sustained[] = [];
      const name = (i: number) => `bench-${run}-${m}-c16${batch ? `-b${batch}` : ''}-${i}`;
      for (let i = 0; i < REPEATS; i++) all.push(await sustainedRun(name(i), 16, SUMMARIES, batch));
      const order = all.map((x, i) => [x.sustained.rate, i]).sort((a, b) => a[0] - b[0]);
      const median = order[Math.floor((order.length - 1) / 2)][1];
      pushSustained(
        all[median],
        REPEATS > 1 ? ` (median of ${REPEATS} fresh objects by sustained rate; sustained ${order.map(([r]) => r.toFixed(0)).join(', ')}/s)` : '',
      );
      return { all, object: name(median) };
    };
    const { all: repeats, object: obj16 } = await repeated();
    runs.push(await ingestRun('retries', 'retries (duplicates)', obj16, 16, SUMMARIES));
    runs.push(
      await ingestRun(
        'reject floor',
        'floor: the same bytes with a bad magic byte (refused at once: RPC, clone, one counter write)',
        `bench-${run}-${m}-probe`,
        16,
        SUMMARIES,
        'reject',
      ),
    );
    runs.push(await ingestRun('read floor', 'floor: as many counters() reads (RPC only, nothing written)', obj16, 16, SUMMARIES, 'read'));
    // As an edge isolate ships them: one ingestMany call per flush and model, a full outbox (32),
    // a partial one (8), and a single window (1, the steady state of an isolate whose flushes keep up).
    const batched: Record<number, Sustained[]> = {};
    for (const batch of [32, 8, 1]) {
      const { all, object } = await repeated(batch);
      batched[batch] = all;
      if (batch === 32) runs.push(await ingestRun('retries', 'retries (duplicates)', object, 16, SUMMARIES, undefined, batch));
    }
    runs.push(
      await ingestRun(
        'reject floor',
        'floor: the same bytes with a bad magic byte (refused at once: RPC, clone, one counter write per summary)',
        `bench-${run}-${m}-probe-b32`,
        16,
        SUMMARIES,
        'reject',
        32,
      ),
    );
    const st = await fetch(`http://127.0.0.1:${OFF}/v1/bench/telemetry/stored?object=${encodeURIComponent(obj16)}`).then((r) => r.json() as Promise<any>);
    const stored = st?.buckets
      ? { buckets: st.buckets.length, bytes: (st.buckets as { bytes: number }[]).reduce((a, b) => a + b.bytes, 0), counters: st.counters }
      : null;
    ingest[m] = { meanBytes: prep.json.bytes.total / SUMMARIES, runs, repeats, batched, stored, bases: prep.json.bases, stream: prep.json.stream };
  }
  markLoad('part 3 end');
} finally {
  progress('stopping the workers');
  await stopAll();
}

// --- 2. Summary bytes per flush (Node, the same core code, real rows and outputs) ----------------------
interface Bytes {
  model: Model;
  rows: number;
  summary: number;
  summaryGz: number;
  json: number;
  jsonGz: number;
}
const bytes: Bytes[] = [];
for (const m of AGG_ONLY ? [] : MODELS) {
  const { instances, predictions } = rowsOf[m]!;
  const enc = encodeInstances(manifests[m], { instances }, { maxBatch: 100_000 });
  const lat = e2e[m]!.on;
  for (const n of [100, 1000, 2000]) {
    const profiler = createWindowProfiler({ source: { kind: 'edge', id: 'edge-1a2b3c4d' }, windowMs: Number.MAX_SAFE_INTEGER, maxRows: n + 1 });
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      profiler.observe(
        manifests[m],
        manifests[m].version,
        [{ features: enc.observed[i], outputs: predictions[i] as ObservedRow['outputs'] }],
        lat[i % lat.length],
        'edge',
      );
      lines.push(
        JSON.stringify({
          time: Date.now(),
          features: instances[i],
          outputs: predictions[i],
          latency_ms: Number(lat[i % lat.length].toFixed(3)),
          served_by: 'edge',
        }),
      );
    }
    profiler.closeAll();
    const s = profiler.take()[0].bytes;
    const raw = Buffer.from(`${lines.join('\n')}\n`);
    bytes.push({ model: m, rows: n, summary: s.length, summaryGz: gzipSync(s).length, json: raw.length, jsonGz: gzipSync(raw).length });
  }
}

// --- 3b. Where the time goes: the same stream replayed through the same steps in Node --------------
interface Breakdown {
  /** Per summary, at ingest: decode (validation), the in-memory merge into the minute's accumulator, the SQL statements (ms, totals). */
  decode: number;
  merge: number;
  sql: number | null;
  /** At the fold, once per (version, minute): encode the bucket, and its SQL (select the groups and the bucket, upsert it, delete the pending rows). */
  foldEncode: number;
  foldSql: number | null;
  /** A later fold into a bucket that exists: decode it and merge the accumulator into it, per bucket (ms, mean). */
  bucketDecodeMerge: number;
  minutes: number;
  n: number;
}
const breakdown: Partial<Record<Model, Breakdown>> = {};
let sqliteNote = '';
for (const m of MODELS) {
  const ig = ingest[m];
  if (!ig) continue;
  progress(`${m}: replaying ${SUMMARIES} ingests and the fold in Node for the breakdown`);
  const bases = ig.bases.map((b) => decodeSummary(new Uint8Array(Buffer.from(b, 'base64'))));
  const stream = Array.from({ length: SUMMARIES }, (_, k) => encodeSummary(streamProfile(bases, k, ig.stream)));
  let db: any;
  try {
    const { DatabaseSync } = await import('node:sqlite');
    db = new DatabaseSync(':memory:');
    db.exec(`CREATE TABLE seen (source TEXT NOT NULL, sequence INTEGER NOT NULL, model_version TEXT NOT NULL, window_start INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (source, sequence, model_version));
             CREATE TABLE buckets (model_version TEXT NOT NULL, minute INTEGER NOT NULL, summary BLOB NOT NULL, span INTEGER NOT NULL DEFAULT 60000, PRIMARY KEY (model_version, minute));
             CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, model_version TEXT NOT NULL, minute INTEGER NOT NULL, summary BLOB NOT NULL);
             CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`);
  } catch (e) {
    sqliteNote = `node:sqlite unavailable (${(e as Error).message}); SQL not replayed`;
  }
  // The statements DriftAggregator.ingest and #fold run (worker/aggregator.ts as of this bench's commit).
  const stmt = db && {
    dup: db.prepare(`SELECT 1 FROM seen WHERE source = ? AND sequence = ? AND model_version = ?`),
    pend: db.prepare(`INSERT INTO pending (model_version, minute, summary) VALUES (?, ?, ?) RETURNING id`),
    seen: db.prepare(`INSERT INTO seen (source, sequence, model_version, window_start) VALUES (?, ?, ?, ?)`),
    getMeta: db.prepare(`SELECT value FROM meta WHERE key = ?`),
    setMeta: db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`),
    count: db.prepare(`INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value`),
    meta: db.prepare(`INSERT INTO meta (key, value) VALUES ('model', ?) ON CONFLICT(key) DO NOTHING`),
    groupCount: db.prepare(`SELECT COUNT(*) AS n FROM pending WHERE model_version = ? AND minute = ?`),
    groups: db.prepare(`SELECT model_version, minute, MAX(id) AS last, COUNT(*) AS n FROM pending GROUP BY model_version, minute`),
    get: db.prepare(`SELECT summary FROM buckets WHERE model_version = ? AND minute = ?`),
    put: db.prepare(
      `INSERT INTO buckets (model_version, minute, summary) VALUES (?, ?, ?) ON CONFLICT(model_version, minute) DO UPDATE SET summary = excluded.summary`,
    ),
    del: db.prepare(`DELETE FROM pending WHERE model_version = ? AND minute = ? AND id <= ?`),
  };
  const b: Breakdown = { decode: 0, merge: 0, sql: db ? 0 : null, foldEncode: 0, foldSql: db ? 0 : null, bucketDecodeMerge: 0, minutes: 0, n: SUMMARIES };
  const memo = new Map<string, { version: string; minute: number; acc: Profile }>();
  let modelKnown = false;
  let maxEnd: number | undefined;
  let id = 0;
  for (const x of stream) {
    let t = performance.now();
    const p = decodeSummary(x);
    b.decode += performance.now() - t;
    const minute = Math.floor(p.windowStart / 60_000) * 60_000;
    const source = `${p.source.kind}:${p.source.id}`;
    const key = `${p.modelVersion}\u0000${minute}`;
    let first = !memo.has(key);
    if (db) {
      t = performance.now();
      stmt.getMeta.get('pruned_before');
      db.exec('BEGIN');
      stmt.dup.all(source, p.sequence, p.modelVersion);
      id = (stmt.pend.get(p.modelVersion, minute, x) as { id: number }).id;
      stmt.seen.run(source, p.sequence, p.modelVersion, p.windowStart);
      stmt.count.run('stored', 1);
      stmt.count.run('rows', p.counters.rows);
      if (!modelKnown) {
        stmt.meta.run(m);
        modelKnown = true;
      }
      maxEnd ??= Number((stmt.getMeta.get('max_end') as { value?: string } | undefined)?.value ?? -Infinity);
      if (p.windowEnd > maxEnd) {
        stmt.setMeta.run('max_end', String(p.windowEnd));
        maxEnd = p.windowEnd;
      }
      db.exec('COMMIT');
      if (first) first = (stmt.groupCount.get(p.modelVersion, minute) as { n: number }).n === 1;
      b.sql! += performance.now() - t;
    } else id++;
    t = performance.now();
    const acc = memo.get(key);
    if (acc) mergeInto(acc.acc, p);
    else if (first) memo.set(key, { version: p.modelVersion, minute, acc: p });
    b.merge += performance.now() - t;
  }
  // The fold of a fresh object (no bucket yet): one encode and the SQL per minute.
  let t = performance.now();
  const groups = db ? (stmt.groups.all() as { model_version: string; minute: number; last: number }[]) : [];
  if (db) b.foldSql! += performance.now() - t;
  const folded: Uint8Array[] = [];
  for (const { version, minute, acc } of memo.values()) {
    const g = groups.find((x) => x.model_version === version && x.minute === minute);
    if (db) {
      t = performance.now();
      db.exec('BEGIN');
      stmt.get.get(version, minute);
      b.foldSql! += performance.now() - t;
    }
    t = performance.now();
    const out = encodeSummary({ ...acc, source: { kind: 'merged', id: '' }, sequence: 0 }, { meanPrecision: 'f64' });
    b.foldEncode += performance.now() - t;
    folded.push(out);
    if (db) {
      t = performance.now();
      stmt.put.run(version, minute, out);
      stmt.del.run(version, minute, g?.last ?? id);
      db.exec('COMMIT');
      b.foldSql! += performance.now() - t;
    }
  }
  b.minutes = memo.size;
  // A later fold into an existing bucket adds, per bucket, its decode and one in-place merge (of another minute's accumulator, as a stand-in).
  // Best of 5 passes over the buckets (a few samples only: one pass is at the mercy of the machine's load).
  const accs = [...memo.values()].map((x) => x.acc);
  b.bucketDecodeMerge = Infinity;
  for (let pass = 0; pass < 5 && folded.length; pass++) {
    t = performance.now();
    for (let i = 0; i < folded.length; i++) {
      const bucket = decodeSummary(folded[i]);
      const other = accs[(i + 1) % accs.length];
      mergeInto(bucket, { ...other, modelVersion: bucket.modelVersion });
    }
    b.bucketDecodeMerge = Math.min(b.bucketDecodeMerge, (performance.now() - t) / folded.length);
  }
  if (!folded.length) b.bucketDecodeMerge = 0;
  db?.close();
  breakdown[m] = b;
}

// --- report -------------------------------------------------------------------------------------------
const date = new Date().toISOString().slice(0, 10);
const loadText = loads.map((l) => `${l.at} ${l.load.join(' / ')}`).join('; ');
const note = `shared ${cpus().length}-core machine, other agents loading the CPU during the run; load average (1 / 5 / 15 min): ${loadText}`;
console.log(
  `\n## ${AGG_ONLY ? 'Aggregator ingest (part 3 alone, --only aggregator)' : 'Telemetry cost, summary bytes and aggregator ingest'} (Node ${process.versions.node}, ${date}; ${note})\n`,
);

if (!AGG_ONLY) {
  console.log(
    `### 1a. Edge latency, telemetry off vs on: one-row POST /v1/models/{name}/predict, two wrangler dev processes (${ROUNDS} pairs in turn), cache off, budget ${BUDGET_MS} ms, requests alternated (ms)\n`,
  );
  const e2eRows = MODELS.map((m) => {
    const r = e2e[m]!;
    const off = sortNum(r.off);
    const on = sortNum(r.on);
    const d50 = relDiff(r.off, r.on, 0.5);
    const d99 = relDiff(r.off, r.on, 0.99);
    return [
      m,
      r.off.length,
      q(off, 0.5).toFixed(2),
      q(on, 0.5).toFixed(2),
      `${pct(d50.d)} [${pct(d50.lo)}, ${pct(d50.hi)}]`,
      r.rounds.map(pct).join(', '),
      q(off, 0.99).toFixed(2),
      q(on, 0.99).toFixed(2),
      `${pct(d99.d)} [${pct(d99.lo)}, ${pct(d99.hi)}]`,
      r.errors,
    ];
  });
  console.log(
    markdownTable(
      ['model', 'requests each', 'p50 off', 'p50 on', 'Δ p50 [95% CI]', 'Δ p50 per process pair', 'p99 off', 'p99 on', 'Δ p99 [95% CI]', 'errors'],
      e2eRows,
    ),
  );

  console.log(`\n### 1b. Inside the isolate, per one-row request (µs; (wall time of N runs − empty run) / N, best of 5)\n`);
  console.log(
    markdownTable(
      [
        'model',
        'telemetry: observe + tick',
        'engine.infer (batcher + session.run)',
        'session.run alone',
        'telemetry / infer',
        'telemetry / edge p50 off',
        'windows closed (bytes)',
      ],
      MODELS.map((m) => {
        const h = hot[m]!;
        const p50off = q(sortNum(e2e[m]!.off), 0.5);
        return [
          m,
          h.sketchUs.toFixed(2),
          h.inferUs.toFixed(1),
          h.sessionUs.toFixed(1),
          `${((100 * h.sketchUs) / h.inferUs).toFixed(1)}%`,
          `${((100 * h.sketchUs) / (p50off * 1000)).toFixed(2)}%`,
          `${h.flushed} in ${h.runs} (${h.flushedBytes} B)`,
        ];
      }),
    ),
  );

  console.log(`\n### 2. Bytes per flush: one window's summary against the same rows as JSON lines (features, outputs, latency, served_by)\n`);
  console.log(
    markdownTable(
      ['model', 'rows', 'summary B', 'B/row', 'summary gzip B', 'rows as JSON B', 'JSON gzip B', 'JSON / summary', 'JSON gzip / summary'],
      bytes.map((b) => [
        b.model,
        b.rows,
        b.summary,
        (b.summary / b.rows).toFixed(1),
        b.summaryGz,
        b.json,
        b.jsonGz,
        `${(b.json / b.summary).toFixed(1)}x`,
        `${(b.jsonGz / b.summary).toFixed(1)}x`,
      ]),
    ),
  );
}

console.log(
  `\n### 3. One DriftAggregator object: ingest over RPC into SQLite under wrangler dev (summaries of 500-row windows from 50 sources; ingest: wall time − the same request with no ingest, ${emptyIngestMs.toFixed(1)} ms; fold: wall time − a minutes() read with nothing pending, ${emptyFoldMs.toFixed(1)} ms)\n`,
);
const ingestRows: (string | number)[][] = [];
for (const m of MODELS) {
  const ig = ingest[m];
  if (!ig) continue;
  for (const r of ig.runs) {
    // A fold shorter than the noise of the baseline read (it can even come out negative) has no meaningful rate.
    const noise = r.mode === 'fold' && r.ms < 1;
    ingestRows.push([
      m,
      ig.meanBytes.toFixed(0),
      r.mode === 'read floor' ? 'counters()' : r.batch ? `ingestMany ×${r.batch}` : 'ingest()',
      r.what,
      r.concurrency,
      r.mode === 'fold' ? 1 : (r.calls ?? '-'),
      `${r.done} (${Object.entries(r.statuses)
        .map(([k, v]) => (k.startsWith('into') ? k : `${v} ${k}`))
        .join(', ')})`,
      noise ? '< 1' : r.ms.toFixed(0),
      noise ? '(within noise)' : r.rate.toFixed(0),
    ]);
  }
}
console.log(
  markdownTable(
    ['model', 'summary B (mean)', 'call (summaries per RPC)', 'what', 'concurrency (RPCs in flight)', 'RPCs', 'summaries', 'ms', 'summaries/s'],
    ingestRows,
  ),
);
console.log(
  '\n' +
    markdownTable(
      ['model', 'minute buckets', 'bucket bytes (f64 means)', 'per stored summary', 'counters'],
      MODELS.filter((m) => ingest[m]?.stored).map((m) => {
        const s = ingest[m]!.stored!;
        const storedN = s.counters.stored ?? SUMMARIES;
        return [
          m,
          s.buckets,
          s.bytes,
          `${(s.bytes / storedN).toFixed(0)} B + one seen row`,
          Object.entries(s.counters)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        ];
      }),
    ),
);

console.log(
  `\n### 3b. Where the time goes: the same ${SUMMARIES} summaries through the same steps in Node (µs per summary; the fold's per-minute work spread over the summaries it folds)\n`,
);
const cRow = (m: Model, mode: IngestRun['mode']) =>
  ingest[m]!.runs.find((r) => r.concurrency === 16 && r.batch === undefined && r.mode === mode) ??
  ingest[m]!.runs.find((r) => r.batch === undefined && r.mode === mode);
console.log(
  markdownTable(
    [
      'model',
      'decode summary',
      'merge in memory',
      'SQL at ingest (node:sqlite, in memory)',
      'ingest sum (Node)',
      'ingest measured in the object (c=16)',
      'floor measured: refused at once (RPC + a write)',
      'of which a read RPC',
      'rest: measured − sum − floor',
      'fold: encode + SQL, per summary (Node)',
      'fold measured, per summary',
      'a later fold into an existing bucket: + decode + merge, per bucket',
    ],
    MODELS.filter((m) => breakdown[m]).map((m) => {
      const b = breakdown[m]!;
      const per = (x: number) => (x / b.n) * 1000;
      const sum = per(b.decode + b.merge + (b.sql ?? 0));
      const ing = cRow(m, 'ingest');
      const fold = cRow(m, 'fold');
      const floor = cRow(m, 'reject floor');
      const read = cRow(m, 'read floor');
      const mu = ing ? 1e6 / ing.rate : NaN;
      const floorUs = floor ? 1e6 / floor.rate : NaN;
      return [
        m,
        per(b.decode).toFixed(1),
        per(b.merge).toFixed(1),
        b.sql === null ? '-' : per(b.sql).toFixed(1),
        sum.toFixed(1),
        mu.toFixed(1),
        floorUs.toFixed(1),
        read ? (1e6 / read.rate).toFixed(1) : '-',
        (mu - sum - floorUs).toFixed(1),
        `${per(b.foldEncode + (b.foldSql ?? 0)).toFixed(1)} (${b.minutes} minutes)`,
        fold && fold.ms >= 1 ? (1e6 / fold.rate).toFixed(1) : '< noise',
        `${(b.bucketDecodeMerge * 1000).toFixed(0)} µs`,
      ];
    }),
  ),
);
if (sqliteNote) console.log(`\n${sqliteNote}`);

// Targets.
const targets: string[][] = [];
if (!AGG_ONLY) {
  for (const m of MODELS) {
    const d = relDiff(e2e[m]!.off, e2e[m]!.on, 0.5);
    targets.push([`telemetry adds < 5% to edge p50, end to end (${m})`, `${pct(d.d)} [${pct(d.lo)}, ${pct(d.hi)}]`, d.d < 0.05 ? 'met' : 'MISSED']);
  }
  for (const m of MODELS) {
    const share = hot[m]!.sketchUs / (q(sortNum(e2e[m]!.off), 0.5) * 1000);
    targets.push([
      `the same, from the in-isolate cost (${m})`,
      `${hot[m]!.sketchUs.toFixed(2)} µs = ${(100 * share).toFixed(2)}% of p50`,
      share < 0.05 ? 'met' : 'MISSED',
    ]);
  }
}
for (const m of MODELS) {
  const ig = ingest[m];
  if (!ig) continue;
  const rates = ig.repeats.map((x) => x.sustained.rate);
  const med = sortNum(rates)[Math.floor((rates.length - 1) / 2)];
  const ing = cRow(m, 'ingest');
  if (ing)
    targets.push([
      `one aggregator object: ingest alone, as the sender sees it (${m}, c=16; not the target: the fold is deferred)`,
      `${ing.rate.toFixed(0)}/s`,
      ing.rate >= 1000 ? '(≥ 1,000)' : '(< 1,000)',
    ]);
  targets.push([
    `one aggregator object merges ≥ 1,000 summaries/s, sustained: ingest + fold (${m}, c=16, one ingest() per summary)`,
    `${med.toFixed(0)}/s${rates.length > 1 ? ` (median of ${rates.length}: ${rates.map((r) => r.toFixed(0)).join(', ')})` : ''}`,
    med >= 1000 ? 'met' : 'MISSED',
  ]);
  for (const [batch, xs] of Object.entries(ig.batched ?? {}).sort((a, b) => Number(b[0]) - Number(a[0]))) {
    const rs = xs.map((x) => x.sustained.rate);
    const bm = sortNum(rs)[Math.floor((rs.length - 1) / 2)];
    targets.push([
      `the same, through ingestMany, ${batch} per call (${m}, c=16)`,
      `${bm.toFixed(0)}/s${rs.length > 1 ? ` (median of ${rs.length}: ${rs.map((r) => r.toFixed(0)).join(', ')})` : ''}`,
      bm >= 1000 ? 'met' : 'MISSED',
    ]);
  }
}
console.log(`\n${markdownTable(['target', 'measured', 'verdict'], targets)}`);
console.log(`\n(whole run ${((Date.now() - started) / 1000).toFixed(0)} s)`);

mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
writeFileSync(
  join(ROOT, AGG_ONLY ? 'bench/out/telemetry-aggregator.json' : 'bench/out/telemetry.json'),
  JSON.stringify(
    {
      date,
      node: process.versions.node,
      loads,
      e2e,
      hot,
      bytes,
      ingest: Object.fromEntries(Object.entries(ingest).map(([k, v]) => [k, { ...v, bases: undefined }])),
      breakdown,
      emptyIngestMs,
      emptyFoldMs,
    },
    null,
    1,
  ),
);
