import { describe, expect, it } from 'vitest';
import model from '../../models/flight-delay/model.int8.onnx';
import { createOrtSession, ort } from './ort-workerd.ts';

describe('onnxruntime-web inside workerd', () => {
  it('creates a session from a bundled int8 model and runs it', async () => {
    const session = await createOrtSession(new Uint8Array(model));
    const i64 = (v: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(v)), [1]);
    const out = await session.run({
      month: i64(4),
      day_of_week: i64(2),
      hour: i64(17),
      origin: i64(5),
      destination: i64(9),
      distance: new ort.Tensor('float32', Float32Array.of(700), [1]),
    });
    const p = (out.p_delay.data as Float32Array)[0];
    expect(p).toBeGreaterThan(0);
    expect(p).toBeLessThan(1);
  });
});
