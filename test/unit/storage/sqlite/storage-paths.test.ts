import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../../../src/storage/contract/errors.js';
import { DEFAULT_TOMBSTONE_RETENTION_MS } from '../../../../src/storage/contract/tombstone-retention.js';
import type { VersionedWrite } from '../../../../src/storage/contract/types.js';
import { LOGICAL_SLOTS, versionTimeMs } from '../../../../src/storage/contract/version.js';
import { MemoryStorage } from '../../../../src/storage/memory/memory-storage.js';
import { SQLITE_SCHEMA_VERSION } from '../../../../src/storage/sqlite/sqlite-schema.js';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { put, tombstone } from '../../../helpers/writes.js';

const versionAt = (ms: number) => ms * LOGICAL_SLOTS;

let dir: string;
let path: string;
const opened: SqliteStorage[] = [];
const open = (options: Partial<ConstructorParameters<typeof SqliteStorage>[0]> = {}) => {
  const storage = new SqliteStorage({ path, ...options });
  opened.push(storage);
  return storage;
};
const failureOf = async (promise: Promise<unknown>): Promise<Error> => {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(Error);
  return outcome as Error;
};
const sqliteCode = (error: Error) => (error.cause as { code?: unknown } | undefined)?.code;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'storage-paths-'));
  path = join(dir, 'store.db');
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(opened.splice(0).map((storage) => storage.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('SqliteStorage options', () => {
  it.each([
    ['tombstoneRetentionMs', -1],
    ['tombstoneRetentionMs', Number.NaN],
    ['busyTimeoutMs', Number.POSITIVE_INFINITY],
    ['busyTimeoutMs', -5],
  ])('refuses %s = %s with a RangeError naming the option and the value', (name, value) => {
    let thrown: unknown;
    try {
      open({ path: ':memory:', [name]: value });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(RangeError);
    expect((thrown as Error).message).toContain(name);
    expect((thrown as Error).message).toContain(String(value));
  });

  it('accepts zero for both durations', async () => {
    const storage = open({ path: ':memory:', tombstoneRetentionMs: 0, busyTimeoutMs: 0 });
    expect(await storage.apply([put('k', 1, 'v')])).toEqual([{ status: 'applied' }]);
  });

  it('accepts synchronous = full', async () => {
    const storage = open({ synchronous: 'full' });
    expect(await storage.apply([put('k', 1, 'v')])).toEqual([{ status: 'applied' }]);
    expect((await storage.getMany(['k'])).get('k')?.json).toBe('"v"');
  });

  it('treats an empty path as a throwaway in-memory store, named as such in its errors', async () => {
    const storage = open({ path: '' });
    await storage.apply([put('k', 1, 'v')]);
    expect((await storage.getMany(['k'])).get('k')?.version).toBe(1);
    await storage.close();
    const failure = await failureOf(storage.getMany(['k']));
    expect(failure).toBeInstanceOf(TransientStorageError);
    expect(failure.message).toContain('in memory');
  });

  it('names a :memory: store as in memory rather than as a file path', async () => {
    const storage = open({ path: ':memory:' });
    await storage.close();
    const failure = await failureOf(storage.apply([put('k', 1, 'v')]));
    expect(failure.message).toContain('in memory');
    expect(failure.message).not.toContain(process.cwd());
  });

  it('accepts call options without a signal', async () => {
    const storage = open({ path: ':memory:' });
    expect(await storage.apply([put('k', 1, 'v')], {})).toEqual([{ status: 'applied' }]);
    expect((await storage.getMany(['k'], {})).size).toBe(1);
    expect(await storage.cleanup({})).toBe(0);
  });
});

describe('SqliteStorage open failures', () => {
  it('reports an unusable path as a configuration error naming the path', () => {
    writeFileSync(join(dir, 'plain-file'), 'x');
    const target = join(dir, 'plain-file', 'store.db');
    let thrown: unknown;
    try {
      open({ path: target });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StorageConfigurationError);
    expect((thrown as Error).message).toContain(target);
    expect((thrown as Error).cause).toBeInstanceOf(Error);
  });

  it('explains a file that is not a database: names it, says what to check, keeps the SQLite cause', () => {
    writeFileSync(path, 'not a database '.repeat(100));
    let thrown: unknown;
    try {
      open();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StorageConfigurationError);
    const message = (thrown as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(/permissions/);
    expect(message).toMatch(/hybrid-cache store/);
    expect(sqliteCode(thrown as Error)).toBe('SQLITE_NOTADB');
  });

  it('refuses, and leaves alone, a database that belongs to another application', () => {
    const db = new Database(path);
    db.pragma('application_id = 42');
    db.close();
    let thrown: unknown;
    try {
      open();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StorageConfigurationError);
    expect((thrown as Error).message).toMatch(/another application/);
    expect((thrown as Error).message).toContain('42');
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(0);
    expect(check.pragma('application_id', { simple: true })).toBe(42);
    check.close();
  });

  it('tells the operator to upgrade when the file has a newer schema', () => {
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => open()).toThrow(/upgrade hybrid-cache/);
  });

  it('tells the operator to give the store its own file when the file holds other tables', () => {
    const db = new Database(path);
    db.exec('CREATE TABLE pending (key TEXT)');
    db.close();
    expect(() => open()).toThrow(/its own file/);
  });
});

describe('SqliteStorage reads and writes', () => {
  it('reads more keys in one call than SQLite can bind in one statement', async () => {
    const storage = open({ path: ':memory:' });
    const keys = Array.from({ length: 20_000 }, (_, i) => `k${i}`);
    await storage.apply(keys.map((k) => put(k, 1, k)));
    const found = await storage.getMany(keys);
    expect(found.size).toBe(20_000);
    expect(found.get('k19999')?.json).toBe('"k19999"');
  });

  it('rejects a write whose key is not a string, naming the key, and applies the rest', async () => {
    const storage = open({ path: ':memory:' });
    const bad = { key: 4242, version: 1, json: '"x"', expiresAt: null } as unknown as VersionedWrite;
    const results = await storage.apply([put('ok', 1, 'a'), bad]);
    expect(results.map((r) => r.status)).toEqual(['applied', 'rejected']);
    const rejected = results[1];
    const error = rejected?.status === 'rejected' ? rejected.error : undefined;
    expect(error).toBeInstanceOf(PermanentStorageError);
    expect(error?.message).toContain('4242');
    expect(error?.message).toMatch(/string/);
    expect((await storage.getMany(['4242', 'ok'])).size).toBe(1);
  });

  it('rejects a write the schema refuses, naming the key and keeping the SQLite cause', async () => {
    const storage = open({ path: ':memory:' });
    const [result] = await storage.apply([put('fractional', 1.5, 'b')]);
    const error = result?.status === 'rejected' ? result.error : undefined;
    expect(error).toBeInstanceOf(PermanentStorageError);
    expect(error?.name).toBe('PermanentStorageError');
    expect(error?.message).toContain('fractional');
    expect(error && sqliteCode(error)).toMatch(/^SQLITE_CONSTRAINT/);
  });

  it('fails the whole batch as a configuration problem when the table was dropped, instead of rejecting items', async () => {
    const storage = open();
    await storage.apply([put('k', 1, 'v')]);
    const other = new Database(path);
    other.exec('DROP TABLE cache_entries');
    other.close();

    const write = await failureOf(storage.apply([put('a', 1, 'x'), put('b', 1, 'y')]));
    expect(write).toBeInstanceOf(StorageConfigurationError);
    expect(write.name).toBe('StorageConfigurationError');
    expect(write.message).toContain(path);
    expect(write.message).toMatch(/write/);
    expect(write.message).toMatch(/writable/);
    expect(sqliteCode(write)).toBe('SQLITE_ERROR');

    const read = await failureOf(storage.getMany(['k']));
    expect(read).toBeInstanceOf(StorageConfigurationError);
    expect(read.message).toMatch(/read/);
    expect(sqliteCode(read)).toBe('SQLITE_ERROR');

    const cleanup = await failureOf(storage.cleanup());
    expect(cleanup).toBeInstanceOf(StorageConfigurationError);
    expect(cleanup.message).toMatch(/cleanup/);
  });

  it('names the action and keeps the SQLite cause when another connection holds the lock', async () => {
    const storage = open({ busyTimeoutMs: 10 });
    await storage.apply([put('k', 1, 'v')]);
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const write = await failureOf(storage.apply([put('k', 2, 'v2')]));
      expect(write).toBeInstanceOf(TransientStorageError);
      expect(write.name).toBe('TransientStorageError');
      expect(write.message).toMatch(/write/);
      expect(sqliteCode(write)).toBe('SQLITE_BUSY');

      const cleanup = await failureOf(storage.cleanup());
      expect(cleanup).toBeInstanceOf(TransientStorageError);
      expect(cleanup.message).toMatch(/cleanup/);
      expect(sqliteCode(cleanup)).toBe('SQLITE_BUSY');
    } finally {
      other.exec('COMMIT');
      other.close();
    }
  });

  it('reports a failure that is not a SQLite error as transient, naming store and action, with its cause', async () => {
    const storage = open({ path: ':memory:' });
    // A key better-sqlite3 cannot bind fails before SQLite sees it (a RangeError).
    const failure = await failureOf(storage.getMany([{}] as unknown as string[]));
    expect(failure).toBeInstanceOf(TransientStorageError);
    expect(failure.message).toContain('in memory');
    expect(failure.message).toMatch(/read/);
    expect(failure.cause).toBeInstanceOf(RangeError);
  });

  it('fails cleanup transiently once closed', async () => {
    const storage = open({ path: ':memory:' });
    await storage.close();
    await expect(storage.cleanup()).rejects.toThrow(TransientStorageError);
  });

  /** Puts `replacement` at the path as a restore does: the old file's WAL and index go with it (SQLite would apply them to the new file). */
  const replaceFile = (replacement: string) => {
    for (const suffix of ['-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    renameSync(replacement, path);
  };

  it('opens the file put at its path in place of the open one: reads and writes it, and its feed says it is another store', async () => {
    const storage = open();
    await storage.apply([put('k', 1, 'v'), put('gone', 1, 'v')]);
    const { cursor } = await storage.changes(null);
    const replacement = join(dir, 'replacement.db');
    const other = new SqliteStorage({ path: replacement });
    await other.apply([put('k', 3, 'replacement')]);
    await other.close();
    replaceFile(replacement);

    expect(await storage.getMany(['k', 'gone'])).toEqual(
      new Map([['k', { version: 3, json: '"replacement"', expiresAt: null }]]),
    );
    expect(await storage.apply([put('k', 4, 'v4')])).toEqual([{ status: 'applied' }]);
    const feed = await storage.changes(cursor);
    expect(feed.reset).toBe(true);
    expect(feed.epoch).not.toBe(cursor.split(':')[0]);
    // Written into the file now at the path, not the one unlinked from it.
    const reopened = open();
    expect((await reopened.getMany(['k'])).get('k')?.json).toBe('"v4"');
  });

  it('refuses a file put at its path that is not a store', async () => {
    const storage = open();
    await storage.apply([put('k', 1, 'v')]);
    const replacement = join(dir, 'replacement.db');
    writeFileSync(replacement, 'not a database, just text that is long enough to be read as a header');
    replaceFile(replacement);
    expect(await failureOf(storage.getMany(['k']))).toBeInstanceOf(StorageConfigurationError);
    await expect(storage.apply([put('k', 2, 'v2')])).rejects.toThrow(StorageConfigurationError);
  });
});

describe('versionTimeMs', () => {
  it('recovers the wall-clock millisecond a version was minted at', () => {
    const ms = Date.UTC(2030, 0, 1);
    expect(versionTimeMs(versionAt(ms))).toBe(ms);
    expect(versionTimeMs(versionAt(ms) + LOGICAL_SLOTS - 1)).toBe(ms);
  });
});

describe('MemoryStorage', () => {
  const now = Date.UTC(2030, 0, 1);
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(now);
  });

  it('reads an entry expiring exactly now as absent', async () => {
    const storage = new MemoryStorage();
    await storage.apply([put('edge', 1, 'v', now), put('later', 1, 'v', now + 1)]);
    expect([...(await storage.getMany(['edge', 'later'])).keys()]).toEqual(['later']);
  });

  it('cleanup removes expired values and tombstones at or past retention, and counts them', async () => {
    const storage = new MemoryStorage();
    await storage.apply([
      put('expired-now', 1, 'x', now),
      put('expires-later', 1, 'x', now + 1),
      put('old-no-expiry', versionAt(now - 1_000_000), 'x'),
      tombstone('at-cutoff', versionAt(now - 60_000) + LOGICAL_SLOTS - 1),
      tombstone('just-younger', versionAt(now - 59_999)),
    ]);
    expect(await storage.cleanup({ tombstoneRetentionMs: 60_000 })).toBe(2);
    expect([...storage.dump().keys()].sort()).toEqual(['expires-later', 'just-younger', 'old-no-expiry']);
    expect(await storage.cleanup({ tombstoneRetentionMs: 60_000 })).toBe(0);
    expect(await storage.cleanup({ tombstoneRetentionMs: 0 })).toBe(1);
    expect([...storage.dump().keys()].sort()).toEqual(['expires-later', 'old-no-expiry']);
  });

  it('cleanup keeps tombstones for the default retention of 7 days, like every adapter', async () => {
    const storage = new MemoryStorage();
    const retention = DEFAULT_TOMBSTONE_RETENTION_MS;
    expect(retention).toBe(7 * 24 * 3_600_000);
    await storage.apply([
      tombstone('older', versionAt(now - retention)),
      tombstone('younger', versionAt(now - retention + 1)),
    ]);
    expect(await storage.cleanup()).toBe(1);
    expect([...storage.dump().keys()]).toEqual(['younger']);
  });

  it('dump returns copies that do not alter the store', async () => {
    const storage = new MemoryStorage();
    await storage.apply([put('k', 1, 'v')]);
    const dumped = storage.dump();
    expect(dumped.get('k')).toEqual({ version: 1, json: '"v"', expiresAt: null });
    const entry = dumped.get('k');
    if (entry) entry.version = 99;
    expect(storage.peek('k')?.version).toBe(1);
  });
});
