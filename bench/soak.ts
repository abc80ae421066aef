// npm run bench:soak (tsx bench/soak.ts) — the worker's memory under a long mixed load, and
// latency under a burst of full batches, through `wrangler dev` on 127.0.0.1.
//
// soak: per configuration (default; CACHE_MAX_BYTES=0; TELEMETRY=off; both off), a warm-up and then
// --requests of test/support/load.ts's mix (both models, 1..maxBatch rows, bad inputs) at
// --concurrency, reading workerd's RSS (VmRSS) at rest every --every requests; prints a table of
// RSS by request count per configuration, so growth can be attributed to the cache or telemetry.
// burst: --burst N requests of a full batch each, all at once (N in flight), at the models'
// default budgets, N times over --rounds; prints p50/p99 and how many were refused (503).
//
// Options: --requests 12000 --warmup 2000 --concurrency 16 --every 2000 --seconds 300
//          --configs default,nocache,notelemetry,neither --burst 200 --rounds 3 --port 8795
//          --only soak|burst|control (control: the same load on an echo worker, the peer)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drive, noModelMix, quantile, soak, tally, type Planned } from '../test/support/load.ts';
import { freePort, ROOT, rssBytes, startWorker, stop, waitFor, workerdPids } from '../test/support/servers.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const REQUESTS = Number(opt('requests', '12000'));
const WARMUP = Number(opt('warmup', '2000'));
const CONCURRENCY = Number(opt('concurrency', '16'));
const EVERY = Number(opt('every', '2000'));
const SECONDS = Number(opt('seconds', '300'));
const BURST = Number(opt('burst', '200'));
const ROUNDS = Number(opt('rounds', '3'));
const ONLY = opt('only', '');
const CONFIGS: Record<string, Record<string, string>> = {
  default: {},
  nocache: { CACHE_MAX_BYTES: '0' },
  notelemetry: { TELEMETRY: 'off' },
  neither: { CACHE_MAX_BYTES: '0', TELEMETRY: 'off' },
  // Only 404s for an unknown model: no inference, cache or telemetry (the runtime's own share).
  nomodel: {},
};
const chosen = opt('configs', 'default,nocache,notelemetry,neither').split(',');
/** A snapshot of the tree to run (--cwd), so that edits elsewhere do not make wrangler reload the worker mid-run. */
const CWD = opt('cwd', '') || undefined;

async function soaks(): Promise<void> {
  const rows: string[][] = [];
  for (const name of chosen) {
    const port = Number(opt('port', '0')) || (await freePort());
    const r = await soak({
      port,
      vars: CONFIGS[name],
      warmup: WARMUP,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      every: EVERY,
      budgetMs: SECONDS * 1000,
      cwd: CWD,
      ...(name === 'nomodel' ? { mix: noModelMix } : {}),
    });
    const base = r.samples[1].rssMiB;
    const last = r.samples.at(-1)!;
    const bad = r.results.filter((x) => !x.ok);
    console.log(
      `\n${name} (${JSON.stringify(CONFIGS[name])}): ${r.results.length} requests in ${(r.elapsedMs / 1000).toFixed(1)} s; wrong answers: ${bad.length}${bad.length ? ` (${tally(bad)})` : ''}${r.workerPids.length > 1 ? `; WARNING: wrangler restarted the worker ${r.workerPids.length - 1} time(s) (pids ${r.workerPids.join(', ')}), figures across a restart do not compare` : ''}`,
    );
    console.log('| requests | workerd RSS MiB | proxy workerd RSS MiB | JS heap used MiB | ArrayBuffer backing MiB | wasm memory MiB |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const s of r.samples)
      console.log(
        `| ${s.requests} | ${s.rssMiB.toFixed(1)} | ${s.proxyMiB.toFixed(1)} | ${s.heapMiB.toFixed(1)} | ${s.backingMiB.toFixed(1)} | ${s.wasmMiB.toFixed(1)} |`,
      );
    console.log(JSON.stringify(r.stats));
    rows.push([
      name,
      r.samples[0].rssMiB.toFixed(0),
      base.toFixed(0),
      last.rssMiB.toFixed(0),
      String(last.requests),
      (last.rssMiB - base).toFixed(1),
      Math.max(...r.samples.slice(1).map((s) => s.rssMiB)).toFixed(0),
    ]);
  }
  console.log('\n| config | RSS at start (MiB) | after warm-up | at end | requests | growth after warm-up | peak |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

/** N requests of a full batch each, all in flight at once, at the default budgets. */
async function burst(): Promise<void> {
  const port = await freePort();
  const child = await startWorker(port, {}, { cwd: CWD });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${base}/v2/health/ready`, 90_000);
    const golden = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/golden.json'), 'utf8')) as { rows: { features: Record<string, unknown> }[] };
    const movies = JSON.parse(readFileSync(join(ROOT, 'models/movielens-topk/golden.json'), 'utf8')) as { rows: { features: Record<string, unknown> }[] };
    const pid = workerdPids(child).worker;
    const table: string[] = [];
    for (const [model, maxBatch, rows] of [
      ['flight-delay', 64, golden.rows],
      ['movielens-topk', 16, movies.rows],
    ] as const) {
      let i = 0;
      // Distinct instances per request (distance / k varied), so the cache answers none of them.
      const next = (): Planned => {
        const n = i++;
        const instances = Array.from({ length: maxBatch }, (_, j) =>
          model === 'flight-delay'
            ? { ...rows[j % rows.length].features, distance: 100 + ((n * maxBatch + j) % 2500) }
            : { history: [...(rows[j % rows.length].features.history as number[]), 1 + ((n * maxBatch + j) % 2000)], k: 10 },
        );
        return {
          kind: model === 'flight-delay' ? 'flight' : 'movies',
          path: `/v1/models/${model}/predict`,
          body: JSON.stringify({ instances }),
          rows: maxBatch,
          ok: (s) => s === 200 || s === 503,
        };
      };
      await drive(base, next, { n: 20, concurrency: 1 }); // warm
      for (let round = 0; round < ROUNDS; round++) {
        const t = performance.now();
        const out = await drive(base, next, { n: BURST, concurrency: BURST, timeoutMs: 30_000 });
        const wall = performance.now() - t;
        const ok = out.filter((x) => x.status === 200).map((x) => x.ms);
        const shed = out.filter((x) => x.status === 503);
        const all = out.map((x) => x.ms);
        table.push(
          `| ${model} | ${round + 1} | ${BURST} | ${quantile(all, 0.5).toFixed(0)} | ${quantile(all, 0.99).toFixed(0)} | ${ok.length} | ${quantile(ok, 0.5).toFixed(0)} | ${quantile(ok, 0.99).toFixed(0)} | ${shed.length} (${[...new Set(shed.map((x) => x.code))].join(', ')}) | ${
            shed.length
              ? quantile(
                  shed.map((x) => x.ms),
                  0.5,
                ).toFixed(0)
              : '-'
          } | ${out.filter((x) => !x.ok).length} | ${(wall / 1000).toFixed(1)} | ${((pid ? (rssBytes(pid) ?? NaN) : NaN) / 2 ** 20).toFixed(0)} |`,
        );
      }
    }
    console.log(`\nburst: ${BURST} concurrent requests of a full batch (64 and 16 rows) at the default budgets (50 and 100 ms)`);
    console.log(
      '| model | round | requests | p50 ms (all) | p99 ms (all) | 200 | p50 ms (200) | p99 ms (200) | 503 | p50 ms (503) | other | wall s | workerd RSS MiB |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of table) console.log(r);
  } finally {
    await stop(child);
  }
}

/**
 * The peer: a worker that only echoes (no Hono, no models, no state) under the same wrangler dev,
 * the same request count and concurrency: how much of the growth is workerd's own under wrangler
 * dev, whatever the worker does.
 */
async function control(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dw-echo-'));
  writeFileSync(join(dir, 'worker.js'), 'export default { async fetch(req) { await req.arrayBuffer(); return Response.json({ ok: true }); } };\n');
  writeFileSync(join(dir, 'wrangler.toml'), 'name = "echo"\nmain = "worker.js"\ncompatibility_date = "2026-11-01"\n');
  const port = await freePort();
  const child = await startWorker(port, {}, { cwd: dir });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${base}/`, 90_000);
    const body = JSON.stringify({ instances: [{ month: 4, day_of_week: 5, hour: 18, distance: 1846, origin: 'ORD', destination: 'LAX' }] });
    const next = (): Planned => ({ kind: 'flight', path: '/v1/models/flight-delay/predict', body, rows: 1, ok: (s) => s === 200 });
    await drive(base, next, { n: WARMUP, concurrency: CONCURRENCY });
    const pid = workerdPids(child).worker!;
    const rows = [`| 0 | ${((rssBytes(pid) ?? NaN) / 2 ** 20).toFixed(1)} |`];
    for (let done = 0; done < REQUESTS; done += EVERY) {
      await drive(base, next, { n: Math.min(EVERY, REQUESTS - done), concurrency: CONCURRENCY });
      rows.push(`| ${Math.min(done + EVERY, REQUESTS)} | ${((rssBytes(pid) ?? NaN) / 2 ** 20).toFixed(1)} |`);
    }
    console.log(`\ncontrol: an echo worker under the same wrangler dev, ${REQUESTS} requests after a ${WARMUP}-request warm-up, concurrency ${CONCURRENCY}`);
    console.log('| requests after warm-up | workerd RSS MiB |');
    console.log('| --- | --- |');
    for (const r of rows) console.log(r);
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (ONLY === 'control') await control();
else {
  if (ONLY !== 'burst') await soaks();
  if (ONLY !== 'soak') await burst();
  if (ONLY === '') await control();
}
process.exit(0);
