/**
 * A small ONNX graph writer over onnx-proto (protobufjs): initializers as raw little-endian
 * bytes, opset 13 by default. Only what the model builds here need; no shape inference.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const DT = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9 } as const;
export type DType = keyof typeof DT;
/** number: INT, { f }: FLOAT, number[]: INTS, string: STRING, { floats }: FLOATS, { tensor }: TENSOR. */
type Attr =
  | number
  | number[]
  | string
  | { f: number }
  | { floats: number[] }
  | { tensor: { dtype: DType; dims: number[]; data: ArrayLike<number> | BigInt64Array } };

function rawBytes(dtype: DType, data: ArrayLike<number> | BigInt64Array): Uint8Array {
  let arr: ArrayBufferView;
  switch (dtype) {
    case 'float32':
      arr = Float32Array.from(data as ArrayLike<number>);
      break;
    case 'uint8':
    case 'bool':
      arr = Uint8Array.from(data as ArrayLike<number>);
      break;
    case 'int8':
      arr = Int8Array.from(data as ArrayLike<number>);
      break;
    case 'int32':
      arr = Int32Array.from(data as ArrayLike<number>);
      break;
    case 'int64':
      arr = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
      break;
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength).slice();
}

function tensorProto(name: string, dtype: DType, dims: number[], data: ArrayLike<number> | BigInt64Array) {
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`initializer ${name}: ${data.length} values for dims [${dims}]`);
  return onnx.TensorProto.create({ name, dims, dataType: DT[dtype], rawData: rawBytes(dtype, data) });
}

function valueInfo(name: string, dtype: DType, shape: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: DT[dtype], shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
}

export class GraphBuilder {
  readonly #nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  readonly #inits: ReturnType<typeof onnx.TensorProto.create>[] = [];
  readonly #inputs: ReturnType<typeof onnx.ValueInfoProto.create>[] = [];
  readonly #outputs: ReturnType<typeof onnx.ValueInfoProto.create>[] = [];
  #counter = 0;

  input(name: string, dtype: DType, shape: (number | string)[]): string {
    this.#inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  output(name: string, dtype: DType, shape: (number | string)[]): void {
    this.#outputs.push(valueInfo(name, dtype, shape));
  }

  init(name: string, dtype: DType, dims: number[], data: ArrayLike<number> | BigInt64Array): string {
    this.#inits.push(tensorProto(name, dtype, dims, data));
    return name;
  }

  /** Adds a node; returns its output names (fresh ones unless `outputs` names them). */
  node(
    op: string,
    inputs: string[],
    { outputs = 1, attrs = {}, name }: { outputs?: number | string[]; attrs?: Record<string, Attr>; name?: string } = {},
  ): string[] {
    const id = this.#counter++;
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => `${op.toLowerCase()}_${id}_${i}`) : outputs;
    const attribute = Object.entries(attrs).map(([k, v]) => {
      if (typeof v === 'number') return { name: k, type: 2, i: v };
      if (typeof v === 'string') return { name: k, type: 3, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name: k, type: 7, ints: v };
      if ('f' in v) return { name: k, type: 1, f: v.f };
      if ('floats' in v) return { name: k, type: 6, floats: v.floats };
      return { name: k, type: 4, t: tensorProto(`${k}_${id}`, v.tensor.dtype, v.tensor.dims, v.tensor.data) };
    });
    this.#nodes.push(onnx.NodeProto.create({ opType: op, input: inputs, output: outs, name: name ?? `${op}_${id}`, attribute }));
    return outs;
  }

  /** Convenience for single-output nodes. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, outputName?: string): string {
    return this.node(op, inputs, { attrs, outputs: outputName ? [outputName] : 1 })[0];
  }

  toBytes({
    name,
    opset = 13,
    docString = '',
    metadata = {},
  }: {
    name: string;
    opset?: number;
    docString?: string;
    metadata?: Record<string, string>;
  }): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 7,
      producerName: 'driftwatch-edge models/build.ts',
      producerVersion: '1',
      docString,
      opsetImport: [{ domain: '', version: opset }],
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
      graph: onnx.GraphProto.create({ name, node: this.#nodes, initializer: this.#inits, input: this.#inputs, output: this.#outputs }),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
