import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalKey, createCache, type CacheStats } from './cache.ts';

/** The cache's own accounting (cache.ts): two bytes per UTF-16 code unit of the key, the value's bytes, 64 overhead. */
const OVERHEAD = 64;
const cost = (key: string, bytes: number): number => key.length * 2 + bytes + OVERHEAD;

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

// ---------------------------------------------------------------------------------------

describe('createCache', () => {
  it('get returns what set stored, and counts hits and misses', () => {
    const cache = createCache<string>();
    expect(cache.get('a')).toBeUndefined();
    cache.set('a', 'A', 10);
    expect(cache.get('a')).toBe('A');
    expect(cache.get('a')).toBe('A');
    expect(cache.get('b')).toBeUndefined();
    expect(cache.stats()).toEqual<CacheStats>({ entries: 1, bytes: cost('a', 10), hits: 2, misses: 2, evictions: 0, expirations: 0 });
  });

  it('keeps identity of stored objects', () => {
    const cache = createCache<{ x: number }>();
    const v = { x: 1 };
    cache.set('k', v, 8);
    expect(cache.get('k')).toBe(v);
  });

  it('evicts least recently used first; get refreshes recency', () => {
    // Room for exactly three entries of this size.
    const one = cost('k0', 100);
    const cache = createCache<number>({ maxBytes: 3 * one });
    cache.set('k0', 0, 100);
    cache.set('k1', 1, 100);
    cache.set('k2', 2, 100);
    expect(cache.stats()).toMatchObject({ entries: 3, bytes: 3 * one, evictions: 0 });
    expect(cache.get('k0')).toBe(0); // k0 is now the most recent; k1 the least
    cache.set('k3', 3, 100);
    expect(cache.stats()).toMatchObject({ entries: 3, bytes: 3 * one, evictions: 1 });
    expect(cache.get('k1')).toBeUndefined();
    expect(cache.get('k0')).toBe(0);
    expect(cache.get('k2')).toBe(2);
    expect(cache.get('k3')).toBe(3);
    // Order now (least to most recent): k0, k2, k3. A large value evicts as many as it needs.
    cache.set('k4', 4, 100 + one);
    expect(cache.get('k0')).toBeUndefined();
    expect(cache.get('k2')).toBeUndefined();
    expect(cache.get('k3')).toBe(3);
    expect(cache.get('k4')).toBe(4);
    expect(cache.stats().evictions).toBe(3);
    expect(cache.stats().bytes).toBeLessThanOrEqual(3 * one);
  });

  it('overwriting refreshes recency (set counts as a use)', () => {
    const one = cost('k0', 100);
    const cache = createCache<number>({ maxBytes: 3 * one });
    cache.set('k0', 0, 100);
    cache.set('k1', 1, 100);
    cache.set('k2', 2, 100);
    cache.set('k0', 10, 100);
    cache.set('k3', 3, 100);
    expect(cache.get('k1')).toBeUndefined();
    expect(cache.get('k0')).toBe(10);
  });

  it('a value larger than the whole budget is not stored, and evicts nothing', () => {
    const cache = createCache<string>({ maxBytes: 1000 });
    cache.set('small', 's', 10);
    cache.set('big', 'B', 1000);
    expect(cache.get('big')).toBeUndefined();
    expect(cache.get('small')).toBe('s');
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: cost('small', 10), evictions: 0 });
    // Exactly the budget fits.
    const fits = 1000 - cost('x', 0);
    cache.set('x', 'X', fits);
    expect(cache.get('x')).toBe('X');
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: 1000, evictions: 1 });
    // One byte over does not, and the key's own bytes count.
    cache.set('xx', 'XX', fits);
    expect(cache.get('xx')).toBeUndefined();
  });

  it('overwriting with a value larger than the budget drops the old value', () => {
    const cache = createCache<string>({ maxBytes: 500 });
    cache.set('k', 'old', 10);
    cache.set('k', 'huge', 10_000);
    expect(cache.get('k')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it('overwrite updates bytes', () => {
    const cache = createCache<string>({ maxBytes: 10_000 });
    cache.set('k', 'a', 100);
    expect(cache.stats().bytes).toBe(cost('k', 100));
    cache.set('k', 'b', 30);
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: cost('k', 30) });
    cache.set('k', 'c', 900);
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: cost('k', 900), evictions: 0 });
    expect(cache.get('k')).toBe('c');
  });

  it('expires entries ttlMs after they were stored, and counts the expiration as a miss', () => {
    const c = clock();
    const cache = createCache<string>({ ttlMs: 100, now: c.now });
    cache.set('a', 'A', 1);
    c.t += 50;
    cache.set('b', 'B', 1);
    c.t += 49.999;
    expect(cache.get('a')).toBe('A'); // reading does not extend the time to live
    c.t += 0.001;
    expect(cache.get('a')).toBeUndefined(); // exactly ttlMs after: expired
    expect(cache.get('b')).toBe('B');
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: cost('b', 1), hits: 2, misses: 1, expirations: 1 });
    c.t += 50;
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('b')).toBeUndefined(); // already gone: a plain miss
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0, misses: 3, expirations: 2 });
  });

  it('overwriting restarts the time to live', () => {
    const c = clock();
    const cache = createCache<string>({ ttlMs: 100, now: c.now });
    cache.set('a', 'A', 1);
    c.t += 80;
    cache.set('a', 'A2', 1);
    c.t += 80;
    expect(cache.get('a')).toBe('A2');
  });

  it('delete and clear', () => {
    const cache = createCache<number>();
    cache.set('a', 1, 10);
    cache.set('b', 2, 20);
    expect(cache.delete('a')).toBe(true);
    expect(cache.delete('a')).toBe(false);
    expect(cache.delete('zzz')).toBe(false);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: cost('b', 20) });
    cache.set('c', 3, 30);
    cache.clear();
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('c')).toBeUndefined();
    cache.set('b', 4, 5);
    expect(cache.get('b')).toBe(4);
    expect(cache.stats().bytes).toBe(cost('b', 5));
  });

  it('rejects bad sizes', () => {
    const cache = createCache<number>();
    expect(() => cache.set('a', 1, -1)).toThrow(RangeError);
    expect(() => cache.set('a', 1, Number.NaN)).toThrow(RangeError);
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it.each([{ maxBytes: 0 }, { maxBytes: -5 }, { maxBytes: Number.NaN }, { ttlMs: 0 }, { ttlMs: -1 }, { ttlMs: Number.NaN }])(
    'rejects options %o with RangeError',
    (options) => {
      expect(() => createCache(options)).toThrow(RangeError);
    },
  );

  it('uses sensible defaults', () => {
    const cache = createCache<number>();
    cache.set('k', 1, 4 * 1024 * 1024);
    expect(cache.get('k')).toBe(1);
    cache.set('too-big', 2, 8 * 1024 * 1024);
    expect(cache.get('too-big')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------
// Model-based: a plain list, least recent first.

type Op =
  | { op: 'get'; key: string }
  | { op: 'set'; key: string; bytes: number }
  | { op: 'delete'; key: string }
  | { op: 'advance'; ms: number }
  | { op: 'clear' };

class ReferenceCache {
  list: { key: string; value: number; bytes: number; expires: number }[] = [];
  bytes = 0;
  s = { hits: 0, misses: 0, evictions: 0, expirations: 0 };
  constructor(
    readonly maxBytes: number,
    readonly ttlMs: number,
  ) {}
  #remove(i: number): void {
    const [e] = this.list.splice(i, 1);
    this.bytes -= cost(e.key, e.bytes);
  }
  get(key: string, now: number): number | undefined {
    const i = this.list.findIndex((e) => e.key === key);
    if (i < 0) {
      this.s.misses++;
      return undefined;
    }
    const e = this.list[i];
    if (now >= e.expires) {
      this.#remove(i);
      this.s.expirations++;
      this.s.misses++;
      return undefined;
    }
    this.list.splice(i, 1);
    this.list.push(e);
    this.s.hits++;
    return e.value;
  }
  set(key: string, value: number, bytes: number, now: number): void {
    const i = this.list.findIndex((e) => e.key === key);
    if (i >= 0) this.#remove(i);
    const need = cost(key, bytes);
    if (need > this.maxBytes) return;
    while (this.bytes + need > this.maxBytes) {
      this.#remove(0);
      this.s.evictions++;
    }
    this.list.push({ key, value, bytes, expires: now + this.ttlMs });
    this.bytes += need;
  }
  delete(key: string): boolean {
    const i = this.list.findIndex((e) => e.key === key);
    if (i < 0) return false;
    this.#remove(i);
    return true;
  }
  clear(): void {
    this.list = [];
    this.bytes = 0;
  }
  stats(): CacheStats {
    return { entries: this.list.length, bytes: this.bytes, ...this.s };
  }
}

const keyArb = fc.constantFrom('', 'a', 'b', 'cc', 'dddd', 'model@1:[1,2]', 'é', '\u{1F600}');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('set' as const),
      key: keyArb,
      bytes: fc.oneof(fc.integer({ min: 0, max: 400 }), fc.double({ min: 0, max: 400, noNaN: true })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.double({ min: 0, max: 60, noNaN: true })) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
);

describe('createCache: against a reference model', () => {
  it('agrees with a list-based LRU on every get, delete and stats, and never exceeds the budget', () => {
    fc.assert(
      fc.property(fc.integer({ min: 64, max: 1200 }), fc.integer({ min: 1, max: 100 }), fc.array(opArb, { maxLength: 120 }), (maxBytes, ttlMs, ops) => {
        const c = clock(0);
        const cache = createCache<number>({ maxBytes, ttlMs, now: c.now });
        const model = new ReferenceCache(maxBytes, ttlMs);
        let serial = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'get':
              expect(cache.get(o.key)).toBe(model.get(o.key, c.t));
              break;
            case 'set': {
              const v = serial++;
              cache.set(o.key, v, o.bytes);
              model.set(o.key, v, o.bytes, c.t);
              break;
            }
            case 'delete':
              expect(cache.delete(o.key)).toBe(model.delete(o.key));
              break;
            case 'advance':
              c.t += o.ms;
              break;
            case 'clear':
              cache.clear();
              model.clear();
              break;
          }
          const s = cache.stats();
          expect(s).toEqual(model.stats());
          expect(s.bytes).toBeLessThanOrEqual(maxBytes);
          expect(s.bytes).toBeGreaterThanOrEqual(0);
        }
      }),
      { seed: 4242, numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------

describe('canonicalKey', () => {
  it('ignores object key order, at any depth', () => {
    expect(canonicalKey({ a: 1, b: 2 })).toBe(canonicalKey({ b: 2, a: 1 }));
    expect(canonicalKey({ x: { c: [1, { q: 1, p: 2 }], a: null } })).toBe(canonicalKey({ x: { a: null, c: [1, { p: 2, q: 1 }] } }));
    expect(canonicalKey({ b: 1, a: 2 })).toBe('{"a":2,"b":1}');
  });

  it('maps -0 to 0', () => {
    expect(canonicalKey(-0)).toBe(canonicalKey(0));
    expect(canonicalKey([-0, { z: -0 }])).toBe(canonicalKey([0, { z: 0 }]));
    expect(canonicalKey(new Float64Array([-0]))).toBe(canonicalKey([0]));
  });

  it('keys typed arrays like plain arrays of the same numbers', () => {
    expect(canonicalKey(new Float64Array([1, 2.5, -3]))).toBe(canonicalKey([1, 2.5, -3]));
    expect(canonicalKey(new Int32Array([1, -2, 3]))).toBe(canonicalKey([1, -2, 3]));
    expect(canonicalKey(new Uint8Array([0, 255]))).toBe(canonicalKey([0, 255]));
    expect(canonicalKey(new Float32Array([0.5, 0.25]))).toBe(canonicalKey([0.5, 0.25]));
    expect(canonicalKey({ x: new Float32Array([1, 2]) })).toBe(canonicalKey({ x: [1, 2] }));
    // A float32 holds the nearest float32, which is not the double 0.1: different numbers.
    expect(canonicalKey(new Float32Array([0.1]))).toBe(canonicalKey([Math.fround(0.1)]));
  });

  it('uses the shortest round-trip form of numbers, without whitespace', () => {
    expect(canonicalKey(1.0)).toBe('1');
    expect(canonicalKey([1e21, 1e-7, 0.1 + 0.2])).toBe('[1e+21,1e-7,0.30000000000000004]');
    expect(canonicalKey({ a: [1, 2], b: 'x y' })).toBe('{"a":[1,2],"b":"x y"}');
  });

  it('tells apart values of different types that print alike', () => {
    const values: unknown[] = [1, '1', true, 'true', null, 'null', 1n, '1n', [1], '[1]', [], {}, '', [[]], [null], { '1': 1 }, [[1]]];
    const keys = values.map(canonicalKey);
    expect(new Set(keys).size).toBe(values.length);
  });

  it.each([Number.NaN, Infinity, -Infinity, [1, Number.NaN], { a: Infinity }, new Float64Array([1, Number.NaN])])(
    'throws RangeError on non-finite numbers: %o',
    (v) => {
      expect(() => canonicalKey(v)).toThrow(RangeError);
    },
  );

  it.each([() => 1, Symbol('s'), [1, () => 2], { f: Symbol.iterator }])('throws TypeError on functions and symbols: %o', (v) => {
    expect(() => canonicalKey(v)).toThrow(TypeError);
  });

  // Equality of JSON-like values as the key means it: numbers by value (so -0 equals 0), object
  // keys as a set.
  function sameMeaning(a: unknown, b: unknown): boolean {
    if (typeof a === 'number' || typeof b === 'number') return a === b;
    if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameMeaning(x, b[i]));
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
    return ka.every((k) => sameMeaning((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }

  /** The same value with every object's keys inserted in reverse order. */
  function reorder(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(reorder);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).reverse())
        Object.defineProperty(out, k, { value: reorder((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
      return out;
    }
    return v;
  }

  // Small domains, so that equal and near-equal pairs come up often.
  const small = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom(null, true, false, 0, -0, 1, -1, 0.5, 1e21, '', '0', 'a', 'true', 'null', '"', '\\', '\u2028'),
      fc.array(tie('value'), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom('a', 'b', '', '0', 'a"b', '__proto__'), tie('value'), { maxKeys: 3 }),
    ),
  })).value;

  it('property: same meaning gives the same key, different values give different keys', () => {
    fc.assert(
      fc.property(fc.oneof(fc.tuple(small, small), fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }))), ([a, b]) => {
        expect(canonicalKey(a) === canonicalKey(b)).toBe(sameMeaning(a, b));
        expect(canonicalKey(reorder(a))).toBe(canonicalKey(a));
        // The key is JSON, and parses back to a value of the same meaning.
        expect(sameMeaning(JSON.parse(canonicalKey(a)), a)).toBe(true);
      }),
      { seed: 4242, numRuns: 1000 },
    );
  });

  it('property: a typed array keys like the array of its elements', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true })), (xs) => {
        expect(canonicalKey(Float64Array.from(xs))).toBe(canonicalKey(xs));
        expect(canonicalKey(Float32Array.from(xs.map(Math.fround).filter(Number.isFinite)))).toBe(canonicalKey(xs.map(Math.fround).filter(Number.isFinite)));
      }),
      { seed: 4242, numRuns: 300 },
    );
  });
});

describe('canonicalKey refuses what is not JSON-like', () => {
  it('Map, Set, Date, ArrayBuffer and DataView throw TypeError instead of all keying as "{}"', () => {
    for (const v of [new Map([[1, 2]]), new Set([1]), new Date(0), new ArrayBuffer(4), new DataView(new ArrayBuffer(4))]) {
      expect(() => canonicalKey(v)).toThrow(TypeError);
      expect(() => canonicalKey({ nested: [v] })).toThrow(TypeError);
    }
    expect(canonicalKey(Object.assign(Object.create(null), { b: 1, a: 2 }))).toBe('{"a":2,"b":1}');
  });
});
