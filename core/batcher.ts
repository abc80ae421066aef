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
 * - An estimate refuses only once it is trusted: at least `minSamples` measured batches, their
 *   count (at most 2·minSamples) halving for every whole `halfLifeMs` without a measurement, so
 *   that a stale estimate stops refusing within two half-lives. Until then, only a request whose
 *   deadline has already passed is refused (a fact, not an estimate). While a trusted estimate
 *   refuses, one request per `probeEveryMs` (when nothing was measured in that time) is admitted
 *   and run anyway, so that an estimate that has gone stale is measured again.
 * - A batch whose `run` throws (or returns the wrong number of results) rejects exactly its
 *   own requests with that error; later batches are unaffected.
 *
 * Robustness, both ways. A measured batch time counts for at most 4x the current estimate once
 * the model has a few measurements, so one outlier (a GC pause, a descheduled isolate) cannot
 * make every request look late. A measurement under a quarter of the estimate (4·t + 1 < est)
 * is not noise, since noise only slows a run down: the model no longer describes the engine (a
 * cold first run, a quieter neighbour), so older measurements together keep the weight of a
 * tenth of one, and the estimate must earn its `minSamples` again before it refuses anything.
 * The same holds when a probe meets the deadline that the estimate said it would miss. From a
 * starting estimate E with a true cost c, each such measurement divides E - c by about 11.
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
  /** Prior cost model t(n) = fixedMs + perItemMs·n, until measurements replace it. Never refuses. */
  prior?: { fixedMs: number; perItemMs: number };
  /** Measured batches (time-decayed) before the estimate may refuse a request. Default 5. */
  minSamples?: number;
  /** The count of measurements behind the estimate halves for every this many ms without one. Default 10,000. */
  halfLifeMs?: number;
  /** While the estimate refuses, one request per this many ms is run anyway to re-measure it. Default 1,000. */
  probeEveryMs?: number;
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
  /** Requests admitted against the estimate to re-measure it. */
  probes: number;
  /** Measured batches behind the estimate, time-decayed; it refuses only from `minSamples`. */
  samples: number;
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
  /** Admitted against the estimate: refused at dispatch only if its deadline has passed. */
  probe: boolean;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

/** Per-measurement forgetting of the least-squares sums. */
const FORGET = 0.97;
/** Weight that all older measurements together keep when a new one shows the estimate far too high. */
const SURPRISE_KEEP = 0.1;

export function createBatcher<I, O>({
  run,
  maxBatch = 32,
  maxWaitMs = 2,
  maxQueue = 1024,
  mode = 'adaptive',
  prior = { fixedMs: 0.05, perItemMs: 0.005 },
  minSamples = 5,
  halfLifeMs = 10_000,
  probeEveryMs = 1000,
  now = () => performance.now(),
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (h) => clearTimeout(h),
}: BatcherOptions<I, O>): Batcher<I, O> {
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (!(maxWaitMs >= 0 && maxWaitMs < Infinity)) throw new RangeError(`maxWaitMs must be finite and >= 0, got ${maxWaitMs}`);
  if (!(Number.isInteger(maxQueue) && maxQueue >= 1)) throw new RangeError(`maxQueue must be a positive integer, got ${maxQueue}`);
  if (!(minSamples >= 1 && minSamples < Infinity)) throw new RangeError(`minSamples must be finite and >= 1, got ${minSamples}`);
  if (!(halfLifeMs > 0)) throw new RangeError(`halfLifeMs must be > 0, got ${halfLifeMs}`);
  if (!(probeEveryMs > 0)) throw new RangeError(`probeEveryMs must be > 0 (Infinity: never probe), got ${probeEveryMs}`);
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
  // Measured batches behind the estimate as of `lastMeasured`, at most 2·minSamples, so that
  // without measurements a trusted estimate stops refusing within two half-lives. It decays
  // with time only (unlike the sums, not per measurement: it counts evidence, it does not
  // weigh it).
  let samples = 0;
  let lastMeasured = -Infinity;
  let lastProbe = -Infinity;
  const stats = { batches: 0, items: 0, refusedDeadline: 0, refusedOverload: 0, failedBatches: 0, probes: 0, batchSizes: [] as number[] };

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

  /** Measured batches behind the estimate at `at`: the count halves for every whole half-life without a measurement. */
  function samplesAt(at: number): number {
    return at > lastMeasured ? samples * 2 ** -Math.floor((at - lastMeasured) / halfLifeMs) : samples;
  }

  function trusted(at: number): boolean {
    return samplesAt(at) >= minSamples;
  }

  function scaleSums(k: number): void {
    s0 *= k;
    s1 *= k;
    s2 *= k;
    t0 *= k;
    t1 *= k;
  }

  /** `refuted`: the batch carried a probe and met the deadline that the estimate said it would miss. */
  function record(n: number, ms: number, at: number, refuted: boolean): void {
    samples = samplesAt(at);
    lastMeasured = at;
    const predicted = estimate(n);
    if (refuted || 4 * ms + 1 < predicted) {
      // The model no longer describes the engine: see "Robustness" in the header.
      if (s0 > SURPRISE_KEEP) scaleSums(SURPRISE_KEEP / s0);
      samples = 0;
    } else if (samples >= 3) {
      // One slow batch must not teach the model that every batch is slow.
      ms = Math.min(ms, 4 * predicted + 1);
    }
    samples = Math.min(samples + 1, 2 * minSamples);
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
    let probe = false;
    if (deadline < at) {
      stats.refusedDeadline++;
      return Promise.reject(new DeadlineError('the deadline has already passed', retryAfter(at)));
    }
    const needed = finishEstimate(at, queue.length);
    if (deadline < needed && trusted(at)) {
      if (at - lastProbe >= probeEveryMs && at - lastMeasured >= probeEveryMs) {
        probe = true;
        lastProbe = at;
        stats.probes++;
      } else {
        stats.refusedDeadline++;
        return Promise.reject(new DeadlineError(`cannot finish within the latency budget (about ${Math.ceil(needed - at)} ms needed)`, retryAfter(at)));
      }
    }
    return new Promise<O>((resolve, reject) => {
      queue.push({ item, deadline, enqueued: at, probe, resolve, reject });
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
    // Refuse early what cannot be met even if it runs now: by the estimate once it is trusted
    // (probes excepted), and always what is already past its deadline.
    const eta = trusted(at) ? at + estimate(batch.length) : at;
    const isLate = (e: Entry<I, O>) => e.deadline < (e.probe ? at : eta);
    const late = batch.filter(isLate);
    if (late.length) {
      batch = batch.filter((e) => !isLate(e));
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
      const end = now();
      // A failed batch says nothing about cost.
      if (ok)
        record(
          batch.length,
          end - at,
          end,
          batch.some((e) => e.probe && end <= e.deadline),
        );
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
      probes: stats.probes,
      samples: samplesAt(now()),
      cost: cost(),
      arrivalIntervalMs: interval,
      pressure,
      batchSizes: Array.from(stats.batchSizes, (v) => v ?? 0),
    }),
  };
}
