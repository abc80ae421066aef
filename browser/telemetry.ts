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
 */
import { createWindowProfiler, type ModelManifest, type Outcome, type WindowProfiler } from '../core/index.ts';
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
}

export interface TelemetryStats {
  sent: number;
  dropped: number;
  failures: number;
  beacons: number;
  outbox: number;
  rows: number;
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
  const stats: TelemetryStats = { sent: 0, dropped: 0, failures: 0, beacons: 0, outbox: 0, rows: 0 };
  let flushing: Promise<void> | undefined;
  let disposed = false;

  const url = () => `${new URL(grant.endpoint, endpoint).href}?token=${encodeURIComponent(grant.token)}`;

  async function renew(): Promise<boolean> {
    try {
      const res = await fetch(`${endpoint}/v1/models/${encodeURIComponent(manifest.name)}/telemetry-token`, {
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

  async function flushNow(): Promise<void> {
    profiler.tick();
    if (grant.expires_at - 30_000 < Date.now()) await renew();
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
    /** Closes the open window and sends everything now (tests, or an app that knows best). */
    async flushAll(): Promise<void> {
      await flushing;
      profiler.closeAll();
      await flush();
    },
    beacon,
    stats: (): TelemetryStats => ({ ...stats, outbox: profiler.stats().outbox }),
    dispose(): void {
      clearInterval(timer);
      dom.removeEventListener('pagehide', onHide);
      disposed = true;
    },
  };
}

export type Reporter = ReturnType<typeof createReporter>;
