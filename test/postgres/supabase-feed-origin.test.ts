import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageConfigurationError } from '../../src/storage/contract/errors.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { appended, item, put } from '../../src/testing/writes.js';
import { PostgresCluster } from '../support/postgres.js';
import {
  applyMigration,
  grantSupabaseDefaults,
  migrationPaths,
  migrationSql,
  prepareSupabaseDatabase,
} from '../support/supabase-db.js';

const ORIGIN_MIGRATION = '20261206160000_feed_origin.sql';
const TABLES = Object.keys(SUPABASE_TABLES) as SupabaseTable[];
const FEED_TABLE: Record<SupabaseTable, string> = {
  conversation_threads: 'conversation_threads_feed',
  hybrid_cache_entries: 'hybrid_cache_entries_feed',
};

// A cluster of its own: xids and the snapshot's xmin are cluster-wide, so a transaction another
// test file holds open in the shared cluster would make these feeds re-deliver changes, and these
// tests check that skipped changes are passed, not merely left out.
let cluster: PostgresCluster;
let admin: pg.Pool;
const base = Date.now() * LOGICAL_SLOTS;
let n = 0;
const version = () => base + ++n;
const stores: PostgresStorage[] = [];
const storage = (table: SupabaseTable, pool = admin) => {
  const store = new PostgresStorage({ pool, table, doorbell: false });
  stores.push(store);
  return store;
};

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  const database = await prepareSupabaseDatabase(cluster.info, 'origin', randomBytes(12).toString('hex'));
  admin = new pg.Pool({ ...database.admin, max: 4 });
  admin.on('error', () => {}); // idle connections are cut when the cluster stops
});
afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await admin?.end();
  await cluster?.destroy();
});

describe.each(TABLES)('origins in the change feed of %s', (table) => {
  const { functions, keyField } = SUPABASE_TABLES[table];

  it('records the origin of a write through <write>_from, and only of that call', async () => {
    const store = storage(table);
    const [a, b] = [`stamp:a:${n}`, `stamp:b:${n}`];
    await store.apply([put(a, version(), 'a'), appended(a, [item(version(), 'i')])], { origin: 'cache-1' });
    // In one transaction: a call with an origin, then a plain write, which must not inherit it.
    const client = await admin.connect();
    try {
      await client.query('begin');
      await client.query(`select * from public.${functions.writeFrom}($1, $2, '[]')`, [
        'cache-2',
        JSON.stringify([{ [keyField]: b, version: version(), data: '1', expires_at_ms: null }]),
      ]);
      await client.query(`select * from public.${functions.apply}($1)`, [
        JSON.stringify([{ [keyField]: b, version: version(), data: '2', expires_at_ms: null }]),
      ]);
      await client.query('commit');
    } finally {
      client.release();
    }
    const { rows } = await admin.query<{ key: string; origin: string | null }>(
      `select key, origin from public.${FEED_TABLE[table]} where key in ($1, $2) order by xid, id`,
      [a, b],
    );
    expect(rows).toEqual([
      { key: a, origin: 'cache-1' },
      { key: a, origin: 'cache-1' },
      { key: b, origin: 'cache-2' },
      { key: b, origin: null },
    ]);
  });

  it('leaves the skipped origin out, passes it with the cursor, and delivers what comes after', async () => {
    const store = storage(table);
    const head = await store.changes(null);
    const own = ['own:1', 'own:2', 'own:3'].map((k) => `${k}:${n}`);
    for (const k of own) await store.apply([put(k, version(), k)], { origin: 'own' });
    const first = await store.changes(head.cursor, { limit: 2, skipOrigin: 'own' });
    expect(first).toMatchObject({ changes: [], more: true, reset: false });
    expect(first.cursor).not.toBe(head.cursor);
    const second = await store.changes(first.cursor, { limit: 2, skipOrigin: 'own' });
    expect(second).toMatchObject({ changes: [], more: false, reset: false });
    // Passed, not postponed: read from there without skipping, they do not come again.
    expect((await store.changes(second.cursor)).changes).toEqual([]);
    const foreign = `foreign:${n}`;
    const v = version();
    await store.apply([put(foreign, v, 'x')], { origin: 'other' });
    expect((await store.changes(second.cursor, { skipOrigin: 'own' })).changes).toEqual([
      { key: foreign, version: v },
    ]);
    // Without skipping, or skipping another origin, every change is there.
    const all = await store.changes(head.cursor, { skipOrigin: 'nobody' });
    expect(all.changes.map((c) => c.key)).toEqual([...own, foreign]);
  });
});

describe('the origin migration', () => {
  it('grants the new functions to service_role only, and leaves one feed function per table', async () => {
    for (const table of TABLES) {
      const { functions } = SUPABASE_TABLES[table];
      for (const fn of [functions.writeFrom, functions.changes]) {
        const { rows } = await admin.query<{ args: string; roles: string[] }>(
          `select pg_get_function_identity_arguments(p.oid) as args,
                  array(select r from unnest(array['anon', 'authenticated', 'service_role']) r
                        where has_function_privilege(r, p.oid, 'execute') order by r) as roles
           from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = $1`,
          [fn],
        );
        expect(rows, fn).toEqual([
          {
            args:
              fn === functions.changes
                ? 'p_after text, p_limit integer, p_skip_origin text'
                : 'p_origin text, p_writes jsonb, p_appends jsonb',
            roles: ['service_role'],
          },
        ]);
      }
    }
  });

  it('applies on top of the earlier migrations: changes and cursors stay, old changes have no origin', async () => {
    const database = `origin_upgrade_${randomBytes(4).toString('hex')}`;
    await admin.query(`create database ${database}`);
    const setup = new pg.Client({ ...cluster.info, database });
    await setup.connect();
    const pool = new pg.Pool({ ...cluster.info, database, max: 3 });
    pool.on('error', () => {});
    try {
      await grantSupabaseDefaults(setup);
      const earlier = migrationPaths().filter((path) => basename(path) < ORIGIN_MIGRATION);
      expect(migrationPaths().map((path) => basename(path))).toContain(ORIGIN_MIGRATION);
      for (const path of earlier) await setup.query(migrationSql(path));

      const before = await Promise.all(
        TABLES.map(async (table) => {
          const store = storage(table, pool);
          const head = await store.changes(null);
          await store.apply([put('old', version(), 'old')]);
          // Before the migration, the adapter needs the new functions only for origins.
          await expect(store.apply([put('old', version(), 'x')], { origin: 'o' })).rejects.toThrow(
            StorageConfigurationError,
          );
          await expect(store.changes(head.cursor, { skipOrigin: 'o' })).rejects.toThrow(
            /Apply the migrations/,
          );
          return { store, head };
        }),
      );

      const path = migrationPaths().find((p) => basename(p) === ORIGIN_MIGRATION) as string;
      await setup.query(migrationSql(path));
      for (const { store, head } of before) {
        const page = await store.changes(head.cursor, { skipOrigin: 'o' });
        expect(page).toMatchObject({ reset: false, changes: [{ key: 'old' }] });
        const v = version();
        await store.apply([put('new', v, 'new')], { origin: 'o' });
        expect((await store.changes(page.cursor, { skipOrigin: 'o' })).changes).toEqual([]);
        expect((await store.changes(page.cursor)).changes).toEqual([{ key: 'new', version: v }]);
      }

      // Every file again, in order (the earlier ones re-create the two-argument feed function):
      // still one feed function per table, and the feeds go on.
      await applyMigration(setup);
      for (const table of TABLES) {
        const { rows } = await pool.query(
          `select 1 from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = $1`,
          [SUPABASE_TABLES[table].functions.changes],
        );
        expect(rows).toHaveLength(1);
      }
      for (const { store, head } of before) {
        const page = await store.changes(head.cursor, { skipOrigin: 'o' });
        expect(page.changes.map((c) => c.key)).toEqual(['old']);
      }
    } finally {
      await setup.end();
      await pool.end();
    }
  });
});
