import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { runModel } from '../property/model.js';
import { emptyTablesWhenQuiet } from '../support/empty-tables.js';
import { migratedDatabase } from '../support/plain-postgres.js';

let pool: pg.Pool;
beforeAll(async () => {
  pool = new pg.Pool({ ...(await migratedDatabase()), max: 4 });
  pool.on('error', () => {});
});
afterAll(async () => {
  await pool?.end();
});

/** Runs the model over this database's tables, emptied (once quiet) before each run. */
async function runOverPool(): Promise<void> {
  let run = 0;
  await runModel(
    {
      create: async () => {
        await emptyTablesWhenQuiet(
          async (text) => (await pool.query(text)).rows,
          ['conversation_threads', 'conversation_turns', 'conversation_threads_feed'],
        );
        run++;
        // Over a pool it does not own: each run's close() leaves the pool to the next run.
        return new PostgresStorage({ pool, table: 'conversation_threads' });
      },
    },
    // PostgreSQL reads its own clock: the cache's runs ahead of it (see storeReadsOwnClock).
    { expiry: true, storeReadsOwnClock: true, numRuns: 8 },
  );
  if (run === 0) throw new Error('no run executed');
}

describe('model-based consistency: PostgresStorage over node-postgres', () => {
  it('keeps read-your-writes, honest errors and store = model under faults and crashes', async () => {
    await runOverPool();
  }, 300_000);

  it('does so too while a transaction held open elsewhere in the cluster keeps the feed behind', async () => {
    // Its xid holds back every snapshot's xmin, cluster-wide: each feed read re-delivers every
    // change since it opened, and a follower starting up begins from there.
    const elsewhere = new pg.Client(await migratedDatabase());
    await elsewhere.connect();
    try {
      await elsewhere.query('begin');
      await elsewhere.query('select pg_current_xact_id()');
      await runOverPool();
    } finally {
      await elsewhere.end();
    }
  }, 300_000);
});
