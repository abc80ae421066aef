/**
 * Micro-batcher: concurrent requests in one isolate (or one browser worker) are gathered into
 * one `run(items)` call and the results split back, in order.
 *
 * - A request that arrives while the engine is idle and nothing suggests more are coming runs
 *   at once (in a microtask, so that requests submitted in the same tick share the batch).
 * - While a batch runs, arrivals queue; when it finishes, the next batch (up to `maxBatch`,
 *   first in first out) starts at once.
 * - Adaptive wait (mode 'adaptive', the default): the batch cost is fitted online as
 *   t(n) = a + b·n (least squares with exponential forgetting, as BentoML's adaptive batching
 *   does), and the arrival interval is tracked as an EWMA. With n requests queued and an idle
 *   engine, waiting for one more costs about interval·n of added latency and saves about `a`
 *   (one fixed cost), so the batcher waits only while interval·n < a, never longer than
 *   `maxWaitMs` in all, and never past what the tightest deadline in the queue allows. It waits
 *   at all only when callers are concurrent: requests have been arriving while batches ran
 *   (an EWMA of at least 0.5 per batch). A lone closed-loop caller, who always arrives just
 *   after its previous answer, is never made to wait.
 *   Mode 'fixed' waits `maxWaitMs` from the first queued request unless the batch fills
 *   (Triton's fixed window); mode 'off' runs every request alone.
 * - Deadlines: a request whose deadline cannot be met (queue ahead of it plus the estimated
 *   batch time) is refused early with DeadlineError, at submit or just before its batch starts,
 *   instead of timing out. A full queue refuses with OverloadedError. Both carry a
 *   `retryAfterMs` estimate of when the queue will have drained.
 * - A batch whose `run` throws (or returns the wrong number of results) rejects exactly its
 *   own requests with that error; later batches are unaffected.
 *
 * Robustness: a measured batch time counts for at most 4x the current estimate once the model
 * has a few measurements, so one outlier cannot make every request look late.
 *
 * Timing caveat: in production Workers, clocks do not advance during pure CPU work, so measured
 * batch times there read as ~0; the cost model then stays at its prior and the wait window
 * at 0, which degrades to "run when idle, batch what queued meanwhile".
 */

export type BatchMode = 'adaptive' | 'fixed' | 'off';

/** The request cannot finish before its deadline: refused early, not timed out. */
export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/** The queue is full. */
export class OverloadedError extends Error {
  override readonly name = 'OverloadedError';
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

export interface BatcherOptions<I, O> {
  /** Runs one batch; must resolve to one result per item, in the same order. */
  run: (items: I[]) => Promise<O[]>;
  maxBatch?: number;
  /** Upper bound on the time a request waits for company. */
  maxWaitMs?: number;
  /** Requests waiting (not counting the batch running). */
  maxQueue?: number;
  mode?: BatchMode;
  /** Prior cost model t(n) = fixedMs + perItemMs·n, until measurements replace it. */
  prior?: { fixedMs: number; perItemMs: number };
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export interface SubmitOptions {
  /** Absolute time (same clock as `now`) by which the result is needed. */
  deadline?: number;
}

export interface BatcherStats {
  batches: number;
  items: number;
  queued: number;
  running: boolean;
  refusedDeadline: number;
  refusedOverload: number;
  failedBatches: number;
  /** Fitted cost model, ms. */
  cost: { fixedMs: number; perItemMs: number };
  /** EWMA of the interval between arrivals, ms (undefined before the second arrival). */
  arrivalIntervalMs: number | undefined;
  /** EWMA of requests arriving while a batch runs (evidence of concurrent callers). */
  pressure: number;
  /** Histogram of batch sizes: index n counts batches of n. */
  batchSizes: number[];
}

export interface Batcher<I, O> {
  submit(item: I, options?: SubmitOptions): Promise<O>;
  /** Estimated time for a batch of n, ms. */
  estimate(n: number): number;
  stats(): BatcherStats;
}

interface Entry<I, O> {
  item: I;
  deadline: number;
  enqueued: number;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

const FORGET = 0.97;

export function createBatcher<I, O>({
  run,
  maxBatch = 32,
  maxWaitMs = 2,
  maxQueue = 1024,
  mode = 'adaptive',
  prior = { fixedMs: 0.05, perItemMs: 0.005 },
  now = () => performance.now(),
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (h) => clearTimeout(h),
}: BatcherOptions<I, O>): Batcher<I, O> {
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (!(maxWaitMs >= 0 && maxWaitMs < Infinity)) throw new RangeError(`maxWaitMs must be finite and >= 0, got ${maxWaitMs}`);
  if (!(Number.isInteger(maxQueue) && maxQueue >= 1)) throw new RangeError(`maxQueue must be a positive integer, got ${maxQueue}`);
  const batchLimit = mode === 'off' ? 1 : maxBatch;

  const queue: Entry<I, O>[] = [];
  let running = false;
  let runningSince = 0;
  let runningSize = 0;
  let timer: unknown;
  let timerFor = 0; // when the pending timer fires
  let microtaskPending = false;
  let lastArrival: number | undefined;
  let interval: number | undefined;
  // Requests that arrived while a batch ran, as an EWMA over batches: evidence of concurrent
  // callers. A single closed-loop caller arrives just after each answer, at short intervals,
  // but never during a run, and waiting for company would only delay it.
  let arrivedDuringRun = 0;
  let pressure = 0;
  // Decayed sums for the least-squares fit of t = a + b·n.
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let t0 = 0;
  let t1 = 0;
  const stats = { batches: 0, items: 0, refusedDeadline: 0, refusedOverload: 0, failedBatches: 0, batchSizes: [] as number[] };

  function cost(): { fixedMs: number; perItemMs: number } {
    if (s0 < 1e-9) return prior;
    const mean = t0 / s0;
    const det = s0 * s2 - s1 * s1;
    // Too little spread in n to separate a from b: keep the prior's slope.
    let b = det > 1e-6 * s0 * s0 ? (s0 * t1 - s1 * t0) / det : prior.perItemMs;
    b = Math.max(0, b);
    const a = Math.max(0, mean - (b * s1) / s0);
    return { fixedMs: a, perItemMs: b };
  }

  function estimate(n: number): number {
    const c = cost();
    return c.fixedMs + c.perItemMs * n;
  }

  function record(n: number, ms: number): void {
    // One slow batch (a cold JIT, a GC pause, the isolate descheduled) must not teach the model
    // that every batch is slow, or every request would be refused for its deadline: once the
    // model has a few measurements, a measurement counts for at most 4x the current estimate.
    if (s0 >= 3) ms = Math.min(ms, 4 * estimate(n) + 1);
    s0 = s0 * FORGET + 1;
    s1 = s1 * FORGET + n;
    s2 = s2 * FORGET + n * n;
    t0 = t0 * FORGET + ms;
    t1 = t1 * FORGET + n * ms;
  }

  /** When the engine will be free, and when a request at queue position `pos` would finish. */
  function finishEstimate(at: number, pos: number): number {
    let t = at;
    if (running) t = Math.max(at, runningSince + estimate(runningSize));
    const full = Math.floor(pos / batchLimit);
    t += full * estimate(batchLimit) + estimate((pos % batchLimit) + 1);
    return t;
  }

  function retryAfter(at: number): number {
    return Math.max(1, Math.ceil(finishEstimate(at, queue.length) - at));
  }

  function submit(item: I, { deadline = Infinity }: SubmitOptions = {}): Promise<O> {
    if (typeof deadline !== 'number' || Number.isNaN(deadline)) return Promise.reject(new RangeError(`deadline must be a number, got ${deadline}`));
    const at = now();
    if (lastArrival !== undefined) {
      const gap = Math.min(at - lastArrival, 1000);
      interval = interval === undefined ? gap : 0.8 * interval + 0.2 * gap;
    }
    lastArrival = at;
    if (running) arrivedDuringRun++;
    if (queue.length >= maxQueue) {
      stats.refusedOverload++;
      return Promise.reject(new OverloadedError(`queue full (${maxQueue} waiting)`, retryAfter(at)));
    }
    if (deadline < finishEstimate(at, queue.length)) {
      stats.refusedDeadline++;
      return Promise.reject(new DeadlineError(`cannot finish within the latency budget (about ${Math.ceil(finishEstimate(at, queue.length) - at)} ms needed)`, retryAfter(at)));
    }
    return new Promise<O>((resolve, reject) => {
      queue.push({ item, deadline, enqueued: at, resolve, reject });
      schedule();
    });
  }

  function schedule(): void {
    if (running || queue.length === 0) return;
    const at = now();
    const waitStarted = queue[0].enqueued;
    let wait = 0;
    if (queue.length < batchLimit) {
      if (mode === 'fixed') {
        wait = waitStarted + maxWaitMs - at;
      } else if (mode === 'adaptive' && pressure >= 0.5 && interval !== undefined && interval * queue.length < cost().fixedMs) {
        wait = Math.min(interval, waitStarted + maxWaitMs - at);
      }
      // Never past what the tightest deadline allows.
      let slack = Infinity;
      for (const e of queue) slack = Math.min(slack, e.deadline - at - estimate(Math.min(queue.length + 1, batchLimit)));
      wait = Math.min(wait, slack);
    }
    if (wait <= 0) {
      if (timer !== undefined) {
        clearTimer(timer);
        timer = undefined;
      }
      if (!microtaskPending) {
        microtaskPending = true;
        queueMicrotask(() => {
          microtaskPending = false;
          dispatch();
        });
      }
      return;
    }
    // Each arrival re-decides: the wait may be extended (up to the cap) or shortened.
    const fireAt = at + wait;
    if (timer !== undefined) {
      if (fireAt === timerFor) return;
      clearTimer(timer);
    }
    timerFor = fireAt;
    timer = setTimer(() => {
      timer = undefined;
      dispatch();
    }, wait);
  }

  function dispatch(): void {
    if (running || queue.length === 0) return;
    const at = now();
    let batch = queue.splice(0, batchLimit);
    // Refuse early what cannot be met even if it runs now.
    const eta = at + estimate(batch.length);
    const late = batch.filter((e) => e.deadline < eta);
    if (late.length) {
      batch = batch.filter((e) => e.deadline >= eta);
      for (const e of late) {
        stats.refusedDeadline++;
        e.reject(new DeadlineError('cannot finish within the latency budget', retryAfter(at)));
      }
      if (batch.length === 0) {
        schedule();
        return;
      }
    }
    running = true;
    runningSince = at;
    runningSize = batch.length;
    stats.batches++;
    stats.items += batch.length;
    stats.batchSizes[batch.length] = (stats.batchSizes[batch.length] ?? 0) + 1;
    let promise: Promise<O[]>;
    try {
      // Promise.resolve: a run that returns a plain array (against its type) still works.
      promise = Promise.resolve(run(batch.map((e) => e.item)));
    } catch (err) {
      promise = Promise.reject(err);
    }
    // Bookkeeping happens before the callers are answered, so that a caller who submits again
    // as soon as it has its answer finds the engine idle (not "arriving during a run").
    const finish = (ok: boolean) => {
      if (ok) record(batch.length, now() - at); // a failed batch says nothing about cost
      pressure = 0.8 * pressure + 0.2 * Math.min(arrivedDuringRun, 4);
      arrivedDuringRun = 0;
      running = false;
    };
    const next = () => {
      // What queued meanwhile has waited already: it goes at once.
      if (queue.length) {
        if (timer !== undefined) {
          clearTimer(timer);
          timer = undefined;
        }
        dispatch();
      }
    };
    promise
      .then((results) => {
        if (!Array.isArray(results) || results.length !== batch.length) {
          throw new Error(`batch run returned ${Array.isArray(results) ? results.length : typeof results} results for ${batch.length} items`);
        }
        return results;
      })
      .then(
        (results) => {
          finish(true);
          batch.forEach((e, i) => e.resolve(results[i]));
          next();
        },
        (err: unknown) => {
          finish(false);
          stats.failedBatches++;
          for (const e of batch) e.reject(err);
          next();
        },
      );
  }

  return {
    submit,
    estimate,
    stats: () => ({
      batches: stats.batches,
      items: stats.items,
      queued: queue.length,
      running,
      refusedDeadline: stats.refusedDeadline,
      refusedOverload: stats.refusedOverload,
      failedBatches: stats.failedBatches,
      cost: cost(),
      arrivalIntervalMs: interval,
      pressure,
      batchSizes: Array.from(stats.batchSizes, (v) => v ?? 0),
    }),
  };
}
