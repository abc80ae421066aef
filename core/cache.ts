/**
 * An LRU cache bounded by bytes, with a time to live, for model outputs keyed by model version
 * and the canonical form of the input (see canonicalKey). Entries are evicted least recently
 * used first when the byte budget is exceeded, and expire `ttlMs` after they were stored.
 * A Map keeps insertion order, so "move to most recent" is delete + set: O(1) per operation.
 */

export interface CacheOptions {
  /** Budget for keys and values together, bytes. Default 8 MiB. */
  maxBytes?: number;
  /** Time to live, ms. Default 60 s. */
  ttlMs?: number;
  now?: () => number;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
}

export interface Cache<V> {
  get(key: string): V | undefined;
  /** Stores `value` whose size is `bytes`; a value larger than the whole budget is not kept. */
  set(key: string, value: V, bytes: number): void;
  delete(key: string): boolean;
  clear(): void;
  stats(): CacheStats;
}

interface Slot<V> {
  value: V;
  bytes: number;
  expires: number;
}

export function createCache<V>({ maxBytes = 8 * 1024 * 1024, ttlMs = 60_000, now = () => Date.now() }: CacheOptions = {}): Cache<V> {
  if (!(maxBytes > 0)) throw new RangeError(`maxBytes must be > 0, got ${maxBytes}`);
  if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be > 0, got ${ttlMs}`);
  const map = new Map<string, Slot<V>>();
  let bytes = 0;
  const s = { hits: 0, misses: 0, evictions: 0, expirations: 0 };
  // Keys are UTF-16 in memory: two bytes a code unit, plus a fixed overhead per entry.
  const size = (key: string, valueBytes: number) => key.length * 2 + valueBytes + 64;

  function remove(key: string, slot: Slot<V>): void {
    map.delete(key);
    bytes -= size(key, slot.bytes);
  }

  return {
    get(key) {
      const slot = map.get(key);
      if (!slot) {
        s.misses++;
        return undefined;
      }
      if (now() >= slot.expires) {
        remove(key, slot);
        s.expirations++;
        s.misses++;
        return undefined;
      }
      map.delete(key);
      map.set(key, slot);
      s.hits++;
      return slot.value;
    },
    set(key, value, valueBytes) {
      if (!(valueBytes >= 0)) throw new RangeError(`bytes must be >= 0, got ${valueBytes}`);
      const old = map.get(key);
      if (old) remove(key, old);
      const need = size(key, valueBytes);
      if (need > maxBytes) return;
      for (const [k, slot] of map) {
        if (bytes + need <= maxBytes) break;
        remove(k, slot);
        s.evictions++;
      }
      map.set(key, { value, bytes: valueBytes, expires: now() + ttlMs });
      bytes += need;
    },
    delete(key) {
      const slot = map.get(key);
      if (!slot) return false;
      remove(key, slot);
      return true;
    },
    clear() {
      map.clear();
      bytes = 0;
    },
    stats: () => ({ entries: map.size, bytes, ...s }),
  };
}

/**
 * A canonical string for JSON-like input: object keys sorted, no whitespace, numbers in their
 * shortest round-trip form (−0 as 0). Two inputs that mean the same get the same key.
 */
export function canonicalKey(value: unknown): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError('canonicalKey: non-finite number');
    return JSON.stringify(value + 0);
  }
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return `[${value.map(canonicalKey).join(',')}]`;
  if (ArrayBuffer.isView(value)) {
    if (value instanceof DataView) throw new TypeError('canonicalKey: cannot key a DataView');
    return `[${Array.from(value as unknown as ArrayLike<number | bigint>, (v) => canonicalKey(v)).join(',')}]`;
  }
  if (typeof value === 'object') {
    // Plain objects only: a Map, Set, Date or ArrayBuffer would otherwise all key as "{}".
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError(`canonicalKey: cannot key a ${(value as object).constructor?.name ?? 'non-plain object'}`);
    const keys = Object.keys(value as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalKey((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  throw new TypeError(`canonicalKey: cannot key a ${typeof value}`);
}
