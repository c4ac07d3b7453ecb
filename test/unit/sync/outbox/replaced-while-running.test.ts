import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
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

/** Resolves with the next `outboxHealed` event of `cache`. */
const nextHeal = (cache: { on(event: 'outboxHealed', listener: (p: { writes: number }) => void): unknown }) =>
  new Promise<{ writes: number }>((resolve) => cache.on('outboxHealed', resolve));

describe('the outbox file deleted or replaced while the cache runs', () => {
  it.each([
    ['deleted (with its -wal)', removeOutbox],
    ['replaced by another outbox file', replaceOutbox],
    ['its -wal alone deleted', (path: string) => unlinkSync(`${path}-wal`)],
  ])(
    '%s: a new file is written from memory, later writes are accepted, and all of them reach the store',
    async (_, damage) => {
      const path = join(dir, 'outbox.db');
      const log = capturingLogger();
      const { cache, storage } = await memoryCache({
        outbox: { path, durability: 'process' },
        logger: log.logger,
      });
      storage.goDown();
      for (let i = 0; i < 20; i++) await cache.set(`before-${i}`, i);

      damage(path);
      const healed = nextHeal(cache);
      // Not one write after the damage is refused: it goes into the new file.
      await Promise.all(Array.from({ length: 20 }, (_, i) => cache.set(`after-${i}`, i)));
      await cache.delete('before-0');
      // 20 before, and the writes that were on their way into the lost file when it was noticed.
      expect((await healed).writes).toBeGreaterThanOrEqual(20);
      expect(cache.stats()).toMatchObject({ outboxWritable: true, outboxHeals: 1 });
      expect(cache.outboxError).toBeUndefined();
      expect(log.at('warn').filter((l) => /new one was written/.test(l.msg))).toEqual([
        expect.objectContaining({ path }),
      ]);

      storage.comeUp();
      await cache.flush();
      expect(storedValue(storage, 'before-0')).toBeNull();
      for (let i = 1; i < 20; i++) expect(storedValue(storage, `before-${i}`)).toBe(i);
      for (let i = 0; i < 20; i++) expect(storedValue(storage, `after-${i}`)).toBe(i);
      expect(cache.stats()).toMatchObject({ pending: 0, outboxWritable: true });
      await cache.close();
    },
  );

  it('is noticed in the background even when nothing is written, and healed', async () => {
    const path = join(dir, 'outbox.db');
    const { cache } = await memoryCache({ outbox: { path, durability: 'process' } });
    await cache.set('a', 1);
    expect(cache.stats().outboxHeals).toBe(0);
    const healed = nextHeal(cache);
    removeOutbox(path);
    expect(await healed).toEqual({ writes: 0 });
    expect(cache.stats()).toMatchObject({ outboxHeals: 1, outboxWritable: true });
    await cache.set('b', 2);
    await cache.close();
  });

  it('moved aside with a new file put at its path: noticed in the background, and memory written into the new file', async () => {
    const path = join(dir, 'outbox.db');
    const { cache, storage } = await memoryCache({ outbox: { path, durability: 'process' } });
    storage.goDown();
    await cache.set('a', 1);
    renameSync(path, join(dir, 'aside.db'));
    renameSync(`${path}-wal`, join(dir, 'aside.db-wal'));
    SqliteOutbox.open({ path, durability: 'process' }).close();
    expect(await nextHeal(cache)).toEqual({ writes: 1 });
    await cache.set('b', 2);
    await cache.close({ timeoutMs: 10 });

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((row) => row.key)).toEqual(['a', 'b']);
    await reopened.close();
  });

  it('a restart opens the healed outbox at the path and accepts writes', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    await first.cache.set('a', 1);
    removeOutbox(path);
    await first.cache.set('b', 2);
    await first.cache.close();

    const second = await memoryCache({ outbox: { path, durability: 'process' } });
    await second.cache.set('c', 3);
    expect(second.cache.stats().outboxWritable).toBe(true);
    await second.cache.close();
  });
});

describe('closing after the outbox file was lost', () => {
  it('with no new file written (a foreign file at the path): says the unflushed writes are lost', async () => {
    const path = join(dir, 'outbox.db');
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({
      outbox: { path, durability: 'process' },
      logger: log.logger,
    });
    storage.goDown();
    await cache.set('a', 1);
    removeOutbox(path);
    writeFileSync(path, 'not a database, and not ours to overwrite');
    await vi.waitFor(() => expect(cache.outboxError?.message).toMatch(/could not be written there/), {
      timeout: 5_000,
      interval: 50,
    });
    expect(cache.stats()).toMatchObject({ outboxWritable: false, outboxHeals: 0 });

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

  it('after a new file was written: says they stay in the outbox', async () => {
    const path = join(dir, 'outbox.db');
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({
      outbox: { path, durability: 'process' },
      logger: log.logger,
    });
    storage.goDown();
    await cache.set('a', 1);
    const healed = nextHeal(cache);
    removeOutbox(path);
    await healed;

    expect(await cache.close({ timeoutMs: 50 })).toMatchObject({ pending: 1 });
    expect(log.at('warn').filter((line) => /^closed with unflushed writes/.test(line.msg))).toEqual([
      expect.objectContaining({
        outboxLost: false,
        msg: 'closed with unflushed writes; they stay in the outbox and flush on next start',
      }),
    ]);
  });
});
