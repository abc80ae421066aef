// npm run bench:models — the default models, float32 against int8, side by side in one run:
// artifact size, quality on the held-out later period (measured by models:build, read from the
// manifests), and per-call latency at batch 1 and 32 in onnxruntime-web (WASM, one thread, as
// served at the edge; here in Node) and onnxruntime-node (CPU).
//
// Options: --ms 800 (measuring time per cell).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BuiltManifest } from '../core/index.ts';
import type { TestTensor } from '../test/support/onnx-testdata.ts';
import { ortNodeCpu, ortWebWasm, type Backend } from '../test/support/ort-backends.ts';
import { markdownTable, progress } from './lib/report.ts';

const args = process.argv.slice(2);
const MS = Number(args[args.indexOf('--ms') + 1] || 0) || 800;
const MODELS = join(import.meta.dirname, '..', 'models');

interface Golden {
  rows: { inputs: Record<string, number | number[]> }[];
}

/** A batch of `n` rows cycled from the golden inputs, as the model's feeds. */
function batch(manifest: BuiltManifest, golden: Golden, n: number): Record<string, TestTensor> {
  const rows = Array.from({ length: n }, (_, i) => golden.rows[i % golden.rows.length].inputs);
  const feeds: Record<string, TestTensor> = {};
  for (const inp of manifest.inputs) {
    if (inp.name === 'k') feeds.k = { name: 'k', dataType: 'int64', dims: [1], data: BigInt64Array.of(10n) };
    else if (inp.shape.length === 2) {
      const h = 50;
      const data = new BigInt64Array(n * h);
      rows.forEach((r, i) => (r[inp.name] as number[]).slice(-h).forEach((v, j) => (data[i * h + j] = BigInt(v))));
      feeds[inp.name] = { name: inp.name, dataType: 'int64', dims: [n, h], data };
    } else {
      const col = rows.map((r) => r[inp.name] as number);
      feeds[inp.name] =
        inp.dtype === 'int64'
          ? { name: inp.name, dataType: 'int64', dims: [n], data: BigInt64Array.from(col, (v) => BigInt(v)) }
          : { name: inp.name, dataType: 'float32', dims: [n], data: Float32Array.from(col) };
    }
  }
  return feeds;
}

async function measure(backend: Backend, model: Uint8Array, feeds: Record<string, TestTensor>): Promise<{ p50: number; p99: number; runs: number }> {
  const session = await backend.createSession(model);
  for (let i = 0; i < 30; i++) await session.run(feeds);
  const times: number[] = [];
  const end = performance.now() + MS;
  while (performance.now() < end && times.length < 200_000) {
    const t = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t);
  }
  await session.release();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length / 2)] * 1000, p99: times[Math.floor(times.length * 0.99)] * 1000, runs: times.length };
}

const backends = [ortWebWasm(), ortNodeCpu()];
const rows: (string | number)[][] = [];
for (const name of ['flight-delay', 'movielens-topk']) {
  const dir = join(MODELS, name);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as BuiltManifest;
  const golden = JSON.parse(readFileSync(join(dir, manifest.golden.file), 'utf8')) as Golden;
  for (const precision of ['float32', 'int8'] as const) {
    const model = new Uint8Array(readFileSync(join(dir, manifest.artifacts[precision].file)));
    const quality = Object.entries(manifest.quality.metrics)
      .filter(([k]) => !k.startsWith('max_abs'))
      .slice(0, 2)
      .map(([k, v]) => `${k} ${v[precision].toFixed(4)}`)
      .join(', ');
    const cells: string[] = [];
    for (const backend of backends) {
      for (const n of [1, 32]) {
        progress(`${name} ${precision} ${backend.name} batch ${n}`);
        const r = await measure(backend, model, batch(manifest, golden, n));
        cells.push(`${r.p50.toFixed(0)} / ${r.p99.toFixed(0)}`);
      }
    }
    rows.push([name, precision, `${(manifest.artifacts[precision].bytes / 1024).toFixed(0)} KB`, quality, ...cells]);
  }
}

console.log(`\n## Models: float32 vs int8, per-call latency p50 / p99 in µs (Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)})\n`);
console.log(
  markdownTable(
    ['model', 'precision', 'size', 'quality (held-out later period)', 'ort-web wasm b=1', 'ort-web wasm b=32', 'ort-node b=1', 'ort-node b=32'],
    rows,
  ),
);
console.log('\nQuality baselines: flight-delay naive Bayes AUC and movielens-topk popularity recall@10 are in each manifest (quality.metrics.*.baseline).');
