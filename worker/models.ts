/**
 * The models bundled into the worker: each manifest with its served (int8) artifact and its
 * training baseline, as Data modules (see wrangler.toml). The float32 artifacts stay out of
 * the bundle; the hosted fallback serves them.
 */
import type { ModelManifest } from '../core/index.ts';
import flightBaseline from '../models/flight-delay/baseline.dwsm';
import flightManifest from '../models/flight-delay/manifest.json';
import flightFloat from '../models/flight-delay/model.float32.onnx';
import flightModel from '../models/flight-delay/model.int8.onnx';
import movieBaseline from '../models/movielens-topk/baseline.dwsm';
import movieManifest from '../models/movielens-topk/manifest.json';
import movieModel from '../models/movielens-topk/model.int8.onnx';

export interface BundledModel {
  manifest: ModelManifest;
  /** The artifact the edge serves (manifest.serve), as version manifest.version. */
  artifact: ArrayBuffer;
  baseline: ArrayBuffer;
  /** Other deployable versions of the same graph interface (for canary and shadow), by label. */
  variants?: Record<string, ArrayBuffer>;
}

export const BUNDLED_MODELS: Record<string, BundledModel> = {
  // The float32 build of version 1, deployable as a canary or shadow of the int8 one.
  'flight-delay': {
    manifest: flightManifest as unknown as ModelManifest,
    artifact: flightModel,
    baseline: flightBaseline,
    variants: { '1-float32': flightFloat },
  },
  'movielens-topk': { manifest: movieManifest as unknown as ModelManifest, artifact: movieModel, baseline: movieBaseline },
};
