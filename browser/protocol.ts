/**
 * The wire between the page (browser/index.ts) and the inference Web Worker
 * (browser/inference-worker.ts), driven through comlink: the worker's API, what crosses it, and
 * the artifact descriptor the worker fetches (GET /v1/models/{name}/artifact, see
 * worker/browser-routes.ts). Tensors cross as typed arrays whose buffers are transferred.
 */
import type { ArtifactDescriptor, Tensor } from '../core/index.ts';

/** The ladder's steps, fastest first. */
export type BackendName = 'webgpu' | 'wasm' | 'edge';
export const BACKENDS: readonly BackendName[] = ['webgpu', 'wasm', 'edge'];

// The HTTP contract the runtime reads (core/contracts.ts), re-exported for the worker's side of the wire.
export type { ArtifactDescriptor, GoldenRow, TelemetryGrant } from '../core/index.ts';

export interface InitOptions {
  model: string;
  /** A version of the model's registry to run; its default version when absent. */
  version?: string;
  /** The worker's origin (absolute URL), e.g. location.origin. */
  endpoint: string;
  prefer: BackendName[];
  /** Absolute URL prefix of onnxruntime-web's .wasm files. */
  ortBase: string;
  /** Cache Storage name for descriptors and artifacts. */
  cacheName: string;
}

/** One step of the ladder as init() (or a demotion) found it. */
export interface Attempt {
  backend: BackendName;
  ok: boolean;
  /** Why the step was not taken (no adapter, load failure, golden mismatch, ...). */
  reason?: string;
  ms: number;
  /** The golden check: rows compared and the largest score difference seen. */
  golden?: { rows: number; maxAbsDiff: number; minOverlap?: number; against: string };
}

export interface InitReport {
  backend: BackendName;
  descriptor: ArtifactDescriptor;
  attempts: Attempt[];
  /** Descriptor + artifact, ms; whether the bytes came from Cache Storage; whether the descriptor did (offline). */
  load: { ms: number; artifactFromCache: boolean; descriptorFromCache: boolean; sessionMs: number };
}

export interface RunRequest {
  rows: number;
  feeds: Record<string, Tensor>;
}

export interface RunResult {
  outputs: Record<string, Tensor>;
  backend: BackendName;
  /** Per row, when the edge answered: its prediction ids (the edge records those predictions; the page does not). */
  ids?: string[];
  /** Time inside the worker, ms. */
  ms: number;
}

/** A demotion: the runtime moved from one backend to the next, and why. */
export interface BackendChange {
  from: BackendName;
  to: BackendName;
  reason: string;
}

export interface InferenceApi {
  /** `onChange` is called on every demotion, with the ladder's attempts so far. */
  init(options: InitOptions, onChange: (change: BackendChange, attempts: Attempt[]) => void): Promise<InitReport>;
  run(request: RunRequest): Promise<RunResult>;
  /** Testing and drills: the next run on `backend` fails (as a lost GPU device would). */
  failNextRun(backend: BackendName, reason: string): Promise<void>;
  dispose(): Promise<void>;
}
