import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FEED_RETENTION_MS } from '../../src/storage/contract/feed.js';
import { DEFAULT_FEED_PAGE_LIMIT } from '../../src/storage/contract/types.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { PostgresCluster } from '../support/postgres.js';
import { applyMigration, prepareSupabaseDatabase } from '../support/supabase-db.js';

/** What the feed function answers (its jsonb, as pg parses it). */
interface Page {
  epoch: string;
  cursor: string;
  changes: Array<{ key: string; version: number; item_id?: string }>;
  reset: boolean;
  more: boolean;
}

const TABLES = Object.keys(SUPABASE_TABLES) as SupabaseTable[];
const FEED_TABLE: Record<SupabaseTable, string> = {
  conversation_threads: 'conversation_threads_feed',
  hybrid_cache_entries: 'hybrid_cache_entries_feed',
};

// A cluster of its own: xids and the snapshot's xmin are cluster-wide, so a transaction another
// test file holds open in the shared cluster would hold these feeds back and make them re-deliver.
let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await PostgresCluster.create();
});
afterAll(() => cluster?.destroy());

describe.each(TABLES)('the change feed of %s, in SQL', (table) => {
  const { functions, keyField } = SUPABASE_TABLES[table];
  let pool: pg.Pool;
  let base = 0;
  let n = 0;
  beforeAll(async () => {
    // A database per table: it is pruned and re-epoched.
    const database = await prepareSupabaseDatabase(
      cluster.info,
      `feed_${table}`,
      randomBytes(12).toString('hex'),
    );
    pool = new pg.Pool({ ...database.admin, max: 6 });
    pool.on('error', () => {}); // idle connections are cut when the cluster stops
    base = Date.now() * LOGICAL_SLOTS;
  });
  afterAll(() => pool?.end());

  /** A fresh version, above every earlier one. */
  const version = () => base + ++n;
  const value = (key: string, v = version()) =>
    JSON.stringify([{ [keyField]: key, version: v, data: '1', expires_at_ms: null }]);
  /** Applies a value write through the table's apply function, on `client` (its transaction) or in one of its own. */
  const write = async (key: string, client: pg.Pool | pg.PoolClient = pool) =>
    (await client.query(`select * from public.${functions.apply}($1)`, [value(key)])).rows;
  const read = async (after: string | null, limit?: number): Promise<Page> =>
    (
      await pool.query<{ page: Page }>(`select public.${functions.changes}($1, $2) as page`, [
        after,
        limit ?? 1000,
      ])
    ).rows[0]?.page as Page;
  const keys = (page: Page) => page.changes.map((c) => c.key);
  /** Every page until `more` is false: the changes in order and the last cursor. */
  const readAll = async (after: string, limit?: number) => {
    const changes: string[] = [];
    let cursor = after;
    for (let pages = 0; ; pages++) {
      const page = await read(cursor, limit);
      expect(page.reset).toBe(false);
      changes.push(...keys(page));
      cursor = page.cursor;
      if (!page.more) return { changes, cursor, pages: pages + 1 };
    }
  };
  /** Rolls back what the test left open (a no-op after commit) and returns the connection. */
  const end = async (client: pg.PoolClient) => {
    await client.query('rollback');
    client.release();
  };
  /** A connection holding a transaction open until the test commits or rolls it back. */
  const open = async () => {
    const client = await pool.connect();
    await client.query('begin');
    return client;
  };

  it('defaults the page limit and the feed retention to the library’s constants', async () => {
    const args = async (fn: string) =>
      (
        await pool.query<{ args: string }>(
          `select pg_get_function_arguments(p.oid) as args from pg_proc p
           where p.pronamespace = 'public'::regnamespace and p.proname = $1`,
          [fn],
        )
      ).rows[0]?.args ?? '';
    expect(await args(functions.changes)).toBe(
      `p_after text DEFAULT NULL::text, p_limit integer DEFAULT ${DEFAULT_FEED_PAGE_LIMIT}, p_skip_origin text DEFAULT NULL::text`,
    );
    const retention = /p_feed_retention interval DEFAULT ([^,]+)$/.exec(await args(functions.cleanup))?.[1];
    const ms = await pool.query<{ ms: string }>(
      `select (extract(epoch from ${retention}) * 1000)::bigint as ms`,
    );
    expect(Number(ms.rows[0]?.ms)).toBe(DEFAULT_FEED_RETENTION_MS);
  });

  it('answers the head for no cursor: no changes, and a cursor from which later changes come', async () => {
    const head = await read(null);
    expect(head).toMatchObject({ changes: [], reset: false, more: false });
    expect(head.epoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(head.cursor.startsWith(`${head.epoch}.`)).toBe(true);
    await write('head:a');
    const page = await read(head.cursor);
    expect(keys(page)).toEqual(['head:a']);
    expect(page.epoch).toBe(head.epoch);
  });

  it('never skips a change whose transaction commits after a later one was delivered', async () => {
    const head = await read(null);
    const held = await open();
    try {
      await write('held', held); // stamped first: its id is the lower one
      await write('later'); // commits at once
      // Seen from inside the held transaction, which sees its own change and the committed one.
      const ids = (
        await held.query<{ key: string; id: string }>(
          `select key, id from public.${FEED_TABLE[table]} where key in ('held', 'later') order by id`,
        )
      ).rows.map((r) => r.key);
      // A cursor by id (or by time) would pass 'held' here: it is below 'later' and not yet visible.
      expect(ids).toEqual(['held', 'later']);
      const during = await read(head.cursor);
      expect(keys(during)).toEqual(['later']);
      await held.query('commit');
      const after = await read(during.cursor);
      expect(keys(after)).toContain('held');
      expect(keys(after)).toEqual(['held', 'later']); // in xid order; 'later' comes again, once safe
      expect(keys(await read(after.cursor))).toEqual([]);
    } finally {
      await end(held);
    }
  });

  it('delivers a visible change above xmin on every read until it is safe, then moves past it', async () => {
    const head = await read(null);
    const held = await open();
    try {
      await write('unsafe:held', held);
      await write('unsafe:a');
      const first = await read(head.cursor);
      const second = await read(first.cursor);
      expect(keys(first)).toEqual(['unsafe:a']);
      expect(keys(second)).toEqual(['unsafe:a']);
      expect(second.cursor).toBe(head.cursor); // nothing safe yet: the cursor stays
      await held.query('rollback'); // the held change never happened
      const third = await read(second.cursor);
      expect(keys(third)).toEqual(['unsafe:a']);
      expect(third.cursor).not.toBe(head.cursor);
      expect(keys(await read(third.cursor))).toEqual([]);
    } finally {
      await end(held);
    }
  });

  it('pages in order: full pages say more, the last does not, nothing is skipped or repeated', async () => {
    const head = await read(null);
    const written = ['page:1', 'page:2', 'page:3', 'page:4', 'page:5'];
    for (const key of written) await write(key);
    const first = await read(head.cursor, 2);
    expect(first).toMatchObject({ more: true, reset: false });
    expect(keys(first)).toEqual(['page:1', 'page:2']);
    const all = await readAll(first.cursor, 2);
    expect([...keys(first), ...all.changes]).toEqual(written);
    expect(keys(await read(all.cursor, 2))).toEqual([]);
  });

  it('pages through changes that are not yet safe, and starts over from the safe position after the sweep', async () => {
    const head = await read(null);
    const held = await open();
    try {
      await write('sweep:held', held);
      const written = ['sweep:1', 'sweep:2', 'sweep:3', 'sweep:4', 'sweep:5'];
      for (const key of written) await write(key);
      const sweep = await readAll(head.cursor, 2);
      expect(sweep.changes).toEqual(written);
      expect(sweep.pages).toBe(3);
      // A change committed during a sweep, at a position the sweep already passed, is not lost:
      // the next sweep starts again from the safe position.
      const again = await readAll(sweep.cursor, 2);
      expect(again.changes).toEqual(written);
      await held.query('commit');
      const last = await readAll(again.cursor, 2);
      expect(last.changes).toEqual(['sweep:held', ...written]);
      expect((await readAll(last.cursor, 2)).changes).toEqual([]);
    } finally {
      await end(held);
    }
  });

  it('stamps applied writes and appends that stored an item, nothing else, with the version and newest item', async () => {
    const head = await read(null);
    const v = version();
    await write('stamp:value');
    // Stale: below the stored version. Not a change.
    await pool.query(`select * from public.${functions.apply}($1)`, [value('stamp:value', v)]);
    const append = JSON.stringify([
      {
        [keyField]: 'stamp:value',
        version: v + 100,
        expires_at_ms: null,
        appended_at_ms: Date.now(),
        items: [
          { id: 'i-b', version: v + 100, data: '"b"' },
          { id: 'i-a', version: v + 99, data: '"a"' },
        ],
      },
    ]);
    await pool.query(`select * from public.${functions.append}($1)`, [append]);
    await pool.query(`select * from public.${functions.append}($1)`, [append]); // re-sent: stores nothing
    const rolledBack = await open();
    await write('stamp:rolled-back', rolledBack);
    await end(rolledBack);
    const page = await read(head.cursor);
    expect(page.changes).toEqual([
      { key: 'stamp:value', version: expect.any(Number) },
      { key: 'stamp:value', version: v + 100, item_id: 'i-b' },
    ]);
    expect(page.changes[0]?.version).toBeGreaterThan(v);
  });

  it('stamps a batch in its order: its values, then its appends, whatever the keys', async () => {
    const head = await read(null);
    const v = version();
    const items = (key: string, id: string) => ({
      [keyField]: key,
      version: v,
      expires_at_ms: null,
      appended_at_ms: Date.now(),
      items: [{ id, version: v, data: '1' }],
    });
    const values = [
      { [keyField]: 'order:z', version: v, data: '1', expires_at_ms: null },
      { [keyField]: 'order:a', version: v, data: '1', expires_at_ms: null },
    ];
    await pool.query(`select * from public.${functions.write}($1, $2)`, [
      JSON.stringify(values),
      JSON.stringify([items('order:z', 'z1'), items('order:a', 'a1')]),
    ]);
    // In key order (as the append locks its keys) the appends would read a, z.
    expect(keys(await read(head.cursor))).toEqual(['order:z', 'order:a', 'order:z', 'order:a']);
  });

  it('answers reset with the head for a malformed cursor, another epoch, or a cursor ahead of the database', async () => {
    const head = await read(null);
    await write('reset:a');
    const page = await read(head.cursor);
    const [epoch, xid, id] = page.cursor.split('.') as [string, string, string];
    const bad = [
      '',
      'garbage',
      `${epoch}`,
      `${epoch}.1`,
      `${epoch}.x.1`,
      `${epoch}.-1.1`,
      `${epoch}.1.2.3`,
      `${epoch}.99999999999999999999.1`,
      `00000000-0000-4000-8000-000000000000.${xid}.${id}`, // another epoch
      `${epoch}.${BigInt(xid) + 1_000_000n}.0`, // an xid this database never assigned
      `${epoch}.${xid}.${BigInt(id) + 1_000n}`, // a change this feed does not hold
      `${epoch}.${xid}.${id}.${xid}.${id}`, // a continuation not after the safe position
    ];
    for (const cursor of bad) {
      const answer = await read(cursor);
      expect(answer, cursor).toMatchObject({ epoch, changes: [], reset: true, more: false });
      // The head it answers is a cursor like any other.
      expect((await read(answer.cursor)).reset, cursor).toBe(false);
    }
  });

  it('prunes changes older than the retention, resets a cursor before them, keeps one that had read them all', async () => {
    const head = await read(null);
    await write('prune:1');
    await write('prune:2');
    const upToDate = (await readAll(head.cursor)).cursor;
    const behind = (await read(head.cursor, 1)).cursor;
    await pool.query(`update public.${FEED_TABLE[table]} set changed_at = changed_at - interval '2 hours'`);
    const held = await open(); // a change not yet safe is never pruned, however old
    try {
      await write('prune:held', held);
      await held.query(
        `update public.${FEED_TABLE[table]} set changed_at = changed_at - interval '2 hours' where key = 'prune:held'`,
      );
      const removed = await pool.query(`select public.${functions.cleanup}() as n`);
      expect(removed.rows[0]?.n).toBe(0); // feed rows are not counted as entries
      await held.query('commit');
    } finally {
      await end(held);
    }
    const { rows } = await pool.query<{ key: string }>(`select key from public.${FEED_TABLE[table]}`);
    expect(rows.map((r) => r.key)).toEqual(['prune:held']);
    expect(await read(head.cursor)).toMatchObject({ reset: true, changes: [] });
    expect(await read(behind)).toMatchObject({ reset: true, changes: [] });
    const kept = await read(upToDate);
    expect(kept.reset).toBe(false);
    expect(keys(kept)).toEqual(['prune:held']);
    // A shorter retention given to cleanup prunes the rest.
    await pool.query(`select public.${functions.cleanup}(interval '7 days', interval '0 seconds')`);
    expect(await read(kept.cursor)).toMatchObject({ reset: false, changes: [] });
  });

  it('has a new epoch when the feed is recreated: every older cursor is reset', async () => {
    const before = await read(null);
    await write('epoch:a');
    const cursor = (await read(before.cursor)).cursor;
    const admin = await pool.connect();
    try {
      await admin.query('delete from public.hybrid_cache_feeds where feed = $1', [table]);
      await expect(read(null)).rejects.toMatchObject({ code: '42P01' });
      await applyMigration(admin); // re-installs the feed's row, with a new epoch
      await applyMigration(admin); // re-running keeps it
    } finally {
      admin.release();
    }
    const after = await read(null);
    expect(after.epoch).not.toBe(before.epoch);
    expect(await read(null)).toMatchObject({ epoch: after.epoch });
    expect(await read(cursor)).toMatchObject({ epoch: after.epoch, reset: true, changes: [] });
    await write('epoch:b');
    expect(keys(await read(after.cursor))).toEqual(['epoch:b']);
  });
});
