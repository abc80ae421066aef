import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCircuitBreaker, type BreakerOptions, type BreakerState, type BreakerStats } from './breaker.ts';

/** A virtual clock for the breaker's injectable `now`. */
function clock(start = 1_000) {
  const c = { t: start, now: () => c.t, advance: (ms: number) => void (c.t += ms) };
  return c;
}

function breaker(opts: Omit<BreakerOptions, 'now'> = {}, start = 1_000) {
  const c = clock(start);
  return { c, b: createCircuitBreaker({ ...opts, now: c.now }) };
}

function fail(b: { failure(): void }, n: number): void {
  for (let i = 0; i < n; i++) b.failure();
}

// ---------------------------------------------------------------------------------------

describe('createCircuitBreaker: closed', () => {
  it('starts closed and allows calls', () => {
    const { b } = breaker();
    expect(b.state).toBe('closed');
    for (let i = 0; i < 100; i++) expect(b.allow()).toBe(true);
    expect(b.stats()).toEqual<BreakerStats>({ state: 'closed', failures: 0, opened: 0, rejected: 0 });
  });

  it('opens after failureThreshold failures within windowMs, not before', () => {
    const { b, c } = breaker({ failureThreshold: 3, windowMs: 100, openMs: 50 });
    b.failure();
    c.advance(40);
    b.failure();
    expect(b.state).toBe('closed');
    expect(b.stats().failures).toBe(2);
    expect(b.allow()).toBe(true);
    c.advance(59); // the first failure is 99 ms old: still within the window
    b.failure();
    expect(b.state).toBe('open');
    expect(b.stats()).toMatchObject({ state: 'open', opened: 1, rejected: 0 });
  });

  it('uses the documented defaults (5 failures, 10 s window, 5 s open)', () => {
    const { b, c } = breaker();
    fail(b, 4);
    c.advance(9_999);
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
    c.advance(4_999);
    expect(b.allow()).toBe(false);
    c.advance(1);
    expect(b.allow()).toBe(true);
    expect(b.state).toBe('half-open');
  });

  it('does not count failures older than windowMs', () => {
    const { b, c } = breaker({ failureThreshold: 3, windowMs: 100 });
    fail(b, 2);
    c.advance(101);
    b.failure(); // the two earlier ones have left the window
    expect(b.state).toBe('closed');
    c.advance(50);
    b.failure();
    expect(b.state).toBe('closed'); // 2 within the window
    c.advance(49);
    b.failure(); // 3 within 99 ms
    expect(b.state).toBe('open');
  });

  it('slides the window failure by failure (a steady trickle slower than the threshold never opens)', () => {
    // 3 failures per 100 ms opens; one failure every 50 ms keeps at most 2 in any 100 ms window.
    const { b, c } = breaker({ failureThreshold: 3, windowMs: 100 });
    for (let i = 0; i < 200; i++) {
      b.failure();
      expect(b.state).toBe('closed');
      c.advance(50);
    }
    expect(b.stats().opened).toBe(0);
  });

  it('treats a failure exactly windowMs old as outside the window (pinned boundary)', () => {
    const { b, c } = breaker({ failureThreshold: 2, windowMs: 100 });
    b.failure();
    c.advance(100);
    b.failure();
    expect(b.state).toBe('closed');
    c.advance(99);
    b.failure();
    expect(b.state).toBe('open');
  });

  it('a success in closed resets the failure count', () => {
    const { b } = breaker({ failureThreshold: 3, windowMs: 1_000 });
    fail(b, 2);
    b.success();
    expect(b.stats().failures).toBe(0);
    fail(b, 2);
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
  });

  // BUG (minor, stats only): breaker.ts prunes `failures` against the window only inside
  // failure(), and stats() reports `failures.length`, so failures that have left the window
  // are still reported until the next failure. Behaviour (allow/state) is right; the number a
  // dashboard shows is not. Expected 0 below, got 2.
  it('stats().failures counts only failures still within windowMs', () => {
    const { b, c } = breaker({ failureThreshold: 3, windowMs: 100 });
    fail(b, 2);
    c.advance(500);
    expect(b.stats().failures).toBe(0);
  });

  it('failureThreshold 1 opens on the first failure', () => {
    const { b } = breaker({ failureThreshold: 1 });
    b.failure();
    expect(b.state).toBe('open');
    expect(b.allow()).toBe(false);
  });
});

describe('createCircuitBreaker: open', () => {
  it('refuses calls until openMs has passed, counting each refusal', () => {
    const { b, c } = breaker({ failureThreshold: 2, openMs: 200 });
    fail(b, 2);
    for (let i = 0; i < 5; i++) {
      expect(b.allow()).toBe(false);
      c.advance(39); // 5 x 39 = 195 < 200
    }
    expect(b.state).toBe('open');
    expect(b.stats().rejected).toBe(5);
    c.advance(4); // 199 ms
    expect(b.allow()).toBe(false);
    expect(b.stats().rejected).toBe(6);
    c.advance(1); // 200 ms: exactly openMs
    expect(b.state).toBe('half-open');
    expect(b.allow()).toBe(true);
    expect(b.stats().rejected).toBe(6);
  });

  it('reports retryAt while open, and only while open', () => {
    const { b, c } = breaker({ failureThreshold: 1, openMs: 250 }, 10_000);
    expect(b.stats().retryAt).toBeUndefined();
    c.advance(5);
    b.failure();
    const s = b.stats();
    expect(s.state).toBe('open');
    expect(s.retryAt).toBe(10_255);
    c.advance(100);
    expect(b.stats().retryAt).toBe(10_255); // fixed while open, not sliding
    c.t = 10_254;
    expect(b.allow()).toBe(false);
    c.t = 10_255; // retryAt is the first instant a trial goes through
    expect(b.stats().retryAt).toBeUndefined();
    expect(b.stats().state).toBe('half-open');
    expect(b.allow()).toBe(true);
  });

  it('ignores failures and successes reported while open (late results of earlier calls)', () => {
    const { b, c } = breaker({ failureThreshold: 1, openMs: 100 });
    b.failure();
    c.advance(50);
    b.failure();
    b.success();
    expect(b.state).toBe('open');
    expect(b.stats()).toMatchObject({ opened: 1, retryAt: 1_100 });
    c.advance(50);
    expect(b.state).toBe('half-open');
  });
});

describe('createCircuitBreaker: half-open', () => {
  for (const halfOpenMax of [1, 2, 5]) {
    it(`lets exactly halfOpenMax = ${halfOpenMax} trial calls through`, () => {
      const { b, c } = breaker({ failureThreshold: 1, openMs: 100, halfOpenMax });
      b.failure();
      c.advance(100);
      const got = Array.from({ length: halfOpenMax + 3 }, () => b.allow());
      expect(got).toEqual([...Array<boolean>(halfOpenMax).fill(true), false, false, false]);
      expect(b.state).toBe('half-open');
      expect(b.stats().rejected).toBe(3);
      c.advance(10_000); // time alone does not hand out more trials
      expect(b.allow()).toBe(false);
    });
  }

  it('a trial success closes it', () => {
    const { b, c } = breaker({ failureThreshold: 2, openMs: 100, halfOpenMax: 2 });
    fail(b, 2);
    c.advance(100);
    expect(b.allow()).toBe(true);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.stats()).toEqual<BreakerStats>({ state: 'closed', failures: 0, opened: 1, rejected: 0 });
    for (let i = 0; i < 10; i++) expect(b.allow()).toBe(true);
    // Closed again with a fresh count: one failure does not reopen it.
    b.failure();
    expect(b.state).toBe('closed');
    b.failure();
    expect(b.state).toBe('open');
    expect(b.stats().opened).toBe(2);
  });

  it('a trial failure reopens it for another openMs', () => {
    const { b, c } = breaker({ failureThreshold: 3, openMs: 100, halfOpenMax: 2 });
    fail(b, 3);
    expect(b.stats().opened).toBe(1);
    c.advance(130);
    expect(b.allow()).toBe(true);
    c.advance(7);
    b.failure(); // one failure is enough in half-open, whatever failureThreshold says
    expect(b.state).toBe('open');
    expect(b.stats()).toMatchObject({ state: 'open', opened: 2, retryAt: 1_000 + 137 + 100 });
    c.advance(99);
    expect(b.allow()).toBe(false);
    c.advance(1);
    expect(b.allow()).toBe(true); // a fresh set of trials
    expect(b.allow()).toBe(true);
    expect(b.allow()).toBe(false);
  });

  it('after a reopen, trials are counted afresh (an earlier half-open does not use them up)', () => {
    const { b, c } = breaker({ failureThreshold: 1, openMs: 10, halfOpenMax: 1 });
    for (let round = 1; round <= 5; round++) {
      b.failure();
      expect(b.stats().opened).toBe(round);
      c.advance(10);
      expect(b.allow()).toBe(true);
      expect(b.allow()).toBe(false);
    }
    b.success();
    expect(b.state).toBe('closed');
  });
});

describe('createCircuitBreaker: options', () => {
  const bad: [string, BreakerOptions][] = [
    ['failureThreshold 0', { failureThreshold: 0 }],
    ['failureThreshold -1', { failureThreshold: -1 }],
    ['failureThreshold 1.5', { failureThreshold: 1.5 }],
    ['failureThreshold NaN', { failureThreshold: NaN }],
    ['failureThreshold Infinity', { failureThreshold: Infinity }],
    ['windowMs 0', { windowMs: 0 }],
    ['windowMs -5', { windowMs: -5 }],
    ['windowMs NaN', { windowMs: NaN }],
    ['openMs 0', { openMs: 0 }],
    ['openMs -1', { openMs: -1 }],
    ['openMs NaN', { openMs: NaN }],
    ['halfOpenMax 0', { halfOpenMax: 0 }],
    ['halfOpenMax 2.5', { halfOpenMax: 2.5 }],
    ['halfOpenMax NaN', { halfOpenMax: NaN }],
  ];
  for (const [name, opts] of bad) {
    it(`refuses ${name} with a RangeError`, () => {
      expect(() => createCircuitBreaker(opts)).toThrow(RangeError);
    });
  }

  it('accepts the smallest legal values and fractional times', () => {
    expect(() => createCircuitBreaker({ failureThreshold: 1, windowMs: 0.5, openMs: 0.5, halfOpenMax: 1 })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------
// Model-based: random operation sequences against a reference state machine written from
// the contract in breaker.ts's header. Boundaries follow the ones pinned above: a failure
// `windowMs` old has left the window; the breaker turns half-open once `openMs` has passed.

/** `advance` by a number of ms, or by windowMs / openMs plus a small offset to hit the boundaries. */
type Op = { op: 'allow' } | { op: 'success' } | { op: 'failure' } | { op: 'advance'; ms: number | { of: 'windowMs' | 'openMs'; plus: -1 | 0 | 1 } };

interface Config {
  failureThreshold: number;
  windowMs: number;
  openMs: number;
  halfOpenMax: number;
}

class ReferenceBreaker {
  mode: BreakerState = 'closed';
  /** Times of the failures since the last reset (pruned lazily against the window). */
  recent: number[] = [];
  openUntil = 0;
  trialsLeft = 0;
  opened = 0;
  rejected = 0;

  constructor(readonly cfg: Config) {}

  #tick(t: number): void {
    if (this.mode === 'open' && t >= this.openUntil) {
      this.mode = 'half-open';
      this.trialsLeft = this.cfg.halfOpenMax;
    }
  }

  #trip(t: number): void {
    this.mode = 'open';
    this.openUntil = t + this.cfg.openMs;
    this.recent = [];
    this.opened++;
  }

  state(t: number): BreakerState {
    this.#tick(t);
    return this.mode;
  }

  allow(t: number): boolean {
    this.#tick(t);
    if (this.mode === 'closed') return true;
    if (this.mode === 'half-open' && this.trialsLeft > 0) {
      this.trialsLeft--;
      return true;
    }
    this.rejected++;
    return false;
  }

  success(t: number): void {
    this.#tick(t);
    if (this.mode !== 'open') {
      this.mode = 'closed';
      this.recent = [];
    }
  }

  failure(t: number): void {
    this.#tick(t);
    if (this.mode === 'open') return;
    if (this.mode === 'half-open') {
      this.#trip(t);
      return;
    }
    this.recent = this.recent.filter((f) => f > t - this.cfg.windowMs);
    this.recent.push(t);
    if (this.recent.length >= this.cfg.failureThreshold) this.#trip(t);
  }

  retryAt(t: number): number | undefined {
    return this.state(t) === 'open' ? this.openUntil : undefined;
  }
}

const configArb: fc.Arbitrary<Config> = fc.record({
  failureThreshold: fc.integer({ min: 1, max: 4 }),
  windowMs: fc.integer({ min: 1, max: 40 }),
  openMs: fc.integer({ min: 1, max: 40 }),
  halfOpenMax: fc.integer({ min: 1, max: 3 }),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Op>({ op: 'allow' }) },
  { weight: 2, arbitrary: fc.constant<Op>({ op: 'success' }) },
  { weight: 4, arbitrary: fc.constant<Op>({ op: 'failure' }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 50 }).map<Op>((ms) => ({ op: 'advance', ms })) },
  { weight: 2, arbitrary: fc.record({ of: fc.constantFrom('windowMs', 'openMs'), plus: fc.constantFrom(-1, 0, 1) }).map<Op>((ms) => ({ op: 'advance', ms })) },
);

describe('createCircuitBreaker: model', () => {
  it('agrees with a reference state machine on every step (property)', () => {
    fc.assert(
      fc.property(configArb, fc.array(opArb, { maxLength: 60, size: 'max' }), (cfg, ops) => {
        const c = clock(0);
        const b = createCircuitBreaker({ ...cfg, now: c.now });
        const ref = new ReferenceBreaker(cfg);
        ops.forEach((o, i) => {
          const at = `step ${i} (${o.op}) at t=${c.t}`;
          switch (o.op) {
            case 'allow':
              expect(b.allow(), at).toBe(ref.allow(c.t));
              break;
            case 'success':
              b.success();
              ref.success(c.t);
              break;
            case 'failure':
              b.failure();
              ref.failure(c.t);
              break;
            case 'advance':
              c.advance(typeof o.ms === 'number' ? o.ms : Math.max(0, cfg[o.ms.of] + o.ms.plus));
              break;
          }
          const s = b.stats();
          expect(b.state, at).toBe(ref.state(c.t));
          expect({ state: s.state, opened: s.opened, rejected: s.rejected, retryAt: s.retryAt }, at).toEqual({
            state: ref.state(c.t),
            opened: ref.opened,
            rejected: ref.rejected,
            retryAt: ref.retryAt(c.t),
          });
          // In closed, `failures` is at least what still counts toward the threshold.
          if (s.state === 'closed') expect(s.failures).toBeGreaterThanOrEqual(ref.recent.filter((f) => f > c.t - cfg.windowMs).length);
          else expect(s.failures).toBe(0);
        });
      }),
      { seed: 77, numRuns: 300 },
    );
  });
});
