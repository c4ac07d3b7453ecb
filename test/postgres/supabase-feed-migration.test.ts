import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { appended, item, put } from '../../src/testing/writes.js';
import {
  AUTHENTICATOR_ROLE,
  applyMigration,
  grantSupabaseDefaults,
  migrationPaths,
  migrationSql,
} from '../support/supabase-db.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

const FEED_MIGRATION = '20261206140000_change_feed.sql';
const TABLES = Object.keys(SUPABASE_TABLES) as SupabaseTable[];

describe('the change feed migration on a database that already holds data', () => {
  let admin: pg.Client;
  let env: SupabaseEnv;
  const base = Date.now() * LOGICAL_SLOTS;
  beforeAll(async () => {
    // A database migrated up to the one before the feed, in the run's cluster (roles exist there).
    const shared = inject('supabaseDb');
    const database = `hc_feed_${randomBytes(6).toString('hex')}`;
    const cluster = new pg.Client({ ...shared.admin, database: 'postgres' });
    await cluster.connect();
    await cluster.query(`create database ${cluster.escapeIdentifier(database)}`);
    await cluster.end();
    admin = new pg.Client({ ...shared.admin, database });
    await admin.connect();
    await grantSupabaseDefaults(admin);
    const earlier = migrationPaths().filter((path) => basename(path) < FEED_MIGRATION);
    expect(earlier.length).toBeGreaterThan(0);
    for (const path of earlier) await admin.query(migrationSql(path));
    env = await startSupabaseEnv({
      database: {
        admin: { ...shared.admin, database },
        authenticator: { ...shared.authenticator, database, user: AUTHENTICATOR_ROLE },
      },
    });
  });
  afterAll(async () => {
    await env?.close();
    await admin?.end();
  });

  it('keeps every row and answer, and stamps the writes made after it', async () => {
    // Written through the functions as they were before the feed.
    for (const table of TABLES) {
      const results = await env
        .storage({ table })
        .apply([
          put('old:value', base + 1, { kept: true }),
          put('old:gone', base + 1, 'x'),
          appended('old:value', [item(base + 2, 'turn', 'old-item')]),
        ]);
      expect(results.map((r) => r.status)).toEqual(['applied', 'applied', 'applied']);
    }
    const before = await Promise.all(
      TABLES.map((table) => env.storage({ table }).getMany(['old:value', 'old:gone'])),
    );

    const path = migrationPaths().find((p) => basename(p) === FEED_MIGRATION) as string;
    await admin.query(migrationSql(path));
    await env.gateway.reloadSchema();

    for (const [i, table] of TABLES.entries()) {
      const storage = env.storage({ table });
      expect(await storage.getMany(['old:value', 'old:gone'])).toEqual(before[i]);
      expect(await storage.highWaterMark()).toBe(base + 2);
      // The cleanup keeps one signature: an overload would make PostgREST's call ambiguous.
      const { rows } = await admin.query<{ args: string }>(
        `select pg_get_function_identity_arguments(p.oid) as args from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname = $1`,
        [SUPABASE_TABLES[table].functions.cleanup],
      );
      expect(rows).toEqual([{ args: 'p_tombstone_retention interval, p_feed_retention interval' }]);
      expect(await storage.cleanup({ tombstoneRetentionMs: 0 })).toBe(0);

      // Writes from before the migration were never stamped; the head follows from here.
      const head = await storage.changes(null);
      expect(head).toMatchObject({ changes: [], reset: false });
      expect(await storage.apply([put('old:gone', base + 3, null), put('new', base + 3, 1)])).toEqual([
        { status: 'applied' },
        { status: 'applied' },
      ]);
      const page = await storage.changes(head.cursor);
      expect(page.changes).toEqual([
        { key: 'old:gone', version: base + 3 },
        { key: 'new', version: base + 3 },
      ]);
    }
  });

  it('keeps each feed and its epoch when every migration is applied again', async () => {
    const heads = await Promise.all(TABLES.map((table) => env.storage({ table }).changes(null)));
    const counts = async () =>
      (
        await admin.query<{ n: number }>(
          `select (select count(*) from public.conversation_threads_feed)
                + (select count(*) from public.hybrid_cache_entries_feed) as n`,
        )
      ).rows[0]?.n;
    const stamped = await counts();
    await applyMigration(admin);
    await env.gateway.reloadSchema();
    expect(await counts()).toBe(stamped);
    for (const [i, table] of TABLES.entries()) {
      const page = await env.storage({ table }).changes(heads[i]?.cursor ?? null);
      expect(page).toMatchObject({ epoch: heads[i]?.epoch, reset: false });
    }
    expect(heads[0]?.epoch).not.toBe(heads[1]?.epoch); // one feed per table, each its own epoch
  });
});
