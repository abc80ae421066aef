/**
 * movielens-topk: top-k movies for a user described only by the movies they liked (their
 * history, most recent last), so it serves unknown users on the device with no user id.
 *
 * Model (asymmetric matrix factorisation, as in Paterek's NSVD / Koren's asymmetric SVD): a
 * user is u = Σ_{j ∈ history} y_j / √|history|; the score of movie i is b_i + q_i · u. Trained
 * on "liked" (rating ≥ 4) ratings before a global time split, with a softmax over the whole
 * catalogue (the input history masked, as at inference): each epoch a random 30% of each user's
 * likes is the input and the rest are the targets; a user's weight halves every two years
 * between their last like and the end of training (MovieLens tastes drift); AdamW with a
 * linearly decaying rate, on typed arrays, seeded. Chosen on two validation folds inside the
 * training period (models/tune-movielens.mts): recall@10 on the later period is about 0.12
 * against 0.10 for popularity; recency-weighted popularity alone reaches about the same recall,
 * so most of the gain is handling drift, and the personal part q·u adds about 0.025. The older
 * BPR trainer remains as loss 'bpr'.
 *
 * Graph: Gather the history rows of Y, sum, scale; scores = u · Qᵀ + b; the history's own
 * movies are pushed to −1e9 (ScatterElements) so they are never recommended; TopK(k); the
 * catalogue indices are mapped back to MovieLens ids in the graph. int8: Y and Q are int8 with
 * a float scale per movie (row); Q's per-row scales become per-column scales of the score
 * matrix, applied after the MatMul.
 */
import { GraphBuilder } from './onnx-builder.ts';
import { gaussian, quantizeRows, rng, shuffle } from './rng.ts';
import type { Rating } from './movielens.ts';

export const DIM = 32;
export const MAX_HISTORY = 50;
export const LIKED = 4;

export interface TopKModel {
  /** Catalogue: index i + 1 is MovieLens id movies[i]; index 0 is padding. */
  movies: number[];
  y: Float32Array; // [M + 1, DIM]
  q: Float32Array; // [M + 1, DIM]
  b: Float32Array; // [M + 1]
}

export interface TopKTrainOptions {
  seed?: number;
  epochs?: number;
  /** Learning rate: AdamW's for 'softmax' (decayed linearly to 0), plain SGD's for 'bpr'. */
  lr?: number;
  /** 'softmax': decoupled weight decay of Y and Q (AdamW, per step × lr); 'bpr': L2 on every parameter. */
  reg?: number;
  /** 'softmax': full softmax over the catalogue (multinomial likelihood, as in Mult-DAE), the history's
   * own movies masked as at inference; 'bpr': the original trainer (pairs, uniform negatives, SGD). */
  loss?: 'softmax' | 'bpr';
  /** 'bpr' only: sampled negatives per positive. */
  negatives?: number;
  /** Catalogue: movies with at least this many likes in training. */
  minLikes?: number;
  /** 'softmax': how a user's liked list becomes (input history, targets) each epoch: 'random' = a
   * random `keep` fraction is the history (at most MAX_HISTORY), the rest are the targets; 'time' = a
   * random cut, the (last MAX_HISTORY) likes before it are the history, those after it the targets. */
  split?: 'random' | 'time';
  /** 'softmax' with split 'random': fraction of the liked list kept as history. */
  keep?: number;
  /** 'softmax': users per AdamW step. */
  batch?: number;
  /** Init standard deviation of Y and Q. */
  init?: number;
  /** 'softmax': a user's example weight halves every `halfLife` seconds between their targets' time
   * (the first target for 'time', their last like for 'random') and the end of training; 0 = off. */
  halfLife?: number;
  onProgress?: (epoch: number, epochs: number, loss: number) => void;
}

/** Liked histories per user from `ratings`, by time (most recent last). */
export function likedHistories(ratings: Rating[]): Map<number, Rating[]> {
  const byUser = new Map<number, Rating[]>();
  for (const r of ratings) {
    if (r.rating < LIKED) continue;
    let list = byUser.get(r.user);
    if (!list) byUser.set(r.user, (list = []));
    list.push(r);
  }
  for (const list of byUser.values()) list.sort((a, b) => a.time - b.time || a.movie - b.movie);
  return byUser;
}

/**
 * Defaults chosen on validation folds inside the training period (see models/try-ml.mts): on the
 * later period they beat ranking by like counts clearly, mostly thanks to `halfLife` (what is
 * liked drifts with time) and the full softmax with random-subset histories.
 */
const DEFAULTS: Required<Omit<TopKTrainOptions, 'onProgress'>> = {
  seed: 1995,
  epochs: 30,
  lr: 0.01,
  reg: 1,
  loss: 'softmax',
  negatives: 4,
  minLikes: 3,
  split: 'random',
  keep: 0.3,
  batch: 16,
  init: 0.05,
  halfLife: 2 * 365 * 86400,
};

export function trainTopK(train: Rating[], options: TopKTrainOptions = {}): TopKModel {
  const o = { ...DEFAULTS, ...options };
  const r = rng(o.seed);
  const likes = new Map<number, number>();
  for (const x of train) if (x.rating >= LIKED) likes.set(x.movie, (likes.get(x.movie) ?? 0) + 1);
  const movies = [...likes]
    .filter(([, c]) => c >= o.minLikes)
    .map(([m]) => m)
    .sort((a, b) => a - b);
  const index = new Map(movies.map((m, i) => [m, i + 1]));
  const M = movies.length + 1;
  const y = Float32Array.from({ length: M * DIM }, () => gaussian(r) * o.init);
  const q = Float32Array.from({ length: M * DIM }, () => gaussian(r) * o.init);
  const b = new Float32Array(M);
  y.fill(0, 0, DIM);
  q.fill(0, 0, DIM);
  const lists = [...likedHistories(train).values()].map((list) => list.filter((x) => index.has(x.movie))).filter((l) => l.length >= 2);
  const users = lists.map((l) => Int32Array.from(l, (x) => index.get(x.movie)!));
  const times = lists.map((l) => Float64Array.from(l, (x) => x.time));
  const params = { y, q, b, M };
  if (o.loss === 'bpr') trainBpr(users, params, o, r, options.onProgress);
  else trainSoftmax(users, times, params, o, r, options.onProgress);
  return { movies, y, q, b };
}

interface Params {
  y: Float32Array;
  q: Float32Array;
  b: Float32Array;
  M: number;
}
type Opts = Required<Omit<TopKTrainOptions, 'onProgress'>>;

/**
 * Full-softmax training: each example is one user's liked list split into an input history (at
 * most MAX_HISTORY movies) and targets; loss = −mean over targets of log softmax(score) over the
 * catalogue with the history's own movies masked, exactly the scores `recommend` ranks. AdamW on
 * dense gradients, `batch` examples a step.
 */
function trainSoftmax(
  users: Int32Array[],
  times: Float64Array[],
  { y, q, b, M }: Params,
  o: Opts,
  r: () => number,
  onProgress?: (epoch: number, epochs: number, loss: number) => void,
): void {
  const P = [y, q, b];
  const G = P.map((p) => new Float32Array(p.length));
  const A1 = P.map((p) => new Float32Array(p.length));
  const A2 = P.map((p) => new Float32Array(p.length));
  const [gy, gq, gb] = G;
  const beta1 = 0.9;
  const beta2 = 0.999;
  let step = 0;
  let tEnd = 0;
  for (const t of times) tEnd = Math.max(tEnd, t[t.length - 1]);
  const s = new Float32Array(M);
  const u = new Float32Array(DIM);
  const du = new Float32Array(DIM);
  const masked = new Uint8Array(M);
  const isTarget = new Uint8Array(M);
  const order = Uint32Array.from(users.keys());
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    shuffle(order, r);
    let loss = 0;
    let wsum = 0;
    const rate = o.lr * (1 - epoch / o.epochs);
    for (let start = 0; start < order.length; start += o.batch) {
      for (const g of G) g.fill(0);
      const end = Math.min(order.length, start + o.batch);
      for (let e = start; e < end; e++) {
        const h = users[order[e]];
        const n = h.length;
        let input: Int32Array;
        let targets: Int32Array;
        let tFirst: number;
        if (o.split === 'time') {
          const cut = 1 + Math.floor(r() * (n - 1));
          input = h.subarray(Math.max(0, cut - MAX_HISTORY), cut);
          targets = h.subarray(cut);
          tFirst = times[order[e]][cut];
        } else {
          const perm = shuffle(Int32Array.from(h.keys()), r);
          const k = Math.min(n - 1, Math.max(1, Math.round(o.keep * n)));
          const keepIdx = perm.subarray(0, Math.min(k, MAX_HISTORY));
          input = Int32Array.from(keepIdx, (i) => h[i]);
          targets = Int32Array.from(perm.subarray(k), (i) => h[i]);
          tFirst = times[order[e]][n - 1];
        }
        const w = o.halfLife > 0 ? 2 ** (-(tEnd - tFirst) / o.halfLife) : 1;
        const norm = 1 / Math.sqrt(input.length);
        u.fill(0);
        for (const j of input) {
          masked[j] = 1;
          for (let d = 0; d < DIM; d++) u[d] += y[j * DIM + d];
        }
        for (let d = 0; d < DIM; d++) u[d] *= norm;
        let nt = 0;
        for (const t of targets) {
          if (masked[t]) continue;
          isTarget[t] = 1;
          nt++;
        }
        if (nt > 0) {
          let max = -Infinity;
          for (let i = 1; i < M; i++) {
            if (masked[i]) continue;
            let x = b[i];
            const qi = i * DIM;
            for (let d = 0; d < DIM; d++) x += q[qi + d] * u[d];
            s[i] = x;
            if (x > max) max = x;
          }
          let z = 0;
          for (let i = 1; i < M; i++) if (!masked[i]) z += s[i] = Math.exp(s[i] - max);
          const logZ = Math.log(z);
          du.fill(0);
          for (let i = 1; i < M; i++) {
            if (masked[i]) continue;
            const p = s[i] / z;
            let g = p;
            if (isTarget[i]) {
              g -= 1 / nt;
              loss -= (w * (Math.log(s[i]) - logZ)) / nt;
            }
            g *= w;
            gb[i] += g;
            const qi = i * DIM;
            for (let d = 0; d < DIM; d++) {
              du[d] += g * q[qi + d];
              gq[qi + d] += g * u[d];
            }
          }
          for (const j of input) for (let d = 0; d < DIM; d++) gy[j * DIM + d] += norm * du[d];
          wsum += w;
        }
        for (const j of input) masked[j] = 0;
        for (const t of targets) isTarget[t] = 0;
      }
      step++;
      const c1 = 1 - beta1 ** step;
      const c2 = 1 - beta2 ** step;
      for (let k = 0; k < P.length; k++) {
        const p = P[k];
        const g = G[k];
        const m1 = A1[k];
        const m2 = A2[k];
        const decay = k < 2 ? rate * o.reg : 0;
        for (let i = 0; i < p.length; i++) {
          const gi = g[i];
          m1[i] = beta1 * m1[i] + (1 - beta1) * gi;
          m2[i] = beta2 * m2[i] + (1 - beta2) * gi * gi;
          p[i] -= (rate * (m1[i] / c1)) / (Math.sqrt(m2[i] / c2) + 1e-8) + decay * p[i];
        }
      }
      y.fill(0, 0, DIM);
      q.fill(0, 0, DIM);
    }
    onProgress?.(epoch, o.epochs, loss / Math.max(1e-9, wsum));
  }
}

/** The original trainer: BPR with uniform negatives, leave-one-out user vectors, plain SGD. */
function trainBpr(
  users: Int32Array[],
  { y, q, b, M }: Params,
  { epochs, lr, reg, negatives }: Opts,
  r: () => number,
  onProgress?: (epoch: number, epochs: number, loss: number) => void,
): void {
  const order = Uint32Array.from(users.keys());
  const s = new Float32Array(DIM);
  const u = new Float32Array(DIM);
  const gu = new Float32Array(DIM);
  for (let epoch = 0; epoch < epochs; epoch++) {
    shuffle(order, r);
    let loss = 0;
    let pairs = 0;
    const rate = lr * (1 - epoch / (epochs + 1));
    for (const ui of order) {
      const h = users[ui];
      const n = h.length;
      const norm = 1 / Math.sqrt(n - 1);
      s.fill(0);
      for (const j of h) for (let d = 0; d < DIM; d++) s[d] += y[j * DIM + d];
      gu.fill(0);
      const positives = shuffle(Int32Array.from(h), r);
      for (const i of positives) {
        for (let d = 0; d < DIM; d++) u[d] = (s[d] - y[i * DIM + d]) * norm;
        for (let k = 0; k < negatives; k++) {
          const j = 1 + Math.floor(r() * (M - 1));
          if (j === i) continue;
          let x = b[i] - b[j];
          for (let d = 0; d < DIM; d++) x += u[d] * (q[i * DIM + d] - q[j * DIM + d]);
          const g = 1 / (1 + Math.exp(x)); // σ(−x)
          loss += Math.log1p(Math.exp(-x));
          pairs++;
          b[i] += rate * (g - reg * b[i]);
          b[j] += rate * (-g - reg * b[j]);
          for (let d = 0; d < DIM; d++) {
            const qi = q[i * DIM + d];
            const qj = q[j * DIM + d];
            gu[d] += g * (qi - qj);
            q[i * DIM + d] += rate * (g * u[d] - reg * qi);
            q[j * DIM + d] += rate * (-g * u[d] - reg * qj);
          }
        }
      }
      // The user vector's gradient goes to every history row (leaving out each positive's own
      // row is a second-order correction we skip).
      const step = (rate * norm) / positives.length;
      for (const j of h) for (let d = 0; d < DIM; d++) y[j * DIM + d] += step * gu[d] - rate * reg * y[j * DIM + d];
    }
    onProgress?.(epoch, epochs, loss / Math.max(1, pairs));
  }
}

/** Reference top-k for histories of catalogue indices (float64 arithmetic). */
export function recommend(m: TopKModel, history: ArrayLike<number>, k: number): { index: number[]; score: number[] } {
  const M = m.movies.length + 1;
  const u = new Float64Array(DIM);
  let n = 0;
  for (let t = 0; t < history.length; t++) {
    const j = history[t];
    if (j <= 0) continue;
    n++;
    for (let d = 0; d < DIM; d++) u[d] += m.y[j * DIM + d];
  }
  const norm = 1 / Math.sqrt(Math.max(1, n));
  const seen = new Set(Array.from(history));
  const scores: [number, number][] = [];
  for (let i = 1; i < M; i++) {
    if (seen.has(i)) continue;
    let s = m.b[i];
    for (let d = 0; d < DIM; d++) s += u[d] * norm * m.q[i * DIM + d];
    scores.push([i, s]);
  }
  scores.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const top = scores.slice(0, k);
  return { index: top.map((t) => t[0]), score: top.map((t) => t[1]) };
}

export const TOPK_INPUTS = [
  { name: 'history', dtype: 'int64', shape: ['N', 'H'] },
  { name: 'k', dtype: 'int64', shape: [1] },
] as const;

export function exportTopK(m: TopKModel, precision: 'float32' | 'int8'): Uint8Array {
  const M = m.movies.length + 1;
  const g = new GraphBuilder();
  g.input('history', 'int64', ['N', 'H']);
  g.input('k', 'int64', [1]);
  g.output('movie_ids', 'int64', ['N', 'K']);
  g.output('scores', 'float32', ['N', 'K']);

  // The padding row (index 0) must never win: its bias is −1e9.
  const bias = Float32Array.from(m.b);
  bias[0] = -1e9;

  // u = Σ y[history] / √(number of non-padding entries)
  let rows: string;
  if (precision === 'float32') {
    rows = g.op('Gather', [g.init('y', 'float32', [M, DIM], m.y), 'history'], { axis: 0 });
  } else {
    const { q, scales } = quantizeRows(m.y, M, DIM);
    const rq = g.op('Gather', [g.init('y_q', 'int8', [M, DIM], q), 'history'], { axis: 0 });
    const rs = g.op('Unsqueeze', [g.op('Gather', [g.init('y_scale', 'float32', [M], scales), 'history'], { axis: 0 }), g.init('axis2', 'int64', [1], [2])]);
    rows = g.op('Mul', [g.op('Cast', [rq], { to: 1 }), rs]);
  }
  const sum = g.op('ReduceSum', [rows, g.init('axis1', 'int64', [1], [1])], { keepdims: 0 });
  const count = g.op('ReduceSum', [g.op('Cast', [g.op('Greater', ['history', g.init('zero64', 'int64', [], [0])])], { to: 1 }), 'axis1'], { keepdims: 1 });
  const u = g.op('Div', [sum, g.op('Sqrt', [g.op('Max', [count, g.init('one', 'float32', [], [1])])])]);

  let scores: string;
  if (precision === 'float32') {
    const qt = new Float32Array(DIM * M);
    for (let i = 0; i < M; i++) for (let d = 0; d < DIM; d++) qt[d * M + i] = m.q[i * DIM + d];
    scores = g.op('MatMul', [u, g.init('q_t', 'float32', [DIM, M], qt)]);
  } else {
    const { q, scales } = quantizeRows(m.q, M, DIM);
    const qt = new Int8Array(DIM * M);
    for (let i = 0; i < M; i++) for (let d = 0; d < DIM; d++) qt[d * M + i] = q[i * DIM + d];
    scores = g.op('Mul', [g.op('MatMul', [u, g.op('Cast', [g.init('q_t_q', 'int8', [DIM, M], qt)], { to: 1 })]), g.init('q_scale', 'float32', [M], scales)]);
  }
  scores = g.op('Add', [scores, g.init('bias', 'float32', [M], bias)]);
  // Never recommend what the user already liked.
  const minus = g.op('Add', [g.op('Mul', [g.op('Cast', ['history'], { to: 1 }), g.init('zero', 'float32', [], [0])]), g.init('neg', 'float32', [], [-1e9])]);
  scores = g.op('ScatterElements', [scores, 'history', minus], { axis: 1 });
  const [values, indices] = g.node('TopK', [scores, 'k'], { outputs: 2, attrs: { axis: -1, largest: 1, sorted: 1 } });
  g.op('Identity', [values], {}, 'scores');
  g.op('Gather', [g.init('movie_ids_table', 'int64', [M], [0, ...m.movies]), indices], { axis: 0 }, 'movie_ids');
  return g.toBytes({
    name: `movielens-topk-${precision}`,
    docString: `Top-k MovieLens movies for a history of liked movies, ${precision}. Input history: catalogue indices (0 = padding), most recent last; k: how many. Outputs: MovieLens ids and scores, best first; the history's own movies are excluded.`,
  });
}
