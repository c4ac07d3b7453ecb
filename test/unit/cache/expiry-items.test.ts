import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ABANDON, type HybridCache } from '../../../src/cache/hybrid-cache.js';
import { createHybridCache, MemoryStorage } from '../../../src/index.js';
import { silentLogger } from '../../helpers/cache.js';

/**
 * A key's TTL governs its items in the store as in memory, judged when each write was made: with
 * the key expiring between appends, with the wall clock stepped back, and across a crash-restart.
 */

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-expiry-items-'));
  vi.useFakeTimers({ toFake: ['Date'] });
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

/** A durable cache on this test's outbox whose writes wait for an explicit flush, its clock anchored. */
async function durableCache(storage: MemoryStorage, maxEntries?: number): Promise<HybridCache> {
  const cache = await createHybridCache({
    storage,
    ...(maxEntries ? { maxEntries } : {}),
    outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    flush: { batchSize: 50, intervalMs: 60_000, concurrency: 2 },
    logger: silentLogger,
  });
  await vi.waitFor(() => expect(cache.stats().clockAnchored).toBe(true));
  return cache;
}

const storedItems = (storage: MemoryStorage, key: string) =>
  storage.peekItems(key).map((item) => JSON.parse(item.json));

const stepClock = (ms: number) => vi.setSystemTime(Date.now() + ms);

describe('an item appended to a value written over an expired one, the clock then stepped back', () => {
  it('refreshes only the new value: the expired value and its items stay gone in the store', async () => {
    const storage = new MemoryStorage();
    const cache = await durableCache(storage);
    await cache.set('k', 'old', { ttlMs: 10 });
    await cache.append('k', 'old item', { ttlMs: 10 });
    await cache.flush();
    stepClock(20); // 'old' has expired
    await cache.set('k', 'new'); // starts a new log
    stepClock(-20); // 'old' would read as live again
    await cache.append('k', 'new item'); // appended to 'new', not to 'old'
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: ['new item'] });
    await cache.flush();
    expect(storedItems(storage, 'k')).toEqual(['new item']);
    expect(storage.peek('k')).toMatchObject({ json: '"new"', expiresAt: null });
    await cache.close();
  });
});

describe('a value written over an expired one, replayed after the clock stepped back', () => {
  it('starts its new log in memory and in the store as it did before the crash', async () => {
    const storage = new MemoryStorage();
    let cache = await durableCache(storage);
    await cache.set('k', 'old', { ttlMs: 10 });
    await cache.append('k', 'old item', { ttlMs: 10 });
    await cache.flush();
    stepClock(20);
    await cache.set('k', 'new'); // over an expired value: the log starts empty
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    stepClock(-20); // the store now reads 'old' and its item as live
    await cache[ABANDON]();
    cache = await durableCache(storage);
    // Memory knows nothing of 'old': it learns the stored log and judges it when 'new' was written.
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    await cache.flush(); // sent with the time it was written, not the replay's
    expect(storedItems(storage, 'k')).toEqual([]);
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    await cache.close();
  });
});

describe('a value written over an expired one, replayed and flushed after the clock stepped back', () => {
  it('is sent with the time it was written, so the store ends the old log as memory did', async () => {
    const storage = new MemoryStorage();
    let cache = await durableCache(storage);
    await cache.set('k', 'old', { ttlMs: 10 });
    await cache.append('k', 'old item', { ttlMs: 10 });
    await cache.flush();
    stepClock(20);
    await cache.set('k', 'new');
    stepClock(-20);
    await cache[ABANDON]();
    cache = await durableCache(storage);
    await cache.flush(); // no read first: only the replayed row's time tells the store
    expect(storedItems(storage, 'k')).toEqual([]);
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    await cache.close();
  });
});

describe('items appended before and after the key expired, flushed together', () => {
  it('never revive the key in the store: the later item is judged when it was appended', async () => {
    const storage = new MemoryStorage();
    const cache = await durableCache(storage);
    await cache.set('k', 'v', { ttlMs: 10 });
    await cache.flush();
    await cache.append('k', 'early', { ttlMs: 10 }); // live: the key now expires 10 ms from here
    stepClock(15); // it has expired
    await cache.append('k', 'late', { ttlMs: 1_000 }); // to an expired key: refreshes nothing
    expect(await cache.getWithItems('k')).toBeUndefined();
    await cache.flush();
    expect(await storage.getMany(['k'])).toEqual(new Map());
    expect(await cache.getWithItems('k')).toBeUndefined();
    await cache.close();
  });
});

describe('an item without a TTL appended to a value that a value with a TTL replaced before the flush', () => {
  it('keeps its refresh with the value it was appended to: the newer value still expires', async () => {
    const storage = new MemoryStorage();
    const cache = await durableCache(storage);
    await cache.set('k', 'first');
    await cache.append('k', 'forever'); // no TTL: 'first' would never expire
    await cache.set('k', 'second', { ttlMs: 10 }); // replaces 'first' (and its refresh), not the log
    await cache.append('k', 'brief', { ttlMs: 10 });
    await cache.flush();
    stepClock(20);
    expect(await cache.getWithItems('k')).toBeUndefined();
    expect(await storage.getMany(['k'])).toEqual(new Map());
    await cache.close();
  });
});

describe('a value written over a live value whose log memory does not know, read after that value expired', () => {
  it('continues its log after a crash-restart: the read waits for the value to reach the store', async () => {
    const storage = new MemoryStorage();
    let cache = await durableCache(storage);
    await cache.set('k', 'old', { ttlMs: 10 });
    await cache.append('k', 'item', { ttlMs: 10 });
    await cache.flush();
    await cache.set('k', 'new'); // 'old' is live: the log goes on
    stepClock(20); // 'old' has expired: the store reads the key as absent until 'new' reaches it
    await cache[ABANDON]();
    cache = await durableCache(storage);
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: ['item'] });
    expect(storedItems(storage, 'k')).toEqual(['item']);
    await cache.close();
  });

  it('continues it likewise when memory evicted the value it replaced', async () => {
    const storage = new MemoryStorage();
    const cache = await durableCache(storage, 1);
    await cache.set('k', 'old', { ttlMs: 10 });
    await cache.append('k', 'item', { ttlMs: 10 });
    await cache.flush();
    await cache.set('other', 'x');
    await cache.flush(); // 'other' takes the one clean slot: memory forgets 'old'
    await cache.set('k', 'new');
    stepClock(20);
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: ['item'] });
    await cache.close();
  });
});
