import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A cache whose writes wait for an explicit flush, its clock anchored on the empty store. */
async function slowFlushingCache() {
  const opened = await memoryCache({ flush: { batchSize: 50, intervalMs: 60_000, concurrency: 2 } });
  await vi.advanceTimersByTimeAsync(0);
  return opened;
}

describe('a new log started by a value the store never sees on its own', () => {
  it('keeps the items appended to it when a later value replaces it before the flush', async () => {
    const { cache, storage } = await slowFlushingCache();
    await cache.delete('k');
    await settleWithTimers(cache.flush()); // the store holds the tombstone
    await vi.advanceTimersByTimeAsync(5);
    await cache.set('k', 'first'); // starts a new log over the tombstone
    await cache.append('k', 'item');
    await cache.set('k', 'second'); // replaces the value, not the log; coalesced over 'first'
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'second', items: ['item'] });
    await settleWithTimers(cache.flush());
    expect(storage.inner.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['item']);
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'second', items: ['item'] });
    await settleWithTimers(cache.close());
  });

  it('keeps them likewise when the value it replaced expired before it', async () => {
    const { cache, storage } = await slowFlushingCache();
    await cache.set('k', 'old', { ttlMs: 10 });
    await cache.append('k', 'old item', { ttlMs: 10 });
    await settleWithTimers(cache.flush());
    await vi.advanceTimersByTimeAsync(20); // 'old' has expired, in memory and in the store
    await cache.set('k', 'first');
    await cache.append('k', 'item');
    await cache.set('k', 'second');
    await settleWithTimers(cache.flush());
    expect(storage.inner.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['item']);
    await settleWithTimers(cache.close());
  });
});

describe('a new log started by a value written blind (memory never read the key)', () => {
  it('keeps the items appended to it when a later value replaces it before the flush', async () => {
    const { cache, storage } = await slowFlushingCache();
    // Another process wrote the key, with a TTL; this one never read it.
    await storage.inner.apply([{ key: 'k', version: 1, json: '"theirs"', expiresAt: Date.now() + 10 }]);
    await vi.advanceTimersByTimeAsync(20); // it has expired
    await cache.set('k', 'first'); // the store will find it started a new log
    await cache.append('k', 'item');
    await cache.set('k', 'second');
    await settleWithTimers(cache.flush());
    expect(storage.inner.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['item']);
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'second', items: ['item'] });
    await settleWithTimers(cache.close());
  });
});

describe('a value written while the value it replaces is live, flushed after that one expired', () => {
  it('continues the log in the store as it did in memory: judged when written, not when flushed', async () => {
    const { cache, storage } = await slowFlushingCache();
    await cache.set('k', 'old', { ttlMs: 100 });
    await cache.append('k', 'item', { ttlMs: 100 });
    await settleWithTimers(cache.flush());
    await vi.advanceTimersByTimeAsync(50);
    await cache.set('k', 'new'); // 'old' is live: the log goes on
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'new', items: ['item'] });
    await vi.advanceTimersByTimeAsync(100); // 'old' would have expired by now; the write still waits
    await settleWithTimers(cache.flush());
    const [entry] = (await storage.inner.getMany(['k'])).values();
    expect(entry?.items?.map((i) => JSON.parse(i.json))).toEqual(['item']);
    await settleWithTimers(cache.close());
  });
});
