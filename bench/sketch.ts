// npm run bench:sketch — our merging t-digest against the `tdigest` package (Welch's
// red-black-tree t-digest, the most used one on npm) and DataDog's DDSketch, measured side by
// side in one run on 1e6 values of four shapes: values added per second, time to merge 1,000
// digests, rank error at seven quantiles, and serialised bytes. Then integer data with ties
// (what discrete features are: counts, codes, hours), 50 parts of 4,000 values merged, as the
// aggregator merges summaries: rank error and bytes.
//
// Options: --n 1000000 (values per shape), --quick (1e5 values, fewer repetitions).
import { writeFileSync, mkdirSync } from 'node:fs';
import { DDSketch } from '@datadog/sketches-js';
// @ts-expect-error: the tdigest package ships no types.
import tdigestPkg from 'tdigest';
import { TDigest } from '../core/index.ts';
import { generate, INTEGER_SHAPES, rankError, rng, type Shape } from '../test/support/data.ts';
import { fmt, markdownTable, progress, timeMedian, writeLineChart } from './lib/report.ts';

interface WelchDigest {
  push(x: number): void;
  push_centroid(c: { mean: number; n: number }[]): void;
  toArray(): { mean: number; n: number }[];
  percentile(p: number): number;
  compress(): void;
  size(): number;
}
const WelchTDigest = (tdigestPkg as { TDigest: new (delta?: number) => WelchDigest }).TDigest;

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const N = Number(args[args.indexOf('--n') + 1] || 0) || (quick ? 100_000 : 1_000_000);
const REPS = quick ? 3 : 5;
const PARTS = 1000;
const SHAPES: Shape[] = ['uniform', 'exponential', 'lognormal', 'bimodal'];
const QS = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999];

interface Impl {
  name: string;
  /** Build from values with one call per value (the per-request path). */
  build(xs: Float64Array): unknown;
  quantile(d: unknown, q: number): number;
  merge(parts: unknown[]): unknown;
  bytes(d: unknown): number;
  bytesNote?: string;
}

const impls: Impl[] = [
  {
    name: 'ours: TDigest δ=100',
    build(xs) {
      const d = new TDigest({ compression: 100 });
      for (let i = 0; i < xs.length; i++) d.add(xs[i]);
      return d;
    },
    quantile: (d, q) => (d as TDigest).quantile(q),
    merge(parts) {
      const d = new TDigest({ compression: 100 });
      for (const p of parts) d.merge(p as TDigest);
      d.quantile(0.5); // include the final merge pass
      return d;
    },
    bytes: (d) => (d as TDigest).toBytes().length,
  },
  {
    name: 'tdigest 0.1.3 δ=0.01',
    build(xs) {
      const d = new WelchTDigest(0.01);
      for (let i = 0; i < xs.length; i++) d.push(xs[i]);
      d.compress();
      return d;
    },
    quantile: (d, q) => (d as WelchDigest).percentile(q),
    merge(parts) {
      const d = new WelchTDigest(0.01);
      for (const p of parts) d.push_centroid((p as WelchDigest).toArray());
      d.compress();
      return d;
    },
    // No serialiser ships with the package: count the minimum a binary form would need.
    bytes: (d) => 16 * (d as WelchDigest).size(),
    bytesNote: '16 B × centroids (no serialiser)',
  },
  {
    name: 'DDSketch 2.1 α=0.01',
    build(xs) {
      const d = new DDSketch({ relativeAccuracy: 0.01 });
      for (let i = 0; i < xs.length; i++) d.accept(xs[i]);
      return d;
    },
    quantile: (d, q) => (d as DDSketch).getValueAtQuantile(q),
    merge(parts) {
      const d = new DDSketch({ relativeAccuracy: 0.01 });
      for (const p of parts) d.merge(p as DDSketch);
      return d;
    },
    bytes: (d) => (d as DDSketch).toProto().length,
  },
];

interface Row {
  shape: Shape;
  impl: string;
  addsPerSec: number;
  addAllPerSec?: number;
  mergeMs: number;
  rankErrors: number[];
  bytes: number;
}

const rows: Row[] = [];
const t0 = performance.now();
for (const shape of SHAPES) {
  const xs = generate(shape, N, 2026);
  const sorted = xs.slice().sort();
  const partSize = Math.floor(N / PARTS);
  for (const impl of impls) {
    progress(`${shape}: ${impl.name}: adding ${N.toLocaleString()} values`);
    const reps = impl.name.startsWith('tdigest') ? Math.min(3, REPS) : REPS;
    let built: unknown;
    const addMs = timeMedian(reps, () => (built = impl.build(xs)));
    let addAllPerSec: number | undefined;
    if (impl.name.startsWith('ours')) {
      const ms = timeMedian(REPS, () => new TDigest({ compression: 100 }).addAll(xs).quantile(0.5));
      addAllPerSec = (N / ms) * 1000;
    }
    progress(`${shape}: ${impl.name}: merging ${PARTS} digests`);
    const parts = Array.from({ length: PARTS }, (_, i) => impl.build(xs.subarray(i * partSize, (i + 1) * partSize)));
    const mergeMs = timeMedian(reps, () => impl.merge(parts));
    rows.push({
      shape,
      impl: impl.name,
      addsPerSec: (N / addMs) * 1000,
      addAllPerSec,
      mergeMs,
      rankErrors: QS.map((q) => rankError(sorted, q, impl.quantile(built, q))),
      bytes: impl.bytes(built),
    });
  }
}
// Integer data with ties, merged from 50 parts.
const INT_PARTS = 50;
const INT_PART_SIZE = 4000;
const intRows: { shape: string; impl: string; rankErrors: number[]; bytes: number; note: string }[] = [];
for (const [shape, draw] of INTEGER_SHAPES) {
  const r = rng(shape.length * 7919);
  const parts = Array.from({ length: INT_PARTS }, () => Float64Array.from({ length: INT_PART_SIZE }, () => draw(r)));
  const all = new Float64Array(INT_PARTS * INT_PART_SIZE);
  parts.forEach((p, i) => all.set(p, i * INT_PART_SIZE));
  const sorted = all.slice().sort();
  const distinct = new Set(all).size;
  for (const impl of impls) {
    progress(`${shape}: ${impl.name}: merging ${INT_PARTS} digests of ${INT_PART_SIZE} integers`);
    const merged = impl.merge(parts.map((p) => impl.build(p)));
    let note = '';
    if (merged instanceof TDigest) {
      const bytes = merged.toBytes();
      const roundTrip = TDigest.fromBytes(bytes).toBytes();
      const same = roundTrip.length === bytes.length && roundTrip.every((b, i) => b === bytes[i]);
      note = `${merged.exact ? 'exact' : 'centroids'}, round trip ${same ? 'byte-exact' : 'DIFFERS'}`;
    }
    intRows.push({
      shape: `${shape} (${distinct} distinct)`,
      impl: impl.name,
      rankErrors: QS.map((q) => rankError(sorted, q, impl.quantile(merged, q))),
      bytes: impl.bytes(merged),
      note,
    });
  }
}
progress(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const header = ['data', 'sketch', 'adds/s', 'merge 1,000', ...QS.map((q) => `err q=${q}`), 'bytes'];
const table = markdownTable(
  header,
  rows.map((r) => [
    r.shape,
    r.impl,
    fmt(r.addsPerSec) + (r.addAllPerSec ? ` (addAll ${fmt(r.addAllPerSec)})` : ''),
    `${r.mergeMs.toFixed(1)} ms`,
    ...r.rankErrors.map((e) => (e === 0 ? '0' : e.toExponential(1))),
    String(r.bytes),
  ]),
);

// Targets from the issue, at compression 100.
const ours = rows.filter((r) => r.impl.startsWith('ours'));
const welch = rows.filter((r) => r.impl.startsWith('tdigest'));
const speedups = ours.map((r, i) => r.addsPerSec / welch[i].addsPerSec);
const tailErr = Math.max(...ours.flatMap((r) => [r.rankErrors[0], r.rankErrors[QS.length - 1]]));
const midErr = Math.max(...ours.flatMap((r) => r.rankErrors.slice(1, -1)));
const maxBytes = Math.max(...ours.map((r) => r.bytes));
const oursInt = intRows.filter((r) => r.impl.startsWith('ours'));
const intTail = Math.max(...oursInt.flatMap((r) => [r.rankErrors[0], r.rankErrors[QS.length - 1]]));
const intMid = Math.max(...oursInt.flatMap((r) => r.rankErrors.slice(1, -1)));
const intBytes = Math.max(...oursInt.map((r) => r.bytes));
const intTable = markdownTable(
  ['data', 'sketch', ...QS.map((q) => `err q=${q}`), 'bytes', ''],
  intRows.map((r) => [r.shape, r.impl, ...r.rankErrors.map((e) => (e === 0 ? '0' : e.toExponential(1))), String(r.bytes), r.note]),
);
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
const targets = markdownTable(
  ['target (compression 100)', 'measured', 'verdict'],
  [
    ['adds ≥ 25x the tdigest package', `${Math.min(...speedups).toFixed(1)}x – ${Math.max(...speedups).toFixed(1)}x`, verdict(Math.min(...speedups) >= 25)],
    ['rank error ≤ 1e-4 at q = 0.001, 0.999', tailErr.toExponential(1), verdict(tailErr <= 1e-4)],
    ['rank error ≤ 1e-3 elsewhere', midErr.toExponential(1), verdict(midErr <= 1e-3)],
    ['≤ 1.5 KB serialised', `${maxBytes} B`, verdict(maxBytes <= 1536)],
    ['integers with ties, 50 parts merged: rank error ≤ 1e-4 at q = 0.001, 0.999', intTail === 0 ? '0' : intTail.toExponential(1), verdict(intTail <= 1e-4)],
    ['integers with ties, 50 parts merged: rank error ≤ 1e-3 elsewhere', intMid === 0 ? '0' : intMid.toExponential(1), verdict(intMid <= 1e-3)],
    ['integers with ties, 50 parts merged: ≤ 1.5 KB', `${intBytes} B`, verdict(intBytes <= 1536)],
  ],
);

console.log(`\n## Sketches: ${N.toLocaleString()} values per shape, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)}\n`);
console.log(table);
console.log(`\nBytes for tdigest: ${impls[1].bytesNote}. Rank error: distance from q to the exact rank range of the estimate.\n`);
console.log(`\n## Integer data with ties: ${INT_PARTS} parts of ${INT_PART_SIZE.toLocaleString()} values merged\n`);
console.log(intTable);
console.log('');
console.log(targets);

mkdirSync('bench/out', { recursive: true });
writeFileSync('bench/out/sketch.json', JSON.stringify({ n: N, qs: QS, rows, integers: intRows }, null, 2));
writeLineChart('bench/sketch-rank-error.svg', {
  title: `Rank error by quantile (worst of 4 shapes, ${N.toLocaleString()} values)`,
  xLabel: 'quantile q',
  yLabel: 'rank error (log)',
  logY: true,
  series: impls.map((impl) => ({
    name: impl.name,
    points: QS.map((_, i) => [i, Math.max(1e-7, ...rows.filter((r) => r.impl === impl.name).map((r) => r.rankErrors[i]))] as [number, number]),
  })),
  xTicks: QS.map((q, i) => ({ at: i, label: String(q) })),
});
progress('wrote bench/out/sketch.json and bench/sketch-rank-error.svg');
