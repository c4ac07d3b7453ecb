import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageConfigurationError } from '../../src/storage/contract/errors.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { SupabaseStorage, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { applyMigration, migrationPath, migrationPaths } from '../support/supabase-db.js';
import { freshSupabaseDatabase, type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

describe('Supabase migration', () => {
  let env: SupabaseEnv;
  let admin: pg.Client;
  beforeAll(async () => {
    const database = await freshSupabaseDatabase(); // migration applied once already
    env = await startSupabaseEnv({ database });
    admin = new pg.Client(database.admin);
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await env?.close();
  });

  it('follows the Supabase CLI naming', () => {
    expect(migrationPath()).toMatch(/supabase\/migrations\/\d{14}_conversation_threads\.sql$/);
    const files = migrationPaths();
    expect(files.length).toBeGreaterThan(1);
    expect(files[0]).toBe(migrationPath());
    for (const file of files) expect(file).toMatch(/supabase\/migrations\/\d{14}_[a-z0-9_]+\.sql$/);
  });

  it('applies a second time cleanly, keeping rows and behaviour', async () => {
    const storage = env.storage();
    const k = `rerun:${randomUUID()}`;
    await storage.apply([{ key: k, version: 5, json: '{"kept":true}', expiresAt: null }]);
    await applyMigration(admin);
    await applyMigration(admin);
    await env.gateway.reloadSchema();
    expect((await storage.getMany([k])).get(k)).toEqual({
      version: 5,
      json: '{"kept": true}',
      expiresAt: null,
    });
    expect((await storage.apply([{ key: k, version: 4, json: '1', expiresAt: null }]))[0]?.status).toBe(
      'stale',
    );
    const functions = await env.sql<{ n: number }>(
      "select count(*)::int as n from pg_proc where proname in ('apply_conversation_threads', 'get_conversation_threads', 'cleanup_expired_threads')",
    );
    expect(functions[0]?.n).toBe(3);
    expect(await storage.highWaterMark()).toBeGreaterThanOrEqual(5);
  });

  it("has the seed's columns plus version and deleted, and indexes on expires_at and user_id", async () => {
    const columns = await env.sql<{ column_name: string; data_type: string }>(
      "select column_name, data_type from information_schema.columns where table_name = 'conversation_threads' order by column_name",
    );
    expect(Object.fromEntries(columns.map((c) => [c.column_name, c.data_type]))).toEqual({
      accessed_at: 'timestamp with time zone',
      conversation_data: 'jsonb',
      created_at: 'timestamp with time zone',
      deleted: 'boolean',
      expires_at: 'timestamp with time zone',
      id: 'uuid',
      log_floor: 'bigint',
      metadata: 'jsonb',
      thread_id: 'text',
      user_id: 'text',
      version: 'bigint',
    });
    const indexes = (
      await env.sql<{ def: string }>(
        "select indexdef as def from pg_indexes where tablename = 'conversation_threads'",
      )
    ).map((i) => i.def);
    expect(indexes.some((d) => /\(expires_at\)/.test(d))).toBe(true);
    expect(indexes.some((d) => /\(user_id\)/.test(d))).toBe(true);
    expect(indexes.some((d) => /UNIQUE .*\(thread_id\)/.test(d))).toBe(true);
    expect(indexes.some((d) => /conversation_threads_version_idx .*\(version\)/.test(d))).toBe(true);
  });

  it('stores no-expiry entries as expires_at = infinity and reads them back as null', async () => {
    const k = `forever:${randomUUID()}`;
    const at = Date.UTC(2999, 0, 1, 12, 0, 0, 123);
    const storage = env.storage();
    await storage.apply([
      { key: k, version: 1, json: '"x"', expiresAt: null },
      { key: `${k}:dated`, version: 1, json: '"y"', expiresAt: at },
    ]);
    const rows = await env.sql<{ thread_id: string; infinite: boolean }>(
      "select thread_id, expires_at = 'infinity' as infinite from conversation_threads where thread_id like $1 order by thread_id",
      [`${k}%`],
    );
    expect(rows.map((r) => r.infinite)).toEqual([true, false]);
    const found = await storage.getMany([k, `${k}:dated`]);
    expect(found.get(k)?.expiresAt).toBeNull();
    expect(found.get(`${k}:dated`)?.expiresAt).toBe(at);
  });

  it('upgrades a table created from the seed plan in place', async () => {
    const database = await freshSupabaseDatabase();
    const seeded = new pg.Client({ ...database.admin });
    await seeded.connect();
    try {
      await seeded.query(`
        drop table public.conversation_threads cascade;
        drop function public.cleanup_expired_threads; -- whatever its signature now
        create table conversation_threads (
          id uuid primary key default gen_random_uuid(),
          thread_id text not null unique,
          user_id text,
          conversation_data jsonb not null,
          created_at timestamptz default now(),
          accessed_at timestamptz default now(),
          expires_at timestamptz not null,
          metadata jsonb default '{}'::jsonb);
        create function cleanup_expired_threads() returns void as $$
          begin delete from conversation_threads where expires_at < now(); end $$ language plpgsql;
        insert into conversation_threads (thread_id, conversation_data, expires_at)
          values ('legacy', '{"turns": []}', now() + interval '1 day');`);
      await applyMigration(seeded);
      const { rows } = await seeded.query(
        "select version, deleted, conversation_data::text as data from conversation_threads where thread_id = 'legacy'",
      );
      expect(rows).toEqual([{ version: '0', deleted: false, data: '{"turns": []}' }]);
      const cleanup = await seeded.query('select cleanup_expired_threads() as removed');
      expect(cleanup.rows).toEqual([{ removed: 0 }]);
    } finally {
      await seeded.end();
    }
  });
});

describe('conversation_threads_high_water_mark()', () => {
  let env: SupabaseEnv;
  beforeAll(async () => {
    env = await startSupabaseEnv({ database: await freshSupabaseDatabase() });
  });
  afterAll(() => env?.close());

  it('is 0 on an empty table, then the highest version held, tombstones and expired rows included', async () => {
    const storage = env.storage();
    expect(await storage.highWaterMark()).toBe(0);
    await storage.apply([
      { key: 'hwm:live', version: 10, json: '1', expiresAt: null },
      { key: 'hwm:tombstone', version: 30, json: null, expiresAt: null },
      { key: 'hwm:expired', version: 20, json: '2', expiresAt: Date.now() - 1_000 },
    ]);
    expect(await storage.highWaterMark()).toBe(30);
    await env.sql("delete from conversation_threads where thread_id = 'hwm:tombstone'");
    expect(await storage.highWaterMark()).toBe(20);
  });
});

describe('cleanup_expired_threads()', () => {
  let env: SupabaseEnv;
  beforeAll(async () => {
    env = await startSupabaseEnv({ database: await freshSupabaseDatabase() });
  });
  afterAll(() => env?.close());

  it('removes expired rows and tombstones past retention (by version time), and keeps live rows and recent tombstones', async () => {
    const storage = env.storage();
    const now = Date.now();
    const mintedAgo = (ms: number) => (now - ms) * LOGICAL_SLOTS;
    const k = (label: string) => `cleanup:${label}`;
    await storage.apply([
      { key: k('live'), version: 1, json: '1', expiresAt: now + 3_600_000 },
      { key: k('forever'), version: 1, json: '2', expiresAt: null },
      { key: k('expired'), version: 1, json: '3', expiresAt: now - 1_000 },
      { key: k('old-tombstone'), version: mintedAgo(8 * DAY_MS), json: null, expiresAt: null },
      { key: k('new-tombstone'), version: mintedAgo(2 * HOUR_MS), json: null, expiresAt: null },
    ]);
    // When the row was written does not matter: the old tombstone was written just now, and the
    // recent one is made to look written long ago.
    await env.sql(
      "update conversation_threads set accessed_at = now() - interval '30 days' where thread_id = $1",
      [k('new-tombstone')],
    );

    expect(await storage.cleanup()).toBe(2);
    const left = await env.sql<{ thread_id: string }>(
      'select thread_id from conversation_threads order by 1',
    );
    expect(left.map((r) => r.thread_id)).toEqual([k('forever'), k('live'), k('new-tombstone')]);

    // A shorter retention purges the newer tombstone too; a second run finds nothing.
    expect(await storage.cleanup({ tombstoneRetentionMs: HOUR_MS })).toBe(1);
    expect(await storage.cleanup({ tombstoneRetentionMs: HOUR_MS })).toBe(0);
  });

  it('is callable only by the service role', async () => {
    const { error, status } = await env.client(env.anonKey).rpc('cleanup_expired_threads');
    expect(status).toBe(401);
    expect(error?.code).toBe('42501');
  });
});

describe('the table SupabaseStorage serves', () => {
  let env: SupabaseEnv;
  beforeAll(async () => {
    env = await startSupabaseEnv();
  });
  afterAll(() => env?.close());

  const holders = async (key: string) => ({
    general: (await env.sql('select 1 from public.hybrid_cache_entries where key = $1', [key])).length,
    conversations: (await env.sql('select 1 from public.conversation_threads where thread_id = $1', [key]))
      .length,
  });

  it('is the general-purpose hybrid_cache_entries unless told otherwise, never conversation_threads', async () => {
    const storage = new SupabaseStorage({ url: env.gateway.url, key: env.serviceRoleKey });
    const key = `general:${randomUUID()}`;
    expect(await storage.apply([{ key, version: 1, json: '"v"', expiresAt: null }])).toEqual([
      { status: 'applied' },
    ]);
    expect(await holders(key)).toEqual({ general: 1, conversations: 0 });
    expect((await storage.getMany([key])).get(key)?.json).toBe('"v"');
  });

  it('is conversation_threads when named, and keys do not cross between the tables', async () => {
    const key = `conversation:${randomUUID()}`;
    await env
      .storage({ table: 'conversation_threads' })
      .apply([{ key, version: 1, json: '1', expiresAt: null }]);
    expect(await holders(key)).toEqual({ general: 0, conversations: 1 });
    expect((await env.storage({ table: 'hybrid_cache_entries' }).getMany([key])).size).toBe(0);
  });

  it('must be one the migrations ship', () => {
    expect(
      () =>
        new SupabaseStorage({
          url: env.gateway.url,
          key: env.serviceRoleKey,
          table: 'users' as SupabaseTable,
        }),
    ).toThrow(StorageConfigurationError);
  });
});
