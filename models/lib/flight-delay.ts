/**
 * flight-delay: P(arrival delay > 15 min) from month, day of week, scheduled hour, distance,
 * origin and destination, for the low-latency edge API.
 *
 * Architecture: the first layer over one-hot categoricals is a sum of rows of per-feature
 * tables (an embedding lookup with the first dense layer folded in), so inference is five
 * gathers and adds, then 32 → 16 → 1. Trained on January-February 2001 with Adam on
 * minibatches, in plain TypeScript on typed arrays, seeded.
 *
 * int8 graph: the five tables are int8 with a float scale per row (Gather, then dequantize the
 * gathered rows); the hidden activation h1 is quantized to uint8 (ReLU makes it non-negative,
 * scale from its training maximum) and multiplied by int8 per-column weights with
 * MatMulInteger; only the final 16 → 1 layer (17 numbers) stays float.
 */
import { GraphBuilder } from './onnx-builder.ts';
import { gaussian, quantizeRows, rng, shuffle } from './rng.ts';
import type { Flights } from './flights.ts';

export const H1 = 32;
export const H2 = 16;
const CAT = ['month', 'day_of_week', 'hour', 'origin', 'destination'] as const;
export type CatName = (typeof CAT)[number];

export interface FlightModel {
  /** Airport vocabulary: index i + 1 is vocab[i]; index 0 is every other airport. */
  vocab: string[];
  rows: Record<CatName, number>;
  tables: Record<CatName, Float32Array>;
  wDist: Float32Array;
  b1: Float32Array;
  w2: Float32Array; // [H1, H2]
  b2: Float32Array;
  w3: Float32Array; // [H2]
  b3: number;
  distMean: number;
  distStd: number;
}

/** Encoded inputs of a set of rows, as the graph takes them. */
export interface FlightBatch {
  n: number;
  month: Int32Array;
  day_of_week: Int32Array;
  hour: Int32Array;
  origin: Int32Array;
  destination: Int32Array;
  distance: Float32Array;
}

export function encodeRows(f: Flights, idx: ArrayLike<number>, vocabIndex: Map<string, number>): FlightBatch {
  const n = idx.length;
  const b: FlightBatch = {
    n,
    month: new Int32Array(n),
    day_of_week: new Int32Array(n),
    hour: new Int32Array(n),
    origin: new Int32Array(n),
    destination: new Int32Array(n),
    distance: new Float32Array(n),
  };
  for (let k = 0; k < n; k++) {
    const i = idx[k];
    b.month[k] = f.month[i];
    b.day_of_week[k] = f.dayOfWeek[i];
    b.hour[k] = f.hour[i];
    b.origin[k] = vocabIndex.get(f.airports[f.origin[i]]) ?? 0;
    b.destination[k] = vocabIndex.get(f.airports[f.destination[i]]) ?? 0;
    b.distance[k] = f.distance[i];
  }
  return b;
}

export interface TrainOptions {
  seed?: number;
  epochs?: number;
  batch?: number;
  lr?: number;
  minAirportFlights?: number;
  onProgress?: (epoch: number, step: number, steps: number, loss: number) => void;
}

export function trainFlightDelay(
  f: Flights,
  trainIdx: Uint32Array,
  { seed = 2001, epochs = 4, batch = 512, lr = 3e-3, minAirportFlights = 300, onProgress }: TrainOptions = {},
): FlightModel {
  const r = rng(seed);
  // Vocabulary: airports with enough training flights as origin or destination, by code.
  const counts = new Map<string, number>();
  for (const i of trainIdx) {
    for (const a of [f.airports[f.origin[i]], f.airports[f.destination[i]]]) counts.set(a, (counts.get(a) ?? 0) + 1);
  }
  const vocab = [...counts]
    .filter(([, c]) => c >= minAirportFlights)
    .map(([a]) => a)
    .sort();
  const vocabIndex = new Map(vocab.map((a, i) => [a, i + 1]));
  const rows: Record<CatName, number> = { month: 13, day_of_week: 7, hour: 24, origin: vocab.length + 1, destination: vocab.length + 1 };

  let sum = 0;
  let sq = 0;
  for (const i of trainIdx) {
    const z = Math.log(f.distance[i]);
    sum += z;
    sq += z * z;
  }
  const distMean = sum / trainIdx.length;
  const distStd = Math.sqrt(sq / trainIdx.length - distMean * distMean);

  const init = (len: number, std: number) => Float32Array.from({ length: len }, () => gaussian(r) * std);
  const m: FlightModel = {
    vocab,
    rows,
    // Month starts at zero: only January and February are seen in training, and the rows of
    // the other months must contribute nothing rather than their random initial values.
    tables: Object.fromEntries(CAT.map((c) => [c, c === 'month' ? new Float32Array(rows[c] * H1) : init(rows[c] * H1, 0.05)])) as Record<CatName, Float32Array>,
    wDist: init(H1, 0.05),
    b1: new Float32Array(H1).fill(0.05),
    w2: init(H1 * H2, Math.sqrt(2 / H1)),
    b2: new Float32Array(H2).fill(0.01),
    w3: init(H2, Math.sqrt(1 / H2)),
    b3: Math.log(0.22 / 0.78),
    distMean,
    distStd,
  };

  // Parameters as one list of (values, grads, adam m, adam v).
  const params: Float32Array[] = [...CAT.map((c) => m.tables[c]), m.wDist, m.b1, m.w2, m.b2, m.w3];
  const b3 = new Float32Array([m.b3]);
  params.push(b3);
  const grads = params.map((p) => new Float32Array(p.length));
  const am = params.map((p) => new Float32Array(p.length));
  const av = params.map((p) => new Float32Array(p.length));
  const [gTm, gTd, gTh, gTo, gTde, gWd, gB1, gW2, gB2, gW3, gB3] = grads;
  const gTables = [gTm, gTd, gTh, gTo, gTde];

  const data = encodeRows(f, trainIdx, vocabIndex);
  const labels = Uint8Array.from(trainIdx, (i) => (f.delay[i] > 15 ? 1 : 0));
  const zs = Float32Array.from(data.distance, (d) => (Math.log(d) - distMean) / distStd);
  const cats = [data.month, data.day_of_week, data.hour, data.origin, data.destination];
  const tables = CAT.map((c) => m.tables[c]);

  const order = Uint32Array.from({ length: data.n }, (_, i) => i);
  const h1 = new Float32Array(H1);
  const h2 = new Float32Array(H2);
  const dh1 = new Float32Array(H1);
  const dh2 = new Float32Array(H2);
  const beta1 = 0.9;
  const beta2 = 0.999;
  let t = 0;
  const steps = Math.ceil(data.n / batch);
  for (let epoch = 0; epoch < epochs; epoch++) {
    shuffle(order, r);
    const epochLr = lr * (epoch === epochs - 1 ? 0.3 : 1);
    let lossSum = 0;
    for (let s = 0; s < steps; s++) {
      for (const g of grads) g.fill(0);
      const end = Math.min(data.n, (s + 1) * batch);
      for (let k = s * batch; k < end; k++) {
        const i = order[k];
        // Forward.
        const z = zs[i];
        for (let j = 0; j < H1; j++) h1[j] = m.b1[j] + z * m.wDist[j];
        for (let c = 0; c < 5; c++) {
          const base = cats[c][i] * H1;
          const tab = tables[c];
          for (let j = 0; j < H1; j++) h1[j] += tab[base + j];
        }
        for (let j = 0; j < H1; j++) if (h1[j] < 0) h1[j] = 0;
        for (let o = 0; o < H2; o++) {
          let a = m.b2[o];
          for (let j = 0; j < H1; j++) a += h1[j] * m.w2[j * H2 + o];
          h2[o] = Math.max(a, 0);
        }
        let logit = b3[0];
        for (let o = 0; o < H2; o++) logit += h2[o] * m.w3[o];
        const p = 1 / (1 + Math.exp(-logit));
        const y = labels[i];
        lossSum -= y ? Math.log(Math.max(p, 1e-7)) : Math.log(Math.max(1 - p, 1e-7));
        // Backward.
        const d = p - y;
        gB3[0] += d;
        for (let o = 0; o < H2; o++) {
          gW3[o] += d * h2[o];
          dh2[o] = h2[o] > 0 ? d * m.w3[o] : 0;
          gB2[o] += dh2[o];
        }
        for (let j = 0; j < H1; j++) {
          let a = 0;
          if (h1[j] > 0) {
            for (let o = 0; o < H2; o++) {
              gW2[j * H2 + o] += h1[j] * dh2[o];
              a += m.w2[j * H2 + o] * dh2[o];
            }
          }
          dh1[j] = a;
          gB1[j] += a;
          gWd[j] += a * z;
        }
        for (let c = 0; c < 5; c++) {
          const base = cats[c][i] * H1;
          const g = gTables[c];
          for (let j = 0; j < H1; j++) g[base + j] += dh1[j];
        }
      }
      // Adam step on the batch mean gradient.
      t++;
      const scale = 1 / (end - s * batch);
      const c1 = 1 - beta1 ** t;
      const c2 = 1 - beta2 ** t;
      for (let p = 0; p < params.length; p++) {
        const w = params[p];
        const g = grads[p];
        const mm = am[p];
        const vv = av[p];
        for (let q = 0; q < w.length; q++) {
          const gq = g[q] * scale;
          mm[q] = beta1 * mm[q] + (1 - beta1) * gq;
          vv[q] = beta2 * vv[q] + (1 - beta2) * gq * gq;
          w[q] -= (epochLr * (mm[q] / c1)) / (Math.sqrt(vv[q] / c2) + 1e-8);
        }
      }
      if (onProgress && s % 200 === 0) onProgress(epoch, s + 1, steps, lossSum / end);
    }
    onProgress?.(epoch, steps, steps, lossSum / data.n);
  }
  m.b3 = b3[0];
  return m;
}

/** Reference forward pass in float64 (for checking the exported graphs). */
export function predictFlights(m: FlightModel, b: FlightBatch): Float32Array {
  const out = new Float32Array(b.n);
  const h1 = new Float64Array(H1);
  const cats = [b.month, b.day_of_week, b.hour, b.origin, b.destination];
  const tables = CAT.map((c) => m.tables[c]);
  for (let i = 0; i < b.n; i++) {
    const z = (Math.log(b.distance[i]) - m.distMean) / m.distStd;
    for (let j = 0; j < H1; j++) h1[j] = m.b1[j] + z * m.wDist[j];
    for (let c = 0; c < 5; c++) for (let j = 0; j < H1; j++) h1[j] += tables[c][cats[c][i] * H1 + j];
    let logit = m.b3;
    for (let o = 0; o < H2; o++) {
      let a = m.b2[o];
      for (let j = 0; j < H1; j++) a += Math.max(0, h1[j]) * m.w2[j * H2 + o];
      logit += Math.max(0, a) * m.w3[o];
    }
    out[i] = 1 / (1 + Math.exp(-logit));
  }
  return out;
}

/** Largest first-layer activation over the given rows (the uint8 quantization range of h1). */
export function maxHidden(m: FlightModel, b: FlightBatch): number {
  let max = 0;
  const cats = [b.month, b.day_of_week, b.hour, b.origin, b.destination];
  const tables = CAT.map((c) => m.tables[c]);
  for (let i = 0; i < b.n; i++) {
    const z = (Math.log(b.distance[i]) - m.distMean) / m.distStd;
    for (let j = 0; j < H1; j++) {
      let a = m.b1[j] + z * m.wDist[j];
      for (let c = 0; c < 5; c++) a += tables[c][cats[c][i] * H1 + j];
      if (a > max) max = a;
    }
  }
  return max;
}

export const FLIGHT_INPUTS = [
  { name: 'month', dtype: 'int64', shape: ['N'] },
  { name: 'day_of_week', dtype: 'int64', shape: ['N'] },
  { name: 'hour', dtype: 'int64', shape: ['N'] },
  { name: 'distance', dtype: 'float32', shape: ['N'] },
  { name: 'origin', dtype: 'int64', shape: ['N'] },
  { name: 'destination', dtype: 'int64', shape: ['N'] },
] as const;

/**
 * The ONNX graph (opset 13). `precision: 'int8'` stores the tables and the 32 × 16 layer as
 * int8 and runs that layer as MatMulInteger on a uint8 activation; see the header.
 */
export function exportFlightDelay(m: FlightModel, precision: 'float32' | 'int8', h1Max: number): Uint8Array {
  const g = new GraphBuilder();
  for (const inp of FLIGHT_INPUTS) g.input(inp.name, inp.dtype, [...inp.shape]);
  g.output('p_delay', 'float32', ['N']);

  // First layer: Σ table_f[index_f] + z·w_dist + b1, with z the standardised log distance.
  const z = g.op('Div', [
    g.op('Sub', [g.op('Log', ['distance']), g.init('dist_mean', 'float32', [], [m.distMean])]),
    g.init('dist_std', 'float32', [], [m.distStd]),
  ]);
  const zCol = g.op('Unsqueeze', [z, g.init('axis1', 'int64', [1], [1])]);
  let acc = g.op('Add', [g.op('Mul', [zCol, g.init('w_dist', 'float32', [1, H1], m.wDist)]), g.init('b1', 'float32', [H1], m.b1)]);
  for (const c of CAT) {
    let row: string;
    if (precision === 'float32') {
      row = g.op('Gather', [g.init(`table_${c}`, 'float32', [m.rows[c], H1], m.tables[c]), c], { axis: 0 });
    } else {
      const { q, scales } = quantizeRows(m.tables[c], m.rows[c], H1);
      const rowsQ = g.op('Gather', [g.init(`table_${c}_q`, 'int8', [m.rows[c], H1], q), c], { axis: 0 });
      const rowScale = g.op('Unsqueeze', [g.op('Gather', [g.init(`table_${c}_scale`, 'float32', [m.rows[c]], scales), c], { axis: 0 }), 'axis1']);
      row = g.op('Mul', [g.op('Cast', [rowsQ], { to: 1 }), rowScale]);
    }
    acc = g.op('Add', [acc, row]);
  }
  const h1 = g.op('Relu', [acc]);

  let h2pre: string;
  if (precision === 'float32') {
    h2pre = g.op('Add', [g.op('MatMul', [h1, g.init('w2', 'float32', [H1, H2], m.w2)]), g.init('b2', 'float32', [H2], m.b2)]);
  } else {
    // Per-column symmetric int8 weights: transpose to rows, quantize rows, transpose back.
    const wt = new Float32Array(H1 * H2);
    for (let j = 0; j < H1; j++) for (let o = 0; o < H2; o++) wt[o * H1 + j] = m.w2[j * H2 + o];
    const { q: qt, scales: colScales } = quantizeRows(wt, H2, H1);
    const q = new Int8Array(H1 * H2);
    for (let j = 0; j < H1; j++) for (let o = 0; o < H2; o++) q[j * H2 + o] = qt[o * H1 + j];
    const s1 = h1Max / 255;
    const h1q = g.op('QuantizeLinear', [h1, g.init('h1_scale', 'float32', [], [s1]), g.init('h1_zero', 'uint8', [], [0])]);
    const acc32 = g.op('MatMulInteger', [h1q, g.init('w2_q', 'int8', [H1, H2], q), 'h1_zero', g.init('w2_zero', 'int8', [], [0])]);
    const deq = g.op('Mul', [
      g.op('Cast', [acc32], { to: 1 }),
      g.init(
        'w2_scale',
        'float32',
        [H2],
        Array.from(colScales, (s) => s * s1),
      ),
    ]);
    h2pre = g.op('Add', [deq, g.init('b2', 'float32', [H2], m.b2)]);
  }
  const h2 = g.op('Relu', [h2pre]);
  const logit = g.op('Add', [g.op('MatMul', [h2, g.init('w3', 'float32', [H2, 1], m.w3)]), g.init('b3', 'float32', [1], [m.b3])]);
  g.op('Reshape', [g.op('Sigmoid', [logit]), g.init('flat', 'int64', [1], [-1])], {}, 'p_delay');
  return g.toBytes({
    name: `flight-delay-${precision}`,
    docString: `P(arrival delay > 15 min), ${precision}. Inputs: month 1-12, day_of_week 0-6 (Sunday 0), hour 0-23, distance in miles, origin and destination as vocabulary indices (0 = other).`,
  });
}
