// A model's history reaches the operators' webhook (the one drift alerts use): each change is
// POSTed once, in order, signed (HMAC-SHA256 of the body with ALERT_WEBHOOK_SECRET), by the
// model's RoutingStore alarm, through a real `wrangler dev`; a receiver that fails gets the same
// event again on a later alarm, and nothing after it goes first.
import { createHmac } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startWorker, stop, waitFor } from '../support/servers.ts';

const SECRET = 'history-hook-secret';
let worker: ChildProcess | undefined;
let hook: Server | undefined;
afterAll(async () => {
  if (worker) await stop(worker);
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
});

describe('history webhook', () => {
  it('posts every change once, in order and signed, retrying a receiver that failed', async () => {
    const received: { event: string; signature: string; body: string }[] = [];
    let failuresLeft = 1;
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (failuresLeft > 0) {
          failuresLeft--;
          res.writeHead(503).end();
          return;
        }
        received.push({ event: String(req.headers['x-driftwatch-event']), signature: String(req.headers['x-driftwatch-signature']), body });
        res.writeHead(204).end();
      });
    });
    const hookPort = await freePort();
    await new Promise<void>((r) => hook!.listen(hookPort, '127.0.0.1', r));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    worker = await startWorker(port, {
      OPERATOR_TOKENS: 'alice:alice-token',
      ALERT_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hooks`,
      ALERT_WEBHOOK_SECRET: SECRET,
      ALERT_EVAL_INTERVAL_MS: '300',
    });
    await waitFor(`${base}/healthz`);
    const put = async (table: object, why: string) => {
      const res = await fetch(`${base}/v1/models/flight-delay/routing`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: 'Bearer alice-token', 'x-change-reason': why },
        body: JSON.stringify(table),
      });
      expect(res.status, await res.text()).toBe(200);
    };
    await put({ stable: '1', canary: { version: '1-float32', share: 0.1 } }, 'canary');
    await put({ stable: '1' }, 'back');
    const del = await fetch(`${base}/v1/models/flight-delay/versions/1-float32`, { method: 'DELETE', headers: { authorization: 'Bearer alice-token' } });
    expect(del.status).toBe(200);

    for (let i = 0; i < 100 && received.length < 3; i++) await new Promise((r) => setTimeout(r, 100));
    expect(received.map((r) => r.event)).toEqual(['history.route', 'history.route', 'history.delete']);
    for (const r of received) expect(r.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(r.body).digest('hex')}`);
    const bodies = received.map((r) => JSON.parse(r.body));
    expect(bodies.map((b) => [b.model, b.entry.seq, b.entry.who, b.entry.why ?? null])).toEqual([
      ['flight-delay', 1, 'alice', 'canary'],
      ['flight-delay', 2, 'alice', 'back'],
      ['flight-delay', 3, 'alice', null],
    ]);
    expect(bodies[0].entry.to).toEqual({ stable: '1', canary: { version: '1-float32', share: 0.1 } });
    // Once each: nothing more arrives.
    await new Promise((r) => setTimeout(r, 1000));
    expect(received).toHaveLength(3);
    expect(failuresLeft).toBe(0);
  });
});
