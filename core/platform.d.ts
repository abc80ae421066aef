/**
 * The only globals core/ may use beyond ECMAScript itself. Each exists, with this shape,
 * in Node >= 18, workerd and every current browser. Adding to this list is a design
 * decision: it widens what every platform must provide.
 */
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: ArrayBufferView | ArrayBuffer): string;
}

/** Timers, for the batcher's wait window (every platform has them; workerd's advance on I/O). */
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
declare function queueMicrotask(callback: () => void): void;
declare const performance: { now(): number };
