import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../../../src/storage/contract/errors.js';
import { LOGICAL_SLOTS } from '../../../../src/storage/contract/version.js';
import {
  SQLITE_APPLICATION_ID,
  SQLITE_SCHEMA_VERSION,
} from '../../../../src/storage/sqlite/sqlite-schema.js';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { putWithLogFloor } from '../../../../src/testing/writes.js';
import { put, tombstone } from '../../../helpers/writes.js';

const DAY_MS = 24 * 3_600_000;
const versionAt = (ms: number) => ms * LOGICAL_SLOTS;

let dir: string;
let path: string;
const opened: SqliteStorage[] = [];
const open = (options: Partial<ConstructorParameters<typeof SqliteStorage>[0]> = {}) => {
  const storage = new SqliteStorage({ path, ...options });
  opened.push(storage);
  return storage;
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sqlite-storage-'));
  path = join(dir, 'store.db');
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((storage) => storage.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('SqliteStorage schema', () => {
  it('marks a new file with the schema version and the store application id', () => {
    open();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    expect(db.pragma('application_id', { simple: true })).toBe(SQLITE_APPLICATION_ID);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('creates the directory of the store file', async () => {
    const nested = join(dir, 'a', 'b', 'store.db');
    const storage = open({ path: nested });
    await storage.apply([put('k', 1, 'v')]);
    expect(existsSync(nested)).toBe(true);
  });

  it('refuses a file written by a newer schema', () => {
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => open()).toThrow(StorageConfigurationError);
    expect(() => open()).toThrow(/newer than this version/);
  });

  it('refuses a database that holds other tables, and leaves it alone', () => {
    const db = new Database(path);
    db.exec('CREATE TABLE pending (key TEXT)');
    db.close();
    expect(() => open()).toThrow(/not a hybrid-cache store/);
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(0);
    check.close();
  });

  it('refuses a file that is not a database without overwriting it', () => {
    writeFileSync(path, 'definitely not sqlite '.repeat(100));
    expect(() => open()).toThrow(StorageConfigurationError);
    expect(readFileSync(path, 'utf8')).toBe('definitely not sqlite '.repeat(100));
  });
});

describe('SqliteStorage persistence', () => {
  it('keeps values, tombstones and expiries across close and reopen', async () => {
    const expiresAt = Date.now() + DAY_MS;
    const first = open();
    await first.apply([put('live', 3, { kept: true }, expiresAt), put('gone', 1, 'x'), tombstone('gone', 2)]);
    await first.close();

    const second = open();
    const found = await second.getMany(['live', 'gone']);
    expect(found.get('live')).toEqual({ version: 3, json: '{"kept":true}', expiresAt });
    expect(found.get('gone')).toEqual({ version: 2, json: null, expiresAt: null });
    expect((await second.apply([put('gone', 1, 'resurrected')]))[0]?.status).toBe('stale');
  });

  it('lets two connections share one file, each seeing the other’s writes', async () => {
    const a = open();
    const b = open();
    await a.apply([put('shared', 1, 'from a')]);
    expect((await b.getMany(['shared'])).get('shared')?.json).toBe('"from a"');
    expect((await b.apply([put('shared', 2, 'from b')]))[0]?.status).toBe('applied');
    expect((await a.getMany(['shared'])).get('shared')?.json).toBe('"from b"');
  });
});

describe('SqliteStorage reads and writes', () => {
  it('reads more keys than one lookup chunk holds', async () => {
    const storage = open({ path: ':memory:' });
    const keys = Array.from({ length: 1_300 }, (_, i) => `k${i}`);
    await storage.apply(keys.filter((_, i) => i % 2 === 0).map((k, i) => put(k, i + 1, i)));
    const found = await storage.getMany([...keys, 'absent']);
    expect(found.size).toBe(650);
    expect(found.get('k1298')?.json).toBe('649');
    expect(found.has('k1299')).toBe(false);
  });

  it('reports the stored version when a write is stale', async () => {
    const storage = open({ path: ':memory:' });
    await storage.apply([put('k', 10, 'ten')]);
    expect(await storage.apply([put('k', 4, 'four')])).toEqual([{ status: 'stale', storedVersion: 10 }]);
  });

  it('rejects only the item whose values the store cannot hold, and applies the rest', async () => {
    const storage = open({ path: ':memory:' });
    const results = await storage.apply([put('ok-1', 1, 'a'), put('bad', 1.5, 'b'), put('ok-2', 2, 'c')]);
    expect(results.map((r) => r.status)).toEqual(['applied', 'rejected', 'applied']);
    const rejected = results[1];
    expect(rejected?.status === 'rejected' && rejected.error).toBeInstanceOf(PermanentStorageError);
    const found = await storage.getMany(['ok-1', 'bad', 'ok-2']);
    expect([...found.keys()].sort()).toEqual(['ok-1', 'ok-2']);
  });

  it('rejects a value whose log floor is not below its version, and leaves its key and items alone', async () => {
    const storage = open({ path: ':memory:' });
    await storage.apply([put('k', 1, 'v')]);
    const results = await storage.apply([putWithLogFloor('k', 5, 'w', 5), put('ok', 1, 'a')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'applied']);
    const rejected = results[0];
    expect(rejected?.status === 'rejected' && rejected.error.message).toMatch(/invalid logFloor/);
    expect((await storage.getMany(['k'])).get('k')?.version).toBe(1);
  });

  it('honours an already-aborted signal without touching the data', async () => {
    const storage = open({ path: ':memory:' });
    const controller = new AbortController();
    controller.abort(new Error('caller gave up'));
    await expect(storage.apply([put('k', 1, 'v')], { signal: controller.signal })).rejects.toThrow(
      'caller gave up',
    );
    await expect(storage.getMany(['k'], { signal: controller.signal })).rejects.toThrow('caller gave up');
    expect((await storage.getMany(['k'])).size).toBe(0);
  });
});

describe('SqliteStorage cleanup', () => {
  it('removes expired values and tombstones past retention, and keeps the rest', async () => {
    const storage = open({ path: ':memory:' });
    const now = Date.now();
    await storage.apply([
      put('live', versionAt(now - 30 * DAY_MS), 'old but live'),
      put('live-ttl', versionAt(now), 'fresh', now + DAY_MS),
      put('expired', versionAt(now), 'stale', now - 1),
      tombstone('old-tombstone', versionAt(now - 8 * DAY_MS)),
      tombstone('recent-tombstone', versionAt(now - 6 * DAY_MS)),
    ]);
    expect(await storage.cleanup()).toBe(2);
    const found = await storage.getMany(['live', 'live-ttl', 'expired', 'old-tombstone', 'recent-tombstone']);
    expect([...found.keys()].sort()).toEqual(['live', 'live-ttl', 'recent-tombstone']);
    expect(await storage.cleanup()).toBe(0);
  });

  it('uses the configured tombstone retention', async () => {
    const storage = open({ path: ':memory:', tombstoneRetentionMs: 60_000 });
    const now = Date.now();
    await storage.apply([
      tombstone('two-minutes-old', versionAt(now - 120_000)),
      tombstone('ten-seconds-old', versionAt(now - 10_000)),
    ]);
    expect(await storage.cleanup()).toBe(1);
    expect([...(await storage.getMany(['two-minutes-old', 'ten-seconds-old'])).keys()]).toEqual([
      'ten-seconds-old',
    ]);
  });

  it('lets a call override the configured retention, for that call only', async () => {
    const storage = open({ path: ':memory:', tombstoneRetentionMs: 60_000 });
    const now = Date.now();
    await storage.apply([tombstone('ten-seconds-old', versionAt(now - 10_000))]);
    expect(await storage.cleanup()).toBe(0);
    expect(await storage.cleanup({ tombstoneRetentionMs: 5_000 })).toBe(1);
    await expect(storage.cleanup({ tombstoneRetentionMs: -1 })).rejects.toThrow(RangeError);
  });

  it('removes a tombstone minted exactly at the retention cutoff and keeps one a millisecond younger', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const now = Date.UTC(2030, 0, 1);
      vi.setSystemTime(now);
      const storage = open({ path: ':memory:', tombstoneRetentionMs: 60_000 });
      await storage.apply([
        tombstone('at-cutoff', versionAt(now - 60_000) + LOGICAL_SLOTS - 1),
        tombstone('just-younger', versionAt(now - 59_999)),
      ]);
      expect(await storage.cleanup()).toBe(1);
      expect([...(await storage.getMany(['at-cutoff', 'just-younger'])).keys()]).toEqual(['just-younger']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('SqliteStorage failures', () => {
  it('fails transiently while another connection holds the write lock, then succeeds', async () => {
    const storage = open({ busyTimeoutMs: 20 });
    await storage.apply([put('k', 1, 'v1')]);
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const failure = await storage.apply([put('k', 2, 'v2')]).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(TransientStorageError);
      expect((failure as Error).message).toMatch(/SQLITE_BUSY/);
      expect((await storage.getMany(['k'])).get('k')?.version).toBe(1);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    expect((await storage.apply([put('k', 2, 'v2')]))[0]?.status).toBe('applied');
  });

  it('surfaces a disk write error (file size limit) as transient, rolls the batch back, and recovers', () => {
    // A child process with RLIMIT_FSIZE: writing past it fails with EFBIG -> SQLITE_IOERR_WRITE.
    const moduleUrl = pathToFileURL(
      join(import.meta.dirname, '../../../../src/storage/sqlite/sqlite-storage.ts'),
    ).href;
    const script = `
      process.on('SIGXFSZ', () => {});
      const { SqliteStorage } = await import(${JSON.stringify(moduleUrl)});
      const storage = new SqliteStorage({ path: ${JSON.stringify(path)} });
      const write = (key, json) => ({ key, version: 1, json, expiresAt: null });
      const out = {};
      try {
        await storage.apply([write('small-in-failed-batch', '"a"'), write('big', JSON.stringify('x'.repeat(8_000_000)))]);
        out.big = 'applied';
      } catch (error) {
        out.big = { name: error.name, code: error.cause?.code };
      }
      out.after = (await storage.apply([write('small', '"ok"')]))[0].status;
      out.readable = [...(await storage.getMany(['small-in-failed-batch', 'big', 'small'])).keys()];
      await storage.close();
      console.log(JSON.stringify(out));
    `;
    const child = spawnSync(
      'sh',
      [
        '-c',
        'ulimit -f 4096 && exec "$0" "$@"',
        process.execPath,
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        script,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(child.stderr).toBe('');
    expect(JSON.parse(child.stdout)).toEqual({
      big: { name: 'TransientStorageError', code: 'SQLITE_IOERR_WRITE' },
      after: 'applied',
      readable: ['small'],
    });
  });

  it('refuses to write into a store file that was deleted while open', async () => {
    const storage = open();
    await storage.apply([put('k', 1, 'v')]);
    await rm(dir, { recursive: true, force: true });
    await expect(storage.apply([put('k', 2, 'v2')])).rejects.toThrow(StorageConfigurationError);
    await expect(storage.getMany(['k'])).rejects.toThrow(/deleted while open/);
  });

  it('fails transiently once closed, so the cache keeps the writes instead of dead-lettering them', async () => {
    const storage = open({ path: ':memory:' });
    await storage.close();
    await expect(storage.apply([put('k', 1, 'v')])).rejects.toThrow(TransientStorageError);
    await expect(storage.getMany(['k'])).rejects.toThrow(/closed/);
    await storage.close();
  });
});

describe('SqliteStorage given the outbox file', () => {
  it('says it is the outbox and leaves it untouched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-store-outbox-'));
    const path = join(dir, 'outbox.db');
    try {
      SqliteOutbox.open({ path, durability: 'process' }).close();
      expect(() => new SqliteStorage({ path })).toThrow(
        /is a hybrid-cache outbox file, not a store; point the store at its own file/,
      );
      const check = new Database(path, { readonly: true });
      expect(
        check.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'cache_entries'").pluck().get(),
      ).toBe(0);
      check.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
