import { defineConfig } from 'vitest/config';

/**
 * Two lanes. `fast`: test/unit (it mirrors src/) and the memory and SQLite contract suites, in
 * one process tree with no server, child-process fleet or root. `slow`: what starts processes
 * (test/processes), PostgreSQL (test/postgres, through the shared embedded server that
 * global-setup starts), needs root (test/root), or explores many runs (test/property).
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'fast', include: ['test/unit/**/*.test.ts', 'test/contract/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'slow',
          include: [
            'test/property/**/*.test.ts',
            'test/processes/**/*.test.ts',
            'test/postgres/**/*.test.ts',
            'test/root/**/*.test.ts',
          ],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});
