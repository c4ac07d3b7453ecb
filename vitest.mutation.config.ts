import { defineConfig } from 'vitest/config';

/**
 * The tests StrykerJS runs against each mutant of src/cache, src/sync and src/storage: the fast
 * lane (test/unit, less the package checks that build and spawn), the memory and SQLite contract
 * suites and the property tests that need no PostgreSQL and no child processes.
 */
export default defineConfig({
  test: {
    include: [
      'test/unit/**/*.test.ts',
      'test/contract/*.test.ts',
      'test/property/*.test.ts',
      'test/root/outbox-low-disk.test.ts',
    ],
    exclude: ['test/unit/package/**'],
    testTimeout: 60_000,
    pool: 'forks',
    // Each mutant reruns the property tests that cover it; fewer runs per property keep a full
    // mutation run near half an hour. A mutant the properties catch usually fails in the first runs.
    env: { PROPERTY_RUNS: process.env.PROPERTY_RUNS ?? '20' },
  },
});
