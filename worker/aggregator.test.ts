// The aggregator Durable Object with its real SQLite storage (Workers vitest pool).
import { env } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSummary, type TDigest } from '../core/index.ts';
import { summaryBytes } from '../test/support/summaries.ts';
import type { DriftAggregator } from './aggregator.ts';

const ns = (env as unknown as { AGGREGATOR: DurableObjectNamespace<DriftAggregator> }).AGGREGATOR;

const summary = summaryBytes;

describe('DriftAggregator', () => {
  it('stores, merges by minute, and deduplicates retried summaries by (source, sequence)', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-test-1'));
    const t = Date.UTC(2001, 3, 1, 12, 0, 0);
    expect((await agg.ingest('flight-delay', summary('flight-delay', 'a', 1, t, [1, 2, 3]))).status).toBe('stored');
    expect((await agg.ingest('flight-delay', summary('flight-delay', 'a', 1, t, [1, 2, 3]))).status).toBe('duplicate');
    expect((await agg.ingest('flight-delay', summary('flight-delay', 'b', 1, t + 20_000, [4, 5]))).status).toBe('stored');
    expect((await agg.ingest('flight-delay', summary('flight-delay', 'a', 2, t + 60_000, [6]))).status).toBe('stored');
    const minutes = await agg.minutes();
    expect(minutes.map((m) => m.minute)).toEqual([t, t + 60_000]);
    const w = decodeSummary((await agg.window(t, t + 120_000))!);
    expect(w.counters.rows).toBe(6);
    expect((w.features.get('distance') as TDigest).count).toBe(6);
    const counters = await agg.counters();
    expect(counters).toMatchObject({ stored: 3, duplicates: 1, rows: 6 });
  });

  it('refuses hostile bytes and summaries of another model with a reason, and stores nothing for them', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-test-2'));
    const t = Date.UTC(2001, 3, 1, 12, 0, 0);
    await agg.ingest('flight-delay', summary('flight-delay', 'a', 1, t, [1, 2]));
    const before = await agg.window(0, 2 ** 52);
    const good = summary('flight-delay', 'a', 2, t, [3]);
    const flipped = good.slice();
    flipped[20] ^= 0xff;
    for (const bad of [new Uint8Array(0), new Uint8Array(5000).fill(7), good.slice(0, 40), flipped]) {
      const r = await agg.ingest('flight-delay', bad);
      expect(r.status).toBe('rejected');
      expect(r.reason!.length).toBeGreaterThan(5);
    }
    const other = await agg.ingest('flight-delay', summary('movielens-topk', 'a', 3, t, [1]));
    expect(other).toMatchObject({ status: 'rejected' });
    expect(other.reason).toMatch(/movielens-topk/);
    expect(await agg.window(0, 2 ** 52)).toEqual(before);
    expect((await agg.counters()).rejected).toBe(5);
  });

  it('concurrent ingest from many sources loses nothing and counts nothing twice', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-test-3'));
    const t = Date.UTC(2001, 4, 1, 0, 0, 0);
    const sends = [];
    for (let s = 0; s < 20; s++)
      for (let q = 1; q <= 5; q++)
        for (let retry = 0; retry < 2; retry++) sends.push(agg.ingest('flight-delay', summary('flight-delay', `src-${s}`, q, t + q * 1000, [s, q])));
    const results = await Promise.all(sends);
    expect(results.filter((r) => r.status === 'stored')).toHaveLength(100);
    expect(results.filter((r) => r.status === 'duplicate')).toHaveLength(100);
    const w = decodeSummary((await agg.window(t, t + MINUTE))!);
    expect(w.counters.rows).toBe(200);
  });
});

const MINUTE = 60_000;

describe('DriftAggregator under hostile input', () => {
  it('fuzzed bytes, mutated summaries and huge bodies are refused with a reason or stored whole, never throw, and never change what was stored before', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-fuzz'));
    const t = Date.UTC(2001, 3, 2, 12, 0, 0);
    expect((await agg.ingest('flight-delay', summary('flight-delay', 'base', 1, t, [1, 2, 3]))).status).toBe('stored');
    const good = summary('flight-delay', 'fuzz', 1, t + 60_000, [4, 5]);
    let seq = 2;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 2000 }),
          // One to four bytes of a valid summary changed (the CRC then fails, or, where it is the CRC that changed, the body no longer matches).
          fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((edits) => {
            const b = good.slice();
            for (const [i, x] of edits) b[i] ^= x;
            return b;
          }),
          fc.nat({ max: good.length - 1 }).map((n) => good.slice(0, n)),
        ),
        async (bytes) => {
          const before = await agg.window(t, t + 60_000);
          const r = await agg.ingest('flight-delay', bytes);
          expect(r.status).toBe('rejected');
          expect(r.reason!.length).toBeGreaterThan(5);
          expect(await agg.window(t, t + 60_000)).toEqual(before);
        },
      ),
      { numRuns: 60 },
    );
    const huge = new Uint8Array(8 << 20);
    huge.set(good);
    const r = await agg.ingest('flight-delay', huge);
    expect(r).toMatchObject({ status: 'rejected' });
    expect(r.reason).toMatch(/bytes, more than/);
    // A valid one still goes in afterwards.
    expect((await agg.ingest('flight-delay', summary('flight-delay', 'fuzz', ++seq, t + 60_000, [4, 5]))).status).toBe('stored');
    expect(decodeSummary((await agg.window(0, 2 ** 52))!).counters.rows).toBe(5);
  });
});

describe('DriftAggregator.ingestMany', () => {
  it('gives each summary exactly what ingest would, in order, in one call; a bad one in the middle harms none', async () => {
    const agg = ns.get(ns.idFromName('flight-delay-many'));
    const t = Date.UTC(2001, 3, 3, 12, 0, 0);
    const a = summary('flight-delay', 'a', 1, t, [1, 2]);
    const results = await agg.ingestMany('flight-delay', [
      a,
      new Uint8Array([1, 2, 3]),
      summary('flight-delay', 'b', 1, t + 1000, [3]),
      a,
      summary('movielens-topk', 'c', 1, t, [1]),
    ]);
    expect(results.map((r) => r.status)).toEqual(['stored', 'rejected', 'stored', 'duplicate', 'rejected']);
    expect(results[4].reason).toMatch(/movielens-topk/);
    expect(decodeSummary((await agg.window(t, t + MINUTE))!).counters.rows).toBe(3);
    expect(await agg.counters()).toMatchObject({ stored: 2, duplicates: 1, rejected: 2, rows: 3 });
    const tooMany = await agg.ingestMany(
      'flight-delay',
      Array.from({ length: 257 }, (_, i) => summary('flight-delay', 'd', i + 1, t, [1])),
    );
    expect(tooMany.every((r) => r.status === 'rejected' && /at most 256/.test(r.reason!))).toBe(true);
    expect(decodeSummary((await agg.window(t, t + MINUTE))!).counters.rows).toBe(3);
  });
});
