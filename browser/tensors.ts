/**
 * Tensor helpers shared by the page and the inference worker: gathering one-row requests into a
 * batch along 'N' (parameter inputs such as k run with the batch's largest value), splitting a
 * batch's outputs back into per-row predictions (cut back along 'K' to each row's own k), and
 * the buffers to transfer.
 */
import type { ModelManifest, Tensor, TensorData } from '../core/index.ts';

export type Prediction = Record<string, number | number[]>;

function allocate(like: TensorData, n: number): TensorData {
  return new (like.constructor as new (n: number) => TensorData)(n);
}

/** One batch from requests of one or more rows each, in order. */
export function concatRequests(
  manifest: ModelManifest,
  requests: { rows: number; feeds: Record<string, Tensor> }[],
): { rows: number; feeds: Record<string, Tensor> } {
  const rows = requests.reduce((a, r) => a + r.rows, 0);
  const feeds: Record<string, Tensor> = {};
  for (const spec of manifest.inputs) {
    const parts = requests.map((r) => r.feeds[spec.name]);
    if (spec.shape[0] !== 'N') {
      // A parameter (k): the largest asked for; rows are cut back afterwards.
      const best = parts.reduce((a, t) => (Number(t.data[0]) > Number(a.data[0]) ? t : a));
      feeds[spec.name] = { dtype: best.dtype, dims: [...best.dims], data: best.data.slice() as TensorData };
      continue;
    }
    const inner = parts[0].dims.slice(1);
    const data = allocate(parts[0].data, rows * inner.reduce((a, b) => a * b, 1));
    let o = 0;
    for (const t of parts) {
      (data as Float32Array).set(t.data as Float32Array, o);
      o += t.data.length;
    }
    feeds[spec.name] = { dtype: parts[0].dtype, dims: [rows, ...inner], data };
  }
  return { rows, feeds };
}

/** Per-row predictions: scalars per row, or arrays for ranked outputs, each cut to `keep[r]` entries when given. */
export function toPredictions(manifest: ModelManifest, outputs: Record<string, Tensor>, rows: number, keep?: number[]): Prediction[] {
  return Array.from({ length: rows }, (_, r) => {
    const p: Prediction = {};
    for (const spec of manifest.outputs) {
      const t = outputs[spec.name];
      const size = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const vals = Array.from(t.data.subarray(r * size, (r + 1) * size) as ArrayLike<number | bigint>, Number);
      p[spec.name] = t.dims.length === 1 ? vals[0] : keep ? vals.slice(0, keep[r]) : vals;
    }
    return p;
  });
}

/** The distinct buffers under these tensors, for comlink's transfer list. */
export function buffersOf(tensors: Record<string, Tensor>): ArrayBuffer[] {
  return [...new Set(Object.values(tensors).map((t) => t.data.buffer as ArrayBuffer))];
}
