/**
 * Child process of the bench: starts an embedded PostgreSQL prepared like a Supabase project (the
 * project's migration, Supabase's roles and grants, plus the original plan's table for the
 * baselines) and the PostgREST-compatible test gateway in front of it, then reports how to reach
 * them over IPC. Running it out of the bench process keeps the gateway's CPU work off the event
 * loop being measured, as a remote Supabase would be. It tears everything down when the parent
 * disconnects (including when the parent dies).
 */
import { randomBytes } from 'node:crypto';
import { PostgrestGateway } from '../../test/support/gateway.js';
import { PostgresCluster } from '../../test/support/postgres.js';
import { prepareSupabaseDatabase } from '../../test/support/supabase-db.js';
import { mintSupabaseKey } from '../../test/support/supabase-keys.js';
import { PLAN_SCHEMA_SQL } from './plan-schema.js';

export interface PgServerInfo {
  /** Supabase project URL (the gateway). */
  url: string;
  serviceRoleKey: string;
  /** Superuser connection to the bench database (the migration owner). */
  admin: { host: string; port: number; user: string; password: string; database: string };
  serverVersion: string;
  settings: Record<string, string>;
}

export type PgServerMessage = { ready: PgServerInfo } | { error: string };

async function main(): Promise<void> {
  const cluster = await PostgresCluster.create();
  let gateway: PostgrestGateway | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await gateway?.close().catch(() => {});
    await cluster.destroy().catch(() => {});
    process.exit(0);
  };
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  try {
    const db = await prepareSupabaseDatabase(
      cluster.info,
      'hybrid_cache_bench',
      randomBytes(12).toString('hex'),
    );
    const admin = await cluster.connect(db.admin.database);
    let serverVersion = '';
    const settings: Record<string, string> = {};
    try {
      await admin.query(PLAN_SCHEMA_SQL);
      serverVersion = (await admin.query<{ v: string }>('select version() as v')).rows[0]?.v ?? '';
      const rows = await admin.query<{ name: string; setting: string }>(
        `select name, setting from pg_settings
         where name in ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections')`,
      );
      for (const row of rows.rows) settings[row.name] = row.setting;
    } finally {
      await admin.end();
    }
    gateway = await PostgrestGateway.start({ connection: db.authenticator });
    const serviceRoleKey = await mintSupabaseKey('service_role');
    const message: PgServerMessage = {
      ready: { url: gateway.url, serviceRoleKey, admin: db.admin, serverVersion, settings },
    };
    process.send?.(message);
  } catch (error) {
    const message: PgServerMessage = {
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    };
    process.send?.(message);
    await stop();
  }
}

void main();
