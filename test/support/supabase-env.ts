import { randomBytes } from 'node:crypto';
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import pg from 'pg';
import { inject } from 'vitest';
import { SupabaseStorage, type SupabaseStorageCommonOptions } from '../../src/storage/supabase-storage.js';
import { PostgrestGateway } from './gateway.js';
import { prepareSupabaseDatabase, type SupabaseDatabase } from './supabase-db.js';
import { mintSupabaseKey } from './supabase-keys.js';

/** A gateway over a Supabase-like database, with keys and helpers; one per test file. */
export interface SupabaseEnv {
  gateway: PostgrestGateway;
  db: SupabaseDatabase;
  serviceRoleKey: string;
  anonKey: string;
  /** A SupabaseStorage through the gateway (service role key unless `key` is given). */
  storage(options?: SupabaseStorageCommonOptions & { key?: string }): SupabaseStorage;
  /** A plain supabase-js client through the gateway, set up for server-side use. */
  client(key?: string): SupabaseClient;
  /** Runs SQL as the superuser (to inspect or age rows). */
  sql<T extends pg.QueryResultRow = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/**
 * Starts a gateway over the run's shared database (default), or over `database` (e.g. one from
 * `freshSupabaseDatabase()` when a test changes the schema).
 */
export async function startSupabaseEnv(options: { database?: SupabaseDatabase } = {}): Promise<SupabaseEnv> {
  const db = options.database ?? inject('supabaseDb');
  const gateway = await PostgrestGateway.start({ connection: db.authenticator });
  const [serviceRoleKey, anonKey] = await Promise.all([
    mintSupabaseKey('service_role'),
    mintSupabaseKey('anon'),
  ]);
  const admin = new pg.Pool({ ...db.admin, max: 2 });
  admin.on('error', () => {});
  const storages: SupabaseStorage[] = [];
  return {
    gateway,
    db,
    serviceRoleKey,
    anonKey,
    storage: ({ key, ...rest } = {}) => {
      const storage = new SupabaseStorage({ url: gateway.url, key: key ?? serviceRoleKey, ...rest });
      storages.push(storage);
      return storage;
    },
    client: (key = serviceRoleKey) =>
      createClient(gateway.url, key, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      }),
    sql: async <T extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
      (await admin.query<T>(text, params)).rows,
    close: async () => {
      await Promise.all(storages.map((s) => s.close()));
      await gateway.close();
      await admin.end().catch(() => {});
    },
  };
}

/** A new database in the run's cluster, prepared like the shared one (migration applied). */
export async function freshSupabaseDatabase(): Promise<SupabaseDatabase> {
  const shared = inject('supabaseDb');
  const name = `hc_${randomBytes(6).toString('hex')}`;
  const cluster = { ...shared.admin, database: 'postgres' };
  return prepareSupabaseDatabase(cluster, name, shared.authenticator.password);
}
