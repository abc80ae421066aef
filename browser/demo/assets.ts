/** What the demo page needs beside the runtime, copied by browser/build.ts: the recommender's catalogue (titles by movie id). */
export const DEMO_ASSETS: { from: string; to: string }[] = [{ from: 'models/movielens-topk/catalogue.json', to: 'movielens-topk/catalogue.json' }];
