/**
 * GET /dashboard: the operator's page (dashboard.html, dashboard.css and this script, built by
 * browser/build.ts into the static assets). Charts are drawn as inline SVG by the small code
 * below, no framework, nothing fetched from anywhere but this origin's operator API; the page is
 * served under a Content-Security-Policy (browser/build.ts writes it into the assets' _headers)
 * that allows this script and its stylesheet from 'self' and connections to 'self' only.
 * Everything it draws goes through textContent/setAttribute, never HTML.
 *
 * The page reads the operator token from an input (kept in sessionStorage, so it dies with the
 * tab) or from `#token=...` in the fragment (removed from the address bar once read; fragments
 * are never sent to a server). Deep links: `?model=&from=&to=&step=&range=&reference=&refresh=`
 * (from/to as ISO dates or ms since the epoch, step in ms or as 1m/5m/1h/1d, range a preset such
 * as 15m, 1h, 6h, 24h, 7d when from/to are absent, refresh in seconds).
 *
 * Contract for tests and scripts: `document.body.dataset.state` is 'loading', then 'ready' once
 * every panel is drawn from the API's answers, 'token' while waiting for a token, or 'error'
 * with the reason in `#message`. `body.dataset.from/to/step` are the range actually queried
 * (aligned to whole steps, since the aggregator keeps minute buckets).
 */
import type {
  Alert,
  AlertsAnswer,
  DriftAnswer,
  DriftWindow,
  ErrorBodyV1,
  HistoryAnswer,
  HistoryEntry,
  JudgedSketch,
  PerformanceAnswer,
  RolloutsAnswer,
  VersionSummary,
  VersionsAnswer,
} from '../../core/contracts.ts';
import type { DriftResult } from '../../core/drift.ts';
import type { SketchDescription } from '../../core/sketch.ts';
import type { RealizedPerformance as Realized } from '../../core/outcomes.ts';

// --- what the page reads from the operator API ------------------------------------------------
// The drift, alerts and versions answers are core/contracts.ts's, the types the worker checks
// what it answers against. Numbers the worker may not have (an empty sketch's quantiles, a
// window's latency) are null there.

type Num = number | null | undefined;
type Section = 'features' | 'outputs';

/** `GET /v1/models`: the members drawn here (the worker answers more); no contract types it. */
interface ModelInfo {
  name: string;
  version?: string;
}

// --- constants -------------------------------------------------------------------------------
const SVGNS = 'http://www.w3.org/2000/svg';
const TOKEN_KEY = 'driftwatch.operatorToken';
const C = {
  live: '#2f6db5',
  liveBand: 'rgba(47,109,181,0.24)',
  base: '#7d8896',
  baseBand: 'rgba(125,136,150,0.18)',
  p99: '#d9822b',
  grid: '#e9ecf0',
  axis: '#b5bdc7',
  empty: '#f2f4f6',
  drift: '#b8322a',
  mark: '#3b0f0b',
};
type Served = 'edge' | 'cache' | 'fallback' | 'error';
const SERVED: [Served, string, string][] = [
  ['edge', 'edge', '#2f6db5'],
  ['cache', 'cache', '#3aa17e'],
  ['fallback', 'fallback', '#e0a526'],
  ['error', 'error', '#c8453b'],
];
const PRESETS: [string, string, number][] = [
  ['15m', 'last 15 min', 15 * 60e3],
  ['1h', 'last hour', 3600e3],
  ['6h', 'last 6 h', 6 * 3600e3],
  ['24h', 'last 24 h', 86400e3],
  ['7d', 'last 7 days', 7 * 86400e3],
  ['30d', 'last 30 days', 30 * 86400e3],
];
const STEPS: [string, string][] = [
  ['', 'auto'],
  ['60000', '1 min'],
  ['300000', '5 min'],
  ['900000', '15 min'],
  ['3600000', '1 hour'],
  ['21600000', '6 hours'],
  ['86400000', '1 day'],
];
// statistic/threshold -> colour: pale blue well below the threshold, warming to amber at it, red far past it.
const HEAT: [number, [number, number, number]][] = [
  [0, [234, 241, 247]],
  [0.35, [207, 225, 239]],
  [0.45, [246, 231, 180]],
  [0.5, [242, 193, 78]],
  [0.75, [226, 122, 52]],
  [1, [160, 36, 30]],
];
// The drift route's references: the baseline in force, or the same window a day/week earlier, or the one before.
const REFERENCES: [string, string][] = [
  ['', 'baseline'],
  ['previous_day', 'previous day'],
  ['previous_week', 'previous week'],
  ['previous_window', 'previous window'],
];
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// --- DOM helpers -----------------------------------------------------------------------------

/** The page's element matching `sel` (dashboard.html has them all), typed by the caller. */
function $<T extends Element = HTMLElement>(sel: string): T {
  const node = document.querySelector<T>(sel);
  if (!node) throw new Error(`dashboard.html has no ${sel}`);
  return node;
}
type Kid = Node | string | number | null | undefined | false | readonly Kid[];
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

function add<N extends Node>(node: N, kids: readonly Kid[]): N {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) add(node, k);
    else node.appendChild(typeof k === 'object' ? (k as Node) : document.createTextNode(String(k)));
  }
  return node;
}
/** `text` sets textContent, `on<event>` adds a listener, anything else is an attribute; null, undefined and false are left out. */
function attrs<E extends Element>(node: E, a: Attrs | undefined): E {
  for (const [key, v] of Object.entries(a ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') node.addEventListener(key.slice(2), v);
    else if (key === 'text') node.textContent = String(v);
    else node.setAttribute(key, String(v));
  }
  return node;
}
const h = <K extends keyof HTMLElementTagNameMap>(tag: K, a?: Attrs, ...kids: Kid[]) => add(attrs(document.createElement(tag), a), kids);
const s = <K extends keyof SVGElementTagNameMap>(tag: K, a?: Attrs, ...kids: Kid[]) => add(attrs(document.createElementNS(SVGNS, tag), a), kids);
const tip = (text: string) => s('title', { text });

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
class PageError extends Error {}

const finite = (v: unknown): v is number => Number.isFinite(v);

// --- formatting ------------------------------------------------------------------------------
const pad = (n: number) => String(n).padStart(2, '0');
const day = (t: number) => {
  const d = new Date(t);
  return `${MON[d.getUTCMonth()]} ${d.getUTCDate()}`;
};
const hm = (t: number) => {
  const d = new Date(t);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
};
const stamp = (t: number) => `${day(t)} ${new Date(t).getUTCFullYear()}, ${hm(t)} UTC`;
const short = (t: number) => `${day(t)} ${hm(t)}`;
function num(v: Num): string {
  if (!finite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e4) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return Math.round(v).toLocaleString('en-US');
  if (a >= 1) return String(+v.toFixed(2));
  if (a === 0) return '0';
  return String(+v.toPrecision(2));
}
const int = (v: Num) => (finite(v) ? Math.round(v).toLocaleString('en-US') : '–');
const pct = (v: Num) => (finite(v) ? `${v * 100 >= 10 || v === 0 ? (v * 100).toFixed(0) : (v * 100).toFixed(1)}%` : '–');
const ms = (v: Num) => (!finite(v) ? '–' : v >= 1000 ? `${num(v / 1000)} s` : `${num(v)} ms`);
function dur(d: number): string {
  const m = Math.round(d / 60e3);
  if (m < 60) return `${m} min`;
  if (m < 48 * 60) return `${(m / 60).toFixed(m < 600 ? 1 : 0)} h`;
  return `${Math.round(m / 1440)} d`;
}
const stepName = (st: number) => (st % 86400e3 === 0 ? `${st / 86400e3} d` : st % 3600e3 === 0 ? `${st / 3600e3} h` : `${st / 60e3} min`);

// --- parameters ------------------------------------------------------------------------------
const PARAMS = ['model', 'from', 'to', 'step', 'range', 'reference', 'refresh'] as const;
type Params = Record<(typeof PARAMS)[number], string>;
interface Range {
  from: number;
  to: number;
  step: number;
}

function readParams(): Params {
  const q = new URLSearchParams(location.search);
  const g = (k: string) => (q.get(k) || '').trim();
  return { model: g('model'), from: g('from'), to: g('to'), step: g('step'), range: g('range'), reference: g('reference'), refresh: g('refresh') };
}
function writeParams(p: Params): void {
  const q = new URLSearchParams();
  for (const k of PARAMS) if (p[k]) q.set(k, p[k]);
  const qs = q.toString();
  history.replaceState(null, '', location.pathname + (qs ? `?${qs}` : ''));
}
function parseTime(v: string, name: string): number {
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw new PageError(`${name} must be an ISO date or ms since the epoch, got "${v}"`);
  return t;
}
const UNITS = new Map([
  ['ms', 1],
  ['s', 1e3],
  ['m', 60e3],
  ['min', 60e3],
  ['h', 3600e3],
  ['d', 86400e3],
]);
function parseStep(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|min|h|d)?$/.exec(v);
  if (!m) throw new PageError(`step must be ms or a duration like 5m, 1h, 1d; got "${v}"`);
  return Number(m[1]) * UNITS.get(m[2] || 'ms')!;
}
/** The range to query: whole steps (the aggregator keeps minute buckets), at most 500 windows. */
function resolveRange(p: Params): Range {
  const preset = PRESETS.find((x) => x[0] === p.range) || PRESETS[1];
  const now = Date.now();
  const to0 = p.to ? parseTime(p.to, 'to') : now;
  const from0 = p.from ? parseTime(p.from, 'from') : to0 - preset[2];
  if (!(from0 < to0)) throw new PageError('from must be before to');
  let step = p.step ? parseStep(p.step) : [60e3, 300e3, 900e3, 3600e3, 21600e3, 86400e3].find((x) => (to0 - from0) / x <= 96) || 86400e3;
  step = Math.max(60e3, Math.round(step / 60e3) * 60e3);
  const from = Math.floor(from0 / step) * step;
  let to = Math.ceil(to0 / step) * step;
  if (to <= from) to = from + step;
  if ((to - from) / step > 500) throw new PageError(`that is ${Math.ceil((to - from) / step)} windows: choose a longer step (at most 500 windows)`);
  return { from, to, step };
}

// --- API -------------------------------------------------------------------------------------
async function api<T>(path: string, token?: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'network', `could not reach ${path.split('?')[0]} (${(err as Error | undefined)?.message})`);
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!res.ok) {
    // The /v1 error body; anything else (a proxy's page, /v2's string error) leaves code and message to the status and text.
    const e = (body as Partial<ErrorBodyV1> | null)?.error as Partial<ErrorBodyV1['error']> | undefined;
    throw new ApiError(res.status, e?.code || `http_${res.status}`, e?.message || text.slice(0, 300) || res.statusText);
  }
  if (body === null) throw new ApiError(res.status, 'invalid_json', `${path.split('?')[0]} answered with something that is not JSON`);
  return body as T;
}

// --- page state ------------------------------------------------------------------------------
interface PageData {
  model: string;
  info: ModelInfo | undefined;
  range: Range;
  reference: string;
  drift: DriftAnswer;
  alerts: AlertsAnswer | Error;
  versions: VersionsAnswer | Error;
  history: HistoryAnswer | Error;
  rollouts: RolloutsAnswer | Error;
  performance: PerformanceAnswer | Error;
  at: number;
}
const state: { models: ModelInfo[] | null; data: PageData | null; method: string; generation: number; timer: number } = {
  models: null,
  data: null,
  method: 'worst',
  generation: 0,
  timer: 0,
};
const setState = (v: string) => {
  document.body.dataset.state = v;
};
function message(kind: '' | 'info' | 'error', title?: string, text?: string): void {
  const m = $('#message');
  m.className = kind || '';
  m.replaceChildren();
  if (kind) add(m, [h('strong', { text: title }), text ? h('span', { text }) : null]);
}
function token(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}
function setToken(t: string): void {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}

function takeFragmentToken(): void {
  const frag = new URLSearchParams(location.hash.slice(1));
  const t = frag.get('token');
  if (t === null) return;
  setToken(t);
  frag.delete('token');
  const rest = frag.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

function controls(p: Params): void {
  const range = $<HTMLSelectElement>('#range');
  range.replaceChildren(...PRESETS.map((x) => h('option', { value: x[0], text: x[1] })));
  if (p.from || p.to) range.prepend(h('option', { value: 'custom', text: 'custom range' }));
  range.value = p.from || p.to ? 'custom' : PRESETS.some((x) => x[0] === p.range) ? p.range : '1h';
  const step = $<HTMLSelectElement>('#step');
  step.replaceChildren(...STEPS.map((x) => h('option', { value: x[0], text: x[1] })));
  let sv = '';
  try {
    sv = p.step ? String(parseStep(p.step)) : '';
  } catch {
    sv = '';
  }
  if (sv && !STEPS.some((x) => x[0] === sv)) step.append(h('option', { value: sv, text: stepName(Number(sv)) }));
  step.value = sv;
  const ref = $<HTMLSelectElement>('#reference');
  ref.replaceChildren(...REFERENCES.map((x) => h('option', { value: x[0], text: x[1] })));
  if (p.reference && !REFERENCES.some((x) => x[0] === p.reference)) ref.append(h('option', { value: p.reference, text: p.reference }));
  ref.value = p.reference;
  $<HTMLInputElement>('#refresh').checked = !!p.refresh;
  $<HTMLInputElement>('#token').value = token();
}

function change(patch: Partial<Params>): void {
  const p = Object.assign(readParams(), patch);
  writeParams(p);
  void load();
}

async function load(): Promise<void> {
  const gen = ++state.generation;
  clearTimeout(state.timer);
  const p = readParams();
  controls(p);
  setState('loading');
  const t = token();
  if (!t) {
    $('#content').replaceChildren();
    message(
      'info',
      'Enter the operator token',
      'The operator API needs the bearer token set as OPERATOR_TOKEN (locally in .dev.vars). It is kept in this tab only.',
    );
    $('#token').focus();
    setState('token');
    return;
  }
  try {
    const range = resolveRange(p);
    if (!state.models) state.models = (await api<{ models?: ModelInfo[] }>('/v1/models')).models || [];
    const models = state.models;
    const select = $<HTMLSelectElement>('#model');
    select.replaceChildren(...models.map((m) => h('option', { value: m.name, text: m.name })));
    const model = p.model || models[0]?.name;
    if (!model) throw new PageError('this worker serves no models');
    if (!models.some((m) => m.name === model)) throw new PageError(`unknown model "${model}" (serving ${models.map((m) => m.name).join(', ')})`);
    select.value = model;
    const base = `/v1/models/${encodeURIComponent(model)}`;
    const span = `from=${range.from}&to=${range.to}`;
    const failed = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));
    const [drift, alerts, versions, history, rollouts, performance] = await Promise.all([
      api<DriftAnswer>(`${base}/drift?${span}&step=${range.step}${p.reference ? `&reference=${encodeURIComponent(p.reference)}` : ''}`, t),
      api<AlertsAnswer>(`${base}/alerts`, t).catch(failed),
      api<VersionsAnswer>(`${base}/versions?${span}`, t).catch(failed),
      api<HistoryAnswer>(`${base}/history?limit=30`, t).catch(failed),
      api<RolloutsAnswer>(`${base}/rollouts`, t).catch(failed),
      api<PerformanceAnswer>(`${base}/performance?${span}&step=${range.step}`, t).catch(failed),
    ]);
    for (const r of [alerts, versions, history, rollouts, performance]) if (r instanceof ApiError && r.status === 401) throw r;
    if (gen !== state.generation) return;
    state.data = {
      model,
      info: models.find((m) => m.name === model),
      range,
      reference: p.reference,
      drift,
      alerts,
      versions,
      history,
      rollouts,
      performance,
      at: Date.now(),
    };
    Object.assign(document.body.dataset, { from: String(range.from), to: String(range.to), step: String(range.step) });
    document.title = `${model} · driftwatch`;
    message('');
    render();
    setState('ready');
  } catch (err) {
    if (gen !== state.generation) return;
    $('#content').replaceChildren();
    if (err instanceof ApiError && err.status === 401) {
      setToken('');
      message('error', 'The operator token was refused (HTTP 401)', `The API said: ${err.message}. Enter the token set as OPERATOR_TOKEN and press Load.`);
      $<HTMLInputElement>('#token').select();
    } else if (err instanceof ApiError && err.status === 0) {
      message('error', 'Could not reach the API', err.message);
    } else if (err instanceof ApiError) {
      message('error', `The API answered with an error (HTTP ${err.status}, ${err.code})`, err.message);
    } else {
      message('error', 'Cannot show this range', err instanceof Error && err.message ? err.message : String(err));
    }
    setState('error');
  } finally {
    if (gen === state.generation && p.refresh && document.body.dataset.state !== 'token') {
      const sec = Math.max(10, Number(p.refresh) || 60);
      state.timer = setTimeout(load, sec * 1000);
    }
  }
}

// --- scales and axes -------------------------------------------------------------------------
function heat(ratio: number): string {
  const t = ratio <= 1 ? 0.5 * Math.max(0, ratio) : 0.5 + 0.5 * Math.min(1, Math.log(ratio) / Math.log(8));
  let i = 1;
  while (i < HEAT.length - 1 && HEAT[i][0] < t) i++;
  const [t0, a] = HEAT[i - 1];
  const [t1, b] = HEAT[i];
  const f = Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
  return `rgb(${a.map((x, k) => Math.round(x + (b[k] - x) * f)).join(',')})`;
}
function niceTicks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || 1;
  const raw = span / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw) || 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9 && out.length < 50; v += step) out.push(+v.toPrecision(12));
  return out;
}
const TIME_STEPS = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3, 172800e3, 604800e3, 2592000e3];
/** Time ticks in UTC: times of day, with the date under the first tick and wherever the day changes. */
function timeAxis(g: SVGElement, x0: number, width: number, from: number, to: number, y: number): void {
  const maxTicks = Math.max(2, Math.floor(width / 78));
  const st = TIME_STEPS.find((v) => (to - from) / v <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
  const X = (t: number) => x0 + ((t - from) / (to - from)) * width;
  g.append(s('line', { x1: x0, x2: x0 + width, y1: y, y2: y, stroke: C.axis }));
  let lastDay = '';
  for (let t = Math.ceil(from / st) * st; t <= to; t += st) {
    const x = X(t);
    g.append(s('line', { x1: x, x2: x, y1: y, y2: y + 4, stroke: C.axis }));
    const d = day(t);
    if (st >= 86400e3) {
      g.append(s('text', { x, y: y + 16, 'text-anchor': 'middle', text: d }));
    } else {
      g.append(s('text', { x, y: y + 16, 'text-anchor': 'middle', text: hm(t) }));
      if (d !== lastDay) g.append(s('text', { x, y: y + 29, 'text-anchor': 'middle', class: 'date', text: `${d} ${new Date(t).getUTCFullYear()}` }));
    }
    lastDay = d;
  }
  if (!lastDay) g.append(s('text', { x: x0, y: y + 16, text: `${short(from)} UTC` }));
}
const chartEmpty = (text?: string) => h('div', { class: 'empty', text: text || 'No data in this range.' });

// --- the data, reshaped ----------------------------------------------------------------------
/** A window with its bounds as ms; empty ones are `{from, to, rows: 0}`. */
type Win = DriftWindow & { t0: number; t1: number };
/** A window with data: counters, latency and its sketches judged. */
type DataWin = Extract<Win, { counters: unknown }>;
interface Row {
  name: string;
  section: Section;
  base: SketchDescription | undefined;
  kind: SketchDescription['kind'];
}
interface View {
  d: PageData;
  windows: Win[];
  rows: Row[];
  withData: DataWin[];
  from: number;
  to: number;
}
const hasData = (w: Win): w is DataWin => 'counters' in w && w.rows > 0;
/** A window's sketches of one section; none in an empty window. */
const sectionOf = (w: DriftWindow, sec: Section): Record<string, JudgedSketch> | undefined => ('counters' in w ? w[sec] : undefined);
const entryOf = (w: DriftWindow, row: Row): JudgedSketch | undefined => sectionOf(w, row.section)?.[row.name];

function shaped(d: PageData): View {
  const windows: Win[] = (d.drift.windows || []).map((w) => Object.assign({}, w, { t0: Date.parse(w.from), t1: Date.parse(w.to) }));
  const bl = d.drift.baseline || { features: {}, outputs: {} };
  const names = (sec: Section) => {
    const out = Object.keys(bl[sec] || {});
    for (const w of windows) for (const k of Object.keys(sectionOf(w, sec) || {})) if (!out.includes(k)) out.push(k);
    return out;
  };
  const row = (name: string, section: Section): Row => {
    const base = bl[section]?.[name];
    const kind = base?.kind || windows.map((w) => sectionOf(w, section)?.[name]).find(Boolean)?.kind || 'numeric';
    return { name, section, base, kind };
  };
  const rows = [...names('features').map((name) => row(name, 'features')), ...names('outputs').map((name) => row(name, 'outputs'))];
  const withData = windows.filter(hasData);
  return { d, windows, rows, withData, from: d.range.from, to: d.range.to };
}
/** The cell's colour ratio (statistic / threshold) for one method, or the worst of them. */
function cell(entry: JudgedSketch | undefined, method: string): { ratio: number; method: string; drifted: boolean } | null {
  if (!entry?.drift) return null;
  let best: { method: string; ratio: number; r: DriftResult } | null = null;
  for (const [m, r] of Object.entries(entry.drift)) {
    if (!r || (method !== 'worst' && m !== method)) continue;
    const ratio = Number.isFinite(r.statistic) && r.threshold > 0 ? r.statistic / r.threshold : r.drifted ? 8 : 0;
    if (!best || ratio > best.ratio) best = { method: m, ratio, r };
  }
  if (!best) return null;
  return { ratio: best.ratio, method: best.method, drifted: method === 'worst' ? !!entry.drifted : !!best.r.drifted };
}
const driftLines = (entry: JudgedSketch | undefined) =>
  Object.entries(entry?.drift || {})
    .filter((e): e is [string, DriftResult] => !!e[1])
    .map(([m, r]) => `${m} ${num(r.statistic)} (threshold ${num(r.threshold)})${r.drifted ? ' drifted' : ''}`);

// --- panels ----------------------------------------------------------------------------------
function panel(parent: Element, id: string, title: string, sub?: Kid): HTMLElement {
  const body = h('div', { class: 'body' });
  const sec = h('section', { class: 'panel', id }, h('h2', { text: title }), sub ? h('div', { class: 'sub' }, sub) : null, body);
  parent.append(sec);
  return body;
}
const widthOf = (node: Element) => Math.max(280, Math.floor(node.getBoundingClientRect().width));

function render(): void {
  if (!state.data) return;
  const v = shaped(state.data);
  const { d } = v;
  const root = $('#content');
  root.replaceChildren();
  const r = d.range;
  $('#range-line').replaceChildren(
    h('strong', { text: d.model }),
    d.info?.version ? ` v${d.info.version}` : '',
    ' · ',
    `${short(r.from)} – ${short(r.to)} UTC · ${v.windows.length} windows of ${stepName(r.step)}`,
    ` · against ${refName(d)}`,
    d.drift.aggregator && finite(d.drift.aggregator.stored) ? ` · ${int(d.drift.aggregator.stored)} summaries stored` : '',
    ` · updated ${hm(d.at)} UTC`,
  );
  cards(root, v);
  heatmapPanel(root, v);
  bandsPanel(root, v);
  const row = h('div', { class: 'row2' });
  root.append(row);
  latencyPanel(row, v);
  servedPanel(row, v);
  const row2 = h('div', { class: 'row2' });
  root.append(row2);
  alertsPanel(row2, d.alerts);
  versionsPanel(row2, d.versions);
  performancePanel(root, v, d.performance);
  historyPanel(root, d.history, d.rollouts);
}

/**
 * Outcomes: per window, the realized figure from the labels joined so far (AUC for a binary
 * classifier, MAE for a regressor) against the AUC estimated from the scores alone, with its band;
 * the labelled share under it; and, for a classifier, calibration over the range (mean score
 * against the positive rate, by decile).
 */
function performancePanel(root: Element, v: View, perf: PerformanceAnswer | Error): void {
  const body = panel(
    root,
    'performance',
    'Performance: realized against estimated',
    h(
      'span',
      { class: 'legend' },
      h('span', {}, swatch(C.live), 'realized (labels joined so far)'),
      h('span', {}, swatch(C.p99), 'estimated from the scores, 99% band'),
      h('span', {}, swatch(C.base), 'share labelled'),
    ),
  );
  if (perf instanceof Error) {
    body.append(
      h('div', {
        class: 'empty',
        text: perf instanceof ApiError && perf.status === 422 ? 'Outcomes are not scored for this model yet.' : `Performance unavailable: ${perf.message}`,
      }),
    );
    return;
  }
  const binary = perf.task === 'binary-classification';
  const version = Object.entries(perf.total).sort((a, b) => b[1].predicted - a[1].predicted)[0]?.[0];
  if (!version) {
    body.append(chartEmpty('No prediction recorded in this range.'));
    return;
  }
  const wins = perf.windows.map((w) => ({ t0: Date.parse(w.from), t1: Date.parse(w.to), r: w.versions[version], e: w.estimated?.[version] })); // proto-safe: a version the answer listed
  // The figure drawn per task: AUC, accuracy, MAE, or CTR at the longest list's k.
  const ks = Object.keys(perf.total[version]?.ctr_at ?? {}); // proto-safe: the key came from this object
  const topK = ks[ks.length - 1] ?? '10';
  const [metricName, metricOf, unitRange] =
    {
      'binary-classification': ['AUC', (r: Realized) => r.auc, true] as const,
      'multiclass-classification': ['accuracy', (r: Realized) => r.accuracy, true] as const,
      regression: ['MAE', (r: Realized) => r.mae, false] as const,
      'top-k-recommendation': [`CTR@${topK}`, (r: Realized) => r.ctr_at?.[topK], false] as const, // proto-safe: a key of this answer
    }[perf.task] ?? (['', () => null, false] as const);
  const metric = (x: (typeof wins)[number]) => (x.r ? metricOf(x.r) : null) ?? null;
  const values = wins.flatMap((w) => [metric(w), ...(binary && w.e?.band ? w.e.band : [])]).filter((x): x is number => finite(x));
  const width = widthOf(body);
  const calW = binary ? Math.min(260, Math.floor(width * 0.28)) : 0;
  const cw = width - calW - (calW ? 24 : 0);
  const H = 230;
  const L = 52;
  const R = 12;
  const T = 10;
  const B = 64;
  const pw = cw - L - R;
  const ph = H - T - B;
  const lo = binary ? Math.min(0.5, ...values) : 0;
  const hi = unitRange ? 1 : Math.max(1e-9, ...values) * 1.1;
  const X = (t: number) => L + ((t - v.from) / (v.to - v.from)) * pw;
  const Y = (x: number) => T + ph - ((x - lo) / (hi - lo)) * ph;
  const svg = s('svg', {
    id: 'performance-chart',
    width: cw,
    height: H,
    viewBox: `0 0 ${cw} ${H}`,
    role: 'img',
    'aria-label': 'realized and estimated performance per window',
  });
  for (let k = 0; k <= 4; k++) {
    const y = lo + ((hi - lo) * k) / 4;
    svg.append(s('line', { x1: L, x2: L + pw, y1: Y(y), y2: Y(y), stroke: C.grid }));
    svg.append(s('text', { x: L - 6, y: Y(y) + 4, 'text-anchor': 'end', text: y.toFixed(2) }));
  }
  svg.append(s('text', { x: 4, y: T + 10, text: metricName }));
  if (binary) {
    // The estimate's band, then its line.
    let band = '';
    const upper: string[] = [];
    const lower: string[] = [];
    for (const w of wins) {
      if (!w.e?.band || !finite(w.e.auc)) continue;
      const x = X((w.t0 + w.t1) / 2);
      upper.push(`${x.toFixed(1)} ${Y(w.e.band[1]).toFixed(1)}`);
      lower.unshift(`${x.toFixed(1)} ${Y(w.e.band[0]).toFixed(1)}`);
    }
    if (upper.length) band = `M${upper.join('L')}L${lower.join('L')}Z`;
    if (band) svg.append(s('path', { d: band, fill: 'rgba(217,130,43,0.16)', stroke: 'none' }));
    let d = '';
    for (const w of wins) {
      if (!w.e || !finite(w.e.auc)) continue;
      const x = X((w.t0 + w.t1) / 2);
      d += `${d ? 'L' : 'M'}${x.toFixed(1)} ${Y(w.e.auc).toFixed(1)}`;
      svg.append(
        s(
          'circle',
          { cx: x, cy: Y(w.e.auc), r: 2.5, fill: w.e.valid ? C.p99 : '#fff', stroke: C.p99, class: 'estimated' },
          tip(
            `estimated ${w.e.auc.toFixed(3)} [${w.e.band?.map((b) => b.toFixed(3)).join(', ')}]${w.e.valid ? '' : ` · not valid: ${w.e.reasons.join('; ')}`} · ${short(w.t0)} UTC`,
          ),
        ),
      );
    }
    if (d) svg.append(s('path', { d, fill: 'none', stroke: C.p99, 'stroke-width': 1.5, 'stroke-dasharray': '5 3' }));
  }
  let d = '';
  for (const w of wins) {
    const m = metric(w);
    if (!finite(m)) continue;
    const x = X((w.t0 + w.t1) / 2);
    d += `${d ? 'L' : 'M'}${x.toFixed(1)} ${Y(m).toFixed(1)}`;
    svg.append(
      s(
        'circle',
        { cx: x, cy: Y(m), r: 3, fill: C.live, class: 'realized' },
        tip(
          `realized ${metricName} ${m.toFixed(3)} from ${w.r!.labelled} ${perf.task === 'top-k-recommendation' ? 'lists with events' : 'labels'} · ${short(w.t0)} UTC`,
        ),
      ),
    );
  }
  if (d) svg.append(s('path', { d, fill: 'none', stroke: C.live, 'stroke-width': 2 }));
  // The share labelled, as a strip of bars under the axis.
  const stripY = T + ph + 26;
  for (const w of wins) {
    const share = w.r?.labelled_share;
    if (!finite(share)) continue;
    const x0 = X(w.t0);
    const x1 = X(w.t1);
    svg.append(
      s(
        'rect',
        { x: x0 + 1, y: stripY + 14 * (1 - share), width: Math.max(1, x1 - x0 - 2), height: 14 * share, fill: C.base, class: 'labelled' },
        tip(`${pct(share)} labelled · ${short(w.t0)} UTC`),
      ),
    );
  }
  timeAxis(svg, L, pw, v.from, v.to, T + ph);
  const total = perf.total[version]; // proto-safe: the key came from this object
  const row = h('div', { class: 'perf-row' }, svg);
  if (binary && total?.calibration?.length) {
    const S = calW;
    const P = 34;
    const top = 22;
    const q = S - P - 10;
    const cal = s('svg', {
      id: 'calibration-chart',
      width: S,
      height: top + q + 24,
      viewBox: `0 0 ${S} ${top + q + 24}`,
      role: 'img',
      'aria-label': 'calibration: mean score against positive rate by decile',
    });
    const cx = (x: number) => P + x * q;
    const cy = (y: number) => top + q - y * q;
    cal.append(s('text', { x: P, y: 12, class: 'lbl', text: `Calibration, version ${version}` }));
    cal.append(s('rect', { x: P, y: top, width: q, height: q, fill: 'none', stroke: C.grid }));
    cal.append(s('line', { x1: cx(0), y1: cy(0), x2: cx(1), y2: cy(1), stroke: C.axis, 'stroke-dasharray': '3 3' }));
    for (const t of [0, 0.5, 1]) {
      cal.append(s('text', { x: cx(t), y: top + q + 12, 'text-anchor': 'middle', text: String(t) }));
      cal.append(s('text', { x: P - 4, y: cy(t) + 4, 'text-anchor': 'end', text: String(t) }));
    }
    for (const b of total.calibration)
      cal.append(
        s(
          'circle',
          { cx: cx(b.mean_score), cy: cy(b.positive_rate), r: 2 + Math.min(6, Math.sqrt(b.n) / 4), fill: C.live, 'fill-opacity': 0.7 },
          tip(`scores ${b.bucket.join('-')}: mean ${b.mean_score.toFixed(3)}, positive ${pct(b.positive_rate)} of ${b.n}`),
        ),
      );
    cal.append(s('text', { x: cx(0.5), y: top + q + 23, 'text-anchor': 'middle', text: 'mean score (x) against positive rate (y)' }));
    row.append(cal);
  }
  body.append(row);
  body.append(
    h('div', {
      class: 'muted',
      text: `version ${version}: ${int(total?.labelled)} of ${int(total?.predicted)} predictions ${perf.task === 'top-k-recommendation' ? 'with a click or conversion' : 'labelled'}${total && finite(metricOf(total)) ? ` · realized ${metricName} over the range ${metricOf(total)!.toFixed(3)}` : ''}${perf.estimate_assumptions ? ` · ${perf.estimate_assumptions}` : ''}`,
    }),
  );
}

function refName(d: PageData): string {
  const r: string = d.drift.reference || d.reference || 'baseline';
  const known = REFERENCES.find((x) => x[0] === r);
  if (r === 'baseline' || r === '')
    return d.drift.baseline?.source === 'training' || !d.drift.baseline ? 'training baseline' : `baseline ${d.drift.baseline.source}`;
  return known ? known[1] : r;
}

function cards(root: Element, v: View): void {
  const total = v.windows.reduce((a, w) => a + (w.rows || 0), 0);
  const sum = (k: string) => v.withData.reduce((a, w) => a + (w.counters?.[k] || 0), 0);
  const latest = v.withData[v.withData.length - 1];
  const drifted = latest ? latest.drifted || [] : [];
  const alerts = v.d.alerts instanceof Error ? null : v.d.alerts;
  const b: Partial<DriftAnswer['baseline']> = v.d.drift.baseline || {};
  const stat = (k: string, value: string, sub: string, extra?: { alarm?: boolean | null; attrs?: Attrs }) =>
    h(
      'div',
      Object.assign({ class: `stat${extra?.alarm ? ' alarm' : ''}` }, extra?.attrs),
      h('div', { class: 'k', text: k }),
      h('div', { class: 'v', text: value }),
      sub ? h('div', { class: 's', text: sub }) : null,
    );
  const errors = sum('errors');
  const edge = Math.max(0, total - sum('cacheHits') - sum('fallbacks') - errors);
  root.append(
    h(
      'div',
      { class: 'cards' },
      stat('Rows in range', int(total), `${v.withData.length} of ${v.windows.length} windows with data`, { attrs: { id: 'rows-total', 'data-value': total } }),
      stat(
        'Drifted in the latest window',
        latest ? (drifted.length === 0 ? 'none' : drifted.length === 1 ? drifted[0] : `${drifted.length} of ${v.rows.length}`) : '–',
        latest ? `${drifted.length > 1 ? `${drifted.join(', ')} · ` : ''}window ending ${short(latest.t1)}` : 'no data in this range',
        { alarm: drifted.length > 0, attrs: { id: 'drifted-now' } },
      ),
      stat('Open alerts', alerts ? String(alerts.open) : '–', alerts ? `${alerts.alerts.length} in history` : 'alerts unavailable', {
        alarm: alerts && alerts.open > 0,
        attrs: { id: 'open-alerts' },
      }),
      stat('Latency, latest window', latest?.latency_ms ? `${ms(latest.latency_ms.p50)} / ${ms(latest.latency_ms.p99)}` : '–', 'p50 / p99 per request'),
      stat('Served at the edge', total ? pct(edge / total) : '–', total ? `errors ${pct(errors / total)} · fallback ${pct(sum('fallbacks') / total)}` : ''),
      refusedCard(v, stat),
      stat(
        'Compared with',
        refName(v.d),
        `baseline: ${b.source || '–'} · ${Array.isArray(b.window) ? `${b.window.map((x) => String(x).slice(0, 10)).join(' → ')} · ` : ''}${int(b.rows)} rows`,
      ),
    ),
  );
}

/** Requests refused by validation in range, and the field refused most: how an upstream change shows first. */
function refusedCard(v: View, stat: (k: string, value: string, sub: string, extra?: { alarm?: boolean | null; attrs?: Attrs }) => Element): Element {
  const byField = new Map<string, number>();
  let refused = 0;
  let served = 0;
  for (const w of v.withData) {
    served += w.rows || 0;
    for (const [k, n] of Object.entries(w.counters || {})) {
      if (k === 'refused') refused += n;
      else if (k.startsWith('refused:')) byField.set(k.slice(8), (byField.get(k.slice(8)) || 0) + n);
    }
  }
  const top = [...byField].sort((a, b) => b[1] - a[1]).slice(0, 3);
  const open = v.d.alerts instanceof Error ? [] : v.d.alerts.alerts.filter((a) => a.resolved_at === null && a.feature.startsWith('refused:'));
  return stat(
    'Refused by validation',
    refused ? pct(refused / (refused + served)) : '0',
    refused ? `${int(refused)} requests · ${top.map(([f, n]) => `${f} ${int(n)}`).join(', ')}` : 'no request refused in range',
    { alarm: open.length > 0, attrs: { id: 'refused', 'data-value': refused } },
  );
}

function heatmapPanel(root: Element, v: View): void {
  const methods = new Set<string>();
  for (const w of v.withData)
    for (const sec of ['features', 'outputs'] as const) for (const e of Object.values(w[sec] || {})) for (const m of Object.keys(e.drift || {})) methods.add(m);
  const pick = h(
    'select',
    {
      id: 'method',
      'aria-label': 'statistic',
      onchange: (e) => {
        state.method = (e.target as HTMLSelectElement).value;
        render();
      },
    },
    h('option', { value: 'worst', text: 'worst of all statistics' }),
    [...methods].map((m) => h('option', { value: m, text: m })),
  );
  if (state.method !== 'worst' && !methods.has(state.method)) state.method = 'worst';
  pick.value = state.method;
  const body = panel(
    root,
    'drift',
    'Drift by feature over time',
    h(
      'span',
      {},
      `Each cell is one window compared with the ${refName(v.d)}, coloured by statistic ÷ threshold; a dot marks a window flagged as drifted. Colour by `,
      pick,
    ),
  );
  if (v.rows.length === 0) {
    body.append(chartEmpty('The drift route described no features.'));
    return;
  }
  const width = widthOf(body);
  const labelW = 150;
  const rightW = 118;
  const top = 30;
  const rowH = 26;
  const gap = 14;
  const volH = 22;
  const n = Math.max(1, v.windows.length);
  const plotW = width - labelW - rightW;
  const cw = plotW / n;
  const nf = v.rows.filter((r) => r.section === 'features').length;
  const height = top + v.rows.length * rowH + (v.rows.length > nf ? gap : 0) + 40;
  const svg = s('svg', { id: 'heatmap', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'drift heatmap, features by window' });
  // Rows per window, as a thin volume strip above the cells.
  const maxRows = Math.max(1, ...v.windows.map((w) => w.rows || 0));
  const vol = s('g', { id: 'volume' });
  vol.append(s('text', { x: labelW - 10, y: top - 10, 'text-anchor': 'end', class: 'kind', text: 'rows per window' }));
  v.windows.forEach((w, j) => {
    const hgt = w.rows ? Math.max(1.5, (w.rows / maxRows) * volH) : 0;
    vol.append(
      s(
        'rect',
        {
          x: labelW + j * cw + (cw > 4 ? 1 : 0),
          y: top - 4 - hgt,
          width: Math.max(0.8, cw - (cw > 4 ? 2 : 0)),
          height: hgt,
          fill: '#aab7c6',
          'data-window': j,
          'data-rows': w.rows || 0,
        },
        tip(`${short(w.t0)} – ${hm(w.t1)} UTC: ${int(w.rows || 0)} rows`),
      ),
    );
  });
  svg.append(vol);
  v.rows.forEach((row, i) => {
    const y = top + i * rowH + (row.section === 'outputs' ? gap : 0);
    const g = s('g', { class: 'hm-row', 'data-feature': row.name, 'data-section': row.section === 'features' ? 'feature' : 'output' });
    g.append(s('text', { x: labelW - 10, y: y + rowH / 2 - 1, 'text-anchor': 'end', class: 'lbl', text: row.name }));
    g.append(
      s('text', {
        x: labelW - 10,
        y: y + rowH / 2 + 10,
        'text-anchor': 'end',
        class: 'kind',
        text: row.section === 'outputs' ? `output · ${row.kind}` : row.kind,
      }),
    );
    let flagged = 0;
    let seen = 0;
    v.windows.forEach((w, j) => {
      const x = labelW + j * cw;
      const entry = w.rows ? entryOf(w, row) : undefined;
      const c = cell(entry, state.method);
      const inset = cw > 5 ? 1 : 0;
      const label = `${row.name}, ${short(w.t0)} – ${hm(w.t1)} UTC`;
      if (!c || !entry) {
        g.append(
          s(
            'rect',
            { x: x + inset / 2, y: y + 1, width: Math.max(0.5, cw - inset), height: rowH - 2, fill: C.empty, class: 'cell', 'data-window': j },
            tip(`${label}: no data`),
          ),
        );
        return;
      }
      seen++;
      if (c.drifted) flagged++;
      g.append(
        s(
          'rect',
          {
            x: x + inset / 2,
            y: y + 1,
            width: Math.max(0.5, cw - inset),
            height: rowH - 2,
            rx: cw > 8 ? 2 : 0,
            fill: heat(c.ratio),
            class: 'cell',
            'data-window': j,
            'data-ratio': c.ratio.toFixed(3),
            'data-drifted': c.drifted ? '1' : '0',
          },
          tip(`${label} · ${int(entry.count)} values\n${driftLines(entry).join('\n')}`),
        ),
      );
      if (c.drifted)
        g.append(s('circle', { cx: x + cw / 2, cy: y + rowH / 2, r: Math.max(1.2, Math.min(3.5, cw / 4)), fill: C.mark, 'pointer-events': 'none' }));
    });
    g.append(
      s('text', { x: labelW + plotW + 10, y: y + rowH / 2 + 4, class: flagged ? 'lbl flag' : 'lbl', text: seen ? `${flagged} of ${seen} drifted` : 'no data' }),
    );
    svg.append(g);
  });
  timeAxis(svg, labelW, plotW, v.from, v.to, height - 38);
  body.append(svg);
  if (v.withData.length === 0)
    body.append(h('div', { class: 'empty', text: 'No data in this range: no summaries have reached the aggregator for these windows.' }));
  const grad = [0, 0.25, 0.5, 0.75, 1, 2, 4, 8];
  body.append(
    h(
      'div',
      { class: 'legend' },
      h('span', {}, 'statistic ÷ threshold: '),
      grad.map((g) => h('span', {}, swatch(heat(g)), g === 1 ? '1 (threshold)' : g === 8 ? '8+' : String(g))),
      h('span', {}, swatch(C.mark, true), 'drifted'),
      h('span', {}, swatch(C.empty), 'no data'),
    ),
  );
}
function swatch(color: string, dot?: boolean): HTMLElement {
  const i = h('i', { class: dot ? 'dot' : '' });
  // CSSOM, not a style attribute: the page's CSP allows no inline styles.
  i.style.background = color;
  return i;
}

function bandsPanel(root: Element, v: View): void {
  const body = panel(
    root,
    'bands',
    'Live against baseline',
    'Numeric: the live p05–p95 band and p50 per window (blue) over the baseline’s p05–p95 band and p50 (grey). Categorical: top values, live over the range against the baseline.',
  );
  if (v.rows.length === 0) {
    body.append(chartEmpty());
    return;
  }
  const grid = h('div', { class: 'multiples' });
  body.append(grid);
  for (const row of v.rows) {
    const box = h('div', { class: 'multiple', 'data-feature': row.name, 'data-kind': row.kind });
    grid.append(box);
    const entries = v.withData.map((w) => entryOf(w, row)).filter((e): e is JudgedSketch => !!e && e.count > 0);
    const flagged = entries.filter((e) => e.drifted).length;
    box.append(
      h(
        'h3',
        {},
        row.name,
        h('span', { class: 'badge', text: row.section === 'outputs' ? 'output' : row.kind }),
        entries.length
          ? h('span', { class: `badge ${flagged ? 'bad' : 'good'}`, text: flagged ? `drifted in ${flagged} of ${entries.length}` : 'no drift' })
          : null,
      ),
    );
    const note = h('div', { class: 'note' });
    box.append(note);
    if (!entries.length) {
      box.append(chartEmpty());
      continue;
    }
    const width = widthOf(box);
    if (row.kind === 'categorical') box.append(topChart(width, row, v, note));
    else box.append(bandChart(width, row, v, note));
  }
}

function bandChart(width: number, row: Row, v: View, note: HTMLElement): SVGSVGElement {
  const b: { p05?: Num; p50?: Num; p95?: Num } = row.base?.kind === 'numeric' ? row.base : {};
  const H = 170;
  const L = 52;
  const R = 10;
  const T = 10;
  const B = 40;
  const pw = width - L - R;
  const ph = H - T - B;
  const vals: Num[] = [b.p05, b.p50, b.p95];
  for (const w of v.withData) {
    const e = entryOf(w, row);
    if (e?.kind === 'numeric') vals.push(e.p05, e.p50, e.p95);
  }
  const fin = vals.filter(finite);
  let lo = Math.min(...fin);
  let hi = Math.max(...fin);
  const padY = (hi - lo) * 0.08 || Math.max(0.5, Math.abs(hi) * 0.1);
  lo -= padY;
  hi += padY;
  const X = (t: number) => L + ((t - v.from) / (v.to - v.from)) * pw;
  const Y = (x: number) => T + ph - ((x - lo) / (hi - lo)) * ph;
  const svg = s('svg', {
    width,
    height: H,
    viewBox: `0 0 ${width} ${H}`,
    class: 'band-chart',
    role: 'img',
    'aria-label': `${row.name} quantiles, live against baseline`,
  });
  for (const t of niceTicks(lo, hi, 4)) {
    svg.append(s('line', { x1: L, x2: L + pw, y1: Y(t), y2: Y(t), stroke: C.grid }));
    svg.append(s('text', { x: L - 6, y: Y(t) + 4, 'text-anchor': 'end', text: num(t) }));
  }
  if (finite(b.p05) && finite(b.p95)) {
    svg.append(
      s(
        'rect',
        { x: L, width: pw, y: Y(b.p95), height: Math.max(1, Y(b.p05) - Y(b.p95)), fill: C.baseBand, class: 'baseline-band' },
        tip(`baseline p05–p95: ${num(b.p05)} – ${num(b.p95)}`),
      ),
    );
  }
  if (finite(b.p50)) svg.append(s('line', { x1: L, x2: L + pw, y1: Y(b.p50), y2: Y(b.p50), stroke: C.base, 'stroke-width': 1.5, 'stroke-dasharray': '5 4' }));
  let prev: { x: number; y: number } | null = null;
  let last: Extract<JudgedSketch, { kind: 'numeric' }> | null = null;
  for (const w of v.windows) {
    const e = w.rows ? entryOf(w, row) : null;
    if (e?.kind !== 'numeric' || !e.count || !finite(e.p50)) {
      prev = null;
      continue;
    }
    const x0 = X(w.t0);
    const x1 = X(w.t1);
    const inset = x1 - x0 > 6 ? 1 : 0;
    // Quantiles of a sketch with values are numbers; NaN (drawn nowhere) if the worker ever left one out.
    const y95 = Y(e.p95 ?? Number.NaN);
    const y05 = Y(e.p05 ?? Number.NaN);
    svg.append(
      s(
        'rect',
        {
          x: x0 + inset,
          width: Math.max(1, x1 - x0 - 2 * inset),
          y: Math.min(y95, y05 - 2),
          height: Math.max(2, y05 - y95),
          fill: C.liveBand,
          class: 'live-band',
        },
        tip(
          `${short(w.t0)} UTC · ${int(e.count)} values\np05 ${num(e.p05)} · p50 ${num(e.p50)} · p95 ${num(e.p95)}${
            e.drifted
              ? `\ndrifted: ${driftLines(e)
                  .filter((l) => l.endsWith('drifted'))
                  .join('; ')}`
              : ''
          }`,
        ),
      ),
    );
    if (prev) svg.append(s('line', { x1: prev.x, x2: x0 + inset, y1: prev.y, y2: Y(e.p50), stroke: C.live, 'stroke-width': 1, 'stroke-opacity': 0.5 }));
    svg.append(
      s('line', {
        x1: x0 + inset,
        x2: Math.max(x0 + inset + 2, x1 - inset),
        y1: Y(e.p50),
        y2: Y(e.p50),
        stroke: C.live,
        'stroke-width': 2.2,
        'stroke-linecap': 'round',
      }),
    );
    if (e.drifted) svg.append(s('rect', { x: x0 + inset, width: Math.max(1.5, x1 - x0 - 2 * inset), y: T - 6, height: 4, fill: C.drift, class: 'drift-mark' }));
    prev = { x: Math.max(x0 + inset + 2, x1 - inset), y: Y(e.p50) };
    last = e;
  }
  timeAxis(svg, L, pw, v.from, v.to, T + ph);
  if (last)
    note.textContent = `latest p05–p95 ${num(last.p05)} – ${num(last.p95)}, p50 ${num(last.p50)}   ·   baseline ${num(b.p05)} – ${num(b.p95)}, p50 ${num(b.p50)}`;
  return svg;
}

function topChart(width: number, row: Row, v: View, note: HTMLElement): SVGSVGElement {
  const b: { count: number; top: { value: string; count: number }[] } = row.base?.kind === 'categorical' ? row.base : { count: 0, top: [] };
  const live = new Map<string, number>();
  let liveTotal = 0;
  for (const w of v.withData) {
    const e = entryOf(w, row);
    if (!e) continue;
    liveTotal += e.count || 0;
    for (const x of e.kind === 'categorical' ? e.top : []) live.set(x.value, (live.get(x.value) || 0) + x.count);
  }
  const baseShare = new Map((b.top || []).map((x) => [x.value, b.count ? x.count / b.count : 0]));
  const liveShare = new Map([...live].map(([k, c]) => [k, liveTotal ? c / liveTotal : 0]));
  const byShare = (m: Map<string, number>) =>
    [...m]
      .sort((a, b2) => b2[1] - a[1])
      .slice(0, 6)
      .map((x) => x[0]);
  const cats = [...new Set([...byShare(baseShare), ...byShare(liveShare)])]
    .sort((a, c) => Math.max(baseShare.get(c) || 0, liveShare.get(c) || 0) - Math.max(baseShare.get(a) || 0, liveShare.get(a) || 0))
    .slice(0, 9);
  const L = 58;
  const R = 92;
  const barH = 6;
  const rowH = 17;
  const T = 4;
  const H = T + cats.length * rowH + 6;
  const pw = width - L - R;
  const maxS = Math.max(0.01, ...cats.map((c) => Math.max(baseShare.get(c) || 0, liveShare.get(c) || 0)));
  const svg = s('svg', {
    width,
    height: H,
    viewBox: `0 0 ${width} ${H}`,
    class: 'top-chart',
    role: 'img',
    'aria-label': `${row.name} top values, live against baseline`,
  });
  cats.forEach((c, i) => {
    const y = T + i * rowH;
    const bs = baseShare.get(c) || 0;
    const ls = liveShare.get(c) || 0;
    svg.append(s('text', { x: L - 8, y: y + 11, 'text-anchor': 'end', class: 'lbl', text: c }));
    svg.append(
      s(
        'rect',
        { x: L, y: y + 1, height: barH, width: Math.max(bs ? 1 : 0, (bs / maxS) * pw), fill: '#b3bcc7', class: 'base-bar' },
        tip(`${c} baseline ${pct(bs)}`),
      ),
    );
    svg.append(
      s(
        'rect',
        { x: L, y: y + 1 + barH, height: barH, width: Math.max(ls ? 1 : 0, (ls / maxS) * pw), fill: C.live, class: 'live-bar' },
        tip(`${c} live ${pct(ls)}`),
      ),
    );
    svg.append(s('text', { x: L + (Math.max(bs, ls) / maxS) * pw + 5, y: y + 11, text: `${pct(ls)} vs ${pct(bs)}` }));
  });
  note.textContent = `share of rows · live (blue) ${int(liveTotal)} rows, baseline (grey) ${int(b.count)} rows`;
  return svg;
}

function latencyPanel(root: Element, v: View): void {
  const body = panel(
    root,
    'latency',
    'Latency per request',
    h('span', { class: 'legend' }, h('span', {}, swatch(C.live), 'p50'), h('span', {}, swatch(C.p99), 'p99'), h('span', {}, 'ms, log scale')),
  );
  const pts = v.withData.filter((w) => w.latency_ms && finite(w.latency_ms.p50));
  if (!pts.length) {
    body.append(chartEmpty());
    return;
  }
  const width = widthOf(body);
  const H = 200;
  const L = 52;
  const R = 12;
  const T = 10;
  const B = 40;
  const pw = width - L - R;
  const ph = H - T - B;
  const all = pts.flatMap((w) => [w.latency_ms?.p50, w.latency_ms?.p99]).filter((x): x is number => finite(x) && x > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...all, 1))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(lo * 10, ...all) * 1.05));
  const X = (t: number) => L + ((t - v.from) / (v.to - v.from)) * pw;
  const Y = (x: number) => T + ph - ((Math.log10(Math.max(lo, x)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const svg = s('svg', { id: 'latency-chart', width, height: H, viewBox: `0 0 ${width} ${H}`, role: 'img', 'aria-label': 'latency p50 and p99 per window' });
  for (let t = lo; t <= hi * 1.0001; t *= 10) {
    svg.append(s('line', { x1: L, x2: L + pw, y1: Y(t), y2: Y(t), stroke: C.grid }));
    svg.append(s('text', { x: L - 6, y: Y(t) + 4, 'text-anchor': 'end', text: ms(t) }));
  }
  for (const [key, color] of [
    ['p99', C.p99],
    ['p50', C.live],
  ] as const) {
    let d = '';
    let prevJ = -2;
    v.windows.forEach((w, j) => {
      const val = hasData(w) && w.latency_ms ? w.latency_ms[key] : null;
      if (!finite(val)) return;
      const x = X((w.t0 + w.t1) / 2);
      const y = Y(val);
      d += `${prevJ === j - 1 ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`;
      prevJ = j;
      svg.append(s('circle', { cx: x, cy: y, r: 3, fill: color }, tip(`${key} ${ms(val)} · ${short(w.t0)} UTC`)));
    });
    if (d) svg.prepend(s('path', { d, fill: 'none', stroke: color, 'stroke-width': 2 }));
  }
  timeAxis(svg, L, pw, v.from, v.to, T + ph);
  body.append(svg);
}

function servedPanel(root: Element, v: View): void {
  const total: Record<Served, number> = { edge: 0, cache: 0, fallback: 0, error: 0 };
  const split = (w: DataWin): Record<Served, number> => {
    const c = w.counters || {};
    const cache = c.cacheHits || 0;
    const fallback = c.fallbacks || 0;
    const error = c.errors || 0;
    return { cache, fallback, error, edge: Math.max(0, (w.rows || 0) - cache - fallback - error) };
  };
  for (const w of v.withData) {
    const o = split(w);
    for (const [k] of SERVED) total[k] += o[k];
  }
  const all = total.edge + total.cache + total.fallback + total.error;
  const body = panel(
    root,
    'served',
    'Served by',
    h(
      'span',
      { class: 'legend' },
      SERVED.map(([k, label, color]) => h('span', {}, swatch(color), `${label} ${all ? pct(total[k] / all) : ''}`)),
    ),
  );
  if (!v.withData.length) {
    body.append(chartEmpty());
    return;
  }
  const width = widthOf(body);
  const H = 200;
  const L = 44;
  const R = 12;
  const T = 10;
  const B = 40;
  const pw = width - L - R;
  const ph = H - T - B;
  const X = (t: number) => L + ((t - v.from) / (v.to - v.from)) * pw;
  const svg = s('svg', {
    id: 'served-chart',
    width,
    height: H,
    viewBox: `0 0 ${width} ${H}`,
    role: 'img',
    'aria-label': 'share of rows by who served them, per window',
  });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const y = T + ph - t * ph;
    svg.append(s('line', { x1: L, x2: L + pw, y1: y, y2: y, stroke: C.grid }));
    svg.append(s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', text: pct(t) }));
  }
  for (const w of v.withData) {
    const o = split(w);
    const sum = o.edge + o.cache + o.fallback + o.error;
    if (!sum) continue;
    const x0 = X(w.t0);
    const x1 = X(w.t1);
    const inset = x1 - x0 > 6 ? (x1 - x0) * 0.12 : 0;
    let y = T + ph;
    const g = s('g', { class: 'served-bar', 'data-rows': w.rows });
    for (const [k, label, color] of SERVED) {
      const hgt = (o[k] / sum) * ph;
      if (hgt <= 0) continue;
      y -= hgt;
      g.append(
        s(
          'rect',
          { x: x0 + inset, width: Math.max(1, x1 - x0 - 2 * inset), y, height: hgt, fill: color },
          tip(`${short(w.t0)} UTC · ${label} ${int(o[k])} of ${int(sum)} rows (${pct(o[k] / sum)})`),
        ),
      );
    }
    svg.append(g);
  }
  timeAxis(svg, L, pw, v.from, v.to, T + ph);
  body.append(svg);
}

function evidence(ev: Alert['evidence']): string {
  return Object.entries(ev || {})
    .map(([m, r]) =>
      m === 'stale'
        ? `${r.age_days} days since training, retrain every ${r.retrain_every} (due ${String(r.due_at).slice(0, 10)})${r.owner ? ` · owner ${r.owner}` : ''}`
        : m === 'refusal_rate'
          ? `${int(r.refused)} of ${int(r.seen)} requests refused (${pct(r.statistic ?? 0)}; reference ${pct(r.reference_rate ?? 0)})`
          : r.reference !== undefined
            ? // A performance alert: the figure, how good it may be at best, and what it is held to.
              `${m} ${num(r.statistic)} (99% bound ${num(r.bound ?? r.band?.[1])}) against ${num(r.threshold)}, reference ${num(r.reference)} from ${r.reference_source}${r.labels !== undefined ? ` · ${int(r.labels)} labels` : ''}`
            : `${m} ${num(r.statistic)} > ${num(r.threshold)}`,
    )
    .join(' · ');
}
function alertsPanel(root: Element, a: AlertsAnswer | Error): void {
  const body = panel(
    root,
    'alerts',
    'Alerts',
    'Opened after consecutive drifted windows, resolved after consecutive clean ones; evidence is the window that opened it.',
  );
  if (a instanceof Error) {
    body.append(h('div', { class: 'empty', text: `Alerts unavailable: ${a.message}` }));
    return;
  }
  // Open ones first, then newest first.
  const list = (a.alerts || [])
    .slice()
    .sort((x, y) => Number(y.resolved_at === null) - Number(x.resolved_at === null) || Date.parse(y.opened_at) - Date.parse(x.opened_at));
  if (!list.length) {
    body.append(h('div', { class: 'empty', text: 'No alerts have been raised for this model.' }));
    return;
  }
  const ul = h('ul', { class: 'alerts' });
  const now = Date.now();
  for (const x of list.slice(0, 40)) {
    const opened = Date.parse(x.opened_at);
    const resolved = x.resolved_at === null ? null : Date.parse(x.resolved_at);
    ul.append(
      h(
        'li',
        { class: resolved === null ? 'open' : 'resolved', 'data-alert': x.id },
        h(
          'div',
          {},
          h('span', { class: `badge ${resolved === null ? 'bad' : ''}`, text: resolved === null ? 'OPEN' : 'resolved' }),
          ' ',
          h('strong', { text: x.feature }),
          h('span', { class: 'muted', text: ` · version ${x.version}` }),
        ),
        h('div', {
          class: 'when',
          text: `opened ${stamp(opened)}${resolved === null ? ` · open for ${dur(now - opened)}` : ` · resolved ${stamp(resolved)} (after ${dur(resolved - opened)})`}`,
        }),
        h('div', { class: 'ev', text: evidence(x.evidence) }),
      ),
    );
  }
  body.append(ul);
  if (list.length > 40) body.append(h('div', { class: 'muted', text: `and ${list.length - 40} older alerts` }));
}

const tableText = (t: HistoryEntry['to'] | null | undefined) =>
  t
    ? [
        `stable ${t.stable}`,
        ...(t.canary ? [`canary ${t.canary.version} ${pct(t.canary.share)}`] : []),
        ...(t.shadows ?? []).map((x) => `shadow ${x.version}`),
      ].join(', ')
    : 'none';

/** What serves and why: the rollout in progress (its stage and latest analysis), then every change, newest first. */
function historyPanel(root: Element, hist: HistoryAnswer | Error, ro: RolloutsAnswer | Error): void {
  const body = panel(
    root,
    'history',
    'Rollouts and history',
    "Every change to what serves: who (the token's name, or the rollout plan), when, from what to what, and why; a plan's steps carry their analysis.",
  );
  if (!(ro instanceof Error) && ro.active) {
    const r = ro.active;
    const stages = [...(r.plan.shadow ? [`shadow ${pct(r.plan.shadow.sample_rate)}`] : []), ...r.plan.steps.map((x) => pct(x.share)), '100%'];
    const checks = r.analysis?.checks ?? [];
    body.append(
      h(
        'div',
        { class: `rollout ${r.status}`, id: 'rollout', 'data-status': r.status },
        h(
          'div',
          {},
          h('span', { class: `badge ${r.status === 'paused' ? 'warn' : 'good'}`, text: r.status.toUpperCase() }),
          ' ',
          h('strong', { text: `rollout ${r.id}: version ${r.version}` }),
          h('span', { class: 'muted', text: ` from stable ${r.stable} · started by ${r.started_by} ${stamp(Date.parse(r.started_at))}` }),
        ),
        h(
          'ol',
          { class: 'stages' },
          stages.map((x, i) => h('li', { class: i < r.stage.index ? 'done' : i === r.stage.index ? 'now' : '', text: x })),
        ),
        r.analysis
          ? h(
              'div',
              { class: 'checks' },
              checks.map((c) =>
                h('span', {
                  class: `badge ${c.status === 'fail' ? 'bad' : c.status === 'wait' ? 'warn' : 'good'}`,
                  title: c.detail,
                  text: `${c.name}: ${c.status}`,
                }),
              ),
            )
          : null,
        r.reason ? h('div', { class: 'muted', text: r.reason }) : null,
      ),
    );
  }
  if (hist instanceof Error) {
    body.append(h('div', { class: 'empty', text: `History unavailable: ${hist.message}` }));
    return;
  }
  if (!hist.entries.length) {
    body.append(h('div', { class: 'empty', text: 'Nothing has changed what this model serves yet.' }));
    return;
  }
  const bad = new Set(['rollback', 'abort']);
  body.append(
    h(
      'table',
      { class: 'history' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['#', 'when', 'who', 'change', 'why'].map((x) => h('th', { text: x })),
        ),
      ),
      h(
        'tbody',
        {},
        hist.entries.map((e) =>
          h(
            'tr',
            { 'data-action': e.action, class: bad.has(e.action) ? 'bad' : e.action === 'promote' ? 'good' : '' },
            h('td', { text: String(e.seq) }),
            h('td', { text: stamp(Date.parse(e.at)) }),
            h('td', { text: e.who }),
            h(
              'td',
              {},
              h('strong', { text: e.action }),
              e.action === 'push' || e.action === 'delete'
                ? ` version ${e.version}`
                : `${e.rollout ? ` (rollout ${e.rollout})` : ''}: ${tableText(e.from)} → ${tableText(e.to)}`,
            ),
            h('td', { class: 'why', text: e.why ?? '' }),
          ),
        ),
      ),
    ),
  );
}

function versionsPanel(root: Element, res: VersionsAnswer | Error): void {
  const body = panel(root, 'versions', 'Canary against stable', 'Versions side by side over the range; the verdict compares each version with stable.');
  if (res instanceof Error) {
    body.append(h('div', { class: 'empty', text: `Versions unavailable: ${res.message}` }));
    return;
  }
  const rt: Partial<VersionsAnswer['routing']> = res.routing || {};
  body.append(
    h(
      'div',
      { class: 'sub' },
      `routing: stable ${rt.stable || '–'}${rt.canary ? ` · canary ${rt.canary.version} at ${pct(rt.canary.share)}` : ' · no canary'}${
        (rt.shadows || []).length ? ` · shadows ${(rt.shadows || []).map((x) => `${x.version} (${pct(x.sampleRate)})`).join(', ')}` : ''
      }`,
    ),
  );
  const order = new Map([
    ['stable', 0],
    ['canary', 1],
    ['shadow', 2],
    ['other', 3],
  ]);
  const vs = Object.entries(res.versions || {}).sort((a, b) => (order.get(a[1].role) ?? 4) - (order.get(b[1].role) ?? 4) || a[0].localeCompare(b[0]));
  if (!vs.length) {
    body.append(chartEmpty('No traffic in this range.'));
    return;
  }
  const outputs = [...new Set(vs.flatMap(([, x]) => Object.keys(x.outputs || {})))];
  const rows: [string, (x: VersionSummary) => string][] = [
    ['role', (x) => x.role],
    ['rows', (x) => int(x.rows)],
    ['error rate', (x) => pct(x.error_rate)],
    ['fallback rate', (x) => pct(x.fallback_rate)],
    ['cache rate', (x) => pct(x.cache_rate)],
    ['latency p50', (x) => ms(x.latency_ms?.p50)],
    ['latency p99', (x) => ms(x.latency_ms?.p99)],
    ...outputs.map((o): [string, (x: VersionSummary) => string] => [
      `${o} p50 (p05–p95)`,
      (x) => {
        const e = x.outputs?.[o];
        return e && e.kind === 'numeric' ? `${num(e.p50)} (${num(e.p05)}–${num(e.p95)})` : e ? `${int(e.count)} values` : '–';
      },
    ]),
  ];
  const table = h(
    'table',
    { class: 'versions' },
    h('thead', {}, h('tr', {}, h('th', { text: 'version' }), ...vs.map(([name]) => h('th', { text: name })))),
    h(
      'tbody',
      {},
      rows.map(([label, f]) => h('tr', {}, h('td', { text: label }), ...vs.map(([, x]) => h('td', { text: f(x) })))),
      h(
        'tr',
        { class: 'verdict' },
        h('td', { text: 'verdict' }),
        ...vs.map(([, x]) => {
          if (!x.verdict) return h('td', { class: 'muted', text: x.role === 'stable' ? 'reference' : '–' });
          const cls = x.verdict === 'worse' ? 'bad' : x.verdict === 'no worse' ? 'good' : '';
          return h(
            'td',
            { class: x.verdict === 'worse' ? 'worse' : '' },
            h('span', { class: `badge ${cls}`, text: x.verdict }),
            (x.reasons || []).length ? h('div', { class: 'reasons', text: (x.reasons || []).join(', ') }) : null,
          );
        }),
      ),
    ),
  );
  body.append(table);
}

// --- wiring ----------------------------------------------------------------------------------
takeFragmentToken();
$('#auth').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken($<HTMLInputElement>('#token').value.trim());
  void load();
});
$('#forget').addEventListener('click', () => {
  setToken('');
  void load();
});
const picked = (e: Event) => (e.target as HTMLSelectElement).value;
$('#model').addEventListener('change', (e) => change({ model: picked(e) }));
$('#range').addEventListener('change', (e) => {
  if (picked(e) !== 'custom') change({ range: picked(e), from: '', to: '' });
});
$('#step').addEventListener('change', (e) => change({ step: picked(e) }));
$('#reference').addEventListener('change', (e) => change({ reference: picked(e) }));
$('#refresh').addEventListener('change', (e) => change({ refresh: (e.target as HTMLInputElement).checked ? '60' : '' }));
$('#reload').addEventListener('click', () => void load());
let resizeTimer = 0;
addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (state.data && document.body.dataset.state === 'ready') render();
  }, 150);
});
void load();
