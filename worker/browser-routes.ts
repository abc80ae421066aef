/** The browser runtime's routes: artifacts, telemetry, /demo (in progress: issue 7). */
import type { Hono } from 'hono';
import type { Env } from './app.ts';
import type { BundledModel } from './models.ts';

export function mountBrowserRoutes(app: Hono<{ Bindings: Env }>, deps: { models: Record<string, BundledModel> }): void {
  void app;
  void deps;
}
