// Soak: the worker under `wrangler dev` takes 11k requests of both models at every batch size,
// with bad inputs among them (malformed JSON, wrong types, unknown models, huge ids, too many
// rows), and its memory stays flat after a warm-up. What is ours to bound is measured through the
// worker's inspector: the JS heap (the cache, telemetry windows, per-isolate state) and
// onnxruntime-web's WebAssembly memory, which grows to the largest batch once and never shrinks
// (a WebAssembly.Memory cannot), so it is bounded by the largest batch the batcher can form.
// workerd's RSS is printed beside them; it also holds what the runtime keeps (see bench/soak.ts
// for the attribution runs and the figures).
import { describe, expect, it } from 'vitest';
import { quantile, soak, tally } from '../support/load.ts';
import { freePort } from '../support/servers.ts';

const WARMUP = 1000;
const REQUESTS = 10_000;
/** The whole run, warm-up included (the test's timeout adds the worker's start and stop). */
const BUDGET_MS = 150_000;
/** JS heap used, at rest, at any sample: the cache's 8 MiB budget, telemetry windows and per-isolate state, plus garbage not yet collected. */
const HEAP_BOUND_MIB = 96;
/** onnxruntime-web's WebAssembly memory: 16 MiB after load; a batch of maxBatch full requests needs more, once. */
const WASM_BOUND_MIB = 128;

describe('soak through wrangler dev', () => {
  it('10k+ mixed requests: every answer is right or shed, and the heap and wasm memory stay flat after the warm-up', async () => {
    const r = await soak({ port: await freePort(), warmup: WARMUP, requests: REQUESTS, concurrency: 16, every: 2000, budgetMs: BUDGET_MS });
    const after = r.samples[1];
    const last = r.samples.at(-1)!;
    console.log(
      [
        `soak: ${r.results.length} requests in ${(r.elapsedMs / 1000).toFixed(1)} s (p50 ${quantile(
          r.results.map((x) => x.ms),
          0.5,
        ).toFixed(0)} ms, p99 ${quantile(
          r.results.map((x) => x.ms),
          0.99,
        ).toFixed(0)} ms); user workerd pids ${r.workerPids.join(', ')}`,
        '| requests | workerd RSS MiB | proxy workerd RSS MiB | JS heap used MiB | ArrayBuffer backing MiB | wasm memory MiB |',
        '| --- | --- | --- | --- | --- | --- |',
        ...r.samples.map(
          (s) =>
            `| ${s.requests} | ${s.rssMiB.toFixed(1)} | ${s.proxyMiB.toFixed(1)} | ${s.heapMiB.toFixed(1)} | ${s.backingMiB.toFixed(1)} | ${s.wasmMiB.toFixed(1)} |`,
        ),
        `growth after warm-up (${after.requests} -> ${last.requests}): RSS ${(last.rssMiB - after.rssMiB).toFixed(1)} MiB, JS heap ${(last.heapMiB - after.heapMiB).toFixed(1)} MiB, wasm ${(last.wasmMiB - after.wasmMiB).toFixed(1)} MiB`,
        `answers: ${tally(r.results)}`,
        `worker: ${JSON.stringify(r.stats)}`,
      ].join('\n'),
    );
    // A reload by wrangler (a source file changed during the run) starts a new isolate: figures
    // across it do not compare, so the measured part must have run in one process.
    expect(
      new Set(r.samples.slice(1).map((s) => s.pid)).size,
      `wrangler restarted the worker after the warm-up (a source file changed?): pids ${r.workerPids.join(', ')}`,
    ).toBe(1);
    expect(r.measured, `only ${r.measured} of ${REQUESTS} requests after the warm-up within ${BUDGET_MS / 1000} s`).toBe(REQUESTS);
    // Every request got an answer that is right for it: 200, the 4xx its fault calls for, or a 503
    // that sheds load (before the body is read, so bad inputs may be shed too); never a 500, a
    // hang or non-JSON.
    const wrong = r.results.filter((x) => !x.ok && !(x.status === 503 && x.code !== 'non-json'));
    expect(wrong.length, tally(wrong)).toBe(0);
    expect(r.results.filter((x) => x.kind === 'flight' && x.status === 200).length).toBeGreaterThan(REQUESTS * 0.25);
    expect(r.results.filter((x) => x.kind === 'movies' && x.status === 200).length).toBeGreaterThan(REQUESTS * 0.15);
    for (const s of r.samples.slice(1)) {
      expect(s.heapMiB, `JS heap at ${s.requests} requests`).toBeLessThan(HEAP_BOUND_MIB);
      // Grows to the largest batch the batcher forms (at most maxBatch requests), never shrinks.
      expect(s.wasmMiB, `wasm memory at ${s.requests} requests`).toBeLessThanOrEqual(WASM_BOUND_MIB);
    }
  }, 300_000);
});
