import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import type { PendingWrite } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { memoryCache, storedValue } from '../../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const write = (key: string, version: number, value: unknown = version): PendingWrite => ({
  key,
  version,
  json: JSON.stringify(value),
  expiresAt: null,
  queuedAt: Date.now(),
});

describe('SqliteOutbox', () => {
  it('keeps one pending row per key, the latest version, across reopen', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    // Durable: the cache waits for its appends before it acknowledges a write.
    expect(outbox.durable).toBe(true);
    await outbox.append(write('a', 1));
    await outbox.append(write('a', 3));
    await outbox.append(write('a', 2)); // late, older: ignored
    await outbox.append({ ...write('b', 1), json: null });
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map(({ key, version, json }) => ({ key, version, json }))).toEqual([
      { key: 'a', version: 3, json: '3' },
      { key: 'b', version: 1, json: null },
    ]);
    reopened.close();
  });

  it('commits concurrent appends from one tick in a single transaction', async () => {
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    await Promise.all(Array.from({ length: 256 }, (_, i) => outbox.append(write(`k${i}`, i + 1))));
    expect(outbox.commits).toBe(1);
    await outbox.append(write('later', 1));
    expect(outbox.commits).toBe(2);
    expect(outbox.pending()).toHaveLength(257);
    outbox.close();
  });

  it('acknowledges only the version that was flushed', async () => {
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'fsync' });
    await outbox.append(write('a', 1));
    await outbox.append(write('a', 2));
    outbox.acknowledge([{ key: 'a', version: 1 }]);
    expect(outbox.pending().map((p) => p.version)).toEqual([2]);
    outbox.acknowledge([{ key: 'a', version: 2 }]);
    expect(outbox.pending()).toEqual([]);
    outbox.close();
  });

  it('persists dead letters and moves them back to pending atomically', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append(write('p', 5, 'poison'));
    outbox.deadLetter({
      key: 'p',
      version: 5,
      json: '"poison"',
      expiresAt: null,
      error: 'check failed',
      failedAt: 42,
    });
    expect(outbox.pending()).toEqual([]);
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.deadLetters()).toEqual([
      { key: 'p', version: 5, json: '"poison"', expiresAt: null, error: 'check failed', failedAt: 42 },
    ]);
    expect(reopened.requeueDeadLetters(['other'])).toEqual([]);
    expect(reopened.requeueDeadLetters()).toHaveLength(1);
    expect(reopened.deadLetters()).toEqual([]);
    expect(reopened.pending().map((p) => [p.key, p.version])).toEqual([['p', 5]]);
    reopened.close();
  });

  it('fails fast when another process holds the outbox, naming the problem', () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    const script = `
      import { SqliteOutbox } from ${JSON.stringify(new URL('../../../../src/sync/outbox/sqlite-outbox.ts', import.meta.url).pathname)};
      try { SqliteOutbox.open({ path: ${JSON.stringify(path)}, durability: 'process' }); console.log('opened'); }
      catch (e) { console.log(e.name + ': ' + e.message); }
    `;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.stdout).toMatch(/OutboxError: .*in use by another process/);
    outbox.close();
    // Released on close: it opens again.
    SqliteOutbox.open({ path, durability: 'process' }).close();
  });

  it('refuses a second cache on the same file in the same process', () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    expect(() => SqliteOutbox.open({ path, durability: 'process' })).toThrow(/in use by another process/);
    outbox.close();
  });

  it('refuses a corrupt file with a clear error and leaves it untouched', () => {
    const path = join(dir, 'outbox.db');
    const garbage = Buffer.from('this is not a database, but somebody may still want it back'.repeat(100));
    writeFileSync(path, garbage);
    let error: unknown;
    try {
      SqliteOutbox.open({ path, durability: 'process' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OutboxError);
    expect((error as Error).message).toMatch(/not a readable SQLite database.*left untouched/);
    expect(readFileSync(path)).toEqual(garbage);
  });

  it('refuses an outbox written by a newer schema', () => {
    const path = join(dir, 'outbox.db');
    SqliteOutbox.open({ path, durability: 'process' }).close();
    const script = `const D = (await import('better-sqlite3')).default; const d = new D(${JSON.stringify(path)}); d.pragma('user_version = 99'); d.close();`;
    spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd() });
    expect(() => SqliteOutbox.open({ path, durability: 'process' })).toThrow(/schema version 99/);
  });
});

describe('cache over the SQLite outbox', () => {
  it('rejects a write the outbox cannot record (disk full) and leaves memory unchanged', async () => {
    const { cache, storage } = await memoryCache({
      outbox: { path: join(dir, 'outbox.db'), durability: 'process', maxFileBytes: 64 * 1024 },
      maxValueBytes: 200_000,
    });
    storage.goDown(); // keep everything in the outbox
    await cache.set('small', 'fits');
    const big = 'x'.repeat(150_000);
    await expect(cache.set('small', big)).rejects.toBeInstanceOf(OutboxError);
    await expect(cache.set('other', big)).rejects.toThrow(/could not record the write/);
    expect(await cache.get('small')).toBe('fits');
    expect(cache.stats()).toMatchObject({ pending: 1, outboxWritable: false });
    await cache.set('small', 'still fits');
    expect(cache.stats().outboxWritable).toBe(true);
    storage.comeUp();
    await cache.flush();
    expect(storedValue(storage, 'small')).toBe('still fits');
    expect(storedValue(storage, 'other')).toBeUndefined();
    await cache.close();
  });

  it('replays pending writes on open: stats show them at once, reads see them, the flush delivers them', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    first.storage.goDown();
    await first.cache.set('a', { v: 1 });
    await first.cache.delete('b');
    await first.cache.set('c', 'x', { ttlMs: 3_600_000 });
    const closed = await first.cache.close({ timeoutMs: 10 });
    expect(closed).toEqual({ pending: 3, drained: false });

    const second = await memoryCache({ outbox: { path, durability: 'process' }, storage: first.storage });
    expect(second.cache.stats()).toMatchObject({ pending: 3 });
    expect(await second.cache.get('a')).toEqual({ v: 1 });
    expect(await second.cache.get('b')).toBeUndefined();
    first.storage.comeUp();
    await second.cache.flush();
    expect(storedValue(first.storage, 'a')).toEqual({ v: 1 });
    expect(storedValue(first.storage, 'b')).toBeNull();
    expect(first.storage.inner.peek('c')?.expiresAt).toBeGreaterThan(Date.now());
    expect(second.cache.stats().pending).toBe(0);
    await second.cache.close();
    const third = SqliteOutbox.open({ path, durability: 'process' });
    expect(third.pending()).toEqual([]);
    third.close();
  });

  it('keeps dead letters across restarts and re-queues them', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    first.storage.rejectKey('poison');
    await first.cache.set('poison', 1);
    await first.cache.set('fine', 2);
    await first.cache.flush();
    await first.cache.close();
    const second = await memoryCache({ outbox: { path, durability: 'process' }, storage: first.storage });
    expect(second.cache.deadLetters().map((l) => l.key)).toEqual(['poison']);
    first.storage.acceptKey('poison');
    expect(second.cache.retryDeadLetters()).toBe(1);
    await second.cache.flush();
    expect(storedValue(first.storage, 'poison')).toBe(1);
    expect(second.cache.deadLetters()).toEqual([]);
    await second.cache.close();
  });

  it('requires a path unless durability is none', async () => {
    await expect(memoryCache({ outbox: { durability: 'process' } })).rejects.toThrow(
      /outbox.path is required/,
    );
  });
});

describe('clock high-water mark', () => {
  it('mints versions above everything already flushed, even when the wall clock went back', async () => {
    const { vi } = await import('vitest');
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    await first.cache.set('k', 'before restart');
    await first.cache.flush();
    const flushedVersion = first.storage.inner.peek('k')?.version as number;
    await first.cache.close();

    vi.useFakeTimers({ now: Date.now() - 3_600_000 }); // the clock stepped back an hour
    try {
      const second = await memoryCache({ outbox: { path, durability: 'process' }, storage: first.storage });
      await second.cache.set('k', 'after restart');
      await second.cache.flush();
      expect(first.storage.inner.peek('k')?.version).toBeGreaterThan(flushedVersion);
      expect(storedValue(first.storage, 'k')).toBe('after restart');
      await second.cache.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('SqliteOutbox dead letters of appended items', () => {
  it('requeues a dead-lettered item into the pending items, anchored, and removes its letter', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append({
      key: 'log',
      item: { id: 'i1', version: 10, json: '"line"' },
      expiresAt: null,
      queuedAt: 1,
      unanchored: true,
    });
    outbox.deadLetter({
      key: 'log',
      version: 10,
      json: '"line"',
      expiresAt: null,
      itemId: 'i1',
      error: 'x',
      failedAt: 2,
    });
    expect(outbox.requeueDeadLetters().map((l) => l.itemId)).toEqual(['i1']);
    expect(outbox.deadLetters()).toEqual([]);
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pendingItems()).toEqual([
      {
        key: 'log',
        item: { id: 'i1', version: 10, json: '"line"' },
        expiresAt: null,
        queuedAt: expect.any(Number),
      },
    ]);
    reopened.close();
  });
});

describe('SqliteOutbox and log floors', () => {
  it('keeps the log floor of a value, and none for a delete (it ends every older item itself)', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append({ ...write('value', 10), logFloor: 4 });
    await outbox.append({ ...write('gone', 11), json: null, logFloor: 6 });
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    const floors = new Map(reopened.pending().map((row) => [row.key, row.logFloor ?? 0]));
    expect(floors).toEqual(
      new Map([
        ['value', 4],
        ['gone', 0],
      ]),
    );
    reopened.close();
  });
});
