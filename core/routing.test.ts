import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignVersion, callerPoint, hash32, shadowVersions, validateRoutingTable, type RoutingTable } from './routing.ts';
import { ValidationError } from './validate.ts';
import { rng } from '../test/support/data.ts';

// mulberry32, so every key set below is the same on every run.
const prng = rng;

const N = 20_000;

/** Caller keys of several shapes: random tokens, sequential ids, uuid-like, and emails. */
function keySets(): Record<string, string[]> {
  const r = prng(20240611);
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
  return {
    random: Array.from({ length: N }, () => hex(16)),
    sequential: Array.from({ length: N }, (_, i) => `user-${i}`),
    uuid: Array.from({ length: N }, () => `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`),
    email: Array.from({ length: N }, (_, i) => `person${i}@example.com`),
  };
}
const KEYS = keySets();

/** |observed share - p| within 4 standard errors of a binomial proportion. */
function expectShare(hits: number, n: number, p: number, what: string): void {
  const se = Math.sqrt((p * (1 - p)) / n);
  const observed = hits / n;
  expect(Math.abs(observed - p), `${what}: observed ${observed}, expected ${p} ± ${(4 * se).toFixed(5)}`).toBeLessThanOrEqual(4 * se);
}

const table = (share: number, shadows?: RoutingTable['shadows']): RoutingTable => ({
  stable: 'v1',
  canary: { version: 'v2', share },
  ...(shadows ? { shadows } : {}),
});

// ---------------------------------------------------------------------------------------

describe('assignVersion', () => {
  for (const [shape, keys] of Object.entries(KEYS)) {
    for (const p of [0.01, 0.1, 0.5]) {
      it(`gives the canary its share ${p} within 4 standard errors (${N} ${shape} keys)`, () => {
        const t = table(p);
        const hits = keys.filter((k) => assignVersion(t, k) === 'v2').length;
        expectShare(hits, keys.length, p, `${shape} at ${p}`);
      });
    }
  }

  it('share 0 never and share 1 always assigns the canary', () => {
    const keys = [...KEYS.random.slice(0, 5_000), ...KEYS.sequential.slice(0, 5_000), '', '\u0000', '\uffff'.repeat(3)];
    const none = table(0);
    const all = table(1);
    for (const k of keys) {
      expect(assignVersion(none, k)).toBe('v1');
      expect(assignVersion(all, k)).toBe('v2');
    }
  });

  it('serves stable when there is no canary', () => {
    for (const k of KEYS.random.slice(0, 1_000)) expect(assignVersion({ stable: 'v1' }, k)).toBe('v1');
  });

  it('is sticky: the same key gets the same version across calls and across equal tables', () => {
    const t = table(0.3);
    const copy: RoutingTable = JSON.parse(JSON.stringify(t));
    const validated = validateRoutingTable(JSON.parse(JSON.stringify(t)), ['v1', 'v2']);
    for (const k of KEYS.uuid.slice(0, 5_000)) {
      const v = assignVersion(t, k);
      expect(assignVersion(t, k)).toBe(v);
      expect(assignVersion(copy, k)).toBe(v);
      expect(assignVersion(validated, k)).toBe(v);
      expect(assignVersion({ canary: { share: 0.3, version: 'v2' }, stable: 'v1' }, k)).toBe(v);
    }
  });

  it('is monotone: raising the share only moves keys from stable to canary', () => {
    const shares = [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1];
    for (const k of KEYS.random.slice(0, 5_000)) {
      let wasCanary = false;
      for (const s of shares) {
        const isCanary = assignVersion(table(s), k) === 'v2';
        if (wasCanary) expect(isCanary, `${k} went back to stable at share ${s}`).toBe(true);
        wasCanary = isCanary;
      }
    }
  });

  it('is monotone for arbitrary keys and share pairs (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (k, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        if (assignVersion(table(lo), k) === 'v2') expect(assignVersion(table(hi), k)).toBe('v2');
        expect(assignVersion(table(hi), k)).toBe(assignVersion(table(hi), k));
      }),
      { seed: 77, numRuns: 500 },
    );
  });

  it('puts exactly the keys whose callerPoint is below the share on the canary', () => {
    const t = table(0.37);
    for (const k of KEYS.email.slice(0, 2_000)) expect(assignVersion(t, k) === 'v2').toBe(callerPoint(k) < 0.37);
  });
});

// ---------------------------------------------------------------------------------------

describe('shadowVersions', () => {
  const shadows = [
    { version: 'v3', sampleRate: 0.05 },
    { version: 'v4', sampleRate: 0.2 },
  ];
  const t = table(0.1, shadows);
  const keys = KEYS.random;
  const sampled = (v: string) => new Set(keys.filter((k) => shadowVersions(t, k, assignVersion(t, k)).includes(v)));

  it('samples each shadow at its rate within 4 standard errors', () => {
    for (const s of shadows) expectShare(sampled(s.version).size, keys.length, s.sampleRate, `shadow ${s.version}`);
    // The same on sequential keys.
    for (const s of shadows) {
      const hits = KEYS.sequential.filter((k) => shadowVersions(t, k, 'v1').includes(s.version)).length;
      expectShare(hits, N, s.sampleRate, `shadow ${s.version} (sequential)`);
    }
  });

  it('samples two shadows (near) independently of each other and of the canary', () => {
    const a = sampled('v3');
    const b = sampled('v4');
    const both = [...a].filter((k) => b.has(k)).length;
    expectShare(both, keys.length, 0.05 * 0.2, 'v3 and v4 together');
    // Two shadows at the same rate sample different sets of callers.
    const same = table(0, [
      { version: 'v3', sampleRate: 0.2 },
      { version: 'v4', sampleRate: 0.2 },
    ]);
    const only = (v: string) => keys.filter((k) => shadowVersions(same, k, 'v1').includes(v));
    const s3 = new Set(only('v3'));
    const s4 = only('v4');
    expect(s4.filter((k) => !s3.has(k)).length).toBeGreaterThan(0.1 * N);
    expectShare(s4.filter((k) => s3.has(k)).length, N, 0.04, 'equal-rate shadows together');
    // Shadow sampling does not follow canary assignment.
    const canaryAndV4 = [...b].filter((k) => assignVersion(t, k) === 'v2').length;
    expectShare(canaryAndV4, keys.length, 0.1 * 0.2, 'canary and v4 together');
  });

  it('is sticky: the same key gets the same shadows every time', () => {
    const copy: RoutingTable = JSON.parse(JSON.stringify(t));
    for (const k of keys.slice(0, 5_000)) {
      const served = assignVersion(t, k);
      expect(shadowVersions(copy, k, served)).toEqual(shadowVersions(t, k, served));
    }
  });

  it('sample rate 0 never and 1 always samples, and never includes the served version', () => {
    const t2: RoutingTable = {
      stable: 'v1',
      canary: { version: 'v2', share: 0.5 },
      shadows: [
        { version: 'v2', sampleRate: 1 }, // the canary as a shadow: only for callers it does not serve
        { version: 'v3', sampleRate: 0 },
        { version: 'v4', sampleRate: 1 },
        { version: 'v1', sampleRate: 1 }, // stable as a shadow: only for canary callers
      ],
    };
    let canary = 0;
    for (const k of keys.slice(0, 5_000)) {
      const served = assignVersion(t2, k);
      const got = shadowVersions(t2, k, served);
      expect(got).not.toContain(served);
      expect(got).not.toContain('v3');
      expect(got).toContain('v4');
      expect(got).toEqual(served === 'v2' ? ['v4', 'v1'] : ['v2', 'v4']);
      if (served === 'v2') canary++;
    }
    expect(canary).toBeGreaterThan(0);
    expect(canary).toBeLessThan(5_000);
  });

  it('returns [] without shadows', () => {
    expect(shadowVersions({ stable: 'v1' }, 'k', 'v1')).toEqual([]);
    expect(shadowVersions({ stable: 'v1', shadows: [] }, 'k', 'v1')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------

/** An independent FNV-1a + murmur3 fmix32 in BigInt arithmetic, to check hash32 against. */
function referenceHash32(s: string): number {
  const M = 0xffffffffn;
  let h = 0x811c9dc5n;
  for (let i = 0; i < s.length; i++) h = ((h ^ BigInt(s.charCodeAt(i))) * 0x01000193n) & M;
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & M;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & M;
  h ^= h >> 16n;
  return Number(h);
}

/** Strings of any UTF-16 code units, lone surrogates included. */
const codeUnits = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }).map((u) => String.fromCharCode(...u));

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v; v &= v - 1) n++;
  return n;
}

describe('hash32 and callerPoint', () => {
  it('is FNV-1a of the UTF-16 code units followed by fmix32 (against a BigInt reference, property)', () => {
    fc.assert(
      fc.property(codeUnits, (s) => {
        expect(hash32(s)).toBe(referenceHash32(s));
      }),
      { seed: 77, numRuns: 200 },
    );
    for (const s of ['', 'a', 'user-1', '\u0000', '\ud83d\ude00']) expect(hash32(s)).toBe(referenceHash32(s));
  });

  it('returns unsigned 32-bit integers and points in [0, 1)', () => {
    fc.assert(
      fc.property(codeUnits, fc.string(), (s, salt) => {
        const h = hash32(s);
        expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
        const p = callerPoint(s, salt);
        expect(p >= 0 && p < 1).toBe(true);
      }),
      { seed: 77, numRuns: 500 },
    );
  });

  it('avalanches: keys differing in one character land far apart on average', () => {
    const r = prng(7);
    const pairs = 5_000;
    let bits = 0;
    let gap = 0;
    for (let i = 0; i < pairs; i++) {
      const base = KEYS.random[i];
      const at = Math.floor(r() * base.length);
      const ch = base.charCodeAt(at) ^ (1 + Math.floor(r() * 15)); // a different character
      const other = base.slice(0, at) + String.fromCharCode(ch) + base.slice(at + 1);
      bits += popcount(hash32(base) ^ hash32(other));
      gap += Math.abs(callerPoint(base) - callerPoint(other));
    }
    // Independent uniform hashes flip 16 of 32 bits and sit 1/3 apart on average.
    expect(bits / pairs).toBeGreaterThan(15);
    expect(bits / pairs).toBeLessThan(17);
    expect(gap / pairs).toBeGreaterThan(0.3);
    expect(gap / pairs).toBeLessThan(0.37);
    // Sequential ids (the worst case for a weak hash) too: neighbours are not neighbours.
    let seqGap = 0;
    for (let i = 1; i < pairs; i++) seqGap += Math.abs(callerPoint(`user-${i}`) - callerPoint(`user-${i - 1}`));
    expect(seqGap / (pairs - 1)).toBeGreaterThan(0.3);
  });

  it('spreads callerPoint evenly over 10 buckets (coarse chi-square, every key shape)', () => {
    // df = 9; the 1e-6 upper tail of chi-square(9) is about 47, so 60 cannot flake and still
    // catches any gross bias (a bucket 20% off from 2,000 alone contributes 80).
    for (const [shape, keys] of Object.entries(KEYS)) {
      for (const salt of ['', 'v3']) {
        const counts = new Array<number>(10).fill(0);
        for (const k of keys) counts[Math.floor(callerPoint(k, salt) * 10)]++;
        const e = keys.length / 10;
        const chi2 = counts.reduce((a, c) => a + (c - e) ** 2 / e, 0);
        expect(chi2, `${shape} salt ${JSON.stringify(salt)}: counts ${counts.join(' ')}`).toBeLessThan(60);
      }
    }
  });

  it('salts change the point (a shadow does not sample exactly the canary callers)', () => {
    const moved = KEYS.random.slice(0, 2_000).filter((k) => callerPoint(k) !== callerPoint(k, 'v3')).length;
    expect(moved).toBe(2_000);
  });
});

// ---------------------------------------------------------------------------------------

const VERSIONS = ['v1', 'v2', 'v3', 'v4', 'v5', 'v6'] as const;

function refuses(value: unknown, field: string, status = 400, code = 'invalid_input'): void {
  let err: unknown;
  try {
    validateRoutingTable(value, VERSIONS);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a ValidationError for ${JSON.stringify(value)}`).toBeInstanceOf(ValidationError);
  const v = err as ValidationError;
  expect({ field: v.field, status: v.status, code: v.code }).toEqual({ field, status, code });
  expect(v.message.length).toBeGreaterThan(0);
}

describe('validateRoutingTable', () => {
  it('accepts good tables and returns them unchanged', () => {
    const good: RoutingTable[] = [
      { stable: 'v1' },
      { stable: 'v1', canary: { version: 'v2', share: 0 } },
      { stable: 'v1', canary: { version: 'v2', share: 0.05 } },
      { stable: 'v1', canary: { version: 'v2', share: 1 } },
      { stable: 'v1', shadows: [] },
      { stable: 'v1', shadows: [{ version: 'v3', sampleRate: 0.5 }] },
      {
        stable: 'v2',
        canary: { version: 'v1', share: 0.25 },
        shadows: [
          { version: 'v3', sampleRate: 0 },
          { version: 'v4', sampleRate: 1 },
          { version: 'v5', sampleRate: 0.1 },
          { version: 'v1', sampleRate: 0.1 }, // 4 shadows, one of them the canary
        ],
      },
    ];
    for (const t of good) expect(validateRoutingTable(JSON.parse(JSON.stringify(t)), VERSIONS)).toEqual(t);
  });

  it('treats canary: null as no canary', () => {
    expect(validateRoutingTable({ stable: 'v1', canary: null }, VERSIONS)).toEqual({ stable: 'v1' });
  });

  it('refuses non-object input', () => {
    for (const v of [null, undefined, [], [{ stable: 'v1' }], 'v1', 3, true]) refuses(v, 'table');
  });

  it('refuses versions that are not deployed with 422 unknown_version', () => {
    refuses({}, 'stable', 422, 'unknown_version');
    refuses({ stable: 'v9' }, 'stable', 422, 'unknown_version');
    refuses({ stable: 1 }, 'stable', 422, 'unknown_version');
    refuses({ stable: 'V1' }, 'stable', 422, 'unknown_version');
    refuses({ stable: 'v1', canary: { version: 'v9', share: 0.1 } }, 'canary.version', 422, 'unknown_version');
    refuses({ stable: 'v1', canary: { share: 0.1 } }, 'canary.version', 422, 'unknown_version');
    refuses(
      {
        stable: 'v1',
        shadows: [
          { version: 'v3', sampleRate: 0.1 },
          { version: 'nope', sampleRate: 0.1 },
        ],
      },
      'shadows[1].version',
      422,
      'unknown_version',
    );
    expect(() => validateRoutingTable({ stable: 'v1' }, [])).toThrow(ValidationError);
  });

  it('refuses shares and sample rates outside [0, 1] or not numbers', () => {
    for (const share of [-0.01, 1.01, 2, -1, NaN, Infinity, -Infinity, '0.5', null, true, [0.5], {}, undefined]) {
      refuses({ stable: 'v1', canary: { version: 'v2', share } }, 'canary.share');
    }
    for (const sampleRate of [-0.5, 1.5, NaN, '1', null, undefined]) {
      refuses({ stable: 'v1', shadows: [{ version: 'v3', sampleRate }] }, 'shadows[0].sampleRate');
    }
  });

  it('refuses a canary equal to stable', () => {
    refuses({ stable: 'v1', canary: { version: 'v1', share: 0.1 } }, 'canary.version');
    refuses({ stable: 'v1', canary: { version: 'v1', share: 0 } }, 'canary.version');
  });

  it('refuses duplicate shadows and more than 4', () => {
    refuses(
      {
        stable: 'v1',
        shadows: [
          { version: 'v3', sampleRate: 0.1 },
          { version: 'v3', sampleRate: 0.2 },
        ],
      },
      'shadows[1].version',
    );
    refuses(
      {
        stable: 'v1',
        shadows: ['v2', 'v3', 'v4', 'v5', 'v6'].map((version) => ({ version, sampleRate: 0.1 })),
      },
      'shadows',
    );
  });

  it('refuses malformed canary and shadows', () => {
    for (const canary of ['v2', 0.1, [], ['v2', 0.1], true]) refuses({ stable: 'v1', canary }, 'canary');
    for (const shadows of [{}, 'v3', null, 1, { version: 'v3', sampleRate: 0.1 }]) refuses({ stable: 'v1', shadows }, 'shadows');
    for (const s of [null, 'v3', [], 0]) refuses({ stable: 'v1', shadows: [{ version: 'v3', sampleRate: 0.1 }, s] }, 'shadows[1]');
  });

  it('refuses unknown fields at every level, naming them', () => {
    refuses({ stable: 'v1', weights: {} }, 'weights');
    refuses({ stable: 'v1', Stable: 'v1' }, 'Stable');
    refuses({ stable: 'v1', canary: { version: 'v2', share: 0.1, sticky: true } }, 'canary.sticky');
    refuses({ stable: 'v1', shadows: [{ version: 'v3', sampleRate: 0.1, share: 0.1 }] }, 'shadows[0].share');
    refuses(JSON.parse('{"stable": "v1", "__proto__": {"canary": 1}}'), '__proto__');
  });

  it('throws only ValidationError, and what it returns is a valid table (property, arbitrary JSON)', () => {
    // Mostly good parts with the odd arbitrary JSON value, so the property reaches the deeper
    // checks (and sometimes succeeds) rather than stopping at the first field.
    const mostly = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 8, arbitrary: good }, { weight: 1, arbitrary: fc.jsonValue() });
    const versionArb = mostly(fc.constantFrom(...VERSIONS));
    const rateArb = mostly(fc.double({ min: 0, max: 1, noNaN: true }));
    const nearArb = fc.record(
      {
        stable: versionArb,
        canary: mostly(fc.record({ version: versionArb, share: rateArb })),
        shadows: mostly(fc.array(mostly(fc.record({ version: versionArb, sampleRate: rateArb })), { maxLength: 5 })),
      },
      { requiredKeys: ['stable'] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), nearArb), (value) => {
        let t: RoutingTable;
        try {
          t = validateRoutingTable(value, VERSIONS);
        } catch (e) {
          expect(e).toBeInstanceOf(ValidationError);
          return;
        }
        expect(VERSIONS).toContain(t.stable);
        if (t.canary) {
          expect(VERSIONS).toContain(t.canary.version);
          expect(t.canary.version).not.toBe(t.stable);
          expect(t.canary.share >= 0 && t.canary.share <= 1).toBe(true);
        }
        for (const s of t.shadows ?? []) expect(s.sampleRate >= 0 && s.sampleRate <= 1).toBe(true);
        expect(new Set(t.shadows?.map((s) => s.version)).size).toBe(t.shadows?.length ?? 0);
        expect(validateRoutingTable(JSON.parse(JSON.stringify(t)), VERSIONS)).toEqual(t);
      }),
      { seed: 77, numRuns: 1_000 },
    );
  });
});
