import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { PostgrestGateway } from './gateway.js';
import { type SupabaseClients, supabaseClients } from './supabase-clients.js';
import { prepareSupabaseDatabase, type SupabaseDatabase } from './supabase-db.js';
import { mintSupabaseKey } from './supabase-keys.js';

/** A gateway over a Supabase-like database, with keys and helpers; one per test file. */
export interface SupabaseEnv extends SupabaseClients {
  gateway: PostgrestGateway;
  db: SupabaseDatabase;
  serviceRoleKey: string;
  anonKey: string;
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
  const clients = supabaseClients(gateway.url, serviceRoleKey, db.admin);
  return {
    ...clients,
    gateway,
    db,
    serviceRoleKey,
    anonKey,
    close: async () => {
      await clients.close();
      await gateway.close();
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
