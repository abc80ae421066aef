/**
 * ONNX's quantized-operator node tests (QLinearMatMul, QLinearConv, MatMulInteger, ConvInteger,
 * QuantizeLinear / DequantizeLinear incl. per-axis, DynamicQuantizeLinear) from Debian's
 * libonnx-testdata, run against every onnxruntime backend. One test per case and backend, named
 * `<test dir> [<backend>]`, covering every test_data_set of the case.
 *
 * Tolerances: integer outputs must match exactly. ONNX's own runner (onnx/backend/test/runner)
 * checks with assert_allclose(rtol=1e-3, atol=1e-7), which for uint8/int8 (|x| <= 255) and the small
 * int32 accumulators here admits no difference at all, so there is no off-by-one allowance. Float
 * outputs (DequantizeLinear's y, DynamicQuantizeLinear's y_scale) within |a - e| <= 1e-5 + 1e-5 |e|.
 *
 * Without the data: fails when CI is set (.ci/run installs the package), else skips saying what to
 * install.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  listQuantizedCases,
  modelInfo,
  QUANTIZED_OPS,
  readDataSet,
  readModel,
  TESTDATA_PACKAGE,
  testdataDir,
  type TestCase,
  type TestTensor,
} from '../support/onnx-testdata.ts';
import { type Backend, type OutputTensor, ortNodeCpu, ortWebWasm } from '../support/ort-backends.ts';

/** The quantized node tests in ONNX 1.12 (Debian libonnx-testdata 1.12.0); newer releases add more. */
const MIN_CASES = 17;
const RTOL = 1e-5;
const ATOL = 1e-5;

const BACKENDS: Backend[] = [ortWebWasm(), ortNodeCpu()];

const root = testdataDir();
const available = existsSync(root);
const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
const cases: TestCase[] = available ? listQuantizedCases(root) : [];
const missing =
  `ONNX node test data not found at ${root}: install the Debian package ${TESTDATA_PACKAGE} ` +
  `(apt-get install -y ${TESTDATA_PACKAGE}) or set ONNX_TESTDATA_DIR`;

/** Human-readable differences between an output and its expected tensor; empty when they agree. */
function differences(actual: OutputTensor, expected: TestTensor, limit = 8): string[] {
  if (actual.type !== expected.dataType) return [`type ${actual.type}, expected ${expected.dataType}`];
  if (actual.dims.join() !== expected.dims.join()) return [`dims [${actual.dims}], expected [${expected.dims}]`];
  const a = actual.data as ArrayLike<number | bigint>;
  const e = expected.data;
  if (a.length !== e.length) return [`${a.length} values, expected ${e.length}`];
  // float16 (IEEE bits in a Uint16Array) would be compared exactly; no quantized test outputs it.
  const float = expected.dataType === 'float32' || expected.dataType === 'float64';
  const out: string[] = [];
  for (let i = 0; i < e.length && out.length < limit; i++) {
    const x = a[i];
    const y = e[i];
    const ok = float ? (Number.isNaN(y) && Number.isNaN(x)) || Math.abs(Number(x) - Number(y)) <= ATOL + RTOL * Math.abs(Number(y)) : x === y;
    if (!ok) out.push(`[${i}] ${x}, expected ${y}`);
  }
  return out;
}

describe('ONNX quantized-operator conformance', () => {
  it(`finds at least ${MIN_CASES} quantized-operator tests, each model using a quantized operator`, (ctx) => {
    if (!available) {
      if (inCI) throw new Error(`${missing} (CI is set, so this is a failure, not a skip)`);
      ctx.skip(missing);
    }
    expect(cases.length).toBeGreaterThanOrEqual(MIN_CASES);
    for (const c of cases) {
      expect(c.dataSets.length, c.name).toBeGreaterThan(0);
      expect(
        modelInfo(readModel(c)).opTypes.some((op) => QUANTIZED_OPS.has(op)),
        c.name,
      ).toBe(true);
    }
  });

  for (const c of cases) {
    for (const backend of BACKENDS) {
      it(`${c.name} [${backend.name}]`, async () => {
        const model = readModel(c);
        const info = modelInfo(model);
        const session = await backend.createSession(model);
        try {
          expect([...session.inputNames]).toEqual(info.inputNames);
          expect([...session.outputNames]).toEqual(info.outputNames);
          for (const dataSet of c.dataSets) {
            const { inputs, outputs } = readDataSet(c, dataSet);
            expect(inputs.length, `${dataSet} inputs`).toBe(info.inputNames.length);
            expect(outputs.length, `${dataSet} outputs`).toBe(info.outputNames.length);
            // input_i feeds the i-th graph input; where the .pb names its tensor, the names agree.
            const feeds = Object.fromEntries(info.inputNames.map((name, i) => [name, inputs[i]]));
            for (const [name, t] of Object.entries(feeds)) if (t.name) expect(t.name).toBe(name);
            const results = await session.run(feeds);
            info.outputNames.forEach((name, i) => {
              expect(differences(results[name], outputs[i]), `${dataSet} output ${name}`).toEqual([]);
            });
          }
        } finally {
          await session.release();
        }
      });
    }
  }
});
