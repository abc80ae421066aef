/**
 * Correctness before speed: a backend is used only when its outputs on the golden rows agree
 * with a reference (the WASM backend's outputs, or onnxruntime-node's recorded in golden.json)
 * within the model's tolerance. Ranked outputs: at least `min_overlap_at_10` of every top-10 in
 * common (scaled to k) and, for ids in both lists, scores within `score_abs`. Other outputs,
 * value by value: floats within `<output>_abs` (default 1e-3), integers (labels) exactly.
 */
import type { ModelManifest } from '../core/index.ts';
import type { Prediction } from './tensors.ts';

export interface GoldenVerdict {
  ok: boolean;
  rows: number;
  maxAbsDiff: number;
  minOverlap?: number;
  reason?: string;
}

export function compareGolden(
  manifest: ModelManifest,
  got: Prediction[],
  want: Prediction[],
  tolerance: Record<string, number>,
  { scores = true }: { scores?: boolean } = {},
): GoldenVerdict {
  let maxAbsDiff = 0;
  let minOverlap: number | undefined;
  const fail = (reason: string): GoldenVerdict => ({ ok: false, rows: got.length, maxAbsDiff, ...(minOverlap !== undefined ? { minOverlap } : {}), reason });
  if (got.length !== want.length) return fail(`${got.length} rows, expected ${want.length}`);
  if (manifest.task === 'top-k-recommendation') {
    const ids = manifest.outputs.find((o) => o.dtype === 'int64')!.name;
    const sc = manifest.outputs.find((o) => o.dtype === 'float32')!.name;
    const scoreAbs = tolerance.score_abs ?? 1e-3;
    for (let r = 0; r < got.length; r++) {
      const a = got[r][ids] as number[];
      const b = want[r][ids] as number[];
      const common = a.filter((x) => b.includes(x));
      const need = Math.ceil(((tolerance.min_overlap_at_10 ?? 10) / 10) * b.length);
      minOverlap = Math.min(minOverlap ?? Infinity, common.length);
      for (const id of common) {
        const d = Math.abs((got[r][sc] as number[])[a.indexOf(id)] - (want[r][sc] as number[])[b.indexOf(id)]);
        if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
      }
      if (common.length < need) return fail(`row ${r}: ${common.length} of ${b.length} ids in common, need ${need}`);
      if (scores && maxAbsDiff > scoreAbs) return fail(`row ${r}: a score differs by ${maxAbsDiff.toExponential(2)}, tolerance ${scoreAbs}`);
    }
  } else {
    // Classifiers, regressors: every value of every output (a label, class probabilities, a
    // [N, 1] value), floats within `<output>_abs` (default 1e-3), integers (labels) exactly.
    for (const o of manifest.outputs) {
      const tol = o.dtype === 'float32' ? (tolerance[`${o.name}_abs`] ?? 1e-3) : 0;
      for (let r = 0; r < got.length; r++) {
        const a = [got[r][o.name]].flat().map(Number);
        const b = [want[r][o.name]].flat().map(Number);
        if (a.length !== b.length) return fail(`row ${r}: ${o.name} has ${a.length} values, expected ${b.length}`);
        for (let k = 0; k < a.length; k++) {
          const d = Math.abs(a[k] - b[k]);
          if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
          if (scores && !(d <= tol)) return fail(`row ${r}: ${o.name} differs by ${d.toExponential(2)}, tolerance ${tol}`);
        }
      }
    }
  }
  return { ok: true, rows: got.length, maxAbsDiff, ...(minOverlap !== undefined ? { minOverlap } : {}) };
}
