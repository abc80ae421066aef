/**
 * Real server processes for fault tests and benchmarks, on 127.0.0.1 only: the worker under
 * `wrangler dev` and the origin (onnxruntime-node). Each runs in its own process group so that
 * stopping it stops its children (wrangler's workerd, npx's node).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '../..');
/** The benchmark worker's wrangler configuration (the product plus the bench routes), for startWorker's `config`. */
export const BENCH_CONFIG = 'bench/wrangler.toml';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function start(cmd: string, args: string[], cwd = ROOT, env: Record<string, string> = {}): ChildProcess {
  // The project's own binaries (its Node 22, wrangler, tsx) first, also from a folder outside it.
  const PATH = `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}`;
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, PATH, WRANGLER_SEND_METRICS: 'false', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  // The last few KiB of what it printed, for the error when it does not come up.
  let tail = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4096);
  });
  stderrTails.set(child, () => tail);
  return child;
}

const stderrTails = new WeakMap<ChildProcess, () => string>();

/** The last 4 KiB a process started here wrote to stderr ('' for any other). */
export function stderrTail(child: ChildProcess): string {
  return stderrTails.get(child)?.() ?? '';
}

/** The origin: float32 models on onnxruntime-node, optionally slowed by `delayMs` per inference. */
export function startOrigin(port: number, delayMs = 0, pull?: { registry: string; token: string; everyMs?: number }): ChildProcess {
  const args = ['tsx', 'origin/server.ts', '--port', String(port), '--delay-ms', String(delayMs)];
  if (pull) args.push('--registry', pull.registry, '--pull-ms', String(pull.everyMs ?? 1000));
  return start('npx', args, ROOT, pull ? { ORIGIN_REGISTRY_TOKEN: pull.token } : {});
}

/** State folders of the workers started by this process, removed when it exits (a restart on the same port within a test keeps its state). */
const stateDirs = new Set<string>();
process.once('exit', () => {
  for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
});

/**
 * The worker under wrangler dev, with its own inspector port and state folder (so several can run).
 * `cwd`: another checkout to run (e.g. a snapshot of this one, which wrangler's file watcher then
 * cannot reload mid-measurement when someone edits the tree). `config`: another wrangler
 * configuration, relative to `cwd` (the benchmark worker's is bench/wrangler.toml). The
 * developer's `.dev.vars` is ignored: the worker sees `vars` and wrangler.toml's settings only.
 */
export async function startWorker(
  port: number,
  vars: Record<string, string>,
  { cwd = ROOT, config }: { cwd?: string; config?: string } = {},
): Promise<ChildProcess> {
  const state = join(tmpdir(), `dw-wrangler-${port}`);
  // A folder of this port left by an earlier process (one killed before its cleanup) is not this
  // test's state: start empty. A restart within the process (the same port again) keeps it.
  if (!stateDirs.has(state)) rmSync(state, { recursive: true, force: true });
  stateDirs.add(state);
  const inspector = await freePort();
  const child = start(
    join(ROOT, 'node_modules/.bin/wrangler'),
    [
      'dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--inspector-port',
      String(inspector),
      '--persist-to',
      state,
      '--log-level',
      'error',
      '--show-interactive-dev-session=false',
      // A developer's .dev.vars (npm start writes one) must not reach tests and benchmarks: every setting they need is a --var.
      '--env-file',
      '/dev/null',
      ...(config ? ['--config', config] : []),
      ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
    ],
    cwd,
  );
  inspectorPorts.set(child, inspector);
  return child;
}

/**
 * startWorker, then until `probe` answers. A start that has not come up in `ms` (or exited) is
 * killed and started once more on the same port and state, saying so with what it printed: on a
 * loaded 2-core CI machine a wrangler dev start has, rarely, hung past 90 s after a restart,
 * and the tests built on it are about the worker, not about wrangler's start.
 */
export async function startWorkerUp(
  port: number,
  vars: Record<string, string>,
  { probe = '/v2/health/live', ms = 60_000, ...options }: { probe?: string; ms?: number; cwd?: string; config?: string } = {},
): Promise<ChildProcess> {
  const url = `http://127.0.0.1:${port}${probe}`;
  const first = await startWorker(port, vars, options);
  try {
    await waitFor(url, ms, first);
    return first;
  } catch (e) {
    console.warn(`wrangler dev on ${port} did not come up; starting it once more. ${(e as Error).message}\n${stderrTail(first)}`);
    await stop(first);
  }
  const second = await startWorker(port, vars, options);
  try {
    await waitFor(url, 90_000, second);
  } catch (e) {
    await stop(second);
    throw e;
  }
  return second;
}

/** The inspector port of each worker started by startWorker (wrangler's DevTools proxy to the user worker). */
const inspectorPorts = new WeakMap<ChildProcess, number>();

export function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      resolve();
    }
  });
}

/**
 * Until `url` answers 2xx. With `child`, it fails at once, with the child's stderr, when the child
 * exits first (rather than waiting out `ms` for a server that is gone).
 */
export async function waitFor(url: string, ms = 90_000, child?: ChildProcess): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${url}: the server exited (${child.exitCode ?? child.signalCode}) before it came up:\n${stderrTail(child)}`);
    }
    try {
      const res = await fetch(url);
      await res.text();
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up in ${ms} ms`);
}

/**
 * The processes named `name` (as /proc/<pid>/stat spells it, e.g. "workerd") in `child`'s process
 * group: start() makes each child a group leader, so wrangler's workerd is in its child's group.
 * Linux only (reads /proc); empty when none is running.
 */
export function groupProcesses(child: ChildProcess, name: string): number[] {
  const pgid = child.pid!;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while listing
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split at the last ')'.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (comm === name && Number(fields[2]) === pgid) pids.push(Number(entry));
  }
  return pids;
}

/** Resident set size of a process in bytes (VmRSS in /proc/<pid>/status); undefined once it has exited. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The workerd process that runs the user worker (and its Durable Objects) under `wrangler dev`:
 * wrangler starts two, a proxy on the public port and the user worker, which alone gets
 * `--inspector-addr`.
 */
export function workerdPids(child: ChildProcess): { worker: number | undefined; proxy: number | undefined } {
  let worker: number | undefined;
  let proxy: number | undefined;
  for (const pid of groupProcesses(child, 'workerd')) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes('--inspector-addr')) worker = pid;
    else proxy = pid;
  }
  return { worker, proxy };
}

/**
 * The user worker's memory as its inspector reports it (through wrangler's DevTools proxy, which
 * wants a local Origin), in bytes: the JS heap used and reserved and ArrayBuffer backing stores
 * (Runtime.getHeapUsage), and the WebAssembly memories (onnxruntime-web's heap: the byteLength
 * of every live WebAssembly.Memory, found with Runtime.queryObjects), which the others leave out.
 * One session for all readings: the execution context is announced once, at Runtime.enable.
 */
export async function workerInspector(
  child: ChildProcess,
  timeoutMs = 5000,
): Promise<{ heap(): Promise<{ used: number; total: number; backing: number; wasm: number }>; close(): void }> {
  const port = inspectorPorts.get(child);
  if (port === undefined) throw new Error('not a worker started by startWorker');
  const url = `ws://127.0.0.1:${port}/ws`;
  // Node's WebSocket (undici) takes headers as a second argument; typed structurally here.
  type Socket = {
    send(data: string): void;
    close(): void;
    addEventListener(type: 'open' | 'error' | 'message', listener: (e: { data?: unknown }) => void): void;
  };
  const WS = (globalThis as unknown as { WebSocket: new (url: string, init: { headers: Record<string, string> }) => Socket }).WebSocket;
  const ws = new WS(url, { headers: { origin: `http://127.0.0.1:${port}` } });
  const pending = new Map<number, (m: { result?: any; error?: { message: string } }) => void>();
  const contexts: number[] = [];
  let id = 0;
  ws.addEventListener('message', (e) => {
    const m = JSON.parse(String(e.data)) as {
      id?: number;
      method?: string;
      params?: { context?: { id: number } };
      result?: unknown;
      error?: { message: string };
    };
    if (m.method === 'Runtime.executionContextCreated' && m.params?.context) contexts.push(m.params.context.id);
    if (m.id !== undefined) pending.get(m.id)?.(m);
  });
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<any>((resolve, reject) => {
      const i = ++id;
      const timer = setTimeout(() => reject(new Error(`${method}: no answer from ${url} in ${timeoutMs} ms`)), timeoutMs);
      pending.set(i, (m) => {
        clearTimeout(timer);
        pending.delete(i);
        if (m.error) reject(new Error(`${method}: ${m.error.message}`));
        else resolve(m.result);
      });
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve());
    ws.addEventListener('error', () => reject(new Error(`cannot reach the inspector at ${url}`)));
  });
  await send('Runtime.enable');
  for (let i = 0; i < 100 && contexts.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  return {
    async heap() {
      const heap = (await send('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number; backingStorageSize?: number };
      const proto = await send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype', contextId: contexts.at(-1) });
      const found = await send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
      const sum = await send('Runtime.callFunctionOn', {
        objectId: found.objects.objectId,
        functionDeclaration: 'function () { return this.reduce((a, m) => a + m.buffer.byteLength, 0); }',
        returnByValue: true,
      });
      await send('Runtime.releaseObjectGroup', { objectGroup: 'console' }).catch(() => undefined);
      return { used: heap.usedSize, total: heap.totalSize, backing: heap.backingStorageSize ?? NaN, wasm: Number(sum.result.value) };
    },
    close: () => ws.close(),
  };
}

/**
 * Waits until something accepts TCP connections on 127.0.0.1:`port`, without sending a request:
 * for tests whose first HTTP request must be the isolate's first (wrangler's proxy listens before
 * the worker is ready and holds requests until it is).
 */
export async function waitForPort(port: number, ms = 90_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const open = await new Promise<boolean>((resolve) => {
      const sock = connect({ host: '127.0.0.1', port }, () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
}
