/**
 * The /demo page's service worker (built by browser/build.ts to /demo-sw.js, a classic script),
 * so that the demo also reloads with the network cut once it has been loaded: network first for
 * /demo and /browser/* (always fresh when online), the last good copy from Cache Storage when the
 * network fails. Its scope is the origin: a dedicated worker is controlled by the registration
 * whose scope covers the worker's own URL (/browser/inference-worker.js), not its page's, and
 * everything else passes through. The model itself needs none of this: the runtime keeps its
 * descriptor and artifact in Cache Storage (browser/artifact.ts).
 *
 * Type-checked against the WebWorker library (tsconfig.sw.json), apart from the page code.
 */
declare const self: ServiceWorkerGlobalScope;

/** The Cache Storage cache it keeps: a new name starts afresh (earlier ones are left as they are). */
export const DEMO_SW_CACHE = 'driftwatch-demo-v1';

self.addEventListener('install', () => void self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (!(url.pathname === '/demo' || url.pathname.startsWith('/browser/'))) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(DEMO_SW_CACHE);
      try {
        const res = await fetch(event.request);
        if (res.ok) await cache.put(event.request, res.clone());
        return res;
      } catch (err) {
        const hit = await cache.match(event.request);
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
