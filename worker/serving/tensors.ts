/**
 * Moving between a request's encoded tensors and JSON: the request parameters read back from the
 * feeds, a subset of rows, the outputs as one prediction per row, and a made-up valid instance.
 */
import type { encodeInstances, ModelManifest, Tensor } from '../../core/index.ts';

/** The request parameters (k) as the engine needs them, read back from the feeds. */
export function paramsOf(m: ModelManifest, feeds: Record<string, Tensor>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of m.parameters ?? []) out[p.name] = Number(feeds[p.input].data[0]);
  return out;
}

/** The rows `rows` of an encoded request. */
export function subset(m: ModelManifest, enc: ReturnType<typeof encodeInstances>, rows: number[]) {
  const feeds: Record<string, Tensor> = {};
  for (const spec of m.inputs) {
    const t = enc.feeds[spec.name];
    if (spec.shape[0] !== 'N') {
      feeds[spec.name] = t;
      continue;
    }
    const rowSize = t.dims.slice(1).reduce((a, b) => a * b, 1);
    const data = new (t.data.constructor as new (n: number) => typeof t.data)(rows.length * rowSize);
    rows.forEach((r, j) => (data as Float32Array).set((t.data as Float32Array).subarray(r * rowSize, (r + 1) * rowSize), j * rowSize));
    feeds[spec.name] = { dtype: t.dtype, dims: [rows.length, ...t.dims.slice(1)], data };
  }
  return { rows: rows.length, feeds };
}

/** Output tensors as one JSON prediction per row: scalars per row, or arrays for ranked lists. */
export function toPredictions(m: ModelManifest, out: Record<string, Tensor>, rows: number): Record<string, number | number[]>[] {
  return Array.from({ length: rows }, (_, r) => {
    const p: Record<string, number | number[]> = {};
    for (const spec of m.outputs) {
      const t = out[spec.name];
      const size = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const vals = Array.from(t.data as ArrayLike<number | bigint> as ArrayLike<number>, Number).slice(r * size, (r + 1) * size);
      p[spec.name] = t.dims.length === 1 ? vals[0] : vals;
    }
    return p;
  });
}

/** An instance of `m` made of allowed values (each range's low end, the first vocabulary entry): runs the request path before a request needs it. */
export function sampleInstance(m: ModelManifest): Record<string, unknown> {
  const inst: Record<string, unknown> = {};
  for (const f of m.features) {
    if (f.kind === 'numeric') inst[f.name] = f.range[0];
    else if (f.kind === 'categorical') inst[f.name] = f.vocabulary[0] ?? 'unknown';
    else inst[f.name] = Array.from({ length: Math.max(1, f.minLength) }, () => f.vocabulary[0]);
  }
  for (const p of m.parameters ?? []) inst[p.name] = p.default;
  return inst;
}
