/** The /demo page's script (see demo.html), built to /browser/demo.js; typed with the runtime, through ../dom.ts. */
import { dom, type DomElement } from '../dom.ts';
import { createRuntime } from '../index.ts';

interface Movie {
  id: number;
  title: string;
  year: number;
  genres: string;
}

const $ = (id: string) => dom.document.getElementById(id) as DomElement;
const status = $('status');
const picksEl = $('picks');
const search = $('search');
const matches = $('matches');
const results = $('results');

const picks: number[] = [];
let catalogue: Movie[] = [];
let byId = new Map<number, Movie>();
const rt = createRuntime({ model: 'movielens-topk' });
rt.addEventListener('backendchange', (e) => {
  const d = (e as CustomEvent<{ from: string; to: string; reason: string }>).detail;
  status.dataset.demoted = `${d.from}->${d.to}`;
  void recommend();
});

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const label = (m: Movie | undefined, id: number) => (m ? `${esc(m.title)} (${m.year})` : `#${id}`);

function renderPicks(): void {
  picksEl.innerHTML = picks.length
    ? picks.map((id) => `<span class="chip">${label(byId.get(id), id)}<button data-drop="${id}" aria-label="remove">×</button></span>`).join('')
    : 'Pick a few movies you liked.';
}

function renderMatches(): void {
  const q = search.value.trim().toLowerCase();
  const found = q.length < 2 ? [] : catalogue.filter((m) => m.title.toLowerCase().includes(q) && !picks.includes(m.id)).slice(0, 12);
  matches.innerHTML = found.map((m) => `<li><span>${label(m, m.id)}</span><button data-pick="${m.id}">add</button></li>`).join('');
}

async function recommend(): Promise<void> {
  if (!picks.length) {
    results.innerHTML = '';
    return;
  }
  try {
    const t0 = performance.now();
    const recs = await rt.recommend(picks, 10);
    const ms = performance.now() - t0;
    const last = rt.stats().last;
    results.innerHTML = recs.map((r) => `<li data-id="${r.id}"><span>${label(byId.get(r.id), r.id)}</span><span>${r.score.toFixed(3)}</span></li>`).join('');
    status.innerHTML = `Answered by <b id="answered-by">${last?.backend ?? rt.backend}</b> in <b id="answered-ms">${ms.toFixed(1)} ms</b> · backend now <b id="backend">${rt.backend}</b> · ${dom.navigator.onLine ? 'online' : 'offline'}`;
  } catch (err) {
    status.textContent = `Could not recommend: ${(err as Error).message}`;
  }
}

dom.document.addEventListener('click', (e) => {
  const t = e.target as DomElement;
  if (t.dataset.pick) {
    picks.push(Number(t.dataset.pick));
    search.value = '';
    renderMatches();
  } else if (t.dataset.drop) {
    picks.splice(picks.indexOf(Number(t.dataset.drop)), 1);
  } else return;
  renderPicks();
  void recommend();
});
search.addEventListener('input', renderMatches);

const [cat, report] = await Promise.all([
  fetch('/browser/movielens-topk/catalogue.json').then((r) => r.json() as Promise<Movie[]>),
  rt.ready.catch((err: Error) => err),
]);
catalogue = cat;
byId = new Map(cat.map((m) => [m.id, m]));
if (report instanceof Error) {
  status.textContent = `No backend could load the model: ${report.message}`;
} else {
  const why = report.attempts
    .filter((a) => !a.ok)
    .map((a) => `${a.backend}: ${a.reason}`)
    .join('; ');
  status.innerHTML = `Model ready on <b id="backend">${report.backend}</b> (${report.load.artifactFromCache ? 'from Cache Storage' : 'downloaded'}, ${report.load.ms + report.load.sessionMs} ms)${why ? ` <span class="muted">· skipped ${esc(why)}</span>` : ''}`;
  dom.document.body.dataset.ready = report.backend;
}
(globalThis as unknown as { driftwatch: unknown }).driftwatch = { runtime: rt, picks, recommend };
// Reload offline once loaded (see sw.ts); a failure here costs nothing but that.
dom.navigator.serviceWorker?.register('/demo-sw.js', { scope: '/' }).catch((err: Error) => console.warn('demo: no service worker', err.message));
