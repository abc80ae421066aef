/**
 * The JSON that crosses HTTP between the edge and its clients (the browser runtime, the
 * dashboard, scripts), typed once: the worker checks what it answers against these with
 * `satisfies`, and its clients read them through the same types (as comlink's protocol.ts does for
 * its wire). Types only: nothing here runs.
 */
import type { ModelManifest } from './manifest.ts';

/** A golden row as shipped to browsers: features, and the outputs onnxruntime-node computed for the served artifact. */
export interface GoldenRow {
  features: Record<string, unknown>;
  expected: Record<string, number | number[]>;
}

/** What `GET /v1/models/{name}/telemetry-token` (and the descriptor) grant a browser. */
export interface TelemetryGrant {
  endpoint: string;
  token: string;
  /** The worker's id for this browser; a renewal showing this token keeps it. */
  source: string;
  expires_at: number;
}

/** `GET /v1/models/{name}/artifact`. */
export interface ArtifactDescriptor {
  model: string;
  version: string;
  manifest: ModelManifest;
  artifact: { url: string; sha256: string; bytes: number; quantization: string };
  golden: { tolerance: Record<string, number>; rows: GoldenRow[] } | null;
  /** Null when the edge gives this client no token (telemetry off there, or its address unknown): the runtime then reports nothing. */
  telemetry: TelemetryGrant | null;
}

/** An error on the `/v1` routes. */
export interface ErrorBodyV1 {
  error: { code: string; message: string; field?: string; [extra: string]: unknown };
}

/** An error on the `/v2` routes, as the Open Inference Protocol has it: the message, the code and field beside it. */
export interface ErrorBodyV2 {
  error: string;
  code: string;
  field?: string;
  [extra: string]: unknown;
}
