/** Early shedding: refusing a request at once when the wait ahead of it already exceeds its budget. */

/**
 * Early shedding for one isolate. An isolate runs one request's JavaScript at a time, so a request
 * arriving behind `inflight` others waits about inflight × gap, where gap is the EWMA of the time
 * between consecutive completions while other requests stayed in flight (1 / throughput under
 * load, whatever the requests wait on: Little's law). A lone request's latency is no sample: with
 * batching, concurrent requests complete far faster than one after another. When that wait alone exceeds the request's budget it is refused at once with
 * 503 and Retry-After, before its body is read, instead of queueing past its budget.
 *
 * It refuses nothing before `minSamples` gaps are measured nor below `minInflight` requests in
 * flight, so a lone caller (or a few) is never refused by it; refusals drain the isolate, and the
 * estimate is corrected by the completions that follow. In workerd the clock moves only across
 * I/O, so pure CPU work reads as gap 0 and sheds nothing (the batcher's deadline checks remain).
 */
export function createAdmission({
  minInflight = 8,
  minSamples = 16,
  alpha = 0.2,
  now = () => performance.now(),
}: {
  minInflight?: number;
  minSamples?: number;
  alpha?: number;
  now?: () => number;
} = {}) {
  let inflight = 0;
  let last: number | undefined;
  let gap = 0;
  let samples = 0;
  let shed = 0;
  return {
    /** The ms to suggest in Retry-After when a request with this budget must be refused now, else undefined. */
    refuse(budgetMs: number): number | undefined {
      if (inflight < minInflight || samples < minSamples) return undefined;
      const wait = inflight * gap;
      if (wait <= budgetMs) return undefined;
      shed++;
      return wait;
    },
    start(): void {
      inflight++;
    },
    done(): void {
      const t = now();
      if (last !== undefined) {
        gap = samples === 0 ? t - last : gap + alpha * (t - last - gap);
        samples++;
      }
      // The next completion is a sample only if the isolate stays busy until then.
      last = --inflight === 0 ? undefined : t;
    },
    stats: () => ({ inflight, gapMs: gap, samples, shed }),
  };
}

export type Admission = ReturnType<typeof createAdmission>;
