import { copyFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FeedPage } from '../../../../src/storage/contract/types.js';
import {
  SQLITE_APPLICATION_ID,
  SQLITE_SCHEMA_VERSION,
  STORE_SCHEMA,
} from '../../../../src/storage/sqlite/sqlite-schema.js';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { appended, item } from '../../../../src/testing/writes.js';
import { put, tombstone } from '../../../helpers/writes.js';

let dir: string;
let path: string;
const opened: SqliteStorage[] = [];
const open = (options: Partial<ConstructorParameters<typeof SqliteStorage>[0]> = {}) => {
  const storage = new SqliteStorage({ path, ...options });
  opened.push(storage);
  return storage;
};

/** Every change after `cursor`, in pages of `limit`. */
async function drain(storage: SqliteStorage, cursor: string, limit?: number) {
  const pages: FeedPage[] = [];
  for (;;) {
    const page = await storage.changes(cursor, limit === undefined ? undefined : { limit });
    pages.push(page);
    cursor = page.cursor;
    if (!page.more) return { changes: pages.flatMap((p) => p.changes), cursor, pages };
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sqlite-feed-'));
  path = join(dir, 'store.db');
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(opened.splice(0).map((storage) => storage.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('SqliteStorage change feed across connections', () => {
  it('shows each connection’s writes in the other’s feed, once each, in commit order', async () => {
    const a = open();
    const b = open();
    const head = await b.changes(null);
    expect(head).toEqual({ epoch: head.epoch, cursor: head.cursor, changes: [], reset: false, more: false });
    expect((await a.changes(null)).epoch).toBe(head.epoch);
    // b polls the quiet head (its answer comes from the snapshot), then a commits.
    expect(await b.changes(head.cursor)).toEqual(head);
    await a.apply([put('x', 10, 'from a')]);
    await b.apply([put('y', 20, 'from b'), tombstone('x', 30)]);
    const x = item(40, 'turn');
    await a.apply([appended('y', [x])]);
    const expected = [
      { key: 'x', version: 10 },
      { key: 'y', version: 20 },
      { key: 'x', version: 30 },
      { key: 'y', version: 40, itemId: x.id },
    ];
    const seenByB = await drain(b, head.cursor);
    const seenByA = await drain(a, head.cursor);
    expect(seenByB.changes).toEqual(expected);
    expect(seenByA.changes).toEqual(expected);
    expect(seenByA.cursor).toBe(seenByB.cursor);
    // A re-sent append and a stale write add nothing, seen from either side.
    await a.apply([appended('y', [x]), put('x', 5, 'older')]);
    expect((await drain(b, seenByB.cursor)).changes).toEqual([]);
    expect((await drain(a, seenByA.cursor)).changes).toEqual([]);
  });

  it('answers a poll at the head from its snapshot exactly as a full read of the file does', async () => {
    const follower = open();
    const writer = open();
    let cursor = (await follower.changes(null)).cursor;
    const steps: Array<() => Promise<unknown>> = [
      async () => {},
      () => writer.apply([put('a', 1, 'other connection')]),
      async () => {},
      () => follower.apply([put('b', 2, 'own connection')]),
      () => follower.apply([put('b', 1, 'own, stale')]),
      () => writer.apply([put('a', 3, 'other again'), put('c', 4, 'and another')]),
      () => follower.cleanup(),
    ];
    for (const step of steps) {
      await step();
      const page = await follower.changes(cursor);
      // A connection that has never read the feed holds no snapshot: it reads the file.
      const fresh = new SqliteStorage({ path });
      const full = await fresh.changes(cursor);
      await fresh.close();
      expect(page).toEqual(full);
      expect(page.reset).toBe(false);
      cursor = page.cursor;
    }
    expect((await drain(follower, (await follower.changes(null)).cursor)).changes).toEqual([]);
  });

  it('answers a poll at a quiet head without reading the log, and reads it once anyone commits', async () => {
    const follower = open();
    const writer = open();
    const transactions = vi.spyOn(Database.prototype, 'transaction');
    const head = (await follower.changes(null)).cursor;
    const readsFor = async (cursor: string) => {
      transactions.mockClear();
      const page = await follower.changes(cursor);
      return { page, reads: transactions.mock.calls.length };
    };
    expect((await readsFor(head)).reads).toBe(0);
    await writer.apply([put('a', 1, 'other connection')]);
    const afterOther = await readsFor(head);
    expect(afterOther).toMatchObject({ reads: 1, page: { changes: [{ key: 'a', version: 1 }] } });
    expect((await readsFor(afterOther.page.cursor)).reads).toBe(0);
    await follower.apply([put('b', 2, 'own connection')]);
    const afterOwn = await readsFor(afterOther.page.cursor);
    expect(afterOwn).toMatchObject({ reads: 1, page: { changes: [{ key: 'b', version: 2 }] } });
    expect((await readsFor(afterOwn.page.cursor)).reads).toBe(0);
    // A cursor behind the head is always read from the log.
    expect((await readsFor(head)).reads).toBe(1);
    transactions.mockRestore();
  });
});

describe('SqliteStorage change feed epochs', () => {
  it('keeps its epoch and serves its cursors across close and reopen', async () => {
    const first = open();
    await first.apply([put('k', 1, 'one')]);
    const { epoch, cursor } = await first.changes(null);
    await first.close();
    const again = open();
    await again.apply([put('k', 2, 'two')]);
    const page = await again.changes(cursor);
    expect(page.epoch).toBe(epoch);
    expect(page.changes).toEqual([{ key: 'k', version: 2 }]);
  });

  it('resets a follower whose cursor is ahead of a store restored from an older copy', async () => {
    const original = open();
    await original.apply([put('k', 1, 'backed up')]);
    await original.close(); // the last connection to close checkpoints the WAL into the file
    copyFileSync(path, join(dir, 'backup.db'));
    const live = open();
    await live.apply([put('k', 2, 'after the backup'), put('j', 3, 'also after')]);
    const follower = await live.changes(null);
    await live.close();

    copyFileSync(join(dir, 'backup.db'), path);
    const restored = open();
    const page = await restored.changes(follower.cursor);
    // Same file history, so the same epoch; but it lost changes the follower had seen.
    expect(page.epoch).toBe(follower.epoch);
    expect(page).toMatchObject({ reset: true, changes: [], more: false });
    await restored.apply([put('k', 4, 'restored timeline')]);
    expect((await restored.changes(page.cursor)).changes).toEqual([{ key: 'k', version: 4 }]);
  });

  it('resets a follower whose cursor id a restored store has since reused for another write', async () => {
    const original = open();
    await original.apply([put('k', 1, 'backed up')]);
    await original.close();
    copyFileSync(path, join(dir, 'backup.db'));
    const live = open();
    await live.apply([put('k', 2, 'lost with the restore')]);
    const follower = await live.changes(null);
    await live.close();

    copyFileSync(join(dir, 'backup.db'), path);
    const restored = open();
    // The restored store writes up to and past the follower's id before it polls again.
    await restored.apply([put('other', 5, 'reuses the id')]);
    await restored.apply([put('more', 6, 'and beyond')]);
    expect(await restored.changes(follower.cursor)).toMatchObject({ reset: true, changes: [] });
  });

  it('gives a file replaced at the path another epoch, so an old cursor is reset', async () => {
    const first = open();
    await first.apply([put('k', 1, 'first file')]);
    const old = await first.changes(null);
    await first.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    const second = open();
    await second.apply([put('k', 1, 'second file')]);
    const page = await second.changes(old.cursor);
    expect(page.epoch).not.toBe(old.epoch);
    expect(page).toMatchObject({ reset: true, changes: [], more: false });
    expect((await second.changes(null)).cursor).toBe(page.cursor);
  });

  it('gives each in-memory store its own epoch', async () => {
    const one = await open({ path: ':memory:' }).changes(null);
    const two = open({ path: ':memory:' });
    expect((await two.changes(one.cursor)).reset).toBe(true);
  });
});

describe('SqliteStorage change feed retention', () => {
  it('prunes changes older than feedRetentionMs on cleanup, keeping the newest; a cursor before them resets', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2026, 0, 1);
    vi.setSystemTime(start);
    const storage = open({ path: ':memory:' });
    const beforeAll = (await storage.changes(null)).cursor;
    await storage.apply([put('a', 1, 'a')]);
    const afterA = (await storage.changes(null)).cursor;
    vi.setSystemTime(start + 30 * 60_000);
    await storage.apply([put('b', 2, 'b')]);
    const afterB = (await storage.changes(null)).cursor;
    await storage.apply([put('c', 3, 'c')]);

    // One hour (the default) after `a`, to the millisecond: `a` goes, and nothing else.
    vi.setSystemTime(start + 3_600_000);
    expect(await storage.cleanup()).toBe(0); // pruned changes are not counted
    expect(await storage.changes(beforeAll)).toMatchObject({ reset: true, changes: [] });
    expect((await storage.changes(afterA)).changes).toEqual([
      { key: 'b', version: 2 },
      { key: 'c', version: 3 },
    ]);

    // Long after everything: all but the newest change go; a follower at the head is still served.
    // A cursor at the boundary is still served: every change after it is held.
    vi.setSystemTime(start + 10 * 3_600_000);
    const head = (await storage.changes(null)).cursor;
    await storage.cleanup();
    expect((await storage.changes(afterA)).reset).toBe(true);
    expect((await storage.changes(afterB)).changes).toEqual([{ key: 'c', version: 3 }]);
    expect(await storage.changes(head)).toMatchObject({ reset: false, changes: [], cursor: head });
    await storage.apply([put('d', 4, 'd')]);
    expect((await storage.changes(head)).changes).toEqual([{ key: 'd', version: 4 }]);
  });

  it('prunes everything recorded by now with feedRetentionMs 0, and refuses a bad retention or page size', async () => {
    const storage = open({ feedRetentionMs: 0 });
    const head = (await storage.changes(null)).cursor;
    await storage.apply([put('a', 1, 'a'), put('b', 2, 'b'), put('c', 3, 'c')]);
    const { cursor } = await storage.changes(head, { limit: 1 });
    await storage.cleanup();
    expect((await storage.changes(head)).reset).toBe(true);
    expect((await storage.changes(cursor)).reset).toBe(true);
    // Another connection sees the same boundary (it is in the file, not in memory).
    expect((await open().changes(cursor)).reset).toBe(true);
    // The newest change is kept, so a follower at the head goes on.
    const { cursor: atHead } = await storage.changes(null);
    await storage.cleanup();
    expect((await storage.changes(atHead)).reset).toBe(false);
    expect(() => open({ feedRetentionMs: -1 })).toThrow(RangeError);
    await expect(storage.changes(head, { limit: 0 })).rejects.toThrow(RangeError);
  });
});

describe('SqliteStorage change feed on a store of the previous schema', () => {
  it('upgrades a schema 3 file in place: its values stay, and the feed starts empty and follows writes', async () => {
    const raw = new Database(path);
    raw.exec(STORE_SCHEMA.steps.slice(0, 3).join(';\n'));
    raw.exec(`INSERT INTO cache_entries (key, version, json, expires_at) VALUES ('old', 7, '"kept"', NULL);
      PRAGMA application_id = ${SQLITE_APPLICATION_ID};
      PRAGMA user_version = 3;`);
    raw.close();
    expect(SQLITE_SCHEMA_VERSION).toBe(5);

    const storage = open();
    expect((await storage.getMany(['old'])).get('old')).toEqual({
      version: 7,
      json: '"kept"',
      expiresAt: null,
    });
    const head = await storage.changes(null);
    expect(head.epoch).toMatch(/^[0-9a-f-]{36}$/);
    await storage.apply([put('old', 8, 'new')]);
    expect((await storage.changes(head.cursor)).changes).toEqual([{ key: 'old', version: 8 }]);
    await storage.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    check.close();
    expect((await open().changes(null)).epoch).toBe(head.epoch);
  });
});
