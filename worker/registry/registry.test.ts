// The registry over the real (emulated) R2 bucket: commit records read once each, a version
// deleted and committed again read anew, files checked against their record.
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VERSIONS, DEFAULTS } from '../../models/defaults.ts';
import { isolatedBucket } from '../../test/support/namespaces.ts';
import type { Env } from '../env.ts';
import { Registry, RegistryIntegrityError, sha256Hex, type Bucket } from './registry.ts';

/** A bucket of a test's own that counts the objects read. */
function counted(): { bucket: Bucket; gets: () => number } {
  const real = isolatedBucket((env as Env).MODELS!, crypto.randomUUID());
  let gets = 0;
  const bucket: Bucket = {
    get: (k) => {
      gets++;
      return real.get(k);
    },
    put: (k, v) => real.put(k, v),
    delete: (k) => real.delete(k),
    list: (o) => real.list(o),
  };
  return { bucket, gets: () => gets };
}

const flight = DEFAULTS['flight-delay'];
const manifest = (version: string) => ({ ...flight.manifest, version });
const files = (model: ArrayBuffer, version: string) => ({
  'model.onnx': new Uint8Array(model),
  'manifest.json': new TextEncoder().encode(JSON.stringify(manifest(version))),
  'baseline.dwsm': new Uint8Array(flight.baseline),
  'golden.json': new TextEncoder().encode(JSON.stringify(flight.golden)),
});

describe('the registry', () => {
  it('reads each commit record once; a version deleted and committed again is read anew', async () => {
    const { bucket, gets } = counted();
    const registry = new Registry(bucket);
    expect(await registry.seed(DEFAULT_VERSIONS)).toBe(4);
    expect(await registry.seed(DEFAULT_VERSIONS)).toBe(0);
    const before = gets();
    const first = await registry.catalog();
    expect([...first.keys()].sort()).toEqual(['flight-delay', 'movielens-topk']);
    expect(first.get('flight-delay')!.map((r) => r.version)).toEqual(['1', '1-float32']);
    expect(gets() - before).toBe(4);
    const again = gets();
    await registry.catalog();
    expect(gets() - again).toBe(0);

    await registry.commit('flight-delay', '2', files(flight.artifact, '2'), manifest('2'));
    const third = gets();
    const withTwo = await registry.catalog();
    expect(gets() - third).toBe(1);
    expect(withTwo.get('flight-delay')!.map((r) => r.version)).toEqual(['1', '1-float32', '2']);

    // Deleted, then committed again with other bytes: the new record, not a remembered one.
    expect(await registry.remove('flight-delay', '2')).toBe(true);
    expect((await registry.catalog()).get('flight-delay')!.map((r) => r.version)).toEqual(['1', '1-float32']);
    await registry.commit('flight-delay', '2', files(flight.float32, '2'), manifest('2'));
    const reread = (await registry.catalog()).get('flight-delay')!.find((r) => r.version === '2')!;
    expect(reread.files['model.onnx']!.sha256).toBe(await sha256Hex(flight.float32));
    expect(await sha256Hex((await registry.file(reread, 'model.onnx'))!)).toBe(await sha256Hex(flight.float32));
  });

  it('refuses bytes that are not the record says, and other bytes under an existing version', async () => {
    const { bucket } = counted();
    const registry = new Registry(bucket);
    const { record } = await registry.commit('m1', 'a', files(flight.artifact, 'a'), manifest('a'));
    await bucket.put('m1/a/baseline.dwsm', new Uint8Array([1, 2, 3]));
    await expect(registry.file(record, 'baseline.dwsm')).rejects.toThrow(RegistryIntegrityError);
    await expect(registry.commit('m1', 'a', files(flight.float32, 'a'), manifest('a'))).rejects.toThrow(/exists with other bytes \(model.onnx differs\)/);
    expect((await registry.commit('m1', 'a', files(flight.artifact, 'a'), manifest('a'))).created).toBe(false);
  });
});
