/**
 * Requests refused by validation, counted per model version and field in the window profiles:
 * a field that starts arriving missing, as a string or out of range is how an upstream pipeline
 * change shows up first, before any served row drifts (there are no served rows of it).
 *
 * A refusal adds 1 to the window's `refused` counter and to `refused:<field>`: the manifest
 * feature the error names (`instances[3].hour` -> `hour`), `inputs` for a tensor request's
 * error, `request` for anything else (a body that is not JSON, an unknown field: names a client
 * chooses never become counter names). At most MAX_REFUSED_FIELDS fields per window; past that,
 * `refused:other`.
 *
 * judgeRefusals flags a field whose refusal rate in a window jumped against the reference's rate
 * for it (the training baseline refuses nothing: rate 0): at least 5 refusals, a rate above
 * max(2 x reference, reference + 1 point), and a one-sided 99% lower bound above the reference.
 */
import type { ModelManifest } from './manifest.ts';
import type { Counters, Profile } from './profile.ts';

export const REFUSED_PREFIX = 'refused:';
export const MAX_REFUSED_FIELDS = 16;

/** What a refusal of `field` (a ValidationError's field) is counted under. */
export function refusedField(m: Pick<ModelManifest, 'features'>, field: string): string {
  const f = /^instances\[\d+\]\.([^.[\]]+)/.exec(field)?.[1];
  if (f !== undefined && m.features.some((x) => x.name === f)) return f;
  if (/^inputs\[\d+\]/.test(field)) return 'inputs';
  return 'request';
}

/** The counter of a field: `refused:` and the name with characters counters cannot hold as `_`. */
export function refusedCounter(field: string): string {
  return `${REFUSED_PREFIX}${field.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 55)}`;
}

/** Adds one refusal of `field` to `counters` (see the header). */
export function countRefusal(counters: Counters, field: string): void {
  // proto-safe: every name here starts with "refused:", never an inherited key
  let name = refusedCounter(field);
  // proto-safe: name starts with "refused:"
  if (counters[name] === undefined && Object.keys(counters).filter((k) => k.startsWith(REFUSED_PREFIX)).length >= MAX_REFUSED_FIELDS)
    name = `${REFUSED_PREFIX}other`;
  counters.refused = (counters.refused ?? 0) + 1;
  counters[name] = (counters[name] ?? 0) + 1; // proto-safe: name starts with "refused:"
}

export interface RefusalJudgement {
  /** The counter (`refused:<field>`). */
  key: string;
  count: number;
  /** Requests seen in the window: served rows and refusals. */
  seen: number;
  rate: number;
  referenceRate: number;
  threshold: number;
  drifted: boolean;
}

/** Requests a profile saw: its rows and its refusals. */
export const seenOf = (p: Pick<Profile, 'counters'>) => p.counters.rows + (p.counters.refused ?? 0);

/** Every refused field of `live` (a window's profile), and each of `also` (fields being watched), against `reference`'s rates. */
export function judgeRefusals(
  live: Pick<Profile, 'counters'>,
  reference: Pick<Profile, 'counters'> | undefined,
  also: Iterable<string> = [],
): RefusalJudgement[] {
  const n = seenOf(live);
  const keys = new Set([...Object.keys(live.counters).filter((k) => k.startsWith(REFUSED_PREFIX)), ...also]);
  const refN = reference ? seenOf(reference) : 0;
  return [...keys].map((key) => {
    const x = live.counters[key] ?? 0; // proto-safe: keys start with "refused:"
    const rate = n ? x / n : 0;
    const referenceRate = refN ? (reference!.counters[key] ?? 0) / refN : 0; // proto-safe: as above
    const threshold = Math.max(2 * referenceRate, referenceRate + 0.01);
    const l = (x + 1) / (n + 2);
    const lower = rate - 2.326 * Math.sqrt((l * (1 - l)) / Math.max(1, n));
    return { key, count: x, seen: n, rate, referenceRate, threshold, drifted: x >= 5 && rate > threshold && lower > referenceRate };
  });
}
