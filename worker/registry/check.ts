/**
 * What a version must pass before the registry commits it, checked on the edge's own engine
 * (onnxruntime-web inside workerd), file by file, each refusal a ValidationError naming the file
 * and what is wrong:
 *
 * - `manifest.json` parses and passes core's checkManifest (names the model and version pushed);
 * - `baseline.dwsm` decodes (core's summary format) and profiles exactly the manifest's features
 *   and sketched outputs;
 * - `golden.json` has rows whose features the manifest encodes;
 * - `model.onnx` loads in onnxruntime-web; its graph's inputs are the manifest's (names, element
 *   types, ranks, fixed dimensions) and it has the manifest's outputs; every golden row
 *   reproduces the outputs the manifest's build (`serve`) gave under onnxruntime-node, within the
 *   golden set's tolerance.
 *
 * The session made for the check is released before the answer: the version loads again when
 * it takes traffic.
 */
import { checkManifest, decodeSummary, encodeInstances, ValidationError, type ModelManifest, type Tensor } from '../../core/index.ts';
import type { Session, SessionFactory } from '../engine/model-engine.ts';
import { REQUIRED_FILES, type VersionFile } from './registry.ts';

/** Golden rows a push may carry (each is one engine run). */
export const MAX_GOLDEN_ROWS = 1000;
/** A float output with no tolerance in the golden set is compared within this. */
const DEFAULT_ABS_TOLERANCE = 1e-4;

export interface CheckReport {
  manifest: ModelManifest;
  /** Creating the session on the edge engine, ms. */
  load_ms: number;
  golden_rows: number;
  /** Per output: the largest |edge − expected| over the golden rows (floats), or the smallest overlap share (id lists). */
  agreement: Record<string, { max_abs_diff?: number; min_overlap?: number; exact?: boolean }>;
}

function refuse(file: VersionFile | string, message: string, status: 400 | 413 | 422 = 422, code = 'invalid_version'): never {
  throw new ValidationError(`${file}: ${message}`, file, status, code);
}

const decoder = new TextDecoder('utf-8', { fatal: true });
function json(file: VersionFile, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (e) {
    return refuse(file, `is not JSON (${e instanceof Error ? e.message : e})`);
  }
}

/** A pushed manifest.json, parsed and checked (core's checkManifest) as the version `name`/`version`. */
export function checkedManifest(name: string, version: string, bytes: Uint8Array): ModelManifest {
  return checkManifest(json('manifest.json', bytes), { name, version });
}

type GoldenRow = { features: Record<string, unknown>; expected: Record<string, Record<string, unknown>> };

/** The ONNX element type names onnxruntime reports, for the manifest's dtypes. */
const ORT_TYPES: Record<string, string> = { float32: 'float32', int64: 'int64', int32: 'int32', uint8: 'uint8', int8: 'int8' };

export async function checkVersion(
  name: string,
  version: string,
  files: Partial<Record<VersionFile, Uint8Array>>,
  createSession: SessionFactory,
): Promise<CheckReport> {
  for (const f of REQUIRED_FILES)
    if (!files[f]) refuse(f, 'is missing (a version needs model.onnx, manifest.json, baseline.dwsm and golden.json)', 400, 'missing_file');

  const manifest = checkedManifest(name, version, files['manifest.json']!);

  let profile: ReturnType<typeof decodeSummary>;
  try {
    profile = decodeSummary(files['baseline.dwsm']!);
  } catch (e) {
    return refuse('baseline.dwsm', `is not a summary in core's format (${e instanceof Error ? e.message : e})`);
  }
  const want = new Set(manifest.features.map((f) => f.name));
  for (const f of want)
    if (!profile.features.has(f))
      refuse('baseline.dwsm', `has no profile of the manifest's feature "${f}" (it profiles ${[...profile.features.keys()].join(', ') || 'no features'})`);
  // Besides the features, the profiler sketches each id list's length and the request parameters.
  const also = new Set([
    ...manifest.features.filter((f) => f.kind === 'categorical-list').map((f) => `${f.name}_length`),
    ...(manifest.parameters ?? []).map((p) => p.name),
  ]);
  for (const f of profile.features.keys())
    if (!want.has(f) && !also.has(f)) refuse('baseline.dwsm', `profiles "${f}", which is not one of the manifest's features`);
  for (const o of manifest.sketchedOutputs) if (!profile.outputs.has(o.name)) refuse('baseline.dwsm', `has no profile of the sketched output "${o.name}"`);
  // The time-matched reference's slots hold the same reference split by time of day: nothing else.
  for (const [i, slot] of profile.slots?.profiles ?? [])
    for (const section of ['features', 'outputs'] as const)
      for (const [f, s] of slot[section]) {
        if (section === 'features' && !want.has(f) && !also.has(f))
          refuse('baseline.dwsm', `slot ${i} profiles "${f}", which is not one of the manifest's features`);
        const whole = profile[section].get(f);
        if (whole?.kind !== s.kind)
          refuse('baseline.dwsm', `slot ${i} sketches "${f}" as ${s.kind}, and the whole baseline ${whole ? `as ${whole.kind}` : 'not at all'}`);
      }

  const golden = json('golden.json', files['golden.json']!) as { tolerance?: unknown; rows?: unknown };
  if (typeof golden !== 'object' || golden === null || !Array.isArray(golden.rows) || golden.rows.length === 0)
    refuse('golden.json', 'must be {"tolerance": {...}, "rows": [{"features": {...}, "expected": {...}}, ...]} with at least one row');
  const rows = golden.rows as GoldenRow[];
  if (rows.length > MAX_GOLDEN_ROWS) refuse('golden.json', `has ${rows.length} rows, over the limit of ${MAX_GOLDEN_ROWS}`, 413, 'too_large');
  const tolerance = new Map<string, number>();
  if (golden.tolerance !== undefined) {
    if (typeof golden.tolerance !== 'object' || golden.tolerance === null || Array.isArray(golden.tolerance))
      refuse('golden.json', '"tolerance" must be an object of numbers');
    for (const [k, v] of Object.entries(golden.tolerance as object)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) refuse('golden.json', `tolerance "${k}" must be a non-negative number`);
      tolerance.set(k, v);
    }
  }
  const encoded = rows.map((row, i) => {
    if (typeof row !== 'object' || row === null || typeof row.expected !== 'object' || row.expected === null)
      return refuse('golden.json', `rows[${i}] must be {"features": {...}, "expected": {...}}`);
    const expected = Object.hasOwn(row.expected, manifest.serve) ? row.expected[manifest.serve] : undefined; // proto-safe: own property checked
    if (typeof expected !== 'object' || expected === null)
      return refuse('golden.json', `rows[${i}].expected has no "${manifest.serve}" outputs (the manifest serves the ${manifest.serve} build)`);
    try {
      return { enc: encodeInstances(manifest, { instances: [row.features] }, { maxBatch: 1 }), expected };
    } catch (e) {
      return refuse('golden.json', `rows[${i}].features do not fit the manifest: ${e instanceof Error ? e.message : e}`);
    }
  });

  const t = performance.now();
  let session: Session;
  try {
    session = await createSession(files['model.onnx']!);
  } catch (e) {
    return refuse('model.onnx', `does not load in onnxruntime-web: ${e instanceof Error ? e.message : String(e)}`.slice(0, 600));
  }
  const load_ms = performance.now() - t;
  try {
    checkGraph(manifest, session);
    const agreement: CheckReport['agreement'] = {};
    for (const [i, { enc, expected }] of encoded.entries()) {
      let out: Record<string, Tensor>;
      try {
        out = await session.run(enc.feeds);
      } catch (e) {
        return refuse('model.onnx', `fails on golden row ${i}: ${e instanceof Error ? e.message : String(e)}`.slice(0, 600));
      }
      for (const [output, want] of Object.entries(expected)) {
        if (!manifest.outputs.some((o) => o.name === output))
          refuse('golden.json', `rows[${i}].expected names "${output}", which is not one of the manifest's outputs`);
        compare(output, out[output], want, tolerance, i, agreement);
      }
    }
    return { manifest, load_ms, golden_rows: rows.length, agreement };
  } finally {
    await session.release?.().catch(() => undefined);
  }
}

/** The graph's inputs are exactly the manifest's, with its element types, ranks and fixed dims; its outputs include the manifest's. */
function checkGraph(m: ModelManifest, s: Session): void {
  const extra = s.inputNames.filter((n) => !m.inputs.some((i) => i.name === n));
  if (extra.length)
    refuse('manifest.json', `does not describe the graph's input(s) ${extra.map((x) => `"${x}"`).join(', ')} (the graph takes ${s.inputNames.join(', ')})`);
  for (const i of m.inputs)
    if (!s.inputNames.includes(i.name)) refuse('manifest.json', `names input "${i.name}", which the graph does not have (it takes ${s.inputNames.join(', ')})`);
  for (const o of m.outputs)
    if (!s.outputNames.includes(o.name))
      refuse('manifest.json', `names output "${o.name}", which the graph does not have (it gives ${s.outputNames.join(', ')})`);
  const specs = [...m.inputs.map((x) => ['input', x] as const), ...m.outputs.map((x) => ['output', x] as const)];
  const meta = new Map([...(s.inputMetadata ?? []), ...(s.outputMetadata ?? [])].map((x) => [x.name, x]));
  for (const [kind, spec] of specs) {
    const g = meta.get(spec.name);
    if (!g?.isTensor || !g.type) continue;
    if (g.type !== ORT_TYPES[spec.dtype]) refuse('manifest.json', `says ${kind} "${spec.name}" is ${spec.dtype}; the graph has ${g.type}`);
    if (g.shape && g.shape.length !== spec.shape.length)
      refuse('manifest.json', `says ${kind} "${spec.name}" has shape [${spec.shape.join(', ')}]; the graph has [${g.shape.join(', ')}]`);
    g.shape?.forEach((d, k) => {
      const want = spec.shape[k];
      if (typeof d === 'number' && d > 0 && typeof want === 'number' && d !== want)
        refuse('manifest.json', `says ${kind} "${spec.name}" dimension ${k} is ${want}; the graph has ${d}`);
    });
  }
}

/**
 * One output of one golden row against what was expected: floats within `<output>_abs` (or
 * 1e-4); integer lists (ranked ids) by overlap when the set has `min_overlap_at_<k>`, else
 * exactly; other integers (labels) exactly.
 */
function compare(
  output: string,
  got: Tensor | undefined,
  want: unknown,
  tolerance: Map<string, number>,
  row: number,
  agreement: CheckReport['agreement'],
): void {
  if (!got) refuse('model.onnx', `gave no "${output}" on golden row ${row}`);
  const values = Array.from(got.data as ArrayLike<number | bigint>, Number);
  const expected = (Array.isArray(want) ? want.flat(4) : [want]) as unknown[];
  if (!expected.every((x) => typeof x === 'number' && Number.isFinite(x)))
    refuse('golden.json', `rows[${row}].expected.${output} must be a number or an array of numbers`);
  const nums = expected as number[];
  const a = (agreement[output] ??= {});
  if (got.dtype === 'float32') {
    if (values.length !== nums.length) refuse('golden.json', `rows[${row}].expected.${output} has ${nums.length} values; the model gives ${values.length}`);
    const tol = tolerance.get(`${output}_abs`) ?? DEFAULT_ABS_TOLERANCE;
    let worst = 0;
    for (let k = 0; k < nums.length; k++) worst = Math.max(worst, Math.abs(values[k] - nums[k]));
    a.max_abs_diff = Math.max(a.max_abs_diff ?? 0, worst);
    if (!(worst <= tol))
      refuse(
        'golden.json',
        `row ${row} does not reproduce on the edge engine: "${output}" differs by ${worst.toPrecision(3)}, over the tolerance ${tol} (${output}_abs)`,
      );
    return;
  }
  const overlapKey = [...tolerance.keys()].find((k) => k.startsWith('min_overlap_at_'));
  if (values.length > 1 && overlapKey) {
    const need = tolerance.get(overlapKey)!;
    const set = new Set(nums);
    const overlap = values.filter((v) => set.has(v)).length;
    a.min_overlap = Math.min(a.min_overlap ?? Infinity, overlap / Math.max(1, nums.length));
    if (overlap < need)
      refuse(
        'golden.json',
        `row ${row} does not reproduce on the edge engine: "${output}" shares ${overlap} ids with the expected list, under ${need} (${overlapKey})`,
      );
    return;
  }
  a.exact = true;
  if (values.length !== nums.length || values.some((v, k) => v !== nums[k]))
    refuse(
      'golden.json',
      `row ${row} does not reproduce on the edge engine: "${output}" is [${values.slice(0, 8).join(', ')}], expected [${nums.slice(0, 8).join(', ')}]`,
    );
}
