/**
 * `npm run bench:browser`: the browser runtime in Debian's Chromium (playwright-core) against a
 * real `wrangler dev`, one run, every backend side by side:
 * - model load: createRuntime() to `ready`, first (empty Cache Storage and HTTP cache) and
 *   cached (a second runtime in the same profile), with the descriptor+artifact part and the
 *   ladder part (ort compile, session, golden check) apart;
 * - recommend() latency p50/p99 at batch 1 (sequential calls, the runtime's cache off so every
 *   call runs the model) and for a batch of 16 users (one predict() of 16 instances);
 * - the page's longest main-thread stall (a 10 ms heartbeat), over load and over inference.
 * WebGPU here is SwiftShader, a software adapter on the CPU: its times say nothing about a GPU
 * and are labelled so; the harness is the same on a machine with one (CHROMIUM_FLAGS, or
 * `--webgpu-flags="..."`).
 *
 * Options: --runs N (batch-1 calls per backend, default 200), --batch-runs N (default 40),
 * --budget-s S (per backend and measurement, default 25), --only wasm,webgpu,edge, --json FILE.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { buildBrowser } from '../browser/build.ts';
import { launchChromium, resolveChromium } from '../test/support/chromium.ts';
import { freePort, ROOT, startWorker, stop, waitFor } from '../test/support/servers.ts';

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '200' },
    'batch-runs': { type: 'string', default: '40' },
    'budget-s': { type: 'string', default: '25' },
    only: { type: 'string', default: 'wasm,webgpu,edge' },
    json: { type: 'string', default: join(ROOT, 'bench/out/browser.json') },
    'webgpu-flags': { type: 'string', default: '--enable-unsafe-webgpu' },
  },
});

interface Measured {
  backend: string;
  adapter: string | undefined;
  loadFirstMs: number;
  loadCachedMs: number;
  first: { fetchMs: number; ladderMs: number; artifactFromCache: boolean };
  cached: { fetchMs: number; ladderMs: number; artifactFromCache: boolean };
  batch1: { n: number; p50: number; p99: number };
  batch16: { n: number; p50: number; p99: number; perUserP50: number };
  stallLoadMs: number;
  stallInferMs: number;
}

/**
 * Runs in the page: the whole measurement for one backend. Plain JavaScript in a string, since
 * tsx's transform would add helpers (__name) that do not exist in the page.
 */
const MEASURE = `async ({ backend, runs, batchRuns, budgetMs }) => {
  const { createRuntime } = globalThis;
  let last = performance.now();
  let maxGap = 0;
  const hb = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 10);
  const q = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  // Seeded histories of 5-30 ids among the 1,500 first catalogue entries.
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const catalogue = await (await fetch('/browser/movielens-topk/catalogue.json')).json();
  const popular = catalogue.slice(0, 1500).map((m) => m.id);
  const history = () => Array.from({ length: 5 + Math.floor(rnd() * 26) }, () => popular[Math.floor(rnd() * popular.length)]);
  const options = { model: 'movielens-topk', prefer: [backend], telemetry: false, cache: { maxBytes: 0 } };

  const t0 = performance.now();
  let rt = createRuntime(options);
  const first = await rt.ready;
  const loadFirstMs = performance.now() - t0;
  rt.dispose();
  await new Promise((r) => setTimeout(r, 200));
  const t1 = performance.now();
  rt = createRuntime(options);
  const cached = await rt.ready;
  const loadCachedMs = performance.now() - t1;
  await rt.recommend(history(), 10); // first run (shader compilation on WebGPU)
  const stallLoadMs = maxGap;

  maxGap = 0;
  last = performance.now();
  const b1 = [];
  const until1 = performance.now() + budgetMs;
  for (let i = 0; i < runs && performance.now() < until1; i++) {
    const h = history();
    const t = performance.now();
    await rt.recommend(h, 10);
    b1.push(performance.now() - t);
  }
  const b16 = [];
  const until16 = performance.now() + budgetMs;
  for (let i = 0; i < batchRuns && performance.now() < until16; i++) {
    const users = Array.from({ length: 16 }, () => ({ history: history(), k: 10 }));
    const t = performance.now();
    await rt.predict(users);
    b16.push(performance.now() - t);
  }
  const stallInferMs = maxGap;
  clearInterval(hb);
  const adapter = first.attempts.find((a) => a.backend === 'webgpu')?.golden?.against;
  rt.dispose();
  const part = (r) => ({ fetchMs: r.load.ms, ladderMs: r.load.sessionMs, artifactFromCache: r.load.artifactFromCache });
  return {
    backend: first.backend, adapter, loadFirstMs, loadCachedMs, first: part(first), cached: part(cached),
    batch1: { n: b1.length, p50: q(b1, 0.5), p99: q(b1, 0.99) },
    batch16: { n: b16.length, p50: q(b16, 0.5), p99: q(b16, 0.99), perUserP50: q(b16, 0.5) / 16 },
    stallLoadMs, stallInferMs,
  };
}`;

async function measure(page: Page, backend: string, runs: number, batchRuns: number, budgetMs: number): Promise<Measured> {
  return page.evaluate(`(${MEASURE})(${JSON.stringify({ backend, runs, batchRuns, budgetMs })})`) as Promise<Measured>;
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const built = await buildBrowser({ quiet: true });
console.log(`browser runtime built in ${built.ms} ms; starting wrangler dev on ${base}`);
const worker = await startWorker(port, { TELEMETRY: 'off' });
const results: (Measured & { label: string })[] = [];
try {
  await waitFor(`${base}/healthz`);
  for (const backend of opts.only.split(',')) {
    const { context, close } = await launchChromium({ args: backend === 'webgpu' ? opts['webgpu-flags'].split(' ').filter(Boolean) : [] });
    try {
      const page = await context.newPage();
      await page.goto(`${base}/v2/health/live`);
      await page.addScriptTag({ type: 'module', content: "import { createRuntime } from '/browser/runtime.js'; globalThis.createRuntime = createRuntime;" });
      await page.waitForFunction(() => 'createRuntime' in globalThis);
      const m = await measure(page, backend, Number(opts.runs), Number(opts['batch-runs']), Number(opts['budget-s']) * 1000);
      const software = m.adapter && /swiftshader|llvmpipe|lavapipe|software/i.test(m.adapter);
      const label =
        backend === 'webgpu'
          ? `webgpu (${software ? 'SwiftShader, software adapter: not a GPU figure' : m.adapter})`
          : backend === 'edge'
            ? 'edge (wrangler dev, local HTTP)'
            : 'wasm (SIMD, 1 thread)';
      results.push({ ...m, label });
      console.log(`${backend}: done`);
    } catch (err) {
      console.error(`${backend}: failed: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      await close();
    }
  }
} finally {
  await stop(worker);
}

const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const lines = [
  '| backend | load, first (fetch + ladder) | load, cached (fetch + ladder) | recommend batch 1 p50 / p99 | 16 users p50 / p99 (per user) | longest main-thread stall: load / inference |',
  '| --- | --- | --- | --- | --- | --- |',
  ...results.map(
    (r) =>
      `| ${r.label} | ${f(r.loadFirstMs)} ms (${r.first.fetchMs} + ${r.first.ladderMs}) | ${f(r.loadCachedMs)} ms (${r.cached.fetchMs} + ${r.cached.ladderMs}${r.cached.artifactFromCache ? ', artifact from Cache Storage' : ''}) | ${f(r.batch1.p50)} / ${f(r.batch1.p99)} ms (n=${r.batch1.n}) | ${f(r.batch16.p50)} / ${f(r.batch16.p99)} ms (${f(r.batch16.perUserP50)}) (n=${r.batch16.n}) | ${f(r.stallLoadMs)} / ${f(r.stallInferMs)} ms |`,
  ),
];
console.log(`\nmovielens-topk int8 in Chromium ${(await resolveChromium()).path} (headless), ${new Date().toISOString()}\n`);
console.log(lines.join('\n'));
await mkdir(join(ROOT, 'bench/out'), { recursive: true });
await writeFile(opts.json, JSON.stringify({ at: new Date().toISOString(), results }, null, 2));
console.log(`\nraw figures: ${opts.json}`);
