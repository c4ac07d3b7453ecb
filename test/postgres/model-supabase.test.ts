import { afterAll, beforeAll, describe, it } from 'vitest';
import { runModel } from '../property/model.js';
import { emptyTablesWhenQuiet } from '../support/empty-tables.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

let env: SupabaseEnv;
beforeAll(async () => {
  env = await startSupabaseEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('model-based consistency: SupabaseStorage over the PostgREST gateway', () => {
  it('keeps read-your-writes, honest errors and store = model under faults and crashes', async () => {
    // PostgreSQL reads its own clock: the cache's runs ahead of it (see storeReadsOwnClock).
    let run = 0;
    await runModel(
      {
        create: async () => {
          await emptyTablesWhenQuiet(env.sql, [
            'conversation_threads',
            'conversation_turns',
            'conversation_threads_feed',
          ]);
          run++;
          return env.storage();
        },
      },
      { expiry: true, storeReadsOwnClock: true, numRuns: 8 },
    );
    if (run === 0) throw new Error('no run executed');
  }, 300_000);
});
