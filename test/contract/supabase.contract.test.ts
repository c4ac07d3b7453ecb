import { afterAll, beforeAll, describe, it } from 'vitest';
import { describeStorageContract } from '../../src/testing/index.js';
import { startSupabaseEnv } from '../support/supabase-env.js';

const runner = { describe, it, beforeAll, afterAll };

describeStorageContract(
  'SupabaseStorage (supabase-js -> PostgREST gateway -> PostgreSQL)',
  async () => {
    const env = await startSupabaseEnv();
    return { storage: env.storage(), cleanup: () => env.close() };
  },
  runner,
);
