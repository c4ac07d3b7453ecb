import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  SQLITE_APPLICATION_ID,
  SQLITE_SCHEMA_VERSION,
  STORE_SCHEMA,
} from '../../../../src/storage/sqlite/sqlite-schema.js';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { appended, item } from '../../../../src/testing/writes.js';
import { put } from '../../../helpers/writes.js';

let dir: string;
let path: string;
const opened: SqliteStorage[] = [];
const open = () => {
  const storage = new SqliteStorage({ path });
  opened.push(storage);
  return storage;
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sqlite-feed-origin-'));
  path = join(dir, 'store.db');
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((storage) => storage.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('SqliteStorage change feed origins', () => {
  it("leaves a connection's own changes out of its reads, moves past them, and shows them to the others", async () => {
    const [mine, theirs] = [open(), open()];
    const head = await mine.changes(null);
    const x = item(30, 'x');
    await mine.apply([put('a', 10, 'a'), put('b', 20, 'b')], { origin: 'mine' });
    await mine.apply([appended('a', [x])], { origin: 'mine' });
    await theirs.apply([put('c', 40, 'c')], { origin: 'theirs' });

    const own = await mine.changes(head.cursor, { skipOrigin: 'mine' });
    expect(own).toMatchObject({ changes: [{ key: 'c', version: 40 }], more: false, reset: false });
    const all = await theirs.changes(head.cursor, { skipOrigin: 'theirs' });
    expect(all.changes).toEqual([
      { key: 'a', version: 10 },
      { key: 'b', version: 20 },
      { key: 'a', version: 30, itemId: x.id },
    ]);
    // The same cursor for both: skipped changes are passed, not left for later.
    expect(own.cursor).toBe(all.cursor);
    expect((await mine.changes(own.cursor)).changes).toEqual([]);
  });

  it('answers a page of only own changes with none, an advanced cursor, and more as before', async () => {
    const storage = open();
    const head = await storage.changes(null);
    await storage.apply([put('a', 1, 1), put('b', 2, 2), put('c', 3, 3)], { origin: 'own' });
    const first = await storage.changes(head.cursor, { limit: 2, skipOrigin: 'own' });
    expect(first).toMatchObject({ changes: [], more: true, reset: false });
    expect(first.cursor).not.toBe(head.cursor);
    const second = await storage.changes(first.cursor, { limit: 2, skipOrigin: 'own' });
    expect(second).toMatchObject({ changes: [], more: false, reset: false });
    await storage.apply([put('d', 4, 4)]);
    expect((await storage.changes(second.cursor, { skipOrigin: 'own' })).changes).toEqual([
      { key: 'd', version: 4 },
    ]);
  });

  it('upgrades a file of the previous schema in place: its changes, epoch and cursors stay, with no origin', async () => {
    // A store file as the previous version created it: schema 4, its epoch, changes without origin.
    const raw = new Database(path);
    raw.exec(STORE_SCHEMA.steps.slice(0, 4).join(';\n'));
    raw.exec(`INSERT INTO cache_meta (name, value) VALUES ('epoch', 'old-epoch');
      INSERT INTO cache_entries (key, version, json, expires_at) VALUES ('old', 7, '"kept"', NULL);
      INSERT INTO cache_changes (key, version, item_id, changed_at) VALUES ('old', 6, NULL, 1), ('old', 7, NULL, 2);
      PRAGMA application_id = ${SQLITE_APPLICATION_ID};
      PRAGMA user_version = 4;`);
    raw.close();
    expect(SQLITE_SCHEMA_VERSION).toBe(5);

    const storage = open();
    expect((await storage.getMany(['old'])).get('old')).toMatchObject({ version: 7, json: '"kept"' });
    // A cursor a follower took before the upgrade is still served; the old changes have no
    // origin, so no reader skips them.
    const before = await storage.changes('old-epoch:1:6', { skipOrigin: 'anyone' });
    expect(before).toMatchObject({ epoch: 'old-epoch', reset: false, changes: [{ key: 'old', version: 7 }] });
    await storage.apply([put('old', 8, 'new')], { origin: 'writer' });
    expect((await storage.changes(before.cursor, { skipOrigin: 'writer' })).changes).toEqual([]);
    expect((await storage.changes(before.cursor, { skipOrigin: 'other' })).changes).toEqual([
      { key: 'old', version: 8 },
    ]);
    await storage.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    expect(check.prepare('SELECT origin FROM cache_changes ORDER BY id').pluck().all()).toEqual([
      null,
      null,
      'writer',
    ]);
    check.close();
  });
});
