import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHybridCache, MemoryStorage, SqliteStorage } from '../../../src/index.js';
import { SQLITE_APPLICATION_ID, SQLITE_SCHEMA_VERSION } from '../../../src/storage/sqlite/sqlite-schema.js';
import { SqliteOutbox } from '../../../src/sync/outbox/sqlite-outbox.js';
import { silentLogger } from '../../helpers/cache.js';
import { put, tombstone } from '../../helpers/writes.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-hwm-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('Storage.highWaterMark on a store of its own', () => {
  for (const [name, open] of [
    ['MemoryStorage', () => new MemoryStorage()],
    ['SqliteStorage', () => new SqliteStorage({ path: join(dir, 'store.db') })],
  ] as const) {
    it(`${name}: 0 when empty, then exactly the highest version held, a tombstone's included`, async () => {
      const storage = open();
      expect(await storage.highWaterMark()).toBe(0);
      await storage.apply([put('a', 7, 'x'), tombstone('b', 9), put('c', 8, 'y')]);
      expect(await storage.highWaterMark()).toBe(9);
      await storage.apply([put('a', 3, 'older')]);
      expect(await storage.highWaterMark()).toBe(9);
      await storage.close();
    });
  }

  it('SqliteStorage answers from the version index, not a table scan', async () => {
    const path = join(dir, 'store.db');
    await new SqliteStorage({ path }).close();
    const db = new Database(path, { readonly: true });
    const plan = db
      .prepare('EXPLAIN QUERY PLAN SELECT coalesce(max(version), 0) FROM cache_entries')
      .all() as Array<{ detail: string }>;
    db.close();
    expect(plan.map((row) => row.detail).join('\n')).toMatch(/USING COVERING INDEX cache_entries_version/);
  });

  it('SqliteStorage upgrades a schema-1 store in place: rows kept, version index added', async () => {
    const path = join(dir, 'store.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE cache_entries (key TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL,
               json TEXT, expires_at INTEGER);
             INSERT INTO cache_entries VALUES ('kept', 42, '"v"', NULL), ('gone', 43, NULL, NULL);`);
    db.pragma(`application_id = ${SQLITE_APPLICATION_ID}`);
    db.pragma('user_version = 1');
    db.close();

    const storage = new SqliteStorage({ path });
    expect(await storage.highWaterMark()).toBe(43);
    expect((await storage.getMany(['kept'])).get('kept')).toEqual({
      version: 42,
      json: '"v"',
      expiresAt: null,
    });
    await storage.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    const indexes = check.prepare("SELECT name FROM sqlite_schema WHERE type = 'index'").pluck().all();
    check.close();
    expect(indexes).toContain('cache_entries_version');
  });
});

describe('outbox rows and the unanchored mark', () => {
  it('keeps a row written unanchored marked so across a reopen, and clears it when the clock is anchored', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    const row = { json: '1', expiresAt: null, queuedAt: 1 };
    await outbox.append({ key: 'a', version: 5, unanchored: true, ...row });
    await outbox.append({ key: 'b', version: 6, ...row });
    outbox.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((p) => [p.key, p.version, p.unanchored ?? false])).toEqual([
      ['a', 5, true],
      ['b', 6, false],
    ]);
    reopened.anchor([{ key: 'a', from: 5, to: 100 }], 100);
    expect(reopened.pending().map((p) => [p.key, p.version, p.unanchored ?? false])).toEqual([
      ['a', 100, false],
      ['b', 6, false],
    ]);
    expect(reopened.highestVersion()).toBe(100);
    reopened.close();

    const again = SqliteOutbox.open({ path, durability: 'process' });
    expect(again.pending().map((p) => [p.key, p.version, p.unanchored ?? false])).toEqual([
      ['a', 100, false],
      ['b', 6, false],
    ]);
    expect(again.highestVersion()).toBe(100);
    again.close();
  });

  it('a new version for a version the row no longer holds changes nothing in that row', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    const row = { json: '1', expiresAt: null, queuedAt: 1 };
    await outbox.append({ key: 'a', version: 5, unanchored: true, ...row });
    await outbox.append({ key: 'b', version: 6, unanchored: true, ...row });
    // 'b' is no longer at 5: only 'a' moves, and both rows are anchored.
    outbox.anchor(
      [
        { key: 'a', from: 5, to: 100 },
        { key: 'b', from: 5, to: 200 },
      ],
      200,
    );
    expect(outbox.pending().map((p) => [p.key, p.version, p.unanchored ?? false])).toEqual([
      ['a', 100, false],
      ['b', 6, false],
    ]);
    outbox.close();
  });

  it('upgrades a schema-1 outbox: its rows replay with their own versions', async () => {
    const path = join(dir, 'outbox.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE pending (key TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, json TEXT,
               expires_at INTEGER, queued_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('highest_version', 77);
             CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, key TEXT NOT NULL, version INTEGER NOT NULL,
               json TEXT, expires_at INTEGER, error TEXT NOT NULL, failed_at INTEGER NOT NULL);
             INSERT INTO pending VALUES ('old', 77, '"queued before the upgrade"', NULL, 1);
             PRAGMA user_version = 1;`);
    db.close();

    const storage = new MemoryStorage();
    const cache = await createHybridCache<string>({
      storage,
      outbox: { path, durability: 'process' },
      logger: silentLogger,
    });
    await cache.flush();
    expect(storage.peek('old')).toEqual({
      version: 77,
      json: '"queued before the upgrade"',
      expiresAt: null,
    });
    await cache.close();
  });
});
