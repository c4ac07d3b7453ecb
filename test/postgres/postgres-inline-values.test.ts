import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentStorageError } from '../../src/storage/contract/errors.js';
import type { VersionedWrite } from '../../src/storage/contract/types.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { SQL_TABLES, type SqlTable } from '../../src/storage/sql-functions/table-functions.js';
import { appended, item, put, tombstone } from '../../src/testing/writes.js';
import { migratedDatabase } from '../support/plain-postgres.js';
import type { PostgresConnectionInfo } from '../support/postgres.js';

/**
 * PostgresStorage splices each value's JSON text into the batch unparsed (the inline write
 * function of *_inline_values.sql). A damaged value that is still JSON must not write anything
 * it did not name, and the log-floor trigger runs only for the rows whose floor it can change.
 */
const TABLES = Object.keys(SQL_TABLES) as SqlTable[];
const base = Date.now() * LOGICAL_SLOTS;
let n = 0;
const version = () => base + ++n;

let info: PostgresConnectionInfo;
let pool: pg.Pool;
const stores: PostgresStorage[] = [];
beforeAll(async () => {
  info = await migratedDatabase();
  pool = new pg.Pool({ ...info, max: 2 });
  pool.on('error', () => {});
});
afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await pool?.end();
});

describe.each(TABLES)('inline values on %s', (table) => {
  const storage = () => {
    const store = new PostgresStorage({ pool, table, doorbell: false });
    stores.push(store);
    return store;
  };
  const { keyField } = SQL_TABLES[table];

  it('stores values whose text needs escaping exactly as given', async () => {
    const store = storage();
    const values = [
      { quote: 'say "hi"', slash: 'a\\b', lines: 'x\ny\tz', unicode: 'żółw 🐢', nested: [1, { a: null }] },
      'a "string" value',
      null,
      12.5,
      { nul: 'a\u0000b' },
    ];
    const keys = values.map((_, i) => `inline:${table}:exact:${i}`);
    const results = await store.apply([
      ...values.map((value, i) => put(keys[i] as string, version(), value)),
      appended(keys[0] as string, [item(version(), { says: '"quoted"\\' }, 'turn-1')]),
    ]);
    expect(results.map((r) => r.status)).toEqual(values.map(() => 'applied').concat('applied'));
    const read = await store.getMany(keys);
    values.forEach((value, i) => {
      expect(JSON.parse(read.get(keys[i] as string)?.json as string)).toEqual(value);
    });
    expect(read.get(keys[0] as string)?.items?.map((i) => JSON.parse(i.json))).toEqual([
      { says: '"quoted"\\' },
    ]);
  });

  it('refuses a batch whose damaged value adds a write of another key, and writes none of it', async () => {
    const store = storage();
    const [good, damaged, other] = ['good', 'damaged', 'other'].map((k) => `inline:${table}:${k}:${n}`);
    const sneaked = `1},{${JSON.stringify(keyField)}:${JSON.stringify(other)},"version":${version()},"value":2`;
    const write: VersionedWrite = {
      key: damaged as string,
      version: version(),
      json: sneaked,
      expiresAt: null,
    };
    const failure = await store.apply([put(good as string, version(), 'kept?'), write]).catch((e) => e);
    expect(failure).toBeInstanceOf(PermanentStorageError);
    expect(String(failure.message)).toMatch(/arrived with 3 values/);
    expect([...(await store.getMany([good, damaged, other] as string[])).keys()]).toEqual([]);
  });

  it('refuses a batch whose damaged item adds an item or an append', async () => {
    const store = storage();
    const key = `inline:${table}:items:${n}`;
    const extraItem = `1},{"value":2,"id":"sneaked","version":${version()}`;
    const extraAppend = `1}]},{"items":[{"value":2,"id":"x","version":${version()}}],${JSON.stringify(keyField)}:"elsewhere","version":${version()},"expires_at_ms":null,"appended_at_ms":${Date.now()}},{"items":[{"value":3`;
    for (const json of [extraItem, extraAppend]) {
      const damaged = appended(key, [{ ...item(version(), 0, 'real'), json }]);
      const failure = await store.apply([damaged]).catch((e) => e);
      expect(failure).toBeInstanceOf(PermanentStorageError);
      expect(String(failure.message)).toMatch(/a batch arrived with 0 values, \d+ appends and \d+ items; the client sent \{0,1,1\}/);
    }
    expect((await store.getMany([key, 'elsewhere'])).size).toBe(0);
  });

  it('calls the log-floor trigger only for rows whose floor it can change', async () => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      // Counts calls of PL/pgSQL functions within this transaction (superuser setting).
      await client.query("set local track_functions = 'pl'");
      const calls = async () => {
        const { rows } = await client.query<{ calls: string | null }>(
          'select pg_stat_get_xact_function_calls($1::regproc) as calls',
          [`public.${table}_tombstone_items`],
        );
        return Number(rows[0]?.calls ?? 0);
      };
      const writes = (list: ReturnType<typeof put>[]) =>
        client.query(`select * from public.${SQL_TABLES[table].functions.writeInline}($1::jsonb, '[]', $2)`, [
          JSON.stringify(
            list.map((w) => ({
              [keyField]: w.key,
              version: w.version,
              value: JSON.parse(w.json ?? 'null'),
              expires_at_ms: null,
            })),
          ),
          [list.length, 0, 0],
        ]);
      const keys = Array.from({ length: 10 }, (_, i) => `inline:${table}:trigger:${n}:${i}`);
      await writes(keys.map((key) => put(key, version(), { i: 1 })));
      await writes(keys.map((key) => put(key, version(), { i: 2 })));
      expect(await calls()).toBe(0);
      // A tombstone over a row raises its floor: before the proposed insert and before the update
      // (to set the floor), and after the update (to end the items below it).
      await client.query(
        `select * from public.${SQL_TABLES[table].functions.writeInline}($1::jsonb, '[]', '{1,0,0}')`,
        [JSON.stringify([{ [keyField]: keys[0], version: version(), expires_at_ms: null }])],
      );
      expect(await calls()).toBe(3);
    } finally {
      await client.query('rollback');
      client.release();
    }
    // The tombstone's floor did its work through the triggers: items below it are gone.
    const store = storage();
    const key = `inline:${table}:floor:${n}`;
    await store.apply([put(key, version(), 'v'), appended(key, [item(version(), 'old', 'old')])]);
    await store.apply([tombstone(key, version())]);
    await store.apply([put(key, version(), 'again')]);
    expect((await store.getMany([key])).get(key)?.items ?? []).toEqual([]);
  });
});
