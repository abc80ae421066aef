/**
 * Circuit breaker per target (closed → open → half-open → closed), as Hystrix and Envoy's
 * outlier detection use it: after `failureThreshold` failures within `windowMs` (with no
 * success in between resetting the count) the breaker opens and refuses calls for `openMs`;
 * then it lets `halfOpenMax` trial calls through; one success closes it, one failure opens it
 * again for another `openMs`.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failureThreshold?: number;
  windowMs?: number;
  openMs?: number;
  halfOpenMax?: number;
  now?: () => number;
}

export interface BreakerStats {
  state: BreakerState;
  failures: number;
  opened: number;
  rejected: number;
  /** When an open breaker lets a trial through, ms since the epoch of `now` (open only). */
  retryAt?: number;
}

export interface CircuitBreaker {
  /** True when a call may go ahead (in half-open, this takes one of the trial slots). */
  allow(): boolean;
  success(): void;
  failure(): void;
  /** The call allowed by allow() ended without a verdict on the target (e.g. the caller's own budget ran out): gives back its half-open trial slot. */
  release(): void;
  readonly state: BreakerState;
  stats(): BreakerStats;
}

export function createCircuitBreaker({
  failureThreshold = 5,
  windowMs = 10_000,
  openMs = 5_000,
  halfOpenMax = 1,
  now = () => Date.now(),
}: BreakerOptions = {}): CircuitBreaker {
  if (!(Number.isInteger(failureThreshold) && failureThreshold >= 1))
    throw new RangeError(`failureThreshold must be a positive integer, got ${failureThreshold}`);
  if (!(windowMs > 0 && openMs > 0)) throw new RangeError('windowMs and openMs must be > 0');
  if (!(Number.isInteger(halfOpenMax) && halfOpenMax >= 1)) throw new RangeError(`halfOpenMax must be a positive integer, got ${halfOpenMax}`);
  let state: BreakerState = 'closed';
  let failures: number[] = [];
  let openedAt = 0;
  let trials = 0;
  const s = { opened: 0, rejected: 0 };

  function open(): void {
    state = 'open';
    openedAt = now();
    trials = 0;
    failures = [];
    s.opened++;
  }

  function current(): BreakerState {
    if (state === 'open' && now() - openedAt >= openMs) {
      state = 'half-open';
      trials = 0;
    }
    return state;
  }

  return {
    allow() {
      const st = current();
      if (st === 'closed') return true;
      if (st === 'half-open' && trials < halfOpenMax) {
        trials++;
        return true;
      }
      s.rejected++;
      return false;
    },
    success() {
      if (current() === 'half-open' || state === 'closed') {
        state = 'closed';
        failures = [];
        trials = 0;
      }
    },
    release() {
      if (state === 'half-open' && trials > 0) trials--;
    },
    failure() {
      const st = current();
      if (st === 'half-open') return open();
      if (st === 'open') return;
      const t = now();
      failures = failures.filter((f) => t - f < windowMs);
      failures.push(t);
      if (failures.length >= failureThreshold) open();
    },
    get state() {
      return current();
    },
    stats: () => ({
      state: current(),
      failures: failures.filter((f) => now() - f < windowMs).length,
      opened: s.opened,
      rejected: s.rejected,
      ...(state === 'open' ? { retryAt: openedAt + openMs } : {}),
    }),
  };
}
