import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CorruptValueError,
  createHybridCache,
  type HybridCacheOptions,
  MemoryStorage,
  OutboxError,
  SqliteStorage,
} from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger, memoryCache, silentLogger, storedValue } from '../../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-wrong-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const open = (path: string, extra: Partial<HybridCacheOptions> = {}) =>
  createHybridCache({
    storage: new MemoryStorage(),
    outbox: { path, durability: 'process' },
    logger: silentLogger,
    ...extra,
  });

/** Opens the cache twice: both must fail with an OutboxError naming the path, the second not blaming a lock. */
async function expectRefusedTwice(path: string, reason: RegExp): Promise<OutboxError> {
  const first = await open(path).catch((e: unknown) => e);
  expect(first).toBeInstanceOf(OutboxError);
  expect((first as OutboxError).message).toContain(path);
  expect((first as OutboxError).message).toMatch(reason);
  // Nothing of the failed open may survive it: a retry in the same process sees the same reason.
  const second = await open(path).catch((e: unknown) => e);
  expect(second).toBeInstanceOf(OutboxError);
  expect((second as OutboxError).message).toMatch(reason);
  expect((second as OutboxError).message).not.toMatch(/in use by another process/);
  return first as OutboxError;
}

/** Fills an outbox with enough rows to span many pages, and returns where it lives. */
async function outboxWithRows(rows: number): Promise<string> {
  const path = join(dir, 'outbox.db');
  const outbox = SqliteOutbox.open({ path, durability: 'process' });
  await Promise.all(
    Array.from({ length: rows }, (_, i) =>
      outbox.append({
        key: `key-${i}`,
        version: i + 1,
        json: JSON.stringify({ i, text: 'x'.repeat(100) }),
        expiresAt: null,
        queuedAt: i,
      }),
    ),
  );
  outbox.close();
  return path;
}

describe('an outbox file that cannot be used is refused with an OutboxError, and nothing stays open', () => {
  it('a damaged data page (found while replaying) names the path and what to do', async () => {
    const path = await outboxWithRows(400);
    const bytes = readFileSync(path);
    const pageSize = bytes.readUInt16BE(16);
    expect(bytes.length / pageSize).toBeGreaterThan(8);
    // Page 1 holds the schema and stays intact, so the file opens; a leaf of `pending` does not.
    bytes.fill(0xab, pageSize * 6, pageSize * 7);
    writeFileSync(path, bytes);
    const error = await expectRefusedTwice(path, /damaged.*move it aside/);
    expect((error.cause as { code?: string }).code).toMatch(/^SQLITE_CORRUPT/);
    expect(readFileSync(path)).toEqual(bytes);
  });

  it('the store file is refused untouched, whether or not the store has it open', async () => {
    const storePath = join(dir, 'store.db');
    const store = new SqliteStorage({ path: storePath });
    await store.apply([{ key: 'k', version: 1, json: '1', expiresAt: null }]);
    await expectRefusedTwice(storePath, /hybrid-cache store file, not an outbox.*left untouched/);
    expect((await store.getMany(['k'])).get('k')?.json).toBe('1');
    await store.close();
    const before = readFileSync(storePath);
    await expectRefusedTwice(storePath, /hybrid-cache store file, not an outbox.*left untouched/);
    expect(readFileSync(storePath)).toEqual(before);
  });

  it("another application's database with a `pending` table is refused untouched", async () => {
    const path = join(dir, 'theirs.db');
    const theirs = new Database(path);
    theirs.exec(
      "CREATE TABLE pending (id INTEGER PRIMARY KEY, task TEXT); INSERT INTO pending (task) VALUES ('x')",
    );
    theirs.close();
    const before = readFileSync(path);
    await expectRefusedTwice(path, /another application's database.*left untouched/);
    expect(readFileSync(path)).toEqual(before);
  });

  it("another application's database with no table in common is refused untouched, not given our tables", async () => {
    const path = join(dir, 'notes.db');
    const theirs = new Database(path);
    theirs.exec('CREATE TABLE notes (body TEXT)');
    theirs.close();
    const before = readFileSync(path);
    await expectRefusedTwice(path, /another application's database/);
    expect(readFileSync(path)).toEqual(before);
    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all()).toEqual([
      'notes',
    ]);
    check.close();
  });

  it('a database stamped with another application id is refused', async () => {
    const path = join(dir, 'stamped.db');
    const theirs = new Database(path);
    theirs.pragma('application_id = 1234');
    theirs.close();
    await expectRefusedTwice(path, /application_id 1234/);
  });

  it('an empty new file becomes an outbox, and an outbox from before application ids keeps its rows', async () => {
    const empty = join(dir, 'empty.db');
    writeFileSync(empty, '');
    const cache = await open(empty);
    await cache.set('a', 1);
    await cache.close();

    const legacy = await outboxWithRows(3);
    const raw = new Database(legacy);
    // The first released schema: no application id, no `unanchored` column, user_version 1.
    raw.exec(
      'DROP TABLE pending_items; DROP TABLE reserved_versions; ALTER TABLE dead_letters DROP COLUMN item_id; ALTER TABLE pending DROP COLUMN ends_log_at; ALTER TABLE pending DROP COLUMN first_version; ' +
        'ALTER TABLE pending DROP COLUMN unanchored; PRAGMA user_version = 1; PRAGMA application_id = 0;',
    );
    raw.close();
    const { cache: reopened, storage } = await memoryCache({
      outbox: { path: legacy, durability: 'process' },
    });
    expect(reopened.stats().pending).toBe(3);
    await reopened.flush();
    expect(storedValue(storage, 'key-2')).toEqual({ i: 2, text: 'x'.repeat(100) });
    await reopened.close();
  });
});

describe('a value whose JSON is damaged', () => {
  it('in the outbox: dead-lettered at replay with its reason, never sent to the store', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    const row = (key: string, json: string) => ({ key, version: 5, json, expiresAt: null, queuedAt: 1 });
    await Promise.all([outbox.append(row('good', '"fine"')), outbox.append(row('bad', '"fine"'))]);
    outbox.close();
    const raw = new Database(path);
    raw.prepare("UPDATE pending SET json = '{\"torn' WHERE key = 'bad'").run();
    raw.close();

    const log = capturingLogger();
    const { cache, storage } = await memoryCache({
      outbox: { path, durability: 'process' },
      logger: log.logger,
    });
    expect(cache.stats()).toMatchObject({ pending: 1, deadLetters: 1 });
    expect(cache.deadLetters()).toEqual([
      expect.objectContaining({
        key: 'bad',
        version: 5,
        json: '{"torn',
        error: expect.stringMatching(/damaged/),
      }),
    ]);
    expect(log.at('warn').some((l) => l.key === 'bad' && /dead-lettered/.test(l.msg))).toBe(true);
    await cache.flush();
    expect(storedValue(storage, 'good')).toBe('fine');
    expect(storage.inner.peek('bad')).toBeUndefined();
    expect(await cache.get('bad')).toBeUndefined();
    expect(cache.retryDeadLetters()).toBe(0); // stays parked rather than reaching the store as is
    expect(cache.deadLetters()).toHaveLength(1);
    await cache.close();
  });

  it('in the store: get rejects with CorruptValueError each time, and a repaired value is read at once', async () => {
    const { cache, storage } = await memoryCache();
    await storage.apply([{ key: 'k', version: 1, json: '{"torn', expiresAt: null }]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await cache.get('k').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptValueError);
      expect(error).toMatchObject({ code: 'ERR_CORRUPT_VALUE', key: 'k' });
    }
    await storage.apply([{ key: 'k', version: 2, json: '"repaired"', expiresAt: null }]);
    expect(await cache.get('k')).toBe('repaired');
    await cache.close();
  });

  it('in the store, larger than memory keeps: still a CorruptValueError, not a SyntaxError', async () => {
    const { cache, storage } = await memoryCache({ maxBytes: 2_000, maxValueBytes: 1_000 });
    await storage.apply([{ key: 'big', version: 1, json: `"${'x'.repeat(5_000)}`, expiresAt: null }]);
    await expect(cache.get('big')).rejects.toBeInstanceOf(CorruptValueError);
    await cache.close();
  });
});
