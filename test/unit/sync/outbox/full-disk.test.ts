import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type HybridCache, MemoryStorage, OutboxError } from '../../../../src/index.js';
import type { PendingWrite } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { FaultyStorage } from '../../../../src/testing/index.js';
import { memoryCache } from '../../../helpers/cache.js';
import { smallDisk } from '../../../helpers/outbox.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-full-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const sizeOf = (path: string) => statSync(path, { throwIfNoEntry: false })?.size ?? 0;
const onDisk = (path: string) => sizeOf(path) + sizeOf(`${path}-wal`);
const kilobyte = (i: number) => ({ i, text: 'x'.repeat(1_000) });

async function fillUntilRefused(cache: HybridCache, prefix: string, limit = 20_000): Promise<number> {
  for (let i = 0; i < limit; i++) {
    try {
      await cache.set(`${prefix}${i}`, kilobyte(i));
    } catch (error) {
      expect(error).toBeInstanceOf(OutboxError);
      return i;
    }
  }
  throw new Error(`the outbox accepted ${limit} writes; the disk never filled`);
}

/** Accepted writes out of `count`, flushing between them as a running daemon would. */
async function acceptedOf(cache: HybridCache, prefix: string, count: number): Promise<number> {
  let accepted = 0;
  for (let i = 0; i < count; i++) {
    const ok = await cache.set(`${prefix}${i}`, kilobyte(i)).then(
      () => true,
      () => false,
    );
    if (ok) accepted++;
    await cache.flush();
  }
  return accepted;
}

describe('outbox on a full disk', () => {
  it('recovers by itself once the backlog drains, and after a restart (4 MiB filesystem)', async () => {
    const disk = smallDisk(dir);
    const opened: HybridCache[] = [];
    try {
      const storage = new FaultyStorage(new MemoryStorage());
      const outbox = {
        path: disk.path,
        durability: 'process' as const,
        ...(disk.maxFileBytes ? { maxFileBytes: disk.maxFileBytes } : {}),
      };
      const { cache } = await memoryCache({ storage, outbox, maxValueBytes: 4_096 });
      opened.push(cache);
      storage.goDown();
      const accepted = await fillUntilRefused(cache, 'backlog-');
      expect(accepted).toBeGreaterThan(100);
      expect(cache.stats().outboxWritable).toBe(false);
      // The log was checkpointed as it grew: most of the disk holds data, not copies of pages.
      expect(sizeOf(`${disk.path}-wal`)).toBeLessThan(2 * 2 ** 20);

      storage.comeUp();
      await cache.flush();
      expect(cache.stats().pending).toBe(0);
      expect(storage.inner.peek(`backlog-${accepted - 1}`)).toBeDefined();
      // Prompt: deletions that run out of log room resume after a checkpoint at once, and a refusing
      // outbox probes as soon as the acknowledged rows are gone (not on its once-a-second tick).
      await vi.waitFor(() => expect(cache.stats().outboxWritable).toBe(true), {
        timeout: 30_000,
        interval: 50,
      });
      expect(await acceptedOf(cache, 'after-drain-', 40)).toBe(40);
      await cache.close();

      const restarted = await memoryCache({ storage, outbox, maxValueBytes: 4_096 });
      opened.push(restarted.cache);
      expect(await acceptedOf(restarted.cache, 'after-restart-', 20)).toBe(20);
      await restarted.cache.close();
    } finally {
      for (const cache of opened)
        if (cache.isOpen) await cache.close({ timeoutMs: 100 }).catch(() => undefined);
      disk.release();
    }
  }, 60_000);

  it('counts the write-ahead log against maxFileBytes: file and log together stay under the cap', async () => {
    const path = join(dir, 'outbox.db');
    const maxFileBytes = 64 * 1024;
    const storage = new FaultyStorage(new MemoryStorage());
    const { cache } = await memoryCache({ storage, outbox: { path, durability: 'process', maxFileBytes } });
    storage.goDown();
    let largest = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 200; i++) {
        await cache.set(`k${i % 50}`, kilobyte(i)).catch(() => undefined);
        largest = Math.max(largest, onDisk(path));
      }
      storage.comeUp();
      await cache.flush();
      storage.goDown();
    }
    expect(largest).toBeGreaterThan(0);
    expect(largest).toBeLessThanOrEqual(maxFileBytes);
    await cache.close();
  });
});

describe('write-ahead log checkpoints', () => {
  const write = (i: number): PendingWrite => ({
    key: `k${i % 1_000}`,
    version: i + 1,
    json: JSON.stringify({ i, text: 'y'.repeat(150) }),
    expiresAt: null,
    queuedAt: i,
  });

  it('never run inside a commit: the log grows past SQLite’s 1,000-page auto-checkpoint while appending', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });
    for (let i = 0; i < 1_500; i++) await outbox.append(write(i));
    expect(outbox.checkpoints).toBe(0);
    expect(sizeOf(`${path}-wal`)).toBeGreaterThan(1_000 * 4_096 * 1.05);
    outbox.close();
  });

  it('run in the background, and empty the log once nothing is pending', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 20 });
    const written = Array.from({ length: 300 }, (_, i) => write(i));
    for (const w of written) await outbox.append(w);
    expect(sizeOf(`${path}-wal`)).toBeGreaterThan(0);
    outbox.acknowledge(written);
    await vi.waitFor(() => expect(sizeOf(`${path}-wal`)).toBe(0), { timeout: 5_000, interval: 20 });
    expect(outbox.checkpoints).toBeGreaterThan(0);
    expect(outbox.pending()).toEqual([]);
    outbox.close();
  });
});
