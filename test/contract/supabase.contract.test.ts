import { startSupabaseEnv } from '../support/supabase-env.js';
import { describeStorageContract } from './storage-contract.js';

describeStorageContract('SupabaseStorage (supabase-js -> PostgREST gateway -> PostgreSQL)', async () => {
  const env = await startSupabaseEnv();
  return { storage: env.storage(), cleanup: () => env.close() };
});
