/**
 * `driftwatch`: the operator's command line, a thin client of the edge's operator API (the
 * routes /openapi.json describes). Tables for people, `--json` for scripts; an error is one line
 * on stderr and a non-zero exit, never a stack trace.
 *
 *   driftwatch models
 *   driftwatch versions <name> [--from] [--to]
 *   driftwatch route <name> [--stable <v>] [--canary <v> --share <s>] [--shadow <v> [--sample <r>]]
 *   driftwatch drift <name> [--from] [--to] [--step] [--reference] [--version]
 *   driftwatch alerts <name>
 *
 * Endpoint: --endpoint, else DRIFTWATCH_ENDPOINT, else http://127.0.0.1:8787. Token:
 * DRIFTWATCH_TOKEN, else OPERATOR_TOKEN in .dev.vars (what `npm start` uses). The CLI meets the
 * worker over HTTP only, reading the answers through core/contracts.ts's types.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AlertsAnswer, DriftAnswer, ErrorBodyV1, VersionsAnswer } from '../core/contracts.ts';

/** A mistake the person can fix: printed as one line, exit status 2 (usage) or 1 (the edge refused). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const USAGE = `driftwatch: the edge's operator API from the command line

usage:
  driftwatch models                                 the models the edge serves
  driftwatch versions <name> [--from T] [--to T]    deployed versions side by side, with the canary verdict
  driftwatch route <name> [--stable V] [--canary V --share S] [--shadow V [--sample R]]
                                                    show the routing table, or replace it
  driftwatch drift <name> [--from T] [--to T] [--step MS] [--reference R] [--version V]
                                                    drift by window against the baseline (or a moving reference)
  driftwatch alerts <name>                          drift alerts, open and resolved

options:
  --endpoint URL   the edge (else DRIFTWATCH_ENDPOINT, else http://127.0.0.1:8787)
  --json           the API's answer as JSON, for scripts
  --help           this text
token: DRIFTWATCH_TOKEN, else OPERATOR_TOKEN in .dev.vars
times (T): ms since the epoch or an ISO 8601 date`;

const FLAGS = new Set(['endpoint', 'from', 'to', 'step', 'reference', 'version', 'stable', 'canary', 'share', 'shadow', 'sample']);

export interface Parsed {
  command: string | undefined;
  args: string[];
  options: Map<string, string>;
  json: boolean;
  help: boolean;
}

/** argv after the command name: positionals, `--flag value` options (known flags only), --json, --help. */
export function parseArgs(argv: string[]): Parsed {
  const args: string[] = [];
  const options = new Map<string, string>();
  let json = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') json = true;
    else if (a === '--help' || a === '-h') help = true;
    else if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
      if (!FLAGS.has(name)) throw new CliError(`unknown option --${name} (see driftwatch --help)`, 2);
      const value = inline ?? argv[++i];
      if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new CliError(`--${name} needs a value`, 2);
      options.set(name, value);
    } else args.push(a);
  }
  return { command: args.shift(), args, options, json, help };
}

/** The operator token: DRIFTWATCH_TOKEN, else OPERATOR_TOKEN in ./.dev.vars. */
export function tokenFrom(env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  if (env.DRIFTWATCH_TOKEN) return env.DRIFTWATCH_TOKEN;
  try {
    const vars = readFileSync(join(cwd, '.dev.vars'), 'utf8');
    return /^OPERATOR_TOKEN=(.*)$/m.exec(vars)?.[1]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

interface Io {
  out: (line: string) => void;
  fetch: typeof fetch;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Runs one command; returns the exit status. */
export async function run(argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv);
  if (p.help || p.command === undefined || p.command === 'help') {
    io.out(USAGE);
    return p.command === undefined && !p.help ? 2 : 0;
  }
  const endpoint = (p.options.get('endpoint') ?? io.env.DRIFTWATCH_ENDPOINT ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(endpoint)) throw new CliError(`the endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}`, 2);
  const token = tokenFrom(io.env, io.cwd);

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await io.fetch(`${endpoint}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new CliError(
        `cannot reach the edge at ${endpoint} (${(err as Error).cause ? String((err as Error & { cause: Error }).cause.message ?? err) : (err as Error).message})`,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CliError(`${method} ${path}: the edge answered ${res.status} with something that is not JSON`);
    }
    if (!res.ok) {
      const e = (json as ErrorBodyV1).error;
      const what = e && typeof e === 'object' ? `${e.message}${e.field ? ` (${e.field})` : ''}` : text.slice(0, 200);
      const hint = res.status === 401 ? ' (set DRIFTWATCH_TOKEN, or OPERATOR_TOKEN in .dev.vars)' : '';
      throw new CliError(`${res.status} ${what}${hint}`);
    }
    return json as T;
  };
  const name = () => {
    const n = p.args[0];
    if (!n) throw new CliError(`driftwatch ${p.command} needs a model name (driftwatch models lists them)`, 2);
    return encodeURIComponent(n);
  };
  const query = (keys: string[]) => {
    const q = new URLSearchParams();
    for (const k of keys) if (p.options.has(k)) q.set(k, p.options.get(k)!);
    const s = q.toString();
    return s ? `?${s}` : '';
  };
  const print = (answer: unknown, table: () => string[]) => {
    if (p.json) io.out(JSON.stringify(answer, null, 2));
    else for (const line of table()) io.out(line);
  };

  switch (p.command) {
    case 'models': {
      const a = await call<{ models: { name: string; version: string; task: string; description: string }[] }>('GET', '/v1/models');
      print(a, () =>
        grid(
          ['model', 'version', 'task', 'description'],
          a.models.map((m) => [m.name, m.version, m.task, m.description]),
        ),
      );
      return 0;
    }
    case 'versions': {
      const a = await call<VersionsAnswer>('GET', `/v1/models/${name()}/versions${query(['from', 'to'])}`);
      print(a, () => [
        `${a.model}: ${a.from} to ${a.to}`,
        ...grid(
          ['version', 'role', 'rows', 'errors', 'fallbacks', 'p50 ms', 'p99 ms', 'verdict'],
          Object.entries(a.versions).map(([v, s]) => [
            v,
            s.role,
            String(s.rows),
            pct(s.error_rate),
            pct(s.fallback_rate),
            num(s.latency_ms.p50),
            num(s.latency_ms.p99),
            s.verdict ? `${s.verdict}${s.reasons?.length ? `: ${s.reasons.join('; ')}` : ''}` : '',
          ]),
        ),
      ]);
      return 0;
    }
    case 'route': {
      const n = name();
      const change = ['stable', 'canary', 'share', 'shadow', 'sample'].some((k) => p.options.has(k));
      if (!change) {
        const a = await call<{ model: string; versions: string[]; table: VersionsAnswer['routing']; updated_at: string | null }>(
          'GET',
          `/v1/models/${n}/routing`,
        );
        print(a, () => describeTable(a.model, a.table, a.versions, a.updated_at));
        return 0;
      }
      // Options are checked before anything is asked of the edge: a usage mistake is one whatever the edge says.
      let canary: { version: string; share: number } | undefined;
      if (p.options.has('canary')) {
        const share = Number(p.options.get('share'));
        if (!p.options.has('share') || !(share >= 0 && share <= 1)) throw new CliError('--canary needs --share, a number in [0, 1]', 2);
        canary = { version: p.options.get('canary')!, share };
      } else if (p.options.has('share')) throw new CliError('--share goes with --canary', 2);
      let shadows: { version: string; sampleRate: number }[] | undefined;
      if (p.options.has('shadow')) {
        const sample = p.options.has('sample') ? Number(p.options.get('sample')) : 1;
        if (!(sample >= 0 && sample <= 1)) throw new CliError('--sample must be a number in [0, 1]', 2);
        shadows = [{ version: p.options.get('shadow')!, sampleRate: sample }];
      } else if (p.options.has('sample')) throw new CliError('--sample goes with --shadow', 2);
      const stable = p.options.get('stable') ?? (await call<{ table: VersionsAnswer['routing'] }>('GET', `/v1/models/${n}/routing`)).table.stable;
      const table: VersionsAnswer['routing'] = { stable, ...(canary ? { canary } : {}), ...(shadows ? { shadows } : {}) };
      const a = await call<{ model: string; table: VersionsAnswer['routing']; updated_at: string }>('PUT', `/v1/models/${n}/routing`, table);
      print(a, () => describeTable(a.model, a.table, undefined, a.updated_at));
      return 0;
    }
    case 'drift': {
      const a = await call<DriftAnswer>('GET', `/v1/models/${name()}/drift${query(['from', 'to', 'step', 'reference', 'version'])}`);
      print(a, () => [
        `${a.model} (version ${a.version}) against ${a.reference === 'baseline' ? `the ${a.baseline.source} baseline` : a.reference}`,
        ...grid(
          ['from', 'to', 'rows', 'p50 ms', 'drifted'],
          a.windows.map((w) => [
            w.from,
            w.to,
            String(w.rows),
            'latency_ms' in w ? num(w.latency_ms.p50) : '',
            'drifted' in w ? w.drifted.join(', ') || '-' : '-',
          ]),
        ),
      ]);
      return 0;
    }
    case 'alerts': {
      const a = await call<AlertsAnswer>('GET', `/v1/models/${name()}/alerts`);
      print(a, () => [
        `${a.model}: ${a.open} open`,
        ...grid(
          ['id', 'version', 'feature', 'since', 'opened', 'resolved'],
          a.alerts.map((x) => [String(x.id), x.version, x.feature, x.since, x.opened_at, x.resolved_at ?? 'open']),
        ),
      ]);
      return 0;
    }
    default:
      throw new CliError(`unknown command ${JSON.stringify(p.command)} (see driftwatch --help)`, 2);
  }
}

function describeTable(model: string, t: VersionsAnswer['routing'], versions: string[] | undefined, updated: string | null): string[] {
  return [
    `${model}: stable ${t.stable}`,
    ...(t.canary ? [`  canary ${t.canary.version} for ${pct(t.canary.share)} of callers`] : []),
    ...(t.shadows ?? []).map((s) => `  shadow ${s.version} on ${pct(s.sampleRate)} of requests`),
    ...(versions ? [`  deployed: ${versions.join(', ')}`] : []),
    `  ${updated ? `stored ${updated}` : 'the default table (none stored)'}`,
  ];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number | null) => (x === null ? '-' : x.toFixed(1));

/** Rows under a header, columns padded to their widest cell. */
export function grid(header: string[], rows: string[][]): string[] {
  if (rows.length === 0) return ['(none)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** The process around run(): arguments in, lines out, one-line errors, the exit status. */
export async function main(): Promise<never> {
  try {
    process.exit(await run(process.argv.slice(2), { out: (l) => console.log(l), fetch, env: process.env, cwd: process.cwd() }));
  } catch (err) {
    console.error(`driftwatch: ${err instanceof CliError ? err.message : `unexpected error: ${(err as Error)?.message ?? err}`}`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  }
}
