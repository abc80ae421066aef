// The hosted fallback client's rules (worker/fallback.ts), against a scripted `fetch`: retries
// with jitter within the budget, no retry on a 4xx, a 503 `deadline` that is no verdict on the
// target, the Authorization and budget headers, and the circuit breaker opening after N failures
// and half-opening after openMs. Each test fails if the rule it names is broken.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCircuitBreaker, type ModelManifest } from '../../core/index.ts';
import { createFallbackClient, FallbackError } from '../../worker/fallback.ts';
import { ROOT } from '../support/servers.ts';

const manifest = JSON.parse(readFileSync(join(ROOT, 'models/flight-delay/manifest.json'), 'utf8')) as ModelManifest;

/** One flight-delay row as the engine takes it. */
const request = {
  rows: 1,
  params: {},
  feeds: {
    month: { dtype: 'int64' as const, dims: [1], data: BigInt64Array.from([4n]) },
    day_of_week: { dtype: 'int64' as const, dims: [1], data: BigInt64Array.from([5n]) },
    hour: { dtype: 'int64' as const, dims: [1], data: BigInt64Array.from([18n]) },
    distance: { dtype: 'float32' as const, dims: [1], data: Float32Array.from([1846]) },
    origin: { dtype: 'int64' as const, dims: [1], data: BigInt64Array.from([145n]) },
    destination: { dtype: 'int64' as const, dims: [1], data: BigInt64Array.from([106n]) },
  },
};

const OK_BODY = JSON.stringify({ model_name: 'flight-delay', outputs: [{ name: 'p_delay', datatype: 'FP32', shape: [1], data: [0.25] }] });

interface Call {
  url: string;
  headers: Record<string, string>;
  body: unknown;
  at: number;
}

type Answer = { status: number; body?: string; headers?: Record<string, string> } | 'network' | 'hang';

/** A fetch that answers from `script` in order (the last entry repeats) and records each call. */
function scripted(script: Answer[]) {
  const calls: Call[] = [];
  const fetch = (async (url: string, init: RequestInit) => {
    calls.push({ url, headers: init.headers as Record<string, string>, body: JSON.parse(String(init.body)), at: performance.now() });
    const a = script[Math.min(calls.length - 1, script.length - 1)];
    if (a === 'network') throw new TypeError('fetch failed: connection refused');
    if (a === 'hang') {
      return new Promise<Response>((_, reject) => {
        const signal = init.signal!;
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    return new Response(a.body ?? OK_BODY, { status: a.status, headers: { 'content-type': 'application/json', ...a.headers } });
  }) as unknown as typeof globalThis.fetch;
  return { fetch, calls };
}

const deadline503 = {
  status: 503,
  body: JSON.stringify({ error: { code: 'deadline', message: 'cannot answer within 12 ms' } }),
  headers: { 'retry-after': '1' },
};

async function failure(p: Promise<unknown>): Promise<FallbackError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FallbackError);
  return e as FallbackError;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('fallback client: the request it sends', () => {
  it('POSTs v2 JSON to <url>/v2/models/<name>/infer with the Authorization and x-latency-budget-ms headers', async () => {
    const { fetch, calls } = scripted([{ status: 200 }]);
    const client = createFallbackClient({ url: 'http://origin.test:8791//', authorization: 'Bearer s3cret', fetch });
    const out = await client.infer(manifest, request, 80);
    expect(Array.from(out.p_delay.data as Float32Array)).toEqual([0.25]);
    expect(out.p_delay.dims).toEqual([1]);
    expect(calls).toHaveLength(1);
    expect(calls[0].url).toBe('http://origin.test:8791/v2/models/flight-delay/infer');
    expect(calls[0].headers.authorization).toBe('Bearer s3cret');
    expect(calls[0].headers['content-type']).toBe('application/json');
    // The budget left when the attempt started, whole ms, never more than the caller's.
    const budget = Number(calls[0].headers['x-latency-budget-ms']);
    expect(budget).toBeGreaterThanOrEqual(70);
    expect(budget).toBeLessThanOrEqual(80);
    const body = calls[0].body as { inputs: { name: string; datatype: string; shape: number[]; data: number[] }[] };
    expect(body.inputs.map((i) => i.name)).toEqual(manifest.inputs.map((i) => i.name));
    expect(body.inputs.find((i) => i.name === 'distance')).toEqual({ name: 'distance', datatype: 'FP32', shape: [1], data: [1846] });
    expect(body.inputs.find((i) => i.name === 'origin')).toEqual({ name: 'origin', datatype: 'INT64', shape: [1], data: [145] });
  });

  it('sends no Authorization header when none is configured', async () => {
    const { fetch, calls } = scripted([{ status: 200 }]);
    await createFallbackClient({ url: 'http://origin.test', fetch }).infer(manifest, request, 1000);
    expect(Object.keys(calls[0].headers).map((k) => k.toLowerCase())).not.toContain('authorization');
  });

  it('a retry carries the budget left at its own start, not the original budget', async () => {
    let t = 0;
    const now = () => t;
    const { fetch, calls } = scripted([{ status: 500 }, { status: 200 }]);
    const timed = (async (url: string, init: RequestInit) => {
      const res = await fetch(url, init);
      t += 300; // each attempt costs 300 ms of the caller's clock
      return res;
    }) as typeof globalThis.fetch;
    vi.spyOn(Math, 'random').mockReturnValue(0);
    await createFallbackClient({ url: 'http://origin.test', fetch: timed, now, retries: 1 }).infer(manifest, request, 1000);
    expect(calls.map((c) => c.headers['x-latency-budget-ms'])).toEqual(['1000', '700']);
  });
});

describe('fallback client: retries', () => {
  it('a 5xx is retried after a jittered pause, and the retry answers', async () => {
    const { fetch, calls } = scripted([{ status: 502 }, { status: 200 }]);
    const breaker = createCircuitBreaker({ failureThreshold: 5 });
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 1, breaker });
    // Full jitter: the pause is random() x min(20 ms, a quarter of the budget left).
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.99);
    const out = await client.infer(manifest, request, 2000);
    expect(Array.from(out.p_delay.data as Float32Array)).toEqual([0.25]);
    expect(random).toHaveBeenCalled();
    expect(calls).toHaveLength(2);
    const gap = calls[1].at - calls[0].at;
    expect(gap).toBeGreaterThanOrEqual(18);
    expect(gap).toBeLessThan(200);
    expect(client.stats()).toEqual({ attempts: 2, successes: 1, failures: 1, retries: 1 });
    // The success after the failure closes the count: the breaker holds no failure.
    expect(breaker.stats().failures).toBe(0);
  });

  it('the jitter never spends more than a quarter of the budget left', async () => {
    const { fetch, calls } = scripted([{ status: 500 }, { status: 200 }]);
    vi.spyOn(Math, 'random').mockReturnValue(0.99);
    // The pause asked of the timer, not the wall time between the calls: a loaded machine (the
    // full suite runs several wrangler processes beside this) adds its own slack to any timer.
    const timer = vi.spyOn(globalThis, 'setTimeout');
    await createFallbackClient({ url: 'http://origin.test', fetch, retries: 1 }).infer(manifest, request, 24);
    expect(calls).toHaveLength(2);
    const pauses = timer.mock.calls.map((c) => Number(c[1] ?? 0)).filter((ms) => ms > 0);
    timer.mockRestore();
    expect(pauses.length).toBeGreaterThan(0);
    // 0.99 x (the budget left) / 4: at most 6 ms of the 24 ms budget.
    for (const ms of pauses) expect(ms).toBeLessThanOrEqual(6);
  });

  it('a network error is retried FALLBACK_RETRIES times, each counted against the breaker', async () => {
    const { fetch, calls } = scripted(['network']);
    const breaker = createCircuitBreaker({ failureThreshold: 10 });
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 2, breaker });
    const e = await failure(client.infer(manifest, request, 2000));
    expect(e.reason).toBe('network');
    expect(calls).toHaveLength(3);
    expect(breaker.stats().failures).toBe(3);
    expect(client.stats()).toMatchObject({ attempts: 3, failures: 3, retries: 2 });
  });

  it('a 4xx is not retried, and is no failure of the target', async () => {
    const { fetch, calls } = scripted([{ status: 400, body: JSON.stringify({ error: { code: 'invalid_input', message: 'bad' } }) }, { status: 200 }]);
    const breaker = createCircuitBreaker({ failureThreshold: 1 });
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 3, breaker });
    const e = await failure(client.infer(manifest, request, 2000));
    expect(e.message).toMatch(/refused the request \(400\)/);
    expect(calls).toHaveLength(1);
    expect(breaker.state).toBe('closed');
    expect(client.stats().retries).toBe(0);
  });

  it('no retry starts once the budget is spent: a target that hangs costs one attempt cut at the budget, not a breaker failure', async () => {
    const { fetch, calls } = scripted(['hang']);
    const breaker = createCircuitBreaker({ failureThreshold: 1 });
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 3, timeoutMs: 5000, breaker });
    const t = performance.now();
    const e = await failure(client.infer(manifest, request, 60));
    const took = performance.now() - t;
    expect(e.reason).toBe('budget');
    expect(took).toBeGreaterThanOrEqual(55);
    expect(took).toBeLessThan(400);
    expect(calls).toHaveLength(1);
    expect(breaker.state).toBe('closed');
  });

  it("the target's own timeout (shorter than the budget) is a failure, and is retried", async () => {
    const { fetch, calls } = scripted(['hang', { status: 200 }]);
    const breaker = createCircuitBreaker({ failureThreshold: 5 });
    const failed = vi.spyOn(breaker, 'failure');
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 1, timeoutMs: 30, breaker });
    await client.infer(manifest, request, 2000);
    expect(calls).toHaveLength(2);
    expect(failed).toHaveBeenCalledTimes(1);
  });
});

describe('fallback client: 503 deadline is no verdict on the target', () => {
  it('refused for the budget: reason "budget", Retry-After kept, no retry, and the breaker never opens', async () => {
    const { fetch, calls } = scripted([deadline503]);
    const breaker = createCircuitBreaker({ failureThreshold: 2 });
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 2, breaker });
    for (let i = 0; i < 10; i++) {
      const e = await failure(client.infer(manifest, request, 500));
      expect(e.reason).toBe('budget');
      expect(e.retryAfterMs).toBe(1000);
    }
    expect(calls).toHaveLength(10);
    expect(breaker.state).toBe('closed');
    expect(breaker.stats()).toMatchObject({ failures: 0, opened: 0 });
  });

  it('any other 503 is a failure: retried, and counted by the breaker', async () => {
    const { fetch, calls } = scripted([{ status: 503, body: JSON.stringify({ error: { code: 'overloaded', message: 'busy' } }) }]);
    const breaker = createCircuitBreaker({ failureThreshold: 2 });
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 1, breaker });
    const e = await failure(client.infer(manifest, request, 2000));
    expect(e.reason).toBe('upstream');
    expect(calls).toHaveLength(2);
    expect(breaker.state).toBe('open');
  });
});

describe('fallback client: circuit breaker', () => {
  it('opens after BREAKER_FAILURES failures, refuses without calling the target while open, half-opens after openMs with one trial, and a success closes it', async () => {
    let clock = 1_000_000;
    const breaker = createCircuitBreaker({ failureThreshold: 3, windowMs: 10_000, openMs: 5000, now: () => clock });
    let up = false;
    const calls: number[] = [];
    let release: (() => void) | undefined;
    const fetch = (async () => {
      calls.push(clock);
      if (!up) throw new TypeError('connection refused');
      await new Promise<void>((r) => (release = r));
      return new Response(OK_BODY, { status: 200 });
    }) as unknown as typeof globalThis.fetch;
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 0, breaker });

    for (let i = 0; i < 3; i++) expect((await failure(client.infer(manifest, request, 2000))).reason).toBe('network');
    expect(breaker.state).toBe('open');
    expect(calls).toHaveLength(3);

    clock += 4999;
    const refused = await failure(client.infer(manifest, request, 2000));
    expect(refused.reason).toBe('breaker_open');
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect(calls).toHaveLength(3);

    clock += 1;
    expect(breaker.state).toBe('half-open');
    up = true;
    const trial = client.infer(manifest, request, 2000);
    await vi.waitFor(() => expect(calls).toHaveLength(4));
    // One trial at a time: a second caller is refused while the trial is out.
    expect((await failure(client.infer(manifest, request, 2000))).reason).toBe('breaker_open');
    expect(calls).toHaveLength(4);
    release!();
    await trial;
    expect(breaker.state).toBe('closed');
    const next = client.infer(manifest, request, 2000);
    await vi.waitFor(() => expect(calls).toHaveLength(5));
    release!();
    await next;
  });

  it('a failed half-open trial opens the breaker for another openMs', async () => {
    let clock = 0;
    const breaker = createCircuitBreaker({ failureThreshold: 2, openMs: 1000, now: () => clock });
    const { fetch, calls } = scripted(['network']);
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 0, breaker });
    await failure(client.infer(manifest, request, 2000));
    await failure(client.infer(manifest, request, 2000));
    expect(breaker.stats().opened).toBe(1);
    clock += 1000;
    expect((await failure(client.infer(manifest, request, 2000))).reason).toBe('network');
    expect(calls).toHaveLength(3);
    expect(breaker.stats()).toMatchObject({ state: 'open', opened: 2 });
    clock += 999;
    expect((await failure(client.infer(manifest, request, 2000))).reason).toBe('breaker_open');
    expect(calls).toHaveLength(3);
  });

  it("a half-open trial cut short by the caller's budget gives its slot back (the next caller may try)", async () => {
    let clock = 0;
    const breaker = createCircuitBreaker({ failureThreshold: 1, openMs: 1000, now: () => clock });
    let mode: 'network' | 'hang' | 'ok' = 'network';
    let n = 0;
    const fetch = (async (_url: string, init: RequestInit) => {
      n++;
      if (mode === 'network') throw new TypeError('connection refused');
      if (mode === 'hang') return new Promise((_, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason), { once: true }));
      return new Response(OK_BODY, { status: 200 });
    }) as unknown as typeof globalThis.fetch;
    const client = createFallbackClient({ url: 'http://origin.test', fetch, retries: 0, timeoutMs: 5000, breaker });
    await failure(client.infer(manifest, request, 2000));
    expect(breaker.state).toBe('open');
    clock += 1000;
    mode = 'hang';
    expect((await failure(client.infer(manifest, request, 30))).reason).toBe('budget');
    expect(breaker.state).toBe('half-open');
    mode = 'ok';
    await client.infer(manifest, request, 2000);
    expect(n).toBe(3);
    expect(breaker.state).toBe('closed');
  });
});
