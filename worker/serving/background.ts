/**
 * Work that goes on after the answer: in workerd, handed to the request's `waitUntil` so the
 * isolate stays alive for it; without an execution context (app.request in tests, Node) the
 * promise simply runs.
 */
import type { Context } from 'hono';

export type Background = (work: Promise<unknown>) => void;

export function backgroundOf(c: Context): Background {
  return (work) => {
    try {
      c.executionCtx.waitUntil(work);
    } catch {
      // No execution context: the work runs anyway.
    }
  };
}
