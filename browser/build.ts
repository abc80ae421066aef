/**
 * Builds the browser runtime into browser/assets/browser/ (served by wrangler as static
 * assets at /browser/, see wrangler.toml [assets]): runtime.js (the page's module),
 * inference-worker.js (the Web Worker), demo.js, their shared chunks, onnxruntime-web's .wasm
 * files under ort/, and the movie catalogue for /demo. Run by `npm start`, by the browser
 * tests and by `npm run bench:browser`; `tsx browser/build.ts` alone works too.
 *
 * Only the two ort builds the ladder uses are copied: ort-wasm-simd-threaded.wasm (wasm,
 * 14.2 MB) and ort-wasm-simd-threaded.jspi.wasm (native WebGPU EP, 16.7 MB). Both are under
 * the 25 MiB per-asset limit of Workers; the asyncify build (26.8 MB) is not.
 */
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
export const ASSETS_DIR = join(HERE, 'assets');
export const OUT_DIR = join(ASSETS_DIR, 'browser');
const ORT_DIST = join(ROOT, 'node_modules/onnxruntime-web/dist');
export const ORT_FILES = ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.jspi.wasm'];

async function copyIfChanged(from: string, to: string): Promise<void> {
  const [a, b] = await Promise.all([stat(from), stat(to).catch(() => undefined)]);
  if (b && b.size === a.size && b.mtimeMs >= a.mtimeMs) return;
  await copyFile(from, to);
}

export async function buildBrowser({ minify = true, quiet = false }: { minify?: boolean; quiet?: boolean } = {}): Promise<{ ms: number; outDir: string }> {
  const t0 = performance.now();
  await mkdir(join(OUT_DIR, 'ort'), { recursive: true });
  // Earlier builds' hashed chunks.
  for (const f of await readdir(OUT_DIR)) if (/\.js(\.map)?$/.test(f)) await rm(join(OUT_DIR, f));
  await mkdir(join(OUT_DIR, 'movielens-topk'), { recursive: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: { runtime: 'browser/index.ts', 'inference-worker': 'browser/inference-worker.ts', demo: 'browser/demo/demo.ts' },
    outdir: OUT_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: true,
    // Chunks sit next to the entries: the runtime finds inference-worker.js and ort/ relative to
    // its own module URL, which may be a chunk's.
    chunkNames: 'chunk-[hash]',
    logLevel: quiet ? 'error' : 'warning',
    legalComments: 'none',
  });
  await Promise.all([
    ...ORT_FILES.map((f) => copyIfChanged(join(ORT_DIST, f), join(OUT_DIR, 'ort', f))),
    copyIfChanged(join(ROOT, 'models/movielens-topk/catalogue.json'), join(OUT_DIR, 'movielens-topk/catalogue.json')),
  ]);
  const ms = Math.round(performance.now() - t0);
  if (!quiet) console.log(`browser runtime built into ${OUT_DIR} in ${ms} ms`);
  return { ms, outDir: OUT_DIR };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildBrowser({ minify: !process.argv.includes('--dev') });
}
