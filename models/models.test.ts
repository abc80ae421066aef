// The committed model artifacts against their manifests: hashes and sizes, graph inputs and
// outputs, the feature encoding, the baseline profile, the replay stream, and the golden set on
// every backend (onnxruntime-web's WASM backend, as served, and onnxruntime-node).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSummary, type BuiltManifest } from '../core/index.ts';
import type { TestTensor } from '../test/support/onnx-testdata.ts';
import { ortNodeCpu, ortWebWasm, type Backend } from '../test/support/ort-backends.ts';

const MODELS = ['flight-delay', 'movielens-topk'];
const BACKENDS: Backend[] = [ortWebWasm(), ortNodeCpu()];
const MAX_INT8_BYTES = 2 * 1024 * 1024;

function load(name: string) {
  const dir = join(import.meta.dirname, name);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as BuiltManifest;
  const file = (f: string) => new Uint8Array(readFileSync(join(dir, f)));
  return { dir, manifest, file };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface GoldenRow {
  features: Record<string, unknown>;
  inputs: Record<string, number | number[]>;
  expected: Record<'float32' | 'int8', Record<string, number | number[]>>;
}

/** Encodes named features as the manifest says (what the worker and browser do). */
function encode(manifest: BuiltManifest, features: Record<string, unknown>): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  for (const f of manifest.features) {
    const v = features[f.name];
    if (f.kind === 'numeric') out[f.input] = v as number;
    else if (f.kind === 'categorical') out[f.input] = f.vocabulary.indexOf(String(v)) + 1;
    else out[f.input] = (v as unknown[]).map((x) => f.vocabulary.indexOf(String(x)) + 1).filter((i) => i > 0);
  }
  return out;
}

function feeds(manifest: BuiltManifest, rows: GoldenRow[], k = 10): Record<string, TestTensor> {
  const t: Record<string, TestTensor> = {};
  for (const inp of manifest.inputs) {
    if (inp.name === 'k') {
      t.k = { name: 'k', dataType: 'int64', dims: [1], data: BigInt64Array.of(BigInt(k)) };
    } else if (inp.shape.length === 2) {
      const h = Math.max(...rows.map((r) => (r.inputs[inp.name] as number[]).length));
      const data = new BigInt64Array(rows.length * h);
      rows.forEach((r, i) => (r.inputs[inp.name] as number[]).forEach((v, j) => (data[i * h + j] = BigInt(v))));
      t[inp.name] = { name: inp.name, dataType: 'int64', dims: [rows.length, h], data };
    } else {
      const col = rows.map((r) => r.inputs[inp.name] as number);
      t[inp.name] =
        inp.dtype === 'int64'
          ? { name: inp.name, dataType: 'int64', dims: [rows.length], data: BigInt64Array.from(col, (v) => BigInt(v)) }
          : { name: inp.name, dataType: 'float32', dims: [rows.length], data: Float32Array.from(col) };
    }
  }
  return t;
}

for (const name of MODELS) {
  describe(name, () => {
    const { manifest, file } = load(name);

    it('every artifact matches its manifest sha256 and size; int8 is under 2 MB', () => {
      for (const a of [manifest.artifacts.float32, manifest.artifacts.int8, manifest.baseline, manifest.golden, manifest.replay]) {
        const bytes = file(a.file);
        expect(bytes.length, a.file).toBe(a.bytes);
        expect(sha256(bytes), a.file).toBe(a.sha256);
      }
      expect(manifest.artifacts.int8.bytes).toBeLessThan(MAX_INT8_BYTES);
      expect(manifest.artifacts.int8.bytes).toBeLessThan(manifest.artifacts.float32.bytes);
    });

    it('the manifest records float32 and int8 quality side by side', () => {
      const metrics = Object.values(manifest.quality.metrics);
      expect(metrics.length).toBeGreaterThan(1);
      for (const m of metrics) {
        expect(Number.isFinite(m.float32)).toBe(true);
        expect(Number.isFinite(m.int8)).toBe(true);
      }
    });

    it('the baseline profile decodes and sketches every feature and sketched output', () => {
      const p = decodeSummary(file(manifest.baseline.file));
      expect(p.model).toBe(name);
      expect(p.source.kind).toBe('baseline');
      expect(p.counters.rows).toBe(manifest.baseline.rows);
      for (const f of manifest.features) expect(p.features.has(f.name), f.name).toBe(true);
      for (const o of manifest.sketchedOutputs) expect(p.outputs.has(o.name), o.name).toBe(true);
    });

    it('the replay stream is in time order and uses the manifest feature names', () => {
      const lines = new TextDecoder().decode(file(manifest.replay.file)).trim().split('\n');
      expect(lines.length).toBe(manifest.replay.rows);
      let prev = '';
      const names = new Set([...manifest.features.map((f) => f.name), ...(manifest.parameters ?? []).map((p) => p.name)]);
      for (const line of lines) {
        const row = JSON.parse(line) as { time: string; features: Record<string, unknown> };
        expect(row.time >= prev).toBe(true);
        prev = row.time;
        for (const k of Object.keys(row.features)) expect(names.has(k), k).toBe(true);
      }
    });

    const golden = JSON.parse(new TextDecoder().decode(file(manifest.golden.file))) as { rows: GoldenRow[]; tolerance: Record<string, number> };

    it('golden inputs are the manifest encoding of the golden features', () => {
      for (const row of golden.rows) {
        const enc = encode(manifest, row.features);
        for (const [k, v] of Object.entries(enc)) expect(v, k).toEqual(row.inputs[k]);
      }
    });

    for (const backend of BACKENDS) {
      for (const precision of ['int8', 'float32'] as const) {
        it(`golden set on ${backend.name}, ${precision}`, async () => {
          const session = await backend.createSession(file(manifest.artifacts[precision].file));
          expect([...session.inputNames].sort()).toEqual(manifest.inputs.map((i) => i.name).sort());
          expect([...session.outputNames].sort()).toEqual(manifest.outputs.map((o) => o.name).sort());
          // Variable-length histories are padded per batch; run one row at a time for those.
          const batches = manifest.task === 'top-k-recommendation' ? golden.rows.map((r) => [r]) : [golden.rows];
          for (const rows of batches) {
            const out = await session.run(feeds(manifest, rows));
            rows.forEach((row, i) => {
              const want = row.expected[precision];
              if (manifest.task === 'binary-classification') {
                const got = (out.p_delay.data as Float32Array)[i];
                expect(Math.abs(got - (want.p_delay as number)), `row ${i}`).toBeLessThanOrEqual(golden.tolerance.p_delay_abs);
              } else {
                const ids = Array.from(out.movie_ids.data as BigInt64Array, Number);
                const scores = Array.from(out.scores.data as Float32Array);
                const wantIds = want.movie_ids as number[];
                expect(ids.filter((id) => wantIds.includes(id)).length).toBeGreaterThanOrEqual(golden.tolerance.min_overlap_at_10);
                scores.forEach((s, j) => expect(Math.abs(s - (want.scores as number[])[j])).toBeLessThanOrEqual(golden.tolerance.score_abs));
              }
            });
          }
          await session.release();
        });
      }
    }
  });
}
