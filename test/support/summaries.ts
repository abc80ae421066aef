/** A small edge summary (distance digest, origin categories) for aggregator tests: `values` are the rows' distances. */
import { CategoricalSketch, createProfile, encodeSummary, TDigest } from '../../core/index.ts';

export function summaryBytes(model: string, source: string, sequence: number, windowStart: number, values: number[]): Uint8Array {
  const p = createProfile({ model, modelVersion: '1', source: { kind: 'edge', id: source }, sequence, windowStart, windowEnd: windowStart + 10_000 });
  p.features.set('distance', new TDigest().addAll(values));
  p.features.set('origin', new CategoricalSketch().add('ORD', values.length));
  p.counters.rows = values.length;
  return encodeSummary(p);
}
