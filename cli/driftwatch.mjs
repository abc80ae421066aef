#!/usr/bin/env node
// The `driftwatch` command (package.json "bin"): runs cli/main.ts through tsx, which the project installs.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
await main();
