/**
 * Checks a manifest that arrives from outside (a push to the registry, `driftwatch import`'s
 * output after a person edited it) before anything uses it: every field the runtime reads has
 * the type, range and cross-references it needs (a feature's input is a graph input, a column
 * is inside its [N, F] input, every graph input is fed), so that a request can never be encoded
 * against a manifest that cannot encode it. The first problem is a ValidationError naming the
 * field as `features[2].range`.
 */
import {
  cadenceDays,
  EVENT_TIME_READINGS,
  MODEL_TASKS,
  type EventTimeReading,
  type FeatureSpec,
  type ModelManifest,
  type TensorDType,
  type TensorSpec,
} from './manifest.ts';
import { ValidationError } from './validate.ts';
import { MAX_CALIBRATION_POINTS } from './calibration.ts';

const DTYPES: readonly TensorDType[] = ['float32', 'int64', 'int32', 'uint8', 'int8'];
const NAME = /^[\w.:/-]{1,128}$/;
/** Longest vocabulary a feature may have (the sketches and the index Map are sized by it). */
export const MAX_VOCABULARY = 1_000_000;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  constructor(readonly file: string) {}
  fail(field: string, message: string): never {
    throw new ValidationError(`${this.file}: ${field} ${message}`, field, 422, 'invalid_manifest');
  }
  object(v: unknown, field: string): Json {
    if (!isObject(v)) this.fail(field, 'must be an object');
    return v;
  }
  array(v: unknown, field: string, { min = 0, max = 100_000 } = {}): unknown[] {
    if (!Array.isArray(v)) this.fail(field, 'must be an array');
    if (v.length < min || v.length > max) this.fail(field, `must hold ${min} to ${max} items, has ${v.length}`);
    return v;
  }
  string(v: unknown, field: string, max = 4096): string {
    if (typeof v !== 'string' || v.length > max) this.fail(field, `must be a string of at most ${max} characters`);
    return v;
  }
  name(v: unknown, field: string): string {
    if (typeof v !== 'string' || !NAME.test(v)) this.fail(field, "must be 1-128 of letters, digits, '_', '.', ':', '/', '-'");
    return v;
  }
  number(v: unknown, field: string, { min = -Infinity, max = Infinity, integer = false } = {}): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, 'must be a finite number');
    if (integer && !Number.isInteger(v)) this.fail(field, 'must be an integer');
    if (v < min || v > max) this.fail(field, `must be in [${min}, ${max}], got ${v}`);
    return v;
  }
  oneOf<T extends string>(v: unknown, field: string, options: readonly T[]): T {
    if (typeof v !== 'string' || !options.includes(v as T)) this.fail(field, `must be one of ${options.join(', ')}, got ${JSON.stringify(v)?.slice(0, 80)}`);
    return v as T;
  }
  range(v: unknown, field: string): [number, number] {
    const r = this.array(v, field, { min: 2, max: 2 });
    const lo = this.number(r[0], `${field}[0]`);
    const hi = this.number(r[1], `${field}[1]`);
    if (lo > hi) this.fail(field, `is empty: ${lo} > ${hi}`);
    return [lo, hi];
  }
  tensor(v: unknown, field: string): TensorSpec {
    const t = this.object(v, field);
    const shape = this.array(t.shape, `${field}.shape`, { min: 1, max: 8 }).map((d, i) =>
      typeof d === 'string' ? this.name(d, `${field}.shape[${i}]`) : this.number(d, `${field}.shape[${i}]`, { min: 1, max: 1 << 24, integer: true }),
    );
    return {
      name: this.name(t.name, `${field}.name`),
      dtype: this.oneOf(t.dtype, `${field}.dtype`, DTYPES),
      shape,
      ...(typeof t.description === 'string' ? { description: t.description } : {}),
    };
  }
  unique(names: string[], field: string): void {
    const seen = new Set<string>();
    names.forEach((n, i) => {
      if (seen.has(n)) this.fail(`${field}[${i}].name`, `repeats "${n}"`);
      seen.add(n);
    });
  }
  vocabulary(v: unknown, field: string): string[] {
    const list = this.array(v, field, { min: 1, max: MAX_VOCABULARY });
    const seen = new Set<string>();
    return list.map((x, i) => {
      const s = this.string(x, `${field}[${i}]`, 256);
      if (s.length === 0) this.fail(`${field}[${i}]`, 'is empty');
      if (seen.has(s)) this.fail(`${field}[${i}]`, `repeats "${s}"`);
      seen.add(s);
      return s;
    });
  }
}

/**
 * The manifest in `value` (parsed JSON), checked; `expect` names the model and version it must
 * be (a version left out is filled in). Unknown fields are kept (quality, training, notes).
 */
export function checkManifest(value: unknown, expect: { name: string; version: string }, file = 'manifest.json'): ModelManifest {
  const k: Checker = new Checker(file);
  const m = k.object(value, 'manifest');
  if (m.name !== expect.name) k.fail('name', `must be the model's name "${expect.name}", got ${JSON.stringify(m.name)?.slice(0, 80)}`);
  if (m.version !== undefined && m.version !== expect.version)
    k.fail('version', `must be the pushed version "${expect.version}", got ${JSON.stringify(m.version)?.slice(0, 80)}`);
  const task = k.oneOf(m.task, 'task', MODEL_TASKS);
  const inputs = k.array(m.inputs, 'inputs', { min: 1, max: 256 }).map((t, i) => k.tensor(t, `inputs[${i}]`));
  const outputs = k.array(m.outputs, 'outputs', { min: 1, max: 64 }).map((t, i) => k.tensor(t, `outputs[${i}]`));
  k.unique(
    inputs.map((i) => i.name),
    'inputs',
  );
  k.unique(
    outputs.map((o) => o.name),
    'outputs',
  );
  const inputByName = new Map(inputs.map((i) => [i.name, i]));
  const outputNames = new Set(outputs.map((o) => o.name));
  for (const [i, t] of inputs.entries())
    if (t.shape[0] !== 'N' && !(Array.isArray(m.parameters) && m.parameters.some((p) => isObject(p) && p.input === t.name)))
      k.fail(`inputs[${i}].shape`, `must start with the batch dimension "N" (only a parameter's input may not), got [${t.shape.join(', ')}]`);

  const columns = new Map<string, Set<number>>();
  const fed = new Set<string>();
  const features: FeatureSpec[] = k.array(m.features, 'features', { min: 1, max: 4096 }).map((raw, i) => {
    const at = `features[${i}]`;
    const f = k.object(raw, at);
    const name = k.name(f.name, `${at}.name`);
    const input = k.name(f.input, `${at}.input`);
    const spec = inputByName.get(input);
    if (!spec) k.fail(`${at}.input`, `"${input}" is not one of the inputs (${[...inputByName.keys()].join(', ')})`);
    const description = typeof f.description === 'string' ? { description: f.description.slice(0, 1024) } : {};
    const kind = k.oneOf(f.kind, `${at}.kind`, ['numeric', 'categorical', 'categorical-list'] as const);
    if (kind === 'numeric') {
      const range = k.range(f.range, `${at}.range`);
      const out: FeatureSpec = { name, kind, input, range, ...description };
      if (f.integer !== undefined) out.integer = f.integer === true;
      if (f.seasonal !== undefined) out.seasonal = f.seasonal === true;
      if (f.cycle !== undefined) out.cycle = k.oneOf(f.cycle, `${at}.cycle`, ['day', 'week', 'year'] as const);
      if (f.rangeOnly !== undefined) out.rangeOnly = f.rangeOnly === true;
      if (f.eventTime !== undefined) {
        out.eventTime = k.oneOf(f.eventTime, `${at}.eventTime`, Object.keys(EVENT_TIME_READINGS) as EventTimeReading[]);
        const cycle = EVENT_TIME_READINGS[out.eventTime].cycle;
        if (out.cycle !== cycle) k.fail(`${at}.eventTime`, `"${out.eventTime}" is a reading of the ${cycle}: the feature's cycle must be "${cycle}"`);
        if (out.integer !== true) k.fail(`${at}.eventTime`, 'a reading of the event time is an integer feature (integer: true)');
      }
      if ((out.cycle || out.rangeOnly || out.eventTime) && !out.seasonal)
        k.fail(`${at}.seasonal`, 'must be true for a feature with a cycle, rangeOnly or eventTime (they describe calendar features)');
      if (f.column !== undefined) {
        const width = spec.shape.length === 2 && typeof spec.shape[1] === 'number' ? spec.shape[1] : undefined;
        if (width === undefined || spec.dtype !== 'float32')
          k.fail(`${at}.column`, `needs a float32 input of shape [N, F], and "${input}" is [${spec.shape.join(', ')}] ${spec.dtype}`);
        const col = k.number(f.column, `${at}.column`, { min: 0, max: width - 1, integer: true });
        if (!columns.has(input)) columns.set(input, new Set());
        if (columns.get(input)!.has(col)) k.fail(`${at}.column`, `column ${col} of "${input}" is fed by another feature`);
        columns.get(input)!.add(col);
        out.column = col;
      } else {
        if (fed.has(input)) k.fail(`${at}.input`, `"${input}" is fed by another feature`);
        if (spec.shape.length !== 1)
          k.fail(`${at}.input`, `a numeric feature without a column needs an input of shape [N], and "${input}" is [${spec.shape.join(', ')}]`);
      }
      fed.add(input);
      return out;
    }
    if (fed.has(input)) k.fail(`${at}.input`, `"${input}" is fed by another feature`);
    fed.add(input);
    const vocabulary = k.vocabulary(f.vocabulary, `${at}.vocabulary`);
    const sketchCapacity = k.number(f.sketchCapacity ?? 256, `${at}.sketchCapacity`, { min: 1, max: 65_536, integer: true });
    if (spec.dtype === 'float32') k.fail(`${at}.input`, `"${input}" is float32; a ${kind} feature feeds vocabulary indices to an integer input`);
    if (kind === 'categorical') {
      if (spec.shape.length !== 1) k.fail(`${at}.input`, `a categorical feature needs an input of shape [N], and "${input}" is [${spec.shape.join(', ')}]`);
      return { name, kind, input, vocabulary, oov: k.oneOf(f.oov ?? 'unknown', `${at}.oov`, ['unknown', 'reject'] as const), sketchCapacity, ...description };
    }
    if (spec.shape.length !== 2) k.fail(`${at}.input`, `an id list needs an input of shape [N, H], and "${input}" is [${spec.shape.join(', ')}]`);
    const maxLength = k.number(f.maxLength, `${at}.maxLength`, { min: 1, max: 10_000, integer: true });
    const minLength = k.number(f.minLength ?? 0, `${at}.minLength`, { min: 0, max: maxLength, integer: true });
    return {
      name,
      kind,
      input,
      vocabulary,
      oov: k.oneOf(f.oov ?? 'ignore', `${at}.oov`, ['ignore', 'reject'] as const),
      maxLength,
      minLength,
      sketchCapacity,
      ...description,
    };
  });
  k.unique(
    features.map((f) => f.name),
    'features',
  );
  for (const [input, cols] of columns) {
    const width = inputByName.get(input)!.shape[1] as number;
    for (let c = 0; c < width; c++) if (!cols.has(c)) k.fail('features', `no feature fills column ${c} of "${input}" (each of its ${width} columns needs one)`);
  }

  const parameters =
    m.parameters === undefined
      ? undefined
      : k.array(m.parameters, 'parameters', { max: 16 }).map((raw, i) => {
          const at = `parameters[${i}]`;
          const p = k.object(raw, at);
          const input = k.name(p.input, `${at}.input`);
          if (!inputByName.has(input)) k.fail(`${at}.input`, `"${input}" is not one of the inputs`);
          if (fed.has(input)) k.fail(`${at}.input`, `"${input}" is fed by a feature`);
          fed.add(input);
          const range = k.range(p.range, `${at}.range`);
          const dflt = k.number(p.default, `${at}.default`, { min: range[0], max: range[1], integer: true });
          return { name: k.name(p.name, `${at}.name`), input, range, default: dflt };
        });
  for (const i of inputs) if (!fed.has(i.name)) k.fail('inputs', `"${i.name}" is fed by no feature or parameter`);

  const sketchedOutputs = k.array(m.sketchedOutputs ?? [], 'sketchedOutputs', { max: 64 }).map((raw, i) => {
    const o = k.object(raw, `sketchedOutputs[${i}]`);
    const name = k.name(o.name, `sketchedOutputs[${i}].name`);
    if (!outputNames.has(name)) k.fail(`sketchedOutputs[${i}].name`, `"${name}" is not one of the outputs`);
    const kind = k.oneOf(o.kind, `sketchedOutputs[${i}].kind`, ['numeric', 'categorical'] as const);
    return {
      name,
      kind,
      ...(o.sketchCapacity !== undefined
        ? { sketchCapacity: k.number(o.sketchCapacity, `sketchedOutputs[${i}].sketchCapacity`, { min: 1, max: 65_536, integer: true }) }
        : {}),
    };
  });
  const serving = k.object(m.serving ?? {}, 'serving');
  let ownership: ModelManifest['ownership'];
  if (m.ownership !== undefined) {
    const o = k.object(m.ownership, 'ownership');
    ownership = {};
    if (o.owner !== undefined) {
      const owner = k.string(o.owner, 'ownership.owner', 200);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
      if (/[\u0000-\u001f\u007f]/.test(owner)) k.fail('ownership.owner', 'must not hold control characters');
      ownership.owner = owner;
    }
    if (o.trained !== undefined) {
      const t = k.array(o.trained, 'ownership.trained', { min: 2, max: 2 }).map((d, i) => {
        if (typeof d !== 'string' || !/^\d{4}-\d\d-\d\d/.test(d) || !Number.isFinite(Date.parse(d))) k.fail(`ownership.trained[${i}]`, 'must be an ISO date');
        return d as string;
      });
      if (Date.parse(t[0]) > Date.parse(t[1])) k.fail('ownership.trained', `is empty: ${t[0]} is after ${t[1]}`);
      ownership.trained = [t[0], t[1]];
    }
    if (o.retrain_every !== undefined) {
      if (typeof o.retrain_every !== 'string' || cadenceDays(o.retrain_every) === undefined)
        k.fail(
          'ownership.retrain_every',
          `must be an ISO 8601 duration of days, weeks, months or years (P30D, P6W, P3M, P1Y), got ${JSON.stringify(o.retrain_every)?.slice(0, 40)}`,
        );
      ownership.retrain_every = o.retrain_every;
    }
  }
  let calibration: ModelManifest['calibration'];
  if (m.calibration !== undefined) {
    const c = k.object(m.calibration, 'calibration');
    const points = k.array(c.points, 'calibration.points', { min: 1, max: MAX_CALIBRATION_POINTS }).map((p, i): [number, number] => {
      const [x, y] = k.array(p, `calibration.points[${i}]`, { min: 2, max: 2 });
      return [k.number(x, `calibration.points[${i}][0]`), k.number(y, `calibration.points[${i}][1]`, { min: 0, max: 1 })];
    });
    points.forEach(([x, y], i) => {
      if (i > 0 && !(x > points[i - 1][0] && y >= points[i - 1][1]))
        k.fail(`calibration.points[${i}]`, 'scores must increase and probabilities must not decrease from one point to the next');
    });
    calibration = {
      method: k.oneOf(c.method, 'calibration.method', ['isotonic'] as const),
      rows: k.number(c.rows, 'calibration.rows', { min: 1, integer: true }),
      source: c.source === undefined ? '' : k.string(c.source, 'calibration.source', 400),
      points,
    };
  }
  return {
    ...(m as object),
    name: expect.name,
    version: expect.version,
    description: m.description === undefined ? '' : k.string(m.description, 'description'),
    opset: m.opset === undefined ? 0 : k.number(m.opset, 'opset', { min: 0, max: 1000, integer: true }),
    task,
    inputs,
    outputs,
    features,
    sketchedOutputs,
    ...(parameters ? { parameters } : {}),
    serve: k.oneOf(m.serve ?? 'float32', 'serve', ['int8', 'float32'] as const),
    ...(ownership ? { ownership } : {}),
    ...(calibration ? { calibration } : {}),
    serving: {
      defaultLatencyBudgetMs: k.number(serving.defaultLatencyBudgetMs ?? 50, 'serving.defaultLatencyBudgetMs', { min: 1, max: 60_000 }),
      maxBatch: k.number(serving.maxBatch ?? 64, 'serving.maxBatch', { min: 1, max: 4096, integer: true }),
    },
  } as ModelManifest;
}
