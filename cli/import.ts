/**
 * `driftwatch import`: from an ONNX file and reference rows (CSV, JSON lines or Parquet) to a
 * model folder the registry takes (`driftwatch push`): model.onnx, manifest.json, baseline.dwsm,
 * golden.json, and with `--quantize int8` model.float32.onnx beside the int8 build.
 *
 * - The graph is read with onnx-proto: inputs (initializers left out, as old exporters list
 *   them), outputs, element types, shapes. Non-tensor outputs (a ZipMap) are refused with the fix.
 * - Features come from the reference columns in graph order: one FLOAT `[N, F]` input takes the
 *   first F columns that are not the label (as skl2onnx writes a pipeline); inputs of shape `[N]`
 *   take the column of their name. Numeric columns get a range (the reference's, widened four
 *   spans each side and kept non-negative when the data is: a guard against garbage, not a drift
 *   test) and `integer` when every value is; text columns become categorical with their
 *   vocabulary, most frequent first.
 * - The task is what the outputs say (a label and class probabilities: multiclass; one float:
 *   regression), or `--task`.
 * - onnxruntime-node runs every reference row: the baseline profile sketches the features and the
 *   served build's outputs, exactly as the edge sketches live traffic; golden rows are spread over
 *   the reference; with `--label`, the quality on the reference rows goes into the manifest, and
 *   a binary classifier's score calibration is fitted on them (isotonic; core/calibration.ts):
 *   the edge's estimated AUC before labels reads scores through it.
 * - `--quantize int8` stores every MatMul/Gemm weight matrix as int8 with a scale per output
 *   column (DequantizeLinear in front), checks the build against the float32 one on every
 *   reference row, and refuses when they disagree (labels on under 98% of rows, or values off by
 *   more than 2% of their spread).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import {
  CategoricalSketch,
  calibrator,
  checkManifest,
  createProfile,
  encodeInstances,
  encodeSummary,
  expectedCalibrationError,
  fitIsotonic,
  MODEL_TASKS,
  SLOT_CLOCKS,
  slotOf,
  TDigest,
  validSlotMinutes,
  type FeatureSpec,
  type Profile,
  type ModelManifest,
  type ModelTask,
  type Tensor,
  type TensorDType,
  type TensorSpec,
  EVENT_TIME_READINGS,
  type EventTimeReading,
} from '../core/index.ts';
import { CliError } from './errors.ts';

const { onnx } = onnxProto;

/** ONNX TensorProto element types the runtime serves. */
const ELEM: Record<number, TensorDType> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64' };
const ELEM_NAMES: Record<number, string> = { 8: 'string', 9: 'bool', 10: 'float16', 11: 'double', 16: 'bfloat16' };
/** Golden rows written (spread over the reference). */
const GOLDEN_ROWS = 32;
/** Rows run per onnxruntime-node call. */
const BATCH = 512;
const FEATURE_NAME = /^[\w.:/-]{1,128}$/;
/**
 * Sessions run the graph as written (constant folding and the like, no kernel fusion): at
 * 'extended' and above the CPU execution provider turns DequantizeLinear + MatMul into a
 * dynamically quantized MatMul, which moved iris's class probabilities by 7.5e-3 against the
 * graph's own semantics, far past any golden tolerance; onnxruntime-web computes the latter.
 */
const SESSION: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: 'basic' };

export interface ImportOptions {
  model: string;
  name: string;
  reference: string;
  label?: string;
  task?: string;
  version: string;
  quantize?: string;
  /** Who owns the model (a contact), and how often it should be retrained (P30D, P6W, P3M, P1Y). */
  owner?: string;
  retrainEvery?: string;
  /**
   * A reference column holding each row's time (ISO date or ms since the epoch), not a feature:
   * the baseline then carries time slots (the time-matched reference, core/clock.ts) of
   * `slotMinutes` (default 60), and features derived from it are marked as calendar features.
   */
  timestamp?: string;
  slotMinutes?: number;
  /** The clock of the --timestamp column, as TELEMETRY_CLOCK names it: `wall` (when rows arrived, the default) or `event` (the rows' own time, sent as x-event-time). */
  slotClock?: string;
  out: string;
}

export interface ImportReport {
  out: string;
  manifest: ModelManifest;
  rows: number;
  files: Record<string, number>;
  quality: Record<string, Record<string, number>>;
  quantization?: { agreement: number; measure: string; weights: number; bytes: { float32: number; int8: number } };
  /** A binary classifier's calibration: its knots, and the expected calibration error on the reference rows before and after. */
  calibration?: { points: number; ece: { before: number; after: number } };
  /** Features marked as calendar ones (seasonal, with their cycle), and why. */
  calendar: { feature: string; cycle: 'day' | 'week' | 'year'; because: string; eventTime?: EventTimeReading }[];
  /** The baseline's time slots (with --timestamp): their length and how many the reference filled. */
  slots?: { minutes: number; filled: number };
  lines: string[];
}

type Row = Record<string, number | string>;

// --- Reading ------------------------------------------------------------------------------------

interface Graph {
  opset: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

function tensorSpecs(values: onnxProto.onnx.IValueInfoProto[], skip: Set<string>, what: 'input' | 'output'): TensorSpec[] {
  return values
    .filter((v) => !skip.has(v.name ?? ''))
    .map((v) => {
      const t = v.type?.tensorType;
      if (!t) {
        const kind = v.type?.sequenceType ? 'a sequence' : v.type?.mapType ? 'a map' : 'not a tensor';
        throw new CliError(
          `${what} "${v.name}" is ${kind}, which the runtime does not serve (a classifier exported with a ZipMap? export it with zipmap=False: class probabilities as one FLOAT [N, C] tensor)`,
          1,
        );
      }
      const dtype = ELEM[t.elemType ?? 0];
      if (!dtype)
        throw new CliError(
          `${what} "${v.name}" holds ${ELEM_NAMES[t.elemType ?? 0] ?? `element type ${t.elemType}`}; the runtime serves float32, int64, int32, uint8 and int8 tensors`,
          1,
        );
      const dims = (t.shape?.dim ?? []).map((d, i) => {
        if (i === 0) return 'N';
        if (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0) return Number(d.dimValue);
        return d.dimParam || `D${i}`;
      });
      return { name: v.name ?? '', dtype, shape: dims.length ? dims : ['N'] };
    });
}

export function readGraph(bytes: Uint8Array, path: string): Graph {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new CliError(`${path} is not an ONNX model (${(e as Error).message})`, 1);
  }
  const g = model.graph;
  if (!g?.node?.length) throw new CliError(`${path} is not an ONNX model (it has no graph)`, 1);
  const inits = new Set((g.initializer ?? []).map((i) => i.name ?? ''));
  const opset = Number((model.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0);
  return { opset, inputs: tensorSpecs(g.input ?? [], inits, 'input'), outputs: tensorSpecs(g.output ?? [], new Set(), 'output') };
}

/** A CSV cell: a number when it reads as one, else the text. */
const cell = (s: string): number | string => (s.trim() !== '' && Number.isFinite(Number(s)) ? Number(s) : s);

function parseCsv(text: string, path: string): { columns: string[]; rows: Row[] } {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      field = '';
      if (record.length > 1 || record[0] !== '') records.push(record);
      record = [];
    } else field += ch;
  }
  if (field !== '' || record.length) records.push([...record, field]);
  const [header, ...body] = records;
  if (!header || body.length === 0) throw new CliError(`${path} has no rows under its header`, 1);
  const rows = body.map((r, i) => {
    if (r.length !== header.length) throw new CliError(`${path} line ${i + 2} has ${r.length} fields; the header has ${header.length}`, 1);
    return Object.fromEntries(header.map((h, j) => [h, cell(r[j])])) as Row;
  });
  return { columns: header, rows };
}

export async function readReference(path: string): Promise<{ columns: string[]; rows: Row[] }> {
  if (!/\.(csv|jsonl|ndjson|parquet)$/.test(path)) throw new CliError(`the reference rows must be .csv, .jsonl or .parquet, got ${path}`, 2);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CliError(`cannot read the reference rows ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 2);
  }
  if (path.endsWith('.csv')) return parseCsv(bytes.toString('utf8'), path);
  if (path.endsWith('.jsonl') || path.endsWith('.ndjson')) {
    const rows = bytes
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l, i) => {
        try {
          const v = JSON.parse(l);
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
          return v as Row;
        } catch (e) {
          throw new CliError(`${path} line ${i + 1} is not a JSON object (${(e as Error).message})`, 1);
        }
      });
    if (!rows.length) throw new CliError(`${path} has no rows`, 1);
    return { columns: Object.keys(rows[0]), rows };
  }
  if (path.endsWith('.parquet')) {
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const rows = (await parquetReadObjects({ file, compressors })) as Record<string, unknown>[];
    if (!rows.length) throw new CliError(`${path} has no rows`, 1);
    const norm = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : (v as number | string)])) as Row);
    return { columns: Object.keys(rows[0]), rows: norm };
  }
  throw new CliError(`the reference rows must be .csv, .jsonl or .parquet, got ${path}`, 2);
}

// --- Inferring the manifest ---------------------------------------------------------------------

function numericFeature(name: string, input: string, values: (number | string)[], column?: number): FeatureSpec {
  const nums = values.map((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new CliError(`column "${name}" row ${i + 1} is ${JSON.stringify(v)}, not a number`, 1);
    return v;
  });
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of nums) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const span = hi - lo || Math.abs(hi) || 1;
  const integer = nums.every(Number.isInteger);
  let range: [number, number] = [lo - 4 * span, hi + 4 * span];
  if (lo >= 0) range[0] = 0;
  if (integer) range = [Math.floor(range[0]), Math.ceil(range[1])];
  const round = (x: number) => Number(x.toPrecision(6));
  return {
    name,
    kind: 'numeric',
    input,
    range: [round(range[0]), round(range[1])],
    ...(integer ? { integer: true } : {}),
    ...(column !== undefined ? { column } : {}),
  };
}

function featuresFor(graph: Graph, columns: string[], rows: Row[], label: string | undefined, timestamp: string | undefined): FeatureSpec[] {
  const usable = columns.filter((c) => c !== label && c !== timestamp);
  for (const c of usable)
    if (!FEATURE_NAME.test(c))
      throw new CliError(`column "${c}" cannot be a feature name (letters, digits, '_', '.', ':', '/', '-'); rename it in the reference file`, 1);
  const col = (c: string) => rows.map((r) => r[c]);
  if (graph.inputs.length === 1 && graph.inputs[0].shape.length === 2) {
    const input = graph.inputs[0];
    const width = input.shape[1];
    if (input.dtype !== 'float32' || typeof width !== 'number')
      throw new CliError(`input "${input.name}" is ${input.dtype} [${input.shape.join(', ')}]; one [N, F] input must be float32 with a fixed F`, 1);
    if (usable.length < width)
      throw new CliError(`input "${input.name}" takes ${width} columns; the reference has ${usable.length} besides the label (${usable.join(', ')})`, 1);
    if (usable.length > width)
      throw new CliError(
        `input "${input.name}" takes ${width} columns; the reference has ${usable.length} besides the label (${usable.join(', ')}): drop the extra ones, or name the label with --label`,
        1,
      );
    return usable.map((c, i) => numericFeature(c, input.name, col(c), i));
  }
  return graph.inputs.map((input) => {
    if (input.shape.length !== 1)
      throw new CliError(
        `input "${input.name}" has shape [${input.shape.join(', ')}]; import handles one [N] input per feature or one float32 [N, F] input`,
        1,
      );
    if (!columns.includes(input.name))
      throw new CliError(`input "${input.name}" has no column of that name in the reference (columns: ${columns.join(', ')})`, 1);
    const values = col(input.name);
    if (values.every((v) => typeof v === 'number')) return numericFeature(input.name, input.name, values);
    if (input.dtype === 'float32') throw new CliError(`column "${input.name}" holds text, and input "${input.name}" is float32`, 1);
    const counts = new Map<string, number>();
    for (const v of values) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
    const vocabulary = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([v]) => v);
    return {
      name: input.name,
      kind: 'categorical',
      input: input.name,
      vocabulary,
      oov: 'unknown',
      sketchCapacity: Math.min(1024, Math.max(16, vocabulary.length)),
    };
  });
}

// --- Calendar features -----------------------------------------------------------------------------

/** Each calendar cycle's readings of a time (UTC, core/manifest.ts EVENT_TIME_READINGS), the names that say it, and its values. */
const CYCLES: { cycle: 'day' | 'week' | 'year'; readings: EventTimeReading[]; names: RegExp; range: [number, number] }[] = [
  { cycle: 'day', readings: ['hour'], names: /^(hour|hours|hour_of_day|hourofday|hr|dep_hour|departure_hour)$/i, range: [0, 23] },
  // Sunday 0 (JavaScript, flight-delay) or Monday 0 (pandas dayofweek), or 1-7 (ISO).
  { cycle: 'week', readings: ['weekday', 'weekday_monday0', 'iso_weekday'], names: /^(dow|day_of_week|dayofweek|weekday|week_day|wday)$/i, range: [0, 7] },
  { cycle: 'year', readings: ['month', 'month0'], names: /^(month|mon|month_of_year)$/i, range: [0, 12] },
];

const CYCLE_WORDS = { day: 'daily', week: 'weekly', year: 'yearly' } as const;

/** A row's time from the timestamp column: ISO date (naive ones read as UTC) or ms since the epoch. */
function rowTime(v: number | string, column: string, row: number): number {
  const t = typeof v === 'number' ? v : Date.parse(/(?:Z|[+-]\d\d:?\d\d)$/.test(v) || !/T|\d \d/.test(v) ? v : `${v}Z`);
  if (!Number.isFinite(t)) throw new CliError(`--timestamp ${column}: row ${row + 1} is ${JSON.stringify(v)}, not an ISO date or ms since the epoch`, 1);
  return t;
}

/**
 * Marks the numeric integer features that follow the calendar as `seasonal` with their cycle:
 * those equal, on every reference row, to the hour, weekday or month of the --timestamp column
 * (derived from it), and those named like one with values in its range. A derived one on the
 * event clock (the timestamp is what x-event-time will carry) also gets its reading as
 * `eventTime`: live windows on that clock can then hold only their own span's values. Returns
 * what it marked and why (import says so).
 */
function markCalendar(
  features: FeatureSpec[],
  rows: Row[],
  times: number[] | undefined,
  timestamp: string | undefined,
  eventClock: boolean,
): ImportReport['calendar'] {
  const marked: ImportReport['calendar'] = [];
  const dates = times?.map((t) => new Date(t));
  for (const f of features) {
    if (f.kind !== 'numeric' || !f.integer) continue;
    const values = rows.map((r) => r[f.name] as number);
    for (const c of CYCLES) {
      let because: string | undefined;
      const derived = dates && c.readings.find((k) => values.every((v, i) => v === EVENT_TIME_READINGS[k].of(dates[i])));
      if (derived) because = `derived from --timestamp ${timestamp}`;
      if (!because && c.names.test(f.name) && values.every((v) => v >= c.range[0] && v <= c.range[1])) because = 'named like one';
      if (!because) continue;
      f.seasonal = true;
      f.cycle = c.cycle;
      if (derived && eventClock) f.eventTime = derived;
      marked.push({ feature: f.name, cycle: c.cycle, because, ...(f.eventTime ? { eventTime: f.eventTime } : {}) });
      break;
    }
  }
  return marked;
}

function inferTask(graph: Graph, given: string | undefined): ModelTask {
  if (given !== undefined) {
    if (!(MODEL_TASKS as readonly string[]).includes(given)) throw new CliError(`--task must be one of ${MODEL_TASKS.join(', ')}, got ${given}`, 2);
    return given as ModelTask;
  }
  const floats = graph.outputs.filter((o) => o.dtype === 'float32');
  const labels = graph.outputs.filter((o) => o.dtype !== 'float32' && o.shape.length === 1);
  if (labels.length === 1 && floats.length === 1 && floats[0].shape.length === 2) return 'multiclass-classification';
  if (graph.outputs.length === 1 && floats.length === 1 && (floats[0].shape.length === 1 || floats[0].shape[1] === 1)) return 'regression';
  throw new CliError(
    `cannot tell the task from the outputs (${graph.outputs.map((o) => `${o.name} ${o.dtype} [${o.shape.join(', ')}]`).join('; ')}); name it with --task (${MODEL_TASKS.join(', ')})`,
    2,
  );
}

function sketchedOutputs(task: ModelTask, outputs: TensorSpec[]): ModelManifest['sketchedOutputs'] {
  if (task === 'multiclass-classification') {
    const label = outputs.find((o) => o.dtype !== 'float32' && o.shape.length === 1);
    return label ? [{ name: label.name, kind: 'categorical', sketchCapacity: 256 }] : [];
  }
  const first = outputs.find((o) => o.dtype === 'float32');
  return first ? [{ name: first.name, kind: 'numeric' }] : [];
}

// --- Running ------------------------------------------------------------------------------------

type Outputs = Record<string, number | number[]>[];

async function predictAll(session: ort.InferenceSession, manifest: ModelManifest, instances: Row[]): Promise<Outputs> {
  const out: Outputs = [];
  for (let i = 0; i < instances.length; i += BATCH) {
    const chunk = instances.slice(i, i + BATCH);
    const enc = encodeInstances(manifest, { instances: chunk }, { maxBatch: BATCH });
    const feeds = Object.fromEntries(Object.entries(enc.feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, t.dims)]));
    const res = await session.run(feeds);
    for (let r = 0; r < chunk.length; r++) {
      const row: Record<string, number | number[]> = {};
      for (const o of manifest.outputs) {
        const t = res[o.name] as unknown as { dims: readonly number[]; data: ArrayLike<number | bigint> };
        const size = t.dims.slice(1).reduce((a, b) => a * b, 1);
        const vals = Array.from({ length: size }, (_, k) => Number(t.data[r * size + k]));
        row[o.name] = t.dims.length === 1 ? vals[0] : vals;
      }
      out.push(row);
    }
  }
  return out;
}

/** A binary classifier's score per row: its first float output (the value, or the first of a [N, 1] row). */
function scoresOf(manifest: ModelManifest, preds: Outputs): number[] {
  const out = manifest.outputs.find((o) => o.dtype === 'float32')?.name;
  if (out === undefined) throw new CliError('a binary classifier needs a FLOAT output holding the probability of the positive class', 1);
  return preds.map((p) => Number(Array.isArray(p[out]) ? (p[out] as number[])[0] : p[out]));
}

/** A binary label column's values as 0/1, or a CliError naming the first row that is not one. */
function binaryLabels(truth: (number | string)[], column: string): number[] {
  return truth.map((t, i) => {
    if (t === 1 || t === '1' || t === 'true') return 1;
    if (t === 0 || t === '0' || t === 'false') return 0;
    throw new CliError(`--label ${column}: row ${i + 1} is ${JSON.stringify(t)}; a binary classifier's labels must be 0/1 or true/false`, 1);
  });
}

/** The exact AUC of scores against 0/1 labels (ties count one half), by ranks. */
function exactAuc(scores: number[], labels: number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++)
      if (labels[idx[k]]) {
        pos++;
        rankSum += rank;
      }
    i = j + 1;
  }
  const neg = idx.length - pos;
  return pos && neg ? (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) : Number.NaN;
}

function quality(task: ModelTask, manifest: ModelManifest, preds: Outputs, truth: (number | string)[], column: string): Record<string, number> {
  if (task === 'binary-classification') {
    const p = scoresOf(manifest, preds);
    const y = binaryLabels(truth, column);
    const clip = (x: number) => Math.min(1 - 1e-15, Math.max(1e-15, x));
    return {
      auc: exactAuc(p, y),
      accuracy: p.filter((x, i) => (x >= 0.5 ? 1 : 0) === y[i]).length / p.length,
      log_loss: -p.reduce((a, x, i) => a + (y[i] ? Math.log(clip(x)) : Math.log(1 - clip(x))), 0) / p.length,
    };
  }
  if (task === 'multiclass-classification') {
    const label = manifest.outputs.find((o) => o.dtype !== 'float32' && o.shape.length === 1)?.name;
    const score = manifest.outputs[0].name;
    let right = 0;
    preds.forEach((p, i) => {
      const guess = label ? Number(p[label]) : Number(p[score]) >= 0.5 ? 1 : 0;
      if (String(guess) === String(truth[i])) right++;
    });
    return { accuracy: right / preds.length };
  }
  const out = manifest.outputs.find((o) => o.dtype === 'float32')!.name;
  const y = truth.map(Number);
  const yhat = preds.map((p) => (Array.isArray(p[out]) ? (p[out] as number[])[0] : (p[out] as number)));
  const mean = y.reduce((a, b) => a + b, 0) / y.length;
  let se = 0;
  let ae = 0;
  let st = 0;
  y.forEach((v, i) => {
    se += (v - yhat[i]) ** 2;
    ae += Math.abs(v - yhat[i]);
    st += (v - mean) ** 2;
  });
  return { rmse: Math.sqrt(se / y.length), mae: ae / y.length, r2: 1 - se / st };
}

// --- Quantizing ---------------------------------------------------------------------------------

/** Float values of an initializer (raw little-endian bytes or float_data). */
function floats(t: onnxProto.onnx.ITensorProto): Float32Array {
  if (t.rawData?.length) {
    const raw = t.rawData;
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float32Array.from(t.floatData ?? []);
}

/** Weight-only int8: each MatMul/Gemm B matrix as int8 with a float scale per output column, dequantized in the graph. */
export function quantizeWeights(bytes: Uint8Array): { bytes: Uint8Array; weights: number } {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph!;
  const opset = Number((model.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0);
  const byName = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const targets = new Set<string>();
  for (const n of g.node ?? []) {
    const b = n.input?.[1];
    const transB = (n.attribute ?? []).find((a) => a.name === 'transB')?.i;
    if ((n.opType === 'MatMul' || (n.opType === 'Gemm' && !Number(transB ?? 0))) && b && byName.get(b)?.dataType === 1 && byName.get(b)?.dims?.length === 2)
      targets.add(b);
  }
  const nodes: onnxProto.onnx.INodeProto[] = [];
  for (const name of targets) {
    const t = byName.get(name)!;
    const [rows, cols] = (t.dims ?? []).map(Number);
    const w = floats(t);
    const perColumn = opset >= 13;
    const scales = new Float32Array(perColumn ? cols : 1);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) scales[perColumn ? c : 0] = Math.max(scales[perColumn ? c : 0], Math.abs(w[r * cols + c]));
    for (let i = 0; i < scales.length; i++) scales[i] = scales[i] > 0 ? scales[i] / 127 : 1;
    const q = new Int8Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) q[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c] / scales[perColumn ? c : 0])));
    g.initializer = (g.initializer ?? []).filter((x) => x.name !== name);
    g.input = (g.input ?? []).filter((x) => x.name !== name);
    const shape = perColumn ? [cols] : [];
    g.initializer.push(
      onnx.TensorProto.create({ name: `${name}_quantized`, dataType: 3, dims: [rows, cols], rawData: new Uint8Array(q.buffer) }),
      onnx.TensorProto.create({ name: `${name}_scale`, dataType: 1, dims: shape, rawData: new Uint8Array(scales.buffer) }),
      onnx.TensorProto.create({ name: `${name}_zero_point`, dataType: 3, dims: shape, rawData: new Uint8Array(scales.length) }),
    );
    nodes.push(
      onnx.NodeProto.create({
        opType: 'DequantizeLinear',
        name: `${name}_dequantize`,
        input: [`${name}_quantized`, `${name}_scale`, `${name}_zero_point`],
        output: [name],
        attribute: perColumn ? [onnx.AttributeProto.create({ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 })] : [],
      }),
    );
  }
  g.node = [...nodes, ...(g.node ?? [])];
  return { bytes: onnx.ModelProto.encode(model).finish(), weights: targets.size };
}

/** How far the int8 build is from the float32 one on the reference rows: label agreement, or the largest value gap over the values' spread. */
function agreement(task: ModelTask, manifest: ModelManifest, a: Outputs, b: Outputs): { value: number; measure: string; ok: boolean } {
  if (task === 'multiclass-classification') {
    const label = manifest.outputs.find((o) => o.dtype !== 'float32' && o.shape.length === 1)!.name;
    const same = a.filter((p, i) => Number(p[label]) === Number(b[i][label])).length / a.length;
    return { value: same, measure: 'labels agree', ok: same >= 0.98 };
  }
  const out = manifest.outputs.find((o) => o.dtype === 'float32')!.name;
  const flat = (o: Outputs) => o.flatMap((p) => (Array.isArray(p[out]) ? (p[out] as number[]) : [p[out] as number]));
  const x = flat(a);
  const y = flat(b);
  const spread = Math.max(...x) - Math.min(...x) || 1;
  const worst = Math.max(...x.map((v, i) => Math.abs(v - y[i]))) / spread;
  return { value: worst, measure: 'largest gap / spread of the float32 values', ok: worst <= 0.02 };
}

// --- The command --------------------------------------------------------------------------------

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

export async function importModel(o: ImportOptions, progress: (line: string) => void = () => {}): Promise<ImportReport> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(o.model));
  } catch (e) {
    throw new CliError(`cannot read ${o.model} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 2);
  }
  if (o.quantize !== undefined && o.quantize !== 'int8') throw new CliError(`--quantize takes int8, got ${o.quantize}`, 2);
  const graph = readGraph(bytes, o.model);
  progress(
    `read ${o.model}: ${graph.inputs.map((i) => `${i.name} ${i.dtype} [${i.shape.join(', ')}]`).join(', ')} -> ${graph.outputs.map((x) => `${x.name} ${x.dtype} [${x.shape.join(', ')}]`).join(', ')}`,
  );
  const { columns, rows } = await readReference(o.reference);
  if (o.label !== undefined && !columns.includes(o.label))
    throw new CliError(`--label ${o.label} is not a column of ${o.reference} (columns: ${columns.join(', ')})`, 2);
  if (o.timestamp !== undefined && !columns.includes(o.timestamp))
    throw new CliError(`--timestamp ${o.timestamp} is not a column of ${o.reference} (columns: ${columns.join(', ')})`, 2);
  if (o.timestamp !== undefined && o.timestamp === o.label) throw new CliError(`--timestamp and --label name the same column ${o.label}`, 2);
  const slotMinutes = o.slotMinutes ?? 60;
  if (!validSlotMinutes(slotMinutes)) throw new CliError(`--slot-minutes ${o.slotMinutes} must be a whole number of minutes dividing a day (1-720)`, 2);
  const slotClock = SLOT_CLOCKS.find((c) => c === (o.slotClock ?? 'wall'));
  if (!slotClock) throw new CliError(`--slot-clock ${o.slotClock} must be one of ${SLOT_CLOCKS.join(', ')} (the clock of the --timestamp column)`, 2);
  progress(`read ${rows.length} reference rows of ${o.reference}`);
  const task = inferTask(graph, o.task);
  const features = featuresFor(graph, columns, rows, o.label, o.timestamp);
  const times = o.timestamp !== undefined ? rows.map((r, i) => rowTime(r[o.timestamp!], o.timestamp!, i)) : undefined;
  const calendar = markCalendar(features, rows, times, o.timestamp, slotClock === 'event');
  for (const c of calendar)
    progress(
      `feature ${c.feature}: a calendar feature of the ${CYCLE_WORDS[c.cycle]} cycle (${c.because})${c.eventTime ? `, the ${c.eventTime} of the event time: windows on the event clock hold only their own` : ''}`,
    );
  const draft = {
    name: o.name,
    version: o.version,
    description: `${o.name}, imported from ${o.model.split('/').pop()} with ${rows.length} reference rows`,
    opset: graph.opset,
    task,
    inputs: graph.inputs,
    outputs: graph.outputs,
    features,
    sketchedOutputs: sketchedOutputs(task, graph.outputs),
    serve: o.quantize === 'int8' ? 'int8' : 'float32',
    serving: { defaultLatencyBudgetMs: 50, maxBatch: 64 },
    ...(o.owner !== undefined || o.retrainEvery !== undefined
      ? { ownership: { ...(o.owner !== undefined ? { owner: o.owner } : {}), ...(o.retrainEvery !== undefined ? { retrain_every: o.retrainEvery } : {}) } }
      : {}),
  };
  let manifest: ModelManifest;
  try {
    manifest = checkManifest(draft, { name: o.name, version: o.version });
  } catch (e) {
    throw new CliError(`the inferred manifest does not hold: ${(e as Error).message}`, 1);
  }
  const instances = rows.map((r) => Object.fromEntries(features.map((f) => [f.name, r[f.name]])));

  const float32 = await ort.InferenceSession.create(bytes, SESSION);
  const floatPreds = await predictAll(float32, manifest, instances);
  progress(`ran onnxruntime-node on every reference row`);
  let served = floatPreds;
  let servedBytes = bytes;
  let quantization: ImportReport['quantization'];
  if (o.quantize === 'int8') {
    const q = quantizeWeights(bytes);
    if (q.weights === 0) throw new CliError('--quantize int8 found no MatMul or Gemm weight matrix to quantize in the graph', 1);
    const int8 = await ort.InferenceSession.create(q.bytes, SESSION);
    served = await predictAll(int8, manifest, instances);
    const a = agreement(task, manifest, floatPreds, served);
    quantization = { agreement: a.value, measure: a.measure, weights: q.weights, bytes: { float32: bytes.byteLength, int8: q.bytes.byteLength } };
    if (!a.ok)
      throw new CliError(`the int8 build is not close enough to the float32 one (${a.measure}: ${a.value.toFixed(4)}); import it without --quantize`, 1);
    servedBytes = q.bytes;
    progress(`quantized ${q.weights} weight matrices to int8: ${kb(bytes.byteLength)} -> ${kb(q.bytes.byteLength)}; ${a.measure}: ${a.value.toFixed(4)}`);
  }

  const metrics: Record<string, Record<string, number>> = {};
  if (o.label !== undefined) {
    const truth = rows.map((r) => r[o.label!]);
    for (const [k, v] of Object.entries(quality(task, manifest, floatPreds, truth, o.label))) metrics[k] = { float32: v };
    if (o.quantize === 'int8') for (const [k, v] of Object.entries(quality(task, manifest, served, truth, o.label))) metrics[k].int8 = v;
    manifest.quality = { split: `the ${rows.length} reference rows of ${o.reference.split('/').pop()}`, metrics };
  }
  // A binary classifier's calibration, fitted on the served build's scores of the labelled reference rows.
  let calibration: ImportReport['calibration'];
  if (o.label !== undefined && task === 'binary-classification') {
    const p = scoresOf(manifest, served);
    const y = binaryLabels(
      rows.map((r) => r[o.label!]),
      o.label,
    );
    const points = fitIsotonic(p, y);
    manifest.calibration = { method: 'isotonic', rows: p.length, source: `the ${rows.length} reference rows of ${o.reference.split('/').pop()}`, points };
    calibration = { points: points.length, ece: { before: expectedCalibrationError(p, y), after: expectedCalibrationError(p, y, calibrator(points)) } };
    progress(`fitted an isotonic calibration of ${points.length} points on ${p.length} labelled rows`);
  }

  // The baseline: the features of every reference row and the served build's outputs, sketched as
  // the edge sketches traffic; with --timestamp, also split by time of day (the time-matched reference).
  const now = Date.now();
  const [windowStart, windowEnd] = times ? times.reduce(([lo, hi], t) => [Math.min(lo, t), Math.max(hi, t)], [Infinity, -Infinity]) : [now, now];
  const newProfile = () => createProfile({ model: o.name, modelVersion: o.version, source: { kind: 'baseline', id: 'reference' }, windowStart, windowEnd });
  const sketchRows = (profile: Profile, at: number[]) => {
    for (const f of features) {
      if (f.kind === 'numeric') profile.features.set(f.name, new TDigest().addAll(at.map((i) => instances[i][f.name] as number)));
      else if (f.kind === 'categorical') {
        const s = new CategoricalSketch({ capacity: f.sketchCapacity });
        for (const i of at) s.add(String(instances[i][f.name]));
        profile.features.set(f.name, s);
      }
    }
    for (const s of manifest.sketchedOutputs) {
      const values = at.flatMap((i) => (Array.isArray(served[i][s.name]) ? (served[i][s.name] as number[]) : [served[i][s.name] as number]));
      if (s.kind === 'numeric') profile.outputs.set(s.name, new TDigest().addAll(values));
      else {
        const sk = new CategoricalSketch({ capacity: s.sketchCapacity ?? 256 });
        for (const v of values) sk.add(String(v));
        profile.outputs.set(s.name, sk);
      }
    }
    profile.counters.rows = at.length;
    return profile;
  };
  const profile = sketchRows(
    newProfile(),
    rows.map((_, i) => i),
  );
  if (times) {
    const bySlot = new Map<number, number[]>();
    times.forEach((t, i) => {
      const k = slotOf(t, slotMinutes);
      const at = bySlot.get(k);
      if (at) at.push(i);
      else bySlot.set(k, [i]);
    });
    profile.slots = { minutes: slotMinutes, clock: slotClock, profiles: new Map([...bySlot].map(([k, at]) => [k, sketchRows(newProfile(), at)])) };
    progress(`split the baseline into ${bySlot.size} time slots of ${slotMinutes} minutes on the ${slotClock} clock (the time-matched reference)`);
  }
  const baseline = encodeSummary(profile);

  // Golden rows spread over the reference; a classifier's rows with a clear winner only (the top
  // two classes 0.01 apart), so that a label cannot flip within the tolerance of the probabilities.
  const probs = task === 'multiclass-classification' ? manifest.outputs.find((x) => x.dtype === 'float32' && x.shape.length === 2)?.name : undefined;
  const clear = (i: number) => {
    if (!probs) return true;
    const p = [...(served[i][probs] as number[])].sort((a, b) => b - a);
    return p.length < 2 || p[0] - p[1] >= 0.01;
  };
  const candidates = rows.map((_, i) => i).filter(clear);
  const step = Math.max(1, Math.floor(candidates.length / GOLDEN_ROWS));
  const picks = Array.from({ length: Math.min(GOLDEN_ROWS, candidates.length) }, (_, i) => candidates[i * step]);
  const tolerance: Record<string, number> = {};
  for (const x of manifest.outputs) if (x.dtype === 'float32') tolerance[`${x.name}_abs`] = 1e-4;
  const golden = {
    model: o.name,
    description: `Reference rows with the outputs onnxruntime-node computed for the ${manifest.serve} build. The edge must agree within the tolerance.`,
    tolerance,
    rows: picks.map((i) => ({
      features: instances[i],
      expected: { [manifest.serve]: served[i], ...(o.quantize === 'int8' ? { float32: floatPreds[i] } : {}) },
    })),
  };

  mkdirSync(o.out, { recursive: true });
  const files: Record<string, Uint8Array> = {
    'model.onnx': servedBytes,
    'manifest.json': new TextEncoder().encode(`${JSON.stringify(manifest, null, 1)}\n`),
    'baseline.dwsm': baseline,
    'golden.json': new TextEncoder().encode(`${JSON.stringify(golden, null, 1)}\n`),
    ...(o.quantize === 'int8' ? { 'model.float32.onnx': bytes } : {}),
  };
  for (const [f, b] of Object.entries(files)) writeFileSync(join(o.out, f), b);

  const lines = [
    `${o.name} version ${o.version}: ${task}, ${features.length} features, ${manifest.outputs.length} output(s), serving the ${manifest.serve} build`,
    ...features.map((f) =>
      f.kind === 'numeric'
        ? `  feature ${f.name.padEnd(16)} numeric${f.integer ? ' (integer)' : ''} in [${f.range.join(', ')}]${f.column !== undefined ? `  -> ${f.input}[:, ${f.column}]` : `  -> ${f.input}`}${f.seasonal && f.cycle ? `  calendar, ${CYCLE_WORDS[f.cycle]} cycle (${calendar.find((c) => c.feature === f.name)?.because}${f.eventTime ? `; the ${f.eventTime} of the event time` : ''})` : ''}`
        : `  feature ${f.name.padEnd(16)} ${f.kind}, ${f.vocabulary.length} values  -> ${f.input}`,
    ),
    ...manifest.sketchedOutputs.map((s) => `  output  ${s.name.padEnd(16)} sketched as ${s.kind}`),
    ...Object.entries(metrics).map(
      ([k, v]) =>
        `  quality ${k.padEnd(16)} ${Object.entries(v)
          .map(([b, x]) => `${b} ${x.toFixed(4)}`)
          .join(', ')} (on the reference rows)`,
    ),
    ...(calibration
      ? [
          `  calibration isotonic, ${calibration.points} points: expected calibration error ${calibration.ece.before.toFixed(4)} -> ${calibration.ece.after.toFixed(4)} (on the reference rows)`,
        ]
      : []),
    ...(profile.slots
      ? [
          `  drift   windows compared with the reference at their own times of day: ${profile.slots.profiles.size} slots of ${slotMinutes} minutes (from --timestamp ${o.timestamp}, ${slotClock} clock)`,
        ]
      : []),
    ...(quantization
      ? [
          `  int8    ${quantization.weights} weight matrices, ${kb(quantization.bytes.float32)} -> ${kb(quantization.bytes.int8)}; ${quantization.measure}: ${quantization.agreement.toFixed(4)}`,
        ]
      : []),
    `wrote ${o.out}/: ${Object.entries(files)
      .map(([f, b]) => `${f} (${kb(b.byteLength)})`)
      .join(', ')}`,
    `check the ranges and vocabularies in manifest.json, then: npx driftwatch push ${o.out}`,
  ];
  return {
    out: o.out,
    manifest,
    rows: rows.length,
    files: Object.fromEntries(Object.entries(files).map(([f, b]) => [f, b.byteLength])),
    quality: metrics,
    quantization,
    ...(calibration ? { calibration } : {}),
    calendar,
    ...(profile.slots ? { slots: { minutes: slotMinutes, filled: profile.slots.profiles.size } } : {}),
    lines,
  };
}

/** The files of a model folder, for `driftwatch push`. */
export function readModelFolder(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const f of ['model.onnx', 'manifest.json', 'baseline.dwsm', 'golden.json', 'model.float32.onnx']) {
    try {
      out[f] = new Uint8Array(readFileSync(join(dir, f)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(`cannot read ${join(dir, f)} (${(e as Error).message})`, 2);
    }
  }
  for (const f of ['model.onnx', 'manifest.json', 'baseline.dwsm', 'golden.json'])
    if (!out[f]) throw new CliError(`${dir} has no ${f} (driftwatch import writes a model folder)`, 2);
  return out;
}

export type { Tensor };
