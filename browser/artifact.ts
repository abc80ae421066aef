/**
 * The model on the device: the descriptor (GET /v1/models/{name}/artifact) and the int8 bytes
 * at their content-addressed URL, checked against the descriptor's sha256 and kept in Cache
 * Storage, so that a second visit loads without the network. Offline, the last descriptor
 * stored is used (its telemetry token may have expired; the reporter renews it when it can).
 * Bytes that do not match their sha256 are never used or stored.
 */
import type { ArtifactDescriptor } from './protocol.ts';

export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function openCache(name: string): Promise<Cache | undefined> {
  try {
    return await caches.open(name);
  } catch {
    return undefined; // no Cache Storage (opaque origin, private mode): load from the network every time
  }
}

export async function loadDescriptor(
  endpoint: string,
  model: string,
  cacheName: string,
  version?: string,
): Promise<{ descriptor: ArtifactDescriptor; fromCache: boolean }> {
  // A version pinned by the page, else the model's default (what serves when no routing table says otherwise).
  const url = `${endpoint}/v1/models/${encodeURIComponent(model)}/artifact${version === undefined ? '' : `?version=${encodeURIComponent(version)}`}`;
  const cache = await openCache(cacheName);
  let networkError: unknown;
  try {
    const res = await fetch(url, { cache: 'no-store' });
    if (res.ok) {
      const descriptor = (await res.json()) as ArtifactDescriptor;
      await cache?.put(url, new Response(JSON.stringify(descriptor), { headers: { 'content-type': 'application/json' } })).catch(() => undefined);
      return { descriptor, fromCache: false };
    }
    networkError = new ArtifactError(`GET ${url}: ${res.status} ${await res.text().catch(() => '')}`.trim());
    if (res.status === 404) throw networkError;
  } catch (err) {
    if (err instanceof ArtifactError) throw err;
    networkError = err;
  }
  const cached = await cache?.match(url);
  if (cached) return { descriptor: (await cached.json()) as ArtifactDescriptor, fromCache: true };
  throw new ArtifactError(`cannot load the descriptor of ${model} (offline and not cached)`, { cause: networkError });
}

export async function loadArtifact(endpoint: string, d: ArtifactDescriptor, cacheName: string): Promise<{ bytes: Uint8Array; fromCache: boolean }> {
  const url = new URL(d.artifact.url, endpoint).href;
  const cache = await openCache(cacheName);
  const cached = await cache?.match(url);
  if (cached) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    if ((await sha256Hex(bytes)) === d.artifact.sha256) return { bytes, fromCache: true };
    await cache?.delete(url);
  }
  const res = await fetch(url);
  if (!res.ok) throw new ArtifactError(`GET ${url}: ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const got = await sha256Hex(bytes);
  if (got !== d.artifact.sha256) throw new ArtifactError(`artifact sha256 mismatch: expected ${d.artifact.sha256}, got ${got}`);
  if (cache) {
    await cache.put(url, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } })).catch(() => undefined);
    // Older versions of this model's artifact are no longer needed.
    const prefix = new URL(`/v1/models/${encodeURIComponent(d.model)}/artifact/`, endpoint).href;
    for (const req of await (cache as unknown as { keys(): Promise<Request[]> }).keys())
      if (req.url.startsWith(prefix) && req.url !== url) await cache.delete(req);
  }
  return { bytes, fromCache: false };
}
