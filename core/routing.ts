/**
 * Canary and shadow routing per model: the stable version, an optional canary version with a
 * traffic share, and shadow versions with a sample rate. Assignment is sticky: a caller key (a
 * header such as x-user-key, else the request itself) hashes to a point in [0, 1), and the
 * canary serves the callers whose point is below its share, so one user sees one version and
 * raising the share only moves users from stable to canary. Shadow sampling hashes the key
 * with the shadow's version, so each shadow samples its own, stable set of callers.
 */
import { ValidationError } from './validate.ts';

export interface RoutingTable {
  stable: string;
  canary?: { version: string; share: number };
  shadows?: { version: string; sampleRate: number }[];
}

/** 32-bit FNV-1a of the UTF-16 code units, then a murmur3 finaliser for avalanche. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The caller's point in [0, 1). */
export function callerPoint(key: string, salt = ''): number {
  return hash32(`${salt}\u0000${key}`) / 4294967296;
}

/** The version that serves `key`. */
export function assignVersion(table: RoutingTable, key: string): string {
  if (table.canary && table.canary.share > 0 && callerPoint(key) < table.canary.share) return table.canary.version;
  return table.stable;
}

/** The shadow versions that also see `key`'s request (never the serving version). */
export function shadowVersions(table: RoutingTable, key: string, served: string): string[] {
  return (table.shadows ?? []).filter((s) => s.version !== served && callerPoint(key, s.version) < s.sampleRate).map((s) => s.version);
}

/**
 * Checks an operator's table (parsed JSON) against the versions that exist; throws a
 * ValidationError naming the field.
 */
export function validateRoutingTable(value: unknown, versions: readonly string[]): RoutingTable {
  const obj = (v: unknown, f: string) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(`${f} must be an object`, f);
    return v as Record<string, unknown>;
  };
  const version = (v: unknown, f: string) => {
    if (typeof v !== 'string' || !versions.includes(v))
      throw new ValidationError(
        `${f} must be one of the deployed versions ${versions.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}`,
        f,
        422,
        'unknown_version',
      );
    return v;
  };
  const rate = (v: unknown, f: string) => {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new ValidationError(`${f} must be a number in [0, 1], got ${JSON.stringify(v)}`, f);
    return v;
  };
  const t = obj(value, 'table');
  for (const k of Object.keys(t)) if (!['stable', 'canary', 'shadows'].includes(k)) throw new ValidationError(`unknown field "${k}"`, k);
  const table: RoutingTable = { stable: version(t.stable, 'stable') };
  if (t.canary !== undefined && t.canary !== null) {
    const c = obj(t.canary, 'canary');
    for (const k of Object.keys(c)) if (!['version', 'share'].includes(k)) throw new ValidationError(`unknown field "canary.${k}"`, `canary.${k}`);
    table.canary = { version: version(c.version, 'canary.version'), share: rate(c.share, 'canary.share') };
    if (table.canary.version === table.stable) throw new ValidationError('canary.version must differ from stable', 'canary.version');
  }
  if (t.shadows !== undefined) {
    if (!Array.isArray(t.shadows) || t.shadows.length > 4) throw new ValidationError('shadows must be an array of at most 4', 'shadows');
    const seen = new Set<string>();
    table.shadows = t.shadows.map((s, i) => {
      const o = obj(s, `shadows[${i}]`);
      for (const k of Object.keys(o))
        if (!['version', 'sampleRate'].includes(k)) throw new ValidationError(`unknown field "shadows[${i}].${k}"`, `shadows[${i}].${k}`);
      const v = version(o.version, `shadows[${i}].version`);
      if (seen.has(v)) throw new ValidationError(`shadows[${i}].version ${v} is listed twice`, `shadows[${i}].version`);
      seen.add(v);
      return { version: v, sampleRate: rate(o.sampleRate, `shadows[${i}].sampleRate`) };
    });
  }
  return table;
}
