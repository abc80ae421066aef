// npm run models:tune-movielens — needs models/.data/movielens.csv (made by npm run models:build).
/**
 * Harness for movielens-topk: trains on ratings before a global time split and evaluates top-10
 * recommendations for the users active after it.
 *
 * Protocol (same for validation and test): history = the user's liked movies before the split +
 * liked movies in the first half (by time) of their post-split ratings, last MAX_HISTORY kept;
 * targets = liked movies in the second half, not in the history, in the catalogue.
 *
 * - test: train on the first 80% of ratings (by time), evaluate on the rest.
 * - validation: train on the first 90% of that training period (72% of all ratings), evaluate
 *   on the users active in its last 10% (no test data is touched). Hyperparameters are chosen here.
 *
 * Baselines: popularity = most-liked movies in training, excluding the history; recency-weighted
 * popularity = the same with each like weighted 2^(−age / 1 year) at the end of training.
 *
 * Metrics (means over users): recall@10 = hits / min(10, |targets|); NDCG@10 (binary gains);
 * hits@10 = number of targets in the top 10; overlap@10 = |top 10 ∩ popularity top 10| / 10
 * (how far the model is from the popularity baseline; 1 = identical lists).
 *
 * Env: EPOCHS, SEEDS (comma-separated, default 1995), CFG (JSON of extra TopKTrainOptions),
 * ONLY=val|test.
 */
import { loadMovieLens, type Rating } from './lib/movielens.ts';
import { trainTopK, recommend, likedHistories, MAX_HISTORY, type TopKModel, type TopKTrainOptions } from './lib/movielens-topk.ts';

interface Metrics {
  users: number;
  recall: number;
  ndcg: number;
  hits: number;
  overlap: number;
}

const sortedTimes = (ratings: Rating[]) => ratings.map((r) => r.time).sort((a, b) => a - b);

/** Train on ratings before `T`, evaluate on ratings in [T, end). */
function window(ratings: Rating[], T: number, end = Infinity): { T: number; before: Rating[]; after: Rating[] } {
  return { T, before: ratings.filter((r) => r.time < T), after: ratings.filter((r) => r.time >= T && r.time < end) };
}

/** Half-life of the second, stronger baseline: likes weighted 2^(−age / half-life) at the split. */
const RECENT_HALF_LIFE = 365 * 86400;

function evaluate(m: TopKModel, train: Rating[], later: Rating[]): { model: Metrics; pop: Metrics; recent: Metrics } {
  const index = new Map(m.movies.map((x, i) => [x, i + 1]));
  const before = likedHistories(train);
  const byUserLater = new Map<number, Rating[]>();
  for (const r of later) {
    let l = byUserLater.get(r.user);
    if (!l) byUserLater.set(r.user, (l = []));
    l.push(r);
  }
  const likeCount = new Map<number, number>();
  for (const r of train) if (r.rating >= 4 && index.has(r.movie)) likeCount.set(r.movie, (likeCount.get(r.movie) ?? 0) + 1);
  const popular = [...likeCount].sort((a, b) => b[1] - a[1]).map(([mv]) => index.get(mv)!);
  const tEnd = train.reduce((t, r) => Math.max(t, r.time), 0);
  const recentCount = new Map<number, number>();
  for (const r of train)
    if (r.rating >= 4 && index.has(r.movie)) recentCount.set(r.movie, (recentCount.get(r.movie) ?? 0) + 2 ** (-(tEnd - r.time) / RECENT_HALF_LIFE));
  const recentPopular = [...recentCount].sort((a, b) => b[1] - a[1]).map(([mv]) => index.get(mv)!);
  const zero = (): Metrics => ({ users: 0, recall: 0, ndcg: 0, hits: 0, overlap: 0 });
  const mm = zero();
  const pm = zero();
  const rm = zero();
  const disc = Array.from({ length: 10 }, (_, r) => 1 / Math.log2(r + 2));
  const add = (acc: Metrics, rec: number[], targets: Set<number>, pop: Set<number>) => {
    const n = Math.min(10, targets.size);
    let hits = 0;
    let dcg = 0;
    rec.forEach((i, r) => {
      if (targets.has(i)) {
        hits++;
        dcg += disc[r];
      }
    });
    let idcg = 0;
    for (let r = 0; r < n; r++) idcg += disc[r];
    acc.users++;
    acc.recall += hits / n;
    acc.ndcg += dcg / idcg;
    acc.hits += hits;
    acc.overlap += rec.filter((i) => pop.has(i)).length / 10;
  };
  const users = [...byUserLater.keys()].sort((a, b) => a - b);
  for (const u of users) {
    const list = byUserLater.get(u)!;
    list.sort((a, b) => a.time - b.time);
    const half = Math.floor(list.length / 2);
    const hist = [...(before.get(u) ?? []), ...list.slice(0, half).filter((r) => r.rating >= 4)]
      .map((r) => index.get(r.movie) ?? 0)
      .filter((i) => i > 0)
      .slice(-MAX_HISTORY);
    const histSet = new Set(hist);
    const targets = new Set(
      list
        .slice(half)
        .filter((r) => r.rating >= 4)
        .map((r) => index.get(r.movie) ?? 0)
        .filter((i) => i > 0 && !histSet.has(i)),
    );
    if (!hist.length || !targets.size) continue;
    const pr = popular.filter((i) => !histSet.has(i)).slice(0, 10);
    const prSet = new Set(pr);
    add(mm, recommend(m, hist, 10).index, targets, prSet);
    add(pm, pr, targets, prSet);
    add(rm, recentPopular.filter((i) => !histSet.has(i)).slice(0, 10), targets, prSet);
  }
  const mean = (a: Metrics): Metrics => ({
    users: a.users,
    recall: a.recall / a.users,
    ndcg: a.ndcg / a.users,
    hits: a.hits / a.users,
    overlap: a.overlap / a.users,
  });
  return { model: mean(mm), pop: mean(pm), recent: mean(rm) };
}

const fmt = (x: Metrics) => `recall@10 ${x.recall.toFixed(4)} ndcg@10 ${x.ndcg.toFixed(4)} hits@10 ${x.hits.toFixed(3)} overlap@10 ${x.overlap.toFixed(3)}`;

const ml = loadMovieLens('models/.data/movielens.csv');
const times = sortedTimes(ml.ratings);
const at = (f: number) => times[Math.floor(times.length * f)];
const test = window(ml.ratings, at(0.8));
// Validation folds, all inside the training period: train before 64% / 72% of all ratings,
// evaluate on [64%, 72%) / [72%, 80%) (the last 10% and the 10% before it of the test's training period).
const valFolds = [window(ml.ratings, at(0.64), at(0.72)), window(ml.ratings, at(0.72), at(0.8))];
console.log(
  'ratings',
  ml.ratings.length,
  'validation splits',
  valFolds.map((f) => new Date(f.T * 1000).toISOString()).join(' '),
  'test split',
  new Date(test.T * 1000).toISOString(),
);
const seeds = (process.env.SEEDS ?? '1995').split(',').map(Number);
const extra: TopKTrainOptions = JSON.parse(process.env.CFG ?? '{}');
if (process.env.EPOCHS) extra.epochs = Number(process.env.EPOCHS);
console.log('options', JSON.stringify(extra));
type Window = ReturnType<typeof window>;
const sets: [string, Window[]][] = [];
if (process.env.ONLY !== 'test') sets.push(['val', valFolds]);
if (process.env.ONLY !== 'val') sets.push(['test', [test]]);
/** Means weighted by users, over the folds. */
const pool = (xs: Metrics[]): Metrics => {
  const users = xs.reduce((a, x) => a + x.users, 0);
  const w = (k: keyof Metrics) => xs.reduce((a, x) => a + x[k] * x.users, 0) / users;
  return { users, recall: w('recall'), ndcg: w('ndcg'), hits: w('hits'), overlap: w('overlap') };
};
for (const [name, folds] of sets) {
  const perSeed: Metrics[] = [];
  let pop: Metrics | undefined;
  let recent: Metrics | undefined;
  let secs = 0;
  for (const seed of seeds) {
    const ms: Metrics[] = [];
    const ps: Metrics[] = [];
    const rs: Metrics[] = [];
    for (const s of folds) {
      const t0 = performance.now();
      const m = trainTopK(s.before, {
        ...extra,
        seed,
        onProgress: process.env.VERBOSE ? (e, _n, l) => console.log('  epoch', e, l.toFixed(4), ((performance.now() - t0) / 1000).toFixed(1), 's') : undefined,
      });
      secs = Math.max(secs, (performance.now() - t0) / 1000);
      const r = evaluate(m, s.before, s.after);
      if (process.env.BIAS_ONLY) {
        // Diagnostic: the same model with the personal term removed (rank by b_i alone).
        const rb = evaluate({ ...m, q: new Float32Array(m.q.length) }, s.before, s.after);
        console.log(`  ${name} seed ${seed} bias only ${fmt(rb.model)} | full ${fmt(r.model)}`);
      }
      ms.push(r.model);
      ps.push(r.pop);
      rs.push(r.recent);
      if (process.env.VERBOSE)
        console.log(
          `  ${name} fold ${new Date(s.T * 1000).toISOString().slice(0, 10)} seed ${seed} catalogue ${m.movies.length} model ${fmt(r.model)} | popularity ${fmt(r.pop)}`,
        );
    }
    perSeed.push(pool(ms));
    pop = pool(ps);
    recent = pool(rs);
    console.log(`${name} seed ${seed} users ${pop.users} model ${fmt(perSeed.at(-1)!)}`);
  }
  const mean = pool(perSeed.map((x) => ({ ...x, users: 1 })));
  const recalls = perSeed.map((x) => x.recall);
  console.log(`${name} popularity ${fmt(pop!)}`);
  console.log(`${name} recency-weighted popularity (half-life 1 year) ${fmt(recent!)}`);
  console.log(
    `${name} MEAN over ${seeds.length} seed(s) ${fmt(mean)} | recall min ${Math.min(...recalls).toFixed(4)} max ${Math.max(...recalls).toFixed(4)} | popularity ${pop!.recall.toFixed(4)} | train ${secs.toFixed(1)}s`,
  );
}
