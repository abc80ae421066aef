// The worker's app runs outside workerd too: the hosted fallback (origin/server.ts) serves it on
// Node with onnxruntime-node. So nothing the app imports as a value may need workerd's own
// modules (`cloudflare:workers`, which the Durable Objects use): a route that imports one by
// mistake keeps the origin from starting, which the slow fallback tests only show as a timeout.
import { describe, expect, it } from 'vitest';

describe('the app on Node', () => {
  it('imports and answers without any workerd module', async () => {
    const { createApp } = await import('../../worker/app.ts');
    // No model loads here (no seed): the session factory is never called.
    const app = createApp({ seed: [], createSession: () => Promise.reject(new Error('no model loads in this test')) });
    const res = await app.request('/v2/health/live');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ live: true });
  });
});
