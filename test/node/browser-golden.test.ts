// The browser runtime's platform-free parts in Node: the golden check that decides whether a
// backend may be used, and the batching of one-row requests (concat along N, k at the batch's
// largest, outputs cut back per row), run on the real int8 model with onnxruntime-node.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { compareGolden } from '../../browser/golden.ts';
import { concatRequests, toPredictions, type Prediction } from '../../browser/tensors.ts';
import { encodeInstances, type ModelManifest, type Tensor } from '../../core/index.ts';
import { ROOT } from '../support/servers.ts';

const load = (model: string, file: string) => JSON.parse(readFileSync(join(ROOT, 'models', model, file), 'utf8'));
const movie = load('movielens-topk', 'manifest.json') as ModelManifest;
const movieGolden = load('movielens-topk', 'golden.json') as {
  tolerance: Record<string, number>;
  rows: { features: { history: number[]; k: number }; expected: { int8: Prediction } }[];
};
const flight = load('flight-delay', 'manifest.json') as ModelManifest;
const flightGolden = load('flight-delay', 'golden.json') as {
  tolerance: Record<string, number>;
  rows: { features: Record<string, unknown>; expected: { int8: Prediction } }[];
};

async function session(model: string) {
  const s = await ort.InferenceSession.create(readFileSync(join(ROOT, 'models', model, 'model.int8.onnx')));
  return async (feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> => {
    const input = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data as never, t.dims)]));
    const out = await s.run(input);
    return Object.fromEntries(
      Object.entries(out).map(([k, t]) => [k, { dtype: t.type as Tensor['dtype'], dims: [...t.dims], data: t.data as Tensor['data'] }]),
    );
  };
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));

describe('compareGolden', () => {
  const want = movieGolden.rows.map((r) => r.expected.int8);

  it('accepts onnxruntime-node running the int8 graph on the golden rows', async () => {
    const run = await session('movielens-topk');
    const enc = encodeInstances(movie, { instances: movieGolden.rows.map((r) => r.features) }, { maxBatch: 1024 });
    const v = compareGolden(movie, toPredictions(movie, await run(enc.feeds), enc.rows), want, movieGolden.tolerance);
    expect(v).toMatchObject({ ok: true, rows: movieGolden.rows.length, minOverlap: 10 });
    expect(v.maxAbsDiff).toBeLessThanOrEqual(movieGolden.tolerance.score_abs);
  });

  it('refuses scores off by more than the tolerance, and too few ids in common, naming the row', () => {
    const off = clone(want);
    (off[3].scores as number[])[2] += 2 * movieGolden.tolerance.score_abs;
    const v = compareGolden(movie, off, want, movieGolden.tolerance);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/^row 3: a score differs by 2\.00e-3/);
    // Scores are not enforced for the edge (it may answer from its float32 fallback); ids are.
    expect(compareGolden(movie, off, want, movieGolden.tolerance, { scores: false }).ok).toBe(true);

    const oneSwapped = clone(want);
    (oneSwapped[5].movie_ids as number[])[9] = -1;
    expect(compareGolden(movie, oneSwapped, want, movieGolden.tolerance)).toMatchObject({ ok: true, minOverlap: 9 });
    const twoSwapped = clone(oneSwapped);
    (twoSwapped[5].movie_ids as number[])[8] = -2;
    expect(compareGolden(movie, twoSwapped, want, movieGolden.tolerance)).toMatchObject({ ok: false, reason: 'row 5: 8 of 10 ids in common, need 9' });

    const nan = clone(want);
    (nan[0].scores as number[])[0] = NaN;
    expect(compareGolden(movie, nan, want, movieGolden.tolerance).ok).toBe(false);
    expect(compareGolden(movie, want.slice(1), want, movieGolden.tolerance).reason).toBe('31 rows, expected 32');
  });

  it('checks scalar outputs within <output>_abs (flight-delay)', async () => {
    const run = await session('flight-delay');
    const enc = encodeInstances(flight, { instances: flightGolden.rows.map((r) => r.features) }, { maxBatch: 1024 });
    const got = toPredictions(flight, await run(enc.feeds), enc.rows);
    const fwant = flightGolden.rows.map((r) => r.expected.int8);
    expect(compareGolden(flight, got, fwant, flightGolden.tolerance).ok).toBe(true);
    got[7].p_delay = (got[7].p_delay as number) + 10 * flightGolden.tolerance.p_delay_abs;
    expect(compareGolden(flight, got, fwant, flightGolden.tolerance)).toMatchObject({ ok: false });
  });
});

describe('batching one-row requests (concatRequests / toPredictions)', () => {
  it('gives every row what it gets alone, cut to its own k, with k at the batch maximum', async () => {
    const run = await session('movielens-topk');
    const ks = [3, 10, 1, 7, 10, 5];
    const items = ks.map((k, i) => encodeInstances(movie, { instances: [{ history: movieGolden.rows[i].features.history, k }] }));
    const batch = concatRequests(movie, items);
    expect(batch.rows).toBe(ks.length);
    expect(batch.feeds.history.dims).toEqual([ks.length, 50]);
    expect(Number(batch.feeds.k.data[0])).toBe(10);
    const together = toPredictions(movie, await run(batch.feeds), batch.rows, ks);
    for (let i = 0; i < ks.length; i++) {
      const [alone] = toPredictions(movie, await run(items[i].feeds), 1);
      expect(together[i].movie_ids).toEqual(alone.movie_ids);
      expect(together[i].movie_ids).toHaveLength(ks[i]);
      (together[i].scores as number[]).forEach((s, j) => expect(s).toBeCloseTo((alone.scores as number[])[j], 5));
    }
  });

  it('concatenates scalar inputs along N (flight-delay)', async () => {
    const run = await session('flight-delay');
    const items = flightGolden.rows.slice(0, 5).map((r) => encodeInstances(flight, { instances: [r.features] }));
    const batch = concatRequests(flight, items);
    const together = toPredictions(flight, await run(batch.feeds), batch.rows);
    for (let i = 0; i < items.length; i++) expect(together[i].p_delay).toBeCloseTo(toPredictions(flight, await run(items[i].feeds), 1)[0].p_delay as number, 6);
  });
});
