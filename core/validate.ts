/**
 * Request validation and encoding against a model manifest, shared by the edge worker and the
 * browser runtime. Nothing malformed reaches the model: every problem becomes a
 * ValidationError naming the field (`instances[3].hour`, `inputs[0].shape`), which the worker
 * turns into a 4xx JSON error.
 *
 * Two request forms:
 * - named features (`/v1/models/{name}/predict`, `{"instances": [{...}, ...]}`), encoded
 *   through the manifest's features: numbers checked for type, finiteness, integrality and
 *   range; categories mapped through the vocabulary (values outside it become index 0 or are
 *   refused, as the manifest says); id lists mapped, the most recent `maxLength` kept;
 * - tensors (`/v2/models/{name}/infer`, the Open Inference Protocol JSON form), checked for
 *   names, datatypes, shapes, element counts, finiteness and index ranges.
 *
 * Both first refuse a body holding a string (value or key) that is not well-formed UTF-16: a
 * lone surrogate has no UTF-8 form, so it could be served but never sketched or stored. The
 * request is refused whole, before anything of it is encoded or observed.
 *
 * Keys a client sends are looked up only as own properties (Object.hasOwn) or in Maps, never
 * through the prototype chain (`"constructor" in {}` is true).
 */
import { isWellFormed } from './bytes.ts';
import type { CategoricalFeature, CategoricalListFeature, FeatureSpec, ModelManifest, TensorDType, TensorSpec } from './manifest.ts';

/** A client error: the HTTP status to answer with, a stable code, and the field at fault. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  constructor(
    message: string,
    readonly field: string,
    readonly status: 400 | 404 | 409 | 413 | 422 = 400,
    readonly code: string = 'invalid_input',
  ) {
    super(message);
  }
}

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

export interface Tensor {
  dtype: TensorDType;
  dims: number[];
  data: TensorData;
}

/** One request, encoded: tensors with `rows` rows, its parameters, and what to sketch. */
export interface EncodedRequest {
  rows: number;
  feeds: Record<string, Tensor>;
  /** Values of the manifest's parameters (e.g. k), defaults filled in. */
  params: Record<string, number>;
  /** Per row, the feature values as received (categories as strings), for drift sketches. */
  observed: Record<string, number | string | (number | string)[]>[];
}

/** Open Inference Protocol datatype names. */
export const V2_DATATYPE: Record<TensorDType, string> = { float32: 'FP32', int64: 'INT64', int32: 'INT32', uint8: 'UINT8', int8: 'INT8' };

const MAX_ID_LIST = 10_000;
/**
 * How a categorical feature's out-of-vocabulary value is sketched, on every path: the v2
 * protocol's clients send index 0 and the value itself never reaches the edge, so /v1 and the
 * baselines sketch it the same way, and a rising share of unknown values is one category's
 * drift whichever route the traffic took.
 */
export const OOV_CATEGORY = '<other>';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const JSON_PATH_KEY = /^[A-Za-z_$][\w$]*$/;

/**
 * Throws ValidationError (400) naming the first string, value or key, in `body` that is not
 * well-formed UTF-16 (a lone surrogate). Iterative, so a deeply nested body cannot overflow the
 * stack; paths are built only for containers, as `instances[0].origin`.
 */
export function assertWellFormedStrings(body: unknown, root = 'body'): void {
  const stack: [unknown, string][] = [[body, root]];
  const at = (path: string, key: string | number) =>
    typeof key === 'number' ? `${path}[${key}]` : JSON_PATH_KEY.test(key) ? (path === root ? key : `${path}.${key}`) : `${path}[${JSON.stringify(key)}]`;
  const refuse = (field: string): never => {
    throw new ValidationError(`${field} is not well-formed Unicode (it holds a lone surrogate)`, field, 400, 'invalid_string');
  };
  while (stack.length) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (!isWellFormed(v)) refuse(path);
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (typeof x === 'string') {
          if (!isWellFormed(x)) refuse(at(path, i));
        } else if (typeof x === 'object' && x !== null) stack.push([x, at(path, i)]);
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const k of Object.keys(v)) {
        // A bad key is named by where it sits, escaped (JSON.stringify writes \ud800).
        if (!isWellFormed(k)) refuse(`${path}[${JSON.stringify(k)}]`);
        stack.push([(v as Record<string, unknown>)[k], at(path, k)]); // proto-safe: k is an own key from Object.keys
      }
    }
  }
}

function vocabularyIndex(f: CategoricalFeature | CategoricalListFeature): Map<string, number> {
  let m = indexCache.get(f);
  if (!m) {
    m = new Map(f.vocabulary.map((v, i) => [v, i + 1]));
    indexCache.set(f, m);
  }
  return m;
}
const indexCache = new WeakMap<object, Map<string, number>>();

function allocate(dtype: TensorDType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint8':
      return new Uint8Array(n);
    case 'int8':
      return new Int8Array(n);
  }
}

function inputSpec(manifest: ModelManifest, name: string): TensorSpec {
  const spec = manifest.inputs.find((i) => i.name === name);
  if (!spec) throw new Error(`manifest ${manifest.name}: feature input ${name} is not a graph input`);
  return spec;
}

/**
 * Encodes `{"instances": [...]}` (already parsed JSON) into tensors. `maxBatch` bounds the
 * number of instances (413 beyond it).
 */
export function encodeInstances(manifest: ModelManifest, body: unknown, { maxBatch = manifest.serving.maxBatch }: { maxBatch?: number } = {}): EncodedRequest {
  if (!isObject(body)) throw new ValidationError('the body must be a JSON object with "instances"', 'body');
  assertWellFormedStrings(body);
  for (const k of Object.keys(body)) {
    if (k !== 'instances' && k !== 'parameters') throw new ValidationError(`unknown field "${k}" (expected "instances" and optional "parameters")`, k);
  }
  const instances = body.instances;
  if (!Array.isArray(instances)) throw new ValidationError('"instances" must be an array of objects', 'instances');
  if (instances.length === 0) throw new ValidationError('"instances" is empty', 'instances');
  if (instances.length > maxBatch)
    throw new ValidationError(`${instances.length} instances exceed the limit of ${maxBatch} per request`, 'instances', 413, 'batch_too_large');
  const rows = instances.length;
  const params = parameters(manifest, body.parameters, instances);

  const names = new Set([...manifest.features.map((f) => f.name), ...(manifest.parameters ?? []).map((p) => p.name)]);
  const observed: EncodedRequest['observed'] = [];
  const columns = new Map<FeatureSpec, (number | number[])[]>(manifest.features.map((f) => [f, []]));
  instances.forEach((inst, i) => {
    const at = `instances[${i}]`;
    if (!isObject(inst)) throw new ValidationError(`${at} must be an object of named features`, at);
    for (const k of Object.keys(inst)) if (!names.has(k)) throw new ValidationError(`${at} has unknown feature "${k}"`, `${at}.${k}`);
    const seen: EncodedRequest['observed'][number] = {};
    for (const f of manifest.features) {
      const field = `${at}.${f.name}`;
      if (!Object.hasOwn(inst, f.name)) throw new ValidationError(`${field} is missing`, field);
      const v = inst[f.name]; // proto-safe: an own property (checked above)
      columns.get(f)!.push(encodeFeature(f, v, field, seen));
    }
    observed.push(seen);
  });

  const feeds: Record<string, Tensor> = {};
  for (const f of manifest.features) {
    const spec = inputSpec(manifest, f.input);
    const col = columns.get(f)!;
    if (f.kind === 'categorical-list') {
      const h = f.maxLength;
      const data = allocate(spec.dtype, rows * h);
      col.forEach((list, r) => (list as number[]).forEach((v, j) => setElement(data, r * h + j, v)));
      feeds[f.input] = { dtype: spec.dtype, dims: [rows, h], data };
    } else if (f.kind === 'numeric' && f.column !== undefined) {
      // One [N, F] tensor holds every column feature of this input (checkManifest: each column fed once).
      const width = spec.shape[1] as number;
      feeds[f.input] ??= { dtype: spec.dtype, dims: [rows, width], data: allocate(spec.dtype, rows * width) };
      const data = feeds[f.input].data;
      col.forEach((v, r) => setElement(data, r * width + f.column!, v as number));
    } else {
      const data = allocate(spec.dtype, rows);
      col.forEach((v, r) => setElement(data, r, v as number));
      feeds[f.input] = { dtype: spec.dtype, dims: [rows], data };
    }
  }
  for (const p of manifest.parameters ?? []) {
    const spec = inputSpec(manifest, p.input);
    const data = allocate(spec.dtype, 1);
    setElement(data, 0, params[p.name]);
    feeds[p.input] = { dtype: spec.dtype, dims: [1], data };
  }
  return { rows, feeds, params, observed };
}

function setElement(data: TensorData, i: number, v: number): void {
  if (data instanceof BigInt64Array) data[i] = BigInt(v);
  else data[i] = v;
}

/** Parameters (e.g. k) from `parameters`, or from the instances (all must agree), or defaults. */
function parameters(manifest: ModelManifest, given: unknown, instances: unknown[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (given !== undefined && !isObject(given)) throw new ValidationError('"parameters" must be an object', 'parameters');
  for (const k of Object.keys((given as object) ?? {})) {
    if (!(manifest.parameters ?? []).some((p) => p.name === k)) throw new ValidationError(`unknown parameter "${k}"`, `parameters.${k}`);
  }
  for (const p of manifest.parameters ?? []) {
    let v: unknown = given !== undefined && Object.hasOwn(given, p.name) ? (given as Record<string, unknown>)[p.name] : undefined; // proto-safe: own property
    let field = `parameters.${p.name}`;
    instances.forEach((inst, i) => {
      if (isObject(inst) && Object.hasOwn(inst, p.name)) {
        if (v !== undefined && inst[p.name] !== v)
          throw new ValidationError(`"${p.name}" must be the same for every instance of a request`, `instances[${i}].${p.name}`);
        v = inst[p.name];
        field = `instances[${i}].${p.name}`;
      }
    });
    if (v === undefined) v = p.default;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new ValidationError(`${field} must be an integer`, field);
    if (v < p.range[0] || v > p.range[1]) throw new ValidationError(`${field} must be in [${p.range[0]}, ${p.range[1]}], got ${v}`, field);
    out[p.name] = v;
  }
  return out;
}

function encodeFeature(f: FeatureSpec, v: unknown, field: string, seen: EncodedRequest['observed'][number]): number | number[] {
  if (f.kind === 'numeric') {
    if (typeof v !== 'number') throw new ValidationError(`${field} must be a number, got ${v === null ? 'null' : typeof v}`, field);
    if (!Number.isFinite(v)) throw new ValidationError(`${field} must be finite`, field);
    if (f.integer && !Number.isInteger(v)) throw new ValidationError(`${field} must be an integer, got ${v}`, field);
    if (v < f.range[0] || v > f.range[1]) throw new ValidationError(`${field} must be in [${f.range[0]}, ${f.range[1]}], got ${v}`, field);
    seen[f.name] = v;
    return v;
  }
  if (f.kind === 'categorical') {
    if (typeof v !== 'string' && typeof v !== 'number') throw new ValidationError(`${field} must be a string`, field);
    const s = String(v);
    if (s.length === 0 || s.length > 256) throw new ValidationError(`${field} must be 1 to 256 characters`, field);
    const idx = vocabularyIndex(f).get(s);
    if (idx === undefined && f.oov === 'reject')
      throw new ValidationError(`${field}: "${s}" is not in the model's vocabulary`, field, 422, 'out_of_vocabulary');
    seen[f.name] = idx === undefined ? OOV_CATEGORY : s;
    return idx ?? 0;
  }
  if (!Array.isArray(v)) throw new ValidationError(`${field} must be an array of ids`, field);
  if (v.length < f.minLength) throw new ValidationError(`${field} needs at least ${f.minLength} id(s)`, field);
  if (v.length > MAX_ID_LIST) throw new ValidationError(`${field} has ${v.length} ids, over the limit of ${MAX_ID_LIST}`, field, 413, 'too_large');
  const index = vocabularyIndex(f);
  const out: number[] = [];
  const raw: (number | string)[] = [];
  v.forEach((id, j) => {
    if (typeof id !== 'number' && typeof id !== 'string') throw new ValidationError(`${field}[${j}] must be an id (number or string)`, `${field}[${j}]`);
    if (typeof id === 'number' && !Number.isFinite(id)) throw new ValidationError(`${field}[${j}] must be finite`, `${field}[${j}]`);
    const s = String(id);
    if (s.length > 64) throw new ValidationError(`${field}[${j}] is too long`, `${field}[${j}]`);
    const idx = index.get(s);
    if (idx === undefined) {
      if (f.oov === 'reject') throw new ValidationError(`${field}[${j}]: ${s} is not in the model's catalogue`, `${field}[${j}]`, 422, 'out_of_vocabulary');
      // Ignored: not fed, and not sketched (the v2 path never sees it either).
      return;
    }
    raw.push(id);
    out.push(idx);
  });
  seen[f.name] = raw;
  // The most recent maxLength ids (the list is oldest first), duplicates kept once.
  const unique = [...new Set(out.reverse())].reverse();
  return unique.slice(-f.maxLength);
}

// ---------------------------------------------------------------------------------------
// Open Inference Protocol (KServe v2) tensors

/** Flattens nested JSON arrays (row-major), checking every leaf with `leaf`. */
function flatten(value: unknown, field: string, out: unknown[], depth = 0): void {
  if (Array.isArray(value)) {
    if (depth > 8) throw new ValidationError(`${field} is nested too deeply`, field);
    for (const v of value) flatten(v, field, out, depth + 1);
  } else out.push(value);
}

/**
 * Validates the `inputs` of a v2 infer request (parsed JSON) against the manifest and returns
 * the feeds and the batch size. Index inputs that feed a vocabulary are checked against its
 * size, so out-of-range indices never reach the model.
 */
export function decodeV2Inputs(
  manifest: ModelManifest,
  body: unknown,
  { maxBatch = manifest.serving.maxBatch }: { maxBatch?: number } = {},
): { rows: number; feeds: Record<string, Tensor>; id?: string; outputs?: string[] } {
  if (!isObject(body)) throw new ValidationError('the body must be a JSON object with "inputs"', 'body');
  assertWellFormedStrings(body);
  for (const k of Object.keys(body)) {
    if (!['id', 'inputs', 'outputs', 'parameters'].includes(k)) throw new ValidationError(`unknown field "${k}"`, k);
  }
  if (body.id !== undefined && (typeof body.id !== 'string' || body.id.length > 256))
    throw new ValidationError('"id" must be a string of at most 256 characters', 'id');
  if (!Array.isArray(body.inputs)) throw new ValidationError('"inputs" must be an array of tensors', 'inputs');
  let outputs: string[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs)) throw new ValidationError('"outputs" must be an array', 'outputs');
    // Each output at most once: a repeated name would repeat its data in the answer (10,000 of
    // them turned a 191 KB request into a 12 MB answer).
    if (body.outputs.length > manifest.outputs.length)
      throw new ValidationError(`"outputs" names at most the model's ${manifest.outputs.length} output(s)`, 'outputs');
    const seen = new Set<string>();
    outputs = body.outputs.map((o, i) => {
      if (!isObject(o) || typeof o.name !== 'string') throw new ValidationError(`outputs[${i}] must be {"name": ...}`, `outputs[${i}]`);
      if (!manifest.outputs.some((m) => m.name === o.name)) throw new ValidationError(`outputs[${i}]: unknown output "${o.name}"`, `outputs[${i}].name`);
      if (seen.has(o.name)) throw new ValidationError(`outputs[${i}]: output "${o.name}" asked for twice`, `outputs[${i}].name`);
      seen.add(o.name);
      return o.name;
    });
  }
  if (body.parameters !== undefined && !isObject(body.parameters)) throw new ValidationError('"parameters" must be an object', 'parameters');
  const byName = new Map<string, Tensor>();
  let rows: number | undefined;
  const dynamic = new Map<string, number>();
  body.inputs.forEach((t, i) => {
    const at = `inputs[${i}]`;
    if (!isObject(t)) throw new ValidationError(`${at} must be a tensor object`, at);
    const name = t.name;
    if (typeof name !== 'string') throw new ValidationError(`${at}.name must be a string`, `${at}.name`);
    const spec = manifest.inputs.find((s) => s.name === name);
    if (!spec) throw new ValidationError(`${at}: unknown input "${name}" (expected ${manifest.inputs.map((s) => s.name).join(', ')})`, `${at}.name`);
    if (byName.has(name)) throw new ValidationError(`${at}: input "${name}" given twice`, `${at}.name`);
    if (t.datatype !== V2_DATATYPE[spec.dtype])
      throw new ValidationError(`${at}: "${name}" must have datatype ${V2_DATATYPE[spec.dtype]}, got ${JSON.stringify(t.datatype)}`, `${at}.datatype`);
    if (!Array.isArray(t.shape) || t.shape.length !== spec.shape.length || !t.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new ValidationError(
        `${at}: "${name}" must have a shape of ${spec.shape.length} non-negative integers like [${spec.shape.join(', ')}]`,
        `${at}.shape`,
      );
    }
    const shape = t.shape as number[];
    spec.shape.forEach((d, k) => {
      if (typeof d === 'number' && shape[k] !== d) throw new ValidationError(`${at}: "${name}" dimension ${k} must be ${d}, got ${shape[k]}`, `${at}.shape`);
      if (typeof d === 'string') {
        const prev = dynamic.get(d);
        if (prev !== undefined && prev !== shape[k])
          throw new ValidationError(`${at}: "${name}" dimension ${k} (${d}) is ${shape[k]} but another input has ${prev}`, `${at}.shape`);
        dynamic.set(d, shape[k]);
      }
    });
    // An id list is at most its feature's maxLength wide (as /v1 allows): a wider one costs the
    // engine, and every request batched with it (padded to the widest), hundreds of ms.
    const list = manifest.features.find((f) => f.input === name && f.kind === 'categorical-list');
    if (list?.kind === 'categorical-list' && shape.length > 1 && shape[shape.length - 1] > list.maxLength) {
      throw new ValidationError(
        `${at}: "${name}" holds lists of at most ${list.maxLength} ids, got ${shape[shape.length - 1]}`,
        `${at}.shape`,
        413,
        'too_large',
      );
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (count > 1_000_000) throw new ValidationError(`${at}: "${name}" has ${count} elements, over the limit`, `${at}.shape`, 413, 'too_large');
    const flat: unknown[] = [];
    flatten(t.data, `${at}.data`, flat);
    if (flat.length !== count)
      throw new ValidationError(`${at}: "${name}" has ${flat.length} elements for shape [${shape.join(', ')}] (${count})`, `${at}.data`);
    const data = allocate(spec.dtype, count);
    const limits = indexLimits(manifest, name);
    const width = Math.max(limits.length, 1);
    for (let k = 0; k < count; k++) {
      const v = flat[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValidationError(`${at}.data[${k}] must be a finite number`, `${at}.data`);
      if (spec.dtype !== 'float32' && !Number.isInteger(v))
        throw new ValidationError(`${at}.data[${k}] must be an integer for ${V2_DATATYPE[spec.dtype]}`, `${at}.data`);
      const limit = limits[width > 1 ? k % width : 0];
      if (limit !== undefined && (v < limit[0] || v > limit[1]))
        throw new ValidationError(`${at}.data[${k}] = ${v} is outside [${limit[0]}, ${limit[1]}] for "${name}"`, `${at}.data`);
      setElement(data, k, v);
    }
    if (spec.shape[0] === 'N') {
      if (rows !== undefined && rows !== shape[0]) throw new ValidationError(`${at}: batch size ${shape[0]} differs from ${rows}`, `${at}.shape`);
      rows = shape[0];
    }
    byName.set(name, { dtype: spec.dtype, dims: shape, data });
  });
  for (const s of manifest.inputs) if (!byName.has(s.name)) throw new ValidationError(`input "${s.name}" is missing`, 'inputs');
  // Every key is a manifest input name (checked above).
  const feeds: Record<string, Tensor> = Object.fromEntries(byName);
  if (rows === undefined || rows === 0) throw new ValidationError('the batch is empty', 'inputs');
  if (rows > maxBatch) throw new ValidationError(`batch of ${rows} exceeds the limit of ${maxBatch}`, 'inputs', 413, 'batch_too_large');
  return { rows, feeds, id: body.id as string | undefined, outputs };
}

/**
 * Valid value ranges of an input: vocabulary indices, numeric feature ranges, parameters; for an
 * [N, F] input one range per column (its features' ranges), for others one (or none).
 */
function indexLimits(manifest: ModelManifest, input: string): ([number, number] | undefined)[] {
  const columns: [number, number][] = [];
  for (const f of manifest.features) {
    if (f.input !== input) continue;
    if (f.kind === 'numeric' && f.column !== undefined) columns[f.column] = f.range;
    else if (f.kind === 'numeric') return [f.range];
    else return [[0, f.vocabulary.length]];
  }
  if (columns.length) return columns;
  const p = (manifest.parameters ?? []).find((x) => x.input === input);
  return [p?.range];
}

/**
 * Feature values per row, read back from tensors (the v2 path, where clients send indices): an
 * index maps to its vocabulary entry (OOV_CATEGORY for 0); padding in id lists is dropped.
 */
export function observedFromFeeds(manifest: ModelManifest, feeds: Record<string, Tensor>, rows: number): EncodedRequest['observed'] {
  const out: EncodedRequest['observed'] = Array.from({ length: rows }, () => ({}));
  for (const f of manifest.features) {
    const t = feeds[f.input];
    if (!t) continue;
    const width = t.dims.slice(1).reduce((a, b) => a * b, 1);
    for (let r = 0; r < rows; r++) {
      if (f.kind === 'numeric') out[r][f.name] = Number(t.data[f.column === undefined ? r : r * width + f.column]);
      else if (f.kind === 'categorical') {
        const i = Number(t.data[r]);
        out[r][f.name] = i > 0 ? f.vocabulary[i - 1] : OOV_CATEGORY;
      } else {
        const ids: string[] = [];
        for (let k = 0; k < width; k++) {
          const i = Number(t.data[r * width + k]);
          if (i > 0) ids.push(f.vocabulary[i - 1]);
        }
        out[r][f.name] = ids;
      }
    }
  }
  return out;
}
