import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TOMBSTONE_RETENTION_MS } from '../../src/storage/contract/tombstone-retention.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { appended, item, put, putWithLogFloor } from '../../src/testing/writes.js';
import { freshSupabaseDatabase, type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

/** Where each table keeps what its functions read and write. */
const LAYOUT: Record<
  SupabaseTable,
  { key: string; value: string; writtenAt: string; items: string; itemId: string; itemValue: string }
> = {
  conversation_threads: {
    key: 'thread_id',
    value: 'conversation_data',
    writtenAt: 'accessed_at',
    items: 'conversation_turns',
    itemId: 'turn_id',
    itemValue: 'turn',
  },
  hybrid_cache_entries: {
    key: 'key',
    value: 'value',
    writtenAt: 'written_at',
    items: 'hybrid_cache_items',
    itemId: 'id',
    itemValue: 'value',
  },
};
const TABLES = Object.keys(SUPABASE_TABLES) as SupabaseTable[];

describe("both tables' SQL functions", () => {
  let env: SupabaseEnv;
  let admin: pg.Client;
  beforeAll(async () => {
    // A database of its own: the scenario's cleanup and high-water mark see only its own rows.
    const database = await freshSupabaseDatabase();
    env = await startSupabaseEnv({ database });
    admin = new pg.Client(database.admin);
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await env?.close();
  });

  const call = async (fn: string, args: unknown[]) => {
    const params = args.map((_, i) => `$${i + 1}`).join(', ');
    // Aliased, so a function returning one value answers in a column of the same name for both tables.
    return (await admin.query(`select * from public.${fn}(${params}) as result`, args)).rows;
  };

  /** The same calls into one table's functions, and everything they answered and left behind. */
  async function scenario(table: SupabaseTable, base: number, now: number): Promise<unknown[]> {
    const { functions, keyField } = SUPABASE_TABLES[table];
    const layout = LAYOUT[table];
    const v = (n: number) => base + n;
    const value = (key: string, n: number, data: string | null, extra: object = {}) => ({
      [keyField]: key,
      version: v(n),
      data,
      expires_at_ms: null,
      ...extra,
    });
    const items = (key: string, list: Array<[string, number]>) => ({
      [keyField]: key,
      version: Math.max(...list.map(([, n]) => v(n))),
      expires_at_ms: null,
      appended_at_ms: now,
      items: list.map(([id, n]) => ({ id, version: v(n), data: JSON.stringify(id) })),
    });
    const asKey = (rows: Record<string, unknown>[]) =>
      rows.map(({ [keyField]: key, ...rest }) => ({ key, ...rest }));
    const json = (x: unknown) => JSON.stringify(x);
    return [
      await call(functions.write, [
        json([value('a', 1, '{"v": 1}'), value('b', 1, '"b"', { expires_at_ms: now - 1_000 })]),
        json([
          items('a', [
            ['a2', 2],
            ['a3', 3],
          ]),
          items('b', [['b1', 1]]),
        ]),
      ]),
      // A floor with its value; a value over an expired one; a tombstone.
      await call(functions.apply, [
        json([
          value('a', 10, '"again"', { log_floor: v(2) }),
          value('b', 10, '"fresh"'),
          value('c', 5, null),
        ]),
      ]),
      // Re-sent, and an older value whose floor must not apply.
      await call(functions.apply, [json([value('a', 10, '"again"', { log_floor: v(2) })])]),
      await call(functions.apply, [json([value('a', 9, '"older"', { log_floor: v(9) })])]),
      await call(functions.append, [
        json([items('a', [['a1', 1]]), items('a', [['a4', 4]]), items('c', [['c4', 4]])]),
      ]),
      // A value over a tombstone starts a new log; a key twice in one batch keeps the newest.
      await call(functions.apply, [json([value('c', 7, '"back"'), value('d', 1, '1'), value('d', 2, '2')])]),
      await call(functions.append, [
        json([
          items('c', [
            ['c6', 6],
            ['c8', 8],
          ]),
        ]),
      ]),
      asKey(await call(functions.getWithItems, [['a', 'b', 'c', 'd', 'unknown']])),
      asKey(await call(functions.get, [['a', 'b', 'c', 'd', 'unknown']])),
      await call(functions.highWaterMark, []),
      await call(functions.apply, [json([value('e', 3, null)])]),
      await call(functions.cleanup, ['0 milliseconds']),
      (
        await admin.query(
          `select ${layout.key} as key, version, deleted, log_floor, ${layout.value}::text as value,
                  expires_at = 'infinity' as forever
           from public.${table} order by 1`,
        )
      ).rows,
      (
        await admin.query(
          `select ${layout.key} as key, version, ${layout.itemId} as id, ${layout.itemValue}::text as value
           from public.${layout.items} order by 1, 2, 3`,
        )
      ).rows,
    ];
  }

  it('behave the same: one scenario, the same answers and the same rows', async () => {
    const now = Date.now();
    const base = now * LOGICAL_SLOTS;
    const [threads, entries] = await Promise.all(TABLES.map((table) => scenario(table, base, now)));
    expect(threads).toEqual(entries);
    // The scenario checks what it means to, not only that both agree.
    const [, floors, resent, older, late, , , read] = entries as Array<Array<Record<string, unknown>>>;
    expect(floors?.map((r) => r.outcome)).toEqual(['applied', 'applied', 'applied']);
    expect(resent?.[0]).toMatchObject({ outcome: 'stale', stored_version: String(base + 10) });
    expect(older?.[0]).toMatchObject({ outcome: 'stale' });
    expect(late?.map((r) => r.outcome)).toEqual(['stale', 'applied', 'stale']);
    const itemsOf = (key: string) =>
      (read?.find((r) => r.key === key)?.items as Array<{ id: string }> | null)?.map((i) => i.id) ?? [];
    expect(itemsOf('a')).toEqual(['a3', 'a4']);
    expect(itemsOf('b')).toEqual([]);
    expect(itemsOf('c')).toEqual(['c8']);
  });

  it('are generated from one definition: each function reads the same once table names are set aside', async () => {
    const names = (table: SupabaseTable) => {
      const { functions, keysParam } = SUPABASE_TABLES[table];
      const layout = LAYOUT[table];
      return {
        ...functions,
        trigger: `${table}_tombstone_items`,
        feed: `${table}_feed`,
        table,
        keysParam,
        ...layout,
      };
    };
    const [threads, entries] = TABLES.map(names) as [ReturnType<typeof names>, ReturnType<typeof names>];
    // Long names first, as written; short column names as whole words.
    const placeholders: Array<[string, string]> = [];
    // The general table's items and values share one column name, so both value columns are VALUE.
    const placeholder = (role: string) => (role === 'itemValue' ? 'VALUE' : role.toUpperCase());
    for (const [role, name] of Object.entries(threads)) placeholders.push([name, placeholder(role)]);
    for (const [role, name] of Object.entries(entries)) placeholders.push([name, placeholder(role)]);
    placeholders.sort(([a], [b]) => b.length - a.length);
    const normalize = (definition: string) =>
      placeholders.reduce(
        (text, [name, role]) =>
          text.replace(new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`, 'g'), role),
        definition,
      );
    const definition = async (fn: string) =>
      (
        await admin.query<{ def: string }>(
          `select pg_get_functiondef(p.oid) as def from pg_proc p
           where p.pronamespace = 'public'::regnamespace and p.proname = $1`,
          [fn],
        )
      ).rows.map((r) => r.def);
    const roles = Object.keys(threads).filter(
      (role) => role in SUPABASE_TABLES.conversation_threads.functions,
    );
    for (const role of [...roles, 'trigger']) {
      const [a] = await definition(threads[role as keyof typeof threads]);
      const [b] = await definition(entries[role as keyof typeof entries]);
      expect(a, role).toBeDefined();
      expect(normalize(a as string), role).toBe(normalize(b as string));
    }
  });

  it('default the tombstone retention to DEFAULT_TOMBSTONE_RETENTION_MS', async () => {
    for (const table of TABLES) {
      const fn = SUPABASE_TABLES[table].functions.cleanup;
      const { rows } = await admin.query<{ args: string }>(
        `select pg_get_function_arguments(p.oid) as args from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.proname = $1`,
        [fn],
      );
      const fallback = /p_tombstone_retention interval DEFAULT ([^,]+)/.exec(rows[0]?.args ?? '')?.[1];
      expect(fallback, fn).toBeDefined();
      const ms = await admin.query<{ ms: string }>(
        `select (extract(epoch from ${fallback}) * 1000)::bigint as ms`,
      );
      expect(Number(ms.rows[0]?.ms), fn).toBe(DEFAULT_TOMBSTONE_RETENTION_MS);
    }
  });

  it('keep the installer out of reach of the API roles', async () => {
    const { rows } = await admin.query<{ role: string; schema: boolean; run: boolean }>(
      `select r as role,
              has_schema_privilege(r, 'hybrid_cache_private', 'usage') as schema,
              has_function_privilege(r, p.oid, 'execute') as run
       from unnest(array['anon', 'authenticated', 'service_role']) r,
            pg_proc p
       where p.proname = 'install_table_functions'
         and p.pronamespace = 'hybrid_cache_private'::regnamespace
       order by 1`,
    );
    expect(rows).toEqual([
      { role: 'anon', schema: false, run: false },
      { role: 'authenticated', schema: false, run: false },
      { role: 'service_role', schema: false, run: false },
    ]);
  });

  it('SupabaseStorage rejects a log floor not below its value’s version without sending it', async () => {
    const storage = env.storage();
    const before = env.gateway.requests.length;
    const [result] = await storage.apply([putWithLogFloor('bad-floor', 5, 'x', 5)]);
    expect(result?.status === 'rejected' && result.error.message).toMatch(/invalid logFloor/);
    expect(env.gateway.requests.length).toBe(before);
  });

  it.each(TABLES)(
    'SupabaseStorage on %s sends one RPC per batch, values with their floors and items together',
    async (table) => {
      const storage = env.storage({ table });
      const k = `one-call:${table}`;
      const other = `one-call-other:${table}`;
      const base = Date.now() * LOGICAL_SLOTS;
      await storage.apply([put(k, base + 1, 'v'), appended(k, [item(base + 2, 'old')])]);
      const before = env.gateway.requests.length;
      const results = await storage.apply([
        putWithLogFloor(k, base + 10, 'again', base + 9),
        appended(k, [item(base + 11, 'new')]),
        put(other, base + 10, 'x'),
      ]);
      expect(env.gateway.requests.slice(before).map((r) => r.fn)).toEqual([
        SUPABASE_TABLES[table].functions.write,
      ]);
      expect(results.map((r) => r.status)).toEqual(['applied', 'applied', 'applied']);
      const entry = (await storage.getMany([k])).get(k);
      expect(entry?.items?.map((i) => JSON.parse(i.json))).toEqual(['new']);
    },
  );
});
