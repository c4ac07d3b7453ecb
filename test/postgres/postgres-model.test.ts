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

describe('model-based consistency: PostgresStorage over node-postgres', () => {
  it('keeps read-your-writes, honest errors and store = model under faults and crashes', async () => {
    // PostgreSQL reads its own clock, so runs here keep entries from expiring (no TTL, small clock moves).
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
      { expiry: false, numRuns: 8 },
    );
    if (run === 0) throw new Error('no run executed');
  }, 300_000);
});
