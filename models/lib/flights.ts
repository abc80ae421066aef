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
export function rowFeatures(f: Flights, i: number) {
  return {
    month: f.month[i],
    day_of_week: f.dayOfWeek[i],
    hour: f.hour[i],
    distance: f.distance[i],
    origin: f.airports[f.origin[i]],
    destination: f.airports[f.destination[i]],
  };
}
