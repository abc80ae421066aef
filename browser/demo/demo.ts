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
const clickedEl = $('clicked');

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
    // Each title is a button: a click on it is feedback on this list (its prediction id) for that movie.
    results.innerHTML = recs
      .map(
        (r) =>
          `<li data-id="${r.id}"><button class="rec" data-rec="${r.id}" data-prediction="${esc(recs.prediction_id)}">${label(byId.get(r.id), r.id)}</button><span>${r.score.toFixed(3)}</span></li>`,
      )
      .join('');
    status.innerHTML = `Answered by <b id="answered-by">${last?.backend ?? rt.backend}</b> in <b id="answered-ms">${ms.toFixed(1)} ms</b> · backend now <b id="backend">${rt.backend}</b> · ${dom.navigator.onLine ? 'online' : 'offline'}`;
  } catch (err) {
    status.textContent = `Could not recommend: ${(err as Error).message}`;
  }
}

/**
 * A click on a recommendation: the event the ranking's CTR@k is measured from (POST
 * /v1/models/movielens-topk/feedback with the page's telemetry token), on the list that showed
 * it. What came of it shows in #clicked (and body[data-clicked]): joined, or why not.
 */
async function clicked(item: number, predictionId: string): Promise<void> {
  const title = label(byId.get(item), item);
  try {
    const answer = await rt.feedback([{ prediction_id: predictionId, event: 'click', item }]);
    const r = answer.results[0];
    clickedEl.innerHTML = `Click on ${title}: <b id="click-status">${esc(r.status)}</b>${r.reason ? ` (${esc(r.reason)})` : ''}`;
    dom.document.body.dataset.clicked = r.status;
  } catch (err) {
    clickedEl.textContent = `Click on ${byId.get(item)?.title ?? item} not sent: ${(err as Error).message}`;
    dom.document.body.dataset.clicked = 'error';
  }
}

dom.document.addEventListener('click', (e) => {
  const t = e.target as DomElement;
  if (t.dataset.rec && t.dataset.prediction) {
    void clicked(Number(t.dataset.rec), t.dataset.prediction);
    return;
  }
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
