import { defineConfig } from 'vitest/config';
import { QuickestFirstSequencer } from './test/support/mutation-sequencer.js';

/**
 * The tests StrykerJS runs against each mutant of src/cache, src/sync and src/storage: the fast
 * lane (test/unit, less the package checks that build and spawn), the memory and SQLite contract
 * suites and the property tests that need no PostgreSQL and no child processes.
 *
 * A mutant's covering files run quickest first (see the sequencer). Each file still imports the
 * engine afresh (`isolate`, Vitest's default): a mutant in code that runs when a module loads only
 * takes effect in a fresh import.
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
    sequence: { sequencer: QuickestFirstSequencer },
    // A unit test takes well under a second; a mutant that stops a flush from draining makes its
    // tests wait for nothing. Failing them after 10 s (the property tests set their own limits)
    // frees the worker sooner than StrykerJS's timeout, which also restarts it.
    testTimeout: 10_000,
    pool: 'forks',
    // Each mutant reruns the property tests that cover it; fewer runs per property keep a mutation
    // run short. A mutant the properties catch usually fails in the first runs.
    env: { PROPERTY_RUNS: process.env.PROPERTY_RUNS ?? '20' },
  },
});
