import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { PostgresCluster } from './postgres.js';
import { prepareSupabaseDatabase, type SupabaseDatabase } from './supabase-db.js';

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
  const cluster = await PostgresCluster.create();
  try {
    const db = await prepareSupabaseDatabase(cluster.info, 'hybrid_cache', randomBytes(12).toString('hex'));
    project.provide('supabaseDb', db);
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
  return () => cluster.destroy();
}
