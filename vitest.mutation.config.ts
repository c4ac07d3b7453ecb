import { defineConfig } from 'vitest/config';
import { QuickestFirstSequencer } from './test/support/mutation-sequencer.js';

/**
 * The tests StrykerJS runs against each mutant of src/cache, src/sync and src/storage: the fast
 * lane (test/unit, less the package checks that build and spawn), the memory and SQLite contract
 * suites and the property tests that need no PostgreSQL and no child processes.
 *
 * Test files share one module graph per worker (`isolate: false`): each mutant reruns a handful of
 * files, and importing the engine afresh for every file was most of a mutant's time. The one file
 * that replaces a module (`vi.mock` of the native SQLite binding) runs isolated, so the mock cannot
 * leak into the others.
 */
const ISOLATED = ['test/unit/storage/sqlite/sqlite-native-module.test.ts'];

const shared = {
  testTimeout: 60_000,
  pool: 'forks' as const,
  // Each mutant reruns the property tests that cover it; fewer runs per property keep a mutation
  // run short. A mutant the properties catch usually fails in the first runs.
  env: { PROPERTY_RUNS: process.env.PROPERTY_RUNS ?? '20' },
};

export default defineConfig({
  test: {
    sequence: { sequencer: QuickestFirstSequencer },
    projects: [
      {
        test: {
          ...shared,
          name: 'mutation',
          include: [
            'test/unit/**/*.test.ts',
            'test/contract/*.test.ts',
            'test/property/*.test.ts',
            'test/root/outbox-low-disk.test.ts',
          ],
          exclude: ['test/unit/package/**', ...ISOLATED],
          isolate: false,
        },
      },
      { test: { ...shared, name: 'mutation-isolated', include: ISOLATED } },
    ],
  },
});
