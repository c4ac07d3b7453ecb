import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ABANDON } from '../../../src/cache/hybrid-cache.js';
import { createHybridCache, MemoryStorage } from '../../../src/index.js';
import { silentLogger } from '../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-log-replay-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A durable cache on this test's outbox whose writes wait for an explicit flush, its clock anchored. */
async function durableCache(storage: MemoryStorage) {
  const cache = await createHybridCache({
    storage,
    outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    flush: { batchSize: 50, intervalMs: 60_000, concurrency: 2 },
    logger: silentLogger,
  });
  await vi.waitFor(() => expect(cache.stats().clockAnchored).toBe(true));
  return cache;
}

describe('a new log started over a flushed delete, replayed after a crash', () => {
  it('keeps the items appended to it when a later value replaced it before the crash', async () => {
    const storage = new MemoryStorage();
    let cache = await durableCache(storage);
    await cache.delete('k');
    await cache.flush(); // the store holds the tombstone; memory a clean copy of it
    await cache.set('k', 'first'); // starts a new log: its outbox row says so
    await cache.append('k', 'item');
    await cache.set('k', 'second'); // coalesced over 'first' in the outbox too
    await cache[ABANDON]();
    cache = await durableCache(storage);
    await cache.flush();
    expect(storage.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['item']);
    expect(await cache.getWithItems('k')).toEqual({ value: 'second', items: ['item'] });
    await cache.close();
  });

  it('continues the log of a value an append kept alive, as memory did, when replayed after its first TTL', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const storage = new MemoryStorage();
      let cache = await durableCache(storage);
      await cache.set('k', 'short', { ttlMs: 10 });
      await cache.append('k', 'item'); // no TTL of its own: 'short' now never expires
      vi.setSystemTime(Date.now() + 1_000);
      await cache.set('k', 'next'); // over a live value: the log goes on
      // (No read before the crash: a read that finds the key absent in the store flushes its items.)
      await cache[ABANDON]();
      cache = await durableCache(storage);
      await cache.flush();
      expect(storage.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['item']);
      expect(await cache.getWithItems('k')).toEqual({ value: 'next', items: ['item'] });
      await cache.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
