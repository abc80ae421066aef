// npm links the bins of a project's dependencies into node_modules/.bin, not the project's own:
// this links `driftwatch` (package.json "bin") there too, so `npx driftwatch` runs this checkout's
// CLI at once, with no install prompt. Run by `npm install` (postinstall).
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'node_modules', '.bin');
const target = join(root, 'cli', 'driftwatch.mjs');
mkdirSync(bin, { recursive: true });
const link = join(bin, 'driftwatch');
rmSync(link, { force: true });
symlinkSync(relative(bin, target), link);
chmodSync(target, 0o755);
