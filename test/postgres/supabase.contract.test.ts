import { afterAll, beforeAll, describe, it } from 'vitest';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { describeAppendContract, describeStorageContract } from '../../src/testing/index.js';
import { startSupabaseEnv } from '../support/supabase-env.js';

const runner = { describe, it, beforeAll, afterAll };

for (const table of Object.keys(SUPABASE_TABLES) as SupabaseTable[]) {
  describeStorageContract(
    `SupabaseStorage on ${table} (supabase-js -> PostgREST gateway -> PostgreSQL)`,
    async () => {
      const env = await startSupabaseEnv();
      return { storage: env.storage({ table }), cleanup: () => env.close() };
    },
    runner,
  );
  describeAppendContract(
    `SupabaseStorage on ${table} (supabase-js -> PostgREST gateway -> PostgreSQL)`,
    async () => {
      const env = await startSupabaseEnv();
      return { storage: env.storage({ table }), cleanup: () => env.close() };
    },
    runner,
  );
}
