/**
 * The few browser globals the runtime uses, typed here rather than through the DOM library:
 * the root tsconfig type-checks browser/ together with worker/ against the Workers types, and
 * pulling `lib: dom` into that program would change the types every other folder sees.
 */
import type { Endpoint } from 'comlink';

export interface DomElement {
  innerHTML: string;
  textContent: string | null;
  value: string;
  dataset: Record<string, string | undefined>;
  addEventListener(type: string, listener: (event: { target: unknown }) => void): void;
}

export interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; description?: string };
}

export interface BrowserGlobals {
  location: { origin: string; href: string };
  navigator: {
    gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> };
    sendBeacon(url: string, data: ArrayBuffer): boolean;
    hardwareConcurrency?: number;
    onLine: boolean;
    serviceWorker?: { register(url: string, options: { scope: string }): Promise<unknown>; controller: unknown; ready: Promise<unknown> };
  };
  Worker: new (url: string | URL, options: { type: 'module'; name?: string }) => Endpoint & { terminate(): void };
  document: {
    getElementById(id: string): DomElement | null;
    addEventListener(type: string, listener: (event: { target: unknown }) => void): void;
    body: DomElement;
  };
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

export const dom = globalThis as unknown as BrowserGlobals;

/** The bytes of a view as an ArrayBuffer of their own (fetch bodies, beacons). */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
