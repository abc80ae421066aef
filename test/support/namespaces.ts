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
