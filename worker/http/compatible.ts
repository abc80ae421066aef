/** What the routing and rollout routes share: whether a table's versions can serve the same requests. */
import { encodingInterface, ValidationError, type RoutingTable } from '../../core/index.ts';
import { runtimeOf, type AppContext } from './context.ts';

/**
 * Requests are encoded by the default version's manifest: every version a table serves or shadows
 * must take the same tensors for them (a new vocabulary or feature set is a model of its own).
 * Throws a 422 naming the table's field otherwise.
 */
export function compatible(c: AppContext, table: RoutingTable): void {
  const e = c.var.engine;
  const byVersion = runtimeOf(c).versions.get(e.manifest.name)!;
  const want = encodingInterface(e.manifest);
  const named: [string, string][] = [
    ['stable', table.stable],
    ...(table.canary ? [['canary.version', table.canary.version] as [string, string]] : []),
    ...(table.shadows ?? []).map((s, i) => [`shadows.${i}.version`, s.version] as [string, string]),
  ];
  for (const [field, v] of named)
    if (encodingInterface(byVersion.get(v)!.manifest) !== want)
      throw new ValidationError(
        `version ${v} encodes requests differently from the default version ${e.manifest.version} (its inputs, features or vocabularies differ); push it as a model of its own`,
        field,
        422,
        'incompatible_version',
      );
}
