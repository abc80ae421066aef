// The shape of the code, as the design says (docs/DESIGN.md, issue 12): core/ imports nothing of
// the project outside core/; the worker and the browser runtime never import each other (they meet
// over HTTP and core's wire format); product code never imports benchmarks or tests; and no module
// reaches itself again through its imports, type-only ones included (Env defined in app.ts made
// four such circles). Inside worker/, routes/ sits over http/ over serving/ and engine/.
// Known debt is listed by name, so that any new forbidden edge fails and a fixed one must be struck.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/servers.ts';

const PRODUCT = ['core', 'worker', 'browser', 'origin', 'models', 'cli'];
const SKIP = new Set(['node_modules', 'assets', '.wrangler']);

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

/** Relative imports and re-exports of a file, resolved to project paths. */
function importsOf(file: string, source: string): Edge[] {
  const out: Edge[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) {
    const to = relative(ROOT, resolve(dirname(file), m[3]));
    out.push({ from: relative(ROOT, file), to, typeOnly: Boolean(m[2]) });
  }
  // Dynamic imports run too.
  for (const m of source.matchAll(/import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g))
    out.push({ from: relative(ROOT, file), to: relative(ROOT, resolve(dirname(file), m[1])), typeOnly: false });
  return out;
}

const top = (p: string) => p.split('/')[0];
const isTest = (p: string) => /\.test\.ts$/.test(p) || top(p) === 'test';

/** Forbidden edges that exist today, each with the step that removes it (none since the pages became static assets, issue 12). */
const KNOWN_DEBT = new Map<string, string>([]);

function edges(): Edge[] {
  return PRODUCT.flatMap((d) => files(join(ROOT, d))).flatMap((f) => importsOf(f, readFileSync(f, 'utf8')));
}

function forbidden(e: Edge): string | undefined {
  if (isTest(e.from)) return undefined;
  const [a, b] = [top(e.from), top(e.to)];
  if (a === 'core' && b !== 'core') return 'core/ imports nothing of the project outside core/';
  if ((a === 'worker' && b === 'browser') || (a === 'browser' && b === 'worker')) return 'the worker and the browser runtime meet only over HTTP';
  if (a === 'cli' && (b === 'worker' || b === 'browser')) return "the CLI meets the worker only over HTTP (and core's types)";
  if (b === 'bench' || b === 'test') return 'product code never imports benchmarks or tests';
  return layer(e.from, e.to);
}

/** Inside worker/: routes (HTTP sub-apps) over http (request reading, errors, middleware) over serving (HTTP-free serving functions) and engine. */
function layer(from: string, to: string): string | undefined {
  const part = (p: string) => (p.startsWith('worker/') ? p.split('/')[1] : undefined);
  const [a, b] = [part(from), part(to)];
  if (a === undefined || b === undefined) return undefined;
  if (a === 'routes' && b === 'routes') return 'a route module never imports another (what they share lives in http/ or serving/)';
  if ((a === 'serving' || a === 'engine' || a === 'registry') && (b === 'routes' || b === 'http'))
    return 'serving, engine and registry code knows nothing of HTTP routes';
  if (a === 'http' && b === 'routes') return 'http/ serves the routes, it never imports them';
  return undefined;
}

describe('the import graph between top-level folders', () => {
  it('the scanner sees imports, re-exports, type-only imports and dynamic imports', () => {
    const src =
      "import { a } from './a.ts';\nimport type { B } from '../core/b.ts';\nexport { c } from './c.ts';\nexport type { D } from './d.ts';\nconst m = await import('./e.ts');\n// import x from 'hono';";
    const got = importsOf(join(ROOT, 'worker/x.ts'), src).map((e) => `${e.to}${e.typeOnly ? ' (type)' : ''}`);
    expect(got).toEqual(['worker/a.ts', 'core/b.ts (type)', 'worker/c.ts', 'worker/d.ts (type)', 'worker/e.ts']);
  });

  it('no forbidden edge beyond the listed debt, and every listed debt still exists', () => {
    const all = edges();
    const bad = all.flatMap((e) => {
      const why = forbidden(e);
      const key = `${e.from} -> ${e.to}`;
      return why && !KNOWN_DEBT.has(key) ? [`${key}: ${why}`] : [];
    });
    expect(bad).toEqual([]);
    const present = new Set(all.map((e) => `${e.from} -> ${e.to}`));
    expect(
      [...KNOWN_DEBT.keys()].filter((k) => !present.has(k)),
      'debt paid: strike it from KNOWN_DEBT',
    ).toEqual([]);
  });

  it('the layers inside worker/ are told apart', () => {
    expect(layer('worker/routes/oip.ts', 'worker/routes/predict.ts')).toMatch(/never imports another/);
    expect(layer('worker/serving/serve.ts', 'worker/http/request.ts')).toMatch(/knows nothing of HTTP/);
    expect(layer('worker/registry/check.ts', 'worker/http/errors.ts')).toMatch(/knows nothing of HTTP/);
    expect(layer('worker/http/inference.ts', 'worker/routes/oip.ts')).toMatch(/never imports them/);
    expect(layer('worker/routes/oip.ts', 'worker/http/request.ts')).toBeUndefined();
    expect(layer('worker/http/inference.ts', 'worker/serving/serve.ts')).toBeUndefined();
  });

  it('no module imports itself again, types included', () => {
    const graph = new Map<string, string[]>();
    for (const e of edges()) {
      if (isTest(e.from)) continue;
      if (!graph.has(e.from)) graph.set(e.from, []);
      graph.get(e.from)!.push(e.to);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'active' | 'done'>();
    const visit = (n: string, path: string[]) => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'active') {
        cycles.push([...path.slice(path.indexOf(n)), n].join(' -> '));
        return;
      }
      state.set(n, 'active');
      for (const m of graph.get(n) ?? []) visit(m, [...path, n]);
      state.set(n, 'done');
    };
    for (const n of graph.keys()) visit(n, []);
    expect(cycles).toEqual([]);
  });

  it('product code names no model: worker/ and browser/ serve what the registry holds (the demo page and tests aside)', () => {
    const names = /flight-delay|flight_delay|movielens/i;
    const product = ['worker', 'browser']
      .flatMap((d) => files(join(ROOT, d)))
      .map((f) => relative(ROOT, f))
      .filter((f) => !isTest(f) && !f.startsWith('browser/demo/'));
    expect(product.length).toBeGreaterThan(30);
    const naming = product.flatMap((f) =>
      readFileSync(join(ROOT, f), 'utf8')
        .split('\n')
        .flatMap((line, i) => (names.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(naming).toEqual([]);
  });
});
