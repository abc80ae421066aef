/**
 * Loader for ONNX's backend node tests, as Debian's `libonnx-testdata` ships them: one folder per
 * test holding `model.onnx` and `test_data_set_<k>/{input,output}_<i>.pb`, each .pb a serialized
 * TensorProto (onnx/onnx docs/OnnxBackendTest.md). Inputs and outputs are positional: input_i feeds
 * the i-th graph input that is not an initializer, output_i is the i-th graph output.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pkg from 'onnx-proto';

const { onnx } = pkg;

export const DEFAULT_TESTDATA_DIR = '/usr/share/libonnx-testdata/data/node';
/** The Debian package that provides DEFAULT_TESTDATA_DIR. */
export const TESTDATA_PACKAGE = 'libonnx-testdata';

/** `ONNX_TESTDATA_DIR` when set, else Debian's install location. */
export function testdataDir(): string {
  return process.env.ONNX_TESTDATA_DIR || DEFAULT_TESTDATA_DIR;
}

/**
 * Names of the quantized-operator tests: QLinearMatMul, QLinearConv, MatMulInteger, ConvInteger,
 * QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear (and its `_expanded` function bodies,
 * which still end in QuantizeLinear). Callers should also check the models' operators (QUANTIZED_OPS).
 */
export const QUANTIZED_TEST = /qlinear|integer|quantize/i;

/** The ONNX operators whose presence makes a model a quantized-operator test. */
export const QUANTIZED_OPS: ReadonlySet<string> = new Set([
  'QLinearMatMul',
  'QLinearConv',
  'MatMulInteger',
  'ConvInteger',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
]);

export interface TestCase {
  /** The test folder's name, e.g. `test_qlinearmatmul_2D`. */
  name: string;
  dir: string;
  /** `test_data_set_<k>` folders, in k order. */
  dataSets: string[];
}

/** onnxruntime's tensor type strings (onnxruntime-common `Tensor.Type`) for the numeric types. */
export type OrtTensorType = 'float32' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'int32' | 'int64' | 'bool' | 'float16' | 'float64' | 'uint32' | 'uint64';

export type TensorData =
  | Float32Array
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float64Array
  | Uint32Array
  | BigUint64Array;

/** A decoded TensorProto, in the array type onnxruntime expects for `dataType`. */
export interface TestTensor {
  name: string;
  dims: number[];
  dataType: OrtTensorType;
  data: TensorData;
}

export interface DataSet {
  inputs: TestTensor[];
  outputs: TestTensor[];
}

/** What a test needs to know about its model. */
export interface ModelInfo {
  /** Graph inputs that are not initializers, in order (the order of input_i.pb). */
  inputNames: string[];
  outputNames: string[];
  opTypes: string[];
}

/** Which TensorProto field holds the values when raw_data is empty (onnx.proto, TensorProto). */
type Field = 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data';

interface TypeSpec {
  type: OrtTensorType;
  field: Field;
  array: { new (buffer: ArrayBuffer): TensorData; from(values: ArrayLike<number | bigint>): TensorData };
}

// TensorProto.DataType -> onnxruntime type. float16 travels as its IEEE bits in a Uint16Array (and as
// uint16 values in int32_data); bool as 0/1 bytes, which is what onnxruntime takes for 'bool'.
const TYPES: Record<number, TypeSpec> = {
  1: { type: 'float32', field: 'floatData', array: Float32Array },
  2: { type: 'uint8', field: 'int32Data', array: Uint8Array },
  3: { type: 'int8', field: 'int32Data', array: Int8Array },
  4: { type: 'uint16', field: 'int32Data', array: Uint16Array },
  5: { type: 'int16', field: 'int32Data', array: Int16Array },
  6: { type: 'int32', field: 'int32Data', array: Int32Array },
  7: { type: 'int64', field: 'int64Data', array: BigInt64Array },
  9: { type: 'bool', field: 'int32Data', array: Uint8Array },
  10: { type: 'float16', field: 'int32Data', array: Uint16Array },
  11: { type: 'float64', field: 'doubleData', array: Float64Array },
  12: { type: 'uint32', field: 'uint64Data', array: Uint32Array },
  13: { type: 'uint64', field: 'uint64Data', array: BigUint64Array },
};

/** ONNX TensorProto.DataType -> onnxruntime tensor type; throws for types onnxruntime-js cannot hold. */
export function ortType(dataType: number): OrtTensorType {
  const spec = TYPES[dataType];
  if (!spec) throw new Error(`unsupported ONNX tensor data type ${dataType}`);
  return spec.type;
}

// raw_data is little-endian (onnx.proto); viewing it in place assumes a little-endian host, which every
// onnxruntime target is (x86-64, arm64, wasm).
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A protobufjs int64: a Long when the `long` package is present, else a number. */
type Int64 = number | { toString(): string };

function toBigInt(v: Int64): bigint {
  return BigInt(v.toString());
}

/** Decodes one serialized TensorProto (an input_i.pb or output_i.pb). */
export function decodeTensor(bytes: Uint8Array): TestTensor {
  const t = onnx.TensorProto.decode(bytes);
  const name = t.name ?? '';
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new Error(`tensor ${name}: external data is not supported`);
  const spec = TYPES[t.dataType];
  if (!spec) throw new Error(`tensor ${name}: unsupported ONNX tensor data type ${t.dataType}`);
  const dims = t.dims.map((d) => Number(d.toString()));
  const size = dims.reduce((a, b) => a * b, 1);
  let data: TensorData;
  if (t.rawData && t.rawData.length > 0) {
    if (!LITTLE_ENDIAN) throw new Error('raw_data is little-endian; this host is not');
    // A copy with its own, aligned buffer: rawData is a view into the .pb bytes, and may be a Buffer,
    // whose slice() is a view too.
    data = new spec.array(new Uint8Array(t.rawData).buffer);
  } else if (spec.field === 'int64Data' || spec.field === 'uint64Data') {
    const big = spec.type === 'int64' || spec.type === 'uint64';
    data = spec.array.from((t[spec.field] as Int64[]).map((v) => (big ? toBigInt(v) : Number(v.toString()))));
  } else {
    data = spec.array.from(t[spec.field] as number[]);
  }
  if (data.length !== size) throw new Error(`tensor ${name}: ${data.length} values for dims [${dims.join(', ')}]`);
  return { name, dims, dataType: spec.type, data };
}

function numbered(files: string[], prefix: string): string[] {
  const re = new RegExp(`^${prefix}(\\d+)(?:\\.pb)?$`);
  return files
    .map((f) => ({ f, m: re.exec(f) }))
    .filter((x) => x.m !== null)
    .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
    .map((x) => x.f);
}

/** The quantized-operator tests under `root`, sorted by name. Throws if `root` does not exist. */
export function listQuantizedCases(root = testdataDir()): TestCase[] {
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && QUANTIZED_TEST.test(e.name) && existsSync(join(root, e.name, 'model.onnx')))
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const dir = join(root, name);
      return { name, dir, dataSets: numbered(readdirSync(dir), 'test_data_set_') };
    });
}

export function readModel(c: TestCase): Uint8Array {
  return readFileSync(join(c.dir, 'model.onnx'));
}

export function modelInfo(model: Uint8Array): ModelInfo {
  const graph = onnx.ModelProto.decode(model).graph;
  if (!graph) throw new Error('model has no graph');
  const initializers = new Set((graph.initializer ?? []).map((i) => i.name));
  return {
    inputNames: (graph.input ?? []).map((i) => i.name ?? '').filter((n) => !initializers.has(n)),
    outputNames: (graph.output ?? []).map((o) => o.name ?? ''),
    opTypes: (graph.node ?? []).map((n) => n.opType ?? ''),
  };
}

/** Inputs and expected outputs of one `test_data_set_<k>`, in input_i / output_i order. */
export function readDataSet(c: TestCase, dataSet: string): DataSet {
  const dir = join(c.dir, dataSet);
  const files = readdirSync(dir);
  const read = (f: string) => decodeTensor(readFileSync(join(dir, f)));
  return { inputs: numbered(files, 'input_').map(read), outputs: numbered(files, 'output_').map(read) };
}
