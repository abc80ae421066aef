/**
 * The TensorProto decoding in test/support/onnx-testdata.ts, on tensors encoded here: libonnx-testdata's
 * quantized tests use raw_data only, so the typed *_data paths are checked on their own.
 */
import pkg from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { decodeTensor, ortType } from '../support/onnx-testdata.ts';

const { onnx } = pkg;
const T = onnx.TensorProto.DataType;

function encode(props: Parameters<typeof onnx.TensorProto.create>[0]): Uint8Array {
  return onnx.TensorProto.encode(onnx.TensorProto.create(props)).finish();
}

/** A Long-like { low, high } for a signed 64-bit value: protobufjs's Writer takes any such object for int64. */
function long(v: bigint): { low: number; high: number; unsigned: false } {
  return { low: Number(BigInt.asIntN(32, v)), high: Number(BigInt.asIntN(32, v >> 32n)), unsigned: false };
}

function raw(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

describe('decodeTensor', () => {
  it('maps ONNX data types to onnxruntime type strings', () => {
    expect([T.FLOAT, T.UINT8, T.INT8, T.INT32, T.INT64, T.BOOL, T.DOUBLE].map(ortType)).toEqual([
      'float32',
      'uint8',
      'int8',
      'int32',
      'int64',
      'bool',
      'float64',
    ]);
    expect(() => ortType(T.STRING)).toThrow(/unsupported/);
  });

  it('reads the typed *_data fields', () => {
    const cases = [
      { dataType: T.UINT8, int32Data: [0, 7, 255], want: Uint8Array.of(0, 7, 255) },
      { dataType: T.INT8, int32Data: [-128, -1, 127], want: Int8Array.of(-128, -1, 127) },
      { dataType: T.INT32, int32Data: [-(2 ** 31), 5, 2 ** 31 - 1], want: Int32Array.of(-(2 ** 31), 5, 2 ** 31 - 1) },
      { dataType: T.FLOAT, floatData: [0.5, -1.25, 3e-8], want: Float32Array.of(0.5, -1.25, 3e-8) },
      { dataType: T.BOOL, int32Data: [1, 0, 1], want: Uint8Array.of(1, 0, 1) },
    ];
    for (const { want, ...props } of cases) {
      const t = decodeTensor(encode({ name: 'x', dims: [3], ...props }));
      expect(t).toEqual({ name: 'x', dims: [3], dataType: ortType(props.dataType), data: want });
    }
  });

  it('reads int64 beyond 2^53 exactly, as a BigInt64Array', () => {
    const want = BigInt64Array.of(-(2n ** 63n), -1n, 2n ** 53n + 1n, 2n ** 63n - 1n);
    const int64Data = [...want].map(long) as unknown as number[];
    const fromField = decodeTensor(encode({ dims: [2, 2], dataType: T.INT64, int64Data }));
    expect(fromField.dataType).toBe('int64');
    expect(fromField.dims).toEqual([2, 2]);
    expect(fromField.data).toEqual(want);
    expect(decodeTensor(encode({ dims: [4], dataType: T.INT64, rawData: raw(want) })).data).toEqual(want);
    const max = { low: -1, high: -1, unsigned: true } as unknown as number;
    expect(decodeTensor(encode({ dims: [1], dataType: T.UINT64, uint64Data: [max] })).data).toEqual(BigUint64Array.of(2n ** 64n - 1n));
  });

  it('reads little-endian raw_data, scalars included, into aligned copies', () => {
    const f = Float32Array.of(1.5, -2, 1e-30);
    expect(decodeTensor(encode({ dims: [3], dataType: T.FLOAT, rawData: raw(f) })).data).toEqual(f);
    const scalar = decodeTensor(encode({ dims: [], dataType: T.UINT8, rawData: Uint8Array.of(128) }));
    expect(scalar.dims).toEqual([]);
    expect(scalar.data).toEqual(Uint8Array.of(128));
    const i32 = decodeTensor(encode({ dims: [2], dataType: T.INT32, rawData: raw(Int32Array.of(-3, 70000)) }));
    expect(i32.data).toEqual(Int32Array.of(-3, 70000));
  });

  it('rejects a value count that does not match the dims', () => {
    expect(() => decodeTensor(encode({ name: 'y', dims: [2, 2], dataType: T.UINT8, int32Data: [1, 2, 3] }))).toThrow(/tensor y: 3 values for dims \[2, 2\]/);
  });
});
