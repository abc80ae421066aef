// The driftwatch CLI as a person runs it (node cli/driftwatch.mjs, the package's bin) against a
// real worker under wrangler dev: tables, --json, routing changes, and one-line errors with the
// exit status a script can test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../test/support/cli.ts';
import { freePort, startWorker, stop, waitFor } from '../test/support/servers.ts';
import { grid, parseArgs } from './main.ts';

const TOKEN = 'cli-operator';
let endpoint = '';
let worker: Awaited<ReturnType<typeof startWorker>> | undefined;

/** Runs the CLI against this file's worker. */
const driftwatch = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, { DRIFTWATCH_ENDPOINT: endpoint, DRIFTWATCH_TOKEN: TOKEN, ...env }, 60_000);

describe('parseArgs and grid', () => {
  it('reads positionals, --flag value, --flag=value, --json; refuses unknown options and missing values', () => {
    const p = parseArgs(['route', 'flight-delay', '--canary', '1-float32', '--share=0.25', '--json']);
    expect(p.command).toBe('route');
    expect(p.args).toEqual(['flight-delay']);
    expect(Object.fromEntries(p.options)).toEqual({ canary: '1-float32', share: '0.25' });
    expect(p.json).toBe(true);
    expect(() => parseArgs(['drift', 'x', '--colour', 'red'])).toThrow(/unknown option --colour/);
    expect(() => parseArgs(['drift', 'x', '--from'])).toThrow(/--from needs a value/);
    expect(() => parseArgs(['drift', 'x', '--from', '--to', '5'])).toThrow(/--from needs a value/);
  });

  it('pads columns to their widest cell', () => {
    expect(grid(['a', 'bb'], [['xxx', 'y']])).toEqual(['a    bb', '---  --', 'xxx  y']);
    expect(grid(['a'], [])).toEqual(['(none)']);
  });
});

describe('driftwatch against wrangler dev', () => {
  beforeAll(async () => {
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    worker = await startWorker(port, { OPERATOR_TOKEN: TOKEN, CACHE_MAX_BYTES: '0' });
    await waitFor(`${endpoint}/healthz`);
  }, 120_000);
  afterAll(async () => {
    if (worker) await stop(worker);
  });

  it('lists models, shows and changes the routing table, and shows versions, drift and alerts', async () => {
    const models = await driftwatch(['models']);
    expect(models.code, models.err).toBe(0);
    expect(models.out).toMatch(/^model\s+version\s+task/m);
    expect(models.out).toMatch(/^flight-delay\s+1\s+binary-classification\s+1, 1-float32\s+Probability/m);
    expect(models.out).toMatch(/^movielens-topk\s+1\s+top-k-recommendation/m);

    const shown = await driftwatch(['route', 'flight-delay']);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toContain('flight-delay: stable 1');
    expect(shown.out).toContain('deployed: 1, 1-float32');
    expect(shown.out).toContain('the default table (none stored)');

    const set = await driftwatch([
      'route',
      'flight-delay',
      '--canary',
      '1-float32',
      '--share',
      '0.2',
      '--shadow',
      '1-float32',
      '--sample',
      '0.5',
      '--reason',
      'first canary',
    ]);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toContain('canary 1-float32 for 20.0% of callers');
    expect(set.out).toContain('shadow 1-float32 on 50.0% of requests');
    const json = JSON.parse((await driftwatch(['route', 'flight-delay', '--json'])).out);
    expect(json.table).toEqual({ stable: '1', canary: { version: '1-float32', share: 0.2 }, shadows: [{ version: '1-float32', sampleRate: 0.5 }] });

    // The change is in the model's history: who (the token's name), from what to what, why.
    const history = await driftwatch(['history', 'flight-delay']);
    expect(history.code, history.err).toBe(0);
    expect(history.out).toContain('flight-delay: 1 change(s), newest first');
    expect(history.out).toMatch(/^1\s+\d{4}-\d\d-\d\dT\S+\s+operator\s+route: none -> stable 1, canary 1-float32 20\.0%, shadow 1-float32\s+first canary$/m);
    expect(JSON.parse((await driftwatch(['history', 'flight-delay', '--json', '--limit', '5'])).out).entries[0]).toMatchObject({
      who: 'operator',
      why: 'first canary',
    });

    const versions = await driftwatch(['versions', 'flight-delay']);
    expect(versions.code, versions.err).toBe(0);
    expect(versions.out).toMatch(/^flight-delay: .* to /m);

    const drift = await driftwatch(['drift', 'flight-delay', '--json', '--from', new Date(Date.now() - 3600_000).toISOString(), '--step', '600000']);
    expect(drift.code, drift.err).toBe(0);
    const d = JSON.parse(drift.out);
    expect(d.model).toBe('flight-delay');
    expect(d.windows.length).toBeGreaterThanOrEqual(6);
    const table = await driftwatch(['drift', 'flight-delay']);
    expect(table.out).toMatch(/against the training baseline/);
    expect(table.out).toMatch(/^from\s+to\s+rows/m);

    const alerts = await driftwatch(['alerts', 'flight-delay']);
    expect(alerts.code, alerts.err).toBe(0);
    expect(alerts.out).toContain('flight-delay: 0 open');
  });

  it('errors are one line with an exit status: the edge refusing (1), a usage mistake (2), no edge (1)', async () => {
    const denied = await driftwatch(['alerts', 'flight-delay'], { DRIFTWATCH_TOKEN: 'wrong' });
    expect(denied.code).toBe(1);
    expect(denied.err.trim().split('\n')).toHaveLength(1);
    expect(denied.err).toMatch(/^driftwatch: 401 a valid operator bearer token is required \(authorization\) \(set DRIFTWATCH_TOKEN/);

    const unknownModel = await driftwatch(['drift', 'no-such-model']);
    expect(unknownModel.code).toBe(1);
    expect(unknownModel.err).toMatch(/^driftwatch: 404 unknown model "no-such-model"/);

    const badTable = await driftwatch(['route', 'flight-delay', '--canary', 'v9', '--share', '0.1']);
    expect(badTable.code).toBe(1);
    expect(badTable.err).toMatch(/^driftwatch: 422 canary.version must be one of the deployed versions/);

    const usage = await driftwatch(['route', 'flight-delay', '--canary', '1-float32']);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/--canary needs --share/);
    expect((await driftwatch(['frobnicate'])).code).toBe(2);
    expect((await driftwatch([])).code).toBe(2);

    const port = await freePort();
    const gone = await driftwatch(['models'], { DRIFTWATCH_ENDPOINT: `http://127.0.0.1:${port}` });
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/^driftwatch: cannot reach the edge at http:\/\/127\.0\.0\.1:\d+/);
    expect(gone.err).not.toMatch(/\n\s+at /);
    // A usage mistake is told as one whether or not the edge answers.
    const offline = await driftwatch(['route', 'flight-delay', '--canary', '1-float32', '--share', '1e309'], {
      DRIFTWATCH_ENDPOINT: `http://127.0.0.1:${port}`,
    });
    expect(offline.code).toBe(2);
    expect(offline.err).toMatch(/--canary needs --share, a number in \[0, 1\]/);
  });
});
