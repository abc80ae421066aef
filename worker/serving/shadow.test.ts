// Shadow agreement per task (serving/shadow.ts compare): what a shadow and the served version
// agree on, and the score difference kept, for each kind of model the registry serves.
import { describe, expect, it } from 'vitest';
import { TDigest, type ModelManifest, type Tensor } from '../../core/index.ts';
import type { ShadowStats } from './runtime.ts';
import { compare, REGRESSION_AGREEMENT } from './shadow.ts';

const stats = (): ShadowStats => ({ runs: 0, errors: 0, sameClass: 0, scoreDiff: new TDigest(), overlap: new TDigest() });
const f32 = (dims: number[], data: number[]): Tensor => ({ dtype: 'float32', dims, data: Float32Array.from(data) });
const i64 = (dims: number[], data: number[]): Tensor => ({ dtype: 'int64', dims, data: BigInt64Array.from(data.map(BigInt)) });
const manifest = (task: ModelManifest['task'], outputs: ModelManifest['outputs']) => ({ task, outputs }) as ModelManifest;

describe('shadow agreement', () => {
  it('multiclass: rows with the same label agree; the score difference is the largest class-probability gap', () => {
    const m = manifest('multiclass-classification', [
      { name: 'label', dtype: 'int64', shape: ['N'] },
      { name: 'probabilities', dtype: 'float32', shape: ['N', 3] },
    ]);
    const st = stats();
    const served = { label: i64([3], [0, 2, 1]), probabilities: f32([3, 3], [0.7, 0.2, 0.1, 0.1, 0.1, 0.8, 0.3, 0.4, 0.3]) };
    const shadow = { label: i64([3], [0, 2, 2]), probabilities: f32([3, 3], [0.6, 0.3, 0.1, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4]) };
    expect(compare(m, served, shadow, st)).toEqual({ shadowCompared: 3, shadowAgree: 2 });
    expect(st.sameClass).toBe(2);
    expect(st.scoreDiff.count).toBe(3);
    expect(st.scoreDiff.quantile(1)).toBeCloseTo(0.1, 6);
  });

  it('regression: values within 1% (relative) agree; the relative difference is kept', () => {
    const m = manifest('regression', [{ name: 'variable', dtype: 'float32', shape: ['N', 1] }]);
    const st = stats();
    const served = { variable: f32([3, 1], [100, 200, 0]) };
    const shadow = { variable: f32([3, 1], [100.5, 220, 0]) };
    expect(compare(m, served, shadow, st)).toEqual({ shadowCompared: 3, shadowAgree: 2 });
    expect(REGRESSION_AGREEMENT).toBe(0.01);
    expect(st.scoreDiff.quantile(1)).toBeCloseTo(20 / 220, 5);
  });

  it('binary: the same side of 0.5 agrees', () => {
    const m = manifest('binary-classification', [{ name: 'p', dtype: 'float32', shape: ['N'] }]);
    const st = stats();
    expect(compare(m, { p: f32([2], [0.4, 0.7]) }, { p: f32([2], [0.6, 0.9]) }, st)).toEqual({ shadowCompared: 2, shadowAgree: 1 });
  });
});
