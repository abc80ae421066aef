/**
 * The default models, as data: what the worker seeds its registry with on first start (so that
 * `npm start` alone serves them), as Data modules bundled by wrangler (see wrangler.toml). Each
 * model gives two versions: `1`, the int8 build (the default), and `1-float32`, the float32 build
 * of the same training run, deployable as a canary or shadow of `1`. Product code (worker/,
 * browser/) names no model; it serves what the registry holds.
 */
import type { BuiltManifest } from '../core/index.ts';
import flightBaseline from './flight-delay/baseline.dwsm';
import flightGolden from './flight-delay/golden.json';
import flightManifest from './flight-delay/manifest.json';
import flightFloat from './flight-delay/model.float32.onnx';
import flightModel from './flight-delay/model.int8.onnx';
import movieBaseline from './movielens-topk/baseline.dwsm';
import movieGolden from './movielens-topk/golden.json';
import movieManifest from './movielens-topk/manifest.json';
import movieFloat from './movielens-topk/model.float32.onnx';
import movieModel from './movielens-topk/model.int8.onnx';

/** A default model's files (the manifest parsed). */
export interface DefaultModel {
  manifest: BuiltManifest;
  /** The int8 build (version 1). */
  artifact: ArrayBuffer;
  float32: ArrayBuffer;
  baseline: ArrayBuffer;
  golden: {
    tolerance: Record<string, number>;
    rows: { features: Record<string, unknown>; expected: Record<'int8' | 'float32', Record<string, number | number[]>> }[];
  };
}

export const DEFAULTS: Record<string, DefaultModel> = {
  'flight-delay': {
    manifest: flightManifest as unknown as BuiltManifest,
    artifact: flightModel,
    float32: flightFloat,
    baseline: flightBaseline,
    golden: flightGolden as never,
  },
  'movielens-topk': {
    manifest: movieManifest as unknown as BuiltManifest,
    artifact: movieModel,
    float32: movieFloat,
    baseline: movieBaseline,
    golden: movieGolden as never,
  },
};

const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** The registry versions to seed: per model `1` (int8, with its float32 build for the hosted fallback), then `1-float32`. */
export const DEFAULT_VERSIONS = Object.entries(DEFAULTS).flatMap(([model, d]) => [
  {
    model,
    version: d.manifest.version,
    files: {
      'model.onnx': d.artifact,
      'manifest.json': utf8(d.manifest),
      'baseline.dwsm': d.baseline,
      'golden.json': utf8(d.golden),
      'model.float32.onnx': d.float32,
    },
  },
  {
    model,
    version: `${d.manifest.version}-float32`,
    files: {
      'model.onnx': d.float32,
      'manifest.json': utf8({ ...d.manifest, version: `${d.manifest.version}-float32`, serve: 'float32' }),
      'baseline.dwsm': d.baseline,
      'golden.json': utf8(d.golden),
    },
  },
]);
