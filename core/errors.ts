/**
 * Bytes that are not a valid summary or sketch. Decoders in core/ throw this and nothing
 * else on malformed input, whatever the bytes, so callers can safely map it to a 4xx.
 */
export class SummaryDecodeError extends Error {
  override readonly name = 'SummaryDecodeError';
  /** Byte offset at which decoding failed, when known. */
  readonly offset: number | undefined;
  /** The message without the offset suffix. */
  readonly reason: string;
  constructor(reason: string, options: { offset?: number; cause?: unknown } = {}) {
    super(options.offset === undefined ? reason : `${reason} (at byte ${options.offset})`, { cause: options.cause });
    this.offset = options.offset;
    this.reason = reason;
  }
}

/** Two sketches or profiles that cannot be merged (different edges, models, kinds...). */
export class SketchMergeError extends Error {
  override readonly name = 'SketchMergeError';
}
