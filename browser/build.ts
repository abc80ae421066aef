/**
 * Builds everything wrangler serves as static assets from browser/assets/ (wrangler.toml
 * [assets]; a matching asset is served before the worker, which never sees these paths):
 *
 * - under browser/assets/browser/ (at /browser/): the browser runtime, runtime.js (the page's
 *   module), inference-worker.js (the Web Worker), their shared chunks, onnxruntime-web's .wasm
 *   files under ort/ and the movie catalogue; and the two pages' scripts and styles,
 *   dashboard.js and dashboard.css (browser/dashboard/), demo.js and demo.css (browser/demo/);
 * - at the assets' root: dashboard.html and demo.html, which Workers' html_handling
 *   (auto-trailing-slash) serves at /dashboard and /demo; demo-sw.js, the demo's service worker
 *   (browser/demo/sw.ts); and _headers, the pages' headers (PAGE_HEADERS below: their
 *   Content-Security-Policy and the rest).
 *
 * Run by `npm start`, by the browser and page tests and by `npm run bench:browser`;
 * `tsx browser/build.ts` alone works too (`npm run build:browser`, before `wrangler deploy`).
 *
 * Only the two ort builds the ladder uses are copied: ort-wasm-simd-threaded.wasm (wasm,
 * 14.2 MB) and ort-wasm-simd-threaded.jspi.wasm (native WebGPU EP, 16.7 MB). Both are under
 * the 25 MiB per-asset limit of Workers; the asyncify build (26.8 MB) is not.
 */
import { build, type BuildOptions } from 'esbuild';
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_ASSETS } from './demo/assets.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
export const ASSETS_DIR = join(HERE, 'assets');
export const OUT_DIR = join(ASSETS_DIR, 'browser');
const ORT_DIST = join(ROOT, 'node_modules/onnxruntime-web/dist');
export const ORT_FILES = ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.jspi.wasm'];

/** The pages' HTML, copied to the assets' root (served without the .html: /dashboard, /demo). */
const PAGES: Record<string, string> = { 'dashboard.html': 'browser/dashboard/dashboard.html', 'demo.html': 'browser/demo/demo.html' };

/**
 * The headers wrangler adds to static assets (written to the assets' _headers; the worker's own
 * answers never get them). Every page refuses framing (clickjacking: CSP frame-ancestors, and
 * X-Frame-Options for browsers without CSP level 2) and takes scripts and styles from its own
 * origin only, files not inline, so no hash is pinned and nothing inline runs.
 *
 * - /dashboard fetches only the operator API on this origin and draws with the DOM: nothing
 *   else is allowed (default-src 'none'); no referrer leaves it (its URL may carry a range).
 * - /demo runs the browser runtime: its module, Web Worker and service worker are same-origin
 *   files, onnxruntime-web compiles WebAssembly ('wasm-unsafe-eval'), it fetches only this origin.
 * - /demo-sw.js is revalidated on every registration check (a service worker is kept otherwise).
 */
export const PAGE_HEADERS: Record<string, Record<string, string>> = {
  '/*': { 'X-Content-Type-Options': 'nosniff' },
  '/dashboard': {
    'Content-Security-Policy':
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  },
  '/demo': {
    'Content-Security-Policy':
      "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
  },
  '/demo-sw.js': { 'Cache-Control': 'no-cache' },
};

function headersFile(): string {
  const rules = Object.entries(PAGE_HEADERS).map(([path, headers]) => [path, ...Object.entries(headers).map(([k, v]) => `  ${k}: ${v}`)].join('\n'));
  return `# Written by browser/build.ts (PAGE_HEADERS): the static assets' headers.\n${rules.join('\n\n')}\n`;
}

/**
 * Files are written under a temporary name and renamed into place, and left alone when their
 * bytes are already there: a `wrangler dev` serving these assets while another test or a bench
 * builds them again sees the whole file, old or new, never a part, and does not reload for
 * nothing. Builds may run concurrently (test files each build what they serve).
 */
const TMP_DIR = join(ASSETS_DIR, '.tmp');
const tmpName = () => join(TMP_DIR, `${process.pid}-${randomUUID()}`);

async function put(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const old = await readFile(path).catch(() => undefined);
  if (old && Buffer.compare(old, bytes) === 0) return;
  const tmp = tmpName();
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

async function copyIfChanged(from: string, to: string): Promise<void> {
  const [a, b] = await Promise.all([stat(from), stat(to).catch(() => undefined)]);
  if (b && b.size === a.size && b.mtimeMs >= a.mtimeMs) return;
  const tmp = tmpName();
  await copyFile(from, tmp);
  await rename(tmp, to);
}

/** esbuild's outputs, written with put(); their paths. */
async function bundle(options: BuildOptions): Promise<string[]> {
  const { outputFiles } = await build({ ...options, write: false });
  await Promise.all(outputFiles.map((f) => put(f.path, f.contents)));
  return outputFiles.map((f) => f.path);
}

export async function buildBrowser({ minify = true, quiet = false }: { minify?: boolean; quiet?: boolean } = {}): Promise<{ ms: number; outDir: string }> {
  const t0 = performance.now();
  await Promise.all(['ort', ...DEMO_ASSETS.map((a) => dirname(a.to))].map((d) => mkdir(join(OUT_DIR, d), { recursive: true })));
  await mkdir(TMP_DIR, { recursive: true });
  const common = {
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: true,
    logLevel: quiet ? 'error' : 'warning',
    legalComments: 'none',
  } as const;
  const runtime = await bundle({
    ...common,
    entryPoints: { runtime: 'browser/index.ts', 'inference-worker': 'browser/inference-worker.ts', demo: 'browser/demo/demo.ts' },
    outdir: OUT_DIR,
    splitting: true,
    format: 'esm',
    // Chunks sit next to the entries: the runtime finds inference-worker.js and ort/ relative to
    // its own module URL, which may be a chunk's.
    chunkNames: 'chunk-[hash]',
  });
  // The dashboard's script (it shares nothing with the runtime) and both pages' styles.
  const pages = await bundle({
    ...common,
    entryPoints: [
      { in: 'browser/dashboard/dashboard.ts', out: 'dashboard' },
      { in: 'browser/dashboard/dashboard.css', out: 'dashboard' },
      { in: 'browser/demo/demo.css', out: 'demo' },
    ],
    outdir: OUT_DIR,
    format: 'esm',
  });
  // The service worker: a classic script (the demo registers it without type: 'module'), at the
  // root so that its scope may be the whole origin.
  await bundle({ ...common, entryPoints: ['browser/demo/sw.ts'], outfile: join(ASSETS_DIR, 'demo-sw.js'), format: 'iife' });
  await Promise.all([
    ...Object.entries(PAGES).map(async ([to, from]) => put(join(ASSETS_DIR, to), await readFile(join(ROOT, from)))),
    put(join(ASSETS_DIR, '_headers'), headersFile()),
    ...ORT_FILES.map((f) => copyIfChanged(join(ORT_DIST, f), join(OUT_DIR, 'ort', f))),
    ...DEMO_ASSETS.map((a) => copyIfChanged(join(ROOT, a.from), join(OUT_DIR, a.to))),
  ]);
  // Earlier builds' hashed chunks (this build's files are all in place by now).
  const built = new Set([...runtime, ...pages]);
  for (const f of await readdir(OUT_DIR)) if (/\.(js|css)(\.map)?$/.test(f) && !built.has(join(OUT_DIR, f))) await rm(join(OUT_DIR, f), { force: true });
  const ms = Math.round(performance.now() - t0);
  if (!quiet) console.log(`browser runtime and pages built into ${ASSETS_DIR} in ${ms} ms`);
  return { ms, outDir: OUT_DIR };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildBrowser({ minify: !process.argv.includes('--dev') });
}
