import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

// Two projects: `node` runs everything that needs Node (and core/), `workers` runs core/ again
// and the worker's tests inside workerd, which is what proves core/ is platform-free.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          include: ['core/**/*.test.ts', 'test/node/**/*.test.ts', 'models/**/*.test.ts', 'bench/**/*.test.ts', 'cli/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        plugins: [cloudflareTest({ wrangler: { configPath: './wrangler.toml' } })],
        test: {
          name: 'workers',
          include: ['core/**/*.test.ts', 'worker/**/*.test.ts', 'test/workers/**/*.test.ts'],
          testTimeout: 120_000,
        },
      },
    ],
  },
});
