import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { StorageConfigurationError } from '../contract/errors.js';
import { type PoolSource, poolFrom } from './pool.js';
import { classifyPgError } from './postgres-errors.js';

/** The package's supabase/ folder: three levels up from src/storage/postgres and dist/storage/postgres alike. */
const SUPABASE_DIR = new URL('../../../supabase/', import.meta.url);

/** The roles the migrations grant to or revoke from; a Supabase project has them, plain PostgreSQL does not. */
export const SUPABASE_ROLES = ['anon', 'authenticated', 'service_role'] as const;

/** Where this migrator records what it applied. */
export const MIGRATIONS_TABLE = 'hybrid_cache_private.schema_migrations';

export type MigrateOptions = PoolSource & {
  /** Print nothing, apply nothing: return the SQL that would run (`sql`). */
  dryRun?: boolean;
  /** The migration files. Default: the package's supabase/migrations. */
  migrationsDir?: string;
};

export interface MigrationFile {
  /** The file's timestamp prefix, as the Supabase CLI records it. */
  version: string;
  /** The file name. */
  file: string;
  sql: string;
}

export interface MigrateResult {
  /** Files applied by this call, in order (in a dry run: those that would be). */
  applied: string[];
  /** Files found already applied, by this migrator or by the Supabase CLI. */
  skipped: string[];
  /** Whether the roles bootstrap ran (would run) first. */
  bootstrapped: boolean;
  /** In a dry run, every statement that would run, in order. */
  sql?: string;
}

/** The migration files in the order `supabase db push` applies them (by timestamp prefix). */
export function migrationFiles(
  dir: string = fileURLToPath(new URL('migrations/', SUPABASE_DIR)),
): MigrationFile[] {
  return readdirSync(dir)
    .filter((name) => /^\d{14}_.+\.sql$/.test(name))
    .sort()
    .map((file) => ({ version: file.slice(0, 14), file, sql: readFileSync(`${dir}/${file}`, 'utf8') }));
}

/** The SQL that creates the Supabase roles the migrations name, on a PostgreSQL that lacks them. */
export function bootstrapSql(): string {
  return readFileSync(new URL('plain-postgresql/bootstrap.sql', SUPABASE_DIR), 'utf8');
}

const TRACKING_SQL = `
create schema if not exists hybrid_cache_private;
revoke all on schema hybrid_cache_private from public;
create table if not exists ${MIGRATIONS_TABLE} (
  version text primary key,
  name text not null,
  sha256 text not null,
  applied_at timestamptz not null default now()
);
revoke all on table ${MIGRATIONS_TABLE} from public;
`;

/**
 * Serialises migrators on one database. A transaction-scoped lock, taken again by each transaction,
 * rather than a session lock: it holds through a transaction-mode pooler too.
 */
const LOCK_SQL =
  "select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('hybrid-cache-migrate', 0))";

/**
 * Applies the migration files not yet applied, in order, each in its own transaction that also
 * records it in `hybrid_cache_private.schema_migrations`. A file the Supabase CLI already applied
 * (listed in `supabase_migrations.schema_migrations`) is skipped, not recorded again there: that
 * table stays the CLI's. On a database without Supabase's roles it creates them first (see
 * supabase/plain-postgresql/bootstrap.sql). Concurrent migrators wait for each other (advisory
 * lock) and never apply a file twice.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const source = poolFrom(options, 'migrate');
  const files = migrationFiles(options.migrationsDir);
  let client: pg.PoolClient | undefined;
  try {
    client = await source.pool.connect();
    const db = new Migrator(client, source.redact);
    return options.dryRun ? await db.plan(files) : await db.apply(files);
  } catch (error) {
    if (error instanceof StorageConfigurationError) throw error;
    throw classifyPgError('hybrid-cache-migrate', error, source.redact);
  } finally {
    client?.release();
    if (source.owned) await source.pool.end();
  }
}

class Migrator {
  readonly #client: pg.PoolClient;
  readonly #redact: (text: string) => string;

  constructor(client: pg.PoolClient, redact: (text: string) => string) {
    this.#client = client;
    this.#redact = redact;
  }

  async plan(files: MigrationFile[]): Promise<MigrateResult> {
    const applied = await this.#applied();
    const pending = files.filter((f) => !applied.has(f.version));
    const bootstrapped = pending.length > 0 && (await this.#missingRoles()).length > 0;
    const parts: string[] = [];
    if (bootstrapped)
      parts.push(section('roles bootstrap (supabase/plain-postgresql/bootstrap.sql)', bootstrapSql()));
    if (pending.length > 0)
      parts.push(section(`${MIGRATIONS_TABLE} (what this migrator applied)`, TRACKING_SQL));
    for (const file of pending) {
      parts.push(section(file.file, `begin;\n${file.sql.trimEnd()}\n${recordSql(file)}\ncommit;\n`));
    }
    return {
      applied: pending.map((f) => f.file),
      skipped: files.filter((f) => applied.has(f.version)).map((f) => f.file),
      bootstrapped,
      sql: parts.join('\n'),
    };
  }

  async apply(files: MigrationFile[]): Promise<MigrateResult> {
    const before = await this.#applied();
    const result: MigrateResult = {
      applied: [],
      skipped: files.filter((f) => before.has(f.version)).map((f) => f.file),
      bootstrapped: false,
    };
    if (files.every((f) => before.has(f.version))) return result;
    await this.#transaction('the tracking table', async () => {
      if ((await this.#missingRoles()).length > 0) {
        await this.#run('the roles bootstrap', bootstrapSql(), ROLES_HINT);
        result.bootstrapped = true;
      }
      await this.#client.query(TRACKING_SQL);
    });
    for (const file of files) {
      if (before.has(file.version)) continue;
      await this.#transaction(file.file, async () => {
        // Another migrator may have applied it while this one waited for the lock.
        if ((await this.#applied()).has(file.version)) {
          result.skipped.push(file.file);
          return;
        }
        await this.#run(file.file, file.sql);
        await this.#client.query(
          `insert into ${MIGRATIONS_TABLE} (version, name, sha256) values ($1, $2, $3)`,
          [file.version, file.file, sha256(file.sql)],
        );
        result.applied.push(file.file);
      });
    }
    return result;
  }

  /** Versions applied by this migrator or by the Supabase CLI. */
  async #applied(): Promise<Set<string>> {
    const versions = new Set<string>();
    for (const table of [MIGRATIONS_TABLE, 'supabase_migrations.schema_migrations']) {
      const { rows } = await this.#client.query<{ present: boolean }>(
        'select pg_catalog.to_regclass($1) is not null as present',
        [table],
      );
      if (!rows[0]?.present) continue;
      const listed = await this.#client.query<{ version: string }>(
        `select version::text as version from ${table}`,
      );
      for (const row of listed.rows) versions.add(row.version);
    }
    return versions;
  }

  async #missingRoles(): Promise<string[]> {
    const { rows } = await this.#client.query<{ rolname: string }>(
      'select rolname from pg_catalog.pg_roles where rolname = any($1::text[])',
      [[...SUPABASE_ROLES]],
    );
    const present = new Set(rows.map((r) => r.rolname));
    return SUPABASE_ROLES.filter((role) => !present.has(role));
  }

  /** Runs `body` in a transaction holding the migrators' lock; rolls back on any failure. */
  async #transaction(what: string, body: () => Promise<void>): Promise<void> {
    await this.#client.query('begin');
    try {
      await this.#client.query(LOCK_SQL);
      await body();
      await this.#client.query('commit');
    } catch (error) {
      await this.#client.query('rollback').catch(() => {});
      if (error instanceof MigrationFailure) throw error.classified;
      throw classifyPgError(`hybrid-cache-migrate (${what})`, error, this.#redact);
    }
  }

  /** Runs one file's statements (one multi-statement query), naming the file if it fails. */
  async #run(what: string, sql: string, hint?: string): Promise<void> {
    try {
      await this.#client.query(sql);
    } catch (error) {
      const classified = classifyPgError(`hybrid-cache-migrate: ${what}`, error, this.#redact);
      if (hint) classified.message = `${classified.message} ${hint}`;
      throw new MigrationFailure(classified);
    }
  }
}

const ROLES_HINT =
  'Creating the roles anon, authenticated and service_role needs CREATEROLE: run supabase/plain-postgresql/bootstrap.sql once as a superuser, or migrate as a role that has it.';

/** A failure already classified with the file it came from, passed through the rollback. */
class MigrationFailure extends Error {
  readonly classified: Error;
  constructor(classified: Error) {
    super(classified.message);
    this.classified = classified;
  }
}

function recordSql(file: MigrationFile): string {
  const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
  return `insert into ${MIGRATIONS_TABLE} (version, name, sha256) values (${literal(file.version)}, ${literal(file.file)}, ${literal(sha256(file.sql))});`;
}

function section(title: string, sql: string): string {
  return `-- ==== hybrid-cache-migrate: ${title}\n${sql.trimEnd()}\n`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
