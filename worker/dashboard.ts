/** GET /dashboard: the operator's page (in progress: issue 6). */
import type { Hono } from 'hono';
import type { Env } from './app.ts';

export function mountDashboard(app: Hono<{ Bindings: Env }>): void {
  void app;
}
