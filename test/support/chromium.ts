/**
 * Debian's Chromium driven by playwright-core, the way every browser test and benchmark here
 * launches it: headless, no sandbox (root in CI), nothing phoning home, and a fresh profile in
 * a temporary folder per launch (removed on close), so Cache Storage starts empty unless a test
 * reuses the same context on purpose.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

export interface LaunchOptions {
  /** Extra command-line switches, e.g. '--enable-unsafe-webgpu' or '--disable-webgpu'. */
  args?: string[];
  viewport?: { width: number; height: number };
}

/** A persistent context on a fresh user-data-dir; `close()` also removes the folder. */
export async function launchChromium({ args = [], viewport = { width: 1280, height: 900 } }: LaunchOptions = {}): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH`);
  const dir = await mkdtemp(join(tmpdir(), 'dw-chromium-'));
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_FLAGS, ...args], viewport });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
