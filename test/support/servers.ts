/**
 * Real server processes for fault tests and benchmarks, on 127.0.0.1 only: the worker under
 * `wrangler dev` and the origin (onnxruntime-node). Each runs in its own process group so that
 * stopping it stops its children (wrangler's workerd, npx's node).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '../..');

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

function start(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr!.on('data', () => undefined);
  return child;
}

/** The origin: float32 models on onnxruntime-node, optionally slowed by `delayMs` per inference. */
export function startOrigin(port: number, delayMs = 0): ChildProcess {
  return start('npx', ['tsx', 'origin/server.ts', '--port', String(port), '--delay-ms', String(delayMs)]);
}

/** State folders of the workers started by this process, removed when it exits (a restart on the same port within a test keeps its state). */
const stateDirs = new Set<string>();
process.once('exit', () => {
  for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
});

/** The worker under wrangler dev, with its own inspector port and state folder (so several can run). */
export async function startWorker(port: number, vars: Record<string, string>): Promise<ChildProcess> {
  const state = join(tmpdir(), `dw-wrangler-${port}`);
  stateDirs.add(state);
  return start('npx', [
    'wrangler', 'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort()),
    '--persist-to', state, '--log-level', 'error', '--show-interactive-dev-session=false',
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ]);
}

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

export async function waitFor(url: string, ms = 90_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
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
