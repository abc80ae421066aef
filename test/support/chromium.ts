/**
 * Chromium driven by playwright-core, the way every browser test and benchmark here launches it:
 * headless, no sandbox (root in CI), nothing phoning home, and a fresh profile in a temporary
 * folder per launch (removed on close), so Cache Storage starts empty unless a test reuses the
 * same context on purpose.
 *
 * Which Chromium: CHROMIUM_PATH when set; else Debian's (/usr/bin/chromium, which .ci/run
 * installs: it gives a SwiftShader WebGPU adapter with --enable-unsafe-webgpu); else the one the
 * `@sparticuz/chromium` devDependency unpacks into the temporary folder, so that `npm install`
 * alone is enough to run the browser tests; it has no WebGPU, and the WebGPU cases say so and skip.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export interface ChromiumInfo {
  path: string;
  /** Where it came from: the CHROMIUM_PATH variable, Debian's package, or the npm package. */
  source: 'env' | 'debian' | 'npm';
  /** Whether it can give a WebGPU adapter (--enable-unsafe-webgpu); when not, why. */
  webgpu: true | { reason: string };
}

const DEBIAN = '/usr/bin/chromium';
let resolved: Promise<ChromiumInfo> | undefined;

/** The Chromium the tests use (see the header); memoised. */
export function resolveChromium(): Promise<ChromiumInfo> {
  return (resolved ??= (async (): Promise<ChromiumInfo> => {
    const env = process.env.CHROMIUM_PATH;
    if (env) {
      if (!existsSync(env)) throw new Error(`CHROMIUM_PATH=${env}: no such file`);
      return { path: env, source: 'env', webgpu: true };
    }
    if (existsSync(DEBIAN)) return { path: DEBIAN, source: 'debian', webgpu: true };
    const { default: npmChromium } = await import('@sparticuz/chromium');
    return {
      path: await npmChromium.executablePath(),
      source: 'npm',
      webgpu: { reason: `Debian's chromium is not installed (apt-get install -y chromium; .ci/run does), and the npm package's Chromium has no WebGPU` },
    };
  })());
}

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
export async function launchChromium({
  args = [],
  viewport = { width: 1280, height: 900 },
}: LaunchOptions = {}): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const { path } = await resolveChromium();
  const dir = await mkdtemp(join(tmpdir(), 'dw-chromium-'));
  const context = await chromium.launchPersistentContext(dir, { executablePath: path, headless: true, args: [...CHROMIUM_FLAGS, ...args], viewport });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
