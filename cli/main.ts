/**
 * `driftwatch`: the operator's command line, a thin client of the edge's operator API (the
 * routes /openapi.json describes). Tables for people, `--json` for scripts; an error is one line
 * on stderr and a non-zero exit, never a stack trace.
 *
 *   driftwatch import <model.onnx> --name <name> --reference <rows> [--label] [--timestamp] [--task] [--version] [--quantize int8] [--out]
 *   driftwatch push <dir> [--version <v>]
 *   driftwatch models
 *   driftwatch versions <name> [--from] [--to]
 *   driftwatch route <name> [--stable <v>] [--canary <v> --share <s>] [--shadow <v> [--sample <r>]]
 *   driftwatch drift <name> [--from] [--to] [--step] [--reference] [--version]
 *   driftwatch alerts <name>
 *   driftwatch history <name> [--limit N]
 *   driftwatch rollout <name> [<version> [--plan <file>]] [--pause|--resume|--abort|--promote]
 *   driftwatch rollback <name>
 *   driftwatch performance <name> [--from] [--to] [--step] [--version]
 *
 * Endpoint: --endpoint, else DRIFTWATCH_ENDPOINT, else http://127.0.0.1:8787. Token:
 * DRIFTWATCH_TOKEN, else OPERATOR_TOKEN in .dev.vars (what `npm start` uses). The CLI meets the
 * worker over HTTP only, reading the answers through core/contracts.ts's types.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  AlertsAnswer,
  DriftAnswer,
  ErrorBodyV1,
  HistoryAnswer,
  PerformanceAnswer,
  RolloutsAnswer,
  RolloutView,
  VersionsAnswer,
} from '../core/contracts.ts';
import { CliError } from './errors.ts';
import { importModel, readModelFolder } from './import.ts';

export { CliError };

/** `--slot-minutes M` as a number; text that is not one is refused as given. */
function slotMinutes(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,4}$/.test(raw))
    throw new CliError(`--slot-minutes ${JSON.stringify(raw.slice(0, 32))} must be a whole number of minutes dividing a day (1-720)`, 2);
  return Number(raw);
}

const USAGE = `driftwatch: the edge's operator API from the command line

usage:
  driftwatch import <model.onnx> --name N --reference <rows.csv|.jsonl|.parquet> [--label COL] [--task T]
                   [--version V] [--quantize int8] [--owner WHO] [--retrain-every P30D] [--out DIR]
                   [--timestamp COL [--slot-minutes 60] [--slot-clock wall|event]]
                                                    a model folder (manifest, baseline, golden rows) from an ONNX file
  driftwatch push <dir> [--version V]               push a model folder to the edge's registry (checked there first)
  driftwatch models                                 the models the edge serves, with every version in its registry
  driftwatch versions <name> [--from T] [--to T]    deployed versions side by side, with the canary verdict
  driftwatch route <name> [--stable V] [--canary V --share S] [--shadow V [--sample R]]
                                                    show the routing table, or replace it
  driftwatch drift <name> [--from T] [--to T] [--step MS] [--reference R] [--version V]
                                                    drift by window against the baseline (or a moving reference)
  driftwatch alerts <name>                          drift alerts, open and resolved
  driftwatch history <name> [--limit N]             who changed what serves, when, from what to what, and why
  driftwatch rollout <name> <version> [--plan FILE] start a rollout: shadow, canary steps, promotion, judged on live traffic
  driftwatch rollout <name>                         the running (else latest) rollout's stage and analysis, and earlier ones
  driftwatch rollout <name> --pause|--resume|--abort|--promote
                                                    take over the running rollout
  driftwatch rollback <name>                        back to the stable the rollout began from, else the previous stable
  driftwatch performance <name> [--from T] [--to T] [--step MS] [--version V]
                                                    realized performance from late labels, per version and window

options:
  --endpoint URL   the edge (else DRIFTWATCH_ENDPOINT, else http://127.0.0.1:8787)
  --reason TEXT    why (route, push, rollout, rollback): kept in the model's history
  --json           the API's answer as JSON, for scripts
  --help           this text
token: DRIFTWATCH_TOKEN, else OPERATOR_TOKEN in .dev.vars
times (T): ms since the epoch or an ISO 8601 date`;

const FLAGS = new Set([
  'endpoint',
  'from',
  'to',
  'step',
  'reference',
  'version',
  'stable',
  'canary',
  'share',
  'shadow',
  'sample',
  'name',
  'label',
  'task',
  'quantize',
  'out',
  'limit',
  'reason',
  'owner',
  'retrain-every',
  'timestamp',
  'slot-minutes',
  'slot-clock',
  'plan',
]);
/** Flags that take no value. */
const SWITCHES = new Set(['pause', 'resume', 'abort', 'promote']);

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
      if (SWITCHES.has(name) && inline === undefined) {
        options.set(name, 'true');
        continue;
      }
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
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body === undefined || body instanceof FormData ? {} : { 'content-type': 'application/json' }),
          // Why, for the model's history (route, push).
          ...(method !== 'GET' && p.options.has('reason') ? { 'x-change-reason': p.options.get('reason')! } : {}),
        },
        body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(body instanceof FormData ? 300_000 : 30_000),
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
    case 'import': {
      const model = p.args[0];
      if (!model) throw new CliError('driftwatch import needs an ONNX file: driftwatch import <model.onnx> --name <name> --reference <rows>', 2);
      const modelName = p.options.get('name');
      if (!modelName) throw new CliError('driftwatch import needs --name <name> (lower case, digits, ".", "_", "-")', 2);
      if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(modelName))
        throw new CliError(`--name ${modelName} must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit`, 2);
      const reference = p.options.get('reference');
      if (!reference) throw new CliError('driftwatch import needs --reference <rows.csv|.jsonl|.parquet>: the rows the baseline is computed from', 2);
      const report = await importModel(
        {
          model,
          name: modelName,
          reference,
          label: p.options.get('label'),
          task: p.options.get('task'),
          version: p.options.get('version') ?? '1',
          quantize: p.options.get('quantize'),
          owner: p.options.get('owner'),
          retrainEvery: p.options.get('retrain-every'),
          timestamp: p.options.get('timestamp'),
          slotMinutes: slotMinutes(p.options.get('slot-minutes')),
          slotClock: p.options.get('slot-clock'),
          out: p.options.get('out') ?? join('models', modelName),
        },
        p.json ? undefined : (line) => io.out(`  ${line}`),
      );
      print(
        {
          out: report.out,
          rows: report.rows,
          files: report.files,
          quality: report.quality,
          quantization: report.quantization ?? null,
          manifest: report.manifest,
        },
        () => report.lines,
      );
      return 0;
    }
    case 'push': {
      const dir = p.args[0];
      if (!dir) throw new CliError('driftwatch push needs a model folder (driftwatch import writes one)', 2);
      const files = readModelFolder(dir);
      let manifest: { name?: unknown; version?: unknown };
      try {
        manifest = JSON.parse(new TextDecoder().decode(files['manifest.json']));
      } catch (e) {
        throw new CliError(`${join(dir, 'manifest.json')} is not JSON (${(e as Error).message})`, 2);
      }
      if (typeof manifest.name !== 'string') throw new CliError(`${join(dir, 'manifest.json')} has no "name"`, 2);
      const version = p.options.get('version') ?? (typeof manifest.version === 'string' ? manifest.version : undefined);
      if (!version) throw new CliError(`${join(dir, 'manifest.json')} has no "version"; give one with --version`, 2);
      if (manifest.version !== version) files['manifest.json'] = new TextEncoder().encode(JSON.stringify({ ...manifest, version }, null, 1));
      const body = new FormData();
      for (const [f, bytes] of Object.entries(files)) body.append(f, new Blob([bytes as Uint8Array<ArrayBuffer>]), f);
      const a = await call<PushAnswer>('PUT', `/v1/models/${encodeURIComponent(manifest.name)}/versions/${encodeURIComponent(version)}`, body);
      print(a, () => pushLines(a));
      return 0;
    }
    case 'models': {
      const a = await call<{
        models: {
          name: string;
          version: string;
          task: string;
          description: string;
          versions?: { version: string }[];
          ownership?: { owner: string | null; retrain_every: string | null; age_days: number | null; stale: boolean | null } | null;
        }[];
      }>('GET', '/v1/models');
      // version: the default one (what serves with no routing table); registry: every version pushed, oldest first;
      // retrain: the model's age against its cadence, and its owner.
      const retrain = (o: (typeof a.models)[number]['ownership']) =>
        !o
          ? ''
          : [o.stale ? `STALE (${o.age_days} d, every ${o.retrain_every})` : o.age_days !== null ? `${o.age_days} d of ${o.retrain_every}` : '', o.owner ?? '']
              .filter(Boolean)
              .join(', ');
      print(a, () =>
        grid(
          ['model', 'version', 'task', 'registry', 'description', 'retrain'],
          a.models.map((m) => [m.name, m.version, m.task, (m.versions ?? []).map((v) => v.version).join(', '), m.description, retrain(m.ownership)]),
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
    case 'history': {
      const lim = p.options.get('limit');
      if (lim !== undefined && !/^\d+$/.test(lim)) throw new CliError(`--limit must be a whole number, got ${lim}`, 2);
      const a = await call<HistoryAnswer>('GET', `/v1/models/${name()}/history${query(['limit'])}`);
      const table = (t: unknown) => {
        if (!t || typeof t !== 'object') return 'none';
        const r = t as VersionsAnswer['routing'];
        return [
          `stable ${r.stable}`,
          ...(r.canary ? [`canary ${r.canary.version} ${pct(r.canary.share)}`] : []),
          ...(r.shadows ?? []).map((x) => `shadow ${x.version}`),
        ].join(', ');
      };
      print(a, () => [
        `${a.model}: ${a.entries.length} change(s), newest first`,
        ...grid(
          ['#', 'at', 'who', 'change', 'why'],
          a.entries.map((e) => [
            String(e.seq),
            e.at,
            e.who,
            e.action === 'push' || e.action === 'delete'
              ? `${e.action} version ${e.version}`
              : `${e.action === 'route' ? 'route' : `${e.action}${e.rollout ? ` (rollout ${e.rollout})` : ''}`}: ${table(e.from)} -> ${table(e.to)}`,
            e.why ?? '',
          ]),
        ),
      ]);
      return 0;
    }
    case 'rollout': {
      const n = name();
      const version = p.args[1];
      const actions = [...SWITCHES].filter((a) => p.options.has(a));
      if (actions.length > 1) throw new CliError(`one of --${actions.join(', --')} at a time`, 2);
      if (actions.length && version) throw new CliError(`--${actions[0]} takes over the running rollout; it names no version`, 2);
      if (p.options.has('plan') && !version) throw new CliError('--plan goes with a version to roll out', 2);
      if (version) {
        let plan: unknown;
        if (p.options.has('plan')) {
          const file = p.options.get('plan')!;
          try {
            plan = JSON.parse(readFileSync(file, 'utf8'));
          } catch (err) {
            throw new CliError(`--plan ${file}: ${(err as Error).message}`, 2);
          }
        }
        const a = await call<RolloutView>('POST', `/v1/models/${n}/rollouts`, { version, ...(plan === undefined ? {} : { plan }) });
        print(a, () => rolloutLines(a));
        return 0;
      }
      const list = await call<RolloutsAnswer>('GET', `/v1/models/${n}/rollouts`);
      if (actions.length) {
        if (!list.active) throw new CliError(`${list.model} has no running or paused rollout`);
        const a = await call<RolloutView>('POST', `/v1/models/${n}/rollouts/${list.active.id}/${actions[0]}`);
        print(a, () => rolloutLines(a));
        return 0;
      }
      // The running rollout, else the latest (why did it end?), in full; then the ones before.
      const shown = list.active ?? list.rollouts[0];
      const earlier = list.rollouts.filter((r) => r.id !== shown?.id).slice(0, 10);
      print(list, () => [
        ...(shown ? rolloutLines(shown) : [`${list.model}: no rollout yet`]),
        ...(earlier.length
          ? [
              '',
              ...grid(
                ['rollout', 'version', 'from', 'status', 'started', 'why'],
                earlier.map((r) => [String(r.id), r.version, r.stable, r.status, r.started_at, r.reason ?? '']),
              ),
            ]
          : []),
      ]);
      return 0;
    }
    case 'rollback': {
      const a = await call<{ model: string; table: VersionsAnswer['routing']; rollout?: number }>('POST', `/v1/models/${name()}/rollback`);
      print(a, () => [
        `${a.model}: rolled back${a.rollout ? ` (rollout ${a.rollout})` : ''}`,
        ...describeTable(a.model, a.table, undefined, null).slice(0, -1),
      ]);
      return 0;
    }
    case 'performance': {
      const a = await call<PerformanceAnswer>('GET', `/v1/models/${name()}/performance${query(['from', 'to', 'step', 'version'])}`);
      // The columns of each task's realized figures (core/outcomes.ts realized).
      type Realized = PerformanceAnswer['total'][string];
      const columns: Record<PerformanceAnswer['task'], [string, (x: Realized) => string][]> = {
        'binary-classification': [
          ['AUC', (x) => num(x.auc ?? null, 3)],
          ['log loss', (x) => num(x.log_loss ?? null, 3)],
          ['positives', (x) => (x.positive_rate == null ? '' : pct(x.positive_rate))],
        ],
        'multiclass-classification': [
          ['accuracy', (x) => (x.accuracy == null ? '' : pct(x.accuracy))],
          ['macro F1', (x) => num(x.macro_f1 ?? null, 3)],
          ['classes', (x) => String(x.classes ?? '')],
        ],
        regression: [
          ['MAE', (x) => num(x.mae ?? null, 3)],
          ['RMSE', (x) => num(x.rmse ?? null, 3)],
          ['bias', (x) => num(x.bias ?? null, 3)],
        ],
        'top-k-recommendation': [
          ...['1', '3', '10'].map((k): [string, (x: Realized) => string] => [`CTR@${k}`, (x) => (x.ctr_at?.[k] == null ? '' : pct(x.ctr_at[k]))]), // proto-safe: fixed keys
          ['hit rate', (x) => (x.hit_rate == null ? '' : pct(x.hit_rate))],
          ['converted', (x) => (x.conversion_rate == null ? '' : pct(x.conversion_rate))],
        ],
      };
      const cols = columns[a.task] ?? [];
      const head = ['from', 'to', 'version', 'predicted', a.task === 'top-k-recommendation' ? 'with events' : 'labelled', ...cols.map(([h]) => h)];
      const cells = (x: Realized) => cols.map(([, f]) => f(x));
      print(a, () => [
        `${a.model} (${a.task}): realized performance from the ${a.task === 'top-k-recommendation' ? 'events' : 'labels'} joined so far`,
        ...grid(
          head,
          a.windows.flatMap((w) =>
            Object.entries(w.versions).map(([v, x]) => [
              w.from,
              w.to,
              v,
              String(x.predicted),
              `${x.labelled} (${x.labelled_share == null ? '-' : pct(x.labelled_share)})`,
              ...cells(x),
            ]),
          ),
        ),
      ]);
      return 0;
    }
    default:
      throw new CliError(`unknown command ${JSON.stringify(p.command)} (see driftwatch --help)`, 2);
  }
}

function rolloutLines(r: RolloutView): string[] {
  const plan = [...(r.plan.shadow ? [`shadow ${pct(r.plan.shadow.sample_rate)}`] : []), ...r.plan.steps.map((s) => pct(s.share)), '100%'];
  const at = r.stage.kind === 'promoted' ? plan.length - 1 : r.stage.index;
  return [
    `${r.model} rollout ${r.id}: version ${r.version} from stable ${r.stable}, ${r.status} (started by ${r.started_by} at ${r.started_at})`,
    `  plan: ${plan.map((x, i) => (i === at ? `[${x}]` : x)).join(' -> ')}`,
    ...(r.reason ? [`  ${r.reason}`] : []),
    ...(r.analysis
      ? [
          `  latest analysis: ${r.analysis.verdict} (${r.analysis.rows.candidate} rows of the candidate, ${r.analysis.rows.stable} of stable)`,
          ...grid(
            ['check', 'status', 'evidence'],
            r.analysis.checks.map((c) => [c.name, c.status, c.detail]),
          ).map((l) => `  ${l}`),
        ]
      : []),
  ];
}

interface PushAnswer {
  model: string;
  version: string;
  created: boolean;
  record: { pushed_at: string; files: Record<string, { sha256: string; bytes: number }> };
  checks?: { load_ms: number; golden_rows: number; agreement: Record<string, { max_abs_diff?: number; min_overlap?: number; exact?: boolean }> };
  serving: string;
}

function pushLines(a: PushAnswer): string[] {
  const m = a.record.files['model.onnx'];
  const head = `${a.created ? 'pushed' : 'already there:'} ${a.model} version ${a.version}: model.onnx ${(m.bytes / 1024).toFixed(1)} KB, sha256 ${m.sha256.slice(0, 16)}…`;
  if (!a.checks) return [head, `  ${a.serving}`];
  const agreement = Object.entries(a.checks.agreement).map(([o, x]) =>
    x.max_abs_diff !== undefined
      ? `${o} within ${x.max_abs_diff.toExponential(1)}`
      : x.min_overlap !== undefined
        ? `${o} overlap ≥ ${x.min_overlap.toFixed(2)}`
        : `${o} exact`,
  );
  return [
    head,
    `  checked on the edge engine: loaded in ${a.checks.load_ms} ms; ${a.checks.golden_rows} golden rows reproduce (${agreement.join(', ')})`,
    `  ${a.serving}`,
  ];
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
const num = (x: number | null, digits = 1) => (x === null ? '-' : x.toFixed(digits));

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
