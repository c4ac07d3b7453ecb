import { defineConfig } from 'vitest/config';

/**
 * The tests StrykerJS runs against each mutant of src/cache, src/sync and src/storage: the engine,
 * outbox, adapter-contract and property tests that need no PostgreSQL and no child processes.
 */
export default defineConfig({
  test: {
    include: [
      'test/unit/write-behind.test.ts',
      'test/unit/edge-cases.test.ts',
      'test/unit/failure-kind.test.ts',
      'test/unit/sqlite-outbox.test.ts',
      'test/unit/sqlite-storage.test.ts',
      'test/unit/smoke.test.ts',
      'test/unit/validation-and-options.test.ts',
      'test/unit/memory-tier.test.ts',
      'test/unit/cache-paths.test.ts',
      'test/unit/flusher.test.ts',
      'test/unit/retry-policy.test.ts',
      'test/unit/store-guard.test.ts',
      'test/unit/sqlite-outbox-paths.test.ts',
      'test/unit/storage-paths.test.ts',
      'test/unit/append.test.ts',
      'test/unit/remint-plan.test.ts',
      'test/unit/clock-anchor.test.ts',
      'test/unit/version-anchor.test.ts',
      'test/unit/high-water-mark.test.ts',
      'test/unit/closest-name.test.ts',
      'test/unit/tier-pending-writes.test.ts',
      'test/unit/cache-events.test.ts',
      'test/unit/entry-items.test.ts',
      'test/unit/memory-tier-accounting.test.ts',
      'test/unit/memory-tier-logs.test.ts',
      'test/unit/sqlite-outbox-commit.test.ts',
      'test/unit/sqlite-outbox-acknowledge.test.ts',
      'test/unit/cache-closed.test.ts',
      'test/unit/cache-stats.test.ts',
      'test/unit/cache-read-pending-items.test.ts',
      'test/unit/cache-read-large-values.test.ts',
      'test/unit/cache-append-outbox.test.ts',
      'test/unit/cache-retry-dead-items.test.ts',
      'test/unit/outbox-wrong-files.test.ts',
      'test/unit/replay-item-versions.test.ts',
      'test/contract/memory.contract.test.ts',
      'test/contract/sqlite.contract.test.ts',
      'test/property/model-memory.test.ts',
      'test/property/model-sqlite.test.ts',
      'test/property/interleavings.test.ts',
    ],
    testTimeout: 60_000,
    pool: 'forks',
    // Each mutant reruns the property tests that cover it; fewer runs per property keep a full
    // mutation run near half an hour. A mutant the properties catch usually fails in the first runs.
    env: { PROPERTY_RUNS: process.env.PROPERTY_RUNS ?? '20' },
  },
});
