// The operator dashboard in real Chromium against a real worker: `wrangler dev` (workerd, the
// DriftAggregator Durable Object on SQLite), real traffic through POST /v1/models/flight-delay/predict
// (January–February rows, then May–June ones, so `month` drifts against the Jan–Feb baseline),
// and Debian's Chromium via playwright-core. Nothing is mocked: the test reads the same API the
// page reads and checks that what the page drew is that data, then decodes a screenshot and checks
// that the chart regions hold the colours the charts draw, not a blank page.
//
// UPDATE_SCREENSHOTS=1 also writes docs/dashboard.png (for the README) and paces the traffic over
// a few minutes, so the picture shows drift arriving over time and the alerts it opens; that mode
// takes about 9 minutes. Waits are generous and bounded: this runs on a shared 2-core machine.
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBrowser } from '../../browser/build.ts';
import { launchChromium } from '../support/chromium.ts';
import { decodePng, regionStats } from '../support/png.ts';
import { freePort, ROOT, startWorker, stop, waitFor as waitForUrl } from '../support/servers.ts';
import { waitFor } from '../support/wait.ts';

const UPDATE = process.env.UPDATE_SCREENSHOTS === '1';
const MODEL = 'flight-delay';
const TOKEN = 'op';
const MINUTE = 60_000;

interface Row {
  month: number;
  day_of_week: number;
  hour: number;
  distance: number;
  origin: string;
  destination: string;
}
interface DriftEntry {
  kind: string;
  count: number;
  drifted: boolean;
}
interface DriftWindow {
  from: string;
  to: string;
  rows: number;
  drifted?: string[];
  features?: Record<string, DriftEntry>;
  outputs?: Record<string, DriftEntry>;
}
interface Drift {
  baseline: { features: Record<string, unknown>; outputs: Record<string, unknown> };
  windows: DriftWindow[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fisher–Yates with a fixed LCG seed: the same order every run. */
function shuffle<T>(xs: T[], seed = 7): T[] {
  const out = xs.slice();
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

let port = 0;
let base = '';
let worker: ChildProcess | undefined;
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
let shots = '';
const stateDir = () => join(tmpdir(), `dw-wrangler-${port}`);

async function api<T>(path: string, token = TOKEN): Promise<{ status: number; body: T }> {
  const res = await fetch(base + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: (await res.json()) as T };
}

async function predict(instances: Row[], userKey: string): Promise<void> {
  const res = await fetch(`${base}/v1/models/${MODEL}/predict`, {
    method: 'POST',
    // A generous budget: this test is about what gets recorded, not how fast (2 shared cores).
    headers: { 'content-type': 'application/json', 'x-user-key': userKey, 'x-latency-budget-ms': '10000' },
    body: JSON.stringify({ instances }),
    signal: AbortSignal.timeout(20_000),
  });
  const body = (await res.json()) as { predictions?: unknown[] };
  expect(res.status, JSON.stringify(body)).toBe(200);
  expect(body.predictions).toHaveLength(instances.length);
}

/** Waits (bounded) for the page to finish drawing or failing; returns body's data-state. */
async function settled(page: Page): Promise<string> {
  // Selectors, not waitForFunction: the page's CSP rightly refuses the eval that needs.
  await page.locator('body[data-state=ready], body[data-state=error], body[data-state=token]').waitFor({ timeout: 45_000 });
  return (await page.locator('body').getAttribute('data-state'))!;
}

beforeAll(async () => {
  await buildBrowser({ quiet: true });
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await rm(stateDir(), { recursive: true, force: true });
  // Alerts are evaluated every 5 s, 5 s after a minute's data is in, so a paced run (below) opens them.
  worker = await startWorker(port, { OPERATOR_TOKEN: TOKEN, TELEMETRY_WINDOW_MS: '1000', ALERT_EVAL_INTERVAL_MS: '5000', ALERT_GRACE_MS: '5000' });
  shots = await mkdtemp(join(tmpdir(), 'dw-dashboard-'));
  await waitForUrl(`${base}/healthz`, 90_000);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (worker) await stop(worker);
  await rm(stateDir(), { recursive: true, force: true });
  if (shots) await rm(shots, { recursive: true, force: true });
});

/** What the traffic left in the aggregator: the query range, and the drift the API reported once it settled. */
interface Traffic {
  from: number;
  to: number;
  drift: Drift;
  sent: number;
  stored: number;
}

let traffic: Promise<Traffic> | undefined;
/** The drawing test's time: it may send the traffic itself (paced over minutes with UPDATE_SCREENSHOTS). */
const TRAFFIC_AND_DRAW_MS = UPDATE ? 660_000 : 150_000;

/**
 * Real traffic into this file's worker (once, for every test that needs it; a test run alone
 * sends it itself): January–February rows, then May–June ones, with a canary taking a share;
 * resolves once it has reached the aggregator and stopped changing.
 */
function sendTraffic(): Promise<Traffic> {
  return (traffic ??= (async () => {
    const rows = (await readFile(join(ROOT, `models/${MODEL}/replay.jsonl`), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { features: Row }).features);
    // The replay is in time order; shuffled (seeded) so a phase looks like its months, not
    // like its first few days (January's first week alone would drift on day_of_week).
    const early = shuffle(rows.filter((r) => r.month <= 2));
    const late = shuffle(rows.filter((r) => r.month >= 5));
    // A canary (the float32 build) takes a share of callers, so versions compare side by side.
    const put = await fetch(`${base}/v1/models/${MODEL}/routing`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ stable: '1', canary: { version: '1-float32', share: 0.3 } }),
    });
    expect(put.status, await put.text()).toBe(200);

    const start = Date.now();
    const from = Math.floor(start / MINUTE) * MINUTE - MINUTE;
    // Normal runs send each phase at once; UPDATE_SCREENSHOTS paces them over minutes.
    const phases: { rows: Row[]; count: number; minutes: number }[] = UPDATE
      ? [
          { rows: early, count: 800, minutes: 2 },
          { rows: shuffle(rows.filter((r) => r.month === 3 || r.month === 4)), count: 400, minutes: 1 },
          { rows: late, count: 1200, minutes: 3 },
        ]
      : [
          { rows: early, count: 480, minutes: 0 },
          { rows: late, count: 480, minutes: 0 },
        ];
    const batch = 40;
    let sent = 0;
    let request = 0;
    for (const phase of phases) {
      const batches = Math.ceil(phase.count / batch);
      const pause = (phase.minutes * MINUTE) / batches;
      for (let b = 0; b < batches; b++) {
        const t = Date.now();
        const instances = phase.rows.slice((b * batch) % phase.rows.length, ((b * batch) % phase.rows.length) + batch);
        await predict(instances, `caller-${request++}`);
        sent += instances.length;
        // The clock is the point here: UPDATE_SCREENSHOTS spreads the traffic over real minutes.
        if (pause) await sleep(Math.max(0, pause - (Date.now() - t)));
      }
    }

    // Windows flush on the next request after TELEMETRY_WINDOW_MS (1 s): trickle single rows,
    // one a window apart, until everything sent above is in the aggregator (bounded), then stop.
    const to = Math.ceil((Date.now() + MINUTE) / MINUTE) * MINUTE;
    const query = `/v1/models/${MODEL}/drift?from=${from}&to=${to}&step=${MINUTE}`;
    const total = (d: Drift) => d.windows.reduce((a, w) => a + w.rows, 0);
    let stored = 0;
    await waitFor(
      async () => {
        await predict([early[request % early.length]], `trickle-${request++}`);
        stored = total((await api<Drift>(query)).body);
        return stored >= sent;
      },
      { what: () => `the ${sent} rows sent in the aggregator (it has ${stored})`, timeoutMs: 45_000, intervalMs: 1200 },
    ).catch(() => {
      // Under wrangler dev a change to any source file restarts the worker and loses the
      // isolate's unflushed window (in the shared checkout, others edit files while this runs):
      // the comparisons only need the data to have settled, so most of it will do (checked by the traffic test).
      console.warn(`dashboard test: ${sent - stored} of ${sent} rows never reached the aggregator (worker restarted?)`);
    });
    // Settled: every window that closed has landed (the isolate's outbox holds them until the
    // aggregator answers), and nothing more is sent, so the drift stays as it is now.
    await waitFor(
      async () => {
        const res = await fetch(`${base}/v1/models/${MODEL}/stats`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(20_000) });
        return ((await res.json()) as { telemetry: { outbox: number } }).telemetry.outbox === 0;
      },
      { what: "the worker's telemetry outbox to drain", timeoutMs: 20_000, intervalMs: 100 },
    );
    const drift = (await api<Drift>(query)).body;
    stored = total(drift);
    if (UPDATE) {
      // Alerts open on a later alarm, after three drifted minutes: give them a while to show
      // (the picture is taken either way).
      await waitFor(async () => (await api<{ alerts: unknown[] }>(`/v1/models/${MODEL}/alerts`)).body.alerts.length > 0, {
        what: 'an alert to open',
        timeoutMs: 150_000,
        intervalMs: 5000,
      }).catch(() => console.warn('dashboard test: no alert opened in 150 s'));
    }
    return { from, to, drift, sent, stored };
  })());
}

describe('GET /dashboard in Chromium', () => {
  it('serves one self-contained page under a strict policy', async () => {
    const res = await fetch(`${base}/dashboard`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/connect-src 'self'/);
    expect(csp).toMatch(/script-src 'self';/);
    // Nothing loaded from elsewhere: no src/href to another origin.
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
  }, 30_000);

  it(
    'gets real traffic into the aggregator (Jan–Feb, then May–Jun rows)',
    async () => {
      const { drift, sent, stored } = await sendTraffic();
      // Most of it at least (see sendTraffic: a wrangler dev restart loses an open window).
      expect(stored).toBeGreaterThan(sent / 2);
      // The data the dashboard tests rely on: month moved (May–June against the Jan–Feb baseline).
      expect(drift.windows.some((w) => w.features?.month?.drifted)).toBe(true);
    },
    UPDATE ? 600_000 : 90_000,
  );

  it('draws every panel from the live API', { timeout: TRAFFIC_AND_DRAW_MS }, async () => {
    // The traffic it draws (sent by the traffic test when that ran first).
    const { from, to, drift } = await sendTraffic();
    browser ??= await launchChromium({ viewport: { width: 1280, height: 900 } });
    const page = await browser.context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${base}/dashboard?model=${MODEL}&from=${from}&to=${to}&step=${MINUTE}#token=${TOKEN}`);
    expect(await settled(page), await page.locator('#message').innerText()).toBe('ready');
    expect(problems).toEqual([]);
    // Only this worker was asked for anything, and the token left the address bar.
    expect(requests.filter((u) => !u.startsWith(`${base}/`))).toEqual([]);
    expect(page.url()).not.toContain('token');
    const body = page.locator('body');
    expect([await body.getAttribute('data-from'), await body.getAttribute('data-to'), await body.getAttribute('data-step')]).toEqual([
      String(from),
      String(to),
      String(MINUTE),
    ]);

    // What the API says now (nothing has been sent since the settle above).
    const now = (await api<Drift>(`/v1/models/${MODEL}/drift?from=${from}&to=${to}&step=${MINUTE}`)).body;
    expect(now.windows.map((w) => w.rows)).toEqual(drift.windows.map((w) => w.rows));
    const manifest = (await (await fetch(`${base}/v1/models/${MODEL}`)).json()) as { features: { name: string; kind: string }[]; outputs: { name: string }[] };

    // Heatmap: one row per manifest feature (in order), then the outputs; one cell per window.
    const heat = page.locator('#heatmap');
    expect(await heat.locator('[data-section=feature]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-feature')))).toEqual(
      manifest.features.map((f) => f.name),
    );
    expect(await heat.locator('[data-section=output]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-feature')))).toEqual(
      manifest.outputs.map((o) => o.name),
    );
    for (const f of manifest.features) expect(await heat.locator(`[data-feature="${f.name}"] rect.cell`).count()).toBe(now.windows.length);
    // Rows per window and in total, as the API counts them.
    expect(await page.locator('#volume rect').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('data-rows'))))).toEqual(now.windows.map((w) => w.rows));
    const total = now.windows.reduce((a, w) => a + w.rows, 0);
    expect(Number(await page.locator('#rows-total').getAttribute('data-value'))).toBe(total);
    expect(await page.locator('#rows-total .v').innerText()).toBe(total.toLocaleString('en-US'));
    // Drifted cells are exactly the (feature, window) pairs the API flags.
    const flagged = await heat
      .locator('rect.cell[data-drifted="1"]')
      .evaluateAll((rs) => rs.map((r) => `${r.parentElement!.getAttribute('data-feature')}@${r.getAttribute('data-window')}`).sort());
    const expected = now.windows.flatMap((w, j) => (w.drifted ?? []).map((name) => `${name}@${j}`)).sort();
    expect(flagged).toEqual(expected);
    expect(flagged.some((k) => k.startsWith('month@'))).toBe(true);

    // Live against baseline: a band chart per numeric feature with one live band per window
    // with data; top-value bars for categorical ones.
    const withData = now.windows.filter((w) => w.rows > 0).length;
    for (const f of manifest.features) {
      const box = page.locator(`#bands .multiple[data-feature="${f.name}"]`);
      if (f.kind === 'numeric') {
        expect(await box.locator('rect.live-band').count(), f.name).toBe(withData);
        expect(await box.locator('rect.baseline-band').count(), f.name).toBe(1);
      } else {
        expect(await box.locator('rect.live-bar').count(), f.name).toBeGreaterThan(3);
      }
    }
    expect(await page.locator('#bands .multiple[data-feature=month] .badge.bad').innerText()).toMatch(/drifted in \d+ of \d+/);
    // Latency and served-by: one mark per window with data.
    expect(await page.locator('#served-chart .served-bar').evaluateAll((gs) => gs.map((g) => Number(g.getAttribute('data-rows'))))).toEqual(
      now.windows.filter((w) => w.rows > 0).map((w) => w.rows),
    );
    expect(await page.locator('#latency-chart circle').count()).toBe(2 * withData);
    // Time axes carry dates.
    const day = `${new Date(from).toUTCString().slice(8, 11)} ${new Date(from).getUTCDate()}`;
    expect(await page.locator('#heatmap text.date').first().textContent()).toContain(day);

    // Alerts and versions, as the API has them.
    const alerts = (await api<{ open: number; alerts: { resolved_at: string | null }[] }>(`/v1/models/${MODEL}/alerts`)).body;
    expect(await page.locator('#alerts li').count()).toBe(Math.min(40, alerts.alerts.length));
    expect(await page.locator('#alerts li.open').count()).toBe(Math.min(40, alerts.open));
    if (!alerts.alerts.length) expect(await page.locator('#alerts').innerText()).toContain('No alerts');
    expect(await page.locator('#open-alerts .v').innerText()).toBe(String(alerts.open));
    const versions = (await api<{ versions: Record<string, { role: string; verdict?: string }> }>(`/v1/models/${MODEL}/versions?from=${from}&to=${to}`)).body;
    const heads = await page.locator('#versions thead th').allInnerTexts();
    expect(heads.slice(1).sort()).toEqual(Object.keys(versions.versions).sort());
    expect(heads[1]).toBe('1');
    const canary = versions.versions['1-float32'];
    expect(canary?.role).toBe('canary');
    expect(await page.locator('#versions tr.verdict').innerText()).toContain(canary.verdict!);

    // The screenshot, checked for content: decode it and look inside each chart's box.
    const png = await page.screenshot({ fullPage: true });
    await writeFile(UPDATE ? join(ROOT, 'docs/dashboard.png') : join(shots, 'dashboard.png'), png);
    const img = decodePng(png);
    expect(img.width).toBe(1280);
    const white: [number, number, number] = [255, 255, 255];
    const region = async (selector: string) => {
      const box = await page.locator(selector).first().boundingBox();
      expect(box, selector).not.toBeNull();
      return regionStats(img, box!, white);
    };
    const whole = regionStats(img, { x: 0, y: 0, width: img.width, height: img.height }, [245, 246, 248]);
    expect(whole.distinct).toBeGreaterThan(300);
    // Heatmap: coloured cells, among them the warm (amber to red) ones of drifted windows.
    const hm = await region('#heatmap');
    expect(hm.foregroundShare).toBeGreaterThan(0.15);
    expect(hm.distinct).toBeGreaterThan(40);
    expect(hm.near([160, 36, 30], 40) + hm.near([226, 122, 52], 40)).toBeGreaterThan(100);
    // A band chart: the baseline band (grey) and the live band and p50 line (blue).
    const band = await region('#bands .multiple[data-feature=month] svg');
    expect(band.foregroundShare).toBeGreaterThan(0.1);
    expect(band.near([47, 109, 181], 30)).toBeGreaterThan(50);
    expect(band.near([232, 234, 236], 6)).toBeGreaterThan(1000);
    // Served by: mostly edge blue; latency: both series' colours.
    const served = await region('#served-chart');
    expect(served.near([47, 109, 181], 20)).toBeGreaterThan(1000);
    const lat = await region('#latency-chart');
    expect(lat.near([47, 109, 181], 30)).toBeGreaterThan(20);
    expect(lat.near([217, 130, 43], 30)).toBeGreaterThan(20);
    await page.close();
  });

  it('shows the API’s own error message when a query is refused', async () => {
    browser ??= await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(`${base}/dashboard?model=${MODEL}&range=15m&reference=last_full_moon#token=${TOKEN}`);
    expect(await settled(page)).toBe('error');
    const refused = await api<{ error: { code: string; message: string } }>(`/v1/models/${MODEL}/drift?reference=last_full_moon`);
    expect(refused.status).toBe(400);
    const text = await page.locator('#message').innerText();
    expect(text).toContain('HTTP 400');
    expect(text).toContain(refused.body.error.message);
    await page.close();
  }, 60_000);

  it('shows the API’s 401 message for a wrong token, and recovers with the right one', async () => {
    browser ??= await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(`${base}/dashboard?model=${MODEL}&range=15m#token=not-the-token`);
    expect(await settled(page)).toBe('error');
    const refused = await api<{ error: { message: string } }>(`/v1/models/${MODEL}/alerts`, 'not-the-token');
    expect(refused.status).toBe(401);
    const text = await page.locator('#message').innerText();
    expect(text).toContain('401');
    expect(text).toContain(refused.body.error.message);
    expect(await page.locator('#heatmap').count()).toBe(0);
    await page.fill('#token', TOKEN);
    await page.click('#auth button[type=submit]');
    expect(await settled(page)).toBe('ready');
    expect(await page.locator('#heatmap [data-section=feature]').count()).toBeGreaterThan(0);
    await page.close();
  }, 60_000);
});
