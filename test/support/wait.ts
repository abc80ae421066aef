/**
 * Waiting on a condition instead of a clock, for tests whose background work (telemetry flushes,
 * shadows, beacons, a breaker's open period) finishes at a time the test cannot know. Platform
 * free: used in Node and inside workerd.
 */
export interface WaitOptions {
  /** What is waited for, as the failure names it ("the shadow rows in the aggregator"); a function is asked at the failure (to say what was seen). */
  what: string | (() => string);
  /** Gives up after this long (default 10 s). */
  timeoutMs?: number;
  /** Between two checks (default 25 ms). */
  intervalMs?: number;
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Checks `condition` until it returns something truthy and returns that, at most `timeoutMs`;
 * then fails naming `what`, with the last value the condition returned (or the error it threw).
 * A condition that throws is tried again (the thing may not be up yet).
 */
export async function waitFor<T>(condition: () => T | Promise<T>, { what, timeoutMs = 10_000, intervalMs = 25 }: WaitOptions): Promise<Truthy<T>> {
  const start = Date.now();
  let last: unknown;
  let error: unknown;
  for (;;) {
    try {
      last = await condition();
      error = undefined;
      if (last) return last as Truthy<T>;
    } catch (err) {
      error = err;
    }
    const elapsed = Date.now() - start;
    if (elapsed >= timeoutMs) {
      const seen = error !== undefined ? `it threw ${error instanceof Error ? error.message : String(error)}` : `the last check gave ${show(last)}`;
      throw new Error(`timed out after ${elapsed} ms waiting for ${typeof what === 'function' ? what() : what} (${seen})`);
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, timeoutMs - elapsed)));
  }
}

function show(x: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(x) ?? String(x);
  } catch {
    s = String(x);
  }
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}
