/**
 * US domestic flights, January to June 2001 (3,000,000 rows), from `data/flights-3m.parquet` in
 * the npm package vega-datasets (BSD-3-Clause), read column by column into typed arrays.
 * `date` is the scheduled local departure time (a naive timestamp), `delay` the delay in
 * minutes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parquetRead } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { OOV_CATEGORY } from '../../core/validate.ts';

/**
 * The time-matched reference's slot length for flight-delay (core/clock.ts): flights leave in
 * banks within the hour, so hourly slots leave 20-minute windows of unchanged traffic flagged on
 * their airports about half the time; 20-minute slots bring that to the day-to-day variation
 * (measured in bench/drift.ts).
 */
export const FLIGHT_SLOT_MINUTES = 20;

export interface Flights {
  n: number;
  /** Scheduled departure as ms since the epoch, read as UTC (the data is local time). */
  time: Float64Array;
  month: Uint8Array;
  dayOfWeek: Uint8Array;
  hour: Uint8Array;
  distance: Float32Array;
  delay: Int32Array;
  /** Airport codes interned into `airports`. */
  origin: Uint16Array;
  destination: Uint16Array;
  airports: string[];
}

/** The parquet file's path; vega-datasets' `exports` hides its data files from require.resolve. */
export function flightsPath(): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve('vega-datasets'));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'data', 'flights-3m.parquet');
}

export async function loadFlights(onProgress: (rows: number, total: number) => void = () => {}): Promise<Flights> {
  const buf = readFileSync(flightsPath());
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let n = 0;
  const cols: Record<string, { start: number; data: ArrayLike<unknown> }[]> = { date: [], delay: [], distance: [], origin: [], destination: [] };
  await parquetRead({
    file,
    compressors,
    columns: Object.keys(cols),
    onChunk: ({ columnName, columnData, rowStart, rowEnd }) => {
      cols[columnName].push({ start: rowStart, data: columnData as ArrayLike<unknown> });
      if (columnName === 'date') {
        n = Math.max(n, rowEnd);
        onProgress(n, 3_000_000);
      }
    },
  });
  const f: Flights = {
    n,
    time: new Float64Array(n),
    month: new Uint8Array(n),
    dayOfWeek: new Uint8Array(n),
    hour: new Uint8Array(n),
    distance: new Float32Array(n),
    delay: new Int32Array(n),
    origin: new Uint16Array(n),
    destination: new Uint16Array(n),
    airports: [],
  };
  const codes = new Map<string, number>();
  const intern = (s: string) => {
    let c = codes.get(s);
    if (c === undefined) {
      c = f.airports.length;
      codes.set(s, c);
      f.airports.push(s);
    }
    return c;
  };
  const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : (v as number));
  for (const { start, data } of cols.date) {
    for (let i = 0; i < data.length && start + i < n; i++) {
      const v = data[i];
      const ms = v instanceof Date ? v.getTime() : typeof v === 'bigint' ? Number(v / 1000n) : (v as number);
      const d = new Date(ms);
      f.time[start + i] = ms;
      f.month[start + i] = d.getUTCMonth() + 1;
      f.dayOfWeek[start + i] = d.getUTCDay();
      f.hour[start + i] = d.getUTCHours();
    }
  }
  for (const { start, data } of cols.delay) for (let i = 0; i < data.length && start + i < n; i++) f.delay[start + i] = num(data[i]);
  for (const { start, data } of cols.distance) for (let i = 0; i < data.length && start + i < n; i++) f.distance[start + i] = num(data[i]);
  for (const { start, data } of cols.origin) for (let i = 0; i < data.length && start + i < n; i++) f.origin[start + i] = intern(data[i] as string);
  for (const { start, data } of cols.destination) for (let i = 0; i < data.length && start + i < n; i++) f.destination[start + i] = intern(data[i] as string);
  return f;
}

/** Flight `i` as flight-delay's named features (what a request carries; the replay and the drift bench use it). */
export function rowFeatures(f: Flights, i: number, vocabulary?: ReadonlySet<string>) {
  // With the model's vocabulary: as the edge sketches them, an airport outside it as OOV_CATEGORY.
  const airport = (code: string) => (vocabulary && !vocabulary.has(code) ? OOV_CATEGORY : code);
  return {
    month: f.month[i],
    day_of_week: f.dayOfWeek[i],
    hour: f.hour[i],
    distance: f.distance[i],
    origin: airport(f.airports[f.origin[i]]),
    destination: airport(f.airports[f.destination[i]]),
  };
}

/** Clock-aligned window lengths a live window is drawn at (alignedWindow): 10 minutes to two days. */
const ALIGNED_MS = [10, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440, 2880].map((m) => m * 60_000);

/**
 * A live window of at least `n` departures, as the aggregator's aligned windows see traffic: from
 * a random instant, the shortest clock-aligned span of ALIGNED_MS holding n rows that `keep`
 * passes, and n of those drawn at random (an edge sampling its traffic). `times` are the rows'
 * departures, ascending. Returns the chosen rows' indices and the span [start, end).
 */
export function alignedWindow(
  times: Float64Array,
  n: number,
  random: () => number,
  keep: (i: number) => boolean = () => true,
): { indices: number[]; start: number; end: number } {
  if (n > times.length) throw new RangeError(`a window of ${n} rows from ${times.length}`);
  const first = (t: number) => {
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const t = times[0] + random() * (times[times.length - 1] - times[0]);
    for (const span of ALIGNED_MS) {
      const start = Math.floor(t / span) * span;
      const end = start + span;
      const indices: number[] = [];
      for (let i = first(start); i < times.length && times[i] < end; i++) if (keep(i)) indices.push(i);
      if (indices.length < n) continue;
      // n of them at random (a partial Fisher-Yates shuffle).
      for (let i = 0; i < n; i++) {
        const j = i + Math.floor(random() * (indices.length - i));
        [indices[i], indices[j]] = [indices[j], indices[i]];
      }
      return { indices: indices.slice(0, n).sort((a, b) => a - b), start, end };
    }
  }
  throw new RangeError(`no aligned span of up to two days holds ${n} rows`);
}
