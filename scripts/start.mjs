#!/usr/bin/env node
// `npm start`: everything a user needs locally, on 127.0.0.1 only, with no login and no metrics:
//   - the reference hosted fallback (origin/, onnxruntime-node, float32) on ORIGIN_PORT (8791),
//   - the worker under `wrangler dev` on PORT (8787), pointed at it by FALLBACK_URL, with the
//     browser runtime, /demo and /dashboard (browser/build.ts builds them into browser/assets/ first).
// Creates .dev.vars from .dev.vars.example when missing (local secrets such as OPERATOR_TOKEN).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';

const port = process.env.PORT ?? '8787';
const originPort = process.env.ORIGIN_PORT ?? '8791';
if (!existsSync('.dev.vars') && existsSync('.dev.vars.example')) {
  copyFileSync('.dev.vars.example', '.dev.vars');
  console.log('created .dev.vars from .dev.vars.example (local development secrets)');
}

const built = spawnSync('tsx', ['browser/build.ts'], { stdio: 'inherit' });
if (built.status !== 0) {
  console.error('could not build the browser runtime (browser/build.ts)');
  process.exit(built.status ?? 1);
}

const children = [];
function run(cmd, args, env = {}) {
  const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  children.push(child);
  child.on('exit', (code, signal) => {
    for (const c of children) if (c !== child && c.exitCode === null) c.kill('SIGTERM');
    process.exitCode = code ?? (signal ? 1 : 0);
  });
  return child;
}

console.log(
  [
    '',
    `driftwatch-edge: the edge API on http://127.0.0.1:${port} (hosted fallback on :${originPort})`,
    `  try   curl -s http://127.0.0.1:${port}/v1/models`,
    `  demo  http://127.0.0.1:${port}/demo        (movie picks, recommended on the device)`,
    `  ops   http://127.0.0.1:${port}/dashboard   (token: OPERATOR_TOKEN in .dev.vars)`,
    '',
  ].join('\n'),
);
// The origin pulls the versions pushed to the edge (driftwatch push), so it can stand in for them too.
run('tsx', ['origin/server.ts', '--port', originPort, '--registry', `http://127.0.0.1:${port}`]);
run('wrangler', ['dev', '--ip', '127.0.0.1', '--port', port, '--var', `FALLBACK_URL:http://127.0.0.1:${originPort}`, ...process.argv.slice(2)], {
  WRANGLER_SEND_METRICS: 'false',
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => children.forEach((c) => c.kill(signal)));
