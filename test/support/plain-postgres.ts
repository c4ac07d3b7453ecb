import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { inject } from 'vitest';
import { migrate } from '../../src/storage/postgres/migrate.js';
import type { PostgresConnectionInfo } from './postgres.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A libpq connection URL for `info` (user and password URL-encoded). */
export function connectionUrl(info: PostgresConnectionInfo): string {
  const user = encodeURIComponent(info.user);
  const password = encodeURIComponent(info.password);
  return `postgres://${user}:${password}@${info.host}:${info.port}/${encodeURIComponent(info.database)}`;
}

/** Creates an empty database in the cluster `info` reaches (as its superuser); returns its connection info. */
export async function createDatabase(
  info: PostgresConnectionInfo,
  prefix = 'hc_pg',
): Promise<PostgresConnectionInfo> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ ...info, database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`create database ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  return { ...info, database: name };
}

/**
 * A new database in the run's shared cluster with the migrations applied by `migrate()`, as a
 * PostgresStorage user gets it; its superuser owns the tables.
 */
export async function migratedDatabase(): Promise<PostgresConnectionInfo> {
  const info = await createDatabase(inject('supabaseDb').admin);
  await migrate({ connectionString: connectionUrl(info), max: 1 });
  return info;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `hybrid-cache-migrate` (src/postgres/migrate-cli.ts through tsx) as a child process. */
export function runMigrateCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const cli = join(repoRoot, 'src', 'postgres', 'migrate-cli.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', cli, ...args],
      { cwd: repoRoot, env: { ...process.env, DATABASE_URL: undefined, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
