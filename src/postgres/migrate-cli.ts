#!/usr/bin/env node
/**
 * `hybrid-cache-migrate`: applies the package's migrations (supabase/migrations) to the PostgreSQL
 * named by `--database-url` or `DATABASE_URL`. `--dry-run` prints the SQL instead of running it.
 * The library is imported only after the Node.js version check, as in the daemon's entry point.
 */
import { parseArgs } from 'node:util';
import { unsupportedNodeMessage } from '../node-support.js';

const USAGE = `Usage: hybrid-cache-migrate [--database-url <url>] [--dry-run]

Applies the hybrid-cache migrations not yet applied to a PostgreSQL database (Supabase's or any
other), in order, each in a transaction, recording them in hybrid_cache_private.schema_migrations.
Migrations the Supabase CLI already applied are skipped. On a database without Supabase's roles
(anon, authenticated, service_role) it creates them first, as NOLOGIN roles.

  --database-url <url>  the connection string (default: the DATABASE_URL environment variable)
  --dry-run             print the SQL that would run; change nothing
  -h, --help            show this help
`;

async function main(): Promise<number> {
  const refusal = unsupportedNodeMessage();
  if (refusal) {
    process.stderr.write(`${refusal}\n`);
    return 1;
  }
  let values: { 'database-url'?: string; 'dry-run'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        'database-url': { type: 'string' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`hybrid-cache-migrate: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const connectionString = values['database-url'] ?? process.env.DATABASE_URL;
  if (!connectionString) {
    process.stderr.write(`hybrid-cache-migrate: set DATABASE_URL or pass --database-url\n\n${USAGE}`);
    return 2;
  }
  const { migrate } = await import('../storage/postgres/migrate.js');
  try {
    const dryRun = values['dry-run'] === true;
    const result = await migrate({ connectionString, dryRun, max: 1 });
    if (dryRun) {
      process.stdout.write(result.sql ?? '');
      process.stderr.write(
        result.applied.length === 0
          ? 'hybrid-cache-migrate: dry run: nothing to apply\n'
          : `hybrid-cache-migrate: dry run: would apply ${result.applied.length} migration(s); nothing was changed\n`,
      );
      return 0;
    }
    if (result.bootstrapped)
      process.stdout.write('created the roles anon, authenticated, service_role (NOLOGIN)\n');
    for (const file of result.applied) process.stdout.write(`applied ${file}\n`);
    process.stdout.write(
      result.applied.length === 0
        ? `nothing to apply (${result.skipped.length} migration(s) already applied)\n`
        : `applied ${result.applied.length} migration(s); ${result.skipped.length} already applied\n`,
    );
    return 0;
  } catch (error) {
    // The library's errors never hold the connection string's password.
    process.stderr.write(`hybrid-cache-migrate: ${(error as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main();
