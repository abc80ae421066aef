/**
 * Operators: pushing and deleting versions of a model in the registry (worker/registry/).
 *
 * - `PUT /v1/models/{name}/versions/{version}`: the version's files as multipart/form-data parts
 *   named after them (model.onnx, manifest.json, baseline.dwsm, golden.json, optionally
 *   model.float32.onnx), at most MODEL_MAX_BYTES together. The version is checked on this
 *   edge's own engine (registry/check.ts) and committed only when every check passes: 201 with
 *   the commit record and what the checks measured; 200 when the same bytes are there already;
 *   409 when other bytes are; a 4xx naming the file and the problem otherwise, the registry as it
 *   was. Pushing never changes what serves (the routing table does); a model's first version is
 *   its default, and serves at once.
 * - `DELETE /v1/models/{name}/versions/{version}`: refused (409) while the routing table uses the
 *   version (stable, canary or shadow; with no table, the default version).
 * - `GET /v1/models/{name}/versions/{version}`: the commit record and the manifest.
 * - `GET /v1/models/{name}/versions/{version}/files/{file}` (operator token): a file of the
 *   version, checked against its sha256 (as KServe's storage initializer pulls a storageUri: the
 *   hosted fallback, origin/, pulls pushed versions this way).
 */
import { bodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { ValidationError } from '../../core/index.ts';
import { edgeConfig } from '../config.ts';
import { runtimeOf, type AppEnv } from '../http/context.ts';
import { errorJson } from '../http/errors.ts';
import { operatorAuth } from '../http/middleware.ts';
import { changeReason } from '../http/request.ts';
import { answer, bearer, document, documentedApp, operatorErrors, z } from '../http/openapi.ts';
import { checkedManifest, checkVersion } from '../registry/check.ts';
import { checkNames, VERSION_FILES, type VersionFile } from '../registry/registry.ts';
import { backgroundOf } from '../serving/background.ts';

export const registry = documentedApp();

const VersionParams = z.object({
  name: z.string().openapi({ param: { name: 'name', in: 'path' }, description: 'the model (a new name creates it)', example: 'iris-mlp' }),
  version: z.string().openapi({ param: { name: 'version', in: 'path' }, description: 'the version, immutable once pushed', example: '2' }),
});
const FILE = z.string().openapi({ format: 'binary' });
document(registry, {
  method: 'put',
  path: '/v1/models/{name}/versions/{version}',
  summary:
    'Pushes a version: checked on the edge engine, then committed to the registry (it serves only when it is the first version or the routing table names it)',
  security: bearer,
  request: {
    params: VersionParams,
    body: {
      required: true,
      content: {
        'multipart/form-data': {
          schema: z.object({ 'model.onnx': FILE, 'manifest.json': FILE, 'baseline.dwsm': FILE, 'golden.json': FILE, 'model.float32.onnx': FILE.optional() }),
        },
      },
    },
  },
  responses: {
    200: answer('the same bytes were there already: the existing commit record'),
    201: answer('committed: the commit record and what the checks measured on the edge engine'),
    409: answer('the version exists with other bytes'),
    413: answer('the push is over MODEL_MAX_BYTES'),
    422: answer('a file that does not pass its check (named in `field`)'),
    ...operatorErrors,
  },
});
document(registry, {
  method: 'delete',
  path: '/v1/models/{name}/versions/{version}',
  summary: 'Deletes a version the routing table does not use',
  security: bearer,
  request: { params: VersionParams },
  responses: { 200: answer('deleted'), 409: answer('the routing table uses the version'), ...operatorErrors },
});

/** The push's size limit (MODEL_MAX_BYTES), counted on the bytes as they arrive: a lying content-length does not pass it. */
const pushLimit = createMiddleware<AppEnv>(async (c, next) => {
  const maxSize = edgeConfig(c.env).modelMaxBytes;
  return bodyLimit({
    maxSize,
    onError: (cc) => errorJson(cc, 413, 'body_too_large', `the push exceeds MODEL_MAX_BYTES (${maxSize} bytes)`, { field: 'body' }),
  })(c, next);
});

const utf8 = new TextEncoder();

registry.put('/v1/models/:name/versions/:version', operatorAuth(), pushLimit, async (c) => {
  const name = c.req.param('name');
  const version = c.req.param('version');
  checkNames(name, version);
  const why = changeReason(c);
  if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('multipart/form-data'))
    throw new ValidationError(
      "the body must be multipart/form-data, one part per file named after it ('model.onnx', 'manifest.json', ...)",
      'content-type',
      400,
      'invalid_body',
    );
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch (e) {
    // The size limit answers from inside the read: let its response through.
    if (e instanceof Error && e.name === 'BodyLimitError') throw e;
    throw new ValidationError(`the body is not valid multipart/form-data (${e instanceof Error ? e.message : e})`, 'body', 400, 'invalid_body');
  }
  const files: Partial<Record<VersionFile, Uint8Array>> = {};
  for (const [part, value] of form.entries()) {
    if (!(VERSION_FILES as readonly string[]).includes(part))
      throw new ValidationError(
        `unknown part ${JSON.stringify(part.slice(0, 80))} (a version's files are ${VERSION_FILES.join(', ')})`,
        part.slice(0, 80),
        400,
        'unknown_file',
      );
    const f = part as VersionFile;
    if (files[f]) throw new ValidationError(`${f} is given twice`, f, 400, 'invalid_body');
    files[f] = typeof value === 'string' ? utf8.encode(value) : new Uint8Array(await value.arrayBuffer());
  }
  const r = runtimeOf(c);
  const existing = await r.registry.record(name, version);
  // Different bytes under an existing version are refused (409) before anything is loaded; the
  // same ones answer the existing record.
  const report = existing ? undefined : await checkVersion(name, version, files, c.var.edge.options.createSession);
  // The registry keeps the checked manifest (defaults filled in), so a re-push is compared in that form.
  const raw = files['manifest.json'];
  const manifest = report?.manifest ?? (raw ? checkedManifest(name, version, raw) : undefined);
  if (manifest) files['manifest.json'] = utf8.encode(JSON.stringify(manifest, null, 1));
  const { record, created } = await r.registry.commit(name, version, files, manifest ?? (await r.registry.manifest(existing!)));
  if (created && c.env.ROUTING)
    await c.env.ROUTING.get(c.env.ROUTING.idFromName(name)).record({
      model: name,
      who: c.var.operator,
      action: 'push',
      version,
      sha256: record.files['model.onnx']?.sha256,
      why,
    });
  await c.var.edge.refresh(c.env);
  // A model's first version serves at once: warm it now rather than on its first request.
  const e = r.engines.get(name);
  if (created && e?.manifest.version === version) c.var.edge.warm(backgroundOf(c), () => [e]);
  return c.json(
    {
      model: name,
      version,
      created,
      record,
      ...(report ? { checks: { load_ms: Math.round(report.load_ms * 10) / 10, golden_rows: report.golden_rows, agreement: report.agreement } } : {}),
      serving: r.engines.get(name)?.manifest.version === version ? 'default version: serves now' : 'not serving until the routing table names it',
    },
    created ? 201 : 200,
  );
});

registry.delete('/v1/models/:name/versions/:version', operatorAuth(), async (c) => {
  const name = c.req.param('name');
  const version = c.req.param('version');
  checkNames(name, version);
  const why = changeReason(c);
  const r = runtimeOf(c);
  const versions = await r.registry.versionsOf(name);
  if (!versions.some((x) => x.version === version))
    throw new ValidationError(`model "${name}" has no version ${JSON.stringify(version)} in the registry`, 'version', 404, 'version_not_found');
  const store = c.env.ROUTING?.get(c.env.ROUTING.idFromName(name));
  const stored = store ? (await store.getTable()).table : null;
  const table = stored ?? { stable: versions[0].version };
  // A running or paused rollout will serve its candidate and return to its stable: both are in use.
  const rollout = await store?.rollout();
  const rolling = rollout && (rollout.status === 'running' || rollout.status === 'paused') ? [rollout.candidate, rollout.base.stable] : [];
  const used = [table.stable, table.canary?.version, ...(table.shadows ?? []).map((s) => s.version), ...rolling];
  if (used.includes(version))
    throw new ValidationError(
      `version ${version} of "${name}" is in ${rolling.includes(version) ? `rollout ${rollout!.id} (${rollout!.status})` : `the routing table (${stored ? 'stable, canary or shadow' : 'the default version, with no table stored'})`}; route traffic away from it first`,
      'version',
      409,
      'version_in_use',
    );
  await r.registry.remove(name, version);
  if (c.env.ROUTING) await c.env.ROUTING.get(c.env.ROUTING.idFromName(name)).record({ model: name, who: c.var.operator, action: 'delete', version, why });
  await c.var.edge.refresh(c.env);
  return c.json({ model: name, version, deleted: true });
});

registry.get('/v1/models/:name/versions/:version', async (c) => {
  const name = c.req.param('name');
  const version = c.req.param('version');
  const r = runtimeOf(c);
  const rec = r.records.get(name)?.get(version);
  const e = r.versions.get(name)?.get(version);
  if (!rec || !e) throw new ValidationError(`model ${JSON.stringify(name)} has no version ${JSON.stringify(version)}`, 'version', 404, 'version_not_found');
  return c.json({ ...rec, engine: e.status(), manifest: e.manifest });
});

registry.get('/v1/models/:name/versions/:version/files/:file', operatorAuth(), async (c) => {
  const name = c.req.param('name');
  const version = c.req.param('version');
  const file = c.req.param('file');
  const r = runtimeOf(c);
  const rec = r.records.get(name)?.get(version);
  if (!rec) throw new ValidationError(`model ${JSON.stringify(name)} has no version ${JSON.stringify(version)}`, 'version', 404, 'version_not_found');
  if (!(VERSION_FILES as readonly string[]).includes(file) || !rec.files[file as VersionFile])
    throw new ValidationError(
      `${name}/${version} has no file ${JSON.stringify(file.slice(0, 80))} (it has ${Object.keys(rec.files).join(', ')})`,
      'file',
      404,
      'file_not_found',
    );
  const bytes = (await r.registry.file(rec, file as VersionFile))!;
  return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
    'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
    'cache-control': 'private, max-age=31536000, immutable',
    'x-sha256': rec.files[file as VersionFile]!.sha256,
  });
});
