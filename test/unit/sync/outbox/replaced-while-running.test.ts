import { mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger, memoryCache, storedValue } from '../../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-replaced-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const removeOutbox = (path: string) => {
  unlinkSync(path);
  unlinkSync(`${path}-wal`);
};

/** Puts a fresh, valid outbox file (and log) where the open one was, as a restore from backup would. */
const replaceOutbox = (path: string) => {
  const other = join(dir, 'other.db');
  SqliteOutbox.open({ path: other, durability: 'process' }).close();
  renameSync(other, path);
};

describe('the outbox file deleted or replaced while the cache runs', () => {
  it.each([
    ['deleted (with its -wal)', removeOutbox],
    ['replaced by another outbox file', replaceOutbox],
    ['its -wal alone deleted', (path: string) => unlinkSync(`${path}-wal`)],
  ])(
    '%s: later writes reject with OutboxError, health says so, and memory still flushes',
    async (_, damage) => {
      const path = join(dir, 'outbox.db');
      const { cache, storage } = await memoryCache({ outbox: { path, durability: 'process' } });
      storage.goDown();
      for (let i = 0; i < 20; i++) await cache.set(`before-${i}`, i);

      damage(path);
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => cache.set(`after-${i}`, i)),
      );
      // Not one write after the damage is acknowledged: it would have gone into a file nobody will read.
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason as OutboxError;
        expect(reason).toBeInstanceOf(OutboxError);
        expect(reason.message).toContain(path);
        expect(reason.message).toMatch(/deleted or replaced/);
      }
      await expect(cache.delete('before-0')).rejects.toBeInstanceOf(OutboxError);
      expect(cache.stats().outboxWritable).toBe(false);
      expect(cache.outboxError?.message).toMatch(/deleted or replaced/);

      // What was acknowledged before is in memory and still reaches the store.
      storage.comeUp();
      await cache.flush();
      for (let i = 0; i < 20; i++) expect(storedValue(storage, `before-${i}`)).toBe(i);
      expect(storedValue(storage, 'after-0')).toBeUndefined();
      expect(await cache.get('after-0')).toBeUndefined();
      expect(cache.stats()).toMatchObject({ pending: 0, outboxWritable: false });
      await cache.close();
    },
  );

  it('is noticed in the background even when nothing is written', async () => {
    const path = join(dir, 'outbox.db');
    const { cache } = await memoryCache({ outbox: { path, durability: 'process' } });
    await cache.set('a', 1);
    expect(cache.stats().outboxWritable).toBe(true);
    removeOutbox(path);
    await vi.waitFor(() => expect(cache.stats().outboxWritable).toBe(false), {
      timeout: 5_000,
      interval: 50,
    });
    await expect(cache.set('b', 2)).rejects.toBeInstanceOf(OutboxError);
    await cache.close();
  });

  it('moved aside with a new file put at its path: noticed in the background, then writes are refused', async () => {
    const path = join(dir, 'outbox.db');
    const { cache } = await memoryCache({ outbox: { path, durability: 'process' } });
    await cache.set('a', 1);
    renameSync(path, join(dir, 'aside.db'));
    renameSync(`${path}-wal`, join(dir, 'aside.db-wal'));
    SqliteOutbox.open({ path, durability: 'process' }).close();
    await vi.waitFor(() => expect(cache.stats().outboxWritable).toBe(false), {
      timeout: 5_000,
      interval: 50,
    });
    await expect(cache.set('b', 2)).rejects.toThrow(/deleted or replaced/);
    await cache.close();
  });

  it('a restart opens a new outbox at the path and accepts writes again', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    await first.cache.set('a', 1);
    removeOutbox(path);
    await expect(first.cache.set('b', 2)).rejects.toBeInstanceOf(OutboxError);
    await first.cache.close();

    const second = await memoryCache({ outbox: { path, durability: 'process' } });
    await second.cache.set('c', 3);
    expect(second.cache.stats().outboxWritable).toBe(true);
    await second.cache.close();
  });
});

describe('closing after the outbox file was lost', () => {
  it('says the unflushed writes are lost, not that they stay in the outbox', async () => {
    const path = join(dir, 'outbox.db');
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({
      outbox: { path, durability: 'process' },
      logger: log.logger,
    });
    storage.goDown();
    await cache.set('a', 1);
    removeOutbox(path);
    await vi.waitFor(() => expect(cache.stats().outboxWritable).toBe(false), {
      timeout: 5_000,
      interval: 50,
    });

    expect(await cache.close({ timeoutMs: 50 })).toMatchObject({ pending: 1 });
    const closing = log.at('warn').filter((line) => /^closed with unflushed writes/.test(line.msg));
    expect(closing).toEqual([
      expect.objectContaining({
        pending: 1,
        outboxLost: true,
        msg: 'closed with unflushed writes, and the outbox file was deleted or replaced while open; they are lost',
      }),
    ]);
  });
});
