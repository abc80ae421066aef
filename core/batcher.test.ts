import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBatcher, DeadlineError, OverloadedError, type BatcherOptions, type BatchMode } from './batcher.ts';

// ---------------------------------------------------------------------------------------
// A deterministic virtual clock. The batcher gets `now`, `setTimer` and `clearTimer` from it;
// fake `run`s use `schedule` to finish after virtual time. Nothing here touches real timers,
// so every test is exact and fast in Node and in workerd alike.

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

class VirtualClock {
  t = 0;
  #seq = 0;
  #timers = new Map<number, Timer>();
  #batcherHandles = new Set<number>();
  /** Every `ms` the batcher passed to setTimer, with the virtual time of the call. */
  readonly batcherTimers: { at: number; ms: number }[] = [];

  readonly now = (): number => this.t;

  /** A timer for the fake run (not counted as a batcher timer). */
  schedule(fn: () => void, ms: number): number {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.t + Math.max(0, ms), seq: id, fn });
    return id;
  }

  readonly setTimer = (fn: () => void, ms: number): unknown => {
    this.batcherTimers.push({ at: this.t, ms });
    const id = this.schedule(() => {
      this.#batcherHandles.delete(id);
      fn();
    }, ms);
    this.#batcherHandles.add(id);
    return id;
  };

  readonly clearTimer = (handle: unknown): void => {
    this.#timers.delete(handle as number);
    this.#batcherHandles.delete(handle as number);
  };

  /** The batcher's timers that are armed now. */
  get pendingBatcherTimers(): number {
    return this.#batcherHandles.size;
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Lets every queued microtask and promise reaction run (the batcher's chains are a few deep). */
  async settle(): Promise<void> {
    for (let i = 0; i < 64; i++) await Promise.resolve();
  }

  /** Moves virtual time forward by `ms`, firing due timers in (time, creation) order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await this.settle();
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.#timers.values()) {
        if (timer.at <= end && (!next || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) next = timer;
      }
      if (!next) break;
      this.#timers.delete(next.seq);
      this.t = Math.max(this.t, next.at);
      next.fn();
      await this.settle();
    }
    this.t = end;
    await this.settle();
  }

  /** Advances until no timer is armed. */
  async drain(): Promise<void> {
    await this.settle();
    for (let guard = 0; this.#timers.size > 0; guard++) {
      if (guard > 10_000) throw new Error('virtual clock did not drain');
      let first = Infinity;
      for (const timer of this.#timers.values()) first = Math.min(first, timer.at);
      await this.advance(first - this.t);
    }
    await this.settle();
  }
}

type Item = number;
const f = (x: Item): string => `out:${x * 3 + 1}`;

interface Harness {
  clock: VirtualClock;
  /** Items of each call to run, in call order. */
  calls: Item[][];
  /** Virtual time of each call to run. */
  callTimes: number[];
  run: (items: Item[]) => Promise<string[]>;
}

/** A run that maps `f` over its items and takes `cost(n)` virtual ms (0: resolves at once). */
function harness(cost: (n: number) => number = () => 0, clock = new VirtualClock()): Harness {
  const calls: Item[][] = [];
  const callTimes: number[] = [];
  const run = (items: Item[]): Promise<string[]> => {
    calls.push([...items]);
    callTimes.push(clock.t);
    const out = items.map(f);
    const ms = cost(items.length);
    if (ms <= 0) return Promise.resolve(out);
    return new Promise((resolve) => clock.schedule(() => resolve(out), ms));
  };
  return { clock, calls, callTimes, run };
}

/** Runs `n` lone requests one after another (no deadline), so that the cost model has `n` measurements. */
async function measureLone(h: Harness, b: { submit: (x: Item) => Promise<string> }, n: number, item: Item = -1): Promise<void> {
  for (let i = 0; i < n; i++) {
    const p = b.submit(item);
    await h.clock.drain();
    await p;
  }
}

function timing(clock: VirtualClock): Pick<BatcherOptions<Item, string>, 'now' | 'setTimer' | 'clearTimer'> {
  return { now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer };
}

/** Records how a promise settled, without leaving a rejection unhandled. */
function track<T>(p: Promise<T>): { settled: number; value?: T; error?: unknown; ok?: boolean } {
  const s: { settled: number; value?: T; error?: unknown; ok?: boolean } = { settled: 0 };
  p.then(
    (v) => {
      s.settled++;
      s.ok = true;
      s.value = v;
    },
    (e: unknown) => {
      s.settled++;
      s.ok = false;
      s.error = e;
    },
  );
  return s;
}

// ---------------------------------------------------------------------------------------

describe('createBatcher: immediate dispatch', () => {
  it.each<BatchMode>(['adaptive', 'off'])('a lone request on an idle engine runs at once (mode %s)', async (mode) => {
    const h = harness(() => 1);
    const b = createBatcher({ run: h.run, mode, ...timing(h.clock) });
    const p = b.submit(7);
    // In a microtask, not synchronously, so that same-tick submits can share the batch.
    expect(h.calls).toEqual([]);
    await h.clock.settle();
    expect(h.calls).toEqual([[7]]);
    expect(h.callTimes).toEqual([0]);
    expect(h.clock.batcherTimers).toEqual([]);
    await h.clock.advance(1);
    await expect(p).resolves.toBe(f(7));
  });

  it('a lone request after sparse traffic runs at once (adaptive, cost model fitted)', async () => {
    const h = harness((n) => 2 + 0.5 * n);
    const b = createBatcher({ run: h.run, maxWaitMs: 5, ...timing(h.clock) });
    for (let i = 0; i < 6; i++) {
      const before = h.clock.batcherTimers.length;
      const at = h.clock.t;
      const p = b.submit(i);
      await h.clock.settle();
      expect(h.callTimes.at(-1)).toBe(at);
      expect(h.calls.at(-1)).toEqual([i]);
      expect(h.clock.batcherTimers.length).toBe(before);
      await h.clock.advance(50);
      await expect(p).resolves.toBe(f(i));
    }
    expect(b.stats().arrivalIntervalMs).toBeGreaterThan(b.stats().cost.fixedMs);
  });

  it('a lone request in fixed mode with maxBatch 1 runs at once (the batch is full)', async () => {
    const h = harness();
    const b = createBatcher({ run: h.run, mode: 'fixed', maxBatch: 1, maxWaitMs: 10, ...timing(h.clock) });
    const p = b.submit(1);
    await h.clock.settle();
    expect(h.calls).toEqual([[1]]);
    expect(h.clock.batcherTimers).toEqual([]);
    await expect(p).resolves.toBe(f(1));
  });
});

describe('createBatcher: batching', () => {
  it.each([0, 5])('same-tick requests share batches of at most maxBatch, FIFO (run cost %d ms)', async (ms) => {
    const h = harness(() => ms);
    const b = createBatcher({ run: h.run, maxBatch: 4, ...timing(h.clock) });
    const items = Array.from({ length: 10 }, (_, i) => i * 11 - 20);
    const ps = items.map((x) => b.submit(x));
    await h.clock.drain();
    expect(h.calls).toEqual([items.slice(0, 4), items.slice(4, 8), items.slice(8)]);
    expect(h.callTimes).toEqual([0, ms, 2 * ms]);
    // Each caller gets its own result: the same as running the items one by one.
    expect(await Promise.all(ps)).toEqual(items.map((x) => f(x)));
    const s = b.stats();
    expect(s.batches).toBe(3);
    expect(s.items).toBe(10);
    expect(s.batchSizes).toEqual([0, 0, 1, 0, 2]);
    expect(s.queued).toBe(0);
    expect(s.running).toBe(false);
  });

  it.each<BatchMode>(['adaptive', 'fixed', 'off'])('arrivals during a run queue and start together when it finishes (mode %s)', async (mode) => {
    const h = harness(() => 10);
    const b = createBatcher({ run: h.run, mode, maxWaitMs: 3, maxBatch: 8, ...timing(h.clock) });
    const pA = b.submit(1);
    await h.clock.advance(mode === 'fixed' ? 3 : 0); // fixed waits its window for the lone request
    const start = h.clock.t;
    expect(h.callTimes).toEqual([start]);
    await h.clock.advance(2);
    const pB = b.submit(2);
    await h.clock.advance(3);
    const pC = b.submit(3);
    await h.clock.advance(1);
    const pD = b.submit(4);
    expect(b.stats()).toMatchObject({ queued: 3, running: true });
    const timersBefore = h.clock.batcherTimers.length;
    await h.clock.advance(start + 10 - h.clock.t);
    // Dispatched at the very moment the first batch finished, with no wait window.
    expect(h.clock.batcherTimers.length).toBe(timersBefore);
    if (mode === 'off') {
      expect(h.calls).toEqual([[1], [2]]);
      expect(h.callTimes).toEqual([start, start + 10]);
    } else {
      expect(h.calls).toEqual([[1], [2, 3, 4]]);
      expect(h.callTimes).toEqual([start, start + 10]);
    }
    await h.clock.drain();
    expect(await Promise.all([pA, pB, pC, pD])).toEqual([1, 2, 3, 4].map(f));
  });

  it("mode 'off' runs every item alone, in order", async () => {
    const h = harness(() => 1);
    const b = createBatcher({ run: h.run, mode: 'off', maxBatch: 16, ...timing(h.clock) });
    const ps = [5, 6, 7, 8, 9].map((x) => b.submit(x));
    await h.clock.drain();
    expect(h.calls).toEqual([[5], [6], [7], [8], [9]]);
    expect(h.callTimes).toEqual([0, 1, 2, 3, 4]);
    expect(await Promise.all(ps)).toEqual([5, 6, 7, 8, 9].map(f));
    expect(b.stats().batchSizes).toEqual([0, 5]);
    expect(h.clock.batcherTimers).toEqual([]);
  });
});

describe("createBatcher: mode 'fixed'", () => {
  it('waits maxWaitMs from the first queued request', async () => {
    const h = harness();
    const b = createBatcher({ run: h.run, mode: 'fixed', maxBatch: 8, maxWaitMs: 5, ...timing(h.clock) });
    const ps = [b.submit(1)];
    await h.clock.advance(1);
    ps.push(b.submit(2));
    await h.clock.advance(2.5);
    ps.push(b.submit(3));
    await h.clock.advance(1.49);
    expect(h.calls).toEqual([]);
    await h.clock.advance(0.01);
    expect(h.calls).toEqual([[1, 2, 3]]);
    expect(h.callTimes).toEqual([5]);
    expect(h.clock.batcherTimers[0]).toEqual({ at: 0, ms: 5 });
    expect(await Promise.all(ps)).toEqual([1, 2, 3].map(f));
  });

  it('dispatches at once when the batch fills in one tick', async () => {
    const h = harness();
    const b = createBatcher({ run: h.run, mode: 'fixed', maxBatch: 4, maxWaitMs: 5, ...timing(h.clock) });
    const ps = [1, 2, 3, 4].map((x) => b.submit(x));
    await h.clock.settle();
    expect(h.calls).toEqual([[1, 2, 3, 4]]);
    expect(h.callTimes).toEqual([0]);
    expect(h.clock.pendingBatcherTimers).toBe(0);
    expect(await Promise.all(ps)).toEqual([1, 2, 3, 4].map(f));
  });

  it('dispatches at once when the batch fills before the window ends', async () => {
    const h = harness();
    const b = createBatcher({ run: h.run, mode: 'fixed', maxBatch: 3, maxWaitMs: 5, ...timing(h.clock) });
    const ps = [b.submit(1)];
    await h.clock.advance(1);
    ps.push(b.submit(2));
    await h.clock.advance(1);
    ps.push(b.submit(3));
    await h.clock.settle();
    expect(h.calls).toEqual([[1, 2, 3]]);
    expect(h.callTimes).toEqual([2]);
    expect(h.clock.pendingBatcherTimers).toBe(0);
    await h.clock.drain();
    expect(h.calls).toHaveLength(1);
    expect(await Promise.all(ps)).toEqual([1, 2, 3].map(f));
  });
});

describe("createBatcher: mode 'adaptive'", () => {
  /**
   * Run cost 10 + 0.5·n ms. Warm-up: one request at t=0 and ten more 1 ms apart while it runs,
   * so the fitted fixed cost (10 ms) is far above the arrival interval, and the engine is idle
   * from t=25.5.
   */
  async function warmed(maxWaitMs: number) {
    const h = harness((n) => 10 + 0.5 * n);
    const b = createBatcher({ run: h.run, maxWaitMs, maxBatch: 32, prior: { fixedMs: 10, perItemMs: 0.5 }, ...timing(h.clock) });
    const ps = [b.submit(0)];
    for (let i = 1; i <= 10; i++) {
      await h.clock.advance(1);
      ps.push(b.submit(i));
    }
    await h.clock.drain();
    expect(h.calls).toEqual([[0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]);
    await Promise.all(ps);
    expect(b.stats().cost.fixedMs).toBeCloseTo(10, 6);
    expect(b.stats().cost.perItemMs).toBeCloseTo(0.5, 6);
    expect(h.clock.batcherTimers).toEqual([]);
    return { h, b };
  }

  it('with fast arrivals and a fixed cost above the interval, it waits while interval·n < a, never more than maxWaitMs in all', async () => {
    const maxWaitMs = 3;
    const { h, b } = await warmed(maxWaitMs);
    await h.clock.advance(26 - h.clock.t);
    const first = h.clock.t;
    const ps = [b.submit(100)];
    // The rule's precondition: interval·n < a, with n = 1.
    expect(b.stats().arrivalIntervalMs!).toBeLessThan(b.stats().cost.fixedMs);
    await h.clock.settle();
    expect(h.calls).toHaveLength(2); // it waits...
    expect(h.clock.pendingBatcherTimers).toBe(1);
    // ...until interval·n reaches a, or maxWaitMs from the first request, whichever comes first.
    let expectedAt = first + maxWaitMs;
    for (let i = 1; i < 8 && h.calls.length === 2; i++) {
      await h.clock.advance(0.7);
      if (h.calls.length > 2) break;
      ps.push(b.submit(100 + i));
      const s = b.stats();
      if (s.arrivalIntervalMs! * (i + 1) >= s.cost.fixedMs) {
        expectedAt = Math.min(expectedAt, h.clock.t);
        break;
      }
    }
    await h.clock.advance(maxWaitMs);
    for (const { ms } of h.clock.batcherTimers) expect(ms).toBeLessThanOrEqual(maxWaitMs);
    expect(h.calls.length).toBe(3);
    expect(h.callTimes[2]).toBeCloseTo(expectedAt, 9);
    expect(h.callTimes[2] - first).toBeGreaterThan(0);
    expect(h.callTimes[2] - first).toBeLessThanOrEqual(maxWaitMs + 1e-9);
    expect(h.calls[2]).toEqual(ps.map((_, i) => 100 + i));
    expect(h.calls[2].length).toBeGreaterThan(1);
    await h.clock.drain();
    expect(await Promise.all(ps)).toEqual(h.calls[2].map(f));
  });

  it('never waits past the tightest deadline slack', async () => {
    const { h, b } = await warmed(3);
    await h.clock.advance(26 - h.clock.t);
    const at = h.clock.t;
    // One request with a comfortable deadline and one whose slack is 1 ms (for a batch of 3).
    const p1 = b.submit(1, { deadline: at + 100 });
    const p2 = b.submit(2, { deadline: at + b.estimate(3) + 1 });
    await h.clock.settle();
    expect(h.calls).toHaveLength(2);
    const last = h.clock.batcherTimers.at(-1)!;
    expect(last.ms).toBeLessThanOrEqual(1 + 1e-9);
    await h.clock.advance(1);
    expect(h.calls).toHaveLength(3);
    expect(h.calls[2]).toEqual([1, 2]);
    expect(h.callTimes[2]).toBeLessThanOrEqual(at + 1 + 1e-9);
    await h.clock.drain();
    expect(await Promise.all([p1, p2])).toEqual([f(1), f(2)]);
  });

  it('with sparse arrivals it does not wait', async () => {
    const h = harness((n) => 10 + 0.5 * n);
    const b = createBatcher({ run: h.run, maxWaitMs: 3, prior: { fixedMs: 10, perItemMs: 0.5 }, ...timing(h.clock) });
    const ps: Promise<string>[] = [];
    for (let i = 0; i < 8; i++) {
      const at = h.clock.t;
      ps.push(b.submit(i));
      await h.clock.settle();
      expect(h.callTimes.at(-1)).toBe(at);
      await h.clock.advance(40);
    }
    expect(h.clock.batcherTimers).toEqual([]);
    expect(h.calls).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((x) => [x]));
    expect(await Promise.all(ps)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(f));
  });

  // Regression: the wait used to be decided once, by the first request's timer; each arrival
  // now re-decides it (a = 20 ms, maxWaitMs = 10, arrivals 1 ms apart after a lull: the batch
  // used to leave at t = 57.8 with 7 requests, while interval·n ≈ 18 < a).
  it('keeps waiting while interval·n < a, up to maxWaitMs (each arrival re-decides the window)', async () => {
    const clock = new VirtualClock();
    const inner = harness((n) => 20 + 0.5 * n, clock);
    const atDispatch: { interval: number; fixedMs: number }[] = [];
    const maxWaitMs = 10;
    const run = (items: number[]): Promise<string[]> => {
      const s = b.stats();
      atDispatch.push({ interval: s.arrivalIntervalMs ?? Infinity, fixedMs: s.cost.fixedMs });
      return inner.run(items);
    };
    const b = createBatcher({ run, maxWaitMs, maxBatch: 32, prior: { fixedMs: 20, perItemMs: 0.5 }, ...timing(clock) });
    // Warm-up: arrivals 1 ms apart while a 20.5 ms batch runs; idle again from t = 50.5.
    const ps = [b.submit(0)];
    for (let i = 1; i <= 20; i++) {
      await clock.advance(1);
      ps.push(b.submit(i));
    }
    await clock.drain();
    expect(clock.t).toBe(50.5);
    // After a short lull, steady arrivals 1 ms apart.
    await clock.advance(0.5);
    const first = clock.t;
    for (let i = 0; i < 15; i++) {
      ps.push(b.submit(100 + i));
      await clock.advance(1);
    }
    await clock.drain();
    await Promise.all(ps);
    const k = inner.calls.findIndex((c) => c[0] === 100);
    const n = inner.calls[k].length;
    const waited = inner.callTimes[k] - first;
    const { interval, fixedMs } = atDispatch[k];
    // It left by timer, so by the contract either the cap was reached or waiting no longer paid.
    expect(waited >= maxWaitMs - 1e-9 || interval * n >= fixedMs, `left after ${waited} ms with n = ${n}, interval·n = ${interval * n} < a = ${fixedMs}`).toBe(
      true,
    );
  });
});

describe('createBatcher: cost model', () => {
  it.each([
    { a: 3, per: 0.25, jitter: 0, tol: 1e-6 },
    { a: 8, per: 1.5, jitter: 0.1, tol: 0.3 },
    { a: 0.5, per: 0.02, jitter: 0.01, tol: 0.05 },
  ])('stats().cost recovers t(n) = $a + $per * n from measured batch times (jitter $jitter)', async ({ a, per, jitter, tol }) => {
    let k = 0;
    const h = harness((n) => a + per * n + jitter * (k++ % 2 === 0 ? 1 : -1));
    const bt = createBatcher({ run: h.run, maxBatch: 16, prior: { fixedMs: 100, perItemMs: 7 }, ...timing(h.clock) });
    const sizes = [1, 4, 2, 8, 16, 3, 1, 12, 6, 9, 2, 15, 5, 10, 7, 11];
    for (const n of sizes) {
      await h.clock.advance(1000);
      const ps = Array.from({ length: n }, (_, i) => bt.submit(i));
      await h.clock.drain();
      await Promise.all(ps);
      expect(h.calls.at(-1)).toHaveLength(n);
    }
    const { cost } = bt.stats();
    expect(Math.abs(cost.fixedMs - a)).toBeLessThanOrEqual(tol);
    expect(Math.abs(cost.perItemMs - per)).toBeLessThanOrEqual(tol / 4);
    expect(bt.estimate(10)).toBeCloseTo(cost.fixedMs + 10 * cost.perItemMs, 9);
  });

  it('keeps the prior until the first measurement', () => {
    const h = harness();
    const b = createBatcher({ run: h.run, prior: { fixedMs: 4, perItemMs: 0.25 }, ...timing(h.clock) });
    expect(b.stats().cost).toEqual({ fixedMs: 4, perItemMs: 0.25 });
    expect(b.estimate(8)).toBe(6);
  });
});

describe('createBatcher: deadlines', () => {
  // Refusing by the estimate needs `minSamples` (5) measured batches: see 'trusting the estimate'.
  it('refuses at submit a request that cannot finish in time behind the queue ahead', async () => {
    const h = harness((n) => 10 + n);
    const b = createBatcher({ run: h.run, prior: { fixedMs: 10, perItemMs: 1 }, ...timing(h.clock) });
    await measureLone(h, b, 5);
    const t = h.clock.t;
    const pA = b.submit(1); // runs t..t+11
    await h.clock.settle();
    const pB = b.submit(2, { deadline: t + 5 }); // behind A: about 22 ms needed
    await expect(pB).rejects.toBeInstanceOf(DeadlineError);
    const err = await pB.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as DeadlineError).name).toBe('DeadlineError');
    expect((err as DeadlineError).retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(Number.isFinite((err as DeadlineError).retryAfterMs)).toBe(true);
    // A deadline that is met is accepted.
    const pC = b.submit(3, { deadline: t + 100 });
    await h.clock.drain();
    expect(await Promise.all([pA, pC])).toEqual([f(1), f(3)]);
    expect(h.calls.flat()).not.toContain(2);
    expect(b.stats().refusedDeadline).toBe(1);
  });

  it('refuses at submit on an idle engine when the batch alone takes too long', async () => {
    const h = harness((n) => 10 + n);
    const b = createBatcher({ run: h.run, prior: { fixedMs: 10, perItemMs: 1 }, ...timing(h.clock) });
    await measureLone(h, b, 5);
    const p = b.submit(1, { deadline: h.clock.t + 10.5 });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineError);
    expect((err as DeadlineError).retryAfterMs).toBeGreaterThanOrEqual(1);
    await h.clock.drain();
    expect(h.calls).toHaveLength(5);
    expect(b.stats()).toMatchObject({ refusedDeadline: 1, batches: 5, items: 5 });
  });

  it('refuses at dispatch a request whose deadline has become unreachable, and never runs it', async () => {
    // The prior says 1 ms a batch, but the first batch takes 50 ms.
    const h = harness(() => 50);
    const b = createBatcher({ run: h.run, prior: { fixedMs: 1, perItemMs: 0 }, ...timing(h.clock) });
    const pA = b.submit(1);
    await h.clock.advance(1);
    const late = track(b.submit(2, { deadline: 10 })); // accepted: about 2 ms expected
    const pC = b.submit(3); // no deadline
    await h.clock.advance(0);
    expect(late.settled).toBe(0);
    await h.clock.drain();
    expect(late.settled).toBe(1);
    expect(late.error).toBeInstanceOf(DeadlineError);
    expect((late.error as DeadlineError).retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(h.calls).toEqual([[1], [3]]);
    expect(await Promise.all([pA, pC])).toEqual([f(1), f(3)]);
    expect(b.stats()).toMatchObject({ refusedDeadline: 1, items: 2 });
  });

  it.each<BatchMode>(['adaptive', 'fixed'])('a batch made only of late requests is dropped and what waited behind it goes at once (mode %s)', async (mode) => {
    const h = harness(() => 50);
    const b = createBatcher({ run: h.run, mode, maxBatch: 2, maxWaitMs: 5, prior: { fixedMs: 1, perItemMs: 0 }, ...timing(h.clock) });
    const pA = b.submit(1);
    await h.clock.advance(mode === 'fixed' ? 6 : 1);
    const l1 = track(b.submit(2, { deadline: h.clock.t + 4 }));
    const l2 = track(b.submit(3, { deadline: h.clock.t + 4 }));
    const pD = b.submit(4);
    await h.clock.drain();
    expect(l1.error).toBeInstanceOf(DeadlineError);
    expect(l2.error).toBeInstanceOf(DeadlineError);
    expect(h.calls).toEqual([[1], [4]]);
    // D has waited since before the first batch finished: no new window.
    expect(h.callTimes[1]).toBe(h.callTimes[0] + 50);
    expect(await Promise.all([pA, pD])).toEqual([f(1), f(4)]);
  });
});

describe('createBatcher: bounded queue', () => {
  it('refuses submits beyond maxQueue with OverloadedError', async () => {
    const h = harness(() => 10);
    const b = createBatcher({ run: h.run, maxBatch: 4, maxQueue: 2, ...timing(h.clock) });
    const pA = b.submit(1);
    const pB = b.submit(2);
    const c = track(b.submit(3)); // two already waiting
    await h.clock.settle();
    expect(c.error).toBeInstanceOf(OverloadedError);
    expect((c.error as OverloadedError).name).toBe('OverloadedError');
    expect((c.error as OverloadedError).retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(h.calls).toEqual([[1, 2]]);
    // The running batch does not count: two more may wait, the third is refused.
    const pD = b.submit(4);
    const pE = b.submit(5);
    const f6 = track(b.submit(6));
    const f7 = track(b.submit(7));
    await h.clock.settle();
    expect(f6.error).toBeInstanceOf(OverloadedError);
    expect(f7.error).toBeInstanceOf(OverloadedError);
    expect((f7.error as OverloadedError).retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(b.stats()).toMatchObject({ refusedOverload: 3, queued: 2, running: true });
    await h.clock.drain();
    expect(h.calls).toEqual([
      [1, 2],
      [4, 5],
    ]);
    expect(await Promise.all([pA, pB, pD, pE])).toEqual([1, 2, 4, 5].map(f));
    expect(b.stats().refusedOverload).toBe(3);
  });
});

describe('createBatcher: failing runs', () => {
  it.each(['throws', 'rejects'] as const)('a run that %s rejects exactly its own requests with that error; the next batch succeeds', async (how) => {
    const clock = new VirtualClock();
    const boom = new Error('engine exploded');
    const calls: number[][] = [];
    const run = (items: number[]): Promise<string[]> => {
      calls.push([...items]);
      if (calls.length === 1) {
        if (how === 'throws') throw boom;
        return new Promise((_, reject) => clock.schedule(() => reject(boom), 5));
      }
      return new Promise((resolve) => clock.schedule(() => resolve(items.map(f)), 5));
    };
    const b = createBatcher({ run, maxBatch: 2, ...timing(clock) });
    const ts = [1, 2, 3, 4].map((x) => track(b.submit(x)));
    await clock.drain();
    expect(calls).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(ts.map((t) => t.settled)).toEqual([1, 1, 1, 1]);
    expect(ts[0].error).toBe(boom);
    expect(ts[1].error).toBe(boom);
    expect(ts[2].value).toBe(f(3));
    expect(ts[3].value).toBe(f(4));
    expect(b.stats()).toMatchObject({ failedBatches: 1, batches: 2, items: 4, running: false });
  });

  it.each([
    { label: 'too few', mk: (items: number[]) => items.slice(1).map(f) },
    { label: 'too many', mk: (items: number[]) => [...items, 0].map(f) },
    { label: 'not an array', mk: () => 'nope' as unknown as string[] },
  ])('a run that returns $label results rejects its batch with an Error that says so', async ({ mk }) => {
    const clock = new VirtualClock();
    let n = 0;
    const run = async (items: number[]): Promise<string[]> => (n++ === 0 ? mk(items) : items.map(f));
    const b = createBatcher({ run, maxBatch: 2, ...timing(clock) });
    const ts = [1, 2, 3].map((x) => track(b.submit(x)));
    await clock.drain();
    expect(ts[0].error).toBeInstanceOf(Error);
    expect(ts[1].error).toBe(ts[0].error);
    expect((ts[0].error as Error).message).toMatch(/returned .* results for 2 items/);
    expect(ts[2].value).toBe(f(3));
    expect(b.stats().failedBatches).toBe(1);
  });
});

describe('createBatcher: options', () => {
  const run = async (items: number[]) => items;
  it.each([0, -1, 1.5, Number.NaN, Infinity])('rejects maxBatch %s with RangeError', (maxBatch) => {
    expect(() => createBatcher({ run, maxBatch })).toThrow(RangeError);
  });
  it.each([-1, -0.001, Number.NaN])('rejects maxWaitMs %s with RangeError', (maxWaitMs) => {
    expect(() => createBatcher({ run, maxWaitMs })).toThrow(RangeError);
  });
  it.each([0, -3, 2.5, Number.NaN, Infinity])('rejects maxQueue %s with RangeError', (maxQueue) => {
    expect(() => createBatcher({ run, maxQueue })).toThrow(RangeError);
  });
  it('accepts the boundaries', () => {
    expect(() => createBatcher({ run, maxBatch: 1, maxWaitMs: 0, maxQueue: 1 })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------
// Property: random schedules.

type Poison = 'none' | 'throw' | 'reject' | 'short';

interface Arrival {
  gap: number;
  /** Relative deadline, ms after submit. */
  deadline: number | null;
  poison: Poison;
}

const arrivalArb: fc.Arbitrary<Arrival> = fc.record({
  gap: fc.oneof(fc.constant(0), fc.constant(0), fc.double({ min: 0, max: 6, noNaN: true }), fc.integer({ min: 0, max: 20 })),
  // About one request in four has a deadline, from hopeless to comfortable.
  deadline: fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.oneof(fc.double({ min: 0, max: 60, noNaN: true }), fc.integer({ min: 0, max: 60 })) },
  ),
  // About one request in twenty poisons its batch.
  poison: fc.oneof({ weight: 57, arbitrary: fc.constant<Poison>('none') }, { weight: 3, arbitrary: fc.constantFrom<Poison>('throw', 'reject', 'short') }),
});

const scenarioArb = fc.record({
  mode: fc.constantFrom<BatchMode>('adaptive', 'fixed', 'off'),
  maxBatch: fc.integer({ min: 1, max: 8 }),
  maxWaitMs: fc.constantFrom(0, 0.5, 2, 5),
  maxQueue: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(1024)),
  fixedMs: fc.constantFrom(0, 0.25, 1, 3, 8),
  perItemMs: fc.constantFrom(0, 0.1, 0.5, 2),
  prior: fc.option(fc.record({ fixedMs: fc.constantFrom(0, 1, 5), perItemMs: fc.constantFrom(0, 0.5) })),
  arrivals: fc.array(arrivalArb, { maxLength: 40, size: 'medium' }),
});

describe('createBatcher: random schedules', () => {
  it('settles every request once, in order, with the right result, and keeps batches within maxBatch', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const clock = new VirtualClock();
        const calls: number[][] = [];
        const batchError = new Map<number, Error>(); // call index -> error it failed with
        const batchOf = new Map<number, number>(); // item -> call index
        let inFlight = 0;
        let maxInFlight = 0;
        const run = (items: number[]): Promise<string[]> => {
          const idx = calls.length;
          calls.push([...items]);
          items.forEach((x) => batchOf.set(x, idx));
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          const poison = items.map((x) => sc.arrivals[x].poison).find((p) => p !== 'none') ?? 'none';
          const done = (): void => {
            inFlight--;
          };
          if (poison === 'throw') {
            const e = new Error(`batch ${idx} threw`);
            batchError.set(idx, e);
            done();
            throw e;
          }
          const ms = sc.fixedMs + sc.perItemMs * items.length;
          return new Promise<string[]>((resolve, reject) => {
            const finish = (): void => {
              done();
              if (poison === 'reject') {
                const e = new Error(`batch ${idx} rejected`);
                batchError.set(idx, e);
                reject(e);
              } else if (poison === 'short') {
                batchError.set(idx, new Error('short'));
                resolve(items.slice(1).map(f));
              } else resolve(items.map(f));
            };
            if (ms > 0) clock.schedule(finish, ms);
            else finish();
          });
        };
        const b = createBatcher({
          run,
          mode: sc.mode,
          maxBatch: sc.maxBatch,
          maxWaitMs: sc.maxWaitMs,
          maxQueue: sc.maxQueue,
          ...(sc.prior ? { prior: sc.prior } : {}),
          ...timing(clock),
        });
        const tracked: ReturnType<typeof track<string>>[] = [];
        for (let i = 0; i < sc.arrivals.length; i++) {
          const a = sc.arrivals[i];
          if (a.gap > 0) await clock.advance(a.gap);
          tracked.push(track(b.submit(i, a.deadline === null ? {} : { deadline: clock.t + a.deadline })));
        }
        await clock.drain();

        // Every promise settled, exactly once.
        expect(tracked.map((t) => t.settled)).toEqual(tracked.map(() => 1));
        // Dispatched in submission order, each item at most once, batches within the limit.
        const flat = calls.flat();
        for (let k = 1; k < flat.length; k++) expect(flat[k]).toBeGreaterThan(flat[k - 1]);
        const limit = sc.mode === 'off' ? 1 : sc.maxBatch;
        for (const c of calls) {
          expect(c.length).toBeGreaterThanOrEqual(1);
          expect(c.length).toBeLessThanOrEqual(limit);
        }
        expect(maxInFlight).toBeLessThanOrEqual(1);

        let refused = 0;
        let refusedDeadline = 0;
        tracked.forEach((t, i) => {
          const idx = batchOf.get(i);
          if (idx === undefined) {
            // Never reached run: refused early with a typed error and a usable retry hint.
            refused++;
            expect(t.ok).toBe(false);
            const e = t.error as DeadlineError | OverloadedError;
            expect(e instanceof DeadlineError || e instanceof OverloadedError).toBe(true);
            if (e instanceof DeadlineError) {
              refusedDeadline++;
              expect(sc.arrivals[i].deadline).not.toBeNull();
            }
            expect(e.retryAfterMs).toBeGreaterThanOrEqual(1);
            expect(Number.isFinite(e.retryAfterMs)).toBe(true);
          } else if (batchError.has(idx)) {
            expect(t.ok).toBe(false);
            const expected = batchError.get(idx)!;
            if (expected.message === 'short') expect((t.error as Error).message).toMatch(/returned \d+ results for \d+ items/);
            else expect(t.error).toBe(expected);
          } else {
            expect(t.ok).toBe(true);
            expect(t.value).toBe(f(i));
          }
        });

        const s = b.stats();
        expect(s.items).toBe(flat.length);
        expect(s.batches).toBe(calls.length);
        expect(s.failedBatches).toBe(batchError.size);
        expect(s.refusedDeadline + s.refusedOverload).toBe(refused);
        expect(s.refusedDeadline).toBe(refusedDeadline);
        expect(s.batchSizes.reduce((x, y) => x + y, 0)).toBe(calls.length);
        expect(s.batchSizes.reduce((x, n, size) => x + n * size, 0)).toBe(flat.length);
        expect(s).toMatchObject({ queued: 0, running: false });
        expect(clock.pendingBatcherTimers).toBe(0);
      }),
      { seed: 4242, numRuns: 200 },
    );
  });
});

describe('robustness of the contract edges', () => {
  it('a NaN deadline is refused with RangeError; a run that returns a plain array still works; maxWaitMs must be finite', async () => {
    const b = createBatcher<number, number>({ run: ((items: number[]) => items.map((x) => x * 2)) as unknown as (items: number[]) => Promise<number[]> });
    await expect(b.submit(1, { deadline: NaN })).rejects.toThrow(RangeError);
    expect(await b.submit(21)).toBe(42);
    expect(() => createBatcher({ run: async (xs: number[]) => xs, maxWaitMs: Infinity })).toThrow(RangeError);
  });
});

describe('adaptive waiting needs concurrent callers', () => {
  it('a lone closed-loop caller (next request right after each answer) is never made to wait', async () => {
    const h = harness((n) => 10 + 0.5 * n);
    const b = createBatcher({ run: h.run, maxWaitMs: 5, prior: { fixedMs: 10, perItemMs: 0.5 }, ...timing(h.clock) });
    for (let i = 0; i < 20; i++) {
      const p = b.submit(i);
      await h.clock.drain();
      expect(await p).toBe(f(i));
    }
    // Arrivals every ~10.5 ms... but never while a batch runs: pressure stays 0.
    expect(b.stats().pressure).toBe(0);
    expect(h.clock.batcherTimers).toEqual([]);
    expect(h.calls.every((c) => c.length === 1)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------
// Trusting the estimate. The estimate refuses nothing until `minSamples` batches are measured;
// a measurement far below it, or a probe that meets the deadline it predicted missed, resets
// that count; the count halves for every `halfLifeMs` without a measurement; and while it
// refuses, one request per `probeEveryMs` runs anyway.

/** One request at a time, each submitted `gap` ms after the previous settled; what happened to each. */
async function closedLoop(h: Harness, b: ReturnType<typeof createBatcher<Item, string>>, opts: { count: number; gap: number; budget: number }) {
  const out: { at: number; ok: boolean; error?: unknown; samplesBefore: number }[] = [];
  for (let i = 0; i < opts.count; i++) {
    await h.clock.advance(opts.gap);
    const at = h.clock.t;
    const samplesBefore = b.stats().samples;
    const t = track(b.submit(i, { deadline: at + opts.budget }));
    await h.clock.drain();
    out.push({ at, ok: t.ok!, error: t.error, samplesBefore });
  }
  return out;
}

describe('createBatcher: trusting the estimate', () => {
  it('admits exactly the first minSamples requests however slow the measurements (then refuses a true slowness)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 60, max: 10_000 }), async (minSamples, ms) => {
        const h = harness(() => ms);
        const b = createBatcher({ run: h.run, minSamples, ...timing(h.clock) });
        const results = await closedLoop(h, b, { count: minSamples + 3, gap: 0, budget: 50 });
        expect(results.map((r) => r.ok)).toEqual([...Array(minSamples).fill(true), false, false, false]);
        for (const r of results.slice(minSamples)) expect(r.error).toBeInstanceOf(DeadlineError);
        expect(b.stats()).toMatchObject({ batches: minSamples, refusedDeadline: 3, probes: 0 });
      }),
      { seed: 11, numRuns: 40 },
    );
  });

  it('recovers from a bad first measurement (a cold run of up to 10 s) without refusing anyone, and ends trusted near the true cost', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          firstMs: fc.integer({ min: 100, max: 10_000 }),
          a: fc.double({ min: 0.2, max: 2, noNaN: true }),
          b: fc.double({ min: 0, max: 0.05, noNaN: true }),
          jitter: fc.double({ min: 0, max: 0.2, noNaN: true }),
          budget: fc.integer({ min: 20, max: 100 }),
          maxBatch: fc.integer({ min: 1, max: 16 }),
          mode: fc.constantFrom<BatchMode>('adaptive', 'fixed', 'off'),
          arrivals: fc.array(fc.record({ gap: fc.double({ min: 1, max: 20, noNaN: true }), burst: fc.integer({ min: 1, max: 4 }) }), {
            minLength: 20,
            maxLength: 120,
          }),
        }),
        async (sc) => {
          let k = 0;
          const h = harness((n) => (k++ === 0 ? sc.firstMs : (sc.a + sc.b * n) * (1 + (sc.jitter * ((k * 7919) % 10)) / 10)));
          const b = createBatcher({ run: h.run, maxBatch: sc.maxBatch, mode: sc.mode, ...timing(h.clock) });
          const cold = b.submit(-1);
          await h.clock.drain();
          await cold;
          expect(b.estimate(1)).toBeGreaterThanOrEqual(sc.firstMs * 0.9);
          const tracked: ReturnType<typeof track<string>>[] = [];
          let i = 0;
          for (const { gap, burst } of sc.arrivals) {
            await h.clock.advance(gap);
            for (let j = 0; j < burst; j++) tracked.push(track(b.submit(i++, { deadline: h.clock.t + sc.budget })));
          }
          await h.clock.drain();
          const refused = tracked.filter((t) => !t.ok);
          expect(refused.map((t) => String(t.error))).toEqual([]);
          const s = b.stats();
          expect(s.refusedDeadline).toBe(0);
          if (s.batches > 5) {
            expect(s.samples).toBeGreaterThanOrEqual(5);
            expect(b.estimate(1)).toBeLessThan(2 * (sc.a + sc.b) * (1 + sc.jitter) + 1);
          }
        },
      ),
      { seed: 12, numRuns: 60 },
    );
  });

  it.each([
    { stale: 200, now: 1 }, // the new measurement is far below the estimate
    { stale: 60, now: 20 }, // it is not, but the probe meets the deadline the estimate said it would miss
  ])(
    'a trusted estimate gone stale ($stale ms, now $now ms) refuses for at most probeEveryMs: then one probe runs, is served in time, and everything after it is served',
    async ({ stale, now }) => {
      let ms = stale;
      const h = harness(() => ms);
      const b = createBatcher({ run: h.run, probeEveryMs: 1000, ...timing(h.clock) });
      await measureLone(h, b, 20);
      expect(b.stats().samples).toBeGreaterThanOrEqual(5);
      const lastMeasured = h.clock.t;
      ms = now;
      const results = await closedLoop(h, b, { count: 300, gap: 10, budget: 50 });
      const firstServed = results.findIndex((r) => r.ok);
      expect(firstServed).toBeGreaterThan(0);
      expect(results.slice(0, firstServed).every((r) => r.error instanceof DeadlineError)).toBe(true);
      expect(results[firstServed].at - lastMeasured).toBeGreaterThanOrEqual(1000);
      expect(results[firstServed].at - lastMeasured).toBeLessThan(1000 + 10 + 1e-9);
      expect(results.slice(firstServed).every((r) => r.ok)).toBe(true);
      expect(b.stats().probes).toBe(1);
      expect(b.stats().samples).toBeGreaterThanOrEqual(5);
      expect(b.estimate(1)).toBeLessThan(now * 1.1 + 1);
    },
  );

  it('with probes off, a stale estimate stops refusing after two half-lives without a measurement', async () => {
    let ms = 200;
    const h = harness(() => ms);
    const b = createBatcher({ run: h.run, probeEveryMs: Infinity, halfLifeMs: 1000, ...timing(h.clock) });
    await measureLone(h, b, 20);
    const lastMeasured = h.clock.t;
    ms = 1;
    const results = await closedLoop(h, b, { count: 300, gap: 10, budget: 50 });
    const firstServed = results.findIndex((r) => r.ok);
    expect(results[firstServed].at - lastMeasured).toBeGreaterThanOrEqual(2000);
    expect(results[firstServed].at - lastMeasured).toBeLessThan(2010 + 1e-9);
    // Still trusted after one half-life (10 → 5), not after two (2.5).
    expect(results.filter((r) => r.at - lastMeasured >= 1000 && r.at - lastMeasured < 2000).every((r) => !r.ok)).toBe(true);
    expect(results.slice(firstServed).every((r) => r.ok)).toBe(true);
    expect(b.stats().probes).toBe(0);
  });

  it('a right estimate stays trusted: probes are at most one per probeEveryMs, measured late, and refusals go on', async () => {
    const h = harness(() => 200);
    const b = createBatcher({ run: h.run, probeEveryMs: 1000, ...timing(h.clock) });
    await measureLone(h, b, 20);
    const results = await closedLoop(h, b, { count: 500, gap: 10, budget: 50 });
    const served = results.filter((r) => r.ok);
    const probes = b.stats().probes;
    expect(served).toHaveLength(probes);
    // 500 requests 10 ms apart (plus 200 ms per probe): about 5.x s, so 4 or 5 probes.
    expect(probes).toBeGreaterThanOrEqual(4);
    expect(probes).toBeLessThanOrEqual(6);
    for (let i = 1; i < served.length; i++) expect(served[i].at - served[i - 1].at).toBeGreaterThanOrEqual(1000);
    expect(results.filter((r) => !r.ok).every((r) => r.error instanceof DeadlineError)).toBe(true);
    expect(b.stats().samples).toBeGreaterThanOrEqual(5);
    expect(b.estimate(1)).toBeCloseTo(200, 6);
  });

  it('before minSamples it refuses only what is already past its deadline', async () => {
    // Today's contract for the queue ahead, on four measurements of 11 ms: B is admitted (the
    // estimate is not trusted yet), then refused at dispatch because its deadline has passed.
    const h = harness((n) => 10 + n);
    const b = createBatcher({ run: h.run, prior: { fixedMs: 10, perItemMs: 1 }, ...timing(h.clock) });
    await measureLone(h, b, 4);
    const t = h.clock.t;
    const pA = b.submit(1);
    await h.clock.settle();
    const late = track(b.submit(2, { deadline: t + 5 }));
    await h.clock.settle();
    expect(late.settled).toBe(0);
    await h.clock.drain();
    expect(late.error).toBeInstanceOf(DeadlineError);
    expect(h.calls.flat()).not.toContain(2);
    await pA;
    // A deadline already in the past is refused at submit.
    const past = track(b.submit(3, { deadline: h.clock.t - 1 }));
    await h.clock.settle();
    expect(past.error).toBeInstanceOf(DeadlineError);
  });

  it.each([{ minSamples: 0 }, { minSamples: Infinity }, { halfLifeMs: 0 }, { probeEveryMs: 0 }, { probeEveryMs: Number.NaN }])(
    'rejects %o with RangeError',
    (options) => {
      expect(() => createBatcher({ run: async (xs: number[]) => xs, ...options })).toThrow(RangeError);
    },
  );
});
