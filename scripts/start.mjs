#!/usr/bin/env node
// `npm start`: serve the worker locally with wrangler dev on 127.0.0.1, with no login and no metrics.
import { spawn } from 'node:child_process';

const port = process.env.PORT ?? '8787';
const child = spawn('wrangler', ['dev', '--ip', '127.0.0.1', '--port', port, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
