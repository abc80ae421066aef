// Small helpers shared by the benchmarks: a markdown table, progress lines on stderr, timing,
// and a dependency-free SVG line chart (log scales allowed).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** A benchmark's numeric option `--name N`, else `fallback`. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** A markdown table; numbers are formatted by the caller. */
export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join('\n');
}

/** Median wall time in ms of `reps` runs of fn (fn returns something to keep it alive). */
export function timeMedian(reps: number, fn: () => unknown): number {
  const times: number[] = [];
  let sink: unknown;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    sink = fn();
    times.push(performance.now() - t0);
  }
  if (sink === Symbol.for('never')) console.log(sink);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(digits - 1)}M`;
  if (a >= 1e3) return `${(x / 1e3).toFixed(digits - 1)}k`;
  if (a < 1e-2) return x.toExponential(1);
  return x.toPrecision(digits);
}

export interface Series {
  name: string;
  points: [number, number][];
}

/** Writes an SVG line chart. Zero or negative values on a log axis are drawn at its floor. */
export function writeLineChart(
  path: string,
  {
    title,
    xLabel,
    yLabel,
    series,
    logX = false,
    logY = false,
    xTicks,
  }: { title: string; xLabel: string; yLabel: string; series: Series[]; logX?: boolean; logY?: boolean; xTicks?: { at: number; label: string }[] },
): void {
  const W = 760;
  const H = 440;
  const m = { l: 80, r: 190, t: 40, b: 60 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => (logY ? y > 0 : Number.isFinite(y)));
  const tx = (v: number) => (logX ? Math.log10(v) : v);
  const ty = (v: number) => (logY ? Math.log10(Math.max(v, yMin)) : v);
  let yMin = Math.min(...ys);
  let yMax = Math.max(...ys);
  if (logY) {
    yMin = 10 ** Math.floor(Math.log10(yMin));
    yMax = 10 ** Math.ceil(Math.log10(yMax));
  } else {
    yMin = Math.min(0, yMin);
    yMax = yMax * 1.05 || 1;
  }
  const x0 = tx(Math.min(...xs));
  const x1 = tx(Math.max(...xs));
  const y0 = ty(yMin);
  const y1 = ty(yMax);
  const px = (v: number) => m.l + ((tx(v) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const py = (v: number) => H - m.b - ((ty(v) - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const colors = ['#1b6ac9', '#d1495b', '#00798c', '#edae49', '#66a182', '#8d5b4c', '#6c4f9c'];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`);
  // Y grid and ticks.
  const yTicks: number[] = [];
  if (logY) for (let e = Math.log10(yMin); e <= Math.log10(yMax) + 1e-9; e++) yTicks.push(10 ** e);
  else for (let i = 0; i <= 5; i++) yTicks.push(yMin + ((yMax - yMin) * i) / 5);
  for (const t of yTicks) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end">${logY ? `1e${Math.round(Math.log10(t))}` : fmt(t)}</text>`);
  }
  for (const t of xTicks ?? [...new Set(xs)].map((v) => ({ at: v, label: fmt(v) }))) {
    out.push(`<line x1="${px(t.at)}" x2="${px(t.at)}" y1="${m.t}" y2="${H - m.b}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${px(t.at)}" y="${H - m.b + 16}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  out.push(
    `<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/>`,
  );
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 18}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = colors[i % colors.length];
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const p of s.points) out.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${c}"/>`);
    out.push(
      `<rect x="${W - m.r + 14}" y="${m.t + i * 20}" width="14" height="4" fill="${c}"/><text x="${W - m.r + 34}" y="${m.t + i * 20 + 6}">${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, out.join('\n'));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
