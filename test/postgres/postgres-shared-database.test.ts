import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHybridCache } from '../../src/index.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { SQL_TABLES, type SqlTable } from '../../src/storage/sql-functions/table-functions.js';
import { appended, item, put, tombstone } from '../../src/testing/index.js';
import { connectionUrl } from '../support/plain-postgres.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

/** One database, two adapters: SupabaseStorage through the PostgREST gateway, PostgresStorage directly. */
let env: SupabaseEnv;
const direct: PostgresStorage[] = [];
beforeAll(async () => {
  env = await startSupabaseEnv();
});
afterAll(async () => {
  await Promise.all(direct.map((storage) => storage.close()));
  await env?.close();
});

function postgres(table: SqlTable): PostgresStorage {
  const storage = new PostgresStorage({ connectionString: connectionUrl(env.db.admin), table });
  direct.push(storage);
  return storage;
}

describe.each(Object.keys(SQL_TABLES) as SqlTable[])('one database serving both adapters: %s', (table) => {
  it('reads through one adapter what the other wrote, values and items alike', async () => {
    const [viaSupabase, viaPostgres] = [env.storage({ table }), postgres(table)];
    const [a, b] = [`a:${randomUUID()}`, `b:${randomUUID()}`];
    expect(await viaPostgres.apply([put(a, 10, { by: 'postgres' })])).toEqual([{ status: 'applied' }]);
    expect(
      await viaSupabase.apply([put(b, 20, { by: 'supabase' }), appended(a, [item(11, 'turn', 'i1')])]),
    ).toEqual([{ status: 'applied' }, { status: 'applied' }]);
    const [fromSupabase, fromPostgres] = await Promise.all([
      viaSupabase.getMany([a, b]),
      viaPostgres.getMany([a, b]),
    ]);
    expect(fromPostgres).toEqual(fromSupabase);
    expect(fromPostgres.get(a)).toMatchObject({ version: 10, json: '{"by": "postgres"}' });
    expect(fromPostgres.get(a)?.items?.map((i) => i.id)).toEqual(['i1']);
    expect(fromPostgres.get(b)).toMatchObject({ version: 20, json: '{"by": "supabase"}' });
  });

  it('keeps last-writer-wins across the two: an older write through either is stale', async () => {
    const [viaSupabase, viaPostgres] = [env.storage({ table }), postgres(table)];
    const k = `lww:${randomUUID()}`;
    await viaSupabase.apply([tombstone(k, 50)]);
    expect(await viaPostgres.apply([put(k, 40, 'late')])).toEqual([{ status: 'stale', storedVersion: 50 }]);
    await viaPostgres.apply([put(k, 60, 'newest')]);
    expect(await viaSupabase.apply([put(k, 55, 'older')])).toEqual([{ status: 'stale', storedVersion: 60 }]);
    expect((await viaSupabase.getMany([k])).get(k)).toMatchObject({ version: 60, json: '"newest"' });
    expect(await viaPostgres.highWaterMark()).toBe(await viaSupabase.highWaterMark());
  });
});

it('a cache flushing through PostgresStorage is read by a cache over SupabaseStorage', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pg-shared-'));
  const options = { logger: pino({ level: 'silent' }), flush: { intervalMs: 5 } };
  const writer = await createHybridCache<{ n: number }>({
    ...options,
    storage: postgres('conversation_threads'),
    outbox: { path: join(dir, 'writer.db') },
  });
  const reader = await createHybridCache<{ n: number }>({
    ...options,
    storage: env.storage(),
    outbox: { path: join(dir, 'reader.db') },
  });
  try {
    const k = `cache:${randomUUID()}`;
    await writer.set(k, { n: 1 });
    await writer.flush({ timeoutMs: 5_000 });
    expect(await reader.get(k)).toEqual({ n: 1 });
  } finally {
    await writer.close();
    await reader.close();
    await rm(dir, { recursive: true, force: true });
  }
});
