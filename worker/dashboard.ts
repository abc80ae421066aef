/**
 * GET /dashboard is a static page now (issue 12): browser/dashboard/ (HTML, CSS and the
 * TypeScript that draws it), built by browser/build.ts into the static assets, which wrangler
 * serves before the worker, with its headers (CSP and the rest) from the assets' _headers.
 *
 * Nothing is left for the worker to do. This no-op stays only until worker/app.ts stops
 * calling it; then this file goes.
 */
import type { Hono } from 'hono';
import type { Env } from './env.ts';

/** @deprecated /dashboard is a static asset (browser/dashboard/); this registers nothing. */
export function mountDashboard(_app: Hono<{ Bindings: Env }>): void {}
