/** Benchmark-only routes (BENCH_ROUTES=1) for npm run bench:telemetry (in progress: issue 6). */
import type { Hono } from 'hono';
import type { Env } from './app.ts';
import type { BundledModel } from './models.ts';

export function mountBenchRoutes(app: Hono<{ Bindings: Env }>, deps: { models: Record<string, BundledModel> }): void {
  void app;
  void deps;
}
