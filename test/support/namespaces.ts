/**
 * Durable Object namespaces of a test's own, for workerd tests. The workers pool keeps one
 * storage per test file, and the app addresses each model's RoutingStore and DriftAggregator by
 * the model's name, so two tests of a file would share (and depend on) one object. This wraps a
 * namespace so that the name `flight-delay` addresses the object `flight-delay|<tag>`: the app
 * and the objects run unchanged (the aggregator is told its model in every call, not by its name),
 * and each tag starts empty.
 */
export function isolatedNamespace<N extends DurableObjectNamespace<any>>(ns: N, tag: string): N {
  const named = (name: string) => `${name}|${tag}`;
  // Typed loosely inside: the namespace's generic stub types are too deep to rebuild here.
  const real = ns as unknown as { idFromName(name: string): DurableObjectId; get(id: DurableObjectId, options?: unknown): unknown };
  return new Proxy(ns, {
    get(target, prop) {
      if (prop === 'idFromName') return (name: string) => real.idFromName(named(name));
      if (prop === 'getByName') return (name: string, options?: unknown) => real.get(real.idFromName(named(name)), options);
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * An R2 bucket of a test's own: every key lives under `<tag>/` in the real (emulated) bucket, and
 * lists see only those, with the prefix taken off. The registry runs unchanged over it.
 */
export function isolatedBucket(bucket: R2Bucket, tag: string): R2Bucket {
  const at = (k: string) => `${tag}/${k}`;
  const wrapped = {
    get: (key: string) => bucket.get(at(key)),
    head: (key: string) => bucket.head(at(key)),
    put: (key: string, value: Parameters<R2Bucket['put']>[1], options?: R2PutOptions) => bucket.put(at(key), value, options),
    delete: (keys: string | string[]) => bucket.delete(Array.isArray(keys) ? keys.map(at) : at(keys)),
    async list(options: R2ListOptions = {}) {
      const page = await bucket.list({ ...options, prefix: at(options.prefix ?? '') });
      return {
        ...page,
        objects: page.objects.map((o) => ({ key: o.key.slice(tag.length + 1), size: o.size, etag: o.etag })),
        delimitedPrefixes: page.delimitedPrefixes.map((p) => p.slice(tag.length + 1)),
      };
    },
  };
  return wrapped as unknown as R2Bucket;
}
