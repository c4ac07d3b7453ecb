import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PostgresCluster, type PostgresConnectionInfo } from './postgres.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The project's migration file (the one under supabase/migrations that creates conversation_threads). */
export function migrationPath(): string {
  const dir = join(repoRoot, 'supabase', 'migrations');
  const file = readdirSync(dir).find((name) => name.endsWith('_conversation_threads.sql'));
  if (!file) throw new Error(`no *_conversation_threads.sql migration in ${dir}`);
  return join(dir, file);
}

/** Every migration file, in the order `supabase db push` applies them (by timestamp prefix). */
export function migrationPaths(): string[] {
  const dir = join(repoRoot, 'supabase', 'migrations');
  return readdirSync(dir)
    .filter((name) => /^\d{14}_.+\.sql$/.test(name))
    .sort()
    .map((name) => join(dir, name));
}

export function migrationSql(path = migrationPath()): string {
  return readFileSync(path, 'utf8');
}

/** The role PostgREST logs in as; it switches to the JWT's role per request. */
export const AUTHENTICATOR_ROLE = 'authenticator';

/**
 * Creates Supabase's API roles in the cluster (roles are cluster-wide; idempotent), the way a
 * Supabase project has them: `anon` and `authenticated` are plain, `service_role` bypasses RLS,
 * and `authenticator` (login, no inherit) may switch to each of them.
 */
export async function createSupabaseRoles(client: pg.Client, authenticatorPassword: string): Promise<void> {
  await client.query(`
    do $$
    begin
      if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
      end if;
      if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
      end if;
      if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
      end if;
      if not exists (select 1 from pg_roles where rolname = '${AUTHENTICATOR_ROLE}') then
        create role ${AUTHENTICATOR_ROLE} login noinherit;
      end if;
    end
    $$;
    grant anon, authenticated, service_role to ${AUTHENTICATOR_ROLE};
  `);
  await client.query(
    `alter role ${AUTHENTICATOR_ROLE} password '${authenticatorPassword.replaceAll("'", "''")}'`,
  );
}

/**
 * Gives a database Supabase's default grants: the API roles can use schema `public`, and every
 * table and function the migration owner creates there is granted to all of them by default.
 * That is what makes the migration's own REVOKEs matter, as on a real project.
 */
export async function grantSupabaseDefaults(client: pg.Client): Promise<void> {
  await client.query(`
    grant usage on schema public to anon, authenticated, service_role;
    alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
    alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
    alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
  `);
}

/** Runs every migration file in order, each as one multi-statement query (each is re-runnable). */
export async function applyMigration(client: pg.Client): Promise<void> {
  for (const path of migrationPaths()) await client.query(migrationSql(path));
}

/** A database prepared like a Supabase project, and how to log in to it. */
export interface SupabaseDatabase {
  /** Superuser access (the migration owner), for setup and for inspecting rows in tests. */
  admin: PostgresConnectionInfo;
  /** What PostgREST (the test gateway) logs in as. */
  authenticator: PostgresConnectionInfo;
}

/**
 * Creates `database` in the cluster with Supabase's roles and default grants, then applies the
 * migration. Roles are cluster-wide, so they are created only when missing.
 */
export async function prepareSupabaseDatabase(
  cluster: PostgresConnectionInfo,
  database: string,
  authenticatorPassword: string,
): Promise<SupabaseDatabase> {
  const admin = new pg.Client({ ...cluster });
  await admin.connect();
  try {
    await createSupabaseRoles(admin, authenticatorPassword);
    await admin.query(`create database ${admin.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
  const info = { ...cluster, database };
  const client = new pg.Client(info);
  await client.connect();
  try {
    await grantSupabaseDefaults(client);
    await applyMigration(client);
  } finally {
    await client.end();
  }
  return {
    admin: info,
    authenticator: { ...info, user: AUTHENTICATOR_ROLE, password: authenticatorPassword },
  };
}

/**
 * Starts an embedded PostgreSQL cluster and prepares `database` in it like a Supabase project (the
 * test run's global setup and the bench both start theirs this way). The caller destroys the cluster.
 */
export async function startSupabaseDatabase(
  database: string,
): Promise<{ cluster: PostgresCluster; db: SupabaseDatabase }> {
  const cluster = await PostgresCluster.create();
  try {
    return {
      cluster,
      db: await prepareSupabaseDatabase(cluster.info, database, randomBytes(12).toString('hex')),
    };
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
}
