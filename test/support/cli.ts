/** The driftwatch CLI as a person runs it (node cli/driftwatch.mjs, the package's bin): stdout, stderr and the exit status. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './servers.ts';

export function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'cli/driftwatch.mjs'), ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}
