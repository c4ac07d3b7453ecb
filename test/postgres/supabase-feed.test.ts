import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageConfigurationError, TransientStorageError } from '../../src/storage/contract/errors.js';
import type { FeedPage } from '../../src/storage/contract/types.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { appended, item, put } from '../../src/testing/writes.js';
import { PostgresCluster } from '../support/postgres.js';
import { prepareSupabaseDatabase } from '../support/supabase-db.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';
import { mintSupabaseKey } from '../support/supabase-keys.js';

const TABLES = Object.keys(SUPABASE_TABLES) as SupabaseTable[];

// A cluster of its own: the snapshot's xmin is cluster-wide, so a transaction another test file
// holds open in the shared cluster would keep these feeds re-delivering.
let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await PostgresCluster.create();
});
afterAll(() => cluster?.destroy());

describe.each(TABLES)('SupabaseStorage.changes on %s (supabase-js -> gateway -> PostgreSQL)', (table) => {
  const { functions, keyField } = SUPABASE_TABLES[table];
  let env: SupabaseEnv;
  let pool: pg.Pool;
  let version = Date.now() * LOGICAL_SLOTS;
  beforeAll(async () => {
    const database = await prepareSupabaseDatabase(
      cluster.info,
      `feed_storage_${table}`,
      randomBytes(12).toString('hex'),
    );
    env = await startSupabaseEnv({ database });
    pool = env.pool(4);
  });
  afterAll(() => env?.close());

  const storage = () => env.storage({ table });
  const keys = (page: FeedPage) => page.changes.map((c) => c.key);

  it('delivers a change whose transaction commits after a later one was delivered, skipping nothing', async () => {
    const feed = storage();
    const head = await feed.changes(null);
    expect(head).toMatchObject({ changes: [], reset: false, more: false });
    // A writer on a raw connection, its transaction held open around its apply.
    const held = await pool.connect();
    try {
      await held.query('begin');
      await held.query(`select * from public.${functions.apply}($1)`, [
        JSON.stringify([{ [keyField]: 'held', version: ++version, data: '1', expires_at_ms: null }]),
      ]);
      expect(await feed.apply([put('later', ++version, 2)])).toEqual([{ status: 'applied' }]);
      const during = await feed.changes(head.cursor);
      expect(keys(during)).toEqual(['later']);
      expect(during.changes[0]).toEqual({ key: 'later', version });
      await held.query('commit');
      const after = await feed.changes(during.cursor);
      expect(keys(after)).toEqual(['held', 'later']);
      expect((await feed.changes(after.cursor)).changes).toEqual([]);
    } finally {
      await held.query('rollback');
      held.release();
    }
  });

  it('pages with a limit, says more while full, and names appended items by the newest one stored', async () => {
    const feed = storage();
    const head = await feed.changes(null);
    await feed.apply([put('p:1', ++version, 1)]);
    await feed.apply([put('p:2', ++version, 2)]);
    const newest = item(++version + 1, 'b', 'item-b');
    await feed.apply([appended('p:1', [item(version, 'a', 'item-a'), newest])]);
    version++;
    const first = await feed.changes(head.cursor, { limit: 2 });
    expect(first).toMatchObject({ epoch: head.epoch, more: true, reset: false });
    expect(keys(first)).toEqual(['p:1', 'p:2']);
    const second = await feed.changes(first.cursor, { limit: 2 });
    expect(second).toMatchObject({ more: false, reset: false });
    expect(second.changes).toEqual([{ key: 'p:1', version: newest.version, itemId: 'item-b' }]);
  });

  it('answers reset with the head to a cursor it cannot serve', async () => {
    const feed = storage();
    const head = await feed.changes(null);
    for (const cursor of [
      'nonsense',
      `${head.epoch}.1`,
      `not-the-epoch.${head.cursor.split('.').slice(1).join('.')}`,
    ]) {
      const page = await feed.changes(cursor);
      expect(page, cursor).toMatchObject({ epoch: head.epoch, changes: [], reset: true, more: false });
      expect((await feed.changes(page.cursor)).reset).toBe(false);
    }
  });

  it('prunes the feed in cleanup after feedRetentionMs, and resets a follower that fell behind it', async () => {
    const feed = storage();
    const head = await feed.changes(null);
    await feed.apply([put('prune:1', ++version, 1)]);
    await feed.apply([put('prune:2', ++version, 2)]);
    const behind = (await feed.changes(head.cursor, { limit: 1 })).cursor;
    expect(await storage().cleanup()).toBe(0); // default retention (1 hour): nothing pruned
    expect((await feed.changes(behind)).reset).toBe(false);
    const pruning = env.storage({ table, feedRetentionMs: 0 });
    await pruning.cleanup();
    expect(await feed.changes(behind)).toMatchObject({ reset: true, changes: [] });
  });

  it('refuses an invalid limit, and serves a huge one as the largest page', async () => {
    const feed = storage();
    await expect(feed.changes(null, { limit: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(feed.changes(null, { limit: 1.5 })).rejects.toBeInstanceOf(RangeError);
    expect((await feed.changes(null, { limit: 1e9 })).reset).toBe(false);
    expect(() => env.storage({ table, feedRetentionMs: -1 })).toThrow(RangeError);
  });

  it('maps errors like every other call: a key that may not read it, a database without the feed', async () => {
    const anon = env.storage({ table, key: await mintSupabaseKey('anon') });
    await expect(anon.changes(null)).rejects.toBeInstanceOf(StorageConfigurationError);
    await env.sql(
      `alter function public.${functions.changes}(text, integer, text) rename to feed_moved_away`,
    );
    await env.gateway.reloadSchema();
    try {
      const missing = storage().changes(null);
      await expect(missing).rejects.toBeInstanceOf(StorageConfigurationError);
      await expect(missing).rejects.toThrow(/supabase\/migrations/);
    } finally {
      await env.sql(
        `alter function public.feed_moved_away(text, integer, text) rename to ${functions.changes}`,
      );
      await env.gateway.reloadSchema();
    }
    expect((await storage().changes(null)).reset).toBe(false);
  });

  it('maps an unavailable Data API to a transient error, and honours the caller’s signal', async () => {
    env.gateway.inject({ kind: 'unavailable', retryAfterSeconds: 2 }, { fn: functions.changes });
    const failing = storage().changes(null);
    await expect(failing).rejects.toBeInstanceOf(TransientStorageError);
    await expect(failing).rejects.toMatchObject({ retryAfterMs: 2_000 });
    env.gateway.inject({ kind: 'hang' }, { fn: functions.changes });
    const controller = new AbortController();
    const hanging = storage().changes(null, { signal: controller.signal });
    controller.abort(new Error('given up'));
    await expect(hanging).rejects.toThrow('given up');
    env.gateway.faults.clear(); // the hang is left queued if the abort came before the request
  });

  it('refuses an answer in another shape as a configuration error', async () => {
    const fn = functions.changes;
    await env.sql(`alter function public.${fn}(text, integer, text) rename to feed_kept_aside`);
    await env.sql(
      `create function public.${fn}(p_after text default null, p_limit integer default 1000)
       returns jsonb language sql as $$ select '{"epoch": "e", "cursor": "c", "reset": false, "more": false, "changes": [{"key": 1}]}'::jsonb $$`,
    );
    await env.gateway.reloadSchema();
    try {
      await expect(storage().changes(null)).rejects.toBeInstanceOf(StorageConfigurationError);
    } finally {
      await env.sql(`drop function public.${fn}(text, integer)`);
      await env.sql(`alter function public.feed_kept_aside(text, integer, text) rename to ${fn}`);
      await env.gateway.reloadSchema();
    }
  });
});
