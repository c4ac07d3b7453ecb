import type { TestProject } from 'vitest/node';
import { type SupabaseDatabase, startSupabaseDatabase } from './supabase-db.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /**
     * The run's shared PostgreSQL, prepared like a Supabase project (roles, grants, migration).
     * Use it through `startSupabaseEnv()` from test/support/supabase-env.ts.
     */
    supabaseDb: SupabaseDatabase;
  }
}

/** Starts one embedded PostgreSQL for the whole run (about a second) and stops it afterwards. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { cluster, db } = await startSupabaseDatabase('hybrid_cache');
  project.provide('supabaseDb', db);
  return () => cluster.destroy();
}
