// npm run bench:outcomes — what the join of late labels (issue 15) costs, measured side by side
// in one run on this machine:
//
// 1. Time added to a request, in the process, per one-row prediction: what the inference path
//    runs for the join (16 random bytes, the id, the value the join keeps, the queued record)
//    against the two things every request already pays: validating and encoding the request
//    (encodeInstances) and sketching it into the telemetry window (observe + tick). Best of 5
//    runs of N requests each, real flight-delay rows.
// 2. Bytes kept per prediction: the aggregator's own `predictions` table (same schema and index,
//    WITHOUT ROWID) in SQLite (node:sqlite; a Durable Object's storage is SQLite too), filled with
//    N real ids, against the summary bytes per row that telemetry already ships (encodeSummary of
//    a 1,000-row window); and the same for a ranking, whose record keeps its served top-10 ids
//    (movielens-topk's real movie ids) for the clicks to come.
//
// Options: --n 20000.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  createWindowProfiler,
  encodeInstances,
  joinValue,
  newPredictionId,
  observedFromFeeds,
  predictionTime,
  type BuiltManifest,
  type PredictionRecord,
} from '../core/index.ts';
import { markdownTable, numberArg, progress } from './lib/report.ts';

const ROOT = join(import.meta.dirname, '..');
const N = numberArg('n', 20_000);
const manifest = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/manifest.json'), 'utf8')) as BuiltManifest;
const movies = JSON.parse(readFileSync(join(ROOT, 'models/movielens-topk/manifest.json'), 'utf8')) as BuiltManifest;
const movieIds = (movies.features[0] as { vocabulary: string[] }).vocabulary;
const rows = readFileSync(join(ROOT, 'models/flight-delay/replay.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { features: Record<string, unknown> }).features);

/** Best of 5 runs of `n` calls of fn(i), in µs per call. */
function perCall(n: number, fn: (i: number) => unknown): number {
  let best = Infinity;
  let sink: unknown;
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = fn(i);
    best = Math.min(best, ((performance.now() - t0) * 1000) / n);
  }
  if (sink === Symbol.for('never')) console.log(sink);
  return best;
}

// --- 1. time per request -------------------------------------------------------------------
progress(`timing ${N} one-row requests, best of 5`);
const encoded = rows.map((r) => encodeInstances(manifest, { instances: [r] }));
const pending: PredictionRecord[] = [];
const t0 = Date.UTC(2001, 0, 1);
// As worker/http/inference.ts draws them: 16-byte slices of a 4 KiB pool of random bytes.
let pool = new Uint8Array(0);
let used = 0;
const random16 = () => {
  if (used + 16 > pool.length) {
    pool = crypto.getRandomValues(new Uint8Array(4096));
    used = 0;
  }
  used += 16;
  return pool.subarray(used - 16, used);
};
const join1 = perCall(N, (i) => {
  const id = newPredictionId(t0 + i, random16());
  const kept = joinValue(manifest, { p_delay: 0.2 + (i % 50) / 100 });
  const at = predictionTime(id);
  if (kept !== undefined && at !== undefined) pending.push({ id, version: '1', at, value: kept.value });
  if (pending.length > 50_000) pending.length = 0;
  return id;
});
const topTen = (i: number) => Array.from({ length: 10 }, (_, k) => Number(movieIds[(i * 7 + k * 131) % movieIds.length]));
const joinRanked = perCall(N, (i) => {
  const id = newPredictionId(t0 + i, random16());
  const kept = joinValue(movies, { movie_ids: topTen(i), scores: [] });
  const at = predictionTime(id);
  if (kept !== undefined && at !== undefined) pending.push({ id, version: '1', at, value: kept.value, items: kept.items });
  if (pending.length > 50_000) pending.length = 0;
  return id;
});
const encode = perCall(N, (i) => encodeInstances(manifest, { instances: [rows[i % rows.length]] }));
let clock = t0;
const profiler = createWindowProfiler({ source: { kind: 'edge', id: 'bench' }, windowMs: 5000, maxRows: 2000, align: true, now: () => clock });
const sketch = perCall(N, (i) => {
  clock += 10;
  const e = encoded[i % encoded.length];
  profiler.observe(
    manifest,
    '1',
    observedFromFeeds(manifest, e.feeds, e.rows).map((features) => ({ features, outputs: { p_delay: 0.3 } })),
    1,
    'edge',
  );
  profiler.tick();
  if (profiler.stats().outbox > 16) profiler.ack(profiler.take());
  return clock;
});

// --- 2. bytes kept per prediction ----------------------------------------------------------
progress(`storing ${N} prediction records (and ${N} ranked ones) in SQLite with the aggregator's schema`);
/** Bytes per record of N records in the aggregator's `predictions` table (same schema and index), `items` for a ranking. */
function storedBytes(items?: (i: number) => string[]): number {
  const dir = join(tmpdir(), `dw-bench-outcomes-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const db = new DatabaseSync(join(dir, 'join.sqlite'));
  db.exec(
    `CREATE TABLE predictions (id TEXT PRIMARY KEY, model_version TEXT NOT NULL, at INTEGER NOT NULL, value REAL NOT NULL, joined INTEGER NOT NULL DEFAULT 0, items TEXT) WITHOUT ROWID`,
  );
  db.exec(`CREATE INDEX predictions_at ON predictions (at)`);
  const insert = db.prepare(`INSERT OR IGNORE INTO predictions (id, model_version, at, value, items) VALUES (?, ?, ?, ?, ?)`);
  db.exec('BEGIN');
  for (let i = 0; i < N; i++) {
    const at = t0 + i * 1000;
    insert.run(
      newPredictionId(at, crypto.getRandomValues(new Uint8Array(16))),
      '1',
      at,
      items ? 10 : 0.2 + (i % 50) / 100,
      items ? JSON.stringify(items(i)) : null,
    );
  }
  db.exec('COMMIT');
  db.exec('VACUUM');
  const pages = (db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count;
  const pageSize = (db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return (pages * pageSize) / N;
}
const bytesPerRanked = storedBytes((i) => topTen(i).map(String));
const bytesPerPrediction = storedBytes();
const window = createWindowProfiler({ source: { kind: 'edge', id: 'bench' }, windowMs: 3_600_000, maxRows: 1000, align: true, now: () => t0 });
for (let i = 0; i < 1000; i++) {
  const e = encoded[i % encoded.length];
  window.observe(
    manifest,
    '1',
    observedFromFeeds(manifest, e.feeds, e.rows).map((features) => ({ features, outputs: { p_delay: 0.2 + (i % 50) / 100 } })),
    1,
    'edge',
  );
}
window.closeAll();
const summaryBytesPerRow = window.take().reduce((a, s) => a + s.bytes.byteLength, 0) / 1000;

const table = markdownTable(
  ['cost per one-row prediction', 'the join', 'validate + encode the request', 'telemetry sketch (observe + tick)'],
  [
    ['time added in the process, µs', join1.toFixed(2), encode.toFixed(2), sketch.toFixed(2)],
    ['time added in the process, µs, a top-10 ranking', joinRanked.toFixed(2), '-', '-'],
    [
      'bytes kept',
      `${bytesPerPrediction.toFixed(0)} (SQLite row and index, kept for PREDICTION_HORIZON_DAYS)`,
      '-',
      `${summaryBytesPerRow.toFixed(1)} (summary bytes per row, 1,000-row window)`,
    ],
    ['bytes kept, a top-10 ranking', `${bytesPerRanked.toFixed(0)} (the served ids too, for the clicks to come)`, '-', '-'],
  ],
);
console.log(`\n${table}\n`);
console.log(`machine: ${process.version}, ${N} predictions`);
mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
writeFileSync(join(ROOT, 'bench/out/outcomes.md'), `${table}\n`);
