import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TransientStorageError } from '../../../../src/storage/contract/errors.js';
import { LOGICAL_SLOTS } from '../../../../src/storage/contract/version.js';
import { MemoryStorage } from '../../../../src/storage/memory/memory-storage.js';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { appended, item, put } from '../../../../src/testing/writes.js';

/**
 * The embedded stores' calls as a caller makes them: options without a signal, a closed store,
 * the feed's naming of appends, cleanup's count and the feed's pruning, the file's mode.
 */
let dir: string;
type Store = MemoryStorage | SqliteStorage;
const opened: SqliteStorage[] = [];
const openSqlite = (options: { feedRetentionMs?: number } = {}) => {
  const store = new SqliteStorage({ path: join(dir, 'store.db'), ...options });
  opened.push(store);
  return store;
};
const base = Date.now() * LOGICAL_SLOTS;
const version = (n: number) => base + n;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-sqlite-calls-'));
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(opened.splice(0).map((store) => store.close()));
  rmSync(dir, { recursive: true, force: true });
});

const adapters: Array<[string, (options?: { feedRetentionMs?: number }) => Store]> = [
  ['MemoryStorage', (options) => new MemoryStorage(options)],
  ['SqliteStorage', openSqlite],
];

describe.each(adapters)('%s', (_name, make) => {
  it('takes options that carry no signal', async () => {
    const store = make();
    expect(await store.apply([put('a', version(1), 'v')], {})).toEqual([{ status: 'applied' }]);
    expect((await store.getMany(['a'], {})).get('a')?.json).toBe('"v"');
    expect(await store.highWaterMark({})).toBe(version(1));
    expect((await store.changes(null, {})).reset).toBe(false);
    expect(await store.cleanup({})).toBe(0);
  });

  it('names a value in the feed by key and version only, an append by its newest item stored', async () => {
    const store = make();
    const head = await store.changes(null);
    expect(await store.changes(head.cursor)).toMatchObject({ reset: false, changes: [] });
    const v = version(10);
    await store.apply([put('value', v, 'x')]);
    await store.apply([appended('k', [item(v + 1, 'a', 'a'), item(v + 3, 'c', 'c'), item(v + 2, 'b', 'b')])]);
    expect((await store.changes(head.cursor)).changes).toStrictEqual([
      { key: 'value', version: v },
      { key: 'k', version: v + 3, itemId: 'c' },
    ]);
  });

  it('counts an expired entry and its items in what cleanup removed, and prunes the feed it outlived', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: 1_000_000 });
    const store = make({ feedRetentionMs: 0 });
    const head = await store.changes(null);
    const v = version(20);
    await store.apply([put('k', v, 'x', Date.now() + 1_000)]);
    await store.apply([appended('k', [item(v + 1, 'a', 'a'), item(v + 2, 'b', 'b')], Date.now() + 1_000)]);
    await store.apply([put('other', v + 3, 'y')]);
    vi.setSystemTime(Date.now() + 2_000);
    expect(await store.cleanup()).toBe(3);
    expect((await store.getMany(['k'])).size).toBe(0);
    // Every change but the newest is gone: a cursor from before them can no longer be served.
    expect((await store.changes(head.cursor)).reset).toBe(true);
  });

  it('refuses a feed retention that is not a duration, naming it', () => {
    expect(() => make({ feedRetentionMs: -1 })).toThrow(/feedRetentionMs/);
  });
});

describe('SqliteStorage calls', () => {
  it('fail transiently once the store is closed, saying so', async () => {
    const storage = openSqlite();
    await storage.close();
    const calls = [
      storage.apply([put('a', version(1), 'v')]),
      storage.getMany(['a']),
      storage.highWaterMark(),
      storage.changes(null),
      storage.cleanup(),
    ];
    for (const call of calls) {
      const error = await call.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransientStorageError);
      expect(String((error as Error).message)).toMatch(/store\.db is closed/);
    }
  });

  it('keeps its file in WAL mode, for readers in other processes', () => {
    openSqlite();
    const other = new Database(join(dir, 'store.db'), { readonly: true });
    try {
      expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      other.close();
    }
  });
});
