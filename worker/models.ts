/**
 * The models bundled into the worker: each manifest with its served (int8) artifact and its
 * training baseline, as Data modules (see wrangler.toml). The float32 artifacts stay out of
 * the bundle; the hosted fallback serves them.
 */
import type { ModelManifest } from '../core/index.ts';
import flightBaseline from '../models/flight-delay/baseline.dwsm';
import flightManifest from '../models/flight-delay/manifest.json';
import flightModel from '../models/flight-delay/model.int8.onnx';
import movieBaseline from '../models/movielens-topk/baseline.dwsm';
import movieManifest from '../models/movielens-topk/manifest.json';
import movieModel from '../models/movielens-topk/model.int8.onnx';

export interface BundledModel {
  manifest: ModelManifest;
  /** The artifact the edge serves (manifest.serve). */
  artifact: ArrayBuffer;
  baseline: ArrayBuffer;
}

export const BUNDLED_MODELS: Record<string, BundledModel> = {
  'flight-delay': { manifest: flightManifest as unknown as ModelManifest, artifact: flightModel, baseline: flightBaseline },
  'movielens-topk': { manifest: movieManifest as unknown as ModelManifest, artifact: movieModel, baseline: movieBaseline },
};
