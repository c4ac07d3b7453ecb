import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import pg from 'pg';
import {
  SupabaseStorage,
  type SupabaseStorageCommonOptions,
} from '../../src/storage/supabase/supabase-storage.js';
import type { PostgresConnectionInfo } from './postgres.js';

/**
 * What the tests and the bench use to talk to a Supabase-like project: the test gateway at a URL
 * and a superuser connection to its database. Free of vitest, so the bench can import it.
 */
export interface SupabaseClients {
  /**
   * A SupabaseStorage through the gateway (service role key unless `key` is given), on the
   * daemon's `conversation_threads` table unless `table` is given.
   */
  storage(options?: SupabaseStorageCommonOptions & { key?: string }): SupabaseStorage;
  /** A plain supabase-js client through the gateway, set up for server-side use. */
  client(key?: string): SupabaseClient;
  /** Runs SQL as the superuser (to set up, inspect or age rows). */
  sql<T extends pg.QueryResultRow = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** A direct superuser connection pool. */
  pool(max?: number): pg.Pool;
  /** Closes every storage and pool made here. */
  close(): Promise<void>;
}

export function supabaseClients(
  url: string,
  serviceRoleKey: string,
  admin: PostgresConnectionInfo,
): SupabaseClients {
  const storages: SupabaseStorage[] = [];
  const pools: pg.Pool[] = [];
  const pool = (max = 4) => {
    const created = new pg.Pool({ ...admin, max });
    created.on('error', () => {});
    pools.push(created);
    return created;
  };
  const sqlPool = pool(2);
  return {
    storage: ({ key, ...rest } = {}) => {
      const storage = new SupabaseStorage({
        url,
        key: key ?? serviceRoleKey,
        table: 'conversation_threads',
        ...rest,
      });
      storages.push(storage);
      return storage;
    },
    client: (key = serviceRoleKey) =>
      createClient(url, key, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      }),
    sql: async <T extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
      (await sqlPool.query<T>(text, params)).rows,
    pool,
    close: async () => {
      await Promise.all(storages.map((s) => s.close()));
      await Promise.all(pools.map((p) => p.end().catch(() => {})));
    },
  };
}
