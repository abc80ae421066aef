/**
 * What the drift aggregator judges a model by, read from the registry: a version's manifest and
 * training baseline (the version last promoted; else the default, first pushed, one). Cached per
 * object for a minute, so an evaluation reads the registry at most once a minute, and a model
 * pushed meanwhile is known within one.
 */
import type { AggregatorModels } from '../aggregator.ts';
import { memoryBucket, Registry, type Bucket, type SeedVersion } from './registry.ts';

const TTL_MS = 60_000;

/** `seed`: what the registry is seeded with if the aggregator is the first to start (as the edge would). */
export function registryModels(bucket: Bucket | undefined, seed: readonly SeedVersion[] = []): AggregatorModels {
  const registry = new Registry(bucket ?? memoryBucket());
  const cache = new Map<string, { until: number; value: Awaited<ReturnType<AggregatorModels>> }>();
  let seeded: Promise<unknown> | undefined;
  return async (name, version) => {
    const key = `${name}\u0000${version ?? ''}`;
    const hit = cache.get(key);
    if (hit && hit.until > Date.now()) return hit.value;
    seeded ??= registry.seed(seed).catch((err) => console.error('registry: seeding failed', err));
    await seeded;
    const all = await registry.versionsOf(name);
    const first = version === undefined ? all[0] : all.find((r) => r.version === version);
    const value = first
      ? { manifest: await registry.manifest(first), baseline: (await registry.file(first, 'baseline.dwsm')) ?? new Uint8Array(), pushedAt: first.pushed_at }
      : undefined;
    cache.set(key, { until: Date.now() + (value ? TTL_MS : 5000), value });
    return value;
  };
}
