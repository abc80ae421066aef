// Issue 14's scenarios through a real `wrangler dev` on event time: versions pushed with the CLI,
// rollouts started, watched and taken over with the CLI, judged by the RoutingStore's alarm on
// what the DriftAggregator (real Durable Objects, SQLite storage on disk) collected from real
// traffic, and every change POSTed, signed, to a real webhook receiver.
//
// Traffic: 120 callers (x-user-key), each sending 3 flights a minute of event time from the
// January-February replay rows (what the model was trained on), one minute after another.
//
// 1. A copy of the model pushed as version 2 walks its plan (shadow 50%, 10%, 50%) to all the
//    traffic by itself; the worker is killed and restarted mid-plan and the plan goes on where
//    it was, no stage taken twice; no caller moves back from the candidate to stable.
// 2. Version 3, the same model answering 1 - p for flights over 700 miles (test/fixtures/
//    slice_flip.py), is rolled back in its shadow stage on shadow agreement, with the evidence
//    in the history and one webhook call for it.
// 3. A person's pause holds the plan however much evidence comes; abort goes back; rollback
//    goes back to the version that had all the traffic before. Meanwhile the dashboard's history
//    panel shows the paused rollout and every change (UPDATE_SCREENSHOTS=1 writes
//    docs/history.png for the README).
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBrowser } from '../../browser/build.ts';
import { launchChromium } from '../support/chromium.ts';
import { runCli } from '../support/cli.ts';
import { freePort, ROOT, startWorkerUp, stop } from '../support/servers.ts';

const TOKEN = 'rollout-operator';
const SECRET = 'rollout-webhook-secret';
const MIN = 60_000;
const USERS = Array.from({ length: 120 }, (_, i) => `caller-${i}`);
const ROWS_PER_CALL = 3;
const rows = readFileSync(join(ROOT, 'models/flight-delay/replay.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { time: string; features: Record<string, number | string> })
  .filter((r) => r.time < '2001-03-01');

const procs: ChildProcess[] = [];
let hook: Server | undefined;
const dir = mkdtempSync(join(tmpdir(), 'dw-rollout-'));
afterAll(async () => {
  await Promise.all(procs.map(stop));
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

interface Posted {
  event: string;
  model: string;
  entry: { seq: number; action: string; rollout?: number; who: string; evidence?: { checks: { name: string; status: string }[] } };
  signatureOk: boolean;
}

describe('rollouts through wrangler dev on event time', () => {
  it('a fine candidate walks its plan to 100% across a restart; a worse one is rolled back on the evidence; a person wins over the plan', async () => {
    const t0 = Date.now();
    const lap = (what: string) => console.log(`[rollout-replay] ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const posted: Posted[] = [];
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const expected = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
        posted.push({ ...(JSON.parse(body) as Omit<Posted, 'signatureOk'>), signatureOk: req.headers['x-driftwatch-signature'] === expected });
        res.writeHead(204).end();
      });
    });
    const hookPort = await freePort();
    await new Promise<void>((r) => hook!.listen(hookPort, '127.0.0.1', r));

    // The versions: 2, the model as it is; 3, wrong on long flights.
    const src = join(ROOT, 'models/flight-delay');
    const fine = join(dir, 'v2');
    mkdirSync(fine);
    copyFileSync(join(src, 'model.int8.onnx'), join(fine, 'model.onnx'));
    copyFileSync(join(src, 'baseline.dwsm'), join(fine, 'baseline.dwsm'));
    copyFileSync(join(src, 'golden.json'), join(fine, 'golden.json'));
    writeFileSync(join(fine, 'manifest.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(src, 'manifest.json'), 'utf8')), version: '2' }));
    const worse = join(dir, 'v3');
    execFileSync('/usr/bin/python3', [join(ROOT, 'test/fixtures/slice_flip.py'), src, worse, '3', '700']);
    const plan = join(dir, 'plan.json');
    writeFileSync(
      plan,
      JSON.stringify({
        shadow: { sample_rate: 0.5, min_rows: 100, min_duration: 'PT2M' },
        steps: [
          { share: 0.1, min_rows: 50, min_duration: 'PT2M' },
          { share: 0.5, min_rows: 100, min_duration: 'PT2M' },
        ],
      }),
    );

    const port = await freePort();
    rmSync(join(tmpdir(), `dw-wrangler-${port}`), { recursive: true, force: true });
    const base = `http://127.0.0.1:${port}`;
    const vars = {
      OPERATOR_TOKEN: TOKEN,
      CACHE_MAX_BYTES: '0',
      TELEMETRY_CLOCK: 'event',
      TELEMETRY_WINDOW_MS: String(MIN),
      TELEMETRY_MAX_ROWS: '100000',
      ALERT_GRACE_MS: '0',
      ALERT_EVAL_INTERVAL_MS: '300',
      ALERT_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hooks/driftwatch`,
      ALERT_WEBHOOK_SECRET: SECRET,
    };
    const up = async () => {
      const p = await startWorkerUp(port, vars);
      procs.push(p);
      return p;
    };
    const driftwatch = async (...args: string[]) => {
      const r = await runCli(args, { DRIFTWATCH_ENDPOINT: base, DRIFTWATCH_TOKEN: TOKEN }, 60_000);
      expect(r.code, `driftwatch ${args.join(' ')}: ${r.err}`).toBe(0);
      console.log(`$ driftwatch ${args.join(' ')}\n${r.out}`);
      return r.out;
    };
    const api = async (path: string) => {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status, path).toBe(200);
      return res.json() as Promise<any>;
    };

    await buildBrowser({ quiet: true });
    let worker = await up();
    lap('worker up');
    expect(await driftwatch('push', fine)).toContain('pushed flight-delay version 2');
    expect(await driftwatch('push', worse)).toContain('pushed flight-delay version 3');
    lap('versions pushed');

    // One minute of event time: every caller once, 8 at a time; who was served by what.
    let t = Date.parse('2001-01-08T00:00:00Z');
    let n = 0;
    const served = new Map<string, string[]>();
    const minute = async () => {
      const queue = [...USERS];
      const start = t;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let u = queue.shift(); u !== undefined; u = queue.shift()) {
            const i = n++;
            const instances = Array.from({ length: ROWS_PER_CALL }, (_, j) => rows[(i * ROWS_PER_CALL + j) % rows.length].features);
            const res = await fetch(`${base}/v1/models/flight-delay/predict`, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                'x-user-key': u,
                'x-event-time': String(start + (i % USERS.length) * (MIN / USERS.length)),
                'x-latency-budget-ms': '5000',
              },
              body: JSON.stringify({ instances }),
            });
            expect(res.status).toBe(200);
            const body = (await res.json()) as { model_version: string };
            if (!served.has(u)) served.set(u, []);
            served.get(u)!.push(body.model_version);
          }
        }),
      );
      t += MIN;
      // Until the isolate's outbox is empty (the minute before this one has gone to the aggregator).
      for (let i = 0; i < 100; i++) {
        if ((await api('/v1/models/flight-delay/stats')).telemetry.outbox === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    /** Minutes of traffic until the rollout leaves `stage` (or ends), at most `max`; a stage change waits out the isolates' 5 s table cache. */
    const until = async (id: number, done: (r: any) => boolean, max: number) => {
      let last = (await api(`/v1/models/flight-delay/rollouts/${id}`)) as any;
      for (let m = 0; m < max && !done(last); m++) {
        await minute();
        await new Promise((r) => setTimeout(r, 700)); // two ticks of the alarm
        const now = await api(`/v1/models/flight-delay/rollouts/${id}`);
        if (now.stage.index !== last.stage.index || now.status !== last.status) {
          lap(`rollout ${id}: ${now.status}, stage ${now.stage.kind} ${now.stage.share} after ${m + 1} minute(s) of traffic`);
          await new Promise((r) => setTimeout(r, 5500));
        }
        last = now;
      }
      return last;
    };

    // Stable's first minutes, before any rollout.
    await minute();
    await minute();

    // 1. The fine candidate.
    expect(await driftwatch('rollout', 'flight-delay', '2', '--plan', plan, '--reason', 'retrained on February')).toContain(
      'plan: [shadow 50.0%] -> 10.0% -> 50.0% -> 100%',
    );
    let r = await until(1, (x) => x.stage.index >= 2 || x.status !== 'running', 20);
    expect(r.status).toBe('running');
    expect(r.stage).toEqual({ index: 2, kind: 'canary', share: 0.5 });
    await minute();
    await new Promise((res) => setTimeout(res, 700));
    expect(await driftwatch('rollout', 'flight-delay')).toMatch(/^\s+rows\s+(pass|wait)\s+/m);
    // Killed mid-plan (objects, isolate and all), restarted on the same storage: the plan goes on.
    await stop(worker);
    worker = await up();
    lap('worker restarted');
    r = await until(1, (x) => x.status !== 'running', 20);
    expect(r.status, JSON.stringify(r.analysis)).toBe('promoted');
    expect((await api('/v1/models/flight-delay/routing')).table).toEqual({ stable: '2' });
    // No caller moved back from the candidate to stable while the share rose.
    for (const [u, vs] of served) {
      const first = vs.indexOf('2');
      if (first >= 0) expect(vs.slice(first), u).not.toContain('1');
    }
    // Promoted: everyone is served by the candidate once the isolate has the table (the first
    // requests after its 5 s cache may still go with the one before).
    await minute();
    await minute();
    for (const [u, vs] of served) expect(vs.at(-1), u).toBe('2');
    const h1 = (await api('/v1/models/flight-delay/history?limit=50')).entries.filter((e: any) => e.rollout === 1);
    expect(h1.map((e: any) => `${e.action}:${e.stage}`).reverse()).toEqual(['rollout:0', 'step:1', 'step:2', 'promote:3']);
    lap('rollout 1 promoted');

    // 2. The worse candidate, rolled back in its shadow stage.
    await driftwatch('rollout', 'flight-delay', '3', '--plan', plan);
    r = await until(2, (x) => x.status !== 'running', 12);
    expect(r.status).toBe('rolled_back');
    expect(r.reason).toMatch(/^shadow at 50% failed: .*shadow_agreement \(\d+ of \d+ shadow comparisons agree/);
    const agreement = r.analysis.checks.find((c: any) => c.name === 'shadow_agreement');
    expect(agreement.status).toBe('fail');
    expect(agreement.candidate).toBeLessThan(0.8);
    expect((await api('/v1/models/flight-delay/routing')).table).toEqual({ stable: '2' });
    const out = await driftwatch('rollout', 'flight-delay');
    expect(out).toContain('flight-delay rollout 2: version 3 from stable 2, rolled_back');
    expect(out).toMatch(/^\s+shadow_agreement\s+fail\s+\d+ of \d+ shadow comparisons/m);
    expect(out).toMatch(/^1\s+2\s+1\s+promoted/m);
    lap('rollout 2 rolled back');

    // 3. A person's pause wins over the plan; abort goes back; rollback goes to the previous stable.
    await driftwatch('rollout', 'flight-delay', '1', '--plan', plan);
    expect(await driftwatch('rollout', 'flight-delay', '--pause', '--reason', 'checking the dashboard')).toContain('paused');
    r = await until(3, () => false, 4);
    expect(r).toMatchObject({ status: 'paused', stage: { index: 0 } });
    // The dashboard's history panel: the paused rollout, and every change with who and why.
    const browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await browser.context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${base}/dashboard?model=flight-delay&from=${Date.parse('2001-01-08T00:00:00Z')}&to=${t}&step=${5 * MIN}#token=${TOKEN}`);
      await page.locator('body[data-state=ready], body[data-state=error]').waitFor({ timeout: 45_000 });
      expect(await page.locator('body').getAttribute('data-state'), await page.locator('#message').innerText()).toBe('ready');
      expect(problems).toEqual([]);
      const panel = page.locator('#history');
      expect(await panel.locator('#rollout').getAttribute('data-status')).toBe('paused');
      expect(await panel.locator('ol.stages li.now').innerText()).toBe('shadow 50%');
      expect(await panel.locator('tr[data-action=promote]').count()).toBe(1);
      expect(await panel.locator('tr[data-action=rollback] td.why').innerText()).toMatch(/^shadow at 50% failed: shadow_agreement/);
      expect(await panel.locator('tbody tr').count()).toBe((await api('/v1/models/flight-delay/history')).entries.length);
      if (process.env.UPDATE_SCREENSHOTS === '1') await panel.screenshot({ path: join(ROOT, 'docs/history.png') });
    } finally {
      await browser.close();
    }
    await driftwatch('rollout', 'flight-delay', '--abort');
    expect((await api('/v1/models/flight-delay/routing')).table).toEqual({ stable: '2' });
    expect(await driftwatch('rollback', 'flight-delay', '--reason', 'drill')).toContain('flight-delay: stable 1');
    const history = await driftwatch('history', 'flight-delay', '--limit', '20');
    expect(history).toMatch(/rollout\s+rollback \(rollout 2\): stable 2, shadow 3 -> stable 2\s+shadow at 50% failed: /);

    // The webhook: every change once, in order, signed; the rolled-back candidate's rollback once, with its evidence.
    // (Drift alerts share the hook: this traffic sends flights of every hour at midnight of event
    // time, which the time-matched reference rightly calls drift. Only history entries are counted.)
    const deadline = Date.now() + 20_000;
    const entries = (await api('/v1/models/flight-delay/history?limit=100')).entries as { seq: number }[];
    const changes = () => posted.filter((p) => p.event.startsWith('history.'));
    while (Date.now() < deadline && changes().length < entries.length) await new Promise((res) => setTimeout(res, 200));
    expect(changes().map((p) => p.entry.seq)).toEqual(entries.map((e) => e.seq).reverse());
    expect(posted.every((p) => p.signatureOk && p.model === 'flight-delay')).toBe(true);
    const rollbacks = changes().filter((p) => p.event === 'history.rollback' && p.entry.rollout === 2);
    expect(rollbacks).toHaveLength(1);
    expect(rollbacks[0].entry.who).toBe('rollout');
    expect(rollbacks[0].entry.evidence!.checks.find((c) => c.name === 'shadow_agreement')!.status).toBe('fail');
    lap('done');
  }, 600_000);
});
