/**
 * The /demo page: pick a few movies, get recommendations computed on this device (WebGPU,
 * else WASM, else the edge), with which backend answered and how fast. Once loaded it keeps
 * working with the network cut: the model is in the Web Worker's memory and in Cache Storage,
 * the catalogue in the page. Its script is browser/demo/demo.ts, built to /browser/demo.js.
 */
export function demoPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>driftwatch-edge: on-device movie picks</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 980px; padding: 1rem 1.25rem; color: #1d232b; }
  h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
  .muted { color: #5b6675; }
  #status { margin: .5rem 0 1rem; padding: .5rem .75rem; background: #f2f5f8; border-radius: 6px; }
  #status b { font-variant-numeric: tabular-nums; }
  .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 1.25rem; }
  input[type=search] { width: 100%; padding: .45rem .6rem; font: inherit; box-sizing: border-box; }
  ul { list-style: none; padding: 0; margin: .5rem 0; }
  li { padding: .25rem .4rem; border-bottom: 1px solid #eef1f4; display: flex; justify-content: space-between; gap: .5rem; }
  #results li span:last-child, .score { font-variant-numeric: tabular-nums; color: #5b6675; }
  button { font: inherit; cursor: pointer; border: 1px solid #c9d1da; background: #fff; border-radius: 5px; padding: .1rem .5rem; }
  .chip { display: inline-block; margin: .15rem; padding: .15rem .5rem; border-radius: 999px; background: #e6eefb; }
  .chip button { border: 0; background: none; padding: 0 0 0 .3rem; }
</style>
</head>
<body>
<h1>Movies for you, computed on this device</h1>
<p class="muted">An int8 recommendation model (movielens-topk) runs in a Web Worker in this page: WebGPU where this browser has a
  working adapter, else WebAssembly, else the edge worker. Nothing you pick leaves the page; only drift sketches do.</p>
<div id="status" aria-live="polite">Loading the model…</div>
<div class="cols">
  <section>
    <h2>Your picks</h2>
    <div id="picks" class="muted">Pick a few movies you liked.</div>
    <input id="search" type="search" placeholder="Search the catalogue (e.g. Star Wars)" autocomplete="off">
    <ul id="matches"></ul>
  </section>
  <section>
    <h2>Recommended</h2>
    <ul id="results"></ul>
  </section>
</div>
<script type="module" src="/browser/demo.js"></script>
</body>
</html>`;
}
