// A lint for the server's code (worker/, core/; not tests): a client's string is never used where
// the prototype chain can answer. `"constructor" in {}` is true and `({})["__proto__"]` is
// Object.prototype, so a lookup by a model name, version, reference or claim goes through a Map
// or Object.hasOwn. The scan reads the code with comments and string contents removed and flags:
// - the `in` operator and for-in loops (both see inherited keys);
// - a bracket lookup whose key is a request-derived name: `x[name]`, `x[version]`,
//   `x[reference]`, `x[model]`, `x[source]`, `x[claims.*]`, `x[c.req.param(...)]` and the like.
// A line audited as safe carries `proto-safe: <why>` in a comment, on it or the line above.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.ts$/.test(f) && !/\.test\.ts$/.test(f) && !/\.d\.ts$/.test(f) ? [p] : [];
  });
}

/**
 * The code with comments removed and the contents of string, template and regex literals blanked
 * (newlines kept, so line numbers hold); `${...}` inside templates stays code.
 */
function codeOnly(src: string): string {
  let out = '';
  let i = 0;
  const braces: number[] = []; // per open `${`, the brace depth at which it closes
  let depth = 0;
  let last = ''; // last significant code character, to tell a regex from a division
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  const template = () => {
    // From after a backtick (or a `}` closing `${`) to the closing backtick or the next `${`.
    let j = i;
    while (j < src.length && src[j] !== '`') {
      if (src[j] === '\\') j += 2;
      else if (src[j] === '$' && src[j + 1] === '{') break;
      else j++;
    }
    out += blank(src.slice(i, j));
    if (src[j] === '`') {
      out += '`';
      i = j + 1;
    } else {
      out += '${';
      braces.push(depth);
      depth++;
      i = j + 2;
    }
    last = '`';
  };
  while (i < src.length) {
    const ch = src[i];
    const next = src[i + 1];
    if (ch === '/' && next === '/') {
      const j = src.indexOf('\n', i);
      i = j < 0 ? src.length : j;
    } else if (ch === '/' && next === '*') {
      const j = src.indexOf('*/', i + 2);
      out += blank(src.slice(i, j < 0 ? src.length : j + 2));
      i = j < 0 ? src.length : j + 2;
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== ch && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      out += ch + blank(src.slice(i + 1, j)) + ch;
      i = j + 1;
      last = ch;
    } else if (ch === '`') {
      out += '`';
      i++;
      template();
    } else if (ch === '/' && (last === '' || '(,=:[!&|?{};+-*%<>~^'.includes(last))) {
      let j = i + 1;
      let cls = false;
      while (j < src.length && src[j] !== '\n' && (cls || src[j] !== '/')) {
        if (src[j] === '\\') j++;
        else if (src[j] === '[') cls = true;
        else if (src[j] === ']') cls = false;
        j++;
      }
      out += `/${blank(src.slice(i + 1, j))}/`;
      i = j + 1;
      last = '/';
    } else {
      if (ch === '{') depth++;
      if (ch === '}') {
        depth--;
        if (braces.length && braces[braces.length - 1] === depth) {
          braces.pop();
          out += '}';
          i++;
          template();
          continue;
        }
      }
      out += ch;
      if (!/\s/.test(ch)) last = ch;
      i++;
    }
  }
  return out;
}

const RULES: [string, RegExp][] = [
  ['the `in` operator or for-in (sees inherited keys)', /\bin\s+[\w$([{]/],
  ['a bracket lookup by a request-derived name', /[\w$\])]\s*\[\s*(?:name|version|reference|model|source|key|claims\.\w+|c\.req\.\w+\([^)]*\))\s*\]/],
];

function findings(file: string, src: string): string[] {
  const raw = src.split('\n');
  const code = codeOnly(src).split('\n');
  const out: string[] = [];
  code.forEach((line, n) => {
    for (const [why, re] of RULES) {
      if (!re.test(line)) continue;
      if (/proto-safe/.test(raw[n]) || (n > 0 && /proto-safe/.test(raw[n - 1]))) continue;
      out.push(`${file}:${n + 1}: ${why}: ${raw[n].trim()}`);
    }
  });
  return out;
}

describe('prototype-safe lookups in worker/ and core/', () => {
  it('the scanner sees code, not comments or strings, and honours the marker', () => {
    expect(findings('x.ts', `// a model in use\nconst s = 'name in list';\nconst t = \`\${'a' in o}\`;`)).toHaveLength(1);
    expect(findings('x.ts', `if (reference in shifts) x();`)).toHaveLength(1);
    expect(findings('x.ts', `for (const k in obj) f(k);`)).toHaveLength(1);
    expect(findings('x.ts', `const m = models[name];\nconst n = BUNDLED[claims.m];\nconst g = table[c.req.param('name')];`)).toHaveLength(3);
    expect(findings('x.ts', `const m = models.get(name);\nconst ok = Object.hasOwn(o, name);\nconst r = /in [a-z]/.test(s);`)).toEqual([]);
    expect(findings('x.ts', `// proto-safe: own keys only\nconst v = o[key];\nconst w = o[key]; // proto-safe: checked above`)).toEqual([]);
  });

  it('no server source looks up a client string through a prototype', () => {
    const files = [...sources(join(ROOT, 'worker')), ...sources(join(ROOT, 'core'))];
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) => findings(relative(ROOT, f), readFileSync(f, 'utf8')));
    expect(found, found.join('\n')).toEqual([]);
  });
});
