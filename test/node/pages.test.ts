// The pages as static assets (issue 12): /dashboard, /demo and /demo-sw.js are files that
// browser/build.ts builds into browser/assets/, and `wrangler dev` serves them before the worker,
// with their headers from the assets' _headers. Checked against a real `wrangler dev` (the worker
// tests cannot: the Workers vitest plugin's exports.default.fetch does not serve assets): every
// header browser/build.ts declares arrives, the policies are as strict as when the worker served
// the pages (clickjacking refused, scripts and styles from the origin only, nothing inline, no
// connection elsewhere), nothing redirects, and in Chromium both pages run under their policies
// with their styles applied and no violation reported.
import type { ChildProcess } from 'node:child_process';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBrowser, PAGE_HEADERS } from '../../browser/build.ts';
import { launchChromium } from '../support/chromium.ts';
import { freePort, startWorker, stop, waitFor } from '../support/servers.ts';

let base = '';
let worker: ChildProcess | undefined;

beforeAll(async () => {
  await buildBrowser({ quiet: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  worker = await startWorker(port, { OPERATOR_TOKEN: 'op-pages' });
  await waitFor(`${base}/healthz`);
}, 150_000);

afterAll(async () => {
  if (worker) await stop(worker);
});

/** A computed style of the first element matching `selector`, read in the page (this program has no DOM library). */
const css = (page: Page, selector: string, property: string) =>
  page
    .locator(selector)
    .first()
    .evaluate((el, p) => (globalThis as unknown as { getComputedStyle(e: unknown): Record<string, string> }).getComputedStyle(el)[p], property);

const get = (path: string, init: RequestInit = {}) => fetch(base + path, { redirect: 'manual', ...init });

/** A CSP as directive -> sources. */
function policy(csp: string): Map<string, string[]> {
  return new Map(
    csp
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...sources]) => [name, sources]),
  );
}

const PAGES = [
  { path: '/dashboard', type: /^text\/html; charset=utf-8$/i },
  { path: '/demo', type: /^text\/html; charset=utf-8$/i },
  { path: '/demo-sw.js', type: /^text\/javascript; charset=utf-8$/i },
];

describe('the pages, served as static assets', () => {
  for (const { path, type } of PAGES) {
    it(`GET ${path}: 200 at that URL (no redirect), its content type, and every header browser/build.ts declares for it`, async () => {
      for (const method of ['GET', 'HEAD']) {
        const res = await get(path, { method });
        await res.arrayBuffer();
        expect(res.status, `${method} ${path}`).toBe(200);
        expect(res.headers.get('content-type')).toMatch(type);
        for (const [k, v] of Object.entries({ ...PAGE_HEADERS['/*'], ...PAGE_HEADERS[path] })) expect(res.headers.get(k), `${method} ${path} ${k}`).toBe(v);
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      }
    });
  }

  it('both pages refuse framing and load scripts and styles from their own origin only, nothing inline', async () => {
    for (const path of ['/dashboard', '/demo']) {
      const res = await get(path);
      await res.arrayBuffer();
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      const csp = res.headers.get('content-security-policy') ?? '';
      const p = policy(csp);
      expect(p.get('frame-ancestors'), path).toEqual(["'none'"]);
      expect(p.get('connect-src'), path).toEqual(["'self'"]);
      expect(p.get('style-src'), path).toEqual(["'self'"]);
      expect(p.get('base-uri'), path).toEqual(["'none'"]);
      expect(p.get('form-action'), path).toEqual(["'none'"]);
      // No inline code at all: no hash, nonce or 'unsafe-inline' anywhere, no eval (ort's wasm compile aside).
      expect(csp, path).not.toMatch(/'unsafe-inline'|'unsafe-eval'|'sha(256|384|512)-|'nonce-|'unsafe-hashes'|\*/);
    }
    const dashboard = policy((await get('/dashboard')).headers.get('content-security-policy')!);
    expect(dashboard.get('default-src')).toEqual(["'none'"]);
    expect(dashboard.get('script-src')).toEqual(["'self'"]);
    expect(dashboard.get('img-src')).toEqual(['data:']);
    expect((await get('/dashboard')).headers.get('referrer-policy')).toBe('no-referrer');
    const demo = policy((await get('/demo')).headers.get('content-security-policy')!);
    // The demo's module script, Web Worker and service worker are same-origin; ort compiles wasm.
    expect(demo.get('script-src')).toEqual(["'self'", "'wasm-unsafe-eval'"]);
    expect(demo.get('worker-src')).toEqual(["'self'"]);
    expect(demo.get('object-src')).toEqual(["'none'"]);
  });

  it('the HTML holds no inline script, style or handler, and everything it references is a same-origin file, served with its type', async () => {
    for (const path of ['/dashboard', '/demo']) {
      const html = await (await get(path)).text();
      expect(html, path).not.toMatch(/<style[\s>]/i);
      expect(html, path).not.toMatch(/\s(style|on[a-z]+)\s*=/i);
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
      expect(scripts.length, path).toBeGreaterThan(0);
      for (const [, attrs, body] of scripts) {
        expect(body.trim(), `${path}: inline script`).toBe('');
        expect(attrs).toMatch(/\ssrc="\/[^/]/);
      }
      const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/gi)].map((m) => m[1]).filter((u) => u !== 'data:,');
      expect(refs.length, path).toBeGreaterThanOrEqual(2);
      for (const ref of refs) {
        expect(ref, `${path} references ${ref}`).toMatch(/^\/[^/]/);
        const res = await get(ref);
        await res.arrayBuffer();
        expect(res.status, ref).toBe(200);
        expect(res.headers.get('content-type'), ref).toMatch(ref.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
        expect(res.headers.get('x-content-type-options'), ref).toBe('nosniff');
      }
    }
  });

  it('/demo-sw.js is a classic script (registered without type: module) that caches /demo and /browser/*', async () => {
    const sw = await (await get('/demo-sw.js')).text();
    expect(sw).not.toMatch(/^\s*(import|export)\b/m);
    expect(sw).toContain('driftwatch-demo-v1');
    expect(sw).toContain('/browser/');
  });

  it('one URL per page: the .html and trailing-slash forms redirect to it; other methods are refused', async () => {
    for (const path of ['/dashboard', '/demo']) {
      for (const alias of [`${path}.html`, `${path}/`]) {
        const res = await get(alias);
        await res.arrayBuffer();
        expect([301, 307, 308], alias).toContain(res.status);
        expect(res.headers.get('location'), alias).toBe(path);
      }
      const post = await get(path, { method: 'POST', body: '{}' });
      await post.arrayBuffer();
      expect(post.status, `POST ${path}`).toBe(405);
    }
    // The assets' headers file configures, it is not served.
    expect((await get('/_headers')).status).toBe(404);
  });
});

describe('the pages in Chromium, under their policies', () => {
  it('/dashboard runs its script and applies its stylesheet, with no policy violation', async () => {
    const { context, close } = await launchChromium();
    try {
      const page = await context.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/Content.Security.Policy|Refused to/i.test(m.text())) violations.push(m.text());
      });
      await page.goto(`${base}/dashboard`);
      // No token in this tab: the script asks for one.
      await page.locator('body[data-state=token]').waitFor({ timeout: 30_000 });
      expect(await page.locator('#message').textContent()).toContain('Enter the operator token');
      // dashboard.css: the message box of kind "info" is shown (display: none otherwise).
      expect(await css(page, '#message', 'display')).toBe('block');
      expect(await css(page, 'main', 'maxWidth')).toBe('1400px');
      expect(violations).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  it('/demo loads its module and stylesheet, with no policy violation', async () => {
    const { context, close } = await launchChromium();
    try {
      const page = await context.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/Content.Security.Policy|Refused to/i.test(m.text())) violations.push(m.text());
      });
      await page.goto(`${base}/demo`);
      // demo.js ran (the status line leaves "Loading the model…" once the runtime answers, either way).
      await page.locator('#status', { hasNotText: 'Loading the model' }).waitFor({ timeout: 60_000 });
      // demo.css: the status box's background.
      expect(await css(page, '#status', 'backgroundColor')).toBe('rgb(242, 245, 248)');
      expect(violations).toEqual([]);
    } finally {
      await close();
    }
  }, 90_000);
});
