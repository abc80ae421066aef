// core/ must run unchanged in Node, workerd and the browser. Besides the type check against
// the ECMAScript library alone (core/tsconfig.json), this scans the sources for imports and
// globals that would tie core/ to one platform.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CORE = join(import.meta.dirname, '../../core');
const sources = readdirSync(CORE, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
  .map((f) => ({ file: f, text: readFileSync(join(CORE, f), 'utf8') }));

const FORBIDDEN_IMPORT =
  /(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"](node:[^'"]+|cloudflare:[^'"]+|fs|path|os|crypto|buffer|worker_threads|child_process|hono[^'"]*|onnxruntime[^'"]*|comlink)['"]/g;
const RELATIVE_OUTSIDE = /from\s+['"](\.\.\/[^'"]*)['"]/g;
// `window` and `self` are fine as local names (drift.ts compares a baseline with a window);
// their use as globals is caught by the type check, which declares no DOM.
const PLATFORM_GLOBALS =
  /\b(document|navigator|localStorage|sessionStorage|indexedDB|HTMLElement|Buffer|process|require|__dirname|WebSocketPair|HTMLRewriter)\b/g;

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

describe('core/ is platform-free', () => {
  it('has sources to check', () => {
    expect(sources.length).toBeGreaterThan(5);
  });

  for (const { file, text } of sources) {
    it(`${file} imports nothing platform-specific and nothing outside core/`, () => {
      const code = stripComments(text);
      expect([...code.matchAll(FORBIDDEN_IMPORT)].map((m) => m[1])).toEqual([]);
      expect([...code.matchAll(RELATIVE_OUTSIDE)].map((m) => m[1])).toEqual([]);
      const globals = [...code.replace(/(['"`])(?:\\.|(?!\1).)*\1/g, '""').matchAll(PLATFORM_GLOBALS)].map((m) => m[1]);
      expect(globals).toEqual([]);
    });
  }

  it('the scanner catches what it should (so it cannot pass vacuously)', () => {
    const bad = `import { readFile } from 'node:fs';\nimport type { X } from 'cloudflare:workers';\nconst a = Buffer.from(''); document.title = '';`;
    expect([...bad.matchAll(FORBIDDEN_IMPORT)].map((m) => m[1])).toEqual(['node:fs', 'cloudflare:workers']);
    expect([...bad.matchAll(PLATFORM_GLOBALS)].map((m) => m[1])).toEqual(['Buffer', 'document']);
  });
});
