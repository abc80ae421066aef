/**
 * The browser's drift reporter: the same window profiles as the edge (core's window profiler:
 * features as the manifest names them, outputs, latency, outcome counters) plus a `backend`
 * feature (which step of the ladder answered each row), sent to POST /v1/telemetry with the
 * short-lived token the artifact descriptor carried. Only sketches leave the device, never the
 * inputs themselves.
 *
 * - Flushed every `intervalMs` and on `pagehide` (navigator.sendBeacon, which outlives the
 *   page; it cannot carry headers, so the token travels in the query).
 * - Offline or refused: summaries wait in the profiler's bounded outbox (`maxOutbox`); past it
 *   the oldest are merged (rows kept, time resolution lost), so memory stays bounded however
 *   long the page is offline.
 * - A 4xx other than 401/429 means the summary will never be accepted: it is dropped and
 *   counted. 401 renews the token and retries on the next flush; the renewal shows the previous
 *   token, which is how the edge keeps this page's source id (a client never names its own).
 * - A window closes at `maxRows` rows (default 1000, the edge's rows per source per minute).
 * - Predictions made on the device: what the join of late labels needs of each (core's
 *   joinValue: its id, version, value, a ranking's served ids; never the inputs) waits in a queue
 *   of at most `maxPredictions` (oldest dropped, counted) and goes with each flush, before the
 *   summaries, to POST /v1/telemetry/predictions with the same token, in calls of at most
 *   `predictionsPerCall` records (halved after a 413); by sendBeacon on pagehide. Kept on 401 (the
 *   token renews), 429, 5xx and offline; dropped and counted on any other 4xx.
 */
import { createWindowProfiler, type BrowserPrediction, type ModelManifest, type Outcome, type WindowProfiler } from '../core/index.ts';
import { dom, ownBuffer } from './dom.ts';
import type { BackendName, TelemetryGrant } from './protocol.ts';

export const BACKEND_FEATURE = 'backend';

export interface TelemetryOptions {
  /** Flush period, ms. Default 10000. */
  intervalMs?: number;
  /** Window length, ms (a window closes at the flush after it ends). Default = intervalMs. */
  windowMs?: number;
  /** Summaries kept while offline. Default 8. */
  maxOutbox?: number;
  /** Rows per window. Default 1000 (what the edge accepts from one source a minute). */
  maxRows?: number;
  /** Prediction records kept until sent. Default 2000. */
  maxPredictions?: number;
  /** Prediction records a call, at most. Default 250 (the edge takes up to 500, and its source's 1000 a minute). */
  predictionsPerCall?: number;
}

export interface TelemetryStats {
  sent: number;
  dropped: number;
  failures: number;
  beacons: number;
  outbox: number;
  rows: number;
  /** Prediction records: waiting, accepted by the edge, dropped (refused, or past maxPredictions). */
  predictions: { queued: number; sent: number; dropped: number };
  lastError?: string;
}

/** The manifest the profiler sketches against: the model's features plus `backend`. */
export function withBackendFeature(m: ModelManifest): ModelManifest {
  return { ...m, features: [...m.features, { name: BACKEND_FEATURE, kind: 'categorical', input: '', vocabulary: [], oov: 'unknown', sketchCapacity: 8 }] };
}

export function createReporter({
  endpoint,
  manifest,
  grant: initial,
  options = {},
}: {
  endpoint: string;
  manifest: ModelManifest;
  grant: TelemetryGrant;
  options?: TelemetryOptions;
}) {
  const intervalMs = options.intervalMs ?? 10_000;
  let grant = initial;
  const profiled = withBackendFeature(manifest);
  const profiler: WindowProfiler = createWindowProfiler({
    source: { kind: 'browser', id: grant.source },
    windowMs: options.windowMs ?? intervalMs,
    maxRows: options.maxRows ?? 1000,
    maxOutbox: options.maxOutbox ?? 8,
  });
  const stats: TelemetryStats = { sent: 0, dropped: 0, failures: 0, beacons: 0, outbox: 0, rows: 0, predictions: { queued: 0, sent: 0, dropped: 0 } };
  const maxPredictions = options.maxPredictions ?? 2000;
  let perCall = options.predictionsPerCall ?? 250;
  /** Prediction records not yet accepted by the edge, oldest first. */
  const predictions: BrowserPrediction[] = [];
  let flushing: Promise<void> | undefined;
  let disposed = false;

  const url = (path = '') => `${new URL(grant.endpoint + path, endpoint).href}?token=${encodeURIComponent(grant.token)}`;
  const utf8 = new TextEncoder();
  /**
   * A call's worth of records from the front of the queue: at most `perCall`, and at most about
   * `maxBytes` of JSON (a fetch: 200 KB, the edge takes 256 KiB; a beacon: 32 KB, as browsers
   * hold every page's beacons in flight to 64 KiB together).
   */
  const nextCall = (maxBytes: number): BrowserPrediction[] => {
    let bytes = 0;
    let n = 0;
    while (n < Math.min(perCall, predictions.length)) {
      const size = JSON.stringify(predictions[n]).length + 1;
      if (n > 0 && bytes + size > maxBytes) break;
      bytes += size;
      n++;
    }
    return predictions.slice(0, n);
  };
  /** Takes these records out of the queue (by identity: the queue may have moved meanwhile). */
  const drop = (batch: BrowserPrediction[]) => {
    const gone = new Set(batch);
    let w = 0;
    for (const r of predictions) if (!gone.has(r)) predictions[w++] = r;
    predictions.length = w;
  };
  let shipping: Promise<void> | undefined;
  /** One shipment at a time. */
  const ship = (): Promise<void> => (shipping ??= shipPredictions().finally(() => (shipping = undefined)));

  async function renew(): Promise<boolean> {
    try {
      // The version this page runs: the renewed token speaks for it, as the first did.
      const res = await fetch(`${endpoint}/v1/models/${encodeURIComponent(manifest.name)}/telemetry-token?version=${encodeURIComponent(manifest.version)}`, {
        cache: 'no-store',
        headers: { authorization: `Bearer ${grant.token}` },
      });
      if (!res.ok) return false;
      grant = (await res.json()) as TelemetryGrant;
      return true;
    } catch {
      return false;
    }
  }

  /** Sends the queued prediction records, a call at a time; stops (keeping them) at the first that cannot go now. */
  async function shipPredictions(): Promise<void> {
    for (let calls = 0; predictions.length > 0 && calls < 64; calls++) {
      const batch = nextCall(200_000);
      let res: Response;
      try {
        // Not keepalive (its bodies are limited to 64 KiB): the page going away beacons instead.
        res = await fetch(url('/predictions'), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ predictions: batch }),
        });
      } catch (err) {
        stats.failures++;
        stats.lastError = (err as Error).message;
        return;
      }
      if (res.ok) {
        await res.body?.cancel();
        stats.predictions.sent += batch.length;
        drop(batch);
        continue;
      }
      stats.lastError = `${res.status} ${await res.text().catch(() => '')}`.slice(0, 200);
      if (res.status === 413 && batch.length > 1) {
        perCall = Math.max(1, Math.floor(batch.length / 2));
        continue;
      }
      if (res.status === 401 || res.status === 429 || res.status >= 500) {
        stats.failures++;
        if (res.status === 401) await renew();
        return;
      }
      // Refused for what it is: it never will be accepted.
      stats.predictions.dropped += batch.length;
      drop(batch);
    }
  }

  async function flushNow(): Promise<void> {
    profiler.tick();
    if (grant.expires_at - 30_000 < Date.now()) await renew();
    await ship();
    const batch = profiler.take();
    for (let i = 0; i < batch.length; i++) {
      const s = batch[i];
      let res: Response;
      try {
        res = await fetch(url(), { method: 'POST', body: ownBuffer(s.bytes), keepalive: true } as RequestInit);
      } catch (err) {
        // Offline: nothing after this one goes either; they wait in the outbox.
        stats.failures++;
        stats.lastError = (err as Error).message;
        profiler.release(batch.slice(i));
        break;
      }
      if (res.ok) {
        stats.sent++;
        profiler.ack([s]);
      } else if (res.status === 401 || res.status === 429 || res.status >= 500) {
        stats.failures++;
        stats.lastError = `${res.status} ${await res.text().catch(() => '')}`.slice(0, 200);
        if (res.status === 401) await renew();
        profiler.release(batch.slice(i));
        break;
      } else {
        stats.dropped++;
        stats.lastError = `${res.status} ${await res.text().catch(() => '')}`.slice(0, 200);
        profiler.ack([s]);
      }
    }
  }

  const flush = (): Promise<void> => (flushing ??= flushNow().finally(() => (flushing = undefined)));

  /** Last chance (the page is going away): everything open is closed and beaconed. */
  function beacon(): void {
    if (disposed) return;
    profiler.closeAll();
    const batch = profiler.take();
    const sent = batch.filter((s) => dom.navigator.sendBeacon(url(), ownBuffer(s.bytes)));
    stats.beacons += sent.length;
    profiler.ack(sent);
    profiler.release(batch.filter((s) => !sent.includes(s)));
    // The records too (JSON bytes: a beacon carries no headers, the edge reads JSON whatever the type).
    for (let calls = 0; predictions.length > 0 && calls < 16; calls++) {
      const call = nextCall(32_000);
      if (!dom.navigator.sendBeacon(url('/predictions'), ownBuffer(utf8.encode(JSON.stringify({ predictions: call }))))) break;
      stats.beacons++;
      stats.predictions.sent += call.length;
      drop(call);
    }
  }

  const timer = setInterval(() => void flush(), intervalMs);
  const onHide = () => beacon();
  dom.addEventListener('pagehide', onHide);

  return {
    observe(
      rows: { features: Record<string, number | string | (number | string)[]>; outputs: Record<string, number | number[]> }[],
      backend: BackendName | 'cache',
      latencyMs: number,
      outcome: Outcome,
    ): void {
      profiler.observe(
        profiled,
        manifest.version,
        rows.map((r) => ({ features: { ...r.features, [BACKEND_FEATURE]: backend }, outputs: r.outputs })),
        latencyMs,
        outcome,
      );
      stats.rows += rows.length;
    },
    /** Queues what the join needs of predictions made on the device (sent with the next flush). */
    record(records: BrowserPrediction[]): void {
      predictions.push(...records);
      const over = predictions.length - maxPredictions;
      if (over > 0) {
        drop(predictions.slice(0, over));
        stats.predictions.dropped += over;
      }
    },
    /** Sends the queued prediction records now (before feedback on them, so that the edge knows their ids). */
    async flushPredictions(): Promise<void> {
      if (grant.expires_at - 30_000 < Date.now()) await renew();
      await ship();
    },
    /** A valid token (renewed when it is about to expire): feedback on this page's predictions is sent with it. */
    async token(): Promise<string> {
      if (grant.expires_at - 30_000 < Date.now()) await renew();
      return grant.token;
    },
    /** After a 401 elsewhere (feedback): a fresh token, or false. */
    renew,
    /** Closes the open window and sends everything now (tests, or an app that knows best). */
    async flushAll(): Promise<void> {
      await flushing;
      profiler.closeAll();
      await flush();
    },
    beacon,
    stats: (): TelemetryStats => ({ ...stats, outbox: profiler.stats().outbox, predictions: { ...stats.predictions, queued: predictions.length } }),
    dispose(): void {
      clearInterval(timer);
      dom.removeEventListener('pagehide', onHide);
      disposed = true;
    },
  };
}

export type Reporter = ReturnType<typeof createReporter>;
