/**
 * Window profiler: what one source (an edge isolate, a browser) sees of each model version,
 * sketched row by row into the current window's Profile and cut into summaries every
 * `windowMs` or `maxRows` rows. Summaries wait in a bounded outbox until the caller ships them
 * (`take`) and acknowledges them (`ack`); an unacknowledged summary is shipped again with the
 * same sequence number, so a receiver that deduplicates by (source, sequence) never counts it
 * twice. When the outbox is full (the receiver unreachable), its two oldest summaries that are not
 * in flight are merged into one: time resolution is lost, rows are not, and every such merge is
 * counted (`mergedDown`, and the `mergedWindows` counter of the merged profile). A summary is in
 * flight from `take` until `ack` (stored) or `release` (certainly not delivered): merging one
 * whose delivery is unknown could count its rows twice, so that happens only past twice the
 * outbox bound, as the last resort against unbounded memory, and is counted apart
 * (`riskyMerges`).
 *
 * Sketch kinds follow the manifest: numeric features and outputs → t-digest; categorical →
 * Space-Saving with the manifest's capacity; id lists → a categorical sketch of the ids plus a
 * t-digest of the list length (`<name>_length`).
 */
import { CategoricalSketch } from './categorical.ts';
import type { ModelManifest } from './manifest.ts';
import { createProfile, encodeSummary, mergeProfiles, type Profile, type SourceKind } from './profile.ts';
import { TDigest } from './tdigest.ts';
import { countRefusal } from './refusals.ts';

/**
 * Who answered a request: the edge engine, the cache, the fallback, nobody (error); or
 * 'shadow' for a shadow version's run on a served request (counted in `shadowRows`, not served).
 */
export type Outcome = 'edge' | 'cache' | 'fallback' | 'error' | 'shadow';

export interface ProfilerOptions {
  source: { kind: SourceKind; id: string };
  windowMs?: number;
  maxRows?: number;
  /** Summaries kept for shipping; past this the oldest two are merged. */
  maxOutbox?: number;
  compression?: number;
  now?: () => number;
  /**
   * Align windows to multiples of windowMs (a window started at 10:00:03 with windowMs 5 s ends
   * at 10:00:05), and start the next window when a row arrives past the open one's end, even
   * before tick(). Summaries of many sources then cover the same intervals, and a clock that
   * jumps (a replay's event time) never puts a row into an earlier window; default false: a
   * window lasts windowMs from its first row.
   */
  align?: boolean;
}

export interface ObservedRow {
  /** Feature values as received (see EncodedRequest.observed). */
  features: Record<string, number | string | (number | string)[]>;
  /** Output values of this row: numbers, or id lists for ranked outputs. */
  outputs: Record<string, number | number[] | bigint[]>;
}

export interface Shipment {
  model: string;
  modelVersion: string;
  sequence: number;
  bytes: Uint8Array;
}

export interface WindowProfiler {
  /** Adds one request: its rows, its latency, who served it, and optional counters to add (e.g. shadow agreement). */
  observe(manifest: ModelManifest, version: string, rows: ObservedRow[], latencyMs: number, outcome: Outcome, counters?: Record<string, number>): void;
  /** Counts one request refused by validation, by the field at fault (core/refusals.ts), in the version's window. */
  refused(manifest: ModelManifest, version: string, field: string): void;
  /** Closes windows that are due (by time or rows); returns how many were closed. */
  tick(): number;
  /** Closes every open window now. */
  closeAll(): void;
  /** The summaries waiting to be shipped, oldest first (not removed until acknowledged). */
  take(): Shipment[];
  /** The receiver has stored these (model, version, sequence); forget them. */
  ack(shipments: Pick<Shipment, 'model' | 'modelVersion' | 'sequence'>[]): void;
  /** These were certainly not delivered (e.g. the connection failed): no longer in flight. */
  release(shipments: Pick<Shipment, 'model' | 'modelVersion' | 'sequence'>[]): void;
  stats(): { open: number; outbox: number; mergedDown: number; riskyMerges: number; rows: number };
}

function same(a: Pick<Shipment, 'model' | 'modelVersion' | 'sequence'>, b: Pick<Shipment, 'model' | 'modelVersion' | 'sequence'>): boolean {
  return a.model === b.model && a.modelVersion === b.modelVersion && a.sequence === b.sequence;
}

interface Open {
  profile: Profile;
  rows: number;
  manifest: ModelManifest;
  /** The window's end: the next multiple of windowMs after its start. */
  end: number;
  /** The clock at its latest row. */
  last: number;
}

export function createWindowProfiler({
  source,
  windowMs = 10_000,
  maxRows = 5000,
  maxOutbox = 32,
  compression = 100,
  now = () => Date.now(),
  align = false,
}: ProfilerOptions): WindowProfiler {
  const open = new Map<string, Open>();
  const outbox: { profile: Profile; shipment: Shipment; inFlight: boolean }[] = [];
  let sequence = 0;
  let mergedDown = 0;
  let riskyMerges = 0;
  let totalRows = 0;

  function current(manifest: ModelManifest, version: string): Open {
    const key = `${manifest.name}\u0000${version}`;
    let o = open.get(key);
    const t = now();
    // A row past the open window's end starts the next window (the clock may jump, e.g. replays),
    // and so does one before its start (a replayed clock set back behind live traffic's window).
    if (o && align && (t >= o.end || t < o.profile.windowStart)) {
      // Set back, the clock says nothing of where the open window ends: at its latest row.
      close(key, o, t < o.profile.windowStart ? o.last : undefined);
      o = undefined;
    }
    if (!o) {
      const p = createProfile({ model: manifest.name, modelVersion: version, source, windowStart: t, compression });
      for (const f of manifest.features) {
        if (f.kind === 'numeric') p.features.set(f.name, new TDigest({ compression }));
        else if (f.kind === 'categorical') p.features.set(f.name, new CategoricalSketch({ capacity: f.sketchCapacity }));
        else {
          p.features.set(f.name, new CategoricalSketch({ capacity: f.sketchCapacity }));
          p.features.set(`${f.name}_length`, new TDigest({ compression }));
        }
      }
      for (const s of manifest.sketchedOutputs)
        p.outputs.set(s.name, s.kind === 'numeric' ? new TDigest({ compression }) : new CategoricalSketch({ capacity: s.sketchCapacity ?? 256 }));
      o = { profile: p, rows: 0, manifest, end: align ? Math.floor(t / windowMs) * windowMs + windowMs : t + windowMs, last: t };
      open.set(key, o);
    }
    o.last = Math.max(o.last, t);
    return o;
  }

  function close(key: string, o: Open, end?: number): void {
    open.delete(key);
    // The end is exclusive and past every row: a window closed early (by rows, at shutdown, or the
    // clock set back) ends just after its latest row, not at it (a row at 15:00:00.000 is not in
    // [14:59, 15:00)). Aligned, that is never past the window's own end.
    o.profile.windowEnd = Math.max(o.profile.windowStart, end ?? (align ? Math.min(now(), o.end) : now()), o.last + 1);
    o.profile.sequence = ++sequence;
    outbox.push({ profile: o.profile, shipment: ship(o.profile), inFlight: false });
    while (outbox.length > maxOutbox) {
      // The two oldest summaries of one model version that are not in flight; past twice the
      // bound, in flight or not.
      const risky = outbox.length > 2 * maxOutbox;
      const ok = (x: (typeof outbox)[number]) => risky || !x.inFlight;
      // The oldest pair of one model version: try each mergeable summary in turn as the first.
      let i = -1;
      let j = -1;
      for (let a = 0; a < outbox.length && j < 0; a++) {
        if (!ok(outbox[a])) continue;
        const pa = outbox[a].profile;
        j = outbox.findIndex((x, k) => k > a && ok(x) && x.profile.model === pa.model && x.profile.modelVersion === pa.modelVersion);
        if (j >= 0) i = a;
      }
      if (j < 0) break;
      const a = outbox[i].profile;
      const b = outbox[j].profile;
      const merged = mergeProfiles(a, b);
      merged.source = { ...source };
      merged.sequence = b.sequence;
      merged.counters.mergedWindows = (a.counters.mergedWindows ?? 0) + (b.counters.mergedWindows ?? 0) + 1;
      mergedDown++;
      if (outbox[i].inFlight || outbox[j].inFlight) riskyMerges++;
      outbox.splice(j, 1);
      outbox[i] = { profile: merged, shipment: ship(merged), inFlight: false };
    }
  }

  function ship(p: Profile): Shipment {
    return { model: p.model, modelVersion: p.modelVersion, sequence: p.sequence, bytes: encodeSummary(p) };
  }

  return {
    refused(manifest, version, field) {
      countRefusal(current(manifest, version).profile.counters, field);
    },
    observe(manifest, version, rows, latencyMs, outcome, counters) {
      const o = current(manifest, version);
      const p = o.profile;
      for (const row of rows) {
        for (const f of manifest.features) {
          const v = row.features[f.name];
          if (v === undefined) continue;
          const sketch = p.features.get(f.name)!;
          if (f.kind === 'numeric') (sketch as TDigest).add(v as number);
          else if (f.kind === 'categorical') (sketch as CategoricalSketch).add(String(v));
          else {
            const list = v as (number | string)[];
            for (const id of list) (sketch as CategoricalSketch).add(String(id));
            (p.features.get(`${f.name}_length`) as TDigest).add(list.length);
          }
        }
        for (const s of manifest.sketchedOutputs) {
          const v = row.outputs[s.name];
          if (v === undefined) continue;
          const sketch = p.outputs.get(s.name)!;
          if (sketch.kind === 'tdigest') {
            if (Array.isArray(v)) for (const x of v) sketch.add(Number(x));
            else sketch.add(Number(v));
          } else {
            const cat = sketch as CategoricalSketch;
            if (Array.isArray(v)) for (const x of v) cat.add(String(x));
            else cat.add(String(v));
          }
        }
      }
      p.latency.add(Math.max(0, latencyMs));
      p.counters.rows += rows.length;
      if (outcome === 'error') p.counters.errors++;
      else if (outcome === 'cache') p.counters.cacheHits++;
      else if (outcome === 'fallback') p.counters.fallbacks++;
      else if (outcome === 'shadow') p.counters.shadowRows = (p.counters.shadowRows ?? 0) + rows.length;
      if (counters) for (const [k, v] of Object.entries(counters)) p.counters[k] = (p.counters[k] ?? 0) + v;
      o.rows += rows.length;
      totalRows += rows.length;
      if (o.rows >= maxRows) close(`${manifest.name}\u0000${version}`, o);
    },
    tick() {
      let n = 0;
      const t = now();
      for (const [key, o] of [...open]) {
        if (t >= o.end || o.rows >= maxRows) {
          close(key, o);
          n++;
        }
      }
      return n;
    },
    closeAll() {
      for (const [key, o] of [...open]) close(key, o);
    },
    take() {
      for (const x of outbox) x.inFlight = true;
      return outbox.map((x) => x.shipment);
    },
    ack(shipments) {
      for (const s of shipments) {
        const i = outbox.findIndex((x) => same(x.shipment, s));
        if (i >= 0) outbox.splice(i, 1);
      }
    },
    release(shipments) {
      for (const s of shipments) {
        const x = outbox.find((y) => same(y.shipment, s));
        if (x) x.inFlight = false;
      }
    },
    stats: () => ({ open: open.size, outbox: outbox.length, mergedDown, riskyMerges, rows: totalRows }),
  };
}
