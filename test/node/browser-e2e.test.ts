// The browser runtime end to end: Debian's Chromium (playwright-core) against a real
// `wrangler dev`, the runtime built by browser/build.ts and served as static assets. Each path of
// the ladder is forced the way a real device would force it (no WebGPU adapter; the WASM file
// failing to load; SwiftShader's WebGPU adapter) and must reproduce the golden top-k within the
// model's tolerance, with the page's main thread ticking throughout. Telemetry from the page
// must reach the model's aggregator and show in the operator API; bad tokens are refused. A model
// pushed to the registry (not one of the defaults) loads in the page by its version. Every answer
// carries a prediction id, and a click in /demo is joined to the list that showed it (issue 15).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { buildBrowser } from '../../browser/build.ts';
import { importModel } from '../../cli/import.ts';
import { GraphBuilder } from '../../models/lib/onnx-builder.ts';
import { rng } from '../../models/lib/rng.ts';
import type { Prediction } from '../../browser/tensors.ts';
import { compareGolden } from '../../browser/golden.ts';
import type { ModelManifest } from '../../core/index.ts';
import { launchChromium, resolveChromium } from '../support/chromium.ts';
import { freePort, ROOT, startWorker, stop, waitFor as waitForUrl } from '../support/servers.ts';
import { waitFor } from '../support/wait.ts';

const OPERATOR_TOKEN = 'op-browser-e2e';
const manifest = JSON.parse(readFileSync(join(ROOT, 'models/movielens-topk/manifest.json'), 'utf8')) as ModelManifest;
const golden = JSON.parse(readFileSync(join(ROOT, 'models/movielens-topk/golden.json'), 'utf8')) as {
  tolerance: Record<string, number>;
  rows: { features: { history: number[]; k: number }; expected: { int8: { movie_ids: number[]; scores: number[] } } }[];
};
const ROWS = golden.rows.slice(0, 16);
// Debian's Chromium (as .ci/run installs it) has a SwiftShader WebGPU adapter; the npm one does not.
const browser = await resolveChromium();
const webgpu = browser.webgpu === true;
const noWebgpu = webgpu ? '' : ` (skipped: ${(browser.webgpu as { reason: string }).reason})`;
const BACKENDS_SEEN = webgpu ? ['wasm', 'edge', 'webgpu'] : ['wasm', 'edge'];

/** Every worker this file started, stopped at the end. */
const workers: ChildProcess[] = [];

/** A worker of its own under wrangler dev (a fresh aggregator), up; its base URL and process. */
async function newWorker(): Promise<{ base: string; child: ChildProcess }> {
  const port = await freePort();
  const child = await startWorker(port, { OPERATOR_TOKEN, TELEMETRY_BROWSER_FLUSH_MS: '200' });
  workers.push(child);
  const base = `http://127.0.0.1:${port}`;
  await waitForUrl(`${base}/healthz`);
  return { base, child };
}

/**
 * The worker shared by the tests that only need one to answer (the backend paths, /demo). Tests
 * that count what reached the aggregator, or stop their worker, start their own (newWorker).
 */
let sharedBase = '';

beforeAll(async () => {
  await buildBrowser({ quiet: true });
  sharedBase = (await newWorker()).base;
}, 150_000);

afterAll(async () => {
  await Promise.all(workers.map(stop));
});

interface Scenario {
  backend: string;
  attempts: { backend: string; ok: boolean; reason?: string; golden?: { against: string; maxAbsDiff: number } }[];
  load: { artifactFromCache: boolean; descriptorFromCache: boolean };
  single: { id: number; score: number }[];
  batch: { movie_ids: number[]; scores: number[] }[];
  /** The prediction ids of the single call and of the batch's rows. */
  ids: string[];
  heartbeat: { ticks: number; maxGapMs: number; ms: number };
  stats: {
    served: Record<string, number>;
    batcher: { batches: number; items: number };
    telemetry: { predictions: { queued: number; sent: number; dropped: number } };
  };
}

/**
 * In the page: a 10 ms heartbeat on the main thread, a runtime (init, one recommend, then the
 * golden rows as concurrent recommend calls gathered by the batcher), and what happened.
 */
async function scenario(page: Page, options: { prefer?: string[]; keep?: boolean } = {}): Promise<Scenario> {
  return page.evaluate(
    async ({ options, rows }) => {
      const { createRuntime } = globalThis as unknown as { createRuntime: (o: object) => any };
      let last = performance.now();
      let maxGapMs = 0;
      let ticks = 0;
      const t0 = performance.now();
      const hb = setInterval(() => {
        const t = performance.now();
        maxGapMs = Math.max(maxGapMs, t - last);
        last = t;
        ticks++;
      }, 10);
      const rt = createRuntime({ model: 'movielens-topk', ...(options.prefer ? { prefer: options.prefer } : {}), telemetry: { intervalMs: 600_000 } });
      try {
        const report = await rt.ready;
        const single = await rt.recommend(rows[0].history, 10);
        const batch = await Promise.all(rows.map((r: { history: number[] }) => rt.predict([{ history: r.history, k: 10 }]).then((p: unknown[]) => p[0])));
        clearInterval(hb);
        (globalThis as unknown as { rt: unknown }).rt = rt;
        const s = rt.stats();
        if (!options.keep) {
          await rt.flushTelemetry();
          rt.dispose();
        }
        return {
          backend: report.backend,
          attempts: report.attempts,
          load: report.load,
          single,
          batch,
          ids: [single.prediction_id, ...batch.map((p: { prediction_id: string }) => p.prediction_id)],
          heartbeat: { ticks, maxGapMs, ms: performance.now() - t0 },
          stats: s,
        };
      } finally {
        clearInterval(hb);
      }
    },
    { options, rows: ROWS.map((r) => ({ history: r.features.history })) },
  ) as Promise<Scenario>;
}

/** A page on the worker's origin (`base`) with the runtime's module loaded (as an app would import it). */
async function openPage(context: import('playwright-core').BrowserContext, base: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${base}/v2/health/live`);
  await page.addScriptTag({ type: 'module', content: "import { createRuntime } from '/browser/runtime.js'; globalThis.createRuntime = createRuntime;" });
  await page.waitForFunction(() => 'createRuntime' in globalThis);
  return page;
}

/** Prediction ids (core/outcomes.ts): the time in base 36, 16 random bytes; `:<row>` for a row of the edge's batch. */
const PREDICTION_ID = /^[0-9a-z]{1,11}\.[A-Za-z0-9_-]{22}(:\d+)?$/;

function expectGolden(s: Scenario): void {
  // Every answer has an id of its own (the single call and the batch's copy of its row too: a cache hit is another prediction).
  expect(s.ids).toHaveLength(ROWS.length + 1);
  for (const id of s.ids) expect(id).toMatch(PREDICTION_ID);
  expect(new Set(s.ids).size).toBe(s.ids.length);
  const want = ROWS.map((r) => r.expected.int8);
  const verdict = compareGolden(manifest, s.batch, want, golden.tolerance);
  expect(verdict.reason).toBeUndefined();
  expect(verdict.ok).toBe(true);
  expect(s.single.map((x) => x.id)).toEqual(s.batch[0].movie_ids);
}

/** The main thread kept ticking: no stall anywhere near a session creation on the page (2-3 s). */
function expectResponsive(s: Scenario): void {
  expect(s.heartbeat.maxGapMs).toBeLessThan(500);
  expect(s.heartbeat.ticks).toBeGreaterThan(s.heartbeat.ms / 10 / 4);
}

describe('browser runtime in Chromium against wrangler dev', () => {
  it('WASM path (no WebGPU adapter): golden top-k, responsive page, Cache Storage on the second load, run-time demotion to the edge', async () => {
    const { context, close } = await launchChromium();
    try {
      const page = await openPage(context, sharedBase);
      const s = await scenario(page);
      expect(s.attempts[0]).toMatchObject({ backend: 'webgpu', ok: false });
      expect(s.attempts[0].reason).toMatch(/no WebGPU adapter|navigator.gpu/);
      expect(s.backend).toBe('wasm');
      expect(s.attempts[1].golden?.against).toBe('golden.json');
      expect(s.load.artifactFromCache).toBe(false);
      expectGolden(s);
      expectResponsive(s);
      expect(s.stats.served.wasm).toBeGreaterThanOrEqual(ROWS.length);
      // Every prediction was made on the device (one a cache hit): each one's record waits for the flush.
      expect(s.stats.telemetry.predictions).toMatchObject({ queued: ROWS.length + 1, dropped: 0 });
      // Concurrent calls were gathered into fewer worker runs than calls.
      expect(s.stats.batcher.batches).toBeLessThan(s.stats.batcher.items);

      // Second visit: the artifact comes from Cache Storage, and a failing backend demotes.
      const again = await scenario(page, { keep: true });
      expect(again.load.artifactFromCache).toBe(true);
      expectGolden(again);
      const demoted = await page.evaluate(async (history) => {
        const rt = (
          globalThis as unknown as {
            rt: {
              failNextRun(b: string, r: string): Promise<void>;
              recommend(h: number[], k: number): Promise<{ id: number }[]>;
              addEventListener(t: string, f: (e: Event) => void): void;
              backend: string;
              stats(): { last: { backend: string } };
              dispose(): void;
            };
          }
        ).rt;
        const events: unknown[] = [];
        rt.addEventListener('backendchange', (e) => events.push((e as CustomEvent).detail));
        await rt.failNextRun('wasm', 'drill: wasm lost');
        const recs = await rt.recommend([...history, 1], 10);
        const out = { backend: rt.backend, last: rt.stats().last.backend, events, ids: recs.map((r) => r.id) };
        rt.dispose();
        return out;
      }, ROWS[1].features.history);
      expect(demoted.backend).toBe('edge');
      expect(demoted.last).toBe('edge');
      expect(demoted.events).toEqual([{ from: 'wasm', to: 'edge', reason: 'wasm run failed: drill: wasm lost' }]);
      expect(demoted.ids).toHaveLength(10);
    } finally {
      await close();
    }
  });

  it('edge path (the WASM file fails to load): golden top-k from the worker, every skipped step named', async () => {
    const { context, close } = await launchChromium();
    try {
      // A real load failure: the .wasm requests from the inference worker are aborted.
      await context.route('**/browser/ort/*.wasm', (route) => route.abort('failed'));
      const page = await openPage(context, sharedBase);
      const s = await scenario(page);
      expect(s.backend).toBe('edge');
      expect(s.attempts.map((a) => [a.backend, a.ok])).toEqual([
        ['webgpu', false],
        ['wasm', false],
        ['edge', true],
      ]);
      expect(s.attempts[1].reason).toBeTruthy();
      expectGolden(s);
      expectResponsive(s);
      expect(s.stats.served.edge).toBeGreaterThanOrEqual(ROWS.length);
      // The edge's rows keep the edge's ids (it records them itself); only the cache hit was made on the device.
      expect(s.stats.telemetry.predictions).toMatchObject({ queued: 1, dropped: 0 });
    } finally {
      await close();
    }
  });

  it.skipIf(!webgpu)(
    `WebGPU path (SwiftShader adapter): checked against WASM on the golden set, then golden top-k; a lost device demotes to WASM${noWebgpu}`,
    async () => {
      const { context, close } = await launchChromium({ args: ['--enable-unsafe-webgpu'] });
      try {
        const page = await openPage(context, sharedBase);
        const s = await scenario(page);
        expect(s.attempts[0].reason).toBeUndefined();
        expect(s.backend).toBe('webgpu');
        expect(s.attempts[0].golden?.against).toMatch(/^wasm \(adapter: .*\)/);
        expect(s.attempts[0].golden!.maxAbsDiff).toBeLessThanOrEqual(golden.tolerance.score_abs);
        expectGolden(s);
        expectResponsive(s);
        expect(s.stats.served.webgpu).toBeGreaterThanOrEqual(ROWS.length - 1);

        // A lost device at run time: the runtime moves to WASM (the other ort build, loaded and
        // checked then, in the same worker) and the call still answers.
        const s2 = await scenario(page, { keep: true });
        expect(s2.backend).toBe('webgpu');
        const demoted = await page.evaluate(async (history) => {
          const rt = (
            globalThis as unknown as {
              rt: {
                failNextRun(b: string, r: string): Promise<void>;
                recommend(h: number[], k: number): Promise<{ id: number }[]>;
                addEventListener(t: string, f: (e: Event) => void): void;
                backend: string;
                stats(): { attempts: { backend: string; ok: boolean; golden?: { against: string } }[] };
                dispose(): void;
              };
            }
          ).rt;
          const events: unknown[] = [];
          rt.addEventListener('backendchange', (e) => events.push((e as CustomEvent).detail));
          await rt.failNextRun('webgpu', 'drill: device lost');
          const ids = (await rt.recommend(history, 10)).map((r) => r.id);
          const out = { backend: rt.backend, events, ids, attempts: rt.stats().attempts };
          rt.dispose();
          return out;
        }, golden.rows[20].features.history); // not among the rows above, so not in the runtime's cache
        expect(demoted.backend).toBe('wasm');
        expect(demoted.events).toEqual([{ from: 'webgpu', to: 'wasm', reason: 'webgpu run failed: drill: device lost' }]);
        expect(demoted.ids).toEqual(golden.rows[20].expected.int8.movie_ids);
        expect(demoted.attempts.at(-1)).toMatchObject({ backend: 'wasm', ok: true, golden: { against: 'golden.json' } });
      } finally {
        await close();
      }
    },
  );

  it('flight-delay through predict() on WASM: golden p_delay within tolerance, validation errors name the field', async () => {
    const flight = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/manifest.json'), 'utf8')) as ModelManifest;
    const fg = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/golden.json'), 'utf8')) as {
      tolerance: Record<string, number>;
      rows: { features: Record<string, unknown>; expected: { int8: { p_delay: number } } }[];
    };
    const rows = fg.rows.slice(0, 40);
    const { context, close } = await launchChromium();
    try {
      const page = await openPage(context, sharedBase);
      const out = await page.evaluate(
        async (instances) => {
          const { createRuntime } = globalThis as unknown as { createRuntime: (o: object) => any };
          const rt = createRuntime({ model: 'flight-delay', prefer: ['wasm'], telemetry: false });
          const report = await rt.ready;
          // One call of 40 instances, then 40 concurrent one-instance calls (gathered by the batcher).
          const whole = await rt.predict(instances);
          const apart = await Promise.all(instances.map((i: unknown) => rt.predict([i]).then((p: unknown[]) => p[0])));
          let error: unknown;
          try {
            await rt.predict([{ ...instances[0], hour: 31 }]);
          } catch (e) {
            error = { name: (e as Error).name, field: (e as { field?: string }).field, message: (e as Error).message };
          }
          rt.dispose();
          return { backend: report.backend, whole, apart, error };
        },
        rows.map((r) => r.features),
      );
      expect(out.backend).toBe('wasm');
      const want = rows.map((r) => r.expected.int8);
      expect(compareGolden(flight, out.whole, want, fg.tolerance)).toMatchObject({ ok: true });
      expect(compareGolden(flight, out.apart, want, fg.tolerance)).toMatchObject({ ok: true });
      expect(out.error).toMatchObject({ name: 'ValidationError', field: 'instances[0].hour' });
    } finally {
      await close();
    }
  });

  it('a model pushed to the registry (not a default) loads in the page by version: WASM, golden rows within tolerance, labels and class probabilities', async () => {
    // A small multiclass model written here (one FLOAT [N, 3] input, Gemm, Softmax, ArgMax),
    // imported as int8 with reference rows, and pushed as a person would.
    const dir = mkdtempSync(join(tmpdir(), 'dw-browser-push-'));
    try {
      const rnd = rng(7);
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', ['N', 3]);
      const w = g.init(
        'w',
        'float32',
        [3, 4],
        Array.from({ length: 12 }, () => rnd() * 4 - 2),
      );
      const b = g.init(
        'b',
        'float32',
        [4],
        Array.from({ length: 4 }, () => rnd() - 0.5),
      );
      const logits = g.op('Add', [g.op('MatMul', [x, w]), b]);
      g.op('Softmax', [logits], { axis: 1 }, 'probabilities');
      g.op('ArgMax', ['probabilities'], { axis: 1, keepdims: 0 }, 'label');
      g.output('label', 'int64', ['N']);
      g.output('probabilities', 'float32', ['N', 4]);
      writeFileSync(join(dir, 'tiny.onnx'), g.toBytes({ name: 'tiny' }));
      const csv = ['a,b,c', ...Array.from({ length: 300 }, () => [rnd() * 10, rnd() * 5 - 2, rnd()].map((v) => v.toFixed(4)).join(','))].join('\n');
      writeFileSync(join(dir, 'rows.csv'), csv);
      const report = await importModel({
        model: join(dir, 'tiny.onnx'),
        name: 'tiny-softmax',
        reference: join(dir, 'rows.csv'),
        version: '3',
        quantize: 'int8',
        out: join(dir, 'out'),
      });
      const form = new FormData();
      for (const f of Object.keys(report.files)) form.append(f, new Blob([readFileSync(join(dir, 'out', f))]), f);
      const pushed = await fetch(`${sharedBase}/v1/models/tiny-softmax/versions/3`, {
        method: 'PUT',
        body: form,
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
      });
      expect(pushed.status, await pushed.clone().text()).toBe(201);
      const golden = JSON.parse(readFileSync(join(dir, 'out/golden.json'), 'utf8')) as {
        tolerance: Record<string, number>;
        rows: { features: Record<string, number>; expected: { int8: Prediction } }[];
      };

      const { context, close } = await launchChromium();
      try {
        const page = await openPage(context, sharedBase);
        const out = await page.evaluate(
          async (instances) => {
            const { createRuntime } = globalThis as unknown as { createRuntime: (o: object) => any };
            const rt = createRuntime({ model: 'tiny-softmax', version: '3', prefer: ['wasm'], telemetry: false });
            const report = await rt.ready;
            const got = await rt.predict(instances);
            const version = rt.manifest.version;
            rt.dispose();
            let missing: string | undefined;
            const other = createRuntime({ model: 'tiny-softmax', version: '9', prefer: ['wasm'], telemetry: false });
            try {
              await other.ready;
            } catch (e) {
              missing = (e as Error).message;
            }
            other.dispose();
            return { backend: report.backend, attempts: report.attempts, got, version, missing };
          },
          golden.rows.map((r) => r.features),
        );
        expect(out.backend).toBe('wasm');
        expect(out.version).toBe('3');
        const tiny = report.manifest;
        expect(
          compareGolden(
            tiny,
            out.got,
            golden.rows.map((r) => r.expected.int8),
            golden.tolerance,
          ),
        ).toMatchObject({ ok: true });
        expect(out.missing).toMatch(/version_not_found|has no version "9"/);
      } finally {
        await close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('telemetry from the page reaches the aggregator and the operator API; sendBeacon on pagehide; bad tokens refused', async () => {
    // A worker of its own: its aggregator holds only what this test's pages send.
    const { base } = await newWorker();
    // The operator's view. Browser rows are told apart by the `backend` feature, which only
    // browser summaries carry. (Reads the aggregator, not this isolate's counters: wrangler dev
    // may restart the isolate when files change.)
    const drift = async () => {
      const res = await fetch(`${base}/v1/models/movielens-topk/drift`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
      expect(res.status).toBe(200);
      const d = (await res.json()) as { windows: { rows: number; features?: Record<string, { count: number; top?: { value: string; count: number }[] }> }[] };
      return {
        rows: d.windows.reduce((a, w) => a + (w.features?.backend?.count ?? 0), 0),
        backends: d.windows.flatMap((w) => w.features?.backend?.top ?? []).map((t) => t.value),
      };
    };
    /** Waits (bounded) until the operator's view satisfies `ok`; returns that view. */
    const until = async (what: string, ok: (d: Awaited<ReturnType<typeof drift>>) => boolean) => {
      let last: Awaited<ReturnType<typeof drift>> | undefined;
      return waitFor(
        async () => {
          last = await drift();
          return ok(last) && last;
        },
        { what: () => `${what} (the aggregator has ${JSON.stringify(last)})`, timeoutMs: 20_000, intervalMs: 250 },
      );
    };
    // Each path of the ladder, forced as the tests above force it, sends what it saw (one
    // recommend and the golden rows: 17 rows) and flushes.
    const paths: { backend: string; args?: string[]; noWasm?: boolean }[] = [
      { backend: 'wasm' },
      { backend: 'edge', noWasm: true },
      ...(webgpu ? [{ backend: 'webgpu', args: ['--enable-unsafe-webgpu'] }] : []),
    ];
    for (const path of paths) {
      const { context, close } = await launchChromium({ args: path.args });
      try {
        if (path.noWasm) await context.route('**/browser/ort/*.wasm', (route) => route.abort('failed'));
        expect((await scenario(await openPage(context, base))).backend).toBe(path.backend);
      } finally {
        await close();
      }
    }
    const flushed = await until(
      `${BACKENDS_SEEN.length * (ROWS.length + 1)} browser rows from ${BACKENDS_SEEN.join(', ')}`,
      (d) => d.rows >= BACKENDS_SEEN.length * (ROWS.length + 1) && BACKENDS_SEEN.every((b) => d.backends.includes(b)),
    );
    expect(flushed.rows).toBeGreaterThanOrEqual(BACKENDS_SEEN.length * (ROWS.length + 1));
    expect(flushed.backends).toEqual(expect.arrayContaining(BACKENDS_SEEN));

    const { context, close } = await launchChromium();
    try {
      const page = await openPage(context, base);
      // This page does not flush: what it saw leaves on pagehide, by sendBeacon.
      const before = (await drift()).rows;
      await scenario(page, { keep: true });
      const refused = await page.evaluate(async () => {
        const summary = new Uint8Array([1, 2, 3]);
        const post = (q: string) =>
          fetch(`/v1/telemetry${q}`, { method: 'POST', body: summary }).then(async (r) => [
            r.status,
            ((await r.json()) as { error: { code: string } }).error.code,
          ]);
        return [await post(''), await post('?token=v1.e30.AAAA'), await post('?token=garbage')];
      });
      expect(refused).toEqual([
        [401, 'missing_token'],
        [401, 'invalid_token'],
        [401, 'invalid_token'],
      ]);
      await page.goto('about:blank');
      const after = await until(`the beacon's ${ROWS.length + 1} rows`, (d) => d.rows >= before + ROWS.length + 1);
      expect(after.rows).toBeGreaterThanOrEqual(before + ROWS.length + 1);
    } finally {
      await close();
    }
    expect((await fetch(`${base}/v1/models/movielens-topk/drift`)).status).toBe(401);
  }, 180_000);

  it('/demo recommends from a few picks on the device, says who answered and how fast, and keeps working offline', async () => {
    const base = sharedBase;
    const { context, close } = await launchChromium();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/demo`);
      await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
      expect(await page.getAttribute('body', 'data-ready')).toBe('wasm');
      const pick = async (query: string) => {
        await page.fill('#search', query);
        await page.locator('#matches button').first().click();
      };
      const shown = async () => Promise.all((await page.locator('#results li').all()).map(async (li) => Number(await li.getAttribute('data-id'))));
      await pick('Star Wars');
      await page.waitForSelector('#results li');
      const first = await shown();
      expect(first).toHaveLength(10);
      expect(await page.textContent('#answered-by')).toBe('wasm');
      expect(await page.textContent('#answered-ms')).toMatch(/^\d+\.\d ms$/);

      // A click on a recommendation is feedback on that list (issue 15): the page's records of its
      // on-device predictions go first, then the click, with the page's telemetry token; the edge
      // joins it, and the operator sees the on-device version's list clicked.
      const version = await page.evaluate(
        () => (globalThis as unknown as { driftwatch: { runtime: { manifest: { version: string } } } }).driftwatch.runtime.manifest.version,
      );
      await page.locator('#results li button.rec').nth(2).click();
      await page.waitForSelector('body[data-clicked]', { timeout: 20_000 });
      expect(await page.getAttribute('body', 'data-clicked')).toBe('joined');
      expect(await page.textContent('#click-status')).toBe('joined');
      let seen: unknown;
      const clicked = await waitFor(
        async () => {
          const res = await fetch(`${base}/v1/models/movielens-topk/performance`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
          expect(res.status).toBe(200);
          const perf = (await res.json()) as { total: Record<string, { predicted: number; labelled: number; clicks: number; ctr_at: Record<string, number> }> };
          seen = perf.total;
          const v = perf.total[version];
          return v && v.labelled >= 1 && v.clicks >= 1 && v;
        },
        { what: () => `version ${version}'s click in the performance route (it shows ${JSON.stringify(seen)})`, timeoutMs: 20_000, intervalMs: 250 },
      );
      expect(clicked.predicted).toBeGreaterThanOrEqual(1);
      expect(clicked.ctr_at['3']).toBeGreaterThan(0);

      // Network cut: the model is on the device, so another pick still gets answers.
      await context.setOffline(true);
      await pick('Matrix');
      const next = await waitFor(
        async () => {
          const ids = await shown();
          return ids.length > 0 && ids.join() !== first.join() && ids;
        },
        { what: 'the offline pick to change the recommendations', timeoutMs: 10_000, intervalMs: 50 },
      );
      expect(next).toHaveLength(10);
      expect(next).not.toEqual(first);
      expect(await page.textContent('#answered-by')).toBe('wasm');
      expect(await page.textContent('#status')).toContain('offline');
      expect(await page.locator('.chip').count()).toBe(2);
      await context.setOffline(false);
    } finally {
      await close();
    }
  });

  it('offline, telemetry stays within its outbox bound (oldest windows merged) and arrives whole once back online', async () => {
    // A worker of its own: nothing but this page sends to its aggregator, so the rows it holds
    // change only by what this page sends.
    const { base } = await newWorker();
    const rowsSeen = async () => {
      const res = await fetch(`${base}/v1/models/movielens-topk/drift`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
      const d = (await res.json()) as { windows: { features?: Record<string, { count: number }> }[] };
      return d.windows.reduce((a, w) => a + (w.features?.backend?.count ?? 0), 0);
    };
    const { context, close } = await launchChromium();
    try {
      const page = await openPage(context, base);
      await page.evaluate(async () => {
        const { createRuntime } = globalThis as unknown as { createRuntime: (o: object) => { ready: Promise<unknown> } };
        const rt = createRuntime({ model: 'movielens-topk', prefer: ['wasm'], telemetry: { intervalMs: 100, maxOutbox: 3 } });
        (globalThis as unknown as { rt: unknown }).rt = rt;
        await rt.ready;
      });
      // Loading observes no rows: nothing is on its way to the aggregator.
      const before = await rowsSeen();
      await context.setOffline(true);
      const offline = await page.evaluate(
        async (histories) => {
          const rt = (
            globalThis as unknown as {
              rt: { recommend(h: number[], k: number): Promise<unknown>; stats(): { telemetry: { outbox: number; failures: number; sent: number } } };
            }
          ).rt;
          let maxOutbox = 0;
          for (const h of histories) {
            await rt.recommend(h, 10);
            // The clock is the point: windows close every 100 ms, so these rows span several windows, whose flushes fail.
            await new Promise((r) => setTimeout(r, 60));
            maxOutbox = Math.max(maxOutbox, rt.stats().telemetry.outbox);
          }
          return { ...rt.stats().telemetry, maxOutbox };
        },
        ROWS.map((r) => r.features.history),
      );
      expect(offline.failures).toBeGreaterThan(0);
      expect(offline.sent).toBe(0);
      expect(offline.maxOutbox).toBeLessThanOrEqual(3);
      await context.setOffline(false);
      const online = await page.evaluate(async () => {
        const rt = (globalThis as unknown as { rt: { flushTelemetry(): Promise<void>; stats(): { telemetry: { outbox: number; sent: number } } } }).rt;
        await rt.flushTelemetry();
        return rt.stats().telemetry;
      });
      expect(online.outbox).toBe(0);
      expect(online.sent).toBeGreaterThanOrEqual(1);
      expect(online.sent).toBeLessThanOrEqual(4);
      let after = before;
      await waitFor(async () => (after = await rowsSeen()) >= before + ROWS.length, {
        what: () => `the ${ROWS.length} rows seen offline in the aggregator (it has ${after - before} more than before)`,
        timeoutMs: 20_000,
        intervalMs: 250,
      });
      // Every row seen offline, no more: merged windows lost time resolution, not rows.
      expect(after - before).toBe(ROWS.length);
    } finally {
      await close();
    }
  }, 120_000);

  it('/demo reloads and recommends with the worker gone, once loaded (service worker + Cache Storage)', async () => {
    // A worker of its own, since this test stops it.
    const { base, child } = await newWorker();
    const { context, close } = await launchChromium();
    try {
      const page = await context.newPage();
      await page.goto(`${base}/demo`);
      await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
      await page.waitForFunction(
        () => !!(globalThis as unknown as { navigator: { serviceWorker: { controller: unknown } } }).navigator.serviceWorker.controller,
        undefined,
        { timeout: 30_000 },
      );
      // Once more online, now through the service worker, which keeps what it serves.
      await page.reload();
      await page.waitForSelector('body[data-ready]', { timeout: 60_000 });

      await stop(child);
      expect(
        await fetch(`${base}/healthz`).then(
          () => 'up',
          () => 'down',
        ),
      ).toBe('down');

      await page.reload();
      await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
      expect(await page.getAttribute('body', 'data-ready')).toBe('wasm');
      expect(await page.textContent('#status')).toContain('from Cache Storage');
      await page.fill('#search', 'Toy Story');
      await page.locator('#matches button').first().click();
      await page.waitForSelector('#results li');
      expect(await page.locator('#results li').count()).toBe(10);
      expect(await page.textContent('#answered-by')).toBe('wasm');
    } finally {
      await close();
    }
  }, 120_000);
});
