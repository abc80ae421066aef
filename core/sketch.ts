/**
 * The one contract every drift sketch keeps (TDigest, Histogram, CategoricalSketch), so that
 * profiles, the summary format and the worker handle "a sketch" without asking which class it
 * is. `kind` is the discriminant: on the union `Sketch` of profile.ts, `s.kind === 'tdigest'`
 * narrows to TDigest as `instanceof` did. The names are the `kind`s of the JSON view
 * (SketchJSON).
 *
 * This module holds types and the wire codes only and imports none of the sketch classes, so
 * that they can implement it without an import cycle.
 */
import { ByteWriter } from './bytes.ts';
import { SketchMergeError } from './errors.ts';

export type SketchKind = 'tdigest' | 'histogram' | 'categorical';

/** Options of `encode`. Only t-digests read them; the other sketches have one encoding. */
export interface SketchEncodeOptions {
  /**
   * 'f32' (default) stores centroid means as float32: about half the bytes, and a relative
   * change of at most 2^-24 in each mean, far inside the digest's own error (float64 is used
   * anyway when a mean lies beyond float32's range). 'f64' keeps them exactly. Min and max
   * are always stored as float64.
   */
  meanPrecision?: 'f32' | 'f64';
}

/**
 * A small JSON-safe summary of a sketch for people (the drift route shows it beside each
 * feature's statistics). A t-digest's figures are null while it holds no finite value.
 */
export type SketchDescription =
  | { kind: 'numeric'; count: number; min: number | null; max: number | null; p05: number | null; p50: number | null; p95: number | null }
  /** `top`: at most the 10 largest counts, as CategoricalSketch.top gives them. */
  | { kind: 'categorical'; count: number; top: { value: string; count: number; error: number }[] }
  | { kind: 'histogram'; count: number };

export interface Sketch {
  readonly kind: SketchKind;
  /** Total weight seen (t-digests and histograms: of the values they bin, so not NaN). */
  readonly count: number;
  /**
   * Adds everything `other` has seen; `other` is not changed. Throws SketchMergeError, with
   * this sketch unchanged, when `other` is of another kind or its parameters do not allow it
   * (histograms with other edges).
   */
  merge(other: Sketch): this;
  /** A deep copy: changing either leaves the other as it was. */
  clone(): Sketch;
  /**
   * The sketch as the summary format writes it: u8 kind code (SKETCH_WIRE_CODES) · varint
   * byte length · the sketch's own toBytes(). decodeSketch (profile.ts) reads it back.
   */
  encode(options?: SketchEncodeOptions): Uint8Array;
  describe(): SketchDescription;
}

/** @internal The kind codes of the summary format (see profile.ts). */
export const SKETCH_WIRE_CODES = { tdigest: 1, histogram: 2, categorical: 3 } as const satisfies Record<SketchKind, number>;

/** @internal `body` framed as the summary format's `sketch` record. */
export function frameSketch(kind: SketchKind, body: Uint8Array): Uint8Array {
  return new ByteWriter(body.length + 10).u8(SKETCH_WIRE_CODES[kind]).varint(body.length).bytes(body).finish();
}

/** @internal The error a sketch's merge throws for an argument that is not of its own class. */
export function kindMismatch(kind: SketchKind, other: unknown): SketchMergeError {
  const theirs = typeof other === 'object' && other !== null ? (other as { kind?: unknown }).kind : undefined;
  return new SketchMergeError(
    theirs === kind
      ? `cannot merge a ${kind} sketch of another copy of core/ into a ${kind} sketch`
      : `cannot merge a ${typeof theirs === 'string' ? `${theirs} sketch` : typeof other} into a ${kind} sketch`,
  );
}
