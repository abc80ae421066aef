/**
 * Shadow versions: run on the served request after the answer is sent, compared with the served
 * outputs, each with its own window profile. They never delay or change an answer.
 */
import { observedFromFeeds, shadowVersions, TDigest, type ModelManifest, type RoutingTable, type Tensor } from '../../core/index.ts';
import type { EngineRequest, ModelEngine } from '../engine/model-engine.ts';
import type { Background } from './background.ts';
import type { Runtime, ShadowStats } from './runtime.ts';
import { toPredictions } from './tensors.ts';

/**
 * Runs the shadow versions on the same request after the response is sent (waitUntil): they
 * never delay or change it and never use the caller's budget. Their agreement with the served
 * output is recorded per version; a shadow that fails is counted and harms nothing.
 */
export function shadow(
  r: Runtime,
  background: Background,
  e: ModelEngine,
  table: RoutingTable | undefined,
  key: string,
  served: string,
  req: EngineRequest,
  outputs: Record<string, Tensor>,
): void {
  if (!table) return;
  const names = shadowVersions(table, key, served);
  if (names.length === 0) return;
  const model = e.manifest.name;
  const work = (async () => {
    // The served inputs as the profiles name them, once for every shadow version.
    const observed = r.profiler ? observedFromFeeds(e.manifest, req.feeds, req.rows) : [];
    for (const v of names) {
      const engine = r.versions.get(model)?.get(v);
      if (!engine) continue;
      if (!r.shadows.has(model)) r.shadows.set(model, new Map());
      const byV = r.shadows.get(model)!;
      if (!byV.has(v)) byV.set(v, { runs: 0, errors: 0, sameClass: 0, scoreDiff: new TDigest({ compression: 50 }), overlap: new TDigest({ compression: 50 }) });
      const st = byV.get(v)!;
      st.runs++;
      const t0 = performance.now();
      try {
        const out = await engine.infer(req);
        const agreement = compare(e.manifest, outputs, out, st);
        // The shadow's own profile: its outputs on the served inputs, and how often it agrees.
        const predictions = toPredictions(e.manifest, out, req.rows);
        r.profiler?.observe(
          engine.manifest,
          v,
          observed.map((features, i) => ({ features, outputs: (predictions[i] ?? {}) as Record<string, number> })),
          performance.now() - t0,
          'shadow',
          agreement,
        );
      } catch {
        st.errors++;
        r.profiler?.observe(
          engine.manifest,
          v,
          observed.map((features) => ({ features, outputs: {} })),
          performance.now() - t0,
          'shadow',
          { errors: 1 },
        );
      }
    }
  })();
  background(work);
}

/** A regression shadow agrees with the served value within this relative difference. */
export const REGRESSION_AGREEMENT = 0.01;

const argmax = (p: Float32Array, r: number, c: number) => {
  let best = 0;
  for (let j = 1; j < c; j++) if (p[r * c + j] > p[r * c + best]) best = j;
  return best;
};

/**
 * Agreement of a shadow's outputs with the served ones (see ShadowStats), also returned as
 * counters for its window profile: `shadowCompared` (rows, or top-k slots for ranking models)
 * and `shadowAgree`: binary classifiers, rows on the same side of 0.5; multiclass ones, rows
 * with the same label; regressors, rows whose values differ by at most 1% (relative); ranking
 * models, slots whose id is in the served top-k. `scoreDiff` holds |served − shadow| of the
 * score (binary), the largest class-probability gap (multiclass), the relative difference
 * (regression), or that of the first score (ranking).
 */
export function compare(
  m: ModelManifest,
  served: Record<string, Tensor>,
  shadow: Record<string, Tensor>,
  st: ShadowStats,
): { shadowCompared: number; shadowAgree: number } {
  if (m.task === 'binary-classification') {
    const output = m.outputs[0].name;
    const a = served[output].data as Float32Array;
    const b = shadow[output].data as Float32Array;
    let agree = 0;
    for (let i = 0; i < a.length; i++) {
      if (a[i] >= 0.5 === b[i] >= 0.5) agree++;
      st.scoreDiff.add(Math.abs(a[i] - b[i]));
    }
    st.sameClass += agree;
    return { shadowCompared: a.length, shadowAgree: agree };
  }
  if (m.task === 'multiclass-classification') {
    // The label (an integer output of one value per row) agrees or not; the probabilities' largest gap is the score difference.
    const label = m.outputs.find((o) => o.dtype !== 'float32' && o.shape.length === 1)?.name;
    const probs = m.outputs.find((o) => o.dtype === 'float32')?.name;
    const rows = served[(label ?? probs)!].dims[0];
    let agree = 0;
    for (let r = 0; r < rows; r++) {
      if (label) agree += Number(served[label].data[r]) === Number(shadow[label].data[r]) ? 1 : 0;
      if (probs) {
        const c = served[probs].dims[1] ?? 1;
        let gap = 0;
        for (let j = 0; j < c; j++)
          gap = Math.max(gap, Math.abs((served[probs].data as Float32Array)[r * c + j] - (shadow[probs].data as Float32Array)[r * c + j]));
        if (!label) agree += argmax(served[probs].data as Float32Array, r, c) === argmax(shadow[probs].data as Float32Array, r, c) ? 1 : 0;
        st.scoreDiff.add(gap);
      }
    }
    st.sameClass += agree;
    return { shadowCompared: rows, shadowAgree: agree };
  }
  if (m.task === 'regression') {
    // The relative difference of the values (to the larger of the two, at least 1e-9); within 1% agrees.
    const output = m.outputs.find((o) => o.dtype === 'float32')!.name;
    const a = served[output].data as Float32Array;
    const b = shadow[output].data as Float32Array;
    let agree = 0;
    for (let i = 0; i < a.length; i++) {
      const rel = Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i]), 1e-9);
      st.scoreDiff.add(rel);
      if (rel <= REGRESSION_AGREEMENT) agree++;
    }
    st.sameClass += agree;
    return { shadowCompared: a.length, shadowAgree: agree };
  }
  const ids = m.outputs.find((o) => o.dtype === 'int64')!.name;
  const scores = m.outputs.find((o) => o.dtype === 'float32')!.name;
  const a = served[ids];
  const b = shadow[ids];
  const k = a.dims[1];
  let agree = 0;
  for (let r = 0; r < a.dims[0]; r++) {
    const mine = new Set(Array.from((a.data as BigInt64Array).subarray(r * k, (r + 1) * k), String));
    const theirs = Array.from((b.data as BigInt64Array).subarray(r * b.dims[1], (r + 1) * b.dims[1]), String);
    const same = theirs.filter((x) => mine.has(x)).length;
    agree += same;
    st.overlap.add(same / k);
    st.scoreDiff.add(Math.abs((served[scores].data as Float32Array)[r * k] - (shadow[scores].data as Float32Array)[r * b.dims[1]]));
  }
  return { shadowCompared: a.dims[0] * k, shadowAgree: agree };
}
