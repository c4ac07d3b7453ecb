import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageConfigurationError } from '../../src/storage/contract/errors.js';
import { MIGRATIONS_TABLE, migrate, migrationFiles } from '../../src/storage/postgres/migrate.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { connectionUrl, createDatabase, runMigrateCli } from '../support/plain-postgres.js';
import { PostgresCluster, type PostgresConnectionInfo } from '../support/postgres.js';
import { freshSupabaseDatabase } from '../support/supabase-env.js';

const FILES = migrationFiles().map((f) => f.file);

/** A cluster of its own: the run's shared one has Supabase's roles, which are cluster-wide. */
let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await PostgresCluster.create();
});
afterAll(async () => {
  await cluster?.destroy();
});

async function query<T extends pg.QueryResultRow>(info: PostgresConnectionInfo, text: string): Promise<T[]> {
  const client = new pg.Client(info);
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

const supabaseRoles = (info: PostgresConnectionInfo) =>
  query<{ rolname: string; rolcanlogin: boolean }>(
    info,
    "select rolname, rolcanlogin from pg_roles where rolname in ('anon', 'authenticated', 'service_role') order by rolname",
  );

const recorded = (info: PostgresConnectionInfo) =>
  query<{ name: string; applied_at: Date }>(
    info,
    `select name, applied_at from ${MIGRATIONS_TABLE} order by version`,
  );

const tableExists = async (info: PostgresConnectionInfo, table: string) =>
  (await query<{ present: boolean }>(info, `select to_regclass('${table}') is not null as present`))[0]
    ?.present;

describe('migrations on a plain PostgreSQL (no Supabase roles)', () => {
  let db: PostgresConnectionInfo;
  beforeAll(async () => {
    db = await createDatabase(cluster.info);
  });

  it('--dry-run (the CLI, a child process) prints the SQL it would run and changes nothing', async () => {
    expect(await supabaseRoles(db)).toEqual([]);
    const run = await runMigrateCli(['--dry-run'], { DATABASE_URL: connectionUrl(db) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('create role %I nologin');
    for (const file of FILES) expect(run.stdout).toContain(`-- ==== hybrid-cache-migrate: ${file}`);
    expect(run.stdout).toContain('create table if not exists public.conversation_threads');
    expect(run.stdout).toMatch(/insert into hybrid_cache_private\.schema_migrations/);
    expect(run.stderr).toMatch(new RegExp(`would apply ${FILES.length} migration`));
    expect(await supabaseRoles(db)).toEqual([]);
    expect(await tableExists(db, 'public.conversation_threads')).toBe(false);
    expect(await tableExists(db, MIGRATIONS_TABLE)).toBe(false);
  });

  it('creates the roles (NOLOGIN), applies every file in order, each recorded once', async () => {
    const result = await migrate({ connectionString: connectionUrl(db) });
    expect(result).toEqual({ applied: FILES, skipped: [], bootstrapped: true });
    expect(await supabaseRoles(db)).toEqual([
      { rolname: 'anon', rolcanlogin: false },
      { rolname: 'authenticated', rolcanlogin: false },
      { rolname: 'service_role', rolcanlogin: false },
    ]);
    expect((await recorded(db)).map((r) => r.name)).toEqual(FILES);
    // The grants and revokes did what they say on this database too.
    const grants = await query<{ grantee: string }>(
      db,
      "select distinct grantee from information_schema.role_routine_grants where routine_name = 'hybrid_cache_write' and grantee in ('anon', 'authenticated', 'service_role', 'PUBLIC')",
    );
    expect(grants.map((g) => g.grantee)).toEqual(['service_role']);
  });

  it('a second run (the CLI) applies nothing and records nothing again', async () => {
    const before = await recorded(db);
    const run = await runMigrateCli([], { DATABASE_URL: connectionUrl(db) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`nothing to apply (${FILES.length} migration(s) already applied)`);
    expect(await recorded(db)).toEqual(before);
    const dry = await runMigrateCli(['--dry-run', '--database-url', connectionUrl(db)]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toBe('');
    expect(dry.stderr).toContain('nothing to apply');
  });

  it('leaves a database PostgresStorage can use', async () => {
    const storage = new PostgresStorage({
      connectionString: connectionUrl(db),
      table: 'conversation_threads',
    });
    try {
      expect(await storage.apply([{ key: 'k', version: 7, json: '{"a":1}', expiresAt: null }])).toEqual([
        { status: 'applied' },
      ]);
      expect((await storage.getMany(['k'])).get('k')).toEqual({
        version: 7,
        json: '{"a": 1}',
        expiresAt: null,
      });
      expect(await storage.highWaterMark()).toBe(7);
      // Origins too: the functions of *_feed_origin.sql are there without Supabase's roles.
      const head = await storage.changes(null);
      await storage.apply([{ key: 'mine', version: 8, json: '1', expiresAt: null }], { origin: 'me' });
      await storage.apply([{ key: 'theirs', version: 9, json: '2', expiresAt: null }], { origin: 'you' });
      const page = await storage.changes(head.cursor, { skipOrigin: 'me' });
      expect(page.changes).toEqual([{ key: 'theirs', version: 9 }]);
    } finally {
      await storage.close();
    }
  });
});

describe('the migrator with others around', () => {
  it('two migrators at once apply each file exactly once', async () => {
    const db = await createDatabase(cluster.info);
    const [a, b] = await Promise.all([
      migrate({ connectionString: connectionUrl(db) }),
      migrate({ connectionString: connectionUrl(db) }),
    ]);
    expect([...a.applied, ...b.applied].sort()).toEqual(FILES);
    expect((await recorded(db)).map((r) => r.name)).toEqual(FILES);
  });

  it('skips the files the Supabase CLI recorded in supabase_migrations.schema_migrations, and applies the rest', async () => {
    const db = await createDatabase(cluster.info);
    const files = migrationFiles();
    const byCli = files.slice(0, 2);
    const client = new pg.Client(db);
    await client.connect();
    try {
      // What `supabase db push` leaves: the files applied, and their versions in its own table.
      for (const file of byCli) await client.query(file.sql);
      await client.query(
        'create schema supabase_migrations; create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text)',
      );
      for (const file of byCli) {
        await client.query(
          'insert into supabase_migrations.schema_migrations (version, name) values ($1, $2)',
          [file.version, file.file.slice(15, -4)],
        );
      }
    } finally {
      await client.end();
    }
    const pool = new pg.Pool({ ...db, max: 1 });
    try {
      const result = await migrate({ pool });
      expect(result.skipped).toEqual(byCli.map((f) => f.file));
      expect(result.applied).toEqual(files.slice(2).map((f) => f.file));
      // Its own record only: the Supabase CLI's table stays as the CLI left it.
      expect(
        (await pool.query('select count(*)::int as n from supabase_migrations.schema_migrations')).rows[0].n,
      ).toBe(byCli.length);
      // A pool passed in stays open.
      expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('refuses a wrong password as a configuration error that does not hold the password (API and CLI)', async () => {
    const secret = 'Wr0ng-Passw0rd-Do-Not-Print';
    const url = connectionUrl({ ...cluster.info, password: secret });
    const error = await migrate({ connectionString: url }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect(String((error as Error).message)).toContain('28P01');
    expect(String((error as Error).stack)).not.toContain(secret);
    const run = await runMigrateCli(['--database-url', url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('28P01');
    expect(run.stderr + run.stdout).not.toContain(secret);
  });

  it('the CLI without a database URL says what to set', async () => {
    const run = await runMigrateCli([]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('set DATABASE_URL or pass --database-url');
  });
});

describe('the migrator on a Supabase-like database', () => {
  it('over files applied by hand, with no record, re-applies them harmlessly: rows and behaviour stay', async () => {
    // A database of the run's cluster prepared like a Supabase project, its migrations run by hand (SQL editor).
    const { admin } = await freshSupabaseDatabase();
    const storage = new PostgresStorage({
      connectionString: connectionUrl(admin),
      table: 'conversation_threads',
    });
    try {
      await storage.apply([{ key: 'kept', version: 9, json: '{"kept":true}', expiresAt: null }]);
      const result = await migrate({ connectionString: connectionUrl(admin) });
      expect(result).toEqual({ applied: FILES, skipped: [], bootstrapped: false });
      expect((await storage.getMany(['kept'])).get('kept')).toEqual({
        version: 9,
        json: '{"kept": true}',
        expiresAt: null,
      });
      expect(await storage.apply([{ key: 'kept', version: 8, json: '1', expiresAt: null }])).toEqual([
        { status: 'stale', storedVersion: 9 },
      ]);
      expect((await migrate({ connectionString: connectionUrl(admin) })).applied).toEqual([]);
    } finally {
      await storage.close();
    }
  });
});
