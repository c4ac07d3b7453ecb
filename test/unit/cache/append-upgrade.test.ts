import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHybridCache, SqliteStorage } from '../../../src/index.js';
import { OUTBOX_SCHEMA_VERSION } from '../../../src/sync/outbox/outbox-schema.js';
import { SqliteOutbox } from '../../../src/sync/outbox/sqlite-outbox.js';
import { silentLogger } from '../../helpers/cache.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'append-upgrade-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('files written before appended items existed', () => {
  it('a store of schema 2 keeps its values and takes appends after the upgrade', async () => {
    const path = join(dir, 'store.db');
    const raw = new Database(path);
    // Schema 2 as the previous release wrote it.
    raw.exec(`
      CREATE TABLE cache_entries (
        key TEXT PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL CHECK (typeof(version) = 'integer' AND version >= 0),
        json TEXT CHECK (json IS NULL OR typeof(json) = 'text'),
        expires_at INTEGER CHECK (expires_at IS NULL OR typeof(expires_at) = 'integer')
      );
      CREATE INDEX cache_entries_version ON cache_entries (version);
      INSERT INTO cache_entries VALUES ('old', 7, '{"whole":"thread"}', NULL), ('gone', 8, NULL, NULL);
      PRAGMA application_id = ${0x68637374};
      PRAGMA user_version = 2;`);
    raw.close();
    const storage = new SqliteStorage({ path });
    const found = await storage.getMany(['old', 'gone']);
    expect(found.get('old')).toEqual({ version: 7, json: '{"whole":"thread"}', expiresAt: null });
    const cache = await createHybridCache({ storage, outbox: { durability: 'none' }, logger: silentLogger });
    await cache.append('old', 'turn');
    await cache.append('gone', 'late');
    await cache.flush();
    expect((await storage.getMany(['old'])).get('old')?.items?.map((i) => i.json)).toEqual(['"turn"']);
    // The delete written before the upgrade still governs: the key stays absent.
    expect((await storage.getMany(['gone'])).get('gone')).toEqual({
      version: 8,
      json: null,
      expiresAt: null,
    });
    await cache.close();
    await storage.close();
  });

  it('an outbox of schema 2 replays its pending value writes and then records appends', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append({
      key: 'thread',
      version: 99,
      json: '{"turns":[1,2]}',
      expiresAt: null,
      queuedAt: 1,
    });
    outbox.close();
    const raw = new Database(path);
    raw.exec(
      'DROP TABLE pending_items; DROP TABLE reserved_versions; ALTER TABLE dead_letters DROP COLUMN item_id; ALTER TABLE pending DROP COLUMN ends_log_at; ALTER TABLE pending DROP COLUMN first_version; PRAGMA user_version = 2;',
    );
    raw.close();

    const storage = new SqliteStorage({ path: ':memory:' });
    const cache = await createHybridCache({
      storage,
      outbox: { path, durability: 'process' },
      logger: silentLogger,
    });
    expect(await cache.get('thread')).toEqual({ turns: [1, 2] });
    await cache.append('thread', 3);
    await cache.flush();
    expect(await cache.getWithItems('thread')).toEqual({ value: { turns: [1, 2] }, items: [3] });
    await cache.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(OUTBOX_SCHEMA_VERSION);
    check.close();
  });
});
