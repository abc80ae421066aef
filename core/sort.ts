/**
 * Sorting of float64 keys (optionally carrying float64 weights) for the t-digest buffer.
 *
 * TypedArray.prototype.sort costs about 60–80 ns per element here at the t-digest's buffer
 * sizes, which would dominate `TDigest.add`. This is an LSD radix sort on the upper 32 bits
 * of each double's IEEE-754 pattern (sign, exponent and 20 mantissa bits), mapped to an
 * unsigned key whose order is the numeric order, in four 8-bit passes (a pass whose digit is
 * the same for every key is skipped, which is common: the top byte is constant for values
 * of one sign and similar magnitude). Keys that tie on their upper 32 bits differ by less
 * than 2^-20 relatively and end up adjacent; a final insertion pass puts them in exact order
 * (linear time, as such ties are few and local).
 *
 * Finite inputs only (NaN is never buffered); −0 sorts before +0, which compare equal.
 */
let keysA = new Uint32Array(0);
let keysB = new Uint32Array(0);
let valsB = new Float64Array(0);
let wtsB = new Float64Array(0);
const counts = new Uint32Array(4 * 256);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // index of the high word

function ensureScratch(n: number, weighted: boolean): void {
  if (keysA.length < n) {
    const cap = Math.max(n, keysA.length * 2, 1024);
    keysA = new Uint32Array(cap);
    keysB = new Uint32Array(cap);
    valsB = new Float64Array(cap);
  }
  if (weighted && wtsB.length < keysA.length) wtsB = new Float64Array(keysA.length);
}

/** Sorts `vals[0, n)` ascending in place, permuting `wts[0, n)` alongside when given. */
export function sortFloat64(vals: Float64Array, n: number, wts?: Float64Array): void {
  if (n < 64) {
    insertionSort(vals, 0, n, wts);
    return;
  }
  ensureScratch(n, wts !== undefined);
  const hiWords = new Uint32Array(vals.buffer, vals.byteOffset, vals.length * 2);
  counts.fill(0);
  let ka = keysA;
  for (let i = 0; i < n; i++) {
    const hi = hiWords[2 * i + HI];
    const key = (hi ^ ((hi >> 31) | 0x80000000)) >>> 0;
    ka[i] = key;
    counts[key & 0xff]++;
    counts[256 + ((key >>> 8) & 0xff)]++;
    counts[512 + ((key >>> 16) & 0xff)]++;
    counts[768 + (key >>> 24)]++;
  }
  let kb = keysB;
  let va: Float64Array = vals;
  let vb: Float64Array = valsB;
  let wa: Float64Array | undefined = wts;
  let wb: Float64Array | undefined = wts ? wtsB : undefined;
  for (let pass = 0; pass < 4; pass++) {
    const base = pass * 256;
    const shift = pass * 8;
    // Skip a pass whose digit is the same for every key.
    if (counts[base + ((ka[0] >>> shift) & 0xff)] === n) continue;
    let sum = 0;
    for (let d = 0; d < 256; d++) {
      const c = counts[base + d];
      counts[base + d] = sum;
      sum += c;
    }
    if (wa) {
      for (let i = 0; i < n; i++) {
        const key = ka[i];
        const pos = counts[base + ((key >>> shift) & 0xff)]++;
        kb[pos] = key;
        vb[pos] = va[i];
        wb![pos] = wa[i];
      }
      const tw = wa;
      wa = wb;
      wb = tw;
    } else {
      for (let i = 0; i < n; i++) {
        const key = ka[i];
        const pos = counts[base + ((key >>> shift) & 0xff)]++;
        kb[pos] = key;
        vb[pos] = va[i];
      }
    }
    const tk = ka;
    ka = kb;
    kb = tk;
    const tv = va;
    va = vb;
    vb = tv;
  }
  if (va !== vals) {
    vals.set(va.subarray(0, n));
    if (wts && wa) wts.set(wa.subarray(0, n));
  }
  // Many distinct values that share their upper 32 bits (timestamps within minutes of each
  // other, say) would make the fix-up quadratic: past a linear budget of moves, finish with
  // a comparison sort instead.
  if (!insertionSort(vals, 0, n, wts, 8 * n)) comparisonSort(vals, n, wts);
}

/** Returns false, leaving a permutation of the input, when it needed more than `budget` moves. */
function insertionSort(vals: Float64Array, from: number, to: number, wts?: Float64Array, budget = Infinity): boolean {
  for (let i = from + 1; i < to; i++) {
    const v = vals[i];
    if (!(v < vals[i - 1])) continue;
    const w = wts ? wts[i] : 0;
    let j = i - 1;
    while (j >= from && vals[j] > v) {
      vals[j + 1] = vals[j];
      if (wts) wts[j + 1] = wts[j];
      j--;
    }
    vals[j + 1] = v;
    if (wts) wts[j + 1] = w;
    budget -= i - 1 - j;
    if (budget < 0) return false;
  }
  return true;
}

function comparisonSort(vals: Float64Array, n: number, wts?: Float64Array): void {
  if (!wts) {
    vals.subarray(0, n).sort();
    return;
  }
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => vals[a] - vals[b]);
  const v = vals.slice(0, n);
  const w = wts.slice(0, n);
  for (let i = 0; i < n; i++) {
    vals[i] = v[order[i]];
    wts[i] = w[order[i]];
  }
}
