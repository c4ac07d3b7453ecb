import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ABANDON, HybridCache } from '../../../src/cache/hybrid-cache.js';
import { resolveOptions } from '../../../src/cache/options.js';
import { BackpressureError, createHybridCache, OutboxError } from '../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import { HealingOutbox } from '../../../src/sync/outbox/healing-outbox.js';
import { SqliteOutbox } from '../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger, faultyMemory, silentLogger, storedValue } from '../../helpers/cache.js';
import { pendingValue } from '../../helpers/outbox.js';
import { TestEnvironment } from '../../helpers/outbox-environment.js';

let dir: string;
let path: string;
let environment: TestEnvironment;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-heal-'));
  path = join(dir, 'data', 'outbox.db');
  environment = new TestEnvironment();
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A cache over a healing outbox at `path` whose maintenance tick the test runs; the store starts down unless told otherwise. */
function healingCache(
  logger: Logger = silentLogger,
  storage = faultyMemory(),
  storeDown = true,
  limits: { maxPendingBytes?: number; maxValueBytes?: number } = {},
) {
  if (storeDown) storage.goDown();
  const outbox = HealingOutbox.open({ path, durability: 'process', environment, logger });
  const cache = new HybridCache<unknown>(
    resolveOptions({
      storage,
      outbox: { durability: 'none' },
      flush: { batchSize: 50, intervalMs: 5, concurrency: 2 },
      retry: { baseMs: 10, maxMs: 50 },
      breaker: { failureThreshold: 1_000, halfOpenAfterMs: 10 },
      ...limits,
      logger,
    }),
    outbox,
  );
  cache.replayOutbox();
  cache.anchorClock();
  return { cache, storage };
}

type Cache = ReturnType<typeof healingCache>['cache'];
type Store = ReturnType<typeof healingCache>['storage'];

/** Resolves with the next `outboxHealed` event. */
const nextHeal = (cache: Cache) =>
  new Promise<{ writes: number }>((resolve) => cache.on('outboxHealed', resolve));

/** Writes 20 values, a delete and three appended items while the store is down. */
async function writeBacklog(cache: Cache): Promise<void> {
  for (let i = 0; i < 20; i++) await cache.set(`before-${i}`, i);
  await cache.set('gone', 'soon');
  await cache.delete('gone');
  await cache.set('log', 'head');
  for (const turn of ['a', 'b', 'c']) await cache.append('log', turn);
}

/**
 * What a kill -9 now leaves: the cache stops as a crash would, and a new one over the same outbox
 * (and the store, back up) replays it and flushes. Returns that new cache.
 */
async function crashAndRestart(cache: Cache, storage: Store) {
  await cache[ABANDON]();
  storage.comeUp();
  const next = await createHybridCache({
    storage,
    outbox: { path, durability: 'process' },
    logger: silentLogger,
  });
  const replayed = next.stats().pending;
  await next.flush({ timeoutMs: 5_000 });
  return { next, replayed };
}

/** Every write of `writeBacklog` reached the store after a restart. */
async function expectBacklogDelivered(
  next: Awaited<ReturnType<typeof crashAndRestart>>['next'],
  storage: Store,
) {
  for (let i = 0; i < 20; i++) expect(storedValue(storage, `before-${i}`)).toBe(i);
  expect(storedValue(storage, 'gone')).toBeNull();
  expect(await next.getWithItems('log')).toEqual({ value: 'head', items: ['a', 'b', 'c'] });
}

const removeOutbox = () => {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
};

describe('the outbox file lost while the store is down: a new one is written from memory', () => {
  it.each([
    ['deleted (with its -wal and -shm)', removeOutbox],
    ['its -wal alone deleted', () => unlinkSync(`${path}-wal`)],
  ])(
    '%s, noticed by the maintenance tick: writes go on, and a crash after loses nothing',
    async (_, damage) => {
      const log = capturingLogger();
      const { cache, storage } = healingCache(log.logger);
      await writeBacklog(cache);

      damage();
      const healed = nextHeal(cache);
      environment.tick();
      // 22 values (20, the delete, the log's head) and 3 items, each rebuilt from memory.
      expect(await healed).toEqual({ writes: 25 });
      expect(cache.stats()).toMatchObject({ outboxHeals: 1, outboxWritable: true });
      expect(log.at('warn').filter((l) => /new one was written/.test(l.msg))).toEqual([
        expect.objectContaining({ path, writes: 25, values: 22, items: 3 }),
      ]);
      await cache.set('after', 'heal');
      await cache.append('log', 'd');

      const { next, replayed } = await crashAndRestart(cache, storage);
      expect(replayed).toBe(23);
      expect(storedValue(storage, 'after')).toBe('heal');
      for (let i = 0; i < 20; i++) expect(storedValue(storage, `before-${i}`)).toBe(i);
      expect(await next.getWithItems('log')).toEqual({ value: 'head', items: ['a', 'b', 'c', 'd'] });
      await next.close();
    },
  );

  it('noticed by a write: the writes on their way in are not refused, and go into the new file', async () => {
    const { cache, storage } = healingCache();
    await writeBacklog(cache);

    removeOutbox();
    const healed = nextHeal(cache);
    const during = Array.from({ length: 30 }, (_, i) => cache.set(`during-${i}`, i));
    // One key written again and again, and items appended, in waves: some on their way into the
    // lost file, some arriving while the heal runs, some after. Their order must hold.
    let n = 0;
    for (const turn of ['d', 'e', 'f', 'g']) {
      during.push(cache.set('again', ++n), cache.append('log', turn), cache.set('again', ++n));
      await Promise.resolve();
    }
    await new Promise((resolve) => setImmediate(resolve));
    during.push(cache.set('again', 'last'));
    expect(await Promise.allSettled(during)).toEqual(
      during.map(() => ({ status: 'fulfilled', value: undefined })),
    );
    await healed;
    expect(cache.stats()).toMatchObject({ outboxHeals: 1, outboxWritable: true, pending: 53 });
    expect(await cache.get('again')).toBe('last');

    const { next } = await crashAndRestart(cache, storage);
    for (let i = 0; i < 20; i++) expect(storedValue(storage, `before-${i}`)).toBe(i);
    for (let i = 0; i < 30; i++) expect(storedValue(storage, `during-${i}`)).toBe(i);
    expect(storedValue(storage, 'again')).toBe('last');
    expect(await next.getWithItems('log')).toEqual({
      value: 'head',
      items: ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
    });
    await next.close();
  });

  it('replaced by another outbox file: memory is written into it, and its own rows are kept', async () => {
    const { cache, storage } = healingCache();
    await writeBacklog(cache);
    await cache.set('before-0', 'newer than theirs');

    // A restore from a backup: another outbox, with a pending row of its own.
    const other = join(dir, 'backup.db');
    const backup = SqliteOutbox.open({ path: other, durability: 'process' });
    const older = (Date.now() - 60_000) * LOGICAL_SLOTS;
    await backup.append(pendingValue('theirs', older));
    await backup.append(pendingValue('before-0', older + 1));
    await backup.close();
    renameSync(other, path);
    const healed = nextHeal(cache);
    environment.tick();
    await healed;

    const { next, replayed } = await crashAndRestart(cache, storage);
    // The 22 keys of memory's backlog, and theirs (their 'before-0' lost to ours, which is newer).
    expect(replayed).toBe(23);
    expect(storedValue(storage, 'theirs')).toBe(older);
    expect(storedValue(storage, 'before-0')).toBe('newer than theirs');
    expect(storedValue(storage, 'before-19')).toBe(19);
    await next.close();
  });

  it('after a heal that took writes on their way in, the backlog counts each of them once', async () => {
    const { cache } = healingCache(silentLogger, faultyMemory(), true, {
      maxPendingBytes: 40_000,
      maxValueBytes: 39_000,
    });
    await writeBacklog(cache);
    removeOutbox();
    const healed = nextHeal(cache);
    await Promise.all(Array.from({ length: 30 }, (_, i) => cache.set(`during-${i}`, 'x'.repeat(100))));
    await healed;
    const pendingBytes = cache.stats().pendingBytes;
    expect(pendingBytes).toBeGreaterThan(3_000);
    // The room left is exactly what memory holds unflushed: no parked write is counted twice or left over.
    const refused = await cache.set('big', 'y'.repeat(38_000)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BackpressureError);
    expect((refused as BackpressureError).pendingBytes).toBe(pendingBytes);
    await cache[ABANDON]();
  });

  it('closed right after the loss was noticed: the heal runs first, and what is pending stays in the new file', async () => {
    const { cache } = healingCache();
    await writeBacklog(cache);
    removeOutbox();
    environment.tick();
    expect(cache.stats().outboxWritable).toBe(false);

    expect(await cache.close({ timeoutMs: 10 })).toMatchObject({ pending: 22 });
    expect(cache.stats().outboxHeals).toBe(1);
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending()).toHaveLength(22);
    expect(reopened.pendingItems()).toHaveLength(3);
    await reopened.close();
  });

  it('carries the dead letters of the lost file into the new one', async () => {
    const { cache, storage } = healingCache();
    storage.comeUp();
    storage.rejectKey('poison');
    await cache.set('poison', 1);
    await cache.flush({ timeoutMs: 2_000 });
    expect(cache.deadLetters()).toHaveLength(1);

    removeOutbox();
    const healed = nextHeal(cache);
    environment.tick();
    await healed;
    expect(cache.deadLetters()).toEqual([expect.objectContaining({ key: 'poison', json: '1' })]);
    await cache.close();
  });
});

/** The rows of the outbox at `path` as a crash now would leave them (copied aside: the outbox holds the file). */
function rowsNow(): Array<{ key: string; unanchored: number }> {
  const copy = join(dir, 'copy.db');
  copyFileSync(path, copy);
  copyFileSync(`${path}-wal`, `${copy}-wal`);
  const db = new Database(copy, { readonly: true });
  try {
    return db.prepare('SELECT key, unanchored FROM pending ORDER BY key').all() as Array<{
      key: string;
      unanchored: number;
    }>;
  } finally {
    db.close();
  }
}

describe('the rows of the new file are those memory holds, flags included', () => {
  it('writes replayed from an earlier, anchored process stay anchored; writes made before this one anchored stay unanchored', async () => {
    const storage = faultyMemory();
    const first = healingCache(silentLogger, storage, false);
    await vi.waitFor(() => expect(first.cache.stats().clockAnchored).toBe(true));
    storage.goDown();
    await first.cache.set('anchored', 1);
    await first.cache[ABANDON]();

    // This process never reaches the store: its own writes wait unanchored.
    const { cache } = healingCache(silentLogger, storage);
    await cache.set('unanchored', 2);
    removeOutbox();
    const healed = nextHeal(cache);
    environment.tick();
    await healed;
    expect(rowsNow()).toEqual([
      { key: 'anchored', unanchored: 0 },
      { key: 'unanchored', unanchored: 1 },
    ]);

    const { next } = await crashAndRestart(cache, storage);
    expect(storedValue(storage, 'anchored')).toBe(1);
    expect(storedValue(storage, 'unanchored')).toBe(2);
    await next.close();
  });
});

describe('a heal that cannot be done refuses writes, and is tried again on the tick until it can', () => {
  it('a foreign file now at the path: left untouched, writes refused until it is gone', async () => {
    const { cache, storage } = healingCache();
    await writeBacklog(cache);
    removeOutbox();
    const foreign = new Database(path);
    foreign.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (7);');
    foreign.close();

    environment.tick();
    const refused = await refusal(cache);
    expect(refused.message).toMatch(/deleted or replaced/);
    expect(refused.message).toMatch(/another application's database/);
    expect(cache.stats()).toMatchObject({ outboxWritable: false, outboxHeals: 0 });
    expect(cache.outboxError?.message).toMatch(/another application's database/);
    const untouched = new Database(path, { readonly: true });
    expect(untouched.prepare('SELECT id FROM invoices').pluck().all()).toEqual([7]);
    untouched.close();

    // Another tick with the file still there: still refused, still nothing healed.
    environment.tick();
    await expect(cache.set('still', 1)).rejects.toBeInstanceOf(OutboxError);
    expect(cache.stats().outboxHeals).toBe(0);

    rmSync(path);
    const healed = nextHeal(cache);
    environment.tick();
    await healed;
    await cache.set('after', 'heal');
    const { next } = await crashAndRestart(cache, storage);
    await expectBacklogDelivered(next, storage);
    expect(storedValue(storage, 'after')).toBe('heal');
    expect(storedValue(storage, 'still')).toBeUndefined();
    await next.close();
  });

  it('a full disk: refused while there is no room, healed once room returns', async () => {
    const { cache, storage } = healingCache();
    await writeBacklog(cache);
    removeOutbox();
    environment.free = 4_096;

    environment.tick();
    const refused = await refusal(cache);
    expect(refused.message).toMatch(/disk is nearly full/);
    expect(cache.stats()).toMatchObject({ outboxWritable: false, outboxHeals: 0 });

    environment.free = 64 * 2 ** 30;
    const healed = nextHeal(cache);
    environment.tick();
    await healed;
    expect(cache.stats()).toMatchObject({ outboxWritable: true, outboxHeals: 1 });
    await cache.set('after', 'heal');
    const { next } = await crashAndRestart(cache, storage);
    await expectBacklogDelivered(next, storage);
    expect(storedValue(storage, 'after')).toBe('heal');
    await next.close();
  });

  it('its directory removed: not made again by the heal; healed once it is back', async () => {
    const { cache, storage } = healingCache();
    await writeBacklog(cache);
    rmSync(join(dir, 'data'), { recursive: true });

    environment.tick();
    const refused = await refusal(cache);
    expect(refused.message).toMatch(/no longer exists/);
    expect(cache.stats().outboxWritable).toBe(false);

    mkdirSync(join(dir, 'data'));
    const healed = nextHeal(cache);
    environment.tick();
    await healed;
    await cache.set('after', 'heal');
    const { next } = await crashAndRestart(cache, storage);
    await expectBacklogDelivered(next, storage);
    expect(storedValue(storage, 'after')).toBe('heal');
    await next.close();
  });
});

/** A write made once the heal has failed: refused, with the reason. It waits for the heal under way, if any. */
async function refusal(cache: Cache): Promise<OutboxError> {
  const error = await cache.set('refused', 1).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OutboxError);
  return error as OutboxError;
}
