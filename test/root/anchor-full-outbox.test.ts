import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHybridCache, type HybridCache, MemoryStorage } from '../../src/index.js';
import { FaultyStorage } from '../../src/testing/index.js';
import { silentLogger } from '../helpers/cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-anchor-full-'));
});
let release = (): void => {};
afterEach(() => {
  release();
  rmSync(dir, { recursive: true, force: true });
});

const value = (i: number) => ({ i, text: 'x'.repeat(900) });

const isRoot = process.getuid?.() === 0;

/**
 * A 1 MiB filesystem: a real tmpfs where this process may mount one (root, unless `capped`),
 * otherwise a directory with the outbox capped at 1 MiB. The tmpfs is the case that matters: a cap
 * leaves the outbox its own margin, a full disk does not.
 */
function smallDisk(capped: boolean): { path: string; maxFileBytes?: number; release: () => void } {
  const mountPoint = join(dir, 'small-disk');
  mkdirSync(mountPoint);
  const mounted =
    !capped &&
    isRoot &&
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]).status === 0;
  return {
    path: join(mountPoint, 'outbox.db'),
    ...(mounted ? {} : { maxFileBytes: 2 ** 20 }),
    release: () => {
      if (mounted) spawnSync('umount', ['--lazy', mountPoint]);
    },
  };
}

/** Writes until the outbox refuses one; returns how many it acknowledged. */
async function fillUntilRefused(cache: HybridCache<unknown>, prefix: string): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      await cache.set(`${prefix}-${i}`, value(i));
    } catch (error) {
      expect(String(error)).toMatch(/maxFileBytes|disk is (nearly )?full/);
      return i;
    }
  }
}

describe('a full outbox of writes accepted before the clock was anchored', () => {
  // As root both the real 1 MiB tmpfs and the cap run; otherwise the cap only (twice).
  it.each([
    ['every write above the mark (versions kept)', false, false],
    ['the store ahead of every write (versions rewritten)', true, false],
    ['every write above the mark (versions kept), capped outbox', false, true],
    ['the store ahead of every write (versions rewritten), capped outbox', true, true],
  ])(
    '%s: drains once the store is back, and takes writes again',
    async (_, storeAhead, capped) => {
      const storage = new FaultyStorage(new MemoryStorage());
      if (storeAhead) {
        // The store holds a version an hour ahead of this process's clock: every local write is below it.
        await storage.inner.apply([
          { key: 'elsewhere', version: (Date.now() + 3_600_000) * 1024, json: '"x"', expiresAt: null },
        ]);
      }
      storage.goDown();
      const disk = smallDisk(capped);
      release = disk.release;
      const cache = await createHybridCache<unknown>({
        storage,
        outbox: {
          path: disk.path,
          durability: 'process',
          ...(disk.maxFileBytes ? { maxFileBytes: disk.maxFileBytes } : {}),
        },
        flush: { batchSize: 50, intervalMs: 5, concurrency: 2 },
        retry: { baseMs: 5, maxMs: 20 },
        breaker: { failureThreshold: 1000, halfOpenAfterMs: 10 },
        logger: silentLogger,
      });
      const accepted = await fillUntilRefused(cache, 'offline');
      expect(accepted).toBeGreaterThan(20);
      expect(cache.stats().pending).toBe(accepted);

      storage.comeUp();
      await cache.flush({ timeoutMs: 20_000 });
      expect(cache.stats().pending).toBe(0);
      for (const i of [0, accepted - 1]) {
        const stored = storage.inner.peek(`offline-${i}`);
        expect(stored?.json).toBe(JSON.stringify(value(i)));
      }
      if (storeAhead) {
        // Rewritten above the store's mark: they win over what the store held, in their old order.
        const first = storage.inner.peek('offline-0')?.version as number;
        const last = storage.inner.peek(`offline-${accepted - 1}`)?.version as number;
        expect(first).toBeGreaterThan((Date.now() + 3_000_000) * 1024);
        expect(last).toBeGreaterThan(first);
      }
      await vi.waitFor(() => expect(cache.stats().outboxWritable).toBe(true), {
        timeout: 30_000,
        interval: 20,
      });
      await cache.set('after', value(-1));
      await cache.flush({ timeoutMs: 5_000 });
      expect(storage.inner.peek('after')).toBeDefined();
      await cache.close();
    },
    60_000,
  );
});
